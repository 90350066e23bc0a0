//! `oma worker`: serves a self-hosted environment's work queue from this machine (see the
//! `oma-worker` crate). Each claimed session's tools run in a sandbox box here, so sandboxes
//! scale onto machines the server never reaches.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tokio_util::sync::CancellationToken;

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The server's base URL.
    #[arg(long, env = "OMA_URL", default_value = "http://127.0.0.1:8787")]
    pub url: String,
    /// The self-hosted environment whose queue to serve.
    #[arg(long, env = "OMA_ENVIRONMENT_ID")]
    pub environment: String,
    /// The environment's key (`oma environments keys create ENV_ID`).
    #[arg(long, env = "OMA_ENVIRONMENT_KEY", hide_env_values = true)]
    pub key: String,
    /// Where sessions' workspaces live: one folder per session.
    #[arg(long, env = "OMA_WORKER_WORKDIR")]
    pub workdir: PathBuf,
    /// The name this worker polls under (`Anthropic-Worker-ID`); host name and pid by default.
    #[arg(long, env = "OMA_WORKER_ID")]
    pub worker_id: Option<String>,
    /// `isolated` (bubblewrap boxes: no network, no view of this machine beyond the
    /// workspace) or `local` (tools run as this user, unisolated).
    #[arg(long, env = "OMA_SANDBOX", default_value = "isolated")]
    pub sandbox: String,
    /// Seconds to keep serving a session after its turn ended before letting it go (its next
    /// input queues it again).
    #[arg(long, env = "OMA_WORKER_MAX_IDLE_SECONDS", default_value_t = 60)]
    pub max_idle_seconds: u64,
    /// Sessions served at once.
    #[arg(long, env = "OMA_WORKER_MAX_SESSIONS", default_value_t = 4)]
    pub max_sessions: usize,
}

pub async fn run(args: WorkerArgs) -> Result<()> {
    init_logging();
    let workdir = std::path::absolute(&args.workdir)
        .with_context(|| format!("resolving {}", args.workdir.display()))?;
    std::fs::create_dir_all(&workdir)
        .with_context(|| format!("creating the workdir {}", workdir.display()))?;
    let launcher =
        crate::serve::sandbox_launcher(&args.sandbox, &workdir.join(".oma-sandbox"), None)?;
    let worker_id = args.worker_id.unwrap_or_else(default_worker_id);
    let config = oma_worker::WorkerConfig {
        url: args.url,
        environment_id: args.environment,
        key: args.key,
        workdir,
        worker_id,
        launcher,
        max_idle: Duration::from_secs(args.max_idle_seconds),
        max_sessions: args.max_sessions,
    };
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        crate::serve::shutdown_signal().await;
        tracing::info!("shutting down");
        on_signal.cancel();
    });
    oma_worker::run(config, shutdown).await?;
    Ok(())
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let host = if host.is_empty() {
        "worker".to_string()
    } else {
        host
    };
    format!("{host}-{}", std::process::id())
}

/// Human-readable logs on stderr (`OMA_LOG` filters, as for the server).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OMA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
