//! Shared test harness for voxgate's integration tests: starts the real binary on ephemeral
//! loopback ports and talks SIP and HTTP to it.
//!
//! What it owns:
//! - [`Voxgate`]: one running `voxgate run --config FILE` process with its config in a private
//!   temporary directory, the listener addresses it printed (`listening sip udp ADDR`, ...,
//!   then `ready`), its captured stdout/stderr (printed when a test fails), and kill-and-reap on
//!   drop.
//! - SIP client helpers that do not use voxgate's own parser, so the tests judge the wire
//!   independently: [`request`], [`options_request`], [`UdpClient`], [`Response`],
//!   [`read_stream_response`], [`read_until_close`].
//! - A small HTTP/1.1 client over `std::net::TcpStream` ([`http`]) and a Prometheus text parser
//!   ([`Metrics`]).
//! - External tool detection ([`tool_available`], [`require_tool`]).
//! - Registering as a phone would ([`RegisterSession`], [`register_load`]) with digest
//!   credentials computed independently of voxgate ([`Challenge`]), generated extensions
//!   and configs ([`numbered_extensions`], [`config_with_store`]), and the admin API's
//!   registration and ban lists ([`Voxgate::registrations`], [`Voxgate::bans`]).
//!
//! What it does not do: simulated time or simulated networks (those belong to the sans-IO
//! tests inside `controlplane`), and it never talks to anything but loopback.
//!
//! Timing: the harness drives a real process, so it reads the real clock. Every wait has a
//! generous failure deadline and is never an assertion about speed.

mod api;
mod digest;
mod http;
mod process;
mod register;
mod sip;
mod tools;

pub use api::{BanEntry, RegistrationEntry};
pub use digest::{Challenge, DigestAlgorithm};
pub use register::{
    config_with_store, extension_tables, granted_expires, header_param, numbered_extensions,
    register_load, request_line, respond_to, transact, via_branch, LoadControl, LoadReport,
    OutgoingRequest, RegisterSession, TestExtension,
};

pub use http::{http, http_request, HttpError, Metrics, Sample};
pub use process::{default_config, test_config, Listener, Voxgate, DIR_PLACEHOLDER};
pub use sip::{
    new_branch, options_request, read_stream_response, read_until_close, request, Response,
    StreamEnd, UdpClient,
};
pub use tools::{require_tool, tool_available};

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The project's test data folder (`tests/data`: RFC 4475 and RFC 5118 vectors).
pub fn data_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../data"))
}

/// The real clock. The harness drives a real process, so unlike protocol code it may read it;
/// this is the one place that does.
#[allow(clippy::disallowed_methods)] // real process, real time: see the module doc
pub fn now() -> Instant {
    Instant::now()
}

/// Polls `condition` every 50 ms until it holds or `limit` has passed; returns whether it held.
/// Use it for state that changes asynchronously (a counter after a signal), with a generous
/// limit: the limit is a failure deadline, not a performance bound.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = now() + limit;
    loop {
        if condition() {
            return true;
        }
        if now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
