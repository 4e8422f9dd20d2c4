//! Keeping the service in order: whether the database answers, its clock,
//! how much work waits, and forgetting what has outlived its use.

use gatehouse_domain::Span;
use gatehouse_store::{QueueDepths, SchemaState, housekeeping, import};

use crate::{Gatehouse, Result};

/// How long a readiness check waits for the database: a load balancer
/// probes every few seconds, and a database that has gone silent (packets
/// dropped) must turn into "not ready" within that, not after the pool's
/// own wait (`GATEHOUSE_DATABASE_TIMEOUT`).
pub const READINESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why this process should not be sent traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    /// The database did not answer within [`READINESS_TIMEOUT`].
    DatabaseSilent,
    /// The database refused or failed (its error, first line).
    DatabaseUnavailable(String),
    /// The schema is not the one this build knows (what is wrong with it).
    Schema(String),
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DatabaseSilent => write!(
                f,
                "the database did not answer within {} s",
                READINESS_TIMEOUT.as_secs()
            ),
            Self::DatabaseUnavailable(why) => write!(f, "the database is unavailable: {why}"),
            Self::Schema(why) => write!(f, "the database schema does not fit this build: {why}"),
        }
    }
}

impl Gatehouse {
    /// Whether this process can serve: the database answers, within
    /// [`READINESS_TIMEOUT`], and has every migration this build knows,
    /// each complete. A schema behind this build's (a database restored
    /// from before a deploy, say), an empty one, or one with a migration
    /// that failed part-way is not ready: requests would fail in ways no
    /// page explains.
    ///
    /// A schema *ahead* of this build is ready: a process cannot start on
    /// one, so it was migrated while this process ran, which is the
    /// rolling deploy of docs/deploy.md ("migrate, then restart the nodes
    /// one at a time"; migrations only add, so the old nodes keep
    /// working). Were it not ready, every old node would leave the load
    /// balancer at once, before any new one had started.
    pub async fn readiness(&self) -> std::result::Result<(), NotReady> {
        let schema = tokio::time::timeout(READINESS_TIMEOUT, self.store.schema()).await;
        match schema {
            Err(_) => Err(NotReady::DatabaseSilent),
            Ok(Err(e)) => Err(NotReady::DatabaseUnavailable(
                e.to_string().lines().next().unwrap_or_default().to_owned(),
            )),
            Ok(Ok(SchemaState::Current(_) | SchemaState::Ahead { .. })) => Ok(()),
            Ok(Ok(SchemaState::Empty)) => Err(NotReady::Schema("no migration is applied".into())),
            Ok(Ok(SchemaState::Behind { database, build })) => Err(NotReady::Schema(format!(
                "at version {database}, this build needs {build}"
            ))),
            Ok(Ok(SchemaState::Dirty(v))) => {
                Err(NotReady::Schema(format!("migration {v} failed part-way")))
            }
        }
    }

    /// The database server's clock (PostgreSQL), in milliseconds since the
    /// Unix epoch, for nodes that follow it; `None` on SQLite.
    pub async fn database_time_ms(&self) -> Result<Option<i64>> {
        Ok(self.store.database_time_ms().await?)
    }

    /// Recovery requests not yet processed, and emails not yet sent.
    pub async fn queue_depths(&self) -> Result<QueueDepths> {
        Ok(housekeeping::queue_depths(&mut *self.read().await?).await?)
    }

    /// Deletes what has outlived its use: idle sessions, counters of
    /// usernames nobody has, staff files previewed and never imported, and
    /// what is past its retention period ([`Gatehouse::apply_retention`]).
    /// Returns how many rows went.
    pub async fn tidy(&self) -> Result<u64> {
        let now = self.clock.now();
        let idle = self
            .settings
            .policy
            .session
            .idle_timeout
            .max(Span::minutes(1));
        let mut tx = self.begin().await?;
        let purged = housekeeping::purge(&mut tx, now, idle).await?;
        tx.commit().await?;
        let stale = now.minus(crate::import::STAGED_IMPORT_LIFETIME);
        let staged = import::drop_staged(&mut *self.write().await?, None, stale).await?;
        let retained = self.apply_retention().await?;
        Ok(purged + staged + retained.total())
    }

    /// Processes recovery requests until `shutdown` resolves, woken when one
    /// is recorded on this node or every `poll` (another node's).
    pub async fn run_recovery_worker(
        &self,
        poll: std::time::Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            match self.process_recovery_requests().await {
                Ok(_) => self.metrics.worker_ran("recovery"),
                Err(e) => {
                    tracing::error!(error = %crate::error::chain(&e), "recovery requests could not be processed; retrying shortly");
                }
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = self.recovery_wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Tidies (see [`Gatehouse::tidy`]) now and every `every` until
    /// `shutdown` resolves.
    pub async fn run_housekeeping(
        &self,
        every: std::time::Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            match self.tidy().await {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(removed = n, "housekeeping");
                    }
                    self.metrics.worker_ran("housekeeping");
                }
                Err(e) => {
                    tracing::warn!(error = %crate::error::chain(&e), "housekeeping failed");
                }
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }
}
