-- A right password at sign-in writes four tables. Inserting one row here
-- does all of it in one statement (Store::record_sign_in_success): one
-- round trip instead of a transaction of seven, and the same statement as
-- on SQLite, where each statement is a hand-off to a connection thread
-- (BENCHMARKS.md, "Eighth pass"). The values are worked out in Rust; the
-- trigger only writes them, and only if the attempt counter is still at the
-- version the sign-in's claim wrote (compare-and-set: a concurrent writer's
-- row lock makes the UPDATE wait, then see the new version).
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
    CAST(NULL AS TEXT) AS detail
WHERE FALSE;

CREATE FUNCTION record_sign_in_success() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sign_in_attempts SET consecutive = NEW.consecutive, total = NEW.total,
        locked_until = NEW.locked_until, claims = NEW.claims, version = version + 1,
        updated_at = NEW.at
    WHERE username_key = NEW.counter_key AND version = NEW.claimed_version;
    IF NOT FOUND THEN
        -- The message is matched by the store (sql.rs, COUNTER_CHANGED).
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
