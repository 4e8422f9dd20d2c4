//! The life of a password reset link.
//!
//! A link is issued by a recovery request, lives for the configured lifetime
//! (seed: 4 hours), and is spent only by the POST that sets the password: a
//! GET never spends it, because mail scanners open links (authentik #13805,
//! Kratos #1142). A newer request for the same account, or any password or
//! email change, voids it.

use crate::time::Timestamp;

/// Why a link was voided before it was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoidReason {
    /// A newer recovery request issued another link for the account.
    Replaced,
    /// The account's password changed (through another link).
    PasswordChanged,
    /// The account's email address changed.
    EmailChanged,
    /// The account was disabled: its holder left (a full staff-file import),
    /// so a link sent before must not work if they come back.
    AccountDisabled,
}

impl VoidReason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            VoidReason::Replaced => "replaced",
            VoidReason::PasswordChanged => "password_changed",
            VoidReason::EmailChanged => "email_changed",
            VoidReason::AccountDisabled => "account_disabled",
        }
    }

    /// Reads a stored name.
    pub fn from_stored(s: &str) -> Option<Self> {
        match s {
            "replaced" => Some(VoidReason::Replaced),
            "password_changed" => Some(VoidReason::PasswordChanged),
            "email_changed" => Some(VoidReason::EmailChanged),
            "account_disabled" => Some(VoidReason::AccountDisabled),
            _ => None,
        }
    }
}

/// What a link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkPurpose {
    /// A password reset (or first-time access) from a recovery email.
    #[default]
    Reset,
    /// A set-up link the operator hands a helpdesk or admin member
    /// (`create-admin`, `grant`, `reset-second-factor`): it sets their
    /// password, then lets them, and only them, set up an authenticator
    /// app. A link from a recovery email never does: it proves the mailbox,
    /// and a privileged mailbox can be changed by others.
    SetUp,
}

impl LinkPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Reset => "reset",
            LinkPurpose::SetUp => "set_up",
        }
    }

    /// Reads a stored name.
    pub fn from_stored(s: &str) -> Option<Self> {
        match s {
            "reset" => Some(LinkPurpose::Reset),
            "set_up" => Some(LinkPurpose::SetUp),
            _ => None,
        }
    }
}

/// What is stored about a link (never the token itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkRecord {
    /// When it was issued.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When it was spent, if it was.
    pub used_at: Option<Timestamp>,
    /// When and why it was voided, if it was.
    pub voided: Option<(Timestamp, VoidReason)>,
}

/// Whether a link can set a password now, and if not, why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStatus {
    /// It can be used.
    Usable,
    /// Its lifetime has passed.
    Expired,
    /// It has already set a password.
    Used,
    /// It was voided.
    Voided(VoidReason),
}

impl LinkRecord {
    /// The link's status at `now`. A link is usable strictly before
    /// `expires_at`: at the stated lifetime it has expired.
    pub fn status(&self, now: Timestamp) -> LinkStatus {
        if self.used_at.is_some() {
            LinkStatus::Used
        } else if let Some((_, reason)) = self.voided {
            LinkStatus::Voided(reason)
        } else if now >= self.expires_at {
            LinkStatus::Expired
        } else {
            LinkStatus::Usable
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Span;

    fn fresh(now: Timestamp) -> LinkRecord {
        LinkRecord {
            created_at: now,
            expires_at: now.plus(Span::hours(4)),
            used_at: None,
            voided: None,
        }
    }

    #[test]
    fn a_link_works_until_its_lifetime_ends() {
        let t0 = Timestamp::from_unix(1_800_000_000);
        let link = fresh(t0);
        assert_eq!(link.status(t0), LinkStatus::Usable);
        let last_second = t0.plus(Span::hours(4)).minus(Span::from_seconds(1));
        assert_eq!(link.status(last_second), LinkStatus::Usable);
        assert_eq!(link.status(t0.plus(Span::hours(4))), LinkStatus::Expired);
    }

    #[test]
    fn used_and_voided_links_say_so_even_after_expiry() {
        let t0 = Timestamp::from_unix(1_800_000_000);
        let mut used = fresh(t0);
        used.used_at = Some(t0);
        assert_eq!(used.status(t0.plus(Span::hours(9))), LinkStatus::Used);
        let mut replaced = fresh(t0);
        replaced.voided = Some((t0, VoidReason::Replaced));
        assert_eq!(
            replaced.status(t0),
            LinkStatus::Voided(VoidReason::Replaced)
        );
    }

    #[test]
    fn void_reasons_round_trip() {
        for r in [
            VoidReason::Replaced,
            VoidReason::PasswordChanged,
            VoidReason::EmailChanged,
            VoidReason::AccountDisabled,
        ] {
            assert_eq!(VoidReason::from_stored(r.as_str()), Some(r));
        }
        assert_eq!(VoidReason::from_stored("nonsense"), None);
    }
}
