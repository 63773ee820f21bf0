//! A tight loop over voxgate's parser for profilers (`perf record`, `valgrind
//! --tool=callgrind`), where criterion's own machinery would blur the picture.
//!
//! Usage: `parse_loop [invite|register] [iterations] [parse|typed]`

use std::hint::black_box;

use bytes::Bytes;
use voxgate_bench::{INVITE, REGISTER};
use voxgate_controlplane::config::MessageLimits;
use voxgate_controlplane::sip::{HeaderName, Message};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let raw = match args.get(1).map(String::as_str) {
        Some("register") => REGISTER,
        _ => INVITE,
    };
    let iterations: u64 = args
        .get(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let typed = args.get(3).map(String::as_str) != Some("parse");
    let limits = MessageLimits::default();
    let mut ok = 0u64;
    for _ in 0..iterations {
        let Ok(m) = Message::parse_datagram(Bytes::copy_from_slice(black_box(raw)), &limits) else {
            continue;
        };
        if typed {
            let _ = black_box(m.request_uri());
            let _ = black_box(m.top_via());
            let _ = black_box(m.from());
            let _ = black_box(m.to());
            let _ = black_box(m.call_id());
            let _ = black_box(m.cseq());
            let _ = black_box(m.max_forwards());
            let _ = black_box(m.content_length());
            if raw == REGISTER {
                let _ = black_box(m.auth(HeaderName::Authorization));
            }
        }
        black_box(m);
        ok += 1;
    }
    println!("{ok} of {iterations} parsed");
}
