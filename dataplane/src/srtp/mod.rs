//! SRTP and SRTCP packet protection (RFC 3711) for SDES-keyed legs (RFC 4568), with the
//! AES-CM/HMAC-SHA1 suites and AEAD AES-128-GCM (RFC 7714).
//!
//! Owns: session-key derivation from a master key (RFC 3711 §4.3, key derivation rate 0),
//! per-SSRC rollover counters and packet-index estimation (§3.3.1), SRTCP indices and the E
//! flag (§3.4), replay protection with a 128-packet sliding window (§3.3.2), and in-place
//! `protect`/`unprotect` of RTP and RTCP in the caller's buffer without allocating.
//!
//! Does not own: the cryptographic primitives (RustCrypto `aes`, `ctr`, `hmac`, `sha1`,
//! `aes-gcm`, `subtle`), SDP, DTLS-SRTP keying, MKIs, key lifetimes and re-keying, or deciding
//! what to do with a refused packet (the session counts it as an SRTP drop).
//!
//! # Trust order
//! `unprotect` checks, before anything in the packet is believed: the header is long enough,
//! the estimated index is not a replay, and the tag verifies (in constant time). Only then are
//! the rollover counter and replay window advanced and the payload decrypted, so a tampered or
//! replayed packet changes no state and must not latch a source. On an `Err` the buffer's
//! contents are unspecified: the caller drops the packet.
//!
//! # Contexts
//! One [`SrtpContext`] per direction of a leg: the outbound one only `protect`s, the inbound
//! one only `unprotect`s. Each tracks up to [`MAX_SSRCS`] SSRCs in fixed-size state.

mod sdes;

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use aes::Aes128;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use thiserror::Error;

pub use sdes::{SdesKey, SdesKeyError, SrtpProfile};

/// How many SSRCs one context tracks (fixed-size state, no allocation per packet).
pub const MAX_SSRCS: usize = 16;

/// Width of the replay window in packets (RFC 3711 §3.3.2 asks for at least 64).
pub const REPLAY_WINDOW: u64 = 128;

type HmacSha1 = Hmac<Sha1>;
type Aes128Ctr = ctr::Ctr128BE<Aes128>;

/// A CTR keystream over an already expanded AES key (a copy of the round keys, no allocation).
fn new_ctr(cipher: &Aes128, iv: &[u8; 16]) -> Aes128Ctr {
    Aes128Ctr::from_core(ctr::CtrCore::inner_iv_init(cipher.clone(), iv.into()))
}

/// Why a packet could not be protected or unprotected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SrtpError {
    /// The packet is shorter than its header plus the SRTP/SRTCP trailer.
    #[error("SRTP packet truncated: {len} bytes, needs {needed}")]
    Truncated { len: usize, needed: usize },
    /// Not RTP/RTCP version 2.
    #[error("not an RTP/RTCP version 2 packet")]
    Version,
    /// The buffer has no room for the tag (and SRTCP index) after `len` bytes.
    #[error("no tailroom: {len} bytes in a {capacity}-byte buffer, {needed} more needed")]
    NoTailroom {
        len: usize,
        capacity: usize,
        needed: usize,
    },
    /// The authentication tag does not verify (tampered, wrong key, or wrong suite).
    #[error("SRTP authentication failed")]
    AuthFailed,
    /// The packet index was already received or is older than the replay window.
    #[error("SRTP replay of index {index}")]
    Replayed { index: u64 },
    /// The context already tracks [`MAX_SSRCS`] SSRCs.
    #[error("more than {MAX_SSRCS} SSRCs in one SRTP context")]
    TooManySsrcs,
    /// The 48-bit SRTP or 31-bit SRTCP index space of this SSRC is used up: re-key.
    #[error("SRTP index space exhausted: the key must be replaced")]
    IndexExhausted,
}

/// Session keys for one of RTP or RTCP (RFC 3711 §4.3.1 labels 0-2 or 3-5).
#[derive(Clone)]
enum Keys {
    Cm {
        cipher: Aes128,
        salt: [u8; 14],
        auth: HmacSha1,
        tag_len: usize,
    },
    Gcm {
        aead: Aes128Gcm,
        salt: [u8; 12],
    },
}

impl Keys {
    fn derive(key: &SdesKey, rtcp: bool) -> Self {
        let (enc_label, auth_label, salt_label) = if rtcp { (3, 4, 5) } else { (0, 1, 2) };
        let prf = Aes128::new(key.master_key().into());
        let salt = key.master_salt();
        let mut enc = [0u8; 16];
        kdf(&prf, salt, enc_label, &mut enc);
        match key.profile() {
            SrtpProfile::AeadAes128Gcm => {
                let mut s = [0u8; 12];
                kdf(&prf, salt, salt_label, &mut s);
                Keys::Gcm {
                    aead: Aes128Gcm::new(&enc.into()),
                    salt: s,
                }
            }
            profile => {
                let mut a = [0u8; 20];
                kdf(&prf, salt, auth_label, &mut a);
                let mut s = [0u8; 14];
                kdf(&prf, salt, salt_label, &mut s);
                let tag_len = if rtcp {
                    profile.rtcp_overhead() - 4
                } else {
                    profile.rtp_overhead()
                };
                Keys::Cm {
                    cipher: Aes128::new(&enc.into()),
                    salt: s,
                    auth: <HmacSha1 as Mac>::new_from_slice(&a)
                        .expect("HMAC accepts keys of any length"),
                    tag_len,
                }
            }
        }
    }
}

/// The AES-CM PRF of RFC 3711 §4.3.3 with key derivation rate 0: `x = label << 48 XOR salt`,
/// keystream from IV `x * 2^16`.
fn kdf(prf: &Aes128, master_salt: &[u8; 14], label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(master_salt);
    iv[7] ^= label;
    out.fill(0);
    new_ctr(prf, &iv).apply_keystream(out);
}

/// AES-CM encryption (RFC 3711 §4.1.1): IV = salt·2^16 ⊕ SSRC·2^64 ⊕ index·2^16.
fn aes_cm(cipher: &Aes128, salt: &[u8; 14], ssrc: u32, index: u64, data: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (d, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *d ^= s;
    }
    for (d, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *d ^= s;
    }
    new_ctr(cipher, &iv).apply_keystream(data);
}

/// HMAC-SHA1 over `parts`, truncated into `tag`.
fn hmac_tag(auth: &HmacSha1, parts: &[&[u8]], tag: &mut [u8]) {
    let mut mac = auth.clone();
    for p in parts {
        mac.update(p);
    }
    let full = mac.finalize().into_bytes();
    tag.copy_from_slice(&full[..tag.len()]);
}

/// A sliding replay window over 48-bit (SRTP) or 31-bit (SRTCP) indices.
#[derive(Debug, Clone, Copy, Default)]
struct ReplayWindow {
    /// Highest index accepted so far.
    top: u64,
    /// Bit `n` set: index `top - n` was accepted.
    seen: u128,
}

impl ReplayWindow {
    fn check(&self, index: u64) -> Result<(), SrtpError> {
        if index > self.top {
            return Ok(());
        }
        let age = self.top - index;
        if age >= REPLAY_WINDOW || self.seen & (1u128 << age) != 0 {
            return Err(SrtpError::Replayed { index });
        }
        Ok(())
    }

    fn commit(&mut self, index: u64) {
        if index > self.top {
            let shift = index - self.top;
            self.seen = if shift >= REPLAY_WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.top = index;
        } else {
            self.seen |= 1u128 << (self.top - index);
        }
    }
}

/// Per-SSRC state (both directions use the same shape; a context uses one half).
#[derive(Debug, Clone, Copy)]
struct Stream {
    ssrc: u32,
    /// RTP: rollover counter and highest sequence number (`s_l`), once a packet was seen.
    roc: u32,
    s_l: u16,
    rtp_seen: bool,
    rtp_replay: ReplayWindow,
    /// SRTCP: the last index sent (outbound) / the replay window (inbound).
    rtcp_index: u32,
    rtcp_seen: bool,
    rtcp_replay: ReplayWindow,
}

impl Stream {
    fn new(ssrc: u32) -> Self {
        Self {
            ssrc,
            roc: 0,
            s_l: 0,
            rtp_seen: false,
            rtp_replay: ReplayWindow::default(),
            rtcp_index: 0,
            rtcp_seen: false,
            rtcp_replay: ReplayWindow::default(),
        }
    }

    /// RFC 3711 §3.3.1: the ROC guess `v` for sequence number `seq`, and its packet index.
    fn estimate(&self, seq: u16) -> (u32, u64) {
        if !self.rtp_seen {
            return (self.roc, u64::from(self.roc) << 16 | u64::from(seq));
        }
        let v = if self.s_l < 0x8000 {
            if seq > self.s_l && seq - self.s_l > 0x8000 {
                // Before the first wrap there is no earlier ROC: a forward jump of more
                // than half the sequence space stays in ROC 0 (as the sender counts it).
                self.roc.saturating_sub(1)
            } else {
                self.roc
            }
        } else if self.s_l - 0x8000 > seq {
            self.roc.wrapping_add(1)
        } else {
            self.roc
        };
        (v, u64::from(v) << 16 | u64::from(seq))
    }

    /// Accepts `seq` with ROC guess `v` (after authentication on the inbound side).
    fn update(&mut self, v: u32, seq: u16) {
        if !self.rtp_seen || v == self.roc.wrapping_add(1) {
            self.roc = v;
            self.s_l = seq;
        } else if v == self.roc && seq > self.s_l {
            self.s_l = seq;
        }
        self.rtp_seen = true;
    }
}

/// Fixed-capacity SSRC table.
#[derive(Debug, Clone)]
struct Streams {
    slots: [Option<Stream>; MAX_SSRCS],
}

impl Streams {
    /// The state of `ssrc`, or a fresh one (not yet stored) and the slot it would take.
    fn lookup(&self, ssrc: u32) -> Result<(usize, Stream), SrtpError> {
        let mut free = None;
        for (i, slot) in self.slots.iter().enumerate() {
            match slot {
                Some(s) if s.ssrc == ssrc => return Ok((i, *s)),
                None if free.is_none() => free = Some(i),
                _ => {}
            }
        }
        free.map(|i| (i, Stream::new(ssrc)))
            .ok_or(SrtpError::TooManySsrcs)
    }
}

/// SRTP/SRTCP state for one direction of one leg: session keys and per-SSRC counters.
#[derive(Clone)]
pub struct SrtpContext {
    profile: SrtpProfile,
    rtp: Keys,
    rtcp: Keys,
    streams: Streams,
}

impl std::fmt::Debug for SrtpContext {
    // Keys never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

/// Length of an RTP header with its CSRC list and extension, checked against `len`.
fn rtp_header_len(buf: &[u8], len: usize) -> Result<usize, SrtpError> {
    if len < 12 {
        return Err(SrtpError::Truncated { len, needed: 12 });
    }
    if buf[0] >> 6 != 2 {
        return Err(SrtpError::Version);
    }
    let mut h = 12 + 4 * usize::from(buf[0] & 0x0f);
    if buf[0] & 0x10 != 0 {
        if len < h + 4 {
            return Err(SrtpError::Truncated { len, needed: h + 4 });
        }
        h += 4 + 4 * usize::from(u16::from_be_bytes([buf[h + 2], buf[h + 3]]));
    }
    if len < h {
        return Err(SrtpError::Truncated { len, needed: h });
    }
    Ok(h)
}

fn check_tailroom(buf: &[u8], len: usize, needed: usize) -> Result<(), SrtpError> {
    if len > buf.len() || buf.len() - len < needed {
        return Err(SrtpError::NoTailroom {
            len,
            capacity: buf.len(),
            needed,
        });
    }
    Ok(())
}

/// RFC 7714 §8.1 / §9.1 IV: `00 00 || SSRC || (ROC || SEQ | 00 00 || index)` XOR salt.
fn gcm_iv(salt: &[u8; 12], ssrc: u32, hi: u32, lo: u16) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..10].copy_from_slice(&hi.to_be_bytes());
    iv[10..12].copy_from_slice(&lo.to_be_bytes());
    for (d, s) in iv.iter_mut().zip(salt) {
        *d ^= s;
    }
    iv
}

/// The SRTCP IV words: RFC 7714 §9.1 puts 16 zero bits, then the 31-bit index.
fn srtcp_gcm_iv(salt: &[u8; 12], ssrc: u32, index: u32) -> [u8; 12] {
    gcm_iv(salt, ssrc, index >> 16, (index & 0xffff) as u16)
}

impl SrtpContext {
    /// A context for `key`, with session keys derived at once (RFC 3711 §4.3, KDR 0).
    pub fn new(key: &SdesKey) -> Self {
        Self {
            profile: key.profile(),
            rtp: Keys::derive(key, false),
            rtcp: Keys::derive(key, true),
            streams: Streams {
                slots: [None; MAX_SSRCS],
            },
        }
    }

    /// The suite of this context.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// Protects the RTP packet in `buf[..len]` in place and returns the SRTP length
    /// (`len + profile.rtp_overhead()`); `buf` must have that tailroom.
    pub fn protect(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let overhead = self.profile.rtp_overhead();
        check_tailroom(buf, len, overhead)?;
        let h = rtp_header_len(buf, len)?;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let (slot, mut stream) = self.streams.lookup(ssrc)?;
        let (v, index) = stream.estimate(seq);
        if stream.rtp_seen && v == 0 && stream.roc == u32::MAX {
            return Err(SrtpError::IndexExhausted);
        }
        stream.update(v, seq);
        self.streams.slots[slot] = Some(stream);
        match &self.rtp {
            Keys::Cm {
                cipher,
                salt,
                auth,
                tag_len,
            } => {
                aes_cm(cipher, salt, ssrc, index, &mut buf[h..len]);
                let (body, tail) = buf.split_at_mut(len);
                hmac_tag(auth, &[body, &v.to_be_bytes()], &mut tail[..*tag_len]);
            }
            Keys::Gcm { aead, salt } => {
                let iv = gcm_iv(salt, ssrc, v, seq);
                let (header, rest) = buf.split_at_mut(h);
                let tag = aead
                    .encrypt_in_place_detached(Nonce::from_slice(&iv), header, &mut rest[..len - h])
                    .expect("GCM encrypts any RTP-sized payload");
                rest[len - h..len - h + 16].copy_from_slice(&tag);
            }
        }
        Ok(len + overhead)
    }

    /// Checks and decrypts the SRTP packet `buf` in place and returns the RTP length. Nothing
    /// in the context changes unless the packet authenticates and is not a replay.
    pub fn unprotect(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let overhead = self.profile.rtp_overhead();
        let total = buf.len();
        let h = rtp_header_len(buf, total)?;
        if total < h + overhead {
            return Err(SrtpError::Truncated {
                len: total,
                needed: h + overhead,
            });
        }
        let len = total - overhead;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let (slot, mut stream) = self.streams.lookup(ssrc)?;
        let (v, index) = stream.estimate(seq);
        if stream.rtp_seen {
            stream.rtp_replay.check(index)?;
        }
        match &self.rtp {
            Keys::Cm {
                cipher,
                salt,
                auth,
                tag_len,
            } => {
                let mut tag = [0u8; 10];
                let (body, received) = buf.split_at_mut(len);
                hmac_tag(auth, &[body, &v.to_be_bytes()], &mut tag[..*tag_len]);
                if !bool::from(tag[..*tag_len].ct_eq(&received[..*tag_len])) {
                    return Err(SrtpError::AuthFailed);
                }
                aes_cm(cipher, salt, ssrc, index, &mut body[h..]);
            }
            Keys::Gcm { aead, salt } => {
                let iv = gcm_iv(salt, ssrc, v, seq);
                let (header, rest) = buf.split_at_mut(h);
                let (payload, tag) = rest.split_at_mut(len - h);
                aead.decrypt_in_place_detached(
                    Nonce::from_slice(&iv),
                    header,
                    payload,
                    Tag::from_slice(tag),
                )
                .map_err(|_| SrtpError::AuthFailed)?;
            }
        }
        stream.update(v, seq);
        stream.rtp_replay.commit(index);
        self.streams.slots[slot] = Some(stream);
        Ok(len)
    }

    /// Protects the RTCP compound in `buf[..len]` in place (encrypted, E = 1) and returns the
    /// SRTCP length (`len + profile.rtcp_overhead()`); `buf` must have that tailroom.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let overhead = self.profile.rtcp_overhead();
        check_tailroom(buf, len, overhead)?;
        if len < 8 {
            return Err(SrtpError::Truncated { len, needed: 8 });
        }
        if buf[0] >> 6 != 2 {
            return Err(SrtpError::Version);
        }
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let (slot, mut stream) = self.streams.lookup(ssrc)?;
        // libsrtp starts at 1 (it increments before use); the index is 31 bits.
        let index = stream.rtcp_index + 1;
        if index >= 1 << 31 {
            return Err(SrtpError::IndexExhausted);
        }
        stream.rtcp_index = index;
        self.streams.slots[slot] = Some(stream);
        let e_index = (0x8000_0000 | index).to_be_bytes();
        match &self.rtcp {
            Keys::Cm {
                cipher,
                salt,
                auth,
                tag_len,
            } => {
                aes_cm(cipher, salt, ssrc, u64::from(index), &mut buf[8..len]);
                buf[len..len + 4].copy_from_slice(&e_index);
                let (body, tail) = buf.split_at_mut(len + 4);
                hmac_tag(auth, &[body], &mut tail[..*tag_len]);
            }
            Keys::Gcm { aead, salt } => {
                // RFC 7714 §9.2: header || ciphertext || tag || E+index; AAD = header || E+index.
                let iv = srtcp_gcm_iv(salt, ssrc, index);
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(&buf[..8]);
                aad[8..].copy_from_slice(&e_index);
                let tag = aead
                    .encrypt_in_place_detached(Nonce::from_slice(&iv), &aad, &mut buf[8..len])
                    .expect("GCM encrypts any RTCP-sized payload");
                buf[len..len + 16].copy_from_slice(&tag);
                buf[len + 16..len + 20].copy_from_slice(&e_index);
            }
        }
        Ok(len + overhead)
    }

    /// Checks and (if E = 1) decrypts the SRTCP compound `buf` in place and returns the RTCP
    /// length. Nothing in the context changes unless it authenticates and is not a replay.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let overhead = self.profile.rtcp_overhead();
        let total = buf.len();
        if total < 8 + overhead {
            return Err(SrtpError::Truncated {
                len: total,
                needed: 8 + overhead,
            });
        }
        if buf[0] >> 6 != 2 {
            return Err(SrtpError::Version);
        }
        let len = total - overhead;
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let (slot, mut stream) = self.streams.lookup(ssrc)?;
        let e_pos = match self.rtcp {
            Keys::Cm { .. } => len,
            Keys::Gcm { .. } => total - 4,
        };
        let word = u32::from_be_bytes([buf[e_pos], buf[e_pos + 1], buf[e_pos + 2], buf[e_pos + 3]]);
        let encrypted = word & 0x8000_0000 != 0;
        let index = word & 0x7fff_ffff;
        if stream.rtcp_seen {
            stream.rtcp_replay.check(u64::from(index))?;
        }
        match &self.rtcp {
            Keys::Cm {
                cipher,
                salt,
                auth,
                tag_len,
            } => {
                let mut tag = [0u8; 10];
                let (body, received) = buf.split_at_mut(len + 4);
                hmac_tag(auth, &[body], &mut tag[..*tag_len]);
                if !bool::from(tag[..*tag_len].ct_eq(&received[..*tag_len])) {
                    return Err(SrtpError::AuthFailed);
                }
                if encrypted {
                    aes_cm(cipher, salt, ssrc, u64::from(index), &mut body[8..len]);
                }
            }
            Keys::Gcm { aead, salt } => {
                let iv = srtcp_gcm_iv(salt, ssrc, index);
                let e_index = word.to_be_bytes();
                if encrypted {
                    let mut aad = [0u8; 12];
                    aad[..8].copy_from_slice(&buf[..8]);
                    aad[8..].copy_from_slice(&e_index);
                    let (payload, rest) = buf[8..].split_at_mut(len - 8);
                    aead.decrypt_in_place_detached(
                        Nonce::from_slice(&iv),
                        &aad,
                        payload,
                        Tag::from_slice(&rest[..16]),
                    )
                    .map_err(|_| SrtpError::AuthFailed)?;
                } else {
                    // RFC 7714 §9.3: unencrypted SRTCP authenticates the whole compound
                    // (AAD = compound || E+index) over an empty plaintext.
                    let (body, rest) = buf.split_at_mut(len);
                    let tag = Tag::clone_from_slice(&rest[..16]);
                    verify_gcm_aad_only(aead, &iv, body, &e_index, &tag)?;
                }
            }
        }
        stream.rtcp_seen = true;
        stream.rtcp_replay.commit(u64::from(index));
        self.streams.slots[slot] = Some(stream);
        Ok(len)
    }
}

/// GCM with an empty plaintext over AAD `a || b`: the AAD is passed as one slice, so it is
/// copied into a fixed stack buffer (RTCP compounds are bounded by the UDP payload).
fn verify_gcm_aad_only(
    aead: &Aes128Gcm,
    iv: &[u8; 12],
    a: &[u8],
    b: &[u8; 4],
    tag: &Tag,
) -> Result<(), SrtpError> {
    let mut aad = [0u8; 1504];
    let n = a.len() + 4;
    if n > aad.len() {
        return Err(SrtpError::Truncated {
            len: a.len(),
            needed: aad.len() - 4,
        });
    }
    aad[..a.len()].copy_from_slice(a);
    aad[a.len()..n].copy_from_slice(b);
    aead.decrypt_in_place_detached(Nonce::from_slice(iv), &aad[..n], &mut [], tag)
        .map_err(|_| SrtpError::AuthFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 3711 Appendix B.2: AES-CM keystream.
    #[test]
    fn rfc3711_b2_keystream() {
        let key = hex("2B7E151628AED2A6ABF7158809CF4F3C");
        let cipher = Aes128::new_from_slice(&key).unwrap();
        let mut salt = [0u8; 14];
        salt.copy_from_slice(&hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"));
        let mut ks = [0u8; 48];
        aes_cm(&cipher, &salt, 0, 0, &mut ks);
        assert_eq!(
            ks.to_vec(),
            hex(
                "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB
                 41E95B3BB0A2E8DD477901E4FCA894C0"
            )
        );
    }

    /// RFC 3711 Appendix B.3: key derivation.
    #[test]
    fn rfc3711_b3_key_derivation() {
        let master = Aes128::new_from_slice(&hex("E1F97A0D3E018BE0D64FA32C06DE4139")).unwrap();
        let mut salt = [0u8; 14];
        salt.copy_from_slice(&hex("0EC675AD498AFEEBB6960B3AABE6"));
        let mut k = [0u8; 16];
        kdf(&master, &salt, 0, &mut k);
        assert_eq!(k.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut s = [0u8; 14];
        kdf(&master, &salt, 2, &mut s);
        assert_eq!(s.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        let mut a = [0u8; 20];
        kdf(&master, &salt, 1, &mut a);
        assert_eq!(a.to_vec(), hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"));
    }

    #[test]
    fn replay_window_slides() {
        let mut w = ReplayWindow::default();
        w.commit(10);
        assert!(w.check(10).is_err());
        assert!(w.check(9).is_ok());
        w.commit(200);
        assert!(w.check(200 - REPLAY_WINDOW).is_err());
        assert!(w.check(200 - REPLAY_WINDOW + 1).is_ok());
        assert!(w.check(10).is_err());
    }

    /// A GCM context from session key and salt (the RFC 7714 vectors skip the KDF).
    fn gcm_session(key: &[u8], salt: &[u8]) -> SrtpContext {
        let keys = Keys::Gcm {
            aead: Aes128Gcm::new_from_slice(key).unwrap(),
            salt: salt.try_into().unwrap(),
        };
        SrtpContext {
            profile: SrtpProfile::AeadAes128Gcm,
            rtp: keys.clone(),
            rtcp: keys,
            streams: Streams {
                slots: [None; MAX_SSRCS],
            },
        }
    }

    const GCM_KEY: &str = "000102030405060708090a0b0c0d0e0f";
    const GCM_SALT: &str = "517569642070726f2071756f";

    /// RFC 7714 §16.1.1.
    #[test]
    fn rfc7714_srtp_gcm() {
        let rtp = hex("8040f17b8041f8d35501a0b247616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573");
        let srtp = hex("8040f17b8041f8d35501a0b2f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce");
        let mut buf = rtp.clone();
        buf.resize(rtp.len() + 16, 0);
        let n = gcm_session(&hex(GCM_KEY), &hex(GCM_SALT))
            .protect(&mut buf, rtp.len())
            .unwrap();
        assert_eq!(&buf[..n], &srtp[..]);
        let mut buf = srtp.clone();
        let n = gcm_session(&hex(GCM_KEY), &hex(GCM_SALT))
            .unprotect(&mut buf)
            .unwrap();
        assert_eq!(&buf[..n], &rtp[..]);
    }

    /// RFC 7714 §17.1 (encrypted) and §17.3 (E = 0, authenticated only).
    #[test]
    fn rfc7714_srtcp_gcm() {
        let rtcp = hex("81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef");
        let srtcp = hex("81c8000d4d61727363e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda4ce09b4686303ded0bb9275bc84aa45896cf4d2fc5abf87245d9eade800005d4");
        let tag_only = hex("81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef841dd9683dd78ec92ae58790125f62b3000005d4");
        let mut buf = srtcp.clone();
        let n = gcm_session(&hex(GCM_KEY), &hex(GCM_SALT))
            .unprotect_rtcp(&mut buf)
            .unwrap();
        assert_eq!(&buf[..n], &rtcp[..]);
        let mut buf = tag_only.clone();
        let n = gcm_session(&hex(GCM_KEY), &hex(GCM_SALT))
            .unprotect_rtcp(&mut buf)
            .unwrap();
        assert_eq!(&buf[..n], &rtcp[..]);
        let mut tx = gcm_session(&hex(GCM_KEY), &hex(GCM_SALT));
        let mut st = Stream::new(0x4d61_7273);
        st.rtcp_index = 0x5d3;
        tx.streams.slots[0] = Some(st);
        let mut buf = rtcp.clone();
        buf.resize(rtcp.len() + 20, 0);
        let n = tx.protect_rtcp(&mut buf, rtcp.len()).unwrap();
        assert_eq!(&buf[..n], &srtcp[..]);
    }
}
