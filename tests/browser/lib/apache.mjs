// A private Apache httpd with mod_auth_openidc in front of a static page:
// the relying party most organisations already run. Debian's packages
// (apache2, libapache2-mod-auth-openidc), never the system service: its
// own ServerRoot and configuration in a temporary folder, a free port,
// started in the foreground and stopped at the end.

import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, sleep } from './helpers.mjs';

const execFileP = promisify(execFile);

export const APACHE_BIN = process.env.APACHE_BIN || '/usr/sbin/apache2';
export const APACHE_MODULES = process.env.APACHE_MODULES || '/usr/lib/apache2/modules';

/** The modules the configuration below uses, and nothing else. */
const MODULES = [
  ['mpm_event_module', 'mod_mpm_event.so'],
  ['authn_core_module', 'mod_authn_core.so'],
  ['authz_core_module', 'mod_authz_core.so'],
  ['authz_user_module', 'mod_authz_user.so'],
  ['mime_module', 'mod_mime.so'],
  ['dir_module', 'mod_dir.so'],
  ['include_module', 'mod_include.so'],
  ['auth_openidc_module', 'mod_auth_openidc.so'],
];

/**
 * The page behind sign-in: server-side includes print the claims that
 * mod_auth_openidc puts in the request's environment (OIDCPassClaimsAs
 * environment), HTML-escaped (mod_include's default encoding "entity").
 */
const PROTECTED_PAGE = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Rota (Apache)</title></head>
<body>
<main>
<h1>Rota</h1>
<p>Signed in to the rota.</p>
<dl>
<dt>Username</dt><dd id="username"><!--#echo var="OIDC_CLAIM_preferred_username" --></dd>
<dt>Email</dt><dd id="email"><!--#echo var="OIDC_CLAIM_email" --></dd>
<dt>Name</dt><dd id="name"><!--#echo var="OIDC_CLAIM_name" --></dd>
<dt>REMOTE_USER</dt><dd id="remote-user"><!--#echo var="REMOTE_USER" --></dd>
</dl>
</main>
</body>
</html>
`;

/**
 * The configuration, as a deployment would write it (less the lines marked
 * as being for this private instance). `gatehouse` is Gatehouse's public
 * URL; `origin` is where browsers reach this Apache; `client` is what
 * `gatehouse admin client add` answered.
 */
export function apacheConfig({ dir, port, origin, gatehouse, client, passphrase, user }) {
  const load = MODULES.map(([name, file]) => `LoadModule ${name} ${path.join(APACHE_MODULES, file)}`).join('\n');
  return `# --- this private instance: its own folder, port and logs -------------
ServerRoot "${dir}"
DefaultRuntimeDir "${dir}/run"
PidFile "${dir}/run/httpd.pid"
Mutex file:${dir}/run default
Listen 127.0.0.1:${port}
ServerName ${new URL(origin).host}
ErrorLog "${dir}/error.log"
LogLevel warn auth_openidc:info
LogFormat "%h %t \\"%r\\" %>s %b" short
CustomLog "${dir}/access.log" short
${user ? `# Started as root (CI): the children may not stay root.\nUser ${user}\nGroup ${user}\n` : ''}# Small: one process of a few threads is plenty for one browser.
StartServers 1
ServerLimit 1
ThreadsPerChild 8
MaxRequestWorkers 8
MinSpareThreads 1
MaxSpareThreads 8
${load}
TypesConfig /etc/mime.types
DocumentRoot "${dir}/htdocs"
<Directory "${dir}/htdocs">
    Require all granted
</Directory>

# --- mod_auth_openidc ---------------------------------------------------
# Gatehouse's discovery document: issuer, endpoints, JWKS, and that it
# supports back-channel logout (backchannel_logout_supported).
OIDCProviderMetadataURL ${gatehouse}/.well-known/openid-configuration
OIDCClientID ${client.client_id}
OIDCClientSecret ${client.client_secret}
# A path under the protected location that serves no content; register it
# as the client's redirect URI, and it with ?logout=backchannel as the
# client's back-channel logout URI.
OIDCRedirectURI ${origin}/protected/redirect_uri
OIDCCryptoPassphrase ${passphrase}
OIDCScope "openid profile email"
# Gatehouse takes S256 only; a confidential client need not, but should.
OIDCPKCEMethod S256
# REMOTE_USER is the username people know, not the opaque sub.
OIDCRemoteUserClaim preferred_username
# Claims as environment variables for the page (SSI), not request headers.
OIDCPassClaimsAs environment
# Sessions in shared memory (the defaults, named because back-channel
# logout relies on them: mod_auth_openidc finds the session to end by the
# logout token's sid and issuer in this cache).
OIDCSessionType server-cache
OIDCCacheType shm
# State and session cookies SameSite=Lax. Gatehouse is another site than
# the application, and the browser comes back from it by a top-level GET,
# which Lax allows. Not needed over http (mod_auth_openidc then sets no
# SameSite, and Chromium treats such cookies as Lax); over https, without
# it, they would be SameSite=None (the module's documented default).
OIDCCookieSameSite On
# Where ?logout= sends the person when no URL is given.
OIDCDefaultLoggedOutURL ${origin}/
# Plain http to a loopback Gatehouse (this test only; a deployment uses
# https throughout) needs no setting: mod_auth_openidc only warns at start
# that OIDCProviderMetadataURL and OIDCRedirectURI are not https. With no
# TLS, OIDCSSLValidateServer does not come into it.

<Location /protected>
    AuthType openid-connect
    Require valid-user
    Options +Includes
    SetOutputFilter INCLUDES
    DirectoryIndex index.html
</Location>
`;
}

/**
 * Starts Apache protecting /protected/ with mod_auth_openidc, registered
 * at Gatehouse as a confidential client. Browsers reach it at
 * `http://localhost:PORT`, another site than Gatehouse's 127.0.0.1, so that
 * nothing Gatehouse does to its own cookies (Clear-Site-Data on sign-out)
 * can end the application's session: only the back-channel logout can.
 */
export async function startApache({ gatehouse, register }) {
  if (!existsSync(APACHE_BIN) || !existsSync(path.join(APACHE_MODULES, 'mod_auth_openidc.so'))) {
    throw new Error(
      `no Apache with mod_auth_openidc (${APACHE_BIN}, ${APACHE_MODULES}/mod_auth_openidc.so): ` +
        'apt-get install -y apache2 libapache2-mod-auth-openidc',
    );
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'gatehouse-apache-'));
  const port = await freePort();
  const origin = `http://localhost:${port}`;
  const redirectUri = `${origin}/protected/redirect_uri`;
  const client = await register({
    redirectUri,
    backchannelLogoutUri: `${redirectUri}?logout=backchannel`,
    postLogoutRedirectUri: `${origin}/`,
  });
  // As root, the children run as www-data and must read the pages.
  const user = process.getuid?.() === 0 ? 'www-data' : null;
  await mkdir(path.join(dir, 'run'));
  await mkdir(path.join(dir, 'htdocs', 'protected'), { recursive: true });
  await writeFile(path.join(dir, 'htdocs', 'index.html'), '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Rota</title></head><body><main><h1>Rota</h1><p><a href="/protected/">Open the rota</a></p></main></body></html>\n');
  await writeFile(path.join(dir, 'htdocs', 'protected', 'index.html'), PROTECTED_PAGE);
  const conf = path.join(dir, 'httpd.conf');
  await writeFile(
    conf,
    apacheConfig({ dir, port, origin, gatehouse: gatehouse.origin, client, passphrase: randomBytes(24).toString('base64url'), user }),
  );
  if (user) {
    for (const d of [dir, path.join(dir, 'htdocs'), path.join(dir, 'htdocs', 'protected')]) await chmod(d, 0o755);
  }
  try {
    await execFileP(APACHE_BIN, ['-t', '-f', conf], { timeout: 30_000 });
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`apache2 -t refused the configuration: ${e.stderr ?? e.message}`);
  }

  let out = '';
  const child = spawn(APACHE_BIN, ['-f', conf, '-DFOREGROUND'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  let exited = null;
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.on('exit', (code, signal) => {
    exited = { code, signal };
    process.removeListener('exit', killOnExit);
  });
  const readLog = async (name) => {
    try {
      return await readFile(path.join(dir, name), 'utf8');
    } catch {
      return '';
    }
  };
  const log = async () => `${out}${await readLog('error.log')}\naccess log:\n${await readLog('access.log')}`;
  /** The back-channel logout requests Apache answered, with their status. */
  const backchannelLogouts = async () =>
    [...(await readLog('access.log')).matchAll(/"POST \/protected\/redirect_uri\?logout=backchannel HTTP\/[\d.]+" (\d{3})/g)].map(
      (m) => Number(m[1]),
    );
  const stop = async () => {
    if (exited === null) {
      const done = new Promise((r) => child.once('exit', r));
      // SIGWINCH is Apache's graceful stop; SIGTERM stops it at once.
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await done;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exited !== null) {
      const text = await log();
      await stop();
      throw new Error(`apache2 exited early (${JSON.stringify(exited)}):\n${text}`);
    }
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      const text = await log();
      await stop();
      throw new Error(`apache2 did not answer in 20 s:\n${text}`);
    }
    await sleep(100);
  }
  return { origin, port, dir, client, protectedUrl: `${origin}/protected/`, stop, log, backchannelLogouts };
}
