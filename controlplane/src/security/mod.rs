//! Edge security. Not yet written beyond the shared types below, which the binary's store
//! persists and its API lists.

use std::net::IpAddr;
use std::time::Instant;

mod lists;

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
