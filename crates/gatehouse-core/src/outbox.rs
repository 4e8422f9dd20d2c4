//! The outbox worker: it takes due emails, hands each to the mailer, and
//! records how each try ended (sent, to be retried, expired, given up),
//! so that a request confirmed on screen ends as a sent email or a recorded
//! reason even if the mail server is down for hours or a node dies.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use gatehouse_domain::mail::{AfterFailure, after_failure, still_sendable};
use gatehouse_domain::{Span, Timestamp};
use gatehouse_mail::{CONNECTIONS, Mailer, Outgoing};
use gatehouse_store::{Delivery, DeliveryResult, OutboxEmail, outbox};

use crate::{Error, Gatehouse, Result};

/// Delivers the outbox.
pub struct OutboxWorker {
    gatehouse: Gatehouse,
    mailer: Mailer,
    lease: Span,
    poll: Duration,
    concurrency: usize,
}

/// Database work a delivery run has under way, if any: a claim, a record,
/// or a renewal of leases.
type Step<'a, T> = Option<BoxFuture<'a, Result<T>>>;

/// The result of `future` when there is one; otherwise never (a branch of
/// `select!` with nothing under way).
async fn until_done<T>(future: Option<&mut BoxFuture<'_, T>>) -> T {
    match future {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// Keeps the first failure of a delivery run.
fn note(failure: &mut Option<Error>, done: Result<()>) {
    if let Err(e) = done {
        failure.get_or_insert(e);
    }
}

impl OutboxWorker {
    /// A worker delivering the outbox through `mailer`, holding each email
    /// it takes for the configured worker lease (longer than the mail
    /// timeout, so a slow send is never taken by a second worker).
    pub fn new(gatehouse: &Gatehouse, mailer: Mailer) -> Self {
        Self {
            lease: gatehouse.settings.worker_lease,
            gatehouse: gatehouse.clone(),
            mailer,
            poll: Duration::from_secs(1),
            concurrency: CONNECTIONS,
        }
    }

    /// How often the outbox is checked when nothing wakes the worker.
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Delivers everything due now; returns how many emails were tried.
    ///
    /// Up to `concurrency` sends are in flight at once, and a connection
    /// that frees is given the next email without waiting for the others:
    /// claiming in batches and waiting for each batch to finish held every
    /// connection for the batch's slowest send (one mail server that stalls
    /// an answer for its full timeout held up every email after it). An
    /// email is claimed only when a connection is free for it, so its lease
    /// starts as its send does.
    ///
    /// The database work batches itself: one claim at a time takes every
    /// connection that freed while the last claim ran, and one write at a
    /// time records every try that ended while the last write ran. Under
    /// load a write serves many emails; at rest each email gets its own at
    /// once. A try is recorded as soon as the writer is free, which keeps
    /// short the time between the mail server's "accepted" and its record
    /// (the window in which a crash makes another node send it again).
    ///
    /// An email's lease is renewed while it is being sent or waits to be
    /// recorded, once a third of it has gone: under load its record may
    /// wait for the database longer than the lease, and a lease that ran
    /// out meanwhile let another worker send it a second time. Only a
    /// worker that stops (its node dies) lets its emails' leases run out.
    pub async fn run_once(&self) -> Result<usize> {
        let mut sending = futures_util::stream::FuturesUnordered::new();
        let mut ended: Vec<Delivery> = Vec::new();
        let mut claim: Step<'_, (Vec<OutboxEmail>, Timestamp)> = None;
        let mut record: Step<'_, ()> = None;
        let mut renewal: Step<'_, (Vec<i64>, Timestamp)> = None;
        // Each email claimed and not yet recorded, with when its lease ends.
        let mut held: BTreeMap<i64, Timestamp> = BTreeMap::new();
        let mut recording: Vec<i64> = Vec::new();
        let mut renew_tick = tokio::time::interval(self.poll);
        renew_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tried = 0;
        let mut drained = false;
        let mut failure = None;
        loop {
            // After a failure nothing more is claimed, but the sends under
            // way finish and are recorded: an email the mail server took is
            // recorded as sent.
            if claim.is_none()
                && !drained
                && failure.is_none()
                && sending.len() < self.concurrency
                && ended.len() < self.concurrency
            {
                let free = u32::try_from(self.concurrency - sending.len()).unwrap_or(u32::MAX);
                claim = Some(Box::pin(self.claim(free)));
            }
            if record.is_none() && !ended.is_empty() {
                let deliveries = std::mem::take(&mut ended);
                recording = deliveries.iter().map(|d| d.email.id).collect();
                record = Some(Box::pin(async move { self.record(&deliveries).await }));
            }
            if claim.is_none() && record.is_none() && renewal.is_none() && sending.is_empty() {
                break;
            }
            tokio::select! {
                claimed = until_done(claim.as_mut()) => {
                    claim = None;
                    match claimed {
                        Ok((batch, _)) if batch.is_empty() => drained = true,
                        Ok((batch, lease_until)) => {
                            tried += batch.len();
                            held.extend(batch.iter().map(|email| (email.id, lease_until)));
                            sending.extend(batch.into_iter().map(|email| async move {
                                let result = self.deliver(&email).await;
                                Delivery { email, result }
                            }));
                        }
                        Err(e) => note(&mut failure, Err(e)),
                    }
                }
                recorded = until_done(record.as_mut()) => {
                    record = None;
                    for id in recording.drain(..) {
                        held.remove(&id);
                    }
                    note(&mut failure, recorded);
                }
                renewed = until_done(renewal.as_mut()) => {
                    renewal = None;
                    match renewed {
                        Ok((ids, lease_until)) => {
                            for id in ids {
                                if let Some(until) = held.get_mut(&id) {
                                    *until = lease_until;
                                }
                            }
                        }
                        // The next tick tries again; the lease has two
                        // thirds of its length to go when renewal starts.
                        Err(e) => tracing::warn!(error = %crate::error::chain(&e), "outbox leases could not be renewed"),
                    }
                }
                _ = renew_tick.tick(), if renewal.is_none() && !held.is_empty() => {
                    let due = self.leases_to_renew(&held);
                    if !due.is_empty() {
                        renewal = Some(Box::pin(self.renew(due)));
                    }
                }
                Some(delivery) = sending.next() => ended.push(delivery),
                // A run lasts as long as its slowest send (up to the mail
                // timeout when a relay stalls): emails queued meanwhile, on
                // this node (which wakes the worker) or another (which only
                // the poll finds), are claimed within it.
                () = self.gatehouse.outbox_wake.notified(), if drained => drained = false,
                () = tokio::time::sleep(self.poll), if drained => drained = false,
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(tried),
        }
    }

    /// Takes up to `free` due emails, for as long as the lease; returns
    /// them and when their lease ends.
    async fn claim(&self, free: u32) -> Result<(Vec<OutboxEmail>, Timestamp)> {
        let now = self.gatehouse.clock.now();
        let lease_until = now.plus(self.lease);
        let mut db = self.gatehouse.write().await?;
        let batch = outbox::claim(&mut db, now, lease_until, free).await?;
        Ok((batch, lease_until))
    }

    /// The held emails a third of whose lease has gone. Those being
    /// recorded are among them: on PostgreSQL the record locks its rows
    /// one by one, and a row it has not reached yet is still only leased.
    fn leases_to_renew(&self, held: &BTreeMap<i64, Timestamp>) -> Vec<i64> {
        let now = self.gatehouse.clock.now();
        let left = Span::from_seconds(self.lease.seconds() * 2 / 3);
        held.iter()
            .filter(|(_, until)| **until <= now.plus(left))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Holds `ids` for another lease; returns those renewed and until when.
    async fn renew(&self, ids: Vec<i64>) -> Result<(Vec<i64>, Timestamp)> {
        let now = self.gatehouse.clock.now();
        let lease_until = now.plus(self.lease);
        let mut db = self.gatehouse.write().await?;
        let renewed = outbox::renew_leases(&mut db, &ids, now, lease_until).await?;
        Ok((renewed, lease_until))
    }

    /// Records how tries ended, together.
    async fn record(&self, deliveries: &[Delivery]) -> Result<()> {
        let mut tx = self.gatehouse.begin().await?;
        outbox::record_deliveries(&mut tx, deliveries, self.gatehouse.clock.now()).await?;
        tx.commit().await?;
        for delivery in deliveries {
            self.gatehouse.metrics.email(match delivery.result {
                DeliveryResult::Sent(_) => "sent",
                DeliveryResult::Retry { .. } => "retrying",
                DeliveryResult::Failed(_) => "failed",
                DeliveryResult::Expired(_) => "expired",
            });
        }
        Ok(())
    }

    async fn deliver(&self, email: &OutboxEmail) -> DeliveryResult {
        let now = self.gatehouse.clock.now();
        if !still_sendable(email.send_by, now) {
            return DeliveryResult::Expired(
                "its links expired before the mail server could take it".to_owned(),
            );
        }
        let outgoing = Outgoing {
            id: email.id,
            created_at: email.created_at,
            recipient: email.recipient.as_str(),
            subject: &email.subject,
            text_body: &email.text_body,
            html_body: &email.html_body,
        };
        match self.mailer.send(&outgoing).await {
            Ok(reply) => {
                tracing::info!(email = email.id, kind = %email.kind, "email sent");
                DeliveryResult::Sent(reply)
            }
            Err(failure) => {
                let now = self.gatehouse.clock.now();
                tracing::warn!(email = email.id, attempts = email.attempts, error = %failure.message, "email not sent");
                match after_failure(
                    email.attempts,
                    now,
                    email.created_at,
                    email.send_by,
                    failure.permanent,
                ) {
                    AfterFailure::RetryAt(at) => DeliveryResult::Retry {
                        error: failure.message,
                        at,
                    },
                    AfterFailure::Expired => DeliveryResult::Expired(format!(
                        "its links would expire before the next try; last error: {}",
                        failure.message
                    )),
                    AfterFailure::GiveUp => DeliveryResult::Failed(failure.message),
                }
            }
        }
    }

    /// Delivers until `shutdown` resolves, waking when told or every poll interval.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            match self.run_once().await {
                Ok(_) => self.gatehouse.metrics.worker_ran("outbox"),
                Err(e) => {
                    tracing::error!(error = %crate::error::chain(&e), "outbox delivery failed; retrying shortly");
                }
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = self.gatehouse.outbox_wake.notified() => {}
                () = tokio::time::sleep(self.poll) => {}
            }
        }
    }
}
