//! The checks behind voxgate's fuzz targets, shared with the plain `cargo test` that runs the
//! corpus (`controlplane/tests/fuzz_corpus.rs` includes this file as a module).
//!
//! What it owns: the properties every input must satisfy. A violated property panics, which
//! is what libFuzzer and `cargo test` both report as a failure:
//! - [`datagram`]: `Message::parse_datagram` on any bytes returns, every typed accessor
//!   returns, a parsed message prints to bytes that parse again and print identically, and the
//!   [`Endpoint`] takes the bytes (as a datagram, its retransmission, and a framed stream
//!   message) without panicking and only ever sends messages that parse.
//! - [`stream`]: `StreamFramer` cuts the same messages out of a stream whatever the read sizes,
//!   and each message it cuts goes through the same checks as a datagram (framed parsing and
//!   `Endpoint::handle_stream_message`).
//!
//! What it does not do: read files, keep state between inputs, or decide what a message
//! *means*; the torture tests (`controlplane/tests/torture.rs`) check outcomes.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use voxgate_controlplane::config::{LocalListener, MessageLimits};
use voxgate_controlplane::endpoint::{ConnId, Peer};
use voxgate_controlplane::sip::framing::{Framed, FramingError, StreamFramer};
use voxgate_controlplane::sip::{
    reason_phrase, unescape, ContactValue, HeaderName, Message, NameAddr, ResponseBuilder,
    Transport, Uri, Via,
};
use voxgate_controlplane::{Endpoint, EndpointConfig};

/// Every header name with a typed accessor or a list form, each one asked for.
const NAMES: &[HeaderName] = &[
    HeaderName::Accept,
    HeaderName::Allow,
    HeaderName::AllowEvents,
    HeaderName::Authorization,
    HeaderName::CallId,
    HeaderName::Contact,
    HeaderName::ContentEncoding,
    HeaderName::ContentLength,
    HeaderName::ContentType,
    HeaderName::CSeq,
    HeaderName::Event,
    HeaderName::Expires,
    HeaderName::From,
    HeaderName::MaxForwards,
    HeaderName::MinExpires,
    HeaderName::ProxyAuthenticate,
    HeaderName::ProxyAuthorization,
    HeaderName::ProxyRequire,
    HeaderName::RecordRoute,
    HeaderName::ReferTo,
    HeaderName::Require,
    HeaderName::Route,
    HeaderName::Supported,
    HeaderName::To,
    HeaderName::Unsupported,
    HeaderName::Via,
    HeaderName::WwwAuthenticate,
    HeaderName::Other,
];

const AUTH: &[HeaderName] = &[
    HeaderName::Authorization,
    HeaderName::ProxyAuthorization,
    HeaderName::WwwAuthenticate,
    HeaderName::ProxyAuthenticate,
];

const TOKEN_LISTS: &[HeaderName] = &[
    HeaderName::Supported,
    HeaderName::Require,
    HeaderName::ProxyRequire,
    HeaderName::Allow,
    HeaderName::Unsupported,
];

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5060))
}

fn remote() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 5060))
}

fn endpoint() -> Endpoint {
    let config = EndpointConfig {
        domain: "voxgate.test".into(),
        listeners: vec![
            LocalListener {
                transport: Transport::Udp,
                addr: local(),
            },
            LocalListener {
                transport: Transport::Tcp,
                addr: local(),
            },
        ],
        ..EndpointConfig::default()
    };
    Endpoint::new(config, 0x5eed)
}

/// One UDP datagram through the parser, every accessor, the printer and the endpoint.
/// `now` is the virtual time handed to the endpoint.
pub fn datagram(data: &[u8], now: Instant) {
    let limits = MessageLimits::default();
    if let Ok(msg) = Message::parse_datagram(Bytes::copy_from_slice(data), &limits) {
        exercise(&msg);
        round_trip(&msg);
        respond(&msg);
    }

    // Twice over UDP (the second is a retransmission for the transaction layer to absorb),
    // then once as if a stream framer had cut it from a TCP connection.
    let mut ep = endpoint();
    let udp = Peer {
        transport: Transport::Udp,
        remote: remote(),
        local: local(),
        conn: None,
    };
    for _ in 0..2 {
        ep.handle_datagram(now, udp, Bytes::copy_from_slice(data));
        drain(&mut ep, now);
    }
    let tcp = Peer {
        transport: Transport::Tcp,
        remote: remote(),
        local: local(),
        conn: Some(ConnId(7)),
    };
    ep.handle_stream_message(now, tcp, Bytes::copy_from_slice(data));
    drain(&mut ep, now);
}

/// A byte stream through the framer: `data[0]` seeds the read sizes, the rest is the stream.
/// The framer must cut the same messages and fail the same way whether the stream arrives in
/// one read or in many; every message it cuts is parsed, exercised and handed to an endpoint.
pub fn stream(data: &[u8], now: Instant) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let limits = MessageLimits::default();

    let whole = {
        let mut f = StreamFramer::new(limits);
        f.push(stream);
        let mut out = Cut::default();
        out.drain(&mut f);
        out
    };

    let chunked = {
        let mut f = StreamFramer::new(limits);
        let mut out = Cut::default();
        let mut rng = u32::from(seed) | 0x100;
        let mut rest = stream;
        while !rest.is_empty() && out.error.is_none() {
            // xorshift32: read sizes 1..=64, biased to small so boundaries fall everywhere.
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            let n = ((rng % 64) as usize + 1).min(rest.len());
            let (chunk, tail) = rest.split_at(n);
            f.push(chunk);
            out.drain(&mut f);
            rest = tail;
        }
        out
    };

    assert_eq!(
        whole.messages, chunked.messages,
        "framing depends on read sizes"
    );
    assert_eq!(
        whole.error, chunked.error,
        "framing error depends on read sizes"
    );

    let mut ep = endpoint();
    let peer = Peer {
        transport: Transport::Tcp,
        remote: remote(),
        local: local(),
        conn: Some(ConnId(1)),
    };
    for m in &whole.messages {
        if let Ok(msg) = Message::parse_framed(m.clone(), &limits) {
            exercise(&msg);
            round_trip(&msg);
            respond(&msg);
        }
        ep.handle_stream_message(now, peer, m.clone());
        drain(&mut ep, now);
    }
}

/// What a framer produced: the messages, and the kind of error that stopped it (keep-alives
/// are left out: a ping split across reads is documented to show up as a pong and a ping).
#[derive(Debug, Default)]
struct Cut {
    messages: Vec<Bytes>,
    /// The variant only, not the 513 head `TooLarge` carries (that depends on how much had
    /// arrived when the limit was crossed).
    error: Option<std::mem::Discriminant<FramingError>>,
}

impl Cut {
    fn drain(&mut self, f: &mut StreamFramer) {
        // Bounded: each step consumes input or stops; the bound only guards the fuzzer
        // against a framer that would loop forever on the same item.
        for _ in 0..=f.buffered() + 1 {
            match f.next() {
                Ok(Some(Framed::Message(m))) => self.messages.push(m),
                Ok(Some(Framed::Ping | Framed::Pong)) => {}
                Ok(None) => return,
                Err(e) => {
                    self.error = Some(std::mem::discriminant(&e));
                    return;
                }
            }
        }
        panic!("StreamFramer::next kept returning items without consuming input");
    }
}

/// Every typed accessor, and the values inside what they return.
fn exercise(msg: &Message) {
    let _ = msg.start_line();
    let _ = (msg.is_request(), msg.method(), msg.code(), msg.defect());
    let _ = (msg.body().len(), msg.raw().len());
    for h in msg.headers() {
        // A value may hold folded continuation lines, never a line break that starts a new
        // line: printed, that would be a different header section (or a smuggled header).
        let unfolded = h
            .value
            .windows(2)
            .position(|w| w[0] == b'\n' && !matches!(w[1], b' ' | b'\t'))
            .or_else(|| h.value.ends_with(b"\n").then(|| h.value.len() - 1));
        if let Some(at) = unfolded {
            panic!(
                "header value holds an unfolded line break at {at}: {:?}: {:?}",
                h.raw_name, h.value
            );
        }
        let _ = h.is_named("X-Fuzz");
        let _ = HeaderName::from_bytes(&h.raw_name);
    }
    if let Some(Ok(uri)) = msg.request_uri() {
        uri_parts(&uri);
    }
    for &name in NAMES {
        let _ = msg.first(name);
        let _ = msg.single(name);
        let _ = msg.values(name);
        if let Ok(routes) = msg.route_set(name) {
            routes.iter().for_each(name_addr);
        }
    }
    if let Ok(vias) = msg.vias() {
        vias.iter().for_each(via);
    }
    if let Ok(v) = msg.top_via() {
        via(&v);
    }
    for na in [msg.from(), msg.to()].iter().flatten() {
        name_addr(na);
    }
    let _ = msg.call_id();
    if let Ok(c) = msg.cseq() {
        let _ = (c.seq, c.method.as_bytes(), c.method.is_known());
    }
    let _ = (msg.max_forwards(), msg.content_length(), msg.expires());
    if let Ok(Some(ct)) = msg.content_type() {
        let _ = (ct.is("application", "sdp"), ct.params.len());
    }
    if let Ok(contacts) = msg.contacts() {
        for c in &contacts {
            if let ContactValue::Addr(a) = c {
                name_addr(a);
            }
        }
    }
    for &name in AUTH {
        if let Ok(creds) = msg.auth(name) {
            for c in &creds {
                let _ = c.is_digest();
                for p in ["username", "realm", "nonce", "uri", "response", "qop", "nc"] {
                    let _ = c.unquoted(p);
                }
            }
        }
    }
    for &name in TOKEN_LISTS {
        let _ = msg.tokens(name);
    }
}

fn via(v: &Via) {
    let _ = (v.branch(), v.rport(), v.received(), v.known_transport());
    let _ = (v.rfc3261_branch(), v.host.ip(), v.host.to_string(), v.port);
    let _ = v.params.iter().count();
}

fn name_addr(na: &NameAddr) {
    let _ = (na.tag(), na.display.as_ref(), na.params.len());
    uri_parts(&na.uri);
    // The raw URI must parse to what the name-addr holds.
    assert_eq!(
        Uri::parse(&na.uri_raw).as_ref(),
        Ok(&na.uri),
        "name-addr URI does not re-parse from its raw form"
    );
}

fn uri_parts(uri: &Uri) {
    match uri {
        Uri::Sip(s) => {
            if let Some(u) = &s.user {
                let _ = unescape(u);
            }
            let _ = (s.host.to_string(), s.host.ip(), s.port, s.secure);
            for p in ["transport", "lr", "maddr", "user"] {
                let _ = s.param(p);
            }
            let _ = s.headers.as_ref().map(|h| unescape(h));
        }
        Uri::Tel(t) => {
            let _ = (unescape(&t.number), t.params.len());
        }
        Uri::Other { scheme, rest } => {
            let _ = (scheme.len(), rest.len());
        }
    }
}

/// Print → parse → print is a fixed point, and nothing the first parse saw is lost.
fn round_trip(msg: &Message) {
    let printed = msg.to_bytes();
    // Printing may normalise (`a:b` → `a: b`, bare LF → CRLF) and so grow a message that was
    // at a limit; the second parse is about the printer, not the limits.
    let relaxed = MessageLimits {
        max_message_bytes: usize::MAX,
        max_header_bytes: usize::MAX,
        ..MessageLimits::default()
    };
    let again = match Message::parse_datagram(printed.clone(), &relaxed) {
        Ok(m) => m,
        Err(e) => panic!("printed message does not parse: {e}\n{printed:?}"),
    };
    let reprinted = again.to_bytes();
    if printed != reprinted {
        let at = printed
            .iter()
            .zip(reprinted.iter())
            .position(|(a, b)| a != b)
            .unwrap_or(printed.len().min(reprinted.len()));
        let around =
            |b: &Bytes| Bytes::copy_from_slice(&b[at.saturating_sub(60)..b.len().min(at + 60)]);
        panic!(
            "print → parse → print is not stable: differs at byte {at}\n first: {:?}\nsecond: {:?}\ninput printed as: {printed:?}",
            around(&printed),
            around(&reprinted),
        );
    }
    assert_eq!(msg.start_line(), again.start_line(), "start line changed");
    assert_eq!(
        msg.headers().len(),
        again.headers().len(),
        "header count changed"
    );
    for (a, b) in msg.headers().iter().zip(again.headers()) {
        assert_eq!(
            (a.name, &a.raw_name, &a.value),
            (b.name, &b.raw_name, &b.value)
        );
    }
    assert_eq!(msg.body(), again.body(), "body changed");
}

/// A response built for any request prints to a message that parses as a response.
fn respond(msg: &Message) {
    if !msg.is_request() {
        return;
    }
    for code in [100, 200, 400, 481, 501] {
        let r = ResponseBuilder::new(msg, code, reason_phrase(code), Some("fuzztag")).build();
        check_response(&r.to_bytes());
    }
}

fn check_response(payload: &Bytes) {
    let r = check_sent(payload);
    assert!(r.code().is_some(), "built a non-response: {payload:?}");
}

/// Everything voxgate sends must parse.
fn check_sent(payload: &Bytes) -> Message {
    let relaxed = MessageLimits {
        max_message_bytes: usize::MAX,
        max_header_bytes: usize::MAX,
        ..MessageLimits::default()
    };
    match Message::parse_datagram(payload.clone(), &relaxed) {
        Ok(m) => m,
        Err(e) => panic!("voxgate built an unparseable message ({e}): {payload:?}"),
    }
}

/// The driver contract: drain transmits and events, then run the timers that are due.
fn drain(ep: &mut Endpoint, now: Instant) {
    // Bounded: a few rounds of timers are enough to walk a transaction to its end.
    for _ in 0..16 {
        while let Some(t) = ep.poll_transmit() {
            check_sent(&t.payload);
        }
        while ep.poll_event().is_some() {}
        match ep.poll_timeout() {
            Some(at) => ep.handle_timeout(at.max(now)),
            None => break,
        }
    }
    let _ = ep.stats().dropped().count();
}
