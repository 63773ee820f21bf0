//! Parsing a SIP message from bytes (RFC 3261 §7), bounded by [`MessageLimits`].
//!
//! The parser only frames and indexes: it splits the start line, indexes header fields as raw
//! slices (continuation lines folded into the value), and finds the body. Typed values are
//! parsed later, when asked for. Structural faults that still leave enough to answer (a bad
//! request line, a broken header line, a bad Content-Length) are recorded as a [`Defect`]
//! on the message, so the endpoint can reply 400 instead of dropping.

use bytes::Bytes;

use super::message::{Header, Message, RequestLine, StartLine, StatusLine};
use super::method::Method;
use super::name::HeaderName;
use super::scan::{is_token, trim};
use crate::config::MessageLimits;

/// Why bytes could not become a [`Message`] at all. Such input is dropped and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("empty message")]
    Empty,
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("no recognisable start line")]
    StartLine,
    #[error("status line is malformed")]
    StatusLine,
    #[error("more than {limit} header fields")]
    TooManyHeaders { limit: usize },
    #[error("a header field exceeds {limit} bytes")]
    HeaderTooLong { limit: usize },
    #[error("header section is not terminated")]
    Unterminated,
}

/// A structural fault in a message that was still indexed; requests with one get a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Defect {
    #[error("Malformed Request-Line")]
    RequestLine,
    #[error("Malformed Header Line")]
    HeaderLine,
    #[error("Bad Content-Length")]
    ContentLength,
    #[error("Multiple Content-Length")]
    MultipleContentLength,
    #[error("Content-Length Exceeds Message")]
    ContentLengthExceeds,
}

/// How the bytes arrived, which decides what a missing or short body means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One UDP datagram: no Content-Length means the body is the rest of the datagram;
    /// octets after Content-Length are ignored (RFC 3261 §18.3).
    Datagram,
    /// Exactly one message cut from a stream by the framer (Content-Length already checked).
    Stream,
}

/// Find the end of the next line: returns (line without its terminator, index after it).
/// CRLF is the terminator; a bare LF is tolerated.
fn next_line(buf: &[u8], from: usize) -> Option<(usize, usize, usize)> {
    let rel = memchr::memchr(b'\n', &buf[from..])?;
    let lf = from + rel;
    let end = if lf > from && buf[lf - 1] == b'\r' {
        lf - 1
    } else {
        lf
    };
    Some((from, end, lf + 1))
}

pub(crate) fn parse(
    buf: Bytes,
    limits: &MessageLimits,
    framing: Framing,
) -> Result<Message, ParseError> {
    if buf.len() > limits.max_message_bytes {
        return Err(ParseError::TooLarge {
            size: buf.len(),
            limit: limits.max_message_bytes,
        });
    }
    // RFC 3261 §7.5: ignore CRLFs before the start line (keep-alives may precede it).
    let mut pos = 0;
    while pos < buf.len() && (buf[pos] == b'\r' || buf[pos] == b'\n') {
        pos += 1;
    }
    if pos == buf.len() {
        return Err(ParseError::Empty);
    }
    let (ls, le, mut pos) = match next_line(&buf, pos) {
        Some(l) => l,
        None => (pos, buf.len(), buf.len()),
    };
    let mut defect = None;
    let start = parse_start_line(&buf, ls, le, &mut defect)?;

    let mut headers: Vec<Header> = Vec::with_capacity(16);
    let mut terminated = false;
    let mut previous_kept = false;
    while pos < buf.len() {
        let (hs, he, next) = match next_line(&buf, pos) {
            Some(l) => l,
            // A datagram may end without the final line terminator.
            None => (pos, buf.len(), buf.len()),
        };
        if hs == he {
            pos = next;
            terminated = true;
            break;
        }
        if memchr::memchr(b'\r', &buf[hs..he]).is_some() {
            // A CR not followed by LF: lenient peers would read it as a line break, so a
            // copy of this value in a response could smuggle a header. The line (and any
            // continuation of it) is dropped and the request gets a 400.
            defect.get_or_insert(Defect::HeaderLine);
            previous_kept = false;
            pos = next;
            continue;
        }
        if buf[hs] == b' ' || buf[hs] == b'\t' {
            // Continuation line: extend the previous value (RFC 3261 §7.3.1), unless the
            // previous line was dropped as malformed: then this line belongs to it.
            match headers.last_mut().filter(|_| previous_kept) {
                Some(h) => {
                    let vstart = h.value_start;
                    let value = buf.slice(vstart..he);
                    if value.len() > limits.max_header_bytes {
                        return Err(ParseError::HeaderTooLong {
                            limit: limits.max_header_bytes,
                        });
                    }
                    h.value = buf.slice_ref(trim(&value));
                }
                None => {
                    defect.get_or_insert(Defect::HeaderLine);
                }
            }
            pos = next;
            continue;
        }
        previous_kept = false;
        if he - hs > limits.max_header_bytes {
            return Err(ParseError::HeaderTooLong {
                limit: limits.max_header_bytes,
            });
        }
        if headers.len() >= limits.max_headers {
            return Err(ParseError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        let line = &buf[hs..he];
        match memchr::memchr(b':', line) {
            Some(colon) => {
                let name = trim(&line[..colon]);
                if name.is_empty() || !name.iter().all(|b| is_token(*b)) {
                    defect.get_or_insert(Defect::HeaderLine);
                } else {
                    let value_start = hs + colon + 1;
                    let value = buf.slice_ref(trim(&buf[value_start..he]));
                    previous_kept = true;
                    headers.push(Header {
                        name: HeaderName::from_bytes(name),
                        raw_name: buf.slice_ref(name),
                        value,
                        value_start,
                    });
                }
            }
            None => {
                defect.get_or_insert(Defect::HeaderLine);
            }
        }
        pos = next;
    }
    if !terminated && framing == Framing::Stream {
        return Err(ParseError::Unterminated);
    }

    let rest = buf.len() - pos.min(buf.len());
    let mut cl_values = headers
        .iter()
        .filter(|h| h.name == HeaderName::ContentLength);
    let first = cl_values.next();
    let multiple = cl_values.any(|h| trim(&h.value) != first.map_or(&[][..], |f| trim(&f.value)));
    let body_len = match first {
        _ if multiple => {
            defect.get_or_insert(Defect::MultipleContentLength);
            rest
        }
        None => match framing {
            Framing::Datagram => rest,
            Framing::Stream => 0,
        },
        Some(h) => match super::header::parse_scalar(&h.value) {
            Ok(n) if (n as usize) <= rest => n as usize,
            Ok(_) => {
                defect.get_or_insert(Defect::ContentLengthExceeds);
                rest
            }
            Err(_) => {
                defect.get_or_insert(Defect::ContentLength);
                rest
            }
        },
    };
    let body = buf.slice(pos..pos + body_len);
    let raw = buf.slice(..pos + body_len);
    Ok(Message::from_parts(start, headers, body, raw, defect))
}

fn parse_start_line(
    buf: &Bytes,
    ls: usize,
    le: usize,
    defect: &mut Option<Defect>,
) -> Result<StartLine, ParseError> {
    let line = &buf[ls..le];
    if line.starts_with(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let mut parts = line.splitn(3, |b| *b == b' ');
        let version = parts.next().ok_or(ParseError::StatusLine)?;
        let code = parts.next().ok_or(ParseError::StatusLine)?;
        let reason = parts.next().unwrap_or(&[]);
        if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) || code[0] == b'0' {
            return Err(ParseError::StatusLine);
        }
        let code = u16::from(code[0] - b'0') * 100
            + u16::from(code[1] - b'0') * 10
            + u16::from(code[2] - b'0');
        if !(100..700).contains(&code) {
            return Err(ParseError::StatusLine);
        }
        return Ok(StartLine::Response(StatusLine {
            version: buf.slice_ref(version),
            code,
            reason: buf.slice_ref(reason),
        }));
    }
    // Request-Line = Method SP Request-URI SP SIP-Version, single SPs (RFC 3261 §7.1).
    let method_end = line
        .iter()
        .position(|b| *b == b' ')
        .ok_or(ParseError::StartLine)?;
    let method = &line[..method_end];
    if method.is_empty() || !method.iter().all(|b| is_token(*b)) {
        return Err(ParseError::StartLine);
    }
    let rest = &line[method_end + 1..];
    let parts: Vec<&[u8]> = rest.split(|b| *b == b' ').collect();
    let (uri, version) = match parts.as_slice() {
        [uri, version] if !uri.is_empty() && is_version(version) => (*uri, *version),
        _ => {
            defect.get_or_insert(Defect::RequestLine);
            let uri = parts.iter().find(|p| !p.is_empty()).copied().unwrap_or(&[]);
            let version = parts
                .iter()
                .rev()
                .find(|p| !p.is_empty())
                .copied()
                .unwrap_or(&[]);
            (uri, version)
        }
    };
    Ok(StartLine::Request(RequestLine {
        method: Method::from_token(method),
        uri: buf.slice_ref(uri),
        version: buf.slice_ref(version),
    }))
}

/// `"SIP/" 1*DIGIT "." 1*DIGIT`, any version number (505 is decided above the parser).
fn is_version(v: &[u8]) -> bool {
    let Some(num) = v.strip_prefix(b"SIP/") else {
        return false;
    };
    let mut it = num.splitn(2, |b| *b == b'.');
    let major = it.next().unwrap_or(&[]);
    let minor = it.next().unwrap_or(&[]);
    !major.is_empty() && !minor.is_empty() && major.iter().chain(minor).all(u8::is_ascii_digit)
}
