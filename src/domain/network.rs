//! Which address a request comes from: the peer's, or the one a trusted proxy forwarded.

use std::net::IpAddr;

use super::FieldViolation;

/// Networks whose `X-Forwarded-For` is believed (load balancers, ingress). Empty by default:
/// the peer address is recorded as is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Comma-separated addresses or CIDR networks, e.g. `10.0.0.0/8, 192.168.1.7, fd00::/8`.
    pub fn parse(list: &str, field: &str) -> Result<Self, FieldViolation> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = || {
                FieldViolation::new(
                    field,
                    format!("{} is not an IP address or CIDR network like 10.0.0.0/8", super::quoted(item)),
                )
            };
            let (addr, len) = match item.split_once('/') {
                Some((addr, len)) => (addr, Some(len.parse::<u8>().map_err(|_| bad())?)),
                None => (item, None),
            };
            let addr: IpAddr = addr.parse().map_err(|_| bad())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let len = len.unwrap_or(max);
            if len > max {
                return Err(bad());
            }
            nets.push((addr, len));
        }
        Ok(Self(nets))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|&(net, len)| match (net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), len),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), len),
            _ => false,
        })
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy, in which case the
    /// nearest `X-Forwarded-For` entry that is not itself a trusted proxy.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let Some(chain) = forwarded_for else { return peer };
        let mut client = peer;
        for hop in chain.rsplit(',').map(str::trim) {
            match hop.parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.contains(ip) {
                        break;
                    }
                }
                // A garbled entry: trust nothing further left.
                Err(_) => break,
            }
        }
        client
    }
}

fn prefix_eq(a: &[u8], b: &[u8], len: u8) -> bool {
    let (bytes, bits) = (usize::from(len / 8), len % 8);
    a[..bytes] == b[..bytes] && (bits == 0 || (a[bytes] ^ b[bytes]) >> (8 - bits) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_match_by_prefix() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7, fd00::/8, 172.16.0.0/12", "p").unwrap();
        assert!(trusted.contains(ip("10.200.3.4")));
        assert!(trusted.contains(ip("192.168.1.7")) && !trusted.contains(ip("192.168.1.8")));
        assert!(trusted.contains(ip("172.31.255.1")) && !trusted.contains(ip("172.32.0.1")));
        assert!(trusted.contains(ip("fd12::1")) && !trusted.contains(ip("fe80::1")));
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0.0/x"] {
            assert!(TrustedProxies::parse(bad, "p").is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_trusted_peer_may_name_the_client() {
        let trusted = TrustedProxies::parse("10.0.0.0/8", "p").unwrap();
        let xff = Some("203.0.113.9, 10.1.1.1");
        assert_eq!(trusted.client_ip(ip("10.0.0.5"), xff), ip("203.0.113.9"));
        assert_eq!(trusted.client_ip(ip("198.51.100.1"), xff), ip("198.51.100.1"), "untrusted peer");
        assert_eq!(trusted.client_ip(ip("10.0.0.5"), None), ip("10.0.0.5"));
        // A client cannot smuggle an address past the first untrusted hop.
        assert_eq!(trusted.client_ip(ip("10.0.0.5"), Some("1.2.3.4, 203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(TrustedProxies::default().client_ip(ip("10.0.0.5"), xff), ip("10.0.0.5"));
    }
}
