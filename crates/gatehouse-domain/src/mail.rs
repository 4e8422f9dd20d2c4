//! When an email in the outbox is tried again, and when it is given up.
//!
//! The first retry comes within 30 seconds, each later one waits twice as
//! long, and no wait is longer than 5 minutes. An email carrying reset links
//! is never sent once its links have expired: an outage longer than the link
//! lifetime is recorded as such, not delivered late.

use crate::time::{Span, Timestamp};

/// Where an email in the outbox stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailStatus {
    /// Waiting to be sent, or to be tried again.
    Queued,
    /// The mail server accepted it.
    Sent,
    /// Its links expired before it could be sent.
    Expired,
    /// Given up.
    Failed,
}

impl EmailStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailStatus::Queued => "queued",
            EmailStatus::Sent => "sent",
            EmailStatus::Expired => "expired",
            EmailStatus::Failed => "failed",
        }
    }

    /// Reads a stored name.
    pub fn from_stored(name: &str) -> Option<Self> {
        match name {
            "queued" => Some(EmailStatus::Queued),
            "sent" => Some(EmailStatus::Sent),
            "expired" => Some(EmailStatus::Expired),
            "failed" => Some(EmailStatus::Failed),
            _ => None,
        }
    }
}

/// The wait before the first retry.
pub const FIRST_RETRY: Span = Span::from_seconds(10);
/// The longest wait between tries.
pub const LONGEST_WAIT: Span = Span::minutes(5);
/// How long an email without links is retried before it is given up.
pub const GIVE_UP_AFTER: Span = Span::hours(24);

/// The wait after the `failures`-th failed try (1 for the first failure).
pub fn retry_delay(failures: u32) -> Span {
    let doublings = failures.saturating_sub(1).min(16);
    let seconds = FIRST_RETRY.seconds().saturating_mul(1i64 << doublings);
    Span::from_seconds(seconds.min(LONGEST_WAIT.seconds()))
}

/// What to do with an email whose latest try failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time.
    RetryAt(Timestamp),
    /// Its links will have expired before the next try: record it as expired.
    Expired,
    /// Too long without success: record it as failed.
    GiveUp,
}

/// Decides what follows a failed try at `now`, for an email created at
/// `created_at`, whose links (if any) expire at `send_by`.
pub fn after_failure(
    failures: u32,
    now: Timestamp,
    created_at: Timestamp,
    send_by: Option<Timestamp>,
    permanent: bool,
) -> AfterFailure {
    if permanent {
        return AfterFailure::GiveUp;
    }
    let next = now.plus(retry_delay(failures));
    match send_by {
        Some(deadline) if next >= deadline => AfterFailure::Expired,
        None if next.seconds_since(created_at) > GIVE_UP_AFTER.seconds() => AfterFailure::GiveUp,
        _ => AfterFailure::RetryAt(next),
    }
}

/// Whether an email may still be sent at `now`.
pub fn still_sendable(send_by: Option<Timestamp>, now: Timestamp) -> bool {
    send_by.is_none_or(|deadline| now < deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_start_within_30_seconds_double_and_cap_at_5_minutes() {
        let waits: Vec<i64> = (1..=8).map(|n| retry_delay(n).seconds()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert!(retry_delay(1) <= Span::from_seconds(30));
        assert_eq!(retry_delay(1000), LONGEST_WAIT);
    }

    #[test]
    fn mail_with_links_expires_rather_than_arriving_late() {
        let t0 = Timestamp::from_unix(1_800_000_000);
        let deadline = Some(t0.plus(Span::hours(4)));
        assert_eq!(
            after_failure(1, t0, t0, deadline, false),
            AfterFailure::RetryAt(t0.plus(Span::from_seconds(10)))
        );
        let late = t0.plus(Span::hours(4)).minus(Span::from_seconds(100));
        assert_eq!(
            after_failure(6, late, t0, deadline, false),
            AfterFailure::Expired
        );
        assert!(still_sendable(deadline, late));
        assert!(!still_sendable(deadline, t0.plus(Span::hours(4))));
    }

    #[test]
    fn mail_without_links_is_given_up_after_a_day_or_on_a_permanent_refusal() {
        let t0 = Timestamp::from_unix(1_800_000_000);
        assert_eq!(
            after_failure(1, t0.plus(Span::hours(24)), t0, None, false),
            AfterFailure::GiveUp
        );
        assert_eq!(after_failure(1, t0, t0, None, true), AfterFailure::GiveUp);
        assert!(still_sendable(None, t0.plus(Span::hours(1000))));
    }
}
