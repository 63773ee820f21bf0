//! Admin HTTP API on `[admin] listen` (ARCHITECTURE "Admin HTTP", FEATURES MON-02, SEC-01).
//!
//! Owns the HTTP server thread (tiny_http; no hand-written HTTP), routing, the JSON bodies
//! and the health verdict: `GET /metrics`, `GET /api/v1/health`, `POST /api/v1/reload`,
//! `GET /api/v1/registrations`, `GET /api/v1/bans`, `DELETE /api/v1/bans/{ip}`, and the
//! extensions endpoints below. Unknown paths answer 404, known paths with the wrong method
//! 405 with `Allow`, always with a JSON body. A request body is at most 64 KiB (413).
//!
//! # Extensions (EXT-01, SEC-09; model and rules in `crate::extensions`)
//! - `GET /api/v1/extensions` → 200 `{"count": n, "extensions": [{"number", "auth_id",
//!   "name", "networks": ["192.0.2.0/24"], "source": "config"|"api", "registered": bool,
//!   "contacts": n}]}`, file extensions first. An API extension the file shadows (same
//!   number or auth ID: the file wins, the API one is not in use) has `"shadowed": true`;
//!   one whose credentials were set in another realm has `"realm_mismatch": true`. Never
//!   a password or an HA1.
//! - `POST /api/v1/extensions` with `{"number", "auth_id"?, "password"?, "name"?,
//!   "networks"?}` → 201 with the new entry. Without `password`, voxgate generates 20
//!   random letters and digits and returns them in this response only, as `"password"`.
//!   The extension is on disk before the 201 is sent. Errors: 400 `{"error", "field"}`
//!   (the config file's rules: number, auth ID, `auth.min_password_length`, CIDR
//!   networks; a body that is not such an object has no `field`), 409 when the number or
//!   auth ID is taken (file or API).
//! - `DELETE /api/v1/extensions/{number}` → 204: the API extension is deleted from the
//!   store and its contacts are unbound. 409 for an extension defined in the config file
//!   ("defined in FILE; remove it there and reload"), 404 for an unknown number.
//!
//! Registrations and bans live in the SIP driver thread. A listing asks the driver for
//! them ([`AdminState::registrations`], [`AdminState::bans`]: commands answered on the
//! driver's next loop turn), so nothing is copied while nobody is looking: with 100,000
//! bindings a published snapshot would cost the driver a copy of every binding each second.
//! Lifting a ban is a command too ([`AdminState::unban`]).
//!
//! Does not own: what a reload or an unban does (callbacks from `main`), the metric
//! definitions (`metrics`), or the calls/CDR endpoints (later milestones). The admin
//! listener is meant for loopback (SEC-01); it has no authentication of its own yet.

use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use serde::Serialize;
use serde_json::json;

use crate::extensions::{Created, ExtensionError, ExtensionView, NewExtension};
use tiny_http::{Header, Method, Request, Response, Server};
use voxgate_controlplane::registrar::Binding;
use voxgate_controlplane::security::Ban;

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
    /// The registrar's bindings now (`GET /api/v1/registrations`), asked of the driver;
    /// `Err` with an operator-facing message when it could not be asked (503).
    pub registrations: Lister<RegistrationView>,
    /// The bans in force now (`GET /api/v1/bans`), asked of the driver.
    pub bans: Lister<BanView>,
    /// Lifts the ban of an address (`DELETE /api/v1/bans/{ip}`): `Ok(true)` when one was
    /// lifted, `Ok(false)` when the address was not banned, `Err` with an operator-facing
    /// message when the driver could not be asked. Wired by `main` to a driver command;
    /// the default refuses, so an unwired server never claims to have unbanned anyone.
    pub unban: Box<dyn Fn(IpAddr) -> Result<bool, String> + Send + Sync>,
    /// Every extension, file and API (`GET /api/v1/extensions`), asked of the driver.
    pub extensions: ExtensionCall<(), Vec<ExtensionView>>,
    /// Defines an extension (`POST /api/v1/extensions`); answers after the store commit.
    pub create_extension: ExtensionCall<NewExtension, Created>,
    /// Deletes an API extension (`DELETE /api/v1/extensions/{number}`).
    pub delete_extension: ExtensionCall<String, ()>,
}

/// A callback that asks the driver's extension directory something.
pub type ExtensionCall<In, Out> = Box<dyn Fn(In) -> Result<Out, ExtensionError> + Send + Sync>;

/// A callback that lists something held by another thread.
pub type Lister<T> = Box<dyn Fn() -> Result<Vec<T>, String> + Send + Sync>;

/// One contact binding as `GET /api/v1/registrations` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistrationView {
    /// The extension number.
    pub extension: String,
    /// The Contact URI as registered.
    pub contact: String,
    /// Where the REGISTER really came from: the address requests to this contact use
    /// (SIG-14), as `ip:port` (`[v6]:port`).
    pub source: SocketAddr,
    /// `udp`, `tcp` or `tls`.
    pub transport: &'static str,
    pub user_agent: Option<String>,
    /// Seconds until the binding expires, at publication.
    pub expires_in: u64,
}

impl RegistrationView {
    /// The view of `binding` at `now` (the driver's clock reading for the publication).
    pub fn from_binding(binding: &Binding, now: Instant) -> RegistrationView {
        RegistrationView {
            extension: binding.aor.clone(),
            contact: binding.contact.clone(),
            source: binding.flow.remote,
            transport: binding.flow.transport.as_str(),
            user_agent: binding.user_agent.clone(),
            expires_in: binding.expires.saturating_duration_since(now).as_secs(),
        }
    }
}

/// One ban as `GET /api/v1/bans` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BanView {
    /// The banned address (an IPv6 source is banned as its /64, shown as its first address).
    pub ip: IpAddr,
    /// `auth_failures`, `flood` or `manual`.
    pub reason: &'static str,
    /// Seconds until the ban ends, at publication.
    pub expires_in: u64,
}

impl BanView {
    /// The view of `ban` at `now`.
    pub fn from_ban(ban: &Ban, now: Instant) -> BanView {
        BanView {
            ip: ban.ip,
            reason: ban.reason.as_str(),
            expires_in: ban.until.saturating_duration_since(now).as_secs(),
        }
    }
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
            registrations: Box::new(|| {
                Err("registrations are not available in this process".to_owned())
            }),
            bans: Box::new(|| Err("bans are not available in this process".to_owned())),
            unban: Box::new(|_| Err("unbanning is not available in this process".to_owned())),
            extensions: Box::new(|()| Err(ExtensionError::NotWired)),
            create_extension: Box::new(|_| Err(ExtensionError::NotWired)),
            delete_extension: Box::new(|_| Err(ExtensionError::NotWired)),
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

/// What a handler gets besides the state.
struct Call<'a> {
    /// For a path pattern ending in `{…}`, the last segment (still percent-encoded).
    param: Option<&'a str>,
    /// The request body (read for POST only; empty otherwise).
    body: &'a [u8],
}

type Handler = fn(&AdminState, &Call<'_>) -> Reply;

/// Largest request body read; a longer one is answered 413.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The routes: path (a trailing `{name}` matches one non-empty segment), allowed
/// methods, handler. A path may appear more than once, with different methods.
const ROUTES: &[(&str, &[Method], Handler)] = &[
    ("/metrics", &[Method::Get, Method::Head], metrics_reply),
    ("/api/v1/health", &[Method::Get, Method::Head], health_reply),
    ("/api/v1/reload", &[Method::Post], reload_reply),
    (
        "/api/v1/registrations",
        &[Method::Get, Method::Head],
        registrations_reply,
    ),
    ("/api/v1/bans", &[Method::Get, Method::Head], bans_reply),
    ("/api/v1/bans/{ip}", &[Method::Delete], unban_reply),
    (
        "/api/v1/extensions",
        &[Method::Get, Method::Head],
        extensions_reply,
    ),
    (
        "/api/v1/extensions",
        &[Method::Post],
        create_extension_reply,
    ),
    (
        "/api/v1/extensions/{number}",
        &[Method::Delete],
        delete_extension_reply,
    ),
];

/// Matches `path` against a route pattern; `Some(param)` on a match.
fn match_route<'p>(pattern: &str, path: &'p str) -> Option<Option<&'p str>> {
    match pattern.split_once('{') {
        None => (pattern == path).then_some(None),
        Some((prefix, _)) => {
            let param = path.strip_prefix(prefix)?;
            (!param.is_empty() && !param.contains('/')).then_some(Some(param))
        }
    }
}

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

fn handle(mut request: Request, state: &AdminState) {
    let mut body = Vec::new();
    let too_large = *request.method() == Method::Post && {
        use std::io::Read as _;
        let limit = MAX_BODY_BYTES as u64 + 1;
        match request.as_reader().take(limit).read_to_end(&mut body) {
            Ok(_) => body.len() > MAX_BODY_BYTES,
            // A body cut short: the handler sees what arrived and refuses it as malformed.
            Err(error) => {
                tracing::debug!(%error, "admin request body not read completely");
                false
            }
        }
    };
    let path = request.url().split(['?', '#']).next().unwrap_or_default();
    let reply = if too_large {
        Reply::json(
            413,
            json!({ "error": format!("request body over {MAX_BODY_BYTES} bytes") }),
        )
    } else {
        route(request.method(), path, state, &body)
    };
    let method = request.method().clone();
    let status = reply.status;
    tracing::debug!(%method, path = request.url(), status, "admin request");
    let delivered = if status == 204 {
        // No body, so no Content-Type either (tiny_http would add text/plain).
        request.respond(Response::empty(204))
    } else {
        let mut response = Response::from_string(reply.body)
            .with_status_code(status)
            .with_header(header("Content-Type", reply.content_type));
        if let Some(allow) = &reply.allow {
            response.add_header(header("Allow", allow));
        }
        request.respond(response)
    };
    if let Err(error) = delivered {
        // The client went away; nothing to tell it.
        tracing::debug!(%error, "admin response not delivered");
    }
}

fn route(method: &Method, path: &str, state: &AdminState, body: &[u8]) -> Reply {
    let matches: Vec<(Option<&str>, &[Method], Handler)> = ROUTES
        .iter()
        .filter_map(|&(p, allowed, handler)| Some((match_route(p, path)?, allowed, handler)))
        .collect();
    if matches.is_empty() {
        return Reply::json(404, json!({ "error": "not found", "path": path }));
    }
    let found = matches
        .iter()
        .find(|(_, allowed, _)| allowed.contains(method));
    let Some(&(param, _, handler)) = found else {
        let mut methods: Vec<&str> = Vec::new();
        for m in matches.iter().flat_map(|(_, allowed, _)| allowed.iter()) {
            if !methods.contains(&m.as_str()) {
                methods.push(m.as_str());
            }
        }
        let allow = methods.join(", ");
        let mut reply = Reply::json(
            405,
            json!({ "error": "method not allowed", "path": path, "allow": allow }),
        );
        reply.allow = Some(allow);
        return reply;
    };
    handler(state, &Call { param, body })
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

fn metrics_reply(state: &AdminState, _: &Call<'_>) -> Reply {
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

fn health_reply(state: &AdminState, _: &Call<'_>) -> Reply {
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

fn reload_reply(state: &AdminState, _: &Call<'_>) -> Reply {
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

fn registrations_reply(state: &AdminState, _: &Call<'_>) -> Reply {
    match (state.registrations)() {
        Ok(list) => Reply::json(200, json!({ "count": list.len(), "registrations": list })),
        Err(e) => Reply::json(503, json!({ "error": e })),
    }
}

fn bans_reply(state: &AdminState, _: &Call<'_>) -> Reply {
    match (state.bans)() {
        Ok(list) => Reply::json(200, json!({ "count": list.len(), "bans": list })),
        Err(e) => Reply::json(503, json!({ "error": e })),
    }
}

fn unban_reply(state: &AdminState, call: &Call<'_>) -> Reply {
    let raw = call.param.unwrap_or_default();
    let Some(ip) = percent_decode(raw).and_then(|text| text.parse::<IpAddr>().ok()) else {
        return Reply::json(400, json!({ "error": "not an IP address", "value": raw }));
    };
    // A panic in the driver command path must not take the admin API down with it.
    match std::panic::catch_unwind(AssertUnwindSafe(|| (state.unban)(ip))) {
        Ok(Ok(true)) => {
            tracing::info!(%ip, "ban lifted through the admin API");
            Reply {
                status: 204,
                content_type: "application/json",
                body: String::new(),
                allow: None,
            }
        }
        Ok(Ok(false)) => Reply::json(404, json!({ "error": "not banned", "ip": ip })),
        Ok(Err(error)) => Reply::json(503, json!({ "error": error })),
        Err(_) => Reply::json(500, json!({ "error": "internal error while unbanning" })),
    }
}

fn extensions_reply(state: &AdminState, _: &Call<'_>) -> Reply {
    match std::panic::catch_unwind(AssertUnwindSafe(|| (state.extensions)(()))) {
        Ok(Ok(list)) => Reply::json(200, json!({ "count": list.len(), "extensions": list })),
        Ok(Err(error)) => extension_error(&error),
        Err(_) => Reply::json(
            500,
            json!({ "error": "internal error while listing extensions" }),
        ),
    }
}

fn create_extension_reply(state: &AdminState, call: &Call<'_>) -> Reply {
    let new: NewExtension = match serde_json::from_slice(call.body) {
        Ok(new) => new,
        Err(error) => return extension_error(&ExtensionError::Body(error)),
    };
    match std::panic::catch_unwind(AssertUnwindSafe(|| (state.create_extension)(new))) {
        Ok(Ok(created)) => Reply::json(201, created_body(&created)),
        Ok(Err(error)) => extension_error(&error),
        Err(_) => Reply::json(
            500,
            json!({ "error": "internal error while creating the extension" }),
        ),
    }
}

/// The 201's body: the new entry, plus the generated password (shown this once).
fn created_body(created: &Created) -> serde_json::Value {
    let mut body = serde_json::to_value(&created.extension)
        .expect("a struct of strings, numbers and booleans serialises to JSON");
    if let Some(password) = &created.password {
        body["password"] = json!(password.expose());
    }
    body
}

fn delete_extension_reply(state: &AdminState, call: &Call<'_>) -> Reply {
    let raw = call.param.unwrap_or_default();
    let Some(number) = percent_decode(raw) else {
        return Reply::json(
            400,
            json!({ "error": "malformed percent-escape in the number", "field": "number" }),
        );
    };
    match std::panic::catch_unwind(AssertUnwindSafe(|| (state.delete_extension)(number))) {
        Ok(Ok(())) => Reply {
            status: 204,
            content_type: "application/json",
            body: String::new(),
            allow: None,
        },
        Ok(Err(error)) => extension_error(&error),
        Err(_) => Reply::json(
            500,
            json!({ "error": "internal error while deleting the extension" }),
        ),
    }
}

/// `{"error": "...", "field": "..."}` with the error's status.
fn extension_error(error: &ExtensionError) -> Reply {
    let status = error.status();
    if status >= 500 {
        tracing::error!(%error, "extension request failed");
    }
    let mut body = json!({ "error": error.to_string() });
    if let Some(field) = error.field() {
        body["field"] = json!(field);
    }
    Reply::json(status, body)
}

/// Decodes `%XX` escapes (an IPv6 address may arrive with its colons escaped). `None` on a
/// malformed escape or non-UTF-8 result.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).expect("ASCII hex digits are UTF-8");
            out.push(u8::from_str_radix(hex, 16).expect("two hex digits fit a byte"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
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
        http_body(addr, method, path, b"")
    }

    /// [`http`] with a request body.
    fn http_body(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> HttpResponse {
        let mut stream = TcpStream::connect(addr).expect("connect to admin server");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("send request");
        // The server may answer (413) before it has read all of a large body.
        let _ = stream.write_all(body);
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

    #[expect(
        clippy::disallowed_methods,
        reason = "tests stand in for the driver, which owns the clock"
    )]
    fn now() -> Instant {
        Instant::now()
    }

    fn binding(aor: &str, remote: &str, transport: Transport, ua: Option<&str>) -> Binding {
        use voxgate_controlplane::registrar::Flow;
        Binding {
            aor: aor.into(),
            contact: format!("sip:{aor}@{remote}"),
            flow: Flow {
                transport,
                remote: remote.parse().expect("addr"),
                local: "192.0.2.1:5060".parse().expect("addr"),
                conn: None,
            },
            expires: now() + std::time::Duration::from_secs(3600),
            q: None,
            instance: None,
            reg_id: None,
            path: Vec::new(),
            call_id: "c1".into(),
            cseq: 1,
            user_agent: ua.map(str::to_owned),
        }
    }

    #[test]
    fn lists_registrations_from_the_driver() {
        use std::sync::Mutex;

        let dir = tempfile::tempdir().expect("temp dir");
        let mut state = state_with(dir.path(), Box::new(|| Ok(())));
        let held: Arc<Mutex<Vec<RegistrationView>>> = Arc::default();
        let driver = Arc::clone(&held);
        state.registrations = Box::new(move || Ok(driver.lock().expect("test lock").clone()));
        let server =
            spawn("127.0.0.1:0".parse().expect("addr"), Arc::new(state)).expect("spawn admin");
        let addr = server.local_addr();

        let empty = http(addr, "GET", "/api/v1/registrations");
        assert_eq!(empty.status, 200);
        assert_eq!(empty.header("Content-Type"), Some("application/json"));
        assert_eq!(empty.json(), json!({ "count": 0, "registrations": [] }));

        // The driver now holds two; the next request sees them.
        let t = now();
        let views = vec![
            RegistrationView::from_binding(
                &binding(
                    "100",
                    "192.0.2.7:49152",
                    Transport::Udp,
                    Some("baresip v3.10"),
                ),
                t,
            ),
            RegistrationView::from_binding(
                &binding("101", "[2001:db8::7]:5061", Transport::Tls, None),
                t,
            ),
        ];
        assert!((3599..=3600).contains(&views[0].expires_in));
        *held.lock().expect("test lock") = views;
        let listed = http(addr, "GET", "/api/v1/registrations").json();
        assert_eq!(listed["count"], 2);
        let first = &listed["registrations"][0];
        assert_eq!(first["extension"], "100");
        assert_eq!(first["contact"], "sip:100@192.0.2.7:49152");
        assert_eq!(first["source"], "192.0.2.7:49152");
        assert_eq!(first["transport"], "udp");
        assert_eq!(first["user_agent"], "baresip v3.10");
        assert!(first["expires_in"].as_u64().is_some_and(|s| s <= 3600));
        let second = &listed["registrations"][1];
        assert_eq!(second["source"], "[2001:db8::7]:5061");
        assert_eq!(second["transport"], "tls");
        assert_eq!(second["user_agent"], serde_json::Value::Null);

        let wrong = http(addr, "DELETE", "/api/v1/registrations");
        assert_eq!(wrong.status, 405);
        assert_eq!(wrong.header("Allow"), Some("GET, HEAD"));
        server.shutdown();
    }

    #[test]
    fn lists_and_lifts_bans() {
        use std::sync::Mutex;
        use voxgate_controlplane::security::BanReason;

        let dir = tempfile::tempdir().expect("temp dir");
        let mut state = state_with(dir.path(), Box::new(|| Ok(())));
        let banned: Arc<Mutex<Vec<IpAddr>>> = Arc::new(Mutex::new(vec![
            "203.0.113.9".parse().expect("ip"),
            "2001:db8:1:2::".parse().expect("ip"),
        ]));
        let lifted = Arc::clone(&banned);
        state.unban = Box::new(move |ip| {
            let mut list = lifted.lock().expect("test lock");
            let before = list.len();
            list.retain(|b| *b != ip);
            Ok(list.len() < before)
        });
        let t = now();
        let bans = vec![
            BanView::from_ban(
                &Ban {
                    ip: "203.0.113.9".parse().expect("ip"),
                    until: t + std::time::Duration::from_secs(300),
                    reason: BanReason::Flood,
                },
                t,
            ),
            BanView::from_ban(
                &Ban {
                    ip: "2001:db8:1:2::".parse().expect("ip"),
                    until: t + std::time::Duration::from_secs(3600),
                    reason: BanReason::AuthFailures,
                },
                t,
            ),
        ];
        state.bans = Box::new(move || Ok(bans.clone()));
        let server =
            spawn("127.0.0.1:0".parse().expect("addr"), Arc::new(state)).expect("spawn admin");
        let addr = server.local_addr();

        let listed = http(addr, "GET", "/api/v1/bans");
        assert_eq!(listed.status, 200);
        assert_eq!(
            listed.json(),
            json!({ "count": 2, "bans": [
                { "ip": "203.0.113.9", "reason": "flood", "expires_in": 300 },
                { "ip": "2001:db8:1:2::", "reason": "auth_failures", "expires_in": 3600 },
            ]})
        );

        let lift = http(addr, "DELETE", "/api/v1/bans/203.0.113.9");
        assert_eq!(lift.status, 204, "{}", lift.body);
        assert!(lift.body.is_empty());
        assert_eq!(lift.header("Content-Type"), None);
        let again = http(addr, "DELETE", "/api/v1/bans/203.0.113.9");
        assert_eq!(again.status, 404);
        assert_eq!(
            again.json(),
            json!({ "error": "not banned", "ip": "203.0.113.9" })
        );
        // IPv6, with its colons escaped as some clients do.
        let v6 = http(addr, "DELETE", "/api/v1/bans/2001%3Adb8%3a1%3A2%3A%3A");
        assert_eq!(v6.status, 204, "{}", v6.body);
        assert!(banned.lock().expect("test lock").is_empty());

        for bad in [
            "/api/v1/bans/not-an-ip",
            "/api/v1/bans/1.2.3.4%2",
            "/api/v1/bans/%+1",
        ] {
            let reply = http(addr, "DELETE", bad);
            assert_eq!(reply.status, 400, "{bad}");
            assert_eq!(reply.json()["error"], "not an IP address");
        }
        assert_eq!(http(addr, "DELETE", "/api/v1/bans/1.2.3.4/x").status, 404);
        assert_eq!(http(addr, "DELETE", "/api/v1/bans/").status, 404);
        let wrong = http(addr, "GET", "/api/v1/bans/203.0.113.9");
        assert_eq!(wrong.status, 405);
        assert_eq!(wrong.header("Allow"), Some("DELETE"));
        let wrong = http(addr, "DELETE", "/api/v1/bans");
        assert_eq!(wrong.status, 405);
        assert_eq!(wrong.header("Allow"), Some("GET, HEAD"));
        server.shutdown();
    }

    #[test]
    fn unban_unwired_failing_or_panicking() {
        let dir = tempfile::tempdir().expect("temp dir");
        // `new` leaves unban unwired: it must refuse, not pretend.
        let state = state_with(dir.path(), Box::new(|| Ok(())));
        let server =
            spawn("127.0.0.1:0".parse().expect("addr"), Arc::new(state)).expect("spawn admin");
        let reply = http(server.local_addr(), "DELETE", "/api/v1/bans/192.0.2.1");
        assert_eq!(reply.status, 503);
        assert!(reply.json()["error"].is_string());
        // So must the listings.
        for path in ["/api/v1/bans", "/api/v1/registrations"] {
            let reply = http(server.local_addr(), "GET", path);
            assert_eq!(reply.status, 503, "{path}");
            assert!(reply.json()["error"].is_string());
        }
        server.shutdown();

        let mut state = state_with(dir.path(), Box::new(|| Ok(())));
        state.unban = Box::new(|_| panic!("driver bug"));
        state.bans = Box::new(|| Ok(Vec::new()));
        let server =
            spawn("127.0.0.1:0".parse().expect("addr"), Arc::new(state)).expect("spawn admin");
        let addr = server.local_addr();
        assert_eq!(http(addr, "DELETE", "/api/v1/bans/192.0.2.1").status, 500);
        // The server survived the panic.
        assert_eq!(http(addr, "GET", "/api/v1/bans").status, 200);
        server.shutdown();
    }

    fn api_view(number: &str, source: crate::extensions::Source) -> ExtensionView {
        ExtensionView {
            number: number.into(),
            auth_id: number.into(),
            name: None,
            networks: vec!["192.0.2.0/24".into()],
            source,
            registered: false,
            contacts: 0,
            shadowed: false,
            realm_mismatch: false,
        }
    }

    #[test]
    fn extensions_are_listed_created_and_deleted() {
        use crate::extensions::Source;
        use std::sync::Mutex;

        let dir = tempfile::tempdir().expect("temp dir");
        let mut state = state_with(dir.path(), Box::new(|| Ok(())));
        let held: Arc<Mutex<Vec<ExtensionView>>> =
            Arc::new(Mutex::new(vec![api_view("1000", Source::Config)]));
        let lister = Arc::clone(&held);
        state.extensions = Box::new(move |()| Ok(lister.lock().expect("test lock").clone()));
        let creator = Arc::clone(&held);
        state.create_extension = Box::new(move |new| {
            let mut list = creator.lock().expect("test lock");
            if list.iter().any(|v| v.number == new.number) {
                return Err(ExtensionError::Exists { number: new.number });
            }
            let view = api_view(&new.number, Source::Api);
            list.push(view.clone());
            Ok(Created {
                extension: view,
                password: new
                    .password
                    .is_none()
                    .then(|| crate::config::Secret::new("Generated20CharsAbc1".into())),
            })
        });
        let deleter = Arc::clone(&held);
        state.delete_extension = Box::new(move |number| {
            let mut list = deleter.lock().expect("test lock");
            match list.iter().position(|v| v.number == number) {
                Some(i) if list[i].source == Source::Config => Err(ExtensionError::DefinedInFile {
                    number,
                    origin: "voxgate.toml".into(),
                }),
                Some(i) => {
                    list.remove(i);
                    Ok(())
                }
                None => Err(ExtensionError::NotFound { number }),
            }
        });
        let server =
            spawn("127.0.0.1:0".parse().expect("addr"), Arc::new(state)).expect("spawn admin");
        let addr = server.local_addr();

        let listed = http(addr, "GET", "/api/v1/extensions");
        assert_eq!(listed.status, 200);
        assert_eq!(
            listed.json(),
            json!({ "count": 1, "extensions": [{
                "number": "1000", "auth_id": "1000", "name": null,
                "networks": ["192.0.2.0/24"], "source": "config",
                "registered": false, "contacts": 0,
            }]})
        );

        let created = http_body(addr, "POST", "/api/v1/extensions", br#"{"number":"2000"}"#);
        assert_eq!(created.status, 201, "{}", created.body);
        assert_eq!(created.header("Content-Type"), Some("application/json"));
        let body = created.json();
        assert_eq!(body["password"], "Generated20CharsAbc1");
        assert_eq!(body["source"], "api");
        // Shown once: the listing never carries it.
        let listed = http(addr, "GET", "/api/v1/extensions");
        assert_eq!(listed.json()["count"], 2);
        assert!(!listed.body.contains("Generated20CharsAbc1"));

        let given = http_body(
            addr,
            "POST",
            "/api/v1/extensions",
            br#"{"number":"2001","password":"my-own-password-1"}"#,
        );
        assert_eq!(given.status, 201, "{}", given.body);
        assert!(given.json().get("password").is_none(), "{}", given.body);

        let again = http_body(addr, "POST", "/api/v1/extensions", br#"{"number":"2000"}"#);
        assert_eq!(again.status, 409);
        assert_eq!(again.json()["field"], "number");
        for bad in [
            &b"not json"[..],
            b"{}",
            br#"{"number":"2002","colour":"red"}"#,
        ] {
            let reply = http_body(addr, "POST", "/api/v1/extensions", bad);
            assert_eq!(reply.status, 400, "{}", reply.body);
            assert!(reply.json()["error"].is_string());
        }
        let huge = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(
            http_body(addr, "POST", "/api/v1/extensions", &huge).status,
            413
        );

        let deleted = http(addr, "DELETE", "/api/v1/extensions/2000");
        assert_eq!(deleted.status, 204, "{}", deleted.body);
        assert!(deleted.body.is_empty());
        let file = http(addr, "DELETE", "/api/v1/extensions/1000");
        assert_eq!(file.status, 409);
        assert_eq!(
            file.json(),
            json!({
                "error": "extension 1000 is defined in voxgate.toml; remove it there and reload",
                "field": "number",
            })
        );
        assert_eq!(http(addr, "DELETE", "/api/v1/extensions/2000").status, 404);

        let wrong = http(addr, "PUT", "/api/v1/extensions");
        assert_eq!(wrong.status, 405);
        assert_eq!(wrong.header("Allow"), Some("GET, HEAD, POST"));
        let wrong = http(addr, "GET", "/api/v1/extensions/2001");
        assert_eq!(wrong.status, 405);
        assert_eq!(wrong.header("Allow"), Some("DELETE"));
        server.shutdown();
    }

    #[test]
    fn extensions_unwired_or_panicking() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = state_with(dir.path(), Box::new(|| Ok(())));
        let server =
            spawn("127.0.0.1:0".parse().expect("addr"), Arc::new(state)).expect("spawn admin");
        let addr = server.local_addr();
        assert_eq!(http(addr, "GET", "/api/v1/extensions").status, 503);
        let post = http_body(addr, "POST", "/api/v1/extensions", br#"{"number":"2000"}"#);
        assert_eq!(post.status, 503);
        assert_eq!(http(addr, "DELETE", "/api/v1/extensions/2000").status, 503);
        server.shutdown();

        let mut state = state_with(dir.path(), Box::new(|| Ok(())));
        state.create_extension = Box::new(|_| panic!("driver bug"));
        let server =
            spawn("127.0.0.1:0".parse().expect("addr"), Arc::new(state)).expect("spawn admin");
        let addr = server.local_addr();
        let post = http_body(addr, "POST", "/api/v1/extensions", br#"{"number":"2000"}"#);
        assert_eq!(post.status, 500);
        // The server survived the panic.
        assert_eq!(http(addr, "GET", "/api/v1/extensions").status, 503);
        server.shutdown();
    }

    #[test]
    fn route_patterns() {
        assert_eq!(match_route("/api/v1/bans", "/api/v1/bans"), Some(None));
        assert_eq!(match_route("/api/v1/bans", "/api/v1/bans/x"), None);
        assert_eq!(
            match_route("/api/v1/bans/{ip}", "/api/v1/bans/10.0.0.1"),
            Some(Some("10.0.0.1"))
        );
        assert_eq!(match_route("/api/v1/bans/{ip}", "/api/v1/bans/"), None);
        assert_eq!(match_route("/api/v1/bans/{ip}", "/api/v1/bans"), None);
        assert_eq!(match_route("/api/v1/bans/{ip}", "/api/v1/bans/a/b"), None);
        assert_eq!(
            percent_decode("2001%3Adb8%3a%3A1").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(percent_decode("abc").as_deref(), Some("abc"));
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%+1"), None);
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
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
