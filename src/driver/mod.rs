//! The SIP transport driver: one mio event loop that owns every SIP socket (UDP, TCP, TLS;
//! IPv4 and IPv6) and one sans-IO [`Endpoint`] (FEATURES SIG-05, SIG-23, SEC-02, SEC-16).
//!
//! # What it does
//! - UDP: each datagram goes to [`Endpoint::handle_datagram`]; answers leave from the socket
//!   bound to [`Transmit::local`].
//! - TCP and TLS (rustls): accepts connections within the per-IP and total limits, frames each
//!   stream with a [`StreamFramer`](voxgate_controlplane::sip::framing::StreamFramer), answers
//!   RFC 5626 CRLF pings, hands each message to [`Endpoint::handle_stream_message`], and sends
//!   answers on the connection they belong to (RFC 3261 §18.2.2). A stream that loses its
//!   framing is closed; an oversized message gets a 513 (when its start is readable) and the
//!   connection is closed (SIG-23). Idle, partial-message and TLS-handshake timeouts close
//!   connections; a peer that does not drain what is sent to it is cut off.
//! - Time: the clock is read once per loop iteration ([`clock`]) and passed down; the poll
//!   timeout is the earliest of the endpoint's timeout, the next connection deadline and the
//!   next metrics publication.
//! - Control: a [`DriverHandle`] (reload, shutdown) talks to the loop over a bounded channel
//!   and a [`mio::Waker`].
//!
//! # Driver contract with the endpoint
//! One `handle_*` call, then drain `poll_transmit` and `poll_event` until both are empty
//! ([`Driver::drain_endpoint`]), then wait for the next input or `poll_timeout`.
//!
//! # What it does not do
//! Protocol decisions (the endpoint does them; the 513 is built by
//! [`too_large_response`]), outbound connections (a transmit for a connection that is gone is
//! dropped and logged), changing the set of listeners on reload (that needs a restart), or
//! Prometheus naming (`crate::metrics`).

// The binary's `main` does not wire the driver yet; until it does, everything here looks
// unused to the compiler.

mod conn;
mod limits;
mod persist;
mod tcp;
mod udp;

#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use voxgate_controlplane::config::{LocalListener, MessageLimits};
use voxgate_controlplane::endpoint::{ConnId, EndpointEvent, Peer, Transmit};
use voxgate_controlplane::sip::framing::{too_large_response, FramingError};
use voxgate_controlplane::sip::Transport;
use voxgate_controlplane::{Endpoint, EndpointConfig};

use crate::config::Listen;
use crate::metrics::Metrics;
use conn::{CloseReason, Conn, ConnError, ReadStatus};
use limits::ConnCounter;
pub use limits::DriverLimits;

/// The driver thread is gone (it returned from [`Driver::run`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the SIP driver has stopped")]
pub struct DriverStopped;

/// Messages from a [`DriverHandle`] to the loop.
#[derive(Debug)]
enum Command {
    Reload {
        config: Box<EndpointConfig>,
        tls: Option<Arc<rustls::ServerConfig>>,
        limits: DriverLimits,
    },
    Shutdown,
    /// The union of the blocklist feeds after a refresh (SEC-08, `crate::feeds`).
    FeedBlocks(Vec<voxgate_controlplane::security::IpNet>),
    /// Lift a ban (the admin API); answers whether there was one.
    Unban {
        ip: std::net::IpAddr,
        reply: SyncSender<bool>,
    },
    /// List the bindings (the admin API).
    Registrations {
        reply: SyncSender<Vec<crate::admin::RegistrationView>>,
    },
    /// List the bans in force (the admin API).
    Bans {
        reply: SyncSender<Vec<crate::admin::BanView>>,
    },
    /// Extensions defined through the admin API (`crate::extensions`).
    Extensions(crate::extensions::Request),
}

/// How long an admin listing waits for the loop: a listing of 100,000 bindings takes
/// the loop tens of milliseconds, and a loop that does not answer in this long is stuck.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);

/// Controls a running [`Driver`] from other threads.
#[derive(Debug, Clone)]
pub struct DriverHandle {
    tx: SyncSender<Command>,
    waker: Arc<Waker>,
}

impl DriverHandle {
    /// Apply a reloaded configuration: the endpoint's config (its `listeners` are replaced by
    /// the bound ones), the TLS certificate for new connections (`None` keeps the current
    /// one), and the limits. Connections in progress keep going under the new limits.
    pub fn reload(
        &self,
        endpoint_config: EndpointConfig,
        tls: Option<Arc<rustls::ServerConfig>>,
        limits: DriverLimits,
    ) -> Result<(), DriverStopped> {
        self.send(Command::Reload {
            config: Box::new(endpoint_config),
            tls,
            limits,
        })
    }

    /// Replace the networks merged from blocklist feeds (the feed thread calls this after
    /// every refresh); they survive reloads.
    pub fn set_feed_blocks(
        &self,
        nets: Vec<voxgate_controlplane::security::IpNet>,
    ) -> Result<(), DriverStopped> {
        self.send(Command::FeedBlocks(nets))
    }

    /// Lift the ban of `ip`; waits up to a second for the loop's answer.
    pub fn unban(&self, ip: std::net::IpAddr) -> Result<bool, DriverStopped> {
        self.ask(|reply| Command::Unban { ip, reply }, Duration::from_secs(1))
    }

    /// Every binding the registrar holds now.
    pub fn registrations(&self) -> Result<Vec<crate::admin::RegistrationView>, DriverStopped> {
        self.ask(|reply| Command::Registrations { reply }, LIST_TIMEOUT)
    }

    /// Every ban in force now.
    pub fn bans(&self) -> Result<Vec<crate::admin::BanView>, DriverStopped> {
        self.ask(|reply| Command::Bans { reply }, LIST_TIMEOUT)
    }

    /// Send an extension request (`crate::extensions`) and wait for its answer. A create
    /// or delete answers after its store commit.
    pub fn extensions<T>(
        &self,
        request: impl FnOnce(SyncSender<T>) -> crate::extensions::Request,
    ) -> Result<T, DriverStopped> {
        self.ask(|reply| Command::Extensions(request(reply)), LIST_TIMEOUT)
    }

    /// Send the command `make` builds around a reply channel, and wait up to `timeout` for
    /// the loop's answer.
    fn ask<T>(
        &self,
        make: impl FnOnce(SyncSender<T>) -> Command,
        timeout: Duration,
    ) -> Result<T, DriverStopped> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(make(reply))?;
        answer.recv_timeout(timeout).map_err(|_| DriverStopped)
    }

    /// What the extension directory needs to know about the config file (start, reload).
    pub fn extension_settings(
        &self,
        settings: crate::extensions::FileSettings,
    ) -> Result<(), DriverStopped> {
        self.send(Command::Extensions(crate::extensions::Request::Settings(
            Box::new(settings),
        )))
    }

    /// Stop the loop: connections are closed and [`Driver::run`] returns.
    pub fn shutdown(&self) -> Result<(), DriverStopped> {
        self.send(Command::Shutdown)
    }

    fn send(&self, command: Command) -> Result<(), DriverStopped> {
        self.tx.send(command).map_err(|_| DriverStopped)?;
        self.waker.wake().map_err(|_| DriverStopped)
    }
}

/// Log target of full SIP message logging (MON-07). Off unless the level asks for it, e.g.
/// `log.level = "info,sip_trace=trace"`, which a reload switches on at runtime. Secrets
/// (digest responses, nonces, passwords, SRTP keys) are masked.
pub const SIP_TRACE: &str = "sip_trace";

fn trace_message(direction: &str, peer: &Peer, bytes: &[u8]) {
    if tracing::enabled!(target: SIP_TRACE, tracing::Level::TRACE) {
        let text = String::from_utf8_lossy(bytes);
        tracing::trace!(
            target: SIP_TRACE,
            direction,
            transport = %peer.transport,
            remote = %peer.remote,
            message = %crate::logging::Redacted(&text),
        );
    }
}

/// Token of the waker; listeners follow it; connections start at [`CONN_TOKEN_BASE`].
const WAKER: Token = Token(0);
const CONN_TOKEN_BASE: usize = 1 << 20;
/// Commands queued before `reload`/`shutdown` block their caller.
const COMMAND_QUEUE: usize = 16;
/// Datagrams or accepts per readiness event before other sockets get their turn.
const SOCKET_BUDGET: usize = 256;
/// How often the endpoint's counters are handed to Prometheus.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(250);
/// Read size for stream connections.
const STREAM_READ_BYTES: usize = 64 * 1024;

#[derive(Debug)]
enum ListenerSocket {
    Udp(UdpSocket),
    Stream(TcpListener),
}

#[derive(Debug)]
struct Listener {
    transport: Transport,
    /// The bound address (the real port when the config said 0).
    addr: SocketAddr,
    socket: ListenerSocket,
}

/// The SIP socket driver. Build with [`Driver::bind`], then call [`Driver::run`] on the
/// thread that should own the sockets.
#[derive(Debug)]
pub struct Driver {
    poll: Poll,
    waker: Arc<Waker>,
    tx: SyncSender<Command>,
    rx: Receiver<Command>,
    listeners: Vec<Listener>,
    conns: HashMap<ConnId, Conn>,
    next_conn: usize,
    counter: ConnCounter,
    /// Connection deadlines, lazily invalidated (see [`Driver::schedule`]).
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// Sockets whose read budget ran out with data possibly left (edge-triggered readiness
    /// will not report them again).
    pending: VecDeque<Token>,
    endpoint: Endpoint,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: DriverLimits,
    metrics: Arc<Metrics>,
    datagram: Vec<u8>,
    scratch: Vec<u8>,
    messages: Vec<Bytes>,
    /// Source of To tags for the 513s the driver sends itself.
    tag_state: u64,
    next_publish: Option<Instant>,
    persist: persist::Persistence,
    /// Scratch list of the transmits of one drain (kept to reuse its allocation).
    fresh: Vec<Transmit>,
    /// Extensions defined through the admin API, merged into the endpoint's users.
    extensions: crate::extensions::Directory,
    /// The clock reading of the current loop iteration.
    last_now: Instant,
}

/// The driver's only clock read, once per loop iteration; everything below takes `now` as an
/// argument so deadlines are computed against one consistent instant.
#[allow(clippy::disallowed_methods)]
fn clock() -> Instant {
    Instant::now()
}

/// Wall-clock seconds, read once at start next to [`clock`]: stored bindings and bans, and
/// digest nonces, carry wall-clock time so they mean the same after a restart.
#[allow(clippy::disallowed_methods)]
fn wall_clock_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn annotate(e: io::Error, what: &str, transport: Transport, addr: SocketAddr) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {transport}:{addr}: {e}"))
}

/// The endpoint config as the driver runs it: the bound listeners, the driver's size limit.
fn adjust_config(
    mut config: EndpointConfig,
    listeners: &[Listener],
    limits: &DriverLimits,
) -> EndpointConfig {
    config.listeners = listeners
        .iter()
        .map(|l| LocalListener {
            transport: l.transport,
            addr: l.addr,
        })
        .collect();
    config.limits.max_message_bytes = limits.max_message_bytes;
    config
}

impl Driver {
    /// Bind every listener and set up the loop. The endpoint's configured `listeners` are
    /// replaced by the bound addresses (a port 0 in the config becomes the real port), and its
    /// `limits.max_message_bytes` by `limits.max_message_bytes`.
    pub fn bind(
        listeners: &[Listen],
        tls: Option<Arc<rustls::ServerConfig>>,
        limits: DriverLimits,
        mut endpoint: Endpoint,
        metrics: Arc<Metrics>,
    ) -> io::Result<Driver> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (started, started_unix) = (clock(), wall_clock_secs());
        endpoint.set_wall_clock(started, started_unix);
        let mut bound = Vec::with_capacity(listeners.len());
        for (i, spec) in listeners.iter().enumerate() {
            let token = Token(1 + i);
            if token.0 >= CONN_TOKEN_BASE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "too many SIP listeners",
                ));
            }
            let (transport, addr) = (spec.transport, spec.addr);
            let bind_err = |e| annotate(e, "binding", transport, addr);
            let listener = match transport {
                Transport::Udp => {
                    let mut socket = udp::bind(addr).map_err(bind_err)?;
                    poll.registry()
                        .register(&mut socket, token, Interest::READABLE)?;
                    Listener {
                        transport,
                        addr: socket.local_addr()?,
                        socket: ListenerSocket::Udp(socket),
                    }
                }
                Transport::Tcp | Transport::Tls => {
                    if transport == Transport::Tls && tls.is_none() {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!("TLS listener {addr} needs a certificate"),
                        ));
                    }
                    let mut socket = tcp::bind(addr).map_err(bind_err)?;
                    poll.registry()
                        .register(&mut socket, token, Interest::READABLE)?;
                    Listener {
                        transport,
                        addr: socket.local_addr()?,
                        socket: ListenerSocket::Stream(socket),
                    }
                }
            };
            tracing::info!(transport = %listener.transport, addr = %listener.addr, "SIP listener bound");
            bound.push(listener);
        }
        let config = adjust_config(endpoint.config().clone(), &bound, &limits);
        endpoint.set_config(config);
        let (tx, rx) = mpsc::sync_channel(COMMAND_QUEUE);
        Ok(Driver {
            poll,
            waker,
            tx,
            rx,
            listeners: bound,
            conns: HashMap::new(),
            next_conn: 0,
            counter: ConnCounter::default(),
            timers: BinaryHeap::new(),
            pending: VecDeque::new(),
            tls,
            limits,
            metrics,
            datagram: vec![0; udp::recv_buffer_len(limits.max_message_bytes)],
            scratch: vec![0; STREAM_READ_BYTES],
            messages: Vec::new(),
            tag_state: RandomState::new().build_hasher().finish(),
            next_publish: None,
            persist: persist::Persistence::without_store((started, started_unix)),
            fresh: Vec::new(),
            extensions: crate::extensions::Directory::default(),
            last_now: started,
            endpoint,
        })
    }

    /// The bound listeners, with real port numbers.
    /// Keep bindings and bans in `store` (loading what it holds into the endpoint now).
    /// Without this the driver keeps nothing.
    pub fn set_persistence(
        &mut self,
        store: crate::store::Store,
    ) -> Result<(), crate::store::StoreError> {
        let now = clock();
        let now_unix = self.persist.now_unix(now);
        let bindings: Vec<_> = store
            .load_bindings(now_unix)?
            .into_iter()
            .filter_map(|b| b.to_binding(now, now_unix))
            .collect();
        let bans: Vec<_> = store
            .load_bans(now_unix)?
            .into_iter()
            .filter_map(|b| b.to_ban(now, now_unix))
            .collect();
        tracing::info!(
            bindings = bindings.len(),
            bans = bans.len(),
            "restored from the store"
        );
        let anchor = (now, now_unix);
        self.extensions
            .attach(store.extensions(), &mut self.endpoint)?;
        self.persist = persist::Persistence::with_store(store, anchor, Arc::clone(&self.waker))
            .map_err(crate::store::StoreError::Thread)?;
        self.endpoint.restore(now, bindings, bans);
        self.drain_endpoint(now);
        self.flush(now);
        Ok(())
    }

    pub fn local_addrs(&self) -> Vec<(Transport, SocketAddr)> {
        self.listeners
            .iter()
            .map(|l| (l.transport, l.addr))
            .collect()
    }

    pub fn handle(&self) -> DriverHandle {
        DriverHandle {
            tx: self.tx.clone(),
            waker: Arc::clone(&self.waker),
        }
    }

    /// Run the loop until [`DriverHandle::shutdown`]. Returns an error only when polling
    /// itself fails.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut now = clock();
        self.next_publish = Some(now);
        self.last_now = now;
        loop {
            let timeout = self.poll_timeout(now);
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            now = clock();
            self.last_now = now;
            // Commands first: a reload sent before some input is applied before that input.
            if self.handle_commands(now) {
                break;
            }
            for event in events.iter() {
                let token = event.token();
                if token == WAKER {
                    continue;
                }
                if token.0 < CONN_TOKEN_BASE {
                    self.on_listener(now, token);
                } else {
                    let readable =
                        event.is_readable() || event.is_read_closed() || event.is_error();
                    self.on_conn(now, token, readable, event.is_writable());
                }
            }
            for _ in 0..self.pending.len() {
                let Some(token) = self.pending.pop_front() else {
                    break;
                };
                if token.0 < CONN_TOKEN_BASE {
                    self.on_listener(now, token);
                } else {
                    self.on_conn(now, token, true, false);
                }
            }
            self.expire(now);
            if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
                self.endpoint.handle_timeout(now);
                self.drain_endpoint(now);
            }
            self.flush(now);
            if self.next_publish.is_some_and(|t| t <= now) {
                self.metrics.publish_sip(self.endpoint.stats());
                self.next_publish = now.checked_add(PUBLISH_INTERVAL);
            }
        }
        self.close_all();
        Ok(())
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.pending.is_empty() {
            return Some(Duration::ZERO);
        }
        let next = [
            self.endpoint.poll_timeout(),
            self.timers.peek().map(|Reverse((t, _))| *t),
            self.next_publish,
            self.persist.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        next.map(|t| t.saturating_duration_since(now))
    }

    fn message_limits(&self) -> MessageLimits {
        self.endpoint.config().limits
    }

    /// Returns true on shutdown.
    fn handle_commands(&mut self, now: Instant) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(Command::Shutdown) => return true,
                Ok(Command::FeedBlocks(nets)) => {
                    self.endpoint.set_feed_blocks(nets);
                    tracing::info!(
                        networks = self.endpoint.stats().blocklist_entries,
                        "blocklist feed networks applied"
                    );
                }
                Ok(Command::Unban { ip, reply }) => {
                    let lifted = self.endpoint.unban(ip);
                    self.drain_endpoint(now);
                    let _ = reply.send(lifted);
                }
                Ok(Command::Registrations { reply }) => {
                    let list = self
                        .endpoint
                        .registrations()
                        .map(|b| crate::admin::RegistrationView::from_binding(b, now))
                        .collect();
                    let _ = reply.send(list);
                }
                Ok(Command::Extensions(request)) => {
                    self.extensions.handle(request, &mut self.endpoint);
                    self.drain_endpoint(now);
                }
                Ok(Command::Bans { reply }) => {
                    let list = self
                        .endpoint
                        .bans()
                        .map(|b| crate::admin::BanView::from_ban(b, now))
                        .collect();
                    let _ = reply.send(list);
                }
                Ok(Command::Reload {
                    config,
                    tls,
                    limits,
                }) => self.reload(now, *config, tls, limits),
                // The driver holds a sender itself, so the channel never disconnects.
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn reload(
        &mut self,
        now: Instant,
        config: EndpointConfig,
        tls: Option<Arc<rustls::ServerConfig>>,
        limits: DriverLimits,
    ) {
        self.limits = limits;
        let config = adjust_config(config, &self.listeners, &self.limits);
        // The reload's users are the file's: the API's extensions join them.
        let config = self.extensions.merge(config);
        self.endpoint.set_config(config);
        match tls {
            Some(tls) => self.tls = Some(tls),
            None if self.listeners.iter().any(|l| l.transport == Transport::Tls) => {
                tracing::warn!("reload without a TLS configuration: keeping the current one");
            }
            None => {}
        }
        let len = udp::recv_buffer_len(limits.max_message_bytes);
        if self.datagram.len() != len {
            self.datagram = vec![0; len];
        }
        // Deadlines may have moved earlier.
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.schedule(id);
        }
        let _ = now;
        tracing::info!("SIP driver configuration reloaded");
    }

    fn on_listener(&mut self, now: Instant, token: Token) {
        let Some(listener) = self.listeners.get(token.0 - 1) else {
            return;
        };
        match listener.socket {
            ListenerSocket::Udp(_) => self.read_udp(now, token),
            ListenerSocket::Stream(_) => self.accept(now, token),
        }
    }

    fn read_udp(&mut self, now: Instant, token: Token) {
        for read in 0..SOCKET_BUDGET {
            // How deep into this socket's backlog the loop is: a full budget means the kernel
            // queue holds more than one loop turn can take (SEC-15's "input queue" signal).
            self.endpoint
                .set_queue_fill(read as f32 / SOCKET_BUDGET as f32);
            let listener = &self.listeners[token.0 - 1];
            let ListenerSocket::Udp(socket) = &listener.socket else {
                return;
            };
            match socket.recv_from(&mut self.datagram) {
                Ok((n, remote)) => {
                    // A datagram longer than the limit (or truncated to the buffer, one
                    // octet over it) is counted as too large by the endpoint.
                    let data = Bytes::copy_from_slice(&self.datagram[..n]);
                    let peer = Peer {
                        transport: Transport::Udp,
                        remote,
                        local: listener.addr,
                        conn: None,
                    };
                    trace_message("in", &peer, &data);
                    self.endpoint.handle_datagram(now, peer, data);
                    self.drain_endpoint(now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Keep reading: stopping before WouldBlock would lose the edge.
                Err(e) => tracing::debug!(error = %e, "UDP receive error"),
            }
        }
        self.pending.push_back(token);
    }

    fn accept(&mut self, now: Instant, token: Token) {
        for _ in 0..SOCKET_BUDGET {
            let listener = &self.listeners[token.0 - 1];
            let ListenerSocket::Stream(socket) = &listener.socket else {
                return;
            };
            let (transport, local) = (listener.transport, listener.addr);
            let (stream, remote) = match socket.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    // EMFILE and friends: retrying now would spin; the next connection
                    // attempt raises a new edge.
                    tracing::warn!(%transport, addr = %local, error = %e, "accept failed");
                    return;
                }
            };
            if let Err(refusal) = self.counter.admit(remote.ip(), &self.limits) {
                tracing::debug!(%transport, peer = %remote, reason = refusal.as_str(), "connection refused");
                self.metrics
                    .connections_rejected
                    .with_label_values(&[refusal.as_str()])
                    .inc();
                drop(stream);
                continue;
            }
            if let Err(e) = tcp::configure_accepted(&stream) {
                tracing::debug!(%transport, peer = %remote, error = %e, "setting socket options");
            }
            let n = self.next_conn;
            self.next_conn += 1;
            let id = ConnId(n as u64);
            let tls = match transport {
                Transport::Tls => self.tls.clone(),
                _ => None,
            };
            let conn = Conn::new(
                id,
                Token(CONN_TOKEN_BASE + n),
                transport,
                stream,
                remote,
                local,
                tls,
                &self.limits,
                self.message_limits(),
                now,
            );
            let mut conn = match conn {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(%transport, peer = %remote, error = %e, "cannot start TLS");
                    self.counter.release(remote.ip());
                    continue;
                }
            };
            if let Err(e) = conn.register(self.poll.registry()) {
                tracing::warn!(%transport, peer = %remote, error = %e, "cannot register connection");
                self.counter.release(remote.ip());
                continue;
            }
            tracing::debug!(conn = id.0, %transport, peer = %remote, "connection accepted");
            self.metrics
                .tcp_connections
                .with_label_values(&[transport.as_str()])
                .inc();
            self.conns.insert(id, conn);
            self.schedule(id);
        }
        self.pending.push_back(token);
    }

    fn on_conn(&mut self, now: Instant, token: Token, readable: bool, writable: bool) {
        let id = ConnId((token.0 - CONN_TOKEN_BASE) as u64);
        if writable {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            if let Err(e) = conn.flush(now) {
                self.on_conn_error(now, id, e);
            }
        }
        if readable {
            self.read_conn(now, id);
        }
        self.after_io(now, id);
    }

    fn read_conn(&mut self, now: Instant, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let mut messages = std::mem::take(&mut self.messages);
        let result = conn.on_readable(now, &mut self.scratch, &mut messages);
        let peer = Peer {
            transport: conn.transport,
            remote: conn.remote,
            local: conn.local,
            conn: Some(id),
        };
        let token = conn.token;
        for message in messages.drain(..) {
            // An earlier message may have closed the connection.
            if self.conns.get(&id).is_none_or(|c| c.is_closing()) {
                break;
            }
            trace_message("in", &peer, &message);
            self.endpoint.handle_stream_message(now, peer, message);
            self.drain_endpoint(now);
        }
        self.messages = messages;
        match result {
            Ok(ReadStatus::Drained) => {}
            Ok(ReadStatus::More) => self.pending.push_back(token),
            Err(e) => self.on_conn_error(now, id, e),
        }
    }

    /// After I/O on a connection: start closing when the peer has, remove it when done,
    /// keep its interest and deadline current.
    fn after_io(&mut self, now: Instant, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.peer_closed() && !conn.is_closing() {
            tracing::debug!(conn = id.0, "peer closed");
            if let Err(e) = conn.begin_close(now) {
                self.on_conn_error(now, id, e);
                return;
            }
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.is_done() {
            self.remove(id, CloseReason::PeerClosed);
            return;
        }
        if let Err(e) = conn.update_interest(self.poll.registry()) {
            self.on_conn_error(now, id, e.into());
            return;
        }
        self.schedule(id);
    }

    fn on_conn_error(&mut self, now: Instant, id: ConnId, error: ConnError) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        tracing::debug!(conn = id.0, transport = %conn.transport, peer = %conn.remote, %error, "connection fault");
        match error {
            ConnError::Framing(FramingError::TooLarge { head, .. }) => {
                let tag = self.new_tag();
                let limits = self.message_limits();
                if let Some(conn) = self.conns.get_mut(&id).filter(|c| !c.is_closing()) {
                    if let Some(response) = too_large_response(&head, &limits, &tag) {
                        // Best effort: the connection closes either way.
                        let _ = conn.send(now, &response.to_bytes());
                    }
                }
                self.close_gracefully(now, id, CloseReason::TooLarge);
            }
            ConnError::Framing(_) => self.close_gracefully(now, id, CloseReason::Framing),
            ConnError::Tls(_) => {
                if conn.is_handshaking() {
                    self.metrics.tls_handshake_failures.inc();
                }
                // Send the alert rustls queued, if the socket takes it.
                let _ = conn.flush(now);
                self.remove(id, CloseReason::Tls);
            }
            ConnError::WriteOverflow { .. } => self.remove(id, CloseReason::WriteOverflow),
            ConnError::Io(_) => self.remove(id, CloseReason::Io),
        }
    }

    /// Flush, send FIN, linger; counted now, removed when done or when the linger ends.
    fn close_gracefully(&mut self, now: Instant, id: ConnId, reason: CloseReason) {
        if self.conns.get(&id).is_none_or(|c| c.is_closing()) {
            return;
        }
        tracing::debug!(conn = id.0, reason = reason.as_str(), "closing connection");
        self.count_close(reason);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let result = conn.begin_close(now);
        match result {
            Err(_) => self.remove(id, CloseReason::Io),
            Ok(()) if conn.is_done() => self.remove(id, CloseReason::PeerClosed),
            Ok(()) => {
                if conn.update_interest(self.poll.registry()).is_err() {
                    self.remove(id, CloseReason::Io);
                    return;
                }
                self.schedule(id);
            }
        }
    }

    fn count_close(&self, reason: CloseReason) {
        if let Some(label) = reason.metric_label() {
            self.metrics
                .connections_rejected
                .with_label_values(&[label])
                .inc();
        }
    }

    /// Close a connection now. Counts `reason` unless the connection was already closing
    /// (its reason was counted when that started).
    fn remove(&mut self, id: ConnId, reason: CloseReason) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        if !conn.is_closing() {
            self.count_close(reason);
        }
        tracing::debug!(conn = id.0, transport = %conn.transport, peer = %conn.remote, reason = reason.as_str(), "connection closed");
        conn.deregister(self.poll.registry());
        self.counter.release(conn.remote.ip());
        // Bindings on this connection can no longer be reached (RFC 5626 flow death).
        self.endpoint.handle_connection_closed(self.last_now, id);
        self.metrics
            .tcp_connections
            .with_label_values(&[conn.transport.as_str()])
            .dec();
    }

    fn close_all(&mut self) {
        // Answers held for a commit go out after it, as always; the store thread ends.
        self.flush_with(clock(), true);
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.remove(id, CloseReason::Shutdown);
        }
        self.metrics.publish_sip(self.endpoint.stats());
    }

    /// Make sure the timer heap holds an entry no later than the connection's deadline.
    /// Entries are never removed early: one that no longer matches `Conn::scheduled` is
    /// skipped when it pops, and a deadline that moved later is re-queued then.
    fn schedule(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let Some((at, _)) = conn.deadline(&self.limits) else {
            return;
        };
        if conn.scheduled.is_none_or(|s| at < s) {
            conn.scheduled = Some(at);
            self.timers.push(Reverse((at, id)));
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            if conn.scheduled != Some(at) {
                continue;
            }
            conn.scheduled = None;
            match conn.deadline(&self.limits) {
                Some((due, CloseReason::Idle))
                    if due <= now && self.endpoint.connection_in_use(id) =>
                {
                    // A registered phone's flow: idle is normal between keep-alives (SEC-16).
                    conn.mark_active(now);
                    self.schedule(id);
                }
                Some((due, reason)) if due <= now => {
                    tracing::debug!(conn = id.0, transport = %conn.transport, peer = %conn.remote, reason = reason.as_str(), "connection timed out");
                    self.remove(id, reason);
                }
                _ => self.schedule(id),
            }
        }
    }

    /// Drain the endpoint's outputs after one input (the driver contract).
    ///
    /// The answers of an input that changed the store wait for that change's commit, and
    /// so does a 2xx for a destination that already has an answer waiting (a retransmitted
    /// 200 must not overtake the first); everything else goes out at once.
    fn drain_endpoint(&mut self, now: Instant) {
        let mut fresh = std::mem::take(&mut self.fresh);
        let ops_before = self.persist.pending();
        loop {
            let mut progressed = false;
            while let Some(transmit) = self.endpoint.poll_transmit() {
                progressed = true;
                if tracing::enabled!(target: SIP_TRACE, tracing::Level::TRACE) {
                    let to = Peer {
                        transport: transmit.transport,
                        remote: transmit.destination,
                        local: transmit.local,
                        conn: transmit.conn,
                    };
                    trace_message("out", &to, &transmit.payload);
                }
                fresh.push(transmit);
            }
            while let Some(event) = self.endpoint.poll_event() {
                progressed = true;
                match event {
                    EndpointEvent::CloseConnection(id) => {
                        self.close_gracefully(now, id, CloseReason::Endpoint)
                    }
                    EndpointEvent::Registrar(e) => self.persist.on_registrar(now, &e),
                    EndpointEvent::Security(e) => self.persist.on_security(now, &e),
                    other => tracing::debug!(event = ?other, "endpoint event not handled"),
                }
            }
            if !progressed {
                break;
            }
        }
        let changed_store = self.persist.pending() > ops_before;
        for transmit in fresh.drain(..) {
            if self.persist.holds_transmits()
                && (changed_store || self.persist.holds_for(&transmit))
            {
                self.persist.hold(transmit);
            } else {
                self.send_transmit(now, transmit);
            }
        }
        self.fresh = fresh;
    }

    /// Send the answers whose changes the store thread has committed, and hand it the
    /// next batch when one is due (`persist`).
    fn flush(&mut self, now: Instant) {
        self.flush_with(now, false);
    }

    fn flush_with(&mut self, now: Instant, force: bool) {
        // Connection closes since the last drain may have unbound contacts.
        self.drain_endpoint(now);
        while let Some(committed) = self.persist.poll_committed() {
            for t in committed {
                self.send_transmit(now, t);
            }
        }
        let ready = if force {
            self.persist.shutdown(now)
        } else {
            self.persist.commit(now, false)
        };
        for t in ready {
            self.send_transmit(now, t);
        }
    }

    fn send_transmit(&mut self, now: Instant, t: Transmit) {
        match t.transport {
            Transport::Udp => {
                let socket = self
                    .udp_socket(t.local)
                    .or_else(|| self.udp_socket_for(t.destination));
                let Some(socket) = socket else {
                    tracing::debug!(local = %t.local, destination = %t.destination, "no UDP socket for transmit; dropped");
                    return;
                };
                match socket.send_to(&t.payload, t.destination) {
                    Ok(_) => {}
                    // UDP may lose a message; transactions retransmit.
                    Err(e) => {
                        tracing::debug!(destination = %t.destination, error = %e, "UDP send failed; dropped")
                    }
                }
            }
            Transport::Tcp | Transport::Tls => {
                let id = t.conn;
                match id.and_then(|id| self.conns.get_mut(&id)) {
                    Some(conn) if !conn.is_closing() => {
                        let id = conn.id;
                        match conn.send(now, &t.payload) {
                            Ok(()) => self.after_io(now, id),
                            Err(e) => self.on_conn_error(now, id, e),
                        }
                    }
                    _ => tracing::debug!(
                        conn = ?id.map(|c| c.0),
                        destination = %t.destination,
                        "connection gone; stream transmit dropped (outbound connections are not implemented)"
                    ),
                }
            }
        }
    }

    fn udp_socket(&self, local: SocketAddr) -> Option<&UdpSocket> {
        self.listeners.iter().find_map(|l| match &l.socket {
            ListenerSocket::Udp(s) if l.addr == local => Some(s),
            _ => None,
        })
    }

    /// Any UDP socket of the destination's address family.
    fn udp_socket_for(&self, destination: SocketAddr) -> Option<&UdpSocket> {
        self.listeners.iter().find_map(|l| match &l.socket {
            ListenerSocket::Udp(s) if l.addr.is_ipv4() == destination.is_ipv4() => Some(s),
            _ => None,
        })
    }

    /// A To tag for a 513 the driver answers itself (splitmix64).
    fn new_tag(&mut self) -> String {
        self.tag_state = self.tag_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.tag_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        format!("{:016x}", z ^ (z >> 31))
    }
}
