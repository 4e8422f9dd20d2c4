//! Storage for Gatehouse, behind one trait.
//!
//! [`Store`] holds the operations that stand alone (most of them single
//! statements on hot paths); [`Tx`] holds the steps of the operations that
//! must happen together or not at all (a reset, a recovery request's email
//! and links, a sign-in). The services in `gatehouse-core` orchestrate them,
//! so the rules live in one place and each backend only speaks SQL.
//!
//! Every backend passes the same conformance tests (`tests/conformance.rs`).

use async_trait::async_trait;
use gatehouse_domain::import::{ImportPlan, KnownAccount, KnownEmployer};
use gatehouse_domain::lockout::AttemptCounter;
use gatehouse_domain::reset_link::{LinkPurpose, LinkRecord, VoidReason};
use gatehouse_domain::{RecoveryOutcome, Timestamp, TokenHash, UsernameKey};

pub mod sql;

pub use sql::{PoolSettings, SchemaState, SqlStore, backend_of};

/// A storage failure. The text is for operators' logs; people see a page with a reference.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The database URL or file could not be used.
    #[error("{0}")]
    Config(String),
    /// The database's schema does not match this build.
    #[error("{0}")]
    Schema(String),
    /// A compare-and-set kept losing to other writers.
    #[error("too much contention on {0}")]
    Contention(&'static str),
}

impl StoreError {
    /// Whether the database could not be reached or was too busy to answer
    /// in time (no connection within the timeout, the connection dropped,
    /// SQLite's write lock held past the busy timeout, PostgreSQL shutting
    /// down or out of connections): worth trying again later, and nothing
    /// was written, since every write is a transaction.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_),
            ) => true,
            StoreError::Database(sqlx::Error::Database(e)) => {
                let code = e.code();
                let code = code.as_deref().unwrap_or("");
                // SQLite: SQLITE_BUSY (5), SQLITE_LOCKED (6) and their
                // extended codes. PostgreSQL: class 08 (connection), 53300
                // (too many connections), 57P01–57P03 (shutting down).
                let sqlite_busy = code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
                sqlite_busy || code.starts_with("08") || code == "53300" || code.starts_with("57P0")
            }
            _ => false,
        }
    }

    /// Whether this is a uniqueness violation (a duplicate username, say).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => e.is_unique_violation(),
            _ => false,
        }
    }
}

/// Storage results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An account, with its employer.
#[derive(Debug, Clone)]
pub struct AccountRecord {
    /// Storage id.
    pub id: i64,
    /// Employer's organisation number.
    pub employer_code: String,
    /// Employer's name.
    pub employer_name: String,
    /// Username as shown.
    pub username: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Date of birth, `YYYY-MM-DD`.
    pub date_of_birth: String,
    /// Email address on record.
    pub email: String,
    /// Employee number, if any.
    pub employee_number: Option<String>,
    /// `staff`, `helpdesk` or `admin`.
    pub role: String,
    /// Argon2id PHC string; `None` until the person sets a password.
    pub password_hash: Option<String>,
    /// When the password was last set.
    pub password_changed_at: Option<Timestamp>,
    /// The latest sign-in.
    pub last_sign_in_at: Option<Timestamp>,
    /// The sign-in before the latest, shown on "My account" as "last signed in".
    pub previous_sign_in_at: Option<Timestamp>,
    /// When an administrator disabled the account; `None` while enabled.
    pub disabled_at: Option<Timestamp>,
    /// Until when a privileged account that has no authenticator yet may
    /// set one up: set when a set-up link sets its password, cleared by any
    /// other password set, an email change, or a second-factor reset.
    pub second_factor_setup_until: Option<Timestamp>,
}

impl AccountRecord {
    /// The username's lookup key.
    pub fn username_key(&self) -> UsernameKey {
        UsernameKey::from_typed(&self.username)
    }
}

/// A server-side session.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// SHA-256 of the session id in the cookie.
    pub id_hash: TokenHash,
    /// The signed-in account, or `None` before sign-in.
    pub account_id: Option<i64>,
    /// The form token for this session.
    pub csrf_token: String,
    /// When the session began.
    pub created_at: Timestamp,
    /// The latest request.
    pub last_seen_at: Timestamp,
    /// A one-time message for the next page.
    pub flash: Option<String>,
    /// When this session passed the second factor (privileged accounts).
    pub second_factor_at: Option<Timestamp>,
}

/// A privileged account's TOTP enrolment.
#[derive(Clone)]
pub struct SecondFactorRow {
    /// The shared secret, base32.
    pub totp_secret: String,
    /// When the person first typed a right code; `None` while enrolling.
    pub confirmed_at: Option<Timestamp>,
    /// The newest time step accepted.
    pub last_step: Option<u64>,
}

impl std::fmt::Debug for SecondFactorRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondFactorRow")
            .field("totp_secret", &"<redacted>")
            .field("confirmed_at", &self.confirmed_at)
            .field("last_step", &self.last_step)
            .finish()
    }
}

/// A reset link (never the token, only what is known about it).
#[derive(Debug, Clone)]
pub struct ResetLinkRow {
    /// Storage id.
    pub id: i64,
    /// The account it resets.
    pub account_id: i64,
    /// A recovery email's reset link, or an operator's set-up link.
    pub purpose: LinkPurpose,
    /// Its life so far.
    pub record: LinkRecord,
}

/// A reset link to store.
#[derive(Debug, Clone, Copy)]
pub struct NewResetLink<'a> {
    /// The account it resets.
    pub account_id: i64,
    /// The hash of its token.
    pub hash: &'a TokenHash,
    /// A reset link or a set-up link.
    pub purpose: LinkPurpose,
    /// The recovery request that asked for it, if one did.
    pub recovery_request_id: Option<i64>,
    /// When it is issued.
    pub now: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// One generation of a key the service holds ([`Store::service_keys`]).
#[derive(Clone)]
pub struct ServiceKey {
    /// Higher is newer.
    pub generation: i64,
    /// The key.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceKey")
            .field("generation", &self.generation)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A recovery request waiting to be matched.
#[derive(Debug, Clone)]
pub struct RecoveryRequestRow {
    /// Storage id.
    pub id: i64,
    /// Email typed, lower case.
    pub email_key: String,
    /// Date of birth typed, `YYYY-MM-DD`.
    pub date_of_birth: String,
    /// Username typed, upper case.
    pub username_key: Option<String>,
    /// The client's address.
    pub client_ip: String,
    /// When it was made.
    pub created_at: Timestamp,
}

/// A recovery request as helpdesk sees it.
#[derive(Debug, Clone)]
pub struct RecoveryRequestSummary {
    /// Storage id.
    pub id: i64,
    /// When it was made.
    pub created_at: Timestamp,
    /// `pending` or `processed`.
    pub status: String,
    /// How it ended.
    pub outcome: Option<String>,
    /// How many accounts matched.
    pub matched_accounts: Option<i64>,
    /// How many of them were locked (told until when, with no link).
    pub locked_accounts: Option<i64>,
    /// When it was processed.
    pub processed_at: Option<Timestamp>,
}

/// An email to put in the outbox.
#[derive(Debug, Clone)]
pub struct NewEmail {
    /// What kind of email (`recovery`, `password_changed`, `email_changed_old`, …).
    pub kind: &'static str,
    /// The address on record.
    pub recipient: String,
    /// Subject (fixed text, never anything a person typed).
    pub subject: String,
    /// Plain-text body.
    pub text_body: String,
    /// HTML body.
    pub html_body: String,
    /// The account it concerns.
    pub account_id: Option<i64>,
    /// The recovery request it answers.
    pub recovery_request_id: Option<i64>,
    /// Never send at or after this time (when its links expire).
    pub send_by: Option<Timestamp>,
}

/// An email claimed from the outbox for one delivery try.
#[derive(Debug, Clone)]
pub struct OutboxEmail {
    /// Storage id.
    pub id: i64,
    /// What kind of email.
    pub kind: String,
    /// The address on record.
    pub recipient: String,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub text_body: String,
    /// HTML body.
    pub html_body: String,
    /// Tries so far.
    pub attempts: u32,
    /// When it was queued.
    pub created_at: Timestamp,
    /// Never send at or after this time.
    pub send_by: Option<Timestamp>,
    /// The account it concerns.
    pub account_id: Option<i64>,
}

/// An email as helpdesk sees it (never its body).
#[derive(Debug, Clone)]
pub struct OutboxSummary {
    /// Storage id.
    pub id: i64,
    /// What kind of email.
    pub kind: String,
    /// The address.
    pub recipient: String,
    /// `queued`, `sent`, `expired` or `failed`.
    pub status: String,
    /// Tries so far.
    pub attempts: i64,
    /// The latest error, while retrying or after giving up.
    pub last_error: Option<String>,
    /// The mail server's reply when it accepted the email.
    pub smtp_reply: Option<String>,
    /// When it was queued.
    pub created_at: Timestamp,
    /// When it was sent, expired or given up.
    pub finished_at: Option<Timestamp>,
    /// When the next try is due (while queued).
    pub next_attempt_at: Timestamp,
    /// The recovery request it answers.
    pub recovery_request_id: Option<i64>,
}

/// One outbox email's try and how it ended.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The email, as claimed.
    pub email: OutboxEmail,
    /// How its try ended.
    pub result: DeliveryResult,
}

/// How an outbox email's try ended.
#[derive(Debug, Clone)]
pub enum DeliveryResult {
    /// The mail server accepted it, with this reply.
    Sent(String),
    /// It failed and is tried again at this time.
    Retry {
        /// The error.
        error: String,
        /// When to try again.
        at: Timestamp,
    },
    /// Its links expired before it could be sent.
    Expired(String),
    /// Given up.
    Failed(String),
}

/// A security event to record.
#[derive(Debug, Clone, Default)]
pub struct AuditRecord {
    /// When.
    pub at: Option<Timestamp>,
    /// What (an [`gatehouse_domain::audit::AuditEvent`] name).
    pub event: String,
    /// Who did it: a username, `system`, or `anonymous`.
    pub actor: Option<String>,
    /// The account it concerns.
    pub account_id: Option<i64>,
    /// The username it concerns (as typed, for attempts on unknown usernames).
    pub username: Option<String>,
    /// The client address.
    pub client_ip: Option<String>,
    /// Details, never a password or token.
    pub detail: Option<String>,
}

/// A recorded security event.
#[derive(Debug, Clone)]
pub struct AuditRow {
    /// Storage id, in order of recording.
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// What.
    pub event: String,
    /// Who did it.
    pub actor: Option<String>,
    /// The account it concerns.
    pub account_id: Option<i64>,
    /// The username it concerns.
    pub username: Option<String>,
    /// The client address.
    pub client_ip: Option<String>,
    /// Details.
    pub detail: Option<String>,
}

/// Which audit events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only events concerning this account.
    pub account_id: Option<i64>,
    /// Only events with this name.
    pub event: Option<String>,
    /// Only events by this actor.
    pub actor: Option<String>,
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
    /// Only events before this time.
    pub until: Option<Timestamp>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// What an import wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Employers added.
    pub employers_created: usize,
    /// Employers renamed.
    pub employers_renamed: usize,
    /// People added.
    pub created: usize,
    /// People changed.
    pub updated: usize,
    /// People already as the file says.
    pub unchanged: usize,
    /// Accounts whose email address changed (their links voided, sessions ended).
    pub email_changes: Vec<EmailChange>,
}

/// An email address changed by an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailChange {
    /// The account.
    pub account_id: i64,
    /// Its username.
    pub username: String,
    /// The old address.
    pub old_email: String,
    /// The new address.
    pub new_email: String,
}

/// The outcome of a compare-and-set on an attempt counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterUpdate {
    /// The counter as it was when the change was decided.
    pub before: AttemptCounter,
    /// The counter written, or `None` if the change wrote nothing.
    pub after: Option<AttemptCounter>,
    /// The version `after` was written at, for a later compare-and-set
    /// against it ([`Store::record_sign_in_success`]).
    pub version: Option<i64>,
}

/// Everything a right password at sign-in writes, at once: the claimed
/// attempt released, the sign-in time, the new session in place of the
/// previous one, and the audit record.
#[derive(Debug, Clone, Copy)]
pub struct SignInSuccess<'a> {
    /// The attempt counter the claim was made on.
    pub counter_key: &'a UsernameKey,
    /// The version the claim wrote ([`CounterUpdate::version`]): the write
    /// happens only if the counter is still at it.
    pub claimed_version: i64,
    /// The counter with the claim released, worked out from the claimed one.
    pub counter: &'a AttemptCounter,
    /// The account signed in to.
    pub account_id: i64,
    /// When.
    pub now: Timestamp,
    /// The session the browser had before, ended (a new id at sign-in).
    pub previous_session: Option<&'a TokenHash>,
    /// The new session.
    pub session: &'a SessionRecord,
    /// The audit record of the sign-in.
    pub audit: &'a AuditRecord,
}

/// A change to an attempt counter, decided from its current value: return
/// the new value, or `None` to leave it. It may be called more than once
/// (each time another writer got there first), always with the latest value.
pub type CounterChange<'a> = dyn FnMut(AttemptCounter) -> Option<AttemptCounter> + Send + 'a;

/// How much work waits for the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepths {
    /// Recovery requests recorded and not yet processed.
    pub recovery_pending: i64,
    /// Emails queued and not yet sent, expired or given up.
    pub emails_queued: i64,
}

/// Which database engine a store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, one file: the embedded default, one node.
    Sqlite,
    /// PostgreSQL: several nodes.
    Postgres,
}

/// Storage operations that stand alone.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which engine this is.
    fn backend(&self) -> Backend;

    /// Begins a write transaction.
    async fn begin(&self) -> Result<Box<dyn Tx>>;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<()>;

    /// The database server's clock, in milliseconds since the Unix epoch,
    /// where several nodes share the database (PostgreSQL); `None` on
    /// SQLite, whose one machine has one clock.
    async fn database_time_ms(&self) -> Result<Option<i64>>;

    /// Reads and changes a username's attempt counter atomically (compare-and-set, retried).
    async fn update_attempts(
        &self,
        key: &UsernameKey,
        now: Timestamp,
        change: &mut CounterChange<'_>,
    ) -> Result<CounterUpdate>;

    /// Reads a username's attempt counter.
    async fn attempts(&self, key: &UsernameKey) -> Result<AttemptCounter>;

    /// Writes a sign-in's success in one statement, if its attempt counter
    /// is still as the claim left it; `Ok(false)`, writing nothing, if
    /// another attempt changed it since (the caller then reads it afresh in
    /// a transaction). One statement rather than a transaction of seven
    /// because each statement is a hand-off to SQLite's connection thread,
    /// about half of what a sign-in cost beside its hash (BENCHMARKS.md).
    async fn record_sign_in_success(&self, success: &SignInSuccess<'_>) -> Result<bool>;

    /// Finds an account by username key.
    async fn account_by_username(&self, key: &UsernameKey) -> Result<Option<AccountRecord>>;

    /// Finds an account by id.
    async fn account_by_id(&self, id: i64) -> Result<Option<AccountRecord>>;

    /// The account's previous password hashes, newest first (the current one included).
    async fn password_history(&self, account_id: i64) -> Result<Vec<String>>;

    /// Replaces a password hash with a stronger one of the same password (parameters raised).
    async fn upgrade_password_hash(&self, account_id: i64, old: &str, new: &str) -> Result<()>;

    /// Finds a session.
    async fn session(&self, id_hash: &TokenHash) -> Result<Option<SessionRecord>>;

    /// Stores a new session.
    async fn create_session(&self, session: &SessionRecord) -> Result<()>;

    /// Records activity on a session.
    async fn touch_session(&self, id_hash: &TokenHash, now: Timestamp) -> Result<()>;

    /// Ends a session.
    async fn delete_session(&self, id_hash: &TokenHash) -> Result<()>;

    /// Sets or clears a session's one-time message.
    async fn set_session_flash(&self, id_hash: &TokenHash, flash: Option<&str>) -> Result<()>;

    /// Records that a session passed the second factor.
    async fn set_session_second_factor(&self, id_hash: &TokenHash, at: Timestamp) -> Result<()>;

    /// Sets an account's role (`staff`, `helpdesk`, `admin`); false if no such account.
    async fn set_role(&self, account_id: i64, role: &str, now: Timestamp) -> Result<bool>;

    /// Disables (`Some(when)`) or enables (`None`) an account, ending its
    /// sessions when disabling; false if no such account.
    async fn set_disabled(&self, account_id: i64, at: Option<Timestamp>) -> Result<bool>;

    /// Lifts a lock early (only when the operator setting allows it).
    async fn lift_lock(&self, key: &UsernameKey, now: Timestamp) -> Result<()>;

    /// The two newest generations of the service's key for `purpose`
    /// (newest first), after storing `first` (if given) as generation 1 if
    /// there is none yet: of several nodes starting at once, the first to
    /// write wins and every node reads the same key.
    async fn service_keys(
        &self,
        purpose: &str,
        first: Option<&[u8]>,
        now: Timestamp,
    ) -> Result<Vec<ServiceKey>>;

    /// Adds a newer generation of the key for `purpose` and forgets every
    /// generation but it and the one before; returns the new generation.
    async fn rotate_service_key(&self, purpose: &str, secret: &[u8], now: Timestamp)
    -> Result<i64>;

    /// Keeps an uploaded staff file between its preview and its import.
    async fn stage_import(
        &self,
        account_id: i64,
        file_name: &str,
        content: &[u8],
        now: Timestamp,
    ) -> Result<i64>;

    /// A staged file, if it exists, was uploaded by `account_id`, and is
    /// younger than `since`: its name and content.
    async fn staged_import(
        &self,
        id: i64,
        account_id: i64,
        since: Timestamp,
    ) -> Result<Option<(String, Vec<u8>)>>;

    /// Forgets a staged file (after its import, or when it is too old).
    async fn drop_staged_imports(&self, id: Option<i64>, before: Timestamp) -> Result<u64>;

    /// Accounts whose username, email address or employee number is `query`,
    /// or whose surname is `query` without regard to case: at most `limit`.
    async fn search_accounts(&self, query: &str, limit: u32) -> Result<Vec<AccountRecord>>;

    /// An account's TOTP enrolment, if any.
    async fn second_factor(&self, account_id: i64) -> Result<Option<SecondFactorRow>>;

    /// Starts (or restarts, while unconfirmed) a TOTP enrolment; false if a
    /// confirmed factor exists.
    async fn start_second_factor(
        &self,
        account_id: i64,
        totp_secret: &str,
        now: Timestamp,
    ) -> Result<bool>;

    /// Accepts a TOTP time step if it is newer than the last accepted one
    /// (and confirms an enrolment); false for a replay.
    async fn accept_second_factor_step(
        &self,
        account_id: i64,
        step: u64,
        now: Timestamp,
    ) -> Result<bool>;

    /// Replaces an account's recovery codes with these hashes.
    async fn replace_recovery_codes(
        &self,
        account_id: i64,
        hashes: &[TokenHash],
        now: Timestamp,
    ) -> Result<()>;

    /// Spends a recovery code; false if it is not one of the account's unused codes.
    async fn use_recovery_code(
        &self,
        account_id: i64,
        hash: &TokenHash,
        now: Timestamp,
    ) -> Result<bool>;

    /// Forgets an account's authenticator and recovery codes (it enrols again
    /// at its next console sign-in) and ends its sessions.
    async fn clear_second_factor(&self, account_id: i64) -> Result<()>;

    /// Unused recovery codes left.
    async fn recovery_codes_left(&self, account_id: i64) -> Result<i64>;

    /// Finds a reset link by its token's hash.
    async fn reset_link_by_hash(&self, hash: &TokenHash) -> Result<Option<ResetLinkRow>>;

    /// Finds a reset link by id.
    async fn reset_link(&self, id: i64) -> Result<Option<ResetLinkRow>>;

    /// Takes up to `limit` pending recovery requests, leased until `lease_until`.
    async fn claim_recovery_requests(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<RecoveryRequestRow>>;

    /// Takes up to `limit` due emails, leased until `lease_until`.
    ///
    /// Emails to one address go out in the order they were queued: one is
    /// not taken while an older one to the same address is still queued
    /// (due, waiting for a retry, or being sent). A recovery email replaces
    /// the links of the one before, and people open the newest email in
    /// their inbox, so the newest must arrive last.
    async fn claim_outbox(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<OutboxEmail>>;

    /// Records how emails' tries ended (scrubbing each body that is
    /// finished), each with its audit event, in one transaction: the outbox
    /// worker records together the sends that ended while its last record
    /// was being written, so one write serves many emails under load and
    /// none waits longer than the write before it.
    async fn record_deliveries(&self, deliveries: &[Delivery], now: Timestamp) -> Result<()>;

    /// Records a security event.
    async fn audit(&self, record: &AuditRecord) -> Result<()>;

    /// Lists security events, newest first.
    async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>>;

    /// Recovery requests for an email address, newest first.
    async fn recovery_requests_for(
        &self,
        email_key: &str,
        limit: u32,
    ) -> Result<Vec<RecoveryRequestSummary>>;

    /// Emails to an address, newest first.
    async fn emails_to(&self, email_key: &str, limit: u32) -> Result<Vec<OutboxSummary>>;

    /// Employers and accounts, for planning an import.
    async fn import_index(&self) -> Result<(Vec<KnownEmployer>, Vec<KnownAccount>)>;

    /// How many sessions an account has.
    async fn session_count(&self, account_id: i64) -> Result<i64>;

    /// How much work waits: recovery requests not yet processed, emails not yet sent.
    async fn queue_depths(&self) -> Result<QueueDepths>;

    /// Deletes what has outlived its use: idle sessions, counters of unknown
    /// usernames with nothing to remember, recovery request details.
    async fn purge(&self, now: Timestamp, session_idle: gatehouse_domain::Span) -> Result<u64>;
}

/// The steps of an operation that happens entirely or not at all.
///
/// Dropping a `Tx` without [`Tx::commit`] rolls it back.
#[async_trait]
pub trait Tx: Send {
    /// Makes every step permanent.
    async fn commit(self: Box<Self>) -> Result<()>;

    /// Reads a username's attempt counter, locking it for this transaction.
    async fn attempts(&mut self, key: &UsernameKey) -> Result<AttemptCounter>;

    /// Writes a username's attempt counter.
    async fn set_attempts(
        &mut self,
        key: &UsernameKey,
        counter: &AttemptCounter,
        now: Timestamp,
    ) -> Result<()>;

    /// Finds an account by id.
    async fn account_by_id(&mut self, id: i64) -> Result<Option<AccountRecord>>;

    /// Finds an account by username key.
    async fn account_by_username(&mut self, key: &UsernameKey) -> Result<Option<AccountRecord>>;

    /// Accounts with this email and date of birth (and username, if given).
    async fn accounts_for_recovery(
        &mut self,
        email_key: &str,
        date_of_birth: &str,
        username_key: Option<&str>,
    ) -> Result<Vec<AccountRecord>>;

    /// Emails of `kind` to an address since `since`.
    async fn emails_sent_since(
        &mut self,
        recipient_key: &str,
        kind: &str,
        since: Timestamp,
    ) -> Result<u32>;

    /// Recovery requests from a client address since `since`.
    async fn recovery_requests_from(&mut self, client_ip: &str, since: Timestamp) -> Result<u32>;

    /// Audit events named `event` recorded for a client address since `since`
    /// (how per-client throttles that keep no other row count).
    async fn audit_events_from(
        &mut self,
        client_ip: &str,
        event: &str,
        since: Timestamp,
    ) -> Result<u32>;

    /// Records a recovery request.
    async fn insert_recovery_request(
        &mut self,
        email_key: &str,
        date_of_birth: &str,
        username_key: Option<&str>,
        client_ip: &str,
        now: Timestamp,
    ) -> Result<i64>;

    /// Marks a pending request processed; `false` if it was not pending (someone else did it).
    async fn finish_recovery_request(
        &mut self,
        id: i64,
        outcome: RecoveryOutcome,
        locked_accounts: u32,
        now: Timestamp,
    ) -> Result<bool>;

    /// Voids an account's usable links (except `keep`); returns how many.
    async fn void_links(
        &mut self,
        account_id: i64,
        reason: VoidReason,
        now: Timestamp,
        keep: Option<i64>,
    ) -> Result<u64>;

    /// Stores a new reset link.
    async fn insert_reset_link(&mut self, link: &NewResetLink<'_>) -> Result<i64>;

    /// Reads a reset link.
    async fn reset_link(&mut self, id: i64) -> Result<Option<ResetLinkRow>>;

    /// Spends a link if it is still usable at `now`; `false` if another request got there first.
    async fn consume_reset_link(&mut self, id: i64, now: Timestamp) -> Result<bool>;

    /// Sets an account's password and adds it to the history, keeping
    /// `keep` entries; the account may set up a second factor until
    /// `second_factor_setup_until` (a set-up link's password), or not at
    /// all (`None`: any other password).
    async fn set_password(
        &mut self,
        account_id: i64,
        hash: &str,
        now: Timestamp,
        keep: usize,
        second_factor_setup_until: Option<Timestamp>,
    ) -> Result<()>;

    /// Changes an account's email address.
    async fn set_email(&mut self, account_id: i64, email: &str, now: Timestamp) -> Result<()>;

    /// Records a sign-in.
    async fn record_sign_in(&mut self, account_id: i64, now: Timestamp) -> Result<()>;

    /// Ends every session of an account; returns how many.
    async fn delete_sessions_of(&mut self, account_id: i64) -> Result<u64>;

    /// Makes every session of an account pass the second factor again
    /// (the account was locked: someone has been guessing); returns how many.
    async fn forget_second_factor_passes(&mut self, account_id: i64) -> Result<u64>;

    /// Stores a new session.
    async fn create_session(&mut self, session: &SessionRecord) -> Result<()>;

    /// Ends a session.
    async fn delete_session(&mut self, id_hash: &TokenHash) -> Result<()>;

    /// Puts an email in the outbox. Older emails to the same address that
    /// wait for a retry are made due now, so that the new one (which goes
    /// out after them) is not held up by their backoff.
    async fn enqueue_email(&mut self, email: &NewEmail, now: Timestamp) -> Result<i64>;

    /// Records a security event.
    async fn audit(&mut self, record: &AuditRecord) -> Result<()>;

    /// Writes an import plan: employers, new people, changes.
    async fn apply_import(&mut self, plan: &ImportPlan, now: Timestamp) -> Result<ImportSummary>;
}
