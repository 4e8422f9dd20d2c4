-- Gatehouse schema, version 1.
-- Times are whole seconds since the Unix epoch (INTEGER); secrets are stored
-- only as SHA-256 hashes (BLOB). The PostgreSQL migrations carry the same
-- versions, tables, columns, indexes and constraints.

CREATE TABLE employers (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL
);

CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    employer_id INTEGER NOT NULL REFERENCES employers (id),
    username TEXT NOT NULL,
    -- Upper case: usernames are compared without regard to case.
    username_key TEXT NOT NULL UNIQUE,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    email TEXT NOT NULL,
    -- Lower case: recovery matches email without regard to case.
    email_key TEXT NOT NULL,
    employee_number TEXT,
    role TEXT NOT NULL DEFAULT 'staff' CHECK (role IN ('staff', 'helpdesk', 'admin')),
    password_hash TEXT,
    password_changed_at INTEGER,
    last_sign_in_at INTEGER,
    previous_sign_in_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX accounts_email_dob ON accounts (email_key, date_of_birth);
CREATE UNIQUE INDEX accounts_employee_number ON accounts (employer_id, employee_number);

-- Sign-in attempt counters, one per username ever tried, whether or not an
-- account has it: unknown usernames lock exactly as real ones do.
CREATE TABLE sign_in_attempts (
    username_key TEXT PRIMARY KEY,
    consecutive INTEGER NOT NULL,
    total INTEGER NOT NULL,
    locked_until INTEGER,
    claims INTEGER NOT NULL,
    version INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE password_history (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX password_history_account ON password_history (account_id, id);

CREATE TABLE recovery_requests (
    id INTEGER PRIMARY KEY,
    email_key TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    username_key TEXT,
    client_ip TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    -- pending until the recovery worker has matched it; then processed.
    status TEXT NOT NULL CHECK (status IN ('pending', 'processed')),
    outcome TEXT CHECK (outcome IN ('matched', 'no_match', 'throttled', 'domain_not_allowed')),
    matched_accounts INTEGER,
    processed_at INTEGER,
    lease_until INTEGER
);
CREATE INDEX recovery_requests_pending ON recovery_requests (status, id);
CREATE INDEX recovery_requests_client ON recovery_requests (client_ip, created_at);
CREATE INDEX recovery_requests_email ON recovery_requests (email_key, created_at);

CREATE TABLE reset_links (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    token_hash BLOB NOT NULL UNIQUE,
    recovery_request_id INTEGER REFERENCES recovery_requests (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    voided_at INTEGER,
    void_reason TEXT CHECK (void_reason IN ('replaced', 'password_changed', 'email_changed'))
);
CREATE INDEX reset_links_account ON reset_links (account_id, used_at, voided_at);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL,
    recipient_key TEXT NOT NULL,
    subject TEXT NOT NULL,
    -- The message bodies hold live reset links: scrubbed (NULL) once the
    -- email is sent, expired or given up, so backups hold no usable link.
    text_body TEXT,
    html_body TEXT,
    account_id INTEGER REFERENCES accounts (id),
    recovery_request_id INTEGER REFERENCES recovery_requests (id),
    status TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'expired', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until INTEGER,
    send_by INTEGER,
    last_error TEXT,
    smtp_reply TEXT,
    created_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_recipient ON outbox (recipient_key, created_at);

CREATE TABLE sessions (
    id_hash BLOB PRIMARY KEY,
    account_id INTEGER REFERENCES accounts (id),
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    -- The reset link this browser opened: the token leaves the address bar
    -- and waits here, briefly, for the form that sets the password.
    reset_link_id INTEGER,
    reset_until INTEGER,
    flash TEXT
);
CREATE INDEX sessions_account ON sessions (account_id);
CREATE INDEX sessions_last_seen ON sessions (last_seen_at);

CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    event TEXT NOT NULL,
    actor TEXT,
    account_id INTEGER,
    username TEXT,
    client_ip TEXT,
    detail TEXT
);
CREATE INDEX audit_events_account ON audit_events (account_id, id);
CREATE INDEX audit_events_at ON audit_events (at);
