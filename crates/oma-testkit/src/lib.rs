//! Test support for oma: stores on both backends and real servers on loopback.
//!
//! SQLite stores live in a temporary directory per test. PostgreSQL is used when
//! `OMA_TEST_DATABASE_URL` is set (CI sets it); tests then share that database and stay apart by
//! tenant: each `TestServer` makes a tenant of its own. When the variable is absent the
//! PostgreSQL variants print that they were skipped — never silently.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod fake_anthropic;
pub mod fake_mcp;
pub mod fake_model;
pub mod fake_openai;
pub mod infra;

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use oma_core::seal::{Sealer, generate_root_secret};
use oma_runtime::{Hub, Providers, Runtime, RuntimeConfig};
use oma_sandbox::{IsolatedConfig, IsolatedLauncher, LocalLauncher, SandboxLauncher};
use oma_server::AppState;
use oma_store::{Store, TenantRouter};
use oma_tools::{WebFetchClient, WebFetchOptions};
use std::sync::Arc;
use tempfile::TempDir;
use tokio::sync::oneshot;

pub use oma_store::Backend;

/// The backends to run a test against: SQLite always, PostgreSQL when configured.
pub fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Sqlite];
    if postgres_url().is_some() {
        v.push(Backend::Postgres);
    } else {
        eprintln!("note: OMA_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant");
    }
    v
}

pub fn postgres_url() -> Option<String> {
    std::env::var("OMA_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A migrated store. The returned directory (SQLite) must outlive the store.
pub async fn store(backend: Backend) -> Result<(Store, Option<TempDir>)> {
    let (url, dir) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir()?;
            (
                format!("sqlite://{}", dir.path().join("oma.db").display()),
                Some(dir),
            )
        }
        Backend::Postgres => (
            postgres_url().context("OMA_TEST_DATABASE_URL is not set")?,
            None,
        ),
    };
    let store = Store::connect(&url).await?;
    // Concurrent tests may migrate the same PostgreSQL database: sqlx takes an advisory lock.
    store.migrate_up().await?;
    Ok((store, dir))
}

/// A name no other test uses (tenants, resources).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// A fresh tenant in `store` with an agent and a cloud environment, made through the store's
/// own API: `(tenant, agent id, environment id)`.
pub async fn tenant_with_agent(store: &Store, tag: &str) -> Result<(String, String, String)> {
    use oma_core::agents::{AgentConfig, CreateAgentParams};
    use oma_core::environments::{CreateEnvironmentParams, EnvironmentSpec};
    let tenant = unique(tag);
    store.create_tenant(&tenant).await?;
    let p: CreateAgentParams =
        serde_json::from_value(serde_json::json!({"name": tag, "model": "claude-opus-4-8"}))?;
    let agent = store
        .create_agent(&tenant, &AgentConfig::create(p)?)
        .await?;
    let e: CreateEnvironmentParams =
        serde_json::from_value(serde_json::json!({"name": tag, "config": {"type": "cloud"}}))?;
    let env = store
        .create_environment(&tenant, &EnvironmentSpec::create(e)?)
        .await?;
    let id = |body: &str| -> Result<String> {
        let v: serde_json::Value = serde_json::from_str(body)?;
        v["id"]
            .as_str()
            .map(str::to_string)
            .context("created object without an id")
    };
    Ok((tenant, id(&agent)?, id(&env)?))
}

/// Which sandbox backend a test server's sessions use.
enum Sandboxing {
    Local { egress: Option<TestEgress> },
    Isolated { egress: Option<TestEgress> },
}

impl Sandboxing {
    fn egress(self) -> Option<TestEgress> {
        match self {
            Sandboxing::Local { egress } | Sandboxing::Isolated { egress } => egress,
        }
    }
}

/// The egress of a test server: operator allow rules (tests' upstreams are on loopback, which
/// only the operator may open) and the PEM roots of their test CAs.
#[derive(Debug, Clone, Default)]
pub struct TestEgress {
    pub allow: Vec<String>,
    pub upstream_roots: Vec<Vec<u8>>,
}

/// A running oma server on `127.0.0.1:<random port>` with a tenant and key of its own.
pub struct TestServer {
    pub base: String,
    pub tenant: String,
    pub key: String,
    pub http: reqwest::Client,
    pub state: AppState,
    pub store: Store,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    dir: TempDir,
}

impl TestServer {
    /// A server whose sessions have no model provider (turns end with a clear error).
    pub async fn start(backend: Backend) -> Result<Self> {
        Self::start_with(backend, Providers::default()).await
    }

    /// A server whose sessions use `providers` (typically the fake model servers).
    pub async fn start_with(backend: Backend, providers: Providers) -> Result<Self> {
        Self::start_configured(backend, providers, |_| {}).await
    }

    /// Like `start_with`, with the runtime's settings adjusted by `configure`.
    pub async fn start_configured(
        backend: Backend,
        providers: Providers,
        configure: impl FnOnce(&mut RuntimeConfig),
    ) -> Result<Self> {
        Self::start_on(
            backend,
            providers,
            configure,
            Sandboxing::Local { egress: None },
        )
        .await
    }

    /// Like `start_configured`, with sessions' network traffic (`web_fetch`, MCP servers) going
    /// through a real egress proxy (`egress`: the operator rules and upstream roots it trusts),
    /// on the `local` sandbox backend.
    pub async fn start_with_egress(
        backend: Backend,
        providers: Providers,
        configure: impl FnOnce(&mut RuntimeConfig),
        egress: TestEgress,
    ) -> Result<Self> {
        Self::start_on(
            backend,
            providers,
            configure,
            Sandboxing::Local {
                egress: Some(egress),
            },
        )
        .await
    }

    /// Like `start_configured`, with the `isolated` sandbox backend (bubblewrap, cgroups).
    /// `None`, with the reason printed, when this host cannot make isolated boxes; under CI
    /// (`CI` set) that is an error instead, so the escape tests can never silently skip there.
    pub async fn start_isolated(
        backend: Backend,
        providers: Providers,
        configure: impl FnOnce(&mut RuntimeConfig),
    ) -> Result<Option<Self>> {
        Self::start_isolated_with(backend, providers, configure, None).await
    }

    /// Like `start_isolated`, with sessions' traffic going through a real egress proxy
    /// (`egress`: the operator rules and upstream roots it trusts).
    pub async fn start_isolated_with(
        backend: Backend,
        providers: Providers,
        configure: impl FnOnce(&mut RuntimeConfig),
        egress: Option<TestEgress>,
    ) -> Result<Option<Self>> {
        let probe_dir = tempfile::tempdir()?;
        let probe = IsolatedLauncher::new(IsolatedConfig::new(
            sandbox_agent_exe(),
            probe_dir.path().to_path_buf(),
        ));
        if let Err(e) = probe.preflight().await {
            if std::env::var_os("CI").is_some() {
                anyhow::bail!("CI must be able to run isolated boxes: {e}");
            }
            eprintln!("skipped: this host cannot run isolated boxes: {e}");
            return Ok(None);
        }
        Ok(Some(
            Self::start_on(
                backend,
                providers,
                configure,
                Sandboxing::Isolated { egress },
            )
            .await?,
        ))
    }

    async fn start_on(
        backend: Backend,
        providers: Providers,
        configure: impl FnOnce(&mut RuntimeConfig),
        sandboxing: Sandboxing,
    ) -> Result<Self> {
        let (store, db_dir) = store(backend).await?;
        let dir = match db_dir {
            Some(d) => d,
            None => tempfile::tempdir()?,
        };
        let blobs = oma_blob::BlobStore::open_local(dir.path().join("blobs"))?;
        let store = store.with_blobs(blobs.clone());
        let sealer = Sealer::from_base64(&generate_root_secret())?;
        let mut server =
            Self::boot(store, blobs, sealer, dir, providers, configure, sandboxing).await?;
        let (tenant, key) = server.new_tenant().await?;
        server.tenant = tenant;
        server.key = key;
        Ok(server)
    }

    /// Stops this server without a word to anything it started (its runtime's hosts and
    /// boxes are abandoned, as in a crash) and starts a new one on the same database, data
    /// directory and root secret, with the same tenant and key.
    pub async fn restart_configured(
        mut self,
        providers: Providers,
        configure: impl FnOnce(&mut RuntimeConfig),
    ) -> Result<Self> {
        self.shutdown_now().await;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir()?);
        let sealer = (*self.state.sealer).clone();
        let mut server = Self::boot(
            self.store.clone(),
            self.state.blobs.clone(),
            sealer,
            dir,
            providers,
            configure,
            Sandboxing::Local { egress: None },
        )
        .await?;
        server.tenant = std::mem::take(&mut self.tenant);
        server.key = std::mem::take(&mut self.key);
        Ok(server)
    }

    /// A server over `store` (blobs attached) with its data in `dir`, and no tenant yet.
    async fn boot(
        store: Store,
        blobs: oma_blob::BlobStore,
        sealer: Sealer,
        dir: TempDir,
        providers: Providers,
        configure: impl FnOnce(&mut RuntimeConfig),
        sandboxing: Sandboxing,
    ) -> Result<Self> {
        let tenants = TenantRouter::single(store.clone());
        let mut config = RuntimeConfig::new(dir.path().join("workspaces"));
        config.backoff.base = std::time::Duration::from_millis(10);
        configure(&mut config);
        let launcher: Arc<dyn SandboxLauncher> =
            if matches!(sandboxing, Sandboxing::Isolated { .. }) {
                let mut config =
                    IsolatedConfig::new(sandbox_agent_exe(), dir.path().join("sandbox"));
                // Workspace disks are loop mounts that outlive the box by design; tests would leave
                // them behind. The sandbox crate's own tests cover them.
                config.disk_quota = false;
                Arc::new(IsolatedLauncher::new(config))
            } else {
                Arc::new(LocalLauncher::new(sandbox_agent_exe()))
            };
        let web = WebFetchClient::new(WebFetchOptions::default()).map_err(anyhow::Error::msg)?;
        let providers = providers.with_tenant_routes(Arc::new(sealer.clone()));
        let mut runtime = Runtime::new(
            tenants.clone(),
            Arc::new(Hub::default()),
            providers,
            launcher,
            config,
            web,
        );
        if let Some(egress) = sandboxing.egress() {
            let ca = oma_egress::DeploymentCa::load_or_create(dir.path(), &sealer)?;
            runtime = runtime.with_egress(oma_egress::Egress::new(oma_egress::EgressConfig {
                ca,
                upstream_roots: egress.upstream_roots,
                allow: egress.allow,
                deny: Vec::new(),
                connect_to: Vec::new(),
                ops: None,
            })?);
        }
        let state = AppState::new(tenants, sealer, blobs, None, runtime.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let serve_state = state.clone();
        let task = tokio::spawn(async move {
            let _ = oma_server::serve(listener, serve_state, async {
                let _ = rx.await;
            })
            .await;
        });
        Ok(TestServer {
            base: format!("http://{addr}"),
            tenant: String::new(),
            key: String::new(),
            http: reqwest::Client::builder().no_proxy().build()?,
            state,
            store,
            shutdown: Some(tx),
            task: Some(task),
            dir,
        })
    }

    /// Creates another tenant and returns `(tenant, key)`.
    pub async fn new_tenant(&self) -> Result<(String, String)> {
        let tenant = unique("t").replace('_', "-");
        self.store.create_tenant(&tenant).await?;
        let (_, key) = self.store.create_api_key(&tenant, Some("test")).await?;
        Ok((tenant, key))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The data directory (SQLite file and blobs for the SQLite backend).
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A request with this server's key.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.req_as(&self.key, method, path)
    }

    pub fn req_as(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("x-api-key", key)
    }

    /// POSTs JSON and returns `(status, body)`.
    pub async fn post(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<(u16, serde_json::Value)> {
        send(self.req(reqwest::Method::POST, path).json(&body)).await
    }

    pub async fn get(&self, path: &str) -> Result<(u16, serde_json::Value)> {
        send(self.req(reqwest::Method::GET, path)).await
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        self.shutdown_now().await;
    }

    async fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Sends a request and returns `(status, JSON body or Null)`.
pub async fn send(req: reqwest::RequestBuilder) -> Result<(u16, serde_json::Value)> {
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await?;
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Ok((status, body))
}

/// The in-box agent binary for the `local` sandbox in tests: `OMA_SANDBOX_AGENT`, else the
/// `oma-sandbox-agent` binary cargo built next to the test executables.
pub fn sandbox_agent_exe() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("OMA_SANDBOX_AGENT") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/<test> → target/debug/oma-sandbox-agent
    let dir = exe.parent().and_then(|d| {
        if d.ends_with("deps") {
            d.parent()
        } else {
            Some(d)
        }
    });
    dir.map(|d| d.join("oma-sandbox-agent")).unwrap_or_default()
}
