//! A fake OpenAI-compatible chat-completions API: `POST /v1/chat/completions`, answering from a
//! script as `chat.completion.chunk` events ending in `data: [DONE]`, or as one
//! `chat.completion` object when the request does not stream.
//!
//! Usage is deterministic (a token is four characters of the request's JSON); `usage` is sent
//! as a final chunk only when the request asks for it with `stream_options.include_usage`, as
//! the real service does. Thinking blocks stream as `reasoning_content`, the field most
//! compatible servers use.

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
    FakeBlock, FakeModelServer, FakeUsage, Plan, Resolved, Shared, chunks, json_response,
    output_chars, raw_response, resolve, sse_response, tokens,
};

pub use crate::fake_model::{Gate, RecordedRequest, Reply, StreamCounts};

const TEXT_CHUNK: usize = 12;
const JSON_CHUNK: usize = 16;
/// A fixed `created` timestamp keeps frames byte-for-byte reproducible.
const CREATED: u64 = 1_767_225_600;

pub struct FakeOpenAi {
    server: FakeModelServer,
}

impl Deref for FakeOpenAi {
    type Target = FakeModelServer;

    fn deref(&self) -> &FakeModelServer {
        &self.server
    }
}

impl FakeOpenAi {
    /// Starts on `127.0.0.1:<random port>`; the provider's base URL is [`FakeOpenAi::api_base`].
    pub async fn start() -> FakeOpenAi {
        let server = FakeModelServer::start(|shared| {
            Router::new()
                .route("/v1/chat/completions", post(handle))
                .with_state(shared)
        })
        .await;
        FakeOpenAi { server }
    }

    /// `base_url` + `/v1`, the form OpenAI clients take as their base.
    pub fn api_base(&self) -> String {
        format!("{}/v1", self.server.base_url)
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seq = shared.next_seq();
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            shared.record(uri.path(), &headers, Value::Null);
            return error_response(
                400,
                "invalid_request_error",
                &format!("We could not parse the JSON body of your request: {e}"),
                None,
            );
        }
    };
    shared.record(uri.path(), &headers, req.clone());
    if shared.strict()
        && let Err(msg) = validate(&req)
    {
        return error_response(400, "invalid_request_error", &msg, None);
    }
    let Some(reply) = shared.next_reply(&req) else {
        return error_response(
            400,
            "invalid_request_error",
            "fake-openai: no scripted reply left for this request (push one, or set a default)",
            None,
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
        .unwrap_or("gpt-fake")
        .to_string();
    let usage = plan
        .usage
        .unwrap_or_else(|| compute_usage(&req, &plan.blocks));
    let answer = Answer::new(seq, model, &plan, usage);
    if req.get("stream").and_then(Value::as_bool) != Some(true) {
        return json_response(200, &answer.completion_json(), &[]);
    }
    let include_usage = req
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true);
    let frames = answer.frames(&plan, include_usage);
    sse_response(&shared, frames, &plan, &[])
}

fn default_message(error_type: &str) -> &'static str {
    match error_type {
        "rate_limit_exceeded" | "rate_limit_error" | "requests" | "tokens" => {
            "Rate limit reached for requests"
        }
        "invalid_api_key" | "authentication_error" => "Incorrect API key provided",
        "insufficient_quota" => {
            "You exceeded your current quota, please check your plan and billing details."
        }
        "invalid_request_error" => "Invalid request",
        "overloaded_error" => "The server is overloaded",
        _ => "The server had an error while processing your request.",
    }
}

fn error_response(
    status: u16,
    error_type: &str,
    message: &str,
    retry_after: Option<u64>,
) -> Response {
    let body = json!({"error": {"message": message, "type": error_type, "param": null, "code": error_type}});
    let headers: Vec<(&'static str, String)> = retry_after
        .map(|s| ("retry-after", s.to_string()))
        .into_iter()
        .collect();
    json_response(status, &body, &headers)
}

fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "tool_use" => "tool_calls",
        "max_tokens" => "length",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

struct Answer {
    id: String,
    model: String,
    reasoning: String,
    text: String,
    calls: Vec<(String, String, Value)>,
    finish_reason: &'static str,
    usage: FakeUsage,
}

impl Answer {
    fn new(seq: u64, model: String, plan: &Plan, usage: FakeUsage) -> Self {
        let mut a = Answer {
            id: format!("chatcmpl-fake{seq:06}"),
            model,
            reasoning: String::new(),
            text: String::new(),
            calls: Vec::new(),
            finish_reason: finish_reason(&plan.stop_reason),
            usage,
        };
        for (i, b) in plan.blocks.iter().enumerate() {
            match b {
                FakeBlock::Text(t) => a.text.push_str(t),
                FakeBlock::Thinking(t) => a.reasoning.push_str(t),
                FakeBlock::RedactedThinking(_) => {}
                FakeBlock::ToolUse { name, input } => a.calls.push((
                    format!("call_fake{seq:04}{i:02}"),
                    name.clone(),
                    input.clone(),
                )),
            }
        }
        a
    }

    fn usage_json(&self) -> Value {
        let prompt = self.usage.input_tokens
            + self.usage.cache_read_input_tokens
            + self.usage.cache_creation_input_tokens;
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": self.usage.output_tokens,
            "total_tokens": prompt + self.usage.output_tokens,
            "prompt_tokens_details": {"cached_tokens": self.usage.cache_read_input_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        })
    }

    fn completion_json(&self) -> Value {
        let mut message = json!({"role": "assistant", "content": if self.text.is_empty() { Value::Null } else { json!(self.text) }, "refusal": null});
        if !self.calls.is_empty() {
            message["tool_calls"] = self
                .calls
                .iter()
                .map(|(id, name, input)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": input.to_string()}}))
                .collect();
        }
        json!({
            "id": self.id, "object": "chat.completion", "created": CREATED, "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": self.finish_reason}],
            "usage": self.usage_json(),
        })
    }

    fn chunk(&self, delta: Value, finish: Option<&str>, include_usage: bool) -> String {
        let mut c = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": CREATED, "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        data(&c)
    }

    fn frames(&self, plan: &Plan, include_usage: bool) -> Vec<String> {
        let mut f = vec![self.chunk(
            json!({"role": "assistant", "content": "", "refusal": null}),
            None,
            include_usage,
        )];
        for c in chunks(&self.reasoning, TEXT_CHUNK) {
            f.push(self.chunk(json!({"reasoning_content": c}), None, include_usage));
        }
        for c in chunks(&self.text, TEXT_CHUNK) {
            f.push(self.chunk(json!({"content": c}), None, include_usage));
        }
        for (k, (id, name, input)) in self.calls.iter().enumerate() {
            f.push(self.chunk(
                json!({"tool_calls": [{"index": k, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                None,
                include_usage,
            ));
            for c in chunks(&input.to_string(), JSON_CHUNK) {
                f.push(self.chunk(
                    json!({"tool_calls": [{"index": k, "function": {"arguments": c}}]}),
                    None,
                    include_usage,
                ));
            }
        }
        f.push(self.chunk(json!({}), Some(self.finish_reason), include_usage));
        if include_usage {
            f.push(data(&json!({
                "id": self.id, "object": "chat.completion.chunk", "created": CREATED, "model": self.model,
                "system_fingerprint": "fp_fake", "choices": [], "usage": self.usage_json(),
            })));
        }
        f.push("data: [DONE]\n\n".to_string());
        if let Some((after, error_type)) = &plan.error_after {
            f.truncate(*after);
            f.push(data(&json!({"error": {"message": default_message(error_type), "type": error_type, "param": null, "code": error_type}})));
        }
        f
    }
}

fn data(v: &Value) -> String {
    format!("data: {v}\n\n")
}

fn compute_usage(req: &Value, output: &[FakeBlock]) -> FakeUsage {
    let chars = req
        .get("messages")
        .map(|m| m.to_string().chars().count())
        .unwrap_or(0)
        + req
            .get("tools")
            .map(|t| t.to_string().chars().count())
            .unwrap_or(0);
    FakeUsage {
        input_tokens: tokens(chars),
        output_tokens: tokens(output_chars(output)).max(1),
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
    }
}

/// The real service's checks that a harness could trip over.
fn validate(req: &Value) -> Result<(), String> {
    if req
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err("you must provide a model parameter".into());
    }
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("Missing required parameter: 'messages'.")?;
    if messages.is_empty() {
        return Err("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.".into());
    }
    let mut pending: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        match role {
            "tool" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !pending.iter().any(|p| p == id) {
                    return Err(format!(
                        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'. (messages[{i}])"
                    ));
                }
                pending.retain(|p| p != id);
                if !m
                    .get("content")
                    .is_some_and(|c| c.is_string() || c.is_array())
                {
                    return Err(format!(
                        "Missing required parameter: 'messages[{i}].content'."
                    ));
                }
            }
            "system" | "developer" | "user" | "assistant" => {
                if !pending.is_empty() {
                    return Err(format!(
                        "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
                        pending.join(", ")
                    ));
                }
                if role == "assistant" {
                    for tc in m
                        .get("tool_calls")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let args = tc.pointer("/function/arguments").and_then(Value::as_str);
                        if args.is_none() {
                            return Err(format!(
                                "Missing required parameter: 'messages[{i}].tool_calls[].function.arguments'."
                            ));
                        }
                        pending.push(
                            tc.get("id")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                        );
                    }
                } else if m.get("content").is_none() {
                    return Err(format!(
                        "Missing required parameter: 'messages[{i}].content'."
                    ));
                }
            }
            other => {
                return Err(format!(
                    "Invalid value: '{other}'. Supported values are: 'system', 'assistant', 'user', 'tool', 'developer'."
                ));
            }
        }
    }
    if !pending.is_empty() {
        return Err(format!(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
            pending.join(", ")
        ));
    }
    for (i, t) in req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if t["type"] != "function" || !t.pointer("/function/name").is_some_and(Value::is_string) {
            return Err(format!(
                "Missing required parameter: 'tools[{i}].function.name'."
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_pairs_tool_calls_and_results() {
        let ok = json!({"model": "g", "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "r"},
            {"role": "user", "content": "next"},
        ]});
        assert_eq!(validate(&ok), Ok(()));
        let mut orphan = ok.clone();
        orphan["messages"][2]["tool_call_id"] = json!("c2");
        assert!(validate(&orphan).unwrap_err().contains("role 'tool'"));
        let mut unanswered = ok.clone();
        unanswered["messages"].as_array_mut().unwrap().remove(2);
        assert!(validate(&unanswered).unwrap_err().contains("c1"));
    }

    #[test]
    fn frames_end_with_usage_and_done() {
        let plan = Plan {
            blocks: vec![FakeBlock::Text("hello".into())],
            stop_reason: "end_turn".into(),
            ..Default::default()
        };
        let a = Answer::new(1, "g".into(), &plan, FakeUsage::default());
        let f = a.frames(&plan, true);
        assert_eq!(f.last().map(String::as_str), Some("data: [DONE]\n\n"));
        assert!(f[f.len() - 2].contains("\"choices\":[]"));
        assert!(f[f.len() - 3].contains("\"finish_reason\":\"stop\""));
        let f = a.frames(&plan, false);
        assert!(!f.iter().any(|x| x.contains("usage")));
    }
}
