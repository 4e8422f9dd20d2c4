//! The security events that are recorded (DESIGN.md invariant 8).

/// A kind of security event. Each is stored under its stable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditEvent {
    /// A person signed in.
    SignInSucceeded,
    /// A wrong password (or an unknown username).
    SignInFailed,
    /// An attempt was refused because the account is locked.
    SignInRefusedLocked,
    /// An attempt was refused because the password is disabled.
    SignInRefusedDisabled,
    /// Consecutive failures locked the account.
    AccountLocked,
    /// Failures in all disabled the password until a reset.
    PasswordDisabled,
    /// A person signed out.
    SignedOut,
    /// A recovery request was recorded.
    RecoveryRequested,
    /// A recovery request was refused: too many from one client address.
    RecoveryRefusedClientLimit,
    /// A recovery request was processed, with its outcome.
    RecoveryProcessed,
    /// A reset link was issued.
    ResetLinkIssued,
    /// An email was queued.
    EmailQueued,
    /// An email was accepted by the mail server.
    EmailSent,
    /// A try to send an email failed and will be retried.
    EmailRetrying,
    /// An email was given up.
    EmailFailed,
    /// An email's links expired before it could be sent.
    EmailExpired,
    /// A password was set through a reset link.
    PasswordReset,
    /// A reset was refused because the account is locked.
    PasswordResetRefusedLocked,
    /// A reset link that names no link was opened (a typo, a cut-off copy, or a guess).
    ResetLinkUnknown,
    /// Opening a reset link was refused: too many unknown links from one client address.
    ResetLinkRefusedClientLimit,
    /// An email address was changed.
    EmailChanged,
    /// Staff were imported.
    StaffImported,
    /// A form was refused by the cross-site request checks.
    CsrfRefused,
    /// A privileged account enrolled an authenticator app.
    SecondFactorEnrolled,
    /// A privileged session passed the second factor.
    SecondFactorPassed,
    /// A wrong second-factor code (or a replayed one).
    SecondFactorFailed,
    /// A recovery code stood in for the authenticator.
    RecoveryCodeUsed,
    /// An account's role was changed.
    RoleChanged,
    /// An administrator account was created from the command line.
    AdminCreated,
    /// A privileged page or action was refused.
    ConsoleRefused,
    /// An administrator disabled an account.
    AccountDisabled,
    /// An administrator enabled an account again.
    AccountEnabled,
    /// The right password, for an account an administrator has disabled.
    SignInRefusedAccountDisabled,
    /// An administrator lifted a lock early (only when the operator allows it).
    LockLifted,
    /// The helpdesk ended every session of an account.
    SessionsEnded,
    /// An operator cleared an account's authenticator and recovery codes.
    SecondFactorReset,
    /// The operator issued a set-up link (password, then authenticator app).
    SetUpLinkIssued,
    /// The operator replaced the service's key (form tokens, reset link cookies).
    KeysRotated,
}

impl AuditEvent {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::SignInSucceeded => "sign_in.succeeded",
            AuditEvent::SignInFailed => "sign_in.failed",
            AuditEvent::SignInRefusedLocked => "sign_in.refused_locked",
            AuditEvent::SignInRefusedDisabled => "sign_in.refused_disabled",
            AuditEvent::AccountLocked => "account.locked",
            AuditEvent::PasswordDisabled => "account.password_disabled",
            AuditEvent::SignedOut => "sign_out",
            AuditEvent::RecoveryRequested => "recovery.requested",
            AuditEvent::RecoveryRefusedClientLimit => "recovery.refused_client_limit",
            AuditEvent::RecoveryProcessed => "recovery.processed",
            AuditEvent::ResetLinkIssued => "reset_link.issued",
            AuditEvent::EmailQueued => "email.queued",
            AuditEvent::EmailSent => "email.sent",
            AuditEvent::EmailRetrying => "email.retrying",
            AuditEvent::EmailFailed => "email.failed",
            AuditEvent::EmailExpired => "email.expired",
            AuditEvent::PasswordReset => "password.reset",
            AuditEvent::PasswordResetRefusedLocked => "password.reset_refused_locked",
            AuditEvent::ResetLinkUnknown => "reset_link.unknown",
            AuditEvent::ResetLinkRefusedClientLimit => "reset_link.refused_client_limit",
            AuditEvent::EmailChanged => "account.email_changed",
            AuditEvent::StaffImported => "staff.imported",
            AuditEvent::CsrfRefused => "csrf.refused",
            AuditEvent::SecondFactorEnrolled => "second_factor.enrolled",
            AuditEvent::SecondFactorPassed => "second_factor.passed",
            AuditEvent::SecondFactorFailed => "second_factor.failed",
            AuditEvent::RecoveryCodeUsed => "second_factor.recovery_code_used",
            AuditEvent::RoleChanged => "account.role_changed",
            AuditEvent::AdminCreated => "account.admin_created",
            AuditEvent::ConsoleRefused => "console.refused",
            AuditEvent::AccountDisabled => "account.disabled",
            AuditEvent::AccountEnabled => "account.enabled",
            AuditEvent::SignInRefusedAccountDisabled => "sign_in.refused_account_disabled",
            AuditEvent::LockLifted => "account.lock_lifted",
            AuditEvent::SessionsEnded => "account.sessions_ended",
            AuditEvent::SecondFactorReset => "second_factor.reset",
            AuditEvent::SetUpLinkIssued => "second_factor.set_up_link_issued",
            AuditEvent::KeysRotated => "service.keys_rotated",
        }
    }
}
