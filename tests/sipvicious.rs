//! SIPVicious (Debian package `sipvicious`) against the real binary, as an attacker on the
//! internet would run it (SEC-13, SEC-14, SEC-03):
//! - `svwar` enumerating extensions 1000-1020 (1000-1009 exist) from 127.0.0.5 gets nothing
//!   at all from the default edge (its User-Agent is on the scanner list), and with the
//!   scanner list and rate limits off it still cannot tell existing extensions from missing
//!   ones, with REGISTER, INVITE or OPTIONS probes;
//! - on the wire, a known and an unknown user get the same challenge and the same 403;
//! - `svcrack` against extension 1000 from 127.0.0.6, with the right password at the end of
//!   its word list, is banned before it gets there — and with the lockout lifted it does
//!   find it, so the first result is the ban's doing.
//!
//! Every run is bounded: `--maximumtime` ends a run after a few seconds without answers, and
//! a 90 s failure deadline kills a stuck one. SIPVicious 0.3.3 ignores its own `-b` (bind
//! address) option in svwar and svcrack, so the tools run under a small Python shim that
//! binds their socket to the attacker's loopback address instead of the wildcard.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use voxgate_test_harness::{
    extension_tables, numbered_extensions, require_tool, test_config, tool_available, transact,
    wait_until, Challenge, RegisterSession, Response, TestExtension, UdpClient, Voxgate,
};

const BIN: &str = env!("CARGO_BIN_EXE_voxgate");
const DOMAIN: &str = "voxgate.test";
const SCANNER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5));
const CRACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6));
/// The scanned range: 1000-1009 exist, 1010-1020 do not.
const SCANNED: std::ops::RangeInclusive<u32> = 1000..=1020;
const LIMIT: Duration = Duration::from_secs(30);
/// Hard failure deadline for one tool run.
const RUN_LIMIT: Duration = Duration::from_secs(90);

/// Runs a SIPVicious script (argv[2]) with its sockets bound to argv[1] instead of the
/// wildcard address, passing it the remaining arguments.
const BIND_SHIM: &str = r#"
import os, runpy, socket, sys
bind_ip, tool = sys.argv[1], os.path.realpath(sys.argv[2])
_bind = socket.socket.bind
def bind(self, address):
    if isinstance(address, tuple) and address[0] in ("", "0.0.0.0"):
        address = (bind_ip,) + tuple(address[1:])
    return _bind(self, address)
socket.socket.bind = bind
sys.path.insert(0, os.path.dirname(tool))
sys.argv = [sys.argv[2]] + sys.argv[3:]
runpy.run_path(tool, run_name="__main__")
"#;

/// The installed name of a SIPVicious tool: `svwar` in Debian 12's 0.3.3, or
/// `sipvicious_svwar` in later packages. None (after a loud skip) when neither is there.
fn tool(short: &str) -> Option<PathBuf> {
    let long = format!("sipvicious_{short}");
    let name = if tool_available(&long) {
        long
    } else if require_tool(short, "sipvicious") {
        short.to_owned()
    } else {
        return None;
    };
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(&name))
        .find(|p| p.is_file())
}

#[derive(Debug)]
struct ToolRun {
    stdout: String,
    stderr: String,
}

fn run(tool: &Path, bind: IpAddr, args: &[String]) -> ToolRun {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(BIND_SHIM)
        .arg(bind.to_string())
        .arg(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (sipvicious depends on it)");
    let exited = wait_until(RUN_LIMIT, || matches!(child.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("the tool was reaped");
    let run = ToolRun {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        exited,
        "{} {args:?} still running after {RUN_LIMIT:?}: {run:?}",
        tool.display()
    );
    // A crashed tool (or shim) prints nothing found too: that must not pass for a defence.
    assert!(
        !run.stderr.contains("Traceback"),
        "{} {args:?} crashed: {run:?}",
        tool.display()
    );
    run
}

/// A UDP port free on `ip` at the time of asking, for the tool's `-P` (its default, 5060,
/// would be shared by parallel runs, and answers to one run would reach the next).
fn free_port(ip: IpAddr) -> u16 {
    UdpSocket::bind(SocketAddr::new(ip, 0))
        .and_then(|s| s.local_addr())
        .expect("an ephemeral UDP port")
        .port()
}

/// Rows of the result table a tool prints (`| 1000 | reqauth |`), header excluded.
fn table(output: &str) -> Vec<(String, String)> {
    output
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().strip_prefix('|')?.split('|').collect();
            let (first, second) = (cells.first()?.trim(), cells.get(1)?.trim());
            (first != "Extension").then(|| (first.to_owned(), second.to_owned()))
        })
        .collect()
}

fn start(extensions: &[TestExtension], security: &str) -> Voxgate {
    Voxgate::start(
        BIN,
        &test_config(
            &["udp:127.0.0.1:0"],
            &format!("{security}\n{}", extension_tables(extensions)),
        ),
    )
}

/// The edge with its two enumeration shortcuts off: no scanner User-Agent list, and rate
/// and flood limits out of reach, so every probe is answered and only SEC-14 (identical
/// answers) stands between svwar and the extension list.
const ANSWER_EVERYTHING: &str = "[security]\nscanner_user_agents = []\n\n\
     [security.rate]\nrate = 100000\nburst = 100000\n\n\
     [security.flood]\nrequests = 1000000\n";

fn total(voxgate: &Voxgate, name: &str) -> f64 {
    voxgate.metrics().series(name).iter().map(|s| s.value).sum()
}

/// What svwar reported for each scanned extension (None: not listed).
fn svwar(
    voxgate: &Voxgate,
    svwar: &Path,
    method: &str,
) -> (BTreeMap<u32, Option<String>>, ToolRun) {
    let target = voxgate.udp();
    let args: Vec<String> = vec![
        "--force".into(),
        "-m".into(),
        method.into(),
        format!("-e{}-{}", SCANNED.start(), SCANNED.end()),
        "-p".into(),
        target.port().to_string(),
        "-P".into(),
        free_port(SCANNER).to_string(),
        "--maximumtime=3".into(),
        target.ip().to_string(),
    ];
    let run = run(svwar, SCANNER, &args);
    let rows = table(&run.stdout);
    let report = SCANNED
        .map(|n| {
            let label = rows
                .iter()
                .find(|(ext, _)| *ext == n.to_string())
                .map(|(_, label)| label.clone());
            (n, label)
        })
        .collect();
    (report, run)
}

#[test]
fn svwar_hears_nothing_from_the_default_edge() {
    let Some(svwar_path) = tool("svwar") else {
        return;
    };
    let voxgate = start(&numbered_extensions(1000, 10), "");
    let (report, run) = svwar(&voxgate, &svwar_path, "REGISTER");
    assert!(
        report.values().all(Option::is_none),
        "svwar listed extensions: {report:?}\n{run:?}"
    );
    // Silence because its User-Agent is a scanner's, not because nothing arrived.
    let dropped = wait_until(LIMIT, || {
        voxgate
            .metrics()
            .value("voxgate_sip_dropped_total", &[("reason", "scanner")])
            .unwrap_or(0.0)
            >= 1.0
    });
    assert!(dropped, "{}\n{run:?}", voxgate.metrics().text);
    assert_eq!(
        voxgate
            .metrics()
            .value("voxgate_sip_responses_total", &[])
            .unwrap_or(0.0),
        0.0,
        "the scanner was answered"
    );
}

#[test]
fn svwar_cannot_tell_existing_extensions_from_missing_ones() {
    let Some(svwar_path) = tool("svwar") else {
        return;
    };
    let voxgate = start(&numbered_extensions(1000, 10), ANSWER_EVERYTHING);
    for method in ["REGISTER", "INVITE", "OPTIONS"] {
        let answered_before = total(&voxgate, "voxgate_sip_responses_total");
        let (report, run) = svwar(&voxgate, &svwar_path, method);
        let labels: std::collections::BTreeSet<&Option<String>> = report.values().collect();
        assert_eq!(
            labels.len(),
            1,
            "svwar -m {method} reported existing and missing extensions differently: \
             {report:?}\n{run:?}"
        );
        // The probes were answered: svwar saw voxgate's answers and still learnt nothing.
        let answered = wait_until(LIMIT, || {
            total(&voxgate, "voxgate_sip_responses_total") > answered_before
        });
        assert!(answered, "svwar -m {method} got no answers at all\n{run:?}");
    }
    assert!(voxgate.registrations().is_empty());
}

/// The answer's header names in order, for comparing the shape of two answers.
fn header_names(r: &Response) -> Vec<String> {
    let text = r.text();
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| {
            l.split_once(':')
                .map(|(n, _)| n.trim().to_ascii_lowercase())
        })
        .collect()
}

/// The parts of a challenge that must not depend on the user: realm, algorithm, qop, nonce
/// length.
fn challenge_shape(r: &Response) -> Vec<(String, String, bool, usize, bool)> {
    Challenge::all_of(r)
        .into_iter()
        .map(|c| {
            (
                c.realm,
                c.algorithm_token,
                c.qop_auth,
                c.nonce.len(),
                c.opaque.is_some(),
            )
        })
        .collect()
}

#[test]
fn known_and_unknown_users_get_the_same_answers_on_the_wire() {
    let voxgate = start(&numbered_extensions(1000, 10), "");
    let client = UdpClient::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7)), 0));
    let target = voxgate.udp();
    let known = TestExtension::numbered(1000);
    let unknown = TestExtension::numbered(1015);
    let mut answers = Vec::new();
    for ext in [&known, &unknown] {
        // Challenge, then a wrong password answering it.
        let mut wrong = ext.clone();
        wrong.password = "a-wrong-password-entirely".to_owned();
        let mut session = RegisterSession::new(&wrong, DOMAIN, "UDP", client.local_addr());
        let first = session.request(Some(600));
        let challenge = transact(&client, target, first.text.as_bytes(), &first.branch, LIMIT)
            .expect("the REGISTER is answered");
        assert!(session.take_challenge(&challenge), "{challenge:?}");
        let second = session.request(Some(600));
        let refusal = transact(
            &client,
            target,
            second.text.as_bytes(),
            &second.branch,
            LIMIT,
        )
        .expect("the wrong password is answered");
        // An INVITE to the user, without credentials.
        let invite = voxgate_test_harness::request(
            "INVITE",
            &format!("sip:{}@{DOMAIN}", ext.number),
            "UDP",
            client.local_addr(),
            &voxgate_test_harness::new_branch(),
        );
        let branch = voxgate_test_harness::via_branch(&Response::parse(invite.as_bytes()))
            .expect("the harness request has a branch");
        let invite_answer = transact(&client, target, invite.as_bytes(), &branch, LIMIT)
            .expect("the INVITE is answered");
        answers.push((challenge, refusal, invite_answer));
    }
    let (k, u) = (&answers[0], &answers[1]);
    for (what, a, b, code) in [
        ("REGISTER challenge", &k.0, &u.0, 401),
        ("wrong password", &k.1, &u.1, 403),
        ("INVITE challenge", &k.2, &u.2, 407),
    ] {
        assert!(
            a.code == code && b.code == code && a.reason == b.reason,
            "{what}: known {a:?}\nunknown {b:?}"
        );
        assert_eq!(header_names(a), header_names(b), "{what}: {a:?}\n{b:?}");
        assert_eq!(
            challenge_shape(a),
            challenge_shape(b),
            "{what}: {a:?}\n{b:?}"
        );
    }
    assert!(
        !challenge_shape(&k.0).is_empty() && !challenge_shape(&k.2).is_empty(),
        "challenges carry digest parameters: {k:?}"
    );
}

/// 50 wrong passwords, then the right one.
fn word_list(dir: &Path, right: &str) -> PathBuf {
    let mut words: Vec<String> = (1..=50)
        .map(|i| format!("guess-{i:02}-Summer2024!"))
        .collect();
    words.push(right.to_owned());
    let path = dir.join("words.txt");
    std::fs::write(&path, words.join("\n") + "\n").expect("the temp dir is writable");
    path
}

fn svcrack(voxgate: &Voxgate, svcrack: &Path, words: &Path) -> ToolRun {
    let target = voxgate.udp();
    let args: Vec<String> = vec![
        "-u".into(),
        "1000".into(),
        "-d".into(),
        words.display().to_string(),
        "-p".into(),
        target.port().to_string(),
        "-P".into(),
        free_port(CRACKER).to_string(),
        "--maximumtime=3".into(),
        target.ip().to_string(),
    ];
    run(svcrack, CRACKER, &args)
}

#[test]
fn svcrack_is_banned_before_it_reaches_the_password() {
    let Some(svcrack_path) = tool("svcrack") else {
        return;
    };
    let extensions = numbered_extensions(1000, 10);
    // Only the brute-force lockout (SEC-03, defaults) stands in the way.
    let voxgate = start(&extensions, ANSWER_EVERYTHING);
    let dir = tempfile::tempdir().expect("a temp dir can be created");
    let password = &extensions[0].password;
    let run = svcrack(&voxgate, &svcrack_path, &word_list(dir.path(), password));
    assert!(
        table(&run.stdout).is_empty() && !run.stdout.contains(password.as_str()),
        "svcrack found the password: {run:?}"
    );
    let bans = voxgate.wait_for_bans(LIMIT, "svcrack's address banned", |b| {
        b.iter().any(|b| b.ip == CRACKER)
    });
    assert!(
        bans.iter()
            .any(|b| b.ip == CRACKER && b.reason == "auth_failures"),
        "{bans:?}"
    );
    // The word list's last entry is the real password: a phone registers with it.
    let phone = UdpClient::bind_loopback(voxgate.udp());
    let mut session = RegisterSession::new(&extensions[0], DOMAIN, "UDP", phone.local_addr());
    let answer = session
        .register_udp(&phone, voxgate.udp(), Some(600))
        .expect("the phone is answered");
    assert_eq!(answer.code, 200, "{answer:?}");
}

/// Calibration for the test above: with the lockout out of reach, the same svcrack run
/// against the same voxgate finds the password, so "not found" above is the ban's doing
/// and not a digest incompatibility.
#[test]
fn svcrack_finds_the_password_when_the_lockout_is_out_of_reach() {
    let Some(svcrack_path) = tool("svcrack") else {
        return;
    };
    let extensions = numbered_extensions(1000, 10);
    let voxgate = start(
        &extensions,
        &format!(
            "{ANSWER_EVERYTHING}\n[security.auth_fail]\nper_account = 1000\nper_ip = 100000\n"
        ),
    );
    let dir = tempfile::tempdir().expect("a temp dir can be created");
    let password = &extensions[0].password;
    let run = svcrack(&voxgate, &svcrack_path, &word_list(dir.path(), password));
    assert!(
        table(&run.stdout)
            .iter()
            .any(|(ext, found)| ext == "1000" && found == password),
        "svcrack did not find the password without the lockout: {run:?}"
    );
    assert!(voxgate.bans().is_empty());
}

#[test]
fn reads_result_tables() {
    let out = "+-----------+----------------+\n| Extension | Authentication |\n\
               +===========+================+\n| 1000      | reqauth        |\n\
               | 1001      | weird          |\n+-----------+----------------+\n";
    assert_eq!(
        table(out),
        [
            ("1000".to_owned(), "reqauth".to_owned()),
            ("1001".to_owned(), "weird".to_owned())
        ]
    );
    assert!(table("WARNING:root:found nothing\n").is_empty());
}
