//! Password hashing: argon2id with the OWASP parameters, off the async
//! threads, with bounded concurrency.
//!
//! Each hash holds 19 MiB for tens of milliseconds of CPU. A flood of sign-in
//! attempts (a Monday morning, or an attack) must not queue without bound or
//! run the machine out of memory, so hashing needs a [`HashPermit`], there are
//! only as many permits as cores, and a request that cannot get one within a
//! short wait is told the service is busy.
//!
//! Two limits, because a sign-in does more than hash: a [`HashPermit`] admits
//! a request (twice as many as may hash at once, so that while one request
//! writes its claimed attempt to the database another is ready to hash), and
//! the hash itself runs only when one of the `concurrency` hashing slots is
//! free. Holding one permit per core across the database write left a core
//! idle during every write: 0.77 of the raw hash rate, against 0.91 with the
//! admission doubled (BENCHMARKS.md). Memory and CPU stay bounded by the
//! hashing slots.
//!
//! The 19 MiB of each hash is not allocated per hash: a freshly allocated
//! block costs the kernel a page fault per 4 KiB and glibc keeps freed blocks
//! in per-thread arenas, so a server hashing on tokio's blocking threads grew
//! to about 480 MiB and spent a quarter of its time in the kernel
//! (BENCHMARKS.md). Each hash borrows a block buffer from [`Memory`]
//! instead, which never holds more buffers than there are permits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
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

/// Admission to work that hashes: at most twice the hashing slots are out.
/// How long permits are held is what [`PasswordHasher::permit`] uses to
/// tell how long a queue would take.
pub struct HashPermit {
    _permit: OwnedSemaphorePermit,
    since: std::time::Instant,
    held: Arc<AtomicU64>,
}

impl Drop for HashPermit {
    fn drop(&mut self) {
        fold(&self.held, self.since.elapsed());
    }
}

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

/// Reusable argon2 block buffers, at most one per permit.
#[derive(Default)]
struct Memory(Mutex<Vec<Box<[Block]>>>);

impl Memory {
    /// Runs `f` with a buffer of at least `blocks` blocks, returning it to
    /// the pool afterwards. A stored hash with a larger memory cost than the
    /// current one (never made by this service) gets a buffer of its own.
    fn with<T>(&self, blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
        let pooled = self.0.lock().map(|mut pool| pool.pop()).unwrap_or(None);
        let mut buffer = match pooled {
            Some(buffer) if buffer.len() >= blocks => buffer,
            _ => vec![Block::default(); blocks].into_boxed_slice(),
        };
        let result = f(&mut buffer[..blocks]);
        if let Ok(mut pool) = self.0.lock() {
            pool.push(buffer);
        }
        result
    }
}

/// Counts a request as waiting for admission while it lives.
struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Folds a duration into a moving average of microseconds (7/8 old).
fn fold(average: &AtomicU64, took: Duration) {
    let old = average.load(Ordering::Relaxed);
    average.store(
        (old.saturating_mul(7) + micros(took)) / 8,
        Ordering::Relaxed,
    );
}

/// Hashes and verifies passwords.
pub struct PasswordHasher {
    params: Params,
    memory: Arc<Memory>,
    permits: Arc<Semaphore>,
    slots: Arc<Semaphore>,
    concurrency: usize,
    /// Requests waiting for admission now.
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    /// How long a permit is held (a moving average, in microseconds): with
    /// every permit in use, one is released every `held / permits`.
    held_micros: Arc<AtomicU64>,
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

/// A new argon2id PHC string for `password` with a random salt.
fn hash_with(memory: &Memory, params: &Params, password: &[u8]) -> Result<String, HashError> {
    let failed = |e: &dyn std::fmt::Display| HashError::Failed(e.to_string());
    let salt = Salt::generate();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    memory
        .with(params.block_count(), |blocks| {
            argon2(params).hash_password_into_with_memory(password, &salt, &mut out, blocks)
        })
        .map_err(|e| failed(&e))?;
    let hash = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| failed(&e))?,
        salt: Some(salt),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `phc`, and the parameters it
/// was made with (None when it cannot be read: nothing matches it).
fn check(memory: &Memory, phc: &str, password: &[u8]) -> Option<(bool, Params)> {
    let hash = PasswordHash::new(phc).ok()?;
    let algorithm = Algorithm::try_from(hash.algorithm.as_str()).ok()?;
    let version = match hash.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(&hash).ok()?;
    let (salt, expected) = (hash.salt.as_ref()?, hash.hash.as_ref()?);
    let mut out = vec![0u8; expected.len()];
    let hashed = memory.with(params.block_count(), |blocks| {
        Argon2::new(algorithm, version, params.clone())
            .hash_password_into_with_memory(password, salt, &mut out, blocks)
    });
    // Output's equality is constant-time.
    let matched = hashed.is_ok() && Output::new(&out).is_ok_and(|computed| &computed == expected);
    Some((matched, params))
}

thread_local! {
    static BATCH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the current thread as batch work (Linux `SCHED_BATCH`, nice 5),
/// once per thread. With a hash on every core, the short request work that
/// feeds the next hash (a database round trip, an HTTP answer) otherwise
/// waited behind a running hash for the scheduler's whole slice (3 ms)
/// while the other core sat idle (`perf sched timehist`, BENCHMARKS.md):
/// a batch thread is preempted at once by the request threads it feeds,
/// and still has the cores to itself whenever they have nothing to do.
/// The threads are tokio's blocking pool, so other blocking work that later
/// lands on them (writing .eml files) runs the same way: all of it is
/// background work that no request waits on as closely.
fn yield_to_request_work() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    BATCH.with(|done| {
        if done.replace(true) {
            return;
        }
        let nice_5 = ThreadPriorityValue::try_from(35u8).map(ThreadPriority::Crossplatform);
        if let Ok(priority) = nice_5 {
            // Best effort: without it, hashing is as fast, only less fair.
            let _ = set_thread_priority_and_policy(
                thread_native_id(),
                priority,
                ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch),
            );
        }
    });
}

impl PasswordHasher {
    /// A hasher running `concurrency` hashes at once, admitting twice that
    /// many requests, each waiting at most `max_wait` for admission.
    ///
    /// Computes the dummy hash used for unknown usernames, so it costs one hash.
    pub fn new(
        params: HashParams,
        concurrency: usize,
        max_wait: Duration,
    ) -> Result<Self, HashError> {
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
        let memory = Arc::new(Memory::default());
        let started = std::time::Instant::now();
        let dummy = hash_with(&memory, &params, secret.as_bytes())?;
        let held_micros = Arc::new(AtomicU64::new(micros(started.elapsed())));
        Ok(Self {
            params,
            memory,
            permits: Arc::new(Semaphore::new(concurrency.max(1) * 2)),
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            concurrency: concurrency.max(1),
            waiting: Arc::default(),
            held_micros,
            max_wait,
            dummy,
            verifications: AtomicU64::new(0),
            hashes: AtomicU64::new(0),
        })
    }

    /// Waits (at most the configured time) for admission.
    ///
    /// When the requests already waiting would take longer than that to
    /// hash, this one could only time out: it is told "busy" at once, so
    /// that excess load gets a quick answer rather than a wait that ends in
    /// the same refusal.
    pub async fn permit(&self) -> Result<HashPermit, HashError> {
        let admitted = |permit| HashPermit {
            _permit: permit,
            since: std::time::Instant::now(),
            held: self.held_micros.clone(),
        };
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(admitted(permit));
        }
        let ahead = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        let held = Duration::from_micros(self.held_micros.load(Ordering::Relaxed));
        let permits = u32::try_from(self.concurrency * 2).unwrap_or(u32::MAX);
        let expected = held.saturating_mul(u32::try_from(ahead + 1).unwrap_or(u32::MAX)) / permits;
        // With a margin: the estimate is an average, and a request that
        // waits the whole time only to be refused is the worst answer.
        if expected > self.max_wait.mul_f64(0.75) {
            return Err(HashError::Busy);
        }
        match tokio::time::timeout(self.max_wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(admitted(permit)),
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
        let memory = self.memory.clone();
        let slot = self.slot().await?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            yield_to_request_work();
            check(&memory, &phc, password.as_bytes())
        })
        .await
        .map(|checked| match checked {
            Some((true, params)) if real => Verification::Match {
                rehash: params != current,
            },
            // A wrong password, or a corrupt stored hash nothing can match.
            _ => Verification::NoMatch,
        })
        .map_err(|e| HashError::Failed(e.to_string()))
    }

    /// Hashes a new password into a PHC string with the current parameters.
    pub async fn hash(&self, _permit: &HashPermit, password: &str) -> Result<String, HashError> {
        self.hashes.fetch_add(1, Ordering::Relaxed);
        let password = password.to_owned();
        let params = self.params.clone();
        let memory = self.memory.clone();
        let slot = self.slot().await?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            yield_to_request_work();
            hash_with(&memory, &params, password.as_bytes())
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))?
    }

    /// A hashing slot, moved into the blocking task so that it is held for
    /// as long as the hash runs even if the request is dropped meanwhile.
    /// Admission bounds the wait to about one hash.
    async fn slot(&self) -> Result<OwnedSemaphorePermit, HashError> {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| HashError::Failed(e.to_string()))
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

    #[cfg(target_os = "linux")]
    #[test]
    fn a_hashing_thread_gives_way_to_request_work() {
        // /proc/thread-self/stat: field 19 is the nice value, 41 the policy
        // (3 = SCHED_BATCH); counted after the command name's parenthesis.
        let policy_and_nice = || {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
            let fields: Vec<String> = stat
                .rsplit_once(") ")
                .expect("name")
                .1
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            (fields[38].clone(), fields[16].clone())
        };
        std::thread::spawn(move || {
            assert_eq!(policy_and_nice(), ("0".to_owned(), "0".to_owned()));
            yield_to_request_work();
            assert_eq!(policy_and_nice(), ("3".to_owned(), "5".to_owned()));
        })
        .join()
        .expect("thread");
    }

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
    async fn hashes_agree_with_the_argon2_crates_own_format() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let h = hasher(1, 1000);
        let permit = h.permit().await.expect("permit");
        let standard = argon2(&h.params)
            .hash_password(b"kettle violin marmalade")
            .expect("hash")
            .to_string();
        assert_eq!(
            h.verify(&permit, "kettle violin marmalade", Some(&standard))
                .await
                .expect("verify"),
            Verification::Match { rehash: false }
        );
        let ours = h
            .hash(&permit, "kettle violin marmalade")
            .await
            .expect("hash");
        let parsed = PasswordHash::new(&ours).expect("a PHC string");
        assert!(
            argon2(&h.params)
                .verify_password(b"kettle violin marmalade", &parsed)
                .is_ok()
        );
        assert!(
            argon2(&h.params)
                .verify_password(b"kettle violin marmalad", &parsed)
                .is_err()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn hash_memory_is_held_once_per_permit_however_many_ask() {
        let h = Arc::new(hasher(2, 10_000));
        let phc = {
            let permit = h.permit().await.expect("permit");
            h.hash(&permit, "kettle violin marmalade")
                .await
                .expect("hash")
        };
        let mut checks = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let (h, phc) = (h.clone(), phc.clone());
            checks.spawn(async move {
                let permit = h.permit().await.expect("permit");
                h.verify(&permit, "kettle violin marmalade", Some(&phc))
                    .await
            });
        }
        while let Some(check) = checks.join_next().await {
            assert_eq!(
                check.expect("task").expect("verify"),
                Verification::Match { rehash: false }
            );
        }
        let buffers = h.memory.0.lock().expect("pool").len();
        assert!(
            (1..=2).contains(&buffers),
            "{buffers} buffers for 2 permits"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn when_the_queue_is_longer_than_the_wait_the_excess_is_told_busy_at_once() {
        let h = Arc::new(hasher(1, 2_000));
        // A permit is held 200 ms here and 2 are admitted, so the 1.5 s of
        // waiting it promises (3/4 of the 2 s) serves about 15.
        h.held_micros.store(200_000, Ordering::Relaxed);
        let _held = [
            h.permit().await.expect("permit"),
            h.permit().await.expect("permit"),
        ];
        let mut waiters = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let h = h.clone();
            waiters.spawn(async move {
                let started = std::time::Instant::now();
                let busy = matches!(h.permit().await, Err(HashError::Busy));
                (busy, started.elapsed())
            });
        }
        let (mut quick, mut waited) = (0, 0);
        while let Some(done) = waiters.join_next().await {
            let (busy, took) = done.expect("task");
            assert!(busy, "nothing is released, so every waiter is refused");
            if took < Duration::from_millis(1_000) {
                quick += 1;
            } else {
                waited += 1;
            }
        }
        assert!(
            quick >= 75,
            "{quick} refused at once, {waited} after waiting"
        );
        assert!(
            waited >= 10,
            "the ones that could be served in time do wait: {waited}"
        );
    }

    #[tokio::test]
    async fn a_full_hasher_says_busy_after_the_wait() {
        let h = hasher(1, 50);
        let _held = h.permit().await.expect("permit");
        let _also = h.permit().await.expect("twice the slots are admitted");
        assert!(matches!(h.permit().await, Err(HashError::Busy)));
    }
}
