//! "Forgotten | Request Username/Password | Unlock Account".
//!
//! A valid request is only recorded, durably, and answered with the
//! confirmation: the same page whatever the outcome, after the same work
//! (one insert) whatever the outcome. The recovery worker then matches it
//! against the records and, in one transaction, issues links, voids older
//! ones and writes the email to the outbox, or records why nothing was sent.

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::recovery::RecoveryRequest;
use gatehouse_domain::reset_link::{LinkPurpose, VoidReason};
use gatehouse_domain::{RecoveryOutcome, SecretToken, Span};
use gatehouse_store::{
    NewEmail, NewResetLink, RecoveryRequestRow, accounts, attempts, audit, outbox, recovery,
    reset_links,
};

use crate::Caller;
use crate::emails::{RecoveryEmail, RecoveryEntry};
use crate::{Gatehouse, Result};

/// What became of a submitted (valid) recovery form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Recorded: show the confirmation.
    Recorded,
    /// Refused: too many requests from this client address this hour.
    ClientLimit,
}

/// The kind under which recovery emails are stored and throttled.
pub const RECOVERY_EMAIL: &str = "recovery";

impl Gatehouse {
    /// Records a recovery request (or refuses it: too many from this client).
    pub async fn request_recovery(
        &self,
        request: &RecoveryRequest,
        caller: &Caller,
    ) -> Result<RequestOutcome> {
        let now = self.clock.now();
        let cap = self.settings.policy.recovery.requests_per_client_per_hour;
        let mut tx = self.begin().await?;
        let recent = recovery::count_from(&mut tx, &caller.ip, now.minus(Span::hours(1))).await?;
        let mut event = self.event(AuditEvent::RecoveryRequested);
        event.client_ip = Some(caller.ip.clone());
        event.user_agent = caller.user_agent.clone();
        if recent >= cap {
            event.event = AuditEvent::RecoveryRefusedClientLimit;
            event.detail = Some(format!(
                "{recent} requests from this address in the last hour"
            ));
            audit::record(&mut tx, &event).await?;
            tx.commit().await?;
            self.metrics.recovery_request("client_limit");
            return Ok(RequestOutcome::ClientLimit);
        }
        let id = recovery::insert(
            &mut tx,
            &request.email.key(),
            &request.date_of_birth.iso(),
            request.username.as_deref(),
            &caller.ip,
            now,
        )
        .await?;
        event.detail = Some(format!(
            "request {id} for {}{}",
            request.email.masked(),
            if request.username.is_some() {
                " with a username"
            } else {
                ""
            }
        ));
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        self.recovery_wake.notify_one();
        Ok(RequestOutcome::Recorded)
    }

    /// Processes every pending recovery request; returns how many.
    pub async fn process_recovery_requests(&self) -> Result<usize> {
        let mut done = 0;
        loop {
            let now = self.clock.now();
            let batch = recovery::claim(
                &mut *self.write().await?,
                now,
                now.plus(self.settings.worker_lease),
                16,
            )
            .await?;
            if batch.is_empty() {
                return Ok(done);
            }
            for request in &batch {
                self.process_recovery_request(request).await?;
                done += 1;
            }
        }
    }

    async fn process_recovery_request(&self, request: &RecoveryRequestRow) -> Result<()> {
        let now = self.clock.now();
        let settings = &self.settings;
        let mut tx = self.begin().await?;
        let accounts = accounts::for_recovery(
            &mut tx,
            &request.email_key,
            &request.date_of_birth,
            request.username_key.as_deref(),
        )
        .await?;
        let mut email = None;
        let mut issued = Vec::new();
        let mut locked_accounts = 0u32;
        let outcome = match accounts.first() {
            None => RecoveryOutcome::NoMatch,
            Some(first) => {
                let recipient = first.email.clone();
                let sent = outbox::count_since(
                    &mut tx,
                    &recipient.key(),
                    RECOVERY_EMAIL,
                    now.minus(Span::hours(1)),
                )
                .await?;
                if !settings.allowed_domains.permits(&recipient) {
                    RecoveryOutcome::DomainNotAllowed
                } else if sent >= settings.policy.recovery.emails_per_address_per_hour {
                    RecoveryOutcome::Throttled
                } else {
                    let expires = now.plus(settings.policy.reset_link_ttl);
                    let mut entries = Vec::with_capacity(accounts.len());
                    for account in &accounts {
                        let counter =
                            attempts::read_for_update(&mut tx, &account.username_key()).await?;
                        let locked = counter.locked_at(now);
                        let link = match locked {
                            Some(_) => None,
                            None => {
                                // A newer request voids older links (seed: "You
                                // cannot reuse old password reset emails").
                                reset_links::void(
                                    &mut tx,
                                    account.id,
                                    VoidReason::Replaced,
                                    now,
                                    None,
                                )
                                .await?;
                                let token = SecretToken::generate()?;
                                reset_links::insert(
                                    &mut tx,
                                    &NewResetLink {
                                        account_id: account.id,
                                        hash: &token.hash(),
                                        purpose: LinkPurpose::Reset,
                                        recovery_request_id: Some(request.id),
                                        now,
                                        expires_at: expires,
                                    },
                                )
                                .await?;
                                issued.push((
                                    account.id,
                                    account.username.to_string(),
                                    token.hash(),
                                ));
                                Some(settings.link(&format!("/reset/{}", token.encode())))
                            }
                        };
                        entries.push(RecoveryEntry {
                            employer: account.employer_name.clone(),
                            username: account.username.to_string(),
                            first_time: account.password_hash.is_none(),
                            link,
                            locked_until: locked.map(|until| settings.when(until)),
                        });
                    }
                    let has_links = entries.iter().any(|e| e.link.is_some());
                    locked_accounts =
                        u32::try_from(entries.iter().filter(|e| e.locked_until.is_some()).count())
                            .unwrap_or(u32::MAX);
                    let content = RecoveryEmail {
                        service: settings.service_name.clone(),
                        accounts: entries,
                        ttl: settings.policy.reset_link_ttl.for_people(),
                        has_links,
                    };
                    let (text_body, html_body) = content.bodies()?;
                    email = Some(NewEmail {
                        kind: RECOVERY_EMAIL,
                        recipient,
                        subject: content.subject(),
                        text_body,
                        html_body,
                        account_id: (accounts.len() == 1).then_some(first.id),
                        recovery_request_id: Some(request.id),
                        send_by: has_links.then_some(expires),
                    });
                    RecoveryOutcome::Matched(u32::try_from(accounts.len()).unwrap_or(u32::MAX))
                }
            }
        };
        if !recovery::finish(&mut tx, request.id, outcome, locked_accounts, now).await? {
            // Another worker finished it while this one worked: keep theirs.
            return Ok(());
        }
        if let Some(email) = &email {
            outbox::enqueue(&mut tx, email, now).await?;
        }
        for (account_id, username, hash) in &issued {
            let mut event = self.event(AuditEvent::ResetLinkIssued);
            event.account_id = Some(*account_id);
            event.username = Some(username.clone());
            event.detail = Some(format!(
                "link {} for request {}",
                hash.reference(),
                request.id
            ));
            audit::record(&mut tx, &event).await?;
        }
        let mut event = self.event(AuditEvent::RecoveryProcessed);
        event.client_ip = Some(request.client_ip.clone());
        event.account_id = (accounts.len() == 1).then(|| accounts[0].id);
        event.detail = Some(match outcome {
            RecoveryOutcome::Matched(n) => format!(
                "request {}: matched {n} account{}",
                request.id,
                if n == 1 { "" } else { "s" }
            ),
            other => format!("request {}: {}", request.id, other.as_str()),
        });
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        // After the commit, and only by the worker whose outcome stands.
        self.metrics.recovery_request(outcome.as_str());
        if email.is_some() {
            self.outbox_wake.notify_one();
        }
        Ok(())
    }
}
