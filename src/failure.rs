//! Why a command stopped, and the exit status that tells a script.
//!
//! A wrong setting or argument is a [`ConfigError`]: one line naming it,
//! exit status 2 (as the command-line parser gives for a bad argument).
//! A failure once the work has started (the database went away, a file
//! could not be read) keeps its cause and exits with status 1, as a
//! refusal does; nothing half-done is left behind by either.

use std::process::ExitCode;

use crate::config::ConfigError;

/// Why a command did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A setting or an argument is wrong.
    #[error(transparent)]
    Setting(#[from] ConfigError),
    /// The service failed while doing the work.
    #[error("{doing}")]
    Service {
        /// What was being done, for the operator.
        doing: &'static str,
        /// Why it failed.
        #[source]
        source: gatehouse_core::Error,
    },
    /// A file could not be read or the output not written.
    #[error("{doing}")]
    Io {
        /// What was being done, naming the file.
        doing: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

impl Failure {
    /// A service failure while `doing` something.
    pub fn service(doing: &'static str) -> impl Fn(gatehouse_core::Error) -> Self + Copy {
        move |source| Failure::Service { doing, source }
    }

    /// The exit status a script sees.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Setting(_) => ExitCode::from(2),
            Failure::Service { .. } | Failure::Io { .. } => ExitCode::from(1),
        }
    }

    /// The whole message on one line: the failure and every cause under it.
    pub fn line(&self) -> String {
        gatehouse_core::error::chain(self)
    }
}
