//! MED-23: latching within the learning window, strict source after it (the five-socket
//! attack pattern at the logic level), re-learning only after an update.

mod common;

use common::*;
use voxgate_dataplane::session::{Port, Verdict};
use voxgate_dataplane::stats::DropReason;

fn send(
    s: &mut voxgate_dataplane::session::Session,
    at: std::time::Instant,
    leg: voxgate_dataplane::session::LegId,
    from: &str,
    seq: u16,
) -> Verdict {
    let mut p = rtp(8, seq, u32::from(seq) * 160, 0xa1, 160);
    s.on_packet(at, leg, Port::Rtp, addr(from), &mut p)
}

fn forwarded_to(dest: &str) -> Verdict {
    Verdict::Forward {
        to_leg: B,
        port: Port::Rtp,
        dest: addr(dest),
    }
}

#[test]
fn first_source_in_the_window_latches_and_is_where_media_goes() {
    let clock = Clock::new();
    let mut s = session(clock);
    // Leg A's peer is behind NAT: it sends from another address than its SDP says.
    let nat = "198.51.100.77:31000";
    assert_eq!(send(&mut s, clock.ms(500), A, nat, 1), forwarded_to(B_SDP));
    // B's peer answers from its SDP address; its media goes to A's latched NAT address.
    assert_eq!(
        send(&mut s, clock.ms(520), B, B_SDP, 1),
        Verdict::Forward {
            to_leg: A,
            port: Port::Rtp,
            dest: addr(nat)
        }
    );
    // Within the window, a second source is refused: the first one keeps the leg.
    assert_eq!(
        send(&mut s, clock.ms(600), A, "198.51.100.78:31000", 2),
        Verdict::Drop(DropReason::Source)
    );
    let st = s.stats(A).expect("leg A");
    assert_eq!(st.latched_rtp, Some(addr(nat)));
    assert_eq!(st.dropped.source, 1);
}

#[test]
fn the_sdp_address_wins_over_a_racing_attacker_within_the_window() {
    let clock = Clock::new();
    let mut s = session(clock);
    let attacker = "192.0.2.200:4000";
    // The attacker is first: it latches (nothing better is known yet) ...
    assert_eq!(
        send(&mut s, clock.ms(10), A, attacker, 1),
        forwarded_to(B_SDP)
    );
    // ... until the peer sends from its SDP address.
    assert_eq!(send(&mut s, clock.ms(30), A, A_SDP, 2), forwarded_to(B_SDP));
    assert_eq!(
        send(&mut s, clock.ms(50), A, attacker, 3),
        Verdict::Drop(DropReason::Source)
    );
    assert_eq!(s.stats(A).and_then(|st| st.latched_rtp), Some(addr(A_SDP)));
}

/// The five-socket pattern: expected peer; same IP other port; other IP same port; other IP
/// other port; a sweep of the port range. After the window none latches, none is forwarded.
#[test]
fn strict_source_after_the_window_five_sockets() {
    let clock = Clock::new();
    let mut s = session(clock);
    assert_eq!(
        send(&mut s, clock.ms(100), A, A_SDP, 1),
        forwarded_to(B_SDP)
    );

    let after = clock.ms(3_000); // the window is [answer, answer + 3 s)
    assert_eq!(send(&mut s, after, A, A_SDP, 2), forwarded_to(B_SDP));
    let attackers = [
        "198.51.100.10:4001",
        "198.51.100.11:4000",
        "192.0.2.99:7777",
    ];
    let mut injected = 0u64;
    let mut seq = 3;
    for a in attackers {
        assert_eq!(
            send(&mut s, after, A, a, seq),
            Verdict::Drop(DropReason::Source),
            "{a}"
        );
        injected += 1;
        seq += 1;
    }
    // Sweep every port of the peer's own IP and of another IP, RTP and RTCP sockets.
    for ip in ["198.51.100.10", "192.0.2.99"] {
        for port in 1..=u16::MAX {
            let src = format!("{ip}:{port}");
            if src == A_SDP {
                continue;
            }
            let mut p = rtp(8, seq, 0, 0xbad, 160);
            let v = s.on_packet(after, A, Port::Rtp, addr(&src), &mut p);
            assert_eq!(v, Verdict::Drop(DropReason::Source), "{src}");
            injected += 1;
            seq = seq.wrapping_add(1);
        }
    }
    // Nothing latched meanwhile, and the peer still gets through.
    let st = s.stats(A).expect("leg A");
    assert_eq!(st.latched_rtp, Some(addr(A_SDP)));
    assert_eq!(st.dropped.source, injected);
    assert_eq!(st.rtp_packets, 2);
    assert_eq!(s.stats(B).map(|b| b.sent_packets), Some(2));
    assert_eq!(
        send(&mut s, clock.ms(3_020), A, A_SDP, 3),
        forwarded_to(B_SDP)
    );
}

#[test]
fn rtcp_latches_separately_from_rtp() {
    let clock = Clock::new();
    let mut s = session(clock);
    assert_eq!(
        send(&mut s, clock.ms(100), A, A_SDP, 1),
        forwarded_to(B_SDP)
    );
    // An RR from the peer's RTCP port latches the RTCP socket.
    let rtcp_src = "198.51.100.10:4001";
    let mut rr = report(0xa1, None, &[]);
    assert!(matches!(
        s.on_packet(clock.ms(200), A, Port::Rtcp, addr(rtcp_src), &mut rr),
        Verdict::Forward {
            port: Port::Rtcp,
            ..
        }
    ));
    // After the window, the RTP address is not accepted on the RTCP socket, nor vice versa.
    let mut rr = report(0xa1, None, &[]);
    assert_eq!(
        s.on_packet(clock.s(5), A, Port::Rtcp, addr(A_SDP), &mut rr),
        Verdict::Drop(DropReason::Source)
    );
    assert_eq!(
        send(&mut s, clock.s(5), A, rtcp_src, 2),
        Verdict::Drop(DropReason::Source)
    );
    let st = s.stats(A).expect("leg A");
    assert_eq!(st.latched_rtcp, Some(addr(rtcp_src)));
}

#[test]
fn relearning_only_after_an_update() {
    let clock = Clock::new();
    let mut s = session(clock);
    let old = "198.51.100.77:31000";
    let new = "198.51.100.88:42000";
    assert_eq!(send(&mut s, clock.ms(100), A, old, 1), forwarded_to(B_SDP));
    // The phone moves (new NAT binding) without a re-offer: refused.
    assert_eq!(
        send(&mut s, clock.s(10), A, new, 2),
        Verdict::Drop(DropReason::Source)
    );
    // A re-INVITE reopens the window; the first source in it latches.
    s.update(clock.s(20), leg_configs()).expect("same legs");
    assert_eq!(
        send(&mut s, clock.ms(20_100), A, new, 3),
        forwarded_to(B_SDP)
    );
    assert_eq!(
        send(&mut s, clock.ms(20_200), A, old, 4),
        Verdict::Drop(DropReason::Source)
    );
    // And after the new window, strict again.
    assert_eq!(
        send(&mut s, clock.s(24), A, old, 5),
        Verdict::Drop(DropReason::Source)
    );
    assert_eq!(send(&mut s, clock.s(24), A, new, 6), forwarded_to(B_SDP));
    assert_eq!(s.stats(A).and_then(|st| st.latched_rtp), Some(addr(new)));
}

#[test]
fn an_update_with_a_new_sdp_address_sends_there_until_the_peer_latches() {
    let clock = Clock::new();
    let mut s = session(clock);
    assert_eq!(
        send(&mut s, clock.ms(100), B, B_SDP, 1).dest(),
        Some(addr(A_SDP))
    );
    let nat = "198.51.100.77:31000";
    assert_eq!(send(&mut s, clock.ms(200), A, nat, 1), forwarded_to(B_SDP));
    assert_eq!(
        send(&mut s, clock.ms(300), B, B_SDP, 2).dest(),
        Some(addr(nat))
    );
    // Leg A's peer re-offers from a new address.
    let mut legs = leg_configs();
    legs[0].remote_rtp = Some(addr("198.51.100.50:5000"));
    s.update(clock.s(30), legs).expect("same legs");
    assert_eq!(
        send(&mut s, clock.ms(30_010), B, B_SDP, 3).dest(),
        Some(addr("198.51.100.50:5000"))
    );
}

#[test]
fn sdp_addresses_that_must_not_be_sent_to() {
    let clock = Clock::new();
    for bad in [
        "127.0.0.1:4000",
        "0.0.0.0:4000",
        "224.0.0.1:4000",
        "255.255.255.255:4000",
        "198.51.100.10:0",
        "[::1]:4000",
        "[::ffff:127.0.0.1]:4000",
    ] {
        let mut legs = leg_configs();
        legs[1].remote_rtp = Some(addr(bad));
        let mut s = voxgate_dataplane::session::Session::new(
            clock.0,
            voxgate_dataplane::session::SessionConfig::default(),
            legs,
        )
        .expect("valid");
        assert_eq!(
            send(&mut s, clock.ms(10), A, A_SDP, 1),
            Verdict::Drop(DropReason::NoDestination),
            "{bad}"
        );
    }
    // Loopback is allowed only when the danger option says so.
    let mut legs = leg_configs();
    legs[1].remote_rtp = Some(addr("127.0.0.1:4000"));
    let config = voxgate_dataplane::session::SessionConfig {
        danger_allow_loopback_remote: true,
        ..Default::default()
    };
    let mut s = voxgate_dataplane::session::Session::new(clock.0, config, legs).expect("valid");
    assert_eq!(
        send(&mut s, clock.ms(10), A, A_SDP, 1),
        forwarded_to("127.0.0.1:4000")
    );
}

#[test]
fn a_leg_silent_through_the_window_may_still_latch_its_sdp_address_only() {
    let clock = Clock::new();
    let mut s = session(clock);
    assert_eq!(
        send(&mut s, clock.s(5), A, "198.51.100.77:31000", 1),
        Verdict::Drop(DropReason::Source)
    );
    assert_eq!(send(&mut s, clock.s(6), A, A_SDP, 2), forwarded_to(B_SDP));
}

trait Dest {
    fn dest(&self) -> Option<std::net::SocketAddr>;
}

impl Dest for Verdict {
    fn dest(&self) -> Option<std::net::SocketAddr> {
        match self {
            Verdict::Forward { dest, .. } => Some(*dest),
            Verdict::Drop(_) => None,
        }
    }
}
