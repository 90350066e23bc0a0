//! The response events of the catalog (spec §4.6.1–§4.6.7).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::*;

/// A user message event in the session conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserMessageEvent {
    pub id: String,
    pub content: Vec<UserMessageContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<String>,
}

/// An interrupt event that pauses agent execution and returns control to the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserInterruptEvent {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_thread_id: Option<String>,
}

/// A tool confirmation event that approves or denies a pending tool execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserToolConfirmationEvent {
    pub id: String,
    #[schemars(extend("enum" = ["allow", "deny"]))]
    pub result: String,
    pub tool_use_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_thread_id: Option<String>,
}

/// Event sent by the client providing the result of a custom tool execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserCustomToolResultEvent {
    pub id: String,
    pub custom_tool_use_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ToolResultContent>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_thread_id: Option<String>,
}

/// Echo of a `user.define_outcome` input event. Carries the server-generated `outcome_id` that subsequent `span.outcome_evaluation_*` events reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserDefineOutcomeEvent {
    pub id: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<i64>,
    pub outcome_id: String,
    pub processed_at: String,
    pub rubric: Rubric,
}

/// Event sent by the client providing the result of an agent-toolset tool execution. Only valid on `self_hosted` environments, where sandbox-routed tools are executed by the client rather than the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserToolResultEvent {
    pub id: String,
    pub tool_use_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ToolResultContent>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_thread_id: Option<String>,
}

/// A mid-conversation system message event. Carries system-role content that is appended to the session as a `role: "system"` turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SystemMessageEvent {
    pub id: String,
    pub content: Vec<SystemContentBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<String>,
}

/// Event emitted when the agent calls a custom tool. The session goes idle until the client sends a `user.custom_tool_result` event with the result. The client can send it as soon as this event arrives, without waiting for `session.status_idle`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "agent.custom_tool_use")]
pub struct AgentCustomToolUseEvent {
    pub id: String,
    pub input: BTreeMap<String, Value>,
    pub name: String,
    pub processed_at: String,
    #[serde(default, skip_serializing_if = "super::never")]
    pub session_thread_id: Option<String>,
}

/// An agent response event in the session conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "agent.message")]
pub struct AgentMessageEvent {
    pub id: String,
    pub content: Vec<AgentMessageContent>,
    pub processed_at: String,
}

/// Indicates the agent is making forward progress via extended thinking. A progress signal, not a content carrier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "agent.thinking")]
pub struct AgentThinkingEvent {
    pub id: String,
    pub processed_at: String,
}

/// Event emitted when the agent invokes a tool provided by an MCP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "agent.mcp_tool_use")]
pub struct AgentMCPToolUseEvent {
    pub id: String,
    pub input: BTreeMap<String, Value>,
    pub mcp_server_name: String,
    pub name: String,
    pub processed_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["allow", "ask", "deny", null]))]
    pub evaluated_permission: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<AgentToolEvaluation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_thread_id: Option<String>,
}

/// Event representing the result of an MCP tool execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "agent.mcp_tool_result")]
pub struct AgentMCPToolResultEvent {
    pub id: String,
    pub mcp_tool_use_id: String,
    pub processed_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ToolResultContent>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
}

/// Event emitted when the agent invokes a built-in agent tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "agent.tool_use")]
pub struct AgentToolUseEvent {
    pub id: String,
    pub input: BTreeMap<String, Value>,
    pub name: String,
    pub processed_at: String,
    #[serde(default, skip_serializing_if = "super::never")]
    #[schemars(extend("enum" = ["allow", "ask", "deny", null]))]
    pub evaluated_permission: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<AgentToolEvaluation>,
    #[serde(default, skip_serializing_if = "super::never")]
    pub session_thread_id: Option<String>,
}

/// Event representing the result of an agent tool execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "agent.tool_result")]
pub struct AgentToolResultEvent {
    pub id: String,
    pub processed_at: String,
    pub tool_use_id: String,
    #[serde(default, skip_serializing_if = "super::never")]
    pub content: Option<Vec<ToolResultContent>>,
    #[serde(default, skip_serializing_if = "super::never")]
    pub is_error: Option<bool>,
}

/// Delivery event written to the target thread's input stream when an agent-to-agent message arrives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "agent.thread_message_received")]
pub struct AgentThreadMessageReceivedEvent {
    pub id: String,
    pub content: Vec<UserMessageContent>,
    pub from_session_thread_id: String,
    pub processed_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_agent_name: Option<String>,
}

/// Observability event emitted to the sender's output stream when an agent-to-agent message is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "agent.thread_message_sent")]
pub struct AgentThreadMessageSentEvent {
    pub id: String,
    pub content: Vec<UserMessageContent>,
    pub processed_at: String,
    pub to_session_thread_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_agent_name: Option<String>,
}

/// Indicates that context compaction (summarization) occurred during the session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "agent.thread_context_compacted")]
pub struct AgentThreadContextCompactedEvent {
    pub id: String,
    pub processed_at: String,
}

/// An error event indicating a problem occurred during session execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "session.error")]
pub struct SessionErrorEvent {
    pub id: String,
    pub error: SessionError,
    pub processed_at: String,
}

/// Indicates the session is recovering from an error state and is rescheduled for execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "session.status_rescheduled")]
pub struct SessionStatusRescheduledEvent {
    pub id: String,
    pub processed_at: String,
}

/// Indicates the session is actively running and the agent is working.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "session.status_running")]
pub struct SessionStatusRunningEvent {
    pub id: String,
    pub processed_at: String,
}

/// Indicates the agent has paused and is awaiting user input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "session.status_idle")]
pub struct SessionStatusIdleEvent {
    pub id: String,
    pub processed_at: String,
    #[serde(default, skip_serializing_if = "super::never")]
    pub stop_details: Option<SessionRefusalStopDetails>,
    pub stop_reason: StopReason,
}

/// Indicates the session has terminated, either due to an error or completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "session.status_terminated")]
pub struct SessionStatusTerminatedEvent {
    pub id: String,
    pub processed_at: String,
}

/// Emitted when a child thread is created. Written to the parent thread's output stream so clients observing the session see child creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "session.thread_created")]
pub struct SessionThreadCreatedEvent {
    pub id: String,
    pub agent_name: String,
    pub processed_at: String,
    pub session_thread_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_run_id: Option<String>,
}

/// Emitted when a session has been deleted. Terminates any active event stream — no further events will be emitted for this session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "session.deleted")]
pub struct SessionDeletedEvent {
    pub id: String,
    pub processed_at: String,
}

/// A session thread has begun executing. Emitted on the thread's own stream and cross-posted to the primary stream for child threads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "session.thread_status_running")]
pub struct SessionThreadStatusRunningEvent {
    pub id: String,
    pub agent_name: String,
    pub processed_at: String,
    pub session_thread_id: String,
}

/// A session thread has yielded and is awaiting input. Emitted on the thread's own stream and cross-posted to the primary stream for child threads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "session.thread_status_idle")]
pub struct SessionThreadStatusIdleEvent {
    pub id: String,
    pub agent_name: String,
    pub processed_at: String,
    pub session_thread_id: String,
    #[serde(default, skip_serializing_if = "super::never")]
    pub stop_details: Option<SessionRefusalStopDetails>,
    pub stop_reason: StopReason,
}

/// A session thread has terminated and will accept no further input. Emitted on the thread's own stream and cross-posted to the primary stream for child threads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "session.thread_status_terminated")]
pub struct SessionThreadStatusTerminatedEvent {
    pub id: String,
    pub agent_name: String,
    pub processed_at: String,
    pub session_thread_id: String,
}

/// A session thread hit a transient error and is retrying automatically. Emitted on the thread's own stream and cross-posted to the primary stream for child threads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "session.thread_status_rescheduled")]
pub struct SessionThreadStatusRescheduledEvent {
    pub id: String,
    pub agent_name: String,
    pub processed_at: String,
    pub session_thread_id: String,
}

/// Emitted when an UpdateSession request changed at least one field. Carries only the fields that changed; absent fields were not part of the update. The new configuration applies from the next turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "session.updated")]
pub struct SessionUpdatedEvent {
    pub id: String,
    pub processed_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<SessionAgent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// Periodic snapshot of the session's cumulative usage and tracked list cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "session.usage")]
pub struct SessionUsageEvent {
    pub id: String,
    pub processed_at: String,
    pub usage: SessionUsageSnapshot,
    #[serde(default, skip_serializing_if = "super::never")]
    pub budget: Option<BudgetLimit>,
}

/// Emitted when an outcome evaluation cycle begins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "span.outcome_evaluation_start")]
pub struct SpanOutcomeEvaluationStartEvent {
    pub id: String,
    pub iteration: i64,
    pub outcome_id: String,
    pub processed_at: String,
}

/// Emitted when an outcome evaluation cycle completes. Carries the verdict and aggregate token usage. A verdict of `needs_revision` means another evaluation cycle follows; `satisfied`, `max_iterations_reached`, `failed`, or `interrupted` are terminal — no further evaluation cycles follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "span.outcome_evaluation_end")]
pub struct SpanOutcomeEvaluationEndEvent {
    pub id: String,
    pub explanation: String,
    pub iteration: i64,
    pub outcome_evaluation_start_id: String,
    pub outcome_id: String,
    pub processed_at: String,
    pub result: String,
    pub usage: SpanModelUsage,
}

/// Emitted when a model request is initiated by the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "span.model_request_start")]
pub struct SpanModelRequestStartEvent {
    pub id: String,
    pub processed_at: String,
}

/// Emitted when a model request completes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "span.model_request_end")]
pub struct SpanModelRequestEndEvent {
    pub id: String,
    #[serde(default, skip_serializing_if = "super::never")]
    pub is_error: Option<bool>,
    pub model_request_start_id: String,
    pub model_usage: SpanModelUsage,
    pub processed_at: String,
}

/// Periodic heartbeat emitted while an outcome evaluation cycle is in progress. Distinguishes 'evaluation is actively running' from 'evaluation is stuck' between the corresponding `span.outcome_evaluation_start` and `span.outcome_evaluation_end` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "span.outcome_evaluation_ongoing")]
pub struct SpanOutcomeEvaluationOngoingEvent {
    pub id: String,
    pub iteration: i64,
    pub outcome_id: String,
    pub processed_at: String,
}

/// A workflow run was created. A workflow run is background work that the session's agent starts. Emitted once per run, before the run's other `workflow_run.*` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "workflow_run.created")]
pub struct WorkflowRunCreatedEvent {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub name: String,
    pub phases: Vec<WorkflowRunPhase>,
    pub processed_at: String,
    pub workflow_run_id: String,
}

/// A workflow run ended. Emitted once per run, as the last of the run's `workflow_run.*` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "workflow_run.status_ended")]
pub struct WorkflowRunStatusEndedEvent {
    pub id: String,
    pub processed_at: String,
    pub result: WorkflowRunResult,
    pub workflow_run_id: String,
}

/// A workflow run's plan entered a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "workflow_run.phase_started")]
pub struct WorkflowRunPhaseStartedEvent {
    pub id: String,
    pub processed_at: String,
    pub workflow_run_id: String,
    pub workflow_run_phase_id: String,
}

/// A workflow run's plan left a phase, or the run's end closed it. Emitted once for every `workflow_run.phase_started` event, before the run's `workflow_run.status_ended` event. The event does not say whether the plan finished the phase's work, or why it left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "workflow_run.phase_ended")]
pub struct WorkflowRunPhaseEndedEvent {
    pub id: String,
    pub phase_started_id: String,
    pub processed_at: String,
    pub workflow_run_id: String,
    pub workflow_run_phase_id: String,
}

/// A workflow run is running. Emitted when the run starts to execute, and each time it resumes after being idle. A run that starts idle emits `workflow_run.status_idle` first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "workflow_run.status_running")]
pub struct WorkflowRunStatusRunningEvent {
    pub id: String,
    pub processed_at: String,
    pub workflow_run_id: String,
}

/// A workflow run is idle. Emitted each time the run goes idle, whatever the cause. If the run ends while idle, no `workflow_run.status_running` comes between this event and its `workflow_run.status_ended`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "workflow_run.status_idle")]
pub struct WorkflowRunStatusIdleEvent {
    pub id: String,
    pub processed_at: String,
    pub workflow_run_id: String,
}

/// A workflow run met an error, or an error kept a run from being created. A run that ends with a `result.type` of `error` emits this event before its `workflow_run.status_ended`, with the same `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "workflow_run.error")]
pub struct WorkflowRunErrorEvent {
    pub id: String,
    pub error: WorkflowRunError,
    pub processed_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_run_id: Option<String>,
}

/// Opens a preview of a buffered event. Carries the previewed event's type and id only. Only sent on stream connections that opt in via event_deltas; never appears in event history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "event_start")]
pub struct StartEvent {
    pub event: StartEventPreview,
}

/// An incremental update to an event that is still being streamed. Only sent on stream connections that opt in via event_deltas; never appears in event history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "event_delta")]
pub struct DeltaEvent {
    pub delta: DeltaContent,
    pub event_id: String,
}
