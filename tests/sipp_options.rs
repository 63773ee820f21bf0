//! SIPp (Debian package `sip-tester`) sends 1,000 OPTIONS over UDP and 1,000 over TCP to the
//! running binary (scenario `tests/sipp/options_uac.xml`); every one must get 200 OK.
//! Behaviour under test: the OPTIONS responder (SIG-25) and the UDP/TCP transports (SIG-05)
//! under a steady load from a real, independent SIP implementation.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use voxgate_test_harness::{require_tool, test_config, Voxgate};

const BIN: &str = env!("CARGO_BIN_EXE_voxgate");
const SCENARIO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp/options_uac.xml");
const CALLS: u32 = 1000;

/// What SIPp reported: its exit code and the final cumulative counters of its statistics file.
#[derive(Debug)]
struct SippRun {
    exit_code: Option<i32>,
    successful: u64,
    failed: u64,
    output: String,
}

fn run_sipp(target: SocketAddr, transport: &str, workdir: &Path) -> SippRun {
    let stat = workdir.join(format!("stat-{transport}.csv"));
    let errors = workdir.join(format!("errors-{transport}.log"));
    let out = Command::new("sipp")
        .arg(target.to_string())
        .args(["-sf", SCENARIO])
        .args(["-t", transport])
        .args(["-i", &target.ip().to_string()])
        .args(["-m", &CALLS.to_string()])
        // 200 calls/s: fast enough to keep the test short, well inside any flood limit.
        .args(["-r", "200", "-rp", "1000"])
        .arg("-nostdin")
        // Global failure deadline (a stuck run fails instead of hanging), not a speed bound.
        .args(["-timeout", "120s", "-timeout_error"])
        .arg("-trace_stat")
        .arg("-stf")
        .arg(&stat)
        .arg("-trace_err")
        .arg("-error_file")
        .arg(&errors)
        .current_dir(workdir)
        .stdin(Stdio::null())
        .output()
        .expect("sipp runs");
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    if let Ok(errs) = std::fs::read_to_string(&errors) {
        output.push_str("\n---- sipp error log ----\n");
        output.push_str(&errs);
    }
    let stats = std::fs::read_to_string(&stat).unwrap_or_default();
    SippRun {
        exit_code: out.status.code(),
        successful: stat_column(&stats, "SuccessfulCall(C)").unwrap_or(0),
        failed: stat_column(&stats, "FailedCall(C)").unwrap_or(u64::MAX),
        output,
    }
}

/// The value of `column` in the last row of SIPp's `;`-separated statistics file.
fn stat_column(csv: &str, column: &str) -> Option<u64> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next()?.split(';').collect();
    let last: Vec<&str> = lines.next_back()?.split(';').collect();
    let index = header.iter().position(|h| *h == column)?;
    last.get(index)?.trim().parse().ok()
}

fn options_load(transport: &str) {
    if !require_tool("sipp", "-y sip-tester") {
        return;
    }
    // SIPp loads from one address at 200 requests/s: far over the per-source flood limit
    // (SEC-13: 30 in 2 s), so it is on the allow list, as a load balancer would be.
    let config = test_config(
        &["udp:127.0.0.1:0", "tcp:127.0.0.1:0"],
        "[security]\nallow = [\"127.0.0.1/32\"]\n",
    );
    let voxgate = Voxgate::start(BIN, &config);
    let target = match transport {
        "u1" => voxgate.udp(),
        _ => voxgate.tcp(),
    };
    let workdir = tempfile::tempdir().expect("a temp dir can be created");
    let run = run_sipp(target, transport, workdir.path());
    assert!(
        run.exit_code == Some(0) && run.failed == 0 && run.successful == u64::from(CALLS),
        "sipp -t {transport} against {target}: exit {:?}, {} successful, {} failed \
         (want exit 0, {CALLS} successful, 0 failed)\n{}",
        run.exit_code,
        run.successful,
        run.failed,
        run.output
    );
    // Still serving after the load.
    assert_eq!(voxgate.options_udp().code, 200);
}

#[test]
fn sipp_options_over_udp_all_answered() {
    options_load("u1");
}

#[test]
fn sipp_options_over_tcp_all_answered() {
    options_load("t1");
}

#[test]
fn stat_column_reads_last_row() {
    let csv = "A;SuccessfulCall(C);FailedCall(C);\n1;5;0;\n2;1000;3;\n";
    assert_eq!(stat_column(csv, "SuccessfulCall(C)"), Some(1000));
    assert_eq!(stat_column(csv, "FailedCall(C)"), Some(3));
    assert_eq!(stat_column(csv, "Missing"), None);
    assert_eq!(stat_column("", "FailedCall(C)"), None);
}
