//! The reset page: from the link in the email to a new password.
//!
//! Opening the link (a GET) never spends it: mail scanners open links. The
//! GET moves the token out of the address bar into a short-lived cookie
//! signed with the service's key ([`Gatehouse::reset_cookie`]) and
//! redirects to `/reset`. Opening a link writes nothing (only an unknown
//! one is recorded, towards the per-client cap on guesses): a flood of
//! opens used to write a session row each. Only the POST that sets the
//! password spends the link, with a conditional update in the same
//! transaction as the password change, so exactly one of any number of
//! simultaneous submissions wins.
//!
//! A helpdesk or admin account with an authenticator must also type a code
//! from it, and one whose second factor is a passkey must use the passkey
//! first: a reset link proves the mailbox, not the person, and must not let
//! whoever reads it lock the real person out of their own password.

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::password::{PasswordRefusal, normalise};
use gatehouse_domain::recovery::FieldError;
use gatehouse_domain::reset_link::{LinkPurpose, LinkStatus, VoidReason};
use gatehouse_domain::{SecretToken, Span, Timestamp, UsernameKey};
use gatehouse_store::{
    AccountRecord, accounts, attempts, audit, outbox, reset_links, second_factor, sessions,
};

use crate::Caller;
use crate::emails::Notice;
use crate::hashing::Verification;
use crate::keys::Purpose;
use crate::privileged::CodeCheck;
use crate::{Gatehouse, Result};

/// How long an opened link waits in its cookie for its form.
pub const RESET_STATE_LIFETIME: Span = Span::hours(1);

/// Why a link cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkProblem {
    /// No such link (mistyped, truncated, or from another system).
    Unknown,
    /// Its lifetime has passed.
    Expired,
    /// It has already been used.
    Used,
    /// A newer request replaced it.
    Replaced,
    /// The password was changed since it was sent.
    PasswordChanged,
    /// The email address was changed since it was sent.
    EmailChanged,
    /// An administrator has disabled the account.
    AccountDisabled,
}

impl LinkProblem {
    /// The problem with a link in this status, if it has one.
    pub fn of(status: LinkStatus) -> Option<Self> {
        match status {
            LinkStatus::Usable => None,
            LinkStatus::Expired => Some(LinkProblem::Expired),
            LinkStatus::Used => Some(LinkProblem::Used),
            LinkStatus::Voided(VoidReason::Replaced) => Some(LinkProblem::Replaced),
            LinkStatus::Voided(VoidReason::PasswordChanged) => Some(LinkProblem::PasswordChanged),
            LinkStatus::Voided(VoidReason::EmailChanged) => Some(LinkProblem::EmailChanged),
            LinkStatus::Voided(VoidReason::AccountDisabled) => Some(LinkProblem::AccountDisabled),
        }
    }
}

/// What opening a reset link found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkLookup {
    /// A link, in any state (the page after the redirect says which).
    Found(i64),
    /// No such link.
    Unknown,
    /// Refused: too many unknown links from this client address this hour.
    TooManyGuesses,
}

/// A link held in the visitor's reset cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldLink {
    /// The link's number.
    pub id: i64,
    /// This browser has used the account's passkey since opening the link
    /// (for an account whose reset asks for one).
    pub passkey_passed: bool,
}

/// What a reset of an account asks for besides the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResetFactor {
    /// Nothing (a staff account, or a privileged one without a second factor yet).
    None,
    /// A code from the authenticator app, or a recovery code.
    Code,
    /// One of the account's passkeys: it has no authenticator app, or the
    /// operator accepts only passkeys.
    Passkey,
}

/// What the reset page shows.
#[derive(Debug, Clone)]
pub enum ResetPage {
    /// The form.
    Form {
        /// The account has never had a password (first-time access).
        first_time: bool,
        /// The account is locked until then: no reset can complete before.
        locked_until: Option<Timestamp>,
        /// An operator's set-up link: an authenticator app is set up next.
        set_up: bool,
        /// The account has an authenticator: a code from it is asked for too.
        needs_code: bool,
        /// The account's second factor is a passkey, and this browser has
        /// not used it yet: the password form waits for it.
        needs_passkey: bool,
    },
    /// The link cannot be used.
    Unusable(LinkProblem),
}

/// What was typed into the reset form.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ResetInput {
    /// Username, as in the email.
    #[serde(default)]
    pub username: String,
    /// New password.
    #[serde(default)]
    pub password: String,
    /// New password again.
    #[serde(default, rename = "confirm-password")]
    pub confirm_password: String,
    /// A code from the authenticator app (helpdesk and admin accounts).
    #[serde(default)]
    pub code: String,
}

/// How a reset submission ended.
#[derive(Debug, Clone)]
pub enum ResetOutcome {
    /// The password is set; every session of the account has ended.
    Done {
        /// Through a set-up link: the person sets up an authenticator app
        /// at their next sign-in.
        set_up: bool,
    },
    /// Something typed was refused; the link is unspent.
    Invalid(Vec<FieldError>),
    /// The account is locked: nothing changed, the link is unspent.
    Locked {
        /// Until when.
        until: Timestamp,
    },
    /// The link cannot be used.
    Unusable(LinkProblem),
}

impl Gatehouse {
    /// Looks up the link a token names (in any state), for the session,
    /// throttling guesses: once a client address has opened
    /// `link_guesses_per_client_per_hour` unknown links within the hour,
    /// every link it opens is refused, known ones included, since answering
    /// a guess that hits differently would leave the guessing open.
    pub async fn open_reset_link(&self, token_text: &str, caller: &Caller) -> Result<LinkLookup> {
        let now = self.clock.now();
        let cap = self
            .settings
            .policy
            .recovery
            .link_guesses_per_client_per_hour;
        // Only reads, unless the link is unknown or the address is over
        // its cap: opening a known link takes no write lock and writes
        // nothing, however often it is opened.
        let mut db = self.read().await?;
        let found = match SecretToken::parse(token_text) {
            Some(token) => reset_links::by_hash(&mut db, &token.hash()).await?,
            None => None,
        };
        let guesses = audit::count_from(
            &mut db,
            &caller.ip,
            AuditEvent::ResetLinkUnknown,
            now.minus(Span::hours(1)),
        )
        .await?;
        drop(db);
        let mut event = self.event(AuditEvent::ResetLinkUnknown);
        event.client_ip = Some(caller.ip.clone());
        event.user_agent = caller.user_agent.clone();
        if guesses >= cap {
            event.event = AuditEvent::ResetLinkRefusedClientLimit;
            event.detail = Some(format!(
                "{guesses} unknown links opened from this address in the last hour"
            ));
            self.audit(&event).await?;
            return Ok(LinkLookup::TooManyGuesses);
        }
        match found {
            Some(link) => Ok(LinkLookup::Found(link.id)),
            None => {
                self.audit(&event).await?;
                Ok(LinkLookup::Unknown)
            }
        }
    }

    /// The value of the cookie that carries an opened link (or the fact
    /// that it was unknown: `None`) to its form: the link's number and how
    /// long it waits, signed with the service's key so that it cannot be
    /// made up or stretched.
    pub fn reset_cookie(&self, link: Option<i64>) -> String {
        // An unknown token is carried as link 0, which never exists, so
        // the page after the redirect says the link is not valid.
        self.held_cookie(link.unwrap_or(0), false)
    }

    /// The reset cookie once this browser has used the account's passkey:
    /// it says so, under the same signature, for as long as a fresh one.
    pub fn reset_cookie_after_passkey(&self, link: i64) -> String {
        self.held_cookie(link, true)
    }

    fn held_cookie(&self, link: i64, passkey_passed: bool) -> String {
        let until = self.clock.now().plus(RESET_STATE_LIFETIME).unix();
        let held = if passkey_passed {
            format!("{link}.{until}.passkey")
        } else {
            format!("{link}.{until}")
        };
        let tag = self.sign(Purpose::ResetLink, held.as_bytes());
        format!("{held}.{tag}")
    }

    /// The link a reset cookie carries, if it is this service's own and
    /// has not timed out.
    pub async fn held_link(&self, cookie: &str) -> Result<Option<HeldLink>> {
        let Some((held, tag)) = cookie.rsplit_once('.') else {
            return Ok(None);
        };
        let mut parts = held.split('.');
        let (Some(id), Some(until), passed) = (parts.next(), parts.next(), parts.next()) else {
            return Ok(None);
        };
        let passkey_passed = match passed {
            None => false,
            Some("passkey") => true,
            Some(_) => return Ok(None),
        };
        let (Ok(link), Ok(until)) = (id.parse::<i64>(), until.parse::<i64>()) else {
            return Ok(None);
        };
        if parts.next().is_some() || self.clock.now().unix() >= until {
            return Ok(None);
        }
        Ok(self
            .verify(Purpose::ResetLink, held.as_bytes(), tag)
            .await?
            .then_some(HeldLink {
                id: link,
                passkey_passed,
            }))
    }

    pub(crate) async fn link_and_account(
        &self,
        link_id: i64,
    ) -> Result<Result<(gatehouse_store::ResetLinkRow, AccountRecord), LinkProblem>> {
        let mut db = self.read().await?;
        let Some(link) = reset_links::by_id(&mut db, link_id).await? else {
            return Ok(Err(LinkProblem::Unknown));
        };
        if let Some(problem) = LinkProblem::of(link.record.status(self.clock.now())) {
            return Ok(Err(problem));
        }
        match accounts::by_id(&mut db, link.account_id).await? {
            Some(account) if account.disabled_at.is_some() => Ok(Err(LinkProblem::AccountDisabled)),
            Some(account) => Ok(Ok((link, account))),
            None => Ok(Err(LinkProblem::Unknown)),
        }
    }

    /// What the reset page shows for a held link.
    pub async fn reset_page(&self, held: HeldLink) -> Result<ResetPage> {
        let (link, account) = match self.link_and_account(held.id).await? {
            Ok(found) => found,
            Err(problem) => return Ok(ResetPage::Unusable(problem)),
        };
        let counter = attempts::read(&mut *self.read().await?, &account.username_key()).await?;
        let factor = self.reset_factor(&account).await?;
        Ok(ResetPage::Form {
            first_time: account.password_hash.is_none(),
            locked_until: counter.locked_at(self.clock.now()),
            set_up: link.purpose == LinkPurpose::SetUp,
            needs_code: factor == ResetFactor::Code,
            needs_passkey: factor == ResetFactor::Passkey && !held.passkey_passed,
        })
    }

    /// What a reset of `account` asks for besides the password: for a
    /// helpdesk or admin account, the second factor it has. A passkey when
    /// it has one and either no authenticator app or an operator who
    /// accepts only passkeys; otherwise the app's code, if it has the app.
    async fn reset_factor(&self, account: &AccountRecord) -> Result<ResetFactor> {
        if account.role == gatehouse_domain::Role::Staff {
            return Ok(ResetFactor::None);
        }
        let app = second_factor::get(&mut *self.read().await?, account.id)
            .await?
            .is_some_and(|f| f.confirmed_at.is_some());
        let passkey = self.has_passkeys(account.id).await?;
        Ok(if passkey && (!app || self.passkey_only()) {
            ResetFactor::Passkey
        } else if app {
            ResetFactor::Code
        } else {
            ResetFactor::None
        })
    }

    /// Sets a new password through a held link.
    pub async fn complete_reset(
        &self,
        held: HeldLink,
        input: &ResetInput,
        caller: &Caller,
    ) -> Result<ResetOutcome> {
        let link_id = held.id;
        let (link, account) = match self.link_and_account(link_id).await? {
            Ok(found) => found,
            Err(problem) => return Ok(ResetOutcome::Unusable(problem)),
        };
        let key = account.username_key();
        let factor = self.reset_factor(&account).await?;
        let needs_code = factor == ResetFactor::Code;
        let policy = &self.settings.policy;
        if let Some(until) = attempts::read(&mut *self.read().await?, &key)
            .await?
            .locked_at(self.clock.now())
        {
            self.audit_locked_reset(&account, caller).await?;
            return Ok(ResetOutcome::Locked { until });
        }

        // Nothing typed is looked at before the passkey: the password
        // history below would tell whoever holds only the mailbox whether
        // a password is the account's.
        if factor == ResetFactor::Passkey && !held.passkey_passed {
            return Ok(ResetOutcome::Invalid(vec![FieldError {
                field: "passkey",
                message: "Use your passkey before setting a new password".to_owned(),
            }]));
        }
        let mut errors = Vec::new();
        let typed = input.username.trim();
        if typed.is_empty() {
            errors.push(FieldError {
                field: "username",
                message: "Enter your username, as it is written in your password reset email"
                    .to_owned(),
            });
        } else if UsernameKey::from_typed(typed) != key {
            errors.push(FieldError {
                field: "username",
                message: "Enter the username written in the email that this link came from"
                    .to_owned(),
            });
        }
        let password = normalise(&input.password);
        let context = self.password_context(&account);
        if let Err(refusal) = policy
            .password
            .check(&password, &input.confirm_password, &context)
        {
            errors.push(FieldError {
                field: if refusal == PasswordRefusal::Mismatch {
                    "confirm-password"
                } else {
                    "password"
                },
                message: refusal.message(),
            });
        }
        let code = input.code.trim();
        if needs_code && code.is_empty() {
            errors.push(FieldError {
                field: "code",
                message: "Enter the 6-digit code from your authenticator app, or a recovery code"
                    .to_owned(),
            });
        }
        if !errors.is_empty() {
            return Ok(ResetOutcome::Invalid(errors));
        }

        // The code before the password history: the history check tells
        // whether a password is one of the account's last ones, the current
        // one included, and must tell nobody who has not proved the second
        // factor. (A right code is spent, so a reused password then needs
        // the next code.)
        if needs_code {
            match self.check_code(&account, code, caller).await? {
                CodeCheck::Right { .. } => {}
                CodeCheck::Wrong { attempts_left } => {
                    return Ok(ResetOutcome::Invalid(vec![FieldError {
                        field: "code",
                        message: format!(
                            "The code is not right. Type the newest code from your authenticator app, or a recovery code. You have {attempts_left} attempt{} left before your account is locked for {}.",
                            if attempts_left == 1 { "" } else { "s" },
                            policy.lockout.duration.for_people()
                        ),
                    }]));
                }
                CodeCheck::Locked { until } => return Ok(ResetOutcome::Locked { until }),
            }
        }

        let permit = self.hasher.permit().await?;
        let history = accounts::password_history(&mut *self.read().await?, account.id).await?;
        for old in history.iter().take(policy.password.history) {
            if let Verification::Match { .. } =
                self.hasher.verify(&permit, &password, Some(old)).await?
            {
                return Ok(ResetOutcome::Invalid(vec![FieldError {
                    field: "password",
                    message: PasswordRefusal::Reused(policy.password.history).message(),
                }]));
            }
        }
        let hash = self.hasher.hash(&permit, &password).await?;
        drop(permit);

        let now = self.clock.now();
        // A set-up link opens the window in which its user sets up an
        // authenticator; every other password closes it.
        let set_up = link.purpose == LinkPurpose::SetUp;
        let setup_until = set_up.then(|| now.plus(policy.reset_link_ttl));
        let notice = Notice {
            service: self.settings.service_name.clone(),
            paragraphs: vec![
                format!(
                    "The password for your {} account {} was set at {}.",
                    self.settings.service_name,
                    account.username,
                    self.settings.when(now)
                ),
                "If you did this, you do not need to do anything.".to_owned(),
                "If you did not, contact the System Administrator straight away.".to_owned(),
            ],
        }
        .to_email(
            "password_changed",
            format!("Your {} password has been set", self.settings.service_name),
            &account.email,
            Some(account.id),
        )?;

        let mut tx = self.begin().await?;
        let counter = attempts::read_for_update(&mut tx, &key).await?;
        if let Some(until) = counter.locked_at(now) {
            drop(tx);
            self.audit_locked_reset(&account, caller).await?;
            return Ok(ResetOutcome::Locked { until });
        }
        if !reset_links::consume(&mut tx, link_id, now).await? {
            drop(tx);
            // Another submission spent it (or it expired a moment ago).
            let problem = match reset_links::by_id(&mut *self.read().await?, link_id).await? {
                Some(link) => LinkProblem::of(link.record.status(now)).unwrap_or(LinkProblem::Used),
                None => LinkProblem::Unknown,
            };
            return Ok(ResetOutcome::Unusable(problem));
        }
        accounts::set_password(
            &mut tx,
            account.id,
            &hash,
            now,
            policy.password.history,
            setup_until,
        )
        .await?;
        let voided = reset_links::void(
            &mut tx,
            account.id,
            VoidReason::PasswordChanged,
            now,
            Some(link_id),
        )
        .await?;
        let ended = sessions::end_all_of(&mut tx, account.id, now).await?;
        attempts::set(&mut tx, &key, &counter.after_reset(now), now).await?;
        outbox::enqueue(&mut tx, &notice, now).await?;
        let mut event = self.event_about(AuditEvent::PasswordReset, &account, caller);
        event.detail = Some(format!(
            "{} password{}; {voided} other link(s) voided; {ended} session(s) ended",
            if account.password_hash.is_none() {
                "first"
            } else {
                "new"
            },
            if set_up { " through a set-up link" } else { "" }
        ));
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        self.outbox_wake.notify_one();
        Ok(ResetOutcome::Done { set_up })
    }

    async fn audit_locked_reset(&self, account: &AccountRecord, caller: &Caller) -> Result<()> {
        self.audit(&self.event_about(AuditEvent::PasswordResetRefusedLocked, account, caller))
            .await
    }
}
