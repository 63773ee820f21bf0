//! The ban table (SEC-03, SEC-08, SEC-13): who is banned until when, expiry in deadline
//! order, and a cap on the number of bans.
//!
//! Owns storage, expiry and eviction, and reports every change as a [`SecurityEvent`] so
//! the binary's store mirrors the table. Does not own why a ban is made (the callers in
//! [`super::EdgeSecurity`]) or persistence (the binary).
//!
//! Invariant: the top of `expiry` is always live (it names a ban in `map` with exactly
//! that deadline), so [`BanTable::next_expiry`] needs only `&self`. Deeper entries may be
//! stale (the ban was lifted or replaced); they are skipped when they surface, and the
//! heap is rebuilt when stale entries outnumber live ones.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

use super::{Ban, SecurityEvent, UnbanReason};

#[derive(Debug)]
pub(crate) struct BanTable {
    /// Keyed by [`super::source_key`].
    map: HashMap<IpAddr, Ban>,
    expiry: BinaryHeap<Reverse<(Instant, IpAddr)>>,
    cap: usize,
}

impl BanTable {
    pub(crate) fn new(cap: usize) -> BanTable {
        BanTable {
            map: HashMap::new(),
            expiry: BinaryHeap::new(),
            cap: cap.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn get(&self, key: &IpAddr) -> Option<&Ban> {
        self.map.get(key)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Ban> {
        self.map.values()
    }

    /// The earliest deadline of a ban.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.expiry.peek().map(|Reverse((at, _))| *at)
    }

    /// Inserts or replaces the ban for `ban.ip` (already a source key). A full table first
    /// drops expired bans, then the bans that would expire soonest.
    pub(crate) fn insert(&mut self, now: Instant, ban: Ban, events: &mut VecDeque<SecurityEvent>) {
        if self.map.len() >= self.cap && !self.map.contains_key(&ban.ip) {
            self.expire(now, events);
            let target = self.cap - (self.cap / 8).max(1);
            self.evict_to(target, events);
        }
        self.map.insert(ban.ip, ban);
        self.expiry.push(Reverse((ban.until, ban.ip)));
        self.tidy();
    }

    /// Lifts the ban on `key`, if any.
    pub(crate) fn remove(&mut self, key: &IpAddr) -> Option<Ban> {
        let ban = self.map.remove(key)?;
        self.tidy();
        Some(ban)
    }

    /// Lifts every ban whose deadline is at or before `now`.
    pub(crate) fn expire(&mut self, now: Instant, events: &mut VecDeque<SecurityEvent>) {
        while let Some(Reverse((at, ip))) = self.expiry.peek().copied() {
            if at > now {
                break;
            }
            self.expiry.pop();
            if self.map.get(&ip).is_some_and(|b| b.until == at) {
                self.map.remove(&ip);
                events.push_back(SecurityEvent::Unbanned {
                    ip,
                    reason: UnbanReason::Expired,
                });
            }
        }
        self.tidy();
    }

    /// A new cap; bans above it are evicted at once, soonest deadline first.
    pub(crate) fn set_cap(&mut self, cap: usize, events: &mut VecDeque<SecurityEvent>) {
        self.cap = cap.max(1);
        self.evict_to(self.cap, events);
    }

    fn evict_to(&mut self, target: usize, events: &mut VecDeque<SecurityEvent>) {
        while self.map.len() > target {
            let Some(Reverse((at, ip))) = self.expiry.pop() else {
                break;
            };
            if self.map.get(&ip).is_some_and(|b| b.until == at) {
                self.map.remove(&ip);
                events.push_back(SecurityEvent::Unbanned {
                    ip,
                    reason: UnbanReason::Evicted,
                });
            }
        }
        self.tidy();
    }

    /// Restores the invariant that the heap's top is live, and bounds stale entries.
    fn tidy(&mut self) {
        if self.expiry.len() > 2 * self.map.len() + 64 {
            self.expiry = self
                .map
                .values()
                .map(|b| Reverse((b.until, b.ip)))
                .collect();
        }
        while let Some(Reverse((at, ip))) = self.expiry.peek() {
            if self.map.get(ip).is_some_and(|b| b.until == *at) {
                break;
            }
            self.expiry.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::security::{test_base as base, BanReason};

    fn ban(n: u32, until: Instant) -> Ban {
        Ban {
            ip: IpAddr::V4(n.into()),
            until,
            reason: BanReason::Manual,
        }
    }

    #[test]
    fn expires_in_deadline_order_and_skips_replaced_bans() {
        let t0 = base();
        let s = Duration::from_secs(1);
        let mut ev = VecDeque::new();
        let mut t = BanTable::new(10);
        t.insert(t0, ban(1, t0 + 3 * s), &mut ev);
        t.insert(t0, ban(2, t0 + s), &mut ev);
        // Replace ban 2 with a later deadline: the old heap entry goes stale.
        t.insert(t0, ban(2, t0 + 5 * s), &mut ev);
        assert_eq!(t.next_expiry(), Some(t0 + 3 * s));
        t.expire(t0 + 3 * s, &mut ev);
        assert_eq!(ev.len(), 1);
        assert_eq!(t.next_expiry(), Some(t0 + 5 * s));
        assert!(t.remove(&IpAddr::V4(2.into())).is_some());
        assert_eq!(t.next_expiry(), None);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn full_table_evicts_soonest_deadlines() {
        let t0 = base();
        let mut ev = VecDeque::new();
        let mut t = BanTable::new(16);
        for n in 0..17u32 {
            t.insert(
                t0,
                ban(n, t0 + Duration::from_secs(100 + u64::from(n))),
                &mut ev,
            );
            assert!(t.len() <= 16);
        }
        assert_eq!(ev.len(), 2);
        assert!(t.get(&IpAddr::V4(0.into())).is_none());
        assert!(t.get(&IpAddr::V4(16.into())).is_some());
        assert!(ev.iter().all(|e| matches!(
            e,
            SecurityEvent::Unbanned {
                reason: UnbanReason::Evicted,
                ..
            }
        )));
    }

    #[test]
    fn stale_heap_entries_stay_bounded() {
        let t0 = base();
        let mut ev = VecDeque::new();
        let mut t = BanTable::new(10);
        for n in 0..10_000u64 {
            t.insert(t0, ban(1, t0 + Duration::from_secs(1_000_000 - n)), &mut ev);
        }
        assert!(t.expiry.len() <= 2 * t.len() + 65);
    }
}
