//! What the driver keeps on behalf of the endpoint: bindings and bans go to the embedded
//! store, and their views to the admin API.
//!
//! Ordering is the point of this module. The endpoint emits a binding's store event and the
//! 200 that confirms it from the same input; the driver holds every transmit of a loop
//! iteration until the store has committed that iteration's changes (one redb transaction,
//! fsync'd), so a kill -9 never loses a registration that a phone saw confirmed (issue 3).
//! One commit per iteration, not per message, keeps the fsync cost per batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use voxgate_controlplane::endpoint::Transmit;
use voxgate_controlplane::registrar::RegistrarEvent;
use voxgate_controlplane::security::SecurityEvent;
use voxgate_controlplane::Endpoint;

use crate::admin::{BanView, RegistrationView};
use crate::store::{Store, StoreOp, StoredBan, StoredBinding};

/// How often the admin views are rebuilt while something changed.
const VIEW_INTERVAL: Duration = Duration::from_secs(1);

/// The admin API's snapshots, published by the driver thread.
#[derive(Debug, Clone, Default)]
pub struct AdminViews {
    pub registrations: Arc<ArcSwap<Vec<RegistrationView>>>,
    pub bans: Arc<ArcSwap<Vec<BanView>>>,
}

#[derive(Debug)]
pub struct Persistence {
    store: Option<Store>,
    ops: Vec<StoreOp>,
    held: Vec<Transmit>,
    /// `(instant, unix seconds)` read together: stored records carry wall-clock time.
    anchor: (Instant, u64),
    views: AdminViews,
    views_dirty: bool,
    next_views: Option<Instant>,
}

impl Persistence {
    pub fn new(store: Option<Store>, anchor: (Instant, u64), views: AdminViews) -> Self {
        Self {
            store,
            ops: Vec::new(),
            held: Vec::new(),
            anchor,
            views,
            views_dirty: true,
            next_views: None,
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
        self.views_dirty = true;
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
        self.views_dirty = true;
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

    /// Commit this iteration's changes, then hand back the transmits that waited for it.
    /// A failed commit is logged loudly; the answers still go out (withholding them would
    /// make every phone retry and register again, which fails the same way).
    pub fn commit(&mut self) -> std::vec::Drain<'_, Transmit> {
        if !self.ops.is_empty() {
            if let Some(store) = &mut self.store {
                if let Err(e) = store.apply(&self.ops) {
                    tracing::error!(error = %e, changes = self.ops.len(), "store commit failed");
                }
            }
            self.ops.clear();
        }
        self.held.drain(..)
    }

    /// Rebuild the admin views when something changed (at most once a second).
    pub fn publish_views(&mut self, now: Instant, endpoint: &Endpoint) {
        if !self.views_dirty || self.next_views.is_some_and(|t| t > now) {
            return;
        }
        let registrations: Vec<RegistrationView> = endpoint
            .registrations()
            .map(|b| RegistrationView::from_binding(b, now))
            .collect();
        let bans: Vec<BanView> = endpoint.bans().map(|b| BanView::from_ban(b, now)).collect();
        self.views.registrations.store(Arc::new(registrations));
        self.views.bans.store(Arc::new(bans));
        self.views_dirty = false;
        self.next_views = now.checked_add(VIEW_INTERVAL);
    }

    /// Next time the views need publishing (expiry counters move even when nothing else
    /// does, so refresh at least every minute).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.views_dirty {
            self.next_views
        } else {
            None
        }
    }

    pub fn mark_dirty(&mut self) {
        self.views_dirty = true;
    }
}
