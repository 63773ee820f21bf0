//! Criterion: the transaction layer on a registrar's path (issue 3, "Benchmarks"; bench/RESULTS.md
//! §3 put `new_server`, `server_ids` and `respond` at ~9 % of a registration).
//!
//! One iteration is what a REGISTER costs the layer on UDP at 500 requests/s: a new request
//! (`handle_request` → `New`), the TU's final response (`respond`, kept for timer J), the
//! transmit drained, one retransmission of the request absorbed (the response sent again),
//! and virtual time advanced by 2 ms with `handle_timeout`, so timer J (32 s) ends the
//! transaction of 16,000 iterations ago: the table holds ~16,000 completed transactions,
//! as a registrar under that load does. Requests and responses are parsed and built before
//! the measurement (that is the parser's and the TU's cost, not the layer's).
//!
//! Run: `cargo bench -p voxgate-bench --bench transactions -- --warm-up-time 3 --measurement-time 10`

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use voxgate_controlplane::config::{MessageLimits, TimerConfig};
use voxgate_controlplane::endpoint::Peer;
use voxgate_controlplane::sip::{Message, ResponseBuilder, Transport};
use voxgate_controlplane::transaction::{ServerInput, Transactions};

/// Distinct requests cycled through: at 2 ms each, a request comes back after 65 s, long
/// after its transaction (timer J, 32 s) ended.
const DISTINCT: usize = 32_768;
const STEP: Duration = Duration::from_millis(2);

fn register(i: usize) -> Message {
    let text = format!(
        "REGISTER sip:bench.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.1.{}.{}:5060;rport;branch=z9hG4bK-{i:08x}-4f2a91c3\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{i}@bench.test>;tag=f{i:x}a7\r\n\
         To: <sip:{i}@bench.test>\r\n\
         Call-ID: 3c26{i:08x}9b1e4f7a@10.1.0.1\r\n\
         CSeq: 2 REGISTER\r\n\
         Contact: <sip:{i}@10.1.{}.{}:5060;rinstance=a6c5d1e2b3f4>\r\n\
         Expires: 3600\r\n\
         User-Agent: bench phone 1.0\r\n\
         Content-Length: 0\r\n\r\n",
        i / 250,
        i % 250 + 1,
        i / 250,
        i % 250 + 1,
    );
    Message::parse_datagram(Bytes::from(text), &MessageLimits::default()).expect("parses")
}

fn peer(i: usize) -> Peer {
    let remote: SocketAddr = format!("10.1.{}.{}:5060", i / 250, i % 250 + 1)
        .parse()
        .expect("address");
    Peer {
        transport: Transport::Udp,
        remote,
        local: "192.0.2.1:5060".parse().expect("address"),
        conn: None,
    }
}

fn transaction_path(c: &mut Criterion) {
    let requests: Vec<(Message, Message, Peer)> = (0..DISTINCT)
        .map(|i| {
            let req = register(i);
            let ok = ResponseBuilder::new(&req, 200, "OK", Some("srv1")).build();
            (req, ok, peer(i))
        })
        .collect();
    #[allow(clippy::disallowed_methods)] // the one real instant; every later time is virtual
    let t0 = Instant::now();
    let mut txs = Transactions::new(TimerConfig::default());
    let mut now = t0;
    let mut next = 0usize;
    let mut step = |txs: &mut Transactions| {
        let (req, ok, peer) = &requests[next % DISTINCT];
        next += 1;
        now += STEP;
        txs.handle_timeout(now);
        while txs.poll_event().is_some() {}
        let tx = match txs.handle_request(now, *peer, req.clone()) {
            Ok(ServerInput::New { tx, .. }) => tx,
            other => panic!("expected a new transaction, got {other:?}"),
        };
        txs.respond(now, tx, ok.clone()).expect("respond");
        black_box(txs.poll_transmit());
        let again = txs.handle_request(now, *peer, req.clone());
        assert!(matches!(again, Ok(ServerInput::Absorbed { .. })));
        black_box(txs.poll_transmit());
    };
    // Fill the table to its steady state (timer J at 2 ms per request: 16,000).
    for _ in 0..16_000 {
        step(&mut txs);
    }
    let mut g = c.benchmark_group("transactions");
    g.throughput(Throughput::Elements(1));
    g.bench_function("register new+respond+retransmission, 16k live", |b| {
        b.iter(|| step(&mut txs))
    });
    g.finish();
    eprintln!("live transactions at the end: {}", txs.len());
}

criterion_group!(benches, transaction_path);
criterion_main!(benches);
