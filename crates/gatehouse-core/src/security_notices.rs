//! Security emails: telling a person, at the address on record, that
//! something important happened to their account: it was locked, its
//! password was changed, its second factor was reset, it was signed in to
//! from a browser it had not used before.
//!
//! Each says what happened, when, from where, and what to do if it was not
//! them, and carries no link that signs anyone in. They go through the
//! outbox, written in the transaction that records what they tell, and at
//! most [`NOTICES_PER_HOUR`] go to one address in an hour, so that nobody
//! can use them to flood a mailbox (a notice over the limit is audited,
//! not sent).

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::user_agent;
use gatehouse_domain::{Span, Timestamp};
use gatehouse_store::{AccountRecord, Tx, audit, outbox};

use crate::emails::Notice;
use crate::{Caller, Gatehouse, Result};

/// Security emails to one address in an hour, at most.
pub const NOTICES_PER_HOUR: u32 = 5;

/// What a security email tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityNotice {
    /// The account was locked by wrong passwords or codes, until then.
    Locked {
        /// When the lock ends.
        until: Timestamp,
    },
    /// The person changed their password while signed in.
    PasswordChanged,
    /// The operator reset the second factor.
    SecondFactorReset,
    /// A sign-in from a browser the account had not used before.
    NewBrowser,
    /// A passkey was added, with the name it was given.
    PasskeyAdded(String),
    /// A passkey was removed, with its name.
    PasskeyRemoved(String),
}

impl SecurityNotice {
    /// The outbox kind (every security notice's starts `security_`, which
    /// the hourly limit counts).
    fn kind(&self) -> &'static str {
        match self {
            SecurityNotice::Locked { .. } => "security_locked",
            SecurityNotice::PasswordChanged => "security_password_changed",
            SecurityNotice::SecondFactorReset => "security_second_factor_reset",
            SecurityNotice::NewBrowser => "security_new_browser",
            SecurityNotice::PasskeyAdded(_) => "security_passkey_added",
            SecurityNotice::PasskeyRemoved(_) => "security_passkey_removed",
        }
    }
}

impl Gatehouse {
    /// The subject and paragraphs of `notice` about `account`, done at
    /// `now` by `caller` (when a browser did it).
    fn notice_text(
        &self,
        notice: &SecurityNotice,
        account: &AccountRecord,
        caller: Option<&Caller>,
        now: Timestamp,
    ) -> (String, Vec<String>) {
        let s = &self.settings;
        let service = &s.service_name;
        let when = s.when(now);
        let from = caller.map(|c| {
            format!(
                "It came from {} at the address {}.",
                user_agent::describe(c.user_agent.as_deref()),
                c.ip
            )
        });
        let not_you = "If this was not you, contact the System Administrator straight away.";
        let mut paragraphs = Vec::new();
        let subject = match notice {
            SecurityNotice::Locked { until } => {
                paragraphs.push(format!(
                    "Your {service} account {} was locked at {when}, because the password (or a code) was entered incorrectly {} times. It stays locked until {}; nobody can lift the lock early.",
                    account.username,
                    s.policy.lockout.threshold,
                    s.when(*until)
                ));
                paragraphs.extend(from.clone());
                paragraphs.push(
                    "If this was you, wait until then and log in again, or use Forgotten | Request Username/Password | Unlock Account once the lock has ended."
                        .to_owned(),
                );
                paragraphs.push(
                    "If this wasn't you, nobody has your password: the lock stopped them. You do not need to do anything, but you can tell the System Administrator."
                        .to_owned(),
                );
                format!("Your {service} account has been locked")
            }
            SecurityNotice::PasswordChanged => {
                paragraphs.push(format!(
                    "The password for your {service} account {} was changed at {when}. Every other device signed in to the account was signed out.",
                    account.username
                ));
                paragraphs.extend(from.clone());
                paragraphs.push(not_you.to_owned());
                format!("Your {service} password has been changed")
            }
            SecurityNotice::SecondFactorReset => {
                paragraphs.push(format!(
                    "The authenticator app and recovery codes of your {service} account {} were reset by the operator at {when}. You will be given a one-time set-up link to set up a new one.",
                    account.username
                ));
                paragraphs.push(not_you.to_owned());
                format!("Your {service} authenticator app has been reset")
            }
            SecurityNotice::NewBrowser => {
                paragraphs.push(format!(
                    "Your {service} account {} was signed in to at {when} from a browser it had not been used from before.",
                    account.username
                ));
                paragraphs.extend(from.clone());
                paragraphs.push(format!(
                    "If this was you, you do not need to do anything. If it was not, change your password from My account in {service} (or use Forgotten | Request Username/Password | Unlock Account), and contact the System Administrator."
                ));
                format!("A new sign-in to your {service} account")
            }
            SecurityNotice::PasskeyAdded(name) => {
                paragraphs.push(format!(
                    "A passkey named \u{201c}{name}\u{201d} was added to your {service} account {} at {when}.",
                    account.username
                ));
                paragraphs.extend(from.clone());
                paragraphs.push(not_you.to_owned());
                format!("A passkey was added to your {service} account")
            }
            SecurityNotice::PasskeyRemoved(name) => {
                paragraphs.push(format!(
                    "The passkey named \u{201c}{name}\u{201d} was removed from your {service} account {} at {when}.",
                    account.username
                ));
                paragraphs.extend(from);
                paragraphs.push(not_you.to_owned());
                format!("A passkey was removed from your {service} account")
            }
        };
        (subject, paragraphs)
    }

    /// Queues `notice` to `account`'s address in `tx`, unless the address
    /// has had [`NOTICES_PER_HOUR`] in the last hour (then audited, not
    /// sent). Returns whether it was queued.
    pub(crate) async fn queue_security_notice(
        &self,
        tx: &mut Tx,
        account: &AccountRecord,
        notice: &SecurityNotice,
        caller: Option<&Caller>,
        now: Timestamp,
    ) -> Result<bool> {
        let recent =
            outbox::security_notices_since(tx, &account.email.key(), now.minus(Span::hours(1)))
                .await?;
        if recent >= NOTICES_PER_HOUR {
            let mut event = self.event(AuditEvent::SecurityNoticeThrottled);
            event.account_id = Some(account.id);
            event.username = Some(account.username.to_string());
            event.detail = Some(format!(
                "{} not sent: {recent} security emails to the address in the last hour",
                notice.kind()
            ));
            audit::record(tx, &event).await?;
            return Ok(false);
        }
        let (subject, paragraphs) = self.notice_text(notice, account, caller, now);
        let email = Notice {
            service: self.settings.service_name.clone(),
            paragraphs,
        }
        .to_email(notice.kind(), subject, &account.email, Some(account.id))?;
        outbox::enqueue(tx, &email, now).await?;
        Ok(true)
    }
}
