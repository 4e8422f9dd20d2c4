//! The errors a service can end in, besides its ordinary outcomes.
//!
//! Ordinary outcomes (a wrong password, a locked account, an expired link)
//! are values, not errors. These are the cases in which the service could not
//! do its work; the web layer maps each to a status and a page in one place.

use crate::hashing::HashError;

/// A service could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Password hashing is at capacity: ask the person to try again shortly (HTTP 503).
    #[error("the service is busy")]
    Busy,
    /// The database failed (HTTP 500 with a reference).
    #[error(transparent)]
    Store(#[from] gatehouse_store::StoreError),
    /// The actor may not do this (HTTP 403); the refusal has been audited.
    #[error("you do not have permission to do that")]
    NotPermitted,
    /// Something else failed (HTTP 500 with a reference).
    #[error("{0}")]
    Internal(String),
}

impl From<HashError> for Error {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => Error::Busy,
            HashError::Failed(m) => Error::Internal(m),
        }
    }
}

impl From<gatehouse_domain::token::RandomnessError> for Error {
    fn from(e: gatehouse_domain::token::RandomnessError) -> Self {
        Error::Internal(e.to_string())
    }
}

/// Service results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
