//! The timer queue of the transaction layer: named timers in one binary heap.
//!
//! Each transaction keeps the deadline of every timer it has armed in [`TimerSlots`]; the
//! queue holds `(deadline, transaction, timer)` entries. Re-arming or disarming a timer only
//! changes the slot, so the old heap entry goes stale and is skipped when it reaches the top
//! (lazy invalidation): arming is O(log n), firing is O(log n), nothing scans all
//! transactions. Stale entries are dropped when they surface, and the whole heap is
//! compacted when stale entries outnumber live ones, so memory stays proportional to the
//! number of armed timers.
//!
//! It does not know what a timer means; the state machines in [`super::server`] and
//! [`super::client`] do.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::{should_shrink, TimerKind, TxId, MIN_CAPACITY};

/// The deadline of each timer of one transaction (`None`: not armed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TimerSlots([Option<Instant>; TimerKind::COUNT]);

impl TimerSlots {
    pub(crate) fn get(&self, kind: TimerKind) -> Option<Instant> {
        self.0[kind.index()]
    }

    pub(crate) fn set(&mut self, kind: TimerKind, at: Option<Instant>) {
        self.0[kind.index()] = at;
    }

    /// How many timers are armed.
    pub(crate) fn armed(&self) -> usize {
        self.0.iter().filter(|s| s.is_some()).count()
    }
}

/// One armed timer as queued. Ordered by deadline first, so the heap pops the earliest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    pub(crate) at: Instant,
    pub(crate) tx: TxId,
    pub(crate) kind: TimerKind,
}

/// A min-heap of timer entries, some of them stale.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<Entry>>,
}

impl TimerQueue {
    pub(crate) fn push(&mut self, entry: Entry) {
        self.heap.push(Reverse(entry));
    }

    /// The earliest entry, live or stale. Call [`TimerQueue::prune`] first to make it live.
    pub(crate) fn peek(&self) -> Option<&Entry> {
        self.heap.peek().map(|Reverse(e)| e)
    }

    /// Remove and return the earliest entry due at `now` that is still live.
    pub(crate) fn pop_due(
        &mut self,
        now: Instant,
        is_live: impl Fn(&Entry) -> bool,
    ) -> Option<Entry> {
        while let Some(Reverse(e)) = self.heap.peek() {
            if e.at > now {
                return None;
            }
            let e = *e;
            self.heap.pop();
            if is_live(&e) {
                return Some(e);
            }
        }
        None
    }

    /// Drop stale entries from the top so [`TimerQueue::peek`] names a live timer, and
    /// compact the heap when it is mostly stale (`live` is the number of armed timers).
    pub(crate) fn prune(&mut self, live: usize, is_live: impl Fn(&Entry) -> bool) {
        if self.heap.len() > 64 && self.heap.len() > live.saturating_mul(4) {
            self.heap.retain(|Reverse(e)| is_live(e));
        }
        while let Some(Reverse(e)) = self.heap.peek() {
            if is_live(e) {
                break;
            }
            self.heap.pop();
        }
        if should_shrink(self.heap.len(), self.heap.capacity()) {
            self.heap.shrink_to((self.heap.len() * 2).max(MIN_CAPACITY));
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.heap.capacity()
    }
}

/// `now + d`, or `None` when that is past what [`Instant`] can hold (a timer that far away
/// never fires, which is what an absurd configuration deserves rather than a panic).
pub(crate) fn deadline(now: Instant, d: Duration) -> Option<Instant> {
    now.checked_add(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)] // one real base instant; every other time is virtual
    fn base() -> Instant {
        Instant::now()
    }

    fn entry(t0: Instant, ms: u64, tx: u64, kind: TimerKind) -> Entry {
        Entry {
            at: t0 + Duration::from_millis(ms),
            tx: TxId(tx),
            kind,
        }
    }

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let t0 = base();
        let mut q = TimerQueue::default();
        q.push(entry(t0, 300, 1, TimerKind::B));
        q.push(entry(t0, 100, 2, TimerKind::A));
        q.push(entry(t0, 200, 3, TimerKind::E));
        assert_eq!(q.pop_due(t0 + Duration::from_millis(99), |_| true), None);
        let due = t0 + Duration::from_millis(250);
        assert_eq!(q.pop_due(due, |_| true).map(|e| e.tx), Some(TxId(2)));
        assert_eq!(q.pop_due(due, |_| true).map(|e| e.tx), Some(TxId(3)));
        assert_eq!(q.pop_due(due, |_| true), None);
        assert_eq!(q.peek().map(|e| e.tx), Some(TxId(1)));
    }

    #[test]
    fn stale_entries_are_skipped_and_pruned() {
        let t0 = base();
        let mut q = TimerQueue::default();
        q.push(entry(t0, 100, 1, TimerKind::A));
        q.push(entry(t0, 200, 2, TimerKind::A));
        let live = |e: &Entry| e.tx == TxId(2);
        q.prune(1, live);
        assert_eq!(q.peek().map(|e| e.tx), Some(TxId(2)));
        assert_eq!(q.len(), 1);
        assert_eq!(
            q.pop_due(t0 + Duration::from_secs(1), live).map(|e| e.tx),
            Some(TxId(2))
        );
    }

    #[test]
    fn compaction_bounds_the_heap() {
        let t0 = base();
        let mut q = TimerQueue::default();
        for i in 0..1000 {
            q.push(entry(t0, 1000 + i, i, TimerKind::F));
        }
        // Only the last entry is live: the heap shrinks to it.
        q.prune(1, |e| e.tx == TxId(999));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn slots_track_armed_timers() {
        let t0 = base();
        let mut s = TimerSlots::default();
        s.set(TimerKind::G, Some(t0));
        s.set(TimerKind::H, Some(t0));
        assert_eq!(s.armed(), 2);
        s.set(TimerKind::G, None);
        assert_eq!(s.get(TimerKind::G), None);
        assert_eq!(s.get(TimerKind::H), Some(t0));
    }
}
