//! The lockout state machine: how many passwords may be checked for a username.
//!
//! The rule from the seed: 3 consecutive wrong passwords lock the account for
//! 12 hours. Every system surveyed in `research/anchors.md` that checked the
//! password first and counted afterwards let parallel guesses through
//! (Keycloak CVE-2024-4629, Zitadel GHSA-7h8m-vrxx-vr4m, django-axes #592).
//! So here an attempt is *claimed* before its password is checked: the claim
//! counts as a failure straight away and a success takes it back. Storage
//! applies a claim only if the counter has not changed since it was read
//! (compare-and-set), so however many attempts arrive at once, on however
//! many nodes, at most `threshold` passwords are checked before the lock.
//!
//! A second count, `total`, is never reset by the passing of time, only by a
//! success or a password reset: at `max_total` consecutive failures the
//! password is disabled until the person resets it (NIST SP 800-63B-4 §3.2.2,
//! which caps consecutive failures at 100; a 12-hour lock alone would allow an
//! attacker 3 guesses every 12 hours forever).
//!
//! Wrong second-factor codes (helpdesk and admin accounts) count towards the
//! same lock, but a right *password* proves nothing about the code: it
//! forgives the password failures before it and never the code failures.
//! Only a right code, or the end of a lock, clears those. Otherwise whoever
//! holds a privileged password would get two code guesses per sign-in and
//! never be locked.

use crate::time::{Span, Timestamp};

/// How many failures lock, for how long, and when the password is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Consecutive failures that lock the account (seed: 3).
    pub threshold: u32,
    /// How long a lock lasts (seed: 12 hours).
    pub duration: Span,
    /// Consecutive failures, never reset by time, that disable the password until a reset.
    pub max_total_failures: u32,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            threshold: 3,
            duration: Span::hours(12),
            max_total_failures: 100,
        }
    }
}

/// The stored count of sign-in attempts for one username.
///
/// Kept for every username that has been tried, whether or not an account
/// has it, so an unknown username gets exactly the same messages (lock
/// included) as a real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttemptCounter {
    /// Failures, and attempts still being checked, since the last success or
    /// the end of the last lock.
    pub consecutive: u32,
    /// Failures since the last success or password reset; time does not reset it.
    pub total: u32,
    /// While set and in the future, no password is checked.
    pub locked_until: Option<Timestamp>,
    /// How many attempts have ever been claimed: a ticket number for each
    /// claim, so a success forgives only the attempts claimed before it.
    pub claims: u64,
    /// Second-factor codes claimed (and not proved right) since the last
    /// right code or the end of the last lock: a right password leaves them
    /// counted.
    pub second_factor_failures: u32,
}

/// What may happen with one sign-in attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimDecision {
    /// Store `next` (only if the counter is unchanged), then check the password.
    Check(Claim),
    /// Locked: say until when, check nothing.
    Locked {
        /// When the lock ends.
        until: Timestamp,
    },
    /// Too many failures in all: the password is disabled until a reset.
    Disabled,
}

/// A granted attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The counter to store before the password is checked.
    pub next: AttemptCounter,
    /// This attempt's ticket, needed to record a success.
    pub ticket: u64,
    /// Attempts left if this password turns out wrong (0 means it locks).
    pub attempts_left_if_wrong: u32,
    /// When the lock ends if this password turns out wrong and it locks.
    pub locks_until_if_wrong: Option<Timestamp>,
    /// Whether a wrong password now disables the password altogether.
    pub disables_if_wrong: bool,
}

impl AttemptCounter {
    /// Decides whether one more password may be checked at `now`.
    pub fn claim(&self, now: Timestamp, policy: &LockoutPolicy) -> ClaimDecision {
        self.claim_attempt(now, policy, false)
    }

    /// Decides whether one more second-factor code may be checked at `now`:
    /// as [`AttemptCounter::claim`], and the claim is also counted as a code
    /// failure until [`AttemptCounter::after_code_success`] takes it back.
    /// Never [`ClaimDecision::Disabled`]: that is the password's state.
    pub fn claim_code(&self, now: Timestamp, policy: &LockoutPolicy) -> ClaimDecision {
        self.claim_attempt(now, policy, true)
    }

    fn claim_attempt(&self, now: Timestamp, policy: &LockoutPolicy, code: bool) -> ClaimDecision {
        let mut next = *self;
        if let Some(until) = next.locked_until {
            if now < until {
                return ClaimDecision::Locked { until };
            }
            // The lock has run out: a fresh allowance, for codes as for
            // passwords. `total` carries on.
            next.consecutive = 0;
            next.second_factor_failures = 0;
            next.locked_until = None;
        }
        // The cap on failures in all disables the *password* (NIST SP
        // 800-63B-4 §3.2.2). A code is checked only after a right password
        // or inside a reset, so the cap does not stop codes: the lock does.
        if !code && next.total >= policy.max_total_failures {
            return ClaimDecision::Disabled;
        }
        if next.consecutive >= policy.threshold {
            // Only reachable if the threshold was lowered while attempts were
            // counted: lock now rather than check another password.
            let until = now.plus(policy.duration);
            return ClaimDecision::Locked { until };
        }
        next.consecutive += 1;
        next.total += 1;
        next.claims += 1;
        if code {
            next.second_factor_failures += 1;
        }
        // The attempt that reaches the threshold locks at once, before its
        // password is checked, so concurrent attempts are refused; a correct
        // password lifts it again in `after_success`.
        let locks = (next.consecutive >= policy.threshold).then(|| now.plus(policy.duration));
        next.locked_until = locks;
        ClaimDecision::Check(Claim {
            next,
            ticket: next.claims,
            attempts_left_if_wrong: policy.threshold.saturating_sub(next.consecutive),
            locks_until_if_wrong: locks,
            disables_if_wrong: next.total >= policy.max_total_failures,
        })
    }

    /// The counter after the attempt with `ticket` proved the right password.
    ///
    /// Password attempts claimed before it are forgiven; attempts claimed
    /// after it and still being checked keep counting, so a success cannot
    /// be used to launder guesses running alongside it. Code failures are
    /// not forgiven: the password proves nothing about the code. (A code
    /// claimed after the ticket is in both counts: the sum is an upper
    /// bound, never an undercount.)
    pub fn after_success(&self, ticket: u64, policy: &LockoutPolicy) -> AttemptCounter {
        let kept = self
            .later_than(ticket)
            .saturating_add(self.second_factor_failures);
        self.keeping(kept, self.second_factor_failures, policy)
    }

    /// The counter after the attempt with `ticket` proved the right
    /// second-factor code: everything claimed before it is forgiven, the
    /// code failures with it (the person has proved both factors).
    pub fn after_code_success(&self, ticket: u64, policy: &LockoutPolicy) -> AttemptCounter {
        let later = self.later_than(ticket);
        self.keeping(later, self.second_factor_failures.min(later), policy)
    }

    /// Claims made after the one with `ticket`.
    fn later_than(&self, ticket: u64) -> u32 {
        u32::try_from(self.claims.saturating_sub(ticket)).unwrap_or(u32::MAX)
    }

    /// The counter with at most `kept` failures still counted.
    fn keeping(&self, kept: u32, codes: u32, policy: &LockoutPolicy) -> AttemptCounter {
        let consecutive = self.consecutive.min(kept);
        AttemptCounter {
            consecutive,
            total: self.total.min(kept),
            locked_until: if consecutive >= policy.threshold {
                self.locked_until
            } else {
                None
            },
            claims: self.claims,
            second_factor_failures: codes.min(consecutive),
        }
    }

    /// The counter after a password reset: every password failure
    /// forgiven. Code failures stay counted: a reset link proves the
    /// mailbox, not the second factor, and would otherwise buy whoever reads
    /// the mailbox fresh code guesses with every reset.
    /// A lock that ran out before `now` has cleared them already.
    pub fn after_reset(&self, now: Timestamp) -> AttemptCounter {
        let lock_ran_out = self.locked_until.is_some_and(|until| until <= now);
        let codes = if lock_ran_out {
            0
        } else {
            self.second_factor_failures.min(self.consecutive)
        };
        AttemptCounter {
            consecutive: codes,
            total: codes.min(self.total),
            locked_until: None,
            claims: self.claims,
            second_factor_failures: codes,
        }
    }

    /// The lock in force at `now`, if any.
    pub fn locked_at(&self, now: Timestamp) -> Option<Timestamp> {
        self.locked_until.filter(|until| now < *until)
    }

    /// Whether the password is disabled (too many failures in all).
    pub fn is_disabled(&self, policy: &LockoutPolicy) -> bool {
        self.total >= policy.max_total_failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: Timestamp = Timestamp::from_unix(1_800_000_000);

    fn policy() -> LockoutPolicy {
        LockoutPolicy::default()
    }

    fn claim(c: &AttemptCounter, now: Timestamp) -> Claim {
        match c.claim(now, &policy()) {
            ClaimDecision::Check(claim) => claim,
            other => panic!("expected a check, got {other:?}"),
        }
    }

    /// A second-factor code's claim.
    fn c_claim(c: &AttemptCounter, now: Timestamp) -> Claim {
        match c.claim_code(now, &policy()) {
            ClaimDecision::Check(claim) => claim,
            other => panic!("expected a check, got {other:?}"),
        }
    }

    #[test]
    fn three_wrong_passwords_lock_for_twelve_hours() {
        let c0 = AttemptCounter::default();
        let a = claim(&c0, T0);
        assert_eq!(a.attempts_left_if_wrong, 2);
        assert_eq!(a.locks_until_if_wrong, None);
        let b = claim(&a.next, T0);
        assert_eq!(b.attempts_left_if_wrong, 1);
        let c = claim(&b.next, T0);
        assert_eq!(c.attempts_left_if_wrong, 0);
        let until = T0.plus(Span::hours(12));
        assert_eq!(c.locks_until_if_wrong, Some(until));
        assert_eq!(c.next.claim(T0, &policy()), ClaimDecision::Locked { until });
        // One second before the end: still locked. At the end: a fresh allowance.
        let just_before = until.minus(Span::from_seconds(1));
        assert_eq!(
            c.next.claim(just_before, &policy()),
            ClaimDecision::Locked { until }
        );
        let after = claim(&c.next, until);
        assert_eq!(after.attempts_left_if_wrong, 2);
        assert_eq!(after.next.total, 4, "the total is not reset by time");
    }

    #[test]
    fn success_clears_the_count_and_lifts_a_pending_lock() {
        let a = claim(&AttemptCounter::default(), T0);
        let b = claim(&a.next, T0);
        let c = claim(&b.next, T0);
        assert!(c.next.locked_until.is_some());
        let after = c.next.after_success(c.ticket, &policy());
        assert_eq!(after.consecutive, 0);
        assert_eq!(after.total, 0);
        assert_eq!(after.locked_until, None);
    }

    #[test]
    fn success_does_not_forgive_attempts_claimed_after_it() {
        let mine = claim(&AttemptCounter::default(), T0);
        let theirs = claim(&mine.next, T0);
        let after = theirs.next.after_success(mine.ticket, &policy());
        assert_eq!(after.consecutive, 1);
        assert_eq!(after.total, 1);
    }

    #[test]
    fn one_hundred_failures_in_all_disable_the_password() {
        let p = policy();
        let mut c = AttemptCounter::default();
        let mut now = T0;
        let mut checks = 0;
        loop {
            match c.claim(now, &p) {
                ClaimDecision::Check(claim) => {
                    checks += 1;
                    c = claim.next;
                    if checks == 100 {
                        assert!(claim.disables_if_wrong);
                    }
                }
                ClaimDecision::Locked { until } => now = until,
                ClaimDecision::Disabled => break,
            }
        }
        assert_eq!(checks, 100);
        assert!(c.is_disabled(&p));
        assert!(matches!(
            c.after_reset(now).claim(now, &p),
            ClaimDecision::Check(_)
        ));
    }

    /// Defect: a right password set the count of wrong second-factor codes
    /// back to 0, so a stolen privileged password bought two code guesses
    /// per sign-in, for ever.
    #[test]
    fn a_right_password_does_not_forgive_wrong_codes() {
        let p = policy();
        let code1 = c_claim(&AttemptCounter::default(), T0);
        let code2 = c_claim(&code1.next, T0);
        assert_eq!(code2.next.second_factor_failures, 2);
        // The password claim reaches the threshold (a pending lock)...
        let password = claim(&code2.next, T0);
        assert!(password.next.locked_until.is_some());
        // ...and the right password lifts it, but keeps both codes counted.
        let after = password.next.after_success(password.ticket, &p);
        assert_eq!(after.consecutive, 2);
        assert_eq!(after.second_factor_failures, 2);
        assert_eq!(after.locked_until, None);
        // So the third wrong code in a row locks, across sign-ins.
        let code3 = c_claim(&after, T0);
        assert_eq!(code3.locks_until_if_wrong, Some(T0.plus(Span::hours(12))));
        assert_eq!(code3.attempts_left_if_wrong, 0);
    }

    #[test]
    fn a_right_code_forgives_everything_claimed_before_it() {
        let p = policy();
        let wrong_password = claim(&AttemptCounter::default(), T0);
        let code1 = c_claim(&wrong_password.next, T0);
        let code2 = c_claim(&code1.next, T0);
        let after = code2.next.after_code_success(code2.ticket, &p);
        assert_eq!(after.consecutive, 0);
        assert_eq!(after.total, 0);
        assert_eq!(after.second_factor_failures, 0);
        assert_eq!(after.locked_until, None);
    }

    #[test]
    fn the_end_of_a_lock_clears_the_code_count() {
        let p = policy();
        let mut c = AttemptCounter::default();
        for _ in 0..3 {
            c = c_claim(&c, T0).next;
        }
        let until = T0.plus(Span::hours(12));
        assert_eq!(c.claim(T0, &p), ClaimDecision::Locked { until });
        let password = claim(&c, until);
        let after = password.next.after_success(password.ticket, &p);
        assert_eq!(after.consecutive, 0);
        assert_eq!(after.second_factor_failures, 0);
        assert_eq!(after.total, 0);
    }

    #[test]
    fn a_reset_forgives_passwords_but_not_codes() {
        let wrong_password = claim(&AttemptCounter::default(), T0);
        let code = c_claim(&wrong_password.next, T0);
        let after = code.next.after_reset(T0);
        assert_eq!(after.consecutive, 1);
        assert_eq!(after.second_factor_failures, 1);
        // Once the lock has run out, nothing is left to keep.
        let mut locked = AttemptCounter::default();
        for _ in 0..3 {
            locked = c_claim(&locked, T0).next;
        }
        let later = locked.after_reset(T0.plus(Span::hours(12)));
        assert_eq!((later.consecutive, later.second_factor_failures), (0, 0));
    }

    /// One step of a concurrent sign-in history, as the store would apply it.
    #[derive(Debug, Clone)]
    enum Step {
        /// An attacker's attempt (wrong password) arrives and is claimed.
        Guess,
        /// The owner's attempt (right password) arrives and is claimed.
        Owner,
        /// The oldest attempt still being checked finishes.
        Finish,
        /// Time passes.
        Wait(i64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => Just(Step::Guess),
            1 => Just(Step::Owner),
            4 => Just(Step::Finish),
            1 => (1i64..20_000).prop_map(Step::Wait),
        ]
    }

    proptest! {
        /// However claims and completions interleave, between two moments at
        /// which the lock could have expired, no more than `threshold` wrong
        /// passwords claimed since the owner's last successful claim are
        /// checked; and no more than `max_total` in all without a success.
        #[test]
        fn no_interleaving_checks_more_than_the_threshold(
            steps in proptest::collection::vec(step(), 1..300),
            threshold in 1u32..6,
        ) {
            let p = LockoutPolicy { threshold, duration: Span::hours(12), max_total_failures: 100 };
            let mut counter = AttemptCounter::default();
            let mut now = T0;
            // Attempts claimed and not yet finished: (ticket, is_owner).
            let mut in_flight: std::collections::VecDeque<(u64, bool)> = Default::default();
            // Wrong passwords checked in the current lock window, claimed
            // after the owner's latest successful claim.
            let mut window_guesses: Vec<u64> = Vec::new();
            let mut last_owner_success_ticket = 0u64;
            for s in steps {
                match s {
                    Step::Guess | Step::Owner => {
                        match counter.claim(now, &p) {
                            ClaimDecision::Check(c) => {
                                if counter.locked_until.is_some_and(|u| now >= u) {
                                    window_guesses.clear(); // the lock ran out
                                }
                                counter = c.next;
                                let owner = matches!(s, Step::Owner);
                                in_flight.push_back((c.ticket, owner));
                                if !owner {
                                    window_guesses.push(c.ticket);
                                }
                            }
                            ClaimDecision::Locked { until } => prop_assert!(now < until || counter.consecutive >= threshold),
                            ClaimDecision::Disabled => prop_assert!(counter.total >= p.max_total_failures),
                        }
                    }
                    Step::Finish => {
                        if let Some((ticket, true)) = in_flight.pop_front() {
                            counter = counter.after_success(ticket, &p);
                            last_owner_success_ticket = last_owner_success_ticket.max(ticket);
                            window_guesses.retain(|t| *t > ticket);
                        }
                    }
                    Step::Wait(secs) => now = now.plus(Span::from_seconds(secs)),
                }
                let counted = window_guesses.iter().filter(|t| **t > last_owner_success_ticket).count();
                prop_assert!(
                    counted <= threshold as usize,
                    "{counted} wrong passwords checked in one window (threshold {threshold})"
                );
                prop_assert!(counter.consecutive <= threshold);
            }
        }

        /// Whoever holds a privileged password, signing in as often as they
        /// like between code guesses, gets at most `threshold` code guesses
        /// per lock window (defect: each right password cleared the count).
        #[test]
        fn right_passwords_do_not_buy_code_guesses(
            steps in proptest::collection::vec(0u8..3, 1..300),
            threshold in 1u32..6,
        ) {
            let p = LockoutPolicy { threshold, duration: Span::hours(12), max_total_failures: 100 };
            let mut counter = AttemptCounter::default();
            let mut now = T0;
            let mut window_codes = 0u32;
            for s in steps {
                match s {
                    0 => match counter.claim_code(now, &p) {
                        ClaimDecision::Check(c) => {
                            if counter.locked_until.is_some_and(|u| now >= u) {
                                window_codes = 0;
                            }
                            counter = c.next;
                            window_codes += 1;
                        }
                        ClaimDecision::Locked { .. } | ClaimDecision::Disabled => {}
                    },
                    1 => if let ClaimDecision::Check(c) = counter.claim(now, &p) {
                        if counter.locked_until.is_some_and(|u| now >= u) {
                            window_codes = 0;
                        }
                        counter = c.next.after_success(c.ticket, &p);
                    },
                    _ => now = now.plus(Span::hours(1)),
                }
                prop_assert!(window_codes <= threshold, "{window_codes} codes checked in one window");
            }
        }

        /// With no owner, the number of checks is exactly what the lock
        /// schedule allows: threshold per window, and never more than
        /// `max_total` in all.
        #[test]
        fn attackers_get_threshold_checks_per_lock_window(
            bursts in proptest::collection::vec(1u32..20, 1..40),
            threshold in 1u32..6,
        ) {
            let p = LockoutPolicy { threshold, duration: Span::hours(12), max_total_failures: 100 };
            let mut counter = AttemptCounter::default();
            let mut now = T0;
            let mut total_checks = 0u32;
            for burst in bursts {
                let mut checks = 0;
                for _ in 0..burst {
                    if let ClaimDecision::Check(c) = counter.claim(now, &p) {
                        counter = c.next;
                        checks += 1;
                    }
                }
                prop_assert!(checks <= threshold);
                total_checks += checks;
                prop_assert!(total_checks <= p.max_total_failures);
                now = now.plus(Span::hours(12));
            }
        }
    }
}
