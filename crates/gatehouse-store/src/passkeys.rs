//! Passkeys (WebAuthn): each account's registered credentials, and the
//! state of ceremonies between their options and their answer.
//!
//! A ceremony is kept here rather than in a process's memory so that any
//! node can finish what another started; it is single use because the one
//! statement that reads it back also deletes it (`DELETE … RETURNING`), so
//! two nodes given the same answer cannot both finish it.

use gatehouse_domain::{Timestamp, TokenHash};
use sqlx::AnyConnection;

use crate::Result;

/// A registered passkey.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PasskeyRow {
    /// Its row id (what the account page's forms name).
    pub id: i64,
    /// The account it signs in to.
    pub account_id: i64,
    /// The name the person gave it.
    pub name: String,
    /// The credential id the authenticator chose.
    pub credential_id: Vec<u8>,
    /// The user handle it was made for.
    pub user_handle: Vec<u8>,
    /// The credential (public key and flags) as the WebAuthn library writes it.
    pub credential: String,
    /// The signature counter last accepted.
    pub counter: i64,
    /// When it was added.
    pub created_at: Timestamp,
    /// When it last signed in.
    pub last_used_at: Option<Timestamp>,
}

const PASSKEY: &str = "SELECT id, account_id, name, credential_id, user_handle, credential, \
    counter, created_at, last_used_at FROM passkeys";

/// The passkeys of an account, oldest first.
pub async fn of_account(conn: &mut AnyConnection, account_id: i64) -> Result<Vec<PasskeyRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PASSKEY} WHERE account_id = $1 ORDER BY created_at, id"
    )))
    .bind(account_id)
    .fetch_all(conn)
    .await?)
}

/// How many passkeys an account has.
pub async fn count(conn: &mut AnyConnection, account_id: i64) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM passkeys WHERE account_id = $1")
            .bind(account_id)
            .fetch_one(conn)
            .await?,
    )
}

/// How many enabled helpdesk and admin accounts have a passkey and no
/// authenticator app: with passkeys turned off they have no second factor.
pub async fn privileged_with_only_a_passkey(conn: &mut AnyConnection) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM accounts a WHERE a.role <> 'staff' AND a.disabled_at IS NULL \
         AND EXISTS (SELECT 1 FROM passkeys p WHERE p.account_id = a.id) \
         AND NOT EXISTS (SELECT 1 FROM second_factors f \
           WHERE f.account_id = a.id AND f.confirmed_at IS NOT NULL)",
    )
    .fetch_one(conn)
    .await?)
}

/// The passkey with this credential id, whichever account it belongs to.
pub async fn by_credential_id(
    conn: &mut AnyConnection,
    credential_id: &[u8],
) -> Result<Option<PasskeyRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PASSKEY} WHERE credential_id = $1"
    )))
    .bind(credential_id)
    .fetch_optional(conn)
    .await?)
}

/// A passkey to store.
#[derive(Debug, Clone)]
pub struct NewPasskey<'a> {
    /// The account.
    pub account_id: i64,
    /// Its name.
    pub name: &'a str,
    /// The credential id.
    pub credential_id: &'a [u8],
    /// The user handle.
    pub user_handle: &'a [u8],
    /// The serialised credential.
    pub credential: &'a str,
    /// The counter at registration.
    pub counter: i64,
    /// Now.
    pub now: Timestamp,
}

/// Stores a passkey; false (and nothing stored) if the account already has
/// one of that name or the credential id is registered already.
pub async fn insert(conn: &mut AnyConnection, p: &NewPasskey<'_>) -> Result<bool> {
    Ok(sqlx::query(
        "INSERT INTO passkeys (account_id, name, credential_id, user_handle, credential, \
         counter, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(p.account_id)
    .bind(p.name)
    .bind(p.credential_id)
    .bind(p.user_handle)
    .bind(p.credential)
    .bind(p.counter)
    .bind(p.now)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Records a sign-in with passkey `id`: its new counter and credential,
/// only if the stored counter is still `seen` (what the caller checked
/// the authenticator's against), so two assertions at once cannot both
/// move it. False if it had moved (or the passkey is gone).
pub async fn record_use(
    conn: &mut AnyConnection,
    id: i64,
    seen: i64,
    counter: i64,
    credential: &str,
    now: Timestamp,
) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE passkeys SET counter = $3, credential = $4, last_used_at = $5 \
         WHERE id = $1 AND counter = $2",
    )
    .bind(id)
    .bind(seen)
    .bind(counter)
    .bind(credential)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Removes passkey `id` of `account_id`; returns its name if it was there.
pub async fn remove(conn: &mut AnyConnection, account_id: i64, id: i64) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("DELETE FROM passkeys WHERE id = $1 AND account_id = $2 RETURNING name")
            .bind(id)
            .bind(account_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Removes every passkey of an account; returns how many.
pub async fn remove_all(conn: &mut AnyConnection, account_id: i64) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM passkeys WHERE account_id = $1")
        .bind(account_id)
        .execute(conn)
        .await?
        .rows_affected())
}

/// A ceremony waiting for its answer.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CeremonyRow {
    /// What it is for: `register`, `sign_in` or `second_factor`.
    pub kind: String,
    /// The account it is for (none for a discoverable sign-in).
    pub account_id: Option<i64>,
    /// The library's state, serialised.
    pub state: String,
    /// When it stops being accepted.
    pub expires_at: Timestamp,
}

/// Stores a ceremony under the hash of the id the browser is given.
pub async fn start_ceremony(
    conn: &mut AnyConnection,
    id_hash: &TokenHash,
    ceremony: &CeremonyRow,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO passkey_ceremonies (id_hash, kind, account_id, state, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id_hash)
    .bind(&ceremony.kind)
    .bind(ceremony.account_id)
    .bind(&ceremony.state)
    .bind(now)
    .bind(ceremony.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes the ceremony `id_hash` of `kind`: it is deleted by the statement
/// that returns it, so it is taken once however many ask at once, on
/// however many nodes. An expired one is taken too (the caller refuses it).
pub async fn take_ceremony(
    conn: &mut AnyConnection,
    id_hash: &TokenHash,
    kind: &str,
) -> Result<Option<CeremonyRow>> {
    Ok(sqlx::query_as(
        "DELETE FROM passkey_ceremonies WHERE id_hash = $1 AND kind = $2 \
         RETURNING kind, account_id, state, expires_at",
    )
    .bind(id_hash)
    .bind(kind)
    .fetch_optional(conn)
    .await?)
}

/// Deletes ceremonies that expired before `now`; returns how many.
pub async fn forget_expired_ceremonies(conn: &mut AnyConnection, now: Timestamp) -> Result<u64> {
    Ok(
        sqlx::query("DELETE FROM passkey_ceremonies WHERE expires_at < $1")
            .bind(now)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}
