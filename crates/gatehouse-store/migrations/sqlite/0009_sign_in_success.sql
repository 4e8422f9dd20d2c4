-- A right password at sign-in writes four tables. Inserting one row here
-- does all of it in one statement (Store::record_sign_in_success): sqlx runs
-- each SQLite connection on a thread of its own, and every statement is a
-- hand-off to that thread and back, which beside the hash was about half of
-- a sign-in's cost (BENCHMARKS.md, "Eighth pass"). The values are worked
-- out in Rust; the trigger only writes them, and only if the attempt counter
-- is still at the version the sign-in's claim wrote (compare-and-set: the
-- statement holds the write lock from the check to the last write).
CREATE VIEW sign_in_successes (
    counter_key, claimed_version, consecutive, total, locked_until, claims, at,
    account_id, previous_session,
    id_hash, session_account_id, csrf_token, created_at, last_seen_at,
    reset_link_id, reset_until, flash, second_factor_at,
    audit_at, event, actor, audit_account_id, username, client_ip, detail
) AS SELECT
    NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL,
    NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL
WHERE 0;

CREATE TRIGGER sign_in_success INSTEAD OF INSERT ON sign_in_successes
BEGIN
    -- The message is matched by the store (sql.rs, COUNTER_CHANGED).
    SELECT RAISE(ABORT, 'gatehouse: the attempt counter changed since the claim')
    WHERE NOT EXISTS (
        SELECT 1 FROM sign_in_attempts
        WHERE username_key = NEW.counter_key AND version = NEW.claimed_version
    );
    UPDATE sign_in_attempts SET consecutive = NEW.consecutive, total = NEW.total,
        locked_until = NEW.locked_until, claims = NEW.claims, version = version + 1,
        updated_at = NEW.at
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
