//! voxgate's control plane: SIP signalling as sans-IO state machines.
//!
//! # What it owns
//! - [`sip`]: the SIP message model, parser and printer (zero-copy over [`bytes::Bytes`]),
//!   URIs, typed header access, and stream framing.
//! - [`transaction`]: RFC 3261 §17 client and server transactions under virtual time.
//! - [`endpoint`]: the edge endpoint that validates every message, runs transactions and
//!   answers what voxgate itself must answer (OPTIONS, 400/416/420/483/482/501/505 …).
//! - [`auth`]: SIP digest authentication with stateless nonces (MD5, SHA-256, SHA-512-256).
//! - [`registrar`]: contact bindings per extension, expiry, outbound flows, keep-alives.
//! - [`security`]: block/allow lists, bans, flood and rate limits, overload admission.
//! - [`stats`]: plain counters the binary exports.
//!
//! # What it never does
//! No sockets, threads, channels, locks, files or clocks. Time and input come in as
//! arguments; actions go out through `poll_*` methods.
//!
//! # Driver contract
//! Mutate with one `handle_*` call, then drain [`endpoint::Endpoint::poll_transmit`] and
//! [`endpoint::Endpoint::poll_event`] until they return `None`, then sleep until
//! [`endpoint::Endpoint::poll_timeout`] (or the next input) and call
//! [`endpoint::Endpoint::handle_timeout`].

pub mod auth;
pub mod config;
pub mod endpoint;
pub mod error;
pub mod registrar;
pub mod sdp;
pub mod security;
pub mod sip;
pub mod stats;
pub mod transaction;

pub use config::EndpointConfig;
pub use endpoint::Endpoint;
