//! Which of a session's tool calls this worker owes an answer, from the session's events.
//!
//! Fed every event of the log (the history once, then the live stream; the same event twice
//! is harmless). A call is this worker's when it is an `agent.tool_use` of a sandbox tool (the
//! server runs `web_fetch` itself and answers it with `agent.tool_result`). It may run once
//! allowed: no confirmation needed (`evaluated_permission` other than `ask`) or a
//! `user.tool_confirmation` that allows it; a denial is answered by the server. It is settled
//! by any result for its id, ours or anyone's, and dropped when its thread terminates.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// A call to run.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The `agent.tool_use` event's id, which the result names as `tool_use_id`.
    pub id: String,
    pub name: String,
    pub input: Value,
}

#[derive(Debug, Clone)]
struct Pending {
    call: ToolCall,
    needs_confirmation: bool,
    thread: Option<String>,
}

#[derive(Debug, Default)]
pub struct Ledger {
    pending: HashMap<String, Pending>,
    /// Calls handed out by [`Ledger::take_runnable`] and not yet settled.
    running: HashSet<String>,
    settled: HashSet<String>,
    allowed: HashSet<String>,
    terminated_threads: HashSet<String>,
    /// The last status said the turn is over (idle for any reason but `requires_action`).
    turn_over: bool,
    /// The session is terminated: nothing more will come.
    terminated: bool,
}

/// What one event changed that the caller must act on.
#[derive(Debug, Default, PartialEq)]
pub struct Noted {
    /// Calls that were running here and got a result from elsewhere (an interrupt, another
    /// client): their work should be cancelled.
    pub settled_elsewhere: Vec<String>,
}

impl Ledger {
    pub fn note(&mut self, event: &Value) -> Noted {
        let mut out = Noted::default();
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let field = |k: &str| event.get(k).and_then(Value::as_str).map(str::to_string);
        match kind {
            "agent.tool_use" => {
                self.turn_over = false;
                let (Some(id), Some(name)) = (field("id"), field("name")) else {
                    return out;
                };
                if oma_tools::runs_on_host(&name)
                    || self.settled.contains(&id)
                    || self.running.contains(&id)
                {
                    return out;
                }
                let needs_confirmation =
                    event.get("evaluated_permission").and_then(Value::as_str) == Some("ask");
                let input = event.get("input").cloned().unwrap_or(Value::Null);
                self.pending.insert(
                    id.clone(),
                    Pending {
                        call: ToolCall { id, name, input },
                        needs_confirmation,
                        thread: field("session_thread_id"),
                    },
                );
            }
            "agent.tool_result" | "user.tool_result" => {
                if let Some(id) = field("tool_use_id") {
                    self.pending.remove(&id);
                    if self.running.remove(&id) {
                        out.settled_elsewhere.push(id.clone());
                    }
                    self.settled.insert(id);
                }
            }
            "user.tool_confirmation" => {
                if let Some(id) = field("tool_use_id")
                    && field("result").as_deref() == Some("allow")
                {
                    self.allowed.insert(id);
                }
            }
            "session.thread_status_terminated" => {
                if let Some(thread) = field("session_thread_id") {
                    self.pending
                        .retain(|_, p| p.thread.as_deref() != Some(thread.as_str()));
                    self.terminated_threads.insert(thread);
                }
            }
            "session.status_idle" => {
                let reason = event
                    .pointer("/stop_reason/type")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                self.turn_over = reason != "requires_action";
            }
            "session.status_running" | "user.message" => self.turn_over = false,
            "session.status_terminated" => {
                self.terminated = true;
                self.turn_over = true;
            }
            _ => {}
        }
        out
    }

    /// The calls that may run now and are not running yet; they count as running until
    /// [`Ledger::finished`] or a result event settles them.
    pub fn take_runnable(&mut self) -> Vec<ToolCall> {
        let ready: Vec<String> = self
            .pending
            .iter()
            .filter(|(id, p)| !p.needs_confirmation || self.allowed.contains(id.as_str()))
            .filter(|(_, p)| {
                p.thread
                    .as_ref()
                    .is_none_or(|t| !self.terminated_threads.contains(t))
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut calls = Vec::new();
        for id in ready {
            if let Some(p) = self.pending.remove(&id) {
                self.running.insert(id);
                calls.push(p.call);
            }
        }
        // Oldest first is not knowable from a map; ids are time-ordered.
        calls.sort_by(|a, b| a.id.cmp(&b.id));
        calls
    }

    /// This worker answered `id` (or gave up on it).
    pub fn finished(&mut self, id: &str) {
        self.running.remove(id);
        self.settled.insert(id.to_string());
    }

    /// Nothing is running here and the turn is over: the session needs no worker until new
    /// input arrives.
    pub fn at_rest(&self) -> bool {
        self.turn_over && self.running.is_empty()
    }

    pub fn terminated(&self) -> bool {
        self.terminated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool_use(id: &str, name: &str, permission: &str) -> Value {
        json!({"type": "agent.tool_use", "id": id, "name": name, "input": {"command": "ls"},
               "evaluated_permission": permission})
    }

    fn idle(reason: &str) -> Value {
        json!({"type": "session.status_idle", "stop_reason": {"type": reason}})
    }

    #[test]
    fn an_allowed_sandbox_call_runs_once() {
        let mut l = Ledger::default();
        l.note(&tool_use("sevt_1", "bash", "allow"));
        // The same event again (history and stream overlap) changes nothing.
        l.note(&tool_use("sevt_1", "bash", "allow"));
        let calls = l.take_runnable();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].name, "bash");
        assert!(l.take_runnable().is_empty());
        l.note(&tool_use("sevt_1", "bash", "allow"));
        assert!(
            l.take_runnable().is_empty(),
            "a running call is not offered again"
        );
        l.note(&idle("requires_action"));
        assert!(!l.at_rest());
        l.finished("sevt_1");
        l.note(&json!({"type": "user.tool_result", "tool_use_id": "sevt_1"}));
        l.note(&tool_use("sevt_1", "bash", "allow"));
        assert!(
            l.take_runnable().is_empty(),
            "an answered call never runs again"
        );
        l.note(&idle("end_turn"));
        assert!(l.at_rest());
    }

    #[test]
    fn host_tools_and_answered_calls_are_not_ours() {
        let mut l = Ledger::default();
        l.note(&tool_use("sevt_1", "web_fetch", "allow"));
        l.note(&tool_use("sevt_2", "read", "allow"));
        l.note(&json!({"type": "agent.tool_result", "tool_use_id": "sevt_2"}));
        assert!(l.take_runnable().is_empty());
    }

    #[test]
    fn a_call_that_asks_waits_for_its_confirmation() {
        let mut l = Ledger::default();
        l.note(&tool_use("sevt_1", "bash", "ask"));
        assert!(l.take_runnable().is_empty());
        l.note(
            &json!({"type": "user.tool_confirmation", "tool_use_id": "sevt_1", "result": "deny"}),
        );
        assert!(
            l.take_runnable().is_empty(),
            "a denial is the server's to answer"
        );
        l.note(&tool_use("sevt_2", "bash", "ask"));
        l.note(
            &json!({"type": "user.tool_confirmation", "tool_use_id": "sevt_2", "result": "allow"}),
        );
        let calls = l.take_runnable();
        assert_eq!(
            calls.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["sevt_2"]
        );
    }

    #[test]
    fn a_result_from_elsewhere_cancels_the_running_call() {
        let mut l = Ledger::default();
        l.note(&tool_use("sevt_1", "bash", "allow"));
        assert_eq!(l.take_runnable().len(), 1);
        let n = l.note(&json!({"type": "agent.tool_result", "tool_use_id": "sevt_1"}));
        assert_eq!(n.settled_elsewhere, ["sevt_1"]);
        l.note(&idle("end_turn"));
        assert!(l.at_rest());
    }

    #[test]
    fn calls_of_a_terminated_thread_are_dropped() {
        let mut l = Ledger::default();
        let mut e = tool_use("sevt_1", "bash", "ask");
        e["session_thread_id"] = json!("sthr_child");
        l.note(&e);
        l.note(
            &json!({"type": "session.thread_status_terminated", "session_thread_id": "sthr_child"}),
        );
        l.note(
            &json!({"type": "user.tool_confirmation", "tool_use_id": "sevt_1", "result": "allow"}),
        );
        assert!(l.take_runnable().is_empty());
    }

    #[test]
    fn a_terminated_session_is_at_rest() {
        let mut l = Ledger::default();
        l.note(&json!({"type": "session.status_terminated"}));
        assert!(l.terminated() && l.at_rest());
    }
}
