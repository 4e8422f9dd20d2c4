//! Instants, spans and the clock every decision is taken against.
//!
//! Time is whole seconds since the Unix epoch: every policy in the service
//! (link lifetime, lock duration, session timeouts, mail backoff) is measured
//! in seconds or coarser, and an integer stores identically in SQLite and
//! PostgreSQL. Decisions never read the wall clock directly: they take a
//! [`Timestamp`] from a [`Clock`], so tests can move time.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// An instant, in whole seconds since 1970-01-01T00:00:00Z.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `seconds` after the Unix epoch.
    pub const fn from_unix(seconds: i64) -> Self {
        Self(seconds)
    }

    /// Seconds since the Unix epoch.
    pub const fn unix(self) -> i64 {
        self.0
    }

    /// This instant moved forward by `span` (saturating).
    pub fn plus(self, span: Span) -> Self {
        Self(self.0.saturating_add(span.seconds()))
    }

    /// This instant moved back by `span` (saturating).
    pub fn minus(self, span: Span) -> Self {
        Self(self.0.saturating_sub(span.seconds()))
    }

    /// Whole seconds from `earlier` to `self`; negative when `earlier` is later.
    pub fn seconds_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// How a person in `zone` reads this instant, e.g. `10:32pm on 25 November 2026`.
    ///
    /// Written out in full (no numeric dates) because pages and emails are read
    /// by people in the UK and elsewhere, and `05/06` means two different days.
    pub fn for_people(self, zone: &jiff::tz::TimeZone) -> String {
        let Ok(instant) = jiff::Timestamp::from_second(self.0) else {
            return format!("{} seconds after 1970", self.0);
        };
        let local = instant.to_zoned_datetime(zone.clone());
        let hour = local.hour();
        let (h12, suffix) = match hour {
            0 => (12, "am"),
            1..=11 => (hour, "am"),
            12 => (12, "pm"),
            _ => (hour - 12, "pm"),
        };
        format!(
            "{}:{:02}{} on {} {} {}",
            h12,
            local.minute(),
            suffix,
            local.day(),
            month_name(local.month()),
            local.year()
        )
    }

    /// RFC 3339 in UTC, for operators and machine-readable output.
    pub fn rfc3339(self) -> String {
        match jiff::Timestamp::from_second(self.0) {
            Ok(t) => t.to_string(),
            Err(_) => self.0.to_string(),
        }
    }
}

fn month_name(month: i8) -> &'static str {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    usize::try_from(month - 1)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("?")
}

/// A length of time in whole seconds, written in configuration as `90s`, `15m`, `4h` or `2d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(i64);

impl Span {
    /// A span of `seconds` seconds.
    pub const fn from_seconds(seconds: i64) -> Self {
        Self(seconds)
    }

    /// A span of `minutes` minutes.
    pub const fn minutes(minutes: i64) -> Self {
        Self(minutes * 60)
    }

    /// A span of `hours` hours.
    pub const fn hours(hours: i64) -> Self {
        Self(hours * 3600)
    }

    /// The length in seconds.
    pub const fn seconds(self) -> i64 {
        self.0
    }

    /// The span as a standard-library duration (negative spans become zero).
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::try_from(self.0).unwrap_or(0))
    }

    /// How a person reads this span: `4 hours`, `12 hours`, `90 seconds`, `1 hour 30 minutes`.
    pub fn for_people(self) -> String {
        let mut parts = Vec::new();
        let mut rest = self.0;
        for (unit, name) in [
            (86_400, "day"),
            (3600, "hour"),
            (60, "minute"),
            (1, "second"),
        ] {
            let n = rest / unit;
            rest %= unit;
            if n > 0 {
                parts.push(format!("{n} {name}{}", if n == 1 { "" } else { "s" }));
            }
        }
        if parts.is_empty() {
            "0 seconds".to_owned()
        } else {
            parts.join(" ")
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s != 0 && s % 86_400 == 0 {
            write!(f, "{}d", s / 86_400)
        } else if s != 0 && s % 3600 == 0 {
            write!(f, "{}h", s / 3600)
        } else if s != 0 && s % 60 == 0 {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

/// Why a span could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a length of time such as 90s, 15m, 4h or 2d, got {0:?}")]
pub struct SpanParseError(pub String);

impl FromStr for Span {
    type Err = SpanParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || SpanParseError(text.to_owned());
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(err)?;
        let (number, unit) = trimmed.split_at(split);
        let n: i64 = number.parse().map_err(|_| err())?;
        let unit_seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(err()),
        };
        let seconds = n.checked_mul(unit_seconds).ok_or_else(err)?;
        if seconds <= 0 {
            return Err(err());
        }
        Ok(Span(seconds))
    }
}

/// The source of "now" for every decision.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp(jiff::Timestamp::now().as_second())
    }
}

/// The operating system's clock moved by an offset, kept in step with a
/// shared reference clock (the database's, when several nodes share one):
/// every node then agrees on when a link expires and a lock ends, even if
/// one node's own clock is minutes out.
#[derive(Debug, Clone, Default)]
pub struct CorrectedClock(Arc<AtomicI64>);

impl CorrectedClock {
    /// Sets the correction: the reference clock minus this machine's, in milliseconds.
    pub fn set_offset_ms(&self, offset: i64) {
        self.0.store(offset, Ordering::Relaxed);
    }

    /// The current correction, in milliseconds.
    pub fn offset_ms(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    /// The correction that makes this clock read `reference_ms` at the
    /// midpoint of `[before_ms, after_ms]`, the span in which the reference was read.
    pub fn offset_for(reference_ms: i64, before_ms: i64, after_ms: i64) -> i64 {
        reference_ms - (before_ms + (after_ms - before_ms) / 2)
    }

    /// This machine's clock, in milliseconds since the Unix epoch.
    pub fn local_ms() -> i64 {
        jiff::Timestamp::now().as_millisecond()
    }
}

impl Clock for CorrectedClock {
    fn now(&self) -> Timestamp {
        Timestamp((Self::local_ms() + self.offset_ms()).div_euclid(1000))
    }
}

/// A clock that only moves when told to: for tests of expiry and lock boundaries.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(start.0)))
    }

    /// A clock standing at the current system time.
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now())
    }

    /// Moves the clock forward by `span`.
    pub fn advance(&self, span: Span) {
        self.0.fetch_add(span.seconds(), Ordering::SeqCst);
    }

    /// Puts the clock at `instant`.
    pub fn set(&self, instant: Timestamp) {
        self.0.store(instant.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrected_clock_reads_the_reference_time() {
        let clock = CorrectedClock::default();
        let local = SystemClock.now();
        assert!(
            clock.now().0 - local.0 <= 1,
            "no correction: the system clock"
        );
        // The reference is five minutes behind this machine (a node whose
        // clock is fast): the corrected clock reads the reference's time.
        let before = CorrectedClock::local_ms();
        let offset = CorrectedClock::offset_for(before - 300_000, before, before + 40);
        assert_eq!(offset, -300_020);
        clock.set_offset_ms(offset);
        let behind = local.0 - clock.now().0;
        assert!((299..=301).contains(&behind), "{behind} s behind");
        assert_eq!(clock.offset_ms(), -300_020);
    }

    #[test]
    fn spans_parse_in_the_documented_forms() {
        assert_eq!("90s".parse::<Span>(), Ok(Span(90)));
        assert_eq!("15m".parse::<Span>(), Ok(Span(900)));
        assert_eq!("4h".parse::<Span>(), Ok(Span(14_400)));
        assert_eq!("2d".parse::<Span>(), Ok(Span(172_800)));
        for bad in [
            "",
            "4",
            "h",
            "4 hours",
            "-4h",
            "0s",
            "4H",
            "1.5h",
            "99999999999999999999h",
        ] {
            assert!(bad.parse::<Span>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn spans_display_round_trips() {
        for s in ["90s", "15m", "4h", "2d", "61s"] {
            assert_eq!(s.parse::<Span>().map(|x| x.to_string()), Ok(s.to_owned()));
        }
        assert_eq!(Span::hours(4).for_people(), "4 hours");
        assert_eq!(Span::minutes(90).for_people(), "1 hour 30 minutes");
        assert_eq!(Span::from_seconds(1).for_people(), "1 second");
    }

    #[test]
    fn instants_read_as_people_write_them() {
        let london = jiff::tz::TimeZone::get("Europe/London").expect("bundled tzdb");
        // 2026-11-25T22:32:00Z is 10:32pm in London in winter (GMT).
        assert_eq!(
            Timestamp(1_795_645_920).for_people(&london),
            "10:32pm on 25 November 2026"
        );
        // 2026-07-01T11:05:00Z is 12:05pm in London in summer (BST).
        assert_eq!(
            Timestamp(1_782_903_900).for_people(&london),
            "12:05pm on 1 July 2026"
        );
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp(100));
        assert_eq!(clock.now(), Timestamp(100));
        clock.advance(Span::minutes(1));
        assert_eq!(clock.now(), Timestamp(160));
    }
}
