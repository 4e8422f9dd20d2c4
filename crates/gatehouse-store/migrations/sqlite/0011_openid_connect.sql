-- OpenID Connect: applications sign people in through Gatehouse.

-- The subject (`sub`) applications know a person by: random, assigned the
-- first time an application asks, and never the username, so that a
-- username change does not make a person someone else.
ALTER TABLE accounts ADD COLUMN subject TEXT;
CREATE UNIQUE INDEX accounts_subject ON accounts (subject);

-- The applications the operator registers. A confidential client's secret
-- is kept only as its SHA-256 hash; addresses are one per line, exactly as
-- registered (requests must match them byte for byte).
CREATE TABLE oidc_clients (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('confidential', 'public')),
    secret_hash BLOB,
    redirect_uris TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL DEFAULT '',
    backchannel_logout_uri TEXT,
    signing_alg TEXT NOT NULL DEFAULT 'RS256' CHECK (signing_alg IN ('RS256', 'ES256')),
    consent INTEGER NOT NULL DEFAULT 0 CHECK (consent IN (0, 1)),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    disabled_at INTEGER
);

-- Wrong client secrets, counted per client and address, so that guessing
-- is slowed without a stranger being able to shut a client out.
CREATE TABLE oidc_client_failures (
    client_id TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    failures INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    PRIMARY KEY (client_id, client_ip)
);

-- The keys that sign ID tokens and logout tokens, shared by every node.
-- A key is published from its creation, signs from `signs_from` (after the
-- key before it has been published long enough for clients to fetch it),
-- stops signing at `signs_until`, and is withdrawn from the JWKS at
-- `published_until`, once every token it signed has expired. The private
-- key is PKCS#8, sealed when a key-encryption key is set.
CREATE TABLE oidc_signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL CHECK (alg IN ('RS256', 'ES256')),
    generation INTEGER NOT NULL,
    private_key BLOB NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    signs_from INTEGER NOT NULL,
    signs_until INTEGER,
    published_until INTEGER,
    UNIQUE (alg, generation)
);

-- Authorization codes: only the hash is kept; used once across every node
-- (`used_at` is set by a conditional update); a second use revokes the
-- grant the first made.
CREATE TABLE oidc_codes (
    code_hash BLOB PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    session_hash BLOB NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT,
    auth_time INTEGER NOT NULL,
    second_factor INTEGER NOT NULL CHECK (second_factor IN (0, 1)),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    grant_id INTEGER
);
CREATE INDEX oidc_codes_expiry ON oidc_codes (expires_at);
-- Removing a client deletes what was issued to it.
CREATE INDEX oidc_codes_client ON oidc_codes (client_id);

-- What a client holds for a person from one code: its refresh and access
-- tokens. A grant lives no longer than the Gatehouse session it came from
-- (`expires_at`), and ends with it.
CREATE TABLE oidc_grants (
    id INTEGER PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    session_hash BLOB NOT NULL,
    code_hash BLOB NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    auth_time INTEGER NOT NULL,
    second_factor INTEGER NOT NULL CHECK (second_factor IN (0, 1)),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX oidc_grants_account ON oidc_grants (account_id);
CREATE INDEX oidc_grants_session ON oidc_grants (session_hash);
CREATE INDEX oidc_grants_expiry ON oidc_grants (expires_at);
CREATE INDEX oidc_grants_client ON oidc_grants (client_id);

-- Refresh tokens rotate on every use: the used one is kept (hash only) so
-- that presenting it again is seen as theft and revokes the grant.
CREATE TABLE oidc_refresh_tokens (
    token_hash BLOB PRIMARY KEY,
    grant_id INTEGER NOT NULL REFERENCES oidc_grants (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX oidc_refresh_tokens_grant ON oidc_refresh_tokens (grant_id);

-- Access tokens are opaque: userinfo looks each one up, so a revoked grant
-- stops answering at once.
CREATE TABLE oidc_access_tokens (
    token_hash BLOB PRIMARY KEY,
    grant_id INTEGER NOT NULL REFERENCES oidc_grants (id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX oidc_access_tokens_grant ON oidc_access_tokens (grant_id);
CREATE INDEX oidc_access_tokens_expiry ON oidc_access_tokens (expires_at);

-- Consent a person gave a client that asks for it.
CREATE TABLE oidc_consents (
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    client_id TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, client_id)
);
CREATE INDEX oidc_consents_client ON oidc_consents (client_id);

-- Back-channel logout tokens waiting to be posted to clients: written in
-- the transaction that ends the sessions, delivered by the worker with the
-- outbox's leases and retry schedule.
CREATE TABLE oidc_logout_notices (
    id INTEGER PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    sid TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX oidc_logout_notices_due ON oidc_logout_notices (status, next_attempt_at);
CREATE INDEX oidc_logout_notices_client ON oidc_logout_notices (client_id);
CREATE INDEX oidc_logout_notices_finished ON oidc_logout_notices (finished_at);
