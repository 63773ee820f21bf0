//! [`Transactions`]: the table of live transactions, their indexes and timer queue, and the
//! driver-facing inputs and outputs (see the module doc of [`super`] for the contract).
//!
//! # Memory
//! A registrar under load holds one server transaction per REGISTER for timer J (32 s on
//! UDP), tens of thousands at a few hundred registrations a second, nearly all of them
//! non-INVITE transactions in Completed. So:
//! - The id table holds one pointer per transaction ([`Tx`]); the state is boxed, so growth
//!   and rehashing move 16-byte slots, not the whole state.
//! - A non-INVITE server transaction that enters Completed is replaced by a
//!   [`CompletedServer`]: its key (shared with the index), peer, final response and timer J
//!   deadline, which is all RFC 3261 §17.2.2 needs. The state machine, timer slots and span
//!   go.
//! - Keys and tags are owned copies ([`super::key`]), so no transaction keeps its request
//!   datagram alive.
//! - Every table and queue shrinks once it falls below a quarter of its capacity
//!   ([`shrink_map`]): a burst leaves no peak-sized tables behind. A shrink halves at
//!   least, so its O(len) cost is paid for by the len/2 removals before it.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::TimerConfig;
use crate::endpoint::{Peer, Transmit};
use crate::sip::{Message, Method, ResponseBuilder};

use super::client::{build_ack, Delivery, InviteClient, NonInviteClient};
use super::key::{
    self, ack_key, client_key_of_request, client_key_of_response, match_method, server_ids,
    AckBase, AckKey, ClientKey, ServerKey,
};
use super::server::{AckOutcome, InviteServer, NonInviteServer};
use super::timer::{deadline, Entry, TimerQueue, TimerSlots};
use super::{
    should_shrink, Action, ClientInput, Ctx, ServerInput, TimerKind, TransactionError,
    TransactionEvent, TxId, TxState, MIN_CAPACITY,
};

/// The shortest timer the manager arms. A zero T1 (a configuration the binary should have
/// refused) would otherwise re-arm timer A at `now` forever inside one `handle_timeout`.
const MIN_TIMER: Duration = Duration::from_millis(1);

/// The hasher of the id table. Ids are ours (a counter), not an attacker's, so a
/// multiplicative hash is enough: it keeps consecutive ids in distinct buckets (low bits)
/// and spreads the high bits the table's control bytes use.
#[derive(Debug, Default, Clone, Copy)]
struct TxIdHasher(u64);

impl Hasher for TxIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<V> = HashMap<TxId, V, BuildHasherDefault<TxIdHasher>>;

/// All transactions of one endpoint. See the module doc for the driver contract.
#[derive(Debug)]
pub struct Transactions {
    timers: TimerConfig,
    next_id: u64,
    txs: IdMap<Tx>,
    /// Server transactions by key. The key is shared with the transaction (which needs it
    /// to leave the index), not stored twice.
    servers: HashMap<Arc<ServerKey>, TxId>,
    clients: HashMap<ClientKey, TxId>,
    /// INVITE server transactions in Accepted, by the identity of the ACK for their 2xx.
    accepted: HashMap<AckKey, TxId>,
    queue: TimerQueue,
    /// Armed timers over all transactions (the live entries of `queue`).
    armed: usize,
    transmits: VecDeque<Outgoing>,
    events: VecDeque<TransactionEvent>,
    /// Reused buffer for state machine actions.
    scratch: Vec<Action>,
}

/// A queued transmit, or the 100 Trying of a new INVITE, decided when polled.
#[derive(Debug)]
enum Outgoing {
    Ready(Transmit),
    Trying(TxId),
}

/// One entry of the id table: a pointer either way.
#[derive(Debug)]
enum Tx {
    Live(Box<Transaction>),
    /// A non-INVITE server transaction in Completed.
    Completed(Box<CompletedServer>),
}

/// A non-INVITE server transaction in Completed (RFC 3261 §17.2.2): it resends its final
/// response to every retransmission of the request until timer J fires, and does nothing
/// else. Its logs carry the transaction id as a field (it has no span of its own).
#[derive(Debug)]
struct CompletedServer {
    key: Arc<ServerKey>,
    /// RFC 2543 keys only: the request's To tag, compared after the look-up.
    request_to_tag: Option<Bytes>,
    peer: Peer,
    response: Bytes,
    /// Timer J (`None`: beyond what `Instant` holds, never fires).
    j: Option<Instant>,
}

#[derive(Debug)]
struct Transaction {
    /// Server: where the request came from (responses go there). Client: the next hop.
    peer: Peer,
    timers: TimerSlots,
    span: tracing::Span,
    side: Side,
}

#[derive(Debug)]
enum Side {
    Server(ServerTx),
    Client(ClientTx),
}

#[derive(Debug)]
struct ServerTx {
    key: Arc<ServerKey>,
    /// The To tag of the request (RFC 2543 matching of retransmissions and CANCEL).
    request_to_tag: Option<Bytes>,
    /// The To tag of the final response sent (RFC 2543 matching of the ACK).
    final_to_tag: Option<Bytes>,
    /// INVITE only: the identity an ACK for our 2xx will carry, less the To tag.
    ack_base: Option<AckBase>,
    /// Set while registered in `Transactions::accepted`.
    ack_key: Option<AckKey>,
    machine: ServerMachine,
}

#[derive(Debug)]
enum ServerMachine {
    Invite(InviteServer),
    NonInvite(NonInviteServer),
}

#[derive(Debug)]
struct ClientTx {
    key: ClientKey,
    /// The request as sent (the ACK for a non-2xx is built from it).
    request: Message,
    /// Its bytes, for retransmissions.
    wire: Bytes,
    cseq: u32,
    machine: ClientMachine,
}

#[derive(Debug)]
enum ClientMachine {
    Invite(InviteClient),
    NonInvite(NonInviteClient),
}

impl Transaction {
    fn state(&self) -> Option<TxState> {
        match &self.side {
            Side::Server(s) => match &s.machine {
                ServerMachine::Invite(m) => m.state(),
                ServerMachine::NonInvite(m) => m.state(),
            },
            Side::Client(c) => match &c.machine {
                ClientMachine::Invite(m) => m.state(),
                ClientMachine::NonInvite(m) => m.state(),
            },
        }
    }

    fn is_terminated(&self) -> bool {
        self.state().is_none()
    }

    fn transmit(&self, payload: Bytes) -> Transmit {
        transmit_to(&self.peer, payload)
    }
}

fn transmit_to(peer: &Peer, payload: Bytes) -> Transmit {
    Transmit {
        transport: peer.transport,
        destination: peer.remote,
        local: peer.local,
        conn: peer.conn,
        payload,
    }
}

impl Tx {
    fn state(&self) -> Option<TxState> {
        match self {
            Tx::Live(t) => t.state(),
            Tx::Completed(_) => Some(TxState::Completed),
        }
    }

    fn is_server(&self) -> bool {
        match self {
            Tx::Live(t) => matches!(t.side, Side::Server(_)),
            Tx::Completed(_) => true,
        }
    }

    /// Whether a request whose key found this server transaction belongs to it (see
    /// [`ServerTx::to_tag_matches`]); `false` for a client transaction.
    fn server_matches(&self, is_ack: bool, to_tag: &Option<Bytes>) -> bool {
        match self {
            Tx::Live(t) => match &t.side {
                Side::Server(s) => s.to_tag_matches(is_ack, to_tag),
                Side::Client(_) => false,
            },
            // Its key has a non-INVITE method, which an ACK (looked up as INVITE) never
            // has; the RFC 2543 To tag check is that of a retransmission.
            Tx::Completed(c) => !c.key.is_legacy() || (!is_ack && c.request_to_tag == *to_tag),
        }
    }
}

impl ServerTx {
    /// Whether a request whose key found this transaction really belongs to it: RFC 2543
    /// keys leave the To tag out, so it is compared here (§17.2.3: the request's To tag for
    /// a retransmission or CANCEL, the To tag of the response sent for an ACK).
    fn to_tag_matches(&self, is_ack: bool, to_tag: &Option<Bytes>) -> bool {
        if !self.key.is_legacy() {
            return true;
        }
        if is_ack {
            self.final_to_tag.is_some() && self.final_to_tag == *to_tag
        } else {
            self.request_to_tag == *to_tag
        }
    }
}

impl Default for Transactions {
    fn default() -> Self {
        Self::new(TimerConfig::default())
    }
}

impl Transactions {
    pub fn new(timers: TimerConfig) -> Self {
        Self {
            timers,
            next_id: 1,
            txs: IdMap::default(),
            servers: HashMap::new(),
            clients: HashMap::new(),
            accepted: HashMap::new(),
            queue: TimerQueue::default(),
            armed: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    /// New timer values (after a reload) apply to timers armed from now on.
    pub fn set_timers(&mut self, timers: TimerConfig) {
        self.timers = timers;
    }

    pub fn timers(&self) -> &TimerConfig {
        &self.timers
    }

    /// Live transactions (for `voxgate_transactions_active`).
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// How many transactions the id table holds before it grows; the index tables follow
    /// the same rule. It falls again (to about twice [`Transactions::len`]) once fewer than
    /// a quarter of it are used, so a burst does not leave peak-sized tables behind.
    pub fn capacity(&self) -> usize {
        self.txs.capacity()
    }

    /// The state of a live transaction; `None` once it has terminated.
    pub fn state(&self, tx: TxId) -> Option<TxState> {
        self.txs.get(&tx).and_then(Tx::state)
    }

    /// A request from the network. `peer.remote` must be where responses go (RFC 3261
    /// §18.2.2, RFC 3581). Errors mean the request cannot be matched (no top Via, or an
    /// RFC 2543 request without From, To, Call-ID or CSeq); the endpoint drops it.
    pub fn handle_request(
        &mut self,
        now: Instant,
        peer: Peer,
        request: Message,
    ) -> Result<ServerInput, TransactionError> {
        let method = request
            .method()
            .cloned()
            .ok_or(TransactionError::NotARequest)?;
        let is_ack = method == Method::Ack;
        let ids = server_ids(&request, match_method(&method))?;
        let found = self.servers.get(&ids.key).copied().filter(|id| {
            self.txs
                .get(id)
                .is_some_and(|t| t.server_matches(is_ack, &ids.to_tag))
        });
        let input = match (found, is_ack) {
            (Some(id), true) => self.server_ack(now, id, request),
            (None, true) => {
                let invite = ack_key(&request).and_then(|k| self.accepted.get(&k).copied());
                match invite {
                    Some(invite) => ServerInput::AckFor2xx {
                        invite,
                        ack: request,
                    },
                    None => ServerInput::StrayAck { ack: request },
                }
            }
            (Some(id), false) => {
                if let Some(Tx::Completed(c)) = self.txs.get(&id) {
                    tracing::debug!(tx = id.0, "retransmission: final response sent again");
                    let again = transmit_to(&c.peer, c.response.clone());
                    self.transmits.push_back(Outgoing::Ready(again));
                    return Ok(ServerInput::Absorbed { tx: id });
                }
                self.step_server(now, id, |m, cx| match m {
                    ServerMachine::Invite(s) => ServerMachine::Invite(s.on_retransmission(cx)),
                    ServerMachine::NonInvite(s) => {
                        ServerMachine::NonInvite(s.on_retransmission(cx))
                    }
                });
                ServerInput::Absorbed { tx: id }
            }
            (None, false) => self.new_server(peer, method, ids, request),
        };
        self.prune();
        Ok(input)
    }

    fn new_server(
        &mut self,
        peer: Peer,
        method: Method,
        ids: key::RequestIds,
        request: Message,
    ) -> ServerInput {
        let id = self.alloc_id();
        let span = tracing::debug_span!("sip_tx", tx = id.0, side = "server", method = %method);
        let (machine, ack_base) = if method == Method::Invite {
            // SIG-24: the 100 Trying goes out at once unless the TU answers first.
            let trying = ResponseBuilder::new(&request, 100, "Trying", None)
                .build()
                .raw()
                .clone();
            self.transmits.push_back(Outgoing::Trying(id));
            (
                ServerMachine::Invite(InviteServer::new(trying)),
                AckBase::of_request(&request),
            )
        } else {
            (ServerMachine::NonInvite(NonInviteServer::Trying), None)
        };
        tracing::debug!(parent: &span, legacy = ids.key.is_legacy(), "new server transaction");
        // An RFC 2543 request that collides with a live key but not its To tag takes the
        // index over; the older transaction still runs out its timers.
        let key = Arc::new(ids.key);
        self.servers.insert(Arc::clone(&key), id);
        self.txs.insert(
            id,
            Tx::Live(Box::new(Transaction {
                peer,
                timers: TimerSlots::default(),
                span,
                side: Side::Server(ServerTx {
                    key,
                    request_to_tag: ids.to_tag,
                    final_to_tag: None,
                    ack_base,
                    ack_key: None,
                    machine,
                }),
            })),
        );
        ServerInput::New { tx: id, request }
    }

    fn server_ack(&mut self, now: Instant, id: TxId, ack: Message) -> ServerInput {
        let mut outcome = AckOutcome::Absorbed;
        self.step_server(now, id, |m, cx| match m {
            ServerMachine::Invite(s) => {
                let (next, o) = s.on_ack(cx);
                outcome = o;
                ServerMachine::Invite(next)
            }
            other => other,
        });
        match outcome {
            AckOutcome::Absorbed => ServerInput::Absorbed { tx: id },
            AckOutcome::ForTu => ServerInput::AckFor2xx { invite: id, ack },
        }
    }

    /// The TU's response in server transaction `tx`. It is sent to the request's peer and
    /// kept for retransmissions. After a final response only 2xx retransmissions (after a
    /// 2xx) are accepted.
    pub fn respond(
        &mut self,
        now: Instant,
        tx: TxId,
        response: Message,
    ) -> Result<(), TransactionError> {
        let code = response.code().ok_or(TransactionError::NotAResponse)?;
        if !(100..=699).contains(&code) {
            return Err(TransactionError::InvalidStatus { code });
        }
        let t = match self.txs.get_mut(&tx) {
            Some(Tx::Live(t)) => t,
            Some(Tx::Completed(_)) => return Err(TransactionError::FinalAlreadySent { tx, code }),
            None => return Err(TransactionError::UnknownTransaction(tx)),
        };
        let Side::Server(s) = &mut t.side else {
            return Err(TransactionError::NotAServerTransaction(tx));
        };
        let accepts = match &s.machine {
            ServerMachine::Invite(m) => m.accepts_response(code),
            ServerMachine::NonInvite(m) => m.accepts_response(),
        };
        if !accepts {
            return Err(TransactionError::FinalAlreadySent { tx, code });
        }
        // The final To tag matters to RFC 2543 ACK matching and to the ACK identity of an
        // INVITE's 2xx only; a REGISTER's To is not parsed again for nothing.
        if code >= 200 && (s.key.is_legacy() || matches!(s.machine, ServerMachine::Invite(_))) {
            s.final_to_tag = key::to_tag(&response);
        }
        tracing::debug!(parent: &t.span, code, "response from the TU");
        let wire = response.to_bytes();
        self.step_server(now, tx, |m, cx| match m {
            ServerMachine::Invite(s) => ServerMachine::Invite(s.on_response(code, wire, cx)),
            ServerMachine::NonInvite(s) => ServerMachine::NonInvite(s.on_response(code, wire, cx)),
        });
        self.register_accepted(tx);
        self.compact(tx);
        self.prune();
        Ok(())
    }

    /// Replace a non-INVITE server transaction that entered Completed by its compact form.
    fn compact(&mut self, id: TxId) {
        let Some(slot) = self.txs.get_mut(&id) else {
            return;
        };
        let Tx::Live(t) = slot else {
            return;
        };
        let Transaction {
            peer,
            timers,
            span,
            side,
        } = &mut **t;
        let Side::Server(ServerTx {
            key,
            request_to_tag,
            machine: ServerMachine::NonInvite(NonInviteServer::Completed { last }),
            ..
        }) = side
        else {
            return;
        };
        let j = timers.get(TimerKind::J);
        // Timer J is the only one a non-INVITE server transaction arms.
        let dropped = timers.armed() - usize::from(j.is_some());
        self.armed = self.armed.saturating_sub(dropped);
        tracing::debug!(parent: &*span, "completed: kept compact until timer J");
        let completed = CompletedServer {
            key: Arc::clone(key),
            request_to_tag: request_to_tag.take(),
            peer: *peer,
            // An exact-size copy: the printed response's buffer has slack (the printer
            // reserves ahead) and a shared header once a transmit cloned it; the copy has
            // neither, for the 32 s it is kept. The original goes with the transmit.
            response: Bytes::copy_from_slice(last),
            j,
        };
        *slot = Tx::Completed(Box::new(completed));
    }

    /// Index an INVITE server transaction that just entered Accepted by its ACK identity.
    fn register_accepted(&mut self, id: TxId) {
        let Some(Tx::Live(t)) = self.txs.get_mut(&id) else {
            return;
        };
        let Side::Server(s) = &mut t.side else {
            return;
        };
        if s.ack_key.is_some()
            || !matches!(s.machine, ServerMachine::Invite(InviteServer::Accepted))
        {
            return;
        }
        if let Some(base) = &s.ack_base {
            let k = base.with_to_tag(s.final_to_tag.clone());
            s.ack_key = Some(k.clone());
            self.accepted.insert(k, id);
        }
    }

    /// Start a client transaction: send `request` to `next_hop` and retransmit it as needed.
    /// The request must carry a top Via with an RFC 3261 branch unique among live client
    /// transactions of its method and a CSeq of its method. A CANCEL also arms the RFC 3261
    /// §9.1 guard on the INVITE it cancels (same branch).
    pub fn send_request(
        &mut self,
        now: Instant,
        next_hop: Peer,
        request: Message,
    ) -> Result<TxId, TransactionError> {
        let method = request
            .method()
            .cloned()
            .ok_or(TransactionError::NotARequest)?;
        if method == Method::Ack {
            return Err(TransactionError::AckIsNotATransaction);
        }
        let cseq = request.cseq()?;
        if cseq.method != method {
            return Err(TransactionError::CSeqMismatch);
        }
        let key = client_key_of_request(&request)?;
        if self.clients.contains_key(&key) {
            return Err(TransactionError::DuplicateBranch);
        }
        let id = self.alloc_id();
        let span = tracing::debug_span!("sip_tx", tx = id.0, side = "client", method = %method);
        tracing::debug!(parent: &span, "new client transaction");
        let wire = request.to_bytes();
        let mut out = std::mem::take(&mut self.scratch);
        let mut cx = Ctx {
            timers: &self.timers,
            reliable: next_hop.transport.is_reliable(),
            out: &mut out,
        };
        let machine = if method == Method::Invite {
            ClientMachine::Invite(InviteClient::start(&wire, &mut cx))
        } else {
            ClientMachine::NonInvite(NonInviteClient::start(&wire, &mut cx))
        };
        self.clients.insert(key.clone(), id);
        let cancelled = (method == Method::Cancel)
            .then(|| key.with_method(Method::Invite))
            .and_then(|k| self.clients.get(&k).copied());
        self.txs.insert(
            id,
            Tx::Live(Box::new(Transaction {
                peer: next_hop,
                timers: TimerSlots::default(),
                span,
                side: Side::Client(ClientTx {
                    key,
                    request,
                    wire,
                    cseq: cseq.seq,
                    machine,
                }),
            })),
        );
        self.apply(now, id, &mut out);
        self.scratch = out;
        if let Some(invite) = cancelled {
            self.arm_cancel_guard(now, invite);
        }
        self.prune();
        Ok(id)
    }

    fn arm_cancel_guard(&mut self, now: Instant, invite: TxId) {
        let Some(Tx::Live(t)) = self.txs.get(&invite) else {
            return;
        };
        let pending = matches!(&t.side, Side::Client(ClientTx { machine: ClientMachine::Invite(m), .. }) if m.is_pending());
        if pending && t.timers.get(TimerKind::CancelGuard).is_none() {
            let mut actions = vec![Action::Arm(TimerKind::CancelGuard, self.timers.t64())];
            self.apply(now, invite, &mut actions);
        }
    }

    /// A response from the network (RFC 3261 §17.1.3 matching).
    pub fn handle_response(&mut self, now: Instant, response: Message) -> ClientInput {
        let Some(code) = response.code() else {
            return ClientInput::Stray { response };
        };
        let Some(id) =
            client_key_of_response(&response).and_then(|k| self.clients.get(&k).copied())
        else {
            return ClientInput::Stray { response };
        };
        let Some(Tx::Live(t)) = self.txs.get_mut(&id) else {
            return ClientInput::Stray { response };
        };
        tracing::debug!(parent: &t.span, code, "response");
        let reliable = t.peer.transport.is_reliable();
        let Side::Client(c) = &mut t.side else {
            return ClientInput::Stray { response };
        };
        let mut out = std::mem::take(&mut self.scratch);
        let mut cx = Ctx {
            timers: &self.timers,
            reliable,
            out: &mut out,
        };
        let machine = std::mem::replace(
            &mut c.machine,
            ClientMachine::NonInvite(NonInviteClient::Terminated),
        );
        let (machine, delivery) = match machine {
            ClientMachine::Invite(m) => {
                let (request, cseq) = (&c.request, c.cseq);
                let (m, d) = m.on_response(code, || build_ack(request, cseq, &response), &mut cx);
                (ClientMachine::Invite(m), d)
            }
            ClientMachine::NonInvite(m) => {
                let (m, d) = m.on_response(code, &mut cx);
                (ClientMachine::NonInvite(m), d)
            }
        };
        c.machine = machine;
        let terminated = t.is_terminated();
        self.apply(now, id, &mut out);
        self.scratch = out;
        if terminated {
            self.remove(id);
        }
        self.prune();
        match delivery {
            Delivery::ToTu => ClientInput::Response { tx: id, response },
            Delivery::Absorbed => ClientInput::Absorbed { tx: id },
        }
    }

    /// Fire every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        loop {
            let txs = &self.txs;
            let Some(e) = self.queue.pop_due(now, |e| is_live(txs, e)) else {
                break;
            };
            let t = match self.txs.get_mut(&e.tx) {
                Some(Tx::Live(t)) => t,
                Some(Tx::Completed(c)) => {
                    // Timer J, the only timer it has: the transaction ends.
                    c.j = None;
                    self.armed = self.armed.saturating_sub(1);
                    tracing::debug!(tx = e.tx.0, timer = %e.kind, "timer fired");
                    self.remove(e.tx);
                    continue;
                }
                None => continue,
            };
            t.timers.set(e.kind, None);
            self.armed = self.armed.saturating_sub(1);
            tracing::debug!(parent: &t.span, timer = %e.kind, "timer fired");
            let mut out = std::mem::take(&mut self.scratch);
            let mut cx = Ctx {
                timers: &self.timers,
                reliable: t.peer.transport.is_reliable(),
                out: &mut out,
            };
            match &mut t.side {
                Side::Server(s) => {
                    let m = std::mem::replace(
                        &mut s.machine,
                        ServerMachine::NonInvite(NonInviteServer::Terminated),
                    );
                    s.machine = match m {
                        ServerMachine::Invite(m) => {
                            ServerMachine::Invite(m.on_timer(e.kind, &mut cx))
                        }
                        ServerMachine::NonInvite(m) => ServerMachine::NonInvite(m.on_timer(e.kind)),
                    };
                }
                Side::Client(c) => {
                    let m = std::mem::replace(
                        &mut c.machine,
                        ClientMachine::NonInvite(NonInviteClient::Terminated),
                    );
                    c.machine = match m {
                        ClientMachine::Invite(m) => {
                            ClientMachine::Invite(m.on_timer(e.kind, &c.wire, &mut cx))
                        }
                        ClientMachine::NonInvite(m) => {
                            ClientMachine::NonInvite(m.on_timer(e.kind, &c.wire, &mut cx))
                        }
                    };
                }
            }
            let terminated = t.is_terminated();
            self.apply(now, e.tx, &mut out);
            self.scratch = out;
            if terminated {
                self.remove(e.tx);
            }
        }
        self.prune();
    }

    /// The next message to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.next_transmit();
        if t.is_none() {
            shrink_deque(&mut self.transmits);
        }
        t
    }

    fn next_transmit(&mut self) -> Option<Transmit> {
        while let Some(o) = self.transmits.pop_front() {
            match o {
                Outgoing::Ready(t) => return Some(t),
                Outgoing::Trying(id) => {
                    let Some(Tx::Live(t)) = self.txs.get(&id) else {
                        continue;
                    };
                    if let Side::Server(ServerTx {
                        machine: ServerMachine::Invite(m),
                        ..
                    }) = &t.side
                    {
                        if let Some(trying) = m.pending_trying() {
                            tracing::debug!(parent: &t.span, "100 Trying");
                            return Some(t.transmit(trying.clone()));
                        }
                    }
                }
            }
        }
        None
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        let e = self.events.pop_front();
        if e.is_none() {
            shrink_deque(&mut self.events);
        }
        e
    }

    /// When [`Transactions::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.peek().map(|e| e.at)
    }

    /// The live INVITE server transaction a CANCEL refers to (RFC 3261 §9.2: the same key
    /// as the INVITE except the method; for an RFC 2543 peer the same To tag too). The TU
    /// answers the CANCEL 200 and, when [`Transactions::state`] of the INVITE is still
    /// [`TxState::Proceeding`], the INVITE 487. `None`: answer 481.
    pub fn find_invite_for_cancel(&self, cancel: &Message) -> Option<TxId> {
        if cancel.method() != Some(&Method::Cancel) {
            return None;
        }
        let ids = server_ids(cancel, Method::Invite).ok()?;
        let id = *self.servers.get(&ids.key)?;
        self.txs
            .get(&id)
            .is_some_and(|t| t.server_matches(false, &ids.to_tag))
            .then_some(id)
    }

    fn alloc_id(&mut self) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Run one server state machine step and carry out its actions.
    fn step_server(
        &mut self,
        now: Instant,
        id: TxId,
        f: impl FnOnce(ServerMachine, &mut Ctx<'_>) -> ServerMachine,
    ) {
        let Some(Tx::Live(t)) = self.txs.get_mut(&id) else {
            return;
        };
        let Side::Server(s) = &mut t.side else {
            return;
        };
        let mut out = std::mem::take(&mut self.scratch);
        let mut cx = Ctx {
            timers: &self.timers,
            reliable: t.peer.transport.is_reliable(),
            out: &mut out,
        };
        let m = std::mem::replace(
            &mut s.machine,
            ServerMachine::NonInvite(NonInviteServer::Terminated),
        );
        s.machine = f(m, &mut cx);
        let terminated = t.is_terminated();
        self.apply(now, id, &mut out);
        self.scratch = out;
        if terminated {
            self.remove(id);
        }
    }

    /// Carry out (and drain) the actions of transaction `id`.
    fn apply(&mut self, now: Instant, id: TxId, actions: &mut Vec<Action>) {
        let Some(Tx::Live(t)) = self.txs.get_mut(&id) else {
            actions.clear();
            return;
        };
        for a in actions.drain(..) {
            match a {
                Action::Send(wire) => self.transmits.push_back(Outgoing::Ready(t.transmit(wire))),
                Action::Arm(kind, after) => {
                    let at = deadline(now, after.max(MIN_TIMER));
                    if t.timers.get(kind).is_some() {
                        self.armed = self.armed.saturating_sub(1);
                    }
                    t.timers.set(kind, at);
                    if let Some(at) = at {
                        self.armed += 1;
                        self.queue.push(Entry { at, tx: id, kind });
                    }
                }
                Action::Disarm(kind) => {
                    if t.timers.get(kind).is_some() {
                        self.armed = self.armed.saturating_sub(1);
                    }
                    t.timers.set(kind, None);
                }
                Action::Timeout(timer) => {
                    tracing::debug!(parent: &t.span, %timer, "transaction timed out");
                    self.events
                        .push_back(TransactionEvent::Timeout { tx: id, timer });
                }
            }
        }
    }

    /// Drop server transaction `tx` without a trace: the TU answered its request
    /// statelessly (e.g. SEC-15's 503 under overload) or not at all. No
    /// [`TransactionEvent`], no transmit (a pending 100 Trying is not sent) and no timer is
    /// left, and a later retransmission of the request starts a new transaction. Call it
    /// instead of [`Transactions::respond`]; an unknown id or a client transaction is left
    /// alone.
    pub fn discard(&mut self, tx: TxId) {
        if self.txs.get(&tx).is_some_and(Tx::is_server) {
            self.forget(tx, false);
            self.prune();
        }
    }

    /// Forget a terminated transaction and everything that points to it.
    fn remove(&mut self, id: TxId) {
        self.forget(id, true);
    }

    /// Remove transaction `id` and its index entries; `report` says whether the TU hears
    /// [`TransactionEvent::Terminated`].
    fn forget(&mut self, id: TxId, report: bool) {
        let t = match self.txs.remove(&id) {
            Some(Tx::Live(t)) => t,
            Some(Tx::Completed(c)) => {
                self.armed = self.armed.saturating_sub(usize::from(c.j.is_some()));
                tracing::debug!(tx = id.0, report, "transaction terminated");
                self.unindex_server(&c.key, id);
                self.terminated(id, report);
                return;
            }
            None => return,
        };
        self.armed = self.armed.saturating_sub(t.timers.armed());
        tracing::debug!(parent: &t.span, report, "transaction terminated");
        match t.side {
            Side::Server(s) => {
                self.unindex_server(&s.key, id);
                if let Some(k) = s.ack_key {
                    if self.accepted.get(&k) == Some(&id) {
                        self.accepted.remove(&k);
                    }
                }
            }
            Side::Client(c) => {
                if self.clients.get(&c.key) == Some(&id) {
                    self.clients.remove(&c.key);
                }
            }
        }
        self.terminated(id, report);
    }

    fn unindex_server(&mut self, key: &ServerKey, id: TxId) {
        if self.servers.get(key) == Some(&id) {
            self.servers.remove(key);
        }
    }

    fn terminated(&mut self, id: TxId, report: bool) {
        if report {
            self.events
                .push_back(TransactionEvent::Terminated { tx: id });
        }
    }

    /// Keep the head of the timer queue live so `poll_timeout` is exact, and give back
    /// table memory once a burst is over.
    fn prune(&mut self) {
        let txs = &self.txs;
        self.queue.prune(self.armed, |e| is_live(txs, e));
        shrink_map(&mut self.txs);
        shrink_map(&mut self.servers);
        shrink_map(&mut self.clients);
        shrink_map(&mut self.accepted);
        shrink_deque(&mut self.transmits);
        shrink_deque(&mut self.events);
    }

    /// The capacities of every table and queue, for tests of shrinking.
    #[cfg(test)]
    fn capacities(&self) -> [usize; 7] {
        [
            self.txs.capacity(),
            self.servers.capacity(),
            self.clients.capacity(),
            self.accepted.capacity(),
            self.transmits.capacity(),
            self.events.capacity(),
            self.queue.capacity(),
        ]
    }
}

/// Whether a queued timer entry is still armed.
fn is_live(txs: &IdMap<Tx>, e: &Entry) -> bool {
    match txs.get(&e.tx) {
        Some(Tx::Live(t)) => t.timers.get(e.kind) == Some(e.at),
        Some(Tx::Completed(c)) => e.kind == TimerKind::J && c.j == Some(e.at),
        None => false,
    }
}

/// [`should_shrink`] says when; shrinking to twice `len` means the next shrink comes only
/// after at least half the entries left, so the O(len) rehash is amortised over them.
fn shrink_map<K: Eq + Hash, V, S: BuildHasher>(m: &mut HashMap<K, V, S>) {
    if should_shrink(m.len(), m.capacity()) {
        m.shrink_to((m.len() * 2).max(MIN_CAPACITY));
    }
}

fn shrink_deque<T>(q: &mut VecDeque<T>) {
    if should_shrink(q.len(), q.capacity()) {
        q.shrink_to((q.len() * 2).max(MIN_CAPACITY));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::ConnId;
    use crate::sip::Transport;
    use crate::transaction::test_support::parse;

    #[allow(clippy::disallowed_methods)] // the one real instant; every later time is virtual
    fn base() -> Instant {
        Instant::now()
    }

    fn peer(transport: Transport) -> Peer {
        Peer {
            transport,
            remote: "192.0.2.10:5070".parse().expect("literal address"),
            local: "192.0.2.1:5060".parse().expect("literal address"),
            conn: transport.is_reliable().then_some(ConnId(7)),
        }
    }

    fn request(method: &str, via_host: &str, branch: &str) -> Message {
        parse(&format!(
            "{method} sip:bob@example.com SIP/2.0\n\
             Via: SIP/2.0/UDP {via_host};branch={branch}\n\
             From: <sip:alice@example.com>;tag=a1\n\
             To: <sip:bob@example.com>\n\
             Call-ID: {branch}@192.0.2.10\n\
             CSeq: 1 {method}\n\
             Content-Length: 0\n\n"
        ))
    }

    fn ok(req: &Message) -> Message {
        ResponseBuilder::new(req, 200, "OK", Some("b1")).build()
    }

    fn new_tx(txs: &mut Transactions, now: Instant, req: Message) -> TxId {
        match txs.handle_request(now, peer(Transport::Udp), req) {
            Ok(ServerInput::New { tx, .. }) => tx,
            other => panic!("expected a new transaction, got {other:?}"),
        }
    }

    #[test]
    fn a_completed_non_invite_is_compact_and_keeps_no_request_bytes() {
        let t0 = base();
        let mut txs = Transactions::default();
        let reg = request("REGISTER", "192.0.2.10:5070", "z9hG4bKc1");
        let tx = new_tx(&mut txs, t0, reg.clone());
        txs.respond(t0, tx, ok(&reg)).expect("respond");
        let Some(Tx::Completed(c)) = txs.txs.get(&tx) else {
            panic!("not compacted");
        };
        assert!(c.j.is_some());
        // The key is shared by the index and the transaction, not copied.
        assert_eq!(Arc::strong_count(&c.key), 2);
        // Only one timer is armed (J) and the queue names it.
        assert_eq!(txs.armed, 1);
        assert_eq!(txs.poll_timeout(), c.j);
        // Once the caller drops the request, nothing holds its buffer: the transaction
        // owns copies of its key (a `Bytes` slice of the branch would keep it shared).
        let raw = reg.raw().clone();
        drop(reg);
        assert!(raw.is_unique(), "the transaction keeps the request buffer");
    }

    #[test]
    fn tables_shrink_once_a_burst_is_over() {
        let t0 = base();
        let mut txs = Transactions::default();
        let n = 3_000;
        for i in 0..n {
            let reg = request("REGISTER", "192.0.2.10:5070", &format!("z9hG4bKr{i}"));
            let tx = new_tx(&mut txs, t0, reg.clone());
            txs.respond(t0, tx, ok(&reg)).expect("respond");
        }
        for i in 0..n / 4 {
            let inv = request("INVITE", "phone.example.com", &format!("z9hG4bKi{i}"));
            let tx = new_tx(&mut txs, t0, inv.clone());
            txs.respond(t0, tx, ok(&inv)).expect("respond");
            let opt = request("OPTIONS", "192.0.2.1:5060", &format!("z9hG4bKo{i}"));
            txs.send_request(t0, peer(Transport::Udp), opt)
                .expect("send");
        }
        assert_eq!(txs.len(), n + n / 2);
        assert!(
            txs.txs
                .values()
                .filter(|t| matches!(t, Tx::Completed(_)))
                .count()
                == n
        );
        let peak = txs.capacities();
        // (The event queue is still empty: nothing has ended yet.)
        assert!(
            peak.iter().enumerate().all(|(i, &c)| i == 5 || c >= n / 4),
            "{peak:?}"
        );
        assert!(std::iter::from_fn(|| txs.poll_transmit()).count() >= n);
        // Every timer runs out (J, L and F are all under two minutes).
        txs.handle_timeout(t0 + Duration::from_secs(120));
        let ended = std::iter::from_fn(|| txs.poll_event())
            .filter(|e| matches!(e, TransactionEvent::Terminated { .. }))
            .count();
        assert_eq!(ended, n + n / 2);
        // (Timer E retransmissions of the unanswered OPTIONS.)
        assert!(std::iter::from_fn(|| txs.poll_transmit()).count() > 0);
        assert!(txs.is_empty());
        assert_eq!(txs.poll_timeout(), None);
        let after = txs.capacities();
        assert!(
            after.iter().all(|&c| c <= 2 * MIN_CAPACITY),
            "capacities at peak {peak:?}, after {after:?}"
        );
    }
}
