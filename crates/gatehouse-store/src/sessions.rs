//! Server-side sessions: only the hash of the id in the cookie is stored.

use gatehouse_domain::{Timestamp, TokenHash};
use sqlx::AnyConnection;

use crate::{Result, Tx};

/// A server-side session.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRecord {
    /// SHA-256 of the session id in the cookie.
    pub id_hash: TokenHash,
    /// The signed-in account, or `None` before sign-in.
    pub account_id: Option<i64>,
    /// The form token for this session: stored empty, and made from the
    /// cookie's id on every request (a MAC under the service's key).
    pub csrf_token: String,
    /// When the session began.
    pub created_at: Timestamp,
    /// The latest request.
    pub last_seen_at: Timestamp,
    /// A one-time message for the next page.
    pub flash: Option<String>,
    /// When this session passed the second factor (privileged accounts).
    pub second_factor_at: Option<Timestamp>,
    /// The browser's user agent at sign-in (for "Where you're signed in").
    pub user_agent: Option<String>,
    /// The client address at sign-in.
    pub client_ip: Option<String>,
    /// How a passkey took part in this session's sign-in:
    /// [`PASSKEY_NONE`], [`PASSKEY_SIGN_IN`] or [`PASSKEY_SECOND_FACTOR`].
    pub passkey: i64,
}

/// A session signed in with a password alone (and perhaps an app's code).
pub const PASSKEY_NONE: i64 = 0;
/// A session signed in with a passkey, no password.
pub const PASSKEY_SIGN_IN: i64 = 1;
/// A session that passed the second factor with a passkey.
pub const PASSKEY_SECOND_FACTOR: i64 = 2;

/// The columns of [`SessionRecord`].
const SESSION: &str = "SELECT id_hash, account_id, csrf_token, created_at, last_seen_at, \
    flash, second_factor_at, user_agent, client_ip, passkey FROM sessions";

/// The session whose id hashes to `id_hash`.
pub async fn get(conn: &mut AnyConnection, id_hash: &TokenHash) -> Result<Option<SessionRecord>> {
    Ok(
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{SESSION} WHERE id_hash = $1")))
            .bind(id_hash)
            .fetch_optional(conn)
            .await?,
    )
}

/// Stores a new session. (The `sign_in_successes` view of migrations 9 and
/// 10 writes sessions too: a new column goes into both.)
pub async fn create(conn: &mut AnyConnection, s: &SessionRecord) -> Result<()> {
    bind_columns(
        sqlx::query(
            "INSERT INTO sessions (id_hash, account_id, csrf_token, created_at, last_seen_at, \
             flash, second_factor_at, user_agent, client_ip, passkey) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        ),
        s,
    )
    .bind(s.passkey)
    .execute(conn)
    .await?;
    Ok(())
}

/// Binds a session's columns, in the order `create` names them (the
/// sign-in statement of `attempts` writes a session in the same order).
pub(crate) fn bind_columns<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    s: &'q SessionRecord,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(s.id_hash)
        .bind(s.account_id)
        .bind(&s.csrf_token)
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(&s.flash)
        .bind(s.second_factor_at)
        .bind(&s.user_agent)
        .bind(&s.client_ip)
}

/// Records activity on a session.
pub async fn touch(conn: &mut AnyConnection, id_hash: &TokenHash, now: Timestamp) -> Result<()> {
    sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1")
        .bind(id_hash)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends a session, and with it what applications were granted in it (their
/// clients are told by back-channel logout).
pub async fn end(tx: &mut Tx, id_hash: &TokenHash, now: Timestamp) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(&mut **tx)
        .await?;
    crate::oidc::grants::end_for_session(tx, id_hash, now).await?;
    Ok(())
}

/// Deletes a session that has expired (idle or at its absolute end). What
/// applications were granted in it is left to its own end: a person busy
/// in an application is not signed out of it for being idle here.
pub async fn expire(conn: &mut AnyConnection, id_hash: &TokenHash) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends every session of an account, and every grant applications hold for
/// it (their clients are told by back-channel logout); returns how many
/// sessions.
pub async fn end_all_of(tx: &mut Tx, account_id: i64, now: Timestamp) -> Result<u64> {
    let ended = sqlx::query("DELETE FROM sessions WHERE account_id = $1")
        .bind(account_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    crate::oidc::grants::end_for_account(tx, account_id, now).await?;
    Ok(ended)
}

/// Ends every session of the accounts `ids` and revokes their grants (a
/// full import's leavers, a batch at a time); returns how many sessions
/// ended.
pub async fn end_all_of_accounts(tx: &mut Tx, ids: &[i64], now: Timestamp) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let list = crate::database::id_list(ids);
    let ended = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM sessions WHERE account_id IN ({list})"
    )))
    .persistent(false)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    crate::oidc::grants::end_for_accounts(tx, ids, now).await?;
    Ok(ended)
}

/// Sets or clears a session's one-time message.
pub async fn set_flash(
    conn: &mut AnyConnection,
    id_hash: &TokenHash,
    flash: Option<&str>,
) -> Result<()> {
    sqlx::query("UPDATE sessions SET flash = $2 WHERE id_hash = $1")
        .bind(id_hash)
        .bind(flash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records that a session passed the second factor.
pub async fn pass_second_factor(
    conn: &mut AnyConnection,
    id_hash: &TokenHash,
    at: Timestamp,
) -> Result<()> {
    sqlx::query("UPDATE sessions SET second_factor_at = $2 WHERE id_hash = $1")
        .bind(id_hash)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks a session as having passed the second factor with a passkey.
pub async fn pass_second_factor_with_passkey(
    conn: &mut AnyConnection,
    id_hash: &TokenHash,
    at: Timestamp,
) -> Result<()> {
    sqlx::query("UPDATE sessions SET second_factor_at = $2, passkey = $3 WHERE id_hash = $1")
        .bind(id_hash)
        .bind(at)
        .bind(PASSKEY_SECOND_FACTOR)
        .execute(conn)
        .await?;
    Ok(())
}

/// Makes every session of an account pass the second factor again (the
/// account was locked: someone has been guessing); returns how many.
pub async fn forget_second_factor_passes(conn: &mut AnyConnection, account_id: i64) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE sessions SET second_factor_at = NULL \
         WHERE account_id = $1 AND second_factor_at IS NOT NULL",
    )
    .bind(account_id)
    .execute(conn)
    .await?
    .rows_affected())
}

/// How many sessions an account has.
pub async fn count_of(conn: &mut AnyConnection, account_id: i64) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE account_id = $1")
            .bind(account_id)
            .fetch_one(conn)
            .await?,
    )
}

/// Deletes sessions idle since before `idle_since`; returns how many.
pub async fn end_idle(conn: &mut AnyConnection, idle_since: Timestamp) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM sessions WHERE last_seen_at < $1")
        .bind(idle_since)
        .execute(conn)
        .await?
        .rows_affected())
}

/// Every session of an account, newest first.
pub async fn of_account(conn: &mut AnyConnection, account_id: i64) -> Result<Vec<SessionRecord>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SESSION} WHERE account_id = $1 ORDER BY created_at DESC"
    )))
    .bind(account_id)
    .fetch_all(conn)
    .await?)
}

/// Ends every session of an account but `keep` (the person's own browser,
/// after a password change or "Sign out of all other devices"), with what
/// applications were granted in them; returns how many sessions.
pub async fn end_others(
    tx: &mut Tx,
    account_id: i64,
    keep: &TokenHash,
    now: Timestamp,
) -> Result<u64> {
    let others: Vec<TokenHash> =
        sqlx::query_scalar("SELECT id_hash FROM sessions WHERE account_id = $1 AND id_hash <> $2")
            .bind(account_id)
            .bind(keep)
            .fetch_all(&mut **tx)
            .await?;
    for id_hash in &others {
        end(tx, id_hash, now).await?;
    }
    Ok(others.len() as u64)
}
