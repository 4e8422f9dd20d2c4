// The helpdesk console, as a new helpdesk member meets it: first-time
// access, setting up an authenticator app (the QR code's manual key, typed
// as the app would), the recovery codes, then finding a person and
// answering "did the email go out?". axe-core checks every console page.
// Runs with JavaScript on and off.

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
  setPasswordFor,
  submitLogin,
  errorSummary,
  heading,
  totpCode,
} from '../lib/helpers.mjs';

let server;
let browser;
const seen = new Set();

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

for (const mode of JS_MODES) {
  const person = mode.javaScriptEnabled ? PEOPLE.helpdesk : PEOPLE.helpdeskNoJs;

  test(`a helpdesk member sets up the second factor and uses the console (${mode.name})`, { timeout: 60_000 }, async () => {
    const { context, page, assertClean } = await openPage(browser, server, mode);
    try {
      const username = await setPasswordFor(page, server, person, seen);
      await submitLogin(page, username, GOOD_PASSWORD);
      assertPath(page, server, '/console/second-factor');
      assert.equal(await heading(page), 'Set up your authenticator app');
      assert.equal(await page.getByRole('img', { name: /QR code/ }).count(), 1, 'the QR code is an image with a name');
      await checkA11y(page, 'setting up the authenticator app');

      // A wrong code: an error in the design system's pattern.
      await page.getByLabel('Code', { exact: true }).fill('000000');
      await clickAndLoad(page, page.getByRole('button', { name: 'Continue' }));
      const summary = await errorSummary(page);
      assert.ok(summary.includes('The code is not right'), summary);
      assert.ok(summary.includes('2 attempts left'), summary);
      await checkA11y(page, 'setting up the authenticator app, wrong code');

      // The app, given the manual key, shows the right code.
      const key = (await page.locator('.gatehouse-key').innerText()).trim();
      await page.getByLabel('Code', { exact: true }).fill(totpCode(key));
      await clickAndLoad(page, page.getByRole('button', { name: 'Continue' }));
      assert.equal(await heading(page), 'Save your recovery codes');
      assert.equal(await page.locator('.gatehouse-codes li').count(), 10);
      await checkA11y(page, 'the recovery codes');

      await clickAndLoad(page, page.getByRole('button', { name: /I have saved my codes/ }));
      assertPath(page, server, '/console');
      assert.equal(await heading(page), 'Helpdesk console');
      await checkA11y(page, 'the console');

      // Find a person by surname, in any case.
      await page.getByLabel('Find a person').fill('smith');
      await clickAndLoad(page, page.getByRole('button', { name: 'Search' }));
      const results = page.getByRole('table');
      assert.ok((await results.innerText()).includes('John Smith'));
      await checkA11y(page, 'the console with search results');

      await clickAndLoad(page, results.getByRole('link').first());
      assert.match(new URL(page.url()).pathname, /^\/console\/accounts\/999JSMITH\d\d$/);
      assert.ok((await heading(page)).startsWith('John Smith'), await heading(page));
      assert.ok((await page.getByRole('main').innerText()).includes('john.smith@nhs.net'));
      await checkA11y(page, 'an account in the console');

      // Did the email go out? (Grace's own first-access email, say.)
      await clickAndLoad(page, page.getByRole('link', { name: /Did the email go out\?/ }));
      assertPath(page, server, '/console/mail');
      assert.equal(await heading(page), 'Did the email go out?');
      await checkA11y(page, 'did the email go out');
      await page.goto(`${server.origin}/console/mail?email=${encodeURIComponent(person.email)}`);
      const main = await page.getByRole('main').innerText();
      assert.ok(/matched \(1 account\)/.test(main), main);
      assert.ok(/sent /.test(main), main);
      assert.ok(!main.includes('/reset/'), 'never a link');
      await checkA11y(page, 'did the email go out, with emails');

      assertClean();
    } finally {
      await context.close();
    }
  });
}

test('staff are told plainly that the console is not for them', { timeout: 60_000 }, async () => {
  const { context, page, assertClean } = await openPage(browser, server, JS_MODES[0]);
  try {
    const username = await setPasswordFor(page, server, PEOPLE.expire, seen);
    await submitLogin(page, username, GOOD_PASSWORD);
    assertPath(page, server, '/account');
    const refused = await page.goto(`${server.origin}/console`);
    assert.equal(refused.status(), 403);
    assert.equal(await heading(page), 'You do not have access to this page');
    await checkA11y(page, 'the console refused to staff');
    assertClean();
  } finally {
    await context.close();
  }
});
