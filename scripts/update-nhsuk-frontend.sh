#!/usr/bin/env bash
# Re-vendor the NHS.UK frontend (npm package `nhsuk-frontend`, MIT) into
# crates/gatehouse-web/assets/nhsuk/ so the binary can embed it.
#
# MAINTAINER-ONLY. Neither `cargo build` nor CI runs this: the output is
# committed. It needs node + npm and access to the npm registry.
#
# Usage:  scripts/update-nhsuk-frontend.sh [VERSION]      (default: 10.6.1)
#
# What it does (idempotent: same inputs -> byte-identical output):
#   1. `npm pack nhsuk-frontend@VERSION` into a temp dir and checks the
#      tarball's sha512 against `npm view ... dist.integrity` (and, for
#      versions listed in KNOWN_INTEGRITY below, against the pinned value).
#   2. Recompiles the package's own Sass (dist/nhsuk/index.scss) with a pinned
#      `sass`, with:
#        $nhsuk-include-font-face: false        no Frutiger from assets.nhs.uk
#        $nhsuk-assets-path: "/assets/nhsuk/"  where we serve the images
#      and restores the Arial fallback font-family that upstream only emits
#      together with the @font-face rules.
#   3. Copies the ES-module JS bundle, images/favicons, manifest.json, and
#      writes LICENSE, VERSION and README.md.
#   4. Checks: no http(s):// URL, @font-face or @import in the CSS; every
#      url(...) in the CSS and every icon in manifest.json resolves to a
#      vendored file; the JS is an ES module exporting initAll.
#   5. Copies reference fixtures (components/<name>/fixtures.json) to
#      crates/gatehouse-web/tests/nhsuk-fixtures/<name>.json.
set -euo pipefail
export LC_ALL=C

VERSION="${1:-10.6.1}"
PACKAGE="nhsuk-frontend"

# Sass compiler, pinned. 1.106.0+ rewrites the upstream IE hack
# `@media screen\0` into `@media screen<U+FFFD>`; equivalent in browsers, but
# 1.105.2 keeps the output identical to the upstream build in that respect.
SASS_VERSION="1.105.2"

# sha512 integrity of tarballs we have vetted. A version not listed here is
# checked against the registry's dist.integrity only (add it once reviewed).
declare -A KNOWN_INTEGRITY=(
  ["10.6.1"]="sha512-PZorqQZjZx/A26yJoskCL9z0ib6AtkAyF0o4K/RHr8zRrJyXrUOCnMbjy0VNXsGO4tfTNMwqlkwATKs4a0xayw=="
)

# URL prefix the assets are served under (must match the Rust router).
ASSETS_URL="/assets/nhsuk/"

# Fixtures to keep for comparing our templates with the official markup.
# Names are the package's component folder names (the table component is
# "tables"). REQUIRED ones must exist; OPTIONAL ones are skipped if absent.
REQUIRED_FIXTURES=(
  header footer skip-link button input date-input error-summary error-message
  fieldset hint label inset-text warning-callout summary-list back-link
  details card tag tables
)
OPTIONAL_FIXTURES=(password-input panel notification-banner)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/crates/gatehouse-web/assets/nhsuk"
FIXTURES_DEST="$ROOT/crates/gatehouse-web/tests/nhsuk-fixtures"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null || die "node is required"
command -v npm >/dev/null || die "npm is required"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/nhsuk-frontend.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

# npm prints config warnings on stderr; keep stdout clean.
export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false

# --------------------------------------------------------------------------
# 1. Download and verify
# --------------------------------------------------------------------------
say "Looking up $PACKAGE@$VERSION"
REGISTRY_INTEGRITY="$(npm view "$PACKAGE@$VERSION" dist.integrity 2>/dev/null)"
[[ "$REGISTRY_INTEGRITY" == sha512-* ]] ||
  die "no sha512 dist.integrity for $PACKAGE@$VERSION (got: '$REGISTRY_INTEGRITY')"

if [[ -n "${KNOWN_INTEGRITY[$VERSION]:-}" ]]; then
  [[ "$REGISTRY_INTEGRITY" == "${KNOWN_INTEGRITY[$VERSION]}" ]] ||
    die "registry integrity for $VERSION ($REGISTRY_INTEGRITY) differs from the pinned one (${KNOWN_INTEGRITY[$VERSION]})"
else
  say "WARNING: $VERSION has no pinned integrity; trusting the registry's: $REGISTRY_INTEGRITY"
  say "         add it to KNOWN_INTEGRITY in this script once reviewed"
fi

say "Downloading with npm pack"
(cd "$TMP" && npm pack "$PACKAGE@$VERSION" --silent >/dev/null 2>"$TMP/pack.log") ||
  { cat "$TMP/pack.log" >&2; die "npm pack failed"; }
TARBALL="$TMP/$PACKAGE-$VERSION.tgz"
[[ -f "$TARBALL" ]] || die "npm pack did not produce $TARBALL"

ACTUAL_INTEGRITY="sha512-$(node -e '
  const h = require("crypto").createHash("sha512");
  h.update(require("fs").readFileSync(process.argv[1]));
  process.stdout.write(h.digest("base64"));' "$TARBALL")"
[[ "$ACTUAL_INTEGRITY" == "$REGISTRY_INTEGRITY" ]] ||
  die "tarball integrity mismatch: got $ACTUAL_INTEGRITY, expected $REGISTRY_INTEGRITY"
say "Integrity OK: $ACTUAL_INTEGRITY"

PKG="$TMP/node_modules/$PACKAGE"
mkdir -p "$PKG"
tar -xzf "$TARBALL" -C "$PKG" --strip-components=1 --no-same-owner
DIST="$PKG/dist/nhsuk"

node -e '
  const p = require(process.argv[1]);
  if (p.name !== process.argv[2] || p.version !== process.argv[3] || p.license !== "MIT") {
    console.error("unexpected package.json:", p.name, p.version, p.license);
    process.exit(1);
  }' "$PKG/package.json" "$PACKAGE" "$VERSION" ||
  die "package.json does not match $PACKAGE@$VERSION (MIT)"

# --------------------------------------------------------------------------
# 2. Compile the Sass
# --------------------------------------------------------------------------
say "Installing sass@$SASS_VERSION (temporary)"
mkdir -p "$TMP/tools"
# Own package.json so npm installs here, not into a parent's node_modules.
printf '{"name":"nhsuk-vendor-tools","private":true}\n' >"$TMP/tools/package.json"
(cd "$TMP/tools" &&
  npm install --no-save --no-package-lock --ignore-scripts --silent \
    "sass@$SASS_VERSION" >/dev/null 2>"$TMP/sass-install.log") ||
  { cat "$TMP/sass-install.log" >&2; die "installing sass failed"; }
SASS="$TMP/tools/node_modules/.bin/sass"
[[ "$("$SASS" --version)" == "$SASS_VERSION"* ]] || die "sass version is not $SASS_VERSION"

STAGE="$TMP/stage"
mkdir -p "$STAGE"

# Same structure as the package's own entry points (dist/nhsuk/nhsuk.scss is
# `@forward "."`, i.e. index.scss = core + components), configured via @use.
cat >"$TMP/gatehouse-nhsuk.scss" <<EOF
@use "$PACKAGE/dist/nhsuk" with (
  \$nhsuk-include-font-face: false,
  \$nhsuk-assets-path: "$ASSETS_URL"
);

// Upstream sets html { font-family } only together with its Frutiger
// @font-face rules, so with them disabled the page would fall back to the
// browser default (serif). Use the package's fallback stack instead.
html {
  font-family: arial, sans-serif;
}
EOF

say "Compiling CSS"
"$SASS" --no-source-map --style=compressed --load-path="$TMP/node_modules" \
  "$TMP/gatehouse-nhsuk.scss" "$STAGE/nhsuk-frontend.min.css" 2>"$TMP/sass.log" ||
  { cat "$TMP/sass.log" >&2; die "sass failed"; }
if [[ -s "$TMP/sass.log" ]]; then
  say "sass printed warnings:"
  cat "$TMP/sass.log" >&2
fi

# --------------------------------------------------------------------------
# 3. JS, images, manifest, LICENSE, VERSION, README
# --------------------------------------------------------------------------
# The bundle is an ES module (ends in `export{...}`). Drop the trailing
# sourceMappingURL comment: we do not ship the map.
sed -e 's|//# sourceMappingURL=[^[:space:]]*$||' \
  "$DIST/nhsuk-frontend.min.js" >"$STAGE/nhsuk-frontend.min.js"

mkdir -p "$STAGE/images"
cp "$DIST"/assets/images/* "$STAGE/images/"
cp "$DIST/assets/manifest.json" "$STAGE/manifest.json"
chmod 0644 "$STAGE"/*.* "$STAGE"/images/*

printf '%s\n' "$VERSION" >"$STAGE/VERSION"

cat >"$STAGE/LICENSE" <<EOF
MIT License

Copyright (c) 2019 NHS.UK

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.

---
Vendored: $PACKAGE $VERSION from the npm registry (npm pack $PACKAGE@$VERSION,
$ACTUAL_INTEGRITY),
source repository https://github.com/nhsuk/nhsuk-frontend. The CSS was
recompiled from the package's Sass; see README.md.
EOF

cat >"$STAGE/README.md" <<EOF
# NHS.UK frontend (vendored)

Generated by \`scripts/update-nhsuk-frontend.sh\`; do not edit by hand.

- **What:** the compiled CSS, the JS bundle, images/favicons and
  \`manifest.json\` from the npm package \`$PACKAGE\` **$VERSION** (MIT, see
  \`LICENSE\`; version also in \`VERSION\`). The Rust binary embeds this folder
  and serves it under \`$ASSETS_URL\`; nothing is fetched at runtime and npm is
  not needed to build.
- **Update:** run \`scripts/update-nhsuk-frontend.sh [VERSION]\` (needs node,
  npm and the npm registry). It verifies the tarball's sha512, recompiles the
  Sass with sass $SASS_VERSION, runs the checks below, and rewrites this
  folder and \`crates/gatehouse-web/tests/nhsuk-fixtures/\` (the official
  component fixtures, for comparing our templates with the upstream markup).

## Sass settings

- \`\$nhsuk-include-font-face: false\`: upstream loads the Frutiger webfont
  from assets.nhs.uk; our CSP is \`default-src 'self'\`, so nothing may come
  from another origin. The CSS has no \`@font-face\` and no \`http(s)://\`
  URL (the script checks). Text uses Arial (\`arial, sans-serif\`), the
  package's own fallback; the script adds \`html { font-family: ... }\`
  because upstream only sets it together with the \`@font-face\` rules.
- \`\$nhsuk-assets-path: "$ASSETS_URL"\`: image \`url(...)\`s in the CSS point
  at \`${ASSETS_URL}images/\`, where we serve \`images/\` (the script checks that
  every \`url(...)\` resolves to a file here).

## JavaScript

\`nhsuk-frontend.min.js\` is an **ES module** (it ends in \`export{...}\`; its
sourceMappingURL comment is stripped). Load it with
\`<script type="module">\`, from a same-origin file (no inline script under
the CSP), and call its \`initAll\` export, which initialises every component
with a \`data-module="nhsuk-..."\` attribute. \`initAll\` does nothing unless
\`<body>\` has the class \`nhsuk-frontend-supported\`, which upstream's page
template adds with an inline script at the top of \`<body>\`
(\`js-enabled\` + \`nhsuk-frontend-supported\`); we do that from an
external file instead.
EOF

# --------------------------------------------------------------------------
# 4. Checks
# --------------------------------------------------------------------------
say "Checking the output"
CSS="$STAGE/nhsuk-frontend.min.css"
if grep -Eio 'https?://[^)"'\'' ]*' "$CSS"; then die "CSS contains absolute http(s) URLs (above)"; fi
if grep -q '@font-face' "$CSS"; then die "CSS contains @font-face"; fi
if grep -q '@import' "$CSS"; then die "CSS contains @import"; fi
if grep -q 'sourceMappingURL' "$CSS"; then die "CSS references a source map"; fi
grep -q 'font-family:arial,sans-serif' "$CSS" || die "CSS lacks the Arial fallback on html"

URLS="$(grep -Eo 'url\([^)]*\)' "$CSS" | sed -E 's/^url\(["'\'' ]*//; s/["'\'' ]*\)$//' | sort -u)"
[[ -n "$URLS" ]] || die "no url(...) found in the CSS (unexpected)"
while IFS= read -r url; do
  case "$url" in
    "$ASSETS_URL"*) rel="${url#"$ASSETS_URL"}"; rel="${rel%%[?#]*}" ;;
    *) die "CSS url($url) is outside $ASSETS_URL" ;;
  esac
  [[ -f "$STAGE/$rel" ]] || die "CSS url($url) does not resolve to a vendored file ($rel)"
done <<<"$URLS"

node -e '
  const path = require("path"), fs = require("fs");
  const dir = process.argv[1];
  for (const icon of require(path.join(dir, "manifest.json")).icons) {
    if (!fs.existsSync(path.join(dir, icon.src))) {
      console.error("manifest.json icon missing: " + icon.src);
      process.exit(1);
    }
  }' "$STAGE" || die "manifest.json references a missing file"

JS="$STAGE/nhsuk-frontend.min.js"
grep -Eq 'export\{[^}]*\binitAll\b[^}]*\}[;[:space:]]*$' "$JS" ||
  die "JS does not end in an export{...} that includes initAll"
if grep -q 'sourceMappingURL' "$JS"; then die "JS still references a source map"; fi

# --------------------------------------------------------------------------
# 5. Fixtures
# --------------------------------------------------------------------------
FSTAGE="$TMP/fixtures"
mkdir -p "$FSTAGE"
for name in "${REQUIRED_FIXTURES[@]}"; do
  src="$DIST/components/$name/fixtures.json"
  [[ -f "$src" ]] || die "missing fixtures for required component '$name'"
  cp "$src" "$FSTAGE/$name.json"
done
for name in "${OPTIONAL_FIXTURES[@]}"; do
  src="$DIST/components/$name/fixtures.json"
  if [[ -f "$src" ]]; then cp "$src" "$FSTAGE/$name.json"; else say "no fixtures for '$name' in $VERSION (skipped)"; fi
done
chmod 0644 "$FSTAGE"/*.json

# --------------------------------------------------------------------------
# 6. Install (replace the two output folders wholesale)
# --------------------------------------------------------------------------
rm -rf "$DEST" "$FIXTURES_DEST"
mkdir -p "$(dirname "$DEST")" "$(dirname "$FIXTURES_DEST")"
cp -R "$STAGE" "$DEST"
cp -R "$FSTAGE" "$FIXTURES_DEST"

say "Vendored $PACKAGE $VERSION into ${DEST#"$ROOT"/}:"
(cd "$DEST" && find . -type f | sort | while IFS= read -r f; do
  printf '  %8d  %s\n' "$(wc -c <"$f")" "${f#./}"
done) >&2
say "Fixtures in ${FIXTURES_DEST#"$ROOT"/}: $(cd "$FIXTURES_DEST" && ls | tr '\n' ' ')"
