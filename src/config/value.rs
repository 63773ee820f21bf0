//! Parsers for the config's value syntaxes: durations with units, listen specs, port
//! ranges, CIDR networks, host names, extension numbers and passwords.
//!
//! Each parser takes the raw text and returns a typed value or a typed reason; the caller
//! (`validate`) attaches the position. Nothing here knows about TOML or files.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

use voxgate_controlplane::config::LocalListener;
use voxgate_controlplane::security::{AclSource, IpNet, IpNetError};
use voxgate_controlplane::sip::Transport;

/// One SIP listener from `sip.listen`: `udp:127.0.0.1:5060`, `tcp:[::1]:5060`,
/// `tls:0.0.0.0:5061`. Port 0 asks the OS for a free port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Listen {
    pub transport: Transport,
    pub addr: SocketAddr,
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

impl From<Listen> for LocalListener {
    fn from(listen: Listen) -> Self {
        LocalListener {
            transport: listen.transport,
            addr: listen.addr,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListenError {
    #[error("expected TRANSPORT:ADDRESS[:PORT], like \"udp:0.0.0.0:5060\" or \"tls:[::]:5061\"")]
    Syntax,
    #[error("unknown transport {transport:?}; use udp, tcp or tls")]
    Transport { transport: String },
    #[error("{address:?} is not an IP address with an optional port (IPv6 in brackets: \"[::1]:5060\"; host names are not allowed)")]
    Address { address: String },
}

/// Parses a listen spec. Without a port, the transport's default applies (5060, TLS 5061).
pub fn parse_listen(text: &str) -> Result<Listen, ListenError> {
    let (transport, address) = text.split_once(':').ok_or(ListenError::Syntax)?;
    let transport = match transport {
        "udp" => Transport::Udp,
        "tcp" => Transport::Tcp,
        "tls" => Transport::Tls,
        other => {
            return Err(ListenError::Transport {
                transport: other.to_owned(),
            })
        }
    };
    if address.is_empty() {
        return Err(ListenError::Syntax);
    }
    let addr = if let Ok(addr) = address.parse::<SocketAddr>() {
        addr
    } else {
        let bare = address
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(address);
        let ip: IpAddr = bare.parse().map_err(|_| ListenError::Address {
            address: address.to_owned(),
        })?;
        // A bare IPv6 address ("::1") is ambiguous next to a port: only the bracketed form.
        if ip.is_ipv6() && bare.len() == address.len() {
            return Err(ListenError::Address {
                address: address.to_owned(),
            });
        }
        SocketAddr::new(ip, transport.default_port())
    };
    Ok(Listen { transport, addr })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    #[error("expected a whole number and a unit (ms, s, m, h or d), like \"500ms\" or \"4s\"")]
    Syntax,
    #[error("a duration needs a unit: write \"{number}s\" or \"{number}ms\"")]
    MissingUnit { number: i64 },
    #[error("unknown unit {unit:?}; use ms, s, m, h or d")]
    Unit { unit: String },
    #[error("too large")]
    Overflow,
}

/// Parses `500ms`, `4s`, `10m`, `1h`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(DurationError::Syntax);
    }
    let n: u64 = digits.parse().map_err(|_| DurationError::Overflow)?;
    let ms_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "" => {
            return Err(DurationError::MissingUnit {
                number: i64::try_from(n).unwrap_or(i64::MAX),
            })
        }
        other => {
            return Err(DurationError::Unit {
                unit: other.to_owned(),
            })
        }
    };
    n.checked_mul(ms_per_unit)
        .map(Duration::from_millis)
        .ok_or(DurationError::Overflow)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortRangeError {
    #[error("expected FIRST-LAST, like \"20000-29999\"")]
    Syntax,
    #[error("ports below 1024 are reserved for system services")]
    Privileged,
    #[error(
        "the first port must be even: RTP uses even ports and RTCP the next odd one (RFC 3550 §11)"
    )]
    OddStart,
    #[error("the range must hold at least one RTP/RTCP pair (LAST > FIRST)")]
    TooSmall,
}

/// Parses an RTP port range `FIRST-LAST` (inclusive): FIRST even and ≥ 1024, LAST > FIRST.
pub fn parse_port_range(text: &str) -> Result<RangeInclusive<u16>, PortRangeError> {
    let (first, last) = text.split_once('-').ok_or(PortRangeError::Syntax)?;
    let first: u16 = first.trim().parse().map_err(|_| PortRangeError::Syntax)?;
    let last: u16 = last.trim().parse().map_err(|_| PortRangeError::Syntax)?;
    if first < 1024 {
        return Err(PortRangeError::Privileged);
    }
    if first % 2 != 0 {
        return Err(PortRangeError::OddStart);
    }
    if last <= first {
        return Err(PortRangeError::TooSmall);
    }
    Ok(first..=last)
}

/// Parses a network (`192.0.2.0/24`, `2001:db8::/32`; a bare address is a /32 or /128).
/// Host bits must be zero, so `192.0.2.1/24` (a likely typo) is refused. The type is the
/// control plane's, which the security policy and the registrar match sources against.
pub fn parse_cidr(text: &str) -> Result<IpNet, IpNetError> {
    text.parse()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    #[error("must not be empty")]
    Empty,
    #[error("longer than 253 characters")]
    TooLong,
    #[error("is an IP address; the system identity is a fully qualified domain name (SIG-22)")]
    IpAddress,
    #[error("is not fully qualified: it needs at least two labels, like \"pbx.example.com\"")]
    NotQualified,
    #[error(
        "label {label:?} must be 1-63 letters, digits or '-', not starting or ending with '-'"
    )]
    Label { label: String },
    #[error("the last label {label:?} must not be all digits")]
    NumericTld { label: String },
}

/// Checks `sip.domain`: a fully qualified domain name (SIG-22).
pub fn check_fqdn(name: &str) -> Result<(), DomainError> {
    if name.parse::<IpAddr>().is_ok() || name.starts_with('[') {
        return Err(DomainError::IpAddress);
    }
    let labels = check_host_name(name)?;
    if labels < 2 {
        return Err(DomainError::NotQualified);
    }
    Ok(())
}

/// Checks one `sip.aliases` entry: a host name or an IP address (IPv6 with or without
/// brackets). Returns the form the endpoint compares against (IPv6 without brackets).
pub fn check_alias(alias: &str) -> Result<String, DomainError> {
    let bare = alias
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(alias);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    check_host_name(alias)?;
    Ok(alias.to_owned())
}

/// Checks RFC 1123 host-name syntax; returns the number of labels.
fn check_host_name(name: &str) -> Result<usize, DomainError> {
    if name.is_empty() {
        return Err(DomainError::Empty);
    }
    if name.len() > 253 {
        return Err(DomainError::TooLong);
    }
    let mut count = 0;
    let mut last = "";
    for label in name.split('.') {
        let ok = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(DomainError::Label {
                label: label.to_owned(),
            });
        }
        count += 1;
        last = label;
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::NumericTld {
            label: last.to_owned(),
        });
    }
    Ok(count)
}

/// Numbers voxgate itself answers (FEATURES §19): an extension may neither equal one nor
/// be a prefix of one (or have one as its prefix), since a phone that dials as soon as its
/// digits match a number would then never reach the other.
pub const RESERVED_NUMBERS: [(&str, &str); 4] = [
    ("999", "voicemail"),
    ("700", "conference"),
    ("112", "emergency"),
    ("911", "emergency"),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NumberError {
    #[error("must not be empty")]
    Empty,
    #[error("numbers starting with '*' are dial codes (FEATURES §19)")]
    DialCode,
    #[error("must be digits only")]
    NotDigits,
    #[error("must be at most {max} digits")]
    TooLong { max: usize },
    #[error("overlaps the {service} number {reserved}")]
    Reserved {
        reserved: &'static str,
        service: &'static str,
    },
}

/// Longest extension number: an E.164 number has at most 15 digits.
pub const MAX_EXTENSION_DIGITS: usize = 15;

/// Checks an extension number (SIG-09).
pub fn check_extension_number(number: &str) -> Result<(), NumberError> {
    if number.is_empty() {
        return Err(NumberError::Empty);
    }
    if number.starts_with('*') {
        return Err(NumberError::DialCode);
    }
    if !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumberError::NotDigits);
    }
    if number.len() > MAX_EXTENSION_DIGITS {
        return Err(NumberError::TooLong {
            max: MAX_EXTENSION_DIGITS,
        });
    }
    for (reserved, service) in RESERVED_NUMBERS {
        if number.starts_with(reserved) || reserved.starts_with(number) {
            return Err(NumberError::Reserved { reserved, service });
        }
    }
    Ok(())
}

/// Shortest SIP password check-config accepts (SEC-09); `auth.min_password_length` may
/// only raise it.
pub const MIN_PASSWORD_CHARS: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    #[error("is {chars} characters long; at least {min} are required")]
    TooShort { chars: usize, min: usize },
    #[error("must not equal the extension number")]
    EqualsNumber,
    #[error("must not equal the auth ID")]
    EqualsAuthId,
}

/// SEC-09: at least `min` characters and neither the extension number nor its auth ID.
pub fn check_password(
    password: &str,
    min: usize,
    number: &str,
    auth_id: &str,
) -> Result<(), PasswordError> {
    let chars = password.chars().count();
    if chars < min {
        return Err(PasswordError::TooShort { chars, min });
    }
    if password == number {
        return Err(PasswordError::EqualsNumber);
    }
    if password == auth_id {
        return Err(PasswordError::EqualsAuthId);
    }
    Ok(())
}

/// Longest auth ID (digest `username`).
pub const MAX_AUTH_ID_CHARS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthIdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error(
        "{found:?} is not allowed: use letters, digits and - _ . ! ~ * ' ( ) & = + $ , ; ? / %"
    )]
    Character { found: char },
}

/// Checks an auth ID, the digest `username` a phone sends (SIG-01, EXT-01): the characters
/// of an RFC 3261 user part without escapes, so it is the same in a SIP URI, inside a
/// quoted digest parameter and in `username:realm:password`.
pub fn check_auth_id(auth_id: &str) -> Result<(), AuthIdError> {
    if auth_id.is_empty() {
        return Err(AuthIdError::Empty);
    }
    if auth_id.chars().count() > MAX_AUTH_ID_CHARS {
        return Err(AuthIdError::TooLong {
            max: MAX_AUTH_ID_CHARS,
        });
    }
    if let Some(found) = auth_id
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/%".contains(c)))
    {
        return Err(AuthIdError::Character { found });
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Ha1Error {
    #[error(
        "must be 32 hexadecimal digits (MD5 of \"auth_id:realm:password\"), not {chars} characters"
    )]
    Length { chars: usize },
    #[error("must be hexadecimal digits only")]
    NotHex,
}

/// Checks an `ha1` value: a hex MD5 digest (RFC 2617 §3.2.2.2). Returns it in lower case,
/// the form digest computations use.
pub fn check_ha1(ha1: &str) -> Result<String, Ha1Error> {
    if ha1.len() != 32 {
        return Err(Ha1Error::Length {
            chars: ha1.chars().count(),
        });
    }
    if !ha1.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Ha1Error::NotHex);
    }
    Ok(ha1.to_ascii_lowercase())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("must not contain control characters, '\"' or '\\'")]
    Character,
}

/// Checks text that goes into a quoted SIP header parameter (`realm`) or is matched
/// against one (scanner User-Agent patterns): non-empty, bounded, and free of what would
/// break out of a quoted string or inject a header.
pub fn check_quoted_text(text: &str, max: usize) -> Result<(), TextError> {
    if text.is_empty() {
        return Err(TextError::Empty);
    }
    if text.chars().count() > max {
        return Err(TextError::TooLong { max });
    }
    if text
        .chars()
        .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return Err(TextError::Character);
    }
    Ok(())
}

/// A fraction between 0 and 1 in thousandths (so configs compare exactly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ratio {
    permille: u16,
}

impl Ratio {
    /// `permille` thousandths; at most 1000.
    pub const fn from_permille(permille: u16) -> Option<Ratio> {
        if permille <= 1000 {
            Some(Ratio { permille })
        } else {
            None
        }
    }

    pub fn permille(self) -> u16 {
        self.permille
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, tenths) = (self.permille / 10, self.permille % 10);
        if tenths == 0 {
            write!(f, "{whole}%")
        } else {
            write!(f, "{whole}.{tenths}%")
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RatioError {
    #[error("expected a fraction like 0.8 or a percentage like \"80%\"")]
    Syntax,
    #[error("{value} is ambiguous: write {value}% as \"{value}%\", or a fraction like 0.8")]
    Integer { value: i64 },
    #[error("must lie between {min} and {max}")]
    OutOfRange { min: Ratio, max: Ratio },
}

/// Parses a fraction (`0.8`) into thousandths, rounded, within `min..=max`.
pub fn ratio_from_fraction(value: f64, min: Ratio, max: Ratio) -> Result<Ratio, RatioError> {
    if !value.is_finite() || !(0.0..=1.0).contains(&value) {
        return Err(RatioError::OutOfRange { min, max });
    }
    // In 0..=1000 after the check above.
    let permille = (value * 1000.0).round() as u16;
    let ratio = Ratio { permille };
    if ratio < min || ratio > max {
        return Err(RatioError::OutOfRange { min, max });
    }
    Ok(ratio)
}

/// Parses a percentage (`"80%"`, `"82.5%"`) within `min..=max`.
pub fn parse_percent(text: &str, min: Ratio, max: Ratio) -> Result<Ratio, RatioError> {
    let number = text.strip_suffix('%').ok_or(RatioError::Syntax)?;
    let valid = !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && number.bytes().filter(|&b| b == b'.').count() <= 1
        && !number.starts_with('.')
        && !number.ends_with('.');
    if !valid {
        return Err(RatioError::Syntax);
    }
    let percent: f64 = number.parse().map_err(|_| RatioError::Syntax)?;
    ratio_from_fraction(percent / 100.0, min, max)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationRangeError {
    #[error("expected MIN-MAX like \"5s-15s\", or one duration like \"10s\"")]
    Syntax,
    #[error("{0}")]
    Duration(#[source] DurationError),
    #[error("the first duration must not be larger than the second")]
    Reversed,
}

/// Parses `"5s-15s"` (inclusive), or `"10s"` meaning exactly that.
pub fn parse_duration_range(text: &str) -> Result<RangeInclusive<Duration>, DurationRangeError> {
    let (min, max) = match text.split_once('-') {
        Some((min, max)) => (min.trim(), max.trim()),
        None => (text.trim(), text.trim()),
    };
    if min.is_empty() || max.is_empty() {
        return Err(DurationRangeError::Syntax);
    }
    let min = parse_duration(min).map_err(DurationRangeError::Duration)?;
    let max = parse_duration(max).map_err(DurationRangeError::Duration)?;
    if min > max {
        return Err(DurationRangeError::Reversed);
    }
    Ok(min..=max)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AclError {
    #[error("expected an address (\"203.0.113.7\"), a network (\"203.0.113.0/24\") or an address and port (\"203.0.113.7:5060\", \"[2001:db8::7]:5060\")")]
    Syntax,
    #[error("{0}")]
    Network(#[source] IpNetError),
    #[error("port 0 is not a source port; leave the port out to allow any")]
    PortZero,
}

/// Parses a trunk ACL entry (SEC-17): an address, a network (host bits zero, as in
/// `security.allow`), or an address with one source port (`IP:PORT`, `[v6]:PORT`).
pub fn parse_acl_source(text: &str) -> Result<AclSource, AclError> {
    if text.contains('/') {
        return text
            .parse::<IpNet>()
            .map(|net| AclSource { net, port: None })
            .map_err(AclError::Network);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(AclSource {
            net: IpNet::host(ip),
            port: None,
        });
    }
    let addr: SocketAddr = text.parse().map_err(|_| AclError::Syntax)?;
    if addr.port() == 0 {
        return Err(AclError::PortZero);
    }
    Ok(AclSource {
        net: IpNet::host(addr.ip()),
        port: Some(addr.port()),
    })
}

/// One `security.blocklist_feeds` entry (SEC-08): a local file or an HTTPS URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FeedSource {
    File(std::path::PathBuf),
    /// The URL as written; `https://` only.
    Https(String),
}

impl FeedSource {
    /// How logs and the `feed` metric label name the feed: the path, or the URL without
    /// any `user:password@`.
    pub fn label(&self) -> String {
        match self {
            FeedSource::File(path) => path.display().to_string(),
            FeedSource::Https(url) => redact_url_userinfo(url),
        }
    }
}

impl fmt::Display for FeedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// Replaces `user:password@` in a URL's authority with `***@`.
fn redact_url_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..scheme_end + 3], &rest[at..]),
        None => url.to_owned(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FeedSourceError {
    #[error("must not be empty")]
    Empty,
    #[error("plain HTTP can be altered on the way; use an https:// URL or a local file")]
    PlainHttp,
    #[error("is not an https://HOST[:PORT]/PATH URL")]
    Url,
}

/// Parses a feed source: `https://…` is a URL, anything else is a file path (SEC-08).
pub fn parse_feed_source(text: &str) -> Result<FeedSource, FeedSourceError> {
    if text.is_empty() {
        return Err(FeedSourceError::Empty);
    }
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("http://") {
        return Err(FeedSourceError::PlainHttp);
    }
    if !lower.starts_with("https://") {
        if lower.contains("://") {
            return Err(FeedSourceError::Url);
        }
        return Ok(FeedSource::File(std::path::PathBuf::from(text)));
    }
    let rest = &text["https://".len()..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.split_once(']') {
            Some((host, port)) if port.is_empty() || port_ok(port) => {
                host.parse::<std::net::Ipv6Addr>()
                    .map_err(|_| FeedSourceError::Url)?;
                host
            }
            _ => return Err(FeedSourceError::Url),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) if port_ok(&format!(":{port}")) => host,
            Some(_) => return Err(FeedSourceError::Url),
            None => host_port,
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
    if !host_ok || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FeedSourceError::Url);
    }
    Ok(FeedSource::Https(text.to_owned()))
}

/// `":PORT"` with a port 1-65535.
fn port_ok(colon_port: &str) -> bool {
    colon_port
        .strip_prefix(':')
        .and_then(|p| p.parse::<u16>().ok())
        .is_some_and(|p| p != 0)
}

/// Longest first name, last name or department name.
pub const MAX_NAME_CHARS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("must not contain control characters")]
    Control,
    #[error("is not an email address like \"alice@example.com\"")]
    Email,
    #[error("must be digits with an optional leading '+', at most 15 digits (E.164)")]
    PhoneNumber,
    #[error("is not a language tag like \"en\" or \"de-CH\"")]
    Language,
}

/// A person's or department's name: 1-64 characters, no control characters (names end
/// up in SIP display names and in emails).
pub fn check_name(text: &str) -> Result<(), FieldError> {
    if text.trim().is_empty() {
        return Err(FieldError::Empty);
    }
    if text.chars().count() > MAX_NAME_CHARS {
        return Err(FieldError::TooLong {
            max: MAX_NAME_CHARS,
        });
    }
    if text.chars().any(char::is_control) {
        return Err(FieldError::Control);
    }
    Ok(())
}

/// A basic email syntax check: `local@domain.tld`, no spaces or control characters, at most
/// 254 characters (RFC 5321 §4.5.3.1.3). Whether it is deliverable is for the mail server.
pub fn check_email(text: &str) -> Result<(), FieldError> {
    if text.len() > 254 {
        return Err(FieldError::TooLong { max: 254 });
    }
    let Some((local, domain)) = text.rsplit_once('@') else {
        return Err(FieldError::Email);
    };
    let labels_ok = domain.split('.').count() >= 2
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && local
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !"<>()[]\\,;:\"".contains(c));
    if local_ok && labels_ok {
        Ok(())
    } else {
        Err(FieldError::Email)
    }
}

/// An E.164-style number (`outbound_caller_id`, `mobile`): an optional `+` and 1-15 digits.
pub fn check_phone_number(text: &str) -> Result<(), FieldError> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if !digits.is_empty()
        && digits.len() <= MAX_EXTENSION_DIGITS
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        Ok(())
    } else {
        Err(FieldError::PhoneNumber)
    }
}

/// A BCP 47 language tag as prompts and the web console use it: a 2-3 letter language,
/// then optional subtags of 1-8 letters or digits (`en`, `de-CH`, `zh-Hant-TW`).
pub fn check_language(text: &str) -> Result<(), FieldError> {
    let mut parts = text.split('-');
    let primary = parts.next().unwrap_or_default();
    let primary_ok =
        (2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_alphabetic());
    let rest_ok =
        parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    if primary_ok && rest_ok && text.len() <= 35 {
        Ok(())
    } else {
        Err(FieldError::Language)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    #[error("must be 4 to 10 digits")]
    Syntax,
    #[error("must not equal the extension number")]
    EqualsNumber,
    #[error("must not be one digit repeated")]
    Repeated,
}

/// A voicemail PIN (EXT-01, VM-03): 4-10 digits, not the extension number, not one digit
/// repeated (the first PINs anyone tries).
pub fn check_voicemail_pin(pin: &str, number: &str) -> Result<(), PinError> {
    if !(4..=10).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PinError::Syntax);
    }
    if pin == number {
        return Err(PinError::EqualsNumber);
    }
    if pin.bytes().all(|b| b == pin.as_bytes()[0]) {
        return Err(PinError::Repeated);
    }
    Ok(())
}

/// An extension's role (EXT-01): what the web console and API let its user do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Role {
    #[default]
    User,
    Manager,
    Admin,
}

impl Role {
    pub fn from_config(text: &str) -> Option<Role> {
        match text {
            "user" => Some(Role::User),
            "manager" => Some(Role::Manager),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    #[allow(dead_code, reason = "for the API and web console (later milestones)")]
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }
}

/// A secret (SIP password). `Debug` and `Display` never show it, so a logged config does
/// not leak credentials (SEC-09, MON-07).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: String) -> Self {
        Secret(secret)
    }

    /// The secret itself, for digest computation. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn config_listen_specs() {
        let l = parse_listen("udp:127.0.0.1:5060").expect("valid");
        assert_eq!(l.transport, Transport::Udp);
        assert_eq!(l.addr, "127.0.0.1:5060".parse().expect("addr"));
        let l = parse_listen("tcp:[::1]:5060").expect("valid");
        assert_eq!(l.addr, "[::1]:5060".parse().expect("addr"));
        let l = parse_listen("tls:0.0.0.0:5061").expect("valid");
        assert_eq!(l.transport, Transport::Tls);
        assert_eq!(l.to_string(), "tls:0.0.0.0:5061");
        // Default ports.
        assert_eq!(parse_listen("tls:[::]").expect("valid").addr.port(), 5061);
        assert_eq!(
            parse_listen("udp:10.0.0.1").expect("valid").addr.port(),
            5060
        );
        assert_eq!(
            parse_listen("udp:127.0.0.1:0").expect("valid").addr.port(),
            0
        );

        assert_eq!(
            parse_listen("127.0.0.1:5060"),
            Err(ListenError::Transport {
                transport: "127.0.0.1".into()
            })
        );
        assert_eq!(parse_listen("udp"), Err(ListenError::Syntax));
        assert_eq!(parse_listen("udp:"), Err(ListenError::Syntax));
        assert!(matches!(
            parse_listen("sctp:1.2.3.4:5060"),
            Err(ListenError::Transport { .. })
        ));
        assert!(matches!(
            parse_listen("UDP:1.2.3.4:5060"),
            Err(ListenError::Transport { .. })
        ));
        assert!(matches!(
            parse_listen("udp:localhost:5060"),
            Err(ListenError::Address { .. })
        ));
        assert!(matches!(
            parse_listen("udp:::1"),
            Err(ListenError::Address { .. })
        ));
        assert!(matches!(
            parse_listen("udp:1.2.3.4:99999"),
            Err(ListenError::Address { .. })
        ));
    }

    #[test]
    fn config_durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("4s"), Ok(Duration::from_secs(4)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(
            parse_duration("4"),
            Err(DurationError::MissingUnit { number: 4 })
        );
        assert_eq!(parse_duration("s"), Err(DurationError::Syntax));
        assert_eq!(parse_duration(""), Err(DurationError::Syntax));
        assert_eq!(parse_duration("-1s"), Err(DurationError::Syntax));
        assert_eq!(
            parse_duration("4 s"),
            Err(DurationError::Unit { unit: " s".into() })
        );
        assert_eq!(
            parse_duration("1.5s"),
            Err(DurationError::Unit { unit: ".5s".into() })
        );
        assert_eq!(
            parse_duration("4sec"),
            Err(DurationError::Unit { unit: "sec".into() })
        );
        assert_eq!(
            parse_duration("99999999999999999999h"),
            Err(DurationError::Overflow)
        );
        assert_eq!(
            parse_duration("18446744073709551615h"),
            Err(DurationError::Overflow)
        );
    }

    #[test]
    fn config_port_ranges() {
        assert_eq!(parse_port_range("20000-29999"), Ok(20000..=29999));
        assert_eq!(parse_port_range("7000-10999"), Ok(7000..=10999));
        assert_eq!(parse_port_range("20000-20001"), Ok(20000..=20001));
        assert_eq!(
            parse_port_range("20001-29999"),
            Err(PortRangeError::OddStart)
        );
        assert_eq!(
            parse_port_range("1000-2000"),
            Err(PortRangeError::Privileged)
        );
        assert_eq!(
            parse_port_range("30000-20000"),
            Err(PortRangeError::TooSmall)
        );
        assert_eq!(
            parse_port_range("20000-20000"),
            Err(PortRangeError::TooSmall)
        );
        assert_eq!(parse_port_range("20000"), Err(PortRangeError::Syntax));
        assert_eq!(parse_port_range("20000-70000"), Err(PortRangeError::Syntax));
        assert_eq!(parse_port_range("a-b"), Err(PortRangeError::Syntax));
    }

    #[test]
    fn config_cidrs() {
        let net = parse_cidr("192.0.2.0/24").expect("valid");
        assert!(net.contains(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 77))));
        assert!(!net.contains(IpAddr::V4(Ipv4Addr::new(192, 0, 3, 1))));
        assert!(net.contains("::ffff:192.0.2.9".parse().expect("mapped")));
        let host = parse_cidr("198.51.100.7").expect("valid");
        assert_eq!(host.prefix_len(), 32);
        assert!(host.contains("198.51.100.7".parse().expect("ip")));
        assert!(!host.contains("198.51.100.8".parse().expect("ip")));
        let v6 = parse_cidr("2001:db8::/32").expect("valid");
        assert!(v6.contains(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1))));
        assert!(!v6.contains(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let all = parse_cidr("0.0.0.0/0").expect("valid");
        assert!(all.contains(IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8))));
        assert_eq!(parse_cidr("::/0").expect("valid").prefix_len(), 0);

        assert!(matches!(
            parse_cidr("192.0.2.1/24"),
            Err(IpNetError::HostBits { network }) if network.to_string() == "192.0.2.0/24"
        ));
        assert_eq!(
            parse_cidr("192.0.2.0/33"),
            Err(IpNetError::PrefixTooLong { max: 32 })
        );
        assert_eq!(
            parse_cidr("2001:db8::/129"),
            Err(IpNetError::PrefixTooLong { max: 128 })
        );
        assert_eq!(
            parse_cidr("192.0.2.0/999"),
            Err(IpNetError::PrefixTooLong { max: 32 })
        );
        assert_eq!(parse_cidr("192.0.2.0/"), Err(IpNetError::Syntax));
        assert_eq!(parse_cidr("192.0.2.0/-1"), Err(IpNetError::Syntax));
        assert_eq!(parse_cidr("example.com/24"), Err(IpNetError::Syntax));
    }

    #[test]
    fn config_domains_and_aliases() {
        assert_eq!(check_fqdn("pbx.example.test"), Ok(()));
        assert_eq!(check_fqdn("voxgate.localhost"), Ok(()));
        assert_eq!(check_fqdn("a-1.b2.example"), Ok(()));
        assert_eq!(check_fqdn("localhost"), Err(DomainError::NotQualified));
        assert_eq!(check_fqdn(""), Err(DomainError::Empty));
        assert_eq!(check_fqdn("192.0.2.1"), Err(DomainError::IpAddress));
        assert_eq!(check_fqdn("::1"), Err(DomainError::IpAddress));
        assert_eq!(check_fqdn("[::1]"), Err(DomainError::IpAddress));
        assert!(matches!(
            check_fqdn("pbx..example"),
            Err(DomainError::Label { .. })
        ));
        assert!(matches!(
            check_fqdn("pbx.example."),
            Err(DomainError::Label { .. })
        ));
        assert!(matches!(
            check_fqdn("-pbx.example"),
            Err(DomainError::Label { .. })
        ));
        assert!(matches!(
            check_fqdn("pbx_1.example"),
            Err(DomainError::Label { .. })
        ));
        assert!(matches!(
            check_fqdn("pbx.example.com:5060"),
            Err(DomainError::Label { .. })
        ));
        assert!(matches!(
            check_fqdn("1.2.3.4.5"),
            Err(DomainError::NumericTld { .. })
        ));
        assert!(matches!(
            check_fqdn(&"a.".repeat(127)),
            Err(DomainError::TooLong)
        ));

        assert_eq!(check_alias("pbx").as_deref(), Ok("pbx"));
        assert_eq!(check_alias("203.0.113.5").as_deref(), Ok("203.0.113.5"));
        assert_eq!(check_alias("[2001:db8::5]").as_deref(), Ok("2001:db8::5"));
        assert_eq!(check_alias("2001:db8::5").as_deref(), Ok("2001:db8::5"));
        assert!(check_alias("bad host").is_err());
    }

    #[test]
    fn config_extension_numbers() {
        assert_eq!(check_extension_number("100"), Ok(()));
        assert_eq!(check_extension_number("804"), Ok(()));
        assert_eq!(check_extension_number("7100"), Ok(()));
        assert_eq!(check_extension_number(""), Err(NumberError::Empty));
        assert_eq!(check_extension_number("*30"), Err(NumberError::DialCode));
        assert_eq!(check_extension_number("10a"), Err(NumberError::NotDigits));
        assert_eq!(check_extension_number("+4930"), Err(NumberError::NotDigits));
        assert_eq!(
            check_extension_number("1234567890123456"),
            Err(NumberError::TooLong { max: 15 })
        );
        for (number, reserved) in [
            ("999", "999"),
            ("700", "700"),
            ("112", "112"),
            ("911", "911"),
            ("1120", "112"),
            ("11", "112"),
            ("9", "999"),
            ("7001", "700"),
        ] {
            assert!(
                matches!(check_extension_number(number), Err(NumberError::Reserved { reserved: r, .. }) if r == reserved),
                "{number}"
            );
        }
    }

    #[test]
    fn config_passwords() {
        let min = MIN_PASSWORD_CHARS;
        assert_eq!(
            check_password("correct-horse-battery", min, "100", "100"),
            Ok(())
        );
        assert_eq!(
            check_password("short", min, "100", "100"),
            Err(PasswordError::TooShort { chars: 5, min: 12 })
        );
        // Characters, not bytes: 11 'é' are 22 bytes but still too short.
        assert_eq!(
            check_password(&"é".repeat(11), min, "100", "100"),
            Err(PasswordError::TooShort { chars: 11, min: 12 })
        );
        assert_eq!(
            check_password("correct-horse-battery", 24, "100", "100"),
            Err(PasswordError::TooShort { chars: 21, min: 24 })
        );
        assert_eq!(
            check_password("100200300400", min, "100200300400", "alice"),
            Err(PasswordError::EqualsNumber)
        );
        assert_eq!(
            check_password("alice-desk-phone", min, "100", "alice-desk-phone"),
            Err(PasswordError::EqualsAuthId)
        );
    }

    #[test]
    fn config_auth_ids_and_ha1() {
        assert_eq!(check_auth_id("100"), Ok(()));
        assert_eq!(check_auth_id("alice.desk-1_x"), Ok(()));
        assert_eq!(check_auth_id(""), Err(AuthIdError::Empty));
        assert_eq!(
            check_auth_id(&"a".repeat(65)),
            Err(AuthIdError::TooLong { max: 64 })
        );
        for (bad, found) in [
            ("al ice", ' '),
            ("al\"ice", '"'),
            ("a:b", ':'),
            ("a@b", '@'),
            ("a\\b", '\\'),
            ("é", 'é'),
        ] {
            assert_eq!(
                check_auth_id(bad),
                Err(AuthIdError::Character { found }),
                "{bad}"
            );
        }
        assert_eq!(
            check_ha1("0123456789ABCDEFabcdef0123456789").as_deref(),
            Ok("0123456789abcdefabcdef0123456789")
        );
        assert_eq!(check_ha1("abc"), Err(Ha1Error::Length { chars: 3 }));
        assert_eq!(
            check_ha1("0123456789abcdefabcdef012345678g"),
            Err(Ha1Error::NotHex)
        );
        // 16 two-byte characters are 32 bytes but not 32 digits.
        assert_eq!(check_ha1(&"é".repeat(16)), Err(Ha1Error::NotHex));
    }

    #[test]
    fn config_quoted_text() {
        assert_eq!(check_quoted_text("pbx.example.test", 253), Ok(()));
        assert_eq!(check_quoted_text("friendly-scanner", 253), Ok(()));
        assert_eq!(check_quoted_text("", 253), Err(TextError::Empty));
        assert_eq!(
            check_quoted_text("abcd", 3),
            Err(TextError::TooLong { max: 3 })
        );
        for bad in ["a\"b", "a\\b", "a\r\nVia: x", "tab\there"] {
            assert_eq!(
                check_quoted_text(bad, 253),
                Err(TextError::Character),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn config_ratios() {
        let min = Ratio::from_permille(10).expect("valid");
        let max = Ratio::from_permille(1000).expect("valid");
        let r = |p| Ratio::from_permille(p).expect("valid");
        assert_eq!(ratio_from_fraction(0.8, min, max), Ok(r(800)));
        assert_eq!(ratio_from_fraction(1.0, min, max), Ok(r(1000)));
        assert_eq!(ratio_from_fraction(0.8255, min, max), Ok(r(826)));
        for bad in [0.0, 0.001, 1.01, -0.5, f64::NAN, f64::INFINITY] {
            assert_eq!(
                ratio_from_fraction(bad, min, max),
                Err(RatioError::OutOfRange { min, max }),
                "{bad}"
            );
        }
        assert_eq!(parse_percent("80%", min, max), Ok(r(800)));
        assert_eq!(parse_percent("82.5%", min, max), Ok(r(825)));
        assert_eq!(parse_percent("100%", min, max), Ok(r(1000)));
        assert!(matches!(
            parse_percent("101%", min, max),
            Err(RatioError::OutOfRange { .. })
        ));
        for bad in [
            "80", "%", "8 0%", ".5%", "5.%", "1.2.3%", "-5%", "80%%", "eighty%",
        ] {
            assert_eq!(
                parse_percent(bad, min, max),
                Err(RatioError::Syntax),
                "{bad}"
            );
        }
        assert_eq!(r(800).to_string(), "80%");
        assert_eq!(r(825).to_string(), "82.5%");
        assert_eq!(Ratio::from_permille(1001), None);
    }

    #[test]
    fn config_duration_ranges() {
        let s = Duration::from_secs;
        assert_eq!(parse_duration_range("5s-15s"), Ok(s(5)..=s(15)));
        assert_eq!(parse_duration_range("5s - 1m"), Ok(s(5)..=s(60)));
        assert_eq!(parse_duration_range("10s"), Ok(s(10)..=s(10)));
        assert_eq!(
            parse_duration_range("15s-5s"),
            Err(DurationRangeError::Reversed)
        );
        assert_eq!(parse_duration_range("-5s"), Err(DurationRangeError::Syntax));
        assert_eq!(parse_duration_range("5s-"), Err(DurationRangeError::Syntax));
        assert_eq!(
            parse_duration_range("5-15"),
            Err(DurationRangeError::Duration(DurationError::MissingUnit {
                number: 5
            }))
        );
    }

    #[test]
    fn config_secret_is_redacted() {
        let s = Secret::new("hunter2hunter2".into());
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.to_string(), "***");
        assert_eq!(s.expose(), "hunter2hunter2");
    }
}
