//! Typed session events (spec §4): the history union, the stream union (history plus the
//! `event_start`/`event_delta` previews) and the seven send params, all internally tagged on
//! `type`.
//!
//! These types are the source of the event schemas in the OpenAPI document, and the runtime
//! builds the events whose shape it fixes through them (`oma_runtime::record`), so the document
//! and what the server writes cannot drift. Optional keys follow the spec's presence column:
//! "optional, nullable" fields are skipped when `None` unless the server always writes them
//! (then they serialise as `null` and stay optional in the schema, see [`never`]).

mod history;
mod params;
mod shapes;

pub use history::*;
pub use params::*;
pub use shapes::*;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub(crate) use crate::sessions::{
    BudgetLimit, CacheCreationUsage, MonetaryAmount, ServerToolUsage, SessionAgent,
};

/// `skip_serializing_if` for a key that is optional in the contract but that oma always
/// writes, `null` included: serde never skips it, and schemars still marks it optional.
pub fn never<T>(_: &T) -> bool {
    false
}

/// `BetaManagedAgentsSessionEvent`: an item of the event history (`events.list`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum SessionEvent {
    #[serde(rename = "user.message")]
    UserMessage(UserMessageEvent),
    #[serde(rename = "user.interrupt")]
    UserInterrupt(UserInterruptEvent),
    #[serde(rename = "user.tool_confirmation")]
    UserToolConfirmation(UserToolConfirmationEvent),
    #[serde(rename = "user.custom_tool_result")]
    UserCustomToolResult(UserCustomToolResultEvent),
    #[serde(rename = "agent.custom_tool_use")]
    AgentCustomToolUse(AgentCustomToolUseEvent),
    #[serde(rename = "agent.message")]
    AgentMessage(AgentMessageEvent),
    #[serde(rename = "agent.thinking")]
    AgentThinking(AgentThinkingEvent),
    #[serde(rename = "agent.mcp_tool_use")]
    AgentMcpToolUse(AgentMCPToolUseEvent),
    #[serde(rename = "agent.mcp_tool_result")]
    AgentMcpToolResult(AgentMCPToolResultEvent),
    #[serde(rename = "agent.tool_use")]
    AgentToolUse(AgentToolUseEvent),
    #[serde(rename = "agent.tool_result")]
    AgentToolResult(AgentToolResultEvent),
    #[serde(rename = "agent.thread_message_received")]
    AgentThreadMessageReceived(AgentThreadMessageReceivedEvent),
    #[serde(rename = "agent.thread_message_sent")]
    AgentThreadMessageSent(AgentThreadMessageSentEvent),
    #[serde(rename = "agent.thread_context_compacted")]
    AgentThreadContextCompacted(AgentThreadContextCompactedEvent),
    #[serde(rename = "session.error")]
    SessionError(SessionErrorEvent),
    #[serde(rename = "session.status_rescheduled")]
    SessionStatusRescheduled(SessionStatusRescheduledEvent),
    #[serde(rename = "session.status_running")]
    SessionStatusRunning(SessionStatusRunningEvent),
    #[serde(rename = "session.status_idle")]
    SessionStatusIdle(SessionStatusIdleEvent),
    #[serde(rename = "session.status_terminated")]
    SessionStatusTerminated(SessionStatusTerminatedEvent),
    #[serde(rename = "session.thread_created")]
    SessionThreadCreated(SessionThreadCreatedEvent),
    #[serde(rename = "span.outcome_evaluation_start")]
    SpanOutcomeEvaluationStart(SpanOutcomeEvaluationStartEvent),
    #[serde(rename = "span.outcome_evaluation_end")]
    SpanOutcomeEvaluationEnd(SpanOutcomeEvaluationEndEvent),
    #[serde(rename = "span.model_request_start")]
    SpanModelRequestStart(SpanModelRequestStartEvent),
    #[serde(rename = "span.model_request_end")]
    SpanModelRequestEnd(SpanModelRequestEndEvent),
    #[serde(rename = "span.outcome_evaluation_ongoing")]
    SpanOutcomeEvaluationOngoing(SpanOutcomeEvaluationOngoingEvent),
    #[serde(rename = "user.define_outcome")]
    UserDefineOutcome(UserDefineOutcomeEvent),
    #[serde(rename = "session.deleted")]
    SessionDeleted(SessionDeletedEvent),
    #[serde(rename = "session.thread_status_running")]
    SessionThreadStatusRunning(SessionThreadStatusRunningEvent),
    #[serde(rename = "session.thread_status_idle")]
    SessionThreadStatusIdle(SessionThreadStatusIdleEvent),
    #[serde(rename = "session.thread_status_terminated")]
    SessionThreadStatusTerminated(SessionThreadStatusTerminatedEvent),
    #[serde(rename = "user.tool_result")]
    UserToolResult(UserToolResultEvent),
    #[serde(rename = "session.thread_status_rescheduled")]
    SessionThreadStatusRescheduled(SessionThreadStatusRescheduledEvent),
    #[serde(rename = "session.updated")]
    SessionUpdated(Box<SessionUpdatedEvent>),
    #[serde(rename = "system.message")]
    SystemMessage(SystemMessageEvent),
    #[serde(rename = "session.usage")]
    SessionUsage(SessionUsageEvent),
    #[serde(rename = "workflow_run.created")]
    WorkflowRunCreated(WorkflowRunCreatedEvent),
    #[serde(rename = "workflow_run.status_ended")]
    WorkflowRunStatusEnded(WorkflowRunStatusEndedEvent),
    #[serde(rename = "workflow_run.phase_started")]
    WorkflowRunPhaseStarted(WorkflowRunPhaseStartedEvent),
    #[serde(rename = "workflow_run.phase_ended")]
    WorkflowRunPhaseEnded(WorkflowRunPhaseEndedEvent),
    #[serde(rename = "workflow_run.status_running")]
    WorkflowRunStatusRunning(WorkflowRunStatusRunningEvent),
    #[serde(rename = "workflow_run.status_idle")]
    WorkflowRunStatusIdle(WorkflowRunStatusIdleEvent),
    #[serde(rename = "workflow_run.error")]
    WorkflowRunError(WorkflowRunErrorEvent),
}

/// `BetaManagedAgentsStreamSessionEvents`: one SSE `data:` of `events/stream` and thread
/// `stream`: a history event, or one of the `event_start`/`event_delta` previews.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StreamEvent {
    Event(Box<SessionEvent>),
    Preview(PreviewEvent),
}

/// The stream-only previews (never in history).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum PreviewEvent {
    #[serde(rename = "event_start")]
    EventStart(StartEvent),
    #[serde(rename = "event_delta")]
    EventDelta(DeltaEvent),
}

/// `BetaManagedAgentsEventParams`: what a client may send to `POST /v1/sessions/{id}/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum EventParams {
    #[serde(rename = "user.message")]
    UserMessage(UserMessageEventParams),
    #[serde(rename = "user.interrupt")]
    UserInterrupt(UserInterruptEventParams),
    #[serde(rename = "user.tool_confirmation")]
    UserToolConfirmation(UserToolConfirmationEventParams),
    #[serde(rename = "user.custom_tool_result")]
    UserCustomToolResult(UserCustomToolResultEventParams),
    #[serde(rename = "user.define_outcome")]
    UserDefineOutcome(UserDefineOutcomeEventParams),
    #[serde(rename = "user.tool_result")]
    UserToolResult(UserToolResultEventParams),
    #[serde(rename = "system.message")]
    SystemMessage(SystemMessageEventParams),
}

/// Every `type` of the history union (`BetaManagedAgentsSessionEventType`).
pub const HISTORY_TYPES: &[&str] = &[
    "user.message",
    "user.interrupt",
    "user.tool_confirmation",
    "user.custom_tool_result",
    "agent.custom_tool_use",
    "agent.message",
    "agent.thinking",
    "agent.mcp_tool_use",
    "agent.mcp_tool_result",
    "agent.tool_use",
    "agent.tool_result",
    "agent.thread_message_received",
    "agent.thread_message_sent",
    "agent.thread_context_compacted",
    "session.error",
    "session.status_rescheduled",
    "session.status_running",
    "session.status_idle",
    "session.status_terminated",
    "session.thread_created",
    "span.outcome_evaluation_start",
    "span.outcome_evaluation_end",
    "span.model_request_start",
    "span.model_request_end",
    "span.outcome_evaluation_ongoing",
    "user.define_outcome",
    "session.deleted",
    "session.thread_status_running",
    "session.thread_status_idle",
    "session.thread_status_terminated",
    "user.tool_result",
    "session.thread_status_rescheduled",
    "session.updated",
    "system.message",
    "session.usage",
    "workflow_run.created",
    "workflow_run.status_ended",
    "workflow_run.phase_started",
    "workflow_run.phase_ended",
    "workflow_run.status_running",
    "workflow_run.status_idle",
    "workflow_run.error",
];
