//! Answering a digest challenge: builds the `Authorization` / `Proxy-Authorization` value
//! for a `WWW-Authenticate` / `Proxy-Authenticate` challenge (RFC 7616 §3.4, `qop=auth`).
//!
//! For voxgate as a client (registering to a trunk) and for tests. It shares the digest
//! functions with the verifier, so the RFC test vectors pin both sides. What it does not do:
//! pick among several challenges, keep the nonce count, or generate the cnonce (the caller
//! passes them: no randomness here), nor answer RFC 2069 challenges without `qop`.

use crate::sip::{AuthParams, Method};

use super::digest::{compute_response, ha1, Algorithm, ResponseParams};

/// Why a challenge cannot be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeError {
    #[error("the challenge scheme is not Digest")]
    NotDigest,
    #[error("the challenge has no {0} parameter")]
    Missing(&'static str),
    #[error("the challenge algorithm is not supported")]
    UnsupportedAlgorithm,
    #[error("the challenge does not offer qop=auth")]
    NoQopAuth,
}

/// What the client answers with.
#[derive(Clone, Copy)]
pub struct DigestAnswer<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub method: &'a Method,
    /// The Request-URI of the request being authenticated.
    pub uri: &'a str,
    /// Client nonce: random, without `"` or `\`.
    pub cnonce: &'a str,
    /// Nonce count: 1 for the first request with this nonce, then increasing.
    pub nc: u32,
}

impl std::fmt::Debug for DigestAnswer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestAnswer")
            .field("username", &self.username)
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("nc", &self.nc)
            .finish_non_exhaustive()
    }
}

/// The credentials value answering `challenge`, e.g. `Digest username="alice",
/// realm="…", nonce="…", uri="sip:…", response="…", algorithm=MD5, cnonce="…", qop=auth,
/// nc=00000001` (with `opaque` echoed when the challenge had one).
pub fn authorization_value(
    challenge: &AuthParams,
    answer: &DigestAnswer<'_>,
) -> Result<String, ChallengeError> {
    if !challenge.is_digest() {
        return Err(ChallengeError::NotDigest);
    }
    let realm = challenge
        .unquoted("realm")
        .ok_or(ChallengeError::Missing("realm"))?;
    let nonce = challenge
        .unquoted("nonce")
        .ok_or(ChallengeError::Missing("nonce"))?;
    let algorithm = match challenge.unquoted("algorithm") {
        None => Algorithm::Md5,
        Some(t) => Algorithm::from_token(t).ok_or(ChallengeError::UnsupportedAlgorithm)?,
    };
    let offers_auth = challenge.unquoted("qop").is_some_and(|q| {
        q.split(|&b| b == b',')
            .any(|t| crate::sip::trim_lws(t).eq_ignore_ascii_case(b"auth"))
    });
    if !offers_auth {
        return Err(ChallengeError::NoQopAuth);
    }
    // The realm is used as it appears between the quotes (escapes included) in both the
    // hash and the echo; realms with quoted-pairs are vanishingly rare.
    let h1 = ha1(
        algorithm,
        answer.username.as_bytes(),
        realm,
        answer.password.as_bytes(),
    );
    let nc = format!("{:08x}", answer.nc);
    let response = compute_response(
        algorithm,
        &h1,
        &ResponseParams {
            method: answer.method.as_bytes(),
            uri: answer.uri.as_bytes(),
            nonce,
            nc: nc.as_bytes(),
            cnonce: answer.cnonce.as_bytes(),
            qop: b"auth",
        },
    );
    let mut v = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", \
         algorithm={}, cnonce=\"{}\", qop=auth, nc={}",
        escape(answer.username),
        String::from_utf8_lossy(realm),
        String::from_utf8_lossy(nonce),
        answer.uri,
        response,
        algorithm.as_str(),
        answer.cnonce,
        nc
    );
    if let Some(opaque) = challenge.unquoted("opaque") {
        v.push_str(", opaque=\"");
        v.push_str(&String::from_utf8_lossy(opaque));
        v.push('"');
    }
    Ok(v)
}

/// Quote `"` and `\` for a quoted-string.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn challenge(s: &str) -> AuthParams {
        AuthParams::parse(&Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    const ANSWER: DigestAnswer<'static> = DigestAnswer {
        username: "Mufasa",
        password: "Circle of Life",
        method: &Method::Register,
        uri: "sip:example.org",
        cnonce: "abc",
        nc: 10,
    };

    #[test]
    fn answers_with_echoed_fields() {
        let v = authorization_value(
            &challenge(
                "Digest realm=\"example.org\", nonce=\"n1\", algorithm=SHA-256, \
                 qop=\"auth,auth-int\", opaque=\"xyz\"",
            ),
            &ANSWER,
        )
        .unwrap();
        let p = challenge(&v);
        assert_eq!(p.unquoted("username"), Some(&b"Mufasa"[..]));
        assert_eq!(p.unquoted("realm"), Some(&b"example.org"[..]));
        assert_eq!(p.unquoted("nonce"), Some(&b"n1"[..]));
        assert_eq!(p.unquoted("algorithm"), Some(&b"SHA-256"[..]));
        assert_eq!(p.unquoted("nc"), Some(&b"0000000a"[..]));
        assert_eq!(p.unquoted("qop"), Some(&b"auth"[..]));
        assert_eq!(p.unquoted("opaque"), Some(&b"xyz"[..]));
        assert_eq!(p.unquoted("response").map(<[u8]>::len), Some(64));
    }

    #[test]
    fn refuses_what_it_cannot_answer() {
        assert_eq!(
            authorization_value(&challenge("Basic realm=\"x\""), &ANSWER),
            Err(ChallengeError::NotDigest)
        );
        assert_eq!(
            authorization_value(&challenge("Digest realm=\"x\", nonce=\"n\""), &ANSWER),
            Err(ChallengeError::NoQopAuth)
        );
        assert_eq!(
            authorization_value(
                &challenge("Digest realm=\"x\", nonce=\"n\", qop=\"auth-int\""),
                &ANSWER
            ),
            Err(ChallengeError::NoQopAuth)
        );
        assert_eq!(
            authorization_value(
                &challenge("Digest realm=\"x\", nonce=\"n\", qop=auth, algorithm=MD5-sess"),
                &ANSWER
            ),
            Err(ChallengeError::UnsupportedAlgorithm)
        );
        assert_eq!(
            authorization_value(&challenge("Digest nonce=\"n\", qop=auth"), &ANSWER),
            Err(ChallengeError::Missing("realm"))
        );
    }

    #[test]
    fn username_is_escaped() {
        let a = DigestAnswer {
            username: "a\"b",
            ..ANSWER
        };
        let v = authorization_value(&challenge("Digest realm=\"x\", nonce=\"n\", qop=auth"), &a)
            .unwrap();
        assert!(v.starts_with("Digest username=\"a\\\"b\""), "{v}");
    }
}
