//! Stream framing for SIP over TCP and TLS (RFC 3261 §18.3, RFC 5626 §3.5.1 / §4.4.1
//! keep-alives).
//!
//! [`StreamFramer`] is sans-IO: the driver pushes the bytes it reads from one connection and
//! pulls [`Framed`] items out: whole messages (the header section plus exactly Content-Length
//! body octets), keep-alive pings (`"\r\n\r\n"`, which the driver answers with `"\r\n"`) and
//! pongs (a lone `"\r\n"`).
//!
//! A stream has no datagram boundary to fall back on, so Content-Length is mandatory (RFC 3261
//! §18.3): a missing, negative, non-numeric or contradictory value means the framing is lost
//! and the connection must be closed (RFC 4475 §3.1.2.3 `ncl`, §3.3.9 `mcl01`). A message
//! larger than `limits.max_message_bytes` is refused without buffering it (FEATURES SIG-23);
//! [`too_large_response`] builds the 513 the driver sends before closing, when the start of
//! the message is readable.
//!
//! What it does not do: parse messages (that is [`super::Message::parse_framed`]), touch
//! sockets or read the clock. The driver asks [`StreamFramer::has_partial`] to run its own
//! partial-message timeout against slow senders.

use bytes::{Buf, Bytes, BytesMut};

use super::builder::{reason_phrase, ResponseBuilder};
use super::message::Message;
use super::method::Method;
use super::name::HeaderName;
use super::scan::trim;
use crate::config::MessageLimits;

/// One item cut from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framed {
    /// Exactly one message: header section and Content-Length body octets.
    Message(Bytes),
    /// An RFC 5626 §4.4.1 ping (`"\r\n\r\n"`) between messages: answer with `"\r\n"`.
    Ping,
    /// A lone `"\r\n"` between messages: the RFC 5626 §4.4.1 pong.
    ///
    /// A ping whose two halves arrive in separate reads is reported as a `Pong` followed by a
    /// `Ping`, so every ping is still answered; a caller that tracks flow liveness should treat
    /// either as a sign of life.
    Pong,
}

/// Why a stream lost its framing. The connection must be closed: nothing after this point
/// can be trusted to start on a message boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// No Content-Length (mandatory on streams, RFC 3261 §18.3).
    #[error("message has no Content-Length (mandatory on streams)")]
    MissingContentLength,
    /// Content-Length that is not a non-negative decimal integer (RFC 4475 `ncl`).
    #[error("Content-Length is not a non-negative integer")]
    BadContentLength,
    /// Several Content-Length fields with different values (RFC 4475 `mcl01`).
    #[error("several different Content-Length values")]
    ConflictingContentLength,
    /// The header section, or header section plus declared body, exceeds the limit.
    #[error("message exceeds the limit of {limit} bytes")]
    TooLarge {
        limit: usize,
        /// The start of the message, cut after its last complete line and never longer than
        /// `limit` (the whole header section when that was complete): enough to answer 513.
        head: Bytes,
    },
}

/// Where the framer is within the current item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between messages: keep-alives or the first octet of a start line come next.
    Boundary,
    /// Reading a header section. `scanned`: how far the search for its end has got;
    /// `line_start`: where the line being searched began.
    Head { scanned: usize, line_start: usize },
    /// The header section is read; the message is `len` octets long in total.
    Body { len: usize },
}

/// Cuts a byte stream into SIP messages and keep-alives. See the module docs.
#[derive(Debug)]
pub struct StreamFramer {
    limits: MessageLimits,
    /// Received octets not yet handed out; always starts at the current item.
    buf: BytesMut,
    state: State,
    /// The last item was a `Pong` that ended the received data: a `"\r\n"` next completes a
    /// ping split across reads.
    half_ping: bool,
    /// Set by the first error; every later call repeats it.
    failed: Option<FramingError>,
}

impl StreamFramer {
    pub fn new(limits: MessageLimits) -> Self {
        Self {
            limits,
            buf: BytesMut::new(),
            state: State::Boundary,
            half_ping: false,
            failed: None,
        }
    }

    /// Append octets read from the connection. Call [`Self::next`] until it returns
    /// `Ok(None)` afterwards.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next complete item, `Ok(None)` when more input is needed. After an `Err` the
    /// framer is dead and repeats the error: close the connection.
    #[allow(clippy::should_implement_trait)] // Fallible, and not meant to be iterated blindly.
    pub fn next(&mut self) -> Result<Option<Framed>, FramingError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.step();
        if let Err(e) = &r {
            self.failed = Some(e.clone());
            self.buf = BytesMut::new();
        }
        r
    }

    /// Whether part of a message is buffered (the driver's partial-message timeout runs while
    /// this is true). A held `"\r"` of a keep-alive does not count.
    pub fn has_partial(&self) -> bool {
        self.state != State::Boundary || self.buf.iter().any(|b| !matches!(b, b'\r' | b'\n'))
    }

    /// Octets buffered and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn step(&mut self) -> Result<Option<Framed>, FramingError> {
        loop {
            match self.state {
                State::Boundary => match self.boundary() {
                    Boundary::Item(item) => return Ok(Some(item)),
                    Boundary::Wait => return Ok(None),
                    Boundary::Skipped => {}
                    Boundary::MessageStart => {
                        self.half_ping = false;
                        self.state = State::Head {
                            scanned: 0,
                            line_start: 0,
                        };
                    }
                },
                State::Head {
                    scanned,
                    line_start,
                } => match self.scan_head(scanned, line_start)? {
                    Some(len) => self.state = State::Body { len },
                    None => return Ok(None),
                },
                State::Body { len } => {
                    if self.buf.len() < len {
                        return Ok(None);
                    }
                    self.state = State::Boundary;
                    return Ok(Some(Framed::Message(self.buf.split_to(len).freeze())));
                }
            }
        }
    }

    /// Between messages: keep-alives, stray line ends, or the start of a message.
    fn boundary(&mut self) -> Boundary {
        let b = &self.buf[..];
        match b {
            [] | [b'\r'] => Boundary::Wait,
            [b'\r', b'\n', b'\r', b'\n', ..] => {
                self.buf.advance(4);
                self.half_ping = false;
                Boundary::Item(Framed::Ping)
            }
            [b'\r', b'\n', ..] => {
                self.buf.advance(2);
                if self.half_ping {
                    self.half_ping = false;
                    return Boundary::Item(Framed::Ping);
                }
                // Nothing, or only the "\r" of a second CRLF, follows: this may be the first
                // half of a ping whose second half is still in flight.
                self.half_ping = matches!(&self.buf[..], [] | [b'\r']);
                Boundary::Item(Framed::Pong)
            }
            // A bare CR or LF before a start line is ignored (RFC 3261 §7.5), like the
            // parser tolerates bare LF line ends.
            [b'\r', ..] | [b'\n', ..] => {
                self.buf.advance(1);
                self.half_ping = false;
                Boundary::Skipped
            }
            _ => Boundary::MessageStart,
        }
    }

    /// Search for the end of the header section; once found, check Content-Length and return
    /// the total message length.
    fn scan_head(
        &mut self,
        mut scanned: usize,
        mut line_start: usize,
    ) -> Result<Option<usize>, FramingError> {
        let limit = self.limits.max_message_bytes;
        // Never look beyond the limit: a header section ending later is too large anyway.
        let end = self.buf.len().min(limit);
        let mut head_end = None;
        while scanned < end {
            let Some(rel) = memchr::memchr(b'\n', &self.buf[scanned..end]) else {
                scanned = end;
                break;
            };
            let lf = scanned + rel;
            let line = &self.buf[line_start..lf];
            scanned = lf + 1;
            line_start = lf + 1;
            if line.is_empty() || line == b"\r" {
                head_end = Some(lf + 1);
                break;
            }
        }
        let Some(head_end) = head_end else {
            if self.buf.len() >= limit {
                // No blank line within the first `limit` octets.
                let head = self.buf.split_to(line_start).freeze();
                return Err(FramingError::TooLarge { limit, head });
            }
            self.state = State::Head {
                scanned,
                line_start,
            };
            return Ok(None);
        };
        let body = content_length(&self.buf[..head_end])?;
        match usize::try_from(body)
            .ok()
            .and_then(|b| b.checked_add(head_end))
        {
            Some(len) if len <= limit => Ok(Some(len)),
            _ => {
                let head = self.buf.split_to(head_end).freeze();
                Err(FramingError::TooLarge { limit, head })
            }
        }
    }
}

enum Boundary {
    Item(Framed),
    Wait,
    Skipped,
    MessageStart,
}

/// The Content-Length of a complete header section (start line included), with continuation
/// lines folded in (RFC 3261 §7.3.1).
fn content_length(head: &[u8]) -> Result<u64, FramingError> {
    let mut found: Option<u64> = None;
    let mut conflict = false;
    // The Content-Length value being read, when the current field is one.
    let mut current: Option<Vec<u8>> = None;
    let mut finish = |value: Option<Vec<u8>>| -> Result<(), FramingError> {
        if let Some(v) = value {
            let n = parse_length(trim(&v))?;
            match found {
                Some(prev) if prev != n => conflict = true,
                _ => found = Some(n),
            }
        }
        Ok(())
    };
    // Skip the start line; the section ends with an empty line.
    for line in head.split(|b| *b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let [b' ' | b'\t', ..] = line {
            if let Some(v) = current.as_mut() {
                v.push(b' ');
                v.extend_from_slice(line);
            }
            continue;
        }
        finish(current.take())?;
        if line.is_empty() {
            break;
        }
        if let Some(colon) = memchr::memchr(b':', line) {
            if HeaderName::from_bytes(trim(&line[..colon])) == HeaderName::ContentLength {
                current = Some(line[colon + 1..].to_vec());
            }
        }
    }
    finish(current.take())?;
    if conflict {
        return Err(FramingError::ConflictingContentLength);
    }
    found.ok_or(FramingError::MissingContentLength)
}

/// `1*DIGIT` (RFC 3261 §20.14). A value too big for `u64` saturates: it is over any limit.
fn parse_length(v: &[u8]) -> Result<u64, FramingError> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(FramingError::BadContentLength);
    }
    Ok(v.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// The 513 (Message Too Large) answer to an oversized stream request (FEATURES SIG-23), built
/// from the `head` of [`FramingError::TooLarge`]. `None` when that start is not a request
/// that can be answered (a response, an ACK, or no Via, From, To, Call-ID or CSeq in it):
/// then the connection is just closed.
pub fn too_large_response(head: &Bytes, limits: &MessageLimits, to_tag: &str) -> Option<Message> {
    // The head holds no body: parse it as a datagram so a missing terminator is tolerated.
    let msg = Message::parse_datagram(head.clone(), limits).ok()?;
    match msg.method() {
        None | Some(Method::Ack) => return None,
        Some(_) => {}
    }
    msg.top_via().ok()?;
    msg.from().ok()?;
    msg.to().ok()?;
    msg.call_id().ok()?;
    msg.cseq().ok()?;
    Some(ResponseBuilder::new(&msg, 513, reason_phrase(513), Some(to_tag)).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> MessageLimits {
        MessageLimits {
            max_message_bytes: max,
            ..MessageLimits::default()
        }
    }

    fn options(call_id: &str, body: &str) -> Vec<u8> {
        format!(
            "OPTIONS sip:127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK{call_id}\r\n\
             From: <sip:a@127.0.0.1>;tag=1\r\n\
             To: <sip:127.0.0.1>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Max-Forwards: 70\r\n\
             Content-Length: {}\r\n\
             \r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// Everything the framer yields until it needs more input.
    fn drain(f: &mut StreamFramer) -> Result<Vec<Framed>, FramingError> {
        let mut out = Vec::new();
        while let Some(item) = f.next()? {
            out.push(item);
        }
        Ok(out)
    }

    fn frame_all(data: &[u8]) -> Result<Vec<Framed>, FramingError> {
        let mut f = StreamFramer::new(MessageLimits::default());
        f.push(data);
        drain(&mut f)
    }

    #[test]
    fn one_message_with_body() {
        let m = options("a", "hello");
        let out = frame_all(&m).expect("frames");
        assert_eq!(out, vec![Framed::Message(Bytes::from(m))]);
    }

    #[test]
    fn framed_message_parses() {
        let m = options("a", "");
        let out = frame_all(&m).expect("frames");
        let Framed::Message(bytes) = &out[0] else {
            panic!("expected a message, got {out:?}");
        };
        let msg = Message::parse_framed(bytes.clone(), &MessageLimits::default()).expect("parses");
        assert_eq!(msg.method(), Some(&Method::Options));
    }

    #[test]
    fn pipelined_messages_in_one_push() {
        let (a, b, c) = (options("a", "x"), options("b", ""), options("c", "yz"));
        let all = [a.clone(), b.clone(), c.clone()].concat();
        let out = frame_all(&all).expect("frames");
        assert_eq!(
            out,
            vec![
                Framed::Message(a.into()),
                Framed::Message(b.into()),
                Framed::Message(c.into())
            ]
        );
    }

    #[test]
    fn byte_by_byte() {
        let (a, b) = (options("a", "body"), options("b", ""));
        let mut f = StreamFramer::new(MessageLimits::default());
        let mut out = Vec::new();
        let all = [a.clone(), b"\r\n\r\n".to_vec(), b.clone()].concat();
        for (i, byte) in all.iter().enumerate() {
            f.push(&[*byte]);
            out.extend(drain(&mut f).expect("frames"));
            if i + 1 < a.len() {
                assert!(f.has_partial(), "partial at byte {i}");
            }
        }
        assert!(!f.has_partial());
        let messages: Vec<_> = out
            .iter()
            .filter(|i| matches!(i, Framed::Message(_)))
            .cloned()
            .collect();
        assert_eq!(
            messages,
            vec![Framed::Message(a.into()), Framed::Message(b.into())]
        );
        // The ping split into single bytes is still answered exactly once.
        assert_eq!(out.iter().filter(|i| **i == Framed::Ping).count(), 1);
    }

    #[test]
    fn ping_and_pong() {
        assert_eq!(frame_all(b"\r\n\r\n").expect("ok"), vec![Framed::Ping]);
        assert_eq!(frame_all(b"\r\n").expect("ok"), vec![Framed::Pong]);
        let m = options("a", "");
        let stream = [b"\r\n\r\n".to_vec(), m.clone(), b"\r\n".to_vec(), m.clone()].concat();
        assert_eq!(
            frame_all(&stream).expect("ok"),
            vec![
                Framed::Ping,
                Framed::Message(m.clone().into()),
                Framed::Pong,
                Framed::Message(m.into())
            ]
        );
    }

    #[test]
    fn ping_split_in_halves_is_answered() {
        let mut f = StreamFramer::new(MessageLimits::default());
        f.push(b"\r\n");
        assert_eq!(drain(&mut f).expect("ok"), vec![Framed::Pong]);
        f.push(b"\r\n");
        assert_eq!(drain(&mut f).expect("ok"), vec![Framed::Ping]);
        // A held "\r" is not a partial message.
        f.push(b"\r");
        assert_eq!(drain(&mut f).expect("ok"), vec![]);
        assert!(!f.has_partial());
    }

    #[test]
    fn partial_message_is_reported() {
        let m = options("a", "body");
        let mut f = StreamFramer::new(MessageLimits::default());
        assert!(!f.has_partial());
        f.push(&m[..10]);
        assert!(f.has_partial());
        assert_eq!(drain(&mut f).expect("ok"), vec![]);
        assert!(f.has_partial());
        f.push(&m[10..m.len() - 1]);
        assert_eq!(drain(&mut f).expect("ok"), vec![]);
        assert!(f.has_partial(), "waiting for the last body octet");
        f.push(&m[m.len() - 1..]);
        assert_eq!(drain(&mut f).expect("ok"), vec![Framed::Message(m.into())]);
        assert!(!f.has_partial());
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn compact_and_case_insensitive_content_length() {
        for name in [
            "l",
            "L",
            "content-length",
            "CONTENT-LENGTH",
            "Content-Length ",
        ] {
            let m = format!(
                "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n{name}: 3\r\n\r\nabcMESSAGE"
            );
            let out = frame_all(m.as_bytes()).expect("frames");
            assert_eq!(out.len(), 1, "{name}");
            assert_eq!(
                out[0],
                Framed::Message(Bytes::from(m[..m.len() - 7].to_owned()))
            );
        }
    }

    #[test]
    fn folded_content_length() {
        let m = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length:\r\n  2\r\nTo: x\r\n\r\nab";
        assert_eq!(
            frame_all(m).expect("frames"),
            vec![Framed::Message(Bytes::from_static(m))]
        );
    }

    #[test]
    fn bare_lf_line_ends() {
        let m = b"MESSAGE sip:a@b SIP/2.0\nl: 2\n\nab";
        assert_eq!(
            frame_all(m).expect("frames"),
            vec![Framed::Message(Bytes::from_static(m))]
        );
    }

    #[test]
    fn same_content_length_twice_is_fine() {
        let m = b"MESSAGE sip:a@b SIP/2.0\r\nl: 2\r\nContent-Length: 2\r\n\r\nab";
        assert_eq!(frame_all(m).expect("frames").len(), 1);
    }

    #[test]
    fn content_length_errors() {
        let cases: [(&[u8], FramingError); 5] = [
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nTo: x\r\n\r\nab",
                FramingError::MissingContentLength,
            ),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\nab",
                FramingError::BadContentLength,
            ),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 1x\r\n\r\nab",
                FramingError::BadContentLength,
            ),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length:\r\n\r\nab",
                FramingError::BadContentLength,
            ),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nl: 2\r\nContent-Length: 3\r\n\r\nab",
                FramingError::ConflictingContentLength,
            ),
        ];
        for (input, want) in cases {
            let mut f = StreamFramer::new(MessageLimits::default());
            f.push(input);
            assert_eq!(f.next(), Err(want.clone()));
            // The framer stays dead.
            f.push(b"\r\n\r\n");
            assert_eq!(f.next(), Err(want));
        }
    }

    #[test]
    fn rfc4475_ncl_and_mcl01_lose_framing() {
        let ncl = include_bytes!("../../../tests/data/rfc4475/ncl.dat");
        let mcl = include_bytes!("../../../tests/data/rfc4475/mcl01.dat");
        assert_eq!(frame_all(ncl), Err(FramingError::BadContentLength));
        assert_eq!(frame_all(mcl), Err(FramingError::ConflictingContentLength));
    }

    #[test]
    fn rfc4475_clerr_waits_for_its_body() {
        let clerr = include_bytes!("../../../tests/data/rfc4475/clerr.dat");
        let mut f = StreamFramer::new(MessageLimits::default());
        f.push(clerr);
        assert_eq!(drain(&mut f), Ok(vec![]));
        assert!(f.has_partial());
    }

    #[test]
    fn too_large_by_content_length() {
        let m = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 1000\r\n\r\n";
        let mut f = StreamFramer::new(limits(200));
        f.push(m);
        match f.next() {
            Err(FramingError::TooLarge { limit: 200, head }) => assert_eq!(&head[..], &m[..]),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // A value beyond u64 is too large as well, not a panic.
        let mut f = StreamFramer::new(limits(200));
        f.push(b"MESSAGE sip:a@b SIP/2.0\r\nl: 99999999999999999999999999\r\n\r\n");
        assert!(matches!(f.next(), Err(FramingError::TooLarge { .. })));
    }

    #[test]
    fn too_large_header_section() {
        let mut f = StreamFramer::new(limits(100));
        f.push(b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n");
        assert_eq!(f.next(), Ok(None));
        for _ in 0..10 {
            f.push(b"X-Filler: aaaaaaaa\r\n");
        }
        match f.next() {
            Err(FramingError::TooLarge { limit: 100, head }) => {
                assert!(head.len() <= 100);
                assert!(head.starts_with(b"MESSAGE sip:a@b SIP/2.0\r\nVia:"));
                assert!(head.ends_with(b"\r\n"), "cut after a complete line");
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn message_of_exactly_the_limit_is_accepted() {
        let m = options("exact", "0123456789");
        let mut f = StreamFramer::new(limits(m.len()));
        f.push(&m);
        assert_eq!(f.next(), Ok(Some(Framed::Message(m.clone().into()))));
        let mut f = StreamFramer::new(limits(m.len() - 1));
        f.push(&m);
        assert!(matches!(f.next(), Err(FramingError::TooLarge { .. })));
    }

    #[test]
    fn huge_header_section_without_line_ends() {
        let mut f = StreamFramer::new(limits(1000));
        f.push(&[b'A'; 5000]);
        match f.next() {
            Err(FramingError::TooLarge { head, .. }) => assert!(head.is_empty()),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn too_large_answer() {
        let m = options("big", "");
        // Cut the head as the framer does for a too-large body: header section only.
        let head = Bytes::from(m);
        let resp = too_large_response(&head, &MessageLimits::default(), "t1").expect("answerable");
        assert_eq!(resp.code(), Some(513));
        assert_eq!(
            resp.call_id().expect("call-id"),
            &Bytes::from_static(b"big")
        );
        assert_eq!(
            resp.to().expect("to").tag().map(|t| t.to_vec()),
            Some(b"t1".to_vec())
        );
        // A truncated head without Call-ID or CSeq, a response, or an ACK: just close.
        let short = Bytes::from_static(
            b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n",
        );
        assert!(too_large_response(&short, &MessageLimits::default(), "t").is_none());
        let resp =
            Bytes::from_static(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\r\n");
        assert!(too_large_response(&resp, &MessageLimits::default(), "t").is_none());
        assert!(too_large_response(&Bytes::new(), &MessageLimits::default(), "t").is_none());
    }

    mod property {
        use super::*;
        use proptest::prelude::*;

        /// A stream of messages with keep-alives between some of them.
        fn stream() -> impl Strategy<Value = (Vec<Vec<u8>>, Vec<u8>, usize)> {
            (
                prop::collection::vec(
                    (
                        "[a-z0-9]{1,12}",
                        prop::collection::vec(any::<u8>(), 0..64),
                        any::<bool>(),
                    ),
                    1..6,
                ),
                any::<bool>(),
            )
                .prop_map(|(parts, leading_ping)| {
                    let mut msgs = Vec::new();
                    let mut stream = Vec::new();
                    let mut pings = 0;
                    if leading_ping {
                        stream.extend_from_slice(b"\r\n\r\n");
                        pings += 1;
                    }
                    for (call_id, body, ping_after) in parts {
                        let mut m = format!(
                            "MESSAGE sip:u@h SIP/2.0\r\nCall-ID: {call_id}\r\nl: {}\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        m.extend_from_slice(&body);
                        stream.extend_from_slice(&m);
                        msgs.push(m);
                        if ping_after {
                            stream.extend_from_slice(b"\r\n\r\n");
                            pings += 1;
                        }
                    }
                    (msgs, stream, pings)
                })
        }

        proptest! {
            #[test]
            fn splitting_preserves_messages(
                (msgs, stream, pings) in stream(),
                cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
            ) {
                let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
                points.push(0);
                points.push(stream.len());
                points.sort_unstable();
                let mut f = StreamFramer::new(MessageLimits::default());
                let mut out = Vec::new();
                for w in points.windows(2) {
                    f.push(&stream[w[0]..w[1]]);
                    out.extend(drain(&mut f).expect("valid stream"));
                }
                let got: Vec<Vec<u8>> = out
                    .iter()
                    .filter_map(|i| match i {
                        Framed::Message(b) => Some(b.to_vec()),
                        _ => None,
                    })
                    .collect();
                prop_assert_eq!(got, msgs);
                prop_assert_eq!(out.iter().filter(|i| **i == Framed::Ping).count(), pings);
                prop_assert!(!f.has_partial());
            }

            #[test]
            fn arbitrary_input_never_panics(
                chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..8),
            ) {
                let mut f = StreamFramer::new(limits(512));
                for c in &chunks {
                    f.push(c);
                    loop {
                        match f.next() {
                            Ok(Some(Framed::Message(m))) => prop_assert!(m.len() <= 512),
                            Ok(Some(_)) => {}
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
            }
        }
    }
}
