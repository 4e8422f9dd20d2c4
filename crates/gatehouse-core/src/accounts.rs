//! Account administration: status for the helpdesk, email changes.

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::reset_link::VoidReason;
use gatehouse_domain::{EmailAddress, Timestamp, UsernameKey};
use gatehouse_store::{
    AccountRecord, NewEmail, accounts, attempts, audit, outbox, reset_links, sessions,
};

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
    pub async fn account_status(&self, actor: &Actor, username: &str) -> Result<AccountStatus> {
        let key = UsernameKey::from_typed(username);
        let Some(account) = accounts::by_username(&mut *self.read().await?, &key).await? else {
            return Err(Error::NoSuchAccount);
        };
        self.authorise(actor, Action::ViewAccount, Some(&account))
            .await?;
        let mut db = self.read().await?;
        let counter = attempts::read(&mut db, &key).await?;
        let now = self.clock.now();
        let sessions = sessions::count_of(&mut db, account.id).await?;
        Ok(AccountStatus {
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
        })
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
        let Some(target) =
            accounts::by_username(&mut *self.read().await?, &UsernameKey::from_typed(username))
                .await?
        else {
            return Err(Error::NoSuchAccount);
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
        let holders: Vec<AccountRecord> =
            accounts::search(&mut *self.read().await?, new.as_str(), 50)
                .await?
                .into_iter()
                .filter(|a| a.email.key() == new.key())
                .collect();
        let now = self.clock.now();
        let mut tx = self.begin().await?;
        // Read again inside the transaction: the role checked above must
        // still be the role of the account changed.
        let Some(account) = accounts::by_id(&mut tx, target.id).await? else {
            return Err(Error::NoSuchAccount);
        };
        if !actor.permits(Action::ChangeEmail, Some(account.role)) {
            drop(tx);
            return Err(self
                .refuse(actor, Action::ChangeEmail, Some(&account))
                .await);
        }
        if account.email.as_str() == new.as_str() {
            return Ok(Err(EmailChangeRefusal::Unchanged));
        }
        if let Some(other) = holders
            .iter()
            .find(|h| h.id != account.id && !same_person(h, &account))
        {
            return Ok(Err(EmailChangeRefusal::OtherPerson(
                other.username.to_string(),
            )));
        }
        accounts::set_email(&mut tx, account.id, &new, now).await?;
        let voided =
            reset_links::void(&mut tx, account.id, VoidReason::EmailChanged, now, None).await?;
        let ended = sessions::end_all_of(&mut tx, account.id, now).await?;
        for email in self.email_change_notices(&account, &account.email, &new, now)? {
            outbox::enqueue(&mut tx, &email, now).await?;
        }
        let detail = format!(
            "{} -> {}; reason: {}; {voided} link(s) voided; {ended} session(s) ended",
            account.email.masked(),
            new.masked(),
            reason.trim()
        );
        audit::record(
            &mut tx,
            &self.action(AuditEvent::EmailChanged, actor, &account, detail),
        )
        .await?;
        tx.commit().await?;
        self.outbox_wake.notify_one();
        let updated = accounts::by_id(&mut *self.read().await?, account.id)
            .await?
            .ok_or(Error::NoSuchAccount)?;
        Ok(Ok(updated))
    }

    /// The two emails that tell a person their address changed: one to the old, one to the new.
    pub(crate) fn email_change_notices(
        &self,
        account: &AccountRecord,
        old: &EmailAddress,
        new: &EmailAddress,
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
                    new.masked()
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

impl Gatehouse {
    /// People whose username, email address or employee number is `query`,
    /// or whose surname (or first name and surname) it is, for a console
    /// member or the operator: at most `limit`.
    pub async fn find_accounts(
        &self,
        actor: &Actor,
        query: &str,
        limit: u32,
    ) -> Result<Vec<AccountRecord>> {
        // Finding people is every console member's (an actor is only ever
        // a member or the operator); what each may see of an account is
        // checked when it is opened.
        let _ = actor;
        Ok(accounts::search(&mut *self.read().await?, query, limit).await?)
    }

    /// The signed-in person's own account, for "My account".
    pub async fn own_account(
        &self,
        session: &gatehouse_store::SessionRecord,
    ) -> Result<Option<AccountRecord>> {
        match session.account_id {
            Some(id) => Ok(accounts::by_id(&mut *self.read().await?, id).await?),
            None => Ok(None),
        }
    }
}
