//! The ready pool: boxes launched ahead of time, so that a new session's box is there at once
//! instead of after a bubblewrap start (10–30 ms, more on a busy host).
//!
//! A box's view is fixed when bubblewrap starts it, so a ready box is launched with the one
//! shape most sessions have: the default limits, no mounts, no extra variables, and (when the
//! server has an egress) the proxy's variables. What is session-specific is moved in when a
//! session takes it, by the host file system alone:
//! - the workspace: the ready box's workspace folder (`<pool>/<n>/workspace`, on the same file
//!   system as the sessions' workspaces) is renamed to the session's workspace path. The box's
//!   bind follows the folder, not its name;
//! - the egress: the box sees the folder `<pool>/<n>/run` at `/run/oma`; the session's proxy
//!   socket is hard-linked into it as `egress.sock`, and the deployment CA bundle is written
//!   into the (until then empty) file the box trusts.
//!
//! A session that needs anything else (mounts, packages, a vault's variables, other limits, a
//! restored workspace, a workspace disk quota) gets a box of its own as before. A ready box has
//! never run a tool; one whose agent died meanwhile is thrown away. Taking a box never waits:
//! with the pool empty the session's box is launched as before, and the pool is refilled in
//! the background ([`crate::SandboxLauncher::fill_pool`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::IsolatedSandbox;
use crate::{BoxSpec, EgressSpec, Limits};

/// How many ready boxes to keep, and what they look like.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Boxes kept ready (0: no pool).
    pub size: usize,
    /// Where the ready boxes' folders live. It must be on the file system of the sessions'
    /// workspaces (a workspace is renamed into place); `<workspaces>/.pool` is.
    pub dir: PathBuf,
    /// The limits of a ready box: a session takes one only with exactly these.
    pub limits: Limits,
    /// Whether ready boxes reach the network through a session proxy (the server has an
    /// egress); a session takes one only if its box has an egress too.
    pub egress: bool,
    /// The mounts every session's box has (the runtime's uploads and outputs folders): a
    /// ready box has an empty folder at each, which becomes the session's at take. A session
    /// takes a ready box only with exactly these mounts, their folders empty.
    pub mounts: Vec<PoolMount>,
}

/// A mount every box of the pool has (its folder is moved to the session's at take).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolMount {
    /// Absolute path inside the box.
    pub target: String,
    pub writable: bool,
}

/// A launched box nobody has used yet, and its folder.
pub(super) struct Ready {
    pub(super) sandbox: IsolatedSandbox,
    pub(super) slot: PathBuf,
}

pub(super) struct Pool {
    pub(super) config: PoolConfig,
    ready: Mutex<Vec<Ready>>,
    /// One filler at a time.
    pub(super) filling: tokio::sync::Mutex<()>,
    /// Folders a previous process left behind are removed before the first fill.
    swept: std::sync::Once,
}

/// The socket's name in a ready box's `run` folder: the box connects to `/run/oma/egress.sock`.
const SOCKET: &str = "egress.sock";
const CA_BUNDLE: &str = "ca.pem";

impl Pool {
    pub(super) fn new(config: PoolConfig) -> Self {
        Pool {
            config,
            ready: Mutex::new(Vec::new()),
            filling: tokio::sync::Mutex::new(()),
            swept: std::sync::Once::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Ready>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn push(&self, ready: Ready) {
        self.lock().push(ready);
        oma_metrics::SANDBOXES_READY.inc();
    }

    fn pop(&self) -> Option<Ready> {
        let ready = self.lock().pop()?;
        oma_metrics::SANDBOXES_READY.dec();
        Some(ready)
    }

    /// The folder and launch spec of the next ready box (blocking file system work).
    pub(super) fn next_slot(&self) -> Result<(BoxSpec, PathBuf), String> {
        let pid = std::process::id();
        self.swept.call_once(|| {
            // Nothing of a previous process's pool is in use: its boxes died with it.
            for entry in std::fs::read_dir(&self.config.dir)
                .into_iter()
                .flatten()
                .flatten()
            {
                if !entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{pid}-"))
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        });
        // Unique in this process too, should two launchers share a folder.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let slot = self.config.dir.join(format!("{pid}-{n}"));
        let workspace = slot.join("workspace");
        let run = slot.join("run");
        let mounts: Vec<crate::Mount> = self
            .config
            .mounts
            .iter()
            .enumerate()
            .map(|(i, m)| crate::Mount {
                source: slot.join("mounts").join(i.to_string()),
                target: m.target.clone(),
                writable: m.writable,
            })
            .collect();
        for dir in [&workspace, &run]
            .into_iter()
            .chain(mounts.iter().map(|m| &m.source))
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let egress = if self.config.egress {
            let ca = run.join(CA_BUNDLE);
            std::fs::write(&ca, b"").map_err(|e| format!("cannot create {}: {e}", ca.display()))?;
            Some(EgressSpec {
                socket: run.join(SOCKET),
                ca_bundle: Some(ca),
            })
        } else {
            None
        };
        let spec = BoxSpec {
            session_id: format!("pool-{n}"),
            workspace,
            env: Vec::new(),
            mounts,
            limits: self.config.limits,
            egress,
        };
        Ok((spec, slot))
    }

    /// Why a session's box cannot be a ready one (something about it differs from a ready
    /// box beyond what [`Pool::take`] moves in), or `None` when it can.
    pub(super) fn misfit(&self, spec: &BoxSpec, disk_quota: bool) -> Option<&'static str> {
        match (&spec.egress, self.config.egress) {
            (None, false) => {}
            (Some(e), true) if e.ca_bundle.is_some() => {}
            _ => return Some("its network differs"),
        }
        if self.mounts_of(spec).is_none() {
            return Some("it has mounts of its own");
        }
        if !spec.env.is_empty() {
            return Some("it has variables of its own");
        }
        if spec.limits != self.config.limits {
            return Some("its limits differ");
        }
        if disk_quota && spec.limits.disk_bytes.is_some() {
            return Some("its workspace is a disk of its own");
        }
        if !is_empty_or_missing(&spec.workspace) {
            return Some("its workspace has files");
        }
        None
    }

    /// For each of the pool's mounts, the session's folder for it; `None` unless the
    /// session's mounts are exactly the pool's, with empty folders.
    fn mounts_of<'a>(&self, spec: &'a BoxSpec) -> Option<Vec<&'a Path>> {
        if spec.mounts.len() != self.config.mounts.len() {
            return None;
        }
        self.config
            .mounts
            .iter()
            .map(|want| {
                spec.mounts
                    .iter()
                    .find(|m| m.target == want.target && m.writable == want.writable)
                    .filter(|m| is_empty_or_missing(&m.source))
                    .map(|m| m.source.as_path())
            })
            .collect()
    }

    /// A ready box, made the session's (its workspace and egress moved in), or `None` when
    /// none is ready or moving in failed (the session's box is then launched as usual).
    pub(super) fn take(&self, spec: &BoxSpec) -> Option<IsolatedSandbox> {
        // Checked before a box is taken out, so that a misfit never costs a ready box.
        let mounts = self.mounts_of(spec)?;
        loop {
            let ready = self.pop()?;
            if ready.sandbox.process.failure().is_some() {
                // Dropping it releases its cgroup and folder.
                continue;
            }
            return match adopt(&ready.slot, spec, &mounts) {
                Ok(workspace) => {
                    let mut sandbox = ready.sandbox;
                    sandbox.session_id = spec.session_id.clone();
                    sandbox.workspace = workspace;
                    Some(sandbox)
                }
                Err(e) => {
                    tracing::warn!(
                        op = "sandbox",
                        session_id = %spec.session_id,
                        "a ready sandbox could not be taken over, starting one: {e}"
                    );
                    None
                }
            };
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        while self.pop().is_some() {}
    }
}

/// Moves a session's workspace path and egress into a ready box's folder. Returns the
/// workspace's canonical path.
fn adopt(slot: &Path, spec: &BoxSpec, mounts: &[&Path]) -> Result<PathBuf, String> {
    let run = slot.join("run");
    if let Some(egress) = &spec.egress {
        let link = run.join(SOCKET);
        std::fs::hard_link(&egress.socket, &link)
            .map_err(|e| format!("linking the egress socket into the box: {e}"))?;
        if let Some(bundle) = &egress.ca_bundle {
            // Written in place: the box has this very file bound over its CA bundle.
            let pem =
                std::fs::read(bundle).map_err(|e| format!("reading {}: {e}", bundle.display()))?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(run.join(CA_BUNDLE))
                .map_err(|e| format!("opening the box's CA bundle: {e}"))?;
            std::io::Write::write_all(&mut f, &pem)
                .map_err(|e| format!("writing the box's CA bundle: {e}"))?;
        }
    }
    // The runtime creates the (empty) folders before launching; they give way to the ready
    // box's, which the box already sees at their targets.
    for (i, source) in mounts.iter().enumerate() {
        move_in(&slot.join("mounts").join(i.to_string()), source)?;
    }
    move_in(&slot.join("workspace"), &spec.workspace)?;
    spec.workspace
        .canonicalize()
        .map_err(|e| format!("{}: {e}", spec.workspace.display()))
}

/// Replaces the empty folder (or nothing) at `to` with the ready box's folder `from`.
fn move_in(from: &Path, to: &Path) -> Result<(), String> {
    match std::fs::remove_dir(to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", to.display())),
    }
    std::fs::rename(from, to).map_err(|e| format!("moving a ready folder to {}: {e}", to.display()))
}

fn is_empty_or_missing(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}
