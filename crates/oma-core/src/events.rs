//! Domain rules: session events.
//!
//! Validation of the events clients send (spec §4.6.1, semantics §5) and construction of the
//! events the server itself records. Client payloads are rebuilt from known keys only, so what
//! is stored (and echoed) is exactly the response shape the SDK validates.

use serde_json::{Map, Value, json};

use crate::{Error, ids, time};

/// Most events one `POST …/events` may carry.
pub const MAX_EVENTS_PER_REQUEST: usize = 100;
/// Most `initial_events` on session create.
pub const MAX_INITIAL_EVENTS: usize = 50;
const MAX_RUBRIC_CHARS: usize = 262_144;
const MAX_SYSTEM_BLOCKS: usize = 1000;

/// An event ready to be appended to a session's log (it gets its `seq` on append).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub id: String,
    pub kind: String,
    /// The thread it belongs to; `None` is the primary thread.
    pub thread_id: Option<String>,
    pub processed_at: Option<i64>,
    /// The full event object (`id`, `type`, `processed_at` included).
    pub body: Value,
}

impl NewEvent {
    /// Builds an event of `kind` with the given payload fields, stamped now.
    pub fn new(kind: &str, mut fields: Map<String, Value>) -> Self {
        let id = ids::new_id(ids::EVENT);
        let now = time::now_micros();
        fields.insert("id".into(), Value::String(id.clone()));
        fields.insert("type".into(), Value::String(kind.to_string()));
        fields.insert(
            "processed_at".into(),
            Value::String(time::format_micros(now)),
        );
        NewEvent {
            id,
            kind: kind.to_string(),
            thread_id: None,
            processed_at: Some(now),
            body: Value::Object(fields),
        }
    }
}

/// Whether an event shows on the session-level stream and event list (semantics §10): every
/// event of the primary thread, and of a child thread its lifecycle, the calls that wait on
/// the user (an `ask` confirmation, a custom tool) and the user's answers to them. The rest of
/// a child's work shows only on its own thread. `permission` is the tool use's
/// `evaluated_permission`, when it is one.
pub fn on_session_stream(thread_id: Option<&str>, kind: &str, permission: Option<&str>) -> bool {
    if thread_id.is_none() {
        return true;
    }
    match kind {
        "agent.custom_tool_use" | "user.tool_confirmation" | "user.custom_tool_result" => true,
        "agent.tool_use" | "agent.mcp_tool_use" => permission == Some("ask"),
        _ => kind.starts_with("session.thread_status_"),
    }
}

/// [`on_session_stream`] for a stored event body (JSON text).
pub fn stored_on_session_stream(thread_id: Option<&str>, kind: &str, body: &str) -> bool {
    if thread_id.is_none() {
        return true;
    }
    let permission = if matches!(kind, "agent.tool_use" | "agent.mcp_tool_use") {
        serde_json::from_str::<Value>(body).ok().and_then(|b| {
            b.get("evaluated_permission")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
    } else {
        None
    };
    on_session_stream(thread_id, kind, permission.as_deref())
}

/// What the session allows that affects validation.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendContext {
    /// `user.tool_result` is only valid on `self_hosted` environments.
    pub self_hosted: bool,
}

/// Validates the body of `POST /v1/sessions/{id}/events`. All-or-nothing: one bad event
/// rejects the request and nothing is appended.
pub fn validate_send(events: &[Value], ctx: SendContext) -> Result<Vec<NewEvent>, Error> {
    if events.is_empty() {
        return Err(Error::invalid("events: at least one event is required"));
    }
    if events.len() > MAX_EVENTS_PER_REQUEST {
        return Err(Error::invalid(format!(
            "events: at most {MAX_EVENTS_PER_REQUEST} events per request"
        )));
    }
    let mut out = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let path = format!("events[{i}]");
        let kind = event_type(e, &path)?;
        if kind == "system.message" {
            if i + 1 != events.len() {
                return Err(Error::invalid(format!(
                    "{path}: a system.message must be the last event of the request"
                )));
            }
            let prev = i
                .checked_sub(1)
                .and_then(|p| events[p].get("type"))
                .and_then(Value::as_str);
            if !matches!(
                prev,
                Some("user.message" | "user.tool_result" | "user.custom_tool_result")
            ) {
                return Err(Error::invalid(format!(
                    "{path}: a system.message must directly follow the user.message, user.tool_result or \
                     user.custom_tool_result it accompanies"
                )));
            }
        }
        if kind == "user.tool_result" && !ctx.self_hosted {
            return Err(Error::invalid(format!(
                "{path}: user.tool_result is only valid on sessions in a self_hosted environment"
            )));
        }
        out.push(validate_one(e, kind, &path)?);
    }
    Ok(out)
}

/// Validates `initial_events` of session create: only `user.message` and `user.define_outcome`,
/// at most 50, at most one outcome.
pub fn validate_initial_events(events: &[Value]) -> Result<Vec<NewEvent>, Error> {
    if events.len() > MAX_INITIAL_EVENTS {
        return Err(Error::invalid(format!(
            "initial_events: at most {MAX_INITIAL_EVENTS} events are allowed"
        )));
    }
    let mut out = Vec::with_capacity(events.len());
    let mut outcomes = 0;
    for (i, e) in events.iter().enumerate() {
        let path = format!("initial_events[{i}]");
        let kind = event_type(e, &path)?;
        match kind {
            "user.message" => {}
            "user.define_outcome" => {
                outcomes += 1;
                if outcomes > 1 {
                    return Err(Error::invalid(format!(
                        "{path}: at most one user.define_outcome is allowed"
                    )));
                }
            }
            other => {
                return Err(Error::invalid(format!(
                    "{path}.type: `{other}` is not allowed in initial_events (only user.message and user.define_outcome)"
                )));
            }
        }
        out.push(validate_one(e, kind, &path)?);
    }
    Ok(out)
}

/// `session.updated` carrying the changed fields.
pub fn session_updated(changes: Map<String, Value>) -> NewEvent {
    NewEvent::new("session.updated", changes)
}

/// `session.deleted` (published to open streams, never stored: the session is gone).
pub fn session_deleted() -> NewEvent {
    NewEvent::new("session.deleted", Map::new())
}

fn event_type<'a>(e: &'a Value, path: &str) -> Result<&'a str, Error> {
    if !e.is_object() {
        return Err(Error::invalid(format!("{path}: must be an object")));
    }
    e.get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid(format!("{path}.type: required string")))
}

fn validate_one(e: &Value, kind: &str, path: &str) -> Result<NewEvent, Error> {
    let mut f = Map::new();
    match kind {
        "user.message" => {
            let content = array(e, "content", path)?;
            if content.is_empty() {
                return Err(Error::invalid(format!(
                    "{path}.content: at least one block is required"
                )));
            }
            let blocks = content
                .iter()
                .enumerate()
                .map(|(j, b)| {
                    content_block(b, &format!("{path}.content[{j}]"), BlockSet::UserMessage)
                })
                .collect::<Result<Vec<_>, _>>()?;
            f.insert("content".into(), Value::Array(blocks));
        }
        "user.interrupt" => {
            f.insert(
                "session_thread_id".into(),
                opt_string(e, "session_thread_id", path)?,
            );
        }
        "user.tool_confirmation" => {
            f.insert(
                "tool_use_id".into(),
                Value::String(string(e, "tool_use_id", path)?),
            );
            let result = string(e, "result", path)?;
            if result != "allow" && result != "deny" {
                return Err(Error::invalid(format!(
                    "{path}.result: must be `allow` or `deny`"
                )));
            }
            let deny = opt_string(e, "deny_message", path)?;
            if !deny.is_null() && result != "deny" {
                return Err(Error::invalid(format!(
                    "{path}.deny_message: only allowed when result is `deny`"
                )));
            }
            f.insert("result".into(), Value::String(result));
            f.insert("deny_message".into(), deny);
            f.insert("session_thread_id".into(), Value::Null);
        }
        "user.custom_tool_result" | "user.tool_result" => {
            let id_key = if kind == "user.custom_tool_result" {
                "custom_tool_use_id"
            } else {
                "tool_use_id"
            };
            f.insert(id_key.into(), Value::String(string(e, id_key, path)?));
            let content = match e.get("content") {
                None | Some(Value::Null) => Value::Null,
                Some(Value::Array(items)) => Value::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(j, b)| {
                            content_block(b, &format!("{path}.content[{j}]"), BlockSet::ToolResult)
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                Some(_) => return Err(Error::invalid(format!("{path}.content: must be an array"))),
            };
            f.insert("content".into(), content);
            f.insert("is_error".into(), opt_bool(e, "is_error", path)?);
            f.insert("session_thread_id".into(), Value::Null);
        }
        "user.define_outcome" => {
            let description = string(e, "description", path)?;
            if description.trim().is_empty() {
                return Err(Error::invalid(format!(
                    "{path}.description: must be non-empty"
                )));
            }
            let rubric = rubric(e.get("rubric"), &format!("{path}.rubric"))?;
            let max_iterations = match e.get("max_iterations") {
                None | Some(Value::Null) => 3,
                Some(v) => match v.as_i64() {
                    Some(n) if (1..=20).contains(&n) => n,
                    _ => {
                        return Err(Error::invalid(format!(
                            "{path}.max_iterations: must be an integer from 1 to 20"
                        )));
                    }
                },
            };
            f.insert("description".into(), Value::String(description));
            f.insert("rubric".into(), rubric);
            f.insert("max_iterations".into(), json!(max_iterations));
            f.insert(
                "outcome_id".into(),
                Value::String(ids::new_id(ids::OUTCOME)),
            );
        }
        "system.message" => {
            let content = array(e, "content", path)?;
            if content.is_empty() || content.len() > MAX_SYSTEM_BLOCKS {
                return Err(Error::invalid(format!(
                    "{path}.content: 1 to {MAX_SYSTEM_BLOCKS} text blocks"
                )));
            }
            let blocks = content
                .iter()
                .enumerate()
                .map(|(j, b)| {
                    let p = format!("{path}.content[{j}]");
                    match b.get("type").and_then(Value::as_str) {
                        Some("text") => Ok(json!({"type": "text", "text": string(b, "text", &p)?})),
                        _ => Err(Error::invalid(format!(
                            "{p}.type: system.message content is text only"
                        ))),
                    }
                })
                .collect::<Result<Vec<_>, Error>>()?;
            f.insert("content".into(), Value::Array(blocks));
        }
        other => {
            return Err(Error::invalid(format!(
                "{path}.type: `{other}` cannot be sent; sendable types are user.message, user.interrupt, \
                 user.tool_confirmation, user.custom_tool_result, user.tool_result, user.define_outcome and \
                 system.message"
            )));
        }
    }
    Ok(NewEvent::new(kind, f))
}

#[derive(Clone, Copy, PartialEq)]
enum BlockSet {
    UserMessage,
    ToolResult,
}

fn content_block(b: &Value, path: &str, set: BlockSet) -> Result<Value, Error> {
    let kind = event_type(b, path)?;
    match kind {
        "text" => Ok(json!({"type": "text", "text": string(b, "text", path)?})),
        "image" => Ok(
            json!({"type": "image", "source": source(b.get("source"), &format!("{path}.source"), false)?}),
        ),
        "document" => Ok(json!({
            "type": "document",
            "source": source(b.get("source"), &format!("{path}.source"), true)?,
            "context": opt_string(b, "context", path)?,
            "title": opt_string(b, "title", path)?,
        })),
        "redacted" if set == BlockSet::UserMessage => Err(Error::invalid(format!(
            "{path}.type: clients may not send `redacted` blocks"
        ))),
        "search_result" if set == BlockSet::ToolResult => {
            let citations = b
                .get("citations")
                .and_then(|c| c.get("enabled"))
                .and_then(Value::as_bool)
                .ok_or_else(|| {
                    Error::invalid(format!("{path}.citations.enabled: required boolean"))
                })?;
            let content = array(b, "content", path)?
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    let p = format!("{path}.content[{j}]");
                    match c.get("type").and_then(Value::as_str) {
                        Some("text") => Ok(json!({"type": "text", "text": string(c, "text", &p)?})),
                        _ => Err(Error::invalid(format!("{p}.type: must be `text`"))),
                    }
                })
                .collect::<Result<Vec<_>, Error>>()?;
            Ok(json!({
                "type": "search_result",
                "citations": {"enabled": citations},
                "content": content,
                "source": string(b, "source", path)?,
                "title": string(b, "title", path)?,
            }))
        }
        other => Err(Error::invalid(format!(
            "{path}.type: unknown content block type `{other}`"
        ))),
    }
}

fn source(s: Option<&Value>, path: &str, document: bool) -> Result<Value, Error> {
    let s = s
        .filter(|v| v.is_object())
        .ok_or_else(|| Error::invalid(format!("{path}: required object")))?;
    match s.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let data = string(s, "data", path)?;
            if data.is_empty() {
                return Err(Error::invalid(format!(
                    "{path}.data: must be non-empty base64"
                )));
            }
            Ok(
                json!({"type": "base64", "data": data, "media_type": string(s, "media_type", path)?}),
            )
        }
        Some("url") => {
            let url = string(s, "url", path)?;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(Error::invalid(format!(
                    "{path}.url: must be an http(s) URL"
                )));
            }
            Ok(json!({"type": "url", "url": url}))
        }
        Some("file") => Ok(json!({"type": "file", "file_id": string(s, "file_id", path)?})),
        Some("text") if document => {
            let media = s
                .get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("text/plain");
            if media != "text/plain" {
                return Err(Error::invalid(format!(
                    "{path}.media_type: must be `text/plain`"
                )));
            }
            Ok(
                json!({"type": "text", "data": string(s, "data", path)?, "media_type": "text/plain"}),
            )
        }
        Some(other) => Err(Error::invalid(format!(
            "{path}.type: unknown source type `{other}`"
        ))),
        None => Err(Error::invalid(format!("{path}.type: required string"))),
    }
}

fn rubric(r: Option<&Value>, path: &str) -> Result<Value, Error> {
    let r = r
        .filter(|v| v.is_object())
        .ok_or_else(|| Error::invalid(format!("{path}: required object")))?;
    match r.get("type").and_then(Value::as_str) {
        Some("text") => {
            let content = string(r, "content", path)?;
            if content.chars().count() > MAX_RUBRIC_CHARS {
                return Err(Error::invalid(format!(
                    "{path}.content: at most {MAX_RUBRIC_CHARS} characters"
                )));
            }
            Ok(json!({"type": "text", "content": content}))
        }
        Some("file") => Ok(json!({"type": "file", "file_id": string(r, "file_id", path)?})),
        _ => Err(Error::invalid(format!(
            "{path}.type: must be `text` or `file`"
        ))),
    }
}

fn string(v: &Value, key: &str, path: &str) -> Result<String, Error> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::invalid(format!("{path}.{key}: required string")))
}

fn opt_string(v: &Value, key: &str, path: &str) -> Result<Value, Error> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(Value::String(s)) => Ok(Value::String(s.clone())),
        Some(_) => Err(Error::invalid(format!(
            "{path}.{key}: must be a string or null"
        ))),
    }
}

fn opt_bool(v: &Value, key: &str, path: &str) -> Result<Value, Error> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(Value::Bool(b)) => Ok(Value::Bool(*b)),
        Some(_) => Err(Error::invalid(format!(
            "{path}.{key}: must be a boolean or null"
        ))),
    }
}

fn array<'a>(v: &'a Value, key: &str, path: &str) -> Result<&'a Vec<Value>, Error> {
    v.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid(format!("{path}.{key}: required array")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str) -> Value {
        json!({"type": "user.message", "content": [{"type": "text", "text": text}]})
    }

    #[test]
    fn user_message_is_normalised() {
        let out = validate_send(&[msg("hi")], SendContext::default()).unwrap();
        assert_eq!(out[0].kind, "user.message");
        assert_eq!(out[0].body["content"][0]["text"], "hi");
        assert!(out[0].body["id"].as_str().unwrap().starts_with("sevt_"));
        assert!(out[0].body["processed_at"].is_string());
    }

    #[test]
    fn system_message_placement() {
        let sys =
            json!({"type": "system.message", "content": [{"type": "text", "text": "be brief"}]});
        assert!(validate_send(&[msg("a"), sys.clone()], SendContext::default()).is_ok());
        assert!(validate_send(&[sys.clone(), msg("a")], SendContext::default()).is_err());
        assert!(
            validate_send(
                &[json!({"type": "user.interrupt"}), sys],
                SendContext::default()
            )
            .is_err()
        );
    }

    #[test]
    fn rejections() {
        let ctx = SendContext::default();
        assert!(validate_send(&[], ctx).is_err());
        assert!(validate_send(&[json!({"type": "agent.message"})], ctx).is_err());
        assert!(validate_send(&[json!({"type": "user.message", "content": []})], ctx).is_err());
        assert!(
            validate_send(
                &[json!({"type": "user.message", "content": [{"type": "redacted"}]})],
                ctx
            )
            .is_err()
        );
        assert!(validate_send(&[json!("x")], ctx).is_err());
        let deny_on_allow = json!({"type": "user.tool_confirmation", "tool_use_id": "sevt_1", "result": "allow", "deny_message": "no"});
        assert!(validate_send(&[deny_on_allow], ctx).is_err());
        let tool_result = json!({"type": "user.tool_result", "tool_use_id": "sevt_1"});
        assert!(validate_send(std::slice::from_ref(&tool_result), ctx).is_err());
        assert!(validate_send(&[tool_result], SendContext { self_hosted: true }).is_ok());
    }

    #[test]
    fn initial_events_rules() {
        let outcome = json!({"type": "user.define_outcome", "description": "d", "rubric": {"type": "text", "content": "r"}});
        let out = validate_initial_events(&[msg("a"), outcome.clone()]).unwrap();
        assert!(
            out[1].body["outcome_id"]
                .as_str()
                .unwrap()
                .starts_with("outc_")
        );
        assert_eq!(out[1].body["max_iterations"], 3);
        assert!(validate_initial_events(&[outcome.clone(), outcome]).is_err());
        assert!(validate_initial_events(&[json!({"type": "user.interrupt"})]).is_err());
    }
}
