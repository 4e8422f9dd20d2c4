//! The tests' own view of the database: a connection pool of their own on
//! the service's database, and the store's queries under the names the
//! tests read best. (The service itself reaches the store only through
//! `gatehouse-core`.)

use std::collections::BTreeMap;

use gatehouse_domain::lockout::AttemptCounter;
use gatehouse_domain::{TokenHash, UsernameKey};
use gatehouse_store::{
    AccountRecord, AuditFilter, AuditRow, NewEmail, NewResetLink, OutboxSummary, PoolSettings,
    QueueDepths, RecoveryRequestSummary, ResetLinkRow, Result, SqlStore, accounts, attempts, audit,
    housekeeping, outbox, recovery, reset_links, sessions,
};

use super::app::{OPERATOR, TestApp};

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

    /// The stored private signing keys (PKCS#8, or sealed).
    pub async fn signing_keys(&self) -> Vec<Vec<u8>> {
        gatehouse_store::oidc::signing_keys::all(&mut self.0.read().await.expect("connection"))
            .await
            .expect("keys")
            .into_iter()
            .map(|k| k.private_key)
            .collect()
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

/// The audit rows of `event`, newest first.
pub async fn audit_events(app: &TestApp, event: &str) -> Vec<gatehouse_store::AuditRow> {
    app.db
        .audit_events(&gatehouse_store::AuditFilter {
            event: Some(
                gatehouse_domain::audit::AuditEvent::from_stored(event)
                    .unwrap_or_else(|| panic!("no audit event is called {event}")),
            ),
            limit: 10_000,
            ..Default::default()
        })
        .await
        .expect("audit")
}

/// Every audit row, newest first.
pub async fn audit_log(app: &TestApp) -> Vec<gatehouse_store::AuditRow> {
    app.db
        .audit_events(&gatehouse_store::AuditFilter {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .expect("audit")
}

/// The account whose username is `username`, as the database has it now.
pub async fn account(app: &TestApp, username: &str) -> gatehouse_store::AccountRecord {
    app.db
        .account_by_username(&gatehouse_domain::UsernameKey::from_typed(username))
        .await
        .expect("read")
        .unwrap_or_else(|| panic!("no account {username}"))
}

/// What the console knows of `username`'s account now: lock, failure counts, record.
pub async fn account_status(
    app: &TestApp,
    username: &str,
) -> gatehouse_core::accounts::AccountStatus {
    app.gatehouse
        .account_status(OPERATOR, username)
        .await
        .unwrap_or_else(|e| panic!("{username}: {e}"))
}

/// The sign-in failure counter kept for `username` (typed as a person would).
pub async fn sign_in_attempts(
    app: &TestApp,
    username: &str,
) -> gatehouse_domain::lockout::AttemptCounter {
    app.db
        .attempts(&gatehouse_domain::UsernameKey::from_typed(username))
        .await
        .expect("read")
}

/// Every table of the database at `url` (migration bookkeeping aside), by
/// name, with each row's values as text: to compare two moments, or to look
/// for a value anywhere.
pub async fn snapshot(url: &str) -> BTreeMap<String, Vec<Vec<String>>> {
    use sqlx::Row as _;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("open");
    let query = if url.starts_with("sqlite:") {
        "SELECT name FROM sqlite_master WHERE type = 'table'"
    } else {
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()"
    };
    let tables: Vec<String> = sqlx::query_scalar(query)
        .fetch_all(&pool)
        .await
        .expect("tables");
    let mut out = BTreeMap::new();
    for table in tables
        .into_iter()
        .filter(|t| !t.starts_with("_sqlx") && !t.starts_with("sqlite_"))
    {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM \"{table}\"")))
            .fetch_all(&pool)
            .await
            .expect("rows");
        let rows = rows
            .iter()
            .map(|row| (0..row.len()).map(|i| cell(&table, row, i)).collect())
            .collect();
        out.insert(table, rows);
    }
    pool.close().await;
    out
}

/// One value of a row as text (`NULL` for null); panics on a type it cannot
/// read, so that no column is silently left out of a comparison.
fn cell(table: &str, row: &sqlx::any::AnyRow, i: usize) -> String {
    use sqlx::Row as _;
    let text = if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        v
    } else if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        v.map(|v| v.to_string())
    } else if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(i) {
        v.map(|b| String::from_utf8_lossy(&b).into_owned())
    } else if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
        v.map(|v| v.to_string())
    } else if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
        v.map(|v| v.to_string())
    } else {
        panic!("{table}: column {i} has a type this test cannot read")
    };
    text.unwrap_or_else(|| "NULL".to_owned())
}

/// The number the query `sql` returns (a count, say), read on a connection
/// of the test's own; -1 for NULL.
pub async fn count(url: &str, sql: &str) -> i64 {
    use sqlx::{Connection as _, Row as _};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    let n = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .try_get::<Option<i64>, _>(0)
        .expect("a number")
        .unwrap_or(-1);
    let _ = conn.close().await;
    n
}

/// Runs SQL straight on the app's database (a trigger that stands in for
/// another writer, say), on a connection of its own.
pub async fn execute_sql(url: &str, sql: &str) {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}

/// SQLite's write lock, held on a connection of the test's own until
/// released: the service's writes wait for it as for a long transaction.
pub struct SqliteWriteLock(sqlx::AnyConnection);

impl SqliteWriteLock {
    /// Takes the lock on the service's database.
    pub async fn take(app: &TestApp) -> Self {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let mut holder = sqlx::AnyConnection::connect(&app.database_url())
            .await
            .expect("connect");
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut holder)
            .await
            .expect("lock");
        Self(holder)
    }

    /// Lets the service's writes through again.
    pub async fn release(mut self) {
        sqlx::query("ROLLBACK")
            .execute(&mut self.0)
            .await
            .expect("unlock");
    }
}
