//! The edge endpoint under virtual time: OPTIONS, retransmissions, ACK and CANCEL handling,
//! loop and hop protection, limits, and the counters the binary exports.

// Tests read the clock once, as a virtual epoch; everything after is virtual time.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use voxgate_controlplane::config::{LocalListener, MessageLimits};
use voxgate_controlplane::endpoint::Peer;
use voxgate_controlplane::sip::{HeaderName, Message, Transport};
use voxgate_controlplane::stats::DropReason;
use voxgate_controlplane::{Endpoint, EndpointConfig};

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
    Endpoint::new(config, 42)
}

fn peer() -> Peer {
    Peer {
        transport: Transport::Udp,
        remote: "127.0.0.1:40000".parse().unwrap(),
        local: LOCAL.parse().unwrap(),
        conn: None,
    }
}

fn request(method: &str, ruri: &str, branch: &str, extra: &str) -> Bytes {
    Bytes::from(format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch={branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@voxgate.test>;tag=a1\r\nTo: <{ruri}>\r\n\
         Call-ID: {branch}@test\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    ))
}

fn send(ep: &mut Endpoint, now: Instant, bytes: Bytes) -> Vec<Message> {
    ep.handle_datagram(now, peer(), bytes);
    drain(ep)
}

fn drain(ep: &mut Endpoint) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(t) = ep.poll_transmit() {
        out.push(Message::parse_datagram(t.payload, &MessageLimits::default()).unwrap());
    }
    out
}

fn codes(msgs: &[Message]) -> Vec<u16> {
    msgs.iter().filter_map(Message::code).collect()
}

#[test]
fn sig25_options_to_voxgate_gets_200_with_capabilities() {
    let mut ep = endpoint();
    let now = Instant::now();
    for ruri in ["sip:127.0.0.1:5060", "sip:voxgate.test", "sip:127.0.0.1"] {
        let got = send(
            &mut ep,
            now,
            request("OPTIONS", ruri, &format!("z9hG4bK{ruri}"), ""),
        );
        assert_eq!(codes(&got), [200], "{ruri}");
        let r = &got[0];
        assert!(r.first(HeaderName::Allow).is_some());
        assert_eq!(
            r.first(HeaderName::Accept).map(|h| &h.value[..]),
            Some(&b"application/sdp"[..])
        );
        assert!(r.first(HeaderName::Supported).is_some());
        assert!(r.to().unwrap().tag().is_some(), "a final response tags To");
    }
}

#[test]
fn sig24_retransmissions_are_absorbed_and_answered_again() {
    let mut ep = endpoint();
    let now = Instant::now();
    let req = request("OPTIONS", "sip:127.0.0.1:5060", "z9hG4bKretx", "");
    let first = send(&mut ep, now, req.clone());
    let again = send(&mut ep, now + Duration::from_millis(500), req);
    assert_eq!(codes(&again), [200]);
    assert_eq!(
        again[0].to_bytes(),
        first[0].to_bytes(),
        "the same response, same To tag"
    );
    assert_eq!(ep.stats().transactions_active, 1);
    // Timer J (64·T1 on UDP) ends the transaction.
    assert!(ep.poll_timeout().expect("timer J is armed") <= now + Duration::from_secs(32));
    ep.handle_timeout(now + Duration::from_millis(31_900));
    assert_eq!(ep.stats().transactions_active, 1, "not before 64·T1");
    ep.handle_timeout(now + Duration::from_secs(33));
    assert_eq!(ep.stats().transactions_active, 0);
}

#[test]
fn invite_ack_and_cancel() {
    let mut ep = endpoint();
    let now = Instant::now();
    let invite = request("INVITE", "sip:100@voxgate.test", "z9hG4bKinv", "");
    let got = send(&mut ep, now, invite);
    // SEC-14: an unauthenticated INVITE to a user is challenged, whoever the user is.
    assert_eq!(codes(&got).last(), Some(&407));
    let to_tag = got.last().unwrap().to().unwrap().tag().unwrap().clone();
    // The ACK for the non-2xx final is absorbed by the INVITE server transaction.
    let ack = Bytes::from(format!(
        "ACK sip:100@voxgate.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKinv\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@voxgate.test>;tag=a1\r\n\
         To: <sip:100@voxgate.test>;tag={}\r\nCall-ID: z9hG4bKinv@test\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        String::from_utf8_lossy(&to_tag)
    ));
    assert!(send(&mut ep, now, ack).is_empty(), "ACK is never answered");
    assert_eq!(
        ep.stats().dropped_for(DropReason::StrayAck),
        0,
        "it matched its transaction"
    );
    // A CANCEL for that INVITE: 200 (the INVITE was already answered, so no 487).
    let cancel = request("CANCEL", "sip:100@voxgate.test", "z9hG4bKinv", "");
    assert_eq!(codes(&send(&mut ep, now, cancel)), [200]);
    // A CANCEL that matches nothing: 481.
    let stray = request("CANCEL", "sip:100@voxgate.test", "z9hG4bKnothing", "");
    assert_eq!(codes(&send(&mut ep, now, stray)), [481]);
    // A stray ACK is counted, never answered.
    let stray_ack = request("ACK", "sip:100@voxgate.test", "z9hG4bKnoinvite", "");
    assert!(send(&mut ep, now, stray_ack).is_empty());
    assert_eq!(ep.stats().dropped_for(DropReason::StrayAck), 1);
}

#[test]
fn sig10_hops_and_loops() {
    let mut ep = endpoint();
    let now = Instant::now();
    let zero = request("OPTIONS", "sip:bob@example.com", "z9hG4bKmf0", "")
        .iter()
        .copied()
        .collect::<Vec<u8>>();
    let zero = Bytes::from(
        String::from_utf8(zero)
            .unwrap()
            .replace("Max-Forwards: 70", "Max-Forwards: 0"),
    );
    assert_eq!(codes(&send(&mut ep, now, zero.clone())), [483]);
    // To voxgate itself, Max-Forwards 0 is processed normally (RFC 4475 §3.3.11).
    let to_self = Bytes::from(
        String::from_utf8_lossy(&zero)
            .replace("sip:bob@example.com", "sip:127.0.0.1:5060")
            .replace("z9hG4bKmf0", "z9hG4bKmf0self"),
    );
    assert_eq!(codes(&send(&mut ep, now, to_self)), [200]);
    // A request carrying voxgate's own Via came back to it.
    let looped = request(
        "INVITE",
        "sip:bob@example.com",
        "z9hG4bKloop",
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-vx0123\r\n",
    );
    assert_eq!(codes(&send(&mut ep, now, looped)), [482]);
}

#[test]
fn sig23_limits() {
    let mut ep = endpoint();
    let now = Instant::now();
    let long_uri = format!("sip:{}@voxgate.test", "a".repeat(600));
    assert_eq!(
        codes(&send(
            &mut ep,
            now,
            request("OPTIONS", &long_uri, "z9hG4bKlong", "")
        )),
        [414]
    );
    let huge = Bytes::from(vec![b'a'; 70_000]);
    assert!(send(&mut ep, now, huge).is_empty());
    assert_eq!(ep.stats().dropped_for(DropReason::TooLarge), 1);
}

#[test]
fn counters_follow_the_traffic() {
    let mut ep = endpoint();
    let now = Instant::now();
    send(
        &mut ep,
        now,
        request("OPTIONS", "sip:127.0.0.1:5060", "z9hG4bKc1", ""),
    );
    send(
        &mut ep,
        now,
        request("FROB", "sip:127.0.0.1:5060", "z9hG4bKc2", ""),
    );
    send(&mut ep, now, Bytes::from_static(b"\r\n\r\n"));
    send(&mut ep, now, Bytes::from_static(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch=z9hG4bKzz\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"));
    let stats = ep.stats();
    let requests: Vec<_> = stats.requests().collect();
    assert!(requests.contains(&("OPTIONS", "udp", 1)));
    assert!(requests.contains(&("other", "udp", 1)));
    let responses: Vec<_> = stats.responses().collect();
    assert!(responses.contains(&(200, 1)) && responses.contains(&(501, 1)));
    assert_eq!(stats.dropped_for(DropReason::KeepAlive), 1);
    assert_eq!(stats.dropped_for(DropReason::StrayResponse), 1);
}

#[test]
fn sig05_responses_carry_received_and_rport() {
    let mut ep = endpoint();
    let now = Instant::now();
    let req = request("OPTIONS", "sip:127.0.0.1:5060", "z9hG4bKnat", "")
        .iter()
        .copied()
        .collect::<Vec<u8>>();
    let req = String::from_utf8(req).unwrap().replace(
        "UDP 127.0.0.1:40000;branch",
        "UDP 192.0.2.1:5060;rport;branch",
    );
    ep.handle_datagram(now, peer(), Bytes::from(req));
    let t = ep.poll_transmit().expect("an answer");
    assert_eq!(
        t.destination,
        peer().remote,
        "rport: back to the source port"
    );
    let r = Message::parse_datagram(t.payload, &MessageLimits::default()).unwrap();
    let via = r.top_via().unwrap();
    assert_eq!(
        via.params.get("rport").flatten().map(|v| &v[..]),
        Some(&b"40000"[..])
    );
    assert_eq!(
        via.params.get("received").flatten().map(|v| &v[..]),
        Some(&b"127.0.0.1"[..])
    );
    assert_eq!(via.branch().map(|b| &b[..]), Some(&b"z9hG4bKnat"[..]));
}

#[test]
fn sig23_too_many_vias_and_bare_cr_are_refused() {
    let mut ep = endpoint();
    let now = Instant::now();
    let vias: String = (0..71)
        .map(|i| {
            format!(
                "Via: SIP/2.0/UDP 10.0.0.{}:5060;branch=z9hG4bKhop{i}\r\n",
                i % 250
            )
        })
        .collect();
    let got = send(
        &mut ep,
        now,
        request("OPTIONS", "sip:127.0.0.1:5060", "z9hG4bKvias", &vias),
    );
    assert_eq!(codes(&got), [400]);
    // A bare CR inside a header value could smuggle a header through a lenient peer.
    let smuggle = request(
        "OPTIONS",
        "sip:127.0.0.1:5060",
        "z9hG4bKcr",
        "X-Note: a\rInjected: yes\r\n",
    );
    assert_eq!(codes(&send(&mut ep, now, smuggle)), [400]);
}
