//! One SIP stream connection: plain TCP, or TLS (rustls) over TCP, on a non-blocking mio
//! socket.
//!
//! Owns: reading and framing (a [`StreamFramer`] per connection), answering RFC 5626 CRLF
//! pings, buffered writing with a bound on what may queue up, a graceful close (flush, FIN,
//! then a short linger that reads and discards until the peer closes, so a last answer such as
//! a 513 is not destroyed by a reset), and the deadlines of the connection (idle, partial
//! message, TLS handshake, linger).
//!
//! Does not own: admission and per-IP counts (`super::limits`), the timer heap, what a
//! message means (the endpoint) or metrics (`super`). It never reads the clock: `now` comes in.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use voxgate_controlplane::config::MessageLimits;
use voxgate_controlplane::endpoint::ConnId;
use voxgate_controlplane::sip::framing::{Framed, FramingError, StreamFramer};
use voxgate_controlplane::sip::Transport;

use super::limits::DriverLimits;

/// How long a closing connection waits for the peer's FIN after sending its own.
const LINGER: Duration = Duration::from_secs(2);

/// Why a connection ends; logged, and counted when [`CloseReason::metric_label`] says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// No traffic for `tcp_idle`.
    Idle,
    /// An incomplete message held for `partial_message_timeout` (slow sender).
    PartialTimeout,
    /// The TLS handshake did not finish in `tls_handshake_timeout`.
    TlsHandshakeTimeout,
    /// A TLS protocol error (handshake failure, bad record, version below the minimum).
    Tls,
    /// The stream lost its framing (bad or missing Content-Length).
    Framing,
    /// A message over `max_message_bytes` (after a 513 where one could be sent).
    TooLarge,
    /// The peer does not drain what voxgate sends.
    WriteOverflow,
    /// The endpoint asked for it (an unparseable framed message).
    Endpoint,
    /// The peer closed its side.
    PeerClosed,
    /// A socket error.
    Io,
    /// The linger after voxgate's FIN ran out.
    Linger,
    /// The driver is shutting down.
    Shutdown,
}

impl CloseReason {
    /// Label of `voxgate_sip_connections_rejected_total{reason}` for closes forced by a limit
    /// or a fault; `None` for ordinary ends.
    pub fn metric_label(self) -> Option<&'static str> {
        match self {
            CloseReason::Idle => Some("idle"),
            CloseReason::PartialTimeout => Some("partial_timeout"),
            CloseReason::TlsHandshakeTimeout => Some("tls_handshake"),
            CloseReason::Framing => Some("framing"),
            CloseReason::TooLarge => Some("too_large"),
            CloseReason::WriteOverflow => Some("write_overflow"),
            CloseReason::Tls
            | CloseReason::Endpoint
            | CloseReason::PeerClosed
            | CloseReason::Io
            | CloseReason::Linger
            | CloseReason::Shutdown => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Idle => "idle",
            CloseReason::PartialTimeout => "partial message timeout",
            CloseReason::TlsHandshakeTimeout => "TLS handshake timeout",
            CloseReason::Tls => "TLS error",
            CloseReason::Framing => "framing lost",
            CloseReason::TooLarge => "message too large",
            CloseReason::WriteOverflow => "peer does not drain",
            CloseReason::Endpoint => "endpoint request",
            CloseReason::PeerClosed => "peer closed",
            CloseReason::Io => "socket error",
            CloseReason::Linger => "linger over",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

/// A fault that ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("framing: {0}")]
    Framing(#[from] FramingError),
    #[error("more than {limit} octets queued for sending")]
    WriteOverflow { limit: usize },
}

/// Whether a read stopped because the socket had nothing more, or because the per-event
/// budget ran out (then the driver comes back to it: mio readiness is edge-triggered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    Drained,
    More,
}

/// Reads per readiness event before other sockets get their turn.
const READ_BUDGET: usize = 32;

#[derive(Debug)]
pub struct Conn {
    pub id: ConnId,
    pub token: Token,
    pub transport: Transport,
    pub remote: SocketAddr,
    /// The listener's address (what the endpoint calls `Peer::local`).
    pub local: SocketAddr,
    stream: TcpStream,
    tls: Option<Box<rustls::ServerConnection>>,
    framer: StreamFramer,
    /// Plain TCP: octets accepted for sending that the socket has not taken yet. (rustls
    /// buffers for TLS connections, bounded by its buffer limit.)
    out: BytesMut,
    max_outbound: usize,
    interest: Interest,
    opened: Instant,
    last_activity: Instant,
    /// When the framer started holding an incomplete message.
    partial_since: Option<Instant>,
    /// When voxgate decided to close (flush, FIN, linger).
    closing_since: Option<Instant>,
    fin_sent: bool,
    peer_eof: bool,
    /// The earliest entry the driver's timer heap holds for this connection.
    pub scheduled: Option<Instant>,
}

impl Conn {
    /// Wrap an accepted socket; `tls` makes it a TLS connection.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: ConnId,
        token: Token,
        transport: Transport,
        stream: TcpStream,
        remote: SocketAddr,
        local: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
        limits: &DriverLimits,
        message_limits: MessageLimits,
        now: Instant,
    ) -> Result<Conn, rustls::Error> {
        let max_outbound = limits.max_outbound_bytes();
        let tls = match tls {
            Some(config) => {
                let mut c = rustls::ServerConnection::new(config)?;
                c.set_buffer_limit(Some(max_outbound));
                Some(Box::new(c))
            }
            None => None,
        };
        Ok(Conn {
            id,
            token,
            transport,
            remote,
            local,
            stream,
            tls,
            framer: StreamFramer::new(message_limits),
            out: BytesMut::new(),
            max_outbound,
            interest: Interest::READABLE,
            opened: now,
            last_activity: now,
            partial_since: None,
            closing_since: None,
            fin_sent: false,
            peer_eof: false,
            scheduled: None,
        })
    }

    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        registry.register(&mut self.stream, self.token, self.interest)
    }

    pub fn deregister(&mut self, registry: &Registry) {
        // The socket is closed right after; a failure here changes nothing.
        let _ = registry.deregister(&mut self.stream);
    }

    pub fn is_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    pub fn is_closing(&self) -> bool {
        self.closing_since.is_some()
    }

    pub fn peer_closed(&self) -> bool {
        self.peer_eof
    }

    /// voxgate's FIN is out and the peer's has arrived: nothing is left to do.
    pub fn is_done(&self) -> bool {
        self.closing_since.is_some() && self.fin_sent && self.peer_eof
    }

    /// Read what the socket has (up to a budget), answer pings, and append each complete
    /// message to `messages`. On an error, the messages framed before it are still appended.
    pub fn on_readable(
        &mut self,
        now: Instant,
        scratch: &mut [u8],
        messages: &mut Vec<Bytes>,
    ) -> Result<ReadStatus, ConnError> {
        let status = if self.tls.is_some() {
            self.read_tls(now, scratch, messages)?
        } else {
            self.read_tcp(now, scratch, messages)?
        };
        // Handshake flights, pongs and alerts go out now.
        self.flush(now)?;
        Ok(status)
    }

    fn read_tcp(
        &mut self,
        now: Instant,
        scratch: &mut [u8],
        messages: &mut Vec<Bytes>,
    ) -> Result<ReadStatus, ConnError> {
        for _ in 0..READ_BUDGET {
            match self.stream.read(scratch) {
                Ok(0) => {
                    self.peer_eof = true;
                    return Ok(ReadStatus::Drained);
                }
                Ok(n) => {
                    self.last_activity = now;
                    if !self.is_closing() {
                        self.framer.push(&scratch[..n]);
                        self.drain_framer(now, messages)?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadStatus::Drained),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(ReadStatus::More)
    }

    fn read_tls(
        &mut self,
        now: Instant,
        scratch: &mut [u8],
        messages: &mut Vec<Bytes>,
    ) -> Result<ReadStatus, ConnError> {
        for _ in 0..READ_BUDGET {
            let tls = self
                .tls
                .as_mut()
                .expect("read_tls is only called on TLS connections");
            match tls.read_tls(&mut self.stream) {
                Ok(0) => {
                    self.peer_eof = true;
                    return Ok(ReadStatus::Drained);
                }
                Ok(_) => self.last_activity = now,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadStatus::Drained),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            let state = tls.process_new_packets()?;
            let mut pending = state.plaintext_bytes_to_read();
            while pending > 0 {
                let want = pending.min(scratch.len());
                let n = tls.reader().read(&mut scratch[..want])?;
                if n == 0 {
                    break;
                }
                pending -= n;
                if self.closing_since.is_none() {
                    self.framer.push(&scratch[..n]);
                }
            }
            if self.closing_since.is_none() {
                self.drain_framer(now, messages)?;
            }
            if state.peer_has_closed() {
                self.peer_eof = true;
                return Ok(ReadStatus::Drained);
            }
        }
        Ok(ReadStatus::More)
    }

    fn drain_framer(&mut self, now: Instant, messages: &mut Vec<Bytes>) -> Result<(), ConnError> {
        loop {
            match self.framer.next()? {
                Some(Framed::Message(m)) => messages.push(m),
                // RFC 5626 §4.4.1: a double CRLF is answered with a single CRLF.
                Some(Framed::Ping) => self.queue(b"\r\n")?,
                Some(Framed::Pong) => {
                    tracing::trace!(conn = self.id.0, "CRLF pong");
                }
                None => break,
            }
        }
        if self.framer.has_partial() {
            self.partial_since.get_or_insert(now);
        } else {
            self.partial_since = None;
        }
        Ok(())
    }

    /// Queue octets for sending and write what the socket takes now.
    pub fn send(&mut self, now: Instant, data: &[u8]) -> Result<(), ConnError> {
        self.queue(data)?;
        self.flush(now)
    }

    fn queue(&mut self, data: &[u8]) -> Result<(), ConnError> {
        let limit = self.max_outbound;
        match self.tls.as_mut() {
            Some(tls) => {
                // rustls takes less than offered once its buffer limit is reached.
                let n = tls.writer().write(data)?;
                if n < data.len() {
                    return Err(ConnError::WriteOverflow { limit });
                }
            }
            None => {
                if self.out.len() + data.len() > limit {
                    return Err(ConnError::WriteOverflow { limit });
                }
                self.out.extend_from_slice(data);
            }
        }
        Ok(())
    }

    fn has_pending_output(&self) -> bool {
        match &self.tls {
            Some(tls) => tls.wants_write(),
            None => !self.out.is_empty(),
        }
    }

    /// Write queued octets until the socket would block; send the FIN once a closing
    /// connection has drained.
    pub fn flush(&mut self, now: Instant) -> Result<(), ConnError> {
        loop {
            let written = match self.tls.as_mut() {
                Some(tls) if tls.wants_write() => tls.write_tls(&mut self.stream),
                Some(_) => break,
                None if self.out.is_empty() => break,
                None => self.stream.write(&self.out),
            };
            match written {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => {
                    self.last_activity = now;
                    if self.tls.is_none() {
                        self.out.advance(n);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        if self.is_closing() && !self.fin_sent && !self.has_pending_output() {
            self.fin_sent = true;
            match self.stream.shutdown(Shutdown::Write) {
                Ok(()) => {}
                // The peer is already gone: nothing to linger for.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => self.peer_eof = true,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Start a graceful close: what is queued (a last answer, a TLS close_notify) goes out,
    /// then the FIN; reads are discarded until the peer closes or the linger runs out.
    pub fn begin_close(&mut self, now: Instant) -> Result<(), ConnError> {
        if self.closing_since.is_none() {
            self.closing_since = Some(now);
            if let Some(tls) = self.tls.as_mut() {
                tls.send_close_notify();
            }
        }
        self.flush(now)
    }

    /// Ask for WRITABLE readiness only while output is queued.
    pub fn update_interest(&mut self, registry: &Registry) -> io::Result<()> {
        let want = if self.has_pending_output() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if want != self.interest {
            registry.reregister(&mut self.stream, self.token, want)?;
            self.interest = want;
        }
        Ok(())
    }

    /// The next moment something must happen to this connection, and what.
    /// Count the connection as active now (it is kept for a registration).
    pub fn mark_active(&mut self, now: Instant) {
        self.last_activity = now;
    }

    pub fn deadline(&self, limits: &DriverLimits) -> Option<(Instant, CloseReason)> {
        if let Some(since) = self.closing_since {
            return since.checked_add(LINGER).map(|t| (t, CloseReason::Linger));
        }
        let candidates = [
            self.last_activity
                .checked_add(limits.tcp_idle)
                .map(|t| (t, CloseReason::Idle)),
            self.partial_since
                .and_then(|p| p.checked_add(limits.partial_message_timeout))
                .map(|t| (t, CloseReason::PartialTimeout)),
            self.is_handshaking()
                .then(|| self.opened.checked_add(limits.tls_handshake_timeout))
                .flatten()
                .map(|t| (t, CloseReason::TlsHandshakeTimeout)),
        ];
        candidates.into_iter().flatten().min_by_key(|(t, _)| *t)
    }
}
