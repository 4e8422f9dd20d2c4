//! Keeping the service in order: whether the database answers, its clock,
//! how much work waits, and forgetting what has outlived its use.

use gatehouse_domain::Span;
use gatehouse_store::{QueueDepths, housekeeping, import};

use crate::{Gatehouse, Result};

impl Gatehouse {
    /// Whether the database answers.
    pub async fn database_answers(&self) -> Result<()> {
        Ok(self.store.ping().await?)
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
            if let Err(e) = self.process_recovery_requests().await {
                tracing::error!(error = %crate::error::chain(&e), "recovery requests could not be processed; retrying shortly");
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = self.recovery_wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }
}
