//! The RFC 4475 and RFC 5118 torture corpus on the wire, against the running binary.
//!
//! UDP: each file is sent byte-exact as ONE datagram from a fresh socket; what comes back in
//! 1.5 s is collected (100 Trying ignored) and compared with the table below; then an OPTIONS
//! probe to voxgate itself must get 200 (the process is still up and serving).
//! Each file goes to its own voxgate process: many vectors share a branch, sent-by and method
//! (e.g. seven REGISTERs with `z9hG4bKkdjuw`), so one process would rightly treat the later
//! ones as retransmissions of the first transaction (RFC 3261 §17.2.3) and answer them to the
//! first sender.
//! TCP: `ncl` and `mcl01` lose stream framing, so the connection must be closed; `clerr`
//! promises more body than it sends, so voxgate waits (no answer) and closes the connection
//! after the partial-message timeout.
//!
//! The table is what voxgate's endpoint implements (see tests/data/*/README.md for the RFC
//! text behind each row). It changes only together with the endpoint, never to make a run
//! pass.

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use voxgate_test_harness::{
    data_dir, default_config, new_branch, options_request, read_stream_response, read_until_close,
    test_config, Response, StreamEnd, UdpClient, Voxgate,
};

const BIN: &str = env!("CARGO_BIN_EXE_voxgate");

/// How long to collect answers to one torture datagram. Silence can only be asserted over a
/// window; this is that window, not a performance bound.
const COLLECT: Duration = Duration::from_millis(1500);

/// Files sent in parallel (each to its own process), to keep the run short.
const PARALLEL: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Exactly this final response code (retransmissions of it allowed), nothing else but
    /// 100 Trying.
    Final(u16),
    /// Nothing at all comes back.
    Silence,
}

use Expect::{Final, Silence};

/// RFC 4475 (tests/data/rfc4475/*.dat) and RFC 5118 wire form (tests/data/rfc5118/wire/*.dat).
const TABLE: &[(&str, Expect)] = &[
    // RFC 4475 §3.1.1: valid messages. Requests for users get 480 (no registrar yet).
    // A To tag makes it a re-INVITE; no dialog exists, so 481 (RFC 3261 §12.2.2).
    ("rfc4475/wsinv.dat", Final(481)),
    ("rfc4475/intmeth.dat", Final(501)),
    ("rfc4475/esc01.dat", Final(407)),
    ("rfc4475/escnull.dat", Final(401)),
    ("rfc4475/esc02.dat", Final(501)),
    ("rfc4475/lwsdisp.dat", Final(480)),
    ("rfc4475/longreq.dat", Final(407)),
    ("rfc4475/dblreq.dat", Final(401)),
    ("rfc4475/semiuri.dat", Final(480)),
    ("rfc4475/transports.dat", Final(480)),
    ("rfc4475/mpart01.dat", Final(407)),
    ("rfc4475/unreason.dat", Silence),
    ("rfc4475/noreason.dat", Silence),
    // RFC 4475 §3.1.2: invalid messages.
    ("rfc4475/badinv01.dat", Final(400)),
    ("rfc4475/clerr.dat", Final(400)),
    ("rfc4475/ncl.dat", Final(400)),
    ("rfc4475/scalar02.dat", Final(400)),
    ("rfc4475/scalarlg.dat", Silence),
    ("rfc4475/quotbal.dat", Final(400)),
    ("rfc4475/ltgtruri.dat", Final(400)),
    ("rfc4475/lwsruri.dat", Final(400)),
    ("rfc4475/lwsstart.dat", Final(400)),
    ("rfc4475/trws.dat", Final(400)),
    ("rfc4475/escruri.dat", Final(400)),
    ("rfc4475/baddate.dat", Final(407)),
    ("rfc4475/regbadct.dat", Final(400)),
    ("rfc4475/badaspec.dat", Final(400)),
    ("rfc4475/baddn.dat", Final(400)),
    ("rfc4475/badvers.dat", Final(505)),
    ("rfc4475/mismatch01.dat", Final(400)),
    ("rfc4475/mismatch02.dat", Final(501)),
    ("rfc4475/bigcode.dat", Silence),
    // RFC 4475 §3.2-3.4: transaction and application layer.
    ("rfc4475/badbranch.dat", Final(480)),
    ("rfc4475/insuf.dat", Final(400)),
    ("rfc4475/unkscm.dat", Final(416)),
    ("rfc4475/novelsc.dat", Final(416)),
    ("rfc4475/unksm2.dat", Final(401)),
    ("rfc4475/bext01.dat", Final(420)),
    ("rfc4475/invut.dat", Final(415)),
    ("rfc4475/regaut01.dat", Final(401)),
    ("rfc4475/multi01.dat", Final(400)),
    ("rfc4475/mcl01.dat", Final(400)),
    ("rfc4475/bcast.dat", Silence),
    ("rfc4475/zeromf.dat", Final(483)),
    ("rfc4475/cparam01.dat", Final(401)),
    ("rfc4475/cparam02.dat", Final(401)),
    ("rfc4475/regescrt.dat", Final(401)),
    ("rfc4475/sdp01.dat", Final(406)),
    ("rfc4475/inv2543.dat", Final(407)),
    // RFC 5118: only ipv6-bad is invalid.
    ("rfc5118/wire/ipv6-good.dat", Final(401)),
    ("rfc5118/wire/ipv6-bad.dat", Final(400)),
    ("rfc5118/wire/port-ambiguous.dat", Final(401)),
    ("rfc5118/wire/port-unambiguous.dat", Final(401)),
    // Out-of-dialog BYEs: 481 (RFC 3261 §15.1.2).
    ("rfc5118/wire/via-received-param-with-delim.dat", Final(481)),
    ("rfc5118/wire/via-received-param-no-delim.dat", Final(480)),
    ("rfc5118/wire/ipv6-in-sdp.dat", Final(407)),
    ("rfc5118/wire/mult-ip-in-header.dat", Final(481)),
    ("rfc5118/wire/mult-ip-in-sdp.dat", Final(407)),
    ("rfc5118/wire/ipv4-mapped-ipv6.dat", Final(407)),
    ("rfc5118/wire/ipv6-bug-abnf-3-colons.dat", Final(480)),
    ("rfc5118/wire/ipv6-correct-abnf-2-colons.dat", Final(480)),
];

fn read_vector(name: &str) -> Vec<u8> {
    let path: PathBuf = data_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every `.dat` file in the two corpus folders has a row, and every row a file: a vector
/// cannot be skipped silently.
#[test]
fn table_covers_the_whole_corpus() {
    let mut on_disk = Vec::new();
    for folder in ["rfc4475", "rfc5118/wire"] {
        let dir = data_dir().join(folder);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let name = entry.expect("readable dir entry").file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".dat") {
                on_disk.push(format!("{folder}/{name}"));
            }
        }
    }
    on_disk.sort();
    let mut in_table: Vec<String> = TABLE.iter().map(|(f, _)| (*f).to_owned()).collect();
    in_table.sort();
    assert_eq!(on_disk, in_table);
    assert_eq!(on_disk.len(), 49 + 12);
}

/// Judges what came back for one file; returns a description of every disagreement.
fn judge(file: &str, expect: Expect, got: &[Response]) -> Vec<String> {
    let answers: Vec<&Response> = got.iter().filter(|r| r.code != 100).collect();
    let codes: Vec<u16> = answers.iter().map(|r| r.code).collect();
    let mut problems = Vec::new();
    match expect {
        Silence => {
            if !got.is_empty() {
                let all: Vec<u16> = got.iter().map(|r| r.code).collect();
                problems.push(format!("{file}: expected silence, got {all:?}"));
            }
        }
        Final(code) => {
            if answers.is_empty() {
                problems.push(format!("{file}: expected {code}, got silence"));
            } else if codes.iter().any(|&c| c != code) {
                problems.push(format!("{file}: expected {code}, got {codes:?}"));
            }
        }
    }
    if let Some(first) = answers.first() {
        problems.extend(
            check_details(file, first)
                .into_iter()
                .map(|p| format!("{file}: {p}")),
        );
    }
    // RFC 3261 §18.3: the trailing octets of dblreq are not a second request.
    if file.ends_with("dblreq.dat") && answers.len() != 1 {
        problems.push(format!(
            "{file}: expected exactly one response (trailing octets ignored), got {codes:?}"
        ));
    }
    problems
}

/// Per-code details the endpoint promises beyond the status code.
fn check_details(file: &str, r: &Response) -> Vec<String> {
    let mut problems = Vec::new();
    match r.code {
        400 => {
            let reason = r.reason.trim();
            if reason.is_empty() || reason.eq_ignore_ascii_case("Bad Request") {
                problems.push(format!(
                    "400 reason phrase {reason:?} does not name the fault"
                ));
            }
        }
        501 if r.header("Allow").is_none() => {
            problems.push("501 without Allow".to_owned());
        }
        415 if r.header("Accept").is_none() => {
            problems.push("415 without Accept".to_owned());
        }
        420 if file.ends_with("bext01.dat") => {
            let unsupported = r.header_tokens("Unsupported");
            for want in ["nothingSupportsThis", "nothingSupportsThisEither"] {
                if !unsupported.iter().any(|u| u == want) {
                    problems.push(format!("420 Unsupported {unsupported:?} lacks {want}"));
                }
            }
        }
        _ => {}
    }
    problems
}

#[derive(Debug)]
struct Outcome {
    file: &'static str,
    problems: Vec<String>,
    got: Vec<Response>,
    probe: Option<u16>,
    /// The output of the process that handled this file.
    log: String,
}

#[test]
fn udp_torture_corpus() {
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(file, expect)) = TABLE.get(i) else {
                    return;
                };
                let voxgate = Voxgate::start(BIN, &default_config());
                let datagram = read_vector(file);
                let got = voxgate.send_and_collect(&datagram, COLLECT);
                let problems = judge(file, expect, &got);
                // The process is still up and serving.
                let target = voxgate.udp();
                let client = UdpClient::bind_loopback(target);
                let probe = options_request(target, "UDP", client.local_addr(), &new_branch());
                let probe = client
                    .request(target, probe.as_bytes(), Duration::from_secs(10))
                    .map(|r| r.code);
                let log = voxgate.output();
                outcomes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Outcome {
                        file,
                        problems,
                        got,
                        probe,
                        log,
                    });
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap_or_else(|e| e.into_inner());
    outcomes.sort_by_key(|o| TABLE.iter().position(|(f, _)| *f == o.file));
    assert_eq!(outcomes.len(), TABLE.len(), "every file was sent");

    let mut report = String::new();
    for o in &outcomes {
        let mut problems = o.problems.clone();
        if o.probe != Some(200) {
            problems.push(format!(
                "{}: OPTIONS probe afterwards got {:?}, want 200",
                o.file, o.probe
            ));
        }
        for p in &problems {
            report.push_str(p);
            report.push('\n');
        }
        if !problems.is_empty() {
            // The first two datagrams are enough to see why (INVITE finals repeat).
            for r in o.got.iter().take(2) {
                report.push_str(&format!("    received: {:?}\n", r.text()));
            }
            // voxgate's own account of what went wrong, if it logged any.
            for line in o
                .log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            {
                report.push_str(&format!("    voxgate: {line}\n"));
            }
        }
    }
    assert!(
        report.is_empty(),
        "the binary disagrees with the torture table:\n{report}"
    );
}

/// Sends `file` over a fresh TCP connection and reads until voxgate closes it (failure
/// deadline 20 s; the config's partial-message timeout is 1 s).
fn stream_verdict(voxgate: &Voxgate, file: &str) -> StreamEnd {
    let mut stream = TcpStream::connect(voxgate.tcp()).expect("connect to the TCP listener");
    stream
        .write_all(&read_vector(file))
        .expect("send the vector");
    read_until_close(&mut stream, Duration::from_secs(20))
}

#[test]
fn tcp_framing_torture() {
    let config = test_config(
        &["udp:127.0.0.1:0", "tcp:127.0.0.1:0"],
        "[limits]\npartial_message_timeout = \"1s\"\n",
    );
    let voxgate = Voxgate::start(BIN, &config);
    let mut problems = Vec::new();

    // Negative and multiple Content-Length: stream framing is lost, the connection must go
    // (an error response before the close is allowed).
    for file in ["rfc4475/ncl.dat", "rfc4475/mcl01.dat"] {
        if let StreamEnd::StillOpen { received } = stream_verdict(&voxgate, file) {
            problems.push(format!(
                "{file} over TCP: expected the connection closed, still open after 20 s; \
                 received {:?}",
                String::from_utf8_lossy(&received)
            ));
        }
    }

    // Content-Length larger than the message: wait for the rest (no answer), then close
    // once the partial-message timeout passes.
    match stream_verdict(&voxgate, "rfc4475/clerr.dat") {
        StreamEnd::Closed { received } if received.is_empty() => {}
        StreamEnd::Closed { received } => problems.push(format!(
            "rfc4475/clerr.dat over TCP: expected no answer before the close, got {:?}",
            String::from_utf8_lossy(&received)
        )),
        StreamEnd::StillOpen { received } => problems.push(format!(
            "rfc4475/clerr.dat over TCP: expected the connection closed by the 1 s \
             partial-message timeout, still open after 20 s; received {:?}",
            String::from_utf8_lossy(&received)
        )),
    }
    assert!(
        problems.is_empty(),
        "the binary disagrees with the stream verdicts:\n{}",
        problems.join("\n")
    );

    // Still serving on both transports.
    assert_eq!(voxgate.options_udp().code, 200);
    let mut stream = TcpStream::connect(voxgate.tcp()).expect("connect to the TCP listener");
    let local = stream
        .local_addr()
        .expect("connected socket has an address");
    let probe = options_request(voxgate.tcp(), "TCP", local, &new_branch());
    stream.write_all(probe.as_bytes()).expect("send OPTIONS");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("valid timeout");
    let response = read_stream_response(&mut stream).expect("a response over TCP");
    assert_eq!(response.code, 200, "{}", response.text());
}
