//! `stdio` MCP servers (an oma extension): the server is a process started inside the
//! session's box by the in-box agent, and the MCP client speaks newline-delimited JSON-RPC to
//! its stdin and stdout through the agent's channel. It sees the box's files, environment and
//! network (the egress proxy), never the host's.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use oma_mcp::{McpClient, McpError, McpTool, ToolOutput};
use oma_sandbox::{BoxProcess, ProcessExited, ProcessGuard, ProcessSpec, Sandbox};
use serde_json::Value;

/// How long a server that failed to start is given to report its exit (for its stderr).
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// A connected in-box server: the MCP client and the process it talks to, which lives as
/// long as this does.
struct InBox {
    client: Box<dyn McpClient>,
    exited: ProcessExited,
    _guard: ProcessGuard,
}

/// Starts `command args…` in the box and connects to it.
pub(super) async fn start(
    sandbox: &dyn Sandbox,
    name: &str,
    command: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
) -> Result<Box<dyn McpClient>, McpError> {
    let spec = ProcessSpec {
        command: std::iter::once(command.to_string())
            .chain(args.iter().cloned())
            .collect(),
        env: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        cwd: None,
    };
    let BoxProcess {
        stdin,
        stdout,
        exited,
        guard,
    } = sandbox
        .spawn_process(spec)
        .await
        .map_err(|e| McpError::Connect(format!("starting `{command}` in the box: {e}")))?;
    match oma_mcp::connect_stream(name, stdout, stdin).await {
        Ok(client) => Ok(Box::new(InBox {
            client,
            exited,
            _guard: guard,
        })),
        Err(e) => Err(with_exit(e, &exited, command).await),
    }
}

/// A failed connection explained by the process's exit, when it exited (a missing script, a
/// crash at import): its status and the end of its stderr say more than a closed pipe.
async fn with_exit(e: McpError, exited: &ProcessExited, command: &str) -> McpError {
    match tokio::time::timeout(EXIT_GRACE, exited.wait()).await {
        Ok(Ok(exit)) => McpError::Connect(format!("`{command}` in the box ended: {exit}")),
        _ => e,
    }
}

impl McpClient for InBox {
    fn list_tools(&self) -> BoxFuture<'_, Result<Vec<McpTool>, McpError>> {
        self.client.list_tools()
    }

    fn call_tool<'a>(
        &'a self,
        name: &'a str,
        arguments: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, McpError>> {
        self.client.call_tool(name, arguments)
    }

    fn is_alive(&self) -> bool {
        self.exited.try_get().is_none()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        let InBox { client, _guard, .. } = *self;
        // The process is killed once the client said goodbye.
        async move {
            client.close().await;
            drop(_guard);
        }
        .boxed()
    }
}
