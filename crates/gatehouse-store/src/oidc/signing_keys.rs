//! The keys that sign ID tokens and logout tokens, shared by every node.
//! The private key is stored as given (PKCS#8, sealed by core when a
//! key-encryption key is set); this module only keeps the rows.

use gatehouse_domain::Timestamp;
use gatehouse_domain::oidc::jose::SigningAlg;
use sqlx::AnyConnection;

use crate::{Result, Tx};

/// A signing key as stored.
#[derive(Clone, sqlx::FromRow)]
pub struct SigningKeyRow {
    /// Its id (the JWK thumbprint).
    pub kid: String,
    /// Its algorithm.
    pub alg: SigningAlg,
    /// 1 for an algorithm's first key, then one more at each rotation.
    pub generation: i64,
    /// The private key: PKCS#8 DER, or sealed.
    pub private_key: Vec<u8>,
    /// The public key as a JWK (JSON).
    pub public_jwk: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it starts signing.
    pub signs_from: Timestamp,
    /// When it stopped signing.
    pub signs_until: Option<Timestamp>,
    /// When it leaves the JWKS.
    pub published_until: Option<Timestamp>,
}

impl std::fmt::Debug for SigningKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SigningKeyRow({} {} #{})",
            self.alg, self.kid, self.generation
        )
    }
}

const COLUMNS: &str = "kid, alg, generation, private_key, public_jwk, created_at, signs_from, \
    signs_until, published_until";

/// Stores an algorithm's first key unless one exists (another node may be
/// starting at the same moment); returns whether this one was stored.
pub async fn insert_first(conn: &mut AnyConnection, key: &SigningKeyRow) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO oidc_signing_keys (kid, alg, generation, private_key, public_jwk, \
         created_at, signs_from) VALUES ($1, $2, 1, $3, $4, $5, $6) \
         ON CONFLICT (alg, generation) DO NOTHING",
    )
    .bind(&key.kid)
    .bind(key.alg)
    .bind(&key.private_key)
    .bind(&key.public_jwk)
    .bind(key.created_at)
    .bind(key.signs_from)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Every key still published at `now` (all that any node may sign with,
/// or that signed a token that has not expired), newest first.
pub async fn published(conn: &mut AnyConnection, now: Timestamp) -> Result<Vec<SigningKeyRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM oidc_signing_keys \
         WHERE published_until IS NULL OR published_until > $1 ORDER BY generation DESC"
    )))
    .bind(now)
    .fetch_all(conn)
    .await?)
}

/// Every key, for the operator.
pub async fn all(conn: &mut AnyConnection) -> Result<Vec<SigningKeyRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM oidc_signing_keys ORDER BY alg, generation"
    )))
    .fetch_all(conn)
    .await?)
}

/// A rotation of one algorithm's key.
#[derive(Debug)]
pub struct Rotation<'a> {
    /// The new key (its generation is set here).
    pub key: &'a SigningKeyRow,
    /// When the keys signing now stop (and the new one starts).
    pub switch_at: Timestamp,
    /// When the keys signing now leave the JWKS.
    pub withdraw_at: Timestamp,
}

/// Adds `r.key` as the algorithm's next generation, signing from
/// `switch_at`; every earlier key of the algorithm that is still signing
/// stops then and is withdrawn at `withdraw_at` (sooner, never later, than
/// it already was). Returns the new generation.
pub async fn rotate(tx: &mut Tx, r: &Rotation<'_>) -> Result<i64> {
    let generation: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(generation), 0) + 1 FROM oidc_signing_keys WHERE alg = $1",
    )
    .bind(r.key.alg)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE oidc_signing_keys SET \
         signs_until = CASE WHEN signs_until IS NULL OR signs_until > $2 THEN $2 \
           ELSE signs_until END, \
         published_until = CASE WHEN published_until IS NULL OR published_until > $3 THEN $3 \
           ELSE published_until END \
         WHERE alg = $1 AND generation < $4",
    )
    .bind(r.key.alg)
    .bind(r.switch_at)
    .bind(r.withdraw_at)
    .bind(generation)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO oidc_signing_keys (kid, alg, generation, private_key, public_jwk, \
         created_at, signs_from) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&r.key.kid)
    .bind(r.key.alg)
    .bind(generation)
    .bind(&r.key.private_key)
    .bind(&r.key.public_jwk)
    .bind(r.key.created_at)
    .bind(r.switch_at)
    .execute(&mut **tx)
    .await?;
    Ok(generation)
}

/// Replaces a key's stored private key (sealing a plain one once a
/// key-encryption key is set).
pub async fn reseal(conn: &mut AnyConnection, kid: &str, private_key: &[u8]) -> Result<()> {
    sqlx::query("UPDATE oidc_signing_keys SET private_key = $2 WHERE kid = $1")
        .bind(kid)
        .bind(private_key)
        .execute(conn)
        .await?;
    Ok(())
}
