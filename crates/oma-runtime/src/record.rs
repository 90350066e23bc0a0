//! The events the runtime writes, built in one place so their shapes match the catalog
//! (spec §4.6.3–§4.6.5) exactly. Events whose shape is fixed are built as the typed events of
//! `oma_api::events` (the OpenAPI document's source), so the two cannot drift; the rest
//! (tool result content, error objects, usage snapshots) carry JSON made elsewhere.

use oma_api::events::{self as ev, SessionEvent, StopReason};
use serde_json::{Map, Value, json};

use oma_core::events::NewEvent;
use oma_model::types::Usage;

use crate::permission::Evaluated;

/// `e` as the body of a new event: the store assigns `id` and `processed_at`, so the typed
/// event's placeholders for them are dropped by `NewEvent::new`, which sets both.
fn typed(e: SessionEvent) -> NewEvent {
    let mut map = match serde_json::to_value(&e) {
        Ok(Value::Object(m)) => m,
        // Unreachable: every event serialises to an object (all map keys are strings).
        _ => Map::new(),
    };
    let kind = match map.remove("type") {
        Some(Value::String(k)) => k,
        _ => String::new(),
    };
    NewEvent::new(&kind, map)
}

/// The `id` and `processed_at` of a typed event before the store fills them in.
fn unset() -> (String, String) {
    (String::new(), String::new())
}

fn event(kind: &str, fields: Value) -> NewEvent {
    let map = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    NewEvent::new(kind, map)
}

pub fn status_running() -> NewEvent {
    let (id, processed_at) = unset();
    typed(SessionEvent::SessionStatusRunning(
        ev::SessionStatusRunningEvent { id, processed_at },
    ))
}

pub fn status_rescheduled() -> NewEvent {
    let (id, processed_at) = unset();
    typed(SessionEvent::SessionStatusRescheduled(
        ev::SessionStatusRescheduledEvent { id, processed_at },
    ))
}

/// `session.status_idle` with `stop_reason` `end_turn`, `retries_exhausted` or
/// `requires_action` (when `blocking` is non-empty).
pub fn status_idle(reason: IdleReason, blocking: &[String]) -> NewEvent {
    idle(reason.stop_reason(blocking), None)
}

fn idle(stop_reason: StopReason, stop_details: Option<ev::SessionRefusalStopDetails>) -> NewEvent {
    let (id, processed_at) = unset();
    typed(SessionEvent::SessionStatusIdle(
        ev::SessionStatusIdleEvent {
            id,
            processed_at,
            stop_reason,
            stop_details,
        },
    ))
}

/// `session.status_idle` after the model refused to answer: `stop_reason: refusal`, with the
/// provider's category and explanation as `stop_details` (both null when it gave none).
pub fn status_idle_refused(details: Option<&Value>) -> NewEvent {
    let field = |k: &str| {
        details
            .and_then(|d| d.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    idle(
        StopReason::Refusal(ev::SessionRefusal {}),
        Some(ev::SessionRefusalStopDetails {
            category: field("category"),
            explanation: field("explanation"),
        }),
    )
}

/// `session.thread_status_idle` of thread `thread_id`, which runs the agent `agent_name`.
pub fn thread_status_idle(thread_id: &str, agent_name: &str, reason: IdleReason) -> NewEvent {
    let (id, processed_at) = unset();
    typed(SessionEvent::SessionThreadStatusIdle(
        ev::SessionThreadStatusIdleEvent {
            id,
            processed_at,
            session_thread_id: thread_id.to_string(),
            agent_name: agent_name.to_string(),
            stop_reason: reason.stop_reason(&[]),
            stop_details: None,
        },
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleReason {
    EndTurn,
    RequiresAction,
    RetriesExhausted,
    BudgetReached,
}

impl IdleReason {
    fn stop_reason(self, blocking: &[String]) -> StopReason {
        match self {
            IdleReason::EndTurn => StopReason::EndTurn(ev::SessionEndTurn {}),
            IdleReason::RetriesExhausted => {
                StopReason::RetriesExhausted(ev::SessionRetriesExhausted {})
            }
            IdleReason::BudgetReached => StopReason::BudgetReached(ev::SessionBudgetReached {}),
            IdleReason::RequiresAction => StopReason::RequiresAction(ev::SessionRequiresAction {
                event_ids: blocking.to_vec(),
            }),
        }
    }
}

pub fn model_request_start() -> NewEvent {
    let (id, processed_at) = unset();
    typed(SessionEvent::SpanModelRequestStart(
        ev::SpanModelRequestStartEvent { id, processed_at },
    ))
}

pub fn model_request_end(start_id: &str, usage: &Usage, is_error: bool) -> NewEvent {
    let (id, processed_at) = unset();
    typed(SessionEvent::SpanModelRequestEnd(
        ev::SpanModelRequestEndEvent {
            id,
            processed_at,
            model_request_start_id: start_id.to_string(),
            model_usage: span_usage(usage),
            is_error: Some(is_error),
        },
    ))
}

pub fn span_usage(u: &Usage) -> ev::SpanModelUsage {
    ev::SpanModelUsage {
        input_tokens: saturating(u.input_tokens),
        output_tokens: saturating(u.output_tokens),
        cache_creation_input_tokens: saturating(u.cache_creation_input_tokens),
        cache_read_input_tokens: saturating(u.cache_read_input_tokens),
        speed: None,
    }
}

fn saturating(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub fn agent_message(text_blocks: &[String]) -> NewEvent {
    let (id, processed_at) = unset();
    let content = text_blocks
        .iter()
        .map(|t| ev::AgentMessageContent::Text(ev::TextBlock { text: t.clone() }))
        .collect();
    typed(SessionEvent::AgentMessage(ev::AgentMessageEvent {
        id,
        processed_at,
        content,
    }))
}

pub fn context_compacted() -> NewEvent {
    let (id, processed_at) = unset();
    typed(SessionEvent::AgentThreadContextCompacted(
        ev::AgentThreadContextCompactedEvent { id, processed_at },
    ))
}

pub fn agent_thinking() -> NewEvent {
    let (id, processed_at) = unset();
    typed(SessionEvent::AgentThinking(ev::AgentThinkingEvent {
        id,
        processed_at,
    }))
}

/// `agent.tool_use` for a built-in tool, with the permission it was evaluated to.
pub fn tool_use(name: &str, input: &Value, evaluated: &Evaluated) -> NewEvent {
    let (id, processed_at) = unset();
    typed(SessionEvent::AgentToolUse(ev::AgentToolUseEvent {
        id,
        processed_at,
        name: name.to_string(),
        input: object_or_empty(input),
        evaluated_permission: Some(evaluated.permission().to_string()),
        evaluation: Some(evaluated.evaluation_typed()),
        session_thread_id: None,
    }))
}

pub fn custom_tool_use(name: &str, input: &Value) -> NewEvent {
    let (id, processed_at) = unset();
    typed(SessionEvent::AgentCustomToolUse(
        ev::AgentCustomToolUseEvent {
            id,
            processed_at,
            name: name.to_string(),
            input: object_or_empty(input),
            session_thread_id: None,
        },
    ))
}

pub fn tool_result(tool_use_id: &str, content: Vec<Value>, is_error: bool) -> NewEvent {
    event(
        "agent.tool_result",
        json!({"tool_use_id": tool_use_id, "content": content, "is_error": is_error}),
    )
}

/// `session.error` with one of the typed error objects (`model_overloaded_error`, …) and
/// `retry_status` `retrying`, `exhausted` or `terminal`.
pub fn session_error(error_type: &str, message: &str, retry_status: &str) -> NewEvent {
    event(
        "session.error",
        json!({"error": {"type": error_type, "message": message, "retry_status": {"type": retry_status}}}),
    )
}

pub fn session_usage(usage: &Value, budget: &Value) -> NewEvent {
    event("session.usage", json!({"usage": usage, "budget": budget}))
}

/// The echo of a queued client event, now processed.
pub fn echo(kind: &str, mut body: Value) -> NewEvent {
    let now = oma_core::time::now_micros();
    if let Value::Object(m) = &mut body {
        m.insert(
            "processed_at".into(),
            Value::String(oma_core::time::format_micros(now)),
        );
    }
    let id = body
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    NewEvent {
        id,
        kind: kind.to_string(),
        thread_id: None,
        processed_at: Some(now),
        body,
    }
}

fn object_or_empty(v: &Value) -> std::collections::BTreeMap<String, Value> {
    match v {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => Default::default(),
    }
}

/// Gives an event the id promised earlier (to preview subscribers), when there is one.
pub fn with_id(mut e: NewEvent, id: Option<String>) -> NewEvent {
    if let Some(id) = id {
        if let Value::Object(m) = &mut e.body {
            m.insert("id".into(), Value::String(id.clone()));
        }
        e.id = id;
    }
    e
}

/// `span.outcome_evaluation_start` of iteration `iteration` (0-indexed) of an outcome.
pub fn outcome_evaluation_start(outcome_id: &str, iteration: u32) -> NewEvent {
    let (id, processed_at) = unset();
    typed(SessionEvent::SpanOutcomeEvaluationStart(
        ev::SpanOutcomeEvaluationStartEvent {
            id,
            processed_at,
            outcome_id: outcome_id.to_string(),
            iteration: iteration.into(),
        },
    ))
}

/// `span.outcome_evaluation_ongoing`: the grader is still at work.
pub fn outcome_evaluation_ongoing(outcome_id: &str, iteration: u32) -> NewEvent {
    let (id, processed_at) = unset();
    typed(SessionEvent::SpanOutcomeEvaluationOngoing(
        ev::SpanOutcomeEvaluationOngoingEvent {
            id,
            processed_at,
            outcome_id: outcome_id.to_string(),
            iteration: iteration.into(),
        },
    ))
}

/// `span.outcome_evaluation_end` with the verdict and the grader's usage.
pub fn outcome_evaluation_end(
    start_id: &str,
    outcome_id: &str,
    iteration: u32,
    result: &str,
    explanation: &str,
    usage: &Usage,
) -> NewEvent {
    let (id, processed_at) = unset();
    typed(SessionEvent::SpanOutcomeEvaluationEnd(
        ev::SpanOutcomeEvaluationEndEvent {
            id,
            processed_at,
            outcome_evaluation_start_id: start_id.to_string(),
            outcome_id: outcome_id.to_string(),
            iteration: iteration.into(),
            result: result.to_string(),
            explanation: explanation.to_string(),
            usage: span_usage(usage),
        },
    ))
}
