//! The audit log: every security event, who did it, when and from where.

use gatehouse_domain::Timestamp;
use gatehouse_domain::audit::AuditEvent;
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::Result;

/// A security event to record.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRecord {
    /// When.
    pub at: Timestamp,
    /// What.
    pub event: AuditEvent,
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
    /// The browser's user agent, when a person's browser did it.
    pub user_agent: Option<String>,
}

impl AuditRecord {
    /// An event at `at`, with nothing else said yet.
    pub fn new(at: Timestamp, event: AuditEvent) -> Self {
        Self {
            at,
            event,
            actor: None,
            account_id: None,
            username: None,
            client_ip: None,
            detail: None,
            user_agent: None,
        }
    }
}

/// A recorded security event: its record, read through as if its own
/// fields, and the order it was recorded in.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    /// Storage id, in order of recording.
    pub id: i64,
    /// The event.
    #[sqlx(flatten)]
    pub record: AuditRecord,
}

impl std::ops::Deref for AuditRow {
    type Target = AuditRecord;

    fn deref(&self) -> &AuditRecord {
        &self.record
    }
}

/// Which audit events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only events concerning this account.
    pub account_id: Option<i64>,
    /// Only events of this kind.
    pub event: Option<AuditEvent>,
    /// Only events by this actor.
    pub actor: Option<String>,
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
    /// Only events before this time.
    pub until: Option<Timestamp>,
    /// At most this many, newest first (0: 100).
    pub limit: u32,
}

/// Records a security event. (The `sign_in_successes` view of migrations 9
/// and 10 writes audit events too: a new column goes into both.)
pub async fn record(conn: &mut AnyConnection, r: &AuditRecord) -> Result<()> {
    bind_columns(
        sqlx::query(
            "INSERT INTO audit_events (at, event, actor, account_id, username, client_ip, \
             detail, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        ),
        r,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes many security events, a few statements for the lot (a full
/// import's leavers and returners, one event each).
pub async fn record_many(conn: &mut AnyConnection, records: &[AuditRecord]) -> Result<()> {
    let backend = crate::database::backend_of_connection(conn);
    // Eight parameters a row: SQLite allows 32,766 in a statement.
    for batch in records.chunks(2_000) {
        let mut sql = String::from(
            "INSERT INTO audit_events (at, event, actor, account_id, username, client_ip, \
             detail, user_agent) VALUES ",
        );
        sql.push_str(&crate::database::placeholders(backend, batch.len(), 8));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for r in batch {
            query = bind_columns(query, r);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Binds an event's columns, in the order `record` names them (the
/// sign-in statement of `attempts` writes an event in the same order).
pub(crate) fn bind_columns<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    r: &'q AuditRecord,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(r.at)
        .bind(r.event)
        .bind(&r.actor)
        .bind(r.account_id)
        .bind(&r.username)
        .bind(&r.client_ip)
        .bind(&r.detail)
        .bind(&r.user_agent)
}

/// Security events, newest first.
pub async fn list(conn: &mut AnyConnection, filter: &AuditFilter) -> Result<Vec<AuditRow>> {
    // Only the conditions asked for, so that each filter is answered by its
    // own index (`$1 IS NULL OR …` would read the whole log).
    let mut conditions = Vec::new();
    let mut condition = |sql: &str| conditions.push(format!("{sql} ${}", conditions.len() + 1));
    if filter.account_id.is_some() {
        condition("account_id =");
    }
    if filter.event.is_some() {
        condition("event =");
    }
    if filter.actor.is_some() {
        condition("actor =");
    }
    if filter.since.is_some() {
        condition("at >=");
    }
    if filter.until.is_some() {
        condition("at <");
    }
    // Newest first. With only a time range, in time order, so the range is
    // read from the index on `at` rather than by walking every id.
    let only_time = filter.account_id.is_none()
        && filter.event.is_none()
        && filter.actor.is_none()
        && (filter.since.is_some() || filter.until.is_some());
    let sql = format!(
        "SELECT id, at, event, actor, account_id, username, client_ip, detail, user_agent \
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
    let mut query = sqlx::query_as(AssertSqlSafe(sql));
    if let Some(account_id) = filter.account_id {
        query = query.bind(account_id);
    }
    if let Some(event) = filter.event {
        query = query.bind(event);
    }
    if let Some(actor) = &filter.actor {
        query = query.bind(actor.clone());
    }
    if let Some(since) = filter.since {
        query = query.bind(since);
    }
    if let Some(until) = filter.until {
        query = query.bind(until);
    }
    let limit = if filter.limit == 0 { 100 } else { filter.limit };
    Ok(query.bind(i64::from(limit)).fetch_all(conn).await?)
}

/// Events of one kind recorded for a client address since `since` (how
/// per-client throttles that keep no other row count).
pub async fn count_from(
    conn: &mut AnyConnection,
    client_ip: &str,
    event: AuditEvent,
    since: Timestamp,
) -> Result<u32> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE client_ip = $1 AND event = $2 AND at > $3",
    )
    .bind(client_ip)
    .bind(event)
    .bind(since)
    .fetch_one(conn)
    .await?;
    Ok(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
}
