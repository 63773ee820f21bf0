//! Zero-copy RTCP compound packet views (RFC 3550 §6): SR, RR, SDES, BYE and APP, plus the
//! SSRC fields of RTPFB/PSFB feedback (RFC 4585 §6.1) and XR (RFC 3611 §2).
//!
//! Owns: checking a compound packet (every part version 2, every length inside the buffer,
//! every SDES chunk and item inside its part), reading sender info and report blocks, and
//! rewriting SSRC fields and the SR's RTP timestamp in place.
//!
//! Does not own: generating reports, SRTCP, deciding which SSRC maps to which (that is
//! [`crate::session`]), the SSRCs inside XR report blocks (left untouched), or allocation.
//! The compound check is lenient where relays must be (RFC 5506 reduced-size RTCP may start
//! with any packet type, unknown packet types are carried untouched); malformed input is an
//! [`RtcpError`], never a panic.

use thiserror::Error;

use crate::rtp::{read_u32, write_u32};

/// Sender report (RFC 3550 §6.4.1).
pub const PT_SR: u8 = 200;
/// Receiver report (RFC 3550 §6.4.2).
pub const PT_RR: u8 = 201;
/// Source description (RFC 3550 §6.5).
pub const PT_SDES: u8 = 202;
/// Goodbye (RFC 3550 §6.6).
pub const PT_BYE: u8 = 203;
/// Application-defined (RFC 3550 §6.7).
pub const PT_APP: u8 = 204;
/// Transport-layer feedback (RFC 4585 §6.2).
pub const PT_RTPFB: u8 = 205;
/// Payload-specific feedback (RFC 4585 §6.3).
pub const PT_PSFB: u8 = 206;
/// Extended reports (RFC 3611).
pub const PT_XR: u8 = 207;

const REPORT_BLOCK_LEN: usize = 24;
const SENDER_INFO_LEN: usize = 20;

/// Why a datagram is not a valid RTCP compound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RtcpError {
    /// No bytes at all.
    #[error("empty RTCP packet")]
    Empty,
    /// A part's header or announced length runs past the buffer.
    #[error("RTCP part at offset {offset} truncated")]
    Truncated { offset: usize },
    /// A part's version field is not 2.
    #[error("RTCP part at offset {offset} has version {version}")]
    Version { offset: usize, version: u8 },
    /// A padding count of zero or longer than the part.
    #[error("RTCP part at offset {offset} has bad padding")]
    Padding { offset: usize },
    /// A part too short for the counts it announces (report blocks, SDES chunks, BYE SSRCs).
    #[error("RTCP packet type {packet_type} at offset {offset} too short for its content")]
    Content { offset: usize, packet_type: u8 },
}

/// Which role an SSRC field plays, for rewriting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsrcField {
    /// The source that sends this part: SR/RR/APP/RTPFB/PSFB/XR sender, SDES chunk, BYE list.
    Sender,
    /// A source reported about: a report block's SSRC, a feedback message's media source.
    Reportee,
}

/// The sender info of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// 64-bit NTP timestamp.
    pub ntp: u64,
    /// RTP timestamp of the same instant.
    pub rtp_timestamp: u32,
    /// Sender's packet count.
    pub packet_count: u32,
    /// Sender's payload octet count.
    pub octet_count: u32,
}

impl SenderInfo {
    /// The middle 32 bits of the NTP timestamp: what a report block's LSR echoes.
    #[must_use]
    pub fn lsr_key(&self) -> u32 {
        // Truncation is the definition: bits 16..48 of the 64-bit NTP timestamp.
        (self.ntp >> 16) as u32
    }
}

/// One report block of an SR or RR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative number of packets lost (signed 24-bit).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// Last SR timestamp (middle 32 bits of its NTP timestamp), 0 if none.
    pub lsr: u32,
    /// Delay since last SR, in 1/65536 s.
    pub dlsr: u32,
}

impl ReportBlock {
    fn parse(b: &[u8]) -> Self {
        let lost = read_u32(b, 4) & 0x00ff_ffff;
        // Sign-extend the 24-bit field.
        let cumulative_lost = ((lost << 8) as i32) >> 8;
        Self {
            ssrc: read_u32(b, 0),
            fraction_lost: b[4],
            cumulative_lost,
            highest_seq: read_u32(b, 8),
            jitter: read_u32(b, 12),
            lsr: read_u32(b, 16),
            dlsr: read_u32(b, 20),
        }
    }
}

/// A checked RTCP compound packet in a buffer the caller owns.
#[derive(Debug)]
pub struct RtcpCompound<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> RtcpCompound<T> {
    /// Checks every part of `buf`; see the module doc for what is checked.
    pub fn new_checked(buf: T) -> Result<Self, RtcpError> {
        let b = buf.as_ref();
        if b.is_empty() {
            return Err(RtcpError::Empty);
        }
        let mut offset = 0;
        while offset < b.len() {
            let part = split_part(&b[offset..], offset)?;
            check_content(part, offset)?;
            offset += part.len();
        }
        Ok(Self { buf })
    }

    /// The parts, in order.
    #[must_use]
    pub fn packets(&self) -> Packets<'_> {
        Packets {
            rest: self.buf.as_ref(),
        }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RtcpCompound<T> {
    /// The parts, writable in place.
    pub fn packets_mut(&mut self) -> PacketsMut<'_> {
        PacketsMut {
            rest: self.buf.as_mut(),
        }
    }
}

/// Splits the first part off `b` (whose first byte is at `offset` in the compound).
fn split_part(b: &[u8], offset: usize) -> Result<&[u8], RtcpError> {
    if b.len() < 4 {
        return Err(RtcpError::Truncated { offset });
    }
    let version = b[0] >> 6;
    if version != 2 {
        return Err(RtcpError::Version { offset, version });
    }
    let len = (usize::from(u16::from_be_bytes([b[2], b[3]])) + 1) * 4;
    let part = b.get(..len).ok_or(RtcpError::Truncated { offset })?;
    if part[0] & 0x20 != 0 {
        let padding = usize::from(part[len - 1]);
        if padding == 0 || padding > len - 4 {
            return Err(RtcpError::Padding { offset });
        }
    }
    Ok(part)
}

/// The part without its padding; `part` has passed [`split_part`].
fn content(part: &[u8]) -> &[u8] {
    if part[0] & 0x20 != 0 {
        &part[..part.len() - usize::from(part[part.len() - 1])]
    } else {
        part
    }
}

fn check_content(part: &[u8], offset: usize) -> Result<(), RtcpError> {
    match for_each_ssrc_offset(part, |_, _| ()) {
        Some(_) => Ok(()),
        None => Err(RtcpError::Content {
            offset,
            packet_type: part[1],
        }),
    }
}

/// Calls `f` with the role and byte offset of every SSRC field of one part (passed
/// [`split_part`]), and returns how many content bytes the fixed layout needs, or `None` when
/// a count or SDES chunk does not fit. Every offset given to `f` has 4 bytes in `part`.
fn for_each_ssrc_offset(part: &[u8], mut f: impl FnMut(SsrcField, usize)) -> Option<usize> {
    let c = content(part);
    let count = usize::from(part[0] & 0x1f);
    let fits = |need: usize| (need <= c.len()).then_some(need);
    match part[1] {
        PT_SR | PT_RR => {
            let blocks_at = if part[1] == PT_SR {
                8 + SENDER_INFO_LEN
            } else {
                8
            };
            let need = fits(blocks_at + REPORT_BLOCK_LEN * count)?;
            f(SsrcField::Sender, 4);
            for i in 0..count {
                f(SsrcField::Reportee, blocks_at + REPORT_BLOCK_LEN * i);
            }
            Some(need)
        }
        PT_SDES => {
            let mut at = 4;
            for _ in 0..count {
                fits(at + 4)?;
                f(SsrcField::Sender, at);
                at += 4;
                // Items until a zero type octet, then null padding to the 32-bit boundary.
                loop {
                    let item_type = *c.get(at)?;
                    if item_type == 0 {
                        at = (at + 4) & !3;
                        break;
                    }
                    let item_len = usize::from(*c.get(at + 1)?);
                    at += 2 + item_len;
                }
                fits(at)?;
            }
            Some(at)
        }
        PT_BYE => {
            let need = fits(4 + 4 * count)?;
            for i in 0..count {
                f(SsrcField::Sender, 4 + 4 * i);
            }
            Some(need)
        }
        PT_APP | PT_XR => {
            let need = fits(if part[1] == PT_APP { 12 } else { 8 })?;
            f(SsrcField::Sender, 4);
            Some(need)
        }
        PT_RTPFB | PT_PSFB => {
            let need = fits(12)?;
            f(SsrcField::Sender, 4);
            f(SsrcField::Reportee, 8);
            Some(need)
        }
        _ => Some(4),
    }
}

/// Iterator over the parts of a checked compound.
#[derive(Debug)]
pub struct Packets<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Packets<'a> {
    type Item = RtcpPacket<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        // The compound was checked, so split_part succeeds on every part; an error would
        // only end the iteration.
        let part = split_part(self.rest, 0).ok()?;
        self.rest = &self.rest[part.len()..];
        Some(RtcpPacket { buf: part })
    }
}

/// Iterator over the writable parts of a checked compound.
#[derive(Debug)]
pub struct PacketsMut<'a> {
    rest: &'a mut [u8],
}

impl<'a> Iterator for PacketsMut<'a> {
    type Item = RtcpPacketMut<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let len = split_part(self.rest, 0).ok()?.len();
        let rest = std::mem::take(&mut self.rest);
        let (part, rest) = rest.split_at_mut(len);
        self.rest = rest;
        Some(RtcpPacketMut { buf: part })
    }
}

/// One checked RTCP part.
#[derive(Debug, Clone, Copy)]
pub struct RtcpPacket<'a> {
    buf: &'a [u8],
}

/// One checked RTCP part, writable in place.
#[derive(Debug)]
pub struct RtcpPacketMut<'a> {
    buf: &'a mut [u8],
}

/// Read accessors shared by both views.
macro_rules! read_accessors {
    () => {
        /// The packet type (200 = SR, 201 = RR, ...).
        #[must_use]
        pub fn packet_type(&self) -> u8 {
            self.buf[1]
        }

        /// The 5-bit count field (report blocks, SDES chunks, BYE sources, or FMT).
        #[must_use]
        pub fn count(&self) -> u8 {
            self.buf[0] & 0x1f
        }

        /// Length of this part in bytes, padding included.
        #[must_use]
        pub fn len(&self) -> usize {
            self.buf.len()
        }

        /// Always false: a part has at least its 4-byte header.
        #[must_use]
        pub fn is_empty(&self) -> bool {
            self.buf.is_empty()
        }

        /// The sending source of SR, RR, APP, RTPFB, PSFB and XR parts.
        #[must_use]
        pub fn sender_ssrc(&self) -> Option<u32> {
            matches!(
                self.buf[1],
                PT_SR | PT_RR | PT_APP | PT_RTPFB | PT_PSFB | PT_XR
            )
            .then(|| read_u32(self.buf, 4))
        }

        /// The sender info of an SR.
        #[must_use]
        pub fn sender_info(&self) -> Option<SenderInfo> {
            (self.buf[1] == PT_SR).then(|| SenderInfo {
                ntp: (u64::from(read_u32(self.buf, 8)) << 32) | u64::from(read_u32(self.buf, 12)),
                rtp_timestamp: read_u32(self.buf, 16),
                packet_count: read_u32(self.buf, 20),
                octet_count: read_u32(self.buf, 24),
            })
        }

        /// The report blocks of an SR or RR (none for other types).
        pub fn report_blocks(&self) -> impl Iterator<Item = ReportBlock> + '_ {
            let (at, n) = match self.buf[1] {
                PT_SR => (8 + SENDER_INFO_LEN, usize::from(self.count())),
                PT_RR => (8, usize::from(self.count())),
                _ => (0, 0),
            };
            (0..n).map(move |i| {
                let o = at + REPORT_BLOCK_LEN * i;
                ReportBlock::parse(&self.buf[o..o + REPORT_BLOCK_LEN])
            })
        }

        /// Every SSRC field of this part with its role, in wire order.
        pub fn ssrcs(&self, mut f: impl FnMut(SsrcField, u32)) {
            let b = &*self.buf;
            // The part was checked, so the walk succeeds.
            let _ = for_each_ssrc_offset(b, |role, at| f(role, read_u32(b, at)));
        }
    };
}

impl RtcpPacket<'_> {
    read_accessors!();

    /// The raw bytes of this part.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.buf
    }
}

impl RtcpPacketMut<'_> {
    read_accessors!();

    /// Replaces every SSRC field with `f(role, old)`, in place.
    pub fn rewrite_ssrcs(&mut self, mut f: impl FnMut(SsrcField, u32) -> u32) {
        // Offsets are collected and applied in one pass: the walk only reads type and
        // length octets, never SSRC fields, so writing SSRCs cannot change it. The walk
        // borrows the buffer immutably, hence the index-based second borrow below.
        let len = self.buf.len();
        let mut at_list = OffsetSink::default();
        let _ = for_each_ssrc_offset(self.buf, |role, at| at_list.push(role, at));
        for (role, at) in at_list.iter() {
            if at + 4 <= len {
                let old = read_u32(self.buf, at);
                write_u32(self.buf, at, f(role, old));
            }
        }
        // The count field has 5 bits, so a part has at most 32 SSRC fields.
        debug_assert!(!at_list.overflowed);
    }

    /// Sets the sender SSRC of SR, RR, APP, RTPFB, PSFB and XR parts (no-op otherwise).
    pub fn set_sender_ssrc(&mut self, ssrc: u32) {
        if self.sender_ssrc().is_some() {
            write_u32(self.buf, 4, ssrc);
        }
    }

    /// Sets the RTP timestamp of an SR's sender info (no-op otherwise).
    pub fn set_sr_rtp_timestamp(&mut self, ts: u32) {
        if self.buf[1] == PT_SR {
            write_u32(self.buf, 16, ts);
        }
    }
}

/// A fixed-size list of SSRC field offsets: at most 1 sender + 31 report blocks or 31 SDES
/// chunks or 31 BYE sources (the count field has 5 bits), so 32 entries always suffice.
#[derive(Debug)]
struct OffsetSink {
    items: [(SsrcField, u16); 32],
    len: usize,
    overflowed: bool,
}

impl Default for OffsetSink {
    fn default() -> Self {
        Self {
            items: [(SsrcField::Sender, 0); 32],
            len: 0,
            overflowed: false,
        }
    }
}

impl OffsetSink {
    fn push(&mut self, role: SsrcField, at: usize) {
        match (self.items.get_mut(self.len), u16::try_from(at)) {
            (Some(slot), Ok(at)) => {
                *slot = (role, at);
                self.len += 1;
            }
            _ => self.overflowed = true,
        }
    }

    fn iter(&self) -> impl Iterator<Item = (SsrcField, usize)> + '_ {
        self.items[..self.len]
            .iter()
            .map(|&(role, at)| (role, usize::from(at)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SR from 0x11 with one report block about 0x22 (LSR 0xaabbccdd, DLSR 0x10000),
    /// then SDES with one chunk (CNAME "ab"), then BYE for 0x11.
    pub(crate) fn compound() -> Vec<u8> {
        let mut p = vec![0x81, PT_SR, 0, 12];
        p.extend_from_slice(&0x11u32.to_be_bytes());
        p.extend_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        p.extend_from_slice(&1000u32.to_be_bytes());
        p.extend_from_slice(&5u32.to_be_bytes());
        p.extend_from_slice(&800u32.to_be_bytes());
        p.extend_from_slice(&0x22u32.to_be_bytes());
        p.extend_from_slice(&[3, 0xff, 0xff, 0xfe]); // fraction 3, cumulative -2
        p.extend_from_slice(&70000u32.to_be_bytes());
        p.extend_from_slice(&9u32.to_be_bytes());
        p.extend_from_slice(&0xaabb_ccddu32.to_be_bytes());
        p.extend_from_slice(&0x1_0000u32.to_be_bytes());
        // SDES: header, SSRC, CNAME item (1, 2, 'a', 'b'), end + pad (4 bytes) = 3 words.
        p.extend_from_slice(&[0x81, PT_SDES, 0, 3]);
        p.extend_from_slice(&0x11u32.to_be_bytes());
        p.extend_from_slice(&[1, 2, b'a', b'b', 0, 0, 0, 0]);
        p.extend_from_slice(&[0x81, PT_BYE, 0, 1]);
        p.extend_from_slice(&0x11u32.to_be_bytes());
        p
    }

    #[test]
    fn reads_a_compound() {
        let buf = compound();
        let c = RtcpCompound::new_checked(&buf[..]).expect("valid");
        let parts: Vec<_> = c.packets().collect();
        assert_eq!(parts.len(), 3);
        let sr = parts[0];
        assert_eq!(sr.sender_ssrc(), Some(0x11));
        let info = sr.sender_info().expect("SR");
        assert_eq!(info.rtp_timestamp, 1000);
        assert_eq!(info.lsr_key(), 0x0304_0506);
        let rb: Vec<_> = sr.report_blocks().collect();
        assert_eq!(rb[0].ssrc, 0x22);
        assert_eq!(rb[0].fraction_lost, 3);
        assert_eq!(rb[0].cumulative_lost, -2);
        assert_eq!(rb[0].highest_seq, 70000);
        assert_eq!((rb[0].lsr, rb[0].dlsr), (0xaabb_ccdd, 0x1_0000));
        let mut seen = Vec::new();
        for p in &parts {
            p.ssrcs(|role, s| seen.push((p.packet_type(), role, s)));
        }
        assert_eq!(
            seen,
            vec![
                (PT_SR, SsrcField::Sender, 0x11),
                (PT_SR, SsrcField::Reportee, 0x22),
                (PT_SDES, SsrcField::Sender, 0x11),
                (PT_BYE, SsrcField::Sender, 0x11),
            ]
        );
    }

    #[test]
    fn rewrites_in_place() {
        let mut buf = compound();
        let mut c = RtcpCompound::new_checked(&mut buf[..]).expect("valid");
        for mut p in c.packets_mut() {
            p.rewrite_ssrcs(|role, s| match role {
                SsrcField::Sender => s + 0x100,
                SsrcField::Reportee => s + 0x200,
            });
            p.set_sr_rtp_timestamp(7);
        }
        let c = RtcpCompound::new_checked(&buf[..]).expect("still valid");
        let mut seen = Vec::new();
        for p in c.packets() {
            p.ssrcs(|_, s| seen.push(s));
        }
        assert_eq!(seen, vec![0x111, 0x222, 0x111, 0x111]);
        let sr = c.packets().next().expect("SR");
        assert_eq!(sr.sender_info().map(|i| i.rtp_timestamp), Some(7));
    }

    #[test]
    fn rejects_malformed() {
        let good = compound();
        assert_eq!(
            RtcpCompound::new_checked(&[][..]).map(|_| ()),
            Err(RtcpError::Empty)
        );
        // Truncated anywhere.
        for cut in 1..good.len() {
            if cut == 52 || cut == 68 {
                continue; // part boundaries: a shorter compound is still valid
            }
            assert!(
                RtcpCompound::new_checked(&good[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        // Report count larger than the SR.
        let mut bad = good.clone();
        bad[0] = 0x82;
        assert!(matches!(
            RtcpCompound::new_checked(&bad[..]),
            Err(RtcpError::Content { .. })
        ));
        // SDES item running past its part.
        let mut bad = good.clone();
        bad[52 + 9] = 40;
        assert!(RtcpCompound::new_checked(&bad[..]).is_err());
        // Version 1.
        let mut bad = good;
        bad[52] = 0x41;
        assert!(matches!(
            RtcpCompound::new_checked(&bad[..]),
            Err(RtcpError::Version { offset: 52, .. })
        ));
    }
}
