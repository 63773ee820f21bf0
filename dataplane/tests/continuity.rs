//! Stream continuity (SSRC, sequence, timestamp) across a re-offer and a source change,
//! payload-type mapping, RTCP SSRC rewriting and RFC 5761 rtcp-mux.

mod common;

use common::*;
use voxgate_dataplane::rtcp::{RtcpCompound, SsrcField};
use voxgate_dataplane::session::{Port, Session, SessionConfig, Verdict};
use voxgate_dataplane::stats::DropReason;

/// Sends an RTP packet on leg A's RTP port and returns what leaves on B: (ssrc, seq, ts, pt).
fn relay_a(
    s: &mut Session,
    at: std::time::Instant,
    from: &str,
    (pt, seq, ts, ssrc): (u8, u16, u32, u32),
) -> (u32, u16, u32, u8) {
    let mut p = rtp(pt, seq, ts, ssrc, 160);
    let v = s.on_packet(at, A, Port::Rtp, addr(from), &mut p);
    assert!(matches!(v, Verdict::Forward { to_leg: B, .. }), "{v:?}");
    fields(&p)
}

#[test]
fn one_stream_across_a_reoffer_and_a_source_change() {
    let clock = Clock::new();
    let mut s = session(clock);
    let s1 = 0x1111_1111;
    // Five packets, 20 ms apart, passed through unchanged.
    for k in 0..5u16 {
        let out = relay_a(
            &mut s,
            clock.ms(20 * u64::from(k)),
            A_SDP,
            (8, 1000 + k, 16_000 + 160 * u32::from(k), s1),
        );
        assert_eq!(out, (s1, 1000 + k, 16_000 + 160 * u32::from(k), 8));
    }
    // Re-INVITE at 100 ms; at 120 ms the media comes from a new source (another port, new
    // SSRC, new random sequence and timestamp).
    s.update(clock.ms(100), leg_configs()).expect("same legs");
    let new_src = "198.51.100.10:4100";
    let s2 = 0x2222_2222;
    // Last sent: seq 1004, ts 16_640 at 80 ms; 40 ms later is 320 units at 8 kHz.
    assert_eq!(
        relay_a(&mut s, clock.ms(120), new_src, (8, 50_000, 999_999, s2)),
        (s1, 1005, 16_960, 8)
    );
    assert_eq!(
        relay_a(&mut s, clock.ms(140), new_src, (8, 50_001, 1_000_159, s2)),
        (s1, 1006, 17_120, 8)
    );
    // A late packet of the old source keeps its old numbering and does not move the stream.
    assert_eq!(
        relay_a(&mut s, clock.ms(141), new_src, (8, 1003, 16_480, s1)),
        (s1, 1003, 16_480, 8)
    );
    assert_eq!(
        relay_a(&mut s, clock.ms(160), new_src, (8, 50_002, 1_000_319, s2)),
        (s1, 1007, 17_280, 8)
    );
    // Another SSRC change without a re-offer (same address): still one stream, across the
    // 16-bit sequence wrap of the new source.
    let s3 = 0x3333_3333;
    assert_eq!(
        relay_a(&mut s, clock.ms(180), new_src, (8, 65_535, 7, s3)),
        (s1, 1008, 17_440, 8)
    );
    assert_eq!(
        relay_a(&mut s, clock.ms(200), new_src, (8, 0, 167, s3)),
        (s1, 1009, 17_600, 8)
    );
}

#[test]
fn payload_types_are_mapped_per_direction_and_unmapped_ones_dropped() {
    let clock = Clock::new();
    let mut legs = leg_configs();
    // A calls telephone-event 101 and Opus 111; B calls them 96 and 107.
    legs[0]
        .payload_map
        .map_events(101, 96, 8000)
        .map(111, 107, 48_000);
    legs[1]
        .payload_map
        .map_events(96, 101, 8000)
        .map(107, 111, 48_000);
    let mut s = Session::new(clock.0, SessionConfig::default(), legs).expect("valid");
    assert_eq!(relay_a(&mut s, clock.ms(0), A_SDP, (101, 1, 0, 5)).3, 96);
    assert_eq!(
        relay_a(&mut s, clock.ms(20), A_SDP, (111, 2, 960, 5)).3,
        107
    );
    assert_eq!(relay_a(&mut s, clock.ms(40), A_SDP, (8, 3, 1920, 5)).3, 8);

    let mut p = rtp(96, 1, 0, 6, 4);
    p[1] |= 0x80; // marker: start of the event
    let v = s.on_packet(clock.ms(50), B, Port::Rtp, addr(B_SDP), &mut p);
    assert!(matches!(v, Verdict::Forward { to_leg: A, .. }));
    assert_eq!(p[1], 0x80 | 101, "PT mapped, marker kept");

    // PT 18 (G.729) was not negotiated.
    let mut p = rtp(18, 4, 2080, 5, 20);
    let before = p.clone();
    let v = s.on_packet(clock.ms(60), A, Port::Rtp, addr(A_SDP), &mut p);
    assert_eq!(v, Verdict::Drop(DropReason::PayloadType));
    assert_eq!(p, before, "a dropped packet is not rewritten");
    assert_eq!(s.stats(A).map(|st| st.dropped.payload_type), Some(1));
}

/// Every SSRC field of a compound, with its role.
fn ssrcs(p: &[u8]) -> Vec<(u8, SsrcField, u32)> {
    let c = RtcpCompound::new_checked(p).expect("valid RTCP");
    let mut v = Vec::new();
    for part in c.packets() {
        part.ssrcs(|role, s| v.push((part.packet_type(), role, s)));
    }
    v
}

#[test]
fn rtcp_ssrcs_follow_the_media_rewrite() {
    let clock = Clock::new();
    let mut s = session(clock);
    let (s1, s2, sb) = (0x1111_1111, 0x2222_2222, 0xbbbb_bbbb);
    relay_a(&mut s, clock.ms(0), A_SDP, (8, 10, 1000, s1));
    let mut p = rtp(8, 77, 5000, sb, 160);
    assert!(matches!(
        s.on_packet(clock.ms(5), B, Port::Rtp, addr(B_SDP), &mut p),
        Verdict::Forward { .. }
    ));
    // A's phone switches SSRC (e.g. after a transfer behind it): s2 goes out as s1.
    assert_eq!(
        relay_a(&mut s, clock.ms(20), A_SDP, (8, 500, 90_000, s2)),
        (s1, 11, 1160, 8)
    );

    // A's SR (sender s2, reporting on B's stream sb) + SDES: sender fields become s1, the
    // SR's RTP timestamp moves by the same offset (90_000 -> 1160), sb stays.
    let mut sr = with_sdes(
        report(
            s2,
            Some((0x0102_0304_0506_0708, 90_000)),
            &[Block {
                ssrc: sb,
                lsr: 0,
                dlsr: 0,
            }],
        ),
        s2,
    );
    let v = s.on_packet(
        clock.ms(30),
        A,
        Port::Rtcp,
        addr("198.51.100.10:4001"),
        &mut sr,
    );
    assert_eq!(
        v,
        Verdict::Forward {
            to_leg: B,
            port: Port::Rtcp,
            dest: addr("203.0.113.20:6001")
        }
    );
    assert_eq!(
        ssrcs(&sr),
        vec![
            (200, SsrcField::Sender, s1),
            (200, SsrcField::Reportee, sb),
            (202, SsrcField::Sender, s1),
        ]
    );
    let c = RtcpCompound::new_checked(&sr[..]).expect("valid");
    let info = c
        .packets()
        .next()
        .and_then(|p| p.sender_info())
        .expect("SR");
    assert_eq!(info.rtp_timestamp, 1160);

    // B's RR reports on s1 (what B receives): A must see its own current SSRC s2.
    let mut rr = report(
        sb,
        None,
        &[Block {
            ssrc: s1,
            lsr: 0,
            dlsr: 0,
        }],
    );
    let v = s.on_packet(
        clock.ms(40),
        B,
        Port::Rtcp,
        addr("203.0.113.20:6001"),
        &mut rr,
    );
    assert!(matches!(
        v,
        Verdict::Forward {
            to_leg: A,
            port: Port::Rtcp,
            ..
        }
    ));
    assert_eq!(
        ssrcs(&rr),
        vec![(201, SsrcField::Sender, sb), (201, SsrcField::Reportee, s2)]
    );
}

#[test]
fn rtcp_mux_demux_on_the_rtp_port() {
    let clock = Clock::new();
    let mut legs = leg_configs();
    legs[1].rtcp_mux = true;
    let mut s = Session::new(clock.0, SessionConfig::default(), legs).expect("valid");

    // B (muxed) sends RTP and RTCP on its RTP port from one address.
    let mut p = rtp(8, 1, 0, 0xb, 160);
    assert_eq!(
        s.on_packet(clock.ms(0), B, Port::Rtp, addr(B_SDP), &mut p),
        Verdict::Forward {
            to_leg: A,
            port: Port::Rtp,
            dest: addr(A_SDP)
        }
    );
    let mut rr = report(0xb, None, &[]);
    assert_eq!(
        s.on_packet(clock.ms(10), B, Port::Rtp, addr(B_SDP), &mut rr),
        Verdict::Forward {
            to_leg: A,
            port: Port::Rtcp,
            dest: addr("198.51.100.10:4001")
        }
    );
    // A (not muxed) sends RTCP on its RTCP port: it reaches B's RTP port and address.
    let mut rr = report(0xa, None, &[]);
    assert_eq!(
        s.on_packet(
            clock.ms(20),
            A,
            Port::Rtcp,
            addr("198.51.100.10:4001"),
            &mut rr
        ),
        Verdict::Forward {
            to_leg: B,
            port: Port::Rtp,
            dest: addr(B_SDP)
        }
    );
    // RTP on an RTCP port is not media; an RTP packet with a PT in 64..=95 demuxes as RTCP
    // and fails the RTCP check.
    let mut p = rtp(8, 2, 160, 0xa, 160);
    assert_eq!(
        s.on_packet(
            clock.ms(30),
            A,
            Port::Rtcp,
            addr("198.51.100.10:4001"),
            &mut p
        ),
        Verdict::Drop(DropReason::NotMedia)
    );
    let mut p = rtp(72, 2, 160, 0xb, 160);
    assert_eq!(
        s.on_packet(clock.ms(40), B, Port::Rtp, addr(B_SDP), &mut p),
        Verdict::Drop(DropReason::Malformed)
    );
    // STUN on a media port is not relayed.
    let mut stun = vec![
        0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(
        s.on_packet(clock.ms(50), B, Port::Rtp, addr(B_SDP), &mut stun),
        Verdict::Drop(DropReason::NotMedia)
    );
    let st = s.stats(B).expect("leg B");
    assert_eq!((st.rtp_packets, st.rtcp_packets), (1, 1));
    assert_eq!(
        st.latched_rtcp,
        Some(addr(B_SDP)),
        "muxed: RTCP shares the RTP latch"
    );
}
