-- How many of a recovery request's matched accounts were locked (their
-- email says until when instead of carrying a link), for the helpdesk's
-- "did the email go out?".
ALTER TABLE recovery_requests ADD COLUMN locked_accounts INTEGER;
