//! What the driver keeps on behalf of the endpoint: bindings and bans go to the embedded
//! store, written by a store thread so that the SIP loop never waits for a disk.
//!
//! Ordering is the point of this module. The endpoint emits a binding's store event and the
//! 200 that confirms it from the same input; the driver holds the transmits of every input
//! that changed the store (and any 2xx for a destination with something held) until the
//! store thread has committed the change (one redb transaction, fsync'd), so a kill -9
//! never loses a registration that a phone saw confirmed (issue 3). Everything else (401
//! challenges, OPTIONS answers, 403s) goes out at once, fsync or not.
//!
//! Commits are grouped: one batch is in flight at a time, and what arrives meanwhile waits
//! for the next one; besides, a change that finds the store idle (no commit within
//! [`COMMIT_INTERVAL`]) is sent at once, while under load batches leave at most once per
//! interval (or sooner, once [`GROUP_COMMIT_MAX`] changes wait). A durable commit costs
//! about the same for one binding as for fifty (the B-tree pages, the header and the
//! `fdatasync`), so this divides the store's share of the CPU, at the price of at most one
//! interval plus one commit of extra latency on the answers held, and only under load. A
//! disk that stalls delays those answers, and nothing else.
//!
//! The admin API's listings are not kept here: the driver builds them on request.

use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::Waker;
use voxgate_controlplane::endpoint::{ConnId, Transmit};
use voxgate_controlplane::registrar::RegistrarEvent;
use voxgate_controlplane::security::SecurityEvent;
use voxgate_controlplane::sip::Transport;

use crate::store::{Store, StoreOp, StoredBan, StoredBinding};

/// Least time between two commits. Far below SIP's T1 (500 ms), so no client retransmits
/// because of it; and only the answers that confirm a change wait (a 401, an OPTIONS
/// answer or a call's signalling do not).
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(50);

/// Pending changes that commit at once, interval or not. It bounds the answers released
/// together: an upstream proxy that sends every registration from one address receives
/// them as one burst, and SIPp's default 64 KiB receive buffer drops bursts of more than
/// about a hundred.
pub const GROUP_COMMIT_MAX: usize = 48;

/// Where a held transmit goes.
type Destination = (Transport, SocketAddr, Option<ConnId>);

fn destination(t: &Transmit) -> Destination {
    (t.transport, t.destination, t.conn)
}

/// One commit: the changes, and the answers that wait for them.
struct Batch {
    ops: Vec<StoreOp>,
    held: Vec<Transmit>,
}

/// The store thread and the channels to and from it.
#[derive(Debug)]
struct Writer {
    batches: Option<Sender<Batch>>,
    done: Receiver<Vec<Transmit>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("ops", &self.ops.len())
            .field("held", &self.held.len())
            .finish()
    }
}

impl Writer {
    fn spawn(mut store: Store, waker: Arc<Waker>) -> std::io::Result<Writer> {
        let (batches, inbox) = mpsc::channel::<Batch>();
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("voxgate-store".into())
            .spawn(move || {
                for batch in inbox {
                    if let Err(e) = store.apply(&batch.ops) {
                        tracing::error!(error = %e, changes = batch.ops.len(), "store commit failed");
                    }
                    if done_tx.send(batch.held).is_err() {
                        break;
                    }
                    // The loop may be gone at shutdown; the answers are then drained by
                    // `Persistence::shutdown`.
                    let _ = waker.wake();
                }
            })?;
        Ok(Writer {
            batches: Some(batches),
            done,
            thread: Some(thread),
        })
    }
}

#[derive(Debug)]
pub struct Persistence {
    writer: Option<Writer>,
    ops: Vec<StoreOp>,
    /// When the last batch was sent.
    last_commit: Option<Instant>,
    held: Vec<Transmit>,
    /// Where the answers of the batch in flight go (`None`: no batch in flight).
    in_flight: Option<Vec<Destination>>,
    /// `(instant, unix seconds)` read together: stored records carry wall-clock time.
    anchor: (Instant, u64),
}

impl Persistence {
    /// Keep nothing: no store, no thread, nothing held.
    pub fn without_store(anchor: (Instant, u64)) -> Self {
        Self {
            writer: None,
            ops: Vec::new(),
            last_commit: None,
            held: Vec::new(),
            in_flight: None,
            anchor,
        }
    }

    /// Write to `store` from a store thread, which wakes the loop through `waker` after
    /// each commit.
    pub fn with_store(
        store: Store,
        anchor: (Instant, u64),
        waker: Arc<Waker>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            writer: Some(Writer::spawn(store, waker)?),
            ..Self::without_store(anchor)
        })
    }

    pub fn now_unix(&self, now: Instant) -> u64 {
        self.anchor.1 + now.saturating_duration_since(self.anchor.0).as_secs()
    }

    /// Whether transmits must wait for a commit (there is a store to commit to).
    pub fn holds_transmits(&self) -> bool {
        self.writer.is_some()
    }

    pub fn hold(&mut self, t: Transmit) {
        self.held.push(t);
    }

    /// Store changes waiting for their commit.
    pub fn pending(&self) -> usize {
        self.ops.len()
    }

    /// Whether `t` must wait behind what is held: it is a 2xx response (a retransmitted
    /// 200, or a registration query listing a binding not yet committed) and something for
    /// its destination is held already. Failures and challenges need not wait: they
    /// confirm nothing, and holding them would only make bursts bigger for an upstream
    /// proxy that sends everything from one address.
    pub fn holds_for(&self, t: &Transmit) -> bool {
        if !t.payload.starts_with(b"SIP/2.0 2") {
            return false;
        }
        let to = destination(t);
        self.held.iter().any(|h| destination(h) == to)
            || self.in_flight.as_ref().is_some_and(|d| d.contains(&to))
    }

    pub fn on_registrar(&mut self, now: Instant, event: &RegistrarEvent) {
        let now_unix = self.now_unix(now);
        match event {
            RegistrarEvent::Bound(b) => {
                self.ops
                    .push(StoreOp::PutBinding(StoredBinding::from_binding(
                        b, now, now_unix,
                    )))
            }
            RegistrarEvent::Unbound { aor, contact, .. } => self.ops.push(StoreOp::RemoveBinding {
                aor: aor.clone(),
                contact: contact.clone(),
            }),
            RegistrarEvent::AorState { aor, registered } => {
                tracing::info!(extension = %aor, registered, "registration state changed");
            }
            RegistrarEvent::KeepAlive { .. } => {}
        }
    }

    pub fn on_security(&mut self, now: Instant, event: &SecurityEvent) {
        let now_unix = self.now_unix(now);
        match event {
            SecurityEvent::Banned(ban) => {
                tracing::warn!(source = %ban.ip, reason = ban.reason.as_str(), "source banned");
                self.ops
                    .push(StoreOp::PutBan(StoredBan::from_ban(ban, now, now_unix)));
            }
            SecurityEvent::Unbanned { ip, reason } => {
                tracing::info!(source = %ip, reason = reason.as_str(), "ban lifted");
                self.ops.push(StoreOp::RemoveBan { ip: *ip });
            }
            other => tracing::debug!(event = ?other, "security event not stored"),
        }
    }

    /// Send the pending changes to the store thread when the last batch is at least
    /// [`COMMIT_INTERVAL`] ago (or they are many, or `force`) and none is in flight, with
    /// the answers that wait for them. Returns what may go out now: everything held when
    /// there is no store, or when nothing is pending or in flight.
    pub fn commit(&mut self, now: Instant, force: bool) -> Vec<Transmit> {
        let Some(writer) = &self.writer else {
            self.ops.clear();
            return std::mem::take(&mut self.held);
        };
        if self.in_flight.is_some() {
            return Vec::new();
        }
        if self.ops.is_empty() {
            return std::mem::take(&mut self.held);
        }
        let due = force
            || self.ops.len() >= GROUP_COMMIT_MAX
            || self.next_commit().is_none_or(|t| now >= t);
        if !due {
            return Vec::new();
        }
        let batch = Batch {
            ops: std::mem::take(&mut self.ops),
            held: std::mem::take(&mut self.held),
        };
        let destinations = batch.held.iter().map(destination).collect();
        let Some(batches) = writer.batches.as_ref() else {
            return batch.held;
        };
        match batches.send(batch) {
            Ok(()) => {
                self.in_flight = Some(destinations);
                self.last_commit = Some(now);
                Vec::new()
            }
            // The store thread is gone (it cannot be, short of a panic in redb): say so
            // loudly and let the answers go rather than hold them forever.
            Err(mpsc::SendError(batch)) => {
                tracing::error!(
                    changes = batch.ops.len(),
                    "store thread gone: changes not stored"
                );
                batch.held
            }
        }
    }

    /// The answers of the batch the store thread has committed, if it has.
    pub fn poll_committed(&mut self) -> Option<Vec<Transmit>> {
        let held = self.writer.as_ref()?.done.try_recv().ok()?;
        self.in_flight = None;
        Some(held)
    }

    /// Commit what is pending, wait for the store thread to finish, and hand back every
    /// answer still held (shutdown).
    pub fn shutdown(&mut self, now: Instant) -> Vec<Transmit> {
        let mut out = Vec::new();
        loop {
            if let Some(held) = self.poll_committed() {
                out.extend(held);
            }
            out.extend(self.commit(now, true));
            if self.in_flight.is_none() {
                if self.ops.is_empty() && self.held.is_empty() {
                    break;
                }
                continue;
            }
            let Some(writer) = &self.writer else { break };
            match writer.done.recv_timeout(Duration::from_secs(10)) {
                Ok(held) => {
                    self.in_flight = None;
                    out.extend(held);
                }
                Err(_) => {
                    tracing::error!("store thread did not finish its last commit");
                    break;
                }
            }
        }
        if let Some(mut writer) = self.writer.take() {
            writer.batches = None;
            if let Some(thread) = writer.thread.take() {
                let _ = thread.join();
            }
        }
        out
    }

    fn next_commit(&self) -> Option<Instant> {
        self.last_commit
            .and_then(|t| t.checked_add(COMMIT_INTERVAL))
    }

    /// When the pending changes are due, if any are and no batch is in flight (its
    /// completion wakes the loop by itself).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.ops.is_empty() || self.in_flight.is_some() {
            None
        } else {
            self.next_commit()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use voxgate_controlplane::security::{Ban, BanReason, UnbanReason};

    use super::*;

    const UNIX: u64 = 1_800_000_000;

    fn transmit(to: &str) -> Transmit {
        Transmit {
            transport: Transport::Udp,
            destination: to.parse().expect("address"),
            local: "127.0.0.1:5060".parse().expect("address"),
            conn: None,
            payload: Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"),
        }
    }

    fn ban(t0: Instant, n: u32) -> Ban {
        Ban {
            ip: std::net::IpAddr::from((0xc000_0200u32 + n).to_be_bytes()),
            until: t0 + Duration::from_secs(60),
            reason: BanReason::Manual,
        }
    }

    struct Fixture {
        dir: tempfile::TempDir,
        _poll: mio::Poll,
        t0: Instant,
        p: Persistence,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let poll = mio::Poll::new().expect("poll");
        let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0)).expect("waker"));
        #[allow(clippy::disallowed_methods)] // the one real instant; the rest is virtual
        let t0 = Instant::now();
        let store = Store::open(dir.path()).expect("store");
        let p = Persistence::with_store(store, (t0, UNIX), waker).expect("store thread");
        Fixture {
            dir,
            _poll: poll,
            t0,
            p,
        }
    }

    /// Waits (bounded) for the store thread's answer to the batch in flight.
    fn committed(p: &mut Persistence) -> Vec<Transmit> {
        for _ in 0..1000 {
            if let Some(held) = p.poll_committed() {
                return held;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the store thread did not answer within 10 s");
    }

    fn stored_bans(f: Fixture) -> usize {
        let Fixture { dir, mut p, t0, .. } = f;
        assert!(p.shutdown(t0).is_empty());
        let store = Store::open(dir.path()).expect("reopen");
        store.load_bans(UNIX).expect("load").len()
    }

    #[test]
    fn changes_commit_at_once_when_idle_and_at_most_once_per_interval_under_load() {
        let mut f = fixture();
        let t0 = f.t0;
        let p = &mut f.p;
        // Idle store: the first change leaves at once, its answer after the commit.
        p.on_security(t0, &SecurityEvent::Banned(ban(t0, 1)));
        p.hold(transmit("192.0.2.1:5060"));
        assert!(p.commit(t0, false).is_empty());
        assert_eq!(p.pending(), 0);
        assert_eq!(p.next_deadline(), None, "the store thread wakes the loop");
        // While it is in flight, a 2xx to the same destination waits behind it.
        assert!(p.holds_for(&transmit("192.0.2.1:5060")));
        assert!(!p.holds_for(&transmit("192.0.2.1:5062")));
        let challenge = Transmit {
            payload: Bytes::from_static(b"SIP/2.0 401 Unauthorized\r\n\r\n"),
            ..transmit("192.0.2.1:5060")
        };
        assert!(!p.holds_for(&challenge), "a challenge confirms nothing");
        assert_eq!(committed(p).len(), 1);
        assert!(!p.holds_for(&transmit("192.0.2.1:5060")));
        // A second change within the interval waits for the interval to end.
        let later = t0 + Duration::from_millis(5);
        p.on_security(
            later,
            &SecurityEvent::Unbanned {
                ip: ban(t0, 1).ip,
                reason: UnbanReason::Manual,
            },
        );
        p.on_security(later, &SecurityEvent::Banned(ban(t0, 2)));
        p.hold(transmit("192.0.2.2:5060"));
        assert!(p.commit(later, false).is_empty());
        assert_eq!(p.pending(), 2, "not sent yet");
        assert_eq!(p.next_deadline(), Some(t0 + COMMIT_INTERVAL));
        p.hold(transmit("192.0.2.3:5060"));
        assert!(p
            .commit(t0 + COMMIT_INTERVAL - Duration::from_millis(1), false)
            .is_empty());
        assert_eq!(p.pending(), 2);
        // At the end of the interval: one batch, then both answers.
        assert!(p.commit(t0 + COMMIT_INTERVAL, false).is_empty());
        assert_eq!(p.pending(), 0);
        assert_eq!(committed(p).len(), 2);
        // Nothing pending: whatever is held goes out at once.
        p.hold(transmit("192.0.2.4:5060"));
        assert_eq!(p.commit(t0 + COMMIT_INTERVAL, false).len(), 1);
        assert_eq!(stored_bans(f), 1);
    }

    #[test]
    fn a_full_batch_leaves_at_once_and_shutdown_commits_what_is_pending() {
        let mut f = fixture();
        let t0 = f.t0;
        let p = &mut f.p;
        p.on_security(t0, &SecurityEvent::Banned(ban(t0, 0)));
        assert!(p.commit(t0, false).is_empty());
        assert!(committed(p).is_empty());
        for n in 1..=GROUP_COMMIT_MAX as u32 {
            p.on_security(t0, &SecurityEvent::Banned(ban(t0, n)));
        }
        assert!(p.commit(t0, false).is_empty());
        assert_eq!(
            p.pending(),
            0,
            "a full batch does not wait for the interval"
        );
        assert!(committed(p).is_empty());
        // Pending at shutdown: committed, and its answer handed back.
        p.on_security(t0, &SecurityEvent::Banned(ban(t0, 1000)));
        p.hold(transmit("192.0.2.1:5060"));
        assert!(p.commit(t0, false).is_empty());
        assert_eq!(p.shutdown(t0).len(), 1);
        let Fixture { dir, .. } = f;
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(
            store.load_bans(UNIX).expect("load").len(),
            GROUP_COMMIT_MAX + 2
        );
    }

    #[test]
    fn without_a_store_nothing_is_held() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut p = Persistence::without_store((t0, UNIX));
        assert!(!p.holds_transmits());
        p.on_security(t0, &SecurityEvent::Banned(ban(t0, 1)));
        p.hold(transmit("192.0.2.1:5060"));
        assert_eq!(p.commit(t0, false).len(), 1);
        assert_eq!(p.pending(), 0);
        assert!(p.shutdown(t0).is_empty());
    }
}
