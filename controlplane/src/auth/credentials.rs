//! What the caller's credential lookup returns for an auth username: a cleartext password
//! or precomputed HA1 values, one per algorithm (an operator who stores `ha1` never keeps
//! the password on the box).
//!
//! `Debug` output of these types never contains the secret. What this module does not do:
//! store or look anything up; the caller owns the user table (extensions in config, and
//! the mapping from auth id to extension number, SIG-01).

use std::fmt;

use super::digest::{self, Algorithm};

/// The secret of one auth username.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// The cleartext password; HA1 is computed for whatever algorithm the client chose.
    Password(String),
    /// Precomputed `HA1 = H(username:realm:password)` values; a client that chose an
    /// algorithm with no HA1 here cannot be authenticated.
    Ha1(Ha1Set),
}

impl Credential {
    pub fn password(password: impl Into<String>) -> Credential {
        Credential::Password(password.into())
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Password(_) => f.write_str("Password(<redacted>)"),
            Credential::Ha1(set) => f.debug_tuple("Ha1").field(set).finish(),
        }
    }
}

/// Why an HA1 value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Ha1Error {
    #[error("an {algorithm} HA1 is {expected} hex digits, got {got} characters")]
    Length {
        algorithm: Algorithm,
        expected: usize,
        got: usize,
    },
    #[error("an HA1 must be hexadecimal")]
    NotHex,
}

/// HA1 values by algorithm, stored as lower-case hex (the form that enters the response
/// computation).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Ha1Set {
    md5: Option<String>,
    sha256: Option<String>,
    sha512_256: Option<String>,
}

impl Ha1Set {
    pub fn new() -> Ha1Set {
        Ha1Set::default()
    }

    /// Set the HA1 for `algorithm` from hex (either case). Checks length and digits.
    pub fn with(mut self, algorithm: Algorithm, hex: &str) -> Result<Ha1Set, Ha1Error> {
        if hex.len() != algorithm.hex_len() {
            return Err(Ha1Error::Length {
                algorithm,
                expected: algorithm.hex_len(),
                got: hex.len(),
            });
        }
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Ha1Error::NotHex);
        }
        *self.slot(algorithm) = Some(hex.to_ascii_lowercase());
        Ok(self)
    }

    /// All HA1 values of `algorithms`, computed from a password (for a config loader that
    /// wants to keep only HA1 in memory).
    pub fn from_password(
        algorithms: &[Algorithm],
        username: &str,
        realm: &str,
        password: &str,
    ) -> Ha1Set {
        let mut set = Ha1Set::new();
        for &a in algorithms {
            *set.slot(a) = Some(digest::ha1(
                a,
                username.as_bytes(),
                realm.as_bytes(),
                password.as_bytes(),
            ));
        }
        set
    }

    /// The hex HA1 for `algorithm`, if stored.
    pub fn get(&self, algorithm: Algorithm) -> Option<&str> {
        match algorithm {
            Algorithm::Md5 => self.md5.as_deref(),
            Algorithm::Sha256 => self.sha256.as_deref(),
            Algorithm::Sha512_256 => self.sha512_256.as_deref(),
        }
    }

    fn slot(&mut self, algorithm: Algorithm) -> &mut Option<String> {
        match algorithm {
            Algorithm::Md5 => &mut self.md5,
            Algorithm::Sha256 => &mut self.sha256,
            Algorithm::Sha512_256 => &mut self.sha512_256,
        }
    }
}

impl fmt::Debug for Ha1Set {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Which algorithms are present, never the values: an HA1 is password-equivalent.
        let present: Vec<&str> = Algorithm::ALL
            .into_iter()
            .filter(|a| self.get(*a).is_some())
            .map(Algorithm::as_str)
            .collect();
        f.debug_struct("Ha1Set")
            .field("algorithms", &present)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ha1_validation() {
        let md5 = "939E7578ED9E3C518A452ACEE763BCE9";
        let set = Ha1Set::new().with(Algorithm::Md5, md5).unwrap();
        assert_eq!(
            set.get(Algorithm::Md5),
            Some("939e7578ed9e3c518a452acee763bce9")
        );
        assert_eq!(set.get(Algorithm::Sha256), None);
        assert!(matches!(
            Ha1Set::new().with(Algorithm::Sha256, md5),
            Err(Ha1Error::Length {
                expected: 64,
                got: 32,
                ..
            })
        ));
        assert_eq!(
            Ha1Set::new().with(Algorithm::Md5, &"g".repeat(32)),
            Err(Ha1Error::NotHex)
        );
    }

    #[test]
    fn from_password_matches_rfc7616() {
        let set = Ha1Set::from_password(
            &[Algorithm::Md5],
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        assert_eq!(
            set.get(Algorithm::Md5),
            Some(
                digest::ha1(
                    Algorithm::Md5,
                    b"Mufasa",
                    b"http-auth@example.org",
                    b"Circle of Life"
                )
                .as_str()
            )
        );
        assert_eq!(set.get(Algorithm::Sha256), None);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credential::password("hunter2hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        let h = Credential::Ha1(
            Ha1Set::new()
                .with(Algorithm::Md5, "939e7578ed9e3c518a452acee763bce9")
                .unwrap(),
        );
        let d = format!("{h:?}");
        assert!(!d.contains("939e"), "{d}");
        assert!(d.contains("MD5"), "{d}");
    }
}
