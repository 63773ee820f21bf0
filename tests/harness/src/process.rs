//! One running voxgate process: config file in a private temp dir, start-up handshake on
//! stdout (`listening ...` lines, then `ready`), captured output, signals, kill-and-reap on
//! drop. Does not know SIP or HTTP; see `sip.rs` and `http.rs`.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::http::{http_request, Metrics};
use crate::sip::{new_branch, options_request, Response, UdpClient};

/// Replaced by the process's private temp dir in every config the harness writes, so a
/// config can say `[store] path = "@DIR@/store"`.
pub const DIR_PLACEHOLDER: &str = "@DIR@";

/// How long start-up may take before the test fails. Generous: debug builds on a loaded
/// 2-core CI machine; this is a failure deadline, not a performance bound.
const READY_LIMIT: Duration = Duration::from_secs(60);

/// How long a graceful stop may take before the test fails.
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// A config for tests: the given SIP listeners, admin on an ephemeral loopback port, the
/// store in the private temp dir, `sip.domain = "voxgate.test"`, then `extra_sections`
/// (whole TOML tables such as `[limits]` or `[tls]`, each at most once).
pub fn test_config(sip_listen: &[&str], extra_sections: &str) -> String {
    let listen = sip_listen
        .iter()
        .map(|l| format!("\"{l}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[sip]\n\
         listen = [{listen}]\n\
         domain = \"voxgate.test\"\n\
         \n\
         [admin]\n\
         listen = \"127.0.0.1:0\"\n\
         \n\
         [store]\n\
         path = \"{DIR_PLACEHOLDER}/store\"\n\
         \n\
         {extra_sections}"
    )
}

/// [`test_config`] with UDP and TCP on ephemeral loopback ports and nothing extra.
pub fn default_config() -> String {
    test_config(&["udp:127.0.0.1:0", "tcp:127.0.0.1:0"], "")
}

/// One `listening KIND ADDR` line: `kind` is `"sip udp"`, `"sip tcp"`, `"sip tls"` or
/// `"admin"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub kind: String,
    pub addr: SocketAddr,
}

#[derive(Debug, Default)]
struct OutputState {
    lines: Vec<String>,
    ready: bool,
    /// Number of output streams (stdout, stderr) that reached end of file.
    closed: usize,
}

#[derive(Debug, Default)]
struct Output {
    state: Mutex<OutputState>,
    changed: Condvar,
}

impl Output {
    fn lock(&self) -> MutexGuard<'_, OutputState> {
        // A reader thread that panicked cannot corrupt a Vec of lines; keep the output.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, line: String) {
        let mut state = self.lock();
        if line.trim_end() == "ready" {
            state.ready = true;
        }
        state.lines.push(line);
        self.changed.notify_all();
    }

    fn close(&self) {
        self.lock().closed += 1;
        self.changed.notify_all();
    }

    fn text(&self) -> String {
        let state = self.lock();
        let mut text = state.lines.join("\n");
        text.push('\n');
        text
    }
}

/// A running voxgate. Dropping it kills (SIGKILL) and reaps the process; when the drop
/// happens during a panic (a failing test), the captured output is printed to stderr.
#[derive(Debug)]
pub struct Voxgate {
    child: Child,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    listeners: Vec<Listener>,
    output: Arc<Output>,
    readers: Vec<JoinHandle<()>>,
    exit: Option<ExitStatus>,
}

impl Voxgate {
    /// Writes `config_toml` (with [`DIR_PLACEHOLDER`] replaced) to `config.toml` in a fresh
    /// temp dir, runs `BIN run --config FILE`, and waits for the `ready` line. Panics, with the
    /// process output, if the process exits or is not ready within a minute.
    ///
    /// The environment variable `VOXGATE_TEST_BIN`, when set, replaces `bin` (to test a
    /// release build or an installed binary with the same tests).
    pub fn start(bin: impl AsRef<Path>, config_toml: &str) -> Voxgate {
        let bin = std::env::var_os("VOXGATE_TEST_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| bin.as_ref().to_path_buf());
        // The child runs in the temp dir: a relative path must not be resolved from there.
        let bin = std::fs::canonicalize(&bin).unwrap_or(bin);
        let dir = tempfile::Builder::new()
            .prefix("voxgate-test-")
            .tempdir()
            .expect("a temp dir can be created");
        std::fs::create_dir_all(dir.path().join("store")).expect("the temp dir is writable");
        let config_path = dir.path().join("config.toml");
        write_config(dir.path(), &config_path, config_toml);

        let mut child = Command::new(&bin)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .current_dir(dir.path())
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", bin.display()));

        let output = Arc::new(Output::default());
        let stdout = child.stdout.take().expect("stdout was piped");
        let stderr = child.stderr.take().expect("stderr was piped");
        let readers = vec![
            spawn_reader(stdout, "", Arc::clone(&output)),
            spawn_reader(stderr, "[stderr] ", Arc::clone(&output)),
        ];
        let mut voxgate = Voxgate {
            child,
            dir,
            config_path,
            listeners: Vec::new(),
            output,
            readers,
            exit: None,
        };
        voxgate.wait_ready();
        voxgate
    }

    fn wait_ready(&mut self) {
        let deadline = crate::now() + READY_LIMIT;
        {
            let mut state = self.output.lock();
            while !state.ready && state.closed < 2 {
                let left = deadline.saturating_duration_since(crate::now());
                if left.is_zero() {
                    break;
                }
                state = self
                    .output
                    .changed
                    .wait_timeout(state, left.min(Duration::from_millis(200)))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            if state.ready {
                self.listeners = state
                    .lines
                    .iter()
                    .filter_map(|l| parse_listening(l))
                    .collect();
            }
        }
        if self.listeners.is_empty() {
            let status = self.child.try_wait().ok().flatten();
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!(
                "voxgate did not become ready (exit status: {status:?}); its output:\n{}",
                self.output.text()
            );
        }
    }

    /// All listeners printed at start-up, in order.
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    fn listener(&self, kind: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|l| l.kind == kind)
            .map(|l| l.addr)
            .unwrap_or_else(|| {
                panic!(
                    "voxgate printed no `listening {kind}` line; its output:\n{}",
                    self.output.text()
                )
            })
    }

    /// The first SIP UDP listener. Panics if there is none.
    pub fn udp(&self) -> SocketAddr {
        self.listener("sip udp")
    }

    /// The first SIP TCP listener. Panics if there is none.
    pub fn tcp(&self) -> SocketAddr {
        self.listener("sip tcp")
    }

    /// The first SIP TLS listener. Panics if there is none.
    pub fn tls(&self) -> SocketAddr {
        self.listener("sip tls")
    }

    /// The admin HTTP listener. Panics if there is none.
    pub fn admin(&self) -> SocketAddr {
        self.listener("admin")
    }

    /// The config file the process was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The process's private temp dir (holds the config file and `store/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote so far (stdout lines, then stderr lines prefixed
    /// `[stderr] `, interleaved in arrival order).
    pub fn output(&self) -> String {
        self.output.text()
    }

    /// Replaces the config file's content ([`DIR_PLACEHOLDER`] substituted). The running
    /// process notices only on reload (SIGHUP or `POST /api/v1/reload`).
    pub fn rewrite_config(&self, config_toml: &str) {
        write_config(self.dir.path(), &self.config_path, config_toml);
    }

    /// Sends a signal with the `kill` command (`signal` like `"HUP"`, `"TERM"`); the
    /// workspace forbids `unsafe`, so no `libc::kill`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("the `kill` command runs");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exit = Some(status);
                false
            }
            Ok(None) => true,
            Err(e) => panic!("cannot poll voxgate's status: {e}"),
        }
    }

    /// Sends `signal` and waits for the process to exit; returns its exit status. Panics if it
    /// is still running after 30 s.
    pub fn stop_with(&mut self, signal: &str) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        self.signal(signal);
        let exited = crate::wait_until(STOP_LIMIT, || !self.is_running());
        assert!(
            exited,
            "voxgate did not exit within {STOP_LIMIT:?} of SIG{signal}; its output:\n{}",
            self.output()
        );
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        self.exit.expect("is_running() recorded the exit status")
    }

    /// SIGTERM and wait: the graceful stop systemd does.
    pub fn terminate(&mut self) -> ExitStatus {
        self.stop_with("TERM")
    }

    /// Sends an OPTIONS for voxgate itself (`sip:UDP-LISTENER`) over UDP from a fresh socket
    /// and returns the first final response; see [`Voxgate::request_udp`].
    pub fn options_udp(&self) -> Response {
        let target = self.udp();
        let client = UdpClient::bind_loopback(target);
        let msg = options_request(target, "UDP", client.local_addr(), &new_branch());
        self.request_with(&client, msg.as_bytes())
    }

    /// Sends `msg` over UDP to the SIP UDP listener from a fresh socket, retransmitting every
    /// 500 ms like a UAC, and returns the first final (non-1xx) response. Panics, with the
    /// process output, if none arrives within 10 s.
    pub fn request_udp(&self, msg: &[u8]) -> Response {
        let client = UdpClient::bind_loopback(self.udp());
        self.request_with(&client, msg)
    }

    /// Like [`Voxgate::request_udp`] from the given client socket.
    pub fn request_with(&self, client: &UdpClient, msg: &[u8]) -> Response {
        match client.request(self.udp(), msg, Duration::from_secs(10)) {
            Some(response) => response,
            None => panic!(
                "no final response within 10 s to:\n{}\nvoxgate output:\n{}",
                String::from_utf8_lossy(msg),
                self.output()
            ),
        }
    }

    /// Sends `datagram` once to the SIP UDP listener from a fresh socket and returns every
    /// datagram that comes back within `wait` (provisional ones included).
    pub fn send_and_collect(&self, datagram: &[u8], wait: Duration) -> Vec<Response> {
        let client = UdpClient::bind_loopback(self.udp());
        client.send_to(datagram, self.udp());
        client.collect(wait)
    }

    /// `http(admin, method, path)`; panics, with the process output, on a transport error.
    pub fn admin_http(&self, method: &str, path: &str) -> (u16, String) {
        http_request(self.admin(), method, path, b"").unwrap_or_else(|e| {
            panic!(
                "{method} {path} failed: {e}; voxgate output:\n{}",
                self.output()
            )
        })
    }

    /// `GET /metrics`, parsed. Panics unless the status is 200.
    pub fn metrics(&self) -> Metrics {
        let (status, body) = self.admin_http("GET", "/metrics");
        assert_eq!(status, 200, "GET /metrics: {body}");
        Metrics::parse(&body)
    }
}

impl Drop for Voxgate {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- voxgate (pid {}) output ----\n{}---- end of voxgate output ----",
                self.child.id(),
                self.output.text()
            );
        }
    }
}

fn write_config(dir: &Path, config_path: &Path, config_toml: &str) {
    let dir_text = dir.to_str().expect("temp dir paths are UTF-8");
    let text = config_toml.replace(DIR_PLACEHOLDER, dir_text);
    // Write then rename, so a reload never sees a half-written file.
    let tmp = config_path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).expect("the temp dir is writable");
    std::fs::rename(&tmp, config_path).expect("rename within the temp dir");
}

fn spawn_reader(
    stream: impl Read + Send + 'static,
    prefix: &'static str,
    output: Arc<Output>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']);
                    output.push(format!("{prefix}{line}"));
                }
            }
        }
        output.close();
    })
}

/// Parses `listening sip udp 127.0.0.1:5060` / `listening admin 127.0.0.1:8080`.
fn parse_listening(line: &str) -> Option<Listener> {
    let rest = line.trim_end().strip_prefix("listening ")?;
    let (kind, addr) = rest.rsplit_once(' ')?;
    let addr = addr.parse().ok()?;
    Some(Listener {
        kind: kind.to_owned(),
        addr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listening_lines() {
        assert_eq!(
            parse_listening("listening sip udp 127.0.0.1:40000"),
            Some(Listener {
                kind: "sip udp".into(),
                addr: "127.0.0.1:40000".parse().unwrap()
            })
        );
        assert_eq!(
            parse_listening("listening admin [::1]:8080").map(|l| l.kind),
            Some("admin".into())
        );
        assert_eq!(parse_listening("2025-01-01 INFO listening sip udp x"), None);
        assert_eq!(parse_listening("listening sip udp nonsense"), None);
    }

    #[test]
    fn test_config_has_placeholder_and_listeners() {
        let c = test_config(&["udp:127.0.0.1:0"], "[limits]\nx = 1\n");
        assert!(c.contains("listen = [\"udp:127.0.0.1:0\"]"));
        assert!(c.contains("@DIR@/store"));
        assert!(c.ends_with("[limits]\nx = 1\n"));
    }
}
