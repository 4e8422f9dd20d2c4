//! Back-channel logout notices (Back-Channel Logout 1.0): written in the
//! transaction that ends a person's sessions, and posted to each client
//! that registered an address by the worker, with the outbox's leases and
//! retry schedule, so that a client that is down hears of it later.

use gatehouse_domain::oidc::client::ClientId;
use gatehouse_domain::{Timestamp, TokenHash};
use sqlx::AnyConnection;

use super::grants::Ended;
use crate::lease::{self, Claim, HasId};
use crate::{Result, Tx};

/// Queues a notice for each client told of `ended` grants: one per client
/// and session, to clients that registered a back-channel logout address
/// and are not disabled. The subject is assigned if the account has none
/// yet (a grant was issued, so it has one).
pub(crate) async fn queue_for(tx: &mut Tx, ended: &[Ended], now: Timestamp) -> Result<u64> {
    let mut seen: Vec<(&ClientId, &TokenHash)> = Vec::new();
    let mut queued = 0;
    for e in ended {
        if seen.contains(&(&e.client_id, &e.session_hash)) {
            continue;
        }
        seen.push((&e.client_id, &e.session_hash));
        let sid = gatehouse_domain::oidc::session_sid(&e.session_hash);
        queued += sqlx::query(
            "INSERT INTO oidc_logout_notices (client_id, subject, sid, status, next_attempt_at, \
             created_at) \
             SELECT c.id, a.subject, $3, 'queued', $4, $4 FROM oidc_clients c, accounts a \
             WHERE c.id = $1 AND a.id = $2 AND c.backchannel_logout_uri IS NOT NULL \
             AND c.disabled_at IS NULL AND a.subject IS NOT NULL",
        )
        .bind(&e.client_id)
        .bind(e.account_id)
        .bind(sid)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    Ok(queued)
}

/// A notice claimed for one delivery try.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LogoutNotice {
    /// Its id.
    pub id: i64,
    /// The client to tell.
    pub client_id: ClientId,
    /// The person's subject.
    pub subject: String,
    /// The session's `sid`.
    pub sid: String,
    /// Tries so far, this one included.
    pub attempts: i64,
    /// When it was queued.
    pub created_at: Timestamp,
}

impl HasId for LogoutNotice {
    fn id(&self) -> i64 {
        self.id
    }
}

const DUE: Claim = Claim {
    table: "oidc_logout_notices",
    due: "status = 'queued' AND next_attempt_at <= $1",
    order: "next_attempt_at, id",
    also_set: ", attempts = attempts + 1",
    returning: "id, client_id, subject, sid, attempts, created_at",
};

/// Leases up to `limit` due notices until `lease_until`.
pub async fn claim(
    conn: &mut AnyConnection,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> Result<Vec<LogoutNotice>> {
    lease::claim(conn, &DUE, now, lease_until, limit).await
}

/// How one try at a notice ended.
#[derive(Debug, Clone)]
pub enum NoticeResult {
    /// The client answered with success.
    Sent,
    /// Try again at this time.
    Retry {
        /// Why this try failed.
        error: String,
        /// When to try again.
        at: Timestamp,
    },
    /// Given up.
    Failed(String),
}

/// Records how a try ended.
pub async fn record(
    conn: &mut AnyConnection,
    id: i64,
    result: &NoticeResult,
    now: Timestamp,
) -> Result<()> {
    let query = match result {
        NoticeResult::Sent => sqlx::query(
            "UPDATE oidc_logout_notices SET status = 'sent', finished_at = $2, \
             lease_until = NULL, last_error = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(now),
        NoticeResult::Retry { error, at } => sqlx::query(
            "UPDATE oidc_logout_notices SET last_error = $2, next_attempt_at = $3, \
             lease_until = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(error.clone())
        .bind(*at),
        NoticeResult::Failed(error) => sqlx::query(
            "UPDATE oidc_logout_notices SET status = 'failed', last_error = $2, \
             finished_at = $3, lease_until = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(error.clone())
        .bind(now),
    };
    query.execute(conn).await?;
    Ok(())
}

/// Notices waiting to be delivered.
pub async fn queued(conn: &mut AnyConnection) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM oidc_logout_notices WHERE status = 'queued'")
            .fetch_one(conn)
            .await?,
    )
}

/// A notice as the operator sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NoticeSummary {
    /// Its id.
    pub id: i64,
    /// The client.
    pub client_id: ClientId,
    /// The session's `sid`.
    pub sid: String,
    /// queued, sent or failed.
    pub status: String,
    /// Tries so far.
    pub attempts: i64,
    /// Why the latest try failed.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: Timestamp,
    /// When it was sent or given up.
    pub finished_at: Option<Timestamp>,
}

/// A client's notices, newest first.
pub async fn of_client(
    conn: &mut AnyConnection,
    client_id: &ClientId,
    limit: u32,
) -> Result<Vec<NoticeSummary>> {
    Ok(sqlx::query_as(
        "SELECT id, client_id, sid, status, attempts, last_error, created_at, finished_at \
         FROM oidc_logout_notices WHERE client_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(client_id)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?)
}

/// Deletes notices finished more than a week ago.
pub async fn tidy(conn: &mut AnyConnection, now: Timestamp) -> Result<u64> {
    Ok(
        sqlx::query(
            "DELETE FROM oidc_logout_notices WHERE status <> 'queued' AND finished_at < $1",
        )
        .bind(now.minus(gatehouse_domain::Span::hours(24 * 7)))
        .execute(conn)
        .await?
        .rows_affected(),
    )
}
