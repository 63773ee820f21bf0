//! Criterion: parse a typical INVITE with SDP and a REGISTER with Digest Authorization with
//! voxgate, `rsip` and `ezk-sip-types`, on the same bytes in the same run (issue 2,
//! "Benchmarks"; goal: voxgate at least 3× faster than both).
//!
//! Each parser is measured twice:
//! - `parse`: bytes in, message out, the way each library's own receive path does it.
//! - `parse+typed`: the same, then every typed value a proxy needs from each request:
//!   Request-URI, top Via, From, To, Call-ID, CSeq, Max-Forwards, Content-Length (and the
//!   Digest Authorization for REGISTER). voxgate parses these lazily, the others partly
//!   eagerly, so only this number compares like with like.
//!
//! Every path copies the datagram once into its own buffer first (`Bytes::copy_from_slice`
//! for the two `Bytes`-based parsers; rsip copies into `String`s itself), as a driver that
//! reuses its receive buffer must.
//!
//! Run: `cargo bench -p voxgate-bench --bench parse -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ezk_sip_types::header::typed::{
    AuthResponse, CSeq as EzkCSeq, CallID, ContentLength, FromTo, MaxForwards, Via as EzkVia,
};
use ezk_sip_types::msg::{Line, MessageLine, PullParser};
use ezk_sip_types::parse::Parse as _;
use ezk_sip_types::{Headers, Name};
use rsip::prelude::{HeadersExt as _, ToTypedHeader as _};
use voxgate_bench::{INVITE, REGISTER};
use voxgate_controlplane::config::MessageLimits;
use voxgate_controlplane::sip::{HeaderName, Message};

// ---------------------------------------------------------------------------------- voxgate

fn voxgate_parse(raw: &[u8], limits: &MessageLimits) -> Message {
    Message::parse_datagram(Bytes::copy_from_slice(raw), limits).expect("fixture parses")
}

/// Everything a stateful proxy reads from a request before it routes it.
fn voxgate_typed(raw: &[u8], limits: &MessageLimits, auth: bool) {
    let m = voxgate_parse(raw, limits);
    black_box(m.request_uri().expect("request").expect("Request-URI"));
    black_box(m.top_via().expect("Via"));
    black_box(m.from().expect("From"));
    black_box(m.to().expect("To"));
    black_box(m.call_id().expect("Call-ID"));
    black_box(m.cseq().expect("CSeq"));
    black_box(m.max_forwards().expect("Max-Forwards"));
    black_box(m.content_length().expect("Content-Length"));
    if auth {
        black_box(m.auth(HeaderName::Authorization).expect("Authorization"));
    }
    black_box(m);
}

// ------------------------------------------------------------------------------------- rsip

fn rsip_parse(raw: &[u8]) -> rsip::Request {
    rsip::Request::try_from(raw).expect("fixture parses")
}

fn rsip_typed(raw: &[u8], auth: bool) {
    let req = rsip_parse(raw);
    // rsip parses the Request-URI eagerly: it is already in `req.uri`.
    black_box(&req.uri);
    black_box(req.via_header().expect("Via").typed().expect("typed Via"));
    black_box(
        req.from_header()
            .expect("From")
            .typed()
            .expect("typed From"),
    );
    black_box(req.to_header().expect("To").typed().expect("typed To"));
    black_box(req.call_id_header().expect("Call-ID"));
    black_box(
        req.cseq_header()
            .expect("CSeq")
            .typed()
            .expect("typed CSeq"),
    );
    black_box(
        req.max_forwards_header()
            .expect("Max-Forwards")
            .num()
            .expect("numeric Max-Forwards"),
    );
    // rsip has no Content-Length accessor on the message; find it in the header list.
    let cl = req.headers.iter().find_map(|h| match h {
        rsip::Header::ContentLength(cl) => Some(cl.length().expect("numeric Content-Length")),
        _ => None,
    });
    black_box(cl.expect("Content-Length"));
    if auth {
        black_box(
            req.authorization_header()
                .expect("Authorization")
                .typed()
                .expect("typed Authorization"),
        );
    }
    black_box(req);
}

// ------------------------------------------------------------------------------ ezk-sip-types

/// What ezk's own UDP receive path does with a datagram (ezk-sip-core
/// `transport/parse.rs`, `parse_complete_sip`): split lines with `PullParser`, parse the
/// start line, store each header as a raw value, then cut the body by Content-Length.
/// ezk-sip-types has no one-call message parser, so the bench spells these steps out.
struct EzkMessage {
    line: MessageLine,
    headers: Headers,
    body: Bytes,
}

fn ezk_parse(raw: &[u8]) -> EzkMessage {
    let buffer = Bytes::copy_from_slice(raw);
    let mut parser = PullParser::new(&buffer, 0);
    let mut line = None;
    let mut headers = Headers::with_capacity(16);
    for item in &mut parser {
        let text = std::str::from_utf8(item.expect("complete head")).expect("UTF-8 head");
        if line.is_none() {
            let (_, l) = MessageLine::parse(&buffer)(text).expect("start line");
            line = Some(l);
        } else {
            let (_, l) = Line::parse(&buffer, text).expect("header line");
            headers.insert(l.name, l.value);
        }
    }
    let head_end = parser.head_end();
    let len = headers
        .get_named::<ContentLength>()
        .map(|cl| cl.0)
        .unwrap_or(buffer.len() - head_end);
    let body = buffer.slice(head_end..head_end + len);
    EzkMessage {
        line: line.expect("start line present"),
        headers,
        body,
    }
}

fn ezk_typed(raw: &[u8], auth: bool) {
    let m = ezk_parse(raw);
    // The Request-URI is parsed with the start line.
    black_box(&m.line);
    let h = &m.headers;
    black_box(h.get_named::<EzkVia>().expect("Via"));
    black_box(h.get::<FromTo>(Name::FROM).expect("From"));
    black_box(h.get::<FromTo>(Name::TO).expect("To"));
    black_box(h.get_named::<CallID>().expect("Call-ID"));
    black_box(h.get_named::<EzkCSeq>().expect("CSeq"));
    black_box(h.get_named::<MaxForwards>().expect("Max-Forwards"));
    black_box(h.get_named::<ContentLength>().expect("Content-Length"));
    if auth {
        black_box(
            h.get::<AuthResponse>(Name::AUTHORIZATION)
                .expect("Authorization"),
        );
    }
    black_box(m.body);
    black_box(m.line);
}

// ------------------------------------------------------------------------------------ groups

fn bench_message(c: &mut Criterion, name: &str, raw: &'static [u8], auth: bool) {
    let limits = MessageLimits::default();
    // Fail loudly before measuring if any parser rejects the fixture: a parser that bails
    // out early would look fast.
    voxgate_typed(raw, &limits, auth);
    rsip_typed(raw, auth);
    ezk_typed(raw, auth);

    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(raw.len() as u64));
    g.bench_function("voxgate/parse", |b| {
        b.iter(|| voxgate_parse(black_box(raw), &limits))
    });
    g.bench_function("voxgate/parse+typed", |b| {
        b.iter(|| voxgate_typed(black_box(raw), &limits, auth))
    });
    g.bench_function("rsip/parse", |b| b.iter(|| rsip_parse(black_box(raw))));
    g.bench_function("rsip/parse+typed", |b| {
        b.iter(|| rsip_typed(black_box(raw), auth))
    });
    g.bench_function("ezk/parse", |b| b.iter(|| ezk_parse(black_box(raw))));
    g.bench_function("ezk/parse+typed", |b| {
        b.iter(|| ezk_typed(black_box(raw), auth))
    });
    g.finish();
}

fn parse(c: &mut Criterion) {
    bench_message(c, "invite_sdp", INVITE, false);
    bench_message(c, "register_auth", REGISTER, true);
}

criterion_group!(benches, parse);
criterion_main!(benches);
