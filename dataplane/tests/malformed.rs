//! Hostile input never panics (STYLE.md §6): arbitrary bytes and mutated valid packets
//! through the RTP and RTCP views and through `Session::on_packet` on every port.

mod common;

use common::*;
use proptest::prelude::*;
use voxgate_dataplane::rtcp::RtcpCompound;
use voxgate_dataplane::rtp::{classify, RtpPacket};
use voxgate_dataplane::session::{LegId, Port, Session, Verdict};

/// Reads everything a view offers and rewrites every field, so any bad index would show.
fn exercise_views(bytes: &[u8]) {
    let _ = classify(bytes);
    let mut buf = bytes.to_vec();
    if let Ok(mut p) = RtpPacket::new_checked(&mut buf[..]) {
        let _ = (
            p.version(),
            p.marker(),
            p.payload_type(),
            p.sequence_number(),
        );
        let _ = (p.timestamp(), p.ssrc(), p.csrcs().count(), p.extension());
        let _ = (p.payload().len(), p.padding_len(), p.header_len());
        p.set_ssrc(1);
        p.set_sequence_number(2);
        p.set_timestamp(3);
        p.set_payload_type(4);
        p.payload_mut().fill(0);
    }
    let mut buf = bytes.to_vec();
    if let Ok(mut c) = RtcpCompound::new_checked(&mut buf[..]) {
        for mut part in c.packets_mut() {
            let _ = (
                part.packet_type(),
                part.count(),
                part.sender_ssrc(),
                part.sender_info(),
            );
            let _ = part.report_blocks().count();
            part.ssrcs(|_, _| ());
            part.rewrite_ssrcs(|_, s| s ^ 0xffff_ffff);
            part.set_sender_ssrc(9);
            part.set_sr_rtp_timestamp(9);
        }
        assert!(
            RtcpCompound::new_checked(&buf[..]).is_ok(),
            "a rewrite keeps it valid"
        );
    }
}

fn latched_session(clock: Clock) -> Session {
    let mut s = session(clock);
    let mut p = rtp(8, 1, 0, 1, 160);
    assert!(matches!(
        s.on_packet(clock.ms(0), A, Port::Rtp, addr(A_SDP), &mut p),
        Verdict::Forward { .. }
    ));
    s
}

fn exercise_session(bytes: &[u8]) {
    let clock = Clock::new();
    let mut s = latched_session(clock);
    for (leg, port, at) in [
        (A, Port::Rtp, 10),
        (A, Port::Rtcp, 20),
        (B, Port::Rtp, 30),
        (B, Port::Rtcp, 40),
        (LegId(7), Port::Rtp, 50),
        (A, Port::Rtp, 5_000),
    ] {
        let mut buf = bytes.to_vec();
        let v = s.on_packet(clock.ms(at), leg, port, addr(A_SDP), &mut buf);
        if let Verdict::Drop(_) = v {
            assert_eq!(buf, bytes, "a dropped packet is left as it was");
        }
        let _ = s.stats(leg);
    }
    s.handle_timeout(clock.s(100));
    let _ = s.poll_event();
}

/// A valid SR+SDES+BYE compound and a valid RTP packet with CSRC, extension and padding:
/// seeds for mutation.
fn seeds() -> Vec<Vec<u8>> {
    let sr = with_sdes(
        report(
            5,
            Some((1, 2)),
            &[Block {
                ssrc: 6,
                lsr: 7,
                dlsr: 8,
            }],
        ),
        5,
    );
    let mut rtp_full = vec![0x80 | 0x20 | 0x10 | 1, 8, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
    rtp_full.extend_from_slice(&[0, 0, 0, 4, 0xbe, 0xde, 0, 1, 1, 2, 3, 4, 9, 9, 0, 2]);
    vec![sr, rtp_full, rtp(0, 1, 2, 3, 160)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        exercise_views(&bytes);
        exercise_session(&bytes);
    }

    #[test]
    fn arbitrary_bytes_behind_a_media_first_byte(
        first in 0x80u8..0xc0,
        second in any::<u8>(),
        rest in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut bytes = vec![first, second];
        bytes.extend_from_slice(&rest);
        exercise_views(&bytes);
        exercise_session(&bytes);
    }

    #[test]
    fn mutated_and_truncated_valid_packets(
        seed in 0usize..3,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = seeds()[seed].clone();
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        let len = cut.index(bytes.len() + 1);
        bytes.truncate(len);
        exercise_views(&bytes);
        exercise_session(&bytes);
    }
}
