//! A fake Anthropic Messages API: `POST /v1/messages`, answering from a script in the exact
//! wire format of the real service (`message_start` … `message_stop`, error bodies, in-stream
//! `error` events).
//!
//! It checks requests the way the real API does where a harness bug would show (a `tool_use`
//! without its `tool_result` in the next message, more than four cache breakpoints, empty text
//! blocks, unsigned thinking, …) and answers those with the real 400, unless
//! `set_strict(false)`.
//!
//! Usage is deterministic: a token is four characters of the request's JSON. Prompt caching is
//! modelled: a `cache_control` breakpoint writes the prefix up to it (tools, system, messages)
//! to the cache (`cache_creation_input_tokens`); a later request with the same prefix reads it
//! (`cache_read_input_tokens`); `input_tokens` counts what follows the last breakpoint. Unlike
//! the real service there is no minimum cacheable length and no expiry.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

use crate::fake_model::{
    FakeBlock, FakeModelServer, FakeUsage, Plan, Resolved, Shared, chunks, json_response, lock,
    output_chars, raw_response, resolve, signature, sse_response, tokens,
};

pub use crate::fake_model::{Gate, RecordedRequest, Reply, StreamCounts};

/// Characters per text/thinking delta.
const TEXT_CHUNK: usize = 12;
/// Characters per `input_json_delta`.
const JSON_CHUNK: usize = 16;

pub struct FakeAnthropic {
    server: FakeModelServer,
}

impl Deref for FakeAnthropic {
    type Target = FakeModelServer;

    fn deref(&self) -> &FakeModelServer {
        &self.server
    }
}

impl FakeAnthropic {
    /// Starts on `127.0.0.1:<random port>`. Point `ANTHROPIC_BASE_URL` (or
    /// `AnthropicConfig::base_url`) at `base_url`.
    pub async fn start() -> FakeAnthropic {
        let server = FakeModelServer::start(|shared| {
            Router::new()
                .route("/v1/messages", post(handle))
                .with_state(shared)
        })
        .await;
        FakeAnthropic { server }
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seq = shared.next_seq();
    let request_id = format!("req_fake_{seq}");
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            shared.record(uri.path(), &headers, Value::Null);
            return error_response(
                400,
                "invalid_request_error",
                &format!("There was an error parsing the body: {e}"),
                None,
                &request_id,
            );
        }
    };
    shared.record(uri.path(), &headers, req.clone());
    if shared.strict()
        && let Err(msg) = validate(&headers, &req)
    {
        return error_response(400, "invalid_request_error", &msg, None, &request_id);
    }
    let Some(reply) = shared.next_reply(&req) else {
        return error_response(
            400,
            "invalid_request_error",
            "fake-anthropic: no scripted reply left for this request (push one, or set a default)",
            None,
            &request_id,
        );
    };
    let plan = match resolve(reply) {
        Resolved::Stream(plan) => plan,
        Resolved::Error {
            status,
            error_type,
            retry_after,
        } => {
            return error_response(
                status,
                &error_type,
                default_message(&error_type),
                retry_after,
                &request_id,
            );
        }
        Resolved::Raw {
            status,
            content_type,
            body,
        } => return raw_response(status, &content_type, body),
    };
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("claude-fake")
        .to_string();
    let usage = plan
        .usage
        .unwrap_or_else(|| compute_usage(&shared, &req, &plan.blocks));
    let answer = Answer::new(seq, model, &plan, usage);
    let extra = [("request-id", request_id.clone())];
    if req.get("stream").and_then(Value::as_bool) != Some(true) {
        return json_response(200, &answer.message_json(), &extra);
    }
    sse_response(&shared, answer.frames(&plan), &plan, &extra)
}

fn default_message(error_type: &str) -> &'static str {
    match error_type {
        "overloaded_error" => "Overloaded",
        "rate_limit_error" => "Number of request tokens has exceeded your per-minute rate limit",
        "authentication_error" => "invalid x-api-key",
        "permission_error" => {
            "Your API key does not have permission to use the specified resource."
        }
        "not_found_error" => "Not found",
        "billing_error" => "Your credit balance is too low to access the Anthropic API.",
        "request_too_large" => "Request exceeds the maximum allowed number of bytes.",
        "timeout_error" => "Request timed out",
        "invalid_request_error" => "Invalid request",
        _ => "Internal server error",
    }
}

fn error_response(
    status: u16,
    error_type: &str,
    message: &str,
    retry_after: Option<u64>,
    request_id: &str,
) -> Response {
    let body = json!({
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    });
    let mut headers = vec![("request-id", request_id.to_string())];
    if let Some(s) = retry_after {
        headers.push(("retry-after", s.to_string()));
    }
    json_response(status, &body, &headers)
}

/// A block of the answer with its ids fixed.
enum Out {
    Text(String),
    Thinking {
        thinking: String,
        signature: String,
    },
    Redacted(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

struct Answer {
    id: String,
    model: String,
    blocks: Vec<Out>,
    stop_reason: String,
    usage: FakeUsage,
}

impl Answer {
    fn new(seq: u64, model: String, plan: &Plan, usage: FakeUsage) -> Self {
        let blocks = plan
            .blocks
            .iter()
            .enumerate()
            .map(|(i, b)| match b {
                FakeBlock::Text(t) => Out::Text(t.clone()),
                FakeBlock::Thinking(t) => Out::Thinking {
                    thinking: t.clone(),
                    signature: signature(t),
                },
                FakeBlock::RedactedThinking(d) => Out::Redacted(d.clone()),
                FakeBlock::ToolUse { name, input } => Out::ToolUse {
                    id: format!("toolu_fake{seq:04}{i:02}"),
                    name: name.clone(),
                    input: input.clone(),
                },
            })
            .collect();
        Answer {
            id: format!("msg_fake{seq:06}"),
            model,
            blocks,
            stop_reason: plan.stop_reason.clone(),
            usage,
        }
    }

    fn usage_json(&self, output_tokens: u64) -> Value {
        json!({
            "input_tokens": self.usage.input_tokens,
            "cache_creation_input_tokens": self.usage.cache_creation_input_tokens,
            "cache_read_input_tokens": self.usage.cache_read_input_tokens,
            "output_tokens": output_tokens,
        })
    }

    /// The non-streamed `Message` object.
    fn message_json(&self) -> Value {
        let content: Vec<Value> = self
            .blocks
            .iter()
            .map(|b| match b {
                Out::Text(t) => json!({"type": "text", "text": t}),
                Out::Thinking {
                    thinking,
                    signature,
                } => json!({"type": "thinking", "thinking": thinking, "signature": signature}),
                Out::Redacted(d) => json!({"type": "redacted_thinking", "data": d}),
                Out::ToolUse { id, name, input } => {
                    json!({"type": "tool_use", "id": id, "name": name, "input": input})
                }
            })
            .collect();
        json!({
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": content, "stop_reason": self.stop_reason, "stop_sequence": null,
            "usage": self.usage_json(self.usage.output_tokens),
        })
    }

    /// The SSE events, cut at the plan's in-stream error if any.
    fn frames(&self, plan: &Plan) -> Vec<String> {
        let mut f = Vec::new();
        f.push(frame(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": self.usage_json(1),
            }}),
        ));
        for (index, b) in self.blocks.iter().enumerate() {
            let start = |block: Value| {
                frame(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": index, "content_block": block}),
                )
            };
            let delta = |d: Value| {
                frame(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index, "delta": d}),
                )
            };
            match b {
                Out::Text(t) => {
                    f.push(start(json!({"type": "text", "text": ""})));
                    for c in chunks(t, TEXT_CHUNK) {
                        f.push(delta(json!({"type": "text_delta", "text": c})));
                    }
                }
                Out::Thinking {
                    thinking,
                    signature,
                } => {
                    f.push(start(
                        json!({"type": "thinking", "thinking": "", "signature": ""}),
                    ));
                    for c in chunks(thinking, TEXT_CHUNK) {
                        f.push(delta(json!({"type": "thinking_delta", "thinking": c})));
                    }
                    f.push(delta(
                        json!({"type": "signature_delta", "signature": signature}),
                    ));
                }
                Out::Redacted(d) => f.push(start(json!({"type": "redacted_thinking", "data": d}))),
                Out::ToolUse { id, name, input } => {
                    f.push(start(
                        json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                    ));
                    f.push(delta(
                        json!({"type": "input_json_delta", "partial_json": ""}),
                    ));
                    for c in chunks(&input.to_string(), JSON_CHUNK) {
                        f.push(delta(
                            json!({"type": "input_json_delta", "partial_json": c}),
                        ));
                    }
                }
            }
            if index == 0 {
                // The real service sends one ping after the first block starts.
                f.push(frame("ping", &json!({"type": "ping"})));
            }
            f.push(frame(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
        f.push(frame(
            "message_delta",
            &json!({"type": "message_delta",
                "delta": {"stop_reason": self.stop_reason, "stop_sequence": null},
                "usage": self.usage_json(self.usage.output_tokens)}),
        ));
        f.push(frame("message_stop", &json!({"type": "message_stop"})));
        if let Some((after, error_type)) = &plan.error_after {
            f.truncate(*after);
            f.push(frame(
                "error",
                &json!({"type": "error", "error": {"type": error_type, "message": default_message(error_type)}}),
            ));
        }
        f
    }
}

fn frame(event: &str, data: &Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

/// Token counts for `req` per the module's cache model; records new cache entries.
fn compute_usage(shared: &Shared, req: &Value, output: &[FakeBlock]) -> FakeUsage {
    let mut hasher = DefaultHasher::new();
    req.get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .hash(&mut hasher);
    let mut chars = 0usize;
    let mut breakpoints: Vec<(u64, usize)> = Vec::new();
    let mut visit = |block: &Value| {
        let mut b = block.clone();
        let cached = b
            .as_object_mut()
            .and_then(|o| o.remove("cache_control"))
            .is_some();
        let s = b.to_string();
        s.hash(&mut hasher);
        chars += s.chars().count();
        if cached {
            breakpoints.push((hasher.finish(), chars));
        }
    };
    for t in req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        visit(t);
    }
    match req.get("system") {
        Some(Value::String(s)) => visit(&json!({"type": "text", "text": s})),
        Some(Value::Array(a)) => a.iter().for_each(&mut visit),
        _ => {}
    }
    for m in req
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match m.get("content") {
            Some(Value::String(s)) => visit(&json!({"type": "text", "text": s})),
            Some(Value::Array(blocks)) => {
                for b in blocks {
                    // A breakpoint inside a tool result counts where it sits.
                    if let Some(inner) = b.get("content").and_then(Value::as_array)
                        && inner.iter().any(|i| i.get("cache_control").is_some())
                    {
                        let mut outer = b.clone();
                        if let Some(o) = outer.as_object_mut() {
                            o.remove("content");
                        }
                        visit(&outer);
                        inner.iter().for_each(&mut visit);
                    } else {
                        visit(b);
                    }
                }
            }
            _ => {}
        }
    }
    let total = chars;
    let mut cache = lock(&shared.cache);
    let read = breakpoints
        .iter()
        .rev()
        .find(|(h, _)| cache.contains(h))
        .map(|(_, c)| *c)
        .unwrap_or(0);
    let last = breakpoints.last().map(|(_, c)| *c).unwrap_or(0);
    for (h, _) in &breakpoints {
        cache.insert(*h);
    }
    FakeUsage {
        input_tokens: tokens(total - last.max(read)),
        output_tokens: tokens(output_chars(output)).max(1),
        cache_creation_input_tokens: tokens(last.saturating_sub(read)),
        cache_read_input_tokens: tokens(read),
    }
}

/// The checks of the real API that a harness could trip over; `Err` is the 400 message.
fn validate(headers: &HeaderMap, req: &Value) -> Result<(), String> {
    if headers.get("anthropic-version").is_none() {
        return Err("anthropic-version: header is required".into());
    }
    if headers.get("x-api-key").is_none() && headers.get("authorization").is_none() {
        return Err("x-api-key: header is required".into());
    }
    if req
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err("model: Field required".into());
    }
    let max_tokens = req
        .get("max_tokens")
        .and_then(Value::as_u64)
        .ok_or("max_tokens: Field required")?;
    if max_tokens == 0 {
        return Err("max_tokens: Input should be greater than or equal to 1".into());
    }
    if let Some(t) = req.get("thinking").filter(|t| t["type"] == "enabled") {
        let budget = t
            .get("budget_tokens")
            .and_then(Value::as_u64)
            .ok_or("thinking.enabled.budget_tokens: Field required")?;
        if budget < 1024 {
            return Err(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
                    .into(),
            );
        }
        if budget >= max_tokens {
            return Err("`max_tokens` must be greater than `thinking.budget_tokens`".into());
        }
    }
    let mut cache_controls = 0usize;
    for (i, t) in req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = t.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty()
            || name.len() > 128
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
            ));
        }
        if t.get("input_schema")
            .and_then(|s| s.get("type"))
            .and_then(Value::as_str)
            != Some("object")
        {
            return Err(format!(
                "tools.{i}.custom.input_schema.type: Input should be 'object'"
            ));
        }
        cache_controls += usize::from(t.get("cache_control").is_some());
    }
    if let Some(Value::Array(system)) = req.get("system") {
        for (i, b) in system.iter().enumerate() {
            check_text(b, &format!("system.{i}"))?;
            cache_controls += usize::from(b.get("cache_control").is_some());
        }
    }
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("messages: Field required")?;
    if messages.is_empty() {
        return Err("messages: at least one message is required".into());
    }
    let mut pending_tool_uses: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        if role != "user" && role != "assistant" {
            return Err(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            ));
        }
        if i == 0 && role != "user" {
            return Err("messages: first message must use the \"user\" role".into());
        }
        let blocks: Vec<Value> = match m.get("content") {
            Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
            Some(Value::Array(a)) => a.clone(),
            _ => return Err(format!("messages.{i}.content: Field required")),
        };
        let is_last = i + 1 == messages.len();
        if blocks.is_empty() && !(is_last && role == "assistant") {
            return Err(format!(
                "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
            ));
        }
        let mut results: Vec<String> = Vec::new();
        let mut uses: Vec<String> = Vec::new();
        for (j, b) in blocks.iter().enumerate() {
            let at = format!("messages.{i}.content.{j}");
            cache_controls += usize::from(b.get("cache_control").is_some());
            match b.get("type").and_then(Value::as_str).unwrap_or_default() {
                "text" => check_text(b, &at)?,
                "image" | "document" => {
                    if b.get("source").is_none() {
                        return Err(format!("{at}.source: Field required"));
                    }
                }
                "tool_use" if role == "assistant" => {
                    if !b.get("input").is_some_and(Value::is_object) {
                        return Err(format!(
                            "{at}.tool_use.input: Input should be a valid dictionary"
                        ));
                    }
                    uses.push(
                        b.get("id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                    );
                }
                "tool_result" if role == "user" => {
                    let id = b
                        .get("tool_use_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if !pending_tool_uses.iter().any(|p| p == id) {
                        return Err(format!(
                            "{at}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                        ));
                    }
                    if let Some(Value::Array(inner)) = b.get("content") {
                        for (k, c) in inner.iter().enumerate() {
                            cache_controls += usize::from(c.get("cache_control").is_some());
                            if c["type"] == "text" {
                                check_text(c, &format!("{at}.content.{k}"))?;
                            }
                        }
                    }
                    results.push(id.to_string());
                }
                "thinking" if role == "assistant" => {
                    if b.get("signature")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        return Err(format!("{at}.thinking.signature: Field required"));
                    }
                }
                "redacted_thinking" if role == "assistant" => {}
                other => {
                    return Err(format!(
                        "{at}: block type `{other}` is not allowed in a {role} message"
                    ));
                }
            }
        }
        if !pending_tool_uses.is_empty() {
            let missing: Vec<&str> = pending_tool_uses
                .iter()
                .filter(|p| !results.contains(p))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "messages.{}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                    i - 1,
                    missing.join(", ")
                ));
            }
        }
        pending_tool_uses = uses;
    }
    // A trailing assistant tool_use without results is fine only as a prefill… which the
    // harness never sends; the real API rejects it the same way.
    if !pending_tool_uses.is_empty() {
        return Err(format!(
            "messages.{}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
            messages.len() - 1,
            pending_tool_uses.join(", ")
        ));
    }
    if cache_controls > 4 {
        return Err(format!(
            "A maximum of 4 blocks with cache_control may be provided. Found {cache_controls}."
        ));
    }
    Ok(())
}

fn check_text(b: &Value, at: &str) -> Result<(), String> {
    match b.get("text").and_then(Value::as_str) {
        Some("") => Err(format!("{at}: text content blocks must be non-empty")),
        Some(_) => Ok(()),
        None => Err(format!("{at}.text: Field required")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("anthropic-version", "2023-06-01".parse().unwrap());
        h.insert("x-api-key", "k".parse().unwrap());
        h
    }

    #[test]
    fn validation_catches_harness_mistakes() {
        let ok = json!({"model": "m", "max_tokens": 10, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "r"}]}]},
        ]});
        assert_eq!(validate(&headers(), &ok), Ok(()));
        assert!(validate(&HeaderMap::new(), &ok).is_err());

        let mut missing = ok.clone();
        missing["messages"][2] = json!({"role": "user", "content": "no result"});
        assert!(
            validate(&headers(), &missing)
                .unwrap_err()
                .contains("without `tool_result`")
        );

        let mut unexpected = ok.clone();
        unexpected["messages"][2]["content"][0]["tool_use_id"] = json!("other");
        assert!(
            validate(&headers(), &unexpected)
                .unwrap_err()
                .contains("unexpected `tool_use_id`")
        );

        let mut empty = ok.clone();
        empty["messages"][0] = json!({"role": "user", "content": [{"type": "text", "text": ""}]});
        assert!(
            validate(&headers(), &empty)
                .unwrap_err()
                .contains("non-empty")
        );

        let many = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content":
            (0..5).map(|i| json!({"type": "text", "text": format!("{i}"), "cache_control": {"type": "ephemeral"}})).collect::<Vec<_>>()}]});
        assert!(
            validate(&headers(), &many)
                .unwrap_err()
                .contains("maximum of 4")
        );

        let unsigned = json!({"model": "m", "max_tokens": 10, "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": ""}, {"type": "text", "text": "a"}]},
            {"role": "user", "content": "q2"},
        ]});
        assert!(
            validate(&headers(), &unsigned)
                .unwrap_err()
                .contains("signature")
        );

        let budget = json!({"model": "m", "max_tokens": 1000, "thinking": {"type": "enabled", "budget_tokens": 2000},
            "messages": [{"role": "user", "content": "q"}]});
        assert!(validate(&headers(), &budget).is_err());
    }

    #[test]
    fn cache_model_writes_then_reads() {
        let shared = Shared::new();
        let req = json!({"model": "m", "max_tokens": 10,
            "system": [{"type": "text", "text": "x".repeat(400), "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "y".repeat(40)}]});
        let first = compute_usage(&shared, &req, &[FakeBlock::Text("ok".into())]);
        assert!(first.cache_creation_input_tokens > 100);
        assert_eq!(first.cache_read_input_tokens, 0);
        assert!(first.input_tokens > 10);
        let second = compute_usage(&shared, &req, &[]);
        assert_eq!(second.cache_creation_input_tokens, 0);
        assert_eq!(
            second.cache_read_input_tokens,
            first.cache_creation_input_tokens
        );
        assert_eq!(second.input_tokens, first.input_tokens);
        assert_eq!(second.output_tokens, 1);
    }
}
