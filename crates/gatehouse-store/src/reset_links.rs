//! Reset links (and the operator's set-up links): only the hash of each
//! token is stored, with the link's life so far.

use gatehouse_domain::reset_link::{LinkPurpose, LinkRecord, VoidReason};
use gatehouse_domain::{Timestamp, TokenHash};
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::Result;

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

/// A link as stored.
#[derive(sqlx::FromRow)]
struct Stored {
    id: i64,
    account_id: i64,
    purpose: LinkPurpose,
    created_at: Timestamp,
    expires_at: Timestamp,
    used_at: Option<Timestamp>,
    voided_at: Option<Timestamp>,
    void_reason: Option<VoidReason>,
}

impl From<Stored> for ResetLinkRow {
    fn from(s: Stored) -> Self {
        ResetLinkRow {
            id: s.id,
            account_id: s.account_id,
            purpose: s.purpose,
            record: LinkRecord {
                created_at: s.created_at,
                expires_at: s.expires_at,
                used_at: s.used_at,
                // A voided link always has its reason; one without would
                // still be void.
                voided: s
                    .voided_at
                    .map(|at| (at, s.void_reason.unwrap_or(VoidReason::Replaced))),
            },
        }
    }
}

const LINK: &str = "SELECT id, account_id, purpose, created_at, expires_at, used_at, voided_at, \
    void_reason FROM reset_links";

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

/// Stores a new link; returns its id.
pub async fn insert(conn: &mut AnyConnection, link: &NewResetLink<'_>) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO reset_links (account_id, token_hash, recovery_request_id, created_at, \
         expires_at, purpose) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(link.account_id)
    .bind(link.hash)
    .bind(link.recovery_request_id)
    .bind(link.now)
    .bind(link.expires_at)
    .bind(link.purpose)
    .fetch_one(conn)
    .await?)
}

/// The link whose token hashes to `hash`, in any state.
pub async fn by_hash(conn: &mut AnyConnection, hash: &TokenHash) -> Result<Option<ResetLinkRow>> {
    let found: Option<Stored> =
        sqlx::query_as(AssertSqlSafe(format!("{LINK} WHERE token_hash = $1")))
            .bind(hash)
            .fetch_optional(conn)
            .await?;
    Ok(found.map(Into::into))
}

/// The link with this id, in any state.
pub async fn by_id(conn: &mut AnyConnection, id: i64) -> Result<Option<ResetLinkRow>> {
    let found: Option<Stored> = sqlx::query_as(AssertSqlSafe(format!("{LINK} WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(found.map(Into::into))
}

/// Every link an account has, newest first (what a subject access request
/// shows; never a token, which is not stored).
pub async fn of_account(conn: &mut AnyConnection, account_id: i64) -> Result<Vec<ResetLinkRow>> {
    let found: Vec<Stored> = sqlx::query_as(AssertSqlSafe(format!(
        "{LINK} WHERE account_id = $1 ORDER BY id DESC"
    )))
    .bind(account_id)
    .fetch_all(conn)
    .await?;
    Ok(found.into_iter().map(Into::into).collect())
}

/// Spends a link if it is still usable at `now`; `false` if another request
/// got there first (or it has expired or been voided).
pub async fn consume(conn: &mut AnyConnection, id: i64, now: Timestamp) -> Result<bool> {
    let changed = sqlx::query(
        "UPDATE reset_links SET used_at = $2 WHERE id = $1 AND used_at IS NULL \
         AND voided_at IS NULL AND expires_at > $2",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(changed == 1)
}

/// Voids an account's usable links (except `keep`); returns how many.
pub async fn void(
    conn: &mut AnyConnection,
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
    .bind(now)
    .bind(reason)
    .bind(keep)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Voids every unused link of the accounts `ids` for `reason` (a full
/// import's leavers, a batch at a time); returns how many.
pub async fn void_for_accounts(
    conn: &mut AnyConnection,
    ids: &[i64],
    reason: VoidReason,
    now: Timestamp,
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let list = crate::database::id_list(ids);
    Ok(sqlx::query(AssertSqlSafe(format!(
        "UPDATE reset_links SET voided_at = $1, void_reason = $2 \
         WHERE account_id IN ({list}) AND used_at IS NULL AND voided_at IS NULL"
    )))
    .persistent(false)
    .bind(now)
    .bind(reason)
    .execute(conn)
    .await?
    .rows_affected())
}
