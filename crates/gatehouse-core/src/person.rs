//! A person's rights over what is held about them: everything held, for a
//! subject access request, and erasure. Both are the operator's (the
//! command line); helpdesk and admin accounts are never erased while they
//! hold their role.

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::{Role, Timestamp, UsernameKey};
use gatehouse_store::{
    AccountRecord, AuditFilter, accounts, attempts, audit, erasure, outbox, recovery, reset_links,
    second_factor, sessions,
};
use serde::Serialize;

use crate::{Action, Actor, Error, Gatehouse, Result};

/// Why an erasure was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErasureRefusal {
    /// A reason is required.
    NoReason,
    /// A helpdesk or admin account: take the role away first.
    Privileged(Role),
    /// Erased already.
    AlreadyErased,
}

impl std::fmt::Display for ErasureRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErasureRefusal::NoReason => f.write_str("give a reason"),
            ErasureRefusal::Privileged(role) => write!(
                f,
                "this is {} account: make it a staff account first (gatehouse admin grant USERNAME staff)",
                if *role == Role::Admin {
                    "an admin"
                } else {
                    "a helpdesk"
                }
            ),
            ErasureRefusal::AlreadyErased => {
                f.write_str("this account's personal details were erased already")
            }
        }
    }
}

/// Everything Gatehouse holds about a person, as a subject access request
/// shows it: never a password hash, a token, a secret or another person's
/// data. Times are RFC 3339, in UTC.
#[derive(Debug, Serialize)]
pub struct PersonExport {
    /// When this was written.
    pub exported_at: String,
    /// The account.
    pub account: AccountExport,
    /// The sign-in counter of the username.
    pub sign_in_attempts: AttemptsExport,
    /// The authenticator app of a helpdesk or admin account.
    pub second_factor: Option<SecondFactorExport>,
    /// Where the person is signed in.
    pub sessions: Vec<SessionExport>,
    /// Applications holding a sign-in for the person.
    pub applications: Vec<ApplicationExport>,
    /// Passkeys (their names and when they were used; never a key).
    pub passkeys: Vec<PasskeyExport>,
    /// Reset and set-up links (what is known of them: the links themselves
    /// are not kept).
    pub reset_links: Vec<LinkExport>,
    /// Emails to the person's address.
    pub emails: Vec<EmailExport>,
    /// Recovery requests made with the person's address.
    pub recovery_requests: Vec<RequestExport>,
    /// The audit trail of the account.
    pub audit_events: Vec<EventExport>,
}

/// The account's details.
#[derive(Debug, Serialize)]
#[allow(missing_docs)]
pub struct AccountExport {
    pub username: String,
    pub employer_code: String,
    pub employer_name: String,
    pub first_name: String,
    pub last_name: String,
    pub date_of_birth: String,
    pub email: String,
    pub employee_number: Option<String>,
    pub role: String,
    pub password_set: bool,
    pub password_changed_at: Option<String>,
    pub last_sign_in_at: Option<String>,
    pub previous_sign_in_at: Option<String>,
    pub disabled_at: Option<String>,
    pub erased_at: Option<String>,
    /// The identifier applications know the person by.
    pub subject: Option<String>,
}

/// The username's sign-in counter.
#[derive(Debug, Serialize)]
#[allow(missing_docs)]
pub struct AttemptsExport {
    pub consecutive_failures: u32,
    pub total_failures: u32,
    pub locked_until: Option<String>,
}

/// An authenticator app (never its secret).
#[derive(Debug, Serialize)]
#[allow(missing_docs)]
pub struct SecondFactorExport {
    pub set_up_at: Option<String>,
    pub recovery_codes_left: i64,
}

/// A session (never its id).
#[derive(Debug, Serialize)]
#[allow(missing_docs)]
pub struct SessionExport {
    pub started_at: String,
    pub last_used_at: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// An application signed in to.
#[derive(Debug, Serialize)]
#[allow(missing_docs)]
pub struct ApplicationExport {
    pub client_id: String,
    pub name: String,
    pub signed_in_at: String,
}

/// A passkey.
#[derive(Debug, Serialize)]
#[allow(missing_docs)]
pub struct PasskeyExport {
    pub name: String,
    pub added_at: String,
    pub last_used_at: Option<String>,
}

/// A reset or set-up link.
#[derive(Debug, Serialize)]
#[allow(missing_docs)]
pub struct LinkExport {
    pub purpose: String,
    pub created_at: String,
    pub expires_at: String,
    pub used_at: Option<String>,
    pub voided_at: Option<String>,
}

/// An email (never its body).
#[derive(Debug, Serialize)]
#[allow(missing_docs)]
pub struct EmailExport {
    pub kind: String,
    pub status: String,
    pub queued_at: String,
    pub finished_at: Option<String>,
    pub attempts: i64,
}

/// A recovery request.
#[derive(Debug, Serialize)]
#[allow(missing_docs)]
pub struct RequestExport {
    pub made_at: String,
    pub outcome: Option<String>,
    pub processed_at: Option<String>,
}

/// An audit event.
#[derive(Debug, Serialize)]
#[allow(missing_docs)]
pub struct EventExport {
    pub at: String,
    pub event: String,
    pub actor: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<String>,
}

/// Most rows of one kind an export lists (a person's whole audit trail
/// fits many times over).
const EXPORT_LIMIT: u32 = 100_000;

fn at(t: Timestamp) -> String {
    t.rfc3339()
}

impl Gatehouse {
    /// The account `username` names, if `actor` may do `action` to it.
    async fn person(&self, actor: &Actor, action: Action, username: &str) -> Result<AccountRecord> {
        let account =
            accounts::by_username(&mut *self.read().await?, &UsernameKey::from_typed(username))
                .await?
                .ok_or(Error::NoSuchAccount)?;
        self.authorise(actor, action, Some(&account)).await?;
        Ok(account)
    }

    /// Everything held about the person with `username` (audited).
    pub async fn export_person(&self, actor: &Actor, username: &str) -> Result<PersonExport> {
        let a = self.person(actor, Action::ExportPerson, username).await?;
        let now = self.clock.now();
        let mut conn = self.read().await?;
        let counter = attempts::read(&mut conn, &a.username_key()).await?;
        let second_factor = match second_factor::get(&mut conn, a.id).await? {
            Some(row) => Some(SecondFactorExport {
                set_up_at: row.confirmed_at.map(at),
                recovery_codes_left: second_factor::recovery_codes_left(&mut conn, a.id).await?,
            }),
            None => None,
        };
        let email_key = a.email.as_str().to_lowercase();
        let (emails, requests) = if a.erased_at.is_some() {
            (Vec::new(), Vec::new())
        } else {
            (
                outbox::to_address(&mut conn, &email_key, EXPORT_LIMIT).await?,
                recovery::for_email(&mut conn, &email_key, EXPORT_LIMIT).await?,
            )
        };
        let filter = AuditFilter {
            account_id: Some(a.id),
            limit: EXPORT_LIMIT,
            ..AuditFilter::default()
        };
        let export = PersonExport {
            exported_at: at(now),
            sign_in_attempts: AttemptsExport {
                consecutive_failures: counter.consecutive,
                total_failures: counter.total,
                locked_until: counter.locked_at(now).map(at),
            },
            second_factor,
            sessions: sessions::of_account(&mut conn, a.id)
                .await?
                .into_iter()
                .map(|s| SessionExport {
                    started_at: at(s.created_at),
                    last_used_at: at(s.last_seen_at),
                    client_ip: s.client_ip,
                    user_agent: s.user_agent,
                })
                .collect(),
            applications: gatehouse_store::oidc::grants::held_by_account(&mut conn, a.id, now)
                .await?
                .into_iter()
                .map(|g| ApplicationExport {
                    client_id: g.client_id.as_str().to_owned(),
                    name: g.client_name,
                    signed_in_at: at(g.signed_in_at),
                })
                .collect(),
            passkeys: gatehouse_store::passkeys::of_account(&mut conn, a.id)
                .await?
                .into_iter()
                .map(|p| PasskeyExport {
                    name: p.name,
                    added_at: at(p.created_at),
                    last_used_at: p.last_used_at.map(at),
                })
                .collect(),
            reset_links: reset_links::of_account(&mut conn, a.id)
                .await?
                .into_iter()
                .map(|l| LinkExport {
                    purpose: l.purpose.as_str().to_owned(),
                    created_at: at(l.record.created_at),
                    expires_at: at(l.record.expires_at),
                    used_at: l.record.used_at.map(at),
                    voided_at: l.record.voided.map(|(t, _)| at(t)),
                })
                .collect(),
            emails: emails
                .into_iter()
                .map(|e| EmailExport {
                    kind: e.kind,
                    status: e.status.as_str().to_owned(),
                    queued_at: at(e.created_at),
                    finished_at: e.finished_at.map(at),
                    attempts: e.attempts,
                })
                .collect(),
            recovery_requests: requests
                .into_iter()
                .map(|r| RequestExport {
                    made_at: at(r.created_at),
                    outcome: r.outcome.map(|o| o.as_str().to_owned()),
                    processed_at: r.processed_at.map(at),
                })
                .collect(),
            audit_events: audit::list(&mut conn, &filter)
                .await?
                .into_iter()
                .map(|e| EventExport {
                    at: at(e.at),
                    event: e.event.as_str().to_owned(),
                    actor: e.actor.clone(),
                    client_ip: e.client_ip.clone(),
                    user_agent: e.user_agent.clone(),
                    detail: e.detail.clone(),
                })
                .collect(),
            account: AccountExport {
                username: a.username.to_string(),
                employer_code: a.employer_code,
                employer_name: a.employer_name,
                first_name: a.first_name,
                last_name: a.last_name,
                date_of_birth: a.date_of_birth,
                email: a.email.as_str().to_owned(),
                employee_number: a.employee_number,
                role: a.role.as_str().to_owned(),
                password_set: a.password_hash.is_some(),
                password_changed_at: a.password_changed_at.map(at),
                last_sign_in_at: a.last_sign_in_at.map(at),
                previous_sign_in_at: a.previous_sign_in_at.map(at),
                disabled_at: a.disabled_at.map(at),
                erased_at: a.erased_at.map(at),
                subject: a.subject,
            },
        };
        drop(conn);
        let mut event = self.event(AuditEvent::PersonExported);
        event.actor = Some(actor.audit_name());
        event.client_ip = actor.client_ip().map(str::to_owned);
        event.account_id = Some(a.id);
        event.username = Some(export.account.username.clone());
        self.audit(&event).await?;
        Ok(export)
    }

    /// Erases the personal details of the person with `username` (see
    /// [`erasure::erase`]): refused for helpdesk and admin accounts, and
    /// without a reason. Audited with the reason.
    pub async fn erase_person(
        &self,
        actor: &Actor,
        username: &str,
        reason: &str,
    ) -> Result<std::result::Result<(), ErasureRefusal>> {
        let account = self.person(actor, Action::ErasePerson, username).await?;
        if reason.trim().is_empty() {
            return Ok(Err(ErasureRefusal::NoReason));
        }
        if account.role != Role::Staff {
            return Ok(Err(ErasureRefusal::Privileged(account.role)));
        }
        let now = self.clock.now();
        let mut tx = self.begin().await?;
        if !erasure::erase(&mut tx, account.id, now).await? {
            return Ok(Err(ErasureRefusal::AlreadyErased));
        }
        let detail = format!("reason: {}", reason.trim());
        audit::record(
            &mut tx,
            &self.action(AuditEvent::PersonErased, actor, &account, detail),
        )
        .await?;
        tx.commit().await?;
        self.wake_logout_notices();
        Ok(Ok(()))
    }
}
