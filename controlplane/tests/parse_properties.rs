//! Property tests of the parser: parse → print → parse is stable, typed values survive the
//! round trip, and no input makes the parser or the endpoint panic.

// Tests read the clock once, as a virtual epoch; nothing waits on it.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use bytes::Bytes;
use proptest::prelude::*;
use voxgate_controlplane::config::MessageLimits;
use voxgate_controlplane::endpoint::Peer;
use voxgate_controlplane::sip::{Message, Transport};
use voxgate_controlplane::{Endpoint, EndpointConfig};

const METHODS: &[&str] = &[
    "INVITE", "REGISTER", "OPTIONS", "BYE", "CANCEL", "ACK", "INFO", "X-FOO",
];

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.!%*_+`'~-]{0,12}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,8}){0,2}",
        (1u8..=254, 0u8..=255, 0u8..=255, 1u8..=254)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        (0u16..0xffff, 0u16..0xffff).prop_map(|(a, b)| format!("[2001:db8::{a:x}:{b:x}]")),
    ]
}

fn sip_uri() -> impl Strategy<Value = String> {
    (
        proptest::option::of("[a-zA-Z0-9_.!~*'()&=+$,;?/-]{1,10}|%[0-9A-F]{2}"),
        host(),
        proptest::option::of(1u16..65535),
        proptest::collection::vec("[a-zA-Z0-9][a-zA-Z0-9.!*_+`'~-]{0,12}", 0..3),
    )
        .prop_map(|(user, host, port, params)| {
            let mut s = String::from("sip:");
            if let Some(u) = user {
                s.push_str(&u);
                s.push('@');
            }
            s.push_str(&host);
            if let Some(p) = port {
                s.push_str(&format!(":{p}"));
            }
            for p in params {
                s.push(';');
                s.push_str(&p);
            }
            s
        })
}

/// Optional line folding and compact forms, as wsinv.dat uses them.
fn sep() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(" "), Just("  "), Just("\r\n "), Just("\r\n\t")]
}

#[derive(Clone)]
struct Generated {
    text: Vec<u8>,
}

impl std::fmt::Debug for Generated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.text))
    }
}

fn request() -> impl Strategy<Value = Generated> {
    (
        (
            proptest::sample::select(METHODS),
            sip_uri(),
            host(),
            token(),
            sip_uri(),
            sip_uri(),
        ),
        token(),
        0u32..=u32::MAX,
        0u8..=255,
        sep(),
        proptest::collection::vec((token(), "[ -~]{0,20}"), 0..4),
        proptest::bool::ANY,
        "[ -~]{0,40}",
    )
        .prop_map(
            |(
                (method, ruri, via_host, branch, from, to),
                callid,
                cseq,
                mf,
                sep,
                extra,
                compact,
                body,
            )| {
                let mut t = format!("{method} {ruri} SIP/2.0\r\n");
                let via = if compact { "v" } else { "Via" };
                t.push_str(&format!(
                    "{via}: SIP/2.0/UDP{sep}{via_host};branch=z9hG4bK{branch}\r\n"
                ));
                t.push_str(&format!("From: <{from}>;tag={callid}\r\n"));
                // RFC 3261 §20.10: a URI with ',', '?' or ';' must be in <> to stand in To.
                let to = if to.contains([',', '?', ';']) {
                    format!("<{to}>")
                } else {
                    to
                };
                t.push_str(&format!(
                    "{}:{sep}{to}\r\n",
                    if compact { "t" } else { "To" }
                ));
                t.push_str(&format!("Call-ID: {callid}@{via_host}\r\n"));
                t.push_str(&format!("CSeq: {cseq}{sep}{method}\r\n"));
                t.push_str(&format!("Max-Forwards: {mf}\r\n"));
                for (name, value) in extra {
                    t.push_str(&format!("X-{name}: {}\r\n", value.trim()));
                }
                t.push_str(&format!(
                    "{}: {}\r\n\r\n{body}",
                    if compact { "l" } else { "Content-Length" },
                    body.len()
                ));
                Generated {
                    text: t.into_bytes(),
                }
            },
        )
}

fn limits() -> MessageLimits {
    MessageLimits::default()
}

proptest! {
    #[test]
    fn print_is_a_fixed_point(g in request()) {
        let m = Message::parse_datagram(Bytes::from(g.text.clone()), &limits()).expect("generated messages parse");
        prop_assert!(m.defect().is_none(), "{:?}", m.defect());
        let printed = m.to_bytes();
        let again = Message::parse_datagram(printed.clone(), &limits()).expect("printed messages parse");
        prop_assert_eq!(again.to_bytes(), printed);
        prop_assert_eq!(again.cseq().ok(), m.cseq().ok());
        prop_assert_eq!(again.call_id().ok(), m.call_id().ok());
        prop_assert_eq!(again.top_via().ok(), m.top_via().ok());
        prop_assert_eq!(again.to().ok(), m.to().ok());
        prop_assert_eq!(again.from().ok(), m.from().ok());
        prop_assert_eq!(again.max_forwards().ok(), m.max_forwards().ok());
        prop_assert_eq!(again.body(), m.body());
        prop_assert!(m.top_via().is_ok() && m.cseq().is_ok() && m.from().is_ok() && m.to().is_ok());
    }

    #[test]
    fn mutated_messages_never_panic(g in request(), cuts in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = g.text.clone();
        for (at, b) in cuts {
            if bytes.is_empty() { break; }
            let at = at % bytes.len();
            bytes[at] = b;
        }
        let bytes = Bytes::from(bytes);
        if let Ok(m) = Message::parse_datagram(bytes.clone(), &limits()) {
            let _ = (m.vias(), m.from(), m.to(), m.call_id(), m.cseq(), m.max_forwards(), m.contacts(), m.content_type(), m.request_uri());
            let _ = Message::parse_datagram(m.to_bytes(), &limits());
        }
        let mut ep = Endpoint::new(EndpointConfig::default(), 1);
        let peer = Peer { transport: Transport::Udp, remote: "127.0.0.1:5070".parse().unwrap(), local: "127.0.0.1:5060".parse().unwrap(), conn: None };
        ep.handle_datagram(Instant::now(), peer, bytes);
        while ep.poll_transmit().is_some() {}
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Message::parse_datagram(Bytes::from(bytes), &limits());
    }
}
