//! rtpengine's "ng" control protocol (FEATURES.md MED-25): how Kamailio's and OpenSIPS'
//! `rtpengine` modules drive a media relay, spoken so that they can drive voxgate unchanged.
//!
//! # What it owns
//! - [`bencode`]: the dictionary codec, bounded (nesting, size) and strict.
//! - [`frame`]: `COOKIE SP bencoded-dict` per UDP datagram, replies carrying the request's
//!   cookie, and the [`frame::ReplyCache`] that answers retransmissions from memory.
//! - [`command`]: typed requests (`ping`, `offer`, `answer`, `delete`, `query`, `list` and the
//!   common flags), replies in rtpengine's shapes, and [`command::NgError`] whose text is
//!   rtpengine's `error-reason` for the same fault.
//! - [`rewrite`]: the pure SDP rewrite of `offer`/`answer` onto voxgate's media address and
//!   allocated ports.
//! - [`NgServer`]: one datagram in, at most one datagram out; the call state behind the
//!   commands is a [`CallControl`] the caller supplies.
//!
//! # What it does not do
//! No sockets, threads or clocks (time comes in as an argument), no port allocation, no
//! relay. The listener on `[ng] listen` and the `CallControl` backed by the media workers
//! are issue 4 step 6 ("Control"); until that lands only tests call this module, hence the
//! `dead_code` allowance below.
//!
//! # Sources followed
//! rtpengine's `docs/ng_control_protocol.md` (message format, commands, keys, flags, the
//! `query` reply), `daemon/control_ng.c` (framing, cookie handling, error reasons),
//! `daemon/call_interfaces.c` (`offer`/`answer`/`delete`/`query`/`list` checks and their
//! order) and `daemon/cookie_cache.c` (two-generation reply cache), plus the replies of
//! rtpengine 10.5.3.5 (Debian 12 `rtpengine-daemon`) on loopback, which
//! `tests/ng_conformance.rs` keeps checking.

#![allow(
    dead_code,
    reason = "wired by issue 4 step 6 (the ng listener); until then only tests call it"
)]

pub mod bencode;
pub mod command;
pub mod frame;
pub mod rewrite;

use std::time::Instant;

use bencode::Dict;
use command::{Delete, List, NgError, OfferAnswer, Query, Request, Response};
use frame::ReplyCache;

/// The call state the ng commands act on: implemented by the media relay (and by fakes in
/// tests). Each method returns the reply or the error rtpengine would give.
pub trait CallControl {
    fn offer(&mut self, request: &OfferAnswer) -> Result<Response, NgError>;
    fn answer(&mut self, request: &OfferAnswer) -> Result<Response, NgError>;
    /// An unknown call is `Err(NgError::CallNotFound)`; [`NgServer`] turns it into a warning
    /// unless the request carries the `fatal` flag.
    fn delete(&mut self, request: &Delete) -> Result<Response, NgError>;
    fn query(&mut self, request: &Query) -> Result<Response, NgError>;
    fn list(&mut self, request: &List) -> Result<Response, NgError>;
}

/// Counters of what the server did, for the binary to export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NgStats {
    pub requests: u64,
    /// Answered from the reply cache.
    pub retransmissions: u64,
    /// Replies with `result: error`.
    pub errors: u64,
    /// Dropped without a reply (no cookie).
    pub dropped: u64,
}

/// The ng protocol engine: framing, decoding, dispatch, reply caching.
#[derive(Debug, Default)]
pub struct NgServer {
    cache: ReplyCache,
    stats: NgStats,
}

impl NgServer {
    pub fn new(cache: ReplyCache) -> Self {
        Self {
            cache,
            stats: NgStats::default(),
        }
    }

    pub fn stats(&self) -> NgStats {
        self.stats
    }

    /// Handles one received datagram; returns the reply datagram, or `None` when the
    /// datagram has no cookie to answer with.
    pub fn handle_datagram(
        &mut self,
        datagram: &[u8],
        now: Instant,
        control: &mut impl CallControl,
    ) -> Option<Vec<u8>> {
        let Some(frame) = frame::split(datagram) else {
            self.stats.dropped += 1;
            return None;
        };
        if let Some(cached) = self.cache.get(frame.cookie, now) {
            self.stats.retransmissions += 1;
            return Some(cached.to_vec());
        }
        self.stats.requests += 1;
        let body = match Request::decode(frame.payload).and_then(|r| dispatch(&r, control)) {
            Ok(response) => response.to_dict(),
            Err(error) => {
                self.stats.errors += 1;
                error.to_dict()
            }
        };
        let reply = frame::reply(frame.cookie, &body);
        self.cache.insert(frame.cookie, reply.clone(), now);
        Some(reply)
    }
}

/// Runs one decoded request against `control`.
pub fn dispatch(request: &Request, control: &mut impl CallControl) -> Result<Response, NgError> {
    match request {
        Request::Ping => Ok(Response::Pong),
        Request::Offer(r) => control.offer(r),
        Request::Answer(r) => control.answer(r),
        Request::Delete(r) => match control.delete(r) {
            Err(NgError::CallNotFound) if !r.fatal => Ok(Response::Deleted {
                stats: None,
                warning: Some(NgError::CallNotFound.to_string()),
            }),
            other => other,
        },
        Request::Query(r) => control.query(r),
        Request::List(r) => control.list(r),
    }
}

/// Encodes a reply dictionary as bytes (without cookie), e.g. for logs and tests.
pub fn encode_dict(dict: &Dict) -> Vec<u8> {
    bencode::Value::Dict(dict.clone()).to_bytes()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A control with no calls, counting how often it is asked.
    #[derive(Default)]
    struct NoCalls {
        offers: usize,
    }

    impl CallControl for NoCalls {
        fn offer(&mut self, request: &OfferAnswer) -> Result<Response, NgError> {
            self.offers += 1;
            let sdp = request.parse_sdp()?;
            Ok(Response::Sdp(sdp.to_bytes()))
        }
        fn answer(&mut self, _: &OfferAnswer) -> Result<Response, NgError> {
            Err(NgError::UnknownCall)
        }
        fn delete(&mut self, _: &Delete) -> Result<Response, NgError> {
            Err(NgError::CallNotFound)
        }
        fn query(&mut self, _: &Query) -> Result<Response, NgError> {
            Err(NgError::UnknownCall)
        }
        fn list(&mut self, _: &List) -> Result<Response, NgError> {
            Ok(Response::List(vec![]))
        }
    }

    #[allow(clippy::disallowed_methods)] // any instant will do: tests add virtual time to it
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn answers_with_the_cookie_and_rtpengine_replies() {
        let mut server = NgServer::default();
        let mut calls = NoCalls::default();
        let now = t0();
        let mut ask = |wire: &[u8]| server.handle_datagram(wire, now, &mut calls);
        // Exact replies rtpengine 10.5 sent for the same datagrams.
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (b"c1 d7:command4:pinge", Some(b"c1 d6:result4:ponge")),
            (
                b"c7 d7:command6:delete7:call-id4:nope8:from-tag3:ft1e",
                Some(b"c7 d7:warning38:Call-ID not found or tags didn't match6:result2:oke"),
            ),
            (
                b"c8 d7:command5:query7:call-id4:nopee",
                Some(b"c8 d6:result5:error12:error-reason15:Unknown call-ide"),
            ),
            (
                b"c9 d7:command",
                Some(b"c9 d6:result5:error12:error-reason35:Could not decode bencode dictionarye"),
            ),
            (
                b"c15 d7:command6:delete7:call-id4:nope8:from-tag3:ft15:flagsl5:fatalee",
                Some(b"c15 d6:result5:error12:error-reason38:Call-ID not found or tags didn't matche"),
            ),
            (
                b"c17 ",
                Some(b"c17 d6:result5:error12:error-reason25:Invalid data (no payload)e"),
            ),
            (b"c5 d7:command4:liste", Some(b"c5 d5:callsle6:result2:oke")),
            (b"nocookie", None),
            (b" d7:command4:pinge", None),
        ];
        for (wire, expected) in cases {
            assert_eq!(
                ask(wire).as_deref(),
                *expected,
                "{}",
                String::from_utf8_lossy(wire)
            );
        }
        assert_eq!(server.stats().dropped, 2);
        assert_eq!(server.stats().errors, 4);
    }

    #[test]
    fn retransmission_is_answered_from_the_cache_without_running_again() {
        let mut server = NgServer::new(ReplyCache::new(Duration::from_secs(30), 100));
        let mut calls = NoCalls::default();
        let now = t0();
        let offer = b"k1 d7:command5:offer7:call-id1:c8:from-tag1:f3:sdp15:v=0\r\ns=-\r\nt=0 0e";
        let first = server.handle_datagram(offer, now, &mut calls);
        assert!(first
            .as_deref()
            .is_some_and(|r| r.starts_with(b"k1 d3:sdp")));
        // Same cookie, even with another body: the first reply, and no second offer.
        let again = server.handle_datagram(
            b"k1 d7:command4:pinge",
            now + Duration::from_secs(1),
            &mut calls,
        );
        assert_eq!(again, first);
        assert_eq!(calls.offers, 1);
        assert_eq!(server.stats().retransmissions, 1);
        // Once the cache forgets it, the cookie is a new request.
        let later = server.handle_datagram(
            b"k1 d7:command4:pinge",
            now + Duration::from_secs(120),
            &mut calls,
        );
        assert_eq!(later.as_deref(), Some(&b"k1 d6:result4:ponge"[..]));
    }

    #[test]
    fn bad_sdp_is_failed_to_parse() {
        let mut server = NgServer::default();
        let reply = server.handle_datagram(
            b"c12 d7:command5:offer7:call-id5:call28:from-tag3:ft13:sdp7:garbagee",
            t0(),
            &mut NoCalls::default(),
        );
        assert_eq!(
            reply.as_deref(),
            Some(&b"c12 d6:result5:error12:error-reason19:Failed to parse SDPe"[..])
        );
    }
}
