//! What can go wrong in storage.

/// A storage failure. The text is for operators' logs; people see a page
/// with a reference. The database's own error is also kept as the source,
/// for error chains.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The database URL or file could not be used.
    #[error("{0}")]
    Config(String),
    /// The database's schema does not match this build.
    #[error("{0}")]
    Schema(String),
    /// A compare-and-set kept losing to other writers.
    #[error("too much contention on {0}")]
    Contention(&'static str),
}

impl StoreError {
    /// Whether the database could not be reached or was too busy to answer
    /// in time (no connection within the timeout, the connection dropped,
    /// SQLite's write lock held past the busy timeout, PostgreSQL shutting
    /// down or out of connections): worth trying again later, and nothing
    /// was written, since every write is a transaction.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_),
            ) => true,
            StoreError::Database(sqlx::Error::Database(e)) => {
                let code = e.code();
                let code = code.as_deref().unwrap_or("");
                // SQLite: SQLITE_BUSY (5), SQLITE_LOCKED (6) and their
                // extended codes. PostgreSQL: class 08 (connection), 53300
                // (too many connections), 57P01–57P03 (shutting down).
                let sqlite_busy = code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
                sqlite_busy || code.starts_with("08") || code == "53300" || code.starts_with("57P0")
            }
            _ => false,
        }
    }

    /// Whether this is a uniqueness violation (a duplicate username, say).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => e.is_unique_violation(),
            _ => false,
        }
    }
}

/// Storage results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
