//! Log in: username and password, with the lockout.
//!
//! The order of steps is the point (docs/design.md invariants 1, 3 and 6):
//! 1. wait for admission to hashing, so a flood is told "busy" instead of queueing;
//! 2. claim the attempt in the database (compare-and-set), which counts it as
//!    a failure before anything is checked, so parallel guesses cannot
//!    outrun the lock;
//! 3. check the password against the account's hash, or against a dummy
//!    hash when there is no such account or no password, so unknown
//!    usernames take as long and get the same messages, lock included;
//! 4. on success, forgive the attempt, and start a new session (new id).

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::lockout::{AttemptCounter, ClaimDecision};
use gatehouse_domain::password::normalise;
use gatehouse_domain::recovery::FieldError;
use gatehouse_domain::{SecretToken, Timestamp, TokenHash, UsernameKey};
use gatehouse_store::{SignInSuccess, accounts, attempts, audit, sessions};

use crate::Caller;
use crate::hashing::Verification;
use crate::lockout::{Attempt, Wrong};
use crate::metrics::SignInMetric;
use crate::sessions::NewSession;
use crate::{Error, Gatehouse, Result, reference};

/// What was typed into the log in form.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct SignInInput {
    /// Username.
    #[serde(default)]
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: String,
}

/// How a sign-in attempt ended.
#[derive(Debug)]
pub enum SignInOutcome {
    /// A field was left empty: nothing was counted.
    Invalid(Vec<FieldError>),
    /// Signed in: a new session.
    SignedIn {
        /// The new session (the old one, if any, is gone).
        session: Box<NewSession>,
        /// A helpdesk or admin account: the console (after the second factor) awaits.
        privileged: bool,
        /// With device cookies on: the cookie that makes this browser a
        /// remembered one (set again on every sign-in, to renew it).
        device: Option<SecretToken>,
        /// With new-browser notices on: the id to give a browser that had
        /// none, so that its next sign-in is known.
        browser: Option<SecretToken>,
    },
    /// Wrong username or password.
    Failed {
        /// Attempts left before the lock.
        attempts_left: u32,
    },
    /// The account is locked.
    Locked {
        /// Until when.
        until: Timestamp,
        /// Whether this attempt is the one that locked it.
        just_now: bool,
    },
    /// Too many failures in all: the password must be reset.
    Disabled,
    /// The right password, but an administrator has disabled the account.
    AccountDisabled,
}

/// The long-lived cookies a browser sends with a sign-in.
#[derive(Debug, Clone, Copy, Default)]
pub struct BrowserCookies<'a> {
    /// Its device cookie (used only with device cookies on).
    pub device: Option<&'a SecretToken>,
    /// Its browser id (used only with new-browser notices on).
    pub browser: Option<&'a SecretToken>,
}

impl Gatehouse {
    /// Tries to sign in. `previous_session` is ended on success (a new
    /// session id at sign-in).
    pub async fn sign_in(
        &self,
        input: &SignInInput,
        caller: &Caller,
        previous_session: Option<&TokenHash>,
        cookies: BrowserCookies<'_>,
    ) -> Result<SignInOutcome> {
        let result = self
            .check_sign_in(input, caller, previous_session, cookies)
            .await;
        // Counted once the outcome is decided and written: a sign-in
        // abandoned half-way (its client gone, its deadline passed) is not.
        self.metrics.sign_in(match &result {
            Ok(SignInOutcome::SignedIn { .. }) => SignInMetric::Success,
            Ok(SignInOutcome::Failed { .. }) => SignInMetric::WrongPassword,
            Ok(SignInOutcome::Locked { just_now: true, .. }) => SignInMetric::WrongPassword,
            Ok(SignInOutcome::Locked {
                just_now: false, ..
            }) => SignInMetric::Locked,
            Ok(SignInOutcome::Disabled) => SignInMetric::PasswordDisabled,
            Ok(SignInOutcome::AccountDisabled) => SignInMetric::AccountDisabled,
            Ok(SignInOutcome::Invalid(_)) => SignInMetric::Invalid,
            Err(Error::Busy) => SignInMetric::Busy,
            Err(_) => SignInMetric::Error,
        });
        result
    }

    async fn check_sign_in(
        &self,
        input: &SignInInput,
        caller: &Caller,
        previous_session: Option<&TokenHash>,
        cookies: BrowserCookies<'_>,
    ) -> Result<SignInOutcome> {
        let device = cookies.device;
        let mut errors = Vec::new();
        let typed = input.username.trim();
        if typed.is_empty() {
            errors.push(FieldError {
                field: "username",
                message: "Enter your username".to_owned(),
            });
        } else if typed.chars().count() > gatehouse_domain::account::USERNAME_MAX {
            errors.push(FieldError {
                field: "username",
                message: format!(
                    "Username must be {} characters or fewer",
                    gatehouse_domain::account::USERNAME_MAX
                ),
            });
        }
        if input.password.is_empty() {
            errors.push(FieldError {
                field: "password",
                message: "Enter your password".to_owned(),
            });
        }
        if !errors.is_empty() {
            return Ok(SignInOutcome::Invalid(errors));
        }
        let key = UsernameKey::from_typed(typed);
        let password = normalise(&input.password);
        let policy = &self.settings.policy;

        let permit = self.hasher.permit().await?;
        let now = self.clock.now();
        // OWASP's device cookies: a browser that has signed in to this
        // username before is counted on a counter of its own, so guesses
        // from anywhere else lock the username for everyone but it. A
        // counter exists (claims > 0) only if this service created it at a
        // successful sign-in, so an invented cookie counts as unknown.
        let remembered = match device.filter(|_| self.settings.device_cookies) {
            Some(token) => {
                let own = key.for_device(&token.hash());
                (attempts::read(&mut *self.read().await?, &own).await?.claims > 0).then_some(own)
            }
            None => None,
        };
        let counter_key = remembered.clone().unwrap_or_else(|| key.clone());
        // The claim (on the writer) and the account (on a reader) are
        // independent, so they are read at once: the sign-in reaches the
        // hasher one database round trip sooner.
        let account_read = async {
            let found = accounts::by_username(&mut *self.read().await?, &key).await?;
            Ok::<_, crate::Error>(found)
        };
        let ((decision, claimed), account) = tokio::try_join!(
            self.claim_attempt(&counter_key, Attempt::Password, now),
            account_read,
        )?;
        let mut event = self.event(AuditEvent::SignInFailed);
        event.client_ip = Some(caller.ip.clone());
        event.user_agent = caller.user_agent.clone();
        match &account {
            Some(a) => {
                event.account_id = Some(a.id);
                event.username = Some(a.username.to_string());
            }
            None => {
                event.detail = Some(format!(
                    "unknown username (ref {})",
                    reference(key.as_str())
                ))
            }
        }

        let claim = match decision {
            ClaimDecision::Check(claim) => claim,
            ClaimDecision::Locked { until } => {
                event.event = AuditEvent::SignInRefusedLocked;
                self.audit(&event).await?;
                return Ok(SignInOutcome::Locked {
                    until,
                    just_now: false,
                });
            }
            ClaimDecision::Disabled => {
                event.event = AuditEvent::SignInRefusedDisabled;
                self.audit(&event).await?;
                return Ok(SignInOutcome::Disabled);
            }
        };

        // A password longer than any that can be set cannot be right: it is
        // counted, but not hashed (CVE-2013-1443's long-password DoS).
        let too_long = password.chars().count() > policy.password.max_length;
        let verification = if too_long {
            Verification::NoMatch
        } else {
            let stored = account.as_ref().and_then(|a| a.password_hash.as_deref());
            self.hasher.verify(&permit, &password, stored).await?
        };
        // The permit goes back as soon as the hash is done (unless a rehash
        // needs it), so that the next sign-in can be admitted while this one
        // writes its outcome: held to the end, it left a core idle for a
        // tenth of the time at saturation (BENCHMARKS.md).
        let permit = matches!(verification, Verification::Match { rehash: true }).then_some(permit);

        let (Verification::Match { rehash }, Some(account)) = (verification, account) else {
            // A remembered browser's own counter locks only that browser.
            let locked_account = event.account_id.filter(|_| remembered.is_none());
            return Ok(
                match self
                    .record_wrong(&event, &claim, Attempt::Password, locked_account)
                    .await?
                {
                    Wrong::AttemptsLeft(attempts_left) => SignInOutcome::Failed { attempts_left },
                    Wrong::Locked(until) => SignInOutcome::Locked {
                        until,
                        just_now: true,
                    },
                    Wrong::Disabled => SignInOutcome::Disabled,
                },
            );
        };

        // The right password: the claim is released whatever follows.
        if account.disabled_at.is_some() {
            // Only someone who knows the password learns that the account
            // is disabled.
            let mut tx = self.begin().await?;
            self.release_claim(&mut tx, &counter_key, claim.ticket, Attempt::Password, now)
                .await?;
            event.event = AuditEvent::SignInRefusedAccountDisabled;
            audit::record(&mut tx, &event).await?;
            tx.commit().await?;
            return Ok(SignInOutcome::AccountDisabled);
        }
        let session = self.fresh_session(Some(account.id), now, caller)?;
        let stored = session.stored();
        event.event = AuditEvent::SignInSucceeded;
        // Usually nothing else has touched the counter since the claim, and
        // everything is written in one statement.
        let recorded = match (claimed.after, claimed.version) {
            (Some(counter), Some(claimed_version)) => {
                attempts::record_sign_in_success(
                    &mut *self.write().await?,
                    &SignInSuccess {
                        counter_key: &counter_key,
                        claimed_version,
                        counter: &counter.after_success(claim.ticket, &policy.lockout),
                        account_id: account.id,
                        now,
                        previous_session,
                        session: &stored,
                        audit: &event,
                    },
                )
                .await?
            }
            _ => false,
        };
        if !recorded {
            // Another attempt claimed meanwhile: read the counter afresh,
            // so that attempt stays counted.
            let mut tx = self.begin().await?;
            self.release_claim(&mut tx, &counter_key, claim.ticket, Attempt::Password, now)
                .await?;
            accounts::record_sign_in(&mut tx, account.id, now).await?;
            if let Some(previous) = previous_session {
                sessions::end(&mut tx, previous, now).await?;
            }
            sessions::create(&mut tx, &stored).await?;
            audit::record(&mut tx, &event).await?;
            tx.commit().await?;
        } else if let Some(previous) = previous_session {
            // The one statement ended the browser's session before this
            // one; what applications were granted in it ends with it.
            let mut tx = self.begin().await?;
            gatehouse_store::oidc::grants::end_for_session(&mut tx, previous, now).await?;
            tx.commit().await?;
        }
        if previous_session.is_some() {
            self.wake_logout_notices();
        }

        if let (true, Some(old), Some(permit)) = (rehash, &account.password_hash, &permit) {
            // Parameters were raised since this password was set: store a
            // stronger hash now that the password is at hand.
            let new = self.hasher.hash(permit, &password).await?;
            let mut tx = self.begin().await?;
            accounts::upgrade_password_hash(&mut tx, account.id, old, &new).await?;
            tx.commit().await?;
        }
        let privileged = account.role != gatehouse_domain::Role::Staff;
        let device = match (self.settings.device_cookies, remembered, device) {
            (false, ..) => None,
            (true, Some(_), Some(token)) => Some(token.clone()),
            (true, ..) => {
                let token = SecretToken::generate()?;
                attempts::update(
                    &mut *self.write().await?,
                    &key.for_device(&token.hash()),
                    now,
                    &mut |counter| {
                        Some(AttemptCounter {
                            claims: counter.claims.max(1),
                            ..counter
                        })
                    },
                )
                .await?;
                Some(token)
            }
        };
        let browser = self
            .note_browser(&account, cookies.browser, caller, now)
            .await?;
        Ok(SignInOutcome::SignedIn {
            session: Box::new(session),
            privileged,
            device,
            browser,
        })
    }

    /// With new-browser notices on, notes the browser a sign-in came from
    /// and tells the person when their account had signed in before but
    /// never from it; returns the id to give a browser that had none.
    pub(crate) async fn note_browser(
        &self,
        account: &gatehouse_store::AccountRecord,
        browser: Option<&SecretToken>,
        caller: &Caller,
        now: Timestamp,
    ) -> Result<Option<SecretToken>> {
        if !self.settings.new_browser_notices {
            return Ok(None);
        }
        let (id, fresh) = match browser {
            Some(id) => (id.clone(), false),
            None => (SecretToken::generate()?, true),
        };
        let mut tx = self.begin().await?;
        let new = gatehouse_store::browsers::note(&mut tx, account.id, &id.hash(), now).await?;
        // The very first sign-in of an account has no "before" to differ from.
        if new && account.last_sign_in_at.is_some() {
            self.queue_security_notice(
                &mut tx,
                account,
                &crate::security_notices::SecurityNotice::NewBrowser,
                Some(caller),
                now,
            )
            .await?;
            let event = self.event_about(AuditEvent::NewBrowserSignIn, account, caller);
            audit::record(&mut tx, &event).await?;
        }
        tx.commit().await?;
        self.wake_outbox();
        Ok(fresh.then_some(id))
    }
}
