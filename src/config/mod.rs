//! voxgate's configuration: one TOML file read strictly into validated, typed values
//! (SIG-26).
//!
//! Owns: the file's keys and their defaults (documented in `configs/reference.toml`), the
//! rejection of unknown keys, validation of every value and of the relations between them
//! (ranges, listeners and ports, certificates, extension numbers, auth IDs and passwords),
//! errors as `file:line:col: message`, the embedded demo configuration, and the
//! translation into the control plane's [`EndpointConfig`], `DigestConfig`,
//! `RegistrarConfig`, `SecurityConfig` and credential table ([`ExtensionCredentials`]).
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

use rustls_pki_types::CertificateDer;
use voxgate_controlplane::config::{LocalListener, MessageLimits, TimerConfig};
use voxgate_controlplane::sip::Transport;
use voxgate_controlplane::EndpointConfig;

pub use crate::tls::TlsMinVersion;
pub use error::ConfigError;
pub use value::{FeedSource, Listen, Ratio, Role, Secret};
pub use voxgate_controlplane::auth::Algorithm as DigestAlgorithm;
pub use voxgate_controlplane::security::{AclSource, IpNet};

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
    pub registrar: RegistrarConfig,
    pub auth: AuthConfig,
    pub nat: NatConfig,
    pub security: SecurityConfig,
    pub limits: LimitsConfig,
    pub tls: TlsConfig,
    pub log: LogConfig,
    /// `[[extension]]` entries, in file order; numbers are unique.
    pub extensions: Vec<ExtensionConfig>,
    /// `[[trunk]]` entries, in file order; names are unique.
    pub trunks: Vec<TrunkConfig>,
}

/// `[[trunk]]` (SEC-17, RTE-01). M3 knows only the name and the source ACL of an
/// IP-authenticated trunk; hosts, registration, codecs and DIDs come with M5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkConfig {
    /// `name`: letters, digits, `-` and `_`, at most 64; unique.
    pub name: String,
    /// `acl`: sources that are this trunk (trusted, SEC-17).
    pub acl: Vec<AclSource>,
}

/// The `allow`/`block` lists of one `sip.listen` table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAcl {
    /// Position of the listener in [`SipConfig::listen`].
    pub index: usize,
    /// Only these sources may use the listener (empty: everyone not in `block`).
    pub allow: Vec<IpNet>,
    /// These sources are dropped on this listener.
    pub block: Vec<IpNet>,
}

/// `[sip]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipConfig {
    /// `sip.listen`. Default: UDP and TCP on 0.0.0.0:5060, plus TLS on 0.0.0.0:5061 when
    /// `tls.cert` is set. An explicit empty list means no SIP at all (ng-only media relay).
    pub listen: Vec<Listen>,
    /// The per-listener ACLs of `sip.listen` table entries; listeners without `allow` or
    /// `block` have none.
    pub listen_acls: Vec<ListenAcl>,
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

/// `[registrar]` (SIG-01, SIG-03). SIP counts expiry in whole seconds, and so do these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// `registrar.default_expires`: granted when a REGISTER asks for none. Default 600 s.
    pub default_expires: Duration,
    /// `registrar.min_expires`: shorter requests get 423 with `Min-Expires`. Default 60 s.
    pub min_expires: Duration,
    /// `registrar.max_expires`: longer requests are granted this. Default 3600 s.
    pub max_expires: Duration,
    /// `registrar.max_contacts`: contacts per extension; at the cap a new binding replaces
    /// the oldest. Default 10.
    pub max_contacts: NonZeroU32,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self {
            default_expires: Duration::from_secs(600),
            min_expires: Duration::from_secs(60),
            max_expires: Duration::from_secs(3600),
            max_contacts: NonZeroU32::new(10).expect("10 is not zero"),
        }
    }
}

/// `[auth]`: digest authentication (SIG-01, SEC-09, SEC-14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// `auth.algorithms`: offered in this order, one challenge each; not empty, no
    /// duplicates. Default MD5 then SHA-256: many clients read only the first challenge.
    pub algorithms: Vec<DigestAlgorithm>,
    /// `auth.nonce_ttl`: a nonce older than this is answered with `stale=true`. 300 s.
    pub nonce_ttl: Duration,
    /// `auth.realm`: the digest realm. Default: `sip.domain`.
    pub realm: String,
    /// `auth.min_password_length`: shortest SIP password check-config accepts; can only be
    /// raised above the SEC-09 minimum of 12.
    pub min_password_length: usize,
}

impl AuthConfig {
    /// The defaults, with `realm` = `domain`.
    pub fn with_realm(realm: String) -> Self {
        Self {
            algorithms: vec![DigestAlgorithm::Md5, DigestAlgorithm::Sha256],
            nonce_ttl: Duration::from_secs(300),
            realm,
            min_password_length: value::MIN_PASSWORD_CHARS,
        }
    }
}

/// `[nat]` (SIG-14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatConfig {
    /// `nat.keepalive_interval`: OPTIONS to UDP contacts behind NAT (and the CRLF ping
    /// expectation on TCP/TLS flows) this often. Default 30 s.
    pub keepalive_interval: Duration,
}

impl Default for NatConfig {
    fn default() -> Self {
        Self {
            keepalive_interval: Duration::from_secs(30),
        }
    }
}

/// `[security]` (SEC-03, SEC-04, SEC-13, issue 3 rate limits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityConfig {
    /// `security.allow`: trusted sources, exempt from flood limits, rate limits and bans
    /// (SEC-04).
    pub allow: Vec<IpNet>,
    /// `security.block`: sources whose packets are always dropped (SEC-04).
    pub block: Vec<IpNet>,
    /// `security.scanner_user_agents`: requests whose User-Agent contains one of these
    /// (ignoring ASCII case) are dropped silently (SEC-13).
    pub scanner_user_agents: Vec<String>,
    /// `[security.auth_fail]` (SEC-03).
    pub auth_fail: AuthFailConfig,
    /// `[security.flood]` (SEC-13).
    pub flood: FloodConfig,
    /// `[security.rate]`: new transactions per source.
    pub rate: RateConfig,
    /// `security.blocklist_feeds`: blocklist feeds merged into the block list (SEC-08).
    pub blocklist_feeds: Vec<FeedSource>,
    /// `security.blocklist_feed_refresh`: how often the feeds are fetched again. Default 24 h.
    pub blocklist_feed_refresh: Duration,
    /// `security.blocklist_feed_ca`: extra trusted roots for HTTPS feeds, loaded at load time.
    pub blocklist_feed_ca: Option<FeedCa>,
}

/// Root certificates read from `security.blocklist_feed_ca` (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedCa {
    pub path: PathBuf,
    pub certs: Vec<CertificateDer<'static>>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            block: Vec::new(),
            scanner_user_agents: Self::DEFAULT_SCANNER_USER_AGENTS
                .iter()
                .map(|ua| (*ua).to_owned())
                .collect(),
            auth_fail: AuthFailConfig::default(),
            flood: FloodConfig::default(),
            rate: RateConfig::default(),
            blocklist_feeds: Vec::new(),
            blocklist_feed_refresh: Self::DEFAULT_BLOCK_FEED_REFRESH,
            blocklist_feed_ca: None,
        }
    }
}

#[allow(
    dead_code,
    reason = "for tools and tests; the driver enforces the lists through EdgeSecurity"
)]
impl SecurityConfig {
    /// FEATURES SEC-08: feeds are fetched again every 24 h.
    pub const DEFAULT_BLOCK_FEED_REFRESH: Duration = Duration::from_secs(24 * 3600);

    /// FEATURES SEC-13.
    pub const DEFAULT_SCANNER_USER_AGENTS: [&'static str; 4] = [
        "friendly-scanner",
        "sipvicious",
        "sipcli",
        "VaxSIPUserAgent",
    ];

    /// Whether `ip` is a trusted source.
    pub fn is_allowed(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(ip))
    }

    /// Whether `ip` is on the block list.
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        self.block.iter().any(|net| net.contains(ip))
    }
}

/// `[security.auth_fail]`: brute-force lockout (SEC-03).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailConfig {
    /// `per_account`: more failures than this for one account from one IP within
    /// `window` ban the IP. Default 3.
    pub per_account: NonZeroU32,
    /// `per_ip`: more failures than this for any accounts from one IP within `window` ban
    /// it. Default 10.
    pub per_ip: NonZeroU32,
    /// `window`: default 300 s.
    pub window: Duration,
    /// `ban`: how long the ban lasts. Default 3600 s.
    pub ban: Duration,
}

impl Default for AuthFailConfig {
    fn default() -> Self {
        Self {
            per_account: NonZeroU32::new(3).expect("3 is not zero"),
            per_ip: NonZeroU32::new(10).expect("10 is not zero"),
            window: Duration::from_secs(300),
            ban: Duration::from_secs(3600),
        }
    }
}

/// `[security.flood]`: flood ban (SEC-13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloodConfig {
    /// `requests`: more requests than this from one IP (IPv6: one /64) within `window`
    /// ban it. Default 30.
    pub requests: NonZeroU32,
    /// `window`: default 2 s.
    pub window: Duration,
    /// `ban`: default 300 s.
    pub ban: Duration,
}

impl Default for FloodConfig {
    fn default() -> Self {
        Self {
            requests: NonZeroU32::new(30).expect("30 is not zero"),
            window: Duration::from_secs(2),
            ban: Duration::from_secs(300),
        }
    }
}

/// `[security.rate]`: a token bucket per source on new transactions (issue 3); over the
/// limit a request is dropped and counted, not banned. The defaults are the control
/// plane's: 10/s sits below the flood limit (30 in 2 s), so a burst is shed before its
/// source is banned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateConfig {
    /// `rate`: tokens added per second. Default 10.
    pub rate: NonZeroU32,
    /// `burst`: bucket size, at least `rate`. Default 20.
    pub burst: NonZeroU32,
}

impl Default for RateConfig {
    fn default() -> Self {
        let d = voxgate_controlplane::security::RateLimitConfig::default();
        Self {
            rate: d.rate,
            burst: d.burst,
        }
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
    /// `limits.max_vias`: most Via values in one request (400 above). Default 70.
    pub max_vias: usize,
    /// `limits.tcp_per_ip`: TCP/TLS connections per source IP. Default 256.
    pub tcp_per_ip: NonZeroU32,
    /// `limits.tcp_total`: TCP/TLS connections in total. Default 20000.
    pub tcp_total: NonZeroU32,
    /// `limits.tcp_idle`: a connection with nothing bound to it closes after this. 600 s.
    pub tcp_idle: Duration,
    /// `limits.partial_message_timeout`: a message must be complete this long after its
    /// first byte, so a slow sender cannot hold a connection. Default 30 s.
    pub partial_message_timeout: Duration,
    /// `limits.max_cps`: new calls per second; above it new INVITE, REGISTER and SUBSCRIBE
    /// get 503 (SEC-15). Default 200.
    pub max_cps: NonZeroU32,
    /// `limits.queue_high_water`: fill level of the control plane's input queue above
    /// which new INVITE, REGISTER and SUBSCRIBE get 503 (SEC-15). Default 80 %.
    pub queue_high_water: Ratio,
    /// `limits.retry_after`: the 503's `Retry-After` is drawn uniformly from this range,
    /// in whole seconds (SEC-15). Default 5–15 s.
    pub retry_after: RangeInclusive<Duration>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let message = MessageLimits::default();
        Self {
            max_message_bytes: message.max_message_bytes,
            max_request_uri_bytes: message.max_request_uri_bytes,
            max_headers: message.max_headers,
            max_header_bytes: message.max_header_bytes,
            max_vias: message.max_vias,
            tcp_per_ip: NonZeroU32::new(256).expect("256 is not zero"),
            tcp_total: NonZeroU32::new(20_000).expect("20000 is not zero"),
            tcp_idle: Duration::from_secs(600),
            partial_message_timeout: Duration::from_secs(30),
            max_cps: NonZeroU32::new(200).expect("200 is not zero"),
            queue_high_water: Ratio::from_permille(800).expect("800 is at most 1000"),
            retry_after: Duration::from_secs(5)..=Duration::from_secs(15),
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
            max_vias: self.max_vias,
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

/// `[[extension]]` (SIG-01, SIG-09, SIG-15, SEC-09, EXT-01).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionConfig {
    /// Digits only; overlaps no service or emergency number.
    pub number: String,
    /// `auth_id`: the digest user name, unique across extensions. Default: the number.
    pub auth_id: String,
    /// `password` or `ha1`, exactly one.
    pub credential: Credential,
    /// Display name.
    pub name: Option<String>,
    /// `networks`: where this extension may register from (SIG-15). Empty: anywhere.
    pub networks: Vec<IpNet>,
    /// The rest of the extension record (EXT-01), kept for later milestones.
    pub record: ExtensionRecord,
}

/// The EXT-01 fields of an extension that signalling does not use yet: the web console,
/// provisioning, voicemail and routing (later milestones) read them from here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtensionRecord {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Basic syntax checked (`local@domain.tld`).
    pub email: Option<String>,
    /// `+` and up to 15 digits.
    pub outbound_caller_id: Option<String>,
    /// 4-10 digits, not the number, not one digit repeated (VM-03).
    pub voicemail_pin: Option<Secret>,
    /// `+` and up to 15 digits.
    pub mobile: Option<String>,
    /// A language tag like `en` or `de-CH`.
    pub language: Option<String>,
    /// Default `user`.
    pub role: Role,
    /// Department names, in file order, no duplicates.
    pub departments: Vec<String>,
}

#[allow(
    dead_code,
    reason = "for tools and tests; the endpoint gets `networks` through `credentials`"
)]
impl ExtensionConfig {
    /// Whether a REGISTER for this extension may come from `ip` (SIG-15).
    pub fn may_register_from(&self, ip: IpAddr) -> bool {
        self.networks.is_empty() || self.networks.iter().any(|net| net.contains(ip))
    }

    /// The name shown to callers: `name`, else "first last" from the record.
    pub fn display_name(&self) -> Option<String> {
        if let Some(name) = &self.name {
            return Some(name.clone());
        }
        let parts: Vec<&str> = [&self.record.first_name, &self.record.last_name]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// An extension's digest secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `password`: at least `auth.min_password_length` characters, not the number or auth
    /// ID (SEC-09). Works with every digest algorithm.
    Password(Secret),
    /// `ha1`: MD5("auth_id:realm:password") in lower-case hex, so the file holds no
    /// clear-text password. Valid only for MD5 and only while the realm stays the same.
    Ha1Md5(Secret),
}

/// One extension's digest identity in the control plane's terms: what the auth lookup
/// (auth ID → credential) and the registrar's network check need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionCredentials {
    /// The extension number, the AOR user part the registrar binds.
    pub number: String,
    /// The digest user name.
    pub auth_id: String,
    pub credential: voxgate_controlplane::auth::Credential,
    /// Allowed source networks for REGISTER (SIG-15); empty means anywhere.
    pub networks: Vec<IpNet>,
}

/// The control plane's views of the M3 sections.
impl Config {
    /// The digest settings of `[auth]` (realm defaults to `sip.domain`).
    pub fn digest_config(&self) -> voxgate_controlplane::auth::DigestConfig {
        voxgate_controlplane::auth::DigestConfig {
            realm: self.auth.realm.clone(),
            algorithms: self.auth.algorithms.clone(),
            nonce_ttl: self.auth.nonce_ttl,
            ..voxgate_controlplane::auth::DigestConfig::default()
        }
    }

    /// The registrar settings of `[registrar]` and `[nat]`.
    pub fn registrar_config(&self) -> voxgate_controlplane::registrar::RegistrarConfig {
        voxgate_controlplane::registrar::RegistrarConfig {
            default_expires: self.registrar.default_expires,
            min_expires: self.registrar.min_expires,
            max_expires: self.registrar.max_expires,
            max_contacts: usize::try_from(self.registrar.max_contacts.get())
                .expect("max_contacts is at most 100"),
            keepalive_interval: self.nat.keepalive_interval,
            ..voxgate_controlplane::registrar::RegistrarConfig::default()
        }
    }

    /// The edge-security policy of `[security]` and the overload part of `[limits]`.
    pub fn security_config(&self) -> voxgate_controlplane::security::SecurityConfig {
        use voxgate_controlplane::security as cp;
        let s = &self.security;
        let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        let defaults = cp::SecurityConfig::default();
        cp::SecurityConfig {
            allow: s.allow.clone(),
            block: s.block.clone(),
            trunks: self
                .trunks
                .iter()
                .map(|t| cp::TrunkAcl {
                    name: t.name.clone(),
                    sources: t.acl.clone(),
                })
                .collect(),
            // Listener ACLs need the bound addresses: see `Config::listener_acls`.
            listeners: Vec::new(),
            auth_fail: cp::AuthFailConfig {
                per_account: s.auth_fail.per_account.get(),
                per_ip: s.auth_fail.per_ip.get(),
                window: s.auth_fail.window,
                ban: s.auth_fail.ban,
            },
            flood: cp::FloodConfig {
                requests: s.flood.requests.get(),
                window: s.flood.window,
                ban: s.flood.ban,
            },
            scanner_user_agents: s.scanner_user_agents.clone(),
            transactions: cp::RateLimitConfig {
                rate: s.rate.rate,
                burst: s.rate.burst,
            },
            overload: cp::OverloadConfig {
                max_cps: Some(self.limits.max_cps),
                queue_high_water: f32::from(self.limits.queue_high_water.permille()) / 1000.0,
                retry_after_secs: secs(*self.limits.retry_after.start())
                    ..=secs(*self.limits.retry_after.end()),
                ..defaults.overload
            },
            ..defaults
        }
    }

    /// The per-listener ACLs in the control plane's terms, keyed by the addresses the
    /// listeners are actually bound to (a port 0 in the file becomes the OS's port).
    ///
    /// `bound_from[i]` is the `sip.listen` entry the socket `bound[i]` was bound from, at
    /// start. After a reload `self.sip.listen` may differ (new listeners need a restart):
    /// the n-th entry equal to a spec here takes the n-th socket bound from an equal spec,
    /// and an ACL for a listener that is not bound yet is left out.
    pub fn listener_acls(
        &self,
        bound_from: &[Listen],
        bound: &[LocalListener],
    ) -> Vec<voxgate_controlplane::security::ListenerAcl> {
        let mut out = Vec::with_capacity(self.sip.listen_acls.len());
        for acl in &self.sip.listen_acls {
            let Some(spec) = self.sip.listen.get(acl.index) else {
                continue;
            };
            let nth = self.sip.listen[..acl.index]
                .iter()
                .filter(|l| *l == spec)
                .count();
            let socket = bound_from
                .iter()
                .zip(bound)
                .filter(|(from, _)| *from == spec)
                .nth(nth)
                .map(|(_, socket)| socket);
            if let Some(socket) = socket {
                out.push(voxgate_controlplane::security::ListenerAcl {
                    transport: socket.transport,
                    local: socket.addr,
                    allow: acl.allow.clone(),
                    block: acl.block.clone(),
                });
            }
        }
        out
    }

    /// Every extension's digest identity, in file order. A `password` stays a password
    /// (usable with every algorithm); an `ha1` becomes an MD5-only HA1 set.
    pub fn credentials(&self) -> Vec<ExtensionCredentials> {
        use voxgate_controlplane::auth::{Credential as Cp, Ha1Set};
        self.extensions
            .iter()
            .map(|ext| ExtensionCredentials {
                number: ext.number.clone(),
                auth_id: ext.auth_id.clone(),
                credential: match &ext.credential {
                    Credential::Password(password) => Cp::password(password.expose()),
                    Credential::Ha1Md5(hex) => Cp::Ha1(
                        Ha1Set::new()
                            .with(DigestAlgorithm::Md5, hex.expose())
                            .expect("validated as 32 hex digits at load"),
                    ),
                },
                networks: ext.networks.clone(),
            })
            .collect()
    }
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
