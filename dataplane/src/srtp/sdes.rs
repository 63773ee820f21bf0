//! SDES keys (RFC 4568): the crypto suite names voxgate supports and the `inline:` key-params
//! of an `a=crypto` line, parsed into master key and salt.
//!
//! Owns: suite names, key/salt lengths per suite, decoding `inline:BASE64[|lifetime][|MKI:len]`.
//! Does not own: SDP parsing (the control plane hands over the suite name and the key-params
//! string), choosing a suite, or generating keys (the caller supplies random bytes).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use thiserror::Error;

/// The SRTP crypto suites voxgate speaks (RFC 4568 §6.2, RFC 7714 §14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SrtpProfile {
    /// AES-128 counter mode, HMAC-SHA1 with an 80-bit tag (RFC 4568 §6.2.1).
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, HMAC-SHA1 with a 32-bit RTP tag; SRTCP keeps 80 bits
    /// (RFC 4568 §6.2.2).
    AesCm128HmacSha1_32,
    /// AES-128 GCM with a 128-bit tag (RFC 7714 §14.2).
    AeadAes128Gcm,
}

impl SrtpProfile {
    /// The suite for an `a=crypto` suite name, or `None` if voxgate does not support it.
    pub fn from_sdes_name(name: &str) -> Option<Self> {
        match name {
            "AES_CM_128_HMAC_SHA1_80" => Some(Self::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(Self::AesCm128HmacSha1_32),
            "AEAD_AES_128_GCM" => Some(Self::AeadAes128Gcm),
            _ => None,
        }
    }

    /// The `a=crypto` suite name.
    pub fn sdes_name(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Self::AeadAes128Gcm => "AEAD_AES_128_GCM",
        }
    }

    /// Master key length in bytes (all three suites use AES-128).
    pub fn master_key_len(self) -> usize {
        16
    }

    /// Master salt length in bytes: 112 bits for AES-CM (RFC 3711 §8.2), 96 for GCM
    /// (RFC 7714 §12).
    pub fn master_salt_len(self) -> usize {
        match self {
            Self::AeadAes128Gcm => 12,
            _ => 14,
        }
    }

    /// Bytes the SRTP tag adds to an RTP packet (the tailroom `protect` needs).
    pub fn rtp_overhead(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 => 10,
            Self::AesCm128HmacSha1_32 => 4,
            Self::AeadAes128Gcm => 16,
        }
    }

    /// Bytes SRTCP adds to an RTCP compound: the tag plus the 4-byte E flag and index.
    pub fn rtcp_overhead(self) -> usize {
        match self {
            // RFC 4568 §6.2.2: the _32 suite still uses an 80-bit SRTCP tag.
            Self::AesCm128HmacSha1_80 | Self::AesCm128HmacSha1_32 => 10 + 4,
            Self::AeadAes128Gcm => 16 + 4,
        }
    }
}

/// Why an SDES key-params string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SdesKeyError {
    /// The key method is not `inline:` (RFC 4568 §6.1 defines no other).
    #[error("SDES key-params do not start with \"inline:\"")]
    NotInline,
    /// The key-salt is not valid base64.
    #[error("SDES inline key is not valid base64")]
    Base64,
    /// The decoded key-salt has the wrong length for the suite.
    #[error("SDES key-salt is {got} bytes, the suite needs {expected}")]
    KeyLength { got: usize, expected: usize },
    /// An MKI is present: voxgate sends and accepts packets without MKI only.
    #[error("SDES key with an MKI is not supported")]
    MkiUnsupported,
    /// The lifetime field is neither a decimal number nor `2^n`.
    #[error("SDES key lifetime is malformed")]
    Lifetime,
}

/// One SDES master key and salt for a suite.
#[derive(Clone, PartialEq, Eq)]
pub struct SdesKey {
    profile: SrtpProfile,
    key: [u8; 16],
    salt: [u8; 14],
}

impl std::fmt::Debug for SdesKey {
    // Keys never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdesKey")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl SdesKey {
    /// A key from raw master key and salt bytes (e.g. freshly generated for an offer).
    pub fn from_parts(
        profile: SrtpProfile,
        key: [u8; 16],
        salt: &[u8],
    ) -> Result<Self, SdesKeyError> {
        let expected = profile.master_salt_len();
        if salt.len() != expected {
            return Err(SdesKeyError::KeyLength {
                got: 16 + salt.len(),
                expected: 16 + expected,
            });
        }
        let mut s = [0u8; 14];
        s[..expected].copy_from_slice(salt);
        Ok(Self {
            profile,
            key,
            salt: s,
        })
    }

    /// Parses the key-params of an `a=crypto` line, e.g.
    /// `inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20`. A lifetime is accepted (and not
    /// enforced); an MKI is refused.
    pub fn parse(profile: SrtpProfile, key_params: &str) -> Result<Self, SdesKeyError> {
        let rest = key_params
            .trim()
            .strip_prefix("inline:")
            .ok_or(SdesKeyError::NotInline)?;
        let mut parts = rest.split('|');
        let b64 = parts.next().unwrap_or_default();
        for part in parts {
            if part.contains(':') {
                return Err(SdesKeyError::MkiUnsupported);
            }
            let valid = match part.strip_prefix("2^") {
                Some(exp) => exp.parse::<u8>().is_ok_and(|e| e <= 64),
                None => !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()),
            };
            if !valid {
                return Err(SdesKeyError::Lifetime);
            }
        }
        let mut raw = [0u8; 32];
        let n = STANDARD
            .decode_slice(b64, &mut raw)
            .map_err(|_| SdesKeyError::Base64)?;
        let expected = profile.master_key_len() + profile.master_salt_len();
        if n != expected {
            return Err(SdesKeyError::KeyLength { got: n, expected });
        }
        let mut key = [0u8; 16];
        key.copy_from_slice(&raw[..16]);
        Self::from_parts(profile, key, &raw[16..n])
    }

    /// The `inline:` key-params for an `a=crypto` line (no lifetime, no MKI).
    pub fn to_inline(&self) -> String {
        let n = self.profile.master_salt_len();
        let mut raw = [0u8; 30];
        raw[..16].copy_from_slice(&self.key);
        raw[16..16 + n].copy_from_slice(&self.salt[..n]);
        format!("inline:{}", STANDARD.encode(&raw[..16 + n]))
    }

    /// The suite this key is for.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    pub(crate) fn master_key(&self) -> &[u8; 16] {
        &self.key
    }

    /// The master salt, zero-padded to 14 bytes for GCM's 12-byte salt (as libsrtp does when
    /// it runs the RFC 3711 §4.3.3 PRF for RFC 7714 keys).
    pub(crate) fn master_salt(&self) -> &[u8; 14] {
        &self.salt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_inline_with_lifetime_and_refuses_mki() {
        let p = SrtpProfile::AesCm128HmacSha1_80;
        let k = SdesKey::parse(p, "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20").unwrap();
        assert_eq!(&k.master_key()[..4], b"YS__");
        assert_eq!(
            k.to_inline(),
            "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
        );
        assert_eq!(
            SdesKey::parse(
                p,
                "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4"
            ),
            Err(SdesKeyError::MkiUnsupported)
        );
        assert_eq!(
            SdesKey::parse(p, "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^x"),
            Err(SdesKeyError::Lifetime)
        );
        assert_eq!(SdesKey::parse(p, "uri:x"), Err(SdesKeyError::NotInline));
        assert_eq!(SdesKey::parse(p, "inline:!!!"), Err(SdesKeyError::Base64));
        assert!(matches!(
            SdesKey::parse(
                SrtpProfile::AeadAes128Gcm,
                "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
            ),
            Err(SdesKeyError::KeyLength {
                got: 30,
                expected: 28
            })
        ));
    }
}
