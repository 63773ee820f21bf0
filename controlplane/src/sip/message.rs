//! [`Message`]: a parsed SIP request or response over the bytes it came in.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};

use super::header::{
    self, parse_scalar, parse_token_list, split_commas, AuthParams, BadValue, CSeq, ContactValue,
    ContentType, NameAddr, Via,
};
use super::method::Method;
use super::name::HeaderName;
use super::parse::{self, Defect, Framing, ParseError};
use super::uri::Uri;
use crate::config::MessageLimits;

/// A header field as it came: the name as written and the value with its continuation
/// lines (trimmed at both ends). `name` classifies it, compact forms included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    pub raw_name: Bytes,
    pub value: Bytes,
    /// Offset of the value in the message buffer (for folding continuation lines).
    pub(crate) value_start: usize,
}

impl Header {
    /// A header to add to a new message.
    pub fn new(name: HeaderName, value: impl Into<Bytes>) -> Header {
        Header {
            name,
            raw_name: Bytes::from_static(name.as_str().as_bytes()),
            value: value.into(),
            value_start: 0,
        }
    }

    /// Whether the header's raw name is `name` (case-insensitive), for unknown headers.
    pub fn is_named(&self, name: &str) -> bool {
        self.raw_name.eq_ignore_ascii_case(name.as_bytes())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine {
    pub method: Method,
    /// The Request-URI, raw; [`Message::request_uri`] parses it.
    pub uri: Bytes,
    pub version: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    pub version: Bytes,
    pub code: u16,
    pub reason: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request(RequestLine),
    Response(StatusLine),
}

/// A SIP message. Cheap to clone (reference-counted slices of one buffer).
#[derive(Debug, Clone)]
pub struct Message {
    start: StartLine,
    headers: Vec<Header>,
    body: Bytes,
    raw: Bytes,
    defect: Option<Defect>,
    /// `raw` is this message exactly as [`Message::to_bytes`] would print it: true for a
    /// message built with [`Message::new`] until something takes `&mut` access. (A parsed
    /// message is re-printed, so the printer stays the one that decides the wire form.)
    raw_is_printed: bool,
}

/// Equal when start line, headers, body, raw bytes and defect are; whether `raw` came from
/// the printer is bookkeeping, not content.
impl PartialEq for Message {
    fn eq(&self, other: &Message) -> bool {
        self.start == other.start
            && self.headers == other.headers
            && self.body == other.body
            && self.raw == other.raw
            && self.defect == other.defect
    }
}

impl Eq for Message {}

impl Message {
    /// Parse one UDP datagram. Octets after the Content-Length body are ignored.
    pub fn parse_datagram(buf: Bytes, limits: &MessageLimits) -> Result<Message, ParseError> {
        parse::parse(buf, limits, Framing::Datagram)
    }

    /// Parse exactly one message cut from a stream by [`super::framing::StreamFramer`].
    pub fn parse_framed(buf: Bytes, limits: &MessageLimits) -> Result<Message, ParseError> {
        parse::parse(buf, limits, Framing::Stream)
    }

    pub(crate) fn from_parts(
        start: StartLine,
        headers: Vec<Header>,
        body: Bytes,
        raw: Bytes,
        defect: Option<Defect>,
    ) -> Message {
        Message {
            start,
            headers,
            body,
            raw,
            defect,
            raw_is_printed: false,
        }
    }

    /// Build a new message from parts (the printer adds nothing: set Content-Length yourself
    /// or use [`super::ResponseBuilder`]).
    pub fn new(start: StartLine, headers: Vec<Header>, body: Bytes) -> Message {
        let mut m = Message {
            start,
            headers,
            body,
            raw: Bytes::new(),
            defect: None,
            raw_is_printed: false,
        };
        m.raw = m.to_bytes();
        m.raw_is_printed = true;
        m
    }

    pub fn start_line(&self) -> &StartLine {
        &self.start
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request(_))
    }

    pub fn request_line(&self) -> Option<&RequestLine> {
        match &self.start {
            StartLine::Request(r) => Some(r),
            StartLine::Response(_) => None,
        }
    }

    pub fn status_line(&self) -> Option<&StatusLine> {
        match &self.start {
            StartLine::Response(s) => Some(s),
            StartLine::Request(_) => None,
        }
    }

    /// The request method (None for responses; use [`Message::cseq`] there).
    pub fn method(&self) -> Option<&Method> {
        self.request_line().map(|r| &r.method)
    }

    /// The status code of a response.
    pub fn code(&self) -> Option<u16> {
        self.status_line().map(|s| s.code)
    }

    /// A structural fault found while parsing (the request deserves a 400).
    pub fn defect(&self) -> Option<Defect> {
        self.defect
    }

    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    pub fn headers_mut(&mut self) -> &mut Vec<Header> {
        self.raw_is_printed = false;
        &mut self.headers
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The bytes the message was parsed from (trailing datagram octets excluded).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Every header field with this name, in order.
    pub fn all(&self, name: HeaderName) -> impl Iterator<Item = &Header> {
        self.headers.iter().filter(move |h| h.name == name)
    }

    /// The first header field with this name.
    pub fn first(&self, name: HeaderName) -> Option<&Header> {
        self.headers.iter().find(|h| h.name == name)
    }

    /// The value of a header that must appear exactly once.
    pub fn single(&self, name: HeaderName) -> Result<&Bytes, HeaderError> {
        let mut it = self.all(name);
        let first = it.next().ok_or(HeaderError::Missing(name))?;
        if it.next().is_some() {
            return Err(HeaderError::Multiple(name));
        }
        Ok(&first.value)
    }

    /// All values of a comma-separated list header, over all its header fields.
    pub fn values(&self, name: HeaderName) -> Vec<Bytes> {
        self.all(name)
            .flat_map(|h| split_commas(&h.value))
            .collect()
    }

    pub fn request_uri(&self) -> Option<Result<Uri, super::UriError>> {
        self.request_line().map(|r| Uri::parse(&r.uri))
    }

    /// Every Via value, top first.
    pub fn vias(&self) -> Result<Vec<Via>, HeaderError> {
        self.values(HeaderName::Via)
            .iter()
            .map(|v| Via::parse(v).map_err(|_| HeaderError::Malformed(HeaderName::Via)))
            .collect()
    }

    /// The topmost Via value.
    pub fn top_via(&self) -> Result<Via, HeaderError> {
        let h = self
            .first(HeaderName::Via)
            .ok_or(HeaderError::Missing(HeaderName::Via))?;
        Via::parse(&header::first_value(&h.value))
            .map_err(|_| HeaderError::Malformed(HeaderName::Via))
    }

    pub fn from(&self) -> Result<NameAddr, HeaderError> {
        self.name_addr(HeaderName::From)
    }

    pub fn to(&self) -> Result<NameAddr, HeaderError> {
        self.name_addr(HeaderName::To)
    }

    fn name_addr(&self, name: HeaderName) -> Result<NameAddr, HeaderError> {
        NameAddr::parse(self.single(name)?).map_err(|_| HeaderError::Malformed(name))
    }

    pub fn call_id(&self) -> Result<&Bytes, HeaderError> {
        let v = self.single(HeaderName::CallId)?;
        if header::valid_call_id(v) {
            Ok(v)
        } else {
            Err(HeaderError::Malformed(HeaderName::CallId))
        }
    }

    pub fn cseq(&self) -> Result<CSeq, HeaderError> {
        CSeq::parse(self.single(HeaderName::CSeq)?)
            .map_err(|_| HeaderError::Malformed(HeaderName::CSeq))
    }

    /// Max-Forwards, `None` when absent. Values above 255 are malformed (RFC 3261 §20.22).
    pub fn max_forwards(&self) -> Result<Option<u8>, HeaderError> {
        self.optional_scalar(HeaderName::MaxForwards)?
            .map(|v| u8::try_from(v).map_err(|_| HeaderError::Malformed(HeaderName::MaxForwards)))
            .transpose()
    }

    pub fn content_length(&self) -> Result<Option<u32>, HeaderError> {
        self.optional_scalar(HeaderName::ContentLength)
    }

    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        self.optional_scalar(HeaderName::Expires)
    }

    fn optional_scalar(&self, name: HeaderName) -> Result<Option<u32>, HeaderError> {
        match self.single(name) {
            Ok(v) => parse_scalar(v)
                .map(Some)
                .map_err(|_| HeaderError::Malformed(name)),
            Err(HeaderError::Missing(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn content_type(&self) -> Result<Option<ContentType>, HeaderError> {
        match self.single(HeaderName::ContentType) {
            Ok(v) => ContentType::parse(v)
                .map(Some)
                .map_err(|_| HeaderError::Malformed(HeaderName::ContentType)),
            Err(HeaderError::Missing(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Contact values (`*` or addresses).
    pub fn contacts(&self) -> Result<Vec<ContactValue>, HeaderError> {
        self.values(HeaderName::Contact)
            .iter()
            .map(|v| {
                if &v[..] == b"*" {
                    Ok(ContactValue::Star)
                } else {
                    NameAddr::parse(v)
                        .map(|a| ContactValue::Addr(Box::new(a)))
                        .map_err(|_| HeaderError::Malformed(HeaderName::Contact))
                }
            })
            .collect()
    }

    /// Route or Record-Route values, in order.
    pub fn route_set(&self, name: HeaderName) -> Result<Vec<NameAddr>, HeaderError> {
        self.values(name)
            .iter()
            .map(|v| NameAddr::parse(v).map_err(|_| HeaderError::Malformed(name)))
            .collect()
    }

    /// Authorization-like headers (Authorization, Proxy-Authorization, WWW-Authenticate,
    /// Proxy-Authenticate): one per header field.
    pub fn auth(&self, name: HeaderName) -> Result<Vec<AuthParams>, HeaderError> {
        self.all(name)
            .map(|h| AuthParams::parse(&h.value).map_err(|_| HeaderError::Malformed(name)))
            .collect()
    }

    /// Option tags or tokens of a list header (Supported, Require, Proxy-Require, Allow,
    /// Unsupported), over all its header fields.
    pub fn tokens(&self, name: HeaderName) -> Result<Vec<Bytes>, HeaderError> {
        let mut out = Vec::new();
        for h in self.all(name) {
            out.extend(
                parse_token_list(&h.value).map_err(|_: BadValue| HeaderError::Malformed(name))?,
            );
        }
        Ok(out)
    }

    /// Print the message. Headers keep their names, order and values as they came; a parsed
    /// message prints back to bytes that parse to the same message.
    pub fn to_bytes(&self) -> Bytes {
        if self.raw_is_printed {
            // Printed when it was built and unchanged since: the same bytes, no second copy.
            return self.raw.clone();
        }
        let mut out = BytesMut::with_capacity(self.raw.len().max(256) + 64);
        self.write_to(&mut out);
        out.freeze()
    }

    pub fn write_to(&self, out: &mut BytesMut) {
        match &self.start {
            StartLine::Request(r) => {
                out.put_slice(r.method.as_bytes());
                out.put_u8(b' ');
                out.put_slice(&r.uri);
                out.put_u8(b' ');
                out.put_slice(&r.version);
            }
            StartLine::Response(s) => {
                out.put_slice(&s.version);
                let mut code = String::with_capacity(5);
                let _ = write!(code, " {} ", s.code);
                out.put_slice(code.as_bytes());
                out.put_slice(&s.reason);
            }
        }
        out.put_slice(b"\r\n");
        for h in &self.headers {
            out.put_slice(&h.raw_name);
            out.put_slice(b": ");
            out.put_slice(&h.value);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        out.put_slice(&self.body);
    }
}

/// A header that is missing, repeated where it must be single, or malformed. The endpoint
/// maps it to "400 Missing <name>", "400 Multiple <name>" or "400 Malformed <name>".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    #[error("Missing {}", .0.as_str())]
    Missing(HeaderName),
    #[error("Multiple {}", .0.as_str())]
    Multiple(HeaderName),
    #[error("Malformed {}", .0.as_str())]
    Malformed(HeaderName),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{Header, HeaderName, StatusLine};

    fn built() -> Message {
        Message::new(
            StartLine::Response(StatusLine {
                version: Bytes::from_static(b"SIP/2.0"),
                code: 200,
                reason: Bytes::from_static(b"OK"),
            }),
            vec![
                Header::new(HeaderName::CallId, Bytes::from_static(b"a@b")),
                Header::new(HeaderName::ContentLength, Bytes::from_static(b"0")),
            ],
            Bytes::new(),
        )
    }

    #[test]
    fn a_built_message_prints_once_and_again_after_a_change() {
        let mut m = built();
        let first = m.to_bytes();
        assert_eq!(first, *m.raw(), "the bytes printed when it was built");
        assert_eq!(
            first.as_ptr(),
            m.to_bytes().as_ptr(),
            "not printed a second time"
        );
        m.headers_mut()[0].value = Bytes::from_static(b"changed@b");
        let again = m.to_bytes();
        assert!(again.windows(9).any(|w| w == b"changed@b"), "{again:?}");
    }

    #[test]
    fn equality_ignores_whether_raw_is_still_the_printed_form() {
        let m = built();
        let mut touched = m.clone();
        let _ = touched.headers_mut();
        assert_eq!(touched, m);
        assert_eq!(touched.to_bytes(), m.to_bytes());
    }
}
