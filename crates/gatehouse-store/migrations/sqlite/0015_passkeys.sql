-- Passkeys (WebAuthn): the credentials people register, and the state of
-- each ceremony between its options and its answer, kept here so that any
-- node can finish a ceremony another started.
CREATE TABLE passkeys (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    -- The name the person gave it ("work phone"), unique per account.
    name TEXT NOT NULL,
    -- The credential id the authenticator chose: unique across accounts.
    credential_id BLOB NOT NULL UNIQUE,
    -- The user handle the credential was made for (random, per account).
    user_handle BLOB NOT NULL,
    -- The public key and its flags, as the WebAuthn library serialises them.
    credential TEXT NOT NULL,
    -- The authenticator's signature counter, last accepted.
    counter INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    UNIQUE (account_id, name)
);

-- One ceremony: single use (deleted by the statement that reads it back)
-- and short-lived; housekeeping deletes those never finished.
CREATE TABLE passkey_ceremonies (
    id_hash BLOB PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('register', 'sign_in', 'second_factor')),
    account_id INTEGER REFERENCES accounts (id),
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX passkey_ceremonies_expiry ON passkey_ceremonies (expires_at);

-- How a session was signed in to, for the `amr` applications are told:
-- 0 a password, 1 a passkey alone, 2 a password and a passkey as the
-- second factor. Codes and grants carry it from the session.
ALTER TABLE sessions ADD COLUMN passkey INTEGER NOT NULL DEFAULT 0 CHECK (passkey IN (0, 1, 2));
ALTER TABLE oidc_codes ADD COLUMN passkey INTEGER NOT NULL DEFAULT 0 CHECK (passkey IN (0, 1, 2));
ALTER TABLE oidc_grants ADD COLUMN passkey INTEGER NOT NULL DEFAULT 0 CHECK (passkey IN (0, 1, 2));
