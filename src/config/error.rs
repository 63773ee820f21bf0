//! Config errors: what went wrong ([`ConfigErrorKind`]) and where ([`ConfigError`], shown as
//! `file:line:col: message`, 1-based, pointing at the offending key or value).
//!
//! Owns the conversion from TOML byte spans to line and column. Does not decide what is
//! valid (that is `validate`).

use std::io;
use std::ops::Range;
use std::time::Duration;

use voxgate_controlplane::security::IpNetError;

use crate::config::value::{
    AclError, AuthIdError, DomainError, DurationError, DurationRangeError, FeedSourceError,
    FieldError, Ha1Error, ListenError, NumberError, PasswordError, PinError, PortRangeError,
    RatioError, TextError,
};
use crate::config::{IpNet, Listen};
use crate::tls::TlsError;

/// A config file that cannot be used. `Display` is `file:line:col: message`
/// (or `file: message` when the file cannot be read).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{origin}: {source}")]
    Io {
        origin: String,
        #[source]
        source: io::Error,
    },
    #[error("{origin}:{line}:{column}: {kind}")]
    Invalid {
        origin: String,
        /// 1-based line of the offending key or value.
        line: usize,
        /// 1-based column, counted in characters.
        column: usize,
        /// Boxed: errors travel through every validation function's `Result`.
        kind: Box<ConfigErrorKind>,
    },
}

impl ConfigError {
    /// 1-based (line, column), when the file could be read.
    #[cfg(test)]
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            ConfigError::Invalid { line, column, .. } => Some((*line, *column)),
            ConfigError::Io { .. } => None,
        }
    }
}

/// What is wrong with a config that could be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// TOML syntax, an unknown or missing key, or a value of the wrong type, in the words of
    /// the TOML parser (which names the key and, for unknown keys, the allowed ones).
    #[error("{message}")]
    Toml { message: String },
    #[error("`{key}` is required{why}")]
    MissingKey {
        key: &'static str,
        /// Why it has no default, with a leading separator ("" when obvious).
        why: &'static str,
    },
    #[error("`{key}` must be between {min} and {max}, not {value}")]
    OutOfRange {
        key: &'static str,
        value: i64,
        min: i64,
        max: i64,
    },
    #[error("`{key}`: {source}")]
    Duration {
        key: &'static str,
        #[source]
        source: DurationError,
    },
    #[error("`{key}` must be between {} and {}, not {}", fmt_duration(*min), fmt_duration(*max), fmt_duration(*value))]
    DurationOutOfRange {
        key: &'static str,
        value: Duration,
        min: Duration,
        max: Duration,
    },
    #[error(
        "`sip.timers.t2` ({}) must not be shorter than `sip.timers.t1` ({})",
        fmt_duration(*t2),
        fmt_duration(*t1)
    )]
    T2BelowT1 { t1: Duration, t2: Duration },
    #[error("`{key}` ({value}) must not be larger than `{limit_key}` ({limit})")]
    AboveOther {
        key: &'static str,
        value: i64,
        limit_key: &'static str,
        limit: i64,
    },
    /// A string key with a fixed set of spellings (`log.level`, `tls.min_version` …).
    #[error("`{key}`: {value:?} is not one of {expected}")]
    NotOneOf {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("`{key}`: {value:?} is not an IP address")]
    IpAddress { key: &'static str, value: String },
    #[error("`{key}`: {value:?} is not an IP address and port like \"127.0.0.1:8080\" or \"[::1]:8080\"")]
    SocketAddress { key: &'static str, value: String },
    #[error("`sip.listen`: {value:?}: {source}")]
    Listen {
        value: String,
        #[source]
        source: ListenError,
    },
    #[error("`sip.listen`: {listen} is listed twice")]
    DuplicateListener { listen: Listen },
    #[error("{first} and {second} would both bind {} port {port}", if *tcp { "TCP" } else { "UDP" })]
    PortClash {
        first: String,
        second: String,
        tcp: bool,
        port: u16,
    },
    #[error("`sip.listen`: {listen} needs `tls.cert` and `tls.key`")]
    TlsWithoutCertificate { listen: Listen },
    #[error("`tls.cert` and `tls.key` must be set together")]
    TlsHalfConfigured,
    #[error("`tls`: {source}")]
    Tls {
        #[source]
        source: TlsError,
    },
    #[error("`sip.domain`: {value:?}: {source}")]
    Domain {
        value: String,
        #[source]
        source: DomainError,
    },
    #[error("`sip.aliases`: {value:?}: {source}")]
    Alias {
        value: String,
        #[source]
        source: DomainError,
    },
    #[error("`media.rtp_ports`: {value:?}: {source}")]
    PortRange {
        value: String,
        #[source]
        source: PortRangeError,
    },
    #[error("`{key}`: {value:?}: {source}")]
    Cidr {
        key: &'static str,
        value: String,
        #[source]
        source: IpNetError,
    },
    #[error("`security.block`: {network} is also in `security.allow`")]
    AllowedAndBlocked { network: IpNet },
    #[error("`sip.listen`: {network} is in both `allow` and `block` of {listen}")]
    ListenAllowedAndBlocked { listen: Listen, network: IpNet },
    #[error("`security.blocklist_feeds`: {value:?} {source}")]
    BlockFeed {
        value: String,
        #[source]
        source: FeedSourceError,
    },
    #[error("`security.blocklist_feed_ca`: {path}: {source}")]
    FeedCa {
        path: String,
        #[source]
        source: FeedCaError,
    },
    #[error("trunk name {value:?} must be 1-64 letters, digits, '-' or '_'")]
    TrunkName { value: String },
    #[error("trunk {name:?} is defined twice (first on line {first_line})")]
    DuplicateTrunk { name: String, first_line: usize },
    #[error("trunk {trunk:?}: `acl` {value:?}: {source}")]
    TrunkAcl {
        trunk: String,
        value: String,
        #[source]
        source: AclError,
    },
    #[error("trunk {trunk:?}: `acl` entry {value} is already on trunk {first_trunk:?}")]
    DuplicateTrunkAcl {
        trunk: String,
        value: String,
        first_trunk: String,
    },
    #[error("`{key}`: {value} is listed twice")]
    Duplicate { key: &'static str, value: String },
    #[error("`{key}` must not be empty{why}")]
    EmptyList {
        key: &'static str,
        /// Why, with a leading separator ("" when obvious).
        why: &'static str,
    },
    #[error("`{key}`: {value:?} {source}")]
    QuotedText {
        key: &'static str,
        value: String,
        #[source]
        source: TextError,
    },
    #[error("`{key}` must be whole seconds (SIP counts in seconds), not {}", fmt_duration(*value))]
    NotWholeSeconds { key: &'static str, value: Duration },
    #[error("`{key}` ({}) must not be larger than `{limit_key}` ({})", fmt_duration(*value), fmt_duration(*limit))]
    DurationAboveOther {
        key: &'static str,
        value: Duration,
        limit_key: &'static str,
        limit: Duration,
    },
    #[error("`{key}`: {source}")]
    Ratio {
        key: &'static str,
        #[source]
        source: RatioError,
    },
    #[error("`{key}`: {value:?}: {source}")]
    DurationRange {
        key: &'static str,
        value: String,
        #[source]
        source: DurationRangeError,
    },
    #[error("`store.redis`: {value:?} is not a redis://HOST[:PORT][/DB] or rediss:// URL")]
    RedisUrl { value: String },
    #[error("`store.path` must not be empty")]
    EmptyPath,
    #[error("extension number {value:?}: {source}")]
    ExtensionNumber {
        value: String,
        #[source]
        source: NumberError,
    },
    #[error("extension {number} is defined twice (first on line {first_line})")]
    DuplicateExtension { number: String, first_line: usize },
    #[error("extension {number}: password {source} (SEC-09)")]
    WeakPassword {
        number: String,
        #[source]
        source: PasswordError,
    },
    #[error("extension {number}: `name` must not contain control characters")]
    ExtensionName { number: String },
    #[error("extension {number}: `{key}` {value:?} {source}")]
    ExtensionField {
        number: String,
        key: &'static str,
        value: String,
        #[source]
        source: FieldError,
    },
    /// The PIN is a secret: the message does not repeat it.
    #[error("extension {number}: `voicemail_pin` {source}")]
    VoicemailPin {
        number: String,
        #[source]
        source: PinError,
    },
    #[error("extension {number}: `auth_id` {value:?}: {source}")]
    AuthId {
        number: String,
        value: String,
        #[source]
        source: AuthIdError,
    },
    #[error("extension {number}: auth ID {auth_id:?} is already used by extension {first_number} (line {first_line})")]
    DuplicateAuthId {
        number: String,
        auth_id: String,
        first_number: String,
        first_line: usize,
    },
    #[error("extension {number}: set exactly one of `password` and `ha1`{}", if *both { ", not both" } else { "" })]
    ExtensionCredential { number: String, both: bool },
    #[error("extension {number}: `ha1` {source}")]
    Ha1 {
        number: String,
        #[source]
        source: Ha1Error,
    },
    #[error(
        "extension {number}: `ha1` is an MD5 digest, so `auth.algorithms` must include \"MD5\""
    )]
    Ha1NeedsMd5 { number: String },
}

/// Why `security.blocklist_feed_ca` cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeedCaError {
    #[error("{0}")]
    Read(#[source] io::Error),
    #[error("not PEM: {0}")]
    Pem(#[source] rustls_pki_types::pem::Error),
    #[error("holds no CERTIFICATE")]
    NoCertificates,
}

/// Formats a duration in the config's own units (`500ms`, `4s`, `10m`, `1h`).
pub(crate) fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 3_600_000 == 0 && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// 1-based (line, column) of byte `offset` in `text`; the column counts characters.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Builds [`ConfigError::Invalid`] for errors found in `text`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Locator<'a> {
    pub(crate) text: &'a str,
    pub(crate) origin: &'a str,
}

impl Locator<'_> {
    pub(crate) fn at(&self, span: Range<usize>, kind: ConfigErrorKind) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError::Invalid {
            origin: self.origin.to_owned(),
            line,
            column,
            kind: Box::new(kind),
        }
    }

    /// The line of `span`: counts from the start of the text, so call it only while
    /// reporting an error (once per load), never per entry.
    pub(crate) fn line_of(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }

    pub(crate) fn toml(&self, err: toml::de::Error) -> ConfigError {
        // A missing top-level key has no span: report the start of the file.
        let span = err.span().unwrap_or(0..0);
        self.at(
            span,
            ConfigErrorKind::Toml {
                message: err.message().trim_end().to_owned(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_line_col_is_one_based_and_counts_chars() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 4), (1, 5));
        assert_eq!(line_col(text, 6), (2, 1));
        // 'é' is two bytes but one column.
        let eq = text.find('=').map(|_| text.rfind('=').expect("second '='"));
        assert_eq!(line_col(text, eq.expect("found")), (2, 4));
        assert_eq!(line_col(text, 10_000), (3, 1));
    }

    #[test]
    fn config_fmt_duration_uses_config_units() {
        assert_eq!(fmt_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(fmt_duration(Duration::from_secs(4)), "4s");
        assert_eq!(fmt_duration(Duration::from_secs(600)), "10m");
        assert_eq!(fmt_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(fmt_duration(Duration::ZERO), "0s");
    }
}
