//! Forgetting what has outlived its retention period (the operator's
//! settings, [`crate::settings::Retention`]), in small batches, each its
//! own transaction, so a backlog never holds the database for long.

use gatehouse_domain::Timestamp;
use gatehouse_domain::audit::AuditEvent;
use gatehouse_store::{Connection, audit, erasure, retention};

use crate::{Gatehouse, Result};

/// Rows deleted by one statement.
pub const BATCH: u32 = 1000;

/// Batches of one kind in one pass of the worker: what is left waits for
/// the next pass (every 10 minutes), so a first pass over years of history
/// does not keep the worker from its other work.
const BATCHES_PER_PASS: u32 = 100;

/// A kind of record forgotten by age.
#[derive(Debug, Clone, Copy)]
enum Kind {
    AuditEvents,
    Emails,
    Links,
    Requests,
}

/// What one pass forgot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPass {
    /// Audit events older than their period.
    pub audit_events: u64,
    /// Finished emails' records.
    pub emails: u64,
    /// Expired reset links.
    pub links: u64,
    /// Processed recovery requests.
    pub requests: u64,
    /// Disabled staff accounts whose personal details were erased.
    pub erased: u64,
}

impl RetentionPass {
    /// Rows (and accounts) in all.
    pub fn total(&self) -> u64 {
        self.audit_events + self.emails + self.links + self.requests + self.erased
    }
}

impl Gatehouse {
    /// Forgets what is past its retention period at the current time, a
    /// batch of [`BATCH`] at a time; what one pass leaves, the next takes.
    /// Audited (as the system) when anything went.
    pub async fn apply_retention(&self) -> Result<RetentionPass> {
        let now = self.clock.now();
        let r = self.settings.retention;
        let finished = now.minus(r.finished_requests);
        let pass = RetentionPass {
            audit_events: self
                .in_batches(now.minus(r.audit_events), Kind::AuditEvents)
                .await?,
            emails: self.in_batches(finished, Kind::Emails).await?,
            links: self.in_batches(finished, Kind::Links).await?,
            requests: self.in_batches(finished, Kind::Requests).await?,
            erased: match r.erase_disabled_after {
                Some(after) => self.erase_disabled_before(now.minus(after), now).await?,
                None => 0,
            },
        };
        if pass.total() > 0 {
            let mut event = self.event(AuditEvent::RetentionApplied);
            event.actor = Some("system".to_owned());
            event.detail = Some(format!(
                "{} audit event(s), {} email record(s), {} reset link(s), {} recovery request(s) forgotten; {} disabled account(s) erased",
                pass.audit_events, pass.emails, pass.links, pass.requests, pass.erased
            ));
            self.audit(&event).await?;
        }
        Ok(pass)
    }

    /// Forgets one kind of record until a batch comes back short, or the
    /// pass's share is spent; returns how many rows went.
    async fn in_batches(&self, before: Timestamp, kind: Kind) -> Result<u64> {
        let mut total = 0;
        for _ in 0..BATCHES_PER_PASS {
            let conn: &mut Connection = &mut *self.write().await?;
            let gone = match kind {
                Kind::AuditEvents => retention::forget_audit_events(conn, before, BATCH).await?,
                Kind::Emails => retention::forget_finished_emails(conn, before, BATCH).await?,
                Kind::Links => retention::forget_expired_links(conn, before, BATCH).await?,
                Kind::Requests => retention::forget_finished_requests(conn, before, BATCH).await?,
            };
            total += gone;
            if gone < u64::from(BATCH) {
                break;
            }
        }
        Ok(total)
    }

    /// Erases the personal details of staff accounts disabled before
    /// `before`, each in its own transaction with its audit record.
    async fn erase_disabled_before(&self, before: Timestamp, now: Timestamp) -> Result<u64> {
        let mut erased = 0;
        for _ in 0..BATCHES_PER_PASS {
            let ids = retention::disabled_to_erase(&mut *self.read().await?, before, BATCH).await?;
            for &id in &ids {
                let mut tx = self.begin().await?;
                let Some(account) = gatehouse_store::accounts::by_id(&mut tx, id).await? else {
                    continue;
                };
                if erasure::erase(&mut tx, id, now).await? {
                    let mut event = self.event(AuditEvent::PersonErased);
                    event.actor = Some("system".to_owned());
                    event.account_id = Some(id);
                    event.username = Some(account.username.to_string());
                    event.detail =
                        Some("disabled for longer than GATEHOUSE_ERASE_DISABLED_AFTER".to_owned());
                    audit::record(&mut tx, &event).await?;
                    erased += 1;
                }
                tx.commit().await?;
            }
            if ids.len() < BATCH as usize {
                break;
            }
        }
        if erased > 0 {
            self.wake_logout_notices();
        }
        Ok(erased)
    }
}
