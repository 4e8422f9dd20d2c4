//! How long a session lasts.

use crate::time::{Span, Timestamp};

/// Session timeouts (docs/design.md: idle 30 minutes, absolute 12 hours, a shift).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Ends a session this long after its last request.
    pub idle_timeout: Span,
    /// Ends a session this long after it began, however active.
    pub absolute_timeout: Span,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: Span::minutes(30),
            absolute_timeout: Span::hours(12),
        }
    }
}

impl SessionPolicy {
    /// Whether a session created at `created_at` and last used at `last_seen_at` is alive at `now`.
    pub fn is_alive(&self, created_at: Timestamp, last_seen_at: Timestamp, now: Timestamp) -> bool {
        now < last_seen_at.plus(self.idle_timeout) && now < created_at.plus(self.absolute_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_when_idle_or_too_old() {
        let p = SessionPolicy::default();
        let t0 = Timestamp::from_unix(1_800_000_000);
        assert!(p.is_alive(t0, t0, t0.plus(Span::minutes(29))));
        assert!(!p.is_alive(t0, t0, t0.plus(Span::minutes(30))));
        // Busy all shift, still ended at 12 hours.
        let recent = t0.plus(Span::hours(12)).minus(Span::minutes(1));
        assert!(p.is_alive(t0, recent, recent));
        assert!(!p.is_alive(t0, recent, t0.plus(Span::hours(12))));
    }
}
