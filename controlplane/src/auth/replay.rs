//! Nonce-count replay protection (RFC 7616 §3.4, §5.13) in bounded memory.
//!
//! For every nonce that has authenticated a request, the highest `nc` seen. Only requests
//! with a correct response reach this table, so an attacker without a password cannot grow
//! it; a client with a password can (one entry per fresh nonce), hence the bound. Entries
//! of expired nonces are pruned first; when the table is still full, the oldest entry is
//! evicted and the table remembers the largest [`NonceId`] it ever evicted (the *floor*).
//! A nonce at or below the floor that has no entry may have been used before, so it is not
//! trusted: the caller re-challenges with `stale=true`, which costs a legitimate client one
//! extra round trip and an attacker everything.
//!
//! What it does not do: verify MACs or expiry of the nonce being checked; the caller has
//! done both.

use std::collections::BTreeMap;

use super::nonce::NonceId;

/// The verdict on one `(nonce, nc)` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NcCheck {
    /// `nc` is higher than any seen for this nonce; it is now recorded.
    Fresh,
    /// `nc` is not higher than the last one seen for this nonce.
    Replay,
    /// The nonce is at or below the eviction floor and unknown: its history is lost.
    Forgotten,
}

#[derive(Debug, Clone)]
pub(crate) struct NonceCounts {
    seen: BTreeMap<NonceId, u32>,
    capacity: usize,
    floor: Option<NonceId>,
}

impl NonceCounts {
    pub fn new(capacity: usize) -> NonceCounts {
        NonceCounts {
            seen: BTreeMap::new(),
            capacity: capacity.max(1),
            floor: None,
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Treat every nonce issued before `unix_secs` as forgotten.
    pub fn forget_before(&mut self, unix_secs: u64) {
        let Some(last) = unix_secs.checked_sub(1) else {
            return;
        };
        let f = NonceId {
            issued: last,
            counter: u32::MAX,
            salt: u64::MAX,
        };
        self.raise_floor(f);
        self.prune(unix_secs);
    }

    fn raise_floor(&mut self, id: NonceId) {
        if self.floor.is_none_or(|f| f < id) {
            self.floor = Some(id);
        }
    }

    /// Drop entries of nonces issued before `oldest_valid` (they are expired: the caller
    /// rejects them before ever asking here).
    pub fn prune(&mut self, oldest_valid: u64) {
        while let Some(e) = self.seen.first_entry() {
            if e.key().issued >= oldest_valid {
                break;
            }
            e.remove();
        }
    }

    /// Check `nc` for `id` and record it when fresh. `oldest_valid` is the issue time of
    /// the oldest nonce that has not expired.
    pub fn check(&mut self, id: NonceId, nc: u32, oldest_valid: u64) -> NcCheck {
        if let Some(last) = self.seen.get_mut(&id) {
            if nc <= *last {
                return NcCheck::Replay;
            }
            *last = nc;
            return NcCheck::Fresh;
        }
        if self.floor.is_some_and(|f| id <= f) {
            return NcCheck::Forgotten;
        }
        self.prune(oldest_valid);
        self.seen.insert(id, nc);
        while self.seen.len() > self.capacity {
            if let Some((evicted, _)) = self.seen.pop_first() {
                self.raise_floor(evicted);
            }
        }
        NcCheck::Fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(issued: u64, counter: u32) -> NonceId {
        NonceId {
            issued,
            counter,
            salt: 0,
        }
    }

    #[test]
    fn increasing_nc_only() {
        let mut t = NonceCounts::new(4);
        assert_eq!(t.check(id(100, 0), 1, 0), NcCheck::Fresh);
        assert_eq!(t.check(id(100, 0), 1, 0), NcCheck::Replay);
        assert_eq!(t.check(id(100, 0), 3, 0), NcCheck::Fresh);
        assert_eq!(t.check(id(100, 0), 2, 0), NcCheck::Replay);
        assert_eq!(t.check(id(100, 0), 4, 0), NcCheck::Fresh);
        // Another nonce has its own count.
        assert_eq!(t.check(id(100, 1), 1, 0), NcCheck::Fresh);
    }

    #[test]
    fn bounded_and_evicted_nonces_are_forgotten() {
        let mut t = NonceCounts::new(3);
        for c in 0..10 {
            assert_eq!(t.check(id(100, c), 1, 0), NcCheck::Fresh);
            assert!(t.len() <= 3);
        }
        // 0..=6 were evicted: neither a replay nor a new count is trusted.
        assert_eq!(t.check(id(100, 2), 1, 0), NcCheck::Forgotten);
        assert_eq!(t.check(id(100, 6), 2, 0), NcCheck::Forgotten);
        // The survivors keep their history.
        assert_eq!(t.check(id(100, 9), 1, 0), NcCheck::Replay);
        assert_eq!(t.check(id(100, 9), 2, 0), NcCheck::Fresh);
        // Newer nonces are still accepted.
        assert_eq!(t.check(id(101, 0), 1, 0), NcCheck::Fresh);
    }

    #[test]
    fn expired_entries_go_first() {
        let mut t = NonceCounts::new(2);
        assert_eq!(t.check(id(10, 0), 1, 0), NcCheck::Fresh);
        assert_eq!(t.check(id(20, 0), 1, 0), NcCheck::Fresh);
        // Issue times below 15 have expired: pruned, not evicted, so no floor is raised
        // to 20 and the nonce issued at 20 keeps its entry.
        assert_eq!(t.check(id(30, 0), 1, 15), NcCheck::Fresh);
        assert_eq!(t.len(), 2);
        assert_eq!(t.check(id(20, 0), 1, 15), NcCheck::Replay);
        assert_eq!(t.check(id(25, 0), 1, 15), NcCheck::Fresh);
        // Now full with 20, 25, 30 → 20 evicted.
        assert_eq!(t.len(), 2);
        assert_eq!(t.check(id(20, 0), 2, 15), NcCheck::Forgotten);
    }

    #[test]
    fn forget_before_start() {
        let mut t = NonceCounts::new(8);
        t.forget_before(1000);
        assert_eq!(t.check(id(999, u32::MAX), 1, 0), NcCheck::Forgotten);
        assert_eq!(t.check(id(1000, 0), 1, 0), NcCheck::Fresh);
        t.forget_before(0);
        assert_eq!(t.check(id(1000, 1), 1, 0), NcCheck::Fresh);
    }
}
