//! ACLs through the real binary (SEC-17): a listener with its own `allow` list drops other
//! sources silently (counted `listener_acl`) while a listener without one answers them; a
//! source on a `[[trunk]]` ACL is trusted, so a burst of 100 OPTIONS does not ban it, while
//! the same burst from an untrusted source does.
//!
//! Sources are loopback addresses (on Linux all of 127.0.0.0/8 is local).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use voxgate_test_harness::{
    new_branch, options_request, test_config, wait_until, Response, UdpClient, Voxgate,
    DIR_PLACEHOLDER,
};

const BIN: &str = env!("CARGO_BIN_EXE_voxgate");
/// Failure deadline for asynchronous state (metrics, the ban list).
const LIMIT: Duration = Duration::from_secs(30);
/// How long an OPTIONS waits (with retransmissions) before it counts as unanswered; every
/// silence is confirmed by a drop counter or the ban list.
const SILENCE: Duration = Duration::from_secs(3);
/// The burst size of the trunk test.
const BURST: usize = 100;

fn client(source: Ipv4Addr) -> UdpClient {
    UdpClient::bind(SocketAddr::new(IpAddr::V4(source), 0))
}

fn options(client: &UdpClient, target: SocketAddr, wait: Duration) -> Option<Response> {
    let msg = options_request(target, "UDP", client.local_addr(), &new_branch());
    client.request(target, msg.as_bytes(), wait)
}

fn dropped(voxgate: &Voxgate, reason: &str) -> f64 {
    voxgate
        .metrics()
        .value("voxgate_sip_dropped_total", &[("reason", reason)])
        .unwrap_or(0.0)
}

#[test]
fn listener_allow_list_drops_other_sources() {
    let config = format!(
        "[sip]\n\
         listen = [\"udp:127.0.0.1:0\", {{ address = \"udp:127.0.0.1:0\", allow = [\"127.0.0.1/32\"] }}]\n\
         domain = \"voxgate.test\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\
         [store]\npath = \"{DIR_PLACEHOLDER}/store\"\n"
    );
    let voxgate = Voxgate::start(BIN, &config);
    let udp: Vec<SocketAddr> = voxgate
        .listeners()
        .iter()
        .filter(|l| l.kind == "sip udp")
        .map(|l| l.addr)
        .collect();
    assert_eq!(udp.len(), 2, "{:?}", voxgate.listeners());
    let (open, guarded) = (udp[0], udp[1]);
    let outsider = client(Ipv4Addr::new(127, 0, 0, 2));
    let insider = client(Ipv4Addr::new(127, 0, 0, 1));

    let before = dropped(&voxgate, "listener_acl");
    let answer = options(&outsider, guarded, SILENCE);
    assert!(
        answer.is_none(),
        "the guarded listener answered: {answer:?}"
    );
    assert!(
        wait_until(LIMIT, || dropped(&voxgate, "listener_acl") > before),
        "the silence was not a `listener_acl` drop:\n{}",
        voxgate.output()
    );

    for (who, target) in [(&outsider, open), (&insider, guarded), (&insider, open)] {
        let answer = options(who, target, Duration::from_secs(10)).unwrap_or_else(|| {
            panic!(
                "{} -> {target} not answered:\n{}",
                who.local_addr(),
                voxgate.output()
            )
        });
        assert_eq!(answer.code, 200, "{answer:?}");
    }
}

/// Sends `BURST` OPTIONS from `client` without waiting, then collects answers until
/// `BURST` have come or `wait` passed; returns how many were 200.
fn burst(client: &UdpClient, target: SocketAddr, wait: Duration) -> usize {
    for _ in 0..BURST {
        let msg = options_request(target, "UDP", client.local_addr(), &new_branch());
        client.send_to(msg.as_bytes(), target);
    }
    let mut ok = 0;
    let mut answered = 0;
    let deadline = voxgate_test_harness::now() + wait;
    while answered < BURST {
        let left = deadline.saturating_duration_since(voxgate_test_harness::now());
        let Some(r) = client.recv(left.max(Duration::from_millis(1))) else {
            break;
        };
        answered += 1;
        if r.code == 200 {
            ok += 1;
        }
        if left.is_zero() {
            break;
        }
    }
    ok
}

#[test]
fn trunk_sources_are_trusted_and_not_flood_banned() {
    let trunk = Ipv4Addr::new(127, 0, 0, 7);
    let untrusted = Ipv4Addr::new(127, 0, 0, 8);
    // A flood window far longer than any test run: the ban depends on the count, not on
    // how fast this machine sends.
    let config = test_config(
        &["udp:127.0.0.1:0"],
        "[security.flood]\nrequests = 30\nwindow = \"1h\"\n\n\
         [[trunk]]\nname = \"carrier-a\"\nacl = [\"127.0.0.7\"]\n",
    );
    let voxgate = Voxgate::start(BIN, &config);
    let target = voxgate.udp();

    let trunk_client = client(trunk);
    let answered = burst(&trunk_client, target, LIMIT);
    assert_eq!(
        answered,
        BURST,
        "a trusted trunk is neither rate-limited nor banned:\n{}",
        voxgate.output()
    );
    let answer = options(&trunk_client, target, Duration::from_secs(10));
    assert_eq!(answer.map(|r| r.code), Some(200));
    assert!(voxgate.bans().iter().all(|b| b.ip != IpAddr::V4(trunk)));

    let untrusted_client = client(untrusted);
    let _ = burst(&untrusted_client, target, SILENCE);
    voxgate.wait_for_bans(LIMIT, "the untrusted source banned for flooding", |bans| {
        bans.iter()
            .any(|b| b.ip == IpAddr::V4(untrusted) && b.reason == "flood")
    });
    let answer = options(&untrusted_client, target, SILENCE);
    assert!(answer.is_none(), "a banned source was answered: {answer:?}");
    assert!(voxgate.bans().iter().all(|b| b.ip != IpAddr::V4(trunk)));
}
