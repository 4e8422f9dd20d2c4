//! Account administration: status for the helpdesk, email changes.

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::reset_link::VoidReason;
use gatehouse_domain::{EmailAddress, Timestamp, UsernameKey};
use gatehouse_store::{AccountRecord, NewEmail};

use crate::emails::Notice;
use crate::{Action, Actor, Error, Gatehouse, Result};

/// An account's state, as the helpdesk and `gatehouse admin status` show it.
#[derive(Debug, Clone)]
pub struct AccountStatus {
    /// The account.
    pub account: AccountRecord,
    /// Consecutive failures counted now.
    pub consecutive_failures: u32,
    /// Failures since the last success or reset (the 100 cap).
    pub total_failures: u32,
    /// Locked until then.
    pub locked_until: Option<Timestamp>,
    /// The password is disabled until a reset.
    pub password_disabled: bool,
    /// Sessions open now.
    pub sessions: i64,
}

/// Why an email change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailChangeRefusal {
    /// No account has that username.
    NoSuchAccount,
    /// The new address is not an email address or not in an allowed domain.
    BadAddress(String),
    /// The account already has that address.
    Unchanged,
    /// The address is on file for another person's account (named): their
    /// reset emails would reach this account's links, and this person's
    /// theirs. One person's several accounts (one per employer) may share it.
    OtherPerson(String),
    /// A reason is required.
    NoReason,
}

impl std::fmt::Display for EmailChangeRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EmailChangeRefusal::NoSuchAccount => f.write_str("no account has that username"),
            EmailChangeRefusal::BadAddress(why) => f.write_str(why),
            EmailChangeRefusal::Unchanged => f.write_str("the account already has that address"),
            EmailChangeRefusal::OtherPerson(username) => write!(
                f,
                "that address is on file for another person (account {username}), and one address must not reach two people's accounts"
            ),
            EmailChangeRefusal::NoReason => f.write_str("give a reason for the change"),
        }
    }
}

impl Gatehouse {
    /// The state of the account with this username, for an actor who may
    /// see it ([`Error::NotPermitted`] otherwise: a helpdesk member asking
    /// about a privileged account).
    pub async fn account_status(
        &self,
        actor: &Actor,
        username: &str,
    ) -> Result<Option<AccountStatus>> {
        let key = UsernameKey::from_typed(username);
        let Some(account) = self.store.account_by_username(&key).await? else {
            return Ok(None);
        };
        self.authorise(actor, Action::ViewAccount, Some(&account))
            .await?;
        let counter = self.store.attempts(&key).await?;
        let now = self.clock.now();
        let sessions = self.store.session_count(account.id).await?;
        Ok(Some(AccountStatus {
            consecutive_failures: if counter.locked_until.is_some_and(|u| u <= now) {
                0
            } else {
                counter.consecutive
            },
            total_failures: counter.total,
            locked_until: counter.locked_at(now),
            password_disabled: counter.is_disabled(&self.settings.policy.lockout),
            sessions,
            account,
        }))
    }

    /// Changes an account's email address: outstanding links are voided,
    /// sessions ended, and both the old and the new address are told. A
    /// helpdesk member may change a staff account's only.
    pub async fn change_email(
        &self,
        username: &str,
        new_email: &str,
        actor: &Actor,
        reason: &str,
    ) -> Result<Result<AccountRecord, EmailChangeRefusal>> {
        // Checked before anything else, so that a refusal says nothing
        // about the address or the reason.
        let Some(target) = self
            .store
            .account_by_username(&UsernameKey::from_typed(username))
            .await?
        else {
            return Ok(Err(EmailChangeRefusal::NoSuchAccount));
        };
        self.authorise(actor, Action::ChangeEmail, Some(&target))
            .await?;
        if reason.trim().is_empty() {
            return Ok(Err(EmailChangeRefusal::NoReason));
        }
        let settings = &self.settings;
        let new = match EmailAddress::parse(new_email) {
            Ok(e) if settings.allowed_domains.permits(&e) => e,
            Ok(_) => {
                return Ok(Err(EmailChangeRefusal::BadAddress(format!(
                    "the address must be in an allowed domain ({})",
                    settings.allowed_domains.for_people()
                ))));
            }
            Err(_) => {
                return Ok(Err(EmailChangeRefusal::BadAddress(
                    "that is not an email address".to_owned(),
                )));
            }
        };
        // Read before the transaction: on SQLite it holds the only writer.
        let holders: Vec<AccountRecord> = self
            .store
            .search_accounts(new.as_str(), 50)
            .await?
            .into_iter()
            .filter(|a| a.email.eq_ignore_ascii_case(new.as_str()))
            .collect();
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        // Read again inside the transaction: the role checked above must
        // still be the role of the account changed.
        let Some(account) = tx.account_by_id(target.id).await? else {
            return Ok(Err(EmailChangeRefusal::NoSuchAccount));
        };
        if !actor.permits(
            Action::ChangeEmail,
            Some(crate::privileged::role_of(&account)),
        ) {
            drop(tx);
            return Err(self
                .refuse(actor, Action::ChangeEmail, Some(&account))
                .await);
        }
        if account.email == new.as_str() {
            return Ok(Err(EmailChangeRefusal::Unchanged));
        }
        if let Some(other) = holders
            .iter()
            .find(|h| h.id != account.id && !same_person(h, &account))
        {
            return Ok(Err(EmailChangeRefusal::OtherPerson(other.username.clone())));
        }
        tx.set_email(account.id, new.as_str(), now).await?;
        let voided = tx
            .void_links(account.id, VoidReason::EmailChanged, now, None)
            .await?;
        let sessions = tx.delete_sessions_of(account.id).await?;
        for email in self.email_change_notices(&account, &account.email, new.as_str(), now)? {
            tx.enqueue_email(&email, now).await?;
        }
        let detail = format!(
            "{} -> {}; reason: {}; {voided} link(s) voided; {sessions} session(s) ended",
            EmailAddress::from_trusted(account.email.clone()).masked(),
            new.masked(),
            reason.trim()
        );
        tx.audit(&self.action(AuditEvent::EmailChanged, actor, &account, detail))
            .await?;
        tx.commit().await?;
        self.outbox_wake.notify_one();
        let updated = self
            .store
            .account_by_id(account.id)
            .await?
            .ok_or_else(|| Error::Internal("the account vanished".to_owned()))?;
        Ok(Ok(updated))
    }

    /// The two emails that tell a person their address changed: one to the old, one to the new.
    pub(crate) fn email_change_notices(
        &self,
        account: &AccountRecord,
        old: &str,
        new: &str,
        now: Timestamp,
    ) -> Result<Vec<NewEmail>> {
        let service = &self.settings.service_name;
        let when = self.settings.when(now);
        let subject = format!("Your {service} email address has changed");
        let to_old = Notice {
            service: service.clone(),
            paragraphs: vec![
                format!(
                    "The email address for your {service} account {} was changed from this address to {} at {when}.",
                    account.username,
                    EmailAddress::from_trusted(new.to_owned()).masked()
                ),
                "Password reset emails will now go to the new address, and any reset link sent to this address no longer works.".to_owned(),
                "If you did not expect this, contact the System Administrator straight away.".to_owned(),
            ],
        }
        .to_email("email_changed_old", subject.clone(), old, Some(account.id))?;
        let to_new = Notice {
            service: service.clone(),
            paragraphs: vec![
                format!(
                    "This is now the email address for your {service} account {} (changed at {when}).",
                    account.username
                ),
                "Password reset emails will come to this address.".to_owned(),
                "If you did not expect this, contact the System Administrator.".to_owned(),
            ],
        }
        .to_email("email_changed_new", subject, new, Some(account.id))?;
        Ok(vec![to_old, to_new])
    }
}

/// Whether two accounts are one person's (one per employer, as the staff
/// file has Jane Smith twice): same names and date of birth.
fn same_person(a: &AccountRecord, b: &AccountRecord) -> bool {
    a.first_name.eq_ignore_ascii_case(&b.first_name)
        && a.last_name.eq_ignore_ascii_case(&b.last_name)
        && a.date_of_birth == b.date_of_birth
}

/// One recovery request, described for the helpdesk.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequestLine {
    /// When it was made, in the service's time zone.
    pub when: String,
    /// Its number.
    pub id: i64,
    /// How it ended ("matched (2 accounts)", "no match", "throttled", …).
    pub outcome: String,
}

/// One email, described for the helpdesk (never its body or link).
#[derive(Debug, Clone, serde::Serialize)]
pub struct EmailLine {
    /// When it was queued.
    pub when: String,
    /// Its number.
    pub id: i64,
    /// What kind of email.
    pub kind: String,
    /// Where it stands: queued, sent (with the server's reply), retrying
    /// (with the last error), expired before delivery, failed.
    pub status: String,
}

/// "Did the email go out?" for one address.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MailHistory {
    /// The address, lower case.
    pub email: String,
    /// Recovery requests for it, newest first.
    pub requests: Vec<RequestLine>,
    /// Emails to it, newest first.
    pub emails: Vec<EmailLine>,
}

impl Gatehouse {
    /// Every recovery request for an address and every email to it (the 50
    /// newest of each), described in words.
    pub async fn mail_history(&self, email: &str) -> Result<MailHistory> {
        let key = email.trim().to_ascii_lowercase();
        let when = |at: Option<Timestamp>| {
            at.map_or_else(|| "never".to_owned(), |t| self.settings.when(t))
        };
        let requests =
            self.store
                .recovery_requests_for(&key, 50)
                .await?
                .into_iter()
                .map(|r| RequestLine {
                    when: self.settings.when(r.created_at),
                    id: r.id,
                    outcome: format!(
                        "{}{}",
                        r.outcome
                            .as_deref()
                            .map_or("waiting to be processed", |o| match o {
                                "matched" => "matched",
                                "no_match" => "no account matched",
                                "throttled" =>
                                    "throttled (too many emails to this address this hour)",
                                "domain_not_allowed" => "address not in an allowed domain",
                                other => other,
                            }),
                        r.matched_accounts.filter(|n| *n > 0).map_or_else(String::new, |n| {
                            let locked = r.locked_accounts.unwrap_or(0);
                            format!(
                                " ({n} account{}{})",
                                if n == 1 { "" } else { "s" },
                                match locked {
                                    0 => String::new(),
                                    l if l == n => {
                                        ", locked: the email says until when, with no link"
                                            .to_owned()
                                    }
                                    l => format!(
                                        ", {l} of them locked: the email says until when, with no link for it"
                                    ),
                                }
                            )
                        })
                    ),
                })
                .collect();
        let emails = self
            .store
            .emails_to(&key, 50)
            .await?
            .into_iter()
            .map(|e| {
                let detail = |s: &Option<String>| s.clone().unwrap_or_default();
                let status = match e.status.as_str() {
                    "sent" => format!("sent {} ({})", when(e.finished_at), detail(&e.smtp_reply)),
                    "queued" if e.attempts > 0 => format!(
                        "retrying, next try {} (last error: {})",
                        self.settings.when(e.next_attempt_at),
                        detail(&e.last_error)
                    ),
                    "queued" => "queued".to_owned(),
                    "expired" => format!(
                        "expired before delivery {} ({})",
                        when(e.finished_at),
                        detail(&e.last_error)
                    ),
                    other => format!("{other} ({})", detail(&e.last_error)),
                };
                EmailLine {
                    when: self.settings.when(e.created_at),
                    id: e.id,
                    kind: e.kind,
                    status,
                }
            })
            .collect();
        Ok(MailHistory {
            email: key,
            requests,
            emails,
        })
    }
}
