//! In-process tests of the driver over real loopback sockets: a [`Driver`] runs on its own
//! thread with a default endpoint; the tests talk SIP to it with std sockets and a rustls
//! client. Waits have a generous upper bound ([`WAIT`]); assertions are about behaviour,
//! never about speed.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::ServerName;
use voxgate_controlplane::config::MessageLimits;
use voxgate_controlplane::sip::framing::{Framed, StreamFramer};
use voxgate_controlplane::sip::{HeaderName, Message, Transport};
use voxgate_controlplane::{Endpoint, EndpointConfig};

use super::{Driver, DriverHandle, DriverLimits};
use crate::config::Listen;
use crate::metrics::Metrics;
use crate::tls::TlsMinVersion;

/// Upper bound on any wait for the driver to act.
const WAIT: Duration = Duration::from_secs(10);

struct Running {
    handle: DriverHandle,
    addrs: Vec<(Transport, SocketAddr)>,
    metrics: Arc<Metrics>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Running {
    fn addr(&self, transport: Transport) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, a)| *a)
            .expect("the test bound this transport")
    }

    fn rejected(&self, reason: &str) -> u64 {
        self.metrics
            .connections_rejected
            .with_label_values(&[reason])
            .get()
    }

    /// Shut down and wait for `run` to return.
    fn stop(mut self) -> io::Result<()> {
        self.handle.shutdown().expect("driver still running");
        self.thread
            .take()
            .expect("joined once")
            .join()
            .expect("driver thread did not panic")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.handle.shutdown();
            let _ = thread.join();
        }
    }
}

fn start_with(
    listen: &[(Transport, &str)],
    limits: DriverLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> io::Result<Running> {
    let specs: Vec<Listen> = listen
        .iter()
        .map(|(transport, addr)| Listen {
            transport: *transport,
            addr: addr.parse().expect("test address"),
        })
        .collect();
    // The tests load the driver from loopback far beyond the per-source flood limit; trust
    // it, as a load balancer would be (edge security has its own tests).
    let mut config = EndpointConfig::default();
    config.security.allow = vec![
        "127.0.0.1/32".parse().expect("literal"),
        "::1/128".parse().expect("literal"),
    ];
    let endpoint = Endpoint::new(config, 7);
    let metrics = Arc::new(Metrics::new());
    let driver = Driver::bind(&specs, tls, limits, endpoint, Arc::clone(&metrics))?;
    let addrs = driver.local_addrs();
    let handle = driver.handle();
    let thread = std::thread::spawn(move || driver.run());
    Ok(Running {
        handle,
        addrs,
        metrics,
        thread: Some(thread),
    })
}

fn start(listen: &[(Transport, &str)], limits: DriverLimits) -> Running {
    start_with(listen, limits, None).expect("driver binds")
}

static CALL: AtomicU64 = AtomicU64::new(0);

/// An OPTIONS to voxgate itself; returns it and its Call-ID.
fn options(transport: Transport, target: SocketAddr, body: &str) -> (Vec<u8>, String) {
    let n = CALL.fetch_add(1, Ordering::Relaxed);
    let call_id = format!("drv-{n}-{}", transport.as_str());
    let host = match target {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    let msg = format!(
        "OPTIONS sip:{host} SIP/2.0\r\n\
         Via: SIP/2.0/{} {host}:9;branch=z9hG4bK{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{host}>;tag={n}\r\n\
         To: <sip:{host}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: {}\r\n\
         \r\n{body}",
        transport.via_token(),
        body.len(),
    );
    (msg.into_bytes(), call_id)
}

fn tcp_connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("set timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Reads responses off a stream with the same framer the driver uses.
struct Reader {
    framer: StreamFramer,
}

impl Reader {
    fn new() -> Self {
        Self {
            framer: StreamFramer::new(MessageLimits::default()),
        }
    }

    /// The next message; pongs are skipped. Panics on close or timeout.
    fn message(&mut self, stream: &mut impl Read) -> Message {
        let mut buf = [0u8; 4096];
        loop {
            match self.framer.next().expect("voxgate frames its output") {
                Some(Framed::Message(m)) => {
                    return Message::parse_framed(m, &MessageLimits::default())
                        .expect("voxgate sends parseable messages")
                }
                Some(_) => continue,
                None => {}
            }
            let n = stream.read(&mut buf).expect("a response within the wait");
            assert!(n > 0, "connection closed while waiting for a response");
            self.framer.push(&buf[..n]);
        }
    }
}

fn call_id(m: &Message) -> String {
    String::from_utf8_lossy(m.call_id().expect("response has a Call-ID")).into_owned()
}

/// Read until the peer closes; returns what arrived first. Panics if it stays open.
fn expect_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("connection not closed within {WAIT:?}: {e}"),
        }
    }
}

fn udp_options(target: SocketAddr, from: &str) -> Message {
    let socket = UdpSocket::bind(from).expect("client bind");
    socket.set_read_timeout(Some(WAIT)).expect("set timeout");
    let (msg, id) = options(Transport::Udp, target, "");
    socket.send_to(&msg, target).expect("send");
    let mut buf = vec![0u8; 65_536];
    let (n, _) = socket.recv_from(&mut buf).expect("a UDP response");
    let resp =
        Message::parse_datagram(Bytes::copy_from_slice(&buf[..n]), &MessageLimits::default())
            .expect("response parses");
    assert_eq!(call_id(&resp), id);
    resp
}

#[test]
fn udp_options_gets_200() {
    let d = start(&[(Transport::Udp, "127.0.0.1:0")], DriverLimits::default());
    let resp = udp_options(d.addr(Transport::Udp), "127.0.0.1:0");
    assert_eq!(resp.code(), Some(200));
    d.stop().expect("run returns Ok after shutdown");
}

#[test]
fn udp_over_ipv6() {
    let d = match start_with(
        &[(Transport::Udp, "[::1]:0")],
        DriverLimits::default(),
        None,
    ) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => {
            eprintln!("SKIPPED udp_over_ipv6: this machine has no ::1 ({e})");
            return;
        }
        Err(e) => panic!("binding [::1]: {e}"),
    };
    let resp = udp_options(d.addr(Transport::Udp), "[::1]:0");
    assert_eq!(resp.code(), Some(200));
}

#[test]
fn tcp_options_gets_200() {
    let d = start(&[(Transport::Tcp, "127.0.0.1:0")], DriverLimits::default());
    let mut s = tcp_connect(d.addr(Transport::Tcp));
    let (msg, id) = options(Transport::Tcp, d.addr(Transport::Tcp), "");
    s.write_all(&msg).expect("write");
    let resp = Reader::new().message(&mut s);
    assert_eq!(resp.code(), Some(200));
    assert_eq!(call_id(&resp), id);
    assert!(resp.first(HeaderName::Allow).is_some());
}

#[test]
fn tcp_pipelined_requests_get_two_answers() {
    let d = start(&[(Transport::Tcp, "127.0.0.1:0")], DriverLimits::default());
    let addr = d.addr(Transport::Tcp);
    let mut s = tcp_connect(addr);
    let (a, id_a) = options(Transport::Tcp, addr, "");
    let (b, id_b) = options(Transport::Tcp, addr, "hello");
    s.write_all(&[a, b].concat()).expect("write");
    let mut r = Reader::new();
    let first = r.message(&mut s);
    let second = r.message(&mut s);
    assert_eq!((first.code(), call_id(&first)), (Some(200), id_a));
    assert_eq!((second.code(), call_id(&second)), (Some(200), id_b));
}

#[test]
fn tcp_message_split_across_writes() {
    let d = start(&[(Transport::Tcp, "127.0.0.1:0")], DriverLimits::default());
    let addr = d.addr(Transport::Tcp);
    let mut s = tcp_connect(addr);
    let (msg, id) = options(Transport::Tcp, addr, "body");
    for piece in msg.chunks(msg.len() / 3 + 1) {
        s.write_all(piece).expect("write");
        // Not a timing assertion: only makes separate segments likely.
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut r = Reader::new();
    let resp = r.message(&mut s);
    assert_eq!((resp.code(), call_id(&resp)), (Some(200), id));
    // And one octet per write.
    let (msg, id) = options(Transport::Tcp, addr, "");
    for byte in &msg {
        s.write_all(&[*byte]).expect("write");
    }
    let resp = r.message(&mut s);
    assert_eq!((resp.code(), call_id(&resp)), (Some(200), id));
}

#[test]
fn crlf_ping_gets_pong() {
    let d = start(&[(Transport::Tcp, "127.0.0.1:0")], DriverLimits::default());
    let addr = d.addr(Transport::Tcp);
    let mut s = tcp_connect(addr);
    s.write_all(b"\r\n\r\n").expect("write");
    let mut pong = [0u8; 2];
    s.read_exact(&mut pong).expect("a pong");
    assert_eq!(&pong, b"\r\n");
    // The connection still carries SIP afterwards.
    let (msg, _) = options(Transport::Tcp, addr, "");
    s.write_all(&msg).expect("write");
    assert_eq!(Reader::new().message(&mut s).code(), Some(200));
}

#[test]
fn bad_content_length_closes_the_connection() {
    let d = start(&[(Transport::Tcp, "127.0.0.1:0")], DriverLimits::default());
    let addr = d.addr(Transport::Tcp);
    for file in [
        &include_bytes!("../../tests/data/rfc4475/ncl.dat")[..],
        &include_bytes!("../../tests/data/rfc4475/mcl01.dat")[..],
    ] {
        let mut s = tcp_connect(addr);
        s.write_all(file).expect("write");
        let got = expect_closed(&mut s);
        assert!(
            got.is_empty(),
            "no answer on a stream without framing: {got:?}"
        );
    }
    assert_eq!(d.rejected("framing"), 2);
}

#[test]
fn oversized_stream_message_gets_513_then_close() {
    let limits = DriverLimits {
        max_message_bytes: 1000,
        ..DriverLimits::default()
    };
    let d = start(&[(Transport::Tcp, "127.0.0.1:0")], limits);
    let addr = d.addr(Transport::Tcp);
    let mut s = tcp_connect(addr);
    let body = "x".repeat(5000);
    let (msg, id) = options(Transport::Tcp, addr, &body);
    s.write_all(&msg).expect("write");
    let got = expect_closed(&mut s);
    let mut f = StreamFramer::new(MessageLimits::default());
    f.push(&got);
    let Ok(Some(Framed::Message(m))) = f.next() else {
        panic!("expected a 513 before the close, got {got:?}");
    };
    let resp = Message::parse_framed(m, &MessageLimits::default()).expect("parses");
    assert_eq!((resp.code(), call_id(&resp)), (Some(513), id));
    assert_eq!(d.rejected("too_large"), 1);
}

#[test]
fn per_ip_limit_refuses_extra_connections() {
    let limits = DriverLimits {
        tcp_per_ip: 2,
        ..DriverLimits::default()
    };
    let d = start(&[(Transport::Tcp, "127.0.0.1:0")], limits);
    let addr = d.addr(Transport::Tcp);
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut s = tcp_connect(addr);
        let (msg, _) = options(Transport::Tcp, addr, "");
        s.write_all(&msg).expect("write");
        assert_eq!(Reader::new().message(&mut s).code(), Some(200));
        open.push(s);
    }
    let mut third = tcp_connect(addr);
    // The write may or may not fail depending on when the close lands; the read decides.
    let (msg, _) = options(Transport::Tcp, addr, "");
    let _ = third.write_all(&msg);
    assert!(
        expect_closed(&mut third).is_empty(),
        "no answer past the limit"
    );
    assert_eq!(d.rejected("per_ip_limit"), 1);
    // The admitted ones are unaffected.
    let (msg, _) = options(Transport::Tcp, addr, "");
    open[0].write_all(&msg).expect("write");
    assert_eq!(Reader::new().message(&mut open[0]).code(), Some(200));
}

#[test]
fn idle_connection_is_closed() {
    let limits = DriverLimits {
        tcp_idle: Duration::from_millis(200),
        ..DriverLimits::default()
    };
    let d = start(&[(Transport::Tcp, "127.0.0.1:0")], limits);
    let mut s = tcp_connect(d.addr(Transport::Tcp));
    assert!(expect_closed(&mut s).is_empty());
    assert_eq!(d.rejected("idle"), 1);
}

#[test]
fn partial_message_is_timed_out() {
    let limits = DriverLimits {
        partial_message_timeout: Duration::from_millis(200),
        tcp_idle: Duration::from_secs(3600),
        ..DriverLimits::default()
    };
    let d = start(&[(Transport::Tcp, "127.0.0.1:0")], limits);
    let addr = d.addr(Transport::Tcp);
    let mut s = tcp_connect(addr);
    let (msg, _) = options(Transport::Tcp, addr, "");
    s.write_all(&msg[..msg.len() / 2]).expect("write");
    assert!(expect_closed(&mut s).is_empty());
    assert_eq!(d.rejected("partial_timeout"), 1);
    assert_eq!(d.rejected("idle"), 0);
}

#[test]
fn reload_applies_config_and_limits() {
    let d = start(
        &[
            (Transport::Udp, "127.0.0.1:0"),
            (Transport::Tcp, "127.0.0.1:0"),
        ],
        DriverLimits::default(),
    );
    let config = EndpointConfig {
        user_agent: "reloaded/1".into(),
        ..EndpointConfig::default()
    };
    let limits = DriverLimits {
        tcp_per_ip: 1,
        ..DriverLimits::default()
    };
    d.handle
        .reload(config, None, limits)
        .expect("driver running");
    // The loop applies commands before the input that follows them.
    let resp = udp_options(d.addr(Transport::Udp), "127.0.0.1:0");
    let server = resp.first(HeaderName::Server).expect("Server header");
    assert_eq!(&server.value[..], b"reloaded/1");
    assert_eq!(resp.code(), Some(200), "bound listeners survive the reload");
    let addr = d.addr(Transport::Tcp);
    let mut first = tcp_connect(addr);
    let (msg, _) = options(Transport::Tcp, addr, "");
    first.write_all(&msg).expect("write");
    assert_eq!(Reader::new().message(&mut first).code(), Some(200));
    let mut second = tcp_connect(addr);
    assert!(expect_closed(&mut second).is_empty());
    assert_eq!(d.rejected("per_ip_limit"), 1);
}

#[test]
fn shutdown_closes_listeners() {
    let d = start(&[(Transport::Tcp, "127.0.0.1:0")], DriverLimits::default());
    let addr = d.addr(Transport::Tcp);
    let mut open = tcp_connect(addr);
    d.stop().expect("run returns Ok");
    assert!(expect_closed(&mut open).is_empty());
    assert!(
        TcpStream::connect(addr).is_err(),
        "nothing listens any more"
    );
}

#[test]
fn sip_counters_reach_prometheus() {
    let d = start(&[(Transport::Udp, "127.0.0.1:0")], DriverLimits::default());
    udp_options(d.addr(Transport::Udp), "127.0.0.1:0");
    let wanted = "voxgate_sip_requests_total{method=\"OPTIONS\",transport=\"udp\"} 1";
    let mut text = String::new();
    for _ in 0..100 {
        text = d.metrics.render();
        if text.contains(wanted) {
            return;
        }
        std::thread::sleep(WAIT / 100);
    }
    panic!("{wanted} not published within {WAIT:?}:\n{text}");
}

// ---- TLS ----

struct Cert {
    _dir: tempfile::TempDir,
    der: rustls::pki_types::CertificateDer<'static>,
    cert_path: std::path::PathBuf,
    key_path: std::path::PathBuf,
}

fn cert() -> Cert {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
    let dir = tempfile::tempdir().expect("tempdir");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, ck.cert.pem()).expect("write cert");
    std::fs::write(&key_path, ck.signing_key.serialize_pem()).expect("write key");
    Cert {
        der: ck.cert.der().clone(),
        _dir: dir,
        cert_path,
        key_path,
    }
}

fn start_tls(cert: &Cert, min: TlsMinVersion, limits: DriverLimits) -> Running {
    let config = crate::tls::server_config(&cert.cert_path, &cert.key_path, min)
        .expect("server config from the rcgen certificate");
    start_with(&[(Transport::Tls, "127.0.0.1:0")], limits, Some(config)).expect("driver binds")
}

fn tls_client(
    cert: &Cert,
    versions: &[&'static rustls::SupportedProtocolVersion],
    addr: SocketAddr,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    rustls::StreamOwned::new(conn, tcp_connect(addr))
}

#[test]
fn tls_options_with_tls12_and_tls13_clients() {
    let cert = cert();
    let d = start_tls(&cert, TlsMinVersion::V1_2, DriverLimits::default());
    let addr = d.addr(Transport::Tls);
    for (versions, expected) in [
        (
            &[&rustls::version::TLS12][..],
            rustls::ProtocolVersion::TLSv1_2,
        ),
        (
            &[&rustls::version::TLS13][..],
            rustls::ProtocolVersion::TLSv1_3,
        ),
    ] {
        let mut s = tls_client(&cert, versions, addr);
        let (msg, id) = options(Transport::Tls, addr, "");
        s.write_all(&msg).expect("write over TLS");
        let resp = Reader::new().message(&mut s);
        assert_eq!((resp.code(), call_id(&resp)), (Some(200), id));
        assert_eq!(s.conn.protocol_version(), Some(expected));
        // CRLF keep-alive over TLS too.
        s.write_all(b"\r\n\r\n").expect("write");
        let mut pong = [0u8; 2];
        s.read_exact(&mut pong).expect("pong");
        assert_eq!(&pong, b"\r\n");
    }
    assert_eq!(d.metrics.tls_handshake_failures.get(), 0);
}

#[test]
fn tls_below_the_minimum_is_refused() {
    let cert = cert();
    let d = start_tls(&cert, TlsMinVersion::V1_3, DriverLimits::default());
    let addr = d.addr(Transport::Tls);
    let mut s = tls_client(&cert, &[&rustls::version::TLS12], addr);
    let (msg, _) = options(Transport::Tls, addr, "");
    let result = s.write_all(&msg).and_then(|()| {
        let mut buf = [0u8; 16];
        s.read(&mut buf)
    });
    assert!(
        result.is_err(),
        "a TLS 1.2 client must not get through: {result:?}"
    );
    assert_eq!(d.metrics.tls_handshake_failures.get(), 1);
}

#[test]
fn tls_handshake_timeout() {
    let cert = cert();
    let limits = DriverLimits {
        tls_handshake_timeout: Duration::from_millis(200),
        tcp_idle: Duration::from_secs(3600),
        ..DriverLimits::default()
    };
    let d = start_tls(&cert, TlsMinVersion::V1_2, limits);
    // A TCP connection that never starts the handshake.
    let mut s = tcp_connect(d.addr(Transport::Tls));
    assert!(expect_closed(&mut s).is_empty());
    assert_eq!(d.rejected("tls_handshake"), 1);
}

#[test]
fn tls_listener_needs_a_certificate() {
    let err = start_with(
        &[(Transport::Tls, "127.0.0.1:0")],
        DriverLimits::default(),
        None,
    )
    .err()
    .expect("refused");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn peer_that_does_not_drain_is_cut_off() {
    let d = start(&[(Transport::Tcp, "127.0.0.1:0")], DriverLimits::default());
    let addr = d.addr(Transport::Tcp);
    // A small receive window so the answers back up quickly; this client never reads.
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    socket.connect(&addr.into()).expect("connect");
    let mut s: TcpStream = socket.into();
    s.set_write_timeout(Some(WAIT)).expect("set timeout");
    let mut batch = Vec::new();
    for _ in 0..100 {
        batch.extend_from_slice(&options(Transport::Tcp, addr, "").0);
    }
    // Each batch makes ~40 KiB of answers; the kernel buffers a few MiB, the driver 256 KiB.
    let mut cut_off = false;
    for _ in 0..2_000 {
        if s.write_all(&batch).is_err() {
            cut_off = true;
            break;
        }
    }
    assert!(cut_off, "the driver kept a connection that never drains");
    assert_eq!(d.rejected("write_overflow"), 1);
}
