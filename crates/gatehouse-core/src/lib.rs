//! Gatehouse's services: sign-in, recovery, reset, sessions, import and
//! account administration, and the permissions that guard them.
//!
//! Each service takes parsed input, applies the domain's rules, checks the
//! actor when it is an administrative action, and uses the store's
//! transactions so that what must happen together does. The web handlers
//! and the command line are thin layers over [`Gatehouse`]; nothing above
//! this crate talks to the store.

use std::sync::Arc;

use gatehouse_domain::Clock;
use gatehouse_domain::audit::AuditEvent;
use gatehouse_store::{AuditRecord, Pooled, SqlStore, Tx, audit};
use tokio::sync::Notify;

pub mod accounts;
mod activity;
pub mod actor;
pub mod administration;
pub mod audit_log;
pub mod backup;
pub mod caller;
pub mod emails;
pub mod error;
pub mod hashing;
pub mod housekeeping;
pub mod import;
pub mod keys;
pub mod lockout;
pub mod mail_history;
pub mod metrics;
pub mod oidc;
pub mod outbox;
pub mod own_account;
pub mod passkeys;
pub mod person;
pub mod privileged;
pub mod recovery;
pub mod reset;
pub mod retention;
pub mod security_notices;
pub mod sessions;
pub mod set_up;
pub mod settings;
pub mod sign_in;

pub use actor::{Action, Actor, Member};
pub use caller::Caller;
pub use error::{Error, Result};
/// The records core hands to its callers: read-only values, so that the
/// web layer and the command line never need the store itself.
pub use gatehouse_store::{AccountRecord, ImportSummary, SessionRecord};
pub use hashing::{HashParams, PasswordHasher};
pub use settings::Settings;

/// Everything the services need, shared by every request and worker.
#[derive(Clone)]
pub struct Gatehouse {
    /// Storage.
    store: SqlStore,
    /// The time source for every decision.
    clock: Arc<dyn Clock>,
    /// Password hashing, with bounded concurrency.
    hasher: Arc<PasswordHasher>,
    /// Deployment settings.
    settings: Arc<Settings>,
    /// Wakes the recovery worker when a request is recorded.
    recovery_wake: Arc<Notify>,
    /// Wakes the outbox worker when an email is queued.
    outbox_wake: Arc<Notify>,
    /// The service's key, for form tokens and the reset link cookie.
    keys: Arc<keys::ServiceKeys>,
    /// The keys that sign ID tokens and logout tokens.
    signing: Arc<oidc::signing::SigningKeys>,
    /// Wakes the back-channel logout worker when a notice is queued.
    logout_wake: Arc<Notify>,
    /// What this process tells monitoring.
    metrics: Arc<metrics::Metrics>,
}

impl std::fmt::Debug for Gatehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatehouse")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Gatehouse {
    /// Wires the services together; `keys` come from [`keys::load_keys`],
    /// `signing` from [`oidc::signing::load_signing_keys`].
    pub fn new(
        store: SqlStore,
        clock: Arc<dyn Clock>,
        hasher: Arc<PasswordHasher>,
        settings: Settings,
        keys: keys::ServiceKeys,
        signing: oidc::signing::SigningKeys,
    ) -> Self {
        Self {
            metrics: Arc::new(metrics::Metrics::new(hasher.metrics())),
            keys: Arc::new(keys),
            signing: Arc::new(signing),
            logout_wake: Arc::new(Notify::new()),
            store,
            clock,
            hasher,
            settings: Arc::new(settings),
            recovery_wake: Arc::new(Notify::new()),
            outbox_wake: Arc::new(Notify::new()),
        }
    }

    /// The deployment's settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The time source every decision uses.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Password hashing (for the benchmarks' raw rate beside the service's).
    pub fn hasher(&self) -> &Arc<PasswordHasher> {
        &self.hasher
    }

    /// Tells this process's outbox worker that an email is due now, rather
    /// than at its next look (emails queued by another process, say).
    pub fn wake_outbox(&self) {
        self.outbox_wake.notify_one();
    }

    /// What a new password for `account` must not be built from: its
    /// username, the person's names, the service's own words.
    pub(crate) fn password_context(
        &self,
        account: &AccountRecord,
    ) -> gatehouse_domain::password::PasswordContext {
        gatehouse_domain::password::PasswordContext {
            username: account.username.to_string(),
            names: vec![account.first_name.clone(), account.last_name.clone()],
            service_words: vec![
                self.settings.service_name.clone(),
                "NHS".to_owned(),
                "ESR".to_owned(),
            ],
        }
    }

    /// A connection for reads.
    pub(crate) async fn read(&self) -> Result<Pooled> {
        Ok(self.store.read().await?)
    }

    /// A connection for a statement that writes on its own.
    pub(crate) async fn write(&self) -> Result<Pooled> {
        Ok(self.store.write().await?)
    }

    /// A write transaction.
    pub(crate) async fn begin(&self) -> Result<Tx> {
        Ok(self.store.begin().await?)
    }

    /// Records a security event on its own.
    pub(crate) async fn audit(&self, record: &AuditRecord) -> Result<()> {
        Ok(audit::record(&mut *self.write().await?, record).await?)
    }

    /// An audit record for `event` at the current time.
    pub(crate) fn event(&self, event: AuditEvent) -> AuditRecord {
        AuditRecord::new(self.clock.now(), event)
    }

    /// An audit record of `event`, about `account`, from `caller`.
    pub(crate) fn event_about(
        &self,
        event: AuditEvent,
        account: &AccountRecord,
        caller: &Caller,
    ) -> AuditRecord {
        AuditRecord {
            account_id: Some(account.id),
            username: Some(account.username.to_string()),
            client_ip: Some(caller.ip.clone()),
            user_agent: caller.user_agent.clone(),
            ..self.event(event)
        }
    }

    /// An audit record of `event`, done by `actor` to `account`.
    pub(crate) fn action(
        &self,
        event: AuditEvent,
        actor: &Actor,
        account: &AccountRecord,
        detail: String,
    ) -> AuditRecord {
        AuditRecord {
            actor: Some(actor.audit_name()),
            client_ip: actor.client_ip().map(str::to_owned),
            account_id: Some(account.id),
            username: Some(account.username.to_string()),
            detail: Some(detail),
            ..self.event(event)
        }
    }

    /// Passes if `actor` may do `action` to `target` (or to no one account);
    /// otherwise records the refusal and answers [`Error::NotPermitted`].
    pub(crate) async fn authorise(
        &self,
        actor: &Actor,
        action: Action,
        target: Option<&AccountRecord>,
    ) -> Result<()> {
        if actor.permits(action, target.map(|a| a.role)) {
            return Ok(());
        }
        Err(self.refuse(actor, action, target).await)
    }

    /// Records that `actor` was refused `action` on `target`, and answers
    /// [`Error::NotPermitted`] (or the storage error that kept the refusal
    /// from being recorded).
    pub(crate) async fn refuse(
        &self,
        actor: &Actor,
        action: Action,
        target: Option<&AccountRecord>,
    ) -> Error {
        let mut event = self.event(AuditEvent::ConsoleRefused);
        event.actor = Some(actor.audit_name());
        event.client_ip = actor.client_ip().map(str::to_owned);
        event.account_id = target.map(|a| a.id);
        event.username = target.map(|a| a.username.to_string());
        event.detail = Some(match target {
            Some(a) => format!(
                "{} may not {} {} account {}",
                actor.audit_name(),
                action.describe(),
                a.role.as_str(),
                a.username
            ),
            None => format!("{} may not {}", actor.audit_name(), action.describe()),
        });
        match self.audit(&event).await {
            Ok(()) => Error::NotPermitted,
            Err(e) => e,
        }
    }
}

/// Makes ring (already in the tree under sqlx and lettre) the process's TLS
/// provider, for the HTTP client that posts back-channel logout tokens and
/// any other client built without naming one. Call it once at start; a
/// second call changes nothing.
pub fn use_ring_for_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A short, non-reversible reference to something that must not be stored
/// as typed (an unknown username may be a password typed in the wrong box).
pub(crate) fn reference(text: &str) -> String {
    gatehouse_domain::token::reference_of(text.as_bytes())
}
