//! SIP ALG detection (SIG-14: "a SIP ALG rewriting messages is logged when detected").
//!
//! Routers with a SIP "application layer gateway" rewrite addresses inside SIP messages on
//! their way through, and often get it wrong. What they leave behind is visible here:
//! - the digest `uri` no longer equals the Request-URI, because the ALG rewrote the
//!   request line after the phone had signed it ([`AlgSign::DigestUri`]);
//! - a UDP request whose body is shorter than its Content-Length, because the ALG
//!   rewrote addresses in the SDP without fixing the length ([`AlgSign::BodyLength`]).
//!
//! Neither proves an ALG, so the endpoint only logs a warning that names the source and
//! says what to do, and counts it. Each source is logged at most once per
//! [`LOG_INTERVAL`]; the table of sources is bounded so a spoofed flood cannot grow it.
//!
//! Does not own: the rejection of such requests (authentication answers 403, the parser
//! marks the defect and validation answers 400) or anything beyond a log line and a count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Least time between two warnings about one source.
pub const LOG_INTERVAL: Duration = Duration::from_secs(600);

/// Most sources remembered; the table starts over when full (a few more warnings at
/// worst).
const MAX_SOURCES: usize = 4096;

/// What made voxgate suspect an ALG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlgSign {
    DigestUri,
    BodyLength,
}

impl AlgSign {
    pub fn as_str(self) -> &'static str {
        match self {
            AlgSign::DigestUri => "digest uri differs from the Request-URI",
            AlgSign::BodyLength => "UDP body shorter than its Content-Length",
        }
    }
}

/// Remembers when each source was last reported.
#[derive(Debug, Default)]
pub struct AlgDetector {
    last_logged: HashMap<IpAddr, Instant>,
}

impl AlgDetector {
    /// Whether a sign from `source` at `now` deserves a warning (and remembers it).
    pub fn should_log(&mut self, now: Instant, source: IpAddr) -> bool {
        if let Some(last) = self.last_logged.get(&source) {
            if now.saturating_duration_since(*last) < LOG_INTERVAL {
                return false;
            }
        }
        if self.last_logged.len() >= MAX_SOURCES {
            self.last_logged.clear();
        }
        self.last_logged.insert(source, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_source_per_interval() {
        let mut d = AlgDetector::default();
        let t0 = crate::security::test_base();
        let a: IpAddr = "198.51.100.1".parse().expect("ip");
        let b: IpAddr = "198.51.100.2".parse().expect("ip");
        assert!(d.should_log(t0, a));
        assert!(!d.should_log(t0 + Duration::from_secs(1), a));
        assert!(d.should_log(t0 + Duration::from_secs(1), b));
        assert!(!d.should_log(t0 + LOG_INTERVAL - Duration::from_secs(1), a));
        assert!(d.should_log(t0 + LOG_INTERVAL, a));
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut d = AlgDetector::default();
        let t0 = crate::security::test_base();
        for i in 0..(MAX_SOURCES as u32 * 3) {
            d.should_log(t0, IpAddr::from(i.to_be_bytes()));
        }
        assert!(d.last_logged.len() <= MAX_SOURCES);
    }
}
