//! The keys that sign ID tokens and logout tokens: one RS256 and one ES256
//! key signing at a time, made on the first start and shared by every node
//! through the database.
//!
//! Each node reads the published keys again once they are a few seconds
//! old, so a rotation made anywhere is served by every node's JWKS within
//! seconds. A new key is published at once but signs only from
//! [`PUBLISH_AHEAD`] later, so that clients that cache the JWKS have
//! fetched it before they meet a token it signed; the key it replaces stays
//! published until every token it signed has expired.

use std::sync::{Arc, Mutex, RwLock};

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::oidc::jose::{self, Jwk, SigningAlg, SigningKey};
use gatehouse_domain::{Span, Timestamp};
use gatehouse_store::SqlStore;
use gatehouse_store::oidc::signing_keys::{self, Rotation, SigningKeyRow};

use crate::{Action, Actor, Error, Gatehouse, Result};

/// How long a new key is published before it signs. The JWKS is served
/// with a cache lifetime of a fifth of this.
pub const PUBLISH_AHEAD: Span = Span::minutes(10);

/// How long clients may cache the JWKS.
pub const JWKS_CACHE: Span = Span::minutes(2);

/// How long a node goes on with the keys it read before reading them again.
const REFRESH_EVERY: Span = Span::from_seconds(5);

/// A key a node can sign with or publish.
#[derive(Debug)]
struct Held {
    key: SigningKey,
    signs_from: Timestamp,
    signs_until: Option<Timestamp>,
}

impl Held {
    fn signs_at(&self, now: Timestamp) -> bool {
        self.signs_from <= now && self.signs_until.is_none_or(|until| now < until)
    }
}

/// The published keys a process holds, and when it last read them.
#[derive(Debug)]
pub struct SigningKeys {
    held: RwLock<Arc<Vec<Held>>>,
    read_at: Mutex<Timestamp>,
}

/// Reads the signing keys, making each algorithm's first key on the first
/// start (and sealing any plain key once a key-encryption key is set).
pub async fn load_signing_keys(
    store: &SqlStore,
    kek: Option<&jose::KeyEncryptionKey>,
    now: Timestamp,
) -> Result<SigningKeys> {
    for alg in SigningAlg::ALL {
        let have = signing_keys::published(&mut *store.read().await?, now)
            .await?
            .iter()
            .any(|k| k.alg == alg);
        if !have {
            let row = new_row(alg, kek, now, now)?;
            signing_keys::insert_first(&mut *store.write().await?, &row).await?;
        }
    }
    if let Some(kek) = kek {
        for row in signing_keys::all(&mut *store.read().await?).await? {
            if !jose::is_sealed(&row.private_key) {
                let sealed = kek
                    .seal(&row.kid, &row.private_key)
                    .map_err(|e| Error::Internal(e.to_string()))?;
                signing_keys::reseal(&mut *store.write().await?, &row.kid, &sealed).await?;
            }
        }
    }
    Ok(SigningKeys {
        held: RwLock::new(Arc::new(read_held(store, kek, now).await?)),
        read_at: Mutex::new(now),
    })
}

/// A new key's row, its private key sealed when a key-encryption key is set.
fn new_row(
    alg: SigningAlg,
    kek: Option<&jose::KeyEncryptionKey>,
    now: Timestamp,
    signs_from: Timestamp,
) -> Result<SigningKeyRow> {
    let (key, der) = SigningKey::generate(alg).map_err(|e| Error::Internal(e.to_string()))?;
    let private_key = match kek {
        Some(kek) => kek
            .seal(key.kid(), der.as_bytes())
            .map_err(|e| Error::Internal(e.to_string()))?,
        None => der.as_bytes().to_vec(),
    };
    let public_jwk =
        serde_json::to_string(key.public_jwk()).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(SigningKeyRow {
        kid: key.kid().to_owned(),
        alg,
        generation: 0,
        private_key,
        public_jwk,
        created_at: now,
        signs_from,
        signs_until: None,
        published_until: None,
    })
}

async fn read_held(
    store: &SqlStore,
    kek: Option<&jose::KeyEncryptionKey>,
    now: Timestamp,
) -> Result<Vec<Held>> {
    let rows = signing_keys::published(&mut *store.read().await?, now).await?;
    rows.iter()
        .map(|row| {
            let der = jose::unseal(kek, &row.kid, &row.private_key).map_err(|e| match e {
                jose::JoseError::Sealed(why) => Error::Internal(why),
                other => Error::Internal(format!("signing key {}: {other}", row.kid)),
            })?;
            let key = SigningKey::from_pkcs8(row.alg, &der)
                .map_err(|e| Error::Internal(format!("signing key {}: {e}", row.kid)))?;
            Ok(Held {
                key,
                signs_from: row.signs_from,
                signs_until: row.signs_until,
            })
        })
        .collect()
}

impl Gatehouse {
    fn held(&self) -> Arc<Vec<Held>> {
        match self.signing.held.read() {
            Ok(held) => held.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the keys again if they are older than a few seconds.
    async fn fresh_keys(&self) -> Result<Arc<Vec<Held>>> {
        let now = self.clock.now();
        let stale = {
            let mut read_at = match self.signing.read_at.lock() {
                Ok(r) => r,
                Err(poisoned) => poisoned.into_inner(),
            };
            let stale = now.seconds_since(*read_at) >= REFRESH_EVERY.seconds();
            if stale {
                *read_at = now;
            }
            stale
        };
        if stale {
            let kek = self.settings.key_encryption_key.as_deref();
            let fresh = Arc::new(read_held(&self.store, kek, now).await?);
            match self.signing.held.write() {
                Ok(mut held) => *held = fresh.clone(),
                Err(poisoned) => *poisoned.into_inner() = fresh.clone(),
            }
            return Ok(fresh);
        }
        Ok(self.held())
    }

    /// Signs `claims` with the key signing now for `alg`.
    pub(crate) async fn sign_token(
        &self,
        alg: SigningAlg,
        typ: Option<&str>,
        claims: &impl serde::Serialize,
    ) -> Result<String> {
        let now = self.clock.now();
        let held = self.fresh_keys().await?;
        let key = held
            .iter()
            .filter(|h| h.key.alg() == alg && h.signs_at(now))
            .max_by_key(|h| h.signs_from)
            .ok_or_else(|| Error::Internal(format!("no {alg} key signs at this time")))?;
        key.key
            .sign(typ, claims)
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// The claims of a token this service signed, if its signature verifies
    /// under a published key (its expiry is the caller's to judge: an
    /// expired ID token is still a good `id_token_hint`).
    pub(crate) async fn verify_own_token(&self, token: &str) -> Result<Option<serde_json::Value>> {
        let Some(kid) = jose::kid_of(token) else {
            return Ok(None);
        };
        let held = self.fresh_keys().await?;
        Ok(held
            .iter()
            .find(|h| h.key.kid() == kid)
            .and_then(|h| h.key.public_jwk().verify(token).ok()))
    }

    /// The JWK set (RFC 7517 §5): every published key.
    pub async fn jwks(&self) -> Result<serde_json::Value> {
        let held = self.fresh_keys().await?;
        let keys: Vec<&Jwk> = held.iter().map(|h| h.key.public_jwk()).collect();
        Ok(serde_json::json!({ "keys": keys }))
    }

    /// Replaces the signing keys (the operator's task): new keys are
    /// published now and sign from [`PUBLISH_AHEAD`] later, or at once when
    /// `immediately` (a key that may be compromised: its tokens stop being
    /// accepted at once too). Returns the new keys' ids.
    pub async fn rotate_signing_keys(
        &self,
        actor: &Actor,
        immediately: bool,
    ) -> Result<Vec<(SigningAlg, String)>> {
        self.authorise(actor, Action::ManageClients, None).await?;
        let now = self.clock.now();
        let switch_at = if immediately {
            now
        } else {
            now.plus(PUBLISH_AHEAD)
        };
        // The old keys' last tokens expire a token lifetime after they stop.
        let withdraw_at = if immediately {
            now
        } else {
            let longest = self
                .settings
                .access_token_lifetime
                .max(gatehouse_domain::oidc::LOGOUT_TOKEN_LIFETIME);
            switch_at.plus(longest).plus(JWKS_CACHE)
        };
        let kek = self.settings.key_encryption_key.as_deref();
        let rows = SigningAlg::ALL
            .iter()
            .map(|alg| new_row(*alg, kek, now, switch_at))
            .collect::<Result<Vec<_>>>()?;
        let mut tx = self.begin().await?;
        let mut made = Vec::new();
        for row in &rows {
            let generation = signing_keys::rotate(
                &mut tx,
                &Rotation {
                    key: row,
                    switch_at,
                    withdraw_at,
                },
            )
            .await?;
            made.push(format!("{} {} (generation {generation})", row.alg, row.kid));
        }
        let mut event = self.event(AuditEvent::SigningKeysRotated);
        event.actor = Some(actor.audit_name());
        event.client_ip = actor.client_ip().map(str::to_owned);
        event.detail = Some(format!(
            "{}; signing from {}{}",
            made.join(", "),
            switch_at.rfc3339(),
            if immediately { " (immediately)" } else { "" }
        ));
        gatehouse_store::audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        // Read at once on this node; other nodes within seconds.
        if let Ok(mut read_at) = self.signing.read_at.lock() {
            *read_at = Timestamp::from_unix(0);
        }
        self.fresh_keys().await?;
        Ok(rows.into_iter().map(|r| (r.alg, r.kid)).collect())
    }
}
