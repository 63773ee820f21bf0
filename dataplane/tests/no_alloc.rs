//! The per-packet path does not allocate (STYLE.md §9): a latched session relays RTP both
//! ways, RTCP SR/RR with SSRC rewriting, an SSRC change, and drops attacker packets, while a
//! counting global allocator watches. One test in its own binary, so no other test thread
//! allocates meanwhile.

mod common;

use std::alloc::System;

use common::*;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use voxgate_dataplane::session::{Port, Verdict};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn on_packet_does_not_allocate() {
    let clock = Clock::new();
    let mut s = session(clock);
    // All buffers exist before the measured region.
    let mut a = rtp(8, 1, 0, 0xa, 160);
    let mut b = rtp(8, 1, 0, 0xb, 160);
    let mut sr = with_sdes(
        report(
            0xa,
            Some((1 << 32, 0)),
            &[Block {
                ssrc: 0xb,
                lsr: 0,
                dlsr: 0,
            }],
        ),
        0xa,
    );
    let mut rr = report(
        0xb,
        None,
        &[Block {
            ssrc: 0xa,
            lsr: 1 << 16,
            dlsr: 10,
        }],
    );
    let mut evil = rtp(8, 1, 0, 0xe, 160);
    let mut junk = vec![0x80u8, 200, 0xff, 0xff];
    let (a_src, b_src) = (addr(A_SDP), addr(B_SDP));
    let (a_rtcp, b_rtcp) = (addr("198.51.100.10:4001"), addr("203.0.113.20:6001"));
    let attacker = addr("192.0.2.66:4000");

    let region = Region::new(GLOBAL);
    let mut forwarded = 0u32;
    for k in 0..2_000u32 {
        let at = clock.ms(u64::from(k) * 20);
        let seq = k as u16;
        // An SSRC change half way.
        let ssrc: u32 = if k < 1_000 { 0xa } else { 0xa2 };
        a[2..4].copy_from_slice(&seq.to_be_bytes());
        a[4..8].copy_from_slice(&(k * 160).to_be_bytes());
        a[8..12].copy_from_slice(&ssrc.to_be_bytes());
        b[2..4].copy_from_slice(&seq.to_be_bytes());
        for (leg, port, src, buf) in [
            (A, Port::Rtp, a_src, &mut a),
            (B, Port::Rtp, b_src, &mut b),
            (A, Port::Rtp, attacker, &mut evil),
            (A, Port::Rtcp, a_rtcp, &mut junk),
        ] {
            if let Verdict::Forward { .. } = s.on_packet(at, leg, port, src, buf) {
                forwarded += 1;
            }
        }
        if k % 250 == 0 {
            let _ = s.on_packet(at, A, Port::Rtcp, a_rtcp, &mut sr);
            let _ = s.on_packet(at, B, Port::Rtcp, b_rtcp, &mut rr);
            let _ = s.stats(A);
        }
        s.handle_timeout(at);
        let _ = s.poll_event();
        let _ = s.poll_timeout();
    }
    let change = region.change();
    assert_eq!(
        forwarded, 4_000,
        "both directions relayed, the attacker's and junk dropped"
    );
    assert_eq!(
        (change.allocations, change.reallocations),
        (0, 0),
        "per-packet path allocated: {change:?}"
    );
}
