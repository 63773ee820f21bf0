//! Criterion: SRTP protect and unprotect cost per packet (issue 4, "Benchmarks").
//!
//! One iteration is one 172-byte G.711 RTP packet (12-byte header + 160 bytes) through
//! `SrtpContext::protect` or `SrtpContext::unprotect`, per suite, in place in a buffer with
//! tailroom. Each packet carries the next sequence number, as a live stream does (the replay
//! window refuses repeats, so unprotect gets freshly protected packets, made outside the
//! timed routine).
//!
//! Run: `cargo bench -p voxgate-bench --bench srtp -- --warm-up-time 3 --measurement-time 10`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use voxgate_dataplane::srtp::{SdesKey, SrtpContext, SrtpProfile};

const RTP_LEN: usize = 172;
const BUF_LEN: usize = 200;

fn context(profile: SrtpProfile) -> SrtpContext {
    let salt = [0x5a; 14];
    let key = SdesKey::from_parts(profile, [0x42; 16], &salt[..profile.master_salt_len()])
        .expect("bench key has the suite's salt length");
    SrtpContext::new(&key)
}

fn packet(seq: u16) -> [u8; BUF_LEN] {
    let mut p = [0xd5u8; BUF_LEN];
    p[..12].copy_from_slice(&[0x80, 8, 0, 0, 0, 0, 0, 0, 0xca, 0xfe, 0xba, 0xbe]);
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("srtp");
    group.throughput(Throughput::Elements(1));
    for profile in [
        SrtpProfile::AesCm128HmacSha1_80,
        SrtpProfile::AesCm128HmacSha1_32,
        SrtpProfile::AeadAes128Gcm,
    ] {
        let mut tx = context(profile);
        let mut seq = 0u16;
        group.bench_function(format!("protect/{}", profile.sdes_name()), |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                let mut buf = packet(seq);
                let n = tx.protect(&mut buf, RTP_LEN).expect("protect");
                black_box((buf, n))
            })
        });

        let mut tx = context(profile);
        let mut rx = context(profile);
        let mut seq = 0u16;
        group.bench_function(format!("unprotect/{}", profile.sdes_name()), |b| {
            b.iter_batched(
                || {
                    seq = seq.wrapping_add(1);
                    let mut buf = packet(seq);
                    let n = tx.protect(&mut buf, RTP_LEN).expect("protect");
                    (buf, n)
                },
                |(mut buf, n)| {
                    let m = rx.unprotect(&mut buf[..n]).expect("unprotect");
                    black_box((buf, m))
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
