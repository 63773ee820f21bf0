//! Shared builders for the session tests: packets, a two-leg G.711 session, virtual time.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use voxgate_dataplane::session::{LegConfig, LegId, PayloadMap, Session, SessionConfig};

pub const A: LegId = LegId(0);
pub const B: LegId = LegId(1);

/// Leg A's peer as its SDP says (and as it really sends from, unless a test says otherwise).
pub const A_SDP: &str = "198.51.100.10:4000";
/// Leg B's peer as its SDP says.
pub const B_SDP: &str = "203.0.113.20:6000";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// Virtual time: one real instant, then offsets from it.
#[derive(Debug, Clone, Copy)]
pub struct Clock(pub Instant);

impl Clock {
    #[allow(clippy::disallowed_methods)] // the one real instant the virtual clock starts from
    pub fn new() -> Self {
        Self(Instant::now())
    }

    pub fn ms(&self, ms: u64) -> Instant {
        self.0 + Duration::from_millis(ms)
    }

    pub fn s(&self, s: u64) -> Instant {
        self.0 + Duration::from_secs(s)
    }
}

/// A 12-byte-header RTP packet with `payload_len` bytes of 0xd5 (G.711 A-law silence).
pub fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload_len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload_len);
    p.extend_from_slice(&[0x80, pt, 0, 0]);
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.resize(12 + payload_len, 0xd5);
    p
}

/// (ssrc, seq, ts, pt) of an RTP packet.
pub fn fields(p: &[u8]) -> (u32, u16, u32, u8) {
    (
        u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        u16::from_be_bytes([p[2], p[3]]),
        u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        p[1] & 0x7f,
    )
}

/// One RTCP report block.
pub struct Block {
    pub ssrc: u32,
    pub lsr: u32,
    pub dlsr: u32,
}

/// An SR (with `ntp`, `rtp_ts`) or, with `ntp == None`, an RR, from `ssrc` with `blocks`.
pub fn report(ssrc: u32, sr: Option<(u64, u32)>, blocks: &[Block]) -> Vec<u8> {
    let mut p = vec![
        0x80 | blocks.len() as u8,
        if sr.is_some() { 200 } else { 201 },
        0,
        0,
    ];
    p.extend_from_slice(&ssrc.to_be_bytes());
    if let Some((ntp, ts)) = sr {
        p.extend_from_slice(&ntp.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
    }
    for b in blocks {
        p.extend_from_slice(&b.ssrc.to_be_bytes());
        p.extend_from_slice(&[0; 12]);
        p.extend_from_slice(&b.lsr.to_be_bytes());
        p.extend_from_slice(&b.dlsr.to_be_bytes());
    }
    let words = (p.len() / 4 - 1) as u16;
    p[2..4].copy_from_slice(&words.to_be_bytes());
    p
}

/// Appends an SDES part with one chunk (CNAME "x") for `ssrc`.
pub fn with_sdes(mut p: Vec<u8>, ssrc: u32) -> Vec<u8> {
    p.extend_from_slice(&[0x81, 202, 0, 3]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[1, 1, b'x', 0, 0, 0, 0, 0]);
    p
}

/// The G.711 payload map both legs use: PCMU 0, PCMA 8, telephone-event 101.
pub fn g711_map() -> PayloadMap {
    let mut m = PayloadMap::new();
    m.map(0, 0, 8000).map(8, 8, 8000).map_events(101, 101, 8000);
    m
}

pub fn leg_configs() -> Vec<LegConfig> {
    let mut a = LegConfig::new(addr("192.0.2.1:20000"), B);
    a.remote_rtp = Some(addr(A_SDP));
    a.payload_map = g711_map();
    let mut b = LegConfig::new(addr("192.0.2.1:20002"), A);
    b.remote_rtp = Some(addr(B_SDP));
    b.payload_map = g711_map();
    vec![a, b]
}

/// A two-leg G.711 session answered at `clock`'s start, with default timing.
pub fn session(clock: Clock) -> Session {
    Session::new(clock.0, SessionConfig::default(), leg_configs()).expect("valid session")
}
