//! Password hashing: argon2id with the OWASP parameters, off the async
//! threads, with bounded concurrency.
//!
//! Each hash holds 19 MiB for tens of milliseconds of CPU. A flood of sign-in
//! attempts (a Monday morning, or an attack) must not queue without bound or
//! run the machine out of memory, so hashing needs a [`HashPermit`], there are
//! only as many permits as cores, and a request that cannot get one within a
//! short wait is told the service is busy.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB (OWASP: 19456, i.e. 19 MiB).
    pub memory_kib: u32,
    /// Passes (OWASP: 2).
    pub iterations: u32,
    /// Lanes (OWASP: 1).
    pub parallelism: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Hashing could not run.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every permit stayed in use for the whole wait: the service is busy.
    #[error("password hashing is at capacity")]
    Busy,
    /// Hashing itself failed (bad parameters, a corrupt stored hash is not this).
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// The right to run one hashing operation at a time.
pub struct HashPermit(#[allow(dead_code)] OwnedSemaphorePermit);

/// The result of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Right password; `rehash` when the stored hash uses older parameters.
    Match {
        /// Whether to store a new hash with the current parameters.
        rehash: bool,
    },
    /// Wrong password (or no password, or an unknown account).
    NoMatch,
}

/// Hashes and verifies passwords.
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    max_wait: Duration,
    dummy: String,
    verifications: AtomicU64,
    hashes: AtomicU64,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .field("permits", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

impl PasswordHasher {
    /// A hasher allowing `permits` hashes at once, each waiting at most `max_wait` for its turn.
    ///
    /// Computes the dummy hash used for unknown usernames, so it costs one hash.
    pub fn new(params: HashParams, permits: usize, max_wait: Duration) -> Result<Self, HashError> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            Some(Params::DEFAULT_OUTPUT_LEN),
        )
        .map_err(|e| HashError::Failed(e.to_string()))?;
        let secret = gatehouse_domain::SecretToken::generate()
            .map_err(|e| HashError::Failed(e.to_string()))?
            .encode();
        let dummy = argon2(&params)
            .hash_password(secret.as_bytes())
            .map_err(|e| HashError::Failed(e.to_string()))?
            .to_string();
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(permits.max(1))),
            max_wait,
            dummy,
            verifications: AtomicU64::new(0),
            hashes: AtomicU64::new(0),
        })
    }

    /// Waits (at most the configured time) for the right to hash.
    pub async fn permit(&self) -> Result<HashPermit, HashError> {
        match tokio::time::timeout(self.max_wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(HashPermit(permit)),
            Ok(Err(_)) | Err(_) => Err(HashError::Busy),
        }
    }

    /// Checks `password` against a stored PHC string, or against the dummy
    /// hash when there is none, so that unknown usernames and accounts
    /// without a password take as long as real ones.
    pub async fn verify(
        &self,
        _permit: &HashPermit,
        password: &str,
        stored: Option<&str>,
    ) -> Result<Verification, HashError> {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let (phc, real) = match stored {
            Some(s) => (s.to_owned(), true),
            None => (self.dummy.clone(), false),
        };
        let password = password.to_owned();
        let current = self.params.clone();
        tokio::task::spawn_blocking(move || {
            let Ok(hash) = PasswordHash::new(&phc) else {
                // A corrupt stored hash: nothing can match it.
                return Verification::NoMatch;
            };
            let params = Params::try_from(&hash).ok();
            match argon2(&current).verify_password(password.as_bytes(), &hash) {
                Ok(()) if real => Verification::Match {
                    rehash: params.as_ref() != Some(&current),
                },
                _ => Verification::NoMatch,
            }
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))
    }

    /// Hashes a new password into a PHC string with the current parameters.
    pub async fn hash(&self, _permit: &HashPermit, password: &str) -> Result<String, HashError> {
        self.hashes.fetch_add(1, Ordering::Relaxed);
        let password = password.to_owned();
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || {
            argon2(&params)
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| HashError::Failed(e.to_string()))
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))?
    }

    /// How many password checks have run (for tests and metrics).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// How many new hashes have been made.
    pub fn hashes(&self) -> u64 {
        self.hashes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(permits: usize, wait_ms: u64) -> PasswordHasher {
        PasswordHasher::new(
            HashParams::default(),
            permits,
            Duration::from_millis(wait_ms),
        )
        .expect("hasher")
    }

    #[tokio::test]
    async fn a_hash_verifies_only_its_own_password() {
        let h = hasher(2, 1000);
        let permit = h.permit().await.expect("permit");
        let phc = h
            .hash(&permit, "kettle violin marmalade")
            .await
            .expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(
            h.verify(&permit, "kettle violin marmalade", Some(&phc))
                .await
                .expect("verify"),
            Verification::Match { rehash: false }
        );
        assert_eq!(
            h.verify(&permit, "kettle violin marmalad", Some(&phc))
                .await
                .expect("verify"),
            Verification::NoMatch
        );
        assert_eq!(
            h.verify(&permit, "anything", None).await.expect("verify"),
            Verification::NoMatch
        );
        assert_eq!(
            h.verify(&permit, "anything", Some("not a hash"))
                .await
                .expect("verify"),
            Verification::NoMatch
        );
    }

    #[tokio::test]
    async fn hashes_with_old_parameters_ask_to_be_upgraded() {
        let weak = PasswordHasher::new(
            HashParams {
                memory_kib: 8192,
                iterations: 1,
                parallelism: 1,
            },
            1,
            Duration::from_secs(1),
        )
        .expect("hasher");
        let permit = weak.permit().await.expect("permit");
        let old = weak
            .hash(&permit, "kettle violin marmalade")
            .await
            .expect("hash");
        let strong = hasher(1, 1000);
        let permit = strong.permit().await.expect("permit");
        assert_eq!(
            strong
                .verify(&permit, "kettle violin marmalade", Some(&old))
                .await
                .expect("verify"),
            Verification::Match { rehash: true }
        );
    }

    #[tokio::test]
    async fn a_full_hasher_says_busy_after_the_wait() {
        let h = hasher(1, 50);
        let _held = h.permit().await.expect("permit");
        assert!(matches!(h.permit().await, Err(HashError::Busy)));
    }
}
