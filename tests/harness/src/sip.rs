//! A deliberately small SIP client for tests: builds requests as text, reads responses from
//! datagrams and streams. It does not reuse voxgate's parser, so the tests judge what is on
//! the wire independently of the code under test. Not a general SIP stack: no transactions,
//! no folding, no compact-form aliases beyond the few the tests need.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A branch parameter unique within this test process (RFC 3261 magic cookie included).
pub fn new_branch() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("z9hG4bK-vgt-{}-{n}", std::process::id())
}

/// A request without body. `via_transport` is the Via transport token (`UDP`, `TCP`, `TLS`),
/// `local` the sent-by address, `branch` gets the `z9hG4bK` cookie if it lacks it. Via carries
/// `rport` (RFC 3581), so the answer comes back to the sending socket.
pub fn request(
    method: &str,
    request_uri: &str,
    via_transport: &str,
    local: SocketAddr,
    branch: &str,
) -> String {
    let branch = if branch.starts_with("z9hG4bK") {
        branch.to_owned()
    } else {
        format!("z9hG4bK{branch}")
    };
    format!(
        "{method} {request_uri} SIP/2.0\r\n\
         Via: SIP/2.0/{via_transport} {local};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:harness@voxgate.test>;tag=t{branch}\r\n\
         To: <{request_uri}>\r\n\
         Call-ID: {branch}@harness.voxgate.test\r\n\
         CSeq: 1 {method}\r\n\
         Accept: application/sdp\r\n\
         User-Agent: voxgate-test-harness\r\n\
         Content-Length: 0\r\n\
         \r\n"
    )
}

/// `OPTIONS sip:TARGET` (no user part: addressed to voxgate itself), see [`request`].
pub fn options_request(
    target: SocketAddr,
    via_transport: &str,
    local: SocketAddr,
    branch: &str,
) -> String {
    request(
        "OPTIONS",
        &format!("sip:{target}"),
        via_transport,
        local,
        branch,
    )
}

/// One SIP response as received. `code` is 0 and `reason` explains when the bytes were not a
/// SIP response at all (tests then fail with the raw bytes in view).
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub code: u16,
    pub reason: String,
    pub raw: Vec<u8>,
}

impl std::fmt::Debug for Response {
    // The raw bytes as text: assertion messages show the message, not a list of numbers.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("code", &self.code)
            .field("reason", &self.reason)
            .field("raw", &String::from_utf8_lossy(&self.raw))
            .finish()
    }
}

impl Response {
    /// Parses the status line (`SIP/2.0 CODE REASON`); anything else gives code 0.
    pub fn parse(raw: &[u8]) -> Response {
        let line_end = find(raw, b"\r\n").unwrap_or(raw.len());
        let line = String::from_utf8_lossy(&raw[..line_end]);
        let parsed = line.strip_prefix("SIP/2.0 ").and_then(|rest| {
            let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            let code: u16 = code.parse().ok()?;
            (100..=699)
                .contains(&code)
                .then(|| (code, reason.to_owned()))
        });
        match parsed {
            Some((code, reason)) => Response {
                code,
                reason,
                raw: raw.to_vec(),
            },
            None => Response {
                code: 0,
                reason: "<not a SIP response>".to_owned(),
                raw: raw.to_vec(),
            },
        }
    }

    /// Whether this is a final response (2xx-6xx).
    pub fn is_final(&self) -> bool {
        self.code >= 200
    }

    /// The raw message as (lossy) text, for assertion messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// Every value of header `name` (case-insensitive; `compact` is the RFC 3261 compact form
    /// if any), in order, one entry per header line, trimmed.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        let head_end = find(&self.raw, b"\r\n\r\n").unwrap_or(self.raw.len());
        let head = String::from_utf8_lossy(&self.raw[..head_end]);
        let compact = compact_form(name);
        head.split("\r\n")
            .skip(1)
            .filter_map(|line| {
                let (n, v) = line.split_once(':')?;
                let n = n.trim();
                (n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c)))
                    .then(|| v.trim().to_owned())
            })
            .collect()
    }

    /// The first value of header `name`, see [`Response::header_values`].
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_values(name).into_iter().next()
    }

    /// All comma-separated tokens of every `name` header, trimmed (for Allow, Supported,
    /// Unsupported, Accept).
    pub fn header_tokens(&self, name: &str) -> Vec<String> {
        self.header_values(name)
            .iter()
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect()
    }
}

fn compact_form(name: &str) -> Option<&'static str> {
    const FORMS: &[(&str, &str)] = &[
        ("via", "v"),
        ("from", "f"),
        ("to", "t"),
        ("call-id", "i"),
        ("content-length", "l"),
        ("content-type", "c"),
        ("contact", "m"),
        ("supported", "k"),
    ];
    FORMS
        .iter()
        .find(|(long, _)| long.eq_ignore_ascii_case(name))
        .map(|(_, short)| *short)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A UDP socket on loopback for talking to voxgate.
#[derive(Debug)]
pub struct UdpClient {
    socket: UdpSocket,
}

impl UdpClient {
    /// Binds an ephemeral port on the loopback address of the same family as `peer`.
    pub fn bind_loopback(peer: SocketAddr) -> UdpClient {
        let local = if peer.is_ipv6() {
            "[::1]:0"
        } else {
            "127.0.0.1:0"
        };
        let socket = UdpSocket::bind(local).expect("an ephemeral loopback UDP port is free");
        UdpClient { socket }
    }

    /// Binds exactly `local` (port 0 for an ephemeral one), for example another loopback
    /// address such as `127.0.0.3:0`, so a test can play a second source host: on Linux the
    /// whole of 127.0.0.0/8 is local.
    pub fn bind(local: SocketAddr) -> UdpClient {
        let socket = UdpSocket::bind(local).unwrap_or_else(|e| panic!("bind UDP {local}: {e}"));
        UdpClient { socket }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.socket
            .local_addr()
            .expect("a bound socket has an address")
    }

    /// Sends one datagram, exactly these bytes.
    pub fn send_to(&self, datagram: &[u8], to: SocketAddr) {
        let sent = self
            .socket
            .send_to(datagram, to)
            .unwrap_or_else(|e| panic!("send to {to}: {e}"));
        assert_eq!(sent, datagram.len(), "datagram truncated on send");
    }

    /// Receives one datagram, waiting at most `wait`.
    pub fn recv(&self, wait: Duration) -> Option<Response> {
        if wait.is_zero() {
            return None;
        }
        self.socket
            .set_read_timeout(Some(wait))
            .expect("a non-zero timeout is valid");
        let mut buf = vec![0u8; 65_536];
        match self.socket.recv_from(&mut buf) {
            Ok((n, _from)) => Some(Response::parse(&buf[..n])),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
            // ICMP port unreachable reported on the socket: nothing came back.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => None,
            Err(e) => panic!("recv on {}: {e}", self.local_addr()),
        }
    }

    /// Receives one datagram with its source address, waiting at most `wait`: for tests
    /// that must answer a request voxgate sends, or check where it came from.
    pub fn recv_from(&self, wait: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        if wait.is_zero() {
            return None;
        }
        self.socket
            .set_read_timeout(Some(wait))
            .expect("a non-zero timeout is valid");
        let mut buf = vec![0u8; 65_536];
        match self.socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                buf.truncate(n);
                Some((buf, from))
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => None,
            Err(e) => panic!("recv on {}: {e}", self.local_addr()),
        }
    }

    /// Every datagram that arrives during `window` (the whole window is always waited out,
    /// so silence can be asserted).
    pub fn collect(&self, window: Duration) -> Vec<Response> {
        let deadline = crate::now() + window;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(crate::now());
            if left.is_zero() {
                return got;
            }
            if let Some(r) = self.recv(left) {
                got.push(r);
            }
        }
    }

    /// Sends `msg` to `to`, resends it every 500 ms (a retransmission, as a UAC over UDP
    /// would), and returns the first final response, or None after `limit`.
    pub fn request(&self, to: SocketAddr, msg: &[u8], limit: Duration) -> Option<Response> {
        let deadline = crate::now() + limit;
        loop {
            self.send_to(msg, to);
            let resend_at = (crate::now() + Duration::from_millis(500)).min(deadline);
            loop {
                let left = resend_at.saturating_duration_since(crate::now());
                if left.is_zero() {
                    break;
                }
                if let Some(r) = self.recv(left) {
                    if r.is_final() || r.code == 0 {
                        return Some(r);
                    }
                }
            }
            if crate::now() >= deadline {
                return None;
            }
        }
    }
}

/// Reads one SIP message from a stream (framed by Content-Length; absent means 0). The
/// caller sets a read timeout on the underlying socket. Errors: the stream's own errors, or
/// `UnexpectedEof` if it closes mid-message.
pub fn read_stream_response(stream: &mut impl Read) -> std::io::Result<Response> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte so nothing after this message is consumed; tests read few messages.
    loop {
        if stream.read(&mut byte)? == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
        // RFC 5626 keep-alive pongs (CRLF) before a message are skipped.
        if buf == b"\r\n" {
            buf.clear();
        }
        if buf.ends_with(b"\r\n\r\n") {
            break;
        }
    }
    let head = Response::parse(&buf);
    let length: usize = head
        .header("Content-Length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    buf.extend_from_slice(&body);
    Ok(Response::parse(&buf))
}

/// How a stream ended in [`read_until_close`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The peer closed (FIN or RST) after sending `received`.
    Closed { received: Vec<u8> },
    /// Still open when the limit passed.
    StillOpen { received: Vec<u8> },
}

/// Reads everything from `stream` until the peer closes it or `limit` passes. The limit is a
/// failure deadline for "the peer must close", not a performance bound.
pub fn read_until_close(stream: &mut std::net::TcpStream, limit: Duration) -> StreamEnd {
    let deadline = crate::now() + limit;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(crate::now());
        if left.is_zero() {
            return StreamEnd::StillOpen { received };
        }
        stream
            .set_read_timeout(Some(left))
            .expect("a non-zero timeout is valid");
        match stream.read(&mut buf) {
            Ok(0) => return StreamEnd::Closed { received },
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return StreamEnd::Closed { received },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_line_and_headers() {
        let r = Response::parse(
            b"SIP/2.0 420 Bad Extension\r\nUnsupported: a, b\r\nunsupported: c\r\nl: 0\r\n\r\n",
        );
        assert_eq!((r.code, r.reason.as_str()), (420, "Bad Extension"));
        assert_eq!(r.header_tokens("Unsupported"), ["a", "b", "c"]);
        assert_eq!(r.header("Content-Length").as_deref(), Some("0"));
        assert!(r.is_final());
    }

    #[test]
    fn non_response_has_code_zero() {
        assert_eq!(Response::parse(b"OPTIONS sip:x SIP/2.0\r\n\r\n").code, 0);
        assert_eq!(Response::parse(b"SIP/2.0 4294967301 Big\r\n\r\n").code, 0);
        assert_eq!(Response::parse(b"").code, 0);
    }

    #[test]
    fn empty_reason_phrase() {
        let r = Response::parse(b"SIP/2.0 100 \r\n\r\n");
        assert_eq!((r.code, r.reason.as_str()), (100, ""));
    }

    #[test]
    fn reads_framed_response_from_stream() {
        let data = b"\r\nSIP/2.0 200 OK\r\nContent-Length: 3\r\n\r\nabcSIP/2.0 100 Trying\r\n";
        let mut cursor = std::io::Cursor::new(&data[..]);
        let r = read_stream_response(&mut cursor).unwrap();
        assert_eq!(r.code, 200);
        assert!(r.raw.ends_with(b"\r\n\r\nabc"));
        assert_eq!(
            cursor.position() as usize,
            data.len() - b"SIP/2.0 100 Trying\r\n".len()
        );
    }

    #[test]
    fn request_has_cookie_and_rport() {
        let local: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let target: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let m = options_request(target, "UDP", local, "abc");
        assert!(m.starts_with("OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\n"));
        assert!(m.contains("Via: SIP/2.0/UDP 127.0.0.1:4000;branch=z9hG4bKabc;rport\r\n"));
        assert!(m.ends_with("Content-Length: 0\r\n\r\n"));
        assert_ne!(new_branch(), new_branch());
    }
}
