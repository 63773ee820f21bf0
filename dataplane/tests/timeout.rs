//! MED-24: media timeout (60 s active, 3600 s on hold, configurable) under virtual time.

mod common;

use std::time::Duration;

use common::*;
use voxgate_dataplane::session::{Port, Session, SessionConfig, SessionEvent, Verdict};

fn media(s: &mut Session, at: std::time::Instant, from: &str, seq: u16) -> Verdict {
    let mut p = rtp(8, seq, u32::from(seq) * 160, 0xa, 160);
    s.on_packet(at, A, Port::Rtp, addr(from), &mut p)
}

#[test]
fn sixty_seconds_without_media_raise_one_event() {
    let clock = Clock::new();
    let mut s = session(clock);
    assert_eq!(s.poll_timeout(), Some(clock.s(60)));
    assert!(matches!(
        media(&mut s, clock.s(10), A_SDP, 1),
        Verdict::Forward { .. }
    ));
    assert_eq!(s.poll_timeout(), Some(clock.s(70)));

    s.handle_timeout(clock.ms(69_999));
    assert_eq!(s.poll_event(), None);
    s.handle_timeout(clock.s(70));
    assert_eq!(
        s.poll_event(),
        Some(SessionEvent::MediaTimeout {
            held: false,
            idle: Duration::from_secs(60)
        })
    );
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.poll_timeout(), None, "fired once");
    s.handle_timeout(clock.s(200));
    assert_eq!(s.poll_event(), None);

    // Media resuming re-arms it.
    assert!(matches!(
        media(&mut s, clock.s(201), A_SDP, 2),
        Verdict::Forward { .. }
    ));
    assert_eq!(s.poll_timeout(), Some(clock.s(261)));
}

#[test]
fn rtcp_alone_keeps_the_session_alive_but_dropped_packets_do_not() {
    let clock = Clock::new();
    let mut s = session(clock);
    assert!(matches!(
        media(&mut s, clock.s(1), A_SDP, 1),
        Verdict::Forward { .. }
    ));
    let mut rr = report(0xb, None, &[]);
    let v = s.on_packet(
        clock.s(50),
        B,
        Port::Rtcp,
        addr("203.0.113.20:6001"),
        &mut rr,
    );
    assert!(matches!(v, Verdict::Forward { .. }));
    assert_eq!(s.poll_timeout(), Some(clock.s(110)));
    // An attacker after the window does not hold the session open.
    assert!(matches!(
        media(&mut s, clock.s(100), "192.0.2.66:4000", 2),
        Verdict::Drop(_)
    ));
    assert_eq!(s.poll_timeout(), Some(clock.s(110)));
    s.handle_timeout(clock.s(110));
    assert!(matches!(
        s.poll_event(),
        Some(SessionEvent::MediaTimeout { held: false, .. })
    ));
}

#[test]
fn hold_uses_the_hold_timeout() {
    let clock = Clock::new();
    let mut s = session(clock);
    s.set_hold(clock.s(5), true);
    assert!(s.held());
    assert_eq!(s.poll_timeout(), Some(clock.s(3605)));
    s.handle_timeout(clock.s(65));
    assert_eq!(s.poll_event(), None, "60 s of silence is normal on hold");
    s.handle_timeout(clock.s(3605));
    assert_eq!(
        s.poll_event(),
        Some(SessionEvent::MediaTimeout {
            held: true,
            idle: Duration::from_secs(3600)
        })
    );
    // Taken off hold: the active timeout again, from then.
    s.set_hold(clock.s(4000), false);
    assert_eq!(s.poll_timeout(), Some(clock.s(4060)));
}

#[test]
fn timeouts_are_configurable_and_an_update_restarts_them() {
    let clock = Clock::new();
    let config = SessionConfig {
        media_timeout: Duration::from_secs(5),
        hold_timeout: Duration::from_secs(7),
        ..SessionConfig::default()
    };
    let mut s = Session::new(clock.0, config, leg_configs()).expect("valid");
    assert_eq!(s.poll_timeout(), Some(clock.s(5)));
    s.update(clock.s(4), leg_configs()).expect("same legs");
    assert_eq!(s.poll_timeout(), Some(clock.s(9)));
    s.set_hold(clock.s(6), true);
    assert_eq!(s.poll_timeout(), Some(clock.s(13)));
}
