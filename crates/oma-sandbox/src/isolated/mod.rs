//! The `isolated` backend: each box is the in-box agent started by bubblewrap in new user, pid,
//! mount, net, ipc, uts and cgroup namespaces, in a cgroup of its own with the session's limits.
//!
//! What a box sees: the system's `/usr` (and the `/bin`, `/lib`… links) read-only, a curated
//! read-only `/etc` (no `resolv.conf`, no shadow files), its workspace read-write at
//! `/workspace`, private `/tmp` and `/home/user`, a minimal `/dev`, its own `/proc`, the
//! session's mounts, and nothing else of the host. It runs as uid 1000 with no capabilities,
//! a clean environment, and only `lo` for a network. The agent then applies `no_new_privs`,
//! Landlock and seccomp to itself ([`crate::harden`]) before it accepts a call.
//!
//! It fails closed: when bubblewrap or the cgroups cannot be set up, launching fails with the
//! reason; it never falls back to running tools unisolated.

mod bwrap;
mod cgroup;
mod packages;
mod pool;
mod quota;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use futures::future::BoxFuture;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

pub use cgroup::CgroupParent;
pub use packages::PackageLayer;
pub use pool::{PoolConfig, PoolMount};
pub use quota::{detach_workspace, remount_workspace};

use crate::conn::AgentProcess;
use crate::{
    BoxEvent, BoxInfo, BoxProcess, BoxSpec, ProcessSpec, Sandbox, SandboxError, SandboxLauncher,
    ToolCall, ToolOutcome,
};
use cgroup::BoxCgroup;

/// Settings of the isolated backend.
#[derive(Debug, Clone)]
pub struct IsolatedConfig {
    /// The `bwrap` executable.
    pub bwrap: PathBuf,
    /// The binary whose `sandbox-agent` subcommand is the in-box agent (normally `oma`
    /// itself). It is bound read-only into the box.
    pub agent_exe: PathBuf,
    /// Where the backend keeps its own files (the box's `/etc/passwd`, workspace images).
    pub state_dir: PathBuf,
    /// Enforce limits with a cgroup per box. Off only when the operator says so; a box with
    /// limits then fails to launch rather than run unlimited.
    pub cgroups: bool,
    /// Give each workspace a file system of the box's disk limit (a loop-mounted image; needs
    /// root). Off: disk limits are not enforced.
    pub disk_quota: bool,
    /// Boxes launched ahead of time for new sessions ([`PoolConfig`]); `None`: none.
    pub pool: Option<PoolConfig>,
}

impl IsolatedConfig {
    /// `bwrap` from `PATH`, cgroups on.
    pub fn new(agent_exe: PathBuf, state_dir: PathBuf) -> Self {
        IsolatedConfig {
            bwrap: PathBuf::from("bwrap"),
            agent_exe,
            state_dir,
            cgroups: true,
            disk_quota: rustix::process::geteuid().is_root(),
            pool: None,
        }
    }
}

/// What [`IsolatedLauncher::preflight`] found out about this host.
#[derive(Debug, Clone)]
pub struct Preflight {
    /// `bwrap --version`.
    pub bwrap_version: String,
    /// `v1`, `v2` or `off`.
    pub cgroups: &'static str,
    /// Whether workspace disk quotas are enforced.
    pub disk_quota: bool,
}

/// Launches isolated boxes.
pub struct IsolatedLauncher {
    config: IsolatedConfig,
    /// Discovered on first use; the error is kept so every launch reports it.
    cgroups: OnceLock<Result<CgroupParent, String>>,
    /// Whether workspace disks work on this host (probed once when enabled).
    disk_quota: OnceLock<bool>,
    installs: packages::Installs,
    pool: Option<pool::Pool>,
}

impl IsolatedLauncher {
    pub fn new(config: IsolatedConfig) -> Self {
        let pool = config
            .pool
            .clone()
            .filter(|p| p.size > 0)
            .map(pool::Pool::new);
        IsolatedLauncher {
            pool,
            config,
            cgroups: OnceLock::new(),
            disk_quota: OnceLock::new(),
            installs: packages::Installs::default(),
        }
    }

    fn cgroup_parent(&self) -> Result<&CgroupParent, SandboxError> {
        self.cgroups
            .get_or_init(|| {
                // One parent per launcher (`oma-<pid>-<n>`): a process may hold several (tests
                // do), and each removes its own when it goes away.
                static LAUNCHERS: std::sync::atomic::AtomicU64 =
                    std::sync::atomic::AtomicU64::new(0);
                let n = LAUNCHERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                CgroupParent::discover(&format!("oma-{}-{n}", std::process::id()))
            })
            .as_ref()
            .map_err(|e| SandboxError::Launch(format!("cgroups: {e}")))
    }

    /// Whether workspace disk quotas are on: configured, and a probe (make, format, mount and
    /// unmount a small image) worked. Quotas bound resources, they are not the isolation
    /// boundary: a host that cannot loop-mount (some containers) runs without them, loudly.
    async fn disk_quota(&self) -> bool {
        if !self.config.disk_quota {
            return false;
        }
        if let Some(on) = self.disk_quota.get() {
            return *on;
        }
        let dir = self.config.state_dir.join("disk-probe");
        let works = tokio::task::spawn_blocking(move || quota::probe(&dir))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        let on = match works {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(
                    op = "sandbox",
                    "workspace disk quotas are off: this host cannot loop-mount a workspace \
                     image ({e})"
                );
                false
            }
        };
        *self.disk_quota.get_or_init(|| on)
    }

    /// Checks that boxes can be made on this host: bubblewrap runs a command in every
    /// namespace a box uses, and the cgroups are usable. `oma doctor` and `oma serve` call it.
    pub async fn preflight(&self) -> Result<Preflight, SandboxError> {
        let version = Command::new(&self.config.bwrap)
            .arg("--version")
            .output()
            .await
            .map_err(|e| {
                SandboxError::Launch(format!(
                    "bubblewrap (`{}`) cannot be run: {e}. Install it (Debian/Ubuntu: `apt-get \
                     install bubblewrap`) or choose the unisolated `local` backend explicitly",
                    self.config.bwrap.display()
                ))
            })?;
        let bwrap_version = String::from_utf8_lossy(&version.stdout).trim().to_string();
        let probe = Command::new(&self.config.bwrap)
            .args(bwrap::probe_args())
            .arg("true")
            .output()
            .await
            .map_err(|e| SandboxError::Launch(format!("bubblewrap: {e}")))?;
        if !probe.status.success() {
            return Err(SandboxError::Launch(format!(
                "bubblewrap cannot create the box's namespaces on this host ({}): {}. User \
                 namespaces must be enabled (sysctl kernel.unprivileged_userns_clone=1, \
                 user.max_user_namespaces > 0)",
                probe.status,
                String::from_utf8_lossy(&probe.stderr).trim()
            )));
        }
        let cgroups = if self.config.cgroups {
            match self.cgroup_parent()? {
                CgroupParent::V1 { .. } => "v1",
                CgroupParent::V2(_) => "v2",
            }
        } else {
            "off"
        };
        Ok(Preflight {
            bwrap_version,
            cgroups,
            disk_quota: self.disk_quota().await,
        })
    }

    /// How many boxes are ready in the pool now.
    pub fn ready_boxes(&self) -> usize {
        self.pool.as_ref().map_or(0, pool::Pool::len)
    }

    async fn launch_isolated(&self, spec: BoxSpec) -> Result<Arc<dyn Sandbox>, SandboxError> {
        if let Some(pool) = &self.pool {
            match pool.misfit(&spec, self.disk_quota().await) {
                Some(why) => tracing::debug!(
                    session_id = %spec.session_id,
                    "the session's box cannot be a ready one: {why}"
                ),
                None => {
                    if let Some(sandbox) = pool.take(&spec) {
                        return Ok(took(&spec, sandbox));
                    }
                }
            }
        }
        Ok(Arc::new(self.start_box(spec, false).await?))
    }

    /// Launches ready boxes until the pool holds its size (one filler at a time; a launch
    /// that fails stops this fill, the next one tries again).
    async fn fill(&self) {
        let Some(pool) = &self.pool else { return };
        let Ok(_filling) = pool.filling.try_lock() else {
            return;
        };
        if pool.config.limits.disk_bytes.is_some() && self.disk_quota().await {
            // A workspace disk is mounted at its session's path: it cannot be moved in.
            return;
        }
        while pool.len() < pool.config.size {
            // Two folders and an empty file: not worth a blocking thread.
            let (spec, slot) = match pool.next_slot() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(op = "sandbox", "the ready pool cannot be filled: {e}");
                    return;
                }
            };
            match self.start_box(spec, true).await {
                Ok(mut sandbox) => {
                    sandbox.set_slot(slot.clone());
                    pool.push(pool::Ready { sandbox, slot });
                }
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&slot);
                    tracing::warn!(op = "sandbox", "a ready sandbox could not be started: {e}");
                    return;
                }
            }
        }
    }

    /// Starts a box. `ready`: a box of the pool, whose egress socket comes later.
    async fn start_box(&self, spec: BoxSpec, ready: bool) -> Result<IsolatedSandbox, SandboxError> {
        let started = std::time::Instant::now();
        for (name, _) in &spec.env {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(SandboxError::Launch(format!(
                    "invalid environment variable name {name:?}"
                )));
            }
        }
        for m in &spec.mounts {
            bwrap::check_mount(m)?;
        }
        if !executable_exists(&self.config.bwrap) {
            return Err(SandboxError::Launch(format!(
                "bubblewrap (`{}`) is not installed: install it (Debian/Ubuntu: `apt-get install \
                 bubblewrap`) or choose the unisolated `local` backend explicitly",
                self.config.bwrap.display()
            )));
        }
        let box_name = bwrap::box_name(&spec.session_id);
        let state_dir = self.config.state_dir.clone();
        let limits = spec.limits;
        let workspace = spec.workspace.clone();
        let disk_quota = limits.disk_bytes.is_some() && self.disk_quota().await;
        let wants_cgroup =
            limits.millicpus.is_some() || limits.memory_bytes.is_some() || limits.pids.is_some();
        let parent = if wants_cgroup || self.config.cgroups {
            if !self.config.cgroups {
                return Err(SandboxError::Launch(
                    "the box has CPU, memory or process limits but cgroups are turned off"
                        .to_string(),
                ));
            }
            Some(self.cgroup_parent()?.clone())
        } else {
            None
        };
        // File system work (and cgroup files) off the async threads.
        let prepared = tokio::task::spawn_blocking(move || -> Result<Prepared, String> {
            let etc = bwrap::write_etc(&state_dir)?;
            match limits.disk_bytes {
                Some(bytes) if disk_quota => quota::attach(&workspace, bytes)?,
                _ => std::fs::create_dir_all(&workspace).map_err(|e| {
                    format!("cannot create the workspace {}: {e}", workspace.display())
                })?,
            }
            let cgroup = match &parent {
                Some(p) => Some(p.create(&box_name, &limits)?),
                None => None,
            };
            Ok(Prepared {
                etc,
                cgroup,
                slot: None,
            })
        })
        .await
        .map_err(|e| SandboxError::Launch(format!("preparing the box: {e}")))?
        .map_err(SandboxError::Launch)?;

        let workspace = spec.workspace.canonicalize().map_err(|e| {
            SandboxError::Launch(format!("workspace {}: {e}", spec.workspace.display()))
        })?;
        let args = bwrap::box_args(&bwrap::BoxLayout {
            workspace: &workspace,
            agent_exe: &self.config.agent_exe,
            etc: &prepared.etc,
            env: &spec.env,
            mounts: &spec.mounts,
            egress: spec.egress.as_ref(),
            egress_folder: ready,
        });
        let mut cmd = Command::new(&self.config.bwrap);
        cmd.args(args).env_clear();
        let procs = match &prepared.cgroup {
            Some(cg) => cg.procs_files().map_err(SandboxError::Launch)?,
            None => Vec::new(),
        };
        join_cgroup_at_exec(&mut cmd, procs);
        let process = match AgentProcess::spawn(cmd, false).await {
            Ok(p) => p,
            Err(e) => {
                prepared.release().await;
                return Err(e);
            }
        };
        tracing::info!(
            session_id = %spec.session_id,
            workspace = %workspace.display(),
            agent_pid = process.pid(),
            cgroup = prepared.cgroup.is_some(),
            ready,
            start_ms = started.elapsed().as_millis() as u64,
            "started an isolated sandbox"
        );
        Ok(IsolatedSandbox {
            session_id: spec.session_id,
            workspace,
            process,
            resources: Mutex::new(Some(prepared)),
            events: Mutex::new(Vec::new()),
        })
    }
}

impl Drop for IsolatedLauncher {
    fn drop(&mut self) {
        if let Some(Ok(parent)) = self.cgroups.get() {
            parent.remove();
        }
    }
}

impl SandboxLauncher for IsolatedLauncher {
    fn launch(&self, spec: BoxSpec) -> BoxFuture<'_, Result<Arc<dyn Sandbox>, SandboxError>> {
        Box::pin(self.launch_isolated(spec))
    }

    fn isolated(&self) -> bool {
        true
    }

    fn fill_pool(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.fill())
    }

    fn package_layer<'a>(
        &'a self,
        packages: &'a crate::PackageSet,
        egress: Option<&'a crate::EgressSpec>,
    ) -> BoxFuture<'a, Result<PackageLayer, SandboxError>> {
        Box::pin(self.installs.layer(
            &self.config.bwrap,
            &self.config.agent_exe,
            &self.config.state_dir,
            packages,
            egress,
        ))
    }
}

/// A ready box, now the session's.
fn took(spec: &BoxSpec, sandbox: IsolatedSandbox) -> Arc<dyn Sandbox> {
    tracing::info!(
        session_id = %spec.session_id,
        workspace = %sandbox.workspace.display(),
        agent_pid = sandbox.process.pid(),
        "took a ready isolated sandbox"
    );
    Arc::new(sandbox)
}

/// Host resources a box holds until it is gone.
struct Prepared {
    etc: bwrap::EtcFiles,
    cgroup: Option<BoxCgroup>,
    /// A ready box's folder (in the pool), removed with the box.
    slot: Option<PathBuf>,
}

impl Prepared {
    /// Kills anything left in the box's cgroup, removes it, and detaches the workspace disk.
    async fn release(self) {
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(cg) = &self.cgroup {
                cg.remove();
            }
            if let Some(slot) = &self.slot {
                let _ = std::fs::remove_dir_all(slot);
            }
            drop(self.etc);
        })
        .await;
    }
}

/// Makes the spawned process (bubblewrap) join the box's cgroup(s) before it executes, so
/// every process of the box is inside from its first instruction.
#[allow(unsafe_code)]
fn join_cgroup_at_exec(cmd: &mut Command, procs: Vec<std::fs::File>) {
    if procs.is_empty() {
        return;
    }
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it only calls write(2) on descriptors opened
    // before the fork, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for f in &procs {
                rustix::io::write(f, b"0").map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
}

/// A running isolated box.
pub struct IsolatedSandbox {
    session_id: String,
    workspace: PathBuf,
    process: AgentProcess,
    resources: Mutex<Option<Prepared>>,
    /// What happened to the box that the session should hear about.
    events: Mutex<Vec<BoxEvent>>,
}

impl IsolatedSandbox {
    fn set_slot(&mut self, slot: PathBuf) {
        if let Some(r) = self
            .resources
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            r.slot = Some(slot);
        }
    }

    fn oom_kills(&self) -> u64 {
        self.with_cgroup(BoxCgroup::oom_kills).unwrap_or(0)
    }

    fn with_cgroup<T>(&self, f: impl FnOnce(&BoxCgroup) -> T) -> Option<T> {
        let guard = self.resources.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().and_then(|r| r.cgroup.as_ref()).map(f)
    }

    async fn call_watched(
        &self,
        call: ToolCall,
        cancel: CancellationToken,
    ) -> Result<ToolOutcome, SandboxError> {
        let before = self.oom_kills();
        let result = self.process.call(call, cancel).await;
        let after = self.oom_kills();
        if after <= before {
            return result;
        }
        let limit = self.with_cgroup(BoxCgroup::memory_limit).flatten();
        let limit_text = limit.map_or("its memory limit".to_string(), |b| {
            format!("its memory limit of {}", human_bytes(b))
        });
        let message = format!(
            "The sandbox ran out of memory: the kernel killed a process that went over \
             {limit_text} (exit status 137)."
        );
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(BoxEvent::OutOfMemory {
                message: message.clone(),
                limit_bytes: limit,
            });
        match result {
            Ok(mut outcome) => {
                outcome.content.push(crate::OutputBlock::Text {
                    text: format!("\n{message}"),
                });
                outcome.is_error = true;
                Ok(outcome)
            }
            Err(SandboxError::AgentDied { stderr_tail, .. }) => Err(SandboxError::AgentDied {
                exit: Some(crate::ExitInfo {
                    code: Some(137),
                    signal: None,
                }),
                stderr_tail: format!("{message} {stderr_tail}"),
            }),
            Err(e) => Err(e),
        }
    }

    async fn stop(&self) {
        self.process.shutdown().await;
        let resources = self
            .resources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(r) = resources {
            r.release().await;
        }
    }
}

impl Drop for IsolatedSandbox {
    fn drop(&mut self) {
        // Dropped without `shutdown`: the agent is killed by its handle; the cgroup and the
        // workspace disk are released on a blocking thread if a runtime is still there.
        let resources = self
            .resources
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(r) = resources
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(r.release());
        }
    }
}

impl Sandbox for IsolatedSandbox {
    fn call(
        &self,
        call: ToolCall,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<ToolOutcome, SandboxError>> {
        Box::pin(self.call_watched(call, cancel))
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.stop())
    }

    fn info(&self) -> BoxInfo {
        let hello = self.process.hello();
        BoxInfo {
            backend: "isolated",
            isolated: true,
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

    fn take_events(&self) -> Vec<BoxEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Whether `exe` names an existing file, directly or through `PATH`.
fn executable_exists(exe: &std::path::Path) -> bool {
    if exe.components().count() > 1 {
        return exe.is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(exe).is_file()))
}

fn human_bytes(b: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if b >= GIB && b.is_multiple_of(GIB) {
        format!("{} GiB", b / GIB)
    } else if b >= MIB {
        format!("{} MiB", b / MIB)
    } else {
        format!("{b} bytes")
    }
}
