//! Per-leg media quality statistics (MED-11): reception counters, loss from sequence numbers
//! (RFC 3550 §A.3), interarrival jitter (RFC 3550 §A.8), RTT from relayed RTCP SR/RR pairs,
//! and an E-model MOS estimate (ITU-T G.107, simplified for G.711; formula in [`mos_g711`]).
//!
//! Owns: the arithmetic and the plain snapshot types ([`LegStats`], [`DropCounts`]).
//!
//! Does not own: deciding which packets count (that is [`crate::session`]), RTCP generation,
//! RTCP-XR, or exporting (the binary turns snapshots into Prometheus metrics). No allocation.

use std::net::SocketAddr;
use std::time::Duration;

/// RFC 3550 §A.1 constants.
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
const RTP_SEQ_MOD: u32 = 1 << 16;

/// Why a packet was dropped; each reason is a counter in [`DropCounts`] and a label of
/// `voxgate_rtp_dropped_total{reason}` (see [`DropReason::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Not a valid RTP packet or RTCP compound.
    Malformed,
    /// From an address other than the latched (or learnable) peer: strict source (MED-23).
    Source,
    /// An RTP payload type the control plane did not map for this leg.
    PayloadType,
    /// The destination leg has neither a latched peer nor a usable SDP address.
    NoDestination,
    /// STUN, DTLS or an unknown first byte, or RTP on an RTCP port.
    NotMedia,
    /// The leg id is not one of the session's legs.
    UnknownLeg,
}

impl DropReason {
    /// The metric label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Source => "source",
            Self::PayloadType => "payload_type",
            Self::NoDestination => "no_destination",
            Self::NotMedia => "not_media",
            Self::UnknownLeg => "unknown_leg",
        }
    }
}

/// Dropped packets of one leg, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DropCounts {
    pub malformed: u64,
    pub source: u64,
    pub payload_type: u64,
    pub no_destination: u64,
    pub not_media: u64,
}

impl DropCounts {
    pub(crate) fn count(&mut self, reason: DropReason) {
        let c = match reason {
            DropReason::Malformed => &mut self.malformed,
            DropReason::Source => &mut self.source,
            DropReason::PayloadType => &mut self.payload_type,
            DropReason::NoDestination => &mut self.no_destination,
            DropReason::NotMedia | DropReason::UnknownLeg => &mut self.not_media,
        };
        *c += 1;
    }

    /// All drops.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.malformed + self.source + self.payload_type + self.no_destination + self.not_media
    }
}

/// A snapshot of one leg's statistics. "Received" means from this leg's peer; "sent" means
/// relayed by voxgate to this leg's peer.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct LegStats {
    /// RTP packets accepted from the peer.
    pub rtp_packets: u64,
    /// RTCP compounds accepted from the peer.
    pub rtcp_packets: u64,
    /// UDP payload bytes of the accepted RTP and RTCP packets.
    pub octets: u64,
    /// RTP payload octets (RFC 3550 sense: no header, no padding) accepted.
    pub rtp_payload_octets: u64,
    /// Packets relayed to the peer.
    pub sent_packets: u64,
    /// UDP payload bytes relayed to the peer.
    pub sent_octets: u64,
    /// Packets expected from the sequence numbers, over all sources (RFC 3550 §A.3).
    pub expected: u64,
    /// Packets lost: expected − received; negative with duplicates (RFC 3550 §A.3).
    pub lost: i64,
    /// Interarrival jitter of the current source in timestamp units (RFC 3550 §A.8).
    pub jitter: u32,
    /// The same jitter in milliseconds (0 before the clock rate is known).
    pub jitter_ms: f64,
    /// Round-trip time between voxgate and the peer, from the peer's last report block that
    /// echoed an SR voxgate relayed to it (LSR/DLSR, RFC 3550 §6.4.1).
    pub rtt: Option<Duration>,
    /// The peer's own view from its last report block: fraction lost (1/256) ...
    pub remote_fraction_lost: Option<u8>,
    /// ... and interarrival jitter in timestamp units.
    pub remote_jitter: Option<u32>,
    /// E-model MOS estimate for G.711 ([`mos_g711`]) from `lost/expected`, jitter and RTT.
    pub mos: f64,
    /// Dropped packets that arrived on this leg, by reason.
    pub dropped: DropCounts,
    /// The latched RTP peer (MED-23).
    pub latched_rtp: Option<SocketAddr>,
    /// The latched RTCP peer (the RTP one on rtcp-mux legs).
    pub latched_rtcp: Option<SocketAddr>,
}

/// Sequence-number and jitter state of the source currently received on a leg
/// (RFC 3550 §A.1, §A.8), plus the totals of the sources before it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reception {
    source: Option<SourceState>,
    /// Expected and received of earlier sources (SSRC changes, sequence resyncs).
    prior_expected: u64,
    prior_received: u64,
    pub(crate) rtp_packets: u64,
    pub(crate) rtcp_packets: u64,
    pub(crate) octets: u64,
    pub(crate) rtp_payload_octets: u64,
}

#[derive(Debug, Clone, Copy)]
struct SourceState {
    ssrc: u32,
    max_seq: u16,
    /// Shifted count of sequence number cycles (RFC 3550 §A.1).
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    received: u32,
    /// Relative transit time of the previous packet, if one was measured at `clock`.
    transit: Option<u32>,
    clock: u32,
    /// Jitter × 16 (the fixed-point form of RFC 3550 §A.8).
    jitter16: u32,
}

impl SourceState {
    fn new(ssrc: u32, seq: u16) -> Self {
        let mut s = Self {
            ssrc,
            max_seq: seq,
            cycles: 0,
            base_seq: 0,
            bad_seq: 0,
            received: 0,
            transit: None,
            clock: 0,
            jitter16: 0,
        };
        s.init_seq(seq);
        s
    }

    /// RFC 3550 §A.1 `init_seq`.
    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
    }

    fn expected(&self) -> u64 {
        (u64::from(self.cycles) + u64::from(self.max_seq) + 1)
            .saturating_sub(u64::from(self.base_seq))
    }
}

impl Reception {
    /// Records one accepted RTP packet. `arrival` is the time since the session's epoch;
    /// `clock` the payload type's clock rate, 0 to leave the packet out of the jitter (as
    /// RFC 4733 events, whose timestamps stand still, must be).
    pub(crate) fn on_rtp(&mut self, arrival: Duration, ssrc: u32, seq: u16, ts: u32, clock: u32) {
        let source = match &mut self.source {
            Some(s) if s.ssrc == ssrc => s,
            other => {
                if let Some(old) = other.take() {
                    self.prior_expected += old.expected();
                    self.prior_received += u64::from(old.received);
                }
                other.insert(SourceState::new(ssrc, seq))
            }
        };
        if !update_seq(
            source,
            seq,
            &mut self.prior_expected,
            &mut self.prior_received,
        ) {
            return;
        }
        if clock == 0 {
            return;
        }
        if source.clock != clock {
            // A new clock rate makes the previous transit meaningless.
            source.clock = clock;
            source.transit = None;
        }
        let transit = rtp_units(arrival, clock).wrapping_sub(ts);
        if let Some(prev) = source.transit {
            // RFC 3550 §A.8: J += (|D| − J) / 16, kept as 16·J in integers.
            let d = (transit.wrapping_sub(prev) as i32).unsigned_abs();
            source.jitter16 = source
                .jitter16
                .wrapping_add(d)
                .wrapping_sub((source.jitter16 + 8) >> 4);
        }
        source.transit = Some(transit);
    }

    /// Expected and received over all sources.
    pub(crate) fn totals(&self) -> (u64, u64) {
        let (e, r) = self
            .source
            .map_or((0, 0), |s| (s.expected(), u64::from(s.received)));
        (self.prior_expected + e, self.prior_received + r)
    }

    /// Jitter of the current source in timestamp units and its clock rate.
    pub(crate) fn jitter(&self) -> (u32, u32) {
        self.source.map_or((0, 0), |s| (s.jitter16 >> 4, s.clock))
    }
}

/// RFC 3550 §A.1 `update_seq` without the probation of new sources (a latched, strict
/// source needs none); returns false for a packet that is not counted. A resync folds the
/// counts so far into the prior totals, so loss is never forgotten.
fn update_seq(s: &mut SourceState, seq: u16, prior_e: &mut u64, prior_r: &mut u64) -> bool {
    let udelta = seq.wrapping_sub(s.max_seq);
    if s.received == 0 && u32::from(seq) == s.base_seq && seq == s.max_seq {
        // The first packet of the source.
    } else if udelta < MAX_DROPOUT {
        // In order, with a permissible gap.
        if seq < s.max_seq {
            s.cycles += RTP_SEQ_MOD;
        }
        s.max_seq = seq;
    } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
        // A very large jump: two sequential packets mean the source restarted.
        if u32::from(seq) == s.bad_seq {
            *prior_e += s.expected();
            *prior_r += u64::from(s.received);
            s.init_seq(seq);
        } else {
            s.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
            return false;
        }
    }
    // else: duplicate or reordered packet, counted as received.
    s.received += 1;
    true
}

/// `d` in units of a `clock` Hz RTP clock, modulo 2^32.
pub(crate) fn rtp_units(d: Duration, clock: u32) -> u32 {
    let clock = u64::from(clock);
    let units = d.as_secs() * clock + u64::from(d.subsec_nanos()) * clock / 1_000_000_000;
    // RTP timestamps wrap: the truncation is the arithmetic we want.
    units as u32
}

/// Which SRs voxgate relayed to a peer recently, so that the peer's report blocks (LSR/DLSR)
/// give the RTT between voxgate and that peer. Fixed size: 4 SRs cover 20 s at the usual
/// 5 s interval, longer than any report should take to come back.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SrLog {
    entries: [Option<(u32, Duration)>; 4],
    next: usize,
}

impl SrLog {
    /// Notes that an SR with `lsr_key` (middle 32 bits of its NTP time) left at `at`
    /// (time since the session's epoch).
    pub(crate) fn record(&mut self, lsr_key: u32, at: Duration) {
        self.entries[self.next] = Some((lsr_key, at));
        self.next = (self.next + 1) % self.entries.len();
    }

    /// RTT from a report block received at `now` that echoes `lsr` after `dlsr` (1/65536 s).
    pub(crate) fn rtt(&self, lsr: u32, dlsr: u32, now: Duration) -> Option<Duration> {
        if lsr == 0 {
            return None;
        }
        let (_, sent) = self.entries.iter().flatten().find(|(k, _)| *k == lsr)?;
        let held = Duration::from_nanos(u64::from(dlsr) * 1_000_000_000 / 65_536);
        now.checked_sub(*sent)?.checked_sub(held)
    }
}

/// E-model R-factor → MOS (ITU-T G.107 §B.4).
fn r_to_mos(r: f64) -> f64 {
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7.0e-6
    }
}

/// MOS estimate for a G.711 stream (ITU-T G.107 E-model with default values):
///
/// - `R = R0 − Is − Id − Ie,eff + A` with `R0 − Is = 93.2` (G.107 defaults) and `A = 0`;
/// - delay impairment `Id = 0.024·d + 0.11·(d − 177.3)·H(d − 177.3)` for one-way mouth-to-ear
///   delay `d` in ms (the usual simplification of G.107's Idte/Idle/Idd);
/// - `Ie,eff = Ie + (95 − Ie)·Ppl / (Ppl/BurstR + Bpl)` with G.711's `Ie = 0` and `Bpl = 25.1`
///   (G.113 Appendix I, with packet-loss concealment), random loss (`BurstR = 1`), and `Ppl` the
///   loss in percent;
/// - `MOS = 1 + 0.035·R + R·(R − 60)·(100 − R)·7·10⁻⁶`, clamped to 1..4.5.
///
/// `loss` is a fraction (0..1, clamped). Strictly decreasing in `loss` and in `delay_ms`.
#[must_use]
pub fn mos_g711(loss: f64, delay_ms: f64) -> f64 {
    let ppl = loss.clamp(0.0, 1.0) * 100.0;
    let d = delay_ms.max(0.0);
    let id = 0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 };
    let ie_eff = 95.0 * ppl / (ppl + 25.1);
    r_to_mos(93.2 - id - ie_eff)
}

/// The one-way delay [`LegStats::mos`] feeds into [`mos_g711`]: half the RTT (0 when unknown),
/// a jitter buffer of twice the jitter, and one 20 ms G.711 frame of packetisation.
#[must_use]
pub fn mos_delay_ms(rtt: Option<Duration>, jitter_ms: f64) -> f64 {
    rtt.map_or(0.0, |r| r.as_secs_f64() * 1000.0 / 2.0) + 2.0 * jitter_ms + 20.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_wrap_counts_cycles() {
        let mut r = Reception::default();
        for (i, seq) in [65534u16, 65535, 0, 1].into_iter().enumerate() {
            r.on_rtp(
                Duration::from_millis(20 * i as u64),
                1,
                seq,
                160 * i as u32,
                8000,
            );
        }
        assert_eq!(r.totals(), (4, 4));
    }

    #[test]
    fn restart_after_two_sequential_far_packets() {
        let mut r = Reception::default();
        r.on_rtp(Duration::ZERO, 1, 10, 0, 8000);
        r.on_rtp(Duration::ZERO, 1, 11, 0, 8000);
        // A jump of 30,000: the first is not counted, the second resyncs.
        r.on_rtp(Duration::ZERO, 1, 30_011, 0, 8000);
        assert_eq!(r.totals(), (2, 2));
        r.on_rtp(Duration::ZERO, 1, 30_012, 0, 8000);
        r.on_rtp(Duration::ZERO, 1, 30_013, 0, 8000);
        assert_eq!(r.totals(), (4, 4));
    }

    #[test]
    fn mos_values() {
        let best = mos_g711(0.0, 0.0);
        assert!((best - 4.41).abs() < 0.01, "{best}");
        assert!(mos_g711(0.0, 300.0) < mos_g711(0.0, 100.0));
        assert!(mos_g711(1.0, 0.0) < 1.2);
    }

    #[test]
    fn sr_log_rtt() {
        let mut log = SrLog::default();
        log.record(0x1234, Duration::from_secs(10));
        // Echoed after 0.5 s held at the peer, back 0.6 s later: RTT 100 ms.
        let rtt = log.rtt(0x1234, 32_768, Duration::from_millis(10_600));
        assert_eq!(rtt, Some(Duration::from_millis(100)));
        assert_eq!(log.rtt(0x9999, 0, Duration::from_secs(11)), None);
        assert_eq!(log.rtt(0, 0, Duration::from_secs(11)), None);
    }
}
