//! What the worker looks after besides mail: how much work waits, and
//! forgetting what has outlived its use.

use gatehouse_domain::{Span, Timestamp};
use sqlx::AnyConnection;

use crate::{Result, Tx, attempts, outbox, recovery, sessions};

/// How much work waits for the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepths {
    /// Recovery requests recorded and not yet processed.
    pub recovery_pending: i64,
    /// Emails queued and not yet sent, expired or given up.
    pub emails_queued: i64,
    /// Back-channel logout notices not yet delivered or given up.
    pub logout_notices_queued: i64,
}

/// Recovery requests not yet processed, and emails not yet sent.
pub async fn queue_depths(conn: &mut AnyConnection) -> Result<QueueDepths> {
    Ok(QueueDepths {
        recovery_pending: recovery::pending(conn).await?,
        emails_queued: outbox::queued(conn).await?,
        logout_notices_queued: crate::oidc::logout_notices::queued(conn).await?,
    })
}

/// How long the counter of a username nobody has is kept after its last
/// attempt (device cookies are renewed within it).
pub const UNKNOWN_COUNTERS_KEPT: Span = Span::hours(24 * 30);

/// How long a browser an account signed in from is remembered unused (as
/// long as its cookie lives).
pub const BROWSERS_KEPT: Span = Span::hours(24 * 400);

/// Deletes what has outlived its use: sessions idle longer than
/// `session_idle`, counters of usernames nobody has that are untouched
/// for 30 days and not locked, passkey ceremonies past their expiry, and OpenID Connect codes, grants and notices
/// that can no longer be used. Returns how many rows went.
pub async fn purge(tx: &mut Tx, now: Timestamp, session_idle: Span) -> Result<u64> {
    let sessions = sessions::end_idle(tx, now.minus(session_idle)).await?;
    let counters = attempts::forget_unknown(tx, now.minus(UNKNOWN_COUNTERS_KEPT), now).await?;
    let grants = crate::oidc::grants::tidy(tx, now).await?;
    let notices = crate::oidc::logout_notices::tidy(tx, now).await?;
    let browsers = crate::browsers::forget_unused(tx, now.minus(BROWSERS_KEPT)).await?;
    let ceremonies = crate::passkeys::forget_expired_ceremonies(tx, now).await?;
    Ok(sessions + counters + grants + notices + browsers + ceremonies)
}
