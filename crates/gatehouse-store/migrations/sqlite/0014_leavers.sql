-- A full staff-file import disables the people of its employers who are
-- missing from the file ("leavers"). It records when on the account, so
-- that someone who appears in a later file again is enabled, while an
-- account an administrator disabled by hand stays disabled: an account is
-- a leaver while `left_at` equals `disabled_at` (a later disabling by hand,
-- from any node, sets a different `disabled_at`).
ALTER TABLE accounts ADD COLUMN left_at INTEGER;

-- A leaver's outstanding reset links are voided, for a reason of their
-- own. SQLite cannot change a CHECK constraint in place: the table is made
-- again with the wider one, its rows and index copied, inside the
-- migration's transaction.
CREATE TABLE reset_links_new (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    token_hash BLOB NOT NULL UNIQUE,
    recovery_request_id INTEGER REFERENCES recovery_requests (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    voided_at INTEGER,
    void_reason TEXT CHECK (void_reason IN ('replaced', 'password_changed', 'email_changed', 'account_disabled')),
    purpose TEXT NOT NULL DEFAULT 'reset' CHECK (purpose IN ('reset', 'set_up'))
);
INSERT INTO reset_links_new (id, account_id, token_hash, recovery_request_id, created_at,
    expires_at, used_at, voided_at, void_reason, purpose)
SELECT id, account_id, token_hash, recovery_request_id, created_at, expires_at, used_at,
    voided_at, void_reason, purpose FROM reset_links;
DROP TABLE reset_links;
ALTER TABLE reset_links_new RENAME TO reset_links;
CREATE INDEX reset_links_account ON reset_links (account_id, used_at, voided_at);
-- And the indexes version 13 gave it, which went with the old table.
CREATE INDEX reset_links_expiry ON reset_links (expires_at);
CREATE INDEX reset_links_request ON reset_links (recovery_request_id);
