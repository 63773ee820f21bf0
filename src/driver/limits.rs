//! Connection limits of the SIP driver (FEATURES SEC-16, SEC-02, SIG-23) and the per-source
//! bookkeeping that enforces them at accept time.
//!
//! Owns: the [`DriverLimits`] values and [`ConnCounter`], which admits or refuses a new stream
//! connection. Does not own: timers (the connection computes its own deadlines from these
//! values) or metrics (the driver counts what [`Refusal`] says).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// Limits the driver enforces on sockets and stream connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverLimits {
    /// Stream (TCP and TLS) connections from one source IP: 256 (SEC-16).
    pub tcp_per_ip: usize,
    /// Stream connections in total: 20,000 (SEC-16).
    pub tcp_total: usize,
    /// A connection without traffic for this long is closed: 600 s (SEC-16).
    pub tcp_idle: Duration,
    /// A connection holding an incomplete message this long is closed, so a slow sender
    /// cannot hold it open. No RFC value: 30 s lets a slow mobile link deliver 64 KiB.
    pub partial_message_timeout: Duration,
    /// The TLS handshake must finish within this: 10 s (SEC-02, SEC-16).
    pub tls_handshake_timeout: Duration,
    /// Largest accepted SIP message: 64 KiB, the largest UDP datagram (SIG-23).
    pub max_message_bytes: usize,
}

impl Default for DriverLimits {
    fn default() -> Self {
        Self {
            tcp_per_ip: 256,
            tcp_total: 20_000,
            tcp_idle: Duration::from_secs(600),
            partial_message_timeout: Duration::from_secs(30),
            tls_handshake_timeout: Duration::from_secs(10),
            max_message_bytes: 65_535,
        }
    }
}

impl DriverLimits {
    /// Most octets queued for sending on one connection before it counts as not draining
    /// and is closed: room for a few of the largest messages.
    pub fn max_outbound_bytes(&self) -> usize {
        self.max_message_bytes.max(65_535).saturating_mul(4)
    }
}

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    PerIp,
    Total,
}

impl Refusal {
    /// Label of `voxgate_sip_connections_rejected_total{reason}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::PerIp => "per_ip_limit",
            Refusal::Total => "total_limit",
        }
    }
}

/// Open stream connections, in total and per source IP.
#[derive(Debug, Default)]
pub struct ConnCounter {
    per_ip: HashMap<IpAddr, usize>,
    total: usize,
}

impl ConnCounter {
    /// Count a new connection from `ip`, or refuse it.
    pub fn admit(&mut self, ip: IpAddr, limits: &DriverLimits) -> Result<(), Refusal> {
        if self.total >= limits.tcp_total {
            return Err(Refusal::Total);
        }
        let n = self.per_ip.entry(ip).or_insert(0);
        if *n >= limits.tcp_per_ip {
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
            return Err(Refusal::PerIp);
        }
        *n += 1;
        self.total += 1;
        Ok(())
    }

    /// A connection from `ip` admitted earlier has closed.
    pub fn release(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
            self.total -= 1;
        } else {
            debug_assert!(false, "released a connection that was never admitted");
        }
    }

    #[cfg(test)]
    pub fn total(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_and_total_limits() {
        let limits = DriverLimits {
            tcp_per_ip: 2,
            tcp_total: 3,
            ..DriverLimits::default()
        };
        let a: IpAddr = "192.0.2.1".parse().expect("literal");
        let b: IpAddr = "192.0.2.2".parse().expect("literal");
        let mut c = ConnCounter::default();
        assert_eq!(c.admit(a, &limits), Ok(()));
        assert_eq!(c.admit(a, &limits), Ok(()));
        assert_eq!(c.admit(a, &limits), Err(Refusal::PerIp));
        assert_eq!(c.admit(b, &limits), Ok(()));
        assert_eq!(c.admit(b, &limits), Err(Refusal::Total));
        c.release(a);
        assert_eq!(c.total(), 2);
        assert_eq!(c.admit(b, &limits), Ok(()));
        assert_eq!(c.admit(b, &limits), Err(Refusal::Total));
        c.release(a);
        c.release(b);
        c.release(b);
        assert_eq!(c.total(), 0);
        assert!(c.per_ip.is_empty(), "no entries left behind");
    }

    #[test]
    fn zero_per_ip_refuses_without_leaving_entries() {
        let limits = DriverLimits {
            tcp_per_ip: 0,
            ..DriverLimits::default()
        };
        let mut c = ConnCounter::default();
        let a: IpAddr = "::1".parse().expect("literal");
        assert_eq!(c.admit(a, &limits), Err(Refusal::PerIp));
        assert!(c.per_ip.is_empty());
    }
}
