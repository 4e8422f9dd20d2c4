-- An administrator can disable an account: it cannot sign in, set a
-- password or be matched by recovery until enabled again.
ALTER TABLE accounts ADD COLUMN disabled_at BIGINT;

-- The audit log filtered by who acted, newest first.
CREATE INDEX audit_events_actor ON audit_events (actor, id);
