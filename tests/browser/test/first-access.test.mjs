// First-time access, as a new member of staff does it: from the home page,
// through the recovery form and the email, to "My account", then log out.
// Every page on the way (and its error states) is checked with axe-core,
// and every request must stay on the server's origin. Runs with JavaScript
// on and off.

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
  waitForResetEmail,
  waitForEmail,
  PASSWORD_SET_SUBJECT,
  submitRecovery,
  submitReset,
  submitLogin,
  errorSummary,
  heading,
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

const RECOVER_LINK = 'Forgotten | Request Username/Password | Unlock Account';

for (const mode of JS_MODES) {
  const js = mode.javaScriptEnabled;
  const person = js ? PEOPLE.first : PEOPLE.firstNoJs;

  test(`first-time access from the home page to My account (${mode.name})`, { timeout: 60_000 }, async () => {
    const { context, page, assertClean } = await openPage(browser, server, mode);
    try {
      // Home page.
      const home = await page.goto(`${server.origin}/`);
      assert.equal(home.status(), 200);
      assert.equal(await heading(page), 'Electronic Staff Record');
      const logIn = page.getByRole('main').getByRole('button', { name: 'Log in' });
      assert.equal(await logIn.getAttribute('href'), '/login');
      await checkA11y(page, 'the home page');

      // The recovery form, empty.
      await clickAndLoad(page, page.getByRole('main').getByRole('link', { name: RECOVER_LINK }).first());
      assertPath(page, server, '/recover');
      assert.equal(await heading(page), RECOVER_LINK);
      assert.equal(await page.locator('.nhsuk-error-summary').count(), 0, 'no errors before submitting');
      for (const [label, id] of [['Email', 'email'], ['Day', 'dob-day'], ['Month', 'dob-month'], ['Year', 'dob-year'], ['Username', 'username']]) {
        assert.equal(await page.getByLabel(label, { exact: true }).getAttribute('id'), id, `label ${label}`);
      }
      assert.equal((await page.locator('legend').innerText()).trim(), 'Date of birth');
      await checkA11y(page, 'the recovery form');

      // Submitted empty: errors.
      await clickAndLoad(page, page.getByRole('button', { name: 'Submit' }));
      assertPath(page, server, '/recover');
      await errorSummary(page);
      assert.match(await page.title(), /^Error: /, 'the title says there is an error');
      await checkA11y(page, 'the recovery form submitted empty');

      // An address in another domain.
      await submitRecovery(page, { ...person, email: person.email.replace('@nhs.net', '@gmail.com') });
      assertPath(page, server, '/recover');
      const summary = await errorSummary(page);
      assert.ok(summary.includes('This must be your nhs.net email address'), `error summary: ${summary}`);
      const emailError = (await page.locator('#email-error').innerText()).trim();
      assert.ok(emailError.includes('This must be your nhs.net email address'), `message by the field: ${emailError}`);
      assert.equal(await page.locator('#dob-day').inputValue(), String(person.dob[0]), 'what was typed is kept');
      assert.equal(
        await page.locator('.nhsuk-error-summary a', { hasText: 'nhs.net' }).getAttribute('href'),
        '#email',
        'the error links to its field',
      );
      if (js) {
        // The NHS error summary component moves focus to the summary.
        await page.waitForFunction(() => document.activeElement?.closest('.nhsuk-error-summary') != null);
      }
      await checkA11y(page, 'the recovery form with an email address error');

      // Valid.
      await submitRecovery(page, person);
      assertPath(page, server, '/recover/confirmation');
      assert.equal(await heading(page), 'Confirmation');
      await checkA11y(page, 'the confirmation page');
      const ok = page.getByRole('button', { name: 'Ok' });
      await clickAndLoad(page, ok);
      assertPath(page, server, '/login');
      assert.equal(await heading(page), 'Log in');
      await checkA11y(page, 'the login page');

      // The email.
      const email = await waitForResetEmail(server, person.email, seen);
      const initials = `${person.first[0]}${person.last}`.toUpperCase();
      assert.match(email.username, new RegExp(`^999${initials}\\d{2}$`), 'generated username');
      assert.ok(email.text.includes(`Username: ${email.username}`));

      // The link: the token leaves the address bar.
      const opened = await page.goto(email.link);
      assert.equal(opened.status(), 200);
      assertPath(page, server, '/reset');
      assert.equal(await heading(page), 'Set your password');
      const requirements = page.locator('#password-requirements li');
      assert.ok((await requirements.count()) >= 1, 'the password requirements are written out');
      assert.match(await page.locator('#password-requirements').innerText(), /12/);
      for (const id of ['username', 'password', 'confirm-password']) {
        assert.equal(await page.locator(`label[for="${id}"]`).count(), 1, `#${id} has a label`);
      }
      const show = page.locator('#password').locator('xpath=..').getByRole('button', { name: 'Show password' });
      if (js) {
        await show.waitFor({ state: 'visible' });
      } else {
        assert.equal(await show.isVisible(), false, 'no Show button without JavaScript');
      }
      await checkA11y(page, 'the reset form');

      // Live checklist (JavaScript only).
      await page.locator('#password').fill(GOOD_PASSWORD);
      await page.locator('#confirm-password').fill(GOOD_PASSWORD);
      if (js) {
        const status = page.locator('#password-status');
        await status.waitFor({ state: 'visible' });
        const text = (await status.innerText()).trim();
        assert.equal(text, `${GOOD_PASSWORD.length} of at least 12 characters. The passwords match.`);
        await page.locator('#confirm-password').fill(GOOD_PASSWORD.slice(0, 5));
        assert.equal(
          (await status.innerText()).trim(),
          `${GOOD_PASSWORD.length} of at least 12 characters. The passwords do not match yet.`,
        );
        await checkA11y(page, 'the reset form with the checklist');
      } else {
        assert.equal((await page.locator('#password-status').textContent()).trim(), '', 'no live status without JavaScript');
      }

      // Mismatched passwords.
      await submitReset(page, email.username, GOOD_PASSWORD, `${GOOD_PASSWORD} x`);
      assertPath(page, server, '/reset');
      assert.equal(await heading(page), 'Set your password');
      const mismatch = await errorSummary(page);
      assert.ok(mismatch.includes('The passwords do not match'), `error summary: ${mismatch}`);
      assert.ok((await page.locator('#confirm-password-error').innerText()).includes('The passwords do not match'));
      assert.equal(await page.locator('#username').inputValue(), email.username, 'username kept');
      await checkA11y(page, 'the reset form with mismatched passwords');

      // Good.
      await submitReset(page, email.username, GOOD_PASSWORD);
      assertPath(page, server, '/login');
      const banner = page.locator('.nhsuk-notification-banner--success');
      assert.ok(
        (await banner.innerText()).includes('Your password has been set. Log in with your username and new password.'),
      );
      await checkA11y(page, 'the login page with the success banner');
      const notice = await waitForEmail(server, { to: person.email, subject: PASSWORD_SET_SUBJECT, seen });
      assert.ok(!notice.text.includes('/reset/'), 'the notice has no reset link');

      // Log in, from that page.
      if (js) {
        // The NHS password input's toggle shows and hides what was typed.
        const toggle = page.getByRole('button', { name: 'Show password' });
        await toggle.waitFor({ state: 'visible' });
        await page.locator('#password').fill('not yet');
        await toggle.click();
        await page.waitForFunction(() => document.querySelector('#password').type === 'text');
        const hide = page.getByRole('button', { name: 'Hide password' });
        assert.equal((await hide.innerText()).trim(), 'Hide');
        await hide.click();
        await page.waitForFunction(() => document.querySelector('#password').type === 'password');
      } else {
        assert.equal(await page.locator('.nhsuk-password-input__toggle').isVisible(), false);
      }
      await submitLogin(page, email.username, GOOD_PASSWORD);
      assertPath(page, server, '/account');
      assert.equal(await heading(page), 'My account');
      const main = await page.getByRole('main').innerText();
      assert.ok(main.includes(`${person.first} ${person.last}`), `name on My account: ${main}`);
      assert.ok(main.includes(email.username), 'username on My account');
      assert.ok(main.includes('Demo Hospital NHS Trust'), 'employer on My account');
      const nav = page.getByRole('navigation', { name: 'Account' });
      assert.equal(await nav.getByRole('link', { name: 'My account' }).getAttribute('href'), '/account');
      assert.equal(await nav.getByRole('button', { name: 'Log out' }).count(), 1);
      await checkA11y(page, 'My account');

      // Log out: the header button with JavaScript on, the page's own button without.
      const logOut = js
        ? nav.getByRole('button', { name: 'Log out' })
        : page.getByRole('main').getByRole('button', { name: 'Sign out' });
      await clickAndLoad(page, logOut);
      assertPath(page, server, '/logged-out');
      assert.equal(await heading(page), 'You have logged out');
      assert.equal(await page.getByRole('navigation', { name: 'Account' }).count(), 0, 'no account menu');
      await checkA11y(page, 'the logged-out page');

      // Logged out means logged out.
      await page.goto(`${server.origin}/account`);
      assertPath(page, server, '/login');

      // The link works only once.
      await page.goto(email.link);
      assertPath(page, server, '/reset');
      assert.equal(await heading(page), 'This link is no longer valid');
      const again = page.getByRole('button', { name: 'Request a new email' });
      assert.equal(await again.getAttribute('href'), '/recover');
      assert.ok((await page.getByRole('main').innerText()).includes('This link has already been used'));
      await checkA11y(page, 'the link problem page (used link)');

      // An unknown path.
      const missing = await page.goto(`${server.origin}/no-such-page`);
      assert.equal(missing.status(), 404);
      assert.equal(await heading(page), 'Page not found');
      assert.match(await page.getByRole('main').innerText(), /Reference: [A-Z0-9]{4}-[A-Z0-9]{4}\b/);
      await checkA11y(page, 'the 404 page');

      assertClean();
    } finally {
      await context.close();
    }
  });
}
