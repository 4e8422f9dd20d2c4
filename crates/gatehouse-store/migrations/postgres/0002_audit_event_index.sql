-- The audit log filtered by event name, newest first, without reading the
-- whole log (tests/indexes.rs).
CREATE INDEX audit_events_event ON audit_events (event, id);
