//! The registrar under virtual time: RFC 3261 §10.3 binding rules (add, refresh, remove,
//! `*`, 423, clamping, defaults, per-contact expiry, q-values, the Call-ID/CSeq rule),
//! the contact cap (SIG-03), RFC 5626 outbound and RFC 3327 Path, expiry and registration
//! state events (SIG-02), restore after a restart, UDP keep-alives and dead flows (SIG-14),
//! and RFC 4475's contact torture vectors. A property test drives random operation
//! sequences and checks the table's invariants against the events it emitted.
//!
//! Time is a base `Instant` plus offsets; nothing sleeps.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use voxgate_controlplane::config::MessageLimits;
use voxgate_controlplane::endpoint::ConnId;
use voxgate_controlplane::registrar::{
    Binding, Flow, KeepAliveOutcome, RegisterError, RegisterOutcome, Registered, Registrar,
    RegistrarConfig, RegistrarEvent, UnboundReason,
};
use voxgate_controlplane::sip::{HeaderName, Message, Transport};

#[allow(clippy::disallowed_methods)] // the one real instant; every later time is virtual
fn base() -> Instant {
    Instant::now()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("literal address")
}

fn udp(port: u16) -> Flow {
    Flow {
        transport: Transport::Udp,
        remote: SocketAddr::new(addr("192.0.2.10:1").ip(), port),
        local: addr("192.0.2.1:5060"),
        conn: None,
    }
}

fn tcp(conn: u64) -> Flow {
    Flow {
        transport: Transport::Tcp,
        remote: SocketAddr::new(addr("192.0.2.20:1").ip(), 40000 + conn as u16),
        local: addr("192.0.2.1:5060"),
        conn: Some(ConnId(conn)),
    }
}

fn parse(text: &str) -> Message {
    Message::parse_datagram(Bytes::from(text.to_owned()), &MessageLimits::default())
        .expect("test message parses")
}

/// A REGISTER for `aor` with extra header lines (Contact, Expires, Supported, Path …).
fn register(aor: &str, call_id: &str, cseq: u32, headers: &[&str]) -> Message {
    let mut text = format!(
        "REGISTER sip:pbx.example.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5062;rport;branch=z9hG4bKreg{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{aor}@pbx.example.test>;tag=f{cseq}\r\n\
         To: <sip:{aor}@pbx.example.test>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         User-Agent: TestPhone/1.0\r\n"
    );
    for h in headers {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    parse(&text)
}

fn drain(r: &mut Registrar) -> Vec<RegistrarEvent> {
    std::iter::from_fn(|| r.poll_event()).collect()
}

fn registered(outcome: RegisterOutcome) -> Registered {
    match outcome {
        RegisterOutcome::Registered(r) => r,
        RegisterOutcome::Rejected(e) => panic!("expected 200, got {e:?}"),
    }
}

fn rejected(outcome: RegisterOutcome) -> RegisterError {
    match outcome {
        RegisterOutcome::Rejected(e) => e,
        RegisterOutcome::Registered(r) => panic!("expected a rejection, got 200 {r:?}"),
    }
}

fn contacts_of(r: &Registrar, aor: &str) -> Vec<String> {
    r.bindings(aor).map(|b| b.contact.clone()).collect()
}

fn unbound(aor: &str, contact: &str, reason: UnboundReason) -> RegistrarEvent {
    RegistrarEvent::Unbound {
        aor: aor.into(),
        contact: contact.into(),
        instance: None,
        reg_id: None,
        reason,
    }
}

fn state(aor: &str, registered: bool) -> RegistrarEvent {
    RegistrarEvent::AorState {
        aor: aor.into(),
        registered,
    }
}

fn header_values(msg: &Message, name: &str) -> Vec<String> {
    msg.headers()
        .iter()
        .filter(|h| h.is_named(name))
        .map(|h| String::from_utf8_lossy(&h.value).into_owned())
        .collect()
}

#[test]
fn add_refresh_and_remove_by_expires_zero() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    let req = register("1000", "c1", 1, &["Contact: <sip:1000@192.0.2.10:5062>"]);
    let ok = registered(r.handle_register(t0, udp(5062), "1000", &req));
    assert_eq!(ok.contacts.len(), 1);
    assert_eq!(ok.contacts[0].uri, "sip:1000@192.0.2.10:5062");
    assert_eq!(ok.contacts[0].expires, 600, "SIG-01 default");
    let ev = drain(&mut r);
    assert_eq!(ev.len(), 2, "{ev:?}");
    let RegistrarEvent::Bound(b) = &ev[0] else {
        panic!("Bound first: {ev:?}")
    };
    assert_eq!(b.aor, "1000");
    assert_eq!(b.flow, udp(5062));
    assert_eq!(b.expires, t0 + secs(600));
    assert_eq!((b.call_id.as_str(), b.cseq), ("c1", 1));
    assert_eq!(b.user_agent.as_deref(), Some("TestPhone/1.0"));
    assert_eq!(ev[1], state("1000", true));
    assert_eq!((r.len(), r.registered_aors()), (1, 1));

    // Refresh at t0+300 with Expires: 900.
    let req = register(
        "1000",
        "c1",
        2,
        &["Contact: <sip:1000@192.0.2.10:5062>", "Expires: 900"],
    );
    let ok = registered(r.handle_register(t0 + secs(300), udp(5062), "1000", &req));
    assert_eq!(ok.contacts[0].expires, 900);
    let ev = drain(&mut r);
    assert!(
        matches!(&ev[..], [RegistrarEvent::Bound(b)] if b.expires == t0 + secs(1200) && b.cseq == 2),
        "{ev:?}"
    );
    assert_eq!(r.len(), 1);

    // expires=0 removes it.
    let req = register(
        "1000",
        "c1",
        3,
        &["Contact: <sip:1000@192.0.2.10:5062>;expires=0"],
    );
    let ok = registered(r.handle_register(t0 + secs(400), udp(5062), "1000", &req));
    assert!(ok.contacts.is_empty());
    assert_eq!(
        drain(&mut r),
        vec![
            unbound("1000", "sip:1000@192.0.2.10:5062", UnboundReason::Removed),
            state("1000", false)
        ]
    );
    assert!(r.is_empty());
    assert_eq!(r.registered_aors(), 0);
}

#[test]
fn query_without_contact_lists_bindings_and_changes_nothing() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    let req = register(
        "1000",
        "c1",
        1,
        &["Contact: <sip:a@192.0.2.10>;expires=120"],
    );
    registered(r.handle_register(t0, udp(5062), "1000", &req));
    drain(&mut r);
    let q = register("1000", "c9", 1, &[]);
    let ok = registered(r.handle_register(t0 + secs(20), udp(5062), "1000", &q));
    assert_eq!(ok.contacts.len(), 1);
    assert_eq!(
        ok.contacts[0].expires, 100,
        "remaining seconds (RFC 3261 §10.3 step 8)"
    );
    assert!(drain(&mut r).is_empty());
}

#[test]
fn wildcard_removes_all_and_its_misuse_is_400() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    let req = register(
        "1000",
        "c1",
        1,
        &["Contact: <sip:a@192.0.2.10>, <sip:b@192.0.2.11>"],
    );
    assert_eq!(
        registered(r.handle_register(t0, udp(5062), "1000", &req))
            .contacts
            .len(),
        2
    );
    drain(&mut r);

    for bad in [
        &["Contact: *", "Expires: 60"][..],
        &["Contact: *"][..],
        &["Contact: *", "Contact: <sip:c@192.0.2.12>", "Expires: 0"][..],
        &["Contact: *, <sip:c@192.0.2.12>", "Expires: 0"][..],
    ] {
        let req = register("1000", "c2", 5, bad);
        let err = rejected(r.handle_register(t0, udp(5062), "1000", &req));
        assert_eq!(err, RegisterError::InvalidWildcard, "{bad:?}");
        assert_eq!(err.status().0, 400);
        let resp = RegisterOutcome::Rejected(err).response(&req, None).build();
        assert_eq!(resp.code(), Some(400));
    }
    assert_eq!(r.len(), 2);
    assert!(drain(&mut r).is_empty());

    let req = register("1000", "c2", 5, &["Contact: *", "Expires: 0"]);
    let ok = registered(r.handle_register(t0 + secs(1), udp(5062), "1000", &req));
    assert!(ok.contacts.is_empty());
    let ev = drain(&mut r);
    assert_eq!(
        ev,
        vec![
            unbound("1000", "sip:a@192.0.2.10", UnboundReason::Removed),
            unbound("1000", "sip:b@192.0.2.11", UnboundReason::Removed),
            state("1000", false),
        ]
    );
    assert!(r.is_empty());
}

#[test]
fn wildcard_from_the_same_call_id_obeys_the_cseq_rule() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    let req = register("1000", "c1", 7, &["Contact: <sip:a@192.0.2.10>"]);
    registered(r.handle_register(t0, udp(5062), "1000", &req));
    drain(&mut r);
    let req = register("1000", "c1", 7, &["Contact: *", "Expires: 0"]);
    let err = rejected(r.handle_register(t0, udp(5062), "1000", &req));
    assert_eq!(err, RegisterError::OutOfOrder { cseq: 7, stored: 7 });
    assert_eq!(err.status().0, 500);
    assert_eq!(r.len(), 1);
    let req = register("1000", "c1", 8, &["Contact: *", "Expires: 0"]);
    registered(r.handle_register(t0, udp(5062), "1000", &req));
    assert!(r.is_empty());
}

#[test]
fn too_brief_gets_423_with_min_expires() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    for headers in [
        &["Contact: <sip:a@192.0.2.10>", "Expires: 30"][..],
        &["Contact: <sip:a@192.0.2.10>;expires=59"][..],
        &["Contact: <sip:a@192.0.2.10>;expires=1", "Expires: 600"][..],
    ] {
        let req = register("1000", "c1", 1, headers);
        let err = rejected(r.handle_register(t0, udp(5062), "1000", &req));
        assert_eq!(err, RegisterError::IntervalTooBrief { min_expires: 60 });
        let resp = RegisterOutcome::Rejected(err)
            .response(&req, Some("t1"))
            .build();
        assert_eq!(resp.code(), Some(423));
        assert_eq!(
            resp.first(HeaderName::MinExpires).map(|h| h.value.clone()),
            Some(Bytes::from_static(b"60"))
        );
        assert!(r.is_empty());
        assert!(drain(&mut r).is_empty());
    }
    // Exactly the minimum is fine.
    let req = register("1000", "c1", 1, &["Contact: <sip:a@192.0.2.10>;expires=60"]);
    let ok = registered(r.handle_register(t0, udp(5062), "1000", &req));
    assert_eq!(ok.contacts[0].expires, 60);
}

#[test]
fn long_expiry_is_clamped_to_the_maximum() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    let req = register(
        "1000",
        "c1",
        1,
        &["Contact: <sip:a@192.0.2.10>", "Expires: 7200"],
    );
    let ok = registered(r.handle_register(t0, udp(5062), "1000", &req));
    assert_eq!(ok.contacts[0].expires, 3600);
    assert!(r.bindings("1000").all(|b| b.expires == t0 + secs(3600)));
}

#[test]
fn contact_expires_parameter_beats_the_header() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    let req = register(
        "1000",
        "c1",
        1,
        &[
            "Contact: <sip:a@192.0.2.10>;expires=300, <sip:b@192.0.2.11>",
            "Expires: 1200",
        ],
    );
    let ok = registered(r.handle_register(t0, udp(5062), "1000", &req));
    let by_uri: Vec<(String, u32)> = ok
        .contacts
        .iter()
        .map(|c| (c.uri.clone(), c.expires))
        .collect();
    assert_eq!(
        by_uri,
        vec![
            ("sip:a@192.0.2.10".to_owned(), 300),
            ("sip:b@192.0.2.11".to_owned(), 1200)
        ]
    );
}

#[test]
fn q_values_are_stored_and_echoed() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    let req = register(
        "1000",
        "c1",
        1,
        &["Contact: <sip:a@192.0.2.10>;q=0.5, <sip:b@192.0.2.11>;q=1, <sip:c@192.0.2.12>"],
    );
    let outcome = r.handle_register(t0, udp(5062), "1000", &req);
    let resp = outcome.response(&req, Some("t1")).build();
    let ok = registered(outcome);
    let qs: Vec<Option<u16>> = ok.contacts.iter().map(|c| c.q).collect();
    assert_eq!(qs, vec![Some(500), Some(1000), None]);
    let stored: Vec<Option<u16>> = r.bindings("1000").map(|b| b.q).collect();
    assert_eq!(stored, qs);
    assert_eq!(
        header_values(&resp, "Contact"),
        vec![
            "<sip:a@192.0.2.10>;expires=600;q=0.5",
            "<sip:b@192.0.2.11>;expires=600;q=1",
            "<sip:c@192.0.2.12>;expires=600",
        ]
    );
    // The 200 parses back into the same contacts.
    let reparsed = parse(&String::from_utf8_lossy(&resp.to_bytes()));
    assert_eq!(reparsed.contacts().expect("contacts parse").len(), 3);

    let req = register("1000", "c1", 2, &["Contact: <sip:d@192.0.2.13>;q=1.5"]);
    let err = rejected(r.handle_register(t0, udp(5062), "1000", &req));
    assert_eq!(err.status().0, 400);
    assert_eq!(r.len(), 3);
}

#[test]
fn cseq_rule_rejects_out_of_order_requests_atomically() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    let req = register("1000", "c1", 10, &["Contact: <sip:a@192.0.2.10>"]);
    registered(r.handle_register(t0, udp(5062), "1000", &req));
    drain(&mut r);

    // Same Call-ID, same or lower CSeq: 500 (RFC 3261 §10.3 step 7), nothing changes, even
    // for a new contact in the same request.
    for cseq in [10, 9] {
        let req = register(
            "1000",
            "c1",
            cseq,
            &["Contact: <sip:new@192.0.2.99>, <sip:a@192.0.2.10>;expires=0"],
        );
        let err = rejected(r.handle_register(t0 + secs(1), udp(5062), "1000", &req));
        assert_eq!(err, RegisterError::OutOfOrder { cseq, stored: 10 });
        let resp = RegisterOutcome::Rejected(err).response(&req, None).build();
        assert_eq!(resp.code(), Some(500));
        assert_eq!(contacts_of(&r, "1000"), vec!["sip:a@192.0.2.10"]);
        assert!(drain(&mut r).is_empty());
    }
    // A different Call-ID may carry any CSeq (another client, or a rebooted one).
    let req = register(
        "1000",
        "c2",
        1,
        &["Contact: <sip:a@192.0.2.10>", "Expires: 120"],
    );
    let ok = registered(r.handle_register(t0 + secs(2), udp(5062), "1000", &req));
    assert_eq!(ok.contacts[0].expires, 120);
    let b = r.bindings("1000").next().expect("one binding");
    assert_eq!((b.call_id.as_str(), b.cseq), ("c2", 1));
    // A higher CSeq on the stored Call-ID is in order.
    let req = register("1000", "c2", 2, &["Contact: <sip:a@192.0.2.10>"]);
    registered(r.handle_register(t0 + secs(3), udp(5062), "1000", &req));
}

#[test]
fn equivalent_uri_refreshes_the_same_binding() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    let req = register(
        "1000",
        "c1",
        1,
        &["Contact: <sip:%61lice@Phone.Example.test;transport=TCP>"],
    );
    registered(r.handle_register(t0, tcp(1), "1000", &req));
    drain(&mut r);
    let req = register(
        "1000",
        "c1",
        2,
        &["Contact: <sip:alice@phone.example.test;transport=tcp>"],
    );
    registered(r.handle_register(t0, tcp(1), "1000", &req));
    assert_eq!(r.len(), 1);
    let ev = drain(&mut r);
    // The stored text changed, so the store hears the old record go and the new one come.
    assert!(
        matches!(
            &ev[..],
            [
                RegistrarEvent::Unbound {
                    reason: UnboundReason::Replaced,
                    ..
                },
                RegistrarEvent::Bound(_)
            ]
        ),
        "{ev:?}"
    );
}

#[test]
fn ten_contacts_then_the_oldest_is_replaced() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    for i in 0..10u32 {
        let contact = format!("Contact: <sip:dev{i}@192.0.2.{}>", 10 + i);
        let req = register("1000", &format!("call-{i}"), 1, &[&contact]);
        let ok = registered(r.handle_register(t0 + secs(u64::from(i)), udp(5062), "1000", &req));
        assert_eq!(ok.contacts.len(), i as usize + 1);
    }
    drain(&mut r);
    // dev0 refreshes, so dev1 is now the least recently registered.
    let req = register("1000", "call-0", 2, &["Contact: <sip:dev0@192.0.2.10>"]);
    registered(r.handle_register(t0 + secs(20), udp(5062), "1000", &req));
    drain(&mut r);

    let req = register("1000", "call-10", 1, &["Contact: <sip:dev10@192.0.2.20>"]);
    let ok = registered(r.handle_register(t0 + secs(21), udp(5062), "1000", &req));
    assert_eq!(ok.contacts.len(), 10);
    assert_eq!(r.bindings("1000").count(), 10);
    let ev = drain(&mut r);
    assert_eq!(
        ev[0],
        unbound("1000", "sip:dev1@192.0.2.11", UnboundReason::Replaced)
    );
    assert!(matches!(&ev[1], RegistrarEvent::Bound(b) if b.contact == "sip:dev10@192.0.2.20"));
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(!contacts_of(&r, "1000").contains(&"sip:dev1@192.0.2.11".to_owned()));
    assert!(contacts_of(&r, "1000").contains(&"sip:dev0@192.0.2.10".to_owned()));
}

#[test]
fn one_request_may_not_carry_dozens_of_contacts() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    let many: Vec<String> = (0..33).map(|i| format!("<sip:d{i}@192.0.2.10>")).collect();
    let header = format!("Contact: {}", many.join(", "));
    let req = register("1000", "c1", 1, &[&header]);
    let err = rejected(r.handle_register(t0, udp(5062), "1000", &req));
    assert_eq!(err, RegisterError::TooManyContacts { max: 32 });
    assert_eq!(err.status().0, 400);
    assert!(r.is_empty());
    // Twelve new contacts in one request: the last ten stay.
    let header = format!("Contact: {}", many[..12].join(", "));
    let req = register("1000", "c1", 2, &[&header]);
    let ok = registered(r.handle_register(t0, udp(5062), "1000", &req));
    assert_eq!(ok.contacts.len(), 10);
    assert_eq!(ok.contacts[0].uri, "sip:d2@192.0.2.10");
    let ev = drain(&mut r);
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, RegistrarEvent::Bound(_)))
            .count(),
        10
    );
    assert!(
        !ev.iter()
            .any(|e| matches!(e, RegistrarEvent::Unbound { .. })),
        "{ev:?}"
    );
}

const INSTANCE: &str = "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\"";

#[test]
fn outbound_instance_and_reg_id_replace_their_flow() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    let c1 = format!("Contact: <sip:bob@192.0.2.2;transport=tcp>;reg-id=1;{INSTANCE}");
    let req = register(
        "1000",
        "16CB75F21C70",
        1,
        &["Supported: path, outbound", &c1],
    );
    let outcome = r.handle_register(t0, tcp(1), "1000", &req);
    let resp = outcome.response(&req, Some("t")).build();
    let ok = registered(outcome);
    assert!(ok.outbound);
    assert_eq!(header_values(&resp, "Require"), vec!["outbound"]);
    assert_eq!(
        header_values(&resp, "Contact"),
        vec![format!(
            "<sip:bob@192.0.2.2;transport=tcp>;expires=600;{INSTANCE};reg-id=1"
        )]
    );
    drain(&mut r);

    // The phone reconnects (new connection, new Call-ID) and registers the same instance
    // and reg-id: the binding moves to the new flow instead of adding a second one.
    let req = register("1000", "AAAA0001", 1, &["Supported: path, outbound", &c1]);
    registered(r.handle_register(t0 + secs(5), tcp(2), "1000", &req));
    assert_eq!(r.len(), 1);
    let b = r.bindings("1000").next().expect("one binding");
    assert_eq!(b.flow, tcp(2));
    assert_eq!(
        b.instance.as_deref(),
        Some("<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>")
    );
    assert_eq!(b.reg_id, Some(1));
    let ev = drain(&mut r);
    assert!(
        matches!(&ev[..], [RegistrarEvent::Bound(b)] if b.flow == tcp(2)),
        "{ev:?}"
    );
    // The old connection closing no longer affects it.
    r.handle_flow_closed(t0 + secs(6), ConnId(1));
    assert_eq!(r.len(), 1);

    // A second flow (reg-id 2) of the same instance is a second binding, even with the
    // same contact URI.
    let c2 = format!("Contact: <sip:bob@192.0.2.2;transport=tcp>;reg-id=2;{INSTANCE}");
    let req = register(
        "1000",
        "E05133BD26DD",
        1,
        &["Supported: path, outbound", &c2],
    );
    let ok = registered(r.handle_register(t0 + secs(7), tcp(3), "1000", &req));
    assert_eq!(ok.contacts.len(), 2);
    assert_eq!(r.len(), 2);

    // Without Supported: outbound the rules still apply, but no Require is sent.
    let req = register("1000", "E05133BD26DD", 2, &[&c2]);
    let outcome = r.handle_register(t0 + secs(8), tcp(3), "1000", &req);
    let resp = outcome.response(&req, None).build();
    assert!(!registered(outcome).outbound);
    assert!(header_values(&resp, "Require").is_empty());
    assert_eq!(r.len(), 2);
}

#[test]
fn outbound_validation() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    // Two non-zero contacts where one has a reg-id: 400 (RFC 5626 §6).
    let two = format!("Contact: <sip:bob@192.0.2.2>;reg-id=1;{INSTANCE}, <sip:bob@192.0.2.3>");
    let req = register("1000", "c1", 1, &[&two]);
    let err = rejected(r.handle_register(t0, udp(5062), "1000", &req));
    assert_eq!(err, RegisterError::SeveralOutboundContacts);
    assert_eq!(err.status().0, 400);

    // Through a proxy whose Path lacks `ob`, with Supported: outbound: 439.
    let c = format!("Contact: <sip:bob@192.0.2.2>;reg-id=1;{INSTANCE}");
    let via2 = "Via: SIP/2.0/UDP edge.example.test;branch=z9hG4bKedge1";
    let req = register(
        "1000",
        "c2",
        1,
        &[
            via2,
            "Supported: path, outbound",
            "Path: <sip:edge.example.test;lr>",
            &c,
        ],
    );
    let err = rejected(r.handle_register(t0, udp(5062), "1000", &req));
    assert_eq!(err, RegisterError::FirstHopLacksOutbound);
    assert_eq!(err.status().0, 439);
    // Same, but the client does not support outbound: reg-id is ignored.
    let req = register(
        "1000",
        "c3",
        1,
        &[
            via2,
            "Supported: path",
            "Path: <sip:edge.example.test;lr>",
            &c,
        ],
    );
    let ok = registered(r.handle_register(t0, udp(5062), "1000", &req));
    assert!(!ok.outbound);
    assert_eq!(ok.contacts[0].reg_id, None);
    // With `ob` on the first Path URI, outbound applies.
    let req = register(
        "1000",
        "c4",
        1,
        &[
            via2,
            "Supported: path, outbound",
            "Path: <sip:edge.example.test;lr;ob>",
            &c,
        ],
    );
    let ok = registered(r.handle_register(t0, udp(5062), "1000", &req));
    assert!(ok.outbound);
    assert!(ok.contacts.iter().any(|c| c.reg_id == Some(1)));
    // reg-id without an instance is ignored.
    let req = register("1001", "c5", 1, &["Contact: <sip:x@192.0.2.9>;reg-id=1"]);
    let ok = registered(r.handle_register(t0, udp(5062), "1001", &req));
    assert_eq!(ok.contacts[0].reg_id, None);
}

#[test]
fn path_is_stored_and_echoed() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    let req = register(
        "1000",
        "c1",
        1,
        &[
            "Supported: path",
            "Path: <sip:p3.example.test;lr>,<sip:p1.example.test;lr>",
            "Contact: <sip:ua1@192.0.2.4>",
        ],
    );
    let outcome = r.handle_register(t0, udp(5060), "1000", &req);
    let resp = outcome.response(&req, Some("t")).build();
    let ok = registered(outcome);
    assert_eq!(
        ok.path,
        vec!["<sip:p3.example.test;lr>", "<sip:p1.example.test;lr>"]
    );
    assert_eq!(
        header_values(&resp, "Path"),
        vec!["<sip:p3.example.test;lr>, <sip:p1.example.test;lr>"]
    );
    let b = r.bindings("1000").next().expect("bound");
    assert_eq!(b.path, ok.path);

    // Path from a client that did not ask for it: 420 with Unsupported: path (RFC 3327 §5.3).
    let req = register(
        "1001",
        "c2",
        1,
        &[
            "Path: <sip:p3.example.test;lr>",
            "Contact: <sip:ua2@192.0.2.5>",
        ],
    );
    let err = rejected(r.handle_register(t0, udp(5060), "1001", &req));
    assert_eq!(err, RegisterError::PathNotSupported);
    let resp = RegisterOutcome::Rejected(err).response(&req, None).build();
    assert_eq!(resp.code(), Some(420));
    assert_eq!(header_values(&resp, "Unsupported"), vec!["path"]);
    assert_eq!(r.bindings("1001").count(), 0);
}

#[test]
fn bindings_expire_at_their_virtual_time() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    // TCP, so no keep-alive timers interleave.
    let req = register("1000", "c1", 1, &["Contact: <sip:a@192.0.2.10>;expires=60"]);
    registered(r.handle_register(t0, tcp(1), "1000", &req));
    let req = register("1000", "c2", 1, &["Contact: <sip:b@192.0.2.11>;expires=90"]);
    registered(r.handle_register(t0 + secs(10), tcp(2), "1000", &req));
    drain(&mut r);
    assert_eq!(r.poll_timeout(), Some(t0 + secs(60)));

    r.handle_timeout(t0 + secs(59));
    assert!(drain(&mut r).is_empty());
    assert_eq!(r.len(), 2);

    r.handle_timeout(t0 + secs(60));
    assert_eq!(
        drain(&mut r),
        vec![unbound("1000", "sip:a@192.0.2.10", UnboundReason::Expired)]
    );
    assert_eq!(r.poll_timeout(), Some(t0 + secs(100)));

    r.handle_timeout(t0 + secs(100));
    assert_eq!(
        drain(&mut r),
        vec![
            unbound("1000", "sip:b@192.0.2.11", UnboundReason::Expired),
            state("1000", false)
        ]
    );
    assert!(r.is_empty());
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn a_refresh_moves_the_expiry() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    let req = register("1000", "c1", 1, &["Contact: <sip:a@192.0.2.10>;expires=60"]);
    registered(r.handle_register(t0, tcp(1), "1000", &req));
    let req = register("1000", "c1", 2, &["Contact: <sip:a@192.0.2.10>;expires=60"]);
    registered(r.handle_register(t0 + secs(30), tcp(1), "1000", &req));
    drain(&mut r);
    // The stale timer at t0+60 is not reported.
    assert_eq!(r.poll_timeout(), Some(t0 + secs(90)));
    r.handle_timeout(t0 + secs(60));
    assert!(drain(&mut r).is_empty());
    assert_eq!(r.len(), 1);
}

#[test]
fn restore_drops_expired_bindings_and_clears_connections() {
    let t0 = base();
    let stored = |contact: &str, expires: Instant, flow: Flow| Binding {
        aor: "1000".into(),
        contact: contact.into(),
        flow,
        expires,
        q: None,
        instance: None,
        reg_id: None,
        path: Vec::new(),
        call_id: "c".into(),
        cseq: 1,
        user_agent: None,
    };
    let mut r = Registrar::new(RegistrarConfig::default());
    let later = t0 + secs(1000);
    r.restore(
        later,
        vec![
            stored("sip:old@192.0.2.10", t0 + secs(600), udp(5062)),
            stored("sip:live@192.0.2.11", t0 + secs(1500), tcp(4)),
            Binding {
                aor: "1001".into(),
                ..stored("sip:gone@192.0.2.12", later, udp(5063))
            },
        ],
    );
    assert_eq!(
        drain(&mut r),
        vec![
            unbound("1000", "sip:old@192.0.2.10", UnboundReason::Expired),
            state("1000", true),
            RegistrarEvent::Unbound {
                aor: "1001".into(),
                contact: "sip:gone@192.0.2.12".into(),
                instance: None,
                reg_id: None,
                reason: UnboundReason::Expired
            },
        ]
    );
    assert_eq!((r.len(), r.registered_aors()), (1, 1));
    let b = r.bindings("1000").next().expect("restored");
    assert_eq!(b.contact, "sip:live@192.0.2.11");
    assert_eq!(b.flow.conn, None, "connection ids do not survive a restart");
    // A reused connection id after the restart does not touch it.
    r.handle_flow_closed(later, ConnId(4));
    assert_eq!(r.len(), 1);
    r.handle_timeout(t0 + secs(1500));
    assert_eq!(r.len(), 0);
}

fn keepalives(ev: &[RegistrarEvent]) -> Vec<(Flow, String)> {
    ev.iter()
        .filter_map(|e| match e {
            RegistrarEvent::KeepAlive { flow, contact, .. } => Some((*flow, contact.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn udp_flows_get_keepalives_every_30_s_and_tcp_flows_none() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    let req = register(
        "1000",
        "c1",
        1,
        &["Contact: <sip:a@192.0.2.10:5062>", "Expires: 3600"],
    );
    registered(r.handle_register(t0, udp(5062), "1000", &req));
    let req = register(
        "1001",
        "c2",
        1,
        &["Contact: <sip:b@192.0.2.20>;transport=tcp", "Expires: 3600"],
    );
    registered(r.handle_register(t0, tcp(1), "1001", &req));
    drain(&mut r);

    let mut fired = Vec::new();
    let mut now = t0;
    while now < t0 + secs(600) {
        now = r.poll_timeout().expect("keep-alive pending");
        r.handle_timeout(now);
        for (flow, contact) in keepalives(&drain(&mut r)) {
            fired.push((now - t0, flow, contact));
            r.handle_keepalive_result(now, &flow, KeepAliveOutcome::Answered);
        }
    }
    assert_eq!(fired.len(), 20);
    for (i, (at, flow, contact)) in fired.iter().enumerate() {
        assert_eq!(*at, secs(30 * (i as u64 + 1)));
        assert_eq!(*flow, udp(5062));
        assert_eq!(contact, "sip:a@192.0.2.10:5062");
    }
    assert_eq!(r.len(), 2);
}

#[test]
fn register_traffic_restarts_the_keepalive_interval() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    let req = register("1000", "c1", 1, &["Contact: <sip:a@192.0.2.10>"]);
    registered(r.handle_register(t0, udp(5062), "1000", &req));
    assert_eq!(r.poll_timeout(), Some(t0 + secs(30)));
    let req = register("1000", "c1", 2, &["Contact: <sip:a@192.0.2.10>"]);
    registered(r.handle_register(t0 + secs(20), udp(5062), "1000", &req));
    assert_eq!(r.poll_timeout(), Some(t0 + secs(50)));
    r.handle_timeout(t0 + secs(30));
    assert!(keepalives(&drain(&mut r)).is_empty());
}

#[test]
fn unanswered_keepalives_drop_the_flow() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    // A DECT base: two extensions on one flow (PRV-10) get one keep-alive.
    for (aor, user) in [("1000", "a"), ("1001", "b")] {
        let contact = format!("Contact: <sip:{user}@192.0.2.10:5062>");
        let req = register(aor, &format!("c-{aor}"), 1, &[&contact]);
        registered(r.handle_register(t0, udp(5062), aor, &req));
    }
    // Another phone on its own flow keeps answering.
    let req = register("1002", "c3", 1, &["Contact: <sip:c@192.0.2.10:5070>"]);
    registered(r.handle_register(t0, udp(5070), "1002", &req));
    drain(&mut r);

    let mut now = t0;
    let mut dect_pings = 0;
    for round in 1..=3u64 {
        now = t0 + secs(30 * round);
        r.handle_timeout(now);
        let pings = keepalives(&drain(&mut r));
        assert_eq!(pings.len(), 2, "one per flow: {pings:?}");
        for (flow, _) in pings {
            if flow == udp(5062) {
                dect_pings += 1;
                // Round 1 times out, round 2's answer resets the count, round 3 times out.
                let outcome = if round == 2 {
                    KeepAliveOutcome::Answered
                } else {
                    KeepAliveOutcome::Timeout
                };
                r.handle_keepalive_result(now, &flow, outcome);
            } else {
                r.handle_keepalive_result(now, &flow, KeepAliveOutcome::Answered);
            }
        }
        assert_eq!(r.len(), 3, "round {round}");
    }
    assert_eq!(dect_pings, 3);
    // Failures so far in a row: 1 (round 3). Two more timeouts drop both extensions.
    r.handle_keepalive_result(now, &udp(5062), KeepAliveOutcome::Timeout);
    assert_eq!(r.len(), 3);
    r.handle_keepalive_result(now, &udp(5062), KeepAliveOutcome::Timeout);
    let ev = drain(&mut r);
    assert_eq!(
        ev,
        vec![
            unbound("1000", "sip:a@192.0.2.10:5062", UnboundReason::FlowFailed),
            state("1000", false),
            unbound("1001", "sip:b@192.0.2.10:5062", UnboundReason::FlowFailed),
            state("1001", false),
        ]
    );
    assert_eq!(contacts_of(&r, "1002"), vec!["sip:c@192.0.2.10:5070"]);

    // A transport error drops a flow at once.
    r.handle_keepalive_result(now, &udp(5070), KeepAliveOutcome::TransportError);
    assert_eq!(
        drain(&mut r),
        vec![
            unbound("1002", "sip:c@192.0.2.10:5070", UnboundReason::FlowFailed),
            state("1002", false),
        ]
    );
    assert!(r.is_empty());
    // Results for flows that are gone are ignored.
    r.handle_keepalive_result(now, &udp(5070), KeepAliveOutcome::Timeout);
    assert!(drain(&mut r).is_empty());
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn closed_connection_drops_its_bindings() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    let req = register(
        "1000",
        "c1",
        1,
        &["Contact: <sip:a@192.0.2.20;transport=tcp>"],
    );
    registered(r.handle_register(t0, tcp(5), "1000", &req));
    let req = register("1000", "c2", 1, &["Contact: <sip:b@192.0.2.10>"]);
    registered(r.handle_register(t0, udp(5062), "1000", &req));
    let req = register(
        "1001",
        "c3",
        1,
        &["Contact: <sip:c@192.0.2.21;transport=tcp>"],
    );
    registered(r.handle_register(t0, tcp(6), "1001", &req));
    drain(&mut r);

    r.handle_flow_closed(t0 + secs(1), ConnId(5));
    assert_eq!(
        drain(&mut r),
        vec![unbound(
            "1000",
            "sip:a@192.0.2.20;transport=tcp",
            UnboundReason::FlowFailed
        )]
    );
    assert_eq!(contacts_of(&r, "1000"), vec!["sip:b@192.0.2.10"]);
    r.handle_flow_closed(t0 + secs(1), ConnId(6));
    assert_eq!(
        drain(&mut r),
        vec![
            unbound(
                "1001",
                "sip:c@192.0.2.21;transport=tcp",
                UnboundReason::FlowFailed
            ),
            state("1001", false)
        ]
    );
    r.handle_flow_closed(t0 + secs(1), ConnId(99));
    assert!(drain(&mut r).is_empty());
}

fn torture(name: &str) -> Message {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "tests",
        "data",
        "rfc4475",
        &format!("{name}.dat"),
    ]
    .iter()
    .collect();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Message::parse_datagram(Bytes::from(bytes), &MessageLimits::default())
        .unwrap_or_else(|e| panic!("{name} parses: {e:?}"))
}

#[test]
fn rfc4475_contact_parameters_and_escaped_headers() {
    let t0 = base();
    let mut r = Registrar::new(RegistrarConfig::default());
    // cparam01: `unknownparam` is a Contact header parameter, not part of the URI.
    let req = torture("cparam01");
    registered(r.handle_register(t0, udp(5060), "watson", &req));
    assert_eq!(
        contacts_of(&r, "watson"),
        vec!["sip:+19725552222@gw1.example.net"]
    );

    // cparam02: inside <>, `unknownparam` is a URI parameter and stays with the URI.
    let mut r = Registrar::new(RegistrarConfig::default());
    let req = torture("cparam02");
    registered(r.handle_register(t0, udp(5060), "watson", &req));
    assert_eq!(
        contacts_of(&r, "watson"),
        vec!["sip:+19725552222@gw1.example.net;unknownparam"]
    );

    // regescrt: the escaped Route header stays in the contact URI, never becomes a header.
    let mut r = Registrar::new(RegistrarConfig::default());
    let req = torture("regescrt");
    let outcome = r.handle_register(t0, udp(5060), "user", &req);
    let resp = outcome.response(&req, Some("t")).build();
    registered(outcome);
    assert_eq!(
        contacts_of(&r, "user"),
        vec!["sip:user@example.com?Route=%3Csip:sip.example.com%3E"]
    );
    assert_eq!(
        header_values(&resp, "Contact"),
        vec!["<sip:user@example.com?Route=%3Csip:sip.example.com%3E>;expires=600"]
    );
    assert!(resp.first(HeaderName::Route).is_none());

    // regbadct: the same URI without <> is not a valid Contact: 400.
    let req = torture("regbadct");
    let err = rejected(r.handle_register(t0, udp(5060), "user", &req));
    assert_eq!(err.status().0, 400);
}

// ---------------------------------------------------------------------------------------
// Property test: random register / refresh / remove / time-advance sequences.

#[derive(Debug, Clone)]
enum Op {
    Register {
        aor: u8,
        contact: u8,
        expires: Option<u32>,
        instance: Option<(u8, u8)>,
        call: u8,
        cseq_step: i8,
        flow: u8,
    },
    Wildcard {
        aor: u8,
        call: u8,
    },
    Advance(u32),
    KeepAlive {
        flow: u8,
        outcome: u8,
    },
    Close(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            0u8..3,
            0u8..14,
            prop_oneof![
                Just(None),
                Just(Some(0)),
                Just(Some(30)),
                (60u32..5000).prop_map(Some)
            ],
            prop::option::weighted(0.2, (0u8..2, 1u8..3)),
            0u8..3,
            -1i8..3,
            0u8..5,
        )
            .prop_map(|(aor, contact, expires, instance, call, cseq_step, flow)| Op::Register {
                aor,
                contact,
                expires,
                instance,
                call,
                cseq_step,
                flow
            }),
        1 => (0u8..3, 0u8..3).prop_map(|(aor, call)| Op::Wildcard { aor, call }),
        3 => (0u32..900).prop_map(Op::Advance),
        1 => (0u8..5, 0u8..3).prop_map(|(flow, outcome)| Op::KeepAlive { flow, outcome }),
        1 => (0u8..5).prop_map(Op::Close),
    ]
}

fn prop_flow(i: u8) -> Flow {
    match i {
        0..=2 => udp(5060 + u16::from(i)),
        n => tcp(u64::from(n)),
    }
}

/// What the events say the table holds.
#[derive(Default)]
struct Model {
    bindings: HashSet<(String, String, Option<String>, Option<u32>)>,
    registered: HashSet<String>,
}

impl Model {
    fn apply(&mut self, ev: &RegistrarEvent) -> Result<(), TestCaseError> {
        match ev {
            RegistrarEvent::Bound(b) => {
                self.bindings.insert((
                    b.aor.clone(),
                    b.contact.clone(),
                    b.instance.clone(),
                    b.reg_id,
                ));
            }
            RegistrarEvent::Unbound {
                aor,
                contact,
                instance,
                reg_id,
                ..
            } => {
                let key = (aor.clone(), contact.clone(), instance.clone(), *reg_id);
                prop_assert!(self.bindings.remove(&key), "Unbound for unknown {key:?}");
            }
            RegistrarEvent::AorState { aor, registered } => {
                if *registered {
                    prop_assert!(
                        self.registered.insert(aor.clone()),
                        "{aor} registered twice"
                    );
                } else {
                    prop_assert!(self.registered.remove(aor), "{aor} unregistered twice");
                }
            }
            RegistrarEvent::KeepAlive { .. } => {}
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_sequences_keep_the_invariants(ops in prop::collection::vec(op(), 1..80)) {
        let config = RegistrarConfig { max_contacts: 4, ..RegistrarConfig::default() };
        let max = config.max_contacts;
        let mut r = Registrar::new(config);
        let t0 = base();
        let mut now = t0;
        let mut cseq = [[100u32; 3]; 3];
        let mut model = Model::default();
        for op in ops {
            let mut advanced = false;
            match op {
                Op::Register { aor, contact, expires, instance, call, cseq_step, flow } => {
                    let aor_s = format!("ext{aor}");
                    let seq = &mut cseq[aor as usize][call as usize];
                    *seq = seq.saturating_add_signed(i32::from(cseq_step));
                    let mut value = format!("Contact: <sip:dev{contact}@192.0.2.{}>", 10 + contact);
                    if let Some(e) = expires {
                        value.push_str(&format!(";expires={e}"));
                    }
                    if let Some((inst, reg)) = instance {
                        value.push_str(&format!(
                            ";+sip.instance=\"<urn:uuid:{inst}>\";reg-id={reg}"
                        ));
                    }
                    let req = register(&aor_s, &format!("call{call}"), *seq, &[&value]);
                    let outcome = r.handle_register(now, prop_flow(flow), &aor_s, &req);
                    if let RegisterOutcome::Registered(ok) = &outcome {
                        prop_assert_eq!(ok.contacts.len(), r.bindings(&aor_s).count());
                        prop_assert!(ok.contacts.iter().all(|c| c.expires >= 1 && c.expires <= 3600));
                    }
                }
                Op::Wildcard { aor, call } => {
                    let aor_s = format!("ext{aor}");
                    let seq = &mut cseq[aor as usize][call as usize];
                    *seq += 1;
                    let req = register(&aor_s, &format!("call{call}"), *seq, &["Contact: *", "Expires: 0"]);
                    let _ = r.handle_register(now, prop_flow(0), &aor_s, &req);
                }
                Op::Advance(s) => {
                    now += secs(u64::from(s));
                    r.handle_timeout(now);
                    advanced = true;
                }
                Op::KeepAlive { flow, outcome } => {
                    let outcome = [KeepAliveOutcome::Answered, KeepAliveOutcome::Timeout, KeepAliveOutcome::TransportError][outcome as usize];
                    r.handle_keepalive_result(now, &prop_flow(flow), outcome);
                }
                Op::Close(flow) => {
                    if let Some(conn) = prop_flow(flow).conn {
                        r.handle_flow_closed(now, conn);
                    }
                }
            }
            while let Some(ev) = r.poll_event() {
                model.apply(&ev)?;
            }
            prop_assert_eq!(model.bindings.len(), r.len());
            prop_assert_eq!(model.registered.len(), r.registered_aors());
            for aor in 0..3 {
                let aor_s = format!("ext{aor}");
                let n = r.bindings(&aor_s).count();
                prop_assert!(n <= max, "{} has {} bindings", aor_s, n);
                prop_assert_eq!(n > 0, model.registered.contains(&aor_s));
            }
            if advanced {
                prop_assert!(r.all().all(|b| b.expires > now), "expired binding visible");
                prop_assert!(r.poll_timeout().is_none_or(|t| t > now));
            }
        }
    }
}
