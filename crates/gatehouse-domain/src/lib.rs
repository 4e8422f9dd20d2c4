//! The Gatehouse domain core: the rules of sign-in, lockout, recovery and
//! reset links, and the values they work on. Nothing here does I/O; every
//! decision takes the time from a [`time::Clock`] so it can be tested at its
//! boundaries.

pub mod account;
pub mod audit;
pub mod import;
pub mod keys;
pub mod lockout;
pub mod mail;
pub mod oidc;
pub mod password;
pub mod recovery;
pub mod reset_link;
pub mod second_factor;
pub mod session;
#[cfg(feature = "sqlx")]
mod stored;
pub mod time;
pub mod token;
pub mod user_agent;
pub mod username;

pub use account::{AllowedDomains, DateOfBirth, EmailAddress, Role, Username, UsernameKey};
pub use lockout::{AttemptCounter, ClaimDecision, LockoutPolicy};
pub use password::{PasswordPolicy, PasswordRefusal};
pub use recovery::{RecoveryOutcome, RecoveryPolicy};
pub use session::SessionPolicy;
pub use time::{Clock, CorrectedClock, ManualClock, Span, SystemClock, Timestamp};
pub use token::{SecretToken, TokenHash};

/// Every policy in one place, with the defaults of docs/design.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Lockout threshold, duration and lifetime cap.
    pub lockout: LockoutPolicy,
    /// Reset link lifetime (seed: 4 hours).
    pub reset_link_ttl: Span,
    /// Password rules.
    pub password: PasswordPolicy,
    /// Recovery throttling.
    pub recovery: RecoveryPolicy,
    /// Session timeouts.
    pub session: SessionPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            lockout: LockoutPolicy::default(),
            reset_link_ttl: Span::hours(4),
            password: PasswordPolicy::default(),
            recovery: RecoveryPolicy::default(),
            session: SessionPolicy::default(),
        }
    }
}
