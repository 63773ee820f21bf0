//! The registrar (RFC 3261 §10): extensions' contact bindings. Not yet written beyond the
//! shared types below, which the binary's store persists.

use std::net::SocketAddr;
use std::time::Instant;

use crate::endpoint::ConnId;
use crate::sip::Transport;

/// Where a contact's REGISTER really came from: the flow requests to it must use
/// (FEATURES SIG-14), whatever its Contact header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub transport: Transport,
    /// The observed source address and port.
    pub remote: SocketAddr,
    /// The local listener it arrived on.
    pub local: SocketAddr,
    /// The TCP/TLS connection, while it is open.
    pub conn: Option<ConnId>,
}

/// One contact of one extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The extension number (the AOR's user part).
    pub aor: String,
    /// The Contact URI as registered, without its header parameters.
    pub contact: String,
    pub flow: Flow,
    /// When the binding expires. The store converts this to wall-clock time and back.
    pub expires: Instant,
    /// Contact `q` in thousandths (RFC 3261 §20.10), `None` when not given.
    pub q: Option<u16>,
    /// RFC 5626 `+sip.instance` and `reg-id`.
    pub instance: Option<String>,
    pub reg_id: Option<u32>,
    /// RFC 3327 Path values, in order.
    pub path: Vec<String>,
    /// Call-ID and CSeq of the REGISTER that last refreshed it (RFC 3261 §10.3 step 7).
    pub call_id: String,
    pub cseq: u32,
    pub user_agent: Option<String>,
}
