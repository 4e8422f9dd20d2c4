//! Wiring: configuration in, a running service out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::outbox::OutboxWorker;
use gatehouse_core::{Gatehouse, HashParams, PasswordHasher, Settings};
use gatehouse_domain::{Clock, CorrectedClock};
use gatehouse_mail::Mailer;
use gatehouse_store::{PoolSettings, SqlStore};
use tokio::sync::watch;

use crate::config::{Config, ConfigError};

/// How often idle sessions and stale counters are cleared away.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(600);

/// Options that tests and benchmarks change; the service uses the defaults.
#[derive(Debug, Clone)]
pub struct Options {
    /// Whether this process delivers mail and processes recovery requests.
    pub run_workers: bool,
    /// How often workers look for work when nothing wakes them.
    pub poll: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            run_workers: true,
            poll: Duration::from_secs(1),
        }
    }
}

/// How the configuration sizes the database pool.
pub fn pool_settings(config: &Config) -> PoolSettings {
    PoolSettings {
        max_connections: config.database_max_connections,
        timeout: config.database_timeout.to_std(),
    }
}

/// Opens the store a configuration names, for serving: SQLite is created and
/// migrated; PostgreSQL must already be at this build's schema.
pub async fn open_store(config: &Config) -> Result<SqlStore, ConfigError> {
    SqlStore::open(&config.database_url, pool_settings(config))
        .await
        .map_err(|e| database_error(config, &e))
}

/// A database failure as one line naming the setting, without its password.
pub fn database_error(config: &Config, e: &gatehouse_store::StoreError) -> ConfigError {
    let first_line = e.to_string().lines().next().unwrap_or_default().to_owned();
    ConfigError(format!(
        "GATEHOUSE_DATABASE_URL: {}: {first_line}",
        crate::config::redact_url(&config.database_url)
    ))
}

/// The services for a configuration (no listener, no workers): for the
/// command line's import and admin commands, and for [`Application`].
pub async fn services(config: &Config, clock: Arc<dyn Clock>) -> Result<Gatehouse, ConfigError> {
    let store = open_store(config).await?;
    let hasher = PasswordHasher::new(
        HashParams::default(),
        config.hash_concurrency,
        config.hash_wait.to_std(),
    )
    .map_err(|e| ConfigError(format!("GATEHOUSE_HASH_CONCURRENCY: {e}")))?;
    let settings = Settings {
        service_name: config.service_name.clone(),
        public_url: config.public_url.clone(),
        allowed_domains: config.allowed_domains.clone(),
        policy: config.policy.clone(),
        time_zone: config.time_zone.clone(),
        worker_lease: config.worker_lease,
        allow_early_unlock: config.allow_early_unlock,
        device_cookies: config.device_cookies,
        new_browser_notices: config.new_browser_notices,
        access_token_lifetime: config.access_token_lifetime,
        key_encryption_key: config.key_encryption_key.clone(),
        retention: config.retention,
        passkeys: config.passkeys,
        privileged_second_factor: config.privileged_second_factor,
    };
    let keys = gatehouse_core::keys::load_keys(&store, clock.now())
        .await
        .map_err(|e| {
            ConfigError(format!(
                "GATEHOUSE_DATABASE_URL: the service's key could not be read or stored: {e}"
            ))
        })?;
    let signing = gatehouse_core::oidc::signing::load_signing_keys(
        &store,
        settings.key_encryption_key.as_deref(),
        clock.now(),
    )
    .await
    .map_err(|e| match e {
        gatehouse_core::Error::Internal(why) if why.starts_with("GATEHOUSE_KEY_ENCRYPTION_KEY") => {
            ConfigError(why)
        }
        e => ConfigError(format!(
            "GATEHOUSE_DATABASE_URL: the signing keys could not be read or stored: {e}"
        )),
    })?;
    Ok(Gatehouse::new(
        store,
        clock,
        Arc::new(hasher),
        settings,
        keys,
        signing,
    ))
}

/// The services of a short command (import, admin, worker) on the real
/// clock, put in step with the database's (see [`keep_in_step`]);
/// `follow` keeps it in step for a long-running process.
pub async fn for_a_command(config: &Config, follow: bool) -> Result<Gatehouse, ConfigError> {
    let clock = CorrectedClock::default();
    let gatehouse = services(config, Arc::new(clock.clone())).await?;
    keep_in_step(gatehouse.clone(), clock, follow).await;
    Ok(gatehouse)
}

/// How often a node re-reads the database's clock.
const CLOCK_CHECK_EVERY: Duration = Duration::from_secs(60);

/// A node whose own clock is further than this from the database's says so
/// in its log (its decisions use the database's time either way).
const CLOCK_SKEW_WARNING_MS: i64 = 2_000;

/// Puts `clock` in step with the database's clock, and with `follow` keeps
/// it there (re-read every minute, in the background): every node then
/// decides link expiry and lock ends on one time source, so a node whose
/// clock is minutes fast or slow can neither stretch a link nor shorten a
/// lock. On SQLite (one machine, one clock) it leaves the clock alone.
pub async fn keep_in_step(gatehouse: Gatehouse, clock: CorrectedClock, follow: bool) {
    if !measure_clock(&gatehouse, &clock).await || !follow {
        return;
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(CLOCK_CHECK_EVERY).await;
            measure_clock(&gatehouse, &clock).await;
        }
    });
}

/// Reads the database's clock once into `clock`; false if the database has
/// no clock of its own to follow (SQLite).
async fn measure_clock(gatehouse: &Gatehouse, clock: &CorrectedClock) -> bool {
    let before = CorrectedClock::local_ms();
    match gatehouse.database_time_ms().await {
        Ok(Some(reference)) => {
            let after = CorrectedClock::local_ms();
            let offset = CorrectedClock::offset_for(reference, before, after);
            let previous = clock.offset_ms();
            clock.set_offset_ms(offset);
            // Said when the skew first appears and again when it moves by
            // more than a second, not every minute while it persists.
            if offset.abs() > CLOCK_SKEW_WARNING_MS
                && (previous.abs() <= CLOCK_SKEW_WARNING_MS || (offset - previous).abs() > 1_000)
            {
                tracing::warn!(
                    skew_seconds = offset as f64 / -1000.0,
                    "this machine's clock is away from the database's; expiry and locks follow the database's (fix the machine's time synchronisation)"
                );
            }
            true
        }
        Ok(None) => false,
        Err(e) => {
            // The last correction stays: it was right a minute ago.
            tracing::warn!(error = %e, "could not read the database's clock");
            true
        }
    }
}

/// The metrics listener, bound at start-up so that a bad or taken
/// address stops the process at once, naming the setting.
pub struct MetricsListener {
    listener: tokio::net::TcpListener,
    address: SocketAddr,
}

impl MetricsListener {
    /// Binds `GATEHOUSE_METRICS_LISTEN`, if it is set.
    pub async fn bind(config: &Config) -> Result<Option<Self>, ConfigError> {
        let Some(wanted) = config.metrics_listen else {
            return Ok(None);
        };
        let failed = |e: std::io::Error| {
            ConfigError(format!(
                "GATEHOUSE_METRICS_LISTEN: cannot listen on {wanted}: {e}"
            ))
        };
        let listener = tokio::net::TcpListener::bind(wanted)
            .await
            .map_err(failed)?;
        let address = listener.local_addr().map_err(failed)?;
        Ok(Some(Self { listener, address }))
    }

    /// The address it listens on (useful when the port was 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves `/metrics` for `gatehouse` in the background until `shutdown`.
    pub fn spawn(
        self,
        set: &mut tokio::task::JoinSet<()>,
        gatehouse: &Gatehouse,
        shutdown: &watch::Receiver<bool>,
    ) {
        tracing::info!(address = %self.address, "serving metrics");
        let (gatehouse, stop) = (gatehouse.clone(), stopped(shutdown.clone()));
        set.spawn(async move {
            if let Err(e) = gatehouse_web::serve_metrics(self.listener, gatehouse, stop).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
}

/// A service ready to run: storage open, port bound, mail configured.
pub struct Application {
    gatehouse: Gatehouse,
    listener: tokio::net::TcpListener,
    address: SocketAddr,
    metrics: Option<MetricsListener>,
    mailer: Mailer,
    trust_forwarded_for: bool,
    console_upload_limit: usize,
    header_timeout: std::time::Duration,
    request_timeout: std::time::Duration,
    options: Options,
}

impl Application {
    /// Builds everything that can fail before serving, so start-up fails fast and clearly.
    pub async fn build(
        config: &Config,
        clock: Arc<dyn Clock>,
        options: Options,
    ) -> Result<Self, ConfigError> {
        let mailer = Mailer::new(
            &config.mail_url,
            &config.mail_from,
            config.mail_timeout.to_std(),
        )
        .map_err(|e| ConfigError(format!("GATEHOUSE_MAIL_URL: {e}")))?;
        let gatehouse = services(config, clock).await?;
        match gatehouse.stranded_without_passkeys().await {
            Ok(0) => {}
            Ok(accounts) => tracing::warn!(
                accounts,
                "passkeys are off (GATEHOUSE_PASSKEYS), and helpdesk or admin accounts whose only second factor was a passkey now have none: give each a set-up link (gatehouse admin reset-second-factor)"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not count the accounts whose only second factor is a passkey")
            }
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| {
                ConfigError(format!(
                    "GATEHOUSE_LISTEN: cannot listen on {}: {e}",
                    config.listen
                ))
            })?;
        let address = listener
            .local_addr()
            .map_err(|e| ConfigError(format!("GATEHOUSE_LISTEN: {e}")))?;
        let metrics = MetricsListener::bind(config).await?;
        Ok(Self {
            gatehouse,
            listener,
            address,
            metrics,
            mailer,
            trust_forwarded_for: config.trust_forwarded_for,
            console_upload_limit: config.console_upload_limit,
            header_timeout: config.header_timeout.to_std(),
            request_timeout: config.request_timeout.to_std(),
            options,
        })
    }

    /// The address it listens on (useful when the port was 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The address metrics are served on, if they are.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsListener::address)
    }

    /// The services.
    pub fn gatehouse(&self) -> &Gatehouse {
        &self.gatehouse
    }

    /// Serves (and runs the workers) until `shutdown` becomes true.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> std::io::Result<()> {
        let mut workers = tokio::task::JoinSet::new();
        if let Some(metrics) = self.metrics {
            metrics.spawn(&mut workers, &self.gatehouse, &shutdown);
        }
        if self.options.run_workers {
            spawn_workers(
                &mut workers,
                &self.gatehouse,
                self.mailer.clone(),
                self.options.poll,
                &shutdown,
            );
        }
        let state = gatehouse_web::AppState {
            gatehouse: self.gatehouse.clone(),
            trust_forwarded_for: self.trust_forwarded_for,
            upload_limit: self.console_upload_limit,
            header_timeout: self.header_timeout,
            request_timeout: self.request_timeout,
        };
        let served = gatehouse_web::serve(self.listener, state, stopped(shutdown)).await;
        while workers.join_next().await.is_some() {}
        served
    }
}

/// Starts the mail, recovery and housekeeping workers.
pub fn spawn_workers(
    set: &mut tokio::task::JoinSet<()>,
    gatehouse: &Gatehouse,
    mailer: Mailer,
    poll: Duration,
    shutdown: &watch::Receiver<bool>,
) {
    let outbox = OutboxWorker::new(gatehouse, mailer).with_poll_interval(poll);
    set.spawn(outbox.run(stopped(shutdown.clone())));

    let g = gatehouse.clone();
    let stop = shutdown.clone();
    set.spawn(async move { g.run_recovery_worker(poll, stopped(stop)).await });

    match gatehouse_core::oidc::logout::LogoutNotifier::new(gatehouse) {
        Ok(notifier) => {
            set.spawn(
                notifier
                    .with_poll_interval(poll)
                    .run(stopped(shutdown.clone())),
            );
        }
        Err(e) => tracing::error!(
            error = %gatehouse_core::error::chain(&e),
            "back-channel logout notices cannot be sent from this process"
        ),
    }

    let g = gatehouse.clone();
    let stop = shutdown.clone();
    set.spawn(async move { g.run_housekeeping(HOUSEKEEPING_EVERY, stopped(stop)).await });
}

/// Resolves once `shutdown` is true (or its sender is gone).
pub async fn stopped(mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// A shutdown signal that becomes true on Ctrl+C or SIGTERM.
pub fn shutdown_on_signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            () = term => {}
        }
        tracing::info!("shutting down");
        let _ = tx.send(true);
    });
    rx
}
