// Applications nobody here wrote sign people in through Gatehouse, in
// Chromium: Apache httpd with mod_auth_openidc, and a Node application on
// openid-client. For each, with JavaScript on and off:
//
// - opening the application lands on Gatehouse's login page ("Log in to
//   continue to NAME"); signing in lands back on the application, signed
//   in, showing the person's username, email and name from the ID token;
// - signing out at Gatehouse (its Log out button) ends the application's
//   session by back-channel logout: the application's own cookie is still
//   in the browser, yet it sends the person back to Gatehouse's login;
// - signing in again, then a password reset through the recovery email
//   (on another device) ends the application's session too.
//
// And, with JavaScript on, the application's own sign-out (RP-Initiated
// Logout) signs the person out of Gatehouse and comes back.
//
// The applications are on http://localhost:PORT, another site than
// Gatehouse's http://127.0.0.1:PORT, as in any deployment: Gatehouse's
// Clear-Site-Data on sign-out cannot reach their cookies, so only the
// back-channel logout can end their sessions.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  JS_MODES,
  PEOPLE,
  GOOD_PASSWORD,
  startServer,
  launchBrowser,
  openPage,
  assertPath,
  checkA11y,
  clickAndLoad,
  submitLogin,
  setPasswordFor,
  registerClient,
  freePort,
  sleep,
} from '../lib/helpers.mjs';
import { startApache } from '../lib/apache.mjs';
import { startNodeRp } from '../lib/node-rp.mjs';

/** How long an application may take to hear of a sign-out. */
const LOGOUT_WITHIN_MS = 10_000;
const NEW_PASSWORD = 'lantern quarry teapot';

let server;
let browser;
let apache;
let nodeRp;
const nodeRpLog = [];
const seen = new Set();

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  apache = await startApache({
    gatehouse: server,
    register: (uris) => registerClient(server, 'Rota', uris),
  });
  const port = await freePort();
  const origin = `http://localhost:${port}`;
  const client = await registerClient(server, 'Timesheets', {
    redirectUri: `${origin}/callback`,
    postLogoutRedirectUri: `${origin}/signed-out`,
    // Gatehouse posts from the server: the loopback address itself.
    backchannelLogoutUri: `http://127.0.0.1:${port}/backchannel-logout`,
  });
  nodeRp = await startNodeRp({
    issuer: server.origin,
    clientId: client.client_id,
    clientSecret: client.client_secret,
    origin,
    port,
    name: 'Timesheets',
    log: (line) => nodeRpLog.push(line),
  });
  nodeRp.origin = origin;
});

after(async () => {
  await browser?.close();
  await nodeRp?.close();
  await apache?.stop();
  await server?.stop();
});

/** Each application under test, as the tests need to see it. */
const APPLICATIONS = [
  {
    name: 'Rota',
    what: 'Apache with mod_auth_openidc',
    people: [PEOPLE.apache, PEOPLE.apacheNoJs],
    signOutPerson: PEOPLE.apacheSignOut,
    // mod_auth_openidc's logout: its redirect URI with ?logout=, where to go after.
    signOut: async (page) => {
      await page.goto(`${apache.origin}/protected/redirect_uri?logout=${encodeURIComponent(`${apache.origin}/`)}`);
    },
    signedOutUrl: () => `${apache.origin}/`,
    origin: () => apache.origin,
    url: () => apache.protectedUrl,
    cookie: 'mod_auth_openidc_session',
    // Logout tokens accepted: Apache answered the back-channel POST 200.
    logoutsAccepted: async () => (await apache.backchannelLogouts()).filter((s) => s === 200).length,
    diagnostics: async () => `Apache's log:\n${await apache.log()}`,
  },
  {
    name: 'Timesheets',
    what: 'Node with openid-client',
    people: [PEOPLE.nodeRp, PEOPLE.nodeRpNoJs],
    signOutPerson: PEOPLE.nodeRpSignOut,
    signOut: async (page) => {
      await clickAndLoad(page, page.getByRole('link', { name: 'Sign out' }));
    },
    signedOutUrl: () => `${nodeRp.origin}/signed-out`,
    origin: () => nodeRp.origin,
    url: () => nodeRp.url,
    cookie: 'rp_session',
    // Logout tokens accepted that ended a session of the application.
    logoutsAccepted: async () => nodeRp.logouts.filter((l) => l.ended > 0).length,
    diagnostics: async () => `the Node application's log:\n${nodeRpLog.join('\n')}`,
  },
];

/** What the browser shows, for a failure message. */
async function where(page) {
  let text = '';
  try {
    text = (await page.locator('body').innerText()).replace(/\s+/g, ' ').slice(0, 600);
  } catch {
    // no body
  }
  return `${page.url()}: ${text}`;
}

/** Opens the application; asserts that Gatehouse asks the person to log in for it. */
async function openAppExpectingLogin(page, app, label) {
  const response = await page.goto(app.url());
  assertPath(page, server, '/login');
  // The login form may lead to the application: the redirect after it goes there.
  const csp = response.headers()['content-security-policy'] ?? '';
  assert.ok(csp.endsWith(`form-action 'self' ${app.origin()}`), `${label}: the login page's CSP allows the application's origin in form-action: ${csp}`);
  const main = await page.getByRole('main').innerText();
  assert.ok(main.includes(`Log in to continue to ${app.name}.`), `${label}: the login page names the application: ${main}`);
}

/** Asserts the page is the application, signed in as `person`. */
async function assertSignedIn(page, app, person, username, label) {
  const url = new URL(page.url());
  assert.equal(
    url.origin,
    app.origin(),
    `${label}: after logging in, Chromium should be on the application (${app.origin()}), ` +
      `but is at ${await where(page)}\n${await app.diagnostics()}`,
  );
  assert.equal(url.href, app.url(), `${label}: back at the page the person opened`);
  const text = async (id) => (await page.locator(`#${id}`).innerText()).trim();
  assert.equal(await text('username'), username, `${label}: username claim`);
  assert.equal(await text('email'), person.email, `${label}: email claim`);
  assert.equal(await text('name'), `${person.first} ${person.last}`, `${label}: name claim`);
}

/** The application's session cookie in this browser context. */
async function appCookie(context, app) {
  const cookies = await context.cookies(app.origin());
  return cookies.find((c) => c.name === app.cookie)?.value ?? null;
}

/**
 * Reloads the application until it sends the person to Gatehouse's login
 * (its session ended), failing after LOGOUT_WITHIN_MS. Returns how long
 * it took.
 */
async function waitUntilAppSignsOut(page, app, label) {
  const started = Date.now();
  for (;;) {
    await page.goto(app.url());
    const url = new URL(page.url());
    if (url.origin === server.origin && url.pathname === '/login') return Date.now() - started;
    if (Date.now() - started > LOGOUT_WITHIN_MS) {
      assert.fail(
        `${label}: ${app.name} still signed in ${LOGOUT_WITHIN_MS} ms after the Gatehouse session ended ` +
          `(at ${await where(page)})\n${await app.diagnostics()}\nGatehouse's log:\n${server.log()}`,
      );
    }
    await sleep(250);
  }
}

/** Waits (up to 2 s) until the application has accepted more than `count` logout tokens. */
async function assertLogoutTokenTaken(app, count, label) {
  const deadline = Date.now() + 2_000;
  while ((await app.logoutsAccepted()) <= count) {
    if (Date.now() > deadline) {
      assert.fail(`${label}: ${app.name} accepted no back-channel logout token\n${await app.diagnostics()}`);
    }
    await sleep(50);
  }
}

async function logOutAtGatehouse(page, js) {
  await page.goto(`${server.origin}/account`);
  assertPath(page, server, '/account');
  // The header button with JavaScript on, the page's own button without.
  const logOut = js
    ? page.getByRole('navigation', { name: 'Account' }).getByRole('button', { name: 'Log out' })
    : page.getByRole('main').getByRole('button', { name: 'Sign out' });
  await clickAndLoad(page, logOut);
  assertPath(page, server, '/logged-out');
}

for (const app of APPLICATIONS) {
  for (const [i, mode] of JS_MODES.entries()) {
    const js = mode.javaScriptEnabled;
    const person = app.people[i];

    test(`${app.name} (${app.what}): sign in through Gatehouse, back-channel logout on sign-out and on password reset (${mode.name})`, { timeout: 90_000 }, async () => {
      const { context, page, assertClean } = await openPage(browser, server, { ...mode, otherOrigins: [app.origin()] });
      let other;
      try {
        const username = await setPasswordFor(page, server, person, seen);

        // The application sends the person to Gatehouse, which names it.
        await openAppExpectingLogin(page, app, 'first visit');
        await checkA11y(page, `the login page for ${app.name}`);

        // Signing in sends the person back, signed in, with the claims.
        await submitLogin(page, username, GOOD_PASSWORD);
        await assertSignedIn(page, app, person, username, 'after signing in');
        const firstCookie = await appCookie(context, app);
        assert.ok(firstCookie, `${app.name} set its session cookie ${app.cookie}`);
        // Still signed in on a second visit (its own session, no new sign-in).
        await page.goto(app.url());
        await assertSignedIn(page, app, person, username, 'second visit');

        // Signing out at Gatehouse ends the application's session.
        const logoutsBefore = await app.logoutsAccepted();
        await logOutAtGatehouse(page, js);
        assert.equal(await appCookie(context, app), firstCookie, `sign-out at Gatehouse leaves ${app.name}'s cookie alone`);
        const afterLogout = await waitUntilAppSignsOut(page, app, 'after signing out at Gatehouse');
        console.log(`# ${app.name} (${mode.name}): signed out by back-channel logout ${afterLogout} ms after Gatehouse's sign-out`);
        await assertLogoutTokenTaken(app, logoutsBefore, 'after signing out at Gatehouse');
        assert.ok((await page.getByRole('main').innerText()).includes(`Log in to continue to ${app.name}.`));

        // Sign in again from there.
        await submitLogin(page, username, GOOD_PASSWORD);
        await assertSignedIn(page, app, person, username, 'after signing in again');
        const secondCookie = await appCookie(context, app);
        assert.ok(secondCookie, `${app.name} set its session cookie again`);

        // The password is reset through the recovery email, on another
        // device: every session of the person ends, and so does the
        // application's.
        const logoutsBeforeReset = await app.logoutsAccepted();
        other = await openPage(browser, server, mode);
        await setPasswordFor(other.page, server, person, seen, NEW_PASSWORD);
        assert.equal(await appCookie(context, app), secondCookie, `the reset leaves ${app.name}'s cookie alone`);
        const afterReset = await waitUntilAppSignsOut(page, app, 'after the password reset');
        console.log(`# ${app.name} (${mode.name}): signed out by back-channel logout ${afterReset} ms after the password reset`);
        await assertLogoutTokenTaken(app, logoutsBeforeReset, 'after the password reset');

        // The new password signs the person in to the application.
        await submitLogin(page, username, NEW_PASSWORD);
        await assertSignedIn(page, app, person, username, 'after the reset');

        assertClean();
        other.assertClean();
      } finally {
        await other?.context.close();
        await context.close();
      }
    });
  }
}

// The application's own sign-out (RP-Initiated Logout 1.0): the
// application sends the person to Gatehouse's end-session endpoint with
// the ID token as id_token_hint; Gatehouse signs them out at once (the hint
// names this very session) and sends them back to the address the
// application registered.
for (const app of APPLICATIONS) {
  const mode = JS_MODES[0];
  test(`${app.name} (${app.what}): its own sign-out signs the person out of Gatehouse too (${mode.name})`, { timeout: 60_000 }, async () => {
    const { context, page, assertClean } = await openPage(browser, server, { ...mode, otherOrigins: [app.origin()] });
    try {
      const person = app.signOutPerson;
      const username = await setPasswordFor(page, server, person, seen);
      await openAppExpectingLogin(page, app, 'first visit');
      await submitLogin(page, username, GOOD_PASSWORD);
      await assertSignedIn(page, app, person, username, 'after signing in');

      await app.signOut(page);
      assert.equal(
        page.url(),
        app.signedOutUrl(),
        `back at the application's signed-out page after Gatehouse's end-session endpoint: ${await where(page)}\n${await app.diagnostics()}`,
      );

      // Signed out of Gatehouse: My account asks for a login.
      await page.goto(`${server.origin}/account`);
      assertPath(page, server, '/login');
      // And of the application.
      await openAppExpectingLogin(page, app, 'after signing out');
      assertClean();
    } finally {
      await context.close();
    }
  });
}
