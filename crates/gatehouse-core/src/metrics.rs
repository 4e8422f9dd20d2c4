//! The service's Prometheus metrics (docs/deploy.md, "Monitoring").
//!
//! Each counter is moved where core decides the outcome it counts (a
//! sign-in's, a lock's, a recovery request's, an email's try), after what
//! it counts is written, never guessed from an HTTP status: it moves by
//! exactly what happened. What describes the database (the outbox's
//! backlog, the pools) is read when the metrics are scraped, so it is
//! never stale. Every process has its own registry, created with its
//! [`Gatehouse`]: each node is scraped on its own and Prometheus adds them.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::hashing::HashMetrics;
use crate::{Gatehouse, Result};

/// Buckets, in seconds, for waits that should be short: a hasher's queue.
pub const WAIT_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0,
];

/// Buckets, in seconds, for HTTP requests: pages take milliseconds, a
/// sign-in tens of them (the hash), and a request may run to
/// `GATEHOUSE_REQUEST_TIMEOUT` (30 s by default).
const HTTP_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

/// How long a scrape waits for the database's part before it answers
/// without it: a scrape must not hang on the database it reports on.
const DATABASE_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// How a sign-in (the log in form) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignInMetric {
    /// Signed in.
    Success,
    /// The password was checked and was wrong (including the one that locks).
    WrongPassword,
    /// Refused without checking: the account is locked.
    Locked,
    /// Refused: too many failures in all; only a reset brings the password back.
    PasswordDisabled,
    /// The right password for an account an administrator has disabled.
    AccountDisabled,
    /// A field was left empty: nothing was checked or counted.
    Invalid,
    /// Told "busy, try again": no hasher was free in time.
    Busy,
    /// The service could not finish it (the database was unavailable, say).
    Error,
    /// Signed in with a passkey (no password, no lockout).
    Passkey,
}

impl SignInMetric {
    /// Every outcome, so that each has a series from the start.
    const ALL: [Self; 9] = [
        Self::Success,
        Self::WrongPassword,
        Self::Locked,
        Self::PasswordDisabled,
        Self::AccountDisabled,
        Self::Invalid,
        Self::Busy,
        Self::Error,
        Self::Passkey,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::WrongPassword => "wrong_password",
            Self::Locked => "locked",
            Self::PasswordDisabled => "password_disabled",
            Self::AccountDisabled => "account_disabled",
            Self::Invalid => "invalid",
            Self::Busy => "busy",
            Self::Error => "error",
            Self::Passkey => "passkey",
        }
    }
}

/// The recovery requests' outcomes: the worker's (as it records them) and
/// the one refusal made when the form is sent.
const RECOVERY_OUTCOMES: [&str; 5] = [
    "matched",
    "no_match",
    "throttled",
    "domain_not_allowed",
    "client_limit",
];

/// How an email's try ended, as the outbox worker records it.
const EMAIL_STATUSES: [&str; 4] = ["sent", "retrying", "failed", "expired"];

/// The workers whose passes are timed.
const WORKERS: [&str; 4] = ["outbox", "recovery", "logout_notices", "housekeeping"];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabel {
    worker: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabel {
    pool: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolStateLabel {
    pool: &'static str,
    state: &'static str,
}

/// A request's labels: the route is the router's template
/// (`/reset/{token}`), never the path, so no token becomes a label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabel {
    method: &'static str,
    route: String,
    status: u16,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

/// The registry and every metric in it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    sign_ins: Family<OutcomeLabel, Counter>,
    locks: Counter,
    recovery_requests: Family<OutcomeLabel, Counter>,
    emails: Family<StatusLabel, Counter>,
    worker_last_run: Family<WorkerLabel, FloatGauge>,
    http: Family<HttpLabel, Histogram, fn() -> Histogram>,
    outbox_depth: Gauge,
    outbox_oldest: Gauge,
    recovery_pending: Gauge,
    database_up: Gauge,
    connections: Family<PoolStateLabel, Gauge>,
    connections_max: Family<PoolLabel, Gauge>,
}

impl Metrics {
    /// A registry with every metric, the hasher's included; each counter
    /// with a known label starts at zero, so that rates and alerts see it
    /// before its first event.
    pub(crate) fn new(hashing: &HashMetrics) -> Self {
        let mut registry = Registry::default();
        let sign_ins = Family::<OutcomeLabel, Counter>::default();
        // Asking for a series creates it, at zero.
        for outcome in SignInMetric::ALL {
            let _ = sign_ins.get_or_create(&OutcomeLabel {
                outcome: outcome.label(),
            });
        }
        registry.register(
            "gatehouse_sign_ins",
            "Sign-ins through the log in form, by how they ended",
            sign_ins.clone(),
        );
        let locks = Counter::default();
        registry.register(
            "gatehouse_locks",
            "Locks started (by wrong passwords or second-factor codes)",
            locks.clone(),
        );
        let recovery_requests = Family::<OutcomeLabel, Counter>::default();
        for outcome in RECOVERY_OUTCOMES {
            let _ = recovery_requests.get_or_create(&OutcomeLabel { outcome });
        }
        registry.register(
            "gatehouse_recovery_requests",
            "Recovery requests, by outcome (client_limit: refused when sent; the others as the worker matched them)",
            recovery_requests.clone(),
        );
        let emails = Family::<StatusLabel, Counter>::default();
        for status in EMAIL_STATUSES {
            let _ = emails.get_or_create(&StatusLabel { status });
        }
        registry.register(
            "gatehouse_emails",
            "Tries to send an email, by how each ended",
            emails.clone(),
        );
        let outbox_depth = Gauge::default();
        registry.register(
            "gatehouse_outbox_depth",
            "Emails queued and not yet sent, expired or given up",
            outbox_depth.clone(),
        );
        let outbox_oldest = Gauge::default();
        registry.register(
            "gatehouse_outbox_oldest_seconds",
            "Age of the oldest queued email (0 when none waits)",
            outbox_oldest.clone(),
        );
        let recovery_pending = Gauge::default();
        registry.register(
            "gatehouse_recovery_pending",
            "Recovery requests recorded and not yet matched by the worker",
            recovery_pending.clone(),
        );
        let worker_last_run = Family::<WorkerLabel, FloatGauge>::default();
        registry.register(
            "gatehouse_worker_last_run_timestamp_seconds",
            "When a worker of this process last finished a pass without error (Unix time)",
            worker_last_run.clone(),
        );
        let http = Family::new_with_constructor(http_histogram as fn() -> Histogram);
        registry.register(
            "gatehouse_http_request_duration_seconds",
            "HTTP requests on the public port, by route template and status",
            http.clone(),
        );
        registry.register(
            "gatehouse_hashing_admission_wait_seconds",
            "How long password-hashing work waited to be admitted",
            hashing.admission_wait.clone(),
        );
        registry.register(
            "gatehouse_hashing_queue_wait_seconds",
            "How long an admitted hash waited for a free hashing thread",
            hashing.queue_wait.clone(),
        );
        registry.register(
            "gatehouse_hashing_refusals",
            "Requests told busy because no hasher would be free in time",
            hashing.refusals.clone(),
        );
        let database_up = Gauge::default();
        registry.register(
            "gatehouse_database_up",
            "Whether the database answered this scrape's queries (1) or not (0)",
            database_up.clone(),
        );
        let connections = Family::<PoolStateLabel, Gauge>::default();
        registry.register(
            "gatehouse_database_connections",
            "Database connections open, by pool and whether idle or in use",
            connections.clone(),
        );
        let connections_max = Family::<PoolLabel, Gauge>::default();
        registry.register(
            "gatehouse_database_connections_max",
            "The most connections a pool opens (GATEHOUSE_DATABASE_MAX_CONNECTIONS)",
            connections_max.clone(),
        );
        Self {
            registry,
            sign_ins,
            locks,
            recovery_requests,
            emails,
            worker_last_run,
            http,
            outbox_depth,
            outbox_oldest,
            recovery_pending,
            database_up,
            connections,
            connections_max,
        }
    }

    pub(crate) fn sign_in(&self, outcome: SignInMetric) {
        self.sign_ins
            .get_or_create(&OutcomeLabel {
                outcome: outcome.label(),
            })
            .inc();
    }

    pub(crate) fn lock(&self) {
        self.locks.inc();
    }

    /// `outcome` is one of [`RECOVERY_OUTCOMES`].
    pub(crate) fn recovery_request(&self, outcome: &'static str) {
        self.recovery_requests
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// `status` is one of [`EMAIL_STATUSES`].
    pub(crate) fn email(&self, status: &'static str) {
        self.emails.get_or_create(&StatusLabel { status }).inc();
    }

    /// Records that `worker` (one of [`WORKERS`]) finished a pass now. The
    /// wall clock, not the service's: alerts compare it with Prometheus's
    /// `time()`.
    pub(crate) fn worker_ran(&self, worker: &'static str) {
        debug_assert!(WORKERS.contains(&worker));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.worker_last_run
            .get_or_create(&WorkerLabel { worker })
            .set(now);
    }

    /// Records one HTTP request: `route` is the matched route's template
    /// (or `unmatched`), never a raw path.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        // Only the methods the service answers become labels; any other
        // (a client can send anything) is one series.
        let method = match method {
            "GET" => "GET",
            "POST" => "POST",
            "HEAD" => "HEAD",
            "OPTIONS" => "OPTIONS",
            _ => "other",
        };
        self.http
            .get_or_create(&HttpLabel {
                method,
                route: route.to_owned(),
                status,
            })
            .observe(took.as_secs_f64());
    }

    /// The registry in the OpenMetrics text format.
    fn encode(&self) -> String {
        let mut text = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The content type of [`Gatehouse::metrics_text`]'s answer, which
/// Prometheus asks for first.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Gatehouse {
    /// The service's metrics: core's own, then the HTTP layer's.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Every metric in the OpenMetrics text format ([`CONTENT_TYPE`]),
    /// with the database's part read now (the outbox's backlog, pending
    /// recovery requests, the pools). When the database does not answer
    /// within two seconds, its gauges keep their last values and
    /// `gatehouse_database_up` is 0.
    pub async fn metrics_text(&self) -> String {
        let metrics = &self.metrics;
        for pool in self.store.pool_use() {
            let in_use = pool.open.saturating_sub(pool.idle);
            for (state, n) in [("idle", pool.idle), ("in_use", in_use)] {
                metrics
                    .connections
                    .get_or_create(&PoolStateLabel {
                        pool: pool.pool,
                        state,
                    })
                    .set(i64::from(n));
            }
            metrics
                .connections_max
                .get_or_create(&PoolLabel { pool: pool.pool })
                .set(i64::from(pool.max));
        }
        match tokio::time::timeout(DATABASE_READ_TIMEOUT, self.backlogs()).await {
            Ok(Ok(())) => {
                metrics.database_up.set(1);
            }
            Ok(Err(e)) => {
                metrics.database_up.set(0);
                tracing::debug!(error = %crate::error::chain(&e), "metrics: the database's part could not be read");
            }
            Err(_) => {
                metrics.database_up.set(0);
                tracing::debug!("metrics: the database did not answer in time");
            }
        }
        metrics.encode()
    }

    /// Reads the outbox's backlog and the pending recovery requests into
    /// their gauges.
    async fn backlogs(&self) -> Result<()> {
        let mut db = self.read().await?;
        let backlog = gatehouse_store::outbox::backlog(&mut db).await?;
        let pending = gatehouse_store::recovery::pending(&mut db).await?;
        let oldest = backlog
            .oldest
            .map_or(0, |at| self.clock.now().seconds_since(at).max(0));
        self.metrics.outbox_depth.set(backlog.queued);
        self.metrics.outbox_oldest.set(oldest);
        self.metrics.recovery_pending.set(pending);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_outcome_has_a_series_at_zero_from_the_start() {
        let text = Metrics::new(&HashMetrics::default()).encode();
        for line in [
            "gatehouse_sign_ins_total{outcome=\"success\"} 0",
            "gatehouse_sign_ins_total{outcome=\"busy\"} 0",
            "gatehouse_locks_total 0",
            "gatehouse_recovery_requests_total{outcome=\"no_match\"} 0",
            "gatehouse_emails_total{status=\"sent\"} 0",
            "gatehouse_hashing_refusals_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn a_request_is_labelled_by_its_route_and_an_unknown_method_is_one_series() {
        let metrics = Metrics::new(&HashMetrics::default());
        metrics.observe_request("GET", "/reset/{token}", 303, Duration::from_millis(3));
        metrics.observe_request("BREW", "unmatched", 404, Duration::from_millis(1));
        let text = metrics.encode();
        assert!(
            text.contains(
                "gatehouse_http_request_duration_seconds_count{method=\"GET\",route=\"/reset/{token}\",status=\"303\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("method=\"other\",route=\"unmatched\""),
            "{text}"
        );
        assert!(!text.contains("BREW"), "{text}");
    }
}
