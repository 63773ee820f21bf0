//! voxgate: session border controller, PBX and media server in one binary.
//!
//! The binary owns everything that touches the outside world: the CLI, config files and
//! reload, sockets (the SIP driver), TLS, the admin HTTP API and Prometheus export. Protocol
//! logic lives in `voxgate-controlplane`; media in `voxgate-dataplane`.
//!
//! Start-up contract (tests and operators rely on it): once every socket is bound, voxgate
//! prints one `listening sip <transport> <addr>` line per SIP listener, then
//! `listening admin <addr>`, then `ready`, on stdout; under systemd it also sends READY=1.

mod admin;
mod config;
mod driver;
mod extensions;
mod feeds;
mod logging;
mod metrics;
mod ng;
mod store;
mod systemd;
mod tls;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use voxgate_controlplane::config::LocalListener;
use voxgate_controlplane::Endpoint;

use crate::config::Config;
use crate::driver::{Driver, DriverHandle, DriverLimits};
use crate::logging::LogHandle;
use crate::metrics::Metrics;

#[derive(Debug, Parser)]
#[command(
    name = "voxgate",
    version,
    about = "Session border controller, PBX and media server"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run voxgate (the default). Without --config it runs an embedded demo configuration on
    /// loopback: SIP on 127.0.0.1:5060 (UDP and TCP), admin HTTP on 127.0.0.1:8080.
    Run {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file: exit 0 when it is good, 2 with `file:line:col: message`.
    CheckConfig {
        /// The TOML configuration file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run { config: None }) {
        Command::CheckConfig { file } => match config::load_file(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Run { config } => {
            let loaded = match &config {
                Some(path) => config::load_file(path),
                None => Ok(config::demo()),
            };
            let loaded = match loaded {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            match run(config, loaded) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("voxgate: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The values the running process was configured with, and what a reload must keep.
struct Running {
    path: Option<PathBuf>,
    config: Mutex<Config>,
    bound: Vec<LocalListener>,
    /// The `sip.listen` entries `bound` was bound from, in the same order: a reload maps
    /// the listener ACLs of its config onto the sockets through them.
    bound_from: Vec<config::Listen>,
    /// The digest nonce key, kept in the store directory so nonces survive a restart.
    secret: [u8; 32],
    driver: DriverHandle,
    /// The blocklist feed thread: refreshed on every reload (SEC-08).
    feeds: feeds::FeedHandle,
    metrics: Arc<Metrics>,
    log: LogHandle,
}

fn driver_limits(config: &Config) -> DriverLimits {
    DriverLimits {
        tcp_per_ip: config.limits.tcp_per_ip.get() as usize,
        tcp_total: config.limits.tcp_total.get() as usize,
        tcp_idle: config.limits.tcp_idle,
        partial_message_timeout: config.limits.partial_message_timeout,
        tls_handshake_timeout: config.tls.handshake_timeout,
        max_message_bytes: config.limits.max_message_bytes,
    }
}

fn tls_server_config(config: &Config) -> Option<Arc<rustls::ServerConfig>> {
    config
        .tls
        .certificate
        .as_ref()
        .map(|c| c.server_config.clone())
}

/// The endpoint's configuration: SIP settings, digest, registrar, security and the
/// extensions' credentials.
fn endpoint_config(
    config: &Config,
    bound: Vec<LocalListener>,
    bound_from: &[config::Listen],
    secret: [u8; 32],
) -> voxgate_controlplane::EndpointConfig {
    let listener_acls = config.listener_acls(bound_from, &bound);
    let mut c = config.endpoint_config(bound);
    c.auth = config.digest_config();
    c.registrar = config.registrar_config();
    c.security = config.security_config();
    c.security.listeners = listener_acls;
    c.auth_secret = secret;
    c.users = config
        .credentials()
        .into_iter()
        .map(|e| voxgate_controlplane::config::User {
            number: e.number,
            auth_id: e.auth_id,
            credential: e.credential,
            networks: e.networks,
        })
        .collect();
    c
}

/// The key of the stateless digest nonces: 32 random bytes in `auth.key` of the store
/// directory, made on first start (owner-only), so nonces stay valid across restarts.
fn auth_secret(dir: &Path) -> std::io::Result<[u8; 32]> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join("auth.key");
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() == 32 => {
            let mut key = [0u8; 32];
            key.copy_from_slice(&bytes);
            return Ok(key);
        }
        Ok(_) => {
            tracing::warn!(path = %path.display(), "auth.key has the wrong size; making a new one")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    let tmp = dir.join("auth.key.tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        std::io::Write::write_all(&mut f, &key)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(key)
}

/// Seed for tags and branches: not a secret, only unpredictable enough that two restarts
/// never reuse tags.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

/// The one place the binary reads the wall clock at start-up.
#[allow(clippy::disallowed_methods)]
fn started_at() -> Instant {
    Instant::now()
}

fn run(path: Option<PathBuf>, config: Config) -> anyhow::Result<()> {
    let started = started_at();
    let log = logging::init(
        config.log.level.as_str(),
        config.log.format.as_str().parse()?,
    )?;
    match &path {
        Some(p) => tracing::info!(config = %p.display(), "starting voxgate"),
        None => {
            tracing::info!("starting voxgate with the embedded demo configuration (loopback only)")
        }
    }
    if let Some(filter) = log.env_override() {
        tracing::info!(
            filter,
            "RUST_LOG is set: it overrides log.level, also on reload"
        );
    }
    let metrics = Arc::new(Metrics::new());

    std::fs::create_dir_all(&config.store.path).with_context(|| {
        format!(
            "creating the store directory {}",
            config.store.path.display()
        )
    })?;
    let secret = auth_secret(&config.store.path).context("reading the digest nonce key")?;
    let store = store::Store::open(&config.store.path).context("opening the store")?;
    let endpoint = Endpoint::new(endpoint_config(&config, Vec::new(), &[], secret), seed());
    let driver = Driver::bind(
        &config.sip.listen,
        tls_server_config(&config),
        driver_limits(&config),
        endpoint,
        metrics.clone(),
    )
    .context("binding SIP listeners")?;
    let bound: Vec<LocalListener> = driver
        .local_addrs()
        .into_iter()
        .map(|(transport, addr)| LocalListener { transport, addr })
        .collect();
    let handle = driver.handle();
    let mut driver = driver;
    driver
        .set_persistence(store)
        .context("loading registrations and bans from the store")?;
    handle
        .extension_settings(extensions::FileSettings::from_config(
            &config,
            path.as_deref(),
        ))
        .context("configuring the extension directory")?;
    // The endpoint must know the real addresses (port 0 binds) to recognise itself.
    handle
        .reload(
            endpoint_config(&config, bound.clone(), &config.sip.listen, secret),
            tls_server_config(&config),
            driver_limits(&config),
        )
        .context("configuring the SIP driver")?;

    // Blocklist feeds are read and fetched on their own thread; the driver gets each
    // refreshed union through its command channel and waker.
    let feed_sink = handle.clone();
    let feeds = feeds::spawn(
        feeds::FeedConfig::of(&config),
        metrics.clone(),
        move |nets| feed_sink.set_feed_blocks(nets).is_ok(),
    )
    .context("starting the blocklist feed thread")?;

    let running = Arc::new(Running {
        path,
        bound_from: config.sip.listen.clone(),
        config: Mutex::new(config),
        bound,
        secret,
        driver: handle.clone(),
        feeds,
        metrics: metrics.clone(),
        log,
    });

    let (admin_listen, store_path) = {
        let c = running
            .config
            .lock()
            .expect("config lock is never poisoned: no panics under it");
        (c.admin.listen, c.store.path.clone())
    };
    let reloader = running.clone();
    let admin_state = admin::AdminState::new(
        metrics,
        store_path,
        Box::new(move || reload(&reloader)),
        started,
    );
    let unbanner = handle.clone();
    let (lister, ban_lister) = (handle.clone(), handle.clone());
    let admin_state = admin::AdminState {
        registrations: Box::new(move || lister.registrations().map_err(|e| e.to_string())),
        bans: Box::new(move || ban_lister.bans().map_err(|e| e.to_string())),
        unban: Box::new(move |ip| unbanner.unban(ip).map_err(|e| e.to_string())),
        extensions: {
            let driver = handle.clone();
            Box::new(move |()| extensions::list(&driver))
        },
        create_extension: {
            let driver = handle.clone();
            Box::new(move |new| extensions::create(&driver, new))
        },
        delete_extension: {
            let driver = handle.clone();
            Box::new(move |number| extensions::delete(&driver, &number))
        },
        ..admin_state
    };
    let admin = admin::spawn(admin_listen, Arc::new(admin_state))
        .context("binding the admin HTTP listener")?;

    {
        let mut out = std::io::stdout().lock();
        for l in &running.bound {
            writeln!(out, "listening sip {} {}", l.transport, l.addr)?;
        }
        writeln!(out, "listening admin {}", admin.local_addr())?;
        writeln!(out, "ready")?;
        out.flush()?;
    }
    tracing::info!(admin = %admin.local_addr(), "voxgate ready");
    if let Err(e) = systemd::notify("READY=1") {
        tracing::warn!(error = %e, "could not notify systemd");
    }
    spawn_watchdog();
    spawn_signal_thread(running.clone())?;

    let result = driver.run();
    let _ = systemd::notify("STOPPING=1");
    admin.shutdown();
    tracing::info!("voxgate stopped");
    result.context("SIP driver failed")
}

/// Re-read the configuration file and apply it; the running configuration stays when the
/// file is bad. Listener addresses need a restart; everything else applies at once.
fn reload(running: &Running) -> Result<(), String> {
    let result = try_reload(running);
    let label = if result.is_ok() { "ok" } else { "error" };
    running
        .metrics
        .config_reloads
        .with_label_values(&[label])
        .inc();
    match &result {
        Ok(()) => tracing::info!("configuration reloaded"),
        Err(e) => {
            tracing::error!(error = %e, "configuration reload refused; the running configuration stays")
        }
    }
    result
}

fn try_reload(running: &Running) -> Result<(), String> {
    let Some(path) = &running.path else {
        return Err("running the embedded demo configuration: there is no file to reload".into());
    };
    let _ = systemd::notify("RELOADING=1");
    let result = apply(running, path);
    let _ = systemd::notify("READY=1");
    result
}

fn apply(running: &Running, path: &Path) -> Result<(), String> {
    let new = config::load_file(path).map_err(|e| e.to_string())?;
    let mut current = running
        .config
        .lock()
        .map_err(|_| "configuration lock poisoned".to_string())?;
    if new.sip.listen != current.sip.listen {
        tracing::warn!("sip.listen changed: new listeners take effect after a restart");
    }
    if new.admin.listen != current.admin.listen {
        tracing::warn!("admin.listen changed: takes effect after a restart");
    }
    running
        .driver
        .extension_settings(extensions::FileSettings::from_config(&new, Some(path)))
        .map_err(|e| e.to_string())?;
    running
        .driver
        .reload(
            endpoint_config(
                &new,
                running.bound.clone(),
                &running.bound_from,
                running.secret,
            ),
            tls_server_config(&new),
            driver_limits(&new),
        )
        .map_err(|e| e.to_string())?;
    if !running.feeds.reconfigure(feeds::FeedConfig::of(&new)) {
        tracing::warn!("the blocklist feed thread has stopped; feeds are not refreshed");
    }
    if let Err(e) = running.log.set_level(new.log.level.as_str()) {
        tracing::warn!(error = %e, "log level not changed");
    }
    *current = new;
    Ok(())
}

fn spawn_signal_thread(running: Arc<Running>) -> anyhow::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM])
        .context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                match signal {
                    SIGHUP => {
                        let _ = reload(&running);
                    }
                    _ => {
                        tracing::info!(signal, "shutting down");
                        let _ = running.driver.shutdown();
                        break;
                    }
                }
            }
        })?;
    Ok(())
}

/// systemd's watchdog (OPS-07): ping at half the interval it asked for.
fn spawn_watchdog() {
    let Some(interval) = systemd::watchdog_interval() else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || loop {
            let _ = systemd::notify("WATCHDOG=1");
            std::thread::sleep(interval / 2);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the systemd watchdog thread");
    }
}
