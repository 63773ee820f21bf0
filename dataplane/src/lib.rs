//! voxgate's media data plane.
//!
//! Owns (from M4 on): one pinned worker per core with its sockets, session slab and timer
//! wheel; RTP/RTCP/SRTP relay; codecs, mixing, playback, DTMF and recording.
//!
//! Today (M2) it holds only the plain-data [`Command`] and [`Event`] types that the control
//! plane will send to and receive from the workers, so the binary can be wired against a
//! stable vocabulary. It never knows SIP, SDP text, config files or Prometheus.

pub mod rtcp;
pub mod rtp;
pub mod session;
pub mod stats;

/// A handle to a media session inside one worker's slab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionHandle(pub u32);

/// An instruction from the control plane to one media worker.
#[derive(Debug)]
#[non_exhaustive]
pub enum Command {
    /// Ask the worker to report that it is alive; answered with [`Event::Heartbeat`].
    Ping { seq: u64 },
}

/// A report from one media worker to the control plane.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The answer to [`Command::Ping`].
    Heartbeat { worker: u16, seq: u64 },
}
