//! Overload admission (SEC-15) with a budget per trust class (SEC-17).
//!
//! Owns: the count of new calls per second, the queue high-water check, and the random
//! Retry-After. Does not own: the queue (the driver measures its fill), the 503 itself
//! (the endpoint builds it statelessly), concurrent-call limits (RTE-14, the B2BUA).

use std::time::{Duration, Instant};

use super::flood::SlidingCounter;
use super::{Admission, OverloadConfig, OverloadReason, Trust};
use crate::sip::Method;

const CPS_WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Overload {
    /// Admitted new INVITEs, all classes.
    all: Option<SlidingCounter>,
    /// Admitted new INVITEs from untrusted sources.
    untrusted: Option<SlidingCounter>,
    rng: SplitMix64,
}

impl Overload {
    pub(crate) fn new(seed: u64) -> Overload {
        Overload {
            all: None,
            untrusted: None,
            rng: SplitMix64(seed),
        }
    }

    pub(crate) fn admit(
        &mut self,
        config: &OverloadConfig,
        now: Instant,
        method: &Method,
        in_dialog: bool,
        trust: Trust,
        queue_fill: f32,
    ) -> Admission {
        if in_dialog
            || !matches!(
                method,
                Method::Invite | Method::Register | Method::Subscribe
            )
        {
            return Admission::Admitted;
        }
        // "Above 80 %": a fill exactly at the mark is still admitted. NaN compares false.
        if queue_fill > config.queue_high_water {
            return self.reject(config, OverloadReason::Queue);
        }
        if *method != Method::Invite {
            return Admission::Admitted;
        }
        let Some(max_cps) = config.max_cps else {
            return Admission::Admitted;
        };
        let slot = SlidingCounter::slot_for(CPS_WINDOW);
        let all = self.all.get_or_insert_with(|| SlidingCounter::new(now));
        if all.count(now, slot) >= max_cps.get() {
            return self.reject(config, OverloadReason::CallsPerSecond);
        }
        if trust == Trust::Untrusted {
            let share = u64::from(config.untrusted_cps_percent.min(100));
            let limit = (u64::from(max_cps.get()) * share / 100).max(1);
            let untrusted = self
                .untrusted
                .get_or_insert_with(|| SlidingCounter::new(now));
            if u64::from(untrusted.count(now, slot)) >= limit {
                return self.reject(config, OverloadReason::UntrustedCallsPerSecond);
            }
            untrusted.record(now, slot);
        }
        self.all
            .get_or_insert_with(|| SlidingCounter::new(now))
            .record(now, slot);
        Admission::Admitted
    }

    fn reject(&mut self, config: &OverloadConfig, reason: OverloadReason) -> Admission {
        let (lo, hi) = config.retry_after_bounds();
        let span = u64::from(hi - lo) + 1;
        let retry_after_secs = lo + (self.rng.next() % span) as u32;
        Admission::Reject503 {
            retry_after_secs,
            reason,
        }
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny and good enough to spread Retry-After
/// values; nothing here needs to be unpredictable.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
