// A small Node application that signs people in through Gatehouse with a
// maintained OpenID Connect client library, openid-client (v6), and takes
// back-channel logout tokens, checked with jose (which openid-client uses).
// Plain node:http; sessions in memory.
//
//   /                    the claims, for a signed-in person; otherwise off
//                        to Gatehouse (authorization code, PKCE S256,
//                        state and nonce)
//   /callback            redeems the code; openid-client checks the ID token
//   /logout              RP-initiated logout at Gatehouse's end-session
//                        endpoint, back to /signed-out
//   /backchannel-logout  POST logout_token: ends the sessions it names
//
// It is a confidential client: it runs on a server and can keep a secret,
// so the token endpoint knows it is this application (client_secret_basic)
// as well as PKCE binding the code to this browser's request.

import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const SCOPE = 'openid profile email';
const COOKIE = 'rp_session';

const escapeHtml = (s) =>
  String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body><main>
${body}
</main></body>
</html>
`;
}

function cookieOf(req, name) {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return null;
}

async function readBody(req, limit = 64 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw new Error('body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Starts the application on `port` of 127.0.0.1, reached by browsers at
 * `origin`, for the client `clientId`/`clientSecret` of the provider at
 * `issuer`. Returns `{ url, sessions, logouts, close }`; `sessions` is the
 * live session table and `logouts` the logout tokens taken (for tests to
 * look at).
 */
export async function startNodeRp({ issuer, clientId, clientSecret, origin, port, name = 'Timesheets', log = () => {} }) {
  const discoveryOptions = {};
  if (new URL(issuer).protocol === 'http:') {
    // For tests against a loopback provider only: openid-client refuses
    // http unless told. A deployment's issuer is https and needs no option.
    discoveryOptions.execute = [oidc.allowInsecureRequests];
  }
  const config = await oidc.discovery(
    new URL(issuer),
    clientId,
    undefined,
    oidc.ClientSecretBasic(clientSecret),
    discoveryOptions,
  );
  const metadata = config.serverMetadata();
  const jwks = createRemoteJWKSet(new URL(metadata.jwks_uri));
  const redirectUri = `${origin}/callback`;

  /** Session id (the cookie) -> { pending?, claims?, sid?, sub?, idToken? }. */
  const sessions = new Map();
  /** Logout token jti values already used (replay). */
  const seenJti = new Map();
  /** Each logout token taken: its sid and sub, and how many sessions it ended. */
  const logouts = [];

  const newSession = (res, data) => {
    const id = randomBytes(32).toString('base64url');
    sessions.set(id, data);
    // HttpOnly, Lax: the browser comes back from Gatehouse (another site)
    // by a top-level GET, which Lax allows. Secure in a deployment (https).
    const secure = new URL(origin).protocol === 'https:' ? '; Secure' : '';
    res.setHeader('Set-Cookie', `${COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax${secure}`);
    return id;
  };

  const send = (res, status, html, headers = {}) => {
    res.writeHead(status, {
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      ...headers,
    });
    res.end(html);
  };
  const redirect = (res, to) => {
    res.writeHead(303, { Location: to, 'Cache-Control': 'no-store' });
    res.end();
  };

  async function signIn(res) {
    const verifier = oidc.randomPKCECodeVerifier();
    const pending = {
      verifier,
      state: oidc.randomState(),
      nonce: oidc.randomNonce(),
    };
    newSession(res, { pending });
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: SCOPE,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: pending.state,
      nonce: pending.nonce,
    });
    redirect(res, url.href);
  }

  async function callback(req, res, url) {
    const id = cookieOf(req, COOKIE);
    const session = id && sessions.get(id);
    if (!session?.pending) {
      send(res, 400, page(name, '<h1>Sign-in expired</h1><p><a href="/">Start again</a></p>'));
      return;
    }
    const { pending } = session;
    sessions.delete(id);
    let tokens;
    try {
      tokens = await oidc.authorizationCodeGrant(config, new URL(url.pathname + url.search, origin), {
        pkceCodeVerifier: pending.verifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      });
    } catch (e) {
      log(`callback: ${e.name}: ${e.message} ${e.code ?? ''} ${JSON.stringify(e.cause ?? '')}`);
      send(res, 502, page(name, `<h1>Sign-in failed</h1><p id="error">${escapeHtml(`${e.name}: ${e.message}`)}</p>`));
      return;
    }
    const claims = tokens.claims();
    // A new session id once signed in (no fixation).
    newSession(res, { claims, sid: claims.sid, sub: claims.sub, idToken: tokens.id_token });
    redirect(res, '/');
  }

  async function backchannelLogout(req, res) {
    const answer = (status, error) => {
      if (error) log(`backchannel-logout: ${status} ${error}`);
      res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      res.end(error ? JSON.stringify({ error: 'invalid_request', error_description: error }) : '');
    };
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim();
    if (type !== 'application/x-www-form-urlencoded') return answer(400, `content type ${type}`);
    const token = new URLSearchParams(await readBody(req)).get('logout_token');
    if (!token) return answer(400, 'no logout_token');
    // OpenID Connect Back-Channel Logout 1.0 §2.6.
    let payload;
    try {
      ({ payload } = await jwtVerify(token, jwks, {
        issuer: metadata.issuer,
        audience: clientId,
        typ: 'logout+jwt',
        algorithms: metadata.id_token_signing_alg_values_supported ?? ['RS256'],
        requiredClaims: ['iat', 'jti', 'events'],
        maxTokenAge: '2 minutes',
      }));
    } catch (e) {
      return answer(400, `${e.code ?? e.name}: ${e.message}`);
    }
    const events = payload.events;
    if (typeof events !== 'object' || events === null || typeof events[BACKCHANNEL_EVENT] !== 'object') {
      return answer(400, 'no back-channel logout event');
    }
    if ('nonce' in payload) return answer(400, 'a logout token must not have a nonce');
    if (typeof payload.sid !== 'string' && typeof payload.sub !== 'string') return answer(400, 'neither sid nor sub');
    if (seenJti.has(payload.jti)) return answer(400, 'replayed');
    seenJti.set(payload.jti, Date.now());
    let ended = 0;
    for (const [id, s] of sessions) {
      const match = typeof payload.sid === 'string'
        ? s.sid === payload.sid && (payload.sub === undefined || s.sub === payload.sub)
        : s.sub === payload.sub;
      if (match) {
        sessions.delete(id);
        ended += 1;
      }
    }
    logouts.push({ sid: payload.sid, sub: payload.sub, ended });
    log(`backchannel-logout: sid ${payload.sid} sub ${payload.sub}: ended ${ended}`);
    answer(200);
  }

  const server = createServer(async (req, res) => {
    const url = new URL(req.url, origin);
    try {
      if (req.method === 'GET' && url.pathname === '/') {
        const id = cookieOf(req, COOKIE);
        const session = id && sessions.get(id);
        if (!session?.claims) return await signIn(res);
        const c = session.claims;
        return send(
          res,
          200,
          page(
            name,
            `<h1>${escapeHtml(name)}</h1>
<p>Signed in to ${escapeHtml(name)}.</p>
<dl>
<dt>Username</dt><dd id="username">${escapeHtml(c.preferred_username)}</dd>
<dt>Email</dt><dd id="email">${escapeHtml(c.email)}</dd>
<dt>Name</dt><dd id="name">${escapeHtml(c.name)}</dd>
<dt>Session</dt><dd id="sid">${escapeHtml(c.sid)}</dd>
</dl>
<p><a href="/logout">Sign out</a></p>`,
          ),
        );
      }
      if (req.method === 'GET' && url.pathname === '/callback') return await callback(req, res, url);
      if (req.method === 'GET' && url.pathname === '/logout') {
        const id = cookieOf(req, COOKIE);
        const session = id && sessions.get(id);
        if (id) sessions.delete(id);
        if (!session?.idToken) return redirect(res, '/signed-out');
        const to = oidc.buildEndSessionUrl(config, {
          id_token_hint: session.idToken,
          post_logout_redirect_uri: `${origin}/signed-out`,
        });
        return redirect(res, to.href);
      }
      if (req.method === 'GET' && url.pathname === '/signed-out') {
        return send(res, 200, page(name, `<h1>Signed out</h1><p><a href="/">Sign in to ${escapeHtml(name)}</a></p>`));
      }
      if (req.method === 'POST' && url.pathname === '/backchannel-logout') return await backchannelLogout(req, res);
      send(res, 404, page(name, '<h1>Not found</h1>'));
    } catch (e) {
      log(`${req.method} ${url.pathname}: ${e.stack}`);
      if (!res.headersSent) send(res, 500, page(name, '<h1>Error</h1>'));
      else res.end();
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    url: `${origin}/`,
    sessions,
    logouts,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
