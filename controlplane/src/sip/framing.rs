//! Stream framing for SIP over TCP and TLS (RFC 3261 §18.3, RFC 5626 §3.5.1 keep-alives).
//!
//! Not yet written: the driver work fills this in.
