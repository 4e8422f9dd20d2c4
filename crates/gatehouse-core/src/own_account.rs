//! A person's own account, signed in: where they are signed in (and
//! signing out there), the applications they are signed in to, their
//! recent activity, and changing their password.
//!
//! Everything here acts on the signed-in session's own account only: a
//! session id or client id from a form that is not the person's own is
//! refused, whatever it names.

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::oidc::client::ClientId;
use gatehouse_domain::password::{PasswordRefusal, normalise};
use gatehouse_domain::recovery::FieldError;
use gatehouse_domain::reset_link::VoidReason;
use gatehouse_domain::{Span, Timestamp, user_agent};
use gatehouse_store::oidc::grants;
use gatehouse_store::{
    AccountRecord, AuditFilter, SessionRecord, accounts, audit, reset_links, sessions,
};

use crate::hashing::Verification;
use crate::lockout::{Attempt, PasswordAgain, Wrong};
use crate::security_notices::SecurityNotice;
use crate::{Caller, Error, Gatehouse, Result};

/// How far back "Recent activity" goes.
pub const ACTIVITY_DAYS: i64 = 30;

/// One place the person is signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    /// The session as a form names it (its `sid`, never anything that
    /// could open it).
    pub sid: String,
    /// "Firefox on Windows".
    pub browser: String,
    /// The client address at sign-in.
    pub address: String,
    /// When it began, as people read it.
    pub started: String,
    /// The latest request, as people read it.
    pub last_used: String,
    /// Whether it is the browser asking.
    pub this_device: bool,
}

/// An application the person is signed in to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedInApplication {
    /// Its client id, for the form that signs out of it.
    pub client_id: String,
    /// Its name.
    pub name: String,
    /// When the person last signed in to it, as people read it.
    pub signed_in: String,
}

/// One line of "Recent activity".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityLine {
    /// When, in the service's time zone.
    pub when: String,
    /// What happened, in plain words.
    pub what: String,
    /// The client address, when the person's own browser did it.
    pub address: Option<String>,
    /// "Firefox on Windows", when the person's own browser did it.
    pub browser: Option<String>,
}

/// What the change-password form holds.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct PasswordChange {
    /// The current password.
    #[serde(default, rename = "current-password")]
    pub current: String,
    /// The new password.
    #[serde(default, rename = "password")]
    pub new: String,
    /// The new password again.
    #[serde(default, rename = "confirm-password")]
    pub confirm: String,
}

/// How a password change ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordChangeOutcome {
    /// Changed; this many other sessions were signed out.
    Changed {
        /// Other sessions signed out.
        others_signed_out: u64,
    },
    /// A field is wrong (nothing counted).
    Invalid(Vec<FieldError>),
    /// The current password is wrong: counted towards the lock.
    WrongCurrent {
        /// Attempts left before the lock.
        attempts_left: u32,
    },
    /// The account is locked (by this attempt, or before it).
    Locked {
        /// Until when.
        until: Timestamp,
    },
    /// Too many wrong passwords in all: the password no longer works.
    PasswordDisabled,
}

impl Gatehouse {
    /// The signed-in session's account.
    async fn own(&self, session: &SessionRecord) -> Result<AccountRecord> {
        let id = session.account_id.ok_or(Error::NoSuchAccount)?;
        accounts::by_id(&mut *self.read().await?, id)
            .await?
            .ok_or(Error::NoSuchAccount)
    }

    /// Where the person is signed in (live sessions, newest first) and the
    /// applications they are signed in to.
    pub async fn where_signed_in(
        &self,
        session: &SessionRecord,
    ) -> Result<(Vec<SignedIn>, Vec<SignedInApplication>)> {
        let account = self.own(session).await?;
        let now = self.clock.now();
        let mut db = self.read().await?;
        let policy = &self.settings.policy.session;
        let settings = &self.settings;
        let signed_in = sessions::of_account(&mut db, account.id)
            .await?
            .into_iter()
            .filter(|s| policy.is_alive(s.created_at, s.last_seen_at, now))
            .map(|s| SignedIn {
                sid: gatehouse_domain::oidc::session_sid(&s.id_hash),
                browser: user_agent::describe(s.user_agent.as_deref()),
                address: s.client_ip.clone().unwrap_or_else(|| "unknown".to_owned()),
                started: settings.when(s.created_at),
                last_used: settings.when(s.last_seen_at),
                this_device: s.id_hash == session.id_hash,
            })
            .collect();
        let applications = grants::held_by_account(&mut db, account.id, now)
            .await?
            .into_iter()
            .map(|g| SignedInApplication {
                client_id: g.client_id.to_string(),
                name: g.client_name,
                signed_in: settings.when(g.signed_in_at),
            })
            .collect();
        Ok((signed_in, applications))
    }

    /// Signs out the person's session named `sid` (one of their own, not
    /// this one); false if no other session of theirs has that name.
    pub async fn end_own_session(
        &self,
        session: &SessionRecord,
        sid: &str,
        caller: &Caller,
    ) -> Result<bool> {
        let account = self.own(session).await?;
        let target = sessions::of_account(&mut *self.read().await?, account.id)
            .await?
            .into_iter()
            .find(|s| {
                s.id_hash != session.id_hash
                    && gatehouse_domain::oidc::session_sid(&s.id_hash) == sid
            });
        let Some(target) = target else {
            return Ok(false);
        };
        let now = self.clock.now();
        let mut tx = self.begin().await?;
        sessions::end(&mut tx, &target.id_hash, now).await?;
        let mut event = self.event_about(AuditEvent::OwnSessionsEnded, &account, caller);
        event.detail = Some(format!(
            "signed out {} at {}",
            user_agent::describe(target.user_agent.as_deref()),
            target.client_ip.as_deref().unwrap_or("an unknown address")
        ));
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        self.wake_logout_notices();
        Ok(true)
    }

    /// Signs out every other session of the person; returns how many.
    pub async fn end_other_sessions(
        &self,
        session: &SessionRecord,
        caller: &Caller,
    ) -> Result<u64> {
        let account = self.own(session).await?;
        let now = self.clock.now();
        let mut tx = self.begin().await?;
        let ended = sessions::end_others(&mut tx, account.id, &session.id_hash, now).await?;
        let mut event = self.event_about(AuditEvent::OwnSessionsEnded, &account, caller);
        event.detail = Some(format!("{ended} other session(s) signed out"));
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        self.wake_logout_notices();
        Ok(ended)
    }

    /// Signs the person out of an application (its tokens are revoked, and
    /// it is told); false if they were not signed in to it.
    pub async fn sign_out_of_application(
        &self,
        session: &SessionRecord,
        client_id: &str,
        caller: &Caller,
    ) -> Result<bool> {
        let account = self.own(session).await?;
        let Some(client) = ClientId::parse(client_id) else {
            return Ok(false);
        };
        let now = self.clock.now();
        let mut tx = self.begin().await?;
        let ended = grants::end_for_client(&mut tx, account.id, &client, now).await?;
        if ended.is_empty() {
            return Ok(false);
        }
        let mut event = self.event_about(AuditEvent::ApplicationSignedOut, &account, caller);
        event.detail = Some(format!("{client}: {} grant(s) revoked", ended.len()));
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        self.wake_logout_notices();
        Ok(true)
    }

    /// The person's own security events of the last [`ACTIVITY_DAYS`] days,
    /// newest first, in plain words.
    pub async fn own_activity(&self, session: &SessionRecord) -> Result<Vec<ActivityLine>> {
        let account = self.own(session).await?;
        let now = self.clock.now();
        let rows = audit::list(
            &mut *self.read().await?,
            &AuditFilter {
                account_id: Some(account.id),
                since: Some(now.minus(Span::hours(24 * ACTIVITY_DAYS))),
                limit: 200,
                ..AuditFilter::default()
            },
        )
        .await?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let r = &row.record;
                let what = crate::activity::in_words(r, &self.settings)?;
                // Done by the person's own browser, or by someone else
                // (the helpdesk, the operator), whose address is theirs.
                let own = r.actor.is_none();
                Some(ActivityLine {
                    when: self.settings.when(r.at),
                    what,
                    address: r.client_ip.clone().filter(|_| own),
                    browser: own
                        .then(|| user_agent::describe(r.user_agent.as_deref()))
                        .filter(|_| r.client_ip.is_some()),
                })
            })
            .collect())
    }

    /// Changes the signed-in person's password. A wrong current password is
    /// a password guess: claimed against the lockout like any sign-in, with
    /// the same messages. On success the other sessions end, outstanding
    /// reset links are voided, and the person is told by email.
    pub async fn change_password(
        &self,
        session: &SessionRecord,
        input: &PasswordChange,
        caller: &Caller,
    ) -> Result<PasswordChangeOutcome> {
        let account = self.own(session).await?;
        let policy = &self.settings.policy;
        let mut errors = Vec::new();
        if input.current.is_empty() {
            errors.push(FieldError {
                field: "current-password",
                message: "Enter your current password".to_owned(),
            });
        }
        let new = normalise(&input.new);
        let context = self.password_context(&account);
        if let Err(refusal) = policy.password.check(&new, &input.confirm, &context) {
            errors.push(FieldError {
                field: if refusal == PasswordRefusal::Mismatch {
                    "confirm-password"
                } else {
                    "password"
                },
                message: refusal.message(),
            });
        }
        if !errors.is_empty() {
            return Ok(PasswordChangeOutcome::Invalid(errors));
        }

        let key = account.username_key();
        let now = self.clock.now();
        let doing = "the current password, changing it on My account";
        let (claim, permit) = match self
            .password_again(&account, &input.current, doing, caller, now)
            .await?
        {
            PasswordAgain::Right { claim, permit } => (claim, permit),
            PasswordAgain::Wrong(Wrong::AttemptsLeft(attempts_left)) => {
                return Ok(PasswordChangeOutcome::WrongCurrent { attempts_left });
            }
            PasswordAgain::Wrong(Wrong::Locked(until)) => {
                return Ok(PasswordChangeOutcome::Locked { until });
            }
            PasswordAgain::Wrong(Wrong::Disabled) => {
                return Ok(PasswordChangeOutcome::PasswordDisabled);
            }
        };
        // The right password: the claim is released whatever follows.
        let history = accounts::password_history(&mut *self.read().await?, account.id).await?;
        for old in history.iter().take(policy.password.history) {
            if let Verification::Match { .. } = self.hasher.verify(&permit, &new, Some(old)).await?
            {
                let mut tx = self.begin().await?;
                self.release_claim(&mut tx, &key, claim.ticket, Attempt::Password, now)
                    .await?;
                tx.commit().await?;
                return Ok(PasswordChangeOutcome::Invalid(vec![FieldError {
                    field: "password",
                    message: PasswordRefusal::Reused(policy.password.history).message(),
                }]));
            }
        }
        let hash = self.hasher.hash(&permit, &new).await?;
        drop(permit);
        let mut tx = self.begin().await?;
        self.release_claim(&mut tx, &key, claim.ticket, Attempt::Password, now)
            .await?;
        accounts::set_password(
            &mut tx,
            account.id,
            &hash,
            now,
            policy.password.history,
            None,
        )
        .await?;
        let voided =
            reset_links::void(&mut tx, account.id, VoidReason::PasswordChanged, now, None).await?;
        let others = sessions::end_others(&mut tx, account.id, &session.id_hash, now).await?;
        self.queue_security_notice(
            &mut tx,
            &account,
            &SecurityNotice::PasswordChanged,
            Some(caller),
            now,
        )
        .await?;
        let mut event = self.event_about(AuditEvent::PasswordChanged, &account, caller);
        event.detail = Some(format!(
            "{voided} reset link(s) voided; {others} other session(s) signed out"
        ));
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        self.wake_outbox();
        self.wake_logout_notices();
        Ok(PasswordChangeOutcome::Changed {
            others_signed_out: others,
        })
    }
}
