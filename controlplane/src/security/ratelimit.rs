//! A token bucket: the per-source limit on new transactions (issue 3, item 3).
//!
//! Owns only the bucket arithmetic. Does not own the table of buckets or the limits.

use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenBucket {
    tokens: f32,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket: a new source may start with a burst.
    pub(crate) fn new(now: Instant, burst: f32) -> TokenBucket {
        TokenBucket {
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant, rate: f32, burst: f32) {
        // A `now` before `last` (non-monotonic caller) adds nothing and keeps `last`.
        let elapsed = now.saturating_duration_since(self.last).as_secs_f32();
        if elapsed > 0.0 {
            self.tokens = (self.tokens + elapsed * rate).min(burst);
            self.last = now;
        }
        // A burst lowered by a reload applies at once.
        self.tokens = self.tokens.min(burst);
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self, now: Instant, rate: f32, burst: f32) -> bool {
        self.refill(now, rate, burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket is full at `now`, so dropping it loses nothing.
    pub(crate) fn is_full_at(&mut self, now: Instant, rate: f32, burst: f32) -> bool {
        self.refill(now, rate, burst);
        self.tokens >= burst
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::security::test_base as base;

    #[test]
    fn burst_then_rate() {
        let t0 = base();
        let mut b = TokenBucket::new(t0, 4.0);
        assert_eq!((0..6).filter(|_| b.take(t0, 2.0, 4.0)).count(), 4);
        // 2 per second: one more token after 500 ms.
        assert!(b.take(t0 + Duration::from_millis(500), 2.0, 4.0));
        assert!(!b.take(t0 + Duration::from_millis(500), 2.0, 4.0));
        assert!(b.is_full_at(t0 + Duration::from_secs(10), 2.0, 4.0));
    }

    #[test]
    fn time_going_backwards_adds_nothing() {
        let t0 = base() + Duration::from_secs(10);
        let mut b = TokenBucket::new(t0, 1.0);
        assert!(b.take(t0, 1.0, 1.0));
        assert!(!b.take(t0 - Duration::from_secs(5), 1.0, 1.0));
    }
}
