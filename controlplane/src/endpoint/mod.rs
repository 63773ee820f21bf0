//! The edge endpoint: every SIP message from the network enters here.
//!
//! It parses, validates and counts; answers what voxgate itself must answer (OPTIONS to
//! itself, and 400/414/416/420/482/483/501/505 for requests it cannot take); and routes
//! responses back per RFC 3261 §18.2.2 and RFC 3581. Later milestones hand validated
//! requests on to the registrar and the B2BUA.
//!
//! It does not own sockets or connections: the driver passes each datagram or framed stream
//! message in with its [`Peer`] and sends what [`Endpoint::poll_transmit`] returns.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;

use crate::config::EndpointConfig;
use crate::error::RequestError;
use crate::sip::{
    reason_phrase, HeaderName, Host, Message, Method, ParseError, ResponseBuilder, Transport, Uri,
    Via,
};
use crate::stats::{DropReason, EndpointStats};
use crate::transaction::{ClientInput, ServerInput, TransactionEvent, Transactions};

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
            config,
        }
    }

    /// Apply a new configuration (after a reload). Transactions in progress keep going.
    pub fn set_config(&mut self, config: EndpointConfig) {
        self.transactions.set_timers(config.timers);
        self.config = config;
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// One UDP datagram.
    pub fn handle_datagram(&mut self, now: Instant, peer: Peer, data: Bytes) {
        if data.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
            // RFC 5626 §4.4.1 STUN-less keep-alives ("\r\n\r\n") and empty datagrams.
            self.stats.count_drop(DropReason::KeepAlive);
            return;
        }
        match Message::parse_datagram(data, &self.config.limits) {
            Ok(msg) => self.handle_message(now, peer, msg),
            Err(e) => self.count_parse_error(e),
        }
    }

    /// One message cut from a TCP/TLS stream by the framer.
    pub fn handle_stream_message(&mut self, now: Instant, peer: Peer, data: Bytes) {
        match Message::parse_framed(data, &self.config.limits) {
            Ok(msg) => self.handle_message(now, peer, msg),
            Err(e) => {
                self.count_parse_error(e);
                if let Some(conn) = peer.conn {
                    self.events.push_back(EndpointEvent::CloseConnection(conn));
                }
            }
        }
    }

    /// Timers: nothing runs on timers yet beyond transactions (added with the transaction
    /// layer).
    /// Run the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.transactions.handle_timeout(now);
        while let Some(event) = self.transactions.poll_event() {
            match event {
                TransactionEvent::Terminated { .. } => {}
                TransactionEvent::Timeout { tx, timer } => {
                    tracing::debug!(%tx, %timer, "transaction timed out");
                }
            }
        }
        self.stats.transactions_active = self.transactions.len() as u64;
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
        self.transactions.poll_timeout()
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

    fn handle_message(&mut self, now: Instant, peer: Peer, msg: Message) {
        match msg.method().cloned() {
            Some(method) => {
                self.stats.count_request(&method, peer.transport);
                self.handle_request(now, peer, method, msg);
            }
            None => match self.transactions.handle_response(now, msg) {
                ClientInput::Response { .. } | ClientInput::Absorbed { .. } => {}
                // voxgate sends no requests of its own before M3: nothing can match.
                _ => self.stats.count_drop(DropReason::StrayResponse),
            },
        }
        self.stats.transactions_active = self.transactions.len() as u64;
    }

    fn handle_request(&mut self, now: Instant, peer: Peer, method: Method, msg: Message) {
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
        let response = match self.validate(&msg, &method) {
            Ok(target) => self.answer(method, target, &msg),
            Err(err) => self.rejection(&msg, &err),
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
        msg.vias()?;
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
        if self.has_own_via(msg) {
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
    fn has_own_via(&self, msg: &Message) -> bool {
        msg.vias().unwrap_or_default().iter().any(|v| {
            v.branch()
                .is_some_and(|b| b.starts_with(BRANCH_PREFIX.as_bytes()))
                && self.is_local_host(&v.host, v.port)
        })
    }

    /// The answer to a valid request.
    fn answer(&mut self, method: Method, target: Target, msg: &Message) -> Message {
        match (&method, target) {
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
            // Later milestones route these; until then nothing behind voxgate can take them.
            _ => self
                .response(msg, 480)
                .raw_header("Warning", "399 voxgate \"No route for this request\"")
                .build(),
        }
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
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        format!("{:016x}", z ^ (z >> 31))
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
    let mut value = format!(
        "SIP/2.0/{} {}",
        String::from_utf8_lossy(&via.transport),
        via.host
    );
    if let Some(port) = via.port {
        value.push_str(&format!(":{port}"));
    }
    for p in via.params.iter() {
        let name = String::from_utf8_lossy(&p.name);
        if name.eq_ignore_ascii_case("received") {
            continue;
        }
        if name.eq_ignore_ascii_case("rport") {
            value.push_str(&format!(";rport={}", source.port()));
            continue;
        }
        value.push(';');
        value.push_str(&name);
        if let Some(v) = &p.value {
            value.push('=');
            value.push_str(&String::from_utf8_lossy(v));
        }
    }
    let received = match source.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or_else(|| v6.to_string(), |v4| v4.to_string()),
        IpAddr::V4(v4) => v4.to_string(),
    };
    value.push_str(&format!(";received={received}"));
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
