-- A second factor for helpdesk and admin accounts (TOTP, RFC 6238) and the
-- one-time recovery codes that stand in for a lost authenticator.

CREATE TABLE second_factors (
    account_id INTEGER PRIMARY KEY REFERENCES accounts (id),
    -- The shared TOTP secret. It must be readable to check codes; a
    -- database reader could mint codes, but would still need the password.
    totp_secret TEXT NOT NULL,
    -- NULL while enrolling: the person has not yet typed a code from it.
    confirmed_at INTEGER,
    -- The newest time step accepted: a code is never accepted twice.
    last_step INTEGER,
    created_at INTEGER NOT NULL
);

CREATE TABLE recovery_codes (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    code_hash BLOB NOT NULL,
    used_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX recovery_codes_account ON recovery_codes (account_id, used_at);

-- When this session passed the second factor; privileged pages need it.
ALTER TABLE sessions ADD COLUMN second_factor_at INTEGER;

-- The helpdesk finds people by surname without regard to case.
ALTER TABLE accounts ADD COLUMN last_name_key TEXT NOT NULL DEFAULT '';
UPDATE accounts SET last_name_key = lower(last_name);
CREATE INDEX accounts_last_name ON accounts (last_name_key);
-- … and by employee number, whatever the employer.
CREATE INDEX accounts_number ON accounts (employee_number);
