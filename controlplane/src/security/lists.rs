//! IP networks and allow/block lists (SEC-04), and the per-source key (SEC-13).
//!
//! Owns: [`IpNet`] (one CIDR), [`IpSet`] (a list of them with allocation-free lookup) and
//! [`source_key`], which folds an address to the unit that flood limits, rate limits and
//! bans apply to. Does not own: where lists come from (the binary's config and API) or what
//! a match means (the caller, [`super::EdgeSecurity`]).

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP network: `192.0.2.0/24`, `2001:db8::/32`, or one address (`/32`, `/128`).
///
/// Host bits are always zero. An IPv4-mapped IPv6 network (`::ffff:192.0.2.0/120`) is
/// stored as the IPv4 network it maps (`192.0.2.0/24`), and [`IpNet::contains`] treats
/// IPv4-mapped addresses as IPv4, because a dual-stack socket reports IPv4 peers that way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpNet {
    addr: IpAddr,
    prefix_len: u8,
}

/// Why a network could not be built or parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IpNetError {
    #[error("expected an IP address or network, like \"192.0.2.0/24\" or \"2001:db8::/32\"")]
    Syntax,
    #[error("the prefix length must be at most {max}")]
    PrefixTooLong { max: u8 },
    /// Only from parsing: `192.0.2.1/24` is more likely a typo than a network.
    #[error("host bits are set; the network is {network}")]
    HostBits { network: IpNet },
}

impl IpNet {
    /// The network of `addr` with `prefix_len` leading bits. Host bits are cleared (the
    /// binary has already validated its own config); only an overlong prefix is an error.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<IpNet, IpNetError> {
        match addr {
            IpAddr::V4(v4) => {
                if prefix_len > 32 {
                    return Err(IpNetError::PrefixTooLong { max: 32 });
                }
                Ok(IpNet {
                    addr: IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask_v4(prefix_len))),
                    prefix_len,
                })
            }
            IpAddr::V6(v6) => {
                if prefix_len > 128 {
                    return Err(IpNetError::PrefixTooLong { max: 128 });
                }
                // ::ffff:0:0/96 is the IPv4 space seen through a dual-stack socket.
                if prefix_len >= 96 {
                    if let Some(v4) = v6.to_ipv4_mapped() {
                        return IpNet::new(IpAddr::V4(v4), prefix_len - 96);
                    }
                }
                Ok(IpNet {
                    addr: IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask_v6(prefix_len))),
                    prefix_len,
                })
            }
        }
    }

    /// One address as a network (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> IpNet {
        let len = if addr.is_ipv4() { 32 } else { 128 };
        IpNet::new(addr, len).expect("a full-length prefix is always valid")
    }

    /// The network's first address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` lies in this network (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, unmap(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask_v4(self.prefix_len) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask_v6(self.prefix_len) == u128::from(net)
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = IpNetError;

    /// Parses `addr/len` or a bare address; host bits must be zero.
    fn from_str(text: &str) -> Result<IpNet, IpNetError> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| IpNetError::Syntax)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .map_err(|_| IpNetError::PrefixTooLong { max })?,
            Some(_) => return Err(IpNetError::Syntax),
        };
        let network = IpNet::new(addr, prefix_len)?;
        // Checked on the address as written (a mapped network is folded to IPv4 only after).
        let host_bits_clear = match addr {
            IpAddr::V6(v6) => u128::from(v6) & mask_v6(prefix_len) == u128::from(v6),
            IpAddr::V4(v4) => u32::from(v4) & mask_v4(prefix_len) == u32::from(v4),
        };
        if !host_bits_clear {
            return Err(IpNetError::HostBits { network });
        }
        Ok(network)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl From<IpAddr> for IpNet {
    fn from(addr: IpAddr) -> IpNet {
        IpNet::host(addr)
    }
}

/// A set of networks with lookup cost proportional to the number of distinct prefix
/// lengths (one hash probe each), not to the number of entries, and no allocation.
///
/// Used for the allow and block lists; the binary may use it for per-listener and
/// per-trunk lists too.
#[derive(Debug, Clone, Default)]
pub struct IpSet {
    /// The networks as given (deduplicated, sorted), for listing.
    nets: Vec<IpNet>,
    /// For each prefix length present, the masked IPv4 networks of that length.
    v4: Vec<(u8, HashSet<u32>)>,
    v6: Vec<(u8, HashSet<u128>)>,
}

impl IpSet {
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> IpSet {
        let mut nets: Vec<IpNet> = nets.into_iter().collect();
        nets.sort_unstable();
        nets.dedup();
        let mut v4: Vec<(u8, HashSet<u32>)> = Vec::new();
        let mut v6: Vec<(u8, HashSet<u128>)> = Vec::new();
        for net in &nets {
            match net.addr {
                IpAddr::V4(a) => insert_by_len(&mut v4, net.prefix_len, u32::from(a)),
                IpAddr::V6(a) => insert_by_len(&mut v6, net.prefix_len, u128::from(a)),
            }
        }
        // Shorter prefixes first: a /0 or /8 entry answers before the host routes.
        v4.sort_unstable_by_key(|(len, _)| *len);
        v6.sort_unstable_by_key(|(len, _)| *len);
        IpSet { nets, v4, v6 }
    }

    /// Whether any network in the set contains `ip` (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match unmap(ip) {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4
                    .iter()
                    .any(|(len, set)| set.contains(&(a & mask_v4(*len))))
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6
                    .iter()
                    .any(|(len, set)| set.contains(&(a & mask_v6(*len))))
            }
        }
    }

    /// The networks, sorted and deduplicated.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    pub fn len(&self) -> usize {
        self.nets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

fn insert_by_len<T: std::hash::Hash + Eq>(by_len: &mut Vec<(u8, HashSet<T>)>, len: u8, net: T) {
    match by_len.iter_mut().find(|(l, _)| *l == len) {
        Some((_, set)) => {
            set.insert(net);
        }
        None => by_len.push((len, HashSet::from([net]))),
    }
}

/// The unit that flood limits, rate limits and bans apply to (SEC-13): an IPv4 address
/// (IPv4-mapped IPv6 is unmapped), or the first address of an IPv6 /64, since one IPv6
/// host usually owns a whole /64 and could otherwise rotate through 2^64 addresses.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match unmap(ip) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask_v6(64))),
        v4 => v4,
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as IPv4; anything else unchanged.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn mask_v4(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len.min(32)))
        .unwrap_or(0)
}

fn mask_v6(prefix_len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix_len.min(128)))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("test network")
    }

    #[test]
    fn parses_networks_and_bare_addresses() {
        assert_eq!(net("192.0.2.0/24").to_string(), "192.0.2.0/24");
        assert_eq!(net("2001:db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(net("192.0.2.7").to_string(), "192.0.2.7/32");
        assert_eq!(net("2001:db8::1").to_string(), "2001:db8::1/128");
        assert_eq!(net("0.0.0.0/0").prefix_len(), 0);
        assert_eq!(net("::ffff:192.0.2.0/120").to_string(), "192.0.2.0/24");
    }

    #[test]
    fn rejects_bad_networks() {
        assert_eq!("192.0.2.0/".parse::<IpNet>(), Err(IpNetError::Syntax));
        assert_eq!("192.0.2.0/-1".parse::<IpNet>(), Err(IpNetError::Syntax));
        assert_eq!("example.com/24".parse::<IpNet>(), Err(IpNetError::Syntax));
        assert_eq!(
            "192.0.2.0/33".parse::<IpNet>(),
            Err(IpNetError::PrefixTooLong { max: 32 })
        );
        assert_eq!(
            "::/129".parse::<IpNet>(),
            Err(IpNetError::PrefixTooLong { max: 128 })
        );
        assert_eq!(
            "192.0.2.0/999".parse::<IpNet>(),
            Err(IpNetError::PrefixTooLong { max: 32 })
        );
        assert_eq!(
            "192.0.2.1/24".parse::<IpNet>(),
            Err(IpNetError::HostBits {
                network: net("192.0.2.0/24")
            })
        );
        assert!(matches!(
            "::ffff:192.0.2.1/120".parse::<IpNet>(),
            Err(IpNetError::HostBits { .. })
        ));
    }

    #[test]
    fn new_clears_host_bits() {
        let n = IpNet::new(ip("192.0.2.77"), 24).expect("valid");
        assert_eq!(n, net("192.0.2.0/24"));
        assert_eq!(
            IpNet::new(ip("::1"), 129),
            Err(IpNetError::PrefixTooLong { max: 128 })
        );
    }

    #[test]
    fn contains_treats_mapped_v6_as_v4() {
        let n = net("192.0.2.0/24");
        assert!(n.contains(ip("192.0.2.200")));
        assert!(n.contains(ip("::ffff:192.0.2.200")));
        assert!(!n.contains(ip("192.0.3.1")));
        assert!(!n.contains(ip("2001:db8::1")));
        let v6 = net("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("192.0.2.1")));
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(net("::/0").contains(ip("2001:db8::1")));
    }

    #[test]
    fn set_lookup_matches_linear_scan() {
        let nets = [
            net("192.0.2.0/24"),
            net("198.51.100.7"),
            net("10.0.0.0/8"),
            net("2001:db8::/32"),
            net("2001:db8:1::5"),
        ];
        let set = IpSet::new(nets);
        for probe in [
            "192.0.2.1",
            "192.0.3.1",
            "198.51.100.7",
            "198.51.100.8",
            "10.200.1.1",
            "::ffff:10.1.1.1",
            "2001:db8:5::1",
            "2001:db9::1",
            "::1",
        ] {
            let p = ip(probe);
            assert_eq!(
                set.contains(p),
                nets.iter().any(|n| n.contains(p)),
                "{probe}"
            );
        }
        assert_eq!(set.len(), 5);
        assert!(IpSet::default().is_empty());
        assert!(!IpSet::default().contains(ip("192.0.2.1")));
    }

    #[test]
    fn source_key_folds_v6_to_64_and_unmaps_v4() {
        assert_eq!(source_key(ip("192.0.2.9")), ip("192.0.2.9"));
        assert_eq!(source_key(ip("::ffff:192.0.2.9")), ip("192.0.2.9"));
        assert_eq!(
            source_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
    }
}
