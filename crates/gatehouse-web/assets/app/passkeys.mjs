// Passkeys (WebAuthn): the forms marked data-passkey ask the server for a
// ceremony's options, hand them to the browser's authenticator, and send
// its answer back. Without JavaScript (or WebAuthn) their buttons stay
// disabled and the page says to use the password instead.

const b64urlToBytes = (text) => {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
};

const bytesToB64url = (buffer) => {
  const bytes = new Uint8Array(buffer);
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
};

// The server's JSON options with their byte strings as bytes.
const creationOptions = (options) => {
  const publicKey = { ...options.publicKey };
  publicKey.challenge = b64urlToBytes(publicKey.challenge);
  publicKey.user = { ...publicKey.user, id: b64urlToBytes(publicKey.user.id) };
  publicKey.excludeCredentials = (publicKey.excludeCredentials || []).map((c) => ({ ...c, id: b64urlToBytes(c.id) }));
  return { publicKey };
};

const requestOptions = (options) => {
  const publicKey = { ...options.publicKey };
  publicKey.challenge = b64urlToBytes(publicKey.challenge);
  publicKey.allowCredentials = (publicKey.allowCredentials || []).map((c) => ({ ...c, id: b64urlToBytes(c.id) }));
  return { publicKey };
};

// The browser's credential as the JSON the server reads.
const registrationJson = (credential) => ({
  id: credential.id,
  rawId: bytesToB64url(credential.rawId),
  type: credential.type,
  response: {
    attestationObject: bytesToB64url(credential.response.attestationObject),
    clientDataJSON: bytesToB64url(credential.response.clientDataJSON),
  },
  extensions: {},
});

const assertionJson = (credential) => ({
  id: credential.id,
  rawId: bytesToB64url(credential.rawId),
  type: credential.type,
  response: {
    authenticatorData: bytesToB64url(credential.response.authenticatorData),
    clientDataJSON: bytesToB64url(credential.response.clientDataJSON),
    signature: bytesToB64url(credential.response.signature),
    userHandle: credential.response.userHandle ? bytesToB64url(credential.response.userHandle) : null,
  },
  extensions: {},
});

const post = async (url, fields) => {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields),
    credentials: 'same-origin',
  });
  let answer = {};
  try {
    answer = await response.json();
  } catch {
    answer = { error: 'Something went wrong. Try again, or log in with your password.' };
  }
  return answer;
};

const run = async (form) => {
  const kind = form.dataset.passkey;
  const error = form.querySelector('[data-passkey-error]');
  const show = (message) => {
    if (!error) return;
    error.textContent = message;
    error.hidden = !message;
  };
  show('');
  const fields = Object.fromEntries(new FormData(form));
  if (form.dataset.usernameFrom) {
    const typed = document.getElementById(form.dataset.usernameFrom);
    if (typed && typed.value.trim()) fields.username = typed.value.trim();
  }
  const started = await post(form.action, fields);
  if (!started.options) {
    show(started.error || 'Something went wrong. Try again.');
    return;
  }
  let credential;
  try {
    credential = kind === 'register'
      ? await navigator.credentials.create(creationOptions(started.options))
      : await navigator.credentials.get(requestOptions(started.options));
  } catch {
    show(kind === 'register'
      ? 'The passkey was not added. Try again.'
      : 'No passkey was used. Try again, or log in with your password.');
    return;
  }
  const answer = kind === 'register' ? registrationJson(credential) : assertionJson(credential);
  const finished = await post(form.dataset.finish, {
    csrf_token: fields.csrf_token,
    ceremony: started.ceremony,
    credential: JSON.stringify(answer),
    next: fields.next || '',
  });
  if (finished.redirect) {
    window.location.assign(finished.redirect);
  } else {
    show(finished.error || 'Something went wrong. Try again.');
  }
};

export function initPasskeys(root) {
  if (!window.PublicKeyCredential || !navigator.credentials) return;
  for (const form of root.querySelectorAll('form[data-passkey]')) {
    const button = form.querySelector('[data-passkey-button]');
    if (button) button.disabled = false;
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (button) button.disabled = true;
      run(form).finally(() => {
        if (button) button.disabled = false;
      });
    });
  }
}
