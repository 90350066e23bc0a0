//! Settlement: which tool calls of a thread's log run now, wait on the user, or are refused.

use super::*;

/// A tool call the model asked for.
#[derive(Debug, Clone)]
pub(super) struct Call {
    pub(super) event_id: String,
    pub(super) name: String,
    pub(super) input: Value,
}

/// What the log says about tool calls that have no result yet.
#[derive(Debug, Default)]
pub(super) struct Settlement {
    /// Calls still waiting on the user (`requires_action`).
    pub(super) blocking: Vec<String>,
    /// Calls to run now (approved, or interrupted-but-idempotent after a crash).
    pub(super) run: Vec<Call>,
    /// Calls that get an error result without running: `(tool_use id, message)`.
    pub(super) refuse: Vec<(String, String)>,
}

pub(super) fn is_settling(kind: &str) -> bool {
    matches!(
        kind,
        "user.tool_confirmation" | "user.custom_tool_result" | "user.tool_result"
    )
}

/// Decides the fate of every tool call in the log that has no result. `recovering`: the
/// previous host stopped mid-turn, so an allowed call without a result may have run already.
pub(super) fn settle(events: &[StoredEvent], recovering: bool, self_hosted: bool) -> Settlement {
    let mut uses: Vec<(String, Value)> = Vec::new();
    let mut answered: HashSet<String> = HashSet::new();
    let mut decisions: HashMap<String, (bool, Option<String>)> = HashMap::new();
    for e in events {
        let Ok(body) = serde_json::from_str::<Value>(&e.body) else {
            continue;
        };
        let field = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        match e.kind.as_str() {
            "agent.tool_use" | "agent.custom_tool_use" | "agent.mcp_tool_use" => {
                uses.push((e.kind.clone(), body))
            }
            "agent.tool_result" => {
                answered.insert(field("tool_use_id"));
            }
            "agent.mcp_tool_result" => {
                answered.insert(field("mcp_tool_use_id"));
            }
            "user.custom_tool_result" => {
                answered.insert(field("custom_tool_use_id"));
            }
            "user.tool_result" => {
                answered.insert(field("tool_use_id"));
            }
            "user.tool_confirmation" => {
                let allow = field("result") == "allow";
                let msg = body
                    .get("deny_message")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                decisions.insert(field("tool_use_id"), (allow, msg));
            }
            _ => {}
        }
    }
    let mut s = Settlement::default();
    for (kind, body) in uses {
        let id = body
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if answered.contains(&id) {
            continue;
        }
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let input = body.get("input").cloned().unwrap_or(json!({}));
        if kind == "agent.custom_tool_use" {
            s.blocking.push(id);
            continue;
        }
        let permission = body.get("evaluated_permission").and_then(Value::as_str);
        if permission == Some("deny") {
            // The `auto` judge refused it: it never runs, whatever answers arrive.
            s.refuse
                .push((id, crate::permission::DENIED_AS_HIGH_RISK.to_string()));
            continue;
        }
        let ask = permission == Some("ask");
        if self_hosted && kind == "agent.tool_use" && !oma_tools::runs_on_host(&name) {
            // The worker runs it and answers with `user.tool_result`; until then the session
            // waits (`requires_action`). A denial is answered here, as anywhere.
            match decisions.get(&id) {
                Some((false, msg)) => s.refuse.push((id, denial(msg.as_deref()))),
                _ => s.blocking.push(id),
            }
            continue;
        }
        match decisions.get(&id) {
            Some((true, _)) => s.run.push(Call {
                event_id: id,
                name,
                input,
            }),
            Some((false, msg)) => s.refuse.push((id, denial(msg.as_deref()))),
            None if ask => s.blocking.push(id),
            None if !recovering => s.run.push(Call {
                event_id: id,
                name,
                input,
            }),
            None => {
                // Allowed and started, but no result: the previous host stopped mid-call.
                // (An MCP tool's name says nothing about whether it is safe to repeat.)
                // A delegation resumes its child where the log shows it stands.
                if kind != "agent.mcp_tool_use"
                    && (oma_tools::is_idempotent(&name) || threads::is_delegation_tool(&name))
                {
                    s.run.push(Call {
                        event_id: id,
                        name,
                        input,
                    });
                } else {
                    s.refuse.push((
                        id,
                        format!(
                            "The `{name}` call was interrupted by a server restart before it reported a \
                             result; it may or may not have taken effect. Check before repeating it."
                        ),
                    ));
                }
            }
        }
    }
    s
}

/// The call a result input answers.
/// The call a tool confirmation or result is about.
pub(super) fn call_target<'a>(kind: &str, body: &'a Value) -> Option<&'a str> {
    match kind {
        "user.tool_confirmation" => body.get("tool_use_id").and_then(Value::as_str),
        _ => answer_target(kind, body),
    }
}

pub(super) fn answer_target<'a>(kind: &str, body: &'a Value) -> Option<&'a str> {
    let key = match kind {
        "user.tool_result" => "tool_use_id",
        "user.custom_tool_result" => "custom_tool_use_id",
        _ => return None,
    };
    body.get(key).and_then(Value::as_str)
}

/// The ids of the calls that have a result in the log.
pub(super) fn answered_calls(events: &[StoredEvent]) -> HashSet<String> {
    let mut out = HashSet::new();
    for e in events {
        let key = match e.kind.as_str() {
            "agent.tool_result" | "user.tool_result" => "tool_use_id",
            "agent.mcp_tool_result" => "mcp_tool_use_id",
            "user.custom_tool_result" => "custom_tool_use_id",
            _ => continue,
        };
        if let Ok(body) = serde_json::from_str::<Value>(&e.body)
            && let Some(id) = body.get(key).and_then(Value::as_str)
        {
            out.insert(id.to_string());
        }
    }
    out
}

/// The error result of a call the user denied.
pub(super) fn denial(message: Option<&str>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!("The user denied this tool call: {m}"),
        _ => "The user denied this tool call.".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: i64, kind: &str, body: Value) -> StoredEvent {
        StoredEvent {
            seq,
            id: body["id"].as_str().unwrap_or("x").to_string(),
            kind: kind.into(),
            thread_id: None,
            body: body.to_string(),
        }
    }

    fn tool_use(seq: i64, id: &str, name: &str, permission: &str) -> StoredEvent {
        ev(
            seq,
            "agent.tool_use",
            json!({"id": id, "name": name, "input": {}, "evaluated_permission": permission}),
        )
    }

    #[test]
    fn allowed_calls_run_and_asked_calls_wait() {
        let log = vec![
            tool_use(1, "a", "bash", "allow"),
            tool_use(2, "b", "bash", "ask"),
        ];
        let s = settle(&log, false, false);
        assert_eq!(
            s.run
                .iter()
                .map(|c| c.event_id.as_str())
                .collect::<Vec<_>>(),
            vec!["a"]
        );
        assert_eq!(s.blocking, vec!["b".to_string()]);
    }

    #[test]
    fn confirmations_decide_and_results_settle() {
        let log = vec![
            tool_use(1, "a", "bash", "ask"),
            tool_use(2, "b", "write", "ask"),
            ev(
                3,
                "agent.custom_tool_use",
                json!({"id": "c", "name": "lookup", "input": {}}),
            ),
            tool_use(4, "d", "read", "allow"),
            ev(
                5,
                "agent.tool_result",
                json!({"id": "r", "tool_use_id": "d"}),
            ),
            ev(
                6,
                "user.tool_confirmation",
                json!({"id": "u1", "tool_use_id": "a", "result": "allow"}),
            ),
            ev(
                7,
                "user.tool_confirmation",
                json!({"id": "u2", "tool_use_id": "b", "result": "deny", "deny_message": "no"}),
            ),
        ];
        let s = settle(&log, false, false);
        assert_eq!(s.run.len(), 1);
        assert_eq!(s.run[0].event_id, "a");
        assert_eq!(s.refuse.len(), 1);
        assert!(s.refuse[0].1.contains("no"));
        assert_eq!(s.blocking, vec!["c".to_string()]);
        let answered = [
            log,
            vec![ev(
                8,
                "user.custom_tool_result",
                json!({"id": "u3", "custom_tool_use_id": "c"}),
            )],
        ]
        .concat();
        assert!(settle(&answered, false, false).blocking.is_empty());
    }

    #[test]
    fn after_a_crash_only_idempotent_calls_run_again() {
        let log = vec![
            tool_use(1, "a", "read", "allow"),
            tool_use(2, "b", "bash", "allow"),
        ];
        let s = settle(&log, true, false);
        assert_eq!(
            s.run
                .iter()
                .map(|c| c.event_id.as_str())
                .collect::<Vec<_>>(),
            vec!["a"]
        );
        assert_eq!(s.refuse.len(), 1);
        assert!(s.refuse[0].1.contains("interrupted"));
    }
}
