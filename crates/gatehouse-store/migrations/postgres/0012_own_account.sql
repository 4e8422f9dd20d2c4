-- A person's own account: where they are signed in, with which browser,
-- and their recent activity with the browser of each event.
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
ALTER TABLE sessions ADD COLUMN client_ip TEXT;
ALTER TABLE audit_events ADD COLUMN user_agent TEXT;

-- Browsers each account has signed in from (a random id in a long-lived
-- cookie, stored as its hash), for "a new sign-in from a browser this
-- account has not used before" notices.
CREATE TABLE account_browsers (
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    browser_hash BYTEA NOT NULL,
    first_seen_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, browser_hash)
);
CREATE INDEX account_browsers_last_seen ON account_browsers (last_seen_at);

-- The one-statement sign-in writes the session's browser and address, and
-- the audit event's browser, too: three columns at the end of the view, so
-- that a node of the release before, whose insert names its columns and
-- leaves them out, still fits.
DROP VIEW sign_in_successes;

CREATE VIEW sign_in_successes AS SELECT
    CAST(NULL AS TEXT) AS counter_key,
    CAST(NULL AS BIGINT) AS claimed_version,
    CAST(NULL AS BIGINT) AS consecutive,
    CAST(NULL AS BIGINT) AS total,
    CAST(NULL AS BIGINT) AS locked_until,
    CAST(NULL AS BIGINT) AS claims,
    CAST(NULL AS BIGINT) AS at,
    CAST(NULL AS BIGINT) AS account_id,
    CAST(NULL AS BYTEA) AS previous_session,
    CAST(NULL AS BYTEA) AS id_hash,
    CAST(NULL AS BIGINT) AS session_account_id,
    CAST(NULL AS TEXT) AS csrf_token,
    CAST(NULL AS BIGINT) AS created_at,
    CAST(NULL AS BIGINT) AS last_seen_at,
    CAST(NULL AS BIGINT) AS reset_link_id,
    CAST(NULL AS BIGINT) AS reset_until,
    CAST(NULL AS TEXT) AS flash,
    CAST(NULL AS BIGINT) AS second_factor_at,
    CAST(NULL AS BIGINT) AS audit_at,
    CAST(NULL AS TEXT) AS event,
    CAST(NULL AS TEXT) AS actor,
    CAST(NULL AS BIGINT) AS audit_account_id,
    CAST(NULL AS TEXT) AS username,
    CAST(NULL AS TEXT) AS client_ip,
    CAST(NULL AS TEXT) AS detail,
    CAST(NULL AS BIGINT) AS second_factor_failures,
    CAST(NULL AS TEXT) AS session_user_agent,
    CAST(NULL AS TEXT) AS session_client_ip,
    CAST(NULL AS TEXT) AS audit_user_agent
WHERE FALSE;

CREATE OR REPLACE FUNCTION record_sign_in_success() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sign_in_attempts SET consecutive = NEW.consecutive, total = NEW.total,
        locked_until = NEW.locked_until, claims = NEW.claims,
        second_factor_failures = COALESCE(NEW.second_factor_failures, 0),
        version = version + 1, updated_at = NEW.at
    WHERE username_key = NEW.counter_key AND version = NEW.claimed_version;
    IF NOT FOUND THEN
        -- The message is matched by the store (COUNTER_CHANGED).
        RAISE EXCEPTION 'gatehouse: the attempt counter changed since the claim';
    END IF;
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
    RETURN NEW;
END
$$;

CREATE TRIGGER sign_in_success INSTEAD OF INSERT ON sign_in_successes
FOR EACH ROW EXECUTE FUNCTION record_sign_in_success();
