//! Registered clients (the applications that sign people in through
//! Gatehouse), the wrong secrets presented for them, and the consent people
//! gave the ones that ask for it.

use gatehouse_domain::oidc::client::{ClientId, ClientKind};
use gatehouse_domain::oidc::jose::SigningAlg;
use gatehouse_domain::oidc::scope::Scopes;
use gatehouse_domain::{Timestamp, TokenHash};
use sqlx::AnyConnection;

use crate::Result;

/// A client as stored. Addresses are kept one per line, exactly as
/// registered.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClientRow {
    /// The client id.
    pub id: ClientId,
    /// Its name.
    pub name: String,
    /// Confidential (with a secret) or public.
    pub kind: ClientKind,
    /// SHA-256 of its secret (confidential clients).
    pub secret_hash: Option<TokenHash>,
    /// Redirect addresses, one per line.
    pub redirect_uris: String,
    /// Addresses to return to after sign-out, one per line.
    pub post_logout_redirect_uris: String,
    /// Where to post logout tokens.
    pub backchannel_logout_uri: Option<String>,
    /// How its ID tokens are signed.
    pub signing_alg: SigningAlg,
    /// 1 if people are asked to consent.
    pub consent: i64,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// When it was disabled.
    pub disabled_at: Option<Timestamp>,
}

impl ClientRow {
    /// Its redirect addresses.
    pub fn redirect_uris(&self) -> Vec<String> {
        lines(&self.redirect_uris)
    }

    /// Its post-logout redirect addresses.
    pub fn post_logout_redirect_uris(&self) -> Vec<String> {
        lines(&self.post_logout_redirect_uris)
    }

    /// Whether people are asked to consent.
    pub fn asks_consent(&self) -> bool {
        self.consent != 0
    }
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

const COLUMNS: &str = "id, name, kind, secret_hash, redirect_uris, post_logout_redirect_uris, \
    backchannel_logout_uri, signing_alg, consent, created_at, updated_at, disabled_at";

/// Registers a client.
pub async fn insert(conn: &mut AnyConnection, c: &ClientRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO oidc_clients (id, name, kind, secret_hash, redirect_uris, \
         post_logout_redirect_uris, backchannel_logout_uri, signing_alg, consent, created_at, \
         updated_at, disabled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&c.id)
    .bind(&c.name)
    .bind(c.kind)
    .bind(c.secret_hash)
    .bind(&c.redirect_uris)
    .bind(&c.post_logout_redirect_uris)
    .bind(&c.backchannel_logout_uri)
    .bind(c.signing_alg)
    .bind(c.consent)
    .bind(c.created_at)
    .bind(c.updated_at)
    .bind(c.disabled_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The client with this id, enabled or not.
pub async fn by_id(conn: &mut AnyConnection, id: &ClientId) -> Result<Option<ClientRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM oidc_clients WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Every client, by name.
pub async fn list(conn: &mut AnyConnection) -> Result<Vec<ClientRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM oidc_clients ORDER BY name, id"
    )))
    .fetch_all(conn)
    .await?)
}

/// The origins public clients registered redirect addresses at, for CORS.
pub async fn public_redirect_uris(conn: &mut AnyConnection) -> Result<Vec<String>> {
    let all: Vec<String> = sqlx::query_scalar(
        "SELECT redirect_uris FROM oidc_clients WHERE kind = 'public' AND disabled_at IS NULL",
    )
    .fetch_all(conn)
    .await?;
    Ok(all.iter().flat_map(|l| lines(l)).collect())
}

/// Replaces a client's secret hash; false if there is no such client.
pub async fn set_secret(
    conn: &mut AnyConnection,
    id: &ClientId,
    hash: &TokenHash,
    now: Timestamp,
) -> Result<bool> {
    let changed =
        sqlx::query("UPDATE oidc_clients SET secret_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(hash)
            .bind(now)
            .execute(conn)
            .await?
            .rows_affected();
    Ok(changed == 1)
}

/// Disables (or enables) a client; false if there is no such client or it
/// is already so.
pub async fn set_disabled(
    conn: &mut AnyConnection,
    id: &ClientId,
    disabled: bool,
    now: Timestamp,
) -> Result<bool> {
    let sql = if disabled {
        "UPDATE oidc_clients SET disabled_at = $2, updated_at = $2 \
         WHERE id = $1 AND disabled_at IS NULL"
    } else {
        "UPDATE oidc_clients SET disabled_at = NULL, updated_at = $2 \
         WHERE id = $1 AND disabled_at IS NOT NULL"
    };
    let changed = sqlx::query(sql)
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(changed == 1)
}

/// Removes a client with everything issued to it; false if there is none.
pub async fn remove(conn: &mut AnyConnection, id: &ClientId) -> Result<bool> {
    sqlx::query("DELETE FROM oidc_client_failures WHERE client_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let changed = sqlx::query("DELETE FROM oidc_clients WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(changed == 1)
}

/// Counts a wrong secret from `client_ip`, in a window that starts afresh
/// once `window_start_before` has passed; returns the count in the window.
pub async fn count_failure(
    conn: &mut AnyConnection,
    id: &ClientId,
    client_ip: &str,
    now: Timestamp,
    window_start_before: Timestamp,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO oidc_client_failures (client_id, client_ip, failures, window_start) \
         VALUES ($1, $2, 1, $3) ON CONFLICT (client_id, client_ip) DO UPDATE SET \
         failures = CASE WHEN oidc_client_failures.window_start < $4 THEN 1 \
           ELSE oidc_client_failures.failures + 1 END, \
         window_start = CASE WHEN oidc_client_failures.window_start < $4 THEN $3 \
           ELSE oidc_client_failures.window_start END \
         RETURNING failures",
    )
    .bind(id)
    .bind(client_ip)
    .bind(now)
    .bind(window_start_before)
    .fetch_one(conn)
    .await?)
}

/// Wrong secrets from `client_ip` in the current window (0 once the window
/// that started before `window_start_before` has passed).
pub async fn failures(
    conn: &mut AnyConnection,
    id: &ClientId,
    client_ip: &str,
    window_start_before: Timestamp,
) -> Result<i64> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT failures FROM oidc_client_failures WHERE client_id = $1 AND client_ip = $2 \
         AND window_start >= $3",
    )
    .bind(id)
    .bind(client_ip)
    .bind(window_start_before)
    .fetch_optional(conn)
    .await?;
    Ok(found.unwrap_or(0))
}

/// The scopes a person consented to for a client.
pub async fn consent(
    conn: &mut AnyConnection,
    account_id: i64,
    id: &ClientId,
) -> Result<Option<Scopes>> {
    Ok(sqlx::query_scalar(
        "SELECT scope FROM oidc_consents WHERE account_id = $1 AND client_id = $2",
    )
    .bind(account_id)
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Records consent (replacing any given before).
pub async fn give_consent(
    conn: &mut AnyConnection,
    account_id: i64,
    id: &ClientId,
    scopes: Scopes,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO oidc_consents (account_id, client_id, scope, granted_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, client_id) \
         DO UPDATE SET scope = $3, granted_at = $4",
    )
    .bind(account_id)
    .bind(id)
    .bind(scopes)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
