//! `oma serve`.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use oma_core::seal::{Sealer, generate_root_secret};
use oma_model::{AnthropicConfig, AnthropicProvider, ModelProvider, OpenAiConfig, OpenAiProvider};
use oma_runtime::{Hub, Providers, Runtime, RuntimeConfig};
use oma_sandbox::{IsolatedConfig, IsolatedLauncher, LocalLauncher, SandboxLauncher};
use oma_server::AppState;
use oma_store::TenantRouter;

/// How often a node re-reads the shard map (a move also re-reads it at once when a write
/// meets the fence, and waits longer than this before it deletes the old copy).
const SHARD_MAP_REFRESH: std::time::Duration = std::time::Duration::from_millis(500);
use oma_tools::{WebFetchClient, WebFetchOptions};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{DEFAULT_LISTEN, StorageArgs};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "OMA_LISTEN")]
    pub listen: Option<String>,
    /// Serve Prometheus metrics (`GET /metrics`, no authentication: keep it private) here.
    #[arg(long, env = "OMA_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Terminate TLS with this PEM certificate chain (with --tls-key); renewed files are
    /// picked up without a restart.
    #[arg(long, env = "OMA_TLS_CERT")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "OMA_TLS_KEY")]
    pub tls_key: Option<std::path::PathBuf>,
    /// This node's name among the nodes sharing the database (default: one kept in the data
    /// directory). Its session leases carry it.
    #[arg(long, env = "OMA_NODE_ID")]
    pub node_id: Option<String>,
    #[command(flatten)]
    pub storage: StorageArgs,
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let log_tail = init_logging();
    let resolved = args.storage.resolve()?;
    let listen = args
        .listen
        .clone()
        .or_else(|| resolved.file.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("invalid --listen address `{listen}`"))?;

    // Held until this function returns (the kernel drops it on any exit): `oma backup
    // restore` refuses a data dir in use, and two servers cannot share one SQLite database.
    // Servers over PostgreSQL may share a data dir's blobs, so theirs is a shared lock.
    std::fs::create_dir_all(&resolved.data_dir).with_context(|| {
        format!(
            "creating the data directory {}",
            resolved.data_dir.display()
        )
    })?;
    let lock_mode = match resolved.backend {
        oma_store::Backend::Sqlite => crate::backup::LockMode::Exclusive,
        oma_store::Backend::Postgres => crate::backup::LockMode::Shared,
    };
    let _data_dir_lock =
        crate::backup::lock_data_dir(&resolved.data_dir, lock_mode).map_err(|e| match e {
            crate::backup::LockError::Busy => anyhow::anyhow!(
                "{} is in use by another oma process (a server or a restore): stop it or use \
                 another --data-dir",
                resolved.data_dir.display()
            ),
            crate::backup::LockError::Io(e) => {
                anyhow::Error::new(e).context("locking the data directory")
            }
        })?;
    let store = resolved.open_migrated_store().await?;
    let sealer = load_root_secret(&resolved.data_dir)?;
    let blobs = resolved.open_blobs()?;
    // List rates for `usage.list_cost` and budgets: one table for the whole process.
    let prices = resolved.file.pricing.table()?;
    if oma_core::pricing::install(prices).is_err() {
        tracing::warn!(
            op = "serve",
            "the price table was already set; [pricing] is not applied"
        );
    }
    let bootstrap = std::env::var("OMA_API_KEY").ok().filter(|k| !k.is_empty());
    if bootstrap.is_none() {
        tracing::warn!("OMA_API_KEY is not set: only keys made with `oma keys create` will work");
    }
    // Events too large for a row spill to the blob store; every read resolves them.
    let store = store.with_blobs(blobs.clone());
    // Retention by the `[retention]` policy, on a timer (the same prune as `oma prune`).
    // Which shard holds which tenant; a shard that cannot be reached or whose schema is not
    // this binary's stops the start, named. The map is re-read as tenants are moved.
    let tenants = TenantRouter::open(store.clone()).await?;
    let _refresher = tenants.start_refresher(SHARD_MAP_REFRESH);
    let janitor = crate::prune::start_janitor(tenants.clone(), &resolved.file.retention)?;
    // Operational events (tool calls, model requests, transitions, …), written in batches,
    // each with its tenant's rows.
    let ops = oma_ops::OpsRecorder::start_routed(tenants.clone(), oma_ops::OpsConfig::default());
    // Who this node is among the others on the database, and how long its leases last.
    let node = crate::cluster::node_identity(
        &resolved.data_dir,
        args.node_id
            .clone()
            .or_else(|| resolved.file.cluster.node_id.clone()),
    )?;
    let lease_ttl = crate::cluster::lease_ttl(&resolved.file.cluster)?;
    let runtime = build_runtime(
        &resolved.data_dir,
        tenants.clone(),
        Arc::new(sealer.clone()),
        (&node.node_id, lease_ttl),
    )?
    .with_ops(ops.clone());
    // The network edge: one proxy per active session, under the deployment CA.
    let runtime = runtime.with_egress(build_egress(
        &resolved.data_dir,
        &sealer,
        &resolved.file.egress,
        ops.clone(),
    )?);
    // web_search answers from the operator's search backend, or is not offered at all.
    let runtime = match resolved.file.web_search.client()? {
        Some(search) => {
            tracing::info!(
                op = "web_search",
                provider = %search.provider(),
                base_url = %search.base_url(),
                max_results = search.max_results(),
                "web_search is offered to models, answered by {}",
                search.provider()
            );
            runtime.with_web_search(search)
        }
        None => {
            tracing::info!(
                op = "web_search",
                "web_search is not offered to models: no search backend is configured \
                 ([web_search] in oma.toml or OMA_WEB_SEARCH_PROVIDER)"
            );
            runtime
        }
    };
    let state = AppState::new(
        tenants,
        sealer,
        blobs,
        bootstrap.as_deref(),
        runtime.clone(),
    )
    .with_admin(oma_server::routes::admin::Admin::new(
        std::env::var("OMA_ADMIN_KEY").ok().as_deref(),
        Some(log_tail),
    ))
    .with_work_lease_ttl(work_lease_ttl(&resolved.file.work)?)
    .with_public_base_url(resolved.public_base_url.clone());
    // Replies integrations still owe (turns that were running when the server stopped).
    tokio::spawn({
        let integrations = state.integrations.clone();
        async move { integrations.resume().await }
    });

    let tls = crate::listeners::tls_config(&args, &resolved.file)?;
    let metrics = crate::listeners::start_metrics(&args, &resolved.file, &state).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        op = "serve",
        listen = %local,
        database = store.backend().name(),
        data_dir = %resolved.data_dir.display(),
        config = ?resolved.config_path,
        env = resolved.env.as_deref().unwrap_or("-"),
        public_base_url = resolved.public_base_url.as_deref().unwrap_or("-"),
        node_id = %node.node_id,
        "oma is listening on {scheme}://{local}"
    );
    // Leases renewed, orphans swept, other nodes' events and wake-ups heard.
    let address = resolved
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{local}"));
    let cluster = runtime
        .start_cluster(&address)
        .await
        .context("registering this node")?;
    // Sessions a crash or restart left mid-turn (or with queued input) continue by themselves.
    let resumed = runtime.recover().await?;
    if resumed > 0 {
        tracing::info!(
            op = "recover",
            sessions = resumed,
            "resuming interrupted sessions"
        );
    }
    match tls {
        Some(tls) => oma_server::serve_tls(listener, tls, state, shutdown_signal()).await?,
        None => oma_server::serve(listener, state, shutdown_signal()).await?,
    }
    // Hand the sessions over to the other nodes (or to this one's next start).
    drop(cluster);
    runtime.drain().await;
    if let Some(m) = metrics {
        m.abort();
    }
    if let Some(j) = janitor {
        j.abort();
    }
    ops.shutdown().await;
    store.close().await;
    tracing::info!(op = "serve", "stopped");
    Ok(())
}

/// The session runtime: model providers from the environment (like the official SDK), the
/// `local` sandbox backend running this binary's in-box agent, workspaces under the data dir.
fn build_runtime(
    data_dir: &Path,
    tenants: TenantRouter,
    sealer: Arc<Sealer>,
    (node_id, lease_ttl): (&str, Duration),
) -> Result<Runtime> {
    let anthropic = match AnthropicConfig::from_env() {
        Ok(cfg) => Some(
            Arc::new(AnthropicProvider::new(cfg).context("ANTHROPIC_BASE_URL")?)
                as Arc<dyn ModelProvider>,
        ),
        Err(e) => {
            tracing::warn!(
                op = "serve",
                "{e}: agent turns on Anthropic models will fail until it is set"
            );
            None
        }
    };
    // Tenants' own model routes (/v1/oma/model_routes) come first.
    let mut providers = Providers::new(anthropic).with_tenant_routes(sealer);
    // An OpenAI-compatible endpoint serves the model ids listed in OMA_OPENAI_MODELS.
    let openai_models = env_list("OMA_OPENAI_MODELS");
    if !openai_models.is_empty() {
        let base = std::env::var("OMA_OPENAI_BASE_URL")
            .context("OMA_OPENAI_MODELS needs OMA_OPENAI_BASE_URL")?;
        let key = std::env::var("OMA_OPENAI_API_KEY").unwrap_or_default();
        let provider: Arc<dyn ModelProvider> = Arc::new(
            OpenAiProvider::new(OpenAiConfig::new(base, key)).context("OMA_OPENAI_BASE_URL")?,
        );
        for model in openai_models {
            providers = providers.route(model, provider.clone());
        }
    }
    let mut config = RuntimeConfig::new(data_dir.join("workspaces"));
    config.node_id = node_id.to_string();
    config.lease_ttl = lease_ttl;
    if let Some(ms) = env_u64("OMA_MODEL_RETRY_BASE_MS")? {
        config.backoff.base = Duration::from_millis(ms);
    }
    if let Some(n) = env_u64("OMA_MODEL_RETRY_ATTEMPTS")? {
        config.backoff.max_attempts = u32::try_from(n).unwrap_or(u32::MAX).max(1);
    }
    if let Some(n) = env_u64("OMA_MAX_TOOL_ROUNDS")? {
        config.max_tool_rounds = u32::try_from(n).unwrap_or(u32::MAX).max(1);
    }
    // Idle workspaces go to the blob store after this long (0: never); snapshots expire.
    if let Some(secs) = env_u64("OMA_SNAPSHOT_AFTER_IDLE_SECS")? {
        config.snapshot_after_idle = (secs > 0).then(|| Duration::from_secs(secs));
    }
    // Boxes start at session create (the documented behaviour); off, at the first tool call.
    if let Some(on) = env_switch("OMA_PROVISION_AT_CREATE")? {
        config.provision_at_create = on;
    }
    if let Some(days) = env_u64("OMA_SNAPSHOT_TTL_DAYS")? {
        config.snapshot_ttl = Duration::from_secs(days.saturating_mul(24 * 60 * 60));
    }
    // Internal MCP servers are opened like any internal host, by the egress rules.
    if std::env::var_os("OMA_MCP_PRIVATE_HOSTS").is_some() {
        tracing::warn!(
            "OMA_MCP_PRIVATE_HOSTS is no longer read: MCP traffic goes through the egress \
             proxy; open internal MCP hosts with `[egress] allow` in oma.toml"
        );
    }
    let backend = std::env::var("OMA_SANDBOX").unwrap_or_default();
    // Boxes kept ready for new sessions (isolated backend): a new session's first tool call
    // does not wait for bubblewrap. Each idle box holds about 10 MiB.
    // `oma serve` always has an egress: every isolated box reaches the network through its
    // session's proxy.
    let ready = env_u64("OMA_SANDBOX_POOL")?.unwrap_or(DEFAULT_READY_BOXES);
    let pool = oma_runtime::ready_pool(
        usize::try_from(ready).unwrap_or(usize::MAX),
        &config.workspaces_dir,
        true,
    );
    let launcher = sandbox_launcher(&backend, &data_dir.join("sandbox"), Some(pool))?;
    let web = WebFetchClient::new(WebFetchOptions::default()).map_err(anyhow::Error::msg)?;
    Ok(Runtime::new(
        tenants,
        Arc::new(Hub::default()),
        providers,
        launcher,
        config,
        web,
    ))
}

/// The egress: the deployment CA (created sealed on first start), upstream roots, and the
/// operator's allow and deny rules and host overrides (`connect_to`).
fn build_egress(
    data_dir: &Path,
    sealer: &Sealer,
    config: &crate::config::EgressFileConfig,
    ops: oma_ops::OpsRecorder,
) -> Result<oma_egress::Egress> {
    let ca = oma_egress::DeploymentCa::load_or_create(data_dir, sealer)
        .context("the egress deployment CA")?;
    let mut upstream_roots = Vec::new();
    for f in &config.upstream_ca_files {
        upstream_roots.push(
            std::fs::read(f)
                .with_context(|| format!("[egress] upstream_ca_files: {}", f.display()))?,
        );
    }
    let mut connect_to = Vec::new();
    for (host, to) in &config.connect_to {
        let c = oma_egress::ConnectTo::parse(host, to)?;
        tracing::info!(op = "egress", host = %c.host, to = %to, "egress connects elsewhere for this host");
        connect_to.push(c);
    }
    tracing::info!(op = "egress", ca = %ca.fingerprint(), "egress proxy ready");
    oma_egress::Egress::new(oma_egress::EgressConfig {
        ca,
        upstream_roots,
        allow: config.allow.clone(),
        deny: config.deny.clone(),
        connect_to,
        ops: Some(ops),
    })
    .context("starting the egress")
}

/// Boxes `oma serve` keeps ready by default (`OMA_SANDBOX_POOL`).
const DEFAULT_READY_BOXES: u64 = 2;

/// The sandbox backend (the server's and `oma worker`'s): `isolated` (bubblewrap, the
/// default) or, only when the operator asks with `local`, the unisolated `local` backend. An
/// isolated backend that cannot work on this host is reported now and on every launch; it
/// never falls back to `local`. `state_dir`: the isolated backend's own files.
pub(crate) fn sandbox_launcher(
    backend: &str,
    state_dir: &Path,
    pool: Option<oma_sandbox::PoolConfig>,
) -> Result<Arc<dyn SandboxLauncher>> {
    let agent_exe =
        std::env::current_exe().context("locating the oma binary for the sandbox agent")?;
    match backend.trim() {
        "" | "isolated" => {
            let mut config = IsolatedConfig::new(agent_exe, state_dir.to_path_buf());
            if let Ok(bwrap) = std::env::var("OMA_BWRAP")
                && !bwrap.trim().is_empty()
            {
                config.bwrap = bwrap.trim().into();
            }
            // Workspace disk quotas (loop-mounted images; root only) can be turned off.
            if let Some(on) = env_switch("OMA_SANDBOX_DISK_QUOTA")? {
                config.disk_quota = on;
            }
            config.pool = pool;
            let launcher = Arc::new(IsolatedLauncher::new(config));
            let check = launcher.clone();
            tokio::spawn(async move {
                match check.preflight().await {
                    Ok(p) => tracing::info!(
                        op = "sandbox",
                        backend = "isolated",
                        bwrap = %p.bwrap_version,
                        cgroups = p.cgroups,
                        "sandboxes are isolated"
                    ),
                    Err(e) => tracing::error!(
                        op = "sandbox",
                        backend = "isolated",
                        "sessions cannot run tools until this is fixed: {e}"
                    ),
                }
            });
            Ok(launcher)
        }
        "local" => {
            tracing::warn!(
                op = "sandbox",
                backend = "local",
                "sandbox backend `local`: tools run on this host WITHOUT isolation"
            );
            Ok(Arc::new(LocalLauncher::new(agent_exe)))
        }
        other => anyhow::bail!("the sandbox backend must be `isolated` or `local`, not `{other}`"),
    }
}

fn env_list(name: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// An on/off variable: `on`/`1`/`true`/`yes` or `off`/`0`/`false`/`no`; unset or empty is
/// `None` (the default applies); anything else is an error naming the variable.
fn env_switch(name: &str) -> Result<Option<bool>> {
    let Ok(v) = std::env::var(name) else {
        return Ok(None);
    };
    match v.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "1" | "on" | "true" | "yes" => Ok(Some(true)),
        "0" | "off" | "false" | "no" => Ok(Some(false)),
        other => anyhow::bail!("{name} must be on or off, got `{other}`"),
    }
}

fn env_u64(name: &str) -> Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            Ok(Some(v.trim().parse().with_context(|| {
                format!("{name} must be a whole number")
            })?))
        }
        _ => Ok(None),
    }
}

/// JSON logs on stdout, also fanned out to `oma tail` subscribers through the returned tail.
fn init_logging() -> oma_ops::tail::LogTail {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let tail = oma_ops::tail::LogTail::new();
    let filter = tracing_subscriber::EnvFilter::try_from_env("OMA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // One layer writes the JSON lines to stdout and feeds `oma tail`, so both see the same
    // lines, with the fields of the session span they were logged in.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(tail.layer_with_stdout())
        .try_init();
    tail
}

/// The root secret: `OMA_ROOT_SECRET`, else `DATA_DIR/root.key`, generated on first start.
pub(crate) fn load_root_secret(data_dir: &Path) -> Result<Sealer> {
    if let Ok(b64) = std::env::var("OMA_ROOT_SECRET")
        && !b64.trim().is_empty()
    {
        return Sealer::from_base64(&b64).context("OMA_ROOT_SECRET");
    }
    let path = data_dir.join("root.key");
    if path.exists() {
        let b64 = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return Sealer::from_base64(&b64)
            .with_context(|| format!("the root key in {}", path.display()));
    }
    std::fs::create_dir_all(data_dir)?;
    let b64 = generate_root_secret();
    write_private(&path, &b64)?;
    tracing::warn!(
        path = %path.display(),
        "generated a new root secret: it seals every stored credential; back this file up (or set \
         OMA_ROOT_SECRET) — without it sealed secrets cannot be recovered"
    );
    Sealer::from_base64(&b64).context("the generated root key")
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(_path: &Path, _contents: &str) -> Result<()> {
    anyhow::bail!("generating a root key file needs a Unix system: set OMA_ROOT_SECRET")
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!(op = "serve", "shutting down");
}

/// The default lease of a self-hosted work item: `OMA_WORK_LEASE_TTL_SECONDS`, else
/// `[work] lease_ttl_seconds`, else 30 s; within the bounds a heartbeat may ask for.
fn work_lease_ttl(file: &crate::config::WorkFileConfig) -> Result<i64> {
    let secs = match env_u64("OMA_WORK_LEASE_TTL_SECONDS")? {
        Some(s) => Some(s),
        None => file.lease_ttl_seconds,
    };
    let Some(secs) = secs else {
        return Ok(oma_core::work::DEFAULT_TTL_SECONDS);
    };
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    if !(oma_core::work::MIN_TTL_SECONDS..=oma_core::work::MAX_TTL_SECONDS).contains(&secs) {
        anyhow::bail!(
            "[work] lease_ttl_seconds (OMA_WORK_LEASE_TTL_SECONDS) must be between {} and {} seconds, got {secs}",
            oma_core::work::MIN_TTL_SECONDS,
            oma_core::work::MAX_TTL_SECONDS
        );
    }
    Ok(secs)
}
