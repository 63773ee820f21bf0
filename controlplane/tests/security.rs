//! Edge security under virtual time (issue 3 item 3; SEC-03, SEC-04, SEC-08, SEC-13,
//! SEC-15, SEC-17): lists, flood bans, IPv6 /64 folding, brute-force lockout, scanners,
//! the new-transaction bucket, overload admission, ban events and restore, the memory
//! bound under spoofed floods, and a property test of random operation sequences.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use voxgate_controlplane::security::{
    source_key, AclSource, Admission, Ban, BanReason, EdgeSecurity, IpNet, ListenerAcl,
    OverloadReason, SecurityConfig, SecurityDrop, SecurityEvent, SourceVerdict, TrunkAcl, Trust,
    UnbanReason,
};
use voxgate_controlplane::sip::{Method, Transport};

#[allow(clippy::disallowed_methods)] // the one real instant; every later time is virtual
fn t0() -> Instant {
    Instant::now()
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test network")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// What the binary's store does with the events.
fn persist(sec: &mut EdgeSecurity, store: &mut HashMap<IpAddr, Ban>) {
    for e in events(sec) {
        apply(store, e).expect("every unban names a stored ban");
    }
}

fn events(sec: &mut EdgeSecurity) -> Vec<SecurityEvent> {
    std::iter::from_fn(|| sec.poll_event()).collect()
}

/// Runs every timeout due at or before `until`, as the driver would.
fn run_timers_until(sec: &mut EdgeSecurity, until: Instant) {
    while let Some(at) = sec.poll_timeout() {
        if at > until {
            break;
        }
        sec.handle_timeout(at);
    }
}

#[test]
fn block_list_drops_before_anything_else() {
    let mut sec = EdgeSecurity::new(SecurityConfig {
        block: vec![net("203.0.113.0/24"), net("2001:db8:bad::/48")],
        allow: vec![net("203.0.113.5")],
        ..SecurityConfig::default()
    });
    let now = t0();
    let blocked = SourceVerdict::Drop(SecurityDrop::Blocked);
    // Block wins over allow.
    assert_eq!(sec.check_source(now, ip("203.0.113.5")), blocked);
    assert_eq!(sec.check_source(now, ip("::ffff:203.0.113.9")), blocked);
    assert_eq!(sec.check_source(now, ip("2001:db8:bad:1::1")), blocked);
    assert_eq!(
        sec.check_source(now, ip("198.51.100.1")),
        SourceVerdict::Untrusted
    );
    assert_eq!(sec.stats().dropped_for(SecurityDrop::Blocked), 3);
    // Blocked traffic is not counted towards anything else.
    assert_eq!(sec.tracked_sources(), 1);
    assert!(events(&mut sec).is_empty());
}

#[test]
fn trunk_acl_sources_are_trusted_and_named() {
    let mut sec = EdgeSecurity::new(SecurityConfig {
        trunks: vec![
            TrunkAcl {
                name: "carrier-a".into(),
                sources: vec![AclSource {
                    net: net("198.51.100.0/28"),
                    port: None,
                }],
            },
            TrunkAcl {
                name: "carrier-b".into(),
                sources: vec![AclSource {
                    net: net("203.0.113.7"),
                    port: Some(5060),
                }],
            },
        ],
        ..SecurityConfig::default()
    });
    let now = t0();
    for _ in 0..200 {
        assert_eq!(
            sec.check_source(now, ip("198.51.100.3")),
            SourceVerdict::Trusted
        );
    }
    assert_eq!(sec.bans().count(), 0);
    assert_eq!(
        sec.trunk_of("198.51.100.3:5080".parse().expect("addr")),
        Some("carrier-a")
    );
    assert_eq!(
        sec.trunk_of("203.0.113.7:5060".parse().expect("addr")),
        Some("carrier-b")
    );
    // The port is part of the trunk's identity, not of trust.
    assert_eq!(
        sec.trunk_of("203.0.113.7:5062".parse().expect("addr")),
        None
    );
    assert_eq!(
        sec.trunk_of("198.51.100.16:5060".parse().expect("addr")),
        None
    );
    // Outside every ACL: counted like anybody else.
    let stranger = ip("198.51.100.16");
    let verdicts: Vec<_> = (0..31).map(|_| sec.check_source(now, stranger)).collect();
    assert_eq!(verdicts[29], SourceVerdict::Untrusted);
    assert_eq!(verdicts[30], SourceVerdict::Drop(SecurityDrop::Flood));
}

#[test]
fn listener_acls_keep_sources_out_of_one_listener_only() {
    let trunk_side: std::net::SocketAddr = "192.0.2.1:5060".parse().expect("addr");
    let phone_side: std::net::SocketAddr = "192.0.2.1:5070".parse().expect("addr");
    let mut sec = EdgeSecurity::new(SecurityConfig {
        listeners: vec![ListenerAcl {
            transport: Transport::Udp,
            local: trunk_side,
            allow: vec![net("198.51.100.0/24")],
            block: vec![net("198.51.100.66")],
        }],
        ..SecurityConfig::default()
    });
    assert!(sec.check_listener(Transport::Udp, trunk_side, ip("198.51.100.5")));
    assert!(!sec.check_listener(Transport::Udp, trunk_side, ip("198.51.100.66")));
    assert!(!sec.check_listener(Transport::Udp, trunk_side, ip("203.0.113.1")));
    // Same address, other transport or port: no ACL there.
    assert!(sec.check_listener(Transport::Tcp, trunk_side, ip("203.0.113.1")));
    assert!(sec.check_listener(Transport::Udp, phone_side, ip("203.0.113.1")));
    assert_eq!(sec.stats().dropped_for(SecurityDrop::ListenerAcl), 2);
    // A reload replaces the ACLs.
    sec.set_config(SecurityConfig::default());
    assert!(sec.check_listener(Transport::Udp, trunk_side, ip("203.0.113.1")));
}

#[test]
fn feed_blocks_drop_like_the_block_list_and_are_replaced_whole() {
    let mut sec = EdgeSecurity::new(SecurityConfig {
        allow: vec![net("203.0.113.0/24")],
        ..SecurityConfig::default()
    });
    let now = t0();
    sec.set_feed_blocks([net("203.0.113.9"), net("2001:db8:bad::/48")]);
    assert_eq!(sec.feed_blocks(), 2);
    let blocked = SourceVerdict::Drop(SecurityDrop::Blocked);
    // A feed entry wins over the allow list, as `block` does.
    assert_eq!(sec.check_source(now, ip("203.0.113.9")), blocked);
    assert_eq!(sec.check_source(now, ip("2001:db8:bad::1")), blocked);
    assert_eq!(
        sec.check_source(now, ip("203.0.113.10")),
        SourceVerdict::Trusted
    );
    sec.set_feed_blocks([net("198.51.100.1")]);
    assert_eq!(sec.feed_blocks(), 1);
    assert_eq!(
        sec.check_source(now, ip("203.0.113.9")),
        SourceVerdict::Trusted
    );
    assert_eq!(sec.check_source(now, ip("198.51.100.1")), blocked);
    // A reload of the configuration keeps the feed's entries.
    sec.set_config(SecurityConfig::default());
    assert_eq!(sec.check_source(now, ip("198.51.100.1")), blocked);
}

#[test]
fn registered_flows_are_not_flood_counted_but_bans_still_apply() {
    let mut sec = EdgeSecurity::new(SecurityConfig::default());
    let now = t0();
    let dect = ip("198.51.100.20");
    for _ in 0..100 {
        assert_eq!(
            sec.check_source_of(now, dect, true),
            SourceVerdict::Untrusted
        );
    }
    assert_eq!(sec.bans().count(), 0);
    sec.ban(now, dect, secs(60), BanReason::Manual);
    assert_eq!(
        sec.check_source_of(now, dect, true),
        SourceVerdict::Drop(SecurityDrop::Banned)
    );
}

#[test]
fn allow_list_is_exempt_from_flood_rate_limits_and_automatic_bans() {
    let mut sec = EdgeSecurity::new(SecurityConfig {
        allow: vec![net("192.0.2.0/24")],
        ..SecurityConfig::default()
    });
    let now = t0();
    let trunk = ip("192.0.2.10");
    for _ in 0..1000 {
        assert_eq!(sec.check_source(now, trunk), SourceVerdict::Trusted);
        assert!(sec.admit_transaction(now, trunk));
    }
    for n in 0..100 {
        assert_eq!(sec.record_auth_failure(now, trunk, &format!("{n}")), None);
    }
    assert!(sec.check_source(now, ip("::ffff:192.0.2.11")) == SourceVerdict::Trusted);
    assert_eq!(sec.bans().count(), 0);
    assert!(events(&mut sec).is_empty());
    assert_eq!(sec.tracked_sources(), 0);
    assert_eq!(sec.stats().auth_failures, 100);

    // An operator's ban is explicit and applies even here (bans are checked first).
    sec.ban(now, trunk, secs(60), BanReason::Manual);
    assert_eq!(
        sec.check_source(now, trunk),
        SourceVerdict::Drop(SecurityDrop::Banned)
    );
}

#[test]
fn flood_bans_on_the_31st_request_within_2s_and_lifts_after_300s() {
    let mut sec = EdgeSecurity::new(SecurityConfig::default());
    let start = t0();
    let src = ip("198.51.100.7");
    for i in 0..30 {
        let v = sec.check_source(start + ms(60 * i), src);
        assert_eq!(v, SourceVerdict::Untrusted, "request {}", i + 1);
    }
    let at = start + ms(1800);
    assert_eq!(
        sec.check_source(at, src),
        SourceVerdict::Drop(SecurityDrop::Flood)
    );
    let ban = Ban {
        ip: src,
        until: at + secs(300),
        reason: BanReason::Flood,
    };
    assert_eq!(events(&mut sec), vec![SecurityEvent::Banned(ban)]);
    assert_eq!(sec.bans().copied().collect::<Vec<_>>(), vec![ban]);
    assert_eq!(sec.ban_of(at, src), Some(&ban));
    assert_eq!(
        sec.check_source(at + ms(1), src),
        SourceVerdict::Drop(SecurityDrop::Banned)
    );
    // Other sources are unaffected.
    assert_eq!(
        sec.check_source(at, ip("198.51.100.8")),
        SourceVerdict::Untrusted
    );

    run_timers_until(&mut sec, ban.until - ms(1));
    assert!(events(&mut sec).is_empty());
    assert_eq!(
        sec.check_source(ban.until - ms(1), src),
        SourceVerdict::Drop(SecurityDrop::Banned)
    );
    run_timers_until(&mut sec, ban.until);
    assert_eq!(
        events(&mut sec),
        vec![SecurityEvent::Unbanned {
            ip: src,
            reason: UnbanReason::Expired
        }]
    );
    // Lifted, and counting starts afresh.
    for i in 0..30 {
        let v = sec.check_source(ban.until + ms(i), src);
        assert_eq!(v, SourceVerdict::Untrusted);
    }
    let stats = sec.stats();
    assert_eq!(stats.dropped_for(SecurityDrop::Flood), 1);
    assert_eq!(stats.dropped_for(SecurityDrop::Banned), 2);
    assert_eq!(stats.bans_flood, 1);
    assert_eq!(stats.unbans_expired, 1);
    assert_eq!(stats.bans_active, 0);
}

#[test]
fn an_expired_ban_is_lifted_when_its_source_is_next_seen_even_without_a_timer() {
    let mut sec = EdgeSecurity::new(SecurityConfig::default());
    let now = t0();
    let src = ip("198.51.100.7");
    let ban = sec.ban(now, src, secs(10), BanReason::Manual);
    let _ = events(&mut sec);
    assert_eq!(sec.check_source(ban.until, src), SourceVerdict::Untrusted);
    assert_eq!(
        events(&mut sec),
        vec![SecurityEvent::Unbanned {
            ip: src,
            reason: UnbanReason::Expired
        }]
    );
    assert_eq!(sec.bans().count(), 0);
}

#[test]
fn sources_under_the_flood_limit_are_never_banned() {
    let mut sec = EdgeSecurity::new(SecurityConfig::default());
    let start = t0();
    let src = ip("198.51.100.7");
    // 13 requests per second for a minute (26 per 2 s).
    for i in 0..13 * 60 {
        let at = start + Duration::from_micros(1_000_000 * i / 13);
        assert_eq!(sec.check_source(at, src), SourceVerdict::Untrusted, "{i}");
    }
    // Bursts of 30 a little more than one window (plus a sixteenth) apart.
    let later = start + secs(100);
    for burst in 0..5u32 {
        for _ in 0..30 {
            let at = later + ms(2200) * burst;
            assert_eq!(sec.check_source(at, src), SourceVerdict::Untrusted);
        }
    }
    assert!(events(&mut sec).is_empty());
}

#[test]
fn ipv6_sources_are_counted_and_banned_per_64() {
    let mut sec = EdgeSecurity::new(SecurityConfig::default());
    let now = t0();
    for i in 1..=30 {
        let a = ip(&format!("2001:db8:1:2:{i:x}::{i:x}"));
        assert_eq!(sec.check_source(now, a), SourceVerdict::Untrusted);
    }
    assert_eq!(
        sec.check_source(now, ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
        SourceVerdict::Drop(SecurityDrop::Flood)
    );
    let banned = sec.bans().next().copied().expect("one ban");
    assert_eq!(banned.ip, ip("2001:db8:1:2::"));
    assert_eq!(
        sec.check_source(now, ip("2001:db8:1:2::99")),
        SourceVerdict::Drop(SecurityDrop::Banned)
    );
    assert_eq!(
        sec.check_source(now, ip("2001:db8:1:3::1")),
        SourceVerdict::Untrusted
    );
    // A manual unban takes any address of the /64.
    assert!(sec.unban(ip("2001:db8:1:2::abcd")));
    assert_eq!(
        sec.check_source(now, ip("2001:db8:1:2::1")),
        SourceVerdict::Untrusted
    );

    // IPv4 seen through a dual-stack socket is the same source as plain IPv4.
    for _ in 0..15 {
        assert_eq!(
            sec.check_source(now, ip("198.51.100.7")),
            SourceVerdict::Untrusted
        );
        assert_eq!(
            sec.check_source(now, ip("::ffff:198.51.100.7")),
            SourceVerdict::Untrusted
        );
    }
    assert_eq!(
        sec.check_source(now, ip("::ffff:198.51.100.7")),
        SourceVerdict::Drop(SecurityDrop::Flood)
    );
    assert!(sec.ban_of(now, ip("198.51.100.7")).is_some());
}

#[test]
fn the_4th_failure_for_one_account_bans_the_source_for_an_hour() {
    let mut sec = EdgeSecurity::new(SecurityConfig::default());
    let start = t0();
    let src = ip("198.51.100.9");
    for i in 0..3 {
        assert_eq!(sec.record_auth_failure(start + secs(i), src, "1000"), None);
    }
    let at = start + secs(3);
    let ban = sec
        .record_auth_failure(at, src, "1000")
        .expect("4th failure bans");
    assert_eq!(
        ban,
        Ban {
            ip: src,
            until: at + secs(3600),
            reason: BanReason::AuthFailures
        }
    );
    assert_eq!(events(&mut sec), vec![SecurityEvent::Banned(ban)]);
    assert_eq!(
        sec.check_source(at, src),
        SourceVerdict::Drop(SecurityDrop::Banned)
    );
    // Failures reported while banned do not move the deadline.
    assert_eq!(sec.record_auth_failure(at + secs(10), src, "1000"), None);
    assert_eq!(sec.ban_of(at, src).map(|b| b.until), Some(ban.until));
    // Another source is unaffected.
    assert_eq!(
        sec.record_auth_failure(at, ip("198.51.100.10"), "1000"),
        None
    );
}

#[test]
fn auth_failures_leave_the_window_after_300s() {
    let mut sec = EdgeSecurity::new(SecurityConfig::default());
    let start = t0();
    let src = ip("198.51.100.9");
    for i in 0..3 {
        assert_eq!(sec.record_auth_failure(start + secs(i), src, "1000"), None);
    }
    // 300 s after the first three, they no longer count.
    let later = start + secs(302);
    for i in 0..3 {
        assert_eq!(sec.record_auth_failure(later + secs(i), src, "1000"), None);
    }
    assert!(sec
        .record_auth_failure(later + secs(3), src, "1000")
        .is_some());
}

#[test]
fn the_11th_failure_over_different_accounts_bans_the_source() {
    let mut sec = EdgeSecurity::new(SecurityConfig::default());
    let now = t0();
    let src = ip("198.51.100.9");
    for n in 0..10 {
        assert_eq!(
            sec.record_auth_failure(now, src, &format!("10{n:02}")),
            None
        );
    }
    let ban = sec
        .record_auth_failure(now, src, "1010")
        .expect("11th failure bans");
    assert_eq!(ban.reason, BanReason::AuthFailures);
    assert_eq!(sec.stats().bans_auth_failures, 1);
}

#[test]
fn success_clears_only_that_accounts_failures() {
    let mut sec = EdgeSecurity::new(SecurityConfig::default());
    let now = t0();
    let src = ip("198.51.100.9");
    for _ in 0..3 {
        assert_eq!(sec.record_auth_failure(now, src, "1000"), None);
    }
    sec.record_auth_success(now, src, "1000");
    for _ in 0..3 {
        assert_eq!(sec.record_auth_failure(now, src, "1000"), None);
    }
    // The source's total (6) was kept: four more make 10, the 11th bans.
    for n in 0..4 {
        assert_eq!(sec.record_auth_failure(now, src, &format!("20{n}")), None);
    }
    assert!(sec.record_auth_failure(now, src, "2004").is_some());
}

#[test]
fn scanner_user_agents_are_dropped_case_insensitively() {
    let mut sec = EdgeSecurity::new(SecurityConfig::default());
    for ua in [
        &b"friendly-scanner"[..],
        b"SIPVicious 0.3.4",
        b"sipcli/v1.8",
        b"VaxSIPUserAgent/3.5",
        b"x FRIENDLY-SCANNER y",
    ] {
        assert!(sec.check_user_agent(ua), "{}", String::from_utf8_lossy(ua));
    }
    for ua in [&b"Zoiper rv2.10"[..], b"Linphone/5.2", b"", b"\xff\xfe"] {
        assert!(!sec.check_user_agent(ua));
    }
    assert_eq!(sec.stats().dropped_for(SecurityDrop::Scanner), 5);

    let mut custom = EdgeSecurity::new(SecurityConfig {
        scanner_user_agents: vec!["EvilBot".into()],
        ..SecurityConfig::default()
    });
    assert!(custom.is_scanner(b"evilbot/1"));
    assert!(!custom.check_user_agent(b"friendly-scanner"));
}

#[test]
fn token_bucket_sheds_bursts_of_new_transactions() {
    let mut sec = EdgeSecurity::new(SecurityConfig::default()); // 10/s, burst 20
    let now = t0();
    let src = ip("198.51.100.20");
    let admitted = (0..25).filter(|_| sec.admit_transaction(now, src)).count();
    assert_eq!(admitted, 20);
    assert_eq!(sec.stats().dropped_for(SecurityDrop::RateLimited), 5);
    // One token per 100 ms.
    assert!(sec.admit_transaction(now + ms(100), src));
    assert!(!sec.admit_transaction(now + ms(100), src));
    // Sources have their own buckets.
    assert!(sec.admit_transaction(now, ip("198.51.100.21")));
    // Refilled to the burst, not beyond.
    let later = now + secs(60);
    let admitted = (0..25)
        .filter(|_| sec.admit_transaction(later, src))
        .count();
    assert_eq!(admitted, 20);

    let mut strict = EdgeSecurity::new(SecurityConfig {
        transactions: voxgate_controlplane::security::RateLimitConfig {
            rate: NonZeroU32::new(1).expect("1"),
            burst: NonZeroU32::new(1).expect("1"),
        },
        ..SecurityConfig::default()
    });
    assert!(strict.admit_transaction(now, src));
    assert!(!strict.admit_transaction(now + ms(999), src));
    assert!(strict.admit_transaction(now + ms(1000), src));
}

fn is_new_request_method(m: &Method) -> bool {
    matches!(m, Method::Invite | Method::Register | Method::Subscribe)
}

fn all_methods() -> Vec<Method> {
    Method::LABELS[..14]
        .iter()
        .map(|l| Method::from_token(l.as_bytes()))
        .chain([Method::from_token(b"FOO")])
        .collect()
}

#[test]
fn overload_refuses_new_invite_register_subscribe_with_retry_after_5_to_15() {
    let mut sec = EdgeSecurity::with_seed(SecurityConfig::default(), 7);
    let now = t0();
    let mut seen = [false; 16];
    for method in all_methods() {
        for _ in 0..200 {
            let a = sec.admit_new_request(now, &method, false, Trust::Trusted, 0.81);
            if is_new_request_method(&method) {
                let Admission::Reject503 {
                    retry_after_secs,
                    reason,
                } = a
                else {
                    panic!("{method:?} admitted above high water");
                };
                assert_eq!(reason, OverloadReason::Queue);
                assert!((5..=15).contains(&retry_after_secs), "{retry_after_secs}");
                seen[retry_after_secs as usize] = true;
            } else {
                assert_eq!(a, Admission::Admitted, "{method:?}");
            }
        }
    }
    // 600 draws cover the whole range (a seeded, deterministic sequence).
    assert!(seen[5..=15].iter().all(|s| *s), "{seen:?}");
    assert_eq!(sec.stats().overload_rejections(), 600);
    // At the mark, not above it: admitted.
    assert_eq!(
        sec.admit_new_request(now, &Method::Register, false, Trust::Untrusted, 0.8),
        Admission::Admitted
    );
}

#[test]
fn in_dialog_requests_are_never_rejected_for_overload() {
    let mut sec = EdgeSecurity::new(SecurityConfig {
        overload: voxgate_controlplane::security::OverloadConfig {
            max_cps: NonZeroU32::new(1),
            ..Default::default()
        },
        ..SecurityConfig::default()
    });
    let now = t0();
    for method in all_methods() {
        for trust in [Trust::Trusted, Trust::Untrusted] {
            for fill in [0.0, 0.99, 1.0, 5.0, f32::INFINITY] {
                for _ in 0..10 {
                    assert_eq!(
                        sec.admit_new_request(now, &method, true, trust, fill),
                        Admission::Admitted,
                        "{method:?}"
                    );
                }
            }
        }
    }
    assert_eq!(sec.stats().overload_rejections(), 0);
}

#[test]
fn new_calls_per_second_level_off_at_max_cps() {
    let mut sec = EdgeSecurity::new(SecurityConfig::default()); // 200 cps, untrusted 50 %
    let start = t0();
    // Untrusted first: capped at 100 in a second.
    let untrusted = (0..1000)
        .filter(|_| {
            sec.admit_new_request(start, &Method::Invite, false, Trust::Untrusted, 0.0)
                == Admission::Admitted
        })
        .count();
    assert_eq!(untrusted, 100);
    // Trusted traffic still has the rest.
    let trusted = (0..1000)
        .filter(|_| {
            sec.admit_new_request(start, &Method::Invite, false, Trust::Trusted, 0.0)
                == Admission::Admitted
        })
        .count();
    assert_eq!(trusted, 100);
    // REGISTER is not a call.
    assert_eq!(
        sec.admit_new_request(start, &Method::Register, false, Trust::Untrusted, 0.0),
        Admission::Admitted
    );
    let stats = sec.stats();
    assert_eq!(stats.overload_untrusted_cps, 900);
    assert_eq!(stats.overload_cps, 900);

    // Under a sustained 2000 INVITEs/s for 10 s, admitted calls level off: never more
    // than 200 in any one-second window, and not far below it.
    let mut sec = EdgeSecurity::new(SecurityConfig::default());
    let mut admitted_at = Vec::new();
    for i in 0..20_000u64 {
        let at = start + Duration::from_micros(500 * i);
        if sec.admit_new_request(at, &Method::Invite, false, Trust::Trusted, 0.0)
            == Admission::Admitted
        {
            admitted_at.push(at);
        }
    }
    for (i, a) in admitted_at.iter().enumerate() {
        let in_window = admitted_at[i..]
            .iter()
            .take_while(|b| b.duration_since(*a) < secs(1))
            .count();
        assert!(in_window <= 200, "{in_window} admitted within 1 s");
    }
    assert!(admitted_at.len() >= 1800, "{} admitted", admitted_at.len());
}

#[test]
fn ban_unban_restore_and_expiry_are_reported_for_the_store() {
    let now = t0();
    let mut sec = EdgeSecurity::new(SecurityConfig::default());
    let a = ip("198.51.100.1");
    let ban_a = sec.ban(now, a, secs(60), BanReason::Manual);
    assert_eq!(events(&mut sec), vec![SecurityEvent::Banned(ban_a)]);
    assert!(sec.unban(a));
    assert!(!sec.unban(a));
    assert_eq!(
        events(&mut sec),
        vec![SecurityEvent::Unbanned {
            ip: a,
            reason: UnbanReason::Manual
        }]
    );
    assert_eq!(sec.stats().unbans_manual, 1);

    // A restart: the store hands back what it kept.
    let expired = Ban {
        ip: ip("198.51.100.2"),
        until: now,
        reason: BanReason::Flood,
    };
    let live = Ban {
        ip: ip("198.51.100.3"),
        until: now + secs(100),
        reason: BanReason::AuthFailures,
    };
    let live_v6 = Ban {
        ip: ip("2001:db8:7:7::5"),
        until: now + secs(200),
        reason: BanReason::Manual,
    };
    let mut restarted = EdgeSecurity::new(SecurityConfig::default());
    restarted.restore_bans(now, [expired, live, live_v6]);
    assert_eq!(
        events(&mut restarted),
        vec![SecurityEvent::Unbanned {
            ip: expired.ip,
            reason: UnbanReason::Expired
        }]
    );
    let mut held: Vec<Ban> = restarted.bans().copied().collect();
    held.sort_by_key(|b| b.until);
    assert_eq!(
        held,
        vec![
            live,
            Ban {
                ip: ip("2001:db8:7:7::"),
                ..live_v6
            }
        ]
    );
    assert_eq!(
        restarted.check_source(now, ip("198.51.100.3")),
        SourceVerdict::Drop(SecurityDrop::Banned)
    );
    assert_eq!(
        restarted.check_source(now, ip("2001:db8:7:7::9")),
        SourceVerdict::Drop(SecurityDrop::Banned)
    );
    assert_eq!(restarted.poll_timeout(), Some(live.until));
    restarted.handle_timeout(live.until);
    assert_eq!(
        events(&mut restarted),
        vec![SecurityEvent::Unbanned {
            ip: live.ip,
            reason: UnbanReason::Expired
        }]
    );
    run_timers_until(&mut restarted, live_v6.until);
    assert_eq!(
        events(&mut restarted),
        vec![SecurityEvent::Unbanned {
            ip: ip("2001:db8:7:7::"),
            reason: UnbanReason::Expired
        }]
    );
    assert_eq!(restarted.bans().count(), 0);
    assert_eq!(restarted.poll_timeout(), None);
}

#[test]
fn bans_survive_a_restart_through_the_event_stream() {
    let start = t0();
    let mut sec = EdgeSecurity::new(SecurityConfig::default());
    let mut store: HashMap<IpAddr, Ban> = HashMap::new();
    let attacker = ip("198.51.100.66");
    for _ in 0..31 {
        let _ = sec.check_source(start, attacker);
    }
    for n in 0..4 {
        let ban = sec.record_auth_failure(start, ip("198.51.100.67"), "1000");
        assert_eq!(ban.is_some(), n == 3);
    }
    persist(&mut sec, &mut store);
    assert_eq!(store.len(), 2);

    let later = start + secs(10);
    let mut after = EdgeSecurity::new(SecurityConfig::default());
    after.restore_bans(later, store.values().copied());
    persist(&mut after, &mut store);
    assert_eq!(
        after.check_source(later, attacker),
        SourceVerdict::Drop(SecurityDrop::Banned)
    );
    assert_eq!(
        after.check_source(later, ip("198.51.100.67")),
        SourceVerdict::Drop(SecurityDrop::Banned)
    );
    // The flood ban (300 s) ends first; the store follows.
    run_timers_until(&mut after, start + secs(300));
    persist(&mut after, &mut store);
    assert_eq!(store.len(), 1);
    assert!(store.contains_key(&ip("198.51.100.67")));
}

#[test]
fn reload_keeps_bans_and_counters() {
    let now = t0();
    let mut sec = EdgeSecurity::new(SecurityConfig::default());
    let src = ip("198.51.100.7");
    let banned = ip("198.51.100.8");
    sec.ban(now, banned, secs(60), BanReason::Manual);
    for _ in 0..20 {
        assert_eq!(sec.check_source(now, src), SourceVerdict::Untrusted);
    }
    sec.set_config(SecurityConfig {
        block: vec![net("203.0.113.0/24")],
        ..SecurityConfig::default()
    });
    assert_eq!(
        sec.check_source(now, ip("203.0.113.1")),
        SourceVerdict::Drop(SecurityDrop::Blocked)
    );
    assert_eq!(
        sec.check_source(now, banned),
        SourceVerdict::Drop(SecurityDrop::Banned)
    );
    for _ in 0..10 {
        assert_eq!(sec.check_source(now, src), SourceVerdict::Untrusted);
    }
    assert_eq!(
        sec.check_source(now, src),
        SourceVerdict::Drop(SecurityDrop::Flood)
    );
}

#[test]
fn memory_stays_bounded_under_a_million_spoofed_sources() {
    let config = SecurityConfig::default();
    let cap = config.max_tracked_sources;
    assert_eq!(cap, 100_000);
    let mut sec = EdgeSecurity::new(config);
    let start = t0();
    // One packet from each of 1,000,000 addresses, 1 µs apart: none is idle yet.
    for i in 0..1_000_000u32 {
        let at = start + Duration::from_micros(u64::from(i));
        let src = IpAddr::V4((0x0a00_0000 + i).into());
        assert_eq!(sec.check_source(at, src), SourceVerdict::Untrusted);
        assert!(sec.tracked_sources() <= cap);
    }
    assert!(sec.stats().sources_evicted >= 900_000);
    // The newest sources are still tracked, so a real flood among them is still seen.
    let recent = IpAddr::V4((0x0a00_0000 + 999_999u32).into());
    let at = start + secs(1);
    for _ in 0..29 {
        assert_eq!(sec.check_source(at, recent), SourceVerdict::Untrusted);
    }
    assert_eq!(
        sec.check_source(at, recent),
        SourceVerdict::Drop(SecurityDrop::Flood)
    );
    // Once idle, everything is swept.
    run_timers_until(&mut sec, at + secs(120));
    assert_eq!(sec.tracked_sources(), 0);
}

#[test]
fn memory_stays_bounded_for_v6_sources_failures_and_bans() {
    let config = SecurityConfig {
        max_tracked_sources: 1000,
        flood: voxgate_controlplane::security::FloodConfig {
            requests: 1,
            ..Default::default()
        },
        ..SecurityConfig::default()
    };
    let mut sec = EdgeSecurity::new(config);
    let start = t0();
    let v6 = |i: u64| IpAddr::V6((0x2001_0db8_u128 << 96 | u128::from(i) << 64 | 1).into());
    // Distinct /64s (each one source) that take a token and fail to authenticate once.
    for i in 0..20_000u64 {
        let at = start + Duration::from_micros(i);
        assert!(sec.admit_transaction(at, v6(i)));
        assert_eq!(sec.record_auth_failure(at, v6(i), "1000"), None);
        assert!(sec.tracked_sources() <= 1000);
        assert!(sec.tracked_auth_sources() <= 1000);
    }
    assert_eq!(sec.tracked_sources(), 1000);
    assert_eq!(sec.tracked_auth_sources(), 1000);
    // Distinct /64s that are banned for flooding: two packets each with `requests = 1`.
    let later = start + secs(1);
    for i in 0..20_000u64 {
        let src = v6(1_000_000 + i);
        assert_eq!(sec.check_source(later, src), SourceVerdict::Untrusted);
        assert_eq!(
            sec.check_source(later, src),
            SourceVerdict::Drop(SecurityDrop::Flood)
        );
        assert!(sec.bans().count() <= 1000);
        let _ = events(&mut sec);
    }
    let stats = sec.stats();
    assert!(stats.unbans_evicted >= 19_000, "{stats:?}");
    assert!(stats.sources_evicted > 0, "{stats:?}");
}

// ---------------------------------------------------------------------------------------
// Random operation sequences.

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    Packet(usize),
    Transaction(usize),
    AuthFailure(usize, u8),
    AuthSuccess(usize, u8),
    Ban(usize, u64),
    Unban(usize),
    Timers,
    Admit(usize, bool, bool, u8),
    Reload(bool),
    Restart,
}

/// Sources: plain IPv4, the same as IPv4-mapped, three in one IPv6 /64, another /64,
/// one allow-listed, one block-listed.
const POOL: [&str; 9] = [
    "198.51.100.1",
    "198.51.100.2",
    "::ffff:198.51.100.1",
    "2001:db8:1:1::1",
    "2001:db8:1:1::2",
    "2001:db8:1:1:ffff::3",
    "2001:db8:9:9::1",
    "192.0.2.1",
    "203.0.113.1",
];
const ALLOWED: usize = 7;
const BLOCKED: usize = 8;
const CAP: usize = 3;

fn op() -> impl Strategy<Value = Op> {
    let src = 0..POOL.len();
    prop_oneof![
        3 => (0u64..5_000).prop_map(Op::Advance),
        1 => (0u64..400_000).prop_map(Op::Advance),
        8 => src.clone().prop_map(Op::Packet),
        3 => src.clone().prop_map(Op::Transaction),
        3 => (src.clone(), 0u8..4).prop_map(|(s, a)| Op::AuthFailure(s, a)),
        1 => (src.clone(), 0u8..4).prop_map(|(s, a)| Op::AuthSuccess(s, a)),
        1 => (0..ALLOWED, 1u64..1000).prop_map(|(s, d)| Op::Ban(s, d)),
        1 => src.clone().prop_map(Op::Unban),
        2 => Just(Op::Timers),
        2 => (0usize..15, any::<bool>(), any::<bool>(), 0u8..=120)
            .prop_map(|(m, d, t, q)| Op::Admit(m, d, t, q)),
        1 => any::<bool>().prop_map(Op::Reload),
        1 => Just(Op::Restart),
    ]
}

fn prop_config(tight: bool) -> SecurityConfig {
    SecurityConfig {
        allow: vec![net("192.0.2.0/24")],
        block: vec![net("203.0.113.0/24")],
        auth_fail: voxgate_controlplane::security::AuthFailConfig {
            per_account: 1,
            per_ip: 3,
            window: secs(60),
            ban: secs(600),
        },
        flood: voxgate_controlplane::security::FloodConfig {
            requests: if tight { 3 } else { 6 },
            window: secs(if tight { 2 } else { 3 }),
            ban: secs(30),
        },
        max_tracked_sources: CAP,
        ..SecurityConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_the_invariants(ops in prop::collection::vec(op(), 1..150)) {
        let methods = all_methods();
        let pool: Vec<IpAddr> = POOL.iter().map(|s| ip(s)).collect();
        let mut now = t0();
        let mut sec = EdgeSecurity::with_seed(prop_config(false), 1);
        // The binary's store, fed only by events.
        let mut store: HashMap<IpAddr, Ban> = HashMap::new();
        let mut drops = 0u64;

        for op in ops {
            match op {
                Op::Advance(d) => now += ms(d),
                Op::Packet(s) => {
                    let banned_before = sec.ban_of(now, pool[s]).is_some();
                    let v = sec.check_source(now, pool[s]);
                    if s == BLOCKED {
                        prop_assert_eq!(v, SourceVerdict::Drop(SecurityDrop::Blocked));
                    }
                    // Only an operator's ban keeps an allow-listed source out.
                    if s == ALLOWED && !banned_before {
                        prop_assert_eq!(v, SourceVerdict::Trusted);
                    }
                    let banned_now = sec.ban_of(now, pool[s]).is_some();
                    match v {
                        SourceVerdict::Drop(SecurityDrop::Banned | SecurityDrop::Flood) => {
                            prop_assert!(banned_now)
                        }
                        SourceVerdict::Trusted | SourceVerdict::Untrusted => {
                            prop_assert!(!banned_now)
                        }
                        _ => {}
                    }
                    if matches!(v, SourceVerdict::Drop(_)) {
                        drops += 1;
                    }
                }
                Op::Transaction(s) => {
                    let ok = sec.admit_transaction(now, pool[s]);
                    if s == ALLOWED {
                        prop_assert!(ok);
                    }
                    if !ok {
                        drops += 1;
                    }
                }
                Op::AuthFailure(s, a) => {
                    let ban = sec.record_auth_failure(now, pool[s], &format!("acct{a}"));
                    if s == ALLOWED {
                        prop_assert_eq!(ban, None);
                    }
                    if let Some(ban) = ban {
                        prop_assert_eq!(ban.reason, BanReason::AuthFailures);
                        prop_assert_eq!(ban.until, now + secs(600));
                    }
                }
                Op::AuthSuccess(s, a) => sec.record_auth_success(now, pool[s], &format!("acct{a}")),
                Op::Ban(s, d) => {
                    let ban = sec.ban(now, pool[s], secs(d), BanReason::Manual);
                    prop_assert_eq!(sec.ban_of(now, pool[s]), Some(&ban));
                }
                Op::Unban(s) => {
                    let had = sec.bans().any(|b| b.ip == source_key(pool[s]));
                    prop_assert_eq!(sec.unban(pool[s]), had);
                    prop_assert!(sec.ban_of(now, pool[s]).is_none());
                }
                Op::Timers => {
                    sec.handle_timeout(now);
                    if let Some(at) = sec.poll_timeout() {
                        prop_assert!(at > now);
                    }
                    prop_assert!(sec.bans().all(|b| b.until > now));
                }
                Op::Admit(m, in_dialog, trusted, q) => {
                    let trust = if trusted { Trust::Trusted } else { Trust::Untrusted };
                    let a = sec.admit_new_request(now, &methods[m], in_dialog, trust, f32::from(q) / 100.0);
                    match a {
                        Admission::Admitted => {
                            prop_assert!(
                                in_dialog || !is_new_request_method(&methods[m]) || q <= 80
                            );
                        }
                        Admission::Reject503 { retry_after_secs, .. } => {
                            prop_assert!(!in_dialog);
                            prop_assert!(is_new_request_method(&methods[m]));
                            prop_assert!((5..=15).contains(&retry_after_secs));
                        }
                    }
                }
                Op::Reload(tight) => sec.set_config(prop_config(tight)),
                Op::Restart => {
                    // Everything but the store is lost.
                    for e in std::iter::from_fn(|| sec.poll_event()) {
                        apply(&mut store, e)?;
                    }
                    sec = EdgeSecurity::with_seed(prop_config(false), 2);
                    drops = 0;
                    sec.restore_bans(now, store.values().copied().collect::<Vec<_>>());
                    prop_assert!(sec.bans().all(|b| b.until > now));
                }
            }
            for e in std::iter::from_fn(|| sec.poll_event()) {
                if let SecurityEvent::Banned(b) = e {
                    // Allow-listed sources are only ever banned by hand.
                    if b.ip == pool[ALLOWED] {
                        prop_assert_eq!(b.reason, BanReason::Manual);
                    }
                }
                apply(&mut store, e)?;
            }
            let stats = sec.stats();
            prop_assert!(sec.tracked_sources() <= CAP);
            prop_assert!(sec.tracked_auth_sources() <= CAP);
            prop_assert!(sec.bans().count() <= CAP);
            prop_assert_eq!(stats.bans_active as usize, sec.bans().count());
            prop_assert_eq!(stats.dropped().map(|(_, n)| n).sum::<u64>(), drops);
            // The store mirrors the table exactly.
            let held: HashMap<IpAddr, Ban> = sec.bans().map(|b| (b.ip, *b)).collect();
            prop_assert_eq!(&held, &store);
        }
    }
}

fn apply(store: &mut HashMap<IpAddr, Ban>, e: SecurityEvent) -> Result<(), TestCaseError> {
    match e {
        SecurityEvent::Banned(b) => {
            store.insert(b.ip, b);
        }
        SecurityEvent::Unbanned { ip, .. } => {
            prop_assert!(store.remove(&ip).is_some(), "unban of {ip} not in store");
        }
        _ => return Err(TestCaseError::fail("unknown event")),
    }
    Ok(())
}
