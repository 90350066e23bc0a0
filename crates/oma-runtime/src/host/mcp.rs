//! The host's side of MCP servers (see `crate::mcp`): connect at the start of a turn, record
//! the failures, run confirmed calls.

use std::time::Instant;

use oma_core::events::NewEvent;
use oma_store::runtime::Step;
use serde_json::Value;

use super::{HostResult, SessionHost};
use crate::mcp::{McpTools, SessionRefs};

impl SessionHost {
    /// Connects to the agent's MCP servers for this turn (closing the previous turn's), and
    /// records a non-blocking `session.error` for each server that failed.
    pub(super) async fn connect_mcp(&mut self) -> HostResult<()> {
        std::mem::take(&mut self.mcp).close();
        if crate::mcp::declared(&self.agent).is_empty() {
            return Ok(());
        }
        let (tools, errors) = McpTools::connect(SessionRefs {
            store: &self.store,
            tenant: &self.tenant,
            session: &self.session,
            agent: &self.agent,
            environment_id: self.environment_id.as_deref(),
            sealer: self.rt.inner().providers.sealer(),
            allow_private: self.rt.inner().config.mcp_private_hosts,
            ops: self.rt.ops(),
        })
        .await;
        self.mcp = tools;
        if !errors.is_empty() {
            self.commit(Step {
                events: errors,
                ..Step::default()
            })
            .await?;
        }
        Ok(())
    }

    /// Runs an MCP call the log recorded as `agent.mcp_tool_use` on `server`.
    pub(super) async fn run_mcp_tool(
        &mut self,
        server: &str,
        tool: &str,
        input: &Value,
    ) -> (Vec<Value>, bool) {
        let started = Instant::now();
        let refs = SessionRefs {
            store: &self.store,
            tenant: &self.tenant,
            session: &self.session,
            agent: &self.agent,
            environment_id: self.environment_id.as_deref(),
            sealer: self.rt.inner().providers.sealer(),
            allow_private: self.rt.inner().config.mcp_private_hosts,
            ops: self.rt.ops(),
        };
        let (content, is_error) = self.mcp.call(&refs, server, tool, input).await;
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
