//! A person's own security events in plain words, for "Recent activity".
//! Events that say nothing to the person (emails queued, form checks) are
//! left out; none shows a token, a password or another person.

use gatehouse_domain::audit::AuditEvent;
use gatehouse_store::AuditRecord;

use crate::Settings;

/// Who did it, when not the person: "the helpdesk", "an administrator",
/// "the operator".
fn by_whom(actor: Option<&str>) -> &'static str {
    match actor.and_then(|a| a.split(' ').next()) {
        Some("helpdesk") => "the helpdesk",
        Some("admin") => "an administrator",
        _ => "the operator",
    }
}

/// The application an event names: its detail starts `ID "NAME": …`.
fn application(detail: Option<&str>) -> String {
    detail
        .and_then(|d| d.split('"').nth(1))
        .map_or_else(|| "an application".to_owned(), str::to_owned)
}

/// The end of a lock an `account.locked` event records (`… locked until
/// 2026-12-07T22:00:00Z`), as people read it.
fn lock_end(detail: Option<&str>, settings: &Settings) -> Option<String> {
    let at = detail?.rsplit("locked until ").next()?;
    let ts: jiff::Timestamp = at.trim().parse().ok()?;
    Some(settings.when(gatehouse_domain::Timestamp::from_unix(ts.as_second())))
}

/// The event in plain words; `None` for events not shown to the person.
pub(crate) fn in_words(r: &AuditRecord, settings: &Settings) -> Option<String> {
    let detail = r.detail.as_deref();
    let who = by_whom(r.actor.as_deref());
    Some(match r.event {
        AuditEvent::SignInSucceeded => "Signed in".to_owned(),
        AuditEvent::SignInFailed => "A wrong password was entered".to_owned(),
        AuditEvent::SignInRefusedLocked => {
            "A sign-in was refused: the account was locked".to_owned()
        }
        AuditEvent::SignInRefusedDisabled => {
            "A sign-in was refused: the password no longer works".to_owned()
        }
        AuditEvent::SignInRefusedAccountDisabled => {
            "A sign-in was refused: the account is disabled".to_owned()
        }
        AuditEvent::AccountLocked => match lock_end(detail, settings) {
            Some(until) => format!("The account was locked until {until}"),
            None => "The account was locked".to_owned(),
        },
        AuditEvent::PasswordDisabled => {
            "The password stopped working after too many wrong attempts".to_owned()
        }
        AuditEvent::SignedOut => "Signed out".to_owned(),
        AuditEvent::PasswordReset => "The password was set through an email link".to_owned(),
        AuditEvent::PasswordChanged => "The password was changed".to_owned(),
        AuditEvent::PasswordResetRefusedLocked => {
            "A password reset was refused: the account was locked".to_owned()
        }
        AuditEvent::EmailChanged => format!("The email address was changed by {who}"),
        AuditEvent::SecondFactorEnrolled => "An authenticator app was set up".to_owned(),
        AuditEvent::SecondFactorPassed => {
            "A code from the authenticator app was accepted".to_owned()
        }
        AuditEvent::SecondFactorFailed => "A wrong authenticator code was entered".to_owned(),
        AuditEvent::RecoveryCodeUsed => "A recovery code was used".to_owned(),
        AuditEvent::SecondFactorReset => {
            "The authenticator app was reset by the operator".to_owned()
        }
        AuditEvent::RoleChanged => format!("The account's role was changed by {who}"),
        AuditEvent::AccountDisabled => format!("The account was disabled by {who}"),
        AuditEvent::AccountEnabled => format!("The account was enabled by {who}"),
        AuditEvent::LockLifted => format!("The lock was lifted by {who}"),
        AuditEvent::SessionsEnded => format!("Signed out everywhere by {who}"),
        AuditEvent::OwnSessionsEnded => "Other devices were signed out".to_owned(),
        AuditEvent::NewBrowserSignIn => "Signed in from a new browser".to_owned(),
        AuditEvent::ApplicationSignIn => format!("Signed in to {}", application(detail)),
        AuditEvent::ApplicationConsent => {
            format!("{} was allowed to sign you in", application(detail))
        }
        AuditEvent::ApplicationSignedOut => "Signed out of an application".to_owned(),
        AuditEvent::PasskeyAdded => format!("A passkey was added ({})", detail.unwrap_or("")),
        AuditEvent::PasskeyRemoved => format!("A passkey was removed ({})", detail.unwrap_or("")),
        AuditEvent::PasskeySignIn => "Signed in with a passkey".to_owned(),
        AuditEvent::PasskeyRefused => "A passkey was refused".to_owned(),
        AuditEvent::PasskeysRemovedByOperator => {
            format!("Every passkey was removed by {who}")
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_domain::Timestamp;

    fn settings() -> Settings {
        Settings::with_defaults(url::Url::parse("https://esr.example").expect("url"))
    }

    #[test]
    fn events_read_as_plain_words_and_internal_ones_are_left_out() {
        let mut r = AuditRecord::new(
            Timestamp::from_unix(1_800_000_000),
            AuditEvent::AccountLocked,
        );
        r.detail = Some("3 consecutive failures; locked until 2027-01-15T08:00:00Z".to_owned());
        assert_eq!(
            in_words(&r, &settings()).as_deref(),
            Some("The account was locked until 8:00am on 15 January 2027")
        );
        r.event = AuditEvent::EmailChanged;
        r.actor = Some("helpdesk 999AKHAN01".to_owned());
        assert_eq!(
            in_words(&r, &settings()).as_deref(),
            Some("The email address was changed by the helpdesk")
        );
        r.event = AuditEvent::ApplicationSignIn;
        r.detail = Some("abc \"Payslips\": openid email".to_owned());
        assert_eq!(
            in_words(&r, &settings()).as_deref(),
            Some("Signed in to Payslips")
        );
        for internal in [
            AuditEvent::EmailQueued,
            AuditEvent::CsrfRefused,
            AuditEvent::ConsoleRefused,
        ] {
            r.event = internal;
            assert_eq!(in_words(&r, &settings()), None, "{internal:?}");
        }
    }
}
