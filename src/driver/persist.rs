//! What the driver keeps on behalf of the endpoint: bindings and bans go to the embedded
//! store.
//!
//! Ordering is the point of this module. The endpoint emits a binding's store event and the
//! 200 that confirms it from the same input; the driver holds the transmits of every input
//! that changed the store (and anything for a destination with a transmit already held)
//! until the store has committed the change (one redb transaction, fsync'd), so a kill -9
//! never loses a registration that a phone saw confirmed (issue 3).
//!
//! Commits are grouped by rate: at most one every [`COMMIT_INTERVAL`] (or sooner, once
//! [`GROUP_COMMIT_MAX`] changes wait). A change that finds the store idle (no commit within
//! the interval) commits at once, so a lone registration waits for nothing; under a
//! registration storm everything that arrives within an interval shares one commit. A
//! durable commit costs about the same for one binding as for a hundred (the B-tree pages,
//! the header and the `fdatasync`), so this divides the store's share of the CPU, at the
//! price of at most one interval of extra latency on the answers held, and only under load.
//!
//! The admin API's listings are not kept here: the driver builds them on request.

use std::time::{Duration, Instant};

use voxgate_controlplane::endpoint::Transmit;
use voxgate_controlplane::registrar::RegistrarEvent;
use voxgate_controlplane::security::SecurityEvent;

use crate::store::{Store, StoreOp, StoredBan, StoredBinding};

/// Least time between two commits. Far below SIP's T1 (500 ms), so no client retransmits
/// because of it; and only the answers that confirm a change wait (a 401, an OPTIONS
/// answer or a call's signalling do not).
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(50);

/// Pending changes that commit at once, interval or not. It bounds the answers released
/// together: an upstream proxy that sends every registration from one address receives
/// them as one burst, and SIPp's default 64 KiB receive buffer drops bursts of more than
/// about a hundred.
pub const GROUP_COMMIT_MAX: usize = 48;

#[derive(Debug)]
pub struct Persistence {
    store: Option<Store>,
    ops: Vec<StoreOp>,
    /// When the last commit was made.
    last_commit: Option<Instant>,
    held: Vec<Transmit>,
    /// `(instant, unix seconds)` read together: stored records carry wall-clock time.
    anchor: (Instant, u64),
}

impl Persistence {
    pub fn new(store: Option<Store>, anchor: (Instant, u64)) -> Self {
        Self {
            store,
            ops: Vec::new(),
            last_commit: None,
            held: Vec::new(),
            anchor,
        }
    }

    pub fn now_unix(&self, now: Instant) -> u64 {
        self.anchor.1 + now.saturating_duration_since(self.anchor.0).as_secs()
    }

    /// Whether transmits must wait for a commit (there is a store to commit to).
    pub fn holds_transmits(&self) -> bool {
        self.store.is_some()
    }

    pub fn hold(&mut self, t: Transmit) {
        self.held.push(t);
    }

    /// Store changes waiting for their commit.
    pub fn pending(&self) -> usize {
        self.ops.len()
    }

    /// Whether `t` must wait behind what is held: it is a 2xx response (a retransmitted
    /// 200, or a registration query listing a binding not yet committed) and something for
    /// its destination is held already. Failures and challenges need not wait: they
    /// confirm nothing, and holding them would only make bursts bigger for an upstream
    /// proxy that sends everything from one address.
    pub fn holds_for(&self, t: &Transmit) -> bool {
        t.payload.starts_with(b"SIP/2.0 2")
            && self.held.iter().any(|h| {
                h.transport == t.transport && h.destination == t.destination && h.conn == t.conn
            })
    }

    pub fn on_registrar(&mut self, now: Instant, event: &RegistrarEvent) {
        let now_unix = self.now_unix(now);
        match event {
            RegistrarEvent::Bound(b) => {
                self.ops
                    .push(StoreOp::PutBinding(StoredBinding::from_binding(
                        b, now, now_unix,
                    )))
            }
            RegistrarEvent::Unbound { aor, contact, .. } => self.ops.push(StoreOp::RemoveBinding {
                aor: aor.clone(),
                contact: contact.clone(),
            }),
            RegistrarEvent::AorState { aor, registered } => {
                tracing::info!(extension = %aor, registered, "registration state changed");
            }
            RegistrarEvent::KeepAlive { .. } => {}
        }
    }

    pub fn on_security(&mut self, now: Instant, event: &SecurityEvent) {
        let now_unix = self.now_unix(now);
        match event {
            SecurityEvent::Banned(ban) => {
                tracing::warn!(source = %ban.ip, reason = ban.reason.as_str(), "source banned");
                self.ops
                    .push(StoreOp::PutBan(StoredBan::from_ban(ban, now, now_unix)));
            }
            SecurityEvent::Unbanned { ip, reason } => {
                tracing::info!(source = %ip, reason = reason.as_str(), "ban lifted");
                self.ops.push(StoreOp::RemoveBan { ip: *ip });
            }
            other => tracing::debug!(event = ?other, "security event not stored"),
        }
    }

    /// Commit the pending changes when the last commit is at least [`COMMIT_INTERVAL`] ago
    /// (or they are many, or `force`: shutdown), then hand back the transmits that waited
    /// for them; until then nothing is handed back. A failed commit is logged loudly; the
    /// answers still go out (withholding them would make every phone retry and register
    /// again, which fails the same way).
    pub fn commit(&mut self, now: Instant, force: bool) -> std::vec::Drain<'_, Transmit> {
        if !self.ops.is_empty() {
            let due = force
                || self.ops.len() >= GROUP_COMMIT_MAX
                || self.next_commit().is_none_or(|t| now >= t);
            if !due && self.store.is_some() {
                return self.held.drain(..0);
            }
            if let Some(store) = &mut self.store {
                if let Err(e) = store.apply(&self.ops) {
                    tracing::error!(error = %e, changes = self.ops.len(), "store commit failed");
                }
                self.last_commit = Some(now);
            }
            self.ops.clear();
        }
        self.held.drain(..)
    }

    fn next_commit(&self) -> Option<Instant> {
        self.last_commit
            .and_then(|t| t.checked_add(COMMIT_INTERVAL))
    }

    /// When the pending changes are due, if there are any.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.ops.is_empty() {
            None
        } else {
            self.next_commit()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use voxgate_controlplane::security::{Ban, BanReason};
    use voxgate_controlplane::sip::Transport;

    use super::*;

    fn transmit(to: &str) -> Transmit {
        Transmit {
            transport: Transport::Udp,
            destination: to.parse().expect("address"),
            local: "127.0.0.1:5060".parse().expect("address"),
            conn: None,
            payload: Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"),
        }
    }

    #[test]
    fn changes_commit_at_once_when_idle_and_at_most_once_per_interval_under_load() {
        let dir = tempfile::tempdir().expect("temp dir");
        #[allow(clippy::disallowed_methods)] // the one real instant; the rest is virtual
        let t0 = Instant::now();
        let mut p = Persistence::new(
            Some(Store::open(dir.path()).expect("store")),
            (t0, 1_800_000_000),
        );
        let ban = Ban {
            ip: "192.0.2.9".parse().expect("ip"),
            until: t0 + Duration::from_secs(60),
            reason: BanReason::Manual,
        };
        let stored = |p: &Persistence| {
            p.store
                .as_ref()
                .expect("store")
                .load_bans(1_800_000_000)
                .expect("load")
                .len()
        };
        // Idle store: the first change commits at once, and its answer goes out.
        p.on_security(t0, &SecurityEvent::Banned(ban));
        p.hold(transmit("192.0.2.1:5060"));
        assert_eq!(p.commit(t0, false).count(), 1);
        assert_eq!(stored(&p), 1);
        assert_eq!(p.next_deadline(), None);
        // A second change within the interval waits for the interval to end.
        let later = t0 + Duration::from_millis(5);
        p.on_security(
            later,
            &SecurityEvent::Unbanned {
                ip: ban.ip,
                reason: voxgate_controlplane::security::UnbanReason::Manual,
            },
        );
        assert_eq!(p.pending(), 1);
        p.hold(transmit("192.0.2.2:5060"));
        assert!(p.holds_for(&transmit("192.0.2.2:5060")));
        assert!(!p.holds_for(&transmit("192.0.2.2:5062")));
        let challenge = Transmit {
            payload: Bytes::from_static(b"SIP/2.0 401 Unauthorized\r\n\r\n"),
            ..transmit("192.0.2.2:5060")
        };
        assert!(!p.holds_for(&challenge), "a challenge confirms nothing");
        assert_eq!(p.commit(later, false).count(), 0);
        assert_eq!(p.next_deadline(), Some(t0 + COMMIT_INTERVAL));
        let almost = t0 + COMMIT_INTERVAL - Duration::from_millis(1);
        p.hold(transmit("192.0.2.3:5060"));
        assert_eq!(p.commit(almost, false).count(), 0);
        assert_eq!(stored(&p), 1, "nothing written yet");
        // At the end of the interval: one commit, then both answers.
        assert_eq!(p.commit(t0 + COMMIT_INTERVAL, false).count(), 2);
        assert_eq!(stored(&p), 0);
        assert_eq!(p.pending(), 0);
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn a_forced_commit_or_a_full_batch_does_not_wait() {
        let dir = tempfile::tempdir().expect("temp dir");
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut p = Persistence::new(
            Some(Store::open(dir.path()).expect("store")),
            (t0, 1_800_000_000),
        );
        let ban = |n: u32| {
            SecurityEvent::Banned(Ban {
                ip: std::net::IpAddr::from((0xc000_0200u32 + n).to_be_bytes()),
                until: t0 + Duration::from_secs(60),
                reason: BanReason::Manual,
            })
        };
        p.on_security(t0, &ban(1));
        assert_eq!(p.commit(t0, false).count(), 0);
        p.on_security(t0, &ban(2));
        p.hold(transmit("192.0.2.1:5060"));
        assert_eq!(p.commit(t0, true).count(), 1, "shutdown commits at once");
        for n in 0..GROUP_COMMIT_MAX as u32 {
            p.on_security(t0, &ban(n));
        }
        p.hold(transmit("192.0.2.1:5060"));
        assert_eq!(
            p.commit(t0, false).count(),
            1,
            "a full batch commits at once"
        );
    }
}
