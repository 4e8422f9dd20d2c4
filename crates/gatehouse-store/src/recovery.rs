//! Recovery requests: recorded at once with the same answer for everyone,
//! matched later by the recovery worker.

use gatehouse_domain::recovery::RequestStatus;
use gatehouse_domain::{RecoveryOutcome, Timestamp};
use sqlx::AnyConnection;

use crate::lease::{self, Claim, HasId};
use crate::{Result, StoreError};

/// A recovery request waiting to be matched.
#[derive(Debug, Clone, sqlx::FromRow)]
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

impl HasId for RecoveryRequestRow {
    fn id(&self) -> i64 {
        self.id
    }
}

/// A recovery request as the helpdesk sees it.
#[derive(Debug, Clone)]
pub struct RecoveryRequestSummary {
    /// Storage id.
    pub id: i64,
    /// When it was made.
    pub created_at: Timestamp,
    /// Whether the worker has matched it yet.
    pub status: RequestStatus,
    /// How it ended, once matched.
    pub outcome: Option<RecoveryOutcome>,
    /// How many of the matched accounts were locked (told until when, with no link).
    pub locked_accounts: Option<i64>,
    /// When it was processed.
    pub processed_at: Option<Timestamp>,
}

/// A summary as stored: the outcome is in two columns.
#[derive(sqlx::FromRow)]
struct StoredSummary {
    id: i64,
    created_at: Timestamp,
    status: RequestStatus,
    outcome: Option<String>,
    matched_accounts: Option<i64>,
    processed_at: Option<Timestamp>,
    locked_accounts: Option<i64>,
}

impl TryFrom<StoredSummary> for RecoveryRequestSummary {
    type Error = StoreError;

    fn try_from(s: StoredSummary) -> Result<Self> {
        let outcome = match s.outcome.as_deref() {
            None => None,
            Some(name) => Some(
                RecoveryOutcome::from_stored(name, s.matched_accounts).ok_or_else(|| {
                    StoreError::Schema(format!(
                        "recovery request {} has an outcome this build does not know: {name:?}",
                        s.id
                    ))
                })?,
            ),
        };
        Ok(RecoveryRequestSummary {
            id: s.id,
            created_at: s.created_at,
            status: s.status,
            outcome,
            locked_accounts: s.locked_accounts,
            processed_at: s.processed_at,
        })
    }
}

/// Records a recovery request; returns its id.
pub async fn insert(
    conn: &mut AnyConnection,
    email_key: &str,
    date_of_birth: &str,
    username_key: Option<&str>,
    client_ip: &str,
    now: Timestamp,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO recovery_requests \
         (email_key, date_of_birth, username_key, client_ip, created_at, status) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(email_key)
    .bind(date_of_birth)
    .bind(username_key)
    .bind(client_ip)
    .bind(now)
    .bind(RequestStatus::Pending)
    .fetch_one(conn)
    .await?)
}

/// Recovery requests from a client address since `since`.
pub async fn count_from(
    conn: &mut AnyConnection,
    client_ip: &str,
    since: Timestamp,
) -> Result<u32> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM recovery_requests WHERE client_ip = $1 AND created_at > $2",
    )
    .bind(client_ip)
    .bind(since)
    .fetch_one(conn)
    .await?;
    Ok(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
}

/// Takes up to `limit` pending requests, leased until `lease_until`.
pub async fn claim(
    conn: &mut AnyConnection,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> Result<Vec<RecoveryRequestRow>> {
    lease::claim(
        conn,
        &Claim {
            table: "recovery_requests",
            due: "status = 'pending'",
            order: "id",
            also_set: "",
            returning: "id, email_key, date_of_birth, username_key, client_ip, created_at",
        },
        now,
        lease_until,
        limit,
    )
    .await
}

/// Marks a pending request processed, forgetting the date of birth typed
/// (it has done its job); `false` if it was not pending (another worker
/// did it).
pub async fn finish(
    conn: &mut AnyConnection,
    id: i64,
    outcome: RecoveryOutcome,
    locked_accounts: u32,
    now: Timestamp,
) -> Result<bool> {
    let matched = match outcome {
        RecoveryOutcome::Matched(n) => Some(i64::from(n)),
        _ => None,
    };
    let changed = sqlx::query(
        "UPDATE recovery_requests SET status = $6, outcome = $2, \
         matched_accounts = $3, processed_at = $4, lease_until = NULL, date_of_birth = '', \
         locked_accounts = $5 WHERE id = $1 AND status = $7",
    )
    .bind(id)
    .bind(outcome.as_str())
    .bind(matched)
    .bind(now)
    .bind(i64::from(locked_accounts))
    .bind(RequestStatus::Processed)
    .bind(RequestStatus::Pending)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(changed == 1)
}

/// Recovery requests for an email address, newest first.
pub async fn for_email(
    conn: &mut AnyConnection,
    email_key: &str,
    limit: u32,
) -> Result<Vec<RecoveryRequestSummary>> {
    let stored: Vec<StoredSummary> = sqlx::query_as(
        "SELECT id, created_at, status, outcome, matched_accounts, processed_at, \
         locked_accounts FROM recovery_requests WHERE email_key = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(email_key)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    stored.into_iter().map(TryInto::try_into).collect()
}

/// Recovery requests recorded and not yet processed.
pub async fn pending(conn: &mut AnyConnection) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM recovery_requests WHERE status = $1")
            .bind(RequestStatus::Pending)
            .fetch_one(conn)
            .await?,
    )
}
