//! What the driver keeps on behalf of the endpoint: bindings and bans go to the embedded
//! store.
//!
//! Ordering is the point of this module. The endpoint emits a binding's store event and the
//! 200 that confirms it from the same input; the driver holds every transmit while store
//! changes are pending, until the store has committed them (one redb transaction,
//! fsync'd), so a kill -9 never loses a registration that a phone saw confirmed (issue 3).
//!
//! Commits are grouped: the first pending change opens a window of [`GROUP_COMMIT_WINDOW`],
//! and everything that arrives within it goes into the same commit (or sooner, once
//! [`GROUP_COMMIT_MAX`] changes wait). A durable commit costs about the same for one
//! binding as for a hundred, so under a registration storm this divides the store's share
//! of the CPU, at the price of at most one window of extra latency on the answers held.
//! Without pending changes nothing is held.
//!
//! The admin API's listings are not kept here: the driver builds them on request.

use std::time::{Duration, Instant};

use voxgate_controlplane::endpoint::Transmit;
use voxgate_controlplane::registrar::RegistrarEvent;
use voxgate_controlplane::security::SecurityEvent;

use crate::store::{Store, StoreOp, StoredBan, StoredBinding};

/// How long the first pending store change waits for others to share its commit. Far
/// below SIP's T1 (500 ms), so no client retransmits because of it.
pub const GROUP_COMMIT_WINDOW: Duration = Duration::from_millis(5);

/// Pending changes that commit at once, window or not (bounds the held answers).
pub const GROUP_COMMIT_MAX: usize = 512;

#[derive(Debug)]
pub struct Persistence {
    store: Option<Store>,
    ops: Vec<StoreOp>,
    /// When the oldest pending change arrived.
    pending_since: Option<Instant>,
    held: Vec<Transmit>,
    /// `(instant, unix seconds)` read together: stored records carry wall-clock time.
    anchor: (Instant, u64),
}

impl Persistence {
    pub fn new(store: Option<Store>, anchor: (Instant, u64)) -> Self {
        Self {
            store,
            ops: Vec::new(),
            pending_since: None,
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

    /// Commit the pending changes when their window is over (or they are many), then
    /// hand back the transmits that waited for them; while a window is open nothing is
    /// handed back. A failed commit is logged loudly; the answers still go out
    /// (withholding them would make every phone retry and register again, which fails the
    /// same way).
    /// `force` commits at once (shutdown).
    pub fn commit(&mut self, now: Instant, force: bool) -> std::vec::Drain<'_, Transmit> {
        if !self.ops.is_empty() {
            let since = *self.pending_since.get_or_insert(now);
            let window_open = now.saturating_duration_since(since) < GROUP_COMMIT_WINDOW;
            if window_open && !force && self.ops.len() < GROUP_COMMIT_MAX && self.store.is_some() {
                return self.held.drain(..0);
            }
            if let Some(store) = &mut self.store {
                if let Err(e) = store.apply(&self.ops) {
                    tracing::error!(error = %e, changes = self.ops.len(), "store commit failed");
                }
            }
            self.ops.clear();
            self.pending_since = None;
        }
        self.held.drain(..)
    }

    /// When the open commit window closes, if one is open.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending_since
            .and_then(|t| t.checked_add(GROUP_COMMIT_WINDOW))
    }
}
