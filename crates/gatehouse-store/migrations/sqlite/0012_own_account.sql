-- A person's own account: where they are signed in, with which browser,
-- and their recent activity with the browser of each event.
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
ALTER TABLE sessions ADD COLUMN client_ip TEXT;
ALTER TABLE audit_events ADD COLUMN user_agent TEXT;

-- Browsers each account has signed in from (a random id in a long-lived
-- cookie, stored as its hash), for "a new sign-in from a browser this
-- account has not used before" notices.
CREATE TABLE account_browsers (
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    browser_hash BLOB NOT NULL,
    first_seen_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, browser_hash)
);
CREATE INDEX account_browsers_last_seen ON account_browsers (last_seen_at);

-- The one-statement sign-in writes the session's browser and address, and
-- the audit event's browser, too: three columns at the end of the view, so
-- that a node of the release before, whose insert names its columns and
-- leaves them out, still fits.
DROP TRIGGER sign_in_success;
DROP VIEW sign_in_successes;

CREATE VIEW sign_in_successes (
    counter_key, claimed_version, consecutive, total, locked_until, claims, at,
    account_id, previous_session,
    id_hash, session_account_id, csrf_token, created_at, last_seen_at,
    reset_link_id, reset_until, flash, second_factor_at,
    audit_at, event, actor, audit_account_id, username, client_ip, detail,
    second_factor_failures, session_user_agent, session_client_ip, audit_user_agent
) AS SELECT
    NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL,
    NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL
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
        reset_link_id, reset_until, flash, second_factor_at, user_agent, client_ip)
    VALUES (NEW.id_hash, NEW.session_account_id, NEW.csrf_token, NEW.created_at,
        NEW.last_seen_at, NEW.reset_link_id, NEW.reset_until, NEW.flash,
        NEW.second_factor_at, NEW.session_user_agent, NEW.session_client_ip);
    INSERT INTO audit_events (at, event, actor, account_id, username, client_ip, detail,
        user_agent)
    VALUES (NEW.audit_at, NEW.event, NEW.actor, NEW.audit_account_id, NEW.username,
        NEW.client_ip, NEW.detail, NEW.audit_user_agent);
END;
