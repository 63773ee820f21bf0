//! The binding table: every binding in a slab, indexed by AOR and by flow, and one timer
//! queue for expiries and keep-alives.
//!
//! Built for 100,000 bindings and more: a binding is one slab entry (its strings are the only
//! heap data it owns), each AOR holds a short vector of slot numbers, and timers are a
//! binary heap invalidated lazily (an entry whose slot generation or deadline no longer
//! matches is skipped, so a refresh costs one push and no search).
//!
//! What it does not do: any SIP. It never decides *whether* a binding changes (that is
//! [`super::register`]) and emits no events.

use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::{BinaryHeap, HashMap};
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use super::{Binding, Flow};
use crate::endpoint::ConnId;

/// Why the registrar wants to wake up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RegistrarTimer {
    /// A binding's expiry (RFC 3261 §10.3 step 7). Sorted first so a binding that expires
    /// when its keep-alive is due is not pinged.
    BindingExpiry,
    /// A UDP flow's next OPTIONS keep-alive (FEATURES SIG-14).
    KeepAlive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: Instant,
    kind: RegistrarTimer,
    slot: u32,
    generation: u32,
}

/// A slab slot; the generation counts reuses so stale timers and handles are recognised.
#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Slots live in fixed-size chunks: growing never copies the table or leaves up to half
/// of a doubled vector unused, which at 100,000 bindings is worth about 90 bytes each.
const CHUNK: usize = 1024;

#[derive(Debug)]
struct Slab<T> {
    chunks: Vec<Vec<Slot<T>>>,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    fn insert(&mut self, value: T) -> u32 {
        if let Some(i) = self.free.pop() {
            if let Some(slot) = self.slot_mut(i) {
                slot.value = Some(value);
                return i;
            }
        }
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let count = (self.chunks.len() - 1) * CHUNK;
        let chunk = self
            .chunks
            .last_mut()
            .expect("a chunk with room was just ensured");
        let i = u32::try_from(count + chunk.len()).expect("fewer than 2^32 bindings or flows");
        chunk.push(Slot {
            generation: 0,
            value: Some(value),
        });
        i
    }

    fn slot(&self, i: u32) -> Option<&Slot<T>> {
        let i = i as usize;
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    fn slot_mut(&mut self, i: u32) -> Option<&mut Slot<T>> {
        let i = i as usize;
        self.chunks.get_mut(i / CHUNK)?.get_mut(i % CHUNK)
    }

    fn remove(&mut self, i: u32) -> Option<T> {
        let slot = self.slot_mut(i)?;
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(i);
        Some(value)
    }

    fn get(&self, i: u32) -> Option<&T> {
        self.slot(i)?.value.as_ref()
    }

    fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.slot_mut(i)?.value.as_mut()
    }

    fn generation(&self, i: u32) -> u32 {
        self.slot(i).map_or(0, |s| s.generation)
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks
            .iter()
            .flatten()
            .filter_map(|s| s.value.as_ref())
    }
}

/// A short list of slots that needs no allocation for the common single entry (one
/// binding per AOR, one binding per flow).
#[derive(Debug, Default)]
enum Slots {
    #[default]
    Empty,
    One(u32),
    Many(Vec<u32>),
}

impl Slots {
    fn as_slice(&self) -> &[u32] {
        match self {
            Slots::Empty => &[],
            Slots::One(s) => std::slice::from_ref(s),
            Slots::Many(v) => v,
        }
    }

    fn push(&mut self, slot: u32) {
        *self = match std::mem::take(self) {
            Slots::Empty => Slots::One(slot),
            Slots::One(a) => Slots::Many(vec![a, slot]),
            Slots::Many(mut v) => {
                v.push(slot);
                Slots::Many(v)
            }
        };
    }

    fn remove(&mut self, slot: u32) {
        *self = match std::mem::take(self) {
            Slots::One(a) if a == slot => Slots::Empty,
            Slots::Many(mut v) => {
                v.retain(|s| *s != slot);
                match v.as_slice() {
                    [] => Slots::Empty,
                    [a] => Slots::One(*a),
                    _ => Slots::Many(v),
                }
            }
            other => other,
        };
    }

    fn is_empty(&self) -> bool {
        matches!(self, Slots::Empty)
    }
}

#[derive(Debug)]
struct Entry {
    binding: Binding,
    /// When this binding was last registered or refreshed, as a counter: the smallest in an
    /// AOR is the oldest one, which a new binding replaces at the cap (SIG-03).
    order: u64,
    flow: u32,
}

/// A flow in use. The flow itself is not stored again here: every binding on it holds it.
#[derive(Debug)]
struct FlowEntry {
    /// Bindings on this flow, of any AOR (a DECT base registers several, PRV-10). Never
    /// empty: the entry goes with its last binding.
    bindings: Slots,
    keepalive: Option<KeepAliveState>,
}

#[derive(Debug, Clone, Copy)]
struct KeepAliveState {
    due: Instant,
    failures: u32,
}

/// What a due timer asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fired {
    Expired(u32),
    KeepAlive(u32),
}

/// What a removal changed for the binding's AOR.
#[derive(Debug)]
pub(crate) struct Removed {
    pub binding: Binding,
    /// The AOR has no binding left.
    pub aor_empty: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Table {
    entries: Slab<Entry>,
    by_aor: HashMap<String, Slots>,
    flows: Slab<FlowEntry>,
    /// Flow slots by a hash of their flow: a `Flow` is 88 bytes, and its bindings already
    /// hold it, so the index keeps only the hash (flows with equal hashes share a list and
    /// are told apart through their bindings).
    flow_index: HashMap<u64, Slots>,
    flow_hasher: RandomState,
    by_conn: HashMap<ConnId, Vec<u32>>,
    timers: BinaryHeap<Reverse<Timer>>,
    len: usize,
    keepalive_flows: usize,
    next_order: u64,
}

impl Table {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn aor_count(&self) -> usize {
        self.by_aor.len()
    }

    /// A fresh ordering stamp, larger than every earlier one.
    pub fn next_order(&mut self) -> u64 {
        self.next_order += 1;
        self.next_order
    }

    pub fn slots_of(&self, aor: &str) -> &[u32] {
        self.by_aor.get(aor).map_or(&[], Slots::as_slice)
    }

    pub fn binding(&self, slot: u32) -> Option<&Binding> {
        self.entries.get(slot).map(|e| &e.binding)
    }

    pub fn order(&self, slot: u32) -> u64 {
        self.entries.get(slot).map_or(0, |e| e.order)
    }

    pub fn bindings_of<'a>(&'a self, aor: &str) -> impl Iterator<Item = &'a Binding> + 'a {
        let slots = self.by_aor.get(aor).map_or(&[][..], Slots::as_slice);
        slots.iter().filter_map(|s| self.binding(*s))
    }

    pub fn all(&self) -> impl Iterator<Item = &Binding> {
        self.entries.iter().map(|e| &e.binding)
    }

    /// Add a binding. `keepalive` is the keep-alive interval for a new UDP flow.
    pub fn insert(&mut self, binding: Binding, order: u64, now: Instant, keepalive: Duration) {
        let expires = binding.expires;
        let flow = self.attach_flow(binding.flow, now, keepalive);
        let aor = binding.aor.clone();
        let slot = self.entries.insert(Entry {
            binding,
            order,
            flow,
        });
        self.flows
            .get_mut(flow)
            .expect("attach_flow returned a live flow")
            .bindings
            .push(slot);
        self.by_aor.entry(aor).or_default().push(slot);
        self.len += 1;
        self.push_timer(expires, RegistrarTimer::BindingExpiry, slot);
    }

    /// Replace a binding's contents (same AOR), moving it to another flow if it changed.
    pub fn update(
        &mut self,
        slot: u32,
        binding: Binding,
        order: u64,
        now: Instant,
        keepalive: Duration,
    ) {
        let Some(entry) = self.entries.get(slot) else {
            return;
        };
        debug_assert_eq!(entry.binding.aor, binding.aor, "an update keeps its AOR");
        let old_flow = entry.flow;
        let old_flow_value = entry.binding.flow;
        let flow_changed = old_flow_value != binding.flow;
        let expiry_changed = entry.binding.expires != binding.expires;
        let new_flow = if flow_changed {
            self.detach_flow(old_flow, &old_flow_value, slot);
            let f = self.attach_flow(binding.flow, now, keepalive);
            self.flows
                .get_mut(f)
                .expect("attach_flow returned a live flow")
                .bindings
                .push(slot);
            f
        } else {
            old_flow
        };
        let expires = binding.expires;
        let entry = self.entries.get_mut(slot).expect("checked above");
        entry.binding = binding;
        entry.order = order;
        entry.flow = new_flow;
        if expiry_changed {
            self.push_timer(expires, RegistrarTimer::BindingExpiry, slot);
        }
    }

    pub fn remove(&mut self, slot: u32) -> Option<Removed> {
        let entry = self.entries.remove(slot)?;
        self.len -= 1;
        self.detach_flow(entry.flow, &entry.binding.flow, slot);
        let aor_empty = match self.by_aor.get_mut(&entry.binding.aor) {
            Some(slots) => {
                slots.remove(slot);
                slots.is_empty()
            }
            None => true,
        };
        if aor_empty {
            self.by_aor.remove(&entry.binding.aor);
        }
        Some(Removed {
            binding: entry.binding,
            aor_empty,
        })
    }

    /// Traffic arrived on this flow: it is alive, so its keep-alive starts over.
    pub fn flow_alive(&mut self, flow: &Flow, now: Instant, keepalive: Duration) {
        let Some(f) = self.flow_slot(flow) else {
            return;
        };
        let due = now + keepalive;
        let mut reschedule = false;
        if let Some(state) = self.flows.get_mut(f).and_then(|e| e.keepalive.as_mut()) {
            state.failures = 0;
            reschedule = state.due != due;
            state.due = due;
        }
        if reschedule {
            self.push_timer(due, RegistrarTimer::KeepAlive, f);
        }
    }

    /// The flow's slot, if bindings use it.
    pub fn flow_slot(&self, flow: &Flow) -> Option<u32> {
        let hash = self.flow_hasher.hash_one(flow);
        self.flow_index
            .get(&hash)?
            .as_slice()
            .iter()
            .copied()
            .find(|f| self.flow(*f) == Some(flow))
    }

    pub fn flow(&self, f: u32) -> Option<&Flow> {
        let first = *self.flows.get(f)?.bindings.as_slice().first()?;
        self.binding(first).map(|b| &b.flow)
    }

    /// Bindings on a flow.
    pub fn flow_bindings(&self, f: u32) -> &[u32] {
        self.flows.get(f).map_or(&[], |e| e.bindings.as_slice())
    }

    /// Flows on a connection.
    pub fn has_conn(&self, conn: ConnId) -> bool {
        self.by_conn.get(&conn).is_some_and(|f| !f.is_empty())
    }

    pub fn conn_flows(&self, conn: ConnId) -> Vec<u32> {
        self.by_conn.get(&conn).cloned().unwrap_or_default()
    }

    /// Count one failed keep-alive; returns the failures in a row.
    pub fn keepalive_failed(&mut self, f: u32) -> u32 {
        match self.flows.get_mut(f).and_then(|e| e.keepalive.as_mut()) {
            Some(state) => {
                state.failures = state.failures.saturating_add(1);
                state.failures
            }
            None => 0,
        }
    }

    pub fn keepalive_answered(&mut self, f: u32) {
        if let Some(state) = self.flows.get_mut(f).and_then(|e| e.keepalive.as_mut()) {
            state.failures = 0;
        }
    }

    /// Schedule a flow's next keep-alive.
    pub fn schedule_keepalive(&mut self, f: u32, due: Instant) {
        if let Some(state) = self.flows.get_mut(f).and_then(|e| e.keepalive.as_mut()) {
            state.due = due;
            self.push_timer(due, RegistrarTimer::KeepAlive, f);
        }
    }

    /// The earliest live timer. Stale entries at the top are removed by [`Self::prune`],
    /// which every mutation ends with, so this is exact.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse(t)| t.at)
    }

    /// Pop the next live timer due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Fired> {
        while let Some(Reverse(t)) = self.timers.peek().copied() {
            if t.at > now {
                return None;
            }
            self.timers.pop();
            if self.is_live(&t) {
                return Some(match t.kind {
                    RegistrarTimer::BindingExpiry => Fired::Expired(t.slot),
                    RegistrarTimer::KeepAlive => Fired::KeepAlive(t.slot),
                });
            }
        }
        None
    }

    /// Drop stale timers from the top of the queue, so [`Self::next_timeout`] is exact.
    pub fn prune(&mut self) {
        while let Some(Reverse(t)) = self.timers.peek() {
            if self.is_live(t) {
                break;
            }
            self.timers.pop();
        }
    }

    fn is_live(&self, t: &Timer) -> bool {
        match t.kind {
            RegistrarTimer::BindingExpiry => {
                self.entries.generation(t.slot) == t.generation
                    && self
                        .entries
                        .get(t.slot)
                        .is_some_and(|e| e.binding.expires == t.at)
            }
            RegistrarTimer::KeepAlive => {
                self.flows.generation(t.slot) == t.generation
                    && self
                        .flows
                        .get(t.slot)
                        .and_then(|e| e.keepalive)
                        .is_some_and(|k| k.due == t.at)
            }
        }
    }

    fn push_timer(&mut self, at: Instant, kind: RegistrarTimer, slot: u32) {
        let generation = match kind {
            RegistrarTimer::BindingExpiry => self.entries.generation(slot),
            RegistrarTimer::KeepAlive => self.flows.generation(slot),
        };
        self.timers.push(Reverse(Timer {
            at,
            kind,
            slot,
            generation,
        }));
        // Refreshes leave stale entries behind; keep the heap within a small multiple of the
        // live timers so memory stays bounded whatever the refresh pattern.
        let live = self.len + self.keepalive_flows;
        if self.timers.len() > 2 * live + 1024 {
            let mut heap = std::mem::take(&mut self.timers);
            heap.retain(|Reverse(t)| self.is_live(t));
            self.timers = heap;
        }
    }

    fn attach_flow(&mut self, flow: Flow, now: Instant, keepalive: Duration) -> u32 {
        if let Some(f) = self.flow_slot(&flow) {
            return f;
        }
        // UDP flows get OPTIONS keep-alives; TCP/TLS flows are watched by their connection
        // (the driver answers RFC 5626 CRLF pings and reports closes).
        let wants_keepalive = !flow.transport.is_reliable() && !keepalive.is_zero();
        let state = wants_keepalive.then(|| KeepAliveState {
            due: now + keepalive,
            failures: 0,
        });
        let f = self.flows.insert(FlowEntry {
            bindings: Slots::Empty,
            keepalive: state,
        });
        let hash = self.flow_hasher.hash_one(flow);
        self.flow_index.entry(hash).or_default().push(f);
        if let Some(conn) = flow.conn {
            self.by_conn.entry(conn).or_default().push(f);
        }
        if let Some(state) = state {
            self.keepalive_flows += 1;
            self.push_timer(state.due, RegistrarTimer::KeepAlive, f);
        }
        f
    }

    /// Take `slot` off flow `f` (whose value is `flow`), dropping the flow with its last
    /// binding.
    fn detach_flow(&mut self, f: u32, flow: &Flow, slot: u32) {
        let Some(entry) = self.flows.get_mut(f) else {
            return;
        };
        entry.bindings.remove(slot);
        if !entry.bindings.is_empty() {
            return;
        }
        let Some(entry) = self.flows.remove(f) else {
            return;
        };
        let hash = self.flow_hasher.hash_one(flow);
        if let Some(list) = self.flow_index.get_mut(&hash) {
            list.remove(f);
            if list.is_empty() {
                self.flow_index.remove(&hash);
            }
        }
        if entry.keepalive.is_some() {
            self.keepalive_flows -= 1;
        }
        if let Some(conn) = flow.conn {
            if let Some(list) = self.by_conn.get_mut(&conn) {
                list.retain(|x| *x != f);
                if list.is_empty() {
                    self.by_conn.remove(&conn);
                }
            }
        }
    }
}
