// An expired link: on a server whose links last 5 seconds, a link opened
// after that shows "This link is no longer valid" and a way to ask for a
// new email. Runs with JavaScript on and off; the page is checked with
// axe-core and every request must stay on the server's origin.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  JS_MODES,
  PEOPLE,
  startServer,
  launchBrowser,
  openPage,
  assertPath,
  checkA11y,
  clickAndLoad,
  waitForResetEmail,
  submitRecovery,
  heading,
} from '../lib/helpers.mjs';

const TTL_MS = 5_000;

let server;
let browser;
const seen = new Set();

before(async () => {
  server = await startServer({ extraEnv: { GATEHOUSE_RESET_LINK_TTL: '5s' } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

for (const mode of JS_MODES) {
  const person = mode.javaScriptEnabled ? PEOPLE.expire : PEOPLE.expireNoJs;

  test(`a link older than its lifetime is refused (${mode.name})`, { timeout: 60_000 }, async () => {
    const { context, page, assertClean } = await openPage(browser, server, mode);
    try {
      await page.goto(`${server.origin}/recover`);
      await submitRecovery(page, person);
      assertPath(page, server, '/recover/confirmation');
      assert.ok(
        (await page.getByRole('main').innerText()).includes('must be used within 5 seconds'),
        'the confirmation page gives the lifetime',
      );
      const email = await waitForResetEmail(server, person.email, seen);
      // The link was made before the email was written, so it is older than
      // the time since the email was found.
      await sleep(TTL_MS + 1_000);

      await page.goto(email.link);
      assertPath(page, server, '/reset');
      assert.equal(await heading(page), 'This link is no longer valid');
      const main = await page.getByRole('main').innerText();
      assert.ok(main.includes('This one has expired.'), `says why: ${main}`);
      assert.equal(await page.locator('form input[type="password"]').count(), 0, 'no password form');
      await checkA11y(page, 'the link problem page (expired link)');

      const again = page.getByRole('button', { name: 'Request a new email' });
      assert.equal(await again.getAttribute('href'), '/recover');
      await clickAndLoad(page, again);
      assertPath(page, server, '/recover');
      assert.equal(await page.locator('#email').count(), 1, 'the recovery form');

      assertClean();
    } finally {
      await context.close();
    }
  });
}
