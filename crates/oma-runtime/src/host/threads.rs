//! Multi-agent threads (semantics §10): a coordinator's `list_agents` and `send_to_agent`
//! tools, and the child threads they run.
//!
//! A child thread's turn runs inside this same host, nested in the coordinator's tool call:
//! the host swaps its per-thread state (agent, log, MCP servers) for the child's, runs the
//! ordinary turn loop, and swaps back. Everything the loop records is redirected to the child
//! on commit ([`SessionHost::redirect_to_child`]): the session's status events become the
//! thread's, and the rest is stored with the child's `thread_id` (cross-posted to the session
//! stream when it waits on the user). So a child has the same tools, permissions, retries,
//! interrupts and crash recovery as the primary thread, and its context is only its own log.
//!
//! The link between a `send_to_agent` call and the child working on it is the thread row's
//! `delegation`, written in the step that sends the task, so a host that restarts mid-way
//! resumes the same child rather than starting another.

use serde_json::{Map, Value, json};

use oma_core::events::NewEvent;
use oma_store::events::StoredEvent;
use oma_store::runtime::{ChildThread, Step, ThreadChange};

use super::{Call, HostResult, SessionHost, text};

/// The coordinator's built-in delegation tools.
pub(crate) const LIST_AGENTS: &str = "list_agents";
pub(crate) const SEND_TO_AGENT: &str = "send_to_agent";

/// Most child threads that may exist (not archived) at once.
const MAX_CHILD_THREADS: usize = 25;

/// Whether `name` is one of the coordinator's delegation tools.
pub(crate) fn is_delegation_tool(name: &str) -> bool {
    name == LIST_AGENTS || name == SEND_TO_AGENT
}

/// The child thread whose turn the host is running.
#[derive(Debug, Clone)]
pub(super) struct Child {
    pub(super) id: String,
    pub(super) agent_name: String,
    /// The primary thread, which delegated to it.
    pub(super) primary_id: String,
}

/// The per-thread part of the host's state, swapped in while a child's turn runs.
#[derive(Default)]
pub(super) struct Frame {
    agent: Value,
    log: Option<Vec<StoredEvent>>,
    compaction: Option<oma_store::runtime::Compaction>,
    mcp: crate::mcp::McpTools,
    attachments: super::attachments::Attachments,
    recovering: bool,
    running_since: Option<std::time::Instant>,
    pending_outcome: Option<Value>,
    child: Option<Child>,
}

/// How a delegation stands when the coordinator's call returns.
pub(super) enum Delegated {
    /// The call is settled: these events (its result among them) go in one step.
    Done(Box<Step>),
    /// The child waits on the user for these events (tool confirmations, custom tools).
    Waiting(Vec<String>),
}

/// A roster agent the coordinator may delegate to.
struct RosterAgent {
    id: String,
    name: String,
    description: Option<String>,
    /// The resolved agent snapshot the child runs.
    snapshot: Value,
}

impl SessionHost {
    /// Whether the thread this host is running is a coordinator (its agent has a roster).
    pub(super) fn is_coordinator(&self) -> bool {
        self.child.is_none()
            && self
                .agent
                .pointer("/multiagent/type")
                .and_then(Value::as_str)
                == Some("coordinator")
    }

    /// The delegation tools a coordinator is offered.
    pub(super) fn delegation_specs(&self) -> Vec<oma_model::types::ToolSpec> {
        if !self.is_coordinator() {
            return Vec::new();
        }
        let names: Vec<String> = self.roster().into_iter().map(|a| a.name).collect();
        vec![
            oma_model::types::ToolSpec {
                name: LIST_AGENTS.to_string(),
                description: "List the agents you can delegate to with send_to_agent, with \
                              their descriptions and the threads already working for you."
                    .to_string(),
                input_schema: json!({"type": "object", "properties": {}}),
            },
            oma_model::types::ToolSpec {
                name: SEND_TO_AGENT.to_string(),
                description: format!(
                    "Send a task or a follow-up to one of your agents ({}). The agent works in \
                     its own thread, with its own context, in the same sandbox as you; the \
                     thread persists, so a later message to the same agent continues its \
                     conversation. Returns the agent's report.",
                    names.join(", ")
                ),
                input_schema: json!({
                    "type": "object",
                    "properties": {
                        "agent": {"type": "string", "description": "The agent's name (or id)."},
                        "message": {"type": "string", "description": "What the agent should do."},
                    },
                    "required": ["agent", "message"],
                }),
            },
        ]
    }

    /// The coordinator's roster, as the session snapshot resolved it.
    fn roster(&self) -> Vec<RosterAgent> {
        self.agent
            .pointer("/multiagent/agents")
            .and_then(Value::as_array)
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e.get("type").and_then(Value::as_str) == Some("agent"))
                    .map(|e| {
                        // The thread object shows the agent in the session snapshot's form.
                        let snapshot = e.clone();
                        RosterAgent {
                            id: str_of(e, "id"),
                            name: str_of(e, "name"),
                            description: e
                                .get("description")
                                .and_then(Value::as_str)
                                .map(str::to_string),
                            snapshot,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs a delegation tool call of the coordinator.
    pub(super) async fn delegation_call(&mut self, call: &Call) -> HostResult<Delegated> {
        if call.name == LIST_AGENTS {
            let threads = self
                .store
                .child_threads(&self.tenant, &self.session)
                .await?;
            let agents: Vec<Value> = self
                .roster()
                .into_iter()
                .map(|a| {
                    let thread = threads
                        .iter()
                        .find(|t| !t.archived && str_of(&t.agent, "id") == a.id);
                    json!({
                        "name": a.name,
                        "id": a.id,
                        "description": a.description,
                        "thread": thread.map(|t| json!({"id": t.id, "status": t.status})),
                    })
                })
                .collect();
            let listing = serde_json::to_string_pretty(&agents).unwrap_or_default();
            return Ok(self.settled(call, vec![text(&listing)], false, Step::default()));
        }
        self.delegate(call).await
    }

    /// `send_to_agent`: hands the task to the agent's thread (created on first use), runs the
    /// child's turn and returns its report, or says the child waits on the user.
    async fn delegate(&mut self, call: &Call) -> HostResult<Delegated> {
        let (threads, primary_id) = self.threads_and_primary().await?;
        // A restarted host, or answers the child waited for: the same child goes on.
        if let Some(t) = threads
            .iter()
            .find(|t| t.delegation.as_deref() == Some(call.event_id.as_str()))
        {
            let child = Child {
                id: t.id.clone(),
                agent_name: str_of(&t.agent, "name"),
                primary_id,
            };
            return self
                .run_child(call, child, t.agent.clone(), Some(&t.status))
                .await;
        }
        let agent = call
            .input
            .get("agent")
            .and_then(Value::as_str)
            .unwrap_or("");
        let message = call
            .input
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("");
        let roster = self.roster();
        let Some(target) = roster.iter().find(|a| a.name == agent || a.id == agent) else {
            let names: Vec<&str> = roster.iter().map(|a| a.name.as_str()).collect();
            let msg = format!(
                "There is no agent `{agent}` on your roster; you can send to: {}",
                names.join(", ")
            );
            return Ok(self.settled(call, vec![text(&msg)], true, Step::default()));
        };
        if message.trim().is_empty() {
            return Ok(self.settled(
                call,
                vec![text("send_to_agent needs a non-empty `message`.")],
                true,
                Step::default(),
            ));
        }
        // Threads persist: a follow-up to the same agent continues its conversation.
        let existing = threads
            .iter()
            .find(|t| !t.archived && str_of(&t.agent, "id") == target.id);
        let mut step = Step::default();
        let child_id = match existing {
            Some(t) => t.id.clone(),
            None => {
                let live = threads.iter().filter(|t| !t.archived).count();
                if live >= MAX_CHILD_THREADS {
                    let msg = format!(
                        "The session already has {MAX_CHILD_THREADS} agent threads, the most it may \
                         have at once; archive an idle thread to free a slot."
                    );
                    return Ok(self.settled(call, vec![text(&msg)], true, Step::default()));
                }
                let id = oma_core::ids::new_id(oma_core::ids::THREAD);
                step.threads.push(ThreadChange::Create {
                    id: id.clone(),
                    parent: primary_id.clone(),
                    body: thread_object(&id, &self.session, &primary_id, &target.snapshot),
                });
                step.events.push(event(
                    "session.thread_created",
                    json!({"session_thread_id": id, "agent_name": target.name, "workflow_run_id": null}),
                ));
                id
            }
        };
        let content = vec![text(message)];
        step.events.push(event(
            "agent.thread_message_sent",
            json!({"to_session_thread_id": child_id, "to_agent_name": target.name, "content": content}),
        ));
        let mut received = event(
            "agent.thread_message_received",
            json!({"from_session_thread_id": primary_id, "content": content}),
        );
        received.thread_id = Some(child_id.clone());
        step.events.push(received);
        step.events
            .push(thread_status(&child_id, &target.name, "running", None));
        step.threads.push(ThreadChange::Status {
            id: child_id.clone(),
            status: "running",
        });
        step.threads.push(ThreadChange::Delegation {
            id: child_id.clone(),
            call: Some(call.event_id.clone()),
        });
        self.commit(step).await?;
        let child = Child {
            id: child_id,
            agent_name: target.name.clone(),
            primary_id,
        };
        self.run_child(call, child, target.snapshot.clone(), None)
            .await
    }

    /// Inside the child's frame: what resuming it means.
    async fn resume_in_child(&mut self, status: &str) -> HostResult<Resume> {
        if status == "running" || status == "rescheduling" {
            return Ok(Resume::Run { recovering: true });
        }
        let settle = self.settlement().await?;
        if !settle.blocking.is_empty() {
            return Ok(Resume::Waiting(settle.blocking));
        }
        // Idle and nothing to wait for any more: if it stopped for the user, it runs again.
        let log = self.log().await?;
        let paused = log
            .iter()
            .rev()
            .find(|e| e.kind == "session.thread_status_idle")
            .and_then(|e| serde_json::from_str::<Value>(&e.body).ok())
            .and_then(|b| b.pointer("/stop_reason/type")?.as_str().map(str::to_string))
            .is_some_and(|r| r == "requires_action");
        if paused {
            let child = self.child.clone();
            if let Some(c) = child {
                self.commit(Step {
                    events: vec![thread_status(&c.id, &c.agent_name, "running", None)],
                    threads: vec![ThreadChange::Status {
                        id: c.id.clone(),
                        status: "running",
                    }],
                    ..Step::default()
                })
                .await?;
            }
        }
        // Paused: it runs on with the answers. Finished: `child_turn` only reports.
        Ok(Resume::Run { recovering: false })
    }

    /// Runs the child's turn in its frame, then reports or says what it waits on. `resume`:
    /// the thread row's status when an earlier step started this delegation (a restarted host,
    /// or answers the child waited for): a turn cut short finishes, a paused one goes on, a
    /// finished one is only reported.
    async fn run_child(
        &mut self,
        call: &Call,
        child: Child,
        agent: Value,
        resume: Option<&str>,
    ) -> HostResult<Delegated> {
        let mut frame = Frame {
            agent,
            child: Some(child.clone()),
            ..Frame::default()
        };
        self.swap_frame(&mut frame);
        let ended = self.in_child(resume).await;
        self.swap_frame(&mut frame);
        match ended? {
            ChildEnd::Waiting(ids) => Ok(Delegated::Waiting(ids)),
            ChildEnd::Report { content, is_error } => {
                Ok(self.report(call, &child, content, is_error))
            }
        }
    }

    /// Inside the child's frame: resume or run its turn, then read how it ended.
    async fn in_child(&mut self, resume: Option<&str>) -> HostResult<ChildEnd> {
        let recovering = match resume {
            None => false,
            Some(status) => match self.resume_in_child(status).await? {
                Resume::Waiting(ids) => return Ok(ChildEnd::Waiting(ids)),
                Resume::Run { recovering } => recovering,
            },
        };
        self.child_turn(recovering).await?;
        self.child_report().await
    }

    async fn child_turn(&mut self, recovering: bool) -> HostResult<()> {
        if recovering {
            self.recovering = true;
            if self.log_is_mid_turn().await? {
                self.recover_turn(false).await?;
            }
        }
        // A finished turn is only reported (a crash between its end and the report).
        if !self.log_is_mid_turn().await? && self.settlement_is_clear().await? {
            return Ok(());
        }
        // Boxed: the child's turn is nested in the coordinator's.
        Box::pin(self.turn()).await
    }

    /// Nothing is waiting in the thread's log: no call without a result.
    async fn settlement_is_clear(&mut self) -> HostResult<bool> {
        let (recovering, self_hosted) = (self.recovering, self.self_hosted);
        let s = super::settle(self.log().await?, recovering, self_hosted);
        Ok(s.run.is_empty() && s.blocking.is_empty() && s.refuse.is_empty())
    }

    /// Inside the child's frame after its turn: what it said, or what it waits on.
    async fn child_report(&mut self) -> HostResult<ChildEnd> {
        let settle = self.settlement().await?;
        if !settle.blocking.is_empty() {
            return Ok(ChildEnd::Waiting(settle.blocking));
        }
        let log = self.log().await?;
        let start = log
            .iter()
            .rposition(|e| e.kind == "agent.thread_message_received")
            .unwrap_or(0);
        let mut texts = Vec::new();
        let mut stop = None;
        for e in &log[start..] {
            let Ok(body) = serde_json::from_str::<Value>(&e.body) else {
                continue;
            };
            match e.kind.as_str() {
                "agent.message" => {
                    texts = body
                        .get("content")
                        .and_then(Value::as_array)
                        .map(|blocks| {
                            blocks
                                .iter()
                                .filter_map(|b| b.get("text").and_then(Value::as_str))
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default();
                }
                "session.thread_status_idle" => {
                    stop = body
                        .pointer("/stop_reason/type")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                }
                _ => {}
            }
        }
        let said = texts.join("\n\n");
        // Cut short by an interrupt: of this thread (its echo is the child's) or of the whole
        // session (still queued for the coordinator, which stops next).
        let interrupted = log[start..].iter().any(|e| e.kind == "user.interrupt")
            || self
                .store
                .pending_inputs(&self.tenant, &self.session)
                .await?
                .iter()
                .any(|q| {
                    q.kind == "user.interrupt"
                        && q.body.get("session_thread_id").is_none_or(Value::is_null)
                });
        let stop = if interrupted && stop.as_deref() == Some("end_turn") {
            Some("interrupted".to_string())
        } else {
            stop
        };
        Ok(match stop.as_deref() {
            Some("end_turn") | None => ChildEnd::Report {
                content: vec![text(if said.is_empty() {
                    "(the agent finished without a message)"
                } else {
                    &said
                })],
                is_error: false,
            },
            Some(other) => {
                let why = match other {
                    "retries_exhausted" => "it failed (the model request could not be completed)",
                    "budget_reached" => "the session reached its budget",
                    "refusal" => "the model refused",
                    "interrupted" => "the user interrupted it",
                    _ => "it stopped",
                };
                let mut msg = format!("The agent did not finish: {why}.");
                if !said.is_empty() {
                    msg.push_str(&format!(" Its last message:\n\n{said}"));
                }
                ChildEnd::Report {
                    content: vec![text(&msg)],
                    is_error: true,
                }
            }
        })
    }

    /// The step that delivers a child's report: `agent.thread_message_sent` on the child,
    /// `agent.thread_message_received` on the primary, and the coordinator's tool result.
    fn report(&self, call: &Call, child: &Child, content: Vec<Value>, is_error: bool) -> Delegated {
        let mut step = Step::default();
        let mut sent = event(
            "agent.thread_message_sent",
            json!({"to_session_thread_id": child.primary_id, "content": content}),
        );
        sent.thread_id = Some(child.id.clone());
        step.events.push(sent);
        step.events.push(event(
            "agent.thread_message_received",
            json!({
                "from_session_thread_id": child.id,
                "from_agent_name": child.agent_name,
                "content": content,
            }),
        ));
        step.threads.push(ThreadChange::Delegation {
            id: child.id.clone(),
            call: None,
        });
        self.settled(call, content, is_error, step)
    }

    fn settled(
        &self,
        call: &Call,
        content: Vec<Value>,
        is_error: bool,
        mut step: Step,
    ) -> Delegated {
        step.events
            .push(self.result_for(&call.event_id, content, is_error));
        Delegated::Done(Box::new(step))
    }

    /// An interrupt while the session waits on a child's calls: they are denied, the child's
    /// turn ends, and the coordinator's `send_to_agent` gets an error result. Returns the
    /// coordinator's events and thread changes, for the interrupt's step.
    pub(super) async fn interrupt_waiting_children(
        &mut self,
    ) -> HostResult<(Vec<NewEvent>, Vec<ThreadChange>)> {
        let mut events = Vec::new();
        let mut changes = Vec::new();
        if !self.is_coordinator() {
            return Ok((events, changes));
        }
        let (threads, primary_id) = self.threads_and_primary().await?;
        for t in threads.iter().filter(|t| !t.archived) {
            let Some(call) = t.delegation.clone() else {
                continue;
            };
            let mut frame = Frame {
                agent: t.agent.clone(),
                child: Some(Child {
                    id: t.id.clone(),
                    agent_name: str_of(&t.agent, "name"),
                    primary_id: primary_id.clone(),
                }),
                ..Frame::default()
            };
            self.swap_frame(&mut frame);
            let denied = self.deny_waiting().await;
            self.swap_frame(&mut frame);
            denied?;
            events.push(self.result_for(
                &call,
                vec![text("The user interrupted the agent before it finished.")],
                true,
            ));
            changes.push(ThreadChange::Delegation {
                id: t.id.clone(),
                call: None,
            });
        }
        Ok((events, changes))
    }

    /// Inside a child's frame: denies what it waits on and ends its turn.
    async fn deny_waiting(&mut self) -> HostResult<()> {
        let settle = self.settlement().await?;
        let mut events: Vec<NewEvent> = settle
            .blocking
            .iter()
            .map(|id| {
                self.result_for(
                    id,
                    vec![text("The user interrupted before approving this call.")],
                    true,
                )
            })
            .collect();
        events.push(super::record::status_idle(super::IdleReason::EndTurn, &[]));
        self.commit(Step {
            events,
            status: Some("idle"),
            ..Step::default()
        })
        .await?;
        Ok(())
    }

    /// The session's child threads and its primary thread's id.
    async fn threads_and_primary(&self) -> HostResult<(Vec<ChildThread>, String)> {
        let threads = self
            .store
            .child_threads(&self.tenant, &self.session)
            .await?;
        let primary_id = match &self.primary_thread {
            Some(id) => id.clone(),
            None => {
                self.store
                    .primary_thread_id(&self.tenant, &self.session)
                    .await?
            }
        };
        Ok((threads, primary_id))
    }

    /// Swaps the host's per-thread state with `frame`'s.
    pub(super) fn swap_frame(&mut self, frame: &mut Frame) {
        std::mem::swap(&mut self.agent, &mut frame.agent);
        std::mem::swap(&mut self.log, &mut frame.log);
        std::mem::swap(&mut self.compaction, &mut frame.compaction);
        std::mem::swap(&mut self.mcp, &mut frame.mcp);
        std::mem::swap(&mut self.attachments, &mut frame.attachments);
        std::mem::swap(&mut self.recovering, &mut frame.recovering);
        std::mem::swap(&mut self.running_since, &mut frame.running_since);
        std::mem::swap(&mut self.pending_outcome, &mut frame.pending_outcome);
        std::mem::swap(&mut self.child, &mut frame.child);
    }

    /// Rewrites a step of a child's turn: the session's status events become the thread's,
    /// its status goes to the thread row, and its events are stored on the thread (usage
    /// stays the session's).
    pub(super) fn redirect_to_child(&self, mut step: Step) -> Step {
        let Some(c) = &self.child else {
            return step;
        };
        let events = std::mem::take(&mut step.events);
        for mut e in events {
            if e.thread_id.is_some() {
                step.events.push(e);
                continue;
            }
            let field = |k: &str| e.body.get(k).cloned();
            let redirected = match e.kind.as_str() {
                "session.status_running" => thread_status(&c.id, &c.agent_name, "running", None),
                "session.status_rescheduled" => {
                    thread_status(&c.id, &c.agent_name, "rescheduled", None)
                }
                "session.status_idle" => thread_status(
                    &c.id,
                    &c.agent_name,
                    "idle",
                    Some((field("stop_reason"), field("stop_details"))),
                ),
                // The session's usage is the sum of its threads': the row is kept current
                // (`step.usage`) and the snapshot event comes when the session goes idle.
                "session.usage" => continue,
                "agent.tool_use" | "agent.custom_tool_use" | "agent.mcp_tool_use" => {
                    if let Value::Object(m) = &mut e.body {
                        m.insert("session_thread_id".into(), Value::String(c.id.clone()));
                    }
                    e
                }
                _ => e,
            };
            let mut redirected = redirected;
            redirected.thread_id = Some(c.id.clone());
            step.events.push(redirected);
        }
        if let Some(status) = step.status.take() {
            step.threads.push(ThreadChange::Status {
                id: c.id.clone(),
                status,
            });
        }
        step.outcome = None;
        step.compaction = None;
        step
    }

    /// The thread this host is running (`None`: the primary thread).
    pub(super) fn current_thread(&self) -> Option<&str> {
        self.child.as_ref().map(|c| c.id.as_str())
    }

    /// A child's model-request boundary: an interrupt of the whole session or of this thread
    /// ends its turn (see `interrupt`); other input waits for the coordinator.
    pub(super) async fn child_boundary(&mut self) -> HostResult<bool> {
        let inputs = self
            .store
            .pending_inputs(&self.tenant, &self.session)
            .await?;
        let Some(pos) = inputs.iter().position(|q| self.interrupts_me(q)) else {
            return Ok(false);
        };
        self.interrupt(&inputs[..=pos], vec![]).await?;
        Ok(true)
    }
}

enum Resume {
    Run { recovering: bool },
    Waiting(Vec<String>),
}

enum ChildEnd {
    Waiting(Vec<String>),
    Report { content: Vec<Value>, is_error: bool },
}

/// `agent` with the skills of its roster's agents appended (each skill once).
pub(super) fn with_roster_skills(agent: &Value) -> Value {
    let mut out = agent.clone();
    let roster = agent
        .pointer("/multiagent/agents")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut skills: Vec<Value> = agent
        .get("skills")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for member in &roster {
        for skill in member
            .get("skills")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let id = skill.get("skill_id");
            if !skills.iter().any(|s| s.get("skill_id") == id) {
                skills.push(skill.clone());
            }
        }
    }
    if let Value::Object(m) = &mut out
        && !roster.is_empty()
    {
        m.insert("skills".into(), Value::Array(skills));
    }
    out
}

fn str_of(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn event(kind: &str, fields: Value) -> NewEvent {
    let map = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    NewEvent::new(kind, map)
}

fn on_thread(mut e: NewEvent) -> NewEvent {
    if let Some(t) = e.body.get("session_thread_id").and_then(Value::as_str) {
        e.thread_id = Some(t.to_string());
    }
    e
}

/// `session.thread_status_{running,idle,rescheduled}` of a child thread.
fn thread_status(
    thread_id: &str,
    agent_name: &str,
    status: &str,
    idle: Option<(Option<Value>, Option<Value>)>,
) -> NewEvent {
    let mut fields = json!({"session_thread_id": thread_id, "agent_name": agent_name});
    if let (Some((reason, details)), Value::Object(m)) = (idle, &mut fields) {
        m.insert(
            "stop_reason".into(),
            reason.unwrap_or(json!({"type": "end_turn"})),
        );
        m.insert("stop_details".into(), details.unwrap_or(Value::Null));
    }
    on_thread(event(&format!("session.thread_status_{status}"), fields))
}

/// The thread object of a new child (status and times are completed from its row).
fn thread_object(id: &str, session_id: &str, parent: &str, agent: &Value) -> Value {
    let now = oma_core::time::format_micros(oma_core::time::now_micros());
    json!({
        "id": id,
        "type": "session_thread",
        "agent": agent,
        "archived_at": null,
        "created_at": now,
        "parent_thread_id": parent,
        "session_id": session_id,
        "stats": null,
        "status": "idle",
        "updated_at": now,
        "usage": null,
        "workflow_run_id": null,
    })
}
