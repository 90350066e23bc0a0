//! `oma worker`: oma's own worker for self-hosted environments.
//!
//! It polls an environment's work queue with the environment key, claims items, and for each
//! claimed session runs the agent's sandbox tool calls (`bash`, `read`, `write`, `edit`,
//! `glob`, `grep`) in an oma sandbox box on this machine, answering each `agent.tool_use` with
//! a `user.tool_result`. The same protocol as the official SDK's `EnvironmentWorker`, so
//! either can serve the same queue, and sandboxes scale onto machines the server never sees.
//!
//! - [`client`]: the HTTP calls, in the API's shapes.
//! - [`lease`]: the heartbeat that keeps a claim, and tells when it is gone.
//! - [`ledger`]: which calls of a session are owed an answer, from its events.
//! - [`resources`]: the session's skills and memory stores on this machine.
//! - [`session`]: serving one claimed session, from its first call to its idle end.

pub mod client;
pub mod lease;
pub mod ledger;
pub mod resources;
mod session;
mod unzip;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oma_sandbox::SandboxLauncher;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use client::{CallError, Client};

/// The longest a poll is held open by the server (the API's bound).
const POLL_BLOCK_MS: u32 = 999;
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a shutting-down worker waits for its sessions to put their boxes away.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct WorkerConfig {
    /// The server's base URL.
    pub url: String,
    pub environment_id: String,
    /// The environment key (`oma environments keys create`).
    pub key: String,
    /// Each session's workspace is `workdir/<session id>`.
    pub workdir: PathBuf,
    /// Sent as `Anthropic-Worker-ID`: the name `workers_polling` and the logs know it by.
    pub worker_id: String,
    /// Starts the boxes the tools run in.
    pub launcher: Arc<dyn SandboxLauncher>,
    /// After a session's turn ends, how long to wait for more input before letting it go.
    pub max_idle: Duration,
    /// Sessions served at once; the worker stops claiming while this many are open.
    pub max_sessions: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("the server refused this worker: {0}")]
    Refused(CallError),
    #[error("{0}")]
    Setup(String),
}

/// Serves the queue until `shutdown`. A refused key (401/403/404 on poll) ends it with an
/// error; a server that is down is retried with backoff.
pub async fn run(config: WorkerConfig, shutdown: CancellationToken) -> Result<(), WorkerError> {
    std::fs::create_dir_all(&config.workdir).map_err(|e| {
        WorkerError::Setup(format!("cannot create {}: {e}", config.workdir.display()))
    })?;
    let client = Client::new(&config.url, &config.environment_id, &config.worker_id)
        .map_err(|e| WorkerError::Setup(e.to_string()))?;
    let ctx = Arc::new(session::Context {
        client: client.clone(),
        key: config.key.clone(),
        workdir: config.workdir.clone(),
        launcher: config.launcher.clone(),
        max_idle: config.max_idle,
    });
    let slots = Arc::new(Semaphore::new(config.max_sessions.max(1)));
    let sessions = shutdown.child_token();
    let mut tasks = JoinSet::new();
    let mut backoff = Duration::from_millis(500);
    tracing::info!(environment_id = %config.environment_id, worker_id = %config.worker_id, "polling for work");
    let result = loop {
        // Reap finished sessions so the set does not grow.
        while tasks.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break Ok(()),
            },
        };
        let polled = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            r = client.poll(&config.key, POLL_BLOCK_MS) => r,
        };
        match polled {
            Ok(None) => backoff = Duration::from_millis(500),
            Ok(Some(item)) => {
                backoff = Duration::from_millis(500);
                if let Err(e) = client.ack(&config.key, &item.id).await {
                    // Someone else acknowledged it first, or it stopped meanwhile.
                    tracing::warn!(work_id = %item.id, "could not acknowledge the item: {e}");
                    continue;
                }
                let ctx = ctx.clone();
                let cancel = sessions.clone();
                tasks.spawn(async move {
                    session::serve(&ctx, item, cancel).await;
                    drop(permit);
                });
            }
            Err(e) if matches!(e.status(), Some(401 | 403 | 404)) => {
                break Err(WorkerError::Refused(e));
            }
            Err(e) => {
                tracing::warn!("poll failed, retrying in {backoff:?}: {e}");
                tokio::select! {
                    _ = shutdown.cancelled() => break Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    };
    // Sessions put their boxes away; their items go back to the queue when the leases run
    // out, for another worker.
    sessions.cancel();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    result
}
