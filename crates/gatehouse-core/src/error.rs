//! The errors a service can end in, besides its ordinary outcomes.
//!
//! Ordinary outcomes (a wrong password, a locked account, an expired link,
//! a bad row in a staff file) are values, not errors: each service returns
//! an outcome type the caller matches on. These are the cases in which the
//! service could not do its work, or was not allowed to; the web layer maps
//! each to a status and a page in one place (`gatehouse-web`'s `error.rs`),
//! the command line to one line and an exit code. An unexpected error keeps
//! its cause as its source; [`chain`] writes the whole chain for a log.

use crate::hashing::HashError;

/// A service could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Password hashing is at capacity: ask the person to try again shortly (HTTP 503).
    #[error("the service is busy")]
    Busy,
    /// The actor may not do this (HTTP 403); the refusal has been audited.
    #[error("you do not have permission to do that")]
    NotPermitted,
    /// No account has the username a request names (HTTP 404).
    #[error("no account has that username")]
    NoSuchAccount,
    /// No registered application has the client id a request names (HTTP 404).
    #[error("no registered application has that client id")]
    NoSuchClient,
    /// An operator's request that cannot apply (rotating the secret of a
    /// client that has none), with why (HTTP 400).
    #[error("{0}")]
    Refused(String),
    /// The database failed (HTTP 503 when it is unavailable, else 500 with a reference).
    #[error("the database failed")]
    Store(#[from] gatehouse_store::StoreError),
    /// The operating system gave no random bytes.
    #[error("no random bytes could be had")]
    Randomness(#[from] gatehouse_domain::token::RandomnessError),
    /// A password could not be hashed.
    #[error("a password could not be hashed: {0}")]
    Hashing(String),
    /// An email or export could not be written.
    #[error("{what} could not be written")]
    Render {
        /// What was being written.
        what: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Something that cannot happen did (HTTP 500 with a reference).
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// An email, export or file that could not be written, with its cause.
    pub fn render(
        what: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Render {
            what,
            source: Box::new(source),
        }
    }

    /// Whether the database could not be reached or was too busy (worth
    /// trying again later; nothing was written).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Store(e) if e.is_unavailable())
    }
}

impl From<HashError> for Error {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => Error::Busy,
            HashError::Failed(m) => Error::Hashing(m),
        }
    }
}

impl From<gatehouse_store::DatabaseError> for Error {
    fn from(e: gatehouse_store::DatabaseError) -> Self {
        Error::Store(e.into())
    }
}

/// An error and every cause under it, one after another: what a log line
/// needs (zero-to-production's `error_chain_fmt`).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let line = c.to_string();
        // A cause whose text its parent already repeats adds nothing.
        if !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = c.source();
    }
    text
}

/// Service results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_names_every_cause_once() {
        let io = std::io::Error::other("disk full");
        let e = Error::render("the audit export", io);
        assert_eq!(
            chain(&e),
            "the audit export could not be written: disk full"
        );
        let store = Error::from(gatehouse_store::StoreError::Config("no file".to_owned()));
        assert_eq!(chain(&store), "the database failed: no file");
    }
}
