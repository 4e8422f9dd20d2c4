// Runs first in <body>, before the page is painted, so components can style
// themselves for JavaScript without a flash. An external file, because the
// content security policy allows no inline script.
document.body.className += ' js-enabled' + ('noModule' in HTMLScriptElement.prototype ? ' nhsuk-frontend-supported' : '');
