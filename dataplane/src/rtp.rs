//! Zero-copy RTP packet view (RFC 3550 §5.1) and the first-byte demultiplexer for one UDP
//! port (RFC 5761 §4 for RTP vs RTCP, RFC 7983 for STUN and DTLS).
//!
//! Owns: checking that a datagram is a well-formed RTP packet (version 2, CSRC list,
//! header extension and padding all inside the buffer), reading its header fields and
//! rewriting SSRC, sequence number, timestamp, marker and payload type in place.
//!
//! Does not own: RTCP (see [`crate::rtcp`]), SRTP, deciding what to rewrite (that is
//! [`crate::session`]), or any allocation: a view borrows the caller's buffer and never copies.
//! Malformed input is an [`RtpError`], never a panic.

use thiserror::Error;

/// Length of the fixed RTP header (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;

/// Why a datagram is not a valid RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Shorter than the fixed header, the CSRC list or the extension it announces.
    #[error("RTP packet truncated: {len} bytes, header needs {needed}")]
    Truncated { len: usize, needed: usize },
    /// The version field is not 2.
    #[error("RTP version {0}, expected 2")]
    Version(u8),
    /// The padding count is zero or longer than the space after the header.
    #[error(
        "RTP padding of {padding} bytes does not fit after a {header}-byte header in {len} bytes"
    )]
    Padding {
        padding: usize,
        header: usize,
        len: usize,
    },
}

/// What a datagram received on a media port is, from its first two bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// RTP (first byte 128–191, second byte's payload type outside 64–95).
    Rtp,
    /// RTCP (first byte 128–191, RTCP packet type 192–223: RFC 5761 §4).
    Rtcp,
    /// A STUN message (first byte 0–3, RFC 7983).
    Stun,
    /// A DTLS record (first byte 20–63, RFC 7983).
    Dtls,
    /// Anything else (empty, one byte, or a first byte no media protocol uses).
    Unknown,
}

/// Classifies a datagram by its first bytes, as RFC 7983 and RFC 5761 §4 do on a port that
/// carries several protocols. RTP payload types 64–95 are reserved by RFC 5761 so that this
/// test is unambiguous; a packet in that range is taken as RTCP.
#[must_use]
pub fn classify(buf: &[u8]) -> PacketKind {
    let Some(&first) = buf.first() else {
        return PacketKind::Unknown;
    };
    match first {
        0..=3 => PacketKind::Stun,
        20..=63 => PacketKind::Dtls,
        128..=191 => match buf.get(1) {
            Some(second) if (64..=95).contains(&(second & 0x7f)) => PacketKind::Rtcp,
            Some(_) => PacketKind::Rtp,
            None => PacketKind::Unknown,
        },
        _ => PacketKind::Unknown,
    }
}

/// A checked view over one RTP packet in a buffer the caller owns.
///
/// `T` is `&[u8]` for reading or `&mut [u8]` for in-place rewriting. Construction with
/// [`RtpPacket::new_checked`] validates every length, so the accessors cannot go out of bounds.
#[derive(Debug)]
pub struct RtpPacket<T> {
    buf: T,
    /// Fixed header + CSRC list + extension.
    header_len: usize,
    /// Where the padding starts (= buffer length without padding).
    payload_end: usize,
}

impl<T: AsRef<[u8]>> RtpPacket<T> {
    /// Checks `buf` as an RTP packet (RFC 3550 §5.1 and the length checks of §A.1).
    pub fn new_checked(buf: T) -> Result<Self, RtpError> {
        let b = buf.as_ref();
        let len = b.len();
        if len < RTP_HEADER_LEN {
            return Err(RtpError::Truncated {
                len,
                needed: RTP_HEADER_LEN,
            });
        }
        let version = b[0] >> 6;
        if version != 2 {
            return Err(RtpError::Version(version));
        }
        let csrc_count = usize::from(b[0] & 0x0f);
        let mut header_len = RTP_HEADER_LEN + 4 * csrc_count;
        if b[0] & 0x10 != 0 {
            // Extension header: 16-bit profile, 16-bit length in 32-bit words (§5.3.1).
            let ext_len_at = header_len + 2;
            let words = match b.get(ext_len_at..ext_len_at + 2) {
                Some(w) => usize::from(u16::from_be_bytes([w[0], w[1]])),
                None => {
                    return Err(RtpError::Truncated {
                        len,
                        needed: header_len + 4,
                    })
                }
            };
            header_len += 4 + 4 * words;
        }
        if len < header_len {
            return Err(RtpError::Truncated {
                len,
                needed: header_len,
            });
        }
        let mut payload_end = len;
        if b[0] & 0x20 != 0 {
            // The last octet counts the padding, itself included (§5.1).
            let padding = usize::from(b[len - 1]);
            if padding == 0 || header_len + padding > len {
                return Err(RtpError::Padding {
                    padding,
                    header: header_len,
                    len,
                });
            }
            payload_end = len - padding;
        }
        Ok(Self {
            buf,
            header_len,
            payload_end,
        })
    }

    fn bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// Always 2 for a checked packet.
    #[must_use]
    pub fn version(&self) -> u8 {
        self.bytes()[0] >> 6
    }

    /// The P bit.
    #[must_use]
    pub fn has_padding(&self) -> bool {
        self.bytes()[0] & 0x20 != 0
    }

    /// The X bit.
    #[must_use]
    pub fn has_extension(&self) -> bool {
        self.bytes()[0] & 0x10 != 0
    }

    /// The CC field: number of CSRC identifiers.
    #[must_use]
    pub fn csrc_count(&self) -> u8 {
        self.bytes()[0] & 0x0f
    }

    /// The M bit.
    #[must_use]
    pub fn marker(&self) -> bool {
        self.bytes()[1] & 0x80 != 0
    }

    /// The 7-bit payload type.
    #[must_use]
    pub fn payload_type(&self) -> u8 {
        self.bytes()[1] & 0x7f
    }

    /// The 16-bit sequence number.
    #[must_use]
    pub fn sequence_number(&self) -> u16 {
        let b = self.bytes();
        u16::from_be_bytes([b[2], b[3]])
    }

    /// The 32-bit media timestamp.
    #[must_use]
    pub fn timestamp(&self) -> u32 {
        read_u32(self.bytes(), 4)
    }

    /// The synchronisation source.
    #[must_use]
    pub fn ssrc(&self) -> u32 {
        read_u32(self.bytes(), 8)
    }

    /// The contributing sources, in order.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + '_ {
        let b = self.bytes();
        (0..usize::from(self.csrc_count())).map(move |i| read_u32(b, RTP_HEADER_LEN + 4 * i))
    }

    /// The header extension: profile-defined 16 bits and the extension data.
    #[must_use]
    pub fn extension(&self) -> Option<(u16, &[u8])> {
        if !self.has_extension() {
            return None;
        }
        let at = RTP_HEADER_LEN + 4 * usize::from(self.csrc_count());
        let b = self.bytes();
        let profile = u16::from_be_bytes([b[at], b[at + 1]]);
        Some((profile, &b[at + 4..self.header_len]))
    }

    /// Header length: fixed header, CSRC list and extension.
    #[must_use]
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The payload, without header and padding.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.bytes()[self.header_len..self.payload_end]
    }

    /// Number of padding octets (0 when the P bit is clear).
    #[must_use]
    pub fn padding_len(&self) -> usize {
        self.bytes().len() - self.payload_end
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RtpPacket<T> {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }

    /// Sets the M bit.
    pub fn set_marker(&mut self, marker: bool) {
        let b = self.bytes_mut();
        b[1] = (b[1] & 0x7f) | if marker { 0x80 } else { 0 };
    }

    /// Sets the payload type (the low 7 bits of `pt`; the marker bit is kept).
    pub fn set_payload_type(&mut self, pt: u8) {
        let b = self.bytes_mut();
        b[1] = (b[1] & 0x80) | (pt & 0x7f);
    }

    /// Sets the sequence number.
    pub fn set_sequence_number(&mut self, seq: u16) {
        self.bytes_mut()[2..4].copy_from_slice(&seq.to_be_bytes());
    }

    /// Sets the timestamp.
    pub fn set_timestamp(&mut self, ts: u32) {
        self.bytes_mut()[4..8].copy_from_slice(&ts.to_be_bytes());
    }

    /// Sets the SSRC.
    pub fn set_ssrc(&mut self, ssrc: u32) {
        self.bytes_mut()[8..12].copy_from_slice(&ssrc.to_be_bytes());
    }

    /// The payload, writable in place.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len, self.payload_end);
        &mut self.bytes_mut()[start..end]
    }
}

/// Big-endian u32 at `at`; callers have checked `at + 4 <= b.len()`.
pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Writes a big-endian u32 at `at`; callers have checked `at + 4 <= b.len()`.
pub(crate) fn write_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(first: u8, extra: &[u8]) -> Vec<u8> {
        let mut p = vec![
            first,
            0x80 | 8,
            0x12,
            0x34,
            0,
            0,
            0x01,
            0x40,
            0xde,
            0xad,
            0xbe,
            0xef,
        ];
        p.extend_from_slice(extra);
        p
    }

    #[test]
    fn fields_and_setters() {
        let mut buf = packet(0x80, &[1, 2, 3]);
        let mut p = RtpPacket::new_checked(&mut buf[..]).expect("valid");
        assert_eq!(p.version(), 2);
        assert!(p.marker());
        assert_eq!(p.payload_type(), 8);
        assert_eq!(p.sequence_number(), 0x1234);
        assert_eq!(p.timestamp(), 320);
        assert_eq!(p.ssrc(), 0xdead_beef);
        assert_eq!(p.payload(), &[1, 2, 3]);
        p.set_payload_type(0);
        p.set_sequence_number(7);
        p.set_timestamp(9);
        p.set_ssrc(42);
        assert!(p.marker(), "PT setter keeps the marker");
        assert_eq!(
            (
                p.payload_type(),
                p.sequence_number(),
                p.timestamp(),
                p.ssrc()
            ),
            (0, 7, 9, 42)
        );
        p.set_marker(false);
        assert_eq!(buf[1], 0);
    }

    #[test]
    fn csrc_extension_padding() {
        // CC=1, X=1, P=1: one CSRC, a one-word extension, 3 payload bytes, 2 padding bytes.
        let mut extra = vec![0, 0, 0, 5, 0xbe, 0xde, 0, 1, 9, 9, 9, 9];
        extra.extend_from_slice(&[7, 7, 7, 0, 2]);
        let buf = packet(0x80 | 0x20 | 0x10 | 1, &extra);
        let p = RtpPacket::new_checked(&buf[..]).expect("valid");
        assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![5]);
        assert_eq!(p.extension(), Some((0xbede, &[9u8, 9, 9, 9][..])));
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.payload(), &[7, 7, 7]);
        assert_eq!(p.padding_len(), 2);
    }

    #[test]
    fn malformed() {
        assert!(matches!(
            RtpPacket::new_checked(&[0x80u8; 11][..]),
            Err(RtpError::Truncated { .. })
        ));
        assert_eq!(
            RtpPacket::new_checked(&packet(0x40, &[])[..]).map(|_| ()),
            Err(RtpError::Version(1))
        );
        // CC = 2 but no CSRCs.
        assert!(RtpPacket::new_checked(&packet(0x82, &[])[..]).is_err());
        // Extension announced, absent.
        assert!(RtpPacket::new_checked(&packet(0x90, &[])[..]).is_err());
        // Padding count 0, and longer than the packet.
        assert!(RtpPacket::new_checked(&packet(0xa0, &[0])[..]).is_err());
        assert!(RtpPacket::new_checked(&packet(0xa0, &[1, 200])[..]).is_err());
    }

    #[test]
    fn demux() {
        assert_eq!(classify(&[0x80, 0]), PacketKind::Rtp);
        assert_eq!(classify(&[0x80, 0x80 | 96]), PacketKind::Rtp);
        assert_eq!(classify(&[0x80, 200]), PacketKind::Rtcp);
        assert_eq!(classify(&[0x81, 201]), PacketKind::Rtcp);
        assert_eq!(classify(&[0x80, 64]), PacketKind::Rtcp);
        assert_eq!(classify(&[0x80, 95 + 128]), PacketKind::Rtcp);
        assert_eq!(classify(&[0x80, 96 + 128]), PacketKind::Rtp);
        assert_eq!(classify(&[0, 1]), PacketKind::Stun);
        assert_eq!(classify(&[22, 254]), PacketKind::Dtls);
        assert_eq!(classify(&[0x80]), PacketKind::Unknown);
        assert_eq!(classify(&[]), PacketKind::Unknown);
        assert_eq!(classify(&[0xff, 0]), PacketKind::Unknown);
    }
}
