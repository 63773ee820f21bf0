//! Header field names, with RFC 3261 §7.3.3 compact forms and case-insensitive matching.

/// A header name voxgate knows, or `Other` (compare the raw name for those).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderName {
    Accept,
    Allow,
    AllowEvents,
    Authorization,
    CallId,
    Contact,
    ContentEncoding,
    ContentLength,
    ContentType,
    CSeq,
    Date,
    Event,
    Expires,
    From,
    MaxForwards,
    MinExpires,
    ProxyAuthenticate,
    ProxyAuthorization,
    ProxyRequire,
    RecordRoute,
    ReferTo,
    ReferredBy,
    Require,
    RetryAfter,
    Route,
    Server,
    SessionExpires,
    Subject,
    Supported,
    To,
    Unsupported,
    UserAgent,
    Via,
    Warning,
    WwwAuthenticate,
    Other,
}

impl HeaderName {
    /// Classify a raw header name (case-insensitive; compact forms map to full ones).
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        if name.len() == 1 {
            return match name[0].to_ascii_lowercase() {
                b'i' => HeaderName::CallId,
                b'm' => HeaderName::Contact,
                b'e' => HeaderName::ContentEncoding,
                b'l' => HeaderName::ContentLength,
                b'c' => HeaderName::ContentType,
                b'f' => HeaderName::From,
                b's' => HeaderName::Subject,
                b'k' => HeaderName::Supported,
                b't' => HeaderName::To,
                b'v' => HeaderName::Via,
                b'o' => HeaderName::Event,
                b'r' => HeaderName::ReferTo,
                b'b' => HeaderName::ReferredBy,
                b'u' => HeaderName::AllowEvents,
                b'x' => HeaderName::SessionExpires,
                _ => HeaderName::Other,
            };
        }
        const TABLE: &[(&str, HeaderName)] = &[
            ("accept", HeaderName::Accept),
            ("allow", HeaderName::Allow),
            ("allow-events", HeaderName::AllowEvents),
            ("authorization", HeaderName::Authorization),
            ("call-id", HeaderName::CallId),
            ("contact", HeaderName::Contact),
            ("content-encoding", HeaderName::ContentEncoding),
            ("content-length", HeaderName::ContentLength),
            ("content-type", HeaderName::ContentType),
            ("cseq", HeaderName::CSeq),
            ("date", HeaderName::Date),
            ("event", HeaderName::Event),
            ("expires", HeaderName::Expires),
            ("from", HeaderName::From),
            ("max-forwards", HeaderName::MaxForwards),
            ("min-expires", HeaderName::MinExpires),
            ("proxy-authenticate", HeaderName::ProxyAuthenticate),
            ("proxy-authorization", HeaderName::ProxyAuthorization),
            ("proxy-require", HeaderName::ProxyRequire),
            ("record-route", HeaderName::RecordRoute),
            ("refer-to", HeaderName::ReferTo),
            ("referred-by", HeaderName::ReferredBy),
            ("require", HeaderName::Require),
            ("retry-after", HeaderName::RetryAfter),
            ("route", HeaderName::Route),
            ("server", HeaderName::Server),
            ("session-expires", HeaderName::SessionExpires),
            ("subject", HeaderName::Subject),
            ("supported", HeaderName::Supported),
            ("to", HeaderName::To),
            ("unsupported", HeaderName::Unsupported),
            ("user-agent", HeaderName::UserAgent),
            ("via", HeaderName::Via),
            ("warning", HeaderName::Warning),
            ("www-authenticate", HeaderName::WwwAuthenticate),
        ];
        TABLE
            .iter()
            .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
            .map_or(HeaderName::Other, |(_, h)| *h)
    }

    /// The canonical full name, as voxgate prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            HeaderName::Accept => "Accept",
            HeaderName::Allow => "Allow",
            HeaderName::AllowEvents => "Allow-Events",
            HeaderName::Authorization => "Authorization",
            HeaderName::CallId => "Call-ID",
            HeaderName::Contact => "Contact",
            HeaderName::ContentEncoding => "Content-Encoding",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::ContentType => "Content-Type",
            HeaderName::CSeq => "CSeq",
            HeaderName::Date => "Date",
            HeaderName::Event => "Event",
            HeaderName::Expires => "Expires",
            HeaderName::From => "From",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::MinExpires => "Min-Expires",
            HeaderName::ProxyAuthenticate => "Proxy-Authenticate",
            HeaderName::ProxyAuthorization => "Proxy-Authorization",
            HeaderName::ProxyRequire => "Proxy-Require",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::ReferTo => "Refer-To",
            HeaderName::ReferredBy => "Referred-By",
            HeaderName::Require => "Require",
            HeaderName::RetryAfter => "Retry-After",
            HeaderName::Route => "Route",
            HeaderName::Server => "Server",
            HeaderName::SessionExpires => "Session-Expires",
            HeaderName::Subject => "Subject",
            HeaderName::Supported => "Supported",
            HeaderName::To => "To",
            HeaderName::Unsupported => "Unsupported",
            HeaderName::UserAgent => "User-Agent",
            HeaderName::Via => "Via",
            HeaderName::Warning => "Warning",
            HeaderName::WwwAuthenticate => "WWW-Authenticate",
            HeaderName::Other => "X-Unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_insensitive() {
        assert_eq!(HeaderName::from_bytes(b"v"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"L"), HeaderName::ContentLength);
        assert_eq!(
            HeaderName::from_bytes(b"MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(
            HeaderName::from_bytes(b"NewFangledHeader"),
            HeaderName::Other
        );
    }
}
