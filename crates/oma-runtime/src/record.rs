//! The events the runtime writes, built in one place so their shapes match the catalog
//! (spec §4.6.3–§4.6.5) exactly.

use serde_json::{Map, Value, json};

use oma_core::events::NewEvent;
use oma_model::types::Usage;

use crate::permission::Evaluated;

fn event(kind: &str, fields: Value) -> NewEvent {
    let map = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    NewEvent::new(kind, map)
}

pub fn status_running() -> NewEvent {
    event("session.status_running", json!({}))
}

pub fn status_rescheduled() -> NewEvent {
    event("session.status_rescheduled", json!({}))
}

/// `session.status_idle` with `stop_reason` `end_turn`, `retries_exhausted` or
/// `requires_action` (when `blocking` is non-empty).
pub fn status_idle(reason: IdleReason, blocking: &[String]) -> NewEvent {
    event(
        "session.status_idle",
        json!({"stop_reason": reason.stop_reason(blocking), "stop_details": null}),
    )
}

/// `session.status_idle` after the model refused to answer: `stop_reason: refusal`, with the
/// provider's category and explanation as `stop_details` (both null when it gave none).
pub fn status_idle_refused(details: Option<&Value>) -> NewEvent {
    let field = |k: &str| {
        details
            .and_then(|d| d.get(k))
            .cloned()
            .unwrap_or(Value::Null)
    };
    event(
        "session.status_idle",
        json!({
            "stop_reason": {"type": "refusal"},
            "stop_details": {
                "type": "refusal",
                "category": field("category"),
                "explanation": field("explanation"),
            },
        }),
    )
}

/// `session.thread_status_idle` of thread `thread_id`, which runs the agent `agent_name`.
pub fn thread_status_idle(thread_id: &str, agent_name: &str, reason: IdleReason) -> NewEvent {
    event(
        "session.thread_status_idle",
        json!({
            "session_thread_id": thread_id,
            "agent_name": agent_name,
            "stop_reason": reason.stop_reason(&[]),
            "stop_details": null,
        }),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleReason {
    EndTurn,
    RequiresAction,
    RetriesExhausted,
    BudgetReached,
}

impl IdleReason {
    fn stop_reason(self, blocking: &[String]) -> Value {
        match self {
            IdleReason::EndTurn => json!({"type": "end_turn"}),
            IdleReason::RetriesExhausted => json!({"type": "retries_exhausted"}),
            IdleReason::BudgetReached => json!({"type": "budget_reached"}),
            IdleReason::RequiresAction => json!({"type": "requires_action", "event_ids": blocking}),
        }
    }
}

pub fn model_request_start() -> NewEvent {
    event("span.model_request_start", json!({}))
}

pub fn model_request_end(start_id: &str, usage: &Usage, is_error: bool) -> NewEvent {
    event(
        "span.model_request_end",
        json!({
            "model_request_start_id": start_id,
            "model_usage": span_usage(usage),
            "is_error": is_error,
        }),
    )
}

pub fn span_usage(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_creation_input_tokens,
        "cache_read_input_tokens": u.cache_read_input_tokens,
        "speed": null,
    })
}

pub fn agent_message(text_blocks: &[String]) -> NewEvent {
    let content: Vec<Value> = text_blocks
        .iter()
        .map(|t| json!({"type": "text", "text": t}))
        .collect();
    event("agent.message", json!({ "content": content }))
}

pub fn context_compacted() -> NewEvent {
    event("agent.thread_context_compacted", json!({}))
}

pub fn agent_thinking() -> NewEvent {
    event("agent.thinking", json!({}))
}

/// `agent.tool_use` for a built-in tool, with the permission it was evaluated to.
pub fn tool_use(name: &str, input: &Value, evaluated: &Evaluated) -> NewEvent {
    event(
        "agent.tool_use",
        json!({
            "name": name,
            "input": object_or_empty(input),
            "evaluated_permission": evaluated.permission(),
            "evaluation": evaluated.evaluation(),
            "session_thread_id": null,
        }),
    )
}

pub fn custom_tool_use(name: &str, input: &Value) -> NewEvent {
    event(
        "agent.custom_tool_use",
        json!({"name": name, "input": object_or_empty(input), "session_thread_id": null}),
    )
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

fn object_or_empty(v: &Value) -> Value {
    if v.is_object() { v.clone() } else { json!({}) }
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
    event(
        "span.outcome_evaluation_start",
        json!({"outcome_id": outcome_id, "iteration": iteration}),
    )
}

/// `span.outcome_evaluation_ongoing`: the grader is still at work.
pub fn outcome_evaluation_ongoing(outcome_id: &str, iteration: u32) -> NewEvent {
    event(
        "span.outcome_evaluation_ongoing",
        json!({"outcome_id": outcome_id, "iteration": iteration}),
    )
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
    event(
        "span.outcome_evaluation_end",
        json!({
            "outcome_evaluation_start_id": start_id,
            "outcome_id": outcome_id,
            "iteration": iteration,
            "result": result,
            "explanation": explanation,
            "usage": span_usage(usage),
        }),
    )
}
