//! The service's own key: form tokens and the cookie that carries an opened
//! reset link are MACs under it ([`gatehouse_domain::keys`]). The stand-in
//! passkey ids have a key of their own that is never rotated.
//!
//! Every node reads the same key from the database, and reads it again
//! before checking a tag once a minute has passed, so that a rotation (from
//! the command line, another process) retires the old key on every node
//! within a minute. A tag that does not verify also sends the node back to
//! the database first (at most every few seconds): another node may already
//! be signing with the new key.

use std::sync::{Mutex, RwLock};

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::keys::{KeyRing, MacKey};
use gatehouse_domain::{SecretToken, Span, Timestamp};
use gatehouse_store::{SqlStore, keys};

use crate::{Action, Actor, Error, Gatehouse, Result};

/// The stored purpose of the key for forms and the reset link cookie.
const FORMS: &str = "forms";

/// The stored purpose of the key for stand-in passkey ids. It is never
/// rotated: a stand-in must stay the same for as long as a real passkey's
/// id does, or asking about a username before and after a rotation would
/// tell a stand-in (it changed) from a real passkey (it did not).
const DECOYS: &str = "passkey decoys";

/// How long a node goes on with the keys it read before reading them again.
const REFRESH_EVERY: Span = Span::from_seconds(60);

/// Reads of the keys after a tag fails to verify are at least this far
/// apart, so that a flood of bad tokens is not a flood of reads.
const RELOAD_AT_MOST_EVERY: Span = Span::from_seconds(5);

/// What a MAC is made for: a tag made for one is never valid for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The form token of a signed-in (or reset) session.
    SessionForm,
    /// The form token of a visitor without a session (sign-in, recovery).
    PublicForm,
    /// The cookie that carries an opened reset link to its form.
    ResetLink,
    /// The cookie that holds an application's request while the person signs in.
    PendingAuthorization,
    /// The stand-in passkey named for a username with none (or nobody's).
    PasskeyDecoy,
}

impl Purpose {
    fn label(self) -> &'static str {
        match self {
            Purpose::SessionForm => "gatehouse session form",
            Purpose::PublicForm => "gatehouse public form",
            Purpose::ResetLink => "gatehouse reset link",
            Purpose::PendingAuthorization => "gatehouse pending authorization",
            Purpose::PasskeyDecoy => "gatehouse passkey decoy",
        }
    }
}

/// The keys a process holds, and when it last read them.
#[derive(Debug)]
pub struct ServiceKeys {
    ring: RwLock<KeyRing>,
    /// The stand-in passkeys' key, read once: it never changes.
    decoys: KeyRing,
    /// When the keys were last read, on the service's clock.
    read_at: Mutex<Timestamp>,
}

/// Reads the service's keys, storing fresh ones on the first start.
pub async fn load_keys(store: &SqlStore, now: Timestamp) -> Result<ServiceKeys> {
    Ok(ServiceKeys {
        ring: RwLock::new(read_ring(store, FORMS, now, true).await?),
        decoys: read_ring(store, DECOYS, now, true).await?,
        read_at: Mutex::new(now),
    })
}

async fn read_ring(
    store: &SqlStore,
    purpose: &str,
    now: Timestamp,
    create: bool,
) -> Result<KeyRing> {
    let mut keys = keys::newest(&mut *store.read().await?, purpose).await?;
    // Written only when missing (the first start): every command starts by
    // reading the keys, and on SQLite a write waits for the file's one
    // write lock, which an import may hold for minutes.
    if create && keys.is_empty() {
        let first = MacKey::generate()?;
        keys::create_first(&mut *store.write().await?, purpose, first.as_bytes(), now).await?;
        keys = keys::newest(&mut *store.read().await?, purpose).await?;
    }
    let mut keys = keys.iter().map(|k| MacKey::from_slice(&k.secret));
    match (keys.next(), keys.next()) {
        (Some(Some(current)), previous) => Ok(KeyRing::new(current, previous.flatten())),
        _ => Err(Error::Internal(
            "the service's key is missing or malformed in the database".to_owned(),
        )),
    }
}

impl Gatehouse {
    fn ring(&self) -> KeyRing {
        match self.keys.ring.read() {
            Ok(ring) => ring.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The tag of `message` for `purpose`, under the current key (for a
    /// stand-in passkey, under the key kept for them).
    pub fn sign(&self, purpose: Purpose, message: &[u8]) -> String {
        match purpose {
            Purpose::PasskeyDecoy => self.keys.decoys.sign(purpose.label(), message),
            _ => self.ring().sign(purpose.label(), message),
        }
    }

    /// Whether `tag` is the tag of `message` for `purpose`. The keys are
    /// read again first when a minute has passed since they last were, and
    /// again before a refusal if they have not been read for a few seconds.
    pub async fn verify(&self, purpose: Purpose, message: &[u8], tag: &str) -> Result<bool> {
        if self.read_keys_if_older_than(REFRESH_EVERY).await? {
            return Ok(self.ring().verify(purpose.label(), message, tag));
        }
        if self.ring().verify(purpose.label(), message, tag) {
            return Ok(true);
        }
        self.read_keys_if_older_than(RELOAD_AT_MOST_EVERY).await?;
        Ok(self.ring().verify(purpose.label(), message, tag))
    }

    /// Reads the keys from the database if they were read longer than `age`
    /// ago; whether it did.
    async fn read_keys_if_older_than(&self, age: Span) -> Result<bool> {
        let now = self.clock.now();
        {
            let mut read_at = match self.keys.read_at.lock() {
                Ok(r) => r,
                Err(poisoned) => poisoned.into_inner(),
            };
            if now.seconds_since(*read_at) < age.seconds() {
                return Ok(false);
            }
            *read_at = now;
        }
        let fresh = read_ring(&self.store, FORMS, now, false).await?;
        self.replace_ring(fresh);
        Ok(true)
    }

    fn replace_ring(&self, fresh: KeyRing) {
        match self.keys.ring.write() {
            Ok(mut ring) => *ring = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
    }

    /// The form token that goes with a secret the visitor's browser holds
    /// (a session id, a form id).
    pub fn form_token(&self, purpose: Purpose, cookie: &SecretToken) -> String {
        self.sign(purpose, cookie.encode().as_bytes())
    }

    /// Whether `token` is the form token of `cookie`.
    pub async fn form_token_matches(
        &self,
        purpose: Purpose,
        cookie: &SecretToken,
        token: &str,
    ) -> Result<bool> {
        self.verify(purpose, cookie.encode().as_bytes(), token)
            .await
    }

    /// Replaces the service's key (the operator's task): new form tokens
    /// and reset link cookies use the new key; those made with the key
    /// before are accepted until the next rotation. Returns the new
    /// generation.
    pub async fn rotate_keys(&self, actor: &Actor) -> Result<i64> {
        self.authorise(actor, Action::ManagePrivilege, None).await?;
        let key = MacKey::generate()?;
        let now = self.clock.now();
        let mut event = self.event(AuditEvent::KeysRotated);
        event.actor = Some(actor.audit_name());
        event.client_ip = actor.client_ip().map(str::to_owned);
        let mut tx = self.begin().await?;
        let generation = keys::rotate(&mut tx, FORMS, key.as_bytes(), now).await?;
        event.detail = Some(format!("generation {generation}"));
        gatehouse_store::audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        self.replace_ring(read_ring(&self.store, FORMS, now, false).await?);
        Ok(generation)
    }
}
