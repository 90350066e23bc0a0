//! The injection rules of a session, resolved from its attached vaults (its tenant only).
//!
//! Rules are re-resolved from the store every [`RULES_TTL`], so a rotation, an archive or a
//! refresh by another node reaches a running session without a restart. Nothing here derives
//! `Debug`: these structs hold opened secrets.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oma_api::vaults::{CredentialAuth, CredentialNetworking, McpOAuthRefresh};
use oma_core::seal::Sealer;
use oma_store::Store;

use crate::policy::{HostPattern, matches_any, url_host_port};

pub(crate) use crate::repos::RepoRule;

pub(crate) const RULES_TTL: Duration = Duration::from_secs(10);

/// Headers that carry credentials: stripped on hosts where the proxy injects.
pub(crate) const CREDENTIAL_HEADERS: &[&str] = &["authorization", "x-api-key", "x-goog-api-key"];

#[derive(Clone)]
pub(crate) struct CredRef {
    pub vault_id: String,
    pub credential_id: String,
}

pub(crate) enum Bearer {
    Static(String),
    OAuth {
        access_token: String,
        refresh: Option<McpOAuthRefresh>,
        /// µs since the epoch, when known.
        expires_at: Option<i64>,
    },
}

/// `Authorization: Bearer` for an MCP server's host (`static_bearer`, `mcp_oauth`).
pub(crate) struct BearerRule {
    pub host: String,
    pub port: u16,
    pub https: bool,
    /// The path of the credential's `mcp_server_url`, without a trailing `/` (`""` for the
    /// root): of two credentials for one origin, the one whose path holds the request wins.
    pub path: String,
    pub cred: CredRef,
    pub bearer: Bearer,
}

impl BearerRule {
    pub fn token(&self) -> &str {
        match &self.bearer {
            Bearer::Static(t) => t,
            Bearer::OAuth { access_token, .. } => access_token,
        }
    }
}

/// An `environment_variable` credential: its placeholder and where it may be substituted.
pub(crate) struct EnvRule {
    pub placeholder: String,
    pub value: String,
    /// `None`: every host the environment permits.
    pub hosts: Option<Vec<HostPattern>>,
    pub header: bool,
    pub body: bool,
    pub cred: CredRef,
}

#[derive(Default)]
pub(crate) struct Rules {
    pub bearer: Vec<BearerRule>,
    pub env: Vec<EnvRule>,
    /// The session's `github_repository` resources (see [`crate::repos`]).
    pub repos: Vec<RepoRule>,
}

impl Rules {
    /// The bearer for a request to `path` on an origin: the credential whose URL path holds
    /// `path` most closely (MCP servers are matched by URL), else the origin's first one (so
    /// the rest of that host sees the credential as before).
    pub fn bearer_for(
        &self,
        host: &str,
        port: u16,
        https: bool,
        path: &str,
    ) -> Option<&BearerRule> {
        let mut on_origin = self
            .bearer
            .iter()
            .filter(|r| r.host == host && r.port == port && r.https == https)
            .peekable();
        let first = *on_origin.peek()?;
        let closest = on_origin
            .filter(|r| path_holds(&r.path, path))
            .max_by_key(|r| r.path.len());
        Some(closest.unwrap_or(first))
    }

    fn has_bearer(&self, host: &str, port: u16, https: bool, path: &str) -> bool {
        self.bearer
            .iter()
            .any(|r| r.host == host && r.port == port && r.https == https && r.path == path)
    }

    pub fn env_for<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a EnvRule> + 'a {
        self.env.iter().filter(move |r| match &r.hosts {
            None => true,
            Some(h) => matches_any(h, host),
        })
    }

    /// Whether the proxy must see inside a TLS connection to `host:port`.
    pub fn intercepts(&self, host: &str, port: u16) -> bool {
        self.bearer_for(host, port, true, "/").is_some()
            || self.env_for(host).next().is_some()
            || self.repos_on(host, port).any(|r| r.token.is_some())
    }

    /// The repository a request to `path` on `https://host:port` belongs to: of several
    /// resources naming it, the first with a token.
    pub fn repo_for(&self, host: &str, port: u16, path: &str) -> Option<&RepoRule> {
        let matching = || {
            self.repos
                .iter()
                .filter(|r| r.host == host && r.port == port && r.holds(path))
        };
        matching()
            .find(|r| r.token.is_some())
            .or_else(|| matching().next())
    }

    /// The session's repositories on `https://host:port`.
    pub fn repos_on<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> impl Iterator<Item = &'a RepoRule> + 'a {
        self.repos
            .iter()
            .filter(move |r| r.host == host && r.port == port)
    }
}

/// Whether `prefix` (a rule's path, no trailing `/`) holds `path` segment-wise: `/gh` holds
/// `/gh` and `/gh/x` but not `/ghost`.
fn path_holds(prefix: &str, path: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The path of an absolute URL, without its query and trailing `/`.
pub(crate) fn url_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    match rest.find('/') {
        Some(i) => rest[i..].trim_end_matches('/').to_string(),
        None => String::new(),
    }
}

/// A fresh, unguessable placeholder.
pub(crate) fn new_placeholder() -> String {
    let hex: String = oma_core::ids::random_bytes(20)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("oma_placeholder_{hex}")
}

/// Resolves the rules of `vault_ids` (in order; the first vault wins for a host or a variable
/// name). `placeholders` maps variable names to the placeholders the box was given; a variable
/// without one (its credential appeared after the box started) is not injected.
pub(crate) async fn resolve(
    store: &Store,
    sealer: &Sealer,
    tenant: &str,
    session_id: &str,
    vault_ids: &[String],
    placeholders: &HashMap<String, String>,
) -> Result<Rules, oma_store::StoreError> {
    let mut rules = Rules {
        repos: crate::repos::resolve(store, sealer, tenant, session_id).await?,
        ..Rules::default()
    };
    for vault_id in vault_ids {
        let creds = match store.active_credentials(tenant, vault_id).await {
            Ok(c) => c,
            // A vault of another tenant or a deleted one: nothing to inject from it.
            Err(oma_store::StoreError::Domain(_)) => continue,
            Err(e) => return Err(e),
        };
        for (credential_id, spec) in creds {
            let cred = CredRef {
                vault_id: vault_id.clone(),
                credential_id: credential_id.clone(),
            };
            let secrets = match store
                .open_credential_secrets(tenant, vault_id, &credential_id, sealer)
                .await
            {
                Ok(Some(s)) => s,
                // Archived between the two reads: its secrets are gone.
                Ok(None) | Err(oma_store::StoreError::Domain(_)) => continue,
                Err(e) => return Err(e),
            };
            match spec.auth {
                CredentialAuth::StaticBearer { mcp_server_url } => {
                    let (Some((host, port, https)), Some(token)) =
                        (url_host_port(&mcp_server_url), secrets.token)
                    else {
                        continue;
                    };
                    let path = url_path(&mcp_server_url);
                    if !rules.has_bearer(&host, port, https, &path) {
                        rules.bearer.push(BearerRule {
                            host,
                            port,
                            https,
                            path,
                            cred,
                            bearer: Bearer::Static(token),
                        });
                    }
                }
                CredentialAuth::McpOAuth {
                    mcp_server_url,
                    refresh,
                    expires_at,
                } => {
                    let (Some((host, port, https)), Some(access_token)) =
                        (url_host_port(&mcp_server_url), secrets.access_token)
                    else {
                        continue;
                    };
                    let path = url_path(&mcp_server_url);
                    if !rules.has_bearer(&host, port, https, &path) {
                        rules.bearer.push(BearerRule {
                            host,
                            port,
                            https,
                            path,
                            cred,
                            bearer: Bearer::OAuth {
                                access_token,
                                refresh,
                                expires_at: expires_at
                                    .as_deref()
                                    .and_then(oma_core::time::parse_micros),
                            },
                        });
                    }
                }
                CredentialAuth::EnvironmentVariable {
                    injection_location,
                    networking,
                    secret_name,
                } => {
                    let (Some(placeholder), Some(value)) =
                        (placeholders.get(&secret_name), secrets.secret_value)
                    else {
                        continue;
                    };
                    if rules.env.iter().any(|r| &r.placeholder == placeholder) {
                        continue;
                    }
                    let hosts = match networking {
                        CredentialNetworking::Unrestricted => None,
                        CredentialNetworking::Limited { allowed_hosts } => {
                            Some(allowed_hosts.iter().map(|h| HostPattern::new(h)).collect())
                        }
                    };
                    rules.env.push(EnvRule {
                        placeholder: placeholder.clone(),
                        value,
                        hosts,
                        header: injection_location.header,
                        body: injection_location.body,
                        cred,
                    });
                }
            }
        }
    }
    Ok(rules)
}

/// The variable names of the `environment_variable` credentials in `vault_ids`, first vault
/// first, each once.
pub(crate) async fn env_names(
    store: &Store,
    tenant: &str,
    vault_ids: &[String],
) -> Result<Vec<String>, oma_store::StoreError> {
    let mut names: Vec<String> = Vec::new();
    for vault_id in vault_ids {
        let creds = match store.active_credentials(tenant, vault_id).await {
            Ok(c) => c,
            Err(oma_store::StoreError::Domain(_)) => continue,
            Err(e) => return Err(e),
        };
        for (_, spec) in creds {
            if let CredentialAuth::EnvironmentVariable { secret_name, .. } = spec.auth
                && !names.contains(&secret_name)
            {
                names.push(secret_name);
            }
        }
    }
    Ok(names)
}

/// A cached rule set with its age.
pub(crate) struct Cached {
    pub at: Instant,
    pub rules: Arc<Rules>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, id: &str) -> BearerRule {
        BearerRule {
            host: "mcp.example.com".into(),
            port: 443,
            https: true,
            path: path.into(),
            cred: CredRef {
                vault_id: "v".into(),
                credential_id: id.into(),
            },
            bearer: Bearer::Static(format!("token-{id}")),
        }
    }

    #[test]
    fn the_credential_whose_url_holds_the_path_wins() {
        assert_eq!(url_path("https://mcp.example.com/gh/?x=1"), "/gh");
        assert_eq!(url_path("https://mcp.example.com"), "");
        assert!(path_holds("/gh", "/gh/mcp?session=1"));
        assert!(!path_holds("/gh", "/ghost"));
        assert!(path_holds("", "/anything"));
        let rules = Rules {
            bearer: vec![rule("/a", "a"), rule("/b", "b"), rule("", "root")],
            ..Rules::default()
        };
        let id = |path: &str| {
            rules
                .bearer_for("mcp.example.com", 443, true, path)
                .map(|r| r.cred.credential_id.clone())
        };
        assert_eq!(id("/b/mcp").as_deref(), Some("b"));
        assert_eq!(id("/a").as_deref(), Some("a"));
        assert_eq!(id("/other").as_deref(), Some("root"));
        assert!(
            rules
                .bearer_for("other.example.com", 443, true, "/a")
                .is_none()
        );
        let no_root = Rules {
            bearer: vec![rule("/a", "a"), rule("/b", "b")],
            ..Rules::default()
        };
        let first = no_root.bearer_for("mcp.example.com", 443, true, "/c");
        assert_eq!(first.map(|r| r.cred.credential_id.as_str()), Some("a"));
    }
}
