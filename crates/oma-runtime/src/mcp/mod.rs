//! The agent's MCP servers in a session (spec §5.1 `mcp_toolset`, §6.6, §7).
//!
//! At the start of every turn (each idle→running transition, so a server that failed is
//! retried then) the host connects to the servers an `mcp_toolset` references, all at once,
//! each bounded at 15 s. Their tools reach the model as `mcp__<server>__<tool>`. A call is
//! recorded as `agent.mcp_tool_use` with the toolset's permission (MCP defaults to
//! `always_ask`, so it waits for `user.tool_confirmation` like a built-in tool), runs on the
//! server, and ends as `agent.mcp_tool_result`. A server that cannot be reached or refuses
//! the credentials is a non-blocking `session.error` naming it; the session goes on without
//! its tools.
//!
//! Credentials come from the session's attached vaults (its tenant's only), matched by
//! normalised URL, first vault in `vault_ids` order wins; the token is sent host-side as a
//! bearer and never reaches the model, the log or the box. Expired or refused `mcp_oauth`
//! tokens are refreshed once with the refresh token and written back to the vault.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use oma_api::agents::{McpToolset, PermissionPolicy};
use oma_api::environments::{CloudNetworking, EnvironmentConfig};
use oma_api::vaults::{CredentialAuth, TokenEndpointAuth};
use oma_core::credentials::normalize_url;
use oma_core::events::NewEvent;
use oma_core::seal::Sealer;
use oma_mcp::{McpClient, McpError, McpTool, ServerConfig};
use oma_model::types::ToolSpec;
use oma_store::Store;
use oma_store::events::StoredEvent;

/// A server the agent declares and an `mcp_toolset` references.
#[derive(Debug, Clone)]
pub(crate) struct Declared {
    pub name: String,
    pub url: String,
    pub toolset: McpToolset,
}

/// One tool as the model sees it.
#[derive(Debug, Clone)]
struct Exposed {
    exposed: String,
    server: String,
    tool: McpTool,
    ask: bool,
}

/// The connected servers of a turn and their tools.
#[derive(Default)]
pub(crate) struct McpTools {
    clients: HashMap<String, Box<dyn McpClient>>,
    tools: Vec<Exposed>,
    /// Each connected server's URL and credential, to reconnect after a refresh.
    servers: HashMap<String, (String, Option<Matched>)>,
}

/// What connecting needs from the session.
pub(crate) struct SessionRefs<'a> {
    pub store: &'a Store,
    pub tenant: &'a str,
    pub session: &'a str,
    pub agent: &'a Value,
    pub environment_id: Option<&'a str>,
    pub sealer: Option<&'a Sealer>,
    /// `RuntimeConfig::mcp_private_hosts`.
    pub allow_private: bool,
    /// Where errors handled without telling the user are recorded.
    pub ops: Option<&'a oma_ops::OpsRecorder>,
}

impl SessionRefs<'_> {
    /// An error handled here without reaching the user: logged and recorded as a silent catch.
    fn silent(&self, what: &str, error: impl std::fmt::Display) {
        use oma_ops::event::Scoped;
        tracing::warn!(op = "mcp", session_id = %self.session, error = %error, "{what}");
        if let Some(ops) = self.ops {
            let e = oma_ops::event::silent_catch("runtime.mcp", format!("{what}: {error}"));
            ops.record(e.session(self.tenant, self.session));
        }
    }
}

/// The shared MCP HTTP client (one connection pool per setting).
fn http(allow_private: bool) -> Result<&'static oma_mcp::HttpClient, McpError> {
    static PUBLIC: OnceLock<oma_mcp::HttpClient> = OnceLock::new();
    static ANY: OnceLock<oma_mcp::HttpClient> = OnceLock::new();
    let cell = if allow_private { &ANY } else { &PUBLIC };
    if let Some(c) = cell.get() {
        return Ok(c);
    }
    let c = oma_mcp::HttpClient::new(allow_private)?;
    Ok(cell.get_or_init(|| c))
}

/// The servers `agent` declares that an `mcp_toolset` references.
pub(crate) fn declared(agent: &Value) -> Vec<Declared> {
    let toolsets: Vec<McpToolset> = agent
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("mcp_toolset"))
        .filter_map(|t| serde_json::from_value(t.clone()).ok())
        .collect();
    agent
        .get("mcp_servers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let name = s.get("name")?.as_str()?.to_string();
            let url = s.get("url")?.as_str()?.to_string();
            let toolset = toolsets.iter().find(|t| t.mcp_server_name == name)?.clone();
            Some(Declared { name, url, toolset })
        })
        .collect()
}

/// Whether a tool call waits for the user (`Some(true)`), runs (`Some(false)`), or the tool
/// is disabled (`None`). `auto` has no judge in oma yet, so it asks.
fn permission(toolset: &McpToolset, tool: &str) -> Option<bool> {
    let (enabled, policy) = match toolset.configs.iter().find(|c| c.name == tool) {
        Some(c) => (c.enabled, c.permission_policy),
        None => (
            toolset.default_config.enabled,
            toolset.default_config.permission_policy,
        ),
    };
    enabled.then_some(!matches!(policy, PermissionPolicy::AlwaysAllow))
}

impl McpTools {
    /// Connects to the agent's servers. Returns the tools and the `session.error` events of
    /// the servers that failed.
    pub(crate) async fn connect(refs: SessionRefs<'_>) -> (McpTools, Vec<NewEvent>) {
        let servers = declared(refs.agent);
        if servers.is_empty() {
            return (McpTools::default(), Vec::new());
        }
        let mut errors = Vec::new();
        if let Some(reason) = networking_refusal(&refs).await {
            for s in &servers {
                errors.push(error_event("mcp_connection_failed_error", &s.name, &reason));
            }
            return (McpTools::default(), errors);
        }
        let http = match http(refs.allow_private) {
            Ok(h) => h,
            Err(e) => {
                for s in &servers {
                    errors.push(error_event(
                        "mcp_connection_failed_error",
                        &s.name,
                        &e.to_string(),
                    ));
                }
                return (McpTools::default(), errors);
            }
        };
        let vault_ids = vault_ids(&refs).await;
        let mut creds = futures::future::join_all(
            servers
                .iter()
                .map(|s| credential_for(&refs, &vault_ids, &s.url, http)),
        )
        .await;
        let configs: Vec<ServerConfig> = servers
            .iter()
            .zip(&creds)
            .map(|(s, c)| ServerConfig {
                name: s.name.clone(),
                url: s.url.clone(),
                bearer: c.as_ref().map(|c| c.token.clone()),
            })
            .collect();
        let mut found = oma_mcp::discover(http, configs, oma_mcp::DISCOVERY_TIMEOUT).await;
        // A refused `mcp_oauth` token is refreshed once and the server tried again.
        for (i, d) in found.iter_mut().enumerate() {
            let refused = matches!(&d.result, Err(e) if e.is_auth());
            if let (true, Some(cred)) = (refused, &mut creds[i])
                && let Some(token) = cred.refresh(&refs, http).await
            {
                cred.token.clone_from(&token);
                let retry = ServerConfig {
                    name: servers[i].name.clone(),
                    url: servers[i].url.clone(),
                    bearer: Some(token),
                };
                *d = oma_mcp::discover(http, vec![retry], oma_mcp::DISCOVERY_TIMEOUT)
                    .await
                    .pop()
                    .unwrap_or_else(|| oma_mcp::Discovered {
                        name: servers[i].name.clone(),
                        result: Err(McpError::Protocol("no discovery result".into())),
                    });
            }
        }
        let mut out = McpTools::default();
        for ((d, server), cred) in found.into_iter().zip(&servers).zip(creds) {
            match d.result {
                Ok((client, tools)) => {
                    out.servers
                        .insert(server.name.clone(), (server.url.clone(), cred));
                    for tool in tools {
                        let exposed = oma_mcp::exposed_name(&server.name, &tool.name);
                        // Names that only differ in characters a tool name cannot hold would
                        // collide; the model APIs refuse duplicates, so the first one stays.
                        if out.tools.iter().any(|t| t.exposed == exposed) {
                            refs.silent(
                                "an MCP tool name collides after sanitising",
                                format!("`{}` of `{}` is not offered", tool.name, server.name),
                            );
                            continue;
                        }
                        if let Some(ask) = permission(&server.toolset, &tool.name) {
                            out.tools.push(Exposed {
                                exposed,
                                server: server.name.clone(),
                                tool,
                                ask,
                            });
                        }
                    }
                    out.clients.insert(server.name.clone(), client);
                }
                Err(e) => {
                    let kind = if e.is_auth() {
                        "mcp_authentication_failed_error"
                    } else {
                        "mcp_connection_failed_error"
                    };
                    tracing::warn!(op = "mcp_connect", session_id = %refs.session, mcp_server = %server.name, error = %e, "MCP server unavailable");
                    let message = format!(
                        "MCP server `{}` is unavailable, the session continues without its tools: {e}",
                        server.name
                    );
                    errors.push(error_event(kind, &server.name, &message));
                }
            }
        }
        (out, errors)
    }

    /// The tools for the model request.
    pub(crate) fn specs(&self) -> Vec<ToolSpec> {
        self.tools
            .iter()
            .map(|t| ToolSpec {
                name: t.exposed.clone(),
                description: t.tool.description.clone(),
                input_schema: t.tool.input_schema.clone(),
            })
            .collect()
    }

    /// `agent.mcp_tool_use` for a model tool call, when `name` is one of these tools.
    pub(crate) fn tool_use(&self, name: &str, input: &Value) -> Option<NewEvent> {
        let t = self.tools.iter().find(|t| t.exposed == name)?;
        Some(tool_use_event(&t.server, &t.tool.name, input, t.ask))
    }

    /// Runs a call on its server: tool-result content and whether it is an error.
    /// A token the server refuses mid-turn (it expired, or was revoked) is refreshed once, the
    /// server reconnected with the new one and the call tried again.
    pub(crate) async fn call(
        &mut self,
        refs: &SessionRefs<'_>,
        server: &str,
        tool: &str,
        input: &Value,
    ) -> (Vec<Value>, bool) {
        let first = self.call_once(server, tool, input).await;
        match first {
            Err(e) if e.is_auth() => match self.reconnect(refs, server).await {
                true => render(server, tool, self.call_once(server, tool, input).await),
                false => render(server, tool, Err(e)),
            },
            other => render(server, tool, other),
        }
    }

    /// Refreshes the server's credential and reconnects with it. `false` when that is not
    /// possible (no refreshable credential, the refresh or the connection failed).
    async fn reconnect(&mut self, refs: &SessionRefs<'_>, server: &str) -> bool {
        let Ok(http) = http(refs.allow_private) else {
            return false;
        };
        let Some((url, Some(cred))) = self.servers.get_mut(server) else {
            return false;
        };
        let Some(token) = cred.refresh(refs, http).await else {
            return false;
        };
        cred.token.clone_from(&token);
        let config = ServerConfig {
            name: server.to_string(),
            url: url.clone(),
            bearer: Some(token),
        };
        match tokio::time::timeout(oma_mcp::DISCOVERY_TIMEOUT, oma_mcp::connect(http, &config))
            .await
        {
            Ok(Ok(client)) => {
                if let Some(old) = self.clients.insert(server.to_string(), client) {
                    tokio::spawn(old.close());
                }
                true
            }
            Ok(Err(e)) => {
                refs.silent(&format!("reconnecting to MCP server {server}"), e);
                false
            }
            Err(_) => false,
        }
    }

    async fn call_once(
        &self,
        server: &str,
        tool: &str,
        input: &Value,
    ) -> Result<oma_mcp::ToolOutput, McpError> {
        let Some(client) = self.clients.get(server) else {
            return Err(McpError::Connect(format!(
                "MCP server `{server}` is not connected"
            )));
        };
        let input = if input.is_object() {
            input.clone()
        } else {
            json!({})
        };
        client.call_tool(tool, input).await
    }

    /// Ends every MCP session (in the background: nothing waits on it).
    pub(crate) fn close(self) {
        for (_, c) in self.clients {
            tokio::spawn(c.close());
        }
    }
}

/// A call's outcome as tool-result content and whether it is an error.
fn render(
    server: &str,
    tool: &str,
    result: Result<oma_mcp::ToolOutput, McpError>,
) -> (Vec<Value>, bool) {
    match result {
        Ok(out) => (out.content, out.is_error),
        Err(e) => (
            vec![text(&format!(
                "The MCP server `{server}` failed to run `{tool}`: {e}"
            ))],
            true,
        ),
    }
}

/// `agent.mcp_tool_use`.
pub(crate) fn tool_use_event(server: &str, tool: &str, input: &Value, ask: bool) -> NewEvent {
    let (permission, evaluation) = if ask {
        ("ask", "always_ask")
    } else {
        ("allow", "always_allow")
    };
    let input = if input.is_object() {
        input.clone()
    } else {
        json!({})
    };
    event(
        "agent.mcp_tool_use",
        json!({
            "mcp_server_name": server,
            "name": tool,
            "input": input,
            "evaluated_permission": permission,
            "evaluation": {"type": evaluation},
            "session_thread_id": null,
        }),
    )
}

/// The result event for the tool use `id`: `agent.mcp_tool_result` when the log says it was an
/// MCP call, else `agent.tool_result`.
pub(crate) fn result_event(
    log: &[StoredEvent],
    id: &str,
    content: Vec<Value>,
    is_error: bool,
) -> NewEvent {
    if mcp_call(log, id).is_some() {
        event(
            "agent.mcp_tool_result",
            json!({"mcp_tool_use_id": id, "content": content, "is_error": is_error}),
        )
    } else {
        crate::record::tool_result(id, content, is_error)
    }
}

/// `(server, tool)` of the `agent.mcp_tool_use` event `id`.
pub(crate) fn mcp_call(log: &[StoredEvent], id: &str) -> Option<(String, String)> {
    let e = log
        .iter()
        .rev()
        .find(|e| e.id == id && e.kind == "agent.mcp_tool_use")?;
    let body: Value = serde_json::from_str(&e.body).ok()?;
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    Some((s("mcp_server_name")?, s("name")?))
}

/// The non-blocking `session.error` for a server (`retrying`: the connection is tried again
/// at the next turn).
fn error_event(kind: &str, server: &str, message: &str) -> NewEvent {
    event(
        "session.error",
        json!({"error": {
            "type": kind,
            "message": message,
            "mcp_server_name": server,
            "retry_status": {"type": "retrying"},
        }}),
    )
}

fn event(kind: &str, fields: Value) -> NewEvent {
    let map = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    NewEvent::new(kind, map)
}

fn text(s: &str) -> Value {
    json!({"type": "text", "text": s})
}

/// Why the environment's networking policy keeps MCP servers closed, if it does: `limited`
/// networking opens them only with `allow_mcp_servers`.
async fn networking_refusal(refs: &SessionRefs<'_>) -> Option<String> {
    let id = refs.environment_id?;
    match refs.store.environment(refs.tenant, id).await {
        Ok(env) => match env.spec.config {
            EnvironmentConfig::Cloud {
                networking:
                    CloudNetworking::Limited {
                        allow_mcp_servers: false,
                        ..
                    },
                ..
            } => Some(format!(
                "the environment `{id}` has limited networking without `allow_mcp_servers`, so MCP \
                 servers are not reachable from this session"
            )),
            _ => None,
        },
        Err(e) => {
            // Fail closed: without the policy there is no way to know the servers are allowed.
            tracing::warn!(op = "mcp_connect", session_id = %refs.session, error = %e, "reading the environment");
            Some(format!(
                "the environment's networking policy could not be read: {e}"
            ))
        }
    }
}

async fn vault_ids(refs: &SessionRefs<'_>) -> Vec<String> {
    match refs
        .store
        .session_runtime_view(refs.tenant, refs.session)
        .await
    {
        Ok((_, body)) => body
            .get("vault_ids")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Err(e) => {
            refs.silent("reading the session's vaults", &e);
            Vec::new()
        }
    }
}

/// A credential matched to a server, opened.
struct Matched {
    vault_id: String,
    credential_id: String,
    token: String,
    refresh: Option<oma_api::vaults::McpOAuthRefresh>,
}

/// The credential for `url` from the session's vaults: first vault in order, first match.
/// An expired `mcp_oauth` token is refreshed before use. `None`: connect without one.
async fn credential_for(
    refs: &SessionRefs<'_>,
    vault_ids: &[String],
    url: &str,
    http: &oma_mcp::HttpClient,
) -> Option<Matched> {
    let sealer = refs.sealer?;
    let want = normalize_url(url).ok()?;
    for vault in vault_ids {
        let creds = match refs.store.active_credentials(refs.tenant, vault).await {
            Ok(c) => c,
            Err(e) => {
                refs.silent(&format!("reading vault {vault}"), &e);
                continue;
            }
        };
        for (id, spec) in creds {
            let (server_url, expires_at, refresh) = match &spec.auth {
                CredentialAuth::McpOAuth {
                    mcp_server_url,
                    expires_at,
                    refresh,
                } => (mcp_server_url, expires_at.clone(), refresh.clone()),
                CredentialAuth::StaticBearer { mcp_server_url } => (mcp_server_url, None, None),
                CredentialAuth::EnvironmentVariable { .. } => continue,
            };
            if normalize_url(server_url).ok().as_deref() != Some(want.as_str()) {
                continue;
            }
            let secrets = match refs
                .store
                .open_credential_secrets(refs.tenant, vault, &id, sealer)
                .await
            {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(e) => {
                    refs.silent(&format!("opening credential {id}"), &e);
                    continue;
                }
            };
            let token = secrets.access_token.clone().or(secrets.token.clone())?;
            let mut m = Matched {
                vault_id: vault.clone(),
                credential_id: id,
                token,
                refresh,
            };
            if is_expired(expires_at.as_deref())
                && let Some(t) = m.refresh(refs, http).await
            {
                m.token = t;
            }
            return Some(m);
        }
    }
    None
}

fn refresh_request(
    r: &oma_api::vaults::McpOAuthRefresh,
    refresh_token: &str,
    secrets: &oma_core::credentials::CredentialSecrets,
) -> oma_mcp::oauth::RefreshRequest {
    use oma_mcp::oauth::ClientAuth;
    let secret = secrets.client_secret.clone().unwrap_or_default();
    oma_mcp::oauth::RefreshRequest {
        token_endpoint: r.token_endpoint.clone(),
        client_id: r.client_id.clone(),
        refresh_token: refresh_token.to_string(),
        auth: match r.token_endpoint_auth {
            TokenEndpointAuth::None => ClientAuth::None,
            TokenEndpointAuth::ClientSecretBasic => ClientAuth::Basic(secret),
            TokenEndpointAuth::ClientSecretPost => ClientAuth::Post(secret),
        },
        scope: r.scope.clone(),
        resource: r.resource.clone(),
    }
}

fn is_expired(expires_at: Option<&str>) -> bool {
    let Some(at) = expires_at else {
        return false;
    };
    match oma_core::time::parse_micros(at) {
        Some(t) => t <= oma_core::time::now_micros(),
        None => false,
    }
}

impl Matched {
    /// A fresh token for this credential, or `None` when there is none to be had.
    async fn refresh(&self, refs: &SessionRefs<'_>, http: &oma_mcp::HttpClient) -> Option<String> {
        let config = self.refresh.as_ref()?;
        let sealer = refs.sealer?;
        let cred = StoredCredential {
            store: refs.store,
            tenant: refs.tenant,
            vault_id: &self.vault_id,
            credential_id: &self.credential_id,
            sealer,
        };
        match cred.refresh(config, Some(&self.token), http).await {
            Ok(Refreshed::Newer(t)) => Some(t),
            Ok(Refreshed::Attempted(oma_mcp::oauth::RefreshOutcome::Succeeded(t))) => {
                Some(t.access_token)
            }
            Ok(Refreshed::Attempted(other)) => {
                let outcome = match other {
                    oma_mcp::oauth::RefreshOutcome::Failed(r) => format!("HTTP {}", r.status_code),
                    oma_mcp::oauth::RefreshOutcome::ConnectError(e) => e,
                    oma_mcp::oauth::RefreshOutcome::Succeeded(_) => String::new(),
                };
                let what = format!("refreshing credential {}", self.credential_id);
                refs.silent(&what, outcome);
                None
            }
            Ok(Refreshed::NoRefreshToken) => None,
            Err(e) => {
                let what = format!("refreshing credential {}", self.credential_id);
                refs.silent(&what, &e);
                None
            }
        }
    }
}

/// A vault credential, for a refresh that writes its result back.
struct StoredCredential<'a> {
    store: &'a Store,
    tenant: &'a str,
    vault_id: &'a str,
    credential_id: &'a str,
    sealer: &'a Sealer,
}

/// How a refresh went.
enum Refreshed {
    /// Another writer (the egress proxy, another session) had already stored a newer token
    /// than the one that was refused: use it, no exchange needed.
    Newer(String),
    /// The token endpoint was asked; on success the new token is stored (or, when another
    /// refresh won the race, the winner's token is returned in its place).
    Attempted(oma_mcp::oauth::RefreshOutcome),
    NoRefreshToken,
}

impl StoredCredential<'_> {
    /// Refreshes the credential's token after `refused` was refused, writing the result back
    /// with compare-and-swap so that concurrent refreshes store one token (the loser re-reads
    /// and uses the winner's).
    async fn refresh(
        &self,
        config: &oma_api::vaults::McpOAuthRefresh,
        refused: Option<&str>,
        http: &oma_mcp::HttpClient,
    ) -> Result<Refreshed, oma_store::StoreError> {
        use oma_mcp::oauth::RefreshOutcome;
        let Some((secrets, version)) = self.open().await? else {
            return Ok(Refreshed::NoRefreshToken);
        };
        if let Some(current) = &secrets.access_token
            && refused.is_some_and(|r| r != current)
        {
            return Ok(Refreshed::Newer(current.clone()));
        }
        let Some(rt) = &secrets.refresh_token else {
            return Ok(Refreshed::NoRefreshToken);
        };
        let outcome = oma_mcp::oauth::refresh(http, &refresh_request(config, rt, &secrets)).await;
        let RefreshOutcome::Succeeded(mut tokens) = outcome else {
            return Ok(Refreshed::Attempted(outcome));
        };
        let mut next = secrets.clone();
        next.access_token = Some(tokens.access_token.clone());
        if let Some(r) = &tokens.refresh_token {
            next.refresh_token = Some(r.clone());
        }
        // A few seconds short of the endpoint's lifetime, so the token is renewed in time.
        let expires_at = tokens.expires_in.filter(|s| *s > 5).map(|s| {
            oma_core::time::format_micros(oma_core::time::now_micros() + (s as i64 - 5) * 1_000_000)
        });
        let swapped = self
            .store
            .swap_credential_secrets(
                self.tenant,
                self.vault_id,
                self.credential_id,
                &version,
                &next,
                expires_at,
                self.sealer,
            )
            .await?;
        if !swapped
            && let Some((winner, _)) = self.open().await?
            && let Some(t) = winner.access_token
        {
            tokens.access_token = t;
        }
        Ok(Refreshed::Attempted(RefreshOutcome::Succeeded(tokens)))
    }

    async fn open(
        &self,
    ) -> Result<Option<(oma_core::credentials::CredentialSecrets, String)>, oma_store::StoreError>
    {
        self.store
            .open_credential_secrets_versioned(
                self.tenant,
                self.vault_id,
                self.credential_id,
                self.sealer,
            )
            .await
    }
}

/// `POST /v1/vaults/{vault_id}/credentials/{credential_id}/mcp_oauth_validate`: probes the
/// credential's MCP server with its token (`initialize`, `tools/list`); on a 401/403 tries the
/// refresh token once, stores the new token and probes again. Returns the
/// `vault_credential_validation` object.
pub async fn validate_credential(
    store: &Store,
    tenant: &str,
    vault_id: &str,
    credential_id: &str,
    sealer: &Sealer,
    allow_private: bool,
) -> Result<Value, oma_store::StoreError> {
    use oma_mcp::oauth::RefreshOutcome;
    let body = store
        .get_credential(tenant, vault_id, credential_id)
        .await?;
    let credential: oma_api::vaults::Credential = serde_json::from_str(&body)
        .map_err(|e| oma_store::StoreError::Corrupt(format!("credential: {e}")))?;
    let (url, refresh_config) = match &credential.auth {
        CredentialAuth::McpOAuth {
            mcp_server_url,
            refresh,
            ..
        } => (mcp_server_url.clone(), refresh.clone()),
        CredentialAuth::StaticBearer { mcp_server_url } => (mcp_server_url.clone(), None),
        CredentialAuth::EnvironmentVariable { .. } => {
            return Err(oma_core::Error::invalid(
                "only MCP credentials (`mcp_oauth`, `static_bearer`) can be validated against an MCP server",
            )
            .into());
        }
    };
    let secrets = store
        .open_credential_secrets(tenant, vault_id, credential_id, sealer)
        .await?
        .unwrap_or_default();
    let token = secrets.access_token.clone().or(secrets.token.clone());
    let has_refresh_token = secrets.refresh_token.is_some() && refresh_config.is_some();
    let verdict = |status: &str, probe: Option<&oma_mcp::probe::ProbeFailure>, refresh: Value| {
        json!({
            "type": "vault_credential_validation",
            "credential_id": credential_id,
            "vault_id": vault_id,
            "status": status,
            "has_refresh_token": has_refresh_token,
            "mcp_probe": probe.map(|p| json!({"method": p.method, "http_response": p.http_response})),
            "refresh": refresh,
            "validated_at": oma_core::time::format_micros(oma_core::time::now_micros()),
        })
    };
    let probe_status = |p: &oma_mcp::probe::ProbeFailure| {
        if p.is_transient() {
            "unknown"
        } else {
            "invalid"
        }
    };
    let http = match http(allow_private) {
        Ok(h) => h,
        Err(e) => return Err(oma_store::StoreError::Config(e.to_string())),
    };
    let failure = match oma_mcp::probe::probe(http, &url, token.as_deref()).await {
        Ok(_) => return Ok(verdict("valid", None, Value::Null)),
        Err(f) => f,
    };
    if !failure.is_auth() {
        return Ok(verdict(probe_status(&failure), Some(&failure), Value::Null));
    }
    let Some(config) = &refresh_config else {
        let refresh = json!({"status": "no_refresh_token", "http_response": null});
        return Ok(verdict("invalid", Some(&failure), refresh));
    };
    let cred = StoredCredential {
        store,
        tenant,
        vault_id,
        credential_id,
        sealer,
    };
    match cred.refresh(config, token.as_deref(), http).await? {
        Refreshed::NoRefreshToken => {
            let refresh = json!({"status": "no_refresh_token", "http_response": null});
            Ok(verdict("invalid", Some(&failure), refresh))
        }
        // Someone stored a newer token meanwhile: judge that one.
        Refreshed::Newer(t) => match oma_mcp::probe::probe(http, &url, Some(&t)).await {
            Ok(_) => Ok(verdict("valid", None, Value::Null)),
            Err(f) => Ok(verdict(probe_status(&f), Some(&f), Value::Null)),
        },
        Refreshed::Attempted(RefreshOutcome::Succeeded(tokens)) => {
            let refresh = json!({"status": "succeeded", "http_response": null});
            match oma_mcp::probe::probe(http, &url, Some(&tokens.access_token)).await {
                Ok(_) => Ok(verdict("valid", None, refresh)),
                Err(f) => Ok(verdict(probe_status(&f), Some(&f), refresh)),
            }
        }
        Refreshed::Attempted(RefreshOutcome::Failed(r)) => {
            // A 4xx from the token endpoint means the grant is gone; a 5xx or 429 may pass.
            let status = if r.status_code >= 500 || r.status_code == 429 {
                "unknown"
            } else {
                "invalid"
            };
            let refresh = json!({"status": "failed", "http_response": r});
            Ok(verdict(status, Some(&failure), refresh))
        }
        Refreshed::Attempted(RefreshOutcome::ConnectError(_)) => {
            let refresh = json!({"status": "connect_error", "http_response": null});
            Ok(verdict("unknown", Some(&failure), refresh))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> Value {
        json!({
            "tools": [
                {"type": "mcp_toolset", "mcp_server_name": "gh", "configs": [
                    {"name": "read", "enabled": true, "permission_policy": {"type": "always_allow"}},
                    {"name": "nuke", "enabled": false, "permission_policy": {"type": "always_ask"}},
                ], "default_config": {"enabled": true, "permission_policy": {"type": "always_ask"}}},
            ],
            "mcp_servers": [
                {"type": "url", "name": "gh", "url": "https://mcp.example.com/gh"},
                {"type": "url", "name": "orphan", "url": "https://mcp.example.com/o"},
            ],
        })
    }

    #[test]
    fn servers_need_a_toolset_and_policies_resolve_per_tool() {
        let d = declared(&agent());
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].name, "gh");
        assert_eq!(permission(&d[0].toolset, "read"), Some(false));
        assert_eq!(permission(&d[0].toolset, "write"), Some(true));
        assert_eq!(permission(&d[0].toolset, "nuke"), None);
    }

    #[test]
    fn results_follow_the_kind_of_their_use() {
        let use_ev = tool_use_event("gh", "read", &json!({"q": 1}), true);
        assert_eq!(use_ev.body["evaluated_permission"], "ask");
        assert_eq!(use_ev.body["mcp_server_name"], "gh");
        let log = vec![StoredEvent {
            seq: 1,
            id: use_ev.id.clone(),
            kind: use_ev.kind.clone(),
            thread_id: None,
            body: use_ev.body.to_string(),
        }];
        assert_eq!(
            mcp_call(&log, &use_ev.id),
            Some(("gh".to_string(), "read".to_string()))
        );
        let r = result_event(&log, &use_ev.id, vec![text("ok")], false);
        assert_eq!(r.kind, "agent.mcp_tool_result");
        assert_eq!(r.body["mcp_tool_use_id"], use_ev.id.as_str());
        assert_eq!(
            result_event(&log, "other", vec![], true).kind,
            "agent.tool_result"
        );
    }
}
