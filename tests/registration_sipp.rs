//! SIPp (Debian package `sip-tester`) registers 1,000 extensions with digest authentication
//! over UDP, and 1,000 over TCP, to the running binary (scenario
//! `tests/sipp/register_auth.xml`, credentials from an injection CSV written here): every
//! REGISTER is answered 200, the admin API lists every binding with SIPp's real source and
//! transport, a refresh (same Call-ID, CSeq + 1, same nonce with the next nonce count)
//! extends every binding, and an unregister (`Expires: 0`) empties the list.
//! Behaviour under test: the registrar and digest authentication (SIG-01, SIG-14 "the
//! flow"), with a real, independent SIP implementation.
//!
//! The scenario waits between its steps for a NOTIFY from this test, sent to SIPp's own port
//! with the call's Call-ID, so every API check happens at a known step with nothing racing
//! it.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use voxgate_test_harness::{
    extension_tables, numbered_extensions, require_tool, test_config, RegistrationEntry,
    TestExtension, UdpClient, Voxgate,
};

const BIN: &str = env!("CARGO_BIN_EXE_voxgate");
const SCENARIO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp/register_auth.xml");
const DOMAIN: &str = "voxgate.test";
/// 2000-2999: 1000-1999 would include 1120-1129, which check-config rejects for
/// overlapping the emergency number 112.
const FIRST: u32 = 2000;
const COUNT: u32 = 1000;
/// New registrations per second from SIPp, and the pace of the test's step signals.
const RATE: u32 = 200;
/// Failure deadline for each wait on the API (generous: debug build, loaded 2-core CI).
const API_LIMIT: Duration = Duration::from_secs(120);

fn config(extensions: &[TestExtension]) -> String {
    test_config(
        &["udp:127.0.0.1:0", "tcp:127.0.0.1:0"],
        &format!(
            // SIPp sends every registration from one address at 200/s: far over the
            // per-source flood limit (SEC-13, 30 in 2 s) and the token bucket, so its
            // address is on the allow list, as a load balancer's would be.
            "[security]\nallow = [\"127.0.0.1/32\"]\n\n\
             # No keep-alive OPTIONS during the test: SIPp would take one for an unexpected\n\
             # message and abort a call.\n\
             [nat]\nkeepalive_interval = \"1h\"\n\n\
             # This test is about registration, not overload (tests/overload.rs): a debug\n\
             # build on a loaded CI machine may fall a read batch behind SIPp's bursts, and\n\
             # the SEC-15 queue check would then answer 503. \"Above 100 %\" never happens.\n\
             [limits]\nqueue_high_water = \"100%\"\n\n{}",
            extension_tables(extensions)
        ),
    )
}

/// The injection file: one call per extension, in order (call k is extension FIRST + k - 1).
fn write_csv(path: &Path, extensions: &[TestExtension]) {
    let mut csv = String::from("SEQUENTIAL\n");
    for e in extensions {
        csv.push_str(&format!(
            "{n};[authentication username={n} password={p}]\n",
            n = e.number,
            p = e.password
        ));
    }
    std::fs::write(path, csv).expect("the temp dir is writable");
}

/// A loopback port free for both UDP and TCP at the time of asking (SIPp binds both).
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("an ephemeral UDP port");
        let port = udp.local_addr().expect("bound").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// SIPp running the scenario, with its output files.
struct Sipp {
    child: Child,
    port: u16,
    workdir: tempfile::TempDir,
}

impl Sipp {
    fn start(target: SocketAddr, transport: &str, extensions: &[TestExtension]) -> Sipp {
        let workdir = tempfile::tempdir().expect("a temp dir can be created");
        let csv = workdir.path().join("users.csv");
        write_csv(&csv, extensions);
        let port = free_port();
        let child = Command::new("sipp")
            .arg(target.to_string())
            .args(["-sf", SCENARIO])
            .args(["-t", transport])
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .arg("-inf")
            .arg(&csv)
            .args(["-key", "domain", DOMAIN, "-auth_uri", DOMAIN])
            .args(["-cid_str", "reg-%u@voxgate.test"])
            .args(["-m", &extensions.len().to_string()])
            .args(["-l", &extensions.len().to_string()])
            .args(["-r", &RATE.to_string(), "-rp", "1000"])
            .arg("-nostdin")
            // Global failure deadline: a stuck run fails instead of hanging.
            .args(["-timeout", "240s", "-timeout_error"])
            .arg("-trace_stat")
            .arg("-stf")
            .arg(workdir.path().join("stat.csv"))
            .arg("-trace_err")
            .arg("-error_file")
            .arg(workdir.path().join("errors.log"))
            .current_dir(workdir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                std::fs::File::create(workdir.path().join("stdout.log")).expect("writable"),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(workdir.path().join("stderr.log")).expect("writable"),
            ))
            .spawn()
            .expect("sipp runs");
        Sipp {
            child,
            port,
            workdir,
        }
    }

    fn output(&self) -> String {
        let mut out = String::new();
        for name in ["stdout.log", "stderr.log", "errors.log"] {
            let text = std::fs::read_to_string(self.workdir.path().join(name)).unwrap_or_default();
            // SIPp's screens repeat; the end says what happened.
            let tail: String = text
                .chars()
                .rev()
                .take(6000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            out.push_str(&format!("---- sipp {name} (tail) ----\n{tail}\n"));
        }
        out
    }

    /// Panics with SIPp's output if it has already exited (it only exits early on failure).
    fn assert_running(&mut self, voxgate: &Voxgate) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "sipp exited early ({status}):\n{}\nvoxgate output:\n{}",
                self.output(),
                voxgate.output()
            );
        }
    }

    /// Tells every call to take its next step: one NOTIFY per call, carrying its Call-ID,
    /// paced at SIPp's own call rate.
    fn next_step(&self, transport: &str, step: u32, calls: u32) {
        let sipp: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let notify = |from: SocketAddr, call: u32| {
            let via = if transport == "u1" { "UDP" } else { "TCP" };
            format!(
                "NOTIFY sip:sipp@{sipp} SIP/2.0\r\n\
                 Via: SIP/2.0/{via} {from};branch=z9hG4bK-step{step}-{call}\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:test@{DOMAIN}>;tag=step{step}\r\n\
                 To: <sip:sipp@{DOMAIN}>\r\n\
                 Call-ID: reg-{call}@voxgate.test\r\n\
                 CSeq: {step} NOTIFY\r\n\
                 Event: voxgate-test-step\r\n\
                 Content-Length: 0\r\n\r\n"
            )
        };
        let pause_every = (RATE / 10).max(1);
        if transport == "u1" {
            let client = UdpClient::bind_loopback(sipp);
            for call in 1..=calls {
                client.send_to(notify(client.local_addr(), call).as_bytes(), sipp);
                if call % pause_every == 0 {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        } else {
            let mut stream = TcpStream::connect(sipp).expect("SIPp listens on its TCP port");
            let from = stream.local_addr().expect("connected");
            for call in 1..=calls {
                stream
                    .write_all(notify(from, call).as_bytes())
                    .expect("write to SIPp");
                if call % pause_every == 0 {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Waits for SIPp to finish; returns (exit code, successful calls, failed calls).
    fn finish(&mut self, voxgate: &Voxgate) -> (Option<i32>, u64, u64) {
        let exited = voxgate_test_harness::wait_until(Duration::from_secs(120), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!(
                "sipp still running after its last step:\n{}\nvoxgate output:\n{}",
                self.output(),
                voxgate.output()
            );
        }
        let status = self.child.wait().expect("sipp was reaped");
        let stats =
            std::fs::read_to_string(self.workdir.path().join("stat.csv")).unwrap_or_default();
        (
            status.code(),
            stat_column(&stats, "SuccessfulCall(C)").unwrap_or(0),
            stat_column(&stats, "FailedCall(C)").unwrap_or(u64::MAX),
        )
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
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

/// Checks every binding is SIPp's: one per extension, from SIPp's socket, over `transport`.
fn check_bindings(list: &[RegistrationEntry], sipp_port: u16, transport: &str) {
    let source: SocketAddr = ([127, 0, 0, 1], sipp_port).into();
    let extensions: BTreeSet<String> = list.iter().map(|r| r.extension.clone()).collect();
    let wanted: BTreeSet<String> = (FIRST..FIRST + COUNT).map(|n| n.to_string()).collect();
    assert_eq!(extensions, wanted, "one binding per extension");
    for r in list {
        let contact = format!(
            "sip:{}@{source};transport={}",
            r.extension,
            transport.to_ascii_uppercase()
        );
        assert!(
            r.source == source
                && r.transport == transport
                && r.contact == contact
                && r.user_agent.as_deref() == Some("SIPp voxgate-register"),
            "binding {r:?}: want source {source}, transport {transport}, contact {contact}, \
             SIPp's user agent"
        );
    }
}

fn registration_lifecycle(sipp_transport: &str) {
    if !require_tool("sipp", "sip-tester") {
        return;
    }
    let transport = if sipp_transport == "u1" { "udp" } else { "tcp" };
    let extensions = numbered_extensions(FIRST, COUNT);
    let voxgate = Voxgate::start(BIN, &config(&extensions));
    let target = if transport == "udp" {
        voxgate.udp()
    } else {
        voxgate.tcp()
    };
    let mut sipp = Sipp::start(target, sipp_transport, &extensions);

    // 1. Every extension registered, with SIPp's flow.
    let registered = voxgate.wait_for_registrations(API_LIMIT, "1,000 bindings", |list| {
        sipp.assert_running(&voxgate);
        list.len() == COUNT as usize
    });
    check_bindings(&registered, sipp.port, transport);
    assert!(
        registered
            .iter()
            .all(|r| r.expires_in <= 1800 && r.expires_in > 0),
        "granted 1800 s: {:?}",
        registered.iter().find(|r| r.expires_in > 1800)
    );

    // 2. Refresh: the same bindings, now with the longer expiry.
    sipp.next_step(sipp_transport, 1, COUNT);
    let refreshed = voxgate.wait_for_registrations(API_LIMIT, "every binding refreshed", |list| {
        sipp.assert_running(&voxgate);
        list.len() == COUNT as usize && list.iter().all(|r| r.expires_in > 1800)
    });
    check_bindings(&refreshed, sipp.port, transport);

    // 3. Unregister: SIPp still holds its socket (and TCP connection), so an empty list is
    //    the unregistration's doing, not a closed flow's.
    sipp.next_step(sipp_transport, 2, COUNT);
    voxgate.wait_for_registrations(API_LIMIT, "no bindings after Expires: 0", |list| {
        sipp.assert_running(&voxgate);
        list.is_empty()
    });

    // 4. SIPp ends: every call passed every step.
    sipp.next_step(sipp_transport, 3, COUNT);
    let (code, successful, failed) = sipp.finish(&voxgate);
    assert!(
        code == Some(0) && successful == u64::from(COUNT) && failed == 0,
        "sipp -t {sipp_transport}: exit {code:?}, {successful} successful, {failed} failed \
         (want exit 0, {COUNT} successful, 0 failed)\n{}",
        sipp.output()
    );
    let metrics = voxgate.metrics();
    assert_eq!(
        metrics.value("voxgate_registrations_active", &[]),
        Some(0.0),
        "{}",
        metrics.text
    );
}

#[test]
fn sipp_registers_refreshes_and_unregisters_1000_extensions_over_udp() {
    registration_lifecycle("u1");
}

#[test]
fn sipp_registers_refreshes_and_unregisters_1000_extensions_over_tcp() {
    registration_lifecycle("t1");
}

#[test]
fn stat_column_reads_last_row() {
    let csv = "A;SuccessfulCall(C);FailedCall(C);\n1;5;0;\n2;1000;3;\n";
    assert_eq!(stat_column(csv, "SuccessfulCall(C)"), Some(1000));
    assert_eq!(stat_column(csv, "FailedCall(C)"), Some(3));
    assert_eq!(stat_column("", "FailedCall(C)"), None);
}
