//! A per-source hash table with a hard cap on its size, so that a flood from spoofed
//! source addresses cannot grow memory without bound.
//!
//! Owns: storage and eviction. Does not own: what an entry holds or when it is idle (the
//! caller says, through [`Tracked`] and the `idle` predicate).
//!
//! When a new source arrives at a full table, entries that are idle (they hold nothing
//! that could still change a decision) are dropped first, which loses nothing. If that
//! frees too little, the least recently seen entries are dropped until the table is at
//! 7/8 of its cap, so the O(n) eviction runs at most once per n/8 insertions and the cost
//! per packet stays O(1) amortised. A forced eviction forgets an attacker's counters; the
//! table counts how often that happened.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// An entry that knows when its source was last seen.
pub(crate) trait Tracked {
    fn last_seen(&self) -> Instant;
}

#[derive(Debug)]
pub(crate) struct SourceTable<V> {
    map: HashMap<IpAddr, V>,
    cap: usize,
    /// Reused buffer for choosing the eviction threshold, so eviction does not allocate
    /// once the table has been full once.
    scratch: Vec<Instant>,
    /// Entries dropped while not idle.
    forced_evictions: u64,
}

impl<V: Tracked> SourceTable<V> {
    pub(crate) fn new(cap: usize) -> SourceTable<V> {
        SourceTable {
            map: HashMap::new(),
            cap: cap.max(1),
            scratch: Vec::new(),
            forced_evictions: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn forced_evictions(&self) -> u64 {
        self.forced_evictions
    }

    pub(crate) fn get_mut(&mut self, key: &IpAddr) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    pub(crate) fn remove(&mut self, key: &IpAddr) -> Option<V> {
        self.map.remove(key)
    }

    /// The entry for `key`, made by `make` if absent. A full table is trimmed first
    /// (idle entries, then the least recently seen).
    pub(crate) fn entry(
        &mut self,
        key: IpAddr,
        make: impl FnOnce() -> V,
        mut idle: impl FnMut(&mut V) -> bool,
    ) -> &mut V {
        // Below the cap this is one hash lookup; only a full table pays for a second.
        if self.map.len() >= self.cap && !self.map.contains_key(&key) {
            self.map.retain(|_, v| !idle(v));
            let target = self.cap - (self.cap / 8).max(1);
            self.trim_to(target);
        }
        self.map.entry(key).or_insert_with(make)
    }

    /// Drops every entry for which `idle` holds (a periodic sweep).
    pub(crate) fn sweep(&mut self, mut idle: impl FnMut(&mut V) -> bool) {
        self.map.retain(|_, v| !idle(v));
    }

    /// Applies every entry (after a configuration change).
    pub(crate) fn for_each(&mut self, f: impl FnMut(&mut V)) {
        self.map.values_mut().for_each(f);
    }

    /// A new cap; a table above it is trimmed at once (least recently seen first).
    pub(crate) fn set_cap(&mut self, cap: usize) {
        self.cap = cap.max(1);
        if self.map.len() > self.cap {
            self.trim_to(self.cap);
        }
    }

    /// Drops the least recently seen entries until at most `target` remain.
    fn trim_to(&mut self, target: usize) {
        let excess = self.map.len().saturating_sub(target);
        if excess == 0 {
            return;
        }
        self.scratch.clear();
        self.scratch
            .extend(self.map.values().map(Tracked::last_seen));
        let (_, threshold, _) = self.scratch.select_nth_unstable(excess - 1);
        let threshold = *threshold;
        let older = self.scratch.iter().filter(|t| **t < threshold).count();
        // Entries seen exactly at the threshold go until `excess` are gone.
        let mut at_threshold = excess - older;
        self.map.retain(|_, v| {
            let seen = v.last_seen();
            if seen < threshold {
                false
            } else if seen == threshold && at_threshold > 0 {
                at_threshold -= 1;
                false
            } else {
                true
            }
        });
        self.forced_evictions += excess as u64;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::security::test_base as base;

    #[derive(Debug)]
    struct E {
        seen: Instant,
        idle: bool,
    }

    impl Tracked for E {
        fn last_seen(&self) -> Instant {
            self.seen
        }
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(n.into())
    }

    #[test]
    fn never_exceeds_cap_and_keeps_the_newest() {
        let t0 = base();
        let mut t = SourceTable::new(100);
        for n in 0..1000u32 {
            let seen = t0 + Duration::from_millis(u64::from(n));
            t.entry(ip(n), || E { seen, idle: false }, |e: &mut E| e.idle);
            assert!(t.len() <= 100);
        }
        assert!(t.get_mut(&ip(999)).is_some());
        assert!(t.get_mut(&ip(0)).is_none());
        assert!(t.forced_evictions() > 0);
    }

    #[test]
    fn idle_entries_go_first() {
        let t0 = base();
        let mut t = SourceTable::new(8);
        for n in 0..8u32 {
            // The oldest entry is busy, the others idle.
            t.entry(
                ip(n),
                || E {
                    seen: t0,
                    idle: n != 0,
                },
                |e: &mut E| e.idle,
            );
        }
        t.entry(
            ip(100),
            || E {
                seen: t0,
                idle: false,
            },
            |e: &mut E| e.idle,
        );
        assert!(t.get_mut(&ip(0)).is_some());
        assert_eq!(t.len(), 2);
        assert_eq!(t.forced_evictions(), 0);
    }

    #[test]
    fn equal_timestamps_evict_exactly_enough() {
        let t0 = base();
        let mut t = SourceTable::new(16);
        for n in 0..17u32 {
            t.entry(
                ip(n),
                || E {
                    seen: t0,
                    idle: false,
                },
                |e: &mut E| e.idle,
            );
        }
        // Trimmed to 14, then the new one added.
        assert_eq!(t.len(), 15);
        t.set_cap(4);
        assert_eq!(t.len(), 4);
    }
}
