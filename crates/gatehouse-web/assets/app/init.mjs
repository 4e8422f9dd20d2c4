// Progressive enhancement only: every page works without JavaScript.
import { initAll } from '/assets/nhsuk/nhsuk-frontend.min.js';
import { initPasswordChecklist } from '/assets/app/password-checklist.mjs';
import { initPasskeys } from '/assets/app/passkeys.mjs';

initAll();
initPasswordChecklist(document);
initPasskeys(document);
