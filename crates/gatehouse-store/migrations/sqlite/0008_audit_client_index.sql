-- Unknown reset links opened from one client address in the last hour are
-- counted from the audit log (the throttle on guessing links, NIST SP
-- 800-63B-4 §4.2.1.2); this index makes that count read only that
-- address's recent rows, however large the log grows (tests/indexes.rs).
CREATE INDEX audit_events_client ON audit_events (client_ip, event, at);
