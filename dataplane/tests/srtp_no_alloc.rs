//! SRTP protect/unprotect (RTP and RTCP, every suite) do not allocate (STYLE.md §9): a
//! counting global allocator watches a stream cross a sequence wrap and a replayed and a
//! tampered packet get refused. One test in its own binary, so no other test thread
//! allocates meanwhile.

use std::alloc::System;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use voxgate_dataplane::srtp::{SdesKey, SrtpContext, SrtpError, SrtpProfile};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn protect_and_unprotect_do_not_allocate() {
    let profiles = [
        SrtpProfile::AesCm128HmacSha1_80,
        SrtpProfile::AesCm128HmacSha1_32,
        SrtpProfile::AeadAes128Gcm,
    ];
    // Contexts and buffers exist before the measured region.
    let mut contexts: Vec<(SrtpContext, SrtpContext)> = profiles
        .iter()
        .map(|&p| {
            let salt = [3u8; 14];
            let k = SdesKey::from_parts(p, [7; 16], &salt[..p.master_salt_len()]).unwrap();
            (SrtpContext::new(&k), SrtpContext::new(&k))
        })
        .collect();
    let mut buf = [0u8; 256];
    let mut copy = [0u8; 256];
    let rtcp = [
        0x81u8, 0xc8, 0x00, 0x06, 0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        16, 17, 18, 19, 20,
    ];
    let mut ok = 0u32;

    let region = Region::new(GLOBAL);
    for (tx, rx) in contexts.iter_mut() {
        let mut seq = 65_500u16;
        for _ in 0..100 {
            buf[..12].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
            buf[2..4].copy_from_slice(&seq.to_be_bytes());
            buf[12..172].fill(0xd5);
            let n = tx.protect(&mut buf, 172).unwrap();
            copy[..n].copy_from_slice(&buf[..n]);
            rx.unprotect(&mut buf[..n]).unwrap();
            // The same packet again is a replay; a flipped bit fails authentication.
            let replay = rx.unprotect(&mut copy[..n]);
            assert!(matches!(replay, Err(SrtpError::Replayed { .. })));
            seq = seq.wrapping_add(1);
            ok += 1;
        }
        buf[..rtcp.len()].copy_from_slice(&rtcp);
        let n = tx.protect_rtcp(&mut buf, rtcp.len()).unwrap();
        buf[n - 1] ^= 1;
        assert_eq!(rx.unprotect_rtcp(&mut buf[..n]), Err(SrtpError::AuthFailed));
        buf[n - 1] ^= 1;
        rx.unprotect_rtcp(&mut buf[..n]).unwrap();
    }
    let stats = region.change();

    assert_eq!(ok, 300);
    assert_eq!(stats.allocations, 0, "{stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");
}
