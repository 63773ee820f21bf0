//! Stateless nonces: any nonce voxgate minted can be checked without remembering it.
//!
//! Layout (36 bytes, then base64url without padding = 48 characters):
//!
//! ```text
//! issued_unix_secs: u64 BE | counter: u32 BE | salt: u64 BE | mac: 16 bytes
//! mac = HMAC-SHA256(secret, "voxgate-digest-nonce-v1" | issued | counter | salt
//!                           | algorithm id | realm)[..16]
//! ```
//!
//! The MAC binds the nonce to the realm and to the algorithm of the challenge it was sent
//! in, so a nonce from an MD5 challenge does not verify under SHA-256. `salt` is the
//! caller's randomness (unpredictability); `counter` is a per-process sequence number, so
//! two challenges never share a nonce even if the caller's randomness repeats (which would
//! otherwise make two clients' nonce counts collide). A 128-bit MAC leaves forging a nonce
//! out of reach. What this module does not do: decide freshness or replay (see
//! [`super::replay`] and [`super::DigestAuth`]).

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::Algorithm;

const DOMAIN: &[u8] = b"voxgate-digest-nonce-v1";
const BODY_LEN: usize = 8 + 4 + 8;
const MAC_LEN: usize = 16;
const RAW_LEN: usize = BODY_LEN + MAC_LEN;
/// Characters of an encoded nonce: 36 bytes are exactly 12 base64 groups.
pub(crate) const ENCODED_LEN: usize = RAW_LEN / 3 * 4;

/// What a verified nonce says about itself. Ordered by issue time first, so the replay
/// table can evict the oldest entry and remember a floor below which it forgot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NonceId {
    pub issued: u64,
    pub counter: u32,
    pub salt: u64,
}

/// The keyed MAC state for one realm (the HMAC key schedule is computed once here and
/// cloned per nonce).
#[derive(Clone)]
pub(crate) struct NonceKey {
    mac: Hmac<Sha256>,
    realm: Box<[u8]>,
}

impl fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("NonceKey")
            .field("realm", &String::from_utf8_lossy(&self.realm))
            .finish_non_exhaustive()
    }
}

impl NonceKey {
    pub fn new(secret: &[u8; 32], realm: &[u8]) -> NonceKey {
        NonceKey {
            mac: <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
                .expect("HMAC takes keys of any length"),
            realm: realm.into(),
        }
    }

    fn tag(&self, body: &[u8; BODY_LEN], algorithm: Algorithm) -> [u8; MAC_LEN] {
        let mut m = self.mac.clone();
        m.update(DOMAIN);
        m.update(body);
        m.update(&[algorithm.id()]);
        m.update(&self.realm);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// The nonce for `id` in a challenge for `algorithm`.
    pub fn mint(&self, id: NonceId, algorithm: Algorithm) -> String {
        let body = body(id);
        let mut raw = [0u8; RAW_LEN];
        raw[..BODY_LEN].copy_from_slice(&body);
        raw[BODY_LEN..].copy_from_slice(&self.tag(&body, algorithm));
        encode(&raw)
    }

    /// The nonce's id if voxgate minted it for this realm and `algorithm`; `None` for
    /// anything else (wrong length, bad characters, wrong MAC). The MAC is compared in
    /// constant time.
    pub fn open(&self, nonce: &[u8], algorithm: Algorithm) -> Option<NonceId> {
        let raw = decode(nonce)?;
        let mut body = [0u8; BODY_LEN];
        body.copy_from_slice(&raw[..BODY_LEN]);
        let tag = self.tag(&body, algorithm);
        if !bool::from(tag.ct_eq(&raw[BODY_LEN..])) {
            return None;
        }
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[i..i + 8]);
            u64::from_be_bytes(b)
        };
        let mut c = [0u8; 4];
        c.copy_from_slice(&body[8..12]);
        Some(NonceId {
            issued: u64_at(0),
            counter: u32::from_be_bytes(c),
            salt: u64_at(12),
        })
    }
}

fn body(id: NonceId) -> [u8; BODY_LEN] {
    let mut b = [0u8; BODY_LEN];
    b[..8].copy_from_slice(&id.issued.to_be_bytes());
    b[8..12].copy_from_slice(&id.counter.to_be_bytes());
    b[12..].copy_from_slice(&id.salt.to_be_bytes());
    b
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url (RFC 4648 §5) of exactly `RAW_LEN` bytes: no padding is ever needed.
fn encode(raw: &[u8; RAW_LEN]) -> String {
    let mut s = String::with_capacity(ENCODED_LEN);
    for g in raw.chunks_exact(3) {
        let n = u32::from(g[0]) << 16 | u32::from(g[1]) << 8 | u32::from(g[2]);
        for shift in [18u32, 12, 6, 0] {
            // The index is masked to 6 bits, so it is always inside the alphabet.
            s.push(char::from(ALPHABET[((n >> shift) & 0x3f) as usize]));
        }
    }
    s
}

fn sextet(c: u8) -> Option<u32> {
    Some(u32::from(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    }))
}

/// Inverse of [`encode`]; every 48-character base64url string decodes to exactly one byte
/// string and back, so there are no alternative spellings of one nonce.
fn decode(s: &[u8]) -> Option<[u8; RAW_LEN]> {
    if s.len() != ENCODED_LEN {
        return None;
    }
    let mut raw = [0u8; RAW_LEN];
    for (g, out) in s.chunks_exact(4).zip(raw.chunks_exact_mut(3)) {
        let mut n = 0u32;
        for &c in g {
            n = n << 6 | sextet(c)?;
        }
        out.copy_from_slice(&n.to_be_bytes()[1..]);
    }
    Some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: NonceId = NonceId {
        issued: 1_700_000_000,
        counter: 7,
        salt: 0xdead_beef_0123_4567,
    };

    #[test]
    fn mint_then_open() {
        let k = NonceKey::new(&[7; 32], b"example.test");
        for a in Algorithm::ALL {
            let n = k.mint(ID, a);
            assert_eq!(n.len(), ENCODED_LEN);
            assert!(n
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
            assert_eq!(k.open(n.as_bytes(), a), Some(ID));
        }
    }

    #[test]
    fn bound_to_algorithm_realm_and_secret() {
        let k = NonceKey::new(&[7; 32], b"example.test");
        let n = k.mint(ID, Algorithm::Md5);
        assert_eq!(k.open(n.as_bytes(), Algorithm::Sha256), None);
        let other_realm = NonceKey::new(&[7; 32], b"other.test");
        assert_eq!(other_realm.open(n.as_bytes(), Algorithm::Md5), None);
        let other_secret = NonceKey::new(&[8; 32], b"example.test");
        assert_eq!(other_secret.open(n.as_bytes(), Algorithm::Md5), None);
    }

    #[test]
    fn any_single_character_change_is_rejected() {
        let k = NonceKey::new(&[1; 32], b"r");
        let n = k.mint(ID, Algorithm::Sha256).into_bytes();
        for i in 0..n.len() {
            for c in ALPHABET.iter().copied().filter(|&c| c != n[i]) {
                let mut t = n.clone();
                t[i] = c;
                assert_eq!(k.open(&t, Algorithm::Sha256), None, "pos {i} char {c}");
            }
        }
        assert_eq!(k.open(&n[..n.len() - 1], Algorithm::Sha256), None);
        let mut longer = n.clone();
        longer.push(b'A');
        assert_eq!(k.open(&longer, Algorithm::Sha256), None);
        assert_eq!(k.open(b"", Algorithm::Sha256), None);
        let mut bad = n.clone();
        bad[3] = b'+';
        assert_eq!(k.open(&bad, Algorithm::Sha256), None);
    }

    #[test]
    fn base64url_round_trip() {
        let mut raw = [0u8; RAW_LEN];
        for (i, b) in raw.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(73).wrapping_add(250);
        }
        let s = encode(&raw);
        assert_eq!(decode(s.as_bytes()), Some(raw));
        assert_eq!(encode(&[0xff; RAW_LEN]), "_".repeat(ENCODED_LEN));
        assert_eq!(encode(&[0; RAW_LEN]), "A".repeat(ENCODED_LEN));
    }

    #[test]
    fn debug_hides_key() {
        let k = NonceKey::new(&[0x41; 32], b"r");
        let d = format!("{k:?}");
        assert!(!d.contains("65") && !d.contains("AAAA"), "{d}");
    }
}
