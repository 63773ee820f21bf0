//! voxgate's configuration: one TOML file read strictly into validated, typed values
//! (SIG-26).
//!
//! Owns: the file's keys and their defaults (documented in `configs/reference.toml`), the
//! rejection of unknown keys, validation of every value and of the relations between them
//! (ranges, listeners and ports, certificates, extension numbers and passwords), errors as
//! `file:line:col: message`, the embedded demo configuration, and the translation into the
//! control plane's [`EndpointConfig`].
//! Does not own: reloading and swapping (the binary's `main`/admin code holds the
//! `ArcSwap<Config>` and calls [`load_file`] again), binding sockets (the driver), or
//! protocol defaults (they live with the control plane's types and are reused here).
//!
//! Relative paths (`store.path`, `tls.cert`, `tls.key`) are relative to the working
//! directory.

// This module is the binary's config API; `main` uses only part of it today and the driver,
// admin API and later milestones use the rest.

pub mod error;
mod raw;
mod validate;
pub mod value;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::{NonZeroU32, NonZeroU8, NonZeroUsize};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use voxgate_controlplane::config::{LocalListener, MessageLimits, TimerConfig};
use voxgate_controlplane::sip::Transport;
use voxgate_controlplane::EndpointConfig;

pub use crate::tls::TlsMinVersion;
pub use error::ConfigError;
pub use value::{Cidr, Listen, Secret};

/// The embedded demo configuration (loopback only), used when voxgate runs without
/// `--config`.
const DEMO_TOML: &str = include_str!("../../configs/demo.toml");

/// A validated configuration. Every field holds typed, checked values.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub sip: SipConfig,
    pub media: MediaConfig,
    pub admin: AdminConfig,
    pub store: StoreConfig,
    /// `[ng]`: the rtpengine-compatible control listener, off unless the section is present.
    pub ng: Option<NgConfig>,
    pub security: SecurityConfig,
    pub limits: LimitsConfig,
    pub tls: TlsConfig,
    pub log: LogConfig,
    /// `[[extension]]` entries, in file order; numbers are unique.
    pub extensions: Vec<ExtensionConfig>,
}

/// `[sip]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipConfig {
    /// `sip.listen`. Default: UDP and TCP on 0.0.0.0:5060, plus TLS on 0.0.0.0:5061 when
    /// `tls.cert` is set. An explicit empty list means no SIP at all (ng-only media relay).
    pub listen: Vec<Listen>,
    /// `sip.domain`: the system identity, a fully qualified domain name (SIG-22). Required.
    pub domain: String,
    /// `sip.aliases`: other host names or IP addresses (for example a public address in
    /// front of NAT) that mean voxgate itself in a Request-URI.
    pub aliases: Vec<String>,
    /// `sip.max_forwards`: Max-Forwards on requests voxgate starts. RFC 3261 §8.1.1.6: 70.
    pub max_forwards: NonZeroU8,
    /// `sip.force_rport`: answer UDP requests at their source port even without `rport`
    /// (Kamailio's `force_rport()`); at the edge nearly every phone is behind NAT.
    pub force_rport: bool,
    /// `[sip.timers]` t1, t2, t4 (RFC 3261 §17; T2 ≥ T1).
    pub timers: TimerConfig,
}

impl SipConfig {
    /// RFC 3261 §8.1.1.6.
    pub const DEFAULT_MAX_FORWARDS: NonZeroU8 = NonZeroU8::new(70).expect("70 is not zero");

    /// The default SIP listeners (SEC-01): UDP and TCP on 0.0.0.0:5060, and TLS on
    /// 0.0.0.0:5061 when a certificate is configured.
    pub fn default_listen(with_tls: bool) -> Vec<Listen> {
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let mut listen = vec![
            Listen {
                transport: Transport::Udp,
                addr: SocketAddr::new(any, 5060),
            },
            Listen {
                transport: Transport::Tcp,
                addr: SocketAddr::new(any, 5060),
            },
        ];
        if with_tls {
            listen.push(Listen {
                transport: Transport::Tls,
                addr: SocketAddr::new(any, 5061),
            });
        }
        listen
    }
}

/// `[media]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// `media.workers`: pinned media threads; `None` (the default) means one per CPU core.
    pub workers: Option<NonZeroUsize>,
    /// `media.bind`: the address media sockets bind to. Default 0.0.0.0.
    pub bind: IpAddr,
    /// `media.rtp_ports`: RTP/RTCP ports, first port even (RTP even, RTCP = RTP + 1).
    /// Default 20000–29999 (SEC-01).
    pub rtp_ports: RangeInclusive<u16>,
}

impl MediaConfig {
    /// The number of media workers to start: `workers`, or one per available CPU core.
    #[allow(dead_code, reason = "the media workers start with M4")]
    pub fn worker_count(&self) -> NonZeroUsize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN))
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            workers: None,
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            rtp_ports: 20_000..=29_999,
        }
    }
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// `admin.listen`: HTTP for /metrics and /api/v1. Default 127.0.0.1:8080 (SEC-01).
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `store.path`: directory of the embedded store. Default `var/voxgate`.
    pub path: PathBuf,
    /// `store.redis`: `redis://` or `rediss://` URL for clusters. A secret, since the URL
    /// may carry a password.
    pub redis: Option<Secret>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("var/voxgate"),
            redis: None,
        }
    }
}

/// `[ng]`: the rtpengine-compatible ng control protocol (UDP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NgConfig {
    /// `ng.listen`. Default 127.0.0.1:2223.
    pub listen: SocketAddr,
}

impl Default for NgConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 2223),
        }
    }
}

/// `[security]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecurityConfig {
    /// `security.allow`: trusted sources, exempt from flood limits and bans (SEC-04).
    pub allow: Vec<Cidr>,
}

impl SecurityConfig {
    /// Whether `ip` is a trusted source.
    #[allow(dead_code, reason = "the allow list is enforced by edge security, M3")]
    pub fn is_allowed(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(ip))
    }
}

/// `[limits]` (SIG-23, SEC-16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// `limits.max_message_bytes`: largest SIP message, 1500–65535. Default 65535.
    pub max_message_bytes: usize,
    /// `limits.max_request_uri_bytes`: longest Request-URI (414 above). Default 512.
    pub max_request_uri_bytes: usize,
    /// `limits.max_headers`: most header fields in one message. Default 256.
    pub max_headers: usize,
    /// `limits.max_header_bytes`: longest header field after unfolding. Default 16384.
    pub max_header_bytes: usize,
    /// `limits.tcp_per_ip`: TCP/TLS connections per source IP. Default 256.
    pub tcp_per_ip: NonZeroU32,
    /// `limits.tcp_total`: TCP/TLS connections in total. Default 20000.
    pub tcp_total: NonZeroU32,
    /// `limits.tcp_idle`: a connection with nothing bound to it closes after this. 600 s.
    pub tcp_idle: Duration,
    /// `limits.partial_message_timeout`: a message must be complete this long after its
    /// first byte, so a slow sender cannot hold a connection. Default 30 s.
    pub partial_message_timeout: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let message = MessageLimits::default();
        Self {
            max_message_bytes: message.max_message_bytes,
            max_request_uri_bytes: message.max_request_uri_bytes,
            max_headers: message.max_headers,
            max_header_bytes: message.max_header_bytes,
            tcp_per_ip: NonZeroU32::new(256).expect("256 is not zero"),
            tcp_total: NonZeroU32::new(20_000).expect("20000 is not zero"),
            tcp_idle: Duration::from_secs(600),
            partial_message_timeout: Duration::from_secs(30),
        }
    }
}

impl LimitsConfig {
    /// The parser limits the control plane enforces.
    pub fn message_limits(&self) -> MessageLimits {
        MessageLimits {
            max_message_bytes: self.max_message_bytes,
            max_request_uri_bytes: self.max_request_uri_bytes,
            max_headers: self.max_headers,
            max_header_bytes: self.max_header_bytes,
        }
    }
}

/// `[tls]` (SEC-02).
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// `tls.min_version`: `"1.2"` (default) or `"1.3"`.
    pub min_version: TlsMinVersion,
    /// `tls.handshake_timeout`: default 10 s.
    pub handshake_timeout: Duration,
    /// `tls.cert` and `tls.key`, loaded and checked; `None` when not configured.
    pub certificate: Option<TlsCertificate>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            min_version: TlsMinVersion::V1_2,
            handshake_timeout: Duration::from_secs(10),
            certificate: None,
        }
    }
}

/// A certificate and key that were read and matched while loading the config.
#[derive(Debug, Clone)]
pub struct TlsCertificate {
    /// `tls.cert`: PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// `tls.key`: PEM private key (PKCS#8, RSA or SEC1).
    pub key: PathBuf,
    /// The server configuration built from them; a reload builds a new one, so renewed
    /// certificates take effect without a restart.
    pub server_config: Arc<rustls::ServerConfig>,
}

impl PartialEq for TlsCertificate {
    /// Equal when they name the same files; the server configuration is derived from them
    /// (and rustls' config is not comparable).
    fn eq(&self, other: &Self) -> bool {
        self.cert == other.cert && self.key == other.key
    }
}

/// `[log]` (MON-07).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogConfig {
    /// `log.level`: default `info`.
    pub level: LogLevel,
    /// `log.format`: `text` (default) or `json`.
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    pub fn from_config(text: &str) -> Option<Self> {
        Some(match text {
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return None,
        })
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }

    pub fn from_config(text: &str) -> Option<Self> {
        match text {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[[extension]]` (SIG-09, SEC-09).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionConfig {
    /// Digits only; overlaps no service or emergency number.
    pub number: String,
    /// SIP digest password: at least 12 characters, not the number.
    pub password: Secret,
    /// Display name.
    pub name: Option<String>,
}

impl Config {
    /// The control plane's endpoint configuration. `listeners` are the sockets the driver
    /// actually bound (ports resolved when the config asked for port 0).
    pub fn endpoint_config(&self, listeners: Vec<LocalListener>) -> EndpointConfig {
        EndpointConfig {
            domain: self.sip.domain.clone(),
            aliases: self.sip.aliases.clone(),
            listeners,
            timers: self.sip.timers,
            limits: self.limits.message_limits(),
            max_forwards: self.sip.max_forwards.get(),
            force_rport: self.sip.force_rport,
            ..EndpointConfig::default()
        }
    }
}

/// Reads and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        origin: origin.clone(),
        source,
    })?;
    load_str(&text, &origin)
}

/// Parses and validates config text; `origin` names it in errors (usually the file name).
pub fn load_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let loc = error::Locator { text, origin };
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| loc.toml(e))?;
    validate::validate(raw, loc)
}

/// The embedded demo configuration: SIP on 127.0.0.1:5060 (UDP and TCP), admin on
/// 127.0.0.1:8080, domain `voxgate.localhost`.
pub fn demo() -> Config {
    load_str(DEMO_TOML, "configs/demo.toml")
        .expect("the embedded demo config is valid (tested by config::tests)")
}
