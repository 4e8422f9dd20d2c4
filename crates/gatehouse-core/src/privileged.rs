//! Privileged accounts (helpdesk and admin): the second factor every
//! privileged session must pass before the console opens.
//!
//! Staff accounts never meet any of this. A privileged person signs in with
//! their password as everyone does; the console then asks for a code from an
//! authenticator app or a recovery code. Wrong codes count towards the same
//! lockout as wrong passwords, claimed before the code is checked, so a
//! stolen password buys three guesses at a six-digit code per lock, not a
//! million, and a right password does not forgive them.
//!
//! An authenticator is set up only through a set-up link the operator hands
//! the person ([`crate::set_up`]): whoever next holds the password (a
//! recovery email can set it) must not be able to set up their own.

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::lockout::ClaimDecision;
use gatehouse_domain::second_factor::{RECOVERY_CODES, RecoveryCode, TotpSecret};
use gatehouse_domain::{Role, Timestamp, TokenHash};
use gatehouse_store::{AccountRecord, SessionRecord, accounts, second_factor, sessions};

use crate::Caller;
use crate::lockout::{Attempt, Wrong};
use crate::{Error, Gatehouse, Member, Result};

/// Where a signed-in person stands with the console.
#[derive(Debug, Clone)]
pub enum ConsoleAccess {
    /// Staff: the console is not for them.
    NotPrivileged,
    /// Privileged, with no authenticator yet, and a set-up link has just
    /// set their password: they set one up now.
    MustEnrol,
    /// Privileged, with no authenticator and no set-up link used: only the
    /// operator can give them one.
    NeedsSetUpLink,
    /// Privileged and enrolled: must type a code for this session (again,
    /// if the account has been locked since it last did: a lock forgets
    /// every session's pass, [`Gatehouse::record_lock`]).
    MustVerify,
    /// Passed the second factor in this session.
    Granted(Member),
}

/// An enrolment in progress: what the set-up page shows.
#[derive(Debug, Clone)]
pub struct Enrolment {
    /// The secret for the QR code and the manual key.
    pub secret: TotpSecret,
    /// The `otpauth://` URI the QR code carries.
    pub uri: String,
}

/// What a typed code came to.
#[derive(Debug, Clone)]
pub enum CodeOutcome {
    /// Right: the session has passed. On a first enrolment, the recovery
    /// codes to show once.
    Passed {
        /// Recovery codes, present only when just enrolled.
        recovery_codes: Vec<RecoveryCode>,
    },
    /// Wrong, reused or malformed.
    Wrong {
        /// Attempts left before the account locks.
        attempts_left: u32,
    },
    /// The account is locked (perhaps by this attempt).
    Locked {
        /// Until when.
        until: Timestamp,
    },
    /// Only a passkey is accepted (`GATEHOUSE_PRIVILEGED_SECOND_FACTOR=passkey`).
    PasskeyOnly,
}

/// What checking a code found ([`Gatehouse::check_code`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum CodeCheck {
    /// Right; its claim has been released.
    Right {
        /// The code confirmed an authenticator being set up.
        enrolled: bool,
        /// A recovery code stood in for the authenticator.
        recovery_code: bool,
    },
    /// Wrong, reused or malformed (counted).
    Wrong {
        /// Attempts left before the account locks.
        attempts_left: u32,
    },
    /// The account is locked (perhaps by this code).
    Locked {
        /// Until when.
        until: Timestamp,
    },
}

impl Gatehouse {
    /// Whether `account` may set up an authenticator now: privileged, with
    /// none confirmed, inside the window a set-up link opened.
    pub(crate) fn may_enrol(&self, account: &AccountRecord) -> bool {
        account
            .second_factor_setup_until
            .is_some_and(|until| self.clock.now() < until)
    }

    /// Whether a passkey is the only second factor helpdesk and admin may
    /// use (`GATEHOUSE_PRIVILEGED_SECOND_FACTOR=passkey`).
    pub fn passkey_only(&self) -> bool {
        self.settings.privileged_second_factor == crate::settings::PrivilegedSecondFactor::Passkey
    }

    /// With passkeys turned off, how many enabled helpdesk and admin
    /// accounts had a passkey as their only second factor and so have none
    /// now (each needs the operator's set-up link); 0 with passkeys on.
    /// Said at start-up, so that turning passkeys off is not silent.
    pub async fn stranded_without_passkeys(&self) -> Result<i64> {
        if self.settings.passkeys {
            return Ok(0);
        }
        Ok(
            gatehouse_store::passkeys::privileged_with_only_a_passkey(&mut *self.read().await?)
                .await?,
        )
    }

    /// Where the signed-in account of `session` stands with the console.
    pub async fn console_access(
        &self,
        session: &SessionRecord,
        caller: &Caller,
    ) -> Result<(Option<AccountRecord>, ConsoleAccess)> {
        let Some(account_id) = session.account_id else {
            return Ok((None, ConsoleAccess::NotPrivileged));
        };
        let mut db = self.read().await?;
        let Some(account) = accounts::by_id(&mut db, account_id).await? else {
            return Ok((None, ConsoleAccess::NotPrivileged));
        };
        let role = account.role;
        if role == Role::Staff {
            return Ok((Some(account), ConsoleAccess::NotPrivileged));
        }
        let app = second_factor::get(&mut db, account.id)
            .await?
            .is_some_and(|f| f.confirmed_at.is_some());
        let keys = self.settings.passkeys
            && gatehouse_store::passkeys::count(&mut db, account.id).await? > 0;
        drop(db);
        // A passkey stands in for the app; with the operator's setting it
        // is the only second factor allowed.
        let enrolled = if self.passkey_only() {
            keys
        } else {
            app || keys
        };
        let access = match (enrolled, session.second_factor_at) {
            (false, _) if self.may_enrol(&account) => ConsoleAccess::MustEnrol,
            (false, _) => ConsoleAccess::NeedsSetUpLink,
            (true, None) => ConsoleAccess::MustVerify,
            (true, Some(_)) => ConsoleAccess::Granted(Member::new(&account, role, &caller.ip)),
        };
        Ok((Some(account), access))
    }

    /// The enrolment for `account`: the one already started, or a new one.
    /// `None` once a factor is confirmed (it is never replaced here), or
    /// when no set-up link has opened the window.
    pub async fn enrolment(&self, account: &AccountRecord) -> Result<Option<Enrolment>> {
        if !self.may_enrol(account) || self.passkey_only() {
            return Ok(None);
        }
        let existing = second_factor::get(&mut *self.read().await?, account.id).await?;
        let secret = match existing {
            Some(f) if f.confirmed_at.is_some() => return Ok(None),
            Some(f) => match TotpSecret::from_base32(&f.totp_secret) {
                Some(secret) => secret,
                None => self.start_enrolment(account.id).await?,
            },
            None => self.start_enrolment(account.id).await?,
        };
        let uri = secret.otpauth_uri(&self.settings.service_name, account.username.as_str());
        Ok(Some(Enrolment { secret, uri }))
    }

    async fn start_enrolment(&self, account_id: i64) -> Result<TotpSecret> {
        let secret = TotpSecret::generate()?;
        if !second_factor::start(
            &mut *self.write().await?,
            account_id,
            &secret.base32(),
            self.clock.now(),
        )
        .await?
        {
            return Err(Error::Internal(
                "an authenticator was confirmed while another was being set up".to_owned(),
            ));
        }
        Ok(secret)
    }

    /// Checks a code typed by the signed-in privileged person on the
    /// console's page: a TOTP code (enrolling or verifying) or a recovery
    /// code. On success the session has passed the second factor.
    pub async fn check_second_factor(
        &self,
        session: &SessionRecord,
        account: &AccountRecord,
        typed: &str,
        caller: &Caller,
    ) -> Result<CodeOutcome> {
        if self.passkey_only() {
            // Not counted: no code is checked at all.
            let mut event = self.event_about(AuditEvent::SecondFactorFailed, account, caller);
            event.detail = Some("refused: only a passkey is accepted".to_owned());
            self.audit(&event).await?;
            return Ok(CodeOutcome::PasskeyOnly);
        }
        let (enrolled, recovery_code) = match self.check_code(account, typed, caller).await? {
            CodeCheck::Right {
                enrolled,
                recovery_code,
            } => (enrolled, recovery_code),
            CodeCheck::Wrong { attempts_left } => return Ok(CodeOutcome::Wrong { attempts_left }),
            CodeCheck::Locked { until } => return Ok(CodeOutcome::Locked { until }),
        };
        let now = self.clock.now();
        sessions::pass_second_factor(&mut *self.write().await?, &session.id_hash, now).await?;
        let mut event = self.event_about(AuditEvent::SecondFactorPassed, account, caller);
        let mut recovery_codes = Vec::new();
        if enrolled {
            recovery_codes = (0..RECOVERY_CODES)
                .map(|_| RecoveryCode::generate())
                .collect::<std::result::Result<_, _>>()?;
            let hashes: Vec<TokenHash> = recovery_codes.iter().map(RecoveryCode::hash).collect();
            let mut tx = self.begin().await?;
            second_factor::replace_recovery_codes(&mut tx, account.id, &hashes, now).await?;
            tx.commit().await?;
            event.event = AuditEvent::SecondFactorEnrolled;
            event.detail = Some(format!("{RECOVERY_CODES} recovery codes issued"));
        } else if recovery_code {
            event.event = AuditEvent::RecoveryCodeUsed;
            event.detail = Some(format!(
                "{} recovery code(s) left",
                second_factor::recovery_codes_left(&mut *self.read().await?, account.id).await?
            ));
        }
        self.audit(&event).await?;
        Ok(CodeOutcome::Passed { recovery_codes })
    }

    /// Checks a second-factor code for `account`, claimed against its
    /// lockout before it is checked: a TOTP code of its authenticator (or
    /// of the one being set up, while a set-up link allows it) or one of its
    /// recovery codes. A wrong one is audited (with the lock it starts).
    pub(crate) async fn check_code(
        &self,
        account: &AccountRecord,
        typed: &str,
        caller: &Caller,
    ) -> Result<CodeCheck> {
        let key = account.username_key();
        let now = self.clock.now();
        let (decision, _) = self.claim_attempt(&key, Attempt::Code, now).await?;
        let mut event = self.event_about(AuditEvent::SecondFactorFailed, account, caller);
        let claim = match decision {
            ClaimDecision::Check(claim) => claim,
            ClaimDecision::Locked { until } => {
                event.detail = Some("refused: the account is locked".to_owned());
                self.audit(&event).await?;
                return Ok(CodeCheck::Locked { until });
            }
            ClaimDecision::Disabled => {
                return Err(Error::Internal(
                    "a second-factor claim was refused as a disabled password".to_owned(),
                ));
            }
        };

        let factor = second_factor::get(&mut *self.read().await?, account.id).await?;
        let enrolling = factor.as_ref().is_some_and(|f| f.confirmed_at.is_none());
        let mut recovery_code = false;
        let right = match &factor {
            // An authenticator being set up counts only inside the window a
            // set-up link opened.
            Some(_) if enrolling && !self.may_enrol(account) => false,
            Some(_) if RecoveryCode::looks_like(typed) && !enrolling => {
                recovery_code = second_factor::use_recovery_code(
                    &mut *self.write().await?,
                    account.id,
                    &RecoveryCode::hash_typed(typed),
                    now,
                )
                .await?;
                recovery_code
            }
            Some(f) => match TotpSecret::from_base32(&f.totp_secret)
                .and_then(|s| s.verify(typed, now.unix().max(0).cast_unsigned(), f.last_step))
            {
                Some(step) => {
                    second_factor::accept_step(&mut *self.write().await?, account.id, step, now)
                        .await?
                }
                None => false,
            },
            None => false,
        };

        if !right {
            return Ok(
                match self
                    .record_wrong(&event, &claim, Attempt::Code, Some(account.id))
                    .await?
                {
                    Wrong::Locked(until) => CodeCheck::Locked { until },
                    Wrong::AttemptsLeft(attempts_left) => CodeCheck::Wrong { attempts_left },
                    Wrong::Disabled => CodeCheck::Wrong { attempts_left: 0 },
                },
            );
        }

        let mut tx = self.begin().await?;
        self.release_claim(&mut tx, &key, claim.ticket, Attempt::Code, now)
            .await?;
        tx.commit().await?;
        Ok(CodeCheck::Right {
            enrolled: enrolling,
            recovery_code,
        })
    }

    /// Records a refused privileged page or action.
    pub async fn console_refused(
        &self,
        account: Option<&AccountRecord>,
        what: &str,
        caller: &Caller,
    ) -> Result<()> {
        let mut event = self.event(AuditEvent::ConsoleRefused);
        event.account_id = account.map(|a| a.id);
        event.username = account.map(|a| a.username.to_string());
        event.client_ip = Some(caller.ip.clone());
        event.user_agent = caller.user_agent.clone();
        event.detail = Some(what.to_owned());
        self.audit(&event).await
    }
}
