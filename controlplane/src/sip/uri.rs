//! SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), with RFC 5118 IPv6 references.
//!
//! A parsed URI keeps slices of its raw bytes; `%HH` escapes stay as they are until
//! [`unescape`] is asked for, so nothing is ever unescaped twice (RFC 4475 §3.1.1.3).

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;

use super::header::{Param, Params};

/// Why a URI did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    #[error("missing or invalid URI scheme")]
    Scheme,
    #[error("invalid host")]
    Host,
    #[error("invalid port")]
    Port,
    #[error("invalid character in URI")]
    Character,
    #[error("invalid %-escape in URI")]
    Escape,
    #[error("empty URI")]
    Empty,
}

/// A host: a domain name, an IPv4 address, or a bracketed IPv6 reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Domain(Bytes),
    Ip(IpAddr),
}

impl Host {
    /// Parse a host as it appears in a URI or Via sent-by (IPv6 in brackets).
    pub fn parse(raw: &Bytes) -> Result<Host, UriError> {
        if let Some(inner) = raw.strip_prefix(b"[") {
            let inner = inner.strip_suffix(b"]").ok_or(UriError::Host)?;
            return parse_ipv6(inner).map(|a| Host::Ip(IpAddr::V6(a)));
        }
        Self::parse_unbracketed(raw)
    }

    /// A host where IPv6 may come without brackets (the Via `received` parameter,
    /// RFC 5118 §4.5).
    pub fn parse_lenient(raw: &Bytes) -> Result<Host, UriError> {
        if raw.starts_with(b"[") {
            return Self::parse(raw);
        }
        if raw.contains(&b':') {
            return parse_ipv6(raw).map(|a| Host::Ip(IpAddr::V6(a)));
        }
        Self::parse_unbracketed(raw)
    }

    fn parse_unbracketed(raw: &Bytes) -> Result<Host, UriError> {
        if raw.is_empty() {
            return Err(UriError::Host);
        }
        // Only a host that starts with a digit can be an IPv4 address (a domain label may
        // too, so a failed parse falls through).
        if raw[0].is_ascii_digit() {
            let v4 = std::str::from_utf8(raw)
                .ok()
                .and_then(|s| s.parse::<Ipv4Addr>().ok());
            if let Some(v4) = v4 {
                return Ok(Host::Ip(IpAddr::V4(v4)));
            }
        }
        let ok = raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.')
            && raw[0] != b'.'
            && raw[0] != b'-';
        if ok {
            Ok(Host::Domain(raw.clone()))
        } else {
            Err(UriError::Host)
        }
    }

    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(ip) => Some(*ip),
            Host::Domain(_) => None,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(&String::from_utf8_lossy(d)),
            Host::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// RFC 5118 §4.10: RFC 3261's ABNF allows `2001:db8:::192.0.2.1`; "an implementation must
/// tolerate both" constructs, so a `:::` before an embedded IPv4 address reads as `::`.
fn parse_ipv6(raw: &[u8]) -> Result<Ipv6Addr, UriError> {
    let s = std::str::from_utf8(raw).map_err(|_| UriError::Host)?;
    if let Ok(a) = s.parse::<Ipv6Addr>() {
        return Ok(a);
    }
    if s.contains(":::") && s.contains('.') {
        if let Ok(a) = s.replacen(":::", "::", 1).parse::<Ipv6Addr>() {
            return Ok(a);
        }
    }
    Err(UriError::Host)
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub secure: bool,
    /// The user part, still escaped.
    pub user: Option<Bytes>,
    pub password: Option<Bytes>,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
    /// The `?` headers component, raw (never turned into real headers).
    pub headers: Option<Bytes>,
}

impl SipUri {
    /// The value of a URI parameter (`transport`, `lr`, `maddr` …); `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&Bytes>> {
        self.params.get(name)
    }
}

/// A `tel:` URI (RFC 3966).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri {
    /// The number as written, visual separators included.
    pub number: Bytes,
    pub params: Params,
}

/// Any URI found in a Request-URI or a name-addr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    Sip(SipUri),
    Tel(TelUri),
    /// Any other scheme (`isbn:`, `http:`, `soap.beep:` …): kept opaque.
    Other {
        scheme: Bytes,
        rest: Bytes,
    },
}

impl Uri {
    /// Parse a URI; `raw` must be exactly the URI (no surrounding white space or `<>`).
    pub fn parse(raw: &Bytes) -> Result<Uri, UriError> {
        if raw.is_empty() {
            return Err(UriError::Empty);
        }
        if raw
            .iter()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b"<>\"".contains(b))
        {
            return Err(UriError::Character);
        }
        let colon = memchr::memchr(b':', raw).ok_or(UriError::Scheme)?;
        let scheme = &raw[..colon];
        let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
            && scheme
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b));
        if !scheme_ok {
            return Err(UriError::Scheme);
        }
        let rest = raw.slice(colon + 1..);
        if scheme.eq_ignore_ascii_case(b"sip") {
            parse_sip(rest, false).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case(b"sips") {
            parse_sip(rest, true).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case(b"tel") {
            parse_tel(rest).map(Uri::Tel)
        } else {
            Ok(Uri::Other {
                scheme: raw.slice(..colon),
                rest,
            })
        }
    }

    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(s) => Some(s),
            _ => None,
        }
    }
}

fn check_escapes(s: &[u8]) -> Result<(), UriError> {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let ok =
                s.len() > i + 2 && s[i + 1].is_ascii_hexdigit() && s[i + 2].is_ascii_hexdigit();
            if !ok {
                return Err(UriError::Escape);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

fn parse_sip(rest: Bytes, secure: bool) -> Result<SipUri, UriError> {
    let (user, password, hostpart) = match memchr::memchr(b'@', &rest) {
        Some(at) => {
            let userinfo = rest.slice(..at);
            check_escapes(&userinfo)?;
            let (user, password) = match memchr::memchr(b':', &userinfo) {
                Some(c) => (userinfo.slice(..c), Some(userinfo.slice(c + 1..))),
                None => (userinfo, None),
            };
            if user.is_empty() {
                return Err(UriError::Character);
            }
            (Some(user), password, rest.slice(at + 1..))
        }
        None => (None, None, rest),
    };
    // hostport ends at the first ';' (parameters) or '?' (headers).
    let end = hostpart
        .iter()
        .position(|b| *b == b';' || *b == b'?')
        .unwrap_or(hostpart.len());
    let hostport = &hostpart[..end];
    let (host_raw, port_raw) = if hostport.starts_with(b"[") {
        let close = memchr::memchr(b']', hostport).ok_or(UriError::Host)?;
        let after = &hostport[close + 1..];
        match after {
            [] => (&hostport[..=close], None),
            [b':', port @ ..] => (&hostport[..=close], Some(port)),
            _ => return Err(UriError::Host),
        }
    } else {
        match memchr::memchr(b':', hostport) {
            Some(c) => (&hostport[..c], Some(&hostport[c + 1..])),
            None => (hostport, None),
        }
    };
    let host = Host::parse(&hostpart.slice_ref(host_raw))?;
    let port = port_raw.map(parse_port).transpose()?;
    let tail = hostpart.slice(end..);
    let (params_raw, headers) = match memchr::memchr(b'?', &tail) {
        Some(q) => (tail.slice(..q), Some(tail.slice(q + 1..))),
        None => (tail, None),
    };
    check_escapes(&params_raw)?;
    if let Some(h) = &headers {
        check_escapes(h)?;
    }
    let params = parse_uri_params(&params_raw)?;
    Ok(SipUri {
        secure,
        user,
        password,
        host,
        port,
        params,
        headers,
    })
}

fn parse_port(raw: &[u8]) -> Result<u16, UriError> {
    if raw.is_empty() || raw.len() > 5 || !raw.iter().all(u8::is_ascii_digit) {
        return Err(UriError::Port);
    }
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(UriError::Port)
}

/// `;name[=value]` pairs of a URI (the raw text starts with `;` or is empty).
fn parse_uri_params(raw: &Bytes) -> Result<Params, UriError> {
    let mut params = Params::default();
    if raw.is_empty() {
        return Ok(params);
    }
    for piece in raw[1..].split(|b| *b == b';') {
        if piece.is_empty() {
            return Err(UriError::Character);
        }
        let piece = raw.slice_ref(piece);
        let param = match memchr::memchr(b'=', &piece) {
            Some(eq) => Param {
                name: piece.slice(..eq),
                value: Some(piece.slice(eq + 1..)),
            },
            None => Param {
                name: piece,
                value: None,
            },
        };
        if param.name.is_empty() {
            return Err(UriError::Character);
        }
        params.push(param);
    }
    Ok(params)
}

fn parse_tel(rest: Bytes) -> Result<TelUri, UriError> {
    let end = memchr::memchr(b';', &rest).unwrap_or(rest.len());
    let number = rest.slice(..end);
    let ok = !number.is_empty()
        && number
            .iter()
            .all(|b| b.is_ascii_hexdigit() || b"+-.()*#".contains(b));
    if !ok {
        return Err(UriError::Character);
    }
    let params = parse_uri_params(&rest.slice(end..))?;
    Ok(TelUri { number, params })
}

/// Decode `%HH` escapes once. Invalid escapes are left as they are.
pub fn unescape(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.contains(&b'%') {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri {
        match Uri::parse(&Bytes::copy_from_slice(s.as_bytes())).unwrap() {
            Uri::Sip(u) => u,
            other => panic!("not sip: {other:?}"),
        }
    }

    #[test]
    fn escaped_user_unescapes_once() {
        let u = sip("sip:sips%3Auser%40example.com@example.net");
        assert_eq!(
            &*unescape(u.user.as_ref().unwrap()),
            b"sips:user@example.com"
        );
        let u = sip("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31");
        assert_eq!(
            &*unescape(u.params.iter().nth(1).unwrap().value.as_ref().unwrap()),
            b"value%41"
        );
    }

    #[test]
    fn escaped_nulls_keep_length() {
        let u = sip("sip:null-%00-null@example.com");
        assert_eq!(&*unescape(u.user.as_ref().unwrap()), b"null-\0-null");
    }

    #[test]
    fn semicolon_in_user_part() {
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user.as_deref(), Some(&b"user;par=u%40example.net"[..]));
        assert_eq!(u.host, Host::Domain(Bytes::from_static(b"example.com")));
    }

    #[test]
    fn ipv6_references() {
        let u = sip("sip:[2001:db8::10]:5070");
        assert_eq!(u.host, Host::Ip("2001:db8::10".parse().unwrap()));
        assert_eq!(u.port, Some(5070));
        let u = sip("sip:[2001:db8::10:5070]");
        assert_eq!(u.host, Host::Ip("2001:db8::10:5070".parse().unwrap()));
        assert_eq!(u.port, None);
        let u = sip("sip:user@[2001:db8:::192.0.2.1]");
        assert_eq!(u.host, Host::Ip("2001:db8::192.0.2.1".parse().unwrap()));
        assert!(Uri::parse(&Bytes::from_static(b"sip:2001:db8::10")).is_err());
    }

    #[test]
    fn other_schemes_are_opaque() {
        let u = Uri::parse(&Bytes::from_static(b"soap.beep://192.0.2.103:3002")).unwrap();
        assert!(matches!(u, Uri::Other { .. }));
        let t = Uri::parse(&Bytes::from_static(b"tel:+1-201-555-0123;phone-context=x")).unwrap();
        assert!(matches!(t, Uri::Tel(_)));
        assert!(Uri::parse(&Bytes::from_static(b"<sip:a@b>")).is_err());
    }

    #[test]
    fn unusual_but_valid_userinfo() {
        let u = sip("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com");
        assert_eq!(u.host, Host::Domain(Bytes::from_static(b"example.com")));
        assert!(u.password.is_some());
    }
}
