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
pub mod audit_log;
pub mod emails;
pub mod error;
pub mod hashing;
pub mod import;
pub mod privileged;
pub mod recovery;
pub mod reset;
pub mod sessions;
pub mod settings;
pub mod sign_in;

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
}

impl std::fmt::Debug for Gatehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatehouse")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Gatehouse {
    /// Wires the services together.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hasher: Arc<PasswordHasher>,
        settings: Settings,
    ) -> Self {
        Self {
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

/// Who did an administrative action, and from where: the audit log must
/// say both (a helpdesk member's client address lets an investigator tie a
/// change to a desk). The command line has no client address.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// How the audit log names the actor ("helpdesk 999AKHAN01", "admin (command line)").
    pub name: &'a str,
    /// The client address the web layer knows, if the action came over the web.
    pub client_ip: Option<&'a str>,
}

impl<'a> Actor<'a> {
    /// An actor at a client address.
    pub fn at(name: &'a str, client_ip: &'a str) -> Self {
        Self {
            name,
            client_ip: Some(client_ip),
        }
    }
}

impl<'a> From<&'a str> for Actor<'a> {
    fn from(name: &'a str) -> Self {
        Self {
            name,
            client_ip: None,
        }
    }
}

impl<'a> From<&'a String> for Actor<'a> {
    fn from(name: &'a String) -> Self {
        Self::from(name.as_str())
    }
}

impl Gatehouse {
    /// An audit record of `event`, done by `actor` to `account`.
    pub(crate) fn action(
        &self,
        event: gatehouse_domain::audit::AuditEvent,
        actor: Actor<'_>,
        account: &gatehouse_store::AccountRecord,
        detail: String,
    ) -> AuditRecord {
        AuditRecord {
            actor: Some(actor.name.to_owned()),
            client_ip: actor.client_ip.map(str::to_owned),
            account_id: Some(account.id),
            username: Some(account.username.clone()),
            detail: Some(detail),
            ..self.event(event)
        }
    }
}

/// A short, non-reversible reference to something that must not be stored
/// as typed (an unknown username may be a password typed in the wrong box).
pub(crate) fn reference(text: &str) -> String {
    gatehouse_domain::token::reference_of(text.as_bytes())
}
