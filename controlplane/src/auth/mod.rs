//! SIP digest authentication (RFC 3261 §22, RFC 7616 with `qop=auth`, RFC 8760 algorithms),
//! sans-IO: FEATURES SIG-01 and SEC-14.
//!
//! # What it owns
//! - Challenges: [`DigestAuth::challenge_headers`] gives the `WWW-Authenticate` (401) or
//!   `Proxy-Authenticate` (407) values, one per configured algorithm in the configured order
//!   (default `MD5` first, because many clients read only the first challenge, then
//!   `SHA-256`). They do not depend on who is asking: a known and an unknown user get the
//!   same headers, differing only in nonce bytes (SEC-14).
//! - Stateless nonces ([`nonce`]): issue time + counter + caller randomness + a truncated
//!   HMAC-SHA256 over them, the algorithm and the realm. Any nonce voxgate minted with the
//!   same secret verifies without per-nonce state, also after a restart.
//! - Verification: [`DigestAuth::verify`] checks one request's `Authorization` or
//!   `Proxy-Authorization` and returns an [`AuthOutcome`]; `Stale` means "credentials were
//!   right but the nonce expired (or its replay history was lost): re-challenge with
//!   `stale=true`".
//! - Nonce-count replay protection ([`replay`]): the highest `nc` per nonce, in a table
//!   bounded by [`DigestConfig::max_tracked_nonces`].
//! - The pure digest functions [`compute_response`] and [`ha1`], and [`client`], which
//!   answers a challenge (for voxgate as a client toward trunks, and for tests).
//!
//! # Decisions
//! - **Time** is `now_unix: u64`, wall-clock seconds since the Unix epoch, passed by the
//!   driver to the calls that need it. Wall-clock (not `Instant`) because a nonce carries its
//!   issue time and must stay checkable by a restarted process. A nonce is valid while
//!   `now < issued + nonce_ttl`; one "from the future" (after a clock step backwards) is
//!   accepted, because its MAC proves voxgate issued it, and lives longer by the step.
//! - **Randomness** comes in as the `rng: u64` argument of `challenge_headers`; it should be
//!   unpredictable. Uniqueness does not depend on it (a counter is mixed in).
//! - **`qop=auth` is required.** RFC 2069-style answers without `qop`, `cnonce` and `nc`
//!   have no replay protection and are refused ([`AuthFailure::UnsupportedQop`]).
//!   `auth-int` and the `-sess` algorithms are not offered and not accepted.
//! - **Header selection** (RFC 3261 §22.3, RFC 4475 regaut01): header fields with another
//!   scheme, or `Digest` for another realm, are ignored; if none is left the outcome is
//!   [`AuthOutcome::NoCredentials`] (challenge). A `Digest` field for this realm that does
//!   not parse is [`AuthFailure::Malformed`]. The first field for this realm is the one
//!   checked.
//! - **The request's own method and Request-URI** enter the digest; the `uri=` parameter
//!   must equal the Request-URI (byte-equal, or equal once both are parsed as URIs).
//! - **Equal work for unknown users** (SEC-14): every verification past the user-independent
//!   syntax checks computes one HA1 and one response — against a dummy password when the
//!   user is unknown (or has no HA1 for the chosen algorithm), against a throwaway input when
//!   the HA1 is stored — then one constant-time comparison. Unknown user and wrong password
//!   differ only in the [`AuthFailure`] reason, meant for metrics and logs, never for the
//!   wire: the caller answers both the same way (403).
//! - **Replay** of a `(nonce, nc)` already seen gives [`AuthFailure::Replay`]. A nonce whose
//!   history was evicted from the bounded table gives `Stale` instead of trusting it.
//! - Secrets (passwords, HA1, the nonce key) never appear in `Debug` output or logs.
//!
//! # What it does not do
//! No user table (the caller's `lookup` closure maps an auth username to a [`Credential`];
//! auth ids may differ from extension numbers, SIG-01), no decision whether an authenticated
//! user may act for the From/To AOR, no status codes (the caller answers 401/407/403), no
//! bans or counters (the caller counts [`AuthFailure::as_str`] into
//! `voxgate_auth_failures_total{reason}`), no clock and no randomness of its own.
//! Nonce-count history is per process: nodes sharing a secret accept each other's nonces
//! but do not share replay history.

pub mod client;
mod credentials;
mod digest;
mod nonce;
mod replay;

use std::borrow::Cow;
use std::fmt;
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use subtle::ConstantTimeEq;

use crate::sip::{AuthParams, HeaderName, Message, Uri};

pub use credentials::{Credential, Ha1Error, Ha1Set};
pub use digest::{compute_response, ha1, Algorithm, ResponseParams};

use nonce::{NonceId, NonceKey};
use replay::{NcCheck, NonceCounts};

/// Digest settings (FEATURES §18 `auth.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestConfig {
    /// The realm in every challenge (usually the SIP domain). No `"`, `\` or control
    /// characters, so it needs no escaping inside a quoted string.
    pub realm: String,
    /// Offered algorithms in challenge order (`auth.algorithms`). Non-empty, no duplicates.
    /// A response using an algorithm not listed here is refused.
    pub algorithms: Vec<Algorithm>,
    /// How long a nonce is accepted (`auth.nonce_ttl`, SIG-01: 300 s). Whole seconds;
    /// at least 1 s.
    pub nonce_ttl: Duration,
    /// Bound of the nonce-count table (entries, about 50 bytes each). When it is full the
    /// oldest nonce's history is dropped and that nonce is answered `Stale` from then on.
    pub max_tracked_nonces: usize,
}

impl Default for DigestConfig {
    fn default() -> DigestConfig {
        DigestConfig {
            realm: "voxgate".to_owned(),
            // Issue 3: MD5 first for clients that read only the first challenge.
            algorithms: vec![Algorithm::Md5, Algorithm::Sha256],
            // FEATURES SIG-01 / §18 auth.nonce_ttl.
            nonce_ttl: Duration::from_secs(300),
            // ~5 MB; more than 300 s of fresh nonces at 300 authentications per second.
            max_tracked_nonces: 100_000,
        }
    }
}

/// Why a [`DigestConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestConfigError {
    #[error("auth.algorithms must name at least one algorithm")]
    NoAlgorithms,
    #[error("auth.algorithms lists {0} twice")]
    DuplicateAlgorithm(Algorithm),
    #[error("the digest realm must not be empty")]
    EmptyRealm,
    #[error("the digest realm must not contain '\"', '\\' or control characters")]
    RealmCharacter,
    #[error("auth.nonce_ttl must be at least one second")]
    NonceTtlTooShort,
    #[error("the nonce-count table needs room for at least one nonce")]
    NoTrackedNonces,
}

impl DigestConfig {
    pub fn validate(&self) -> Result<(), DigestConfigError> {
        if self.algorithms.is_empty() {
            return Err(DigestConfigError::NoAlgorithms);
        }
        for (i, a) in self.algorithms.iter().enumerate() {
            if self.algorithms[..i].contains(a) {
                return Err(DigestConfigError::DuplicateAlgorithm(*a));
            }
        }
        if self.realm.is_empty() {
            return Err(DigestConfigError::EmptyRealm);
        }
        if self
            .realm
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control())
        {
            return Err(DigestConfigError::RealmCharacter);
        }
        if self.nonce_ttl.as_secs() == 0 {
            return Err(DigestConfigError::NonceTtlTooShort);
        }
        if self.max_tracked_nonces == 0 {
            return Err(DigestConfigError::NoTrackedNonces);
        }
        Ok(())
    }
}

/// Why credentials were refused. The reason is for metrics and logs only: the caller must
/// answer every variant the same way on the wire (SEC-14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    #[error("unknown auth username")]
    UnknownUser,
    #[error("wrong digest response")]
    WrongResponse,
    /// The user exists but has only HA1 values for other algorithms than the one chosen.
    #[error("no stored HA1 for the chosen algorithm")]
    NoCredentialForAlgorithm,
    #[error("nonce not issued by this server for this realm and algorithm")]
    BadNonce,
    #[error("nonce count not higher than one already seen for this nonce")]
    Replay,
    #[error("algorithm not offered")]
    UnsupportedAlgorithm,
    #[error("qop missing or not auth")]
    UnsupportedQop,
    #[error("malformed digest credentials")]
    Malformed,
    #[error("digest uri does not match the Request-URI")]
    UriMismatch,
}

impl AuthFailure {
    pub const ALL: [AuthFailure; 9] = [
        AuthFailure::UnknownUser,
        AuthFailure::WrongResponse,
        AuthFailure::NoCredentialForAlgorithm,
        AuthFailure::BadNonce,
        AuthFailure::Replay,
        AuthFailure::UnsupportedAlgorithm,
        AuthFailure::UnsupportedQop,
        AuthFailure::Malformed,
        AuthFailure::UriMismatch,
    ];

    /// The `reason` label of `voxgate_auth_failures_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::UnknownUser => "unknown_user",
            AuthFailure::WrongResponse => "wrong_password",
            AuthFailure::NoCredentialForAlgorithm => "no_ha1_for_algorithm",
            AuthFailure::BadNonce => "bad_nonce",
            AuthFailure::Replay => "replay",
            AuthFailure::UnsupportedAlgorithm => "unsupported_algorithm",
            AuthFailure::UnsupportedQop => "unsupported_qop",
            AuthFailure::Malformed => "malformed",
            AuthFailure::UriMismatch => "uri_mismatch",
        }
    }
}

/// Proof that a request carried valid credentials: only [`DigestAuth::verify`] makes one,
/// so work that must follow authentication can demand it (STYLE §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    username: String,
    algorithm: Algorithm,
}

impl Authenticated {
    /// The auth username (auth id), which may differ from the extension number.
    pub fn username(&self) -> &str {
        &self.username
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// The result of checking one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum AuthOutcome {
    Authenticated(Authenticated),
    /// No `Digest` credentials for this realm: challenge (401/407).
    NoCredentials,
    /// Correct credentials on an expired nonce, or on a nonce whose replay history was
    /// evicted: challenge again with `stale=true`.
    Stale,
    /// Refused: answer 403 (the reason is for metrics and logs only).
    Failed(AuthFailure),
}

/// The digest verifier and challenge maker for one realm.
pub struct DigestAuth {
    config: DigestConfig,
    ttl_secs: u64,
    key: NonceKey,
    counter: u32,
    counts: NonceCounts,
}

impl fmt::Debug for DigestAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestAuth")
            .field("config", &self.config)
            .field("tracked_nonces", &self.counts.len())
            .finish_non_exhaustive()
    }
}

/// Password used for unknown users so they cost the same work as known ones.
const DUMMY_PASSWORD: &[u8] = b"voxgate-dummy-password-for-unknown-users";

impl DigestAuth {
    /// `secret` keys the nonce MAC. Keep it across restarts (and share it between nodes) for
    /// nonces to stay valid there; a new secret just makes clients re-authenticate.
    pub fn new(config: DigestConfig, secret: [u8; 32]) -> Result<DigestAuth, DigestConfigError> {
        config.validate()?;
        Ok(DigestAuth {
            ttl_secs: config.nonce_ttl.as_secs(),
            key: NonceKey::new(&secret, config.realm.as_bytes()),
            counter: 0,
            counts: NonceCounts::new(config.max_tracked_nonces),
            config,
        })
    }

    pub fn config(&self) -> &DigestConfig {
        &self.config
    }

    /// Entries in the nonce-count table (always ≤ `max_tracked_nonces`).
    pub fn tracked_nonces(&self) -> usize {
        self.counts.len()
    }

    /// Distrust every nonce issued before `unix_secs`: call once at start-up with the start
    /// time. A restarted process has no replay history, so without this a request captured
    /// in the last `nonce_ttl` could be replayed once after a restart; with it, clients get
    /// one `stale=true` re-challenge instead.
    pub fn forget_nonces_before(&mut self, unix_secs: u64) {
        self.counts.forget_before(unix_secs);
    }

    /// The challenge values, one per configured algorithm in order, e.g.
    /// `Digest realm="pbx.example.test", nonce="…", algorithm=MD5, qop="auth"` with
    /// `, stale=true` appended when `stale`. Use them as `WWW-Authenticate` (401) or
    /// `Proxy-Authenticate` (407) header values. `rng` should be random.
    pub fn challenge_headers(&mut self, now_unix: u64, stale: bool, rng: u64) -> Vec<String> {
        self.counter = self.counter.wrapping_add(1);
        let id = NonceId {
            issued: now_unix,
            counter: self.counter,
            salt: rng,
        };
        self.config
            .algorithms
            .iter()
            .map(|&a| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{}\", algorithm={}, qop=\"auth\"{}",
                    self.config.realm,
                    self.key.mint(id, a),
                    a.as_str(),
                    if stale { ", stale=true" } else { "" }
                )
            })
            .collect()
    }

    /// Check the credentials of `request` in header fields `header` (`Authorization` for
    /// 401 challenges, `Proxy-Authorization` for 407). `lookup` maps an auth username to its
    /// credential; it is called at most once, and not at all when the credentials fail a
    /// user-independent check first (bad syntax, nonce, algorithm, qop or uri).
    pub fn verify<F>(
        &mut self,
        now_unix: u64,
        request: &Message,
        header: HeaderName,
        lookup: F,
    ) -> AuthOutcome
    where
        F: FnOnce(&str) -> Option<Credential>,
    {
        match self.check(now_unix, request, header, lookup) {
            Ok(outcome) => outcome,
            Err(failure) => AuthOutcome::Failed(failure),
        }
    }

    fn check<F>(
        &mut self,
        now_unix: u64,
        request: &Message,
        header: HeaderName,
        lookup: F,
    ) -> Result<AuthOutcome, AuthFailure>
    where
        F: FnOnce(&str) -> Option<Credential>,
    {
        let line = request.request_line().ok_or(AuthFailure::Malformed)?;
        let Some(creds) = self.select(request, header)? else {
            return Ok(AuthOutcome::NoCredentials);
        };
        let field = |name: &str| creds.unquoted(name).ok_or(AuthFailure::Malformed);
        let username = unescape_quoted(field("username")?);
        let nonce = field("nonce")?;
        let uri = field("uri")?;
        let response = field("response")?;
        let algorithm = match creds.unquoted("algorithm") {
            // RFC 7616 §3.4: an absent algorithm means MD5.
            None => Algorithm::Md5,
            Some(t) => Algorithm::from_token(t).ok_or(AuthFailure::UnsupportedAlgorithm)?,
        };
        if !self.config.algorithms.contains(&algorithm) {
            return Err(AuthFailure::UnsupportedAlgorithm);
        }
        let qop = creds.unquoted("qop").ok_or(AuthFailure::UnsupportedQop)?;
        if !qop.eq_ignore_ascii_case(b"auth") {
            return Err(AuthFailure::UnsupportedQop);
        }
        let nc_raw = field("nc")?;
        let nc = parse_nc(nc_raw).ok_or(AuthFailure::Malformed)?;
        let cnonce = field("cnonce")?;
        if cnonce.is_empty() {
            return Err(AuthFailure::Malformed);
        }
        if !uri_matches(uri, &line.uri) {
            return Err(AuthFailure::UriMismatch);
        }
        let id = self
            .key
            .open(nonce, algorithm)
            .ok_or(AuthFailure::BadNonce)?;
        let expired = now_unix >= id.issued.saturating_add(self.ttl_secs);

        // From here on the same work is done whoever the user is (SEC-14).
        let credential = std::str::from_utf8(&username).ok().and_then(lookup);
        let realm = self.config.realm.as_bytes();
        let dummy_ha1 = |user: &[u8]| ha1(algorithm, user, realm, DUMMY_PASSWORD);
        let (ha1_hex, known) = match &credential {
            Some(Credential::Password(p)) => {
                (ha1(algorithm, &username, realm, p.as_bytes()), Ok(()))
            }
            Some(Credential::Ha1(set)) => match set.get(algorithm) {
                Some(h) => {
                    // Throwaway hash so stored-HA1 users cost what password users cost.
                    black_box(dummy_ha1(&username));
                    (h.to_owned(), Ok(()))
                }
                None => (
                    dummy_ha1(&username),
                    Err(AuthFailure::NoCredentialForAlgorithm),
                ),
            },
            None => (dummy_ha1(&username), Err(AuthFailure::UnknownUser)),
        };
        let expected = compute_response(
            algorithm,
            &ha1_hex,
            &ResponseParams {
                method: line.method.as_bytes(),
                uri,
                nonce,
                nc: nc_raw,
                cnonce,
                qop,
            },
        );
        let given = response.to_ascii_lowercase();
        let matches = bool::from(expected.as_bytes().ct_eq(&given));
        known?;
        if !matches {
            return Err(AuthFailure::WrongResponse);
        }
        if expired {
            return Ok(AuthOutcome::Stale);
        }
        let oldest_valid = now_unix.saturating_sub(self.ttl_secs - 1);
        match self.counts.check(id, nc, oldest_valid) {
            NcCheck::Fresh => Ok(AuthOutcome::Authenticated(Authenticated {
                username: String::from_utf8(username.into_owned())
                    .expect("a looked-up username is UTF-8"),
                algorithm,
            })),
            NcCheck::Replay => Err(AuthFailure::Replay),
            NcCheck::Forgotten => Ok(AuthOutcome::Stale),
        }
    }

    /// The first `Digest` credentials for this realm, ignoring other schemes and realms.
    fn select(
        &self,
        request: &Message,
        header: HeaderName,
    ) -> Result<Option<AuthParams>, AuthFailure> {
        for h in request.all(header) {
            match AuthParams::parse(&h.value) {
                Ok(p) => {
                    if p.is_digest() && p.unquoted("realm") == Some(self.config.realm.as_bytes()) {
                        return Ok(Some(p));
                    }
                }
                // Unparseable: a problem only if it claims to be Digest (for any realm: the
                // realm cannot be trusted from a value that does not parse).
                Err(_) => {
                    let scheme = h
                        .value
                        .split(|b| b.is_ascii_whitespace())
                        .find(|s| !s.is_empty());
                    if scheme.is_some_and(|s| s.eq_ignore_ascii_case(b"Digest")) {
                        return Err(AuthFailure::Malformed);
                    }
                }
            }
        }
        Ok(None)
    }
}

/// Undo quoted-pair escapes (`\"` → `"`, RFC 3261 §25.1) in a quoted-string's content.
fn unescape_quoted(v: &[u8]) -> Cow<'_, [u8]> {
    if !v.contains(&b'\\') {
        return Cow::Borrowed(v);
    }
    let mut out = Vec::with_capacity(v.len());
    let mut it = v.iter();
    while let Some(&b) = it.next() {
        if b == b'\\' {
            if let Some(&n) = it.next() {
                out.push(n);
            }
        } else {
            out.push(b);
        }
    }
    Cow::Owned(out)
}

/// `nc` is exactly 8 hex digits (RFC 7616 §3.4) and never 0 (counting starts at 1).
fn parse_nc(v: &[u8]) -> Option<u32> {
    if v.len() != 8 || !v.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let s = std::str::from_utf8(v).ok()?;
    u32::from_str_radix(s, 16).ok().filter(|&n| n != 0)
}

fn uri_matches(digest_uri: &[u8], request_uri: &Bytes) -> bool {
    if digest_uri == &request_uri[..] {
        return true;
    }
    match (
        Uri::parse(&Bytes::copy_from_slice(digest_uri)),
        Uri::parse(request_uri),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nc_syntax() {
        assert_eq!(parse_nc(b"00000001"), Some(1));
        assert_eq!(parse_nc(b"0000000a"), Some(10));
        assert_eq!(parse_nc(b"FFFFFFFF"), Some(u32::MAX));
        assert_eq!(parse_nc(b"00000000"), None);
        assert_eq!(parse_nc(b"1"), None);
        assert_eq!(parse_nc(b"+0000001"), None);
        assert_eq!(parse_nc(b"000000001"), None);
    }

    #[test]
    fn quoted_pairs() {
        assert_eq!(&*unescape_quoted(br#"a\"b\\c"#), br#"a"b\c"#);
        assert_eq!(&*unescape_quoted(b"plain"), b"plain");
        assert_eq!(&*unescape_quoted(b"trailing\\"), b"trailing");
    }

    #[test]
    fn config_validation() {
        assert_eq!(DigestConfig::default().validate(), Ok(()));
        let bad = |f: fn(&mut DigestConfig)| {
            let mut c = DigestConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(
            bad(|c| c.algorithms.clear()),
            DigestConfigError::NoAlgorithms
        );
        assert_eq!(
            bad(|c| c.algorithms.push(Algorithm::Md5)),
            DigestConfigError::DuplicateAlgorithm(Algorithm::Md5)
        );
        assert_eq!(bad(|c| c.realm.clear()), DigestConfigError::EmptyRealm);
        assert_eq!(
            bad(|c| c.realm = "a\"b".into()),
            DigestConfigError::RealmCharacter
        );
        assert_eq!(
            bad(|c| c.nonce_ttl = Duration::from_millis(999)),
            DigestConfigError::NonceTtlTooShort
        );
        assert_eq!(
            bad(|c| c.max_tracked_nonces = 0),
            DigestConfigError::NoTrackedNonces
        );
    }

    #[test]
    fn failure_labels_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for f in AuthFailure::ALL {
            let l = f.as_str();
            assert!(
                l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{l}"
            );
            assert!(seen.insert(l), "{l}");
        }
    }
}
