//! The session runtime: a user message becomes an agent turn.
//!
//! One `SessionHost` task runs per *active* session and is the only writer of that session's
//! log; idle sessions cost no task. Client input waits in the session's durable queue until its
//! host consumes it. Everything the host knows it can rebuild from the log, so after a crash
//! `Runtime::recover` restarts a host for every session that was mid-turn or had queued input,
//! and the turn finishes by itself.

mod context;
mod host;
pub mod hub;
mod providers;
mod record;

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
    /// How long a session's host waits for more input after going idle before it exits.
    pub idle_linger: Duration,
}

impl RuntimeConfig {
    pub fn new(workspaces_dir: PathBuf) -> Self {
        Self {
            workspaces_dir,
            max_tokens: 8192,
            backoff: oma_model::retry::Backoff::default(),
            checkpoint_every: Duration::from_millis(250),
            context_window_tokens: 200_000,
            compact_at: 0.8,
            idle_linger: Duration::from_secs(10),
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
    /// Sessions with a live host, and how to wake it.
    hosts: Mutex<HashMap<String, Arc<Notify>>>,
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
            }),
        }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    /// Tells the session's host there is work (queued input). Starts a host if none runs.
    pub fn wake(&self, tenant: &str, session_id: &str) {
        let mut hosts = self.inner.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = hosts.get(session_id) {
            n.notify_one();
            return;
        }
        let notify = Arc::new(Notify::new());
        hosts.insert(session_id.to_string(), notify.clone());
        drop(hosts);
        let host = host::SessionHost::new(self.clone(), tenant, session_id, notify);
        tokio::spawn(host.run());
    }

    /// Starts a host for every session that a crash or restart left mid-turn or with queued
    /// input. Call once at startup.
    pub async fn recover(&self) -> Result<usize, oma_store::StoreError> {
        let sessions = self
            .inner
            .tenants
            .control()
            .sessions_needing_a_host()
            .await?;
        let n = sessions.len();
        for (tenant, session) in sessions {
            tracing::info!(op = "recover", tenant_id = %tenant, session_id = %session, "resuming session");
            self.wake(&tenant, &session);
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

    /// Called by a host that is about to exit. Returns `false` (and keeps the host registered)
    /// when it was woken meanwhile.
    pub(crate) fn release(&self, session_id: &str, notify: &Arc<Notify>) {
        let mut hosts = self.inner.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if hosts
            .get(session_id)
            .is_some_and(|n| Arc::ptr_eq(n, notify))
        {
            hosts.remove(session_id);
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }
}
