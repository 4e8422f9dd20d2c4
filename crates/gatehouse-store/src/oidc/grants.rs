//! What applications hold for a person: authorization codes, and the grant
//! each code is redeemed for, with its rotating refresh tokens and its
//! access tokens. Every token is stored as its hash only.

use gatehouse_domain::oidc::client::ClientId;
use gatehouse_domain::oidc::scope::Scopes;
use gatehouse_domain::{Timestamp, TokenHash};
use sqlx::AnyConnection;

use crate::{Result, Tx};

/// An authorization code to store.
#[derive(Debug, Clone)]
pub struct NewCode<'a> {
    /// The hash of the code.
    pub code_hash: &'a TokenHash,
    /// The client it was issued to.
    pub client_id: &'a ClientId,
    /// The person.
    pub account_id: i64,
    /// The Gatehouse session it was issued in.
    pub session_hash: &'a TokenHash,
    /// Where it was sent (the token request must name the same address).
    pub redirect_uri: &'a str,
    /// The scopes granted.
    pub scopes: Scopes,
    /// The client's nonce, for the ID token.
    pub nonce: Option<&'a str>,
    /// The PKCE S256 challenge.
    pub code_challenge: Option<&'a str>,
    /// When the person signed in.
    pub auth_time: Timestamp,
    /// Whether they passed a second factor.
    pub second_factor: bool,
    /// How a passkey took part in the sign-in (the session's `passkey`).
    pub passkey: i64,
    /// Now.
    pub now: Timestamp,
    /// When the code stops working.
    pub expires_at: Timestamp,
}

/// A code as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CodeRow {
    /// The hash of the code.
    pub code_hash: TokenHash,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The person.
    pub account_id: i64,
    /// The session it was issued in.
    pub session_hash: TokenHash,
    /// Where it was sent.
    pub redirect_uri: String,
    /// The scopes granted.
    pub scope: Scopes,
    /// The client's nonce.
    pub nonce: Option<String>,
    /// The PKCE challenge.
    pub code_challenge: Option<String>,
    /// When the person signed in.
    pub auth_time: Timestamp,
    /// 1 if they passed a second factor.
    pub second_factor: i64,
    /// How a passkey took part in the sign-in (the session's `passkey`).
    pub passkey: i64,
    /// When it was issued.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When it was redeemed.
    pub used_at: Option<Timestamp>,
    /// The grant it was redeemed for.
    pub grant_id: Option<i64>,
}

const CODE_COLUMNS: &str = "code_hash, client_id, account_id, session_hash, redirect_uri, \
    scope, nonce, code_challenge, auth_time, second_factor, created_at, expires_at, used_at, \
    grant_id, passkey";

/// Stores a code.
pub async fn insert_code(conn: &mut AnyConnection, c: &NewCode<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO oidc_codes (code_hash, client_id, account_id, session_hash, redirect_uri, \
         scope, nonce, code_challenge, auth_time, second_factor, created_at, expires_at, passkey) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(c.code_hash)
    .bind(c.client_id)
    .bind(c.account_id)
    .bind(c.session_hash)
    .bind(c.redirect_uri)
    .bind(c.scopes)
    .bind(c.nonce)
    .bind(c.code_challenge)
    .bind(c.auth_time)
    .bind(i64::from(c.second_factor))
    .bind(c.now)
    .bind(c.expires_at)
    .bind(c.passkey)
    .execute(conn)
    .await?;
    Ok(())
}

/// What redeeming a code found.
#[derive(Debug, Clone)]
pub enum Redeemed {
    /// This request took the code: it is now used.
    Taken(Box<CodeRow>),
    /// The code had been used before (by this or another node); the grant
    /// it was redeemed for, if that redemption got so far.
    UsedBefore(Option<i64>),
    /// No such code.
    Unknown,
}

/// Takes a code for redemption: one request, across every node, sees
/// [`Redeemed::Taken`]; every later one sees [`Redeemed::UsedBefore`].
/// (Expiry and the client are the caller's to check: a used code is used,
/// whoever presented it.)
pub async fn redeem_code(tx: &mut Tx, hash: &TokenHash, now: Timestamp) -> Result<Redeemed> {
    let taken: Option<CodeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE oidc_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL \
         RETURNING {CODE_COLUMNS}"
    )))
    .bind(hash)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(code) = taken {
        return Ok(Redeemed::Taken(Box::new(code)));
    }
    let before: Option<Option<i64>> =
        sqlx::query_scalar("SELECT grant_id FROM oidc_codes WHERE code_hash = $1")
            .bind(hash)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(before.map_or(Redeemed::Unknown, Redeemed::UsedBefore))
}

/// A grant to create from a redeemed code.
#[derive(Debug, Clone)]
pub struct NewGrant<'a> {
    /// The code redeemed.
    pub code: &'a CodeRow,
    /// The scopes held.
    pub scopes: Scopes,
    /// Now.
    pub now: Timestamp,
    /// When it ends whatever happens: the session's absolute end.
    pub expires_at: Timestamp,
}

/// Creates the grant for a code taken by [`redeem_code`]; returns its id.
pub async fn create_grant(tx: &mut Tx, g: &NewGrant<'_>) -> Result<i64> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO oidc_grants (client_id, account_id, session_hash, code_hash, scope, \
         auth_time, second_factor, created_at, expires_at, passkey) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(&g.code.client_id)
    .bind(g.code.account_id)
    .bind(g.code.session_hash)
    .bind(g.code.code_hash)
    .bind(g.scopes)
    .bind(g.code.auth_time)
    .bind(g.code.second_factor)
    .bind(g.now)
    .bind(g.expires_at)
    .bind(g.code.passkey)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query("UPDATE oidc_codes SET grant_id = $2 WHERE code_hash = $1")
        .bind(g.code.code_hash)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(id)
}

/// A grant.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GrantRow {
    /// Its id.
    pub id: i64,
    /// The client.
    pub client_id: ClientId,
    /// The person.
    pub account_id: i64,
    /// The session it came from.
    pub session_hash: TokenHash,
    /// The scopes held.
    pub scope: Scopes,
    /// When the person signed in.
    pub auth_time: Timestamp,
    /// 1 if they passed a second factor.
    pub second_factor: i64,
    /// How a passkey took part in the sign-in (the session's `passkey`).
    pub passkey: i64,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it ends whatever happens.
    pub expires_at: Timestamp,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
}

const GRANT_COLUMNS: &str = "g.id, g.client_id, g.account_id, g.session_hash, g.scope, \
    g.auth_time, g.second_factor, g.passkey, g.created_at, g.expires_at, g.revoked_at";

/// Stores an access token for a grant.
pub async fn insert_access_token(
    conn: &mut AnyConnection,
    hash: &TokenHash,
    grant_id: i64,
    scopes: Scopes,
    now: Timestamp,
    expires_at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO oidc_access_tokens (token_hash, grant_id, scope, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hash)
    .bind(grant_id)
    .bind(scopes)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores a refresh token for a grant.
pub async fn insert_refresh_token(
    conn: &mut AnyConnection,
    hash: &TokenHash,
    grant_id: i64,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO oidc_refresh_tokens (token_hash, grant_id, created_at) VALUES ($1, $2, $3)",
    )
    .bind(hash)
    .bind(grant_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// What an access token at userinfo finds.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccessTokenRow {
    /// The scopes the token carries.
    pub token_scope: Scopes,
    /// When it stops working.
    pub token_expires_at: Timestamp,
    /// When it was revoked on its own.
    pub token_revoked_at: Option<Timestamp>,
    /// Its grant.
    #[sqlx(flatten)]
    pub grant: GrantRow,
}

/// The access token with this hash and its grant.
pub async fn access_token(
    conn: &mut AnyConnection,
    hash: &TokenHash,
) -> Result<Option<AccessTokenRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT t.scope AS token_scope, t.expires_at AS token_expires_at, \
         t.revoked_at AS token_revoked_at, {GRANT_COLUMNS} \
         FROM oidc_access_tokens t JOIN oidc_grants g ON g.id = t.grant_id \
         WHERE t.token_hash = $1"
    )))
    .bind(hash)
    .fetch_optional(conn)
    .await?)
}

/// Revokes one access token (RFC 7009); false if it is unknown.
pub async fn revoke_access_token(
    conn: &mut AnyConnection,
    hash: &TokenHash,
    client_id: &ClientId,
    now: Timestamp,
) -> Result<bool> {
    let changed = sqlx::query(
        "UPDATE oidc_access_tokens SET revoked_at = $3 WHERE token_hash = $1 \
         AND revoked_at IS NULL AND EXISTS (SELECT 1 FROM oidc_grants g \
           WHERE g.id = oidc_access_tokens.grant_id AND g.client_id = $2)",
    )
    .bind(hash)
    .bind(client_id)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(changed == 1)
}

/// What presenting a refresh token found.
#[derive(Debug, Clone)]
pub enum Rotation {
    /// This request took the token: it is now used, and the caller issues
    /// its successor.
    Taken(GrantRow),
    /// The token had been used before: presented again, it was stolen or
    /// replayed, and the caller revokes its grant.
    Reused(GrantRow),
    /// No such token.
    Unknown,
}

/// Takes a refresh token: one request, across every node, sees
/// [`Rotation::Taken`]; any other presentation of it sees [`Rotation::Reused`].
pub async fn take_refresh_token(tx: &mut Tx, hash: &TokenHash, now: Timestamp) -> Result<Rotation> {
    let taken: Option<i64> = sqlx::query_scalar(
        "UPDATE oidc_refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL \
         RETURNING grant_id",
    )
    .bind(hash)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    let grant_id = match taken {
        Some(id) => Some(id),
        None => {
            sqlx::query_scalar("SELECT grant_id FROM oidc_refresh_tokens WHERE token_hash = $1")
                .bind(hash)
                .fetch_optional(&mut **tx)
                .await?
        }
    };
    let Some(grant_id) = grant_id else {
        return Ok(Rotation::Unknown);
    };
    let Some(grant) = grant(tx, grant_id).await? else {
        return Ok(Rotation::Unknown);
    };
    Ok(if taken.is_some() {
        Rotation::Taken(grant)
    } else {
        Rotation::Reused(grant)
    })
}

/// The grant with this id.
pub async fn grant(conn: &mut AnyConnection, id: i64) -> Result<Option<GrantRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {GRANT_COLUMNS} FROM oidc_grants g WHERE g.id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// The grant a refresh token belongs to, for revocation (RFC 7009).
pub async fn grant_of_refresh_token(
    conn: &mut AnyConnection,
    hash: &TokenHash,
) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT grant_id FROM oidc_refresh_tokens WHERE token_hash = $1")
            .bind(hash)
            .fetch_optional(conn)
            .await?,
    )
}

/// A grant that was revoked, for the back-channel logout it calls for.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Ended {
    /// The grant.
    pub id: i64,
    /// Its client.
    pub client_id: ClientId,
    /// The person.
    pub account_id: i64,
    /// The session it came from (its `sid`).
    pub session_hash: TokenHash,
}

/// Revokes grants by `condition` (`$1` is now, and `$2` is bound to
/// `value` when there is one); returns those revoked, and queues their
/// logout notices.
async fn end_where<'q, T>(
    tx: &mut Tx,
    condition: &str,
    value: Option<T>,
    now: Timestamp,
) -> Result<Vec<Ended>>
where
    T: 'q + Send + sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    let query = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE oidc_grants SET revoked_at = $1 WHERE {condition} AND revoked_at IS NULL \
         RETURNING id, client_id, account_id, session_hash"
    )))
    .bind(now);
    let ended: Vec<Ended> = match value {
        Some(value) => query.bind(value),
        // A condition with the values written in (a list of ids) is new
        // text each time: not kept prepared.
        None => query.persistent(false),
    }
    .fetch_all(&mut **tx)
    .await?;
    super::logout_notices::queue_for(tx, &ended, now).await?;
    Ok(ended)
}

/// Revokes one grant (a reused code or refresh token, a revoked refresh
/// token); its client is told by back-channel logout.
pub async fn end_grant(tx: &mut Tx, id: i64, now: Timestamp) -> Result<Vec<Ended>> {
    end_where(tx, "id = $2", Some(id), now).await
}

/// Revokes the grants made in a Gatehouse session that has ended.
pub async fn end_for_session(
    tx: &mut Tx,
    session_hash: &TokenHash,
    now: Timestamp,
) -> Result<Vec<Ended>> {
    end_where(tx, "session_hash = $2", Some(*session_hash), now).await
}

/// Revokes every grant of an account whose sessions have all ended.
pub async fn end_for_account(tx: &mut Tx, account_id: i64, now: Timestamp) -> Result<Vec<Ended>> {
    end_where(tx, "account_id = $2", Some(account_id), now).await
}

/// Revokes every grant of the accounts `ids`, whose sessions have all
/// ended (a full import's leavers, a batch at a time).
pub async fn end_for_accounts(tx: &mut Tx, ids: &[i64], now: Timestamp) -> Result<Vec<Ended>> {
    let list = crate::database::id_list(ids);
    end_where(tx, &format!("account_id IN ({list})"), None::<i64>, now).await
}

/// An application a person is signed in to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HeldGrant {
    /// The client.
    pub client_id: ClientId,
    /// Its name.
    pub client_name: String,
    /// When the person last signed in to it.
    pub signed_in_at: Timestamp,
}

/// The applications holding live grants for an account at `now`, each
/// once, most recent sign-in first.
pub async fn held_by_account(
    conn: &mut AnyConnection,
    account_id: i64,
    now: Timestamp,
) -> Result<Vec<HeldGrant>> {
    Ok(sqlx::query_as(
        "SELECT g.client_id, c.name AS client_name, MAX(g.created_at) AS signed_in_at \
         FROM oidc_grants g JOIN oidc_clients c ON c.id = g.client_id \
         WHERE g.account_id = $1 AND g.revoked_at IS NULL AND g.expires_at > $2 \
         GROUP BY g.client_id, c.name ORDER BY MAX(g.created_at) DESC",
    )
    .bind(account_id)
    .bind(now)
    .fetch_all(conn)
    .await?)
}

/// Revokes every grant one client holds for an account (the person signed
/// out of that application); its client is told by back-channel logout.
pub async fn end_for_client(
    tx: &mut Tx,
    account_id: i64,
    client_id: &ClientId,
    now: Timestamp,
) -> Result<Vec<Ended>> {
    let ended: Vec<Ended> = sqlx::query_as(
        "UPDATE oidc_grants SET revoked_at = $3 WHERE account_id = $1 AND client_id = $2 \
         AND revoked_at IS NULL RETURNING id, client_id, account_id, session_hash",
    )
    .bind(account_id)
    .bind(client_id)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    super::logout_notices::queue_for(tx, &ended, now).await?;
    Ok(ended)
}

/// Deletes what can no longer be used: codes an hour past their expiry,
/// and grants (with their tokens) a day past their end or revocation.
pub async fn tidy(conn: &mut AnyConnection, now: Timestamp) -> Result<u64> {
    let codes = sqlx::query("DELETE FROM oidc_codes WHERE expires_at < $1")
        .bind(now.minus(gatehouse_domain::Span::hours(1)))
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let day_ago = now.minus(gatehouse_domain::Span::hours(24));
    let tokens = sqlx::query("DELETE FROM oidc_access_tokens WHERE expires_at < $1")
        .bind(day_ago)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let grants = sqlx::query("DELETE FROM oidc_grants WHERE expires_at < $1")
        .bind(day_ago)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(codes + tokens + grants)
}
