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
//! Where the servers are:
//! - `url` servers are reached through the session's egress proxy, like everything else the
//!   session sends out: the environment's networking policy (`allow_mcp_servers`) and the
//!   operator's allow and deny rules apply, and the proxy adds the credential of the
//!   session's vaults (matched by URL), refreshing an `mcp_oauth` token the server refuses.
//!   The token never reaches the runtime, the model, the log or the box.
//! - `stdio` servers (an oma extension) run inside the session's box, started through the
//!   in-box agent; their network traffic is the box's, so it meets the same proxy.

mod stdio;
mod validate;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use oma_api::agents::{McpServer, McpToolset, PermissionPolicy};
use oma_core::events::NewEvent;
use oma_mcp::{McpClient, McpError, McpTool, ServerConfig};
use oma_model::types::ToolSpec;
use oma_sandbox::Sandbox;
use oma_store::events::StoredEvent;

pub use validate::CredentialRef;

/// A server the agent declares and an `mcp_toolset` references.
#[derive(Debug, Clone)]
pub(crate) struct Declared {
    pub server: McpServer,
    pub toolset: McpToolset,
}

impl Declared {
    pub fn name(&self) -> &str {
        self.server.name()
    }
}

/// One tool as the model sees it.
#[derive(Debug, Clone)]
struct Exposed {
    exposed: String,
    server: String,
    tool: McpTool,
    policy: PermissionPolicy,
}

/// The connected servers of a turn and their tools.
#[derive(Default)]
pub(crate) struct McpTools {
    clients: HashMap<String, Box<dyn McpClient>>,
    tools: Vec<Exposed>,
    /// How each connected `stdio` server was declared: an unchanged one whose process still
    /// runs is kept for the next turn (its start may take seconds, and it may hold state).
    stdio: HashMap<String, McpServer>,
    /// What connecting left out without telling the user (tools whose names collide), for
    /// the host to record as silent catches.
    pub dropped: Vec<String>,
}

/// How the session reaches its servers.
pub(crate) struct Reach {
    /// The MCP HTTP client through the session's egress proxy, or why there is none.
    pub http: Result<oma_mcp::HttpClient, String>,
    /// `url` servers the proxy refuses (by name), with its reason: checked before connecting,
    /// so that the proxy's refusal is not taken for the server's own 403.
    pub refused: HashMap<String, String>,
    /// The session's box, for `stdio` servers (`None` when the agent declares none), or why
    /// it could not start.
    pub sandbox: Option<Result<Arc<dyn Sandbox>, String>>,
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
            let server: McpServer = serde_json::from_value(s.clone()).ok()?;
            let toolset = toolsets
                .iter()
                .find(|t| t.mcp_server_name == server.name())?
                .clone();
            Some(Declared { server, toolset })
        })
        .collect()
}

/// The permission policy of a tool, or `None` when the tool is disabled.
fn permission(toolset: &McpToolset, tool: &str) -> Option<PermissionPolicy> {
    let (enabled, policy) = match toolset.configs.iter().find(|c| c.name == tool) {
        Some(c) => (c.enabled, c.permission_policy),
        None => (
            toolset.default_config.enabled,
            toolset.default_config.permission_policy,
        ),
    };
    enabled.then_some(policy)
}

/// Connects to one server (or takes `kept`, its live connection of the last turn) and lists
/// its tools, bounded by the discovery timeout.
async fn discover_one(
    server: &McpServer,
    reach: &Reach,
    kept: Option<Box<dyn McpClient>>,
) -> Result<(Box<dyn McpClient>, Vec<McpTool>), McpError> {
    let work = async {
        let client = match kept {
            Some(client) => client,
            None => connect_one(server, reach).await?,
        };
        match client.list_tools().await {
            Ok(tools) => Ok((client, tools)),
            Err(e) => {
                client.close().await;
                Err(e)
            }
        }
    };
    match tokio::time::timeout(oma_mcp::DISCOVERY_TIMEOUT, work).await {
        Ok(r) => r,
        Err(_) => Err(McpError::Timeout(oma_mcp::DISCOVERY_TIMEOUT)),
    }
}

async fn connect_one(server: &McpServer, reach: &Reach) -> Result<Box<dyn McpClient>, McpError> {
    let client = match server {
        McpServer::Url { name, url } => {
            let http = reach
                .http
                .as_ref()
                .map_err(|why| McpError::Connect(why.clone()))?;
            if let Some(why) = reach.refused.get(name) {
                return Err(McpError::Connect(format!(
                    "the session's egress proxy refuses it: {why}"
                )));
            }
            let config = ServerConfig {
                name: name.clone(),
                url: url.clone(),
                bearer: None,
            };
            oma_mcp::connect(http, &config).await?
        }
        McpServer::Stdio {
            name,
            command,
            args,
            env,
        } => {
            let sandbox = match &reach.sandbox {
                Some(Ok(sb)) => sb.clone(),
                Some(Err(why)) => return Err(McpError::Connect(why.clone())),
                None => return Err(McpError::Connect("the session has no box".into())),
            };
            crate::mcp::stdio::start(sandbox.as_ref(), name, command, args, env).await?
        }
    };
    Ok(client)
}

impl McpTools {
    /// Connects to `servers` (all at once, each bounded). Returns the tools and the
    /// `session.error` events of the servers that failed, and logs what it drops.
    pub(crate) async fn connect(
        servers: &[Declared],
        reach: &Reach,
        session: &str,
        mut kept: HashMap<String, Box<dyn McpClient>>,
    ) -> (McpTools, Vec<NewEvent>) {
        let found = futures::future::join_all(
            servers
                .iter()
                .map(|d| discover_one(&d.server, reach, kept.remove(d.name()))),
        )
        .await;
        let mut out = McpTools::default();
        let mut errors = Vec::new();
        for (result, server) in found.into_iter().zip(servers) {
            let name = server.name();
            match result {
                Ok((client, tools)) => {
                    for tool in tools {
                        let exposed = oma_mcp::exposed_name(name, &tool.name);
                        // Names that only differ in characters a tool name cannot hold would
                        // collide; the model APIs refuse duplicates, so the first one stays.
                        if out.tools.iter().any(|t| t.exposed == exposed) {
                            out.dropped.push(format!(
                                "`{}` of MCP server `{name}` is not offered: its name collides \
                                 with another tool's after sanitising",
                                tool.name
                            ));
                            continue;
                        }
                        if let Some(policy) = permission(&server.toolset, &tool.name) {
                            out.tools.push(Exposed {
                                exposed,
                                server: name.to_string(),
                                tool,
                                policy,
                            });
                        }
                    }
                    out.clients.insert(name.to_string(), client);
                    if matches!(server.server, McpServer::Stdio { .. }) {
                        out.stdio.insert(name.to_string(), server.server.clone());
                    }
                }
                Err(e) => {
                    let kind = if e.is_auth() {
                        "mcp_authentication_failed_error"
                    } else {
                        "mcp_connection_failed_error"
                    };
                    tracing::warn!(op = "mcp_connect", session_id = %session, mcp_server = %name, error = %e, "MCP server unavailable");
                    let message = format!(
                        "MCP server `{name}` is unavailable, the session continues without its tools: {e}"
                    );
                    errors.push(error_event(kind, name, &message));
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
        let evaluated = crate::permission::evaluate_mcp(t.policy, t.tool.read_only);
        Some(tool_use_event(&t.server, &t.tool.name, input, &evaluated))
    }

    /// Runs a call on its server: tool-result content and whether it is an error. (A token
    /// the server refuses is refreshed and the request retried by the egress proxy.)
    pub(crate) async fn call(&self, server: &str, tool: &str, input: &Value) -> (Vec<Value>, bool) {
        let Some(client) = self.clients.get(server) else {
            let e = McpError::Connect(format!("MCP server `{server}` is not connected"));
            return render(server, tool, Err(e));
        };
        let input = if input.is_object() {
            input.clone()
        } else {
            json!({})
        };
        render(server, tool, client.call_tool(tool, input).await)
    }

    /// Takes out the `stdio` servers that `servers` declares as before and whose process still
    /// runs, to be used again; the rest stays here (to be closed).
    pub(crate) fn keep_for(&mut self, servers: &[Declared]) -> HashMap<String, Box<dyn McpClient>> {
        let mut kept = HashMap::new();
        for d in servers {
            let name = d.name();
            let unchanged = self.stdio.get(name) == Some(&d.server);
            let alive = self.clients.get(name).is_some_and(|c| c.is_alive());
            if unchanged
                && alive
                && let Some(client) = self.clients.remove(name)
            {
                kept.insert(name.to_string(), client);
            }
        }
        kept
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
pub(crate) fn tool_use_event(
    server: &str,
    tool: &str,
    input: &Value,
    evaluated: &crate::permission::Evaluated,
) -> NewEvent {
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
            "evaluated_permission": evaluated.permission(),
            "evaluation": evaluated.evaluation(),
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
        assert_eq!(d[0].name(), "gh");
        assert_eq!(
            permission(&d[0].toolset, "read"),
            Some(PermissionPolicy::AlwaysAllow)
        );
        assert_eq!(
            permission(&d[0].toolset, "write"),
            Some(PermissionPolicy::AlwaysAsk)
        );
        assert_eq!(permission(&d[0].toolset, "nuke"), None);
    }

    #[test]
    fn results_follow_the_kind_of_their_use() {
        let ask = crate::permission::Evaluated::Ask { auto: false };
        let use_ev = tool_use_event("gh", "read", &json!({"q": 1}), &ask);
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
