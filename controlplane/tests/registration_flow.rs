//! Registration through the whole endpoint under virtual time: challenge, digest answer,
//! binding, store events, keep-alives, brute-force ban, anti-enumeration (SIG-01, SIG-03,
//! SIG-14, SIG-15, SEC-03, SEC-14).

// Tests read the clock once, as a virtual epoch; everything after is virtual time.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use voxgate_controlplane::auth::client::{authorization_value, DigestAnswer};
use voxgate_controlplane::auth::Credential;
use voxgate_controlplane::config::{LocalListener, MessageLimits, User};
use voxgate_controlplane::endpoint::{EndpointEvent, Peer};
use voxgate_controlplane::registrar::RegistrarEvent;
use voxgate_controlplane::security::IpNet;
use voxgate_controlplane::sip::{HeaderName, Message, Method, Transport};
use voxgate_controlplane::stats::DropReason;
use voxgate_controlplane::{Endpoint, EndpointConfig};

const LOCAL: &str = "127.0.0.1:5060";
const PASSWORD: &str = "correct-horse-battery";

fn endpoint() -> Endpoint {
    let local: SocketAddr = LOCAL.parse().unwrap();
    let mut config = EndpointConfig {
        domain: "voxgate.test".into(),
        listeners: vec![LocalListener {
            transport: Transport::Udp,
            addr: local,
        }],
        ..EndpointConfig::default()
    };
    config.auth.realm = "voxgate.test".into();
    config.users = vec![
        User {
            number: "100".into(),
            auth_id: "100".into(),
            credential: Credential::password(PASSWORD),
            networks: Vec::new(),
        },
        User {
            number: "101".into(),
            auth_id: "alice-desk".into(),
            credential: Credential::password(PASSWORD),
            networks: vec!["10.0.0.0/8".parse::<IpNet>().unwrap()],
        },
    ];
    let mut ep = Endpoint::new(config, 9);
    ep.set_wall_clock(Instant::now(), 1_800_000_000);
    ep
}

fn peer(ip: &str, port: u16) -> Peer {
    Peer {
        transport: Transport::Udp,
        remote: SocketAddr::new(ip.parse().unwrap(), port),
        local: LOCAL.parse().unwrap(),
        conn: None,
    }
}

fn register(ext: &str, cseq: u32, call_id: &str, port: u16, auth: Option<&str>) -> Bytes {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    Bytes::from(format!(
        "REGISTER sip:voxgate.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.168.1.20:{port};branch=z9hG4bK{call_id}{cseq};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{ext}@voxgate.test>;tag=f{call_id}\r\n\
         To: <sip:{ext}@voxgate.test>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{ext}@192.168.1.20:{port}>\r\nExpires: 600\r\nUser-Agent: test-phone/1\r\n\
         {auth}Content-Length: 0\r\n\r\n"
    ))
}

fn send(ep: &mut Endpoint, now: Instant, from: Peer, bytes: Bytes) -> Vec<Message> {
    ep.handle_datagram(now, from, bytes);
    let mut out = Vec::new();
    while let Some(t) = ep.poll_transmit() {
        out.push(Message::parse_datagram(t.payload, &MessageLimits::default()).unwrap());
    }
    out
}

fn events(ep: &mut Endpoint) -> Vec<EndpointEvent> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

/// Answer the first challenge of a 401 as a phone would.
fn answer(challenge: &Message, user: &str, password: &str, nc: u32) -> String {
    let params = challenge.auth(HeaderName::WwwAuthenticate).unwrap();
    let answer = DigestAnswer {
        username: user,
        password,
        method: &Method::Register,
        uri: "sip:voxgate.test",
        cnonce: "0a4f113b",
        nc,
    };
    authorization_value(&params[0], &answer).unwrap()
}

/// REGISTER, answer the 401 as `auth_user`, REGISTER again: the final answer's code.
fn register_as(
    ep: &mut Endpoint,
    now: Instant,
    from: Peer,
    ext: &str,
    auth_user: &str,
    call_id: &str,
) -> Option<u16> {
    let got = send(ep, now, from, register(ext, 1, call_id, 5062, None));
    let auth = answer(&got[0], auth_user, PASSWORD, 1);
    send(ep, now, from, register(ext, 2, call_id, 5062, Some(&auth)))[0].code()
}

#[test]
fn sig01_challenge_then_register_then_bound() {
    let mut ep = endpoint();
    let now = Instant::now();
    let phone = peer("203.0.113.7", 40_000);
    let got = send(&mut ep, now, phone, register("100", 1, "reg1", 5062, None));
    assert_eq!(got[0].code(), Some(401));
    let challenges = got[0].auth(HeaderName::WwwAuthenticate).unwrap();
    let algorithms: Vec<_> = challenges
        .iter()
        .map(|c| c.unquoted("algorithm").unwrap().to_vec())
        .collect();
    assert_eq!(
        algorithms,
        [b"MD5".to_vec(), b"SHA-256".to_vec()],
        "MD5 first, SHA-256 alongside"
    );
    let auth = answer(&got[0], "100", PASSWORD, 1);
    let got = send(
        &mut ep,
        now,
        phone,
        register("100", 2, "reg1", 5062, Some(&auth)),
    );
    assert_eq!(got[0].code(), Some(200));
    let contact = &got[0].first(HeaderName::Contact).unwrap().value;
    assert!(
        contact.starts_with(b"<sip:100@192.168.1.20:5062>;expires=600"),
        "{contact:?}"
    );
    let bound: Vec<_> = events(&mut ep)
        .into_iter()
        .filter_map(|e| match e {
            EndpointEvent::Registrar(r) => match *r {
                RegistrarEvent::Bound(b) => Some(b),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(bound.len(), 1);
    assert_eq!(
        bound[0].flow.remote, phone.remote,
        "the flow is where it came from (NAT)"
    );
    assert_eq!(ep.stats().registrations_active, 1);
    assert_eq!(ep.registrations().count(), 1);
}

#[test]
fn sig14_udp_contacts_get_keepalives_over_their_flow() {
    let mut ep = endpoint();
    let now = Instant::now();
    let phone = peer("203.0.113.7", 40_000);
    assert_eq!(
        register_as(&mut ep, now, phone, "100", "100", "ka"),
        Some(200)
    );
    ep.handle_timeout(now + Duration::from_secs(31));
    let t = ep
        .poll_transmit()
        .expect("an OPTIONS keep-alive after 30 s");
    assert_eq!(
        t.destination, phone.remote,
        "to the observed source, not the Contact"
    );
    let ping = Message::parse_datagram(t.payload, &MessageLimits::default()).unwrap();
    assert_eq!(ping.method(), Some(&Method::Options));
}

#[test]
fn sec14_known_and_unknown_users_look_the_same() {
    let mut ep = endpoint();
    let now = Instant::now();
    let phone = peer("203.0.113.9", 40_000);
    let known = send(&mut ep, now, phone, register("100", 1, "k", 5062, None));
    let unknown = send(&mut ep, now, phone, register("999999", 1, "u", 5062, None));
    assert_eq!(known[0].code(), unknown[0].code());
    let shape = |m: &Message| {
        m.auth(HeaderName::WwwAuthenticate)
            .unwrap()
            .iter()
            .map(|c| c.params.iter().map(|p| p.name.to_vec()).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(&known[0]), shape(&unknown[0]));
    // Wrong credentials: 403 for both.
    let a1 = answer(&known[0], "100", "wrong-password-1", 1);
    let a2 = answer(&unknown[0], "999999", "wrong-password-1", 1);
    let r1 = send(
        &mut ep,
        now,
        phone,
        register("100", 2, "k", 5062, Some(&a1)),
    );
    let r2 = send(
        &mut ep,
        now,
        phone,
        register("999999", 2, "u", 5062, Some(&a2)),
    );
    assert_eq!((r1[0].code(), r2[0].code()), (Some(403), Some(403)));
    assert_eq!(
        r1[0].status_line().unwrap().reason,
        r2[0].status_line().unwrap().reason
    );
}

#[test]
fn sec03_repeated_failures_ban_the_source_but_not_others() {
    let mut ep = endpoint();
    let now = Instant::now();
    let attacker = peer("198.51.100.66", 5060);
    for i in 0..4u32 {
        let got = send(
            &mut ep,
            now,
            attacker,
            register("100", 2 * i + 1, &format!("bf{i}"), 5062, None),
        );
        assert_eq!(got[0].code(), Some(401));
        let auth = answer(&got[0], "100", "guess-guess-guess", 1);
        let got = send(
            &mut ep,
            now,
            attacker,
            register("100", 2 * i + 2, &format!("bf{i}"), 5062, Some(&auth)),
        );
        assert_eq!(got[0].code(), Some(403));
    }
    assert_eq!(
        ep.stats().bans_active,
        1,
        "the 4th failure for one account bans the source"
    );
    assert!(
        send(
            &mut ep,
            now,
            attacker,
            register("100", 99, "after", 5062, None)
        )
        .is_empty(),
        "dropped silently"
    );
    assert!(ep.stats().dropped_for(DropReason::Banned) >= 1);
    assert!(ep.bans().any(|b| b.ip == attacker.remote.ip()));
    // The real phone elsewhere still registers.
    let phone = peer("203.0.113.7", 40_000);
    assert_eq!(
        register_as(&mut ep, now, phone, "100", "100", "ok"),
        Some(200)
    );
    // An operator lifts the ban.
    assert!(ep.unban(attacker.remote.ip()));
    assert_eq!(
        send(
            &mut ep,
            now,
            attacker,
            register("100", 100, "again", 5062, None)
        )[0]
        .code(),
        Some(401)
    );
}

#[test]
fn sig15_networks_and_aor_ownership() {
    let mut ep = endpoint();
    let now = Instant::now();
    let outside = peer("203.0.113.7", 40_000);
    // Extension 101 authenticates as "alice-desk" but may only register from 10/8.
    assert_eq!(
        register_as(&mut ep, now, outside, "101", "alice-desk", "n1"),
        Some(403)
    );
    let inside = peer("10.1.2.3", 40_000);
    assert_eq!(
        register_as(&mut ep, now, inside, "101", "alice-desk", "n2"),
        Some(200)
    );
    // 100's credentials cannot register 101.
    assert_eq!(
        register_as(&mut ep, now, inside, "101", "100", "n3"),
        Some(403)
    );
}

#[test]
fn sec17_registered_flow_gets_the_trusted_budget() {
    let mut ep = endpoint();
    let now = Instant::now();
    let phone = peer("203.0.113.7", 40_000);
    assert_eq!(
        register_as(&mut ep, now, phone, "100", "100", "tb"),
        Some(200)
    );
    let burst = |ep: &mut Endpoint, from: Peer, tag: &str| {
        (0..25)
            .filter(|i| {
                let req = register("100", 10 + i, &format!("{tag}{i}"), 5062, None);
                send(ep, now, from, req)[0].code() == Some(503)
            })
            .count()
    };
    assert_eq!(
        burst(&mut ep, phone, "p"),
        0,
        "the registered flow is not rate limited"
    );
    let stranger = peer("198.51.100.20", 40_000);
    assert!(
        burst(&mut ep, stranger, "s") > 0,
        "an unregistered source is"
    );
}

#[test]
fn sec17_registered_flow_is_not_flood_banned_but_its_neighbour_is() {
    let mut ep = endpoint();
    let now = Instant::now();
    // A DECT base: one address, one flow, many handsets re-registering at once.
    let base = peer("203.0.113.7", 40_000);
    assert_eq!(
        register_as(&mut ep, now, base, "100", "100", "fl"),
        Some(200)
    );
    let answered = (0..60)
        .filter(|i| {
            let req = register("100", 10 + i, &format!("d{i}"), 5062, None);
            !send(&mut ep, now, base, req).is_empty()
        })
        .count();
    assert_eq!(
        answered, 60,
        "every request of the registered flow is answered"
    );
    assert_eq!(ep.bans().count(), 0);
    // Another port of the same address is not the registered flow: it is counted.
    let other = peer("203.0.113.7", 40_001);
    let answered = (0..60)
        .filter(|i| {
            let req = register("100", 100 + i, &format!("o{i}"), 5062, None);
            !send(&mut ep, now, other, req).is_empty()
        })
        .count();
    assert!(answered <= 30, "flood limit applies: {answered} answered");
    assert_eq!(ep.bans().count(), 1);
}

#[test]
fn sec17_listener_acl_drops_and_counts() {
    use voxgate_controlplane::security::ListenerAcl;
    use voxgate_controlplane::stats::DropReason;

    let mut config = endpoint().config().clone();
    config.security.listeners = vec![ListenerAcl {
        transport: Transport::Udp,
        local: LOCAL.parse().unwrap(),
        allow: vec!["10.0.0.0/8".parse::<IpNet>().unwrap()],
        block: Vec::new(),
    }];
    let mut ep = Endpoint::new(config, 9);
    ep.set_wall_clock(Instant::now(), 1_800_000_000);
    let now = Instant::now();
    let outsider = send(
        &mut ep,
        now,
        peer("203.0.113.7", 40_000),
        register("100", 1, "a1", 5062, None),
    );
    assert!(outsider.is_empty());
    assert_eq!(ep.stats().dropped_for(DropReason::ListenerAcl), 1);
    let insider = send(
        &mut ep,
        now,
        peer("10.1.2.3", 40_000),
        register("100", 1, "a2", 5062, None),
    );
    assert_eq!(insider[0].code(), Some(401));
}

#[test]
fn sig14_alg_rewrites_are_counted() {
    let mut ep = endpoint();
    let now = Instant::now();
    let phone = peer("203.0.113.7", 40_000);
    let got = send(&mut ep, now, phone, register("100", 1, "alg", 5062, None));
    // The phone signed `sip:voxgate.test`; an ALG rewrote the request line afterwards.
    let auth = answer(&got[0], "100", PASSWORD, 1);
    let signed = register("100", 2, "alg", 5062, Some(&auth));
    let rewritten = String::from_utf8(signed.to_vec()).unwrap().replacen(
        "REGISTER sip:voxgate.test ",
        "REGISTER sip:203.0.113.1 ",
        1,
    );
    let refused = send(&mut ep, now, phone, Bytes::from(rewritten));
    assert_eq!(refused[0].code(), Some(403));
    assert_eq!(ep.stats().alg_suspected, 1);
    // A UDP body shorter than its Content-Length: SDP rewritten without fixing it.
    let short_body = Bytes::from(
        "INVITE sip:101@voxgate.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP 203.0.113.7:40000;branch=z9hG4bKalg2;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:100@voxgate.test>;tag=a\r\n\
         To: <sip:101@voxgate.test>\r\nCall-ID: alg2\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:100@203.0.113.7:40000>\r\nContent-Type: application/sdp\r\n\
         Content-Length: 140\r\n\r\nv=0\r\no=- 1 1 IN IP4 203.0.113.7\r\ns=-\r\n",
    );
    let answer = send(&mut ep, now, phone, short_body);
    assert_eq!(answer.last().and_then(|m| m.code()), Some(400));
    assert_eq!(ep.stats().alg_suspected, 2);
}

#[test]
fn sec15_overload_503_is_stateless() {
    let mut ep = endpoint();
    let now = Instant::now();
    ep.set_queue_fill(0.95);
    let phone = peer("203.0.113.7", 40_000);
    let req = register("100", 1, "ov", 5062, None);
    for _ in 0..3 {
        // The same request, retransmitted: each copy is turned away on its own.
        let got = send(&mut ep, now, phone, req.clone());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].code(), Some(503));
        let retry: u32 = std::str::from_utf8(&got[0].first(HeaderName::RetryAfter).unwrap().value)
            .unwrap()
            .parse()
            .unwrap();
        assert!((5..=15).contains(&retry));
    }
    assert_eq!(ep.stats().transactions_active, 0, "no state kept per 503");
    assert_eq!(ep.stats().overload_rejections, 3);
    // Below the high-water mark the same request is served again.
    ep.set_queue_fill(0.1);
    assert_eq!(send(&mut ep, now, phone, req)[0].code(), Some(401));
}

#[test]
fn challenges_to_register_are_stateless_and_the_200_is_not() {
    let mut ep = endpoint();
    let now = Instant::now();
    let phone = peer("203.0.113.7", 40_000);
    let first = register("100", 1, "sl", 5062, None);
    let challenge = send(&mut ep, now, phone, first.clone());
    assert_eq!(challenge[0].code(), Some(401));
    assert_eq!(ep.stats().transactions_active, 0, "no state per challenge");
    // A retransmission gets a challenge again, answerable like the first.
    let again = send(&mut ep, now, phone, first);
    assert_eq!(again[0].code(), Some(401));
    let auth = answer(&again[0], "100", PASSWORD, 1);
    let signed = register("100", 2, "sl", 5062, Some(&auth));
    let ok = send(&mut ep, now, phone, signed.clone());
    assert_eq!(ok[0].code(), Some(200));
    assert_eq!(ep.stats().transactions_active, 1);
    // The 200's transaction absorbs a retransmission and resends the same answer.
    let resent = send(&mut ep, now, phone, signed);
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0].to_bytes(), ok[0].to_bytes());
}
