//! The digest computations themselves (RFC 7616 §3.4.1–§3.4.3, RFC 8760 algorithm names):
//! `HA1 = H(username:realm:password)`, `HA2 = H(method:digest-uri)` and, for `qop=auth`,
//! `response = H(HA1:nonce:nc:cnonce:qop:HA2)`, each `H` written as lower-case hex.
//!
//! Pure functions over bytes, shared by the verifier ([`super::DigestAuth`]), the client
//! helper ([`super::client`]) and tests. What it does not do: parse headers, mint nonces or
//! decide anything.

use std::fmt;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

/// A digest algorithm, named as in RFC 8760 §2 / the IANA "HTTP Digest Hash Algorithms"
/// registry. The `-sess` variants are not supported: voxgate offers and accepts only
/// `qop=auth` with the plain algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// `MD5` (RFC 2617). Offered first by default because many SIP clients read only the
    /// first challenge.
    Md5,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
    /// `SHA-512-256` (RFC 7616, RFC 8760): SHA-512/256, not a truncated SHA-512.
    Sha512_256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 3] = [Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha512_256];

    /// The token used in `algorithm=` parameters and in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512_256 => "SHA-512-256",
        }
    }

    /// Parse an `algorithm=` token; the comparison is case-insensitive (RFC 7616 §3.3 calls
    /// the tokens case-insensitive). `-sess` variants and unknown names give `None`.
    pub fn from_token(token: &[u8]) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| token.eq_ignore_ascii_case(a.as_str().as_bytes()))
    }

    /// Length in characters of a hex digest (HA1, response) under this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 | Algorithm::Sha512_256 => 64,
        }
    }

    /// Stable one-byte id, mixed into nonce MACs so a nonce is bound to its algorithm.
    pub(crate) fn id(self) -> u8 {
        match self {
            Algorithm::Md5 => 1,
            Algorithm::Sha256 => 2,
            Algorithm::Sha512_256 => 3,
        }
    }

    /// `H(p0:p1:…)` as lower-case hex: the parts are joined with `:` while hashing, so no
    /// joined copy is built.
    pub(crate) fn hash_joined(self, parts: &[&[u8]]) -> String {
        fn run<D: Digest>(parts: &[&[u8]]) -> String {
            let mut d = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            hex(&d.finalize())
        }
        match self {
            Algorithm::Md5 => run::<Md5>(parts),
            Algorithm::Sha256 => run::<Sha256>(parts),
            Algorithm::Sha512_256 => run::<Sha512_256>(parts),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// `HA1 = H(username:realm:password)` in lower-case hex (RFC 7616 §3.4.2, non-`-sess`).
/// This is also what an operator stores instead of a password (`ha1 = "…"` in config).
pub fn ha1(algorithm: Algorithm, username: &[u8], realm: &[u8], password: &[u8]) -> String {
    algorithm.hash_joined(&[username, realm, password])
}

/// The request-dependent inputs of a `qop=auth` response (RFC 7616 §3.4.1). All values
/// are as they appear (unquoted) in the Authorization header, except `method`, which is
/// the request's method.
#[derive(Debug, Clone, Copy)]
pub struct ResponseParams<'a> {
    pub method: &'a [u8],
    /// The `uri=` (digest-uri) value.
    pub uri: &'a [u8],
    pub nonce: &'a [u8],
    /// The nonce count, as its 8 hex digits (`00000001`).
    pub nc: &'a [u8],
    pub cnonce: &'a [u8],
    /// Always `auth` for voxgate; kept as a field so test vectors spell it out.
    pub qop: &'a [u8],
}

/// `response = H(HA1:nonce:nc:cnonce:qop:H(method:uri))` in lower-case hex, with `ha1`
/// the hex HA1 of the same algorithm (RFC 7616 §3.4.1, `qop=auth`).
pub fn compute_response(algorithm: Algorithm, ha1: &str, p: &ResponseParams<'_>) -> String {
    let ha2 = algorithm.hash_joined(&[p.method, p.uri]);
    algorithm.hash_joined(&[
        ha1.as_bytes(),
        p.nonce,
        p.nc,
        p.cnonce,
        p.qop,
        ha2.as_bytes(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_tokens_round_trip_case_insensitively() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_token(a.as_str().as_bytes()), Some(a));
            assert_eq!(
                Algorithm::from_token(a.as_str().to_ascii_lowercase().as_bytes()),
                Some(a)
            );
        }
        assert_eq!(Algorithm::from_token(b"MD5-sess"), None);
        assert_eq!(Algorithm::from_token(b"SHA-512"), None);
        assert_eq!(Algorithm::from_token(b""), None);
    }

    #[test]
    fn known_hashes() {
        // MD5("") and SHA-256("") and SHA-512/256("") from their specifications.
        assert_eq!(
            Algorithm::Md5.hash_joined(&[b""]),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            Algorithm::Sha256.hash_joined(&[b""]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            Algorithm::Sha512_256.hash_joined(&[b""]),
            "c672b8d1ef56ed28ab87c3622c5114069bdd3ad7b8f9737498d0c01ecef0967a"
        );
        // Joining with ':' is the same as hashing the joined string.
        assert_eq!(
            Algorithm::Md5.hash_joined(&[b"a", b"b", b""]),
            Algorithm::Md5.hash_joined(&[b"a:b:"])
        );
        for a in Algorithm::ALL {
            assert_eq!(a.hash_joined(&[b"x"]).len(), a.hex_len());
        }
    }

    #[test]
    fn rfc2617_section_3_5_example() {
        // RFC 2617 §3.5: Mufasa / "Circle Of Life" (capital O), realm testrealm@host.com.
        let ha1 = ha1(
            Algorithm::Md5,
            b"Mufasa",
            b"testrealm@host.com",
            b"Circle Of Life",
        );
        let r = compute_response(
            Algorithm::Md5,
            &ha1,
            &ResponseParams {
                method: b"GET",
                uri: b"/dir/index.html",
                nonce: b"dcd98b7102dd2f0e8b11d0f600bfb0c093",
                nc: b"00000001",
                cnonce: b"0a4f113b",
                qop: b"auth",
            },
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }
}
