//! REGISTER handling and digest authentication at the endpoint (SIG-01, SIG-15, SEC-03,
//! SEC-14): challenge, verify, tie the authenticated user to the AOR, check where it
//! registers from, then hand the request to the [`crate::registrar::Registrar`].
//!
//! The registrar itself never sees an unauthenticated request; this module is the only way
//! in, and it takes the authentication outcome as a value (`Authenticated` can only be
//! made by [`crate::auth::DigestAuth::verify`]).

use std::time::Instant;

use crate::auth::{AuthOutcome, Authenticated};
use crate::registrar::Flow;
use crate::sip::{unescape, HeaderName, Message, Uri};

use super::{Endpoint, Peer};

impl Endpoint {
    /// Answer a REGISTER.
    pub(super) fn register(&mut self, now: Instant, peer: Peer, msg: &Message) -> Message {
        let index = match self.authenticate(now, peer, msg, HeaderName::Authorization) {
            Ok(index) => index,
            Err(response) => return *response,
        };
        // The authenticated user may register its own extension only.
        let aor = match msg.to().ok().and_then(|to| aor_user(&to.uri)) {
            Some(aor) => aor,
            None => return self.refuse(msg, "Not An Extension Of This Domain"),
        };
        let user = &self.config.users[index];
        if aor != user.number {
            return self.refuse(msg, "Credentials Do Not Match The AOR");
        }
        let ip = peer.remote.ip();
        if !user.networks.is_empty() && !user.networks.iter().any(|n| n.contains(ip)) {
            tracing::info!(extension = %user.number, source = %ip, "registration from a network the extension may not use");
            return self.refuse(msg, "Not Allowed From This Network");
        }
        let flow = Flow {
            transport: peer.transport,
            remote: peer.remote,
            local: peer.local,
            conn: peer.conn,
        };
        let outcome = self.registrar.handle_register(now, flow, &aor, msg);
        let tag = self.new_tag();
        outcome
            .response(msg, Some(&tag))
            .header(HeaderName::Server, self.config.user_agent.clone())
            .build()
    }

    /// Digest authentication of a request: `Ok(index)` of the user in `config.users` when
    /// its credentials check out,
    /// otherwise the response to send (401/407 challenge, or 403). Known and unknown users
    /// get the same challenge and the same 403 (SEC-14); failures count towards a ban
    /// (SEC-03).
    pub(super) fn authenticate(
        &mut self,
        now: Instant,
        peer: Peer,
        msg: &Message,
        header: HeaderName,
    ) -> Result<usize, Box<Message>> {
        let now_unix = self.now_unix(now);
        let (users, index) = (&self.config.users, &self.users_by_auth_id);
        let outcome = self.auth.verify(now_unix, msg, header, |auth_id| {
            index.get(auth_id).map(|&i| users[i].credential.clone())
        });
        match outcome {
            AuthOutcome::Authenticated(proof) => match self.user_of(&proof) {
                Some(i) => {
                    self.security
                        .record_auth_success(now, peer.remote.ip(), proof.username());
                    Ok(i)
                }
                // The user left the configuration between lookup and here: cannot happen
                // within one call, but refuse rather than trust a stale proof.
                None => Err(Box::new(self.refuse(msg, "Forbidden"))),
            },
            AuthOutcome::NoCredentials => Err(Box::new(self.challenge(now, msg, header, false))),
            AuthOutcome::Stale => Err(Box::new(self.challenge(now, msg, header, true))),
            AuthOutcome::Failed(reason) => {
                self.stats.count_auth_failure(reason);
                if reason == crate::auth::AuthFailure::UriMismatch {
                    self.alg_sign(now, peer, super::alg::AlgSign::DigestUri);
                }
                let account = credentials_username(msg, header).unwrap_or_default();
                let ip = peer.remote.ip();
                tracing::info!(source = %ip, reason = reason.as_str(), "authentication failed");
                if let Some(ban) = self.security.record_auth_failure(now, ip, &account) {
                    tracing::warn!(source = %ban.ip, reason = ban.reason.as_str(), "source banned");
                }
                Err(Box::new(self.refuse(msg, "Forbidden")))
            }
        }
    }

    fn user_of(&self, proof: &Authenticated) -> Option<usize> {
        self.users_by_auth_id.get(proof.username()).copied()
    }

    /// 401 (REGISTER) or 407 (anything else) with one challenge per offered algorithm.
    fn challenge(
        &mut self,
        now: Instant,
        msg: &Message,
        header: HeaderName,
        stale: bool,
    ) -> Message {
        let (code, challenge_header) = if header == HeaderName::Authorization {
            (401, HeaderName::WwwAuthenticate)
        } else {
            (407, HeaderName::ProxyAuthenticate)
        };
        let now_unix = self.now_unix(now);
        let rng = self.next_random();
        let challenges = self.auth.challenge_headers(now_unix, stale, rng);
        let mut b = self.response(msg, code);
        for c in challenges {
            b = b.header(challenge_header, c);
        }
        b.build()
    }

    fn refuse(&mut self, msg: &Message, reason: &'static str) -> Message {
        let tag = self.new_tag();
        crate::sip::ResponseBuilder::new(msg, 403, reason, Some(&tag))
            .header(HeaderName::Server, self.config.user_agent.clone())
            .build()
    }
}

/// The extension an AOR names: the unescaped user part of a sip/sips URI.
fn aor_user(uri: &Uri) -> Option<String> {
    let user = uri.as_sip()?.user.as_ref()?;
    String::from_utf8(unescape(user).into_owned()).ok()
}

/// The username a request's credentials claim, for counting failures per account.
fn credentials_username(msg: &Message, header: HeaderName) -> Option<String> {
    let creds = msg.auth(header).ok()?;
    let digest = creds.iter().find(|c| c.is_digest())?;
    Some(String::from_utf8_lossy(digest.unquoted("username")?).into_owned())
}
