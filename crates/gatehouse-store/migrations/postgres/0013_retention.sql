-- Running for years: the worker forgets finished records after their
-- retention period, each found through an index, and an account whose
-- personal details were erased says when.
ALTER TABLE accounts ADD COLUMN erased_at BIGINT;
CREATE INDEX accounts_disabled ON accounts (disabled_at);

CREATE INDEX outbox_finished ON outbox (finished_at);
CREATE INDEX outbox_account ON outbox (account_id);
CREATE INDEX outbox_request ON outbox (recovery_request_id);
CREATE INDEX reset_links_expiry ON reset_links (expires_at);
CREATE INDEX reset_links_request ON reset_links (recovery_request_id);
CREATE INDEX recovery_requests_processed ON recovery_requests (processed_at);
