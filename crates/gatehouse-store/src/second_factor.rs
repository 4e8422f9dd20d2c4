//! Privileged accounts' second factor: a TOTP authenticator and one-time
//! recovery codes (stored only as hashes).

use gatehouse_domain::{Timestamp, TokenHash};
use sqlx::AnyConnection;

use crate::{Result, Tx};

/// A privileged account's TOTP enrolment.
#[derive(Clone)]
pub struct SecondFactorRow {
    /// The shared secret, base32.
    pub totp_secret: String,
    /// When the person first typed a right code; `None` while enrolling.
    pub confirmed_at: Option<Timestamp>,
    /// The newest time step accepted.
    pub last_step: Option<u64>,
}

impl std::fmt::Debug for SecondFactorRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondFactorRow")
            .field("totp_secret", &"<redacted>")
            .field("confirmed_at", &self.confirmed_at)
            .field("last_step", &self.last_step)
            .finish()
    }
}

#[derive(sqlx::FromRow)]
struct Stored {
    totp_secret: String,
    confirmed_at: Option<Timestamp>,
    last_step: Option<i64>,
}

/// An account's authenticator, confirmed or being set up.
pub async fn get(conn: &mut AnyConnection, account_id: i64) -> Result<Option<SecondFactorRow>> {
    let stored: Option<Stored> = sqlx::query_as(
        "SELECT totp_secret, confirmed_at, last_step FROM second_factors WHERE account_id = $1",
    )
    .bind(account_id)
    .fetch_optional(conn)
    .await?;
    Ok(stored.map(|s| SecondFactorRow {
        totp_secret: s.totp_secret,
        confirmed_at: s.confirmed_at,
        last_step: s.last_step.map(|step| step.max(0).cast_unsigned()),
    }))
}

/// Starts (or restarts, while unconfirmed) setting up an authenticator;
/// false if a confirmed one exists: it is never replaced here.
pub async fn start(
    conn: &mut AnyConnection,
    account_id: i64,
    totp_secret: &str,
    now: Timestamp,
) -> Result<bool> {
    Ok(sqlx::query(
        "INSERT INTO second_factors (account_id, totp_secret, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (account_id) DO UPDATE SET totp_secret = $2, created_at = $3 \
         WHERE second_factors.confirmed_at IS NULL",
    )
    .bind(account_id)
    .bind(totp_secret)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Accepts a TOTP time step if it is newer than the last one accepted (and
/// confirms an authenticator being set up); false for a replay. A
/// compare-and-set on the step: of two nodes given the same code at once,
/// one wins and the other sees a replay.
pub async fn accept_step(
    conn: &mut AnyConnection,
    account_id: i64,
    step: u64,
    now: Timestamp,
) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE second_factors SET last_step = $2, confirmed_at = COALESCE(confirmed_at, $3) \
         WHERE account_id = $1 AND (last_step IS NULL OR last_step < $2)",
    )
    .bind(account_id)
    .bind(i64::try_from(step).unwrap_or(i64::MAX))
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Replaces an account's recovery codes with these hashes.
pub async fn replace_recovery_codes(
    tx: &mut Tx,
    account_id: i64,
    hashes: &[TokenHash],
    now: Timestamp,
) -> Result<()> {
    sqlx::query("DELETE FROM recovery_codes WHERE account_id = $1")
        .bind(account_id)
        .execute(&mut **tx)
        .await?;
    for hash in hashes {
        sqlx::query(
            "INSERT INTO recovery_codes (account_id, code_hash, created_at) VALUES ($1, $2, $3)",
        )
        .bind(account_id)
        .bind(hash)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Spends a recovery code; false if it is not one of the account's unused codes.
pub async fn use_recovery_code(
    conn: &mut AnyConnection,
    account_id: i64,
    hash: &TokenHash,
    now: Timestamp,
) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE recovery_codes SET used_at = $3 \
         WHERE account_id = $1 AND code_hash = $2 AND used_at IS NULL",
    )
    .bind(account_id)
    .bind(hash)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Unused recovery codes left.
pub async fn recovery_codes_left(conn: &mut AnyConnection, account_id: i64) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL",
    )
    .bind(account_id)
    .fetch_one(conn)
    .await?)
}

/// Forgets an account's authenticator and recovery codes, ends its
/// sessions, and closes any set-up link's window: only a new set-up link
/// lets it set up another.
pub async fn clear(tx: &mut Tx, account_id: i64) -> Result<()> {
    for sql in [
        "DELETE FROM recovery_codes WHERE account_id = $1",
        "DELETE FROM second_factors WHERE account_id = $1",
        "DELETE FROM sessions WHERE account_id = $1",
        "UPDATE accounts SET second_factor_setup_until = NULL WHERE id = $1",
    ] {
        sqlx::query(sql).bind(account_id).execute(&mut **tx).await?;
    }
    Ok(())
}
