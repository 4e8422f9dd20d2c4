-- Wrong second-factor codes are counted apart from wrong passwords, so that
-- a right password does not forgive them.
ALTER TABLE sign_in_attempts ADD COLUMN second_factor_failures BIGINT NOT NULL DEFAULT 0;

-- A set-up link (from create-admin, grant or reset-second-factor) sets a
-- privileged person's password like a reset link, and then lets them, and
-- only them, set up an authenticator app until the time kept on the account.
ALTER TABLE reset_links ADD COLUMN purpose TEXT NOT NULL DEFAULT 'reset' CHECK (purpose IN ('reset', 'set_up'));
ALTER TABLE accounts ADD COLUMN second_factor_setup_until BIGINT;

-- Secret keys the service generates on its first start and every node
-- shares: form tokens and the cookie that carries an opened reset link are
-- MACs under them. Rotating adds a generation; the one before stays valid
-- until the next rotation, so forms open at the time still work.
CREATE TABLE service_keys (
    purpose TEXT NOT NULL,
    generation BIGINT NOT NULL,
    secret BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (purpose, generation)
);

-- An opened reset link now waits in a signed cookie, not in a session row
-- (a flood of opened links wrote a row each): the columns sessions kept
-- for it stay, unused and empty, until no node of the release before this
-- one can be running, so that nodes of both releases work side by side
-- during a rolling deploy. For the same reason the sign-in view keeps
-- them and takes the new counter column (last, so an older node's insert,
-- which names its columns and leaves it out, still fits).
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
    CAST(NULL AS BIGINT) AS second_factor_failures
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
        reset_link_id, reset_until, flash, second_factor_at)
    VALUES (NEW.id_hash, NEW.session_account_id, NEW.csrf_token, NEW.created_at,
        NEW.last_seen_at, NEW.reset_link_id, NEW.reset_until, NEW.flash,
        NEW.second_factor_at);
    INSERT INTO audit_events (at, event, actor, account_id, username, client_ip, detail)
    VALUES (NEW.audit_at, NEW.event, NEW.actor, NEW.audit_account_id, NEW.username,
        NEW.client_ip, NEW.detail);
    RETURN NEW;
END
$$;

CREATE TRIGGER sign_in_success INSTEAD OF INSERT ON sign_in_successes
FOR EACH ROW EXECUTE FUNCTION record_sign_in_success();
