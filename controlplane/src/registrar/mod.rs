//! The registrar (RFC 3261 §10): extensions' contact bindings, as a sans-IO state machine.
//!
//! # What it owns
//! - The bindings of every extension (AOR) in memory, indexed by AOR and by flow
//!   ([`bindings`]), with their expiry (FEATURES SIG-01), at most `max_contacts` per AOR
//!   where a new one replaces the oldest (SIG-03), and each contact's real flow (SIG-14).
//! - Processing of an *authenticated* REGISTER ([`Registrar::handle_register`], see
//!   [`register`]): `*` removal, expiry rules, 423, q-values, the Call-ID/CSeq ordering rule,
//!   RFC 3327 Path and RFC 5626 outbound (`+sip.instance`/`reg-id`), and the 200's contents.
//! - NAT keep-alive scheduling for UDP flows and dropping bindings whose flow died
//!   ([`keepalive`]).
//! - Registration state per extension (SIG-02) as events.
//!
//! # What it does not do
//! Authentication (see [`crate::auth`]), per-extension network restrictions (SIG-15, checked
//! by the caller before calling in), sending anything (the endpoint turns
//! [`RegistrarEvent::KeepAlive`] into an OPTIONS request through its transaction layer),
//! persistence (the binary's store writes [`RegistrarEvent::Bound`] and deletes on
//! [`RegistrarEvent::Unbound`]), wall-clock time (the store converts [`Binding::expires`]).
//!
//! # Driver contract
//! Call one `handle_*` method (or [`Registrar::restore`]), then drain
//! [`Registrar::poll_event`] until `None`, then wake at [`Registrar::poll_timeout`] and call
//! [`Registrar::handle_timeout`]. A `Bound` event must be written to the store before the
//! REGISTER's 200 goes out, so a 200 is never answered for a binding a crash would lose.

mod bindings;
mod contact;
mod keepalive;
mod register;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::endpoint::ConnId;
use crate::sip::{Message, Transport};

pub use bindings::RegistrarTimer;
pub use keepalive::KeepAliveOutcome;
pub use register::{RegisterError, RegisterOutcome, Registered, RegisteredContact};

/// Where a contact's REGISTER really came from: the flow requests to it must use
/// (FEATURES SIG-14), whatever its Contact header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub transport: Transport,
    /// The observed source address and port.
    pub remote: SocketAddr,
    /// The local listener it arrived on.
    pub local: SocketAddr,
    /// The TCP/TLS connection, while it is open.
    pub conn: Option<ConnId>,
}

/// One contact of one extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The extension number (the AOR's user part).
    pub aor: String,
    /// The Contact URI as registered, without its header parameters.
    pub contact: String,
    pub flow: Flow,
    /// When the binding expires. The store converts this to wall-clock time and back.
    pub expires: Instant,
    /// Contact `q` in thousandths (RFC 3261 §20.10), `None` when not given.
    pub q: Option<u16>,
    /// RFC 5626 `+sip.instance` and `reg-id`.
    pub instance: Option<String>,
    pub reg_id: Option<u32>,
    /// RFC 3327 Path values, in order.
    pub path: Vec<String>,
    /// Call-ID and CSeq of the REGISTER that last refreshed it (RFC 3261 §10.3 step 7).
    pub call_id: String,
    pub cseq: u32,
    pub user_agent: Option<String>,
}

/// Registrar limits. Defaults are FEATURES.md's (SIG-01, SIG-03, SIG-14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Granted when the client asks for no expiry: 600 s (SIG-01).
    pub default_expires: Duration,
    /// Shortest granted expiry; a shorter non-zero request gets 423 with `Min-Expires`
    /// (RFC 3261 §10.3 step 7): 60 s (SIG-01).
    pub min_expires: Duration,
    /// Longest granted expiry; longer requests are shortened to it (RFC 3261 §10.3 step 7
    /// "MAY choose an expiration less than the requested"): 3600 s (SIG-01).
    pub max_expires: Duration,
    /// Contacts per extension; at the cap a new binding replaces the oldest: 10 (SIG-03).
    pub max_contacts: usize,
    /// OPTIONS keep-alive interval for UDP flows: 30 s (SIG-14). Zero turns keep-alives off.
    pub keepalive_interval: Duration,
    /// Keep-alives in a row that may go unanswered before a UDP flow counts as dead and its
    /// bindings are dropped: 3. One unanswered OPTIONS already means every retransmission
    /// over 64·T1 was lost; three ride out a phone roaming between networks while still
    /// finding a dead one within about two minutes.
    pub keepalive_failures: u32,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self {
            default_expires: Duration::from_secs(600),
            min_expires: Duration::from_secs(60),
            max_expires: Duration::from_secs(3600),
            max_contacts: 10,
            keepalive_interval: Duration::from_secs(30),
            keepalive_failures: 3,
        }
    }
}

/// Why a [`RegistrarConfig`] cannot work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrarConfigError {
    #[error("min_expires ({min} s) is above max_expires ({max} s)")]
    ExpiresRange { min: u64, max: u64 },
    #[error("min_expires must be at least 1 s")]
    ZeroMinExpires,
    #[error("max_contacts must be at least 1")]
    NoContacts,
    #[error("keepalive_failures must be at least 1")]
    NoKeepAliveFailures,
}

impl RegistrarConfig {
    pub fn validate(&self) -> Result<(), RegistrarConfigError> {
        let (min, max) = (self.min_expires.as_secs(), self.max_expires.as_secs());
        if min == 0 {
            return Err(RegistrarConfigError::ZeroMinExpires);
        }
        if min > max {
            return Err(RegistrarConfigError::ExpiresRange { min, max });
        }
        if self.max_contacts == 0 {
            return Err(RegistrarConfigError::NoContacts);
        }
        if self.keepalive_failures == 0 {
            return Err(RegistrarConfigError::NoKeepAliveFailures);
        }
        Ok(())
    }

    fn secs(d: Duration) -> u32 {
        u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
    }
}

/// Why a binding went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnboundReason {
    /// Its expiry passed without a refresh.
    Expired,
    /// A REGISTER removed it (`expires=0` or `*`).
    Removed,
    /// A newer binding took its place: at the contact cap (SIG-03), or a refresh that
    /// changed its contact URI (RFC 5626 instance/reg-id).
    Replaced,
    /// Its flow died: the connection closed, or keep-alives went unanswered (SIG-14,
    /// RFC 5626 §7).
    FlowFailed,
}

impl UnboundReason {
    pub fn as_str(self) -> &'static str {
        match self {
            UnboundReason::Expired => "expired",
            UnboundReason::Removed => "removed",
            UnboundReason::Replaced => "replaced",
            UnboundReason::FlowFailed => "flow_failed",
        }
    }
}

/// What the registrar tells the store, the API and the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrarEvent {
    /// A binding was added or refreshed: the store writes it (before the 200 goes out).
    Bound(Binding),
    /// A binding is gone: the store deletes it. A binding is identified by
    /// `(aor, contact, instance, reg_id)`.
    Unbound {
        aor: String,
        contact: String,
        instance: Option<String>,
        reg_id: Option<u32>,
        reason: UnboundReason,
    },
    /// An extension went registered ↔ not registered (SIG-02).
    AorState { aor: String, registered: bool },
    /// Send an OPTIONS keep-alive over `flow` (to `contact`, To the extension) and report
    /// the outcome with [`Registrar::handle_keepalive_result`] (SIG-14).
    KeepAlive {
        flow: Flow,
        aor: String,
        contact: String,
    },
}

impl RegistrarEvent {
    fn unbound(b: Binding, reason: UnboundReason) -> Self {
        RegistrarEvent::Unbound {
            aor: b.aor,
            contact: b.contact,
            instance: b.instance,
            reg_id: b.reg_id,
            reason,
        }
    }
}

/// The registrar. See the module documentation for the driver contract.
#[derive(Debug)]
pub struct Registrar {
    config: RegistrarConfig,
    table: bindings::Table,
    events: VecDeque<RegistrarEvent>,
}

impl Registrar {
    pub fn new(config: RegistrarConfig) -> Self {
        Self {
            config,
            table: bindings::Table::default(),
            events: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// New limits (a reload). They apply to the next REGISTER and the next keep-alive;
    /// existing bindings keep the expiry they were granted.
    pub fn set_config(&mut self, config: RegistrarConfig) {
        self.config = config;
    }

    /// Process a REGISTER for extension `aor` that the caller has already authenticated
    /// (and checked against the extension's allowed networks). `flow` is where it came
    /// from. See [`register`] for the rules.
    pub fn handle_register(
        &mut self,
        now: Instant,
        flow: Flow,
        aor: &str,
        request: &Message,
    ) -> RegisterOutcome {
        let outcome = self.register(now, flow, aor, request);
        self.table.prune();
        outcome
    }

    /// Expire bindings and emit keep-alives that are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(fired) = self.table.pop_due(now) {
            match fired {
                bindings::Fired::Expired(slot) => {
                    self.remove(slot, UnboundReason::Expired);
                }
                bindings::Fired::KeepAlive(f) => self.keepalive_due(now, f),
            }
        }
        self.table.prune();
    }

    /// Load bindings from the store after a restart. Expired ones are dropped and reported
    /// as `Unbound { reason: Expired }` so the store prunes them; extensions that end up
    /// registered are reported with `AorState`. Connection ids do not survive a restart, so
    /// a restored TCP/TLS binding keeps its addresses but no connection (`conn: None`)
    /// until its phone registers again.
    pub fn restore(&mut self, now: Instant, bindings: impl IntoIterator<Item = Binding>) {
        for mut b in bindings {
            if b.expires <= now {
                self.events
                    .push_back(RegistrarEvent::unbound(b, UnboundReason::Expired));
                continue;
            }
            b.flow.conn = None;
            self.restore_one(now, b);
        }
        self.table.prune();
    }

    fn restore_one(&mut self, now: Instant, b: Binding) {
        let same = self.table.slots_of(&b.aor).iter().copied().find(|s| {
            self.table.binding(*s).is_some_and(|o| {
                o.contact == b.contact && o.instance == b.instance && o.reg_id == b.reg_id
            })
        });
        let was_registered = !self.table.slots_of(&b.aor).is_empty();
        let order = self.table.next_order();
        let keepalive = self.config.keepalive_interval;
        match same {
            // A duplicate record: keep the one that lasts longer, with no event (both
            // have the same identity in the store).
            Some(slot) => {
                if self
                    .table
                    .binding(slot)
                    .is_some_and(|o| o.expires < b.expires)
                {
                    self.table.update(slot, b, order, now, keepalive);
                }
            }
            None => {
                if self.table.slots_of(&b.aor).len() >= self.config.max_contacts {
                    let oldest = self
                        .table
                        .slots_of(&b.aor)
                        .iter()
                        .copied()
                        .min_by_key(|s| self.table.order(*s));
                    if let Some(oldest) = oldest {
                        self.remove_quiet_state(oldest, UnboundReason::Replaced);
                    }
                }
                let aor = b.aor.clone();
                self.table.insert(b, order, now, keepalive);
                if !was_registered {
                    self.events.push_back(RegistrarEvent::AorState {
                        aor,
                        registered: true,
                    });
                }
            }
        }
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<RegistrarEvent> {
        self.events.pop_front()
    }

    /// The next binding expiry or keep-alive.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.table.next_timeout()
    }

    /// The bindings of one extension, in the order they were first registered.
    pub fn bindings<'a>(&'a self, aor: &str) -> impl Iterator<Item = &'a Binding> + 'a {
        self.table.bindings_of(aor)
    }

    /// Every binding, in no particular order.
    pub fn all(&self) -> impl Iterator<Item = &Binding> {
        self.table.all()
    }

    /// Number of bindings.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// Number of extensions with at least one binding.
    /// Whether a binding's flow runs over connection `conn` (SEC-16: such a connection is
    /// not closed for being idle).
    pub fn uses_connection(&self, conn: ConnId) -> bool {
        self.table.has_conn(conn)
    }

    /// Whether `flow` is a registered contact's flow (SEC-17: such traffic gets the
    /// trusted budget, so a flood from elsewhere cannot starve registered phones).
    pub fn has_flow(&self, flow: &Flow) -> bool {
        self.table.flow_slot(flow).is_some()
    }

    pub fn registered_aors(&self) -> usize {
        self.table.aor_count()
    }

    /// Remove every binding of extension `aor` (its definition was deleted through the
    /// admin API), as `Unbound { reason: Removed }` events and, when it had any, one
    /// `AorState { registered: false }`. Returns how many bindings were removed.
    pub fn remove_aor(&mut self, aor: &str) -> usize {
        let slots = self.table.slots_of(aor).to_vec();
        for &slot in &slots {
            self.remove(slot, UnboundReason::Removed);
        }
        self.table.prune();
        slots.len()
    }

    /// Remove a binding, emitting `Unbound` and, if it was the extension's last one,
    /// `AorState { registered: false }`.
    fn remove(&mut self, slot: u32, reason: UnboundReason) {
        if let Some(r) = self.table.remove(slot) {
            let aor = r.aor_empty.then(|| r.binding.aor.clone());
            self.events
                .push_back(RegistrarEvent::unbound(r.binding, reason));
            if let Some(aor) = aor {
                self.events.push_back(RegistrarEvent::AorState {
                    aor,
                    registered: false,
                });
            }
        }
    }

    /// Remove a binding that another one of the same extension replaces at once: `Unbound`
    /// only, the extension stays registered.
    fn remove_quiet_state(&mut self, slot: u32, reason: UnboundReason) {
        if let Some(r) = self.table.remove(slot) {
            self.events
                .push_back(RegistrarEvent::unbound(r.binding, reason));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)] // the one real instant; later times are offsets
    fn base() -> Instant {
        Instant::now()
    }

    fn binding(aor: &str, contact: &str, port: u16, now: Instant) -> Binding {
        Binding {
            aor: aor.into(),
            contact: contact.into(),
            flow: Flow {
                transport: Transport::Udp,
                remote: SocketAddr::from(([192, 0, 2, 10], port)),
                local: SocketAddr::from(([192, 0, 2, 1], 5060)),
                conn: None,
            },
            expires: now + Duration::from_secs(600),
            q: None,
            instance: None,
            reg_id: None,
            path: Vec::new(),
            call_id: format!("{contact}-call"),
            cseq: 1,
            user_agent: None,
        }
    }

    #[test]
    fn remove_aor_unbinds_every_contact_of_that_extension_only() {
        let now = base();
        let mut r = Registrar::new(RegistrarConfig::default());
        r.restore(
            now,
            [
                binding("1000", "sip:1000@a", 5001, now),
                binding("1000", "sip:1000@b", 5002, now),
                binding("10000", "sip:10000@c", 5003, now),
            ],
        );
        while r.poll_event().is_some() {}

        assert_eq!(r.remove_aor("1000"), 2);
        let events: Vec<_> = std::iter::from_fn(|| r.poll_event()).collect();
        let unbound: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                RegistrarEvent::Unbound {
                    aor,
                    contact,
                    reason: UnboundReason::Removed,
                    ..
                } => Some((aor.as_str(), contact.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(unbound.len(), 2, "{events:?}");
        assert!(unbound.iter().all(|(aor, _)| *aor == "1000"));
        assert_eq!(
            events.last(),
            Some(&RegistrarEvent::AorState {
                aor: "1000".into(),
                registered: false
            })
        );
        assert_eq!(r.bindings("1000").count(), 0);
        assert_eq!(r.len(), 1, "the other extension keeps its binding");
        assert_eq!(r.registered_aors(), 1);

        assert_eq!(r.remove_aor("1000"), 0, "nothing left");
        assert_eq!(r.poll_event(), None, "and no event for nothing");
    }
}
