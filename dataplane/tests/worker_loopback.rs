//! A real media worker (epoll backend) relaying between two "phones" on 127.0.0.1: both
//! directions with no loss and the session core's SSRC/sequence rewriting, then the
//! five-socket attack pattern (MED-23) after the learning window, then delete frees the ports.
//!
//! Waits are bounded (a failing relay fails the test instead of hanging) but no assertion
//! depends on timing: "nothing arrived" is checked only after the worker's published receive
//! counter shows it has read every datagram sent to the session, and a forward is written to
//! the phone's loopback queue before that counter is published.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use voxgate_dataplane::ports::{PortPair, PortRanges};
use voxgate_dataplane::session::{LegConfig, LegId, SessionConfig};
use voxgate_dataplane::worker::{spawn, WorkerConfig, WorkerHandle};
use voxgate_dataplane::{Command, Event, SessionHandle};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
// Below the ephemeral range (32768-60999 on Linux), so the port sweep cannot hit another
// test's port-0 sockets.
const RANGE: (u16, u16) = (31000, 31599);
const BOUND: Duration = Duration::from_secs(10);

fn rtp(seq: u16, ts: u32, ssrc: u32, tag: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(tag);
    p.resize(12 + 160, 0xd5);
    p
}

fn header(p: &[u8]) -> (u16, u32, u32) {
    (
        u16::from_be_bytes([p[2], p[3]]),
        u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
    )
}

fn phone(ip: Ipv4Addr, port: u16) -> UdpSocket {
    let s = UdpSocket::bind((ip, port)).expect("bind a test socket on 127.0.0.0/8");
    s.set_read_timeout(Some(BOUND)).expect("timeout");
    s
}

fn next_event(w: &WorkerHandle) -> Event {
    w.events()
        .recv_timeout(BOUND)
        .expect("the worker answers within the bound")
}

fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = s.recv_from(&mut buf).expect("an expected packet arrives");
    (buf[..n].to_vec(), from)
}

/// Nothing is queued on `s` (ICMP errors that surface as refusals are not packets).
fn assert_empty(s: &UdpSocket, who: &str) {
    s.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 2048];
    loop {
        match s.recv_from(&mut buf) {
            Ok((n, from)) => panic!("{who} received {n} bytes from {from}"),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
            Err(e) => panic!("{who}: {e}"),
        }
    }
    s.set_nonblocking(false).expect("blocking");
}

/// Waits (bounded) until the worker has read `n` datagrams in total.
fn wait_rx(w: &WorkerHandle, n: u64) {
    for _ in 0..10_000 {
        if w.counters().snapshot().rx_packets >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!(
        "the worker read {} of {n} datagrams",
        w.counters().snapshot().rx_packets
    );
}

#[test]
fn relays_both_ways_rejects_the_five_socket_attack_and_frees_ports() {
    let ranges = PortRanges::new(vec![RANGE]).expect("valid range");
    let pairs: Vec<PortPair> = ranges.split(1).remove(0);
    let worker = spawn(WorkerConfig::new(0, LOCALHOST, pairs)).expect("worker starts");

    worker
        .send(Command::Ping { seq: 7 })
        .expect("command accepted");
    assert!(matches!(
        next_event(&worker),
        Event::Heartbeat { worker: 0, seq: 7 }
    ));

    let a = phone(Ipv4Addr::LOCALHOST, 0);
    let b = phone(Ipv4Addr::LOCALHOST, 0);
    let a_addr = a.local_addr().expect("addr");
    let b_addr = b.local_addr().expect("addr");
    let leg = |remote: SocketAddr, to: u8| {
        let mut l = LegConfig::new(SocketAddr::new(LOCALHOST, 0), LegId(to));
        l.remote_rtp = Some(remote);
        l.payload_map.map(0, 0, 8000);
        l
    };
    let config = SessionConfig {
        // The window is closed from the start: each phone latches only from its SDP address,
        // so the attacks below run "after the learning window" without any sleep.
        learning_window: Duration::ZERO,
        danger_allow_loopback_remote: true,
        ..SessionConfig::default()
    };
    let handle = SessionHandle(1);
    worker
        .send(Command::CreateSession {
            session: handle,
            config,
            legs: vec![leg(a_addr, 1), leg(b_addr, 0)],
        })
        .expect("command accepted");
    let (la, lb) = match next_event(&worker) {
        Event::SessionCreated { session, locals } => {
            assert_eq!(session, handle);
            assert_eq!(locals.len(), 2);
            (locals[0], locals[1])
        }
        other => panic!("expected SessionCreated, got {other:?}"),
    };
    for l in [la, lb] {
        assert_eq!(l.ip(), LOCALHOST);
        assert_eq!(l.port() % 2, 0, "RTP on the even port");
        assert!((RANGE.0..RANGE.1).contains(&l.port()));
    }
    assert_ne!(la, lb);
    let session_ports = [la, SocketAddr::new(LOCALHOST, la.port() + 1), lb, {
        SocketAddr::new(LOCALHOST, lb.port() + 1)
    }];
    let mut to_session: u64 = 0;

    // Both directions, in lock step (no loss is then a property of the relay, not of
    // socket buffers), with a source change on A half way: B must see one continuous stream.
    let (ssrc_a, ssrc_b) = (0x1111_1111, 0x2222_2222);
    let mut expect_seq_b = 100u16;
    for i in 0..200u16 {
        let (ssrc, seq) = if i < 100 {
            (ssrc_a, 100 + i)
        } else {
            (0x3333_3333, 9000 + i)
        };
        let tag = format!("a->b {i}");
        let sent = rtp(seq, u32::from(i) * 160, ssrc, tag.as_bytes());
        a.send_to(&sent, la).expect("send");
        to_session += 1;
        let (got, from) = recv(&b);
        assert_eq!(from, lb, "B hears from its own leg's port");
        assert_eq!(got.len(), sent.len());
        assert_eq!(&got[12..], &sent[12..], "payload intact");
        let (seq_out, _, ssrc_out) = header(&got);
        assert_eq!(
            ssrc_out, ssrc_a,
            "one outgoing SSRC across the source change"
        );
        assert_eq!(seq_out, expect_seq_b, "continuous sequence numbers");
        expect_seq_b = expect_seq_b.wrapping_add(1);

        let tag = format!("b->a {i}");
        let sent = rtp(5000 + i, u32::from(i) * 160, ssrc_b, tag.as_bytes());
        b.send_to(&sent, lb).expect("send");
        to_session += 1;
        let (got, from) = recv(&a);
        assert_eq!(from, la);
        assert_eq!(got, sent, "B's stream needs no rewriting");
    }

    // The five-socket attack pattern.
    let same_ip_other_port = phone(Ipv4Addr::LOCALHOST, 0);
    let other_ip_same_port = phone(Ipv4Addr::new(127, 0, 0, 2), a_addr.port());
    let other_ip_other_port = phone(Ipv4Addr::new(127, 0, 0, 3), 0);
    let sweeper = phone(Ipv4Addr::LOCALHOST, 0);
    let attackers = [
        ("same IP, other port", &same_ip_other_port),
        ("other IP, same port", &other_ip_same_port),
        ("other IP, other port", &other_ip_other_port),
    ];
    let attack = rtp(100, 0, 0xbad0_bad0, b"ATTACK");
    for (_, s) in attackers {
        for dest in session_ports {
            s.send_to(&attack, dest).expect("send");
            to_session += 1;
        }
    }
    for port in RANGE.0..=RANGE.0 + 400 {
        let dest = SocketAddr::new(LOCALHOST, port);
        sweeper.send_to(&attack, dest).expect("send");
        if session_ports.contains(&dest) {
            to_session += 1;
        }
    }
    for dest in session_ports {
        if dest.port() > RANGE.0 + 400 {
            sweeper.send_to(&attack, dest).expect("send");
            to_session += 1;
        }
    }

    // A legitimate packet after the attacks still goes through...
    let sentinel = rtp(300, 0, ssrc_a, b"sentinel");
    a.send_to(&sentinel, la).expect("send");
    to_session += 1;
    let (got, _) = recv(&b);
    assert_eq!(
        &got[12..],
        &sentinel[12..],
        "B's next packet is A's, not an attacker's"
    );
    // ...and once the worker has read every datagram sent to the session, nothing else is
    // queued at either phone or at any attacker.
    wait_rx(&worker, to_session);
    assert_empty(&a, "phone A");
    assert_empty(&b, "phone B");
    for (who, s) in attackers {
        assert_empty(s, who);
    }
    assert_empty(&sweeper, "the port sweeper");

    worker
        .send(Command::QueryStats {
            session: handle,
            token: 9,
        })
        .expect("command accepted");
    match next_event(&worker) {
        Event::Stats { token: 9, legs, .. } => {
            assert_eq!(legs[0].latched_rtp, Some(a_addr));
            assert_eq!(legs[1].latched_rtp, Some(b_addr));
            // Each leg: 3 attackers on RTP and on RTCP, plus the sweeper on both.
            for l in &legs {
                assert!(l.dropped.source + l.dropped.not_media >= 8, "{l:?}");
            }
        }
        other => panic!("expected Stats, got {other:?}"),
    }

    // Delete: the final stats come back and all four ports can be bound again.
    worker
        .send(Command::DeleteSession { session: handle })
        .expect("command accepted");
    match next_event(&worker) {
        Event::SessionDeleted { session, legs } => {
            assert_eq!(session, handle);
            assert_eq!(legs[0].rtp_packets, 201);
            assert_eq!(legs[1].rtp_packets, 200);
        }
        other => panic!("expected SessionDeleted, got {other:?}"),
    }
    let rebound: Vec<UdpSocket> = session_ports
        .iter()
        .map(|p| UdpSocket::bind(p).expect("a deleted session's port is free"))
        .collect();
    drop(rebound);

    worker
        .send(Command::DeleteSession { session: handle })
        .expect("command accepted");
    assert!(matches!(
        next_event(&worker),
        Event::CommandFailed { session, .. } if session == handle
    ));
    let counts = worker.counters().snapshot();
    assert_eq!(counts.sessions, 0);
    assert_eq!(counts.port_pairs_in_use, 0);
    assert_eq!(counts.events_dropped, 0);
    worker.shutdown().expect("the worker stops cleanly");
}

#[test]
fn refuses_a_session_when_ports_run_out() {
    // One pair only: the second two-leg session cannot be placed and nothing leaks.
    let probe = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let base = probe.local_addr().expect("addr").port() & !1;
    drop(probe);
    let ranges = PortRanges::new(vec![(base, base + 3)]).expect("valid");
    let worker =
        spawn(WorkerConfig::new(1, LOCALHOST, ranges.split(1).remove(0))).expect("worker starts");
    let legs = || {
        vec![
            LegConfig::new(SocketAddr::new(LOCALHOST, 0), LegId(1)),
            LegConfig::new(SocketAddr::new(LOCALHOST, 0), LegId(0)),
        ]
    };
    worker
        .send(Command::CreateSession {
            session: SessionHandle(1),
            config: SessionConfig::default(),
            legs: legs(),
        })
        .expect("accepted");
    let first_ok = matches!(next_event(&worker), Event::SessionCreated { .. });
    worker
        .send(Command::CreateSession {
            session: SessionHandle(2),
            config: SessionConfig::default(),
            legs: legs(),
        })
        .expect("accepted");
    if first_ok {
        // Both pairs are in use by session 1.
        assert!(matches!(
            next_event(&worker),
            Event::CommandFailed {
                session: SessionHandle(2),
                ..
            }
        ));
        worker
            .send(Command::DeleteSession {
                session: SessionHandle(1),
            })
            .expect("accepted");
        assert!(matches!(next_event(&worker), Event::SessionDeleted { .. }));
        // The failed create released what it had taken: session 2 fits now.
        worker
            .send(Command::CreateSession {
                session: SessionHandle(2),
                config: SessionConfig::default(),
                legs: legs(),
            })
            .expect("accepted");
        assert!(matches!(next_event(&worker), Event::SessionCreated { .. }));
    }
    worker.shutdown().expect("stops");
}

#[test]
fn media_timeout_reaches_the_control_plane_and_rearms_on_media() {
    let probe = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let base = probe.local_addr().expect("addr").port() & !1;
    drop(probe);
    let ranges =
        PortRanges::new(vec![(base.wrapping_sub(40), base.wrapping_add(40))]).expect("valid");
    let worker =
        spawn(WorkerConfig::new(2, LOCALHOST, ranges.split(1).remove(0))).expect("worker starts");
    let a = phone(Ipv4Addr::LOCALHOST, 0);
    let mut leg0 = LegConfig::new(SocketAddr::new(LOCALHOST, 0), LegId(1));
    leg0.remote_rtp = Some(a.local_addr().expect("addr"));
    leg0.payload_map.map(0, 0, 8000);
    let leg1 = LegConfig::new(SocketAddr::new(LOCALHOST, 0), LegId(0));
    let config = SessionConfig {
        // Zero idle time allowed: the timeout is due at once, no waiting in the test.
        media_timeout: Duration::ZERO,
        learning_window: Duration::ZERO,
        danger_allow_loopback_remote: true,
        ..SessionConfig::default()
    };
    worker
        .send(Command::CreateSession {
            session: SessionHandle(5),
            config,
            legs: vec![leg0, leg1],
        })
        .expect("accepted");
    let la = match next_event(&worker) {
        Event::SessionCreated { locals, .. } => locals[0],
        other => panic!("expected SessionCreated, got {other:?}"),
    };
    assert!(matches!(
        next_event(&worker),
        Event::MediaTimeout {
            session: SessionHandle(5),
            held: false,
            ..
        }
    ));
    // Accepted media re-arms the session's timer; the worker finds it on its next scan.
    a.send_to(&rtp(1, 0, 42, b"wake"), la).expect("send");
    assert!(matches!(
        next_event(&worker),
        Event::MediaTimeout {
            session: SessionHandle(5),
            ..
        }
    ));
    worker.shutdown().expect("stops");
}

#[test]
fn pins_to_an_available_core() {
    let cores = voxgate_dataplane::worker::available_cores();
    assert!(
        !cores.is_empty(),
        "the affinity mask lists at least one core"
    );
    let mut config = WorkerConfig::new(3, LOCALHOST, Vec::new());
    config.core = Some(cores[cores.len() - 1]);
    let worker = spawn(config).expect("worker starts");
    worker.send(Command::Ping { seq: 1 }).expect("accepted");
    // The worker pins itself before its first turn, so the heartbeat comes after.
    assert!(matches!(
        next_event(&worker),
        Event::Heartbeat { worker: 3, seq: 1 }
    ));
    assert!(worker.counters().pinned());
    worker.shutdown().expect("stops");
}

fn rr(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 201, 0, 1];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p
}

#[test]
fn rtcp_mux_uses_one_socket_and_an_update_can_drop_it() {
    let ranges = PortRanges::new(vec![(31800, 31999)]).expect("valid");
    let worker =
        spawn(WorkerConfig::new(4, LOCALHOST, ranges.split(1).remove(0))).expect("worker starts");
    let a = phone(Ipv4Addr::LOCALHOST, 0);
    let b = phone(Ipv4Addr::LOCALHOST, 0);
    let legs = |mux: bool| {
        [(&a, 1), (&b, 0)]
            .map(|(s, to)| {
                let mut l = LegConfig::new(SocketAddr::new(LOCALHOST, 0), LegId(to));
                l.remote_rtp = Some(s.local_addr().expect("addr"));
                // The phones send RTCP from their RTP socket.
                l.remote_rtcp = l.remote_rtp;
                l.rtcp_mux = mux;
                l.payload_map.map(0, 0, 8000);
                l
            })
            .to_vec()
    };
    let handle = SessionHandle(8);
    worker
        .send(Command::CreateSession {
            session: handle,
            config: SessionConfig {
                learning_window: Duration::ZERO,
                danger_allow_loopback_remote: true,
                ..SessionConfig::default()
            },
            legs: legs(true),
        })
        .expect("accepted");
    let (la, lb) = match next_event(&worker) {
        Event::SessionCreated { locals, .. } => (locals[0], locals[1]),
        other => panic!("expected SessionCreated, got {other:?}"),
    };
    // rtcp-mux: RTCP on the RTP port, relayed from B's RTP port.
    a.send_to(&rr(0xa), la).expect("send");
    let (got, from) = recv(&b);
    assert_eq!((got.as_slice(), from), (rr(0xa).as_slice(), lb));
    // Only one socket per leg: the odd port is not bound by the worker (but stays reserved).
    let odd = SocketAddr::new(LOCALHOST, la.port() + 1);
    let squatter = UdpSocket::bind(odd).expect("with rtcp-mux the RTCP port is not bound");
    worker
        .send(Command::UpdateSession {
            session: handle,
            legs: legs(false),
        })
        .expect("accepted");
    assert!(matches!(
        next_event(&worker),
        Event::CommandFailed { session, .. } if session == handle
    ));
    drop(squatter);
    worker
        .send(Command::UpdateSession {
            session: handle,
            legs: legs(false),
        })
        .expect("accepted");
    // Commands run in order and a successful update answers nothing: the heartbeat says the
    // update is done (the odd ports are bound).
    worker.send(Command::Ping { seq: 2 }).expect("accepted");
    assert!(matches!(
        next_event(&worker),
        Event::Heartbeat { seq: 2, .. }
    ));
    // Without rtcp-mux: RTCP to the odd port, relayed from B's leg's odd port.
    a.send_to(&rr(0xa), odd).expect("send");
    let (got, from) = recv(&b);
    assert_eq!(got, rr(0xa));
    assert_eq!(from, SocketAddr::new(LOCALHOST, lb.port() + 1));
    worker.shutdown().expect("stops");
}

#[test]
fn pool_places_sessions_on_the_least_loaded_worker_and_routes_commands() {
    use voxgate_dataplane::worker::pool::{PoolError, WorkerPool};
    let ranges = PortRanges::new(vec![(32000, 32199)]).expect("valid");
    let mut pool = WorkerPool::spawn(LOCALHOST, &ranges, &[None, None]).expect("workers start");
    let legs = || {
        vec![
            LegConfig::new(SocketAddr::new(LOCALHOST, 0), LegId(1)),
            LegConfig::new(SocketAddr::new(LOCALHOST, 0), LegId(0)),
        ]
    };
    let placed: Vec<usize> = (0..4)
        .map(|i| {
            pool.create(SessionHandle(i), SessionConfig::default(), legs())
                .expect("placed")
        })
        .collect();
    assert_eq!(placed, [0, 1, 0, 1]);
    for (i, &w) in placed.iter().enumerate() {
        let created = pool.workers()[w]
            .events()
            .recv_timeout(BOUND)
            .expect("answer");
        assert!(
            matches!(created, Event::SessionCreated { session, .. } if session == SessionHandle(i as u32)),
            "{created:?}"
        );
    }
    // Deleting session 0 makes worker 0 the least loaded again.
    pool.send(Command::DeleteSession {
        session: SessionHandle(0),
    })
    .expect("routed");
    assert!(matches!(
        pool.workers()[0]
            .events()
            .recv_timeout(BOUND)
            .expect("answer"),
        Event::SessionDeleted {
            session: SessionHandle(0),
            ..
        }
    ));
    assert_eq!(pool.worker_of(SessionHandle(0)), None);
    assert_eq!(
        pool.create(SessionHandle(9), SessionConfig::default(), legs())
            .expect("placed"),
        0
    );
    // A query goes to the worker that holds the session.
    pool.send(Command::QueryStats {
        session: SessionHandle(3),
        token: 1,
    })
    .expect("routed");
    match pool.workers()[1]
        .events()
        .recv_timeout(BOUND)
        .expect("answer")
    {
        Event::Stats {
            session,
            token: 1,
            legs,
        } => assert_eq!((session, legs.len()), (SessionHandle(3), 2)),
        other => panic!("expected Stats from worker 1, got {other:?}"),
    }
    assert!(matches!(
        pool.send(Command::DeleteSession {
            session: SessionHandle(77)
        }),
        Err(PoolError::UnknownSession(_))
    ));
    assert!(matches!(
        pool.create(SessionHandle(3), SessionConfig::default(), legs()),
        Err(PoolError::DuplicateSession(_))
    ));
}
