//! libFuzzer target `stream`: see [`voxgate_fuzz::stream`] for the properties it checks.

#![no_main]

use std::sync::OnceLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;

/// The virtual epoch handed to the endpoint: read once per process, never waited on.
#[allow(clippy::disallowed_methods)] // The harness is the driver: it owns the clock.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fuzz_target!(|data: &[u8]| voxgate_fuzz::stream(data, epoch()));
