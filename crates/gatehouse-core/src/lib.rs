//! Gatehouse's services: sign-in, recovery, reset, sessions, import and
//! account administration.
//!
//! Each service takes parsed input, applies the domain's rules, and uses the
//! store's transactions so that what must happen together does. The web
//! handlers and the command line are thin layers over [`Gatehouse`].

use std::sync::Arc;

use gatehouse_domain::Clock;
use gatehouse_store::{AuditRecord, Store};
use tokio::sync::Notify;

pub mod accounts;
pub mod actor;
pub mod administration;
pub mod audit_log;
pub mod emails;
pub mod error;
pub mod hashing;
pub mod import;
pub mod keys;
pub mod privileged;
pub mod recovery;
pub mod reset;
pub mod sessions;
pub mod set_up;
pub mod settings;
pub mod sign_in;

pub use actor::{Action, Actor, Member};
pub use error::{Error, Result};
pub use hashing::{HashParams, PasswordHasher};
pub use settings::Settings;

/// Everything the services need, shared by every request and worker.
#[derive(Clone)]
pub struct Gatehouse {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// The time source for every decision.
    pub clock: Arc<dyn Clock>,
    /// Password hashing, with bounded concurrency.
    pub hasher: Arc<PasswordHasher>,
    /// Deployment settings.
    pub settings: Arc<Settings>,
    /// Wakes the recovery worker when a request is recorded.
    pub recovery_wake: Arc<Notify>,
    /// Wakes the outbox worker when an email is queued.
    pub outbox_wake: Arc<Notify>,
    /// The service's key, for form tokens and the reset link cookie.
    keys: Arc<keys::ServiceKeys>,
}

impl std::fmt::Debug for Gatehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatehouse")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Gatehouse {
    /// Wires the services together; `keys` come from [`keys::load_keys`].
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hasher: Arc<PasswordHasher>,
        settings: Settings,
        keys: keys::ServiceKeys,
    ) -> Self {
        Self {
            keys: Arc::new(keys),
            store,
            clock,
            hasher,
            settings: Arc::new(settings),
            recovery_wake: Arc::new(Notify::new()),
            outbox_wake: Arc::new(Notify::new()),
        }
    }

    /// An audit record for `event` at the current time.
    pub(crate) fn event(&self, event: gatehouse_domain::audit::AuditEvent) -> AuditRecord {
        AuditRecord {
            at: Some(self.clock.now()),
            event: event.as_str().to_owned(),
            ..AuditRecord::default()
        }
    }
}

impl Gatehouse {
    /// An audit record of `event`, done by `actor` to `account`.
    pub(crate) fn action(
        &self,
        event: gatehouse_domain::audit::AuditEvent,
        actor: &Actor,
        account: &gatehouse_store::AccountRecord,
        detail: String,
    ) -> AuditRecord {
        AuditRecord {
            actor: Some(actor.audit_name()),
            client_ip: actor.client_ip().map(str::to_owned),
            account_id: Some(account.id),
            username: Some(account.username.clone()),
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
        target: Option<&gatehouse_store::AccountRecord>,
    ) -> Result<()> {
        if actor.permits(action, target.map(privileged::role_of)) {
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
        target: Option<&gatehouse_store::AccountRecord>,
    ) -> Error {
        let role = target.map(privileged::role_of);
        let mut event = self.event(gatehouse_domain::audit::AuditEvent::ConsoleRefused);
        event.actor = Some(actor.audit_name());
        event.client_ip = actor.client_ip().map(str::to_owned);
        event.account_id = target.map(|a| a.id);
        event.username = target.map(|a| a.username.clone());
        event.detail = Some(match (target, role) {
            (Some(a), Some(role)) => format!(
                "{} may not {} {} account {}",
                actor.audit_name(),
                action.describe(),
                role.as_str(),
                a.username
            ),
            _ => format!("{} may not {}", actor.audit_name(), action.describe()),
        });
        match self.store.audit(&event).await {
            Ok(()) => Error::NotPermitted,
            Err(e) => e.into(),
        }
    }
}

/// A short, non-reversible reference to something that must not be stored
/// as typed (an unknown username may be a password typed in the wrong box).
pub(crate) fn reference(text: &str) -> String {
    gatehouse_domain::token::reference_of(text.as_bytes())
}
