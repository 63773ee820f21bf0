//! UDP listeners of the SIP driver: binding (IPv4 and IPv6) and the receive buffer.
//!
//! Owns: socket options of UDP listeners. Does not own: what a datagram means (the endpoint)
//! or the event loop (`super`).

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Bind a non-blocking UDP socket. An IPv6 socket is IPv6-only, so a v4 and a v6 listener
/// on the same port (`0.0.0.0:5060` and `[::]:5060`) coexist.
pub fn bind(addr: SocketAddr) -> io::Result<mio::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    // The default receive queue (about 200 KiB) overflows during bursts of a few thousand
    // requests per second, and the kernel drops what does not fit (bench/RESULTS.md §2).
    // Ask for more; the kernel caps it at net.core.rmem_max, which is fine.
    if let Err(e) = socket.set_recv_buffer_size(RECV_QUEUE_BYTES) {
        tracing::warn!(error = %e, %addr, "could not enlarge the UDP receive buffer");
    }
    socket.bind(&addr.into())?;
    Ok(mio::net::UdpSocket::from_std(socket.into()))
}

/// Kernel receive queue asked for on UDP listeners (SO_RCVBUF); Kamailio uses about 512 KiB.
const RECV_QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// Size of the receive buffer: one octet more than the largest accepted message (and never
/// less than the largest UDP payload), so a datagram that does not fit shows up as longer
/// than the limit and the endpoint drops it as too large instead of parsing a truncated one.
pub fn recv_buffer_len(max_message_bytes: usize) -> usize {
    max_message_bytes.max(65_535) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_and_v6_share_a_port() {
        let v4 = bind("127.0.0.1:0".parse().expect("literal")).expect("bind v4");
        let port = v4.local_addr().expect("bound").port();
        match bind(SocketAddr::new("::1".parse().expect("literal"), port)) {
            Ok(v6) => assert_eq!(v6.local_addr().expect("bound").port(), port),
            Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => {
                eprintln!("SKIPPED: no ::1 on this machine ({e})");
            }
            Err(e) => panic!("v6 bind on the v4 port failed: {e}"),
        }
    }

    #[test]
    fn buffer_detects_oversize() {
        assert_eq!(recv_buffer_len(1000), 65_536);
        assert_eq!(recv_buffer_len(100_000), 100_001);
    }
}
