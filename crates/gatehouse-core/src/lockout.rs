//! The lockout, as passwords and second-factor codes both meet it: an
//! attempt is claimed against the username's counter before it is checked
//! (so parallel guesses cannot outrun the lock), a wrong one is recorded
//! with the lock it starts, and a right one takes its claim back.

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::lockout::{Claim, ClaimDecision};
use gatehouse_domain::password::normalise;
use gatehouse_domain::{Timestamp, UsernameKey};
use gatehouse_store::{AccountRecord, AuditRecord, CounterUpdate, attempts, audit, sessions};

use crate::hashing::{HashPermit, Verification};
use crate::security_notices::SecurityNotice;
use crate::{Caller, Error, Gatehouse, Result};

/// What is being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// A password.
    Password,
    /// A second-factor code (counted apart too: a right password does not
    /// forgive it).
    Code,
}

/// What a wrong password or code came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wrong {
    /// Counted: this many attempts are left before the lock.
    AttemptsLeft(u32),
    /// It locked the account until then.
    Locked(Timestamp),
    /// It used up the failures allowed in all: the password is disabled.
    Disabled,
}

impl Gatehouse {
    /// Claims one attempt on the counter `key`: the decision, and what was
    /// written (the claim's version, for a sign-in's one-statement success).
    pub(crate) async fn claim_attempt(
        &self,
        key: &UsernameKey,
        attempt: Attempt,
        now: Timestamp,
    ) -> Result<(ClaimDecision, CounterUpdate)> {
        let policy = &self.settings.policy.lockout;
        let mut decision = None;
        let update = attempts::update(&mut *self.write().await?, key, now, &mut |counter| {
            let d = match attempt {
                Attempt::Password => counter.claim(now, policy),
                Attempt::Code => counter.claim_code(now, policy),
            };
            decision = Some(d);
            match d {
                ClaimDecision::Check(claim) => Some(claim.next),
                _ => None,
            }
        })
        .await?;
        let decision = decision
            .ok_or_else(|| Error::Internal("an attempt's claim came to no decision".to_owned()))?;
        Ok((decision, update))
    }

    /// Records a wrong password or code whose attempt was claimed as
    /// `claim`: its `failed` audit record, and the lock or the disabling it
    /// brings about. A lock on `account` (not on a remembered browser's own
    /// counter) also makes its sessions pass the second factor again.
    pub(crate) async fn record_wrong(
        &self,
        failed: &AuditRecord,
        claim: &Claim,
        attempt: Attempt,
        account: Option<i64>,
    ) -> Result<Wrong> {
        let policy = &self.settings.policy.lockout;
        self.audit(failed).await?;
        if let Some(until) = claim.locks_until_if_wrong {
            let locked = AuditRecord {
                event: AuditEvent::AccountLocked,
                detail: Some(format!(
                    "{} consecutive failures{}; locked until {}",
                    policy.threshold,
                    if attempt == Attempt::Code {
                        " (second factor)"
                    } else {
                        ""
                    },
                    until.rfc3339()
                )),
                ..failed.clone()
            };
            self.record_lock(account, &locked, until).await?;
            return Ok(Wrong::Locked(until));
        }
        if claim.disables_if_wrong && attempt == Attempt::Password {
            self.audit(&AuditRecord {
                event: AuditEvent::PasswordDisabled,
                ..failed.clone()
            })
            .await?;
            return Ok(Wrong::Disabled);
        }
        Ok(Wrong::AttemptsLeft(claim.attempts_left_if_wrong))
    }

    /// Records that an account was locked, and makes its sessions pass the
    /// second factor again before their next privileged action, together:
    /// someone has been guessing, and a console session that passed before
    /// must not carry on as if nothing happened. Staff sessions never pass a
    /// second factor, so a lock caused by someone else's guesses does not
    /// sign their owner out.
    /// The owner is told by email, once per lock (attempts while it lasts
    /// are refused before they get here).
    async fn record_lock(
        &self,
        account_id: Option<i64>,
        locked: &AuditRecord,
        until: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        if let Some(id) = account_id {
            sessions::forget_second_factor_passes(&mut tx, id).await?;
            if let Some(account) = gatehouse_store::accounts::by_id(&mut tx, id).await? {
                let caller = Caller::new(
                    locked.client_ip.as_deref().unwrap_or_default(),
                    locked.user_agent.as_deref(),
                );
                self.queue_security_notice(
                    &mut tx,
                    &account,
                    &SecurityNotice::Locked { until },
                    Some(&caller),
                    locked.at,
                )
                .await?;
            }
        }
        audit::record(&mut tx, locked).await?;
        tx.commit().await?;
        self.metrics.lock();
        self.wake_outbox();
        Ok(())
    }

    /// Takes back the claim with `ticket` after a right password or code,
    /// reading the counter afresh so that attempts claimed since stay
    /// counted; with `also` written in the same transaction.
    pub(crate) async fn release_claim(
        &self,
        tx: &mut gatehouse_store::Tx,
        key: &UsernameKey,
        ticket: u64,
        attempt: Attempt,
        now: Timestamp,
    ) -> Result<()> {
        let policy = &self.settings.policy.lockout;
        let counter = attempts::read_for_update(tx, key).await?;
        let released = match attempt {
            Attempt::Password => counter.after_success(ticket, policy),
            Attempt::Code => counter.after_code_success(ticket, policy),
        };
        attempts::set(tx, key, &released, now).await?;
        Ok(())
    }

    /// Asks a signed-in person for their password again (to change it, or
    /// to remove a passkey): `typed` is checked as `account`'s password and
    /// counted against the lockout like any sign-in, a wrong one a guess.
    /// A refusal is audited as a sign-in's is, its detail saying `doing`.
    /// On success the claim is still held (release it with what follows)
    /// and so is the hashing permit.
    pub(crate) async fn password_again(
        &self,
        account: &AccountRecord,
        typed: &str,
        doing: &str,
        caller: &Caller,
        now: Timestamp,
    ) -> Result<PasswordAgain> {
        let key = account.username_key();
        let permit = self.hasher.permit().await?;
        let (decision, _) = self.claim_attempt(&key, Attempt::Password, now).await?;
        let mut failed = self.event_about(AuditEvent::SignInFailed, account, caller);
        failed.detail = Some(doing.to_owned());
        let claim = match decision {
            ClaimDecision::Check(claim) => claim,
            ClaimDecision::Locked { until } => {
                failed.event = AuditEvent::SignInRefusedLocked;
                self.audit(&failed).await?;
                return Ok(PasswordAgain::Wrong(Wrong::Locked(until)));
            }
            ClaimDecision::Disabled => {
                failed.event = AuditEvent::SignInRefusedDisabled;
                self.audit(&failed).await?;
                return Ok(PasswordAgain::Wrong(Wrong::Disabled));
            }
        };
        let typed = normalise(typed);
        let verified = if typed.chars().count() > self.settings.policy.password.max_length {
            Verification::NoMatch
        } else {
            self.hasher
                .verify(&permit, &typed, account.password_hash.as_deref())
                .await?
        };
        if matches!(verified, Verification::Match { .. }) {
            return Ok(PasswordAgain::Right { claim, permit });
        }
        drop(permit);
        let wrong = self
            .record_wrong(&failed, &claim, Attempt::Password, Some(account.id))
            .await?;
        Ok(PasswordAgain::Wrong(wrong))
    }
}

/// What asking for the password again came to.
pub(crate) enum PasswordAgain {
    /// The right password: the claim to release, and the hashing permit.
    Right {
        /// The attempt's claim on the counter.
        claim: Claim,
        /// The permit the password was checked under.
        permit: HashPermit,
    },
    /// Wrong (counted), locked, or the password disabled.
    Wrong(Wrong),
}
