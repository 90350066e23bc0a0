//! The host's side of MCP servers (see `crate::mcp`): connect at the start of a turn, record
//! the failures, run confirmed calls.

use std::collections::HashMap;
use std::time::Instant;

use oma_api::agents::McpServer;
use oma_core::events::NewEvent;
use oma_store::runtime::Step;
use serde_json::Value;

use super::{HostResult, SessionHost};
use crate::mcp::{McpTools, Reach};

impl SessionHost {
    /// Whether the agent declares a `stdio` MCP server (it runs in the session's box).
    pub(super) fn has_stdio_mcp_servers(&self) -> bool {
        crate::mcp::declared(&self.agent)
            .iter()
            .any(|d| matches!(d.server, McpServer::Stdio { .. }))
    }

    /// Connects to the agent's MCP servers for this turn (closing the previous turn's, except
    /// unchanged `stdio` servers still running in the box), and records a non-blocking
    /// `session.error` for each server that failed.
    pub(super) async fn connect_mcp(&mut self) -> HostResult<()> {
        let servers = crate::mcp::declared(&self.agent);
        let mut previous = std::mem::take(&mut self.mcp);
        let kept = previous.keep_for(&servers);
        previous.close();
        if servers.is_empty() {
            return Ok(());
        }
        let wants = |stdio: bool| {
            servers
                .iter()
                .any(|d| matches!(d.server, McpServer::Stdio { .. }) == stdio)
        };
        let http = match wants(false) {
            true => self.mcp_http().await,
            false => Err("no `url` server is declared".to_string()),
        };
        let refused = match (&http, &self.egress) {
            (Ok(_), Some(proxy)) => refusals(proxy, &servers).await,
            _ => HashMap::new(),
        };
        let sandbox = match wants(true) {
            // A self-hosted session has no box here: its tools run on the worker's machine.
            true if self.self_hosted => Some(Err(
                "stdio MCP servers run in the session's sandbox, which a self_hosted environment \
                 does not have on this server; declare a `url` server instead"
                    .to_string(),
            )),
            true => Some(self.sandbox().await),
            false => None,
        };
        let reach = Reach {
            http,
            refused,
            sandbox,
        };
        let (mut tools, mut errors) =
            McpTools::connect(&servers, &reach, &self.session, kept).await;
        for note in std::mem::take(&mut tools.dropped) {
            tracing::warn!(op = "mcp_connect", session_id = %self.session, "{note}");
            self.ops_silent("runtime.mcp", note);
        }
        self.mcp = tools;
        // A box that could not start for a stdio server says why now, not at a later call.
        errors.append(&mut self.box_events);
        if !errors.is_empty() {
            self.commit(Step {
                events: errors,
                ..Step::default()
            })
            .await?;
        }
        Ok(())
    }

    /// The MCP HTTP client of this session: through its egress proxy, so that the networking
    /// policy, the operator's rules and the vault credentials apply to MCP traffic too.
    async fn mcp_http(&mut self) -> Result<oma_mcp::HttpClient, String> {
        if self.mcp_http.is_none() {
            match self.egress().await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(
                        "MCP servers are reached through the session's egress proxy, \
                                and this server runs without one"
                            .to_string(),
                    );
                }
                Err(e) => return Err(e),
            }
        }
        self.mcp_http
            .clone()
            .ok_or_else(|| "the session's egress proxy has no door for MCP traffic".to_string())
    }

    /// Runs an MCP call the log recorded as `agent.mcp_tool_use` on `server`.
    pub(super) async fn run_mcp_tool(
        &mut self,
        server: &str,
        tool: &str,
        input: &Value,
    ) -> (Vec<Value>, bool) {
        let started = Instant::now();
        let (content, is_error) = self.mcp.call(server, tool, input).await;
        let name = oma_mcp::exposed_name(server, tool);
        tracing::info!(
            op = "tool_call",
            session_id = %self.session,
            tool = %name,
            is_error,
            duration_ms = started.elapsed().as_millis() as u64,
            "MCP tool call finished"
        );
        self.ops_tool_call(&name, is_error, started);
        crate::metrics::tool_call(&name, is_error, started.elapsed());
        (content, is_error)
    }

    /// The result event for tool use `id` (`agent.mcp_tool_result` for MCP calls).
    pub(super) fn result_for(&self, id: &str, content: Vec<Value>, is_error: bool) -> NewEvent {
        crate::mcp::result_event(self.log.as_deref().unwrap_or(&[]), id, content, is_error)
    }
}

/// The `url` servers `proxy` refuses, by name, with its reason.
async fn refusals(
    proxy: &oma_egress::SessionProxy,
    servers: &[crate::mcp::Declared],
) -> HashMap<String, String> {
    let mut refused = HashMap::new();
    for d in servers {
        if let McpServer::Url { name, url } = &d.server
            && let Err(why) = proxy.check_url(url).await
        {
            refused.insert(name.clone(), why);
        }
    }
    refused
}
