//! A media worker, epoll backend (MED-19): one thread, pinned to a core when asked, running a
//! mio loop over the UDP sockets it owns, a slab of [`Session`]s, and their timers.
//!
//! Owns: its sockets (per leg an even/odd pair from its [`PortAllocator`] share: the RTP
//! socket, and the RTCP socket unless rtcp-mux), the sessions placed on it (they never move),
//! its counters ([`counters`]: plain `u64`s published once per turn into a shared block of
//! atomics), and a stall detector (turns over [`WorkerConfig::stall_budget`] are counted).
//! It takes [`Command`]s from a bounded crossbeam channel (the control plane wakes it through
//! a mio [`Waker`]) and reports [`Event`]s on a bounded channel: it never blocks, and an event
//! that finds the channel full is dropped and counted (`events_dropped`).
//!
//! Does not own: choosing the worker for a session ([`pool::WorkerPool`] places it on the
//! least-loaded one), SRTP, the io_uring backend, Prometheus.
//!
//! # Per packet
//! For a readable socket: `recv_from` into the worker's one preallocated buffer until
//! WouldBlock or the per-turn budget ([`WorkerConfig::recv_budget`]; a socket over budget is
//! revisited next turn, mio being edge-triggered), [`Session::on_packet`], then `send_to`
//! from the socket of the verdict's leg and port. Nothing allocates on this path.
//! `recvmmsg`/`sendmmsg` are not used: the libc calls need `unsafe`, which the workspace
//! forbids outside one OS module that does not exist yet (`quinn-udp` or `nix` wrap them
//! safely; the io_uring backend is the later, faster path).
//!
//! # Commands
//! `CreateSession` allocates a pair per leg (the `port` of each [`LegConfig::local`] is
//! ignored; an unspecified IP means [`WorkerConfig::bind_ip`]), binds, and answers
//! [`Event::SessionCreated`] with the legs' RTP addresses, or [`Event::CommandFailed`] /
//! [`Event::SessionRejected`]. `UpdateSession` keeps the legs' sockets (their addresses
//! replace the given `local`s), binds the RTCP port if rtcp-mux was dropped, and answers only
//! a refusal. `SetHold` answers nothing. `DeleteSession` closes the sockets, frees the pairs and
//! answers [`Event::SessionDeleted`]. A command for a handle the worker does not hold answers
//! [`Event::CommandFailed`] with [`WorkerError::UnknownSession`].
//!
//! # Timers
//! Each session has one timer ([`Session::poll_timeout`], the media timeout). The worker keeps
//! the earliest deadline it knows; media only pushes deadlines later, so waking at that
//! earliest deadline and rescanning is correct. It also rescans at least once a second while
//! it has sessions, since a timed-out session re-arms on media without telling the worker.
//! A scan is O(sessions); a timer wheel replaces it when sessions number in the thousands.

pub mod counters;
pub mod pool;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use thiserror::Error;

use crate::ports::{bind_udp, PortAllocator, PortError, PortPair};
use crate::session::{LegConfig, LegId, Port, Session, SessionEvent, Verdict, MAX_LEGS};
use crate::{Command, Event, SessionHandle};
use counters::{Counts, SharedCounters};

/// The largest datagram a worker receives (a bigger one is truncated by the OS and then
/// fails the RTP/RTCP checks).
pub const MAX_DATAGRAM: usize = 2048;

const WAKER: Token = Token(usize::MAX);
/// Token = slab key * TOKEN_STRIDE + leg * 2 + port.
const TOKEN_STRIDE: usize = MAX_LEGS * 2;
/// Commands handled per turn, so a burst of commands cannot starve the sockets.
const COMMAND_BUDGET: usize = 64;
/// The longest the worker sleeps between timer scans while it has sessions: a session that
/// timed out re-arms on media without telling the worker (see "Timers").
const TIMER_RESCAN: Duration = Duration::from_secs(1);

/// How to start a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The worker's number, reported in [`Event::Heartbeat`].
    pub id: u16,
    /// The address legs bind on when their `local` IP is unspecified (`media.bind`).
    pub bind_ip: IpAddr,
    /// This worker's share of the port pairs ([`crate::ports::PortRanges::split`]).
    pub pairs: Vec<PortPair>,
    /// The core to pin the thread to (`None`: not pinned).
    pub core: Option<usize>,
    /// Capacity of the command channel.
    pub command_capacity: usize,
    /// Capacity of the event channel.
    pub event_capacity: usize,
    /// Datagrams read from one socket per loop turn.
    pub recv_budget: usize,
    /// A loop turn (socket reads, relaying, commands, timers; not the wait) longer than this
    /// counts as a stall (`stalls`, `longest_turn_us`): a 20 ms packetization interval leaves
    /// a worker half of it by default.
    pub stall_budget: Duration,
}

impl WorkerConfig {
    /// Defaults: not pinned, 1024 commands, 4096 events, 64 datagrams per socket per turn,
    /// a 10 ms stall budget.
    #[must_use]
    pub fn new(id: u16, bind_ip: IpAddr, pairs: Vec<PortPair>) -> Self {
        Self {
            id,
            bind_ip,
            pairs,
            core: None,
            command_capacity: 1024,
            event_capacity: 4096,
            recv_budget: 64,
            stall_budget: Duration::from_millis(10),
        }
    }
}

/// Why a command failed in the worker (the session core's own refusals are
/// [`Event::SessionRejected`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// No port pair could be allocated.
    #[error("port allocation failed: {0}")]
    Ports(#[from] PortError),
    /// Registering or binding a socket failed.
    #[error("socket set-up failed: {0}")]
    Io(#[from] io::Error),
    /// The session handle is not on this worker.
    #[error("unknown session")]
    UnknownSession,
    /// A session with this handle already exists on this worker.
    #[error("duplicate session handle")]
    DuplicateSession,
    /// More legs than the worker's token space allows.
    #[error("too many legs: {count}")]
    TooManyLegs { count: usize },
}

/// Why a command could not be handed to the worker.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SendError {
    /// The command channel is full; the command is given back.
    #[error("the worker's command channel is full")]
    Full(Command),
    /// The worker has stopped.
    #[error("the worker has stopped")]
    Stopped(Command),
}

/// The control plane's side of a running worker.
#[derive(Debug)]
pub struct WorkerHandle {
    commands: Option<Sender<Command>>,
    waker: Arc<Waker>,
    events: Receiver<Event>,
    counters: Arc<SharedCounters>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl WorkerHandle {
    /// Hands a command to the worker without blocking and wakes it.
    pub fn send(&self, command: Command) -> Result<(), SendError> {
        let Some(tx) = &self.commands else {
            return Err(SendError::Stopped(command));
        };
        tx.try_send(command).map_err(|e| match e {
            TrySendError::Full(c) => SendError::Full(c),
            TrySendError::Disconnected(c) => SendError::Stopped(c),
        })?;
        // A failed wake leaves the command for the next turn (the worker also checks the
        // channel every turn).
        let _ = self.waker.wake();
        Ok(())
    }

    /// The worker's events.
    #[must_use]
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// The worker's published counters.
    #[must_use]
    pub fn counters(&self) -> &Arc<SharedCounters> {
        &self.counters
    }

    /// Stops the worker (sessions are dropped, sockets closed) and waits for its thread.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        self.commands = None;
        let _ = self.waker.wake();
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("media worker panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The cores this process may run on (its affinity mask), for `media.workers` and pinning;
/// empty when the OS does not say.
#[must_use]
pub fn available_cores() -> Vec<usize> {
    core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_default()
}

/// Starts a worker thread.
pub fn spawn(config: WorkerConfig) -> io::Result<WorkerHandle> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (cmd_tx, cmd_rx) = crossbeam_channel::bounded(config.command_capacity.max(1));
    let (ev_tx, ev_rx) = crossbeam_channel::bounded(config.event_capacity.max(1));
    let counters = Arc::new(SharedCounters::default());
    let shared = Arc::clone(&counters);
    let thread = std::thread::Builder::new()
        .name(format!("voxgate-media-{}", config.id))
        .spawn(move || {
            if let Some(core) = config.core {
                shared.set_pinned(core_affinity::set_for_current(core_affinity::CoreId {
                    id: core,
                }));
            }
            Worker::new(config, poll, cmd_rx, ev_tx, shared).run()
        })?;
    Ok(WorkerHandle {
        commands: Some(cmd_tx),
        waker,
        events: ev_rx,
        counters,
        thread: Some(thread),
    })
}

/// One leg's sockets.
#[derive(Debug)]
struct LegSockets {
    pair: PortPair,
    ip: IpAddr,
    rtp: UdpSocket,
    rtcp: Option<UdpSocket>,
}

impl LegSockets {
    fn local(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.pair.rtp())
    }

    fn socket(&self, port: Port) -> Option<&UdpSocket> {
        match port {
            Port::Rtp => Some(&self.rtp),
            Port::Rtcp => self.rtcp.as_ref(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    handle: SessionHandle,
    session: Session,
    legs: Vec<LegSockets>,
}

struct Worker {
    id: u16,
    bind_ip: IpAddr,
    recv_budget: usize,
    stall_budget: Duration,
    poll: Poll,
    commands: Receiver<Command>,
    events_tx: Sender<Event>,
    shared: Arc<SharedCounters>,
    counts: Counts,
    ports: PortAllocator,
    sessions: Slab<Entry>,
    by_handle: HashMap<SessionHandle, usize>,
    /// The earliest session deadline known (see "Timers").
    next_timer: Option<Instant>,
    /// Sockets left with data after their budget ran out.
    pending: Vec<Token>,
    buf: Box<[u8; MAX_DATAGRAM]>,
}

impl Worker {
    fn new(
        config: WorkerConfig,
        poll: Poll,
        commands: Receiver<Command>,
        events_tx: Sender<Event>,
        shared: Arc<SharedCounters>,
    ) -> Self {
        Self {
            id: config.id,
            bind_ip: config.bind_ip,
            recv_budget: config.recv_budget.max(1),
            stall_budget: config.stall_budget,
            poll,
            commands,
            events_tx,
            shared,
            counts: Counts::default(),
            ports: PortAllocator::new(config.pairs),
            sessions: Slab::with_capacity(256),
            by_handle: HashMap::with_capacity(256),
            next_timer: None,
            pending: Vec::with_capacity(1024),
            buf: Box::new([0; MAX_DATAGRAM]),
        }
    }

    fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut again: Vec<Token> = Vec::with_capacity(1024);
        loop {
            let timeout = if self.pending.is_empty() {
                self.next_timer
                    .map(|t| t.saturating_duration_since(clock()))
            } else {
                Some(Duration::ZERO)
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            // The clock is read once per batch (STYLE 2).
            let now = clock();
            self.counts.turns += 1;
            std::mem::swap(&mut again, &mut self.pending);
            for token in again.drain(..) {
                self.drain_socket(now, token);
            }
            for event in events.iter() {
                if event.token() != WAKER {
                    self.drain_socket(now, event.token());
                }
            }
            if !self.handle_commands(now) {
                self.publish();
                return Ok(());
            }
            if self.next_timer.is_some_and(|t| now >= t) {
                self.run_timers(now);
            }
            // The stall detector: one more clock read per turn.
            let turn = clock().saturating_duration_since(now);
            if turn > self.stall_budget {
                self.counts.stalls += 1;
            }
            let turn_us = u64::try_from(turn.as_micros()).unwrap_or(u64::MAX);
            self.counts.longest_turn_us = self.counts.longest_turn_us.max(turn_us);
            self.publish();
        }
    }

    fn publish(&mut self) {
        self.counts.sessions = self.sessions.len() as u64;
        self.counts.port_pairs_in_use = self.ports.in_use() as u64;
        self.shared.publish(&self.counts);
    }

    fn emit(&mut self, event: Event) {
        if self.events_tx.try_send(event).is_err() {
            self.counts.events_dropped += 1;
        }
    }

    /// Reads one socket until WouldBlock or the budget; relays each datagram.
    fn drain_socket(&mut self, now: Instant, token: Token) {
        let key = token.0 / TOKEN_STRIDE;
        let leg = (token.0 % TOKEN_STRIDE) / 2;
        let port = if token.0 % 2 == 0 {
            Port::Rtp
        } else {
            Port::Rtcp
        };
        // A stale token (its session was deleted in this turn) finds nothing, or a new
        // session's socket, where a spurious read just sees WouldBlock.
        let Some(entry) = self.sessions.get_mut(key) else {
            return;
        };
        let leg_id = LegId(u8::try_from(leg).expect("leg < MAX_LEGS"));
        let buf = &mut self.buf[..];
        for _ in 0..self.recv_budget {
            let Some(socket) = entry.legs.get(leg).and_then(|l| l.socket(port)) else {
                return;
            };
            let (n, src) = match socket.recv_from(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // ICMP errors surface here (ECONNREFUSED); the socket stays usable.
                    self.counts.recv_errors += 1;
                    continue;
                }
            };
            self.counts.rx_packets += 1;
            self.counts.rx_bytes += n as u64;
            match entry
                .session
                .on_packet(now, leg_id, port, src, &mut buf[..n])
            {
                Verdict::Drop(_) => self.counts.dropped += 1,
                Verdict::Forward { to_leg, port, dest } => {
                    let out = entry
                        .legs
                        .get(usize::from(to_leg.0))
                        .and_then(|l| l.socket(port));
                    match out.map(|s| s.send_to(&buf[..n], dest)) {
                        Some(Ok(sent)) => {
                            self.counts.tx_packets += 1;
                            self.counts.tx_bytes += sent as u64;
                        }
                        _ => self.counts.send_errors += 1,
                    }
                }
            }
        }
        self.counts.budget_exhausted += 1;
        if self.pending.len() < self.pending.capacity() {
            self.pending.push(token);
        }
    }

    /// Handles up to [`COMMAND_BUDGET`] commands; false when the control plane is gone.
    fn handle_commands(&mut self, now: Instant) -> bool {
        for _ in 0..COMMAND_BUDGET {
            match self.commands.try_recv() {
                Ok(cmd) => self.handle_command(now, cmd),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        // More are queued: the waker token in `pending` makes the next poll return at once
        // (it names no socket, so draining it reads nothing).
        self.pending.push(WAKER);
        true
    }

    fn handle_command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::Ping { seq } => self.emit(Event::Heartbeat {
                worker: self.id,
                seq,
            }),
            Command::CreateSession {
                session,
                config,
                legs,
            } => {
                if let Err(error) = self.create(now, session, config, legs) {
                    self.emit(Event::CommandFailed { session, error });
                }
            }
            Command::UpdateSession { session, legs } => {
                if let Err(error) = self.update(now, session, legs) {
                    self.emit(Event::CommandFailed { session, error });
                }
            }
            Command::SetHold { session, held } => match self.entry(session) {
                Some(key) => {
                    self.sessions[key].session.set_hold(now, held);
                    self.note_timer(key);
                }
                None => self.emit(Event::CommandFailed {
                    session,
                    error: WorkerError::UnknownSession,
                }),
            },
            Command::DeleteSession { session } => match self.entry(session) {
                Some(key) => {
                    let legs = self.remove(key);
                    self.emit(Event::SessionDeleted { session, legs });
                }
                None => self.emit(Event::CommandFailed {
                    session,
                    error: WorkerError::UnknownSession,
                }),
            },
            Command::QueryStats { session, token } => match self.entry(session) {
                Some(key) => {
                    let legs = self.sessions[key].session.all_stats().collect();
                    self.emit(Event::Stats {
                        session,
                        token,
                        legs,
                    });
                }
                None => self.emit(Event::CommandFailed {
                    session,
                    error: WorkerError::UnknownSession,
                }),
            },
        }
    }

    fn entry(&self, session: SessionHandle) -> Option<usize> {
        self.by_handle.get(&session).copied()
    }

    fn create(
        &mut self,
        now: Instant,
        handle: SessionHandle,
        config: crate::session::SessionConfig,
        mut legs: Vec<LegConfig>,
    ) -> Result<(), WorkerError> {
        if self.by_handle.contains_key(&handle) {
            return Err(WorkerError::DuplicateSession);
        }
        if legs.len() > MAX_LEGS {
            return Err(WorkerError::TooManyLegs { count: legs.len() });
        }
        let mut sockets: Vec<LegSockets> = Vec::with_capacity(legs.len());
        for leg in &mut legs {
            let ip = if leg.local.ip().is_unspecified() {
                self.bind_ip
            } else {
                leg.local.ip()
            };
            match self.ports.allocate(ip, leg.rtcp_mux) {
                Ok(bound) => {
                    let s = LegSockets {
                        pair: bound.pair,
                        ip,
                        rtp: UdpSocket::from_std(bound.rtp),
                        rtcp: bound.rtcp.map(UdpSocket::from_std),
                    };
                    leg.local = s.local();
                    sockets.push(s);
                }
                Err(e) => {
                    self.release(sockets);
                    return Err(e.into());
                }
            }
        }
        let session = match Session::new(now, config, legs) {
            Ok(s) => s,
            Err(error) => {
                self.release(sockets);
                self.emit(Event::SessionRejected {
                    session: handle,
                    error,
                });
                return Ok(());
            }
        };
        let vacant = self.sessions.vacant_entry();
        let key = vacant.key();
        let registry = self.poll.registry();
        for (i, s) in sockets.iter_mut().enumerate() {
            let r = registry
                .register(&mut s.rtp, token(key, i, Port::Rtp), Interest::READABLE)
                .and_then(|()| match &mut s.rtcp {
                    Some(rtcp) => {
                        registry.register(rtcp, token(key, i, Port::Rtcp), Interest::READABLE)
                    }
                    None => Ok(()),
                });
            if let Err(e) = r {
                self.release(sockets);
                return Err(e.into());
            }
        }
        let locals = sockets.iter().map(LegSockets::local).collect();
        vacant.insert(Entry {
            handle,
            session,
            legs: sockets,
        });
        self.by_handle.insert(handle, key);
        self.note_timer(key);
        self.emit(Event::SessionCreated {
            session: handle,
            locals,
        });
        Ok(())
    }

    fn update(
        &mut self,
        now: Instant,
        handle: SessionHandle,
        mut legs: Vec<LegConfig>,
    ) -> Result<(), WorkerError> {
        let key = self.entry(handle).ok_or(WorkerError::UnknownSession)?;
        let entry = &mut self.sessions[key];
        for (i, (leg, s)) in legs.iter_mut().zip(entry.legs.iter_mut()).enumerate() {
            leg.local = s.local();
            if !leg.rtcp_mux && s.rtcp.is_none() {
                // rtcp-mux was dropped: the odd port of the reserved pair is bound now.
                let std = bind_udp(SocketAddr::new(s.ip, s.pair.rtcp()))?;
                let mut rtcp = UdpSocket::from_std(std);
                self.poll.registry().register(
                    &mut rtcp,
                    token(key, i, Port::Rtcp),
                    Interest::READABLE,
                )?;
                s.rtcp = Some(rtcp);
            }
        }
        match entry.session.update(now, legs) {
            Ok(()) => self.note_timer(key),
            Err(error) => self.emit(Event::SessionRejected {
                session: handle,
                error,
            }),
        }
        Ok(())
    }

    /// Deletes a session: sockets closed, pairs freed; returns its final stats.
    fn remove(&mut self, key: usize) -> Vec<crate::stats::LegStats> {
        let entry = self.sessions.remove(key);
        self.by_handle.remove(&entry.handle);
        let stats = entry.session.all_stats().collect();
        self.release(entry.legs);
        stats
    }

    fn release(&mut self, legs: Vec<LegSockets>) {
        for mut s in legs {
            // Deregistering a never-registered socket fails harmlessly; closing it removes it
            // from epoll anyway.
            let _ = self.poll.registry().deregister(&mut s.rtp);
            if let Some(rtcp) = &mut s.rtcp {
                let _ = self.poll.registry().deregister(rtcp);
            }
            let pair = s.pair;
            drop(s);
            self.ports.free(pair);
        }
    }

    fn note_timer(&mut self, key: usize) {
        if let Some(t) = self.sessions[key].session.poll_timeout() {
            self.next_timer = Some(self.next_timer.map_or(t, |n| n.min(t)));
        }
    }

    fn run_timers(&mut self, now: Instant) {
        let mut next: Option<Instant> = None;
        let mut raised = Vec::new();
        for (_, entry) in &mut self.sessions {
            entry.session.handle_timeout(now);
            while let Some(ev) = entry.session.poll_event() {
                raised.push((entry.handle, ev));
            }
            if let Some(t) = entry.session.poll_timeout() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        if !self.sessions.is_empty() {
            let rescan = now + TIMER_RESCAN;
            next = Some(next.map_or(rescan, |n| n.min(rescan)));
        }
        self.next_timer = next;
        for (session, ev) in raised {
            let SessionEvent::MediaTimeout { held, idle } = ev;
            self.emit(Event::MediaTimeout {
                session,
                held,
                idle,
            });
        }
    }
}

/// The worker is the driver of its sessions: the one place in the data plane that reads the
/// clock (STYLE 2), once per loop turn.
#[allow(clippy::disallowed_methods)]
fn clock() -> Instant {
    Instant::now()
}

fn token(key: usize, leg: usize, port: Port) -> Token {
    let p = match port {
        Port::Rtp => 0,
        Port::Rtcp => 1,
    };
    Token(key * TOKEN_STRIDE + leg * 2 + p)
}
