//! RFC 4475 and RFC 5118 torture messages through the parser and the sans-IO endpoint.
//!
//! Each file is fed as one UDP datagram, as both RFCs say the messages arrived. The expected
//! outcomes follow the README next to the files in `tests/data/`.

// The test reads the clock once, as a virtual epoch; nothing waits on it.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use voxgate_controlplane::config::{LocalListener, MessageLimits};
use voxgate_controlplane::endpoint::Peer;
use voxgate_controlplane::sip::{
    unescape, ContactValue, HeaderName, Host, Message, Transport, Uri,
};
use voxgate_controlplane::{Endpoint, EndpointConfig};

fn data(rel: &str) -> Bytes {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(rel);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn parse(rel: &str) -> Message {
    Message::parse_datagram(data(rel), &MessageLimits::default())
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

const LOCAL: &str = "127.0.0.1:5060";

fn endpoint() -> Endpoint {
    let local: SocketAddr = LOCAL.parse().unwrap();
    let config = EndpointConfig {
        domain: "voxgate.test".into(),
        listeners: vec![LocalListener {
            transport: Transport::Udp,
            addr: local,
        }],
        ..EndpointConfig::default()
    };
    Endpoint::new(config, 7)
}

/// Feed one datagram; return what was sent back, in order.
fn answer(ep: &mut Endpoint, bytes: Bytes) -> Vec<(u16, String, Message)> {
    let peer = Peer {
        transport: Transport::Udp,
        remote: "127.0.0.1:40000".parse().unwrap(),
        local: LOCAL.parse().unwrap(),
        conn: None,
    };
    ep.handle_datagram(Instant::now(), peer, bytes);
    let mut out = Vec::new();
    while let Some(t) = ep.poll_transmit() {
        assert_eq!(
            t.destination, peer.remote,
            "answers go back to the source (force_rport)"
        );
        let m = Message::parse_datagram(t.payload, &MessageLimits::default())
            .expect("own output parses");
        let s = m.status_line().expect("a response").clone();
        out.push((s.code, String::from_utf8_lossy(&s.reason).into_owned(), m));
    }
    out
}

/// `None` = silence. Requests that would reach a user are challenged first (SEC-14):
/// 401 for REGISTER, 407 for the rest.
const EXPECTED: &[(&str, Option<u16>)] = &[
    // A To tag makes it a re-INVITE; no dialog exists, so 481 (RFC 3261 §12.2.2).
    ("rfc4475/wsinv.dat", Some(481)),
    ("rfc4475/intmeth.dat", Some(501)),
    ("rfc4475/esc01.dat", Some(407)),
    ("rfc4475/escnull.dat", Some(401)),
    ("rfc4475/esc02.dat", Some(501)),
    ("rfc4475/lwsdisp.dat", Some(480)),
    ("rfc4475/longreq.dat", Some(407)),
    ("rfc4475/dblreq.dat", Some(401)),
    ("rfc4475/semiuri.dat", Some(480)),
    ("rfc4475/transports.dat", Some(480)),
    ("rfc4475/mpart01.dat", Some(407)),
    ("rfc4475/unreason.dat", None),
    ("rfc4475/noreason.dat", None),
    ("rfc4475/badinv01.dat", Some(400)),
    ("rfc4475/clerr.dat", Some(400)),
    ("rfc4475/ncl.dat", Some(400)),
    ("rfc4475/scalar02.dat", Some(400)),
    ("rfc4475/scalarlg.dat", None),
    ("rfc4475/quotbal.dat", Some(400)),
    ("rfc4475/ltgtruri.dat", Some(400)),
    ("rfc4475/lwsruri.dat", Some(400)),
    ("rfc4475/lwsstart.dat", Some(400)),
    ("rfc4475/trws.dat", Some(400)),
    ("rfc4475/escruri.dat", Some(400)),
    ("rfc4475/baddate.dat", Some(407)),
    ("rfc4475/regbadct.dat", Some(400)),
    ("rfc4475/badaspec.dat", Some(400)),
    ("rfc4475/baddn.dat", Some(400)),
    ("rfc4475/badvers.dat", Some(505)),
    ("rfc4475/mismatch01.dat", Some(400)),
    ("rfc4475/mismatch02.dat", Some(501)),
    ("rfc4475/bigcode.dat", None),
    ("rfc4475/badbranch.dat", Some(480)),
    ("rfc4475/insuf.dat", Some(400)),
    ("rfc4475/unkscm.dat", Some(416)),
    ("rfc4475/novelsc.dat", Some(416)),
    ("rfc4475/unksm2.dat", Some(401)),
    ("rfc4475/bext01.dat", Some(420)),
    ("rfc4475/invut.dat", Some(415)),
    ("rfc4475/regaut01.dat", Some(401)),
    ("rfc4475/multi01.dat", Some(400)),
    ("rfc4475/mcl01.dat", Some(400)),
    ("rfc4475/bcast.dat", None),
    ("rfc4475/zeromf.dat", Some(483)),
    ("rfc4475/cparam01.dat", Some(401)),
    ("rfc4475/cparam02.dat", Some(401)),
    ("rfc4475/regescrt.dat", Some(401)),
    ("rfc4475/sdp01.dat", Some(406)),
    ("rfc4475/inv2543.dat", Some(407)),
    ("rfc5118/wire/ipv6-good.dat", Some(401)),
    ("rfc5118/wire/ipv6-bad.dat", Some(400)),
    ("rfc5118/wire/port-ambiguous.dat", Some(401)),
    ("rfc5118/wire/port-unambiguous.dat", Some(401)),
    ("rfc5118/wire/via-received-param-with-delim.dat", Some(481)),
    ("rfc5118/wire/via-received-param-no-delim.dat", Some(480)),
    ("rfc5118/wire/ipv6-in-sdp.dat", Some(407)),
    ("rfc5118/wire/mult-ip-in-header.dat", Some(481)),
    ("rfc5118/wire/mult-ip-in-sdp.dat", Some(407)),
    ("rfc5118/wire/ipv4-mapped-ipv6.dat", Some(407)),
    ("rfc5118/wire/ipv6-bug-abnf-3-colons.dat", Some(480)),
    ("rfc5118/wire/ipv6-correct-abnf-2-colons.dat", Some(480)),
];

#[test]
fn every_torture_file_is_in_the_table() {
    for dir in ["rfc4475", "rfc5118/wire"] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data")
            .join(dir);
        for entry in std::fs::read_dir(path).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".dat") {
                let rel = format!("{dir}/{name}");
                assert!(
                    EXPECTED.iter().any(|(f, _)| *f == rel),
                    "{rel} has no expected outcome"
                );
            }
        }
    }
    assert_eq!(EXPECTED.len(), 49 + 12);
}

#[test]
fn torture_outcomes_from_the_endpoint() {
    let mut failures = Vec::new();
    for (file, expected) in EXPECTED {
        // A fresh endpoint per file: several files share a branch, sent-by and method, so to
        // one endpoint the later ones are retransmissions of the earlier (RFC 3261 §17.2.3).
        let got = answer(&mut endpoint(), data(file));
        let finals: Vec<&(u16, String, Message)> =
            got.iter().filter(|(c, _, _)| *c >= 200).collect();
        let code = finals.first().map(|(c, _, _)| *c);
        if code != *expected || finals.len() > 1 {
            let codes: Vec<u16> = got.iter().map(|g| g.0).collect();
            failures.push(format!("{file}: expected {expected:?}, got {codes:?}"));
            continue;
        }
        if let Some((400, reason, _)) = finals.first() {
            assert!(
                reason.len() > "Bad Request".len(),
                "{file}: 400 must name the fault, got {reason:?}"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "torture mismatches:\n{}",
        failures.join("\n")
    );
}

#[test]
fn torture_answers_carry_the_right_headers() {
    let mut ep = endpoint();
    let got = answer(&mut ep, data("rfc4475/bext01.dat"));
    let unsupported = got
        .last()
        .unwrap()
        .2
        .tokens(HeaderName::Unsupported)
        .unwrap();
    assert_eq!(
        unsupported,
        ["nothingSupportsThis", "nothingSupportsThisEither"]
    );
    let got = answer(&mut ep, data("rfc4475/intmeth.dat"));
    assert!(
        got.last().unwrap().2.first(HeaderName::Allow).is_some(),
        "501 lists Allow"
    );
    let got = answer(&mut ep, data("rfc4475/invut.dat"));
    assert!(
        got.last().unwrap().2.first(HeaderName::Accept).is_some(),
        "415 lists Accept"
    );
    // A 400 still echoes what it could of the request, so the sender can match it.
    let got = answer(&mut ep, data("rfc4475/multi01.dat"));
    assert!(got.last().unwrap().2.first(HeaderName::Via).is_some());
}

const VALID: &[&str] = &[
    "rfc4475/wsinv.dat",
    "rfc4475/intmeth.dat",
    "rfc4475/esc01.dat",
    "rfc4475/escnull.dat",
    "rfc4475/esc02.dat",
    "rfc4475/lwsdisp.dat",
    "rfc4475/longreq.dat",
    "rfc4475/dblreq.dat",
    "rfc4475/semiuri.dat",
    "rfc4475/transports.dat",
    "rfc4475/mpart01.dat",
    "rfc4475/unreason.dat",
    "rfc4475/noreason.dat",
    "rfc5118/wire/ipv6-good.dat",
    "rfc5118/wire/port-ambiguous.dat",
    "rfc5118/wire/port-unambiguous.dat",
    "rfc5118/wire/via-received-param-with-delim.dat",
    "rfc5118/wire/via-received-param-no-delim.dat",
    "rfc5118/wire/ipv6-in-sdp.dat",
    "rfc5118/wire/mult-ip-in-header.dat",
    "rfc5118/wire/mult-ip-in-sdp.dat",
    "rfc5118/wire/ipv4-mapped-ipv6.dat",
    "rfc5118/wire/ipv6-bug-abnf-3-colons.dat",
    "rfc5118/wire/ipv6-correct-abnf-2-colons.dat",
];

/// The typed values a proxy reads, all of them, for a valid message.
fn read_everything(file: &str, m: &Message) {
    let check = |what: &str, ok: bool| assert!(ok, "{file}: {what}");
    check("Via", m.vias().is_ok());
    check("From", m.from().is_ok());
    check("To", m.to().is_ok());
    check("Call-ID", m.call_id().is_ok());
    check("CSeq", m.cseq().is_ok());
    check("Max-Forwards", m.max_forwards().is_ok());
    check("Content-Length", m.content_length().is_ok());
    check("Content-Type", m.content_type().is_ok());
    check("Contact", m.contacts().is_ok());
}

#[test]
fn valid_messages_parse_and_round_trip() {
    for file in VALID {
        let m = parse(file);
        assert!(m.defect().is_none(), "{file}: {:?}", m.defect());
        read_everything(file, &m);
        let printed = m.to_bytes();
        let again = Message::parse_datagram(printed.clone(), &MessageLimits::default()).unwrap();
        assert_eq!(again.to_bytes(), printed, "{file}: print is a fixed point");
        assert_eq!(again.headers().len(), m.headers().len(), "{file}");
        assert_eq!(again.body(), m.body(), "{file}");
    }
}

#[test]
fn wsinv_values() {
    let m = parse("rfc4475/wsinv.dat");
    assert_eq!(m.vias().unwrap().len(), 3);
    assert_eq!(m.max_forwards().unwrap(), Some(68));
    assert_eq!(m.cseq().unwrap().seq, 9);
    assert_eq!(
        m.to().unwrap().tag().map(|t| &t[..]),
        Some(&b"1918181833n"[..])
    );
    let unusual = m
        .headers()
        .iter()
        .find(|h| h.is_named("UnknownHeaderWithUnusualValue"))
        .unwrap();
    assert_eq!(&unusual.value[..], b";;,,;;,;");
    assert_eq!(m.first(HeaderName::Subject).map(|h| h.value.len()), Some(0));
}

#[test]
fn escaping_values() {
    let m = parse("rfc4475/esc01.dat");
    let Some(Ok(Uri::Sip(ruri))) = m.request_uri() else {
        panic!("sip R-URI")
    };
    assert_eq!(
        &*unescape(ruri.user.as_ref().unwrap()),
        b"sips:user@example.com"
    );
    let m = parse("rfc4475/escnull.dat");
    let contacts = m.contacts().unwrap();
    assert_eq!(contacts.len(), 2);
    let users: Vec<Vec<u8>> = contacts
        .iter()
        .map(|c| match c {
            ContactValue::Addr(a) => {
                unescape(a.uri.as_sip().unwrap().user.as_ref().unwrap()).into_owned()
            }
            ContactValue::Star => panic!("no star"),
        })
        .collect();
    assert_eq!(users, vec![vec![0u8], vec![0u8, 0u8]]);
    let to = m.to().unwrap();
    assert_eq!(
        &*unescape(to.uri.as_sip().unwrap().user.as_ref().unwrap()),
        b"null-\0-null"
    );
    let m = parse("rfc4475/esc02.dat");
    assert_eq!(m.method().unwrap().to_string(), "RE%47IST%45R");
    assert_eq!(m.contacts().unwrap().len(), 2);
}

#[test]
fn framing_cases() {
    let m = parse("rfc4475/dblreq.dat");
    assert!(m.body().is_empty(), "trailing octets are not the body");
    assert!(
        !m.raw().windows(6).any(|w| w == b"INVITE"),
        "trailing octets are not kept"
    );
    let m = parse("rfc4475/inv2543.dat");
    assert!(
        m.body().starts_with(b"v=0"),
        "no Content-Length: body is the rest of the datagram"
    );
    let m = parse("rfc4475/mpart01.dat");
    assert_eq!(m.body().len(), 553);
}

#[test]
fn parameters_in_the_right_place() {
    let m = parse("rfc4475/semiuri.dat");
    let Some(Ok(Uri::Sip(ruri))) = m.request_uri() else {
        panic!()
    };
    assert_eq!(ruri.user.as_deref(), Some(&b"user;par=u%40example.net"[..]));
    let contact = |f: &str| match parse(f).contacts().unwrap().remove(0) {
        ContactValue::Addr(a) => a,
        ContactValue::Star => panic!(),
    };
    let c1 = contact("rfc4475/cparam01.dat");
    assert!(c1.params.get("unknownparam").is_some() && c1.uri.as_sip().unwrap().params.is_empty());
    let c2 = contact("rfc4475/cparam02.dat");
    assert!(c2.params.is_empty() && c2.uri.as_sip().unwrap().param("unknownparam").is_some());
    let c3 = contact("rfc4475/regescrt.dat");
    assert!(
        c3.uri.as_sip().unwrap().headers.is_some(),
        "escaped headers stay in the URI"
    );
}

#[test]
fn ipv6_values() {
    let m = parse("rfc5118/wire/port-ambiguous.dat");
    let Some(Ok(Uri::Sip(u))) = m.request_uri() else {
        panic!()
    };
    assert_eq!(
        (u.host, u.port),
        (Host::Ip("2001:db8::10:5070".parse().unwrap()), None)
    );
    let m = parse("rfc5118/wire/port-unambiguous.dat");
    let Some(Ok(Uri::Sip(u))) = m.request_uri() else {
        panic!()
    };
    assert_eq!(
        (u.host, u.port),
        (Host::Ip("2001:db8::10".parse().unwrap()), Some(5070))
    );
    let m = parse("rfc5118/wire/mult-ip-in-header.dat");
    let vias = m.vias().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].port, Some(6050));
    assert_eq!(
        vias[2].received(),
        Some(Host::Ip("192.0.2.200".parse().unwrap()))
    );
    let m = parse("rfc5118/wire/via-received-param-no-delim.dat");
    assert!(
        m.top_via().unwrap().branch().is_some(),
        "colons do not end the parameter list"
    );
}
