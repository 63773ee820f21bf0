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
    #[error("expected a whole number and a unit (ms, s, m or h), like \"500ms\" or \"4s\"")]
    Syntax,
    #[error("a duration needs a unit: write \"{number}s\" or \"{number}ms\"")]
    MissingUnit { number: i64 },
    #[error("unknown unit {unit:?}; use ms, s, m or h")]
    Unit { unit: String },
    #[error("too large")]
    Overflow,
}

/// Parses `500ms`, `4s`, `10m`, `1h`.
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

/// An IP network (`192.0.2.0/24`, `2001:db8::/32`; a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// Whether `ip` lies in this network. IPv4-mapped IPv6 addresses count as IPv4, since a
    /// dual-stack socket reports IPv4 peers that way.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask_u32(self.prefix_len);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask_u128(self.prefix_len);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

fn mask_u32(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0)
}

fn mask_u128(prefix_len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix_len))
        .unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrError {
    #[error("expected an IP address or network, like \"192.0.2.0/24\" or \"2001:db8::/32\"")]
    Syntax,
    #[error("the prefix length must be at most {max}")]
    PrefixTooLong { max: u8 },
    #[error("host bits are set; the network is {network}")]
    HostBits { network: Cidr },
}

/// Parses a network. Host bits must be zero, so `192.0.2.1/24` (a likely typo) is refused.
pub fn parse_cidr(text: &str) -> Result<Cidr, CidrError> {
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (text, None),
    };
    let network: IpAddr = addr.parse().map_err(|_| CidrError::Syntax)?;
    let max = if network.is_ipv4() { 32 } else { 128 };
    let prefix_len = match prefix {
        None => max,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
            .parse::<u8>()
            .map_err(|_| CidrError::PrefixTooLong { max })?,
        Some(_) => return Err(CidrError::Syntax),
    };
    if prefix_len > max {
        return Err(CidrError::PrefixTooLong { max });
    }
    let masked = match network {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & mask_u32(prefix_len)).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & mask_u128(prefix_len)).into()),
    };
    let cidr = Cidr {
        network: masked,
        prefix_len,
    };
    if masked != network {
        return Err(CidrError::HostBits { network: cidr });
    }
    Ok(cidr)
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

/// Shortest SIP password check-config accepts (SEC-09).
pub const MIN_PASSWORD_CHARS: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    #[error("is {chars} characters long; at least {min} are required")]
    TooShort { chars: usize, min: usize },
    #[error("must not equal the extension number")]
    EqualsNumber,
}

/// SEC-09: at least 12 characters and not the extension number.
pub fn check_password(password: &str, number: &str) -> Result<(), PasswordError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort {
            chars,
            min: MIN_PASSWORD_CHARS,
        });
    }
    if password == number {
        return Err(PasswordError::EqualsNumber);
    }
    Ok(())
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
    #[allow(dead_code, reason = "read by the Redis store, M11")]
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
        assert_eq!(host.prefix_len, 32);
        assert!(host.contains("198.51.100.7".parse().expect("ip")));
        assert!(!host.contains("198.51.100.8".parse().expect("ip")));
        let v6 = parse_cidr("2001:db8::/32").expect("valid");
        assert!(v6.contains(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1))));
        assert!(!v6.contains(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let all = parse_cidr("0.0.0.0/0").expect("valid");
        assert!(all.contains(IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8))));
        assert_eq!(parse_cidr("::/0").expect("valid").prefix_len, 0);

        assert!(matches!(
            parse_cidr("192.0.2.1/24"),
            Err(CidrError::HostBits { network }) if network.to_string() == "192.0.2.0/24"
        ));
        assert_eq!(
            parse_cidr("192.0.2.0/33"),
            Err(CidrError::PrefixTooLong { max: 32 })
        );
        assert_eq!(
            parse_cidr("2001:db8::/129"),
            Err(CidrError::PrefixTooLong { max: 128 })
        );
        assert_eq!(
            parse_cidr("192.0.2.0/999"),
            Err(CidrError::PrefixTooLong { max: 32 })
        );
        assert_eq!(parse_cidr("192.0.2.0/"), Err(CidrError::Syntax));
        assert_eq!(parse_cidr("192.0.2.0/-1"), Err(CidrError::Syntax));
        assert_eq!(parse_cidr("example.com/24"), Err(CidrError::Syntax));
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
        assert_eq!(check_password("correct-horse-battery", "100"), Ok(()));
        assert_eq!(
            check_password("short", "100"),
            Err(PasswordError::TooShort { chars: 5, min: 12 })
        );
        // Characters, not bytes: 11 'é' are 22 bytes but still too short.
        assert_eq!(
            check_password(&"é".repeat(11), "100"),
            Err(PasswordError::TooShort { chars: 11, min: 12 })
        );
        assert_eq!(
            check_password("100200300400", "100200300400"),
            Err(PasswordError::EqualsNumber)
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
