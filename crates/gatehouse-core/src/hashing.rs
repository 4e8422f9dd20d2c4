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
//! the hash itself runs on one of `concurrency` hashing threads, which take
//! queued hashes in turn. Holding one permit per core across the database
//! write left a core idle during every write: 0.77 of the raw hash rate,
//! against 0.91 with the admission doubled (BENCHMARKS.md). Memory and CPU
//! stay bounded by the hashing threads.
//!
//! The 19 MiB of each hash is not allocated per hash: a freshly allocated
//! block costs the kernel a page fault per 4 KiB and glibc keeps freed blocks
//! in per-thread arenas, so a server hashing on tokio's blocking threads grew
//! to about 480 MiB and spent a quarter of its time in the kernel
//! (BENCHMARKS.md). Each hashing thread keeps one arena instead.
//!
//! The hash is computed by `argon2-rust`, a port of the reference
//! implementation that picks AVX-512, AVX2, SSE2 or NEON code at run time:
//! about twice the verifications per second of the RustCrypto `argon2` crate
//! on the machine measured, whose AVX2 path is its portable code compiled
//! for AVX2 (BENCHMARKS.md, `bench/argon2-implementations.sh`). The PHC
//! strings are still read and written by the RustCrypto crates, and the
//! tests check that both crates compute the same hashes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Params, PasswordHash, Version};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
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

impl HashParams {
    /// Argon2id (version 0x13) with these parameters and a tag of
    /// `output_len` bytes, as the service computes it for a new password:
    /// the bench's baseline uses exactly this.
    pub fn argon2id(&self, output_len: usize) -> Result<argon2_rust::Argon2, HashError> {
        let failed = |e: &dyn std::fmt::Display| HashError::Failed(e.to_string());
        let params = Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(output_len),
        )
        .map_err(|e| failed(&e))?;
        implementation(Algorithm::Argon2id, Version::V0x13, &params, output_len)
            .map_err(|e| failed(&e))
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

/// Work for a hashing thread: it is lent the thread's arena, and says
/// whether it hashed (false: its caller had gone, nothing was done).
type Job = Box<dyn FnOnce(&mut Arena) -> bool + Send>;

/// A hashing thread's argon2 memory, taken at its first hash and kept: one
/// per hashing thread, however many requests are admitted.
#[derive(Default)]
struct Arena(Option<argon2_rust::Hasher>);

impl Arena {
    /// Computes the tag of `password` and `salt` under `argon2` into `out`.
    /// The kept memory grows to the current parameters' size
    /// (`current_kib`); a stored hash with a larger memory cost than the
    /// current one (never made by this service) gets memory of its own for
    /// that hash only, so that one old hash cannot raise the memory every
    /// thread keeps.
    fn hash_into(
        &mut self,
        argon2: argon2_rust::Argon2,
        current_kib: u32,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), argon2_rust::Error> {
        if argon2.params().memory_kib() > current_kib {
            return argon2.hash_into(password, salt, out);
        }
        let hasher = self.0.get_or_insert_with(|| argon2.hasher());
        hasher.set_argon2(argon2);
        hasher.hash_into(password, salt, out)
    }

    /// Blocks of memory kept.
    fn kept(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, argon2_rust::Hasher::reserved_blocks)
    }
}

/// The same hash in `argon2-rust`'s terms, its lanes computed one after
/// another on the calling thread (only the hashing threads hash).
fn implementation(
    algorithm: Algorithm,
    version: Version,
    params: &Params,
    output_len: usize,
) -> Result<argon2_rust::Argon2, argon2_rust::Error> {
    use argon2_rust::params::{Memory, TagLen};
    let algorithm = match algorithm {
        Algorithm::Argon2d => argon2_rust::Algorithm::Argon2d,
        Algorithm::Argon2i => argon2_rust::Algorithm::Argon2i,
        Algorithm::Argon2id => argon2_rust::Algorithm::Argon2id,
    };
    let version = match version {
        Version::V0x10 => argon2_rust::Version::V0x10,
        Version::V0x13 => argon2_rust::Version::V0x13,
    };
    let params = argon2_rust::Params::builder()
        .memory(Memory::kib(u64::from(params.m_cost())))
        .passes(params.t_cost())
        .lanes(params.p_cost())
        .threads(1)
        .tag_len(TagLen::bytes(output_len as u64))
        .build()?;
    Ok(argon2_rust::Argon2::new(algorithm, version, params))
}

/// Hashes waiting for a hashing thread, first come first served.
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
    /// Buffers allocated by the hashing threads (for tests: the memory bound).
    buffers: AtomicUsize,
    /// Hashes skipped because their caller had gone before they started.
    abandoned: AtomicU64,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    closed: bool,
}

impl Queue {
    fn push(&self, job: Job) -> Result<(), HashError> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| HashError::Failed("the hashing queue is poisoned".to_owned()))?;
        if state.closed {
            return Err(HashError::Failed("the hasher has stopped".to_owned()));
        }
        state.jobs.push_back(job);
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// The next job, waiting for one; None once closed and drained.
    fn next(&self) -> Option<Job> {
        let mut state = self.state.lock().ok()?;
        loop {
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state = self.ready.wait(state).ok()?;
        }
    }

    /// Jobs waiting for a thread.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.state.lock().map(|state| state.jobs.len()).unwrap_or(0)
    }

    fn close(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.closed = true;
        }
        self.ready.notify_all();
    }
}

/// A hashing thread: takes the next queued hash the moment its last one is
/// done. Handing each hash to tokio's blocking pool instead cost a chain of
/// wake-ups between two hashes (the finished hash woke a request task on a
/// tokio worker, which woke a blocking thread), and a core stood idle
/// through it (BENCHMARKS.md).
fn hashing_thread(queue: Arc<Queue>) {
    yield_to_request_work();
    let mut arena = Arena::default();
    while let Some(job) = queue.next() {
        let before = arena.kept();
        // A panic inside argon2 fails that one hash (its caller sees the
        // answer channel close), not the thread.
        let hashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut arena)));
        if let Ok(false) = hashed {
            queue.abandoned.fetch_add(1, Ordering::Relaxed);
        }
        if arena.kept() > before {
            queue.buffers.fetch_add(1, Ordering::Relaxed);
        }
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

/// What the hasher tells monitoring: how long requests wait and how many
/// are turned away. Its metrics are shared handles, registered by
/// [`crate::metrics::Metrics`] and moved here, where the waiting happens.
#[derive(Debug, Clone)]
pub struct HashMetrics {
    /// Time from asking for admission to being admitted.
    pub admission_wait: Histogram,
    /// Time an admitted hash waits for a free hashing thread.
    pub queue_wait: Histogram,
    /// Requests told "busy": the queue ahead was too long, or the wait ran out.
    pub refusals: Counter,
}

impl Default for HashMetrics {
    fn default() -> Self {
        Self {
            admission_wait: Histogram::new(crate::metrics::WAIT_BUCKETS),
            queue_wait: Histogram::new(crate::metrics::WAIT_BUCKETS),
            refusals: Counter::default(),
        }
    }
}

/// Hashes and verifies passwords.
pub struct PasswordHasher {
    params: Params,
    queue: Arc<Queue>,
    permits: Arc<Semaphore>,
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
    metrics: HashMetrics,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .field("permits", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

/// A new argon2id PHC string for `password` with a random salt.
fn hash_with(arena: &mut Arena, params: &Params, password: &[u8]) -> Result<String, HashError> {
    let failed = |e: &dyn std::fmt::Display| HashError::Failed(e.to_string());
    let salt = Salt::generate();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon2 = implementation(Algorithm::Argon2id, Version::V0x13, params, out.len())
        .map_err(|e| failed(&e))?;
    arena
        .hash_into(argon2, params.m_cost(), password, &salt, &mut out)
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
/// `current_kib` is the memory cost of the service's own parameters.
fn check(
    arena: &mut Arena,
    current_kib: u32,
    phc: &str,
    password: &[u8],
) -> Option<(bool, Params)> {
    let hash = PasswordHash::new(phc).ok()?;
    let algorithm = Algorithm::try_from(hash.algorithm.as_str()).ok()?;
    let version = match hash.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(&hash).ok()?;
    let (salt, expected) = (hash.salt.as_ref()?, hash.hash.as_ref()?);
    let mut out = vec![0u8; expected.len()];
    let argon2 = implementation(algorithm, version, &params, out.len()).ok()?;
    let hashed = arena.hash_into(argon2, current_kib, password, salt.as_ref(), &mut out);
    // Output's equality is constant-time.
    let matched = hashed.is_ok() && Output::new(&out).is_ok_and(|computed| &computed == expected);
    Some((matched, params))
}

/// Marks the current thread as batch work (Linux `SCHED_BATCH`, nice 5).
/// With a hash on every core, the short request work that feeds the next hash (a database round trip, an HTTP answer) otherwise
/// waited behind a running hash for the scheduler's whole slice (3 ms)
/// while the other core sat idle (`perf sched timehist`, BENCHMARKS.md):
/// a batch thread is preempted at once by the request threads it feeds,
/// and still has the cores to itself whenever they have nothing to do.
fn yield_to_request_work() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let nice_5 = ThreadPriorityValue::try_from(35u8).map(ThreadPriority::Crossplatform);
    if let Ok(priority) = nice_5 {
        // Best effort: without it, hashing is as fast, only less fair.
        let _ = set_thread_priority_and_policy(
            thread_native_id(),
            priority,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch),
        );
    }
}

impl Drop for PasswordHasher {
    fn drop(&mut self) {
        // The hashing threads finish what is queued, then stop.
        self.queue.close();
    }
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
        // On the caller's thread, with a buffer freed afterwards: an idle
        // server keeps no hash memory.
        let started = std::time::Instant::now();
        let dummy = hash_with(&mut Arena::default(), &params, secret.as_bytes())?;
        let held_micros = Arc::new(AtomicU64::new(micros(started.elapsed())));
        let concurrency = concurrency.max(1);
        let queue = Arc::new(Queue::default());
        for n in 0..concurrency {
            let thread = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("gatehouse-hash-{n}"))
                .spawn(move || hashing_thread(thread));
            if let Err(e) = spawned {
                // The threads already started stop.
                queue.close();
                return Err(HashError::Failed(format!("starting a hashing thread: {e}")));
            }
        }
        Ok(Self {
            params,
            queue,
            permits: Arc::new(Semaphore::new(concurrency * 2)),
            concurrency,
            waiting: Arc::default(),
            held_micros,
            max_wait,
            dummy,
            verifications: AtomicU64::new(0),
            hashes: AtomicU64::new(0),
            metrics: HashMetrics::default(),
        })
    }

    /// Waits (at most the configured time) for admission.
    ///
    /// When the requests already waiting would take longer than that to
    /// hash, this one could only time out: it is told "busy" at once, so
    /// that excess load gets a quick answer rather than a wait that ends in
    /// the same refusal.
    pub async fn permit(&self) -> Result<HashPermit, HashError> {
        let asked = std::time::Instant::now();
        let answer = self.admit().await;
        match &answer {
            Ok(_) => self
                .metrics
                .admission_wait
                .observe(asked.elapsed().as_secs_f64()),
            Err(HashError::Busy) => {
                self.metrics.refusals.inc();
            }
            Err(HashError::Failed(_)) => {}
        }
        answer
    }

    async fn admit(&self) -> Result<HashPermit, HashError> {
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
        let current_kib = current.m_cost();
        let checked = self
            .hash_on_a_hashing_thread(move |arena| {
                check(arena, current_kib, &phc, password.as_bytes())
            })
            .await?;
        Ok(match checked {
            Some((true, params)) if real => Verification::Match {
                rehash: params != current,
            },
            // A wrong password, or a corrupt stored hash nothing can match.
            _ => Verification::NoMatch,
        })
    }

    /// Hashes a new password into a PHC string with the current parameters.
    pub async fn hash(&self, _permit: &HashPermit, password: &str) -> Result<String, HashError> {
        self.hashes.fetch_add(1, Ordering::Relaxed);
        let password = password.to_owned();
        let params = self.params.clone();
        self.hash_on_a_hashing_thread(move |arena| hash_with(arena, &params, password.as_bytes()))
            .await?
    }

    /// Queues `work` for the next free hashing thread and waits for it.
    /// Admission bounds the queue: every caller holds a [`HashPermit`].
    async fn hash_on_a_hashing_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Arena) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let (queued, queue_wait) = (std::time::Instant::now(), self.metrics.queue_wait.clone());
        self.queue.push(Box::new(move |arena| {
            // A request dropped while queued (its client went away) would
            // never read the answer: its hash is not worth a core.
            if answer.is_closed() {
                return false;
            }
            queue_wait.observe(queued.elapsed().as_secs_f64());
            let _ = answer.send(work(arena));
            true
        }))?;
        answered
            .await
            .map_err(|_| HashError::Failed("the hashing thread stopped".to_owned()))
    }

    /// How many password checks have run (for tests and metrics).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// How many new hashes have been made.
    pub fn hashes(&self) -> u64 {
        self.hashes.load(Ordering::Relaxed)
    }

    /// Its waits and refusals, for the service's metrics.
    pub fn metrics(&self) -> &HashMetrics {
        &self.metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn hashing_threads_give_way_to_request_work() {
        // /proc/self/task/<id>/stat: field 19 is the nice value, 41 the
        // policy (3 = SCHED_BATCH); counted after the name's parenthesis.
        let policy_and_nice = |task: &std::path::Path| {
            let stat = std::fs::read_to_string(task.join("stat")).ok()?;
            let fields: Vec<String> = stat
                .rsplit_once(") ")?
                .1
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            Some((fields.get(38)?.clone(), fields.get(16)?.clone()))
        };
        let h = hasher(2, 1000);
        // A new thread names itself once it runs: look until both have.
        let hashing_threads = || -> Vec<std::path::PathBuf> {
            std::fs::read_dir("/proc/self/task")
                .expect("tasks")
                .flatten()
                .map(|task| task.path())
                .filter(|task| {
                    std::fs::read_to_string(task.join("comm"))
                        .is_ok_and(|name| name.starts_with("gatehouse-hash"))
                })
                .collect()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut tasks = hashing_threads();
        while tasks.len() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            tasks = hashing_threads();
        }
        // Other tests' hashers may run in this process too.
        assert!(tasks.len() >= 2, "{} hashing threads", tasks.len());
        for task in tasks {
            // Read again while the thread is still setting itself up: the
            // policy and the nice value are two calls, so one may be seen
            // before the other.
            while policy_and_nice(&task).is_some_and(|p| p.0 != "3" || p.1 != "5")
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            if let Some(seen) = policy_and_nice(&task) {
                assert_eq!(seen, ("3".to_owned(), "5".to_owned()), "{task:?}");
            }
        }
        let own = policy_and_nice(std::path::Path::new("/proc/thread-self")).expect("stat");
        assert_eq!(
            own,
            ("0".to_owned(), "0".to_owned()),
            "the caller is untouched"
        );
        drop(h);
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

    /// The RustCrypto crate, which computed the service's hashes before
    /// `argon2-rust` did: the reference the tests hold it to.
    fn rustcrypto(params: &Params) -> argon2::Argon2<'static> {
        argon2::Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
    }

    #[tokio::test]
    async fn hashes_agree_with_the_argon2_crates_own_format() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let h = hasher(1, 1000);
        let permit = h.permit().await.expect("permit");
        let standard = rustcrypto(&h.params)
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
            rustcrypto(&h.params)
                .verify_password(b"kettle violin marmalade", &parsed)
                .is_ok()
        );
        assert!(
            rustcrypto(&h.params)
                .verify_password(b"kettle violin marmalad", &parsed)
                .is_err()
        );
    }

    /// Every variant, version, cost and length a stored PHC string can ask
    /// for: `argon2-rust`, as the service calls it, computes the tag the
    /// RustCrypto crate computes, bit for bit. Stored hashes made before
    /// the change of crate (and by any other argon2 software) keep working.
    #[test]
    fn both_crates_compute_the_same_hash_for_every_parameter_set() {
        let mut arena = Arena::default();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            // xorshift: varied, repeatable inputs without a dependency.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut checked = 0;
        for algorithm in [Algorithm::Argon2d, Algorithm::Argon2i, Algorithm::Argon2id] {
            for version in [Version::V0x10, Version::V0x13] {
                for (m, t, p, len) in [
                    (8, 1, 1, 32),
                    (64, 2, 1, 16),
                    (96, 3, 3, 64),
                    (256, 1, 4, 33),
                ] {
                    let params = Params::new(m, t, p, Some(len)).expect("params");
                    let password: Vec<u8> = (0..next() % 80).map(|_| next() as u8).collect();
                    let salt: Vec<u8> = (0..8 + next() % 24).map(|_| next() as u8).collect();
                    let mut theirs = vec![0u8; len];
                    argon2::Argon2::new(algorithm, version, params.clone())
                        .hash_password_into(&password, &salt, &mut theirs)
                        .expect("RustCrypto");
                    let mut ours = vec![0u8; len];
                    let argon2 = implementation(algorithm, version, &params, len).expect("params");
                    arena
                        .hash_into(argon2, 19_456, &password, &salt, &mut ours)
                        .expect("argon2-rust");
                    assert_eq!(ours, theirs, "{algorithm:?} {version:?} m={m} t={t} p={p}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 24);
    }

    /// RFC 9106's test vector for Argon2id (section 5.3), with its secret
    /// and associated data: the tag argon2-rust computes is the RFC's.
    #[test]
    fn argon2_rust_computes_the_rfc_9106_test_vector() {
        use argon2_rust::params::{Memory, TagLen};
        let params = argon2_rust::Params::builder()
            .memory(Memory::kib(32))
            .passes(3)
            .lanes(4)
            .threads(1)
            .tag_len(TagLen::bytes(32))
            .build()
            .expect("params");
        let argon2 = argon2_rust::Argon2::new(
            argon2_rust::Algorithm::Argon2id,
            argon2_rust::Version::V0x13,
            params,
        );
        let mut tag = [0u8; 32];
        argon2
            .hash_into_with_ad(&[1; 32], &[2; 16], &[3; 8], &[4; 12], &mut tag)
            .expect("hash");
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
        );
    }

    #[test]
    fn a_stored_hash_costlier_than_the_current_parameters_does_not_grow_the_kept_memory() {
        let current = Params::new(64, 1, 1, None).expect("params");
        let costly = Params::new(1024, 1, 1, None).expect("params");
        let mut arena = Arena::default();
        let mine = hash_with(&mut arena, &current, b"kettle").expect("hash");
        let kept = arena.kept();
        assert!(kept >= 64, "{kept} blocks kept after a 64 KiB hash");
        let old = hash_with(&mut Arena::default(), &costly, b"kettle").expect("hash");
        assert_eq!(
            check(&mut arena, 64, &old, b"kettle").map(|c| c.0),
            Some(true)
        );
        assert_eq!(
            check(&mut arena, 64, &mine, b"kettle").map(|c| c.0),
            Some(true)
        );
        assert_eq!(
            arena.kept(),
            kept,
            "the costlier hash had memory of its own"
        );
    }

    /// A stored hash of the tests' password, made by `h`.
    async fn stored(h: &PasswordHasher) -> String {
        let permit = h.permit().await.expect("permit");
        h.hash(&permit, "kettle violin marmalade")
            .await
            .expect("hash")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn hash_memory_is_held_once_per_hashing_thread_however_many_ask() {
        let h = Arc::new(hasher(2, 10_000));
        let phc = stored(&h).await;
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
        let buffers = h.queue.buffers.load(Ordering::Relaxed);
        assert!(
            (1..=2).contains(&buffers),
            "{buffers} buffers for 2 hashing threads"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hash_whose_request_has_gone_is_not_computed() {
        let h = Arc::new(hasher(1, 10_000));
        let phc = stored(&h).await;
        // Occupy the one hashing thread until told to go on.
        let (go_on, held) = std::sync::mpsc::channel::<()>();
        h.queue
            .push(Box::new(move |_| held.recv().is_ok()))
            .expect("queued");
        let settled = |want: usize| {
            let queue = h.queue.clone();
            async move {
                while queue.queued() != want {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        };
        settled(0).await;
        let gone = {
            let (h, phc) = (h.clone(), phc.clone());
            tokio::spawn(async move {
                let permit = h.permit().await.expect("permit");
                h.verify(&permit, "kettle violin marmalade", Some(&phc))
                    .await
            })
        };
        settled(1).await;
        // The client went away while its hash waited: the request is dropped.
        gone.abort();
        assert!(gone.await.is_err_and(|e| e.is_cancelled()));
        go_on.send(()).expect("the thread waits");
        let permit = h.permit().await.expect("permit");
        assert_eq!(
            h.verify(&permit, "kettle violin marmalade", Some(&phc))
                .await
                .expect("verify"),
            Verification::Match { rehash: false }
        );
        assert_eq!(h.queue.abandoned.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn hashing_threads_stop_with_their_hasher_and_survive_a_panic() {
        let h = hasher(1, 1000);
        let queue = h.queue.clone();
        // A hash that panics fails alone; the one thread takes the next one.
        let failed = h
            .hash_on_a_hashing_thread(|_| -> u8 { panic!("a failing hash") })
            .await;
        assert!(matches!(failed, Err(HashError::Failed(_))));
        // Bounded: with the thread gone, the next hash would wait for ever.
        let next = tokio::time::timeout(Duration::from_secs(30), async {
            let phc = stored(&h).await;
            let permit = h.permit().await.expect("permit");
            h.verify(&permit, "kettle violin marmalade", Some(&phc))
                .await
        });
        assert_eq!(
            next.await
                .expect("the thread took the next hash")
                .expect("verify"),
            Verification::Match { rehash: false }
        );
        drop(h);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        // Each thread holds the queue until it stops.
        while Arc::strong_count(&queue) > 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "threads still running"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(queue.push(Box::new(|_| true)).is_err(), "closed");
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
