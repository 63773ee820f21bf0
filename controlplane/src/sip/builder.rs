//! Building responses to a request (RFC 3261 §8.2.6).

use bytes::Bytes;

use super::message::{Header, Message, StartLine, StatusLine};
use super::name::HeaderName;

/// Builds a response that copies Via, From, To, Call-ID and CSeq from the request, adds a
/// To tag when the request had none, and sets Content-Length.
#[derive(Debug)]
pub struct ResponseBuilder {
    code: u16,
    reason: Bytes,
    headers: Vec<Header>,
    body: Bytes,
}

impl ResponseBuilder {
    /// `to_tag` is added to To unless the request's To already has a tag (or is unparseable,
    /// in which case it is copied as it came: a 400 for a broken To still goes out).
    pub fn new(
        request: &Message,
        code: u16,
        reason: impl Into<Bytes>,
        to_tag: Option<&str>,
    ) -> Self {
        let mut headers = Vec::with_capacity(8);
        for h in request.headers() {
            match h.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    headers.push(Header::new(h.name, h.value.clone()));
                }
                HeaderName::To => {
                    let needs_tag =
                        to_tag.is_some() && matches!(request.to(), Ok(t) if t.tag().is_none());
                    let value = match (needs_tag, to_tag) {
                        (true, Some(tag)) => {
                            let mut v = Vec::with_capacity(h.value.len() + tag.len() + 5);
                            v.extend_from_slice(&h.value);
                            v.extend_from_slice(b";tag=");
                            v.extend_from_slice(tag.as_bytes());
                            Bytes::from(v)
                        }
                        _ => h.value.clone(),
                    };
                    headers.push(Header::new(HeaderName::To, value));
                }
                _ => {}
            }
        }
        Self {
            code,
            reason: reason.into(),
            headers,
            body: Bytes::new(),
        }
    }

    pub fn header(mut self, name: HeaderName, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    /// An extension header by name.
    pub fn raw_header(mut self, name: &'static str, value: impl Into<Bytes>) -> Self {
        let mut h = Header::new(HeaderName::Other, value);
        h.raw_name = Bytes::from_static(name.as_bytes());
        self.headers.push(h);
        self
    }

    pub fn body(mut self, content_type: &'static str, body: Bytes) -> Self {
        self.headers.push(Header::new(
            HeaderName::ContentType,
            Bytes::from_static(content_type.as_bytes()),
        ));
        self.body = body;
        self
    }

    pub fn build(mut self) -> Message {
        self.headers.push(Header::new(
            HeaderName::ContentLength,
            Bytes::from(self.body.len().to_string()),
        ));
        let start = StartLine::Response(StatusLine {
            version: Bytes::from_static(b"SIP/2.0"),
            code: self.code,
            reason: self.reason,
        });
        Message::new(start, self.headers, self.body)
    }
}

/// The RFC 3261 §21 reason phrase of a status code voxgate sends.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        603 => "Decline",
        _ => "Unknown",
    }
}
