//! [`Transactions`]: the table of live transactions, their indexes and timer queue, and the
//! driver-facing inputs and outputs (see the module doc of [`super`] for the contract).

use std::collections::{HashMap, VecDeque};
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
    Action, ClientInput, Ctx, ServerInput, TimerKind, TransactionError, TransactionEvent, TxId,
    TxState,
};

/// The shortest timer the manager arms. A zero T1 (a configuration the binary should have
/// refused) would otherwise re-arm timer A at `now` forever inside one `handle_timeout`.
const MIN_TIMER: Duration = Duration::from_millis(1);

/// All transactions of one endpoint. See the module doc for the driver contract.
#[derive(Debug)]
pub struct Transactions {
    timers: TimerConfig,
    next_id: u64,
    txs: HashMap<TxId, Transaction>,
    servers: HashMap<ServerKey, TxId>,
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
    key: ServerKey,
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
        Transmit {
            transport: self.peer.transport,
            destination: self.peer.remote,
            local: self.peer.local,
            conn: self.peer.conn,
            payload,
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
            txs: HashMap::new(),
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

    /// The state of a live transaction; `None` once it has terminated.
    pub fn state(&self, tx: TxId) -> Option<TxState> {
        self.txs.get(&tx).and_then(Transaction::state)
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
            matches!(self.txs.get(id), Some(Transaction { side: Side::Server(s), .. })
                if s.to_tag_matches(is_ack, &ids.to_tag))
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
        self.servers.insert(ids.key.clone(), id);
        self.txs.insert(
            id,
            Transaction {
                peer,
                timers: TimerSlots::default(),
                span,
                side: Side::Server(ServerTx {
                    key: ids.key,
                    request_to_tag: ids.to_tag,
                    final_to_tag: None,
                    ack_base,
                    ack_key: None,
                    machine,
                }),
            },
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
        let t = self
            .txs
            .get_mut(&tx)
            .ok_or(TransactionError::UnknownTransaction(tx))?;
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
        if code >= 200 {
            s.final_to_tag = key::to_tag(&response);
        }
        tracing::debug!(parent: &t.span, code, "response from the TU");
        let wire = response.to_bytes();
        self.step_server(now, tx, |m, cx| match m {
            ServerMachine::Invite(s) => ServerMachine::Invite(s.on_response(code, wire, cx)),
            ServerMachine::NonInvite(s) => ServerMachine::NonInvite(s.on_response(code, wire, cx)),
        });
        self.register_accepted(tx);
        self.prune();
        Ok(())
    }

    /// Index an INVITE server transaction that just entered Accepted by its ACK identity.
    fn register_accepted(&mut self, id: TxId) {
        let Some(Transaction {
            side: Side::Server(s),
            ..
        }) = self.txs.get_mut(&id)
        else {
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
            Transaction {
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
            },
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
        let Some(t) = self.txs.get(&invite) else {
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
        let Some(t) = self.txs.get_mut(&id) else {
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
            let Some(t) = self.txs.get_mut(&e.tx) else {
                continue;
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
        while let Some(o) = self.transmits.pop_front() {
            match o {
                Outgoing::Ready(t) => return Some(t),
                Outgoing::Trying(id) => {
                    let Some(t) = self.txs.get(&id) else {
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
        self.events.pop_front()
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
        match self.txs.get(&id) {
            Some(Transaction {
                side: Side::Server(s),
                ..
            }) if s.to_tag_matches(false, &ids.to_tag) => Some(id),
            _ => None,
        }
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
        let Some(t) = self.txs.get_mut(&id) else {
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
        let Some(t) = self.txs.get_mut(&id) else {
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
        if matches!(
            self.txs.get(&tx),
            Some(Transaction {
                side: Side::Server(_),
                ..
            })
        ) {
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
        let Some(t) = self.txs.remove(&id) else {
            return;
        };
        self.armed = self.armed.saturating_sub(t.timers.armed());
        tracing::debug!(parent: &t.span, report, "transaction terminated");
        match t.side {
            Side::Server(s) => {
                if self.servers.get(&s.key) == Some(&id) {
                    self.servers.remove(&s.key);
                }
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
        if report {
            self.events
                .push_back(TransactionEvent::Terminated { tx: id });
        }
    }

    /// Keep the head of the timer queue live so `poll_timeout` is exact.
    fn prune(&mut self) {
        let txs = &self.txs;
        self.queue.prune(self.armed, |e| is_live(txs, e));
    }
}

/// Whether a queued timer entry is still armed.
fn is_live(txs: &HashMap<TxId, Transaction>, e: &Entry) -> bool {
    txs.get(&e.tx)
        .is_some_and(|t| t.timers.get(e.kind) == Some(e.at))
}
