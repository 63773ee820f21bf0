//! Typed configuration of edge security. Defaults are the FEATURES.md §18 values.
//!
//! The binary reads `[security]` and `[limits]` from its file, validates them and builds
//! this value; nothing here reads files.

use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::time::Duration;

use std::net::SocketAddr;

use super::IpNet;
use crate::sip::Transport;

/// Everything [`super::EdgeSecurity`] needs to know. `Default` is the shipped policy.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityConfig {
    /// `security.allow`: trusted sources, exempt from flood limits, rate limits and
    /// automatic bans (SEC-04).
    pub allow: Vec<IpNet>,
    /// `[[trunk]]` ACLs (SEC-17): their sources are trusted like `allow`, and
    /// [`super::EdgeSecurity::trunk_of`] names the trunk a source belongs to.
    pub trunks: Vec<TrunkAcl>,
    /// Per-listener ACLs (`allow`/`block` on a `sip.listen` entry): checked before
    /// everything else for traffic arriving on that listener.
    pub listeners: Vec<ListenerAcl>,
    /// `security.block`: always dropped, before anything else (SEC-04).
    pub block: Vec<IpNet>,
    pub auth_fail: AuthFailConfig,
    pub flood: FloodConfig,
    /// `security.scanner_user_agents`: case-insensitive substrings of User-Agent values
    /// whose requests are dropped silently (SEC-13). Empty strings are ignored.
    pub scanner_user_agents: Vec<String>,
    /// Per-source limit on new transactions from untrusted sources.
    pub transactions: RateLimitConfig,
    pub overload: OverloadConfig,
    /// Most sources tracked at once in each per-source table (flood and rate-limit state,
    /// authentication failures) and most bans held. Bounds memory under a flood from
    /// spoofed addresses (idle entries go first, then the least recently seen). Default 100,000 (about 10 MB per table).
    pub max_tracked_sources: usize,
}

/// The sources of one IP-authenticated trunk (SEC-17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkAcl {
    /// `trunk.name`.
    pub name: String,
    /// `trunk.acl`: networks, each optionally limited to one source port.
    pub sources: Vec<AclSource>,
}

/// One trunk ACL entry: `"203.0.113.7"`, `"203.0.113.0/24"` or `"203.0.113.7:5060"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclSource {
    pub net: IpNet,
    /// `None`: any source port.
    pub port: Option<u16>,
}

impl AclSource {
    pub fn matches(&self, remote: SocketAddr) -> bool {
        self.net.contains(remote.ip()) && self.port.is_none_or(|p| p == remote.port())
    }
}

/// Who may send to one listener. Traffic from a source outside `allow` (when `allow` is
/// not empty) or inside `block` is dropped silently and counted `listener_acl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerAcl {
    pub transport: Transport,
    /// The listener's bound address, as the driver reports it in `Peer::local`.
    pub local: SocketAddr,
    pub allow: Vec<IpNet>,
    pub block: Vec<IpNet>,
}

/// Brute-force lockout (SEC-03): more than `per_account` failures for one account, or
/// more than `per_ip` for any accounts, from one source within `window` ban it for `ban`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthFailConfig {
    /// `security.auth_fail.per_account`. Default 3.
    pub per_account: u32,
    /// `security.auth_fail.per_ip`. Default 10.
    pub per_ip: u32,
    /// `security.auth_fail.window`. Default 300 s.
    pub window: Duration,
    /// `security.auth_fail.ban`. Default 3600 s.
    pub ban: Duration,
}

/// Flood protection (SEC-13): more than `requests` within `window` from one source (an
/// IPv6 /64) ban it for `ban`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodConfig {
    /// `security.flood.requests`. Default 30.
    pub requests: u32,
    /// `security.flood.window`. Default 2 s. Counted in sixteenths, so a request up to one
    /// sixteenth of a window older than `window` may still count (never one less).
    pub window: Duration,
    /// `security.flood.ban`. Default 300 s.
    pub ban: Duration,
}

/// A token bucket: `rate` tokens per second, holding at most `burst`.
///
/// The default for new transactions, 10/s with a burst of 20, sits below the flood limit
/// (30 requests in 2 s, i.e. 15/s): a burst of new transactions is shed first (dropped
/// silently, counted as `rate_limited`), and only a source that keeps going is banned.
/// One phone needs well under 1 new transaction per second; an office of phones behind
/// one address that needs more belongs on the allow list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub rate: NonZeroU32,
    pub burst: NonZeroU32,
}

/// Overload protection (SEC-15) with per-class budgets (SEC-17).
#[derive(Debug, Clone, PartialEq)]
pub struct OverloadConfig {
    /// `limits.max_cps`: new INVITEs admitted per second, all sources. `None`: no limit.
    /// Default 200.
    pub max_cps: Option<NonZeroU32>,
    /// The share of `max_cps` (percent, 0–100) that untrusted sources may use, so an
    /// untrusted flood never takes the capacity trunks and registered phones need
    /// (SEC-17). Default 50. At least one call per second is always left to them.
    pub untrusted_cps_percent: u8,
    /// `limits.queue_high_water`: input-queue fill (0.0–1.0) above which new INVITE,
    /// REGISTER and SUBSCRIBE are refused. Default 0.8.
    pub queue_high_water: f32,
    /// `limits.retry_after`: the 503's Retry-After is drawn uniformly from this range in
    /// seconds. Default 5–15. A reversed range is read as its ordered bounds.
    pub retry_after_secs: RangeInclusive<u32>,
}

impl OverloadConfig {
    pub(crate) fn retry_after_bounds(&self) -> (u32, u32) {
        let (a, b) = (*self.retry_after_secs.start(), *self.retry_after_secs.end());
        (a.min(b), a.max(b))
    }
}

/// FEATURES.md §18 scanner list.
pub const DEFAULT_SCANNER_USER_AGENTS: [&str; 4] = [
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "VaxSIPUserAgent",
];

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            allow: Vec::new(),
            trunks: Vec::new(),
            listeners: Vec::new(),
            block: Vec::new(),
            auth_fail: AuthFailConfig::default(),
            flood: FloodConfig::default(),
            scanner_user_agents: DEFAULT_SCANNER_USER_AGENTS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            transactions: RateLimitConfig::default(),
            overload: OverloadConfig::default(),
            max_tracked_sources: 100_000,
        }
    }
}

impl Default for AuthFailConfig {
    fn default() -> Self {
        AuthFailConfig {
            per_account: 3,
            per_ip: 10,
            window: Duration::from_secs(300),
            ban: Duration::from_secs(3600),
        }
    }
}

impl Default for FloodConfig {
    fn default() -> Self {
        FloodConfig {
            requests: 30,
            window: Duration::from_secs(2),
            ban: Duration::from_secs(300),
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            rate: NonZeroU32::new(10).expect("10 is not zero"),
            burst: NonZeroU32::new(20).expect("20 is not zero"),
        }
    }
}

impl Default for OverloadConfig {
    fn default() -> Self {
        OverloadConfig {
            max_cps: NonZeroU32::new(200),
            untrusted_cps_percent: 50,
            queue_high_water: 0.8,
            retry_after_secs: 5..=15,
        }
    }
}
