//! SDP parser and printer through the public API: real-world bodies round-trip byte for byte,
//! hostile input is an error (never a panic), and parse → print → parse is stable.

use std::net::IpAddr;

use proptest::prelude::*;
use voxgate_controlplane::sdp::{Attribute, Crypto, Direction, LineKind, Sdp, SdpError};

/// A WebRTC-style offer (bundle, ICE, DTLS, extmap, ssrc) mixed with SIP-style lines.
const WEBRTC: &str = "v=0\r\n\
    o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
    s=-\r\n\
    t=0 0\r\n\
    a=group:BUNDLE 0\r\n\
    a=msid-semantic: WMS stream\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 111 0 126\r\n\
    c=IN IP4 0.0.0.0\r\n\
    a=rtcp:9 IN IP4 0.0.0.0\r\n\
    a=candidate:842163049 1 udp 1677729535 198.51.100.4 50212 typ srflx raddr 10.0.0.4 rport 50212 generation 0\r\n\
    a=ice-ufrag:W8Yp\r\n\
    a=ice-pwd:M0sKsYyEX1n4BqV8aOr7BvTt\r\n\
    a=ice-options:trickle\r\n\
    a=fingerprint:sha-256 49:66:12:17:0D:1C:91:AE:57:4C:C6:36:DD:D5:97:D2:7D:62:C9:9A:7F:B9:A3:F1:3C:BE:2D:34:7C:5A:E6:2C\r\n\
    a=setup:actpass\r\n\
    a=mid:0\r\n\
    a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
    a=sendrecv\r\n\
    a=rtcp-mux\r\n\
    a=rtpmap:111 opus/48000/2\r\n\
    a=fmtp:111 minptime=10;useinbandfec=1\r\n\
    a=rtpmap:0 PCMU/8000\r\n\
    a=rtpmap:126 telephone-event/8000\r\n\
    a=ssrc:3735928559 cname:4TOk42mSjXCkVIa6\r\n\
    a=ssrc:3735928559 msid:stream track\r\n";

#[test]
fn webrtc_offer_round_trips_and_loses_only_ice_when_asked() {
    let mut sdp = Sdp::parse(WEBRTC.as_bytes()).expect("valid offer");
    assert_eq!(sdp.to_string(), WEBRTC);
    let audio = &sdp.media()[0];
    assert!(audio.rtcp_mux());
    assert!(audio.has_ice());
    assert_eq!(audio.candidates().next().map(|c| c.port), Some(50212));
    assert_eq!(audio.ssrcs().count(), 2);
    assert_eq!(
        audio
            .rtpmaps()
            .map(|r| r.encoding.as_str())
            .collect::<Vec<_>>(),
        ["opus", "PCMU", "telephone-event"]
    );

    sdp.remove_ice();
    assert!(!sdp.has_ice());
    let printed = sdp.to_string();
    for gone in ["candidate", "ice-ufrag", "ice-pwd", "ice-options"] {
        assert!(!printed.contains(gone), "{gone} left in {printed}");
    }
    // Every other line is still there, in order.
    let kept: Vec<&str> = WEBRTC
        .split("\r\n")
        .filter(|l| !l.starts_with("a=candidate") && !l.starts_with("a=ice-"))
        .collect();
    assert_eq!(printed.split("\r\n").collect::<Vec<_>>(), kept);
}

#[test]
fn relay_rewrite_with_public_setters() {
    let mut sdp = Sdp::parse(WEBRTC.as_bytes()).expect("valid offer");
    let relay: IpAddr = "2001:db8::5".parse().expect("literal");
    sdp.set_origin_address(relay);
    let audio = &mut sdp.media_mut()[0];
    audio.set_connection_address(relay);
    audio.set_port(40000);
    audio.set_proto("RTP/SAVP");
    audio.set_direction(Direction::RecvOnly);
    audio.set_crypto(&[Crypto {
        tag: 1,
        suite: "AES_CM_128_HMAC_SHA1_80".into(),
        key_params: "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz".into(),
        session_params: vec![],
    }]);
    let reparsed = Sdp::parse(&sdp.to_bytes()).expect("printed SDP parses");
    assert_eq!(reparsed, sdp);
    let audio = &reparsed.media()[0];
    assert_eq!(audio.port(), 40000);
    assert_eq!(audio.proto(), "RTP/SAVP");
    assert_eq!(audio.direction(), Some(Direction::RecvOnly));
    assert_eq!(audio.connection().and_then(|c| c.ip()), Some(relay));
    assert_eq!(
        reparsed.origin().map(|o| o.address.as_str()),
        Some("2001:db8::5")
    );
    assert_eq!(audio.crypto().count(), 1);
}

#[test]
fn lf_only_input_is_accepted_and_printed_with_crlf() {
    let sdp = Sdp::parse(b"v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=audio 5 RTP/AVP 0").expect("LF");
    assert_eq!(
        sdp.to_string(),
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 5 RTP/AVP 0\r\n"
    );
    assert!(matches!(
        sdp.media()[0].lines()[0].kind(),
        LineKind::Media(m) if m.port == 5
    ));
}

#[test]
fn truncated_and_hostile_bodies_are_errors() {
    let cases: Vec<Vec<u8>> = vec![
        WEBRTC.as_bytes()[..2].to_vec(),
        b"v=0\r\nm=\r\n".to_vec(),
        b"v=0\r\nm=audio 70000 RTP/AVP 0\r\n".to_vec(),
        b"v=0\r\no=- 1 1 IN IP4\r\n".to_vec(),
        b"v=0\r\nc=IN IP7 1.2.3.4\r\n".to_vec(),
        b"v=0\r\n=x\r\n".to_vec(),
        b"v=0\r\nm=audio 1 RTP/AVP 0\r\na=crypto:x\r\n".to_vec(),
        "v=0\r\n".repeat(5000).into_bytes(),
    ];
    for case in cases {
        assert!(
            Sdp::parse(&case).is_err(),
            "{:?}",
            String::from_utf8_lossy(&case)
        );
    }
    assert!(matches!(
        Sdp::parse("v=0\r\ns=-\r\n".repeat(3000).as_bytes()),
        Err(SdpError::TooManyLines { .. })
    ));
}

/// Lines that are SDP-shaped, including broken variants of the typed ones.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]=[ -~]{0,20}",
        "o=[a-z-]{1,5} [0-9]{1,3} [0-9]{1,3} IN IP[46] [0-9a-f.:]{1,12}",
        "c=IN IP[46] [0-9a-f.:/]{1,15}",
        "m=(audio|video) [0-9]{1,5}(/[0-9])? RTP/S?AVPF? [0-9]{1,3}( [0-9]{1,3}){0,3}",
        "a=rtpmap:[0-9]{1,3} [A-Za-z0-9-]{1,8}/[0-9]{1,5}(/[0-9])?",
        "a=fmtp:[0-9]{1,3} [ -~]{0,10}",
        "a=ptime:[0-9.]{1,4}",
        "a=(sendrecv|sendonly|recvonly|inactive|rtcp-mux|ice-lite)",
        "a=rtcp:[0-9]{1,5}( IN IP4 [0-9.]{1,15})?",
        "a=crypto:[0-9]{1,2} [A-Z_0-9]{3,20} inline:[A-Za-z0-9+/]{4,40}( KDR=1)?",
        "a=candidate:[0-9]{1,3} [12] UDP [0-9]{1,10} [0-9.]{7,15} [0-9]{1,5} typ host( generation 0)?",
        "a=ice-(ufrag|pwd):[a-zA-Z0-9]{1,10}",
        "a=ssrc:[0-9]{1,10} cname:[a-z]{1,5}",
        "a=[a-z-]{1,10}(:[ -~]{0,10})?",
    ]
}

fn body() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(line(), 0..30),
        prop::sample::select(vec!["\r\n", "\n"]),
    )
        .prop_map(|(lines, eol)| {
            let mut text = format!("v=0{eol}");
            for l in lines {
                text.push_str(&l);
                text.push_str(eol);
            }
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Sdp::parse(&input);
    }

    #[test]
    fn arbitrary_text_after_v0_never_panics(rest in "[ -~\r\n]{0,300}") {
        let _ = Sdp::parse(format!("v=0\r\n{rest}").as_bytes());
    }

    #[test]
    fn parse_print_parse_is_stable(text in body()) {
        if let Ok(sdp) = Sdp::parse(text.as_bytes()) {
            let printed = sdp.to_string();
            let again = Sdp::parse(printed.as_bytes()).expect("printed SDP parses");
            prop_assert_eq!(&again, &sdp);
            prop_assert_eq!(again.to_string(), printed.clone());
            // CRLF bodies print byte for byte as they came.
            if text.contains("\r\n") {
                prop_assert_eq!(printed, text);
            }
        }
    }

    #[test]
    fn setters_keep_the_body_parseable(text in body(), port in any::<u16>(), v6 in any::<bool>()) {
        if let Ok(mut sdp) = Sdp::parse(text.as_bytes()) {
            let ip: IpAddr = if v6 { "2001:db8::1".parse().expect("literal") }
                else { "192.0.2.1".parse().expect("literal") };
            sdp.set_connection_address(ip);
            sdp.set_origin_address(ip);
            sdp.remove_ice();
            for media in sdp.media_mut() {
                media.set_port(port);
                media.set_connection_address(ip);
                media.set_direction(Direction::Inactive);
                media.push_attribute(Attribute::RtcpMux);
            }
            let again = Sdp::parse(&sdp.to_bytes()).expect("rewritten SDP parses");
            prop_assert_eq!(&again, &sdp);
            prop_assert!(!again.has_ice());
            for media in again.media() {
                prop_assert_eq!(media.port(), port);
                prop_assert_eq!(media.direction(), Some(Direction::Inactive));
            }
        }
    }
}
