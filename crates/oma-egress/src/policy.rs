//! Which destinations a session may reach: the environment's networking (spec §5.2) plus the
//! operator's rules from `oma.toml`.
//!
//! Order of the decision, first match wins:
//! 1. operator `deny` → refused (deny always wins);
//! 2. operator `allow` → permitted, even to private addresses (an internal mirror the operator
//!    vouches for);
//! 3. the environment: `unrestricted` permits every host, `limited` only `allowed_hosts` (with
//!    `*.` wildcards, which match subdomains and not the apex), the agent's MCP server hosts when
//!    `allow_mcp_servers`, and public package registries when `allow_package_managers`.
//!
//! Hosts permitted by rule 3 must not resolve to loopback, private, link-local or other
//! non-public addresses: the check runs on the addresses actually connected to, after DNS, so a
//! name that rebinds to 127.0.0.1 is refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use crate::EgressError;

/// Public package registries opened by `allow_package_managers` (the managers of spec §3
/// `packages`: apt, cargo, gem, go, npm, pip).
pub const PACKAGE_REGISTRIES: &[&str] = &[
    // pip
    "pypi.org",
    "files.pythonhosted.org",
    // npm / yarn
    "registry.npmjs.org",
    "registry.yarnpkg.com",
    // cargo
    "crates.io",
    "index.crates.io",
    "static.crates.io",
    // go
    "proxy.golang.org",
    "sum.golang.org",
    // gem
    "rubygems.org",
    "index.rubygems.org",
    // apt
    "deb.debian.org",
    "security.debian.org",
    "archive.ubuntu.com",
    "*.archive.ubuntu.com",
    "security.ubuntu.com",
    "ports.ubuntu.com",
];

/// A host pattern: an exact host or `*.suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern(String);

impl HostPattern {
    pub fn new(p: &str) -> Self {
        HostPattern(normalize_host(p))
    }

    pub fn matches(&self, host: &str) -> bool {
        match self.0.strip_prefix("*.") {
            Some(suffix) => {
                host.len() > suffix.len() + 1
                    && host.ends_with(suffix)
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
            }
            None => self.0 == host,
        }
    }
}

pub fn matches_any(patterns: &[HostPattern], host: &str) -> bool {
    patterns.iter().any(|p| p.matches(host))
}

/// Lowercased, without a trailing dot or IPv6 brackets.
pub fn normalize_host(h: &str) -> String {
    let h = h.trim().trim_end_matches('.');
    let h = h
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(h);
    h.to_ascii_lowercase()
}

/// The decision on a host before resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed by the operator: private addresses are fine.
    Trusted,
    /// Allowed by the environment: the resolved addresses must be public.
    PublicOnly,
}

#[derive(Debug, Clone)]
pub struct Policy {
    deny: Vec<HostPattern>,
    allow: Vec<HostPattern>,
    /// `None`: unrestricted.
    limited: Option<Vec<HostPattern>>,
    mode: &'static str,
    /// Hosts of the agent's MCP servers that `limited` networking keeps closed (no
    /// `allow_mcp_servers`): named in the refusal so the fix is obvious.
    closed_mcp_hosts: Vec<String>,
}

impl Policy {
    /// From the environment's `config.networking` (`null` counts as the API default,
    /// `unrestricted`), the operator's rules and the agent's MCP server URLs.
    pub fn new(
        networking: &Value,
        allow: &[String],
        deny: &[String],
        mcp_server_urls: &[String],
    ) -> Result<Self, EgressError> {
        let pats = |v: &[String]| v.iter().map(|s| HostPattern::new(s)).collect::<Vec<_>>();
        let mut closed_mcp_hosts = Vec::new();
        let (limited, mode) = match networking.get("type").and_then(Value::as_str) {
            _ if networking.is_null() => (None, "unrestricted"),
            Some("unrestricted") => (None, "unrestricted"),
            Some("limited") => {
                let mut hosts: Vec<HostPattern> = networking
                    .get("allowed_hosts")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(HostPattern::new)
                            .collect()
                    })
                    .unwrap_or_default();
                let mcp_hosts = mcp_server_urls
                    .iter()
                    .filter_map(|u| url_host_port(u))
                    .map(|(h, _, _)| h);
                if networking.get("allow_mcp_servers").and_then(Value::as_bool) == Some(true) {
                    hosts.extend(mcp_hosts.map(HostPattern));
                } else {
                    closed_mcp_hosts.extend(mcp_hosts);
                }
                if networking
                    .get("allow_package_managers")
                    .and_then(Value::as_bool)
                    == Some(true)
                {
                    hosts.extend(PACKAGE_REGISTRIES.iter().map(|h| HostPattern::new(h)));
                }
                (Some(hosts), "limited")
            }
            other => {
                return Err(EgressError::Policy(format!(
                    "the environment's networking type {other:?} is not known (expected \
                     `unrestricted` or `limited`)"
                )));
            }
        };
        Ok(Policy {
            deny: pats(deny),
            allow: pats(allow),
            limited,
            mode,
            closed_mcp_hosts,
        })
    }

    /// Whether `host` (normalised) may be reached at all; `Err` is the reason to show.
    pub fn check_host(&self, host: &str) -> Result<Verdict, String> {
        if matches_any(&self.deny, host) {
            return Err(format!("{host} is on the operator's deny list"));
        }
        if matches_any(&self.allow, host) {
            return Ok(Verdict::Trusted);
        }
        match &self.limited {
            None => Ok(Verdict::PublicOnly),
            Some(hosts) if matches_any(hosts, host) => Ok(Verdict::PublicOnly),
            Some(_) if self.closed_mcp_hosts.iter().any(|h| h == host) => Err(format!(
                "{host} is one of the agent's MCP servers, which the environment's limited \
                 networking keeps closed without `allow_mcp_servers`"
            )),
            Some(_) => Err(format!(
                "{host} is not in the environment's allowed_hosts (networking: {})",
                self.mode
            )),
        }
    }

    /// Whether the operator's `deny` rules refuse `host` (normalised).
    pub fn denies(&self, host: &str) -> bool {
        matches_any(&self.deny, host)
    }

    /// The environment's networking type, for messages.
    pub fn mode(&self) -> &'static str {
        self.mode
    }
}

/// Whether an address is one a box must not reach through the proxy unless the operator
/// allowed the host: loopback, private, link-local, carrier-grade NAT, unspecified, multicast,
/// broadcast, documentation and other reserved ranges.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public_v4(v4);
            }
            non_public_v6(v6)
        }
    }
}

fn non_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn non_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 can reach private v4
}

/// `(host, port, https)` of an absolute http(s) URL.
pub fn url_host_port(url: &str) -> Option<(String, u16, bool)> {
    let (scheme, rest) = url.split_once("://")?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let (host, port) = split_authority(authority, if https { 443 } else { 80 })?;
    Some((host, port, https))
}

/// `host[:port]` or `[v6][:port]` → normalised host and port.
pub fn split_authority(authority: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        (h, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (authority, default_port),
        }
    };
    let host = normalize_host(host);
    (!host.is_empty()).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards_match_subdomains_only() {
        let p = HostPattern::new("*.Example.com");
        assert!(p.matches("api.example.com"));
        assert!(p.matches("a.b.example.com"));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("badexample.com"));
        assert!(HostPattern::new("example.com.").matches("example.com"));
    }

    #[test]
    fn limited_unrestricted_and_operator_rules() {
        let limited = json!({"type": "limited", "allowed_hosts": ["api.github.com", "*.corp.dev"],
            "allow_mcp_servers": true, "allow_package_managers": false});
        let mcp = vec!["https://mcp.linear.app/sse".to_string()];
        let p = Policy::new(
            &limited,
            &["mirror.internal".into()],
            &["evil.corp.dev".into()],
            &mcp,
        )
        .unwrap();
        assert_eq!(p.check_host("api.github.com"), Ok(Verdict::PublicOnly));
        assert_eq!(p.check_host("x.corp.dev"), Ok(Verdict::PublicOnly));
        assert_eq!(p.check_host("mcp.linear.app"), Ok(Verdict::PublicOnly));
        assert_eq!(p.check_host("mirror.internal"), Ok(Verdict::Trusted));
        assert!(p.check_host("evil.corp.dev").unwrap_err().contains("deny"));
        assert!(
            p.check_host("pypi.org")
                .unwrap_err()
                .contains("allowed_hosts")
        );

        let open = Policy::new(
            &json!({"type": "unrestricted"}),
            &[],
            &["*.bad.com".into()],
            &[],
        )
        .unwrap();
        assert_eq!(open.check_host("pypi.org"), Ok(Verdict::PublicOnly));
        assert!(open.check_host("x.bad.com").is_err());
        assert!(Policy::new(&json!({"type": "weird"}), &[], &[], &[]).is_err());
        let pm = Policy::new(
            &json!({"type": "limited", "allowed_hosts": [], "allow_package_managers": true}),
            &[],
            &[],
            &mcp,
        )
        .unwrap();
        assert!(pm.check_host("pypi.org").is_ok());
        assert!(
            pm.check_host("mcp.linear.app")
                .unwrap_err()
                .contains("allow_mcp_servers")
        );
    }

    #[test]
    fn non_public_addresses() {
        for ip in [
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
            assert!(is_non_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "140.82.112.3", "2606:4700::1111"] {
            assert!(!is_non_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn authorities() {
        assert_eq!(
            split_authority("Example.com:8443", 443),
            Some(("example.com".into(), 8443))
        );
        assert_eq!(split_authority("[::1]:80", 443), Some(("::1".into(), 80)));
        assert_eq!(split_authority("[::1]", 443), Some(("::1".into(), 443)));
        assert_eq!(split_authority("h:notaport", 443), None);
        assert_eq!(
            url_host_port("https://user@MCP.example.com/x?y"),
            Some(("mcp.example.com".into(), 443, true))
        );
    }
}
