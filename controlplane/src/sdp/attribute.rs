//! Typed views of the SDP attributes voxgate rewrites or relays by (`a=` lines). Attributes
//! it does not know stay [`Attribute::Other`] and are printed back byte for byte.

use std::fmt;

use super::AddrType;

/// A known attribute with a value that does not follow its grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed a={name} attribute")]
pub struct InvalidAttribute {
    /// The attribute name (`rtcp`, `crypto`, …).
    pub name: String,
}

/// Media direction (RFC 8866 §6.7). `sendrecv` is the default when none is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The attribute name as SDP spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "sendrecv" => Self::SendRecv,
            "sendonly" => Self::SendOnly,
            "recvonly" => Self::RecvOnly,
            "inactive" => Self::Inactive,
            _ => return None,
        })
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>]` (RFC 8866 §6.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtpmap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u16>,
}

impl fmt::Display for Rtpmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rtpmap:{} {}/{}",
            self.payload_type, self.encoding, self.clock_rate
        )?;
        if let Some(channels) = self.channels {
            write!(f, "/{channels}")?;
        }
        Ok(())
    }
}

/// `a=fmtp:<format> <format specific parameters>` (RFC 8866 §6.15); parameters stay opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    pub format: String,
    pub params: String,
}

impl fmt::Display for Fmtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fmtp:{} {}", self.format, self.params)
    }
}

/// `a=rtcp:<port> [<nettype> <addrtype> <address>]` (RFC 3605).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtcp {
    pub port: u16,
    /// Address type and address when the long form is used (net type is always `IN`).
    pub address: Option<(AddrType, String)>,
}

impl fmt::Display for Rtcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rtcp:{}", self.port)?;
        if let Some((addr_type, address)) = &self.address {
            write!(f, " IN {addr_type} {address}")?;
        }
        Ok(())
    }
}

/// `a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]` (RFC 4568 §9.1).
/// Key parameters (`inline:…`, possibly several joined by `;`) stay opaque here: keys are
/// the SRTP layer's business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    pub tag: u32,
    pub suite: String,
    pub key_params: String,
    pub session_params: Vec<String>,
}

impl fmt::Display for Crypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "crypto:{} {} {}", self.tag, self.suite, self.key_params)?;
        for param in &self.session_params {
            write!(f, " {param}")?;
        }
        Ok(())
    }
}

/// `a=candidate:` (RFC 8839 §5.1), parsed far enough to be recognised and listed; voxgate
/// removes candidates rather than rewriting them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub foundation: String,
    pub component: u16,
    pub transport: String,
    pub priority: u32,
    pub address: String,
    pub port: u16,
    pub kind: String,
    /// Extension attributes after the type (`raddr`, `rport`, `generation`, …), as written.
    pub extensions: Vec<String>,
}

/// `a=ssrc:<ssrc-id> <attribute>[:<value>]` (RFC 5576 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssrc {
    pub id: u32,
    /// The source attribute with its value, e.g. `cname:abc`.
    pub attribute: String,
}

/// One `a=` line, typed where voxgate cares.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attribute {
    Rtpmap(Rtpmap),
    Fmtp(Fmtp),
    /// `a=ptime:<milliseconds>`; fractional values keep their integer part.
    Ptime(u32),
    Direction(Direction),
    Rtcp(Rtcp),
    /// `a=rtcp-mux` (RFC 5761).
    RtcpMux,
    Crypto(Crypto),
    Candidate(Candidate),
    /// Other ICE attributes (RFC 8839): `ice-ufrag`, `ice-pwd`, `ice-options`, `ice-lite`,
    /// `ice-mismatch`, `remote-candidates`, `end-of-candidates`, `ice-pacing`.
    Ice {
        name: String,
        value: Option<String>,
    },
    Ssrc(Ssrc),
    /// Anything else, kept as written.
    Other {
        name: String,
        value: Option<String>,
    },
}

const ICE_ATTRIBUTES: &[&str] = &[
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "ice-lite",
    "ice-mismatch",
    "remote-candidates",
    "end-of-candidates",
    "ice-pacing",
];

impl Attribute {
    /// Parses the text after `a=`. Known attributes with a malformed value are an error: a
    /// rewrite must not guess what a broken `a=rtcp` or `a=crypto` meant.
    pub fn parse(text: &str) -> Result<Self, InvalidAttribute> {
        let (name, value) = match text.split_once(':') {
            Some((name, value)) => (name, Some(value)),
            None => (text, None),
        };
        let invalid = || InvalidAttribute {
            name: name.to_owned(),
        };
        let attribute = match (name, value) {
            ("rtpmap", Some(value)) => Self::Rtpmap(parse_rtpmap(value).ok_or_else(invalid)?),
            ("fmtp", Some(value)) => {
                let (format, params) = value.split_once(' ').unwrap_or((value, ""));
                if format.is_empty() {
                    return Err(invalid());
                }
                Self::Fmtp(Fmtp {
                    format: format.to_owned(),
                    params: params.to_owned(),
                })
            }
            ("ptime", Some(value)) => {
                let whole = value.trim().split('.').next().unwrap_or("");
                Self::Ptime(parse_decimal(whole).ok_or_else(invalid)?)
            }
            ("rtcp", Some(value)) => Self::Rtcp(parse_rtcp(value).ok_or_else(invalid)?),
            ("rtcp-mux", None) => Self::RtcpMux,
            ("crypto", Some(value)) => Self::Crypto(parse_crypto(value).ok_or_else(invalid)?),
            ("candidate", Some(value)) => {
                Self::Candidate(parse_candidate(value).ok_or_else(invalid)?)
            }
            ("ssrc", Some(value)) => Self::Ssrc(parse_ssrc(value).ok_or_else(invalid)?),
            (name, None) if Direction::from_name(name).is_some() => {
                Self::Direction(Direction::from_name(name).expect("checked by the guard"))
            }
            (name, value) if ICE_ATTRIBUTES.contains(&name) => Self::Ice {
                name: name.to_owned(),
                value: value.map(str::to_owned),
            },
            (name, value) => {
                if name.is_empty() {
                    return Err(invalid());
                }
                Self::Other {
                    name: name.to_owned(),
                    value: value.map(str::to_owned),
                }
            }
        };
        Ok(attribute)
    }

    /// Whether this is an ICE attribute (candidates included), i.e. one `remove_ice` drops.
    pub fn is_ice(&self) -> bool {
        matches!(self, Self::Candidate(_) | Self::Ice { .. })
    }
}

impl fmt::Display for Attribute {
    /// The text after `a=` in canonical form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rtpmap(v) => v.fmt(f),
            Self::Fmtp(v) => v.fmt(f),
            Self::Ptime(ms) => write!(f, "ptime:{ms}"),
            Self::Direction(d) => d.fmt(f),
            Self::Rtcp(v) => v.fmt(f),
            Self::RtcpMux => f.write_str("rtcp-mux"),
            Self::Crypto(v) => v.fmt(f),
            Self::Candidate(c) => {
                write!(
                    f,
                    "candidate:{} {} {} {} {} {} typ {}",
                    c.foundation, c.component, c.transport, c.priority, c.address, c.port, c.kind
                )?;
                for extension in &c.extensions {
                    write!(f, " {extension}")?;
                }
                Ok(())
            }
            Self::Ssrc(s) => write!(f, "ssrc:{} {}", s.id, s.attribute),
            Self::Ice { name, value } | Self::Other { name, value } => match value {
                Some(value) => write!(f, "{name}:{value}"),
                None => f.write_str(name),
            },
        }
    }
}

/// Digits only (no sign, no spaces), fitting the target type.
pub(super) fn parse_decimal<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_rtpmap(value: &str) -> Option<Rtpmap> {
    let (pt, rest) = value.split_once(' ')?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next().filter(|e| !e.is_empty())?;
    let clock_rate = parse_decimal(parts.next()?)?;
    let channels = match parts.next() {
        Some(channels) => Some(parse_decimal(channels)?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(Rtpmap {
        payload_type: parse_decimal::<u8>(pt).filter(|pt| *pt < 128)?,
        encoding: encoding.to_owned(),
        clock_rate,
        channels,
    })
}

fn parse_rtcp(value: &str) -> Option<Rtcp> {
    let mut words = value.split(' ');
    let port = parse_decimal(words.next()?)?;
    let address = match words.next() {
        None => None,
        Some("IN") => {
            let addr_type = AddrType::parse(words.next()?)?;
            let address = words.next().filter(|a| !a.is_empty())?;
            Some((addr_type, address.to_owned()))
        }
        Some(_) => return None,
    };
    if words.next().is_some() {
        return None;
    }
    Some(Rtcp { port, address })
}

fn parse_crypto(value: &str) -> Option<Crypto> {
    let mut words = value.split(' ').filter(|w| !w.is_empty());
    let tag = parse_decimal(words.next()?)?;
    let suite = words.next()?.to_owned();
    let key_params = words.next()?.to_owned();
    if !key_params.contains(':') {
        return None;
    }
    Some(Crypto {
        tag,
        suite,
        key_params,
        session_params: words.map(str::to_owned).collect(),
    })
}

fn parse_candidate(value: &str) -> Option<Candidate> {
    let mut words = value.split(' ').filter(|w| !w.is_empty());
    let foundation = words.next()?.to_owned();
    let component = parse_decimal(words.next()?)?;
    let transport = words.next()?.to_owned();
    let priority = parse_decimal(words.next()?)?;
    let address = words.next()?.to_owned();
    let port = parse_decimal(words.next()?)?;
    if words.next()? != "typ" {
        return None;
    }
    let kind = words.next()?.to_owned();
    Some(Candidate {
        foundation,
        component,
        transport,
        priority,
        address,
        port,
        kind,
        extensions: words.map(str::to_owned).collect(),
    })
}

fn parse_ssrc(value: &str) -> Option<Ssrc> {
    let (id, attribute) = value.split_once(' ')?;
    if attribute.is_empty() {
        return None;
    }
    Some(Ssrc {
        id: parse_decimal(id)?,
        attribute: attribute.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_attributes_parse_and_print_canonically() {
        for text in [
            "rtpmap:0 PCMU/8000",
            "rtpmap:111 opus/48000/2",
            "fmtp:101 0-15",
            "ptime:20",
            "sendonly",
            "rtcp:53021",
            "rtcp:53021 IN IP4 126.16.64.4",
            "rtcp-mux",
            "crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32 KDR=1",
            "candidate:1 1 UDP 2130706431 10.0.0.1 8998 typ host",
            "candidate:2 1 UDP 1694498815 192.0.2.3 45664 typ srflx raddr 10.0.1.1 rport 8998",
            "ice-ufrag:8hhY",
            "ice-lite",
            "ssrc:12345 cname:user@example",
            "tool:voxgate",
        ] {
            let parsed = Attribute::parse(text).expect(text);
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn malformed_known_attributes_are_errors() {
        for text in [
            "rtpmap:x PCMU/8000",
            "rtpmap:200 PCMU/8000",
            "rtpmap:0 PCMU",
            "rtcp:70000",
            "rtcp:5000 IN IP9 x",
            "crypto:1 AES_CM_128_HMAC_SHA1_80",
            "candidate:1 1 UDP",
            "ssrc:abc cname:x",
            "ptime:-1",
            ":x",
        ] {
            assert!(Attribute::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn fractional_ptime_keeps_whole_milliseconds() {
        assert_eq!(Attribute::parse("ptime:20.0"), Ok(Attribute::Ptime(20)));
    }
}
