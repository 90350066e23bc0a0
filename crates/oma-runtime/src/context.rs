//! The model context is a projection of the event log, rebuilt before every model request.
//!
//! The log is in processing order (queued input is echoed only when the host consumes it), so
//! walking it in `seq` order gives the conversation exactly as the model lived it: a message
//! sent mid-turn lands after the tool results it followed, never inside a tool-use exchange.
//! Tool-use ids in the context are the ids of the `agent.*tool_use` events, which survive a
//! restart unchanged.

use serde_json::Value;

use oma_model::types::{Block, Message, Role};
use oma_store::events::StoredEvent;

/// What the log says the model should see.
#[derive(Debug, Default, Clone)]
pub struct Projection {
    /// `system.message` texts, appended to the agent's system prompt in order.
    pub system_extra: Vec<String>,
    pub messages: Vec<Message>,
}

pub fn project(events: &[(String, Value)]) -> Projection {
    let mut p = Projection::default();
    for (kind, body) in events {
        match kind.as_str() {
            "user.message" => {
                let blocks = user_blocks(body.get("content"));
                push(&mut p.messages, Role::User, blocks);
            }
            // A child thread's task from its coordinator is its user turn. (On the primary
            // thread a child's report, which names its agent, arrives as the tool result.)
            "agent.thread_message_received" if body.get("from_agent_name").is_none() => {
                let blocks = user_blocks(body.get("content"));
                push(&mut p.messages, Role::User, blocks);
            }
            "user.define_outcome" => {
                // The outcome is the task: the model works toward it like toward a message.
                let description = str_field(body, "description");
                let rubric = match body.pointer("/rubric/type").and_then(Value::as_str) {
                    Some("text") => body
                        .pointer("/rubric/content")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    Some("file") => format!(
                        "(the rubric is file {})",
                        body.pointer("/rubric/file_id")
                            .and_then(Value::as_str)
                            .unwrap_or("?")
                    ),
                    _ => String::new(),
                };
                let text = format!(
                    "Outcome to achieve: {description}\n\nIt will be judged against this rubric:\n{rubric}"
                );
                push(
                    &mut p.messages,
                    Role::User,
                    vec![Block::Text { text, cache: false }],
                );
            }
            "span.outcome_evaluation_end" => {
                // The grader's verdict reaches the agent when it has more to do.
                let explanation = str_field(body, "explanation");
                let n = body.get("iteration").and_then(Value::as_u64).unwrap_or(0) + 1;
                let text = match body.get("result").and_then(Value::as_str) {
                    Some("needs_revision") => format!(
                        "[Outcome evaluation {n}: the grader found that the work does not meet the \
                         rubric yet]\n{explanation}\n\nRevise the deliverable accordingly."
                    ),
                    Some("max_iterations_reached") => format!(
                        "[Outcome evaluation {n}: the work still does not meet the rubric and the \
                         limit of evaluations is reached; none follows]\n{explanation}\n\nBriefly \
                         say where the work stands."
                    ),
                    _ => String::new(),
                };
                if !text.is_empty() {
                    push(
                        &mut p.messages,
                        Role::User,
                        vec![Block::Text { text, cache: false }],
                    );
                }
            }
            "system.message" => {
                let text = texts(body.get("content")).join("\n");
                if !text.is_empty() {
                    p.system_extra.push(text);
                }
            }
            "agent.message" => {
                let blocks = texts(body.get("content"))
                    .into_iter()
                    .filter(|t| !t.is_empty())
                    .map(|text| Block::Text { text, cache: false })
                    .collect();
                push(&mut p.messages, Role::Assistant, blocks);
            }
            "agent.tool_use" | "agent.custom_tool_use" | "agent.mcp_tool_use" => {
                let id = str_field(body, "id");
                let mut name = str_field(body, "name");
                if kind == "agent.mcp_tool_use" {
                    // The model called it by the name it was offered.
                    name = oma_mcp::exposed_name(&str_field(body, "mcp_server_name"), &name);
                }
                let input = body
                    .get("input")
                    .cloned()
                    .unwrap_or(Value::Object(Default::default()));
                push(
                    &mut p.messages,
                    Role::Assistant,
                    vec![Block::ToolUse { id, name, input }],
                );
            }
            "agent.tool_result" | "agent.mcp_tool_result" => {
                let id_key = if kind == "agent.tool_result" {
                    "tool_use_id"
                } else {
                    "mcp_tool_use_id"
                };
                push_result(&mut p.messages, str_field(body, id_key), body);
            }
            "user.custom_tool_result" => {
                push_result(&mut p.messages, str_field(body, "custom_tool_use_id"), body)
            }
            "user.tool_result" => {
                push_result(&mut p.messages, str_field(body, "tool_use_id"), body)
            }
            _ => {}
        }
    }
    close_dangling_tool_uses(&mut p.messages);
    p
}

/// Converts stored events into the `(type, body)` pairs `project` reads.
pub fn from_stored(events: &[StoredEvent]) -> Vec<(String, Value)> {
    events
        .iter()
        .filter_map(|e| {
            serde_json::from_str(&e.body)
                .ok()
                .map(|b| (e.kind.clone(), b))
        })
        .collect()
}

fn push_result(messages: &mut Vec<Message>, tool_use_id: String, body: &Value) {
    let content = user_blocks(body.get("content"));
    let is_error = body
        .get("is_error")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    push(
        messages,
        Role::User,
        vec![Block::ToolResult {
            tool_use_id,
            content,
            is_error,
        }],
    );
}

/// Appends blocks, merging into the previous message when it has the same role (the API wants
/// alternating roles; parallel tool results belong to one user message).
fn push(messages: &mut Vec<Message>, role: Role, blocks: Vec<Block>) {
    if blocks.is_empty() {
        return;
    }
    match messages.last_mut() {
        Some(last) if last.role == role => {
            // Tool results must come first in a user message; text that arrived later follows.
            last.content.extend(blocks);
        }
        _ => messages.push(Message {
            role,
            content: blocks,
        }),
    }
}

/// A tool use without a result (a crash, or a call still awaiting approval) would make the
/// request invalid; the runtime records results before sampling, so this only guards.
fn close_dangling_tool_uses(messages: &mut Vec<Message>) {
    let mut i = 0;
    while i < messages.len() {
        if messages[i].role == Role::Assistant {
            let ids: Vec<String> = messages[i]
                .content
                .iter()
                .filter_map(|b| match b {
                    Block::ToolUse { id, .. } => Some(id.clone()),
                    _ => None,
                })
                .collect();
            if !ids.is_empty() {
                let answered: Vec<String> = messages
                    .get(i + 1)
                    .map(|m| {
                        m.content
                            .iter()
                            .filter_map(|b| match b {
                                Block::ToolResult { tool_use_id, .. } => Some(tool_use_id.clone()),
                                _ => None,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let missing: Vec<Block> = ids
                    .into_iter()
                    .filter(|id| !answered.contains(id))
                    .map(|id| Block::ToolResult {
                        tool_use_id: id,
                        content: vec![Block::Text {
                            text: "The tool call did not complete.".into(),
                            cache: false,
                        }],
                        is_error: true,
                    })
                    .collect();
                if !missing.is_empty() {
                    match messages.get_mut(i + 1) {
                        Some(next) if next.role == Role::User => {
                            let mut blocks = missing;
                            blocks.append(&mut next.content);
                            next.content = blocks;
                        }
                        _ => messages.insert(
                            i + 1,
                            Message {
                                role: Role::User,
                                content: missing,
                            },
                        ),
                    }
                }
            }
        }
        i += 1;
    }
}

fn user_blocks(content: Option<&Value>) -> Vec<Block> {
    let Some(Value::Array(items)) = content else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|b| match b.get("type").and_then(Value::as_str) {
            Some("text") => Some(Block::Text {
                text: str_field(b, "text"),
                cache: false,
            }),
            Some("image") => match b.get("source") {
                Some(src)
                    if matches!(
                        src.get("type").and_then(Value::as_str),
                        Some("base64" | "url" | "file")
                    ) =>
                {
                    Some(Block::Image {
                        source: src.clone(),
                    })
                }
                Some(src) => Some(Block::Text {
                    text: format!("[image: {}]", reference(src)),
                    cache: false,
                }),
                None => None,
            },
            Some("document") => match b.get("source") {
                Some(src)
                    if matches!(
                        src.get("type").and_then(Value::as_str),
                        Some("base64" | "url" | "text" | "file")
                    ) =>
                {
                    Some(Block::Document {
                        source: src.clone(),
                        title: b.get("title").and_then(Value::as_str).map(str::to_string),
                        context: b.get("context").and_then(Value::as_str).map(str::to_string),
                    })
                }
                Some(src) => Some(Block::Text {
                    text: format!("[document: {}]", reference(src)),
                    cache: false,
                }),
                None => None,
            },
            Some("search_result") => {
                let title = str_field(b, "title");
                let source = str_field(b, "source");
                let body = texts(b.get("content")).join("\n");
                Some(Block::Text {
                    text: format!("{title} ({source})\n{body}"),
                    cache: false,
                })
            }
            _ => None,
        })
        .collect()
}

/// A file reference the model cannot open itself: it is mounted in the session's box.
fn reference(src: &Value) -> String {
    match src.get("file_id").and_then(Value::as_str) {
        Some(id) => format!("file {id}, mounted at /mnt/session/uploads/{id}"),
        None => "unavailable".into(),
    }
}

fn texts(content: Option<&Value>) -> Vec<String> {
    let Some(Value::Array(items)) = content else {
        return Vec::new();
    };
    items
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .map(|b| str_field(b, "text"))
        .collect()
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(kind: &str, body: Value) -> (String, Value) {
        (kind.to_string(), body)
    }

    #[test]
    fn a_tool_turn_projects_to_alternating_messages() {
        let log = vec![
            ev(
                "user.message",
                json!({"content": [{"type": "text", "text": "list files"}]}),
            ),
            ev("session.status_running", json!({})),
            ev(
                "agent.message",
                json!({"content": [{"type": "text", "text": "Sure."}]}),
            ),
            ev(
                "agent.tool_use",
                json!({"id": "sevt_1", "name": "bash", "input": {"command": "ls"}}),
            ),
            ev(
                "agent.tool_use",
                json!({"id": "sevt_2", "name": "read", "input": {"file_path": "a"}}),
            ),
            ev(
                "agent.tool_result",
                json!({"tool_use_id": "sevt_1", "content": [{"type": "text", "text": "a"}], "is_error": false}),
            ),
            ev(
                "agent.tool_result",
                json!({"tool_use_id": "sevt_2", "content": [{"type": "text", "text": "x"}], "is_error": false}),
            ),
            ev(
                "user.message",
                json!({"content": [{"type": "text", "text": "also count them"}]}),
            ),
            ev(
                "system.message",
                json!({"content": [{"type": "text", "text": "be terse"}]}),
            ),
        ];
        let p = project(&log);
        assert_eq!(p.messages.len(), 3);
        assert_eq!(p.messages[0].role, Role::User);
        assert_eq!(p.messages[1].role, Role::Assistant);
        assert_eq!(p.messages[1].content.len(), 3);
        assert_eq!(p.messages[2].role, Role::User);
        assert!(
            matches!(&p.messages[2].content[0], Block::ToolResult { tool_use_id, .. } if tool_use_id == "sevt_1")
        );
        assert!(
            matches!(&p.messages[2].content[2], Block::Text { text, .. } if text == "also count them")
        );
        assert_eq!(p.system_extra, vec!["be terse".to_string()]);
    }

    #[test]
    fn a_tool_use_without_result_is_closed() {
        let log = vec![
            ev(
                "user.message",
                json!({"content": [{"type": "text", "text": "go"}]}),
            ),
            ev(
                "agent.tool_use",
                json!({"id": "sevt_9", "name": "bash", "input": {}}),
            ),
        ];
        let p = project(&log);
        assert_eq!(p.messages.len(), 3);
        assert!(matches!(
            &p.messages[2].content[0],
            Block::ToolResult { is_error: true, .. }
        ));
    }
}
