//! SRTP/SRTCP through the public API: libsrtp's reference packets (test/srtp_driver.c,
//! `srtp_validate`), round trips for every suite, tampering, replays, ROC rollover across a
//! sequence wrap, SRTCP, and malformed input.

use voxgate_dataplane::srtp::{SdesKey, SrtpContext, SrtpError, SrtpProfile, MAX_SSRCS};

const ALL: [SrtpProfile; 3] = [
    SrtpProfile::AesCm128HmacSha1_80,
    SrtpProfile::AesCm128HmacSha1_32,
    SrtpProfile::AeadAes128Gcm,
];

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// libsrtp's `test_key`: the RFC 3711 B.3 master key and salt.
fn libsrtp_key(profile: SrtpProfile) -> SdesKey {
    let raw = hex("e1f97a0d3e018be0d64fa32c06de4139 0ec675ad498afeebb6960b3aabe6");
    let key: [u8; 16] = raw[..16].try_into().unwrap();
    SdesKey::from_parts(profile, key, &raw[16..16 + profile.master_salt_len()]).unwrap()
}

fn pair(profile: SrtpProfile) -> (SrtpContext, SrtpContext) {
    let k = libsrtp_key(profile);
    (SrtpContext::new(&k), SrtpContext::new(&k))
}

const RTP_REF: &str = "800f1234decafbadcafebabe abababababababababababababababab";
const RTCP_REF: &str = "81c8000bcafebabe abababababababababababababababab";

fn rtp(seq: u16, ssrc: u32, payload: usize) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&u32::from(seq).wrapping_mul(160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..payload).map(|i| i as u8));
    p
}

/// Protects `plain` into a fresh buffer with tailroom and returns the SRTP packet.
fn protect(ctx: &mut SrtpContext, plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + 32, 0);
    let n = ctx.protect(&mut buf, plain.len()).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn libsrtp_reference_rtp_sha1_80() {
    let (mut tx, mut rx) = pair(SrtpProfile::AesCm128HmacSha1_80);
    let expected =
        hex("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb");
    let srtp = protect(&mut tx, &hex(RTP_REF));
    assert_eq!(srtp, expected);
    let mut buf = expected.clone();
    let n = rx.unprotect(&mut buf).unwrap();
    assert_eq!(&buf[..n], &hex(RTP_REF)[..]);
}

#[test]
fn libsrtp_reference_rtp_sha1_32() {
    // Same keystream; the 32-bit tag is the first 4 bytes of the 80-bit one.
    let (mut tx, mut rx) = pair(SrtpProfile::AesCm128HmacSha1_32);
    let expected = hex("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc");
    assert_eq!(protect(&mut tx, &hex(RTP_REF)), expected);
    let mut buf = expected.clone();
    let n = rx.unprotect(&mut buf).unwrap();
    assert_eq!(&buf[..n], &hex(RTP_REF)[..]);
}

#[test]
fn libsrtp_reference_srtcp() {
    let (mut tx, mut rx) = pair(SrtpProfile::AesCm128HmacSha1_80);
    let plain = hex(RTCP_REF);
    let expected =
        hex("81c8000bcafebabe 7128035be487b9bdbef89041f977a5a8 80000001 993e08cd54d6c1230798");
    let mut buf = plain.clone();
    buf.resize(plain.len() + 14, 0);
    let n = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
    assert_eq!(&buf[..n], &expected[..]);
    let mut buf = expected.clone();
    let n = rx.unprotect_rtcp(&mut buf).unwrap();
    assert_eq!(&buf[..n], &plain[..]);
}

#[test]
fn sdes_inline_key_round_trips_every_suite() {
    for profile in ALL {
        let k = libsrtp_key(profile);
        let parsed = SdesKey::parse(profile, &format!("{}|2^31", k.to_inline())).unwrap();
        assert_eq!(parsed, k);
        assert_eq!(
            SrtpProfile::from_sdes_name(profile.sdes_name()),
            Some(profile)
        );
    }
    assert_eq!(SrtpProfile::from_sdes_name("AES_256_CM_HMAC_SHA1_80"), None);
}

#[test]
fn round_trip_every_suite_rtp_and_rtcp() {
    for profile in ALL {
        let (mut tx, mut rx) = pair(profile);
        for seq in 0..200u16 {
            let plain = rtp(seq, 0x1234, 160);
            let srtp = protect(&mut tx, &plain);
            assert_eq!(srtp.len(), plain.len() + profile.rtp_overhead());
            assert_ne!(&srtp[12..plain.len()], &plain[12..], "{profile:?} encrypts");
            let mut buf = srtp;
            let n = rx.unprotect(&mut buf).unwrap();
            assert_eq!(&buf[..n], &plain[..], "{profile:?} seq {seq}");
        }
        for _ in 0..5 {
            let plain = hex(RTCP_REF);
            let mut buf = plain.clone();
            buf.resize(plain.len() + 20, 0);
            let n = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
            assert_eq!(n, plain.len() + profile.rtcp_overhead());
            buf.truncate(n);
            let m = rx.unprotect_rtcp(&mut buf).unwrap();
            assert_eq!(&buf[..m], &plain[..], "{profile:?} SRTCP");
        }
    }
}

#[test]
fn header_extension_and_csrcs_are_authenticated_not_encrypted() {
    for profile in ALL {
        let (mut tx, mut rx) = pair(profile);
        // CC = 1, X = 1 with a one-word extension.
        let mut plain = vec![0x91, 0x00, 0x00, 0x07, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 5];
        plain.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01, 0x10, 0xaa, 0x00, 0x00]);
        plain.extend_from_slice(&[7u8; 40]);
        let srtp = protect(&mut tx, &plain);
        assert_eq!(&srtp[..24], &plain[..24]);
        let mut bad = srtp.clone();
        bad[21] ^= 1;
        assert_eq!(rx.unprotect(&mut bad), Err(SrtpError::AuthFailed));
        let mut buf = srtp;
        let n = rx.unprotect(&mut buf).unwrap();
        assert_eq!(&buf[..n], &plain[..]);
    }
}

#[test]
fn tampered_packets_are_refused_and_change_nothing() {
    for profile in ALL {
        let (mut tx, mut rx) = pair(profile);
        let plain = rtp(1, 0xabc, 160);
        let srtp = protect(&mut tx, &plain);
        for pos in [1, 3, 11, 12, 100, srtp.len() - 1] {
            let mut bad = srtp.clone();
            bad[pos] ^= 0x40;
            assert_eq!(
                rx.unprotect(&mut bad),
                Err(SrtpError::AuthFailed),
                "{profile:?} byte {pos}"
            );
        }
        // A wrong key never authenticates.
        let other =
            SdesKey::from_parts(profile, [9; 16], &[1; 14][..profile.master_salt_len()]).unwrap();
        let mut buf = srtp.clone();
        assert_eq!(
            SrtpContext::new(&other).unprotect(&mut buf),
            Err(SrtpError::AuthFailed)
        );
        // The refusals left no state: the genuine packet is still accepted once.
        let mut buf = srtp.clone();
        assert!(rx.unprotect(&mut buf).is_ok());
    }
}

#[test]
fn replays_are_refused_reordering_is_not() {
    for profile in ALL {
        let (mut tx, mut rx) = pair(profile);
        let packets: Vec<Vec<u8>> = (0..300u16)
            .map(|s| protect(&mut tx, &rtp(s, 7, 20)))
            .collect();
        // In order up to 150, then 149 and 150 again: replays.
        for p in &packets[..=150] {
            assert!(rx.unprotect(&mut p.clone()).is_ok());
        }
        for s in [149u64, 150] {
            assert_eq!(
                rx.unprotect(&mut packets[s as usize].clone()),
                Err(SrtpError::Replayed { index: s }),
                "{profile:?}"
            );
        }
        // 160 arrives before 155 (reordering inside the window is fine), 155 only once.
        assert!(rx.unprotect(&mut packets[160].clone()).is_ok());
        assert!(rx.unprotect(&mut packets[155].clone()).is_ok());
        assert!(rx.unprotect(&mut packets[155].clone()).is_err());
        // 290 moves the window so that 160 - 128 is far behind.
        assert!(rx.unprotect(&mut packets[290].clone()).is_ok());
        assert!(matches!(
            rx.unprotect(&mut packets[156].clone()),
            Err(SrtpError::Replayed { .. })
        ));
        assert!(rx.unprotect(&mut packets[170].clone()).is_ok());
    }
}

#[test]
fn rtcp_replays_and_tampering_are_refused() {
    for profile in ALL {
        let (mut tx, mut rx) = pair(profile);
        let plain = hex(RTCP_REF);
        let mut buf = plain.clone();
        buf.resize(plain.len() + 20, 0);
        let n = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
        buf.truncate(n);
        let mut bad = buf.clone();
        bad[10] ^= 1;
        assert_eq!(rx.unprotect_rtcp(&mut bad), Err(SrtpError::AuthFailed));
        assert!(rx.unprotect_rtcp(&mut buf.clone()).is_ok());
        assert_eq!(
            rx.unprotect_rtcp(&mut buf.clone()),
            Err(SrtpError::Replayed { index: 1 })
        );
    }
}

#[test]
fn rollover_counter_follows_sequence_wrap() {
    for profile in ALL {
        let (mut tx, mut rx) = pair(profile);
        let mut seq = 65_000u16;
        let mut sent = Vec::new();
        for _ in 0..1_200 {
            sent.push(protect(&mut tx, &rtp(seq, 42, 32)));
            seq = seq.wrapping_add(1);
        }
        // Deliver with a little reordering around the wrap.
        sent.swap(535, 536);
        sent.swap(540, 530);
        for (i, p) in sent.iter().enumerate() {
            let mut buf = p.clone();
            assert!(rx.unprotect(&mut buf).is_ok(), "{profile:?} packet {i}");
        }
        // A receiver that assumed ROC 0 after the wrap (no state) cannot authenticate a
        // post-wrap packet: the ROC is part of the tag / nonce.
        let (_, mut fresh) = pair(profile);
        let mut late = sent[1_000].clone();
        assert_eq!(fresh.unprotect(&mut late), Err(SrtpError::AuthFailed));
    }
}

#[test]
fn a_large_jump_before_the_first_wrap_stays_in_roc_zero() {
    for profile in ALL {
        let (mut tx, mut rx) = pair(profile);
        for seq in [100u16, 40_000, 40_001, 120, 65_535, 3] {
            let plain = rtp(seq, 5, 16);
            let mut buf = protect(&mut tx, &plain);
            let n = rx.unprotect(&mut buf).unwrap();
            assert_eq!(&buf[..n], &plain[..], "{profile:?} seq {seq}");
        }
    }
}

#[test]
fn malformed_and_short_buffers_are_errors_not_panics() {
    for profile in ALL {
        let (mut tx, mut rx) = pair(profile);
        let plain = rtp(5, 1, 10);
        let mut no_room = plain.clone();
        assert!(matches!(
            tx.protect(&mut no_room, plain.len()),
            Err(SrtpError::NoTailroom { .. })
        ));
        let srtp = protect(&mut tx, &plain);
        for cut in 0..srtp.len() {
            let mut b = srtp[..cut].to_vec();
            assert!(rx.unprotect(&mut b).is_err(), "{profile:?} cut {cut}");
            assert!(rx.unprotect_rtcp(&mut b).is_err());
        }
        let mut v1 = srtp.clone();
        v1[0] = 0x40;
        assert_eq!(rx.unprotect(&mut v1), Err(SrtpError::Version));
        // Extension length pointing past the end.
        let mut ext = vec![
            0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde, 0xff, 0xff,
        ];
        ext.resize(64, 0);
        assert!(matches!(
            rx.unprotect(&mut ext),
            Err(SrtpError::Truncated { .. })
        ));
        let mut buf = [0u8; 64];
        assert!(tx.protect(&mut buf, 100).is_err());
    }
}

#[test]
fn ssrc_table_is_bounded() {
    let (mut tx, _) = pair(SrtpProfile::AesCm128HmacSha1_80);
    for ssrc in 0..MAX_SSRCS as u32 {
        protect(&mut tx, &rtp(1, ssrc, 4));
    }
    let mut buf = rtp(1, 999, 4);
    let len = buf.len();
    buf.resize(len + 10, 0);
    assert_eq!(tx.protect(&mut buf, len), Err(SrtpError::TooManySsrcs));
}
