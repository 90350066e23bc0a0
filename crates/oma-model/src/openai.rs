//! OpenAI-compatible chat completions, streamed (`POST {base}/chat/completions`).
//!
//! Many servers speak this dialect (OpenAI, vLLM, llama.cpp, Ollama, LiteLLM, OpenRouter, …), so
//! the decoder is lenient where they differ: tool calls without an index or id, reasoning as
//! `reasoning_content` or `reasoning`, a missing `[DONE]`, a body that ignored `stream: true`.
//! What this wire cannot carry is dropped on the way out: cache breakpoints, thinking blocks,
//! the thinking budget and effort.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Map, Value, json};

use crate::error::ModelError;
use crate::event::{BlockKind, StreamEvent};
use crate::http::{self, Decoder, Timeouts};
use crate::types::{Block, Message, ModelRequest, Role, StopReason, Usage};
use crate::{EventStream, ModelProvider};
use oma_sse::SseEvent;

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// Which body field carries the output limit. OpenAI's reasoning models accept only
/// `max_completion_tokens`; many compatible servers know only `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxTokensParam {
    #[default]
    MaxTokens,
    MaxCompletionTokens,
}

#[derive(Clone, Default)]
pub struct OpenAiConfig {
    /// Including the version path, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// `Authorization: Bearer`; empty for local servers without auth.
    pub api_key: String,
    /// Agent model id → the provider's model name; unmapped ids are sent as they are.
    pub model_map: HashMap<String, String>,
    pub timeouts: Timeouts,
    pub max_tokens_param: MaxTokensParam,
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field(
                "api_key",
                &if self.api_key.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("model_map", &self.model_map)
            .field("timeouts", &self.timeouts)
            .field("max_tokens_param", &self.max_tokens_param)
            .finish()
    }
}

impl OpenAiConfig {
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Self {
        OpenAiConfig {
            base_url: base_url.into(),
            api_key: api_key.into(),
            ..Default::default()
        }
    }

    /// From `OPENAI_API_KEY` and `OPENAI_BASE_URL` (default `https://api.openai.com/v1`).
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let nonempty = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        OpenAiConfig::new(
            nonempty("OPENAI_BASE_URL").unwrap_or_else(|| DEFAULT_BASE_URL.to_string()),
            nonempty("OPENAI_API_KEY").unwrap_or_default(),
        )
    }
}

#[derive(Clone)]
pub struct OpenAiProvider {
    http: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    model_map: HashMap<String, String>,
    max_tokens_param: MaxTokensParam,
}

impl fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("url", &self.url.as_str())
            .finish()
    }
}

impl OpenAiProvider {
    pub fn new(cfg: OpenAiConfig) -> Result<Self, ModelError> {
        let url = http::endpoint(&cfg.base_url, "/chat/completions")?;
        let mut headers = HeaderMap::new();
        if !cfg.api_key.is_empty() {
            let mut v =
                HeaderValue::from_str(&format!("Bearer {}", cfg.api_key)).map_err(|_| {
                    ModelError::config("the API key contains characters not allowed in a header")
                })?;
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        Ok(OpenAiProvider {
            http: http::client(cfg.timeouts, &url)?,
            url,
            headers,
            model_map: cfg.model_map,
            max_tokens_param: cfg.max_tokens_param,
        })
    }

    /// The model name sent for an agent's model id.
    pub fn map_model<'a>(&'a self, model: &'a str) -> &'a str {
        self.model_map
            .get(model)
            .map(String::as_str)
            .unwrap_or(model)
    }
}

impl ModelProvider for OpenAiProvider {
    fn name(&self) -> &str {
        "openai"
    }

    fn stream(&self, req: ModelRequest) -> BoxFuture<'static, Result<EventStream, ModelError>> {
        let model = self.map_model(&req.model).to_string();
        let body = request_body(&req, &model, self.max_tokens_param);
        tracing::debug!(model = %model, messages = req.messages.len(), "openai request");
        let builder = self
            .http
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body.to_string());
        http::send(builder, OpenAiDecoder::default()).boxed()
    }
}

/// The chat-completions body for `req`, sent as `model`.
pub fn request_body(req: &ModelRequest, model: &str, max_tokens: MaxTokensParam) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages_json(req)));
    body.insert("stream".into(), json!(true));
    body.insert("stream_options".into(), json!({"include_usage": true}));
    let limit_field = match max_tokens {
        MaxTokensParam::MaxTokens => "max_tokens",
        MaxTokensParam::MaxCompletionTokens => "max_completion_tokens",
    };
    body.insert(limit_field.into(), json!(req.max_tokens));
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.input_schema,
                }})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    Value::Object(body)
}

fn messages_json(req: &ModelRequest) -> Vec<Value> {
    let mut out = Vec::new();
    let system: Vec<&str> = req
        .system
        .iter()
        .map(|s| s.text.as_str())
        .filter(|t| !t.is_empty())
        .collect();
    if !system.is_empty() {
        out.push(json!({"role": "system", "content": system.join("\n\n")}));
    }
    for m in &req.messages {
        match m.role {
            Role::Assistant => out.push(assistant_json(m)),
            Role::User => user_json(m, &mut out),
        }
    }
    out
}

fn assistant_json(m: &Message) -> Value {
    let text = m.text();
    let calls: Vec<Value> = m
        .tool_uses()
        .map(|(id, name, input)| {
            // Arguments travel as a JSON string; input kept as a string (malformed JSON from
            // the model) goes back verbatim.
            let arguments = match input {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
        })
        .collect();
    let mut o = Map::new();
    o.insert("role".into(), json!("assistant"));
    if calls.is_empty() {
        o.insert("content".into(), json!(text));
    } else {
        o.insert(
            "content".into(),
            if text.is_empty() {
                Value::Null
            } else {
                json!(text)
            },
        );
        o.insert("tool_calls".into(), Value::Array(calls));
    }
    Value::Object(o)
}

/// A user message: its tool results become `role: "tool"` messages first (they must directly
/// follow the assistant's `tool_calls`), then the rest as one user message. Images in tool
/// results, which tool messages cannot carry, follow in a user message of their own.
fn user_json(m: &Message, out: &mut Vec<Value>) {
    let mut parts = Vec::new();
    let mut result_images = Vec::new();
    for b in &m.content {
        match b {
            Block::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                let mut text = String::new();
                for c in content {
                    match c {
                        Block::Text { text: t, .. } => {
                            if !text.is_empty() {
                                text.push('\n');
                            }
                            text.push_str(t);
                        }
                        other => {
                            if let Some(p) = part_json(other) {
                                result_images.push(p);
                            }
                        }
                    }
                }
                if *is_error && !text.starts_with("Error") {
                    text = format!("Error: {text}");
                }
                out.push(json!({"role": "tool", "tool_call_id": tool_use_id, "content": text}));
            }
            other => {
                if let Some(p) = part_json(other) {
                    parts.push(p);
                }
            }
        }
    }
    if !result_images.is_empty() {
        let mut content =
            vec![json!({"type": "text", "text": "Attachments from the tool results above:"})];
        content.extend(result_images);
        out.push(json!({"role": "user", "content": content}));
    }
    match parts.as_slice() {
        [] => {}
        // A lone text part as a plain string: the one form every compatible server accepts.
        [p] if p["type"] == "text" => out.push(json!({"role": "user", "content": p["text"]})),
        _ => out.push(json!({"role": "user", "content": parts})),
    }
}

/// A user-side block as a content part; `None` for blocks this wire has no place for.
fn part_json(b: &Block) -> Option<Value> {
    match b {
        Block::Text { text, .. } if !text.is_empty() => Some(json!({"type": "text", "text": text})),
        Block::Image { source } => {
            source_url(source).map(|url| json!({"type": "image_url", "image_url": {"url": url}}))
        }
        Block::Document { source, title, .. } => {
            let kind = source
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match kind {
                "text" => {
                    let data = source
                        .get("data")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let text = match title {
                        Some(t) => format!("{t}\n\n{data}"),
                        None => data.to_string(),
                    };
                    Some(json!({"type": "text", "text": text}))
                }
                "base64" => source_url(source).map(|url| {
                    json!({"type": "file", "file": {
                        "filename": title.clone().unwrap_or_else(|| "document.pdf".to_string()),
                        "file_data": url,
                    }})
                }),
                "url" => source
                    .get("url")
                    .and_then(Value::as_str)
                    .map(|u| json!({"type": "text", "text": format!("[document: {u}]")})),
                _ => None,
            }
        }
        _ => None,
    }
}

/// An Anthropic base64 or URL source as a URL (a `data:` URL for base64).
fn source_url(source: &Value) -> Option<String> {
    match source.get("type").and_then(Value::as_str)? {
        "base64" => {
            let media = source.get("media_type").and_then(Value::as_str)?;
            let data = source.get("data").and_then(Value::as_str)?;
            Some(format!("data:{media};base64,{data}"))
        }
        "url" => source
            .get("url")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(usize),
    Thinking(usize),
}

/// `chat.completion.chunk`s → [`StreamEvent`]s.
#[derive(Debug, Default)]
pub(crate) struct OpenAiDecoder {
    started: bool,
    next_index: usize,
    open: Option<Open>,
    /// Tool-call index on the wire → (our block index, call id). Open until finish.
    tools: HashMap<u64, (usize, String)>,
    /// Our open tool blocks in start order, to stop them in order.
    open_tools: Vec<usize>,
    calls_seen: usize,
    finish: Option<StopReason>,
    usage: Usage,
}

impl OpenAiDecoder {
    fn start(&mut self, chunk: &Value, out: &mut VecDeque<StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push_back(StreamEvent::Started {
            message_id: chunk
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            model: chunk
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            usage: Usage::default(),
        });
    }

    fn close_open(&mut self, out: &mut VecDeque<StreamEvent>) {
        if let Some(Open::Text(i) | Open::Thinking(i)) = self.open.take() {
            out.push_back(StreamEvent::BlockStop { index: i });
        }
    }

    fn close_all(&mut self, out: &mut VecDeque<StreamEvent>) {
        self.close_open(out);
        for index in self.open_tools.drain(..) {
            out.push_back(StreamEvent::BlockStop { index });
        }
        self.tools.clear();
    }

    fn alloc(&mut self) -> usize {
        let i = self.next_index;
        self.next_index += 1;
        i
    }

    fn thinking(&mut self, text: &str, out: &mut VecDeque<StreamEvent>) {
        let index = match self.open {
            Some(Open::Thinking(i)) => i,
            _ => {
                self.close_open(out);
                let i = self.alloc();
                out.push_back(StreamEvent::BlockStart {
                    index: i,
                    kind: BlockKind::Thinking,
                });
                self.open = Some(Open::Thinking(i));
                i
            }
        };
        out.push_back(StreamEvent::ThinkingDelta {
            index,
            text: text.to_string(),
        });
    }

    fn text(&mut self, text: &str, out: &mut VecDeque<StreamEvent>) {
        let index = match self.open {
            Some(Open::Text(i)) => i,
            _ => {
                self.close_open(out);
                let i = self.alloc();
                out.push_back(StreamEvent::BlockStart {
                    index: i,
                    kind: BlockKind::Text,
                });
                self.open = Some(Open::Text(i));
                i
            }
        };
        out.push_back(StreamEvent::TextDelta {
            index,
            text: text.to_string(),
        });
    }

    fn tool_call(&mut self, pos: usize, tc: &Value, out: &mut VecDeque<StreamEvent>) {
        let wire_index = tc
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(pos as u64);
        let id = tc
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let function = tc.get("function");
        let name = function
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let args = function
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        // A new call: an index not seen yet, or (servers that number every call 0) a new id.
        let known = self.tools.get(&wire_index);
        let is_new = match (known, id) {
            (None, _) => true,
            (Some((_, known_id)), Some(id)) => known_id != id,
            (Some(_), None) => false,
        };
        let index = if is_new {
            self.close_open(out);
            self.calls_seen += 1;
            let id = id
                .map(str::to_string)
                .unwrap_or_else(|| format!("call_{}", self.calls_seen));
            let index = self.alloc();
            out.push_back(StreamEvent::BlockStart {
                index,
                kind: BlockKind::ToolUse {
                    id: id.clone(),
                    name: name.to_string(),
                },
            });
            self.tools.insert(wire_index, (index, id));
            self.open_tools.push(index);
            index
        } else {
            match self.tools.get(&wire_index) {
                Some((index, _)) => *index,
                None => return,
            }
        };
        if !args.is_empty() {
            out.push_back(StreamEvent::ToolInputDelta {
                index,
                partial_json: args.to_string(),
            });
        }
    }

    fn usage(&mut self, u: &Value) {
        let get = |k: &str| u.get(k).and_then(Value::as_u64);
        let prompt = get("prompt_tokens").unwrap_or(0);
        let cached = u
            .get("prompt_tokens_details")
            .and_then(|d| d.get("cached_tokens"))
            .and_then(Value::as_u64)
            .or_else(|| get("prompt_cache_hit_tokens"))
            .unwrap_or(0)
            .min(prompt);
        self.usage = Usage {
            input_tokens: prompt - cached,
            output_tokens: get("completion_tokens").unwrap_or(0),
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: cached,
        };
    }

    fn finished(&mut self, out: &mut VecDeque<StreamEvent>) {
        self.close_all(out);
        let stop_reason = self.finish.take().unwrap_or(if self.calls_seen > 0 {
            StopReason::ToolUse
        } else {
            StopReason::EndTurn
        });
        out.push_back(StreamEvent::Finished {
            stop_reason,
            usage: self.usage,
        });
    }

    /// One completion object (streamed chunk or whole response): `delta_key` is `delta` for
    /// chunks and `message` for a whole response.
    fn on_completion(
        &mut self,
        chunk: &Value,
        delta_key: &str,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<(), ModelError> {
        if let Some(err) = chunk.get("error") {
            let t = err
                .get("type")
                .or_else(|| err.get("code"))
                .and_then(Value::as_str)
                .unwrap_or("api_error");
            let m = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("error in the stream");
            return Err(ModelError::from_stream_error(t, m));
        }
        self.start(chunk, out);
        if let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
            })
        {
            if let Some(delta) = choice.get(delta_key) {
                for key in ["reasoning_content", "reasoning"] {
                    if let Some(r) = delta
                        .get(key)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                    {
                        self.thinking(r, out);
                        break;
                    }
                }
                if let Some(t) = delta
                    .get("content")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                {
                    self.text(t, out);
                }
                if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                    for (pos, tc) in calls.iter().enumerate() {
                        self.tool_call(pos, tc, out);
                    }
                }
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.close_all(out);
                self.finish = Some(StopReason::from_openai(reason));
            }
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage(u);
        }
        Ok(())
    }
}

impl Decoder for OpenAiDecoder {
    fn on_event(
        &mut self,
        ev: SseEvent,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<bool, ModelError> {
        let data = ev.data.trim();
        if data == "[DONE]" {
            if !self.started {
                return Err(ModelError::incomplete(
                    "the model stream ended before any completion chunk",
                ));
            }
            self.finished(out);
            return Ok(true);
        }
        let chunk: Value = serde_json::from_str(data).map_err(|e| {
            ModelError::protocol(format!("stream chunk is not JSON ({e}): {data:.200}"))
        })?;
        self.on_completion(&chunk, "delta", out)?;
        Ok(false)
    }

    fn on_eof(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), ModelError> {
        // Some servers omit `[DONE]`; a finish_reason already seen means the answer is whole.
        if self.finish.is_some() {
            self.finished(out);
            Ok(())
        } else {
            Err(ModelError::incomplete(
                "the model stream ended before finish_reason",
            ))
        }
    }

    fn on_full_body(
        &mut self,
        body: &[u8],
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<(), ModelError> {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            ModelError::protocol(format!("response is neither an event stream nor JSON: {e}"))
        })?;
        if v.get("choices").is_none() && v.get("error").is_none() {
            return Err(ModelError::protocol("response has no choices"));
        }
        self.on_completion(&v, "message", out)?;
        self.finished(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;
    use crate::event::Accumulator;
    use crate::http::testing::run;
    use crate::types::{SystemBlock, ToolSpec};

    const RECORDED: &str = concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Héllo \"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"there\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"bash\",\"arguments\":\"\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"command\\\":\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"ls\\\"}\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"read\",\"arguments\":\"{\\\"path\\\":\\\"a\\\"}\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":20,\"total_tokens\":120,\"prompt_tokens_details\":{\"cached_tokens\":64,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n",
        "data: [DONE]\n\n",
    );

    fn expected() -> Vec<StreamEvent> {
        vec![
            StreamEvent::Started {
                message_id: "chatcmpl-1".into(),
                model: "gpt-4o".into(),
                usage: Usage::default(),
            },
            StreamEvent::BlockStart {
                index: 0,
                kind: BlockKind::Text,
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "Héllo ".into(),
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "there".into(),
            },
            StreamEvent::BlockStop { index: 0 },
            StreamEvent::BlockStart {
                index: 1,
                kind: BlockKind::ToolUse {
                    id: "call_a".into(),
                    name: "bash".into(),
                },
            },
            StreamEvent::ToolInputDelta {
                index: 1,
                partial_json: "{\"command\":".into(),
            },
            StreamEvent::ToolInputDelta {
                index: 1,
                partial_json: "\"ls\"}".into(),
            },
            StreamEvent::BlockStart {
                index: 2,
                kind: BlockKind::ToolUse {
                    id: "call_b".into(),
                    name: "read".into(),
                },
            },
            StreamEvent::ToolInputDelta {
                index: 2,
                partial_json: "{\"path\":\"a\"}".into(),
            },
            StreamEvent::BlockStop { index: 1 },
            StreamEvent::BlockStop { index: 2 },
            StreamEvent::Finished {
                stop_reason: StopReason::ToolUse,
                usage: Usage {
                    input_tokens: 36,
                    output_tokens: 20,
                    cache_creation_input_tokens: 0,
                    cache_read_input_tokens: 64,
                },
            },
        ]
    }

    #[test]
    fn decodes_a_recorded_stream_split_anywhere() {
        let src = RECORDED.as_bytes();
        let want = expected();
        let (whole, err) = run(OpenAiDecoder::default(), &[src]);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(whole, want);
        for i in 0..=src.len() {
            let (got, err) = run(OpenAiDecoder::default(), &[&src[..i], &src[i..]]);
            assert!(err.is_none(), "split at {i}: {err:?}");
            assert_eq!(got, want, "split at {i}");
        }
        let mut acc = Accumulator::new();
        for e in &want {
            acc.push(e).unwrap();
        }
        let c = acc.finish().unwrap();
        assert_eq!(c.message.text(), "Héllo there");
        let tools: Vec<_> = c
            .message
            .tool_uses()
            .map(|(id, _, input)| (id.to_string(), input.clone()))
            .collect();
        assert_eq!(
            tools,
            vec![
                ("call_a".to_string(), json!({"command": "ls"})),
                ("call_b".to_string(), json!({"path": "a"}))
            ]
        );
    }

    #[test]
    fn truncation_and_missing_done() {
        let src = RECORDED.as_bytes();
        let finish_at = RECORDED.find("\"finish_reason\":\"tool_calls\"").unwrap();
        let (_, err) = run(OpenAiDecoder::default(), &[&src[..finish_at]]);
        let err = err.unwrap();
        assert_eq!(err.kind(), ErrorClass::Connection);
        assert!(err.retryable());
        // Without [DONE] but after finish_reason and usage: complete.
        let done_at = RECORDED.find("data: [DONE]").unwrap();
        let (events, err) = run(OpenAiDecoder::default(), &[&src[..done_at]]);
        assert!(err.is_none());
        assert_eq!(events, expected());
        let (_, err) = run(OpenAiDecoder::default(), &[b""]);
        assert!(err.unwrap().retryable());
    }

    #[test]
    fn reasoning_then_text() {
        let src = concat!(
            "data: {\"id\":\"c\",\"model\":\"deepseek\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"reasoning_content\":\"hmm\"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"c\",\"model\":\"deepseek\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"c\",\"model\":\"deepseek\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let (events, err) = run(OpenAiDecoder::default(), &[src.as_bytes()]);
        assert!(err.is_none());
        let mut acc = Accumulator::new();
        for e in &events {
            acc.push(e).unwrap();
        }
        let c = acc.finish().unwrap();
        assert_eq!(c.stop_reason, StopReason::MaxTokens);
        assert_eq!(
            c.message.content,
            vec![
                Block::Thinking {
                    thinking: "hmm".into(),
                    signature: String::new()
                },
                Block::text("ok")
            ]
        );
    }

    #[test]
    fn calls_all_numbered_zero_are_told_apart_by_id() {
        let src = concat!(
            "data: {\"id\":\"c\",\"model\":\"g\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"x1\",\"function\":{\"name\":\"a\",\"arguments\":\"{}\"}}]}}]}\n\n",
            "data: {\"id\":\"c\",\"model\":\"g\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"x2\",\"function\":{\"name\":\"b\",\"arguments\":\"{}\"}}]}}]}\n\n",
            "data: {\"id\":\"c\",\"model\":\"g\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"function\":{\"name\":\"c\",\"arguments\":\"\"}}]},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let (events, err) = run(OpenAiDecoder::default(), &[src.as_bytes()]);
        assert!(err.is_none(), "{err:?}");
        let mut acc = Accumulator::new();
        for e in &events {
            acc.push(e).unwrap();
        }
        let c = acc.finish().unwrap();
        let names: Vec<_> = c
            .message
            .tool_uses()
            .map(|(id, n, _)| format!("{id}:{n}"))
            .collect();
        assert_eq!(names, vec!["x1:a", "x2:b"]);
    }

    #[test]
    fn error_chunk_mid_stream() {
        let src = concat!(
            "data: {\"id\":\"c\",\"model\":\"g\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n",
            "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n",
        );
        let (_, err) = run(OpenAiDecoder::default(), &[src.as_bytes()]);
        let err = err.unwrap();
        assert_eq!(err.kind(), ErrorClass::Server);
        assert!(err.retryable());
    }

    #[test]
    fn full_body_fallback() {
        let body = json!({"id": "c", "object": "chat.completion", "model": "g", "choices": [{"index": 0,
            "message": {"role": "assistant", "content": "hi", "tool_calls": [{"id": "t1", "type": "function",
            "function": {"name": "f", "arguments": "{\"x\":1}"}}]}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}});
        let mut out = VecDeque::new();
        OpenAiDecoder::default()
            .on_full_body(body.to_string().as_bytes(), &mut out)
            .unwrap();
        let mut acc = Accumulator::new();
        for e in &out {
            acc.push(e).unwrap();
        }
        let c = acc.finish().unwrap();
        assert_eq!(c.message.text(), "hi");
        assert_eq!(c.stop_reason, StopReason::ToolUse);
        assert_eq!(c.usage.input_tokens, 5);
    }

    #[test]
    fn request_translation() {
        let mut req = ModelRequest::new(
            "claude-sonnet-4-5",
            vec![
                Message::user(vec![
                    Block::text("look"),
                    Block::Image {
                        source: json!({"type": "base64", "media_type": "image/png", "data": "AAAA"}),
                    },
                ]),
                Message::assistant(vec![
                    Block::Thinking {
                        thinking: "t".into(),
                        signature: "s".into(),
                    },
                    Block::text("running"),
                    Block::ToolUse {
                        id: "toolu_1".into(),
                        name: "bash".into(),
                        input: json!({"command": "ls"}),
                    },
                ]),
                Message::user(vec![
                    Block::ToolResult {
                        tool_use_id: "toolu_1".into(),
                        content: vec![
                            Block::text("no such dir"),
                            Block::Image {
                                source: json!({"type": "url", "url": "https://x/y.png"}),
                            },
                        ],
                        is_error: true,
                    },
                    Block::text("and now?"),
                ]),
                Message::assistant(vec![Block::text("done")]),
            ],
            512,
        );
        req.system = vec![SystemBlock::new("one"), SystemBlock::new("two")];
        req.tools = vec![ToolSpec {
            name: "bash".into(),
            description: "run".into(),
            input_schema: json!({"type": "object"}),
        }];
        req.thinking = Some(1024);
        req.effort = Some("high".into());
        let b = request_body(&req, "gpt-4o", MaxTokensParam::MaxCompletionTokens);
        assert_eq!(b["model"], "gpt-4o");
        assert_eq!(b["stream"], true);
        assert_eq!(b["stream_options"], json!({"include_usage": true}));
        assert_eq!(b["max_completion_tokens"], 512);
        assert!(b.get("max_tokens").is_none() && b.get("thinking").is_none());
        assert_eq!(
            b["tools"],
            json!([{"type": "function", "function": {"name": "bash", "description": "run", "parameters": {"type": "object"}}}])
        );
        let m = b["messages"].as_array().unwrap();
        assert_eq!(m[0], json!({"role": "system", "content": "one\n\ntwo"}));
        assert_eq!(
            m[1],
            json!({"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
            ]})
        );
        assert_eq!(
            m[2],
            json!({"role": "assistant", "content": "running", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "bash", "arguments": "{\"command\":\"ls\"}"}}
            ]})
        );
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "toolu_1", "content": "Error: no such dir"})
        );
        assert_eq!(m[4]["role"], "user");
        assert_eq!(
            m[4]["content"][1],
            json!({"type": "image_url", "image_url": {"url": "https://x/y.png"}})
        );
        assert_eq!(m[5], json!({"role": "user", "content": "and now?"}));
        assert_eq!(m[6], json!({"role": "assistant", "content": "done"}));
        assert_eq!(m.len(), 7);
    }

    #[test]
    fn model_map_and_config() {
        let mut cfg = OpenAiConfig::new("http://127.0.0.1:1/v1", "sk-secret");
        cfg.model_map
            .insert("claude-sonnet-4-5".into(), "llama3".into());
        assert!(!format!("{cfg:?}").contains("sk-secret"));
        let p = OpenAiProvider::new(cfg).unwrap();
        assert_eq!(p.map_model("claude-sonnet-4-5"), "llama3");
        assert_eq!(p.map_model("other"), "other");
        let cfg = OpenAiConfig::from_lookup(|_| None);
        assert_eq!(cfg.base_url, DEFAULT_BASE_URL);
        assert!(cfg.api_key.is_empty());
    }
}
