//! RFC 3261 §17 transactions: client and server, INVITE and non-INVITE, timers A–M under
//! virtual time.
//!
//! # What it owns
//! [`Transactions`] owns every transaction of one endpoint: it matches incoming requests and
//! responses to them (§17.1.3, §17.2.3 with the RFC 2543 fallback), absorbs retransmissions
//! and resends the last response, sends the 100 Trying of an INVITE server transaction,
//! retransmits requests and responses over unreliable transports, builds and sends the ACK
//! for a non-2xx final (§17.1.1.3), and runs every timer. The RFC 6026 Accepted state is
//! implemented on both sides (timers L and M), so 2xx retransmissions reach the TU and
//! retransmitted INVITEs are absorbed after a 2xx.
//!
//! # What it does not do
//! No sockets, clocks or DNS. It does not build responses or requests (the transaction user,
//! "TU", does), does not retransmit 2xx responses or send the ACK for a 2xx (that is the TU
//! core's job, RFC 3261 §13.3.1.4, §13.2.2.4), does not validate requests beyond what
//! matching needs, and does not choose where a response goes: it sends every response of a
//! server transaction to the [`Peer`] the request came from, so the caller passes a `Peer`
//! whose `remote` is already the RFC 3261 §18.2.2 / RFC 3581 response address.
//!
//! # Driver contract
//! One mutation, then drain, then sleep (STYLE.md §3):
//! 1. Call one input: [`Transactions::handle_request`], [`Transactions::handle_response`],
//!    [`Transactions::handle_timeout`], or a TU action ([`Transactions::respond`],
//!    [`Transactions::send_request`]). Each takes `now`; none reads a clock.
//! 2. Drain [`Transactions::poll_transmit`] and [`Transactions::poll_event`] until both
//!    return `None`. (A TU that answers a new INVITE before this drain suppresses the
//!    layer's 100 Trying: the 100 is decided when it is polled.)
//! 3. Wake at [`Transactions::poll_timeout`] (it always names a live timer) and call
//!    [`Transactions::handle_timeout`] with the current time.
//!
//! 4. A TU that answers a new request statelessly instead (SEC-15's 503 under overload)
//!    calls [`Transactions::discard`] with its id instead of [`Transactions::respond`]: the
//!    transaction is gone without an event, a transmit or a timer, and a retransmission of
//!    the request is a new request again.
//!
//! Every timer has a named reason, [`TimerKind`], which the debug logs and
//! [`TransactionEvent::Timeout`] carry. Each transaction logs inside its own `sip_tx` span,
//! except a non-INVITE server transaction in Completed, which is kept in a compact form
//! without one (its logs carry `tx` as a field; see the manager's "Memory" notes).
//!
//! Transactions that wait on the TU have no timer of their own: a server transaction stays
//! until the TU sends a final response, and a client INVITE transaction in Proceeding stays
//! until a final response arrives or, once the TU has sent a CANCEL for it, 64·T1 pass
//! (RFC 3261 §9.1, timer [`TimerKind::CancelGuard`]).

mod client;
mod key;
mod manager;
mod server;
#[cfg(test)]
mod test_support;
mod timer;

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use crate::config::TimerConfig;
use crate::sip::{HeaderError, Message};

pub use manager::Transactions;

/// A transaction, numbered by the manager. Ids are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub u64);

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx{}", self.0)
    }
}

/// Why a transaction woke up (RFC 3261 Table 4, RFC 6026 Table 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    /// INVITE retransmission, unreliable transports; T1, doubling (client, Calling).
    A,
    /// INVITE transaction timeout, 64·T1 (client, Calling).
    B,
    /// Wait for response retransmissions after a non-2xx: ≥ 32 s unreliable, 0 reliable
    /// (client INVITE, Completed).
    D,
    /// Non-INVITE retransmission, unreliable transports; T1 doubling to T2, then T2 once a
    /// provisional came (client non-INVITE).
    E,
    /// Non-INVITE transaction timeout, 64·T1 (client non-INVITE).
    F,
    /// Non-2xx INVITE response retransmission, unreliable transports; T1 doubling to T2
    /// (server INVITE, Completed).
    G,
    /// Wait for the ACK, 64·T1 (server INVITE, Completed).
    H,
    /// Absorb ACK retransmissions: T4 unreliable, 0 reliable (server INVITE, Confirmed).
    I,
    /// Absorb non-INVITE request retransmissions: 64·T1 unreliable, 0 reliable (server
    /// non-INVITE, Completed).
    J,
    /// Absorb response retransmissions: T4 unreliable, 0 reliable (client non-INVITE,
    /// Completed).
    K,
    /// RFC 6026: absorb INVITE retransmissions after a 2xx, 64·T1 (server, Accepted).
    L,
    /// RFC 6026: pass 2xx retransmissions to the TU, 64·T1 (client INVITE, Accepted).
    M,
    /// RFC 3261 §9.1: a CANCEL was sent and no final response came within 64·T1; the
    /// INVITE client transaction is given up.
    CancelGuard,
}

impl TimerKind {
    pub const COUNT: usize = 13;
    pub const ALL: [TimerKind; Self::COUNT] = [
        TimerKind::A,
        TimerKind::B,
        TimerKind::D,
        TimerKind::E,
        TimerKind::F,
        TimerKind::G,
        TimerKind::H,
        TimerKind::I,
        TimerKind::J,
        TimerKind::K,
        TimerKind::L,
        TimerKind::M,
        TimerKind::CancelGuard,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// Log label: `A` … `M`, `cancel-guard`.
    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::A => "A",
            TimerKind::B => "B",
            TimerKind::D => "D",
            TimerKind::E => "E",
            TimerKind::F => "F",
            TimerKind::G => "G",
            TimerKind::H => "H",
            TimerKind::I => "I",
            TimerKind::J => "J",
            TimerKind::K => "K",
            TimerKind::L => "L",
            TimerKind::M => "M",
            TimerKind::CancelGuard => "cancel-guard",
        }
    }
}

impl fmt::Display for TimerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of a live transaction, for the TU and for tests. Terminated transactions are
/// gone, so [`Transactions::state`] returns `None` for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxState {
    /// Client INVITE: sent, nothing heard.
    Calling,
    /// Non-INVITE: client sent and heard nothing, or server has not answered.
    Trying,
    Proceeding,
    Completed,
    /// Server INVITE: the ACK for the non-2xx came.
    Confirmed,
    /// RFC 6026: a 2xx was sent (server) or received (client).
    Accepted,
}

/// What an incoming request was.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerInput {
    /// A new server transaction: the TU must answer it with [`Transactions::respond`].
    /// A CANCEL is one too; [`Transactions::find_invite_for_cancel`] finds its INVITE.
    New { tx: TxId, request: Message },
    /// A retransmission, or the ACK of a non-2xx final: absorbed, and the latest response
    /// (if any) sent again. The TU has nothing to do.
    Absorbed { tx: TxId },
    /// The ACK for the 2xx that INVITE transaction `invite` sent (it matched the RFC 6026
    /// Accepted transaction by key, or by Call-ID, From tag, CSeq number and the 2xx's To
    /// tag). The TU stops retransmitting its 2xx.
    AckFor2xx { invite: TxId, ack: Message },
    /// An ACK that matched nothing still alive: for a 2xx whose transaction has ended, or
    /// stray. The dialog layer may still know it; otherwise it is dropped and counted.
    StrayAck { ack: Message },
}

/// What an incoming response was.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientInput {
    /// A response for the TU from client transaction `tx`.
    Response { tx: TxId, response: Message },
    /// A retransmission the transaction absorbed (and re-ACKed if it was a non-2xx final
    /// to an INVITE).
    Absorbed { tx: TxId },
    /// It matched no client transaction. RFC 3261 §18.1.2 hands it to the TU core, which
    /// may know it (a late 2xx retransmission) or drop it.
    Stray { response: Message },
}

/// Something the TU or driver should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransactionEvent {
    /// The transaction timed out: B or F (no final response; the TU treats it as 408),
    /// H (the ACK never came), or [`TimerKind::CancelGuard`]. `Terminated` follows.
    Timeout { tx: TxId, timer: TimerKind },
    /// The transaction ended and its id is no longer valid.
    Terminated { tx: TxId },
}

/// Why a transaction input or TU action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransactionError {
    #[error("not a request")]
    NotARequest,
    #[error("not a response")]
    NotAResponse,
    #[error("status code {code} is outside 100-699")]
    InvalidStatus { code: u16 },
    /// A header matching needs is missing or malformed (the endpoint drops such messages).
    #[error("{0}")]
    Header(#[from] HeaderError),
    #[error("the CSeq method differs from the request method")]
    CSeqMismatch,
    #[error("an ACK is not sent in a client transaction")]
    AckIsNotATransaction,
    #[error("the top Via of a request voxgate sends needs an RFC 3261 branch")]
    NoBranch,
    #[error("a client transaction with this branch and method exists")]
    DuplicateBranch,
    #[error("no transaction {0}")]
    UnknownTransaction(TxId),
    #[error("{0} is a client transaction")]
    NotAServerTransaction(TxId),
    /// The response cannot be sent in the transaction's state: a final response was sent
    /// already (only 2xx retransmissions may follow a 2xx).
    #[error("{tx} cannot send a {code} now: its final response was sent")]
    FinalAlreadySent { tx: TxId, code: u16 },
}

/// Tables are not shrunk below this capacity (small tables are cheap, and re-growing
/// them after every small burst is not).
pub(crate) const MIN_CAPACITY: usize = 64;

/// Whether a table of `capacity` holding `len` should give memory back: below a quarter
/// used, above [`MIN_CAPACITY`]. It is then shrunk to `max(2·len, MIN_CAPACITY)`.
pub(crate) fn should_shrink(len: usize, capacity: usize) -> bool {
    capacity > MIN_CAPACITY && len < capacity / 4
}

/// One effect a state machine asks the manager to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send these bytes to the transaction's peer.
    Send(Bytes),
    Arm(TimerKind, Duration),
    Disarm(TimerKind),
    /// Report [`TransactionEvent::Timeout`].
    Timeout(TimerKind),
}

/// What a state machine may look at and where its actions go.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) timers: &'a TimerConfig,
    /// Whether the transport is reliable (timers A, E, G off; D, I, J, K zero).
    pub(crate) reliable: bool,
    pub(crate) out: &'a mut Vec<Action>,
}

impl Ctx<'_> {
    fn send(&mut self, wire: Bytes) {
        self.out.push(Action::Send(wire));
    }

    fn arm(&mut self, kind: TimerKind, after: Duration) {
        self.out.push(Action::Arm(kind, after));
    }

    fn disarm(&mut self, kind: TimerKind) {
        self.out.push(Action::Disarm(kind));
    }

    fn timeout(&mut self, kind: TimerKind) {
        self.out.push(Action::Timeout(kind));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_kind_indices_are_dense() {
        for (i, k) in TimerKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }
}
