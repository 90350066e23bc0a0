//! Operator host overrides (`[egress] connect_to` in `oma.toml`), like curl's `--connect-to`:
//! the proxy connects to another address for a host (a GitHub Enterprise server, a mirror, a
//! test server) while everything else stays the original name's: the box's CONNECT target, the
//! `Host` header, the TLS server name and the certificate check (trust the server's CA with
//! `upstream_ca_files`). An overridden host counts as allowed by the operator (like `allow`):
//! the private-address rule does not refuse it; `deny` still wins.

use std::collections::HashMap;

use crate::EgressError;
use crate::policy::{normalize_host, split_authority};

/// Where the proxy connects for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    /// The name boxes use (normalised).
    pub host: String,
    /// The address or name connected to instead.
    pub to_host: String,
    /// The port connected to; `None` keeps the requested one.
    pub to_port: Option<u16>,
}

impl ConnectTo {
    /// `host` (a plain host name, no port, no wildcard) → `to` (`ADDRESS[:PORT]`,
    /// `[IPv6][:PORT]` or `NAME[:PORT]`).
    pub fn parse(host: &str, to: &str) -> Result<ConnectTo, EgressError> {
        let bad = |why: &str| {
            EgressError::Policy(format!("[egress] connect_to \"{host}\" = \"{to}\": {why}"))
        };
        let name = normalize_host(host);
        if name.is_empty()
            || name.contains(['*', ':', '/', '@', ' '])
            || name.starts_with('.')
            || name.ends_with('.')
        {
            return Err(bad(
                "the key must be a plain host name, such as \"github.com\"",
            ));
        }
        let to = to.trim();
        if to.is_empty() || to.contains(['/', '@', ' ']) {
            return Err(bad(
                "the value must be ADDRESS[:PORT], such as \"10.0.0.5:8443\"",
            ));
        }
        // A bare IPv6 address (several colons, no brackets) has no port.
        let (to_host, to_port) = if to.matches(':').count() > 1 && !to.starts_with('[') {
            (normalize_host(to), 0)
        } else {
            split_authority(to, 0).ok_or_else(|| bad("the port is not a number"))?
        };
        if to_host.is_empty() {
            return Err(bad("the address is empty"));
        }
        Ok(ConnectTo {
            host: name,
            to_host,
            to_port: (to_port != 0).then_some(to_port),
        })
    }
}

/// The overrides by host.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectMap(HashMap<String, ConnectTo>);

impl ConnectMap {
    pub(crate) fn new(list: Vec<ConnectTo>) -> Self {
        ConnectMap(list.into_iter().map(|c| (c.host.clone(), c)).collect())
    }

    /// Where to connect for `host:port`.
    pub(crate) fn target(&self, host: &str, port: u16) -> (String, u16) {
        match self.0.get(host) {
            Some(c) => (c.to_host.clone(), c.to_port.unwrap_or(port)),
            None => (host.to_string(), port),
        }
    }

    pub(crate) fn hosts(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_like_connect_to() {
        let c = ConnectTo::parse("GitHub.com", "127.0.0.1:8443").unwrap();
        assert_eq!(
            (c.host.as_str(), c.to_host.as_str(), c.to_port),
            ("github.com", "127.0.0.1", Some(8443))
        );
        let c = ConnectTo::parse("github.com", "ghe.internal").unwrap();
        assert_eq!((c.to_host.as_str(), c.to_port), ("ghe.internal", None));
        let c = ConnectTo::parse("github.com", "[::1]:9443").unwrap();
        assert_eq!((c.to_host.as_str(), c.to_port), ("::1", Some(9443)));
        let c = ConnectTo::parse("github.com", "fd00::5").unwrap();
        assert_eq!((c.to_host.as_str(), c.to_port), ("fd00::5", None));
        for (k, v) in [
            ("*.github.com", "1.2.3.4"),
            ("github.com:443", "1.2.3.4"),
            ("", "1.2.3.4"),
            ("github.com", ""),
            ("github.com", "1.2.3.4:https"),
            ("github.com", "https://1.2.3.4"),
        ] {
            assert!(ConnectTo::parse(k, v).is_err(), "{k} = {v}");
        }
        let map = ConnectMap::new(vec![
            ConnectTo::parse("github.com", "127.0.0.1:8443").unwrap(),
            ConnectTo::parse("mirror.example", "10.0.0.5").unwrap(),
        ]);
        assert_eq!(map.target("github.com", 443), ("127.0.0.1".into(), 8443));
        assert_eq!(map.target("mirror.example", 443), ("10.0.0.5".into(), 443));
        assert_eq!(map.target("gitlab.com", 443), ("gitlab.com".into(), 443));
    }
}
