//! Forgetting what has outlived its retention period, a batch at a time.
//!
//! Each function deletes at most `batch` rows in one statement, so that a
//! backlog of years (the first run after retention is turned on) is worked
//! off in many short transactions: on SQLite nobody waits long for the
//! write lock, and on PostgreSQL no transaction holds millions of row
//! locks. The caller repeats until a batch comes back short.

use gatehouse_domain::Timestamp;
use sqlx::AnyConnection;

use crate::Result;

/// Runs one of the deletes below: `sql` takes the cutoff as `$1` and the
/// batch as `$2`.
async fn forget(
    conn: &mut AnyConnection,
    sql: &'static str,
    before: Timestamp,
    batch: u32,
) -> Result<u64> {
    Ok(sqlx::query(sql)
        .bind(before)
        .bind(i64::from(batch))
        .execute(conn)
        .await?
        .rows_affected())
}

/// Deletes up to `batch` audit events recorded before `before`.
pub async fn forget_audit_events(
    conn: &mut AnyConnection,
    before: Timestamp,
    batch: u32,
) -> Result<u64> {
    forget(
        conn,
        "DELETE FROM audit_events WHERE id IN \
         (SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2)",
        before,
        batch,
    )
    .await
}

/// Deletes up to `batch` emails that finished (sent, expired or given up)
/// before `before`. An email still queued is never deleted, however old.
pub async fn forget_finished_emails(
    conn: &mut AnyConnection,
    before: Timestamp,
    batch: u32,
) -> Result<u64> {
    forget(
        conn,
        "DELETE FROM outbox WHERE id IN \
         (SELECT id FROM outbox WHERE finished_at < $1 ORDER BY finished_at LIMIT $2)",
        before,
        batch,
    )
    .await
}

/// Deletes up to `batch` reset links that expired before `before` (used,
/// voided or not: none of them can be used any more).
pub async fn forget_expired_links(
    conn: &mut AnyConnection,
    before: Timestamp,
    batch: u32,
) -> Result<u64> {
    forget(
        conn,
        "DELETE FROM reset_links WHERE id IN \
         (SELECT id FROM reset_links WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)",
        before,
        batch,
    )
    .await
}

/// Deletes up to `batch` recovery requests processed before `before` that
/// no remaining email or link refers to (those go first, by their own
/// periods; a request kept a little longer for them goes in a later batch).
pub async fn forget_finished_requests(
    conn: &mut AnyConnection,
    before: Timestamp,
    batch: u32,
) -> Result<u64> {
    forget(
        conn,
        "DELETE FROM recovery_requests WHERE id IN \
         (SELECT r.id FROM recovery_requests r WHERE r.processed_at < $1 \
          AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.recovery_request_id = r.id) \
          AND NOT EXISTS (SELECT 1 FROM reset_links l WHERE l.recovery_request_id = r.id) \
          ORDER BY r.processed_at LIMIT $2)",
        before,
        batch,
    )
    .await
}

/// Up to `batch` staff accounts disabled before `before` whose personal
/// details are still held: those the worker erases next. Helpdesk and
/// admin accounts are never erased by age (an operator erases them by
/// hand, after taking their role away).
pub async fn disabled_to_erase(
    conn: &mut AnyConnection,
    before: Timestamp,
    batch: u32,
) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM accounts WHERE disabled_at < $1 AND erased_at IS NULL \
         AND role = 'staff' ORDER BY disabled_at LIMIT $2",
    )
    .bind(before)
    .bind(i64::from(batch))
    .fetch_all(conn)
    .await?)
}
