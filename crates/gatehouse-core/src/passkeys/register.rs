//! The signed-in person's own passkeys: adding one (named by them),
//! listing them, and removing one after entering the password again; and
//! the operator removing every passkey of an account.

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::{Role, Timestamp};
use gatehouse_store::passkeys::{self, NewPasskey};
use gatehouse_store::{AccountRecord, SessionRecord, accounts, audit, second_factor, sessions};
use webauthn_rs::prelude::{PasskeyRegistration, RegisterPublicKeyCredential, Uuid};

use super::{Kind, PasskeyRefusal, Refusable, credential_of, when_or_never};
use crate::administration::ActionRefusal;
use crate::lockout::{Attempt, PasswordAgain, Wrong};
use crate::security_notices::SecurityNotice;
use crate::settings::PrivilegedSecondFactor;
use crate::{Action, Actor, Caller, Error, Gatehouse, Result};

use super::CeremonyStart;

/// One of the person's passkeys, as the account page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyLine {
    /// Its id, for the form that removes it.
    pub id: i64,
    /// The name the person gave it.
    pub name: String,
    /// When it was added, as people read it.
    pub added: String,
    /// When it last signed in, as people read it, or "Never".
    pub last_used: String,
}

/// How removing a passkey ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveOutcome {
    /// Removed; its name.
    Removed(String),
    /// No password was entered (nothing counted).
    NoPassword,
    /// The password is wrong: counted towards the lock.
    WrongPassword {
        /// Attempts left before the lock.
        attempts_left: u32,
    },
    /// The account is locked.
    Locked {
        /// Until when.
        until: Timestamp,
    },
    /// Too many wrong passwords in all: the password no longer works.
    PasswordDisabled,
    /// It is the last second factor this helpdesk or admin account may use.
    OnlyFactor,
    /// No such passkey on this account.
    NotFound,
    /// A privileged account must pass its second factor first.
    SecondFactorFirst,
}

/// What the registration ceremony keeps between its halves.
#[derive(serde::Serialize, serde::Deserialize)]
struct Registration {
    /// The name the person gave.
    name: String,
    /// The user handle the credential is made for.
    user_handle: Vec<u8>,
    /// The library's state.
    state: PasskeyRegistration,
}

/// The name as given, or why it will not do.
fn check_name(name: &str) -> Refusable<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(PasskeyRefusal::BadName(
            "Enter a name for the passkey, such as \u{201c}work phone\u{201d}".to_owned(),
        ));
    }
    if name.chars().count() > super::NAME_MAX {
        return Err(PasskeyRefusal::BadName(format!(
            "The name must be {} characters or fewer",
            super::NAME_MAX
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(PasskeyRefusal::BadName(
            "The name must not contain control characters".to_owned(),
        ));
    }
    Ok(name.to_owned())
}

impl Gatehouse {
    /// The signed-in session's account.
    async fn passkey_owner(&self, session: &SessionRecord) -> Result<AccountRecord> {
        let id = session.account_id.ok_or(Error::NoSuchAccount)?;
        accounts::by_id(&mut *self.read().await?, id)
            .await?
            .ok_or(Error::NoSuchAccount)
    }

    /// Whether `account` (signed in as `session`) may change its passkeys
    /// now. A helpdesk or admin member must have passed the second factor
    /// in this session (else a stolen password could add a passkey and skip
    /// the code), unless a set-up link has just opened their enrolment and
    /// they have no second factor yet (their first passkey is then it).
    async fn may_change_passkeys(
        &self,
        session: &SessionRecord,
        account: &AccountRecord,
    ) -> Result<bool> {
        if account.role == Role::Staff || session.second_factor_at.is_some() {
            return Ok(true);
        }
        let mut db = self.read().await?;
        let app = second_factor::get(&mut db, account.id)
            .await?
            .is_some_and(|f| f.confirmed_at.is_some());
        let keys = passkeys::count(&mut db, account.id).await?;
        let passkey_only =
            self.settings.privileged_second_factor == PrivilegedSecondFactor::Passkey;
        Ok(self.may_enrol(account) && keys == 0 && (passkey_only || !app))
    }

    /// The signed-in person's passkeys, oldest first.
    pub async fn own_passkeys(&self, session: &SessionRecord) -> Result<Vec<PasskeyLine>> {
        let account = self.passkey_owner(session).await?;
        Ok(passkeys::of_account(&mut *self.read().await?, account.id)
            .await?
            .into_iter()
            .map(|p| PasskeyLine {
                id: p.id,
                name: p.name,
                added: self.settings.when(p.created_at),
                last_used: when_or_never(self, p.last_used_at),
            })
            .collect())
    }

    /// The first half of adding a passkey named `name` to the signed-in
    /// person's account: the options for `navigator.credentials.create`.
    pub async fn start_passkey_registration(
        &self,
        session: &SessionRecord,
        name: &str,
    ) -> Result<Refusable<CeremonyStart>> {
        if !self.settings.passkeys {
            return Ok(Err(PasskeyRefusal::NotEnabled));
        }
        let account = self.passkey_owner(session).await?;
        if !self.may_change_passkeys(session, &account).await? {
            return Ok(Err(PasskeyRefusal::SecondFactorFirst));
        }
        let name = match check_name(name) {
            Ok(name) => name,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let existing = passkeys::of_account(&mut *self.read().await?, account.id).await?;
        if existing.iter().any(|p| p.name == name) {
            return Ok(Err(PasskeyRefusal::NameTaken));
        }
        // One user handle per account, so that an authenticator keeps one
        // passkey per account here; random, so it tells nothing about them.
        let user_handle = match existing.first() {
            Some(p) => p.user_handle.clone(),
            None => gatehouse_domain::SecretToken::generate()?.hash().as_bytes()[..16].to_vec(),
        };
        let uuid = Uuid::from_slice(&user_handle)
            .map_err(|e| Error::Internal(format!("a passkey user handle: {e}")))?;
        let exclude = existing
            .iter()
            .map(|p| credential_of(p).map(|c| c.cred_id().clone()))
            .collect::<Result<Vec<_>>>()?;
        let display = format!("{} {}", account.first_name, account.last_name);
        let (options, state) = self
            .webauthn()?
            .start_passkey_registration(
                uuid,
                account.username.as_str(),
                &display,
                Some(exclude).filter(|e| !e.is_empty()),
            )
            .map_err(|e| Error::Internal(format!("starting a passkey registration: {e}")))?;
        let mut options = serde_json::to_value(&options)
            .map_err(|e| Error::Internal(format!("passkey options: {e}")))?;
        // Discoverable where the authenticator can, so that "Sign in with a
        // passkey" needs nothing typed; a security key that cannot still
        // works after typing the username.
        if let Some(selection) = options
            .get_mut("publicKey")
            .and_then(|p| p.get_mut("authenticatorSelection"))
        {
            selection["residentKey"] = serde_json::Value::from("preferred");
        }
        let ceremony = self
            .store_ceremony(
                Kind::Register,
                Some(account.id),
                &Registration {
                    name,
                    user_handle,
                    state,
                },
            )
            .await?;
        Ok(Ok(CeremonyStart { ceremony, options }))
    }

    /// The second half of adding a passkey: the browser's answer
    /// (`credential`, JSON) to the ceremony it names. Audited, and told to
    /// the person by email.
    pub async fn finish_passkey_registration(
        &self,
        session: &SessionRecord,
        ceremony: &str,
        credential: &str,
        caller: &Caller,
    ) -> Result<Refusable<String>> {
        if !self.settings.passkeys {
            return Ok(Err(PasskeyRefusal::NotEnabled));
        }
        let account = self.passkey_owner(session).await?;
        let what = "adding a passkey";
        let (owner, registration) = match self
            .take_ceremony::<Registration>(Kind::Register, ceremony)
            .await?
        {
            Ok(taken) => taken,
            Err(refusal) => return self.refused(refusal, Some(&account), caller, what).await,
        };
        if owner != Some(account.id) {
            return self
                .refused(PasskeyRefusal::OtherAccount, Some(&account), caller, what)
                .await;
        }
        let answer: RegisterPublicKeyCredential = match serde_json::from_str(credential) {
            Ok(answer) => answer,
            Err(_) => {
                return self
                    .refused(PasskeyRefusal::NotVerified, Some(&account), caller, what)
                    .await;
            }
        };
        let passkey = match self
            .webauthn()?
            .finish_passkey_registration(&answer, &registration.state)
        {
            Ok(passkey) => passkey,
            Err(e) => {
                tracing::info!(error = %e, "a passkey registration did not verify");
                return self
                    .refused(PasskeyRefusal::NotVerified, Some(&account), caller, what)
                    .await;
            }
        };
        let stored = serde_json::to_string(&passkey)
            .map_err(|e| Error::Internal(format!("a passkey to store: {e}")))?;
        let now = self.clock.now();
        let mut tx = self.begin().await?;
        let inserted = passkeys::insert(
            &mut tx,
            &NewPasskey {
                account_id: account.id,
                name: &registration.name,
                credential_id: passkey.cred_id().as_ref(),
                user_handle: &registration.user_handle,
                credential: &stored,
                counter: 0,
                now,
            },
        )
        .await?;
        if !inserted {
            drop(tx);
            let taken = passkeys::of_account(&mut *self.read().await?, account.id)
                .await?
                .iter()
                .any(|p| p.name == registration.name);
            let refusal = if taken {
                PasskeyRefusal::NameTaken
            } else {
                PasskeyRefusal::AlreadyRegistered
            };
            return self.refused(refusal, Some(&account), caller, what).await;
        }
        let notice = SecurityNotice::PasskeyAdded(registration.name.clone());
        self.queue_security_notice(&mut tx, &account, &notice, Some(caller), now)
            .await?;
        let mut event = self.event_about(AuditEvent::PasskeyAdded, &account, caller);
        event.detail = Some(format!("named \u{201c}{}\u{201d}", registration.name));
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        self.wake_outbox();
        Ok(Ok(registration.name))
    }

    /// Whether passkey `id` is the only second factor left to `account`
    /// (a helpdesk or admin account whose others are not allowed or absent).
    async fn is_only_factor(&self, account: &AccountRecord) -> Result<bool> {
        if account.role == Role::Staff {
            return Ok(false);
        }
        let mut db = self.read().await?;
        if passkeys::count(&mut db, account.id).await? > 1 {
            return Ok(false);
        }
        let app = second_factor::get(&mut db, account.id)
            .await?
            .is_some_and(|f| f.confirmed_at.is_some());
        Ok(self.settings.privileged_second_factor == PrivilegedSecondFactor::Passkey || !app)
    }

    /// Removes passkey `id` of the signed-in person, once they have entered
    /// their password again. A wrong password is a guess like any other:
    /// claimed against the lockout first. The last passkey of a helpdesk or
    /// admin account whose only second factor it is stays.
    pub async fn remove_own_passkey(
        &self,
        session: &SessionRecord,
        id: i64,
        password: &str,
        caller: &Caller,
    ) -> Result<RemoveOutcome> {
        let account = self.passkey_owner(session).await?;
        if !self.may_change_passkeys(session, &account).await? {
            return Ok(RemoveOutcome::SecondFactorFirst);
        }
        let mine = passkeys::of_account(&mut *self.read().await?, account.id).await?;
        if !mine.iter().any(|p| p.id == id) {
            return Ok(RemoveOutcome::NotFound);
        }
        if self.is_only_factor(&account).await? {
            let refusal = PasskeyRefusal::SecondFactorFirst;
            let mut event = self.event_about(AuditEvent::PasskeyRefused, &account, caller);
            event.detail = Some(format!(
                "removing a passkey: it is the account's only second factor ({})",
                refusal.audit_reason()
            ));
            self.audit(&event).await?;
            return Ok(RemoveOutcome::OnlyFactor);
        }
        if password.is_empty() {
            return Ok(RemoveOutcome::NoPassword);
        }
        // The password again, counted like any password.
        let key = account.username_key();
        let now = self.clock.now();
        let doing = "the password, removing a passkey on My account";
        let claim = match self
            .password_again(&account, password, doing, caller, now)
            .await?
        {
            PasswordAgain::Right { claim, .. } => claim,
            PasswordAgain::Wrong(Wrong::AttemptsLeft(attempts_left)) => {
                return Ok(RemoveOutcome::WrongPassword { attempts_left });
            }
            PasswordAgain::Wrong(Wrong::Locked(until)) => {
                return Ok(RemoveOutcome::Locked { until });
            }
            PasswordAgain::Wrong(Wrong::Disabled) => return Ok(RemoveOutcome::PasswordDisabled),
        };
        let mut tx = self.begin().await?;
        self.release_claim(&mut tx, &key, claim.ticket, Attempt::Password, now)
            .await?;
        let Some(name) = passkeys::remove(&mut tx, account.id, id).await? else {
            tx.commit().await?;
            return Ok(RemoveOutcome::NotFound);
        };
        let notice = SecurityNotice::PasskeyRemoved(name.clone());
        self.queue_security_notice(&mut tx, &account, &notice, Some(caller), now)
            .await?;
        let mut event = self.event_about(AuditEvent::PasskeyRemoved, &account, caller);
        event.detail = Some(format!("named \u{201c}{name}\u{201d}"));
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        self.wake_outbox();
        Ok(RemoveOutcome::Removed(name))
    }

    /// Removes every passkey of `username` (a lost phone, a leaver's
    /// security key) and signs the account out everywhere: the operator
    /// only, with a reason, audited. Returns the account and how many
    /// passkeys were removed.
    pub async fn remove_passkeys_by_operator(
        &self,
        username: &str,
        actor: &Actor,
        reason: &str,
    ) -> Result<std::result::Result<(AccountRecord, u64), ActionRefusal>> {
        let account = match self
            .action_target(actor, Action::ManagePrivilege, username, reason)
            .await?
        {
            Ok(account) => account,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let now = self.clock.now();
        let mut tx = self.begin().await?;
        let removed = passkeys::remove_all(&mut tx, account.id).await?;
        // A lost or stolen key may have signed someone in: every session
        // and application grant of the account ends with its passkeys.
        let ended = sessions::end_all_of(&mut tx, account.id, now).await?;
        let event = self.action(
            AuditEvent::PasskeysRemovedByOperator,
            actor,
            &account,
            format!(
                "{removed} passkey(s) removed, {ended} session(s) ended; reason: {}",
                reason.trim()
            ),
        );
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        self.wake_logout_notices();
        Ok(Ok((account, removed)))
    }
}
