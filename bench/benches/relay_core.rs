//! Criterion: the sans-IO relay core's per-packet cost (issue 4, "Benchmarks").
//!
//! One iteration is one 172-byte G.711 RTP packet (12-byte header + 160 bytes, 20 ms of
//! PCMA) through `Session::on_packet` on a session whose legs have latched, after the
//! learning window: demux, RTP check, payload-type map, strict-source check, reception stats
//! (RFC 3550 A.1 sequence, A.8 jitter), SSRC/sequence/timestamp rewrite, destination. Virtual
//! time advances 20 ms per packet, and each packet carries the next sequence number and
//! timestamp, as a live stream does. No sockets: this is the logic's share of a relayed
//! packet, not the I/O's.
//!
//! Run: `cargo bench -p voxgate-bench --bench relay_core -- --warm-up-time 3 --measurement-time 10`

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use voxgate_dataplane::session::{
    LegConfig, LegId, PayloadMap, Port, Session, SessionConfig, Verdict,
};

const A: LegId = LegId(0);
const B: LegId = LegId(1);

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("bench address")
}

fn g711_packet(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 8, 0, 0, 0, 0, 0, 0];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.resize(172, 0xd5);
    p
}

fn latched_session(t0: Instant) -> Session {
    let mut map = PayloadMap::new();
    map.map(0, 0, 8000)
        .map(8, 8, 8000)
        .map_events(101, 101, 8000);
    let mut a = LegConfig::new(addr("192.0.2.1:20000"), B);
    a.remote_rtp = Some(addr("198.51.100.10:4000"));
    a.payload_map = map.clone();
    let mut b = LegConfig::new(addr("192.0.2.1:20002"), A);
    b.remote_rtp = Some(addr("203.0.113.20:6000"));
    b.payload_map = map;
    let mut s = Session::new(t0, SessionConfig::default(), vec![a, b]).expect("valid session");
    for (leg, src) in [(A, "198.51.100.10:4000"), (B, "203.0.113.20:6000")] {
        let mut p = g711_packet(7);
        let v = s.on_packet(t0, leg, Port::Rtp, addr(src), &mut p);
        assert!(matches!(v, Verdict::Forward { .. }), "latched");
    }
    s
}

fn relay(c: &mut Criterion) {
    #[allow(clippy::disallowed_methods)] // the one real instant virtual time starts from
    let t0 = Instant::now();
    let mut g = c.benchmark_group("relay_core");
    g.throughput(Throughput::Elements(1));

    let mut s = latched_session(t0);
    let src = addr("198.51.100.10:4000");
    let mut buf = g711_packet(0x1234_5678);
    // Past the 3 s learning window: strict source.
    let mut at = t0 + Duration::from_secs(4);
    let mut seq: u16 = 0;
    let mut ts: u32 = 0;
    g.bench_function("on_packet_g711_172B_latched", |bench| {
        bench.iter(|| {
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(160);
            at += Duration::from_millis(20);
            buf[2..4].copy_from_slice(&seq.to_be_bytes());
            buf[4..8].copy_from_slice(&ts.to_be_bytes());
            let v = s.on_packet(at, A, Port::Rtp, src, black_box(&mut buf[..]));
            debug_assert!(matches!(v, Verdict::Forward { .. }));
            black_box(v)
        });
    });

    let mut s = latched_session(t0);
    let attacker = addr("192.0.2.66:4000");
    g.bench_function("on_packet_g711_172B_strict_source_drop", |bench| {
        bench.iter(|| {
            let v = s.on_packet(at, A, Port::Rtp, attacker, black_box(&mut buf[..]));
            black_box(v)
        });
    });
    g.finish();
}

criterion_group!(benches, relay);
criterion_main!(benches);
