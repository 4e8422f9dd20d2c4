// Lockout: three wrong passwords lock the account, and then the right
// password is refused too. Also what a locked person sees on the way to a
// new password: the reset page and the email. Runs with JavaScript on and
// off; every page is checked with axe-core and every request must stay on
// the server's origin.

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
  waitForEmail,
  RECOVERY_SUBJECT,
  waitForResetEmail,
  hasResetLink,
  submitRecovery,
  submitLogin,
  errorSummary,
  heading,
  setPasswordFor,
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

const LOCKED = 'Your account is locked until';

for (const mode of JS_MODES) {
  const person = mode.javaScriptEnabled ? PEOPLE.lock : PEOPLE.lockNoJs;

  test(`three wrong passwords lock the account (${mode.name})`, { timeout: 60_000 }, async () => {
    const { context, page, assertClean } = await openPage(browser, server, mode);
    try {
      const username = await setPasswordFor(page, server, person, seen);

      // A second link, requested before the lock, to open after it.
      await page.goto(`${server.origin}/recover`);
      await submitRecovery(page, person);
      assertPath(page, server, '/recover/confirmation');
      const early = await waitForResetEmail(server, person.email, seen);

      await page.goto(`${server.origin}/login`);
      const wrong = [`${GOOD_PASSWORD} 1`, `${GOOD_PASSWORD} 2`, `${GOOD_PASSWORD} 3`];
      const expected = [
        'The username or password is incorrect. You have 2 attempts left before your account is locked for 12 hours.',
        'The username or password is incorrect. You have 1 attempt left before your account is locked for 12 hours.',
      ];
      for (const [i, password] of wrong.entries()) {
        await submitLogin(page, username, password);
        assertPath(page, server, '/login');
        const summary = await errorSummary(page);
        if (i < 2) {
          assert.ok(summary.includes(expected[i]), `attempt ${i + 1}: ${summary}`);
          assert.ok(!summary.includes(LOCKED), `attempt ${i + 1} does not lock: ${summary}`);
          assert.equal(await page.locator('#username').inputValue(), username, 'the username is kept');
          assert.equal(await page.locator('#password').inputValue(), '', 'the password is not');
          if (i === 0) await checkA11y(page, 'the login page with a wrong password');
        } else {
          assert.ok(summary.includes(LOCKED), `attempt 3 locks: ${summary}`);
          await checkA11y(page, 'the login page, locked');
        }
      }

      // Now the right password is refused too.
      await submitLogin(page, username, GOOD_PASSWORD);
      assertPath(page, server, '/login');
      const summary = await errorSummary(page);
      assert.ok(summary.includes(LOCKED), `the right password while locked: ${summary}`);
      await page.goto(`${server.origin}/account`);
      assertPath(page, server, '/login');

      // The link from before the lock opens the reset page, which says so
      // and has no form.
      await page.goto(early.link);
      assertPath(page, server, '/reset');
      assert.equal(await heading(page), 'Reset your password');
      const card = page.locator('.nhsuk-card--warning');
      assert.ok((await card.innerText()).includes(LOCKED));
      assert.equal(await page.locator('#password').count(), 0, 'no password form while locked');
      await checkA11y(page, 'the reset page, locked');

      // A new request while locked: the email says so and has no link.
      await page.goto(`${server.origin}/recover`);
      await submitRecovery(page, person);
      assertPath(page, server, '/recover/confirmation');
      const locked = await waitForEmail(server, { to: person.email, subject: RECOVERY_SUBJECT, seen });
      assert.ok(/locked until/i.test(locked.text), 'the email says the account is locked');
      assert.ok(!hasResetLink(server, locked.text), 'and has no reset link');

      assertClean();
    } finally {
      await context.close();
    }
  });
}
