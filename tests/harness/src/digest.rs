//! The client side of SIP digest authentication (RFC 3261 §22, RFC 7616 `qop=auth`, RFC 8760
//! algorithm names), written independently of voxgate's own digest code so the tests check
//! the wire against a second implementation: reads a `WWW-Authenticate` /
//! `Proxy-Authenticate` challenge and builds the `Authorization` value that answers it.
//!
//! Not a general HTTP-auth library: no `auth-int`, no `-sess` algorithms, no RFC 2069
//! (qop-less) answers beyond what voxgate's challenges need.

use md5::{Digest, Md5};
use sha2::Sha256;

use crate::sip::Response;

/// The digest algorithms the tests answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Md5,
    Sha256,
}

impl DigestAlgorithm {
    /// The RFC 8760 token (`MD5`, `SHA-256`).
    pub fn token(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
    }

    /// Lower-case hex of the hash of `data`.
    pub fn hex(self, data: &str) -> String {
        let bytes: Vec<u8> = match self {
            DigestAlgorithm::Md5 => Md5::digest(data.as_bytes()).to_vec(),
            DigestAlgorithm::Sha256 => Sha256::digest(data.as_bytes()).to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One parsed `Digest` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    /// `None` when the challenge names an algorithm this client does not implement.
    pub algorithm: Option<DigestAlgorithm>,
    /// The `algorithm` parameter as sent (`MD5` when absent).
    pub algorithm_token: String,
    /// Whether `qop` offers `auth`.
    pub qop_auth: bool,
    pub opaque: Option<String>,
    pub stale: bool,
}

impl Challenge {
    /// Parses one challenge header value (`Digest realm="…", nonce="…", …`). None unless the
    /// scheme is Digest with a realm and a nonce.
    pub fn parse(value: &str) -> Option<Challenge> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let params = parse_params(rest);
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let algorithm_token = get("algorithm").unwrap_or_else(|| "MD5".to_owned());
        let algorithm = if algorithm_token.eq_ignore_ascii_case("MD5") {
            Some(DigestAlgorithm::Md5)
        } else if algorithm_token.eq_ignore_ascii_case("SHA-256") {
            Some(DigestAlgorithm::Sha256)
        } else {
            None
        };
        Some(Challenge {
            realm: get("realm")?,
            nonce: get("nonce")?,
            algorithm,
            algorithm_token,
            qop_auth: get("qop")
                .is_some_and(|q| q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth"))),
            opaque: get("opaque"),
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// Every challenge of a 401 (`WWW-Authenticate`) or 407 (`Proxy-Authenticate`), in
    /// order; values that do not parse are left out.
    pub fn all_of(response: &Response) -> Vec<Challenge> {
        let header = if response.code == 407 {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        response
            .header_values(header)
            .iter()
            .filter_map(|v| Challenge::parse(v))
            .collect()
    }

    /// The first challenge of `response` with `algorithm`, if any.
    pub fn find(response: &Response, algorithm: DigestAlgorithm) -> Option<Challenge> {
        Challenge::all_of(response)
            .into_iter()
            .find(|c| c.algorithm == Some(algorithm))
    }

    /// The credentials value answering this challenge with `qop=auth`. Panics if the
    /// challenge's algorithm is not implemented here (a test bug: pick one with
    /// [`Challenge::find`]).
    pub fn authorization(
        &self,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
        nc: u32,
    ) -> String {
        let algorithm = self
            .algorithm
            .unwrap_or_else(|| panic!("cannot answer algorithm {}", self.algorithm_token));
        let ha1 = algorithm.hex(&format!("{username}:{}:{password}", self.realm));
        let ha2 = algorithm.hex(&format!("{method}:{uri}"));
        let nc = format!("{nc:08x}");
        let response = algorithm.hex(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce));
        let mut value = format!(
            "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm={}, cnonce=\"{cnonce}\", qop=auth, nc={nc}",
            self.realm,
            self.nonce,
            algorithm.token()
        );
        if let Some(opaque) = &self.opaque {
            value.push_str(&format!(", opaque=\"{opaque}\""));
        }
        value
    }
}

/// `name=value` pairs separated by commas; values may be quoted (with `\` escapes).
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.trim().is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        out.push((name.trim().to_owned(), value.trim().to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_voxgate_challenge() {
        let c = Challenge::parse(
            "Digest realm=\"voxgate.test\", nonce=\"AAAA-b_c\", algorithm=SHA-256, \
             qop=\"auth\", stale=true",
        )
        .unwrap();
        assert_eq!(c.realm, "voxgate.test");
        assert_eq!(c.nonce, "AAAA-b_c");
        assert_eq!(c.algorithm, Some(DigestAlgorithm::Sha256));
        assert!(c.qop_auth && c.stale);
        assert_eq!(c.opaque, None);
        assert!(Challenge::parse("Basic realm=\"x\"").is_none());
        assert!(Challenge::parse("Digest nonce=\"x\"").is_none());
        let odd =
            Challenge::parse("Digest realm=\"a\\\"b\",nonce=n,algorithm=SHA-512-256").unwrap();
        assert_eq!(odd.realm, "a\"b");
        assert_eq!(odd.algorithm, None);
    }

    /// RFC 7616 §3.9.1 example (MD5 and SHA-256, qop=auth).
    #[test]
    fn rfc7616_vectors() {
        let mut c = Challenge::parse(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
             algorithm=SHA-256, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        )
        .unwrap();
        let value = c.authorization(
            "Mufasa",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            1,
        );
        assert!(
            value.contains(
                "response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\""
            ),
            "{value}"
        );
        c.algorithm = Some(DigestAlgorithm::Md5);
        let value = c.authorization(
            "Mufasa",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            1,
        );
        assert!(
            value.contains("response=\"8ca523f5e9506fed4657c9700eebdbec\""),
            "{value}"
        );
        assert!(value.contains("nc=00000001") && value.contains("opaque=\"FQhe"));
    }
}
