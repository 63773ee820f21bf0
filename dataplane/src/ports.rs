//! RTP/RTCP port pairs (MED-01, MED-02): an allocator of even/odd pairs from one or more
//! configured ranges (`media.rtp_ports`, e.g. "20000-29999" or the 3CX layout
//! "7000-8999,9000-10999"), and the binding of a pair's sockets.
//!
//! Owns: which pairs are in use, the round-robin cursor, binding with `SO_REUSEADDR` off.
//!
//! Does not own: the sockets once bound (a worker does), sessions, config parsing beyond the
//! range syntax.
//!
//! # Per worker, not shared
//! A [`PortAllocator`] is plain single-owner state with no lock: each worker owns one, over a
//! disjoint share of the pairs ([`PortRanges::split`]), so the packet path and the session
//! set-up path never take a lock (MED-19). A pair is never handed out twice while in use; it is
//! freed by [`PortAllocator::free`] when its session is deleted. Allocation goes round-robin
//! from the last pair handed out, so a freed pair is reused as late as possible (late packets
//! of an old call do not reach a new one). A pair the OS refuses to bind (another process holds
//! a port) is skipped and the search moves on.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};
use thiserror::Error;

/// An even RTP port; RTCP is `rtp + 1` (MED-02).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortPair {
    rtp: u16,
}

impl PortPair {
    /// The RTP (even) port.
    #[must_use]
    pub fn rtp(self) -> u16 {
        self.rtp
    }

    /// The RTCP (odd) port.
    #[must_use]
    pub fn rtcp(self) -> u16 {
        self.rtp + 1
    }
}

/// Why a range list or an allocation was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PortError {
    /// A range is not `LOW-HIGH` with two port numbers.
    #[error("port range {index} is not LOW-HIGH with 1 <= LOW <= HIGH <= 65535")]
    Syntax { index: usize },
    /// A range holds no even/odd pair.
    #[error("port range {low}-{high} holds no even/odd RTP/RTCP pair")]
    NoPair { low: u16, high: u16 },
    /// Two ranges overlap.
    #[error("port ranges {a_low}-{a_high} and {b_low}-{b_high} overlap")]
    Overlap {
        a_low: u16,
        a_high: u16,
        b_low: u16,
        b_high: u16,
    },
    /// Every pair is in use or refused by the OS.
    #[error("no free RTP/RTCP port pair ({in_use} in use, {refused} refused by the OS)")]
    Exhausted { in_use: usize, refused: usize },
}

/// One or more inclusive port ranges, validated: each holds at least one even/odd pair, none
/// overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRanges {
    /// Inclusive `(low, high)`, sorted.
    ranges: Vec<(u16, u16)>,
}

impl PortRanges {
    /// Validates inclusive `(low, high)` ranges.
    pub fn new(mut ranges: Vec<(u16, u16)>) -> Result<Self, PortError> {
        for &(low, high) in &ranges {
            if low == 0 || low > high {
                return Err(PortError::Syntax { index: 0 });
            }
            if first_even(low).is_none_or(|p| p >= high) {
                return Err(PortError::NoPair { low, high });
            }
        }
        ranges.sort_unstable();
        for w in ranges.windows(2) {
            if w[1].0 <= w[0].1 {
                return Err(PortError::Overlap {
                    a_low: w[0].0,
                    a_high: w[0].1,
                    b_low: w[1].0,
                    b_high: w[1].1,
                });
            }
        }
        Ok(Self { ranges })
    }

    /// Parses `"20000-29999"` or a comma-separated list `"7000-8999,9000-10999"`.
    pub fn parse(text: &str) -> Result<Self, PortError> {
        let mut ranges = Vec::new();
        for (index, part) in text.split(',').enumerate() {
            let (low, high) = part
                .trim()
                .split_once('-')
                .ok_or(PortError::Syntax { index })?;
            let low = low
                .trim()
                .parse()
                .map_err(|_| PortError::Syntax { index })?;
            let high = high
                .trim()
                .parse()
                .map_err(|_| PortError::Syntax { index })?;
            if low == 0 || low > high {
                return Err(PortError::Syntax { index });
            }
            ranges.push((low, high));
        }
        Self::new(ranges)
    }

    /// Every pair, in port order.
    pub fn pairs(&self) -> impl Iterator<Item = PortPair> + '_ {
        self.ranges.iter().flat_map(|&(low, high)| {
            let start = first_even(low).unwrap_or(high);
            (start..high).step_by(2).map(|rtp| PortPair { rtp })
        })
    }

    /// The number of pairs.
    #[must_use]
    pub fn pair_count(&self) -> usize {
        self.pairs().count()
    }

    /// Deals the pairs out to `n` workers in turn: disjoint shares, each spread over every
    /// range. A share may be empty when there are fewer pairs than workers.
    #[must_use]
    pub fn split(&self, n: usize) -> Vec<Vec<PortPair>> {
        let n = n.max(1);
        let mut shares = vec![Vec::new(); n];
        for (i, pair) in self.pairs().enumerate() {
            shares[i % n].push(pair);
        }
        shares
    }
}

fn first_even(low: u16) -> Option<u16> {
    if low % 2 == 0 {
        Some(low)
    } else {
        low.checked_add(1)
    }
}

/// A pair's bound sockets: RTP always, RTCP unless rtcp-mux (RFC 5761) was negotiated (the
/// pair stays reserved either way, so parity never breaks).
#[derive(Debug)]
pub struct BoundPair {
    pub pair: PortPair,
    pub rtp: UdpSocket,
    pub rtcp: Option<UdpSocket>,
}

/// The pairs of one worker: see the module documentation.
#[derive(Debug)]
pub struct PortAllocator {
    pairs: Vec<PortPair>,
    in_use: Vec<bool>,
    used: usize,
    cursor: usize,
}

impl PortAllocator {
    /// An allocator over `pairs` (one worker's share; duplicates are removed).
    #[must_use]
    pub fn new(mut pairs: Vec<PortPair>) -> Self {
        pairs.sort_unstable();
        pairs.dedup();
        Self {
            in_use: vec![false; pairs.len()],
            pairs,
            used: 0,
            cursor: 0,
        }
    }

    /// The number of pairs in use.
    #[must_use]
    pub fn in_use(&self) -> usize {
        self.used
    }

    /// The number of pairs this allocator hands out.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.pairs.len()
    }

    /// Reserves the next free pair and binds its sockets on `ip` (non-blocking, `SO_REUSEADDR`
    /// off); the RTCP socket only when `rtcp_mux` is false. Pairs the OS refuses are skipped.
    pub fn allocate(&mut self, ip: IpAddr, rtcp_mux: bool) -> Result<BoundPair, PortError> {
        let n = self.pairs.len();
        let mut refused = 0;
        for step in 0..n {
            let i = (self.cursor + step) % n;
            if self.in_use[i] {
                continue;
            }
            let pair = self.pairs[i];
            match bind_pair(ip, pair, rtcp_mux) {
                Ok((rtp, rtcp)) => {
                    self.in_use[i] = true;
                    self.used += 1;
                    self.cursor = (i + 1) % n;
                    return Ok(BoundPair { pair, rtp, rtcp });
                }
                Err(_) => refused += 1,
            }
        }
        Err(PortError::Exhausted {
            in_use: self.used,
            refused,
        })
    }

    /// Gives a pair back (its sockets must be dropped first). Returns whether it was in use.
    pub fn free(&mut self, pair: PortPair) -> bool {
        match self.pairs.binary_search(&pair) {
            Ok(i) if self.in_use[i] => {
                self.in_use[i] = false;
                self.used -= 1;
                true
            }
            _ => false,
        }
    }
}

/// Binds the pair. The RTCP port is bound even with rtcp-mux (and then released) so that a
/// pair is only taken when both of its ports are free: the parity of MED-02 always holds.
fn bind_pair(
    ip: IpAddr,
    pair: PortPair,
    rtcp_mux: bool,
) -> io::Result<(UdpSocket, Option<UdpSocket>)> {
    let rtp = bind_udp(SocketAddr::new(ip, pair.rtp()))?;
    let rtcp = bind_udp(SocketAddr::new(ip, pair.rtcp()))?;
    Ok((rtp, (!rtcp_mux).then_some(rtcp)))
}

/// A non-blocking UDP socket bound to `addr` with `SO_REUSEADDR` off, so two sessions can
/// never share a port.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(false)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn parses_ranges_and_pairs() {
        let r = PortRanges::parse("7000-7005, 9001-9004").expect("valid");
        let pairs: Vec<u16> = r.pairs().map(PortPair::rtp).collect();
        assert_eq!(pairs, [7000, 7002, 7004, 9002]);
        assert_eq!(r.pair_count(), 4);
    }

    #[test]
    fn rejects_bad_ranges() {
        assert_eq!(
            PortRanges::parse("1-2,x"),
            Err(PortError::Syntax { index: 1 })
        );
        assert_eq!(
            PortRanges::parse("5-4"),
            Err(PortError::Syntax { index: 0 })
        );
        assert_eq!(
            PortRanges::parse("7001-7002"),
            Err(PortError::NoPair {
                low: 7001,
                high: 7002
            })
        );
        assert!(matches!(
            PortRanges::parse("7000-7100,7100-7200"),
            Err(PortError::Overlap { .. })
        ));
        assert!(PortRanges::parse("65534-65535").is_ok());
    }

    #[test]
    fn split_is_disjoint_and_complete() {
        let r = PortRanges::parse("20000-20099").expect("valid");
        let shares = r.split(3);
        let mut all: Vec<PortPair> = shares.concat();
        all.sort_unstable();
        assert_eq!(all, r.pairs().collect::<Vec<_>>());
    }

    #[test]
    fn never_hands_out_a_pair_twice_and_skips_refused_pairs() {
        // Find a free pair by binding it, then hold its RTP port so the allocator must skip it.
        let probe = bind_udp(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0)).expect("bind");
        let base = probe.local_addr().expect("addr").port() & !1;
        drop(probe);
        let pairs: Vec<PortPair> = (0..4)
            .map(|k| PortPair {
                rtp: base.wrapping_add(2 * k) & !1,
            })
            .collect();
        let blocker = bind_udp(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), pairs[0].rtp()));
        let mut alloc = PortAllocator::new(pairs.clone());
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut got = Vec::new();
        while let Ok(b) = alloc.allocate(ip, false) {
            assert_eq!(b.rtp.local_addr().expect("addr").port(), b.pair.rtp());
            let rtcp = b.rtcp.as_ref().expect("not mux");
            assert_eq!(rtcp.local_addr().expect("addr").port(), b.pair.rtcp());
            assert!(!got.iter().any(|g: &BoundPair| g.pair == b.pair));
            got.push(b);
        }
        if blocker.is_ok() {
            assert!(got.iter().all(|b| b.pair != pairs[0]));
        }
        assert_eq!(alloc.in_use(), got.len());
        // Free one: it can be allocated again once its sockets are dropped.
        let b = got.pop().expect("at least one pair was free");
        let pair = b.pair;
        drop(b);
        assert!(alloc.free(pair));
        assert!(!alloc.free(pair));
        let again = alloc.allocate(ip, true).expect("the freed pair");
        assert_eq!(again.pair, pair);
        assert!(again.rtcp.is_none());
    }
}
