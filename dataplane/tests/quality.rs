//! MED-11: loss (RFC 3550 A.3), jitter (A.8), RTT from an SR/RR pair (LSR/DLSR) and the
//! E-model MOS, against hand-computed values.

mod common;

use std::time::Duration;

use common::*;
use voxgate_dataplane::session::{Port, Session, Verdict};
use voxgate_dataplane::stats::mos_g711;

/// Leg A's peer sends (arrival ms, seq, ts).
fn feed(s: &mut Session, clock: Clock, packets: &[(u64, u16, u32)]) {
    for &(at, seq, ts) in packets {
        let mut p = rtp(8, seq, ts, 0xa, 160);
        let v = s.on_packet(clock.ms(at), A, Port::Rtp, addr(A_SDP), &mut p);
        assert!(matches!(v, Verdict::Forward { .. }), "{v:?}");
    }
}

#[test]
fn loss_from_sequence_gaps_duplicates_and_wrap() {
    let clock = Clock::new();
    let mut s = session(clock);
    // 1..=10 with 4, 7 and 8 missing, and 6 twice: expected 10, received 8, lost 2.
    let seqs = [1u16, 2, 3, 5, 6, 6, 9, 10];
    let packets: Vec<_> = seqs
        .iter()
        .enumerate()
        .map(|(i, &q)| (i as u64 * 20, q, 0))
        .collect();
    feed(&mut s, clock, &packets);
    let st = s.stats(A).expect("leg A");
    assert_eq!((st.expected, st.lost, st.rtp_packets), (10, 2, 8));
    assert_eq!(st.rtp_payload_octets, 8 * 160);
    assert_eq!(st.octets, 8 * 172);

    // Across the 16-bit wrap: 65534, 65535, (0 lost), 1.
    let mut s = session(clock);
    feed(
        &mut s,
        clock,
        &[(0, 65_534, 0), (20, 65_535, 160), (60, 1, 480)],
    );
    let st = s.stats(A).expect("leg A");
    assert_eq!((st.expected, st.lost), (4, 1));
}

#[test]
fn loss_adds_up_over_ssrc_changes() {
    let clock = Clock::new();
    let mut s = session(clock);
    feed(&mut s, clock, &[(0, 1, 0), (20, 3, 320)]); // one lost
    let mut p = rtp(8, 900, 0, 0xbeef, 160);
    s.on_packet(clock.ms(40), A, Port::Rtp, addr(A_SDP), &mut p);
    let mut p = rtp(8, 902, 320, 0xbeef, 160);
    s.on_packet(clock.ms(60), A, Port::Rtp, addr(A_SDP), &mut p); // one more
    let st = s.stats(A).expect("leg A");
    assert_eq!((st.expected, st.lost), (6, 2));
}

#[test]
fn jitter_by_hand() {
    let clock = Clock::new();
    let mut s = session(clock);
    // 8 kHz. Transit (arrival units - ts): 0, 0, 80, 0. |D|: -, 0, 80, 80.
    // J: 0 -> 0 -> 80/16 = 5 -> 5 + (80 - 5)/16 = 9.6875; RFC 3550 A.8's integer form keeps
    // 16·J: 0, 80, 80 + 80 - (88 >> 4 = 5) = 155, reported as 155 >> 4 = 9.
    feed(
        &mut s,
        clock,
        &[(0, 1, 0), (20, 2, 160), (50, 3, 320), (60, 4, 480)],
    );
    let st = s.stats(A).expect("leg A");
    assert_eq!(st.jitter, 9);
    assert_eq!(st.jitter_ms, 9.0 / 8.0);
    assert_eq!(st.lost, 0);
}

#[test]
fn telephone_events_stay_out_of_the_jitter() {
    let clock = Clock::new();
    let mut s = session(clock);
    feed(&mut s, clock, &[(0, 1, 0), (20, 2, 160)]);
    // An RFC 4733 event: every packet carries the event's start timestamp.
    for (i, at) in [40u64, 90, 140].into_iter().enumerate() {
        let mut p = rtp(101, 3 + i as u16, 320, 0xa, 4);
        s.on_packet(clock.ms(at), A, Port::Rtp, addr(A_SDP), &mut p);
    }
    assert_eq!(s.stats(A).map(|st| st.jitter), Some(0));
}

#[test]
fn rtt_from_an_sr_rr_pair() {
    let clock = Clock::new();
    let mut s = session(clock);
    let sb = 0xbbbb;
    feed(&mut s, clock, &[(0, 1, 0)]);
    // A's SR at 1 s (NTP 0x0000_1234_5678_0000: LSR key 0x1234_5678) is relayed to B ...
    let mut sr = report(0xa, Some((0x0000_1234_5678_0000, 8000)), &[]);
    let v = s.on_packet(
        clock.s(1),
        A,
        Port::Rtcp,
        addr("198.51.100.10:4001"),
        &mut sr,
    );
    assert!(matches!(v, Verdict::Forward { to_leg: B, .. }));
    // ... B holds it 0.5 s (DLSR 32768/65536) and its RR reaches voxgate at 1.6 s: the
    // voxgate <-> B round trip is 100 ms.
    let mut rr = report(
        sb,
        None,
        &[Block {
            ssrc: 0xa,
            lsr: 0x1234_5678,
            dlsr: 32_768,
        }],
    );
    let v = s.on_packet(
        clock.ms(1_600),
        B,
        Port::Rtcp,
        addr("203.0.113.20:6001"),
        &mut rr,
    );
    assert!(matches!(v, Verdict::Forward { to_leg: A, .. }));
    let st = s.stats(B).expect("leg B");
    assert_eq!(st.rtt, Some(Duration::from_millis(100)));
    assert_eq!(s.stats(A).and_then(|st| st.rtt), None);
    assert_eq!(s.all_stats().count(), 2);
    // A block with an LSR voxgate never relayed gives no RTT.
    let mut rr = report(
        sb,
        None,
        &[Block {
            ssrc: 0xa,
            lsr: 0x9999,
            dlsr: 0,
        }],
    );
    s.on_packet(
        clock.s(2),
        B,
        Port::Rtcp,
        addr("203.0.113.20:6001"),
        &mut rr,
    );
    assert_eq!(
        s.stats(B).and_then(|st| st.rtt),
        Some(Duration::from_millis(100))
    );
}

#[test]
fn mos_falls_with_loss() {
    let mut last = f64::INFINITY;
    for pct in 0..=60 {
        let mos = mos_g711(f64::from(pct) / 100.0, 40.0);
        assert!(mos < last, "{pct}%: {mos} !< {last}");
        assert!((1.0..=4.5).contains(&mos));
        last = mos;
    }
    assert!(mos_g711(0.0, 40.0) > 4.3, "clean G.711 rates about 4.4");

    // Through the session: 1 lost in 10 rates lower than none lost.
    let clock = Clock::new();
    let mut clean = session(clock);
    let mut lossy = session(clock);
    let all: Vec<_> = (1..=10u16)
        .map(|q| (u64::from(q) * 20, q, u32::from(q) * 160))
        .collect();
    let gappy: Vec<_> = all.iter().copied().filter(|p| p.1 != 5).collect();
    feed(&mut clean, clock, &all);
    feed(&mut lossy, clock, &gappy);
    let (c, l) = (
        clean.stats(A).expect("A").mos,
        lossy.stats(A).expect("A").mos,
    );
    assert!(l < c, "{l} !< {c}");
}
