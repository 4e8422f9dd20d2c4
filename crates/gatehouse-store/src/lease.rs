//! Taking rows for a worker: the recovery worker's requests and the outbox
//! worker's emails are both "claimed" the same way.
//!
//! A claim marks up to `limit` due rows as leased until a time, in one
//! statement, and returns them. Several workers on several nodes never take
//! the same row: on PostgreSQL the rows are chosen `FOR UPDATE SKIP LOCKED`,
//! and on SQLite the statement holds the file's one write lock. A row whose
//! lease has run out (its worker died) is due again.

use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use crate::database::backend_of_connection;
use crate::{Backend, Result};
use gatehouse_domain::Timestamp;

/// What to claim: which table, which rows are due, in what order.
pub(crate) struct Claim {
    /// The table (also the name the due rows are known by in `due`).
    pub table: &'static str,
    /// What makes a row due besides its lease (`$1` is now), over the alias `due`.
    pub due: &'static str,
    /// The order rows are taken in.
    pub order: &'static str,
    /// More to set on each claimed row, after the lease (`, attempts = attempts + 1`).
    pub also_set: &'static str,
    /// The columns returned, which `T` reads by name.
    pub returning: &'static str,
}

/// Leases up to `limit` due rows until `lease_until`, returning them in id order.
pub(crate) async fn claim<T>(
    conn: &mut AnyConnection,
    what: &Claim,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> Result<Vec<T>>
where
    T: for<'r> FromRow<'r, sqlx::any::AnyRow> + Send + Unpin + HasId,
{
    let skip_locked = match backend_of_connection(conn) {
        Backend::Sqlite => "",
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
    };
    let Claim {
        table,
        due,
        order,
        also_set,
        returning,
    } = what;
    let sql = format!(
        "UPDATE {table} SET lease_until = $2{also_set} WHERE id IN (\
           SELECT id FROM {table} AS due WHERE {due} \
           AND (lease_until IS NULL OR lease_until <= $1) ORDER BY {order} LIMIT $3{skip_locked}) \
         RETURNING {returning}"
    );
    let mut rows: Vec<T> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(now)
        .bind(lease_until)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
    // RETURNING gives no order.
    rows.sort_by_key(HasId::id);
    Ok(rows)
}

/// A claimed row's id.
pub(crate) trait HasId {
    /// The row's id.
    fn id(&self) -> i64;
}

/// Moves the lease of those of `ids` still leased at `now` on to
/// `lease_until`; returns the ids it moved.
///
/// A row whose lease has run out is left alone: another worker may have
/// taken it since. On PostgreSQL a row locked by a transaction (its worker
/// recording how it ended) is skipped rather than waited for: nobody else
/// can take it while it is locked, and waiting would stall the renewal
/// behind the record it is meant to cover.
pub(crate) async fn renew(
    conn: &mut AnyConnection,
    table: &'static str,
    ids: &[i64],
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<Vec<i64>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let skip_locked = match backend_of_connection(conn) {
        Backend::Sqlite => "",
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
    };
    let list = crate::database::id_list(ids);
    let sql = format!(
        "UPDATE {table} SET lease_until = $2 WHERE id IN (\
           SELECT id FROM {table} WHERE id IN ({list}) AND lease_until > $1{skip_locked}) \
         RETURNING id"
    );
    let mut renewed: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(sql))
        .persistent(false)
        .bind(now)
        .bind(lease_until)
        .fetch_all(&mut *conn)
        .await?;
    renewed.sort_unstable();
    Ok(renewed)
}
