//! Edge security: the policy that decides, before and while a request is parsed, whether
//! voxgate spends any work on it (issue 3 item 3; FEATURES SEC-03, SEC-04, SEC-08, SEC-13,
//! SEC-15, SEC-17).
//!
//! # What it owns
//! - IP allow and block lists ([`IpNet`], [`IpSet`]) (SEC-04);
//! - flood detection per source, an IPv6 /64 counting as one source (SEC-13);
//! - scanner User-Agent matching (SEC-13);
//! - a token bucket per source on new transactions;
//! - brute-force lockout from failed authentications (SEC-03);
//! - bans with expiry, manual unban, restore after restart (SEC-08), as events that the
//!   binary's store mirrors;
//! - overload admission with a random Retry-After and per-class budgets (SEC-15, SEC-17);
//! - counters ([`SecurityStats`]) for the binary to export.
//!
//! # What it does not own
//! Sockets, clocks, files, the store, logging and metrics export (the binary); the 503
//! and 403 responses (the endpoint); why an authentication failed (the auth module); the
//! timing side of anti-enumeration (SEC-14); blocklist feeds (SEC-08: not implemented —
//! the binary may merge a feed into [`SecurityConfig::block`] and call
//! [`EdgeSecurity::set_config`]); concurrent-call limits (RTE-14).
//!
//! # Driver contract
//! Per datagram or stream message, before parsing: [`EdgeSecurity::check_source`]; after
//! parsing a request from an untrusted source: [`EdgeSecurity::check_user_agent`] and, for
//! a new transaction, [`EdgeSecurity::admit_transaction`]; for every new request:
//! [`EdgeSecurity::admit_new_request`]. After an authentication:
//! [`EdgeSecurity::record_auth_failure`] / [`EdgeSecurity::record_auth_success`]. Then drain
//! [`EdgeSecurity::poll_event`] (persist and log bans), and call
//! [`EdgeSecurity::handle_timeout`] at [`EdgeSecurity::poll_timeout`]. Bans are also checked
//! against `now` when looked up, so a late timeout never extends a ban.
//!
//! Every per-source table and the ban table is capped
//! ([`SecurityConfig::max_tracked_sources`]); see `table.rs` for the eviction policy.

use std::net::IpAddr;
use std::time::Instant;

mod auth_fail;
mod bans;
mod config;
mod edge;
mod flood;
mod lists;
mod overload;
mod ratelimit;
mod scanner;
mod table;

pub use config::{
    AclSource, AuthFailConfig, FloodConfig, ListenerAcl, OverloadConfig, RateLimitConfig,
    SecurityConfig, TrunkAcl, DEFAULT_SCANNER_USER_AGENTS,
};
pub use edge::EdgeSecurity;
pub use lists::{source_key, IpNet, IpNetError, IpSet};

/// Why a source was banned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BanReason {
    /// Too many failed authentications (SEC-03).
    AuthFailures,
    /// Too many requests in the flood window (SEC-13).
    Flood,
    /// Put there by an operator.
    Manual,
}

impl BanReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BanReason::AuthFailures => "auth_failures",
            BanReason::Flood => "flood",
            BanReason::Manual => "manual",
        }
    }
}

/// A banned source: its packets are dropped silently until `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    /// The banned address (an IPv6 source is banned as its /64, stored as the /64's first
    /// address).
    pub ip: IpAddr,
    pub until: Instant,
    pub reason: BanReason,
}

/// Why a ban was lifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnbanReason {
    /// The ban's time was up.
    Expired,
    /// An operator lifted it ([`EdgeSecurity::unban`]).
    Manual,
    /// The ban table was full and this ban was the one closest to its end.
    Evicted,
}

impl UnbanReason {
    pub fn as_str(self) -> &'static str {
        match self {
            UnbanReason::Expired => "expired",
            UnbanReason::Manual => "manual",
            UnbanReason::Evicted => "evicted",
        }
    }
}

/// What the binary must persist and log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecurityEvent {
    /// A new ban, or a ban replaced with a new deadline: upsert it in the store.
    Banned(Ban),
    /// A ban was lifted: delete it from the store. `ip` is the ban's key.
    Unbanned { ip: IpAddr, reason: UnbanReason },
}

/// Why edge security dropped a packet or request silently (`voxgate_sip_dropped_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecurityDrop {
    /// The source is on the block list.
    Blocked,
    /// The source is banned.
    Banned,
    /// This request took the source over the flood limit; it is banned from now on.
    Flood,
    /// The User-Agent is a known scanner.
    Scanner,
    /// The source's new-transaction bucket is empty.
    RateLimited,
    /// The listener's own ACL does not let the source in.
    ListenerAcl,
}

impl SecurityDrop {
    pub const ALL: [SecurityDrop; 6] = [
        SecurityDrop::Blocked,
        SecurityDrop::Banned,
        SecurityDrop::Flood,
        SecurityDrop::Scanner,
        SecurityDrop::RateLimited,
        SecurityDrop::ListenerAcl,
    ];

    /// The Prometheus label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityDrop::Blocked => "blocked",
            SecurityDrop::Banned => "banned",
            SecurityDrop::Flood => "flood",
            SecurityDrop::Scanner => "scanner",
            SecurityDrop::RateLimited => "rate_limited",
            SecurityDrop::ListenerAcl => "listener_acl",
        }
    }

    fn index(self) -> usize {
        match self {
            SecurityDrop::Blocked => 0,
            SecurityDrop::Banned => 1,
            SecurityDrop::Flood => 2,
            SecurityDrop::Scanner => 3,
            SecurityDrop::RateLimited => 4,
            SecurityDrop::ListenerAcl => 5,
        }
    }
}

/// Trust class of traffic (SEC-17). Trusted: on the allow list (which includes trunk
/// ACLs), or, as the caller knows, an authenticated registered flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trust {
    Trusted,
    Untrusted,
}

/// The answer of [`EdgeSecurity::check_source`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceVerdict {
    /// Allow-listed: skip flood, rate-limit and scanner checks.
    Trusted,
    /// Go on; the later checks apply.
    Untrusted,
    /// Drop silently (already counted).
    Drop(SecurityDrop),
}

impl SourceVerdict {
    /// The trust class, or `None` for a drop.
    pub fn trust(self) -> Option<Trust> {
        match self {
            SourceVerdict::Trusted => Some(Trust::Trusted),
            SourceVerdict::Untrusted => Some(Trust::Untrusted),
            SourceVerdict::Drop(_) => None,
        }
    }
}

/// The answer of [`EdgeSecurity::admit_new_request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Admission {
    Admitted,
    /// Answer with a stateless 503 and `Retry-After: retry_after_secs` (SEC-15).
    Reject503 {
        retry_after_secs: u32,
        reason: OverloadReason,
    },
}

/// Which limit an overload rejection hit (for the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OverloadReason {
    /// The input queue is above its high-water mark.
    Queue,
    /// New INVITEs per second, all sources, are at `max_cps`.
    CallsPerSecond,
    /// New INVITEs per second from untrusted sources are at their share of `max_cps`.
    UntrustedCallsPerSecond,
}

impl OverloadReason {
    pub fn as_str(self) -> &'static str {
        match self {
            OverloadReason::Queue => "queue",
            OverloadReason::CallsPerSecond => "cps",
            OverloadReason::UntrustedCallsPerSecond => "untrusted_cps",
        }
    }
}

/// Counters since start (plain, single writer). [`EdgeSecurity::stats`] returns a
/// snapshot with the gauges filled in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityStats {
    dropped: [u64; SecurityDrop::ALL.len()],
    /// Bans in force now (gauge).
    pub bans_active: u64,
    /// Bans made, by reason (a replaced ban counts again).
    pub bans_auth_failures: u64,
    pub bans_flood: u64,
    pub bans_manual: u64,
    /// Bans lifted, by reason.
    pub unbans_expired: u64,
    pub unbans_manual: u64,
    pub unbans_evicted: u64,
    /// 503s from [`EdgeSecurity::admit_new_request`], by reason.
    pub overload_queue: u64,
    pub overload_cps: u64,
    pub overload_untrusted_cps: u64,
    /// Failed authentications reported, allow-listed sources included.
    pub auth_failures: u64,
    /// Sources in the flood/rate-limit table now (gauge).
    pub sources_tracked: u64,
    /// Sources in the authentication-failure table now (gauge).
    pub auth_sources_tracked: u64,
    /// Entries dropped from a full per-source table while still holding state.
    pub sources_evicted: u64,
}

impl SecurityStats {
    pub(crate) fn count_drop(&mut self, reason: SecurityDrop) {
        self.dropped[reason.index()] += 1;
    }

    pub fn dropped_for(&self, reason: SecurityDrop) -> u64 {
        self.dropped[reason.index()]
    }

    /// `(reason, count)` for every reason, zero included, so dashboards see the series.
    pub fn dropped(&self) -> impl Iterator<Item = (SecurityDrop, u64)> + '_ {
        SecurityDrop::ALL
            .iter()
            .map(|r| (*r, self.dropped[r.index()]))
    }

    /// `voxgate_overload_rejections_total`.
    pub fn overload_rejections(&self) -> u64 {
        self.overload_queue + self.overload_cps + self.overload_untrusted_cps
    }
}

/// The one real instant unit tests start from; every later time is virtual.
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_base() -> Instant {
    Instant::now()
}
