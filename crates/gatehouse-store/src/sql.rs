//! The SQL store: one implementation for SQLite and PostgreSQL.
//!
//! Both engines run the same SQL text through sqlx's `Any` driver (integers,
//! text and bytes only: times are whole seconds); the few places where they
//! must differ branch on [`Backend`]:
//! - write transactions: on SQLite `BEGIN IMMEDIATE`, which takes the single
//!   write lock up front (a deferred transaction that reads, then writes, can
//!   fail with "database is locked" and no waiting fixes that); on PostgreSQL
//!   a plain `BEGIN`, with rows locked `FOR UPDATE` where read-then-write
//!   must not interleave;
//! - claiming work: PostgreSQL adds `FOR UPDATE SKIP LOCKED`, so workers on
//!   several nodes never take the same rows;
//! - batched inserts: anonymous `?` parameters on SQLite (sqlx resolves `$N`
//!   names by a linear scan, quadratic over a large batch), `$N` on PostgreSQL.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_domain::import::{ImportPlan, KnownAccount, KnownEmployer};
use gatehouse_domain::lockout::AttemptCounter;
use gatehouse_domain::reset_link::{LinkPurpose, LinkRecord, VoidReason};
use gatehouse_domain::{RecoveryOutcome, Span, Timestamp, TokenHash, UsernameKey};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Connection, Executor, Row};

use crate::{
    AccountRecord, AuditFilter, AuditRecord, AuditRow, Backend, CounterChange, CounterUpdate,
    Delivery, DeliveryResult, EmailChange, ImportSummary, NewEmail, NewResetLink, OutboxEmail,
    OutboxSummary, QueueDepths, RecoveryRequestRow, RecoveryRequestSummary, ResetLinkRow, Result,
    SecondFactorRow, ServiceKey, SessionRecord, SignInSuccess, Store, StoreError, Tx,
};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The refusal of `sign_in_successes` (migration 0009) when the attempt
/// counter is no longer at the version claimed.
const COUNTER_CHANGED: &str = "gatehouse: the attempt counter changed since the claim";

/// How many times a compare-and-set is retried before giving up.
const CAS_ATTEMPTS: usize = 200;

/// How the pool is sized and how long to wait for the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections open at once.
    pub max_connections: u32,
    /// How long to wait for a connection (and, on SQLite, for the write lock).
    pub timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Where the database's schema stands against the migrations this build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaState {
    /// Every migration this build knows is applied, and no other.
    Current(i64),
    /// No migration has been applied.
    Empty,
    /// Older than this build: `gatehouse migrate` brings it up to date.
    Behind {
        /// The newest version applied.
        database: i64,
        /// The newest version this build knows.
        build: i64,
    },
    /// Newer than this build: a newer `gatehouse` migrated it.
    Ahead {
        /// The newest version applied.
        database: i64,
        /// The newest version this build knows.
        build: i64,
    },
    /// A migration failed part-way and must be repaired by hand.
    Dirty(i64),
}

/// The SQL store.
#[derive(Debug, Clone)]
pub struct SqlStore {
    /// Reads (and on PostgreSQL everything).
    pool: AnyPool,
    /// Writes. On SQLite a pool of one connection: SQLite has one write lock
    /// per file, and writers that meet it sleep in its busy handler (1 ms,
    /// 2 ms, 5 ms, … up to 100 ms at a time) while the lock may already be
    /// free; queueing for one connection instead wakes the next writer at
    /// once. Under sign-in load that sleeping left the hashing cores idle
    /// (BENCHMARKS.md). On PostgreSQL the same pool as reads.
    writer: AnyPool,
    backend: Backend,
}

/// Which engine a URL names.
pub fn backend_of(url: &str) -> Option<Backend> {
    if url.starts_with("sqlite:") {
        Some(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(Backend::Postgres)
    } else {
        None
    }
}

impl SqlStore {
    /// Opens the database a URL names (`sqlite://PATH` or `postgres://…`) for
    /// serving. SQLite, the single-node default, is created and migrated on
    /// first start; PostgreSQL must already be at this build's schema
    /// (`gatehouse migrate` runs once per deploy), or opening fails saying so.
    pub async fn open(url: &str, settings: PoolSettings) -> Result<Self> {
        let store = Self::connect(url, settings).await?;
        match store.backend {
            Backend::Sqlite => {
                if let SchemaState::Ahead { database, build } = store.schema().await? {
                    return Err(ahead(database, build));
                }
                store.migrate().await?;
            }
            Backend::Postgres => match store.schema().await? {
                SchemaState::Current(_) => {}
                SchemaState::Empty => {
                    return Err(StoreError::Schema(
                        "the database has no Gatehouse schema yet: run `gatehouse migrate` first"
                            .to_owned(),
                    ));
                }
                SchemaState::Behind { database, build } => {
                    return Err(StoreError::Schema(format!(
                        "the database schema is at version {database} and this build needs {build}: run `gatehouse migrate` first"
                    )));
                }
                SchemaState::Ahead { database, build } => return Err(ahead(database, build)),
                SchemaState::Dirty(v) => return Err(dirty(v)),
            },
        }
        Ok(store)
    }

    /// Connects without looking at the schema.
    pub async fn connect(url: &str, settings: PoolSettings) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url).ok_or_else(|| {
            StoreError::Config("expected sqlite://PATH or postgres://…".to_owned())
        })?;
        let (pool, writer) = match backend {
            Backend::Sqlite => connect_sqlite(url, settings).await?,
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(settings.timeout)
                    .connect(url)
                    .await?;
                (pool.clone(), pool)
            }
        };
        Ok(Self {
            pool,
            writer,
            backend,
        })
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// The schema versions a backend's migrations define, oldest first.
    pub fn known_versions(backend: Backend) -> Vec<i64> {
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.iter().map(|m| m.version).collect()
    }

    /// Applies pending migrations (refusing a database newer than this build).
    pub async fn migrate(&self) -> Result<()> {
        match self.schema().await? {
            SchemaState::Ahead { database, build } => return Err(ahead(database, build)),
            SchemaState::Dirty(v) => return Err(dirty(v)),
            _ => {}
        }
        self.migrator().run(&self.writer).await?;
        Ok(())
    }

    /// Where the schema stands.
    pub async fn schema(&self) -> Result<SchemaState> {
        let build = self.migrator().iter().map(|m| m.version).max().unwrap_or(0);
        let exists: i64 = match self.backend {
            Backend::Sqlite => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
                )
                .fetch_one(&self.pool)
                .await?
            }
            Backend::Postgres => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM information_schema.tables \
                     WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'",
                )
                .fetch_one(&self.pool)
                .await?
            }
        };
        if exists == 0 {
            return Ok(SchemaState::Empty);
        }
        // `success` is a boolean, which the Any driver cannot read from SQLite.
        let rows = sqlx::query(
            "SELECT version, CASE WHEN success THEN 1 ELSE 0 END FROM _sqlx_migrations ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut newest = 0;
        for row in &rows {
            let version: i64 = row.try_get(0)?;
            let success: i64 = row.try_get(1)?;
            if success == 0 {
                return Ok(SchemaState::Dirty(version));
            }
            newest = newest.max(version);
        }
        Ok(if rows.is_empty() {
            SchemaState::Empty
        } else if newest > build {
            SchemaState::Ahead {
                database: newest,
                build,
            }
        } else if newest < build {
            SchemaState::Behind {
                database: newest,
                build,
            }
        } else {
            SchemaState::Current(newest)
        })
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>> {
        Ok(self.pool.acquire().await?)
    }

    /// A connection for statements that write (see [`SqlStore::writer`]).
    async fn write_conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>> {
        Ok(self.writer.acquire().await?)
    }

    /// The clause that keeps workers on several nodes off each other's rows.
    fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// A write transaction (see the module documentation).
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writer.begin().await?,
        })
    }
}

fn ahead(database: i64, build: i64) -> StoreError {
    StoreError::Schema(format!(
        "the database schema is at version {database}, newer than this build knows ({build}): run a newer gatehouse"
    ))
}

fn dirty(version: i64) -> StoreError {
    StoreError::Schema(format!(
        "migration {version} failed part-way; repair the database by hand before starting"
    ))
}

/// `rows` groups of `columns` parameters for a multi-row statement:
/// `(?,?),(?,?)` on SQLite, `($1,$2),($3,$4)` on PostgreSQL. A single column
/// gives a plain list (`?,?` or `$1,$2`). SQLite gets anonymous parameters
/// because sqlx resolves each `$N` by name, which SQLite answers with a
/// linear scan: quadratic over a batch (88% of an import's time, by perf).
fn placeholders(backend: Backend, rows: usize, columns: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 6);
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            out.push(',');
        }
        if columns > 1 {
            out.push('(');
        }
        for c in 0..columns {
            if c > 0 {
                out.push(',');
            }
            n += 1;
            match backend {
                Backend::Sqlite => out.push('?'),
                Backend::Postgres => {
                    out.push('$');
                    out.push_str(&n.to_string());
                }
            }
        }
        if columns > 1 {
            out.push(')');
        }
    }
    out
}

/// Opens a SQLite file (creating it and its folder) in WAL mode: a pool of
/// readers and a pool of one writer.
async fn connect_sqlite(url: &str, settings: PoolSettings) -> Result<(AnyPool, AnyPool)> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (file, query) = path.split_once('?').unwrap_or((path, ""));
    if file.is_empty() {
        return Err(StoreError::Config(
            "the sqlite URL has no file name".to_owned(),
        ));
    }
    if let Some(dir) = Path::new(file).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Config(format!("cannot create the folder {}: {e}", dir.display()))
        })?;
    }
    let url = if query.contains("mode=") {
        format!("sqlite://{path}")
    } else if query.is_empty() {
        format!("sqlite://{file}?mode=rwc")
    } else {
        format!("sqlite://{file}?{query}&mode=rwc")
    };
    // WAL is a property of the file: set it once, on one connection, before
    // the pool opens several (changing it needs an exclusive lock).
    let mut first = AnyConnection::connect(&url).await?;
    first.execute("PRAGMA journal_mode = WAL").await?;
    first.close().await?;
    let pool = |connections: u32, read_only: bool| {
        // The busy timeout still matters: other processes (a separate
        // `gatehouse worker`, an import) share the file's write lock.
        let busy = format!("PRAGMA busy_timeout = {}", settings.timeout.as_millis());
        AnyPoolOptions::new()
            .max_connections(connections)
            .min_connections(1)
            .acquire_timeout(settings.timeout)
            // sqlx pings every connection it hands out; on SQLite that is a
            // round trip to the connection's thread for a file that cannot
            // go away, about a fifth of a sign-in's hand-offs (perf).
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                let busy = busy.clone();
                Box::pin(async move {
                    conn.execute(AssertSqlSafe(busy)).await?;
                    // In WAL mode NORMAL loses no committed data when the process
                    // crashes, only possibly the latest commits on power loss.
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    if read_only {
                        // A write sent to the readers fails at once instead of
                        // competing for the lock, so none can slip past the writer.
                        conn.execute("PRAGMA query_only = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
    };
    let readers = pool(settings.max_connections, true).await?;
    let writer = pool(1, false).await?;
    Ok((readers, writer))
}

/// An open write transaction.
pub struct SqlTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp::from_unix)
}

fn u32_of(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// New accounts from which an import into SQLite builds the accounts
/// table's indexes afterwards instead of row by row.
const BULK_LOAD_ROWS: usize = 50_000;

/// Accounts read per statement when an import loads every stored account.
const IMPORT_INDEX_PAGE: i64 = 20_000;

const ACCOUNT_COLUMNS: &str = "a.id, e.code, e.name, a.username, a.first_name, a.last_name, \
    a.date_of_birth, a.email, a.employee_number, a.role, a.password_hash, \
    a.password_changed_at, a.last_sign_in_at, a.previous_sign_in_at, a.disabled_at, \
    a.second_factor_setup_until FROM accounts a JOIN employers e ON e.id = a.employer_id";

fn account_from(row: &AnyRow) -> Result<AccountRecord> {
    Ok(AccountRecord {
        id: row.try_get(0)?,
        employer_code: row.try_get(1)?,
        employer_name: row.try_get(2)?,
        username: row.try_get(3)?,
        first_name: row.try_get(4)?,
        last_name: row.try_get(5)?,
        date_of_birth: row.try_get(6)?,
        email: row.try_get(7)?,
        employee_number: row.try_get(8)?,
        role: row.try_get(9)?,
        password_hash: row.try_get(10)?,
        password_changed_at: ts(row.try_get(11)?),
        last_sign_in_at: ts(row.try_get(12)?),
        previous_sign_in_at: ts(row.try_get(13)?),
        disabled_at: ts(row.try_get(14)?),
        second_factor_setup_until: ts(row.try_get(15)?),
    })
}

async fn account_where(
    conn: &mut AnyConnection,
    condition: &'static str,
    value: impl sqlx::Encode<'_, sqlx::Any> + sqlx::Type<sqlx::Any> + Send,
) -> Result<Option<AccountRecord>> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} WHERE {condition}");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(value)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(account_from).transpose()
}

/// The counter's columns, in the order [`counter_from`] reads them.
const COUNTER_COLUMNS: &str =
    "consecutive, total, locked_until, claims, second_factor_failures, version";

fn counter_from(row: &AnyRow) -> Result<(AttemptCounter, i64)> {
    let claims: i64 = row.try_get(3)?;
    Ok((
        AttemptCounter {
            consecutive: u32_of(row.try_get(0)?),
            total: u32_of(row.try_get(1)?),
            locked_until: ts(row.try_get(2)?),
            claims: u64::try_from(claims).unwrap_or(0),
            second_factor_failures: u32_of(row.try_get(4)?),
        },
        row.try_get(5)?,
    ))
}

/// Binds a counter's values, in [`COUNTER_COLUMNS`] order without the version.
fn bind_counter<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    c: &AttemptCounter,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(i64::from(c.consecutive))
        .bind(i64::from(c.total))
        .bind(c.locked_until.map(Timestamp::unix))
        .bind(claims_i64(c))
        .bind(i64::from(c.second_factor_failures))
}

async fn read_attempts(
    conn: &mut AnyConnection,
    key: &UsernameKey,
) -> Result<Option<(AttemptCounter, i64)>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COUNTER_COLUMNS} FROM sign_in_attempts WHERE username_key = $1"
    )))
    .bind(key.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(counter_from).transpose()
}

fn claims_i64(c: &AttemptCounter) -> i64 {
    i64::try_from(c.claims).unwrap_or(i64::MAX)
}

async fn upsert_attempts(
    conn: &mut AnyConnection,
    key: &UsernameKey,
    c: &AttemptCounter,
    now: Timestamp,
) -> Result<()> {
    bind_counter(
        sqlx::query(
            "INSERT INTO sign_in_attempts \
             (username_key, consecutive, total, locked_until, claims, second_factor_failures, \
             version, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7) \
             ON CONFLICT (username_key) DO UPDATE SET consecutive = excluded.consecutive, \
             total = excluded.total, locked_until = excluded.locked_until, \
             claims = excluded.claims, second_factor_failures = excluded.second_factor_failures, \
             version = sign_in_attempts.version + 1, \
             updated_at = excluded.updated_at",
        )
        .bind(key.as_str()),
        c,
    )
    .bind(now.unix())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn session_from(row: &AnyRow) -> Result<SessionRecord> {
    let hash: Vec<u8> = row.try_get(0)?;
    Ok(SessionRecord {
        id_hash: TokenHash::from_slice(&hash).ok_or(StoreError::Config(
            "a stored session id hash is malformed".to_owned(),
        ))?,
        account_id: row.try_get(1)?,
        csrf_token: row.try_get(2)?,
        created_at: Timestamp::from_unix(row.try_get(3)?),
        last_seen_at: Timestamp::from_unix(row.try_get(4)?),
        flash: row.try_get(5)?,
        second_factor_at: ts(row.try_get(6)?),
    })
}

/// Migration 0009's `sign_in_success` trigger writes sessions too: a new
/// column goes into both (the conformance scenario
/// `a_sign_in_success_is_written_whole_or_not_at_all` reads one back).
async fn insert_session(conn: &mut AnyConnection, s: &SessionRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO sessions (id_hash, account_id, csrf_token, created_at, last_seen_at, \
         flash, second_factor_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(s.id_hash.as_bytes().as_slice())
    .bind(s.account_id)
    .bind(&s.csrf_token)
    .bind(s.created_at.unix())
    .bind(s.last_seen_at.unix())
    .bind(&s.flash)
    .bind(s.second_factor_at.map(Timestamp::unix))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn remove_session(conn: &mut AnyConnection, id_hash: &TokenHash) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(id_hash.as_bytes().as_slice())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn link_from(row: &AnyRow) -> Result<ResetLinkRow> {
    let voided_at: Option<i64> = row.try_get(5)?;
    let reason: Option<String> = row.try_get(6)?;
    let purpose: String = row.try_get(7)?;
    Ok(ResetLinkRow {
        id: row.try_get(0)?,
        account_id: row.try_get(1)?,
        purpose: LinkPurpose::from_stored(&purpose).ok_or_else(|| {
            StoreError::Schema(format!("a reset link has an unknown purpose {purpose:?}"))
        })?,
        record: LinkRecord {
            created_at: Timestamp::from_unix(row.try_get(2)?),
            expires_at: Timestamp::from_unix(row.try_get(3)?),
            used_at: ts(row.try_get(4)?),
            voided: match (
                voided_at,
                reason.as_deref().and_then(VoidReason::from_stored),
            ) {
                (Some(at), Some(reason)) => Some((Timestamp::from_unix(at), reason)),
                (Some(at), None) => Some((Timestamp::from_unix(at), VoidReason::Replaced)),
                _ => None,
            },
        },
    })
}

const LINK_COLUMNS: &str = "SELECT id, account_id, created_at, expires_at, used_at, voided_at, \
    void_reason, purpose FROM reset_links";

async fn link_where(
    conn: &mut AnyConnection,
    condition: &'static str,
    value: impl sqlx::Encode<'_, sqlx::Any> + sqlx::Type<sqlx::Any> + Send,
) -> Result<Option<ResetLinkRow>> {
    let row = sqlx::query(AssertSqlSafe(format!("{LINK_COLUMNS} WHERE {condition}")))
        .bind(value)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(link_from).transpose()
}

/// The two newest generations of a service key, newest first.
async fn newest_service_keys(conn: &mut AnyConnection, purpose: &str) -> Result<Vec<ServiceKey>> {
    let rows = sqlx::query(
        "SELECT generation, secret FROM service_keys WHERE purpose = $1 \
         ORDER BY generation DESC LIMIT 2",
    )
    .bind(purpose)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ServiceKey {
                generation: r.try_get(0)?,
                secret: r.try_get(1)?,
            })
        })
        .collect()
}

/// Records one email's try, with its audit event, inside the caller's transaction.
async fn record_delivery(
    conn: &mut AnyConnection,
    Delivery { email, result }: &Delivery,
    now: Timestamp,
) -> Result<()> {
    let (event, detail) = match result {
        DeliveryResult::Sent(reply) => {
            sqlx::query(
                "UPDATE outbox SET status = 'sent', smtp_reply = $2, finished_at = $3, \
                 text_body = NULL, html_body = NULL, lease_until = NULL, last_error = NULL \
                 WHERE id = $1",
            )
            .bind(email.id)
            .bind(reply)
            .bind(now.unix())
            .execute(&mut *conn)
            .await?;
            ("email.sent", reply.clone())
        }
        DeliveryResult::Retry { error, at } => {
            sqlx::query(
                "UPDATE outbox SET last_error = $2, next_attempt_at = $3, lease_until = NULL \
                 WHERE id = $1",
            )
            .bind(email.id)
            .bind(error)
            .bind(at.unix())
            .execute(&mut *conn)
            .await?;
            (
                "email.retrying",
                format!("{error}; next try at {}", at.rfc3339()),
            )
        }
        DeliveryResult::Expired(error) | DeliveryResult::Failed(error) => {
            let (status, event) = if matches!(result, DeliveryResult::Expired(_)) {
                ("expired", "email.expired")
            } else {
                ("failed", "email.failed")
            };
            sqlx::query(
                "UPDATE outbox SET status = $2, last_error = $3, finished_at = $4, \
                 text_body = NULL, html_body = NULL, lease_until = NULL WHERE id = $1",
            )
            .bind(email.id)
            .bind(status)
            .bind(error)
            .bind(now.unix())
            .execute(&mut *conn)
            .await?;
            (event, error.clone())
        }
    };
    insert_audit(
        conn,
        &AuditRecord {
            at: Some(now),
            event: event.to_owned(),
            actor: Some("system".to_owned()),
            account_id: email.account_id,
            username: None,
            client_ip: None,
            detail: Some(format!(
                "email {} ({}) to {}: {detail}",
                email.id,
                email.kind,
                gatehouse_domain::EmailAddress::from_trusted(email.recipient.clone()).masked()
            )),
        },
    )
    .await
}

/// Migration 0009's `sign_in_success` trigger writes audit events too: a
/// new column goes into both.
async fn insert_audit(conn: &mut AnyConnection, r: &AuditRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_events (at, event, actor, account_id, username, client_ip, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(r.at.map_or(0, Timestamp::unix))
    .bind(&r.event)
    .bind(&r.actor)
    .bind(r.account_id)
    .bind(&r.username)
    .bind(&r.client_ip)
    .bind(&r.detail)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn begin(&self) -> Result<Box<dyn Tx>> {
        let tx = self.begin_write().await?;
        Ok(Box::new(SqlTx {
            tx,
            backend: self.backend,
        }))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn database_time_ms(&self) -> Result<Option<i64>> {
        match self.backend {
            Backend::Sqlite => Ok(None),
            // clock_timestamp(), not now(): now() is the start of the
            // transaction, which a pooled connection may have begun earlier.
            Backend::Postgres => Ok(Some(
                sqlx::query_scalar(
                    "SELECT CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000) AS BIGINT)",
                )
                .fetch_one(&self.pool)
                .await?,
            )),
        }
    }

    async fn update_attempts(
        &self,
        key: &UsernameKey,
        now: Timestamp,
        change: &mut CounterChange<'_>,
    ) -> Result<CounterUpdate> {
        let mut conn = self.write_conn().await?;
        for _ in 0..CAS_ATTEMPTS {
            let current = read_attempts(&mut conn, key).await?;
            let before = current.map(|(c, _)| c).unwrap_or_default();
            let Some(after) = change(before) else {
                return Ok(CounterUpdate {
                    before,
                    after: None,
                    version: None,
                });
            };
            let written = match current {
                None => bind_counter(
                    sqlx::query(
                        "INSERT INTO sign_in_attempts \
                         (username_key, consecutive, total, locked_until, claims, \
                         second_factor_failures, version, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, 1, $7) \
                         ON CONFLICT (username_key) DO NOTHING",
                    )
                    .bind(key.as_str()),
                    &after,
                )
                .bind(now.unix())
                .execute(&mut *conn)
                .await?
                .rows_affected(),
                Some((_, version)) => bind_counter(
                    sqlx::query(
                        "UPDATE sign_in_attempts SET consecutive = $2, total = $3, \
                         locked_until = $4, claims = $5, second_factor_failures = $6, \
                         version = version + 1, updated_at = $7 \
                         WHERE username_key = $1 AND version = $8",
                    )
                    .bind(key.as_str()),
                    &after,
                )
                .bind(now.unix())
                .bind(version)
                .execute(&mut *conn)
                .await?
                .rows_affected(),
            };
            if written == 1 {
                return Ok(CounterUpdate {
                    before,
                    after: Some(after),
                    version: Some(current.map_or(1, |(_, version)| version + 1)),
                });
            }
        }
        Err(StoreError::Contention("sign-in attempts"))
    }

    async fn attempts(&self, key: &UsernameKey) -> Result<AttemptCounter> {
        let mut conn = self.conn().await?;
        Ok(read_attempts(&mut conn, key)
            .await?
            .map(|(c, _)| c)
            .unwrap_or_default())
    }

    async fn record_sign_in_success(&self, s: &SignInSuccess<'_>) -> Result<bool> {
        let (session, audit) = (s.session, s.audit);
        // The view's INSTEAD OF trigger (migration 0009) does the writes of
        // a transaction in one statement, and refuses with COUNTER_CHANGED
        // if the counter moved on since the claim.
        let written = sqlx::query(
            "INSERT INTO sign_in_successes (counter_key, claimed_version, consecutive, total, \
             locked_until, claims, second_factor_failures, at, account_id, previous_session, \
             id_hash, session_account_id, csrf_token, created_at, last_seen_at, flash, \
             second_factor_at, audit_at, event, actor, audit_account_id, username, client_ip, \
             detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
             $16, $17, $18, $19, $20, $21, $22, $23, $24)",
        )
        .bind(s.counter_key.as_str())
        .bind(s.claimed_version);
        let written = bind_counter(written, s.counter)
            .bind(s.now.unix())
            .bind(s.account_id)
            .bind(s.previous_session.map(|h| h.as_bytes().to_vec()))
            .bind(session.id_hash.as_bytes().as_slice())
            .bind(session.account_id)
            .bind(&session.csrf_token)
            .bind(session.created_at.unix())
            .bind(session.last_seen_at.unix())
            .bind(&session.flash)
            .bind(session.second_factor_at.map(Timestamp::unix))
            .bind(audit.at.map_or(0, Timestamp::unix))
            .bind(&audit.event)
            .bind(&audit.actor)
            .bind(audit.account_id)
            .bind(&audit.username)
            .bind(&audit.client_ip)
            .bind(&audit.detail)
            .execute(&mut *self.write_conn().await?)
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.message().contains(COUNTER_CHANGED) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn account_by_username(&self, key: &UsernameKey) -> Result<Option<AccountRecord>> {
        let mut conn = self.conn().await?;
        account_where(&mut conn, "a.username_key = $1", key.as_str()).await
    }

    async fn account_by_id(&self, id: i64) -> Result<Option<AccountRecord>> {
        let mut conn = self.conn().await?;
        account_where(&mut conn, "a.id = $1", id).await
    }

    async fn password_history(&self, account_id: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT password_hash FROM password_history WHERE account_id = $1 ORDER BY id DESC",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn upgrade_password_hash(&self, account_id: i64, old: &str, new: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE accounts SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
        )
        .bind(account_id)
        .bind(old)
        .bind(new)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1 {
            sqlx::query(
                "UPDATE password_history SET password_hash = $3 \
                 WHERE account_id = $1 AND password_hash = $2",
            )
            .bind(account_id)
            .bind(old)
            .bind(new)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn session(&self, id_hash: &TokenHash) -> Result<Option<SessionRecord>> {
        let row = sqlx::query(
            "SELECT id_hash, account_id, csrf_token, created_at, last_seen_at, flash, \
             second_factor_at FROM sessions WHERE id_hash = $1",
        )
        .bind(id_hash.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(session_from).transpose()
    }

    async fn create_session(&self, session: &SessionRecord) -> Result<()> {
        insert_session(&mut *self.write_conn().await?, session).await
    }

    async fn touch_session(&self, id_hash: &TokenHash, now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1")
            .bind(id_hash.as_bytes().as_slice())
            .bind(now.unix())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn delete_session(&self, id_hash: &TokenHash) -> Result<()> {
        remove_session(&mut *self.write_conn().await?, id_hash).await
    }

    async fn set_session_flash(&self, id_hash: &TokenHash, flash: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE sessions SET flash = $2 WHERE id_hash = $1")
            .bind(id_hash.as_bytes().as_slice())
            .bind(flash)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn set_session_second_factor(&self, id_hash: &TokenHash, at: Timestamp) -> Result<()> {
        sqlx::query("UPDATE sessions SET second_factor_at = $2 WHERE id_hash = $1")
            .bind(id_hash.as_bytes().as_slice())
            .bind(at.unix())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn set_role(&self, account_id: i64, role: &str, now: Timestamp) -> Result<bool> {
        Ok(
            sqlx::query("UPDATE accounts SET role = $2, updated_at = $3 WHERE id = $1")
                .bind(account_id)
                .bind(role)
                .bind(now.unix())
                .execute(&self.writer)
                .await?
                .rows_affected()
                == 1,
        )
    }

    async fn set_disabled(&self, account_id: i64, at: Option<Timestamp>) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE accounts SET disabled_at = $2, updated_at = COALESCE($2, updated_at), \
             second_factor_setup_until = CASE WHEN $2 IS NULL THEN second_factor_setup_until END \
             WHERE id = $1",
        )
        .bind(account_id)
        .bind(at.map(Timestamp::unix))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if at.is_some() {
            sqlx::query("DELETE FROM sessions WHERE account_id = $1")
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    async fn lift_lock(&self, key: &UsernameKey, now: Timestamp) -> Result<()> {
        self.update_attempts(key, now, &mut |mut counter| {
            counter.locked_until = None;
            counter.consecutive = 0;
            counter.second_factor_failures = 0;
            Some(counter)
        })
        .await?;
        Ok(())
    }

    async fn service_keys(
        &self,
        purpose: &str,
        first: Option<&[u8]>,
        now: Timestamp,
    ) -> Result<Vec<ServiceKey>> {
        if let Some(first) = first {
            sqlx::query(
                "INSERT INTO service_keys (purpose, generation, secret, created_at) \
                 SELECT $1, 1, $2, $3 \
                 WHERE NOT EXISTS (SELECT 1 FROM service_keys WHERE purpose = $1) \
                 ON CONFLICT (purpose, generation) DO NOTHING",
            )
            .bind(purpose)
            .bind(first)
            .bind(now.unix())
            .execute(&self.writer)
            .await?;
        }
        newest_service_keys(&mut *self.conn().await?, purpose).await
    }

    async fn rotate_service_key(
        &self,
        purpose: &str,
        secret: &[u8],
        now: Timestamp,
    ) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(generation) FROM service_keys WHERE purpose = $1")
                .bind(purpose)
                .fetch_one(&mut *tx)
                .await?;
        let generation = newest.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO service_keys (purpose, generation, secret, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(purpose)
        .bind(generation)
        .bind(secret)
        .bind(now.unix())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM service_keys WHERE purpose = $1 AND generation < $2")
            .bind(purpose)
            .bind(generation - 1)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(generation)
    }

    async fn stage_import(
        &self,
        account_id: i64,
        file_name: &str,
        content: &[u8],
        now: Timestamp,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO staged_imports (account_id, file_name, content, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(account_id)
        .bind(file_name)
        .bind(content)
        .bind(now.unix())
        .fetch_one(&self.writer)
        .await?)
    }

    async fn staged_import(
        &self,
        id: i64,
        account_id: i64,
        since: Timestamp,
    ) -> Result<Option<(String, Vec<u8>)>> {
        let row = sqlx::query(
            "SELECT file_name, content FROM staged_imports \
             WHERE id = $1 AND account_id = $2 AND created_at >= $3",
        )
        .bind(id)
        .bind(account_id)
        .bind(since.unix())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    async fn drop_staged_imports(&self, id: Option<i64>, before: Timestamp) -> Result<u64> {
        let query = match id {
            Some(id) => sqlx::query("DELETE FROM staged_imports WHERE id = $1").bind(id),
            None => {
                sqlx::query("DELETE FROM staged_imports WHERE created_at < $1").bind(before.unix())
            }
        };
        Ok(query.execute(&self.writer).await?.rows_affected())
    }

    async fn search_accounts(&self, query: &str, limit: u32) -> Result<Vec<AccountRecord>> {
        let typed = query.trim();
        if typed.is_empty() {
            return Ok(Vec::new());
        }
        // Exact identifiers first (a handful of rows, each by its index),
        // then people with that surname in name order, read from the index
        // already in that order so only `limit` entries are touched.
        let exact = format!(
            "SELECT {ACCOUNT_COLUMNS} WHERE a.id IN ( \
             SELECT id FROM accounts WHERE username_key = $1 \
             UNION SELECT id FROM accounts WHERE email_key = $2 \
             UNION SELECT id FROM accounts WHERE employee_number = $3) \
             ORDER BY a.last_name_key, a.first_name, a.username_key LIMIT $4"
        );
        let by_surname = format!(
            "SELECT {ACCOUNT_COLUMNS} WHERE a.last_name_key = $1 \
             ORDER BY a.last_name_key, a.first_name, a.username_key LIMIT $2"
        );
        let mut conn = self.conn().await?;
        let mut found: Vec<AccountRecord> = sqlx::query(AssertSqlSafe(exact))
            .bind(typed.to_ascii_uppercase())
            .bind(typed.to_ascii_lowercase())
            .bind(typed)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(account_from)
            .collect::<Result<_>>()?;
        let surname = sqlx::query(AssertSqlSafe(by_surname))
            .bind(typed.to_lowercase())
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
        let mut rows = surname;
        // "Jane Smith": a first name and a surname (a surname with a space
        // in it was tried whole above).
        if let Some((first, last)) = typed.rsplit_once(char::is_whitespace) {
            let by_name = format!(
                "SELECT {ACCOUNT_COLUMNS} WHERE a.last_name_key = $1 AND lower(a.first_name) = $2 \
                 ORDER BY a.last_name_key, a.first_name, a.username_key LIMIT $3"
            );
            rows.extend(
                sqlx::query(AssertSqlSafe(by_name))
                    .bind(last.trim().to_lowercase())
                    .bind(first.trim().to_lowercase())
                    .bind(i64::from(limit))
                    .fetch_all(&mut *conn)
                    .await?,
            );
        }
        for row in &rows {
            let account = account_from(row)?;
            if !found.iter().any(|f| f.id == account.id) {
                found.push(account);
            }
        }
        found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(found)
    }

    async fn second_factor(&self, account_id: i64) -> Result<Option<SecondFactorRow>> {
        let row = sqlx::query(
            "SELECT totp_secret, confirmed_at, last_step FROM second_factors WHERE account_id = $1",
        )
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SecondFactorRow {
                totp_secret: r.try_get(0)?,
                confirmed_at: ts(r.try_get(1)?),
                last_step: r
                    .try_get::<Option<i64>, _>(2)?
                    .map(|s| s.max(0).cast_unsigned()),
            })
        })
        .transpose()
    }

    async fn start_second_factor(
        &self,
        account_id: i64,
        totp_secret: &str,
        now: Timestamp,
    ) -> Result<bool> {
        // A confirmed factor is never replaced here: only an unconfirmed
        // enrolment (an abandoned QR code) starts again.
        Ok(sqlx::query(
            "INSERT INTO second_factors (account_id, totp_secret, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id) DO UPDATE SET totp_secret = $2, created_at = $3 \
             WHERE second_factors.confirmed_at IS NULL",
        )
        .bind(account_id)
        .bind(totp_secret)
        .bind(now.unix())
        .execute(&self.writer)
        .await?
        .rows_affected()
            == 1)
    }

    async fn accept_second_factor_step(
        &self,
        account_id: i64,
        step: u64,
        now: Timestamp,
    ) -> Result<bool> {
        // Compare-and-set on the step: of two nodes given the same code at
        // once, one wins and the other sees a replay.
        Ok(sqlx::query(
            "UPDATE second_factors SET last_step = $2, confirmed_at = COALESCE(confirmed_at, $3) \
             WHERE account_id = $1 AND (last_step IS NULL OR last_step < $2)",
        )
        .bind(account_id)
        .bind(i64::try_from(step).unwrap_or(i64::MAX))
        .bind(now.unix())
        .execute(&self.writer)
        .await?
        .rows_affected()
            == 1)
    }

    async fn replace_recovery_codes(
        &self,
        account_id: i64,
        hashes: &[TokenHash],
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE account_id = $1")
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        for hash in hashes {
            sqlx::query(
                "INSERT INTO recovery_codes (account_id, code_hash, created_at) VALUES ($1, $2, $3)",
            )
            .bind(account_id)
            .bind(hash.as_bytes().as_slice())
            .bind(now.unix())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn use_recovery_code(
        &self,
        account_id: i64,
        hash: &TokenHash,
        now: Timestamp,
    ) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE recovery_codes SET used_at = $3 \
             WHERE account_id = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(account_id)
        .bind(hash.as_bytes().as_slice())
        .bind(now.unix())
        .execute(&self.writer)
        .await?
        .rows_affected()
            == 1)
    }

    async fn clear_second_factor(&self, account_id: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for sql in [
            "DELETE FROM recovery_codes WHERE account_id = $1",
            "DELETE FROM second_factors WHERE account_id = $1",
            "DELETE FROM sessions WHERE account_id = $1",
            "UPDATE accounts SET second_factor_setup_until = NULL WHERE id = $1",
        ] {
            sqlx::query(sql).bind(account_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn recovery_codes_left(&self, account_id: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL",
        )
        .bind(account_id)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn reset_link_by_hash(&self, hash: &TokenHash) -> Result<Option<ResetLinkRow>> {
        link_where(
            &mut *self.conn().await?,
            "token_hash = $1",
            hash.as_bytes().as_slice(),
        )
        .await
    }

    async fn reset_link(&self, id: i64) -> Result<Option<ResetLinkRow>> {
        link_where(&mut *self.conn().await?, "id = $1", id).await
    }

    async fn claim_recovery_requests(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<RecoveryRequestRow>> {
        let sql = format!(
            "UPDATE recovery_requests SET lease_until = $2 WHERE id IN (\
               SELECT id FROM recovery_requests WHERE status = 'pending' \
               AND (lease_until IS NULL OR lease_until <= $1) ORDER BY id LIMIT $3{}) \
             RETURNING id, email_key, date_of_birth, username_key, client_ip, created_at",
            self.skip_locked()
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(now.unix())
            .bind(lease_until.unix())
            .bind(i64::from(limit))
            .fetch_all(&self.writer)
            .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(RecoveryRequestRow {
                    id: r.try_get(0)?,
                    email_key: r.try_get(1)?,
                    date_of_birth: r.try_get(2)?,
                    username_key: r.try_get(3)?,
                    client_ip: r.try_get(4)?,
                    created_at: Timestamp::from_unix(r.try_get(5)?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    async fn claim_outbox(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<OutboxEmail>> {
        let sql = format!(
            "UPDATE outbox SET lease_until = $2, attempts = attempts + 1 WHERE id IN (\
               SELECT id FROM outbox AS due WHERE status = 'queued' AND next_attempt_at <= $1 \
               AND (lease_until IS NULL OR lease_until <= $1) \
               AND NOT EXISTS (SELECT 1 FROM outbox AS older \
                 WHERE older.recipient_key = due.recipient_key AND older.status = 'queued' \
                 AND older.id < due.id) \
               ORDER BY next_attempt_at, id LIMIT $3{}) \
             RETURNING id, kind, recipient, subject, text_body, html_body, attempts, created_at, \
               send_by, account_id",
            self.skip_locked()
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(now.unix())
            .bind(lease_until.unix())
            .bind(i64::from(limit))
            .fetch_all(&self.writer)
            .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(OutboxEmail {
                    id: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    recipient: r.try_get(2)?,
                    subject: r.try_get(3)?,
                    text_body: r.try_get::<Option<String>, _>(4)?.unwrap_or_default(),
                    html_body: r.try_get::<Option<String>, _>(5)?.unwrap_or_default(),
                    attempts: u32_of(r.try_get(6)?),
                    created_at: Timestamp::from_unix(r.try_get(7)?),
                    send_by: ts(r.try_get(8)?),
                    account_id: r.try_get(9)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|e| e.id);
        Ok(out)
    }

    async fn record_deliveries(&self, deliveries: &[Delivery], now: Timestamp) -> Result<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for delivery in deliveries {
            record_delivery(&mut tx, delivery, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn audit(&self, record: &AuditRecord) -> Result<()> {
        insert_audit(&mut *self.write_conn().await?, record).await
    }

    async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>> {
        // Only the conditions asked for, so that each filter is answered by
        // its own index (`$1 IS NULL OR …` would read the whole log).
        let mut conditions = Vec::new();
        if filter.account_id.is_some() {
            conditions.push(format!("account_id = ${}", conditions.len() + 1));
        }
        if filter.event.is_some() {
            conditions.push(format!("event = ${}", conditions.len() + 1));
        }
        if filter.actor.is_some() {
            conditions.push(format!("actor = ${}", conditions.len() + 1));
        }
        if filter.since.is_some() {
            conditions.push(format!("at >= ${}", conditions.len() + 1));
        }
        if filter.until.is_some() {
            conditions.push(format!("at < ${}", conditions.len() + 1));
        }
        // Newest first. With only a time range, in time order, so the range
        // is read from the index on `at` rather than by walking every id.
        let only_time = filter.account_id.is_none()
            && filter.event.is_none()
            && filter.actor.is_none()
            && (filter.since.is_some() || filter.until.is_some());
        let sql = format!(
            "SELECT id, at, event, actor, account_id, username, client_ip, detail \
             FROM audit_events{} ORDER BY {} LIMIT ${}",
            if conditions.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", conditions.join(" AND "))
            },
            if only_time {
                "at DESC, id DESC"
            } else {
                "id DESC"
            },
            conditions.len() + 1
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        if let Some(account_id) = filter.account_id {
            query = query.bind(account_id);
        }
        if let Some(event) = &filter.event {
            query = query.bind(event.clone());
        }
        if let Some(actor) = &filter.actor {
            query = query.bind(actor.clone());
        }
        if let Some(since) = filter.since {
            query = query.bind(since.unix());
        }
        if let Some(until) = filter.until {
            query = query.bind(until.unix());
        }
        let rows = query
            .bind(i64::from(if filter.limit == 0 {
                100
            } else {
                filter.limit
            }))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    id: r.try_get(0)?,
                    at: Timestamp::from_unix(r.try_get(1)?),
                    event: r.try_get(2)?,
                    actor: r.try_get(3)?,
                    account_id: r.try_get(4)?,
                    username: r.try_get(5)?,
                    client_ip: r.try_get(6)?,
                    detail: r.try_get(7)?,
                })
            })
            .collect()
    }

    async fn recovery_requests_for(
        &self,
        email_key: &str,
        limit: u32,
    ) -> Result<Vec<RecoveryRequestSummary>> {
        let rows = sqlx::query(
            "SELECT id, created_at, status, outcome, matched_accounts, processed_at, \
             locked_accounts FROM recovery_requests WHERE email_key = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(email_key)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RecoveryRequestSummary {
                    id: r.try_get(0)?,
                    created_at: Timestamp::from_unix(r.try_get(1)?),
                    status: r.try_get(2)?,
                    outcome: r.try_get(3)?,
                    matched_accounts: r.try_get(4)?,
                    processed_at: ts(r.try_get(5)?),
                    locked_accounts: r.try_get(6)?,
                })
            })
            .collect()
    }

    async fn emails_to(&self, email_key: &str, limit: u32) -> Result<Vec<OutboxSummary>> {
        let rows = sqlx::query(
            "SELECT id, kind, recipient, status, attempts, last_error, smtp_reply, created_at, \
             finished_at, next_attempt_at, recovery_request_id \
             FROM outbox WHERE recipient_key = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(email_key)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxSummary {
                    id: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    recipient: r.try_get(2)?,
                    status: r.try_get(3)?,
                    attempts: r.try_get(4)?,
                    last_error: r.try_get(5)?,
                    smtp_reply: r.try_get(6)?,
                    created_at: Timestamp::from_unix(r.try_get(7)?),
                    finished_at: ts(r.try_get(8)?),
                    next_attempt_at: Timestamp::from_unix(r.try_get(9)?),
                    recovery_request_id: r.try_get(10)?,
                })
            })
            .collect()
    }

    async fn import_index(&self) -> Result<(Vec<KnownEmployer>, Vec<KnownAccount>)> {
        let mut conn = self.conn().await?;
        let employers = sqlx::query("SELECT id, code, name FROM employers")
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| {
                Ok(KnownEmployer {
                    id: r.try_get(0)?,
                    code: r.try_get(1)?,
                    name: r.try_get(2)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // In pages by id: one statement for two million accounts would hold
        // every raw row in memory at once, beside the decoded copies.
        let mut accounts = Vec::new();
        let mut after = 0_i64;
        loop {
            let rows = sqlx::query(
                "SELECT id, employer_id, username, first_name, last_name, date_of_birth, email, \
                 employee_number, role FROM accounts WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(IMPORT_INDEX_PAGE)
            .fetch_all(&mut *conn)
            .await?;
            for r in &rows {
                accounts.push(KnownAccount {
                    id: r.try_get(0)?,
                    employer_id: r.try_get(1)?,
                    username: r.try_get(2)?,
                    first_name: r.try_get(3)?,
                    last_name: r.try_get(4)?,
                    date_of_birth: r.try_get(5)?,
                    email: r.try_get(6)?,
                    employee_number: r.try_get(7)?,
                    role: r.try_get(8)?,
                });
            }
            match accounts.last() {
                Some(last) if rows.len() as i64 == IMPORT_INDEX_PAGE => after = last.id,
                _ => break,
            }
        }
        Ok((employers, accounts))
    }

    async fn session_count(&self, account_id: i64) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE account_id = $1")
                .bind(account_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn queue_depths(&self) -> Result<QueueDepths> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM recovery_requests WHERE status = 'pending'), \
                    (SELECT COUNT(*) FROM outbox WHERE status = 'queued')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(QueueDepths {
            recovery_pending: row.try_get(0)?,
            emails_queued: row.try_get(1)?,
        })
    }

    async fn purge(&self, now: Timestamp, session_idle: Span) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let sessions = sqlx::query("DELETE FROM sessions WHERE last_seen_at < $1")
            .bind(now.minus(session_idle).unix())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // Counters of usernames nobody has, untouched for 30 days and not
        // locked: forgetting them changes nothing anyone can observe.
        let counters = sqlx::query(
            "DELETE FROM sign_in_attempts WHERE updated_at < $1 \
             AND (locked_until IS NULL OR locked_until < $2) \
             AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.username_key = sign_in_attempts.username_key)",
        )
        .bind(now.minus(Span::hours(24 * 30)).unix())
        .bind(now.unix())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(sessions + counters)
    }
}

#[async_trait]
impl Tx for SqlTx {
    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    async fn attempts(&mut self, key: &UsernameKey) -> Result<AttemptCounter> {
        if self.backend == Backend::Postgres {
            // Lock the counter until this transaction ends, so a concurrent
            // claim (compare-and-set) waits and then sees the new version.
            // The row is created first: there is nothing to lock otherwise.
            sqlx::query(
                "INSERT INTO sign_in_attempts \
                 (username_key, consecutive, total, locked_until, claims, version, updated_at) \
                 VALUES ($1, 0, 0, NULL, 0, 0, 0) ON CONFLICT (username_key) DO NOTHING",
            )
            .bind(key.as_str())
            .execute(&mut *self.tx)
            .await?;
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT {COUNTER_COLUMNS} FROM sign_in_attempts WHERE username_key = $1 FOR UPDATE"
            )))
            .bind(key.as_str())
            .fetch_optional(&mut *self.tx)
            .await?;
            return Ok(row
                .as_ref()
                .map(counter_from)
                .transpose()?
                .map(|(c, _)| c)
                .unwrap_or_default());
        }
        // SQLite: the transaction already holds the database's write lock.
        Ok(read_attempts(&mut self.tx, key)
            .await?
            .map(|(c, _)| c)
            .unwrap_or_default())
    }

    async fn set_attempts(
        &mut self,
        key: &UsernameKey,
        counter: &AttemptCounter,
        now: Timestamp,
    ) -> Result<()> {
        upsert_attempts(&mut self.tx, key, counter, now).await
    }

    async fn account_by_id(&mut self, id: i64) -> Result<Option<AccountRecord>> {
        account_where(&mut self.tx, "a.id = $1", id).await
    }

    async fn account_by_username(&mut self, key: &UsernameKey) -> Result<Option<AccountRecord>> {
        account_where(&mut self.tx, "a.username_key = $1", key.as_str()).await
    }

    async fn accounts_for_recovery(
        &mut self,
        email_key: &str,
        date_of_birth: &str,
        username_key: Option<&str>,
    ) -> Result<Vec<AccountRecord>> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} WHERE a.email_key = $1 AND a.date_of_birth = $2 \
             AND ($3 IS NULL OR a.username_key = $3) AND a.disabled_at IS NULL \
             ORDER BY e.code, a.username_key"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(email_key)
            .bind(date_of_birth)
            .bind(username_key)
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter().map(account_from).collect()
    }

    async fn emails_sent_since(
        &mut self,
        recipient_key: &str,
        kind: &str,
        since: Timestamp,
    ) -> Result<u32> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE recipient_key = $1 AND kind = $2 AND created_at > $3",
        )
        .bind(recipient_key)
        .bind(kind)
        .bind(since.unix())
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(u32_of(n))
    }

    async fn recovery_requests_from(&mut self, client_ip: &str, since: Timestamp) -> Result<u32> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM recovery_requests WHERE client_ip = $1 AND created_at > $2",
        )
        .bind(client_ip)
        .bind(since.unix())
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(u32_of(n))
    }

    async fn audit_events_from(
        &mut self,
        client_ip: &str,
        event: &str,
        since: Timestamp,
    ) -> Result<u32> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_events WHERE client_ip = $1 AND event = $2 AND at > $3",
        )
        .bind(client_ip)
        .bind(event)
        .bind(since.unix())
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(u32_of(n))
    }

    async fn insert_recovery_request(
        &mut self,
        email_key: &str,
        date_of_birth: &str,
        username_key: Option<&str>,
        client_ip: &str,
        now: Timestamp,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO recovery_requests \
             (email_key, date_of_birth, username_key, client_ip, created_at, status) \
             VALUES ($1, $2, $3, $4, $5, 'pending') RETURNING id",
        )
        .bind(email_key)
        .bind(date_of_birth)
        .bind(username_key)
        .bind(client_ip)
        .bind(now.unix())
        .fetch_one(&mut *self.tx)
        .await?)
    }

    async fn finish_recovery_request(
        &mut self,
        id: i64,
        outcome: RecoveryOutcome,
        locked_accounts: u32,
        now: Timestamp,
    ) -> Result<bool> {
        let matched = match outcome {
            RecoveryOutcome::Matched(n) => Some(i64::from(n)),
            _ => None,
        };
        // The date of birth has done its job: it is not kept (data minimisation).
        let changed = sqlx::query(
            "UPDATE recovery_requests SET status = 'processed', outcome = $2, \
             matched_accounts = $3, processed_at = $4, lease_until = NULL, date_of_birth = '', \
             locked_accounts = $5 WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(outcome.as_str())
        .bind(matched)
        .bind(now.unix())
        .bind(i64::from(locked_accounts))
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn void_links(
        &mut self,
        account_id: i64,
        reason: VoidReason,
        now: Timestamp,
        keep: Option<i64>,
    ) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE reset_links SET voided_at = $2, void_reason = $3 \
             WHERE account_id = $1 AND used_at IS NULL AND voided_at IS NULL \
             AND ($4 IS NULL OR id <> $4)",
        )
        .bind(account_id)
        .bind(now.unix())
        .bind(reason.as_str())
        .bind(keep)
        .execute(&mut *self.tx)
        .await?
        .rows_affected())
    }

    async fn insert_reset_link(&mut self, link: &NewResetLink<'_>) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO reset_links (account_id, token_hash, recovery_request_id, created_at, \
             expires_at, purpose) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(link.account_id)
        .bind(link.hash.as_bytes().as_slice())
        .bind(link.recovery_request_id)
        .bind(link.now.unix())
        .bind(link.expires_at.unix())
        .bind(link.purpose.as_str())
        .fetch_one(&mut *self.tx)
        .await?)
    }

    async fn reset_link(&mut self, id: i64) -> Result<Option<ResetLinkRow>> {
        link_where(&mut self.tx, "id = $1", id).await
    }

    async fn consume_reset_link(&mut self, id: i64, now: Timestamp) -> Result<bool> {
        let changed = sqlx::query(
            "UPDATE reset_links SET used_at = $2 WHERE id = $1 AND used_at IS NULL \
             AND voided_at IS NULL AND expires_at > $2",
        )
        .bind(id)
        .bind(now.unix())
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn set_password(
        &mut self,
        account_id: i64,
        hash: &str,
        now: Timestamp,
        keep: usize,
        second_factor_setup_until: Option<Timestamp>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET password_hash = $2, password_changed_at = $3, updated_at = $3, \
             second_factor_setup_until = $4 WHERE id = $1",
        )
        .bind(account_id)
        .bind(hash)
        .bind(now.unix())
        .bind(second_factor_setup_until.map(Timestamp::unix))
        .execute(&mut *self.tx)
        .await?;
        sqlx::query(
            "INSERT INTO password_history (account_id, password_hash, created_at) \
             VALUES ($1, $2, $3)",
        )
        .bind(account_id)
        .bind(hash)
        .bind(now.unix())
        .execute(&mut *self.tx)
        .await?;
        sqlx::query(
            "DELETE FROM password_history WHERE account_id = $1 AND id NOT IN (\
               SELECT id FROM password_history WHERE account_id = $1 ORDER BY id DESC LIMIT $2)",
        )
        .bind(account_id)
        .bind(i64::try_from(keep).unwrap_or(i64::MAX))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn set_email(&mut self, account_id: i64, email: &str, now: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET email = $2, email_key = $3, updated_at = $4, \
             second_factor_setup_until = NULL WHERE id = $1",
        )
        .bind(account_id)
        .bind(email)
        .bind(email.to_ascii_lowercase())
        .bind(now.unix())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn record_sign_in(&mut self, account_id: i64, now: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET previous_sign_in_at = last_sign_in_at, last_sign_in_at = $2 \
             WHERE id = $1",
        )
        .bind(account_id)
        .bind(now.unix())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn delete_sessions_of(&mut self, account_id: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM sessions WHERE account_id = $1")
            .bind(account_id)
            .execute(&mut *self.tx)
            .await?
            .rows_affected())
    }

    async fn forget_second_factor_passes(&mut self, account_id: i64) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE sessions SET second_factor_at = NULL \
             WHERE account_id = $1 AND second_factor_at IS NOT NULL",
        )
        .bind(account_id)
        .execute(&mut *self.tx)
        .await?
        .rows_affected())
    }

    async fn create_session(&mut self, session: &SessionRecord) -> Result<()> {
        insert_session(&mut self.tx, session).await
    }

    async fn delete_session(&mut self, id_hash: &TokenHash) -> Result<()> {
        remove_session(&mut self.tx, id_hash).await
    }

    async fn enqueue_email(&mut self, email: &NewEmail, now: Timestamp) -> Result<i64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO outbox (kind, recipient, recipient_key, subject, text_body, html_body, \
             account_id, recovery_request_id, status, attempts, next_attempt_at, send_by, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', 0, $9, $10, $9) \
             RETURNING id",
        )
        .bind(email.kind)
        .bind(&email.recipient)
        .bind(email.recipient.to_ascii_lowercase())
        .bind(&email.subject)
        .bind(&email.text_body)
        .bind(&email.html_body)
        .bind(email.account_id)
        .bind(email.recovery_request_id)
        .bind(now.unix())
        .bind(email.send_by.map(Timestamp::unix))
        .fetch_one(&mut *self.tx)
        .await?;
        sqlx::query(
            "UPDATE outbox SET next_attempt_at = $2 WHERE recipient_key = $1 \
             AND status = 'queued' AND next_attempt_at > $2 AND id < $3",
        )
        .bind(email.recipient.to_ascii_lowercase())
        .bind(now.unix())
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        insert_audit(
            &mut self.tx,
            &AuditRecord {
                at: Some(now),
                event: "email.queued".to_owned(),
                actor: Some("system".to_owned()),
                account_id: email.account_id,
                username: None,
                client_ip: None,
                detail: Some(format!(
                    "email {id} ({}) to {}",
                    email.kind,
                    gatehouse_domain::EmailAddress::from_trusted(email.recipient.clone()).masked()
                )),
            },
        )
        .await?;
        Ok(id)
    }

    async fn audit(&mut self, record: &AuditRecord) -> Result<()> {
        insert_audit(&mut self.tx, record).await
    }

    async fn apply_import(&mut self, plan: &ImportPlan, now: Timestamp) -> Result<ImportSummary> {
        let mut summary = ImportSummary {
            unchanged: plan.unchanged,
            ..ImportSummary::default()
        };
        for change in &plan.employers {
            match change.existing_id {
                Some(id) => {
                    sqlx::query("UPDATE employers SET name = $2 WHERE id = $1")
                        .bind(id)
                        .bind(&change.name)
                        .execute(&mut *self.tx)
                        .await?;
                    summary.employers_renamed += 1;
                }
                None => {
                    sqlx::query("INSERT INTO employers (code, name) VALUES ($1, $2)")
                        .bind(&change.code)
                        .bind(&change.name)
                        .execute(&mut *self.tx)
                        .await?;
                    summary.employers_created += 1;
                }
            }
        }
        let employer_ids: std::collections::HashMap<String, i64> =
            sqlx::query("SELECT code, id FROM employers")
                .fetch_all(&mut *self.tx)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_>>()?;

        if self.backend == Backend::Sqlite && !plan.creates.is_empty() {
            // SQLite's default page cache is 2 MiB; a large import inserts
            // into three indexes in key order that is not insertion order,
            // and with a small cache every insert re-reads and re-writes
            // pages through the kernel (half the time of a 500,000-row
            // import, in perf). The cache only grows as pages are used, and
            // goes back to the default before this connection is reused.
            sqlx::query("PRAGMA cache_size = -262144")
                .execute(&mut *self.tx)
                .await?;
        }
        // A bulk load into SQLite: inserting 2,000,000 rows one by one into
        // five secondary indexes (each in an order of its own) took most of
        // the import; building each index afterwards from sorted keys is
        // several times faster. The indexes are dropped and made again from
        // their own stored definitions inside this transaction, so nobody
        // sees the table without them, and a unique index that no longer
        // holds fails the import as a whole.
        let rebuilt = if self.backend == Backend::Sqlite && plan.creates.len() >= BULK_LOAD_ROWS {
            let indexes: Vec<(String, String)> = sqlx::query(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' \
                 AND tbl_name = 'accounts' AND sql IS NOT NULL",
            )
            .fetch_all(&mut *self.tx)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_>>()?;
            for (name, _) in &indexes {
                sqlx::query(AssertSqlSafe(format!("DROP INDEX \"{name}\"")))
                    .execute(&mut *self.tx)
                    .await?;
            }
            indexes
        } else {
            Vec::new()
        };
        let mut result = self
            .insert_and_update(plan, now, &mut summary, &employer_ids)
            .await;
        for (_, sql) in &rebuilt {
            if result.is_ok() {
                result = sqlx::query(AssertSqlSafe(sql.clone()))
                    .execute(&mut *self.tx)
                    .await
                    .map(|_| ())
                    .map_err(Into::into);
            }
        }
        if self.backend == Backend::Sqlite && !plan.creates.is_empty() {
            sqlx::query("PRAGMA cache_size = -2000")
                .execute(&mut *self.tx)
                .await?;
        }
        result?;
        Ok(summary)
    }
}

impl SqlTx {
    /// The bulk of an import: new accounts in batches, then updates.
    async fn insert_and_update(
        &mut self,
        plan: &ImportPlan,
        now: Timestamp,
        summary: &mut ImportSummary,
        employer_ids: &std::collections::HashMap<String, i64>,
    ) -> Result<()> {
        let employer_id = |code: &str| {
            employer_ids
                .get(code)
                .copied()
                .ok_or_else(|| StoreError::Config(format!("employer {code} vanished mid-import")))
        };
        let batch_rows = match self.backend {
            // Parameters per statement (13 per row): SQLite allows 32,766,
            // PostgreSQL 65,535.
            Backend::Sqlite => 2_500,
            Backend::Postgres => 5_000,
        };
        for batch in plan.creates.chunks(batch_rows) {
            let mut sql = String::from(
                "INSERT INTO accounts (employer_id, username, username_key, first_name, \
                 last_name, date_of_birth, email, email_key, employee_number, role, created_at, \
                 updated_at, last_name_key) VALUES ",
            );
            sql.push_str(&placeholders(self.backend, batch.len(), 13));
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for c in batch {
                q = q
                    .bind(employer_id(&c.employer_code)?)
                    .bind(c.username.as_str().to_owned())
                    .bind(c.username.key().as_str().to_owned())
                    .bind(c.row.first_name.as_str().to_owned())
                    .bind(c.row.last_name.as_str().to_owned())
                    .bind(c.row.date_of_birth.iso())
                    .bind(c.row.email.as_str().to_owned())
                    .bind(c.row.email.key())
                    .bind(
                        c.row
                            .employee_number
                            .as_ref()
                            .map(|n| n.as_str().to_owned()),
                    )
                    .bind(c.row.role.unwrap_or_default().as_str())
                    .bind(now.unix())
                    .bind(now.unix())
                    .bind(c.row.last_name.as_str().to_lowercase());
            }
            q.execute(&mut *self.tx).await?;
            summary.created += batch.len();
        }
        // New accounts start with no attempt history, even if their username
        // was tried before it existed.
        for batch in plan.creates.chunks(batch_rows) {
            let list = placeholders(self.backend, batch.len(), 1);
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM sign_in_attempts WHERE username_key IN ({list})"
            )));
            for c in batch {
                q = q.bind(c.username.key().as_str().to_owned());
            }
            q.execute(&mut *self.tx).await?;
        }

        for u in &plan.updates {
            sqlx::query(
                "UPDATE accounts SET username = $2, username_key = $3, first_name = $4, \
                 last_name = $5, date_of_birth = $6, email = $7, email_key = $8, \
                 employee_number = COALESCE($9, employee_number), role = COALESCE($10, role), \
                 updated_at = $11, \
                 last_name_key = $12 WHERE id = $1",
            )
            .bind(u.id)
            .bind(u.username.as_str())
            .bind(u.username.key().as_str())
            .bind(u.row.first_name.as_str())
            .bind(u.row.last_name.as_str())
            .bind(u.row.date_of_birth.iso())
            .bind(u.row.email.as_str())
            .bind(u.row.email.key())
            .bind(u.row.employee_number.as_ref().map(|n| n.as_str()))
            .bind(u.row.role.map(|r| r.as_str()))
            .bind(now.unix())
            .bind(u.row.last_name.as_str().to_lowercase())
            .execute(&mut *self.tx)
            .await?;
            summary.updated += 1;
            if let Some(old) = &u.old_email {
                self.void_links(u.id, VoidReason::EmailChanged, now, None)
                    .await?;
                self.delete_sessions_of(u.id).await?;
                summary.email_changes.push(EmailChange {
                    account_id: u.id,
                    username: u.username.to_string(),
                    old_email: old.clone(),
                    new_email: u.row.email.to_string(),
                });
            }
        }
        Ok(())
    }
}
