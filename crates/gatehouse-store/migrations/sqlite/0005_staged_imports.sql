-- A staff file uploaded in the console waits here between its preview and
-- the administrator's "Import these changes" (on any node), for an hour.
CREATE TABLE staged_imports (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    file_name TEXT NOT NULL,
    content BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX staged_imports_created ON staged_imports (created_at);
