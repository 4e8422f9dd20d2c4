//! The security events that are recorded (docs/design.md invariant 8).

/// Defines [`AuditEvent`] and its stored names, each written once.
macro_rules! audit_events {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)*) => {
        /// A kind of security event. Each is stored under its stable name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditEvent {
            $($(#[doc = $doc])* $variant,)*
        }

        impl AuditEvent {
            /// Every event, in the order they are declared.
            pub const ALL: &[AuditEvent] = &[$(AuditEvent::$variant,)*];

            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(AuditEvent::$variant => $name,)*
                }
            }

            /// Reads a stored name; `None` for a name this build does not know.
            pub fn from_stored(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(AuditEvent::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

audit_events! {
    /// A person signed in.
    SignInSucceeded => "sign_in.succeeded",
    /// A wrong password (or an unknown username).
    SignInFailed => "sign_in.failed",
    /// An attempt was refused because the account is locked.
    SignInRefusedLocked => "sign_in.refused_locked",
    /// An attempt was refused because the password is disabled.
    SignInRefusedDisabled => "sign_in.refused_disabled",
    /// Consecutive failures locked the account.
    AccountLocked => "account.locked",
    /// Failures in all disabled the password until a reset.
    PasswordDisabled => "account.password_disabled",
    /// A person signed out.
    SignedOut => "sign_out",
    /// A recovery request was recorded.
    RecoveryRequested => "recovery.requested",
    /// A recovery request was refused: too many from one client address.
    RecoveryRefusedClientLimit => "recovery.refused_client_limit",
    /// A recovery request was processed, with its outcome.
    RecoveryProcessed => "recovery.processed",
    /// A reset link was issued.
    ResetLinkIssued => "reset_link.issued",
    /// An email was queued.
    EmailQueued => "email.queued",
    /// An email was accepted by the mail server.
    EmailSent => "email.sent",
    /// A try to send an email failed and will be retried.
    EmailRetrying => "email.retrying",
    /// An email was given up.
    EmailFailed => "email.failed",
    /// An email's links expired before it could be sent.
    EmailExpired => "email.expired",
    /// A password was set through a reset link.
    PasswordReset => "password.reset",
    /// A reset was refused because the account is locked.
    PasswordResetRefusedLocked => "password.reset_refused_locked",
    /// A reset link that names no link was opened (a typo, a cut-off copy, or a guess).
    ResetLinkUnknown => "reset_link.unknown",
    /// Opening a reset link was refused: too many unknown links from one client address.
    ResetLinkRefusedClientLimit => "reset_link.refused_client_limit",
    /// An email address was changed.
    EmailChanged => "account.email_changed",
    /// Staff were imported.
    StaffImported => "staff.imported",
    /// A form was refused by the cross-site request checks.
    CsrfRefused => "csrf.refused",
    /// A privileged account enrolled an authenticator app.
    SecondFactorEnrolled => "second_factor.enrolled",
    /// A privileged session passed the second factor.
    SecondFactorPassed => "second_factor.passed",
    /// A wrong second-factor code (or a replayed one).
    SecondFactorFailed => "second_factor.failed",
    /// A recovery code stood in for the authenticator.
    RecoveryCodeUsed => "second_factor.recovery_code_used",
    /// An account's role was changed.
    RoleChanged => "account.role_changed",
    /// An administrator account was created from the command line.
    AdminCreated => "account.admin_created",
    /// A privileged page or action was refused.
    ConsoleRefused => "console.refused",
    /// An administrator disabled an account.
    AccountDisabled => "account.disabled",
    /// An administrator enabled an account again.
    AccountEnabled => "account.enabled",
    /// The right password, for an account an administrator has disabled.
    SignInRefusedAccountDisabled => "sign_in.refused_account_disabled",
    /// An administrator lifted a lock early (only when the operator allows it).
    LockLifted => "account.lock_lifted",
    /// The helpdesk ended every session of an account.
    SessionsEnded => "account.sessions_ended",
    /// An operator cleared an account's authenticator and recovery codes.
    SecondFactorReset => "second_factor.reset",
    /// The operator issued a set-up link (password, then authenticator app).
    SetUpLinkIssued => "second_factor.set_up_link_issued",
    /// The operator replaced the service's key (form tokens, reset link cookies).
    KeysRotated => "service.keys_rotated",
    /// The operator replaced the keys that sign ID tokens.
    SigningKeysRotated => "service.signing_keys_rotated",
    /// The operator registered an application (an OpenID Connect client).
    ClientAdded => "client.added",
    /// The operator replaced a client's secret.
    ClientSecretRotated => "client.secret_rotated",
    /// The operator disabled a client.
    ClientDisabled => "client.disabled",
    /// The operator enabled a client again.
    ClientEnabled => "client.enabled",
    /// The operator removed a client, and everything issued to it.
    ClientRemoved => "client.removed",
    /// A client presented a wrong secret (or none, or an unknown client id).
    ClientAuthFailed => "client.auth_failed",
    /// A person was signed in to an application (a code was issued).
    ApplicationSignIn => "application.signed_in",
    /// A person consented to what an application asked for.
    ApplicationConsent => "application.consent_given",
    /// An authorization code was presented again: the access it gave is revoked.
    CodeReused => "application.code_reused",
    /// A used refresh token was presented again: the access it gave is revoked.
    RefreshTokenReused => "application.refresh_token_reused",
    /// An application revoked a token it held (RFC 7009).
    TokenRevoked => "application.token_revoked",
    /// An application could not be told of a sign-out, and was given up on.
    LogoutNoticeFailed => "application.logout_notice_failed",
    /// A person changed their password while signed in.
    PasswordChanged => "password.changed",
    /// A person signed out one of their other sessions, or all of them.
    OwnSessionsEnded => "account.own_sessions_ended",
    /// A person signed out of an application from their account page.
    ApplicationSignedOut => "application.signed_out",
    /// A security email was not sent: too many to the address this hour.
    SecurityNoticeThrottled => "email.security_notice_throttled",
    /// A person signed in from a browser their account had not used before.
    NewBrowserSignIn => "sign_in.new_browser",
    /// A person's personal details were erased (their request, or a
    /// disabled account past its retention period).
    PersonErased => "account.person_erased",
    /// Everything held about a person was exported (a subject access request).
    PersonExported => "account.person_exported",
    /// The worker forgot records past their retention period.
    RetentionApplied => "system.retention_applied",
    /// A backup of the database was written.
    BackupTaken => "system.backup_taken",
    /// A person added a passkey to their account.
    PasskeyAdded => "passkey.added",
    /// A person removed a passkey from their account.
    PasskeyRemoved => "passkey.removed",
    /// A person signed in (or passed the second factor) with a passkey.
    PasskeySignIn => "passkey.signed_in",
    /// A passkey ceremony was refused (detail: why, e.g. the counter went backwards).
    PasskeyRefused => "passkey.refused",
    /// The operator removed every passkey of an account.
    PasskeysRemovedByOperator => "passkey.removed_by_operator",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_reads_back_from_its_stored_name_and_names_are_unique() {
        let mut names = std::collections::HashSet::new();
        for event in AuditEvent::ALL {
            assert_eq!(AuditEvent::from_stored(event.as_str()), Some(*event));
            assert!(names.insert(event.as_str()), "{} twice", event.as_str());
        }
        assert_eq!(AuditEvent::from_stored("no.such_event"), None);
    }
}
