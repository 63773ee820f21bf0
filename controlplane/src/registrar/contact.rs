//! Contact value details the registrar needs: URI equivalence (RFC 3261 §19.1.4), which
//! decides whether a Contact refreshes an existing binding, `q` values (§20.10) and
//! delta-seconds (§25.1).
//!
//! What it does not do: parse URIs or header parameters (that is [`crate::sip`]).

use std::borrow::Cow;

use bytes::Bytes;

use crate::sip::{unescape, Host, Params, SipUri, Uri};

/// Whether two URIs are equivalent by RFC 3261 §19.1.4. Non-SIP URIs compare as text,
/// ignoring ASCII case.
pub(crate) fn uri_equivalent(a: &Uri, b: &Uri) -> bool {
    match (a, b) {
        (Uri::Sip(a), Uri::Sip(b)) => sip_equivalent(a, b),
        (Uri::Tel(a), Uri::Tel(b)) => {
            a.number.eq_ignore_ascii_case(&b.number) && params_equivalent(&a.params, &b.params)
        }
        (
            Uri::Other {
                scheme: sa,
                rest: ra,
            },
            Uri::Other {
                scheme: sb,
                rest: rb,
            },
        ) => sa.eq_ignore_ascii_case(sb) && ra.eq_ignore_ascii_case(rb),
        _ => false,
    }
}

/// Parse a stored contact URI again (bindings keep their URI as text, not parsed, to stay
/// small).
pub(crate) fn parse_stored(contact: &str) -> Option<Uri> {
    Uri::parse(&Bytes::copy_from_slice(contact.as_bytes())).ok()
}

fn sip_equivalent(a: &SipUri, b: &SipUri) -> bool {
    // The user part and password are case-sensitive and compare after unescaping
    // ("%61lice" is "alice"); the host is not case-sensitive; an explicit port never equals
    // an absent one.
    a.secure == b.secure
        && opt_unescaped_eq(a.user.as_ref(), b.user.as_ref())
        && opt_unescaped_eq(a.password.as_ref(), b.password.as_ref())
        && host_eq(&a.host, &b.host)
        && a.port == b.port
        && params_equivalent(&a.params, &b.params)
        && headers_equivalent(a.headers.as_ref(), b.headers.as_ref())
}

fn opt_unescaped_eq(a: Option<&Bytes>, b: Option<&Bytes>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => unescape(a) == unescape(b),
        _ => false,
    }
}

fn host_eq(a: &Host, b: &Host) -> bool {
    match (a, b) {
        (Host::Domain(a), Host::Domain(b)) => a.eq_ignore_ascii_case(b),
        (Host::Ip(a), Host::Ip(b)) => a == b,
        _ => false,
    }
}

/// The parameters that must match when either URI has them; any other parameter counts
/// only when both URIs carry it.
const MUST_MATCH: [&str; 5] = ["user", "ttl", "method", "maddr", "transport"];

fn params_equivalent(a: &Params, b: &Params) -> bool {
    for p in a.iter() {
        let name = unescape(&p.name);
        match find_param(b, &name) {
            Some(other) if !value_eq(p.value.as_ref(), other) => return false,
            Some(_) => {}
            None if is_must_match(&name) => return false,
            None => {}
        }
    }
    // A must-match parameter only in `b`.
    b.iter().all(|p| {
        let name = unescape(&p.name);
        !is_must_match(&name) || find_param(a, &name).is_some()
    })
}

fn is_must_match(name: &[u8]) -> bool {
    MUST_MATCH
        .iter()
        .any(|m| name.eq_ignore_ascii_case(m.as_bytes()))
}

fn find_param<'a>(params: &'a Params, name: &[u8]) -> Option<Option<&'a Bytes>> {
    params
        .iter()
        .find(|p| unescape(&p.name).eq_ignore_ascii_case(name))
        .map(|p| p.value.as_ref())
}

fn value_eq(a: Option<&Bytes>, b: Option<&Bytes>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => unescape(a).eq_ignore_ascii_case(&unescape(b)),
        _ => false,
    }
}

/// URI headers are never ignored: both sides must carry the same set (in any order).
fn headers_equivalent(a: Option<&Bytes>, b: Option<&Bytes>) -> bool {
    fn set(h: Option<&Bytes>) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = h
            .map(|h| {
                h.split(|c| *c == b'&')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (n, v) = match p.iter().position(|c| *c == b'=') {
                            Some(eq) => (&p[..eq], &p[eq + 1..]),
                            None => (p, &b""[..]),
                        };
                        (unescape(n).to_ascii_lowercase(), unescape(v).into_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }
    set(a) == set(b)
}

/// A Contact `q` value (RFC 3261 §20.10: `"0" ["." 0*3DIGIT] / "1" ["." 0*3("0")]`) in
/// thousandths.
pub(crate) fn parse_qvalue(raw: &[u8]) -> Option<u16> {
    let (int, frac) = match raw.iter().position(|c| *c == b'.') {
        Some(dot) => (&raw[..dot], Some(&raw[dot + 1..])),
        None => (raw, None),
    };
    let whole: u16 = match int {
        b"0" => 0,
        b"1" => 1,
        _ => return None,
    };
    let frac = frac.unwrap_or(b"");
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    if whole == 1 && thousandths != 0 {
        return None;
    }
    Some(whole * 1000 + thousandths)
}

/// Print thousandths as the shortest qvalue (`1`, `0`, `0.5`, `0.125`).
pub(crate) fn format_qvalue(q: u16) -> Cow<'static, str> {
    match q {
        0 => Cow::Borrowed("0"),
        q if q >= 1000 => Cow::Borrowed("1"),
        q => {
            let mut s = format!("0.{q:03}");
            while s.ends_with('0') {
                s.pop();
            }
            Cow::Owned(s)
        }
    }
}

/// delta-seconds (RFC 3261 §25.1: `1*DIGIT`). Values beyond `u32` saturate: RFC 4475
/// §3.1.2.4 (scalar02) expects a huge Expires to be treated as a very long one, which the
/// registrar then clamps to its maximum.
pub(crate) fn parse_delta_seconds(raw: &[u8]) -> Option<u32> {
    if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u32 = 0;
    for d in raw {
        v = v.saturating_mul(10).saturating_add(u32::from(d - b'0'));
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        parse_stored(s).expect("test URI parses")
    }

    #[test]
    fn rfc3261_equivalent_pairs() {
        // RFC 3261 §19.1.4's examples of equivalent URIs.
        let pairs = [
            (
                "sip:%61lice@atlanta.com;transport=TCP",
                "sip:alice@AtLanTa.CoM;Transport=tcp",
            ),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
            (
                "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
                "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
            ),
            (
                "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
                "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
            ),
        ];
        for (a, b) in pairs {
            assert!(uri_equivalent(&uri(a), &uri(b)), "{a} ~ {b}");
            assert!(uri_equivalent(&uri(b), &uri(a)), "{b} ~ {a}");
        }
    }

    #[test]
    fn rfc3261_non_equivalent_pairs() {
        let pairs = [
            (
                "SIP:ALICE@AtLanTa.CoM;Transport=udp",
                "sip:alice@AtLanTa.CoM;Transport=UDP",
            ),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
            (
                "sip:bob@biloxi.com",
                "sip:bob@biloxi.com:6000;transport=tcp",
            ),
            (
                "sip:carol@chicago.com",
                "sip:carol@chicago.com?Subject=next%20meeting",
            ),
            ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
            (
                "sip:carol@chicago.com;security=on",
                "sip:carol@chicago.com;security=off",
            ),
            ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
        ];
        for (a, b) in pairs {
            assert!(!uri_equivalent(&uri(a), &uri(b)), "{a} !~ {b}");
            assert!(!uri_equivalent(&uri(b), &uri(a)), "{b} !~ {a}");
        }
    }

    #[test]
    fn qvalues() {
        assert_eq!(parse_qvalue(b"1"), Some(1000));
        assert_eq!(parse_qvalue(b"1.000"), Some(1000));
        assert_eq!(parse_qvalue(b"0.5"), Some(500));
        assert_eq!(parse_qvalue(b"0.125"), Some(125));
        assert_eq!(parse_qvalue(b"0."), Some(0));
        assert_eq!(parse_qvalue(b"1.5"), None);
        assert_eq!(parse_qvalue(b"0.1234"), None);
        assert_eq!(parse_qvalue(b"2"), None);
        assert_eq!(parse_qvalue(b""), None);
        for q in [0u16, 5, 50, 125, 500, 999, 1000] {
            assert_eq!(parse_qvalue(format_qvalue(q).as_bytes()), Some(q));
        }
        assert_eq!(format_qvalue(500), "0.5");
    }

    #[test]
    fn delta_seconds_saturate() {
        assert_eq!(parse_delta_seconds(b"3600"), Some(3600));
        assert_eq!(parse_delta_seconds(b"0"), Some(0));
        assert_eq!(parse_delta_seconds(b"280297596632815"), Some(u32::MAX));
        assert_eq!(parse_delta_seconds(b"-1"), None);
        assert_eq!(parse_delta_seconds(b""), None);
    }
}
