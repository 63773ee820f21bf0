//! NAT traversal through the real binary (SIG-14): a phone behind NAT registers from one
//! port while its Via and Contact name another (its private address); voxgate keeps the
//! flow it observed, lists it as the binding's source, and sends its keep-alive OPTIONS to
//! that flow, from the address the phone registered to, so the NAT binding stays open.
//! Over TCP, the RFC 5626 §4.4.1 CRLF ping gets a CRLF pong on the registered connection.
//!
//! The "private" address is another loopback port with a socket of its own, so a keep-alive
//! sent to the Contact instead of the flow would be seen arriving there (and never leaves
//! 127.0.0.0/8).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use voxgate_test_harness::{
    extension_tables, granted_expires, numbered_extensions, request_line, respond_to, test_config,
    RegisterSession, UdpClient, Voxgate,
};

const BIN: &str = env!("CARGO_BIN_EXE_voxgate");
const DOMAIN: &str = "voxgate.test";
/// Failure deadline for asynchronous state and for each keep-alive to arrive (the interval
/// is 5 s, the smallest the config allows).
const LIMIT: Duration = Duration::from_secs(30);

fn start() -> Voxgate {
    Voxgate::start(
        BIN,
        &test_config(
            &["udp:127.0.0.1:0", "tcp:127.0.0.1:0"],
            &format!(
                "[nat]\nkeepalive_interval = \"5s\"\n\n{}",
                extension_tables(&numbered_extensions(1000, 2))
            ),
        ),
    )
}

#[test]
fn keepalives_reach_the_observed_source_port_not_the_contact_port() {
    let voxgate = start();
    let phone = UdpClient::bind_loopback(voxgate.udp());
    let private = UdpClient::bind_loopback(voxgate.udp());
    let (observed, named) = (phone.local_addr(), private.local_addr());

    // Via sent-by and Contact both name the private port, as a phone behind NAT writes them;
    // the datagrams leave from the public one. `rport` brings the answers back there.
    let extension = &numbered_extensions(1000, 1)[0];
    let mut session = RegisterSession::new(extension, DOMAIN, "UDP", named);
    let response = session
        .register_udp(&phone, voxgate.udp(), Some(600))
        .unwrap_or_else(|| panic!("no answer at the source port:\n{}", voxgate.output()));
    assert_eq!(response.code, 200, "{response:?}");
    assert_eq!(
        granted_expires(&response, &format!("sip:1000@{named}")),
        Some(600),
        "{response:?}"
    );

    let listed = voxgate.wait_for_registrations(LIMIT, "extension 1000", |r| {
        r.iter().any(|b| b.extension == "1000")
    });
    let binding = listed
        .iter()
        .find(|b| b.extension == "1000")
        .expect("waited for it");
    assert_eq!(
        binding.source, observed,
        "the flow, not the Contact: {binding:?}"
    );
    assert_eq!(binding.contact, format!("sip:1000@{named}"), "{binding:?}");
    assert_eq!(binding.transport, "udp");

    // Two keep-alives in a row arrive at the observed port, from voxgate's listener (the
    // address the NAT binding points at), and are answered.
    for round in 1..=2 {
        let (request, from) = phone.recv_from(LIMIT).unwrap_or_else(|| {
            panic!(
                "keep-alive {round} never reached {observed}:\n{}",
                voxgate.output()
            )
        });
        let line = request_line(&request);
        assert!(
            line.starts_with("OPTIONS ") && line.ends_with(" SIP/2.0"),
            "keep-alive {round} is not an OPTIONS: {}",
            String::from_utf8_lossy(&request)
        );
        assert_eq!(from, voxgate.udp(), "keep-alive {round} left from {from}");
        phone.send_to(respond_to(&request, 200, "OK").as_bytes(), from);
    }
    let misrouted = private.collect(Duration::from_millis(200));
    assert!(
        misrouted.is_empty(),
        "something went to the Contact's port: {misrouted:?}"
    );
    // The answered keep-alives kept the binding.
    let listed = voxgate.registrations();
    assert!(
        listed
            .iter()
            .any(|b| b.extension == "1000" && b.source == observed),
        "{listed:?}"
    );
}

#[test]
fn crlf_ping_over_tcp_gets_a_crlf_pong() {
    let voxgate = start();
    let mut stream = TcpStream::connect(voxgate.tcp()).expect("voxgate accepts TCP");
    stream
        .set_read_timeout(Some(LIMIT))
        .expect("a non-zero timeout is valid");
    let local = stream.local_addr().expect("connected");
    // A Contact naming some other port, as above: the connection is the flow.
    let private = UdpClient::bind_loopback(voxgate.udp()).local_addr();
    let extension = &numbered_extensions(1000, 2)[1];
    let mut session = RegisterSession::new(extension, DOMAIN, "TCP", private);
    let response = session
        .register_stream(&mut stream, Some(600))
        .expect("REGISTER over TCP");
    assert_eq!(response.code, 200, "{response:?}");
    let listed = voxgate.wait_for_registrations(LIMIT, "extension 1001", |r| {
        r.iter().any(|b| b.extension == "1001")
    });
    let binding = listed
        .iter()
        .find(|b| b.extension == "1001")
        .expect("waited for it");
    assert_eq!(
        (binding.source, binding.transport.as_str()),
        (local, "tcp"),
        "{binding:?}"
    );

    for _ in 0..2 {
        stream.write_all(b"\r\n\r\n").expect("ping");
        let mut pong = [0u8; 2];
        stream
            .read_exact(&mut pong)
            .unwrap_or_else(|e| panic!("no pong to a CRLF ping: {e}\n{}", voxgate.output()));
        assert_eq!(&pong, b"\r\n", "RFC 5626 §4.4.1: the pong is one CRLF");
    }
    // The connection still carries SIP after the pings: a refresh on it succeeds.
    let refresh = session
        .register_stream(&mut stream, Some(600))
        .expect("refresh over TCP");
    assert_eq!(refresh.code, 200, "{refresh:?}");
}
