//! The keys the service holds (form tokens and the reset link cookie are
//! MACs under them), shared by every node through the database.

use gatehouse_domain::Timestamp;
use sqlx::AnyConnection;

use crate::{Result, Tx};

/// One generation of a key the service holds.
#[derive(Clone, sqlx::FromRow)]
pub struct ServiceKey {
    /// Higher is newer.
    pub generation: i64,
    /// The key.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceKey")
            .field("generation", &self.generation)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Stores `first` as generation 1 of the key for `purpose` if there is
/// none yet: of several nodes starting at once, the first to write wins and
/// every node then reads the same key.
pub async fn create_first(
    conn: &mut AnyConnection,
    purpose: &str,
    first: &[u8],
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO service_keys (purpose, generation, secret, created_at) \
         SELECT $1, 1, $2, $3 \
         WHERE NOT EXISTS (SELECT 1 FROM service_keys WHERE purpose = $1) \
         ON CONFLICT (purpose, generation) DO NOTHING",
    )
    .bind(purpose)
    .bind(first)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The two newest generations of the key for `purpose`, newest first.
pub async fn newest(conn: &mut AnyConnection, purpose: &str) -> Result<Vec<ServiceKey>> {
    Ok(sqlx::query_as(
        "SELECT generation, secret FROM service_keys WHERE purpose = $1 \
         ORDER BY generation DESC LIMIT 2",
    )
    .bind(purpose)
    .fetch_all(conn)
    .await?)
}

/// Adds a newer generation of the key for `purpose` and forgets every
/// generation but it and the one before; returns the new generation.
pub async fn rotate(tx: &mut Tx, purpose: &str, secret: &[u8], now: Timestamp) -> Result<i64> {
    let newest: Option<i64> =
        sqlx::query_scalar("SELECT MAX(generation) FROM service_keys WHERE purpose = $1")
            .bind(purpose)
            .fetch_one(&mut **tx)
            .await?;
    let generation = newest.unwrap_or(0) + 1;
    sqlx::query(
        "INSERT INTO service_keys (purpose, generation, secret, created_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(purpose)
    .bind(generation)
    .bind(secret)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM service_keys WHERE purpose = $1 AND generation < $2")
        .bind(purpose)
        .bind(generation - 1)
        .execute(&mut **tx)
        .await?;
    Ok(generation)
}
