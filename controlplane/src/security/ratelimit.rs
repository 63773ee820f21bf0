//! A token bucket: the per-source limit on new transactions (issue 3, item 3).
//!
//! Owns only the bucket arithmetic. Does not own the table of buckets or the limits.
//! Tokens are counted in billionths in integers, so refills are exact: a bucket of 1/s
//! has its token back after exactly 1 s, not after a rounding error more.

use std::time::Instant;

/// Billionths of a token per token.
const UNIT: u128 = 1_000_000_000;

#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenBucket {
    /// Billionths of a token.
    tokens: u64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket: a new source may start with a burst.
    pub(crate) fn new(now: Instant, burst: u32) -> TokenBucket {
        TokenBucket {
            tokens: capacity(burst),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant, rate: u32, burst: u32) {
        // A `now` before `last` (non-monotonic caller) adds nothing and keeps `last`.
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        if elapsed > 0 {
            // rate tokens/s = rate billionths per ns.
            let added = elapsed.saturating_mul(u128::from(rate));
            let total = u128::from(self.tokens).saturating_add(added);
            self.tokens = total.min(u128::from(capacity(burst))) as u64;
            self.last = now;
        }
        // A burst lowered by a reload applies at once.
        self.tokens = self.tokens.min(capacity(burst));
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self, now: Instant, rate: u32, burst: u32) -> bool {
        self.refill(now, rate, burst);
        match self.tokens.checked_sub(UNIT as u64) {
            Some(left) => {
                self.tokens = left;
                true
            }
            None => false,
        }
    }

    /// Whether the bucket is full at `now`, so dropping it loses nothing.
    pub(crate) fn is_full_at(&mut self, now: Instant, rate: u32, burst: u32) -> bool {
        self.refill(now, rate, burst);
        self.tokens >= capacity(burst)
    }
}

/// `burst` tokens in billionths (u32::MAX tokens fit in u64 billionths).
fn capacity(burst: u32) -> u64 {
    u64::from(burst) * UNIT as u64
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::security::test_base as base;

    #[test]
    fn burst_then_rate() {
        let t0 = base();
        let mut b = TokenBucket::new(t0, 4);
        assert_eq!((0..6).filter(|_| b.take(t0, 2, 4)).count(), 4);
        // 2 per second: one more token after exactly 500 ms, not before.
        assert!(!b.take(t0 + Duration::from_nanos(499_999_999), 2, 4));
        assert!(b.take(t0 + Duration::from_millis(500), 2, 4));
        assert!(!b.take(t0 + Duration::from_millis(500), 2, 4));
        assert!(b.is_full_at(t0 + Duration::from_secs(10), 2, 4));
    }

    #[test]
    fn time_going_backwards_adds_nothing() {
        let t0 = base() + Duration::from_secs(10);
        let mut b = TokenBucket::new(t0, 1);
        assert!(b.take(t0, 1, 1));
        assert!(!b.take(t0 - Duration::from_secs(5), 1, 1));
    }

    #[test]
    fn huge_values_saturate() {
        let t0 = base();
        let mut b = TokenBucket::new(t0, u32::MAX);
        assert!(b.take(t0 + Duration::from_secs(1 << 40), u32::MAX, u32::MAX));
        assert!(b.is_full_at(t0 + Duration::from_secs(1 << 41), u32::MAX, u32::MAX));
    }
}
