//! SDP (RFC 8866, which obsoletes RFC 4566): a parser and printer that keeps every line.
//!
//! # What it owns
//! - [`Sdp`]: the session section and its [`Media`] sections as ordered [`Line`]s. Each line
//!   keeps the exact text it was parsed from and is printed back from that text, so a rewrite
//!   changes only the lines a setter touched; everything voxgate does not understand (`b=`,
//!   `k=`, unknown attributes, …) passes through in order.
//! - Typed views of the lines voxgate rewrites: `o=` ([`Origin`]), `c=` ([`Connection`]),
//!   `m=` ([`MediaLine`]) and the attributes in [`attribute`]: `rtpmap`, `fmtp`, `ptime`,
//!   direction, `rtcp` (RFC 3605), `rtcp-mux` (RFC 5761), `crypto` (RFC 4568), ICE
//!   (RFC 8839, recognised so it can be removed) and `ssrc` (RFC 5576).
//! - Setters for what a media relay changes: connection and origin addresses, media port and
//!   transport protocol, direction, `a=rtcp`, removing ICE, replacing `a=crypto`.
//!
//! # What it does not do
//! No offer/answer negotiation (codec intersection, hold logic) and no I/O: it is sans-IO
//! like the rest of the crate. Parsing never panics; bad input is an [`SdpError`].
//!
//! # Leniency
//! Lines may end in CRLF or a bare LF; blank lines are skipped; the printer always writes
//! CRLF. Structure is checked where a rewrite depends on it (`v=` first, well-formed `o=`,
//! `c=`, `m=` and the typed attributes above); other lines only need `<type>=<value>`.

pub mod attribute;

use std::fmt;
use std::net::IpAddr;

pub use attribute::{
    Attribute, Candidate, Crypto, Direction, Fmtp, InvalidAttribute, Rtcp, Rtpmap, Ssrc,
};

use attribute::parse_decimal;

/// The largest SDP body accepted (bytes). An SDP travels in one SIP message or one ng
/// datagram, so 64 KiB is already generous.
pub const MAX_SDP_LEN: usize = 64 * 1024;

/// The most lines accepted, so hostile input cannot make the line tables grow unbounded
/// beyond what [`MAX_SDP_LEN`] allows in a few bytes per line.
pub const MAX_SDP_LINES: usize = 4096;

/// Why an SDP body was rejected. Line numbers count from 1 and include skipped blank lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    #[error("SDP body is empty")]
    Empty,
    #[error("SDP body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("SDP body has more than {limit} lines")]
    TooManyLines { limit: usize },
    #[error("SDP body is not UTF-8")]
    NotUtf8,
    #[error("line {line}: not of the form <type>=<value>")]
    MalformedLine { line: usize },
    #[error("line {line}: the first line must be v=0")]
    Version { line: usize },
    #[error("line {line}: malformed o= line")]
    InvalidOrigin { line: usize },
    #[error("line {line}: malformed c= line")]
    InvalidConnection { line: usize },
    #[error("line {line}: malformed m= line")]
    InvalidMedia { line: usize },
    #[error("line {line}: malformed a={name} attribute")]
    InvalidAttribute { line: usize, name: String },
}

/// Address type of `o=`, `c=` and `a=rtcp` (network type is always `IN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrType {
    Ip4,
    Ip6,
}

impl AddrType {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "IP4" => Some(Self::Ip4),
            "IP6" => Some(Self::Ip6),
            _ => None,
        }
    }

    /// The address type an IP address is written with.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self::Ip4,
            IpAddr::V6(_) => Self::Ip6,
        }
    }
}

impl fmt::Display for AddrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ip4 => "IP4",
            Self::Ip6 => "IP6",
        })
    }
}

/// `o=<username> <sess-id> <sess-version> IN <addrtype> <unicast-address>` (RFC 8866 §5.2).
/// Session id and version are digit strings kept as text (some stacks use more than 64 bits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: String,
    pub session_version: String,
    pub addr_type: AddrType,
    pub address: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "o={} {} {} IN {} {}",
            self.username, self.session_id, self.session_version, self.addr_type, self.address
        )
    }
}

/// `c=IN <addrtype> <connection-address>` (RFC 8866 §5.7). The address stays text: it may
/// be a host name or carry a multicast `/ttl` suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub addr_type: AddrType,
    pub address: String,
}

impl Connection {
    /// The address as an IP address, without any multicast suffix; `None` for a host name.
    pub fn ip(&self) -> Option<IpAddr> {
        let base = self.address.split('/').next().unwrap_or("");
        base.parse().ok()
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c=IN {} {}", self.addr_type, self.address)
    }
}

/// `m=<media> <port>[/<number of ports>] <proto> <fmt> ...` (RFC 8866 §5.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLine {
    pub media: String,
    pub port: u16,
    pub port_count: Option<u16>,
    pub proto: String,
    pub formats: Vec<String>,
}

impl fmt::Display for MediaLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.media, self.port)?;
        if let Some(count) = self.port_count {
            write!(f, "/{count}")?;
        }
        write!(f, " {}", self.proto)?;
        for format in &self.formats {
            write!(f, " {format}")?;
        }
        Ok(())
    }
}

/// What a line means, where voxgate cares.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LineKind {
    Origin(Origin),
    Connection(Connection),
    Media(MediaLine),
    Attribute(Attribute),
    /// Any other line (`v=`, `s=`, `t=`, `b=`, …): kept as text only.
    Other,
}

/// One SDP line: the exact text (without its line ending) and its meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    text: String,
    kind: LineKind,
}

impl Line {
    /// The line as it is printed, without the line ending.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The type letter (`v`, `o`, `c`, `m`, `a`, …).
    pub fn type_char(&self) -> char {
        // Non-empty: parsed lines are at least `x=`, and built lines start with their type.
        char::from(self.text.as_bytes()[0])
    }

    pub fn kind(&self) -> &LineKind {
        &self.kind
    }

    fn attribute(&self) -> Option<&Attribute> {
        match &self.kind {
            LineKind::Attribute(attribute) => Some(attribute),
            _ => None,
        }
    }

    fn from_attribute(attribute: Attribute) -> Self {
        Self {
            text: format!("a={attribute}"),
            kind: LineKind::Attribute(attribute),
        }
    }

    fn from_connection(connection: Connection) -> Self {
        Self {
            text: connection.to_string(),
            kind: LineKind::Connection(connection),
        }
    }

    fn parse(text: &str, number: usize) -> Result<Self, SdpError> {
        let bytes = text.as_bytes();
        if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_alphabetic() {
            return Err(SdpError::MalformedLine { line: number });
        }
        let value = &text[2..];
        let kind = match bytes[0] {
            b'o' => LineKind::Origin(
                parse_origin(value).ok_or(SdpError::InvalidOrigin { line: number })?,
            ),
            b'c' => LineKind::Connection(
                parse_connection(value).ok_or(SdpError::InvalidConnection { line: number })?,
            ),
            b'm' => {
                LineKind::Media(parse_media(value).ok_or(SdpError::InvalidMedia { line: number })?)
            }
            b'a' => LineKind::Attribute(Attribute::parse(value).map_err(|e| {
                SdpError::InvalidAttribute {
                    line: number,
                    name: e.name,
                }
            })?),
            _ => LineKind::Other,
        };
        Ok(Self {
            text: text.to_owned(),
            kind,
        })
    }
}

fn parse_origin(value: &str) -> Option<Origin> {
    let words: Vec<&str> = value.split(' ').collect();
    let [username, session_id, session_version, "IN", addr_type, address] = words[..] else {
        return None;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if username.is_empty() || !digits(session_id) || !digits(session_version) || address.is_empty()
    {
        return None;
    }
    Some(Origin {
        username: username.to_owned(),
        session_id: session_id.to_owned(),
        session_version: session_version.to_owned(),
        addr_type: AddrType::parse(addr_type)?,
        address: address.to_owned(),
    })
}

fn parse_connection(value: &str) -> Option<Connection> {
    let words: Vec<&str> = value.split(' ').collect();
    let ["IN", addr_type, address] = words[..] else {
        return None;
    };
    if address.is_empty() {
        return None;
    }
    Some(Connection {
        addr_type: AddrType::parse(addr_type)?,
        address: address.to_owned(),
    })
}

fn parse_media(value: &str) -> Option<MediaLine> {
    let mut words = value.split(' ').filter(|w| !w.is_empty());
    let media = words.next()?.to_owned();
    let port = words.next()?;
    let (port, port_count) = match port.split_once('/') {
        Some((port, count)) => (parse_decimal(port)?, Some(parse_decimal(count)?)),
        None => (parse_decimal(port)?, None),
    };
    let proto = words.next()?.to_owned();
    Some(MediaLine {
        media,
        port,
        port_count,
        proto,
        formats: words.map(str::to_owned).collect(),
    })
}

/// One media section: its `m=` line and the lines up to the next `m=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Invariant: `lines[0]` is the `m=` line with [`LineKind::Media`].
    lines: Vec<Line>,
}

impl Media {
    /// All lines of the section, the `m=` line first.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    pub fn media_line(&self) -> &MediaLine {
        match &self.lines[0].kind {
            LineKind::Media(m) => m,
            _ => unreachable!("Media::lines[0] is always the m= line (constructor invariant)"),
        }
    }

    /// The media type (`audio`, `video`, `image`, …).
    pub fn kind(&self) -> &str {
        &self.media_line().media
    }

    pub fn port(&self) -> u16 {
        self.media_line().port
    }

    pub fn proto(&self) -> &str {
        &self.media_line().proto
    }

    pub fn formats(&self) -> &[String] {
        &self.media_line().formats
    }

    /// The media-level `c=` line, if any (otherwise the session-level one applies).
    pub fn connection(&self) -> Option<&Connection> {
        self.lines.iter().find_map(|l| match &l.kind {
            LineKind::Connection(c) => Some(c),
            _ => None,
        })
    }

    pub fn attributes(&self) -> impl Iterator<Item = &Attribute> {
        self.lines.iter().filter_map(Line::attribute)
    }

    pub fn rtpmaps(&self) -> impl Iterator<Item = &Rtpmap> {
        self.attributes().filter_map(|a| match a {
            Attribute::Rtpmap(r) => Some(r),
            _ => None,
        })
    }

    pub fn fmtps(&self) -> impl Iterator<Item = &Fmtp> {
        self.attributes().filter_map(|a| match a {
            Attribute::Fmtp(f) => Some(f),
            _ => None,
        })
    }

    pub fn ptime(&self) -> Option<u32> {
        self.attributes().find_map(|a| match a {
            Attribute::Ptime(ms) => Some(*ms),
            _ => None,
        })
    }

    /// The media-level direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        direction_of(&self.lines)
    }

    pub fn rtcp(&self) -> Option<&Rtcp> {
        self.attributes().find_map(|a| match a {
            Attribute::Rtcp(r) => Some(r),
            _ => None,
        })
    }

    pub fn rtcp_mux(&self) -> bool {
        self.attributes().any(|a| matches!(a, Attribute::RtcpMux))
    }

    pub fn crypto(&self) -> impl Iterator<Item = &Crypto> {
        self.attributes().filter_map(|a| match a {
            Attribute::Crypto(c) => Some(c),
            _ => None,
        })
    }

    pub fn candidates(&self) -> impl Iterator<Item = &Candidate> {
        self.attributes().filter_map(|a| match a {
            Attribute::Candidate(c) => Some(c),
            _ => None,
        })
    }

    pub fn ssrcs(&self) -> impl Iterator<Item = &Ssrc> {
        self.attributes().filter_map(|a| match a {
            Attribute::Ssrc(s) => Some(s),
            _ => None,
        })
    }

    pub fn has_ice(&self) -> bool {
        self.attributes().any(Attribute::is_ice)
    }

    fn set_media_line(&mut self, edit: impl FnOnce(&mut MediaLine)) {
        let mut media = self.media_line().clone();
        edit(&mut media);
        self.lines[0] = Line {
            text: media.to_string(),
            kind: LineKind::Media(media),
        };
    }

    /// Sets the port of the `m=` line (the `/count` suffix, if any, is kept).
    pub fn set_port(&mut self, port: u16) {
        self.set_media_line(|m| m.port = port);
    }

    /// Sets the transport protocol of the `m=` line (`RTP/AVP`, `RTP/SAVP`, …).
    pub fn set_proto(&mut self, proto: &str) {
        self.set_media_line(|m| m.proto = proto.to_owned());
    }

    /// Sets the media-level `c=` address, adding the line after `m=`/`i=` when absent.
    pub fn set_connection_address(&mut self, ip: IpAddr) {
        set_connection(&mut self.lines, ip, b"bka");
    }

    /// Replaces the direction attribute (the first one; any others are removed), or appends it.
    pub fn set_direction(&mut self, direction: Direction) {
        replace_attributes(
            &mut self.lines,
            |a| matches!(a, Attribute::Direction(_)),
            vec![Attribute::Direction(direction)],
        );
    }

    /// Replaces `a=rtcp` with `rtcp`, or removes it with `None`.
    pub fn set_rtcp(&mut self, rtcp: Option<Rtcp>) {
        replace_attributes(
            &mut self.lines,
            |a| matches!(a, Attribute::Rtcp(_)),
            rtcp.map(Attribute::Rtcp).into_iter().collect(),
        );
    }

    /// Replaces every `a=crypto` line with `crypto`, in order, where the first one was
    /// (appended when there was none). An empty slice removes them all.
    pub fn set_crypto(&mut self, crypto: &[Crypto]) {
        replace_attributes(
            &mut self.lines,
            |a| matches!(a, Attribute::Crypto(_)),
            crypto.iter().cloned().map(Attribute::Crypto).collect(),
        );
    }

    /// Removes every ICE attribute (candidates, ufrag, pwd, options, …).
    pub fn remove_ice(&mut self) {
        self.remove_attributes(Attribute::is_ice);
    }

    /// Removes the attributes for which `remove` returns true.
    pub fn remove_attributes(&mut self, mut remove: impl FnMut(&Attribute) -> bool) {
        self.lines
            .retain(|l| !matches!(&l.kind, LineKind::Attribute(a) if remove(a)));
    }

    /// Appends an attribute at the end of the section.
    pub fn push_attribute(&mut self, attribute: Attribute) {
        self.lines.push(Line::from_attribute(attribute));
    }
}

fn direction_of(lines: &[Line]) -> Option<Direction> {
    lines.iter().find_map(|l| match l.attribute() {
        Some(Attribute::Direction(d)) => Some(*d),
        _ => None,
    })
}

/// Replaces the attributes matching `matches` with `new` at the position of the first match
/// (or at the end when none matched).
fn replace_attributes(
    lines: &mut Vec<Line>,
    matches: impl Fn(&Attribute) -> bool,
    new: Vec<Attribute>,
) {
    let is_match = |l: &Line| l.attribute().is_some_and(&matches);
    let at = lines.iter().position(is_match);
    lines.retain(|l| !is_match(l));
    let at = at.unwrap_or(lines.len()).min(lines.len());
    lines.splice(at..at, new.into_iter().map(Line::from_attribute));
}

/// Sets the `c=` address in `lines`, or inserts a `c=` line before the first line whose type
/// is in `before` (RFC 8866 §5 fixes the order of line types).
fn set_connection(lines: &mut Vec<Line>, ip: IpAddr, before: &[u8]) {
    let line = Line::from_connection(Connection {
        addr_type: AddrType::of(ip),
        address: ip.to_string(),
    });
    if let Some(existing) = lines
        .iter_mut()
        .find(|l| matches!(l.kind, LineKind::Connection(_)))
    {
        *existing = line;
        return;
    }
    let at = lines
        .iter()
        .position(|l| before.contains(&(l.type_char() as u8)))
        .unwrap_or(lines.len());
    lines.insert(at, line);
}

/// A parsed SDP body: the session section and its media sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    session: Vec<Line>,
    media: Vec<Media>,
}

impl Sdp {
    /// Parses an SDP body (see the module doc for what is checked).
    pub fn parse(input: &[u8]) -> Result<Self, SdpError> {
        if input.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLarge { limit: MAX_SDP_LEN });
        }
        let text = std::str::from_utf8(input).map_err(|_| SdpError::NotUtf8)?;
        let mut session = Vec::new();
        let mut media: Vec<Media> = Vec::new();
        let mut count = 0usize;
        for (index, raw) in text.split('\n').enumerate() {
            let number = index + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if raw.is_empty() {
                continue;
            }
            count += 1;
            if count > MAX_SDP_LINES {
                return Err(SdpError::TooManyLines {
                    limit: MAX_SDP_LINES,
                });
            }
            let line = Line::parse(raw, number)?;
            if count == 1 && line.text != "v=0" {
                return Err(SdpError::Version { line: number });
            }
            match (&line.kind, media.last_mut()) {
                (LineKind::Media(_), _) => media.push(Media { lines: vec![line] }),
                (_, Some(section)) => section.lines.push(line),
                (_, None) => session.push(line),
            }
        }
        if session.is_empty() {
            return Err(SdpError::Empty);
        }
        Ok(Self { session, media })
    }

    /// The printed body: every line followed by CRLF.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// The session-level lines, `v=` first.
    pub fn session_lines(&self) -> &[Line] {
        &self.session
    }

    pub fn media(&self) -> &[Media] {
        &self.media
    }

    pub fn media_mut(&mut self) -> &mut [Media] {
        &mut self.media
    }

    pub fn origin(&self) -> Option<&Origin> {
        self.session.iter().find_map(|l| match &l.kind {
            LineKind::Origin(o) => Some(o),
            _ => None,
        })
    }

    /// The session-level `c=` line, if any.
    pub fn connection(&self) -> Option<&Connection> {
        self.session.iter().find_map(|l| match &l.kind {
            LineKind::Connection(c) => Some(c),
            _ => None,
        })
    }

    pub fn session_attributes(&self) -> impl Iterator<Item = &Attribute> {
        self.session.iter().filter_map(Line::attribute)
    }

    /// The session-level direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        direction_of(&self.session)
    }

    /// The direction in force for media section `index`: its own attribute, else the
    /// session's, else `sendrecv` (RFC 8866 §6.7).
    pub fn effective_direction(&self, index: usize) -> Direction {
        self.media
            .get(index)
            .and_then(Media::direction)
            .or_else(|| self.direction())
            .unwrap_or(Direction::SendRecv)
    }

    /// The `c=` address in force for media section `index`: its own, else the session's.
    pub fn effective_connection(&self, index: usize) -> Option<&Connection> {
        self.media
            .get(index)
            .and_then(Media::connection)
            .or_else(|| self.connection())
    }

    /// Sets the address (and address type) of the `o=` line; false when there is none.
    pub fn set_origin_address(&mut self, ip: IpAddr) -> bool {
        for line in &mut self.session {
            if let LineKind::Origin(origin) = &line.kind {
                let origin = Origin {
                    addr_type: AddrType::of(ip),
                    address: ip.to_string(),
                    ..origin.clone()
                };
                *line = Line {
                    text: origin.to_string(),
                    kind: LineKind::Origin(origin),
                };
                return true;
            }
        }
        false
    }

    /// Sets the session-level `c=` address, adding the line before `b=`/`t=` when absent.
    pub fn set_connection_address(&mut self, ip: IpAddr) {
        set_connection(&mut self.session, ip, b"btrzka");
    }

    /// Sets the session-level direction attribute (replacing any), or appends it.
    pub fn set_direction(&mut self, direction: Direction) {
        replace_attributes(
            &mut self.session,
            |a| matches!(a, Attribute::Direction(_)),
            vec![Attribute::Direction(direction)],
        );
    }

    /// Removes ICE attributes at session level and from every media section.
    pub fn remove_ice(&mut self) {
        self.session
            .retain(|l| !l.attribute().is_some_and(Attribute::is_ice));
        for media in &mut self.media {
            media.remove_ice();
        }
    }

    pub fn has_ice(&self) -> bool {
        self.session_attributes().any(Attribute::is_ice) || self.media.iter().any(Media::has_ice)
    }
}

impl fmt::Display for Sdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let media_lines = self.media.iter().flat_map(|m| m.lines.iter());
        for line in self.session.iter().chain(media_lines) {
            write!(f, "{}\r\n", line.text)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\n\
        o=alice 2890844526 2890844526 IN IP4 10.0.0.1\r\n\
        s=-\r\n\
        c=IN IP4 10.0.0.1\r\n\
        t=0 0\r\n\
        a=ice-ufrag:F7gI\r\n\
        m=audio 49170 RTP/AVP 0 8 101\r\n\
        b=AS:64\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-15\r\n\
        a=ptime:20\r\n\
        a=sendrecv\r\n\
        a=rtcp:49171\r\n\
        a=x-unknown:keep  me\r\n\
        a=candidate:1 1 UDP 2130706431 10.0.0.1 49170 typ host\r\n\
        a=ice-pwd:asd88fgpdd777uzjYhagZg\r\n\
        a=ssrc:1234 cname:alice\r\n\
        m=video 0 RTP/AVP 96\r\n\
        a=rtpmap:96 H264/90000\r\n";

    #[test]
    fn parse_and_print_is_byte_exact() {
        let sdp = Sdp::parse(OFFER.as_bytes()).expect("valid");
        assert_eq!(sdp.to_string(), OFFER);
        assert_eq!(sdp.media().len(), 2);
        let audio = &sdp.media()[0];
        assert_eq!(audio.port(), 49170);
        assert_eq!(audio.formats(), ["0", "8", "101"]);
        assert_eq!(audio.rtpmaps().count(), 3);
        assert_eq!(audio.ptime(), Some(20));
        assert_eq!(audio.direction(), Some(Direction::SendRecv));
        assert_eq!(audio.rtcp().map(|r| r.port), Some(49171));
        assert_eq!(audio.candidates().count(), 1);
        assert_eq!(audio.ssrcs().next().map(|s| s.id), Some(1234));
        assert_eq!(
            sdp.effective_connection(1).and_then(Connection::ip),
            Some("10.0.0.1".parse().expect("literal"))
        );
    }

    #[test]
    fn setters_touch_only_their_lines() {
        let mut sdp = Sdp::parse(OFFER.as_bytes()).expect("valid");
        let ip: IpAddr = "192.0.2.7".parse().expect("literal");
        sdp.set_connection_address(ip);
        assert!(sdp.set_origin_address(ip));
        sdp.remove_ice();
        let audio = &mut sdp.media_mut()[0];
        audio.set_port(30000);
        audio.set_rtcp(Some(Rtcp {
            port: 30001,
            address: None,
        }));
        audio.set_direction(Direction::SendOnly);
        let expected = OFFER
            .replace("IN IP4 10.0.0.1\r\n", "IN IP4 192.0.2.7\r\n")
            .replace("a=ice-ufrag:F7gI\r\n", "")
            .replace(
                "a=candidate:1 1 UDP 2130706431 10.0.0.1 49170 typ host\r\n",
                "",
            )
            .replace("a=ice-pwd:asd88fgpdd777uzjYhagZg\r\n", "")
            .replace("m=audio 49170", "m=audio 30000")
            .replace("a=rtcp:49171", "a=rtcp:30001")
            .replace("a=sendrecv", "a=sendonly");
        assert_eq!(sdp.to_string(), expected);
    }

    #[test]
    fn connection_is_inserted_in_rfc_order_when_missing() {
        let mut sdp = Sdp::parse(
            b"v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=audio 1 RTP/AVP 0\ni=x\na=sendrecv\n",
        )
        .expect("valid");
        let ip: IpAddr = "::1".parse().expect("literal");
        sdp.media_mut()[0].set_connection_address(ip);
        sdp.set_connection_address(ip);
        assert_eq!(
            sdp.to_string(),
            "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\n\
             m=audio 1 RTP/AVP 0\r\ni=x\r\nc=IN IP6 ::1\r\na=sendrecv\r\n"
        );
    }

    #[test]
    fn crypto_is_replaced_in_place() {
        let mut sdp = Sdp::parse(
            b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/SAVP 0\r\n\
              a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA\r\n\
              a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:BBBB\r\na=sendrecv\r\n",
        )
        .expect("valid");
        let new = Crypto {
            tag: 1,
            suite: "AEAD_AES_128_GCM".into(),
            key_params: "inline:CCCC".into(),
            session_params: vec![],
        };
        sdp.media_mut()[0].set_crypto(std::slice::from_ref(&new));
        assert!(sdp
            .to_string()
            .ends_with("a=crypto:1 AEAD_AES_128_GCM inline:CCCC\r\na=sendrecv\r\n"));
        sdp.media_mut()[0].set_crypto(&[]);
        assert_eq!(sdp.media()[0].crypto().count(), 0);
    }

    #[test]
    fn structural_errors_are_typed() {
        let cases: &[(&[u8], SdpError)] = &[
            (b"", SdpError::Empty),
            (b"\r\n\r\n", SdpError::Empty),
            (b"v=1\r\n", SdpError::Version { line: 1 }),
            (b"v=0\r\nnonsense\r\n", SdpError::MalformedLine { line: 2 }),
            (b"v=0\r\no=x\r\n", SdpError::InvalidOrigin { line: 2 }),
            (
                b"v=0\r\nc=IN IP4\r\n",
                SdpError::InvalidConnection { line: 2 },
            ),
            (
                b"v=0\r\nm=audio x RTP/AVP 0\r\n",
                SdpError::InvalidMedia { line: 2 },
            ),
            (b"v=0\xff\r\n", SdpError::NotUtf8),
            (
                b"v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtcp:x\r\n",
                SdpError::InvalidAttribute {
                    line: 3,
                    name: "rtcp".into(),
                },
            ),
        ];
        for (input, error) in cases {
            assert_eq!(Sdp::parse(input).as_ref(), Err(error), "{input:?}");
        }
        let big = vec![b'a'; MAX_SDP_LEN + 1];
        assert_eq!(
            Sdp::parse(&big),
            Err(SdpError::TooLarge { limit: MAX_SDP_LEN })
        );
    }
}
