#!/usr/bin/env bash
# Argon2id implementations on this CPU, with the service's parameters
# (m = 19456 KiB, t = 2, p = 1): verifications per second on every core,
# alternated round by round so that each round compares neighbours on a
# noisy machine. Compared with the crate the service computes its hash with,
# argon2-rust (`gatehouse-bench hash-rate`, memory kept per thread as the
# service keeps it):
#   - the RustCrypto `argon2` crate, which the service used before
#     (`gatehouse-bench hash-rate --crate rustcrypto`, a block buffer kept
#     per thread);
#   - the reference implementation (phc-winner-argon2's opt.c, the C code
#     argon2-cffi and so Django use), built for generic x86-64 (SSE2), for
#     x86-64-v3 (AVX2) and for this CPU (-march=native);
#   - libsodium (Debian's libsodium-dev), which picks its code at run time;
#   - any other builds of gatehouse-bench given as arguments, both crates in
#     each, for example one built for x86-64-v3:
#       RUSTFLAGS="-C target-cpu=x86-64-v3" cargo build --release \
#           -p gatehouse-bench --target-dir target/x86-64-v3
#       bench/argon2-implementations.sh target/x86-64-v3/release/gatehouse-bench
# Every implementation must compute the same hash as the service (checked
# first). Needs gcc and libsodium-dev; downloads the reference C source once,
# from the argon2-cffi-bindings sdist on PyPI (checked against its SHA-256).
# Environment: ROUNDS (default 3), MEASURE_SECONDS (default 5), THREADS
# (default: every core).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rounds=${ROUNDS:-3}
seconds=${MEASURE_SECONDS:-5}
threads=${THREADS:-$(nproc)}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a whole number of 1 or more, not '$rounds'" >&2; exit 2; }
[[ $seconds =~ ^[0-9]+(\.[0-9]+)?$ ]] && [[ ! $seconds =~ ^0+(\.0+)?$ ]] ||
    { echo "MEASURE_SECONDS must be a number of seconds above 0, not '$seconds'" >&2; exit 2; }
[[ $threads =~ ^[1-9][0-9]*$ ]] || { echo "THREADS must be a whole number of 1 or more, not '$threads'" >&2; exit 2; }
bench_bin=$root/target/release/gatehouse-bench
[ -x "$bench_bin" ] || { echo "build it first: cargo build --release -p gatehouse-bench" >&2; exit 2; }
[ -f /usr/include/sodium.h ] || { echo "libsodium-dev is missing: apt-get install -y libsodium-dev" >&2; exit 2; }

work=$root/target/argon2-implementations
mkdir -p "$work"
sdist=argon2_cffi_bindings-26.2.0
if [ ! -d "$work/$sdist" ]; then
    curl -fsSL -o "$work/$sdist.tar.gz" \
        "https://files.pythonhosted.org/packages/76/3b/f7bd1daac24c7017b6d09d05c56bb3f71aaae76b2ac4234ed2c00e0dd2d2/$sdist.tar.gz"
    echo "f21ab89bb9850f32b9ca038d9961424bb0d3669d579cbbbfed068cffa6fc0643  $work/$sdist.tar.gz" | sha256sum -c --quiet
    tar xzf "$work/$sdist.tar.gz" -C "$work"
fi
lib=$work/$sdist/extras/libargon2
src=("$lib"/src/{argon2,core,encoding,opt,thread}.c "$lib/src/blake2/blake2b.c")
phc() { gcc -O3 -std=c11 -DIMPL_PHC "-march=$1" -I"$lib/include" -I"$lib/src" "$here/argon2/rate.c" "${src[@]}" -o "$work/$2" -lpthread; }
phc x86-64 reference-sse2
phc x86-64-v3 reference-avx2
phc native reference-native
gcc -O3 -std=c11 -DIMPL_SODIUM "$here/argon2/rate.c" -o "$work/libsodium" -lsodium -lpthread

# name|kind|path: kind is a crate of gatehouse-bench's, or c for a harness.
runs=("argon2-rust (the service)|argon2-rust|$bench_bin"
      "RustCrypto argon2 (before)|rustcrypto|$bench_bin")
for extra in "$@"; do
    build=$(basename "$(dirname "$(dirname "$extra")")")
    runs+=("argon2-rust, $build build|argon2-rust|$extra" "RustCrypto argon2, $build build|rustcrypto|$extra")
done
runs+=("reference C, generic x86-64 (SSE2)|c|$work/reference-sse2"
       "reference C, x86-64-v3 (AVX2)|c|$work/reference-avx2"
       "reference C, -march=native|c|$work/reference-native"
       "libsodium $(pkg-config --modversion libsodium 2>/dev/null || echo)|c|$work/libsodium")

run() {  # name|kind|path, then THREADS SECONDS, or --output
    local spec=$1 kind path
    shift
    kind=${spec#*|} && kind=${kind%%|*}
    path=${spec##*|}
    case "$kind:$1" in
    c:--output) "$path" 1 0 output ;;
    c:*) "$path" "$1" "$2" ;;
    *:--output) "$path" hash-rate --crate "$kind" --output ;;
    *) "$path" hash-rate --crate "$kind" --threads "$1" --seconds "$2" ;;
    esac
}

expected=$(run "${runs[0]}" --output)
for spec in "${runs[@]}"; do
    got=$(run "$spec" --output)
    [ "$got" = "$expected" ] || { echo "${spec%%|*} computes a different hash: $got, not $expected" >&2; exit 1; }
done

declare -A rates
for ((r = 1; r <= rounds; r++)); do
    echo "round $r of $rounds…" >&2
    for spec in "${runs[@]}"; do
        rates[${spec%%|*}]+="$(run "$spec" "$threads" "$seconds") "
    done
done

echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $threads threads, $rounds rounds of $seconds s"
echo
echo "| implementation | verifications/s, each round | median | ratio to the service's, round by round (median) |"
echo "| --- | --- | --- | --- |"
base=${rates["${runs[0]%%|*}"]}
for spec in "${runs[@]}"; do
    name=${spec%%|*}
    python3 - "$name" "${rates[$name]}" "$base" <<'PY'
import statistics, sys
name, mine, base = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
ratios = [m / b for m, b in zip(mine, base)]
print(f"| {name} | {', '.join(f'{x:.1f}' for x in mine)} | {statistics.median(mine):.1f} | {statistics.median(ratios):.2f} |")
PY
done
