//! voxgate's media data plane.
//!
//! Owns (from M4 on): one pinned worker per core with its sockets, session slab and timer
//! wheel; RTP/RTCP/SRTP relay; codecs, mixing, playback, DTMF and recording.
//! It never knows SIP, SDP text, config files or Prometheus.
//!
//! Today it holds the sans-IO core of the relay, with no sockets and no threads:
//! - [`rtp`] and [`rtcp`]: zero-copy, checked views over RTP packets and RTCP compounds in
//!   the caller's buffer, with in-place setters, and the RFC 5761/7983 first-byte demux;
//! - [`session`]: one relayed call ([`session::Session`]): latching and strict source
//!   (MED-23), SSRC/sequence/timestamp continuity, payload-type mapping, RTCP SSRC rewriting,
//!   media and hold timeouts (MED-24); driven by `on_packet(now, ..)`, `handle_timeout`,
//!   `poll_timeout`, `poll_event`, with no allocation per packet;
//! - [`stats`]: per-leg loss, jitter, RTT and MOS (MED-11);
//! - the plain-data [`Command`] and [`Event`] types the control plane sends to and receives
//!   from the workers (owned, moved through channels, never holding packets).

pub mod ports;
pub mod rtcp;
pub mod rtp;
pub mod session;
pub mod srtp;
pub mod stats;
pub mod worker;

use std::time::Duration;

use session::{LegConfig, SessionConfig, SessionError};
use stats::LegStats;

/// A handle to a media session inside one worker's slab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionHandle(pub u32);

/// An instruction from the control plane to one media worker.
#[derive(Debug)]
#[non_exhaustive]
pub enum Command {
    /// Ask the worker to report that it is alive; answered with [`Event::Heartbeat`].
    Ping { seq: u64 },
    /// Create a session at its answer (the learning window opens); refused with
    /// [`Event::SessionRejected`].
    CreateSession {
        session: SessionHandle,
        config: SessionConfig,
        legs: Vec<LegConfig>,
    },
    /// A new offer/answer for a session (same legs): re-learning window, new addresses and
    /// payload maps; refused with [`Event::SessionRejected`].
    UpdateSession {
        session: SessionHandle,
        legs: Vec<LegConfig>,
    },
    /// The call was put on hold or taken off hold (the hold media timeout applies).
    SetHold { session: SessionHandle, held: bool },
    /// Tear a session down; answered with [`Event::SessionDeleted`] and its final stats.
    DeleteSession { session: SessionHandle },
    /// Ask for a session's per-leg stats; answered with [`Event::Stats`] carrying `token`.
    QueryStats { session: SessionHandle, token: u64 },
}

/// A report from one media worker to the control plane.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The answer to [`Command::Ping`].
    Heartbeat { worker: u16, seq: u64 },
    /// A session was created on a worker ([`worker`]); `locals` are the legs' RTP socket
    /// addresses in leg order (RTCP on the next port, MED-02), for the SDP.
    SessionCreated {
        session: SessionHandle,
        locals: Vec<std::net::SocketAddr>,
    },
    /// A worker could not carry out a command (no free port pair, socket error, unknown
    /// session); the session is unchanged (or was not created).
    CommandFailed {
        session: SessionHandle,
        error: worker::WorkerError,
    },
    /// A create or update was refused; the session is unchanged (or was not created).
    SessionRejected {
        session: SessionHandle,
        error: SessionError,
    },
    /// No RTP/RTCP for the media timeout (60 s) or the hold timeout (3600 s) (MED-24).
    MediaTimeout {
        session: SessionHandle,
        held: bool,
        idle: Duration,
    },
    /// The answer to [`Command::QueryStats`], one entry per leg in leg order.
    Stats {
        session: SessionHandle,
        token: u64,
        legs: Vec<LegStats>,
    },
    /// A session is gone; its final per-leg stats (for the CDR's quality fields, MED-11).
    SessionDeleted {
        session: SessionHandle,
        legs: Vec<LegStats>,
    },
}
