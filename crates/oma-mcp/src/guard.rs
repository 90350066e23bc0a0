//! Keeps MCP traffic (tenant-supplied URLs, fetched by the server itself) off the server's own
//! network: loopback, private, link-local and other non-public addresses are refused, both
//! for IP literals in URLs and for every address a name resolves to (so a name that resolves
//! to 127.0.0.1 or the cloud metadata address does not get through).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // Shared address space (RFC 6598) and the 240/4 reserved block.
        || (a == 100 && (64..128).contains(&b))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Unique local (fc00::/7) and link-local (fe80::/10).
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80)
}

/// Refuses a URL whose host is a non-public IP literal (names are checked when resolved).
pub(crate) fn check_literal(url: &str) -> Result<(), String> {
    let Some(rest) = url.split_once("://").map(|(_, r)| r) else {
        return Err(format!("`{url}` is not an absolute URL"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    match host.parse::<IpAddr>() {
        Ok(ip) if !is_public(ip) => Err(format!(
            "{ip} is not a public address; MCP servers and token endpoints on the server's own \
             network are refused unless the operator allows private hosts"
        )),
        _ => Ok(()),
    }
}

/// A resolver that drops non-public addresses, failing when none is left.
pub(crate) struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| is_public(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(format!(
                    "`{host}` resolves only to non-public addresses; MCP servers and token \
                     endpoints on the server's own network are refused unless the operator \
                     allows private hosts"
                )
                .into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(bad.parse().unwrap()), "{bad}");
        }
        for good in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(good.parse().unwrap()), "{good}");
        }
    }

    #[test]
    fn literal_hosts_are_checked() {
        assert!(check_literal("http://127.0.0.1:8080/mcp").is_err());
        assert!(check_literal("http://[::1]:8080/mcp").is_err());
        assert!(check_literal("https://169.254.169.254/latest").is_err());
        assert!(check_literal("https://mcp.example.com/mcp").is_ok());
        assert!(check_literal("https://1.1.1.1/mcp").is_ok());
    }
}
