-- Wrong second-factor codes are counted apart from wrong passwords, so that
-- a right password does not forgive them.
ALTER TABLE sign_in_attempts ADD COLUMN second_factor_failures INTEGER NOT NULL DEFAULT 0;

-- A set-up link (from create-admin, grant or reset-second-factor) sets a
-- privileged person's password like a reset link, and then lets them, and
-- only them, set up an authenticator app until the time kept on the account.
ALTER TABLE reset_links ADD COLUMN purpose TEXT NOT NULL DEFAULT 'reset' CHECK (purpose IN ('reset', 'set_up'));
ALTER TABLE accounts ADD COLUMN second_factor_setup_until INTEGER;

-- Secret keys the service generates on its first start and every node
-- shares: form tokens and the cookie that carries an opened reset link are
-- MACs under them. Rotating adds a generation; the one before stays valid
-- until the next rotation, so forms open at the time still work.
CREATE TABLE service_keys (
    purpose TEXT NOT NULL,
    generation INTEGER NOT NULL,
    secret BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (purpose, generation)
);

-- An opened reset link now waits in a signed cookie, not in a session row
-- (a flood of opened links wrote a row each): the columns sessions kept
-- for it stay, unused and empty, until no node of the release before this
-- one can be running, so that nodes of both releases work side by side
-- during a rolling deploy. For the same reason the sign-in view keeps
-- them and takes the new counter column, which an older node leaves out.
DROP TRIGGER sign_in_success;
DROP VIEW sign_in_successes;

CREATE VIEW sign_in_successes (
    counter_key, claimed_version, consecutive, total, locked_until, claims, at,
    account_id, previous_session,
    id_hash, session_account_id, csrf_token, created_at, last_seen_at,
    reset_link_id, reset_until, flash, second_factor_at,
    audit_at, event, actor, audit_account_id, username, client_ip, detail,
    second_factor_failures
) AS SELECT
    NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL,
    NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL
WHERE 0;

CREATE TRIGGER sign_in_success INSTEAD OF INSERT ON sign_in_successes
BEGIN
    -- The message is matched by the store (COUNTER_CHANGED).
    SELECT RAISE(ABORT, 'gatehouse: the attempt counter changed since the claim')
    WHERE NOT EXISTS (
        SELECT 1 FROM sign_in_attempts
        WHERE username_key = NEW.counter_key AND version = NEW.claimed_version
    );
    UPDATE sign_in_attempts SET consecutive = NEW.consecutive, total = NEW.total,
        locked_until = NEW.locked_until, claims = NEW.claims,
        second_factor_failures = COALESCE(NEW.second_factor_failures, 0),
        version = version + 1, updated_at = NEW.at
    WHERE username_key = NEW.counter_key;
    UPDATE accounts SET previous_sign_in_at = last_sign_in_at, last_sign_in_at = NEW.at
    WHERE id = NEW.account_id;
    DELETE FROM sessions WHERE id_hash = NEW.previous_session;
    INSERT INTO sessions (id_hash, account_id, csrf_token, created_at, last_seen_at,
        reset_link_id, reset_until, flash, second_factor_at)
    VALUES (NEW.id_hash, NEW.session_account_id, NEW.csrf_token, NEW.created_at,
        NEW.last_seen_at, NEW.reset_link_id, NEW.reset_until, NEW.flash,
        NEW.second_factor_at);
    INSERT INTO audit_events (at, event, actor, account_id, username, client_ip, detail)
    VALUES (NEW.audit_at, NEW.event, NEW.actor, NEW.audit_account_id, NEW.username,
        NEW.client_ip, NEW.detail);
END;
