//! Privileged accounts (helpdesk and admin): roles, and the second factor
//! every privileged session must pass before the console opens.
//!
//! Staff accounts never meet any of this. A privileged person signs in with
//! their password as everyone does; the console then asks for a code from an
//! authenticator app (enrolling one the first time) or a recovery code.
//! Wrong codes count towards the same lockout as wrong passwords, claimed
//! before the code is checked, so a stolen password buys three guesses at
//! a six-digit code per lock, not a million.

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::lockout::ClaimDecision;
use gatehouse_domain::second_factor::{RECOVERY_CODES, RecoveryCode, TotpSecret};
use gatehouse_domain::{Role, Timestamp, TokenHash, UsernameKey};
use gatehouse_store::{AccountRecord, SessionRecord};

use crate::{Error, Gatehouse, Result};

/// Where a signed-in person stands with the console.
#[derive(Debug, Clone)]
pub enum ConsoleAccess {
    /// Staff: the console is not for them.
    NotPrivileged,
    /// Privileged, and must first set up an authenticator app.
    MustEnrol,
    /// Privileged and enrolled: must type a code for this session.
    MustVerify,
    /// Passed the second factor in this session.
    Granted(Role),
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
}

/// The role an account holds, as stored.
pub fn role_of(account: &AccountRecord) -> Role {
    Role::parse(&account.role).unwrap_or(Role::Staff)
}

impl Gatehouse {
    /// Where the signed-in account of `session` stands with the console.
    pub async fn console_access(
        &self,
        session: &SessionRecord,
    ) -> Result<(Option<AccountRecord>, ConsoleAccess)> {
        let Some(account_id) = session.account_id else {
            return Ok((None, ConsoleAccess::NotPrivileged));
        };
        let Some(account) = self.store.account_by_id(account_id).await? else {
            return Ok((None, ConsoleAccess::NotPrivileged));
        };
        let role = role_of(&account);
        if role == Role::Staff {
            return Ok((Some(account), ConsoleAccess::NotPrivileged));
        }
        let enrolled = self
            .store
            .second_factor(account.id)
            .await?
            .is_some_and(|f| f.confirmed_at.is_some());
        let access = match (enrolled, session.second_factor_at) {
            (true, Some(_)) => ConsoleAccess::Granted(role),
            (true, None) => ConsoleAccess::MustVerify,
            (false, _) => ConsoleAccess::MustEnrol,
        };
        Ok((Some(account), access))
    }

    /// The enrolment for `account`: the one already started, or a new one.
    /// `None` once a factor is confirmed (it is never replaced here).
    pub async fn enrolment(&self, account: &AccountRecord) -> Result<Option<Enrolment>> {
        let existing = self.store.second_factor(account.id).await?;
        let secret = match existing {
            Some(f) if f.confirmed_at.is_some() => return Ok(None),
            Some(f) => match TotpSecret::from_base32(&f.totp_secret) {
                Some(secret) => secret,
                None => self.start_enrolment(account.id).await?,
            },
            None => self.start_enrolment(account.id).await?,
        };
        let uri = secret.otpauth_uri(&self.settings.service_name, &account.username);
        Ok(Some(Enrolment { secret, uri }))
    }

    async fn start_enrolment(&self, account_id: i64) -> Result<TotpSecret> {
        let secret = TotpSecret::generate()?;
        if !self
            .store
            .start_second_factor(account_id, &secret.base32(), self.clock.now())
            .await?
        {
            return Err(Error::Internal(
                "an authenticator was confirmed while another was being set up".to_owned(),
            ));
        }
        Ok(secret)
    }

    /// Checks a code typed by the signed-in privileged person: a TOTP code
    /// (enrolling or verifying) or a recovery code. The attempt is claimed
    /// against the account's lockout before the code is checked.
    pub async fn check_second_factor(
        &self,
        session: &SessionRecord,
        account: &AccountRecord,
        typed: &str,
        client_ip: &str,
    ) -> Result<CodeOutcome> {
        let policy = &self.settings.policy.lockout;
        let key = UsernameKey::from_typed(&account.username);
        let now = self.clock.now();
        let mut decision = None;
        self.store
            .update_attempts(&key, now, &mut |counter| {
                let d = counter.claim(now, policy);
                decision = Some(d);
                match d {
                    ClaimDecision::Check(claim) => Some(claim.next),
                    _ => None,
                }
            })
            .await?;
        let mut event = self.event(AuditEvent::SecondFactorFailed);
        event.account_id = Some(account.id);
        event.username = Some(account.username.clone());
        event.client_ip = Some(client_ip.to_owned());
        let claim = match decision {
            Some(ClaimDecision::Check(claim)) => claim,
            Some(ClaimDecision::Locked { until }) => {
                event.detail = Some("refused: the account is locked".to_owned());
                self.store.audit(&event).await?;
                return Ok(CodeOutcome::Locked { until });
            }
            Some(ClaimDecision::Disabled) | None => {
                event.detail = Some("refused: the password is disabled".to_owned());
                self.store.audit(&event).await?;
                return Ok(CodeOutcome::Wrong { attempts_left: 0 });
            }
        };

        let factor = self.store.second_factor(account.id).await?;
        let enrolling = factor.as_ref().is_some_and(|f| f.confirmed_at.is_none());
        let mut used_recovery_code = false;
        let right = match &factor {
            Some(_) if RecoveryCode::looks_like(typed) && !enrolling => {
                used_recovery_code = self
                    .store
                    .use_recovery_code(account.id, &RecoveryCode::hash_typed(typed), now)
                    .await?;
                used_recovery_code
            }
            Some(f) => match TotpSecret::from_base32(&f.totp_secret)
                .and_then(|s| s.verify(typed, now.unix().max(0).cast_unsigned(), f.last_step))
            {
                Some(step) => {
                    self.store
                        .accept_second_factor_step(account.id, step, now)
                        .await?
                }
                None => false,
            },
            None => false,
        };

        if !right {
            self.store.audit(&event).await?;
            if let Some(until) = claim.locks_until_if_wrong {
                let mut locked = event.clone();
                locked.event = AuditEvent::AccountLocked.as_str().to_owned();
                locked.detail = Some(format!(
                    "{} consecutive failures (second factor); locked until {}",
                    policy.threshold,
                    until.rfc3339()
                ));
                self.store.audit(&locked).await?;
                return Ok(CodeOutcome::Locked { until });
            }
            return Ok(CodeOutcome::Wrong {
                attempts_left: claim.attempts_left_if_wrong,
            });
        }

        let mut tx = self.store.begin().await?;
        crate::sign_in::release_claim(&mut *tx, &key, claim.ticket, policy, now).await?;
        tx.commit().await?;
        self.store
            .set_session_second_factor(&session.id_hash, now)
            .await?;

        let mut recovery_codes = Vec::new();
        if enrolling {
            recovery_codes = (0..RECOVERY_CODES)
                .map(|_| RecoveryCode::generate())
                .collect::<std::result::Result<_, _>>()?;
            let hashes: Vec<TokenHash> = recovery_codes.iter().map(RecoveryCode::hash).collect();
            self.store
                .replace_recovery_codes(account.id, &hashes, now)
                .await?;
            event.event = AuditEvent::SecondFactorEnrolled.as_str().to_owned();
            event.detail = Some(format!("{RECOVERY_CODES} recovery codes issued"));
        } else if used_recovery_code {
            event.event = AuditEvent::RecoveryCodeUsed.as_str().to_owned();
            event.detail = Some(format!(
                "{} recovery code(s) left",
                self.store.recovery_codes_left(account.id).await?
            ));
        } else {
            event.event = AuditEvent::SecondFactorPassed.as_str().to_owned();
        }
        self.store.audit(&event).await?;
        Ok(CodeOutcome::Passed { recovery_codes })
    }

    /// Sets the role of the account with this username; `Ok(None)` if there
    /// is no such account. Audited with the actor and the old role.
    pub async fn set_role(
        &self,
        username: &str,
        role: Role,
        actor: impl Into<crate::Actor<'_>>,
    ) -> Result<Option<AccountRecord>> {
        let actor = actor.into();
        let key = UsernameKey::from_typed(username);
        let Some(account) = self.store.account_by_username(&key).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        self.store.set_role(account.id, role.as_str(), now).await?;
        let detail = format!("{} -> {}", account.role, role.as_str());
        self.store
            .audit(&self.action(AuditEvent::RoleChanged, actor, &account, detail))
            .await?;
        self.store
            .account_by_id(account.id)
            .await
            .map_err(Into::into)
    }

    /// Records a refused privileged page or action.
    pub async fn console_refused(
        &self,
        account: Option<&AccountRecord>,
        what: &str,
        client_ip: &str,
    ) -> Result<()> {
        let mut event = self.event(AuditEvent::ConsoleRefused);
        event.account_id = account.map(|a| a.id);
        event.username = account.map(|a| a.username.clone());
        event.client_ip = Some(client_ip.to_owned());
        event.detail = Some(what.to_owned());
        self.store.audit(&event).await?;
        Ok(())
    }
}

/// Who `gatehouse admin create-admin` makes.
#[derive(Debug, Clone)]
pub struct NewAdmin {
    /// The employer, as in the staff file (`999 Demo Trust`).
    pub employer: String,
    /// A username, or blank to generate one.
    pub username: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Date of birth, as in the staff file.
    pub date_of_birth: String,
    /// Email, in an allowed domain.
    pub email: String,
}

/// What `create_admin` made.
#[derive(Debug, Clone)]
pub struct CreatedAdmin {
    /// The account.
    pub account: AccountRecord,
    /// The one-time first-access link (valid for the reset link lifetime).
    pub link: String,
    /// When the link expires.
    pub expires_at: Timestamp,
}

impl Gatehouse {
    /// Creates (or promotes, if the staff file already has this person) an
    /// administrator, and issues a one-time link to set the password, so no
    /// password is ever typed on a command line. `Ok(Err(problems))` when
    /// the details are not valid, in the staff file's words.
    pub async fn create_admin(
        &self,
        admin: &NewAdmin,
        actor: impl Into<crate::Actor<'_>>,
    ) -> Result<std::result::Result<CreatedAdmin, Vec<String>>> {
        let actor = actor.into();
        // Through the staff file's own reader and planner, so an
        // administrator is validated, named and matched like anyone else.
        let mut writer = csv::Writer::from_writer(Vec::new());
        let write = |w: &mut csv::Writer<Vec<u8>>, r: [&str; 8]| {
            w.write_record(r)
                .map_err(|e| Error::Internal(format!("csv: {e}")))
        };
        write(
            &mut writer,
            [
                "employer",
                "username",
                "first_name",
                "last_name",
                "date_of_birth",
                "email",
                "employee_number",
                "role",
            ],
        )?;
        write(
            &mut writer,
            [
                &admin.employer,
                &admin.username,
                &admin.first_name,
                &admin.last_name,
                &admin.date_of_birth,
                &admin.email,
                "",
                "admin",
            ],
        )?;
        let file = writer
            .into_inner()
            .map_err(|e| Error::Internal(format!("csv: {e}")))?;
        let report = match self.import_staff(file.as_slice(), false, actor).await? {
            Ok(report) => report,
            Err(rows) => return Ok(Err(rows.iter().map(|r| r.reason.clone()).collect())),
        };
        let username = match report.generated.first() {
            Some((_, generated)) => generated.clone(),
            None if !admin.username.trim().is_empty() => admin.username.trim().to_owned(),
            None => {
                // The person was already on file: find them as the import did.
                let email = admin.email.trim().to_ascii_lowercase();
                let mut tx = self.store.begin().await?;
                let found = tx
                    .accounts_for_recovery(&email, &normalise_date(&admin.date_of_birth), None)
                    .await?;
                tx.commit().await?;
                match found.into_iter().find(|a| a.role == "admin") {
                    Some(a) => a.username,
                    None => {
                        return Ok(Err(vec![
                            "the person could not be found after the import".to_owned(),
                        ]));
                    }
                }
            }
        };
        let Some(account) = self
            .store
            .account_by_username(&UsernameKey::from_typed(&username))
            .await?
        else {
            return Ok(Err(vec![format!("no account has the username {username}")]));
        };
        if account.role != "admin" {
            self.set_role(&account.username, Role::Admin, actor).await?;
        }
        let now = self.clock.now();
        let expires_at = now.plus(self.settings.policy.reset_link_ttl);
        let token = gatehouse_domain::SecretToken::generate()?;
        let mut tx = self.store.begin().await?;
        tx.void_links(
            account.id,
            gatehouse_domain::reset_link::VoidReason::Replaced,
            now,
            None,
        )
        .await?;
        tx.insert_reset_link(account.id, &token.hash(), None, now, expires_at)
            .await?;
        let detail = format!(
            "first-access link issued, valid until {}",
            expires_at.rfc3339()
        );
        tx.audit(&self.action(AuditEvent::AdminCreated, actor, &account, detail))
            .await?;
        tx.commit().await?;
        let account = self
            .store
            .account_by_id(account.id)
            .await?
            .ok_or_else(|| Error::Internal("the account vanished".to_owned()))?;
        Ok(Ok(CreatedAdmin {
            account,
            link: self.settings.link(&format!("/reset/{}", token.encode())),
            expires_at,
        }))
    }
}

/// `DD/MM/YYYY` or `YYYY-MM-DD` as stored (`YYYY-MM-DD`).
fn normalise_date(text: &str) -> String {
    let t = text.trim();
    match t.split('/').collect::<Vec<_>>().as_slice() {
        [d, m, y] => format!("{y}-{m:0>2}-{d:0>2}"),
        _ => t.to_owned(),
    }
}

/// Why an administrative action on an account was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionRefusal {
    /// No account has that username.
    NoSuchAccount,
    /// A reason is required.
    NoReason,
    /// The account is already in that state.
    Unchanged,
    /// The operator has not allowed early unlocking (the seed's rule).
    NotAllowed,
    /// An administrator cannot disable their own account.
    OwnAccount,
}

impl std::fmt::Display for ActionRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ActionRefusal::NoSuchAccount => "no account has that username",
            ActionRefusal::NoReason => "give a reason",
            ActionRefusal::Unchanged => "the account is already like that",
            ActionRefusal::NotAllowed => {
                "nobody can lift a lock early: the operator setting GATEHOUSE_ALLOW_EARLY_UNLOCK is off"
            }
            ActionRefusal::OwnAccount => "you cannot disable your own account",
        })
    }
}

impl Gatehouse {
    /// The account an administrative action names, once a reason is given.
    async fn action_target(
        &self,
        username: &str,
        reason: &str,
    ) -> Result<std::result::Result<AccountRecord, ActionRefusal>> {
        if reason.trim().is_empty() {
            return Ok(Err(ActionRefusal::NoReason));
        }
        Ok(self
            .store
            .account_by_username(&UsernameKey::from_typed(username))
            .await?
            .ok_or(ActionRefusal::NoSuchAccount))
    }

    /// Disables or enables an account. Disabling ends its sessions; a
    /// disabled account cannot sign in, set a password, or be matched by
    /// recovery. Audited with the actor and the reason.
    pub async fn set_account_disabled(
        &self,
        username: &str,
        disabled: bool,
        actor: impl Into<crate::Actor<'_>>,
        actor_account: Option<i64>,
        reason: &str,
    ) -> Result<std::result::Result<AccountRecord, ActionRefusal>> {
        let actor = actor.into();
        let account = match self.action_target(username, reason).await? {
            Ok(account) => account,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if account.disabled_at.is_some() == disabled {
            return Ok(Err(ActionRefusal::Unchanged));
        }
        if disabled && actor_account == Some(account.id) {
            return Ok(Err(ActionRefusal::OwnAccount));
        }
        let now = self.clock.now();
        self.store
            .set_disabled(account.id, disabled.then_some(now))
            .await?;
        let kind = if disabled {
            AuditEvent::AccountDisabled
        } else {
            AuditEvent::AccountEnabled
        };
        self.store
            .audit(&self.action(kind, actor, &account, format!("reason: {}", reason.trim())))
            .await?;
        let account = self
            .store
            .account_by_id(account.id)
            .await?
            .ok_or_else(|| Error::Internal("the account vanished".to_owned()))?;
        Ok(Ok(account))
    }

    /// Lifts a lock before it ends: refused unless the operator has turned
    /// on `GATEHOUSE_ALLOW_EARLY_UNLOCK`. Audited with the actor and reason.
    pub async fn lift_lock(
        &self,
        username: &str,
        actor: impl Into<crate::Actor<'_>>,
        reason: &str,
    ) -> Result<std::result::Result<AccountRecord, ActionRefusal>> {
        let actor = actor.into();
        if !self.settings.allow_early_unlock {
            return Ok(Err(ActionRefusal::NotAllowed));
        }
        let account = match self.action_target(username, reason).await? {
            Ok(account) => account,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let key = account.username_key();
        let now = self.clock.now();
        let Some(until) = self.store.attempts(&key).await?.locked_at(now) else {
            return Ok(Err(ActionRefusal::Unchanged));
        };
        self.store.lift_lock(&key, now).await?;
        let detail = format!(
            "lock until {} lifted early; reason: {}",
            until.rfc3339(),
            reason.trim()
        );
        self.store
            .audit(&self.action(AuditEvent::LockLifted, actor, &account, detail))
            .await?;
        Ok(Ok(account))
    }

    /// Ends every session of an account (a lost or shared device), audited.
    pub async fn end_sessions(
        &self,
        username: &str,
        actor: impl Into<crate::Actor<'_>>,
        reason: &str,
    ) -> Result<std::result::Result<(AccountRecord, u64), ActionRefusal>> {
        let actor = actor.into();
        let account = match self.action_target(username, reason).await? {
            Ok(account) => account,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let mut tx = self.store.begin().await?;
        let ended = tx.delete_sessions_of(account.id).await?;
        let detail = format!("{ended} session(s) ended; reason: {}", reason.trim());
        tx.audit(&self.action(AuditEvent::SessionsEnded, actor, &account, detail))
            .await?;
        tx.commit().await?;
        Ok(Ok((account, ended)))
    }

    /// Clears an account's authenticator and recovery codes (a lost phone
    /// with no codes left): it enrols again at its next console sign-in.
    /// Its sessions end. Audited with the actor and reason.
    pub async fn reset_second_factor(
        &self,
        username: &str,
        actor: impl Into<crate::Actor<'_>>,
        reason: &str,
    ) -> Result<std::result::Result<AccountRecord, ActionRefusal>> {
        let actor = actor.into();
        let account = match self.action_target(username, reason).await? {
            Ok(account) => account,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if self.store.second_factor(account.id).await?.is_none() {
            return Ok(Err(ActionRefusal::Unchanged));
        }
        self.store.clear_second_factor(account.id).await?;
        let detail = format!("reason: {}", reason.trim());
        self.store
            .audit(&self.action(AuditEvent::SecondFactorReset, actor, &account, detail))
            .await?;
        Ok(Ok(account))
    }
}
