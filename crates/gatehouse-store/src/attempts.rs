//! Sign-in attempt counters: one per username ever tried, whether or not an
//! account has it, changed only by compare-and-set (the lockout's exactness
//! rests on it).

use gatehouse_domain::lockout::AttemptCounter;
use gatehouse_domain::{Timestamp, TokenHash, UsernameKey};
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::audit::{self, AuditRecord};
use crate::database::backend_of_connection;
use crate::sessions::{self, SessionRecord};
use crate::{Backend, Result, StoreError, Tx};

/// How many times a compare-and-set is retried before giving up.
const CAS_ATTEMPTS: usize = 200;

/// The refusal of `sign_in_successes` (migrations 9 and 10) when the
/// attempt counter is no longer at the version claimed.
const COUNTER_CHANGED: &str = "gatehouse: the attempt counter changed since the claim";

/// A counter as stored, with its version.
#[derive(sqlx::FromRow)]
struct CounterRow {
    consecutive: i64,
    total: i64,
    locked_until: Option<Timestamp>,
    claims: i64,
    second_factor_failures: i64,
    version: i64,
}

/// The counter's columns, for [`CounterRow`].
const COUNTER: &str = "consecutive, total, locked_until, claims, second_factor_failures, version";

fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

impl CounterRow {
    fn counter(&self) -> AttemptCounter {
        AttemptCounter {
            consecutive: count(self.consecutive),
            total: count(self.total),
            locked_until: self.locked_until,
            claims: u64::try_from(self.claims).unwrap_or(0),
            second_factor_failures: count(self.second_factor_failures),
        }
    }
}

fn claims(c: &AttemptCounter) -> i64 {
    i64::try_from(c.claims).unwrap_or(i64::MAX)
}

/// Binds a counter's values in the order of [`COUNTER`], without the version.
fn bind_counter<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    c: &AttemptCounter,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(i64::from(c.consecutive))
        .bind(i64::from(c.total))
        .bind(c.locked_until)
        .bind(claims(c))
        .bind(i64::from(c.second_factor_failures))
}

async fn read_row(conn: &mut AnyConnection, key: &UsernameKey) -> Result<Option<CounterRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COUNTER} FROM sign_in_attempts WHERE username_key = $1"
    )))
    .bind(key)
    .fetch_optional(conn)
    .await?)
}

/// A username's counter (all zero if it was never tried).
pub async fn read(conn: &mut AnyConnection, key: &UsernameKey) -> Result<AttemptCounter> {
    Ok(read_row(conn, key)
        .await?
        .map(|r| r.counter())
        .unwrap_or_default())
}

/// A username's counter, kept for this transaction: a concurrent
/// compare-and-set waits for it to end and then sees the new version. (On
/// SQLite the transaction already holds the database's write lock.)
pub async fn read_for_update(tx: &mut Tx, key: &UsernameKey) -> Result<AttemptCounter> {
    if backend_of_connection(tx) == Backend::Postgres {
        // The row is created first: there is nothing to lock otherwise.
        sqlx::query(
            "INSERT INTO sign_in_attempts \
             (username_key, consecutive, total, locked_until, claims, version, updated_at) \
             VALUES ($1, 0, 0, NULL, 0, 0, 0) ON CONFLICT (username_key) DO NOTHING",
        )
        .bind(key)
        .execute(&mut **tx)
        .await?;
        let row: Option<CounterRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {COUNTER} FROM sign_in_attempts WHERE username_key = $1 FOR UPDATE"
        )))
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?;
        return Ok(row.map(|r| r.counter()).unwrap_or_default());
    }
    read(tx, key).await
}

/// Writes a username's counter (in a transaction that read it with
/// [`read_for_update`]).
pub async fn set(
    conn: &mut AnyConnection,
    key: &UsernameKey,
    c: &AttemptCounter,
    now: Timestamp,
) -> Result<()> {
    bind_counter(
        sqlx::query(
            "INSERT INTO sign_in_attempts \
             (username_key, consecutive, total, locked_until, claims, second_factor_failures, \
             version, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7) \
             ON CONFLICT (username_key) DO UPDATE SET consecutive = excluded.consecutive, \
             total = excluded.total, locked_until = excluded.locked_until, \
             claims = excluded.claims, second_factor_failures = excluded.second_factor_failures, \
             version = sign_in_attempts.version + 1, updated_at = excluded.updated_at",
        )
        .bind(key),
        c,
    )
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The outcome of a compare-and-set on an attempt counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterUpdate {
    /// The counter as it was when the change was decided.
    pub before: AttemptCounter,
    /// The counter written, or `None` if the change wrote nothing.
    pub after: Option<AttemptCounter>,
    /// The version `after` was written at, for a later compare-and-set
    /// against it ([`record_sign_in_success`]).
    pub version: Option<i64>,
}

/// A change to an attempt counter, decided from its current value: return
/// the new value, or `None` to leave it. It may be called more than once
/// (each time another writer got there first), always with the latest value.
pub type CounterChange<'a> = dyn FnMut(AttemptCounter) -> Option<AttemptCounter> + Send + 'a;

/// Reads and changes a username's counter atomically: compare-and-set on
/// its version, retried while other writers get there first.
pub async fn update(
    conn: &mut AnyConnection,
    key: &UsernameKey,
    now: Timestamp,
    change: &mut CounterChange<'_>,
) -> Result<CounterUpdate> {
    for _ in 0..CAS_ATTEMPTS {
        let current = read_row(conn, key).await?;
        let before = current
            .as_ref()
            .map(CounterRow::counter)
            .unwrap_or_default();
        let Some(after) = change(before) else {
            return Ok(CounterUpdate {
                before,
                after: None,
                version: None,
            });
        };
        let written = match &current {
            None => bind_counter(
                sqlx::query(
                    "INSERT INTO sign_in_attempts \
                     (username_key, consecutive, total, locked_until, claims, \
                     second_factor_failures, version, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 1, $7) ON CONFLICT (username_key) DO NOTHING",
                )
                .bind(key),
                &after,
            )
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
            Some(row) => bind_counter(
                sqlx::query(
                    "UPDATE sign_in_attempts SET consecutive = $2, total = $3, \
                     locked_until = $4, claims = $5, second_factor_failures = $6, \
                     version = version + 1, updated_at = $7 \
                     WHERE username_key = $1 AND version = $8",
                )
                .bind(key),
                &after,
            )
            .bind(now)
            .bind(row.version)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
        };
        if written == 1 {
            return Ok(CounterUpdate {
                before,
                after: Some(after),
                version: Some(current.map_or(1, |row| row.version + 1)),
            });
        }
    }
    Err(StoreError::Contention("sign-in attempts"))
}

/// Lifts a lock early (only when the operator setting allows it): the
/// lock's failures and code failures are forgiven, the total is kept.
pub async fn lift_lock(conn: &mut AnyConnection, key: &UsernameKey, now: Timestamp) -> Result<()> {
    update(conn, key, now, &mut |mut counter| {
        counter.locked_until = None;
        counter.consecutive = 0;
        counter.second_factor_failures = 0;
        Some(counter)
    })
    .await?;
    Ok(())
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

/// Writes a sign-in's success in one statement, if its attempt counter is
/// still as the claim left it; `Ok(false)`, writing nothing, if another
/// attempt changed it since (the caller then reads it afresh in a
/// transaction). One statement rather than a transaction of seven because
/// each statement is a hand-off to SQLite's connection thread, about half
/// of what a sign-in cost beside its hash (BENCHMARKS.md).
pub async fn record_sign_in_success(
    conn: &mut AnyConnection,
    s: &SignInSuccess<'_>,
) -> Result<bool> {
    let (session, audit) = (s.session, s.audit);
    // The view's INSTEAD OF trigger does the writes of a transaction in one
    // statement, and refuses with COUNTER_CHANGED if the counter moved on.
    let query = sqlx::query(
        "INSERT INTO sign_in_successes (counter_key, claimed_version, consecutive, total, \
         locked_until, claims, second_factor_failures, at, account_id, previous_session, \
         id_hash, session_account_id, csrf_token, created_at, last_seen_at, flash, \
         second_factor_at, session_user_agent, session_client_ip, audit_at, event, actor, \
         audit_account_id, username, client_ip, detail, audit_user_agent) VALUES ($1, $2, \
         $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
         $21, $22, $23, $24, $25, $26, $27)",
    )
    .bind(s.counter_key)
    .bind(s.claimed_version);
    let query = bind_counter(query, s.counter)
        .bind(s.now)
        .bind(s.account_id)
        .bind(s.previous_session.copied());
    let written = audit::bind_columns(sessions::bind_columns(query, session), audit)
        .execute(conn)
        .await;
    match written {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(e)) if e.message().contains(COUNTER_CHANGED) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Forgets the counters of usernames nobody has, untouched since `before`
/// and not locked at `now`: forgetting them changes nothing anyone can
/// observe. Returns how many.
pub async fn forget_unknown(
    conn: &mut AnyConnection,
    before: Timestamp,
    now: Timestamp,
) -> Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM sign_in_attempts WHERE updated_at < $1 \
         AND (locked_until IS NULL OR locked_until < $2) \
         AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.username_key = sign_in_attempts.username_key)",
    )
    .bind(before)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected())
}
