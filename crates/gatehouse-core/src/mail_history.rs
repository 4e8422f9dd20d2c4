//! "Did the email go out?": what the helpdesk sees of an address's
//! recovery requests and emails (never a body or a link).

use gatehouse_domain::mail::EmailStatus;
use gatehouse_domain::{RecoveryOutcome, Timestamp};
use gatehouse_store::{outbox, recovery};

use crate::{Gatehouse, Result};

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
        let mut db = self.read().await?;
        let requests = recovery::for_email(&mut db, &key, 50)
            .await?
            .into_iter()
            .map(|r| RequestLine {
                when: self.settings.when(r.created_at),
                id: r.id,
                outcome: describe_outcome(r.outcome, r.locked_accounts.unwrap_or(0)),
            })
            .collect();
        let emails = outbox::to_address(&mut db, &key, 50)
            .await?
            .into_iter()
            .map(|e| {
                let detail = |s: &Option<String>| s.clone().unwrap_or_default();
                let status = match e.status {
                    EmailStatus::Sent => {
                        format!("sent {} ({})", when(e.finished_at), detail(&e.smtp_reply))
                    }
                    EmailStatus::Queued if e.attempts > 0 => format!(
                        "retrying, next try {} (last error: {})",
                        self.settings.when(e.next_attempt_at),
                        detail(&e.last_error)
                    ),
                    EmailStatus::Queued => "queued".to_owned(),
                    EmailStatus::Expired => format!(
                        "expired before delivery {} ({})",
                        when(e.finished_at),
                        detail(&e.last_error)
                    ),
                    EmailStatus::Failed => format!("failed ({})", detail(&e.last_error)),
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

/// How a recovery request ended, in words; `locked` of its accounts were
/// locked (told until when, with no link).
fn describe_outcome(outcome: Option<RecoveryOutcome>, locked: i64) -> String {
    match outcome {
        None => "waiting to be processed".to_owned(),
        Some(RecoveryOutcome::NoMatch) => "no account matched".to_owned(),
        Some(RecoveryOutcome::Throttled) => {
            "throttled (too many emails to this address this hour)".to_owned()
        }
        Some(RecoveryOutcome::DomainNotAllowed) => "address not in an allowed domain".to_owned(),
        Some(RecoveryOutcome::Matched(0)) => "matched".to_owned(),
        Some(RecoveryOutcome::Matched(n)) => {
            let n = i64::from(n);
            format!(
                "matched ({n} account{}{})",
                if n == 1 { "" } else { "s" },
                match locked {
                    0 => String::new(),
                    l if l == n => ", locked: the email says until when, with no link".to_owned(),
                    l => format!(
                        ", {l} of them locked: the email says until when, with no link for it"
                    ),
                }
            )
        }
    }
}
