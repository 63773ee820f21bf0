//! Failed authentications per source (SEC-03): the counts behind brute-force bans.
//!
//! Owns the exact sliding windows of failures per source and per account of a source.
//! Does not own the limits, the ban itself, or why an authentication failed (the auth
//! module's reasons).
//!
//! Unlike flood counting, failures are kept as exact timestamps: they are few (at most
//! `per_ip + 1` per source before it is banned) and come only after a full challenge
//! round trip, not with every packet. Accounts are kept as a keyed 64-bit hash of the
//! name, so a long or hostile user name costs no more memory than a short one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::table::Tracked;

/// The failures of one source inside the window.
#[derive(Debug, Clone)]
pub(crate) struct AuthFailures {
    last_seen: Instant,
    /// Every failure of this source, oldest first.
    all: VecDeque<Instant>,
    /// Per account (name hash): its failures, oldest first. Never holds an empty log.
    accounts: Vec<(u64, VecDeque<Instant>)>,
}

/// Counts after recording one failure, this one included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FailureCounts {
    pub(crate) account: usize,
    pub(crate) source: usize,
}

impl Tracked for AuthFailures {
    fn last_seen(&self) -> Instant {
        self.last_seen
    }
}

impl AuthFailures {
    pub(crate) fn new(now: Instant) -> AuthFailures {
        AuthFailures {
            last_seen: now,
            all: VecDeque::new(),
            accounts: Vec::new(),
        }
    }

    /// Forgets failures that are `window` or more before `now`.
    pub(crate) fn prune(&mut self, now: Instant, window: Duration) {
        let fresh = |t: &Instant| now.saturating_duration_since(*t) < window;
        while self.all.front().is_some_and(|t| !fresh(t)) {
            self.all.pop_front();
        }
        for (_, log) in &mut self.accounts {
            while log.front().is_some_and(|t| !fresh(t)) {
                log.pop_front();
            }
        }
        self.accounts.retain(|(_, log)| !log.is_empty());
    }

    /// Whether nothing inside the window remains.
    pub(crate) fn is_idle_at(&mut self, now: Instant, window: Duration) -> bool {
        self.prune(now, window);
        self.all.is_empty()
    }

    /// Records one failure for `account` at `now`.
    pub(crate) fn record(&mut self, now: Instant, window: Duration, account: u64) -> FailureCounts {
        self.prune(now, window);
        self.last_seen = now;
        self.all.push_back(now);
        let log = match self.accounts.iter().position(|(a, _)| *a == account) {
            Some(i) => &mut self.accounts[i].1,
            None => {
                self.accounts.push((account, VecDeque::new()));
                &mut self
                    .accounts
                    .last_mut()
                    .expect("an account log was pushed just above")
                    .1
            }
        };
        log.push_back(now);
        FailureCounts {
            account: log.len(),
            source: self.all.len(),
        }
    }

    /// Forgets the failures of one account (after it authenticated); the source's total
    /// stays, so successes on one account cannot launder guesses at others.
    pub(crate) fn clear_account(&mut self, account: u64) {
        self.accounts.retain(|(a, _)| *a != account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::test_base as base;

    #[test]
    fn counts_per_account_and_per_source_in_window() {
        let t0 = base();
        let w = Duration::from_secs(300);
        let mut f = AuthFailures::new(t0);
        assert_eq!(
            f.record(t0, w, 1),
            FailureCounts {
                account: 1,
                source: 1
            }
        );
        assert_eq!(
            f.record(t0, w, 2),
            FailureCounts {
                account: 1,
                source: 2
            }
        );
        assert_eq!(
            f.record(t0 + Duration::from_secs(299), w, 1),
            FailureCounts {
                account: 2,
                source: 3
            }
        );
        // At t0 + 300 s the first two have left the window.
        assert_eq!(
            f.record(t0 + w, w, 1),
            FailureCounts {
                account: 2,
                source: 2
            }
        );
        f.clear_account(1);
        assert_eq!(
            f.record(t0 + w, w, 1),
            FailureCounts {
                account: 1,
                source: 3
            }
        );
        assert!(f.is_idle_at(t0 + w + w, w));
    }
}
