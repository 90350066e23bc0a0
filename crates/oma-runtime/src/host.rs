//! `SessionHost`: the one task that works for an active session and the only writer of its log.
//!
//! The host loop: consume queued input in order; a message starts a turn; tool confirmations
//! and custom tool results settle the calls a turn is waiting on and resume it. A turn
//! alternates model requests and tool calls until the model stops asking for tools, the turn
//! waits on the user (`requires_action`), an interrupt arrives, or retries run out. Every state
//! change is one atomic `Step` (input consumed + events appended + status), so a crash at any
//! point leaves a log the next host can finish from.
//!
//! This file holds the loop (input while idle, the turn, recovery, tools, bookkeeping); the
//! parts live beside it in `host/`: `model` (requests, streaming, compaction), `settlement`
//! (which calls run, wait or are refused), `threads` (multi-agent delegation), `outcome`
//! (grading), `mcp`, `egress`, `repos`, `snapshot`, `attachments`, `ops`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use oma_core::events::NewEvent;
use oma_model::types::{Block, Message, ModelRequest, Role, SystemBlock, ToolSpec, Usage};
use oma_model::{Accumulator, ErrorClass, ModelError, StreamEvent};
use oma_sandbox::Sandbox;
use oma_store::Store;
use oma_store::events::StoredEvent;
use oma_store::runtime::{QueuedInput, Step};

use crate::Runtime;
use crate::context::{Projection, from_stored, project};
use crate::hub::{Committed, Preview};
use crate::record::{self, IdleReason};

/// How long a host that met its tenant's move waits for the switch before leaving the
/// session to the sweep.
const MOVE_WAIT: Duration = Duration::from_secs(60);

mod attachments;
pub(crate) mod boxes;
mod egress;
mod mcp;
mod model;
mod ops;
mod outcome;
mod repos;
mod settlement;
mod snapshot;
mod threads;

use model::*;
use settlement::*;

type HostResult<T> = Result<T, HostError>;

/// What a new host does when another node owns its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnHeld {
    /// Pass the wake-up on to the owner (input arrived on this node).
    Forward,
    /// Nothing: the owner has it (a sweep or a forwarded wake-up raced another claim).
    LetGo,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum HostError {
    #[error(transparent)]
    Store(#[from] oma_store::StoreError),
    #[error("the session was deleted")]
    Gone,
}

pub(crate) struct SessionHost {
    rt: Runtime,
    tenant: Arc<str>,
    session: String,
    store: Arc<Store>,
    notify: Arc<Notify>,
    on_held: OnHeld,
    /// The lease this host owns its session by; every step it commits carries it.
    fence: Option<oma_store::leases::Fence>,
    sandbox: Option<Arc<dyn Sandbox>>,
    /// The box being started ahead of its first use (see `host/boxes.rs`).
    launching: Option<boxes::Launching>,
    /// Start the box as soon as the session is loaded (it was just created).
    provision: bool,
    /// The session's egress proxy while this host runs (see `host/egress.rs`).
    egress: Option<oma_egress::SessionProxy>,
    /// `web_fetch` through that proxy, once it is open.
    web: Option<oma_tools::WebFetchClient>,
    /// The MCP HTTP client through the same door of the proxy (set with `web`).
    mcp_http: Option<oma_mcp::HttpClient>,
    /// The workspace may differ from its newest snapshot: a tool ran, or a previous host left
    /// the folder behind. Snapshotted once the session has been idle a while.
    dirty: bool,
    /// The session's status as this host last saw or set it (for transition events).
    status: String,
    /// The session's skills, memory stores and files as its box sees them (loaded once).
    mounts: Option<crate::mounts::SessionMounts>,
    /// The resolved agent snapshot the session runs.
    agent: Value,
    budget: Value,
    /// The session's environment (its instance type sets the box's limits).
    environment_id: Option<String>,
    /// The environment is `self_hosted`: its workers run the sandbox tools (the host emits the
    /// calls and waits for their `user.tool_result`) and no box is ever started here.
    self_hosted: bool,
    /// A self-hosted session's system prompt section (skills and memory stores as its worker
    /// lays them out), computed once per host.
    self_hosted_prompt: Option<Option<String>>,
    /// `session.error` events about the box (launch failures, out-of-memory kills) waiting to
    /// be committed with the next tool result.
    box_events: Vec<NewEvent>,
    /// The agent's MCP servers, connected at the start of each turn.
    mcp: crate::mcp::McpTools,
    tokens: Usage,
    active_seconds: f64,
    /// Searches the backend answered (`usage.server_tool_use.web_search_requests`).
    web_search_requests: u64,
    running_since: Option<Instant>,
    /// Set while finishing a turn a previous host left: an allowed call without a result was
    /// cut short by the crash, not just requested by the model.
    recovering: bool,
    /// The session's log as this host knows it: loaded once, then extended by every commit
    /// (the host is the only writer of the events the agent loop reads).
    log: Option<Vec<StoredEvent>>,
    /// The newest context compaction, loaded with the log.
    compaction: Option<oma_store::runtime::Compaction>,
    /// `file_id` blocks of the log, resolved to what the model is sent.
    attachments: attachments::Attachments,
    /// An `outcome_evaluations[]` entry the next `go_idle` records with the idle.
    pending_outcome: Option<Value>,
    /// The child thread whose turn is running, nested in a coordinator's `send_to_agent`
    /// (`None`: the primary thread). See `host/threads.rs`.
    child: Option<threads::Child>,
    /// The session's primary thread id (loaded with the session).
    primary_thread: Option<String>,
    /// The session's agent with its roster's skills added: the box is shared by every thread,
    /// so it mounts the skills of every agent that may run in it.
    mount_agent: Value,
}

impl SessionHost {
    pub(crate) fn new(
        rt: Runtime,
        tenant: &str,
        session: &str,
        notify: Arc<Notify>,
        on_held: OnHeld,
        provision: bool,
    ) -> Self {
        let store = rt.inner().tenants.store_for(tenant).clone();
        let left_behind = rt.inner().config.workspaces_dir.join(session).exists();
        Self {
            rt,
            tenant: Arc::from(tenant),
            session: session.to_string(),
            store,
            notify,
            on_held,
            fence: None,
            sandbox: None,
            launching: None,
            provision,
            egress: None,
            web: None,
            mcp_http: None,
            dirty: left_behind,
            status: String::new(),
            mounts: None,
            agent: Value::Null,
            budget: Value::Null,
            environment_id: None,
            self_hosted: false,
            self_hosted_prompt: None,
            box_events: Vec::new(),
            mcp: crate::mcp::McpTools::default(),
            tokens: Usage::default(),
            active_seconds: 0.0,
            web_search_requests: 0,
            running_since: None,
            recovering: false,
            log: None,
            compaction: None,
            attachments: attachments::Attachments::default(),
            pending_outcome: None,
            child: None,
            primary_thread: None,
            mount_agent: Value::Null,
        }
    }

    /// The log of the thread being run, read from the store the first time.
    async fn log(&mut self) -> HostResult<&[StoredEvent]> {
        if self.log.is_none() {
            let mut events = self.store.all_events(&self.tenant, &self.session).await?;
            let thread = self.current_thread().map(str::to_string);
            events.retain(|e| e.thread_id == thread);
            // Compaction summarises the primary thread's context only.
            if thread.is_none() {
                self.compaction = self
                    .store
                    .latest_compaction(&self.tenant, &self.session)
                    .await?;
            }
            self.log = Some(events);
        }
        Ok(self.log.as_deref().unwrap_or(&[]))
    }

    pub(crate) async fn run(mut self) {
        if !self.claim().await {
            self.rt.release(&self.session, &self.notify);
            return;
        }
        let result = self.work().await;
        let mut fenced = false;
        let mut moved = false;
        if let Err(e) = &result {
            match e {
                HostError::Gone => {
                    // A deleted session's workspace and snapshots go with it.
                    self.stop_box().await;
                    crate::snapshots::forget(&self.rt, &self.tenant, &self.session).await;
                    self.mounts = None;
                    crate::mounts::forget(&self.rt.inner().config.sessions_dir, &self.session)
                        .await;
                }
                HostError::Store(oma_store::StoreError::Fenced) => {
                    // Another node owns the session now (this one stalled past its lease):
                    // write nothing more, and leave the turn to it.
                    fenced = true;
                    oma_metrics::LEASE_FENCING_REJECTIONS.inc();
                    tracing::warn!(op = "lease", session_id = %self.session, "this host lost the session's lease; stopping");
                    self.mounts = None;
                }
                HostError::Store(oma_store::StoreError::TenantFenced) => {
                    // The tenant is moving to another shard: this step did not commit. Stop
                    // writing here; once the move switches, the session resumes from its log
                    // on the new shard (below), as after a crash.
                    fenced = true;
                    moved = true;
                    tracing::info!(op = "shards", tenant_id = %self.tenant, session_id = %self.session, "the tenant is moving; the session resumes on its new shard");
                    self.mounts = None;
                }
                HostError::Store(err) => {
                    tracing::error!(op = "session_host", session_id = %self.session, error = %err, "session host failed");
                    self.fail_safe(&err.to_string()).await;
                }
            }
        }
        // What the box changed since the last tool call is saved before it stops.
        for note in self.mount_notes().await {
            // Nobody reads a tool result any more: the note is a silent catch.
            tracing::warn!(op = "mounts", session_id = %self.session, "{note}");
            self.ops_silent("runtime.mounts", &note);
        }
        self.stop_box().await;
        self.rt.release(&self.session, &self.notify);
        if let Some(fence) = self.fence.take()
            && !fenced
            && let Err(e) = self.store.release_lease(&self.session, &fence).await
        {
            // It runs out by itself: the session waits one lease lifetime at most.
            tracing::warn!(op = "lease", session_id = %self.session, error = %e, "could not release the session's lease");
        }
        // Input that arrived while we were leaving must not wait for the next wake-up; a
        // fenced host wakes the session so that whoever owns it now (or nobody) takes it.
        if moved {
            let (rt, tenant, session) =
                (self.rt.clone(), self.tenant.clone(), self.session.clone());
            tokio::spawn(async move {
                let router = &rt.inner().tenants;
                if !router.wait_until_writable(&tenant, MOVE_WAIT).await {
                    // The sweep of the tenant's shard picks it up when the move completes.
                    tracing::warn!(op = "shards", tenant_id = %tenant, session_id = %session, "the tenant's move has not switched yet; leaving the session to the sweep");
                }
                rt.wake(&tenant, &session);
            });
        } else if fenced
            || matches!(result, Ok(()))
                && self
                    .store
                    .pending_inputs(&self.tenant, &self.session)
                    .await
                    .is_ok_and(|p| !p.is_empty())
        {
            self.rt.wake(&self.tenant, &self.session);
        }
    }

    /// Takes the session's lease. `false`: another node owns it (the wake-up is passed on to
    /// it, unless this host was started by a sweep) or the database could not be asked.
    async fn claim(&mut self) -> bool {
        let claim = self
            .store
            .claim_lease(
                &self.tenant,
                &self.session,
                self.rt.node_id(),
                self.rt.lease_ttl_ms(),
            )
            .await;
        match claim {
            Ok(oma_store::leases::Claim::Won(fence)) => {
                oma_metrics::LEASE_CLAIMS.inc(["won"]);
                self.fence = Some(fence);
                true
            }
            Ok(oma_store::leases::Claim::Held { node_id }) => {
                oma_metrics::LEASE_CLAIMS.inc(["held"]);
                if self.on_held == OnHeld::Forward {
                    self.rt
                        .forward_wake(&self.tenant, &self.session, &node_id)
                        .await;
                }
                false
            }
            Err(e) => {
                // Nothing was written; the sweep retries once the database answers.
                oma_metrics::LEASE_CLAIMS.inc(["error"]);
                tracing::error!(op = "lease", session_id = %self.session, error = %e, "could not claim the session's lease");
                false
            }
        }
    }

    async fn work(&mut self) -> HostResult<()> {
        let status = self.load().await?;
        if std::mem::take(&mut self.provision) {
            self.provision().await;
        }
        if (status == "running" || status == "rescheduling") && self.log_is_mid_turn().await? {
            // A previous host stopped mid-turn (crash or restart): close what it left open and
            // finish the turn.
            self.recovering = true;
            self.recover_turn(status == "rescheduling").await?;
            self.turn().await?;
        }
        loop {
            let inputs = self
                .store
                .pending_inputs(&self.tenant, &self.session)
                .await?;
            if inputs.is_empty() {
                // Queued input goes first (an interrupt at the budget is dropped, not left to
                // cut the resumed turn short); then work paused at the budget may go on.
                if self.resume_after_budget().await? {
                    continue;
                }
                // Stay a moment for the next message (a conversation's next turn usually
                // follows soon) so it does not pay for reloading the session and its log;
                // snapshot the workspace once idle long enough.
                if !self.idle_wait().await {
                    return Ok(());
                }
                // The session may have changed while idle (a tools update, an archive).
                self.load().await?;
                continue;
            }
            self.process_while_idle(inputs).await?;
        }
    }

    async fn load(&mut self) -> HostResult<String> {
        let (status, body) = match self
            .store
            .session_runtime_view(&self.tenant, &self.session)
            .await
        {
            Ok(v) => v,
            Err(oma_store::StoreError::Domain(e)) if e.kind == oma_core::ErrorKind::NotFound => {
                return Err(HostError::Gone);
            }
            Err(e) => return Err(e.into()),
        };
        if self.primary_thread.is_none() {
            self.primary_thread = Some(
                self.store
                    .primary_thread_id(&self.tenant, &self.session)
                    .await?,
            );
        }
        self.agent = body.get("agent").cloned().unwrap_or(Value::Null);
        self.mount_agent = threads::with_roster_skills(&self.agent);
        if let Some(id) = self.agent.get("id").and_then(Value::as_str) {
            tracing::Span::current().record("agent_id", id);
        }
        self.budget = body.get("budget").cloned().unwrap_or(Value::Null);
        self.environment_id = body
            .get("environment_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.self_hosted = self
            .store
            .session_is_self_hosted(&self.tenant, &self.session)
            .await?;
        if let Some(u) = body.get("usage") {
            let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
            self.tokens = Usage {
                input_tokens: n("input_tokens"),
                output_tokens: n("output_tokens"),
                cache_read_input_tokens: n("cache_read_input_tokens"),
                cache_creation_input_tokens: u
                    .pointer("/cache_creation/ephemeral_5m_input_tokens")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
            };
            self.active_seconds = u
                .get("active_seconds")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            self.web_search_requests = u
                .pointer("/server_tool_use/web_search_requests")
                .and_then(Value::as_u64)
                .unwrap_or(0);
        }
        if status == "running" || status == "rescheduling" {
            self.running_since = Some(Instant::now());
        }
        self.status.clone_from(&status);
        Ok(status)
    }

    // ---- input while idle ------------------------------------------------------------------

    async fn process_while_idle(&mut self, inputs: Vec<QueuedInput>) -> HostResult<()> {
        let mut i = 0;
        while i < inputs.len() {
            let kind = inputs[i].kind.as_str();
            match kind {
                "user.message" | "system.message" | "user.define_outcome" => {
                    // Consecutive messages start one turn together.
                    let mut j = i;
                    while j < inputs.len()
                        && matches!(
                            inputs[j].kind.as_str(),
                            "user.message" | "system.message" | "user.define_outcome"
                        )
                    {
                        j += 1;
                    }
                    let batch = &inputs[i..j];
                    let mut events: Vec<NewEvent> = batch
                        .iter()
                        .map(|q| record::echo(&q.kind, q.body.clone()))
                        .collect();
                    let outcome = Self::outcome_started(&events);
                    events.push(record::status_running());
                    self.running_since = Some(Instant::now());
                    self.commit(Step {
                        consumed: batch.iter().map(|q| q.seq).collect(),
                        events,
                        status: Some("running"),
                        outcome,
                        ..Step::default()
                    })
                    .await?;
                    self.turn().await?;
                    // The turn consumed whatever else was queued meanwhile; re-read the queue.
                    return Ok(());
                }
                "user.interrupt" if self.budget_pause().await?.is_some() => {
                    // At the budget an interrupt is accepted and ignored, and not recorded.
                    self.commit(Step {
                        consumed: vec![inputs[i].seq],
                        ..Step::default()
                    })
                    .await?;
                    i += 1;
                }
                "user.interrupt" => {
                    let settle = self.settlement().await?;
                    let mut events = vec![record::echo(kind, inputs[i].body.clone())];
                    let mut status = None;
                    // Calls of children the session waits on are denied in their threads.
                    let (children, threads) = self.interrupt_waiting_children().await?;
                    let waited_on_children = !children.is_empty();
                    events.extend(children);
                    if !settle.blocking.is_empty() || waited_on_children {
                        // Interrupting a session that waits on the user denies what it waits on.
                        for id in &settle.blocking {
                            events.push(self.result_for(
                                id,
                                vec![text("The user interrupted before approving this call.")],
                                true,
                            ));
                        }
                        events.push(self.usage_event());
                        events.push(record::status_idle(IdleReason::EndTurn, &[]));
                        status = Some("idle");
                    }
                    self.commit(Step {
                        consumed: vec![inputs[i].seq],
                        events,
                        status,
                        threads,
                        ..Step::default()
                    })
                    .await?;
                    i += 1;
                }
                _ => {
                    // Tool confirmations and results settle the calls the session waits on.
                    let mut j = i;
                    while j < inputs.len() && is_settling(&inputs[j].kind) {
                        j += 1;
                    }
                    let batch = &inputs[i..j.max(i + 1)];
                    // A second answer to a call (a worker that retried a post, a call the
                    // user's interrupt already closed) would give the model two results for
                    // one call: it is consumed without being logged.
                    let mut answered = answered_calls(self.log().await?);
                    let mut events = Vec::new();
                    for q in batch {
                        let Some(id) = call_target(&q.kind, &q.body) else {
                            events.push(record::echo(&q.kind, q.body.clone()));
                            continue;
                        };
                        // An answer to a child thread's call (cross-posted to the session) is
                        // recorded on that thread, routed by the call's event id.
                        let thread = self
                            .store
                            .event_thread(&self.tenant, &self.session, id)
                            .await?
                            .flatten();
                        if thread.is_none()
                            && answer_target(&q.kind, &q.body).is_some()
                            && !answered.insert(id.to_string())
                        {
                            tracing::warn!(op = "session_input", session_id = %self.session, tool_use_id = %id, kind = %q.kind, "dropping a result for a call that already has one");
                            continue;
                        }
                        let mut echo = record::echo(&q.kind, q.body.clone());
                        echo.thread_id = thread;
                        events.push(echo);
                    }
                    self.commit(Step {
                        consumed: batch.iter().map(|q| q.seq).collect(),
                        events,
                        ..Step::default()
                    })
                    .await?;
                    if self.budget_pause().await? == Some(true) && self.over_budget() {
                        // Paused at the budget: the answers wait with the work they settle.
                        i = j.max(i + 1);
                        continue;
                    }
                    let settle = self.settlement().await?;
                    if settle.blocking.is_empty() {
                        self.continue_turn().await?;
                        return Ok(());
                    }
                    // Some calls are still unanswered: say which.
                    let events = vec![
                        self.usage_event(),
                        record::status_idle(IdleReason::RequiresAction, &settle.blocking),
                    ];
                    self.commit(Step {
                        events,
                        ..Step::default()
                    })
                    .await?;
                    i = j.max(i + 1);
                }
            }
        }
        Ok(())
    }

    // ---- the turn --------------------------------------------------------------------------

    async fn turn(&mut self) -> HostResult<()> {
        self.connect_mcp().await?;
        loop {
            // 1. Settle tool calls: run what may run, refuse what was denied, stop if the user
            //    still has to answer.
            let settle = self.settlement().await?;
            for (id, message) in &settle.refuse {
                self.commit(Step {
                    events: vec![self.result_for(id, vec![text(message)], true)],
                    ..Step::default()
                })
                .await?;
            }
            let mut waiting = Vec::new();
            for call in &settle.run {
                if self.is_coordinator() && threads::is_delegation_tool(&call.name) {
                    match self.delegation_call(call).await? {
                        threads::Delegated::Done(step) => {
                            self.commit(*step).await?;
                            continue;
                        }
                        // The child waits on the user: so does the session, with the child's
                        // calls; the rest of this round runs once it is answered.
                        threads::Delegated::Waiting(ids) => {
                            waiting = ids;
                            break;
                        }
                    }
                }
                let mcp_call = crate::mcp::mcp_call(self.log().await?, &call.event_id);
                let (content, is_error) = match &mcp_call {
                    Some((server, tool)) => self.run_mcp_tool(server, tool, &call.input).await,
                    None => self.run_tool(call).await,
                };
                let mut events = vec![self.result_for(&call.event_id, content, is_error)];
                events.append(&mut self.box_events);
                self.commit(Step {
                    events,
                    ..Step::default()
                })
                .await?;
            }
            if !settle.blocking.is_empty() || !waiting.is_empty() {
                let mut blocking = settle.blocking.clone();
                blocking.extend(waiting);
                let events = vec![
                    self.usage_event(),
                    record::status_idle(IdleReason::RequiresAction, &blocking),
                ];
                self.go_idle(events, vec![]).await?;
                return Ok(());
            }
            // 2. A model-request boundary: deliver steering input, or stop for an interrupt.
            if self.at_boundary().await? {
                return Ok(());
            }
            // 3. The budget is enforced between model requests: the one that crossed the cap
            //    completed; no other starts.
            if self.over_budget() {
                self.refresh_budget().await?;
                if self.over_budget() {
                    let events = self.budget_stop(IdleReason::BudgetReached).await?;
                    self.go_idle(events, vec![]).await?;
                    return Ok(());
                }
            }
            // 4. An outcome whose deliverable is ready is graded before anything else.
            if let Some(o) = self.active_outcome().await?.filter(|o| o.due) {
                match self.evaluate_outcome(o).await? {
                    outcome::Verdict::Continue => continue,
                    outcome::Verdict::Over => return Ok(()),
                }
            }
            // 5. The tool-use round cap: the last round's tools have run; no new round starts.
            let rounds = tool_rounds_this_turn(self.log().await?);
            let cap = self.rt.inner().config.max_tool_rounds;
            if rounds >= cap as usize {
                let message = format!(
                    "The turn reached the limit of {cap} tool-use rounds; send a message to \
                     continue in a new turn"
                );
                self.give_up("tool_use_limit_reached_error", &message, None)
                    .await?;
                return Ok(());
            }
            // 6. Ask the model.
            match self.sample().await? {
                Sampled::Done { tool_calls: true } => continue,
                // The answer and the end of the turn were recorded together.
                Sampled::Done { tool_calls: false } => return Ok(()),
                Sampled::TurnOver => return Ok(()),
            }
        }
    }

    /// Consumes queued input at a model-request boundary. Returns `true` when an interrupt
    /// ended the turn.
    async fn at_boundary(&mut self) -> HostResult<bool> {
        if self.child.is_some() {
            return self.child_boundary().await;
        }
        let inputs = self
            .store
            .pending_inputs(&self.tenant, &self.session)
            .await?;
        if inputs.is_empty() {
            return Ok(false);
        }
        if let Some(pos) = inputs.iter().position(|q| self.interrupts_me(q)) {
            self.interrupt(&inputs[..=pos], vec![]).await?;
            return Ok(true);
        }
        let events: Vec<NewEvent> = inputs
            .iter()
            .map(|q| record::echo(&q.kind, q.body.clone()))
            .collect();
        let outcome = Self::outcome_started(&events);
        self.commit(Step {
            consumed: inputs.iter().map(|q| q.seq).collect(),
            events,
            outcome,
            ..Step::default()
        })
        .await?;
        Ok(false)
    }

    /// Ends the turn for an interrupt: input queued before it is cancelled, the interrupt is
    /// echoed, and the session goes idle with `end_turn`. `before` are events that close what
    /// was in flight (a partial message, the end of a cut-off model request).
    async fn interrupt(&mut self, upto: &[QueuedInput], before: Vec<NewEvent>) -> HostResult<()> {
        if self.child.is_some() {
            // A child takes only an interrupt aimed at it; the input before it, and an
            // interrupt of the whole session, are the coordinator's to take.
            let mut events = before;
            let mut consumed = Vec::new();
            if let Some(q) = upto.last().filter(|q| {
                q.body.get("session_thread_id").and_then(Value::as_str) == self.current_thread()
            }) {
                events.push(record::echo(&q.kind, q.body.clone()));
                consumed.push(q.seq);
            }
            events.push(record::status_idle(IdleReason::EndTurn, &[]));
            return self.go_idle(events, consumed).await;
        }
        let mut events = before;
        let (closing, outcome) = self.outcome_interrupted().await?;
        events.extend(closing);
        self.pending_outcome = outcome;
        if let Some(last) = upto.last() {
            events.push(record::echo(&last.kind, last.body.clone()));
        }
        events.push(self.usage_event());
        events.push(record::status_idle(IdleReason::EndTurn, &[]));
        self.go_idle(events, upto.iter().map(|q| q.seq).collect())
            .await
    }

    async fn go_idle(&mut self, events: Vec<NewEvent>, consumed: Vec<i64>) -> HostResult<()> {
        if let Some(since) = self.running_since.take() {
            self.active_seconds += since.elapsed().as_secs_f64();
        }
        let mut events = events;
        // The usage snapshot is taken after active time is counted.
        for e in events.iter_mut().filter(|e| e.kind == "session.usage") {
            if let Value::Object(m) = &mut e.body {
                m.insert("usage".into(), self.usage_json());
            }
        }
        let outcome = self.pending_outcome.take();
        self.commit(Step {
            consumed,
            events,
            status: Some("idle"),
            usage: Some(self.usage_json()),
            outcome,
            ..Step::default()
        })
        .await?;
        Ok(())
    }

    // ---- recovery --------------------------------------------------------------------------

    /// Whether the log shows a turn in progress: its last status event is `running` or
    /// `rescheduled`. (A session created with initial events is `running` before its first
    /// turn has started; its log has no status event yet.)
    async fn log_is_mid_turn(&mut self) -> HostResult<bool> {
        let events = self.log().await?;
        let last = events.iter().rev().find(|e| {
            matches!(
                e.kind.as_str(),
                "session.status_running"
                    | "session.status_rescheduled"
                    | "session.status_idle"
                    | "session.thread_status_running"
                    | "session.thread_status_rescheduled"
                    | "session.thread_status_idle"
            )
        });
        // (A child thread's log has the thread's status events; the primary's, the session's
        // and, at a budget stop, its own idle just before the session's.)
        Ok(last.is_some_and(|e| {
            e.kind != "session.status_idle" && e.kind != "session.thread_status_idle"
        }))
    }

    /// Closes a model request the previous host left open, keeping what it had streamed.
    async fn recover_turn(&mut self, rescheduling: bool) -> HostResult<()> {
        let mut open: Option<String> = None;
        for e in self.log().await? {
            match e.kind.as_str() {
                "span.model_request_start" => open = Some(e.id.clone()),
                "span.model_request_end" => open = None,
                _ => {}
            }
        }
        let mut step = Step::default();
        if let Some(span) = open {
            let partial = self
                .store
                .stream_checkpoint(&self.tenant, &self.session, &span)
                .await?;
            let texts: Vec<String> = partial
                .as_ref()
                .and_then(|p| p.get("text"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if texts.iter().any(|t| !t.is_empty()) {
                step.events.push(record::agent_message(&texts));
            }
            step.events
                .push(record::model_request_end(&span, &Usage::default(), true));
            step.close_stream = Some(span);
        }
        if rescheduling {
            step.events.push(record::status_running());
            step.status = Some("running");
        }
        if !step.events.is_empty() {
            self.commit(step).await?;
        }
        Ok(())
    }

    // ---- tools -----------------------------------------------------------------------------

    /// Reads the log for tool calls without results and decides what happens to each.
    async fn settlement(&mut self) -> HostResult<Settlement> {
        let recovering = std::mem::take(&mut self.recovering);
        let self_hosted = self.self_hosted;
        Ok(settle(self.log().await?, recovering, self_hosted))
    }

    async fn run_tool(&mut self, call: &Call) -> (Vec<Value>, bool) {
        let started = Instant::now();
        if let Some(m) = &mut self.mounts {
            m.before_call().await;
        }
        // web_fetch goes through the session's egress proxy, like the box's own traffic.
        if call.name == "web_fetch"
            && let Err(message) = self.egress().await
        {
            self.box_events
                .push(record::session_error("unknown_error", &message, "retrying"));
            return (vec![text(&message)], true);
        }
        let (content, is_error) = match self.toolbox() {
            None => (
                vec![text("The built-in tools are not enabled for this agent.")],
                true,
            ),
            // Host tools need no box (and a self-hosted session never has one).
            Some(toolbox) if oma_tools::runs_on_host(&call.name) => match toolbox
                .run_host(&call.name, &call.input, CancellationToken::new())
                .await
            {
                Some(host) => {
                    self.web_search_requests += host.web_search_requests;
                    let outcome = host.outcome;
                    (oma_tools::content_blocks(&outcome), outcome.is_error)
                }
                None => (vec![text("The tool call was cancelled.")], true),
            },
            Some(toolbox) => match self.sandbox().await {
                Err(message) => (vec![text(&message)], true),
                Ok(sb) => match toolbox
                    .run(
                        &call.name,
                        &call.input,
                        sb.as_ref(),
                        CancellationToken::new(),
                    )
                    .await
                    .inspect(|_| self.note_box_events(sb.as_ref()))
                    .inspect_err(|_| self.note_box_events(sb.as_ref()))
                {
                    Ok(outcome) => (oma_tools::content_blocks(&outcome), outcome.is_error),
                    Err(e) => {
                        self.ops_sandbox_failed(&e);
                        // The box is gone or broken; the next call starts a fresh one.
                        self.sandbox = None;
                        (
                            vec![text(&format!(
                                "The sandbox failed while running this tool: {e}"
                            ))],
                            true,
                        )
                    }
                },
            },
        };
        tracing::info!(
            op = "tool_call",
            session_id = %self.session,
            tool = %call.name,
            is_error,
            duration_ms = started.elapsed().as_millis() as u64,
            "tool call finished"
        );
        self.ops_tool_call(&call.name, is_error, started);
        crate::metrics::tool_call(&call.name, is_error, started.elapsed());
        let mut content = content;
        for note in self.mount_notes().await {
            content.push(text(&note));
        }
        (content, is_error)
    }

    fn tools(&self) -> Vec<Value> {
        self.agent
            .get("tools")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    /// The agent's built-in toolset, if it has one.
    fn toolbox(&self) -> Option<oma_tools::Toolbox> {
        let toolset = self
            .tools()
            .into_iter()
            .find(|t| t.get("type").and_then(Value::as_str) == Some("agent_toolset_20260401"))?;
        let toolset: oma_api::agents::AgentToolset = serde_json::from_value(toolset).ok()?;
        let web = self
            .web
            .clone()
            .unwrap_or_else(|| self.rt.inner().web.clone());
        Some(
            oma_tools::Toolbox::new(&toolset, web)
                .with_search(self.rt.inner().web_search.get().cloned()),
        )
    }

    fn tool_specs(&self) -> Vec<ToolSpec> {
        let mut specs = Vec::new();
        if let Some(toolbox) = self.toolbox() {
            for def in toolbox.definitions() {
                specs.push(ToolSpec {
                    name: def.name.clone(),
                    description: def.description.clone(),
                    input_schema: def.input_schema.clone(),
                });
            }
        }
        for t in self.tools() {
            if t.get("type").and_then(Value::as_str) == Some("custom") {
                specs.push(ToolSpec {
                    name: t
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    description: t
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    input_schema: t
                        .get("input_schema")
                        .cloned()
                        .unwrap_or(json!({"type": "object"})),
                });
            }
        }
        specs.extend(self.mcp.specs());
        specs.extend(self.delegation_specs());
        specs
    }

    /// Built-in tool name → its permission policy (`auto` is judged per call).
    fn permissions(&self) -> HashMap<String, oma_api::agents::PermissionPolicy> {
        let Some(toolbox) = self.toolbox() else {
            return HashMap::new();
        };
        toolbox
            .definitions()
            .iter()
            .map(|d| (d.name.clone(), d.permission))
            .collect()
    }

    fn custom_tool_names(&self) -> HashSet<String> {
        self.tools()
            .into_iter()
            .filter(|t| t.get("type").and_then(Value::as_str) == Some("custom"))
            .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_string))
            .collect()
    }

    // ---- bookkeeping -----------------------------------------------------------------------

    fn usage_json(&self) -> Value {
        let running = self
            .running_since
            .map_or(0.0, |s| s.elapsed().as_secs_f64());
        let mut usage = json!({
            "input_tokens": self.tokens.input_tokens,
            "output_tokens": self.tokens.output_tokens,
            "cache_read_input_tokens": self.tokens.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.tokens.cache_creation_input_tokens,
                "ephemeral_1h_input_tokens": 0,
            },
            "active_seconds": self.active_seconds + running,
            "list_cost": null,
            "server_tool_use": {
                "web_search_requests": self.web_search_requests,
                "web_fetch_requests": 0,
            },
        });
        // Priced at list rates when the table knows the model (semantics §12.2).
        if let Some(pico) = oma_core::pricing::table().session_cost(self.model_id(), &usage) {
            usage["list_cost"] = json!({
                "amount": oma_core::pricing::cents(pico).to_string(),
                "currency": "USD",
            });
        }
        usage
    }

    /// The model the session's agent runs.
    fn model_id(&self) -> &str {
        self.agent
            .pointer("/model/id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The session's list cost reached its budget (exact value, this very moment).
    fn over_budget(&self) -> bool {
        oma_core::sessions::budget_exhausted(self.model_id(), &self.usage_json(), &self.budget)
    }

    /// Re-reads the budget, which the user may have changed while this host worked.
    async fn refresh_budget(&mut self) -> HostResult<()> {
        match self
            .store
            .session_runtime_view(&self.tenant, &self.session)
            .await
        {
            Ok((_, body)) => {
                self.budget = body.get("budget").cloned().unwrap_or(Value::Null);
                Ok(())
            }
            Err(oma_store::StoreError::Domain(e)) if e.kind == oma_core::ErrorKind::NotFound => {
                Err(HostError::Gone)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// How the session's last stop relates to its budget: `None` when it did not stop at the
    /// budget (or has run since), `Some(true)` when work was paused there (it resumes when
    /// the budget allows), `Some(false)` when the turn had ended as the cap was crossed.
    async fn budget_pause(&mut self) -> HostResult<Option<bool>> {
        if self.child.is_some() {
            return Ok(None);
        }
        let log = self.log().await?;
        let stop = |e: &StoredEvent| {
            serde_json::from_str::<Value>(&e.body)
                .ok()
                .and_then(|b| b.pointer("/stop_reason/type")?.as_str().map(str::to_string))
        };
        let Some(pos) = log
            .iter()
            .rposition(|e| e.kind == "session.status_idle" || e.kind == "session.status_running")
        else {
            return Ok(None);
        };
        if log[pos].kind != "session.status_idle"
            || stop(&log[pos]).as_deref() != Some("budget_reached")
        {
            return Ok(None);
        }
        let paused = log[..pos]
            .iter()
            .rev()
            .take_while(|e| e.kind != "session.status_running")
            .find(|e| e.kind == "session.thread_status_idle")
            .is_some_and(|e| stop(e).as_deref() == Some("budget_reached"));
        Ok(Some(paused))
    }

    /// The events that stop a session at its budget (semantics §6.7): the primary thread's
    /// idle (`budget_reached` when work was left, `end_turn` when the crossing request ended
    /// the turn), the usage snapshot, then the session's idle.
    async fn budget_stop(&mut self, thread_reason: IdleReason) -> HostResult<Vec<NewEvent>> {
        if self.child.is_some() {
            // A child stops with its thread's idle; the coordinator then stops the session.
            return Ok(vec![
                self.usage_event(),
                record::status_idle(thread_reason, &[]),
            ]);
        }
        let thread = self
            .store
            .primary_thread_id(&self.tenant, &self.session)
            .await?;
        let name = self
            .agent
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        tracing::info!(op = "budget", session_id = %self.session, budget = %self.budget, usage = %self.usage_json(), "the session reached its budget");
        Ok(vec![
            record::thread_status_idle(&thread, name, thread_reason),
            self.usage_event(),
            record::status_idle(IdleReason::BudgetReached, &[]),
        ])
    }

    /// A session paused at its budget goes on once the budget allows (raised or removed):
    /// `session.status_running`, and the turn continues where it stopped.
    async fn resume_after_budget(&mut self) -> HostResult<bool> {
        if self.budget_pause().await? != Some(true) {
            return Ok(false);
        }
        self.refresh_budget().await?;
        if self.over_budget() {
            return Ok(false);
        }
        self.continue_turn().await?;
        Ok(true)
    }

    /// The session runs again (`session.status_running`) and the turn goes on from its log.
    async fn continue_turn(&mut self) -> HostResult<()> {
        self.running_since = Some(Instant::now());
        self.commit(Step {
            events: vec![record::status_running()],
            status: Some("running"),
            ..Step::default()
        })
        .await?;
        self.turn().await
    }

    fn usage_event(&self) -> NewEvent {
        record::session_usage(&self.usage_json(), &self.budget)
    }

    /// Applies a step and publishes what it appended.
    async fn commit(&mut self, step: Step) -> HostResult<Vec<StoredEvent>> {
        let mut step = self.redirect_to_child(step);
        step.fence.clone_from(&self.fence);
        let compaction = step.compaction.clone();
        let to = step.status;
        let stored = match self
            .store
            .commit_step(&self.tenant, &self.session, step)
            .await
        {
            Ok(s) => s,
            Err(oma_store::StoreError::Domain(e)) if e.kind == oma_core::ErrorKind::NotFound => {
                return Err(HostError::Gone);
            }
            Err(e) => return Err(e.into()),
        };
        crate::metrics::events_appended(stored.len());
        if !stored.is_empty() {
            let committed = stored.iter().cloned().map(Committed::from).collect();
            self.rt.hub().publish(&self.session, committed);
        }
        let thread = self.current_thread().map(str::to_string);
        if let Some(log) = &mut self.log {
            log.extend(stored.iter().filter(|e| e.thread_id == thread).cloned());
        }
        if compaction.is_some() {
            self.compaction = compaction;
        }
        if let Some(to) = to
            && self.child.is_none()
        {
            self.ops_transition(to);
        }
        Ok(stored)
    }

    /// Never leave a session `running` with nobody working on it: record the failure and go
    /// idle so the user can try again.
    async fn fail_safe(&mut self, message: &str) {
        let events = vec![
            record::session_error(
                "unknown_error",
                &format!("the session host failed: {message}"),
                "exhausted",
            ),
            self.usage_event(),
            record::status_idle(IdleReason::RetriesExhausted, &[]),
        ];
        if let Err(e) = self.go_idle(events, vec![]).await {
            tracing::error!(op = "session_host", session_id = %self.session, error = %e, "could not record the failure");
            self.ops_silent("runtime.fail_safe", &e);
        }
    }
}

// ---- mounts: skills, memory stores and session files (see `crate::mounts`) -------------------

impl SessionHost {
    /// The session's mounts, loaded on first use. A failure is logged and retried next time.
    async fn mounts(&mut self) -> Option<&mut crate::mounts::SessionMounts> {
        if self.mounts.is_none() {
            let loaded = crate::mounts::SessionMounts::load(
                self.store.clone(),
                self.tenant.clone(),
                &self.session,
                &self.mount_agent,
                &self.rt.inner().config.sessions_dir,
            )
            .await;
            match loaded {
                Ok(m) => self.mounts = Some(m),
                Err(e) => {
                    tracing::error!(op = "mounts", session_id = %self.session, error = %e, "could not load the session's mounts");
                    self.ops_silent("runtime.mounts", &e);
                }
            }
        }
        self.mounts.as_mut()
    }

    /// The mounts of a box about to start, their folders filled.
    async fn mount_spec(&mut self) -> Result<Vec<oma_sandbox::Mount>, String> {
        match self.mounts().await {
            Some(m) => m
                .materialize()
                .await
                .map_err(|e| format!("The session's mounts could not be prepared: {e}")),
            None => Ok(Vec::new()),
        }
    }

    /// The system prompt section about skills, memory stores and session files, for agents
    /// with the built-in tools. Starts the box: its kind decides the paths the model is told.
    async fn mounts_prompt(&mut self) -> Option<String> {
        self.toolbox()?;
        if self.self_hosted {
            return self.worker_prompt().await;
        }
        if !self.mounts().await?.has_any() {
            return None;
        }
        let isolated = self.sandbox().await.map_or(true, |sb| sb.info().isolated);
        self.mounts.as_ref()?.system_prompt(isolated)
    }

    /// The prompt section of a self-hosted session. Its mounts are only read for it, never
    /// materialised or synced here: the worker lays out and syncs skills and memory itself.
    async fn worker_prompt(&mut self) -> Option<String> {
        if self.self_hosted_prompt.is_none() {
            let loaded = crate::mounts::SessionMounts::load(
                self.store.clone(),
                self.tenant.clone(),
                &self.session,
                &self.agent,
                &self.rt.inner().config.sessions_dir,
            )
            .await;
            match loaded {
                Ok(m) => self.self_hosted_prompt = Some(m.self_hosted_prompt()),
                Err(e) => {
                    tracing::error!(op = "mounts", session_id = %self.session, error = %e, "could not read the session's skills and memory stores");
                    self.ops_silent("runtime.mounts", &e);
                    return None;
                }
            }
        }
        self.self_hosted_prompt.clone().flatten()
    }

    /// Syncs the mounts back (memory stores, outputs); returns notes for the model.
    async fn mount_notes(&mut self) -> Vec<String> {
        match self.mounts.as_mut() {
            Some(m) => m.after_call().await,
            None => Vec::new(),
        }
    }
}

/// Whether an event is a `session.status_idle` that ended a turn (not a pause for the user
/// or the budget, after which the same turn goes on).
fn ends_turn(e: &StoredEvent) -> bool {
    (e.kind == "session.status_idle" || e.kind == "session.thread_status_idle")
        && serde_json::from_str::<Value>(&e.body).is_ok_and(|b| {
            !matches!(
                b.pointer("/stop_reason/type").and_then(Value::as_str),
                Some("requires_action" | "budget_reached")
            )
        })
}

/// The tool-use rounds of the current turn: model responses that called tools.
fn tool_rounds_this_turn(events: &[StoredEvent]) -> usize {
    let start = events.iter().rposition(ends_turn).map_or(0, |i| i + 1);
    let mut rounds = 0;
    let mut called = false;
    for e in &events[start..] {
        match e.kind.as_str() {
            "agent.tool_use" | "agent.custom_tool_use" | "agent.mcp_tool_use" => called = true,
            "span.model_request_end" => {
                if called {
                    rounds += 1;
                }
                called = false;
            }
            _ => {}
        }
    }
    rounds
}

/// Compactions since the model last produced a message or a tool call in this turn.
fn compactions_in_a_row(events: &[StoredEvent]) -> u32 {
    let mut n = 0;
    for e in events.iter().rev() {
        match e.kind.as_str() {
            "agent.thread_context_compacted" => n += 1,
            "agent.message"
            | "agent.tool_use"
            | "agent.custom_tool_use"
            | "agent.mcp_tool_use"
            | "user.message" => break,
            _ => {}
        }
    }
    n
}

fn text(s: &str) -> Value {
    json!({"type": "text", "text": s})
}
