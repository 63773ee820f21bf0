//! Typed header values, parsed on demand from raw header bytes (RFC 3261 §20, §25.1).

use std::str;

use bytes::Bytes;

use super::method::Method;
use super::scan::{is_token, is_word, trim, Scanner};
use super::uri::{Host, Uri};
use super::Transport;

/// A `name[=value]` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: Bytes,
    pub value: Option<Bytes>,
}

/// Parameters in order; names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<Param>);

impl Params {
    pub fn push(&mut self, p: Param) {
        self.0.push(p);
    }

    /// `Some(Some(v))` for `name=v`, `Some(None)` for a flag, `None` when absent.
    pub fn get(&self, name: &str) -> Option<Option<&Bytes>> {
        self.0
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|p| p.value.as_ref())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Param> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why a header value did not parse; the endpoint turns it into "400 Malformed <Header>".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadValue;

type R<T> = Result<T, BadValue>;

/// Split a header value at commas that are outside quotes and `<>` (RFC 3261 §7.3.1).
pub fn split_commas(value: &Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut angle, mut i) = (0usize, false, false, 0usize);
    while i < value.len() {
        match value[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => {
                out.push(slice_trimmed(value, start, i));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(slice_trimmed(value, start, value.len().max(start)));
    out
}

/// The first value of a comma-separated header, without splitting the rest.
pub(crate) fn first_value(value: &Bytes) -> Bytes {
    let (mut quoted, mut angle, mut i) = (false, false, 0usize);
    while i < value.len() {
        match value[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => return slice_trimmed(value, 0, i),
            _ => {}
        }
        i += 1;
    }
    slice_trimmed(value, 0, value.len())
}

fn slice_trimmed(value: &Bytes, start: usize, end: usize) -> Bytes {
    let end = end.min(value.len());
    value.slice_ref(trim(&value[start..end]))
}

/// Parse `*( SEMI generic-param )` from the scanner, LWS allowed around `;` and `=`.
/// The scanner must run over `src` itself, so its positions are offsets into `src`.
fn parse_params(src: &Bytes, s: &mut Scanner<'_>) -> R<Params> {
    let mut params = Params::default();
    while s.eat(b';') {
        let name = s.token().ok_or(BadValue)?;
        let value = if s.eat(b'=') {
            s.skip_lws();
            if let Some(q) = s.quoted() {
                Some(src.slice_ref(q))
            } else if s.peek() == Some(b'[') {
                // An IPv6 reference as a value (`received=[2001:db8::9:255]`, RFC 5118 §4.5).
                let start = s.pos();
                s.take_while(|b| b != b']');
                if s.peek() != Some(b']') {
                    return Err(BadValue);
                }
                s.advance(1);
                Some(src.slice(start..s.pos()))
            } else {
                let v = s.take_while(|b| is_token(b) || b == b':' || b == b'[' || b == b']');
                if v.is_empty() {
                    return Err(BadValue);
                }
                Some(src.slice_ref(v))
            }
        } else {
            None
        };
        params.push(Param {
            name: src.slice_ref(name),
            value,
        });
    }
    Ok(params)
}

/// One Via value (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// The transport token as sent (`UDP`, `TCP`, `TLS`, `SCTP`, or anything else).
    pub transport: Bytes,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    pub fn parse(value: &Bytes) -> R<Via> {
        let mut s = Scanner::new(value);
        let proto = s.token().ok_or(BadValue)?;
        if !proto.eq_ignore_ascii_case(b"SIP") || !s.eat(b'/') {
            return Err(BadValue);
        }
        let version = s.token().ok_or(BadValue)?;
        if version != b"2.0" || !s.eat(b'/') {
            return Err(BadValue);
        }
        let transport = value.slice_ref(s.token().ok_or(BadValue)?);
        if !s.skip_lws() {
            return Err(BadValue);
        }
        let (host, port) = parse_hostport(value, &mut s)?;
        let params = parse_params(value, &mut s)?;
        s.skip_lws();
        if !s.is_empty() {
            return Err(BadValue);
        }
        Ok(Via {
            transport,
            host,
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&Bytes> {
        self.params.get("branch").flatten()
    }

    /// `Some(None)` for a bare `rport`, `Some(Some(port))` once filled in.
    pub fn rport(&self) -> Option<Option<&Bytes>> {
        self.params.get("rport")
    }

    pub fn received(&self) -> Option<Host> {
        let raw = self.params.get("received").flatten()?;
        Host::parse_lenient(raw).ok()
    }

    pub fn known_transport(&self) -> Option<Transport> {
        let t = &self.transport;
        if t.eq_ignore_ascii_case(b"UDP") {
            Some(Transport::Udp)
        } else if t.eq_ignore_ascii_case(b"TCP") {
            Some(Transport::Tcp)
        } else if t.eq_ignore_ascii_case(b"TLS") {
            Some(Transport::Tls)
        } else {
            None
        }
    }

    /// An RFC 3261 branch (magic cookie `z9hG4bK` followed by something).
    pub fn rfc3261_branch(&self) -> Option<&Bytes> {
        self.branch()
            .filter(|b| b.len() > 7 && b.starts_with(b"z9hG4bK"))
    }
}

fn parse_hostport(src: &Bytes, s: &mut Scanner<'_>) -> R<(Host, Option<u16>)> {
    s.skip_lws();
    let host_raw = if s.peek() == Some(b'[') {
        let h = s.take_while(|b| b != b']');
        if s.peek() != Some(b']') {
            return Err(BadValue);
        }
        s.advance(1);
        let start = s.pos() - h.len() - 1;
        src.slice(start..s.pos())
    } else {
        src.slice_ref(s.take_while(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
    };
    let host = Host::parse(&host_raw).map_err(|_| BadValue)?;
    let port = if s.eat(b':') {
        s.skip_lws();
        let p = s.take_while(|b| b.is_ascii_digit());
        if p.is_empty() || p.len() > 5 {
            return Err(BadValue);
        }
        Some(
            str::from_utf8(p)
                .ok()
                .and_then(|p| p.parse().ok())
                .ok_or(BadValue)?,
        )
    } else {
        None
    };
    Ok((host, port))
}

/// A name-addr or addr-spec with header parameters: From, To, Contact, Route, Record-Route,
/// Refer-To (RFC 3261 §20.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name as written (quotes included), if any.
    pub display: Option<Bytes>,
    pub uri_raw: Bytes,
    pub uri: Uri,
    /// Header parameters (`tag`, `expires`, `q` …), not URI parameters.
    pub params: Params,
}

impl NameAddr {
    pub fn parse(value: &Bytes) -> R<NameAddr> {
        let mut s = Scanner::new(value);
        s.skip_lws();
        let mut display = None;
        let uri_raw;
        let is_name_addr = {
            // A name-addr has '<' before any ';' that is outside quotes.
            let mut probe = s.clone();
            probe.quoted().is_some() || {
                let mut q = false;
                let mut found = false;
                for &b in s.rest() {
                    match b {
                        b'"' => q = !q,
                        b'<' if !q => {
                            found = true;
                            break;
                        }
                        b';' | b',' if !q => break,
                        _ => {}
                    }
                }
                found
            }
        };
        if is_name_addr {
            let start = s.pos();
            if let Some(q) = s.quoted() {
                display = Some(value.slice_ref(q));
            } else {
                // *(token LWS): only token characters may stand before '<' (RFC 4475 §3.1.2.15).
                while s.token().is_some() {}
                let d = trim(&value[start..s.pos()]);
                if !d.is_empty() {
                    display = Some(value.slice_ref(d));
                }
            }
            s.skip_lws();
            if s.peek() != Some(b'<') {
                return Err(BadValue);
            }
            s.advance(1);
            let inner = s.take_while(|b| b != b'>');
            if s.peek() != Some(b'>') {
                return Err(BadValue);
            }
            s.advance(1);
            uri_raw = value.slice_ref(inner);
        } else {
            // addr-spec: no ',' '?' ';' belong to it outside <> (RFC 3261 §20.10), except the
            // user part may hold ';' — parameters start after the host.
            let rest = s.rest();
            let end = addr_spec_end(rest);
            uri_raw = value.slice_ref(&rest[..end]);
            if uri_raw.contains(&b'?') {
                return Err(BadValue);
            }
            s.advance(end);
        }
        let uri = Uri::parse(&uri_raw).map_err(|_| BadValue)?;
        let params = parse_params(value, &mut s)?;
        s.skip_lws();
        if !s.is_empty() {
            return Err(BadValue);
        }
        Ok(NameAddr {
            display,
            uri_raw,
            uri,
            params,
        })
    }

    pub fn tag(&self) -> Option<&Bytes> {
        self.params.get("tag").flatten()
    }
}

/// End of an addr-spec: the first ';' after the '@' (or after the scheme when there is no
/// user part), or the first white space.
fn addr_spec_end(rest: &[u8]) -> usize {
    let ws = rest
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    let s = &rest[..ws];
    let from = memchr::memchr(b'@', s).unwrap_or(0);
    s[from..]
        .iter()
        .position(|b| *b == b';')
        .map_or(ws, |p| from + p)
}

/// One Contact value: `*` or an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactValue {
    Star,
    Addr(Box<NameAddr>),
}

/// CSeq: sequence number and method (RFC 3261 §20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(value: &Bytes) -> R<CSeq> {
        let mut s = Scanner::new(value);
        s.skip_lws();
        let digits = s.take_while(|b| b.is_ascii_digit());
        let seq = parse_u32(digits)?;
        if !s.skip_lws() {
            return Err(BadValue);
        }
        let method = s.token().ok_or(BadValue)?;
        s.skip_lws();
        if !s.is_empty() {
            return Err(BadValue);
        }
        Ok(CSeq {
            seq,
            method: Method::from_token(method),
        })
    }
}

/// Parse 1*DIGIT into a u32, rejecting overflow (RFC 4475 §3.1.2.4). Leading zeros are fine.
pub(crate) fn parse_u32(digits: &[u8]) -> R<u32> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(BadValue);
    }
    let mut v: u64 = 0;
    for d in digits {
        v = v * 10 + u64::from(d - b'0');
        if v > u64::from(u32::MAX) {
            return Err(BadValue);
        }
    }
    Ok(v as u32)
}

/// A scalar header value: trimmed digits only.
pub(crate) fn parse_scalar(value: &[u8]) -> R<u32> {
    parse_u32(trim(value))
}

/// Call-ID: `word ["@" word]` (RFC 3261 §20.8).
pub(crate) fn valid_call_id(value: &[u8]) -> bool {
    let v = trim(value);
    if v.is_empty() {
        return false;
    }
    let mut parts = v.splitn(2, |b| *b == b'@');
    let ok = |w: Option<&[u8]>| w.is_some_and(|w| !w.is_empty() && w.iter().all(|b| is_word(*b)));
    let first = parts.next();
    let second = parts.next();
    ok(first) && (second.is_none() || ok(second))
}

/// `type/subtype *(; param)` (RFC 3261 §20.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    pub mime_type: Bytes,
    pub subtype: Bytes,
    pub params: Params,
}

impl ContentType {
    pub fn parse(value: &Bytes) -> R<ContentType> {
        let mut s = Scanner::new(value);
        let t = s.token().ok_or(BadValue)?;
        if !s.eat(b'/') {
            return Err(BadValue);
        }
        let st = s.token().ok_or(BadValue)?;
        let params = parse_params(value, &mut s)?;
        s.skip_lws();
        if !s.is_empty() {
            return Err(BadValue);
        }
        Ok(ContentType {
            mime_type: value.slice_ref(t),
            subtype: value.slice_ref(st),
            params,
        })
    }

    pub fn is(&self, mime_type: &str, subtype: &str) -> bool {
        self.mime_type.eq_ignore_ascii_case(mime_type.as_bytes())
            && self.subtype.eq_ignore_ascii_case(subtype.as_bytes())
    }
}

/// Authorization / WWW-Authenticate / Proxy-* credentials and challenges (RFC 3261 §20.7):
/// a scheme and comma-separated `name=value` pairs (values may be quoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParams {
    pub scheme: Bytes,
    pub params: Params,
}

impl AuthParams {
    pub fn parse(value: &Bytes) -> R<AuthParams> {
        let mut s = Scanner::new(value);
        let scheme = value.slice_ref(s.token().ok_or(BadValue)?);
        let mut params = Params::default();
        while let Some(n) = s.token() {
            let name = value.slice_ref(n);
            if !s.eat(b'=') {
                return Err(BadValue);
            }
            let v = if let Some(q) = s.quoted() {
                q
            } else {
                s.skip_lws();
                let v = s.take_while(|b| is_token(b) || b == b'/' || b == b':' || b == b'=');
                if v.is_empty() {
                    return Err(BadValue);
                }
                v
            };
            params.push(Param {
                name,
                value: Some(value.slice_ref(v)),
            });
            if !s.eat(b',') {
                break;
            }
        }
        s.skip_lws();
        if !s.is_empty() {
            return Err(BadValue);
        }
        Ok(AuthParams { scheme, params })
    }

    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case(b"Digest")
    }

    /// A parameter's value with surrounding quotes removed (escapes left as they are).
    pub fn unquoted(&self, name: &str) -> Option<&[u8]> {
        let v = self.params.get(name).flatten()?;
        Some(
            v.strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(v),
        )
    }
}

/// Comma-separated option tags or tokens (Supported, Require, Allow, Unsupported …).
pub(crate) fn parse_token_list(value: &Bytes) -> R<Vec<Bytes>> {
    let mut out = Vec::new();
    for item in split_commas(value) {
        if item.is_empty() {
            continue;
        }
        if !item.iter().all(|b| is_token(*b)) {
            return Err(BadValue);
        }
        out.push(item);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn via_with_lws_everywhere() {
        let v = Via::parse(&b(
            "SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw",
        ))
        .unwrap();
        assert_eq!(&v.transport[..], b"UDP");
        assert_eq!(v.branch().map(|b| &b[..]), Some(&b"390skdjuw"[..]));
        let v = Via::parse(&b(
            "SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8",
        ))
        .unwrap();
        assert_eq!(
            v.rfc3261_branch().map(|b| &b[..]),
            Some(&b"z9hG4bK9ikj8"[..])
        );
    }

    #[test]
    fn via_ipv6_received() {
        let v = Via::parse(&b(
            "SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3",
        ))
        .unwrap();
        assert_eq!(
            v.received(),
            Some(Host::Ip("2001:db8::9:255".parse().unwrap()))
        );
        let v = Via::parse(&b(
            "SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3",
        ))
        .unwrap();
        assert_eq!(
            v.received(),
            Some(Host::Ip("2001:db8::9:255".parse().unwrap()))
        );
        assert!(v.branch().is_some());
    }

    #[test]
    fn via_rejects_stray_separators() {
        assert!(Via::parse(&b("SIP/2.0/UDP 192.0.2.15;;")).is_err());
        assert!(Via::parse(&b("SIP/2.0/UDP")).is_err());
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(&b(
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
        ))
        .unwrap();
        assert_eq!(n.tag().map(|t| &t[..]), Some(&b"98asjd8"[..]));
        let n = NameAddr::parse(&b("caller<sip:caller@example.com>;tag=323")).unwrap();
        assert_eq!(n.display.as_deref(), Some(&b"caller"[..]));
        let n = NameAddr::parse(&b("sip:caller@example.com;unknownparam")).unwrap();
        assert!(n.params.get("unknownparam").is_some());
        let n = NameAddr::parse(&b("<sip:caller@example.com;unknownparam>")).unwrap();
        assert!(n.params.is_empty());
        assert!(NameAddr::parse(&b("Bell, Alexander <sip:a.g.bell@example.com>;tag=43")).is_err());
        assert!(NameAddr::parse(&b("\"Mr. J. User <sip:j.user@example.com>")).is_err());
        assert!(NameAddr::parse(&b("\"Watson, Thomas\" < sip:t.watson@example.org >")).is_err());
        assert!(
            NameAddr::parse(&b("sip:user@example.com?Route=%3Csip:sip.example.com%3E")).is_err()
        );
        assert!(NameAddr::parse(&b("\"Joe\" <sip:joe@example.org>;;;;")).is_err());
    }

    #[test]
    fn cseq_bounds() {
        assert_eq!(CSeq::parse(&b("0009\r\n  INVITE")).unwrap().seq, 9);
        assert!(CSeq::parse(&b("36893488147419103232 REGISTER")).is_err());
        assert!(CSeq::parse(&b("4294967295 REGISTER")).is_ok());
        assert!(CSeq::parse(&b("1")).is_err());
    }

    #[test]
    fn commas_respect_quotes_and_angles() {
        let parts = split_commas(&b("\"a, b\" <sip:x@y>, <sip:z@w;p=1,2>"));
        assert_eq!(parts.len(), 2);
    }

    #[test]
    fn auth_params() {
        let a = AuthParams::parse(&b("Digest username=\"alice\", realm=\"x\", nonce=\"n\", uri=\"sip:x\", response=\"r\", algorithm=MD5, qop=auth, nc=00000001")).unwrap();
        assert!(a.is_digest());
        assert_eq!(a.unquoted("username"), Some(&b"alice"[..]));
        assert_eq!(a.unquoted("nc"), Some(&b"00000001"[..]));
    }
}
