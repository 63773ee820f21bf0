//! TCP listeners of the SIP driver (plain TCP and the TCP under TLS).
//!
//! Owns: socket options of stream listeners and of accepted connections. Does not own:
//! admission (`super::limits`) or connection state (`super::conn`).

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Accept queue length.
const BACKLOG: i32 = 1024;

/// Bind a non-blocking TCP listener with SO_REUSEADDR (a restart can bind again while old
/// connections sit in TIME_WAIT); IPv6 listeners are IPv6-only so v4 and v6 share a port.
pub fn bind(addr: SocketAddr) -> io::Result<mio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// Options for an accepted connection: SIP messages are small and latency matters more
/// than segment count, so Nagle is off.
pub fn configure_accepted(stream: &mio::net::TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)
}
