//! The per-session egress proxy: a box's only way out.
//!
//! Each session gets an HTTP proxy listening on its own Unix socket (the socket *is* the
//! session's identity: it is bind-mounted into that box only). The proxy
//! - applies the environment's networking policy and the operator's allow/deny rules
//!   ([`policy`]), re-checking resolved addresses so a public name cannot lead to a private
//!   address;
//! - tunnels allowed HTTPS untouched, except for hosts where one of the session's vault
//!   credentials must be injected: there it terminates TLS with a leaf signed by the deployment
//!   CA ([`ca`]), checks that the request's Host is the CONNECT target, and adds the credential
//!   (`static_bearer`, `mcp_oauth` with refresh, or `environment_variable` placeholders
//!   substituted by their secret) on the way out, and the `authorization_token` of each of the
//!   session's `github_repository` resources on requests to that repository ([`repos`]);
//! - connects elsewhere for hosts the operator overrides ([`ConnectTo`]);
//! - records every forward and every refusal as an operational event (never a secret).
//!
//! Credentials come only from the vaults attached to the session, read with the session's
//! tenant: another tenant's credential cannot be named, let alone used.

pub mod ca;
mod connect_to;
mod creds;
mod oauth;
pub mod policy;
mod proxy;
mod repos;
mod scrub;
mod upstream;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use oma_core::seal::Sealer;
use rustls::crypto::CryptoProvider;
use serde_json::Value;

pub use ca::DeploymentCa;
pub use connect_to::ConnectTo;
pub use oauth::{FreshToken, RefreshError};

/// Errors of the egress proxy.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("egress CA: {0}")]
    Ca(String),
    #[error("egress policy: {0}")]
    Policy(String),
    #[error("egress TLS setup: {0}")]
    Tls(String),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error(transparent)]
    Store(#[from] oma_store::StoreError),
}

/// What every session's proxy shares. One per server.
pub struct EgressConfig {
    /// Generated at first start and kept sealed: [`DeploymentCa::load_or_create`].
    pub ca: DeploymentCa,
    /// Extra PEM roots trusted for upstream TLS (a private PKI, tests' own CA), next to the
    /// system roots.
    pub upstream_roots: Vec<Vec<u8>>,
    /// Operator-wide host rules (`oma.toml`), `*.` wildcards allowed. `deny` always wins;
    /// `allow` opens a host to every session, private addresses included.
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    /// Operator host overrides ([`ConnectTo`]): the proxy connects elsewhere for these hosts,
    /// keeping the name for TLS and `Host`. They count as allowed (like `allow`).
    pub connect_to: Vec<ConnectTo>,
    /// Where `egress_forward` / `egress_denied` events go.
    pub ops: Option<oma_ops::OpsRecorder>,
}

/// A vault credential in the store, for [`Egress::refresh_credential`].
pub struct StoredCredential<'a> {
    pub store: &'a oma_store::Store,
    pub sealer: &'a Sealer,
    pub tenant: &'a str,
    pub vault_id: &'a str,
    pub credential_id: &'a str,
}

/// One session's view of the network.
pub struct SessionEgress {
    pub tenant: String,
    pub session_id: String,
    /// Where the proxy listens; the file must not exist (a stale one is replaced).
    pub socket_path: PathBuf,
    pub store: oma_store::Store,
    pub sealer: Arc<Sealer>,
    /// The vaults attached to the session, in `vault_ids` order (the first match wins).
    pub vault_ids: Vec<String>,
    /// The environment's `config.networking` (spec §5.2); `null` means `unrestricted`.
    pub networking: Value,
    /// The agent's MCP server URLs, opened when `networking.allow_mcp_servers`.
    pub mcp_server_urls: Vec<String>,
    // The `github_repository` resources of the session named `session_id` are read from the
    // store with the vault credentials: their tokens are injected on requests to their
    // repositories, and under `limited` networking those repositories stay reachable.
}

/// A running session proxy. Dropping it (or [`SessionProxy::close`]) stops the listener and
/// its connections and removes the socket and the CA bundle file.
pub struct SessionProxy {
    pub socket_path: PathBuf,
    /// System roots plus the deployment CA, PEM, readable by the box: bind it read-only over
    /// `/etc/ssl/certs/ca-certificates.crt` and point the CA variables at it.
    pub ca_bundle_path: PathBuf,
    /// `NAME=<placeholder>` for each `environment_variable` credential of the attached vaults:
    /// the box sees only these; the proxy swaps them for the secret on the credential's hosts.
    pub env: Vec<(String, String)>,
    _running: proxy::Running,
}

impl SessionProxy {
    pub fn close(self) {}

    /// A loopback door into this same session proxy, for requests the server makes on the
    /// session's behalf (`web_fetch`): same policy, same credentials, same events. Opened on
    /// first use; closed with the proxy.
    pub async fn host_door(&self) -> Result<HostDoor, EgressError> {
        self._running.door().await
    }

    /// Whether this proxy lets a request to `url` out: `Err` is the refusal's reason (the
    /// environment's policy, the operator's rules, a private address), recorded as an
    /// `egress_denied` event like any refusal. Lets the server's own clients (MCP) tell the
    /// proxy's refusal from an upstream's 403.
    pub async fn check_url(&self, url: &str) -> Result<(), String> {
        self._running.check_url(url).await
    }
}

/// How the server's own HTTP client goes through a session's proxy: an HTTP proxy at `url`
/// (127.0.0.1) that admits only requests with `Proxy-Authorization: Bearer <token>` (so no
/// other local process can borrow the session's credentials), and `ca_pem`, the roots to trust
/// (several PEM certificates): the deployment CA that signs intercepted hosts and the
/// operator's upstream roots, for HTTPS the proxy tunnels untouched.
///
/// With reqwest: `Proxy::all(&door.url)?.custom_http_auth(format!("Bearer {}", door.token))`
/// and each of `Certificate::from_pem_bundle(door.ca_pem.as_bytes())?` as a root.
#[derive(Clone)]
pub struct HostDoor {
    pub url: String,
    pub token: String,
    pub ca_pem: String,
}

impl std::fmt::Debug for HostDoor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostDoor").field("url", &self.url).finish()
    }
}

impl std::fmt::Debug for SessionProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionProxy")
            .field("socket_path", &self.socket_path)
            .field("ca_bundle_path", &self.ca_bundle_path)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .finish()
    }
}

/// The server's egress: cheap to clone.
#[derive(Clone)]
pub struct Egress {
    inner: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) ca: DeploymentCa,
    pub(crate) allow: Vec<String>,
    pub(crate) deny: Vec<String>,
    pub(crate) connect_to: connect_to::ConnectMap,
    pub(crate) ops: Option<oma_ops::OpsRecorder>,
    pub(crate) upstream: upstream::Connector,
    /// System roots + the deployment CA, PEM.
    pub(crate) bundle_pem: String,
    /// The deployment CA and the operator's upstream roots, PEM: what the server's own clients
    /// of a session's door must trust (tunnelled HTTPS reaches the upstream itself).
    pub(crate) door_roots_pem: String,
    /// TLS server configurations of intercepted hosts, by host.
    pub(crate) server_configs: Mutex<HashMap<String, Arc<rustls::ServerConfig>>>,
    /// One refresh at a time per credential within this process (CAS covers other nodes).
    pub(crate) refresh_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Egress {
    pub fn new(config: EgressConfig) -> Result<Egress, EgressError> {
        let system = rustls_native_certs::load_native_certs();
        let mut bundle_pem = String::new();
        for der in &system.certs {
            bundle_pem.push_str(&pem_encode("CERTIFICATE", der.as_ref()));
        }
        // Checked (and rejected with a reason) by the connector before they are handed out.
        let upstream = upstream::Connector::new(system.certs, &config.upstream_roots)?;
        // The operator's upstream roots are trusted everywhere an upstream is reached: by the
        // proxy for intercepted hosts, and, for HTTPS it tunnels untouched, by the box and by
        // the server's own clients, which then speak TLS with the upstream themselves.
        let mut door_roots_pem = with_newline(config.ca.cert_pem().to_string());
        for pem in &config.upstream_roots {
            door_roots_pem.push_str(&with_newline(String::from_utf8_lossy(pem).into_owned()));
        }
        bundle_pem.push_str(&door_roots_pem);
        let connect_to = connect_to::ConnectMap::new(config.connect_to);
        // An overridden host is one the operator vouches for, like `allow`.
        let mut allow = config.allow;
        allow.extend(connect_to.hosts().cloned());
        Ok(Egress {
            inner: Arc::new(Shared {
                ca: config.ca,
                allow,
                deny: config.deny,
                connect_to,
                ops: config.ops,
                upstream,
                bundle_pem,
                door_roots_pem,
                server_configs: Mutex::new(HashMap::new()),
                refresh_locks: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The deployment CA (for `oma doctor` and for clients that must trust the proxy).
    pub fn ca(&self) -> &DeploymentCa {
        &self.inner.ca
    }

    /// Refreshes the `mcp_oauth` credential `cred` after `refused_token` was refused: the one
    /// refresh implementation of oma, shared with the proxies (serialised per credential in
    /// this process, compare-and-swap in the store). A token stored meanwhile that differs
    /// from `refused_token` is returned unexchanged.
    pub async fn refresh_credential(
        &self,
        cred: StoredCredential<'_>,
        refused_token: &str,
        refresh: &oma_api::vaults::McpOAuthRefresh,
    ) -> Result<FreshToken, RefreshError> {
        let ctx = oauth::RefreshCtx {
            shared: &self.inner,
            store: cred.store,
            sealer: cred.sealer,
            tenant: cred.tenant,
        };
        let id = creds::CredRef {
            vault_id: cred.vault_id.to_string(),
            credential_id: cred.credential_id.to_string(),
        };
        oauth::refreshed_token(&ctx, &id, refused_token, refresh).await
    }

    /// Starts a session's proxy on a fresh Unix socket at `s.socket_path` (mode 0600: the box's
    /// processes reach it through a bind mount as the server's uid).
    pub async fn open_session(&self, s: SessionEgress) -> Result<SessionProxy, EgressError> {
        proxy::open(self.inner.clone(), s).await
    }
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn with_newline(mut pem: String) -> String {
    if !pem.ends_with('\n') {
        pem.push('\n');
    }
    pem
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
