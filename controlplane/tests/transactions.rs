//! RFC 3261 §17 transactions under virtual time: every timer fires at its virtual moment
//! with the RFC retransmission schedule, retransmissions are absorbed on both sides,
//! reliable and unreliable transports differ as the RFC says, the ACK for a non-2xx is
//! built by the layer, a 2xx ends the INVITE transaction's retransmissions, requests match
//! by branch or by the RFC 2543 rules, and the CANCEL race comes out right in both orders.
//!
//! Time is a base `Instant` plus offsets; nothing sleeps. A property test drives random
//! operation sequences and checks that every transaction ends.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use voxgate_controlplane::config::{MessageLimits, TimerConfig};
use voxgate_controlplane::endpoint::{ConnId, Peer, Transmit};
use voxgate_controlplane::sip::{Message, Method, ResponseBuilder, Transport};
use voxgate_controlplane::transaction::{
    ClientInput, ServerInput, TimerKind, TransactionError, TransactionEvent, Transactions, TxId,
    TxState,
};

const UDP: Transport = Transport::Udp;
const TCP: Transport = Transport::Tcp;

#[allow(clippy::disallowed_methods)] // the one real instant; every later time is virtual
fn base() -> Instant {
    Instant::now()
}

fn remote() -> SocketAddr {
    "192.0.2.10:5070".parse().expect("literal address")
}

fn peer(transport: Transport) -> Peer {
    Peer {
        transport,
        remote: remote(),
        local: "192.0.2.1:5060".parse().expect("literal address"),
        conn: transport.is_reliable().then_some(ConnId(7)),
    }
}

fn parse(text: &str) -> Message {
    Message::parse_datagram(
        Bytes::from(text.replace('\n', "\r\n")),
        &MessageLimits::default(),
    )
    .expect("test message parses")
}

/// A request as a phone at 192.0.2.10 would send it.
fn request(
    method: &str,
    branch: &str,
    cseq: u32,
    to_tag: Option<&str>,
    transport: Transport,
) -> Message {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    parse(&format!(
        "{method} sip:bob@example.com SIP/2.0\n\
         Via: SIP/2.0/{} 192.0.2.10:5070;branch={branch}\n\
         Max-Forwards: 70\n\
         From: \"Alice\" <sip:alice@example.com>;tag=a1\n\
         To: <sip:bob@example.com>{to_tag}\n\
         Call-ID: call-1@192.0.2.10\n\
         CSeq: {cseq} {method}\n\
         Content-Length: 0\n\n",
        transport.via_token()
    ))
}

/// A request voxgate sends (its Via, a Route set, an RFC 3261 branch).
fn outgoing(method: &str, branch: &str, transport: Transport) -> Message {
    parse(&format!(
        "{method} sip:carol@198.51.100.7 SIP/2.0\n\
         Via: SIP/2.0/{} 192.0.2.1:5060;branch={branch}\n\
         Route: <sip:edge.example.net;lr>\n\
         Max-Forwards: 70\n\
         From: <sip:voxgate@example.com>;tag=vx1\n\
         To: <sip:carol@example.net>\n\
         Call-ID: out-1@192.0.2.1\n\
         CSeq: 42 {method}\n\
         Content-Length: 0\n\n",
        transport.via_token()
    ))
}

fn response(req: &Message, code: u16, to_tag: Option<&str>) -> Message {
    ResponseBuilder::new(req, code, "Reason", to_tag).build()
}

/// Parse bytes as they went on the wire.
fn parse_wire(payload: &Bytes) -> Message {
    Message::parse_datagram(payload.clone(), &MessageLimits::default())
        .expect("wire message parses")
}

fn first_line(payload: &Bytes) -> String {
    let end = payload
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

/// What happened at one virtual moment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Log {
    Sent(String),
    Timeout(TimerKind),
    Terminated,
}

/// A `Transactions` with a virtual clock.
struct Sim {
    txs: Transactions,
    t0: Instant,
    now: Instant,
}

impl Sim {
    fn new() -> Sim {
        let t0 = base();
        Sim {
            txs: Transactions::new(TimerConfig::default()),
            t0,
            now: t0,
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn set(&mut self, ms: u64) -> Instant {
        self.now = self.at(ms);
        self.now
    }

    fn ms(&self, t: Instant) -> u64 {
        u64::try_from(t.duration_since(self.t0).as_millis()).expect("short test")
    }

    fn transmits(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.txs.poll_transmit()).collect()
    }

    fn sent(&mut self) -> Vec<String> {
        self.transmits()
            .iter()
            .map(|t| first_line(&t.payload))
            .collect()
    }

    fn events(&mut self) -> Vec<TransactionEvent> {
        std::iter::from_fn(|| self.txs.poll_event()).collect()
    }

    /// Fire every timer up to `end_ms` at its own moment; log what happened when.
    fn run_until(&mut self, end_ms: u64) -> Vec<(u64, Log)> {
        let end = self.at(end_ms);
        let mut log = Vec::new();
        while let Some(t) = self.txs.poll_timeout().filter(|t| *t <= end) {
            assert!(t >= self.now, "a timer in the past");
            self.now = t;
            self.txs.handle_timeout(t);
            let ms = self.ms(t);
            for line in self.sent() {
                log.push((ms, Log::Sent(line)));
            }
            for e in self.events() {
                log.push((
                    ms,
                    match e {
                        TransactionEvent::Timeout { timer, .. } => Log::Timeout(timer),
                        TransactionEvent::Terminated { .. } => Log::Terminated,
                        other => panic!("unexpected event {other:?}"),
                    },
                ));
            }
            assert!(
                self.txs.poll_timeout().is_none_or(|next| next > t),
                "a due timer survived handle_timeout"
            );
        }
        self.now = end;
        log
    }

    fn server_new(&mut self, req: Message, transport: Transport) -> TxId {
        match self.txs.handle_request(self.now, peer(transport), req) {
            Ok(ServerInput::New { tx, .. }) => tx,
            other => panic!("expected a new transaction, got {other:?}"),
        }
    }

    fn server_input(&mut self, req: Message, transport: Transport) -> ServerInput {
        self.txs
            .handle_request(self.now, peer(transport), req)
            .expect("matchable request")
    }

    fn respond(&mut self, tx: TxId, resp: Message) {
        self.txs.respond(self.now, tx, resp).expect("respond");
    }
}

fn sent_at(log: &[(u64, Log)], line: &str) -> Vec<u64> {
    log.iter()
        .filter(|(_, l)| *l == Log::Sent(line.into()))
        .map(|(ms, _)| *ms)
        .collect()
}

fn s(line: &str) -> Log {
    Log::Sent(line.into())
}

// ---------------------------------------------------------------- server INVITE

#[test]
fn server_invite_sends_100_trying_at_once_to_the_source() {
    let mut sim = Sim::new();
    let inv = request("INVITE", "z9hG4bKinv1", 1, None, UDP);
    let tx = sim.server_new(inv, UDP);
    let out = sim.transmits();
    assert_eq!(out.len(), 1);
    assert_eq!(first_line(&out[0].payload), "SIP/2.0 100 Trying");
    assert_eq!(out[0].destination, remote());
    assert_eq!(out[0].transport, UDP);
    let trying = parse_wire(&out[0].payload);
    assert_eq!(trying.to().expect("To").tag(), None, "no To tag on a 100");
    assert_eq!(sim.txs.state(tx), Some(TxState::Proceeding));
    assert_eq!(sim.txs.len(), 1);
    // Nothing else is armed while the TU thinks: the transaction waits for it.
    assert_eq!(sim.txs.poll_timeout(), None);
}

#[test]
fn server_invite_no_100_when_the_tu_sends_a_provisional_first() {
    let mut sim = Sim::new();
    let inv = request("INVITE", "z9hG4bKinv1", 1, None, UDP);
    let tx = sim.server_new(inv.clone(), UDP);
    sim.respond(tx, response(&inv, 180, Some("b1")));
    assert_eq!(sim.sent(), vec!["SIP/2.0 180 Reason"]);
}

#[test]
fn server_invite_retransmissions_get_the_latest_response() {
    let mut sim = Sim::new();
    let inv = request("INVITE", "z9hG4bKinv1", 1, None, UDP);
    let tx = sim.server_new(inv.clone(), UDP);
    assert_eq!(sim.sent(), vec!["SIP/2.0 100 Trying"]);
    sim.set(500);
    assert_eq!(
        sim.server_input(inv.clone(), UDP),
        ServerInput::Absorbed { tx }
    );
    assert_eq!(sim.sent(), vec!["SIP/2.0 100 Trying"]);
    sim.respond(tx, response(&inv, 180, Some("b1")));
    assert_eq!(sim.sent(), vec!["SIP/2.0 180 Reason"]);
    assert_eq!(
        sim.server_input(inv.clone(), UDP),
        ServerInput::Absorbed { tx }
    );
    assert_eq!(sim.sent(), vec!["SIP/2.0 180 Reason"]);
    sim.respond(tx, response(&inv, 486, Some("b1")));
    assert_eq!(sim.sent(), vec!["SIP/2.0 486 Reason"]);
    assert_eq!(sim.server_input(inv, UDP), ServerInput::Absorbed { tx });
    assert_eq!(sim.sent(), vec!["SIP/2.0 486 Reason"]);
    assert_eq!(sim.txs.len(), 1);
}

#[test]
fn server_invite_timer_g_retransmits_until_timer_h_on_udp() {
    let mut sim = Sim::new();
    let inv = request("INVITE", "z9hG4bKinv1", 1, None, UDP);
    let tx = sim.server_new(inv.clone(), UDP);
    sim.sent();
    sim.respond(tx, response(&inv, 486, Some("b1")));
    assert_eq!(sim.sent(), vec!["SIP/2.0 486 Reason"]);
    assert_eq!(sim.txs.state(tx), Some(TxState::Completed));
    let log = sim.run_until(60_000);
    // G: T1, doubling, capped at T2 = 4 s; H = 64·T1 = 32 s.
    assert_eq!(
        sent_at(&log, "SIP/2.0 486 Reason"),
        vec![500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
    );
    assert_eq!(
        log.iter()
            .filter(|(_, l)| !matches!(l, Log::Sent(_)))
            .cloned()
            .collect::<Vec<_>>(),
        vec![
            (32_000, Log::Timeout(TimerKind::H)),
            (32_000, Log::Terminated)
        ]
    );
    assert!(sim.txs.is_empty());
    assert_eq!(sim.txs.poll_timeout(), None);
}

#[test]
fn server_invite_on_tcp_has_no_timer_g_but_timer_h() {
    let mut sim = Sim::new();
    let inv = request("INVITE", "z9hG4bKinv1", 1, None, TCP);
    let tx = sim.server_new(inv.clone(), TCP);
    let out = sim.transmits();
    assert_eq!(out[0].conn, Some(ConnId(7)));
    sim.respond(tx, response(&inv, 603, Some("b1")));
    sim.sent();
    let log = sim.run_until(60_000);
    assert_eq!(
        log,
        vec![
            (32_000, Log::Timeout(TimerKind::H)),
            (32_000, Log::Terminated)
        ]
    );
}

#[test]
fn server_invite_ack_confirms_and_timer_i_absorbs_acks_on_udp() {
    let mut sim = Sim::new();
    let inv = request("INVITE", "z9hG4bKinv1", 1, None, UDP);
    let tx = sim.server_new(inv.clone(), UDP);
    sim.sent();
    sim.respond(tx, response(&inv, 486, Some("b1")));
    sim.sent();
    let log = sim.run_until(1_000);
    assert_eq!(log, vec![(500, s("SIP/2.0 486 Reason"))]);
    // The ACK of §17.1.1.3 (same branch as the INVITE).
    let ack = request("ACK", "z9hG4bKinv1", 1, Some("b1"), UDP);
    assert_eq!(
        sim.server_input(ack.clone(), UDP),
        ServerInput::Absorbed { tx }
    );
    assert_eq!(sim.txs.state(tx), Some(TxState::Confirmed));
    assert!(sim.sent().is_empty());
    sim.set(2_000);
    assert_eq!(sim.server_input(ack, UDP), ServerInput::Absorbed { tx });
    assert_eq!(sim.server_input(inv, UDP), ServerInput::Absorbed { tx });
    assert!(sim.sent().is_empty(), "Confirmed answers nothing");
    // G and H stopped; I = T4 = 5 s after the ACK at 1 s.
    let log = sim.run_until(60_000);
    assert_eq!(log, vec![(6_000, Log::Terminated)]);
}

#[test]
fn server_invite_ack_on_tcp_terminates_at_once() {
    let mut sim = Sim::new();
    let inv = request("INVITE", "z9hG4bKinv1", 1, None, TCP);
    let tx = sim.server_new(inv.clone(), TCP);
    sim.respond(tx, response(&inv, 486, Some("b1")));
    sim.sent();
    sim.set(100);
    let ack = request("ACK", "z9hG4bKinv1", 1, Some("b1"), TCP);
    assert_eq!(sim.server_input(ack, TCP), ServerInput::Absorbed { tx });
    assert_eq!(sim.events(), vec![TransactionEvent::Terminated { tx }]);
    assert!(sim.txs.is_empty());
    assert_eq!(sim.txs.poll_timeout(), None);
}

#[test]
fn server_invite_2xx_accepted_absorbs_invites_and_passes_the_ack() {
    let mut sim = Sim::new();
    let inv = request("INVITE", "z9hG4bKinv1", 1, None, UDP);
    let tx = sim.server_new(inv.clone(), UDP);
    sim.sent();
    let ok = response(&inv, 200, Some("b1"));
    sim.respond(tx, ok.clone());
    assert_eq!(sim.sent(), vec!["SIP/2.0 200 Reason"]);
    assert_eq!(sim.txs.state(tx), Some(TxState::Accepted));
    // A retransmitted INVITE is absorbed silently: the TU retransmits its 2xx.
    sim.set(400);
    assert_eq!(
        sim.server_input(inv.clone(), UDP),
        ServerInput::Absorbed { tx }
    );
    assert!(sim.sent().is_empty());
    sim.respond(tx, ok);
    assert_eq!(sim.sent(), vec!["SIP/2.0 200 Reason"]);
    assert_eq!(
        sim.txs
            .respond(sim.now, tx, response(&inv, 487, Some("b1"))),
        Err(TransactionError::FinalAlreadySent { tx, code: 487 })
    );
    // The ACK for a 2xx has its own branch; it is matched by dialog identity.
    sim.set(600);
    let ack = request("ACK", "z9hG4bKack2xx", 1, Some("b1"), UDP);
    match sim.server_input(ack, UDP) {
        ServerInput::AckFor2xx { invite, ack } => {
            assert_eq!(invite, tx);
            assert_eq!(ack.method(), Some(&Method::Ack));
        }
        other => panic!("expected AckFor2xx, got {other:?}"),
    }
    // An ACK with another To tag is not for this 2xx.
    let other = request("ACK", "z9hG4bKack3", 1, Some("zz"), UDP);
    assert!(matches!(
        sim.server_input(other, UDP),
        ServerInput::StrayAck { .. }
    ));
    // Timer L = 64·T1 after the first 2xx.
    let log = sim.run_until(60_000);
    assert_eq!(log, vec![(32_000, Log::Terminated)]);
    let late = request("ACK", "z9hG4bKack2xx", 1, Some("b1"), UDP);
    assert!(matches!(
        sim.server_input(late, UDP),
        ServerInput::StrayAck { .. }
    ));
    // After termination the same INVITE is a new transaction.
    assert!(matches!(
        sim.server_input(inv, UDP),
        ServerInput::New { .. }
    ));
}

// ---------------------------------------------------------------- server non-INVITE

#[test]
fn server_non_invite_absorbs_in_trying_and_resends_in_completed_until_timer_j() {
    let mut sim = Sim::new();
    let opt = request("OPTIONS", "z9hG4bKopt1", 1, None, UDP);
    let tx = sim.server_new(opt.clone(), UDP);
    assert!(sim.sent().is_empty(), "no 100 for a non-INVITE");
    assert_eq!(sim.txs.state(tx), Some(TxState::Trying));
    sim.set(500);
    assert_eq!(
        sim.server_input(opt.clone(), UDP),
        ServerInput::Absorbed { tx }
    );
    assert!(sim.sent().is_empty(), "nothing to resend in Trying");
    sim.set(1_000);
    sim.respond(tx, response(&opt, 200, Some("b1")));
    assert_eq!(sim.sent(), vec!["SIP/2.0 200 Reason"]);
    assert_eq!(sim.txs.state(tx), Some(TxState::Completed));
    sim.set(2_000);
    assert_eq!(sim.server_input(opt, UDP), ServerInput::Absorbed { tx });
    assert_eq!(sim.sent(), vec!["SIP/2.0 200 Reason"]);
    assert!(matches!(
        sim.txs.respond(
            sim.now,
            tx,
            response(&request("OPTIONS", "z9hG4bKopt1", 1, None, UDP), 500, None)
        ),
        Err(TransactionError::FinalAlreadySent { .. })
    ));
    // J = 64·T1 after the final response at 1 s.
    let log = sim.run_until(60_000);
    assert_eq!(log, vec![(33_000, Log::Terminated)]);
}

#[test]
fn server_non_invite_proceeding_resends_the_provisional() {
    let mut sim = Sim::new();
    let reg = request("REGISTER", "z9hG4bKreg1", 1, None, UDP);
    let tx = sim.server_new(reg.clone(), UDP);
    sim.respond(tx, response(&reg, 100, None));
    assert_eq!(sim.sent(), vec!["SIP/2.0 100 Reason"]);
    assert_eq!(sim.txs.state(tx), Some(TxState::Proceeding));
    assert_eq!(sim.server_input(reg, UDP), ServerInput::Absorbed { tx });
    assert_eq!(sim.sent(), vec!["SIP/2.0 100 Reason"]);
}

#[test]
fn server_non_invite_on_tcp_ends_with_the_final_response() {
    let mut sim = Sim::new();
    let opt = request("OPTIONS", "z9hG4bKopt1", 1, None, TCP);
    let tx = sim.server_new(opt.clone(), TCP);
    sim.respond(tx, response(&opt, 200, Some("b1")));
    assert_eq!(sim.sent(), vec!["SIP/2.0 200 Reason"]);
    assert_eq!(sim.events(), vec![TransactionEvent::Terminated { tx }]);
    assert!(sim.txs.is_empty());
}

#[test]
fn completed_non_invite_absorbs_retransmissions_until_timer_j() {
    // In Completed the layer keeps the transaction in a compact form; seen from outside
    // it behaves as before: every retransmission gets the final response again, to the
    // request's source, and a second final response is refused.
    let mut sim = Sim::new();
    let reg = request("REGISTER", "z9hG4bKcmp1", 1, None, UDP);
    let tx = sim.server_new(reg.clone(), UDP);
    sim.respond(tx, response(&reg, 200, Some("b1")));
    let first = sim.transmits();
    assert_eq!(first.len(), 1);
    for ms in [500, 1_500, 3_500, 31_999] {
        sim.set(ms);
        assert_eq!(
            sim.server_input(reg.clone(), UDP),
            ServerInput::Absorbed { tx }
        );
        assert_eq!(
            sim.transmits(),
            first,
            "the same response, to the same peer"
        );
        assert_eq!(sim.txs.state(tx), Some(TxState::Completed));
    }
    assert!(matches!(
        sim.txs.respond(sim.now, tx, response(&reg, 500, None)),
        Err(TransactionError::FinalAlreadySent { .. })
    ));
    // Another request is not absorbed by it.
    let other = request("REGISTER", "z9hG4bKcmp2", 2, None, UDP);
    assert!(matches!(
        sim.server_input(other, UDP),
        ServerInput::New { .. }
    ));
    let log = sim.run_until(40_000);
    assert_eq!(log, vec![(32_000, Log::Terminated)]);
    assert_eq!(sim.txs.state(tx), None);
    assert!(matches!(
        sim.server_input(reg, UDP),
        ServerInput::New { .. }
    ));

    // An RFC 2543 request (no cookie) in Completed: matched with its To tag.
    let mut sim = Sim::new();
    let opt = request("OPTIONS", "legacyc", 3, Some("t1"), UDP);
    let tx = sim.server_new(opt.clone(), UDP);
    sim.respond(tx, response(&opt, 200, None));
    sim.sent();
    assert_eq!(
        sim.server_input(opt.clone(), UDP),
        ServerInput::Absorbed { tx }
    );
    assert_eq!(sim.sent(), vec!["SIP/2.0 200 Reason"]);
    let other_tag = request("OPTIONS", "legacyc", 3, Some("t2"), UDP);
    assert!(matches!(
        sim.server_input(other_tag, UDP),
        ServerInput::New { .. }
    ));
}

#[test]
fn tables_give_memory_back_after_a_burst() {
    let mut sim = Sim::new();
    let burst = 5_000;
    for i in 0..burst {
        let reg = request("REGISTER", &format!("z9hG4bKburst{i}"), 1, None, UDP);
        let tx = sim.server_new(reg.clone(), UDP);
        sim.respond(tx, response(&reg, 200, Some("b1")));
        sim.transmits();
    }
    assert_eq!(sim.txs.len(), burst);
    let peak = sim.txs.capacity();
    assert!(peak >= burst);
    // Timer J ends them all; the table does not stay at its peak size.
    sim.run_until(60_000);
    assert!(sim.txs.is_empty());
    let after = sim.txs.capacity();
    assert!(
        after <= peak / 16,
        "capacity {after} after the burst, {peak} at its peak"
    );
    // A lone request later finds a small table that grows again as needed.
    let reg = request("REGISTER", "z9hG4bKlate", 1, None, UDP);
    sim.server_new(reg, UDP);
    assert_eq!(sim.txs.len(), 1);
    assert!(sim.txs.capacity() <= after);
}

// ---------------------------------------------------------------- discard

#[test]
fn discard_leaves_no_event_transmit_or_timer_and_the_request_is_new_again() {
    let mut sim = Sim::new();
    // A non-INVITE: gone at once, its retransmission is a new request.
    let reg = request("REGISTER", "z9hG4bKdis1", 1, None, UDP);
    let tx = sim.server_new(reg.clone(), UDP);
    sim.txs.discard(tx);
    assert!(sim.txs.is_empty());
    assert_eq!(sim.txs.state(tx), None);
    assert!(sim.sent().is_empty());
    assert!(sim.events().is_empty());
    assert_eq!(sim.txs.poll_timeout(), None);
    assert!(matches!(
        sim.txs.respond(sim.now, tx, response(&reg, 503, None)),
        Err(TransactionError::UnknownTransaction(t)) if t == tx
    ));
    let again = sim.server_new(reg, UDP);
    assert_ne!(again, tx);

    // An INVITE discarded before the drain: its pending 100 Trying is not sent.
    let mut sim = Sim::new();
    let inv = request("INVITE", "z9hG4bKdis2", 1, None, UDP);
    let tx = sim.server_new(inv.clone(), UDP);
    sim.txs.discard(tx);
    assert!(
        sim.sent().is_empty(),
        "no 100 Trying for a discarded INVITE"
    );
    assert!(sim.events().is_empty());
    assert!(sim.txs.is_empty());
    assert_eq!(sim.run_until(120_000), vec![]);
    let again = sim.server_new(inv, UDP);
    assert_eq!(sim.sent(), vec!["SIP/2.0 100 Trying"]);
    assert_eq!(sim.txs.state(again), Some(TxState::Proceeding));
}

#[test]
fn discard_ignores_client_and_unknown_transactions() {
    let mut sim = Sim::new();
    let opt = outgoing("OPTIONS", "z9hG4bKcl1", UDP);
    let tx = sim.txs.send_request(sim.now, peer(UDP), opt).expect("send");
    sim.sent();
    sim.txs.discard(tx);
    sim.txs.discard(TxId(9_999));
    assert_eq!(sim.txs.state(tx), Some(TxState::Trying));
    assert!(sim.events().is_empty());
}

// ---------------------------------------------------------------- client INVITE

fn client_invite(sim: &mut Sim, transport: Transport) -> (TxId, Message) {
    let inv = outgoing("INVITE", "z9hG4bK-vxc1", transport);
    let tx = sim
        .txs
        .send_request(sim.now, peer(transport), inv.clone())
        .expect("send");
    let out = sim.transmits();
    assert_eq!(out.len(), 1);
    assert_eq!(
        first_line(&out[0].payload),
        "INVITE sip:carol@198.51.100.7 SIP/2.0"
    );
    assert_eq!(out[0].destination, remote());
    (tx, inv)
}

const INVITE_LINE: &str = "INVITE sip:carol@198.51.100.7 SIP/2.0";
const ACK_LINE: &str = "ACK sip:carol@198.51.100.7 SIP/2.0";

#[test]
fn client_invite_timer_a_doubles_until_timer_b_on_udp() {
    let mut sim = Sim::new();
    let (tx, _) = client_invite(&mut sim, UDP);
    assert_eq!(sim.txs.state(tx), Some(TxState::Calling));
    let log = sim.run_until(100_000);
    // A: 0.5, 1, 2, 4, 8, 16 s apart (no cap); B = 64·T1 = 32 s.
    assert_eq!(
        sent_at(&log, INVITE_LINE),
        vec![500, 1_500, 3_500, 7_500, 15_500, 31_500]
    );
    assert_eq!(
        log[log.len() - 2..].to_vec(),
        vec![
            (32_000, Log::Timeout(TimerKind::B)),
            (32_000, Log::Terminated)
        ]
    );
    assert!(sim.txs.is_empty());
}

#[test]
fn client_invite_on_tcp_has_no_timer_a() {
    let mut sim = Sim::new();
    let (_, _) = client_invite(&mut sim, TCP);
    let log = sim.run_until(100_000);
    assert_eq!(
        log,
        vec![
            (32_000, Log::Timeout(TimerKind::B)),
            (32_000, Log::Terminated)
        ]
    );
}

#[test]
fn client_invite_provisional_stops_retransmissions_and_non_2xx_is_acked() {
    let mut sim = Sim::new();
    let (tx, inv) = client_invite(&mut sim, UDP);
    let log = sim.run_until(700);
    assert_eq!(log, vec![(500, s(INVITE_LINE))]);
    let ringing = response(&inv, 180, Some("c9"));
    match sim.txs.handle_response(sim.now, ringing) {
        ClientInput::Response { tx: t, response } => {
            assert_eq!(t, tx);
            assert_eq!(response.code(), Some(180));
        }
        other => panic!("expected the 180 for the TU, got {other:?}"),
    }
    assert_eq!(sim.txs.state(tx), Some(TxState::Proceeding));
    // Proceeding has no timer of its own: nothing is sent, nothing times out.
    assert!(sim.run_until(100_000).is_empty());
    assert_eq!(sim.txs.state(tx), Some(TxState::Proceeding));

    let busy = response(&inv, 486, Some("c9"));
    assert!(matches!(
        sim.txs.handle_response(sim.now, busy.clone()),
        ClientInput::Response { .. }
    ));
    let out = sim.transmits();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].destination, remote());
    let ack = parse_wire(&out[0].payload);
    assert_eq!(first_line(&out[0].payload), ACK_LINE);
    let cseq = ack.cseq().expect("CSeq");
    assert_eq!((cseq.seq, cseq.method), (42, Method::Ack));
    assert_eq!(
        ack.to().expect("To").tag().map(|t| &t[..]),
        Some(&b"c9"[..])
    );
    assert_eq!(
        ack.top_via().expect("Via").branch(),
        inv.top_via().expect("Via").branch()
    );
    assert_eq!(
        ack.values(voxgate_controlplane::sip::HeaderName::Route)
            .len(),
        1
    );
    assert_eq!(sim.txs.state(tx), Some(TxState::Completed));
    // A retransmitted final is absorbed and ACKed again.
    sim.set(101_000);
    assert_eq!(
        sim.txs.handle_response(sim.now, busy),
        ClientInput::Absorbed { tx }
    );
    assert_eq!(sim.sent(), vec![ACK_LINE]);
    // D = 32 s after the final at 100 s.
    let log = sim.run_until(200_000);
    assert_eq!(log, vec![(132_000, Log::Terminated)]);
}

#[test]
fn client_invite_non_2xx_on_tcp_acks_and_terminates_at_once() {
    let mut sim = Sim::new();
    let (tx, inv) = client_invite(&mut sim, TCP);
    sim.set(300);
    assert!(matches!(
        sim.txs
            .handle_response(sim.now, response(&inv, 503, Some("c9"))),
        ClientInput::Response { .. }
    ));
    assert_eq!(sim.sent(), vec![ACK_LINE]);
    assert_eq!(sim.events(), vec![TransactionEvent::Terminated { tx }]);
    assert_eq!(sim.txs.poll_timeout(), None);
}

#[test]
fn client_invite_2xx_goes_to_the_tu_and_ends_retransmissions() {
    let mut sim = Sim::new();
    let (tx, inv) = client_invite(&mut sim, UDP);
    sim.set(200);
    let ok = response(&inv, 200, Some("c9"));
    assert!(matches!(
        sim.txs.handle_response(sim.now, ok.clone()),
        ClientInput::Response { .. }
    ));
    assert!(sim.sent().is_empty(), "the ACK for a 2xx is the TU's");
    assert_eq!(sim.txs.state(tx), Some(TxState::Accepted));
    // Retransmitted 2xx still reach the TU (RFC 6026), which re-sends its ACK.
    sim.set(700);
    assert!(matches!(
        sim.txs.handle_response(sim.now, ok.clone()),
        ClientInput::Response { .. }
    ));
    // No INVITE retransmission, no timer B; timer M = 64·T1 after the 2xx.
    let log = sim.run_until(100_000);
    assert_eq!(log, vec![(32_200, Log::Terminated)]);
    assert!(matches!(
        sim.txs.handle_response(sim.now, ok),
        ClientInput::Stray { .. }
    ));
}

#[test]
fn client_invite_cancel_guard_gives_up_64_t1_after_the_cancel() {
    let mut sim = Sim::new();
    let (inv_tx, inv) = client_invite(&mut sim, UDP);
    sim.set(100);
    let _ = sim
        .txs
        .handle_response(sim.now, response(&inv, 180, Some("c9")));
    sim.set(10_000);
    let cancel = outgoing("CANCEL", "z9hG4bK-vxc1", UDP);
    let cancel_tx = sim
        .txs
        .send_request(sim.now, peer(UDP), cancel.clone())
        .expect("CANCEL is its own transaction");
    assert_ne!(cancel_tx, inv_tx);
    assert_eq!(sim.sent(), vec!["CANCEL sip:carol@198.51.100.7 SIP/2.0"]);
    sim.set(10_100);
    let ok = response(&cancel, 200, Some("c9"));
    match sim.txs.handle_response(sim.now, ok) {
        ClientInput::Response { tx, .. } => assert_eq!(tx, cancel_tx),
        other => panic!("expected the CANCEL's 200, got {other:?}"),
    }
    // No 487 ever comes: the INVITE is given up 64·T1 after the CANCEL.
    let log = sim.run_until(100_000);
    assert_eq!(
        log,
        vec![
            (15_100, Log::Terminated), // the CANCEL's timer K
            (42_000, Log::Timeout(TimerKind::CancelGuard)),
            (42_000, Log::Terminated),
        ]
    );
    assert!(sim.txs.is_empty());
}

// ---------------------------------------------------------------- client non-INVITE

#[test]
fn client_non_invite_timer_e_caps_at_t2_until_timer_f() {
    let mut sim = Sim::new();
    let opt = outgoing("OPTIONS", "z9hG4bK-vxo1", UDP);
    let tx = sim.txs.send_request(sim.now, peer(UDP), opt).expect("send");
    assert_eq!(sim.sent().len(), 1);
    assert_eq!(sim.txs.state(tx), Some(TxState::Trying));
    let log = sim.run_until(100_000);
    assert_eq!(
        sent_at(&log, "OPTIONS sip:carol@198.51.100.7 SIP/2.0"),
        vec![500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
    );
    assert_eq!(
        log[log.len() - 2..].to_vec(),
        vec![
            (32_000, Log::Timeout(TimerKind::F)),
            (32_000, Log::Terminated)
        ]
    );
}

#[test]
fn client_non_invite_timer_e_is_t2_after_a_provisional() {
    let mut sim = Sim::new();
    let reg = outgoing("REGISTER", "z9hG4bK-vxr1", UDP);
    let tx = sim
        .txs
        .send_request(sim.now, peer(UDP), reg.clone())
        .expect("send");
    sim.sent();
    sim.set(200);
    assert!(matches!(
        sim.txs.handle_response(sim.now, response(&reg, 100, None)),
        ClientInput::Response { .. }
    ));
    assert_eq!(sim.txs.state(tx), Some(TxState::Proceeding));
    let log = sim.run_until(100_000);
    // The E armed in Trying still fires at 0.5 s; from then on every T2.
    assert_eq!(
        sent_at(&log, "REGISTER sip:carol@198.51.100.7 SIP/2.0"),
        vec![500, 4_500, 8_500, 12_500, 16_500, 20_500, 24_500, 28_500]
    );
    assert_eq!(
        log[log.len() - 2..].to_vec(),
        vec![
            (32_000, Log::Timeout(TimerKind::F)),
            (32_000, Log::Terminated)
        ]
    );
}

#[test]
fn client_non_invite_timer_k_absorbs_response_retransmissions() {
    let mut sim = Sim::new();
    let opt = outgoing("OPTIONS", "z9hG4bK-vxo1", UDP);
    let tx = sim
        .txs
        .send_request(sim.now, peer(UDP), opt.clone())
        .expect("send");
    sim.sent();
    sim.set(1_000);
    let ok = response(&opt, 200, Some("c1"));
    assert!(matches!(
        sim.txs.handle_response(sim.now, ok.clone()),
        ClientInput::Response { .. }
    ));
    assert_eq!(sim.txs.state(tx), Some(TxState::Completed));
    sim.set(2_000);
    assert_eq!(
        sim.txs.handle_response(sim.now, ok),
        ClientInput::Absorbed { tx }
    );
    // E and F stopped; K = T4 = 5 s after the final.
    let log = sim.run_until(100_000);
    assert_eq!(log, vec![(6_000, Log::Terminated)]);
}

#[test]
fn client_non_invite_on_tcp_has_no_e_and_no_k() {
    let mut sim = Sim::new();
    let opt = outgoing("OPTIONS", "z9hG4bK-vxo1", TCP);
    let tx = sim
        .txs
        .send_request(sim.now, peer(TCP), opt.clone())
        .expect("send");
    sim.sent();
    assert!(matches!(
        sim.txs
            .handle_response(sim.now, response(&opt, 200, Some("c1"))),
        ClientInput::Response { .. }
    ));
    assert_eq!(sim.events(), vec![TransactionEvent::Terminated { tx }]);

    let opt = outgoing("OPTIONS", "z9hG4bK-vxo2", TCP);
    sim.txs.send_request(sim.now, peer(TCP), opt).expect("send");
    sim.sent();
    let log = sim.run_until(100_000);
    assert_eq!(
        log,
        vec![
            (32_000, Log::Timeout(TimerKind::F)),
            (32_000, Log::Terminated)
        ]
    );
}

// ---------------------------------------------------------------- matching

#[test]
fn server_matching_uses_branch_sent_by_and_method() {
    let mut sim = Sim::new();
    let inv = request("INVITE", "z9hG4bKm1", 1, None, UDP);
    let tx = sim.server_new(inv.clone(), UDP);
    // Same branch from another sent-by: another transaction.
    let text = String::from_utf8_lossy(inv.raw()).replace("192.0.2.10:5070", "192.0.2.11:5070");
    assert!(matches!(
        sim.server_input(parse_wire(&Bytes::from(text)), UDP),
        ServerInput::New { .. }
    ));
    // Same branch, another method: CANCEL is a transaction of its own.
    let cancel = request("CANCEL", "z9hG4bKm1", 1, None, UDP);
    let cancel_tx = sim.server_new(cancel.clone(), UDP);
    assert_ne!(cancel_tx, tx);
    assert_eq!(sim.txs.find_invite_for_cancel(&cancel), Some(tx));
    // Retransmissions of both keep matching their own transaction.
    assert_eq!(sim.server_input(inv, UDP), ServerInput::Absorbed { tx });
    assert_eq!(
        sim.server_input(cancel, UDP),
        ServerInput::Absorbed { tx: cancel_tx }
    );
    // A CANCEL with an unknown branch finds nothing (the TU answers 481).
    let lost = request("CANCEL", "z9hG4bKnone", 1, None, UDP);
    assert_eq!(sim.txs.find_invite_for_cancel(&lost), None);
    assert_eq!(sim.txs.len(), 3);
}

#[test]
fn server_matching_falls_back_to_rfc_2543_rules() {
    let mut sim = Sim::new();
    // No magic cookie: Request-URI, From tag, Call-ID, CSeq, top Via, To tag.
    let inv = request("INVITE", "legacy1", 1, None, UDP);
    let tx = sim.server_new(inv.clone(), UDP);
    assert_eq!(
        sim.server_input(inv.clone(), UDP),
        ServerInput::Absorbed { tx }
    );
    let next = request("INVITE", "legacy1", 2, None, UDP);
    assert!(matches!(
        sim.server_input(next, UDP),
        ServerInput::New { .. }
    ));
    let cancel = request("CANCEL", "legacy1", 1, None, UDP);
    assert_eq!(sim.txs.find_invite_for_cancel(&cancel), Some(tx));
    let cancel_tagged = request("CANCEL", "legacy1", 1, Some("x"), UDP);
    assert_eq!(sim.txs.find_invite_for_cancel(&cancel_tagged), None);

    sim.respond(tx, response(&inv, 486, Some("srv")));
    sim.sent();
    // The ACK matches only with the To tag of the response sent.
    let wrong = request("ACK", "legacy1", 1, Some("other"), UDP);
    assert!(matches!(
        sim.server_input(wrong, UDP),
        ServerInput::StrayAck { .. }
    ));
    assert_eq!(sim.txs.state(tx), Some(TxState::Completed));
    let ack = request("ACK", "legacy1", 1, Some("srv"), UDP);
    assert_eq!(sim.server_input(ack, UDP), ServerInput::Absorbed { tx });
    assert_eq!(sim.txs.state(tx), Some(TxState::Confirmed));

    // A non-INVITE without a cookie: its retransmission is absorbed too.
    let opt = request("OPTIONS", "legacyopt", 9, None, UDP);
    let otx = sim.server_new(opt.clone(), UDP);
    assert_eq!(
        sim.server_input(opt, UDP),
        ServerInput::Absorbed { tx: otx }
    );
}

#[test]
fn client_matching_uses_branch_and_cseq_method() {
    let mut sim = Sim::new();
    let (tx, inv) = client_invite(&mut sim, UDP);
    // The CANCEL's 200 carries the same branch but method CANCEL: not the INVITE's.
    let cancel = outgoing("CANCEL", "z9hG4bK-vxc1", UDP);
    assert!(matches!(
        sim.txs
            .handle_response(sim.now, response(&cancel, 200, Some("c9"))),
        ClientInput::Stray { .. }
    ));
    let other = outgoing("INVITE", "z9hG4bK-vxother", UDP);
    assert!(matches!(
        sim.txs
            .handle_response(sim.now, response(&other, 180, Some("c9"))),
        ClientInput::Stray { .. }
    ));
    assert_eq!(sim.txs.state(tx), Some(TxState::Calling));
    assert!(matches!(
        sim.txs
            .handle_response(sim.now, response(&inv, 180, Some("c9"))),
        ClientInput::Response { .. }
    ));
}

#[test]
fn refused_inputs_are_typed_errors() {
    let mut sim = Sim::new();
    let now = sim.now;
    let legacy = outgoing("OPTIONS", "nocookie", UDP);
    assert_eq!(
        sim.txs.send_request(now, peer(UDP), legacy),
        Err(TransactionError::NoBranch)
    );
    let ack = outgoing("ACK", "z9hG4bK-vxa", UDP);
    assert_eq!(
        sim.txs.send_request(now, peer(UDP), ack),
        Err(TransactionError::AckIsNotATransaction)
    );
    let opt = outgoing("OPTIONS", "z9hG4bK-vxd", UDP);
    let tx = sim
        .txs
        .send_request(now, peer(UDP), opt.clone())
        .expect("send");
    assert_eq!(
        sim.txs.send_request(now, peer(UDP), opt.clone()),
        Err(TransactionError::DuplicateBranch)
    );
    assert_eq!(
        sim.txs.respond(now, tx, response(&opt, 200, None)),
        Err(TransactionError::NotAServerTransaction(tx))
    );
    assert_eq!(
        sim.txs.respond(now, TxId(999), response(&opt, 200, None)),
        Err(TransactionError::UnknownTransaction(TxId(999)))
    );
    let no_via = parse(
        "OPTIONS sip:a@b SIP/2.0\nFrom: <sip:x@y>;tag=1\nTo: <sip:a@b>\nCall-ID: c\nCSeq: 1 OPTIONS\n\n",
    );
    assert!(matches!(
        sim.txs.handle_request(now, peer(UDP), no_via),
        Err(TransactionError::Header(_))
    ));
    assert_eq!(sim.txs.len(), 1);
}

// ---------------------------------------------------------------- the CANCEL race

/// What a TU does with a CANCEL (RFC 3261 §9.2): 481 when no INVITE matches; otherwise 200
/// to the CANCEL, and 487 to the INVITE only if it has no final response yet.
fn tu_handles_cancel(sim: &mut Sim, cancel_tx: TxId, cancel: &Message, invite: &Message) {
    match sim.txs.find_invite_for_cancel(cancel) {
        None => sim.respond(cancel_tx, response(cancel, 481, Some("b1"))),
        Some(inv_tx) => {
            sim.respond(cancel_tx, response(cancel, 200, Some("b1")));
            if sim.txs.state(inv_tx) == Some(TxState::Proceeding) {
                sim.respond(inv_tx, response(invite, 487, Some("b1")));
            }
        }
    }
}

#[test]
fn cancel_before_the_final_response_gets_200_and_the_invite_487() {
    let mut sim = Sim::new();
    let inv = request("INVITE", "z9hG4bKrace1", 1, None, UDP);
    let inv_tx = sim.server_new(inv.clone(), UDP);
    sim.respond(inv_tx, response(&inv, 180, Some("b1")));
    sim.sent();
    sim.set(3_000);
    let cancel = request("CANCEL", "z9hG4bKrace1", 1, None, UDP);
    let cancel_tx = sim.server_new(cancel.clone(), UDP);
    tu_handles_cancel(&mut sim, cancel_tx, &cancel, &inv);
    assert_eq!(sim.sent(), vec!["SIP/2.0 200 Reason", "SIP/2.0 487 Reason"]);
    assert_eq!(sim.txs.state(inv_tx), Some(TxState::Completed));
    let ack = request("ACK", "z9hG4bKrace1", 1, Some("b1"), UDP);
    assert_eq!(
        sim.server_input(ack, UDP),
        ServerInput::Absorbed { tx: inv_tx }
    );
    let log = sim.run_until(100_000);
    // The CANCEL's J (64·T1) and the INVITE's I (T4) end both.
    assert_eq!(
        log,
        vec![(8_000, Log::Terminated), (35_000, Log::Terminated)]
    );
}

#[test]
fn cancel_after_a_2xx_gets_200_and_no_487() {
    let mut sim = Sim::new();
    let inv = request("INVITE", "z9hG4bKrace2", 1, None, UDP);
    let inv_tx = sim.server_new(inv.clone(), UDP);
    sim.respond(inv_tx, response(&inv, 200, Some("b1")));
    sim.sent();
    sim.set(50);
    let cancel = request("CANCEL", "z9hG4bKrace2", 1, None, UDP);
    let cancel_tx = sim.server_new(cancel.clone(), UDP);
    tu_handles_cancel(&mut sim, cancel_tx, &cancel, &inv);
    assert_eq!(sim.sent(), vec!["SIP/2.0 200 Reason"]);
    let cancel_ok = sim.txs.state(cancel_tx);
    assert_eq!(cancel_ok, Some(TxState::Completed));
    assert_eq!(sim.txs.state(inv_tx), Some(TxState::Accepted));
}

#[test]
fn cancel_after_the_invite_transaction_ended_gets_481() {
    let mut sim = Sim::new();
    let inv = request("INVITE", "z9hG4bKrace3", 1, None, TCP);
    let inv_tx = sim.server_new(inv.clone(), TCP);
    sim.respond(inv_tx, response(&inv, 486, Some("b1")));
    let ack = request("ACK", "z9hG4bKrace3", 1, Some("b1"), TCP);
    assert_eq!(
        sim.server_input(ack, TCP),
        ServerInput::Absorbed { tx: inv_tx }
    );
    sim.sent();
    assert_eq!(sim.txs.state(inv_tx), None);
    let cancel = request("CANCEL", "z9hG4bKrace3", 1, None, TCP);
    let cancel_tx = sim.server_new(cancel.clone(), TCP);
    tu_handles_cancel(&mut sim, cancel_tx, &cancel, &inv);
    assert_eq!(sim.sent(), vec!["SIP/2.0 481 Reason"]);
}

#[test]
fn cancel_after_a_non_2xx_final_gets_200_and_no_second_final() {
    let mut sim = Sim::new();
    let inv = request("INVITE", "z9hG4bKrace4", 1, None, UDP);
    let inv_tx = sim.server_new(inv.clone(), UDP);
    sim.respond(inv_tx, response(&inv, 486, Some("b1")));
    sim.sent();
    sim.set(100);
    let cancel = request("CANCEL", "z9hG4bKrace4", 1, None, UDP);
    let cancel_tx = sim.server_new(cancel.clone(), UDP);
    tu_handles_cancel(&mut sim, cancel_tx, &cancel, &inv);
    assert_eq!(sim.sent(), vec!["SIP/2.0 200 Reason"]);
    assert_eq!(
        sim.txs
            .respond(sim.now, inv_tx, response(&inv, 487, Some("b1"))),
        Err(TransactionError::FinalAlreadySent {
            tx: inv_tx,
            code: 487
        })
    );
}

// ---------------------------------------------------------------- property test

#[derive(Debug, Clone)]
enum Op {
    /// A request from the network.
    Request {
        method: u8,
        branch: u8,
        legacy: bool,
        tcp: bool,
        to_tag: bool,
    },
    /// The TU answers the `pick`-th server transaction it was given.
    Respond {
        pick: u8,
        code: u8,
    },
    /// The TU sends a request.
    Send {
        method: u8,
        branch: u8,
        tcp: bool,
    },
    /// A response from the network for the `branch`-th request voxgate sent.
    Response {
        branch: u8,
        method: u8,
        code: u8,
    },
    Advance {
        ms: u32,
    },
}

const METHODS: [&str; 4] = ["INVITE", "OPTIONS", "ACK", "CANCEL"];
const CODES: [u16; 6] = [100, 180, 200, 404, 487, 603];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..4, 0u8..4, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(method, branch, legacy, tcp, to_tag)| Op::Request {
                method,
                branch,
                legacy,
                tcp,
                to_tag
            }
        ),
        (any::<u8>(), 0u8..6).prop_map(|(pick, code)| Op::Respond { pick, code }),
        (0u8..4, 0u8..4, any::<bool>()).prop_map(|(method, branch, tcp)| Op::Send {
            method,
            branch,
            tcp
        }),
        (0u8..4, 0u8..4, 0u8..6).prop_map(|(branch, method, code)| Op::Response {
            branch,
            method,
            code
        }),
        (0u32..40_000).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// Drain outputs; track live transactions by their events.
fn drain(txs: &mut Transactions, live: &mut BTreeSet<TxId>) {
    while txs.poll_transmit().is_some() {}
    while let Some(e) = txs.poll_event() {
        if let TransactionEvent::Terminated { tx } = e {
            assert!(live.remove(&tx), "{tx} terminated twice or never lived");
        }
    }
    assert_eq!(txs.len(), live.len());
}

fn advance_to(txs: &mut Transactions, now: &mut Instant, to: Instant, live: &mut BTreeSet<TxId>) {
    while let Some(t) = txs.poll_timeout().filter(|t| *t <= to) {
        assert!(t >= *now, "a timer in the past");
        txs.handle_timeout(t);
        drain(txs, live);
        assert!(txs.poll_timeout().is_none_or(|n| n > t));
        *now = t;
    }
    *now = to;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_operations_never_panic_and_every_transaction_ends(ops in prop::collection::vec(op(), 1..60)) {
        let t0 = base();
        let mut now = t0;
        let mut txs = Transactions::default();
        let mut live = BTreeSet::new();
        let mut server_txs: Vec<(TxId, Message)> = Vec::new();
        let mut sent: HashMap<(u8, u8), Message> = HashMap::new();
        let mut client_invites: Vec<(TxId, Message)> = Vec::new();

        for op in ops {
            match op {
                Op::Request { method, branch, legacy, tcp, to_tag } => {
                    let m = METHODS[usize::from(method)];
                    let b = if legacy { format!("old{branch}") } else { format!("z9hG4bKp{branch}") };
                    let t = if tcp { TCP } else { UDP };
                    let req = request(m, &b, 1, to_tag.then_some("t1"), t);
                    match txs.handle_request(now, peer(t), req).expect("well-formed") {
                        ServerInput::New { tx, request } => {
                            prop_assert!(live.insert(tx));
                            server_txs.push((tx, request));
                        }
                        ServerInput::Absorbed { tx } | ServerInput::AckFor2xx { invite: tx, .. } => {
                            prop_assert!(live.contains(&tx));
                        }
                        ServerInput::StrayAck { .. } => {}
                        other => prop_assert!(false, "unexpected {:?}", other),
                    }
                }
                Op::Respond { pick, code } => {
                    if !server_txs.is_empty() {
                        let (tx, req) = &server_txs[usize::from(pick) % server_txs.len()];
                        let r = response(req, CODES[usize::from(code)], Some("s1"));
                        let _ = txs.respond(now, *tx, r);
                    }
                }
                Op::Send { method, branch, tcp } => {
                    let m = ["INVITE", "OPTIONS", "CANCEL", "REGISTER"][usize::from(method)];
                    let req = outgoing(m, &format!("z9hG4bK-vxp{branch}"), if tcp { TCP } else { UDP });
                    if let Ok(tx) = txs.send_request(now, peer(if tcp { TCP } else { UDP }), req.clone()) {
                        prop_assert!(live.insert(tx));
                        if m == "INVITE" {
                            client_invites.push((tx, req.clone()));
                        }
                        sent.insert((branch, method), req);
                    }
                }
                Op::Response { branch, method, code } => {
                    if let Some(req) = sent.get(&(branch, method)) {
                        let r = response(req, CODES[usize::from(code)], Some("r1"));
                        match txs.handle_response(now, r) {
                            ClientInput::Response { tx, .. } | ClientInput::Absorbed { tx } => {
                                prop_assert!(live.contains(&tx));
                            }
                            ClientInput::Stray { .. } => {}
                            other => prop_assert!(false, "unexpected {:?}", other),
                        }
                    }
                }
                Op::Advance { ms } => {
                    let to = now + Duration::from_millis(u64::from(ms));
                    advance_to(&mut txs, &mut now, to, &mut live);
                }
            }
            drain(&mut txs, &mut live);
        }

        // The TU answers everything still waiting on it, and every pending INVITE it sent
        // gets its final response; then time runs out every timer.
        for (tx, req) in &server_txs {
            if txs.state(*tx).is_some() {
                let _ = txs.respond(now, *tx, response(req, 486, Some("s1")));
            }
        }
        for (tx, req) in &client_invites {
            if matches!(txs.state(*tx), Some(TxState::Calling | TxState::Proceeding)) {
                let _ = txs.handle_response(now, response(req, 487, Some("r1")));
            }
        }
        drain(&mut txs, &mut live);
        let end = now + Duration::from_secs(3_600);
        advance_to(&mut txs, &mut now, end, &mut live);
        prop_assert_eq!(txs.len(), 0);
        prop_assert!(live.is_empty());
        prop_assert_eq!(txs.poll_timeout(), None);
    }
}
