//! The SDP rewrite of `offer`/`answer`: a pure function from the received SDP, the request's
//! flags and the media ports voxgate allocated, to the SDP voxgate hands back.
//!
//! What it does, following what rtpengine 10.5 returned for the same offers on loopback:
//! - every `m=` port becomes the allocated RTP port (a port of 0, a rejected stream, stays 0);
//! - the session-level `c=` (and every media-level `c=`) becomes the advertised address, so
//!   the far end sends to the relay; the `o=` address changes only with `replace: [origin]`.
//!   The advertised address is voxgate's media address, or the request's `media address`
//!   when one is given: rtpengine 10.5 writes that into `c=` and `o=` (observed on loopback;
//!   its documentation describes the key as overriding the addresses of the SDP's sender);
//! - `a=rtcp` names the allocated RTCP port (or the RTP port under rtcp-mux);
//! - ICE attributes are removed: voxgate does not run ICE, and a candidate left in place
//!   would let the peers bypass the relay. `ICE=force`, `force-relay` and `optional` ask
//!   voxgate to be an ICE candidate, which it cannot be yet, so they are an error;
//! - `transport protocol` rewrites the `m=` profile; `a=crypto` lines are replaced by the
//!   ones the caller supplies (voxgate's own SDES keys), or removed for a plain RTP profile.
//!
//! What it leaves alone: codecs, `a=ptime`, direction attributes, and every other line.
//! `direction` and `record call` do not change the SDP.

use std::net::IpAddr;

use voxgate_controlplane::sdp::{Crypto, Rtcp, Sdp};

use super::command::{Flags, IceMode, TransportOverride};

/// The local ports and keys voxgate allocated for one media section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaAllocation {
    pub rtp_port: u16,
    /// `None` under rtcp-mux (RTCP on the RTP port).
    pub rtcp_port: Option<u16>,
    /// voxgate's SDES offer/answer for this leg; empty for plain RTP.
    pub crypto: Vec<Crypto>,
}

/// Where voxgate receives media for the leg the rewritten SDP is sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub address: IpAddr,
    /// One entry per `m=` section, in order.
    pub media: Vec<MediaAllocation>,
}

/// Why an SDP could not be rewritten (all answered `Error rewriting SDP`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RewriteError {
    #[error("the SDP has no media sections")]
    NoMedia,
    #[error("{allocated} media allocations for {media} media sections")]
    AllocationMismatch { media: usize, allocated: usize },
    #[error("media section {index} needs SRTP keys but none were allocated")]
    MissingCrypto { index: usize },
    #[error("ICE mode {mode:?} is not supported (voxgate is not an ICE agent)")]
    UnsupportedIce { mode: IceMode },
}

/// Rewrites `sdp` so that media flows through voxgate at `allocation`.
pub fn rewrite_sdp(sdp: &Sdp, flags: &Flags, allocation: &Allocation) -> Result<Sdp, RewriteError> {
    if sdp.media().is_empty() {
        return Err(RewriteError::NoMedia);
    }
    if sdp.media().len() != allocation.media.len() {
        return Err(RewriteError::AllocationMismatch {
            media: sdp.media().len(),
            allocated: allocation.media.len(),
        });
    }
    match flags.ice {
        None | Some(IceMode::Remove | IceMode::Default) => {}
        Some(mode) => return Err(RewriteError::UnsupportedIce { mode }),
    }
    let mut out = sdp.clone();
    let address = flags.media_address.unwrap_or(allocation.address);
    out.remove_ice();
    if flags.replace_origin {
        out.set_origin_address(address);
    }
    let session_connection = out.connection().is_some();
    if session_connection {
        out.set_connection_address(address);
    }
    let protocol = match flags.transport_protocol {
        Some(TransportOverride::To(protocol)) => Some(protocol),
        Some(TransportOverride::Accept) | None => None,
    };
    for (index, (media, local)) in out
        .media_mut()
        .iter_mut()
        .zip(&allocation.media)
        .enumerate()
    {
        if media.port() == 0 {
            continue;
        }
        media.set_port(local.rtp_port);
        if media.connection().is_some() || !session_connection {
            media.set_connection_address(address);
        }
        let had_rtcp = media.rtcp().is_some();
        match local.rtcp_port {
            Some(port) => media.set_rtcp(Some(Rtcp {
                port,
                address: None,
            })),
            None if had_rtcp => media.set_rtcp(Some(Rtcp {
                port: local.rtp_port,
                address: None,
            })),
            None => {}
        }
        let secure = match protocol {
            Some(protocol) => {
                media.set_proto(protocol.as_str());
                protocol.is_secure()
            }
            None => media.proto().contains("SAVP"),
        };
        if secure {
            if local.crypto.is_empty() {
                return Err(RewriteError::MissingCrypto { index });
            }
            media.set_crypto(&local.crypto);
        } else {
            media.set_crypto(&[]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::command::TransportProtocol;
    use super::*;

    /// The offer the conformance run sent to rtpengine 10.5.
    const OFFER: &str = "v=0\r\n\
        o=alice 2890844526 2890844526 IN IP4 10.0.0.1\r\n\
        s=-\r\n\
        c=IN IP4 10.0.0.1\r\n\
        t=0 0\r\n\
        m=audio 49170 RTP/AVP 0 8 101\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-15\r\n\
        a=ptime:20\r\n\
        a=sendrecv\r\n\
        a=ice-ufrag:abcd\r\n\
        a=candidate:1 1 UDP 2130706431 10.0.0.1 49170 typ host\r\n";

    fn allocation(rtcp: Option<u16>, crypto: Vec<Crypto>) -> Allocation {
        Allocation {
            address: "127.0.0.1".parse().expect("literal"),
            media: vec![MediaAllocation {
                rtp_port: 30000,
                rtcp_port: rtcp,
                crypto,
            }],
        }
    }

    fn sdes() -> Crypto {
        Crypto {
            tag: 1,
            suite: "AES_CM_128_HMAC_SHA1_80".into(),
            key_params: "inline:hLnusvi57QG/xuaC1GLVCd3O/tA0WA8sQQ+yoZyG".into(),
            session_params: vec![],
        }
    }

    #[test]
    fn offer_is_rewritten_like_rtpengine_does() {
        let sdp = Sdp::parse(OFFER.as_bytes()).expect("valid");
        let flags = Flags {
            replace_origin: true,
            replace_session_connection: true,
            ice: Some(IceMode::Remove),
            ..Flags::default()
        };
        let out = rewrite_sdp(&sdp, &flags, &allocation(Some(30001), vec![])).expect("rewrite");
        assert_eq!(
            out.to_string(),
            "v=0\r\n\
             o=alice 2890844526 2890844526 IN IP4 127.0.0.1\r\n\
             s=-\r\n\
             c=IN IP4 127.0.0.1\r\n\
             t=0 0\r\n\
             m=audio 30000 RTP/AVP 0 8 101\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-15\r\n\
             a=ptime:20\r\n\
             a=sendrecv\r\n\
             a=rtcp:30001\r\n"
        );
        // Without `replace: [origin]` the o= line is kept, as rtpengine kept it.
        let out = rewrite_sdp(&sdp, &Flags::default(), &allocation(Some(30001), vec![]))
            .expect("rewrite");
        assert!(out
            .to_string()
            .contains("o=alice 2890844526 2890844526 IN IP4 10.0.0.1\r\n"));
        // With a `media address`, rtpengine 10.5 advertises that address in o= and c=.
        let with_media_address = Flags {
            media_address: Some("10.9.9.9".parse().expect("literal")),
            ..flags
        };
        let out = rewrite_sdp(&sdp, &with_media_address, &allocation(Some(30001), vec![]))
            .expect("rewrite");
        assert_eq!(out.origin().map(|o| o.address.as_str()), Some("10.9.9.9"));
        assert_eq!(
            out.connection().map(|c| c.address.as_str()),
            Some("10.9.9.9")
        );
    }

    #[test]
    fn transport_protocol_switches_between_rtp_and_srtp() {
        let sdp = Sdp::parse(OFFER.as_bytes()).expect("valid");
        let to = |p| Flags {
            transport_protocol: Some(TransportOverride::To(p)),
            ..Flags::default()
        };
        let srtp = rewrite_sdp(
            &sdp,
            &to(TransportProtocol::Savp),
            &allocation(None, vec![sdes()]),
        )
        .expect("rewrite");
        assert_eq!(srtp.media()[0].proto(), "RTP/SAVP");
        assert_eq!(
            srtp.media()[0].crypto().cloned().collect::<Vec<_>>(),
            [sdes()]
        );
        assert_eq!(
            rewrite_sdp(
                &sdp,
                &to(TransportProtocol::Savp),
                &allocation(None, vec![])
            ),
            Err(RewriteError::MissingCrypto { index: 0 })
        );
        let back = rewrite_sdp(
            &srtp,
            &to(TransportProtocol::Avp),
            &allocation(None, vec![]),
        )
        .expect("rewrite");
        assert_eq!(back.media()[0].proto(), "RTP/AVP");
        assert_eq!(back.media()[0].crypto().count(), 0);
    }

    #[test]
    fn rejected_streams_and_mux_and_missing_session_connection() {
        let sdp = Sdp::parse(
            b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n\
              m=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.1\r\na=rtcp:4000\r\na=rtcp-mux\r\n\
              m=video 0 RTP/AVP 96\r\nc=IN IP4 10.0.0.1\r\n",
        )
        .expect("valid");
        let mut alloc = allocation(None, vec![]);
        alloc.media.push(alloc.media[0].clone());
        let out = rewrite_sdp(&sdp, &Flags::default(), &alloc).expect("rewrite");
        let audio = &out.media()[0];
        assert_eq!(audio.port(), 30000);
        assert_eq!(audio.rtcp().map(|r| r.port), Some(30000));
        assert_eq!(
            audio.connection().map(|c| c.address.as_str()),
            Some("127.0.0.1")
        );
        // The rejected video stream is untouched.
        assert_eq!(out.media()[1], sdp.media()[1]);
    }

    #[test]
    fn errors() {
        let sdp = Sdp::parse(OFFER.as_bytes()).expect("valid");
        let force = Flags {
            ice: Some(IceMode::Force),
            ..Flags::default()
        };
        assert_eq!(
            rewrite_sdp(&sdp, &force, &allocation(None, vec![])),
            Err(RewriteError::UnsupportedIce {
                mode: IceMode::Force
            })
        );
        let empty = Allocation {
            address: "127.0.0.1".parse().expect("literal"),
            media: vec![],
        };
        assert_eq!(
            rewrite_sdp(&sdp, &Flags::default(), &empty),
            Err(RewriteError::AllocationMismatch {
                media: 1,
                allocated: 0
            })
        );
        let bare = Sdp::parse(b"v=0\r\n").expect("valid");
        assert_eq!(
            rewrite_sdp(&bare, &Flags::default(), &empty),
            Err(RewriteError::NoMedia)
        );
    }
}
