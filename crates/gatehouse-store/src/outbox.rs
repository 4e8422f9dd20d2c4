//! The outbox: emails written in the same transaction as what they tell,
//! taken by the outbox worker, their bodies scrubbed once they are done.

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::mail::EmailStatus;
use gatehouse_domain::{EmailAddress, Timestamp};
use sqlx::AnyConnection;

use crate::audit::{self, AuditRecord};
use crate::lease::{self, Claim, HasId};
use crate::{Result, Tx};

/// An email to put in the outbox.
#[derive(Debug, Clone)]
pub struct NewEmail {
    /// What kind of email (`recovery`, `password_changed`, `email_changed_old`, …).
    pub kind: &'static str,
    /// The address on record.
    pub recipient: EmailAddress,
    /// Subject (fixed text, never anything a person typed).
    pub subject: String,
    /// Plain-text body.
    pub text_body: String,
    /// HTML body.
    pub html_body: String,
    /// The account it concerns.
    pub account_id: Option<i64>,
    /// The recovery request it answers.
    pub recovery_request_id: Option<i64>,
    /// Never send at or after this time (when its links expire).
    pub send_by: Option<Timestamp>,
}

/// An email claimed from the outbox for one delivery try.
#[derive(Debug, Clone)]
pub struct OutboxEmail {
    /// Storage id.
    pub id: i64,
    /// What kind of email.
    pub kind: String,
    /// The address on record.
    pub recipient: EmailAddress,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub text_body: String,
    /// HTML body.
    pub html_body: String,
    /// Tries so far (this one included).
    pub attempts: u32,
    /// When it was queued.
    pub created_at: Timestamp,
    /// Never send at or after this time.
    pub send_by: Option<Timestamp>,
    /// The account it concerns.
    pub account_id: Option<i64>,
}

/// A claimed email as stored: a finished one's bodies are gone.
#[derive(sqlx::FromRow)]
struct Claimed {
    id: i64,
    kind: String,
    recipient: EmailAddress,
    subject: String,
    text_body: Option<String>,
    html_body: Option<String>,
    attempts: i64,
    created_at: Timestamp,
    send_by: Option<Timestamp>,
    account_id: Option<i64>,
}

impl HasId for Claimed {
    fn id(&self) -> i64 {
        self.id
    }
}

impl From<Claimed> for OutboxEmail {
    fn from(c: Claimed) -> Self {
        OutboxEmail {
            id: c.id,
            kind: c.kind,
            recipient: c.recipient,
            subject: c.subject,
            text_body: c.text_body.unwrap_or_default(),
            html_body: c.html_body.unwrap_or_default(),
            attempts: u32::try_from(c.attempts.max(0)).unwrap_or(u32::MAX),
            created_at: c.created_at,
            send_by: c.send_by,
            account_id: c.account_id,
        }
    }
}

/// An email as the helpdesk sees it (never its body).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxSummary {
    /// Storage id.
    pub id: i64,
    /// What kind of email.
    pub kind: String,
    /// The address.
    pub recipient: EmailAddress,
    /// Where it stands.
    pub status: EmailStatus,
    /// Tries so far.
    pub attempts: i64,
    /// The latest error, while retrying or after giving up.
    pub last_error: Option<String>,
    /// The mail server's reply when it accepted the email.
    pub smtp_reply: Option<String>,
    /// When it was queued.
    pub created_at: Timestamp,
    /// When it was sent, expired or given up.
    pub finished_at: Option<Timestamp>,
    /// When the next try is due (while queued).
    pub next_attempt_at: Timestamp,
    /// The recovery request it answers.
    pub recovery_request_id: Option<i64>,
}

/// One outbox email's try and how it ended.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The email, as claimed.
    pub email: OutboxEmail,
    /// How its try ended.
    pub result: DeliveryResult,
}

/// How an outbox email's try ended.
#[derive(Debug, Clone)]
pub enum DeliveryResult {
    /// The mail server accepted it, with this reply.
    Sent(String),
    /// It failed and is tried again at this time.
    Retry {
        /// The error.
        error: String,
        /// When to try again.
        at: Timestamp,
    },
    /// Its links expired before it could be sent.
    Expired(String),
    /// Given up.
    Failed(String),
}

/// An audit record of the outbox worker's (the actor `system`).
fn event(at: Timestamp, event: AuditEvent, account_id: Option<i64>, detail: String) -> AuditRecord {
    AuditRecord {
        actor: Some("system".to_owned()),
        account_id,
        detail: Some(detail),
        ..AuditRecord::new(at, event)
    }
}

/// Puts an email in the outbox, with its audit record. Older emails to the
/// same address that wait for a retry are made due now, so that the new one
/// (which goes out after them) is not held up by their backoff.
pub async fn enqueue(tx: &mut Tx, email: &NewEmail, now: Timestamp) -> Result<i64> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO outbox (kind, recipient, recipient_key, subject, text_body, html_body, \
         account_id, recovery_request_id, status, attempts, next_attempt_at, send_by, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $10) \
         RETURNING id",
    )
    .bind(email.kind)
    .bind(&email.recipient)
    .bind(email.recipient.key())
    .bind(&email.subject)
    .bind(&email.text_body)
    .bind(&email.html_body)
    .bind(email.account_id)
    .bind(email.recovery_request_id)
    .bind(EmailStatus::Queued)
    .bind(now)
    .bind(email.send_by)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE outbox SET next_attempt_at = $2 WHERE recipient_key = $1 \
         AND status = $4 AND next_attempt_at > $2 AND id < $3",
    )
    .bind(email.recipient.key())
    .bind(now)
    .bind(id)
    .bind(EmailStatus::Queued)
    .execute(&mut **tx)
    .await?;
    let detail = format!(
        "email {id} ({}) to {}",
        email.kind,
        email.recipient.masked()
    );
    audit::record(
        tx,
        &event(now, AuditEvent::EmailQueued, email.account_id, detail),
    )
    .await?;
    Ok(id)
}

/// Takes up to `limit` due emails, leased until `lease_until`.
///
/// Emails to one address go out in the order they were queued: one is not
/// taken while an older one to the same address is still queued (due,
/// waiting for a retry, or being sent). A recovery email replaces the links
/// of the one before, and people open the newest email in their inbox, so
/// the newest must arrive last.
pub async fn claim(
    conn: &mut AnyConnection,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> Result<Vec<OutboxEmail>> {
    let claimed: Vec<Claimed> = lease::claim(
        conn,
        &Claim {
            table: "outbox",
            due: "status = 'queued' AND next_attempt_at <= $1 \
                  AND NOT EXISTS (SELECT 1 FROM outbox AS older \
                    WHERE older.recipient_key = due.recipient_key AND older.status = 'queued' \
                    AND older.id < due.id)",
            order: "next_attempt_at, id",
            also_set: ", attempts = attempts + 1",
            returning: "id, kind, recipient, subject, text_body, html_body, attempts, \
                        created_at, send_by, account_id",
        },
        now,
        lease_until,
        limit,
    )
    .await?;
    Ok(claimed.into_iter().map(Into::into).collect())
}

/// Holds the emails `ids`, still leased at `now`, until `lease_until`: the
/// outbox worker renews the lease of emails it is still sending or has
/// sent and not yet recorded, so that no other worker sends them again.
/// Returns the ids renewed.
pub async fn renew_leases(
    conn: &mut AnyConnection,
    ids: &[i64],
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<Vec<i64>> {
    lease::renew(conn, "outbox", ids, now, lease_until).await
}

/// Records how emails' tries ended (scrubbing each body that is finished),
/// each with its audit event, in the caller's transaction: the outbox
/// worker records together the sends that ended while its last record was
/// being written, so one write serves many emails under load.
pub async fn record_deliveries(tx: &mut Tx, deliveries: &[Delivery], now: Timestamp) -> Result<()> {
    for delivery in deliveries {
        record_delivery(tx, delivery, now).await?;
    }
    Ok(())
}

async fn record_delivery(
    tx: &mut Tx,
    Delivery { email, result }: &Delivery,
    now: Timestamp,
) -> Result<()> {
    let (kind, detail) = match result {
        DeliveryResult::Sent(reply) => {
            sqlx::query(
                "UPDATE outbox SET status = 'sent', smtp_reply = $2, finished_at = $3, \
                 text_body = NULL, html_body = NULL, lease_until = NULL, last_error = NULL \
                 WHERE id = $1",
            )
            .bind(email.id)
            .bind(reply)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            (AuditEvent::EmailSent, reply.clone())
        }
        DeliveryResult::Retry { error, at } => {
            sqlx::query(
                "UPDATE outbox SET last_error = $2, next_attempt_at = $3, lease_until = NULL \
                 WHERE id = $1",
            )
            .bind(email.id)
            .bind(error)
            .bind(at)
            .execute(&mut **tx)
            .await?;
            (
                AuditEvent::EmailRetrying,
                format!("{error}; next try at {}", at.rfc3339()),
            )
        }
        DeliveryResult::Expired(error) | DeliveryResult::Failed(error) => {
            let (status, kind) = if matches!(result, DeliveryResult::Expired(_)) {
                (EmailStatus::Expired, AuditEvent::EmailExpired)
            } else {
                (EmailStatus::Failed, AuditEvent::EmailFailed)
            };
            sqlx::query(
                "UPDATE outbox SET status = $2, last_error = $3, finished_at = $4, \
                 text_body = NULL, html_body = NULL, lease_until = NULL WHERE id = $1",
            )
            .bind(email.id)
            .bind(status)
            .bind(error)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            (kind, error.clone())
        }
    };
    let detail = format!(
        "email {} ({}) to {}: {detail}",
        email.id,
        email.kind,
        email.recipient.masked()
    );
    audit::record(tx, &event(now, kind, email.account_id, detail)).await
}

/// Emails to an address, newest first.
pub async fn to_address(
    conn: &mut AnyConnection,
    email_key: &str,
    limit: u32,
) -> Result<Vec<OutboxSummary>> {
    Ok(sqlx::query_as(
        "SELECT id, kind, recipient, status, attempts, last_error, smtp_reply, created_at, \
         finished_at, next_attempt_at, recovery_request_id \
         FROM outbox WHERE recipient_key = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(email_key)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?)
}

/// Emails of `kind` queued for an address since `since`.
pub async fn count_since(
    conn: &mut AnyConnection,
    recipient_key: &str,
    kind: &str,
    since: Timestamp,
) -> Result<u32> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE recipient_key = $1 AND kind = $2 AND created_at > $3",
    )
    .bind(recipient_key)
    .bind(kind)
    .bind(since)
    .fetch_one(conn)
    .await?;
    Ok(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
}

/// Security notices (emails whose kind starts `security_`) queued for an
/// address since `since`, whatever became of them.
pub async fn security_notices_since(
    conn: &mut AnyConnection,
    recipient_key: &str,
    since: Timestamp,
) -> Result<u32> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE recipient_key = $1 AND created_at > $2 \
         AND kind LIKE 'security\\_%' ESCAPE '\\'",
    )
    .bind(recipient_key)
    .bind(since)
    .fetch_one(conn)
    .await?;
    Ok(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
}

/// The outbox's backlog: how many emails wait, and when the oldest of
/// them was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// Emails queued and not yet sent, expired or given up.
    pub queued: i64,
    /// When the oldest of them was queued (None when none waits).
    pub oldest: Option<Timestamp>,
}

/// The outbox's backlog, in one statement. Cheap whatever the outbox's
/// size: the `outbox_due` index (status first) reaches the queued rows
/// without touching the sent ones, which are nearly all of the table.
pub async fn backlog(conn: &mut AnyConnection) -> Result<Backlog> {
    let (queued, oldest): (i64, Option<Timestamp>) =
        sqlx::query_as("SELECT COUNT(*), MIN(created_at) FROM outbox WHERE status = $1")
            .bind(EmailStatus::Queued)
            .fetch_one(conn)
            .await?;
    Ok(Backlog { queued, oldest })
}

/// Emails queued and not yet sent, expired or given up.
pub async fn queued(conn: &mut AnyConnection) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status = $1")
            .bind(EmailStatus::Queued)
            .fetch_one(conn)
            .await?,
    )
}
