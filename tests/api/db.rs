//! The tests' own view of the database: a connection pool of their own on
//! the service's database, and the store's queries under the names the
//! tests read best. (The service itself reaches the store only through
//! `gatehouse-core`.)

use gatehouse_domain::lockout::AttemptCounter;
use gatehouse_domain::{TokenHash, UsernameKey};
use gatehouse_store::{
    AccountRecord, AuditFilter, AuditRow, NewEmail, NewResetLink, OutboxSummary, PoolSettings,
    QueueDepths, RecoveryRequestSummary, ResetLinkRow, Result, SqlStore, accounts, attempts, audit,
    housekeeping, outbox, recovery, reset_links, sessions,
};

/// The tests' pool on the service's database.
#[derive(Debug, Clone)]
pub struct Db(pub SqlStore);

impl Db {
    /// A pool on the database at `url`.
    pub async fn open(url: &str) -> Self {
        Self(
            SqlStore::connect(url, PoolSettings::default())
                .await
                .expect("the tests' connection to the database"),
        )
    }

    /// Emails to an address, newest first.
    pub async fn emails_to(&self, email_key: &str, limit: u32) -> Result<Vec<OutboxSummary>> {
        outbox::to_address(&mut *self.0.read().await?, email_key, limit).await
    }

    /// Recovery requests for an address, newest first.
    pub async fn recovery_requests_for(
        &self,
        email_key: &str,
        limit: u32,
    ) -> Result<Vec<RecoveryRequestSummary>> {
        recovery::for_email(&mut *self.0.read().await?, email_key, limit).await
    }

    /// The reset link whose token hashes to `hash`.
    pub async fn reset_link_by_hash(&self, hash: &TokenHash) -> Result<Option<ResetLinkRow>> {
        reset_links::by_hash(&mut *self.0.read().await?, hash).await
    }

    /// People found as the console finds them.
    pub async fn search_accounts(&self, query: &str, limit: u32) -> Result<Vec<AccountRecord>> {
        accounts::search(&mut *self.0.read().await?, query, limit).await
    }

    /// How many sessions an account has.
    pub async fn session_count(&self, account_id: i64) -> Result<i64> {
        sessions::count_of(&mut *self.0.read().await?, account_id).await
    }

    /// An account by id.
    pub async fn account_by_id(&self, id: i64) -> Result<Option<AccountRecord>> {
        accounts::by_id(&mut *self.0.read().await?, id).await
    }

    /// An account by username.
    pub async fn account_by_username(&self, key: &UsernameKey) -> Result<Option<AccountRecord>> {
        accounts::by_username(&mut *self.0.read().await?, key).await
    }

    /// Audit events, newest first.
    pub async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>> {
        audit::list(&mut *self.0.read().await?, filter).await
    }

    /// A username's attempt counter.
    pub async fn attempts(&self, key: &UsernameKey) -> Result<AttemptCounter> {
        attempts::read(&mut *self.0.read().await?, key).await
    }

    /// How much work waits for the workers.
    pub async fn queue_depths(&self) -> Result<QueueDepths> {
        housekeeping::queue_depths(&mut *self.0.read().await?).await
    }

    /// Puts emails in the outbox, as a request would, at `now`.
    pub async fn enqueue(
        &self,
        emails: &[NewEmail],
        now: gatehouse_domain::Timestamp,
    ) -> Result<()> {
        let mut tx = self.0.begin().await?;
        for email in emails {
            outbox::enqueue(&mut tx, email, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores a reset link.
    pub async fn insert_reset_link(&self, link: &NewResetLink<'_>) -> Result<i64> {
        let mut tx = self.0.begin().await?;
        let id = reset_links::insert(&mut tx, link).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Sets an account's password hash directly.
    pub async fn set_password(
        &self,
        account_id: i64,
        hash: &str,
        now: gatehouse_domain::Timestamp,
    ) -> Result<()> {
        let mut tx = self.0.begin().await?;
        accounts::set_password(&mut tx, account_id, hash, now, 4, None).await?;
        tx.commit().await?;
        Ok(())
    }
}
