//! Typed configuration of the sans-IO endpoint. Defaults cite their RFC.
//!
//! The binary reads and validates the TOML file and builds these values; this module never
//! touches files.

use std::net::SocketAddr;
use std::time::Duration;

use crate::auth::{Credential, DigestConfig};
use crate::registrar::RegistrarConfig;
use crate::security::{IpNet, SecurityConfig};
use crate::sip::Transport;

/// RFC 3261 §17 timer base values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate. RFC 3261 §17.1.1.1: 500 ms.
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE responses.
    /// RFC 3261 §17.1.2.2: 4 s.
    pub t2: Duration,
    /// Longest time a message stays in the network. RFC 3261 §17.1.2.2: 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// Timers B, F, H and J: 64·T1 (RFC 3261 §17, a *fixed* multiple).
    pub fn t64(&self) -> Duration {
        self.t1 * 64
    }
}

/// Parser and message limits (FEATURES SIG-23).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageLimits {
    /// Largest accepted message in bytes: 64 KiB, the largest UDP datagram.
    pub max_message_bytes: usize,
    /// Longest Request-URI; longer gets 414.
    pub max_request_uri_bytes: usize,
    /// Most header fields in one message.
    pub max_headers: usize,
    /// Longest header field (after unfolding continuation lines) in bytes.
    pub max_header_bytes: usize,
    /// Most Via values in one request: 70, as many hops as Max-Forwards allows (RFC 4475
    /// longreq.dat carries dozens); more is a loop or an attack, answered 400.
    pub max_vias: usize,
}

impl Default for MessageLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 65_535,
            max_request_uri_bytes: 512,
            max_headers: 256,
            max_header_bytes: 16_384,
            max_vias: 70,
        }
    }
}

/// One local SIP listener, as bound by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalListener {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// Everything the [`crate::Endpoint`] needs to know about its configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointConfig {
    /// `sip.domain`: the system identity (SIG-22).
    pub domain: String,
    /// Other host names and addresses that mean "voxgate itself" in a Request-URI.
    pub aliases: Vec<String>,
    /// The bound listeners; their addresses also count as "voxgate itself".
    pub listeners: Vec<LocalListener>,
    pub timers: TimerConfig,
    pub limits: MessageLimits,
    /// Max-Forwards on requests voxgate starts. RFC 3261 §8.1.1.6: 70.
    pub max_forwards: u8,
    /// Reply over UDP to the packet's source port even without `rport` (what Kamailio's
    /// `force_rport()` does): at the edge nearly every phone is behind NAT.
    pub force_rport: bool,
    /// `Server` / `User-Agent` value.
    pub user_agent: String,
    /// Digest authentication: realm, algorithms, nonce lifetime (SIG-01).
    pub auth: DigestConfig,
    /// Key of the stateless nonces' MAC. The binary keeps it in its store so nonces stay
    /// valid across a restart.
    pub auth_secret: [u8; 32],
    /// Registration limits and keep-alives (SIG-01, SIG-03, SIG-14).
    pub registrar: RegistrarConfig,
    /// Edge security: lists, bans, flood and rate limits, overload (SEC-03 … SEC-17).
    pub security: SecurityConfig,
    /// The extensions that may register and place calls.
    pub users: Vec<User>,
}

/// An extension's credentials, as the endpoint authenticates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The extension number: the AOR's user part.
    pub number: String,
    /// The digest username (SIG-01: separate from the number; defaults to it).
    pub auth_id: String,
    pub credential: Credential,
    /// Where the extension may register from (SIG-15); empty means anywhere.
    pub networks: Vec<IpNet>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            domain: "localhost".into(),
            aliases: Vec::new(),
            listeners: Vec::new(),
            timers: TimerConfig::default(),
            limits: MessageLimits::default(),
            max_forwards: 70,
            force_rport: true,
            user_agent: concat!("voxgate/", env!("CARGO_PKG_VERSION")).into(),
            auth: DigestConfig::default(),
            auth_secret: [0; 32],
            registrar: RegistrarConfig::default(),
            security: SecurityConfig::default(),
            users: Vec::new(),
        }
    }
}
