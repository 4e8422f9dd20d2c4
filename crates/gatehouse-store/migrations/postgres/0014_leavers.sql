-- A full staff-file import disables the people of its employers who are
-- missing from the file ("leavers"). It records when on the account, so
-- that someone who appears in a later file again is enabled, while an
-- account an administrator disabled by hand stays disabled: an account is
-- a leaver while `left_at` equals `disabled_at` (a later disabling by hand,
-- from any node, sets a different `disabled_at`).
ALTER TABLE accounts ADD COLUMN left_at BIGINT;

-- A leaver's outstanding reset links are voided, for a reason of their own.
ALTER TABLE reset_links DROP CONSTRAINT reset_links_void_reason_check;
ALTER TABLE reset_links ADD CONSTRAINT reset_links_void_reason_check
    CHECK (void_reason IN ('replaced', 'password_changed', 'email_changed', 'account_disabled'));
