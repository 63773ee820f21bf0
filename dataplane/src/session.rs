//! One relayed media session, sans-IO: two or more legs, each a peer voxgate exchanges
//! RTP/RTCP with on its own local ports, and the rules that decide, for one received packet,
//! whether and where it is forwarded and how it is rewritten.
//!
//! Owns, per session: latching and strict source (MED-23), SSRC/sequence/timestamp
//! rewriting so each far end sees one continuous stream, payload-type mapping, RTCP SSRC
//! rewriting, the media timeout (MED-24) and per-leg statistics (MED-11, in [`crate::stats`]).
//!
//! Does not own: sockets, port allocation, clocks (time is the `now` argument; the driver
//! reads the clock once per batch), SRTP, ICE/STUN answers, RTCP generation for terminated
//! legs, SDP (the control plane turns SDP into [`LegConfig`]). Nothing here allocates per
//! packet: [`Session::on_packet`] rewrites the caller's buffer in place and touches only
//! fixed-size state (checked by `tests/no_alloc.rs`).
//!
//! # Driver contract
//! Create the session at the answer (or call [`Session::update`] then): the learning window
//! opens at [`Session::new`] and at every [`Session::update`]. Feed every datagram a leg's
//! sockets receive to [`Session::on_packet`] and send it as the [`Verdict`] says; then drain
//! [`Session::poll_event`], and call [`Session::handle_timeout`] when
//! [`Session::poll_timeout`] (the `MediaTimeout` timer) is reached.
//!
//! # Latching (MED-23)
//! Each leg has a latch per local port (RTP, RTCP; on rtcp-mux legs RTCP arrives on the RTP
//! port and shares its latch). During the learning window the first valid packet (a checked
//! RTP packet with a mapped payload type, or a checked RTCP compound) from a source latches
//! that source; later packets from other sources in the same window are dropped — except from
//! the exact address the SDP gave, which always wins, so a racing attacker cannot keep a leg
//! whose peer sends from its SDP address. After the window only the latched address is
//! accepted (strict source); a leg that latched nothing in time may still latch its exact SDP
//! address. Everything else is dropped and counted as [`DropReason::Source`]. Only
//! [`Session::update`] reopens the window.
//!
//! Until a leg has latched, packets for it go to its SDP address, and only if that address is
//! a usable unicast one: never unspecified, multicast, broadcast, port 0 or loopback (unless
//! [`SessionConfig::danger_allow_loopback_remote`]). A latched address is where the peer
//! really is, so it is used as it is.
//!
//! # Payload types
//! Each leg's [`PayloadMap`] maps the payload types received on that leg to the ones sent on
//! the leg it forwards to. An unmapped payload type is dropped ([`DropReason::PayloadType`]):
//! the far end only agreed to what the SDP listed, and an unknown PT has no clock rate for
//! the timestamp and jitter arithmetic.
//!
//! # Stream continuity
//! The first SSRC received on a leg becomes the SSRC sent on the forward leg, for the whole
//! session. When another SSRC arrives (a source change, a re-offer), it is mapped to the same
//! outgoing SSRC: the sequence continues at the last sent number + 1 and the timestamp at the
//! last sent timestamp + the elapsed time in clock units (at least 1). Late packets of the
//! previous SSRC keep their old offsets. RTCP is rewritten consistently: sender SSRCs as the
//! media, report-block and feedback media SSRCs back to the SSRC the reported stream really
//! has, and the SR's RTP timestamp by the same offset. Report blocks' sequence and loss
//! fields are relayed as they are; BYE for a replaced SSRC is rewritten like its media.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::rtcp::{RtcpCompound, SsrcField};
use crate::rtp::{classify, PacketKind, RtpPacket};
use crate::stats::{
    mos_delay_ms, mos_g711, rtp_units, DropCounts, DropReason, LegStats, Reception, SrLog,
};

/// The most legs one session may have.
pub const MAX_LEGS: usize = 16;

/// A leg of a session: an index into the legs given to [`Session::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LegId(pub u8);

/// Which of a leg's two local sockets a packet arrived on or leaves from (MED-02: RTP even,
/// RTCP the next odd port; rtcp-mux uses the RTP one for both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Port {
    Rtp,
    Rtcp,
}

impl Port {
    fn index(self) -> usize {
        match self {
            Self::Rtp => 0,
            Self::Rtcp => 1,
        }
    }
}

/// What to do with one received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the (rewritten, same length) packet from `to_leg`'s `port` socket to `dest`.
    Forward {
        to_leg: LegId,
        port: Port,
        dest: SocketAddr,
    },
    /// Drop it; already counted in the arriving leg's [`DropCounts`].
    Drop(DropReason),
}

/// Timing and safety settings of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// How long after the answer and after each update a leg may learn its peer
    /// (`media.learning_window`, MED-23: 3 s).
    pub learning_window: Duration,
    /// Idle time without accepted RTP/RTCP before a media timeout (`media.timeout`, MED-24: 60 s).
    pub media_timeout: Duration,
    /// The same while on hold (`media.hold_timeout`, MED-24: 3600 s).
    pub hold_timeout: Duration,
    /// Send to loopback SDP addresses (tests on one host). Weakens MED-23's protection.
    pub danger_allow_loopback_remote: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            learning_window: Duration::from_secs(3),
            media_timeout: Duration::from_secs(60),
            hold_timeout: Duration::from_secs(3600),
            danger_allow_loopback_remote: false,
        }
    }
}

/// Where one received payload type goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtMapping {
    /// The payload type sent on the forward leg.
    pub out: u8,
    /// The RTP clock rate (Hz) of this payload type, for jitter and timestamp continuity.
    pub clock_rate: u32,
    /// An RFC 4733 telephone-event (or comfort-noise-like) type: left out of the jitter.
    pub event: bool,
}

/// The payload types of one direction: received on a leg → sent on its forward leg.
#[derive(Clone, PartialEq, Eq)]
pub struct PayloadMap {
    entries: [Option<PtMapping>; 128],
}

impl PayloadMap {
    /// An empty map: every payload type dropped.
    #[must_use]
    pub fn new() -> Self {
        Self {
            entries: [None; 128],
        }
    }

    /// Maps media payload type `pt` (low 7 bits) to `out` with the given clock rate.
    pub fn map(&mut self, pt: u8, out: u8, clock_rate: u32) -> &mut Self {
        self.entries[usize::from(pt & 0x7f)] = Some(PtMapping {
            out: out & 0x7f,
            clock_rate,
            event: false,
        });
        self
    }

    /// Maps an RFC 4733 telephone-event payload type.
    pub fn map_events(&mut self, pt: u8, out: u8, clock_rate: u32) -> &mut Self {
        self.entries[usize::from(pt & 0x7f)] = Some(PtMapping {
            out: out & 0x7f,
            clock_rate,
            event: true,
        });
        self
    }

    /// The mapping of `pt`.
    #[must_use]
    pub fn get(&self, pt: u8) -> Option<PtMapping> {
        self.entries[usize::from(pt & 0x7f)]
    }
}

impl Default for PayloadMap {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for PayloadMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.entries
                    .iter()
                    .enumerate()
                    .filter_map(|(pt, m)| m.map(|m| (pt, m))),
            )
            .finish()
    }
}

/// One leg as the control plane describes it (from the SDP and the port allocation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegConfig {
    /// voxgate's RTP socket address for this leg; RTCP is on the next port (MED-02).
    pub local: SocketAddr,
    /// The peer's RTP address from its SDP (`c=` and `m=`), if it gave one.
    pub remote_rtp: Option<SocketAddr>,
    /// The peer's RTCP address (`a=rtcp`); `None` means RTP port + 1.
    pub remote_rtcp: Option<SocketAddr>,
    /// RTCP multiplexed on the RTP port (RFC 5761), as negotiated.
    pub rtcp_mux: bool,
    /// The leg that receives what this leg's peer sends.
    pub forward_to: LegId,
    /// Payload types received on this leg → payload types sent on `forward_to`.
    pub payload_map: PayloadMap,
}

impl LegConfig {
    /// A leg with no SDP address yet, no rtcp-mux and an empty payload map.
    #[must_use]
    pub fn new(local: SocketAddr, forward_to: LegId) -> Self {
        Self {
            local,
            remote_rtp: None,
            remote_rtcp: None,
            rtcp_mux: false,
            forward_to,
            payload_map: PayloadMap::new(),
        }
    }

    /// voxgate's RTCP socket address for this leg (MED-02: RTP port + 1).
    #[must_use]
    pub fn local_rtcp(&self) -> SocketAddr {
        SocketAddr::new(self.local.ip(), self.local.port().wrapping_add(1))
    }

    /// The addresses the peer is expected to send from, per [`Port`].
    fn expected(&self) -> [Option<SocketAddr>; 2] {
        let rtcp = self.remote_rtcp.or_else(|| {
            self.remote_rtp
                .map(|a| SocketAddr::new(a.ip(), a.port().wrapping_add(1)))
        });
        [self.remote_rtp, rtcp]
    }
}

/// Why a session or update was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Fewer than 2 or more than [`MAX_LEGS`] legs.
    #[error("a session needs 2 to {MAX_LEGS} legs, got {count}")]
    LegCount { count: usize },
    /// A leg forwards to itself or to a leg that does not exist.
    #[error("leg {leg} forwards to leg {to}, which is itself or does not exist")]
    Forward { leg: u8, to: u8 },
    /// An update must describe the same legs.
    #[error("an update has {after} legs, the session {before}")]
    LegCountChanged { before: usize, after: usize },
}

/// Something the control plane must hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// No RTP or RTCP was accepted on any leg for the (hold) media timeout (MED-24).
    MediaTimeout { held: bool, idle: Duration },
}

#[derive(Debug, Clone, Copy, Default)]
struct Latch {
    addr: Option<SocketAddr>,
    /// Latched (or confirmed) in the current learning window.
    confirmed: bool,
}

#[derive(Debug, Clone, Copy)]
struct SsrcMap {
    in_ssrc: u32,
    seq_off: u16,
    ts_off: u32,
}

/// The stream a leg's peer sends, as voxgate sends it on the forward leg.
#[derive(Debug, Clone, Copy, Default)]
struct OutStream {
    cur: Option<SsrcMap>,
    prev: Option<SsrcMap>,
    out_ssrc: u32,
    last_seq: u16,
    last_ts: u32,
    last_at: Duration,
    last_clock: u32,
}

impl OutStream {
    /// Maps one packet's SSRC, sequence number and timestamp (see "Stream continuity").
    fn map(&mut self, at: Duration, ssrc: u32, seq: u16, ts: u32, clock: u32) -> (u32, u16, u32) {
        let m = match (self.cur, self.prev) {
            (Some(c), _) if c.in_ssrc == ssrc => c,
            (_, Some(p)) if p.in_ssrc == ssrc => {
                return (
                    self.out_ssrc,
                    seq.wrapping_add(p.seq_off),
                    ts.wrapping_add(p.ts_off),
                );
            }
            (None, _) => {
                let m = SsrcMap {
                    in_ssrc: ssrc,
                    seq_off: 0,
                    ts_off: 0,
                };
                self.cur = Some(m);
                self.out_ssrc = ssrc;
                // So that the first packet counts as the newest sent.
                self.last_seq = seq.wrapping_sub(1);
                m
            }
            (Some(c), _) => {
                let step = rtp_units(at.saturating_sub(self.last_at), self.last_clock).max(1);
                let m = SsrcMap {
                    in_ssrc: ssrc,
                    seq_off: self.last_seq.wrapping_add(1).wrapping_sub(seq),
                    ts_off: self.last_ts.wrapping_add(step).wrapping_sub(ts),
                };
                self.prev = Some(c);
                self.cur = Some(m);
                m
            }
        };
        let out_seq = seq.wrapping_add(m.seq_off);
        let out_ts = ts.wrapping_add(m.ts_off);
        // Only a newer packet moves the continuation point (RFC 1982-style comparison).
        if (out_seq.wrapping_sub(self.last_seq) as i16) > 0 {
            self.last_seq = out_seq;
            self.last_ts = out_ts;
            self.last_at = at;
            self.last_clock = clock;
        }
        (self.out_ssrc, out_seq, out_ts)
    }

    /// The outgoing SSRC and timestamp offset for an incoming SSRC this stream carries.
    fn sender(&self, ssrc: u32) -> Option<(u32, u32)> {
        [self.cur, self.prev]
            .into_iter()
            .flatten()
            .find(|m| m.in_ssrc == ssrc)
            .map(|m| (self.out_ssrc, m.ts_off))
    }
}

#[derive(Debug)]
struct Leg {
    cfg: LegConfig,
    /// Addresses the peer may latch from even when another source came first.
    expected: [Option<SocketAddr>; 2],
    /// SDP addresses usable as destinations before latching.
    sdp_dest: [Option<SocketAddr>; 2],
    latch: [Latch; 2],
    out: OutStream,
    rx: Reception,
    /// SRs relayed to this leg's peer, for RTT.
    sr_log: SrLog,
    rtt: Option<Duration>,
    remote_fraction_lost: Option<u8>,
    remote_jitter: Option<u32>,
    sent_packets: u64,
    sent_octets: u64,
    drops: DropCounts,
}

impl Leg {
    fn new(cfg: LegConfig, allow_loopback: bool) -> Self {
        let mut leg = Self {
            cfg,
            expected: [None; 2],
            sdp_dest: [None; 2],
            latch: [Latch::default(); 2],
            out: OutStream::default(),
            rx: Reception::default(),
            sr_log: SrLog::default(),
            rtt: None,
            remote_fraction_lost: None,
            remote_jitter: None,
            sent_packets: 0,
            sent_octets: 0,
            drops: DropCounts::default(),
        };
        leg.derive_addresses(allow_loopback);
        leg
    }

    fn derive_addresses(&mut self, allow_loopback: bool) {
        self.expected = self.cfg.expected();
        self.sdp_dest = self
            .expected
            .map(|a| a.filter(|a| usable(*a, allow_loopback)));
    }

    /// Takes a re-offer's description: the window reopens for every latch, and a latch whose
    /// SDP address changed is forgotten (packets go to the new SDP address until one latches).
    fn reconfigure(&mut self, cfg: LegConfig, allow_loopback: bool) {
        let before = self.expected;
        self.cfg = cfg;
        self.derive_addresses(allow_loopback);
        for (k, latch) in self.latch.iter_mut().enumerate() {
            if before[k] != self.expected[k] {
                latch.addr = None;
            }
            latch.confirmed = false;
        }
    }

    fn rtp_dest(&self) -> Option<SocketAddr> {
        self.latch[0].addr.or(self.sdp_dest[0])
    }

    fn rtcp_dest(&self) -> Option<(Port, SocketAddr)> {
        if self.cfg.rtcp_mux {
            self.rtp_dest().map(|a| (Port::Rtp, a))
        } else {
            self.latch[1]
                .addr
                .or(self.sdp_dest[1])
                .map(|a| (Port::Rtcp, a))
        }
    }
}

/// Whether an SDP address may be sent to (MED-23).
fn usable(addr: SocketAddr, allow_loopback: bool) -> bool {
    let ip = addr.ip().to_canonical();
    let bad = ip.is_unspecified()
        || ip.is_multicast()
        || ip == IpAddr::V4(Ipv4Addr::BROADCAST)
        || (ip.is_loopback() && !allow_loopback);
    !bad && addr.port() != 0
}

fn check_legs(legs: &[LegConfig]) -> Result<(), SessionError> {
    if !(2..=MAX_LEGS).contains(&legs.len()) {
        return Err(SessionError::LegCount { count: legs.len() });
    }
    for (i, leg) in legs.iter().enumerate() {
        let to = usize::from(leg.forward_to.0);
        if to == i || to >= legs.len() {
            return Err(SessionError::Forward {
                leg: u8::try_from(i).expect("at most MAX_LEGS legs"),
                to: leg.forward_to.0,
            });
        }
    }
    Ok(())
}

/// One relayed call's media: see the module documentation.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    /// Time zero of the session's RTP-clock arithmetic.
    epoch: Instant,
    window_end: Instant,
    held: bool,
    last_media: Instant,
    timed_out: bool,
    event: Option<SessionEvent>,
    legs: Vec<Leg>,
}

impl Session {
    /// A session whose learning window opens at `now`.
    pub fn new(
        now: Instant,
        config: SessionConfig,
        legs: Vec<LegConfig>,
    ) -> Result<Self, SessionError> {
        check_legs(&legs)?;
        let allow = config.danger_allow_loopback_remote;
        Ok(Self {
            epoch: now,
            window_end: now + config.learning_window,
            held: false,
            last_media: now,
            timed_out: false,
            event: None,
            legs: legs.into_iter().map(|c| Leg::new(c, allow)).collect(),
            config,
        })
    }

    /// A new offer/answer: new leg descriptions (same number of legs), the learning window
    /// reopens, and the media timeout restarts.
    pub fn update(&mut self, now: Instant, legs: Vec<LegConfig>) -> Result<(), SessionError> {
        check_legs(&legs)?;
        if legs.len() != self.legs.len() {
            return Err(SessionError::LegCountChanged {
                before: self.legs.len(),
                after: legs.len(),
            });
        }
        let allow = self.config.danger_allow_loopback_remote;
        for (leg, cfg) in self.legs.iter_mut().zip(legs) {
            leg.reconfigure(cfg, allow);
        }
        self.window_end = now + self.config.learning_window;
        self.rearm(now);
        Ok(())
    }

    /// Puts the session on hold or takes it off (the control plane knows from the SDP
    /// direction). A change restarts the idle clock with the new timeout.
    pub fn set_hold(&mut self, now: Instant, held: bool) {
        if self.held != held {
            self.held = held;
            self.rearm(now);
        }
    }

    /// Whether the session is on hold.
    #[must_use]
    pub fn held(&self) -> bool {
        self.held
    }

    /// The number of legs.
    #[must_use]
    pub fn leg_count(&self) -> usize {
        self.legs.len()
    }

    /// A leg's current description.
    #[must_use]
    pub fn leg_config(&self, leg: LegId) -> Option<&LegConfig> {
        self.legs.get(usize::from(leg.0)).map(|l| &l.cfg)
    }

    fn rearm(&mut self, now: Instant) {
        self.last_media = now;
        self.timed_out = false;
    }

    /// Decides what to do with one datagram received at `now` on `leg`'s `port` socket from
    /// `src`, rewriting `packet` in place when it is forwarded.
    pub fn on_packet(
        &mut self,
        now: Instant,
        leg: LegId,
        port: Port,
        src: SocketAddr,
        packet: &mut [u8],
    ) -> Verdict {
        let i = usize::from(leg.0);
        if i >= self.legs.len() {
            return Verdict::Drop(DropReason::UnknownLeg);
        }
        let result = match (classify(packet), port) {
            (PacketKind::Rtp, Port::Rtp) => self.on_rtp(now, i, src, packet),
            (PacketKind::Rtcp, _) => self.on_rtcp(now, i, port, src, packet),
            _ => Err(DropReason::NotMedia),
        };
        result.unwrap_or_else(|reason| {
            self.legs[i].drops.count(reason);
            Verdict::Drop(reason)
        })
    }

    /// The latching rule of the module doc, for leg `i`'s `port` latch.
    fn check_source(
        &mut self,
        now: Instant,
        i: usize,
        port: Port,
        src: SocketAddr,
    ) -> Result<(), DropReason> {
        let in_window = now < self.window_end;
        let leg = &mut self.legs[i];
        let expected = leg.expected[port.index()] == Some(src);
        let latch = &mut leg.latch[port.index()];
        if latch.addr == Some(src) {
            latch.confirmed |= in_window;
            return Ok(());
        }
        let learnable = if in_window {
            !latch.confirmed || expected
        } else {
            latch.addr.is_none() && expected
        };
        if !learnable {
            return Err(DropReason::Source);
        }
        latch.addr = Some(src);
        latch.confirmed = in_window;
        Ok(())
    }

    fn on_rtp(
        &mut self,
        now: Instant,
        i: usize,
        src: SocketAddr,
        packet: &mut [u8],
    ) -> Result<Verdict, DropReason> {
        let len = packet.len() as u64;
        let mut p = RtpPacket::new_checked(packet).map_err(|_| DropReason::Malformed)?;
        let map = self.legs[i]
            .cfg
            .payload_map
            .get(p.payload_type())
            .ok_or(DropReason::PayloadType)?;
        self.check_source(now, i, Port::Rtp, src)?;
        self.rearm(now);
        let at = now.saturating_duration_since(self.epoch);

        let leg = &mut self.legs[i];
        let (ssrc, seq, ts) = (p.ssrc(), p.sequence_number(), p.timestamp());
        let jitter_clock = if map.event { 0 } else { map.clock_rate };
        leg.rx.on_rtp(at, ssrc, seq, ts, jitter_clock);
        leg.rx.rtp_packets += 1;
        leg.rx.octets += len;
        leg.rx.rtp_payload_octets += p.payload().len() as u64;

        let (out_ssrc, out_seq, out_ts) = leg.out.map(at, ssrc, seq, ts, map.clock_rate);
        p.set_ssrc(out_ssrc);
        p.set_sequence_number(out_seq);
        p.set_timestamp(out_ts);
        p.set_payload_type(map.out);

        let to = leg.cfg.forward_to;
        let dest_leg = &mut self.legs[usize::from(to.0)];
        let dest = dest_leg.rtp_dest().ok_or(DropReason::NoDestination)?;
        dest_leg.sent_packets += 1;
        dest_leg.sent_octets += len;
        Ok(Verdict::Forward {
            to_leg: to,
            port: Port::Rtp,
            dest,
        })
    }

    fn on_rtcp(
        &mut self,
        now: Instant,
        i: usize,
        port: Port,
        src: SocketAddr,
        packet: &mut [u8],
    ) -> Result<Verdict, DropReason> {
        let len = packet.len() as u64;
        let mut compound = RtcpCompound::new_checked(packet).map_err(|_| DropReason::Malformed)?;
        self.check_source(now, i, port, src)?;
        self.rearm(now);
        let at = now.saturating_duration_since(self.epoch);
        let to = self.legs[i].cfg.forward_to;
        let to_i = usize::from(to.0);
        self.legs[i].rx.rtcp_packets += 1;
        self.legs[i].rx.octets += len;

        for mut part in compound.packets_mut() {
            if let (Some(info), Some(sender)) = (part.sender_info(), part.sender_ssrc()) {
                if let Some((_, ts_off)) = self.legs[i].out.sender(sender) {
                    part.set_sr_rtp_timestamp(info.rtp_timestamp.wrapping_add(ts_off));
                }
                self.legs[to_i].sr_log.record(info.lsr_key(), at);
            }
            for block in part.report_blocks() {
                if reported_stream(&self.legs, i, block.ssrc).is_none() {
                    continue;
                }
                let leg = &mut self.legs[i];
                if let Some(rtt) = leg.sr_log.rtt(block.lsr, block.dlsr, at) {
                    leg.rtt = Some(rtt);
                }
                leg.remote_fraction_lost = Some(block.fraction_lost);
                leg.remote_jitter = Some(block.jitter);
            }
            let legs = &self.legs;
            part.rewrite_ssrcs(|role, ssrc| match role {
                SsrcField::Sender => legs[i].out.sender(ssrc).map_or(ssrc, |(out, _)| out),
                SsrcField::Reportee => reported_stream(legs, i, ssrc).unwrap_or(ssrc),
            });
        }

        let dest_leg = &mut self.legs[to_i];
        let (port, dest) = dest_leg.rtcp_dest().ok_or(DropReason::NoDestination)?;
        dest_leg.sent_packets += 1;
        dest_leg.sent_octets += len;
        Ok(Verdict::Forward {
            to_leg: to,
            port,
            dest,
        })
    }

    /// When the `MediaTimeout` timer fires, if it is armed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.timed_out).then(|| self.last_media + self.idle_limit())
    }

    fn idle_limit(&self) -> Duration {
        if self.held {
            self.config.hold_timeout
        } else {
            self.config.media_timeout
        }
    }

    /// Advances time: raises [`SessionEvent::MediaTimeout`] once when the idle limit is
    /// reached (again only after media or an update re-arms it).
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.poll_timeout() {
            if now >= deadline {
                self.timed_out = true;
                self.event = Some(SessionEvent::MediaTimeout {
                    held: self.held,
                    idle: now.saturating_duration_since(self.last_media),
                });
            }
        }
    }

    /// The next event for the control plane.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.event.take()
    }

    /// Snapshots of every leg's statistics, in leg order.
    pub fn all_stats(&self) -> impl Iterator<Item = LegStats> + '_ {
        (0..self.legs.len()).filter_map(|i| self.stats(LegId(u8::try_from(i).ok()?)))
    }

    /// A snapshot of one leg's statistics.
    #[must_use]
    pub fn stats(&self, leg: LegId) -> Option<LegStats> {
        let l = self.legs.get(usize::from(leg.0))?;
        let (expected, received) = l.rx.totals();
        let lost = i64::try_from(expected).unwrap_or(i64::MAX)
            - i64::try_from(received).unwrap_or(i64::MAX);
        let (jitter, clock) = l.rx.jitter();
        let jitter_ms = if clock > 0 {
            f64::from(jitter) * 1000.0 / f64::from(clock)
        } else {
            0.0
        };
        let loss = if expected > 0 {
            lost.max(0) as f64 / expected as f64
        } else {
            0.0
        };
        Some(LegStats {
            rtp_packets: l.rx.rtp_packets,
            rtcp_packets: l.rx.rtcp_packets,
            octets: l.rx.octets,
            rtp_payload_octets: l.rx.rtp_payload_octets,
            sent_packets: l.sent_packets,
            sent_octets: l.sent_octets,
            expected,
            lost,
            jitter,
            jitter_ms,
            rtt: l.rtt,
            remote_fraction_lost: l.remote_fraction_lost,
            remote_jitter: l.remote_jitter,
            mos: mos_g711(loss, mos_delay_ms(l.rtt, jitter_ms)),
            dropped: l.drops,
            latched_rtp: l.latch[0].addr,
            latched_rtcp: if l.cfg.rtcp_mux {
                l.latch[0].addr
            } else {
                l.latch[1].addr
            },
        })
    }
}

/// For a report block received on leg `i` about `ssrc` (an SSRC voxgate sends to leg `i`),
/// the SSRC the reported stream has where it comes from.
fn reported_stream(legs: &[Leg], i: usize, ssrc: u32) -> Option<u32> {
    let target = u8::try_from(i).ok()?;
    legs.iter()
        .filter(|l| l.cfg.forward_to.0 == target)
        .find_map(|l| match l.out.cur {
            Some(m) if l.out.out_ssrc == ssrc => Some(m.in_ssrc),
            _ => None,
        })
}
