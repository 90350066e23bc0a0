//! Serving one claimed session: follow its events, run the calls it owes this worker in a
//! box, answer them, and let go once its turn has been over for `max_idle`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oma_sandbox::{BoxSpec, Sandbox, SandboxError, SandboxLauncher};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::{CallError, Client, WorkItem};
use crate::lease::{Lease, LeaseEnd};
use crate::ledger::{Ledger, ToolCall};
use crate::resources::{self, MemoryStores, SetupError};

/// How long a finished call's result is retried against a server that is down.
const SEND_RETRY_WINDOW: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) struct Context {
    pub client: Client,
    pub key: String,
    pub workdir: PathBuf,
    pub launcher: Arc<dyn SandboxLauncher>,
    pub max_idle: Duration,
}

/// Serves `item` until its session is at rest, the lease ends, or the worker shuts down.
pub(crate) async fn serve(ctx: &Context, item: WorkItem, shutdown: CancellationToken) {
    let session_id = item.data.id.clone();
    let work_id = item.id.clone();
    if item.data.kind != "session" || !is_plain_id(&session_id) {
        tracing::warn!(work_id = %work_id, kind = %item.data.kind, "skipping an item that is not a session");
        return;
    }
    // The sessions token is this item's credential for everything it does; without one
    // (an older server) the environment key still reaches the session's events.
    let bearer = match item
        .secret
        .as_deref()
        .and_then(oma_core::work::decode_secret)
    {
        Some(token) => token,
        None => {
            tracing::warn!(work_id = %work_id, "the item carries no sessions token; using the environment key");
            ctx.key.clone()
        }
    };
    tracing::info!(work_id = %work_id, session_id = %session_id, "serving the session");
    let lease = Lease::start(ctx.client.clone(), bearer.clone(), work_id.clone());
    let workspace = ctx.workdir.join(&session_id);
    let slot = BoxSlot::new(
        ctx.launcher.clone(),
        BoxSpec {
            session_id: session_id.clone(),
            workspace,
            ..BoxSpec::default()
        },
    );
    // Every call of this session: cancelled before the box goes, so nothing answers for an
    // item this worker no longer serves.
    let calls = CancellationToken::new();
    let memory: tokio::sync::OnceCell<Arc<MemoryStores>> = tokio::sync::OnceCell::new();
    let mut worker_shutdown = false;
    let outcome = tokio::select! {
        r = follow(ctx, &session_id, &bearer, &slot, &calls, &memory) => r,
        _ = lease.ended() => Ok(()),
        _ = shutdown.cancelled() => { worker_shutdown = true; Ok(()) }
    };
    // The calls and the box go first, so nothing still runs once the item is given up.
    calls.cancel();
    slot.shutdown().await;
    let end = lease.end();
    lease.release();
    if let Err(e) = &outcome {
        tracing::error!(work_id = %work_id, session_id = %session_id, "gave up on the session: {e}");
    }
    if end == LeaseEnd::Lost {
        tracing::info!(work_id = %work_id, "lease lost; the item is someone else's now");
        return;
    }
    // What the last calls wrote to the memory stores is saved before the item is given up.
    if let Some(stores) = memory.get() {
        stores.sync(&ctx.client, &bearer).await;
    }
    if worker_shutdown {
        tracing::info!(work_id = %work_id, "shutting down; the item returns to the queue when its lease runs out");
        return;
    }
    match ctx.client.stop(&bearer, &work_id, true).await {
        Ok(()) => tracing::info!(work_id = %work_id, session_id = %session_id, "stopped the item"),
        Err(e) if e.status() == Some(409) => {}
        Err(e) => tracing::warn!(work_id = %work_id, "could not stop the item: {e}"),
    }
}

/// Ids become folder names: only what the server's ids are made of.
fn is_plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Follows the session until it is at rest for `max_idle` or terminated.
async fn follow(
    ctx: &Context,
    session_id: &str,
    bearer: &str,
    slot: &Arc<BoxSlot>,
    calls: &CancellationToken,
    memory: &tokio::sync::OnceCell<Arc<MemoryStores>>,
) -> Result<(), SetupError> {
    let session = retry(|| ctx.client.session(bearer, session_id)).await?;
    if session.get("status").and_then(Value::as_str) == Some("terminated") {
        tracing::info!(session_id = %session_id, "the session is terminated; nothing to run");
        return Ok(());
    }
    // The skills and memory stores the system prompt promises, before any call runs.
    let workspace = ctx.workdir.join(session_id);
    match resources::install_skills(&ctx.client, bearer, &session, &workspace).await {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(session_id = %session_id, skills = n, "installed the agent's skills")
        }
        Err(e) => {
            tracing::error!(session_id = %session_id, "the agent's skills could not be installed: {e}")
        }
    }
    let (stores, mounts) = MemoryStores::download(
        &ctx.client,
        bearer,
        &session,
        &ctx.workdir.join(".oma-memory").join(session_id),
        ctx.launcher.isolated(),
    )
    .await?;
    slot.add_mounts(mounts).await;
    let stores = memory
        .get_or_init(|| async { Arc::new(stores) })
        .await
        .clone();
    let answerer = Arc::new(Answerer {
        client: ctx.client.clone(),
        bearer: bearer.to_string(),
        session_id: session_id.to_string(),
        slot: slot.clone(),
        memory: stores,
    });
    let mut ledger = Ledger::default();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut running: HashMap<String, CancellationToken> = HashMap::new();
    // The sequence number of the last streamed event: a reconnect resumes after it.
    let mut last_seq: Option<String> = None;
    let mut quiet_since = Instant::now();
    let mut backoff = Duration::from_millis(200);
    loop {
        let mut stream = match ctx
            .client
            .stream(bearer, session_id, last_seq.as_deref())
            .await
        {
            Ok(s) => s,
            Err(e) if e.is_transient() => {
                tracing::warn!(session_id = %session_id, "cannot open the event stream, retrying: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        backoff = Duration::from_millis(200);
        if last_seq.is_none() {
            // The stream is open, so nothing committed from here on is missed; the history
            // says what happened before.
            let mut page: Option<String> = None;
            loop {
                let (events, next) =
                    retry(|| ctx.client.events_page(bearer, session_id, page.as_deref())).await?;
                for e in &events {
                    ledger.note(e);
                }
                match next {
                    Some(n) => page = Some(n),
                    None => break,
                }
            }
            quiet_since = Instant::now();
        }
        let mut parser = oma_sse::SseParser::new();
        loop {
            if ledger.terminated() && running.is_empty() {
                return Ok(());
            }
            for call in ledger.take_runnable() {
                let cancel = calls.child_token();
                running.insert(call.id.clone(), cancel.clone());
                tokio::spawn(answer(answerer.clone(), call, cancel, done_tx.clone()));
            }
            let rest_until =
                (ledger.at_rest() && running.is_empty()).then(|| quiet_since + ctx.max_idle);
            tokio::select! {
                chunk = stream.chunk() => {
                    let bytes = match chunk {
                        Ok(Some(b)) => b,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!(session_id = %session_id, "event stream broke: {e}");
                            break;
                        }
                    };
                    let frames = match parser.push(&bytes) {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::warn!(session_id = %session_id, "unreadable event stream: {e}");
                            break;
                        }
                    };
                    for frame in frames {
                        if frame.event == "ping" {
                            continue;
                        }
                        if let Some(id) = frame.id.filter(|i| !i.is_empty()) {
                            last_seq = Some(id);
                        }
                        let Ok(event) = serde_json::from_str::<Value>(&frame.data) else {
                            continue;
                        };
                        quiet_since = Instant::now();
                        for id in ledger.note(&event).settled_elsewhere {
                            if let Some(cancel) = running.get(&id) {
                                cancel.cancel();
                            }
                        }
                    }
                }
                Some(id) = done_rx.recv() => {
                    running.remove(&id);
                    ledger.finished(&id);
                    quiet_since = Instant::now();
                }
                _ = sleep_until(rest_until) => {
                    tracing::info!(session_id = %session_id, "the session has been idle for {:?}; letting it go", ctx.max_idle);
                    return Ok(());
                }
            }
        }
        // The stream ended (the server restarted, a proxy timed out): reconnect.
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Retries a call while the server is unreachable or overloaded, for a while.
async fn retry<T, F, Fut>(mut f: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CallError>>,
{
    let started = Instant::now();
    let mut backoff = Duration::from_millis(200);
    loop {
        match f().await {
            Err(e) if e.is_transient() && started.elapsed() < SEND_RETRY_WINDOW => {
                tracing::debug!("retrying after: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            r => return r,
        }
    }
}

/// What every call of one session needs to run and be answered.
struct Answerer {
    client: Client,
    bearer: String,
    session_id: String,
    slot: Arc<BoxSlot>,
    memory: Arc<MemoryStores>,
}

/// Runs one call and sends its result; reports the call id on `done` either way.
async fn answer(
    answerer: Arc<Answerer>,
    call: ToolCall,
    cancel: CancellationToken,
    done: mpsc::UnboundedSender<String>,
) {
    let Answerer {
        client,
        bearer,
        session_id,
        slot,
        memory,
    } = &*answerer;
    let started = Instant::now();
    let outcome = run_call(slot, &call, cancel.clone()).await;
    // The call's changes to the memory stores are saved before the model hears of it.
    if !cancel.is_cancelled() {
        memory.sync(client, bearer).await;
    }
    // Cancelled: settled elsewhere, or this worker let the session go; either way the
    // result is not this worker's to give.
    if let Some((content, is_error)) = outcome.filter(|_| !cancel.is_cancelled()) {
        tracing::info!(session_id = %session_id, tool = %call.name, tool_use_id = %call.id, is_error, elapsed_ms = started.elapsed().as_millis() as u64, "tool call finished");
        let sent = retry(|| {
            client.send_tool_result(bearer, session_id, &call.id, content.clone(), is_error)
        })
        .await;
        if let Err(e) = sent {
            // Answered by someone else meanwhile, or the session moved on (interrupted).
            tracing::warn!(session_id = %session_id, tool_use_id = %call.id, "the result was not accepted: {e}");
        }
    }
    let _ = done.send(call.id);
}

/// The call's result content and error flag; `None` when cancelled (the call was settled
/// elsewhere, nothing to send).
async fn run_call(
    slot: &BoxSlot,
    call: &ToolCall,
    cancel: CancellationToken,
) -> Option<(Vec<Value>, bool)> {
    let error = |text: String| Some((vec![json!({"type": "text", "text": text})], true));
    let parsed = match oma_tools::parse_call(&call.name, &call.input) {
        Ok(c) => c,
        Err(message) => return error(message),
    };
    let sandbox = match slot.get().await {
        Ok(b) => b,
        Err(e) => return error(format!("the worker could not start a sandbox: {e}")),
    };
    match sandbox.call(parsed, cancel).await {
        Ok(outcome) => Some((oma_tools::content_blocks(&outcome), outcome.is_error)),
        Err(SandboxError::Cancelled) => None,
        Err(e) => error(format!(
            "the sandbox failed while running `{}`: {e}. The next call gets a fresh sandbox \
             (files in the workspace are kept).",
            call.name
        )),
    }
}

/// The session's box, started on the first call and restarted when it has failed.
struct BoxSlot {
    launcher: Arc<dyn SandboxLauncher>,
    spec: Mutex<BoxSpec>,
    current: Mutex<Option<Arc<dyn Sandbox>>>,
}

impl BoxSlot {
    fn new(launcher: Arc<dyn SandboxLauncher>, spec: BoxSpec) -> Arc<Self> {
        Arc::new(BoxSlot {
            launcher,
            spec: Mutex::new(spec),
            current: Mutex::new(None),
        })
    }

    /// Folders every box of the session binds (memory stores); before the first call.
    async fn add_mounts(&self, mounts: Vec<oma_sandbox::Mount>) {
        self.spec.lock().await.mounts.extend(mounts);
    }

    async fn get(&self) -> Result<Arc<dyn Sandbox>, SandboxError> {
        let mut current = self.current.lock().await;
        if let Some(b) = current.as_ref()
            && b.failure().is_none()
        {
            return Ok(b.clone());
        }
        if let Some(old) = current.take() {
            old.shutdown().await;
        }
        let spec = self.spec.lock().await.clone();
        let b = self.launcher.launch(spec).await?;
        let info = b.info();
        tracing::info!(session_id = %info.session_id, backend = info.backend, isolated = info.isolated, workspace = %info.workspace.display(), "started a sandbox");
        *current = Some(b.clone());
        Ok(b)
    }

    async fn shutdown(&self) {
        if let Some(b) = self.current.lock().await.take() {
            b.shutdown().await;
        }
    }
}
