//! A sliding-window event counter in constant memory, used for flood detection per source
//! (SEC-13) and for new calls per second (SEC-15).
//!
//! Owns only the counting. Does not own limits, bans or the per-source table.
//!
//! An exact sliding window needs one timestamp per event (31 per source for the default
//! flood limit), which is too much memory for a table of 100,000 spoofed sources. Instead
//! the window is cut into [`SLOTS`] slots and the counter keeps one count per slot plus the
//! slot in progress. The count therefore covers between one window and one window plus one
//! slot (2 s to 2.125 s for the flood default): it never misses events that lie within
//! the window, and may still include events up to one slot older than it. So no source
//! sends more than the limit within the window unbanned, while a perfectly steady source
//! is banned from 30 / 2.125 s = 14.1 requests/s rather than 15. Counts saturate at
//! 65,535 per slot, far above any useful limit.

use std::time::{Duration, Instant};

/// Slots per window.
pub(crate) const SLOTS: usize = 16;

/// The shortest slot; windows shorter than `SLOTS` of these are treated as that long.
const MIN_SLOT: Duration = Duration::from_micros(1);

/// Counts events in the last window (see the module docs for the precision).
#[derive(Debug, Clone)]
pub(crate) struct SlidingCounter {
    /// Start of the slot in progress.
    slot_start: Instant,
    /// Index of the slot in progress in `counts`.
    head: u8,
    /// The slot in progress and the `SLOTS` before it.
    counts: [u16; SLOTS + 1],
}

impl SlidingCounter {
    pub(crate) fn new(now: Instant) -> SlidingCounter {
        SlidingCounter {
            slot_start: now,
            head: 0,
            counts: [0; SLOTS + 1],
        }
    }

    /// The length of one slot for a window.
    pub(crate) fn slot_for(window: Duration) -> Duration {
        (window / SLOTS as u32).max(MIN_SLOT)
    }

    /// Moves the window to `now`. A `now` earlier than the slot in progress (a caller
    /// whose clock is not monotonic) counts into the slot in progress.
    fn advance(&mut self, now: Instant, slot: Duration) {
        let elapsed = now.saturating_duration_since(self.slot_start);
        let passed = elapsed.as_nanos() / slot.as_nanos().max(1);
        if passed == 0 {
            return;
        }
        if passed > SLOTS as u128 {
            self.counts = [0; SLOTS + 1];
            self.head = 0;
            self.slot_start = now;
            return;
        }
        for _ in 0..passed {
            self.head = ((usize::from(self.head) + 1) % (SLOTS + 1)) as u8;
            self.counts[usize::from(self.head)] = 0;
        }
        // `passed` ≤ SLOTS here, so the product cannot overflow.
        self.slot_start += slot * passed as u32;
    }

    /// Events in the window ending at `now`.
    pub(crate) fn count(&mut self, now: Instant, slot: Duration) -> u32 {
        self.advance(now, slot);
        self.total()
    }

    /// Records one event at `now` and returns the events in the window, this one included.
    pub(crate) fn record(&mut self, now: Instant, slot: Duration) -> u32 {
        self.advance(now, slot);
        let c = &mut self.counts[usize::from(self.head)];
        *c = c.saturating_add(1);
        self.total()
    }

    fn total(&self) -> u32 {
        self.counts.iter().map(|c| u32::from(*c)).sum()
    }

    /// Forgets every event (after a ban, or when the window length changes).
    pub(crate) fn reset(&mut self, now: Instant) {
        *self = SlidingCounter::new(now);
    }

    /// Whether the counter holds no event that could still be in a window at `now`.
    pub(crate) fn is_empty_at(&mut self, now: Instant, slot: Duration) -> bool {
        self.count(now, slot) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::test_base as base;

    #[test]
    fn counts_events_within_the_window() {
        let t0 = base();
        let slot = SlidingCounter::slot_for(Duration::from_secs(2));
        let mut c = SlidingCounter::new(t0);
        for i in 0..31u32 {
            let at = t0 + Duration::from_millis(u64::from(i) * 60); // 1.8 s in all
            assert_eq!(c.record(at, slot), i + 1);
        }
    }

    #[test]
    fn never_misses_events_inside_the_window() {
        let slot = SlidingCounter::slot_for(Duration::from_secs(2));
        let t0 = base();
        // Start at every phase of a slot: two events 1.999 s apart are always both counted.
        for phase_ms in (0..125).step_by(3) {
            let mut c = SlidingCounter::new(t0);
            let a = t0 + Duration::from_millis(phase_ms);
            c.record(a, slot);
            assert_eq!(c.record(a + Duration::from_millis(1999), slot), 2);
        }
    }

    #[test]
    fn forgets_events_older_than_window_plus_one_slot() {
        let window = Duration::from_secs(2);
        let slot = SlidingCounter::slot_for(window);
        let t0 = base();
        let mut c = SlidingCounter::new(t0);
        for _ in 0..30 {
            c.record(t0, slot);
        }
        assert_eq!(c.count(t0 + window + slot, slot), 0);
        assert!(c.is_empty_at(t0 + Duration::from_secs(100), slot));
    }

    #[test]
    fn tolerates_time_going_backwards() {
        let slot = SlidingCounter::slot_for(Duration::from_secs(2));
        let t0 = base() + Duration::from_secs(10);
        let mut c = SlidingCounter::new(t0);
        c.record(t0, slot);
        assert_eq!(c.record(t0 - Duration::from_secs(5), slot), 2);
    }

    #[test]
    fn zero_window_does_not_divide_by_zero() {
        let slot = SlidingCounter::slot_for(Duration::ZERO);
        let t0 = base();
        let mut c = SlidingCounter::new(t0);
        c.record(t0, slot);
        assert_eq!(c.count(t0 + Duration::from_secs(1), slot), 0);
    }
}
