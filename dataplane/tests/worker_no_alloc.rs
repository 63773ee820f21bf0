//! The worker's per-packet path does not allocate (STYLE.md §9): once a session exists and
//! both phones have latched, relaying RTP both ways through real sockets, and dropping an
//! attacker's packets, allocates nothing in any thread. One test in its own binary with a
//! counting global allocator; the test thread's own buffers exist before the measured region.

use std::alloc::System;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use voxgate_dataplane::ports::PortRanges;
use voxgate_dataplane::session::{LegConfig, LegId, SessionConfig};
use voxgate_dataplane::worker::{spawn, WorkerConfig};
use voxgate_dataplane::{Command, Event, SessionHandle};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn write_rtp(p: &mut [u8; 172], seq: u16, ssrc: u32) {
    p[0] = 0x80;
    p[1] = 0;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

#[test]
fn relaying_does_not_allocate() {
    let ranges = PortRanges::new(vec![(31600, 31799)]).expect("valid");
    let worker =
        spawn(WorkerConfig::new(0, LOCALHOST, ranges.split(1).remove(0))).expect("worker starts");
    let sock = |ip: Ipv4Addr| {
        let s = UdpSocket::bind((ip, 0)).expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s
    };
    let (a, b, attacker) = (
        sock(Ipv4Addr::LOCALHOST),
        sock(Ipv4Addr::LOCALHOST),
        sock(Ipv4Addr::new(127, 0, 0, 2)),
    );
    let leg = |remote: SocketAddr, to: u8| {
        let mut l = LegConfig::new(SocketAddr::new(LOCALHOST, 0), LegId(to));
        l.remote_rtp = Some(remote);
        l.payload_map.map(0, 0, 8000);
        l
    };
    worker
        .send(Command::CreateSession {
            session: SessionHandle(1),
            config: SessionConfig {
                learning_window: Duration::ZERO,
                danger_allow_loopback_remote: true,
                ..SessionConfig::default()
            },
            legs: vec![
                leg(a.local_addr().expect("addr"), 1),
                leg(b.local_addr().expect("addr"), 0),
            ],
        })
        .expect("accepted");
    let (la, lb) = match worker
        .events()
        .recv_timeout(Duration::from_secs(10))
        .expect("answer")
    {
        Event::SessionCreated { locals, .. } => (locals[0], locals[1]),
        other => panic!("expected SessionCreated, got {other:?}"),
    };
    let mut out = [0u8; 172];
    let mut inb = [0u8; 2048];
    let mut relay = |seq: u16| {
        write_rtp(&mut out, seq, 0xa);
        a.send_to(&out, la).expect("send");
        let (n, _) = b.recv_from(&mut inb).expect("relayed to B");
        assert_eq!(n, out.len());
        write_rtp(&mut out, seq, 0xb);
        attacker.send_to(&out, la).expect("send");
        b.send_to(&out, lb).expect("send");
        let (n, _) = a.recv_from(&mut inb).expect("relayed to A");
        assert_eq!(n, out.len());
        assert_eq!(&inb[8..12], &0xbu32.to_be_bytes());
    };
    // Warm-up: latching, first SSRCs, lazily sized kernel/std state.
    for seq in 0..10 {
        relay(seq);
    }
    let region = Region::new(GLOBAL);
    for seq in 10..1010 {
        relay(seq);
    }
    let stats = region.change();
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "the relay allocated: {stats:?}"
    );
    worker.shutdown().expect("stops");
}
