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
  grantRole,
  submitReset,
} from '../lib/helpers.mjs';

const SET_UP_PASSWORD = 'lighthouse saffron meadow';

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
      // A password from a recovery email opens no authenticator set-up:
      // the page says who can give one.
      await submitLogin(page, username, GOOD_PASSWORD);
      assertPath(page, server, '/console/second-factor');
      assert.equal(await heading(page), 'Your authenticator app has not been set up');
      await checkA11y(page, 'no set-up link yet');

      // The operator's set-up link: a new password, then the app.
      const link = await grantRole(server, username, person.role);
      await page.goto(link);
      assertPath(page, server, '/reset');
      assert.equal(await heading(page), 'Set your password');
      assert.ok((await page.getByRole('main').innerText()).includes('This link comes from the System Administrator'));
      await checkA11y(page, 'a set-up link');
      await submitReset(page, username, SET_UP_PASSWORD);
      assertPath(page, server, '/login');
      await submitLogin(page, username, SET_UP_PASSWORD);
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

      // An action refused: the error summary on the account page.
      await page.goto(`${server.origin}/console?q=smith`);
      await clickAndLoad(page, page.getByRole('table').getByRole('link').first());
      await page.getByLabel('New email address').fill('john.smith2@nhs.net');
      await clickAndLoad(page, page.getByRole('button', { name: 'Change the email address' }));
      const refusal = await errorSummary(page);
      assert.ok(refusal.includes('Enter why the email address is changing'), refusal);
      assert.equal(await page.getByLabel('New email address').inputValue(), 'john.smith2@nhs.net', 'kept');
      await checkA11y(page, 'an account in the console, with an error');

      // The audit log, filtered, and with a filter refused.
      await page.goto(`${server.origin}/console/audit?username=${username}`);
      assert.equal(await heading(page), 'Audit log');
      assert.ok((await page.getByRole('table').innerText()).includes('second_factor.enrolled'));
      await checkA11y(page, 'the audit log');
      await page.goto(`${server.origin}/console/audit?from=not-a-day`);
      assert.ok((await errorSummary(page)).includes('Enter a real date'));
      await checkA11y(page, 'the audit log with an error');

      if (person.role === 'admin') {
        // Load the staff file: preview, then import.
        await page.goto(`${server.origin}/console`);
        await clickAndLoad(page, page.getByRole('link', { name: 'Load the staff file' }));
        assertPath(page, server, '/console/import');
        await checkA11y(page, 'load the staff file');
        await clickAndLoad(page, page.getByRole('button', { name: 'Preview the changes' }));
        assert.ok((await errorSummary(page)).includes('Choose a staff file'));
        await checkA11y(page, 'load the staff file, no file chosen');
        const csv = 'employer,username,first_name,last_name,date_of_birth,email\n' +
          '999 Demo Hospital NHS Trust,,Katherine,Johnson,1918-08-26,katherine.johnson@nhs.net\n';
        await page.setInputFiles('#file', { name: 'hr-feed.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
        await clickAndLoad(page, page.getByRole('button', { name: 'Preview the changes' }));
        assert.ok((await page.getByRole('main').innerText()).includes('What would change: hr-feed.csv'));
        await checkA11y(page, 'the staff file preview');
        await clickAndLoad(page, page.getByRole('button', { name: 'Import these changes' }));
        assertPath(page, server, '/console/import');
        assert.ok((await page.locator('.nhsuk-notification-banner').innerText()).includes('1 people added'));
        await checkA11y(page, 'the staff file imported');
      }

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
