//! Browsers each account has signed in from: a random id in a long-lived
//! cookie, kept as its hash, so that a sign-in from a browser the account
//! has not used before can be told to its owner.

use gatehouse_domain::{Timestamp, TokenHash};
use sqlx::AnyConnection;

use crate::Result;

/// Notes that the account signed in from the browser whose id hashes to
/// `browser`; true if it never had before.
pub async fn note(
    conn: &mut AnyConnection,
    account_id: i64,
    browser: &TokenHash,
    now: Timestamp,
) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO account_browsers (account_id, browser_hash, first_seen_at, last_seen_at) \
         VALUES ($1, $2, $3, $3) ON CONFLICT (account_id, browser_hash) DO NOTHING",
    )
    .bind(account_id)
    .bind(browser)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(true);
    }
    sqlx::query(
        "UPDATE account_browsers SET last_seen_at = $3 WHERE account_id = $1 AND browser_hash = $2",
    )
    .bind(account_id)
    .bind(browser)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(false)
}

/// Forgets browsers not seen since `before`; returns how many.
pub async fn forget_unused(conn: &mut AnyConnection, before: Timestamp) -> Result<u64> {
    Ok(
        sqlx::query("DELETE FROM account_browsers WHERE last_seen_at < $1")
            .bind(before)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}
