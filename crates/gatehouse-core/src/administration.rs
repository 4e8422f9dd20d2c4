//! What the helpdesk, administrators and the operator do to an account:
//! disable and enable it, end its sessions, lift its lock early. Each
//! checks its [`Actor`] first (see [`crate::actor`]) and is audited with
//! the actor and the reason.

use gatehouse_domain::UsernameKey;
use gatehouse_domain::audit::AuditEvent;
use gatehouse_store::{AccountRecord, accounts, attempts, audit, sessions};

use crate::{Action, Actor, Error, Gatehouse, Result};

/// Why an administrative action on an account was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionRefusal {
    /// A reason is required.
    NoReason,
    /// The account is already in that state.
    Unchanged,
    /// The operator has not allowed early unlocking (the seed's rule).
    NotAllowed,
    /// An administrator cannot disable their own account.
    OwnAccount,
    /// Only helpdesk and admin accounts have a second factor.
    NotPrivileged,
    /// The account's personal details were erased: it cannot be used again.
    Erased,
}

impl std::fmt::Display for ActionRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ActionRefusal::NoReason => "give a reason",
            ActionRefusal::Unchanged => "the account is already like that",
            ActionRefusal::NotAllowed => {
                "nobody can lift a lock early: the operator setting GATEHOUSE_ALLOW_EARLY_UNLOCK is off"
            }
            ActionRefusal::OwnAccount => "you cannot disable your own account",
            ActionRefusal::NotPrivileged => {
                "only helpdesk and admin accounts have a second factor: grant the role first"
            }
            ActionRefusal::Erased => {
                "this account's personal details were erased: it cannot be enabled again"
            }
        })
    }
}

impl Gatehouse {
    /// The account an administrative action names, once a reason is given
    /// and the actor is allowed to do `action` to it.
    pub(crate) async fn action_target(
        &self,
        actor: &Actor,
        action: Action,
        username: &str,
        reason: &str,
    ) -> Result<std::result::Result<AccountRecord, ActionRefusal>> {
        let Some(account) =
            accounts::by_username(&mut *self.read().await?, &UsernameKey::from_typed(username))
                .await?
        else {
            return Err(Error::NoSuchAccount);
        };
        self.authorise(actor, action, Some(&account)).await?;
        if reason.trim().is_empty() {
            return Ok(Err(ActionRefusal::NoReason));
        }
        Ok(Ok(account))
    }

    /// Disables or enables an account. Disabling ends its sessions; a
    /// disabled account cannot sign in, set a password, or be matched by
    /// recovery. Audited with the actor and the reason.
    pub async fn set_account_disabled(
        &self,
        username: &str,
        disabled: bool,
        actor: &Actor,
        reason: &str,
    ) -> Result<std::result::Result<AccountRecord, ActionRefusal>> {
        let account = match self
            .action_target(actor, Action::DisableAccount, username, reason)
            .await?
        {
            Ok(account) => account,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if account.disabled_at.is_some() == disabled {
            return Ok(Err(ActionRefusal::Unchanged));
        }
        if !disabled && account.erased_at.is_some() {
            return Ok(Err(ActionRefusal::Erased));
        }
        if disabled && actor.account_id() == Some(account.id) {
            return Ok(Err(ActionRefusal::OwnAccount));
        }
        let now = self.clock.now();
        let kind = if disabled {
            AuditEvent::AccountDisabled
        } else {
            AuditEvent::AccountEnabled
        };
        let mut tx = self.begin().await?;
        accounts::set_disabled(&mut tx, account.id, disabled.then_some(now)).await?;
        let detail = format!("reason: {}", reason.trim());
        audit::record(&mut tx, &self.action(kind, actor, &account, detail)).await?;
        tx.commit().await?;
        let account = accounts::by_id(&mut *self.read().await?, account.id)
            .await?
            .ok_or(Error::NoSuchAccount)?;
        Ok(Ok(account))
    }

    /// Lifts a lock before it ends: refused unless the operator has turned
    /// on `GATEHOUSE_ALLOW_EARLY_UNLOCK`. Audited with the actor and reason.
    pub async fn lift_lock(
        &self,
        username: &str,
        actor: &Actor,
        reason: &str,
    ) -> Result<std::result::Result<AccountRecord, ActionRefusal>> {
        let account = match self
            .action_target(actor, Action::LiftLock, username, reason)
            .await?
        {
            Ok(account) => account,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if !self.settings.allow_early_unlock {
            return Ok(Err(ActionRefusal::NotAllowed));
        }
        let key = account.username_key();
        let now = self.clock.now();
        let Some(until) = attempts::read(&mut *self.read().await?, &key)
            .await?
            .locked_at(now)
        else {
            return Ok(Err(ActionRefusal::Unchanged));
        };
        attempts::lift_lock(&mut *self.write().await?, &key, now).await?;
        let detail = format!(
            "lock until {} lifted early; reason: {}",
            until.rfc3339(),
            reason.trim()
        );
        self.audit(&self.action(AuditEvent::LockLifted, actor, &account, detail))
            .await?;
        Ok(Ok(account))
    }

    /// Ends every session of an account (a lost or shared device), audited.
    pub async fn end_sessions(
        &self,
        username: &str,
        actor: &Actor,
        reason: &str,
    ) -> Result<std::result::Result<(AccountRecord, u64), ActionRefusal>> {
        let account = match self
            .action_target(actor, Action::EndSessions, username, reason)
            .await?
        {
            Ok(account) => account,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let now = self.clock.now();
        let mut tx = self.begin().await?;
        let ended = sessions::end_all_of(&mut tx, account.id, now).await?;
        let detail = format!("{ended} session(s) ended; reason: {}", reason.trim());
        audit::record(
            &mut tx,
            &self.action(AuditEvent::SessionsEnded, actor, &account, detail),
        )
        .await?;
        tx.commit().await?;
        Ok(Ok((account, ended)))
    }
}
