// Shared helpers for the browser tests: a fresh Gatehouse server per test
// file, Chromium through playwright-core, the outbox reader and axe-core.

import { spawn, execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const execFileP = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..', '..');

export const GATEHOUSE_BIN =
  process.env.GATEHOUSE_BIN || path.join(repoRoot, 'target', 'debug', 'gatehouse');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export const EMPLOYER = '999 Demo Hospital NHS Trust';
export const GOOD_PASSWORD = 'kettle violin marmalade';

/** Both ways every flow runs. */
export const JS_MODES = [
  { javaScriptEnabled: true, name: 'JavaScript on' },
  { javaScriptEnabled: false, name: 'JavaScript off' },
];

/** People for the staff file; each test uses its own, so rate limits and
 * locks in one test cannot touch another. */
export const PEOPLE = {
  first: { first: 'John', last: 'Smith', dob: [31, 3, 1980], email: 'john.smith@nhs.net' },
  firstNoJs: { first: 'Aisha', last: 'Begum', dob: [2, 11, 1991], email: 'aisha.begum@nhs.net' },
  lock: { first: 'Peter', last: 'Jones', dob: [14, 6, 1975], email: 'peter.jones@nhs.net' },
  lockNoJs: { first: 'Mary', last: 'Evans', dob: [9, 1, 1988], email: 'mary.evans@nhs.net' },
  expire: { first: 'David', last: 'Brown', dob: [23, 8, 1969], email: 'david.brown@nhs.net' },
  expireNoJs: { first: 'Ruth', last: 'Green', dob: [5, 12, 1999], email: 'ruth.green@nhs.net' },
  helpdesk: { first: 'Grace', last: 'Hopper', dob: [9, 12, 1986], email: 'grace.hopper@nhs.net', role: 'helpdesk' },
  helpdeskNoJs: { first: 'Alan', last: 'Turing', dob: [23, 6, 1982], email: 'alan.turing@nhs.net', role: 'admin' },
  apache: { first: 'Ada', last: 'Lovelace', dob: [10, 12, 1985], email: 'ada.lovelace@nhs.net' },
  apacheNoJs: { first: 'Mei', last: 'Chen', dob: [17, 4, 1993], email: 'mei.chen@nhs.net' },
  nodeRp: { first: 'Tom', last: 'Okafor', dob: [28, 2, 1978], email: 'tom.okafor@nhs.net' },
  nodeRpNoJs: { first: 'Sara', last: 'Novak', dob: [7, 7, 1990], email: 'sara.novak@nhs.net' },
  apacheSignOut: { first: 'Ian', last: 'Murray', dob: [3, 3, 1983], email: 'ian.murray@nhs.net' },
  nodeRpSignOut: { first: 'Lena', last: 'Khan', dob: [19, 9, 1995], email: 'lena.khan@nhs.net' },
  passkey: { first: 'Nia', last: 'Roberts', dob: [4, 5, 1987], email: 'nia.roberts@nhs.net' },
  passkeyHelpdesk: { first: 'Owen', last: 'Price', dob: [12, 10, 1979], email: 'owen.price@nhs.net', role: 'helpdesk' },
  passkeyReset: { first: 'Rhys', last: 'Davies', dob: [21, 1, 1984], email: 'rhys.davies@nhs.net', role: 'helpdesk' },
};

const pad = (n) => String(n).padStart(2, '0');

function staffCsv() {
  const rows = ['employer,username,first_name,last_name,date_of_birth,email,role'];
  for (const p of Object.values(PEOPLE)) {
    const [d, m, y] = p.dob;
    rows.push(`${EMPLOYER},,${p.first},${p.last},${y}-${pad(m)}-${pad(d)},${p.email},${p.role ?? 'staff'}`);
  }
  return rows.join('\n') + '\n';
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts a fresh Gatehouse: its own temporary folder, database and outbox,
 * staff imported, `gatehouse serve` running and healthy.
 */
export async function startServer({ extraEnv = {}, host = '127.0.0.1' } = {}) {
  const dir = await mkdtemp(path.join(tmpdir(), 'gatehouse-browser-'));
  const port = await freePort();
  // `host` names the public origin (passkeys need a domain, so their
  // tests use localhost); the server listens on 127.0.0.1 either way.
  const origin = `http://${host}:${port}`;
  const direct = `http://127.0.0.1:${port}`;
  const outbox = path.join(dir, 'outbox');
  // Only the settings named here: none inherited from the environment.
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('GATEHOUSE_')),
  );
  const env = {
    ...inherited,
    GATEHOUSE_LISTEN: `127.0.0.1:${port}`,
    GATEHOUSE_PUBLIC_URL: origin,
    GATEHOUSE_DATABASE_URL: `sqlite://${path.join(dir, 'gatehouse.db')}`,
    GATEHOUSE_MAIL_URL: `file://${outbox}`,
    ...extraEnv,
  };
  if (!existsSync(GATEHOUSE_BIN)) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`no gatehouse binary at ${GATEHOUSE_BIN}: run "cargo build --bin gatehouse" or set GATEHOUSE_BIN`);
  }
  const csv = path.join(dir, 'staff.csv');
  await writeFile(csv, staffCsv());
  try {
    await execFileP(GATEHOUSE_BIN, ['import', csv], { env, timeout: 30_000 });
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(
      `gatehouse import failed (GATEHOUSE_BIN=${GATEHOUSE_BIN}; build it with ` +
        `"cargo build --bin gatehouse"): ${e.message}\n${e.stderr ?? ''}`,
    );
  }

  let log = '';
  const child = spawn(GATEHOUSE_BIN, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  let exited = null;
  // Never leave the server behind, even if the test process dies.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.on('exit', (code, signal) => {
    exited = { code, signal };
    process.removeListener('exit', killOnExit);
  });

  const stop = async () => {
    if (exited === null) {
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await done;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exited !== null) {
      await stop();
      throw new Error(`gatehouse serve exited early (${JSON.stringify(exited)}):\n${log}`);
    }
    try {
      const res = await fetch(`${direct}/healthz`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`gatehouse serve did not become healthy in 20 s:\n${log}`);
    }
    await sleep(100);
  }
  return { origin, outbox, dir, env, stop, log: () => log };
}

/**
 * Makes `username` a helpdesk member or admin as the operator does
 * (`gatehouse admin grant`), and returns the one-time set-up link the
 * operator is given to hand over.
 */
export async function grantRole(server, username, role) {
  const { stdout } = await execFileP(
    GATEHOUSE_BIN,
    ['admin', '--json', 'grant', username, role],
    { env: server.env, timeout: 30_000 },
  );
  const answer = JSON.parse(stdout);
  assert.ok(answer.set_up?.link, `a set-up link: ${stdout}`);
  return answer.set_up.link;
}

/**
 * Registers an application (an OpenID Connect client) as the operator
 * does (`gatehouse admin client add`), while the server runs. Returns the
 * command's answer: `client_id`, and `client_secret` unless `public`.
 */
export async function registerClient(server, name, { redirectUri, postLogoutRedirectUri, backchannelLogoutUri, public: isPublic = false }) {
  const args = ['admin', '--json', 'client', 'add', name, '--redirect-uri', redirectUri];
  if (isPublic) args.push('--public');
  if (postLogoutRedirectUri) args.push('--post-logout-redirect-uri', postLogoutRedirectUri);
  if (backchannelLogoutUri) args.push('--backchannel-logout-uri', backchannelLogoutUri);
  const { stdout } = await execFileP(GATEHOUSE_BIN, args, { env: server.env, timeout: 30_000 });
  const answer = JSON.parse(stdout);
  assert.ok(answer.client_id, `a client_id: ${stdout}`);
  assert.ok(isPublic || answer.client_secret, `a client_secret: ${stdout}`);
  return answer;
}

export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: install it (apt-get install -y chromium) or set CHROMIUM`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Pages opened with JavaScript disabled (see checkA11y). */
const scriptsDisabled = new WeakMap();

/**
 * A new browser context and page. Every request made by any page of the
 * context is recorded; `assertClean()` asserts that each went to the
 * server's own origin (or one of `otherOrigins`: the applications a
 * person signs in to), and that no page raised an uncaught error or a
 * content security policy violation. The caller closes `context`.
 */
export async function openPage(browser, server, { javaScriptEnabled, otherOrigins = [] }) {
  const context = await browser.newContext({ javaScriptEnabled });
  context.setDefaultTimeout(10_000);
  context.setDefaultNavigationTimeout(15_000);
  const requests = [];
  const problems = [];
  context.on('request', (req) => requests.push(req.url()));
  const page = await context.newPage();
  scriptsDisabled.set(page, !javaScriptEnabled);
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content Security Policy|Refused to/i.test(msg.text())) {
      problems.push(`console: ${msg.text()}`);
    }
  });
  const assertClean = () => {
    assertSameOrigin(requests, server.origin, otherOrigins);
    assert.deepEqual(problems, [], 'no script errors or content security policy violations');
  };
  return { context, page, requests, assertClean };
}

export function assertSameOrigin(requests, origin, otherOrigins = []) {
  assert.ok(requests.length > 0, 'some requests were recorded');
  const allowed = [origin, ...otherOrigins];
  const foreign = requests.filter((u) => !allowed.some((o) => u.startsWith(o + '/')));
  assert.deepEqual(foreign, [], `every request goes to ${allowed.join(' or ')}`);
}

/** Asserts the page's path (and that it is on the server's origin). */
export function assertPath(page, server, expected) {
  const url = new URL(page.url());
  assert.equal(url.origin, server.origin, `page is on ${server.origin}: ${page.url()}`);
  assert.equal(url.pathname, expected, `page path: ${page.url()}`);
}

// ---- axe-core ----------------------------------------------------------

const axeSource = readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'];

/**
 * Runs axe-core on the page as it is now and fails on any serious or
 * critical violation. The source is injected through page.evaluate (CDP),
 * which the site's content security policy does not govern, and which also
 * works with JavaScript disabled for the page.
 *
 * With JavaScript disabled, Chromium runs code evaluated over CDP and its
 * promise reactions, but no timers and no queueMicrotask or
 * MutationObserver callbacks, and axe waits on those between rules. So in
 * such a page, before axe is loaded, short timers and queueMicrotask are
 * replaced by promise reactions (long timers, which axe uses only as
 * fail-safes, never fire). No page script can run there to notice, and the
 * DOM that axe checks is the one the page has without JavaScript.
 */
export async function checkA11y(page, label) {
  const source = await axeSource;
  await page.waitForLoadState('load');
  const hasAxe = await page.evaluate(() => typeof window.axe !== 'undefined');
  if (!hasAxe) {
    if (scriptsDisabled.get(page) === true) {
      await page.evaluate(() => {
        const later = (fn, args) => Promise.resolve().then(() => fn(...args));
        window.setTimeout = (fn, ms, ...args) => {
          if (!(ms > 10)) later(fn, args);
          return 0;
        };
        window.clearTimeout = () => {};
        window.queueMicrotask = (fn) => void later(fn, []);
      });
    }
    await page.evaluate(source);
  }
  const results = await page.evaluate(
    (tags) => window.axe.run(document, { runOnly: { type: 'tag', values: tags } }),
    AXE_TAGS,
  );
  const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (process.env.AXE_REPORT_ALL) {
    for (const v of results.violations) {
      if (bad.includes(v)) continue;
      console.log(`# axe (${v.impact}, not failing) on ${label}: ${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    }
  }
  if (bad.length > 0) {
    const text = bad
      .map((v) => {
        const nodes = v.nodes
          .map((n) => `      at ${n.target.join(' ')}\n        ${n.html}\n        ${n.failureSummary?.replace(/\n/g, '\n        ')}`)
          .join('\n');
        return `  [${v.impact}] ${v.id}: ${v.help}\n    ${v.helpUrl}\n${nodes}`;
      })
      .join('\n');
    assert.fail(`axe found ${bad.length} serious or critical violation(s) on ${label} (${page.url()}):\n${text}`);
  }
  return results;
}

// ---- the outbox --------------------------------------------------------

/** Decodes quoted-printable (soft breaks and =XX escapes) as UTF-8. */
export function decodeQuotedPrintable(text) {
  const joined = text.replace(/=\r?\n/g, '');
  const bytes = [];
  for (let i = 0; i < joined.length; i++) {
    const c = joined[i];
    if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(joined.slice(i + 1, i + 3))) {
      bytes.push(parseInt(joined.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(c, 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** An email's header fields (unfolded), by lower-case name. */
function parseHeaders(raw) {
  const block = raw.split(/\r?\n\r?\n/, 1)[0].replace(/\r?\n[ \t]+/g, ' ');
  const fields = {};
  for (const line of block.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) fields[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return fields;
}

export const RECOVERY_SUBJECT = 'Your Electronic Staff Record username and password reset';
export const PASSWORD_SET_SUBJECT = 'Your Electronic Staff Record password has been set';

/**
 * Waits (up to `timeoutMs`) for a new email to `to` with this `subject` in
 * the outbox: one not in `seen` (a Set of file names, updated), whole, and
 * for which `complete(text)` is true. Returns its file name and decoded text.
 */
export async function waitForEmail(server, { to, subject, seen, complete = () => true, timeoutMs = 10_000 }) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let names = [];
    try {
      names = (await readdir(server.outbox)).filter((n) => n.endsWith('.eml'));
    } catch {
      // the folder does not exist until the first email
    }
    for (const name of names) {
      if (seen.has(name)) continue;
      const raw = await readFile(path.join(server.outbox, name), 'utf8');
      const headers = parseHeaders(raw);
      if (!(headers.to ?? '').toLowerCase().includes(to.toLowerCase())) continue;
      if (headers.subject !== subject) continue;
      // The file transport writes in place: a multipart email is whole once
      // its closing boundary is there.
      if (/^multipart\//i.test(headers['content-type'] ?? '') && !raw.trimEnd().endsWith('--')) continue;
      const text = decodeQuotedPrintable(raw);
      if (!complete(text)) continue;
      seen.add(name);
      return { file: name, text };
    }
    if (Date.now() > deadline) {
      throw new Error(
        `no new email "${subject}" to ${to} in ${server.outbox} within ${timeoutMs} ms ` +
          `(files: ${names.join(', ') || 'none'})\n${server.log()}`,
      );
    }
    await sleep(100);
  }
}

function resetLinkPattern(server) {
  return new RegExp(`${escapeRegExp(server.origin)}/reset/[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])`);
}

const USERNAME_IN_EMAIL = /Username:\s*(?:<strong>)?([A-Z0-9]+)/;

/** A new recovery email with a reset link: also returns its link and username. */
export async function waitForResetEmail(server, to, seen, timeoutMs = 10_000) {
  const linkRe = resetLinkPattern(server);
  const email = await waitForEmail(server, {
    to,
    subject: RECOVERY_SUBJECT,
    seen,
    complete: (text) => linkRe.test(text) && USERNAME_IN_EMAIL.test(text),
    timeoutMs,
  });
  return { ...email, link: email.text.match(linkRe)[0], username: email.text.match(USERNAME_IN_EMAIL)[1] };
}

/** Whether an email's text holds a reset link to this server. */
export function hasResetLink(server, text) {
  return text.includes(`${server.origin}/reset/`);
}

// ---- steps shared by the flows -----------------------------------------

/** Clicks something that loads a new page, and waits until it has loaded. */
export async function clickAndLoad(page, locator) {
  const loaded = page.waitForEvent('load');
  await locator.click();
  await loaded;
}

/** On /recover: fills in the form for `person` and submits. */
export async function submitRecovery(page, person) {
  await page.getByLabel('Email', { exact: true }).fill(person.email);
  await page.getByLabel('Day').fill(String(person.dob[0]));
  await page.getByLabel('Month').fill(String(person.dob[1]));
  await page.getByLabel('Year').fill(String(person.dob[2]));
  await clickAndLoad(page, page.getByRole('button', { name: 'Submit' }));
}

/** On /reset: fills in username and both passwords and submits. */
export async function submitReset(page, username, password, confirm = password) {
  await page.locator('#username').fill(username);
  await page.locator('#password').fill(password);
  await page.locator('#confirm-password').fill(confirm);
  await clickAndLoad(page, page.getByRole('button', { name: 'Submit' }));
}

/** On /login: fills in and submits. */
export async function submitLogin(page, username, password) {
  await page.locator('#username').fill(username);
  await page.locator('#password').fill(password);
  await clickAndLoad(page, page.getByRole('button', { name: 'Log in' }));
}

/** The error summary's text, asserting it is there. */
export async function errorSummary(page) {
  const summary = page.locator('.nhsuk-error-summary');
  assert.equal(await summary.count(), 1, 'an error summary is shown');
  assert.equal((await summary.locator('h2').innerText()).trim(), 'There is a problem');
  // Each error links to a field that is on the page.
  const targets = await summary.locator('a').evaluateAll((links) =>
    links.map((a) => {
      const href = a.getAttribute('href') ?? '';
      return { href, found: href.startsWith('#') && document.getElementById(href.slice(1)) !== null };
    }),
  );
  assert.ok(targets.length > 0, 'the error summary lists at least one error');
  for (const t of targets) assert.ok(t.found, `error summary link ${t.href} goes to a field on the page`);
  return (await summary.innerText()).replace(/\s+/g, ' ').trim();
}

export async function heading(page) {
  return (await page.locator('h1').innerText()).trim();
}

/**
 * Gives `person` a password by the whole recovery flow, straight to
 * /recover (no checks beyond those needed to go on). Returns the username.
 */
export async function setPasswordFor(page, server, person, seen, password = GOOD_PASSWORD) {
  await page.goto(`${server.origin}/recover`);
  await submitRecovery(page, person);
  assertPath(page, server, '/recover/confirmation');
  const email = await waitForResetEmail(server, person.email, seen);
  await page.goto(email.link);
  assertPath(page, server, '/reset');
  await submitReset(page, email.username, password);
  assertPath(page, server, '/login');
  return email.username;
}

/** RFC 4648 base32, as authenticator apps read the manual key. */
function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/[\s=]/g, '').toUpperCase()) {
    const v = alphabet.indexOf(c);
    if (v < 0) throw new Error(`not base32: ${c}`);
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 255);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** The 6-digit TOTP code (RFC 6238, SHA-1, 30 s) an authenticator app would show. */
export function totpCode(key, unixSeconds = Date.now() / 1000) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unixSeconds / 30)));
  const mac = createHmac('sha1', base32Decode(key)).update(counter).digest();
  const offset = mac[mac.length - 1] & 15;
  const n =
    (((mac[offset] & 127) << 24) | (mac[offset + 1] << 16) | (mac[offset + 2] << 8) | mac[offset + 3]) %
    1_000_000;
  return String(n).padStart(6, '0');
}
