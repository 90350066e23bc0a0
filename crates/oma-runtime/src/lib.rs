//! The session runtime: a user message becomes an agent turn.
//!
//! One `SessionHost` task runs per *active* session and is the only writer of that session's
//! log; idle sessions cost no task. Client input waits in the session's durable queue until its
//! host consumes it. Everything the host knows it can rebuild from the log, so after a crash
//! `Runtime::recover` restarts a host for every session that was mid-turn or had queued input,
//! and the turn finishes by itself.

pub mod cluster;
mod context;
mod host;
pub mod hub;
pub mod mcp;
mod metrics;
mod mounts;
mod permission;
mod providers;
mod record;
pub mod snapshots;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oma_sandbox::SandboxLauncher;
use oma_store::TenantRouter;
use tokio::sync::Notify;

pub use context::{Projection, project};
pub use hub::{Committed, Hub, HubMsg, Preview};
pub use providers::Providers;

/// Tunables of the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where each session's workspace folder lives (`<dir>/<session id>`).
    pub workspaces_dir: PathBuf,
    /// Where each session's other host folders live (`<dir>/<session id>/mnt/…`: the skills,
    /// memory stores, uploads and outputs bound into its box). Defaults to `sessions` next to
    /// the workspaces.
    pub sessions_dir: PathBuf,
    /// `max_tokens` of each model request.
    pub max_tokens: u32,
    /// Retries of a failing model request before the turn gives up.
    pub backoff: oma_model::retry::Backoff,
    /// How often a streaming model request checkpoints its partial text.
    pub checkpoint_every: Duration,
    /// The model's context window, in tokens.
    pub context_window_tokens: u64,
    /// The share of the window at which older context is compacted (0–1).
    pub compact_at: f64,
    /// Compactions in a row without the model producing anything before the turn stops with
    /// `compaction_limit_reached_error` (the context cannot be made to fit).
    pub max_compactions_in_a_row: u32,
    /// Tool-use rounds (a model response that calls tools, and running them) in one turn
    /// before it stops with `tool_use_limit_reached_error`.
    pub max_tool_rounds: u32,
    /// How long a session's host waits for more input after going idle before it exits.
    pub idle_linger: Duration,
    /// How long a session must be idle before its workspace, if a tool ran since the last
    /// snapshot, is snapshotted to the blob store, its box stopped and the local folder
    /// removed; the next tool call restores it. `None`: never. Default: the idle linger.
    pub snapshot_after_idle: Option<Duration>,
    /// How long a snapshot is kept ([`Runtime::expire_snapshots`]). Default 7 days.
    pub snapshot_ttl: Duration,
    /// Start a session's box when the session is created (its tools need one), so the first
    /// tool call does not wait for it. Off: the box starts at the first tool call.
    pub provision_at_create: bool,
    /// This node's name in the cluster: its hosts' leases carry it (see [`cluster`]).
    pub node_id: String,
    /// How long a session lease lasts unless renewed: a node that stops renewing (it crashed,
    /// hung or lost the database) loses its sessions to the others this long after.
    pub lease_ttl: Duration,
}

impl RuntimeConfig {
    pub fn new(workspaces_dir: PathBuf) -> Self {
        let sessions_dir = workspaces_dir
            .parent()
            .map_or_else(|| PathBuf::from("sessions"), |p| p.join("sessions"));
        Self {
            workspaces_dir,
            sessions_dir,
            max_tokens: 8192,
            backoff: oma_model::retry::Backoff::default(),
            checkpoint_every: Duration::from_millis(250),
            context_window_tokens: 200_000,
            compact_at: 0.8,
            max_compactions_in_a_row: 3,
            max_tool_rounds: 200,
            idle_linger: Duration::from_secs(10),
            snapshot_after_idle: Some(Duration::from_secs(10)),
            snapshot_ttl: snapshots::DEFAULT_SNAPSHOT_TTL,
            provision_at_create: true,
            node_id: "local".into(),
            lease_ttl: cluster::DEFAULT_LEASE_TTL,
        }
    }
}

/// The handle the server holds.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) tenants: TenantRouter,
    pub(crate) hub: Arc<Hub>,
    pub(crate) providers: Providers,
    pub(crate) launcher: Arc<dyn SandboxLauncher>,
    pub(crate) config: RuntimeConfig,
    /// The HTTP client `web_fetch` uses (shared: one connection pool for the server).
    pub(crate) web: oma_tools::WebFetchClient,
    /// Sessions with a live host, how to wake it and how to stop it.
    hosts: Mutex<HashMap<String, HostSlot>>,
    /// The task renewing the hosts' leases, started with the first host.
    lease_keeper: std::sync::OnceLock<()>,
    /// Set once the node drains: no new hosts start here.
    draining: std::sync::atomic::AtomicBool,
    /// Where operational events go, if anywhere ([`Runtime::with_ops`]).
    ops: std::sync::OnceLock<oma_ops::OpsRecorder>,
    /// The network edge sessions go through, if any ([`Runtime::with_egress`]).
    pub(crate) egress: std::sync::OnceLock<oma_egress::Egress>,
    /// The operator's search backend for `web_search` ([`Runtime::with_web_search`]).
    pub(crate) web_search: std::sync::OnceLock<oma_tools::WebSearchClient>,
}

impl Runtime {
    pub fn new(
        tenants: TenantRouter,
        hub: Arc<Hub>,
        providers: Providers,
        launcher: Arc<dyn SandboxLauncher>,
        config: RuntimeConfig,
        web: oma_tools::WebFetchClient,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                tenants,
                hub,
                providers,
                launcher,
                config,
                web,
                hosts: Mutex::default(),
                lease_keeper: std::sync::OnceLock::new(),
                draining: std::sync::atomic::AtomicBool::new(false),
                ops: std::sync::OnceLock::new(),
                egress: std::sync::OnceLock::new(),
                web_search: std::sync::OnceLock::new(),
            }),
        }
    }

    /// This runtime recording operational events (tool calls, model requests, status
    /// transitions, …) with `ops`. Set once; a second call is ignored.
    pub fn with_ops(self, ops: oma_ops::OpsRecorder) -> Self {
        let _ = self.inner.ops.set(ops);
        self
    }

    /// This runtime sending sessions' network traffic (isolated boxes and `web_fetch`) through
    /// `egress`: one proxy per active session, with its policy and vault credentials. Without
    /// it isolated boxes have no network. Set once; a second call is ignored.
    pub fn with_egress(self, egress: oma_egress::Egress) -> Self {
        let _ = self.inner.egress.set(egress);
        self
    }

    /// This runtime answering `web_search` with `search` (the operator's backend). Without it
    /// `web_search` is never offered to the model. Set once; a second call is ignored.
    pub fn with_web_search(self, search: oma_tools::WebSearchClient) -> Self {
        let _ = self.inner.web_search.set(search);
        self
    }

    /// The operational events recorder, if one was set.
    pub fn ops(&self) -> Option<&oma_ops::OpsRecorder> {
        self.inner.ops.get()
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    /// Tells the session's host there is work (queued input). Starts a host if none runs;
    /// when another node owns the session, the new host passes the wake-up on to it.
    pub fn wake(&self, tenant: &str, session_id: &str) {
        self.start_or_notify(tenant, session_id, host::OnHeld::Forward, false);
    }

    /// A session was just created: its host starts now and launches the session's box (when
    /// its tools need one) in the background, so the first tool call does not wait for it.
    /// Its initial events, if any, are processed meanwhile. With provisioning off, a host
    /// starts only for initial events.
    pub fn session_created(&self, tenant: &str, session_id: &str, has_initial_events: bool) {
        let provision = self.inner.config.provision_at_create;
        if provision || has_initial_events {
            self.start_or_notify(tenant, session_id, host::OnHeld::Forward, provision);
        }
    }

    /// Like [`Runtime::wake`], for a session found without a live owner (the orphan sweep, a
    /// wake-up note from another node): if some node claimed it meanwhile, nothing is sent.
    pub(crate) fn wake_quietly(&self, tenant: &str, session_id: &str) {
        self.start_or_notify(tenant, session_id, host::OnHeld::LetGo, false);
    }

    fn start_or_notify(
        &self,
        tenant: &str,
        session_id: &str,
        on_held: host::OnHeld,
        provision: bool,
    ) {
        if self
            .inner
            .draining
            .load(std::sync::atomic::Ordering::Acquire)
        {
            // A draining node hands sessions over; the others pick the input up.
            return;
        }
        let mut hosts = self.inner.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = hosts.get(session_id) {
            slot.notify.notify_one();
            return;
        }
        self.inner.lease_keeper.get_or_init(|| {
            tokio::spawn(cluster::keep_leases(Arc::downgrade(&self.inner)));
        });
        let notify = Arc::new(Notify::new());
        let host = host::SessionHost::new(
            self.clone(),
            tenant,
            session_id,
            notify.clone(),
            on_held,
            provision,
        );
        // Every line the host logs carries its tenant and session (and agent, once loaded).
        let span = tracing::info_span!(
            "session",
            tenant_id = %tenant,
            session_id = %session_id,
            agent_id = tracing::field::Empty
        );
        // Spawned under the lock, so the slot exists before the host can release it.
        let task = tokio::spawn(tracing::Instrument::instrument(host.run(), span));
        hosts.insert(
            session_id.to_string(),
            HostSlot {
                notify,
                task: task.abort_handle(),
            },
        );
        oma_metrics::SESSIONS_ACTIVE.inc();
    }

    /// Starts a host for every session that a crash or restart left mid-turn or with queued
    /// input. Call once at startup.
    pub async fn recover(&self) -> Result<usize, oma_store::StoreError> {
        // Ready boxes for the first sessions (when the backend keeps a pool).
        fill_box_pool(&self.inner.launcher);
        // Workspaces a crash left half-deleted (their snapshot is published) go first.
        if let Err(e) = snapshots::sweep_trash(&self.inner.config.workspaces_dir).await {
            tracing::warn!(op = "recover", error = %e, "could not clear half-deleted workspaces");
        }
        // Sessions nobody owns (their owner crashed or stopped, or they predate leases) and
        // the ones this node owned before it restarted; the others' sessions stay theirs.
        let mut sessions = self.orphans().await?;
        for shard in self.inner.tenants.shards() {
            for s in shard
                .store
                .leased_sessions(&self.inner.config.node_id)
                .await?
            {
                if self.inner.tenants.shard_of(&s.0) == shard.name && !sessions.contains(&s) {
                    sessions.push(s);
                }
            }
        }
        let n = sessions.len();
        for (tenant, session) in sessions {
            tracing::info!(op = "recover", tenant_id = %tenant, session_id = %session, "resuming session");
            self.wake_quietly(&tenant, &session);
        }
        Ok(n)
    }

    /// Whether a host is running for the session (tests and metrics).
    pub fn is_active(&self, session_id: &str) -> bool {
        self.inner
            .hosts
            .lock()
            .map(|h| h.contains_key(session_id))
            .unwrap_or(false)
    }

    /// The sessions with a live host on this node.
    pub fn hosted_sessions(&self) -> Vec<String> {
        let hosts = self.inner.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts.keys().cloned().collect()
    }

    /// Called by a host that is about to exit.
    pub(crate) fn release(&self, session_id: &str, notify: &Arc<Notify>) {
        let mut hosts = self.inner.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if hosts
            .get(session_id)
            .is_some_and(|slot| Arc::ptr_eq(&slot.notify, notify))
        {
            hosts.remove(session_id);
            oma_metrics::SESSIONS_ACTIVE.dec();
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }
}

/// A live host as the registry knows it.
struct HostSlot {
    notify: Arc<Notify>,
    task: tokio::task::AbortHandle,
}

/// Tops the launcher's ready pool up in the background (a no-op without one, or while a fill
/// runs): at start, and after each launch took a ready box or could have.
pub(crate) fn fill_box_pool(launcher: &Arc<dyn SandboxLauncher>) {
    let launcher = launcher.clone();
    tokio::spawn(async move { launcher.fill_pool().await });
}

/// The isolated backend's ready pool in the shape of most sessions' boxes: the default
/// instance type's limits, the uploads and outputs folders every session has, and an egress
/// when the server has one. `dir` is on the workspaces' file system (`<workspaces>/.pool`).
pub fn ready_pool(
    size: usize,
    workspaces_dir: &std::path::Path,
    egress: bool,
) -> oma_sandbox::PoolConfig {
    oma_sandbox::PoolConfig {
        size,
        dir: workspaces_dir.join(".pool"),
        limits: host::boxes::limits_of(&oma_core::environments::INSTANCE_TYPES[0]),
        egress,
        mounts: mounts::files::standard_mounts(),
    }
}
