//! Blocklist feeds through the real binary (SEC-08): a source listed in a feed file hears
//! nothing (counted `blocked`) while others are answered; rewriting the feed and reloading
//! lifts it; an HTTPS feed served from this test with a private CA (`blocklist_feed_ca`) blocks
//! too, its bad line is counted, and a feed that cannot be read is counted as an error.
//!
//! Sources are loopback addresses (on Linux all of 127.0.0.0/8 is local): 127.0.0.1 is
//! never listed; 127.0.0.5 and 127.0.0.6 are.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use voxgate_test_harness::{
    new_branch, options_request, test_config, wait_until, Response, UdpClient, Voxgate,
};

const BIN: &str = env!("CARGO_BIN_EXE_voxgate");
/// Failure deadline for asynchronous state (feed refreshes, metrics).
const LIMIT: Duration = Duration::from_secs(30);
/// How long an OPTIONS waits (with retransmissions) before it counts as unanswered; every
/// silence is confirmed by the `blocked` drop counter, so a slow answer cannot pass for it.
const SILENCE: Duration = Duration::from_secs(3);

fn toml_string(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// OPTIONS to voxgate's UDP listener from `source`; the final answer, if any.
fn options_from(voxgate: &Voxgate, source: Ipv4Addr, wait: Duration) -> Option<Response> {
    let client = UdpClient::bind(SocketAddr::new(IpAddr::V4(source), 0));
    let target = voxgate.udp();
    let msg = options_request(target, "UDP", client.local_addr(), &new_branch());
    client.request(target, msg.as_bytes(), wait)
}

fn gauge(voxgate: &Voxgate, name: &str) -> Option<f64> {
    voxgate.metrics().value(name, &[])
}

fn dropped(voxgate: &Voxgate, reason: &str) -> f64 {
    voxgate
        .metrics()
        .value("voxgate_sip_dropped_total", &[("reason", reason)])
        .unwrap_or(0.0)
}

fn wait_for_entries(voxgate: &Voxgate, entries: f64) {
    assert!(
        wait_until(LIMIT, || gauge(voxgate, "voxgate_blocklist_entries")
            == Some(entries)),
        "voxgate_blocklist_entries never became {entries} (now {:?}):\n{}",
        gauge(voxgate, "voxgate_blocklist_entries"),
        voxgate.output()
    );
}

/// `source` gets no answer, and the silence is voxgate's `blocked` drop.
fn assert_blocked(voxgate: &Voxgate, source: Ipv4Addr) {
    let before = dropped(voxgate, "blocked");
    let answer = options_from(voxgate, source, SILENCE);
    assert!(answer.is_none(), "{source} was answered: {answer:?}");
    assert!(
        wait_until(LIMIT, || dropped(voxgate, "blocked") > before),
        "the silence to {source} was not a `blocked` drop:\n{}",
        voxgate.output()
    );
}

fn assert_answered(voxgate: &Voxgate, source: Ipv4Addr) {
    let answer = options_from(voxgate, source, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{source} was not answered:\n{}", voxgate.output()));
    assert_eq!(answer.code, 200, "{answer:?}");
}

#[test]
fn file_feed_blocks_and_a_reload_refreshes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let feed = dir.path().join("blocklist.txt");
    std::fs::write(&feed, "# test feed\n127.0.0.5/32\n").expect("write feed");
    let config = test_config(
        &["udp:127.0.0.1:0"],
        &format!("[security]\nblocklist_feeds = [{}]\n", toml_string(&feed)),
    );
    let voxgate = Voxgate::start(BIN, &config);
    wait_for_entries(&voxgate, 1.0);

    assert_answered(&voxgate, Ipv4Addr::new(127, 0, 0, 1));
    assert_blocked(&voxgate, Ipv4Addr::new(127, 0, 0, 5));

    // The feed no longer lists 127.0.0.5; the reload refreshes it.
    std::fs::write(&feed, "192.0.2.0/24\n198.51.100.0/24 ; two entries now\n").expect("write");
    let (status, body) = voxgate.admin_http("POST", "/api/v1/reload");
    assert_eq!(status, 200, "reload: {body}");
    wait_for_entries(&voxgate, 2.0);
    assert_answered(&voxgate, Ipv4Addr::new(127, 0, 0, 5));
}

/// A self-signed certificate for 127.0.0.1 (its own CA) and a server config for it.
fn https_identity(dir: &Path) -> (std::path::PathBuf, Arc<rustls::ServerConfig>) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .expect("rcgen generates a certificate for an IP address");
    let ca = dir.join("feed-ca.pem");
    std::fs::write(&ca, certified.cert.pem()).expect("write CA");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .expect("certificate and key match");
    (ca, Arc::new(server))
}

/// Serves `body` over HTTPS to every connection on a loopback port, on a detached
/// thread; returns the port.
fn serve_https(server: Arc<rustls::ServerConfig>, body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let Ok(conn) = rustls::ServerConnection::new(server.clone()) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(conn, &mut stream);
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(response.as_bytes());
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    port
}

#[test]
fn https_feed_with_a_private_ca_blocks_and_errors_are_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, server) = https_identity(dir.path());
    let port = serve_https(
        server,
        "# served over HTTPS\n127.0.0.6\n10.0.0.1/8\n192.0.2.0/24\n",
    );
    let url = format!("https://127.0.0.1:{port}/blocklist.txt");
    let missing = dir.path().join("missing.txt");
    let config = test_config(
        &["udp:127.0.0.1:0"],
        &format!(
            "[security]\nblocklist_feeds = [{:?}, {}]\nblocklist_feed_ca = {}\n",
            url,
            toml_string(&missing),
            toml_string(&ca)
        ),
    );
    let voxgate = Voxgate::start(BIN, &config);
    // 127.0.0.6/32 and 192.0.2.0/24; the line with host bits set is skipped and counted.
    wait_for_entries(&voxgate, 2.0);
    let metrics = voxgate.metrics();
    assert_eq!(
        metrics.value("voxgate_blocklist_feed_bad_lines_total", &[("feed", &url)]),
        Some(1.0),
        "{}",
        voxgate.output()
    );
    let missing_label = missing.display().to_string();
    assert!(
        metrics
            .value(
                "voxgate_blocklist_feed_errors_total",
                &[("feed", &missing_label)]
            )
            .is_some_and(|n| n >= 1.0),
        "the unreadable feed was not counted:\n{}",
        voxgate.output()
    );
    assert_eq!(
        metrics.value("voxgate_blocklist_feed_errors_total", &[("feed", &url)]),
        None,
        "the HTTPS feed did not fail"
    );

    assert_answered(&voxgate, Ipv4Addr::new(127, 0, 0, 1));
    assert_blocked(&voxgate, Ipv4Addr::new(127, 0, 0, 6));
}
