//! The edge endpoint: every SIP message from the network enters here.
//!
//! In order: edge security on the source (block list, bans, flood limit) before any parsing;
//! parsing and validation, with the answers voxgate itself must give (OPTIONS to itself,
//! and 400/414/416/420/482/483/501/505 for requests it cannot take); the transaction layer,
//! which absorbs retransmissions; overload and per-source budgets (503); digest
//! authentication (401/407/403, the same for known and unknown users); REGISTER to the
//! registrar; NAT keep-alives to registered UDP contacts. Responses go back per RFC 3261
//! §18.2.2 and RFC 3581. Calls (the B2BUA) come with M5.
//!
//! It does not own sockets or connections: the driver passes each datagram or framed stream
//! message in with its [`Peer`] and sends what [`Endpoint::poll_transmit`] returns.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;

use crate::auth::DigestAuth;
use crate::config::EndpointConfig;
use crate::error::RequestError;
use crate::registrar::{Registrar, RegistrarEvent};
use crate::security::{
    Admission, Ban, EdgeSecurity, SecurityDrop, SecurityEvent, SourceVerdict, Trust,
};
use crate::sip::{
    reason_phrase, HeaderName, Host, Message, Method, ParseError, ResponseBuilder, Transport, Uri,
    Via,
};
use crate::stats::{DropReason, EndpointStats};
use crate::transaction::{ClientInput, ServerInput, TransactionEvent, Transactions, TxId};

mod alg;
mod keepalive;
mod registration;

/// A stream connection, as numbered by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub transport: Transport,
    pub remote: SocketAddr,
    /// The local address it arrived on (chooses the socket for the answer).
    pub local: SocketAddr,
    /// The connection for TCP/TLS.
    pub conn: Option<ConnId>,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub transport: Transport,
    pub destination: SocketAddr,
    /// Send from this local address (the listener the request came in on).
    pub local: SocketAddr,
    /// Send on this connection when it is still open (RFC 3261 §18.2.2 reuse).
    pub conn: Option<ConnId>,
    pub payload: Bytes,
}

/// Something the driver must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointEvent {
    /// Close the connection: its framing can no longer be trusted.
    CloseConnection(ConnId),
    /// A binding changed: the store writes or deletes it before the transmits that follow
    /// are sent (a 200 to a REGISTER must never outlive a crash unstored).
    Registrar(Box<RegistrarEvent>),
    /// A ban started or ended: the store keeps bans across restarts (SEC-08).
    Security(SecurityEvent),
}

/// The sans-IO SIP endpoint.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    rng: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<EndpointEvent>,
    stats: EndpointStats,
    transactions: Transactions,
    auth: DigestAuth,
    /// `config.users` by auth id: one hash lookup per authentication, whatever the number
    /// of extensions (a linear scan was most of a registration's CPU at 50,000).
    users_by_auth_id: std::collections::HashMap<Box<str>, usize>,
    registrar: Registrar,
    security: EdgeSecurity,
    /// Keep-alive OPTIONS in flight, by client transaction.
    keepalives: std::collections::HashMap<TxId, crate::registrar::Flow>,
    /// Keep-alives the registrar asked for, to send at the end of the current input.
    pending_keepalives: Vec<(crate::registrar::Flow, String, String)>,
    /// `(instant, unix seconds)` read together by the driver: digest nonces carry wall-clock
    /// time so they stay checkable across a restart.
    wall_anchor: Option<(Instant, u64)>,
    /// How full the driver's input queue is (0..=1), for overload decisions (SEC-15).
    queue_fill: f32,
    alg: alg::AlgDetector,
}

/// What the checks before parsing learned about where a message came from.
#[derive(Debug, Clone, Copy)]
struct Source {
    trust: Trust,
    /// The message came over a registered contact's own flow (SEC-17 budgets).
    registered_flow: bool,
}

/// Methods voxgate answers in an `Allow` header (FEATURES SIG-07).
pub const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, INFO, REFER, SUBSCRIBE, NOTIFY";
/// Option tags voxgate supports.
pub const SUPPORTED: &str = "path, outbound, replaces, timer";
/// Branch prefix of voxgate's own Via values: the RFC 3261 cookie plus a marker, so a request
/// that comes back carrying it is a loop (SIG-10).
pub const BRANCH_PREFIX: &str = "z9hG4bK-vx";

impl Endpoint {
    /// `seed` feeds tag and branch generation; the driver passes real randomness.
    pub fn new(config: EndpointConfig, seed: u64) -> Self {
        Self {
            rng: seed | 1,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: EndpointStats::default(),
            transactions: Transactions::new(config.timers),
            auth: digest_auth(&config),
            users_by_auth_id: index_users(&config.users),
            registrar: Registrar::new(config.registrar.clone()),
            security: EdgeSecurity::with_seed(config.security.clone(), seed.rotate_left(17)),
            keepalives: std::collections::HashMap::new(),
            pending_keepalives: Vec::new(),
            wall_anchor: None,
            queue_fill: 0.0,
            alg: alg::AlgDetector::default(),
            config,
        }
    }

    /// Tell the endpoint what wall-clock time (unix seconds) `at` is. The driver calls it at
    /// start; digest nonces need wall-clock time, everything else runs on `Instant`.
    pub fn set_wall_clock(&mut self, at: Instant, unix_secs: u64) {
        self.wall_anchor = Some((at, unix_secs));
        // A request captured before a restart must not be replayable after it.
        self.auth.forget_nonces_before(unix_secs);
    }

    /// How full the driver's input queue is (0..=1) for this batch (SEC-15).
    pub fn set_queue_fill(&mut self, fill: f32) {
        self.queue_fill = fill;
    }

    /// Load the bindings and bans the store kept; expired ones are dropped (and reported as
    /// events so the store prunes them).
    pub fn restore(
        &mut self,
        now: Instant,
        bindings: Vec<crate::registrar::Binding>,
        bans: Vec<Ban>,
    ) {
        self.registrar.restore(now, bindings);
        self.security.restore_bans(now, bans);
        self.drain_components();
    }

    /// The registrar's bindings, for the API.
    pub fn registrations(&self) -> impl Iterator<Item = &crate::registrar::Binding> {
        self.registrar.all()
    }

    /// Active bans, for the API.
    pub fn bans(&self) -> impl Iterator<Item = &Ban> {
        self.security.bans()
    }

    /// Lift a ban (operator action through the API). Returns whether there was one.
    pub fn unban(&mut self, ip: IpAddr) -> bool {
        let lifted = self.security.unban(ip);
        self.drain_components();
        lifted
    }

    /// Drop every binding of extension `aor` (its definition was deleted through the API;
    /// remove its user from the config first so it cannot register again). The `Unbound`
    /// events tell the store. Returns how many bindings were removed.
    pub fn unregister_aor(&mut self, aor: &str) -> usize {
        let removed = self.registrar.remove_aor(aor);
        self.drain_components();
        removed
    }

    fn is_registered_flow(&self, peer: Peer) -> bool {
        self.registrar.has_flow(&crate::registrar::Flow {
            transport: peer.transport,
            remote: peer.remote,
            local: peer.local,
            conn: peer.conn,
        })
    }

    /// Whether something still needs connection `conn`: a registered contact's flow runs
    /// over it (SEC-16 closes idle connections only when nothing is bound to them).
    pub fn connection_in_use(&self, conn: ConnId) -> bool {
        self.registrar.uses_connection(conn)
    }

    /// The driver closed connection `conn` (or lost it): bindings on it are gone.
    pub fn handle_connection_closed(&mut self, now: Instant, conn: ConnId) {
        self.registrar.handle_flow_closed(now, conn);
        self.drain_components();
    }

    fn now_unix(&self, now: Instant) -> u64 {
        match self.wall_anchor {
            Some((at, unix)) => unix + now.saturating_duration_since(at).as_secs(),
            None => 0,
        }
    }

    /// Move the components' events into the endpoint's queue and refresh the gauges.
    fn drain_components(&mut self) {
        while let Some(e) = self.registrar.poll_event() {
            match e {
                RegistrarEvent::KeepAlive { flow, aor, contact } => {
                    self.pending_keepalives.push((flow, aor, contact))
                }
                other => self
                    .events
                    .push_back(EndpointEvent::Registrar(Box::new(other))),
            }
        }
        while let Some(e) = self.security.poll_event() {
            self.events.push_back(EndpointEvent::Security(e));
        }
        self.stats.registrations_active = self.registrar.len() as u64;
        self.stats.aors_registered = self.registrar.registered_aors() as u64;
        self.stats.bans_active = self.security.bans().count() as u64;
        self.stats.transactions_active = self.transactions.len() as u64;
    }

    /// Apply a new configuration (after a reload). Transactions in progress keep going.
    pub fn set_config(&mut self, config: EndpointConfig) {
        self.transactions.set_timers(config.timers);
        if config.auth != self.config.auth || config.auth_secret != self.config.auth_secret {
            self.auth = digest_auth(&config);
        }
        if config.users != self.config.users {
            self.users_by_auth_id = index_users(&config.users);
        }
        self.registrar.set_config(config.registrar.clone());
        self.security.set_config(config.security.clone());
        self.config = config;
    }

    /// Replaces the networks merged from blocklist feeds (SEC-08); the binary fetches the
    /// feeds and calls this after every successful refresh.
    pub fn set_feed_blocks(&mut self, nets: impl IntoIterator<Item = crate::security::IpNet>) {
        self.security.set_feed_blocks(nets);
        self.stats.blocklist_entries = self.security.feed_blocks() as u64;
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// One UDP datagram.
    pub fn handle_datagram(&mut self, now: Instant, peer: Peer, data: Bytes) {
        let Some(source) = self.admit_source(now, peer) else {
            return;
        };
        if data.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
            // RFC 5626 §4.4.1 STUN-less keep-alives ("\r\n\r\n") and empty datagrams.
            self.stats.count_drop(DropReason::KeepAlive);
            return;
        }
        match Message::parse_datagram(data, &self.config.limits) {
            Ok(msg) => self.handle_message(now, peer, source, msg),
            Err(e) => self.count_parse_error(e),
        }
        self.after_input(now);
    }

    /// Listener ACL, block list, bans and flood limits, before any parsing (SEC-03,
    /// SEC-04, SEC-13, SEC-17).
    fn admit_source(&mut self, now: Instant, peer: Peer) -> Option<Source> {
        let ip = peer.remote.ip();
        if !self.security.check_listener(peer.transport, peer.local, ip) {
            self.stats.count_drop(DropReason::ListenerAcl);
            return None;
        }
        let registered_flow = self.is_registered_flow(peer);
        let source = |trust| {
            Some(Source {
                trust,
                registered_flow,
            })
        };
        match self.security.check_source_of(now, ip, registered_flow) {
            SourceVerdict::Trusted => source(Trust::Trusted),
            SourceVerdict::Untrusted => source(Trust::Untrusted),
            SourceVerdict::Drop(reason) => {
                self.stats.count_drop(security_drop(reason));
                if reason == SecurityDrop::Flood {
                    tracing::warn!(source = %peer.remote.ip(), "flood: source banned");
                }
                self.drain_components();
                None
            }
        }
    }

    /// Something only a rewriting SIP ALG would do came from `peer` (SIG-14).
    fn alg_sign(&mut self, now: Instant, peer: Peer, sign: alg::AlgSign) {
        self.stats.alg_suspected += 1;
        if self.alg.should_log(now, peer.remote.ip()) {
            tracing::warn!(
                source = %peer.remote,
                sign = sign.as_str(),
                "a SIP ALG on the path to this source seems to rewrite SIP messages; \
                 turn SIP ALG off in that router"
            );
        }
    }

    /// Work that follows every input: keep-alives asked for, events, gauges.
    fn after_input(&mut self, now: Instant) {
        self.drain_components();
        self.send_keepalives(now);
    }

    /// One message cut from a TCP/TLS stream by the framer.
    pub fn handle_stream_message(&mut self, now: Instant, peer: Peer, data: Bytes) {
        let Some(source) = self.admit_source(now, peer) else {
            return;
        };
        match Message::parse_framed(data, &self.config.limits) {
            Ok(msg) => self.handle_message(now, peer, source, msg),
            Err(e) => {
                self.count_parse_error(e);
                if let Some(conn) = peer.conn {
                    self.events.push_back(EndpointEvent::CloseConnection(conn));
                }
            }
        }
        self.after_input(now);
    }

    /// Run the timers that are due: transactions, binding expiry and keep-alives, bans.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.transactions.handle_timeout(now);
        self.drain_transaction_events(now);
        self.registrar.handle_timeout(now);
        self.security.handle_timeout(now);
        self.after_input(now);
    }

    fn drain_transaction_events(&mut self, now: Instant) {
        while let Some(event) = self.transactions.poll_event() {
            match event {
                TransactionEvent::Terminated { tx } => {
                    // A keep-alive that ended without an answer reaching us.
                    if let Some(flow) = self.keepalives.remove(&tx) {
                        self.keepalive_result(now, flow, false);
                    }
                }
                TransactionEvent::Timeout { tx, timer } => {
                    tracing::debug!(%tx, %timer, "transaction timed out");
                    if let Some(flow) = self.keepalives.remove(&tx) {
                        self.keepalive_result(now, flow, false);
                    }
                }
            }
        }
    }

    /// The next message to send. Every response sent is counted here, retransmissions and
    /// 100 Trying included, so `voxgate_sip_responses_total` is what went on the wire.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self
            .transmits
            .pop_front()
            .or_else(|| self.transactions.poll_transmit())?;
        if let Some(code) = status_code_of(&t.payload) {
            self.stats.count_response(code);
        }
        Some(t)
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        self.events.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.transactions.poll_timeout(),
            self.registrar.poll_timeout(),
            self.security.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn count_parse_error(&mut self, e: ParseError) {
        let reason = match e {
            ParseError::TooLarge { .. } => DropReason::TooLarge,
            ParseError::Empty => DropReason::KeepAlive,
            ParseError::StatusLine => DropReason::MalformedResponse,
            _ => DropReason::Malformed,
        };
        tracing::debug!(error = %e, "dropped unparseable message");
        self.stats.count_drop(reason);
    }

    fn handle_message(&mut self, now: Instant, peer: Peer, source: Source, msg: Message) {
        match msg.method().cloned() {
            Some(method) => {
                self.stats.count_request(&method, peer.transport);
                self.handle_request(now, peer, source, method, msg);
            }
            None => match self.transactions.handle_response(now, msg) {
                ClientInput::Response { tx, .. } => {
                    if let Some(flow) = self.keepalives.remove(&tx) {
                        self.keepalive_result(now, flow, true);
                    }
                }
                ClientInput::Absorbed { .. } => {}
                _ => self.stats.count_drop(DropReason::StrayResponse),
            },
        }
        self.drain_transaction_events(now);
    }

    fn handle_request(
        &mut self,
        now: Instant,
        peer: Peer,
        source: Source,
        method: Method,
        msg: Message,
    ) {
        let trust = source.trust;
        // Without any Via nobody could match an answer. A Via that is there but malformed
        // (RFC 4475 badinv01, badvers) still gets its 400/505, sent to the packet's source.
        if msg.first(HeaderName::Via).is_none() {
            self.stats.count_drop(DropReason::Malformed);
            return;
        }
        let via = msg.top_via().ok();
        let Some(remote) = self.response_destination(peer, via.as_ref()) else {
            self.stats.count_drop(DropReason::Unroutable);
            return;
        };
        if trust == Trust::Untrusted {
            let scanner = msg
                .first(HeaderName::UserAgent)
                .is_some_and(|ua| self.security.check_user_agent(&ua.value));
            if scanner {
                self.stats.count_drop(DropReason::Scanner);
                return;
            }
        }
        if peer.transport == Transport::Udp
            && msg.defect() == Some(crate::sip::Defect::ContentLengthExceeds)
        {
            self.alg_sign(now, peer, alg::AlgSign::BodyLength);
        }
        let reply_to = Peer { remote, ..peer };
        let mut msg = msg;
        if let Some(via) = &via {
            stamp_received(&mut msg, via, peer.remote);
        }
        // Retransmissions are absorbed before any work is done on them. A request whose
        // transaction key cannot be read (no CSeq, broken Via) is answered statelessly.
        let (tx, msg) = match self.transactions.handle_request(now, reply_to, msg.clone()) {
            Ok(ServerInput::New { tx, request }) => (Some(tx), request),
            Ok(ServerInput::Absorbed { .. }) => return,
            // No dialogs exist yet, so an ACK for a 2xx has nobody to go to.
            Ok(ServerInput::AckFor2xx { .. } | ServerInput::StrayAck { .. }) => {
                self.stats.count_drop(DropReason::StrayAck);
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "request cannot start a transaction");
                (None, msg)
            }
        };
        if method == Method::Ack {
            // An ACK is never answered (RFC 3261 §17.2.1).
            self.stats.count_drop(DropReason::StrayAck);
            return;
        }
        // SEC-17: a registered phone's own flow is trusted for budgets and overload (not for
        // authentication: its calls are still challenged).
        let budget_trust = if source.registered_flow {
            Trust::Trusted
        } else {
            trust
        };
        let (tx, response) =
            match self.admit_new(now, peer, budget_trust, &method, &msg, tx.is_some()) {
                // SEC-15: the 503 is stateless, so an overload keeps no state per rejected
                // request; a retransmission is simply turned away again.
                Some(busy) => {
                    if let Some(tx) = tx {
                        self.transactions.discard(tx);
                    }
                    (None, busy)
                }
                None => {
                    let is_invite = method == Method::Invite;
                    let response = match self.validate(&msg, &method) {
                        Ok(target) => self.answer(now, peer, trust, method, target, &msg),
                        Err(err) => self.rejection(&msg, &err),
                    };
                    // A digest challenge to a non-INVITE is sent statelessly too (RFC 3261
                    // §8.2.7), as Kamailio's and most registrars' are: a retransmitted
                    // request just gets a fresh challenge. Half of every registration's
                    // transactions, and the larger half, then keep no state for Timer J's
                    // 32 s. An INVITE's challenge stays in its transaction, which absorbs
                    // the ACK and matches a CANCEL.
                    match (tx, response.code()) {
                        (Some(tx), Some(401 | 407)) if !is_invite => {
                            self.transactions.discard(tx);
                            (None, response)
                        }
                        (tx, _) => (tx, response),
                    }
                }
            };
        match tx {
            Some(tx) => {
                if let Err(e) = self.transactions.respond(now, tx, response) {
                    tracing::warn!(error = %e, "response refused by the transaction layer");
                }
            }
            None => self.transmits.push_back(Transmit {
                transport: peer.transport,
                destination: remote,
                local: peer.local,
                conn: peer.conn,
                payload: response.to_bytes(),
            }),
        }
    }

    /// Checks every request passes before anything acts on it, in the order a peer would
    /// find most useful to hear about.
    fn validate(&self, msg: &Message, method: &Method) -> Result<Target, RequestError> {
        let line = msg.request_line().ok_or(RequestError::UnknownMethod)?;
        if let Some(d) = msg.defect() {
            return Err(d.into());
        }
        if &line.version[..] != b"SIP/2.0" {
            return Err(RequestError::Version);
        }
        if line.uri.len() > self.config.limits.max_request_uri_bytes {
            return Err(RequestError::UriTooLong);
        }
        // Headers every request needs (RFC 3261 §8.1.1).
        let vias = msg.vias()?;
        if vias.len() > self.config.limits.max_vias {
            return Err(RequestError::TooManyVias);
        }
        msg.to()?;
        msg.from()?;
        msg.call_id()?;
        let cseq = msg.cseq()?;
        let max_forwards = msg.max_forwards()?;
        msg.content_length()?;
        msg.content_type()?;
        msg.contacts()?;
        msg.tokens(HeaderName::Require)?;
        msg.tokens(HeaderName::ProxyRequire)?;
        if cseq.method != *method {
            // RFC 4475 §3.1.2.18: for an unknown method, 501 is the better answer.
            return Err(if method.is_known() {
                RequestError::CSeqMismatch
            } else {
                RequestError::UnknownMethod
            });
        }
        let uri = match msg.request_uri() {
            Some(Ok(u)) => u,
            Some(Err(e)) => return Err(RequestError::Uri(e)),
            None => return Err(RequestError::UnknownMethod),
        };
        let target = match &uri {
            Uri::Sip(s) => {
                if s.headers.is_some() {
                    return Err(RequestError::UriHeaders);
                }
                if self.is_local_host(&s.host, s.port) && s.user.is_none() {
                    Target::Myself
                } else {
                    Target::User
                }
            }
            Uri::Tel(_) => Target::User,
            Uri::Other { .. } => return Err(RequestError::UnsupportedScheme),
        };
        if !method.is_known() {
            return Err(RequestError::UnknownMethod);
        }
        if self.has_own_via(&vias) {
            return Err(RequestError::Loop);
        }
        if target == Target::User && max_forwards == Some(0) {
            return Err(RequestError::TooManyHops);
        }
        let unsupported: Vec<Bytes> = msg
            .tokens(HeaderName::Require)?
            .into_iter()
            .filter(|t| {
                !SUPPORTED
                    .split(", ")
                    .any(|s| s.as_bytes().eq_ignore_ascii_case(t))
            })
            .collect();
        if !unsupported.is_empty() && *method != Method::Cancel {
            return Err(RequestError::BadExtension { unsupported });
        }
        if *method == Method::Invite {
            check_session_description(msg)?;
        }
        Ok(target)
    }

    fn is_local_host(&self, host: &Host, port: Option<u16>) -> bool {
        let c = &self.config;
        match host {
            Host::Domain(d) => {
                let d = std::str::from_utf8(d).unwrap_or("");
                d.eq_ignore_ascii_case(&c.domain)
                    || c.aliases.iter().any(|a| a.eq_ignore_ascii_case(d))
            }
            Host::Ip(ip) => {
                c.listeners.iter().any(|l| {
                    (l.addr.ip() == *ip || l.addr.ip().is_unspecified())
                        && port.is_none_or(|p| p == l.addr.port())
                }) || c
                    .aliases
                    .iter()
                    .any(|a| a.parse::<IpAddr>().ok() == Some(*ip))
            }
        }
    }

    /// A Via that voxgate put there (its branch marker and one of its listeners) means the
    /// request came back to it.
    fn has_own_via(&self, vias: &[crate::sip::Via]) -> bool {
        vias.iter().any(|v| {
            v.branch()
                .is_some_and(|b| b.starts_with(BRANCH_PREFIX.as_bytes()))
                && self.is_local_host(&v.host, v.port)
        })
    }

    /// The answer to a valid request.
    fn answer(
        &mut self,
        now: Instant,
        peer: Peer,
        trust: Trust,
        method: Method,
        target: Target,
        msg: &Message,
    ) -> Message {
        match (&method, target) {
            (Method::Register, _) => self.register(now, peer, msg),
            (Method::Options, Target::Myself) => self
                .response(msg, 200)
                .header(HeaderName::Allow, ALLOW)
                .header(HeaderName::Accept, "application/sdp")
                .header(HeaderName::Supported, SUPPORTED)
                .build(),
            (Method::Cancel, _) => self.answer_cancel(msg),
            // No dialogs exist yet (the B2BUA is M5): in-dialog requests and requests that
            // only make sense inside one have nothing to match (RFC 3261 §12.2.2, §15.1.2).
            (m, _) if is_dialog_bound(m, msg) => self.response(msg, 481).build(),
            // SEC-14: a request that would reach a user is challenged, whoever the user is
            // (never a 404 that tells a scanner which extensions exist).
            (
                Method::Invite
                | Method::Subscribe
                | Method::Message
                | Method::Refer
                | Method::Publish,
                _,
            ) if trust == Trust::Untrusted => {
                match self.authenticate(now, peer, msg, HeaderName::ProxyAuthorization) {
                    Ok(_user) => self.no_route(msg),
                    Err(challenge_or_refusal) => *challenge_or_refusal,
                }
            }
            _ => self.no_route(msg),
        }
    }

    /// Later milestones route calls; until then nothing behind voxgate can take them.
    fn no_route(&mut self, msg: &Message) -> Message {
        self.response(msg, 480)
            .raw_header("Warning", "399 voxgate \"No route for this request\"")
            .build()
    }

    /// SEC-15 overload and the per-source transaction budget, for requests that start
    /// something new. `Some(response)` when the request is turned away with a 503.
    fn admit_new(
        &mut self,
        now: Instant,
        peer: Peer,
        trust: Trust,
        method: &Method,
        msg: &Message,
        new_transaction: bool,
    ) -> Option<Message> {
        if !new_transaction || matches!(method, Method::Ack | Method::Cancel) {
            return None;
        }
        let in_dialog = msg.to().is_ok_and(|t| t.tag().is_some());
        let retry_after = if trust == Trust::Untrusted
            && !in_dialog
            && !self.security.admit_transaction(now, peer.remote.ip())
        {
            self.stats.count_drop(DropReason::RateLimited);
            Some(5)
        } else {
            match self
                .security
                .admit_new_request(now, method, in_dialog, trust, self.queue_fill)
            {
                Admission::Admitted => None,
                Admission::Reject503 {
                    retry_after_secs,
                    reason,
                } => {
                    self.stats.overload_rejections += 1;
                    tracing::debug!(?reason, "overload: new request turned away");
                    Some(retry_after_secs)
                }
            }
        }?;
        Some(
            self.response(msg, 503)
                .header(HeaderName::RetryAfter, retry_after.to_string())
                .build(),
        )
    }

    /// RFC 3261 §9.2: a CANCEL that matches an INVITE transaction gets 200, one that
    /// matches nothing gets 481. Every INVITE is finally answered at once until the B2BUA
    /// (M5) keeps calls ringing, so there is never a pending INVITE to end with 487 yet.
    fn answer_cancel(&mut self, cancel: &Message) -> Message {
        match self.transactions.find_invite_for_cancel(cancel) {
            Some(_) => self.response(cancel, 200).build(),
            None => self.response(cancel, 481).build(),
        }
    }

    /// The rejection of an invalid request, with the headers that explain it.
    fn rejection(&mut self, msg: &Message, err: &RequestError) -> Message {
        let (code, reason) = err.status();
        tracing::debug!(code, %reason, "rejecting request");
        let mut b = ResponseBuilder::new(msg, code, reason, Some(&self.new_tag()));
        b = b.header(HeaderName::Server, self.config.user_agent.clone());
        match err {
            RequestError::UnknownMethod => b = b.header(HeaderName::Allow, ALLOW),
            RequestError::BadExtension { unsupported } => {
                let list: Vec<&[u8]> = unsupported.iter().map(|t| &t[..]).collect();
                b = b.header(HeaderName::Unsupported, Bytes::from(list.join(&b", "[..])));
            }
            RequestError::UnsupportedMediaType => {
                b = b.header(HeaderName::Accept, "application/sdp")
            }
            _ => {}
        }
        b.build()
    }

    fn response(&mut self, msg: &Message, code: u16) -> ResponseBuilder {
        let tag = self.new_tag();
        ResponseBuilder::new(msg, code, reason_phrase(code), Some(&tag))
            .header(HeaderName::Server, self.config.user_agent.clone())
    }

    /// Where a response goes: RFC 3261 §18.2.2 and RFC 3581; over streams, the connection
    /// the request came on.
    fn response_destination(&self, peer: Peer, via: Option<&Via>) -> Option<SocketAddr> {
        if peer.transport.is_reliable() {
            return Some(peer.remote);
        }
        let via = match via {
            Some(v) if v.rport().is_none() && !self.config.force_rport => v,
            _ => return Some(peer.remote),
        };
        // RFC 3261 §18.2.2: the received address (the source) and the sent-by port. Never a
        // broadcast or unspecified address taken from a Via (RFC 4475 §3.3.10).
        let ip = peer.remote.ip();
        let port = via.port.unwrap_or(5060);
        match ip {
            IpAddr::V4(v4) if v4.is_broadcast() || v4.is_unspecified() => None,
            _ => Some(SocketAddr::new(ip, port)),
        }
    }

    /// A fresh tag or branch suffix: 64 random bits in hex (splitmix64 over the seed).
    fn new_tag(&mut self) -> String {
        self.next_random_hex()
    }

    fn next_random_hex(&mut self) -> String {
        format!("{:016x}", self.next_random())
    }

    /// splitmix64 over the seed: tags, branches and nonce salt need uniqueness, not secrecy.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// RFC 3261 §18.2.1 and RFC 3581 §4: note where the request really came from in its top
/// Via, so responses (which copy the Via) tell the sender what voxgate saw: `received` when
/// the sent-by host is not the source address, and the source port in an empty `rport`.
fn stamp_received(msg: &mut Message, via: &Via, source: SocketAddr) {
    let wants_rport = matches!(via.rport(), Some(None));
    let host_differs = via.host.ip() != Some(source.ip());
    if !wants_rport && !host_differs {
        return;
    }
    use std::fmt::Write as _;
    // One buffer, sized once: this runs for nearly every request from behind a NAT.
    let mut value =
        String::with_capacity(msg.first(HeaderName::Via).map_or(64, |h| h.value.len()) + 48);
    let _ = write!(
        value,
        "SIP/2.0/{} {}",
        String::from_utf8_lossy(&via.transport),
        via.host
    );
    if let Some(port) = via.port {
        let _ = write!(value, ":{port}");
    }
    for p in via.params.iter() {
        let name = String::from_utf8_lossy(&p.name);
        if name.eq_ignore_ascii_case("received") {
            continue;
        }
        if name.eq_ignore_ascii_case("rport") {
            let _ = write!(value, ";rport={}", source.port());
            continue;
        }
        value.push(';');
        value.push_str(&name);
        if let Some(v) = &p.value {
            value.push('=');
            value.push_str(&String::from_utf8_lossy(v));
        }
    }
    let _ = match source.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => write!(value, ";received={v4}"),
            None => write!(value, ";received={v6}"),
        },
        IpAddr::V4(v4) => write!(value, ";received={v4}"),
    };
    replace_top_via(msg, Bytes::from(value));
}

/// Replace the first Via value, keeping any others that share its header field.
fn replace_top_via(msg: &mut Message, top: Bytes) {
    let Some(header) = msg
        .headers_mut()
        .iter_mut()
        .find(|h| h.name == HeaderName::Via)
    else {
        return;
    };
    let values = crate::sip::split_list(&header.value);
    let mut joined = top.to_vec();
    for rest in values.iter().skip(1) {
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(rest);
    }
    header.value = Bytes::from(joined);
}

fn digest_auth(config: &EndpointConfig) -> DigestAuth {
    DigestAuth::new(config.auth.clone(), config.auth_secret).unwrap_or_else(|e| {
        // The binary validates the digest settings; a library caller that gets them wrong
        // still gets a working endpoint with the defaults.
        tracing::error!(error = %e, "invalid digest settings; using the defaults");
        let fallback = crate::auth::DigestConfig {
            realm: config.domain.clone(),
            ..Default::default()
        };
        DigestAuth::new(fallback.clone(), config.auth_secret)
            .or_else(|_| DigestAuth::new(crate::auth::DigestConfig::default(), config.auth_secret))
            .expect("the default digest configuration is valid (a unit test checks it)")
    })
}

/// Auth id → position in `users`. Auth ids are unique (the binary's config check refuses
/// duplicates); should two collide anyway, the first keeps the name, as a scan would.
fn index_users(users: &[crate::config::User]) -> std::collections::HashMap<Box<str>, usize> {
    let mut index = std::collections::HashMap::with_capacity(users.len());
    for (i, u) in users.iter().enumerate() {
        index.entry(u.auth_id.as_str().into()).or_insert(i);
    }
    index
}

fn security_drop(reason: SecurityDrop) -> DropReason {
    match reason {
        SecurityDrop::Blocked => DropReason::Blocked,
        SecurityDrop::Banned => DropReason::Banned,
        SecurityDrop::Flood => DropReason::Flood,
        SecurityDrop::Scanner => DropReason::Scanner,
        SecurityDrop::RateLimited => DropReason::RateLimited,
        SecurityDrop::ListenerAcl => DropReason::ListenerAcl,
    }
}

/// The status code of a serialised response (`SIP/2.0 NNN ...`), without parsing it.
fn status_code_of(payload: &[u8]) -> Option<u16> {
    let code = payload.strip_prefix(b"SIP/2.0 ")?.get(..3)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

fn is_dialog_bound(method: &Method, msg: &Message) -> bool {
    let in_dialog = msg.to().is_ok_and(|t| t.tag().is_some());
    matches!(
        method,
        Method::Bye | Method::Cancel | Method::Prack | Method::Update | Method::Info
    ) || (in_dialog && !matches!(method, Method::Options))
}

/// An INVITE carries SDP (or a multipart body that may hold it), and whoever sends one must
/// accept SDP in the answer (RFC 3261 §8.2.3, RFC 4475 §3.3.6 and §3.3.15).
fn check_session_description(msg: &Message) -> Result<(), RequestError> {
    if !msg.body().is_empty() {
        let ct = msg.content_type()?;
        let ok = ct.as_ref().is_none_or(|ct| {
            ct.is("application", "sdp") || ct.mime_type.eq_ignore_ascii_case(b"multipart")
        });
        if !ok {
            return Err(RequestError::UnsupportedMediaType);
        }
    }
    let accept = msg.values(HeaderName::Accept);
    if !accept.is_empty() {
        let takes_sdp = accept.iter().any(|a| {
            let range = a.split(|b| *b == b';').next().unwrap_or(&[]);
            let range = crate::sip::trim_lws(range);
            [&b"application/sdp"[..], b"application/*", b"*/*"]
                .iter()
                .any(|m| m.eq_ignore_ascii_case(range))
        });
        if !takes_sdp {
            return Err(RequestError::NotAcceptable);
        }
    }
    Ok(())
}

/// Who a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// voxgate itself (no user part, one of its names or addresses).
    Myself,
    /// A user or number behind voxgate.
    User,
}
