// Passkeys in Chromium, with a virtual authenticator reached through the
// Chrome DevTools Protocol (WebAuthn.addVirtualAuthenticator): adding one
// on My account, signing out and in with it, signing in with it while the
// password is locked, a helpdesk member using one as the second factor,
// and using it again as the proof a password reset of such an account
// asks for. axe-core checks the new pages. (A ceremony started on one
// node and finished on another is tested in tests/api/passkeys.rs, on
// PostgreSQL with two nodes.)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  PEOPLE,
  GOOD_PASSWORD,
  startServer,
  launchBrowser,
  openPage,
  assertPath,
  checkA11y,
  clickAndLoad,
  setPasswordFor,
  submitLogin,
  submitReset,
  submitRecovery,
  waitForResetEmail,
  heading,
  totpCode,
  grantRole,
} from '../lib/helpers.mjs';

// A set-up link's password must differ from the recovery email's.
const SET_UP_PASSWORD = 'lighthouse saffron meadow';

let server;
let browser;
const seen = new Set();

before(async () => {
  // The relying party id is the public URL's host: browsers refuse an address.
  server = await startServer({ host: 'localhost', extraEnv: { GATEHOUSE_PASSKEYS: 'true' } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A virtual platform authenticator that keeps passkeys and verifies its user. */
async function virtualAuthenticator(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
    },
  });
  return cdp;
}

/** Adds a passkey named `name` from the passkeys page. */
async function addPasskey(page, name) {
  await page.goto(`${server.origin}/account/passkeys`);
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByRole('button', { name: 'Add a passkey' }).click();
  await page.getByText(`Your passkey “${name}” has been added`).waitFor();
  assertPath(page, server, '/account/passkeys');
}

/** Signs out with the header's button. */
async function signOut(page) {
  await clickAndLoad(page, page.getByRole('button', { name: /Log out|Sign out/ }).first());
}

/** "Sign in with a passkey" on the login page, then waits for `path`. */
async function passkeySignIn(page, path) {
  await page.goto(`${server.origin}/login`);
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await page.waitForURL((u) => new URL(u).pathname === path);
}

test('a person adds a passkey, signs out, and signs in with it, also while their password is locked', { timeout: 90_000 }, async () => {
  const { context, page, assertClean } = await openPage(browser, server, { javaScriptEnabled: true });
  try {
    await virtualAuthenticator(page);
    const username = await setPasswordFor(page, server, PEOPLE.passkey, seen);
    await submitLogin(page, username, GOOD_PASSWORD);
    assertPath(page, server, '/account');
    await clickAndLoad(page, page.getByRole('link', { name: 'Passkeys' }));
    assert.equal(await heading(page), 'Passkeys');
    await checkA11y(page, 'passkeys, none yet');
    await addPasskey(page, 'work laptop');
    assert.ok((await page.getByRole('table').innerText()).includes('work laptop'));
    await checkA11y(page, 'passkeys, one added');

    await signOut(page);
    await page.goto(`${server.origin}/login`);
    await checkA11y(page, 'the login page with passkeys');
    await passkeySignIn(page, '/account');
    assert.equal(await heading(page), 'My account');

    // Three wrong passwords lock the password; the passkey still works.
    await signOut(page);
    for (let i = 0; i < 3; i++) {
      await page.goto(`${server.origin}/login`);
      await submitLogin(page, username, 'not the password at all');
    }
    assert.ok((await page.getByRole('main').innerText()).includes('locked until'));
    await passkeySignIn(page, '/account');
    assert.equal(await heading(page), 'My account');
    assertClean();
  } finally {
    await context.close();
  }
});

test('a helpdesk member uses a passkey as the second factor', { timeout: 90_000 }, async () => {
  const { context, page, assertClean } = await openPage(browser, server, { javaScriptEnabled: true });
  try {
    await virtualAuthenticator(page);
    const username = await setPasswordFor(page, server, PEOPLE.passkeyHelpdesk, seen);
    const link = await grantRole(server, username, 'helpdesk');
    await page.goto(link);
    await submitReset(page, username, SET_UP_PASSWORD);
    assertPath(page, server, '/login');
    await submitLogin(page, username, SET_UP_PASSWORD);
    assertPath(page, server, '/console/second-factor');
    const key = (await page.locator('.gatehouse-key').innerText()).trim();
    await page.getByLabel('Code', { exact: true }).fill(totpCode(key));
    await clickAndLoad(page, page.getByRole('button', { name: 'Continue' }));
    await clickAndLoad(page, page.getByRole('button', { name: /I have saved my codes/ }));
    assertPath(page, server, '/console');
    await addPasskey(page, 'security key');

    // A new session: the password, then the passkey instead of the code.
    await signOut(page);
    await page.goto(`${server.origin}/login`);
    await submitLogin(page, username, SET_UP_PASSWORD);
    assertPath(page, server, '/console/second-factor');
    await checkA11y(page, 'the code page offering a passkey');
    await page.getByRole('button', { name: 'Use a passkey' }).click();
    await page.waitForURL((u) => new URL(u).pathname === '/console');
    assert.equal(await heading(page), 'Helpdesk console');
    assertClean();
  } finally {
    await context.close();
  }
});

test('a helpdesk member whose second factor is a passkey uses it before a password reset', { timeout: 90_000 }, async () => {
  const { context, page, assertClean } = await openPage(browser, server, { javaScriptEnabled: true });
  try {
    await virtualAuthenticator(page);
    const username = await setPasswordFor(page, server, PEOPLE.passkeyReset, seen);
    const link = await grantRole(server, username, 'helpdesk');
    await page.goto(link);
    await submitReset(page, username, SET_UP_PASSWORD);
    await submitLogin(page, username, SET_UP_PASSWORD);
    assertPath(page, server, '/console/second-factor');
    // A passkey instead of the app, inside the set-up link's window.
    await addPasskey(page, 'security key');
    await signOut(page);

    await page.goto(`${server.origin}/recover`);
    await submitRecovery(page, PEOPLE.passkeyReset);
    const email = await waitForResetEmail(server, PEOPLE.passkeyReset.email, seen);
    await page.goto(email.link);
    assertPath(page, server, '/reset');
    assert.equal(await page.locator('#password').count(), 0, 'no password form before the passkey');
    await checkA11y(page, 'the reset page asking for a passkey');
    await page.getByRole('button', { name: 'Use your passkey' }).click();
    await page.locator('#password').waitFor();
    assertPath(page, server, '/reset');
    await submitReset(page, username, 'harbour velvet compass');
    assertPath(page, server, '/login');
    await submitLogin(page, username, 'harbour velvet compass');
    assertPath(page, server, '/console/second-factor');
    assertClean();
  } finally {
    await context.close();
  }
});

test('without JavaScript the pages say passkeys need it and the password still works', { timeout: 60_000 }, async () => {
  const { context, page } = await openPage(browser, server, { javaScriptEnabled: false });
  try {
    await page.goto(`${server.origin}/login`);
    assert.ok((await page.getByRole('main').innerText()).includes('Passkeys need JavaScript'));
    assert.ok(await page.getByRole('button', { name: 'Sign in with a passkey' }).isDisabled());
    await checkA11y(page, 'the login page without JavaScript');
  } finally {
    await context.close();
  }
});
