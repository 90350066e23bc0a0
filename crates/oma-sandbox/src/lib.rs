//! Per-session sandboxes ("boxes").
//!
//! A box is long-lived: one per session, created when the session first needs a tool and kept
//! until the session ends. Its first process is the in-box agent ([`agent`], the hidden
//! `oma sandbox-agent` subcommand), which runs the built-in tools itself with the box's own
//! view of the filesystem: `bash` in one persistent shell, `read`, `write`, `edit`, `glob`,
//! `grep`. The host talks to it over a framed channel on the agent's stdin/stdout
//! ([`protocol`]), so a tool call is an RPC, not a process start. The same channel relays
//! the stdin and stdout of long-lived processes the host opens in the box ([`process`]).
//!
//! The runtime only sees the object-safe [`Sandbox`] and [`SandboxLauncher`] traits. This crate
//! ships the `local` backend ([`LocalLauncher`]: a workspace folder on the host, **no
//! isolation**); an isolated backend wraps the same agent in bubblewrap and plugs in behind
//! the same traits.

pub mod agent;
mod conn;
pub mod error;
pub mod harden;
mod isolated;
mod local;
pub mod process;
mod procs;
pub mod protocol;
pub mod snapshot;

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;

pub use error::{ExitInfo, SandboxError};
pub use isolated::{
    IsolatedConfig, IsolatedLauncher, IsolatedSandbox, PackageLayer, PoolConfig, PoolMount,
    Preflight, detach_workspace, remount_workspace,
};
pub use local::{LocalLauncher, LocalSandbox};
pub use process::{BoxProcess, ProcessExit, ProcessExited, ProcessGuard, ProcessSpec};
pub use protocol::{OutputBlock, ToolCall, ToolOutcome};
pub use tokio_util::sync::CancellationToken;

/// Limits the agent applies; tool descriptions quote them.
pub mod limits {
    /// `bash` timeout when the call gives none (or 0).
    pub const BASH_DEFAULT_TIMEOUT_MS: u64 = 120_000;
    /// Longest `bash` timeout a call may ask for; longer requests are clamped (and told so).
    pub const BASH_MAX_TIMEOUT_MS: u64 = 600_000;
    /// `bash` output returned to the model: the tail, at most this many bytes. Longer output
    /// is written whole to a file under [`SPILL_DIR`] and the result says where.
    pub const BASH_OUTPUT_CAP: usize = 100 * 1024;
    /// Where over-long outputs go, relative to the workspace root.
    pub const SPILL_DIR: &str = ".oma/outputs";
    /// Text returned by one `read`, in bytes.
    pub const READ_TEXT_CAP: usize = 256 * 1024;
    /// Largest image `read` returns, raw: the model API's per-image limit applies to the
    /// base64 form (5 MiB), which is 4/3 of the raw size.
    pub const READ_IMAGE_CAP: u64 = 5 * 1024 * 1024 / 4 * 3;
    /// Largest PDF `read` returns.
    pub const READ_PDF_CAP: u64 = 20 * 1024 * 1024;
    /// Largest file `edit` loads.
    pub const EDIT_CAP: u64 = 16 * 1024 * 1024;
    /// Paths one `glob` returns.
    pub const GLOB_LIMIT: usize = 200;
    /// Matching lines one `grep` returns.
    pub const GREP_MATCH_LIMIT: usize = 500;
    /// Bytes of one `grep`'s output.
    pub const GREP_OUTPUT_CAP: usize = 100 * 1024;
}

/// What a launcher needs to start a box.
#[derive(Debug, Clone, Default)]
pub struct BoxSpec {
    /// The session the box belongs to (for logs and naming).
    pub session_id: String,
    /// The host folder that becomes the box's workspace; created if missing.
    pub workspace: PathBuf,
    /// Extra environment variables for the box. Nothing else of the server's environment
    /// reaches it.
    pub env: Vec<(String, String)>,
    /// Host folders the box sees at fixed paths (skills, memory stores, uploads, outputs,
    /// environment package layers). Only the isolated backend can place them at `target`; the
    /// `local` backend has no private view of the filesystem and ignores them.
    pub mounts: Vec<Mount>,
    /// Resource limits (from the environment's instance type). Enforced by the isolated
    /// backend; `local` ignores them.
    pub limits: Limits,
    /// The session's way out (isolated backend): without it the box has no network at all.
    pub egress: Option<EgressSpec>,
}

/// How an isolated box reaches the network: the host's per-session egress proxy, listening
/// on a Unix socket that is bound into the box (the socket is the session's identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressSpec {
    /// The proxy's Unix socket on the host.
    pub socket: PathBuf,
    /// A PEM bundle (system roots plus the deployment CA that signs intercepted connections)
    /// the box trusts instead of the system bundle.
    pub ca_bundle: Option<PathBuf>,
}

/// An environment's package lists (spec: apt, cargo, gem, go, npm, pip), as the launcher
/// installs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageSet {
    pub apt: Vec<String>,
    pub cargo: Vec<String>,
    pub gem: Vec<String>,
    pub go: Vec<String>,
    pub npm: Vec<String>,
    pub pip: Vec<String>,
}

/// A host folder bound into the box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The folder on the host; must exist.
    pub source: PathBuf,
    /// Absolute path inside the box, e.g. `/mnt/memory/notes`.
    pub target: String,
    /// Whether tools in the box may write to it.
    pub writable: bool,
}

/// Resource limits of one box. `None` means no limit of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// CPU time, in thousandths of a CPU (1000 = one full core).
    pub millicpus: Option<u32>,
    /// Memory (and swap), in bytes, for every process of the box together.
    pub memory_bytes: Option<u64>,
    /// Processes and threads of the box together.
    pub pids: Option<u32>,
    /// Size of the workspace filesystem, in bytes.
    pub disk_bytes: Option<u64>,
}

/// A description of a running box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxInfo {
    /// `local`, or the isolated backend's name.
    pub backend: &'static str,
    /// Whether the box is a security boundary. `false` for `local`.
    pub isolated: bool,
    pub session_id: String,
    /// The workspace on the host.
    pub workspace: PathBuf,
    /// The workspace as tools inside the box see it (`/workspace` when isolated, the host
    /// path for `local`).
    pub box_workspace: String,
    /// Version of the agent binary running in the box.
    pub agent_version: String,
    /// The agent's (or its wrapper's) process id on the host.
    pub agent_pid: Option<u32>,
}

/// One running box. Calls may be issued concurrently: `bash` calls queue for the box's one
/// shell, other tools run in parallel.
pub trait Sandbox: Send + Sync {
    /// Runs one tool call. A tool that fails is an `Ok` outcome with `is_error: true`; an
    /// `Err` means the box itself failed ([`SandboxError::AgentDied`], …) or the call was
    /// cancelled through `cancel` ([`SandboxError::Cancelled`]; the agent aborts the work,
    /// killing bash's foreground job or stopping a search).
    fn call(
        &self,
        call: ToolCall,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<ToolOutcome, SandboxError>>;

    /// Stops every process of the box. Later calls fail with [`SandboxError::Shutdown`].
    /// Dropping the box without calling this also kills everything, abruptly.
    fn shutdown(&self) -> BoxFuture<'_, ()>;

    fn info(&self) -> BoxInfo;

    /// What happened to the box since the last call that the session should be told about
    /// (an out-of-memory kill, …). Drained by the caller.
    fn take_events(&self) -> Vec<BoxEvent> {
        Vec::new()
    }

    /// Why the box is unusable (its agent died, it was shut down), or `None` while it works.
    /// A runtime uses this to decide to launch a fresh box.
    fn failure(&self) -> Option<SandboxError> {
        None
    }

    /// Opens a long-lived process inside the box (a stdio MCP server, say) with its stdin and
    /// stdout as byte streams. It sees the box's view and limits, like a tool; it ends when
    /// its [`BoxProcess::guard`] is dropped, when it is killed, or with the box. A program
    /// that cannot start is [`SandboxError::Spawn`] with the reason.
    fn spawn_process(&self, spec: ProcessSpec) -> BoxFuture<'_, Result<BoxProcess, SandboxError>> {
        let _ = spec;
        Box::pin(async {
            Err(SandboxError::Unsupported(
                "this backend cannot open processes in its boxes".to_string(),
            ))
        })
    }
}

/// Something that happened to a box, beyond the result of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoxEvent {
    /// The kernel killed a process of the box for going over the memory limit.
    OutOfMemory {
        /// For the session: what happened, in a sentence.
        message: String,
        limit_bytes: Option<u64>,
    },
}

/// Starts boxes of one backend.
pub trait SandboxLauncher: Send + Sync {
    fn launch(&self, spec: BoxSpec) -> BoxFuture<'_, Result<Arc<dyn Sandbox>, SandboxError>>;

    /// Whether boxes of this backend are a security boundary (and so reach the network only
    /// through [`BoxSpec::egress`]).
    fn isolated(&self) -> bool {
        false
    }

    /// Launches boxes ahead of time until the backend's ready pool is full, if it has one
    /// (the isolated backend with [`IsolatedConfig::pool`]). The runtime calls it at start and
    /// after each launch; a fill already running makes this a no-op.
    fn fill_pool(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Installs an environment's packages (once; later calls reuse the layer) and returns the
    /// mount and variables a box needs to use them. Backends without a private filesystem
    /// view cannot place a layer and refuse.
    ///
    /// `egress`: a proxy session open only to the package registries. With it the installers
    /// have no other network and may run the packages' build code (every manager); without it
    /// they use the host's network and run no package code (apt, npm and pip only).
    fn package_layer<'a>(
        &'a self,
        packages: &'a PackageSet,
        egress: Option<&'a EgressSpec>,
    ) -> BoxFuture<'a, Result<PackageLayer, SandboxError>> {
        let _ = (packages, egress);
        Box::pin(async {
            Err(SandboxError::Launch(
                "environment packages need the isolated sandbox backend".to_string(),
            ))
        })
    }
}
