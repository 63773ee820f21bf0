//! Admin HTTP API on `[admin] listen` (ARCHITECTURE "Admin HTTP", FEATURES MON-02, SEC-01).
//!
//! Owns the HTTP server thread (tiny_http; no hand-written HTTP), routing, the JSON bodies
//! and the health verdict: `GET /metrics`, `GET /api/v1/health`, `POST /api/v1/reload`.
//! Unknown paths answer 404, known paths with the wrong method 405 with `Allow`, always
//! with a JSON body.
//!
//! Does not own: what a reload does (the `reload` callback from `main` parses, swaps and
//! counts it), the metric definitions (`metrics`), or the registrations/calls/CDR
//! endpoints (later milestones). The admin listener is meant for loopback (SEC-01); it has
//! no authentication of its own yet.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use serde_json::json;
use tiny_http::{Header, Method, Request, Response, Server};

use crate::metrics::{self, Metrics};

/// Health turns degraded when the store's filesystem has less free space than this
/// (FEATURES MON-02: "store disk under 10 % free").
pub const DEFAULT_DISK_MIN_FREE_RATIO: f64 = 0.10;

/// Everything the admin handlers read. Built by `main`, shared with the server thread.
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    /// The embedded store's directory; it need not exist yet (its nearest existing
    /// ancestor is measured then).
    pub store_path: PathBuf,
    /// Runs a configuration reload: `Err` carries the operator-facing message
    /// (`file:line:col: …`). It counts the attempt itself.
    pub reload: Box<dyn Fn() -> Result<(), String> + Send + Sync>,
    /// When the process started, for `uptime_seconds`.
    pub started: Instant,
    /// Free fraction (0..=1) of the store filesystem below which health is degraded.
    pub disk_min_free_ratio: f64,
    /// Further health checks, consulted on every `GET /api/v1/health`. This is the
    /// extension point for the rest of MON-02: the media-worker stall detector ("a media
    /// worker silent for 2 s") and store availability (Redis) register here once those
    /// components exist; in M2 there are no media workers, so none is registered.
    pub health_checks: Vec<Box<dyn HealthCheck>>,
}

impl AdminState {
    /// State with the MON-02 default disk threshold and no extra health checks.
    pub fn new(
        metrics: Arc<Metrics>,
        store_path: PathBuf,
        reload: Box<dyn Fn() -> Result<(), String> + Send + Sync>,
        started: Instant,
    ) -> Self {
        AdminState {
            metrics,
            store_path,
            reload,
            started,
            disk_min_free_ratio: DEFAULT_DISK_MIN_FREE_RATIO,
            health_checks: Vec::new(),
        }
    }
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("store_path", &self.store_path)
            .field("started", &self.started)
            .field("disk_min_free_ratio", &self.disk_min_free_ratio)
            .field(
                "health_checks",
                &self
                    .health_checks
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// One component's contribution to `GET /api/v1/health`. Must answer quickly and without
/// blocking on the component it checks (read a heartbeat timestamp, not a channel).
pub trait HealthCheck: Send + Sync {
    /// Stable machine-readable name, used in `reasons` and as the key in `checks`.
    fn name(&self) -> &'static str;
    fn check(&self) -> CheckOutcome;
}

/// Verdict of one health check.
#[allow(
    dead_code,
    reason = "constructed by the health checks of later milestones"
)]
#[derive(Debug, Clone, PartialEq)]
pub enum CheckOutcome {
    Healthy,
    /// Degraded, with a sentence for the operator.
    Degraded {
        detail: String,
    },
}

/// Free space of the filesystem holding a path.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskUsage {
    /// The path actually measured: the store path or its nearest existing ancestor.
    pub measured: PathBuf,
    /// Blocks available to unprivileged users over total blocks, 0..=1.
    pub free_ratio: f64,
}

/// Why the store filesystem could not be measured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskError {
    #[error("statvfs {path}: {source}")]
    Statvfs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A filesystem reporting zero blocks (a pseudo filesystem) has no meaningful ratio.
    #[error("{path}: filesystem reports no blocks")]
    NoBlocks { path: PathBuf },
}

/// Measures the filesystem holding `path`, or its nearest existing ancestor when the store
/// directory has not been created yet.
pub fn disk_usage(path: &Path) -> Result<DiskUsage, DiskError> {
    let mut candidates = path.ancestors().peekable();
    while let Some(candidate) = candidates.next() {
        // A relative path ends in "", which means the working directory.
        let candidate = if candidate.as_os_str().is_empty() {
            Path::new(".")
        } else {
            candidate
        };
        match rustix::fs::statvfs(candidate) {
            Ok(stat) if stat.f_blocks == 0 => {
                return Err(DiskError::NoBlocks {
                    path: candidate.to_owned(),
                })
            }
            Ok(stat) => {
                return Ok(DiskUsage {
                    measured: candidate.to_owned(),
                    // Both counts are in f_frsize units; u64 → f64 loses nothing that
                    // matters for a ratio.
                    free_ratio: (stat.f_bavail as f64 / stat.f_blocks as f64).clamp(0.0, 1.0),
                });
            }
            Err(errno)
                if (errno == rustix::io::Errno::NOENT || errno == rustix::io::Errno::NOTDIR)
                    && candidates.peek().is_some() =>
            {
                continue
            }
            Err(errno) => {
                return Err(DiskError::Statvfs {
                    path: candidate.to_owned(),
                    source: errno.into(),
                })
            }
        }
    }
    // `ancestors()` always yields at least the path itself, so the loop returned.
    Err(DiskError::Statvfs {
        path: path.to_owned(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })
}

/// The running admin server. Dropping it (or [`AdminServer::shutdown`]) stops the thread.
pub struct AdminServer {
    local_addr: SocketAddr,
    server: Arc<Server>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// The bound address (the real port when `listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, finishes the request in progress, and joins the thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stopping.store(true, Ordering::SeqCst);
        self.server.unblock();
        if thread.join().is_err() {
            tracing::error!("admin HTTP thread panicked");
        }
    }
}

impl std::fmt::Debug for AdminServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminServer")
            .field("local_addr", &self.local_addr)
            .field("running", &self.thread.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds `listen` and serves the admin API on a thread named `admin-http`.
pub fn spawn(listen: SocketAddr, state: Arc<AdminState>) -> std::io::Result<AdminServer> {
    let server = Server::http(listen).map_err(std::io::Error::other)?;
    let local_addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| std::io::Error::other("admin listener is not an IP socket"))?;
    let server = Arc::new(server);
    let stopping = Arc::new(AtomicBool::new(false));
    let thread = {
        let server = Arc::clone(&server);
        let stopping = Arc::clone(&stopping);
        std::thread::Builder::new()
            .name("admin-http".into())
            .spawn(move || serve(&server, &state, &stopping))?
    };
    tracing::info!(%local_addr, "admin HTTP listening");
    Ok(AdminServer {
        local_addr,
        server,
        stopping,
        thread: Some(thread),
    })
}

fn serve(server: &Server, state: &AdminState, stopping: &AtomicBool) {
    loop {
        match server.recv() {
            Ok(request) => handle(request, state),
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(error) => {
                // tiny_http's accept thread ends after reporting an accept error, so no
                // further request can arrive.
                tracing::error!(%error, "admin HTTP listener failed; admin API stopped");
                return;
            }
        }
    }
}

/// The routes: path, allowed methods, handler.
type Handler = fn(&AdminState) -> Reply;
const ROUTES: [(&str, &[Method], Handler); 3] = [
    ("/metrics", &[Method::Get, Method::Head], metrics_reply),
    ("/api/v1/health", &[Method::Get, Method::Head], health_reply),
    ("/api/v1/reload", &[Method::Post], reload_reply),
];

/// A response before it is written.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
    allow: Option<String>,
}

impl Reply {
    fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: body.to_string(),
            allow: None,
        }
    }
}

fn handle(request: Request, state: &AdminState) {
    let path = request.url().split(['?', '#']).next().unwrap_or_default();
    let reply = route(request.method(), path, state);
    let method = request.method().clone();
    let status = reply.status;
    let mut response = Response::from_string(reply.body)
        .with_status_code(reply.status)
        .with_header(header("Content-Type", reply.content_type));
    if let Some(allow) = &reply.allow {
        response.add_header(header("Allow", allow));
    }
    tracing::debug!(%method, path = request.url(), status, "admin request");
    if let Err(error) = request.respond(response) {
        // The client went away; nothing to tell it.
        tracing::debug!(%error, "admin response not delivered");
    }
}

fn route(method: &Method, path: &str, state: &AdminState) -> Reply {
    let Some((_, allowed, handler)) = ROUTES.iter().find(|(p, _, _)| *p == path) else {
        return Reply::json(404, json!({ "error": "not found", "path": path }));
    };
    if !allowed.contains(method) {
        let allow = allowed
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let mut reply = Reply::json(
            405,
            json!({ "error": "method not allowed", "path": path, "allow": allow }),
        );
        reply.allow = Some(allow);
        return reply;
    }
    handler(state)
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes())
        .expect("header names and values here are static ASCII")
}

/// Measures the store disk and records the ratio in the gauge.
fn measure_store(state: &AdminState) -> Result<DiskUsage, DiskError> {
    let usage = disk_usage(&state.store_path)?;
    state.metrics.store_disk_free_ratio.set(usage.free_ratio);
    Ok(usage)
}

fn metrics_reply(state: &AdminState) -> Reply {
    // Refresh the disk gauge at scrape time; a failure shows up in health, not here.
    if let Err(error) = measure_store(state) {
        tracing::debug!(%error, "store disk not measured for /metrics");
    }
    match state.metrics.try_render() {
        Ok(body) => Reply {
            status: 200,
            content_type: metrics::CONTENT_TYPE,
            body,
            allow: None,
        },
        Err(error) => {
            tracing::error!(%error, "metrics export failed");
            Reply::json(500, json!({ "error": error.to_string() }))
        }
    }
}

fn health_reply(state: &AdminState) -> Reply {
    let mut reasons = Vec::new();
    let mut checks = serde_json::Map::new();

    let store = match measure_store(state) {
        Ok(usage) if usage.free_ratio < state.disk_min_free_ratio => {
            reasons.push("store_disk");
            json!({
                "status": "degraded",
                "detail": format!(
                    "{:.1}% free, below the {:.1}% minimum",
                    usage.free_ratio * 100.0,
                    state.disk_min_free_ratio * 100.0
                ),
                "path": usage.measured.display().to_string(),
                "free_ratio": usage.free_ratio,
            })
        }
        Ok(usage) => json!({
            "status": "ok",
            "path": usage.measured.display().to_string(),
            "free_ratio": usage.free_ratio,
        }),
        Err(error) => {
            // Not knowing whether the store can be written is itself degraded.
            reasons.push("store_disk");
            json!({ "status": "degraded", "detail": error.to_string() })
        }
    };
    checks.insert("store_disk".into(), store);

    for check in &state.health_checks {
        let result = match check.check() {
            CheckOutcome::Healthy => json!({ "status": "ok" }),
            CheckOutcome::Degraded { detail } => {
                reasons.push(check.name());
                json!({ "status": "degraded", "detail": detail })
            }
        };
        checks.insert(check.name().into(), result);
    }

    let mut body = json!({
        "status": if reasons.is_empty() { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "checks": checks,
    });
    if reasons.is_empty() {
        Reply::json(200, body)
    } else {
        body["reasons"] = json!(reasons);
        Reply::json(503, body)
    }
}

fn reload_reply(state: &AdminState) -> Reply {
    // A panic in the reload path must not take the admin API down with it.
    match std::panic::catch_unwind(AssertUnwindSafe(|| (state.reload)())) {
        Ok(Ok(())) => Reply::json(200, json!({ "result": "ok" })),
        // The new config was refused; the running one stays.
        Ok(Err(error)) => Reply::json(400, json!({ "result": "error", "error": error })),
        Err(_) => Reply::json(
            500,
            json!({ "result": "error", "error": "internal error while reloading" }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::atomic::AtomicUsize;

    use voxgate_controlplane::sip::{Method as SipMethod, Transport};
    use voxgate_controlplane::stats::EndpointStats;

    use super::*;

    /// A parsed HTTP/1.1 response.
    #[derive(Debug)]
    struct HttpResponse {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl HttpResponse {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.body).expect("JSON body")
        }
    }

    /// Sends one request with `Connection: close` and reads the whole response.
    fn http(addr: SocketAddr, method: &str, path: &str) -> HttpResponse {
        let mut stream = TcpStream::connect(addr).expect("connect to admin server");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).expect("send request");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read response");
        let raw = String::from_utf8(raw).expect("UTF-8 response");
        let (head, body) = raw.split_once("\r\n\r\n").expect("header/body separator");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        HttpResponse {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "tests stand in for main, which owns the clock"
    )]
    fn state_with(
        store: &Path,
        reload: Box<dyn Fn() -> Result<(), String> + Send + Sync>,
    ) -> AdminState {
        AdminState::new(
            Arc::new(Metrics::new()),
            store.to_owned(),
            reload,
            Instant::now(),
        )
    }

    #[test]
    fn serves_metrics_health_and_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = Arc::new(state_with(dir.path(), Box::new(|| Ok(()))));
        let mut stats = EndpointStats::default();
        stats.count_request(&SipMethod::Options, Transport::Udp);
        stats.count_response(200);
        state.metrics.publish_sip(&stats);
        let server =
            spawn("127.0.0.1:0".parse().expect("addr"), Arc::clone(&state)).expect("spawn admin");
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);

        let metrics = http(addr, "GET", "/metrics");
        assert_eq!(metrics.status, 200);
        assert_eq!(
            metrics.header("Content-Type"),
            Some("text/plain; version=0.0.4")
        );
        for name in [
            "voxgate_build_info",
            "voxgate_sip_requests_total{method=\"OPTIONS\",transport=\"udp\"} 1",
            "voxgate_sip_responses_total{code=\"200\"} 1",
            "voxgate_sip_dropped_total{reason=\"malformed\"} 0",
            "voxgate_config_reloads_total",
            "voxgate_transactions_active",
            "voxgate_store_disk_free_ratio",
            "voxgate_uptime_seconds",
        ] {
            assert!(
                metrics.body.contains(name),
                "{name} missing:\n{}",
                metrics.body
            );
        }
        // The scrape measured the temp dir's filesystem.
        let ratio = state.metrics.store_disk_free_ratio.get();
        assert!((0.0..=1.0).contains(&ratio) && ratio > 0.0, "{ratio}");

        let health = http(addr, "GET", "/api/v1/health?verbose=1");
        assert_eq!(health.header("Content-Type"), Some("application/json"));
        let body = health.json();
        // The temp filesystem may genuinely be nearly full; the verdict must match it.
        if ratio >= DEFAULT_DISK_MIN_FREE_RATIO {
            assert_eq!(health.status, 200, "{body}");
            assert_eq!(body["status"], "ok");
        } else {
            assert_eq!(health.status, 503, "{body}");
        }
        assert_eq!(
            body["checks"]["store_disk"]["path"],
            json!(dir.path().display().to_string())
        );

        let missing = http(addr, "GET", "/api/v1/nope");
        assert_eq!(missing.status, 404);
        assert_eq!(missing.json()["error"], "not found");

        let wrong = http(addr, "POST", "/metrics");
        assert_eq!(wrong.status, 405);
        assert_eq!(wrong.header("Allow"), Some("GET, HEAD"));
        assert_eq!(wrong.json()["allow"], "GET, HEAD");

        let wrong = http(addr, "GET", "/api/v1/reload");
        assert_eq!(wrong.status, 405);
        assert_eq!(wrong.header("Allow"), Some("POST"));

        server.shutdown();
        assert!(TcpStream::connect(addr).is_err() || http_fails(addr));
    }

    /// After shutdown the port may still accept briefly at the OS level, but nobody
    /// answers: the request gets no HTTP response.
    fn http_fails(addr: SocketAddr) -> bool {
        let Ok(mut stream) = TcpStream::connect(addr) else {
            return true;
        };
        let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .map(|_| raw.is_empty())
            .unwrap_or(true)
    }

    #[test]
    fn reload_reports_ok_error_and_panic() {
        let dir = tempfile::tempdir().expect("temp dir");
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let state = Arc::new(state_with(
            dir.path(),
            Box::new(move || match counter.fetch_add(1, Ordering::SeqCst) {
                0 => Ok(()),
                1 => Err("voxgate.toml:3:9: unknown key `lisen`".to_owned()),
                _ => panic!("reload bug"),
            }),
        ));
        let server = spawn("127.0.0.1:0".parse().expect("addr"), state).expect("spawn admin");
        let addr = server.local_addr();

        let ok = http(addr, "POST", "/api/v1/reload");
        assert_eq!(ok.status, 200);
        assert_eq!(ok.json(), json!({ "result": "ok" }));

        let refused = http(addr, "POST", "/api/v1/reload");
        assert_eq!(refused.status, 400);
        assert_eq!(
            refused.json(),
            json!({ "result": "error", "error": "voxgate.toml:3:9: unknown key `lisen`" })
        );

        let crashed = http(addr, "POST", "/api/v1/reload");
        assert_eq!(crashed.status, 500);
        assert_eq!(crashed.json()["result"], "error");
        // The server survived the panic.
        assert_eq!(http(addr, "GET", "/api/v1/nope").status, 404);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        server.shutdown();
    }

    struct Stalled;

    impl HealthCheck for Stalled {
        fn name(&self) -> &'static str {
            "media_worker_0"
        }
        fn check(&self) -> CheckOutcome {
            CheckOutcome::Degraded {
                detail: "silent for 2.5 s".into(),
            }
        }
    }

    #[test]
    fn degraded_when_disk_low_or_a_check_fails() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut state = state_with(dir.path(), Box::new(|| Ok(())));
        // No filesystem is more than 100 % free: the disk check must trip.
        state.disk_min_free_ratio = 1.1;
        state.health_checks.push(Box::new(Stalled));
        let server =
            spawn("127.0.0.1:0".parse().expect("addr"), Arc::new(state)).expect("spawn admin");
        let health = http(server.local_addr(), "GET", "/api/v1/health");
        assert_eq!(health.status, 503);
        let body = health.json();
        assert_eq!(body["status"], "degraded");
        assert_eq!(body["reasons"], json!(["store_disk", "media_worker_0"]));
        assert_eq!(
            body["checks"]["media_worker_0"]["detail"],
            "silent for 2.5 s"
        );
        assert_eq!(body["checks"]["store_disk"]["status"], "degraded");
    }

    #[test]
    fn disk_usage_of_missing_path_uses_nearest_ancestor() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("not/yet/created");
        let usage = disk_usage(&missing).expect("ancestor measured");
        assert_eq!(usage.measured, dir.path());
        assert!((0.0..=1.0).contains(&usage.free_ratio));

        let relative = disk_usage(Path::new("surely-missing-dir/store")).expect("cwd measured");
        assert_eq!(relative.measured, Path::new("."));

        // A regular file in the way: NOTDIR walks up to the file, which statvfs accepts.
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").expect("write file");
        let usage = disk_usage(&file.join("store")).expect("measured");
        assert_eq!(usage.measured, file);
    }
}
