//! The server under test: a real oma server on SQLite in a temporary directory, assembled the
//! way `oma serve` assembles it (migrated store with blob spill-over, `default` tenant, sealer,
//! local blobs, tenant model routes, the session runtime), plus the fast fill of a session's
//! event log straight through the store.
//!
//! Only [`TURN_MODEL`] has a model provider (the benchmark's fake, when given). Every other
//! model has none — as under `oma serve` without `ANTHROPIC_API_KEY` — so a `user.message` to
//! an agent on another model starts a turn that ends at once with a
//! `model_request_failed_error`: the API scenarios exercise the server's own work (queueing,
//! the session host, the log) and never wait on, or pay for, a model.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use oma_core::events::{NewEvent, SendContext, validate_send};
use oma_core::seal::{Sealer, generate_root_secret};
use oma_model::ModelProvider;
use oma_runtime::{Hub, Providers, Runtime, RuntimeConfig};
use oma_server::AppState;
use oma_store::{Store, TenantRouter};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The tenant the benchmark's key belongs to (a key made through the store, like
/// `oma keys create`, rather than the bootstrap key, so authentication takes the cached
/// lookup path real deployments take).
pub const TENANT: &str = "bench";

/// The model the turn scenarios' agents use: the only one routed to the fake model.
pub const TURN_MODEL: &str = "claude-bench-instant";

/// Events appended per store transaction while filling a session. Big enough that commit cost
/// disappears, small enough that one transaction does not hold the writer for long.
const FILL_BATCH: u64 = 1000;

pub struct BenchServer {
    pub addr: SocketAddr,
    pub key: String,
    pub store: Store,
    /// The server's state: the scenarios that write through the store publish on its hub,
    /// as a session host does.
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    /// Holds the database and blobs; removed on drop.
    dir: TempDir,
}

impl BenchServer {
    /// Starts a server on `127.0.0.1:<free port>` with its data in a fresh directory under
    /// `parent` (the system temporary directory when `None`). Must run on the runtime that
    /// is to serve requests: the listener task and the database pools live there.
    ///
    /// `model` serves [`TURN_MODEL`]; other models have no provider.
    pub async fn start(
        parent: Option<&Path>,
        model: Option<Arc<dyn ModelProvider>>,
        sandbox: SandboxKind,
        provision_at_create: bool,
        ready_boxes: usize,
    ) -> Result<Self> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("oma-bench-");
        let dir = match parent {
            Some(p) => builder
                .tempdir_in(p)
                .with_context(|| format!("creating a data directory under {}", p.display()))?,
            None => builder.tempdir().context("creating a data directory")?,
        };
        let url = format!("sqlite://{}", dir.path().join("oma.db").display());
        let store = Store::connect(&url)
            .await
            .with_context(|| format!("opening {url}"))?;
        store.migrate_up().await.context("migrating the database")?;
        // As `oma serve` does: the bootstrap tenant always exists.
        store
            .create_tenant(oma_server::auth::DEFAULT_TENANT)
            .await?;
        store.create_tenant(TENANT).await?;
        let (_, key) = store.create_api_key(TENANT, Some("oma-bench")).await?;

        let sealer = Sealer::from_base64(&generate_root_secret())?;
        let blobs = oma_blob::BlobStore::open_local(dir.path().join("blobs"))?;
        // As `oma serve` does: large events spill to the blob store, every read resolves them.
        let store = store.with_blobs(blobs.clone());
        // As `oma serve` does: each turn first looks for the tenant's own route of its model.
        let mut providers = Providers::new(None).with_tenant_routes(Arc::new(sealer.clone()));
        if let Some(p) = model {
            providers = providers.route(TURN_MODEL, p);
        }
        let tenants = TenantRouter::single(store.clone());
        let web = oma_tools::WebFetchClient::new(oma_tools::WebFetchOptions::default())
            .map_err(anyhow::Error::msg)
            .context("building the web_fetch client")?;
        let runtime = Runtime::new(
            tenants.clone(),
            Arc::new(Hub::default()),
            providers,
            sandbox.launcher(
                &dir.path().join("sandbox"),
                &dir.path().join("workspaces"),
                ready_boxes,
            ),
            RuntimeConfig {
                provision_at_create,
                ..RuntimeConfig::new(dir.path().join("workspaces"))
            },
            web,
        );
        let state = AppState::new(tenants, sealer, blobs, None, runtime);
        let serve_state = state.clone();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a loopback port")?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(oma_server::serve(listener, serve_state, async {
            let _ = rx.await;
        }));
        Ok(Self {
            addr,
            key,
            store,
            state,
            shutdown: Some(tx),
            task: Some(task),
            dir,
        })
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops accepting, waits for the server task and closes the database.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .context("the server task failed")?
                .context("the server stopped with an error")?;
        }
        self.store.close().await;
        Ok(())
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The sandbox backend of the server's boxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxKind {
    /// bubblewrap, as `oma serve` runs by default (workspace disk quotas off: they are a
    /// one-time `mkfs` per session and leave loop devices behind a killed benchmark).
    Isolated,
    /// Tools run on the host, unisolated.
    Local,
}

impl SandboxKind {
    /// `ready_boxes`: the isolated backend's ready pool, as `oma serve` keeps it (its boxes
    /// have no egress: the benchmark's server has none).
    fn launcher(
        self,
        state_dir: &Path,
        workspaces: &Path,
        ready_boxes: usize,
    ) -> Arc<dyn oma_sandbox::SandboxLauncher> {
        match self {
            SandboxKind::Isolated => {
                let mut config = oma_sandbox::IsolatedConfig::new(
                    oma_testkit::sandbox_agent_exe(),
                    state_dir.to_path_buf(),
                );
                config.disk_quota = false;
                config.pool = Some(oma_runtime::ready_pool(ready_boxes, workspaces, false));
                Arc::new(oma_sandbox::IsolatedLauncher::new(config))
            }
            SandboxKind::Local => Arc::new(oma_sandbox::LocalLauncher::new(
                oma_testkit::sandbox_agent_exe(),
            )),
        }
    }
}

/// A `user.message` as a client would send it; `n` makes every text distinct.
pub fn user_message(n: u64) -> Value {
    json!({
        "type": "user.message",
        "content": [{
            "type": "text",
            "text": format!(
                "Benchmark message {n}: summarise the quarterly report and list three risks."
            ),
        }],
    })
}

/// Appends events to `session` until its log holds `target` events, in store transactions of
/// `FILL_BATCH`. Events are validated by the same rules as `POST …/events`, so what is stored
/// is exactly what the API would have stored. Returns the log length afterwards.
pub async fn fill_events(store: &Store, tenant: &str, session: &str, target: u64) -> Result<u64> {
    let have = u64::try_from(store.session_last_seq(tenant, session).await?)
        .context("a negative sequence number")?;
    let mut n = have;
    while n < target {
        let take = FILL_BATCH.min(target - n);
        let mut batch: Vec<NewEvent> = Vec::with_capacity(take as usize);
        let bodies: Vec<Value> = (n..n + take).map(user_message).collect();
        for chunk in bodies.chunks(oma_core::events::MAX_EVENTS_PER_REQUEST) {
            batch.extend(validate_send(chunk, SendContext::default())?);
        }
        let stored = store.append_events(tenant, session, batch).await?;
        if stored.len() as u64 != take {
            bail!("appended {} events, expected {take}", stored.len());
        }
        n += take;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_messages_pass_send_validation() {
        let events = validate_send(&[user_message(1), user_message(2)], SendContext::default())
            .expect("valid events");
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e.kind == "user.message"));
        assert_ne!(events[0].body["content"], events[1].body["content"]);
    }
}
