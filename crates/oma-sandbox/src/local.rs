//! The `local` backend: the agent runs as a plain child process in the session's workspace
//! folder on the host.
//!
//! **There is no isolation.** Tools can read and write anything the server's user can, and
//! reach the network directly. What the backend does guarantee: the agent starts with a clean
//! environment (never the server's, which holds secrets), in its own session so every process
//! it starts is torn down with it, and with exactly the same agent code and protocol as an
//! isolated box. Choose it for development or for hosts that are themselves disposable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::conn::AgentProcess;
use crate::{
    BoxInfo, BoxProcess, BoxSpec, ProcessSpec, Sandbox, SandboxError, SandboxLauncher, ToolCall,
    ToolOutcome,
};

/// `PATH` when the server has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// `LANG` when the server has none: UTF-8 output from tools.
const DEFAULT_LANG: &str = "C.UTF-8";

/// Launches `local` boxes by running `<agent_exe> sandbox-agent` in the workspace folder, with
/// a clean environment. The agent makes itself a session (and process group) leader at start,
/// so the box's processes can all be found and killed: on `shutdown`, when the box is
/// dropped, and when the agent dies.
#[derive(Debug, Clone)]
pub struct LocalLauncher {
    agent_exe: PathBuf,
}

impl LocalLauncher {
    /// `agent_exe` is normally `std::env::current_exe()`: the `oma` binary, whose hidden
    /// `sandbox-agent` subcommand is the agent.
    pub fn new(agent_exe: PathBuf) -> Self {
        LocalLauncher { agent_exe }
    }

    async fn launch_local(&self, spec: BoxSpec) -> Result<Arc<dyn Sandbox>, SandboxError> {
        for (name, _) in &spec.env {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(SandboxError::Launch(format!(
                    "invalid environment variable name {name:?}"
                )));
            }
        }
        tokio::fs::create_dir_all(&spec.workspace)
            .await
            .map_err(|e| {
                SandboxError::Launch(format!(
                    "cannot create the workspace {}: {e}",
                    spec.workspace.display()
                ))
            })?;
        let workspace = tokio::fs::canonicalize(&spec.workspace)
            .await
            .map_err(|e| {
                SandboxError::Launch(format!("workspace {}: {e}", spec.workspace.display()))
            })?;

        let cmd = agent_command(&self.agent_exe, &workspace, &spec.env);
        let process = AgentProcess::spawn(cmd, true).await?;
        tracing::info!(
            session_id = %spec.session_id,
            workspace = %workspace.display(),
            agent_pid = process.pid(),
            "started a local sandbox (no isolation)"
        );
        Ok(Arc::new(LocalSandbox {
            session_id: spec.session_id,
            workspace,
            process,
        }))
    }
}

/// The agent's command line and its whole environment.
fn agent_command(agent_exe: &Path, workspace: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(agent_exe);
    cmd.arg("sandbox-agent").current_dir(workspace).env_clear();
    // Only these come from the host, and none of them is a secret. `PATH` is kept so the
    // tools the operator installed are found.
    cmd.env(
        "PATH",
        std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
    )
    .env("HOME", workspace)
    .env(
        "LANG",
        std::env::var_os("LANG").unwrap_or_else(|| DEFAULT_LANG.into()),
    )
    .env("TERM", "dumb");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

impl SandboxLauncher for LocalLauncher {
    fn launch(&self, spec: BoxSpec) -> BoxFuture<'_, Result<Arc<dyn Sandbox>, SandboxError>> {
        Box::pin(self.launch_local(spec))
    }
}

/// A running `local` box.
pub struct LocalSandbox {
    session_id: String,
    workspace: PathBuf,
    process: AgentProcess,
}

impl Sandbox for LocalSandbox {
    fn call(
        &self,
        call: ToolCall,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<ToolOutcome, SandboxError>> {
        Box::pin(self.process.call(call, cancel))
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.process.shutdown())
    }

    fn info(&self) -> BoxInfo {
        let hello = self.process.hello();
        BoxInfo {
            backend: "local",
            isolated: false,
            session_id: self.session_id.clone(),
            workspace: self.workspace.clone(),
            box_workspace: hello.workspace.clone(),
            agent_version: hello.version.clone(),
            agent_pid: self.process.pid(),
        }
    }

    fn failure(&self) -> Option<SandboxError> {
        self.process.failure()
    }

    fn spawn_process(&self, spec: ProcessSpec) -> BoxFuture<'_, Result<BoxProcess, SandboxError>> {
        Box::pin(self.process.spawn_process(spec))
    }
}
