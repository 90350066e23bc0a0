//! Anthropic Messages API, streamed (`POST {base}/v1/messages` with `"stream": true`).

use std::collections::{HashSet, VecDeque};
use std::fmt;

use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use crate::error::ModelError;
use crate::event::{BlockKind, StreamEvent};
use crate::http::{self, Decoder, Timeouts};
use crate::types::{Block, ModelRequest, StopReason, Usage};
use crate::{EventStream, ModelProvider};
use oma_sse::SseEvent;

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// The API allows at most this many `cache_control` breakpoints per request.
pub const MAX_CACHE_BREAKPOINTS: usize = 4;

#[derive(Clone)]
pub struct AnthropicConfig {
    /// Without the `/v1` suffix, like the official SDK's `base_url`.
    pub base_url: String,
    /// Sent as `x-api-key`; may be empty when `auth_token` is used instead.
    pub api_key: String,
    /// Sent as `Authorization: Bearer` (`ANTHROPIC_AUTH_TOKEN`, for gateways).
    pub auth_token: Option<String>,
    /// `anthropic-version`.
    pub version: String,
    /// `anthropic-beta` flags.
    pub beta: Vec<String>,
    pub timeouts: Timeouts,
}

// Keys must never reach logs.
impl fmt::Debug for AnthropicConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicConfig")
            .field("base_url", &self.base_url)
            .field(
                "api_key",
                &if self.api_key.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("version", &self.version)
            .field("beta", &self.beta)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl AnthropicConfig {
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Self {
        AnthropicConfig {
            base_url: base_url.into(),
            api_key: api_key.into(),
            auth_token: None,
            version: DEFAULT_VERSION.to_string(),
            beta: Vec::new(),
            timeouts: Timeouts::default(),
        }
    }

    /// From `ANTHROPIC_API_KEY`, `ANTHROPIC_AUTH_TOKEN` and `ANTHROPIC_BASE_URL` (default
    /// `https://api.anthropic.com`), as the official SDK reads them.
    pub fn from_env() -> Result<Self, ModelError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`from_env`](Self::from_env) over any variable source (tests, config layers).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ModelError> {
        let nonempty = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let api_key = nonempty("ANTHROPIC_API_KEY");
        let auth_token = nonempty("ANTHROPIC_AUTH_TOKEN");
        if api_key.is_none() && auth_token.is_none() {
            return Err(ModelError::config(
                "no Anthropic credentials: set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN)",
            ));
        }
        let mut cfg = AnthropicConfig::new(
            nonempty("ANTHROPIC_BASE_URL").unwrap_or_else(|| DEFAULT_BASE_URL.to_string()),
            api_key.unwrap_or_default(),
        );
        cfg.auth_token = auth_token;
        Ok(cfg)
    }
}

/// Streams from the Anthropic Messages API (or anything speaking it).
#[derive(Clone)]
pub struct AnthropicProvider {
    http: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
}

impl fmt::Debug for AnthropicProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicProvider")
            .field("url", &self.url.as_str())
            .finish()
    }
}

impl AnthropicProvider {
    pub fn new(cfg: AnthropicConfig) -> Result<Self, ModelError> {
        let url = http::endpoint(&cfg.base_url, "/v1/messages")?;
        let mut headers = HeaderMap::new();
        if !cfg.api_key.is_empty() {
            headers.insert(
                HeaderName::from_static("x-api-key"),
                secret(&cfg.api_key, "the API key")?,
            );
        }
        if let Some(token) = &cfg.auth_token {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                secret(&format!("Bearer {token}"), "the auth token")?,
            );
        }
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            value(&cfg.version, "anthropic-version")?,
        );
        if !cfg.beta.is_empty() {
            headers.insert(
                HeaderName::from_static("anthropic-beta"),
                value(&cfg.beta.join(","), "anthropic-beta")?,
            );
        }
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        Ok(AnthropicProvider {
            http: http::client(cfg.timeouts, &url)?,
            url,
            headers,
        })
    }
}

fn secret(v: &str, what: &str) -> Result<HeaderValue, ModelError> {
    let mut h = HeaderValue::from_str(v).map_err(|_| {
        ModelError::config(format!(
            "{what} contains characters not allowed in a header"
        ))
    })?;
    h.set_sensitive(true);
    Ok(h)
}

fn value(v: &str, what: &str) -> Result<HeaderValue, ModelError> {
    HeaderValue::from_str(v).map_err(|_| {
        ModelError::config(format!(
            "{what} contains characters not allowed in a header"
        ))
    })
}

impl ModelProvider for AnthropicProvider {
    fn name(&self) -> &str {
        "anthropic"
    }

    fn stream(&self, req: ModelRequest) -> BoxFuture<'static, Result<EventStream, ModelError>> {
        let body = request_body(&req);
        tracing::debug!(model = %req.model, messages = req.messages.len(), "anthropic request");
        let builder = self
            .http
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body.to_string());
        http::send(builder, AnthropicDecoder::default()).boxed()
    }
}

/// The JSON body for `req`. Cache flags become `cache_control` breakpoints, keeping the last
/// [`MAX_CACHE_BREAKPOINTS`] if more are flagged (the API rejects more, and the latest
/// breakpoints cover the longest prefixes). Empty text blocks, which the API rejects, are left
/// out.
pub fn request_body(req: &ModelRequest) -> Value {
    let flagged = req
        .system
        .iter()
        .filter(|s| s.cache && !s.text.is_empty())
        .count()
        + req
            .messages
            .iter()
            .map(|m| count_cache(&m.content))
            .sum::<usize>();
    let mut cache = CacheBudget {
        skip: flagged.saturating_sub(MAX_CACHE_BREAKPOINTS),
    };
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("max_tokens".into(), json!(req.max_tokens));
    body.insert("stream".into(), json!(true));
    let system: Vec<Value> = req
        .system
        .iter()
        .filter(|s| !s.text.is_empty())
        .map(|s| text_json(&s.text, s.cache, &mut cache))
        .collect();
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| json!({"role": m.role.as_str(), "content": blocks_json(&m.content, &mut cache)}))
        .collect();
    body.insert("messages".into(), Value::Array(messages));
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut o = Map::new();
                o.insert("name".into(), json!(t.name));
                if !t.description.is_empty() {
                    o.insert("description".into(), json!(t.description));
                }
                o.insert("input_schema".into(), t.input_schema.clone());
                Value::Object(o)
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(budget) = req.thinking {
        body.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": budget}),
        );
    }
    if let Some(effort) = &req.effort {
        body.insert("output_config".into(), json!({"effort": effort}));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    Value::Object(body)
}

struct CacheBudget {
    /// Flagged blocks still to pass over without a breakpoint (the earliest ones).
    skip: usize,
}

impl CacheBudget {
    fn take(&mut self, flagged: bool) -> bool {
        if !flagged {
            return false;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        true
    }
}

fn count_cache(blocks: &[Block]) -> usize {
    blocks
        .iter()
        .map(|b| match b {
            Block::Text { text, cache } => usize::from(*cache && !text.is_empty()),
            Block::ToolResult { content, .. } => count_cache(content),
            _ => 0,
        })
        .sum()
}

fn text_json(text: &str, cache: bool, budget: &mut CacheBudget) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), json!("text"));
    o.insert("text".into(), json!(text));
    if budget.take(cache) {
        o.insert("cache_control".into(), json!({"type": "ephemeral"}));
    }
    Value::Object(o)
}

fn blocks_json(blocks: &[Block], cache: &mut CacheBudget) -> Vec<Value> {
    let mut out = Vec::with_capacity(blocks.len());
    for b in blocks {
        out.push(match b {
            Block::Text { text, .. } if text.is_empty() => continue,
            Block::Text { text, cache: c } => text_json(text, *c, cache),
            Block::Image { source } => json!({"type": "image", "source": source}),
            Block::Document {
                source,
                title,
                context,
            } => {
                let mut o = Map::new();
                o.insert("type".into(), json!("document"));
                o.insert("source".into(), source.clone());
                if let Some(t) = title {
                    o.insert("title".into(), json!(t));
                }
                if let Some(c) = context {
                    o.insert("context".into(), json!(c));
                }
                Value::Object(o)
            }
            Block::ToolUse { id, name, input } => {
                // The API takes only an object; a non-object is JSON an OpenAI-compatible model
                // got wrong, already answered by an error tool_result.
                let input = if input.is_object() {
                    input.clone()
                } else {
                    json!({})
                };
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
            Block::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                let mut o = Map::new();
                o.insert("type".into(), json!("tool_result"));
                o.insert("tool_use_id".into(), json!(tool_use_id));
                o.insert("content".into(), Value::Array(blocks_json(content, cache)));
                if *is_error {
                    o.insert("is_error".into(), json!(true));
                }
                Value::Object(o)
            }
            Block::Thinking {
                thinking,
                signature,
            } => {
                json!({"type": "thinking", "thinking": thinking, "signature": signature})
            }
            Block::RedactedThinking { data } => json!({"type": "redacted_thinking", "data": data}),
        });
    }
    out
}

/// Anthropic's streaming events → [`StreamEvent`]s.
#[derive(Debug, Default)]
pub(crate) struct AnthropicDecoder {
    started: bool,
    usage: Usage,
    stop_reason: Option<StopReason>,
    /// Blocks of kinds we do not model (server tools and their results): their events are
    /// skipped; we send no server tools, so they should not occur.
    skipped: HashSet<usize>,
}

fn field<'a>(v: &'a Value, k: &str) -> Result<&'a Value, ModelError> {
    v.get(k)
        .ok_or_else(|| ModelError::protocol(format!("stream event without `{k}`: {}", short(v))))
}

fn str_field(v: &Value, k: &str) -> Result<String, ModelError> {
    field(v, k)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| ModelError::protocol(format!("`{k}` is not a string: {}", short(v))))
}

fn index_field(v: &Value) -> Result<usize, ModelError> {
    field(v, "index")?
        .as_u64()
        .and_then(|i| usize::try_from(i).ok())
        .ok_or_else(|| ModelError::protocol(format!("`index` is not a number: {}", short(v))))
}

fn short(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// Overwrites the counts present (non-null) in `u`: `message_delta` usage is cumulative.
fn merge_usage(into: &mut Usage, u: &Value) {
    let get = |k: &str| u.get(k).and_then(Value::as_u64);
    if let Some(n) = get("input_tokens") {
        into.input_tokens = n;
    }
    if let Some(n) = get("output_tokens") {
        into.output_tokens = n;
    }
    if let Some(n) = get("cache_creation_input_tokens") {
        into.cache_creation_input_tokens = n;
    }
    if let Some(n) = get("cache_read_input_tokens") {
        into.cache_read_input_tokens = n;
    }
}

impl AnthropicDecoder {
    fn block_start(
        &mut self,
        index: usize,
        block: &Value,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<(), ModelError> {
        let kind = str_field(block, "type")?;
        match kind.as_str() {
            "text" => {
                out.push_back(StreamEvent::BlockStart {
                    index,
                    kind: BlockKind::Text,
                });
                let text = block
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !text.is_empty() {
                    out.push_back(StreamEvent::TextDelta {
                        index,
                        text: text.to_string(),
                    });
                }
            }
            "thinking" => {
                out.push_back(StreamEvent::BlockStart {
                    index,
                    kind: BlockKind::Thinking,
                });
                let thinking = block
                    .get("thinking")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !thinking.is_empty() {
                    out.push_back(StreamEvent::ThinkingDelta {
                        index,
                        text: thinking.to_string(),
                    });
                }
                let signature = block
                    .get("signature")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !signature.is_empty() {
                    out.push_back(StreamEvent::SignatureDelta {
                        index,
                        signature: signature.to_string(),
                    });
                }
            }
            "redacted_thinking" => out.push_back(StreamEvent::BlockStart {
                index,
                kind: BlockKind::RedactedThinking {
                    data: str_field(block, "data")?,
                },
            }),
            "tool_use" => {
                out.push_back(StreamEvent::BlockStart {
                    index,
                    kind: BlockKind::ToolUse {
                        id: str_field(block, "id")?,
                        name: str_field(block, "name")?,
                    },
                });
                // Streaming starts with `input: {}` and sends the JSON as deltas; a start that
                // already carries input (non-streamed shape) passes it as one delta.
                if let Some(input) = block
                    .get("input")
                    .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                {
                    out.push_back(StreamEvent::ToolInputDelta {
                        index,
                        partial_json: input.to_string(),
                    });
                }
            }
            other => {
                tracing::debug!(block_type = other, "skipping an unsupported content block");
                self.skipped.insert(index);
            }
        }
        Ok(())
    }

    fn block_delta(
        &mut self,
        index: usize,
        delta: &Value,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<(), ModelError> {
        if self.skipped.contains(&index) {
            return Ok(());
        }
        let kind = str_field(delta, "type")?;
        match kind.as_str() {
            "text_delta" => out.push_back(StreamEvent::TextDelta {
                index,
                text: str_field(delta, "text")?,
            }),
            "thinking_delta" => out.push_back(StreamEvent::ThinkingDelta {
                index,
                text: str_field(delta, "thinking")?,
            }),
            "signature_delta" => out.push_back(StreamEvent::SignatureDelta {
                index,
                signature: str_field(delta, "signature")?,
            }),
            "input_json_delta" => {
                let partial_json = str_field(delta, "partial_json")?;
                if !partial_json.is_empty() {
                    out.push_back(StreamEvent::ToolInputDelta {
                        index,
                        partial_json,
                    });
                }
            }
            // citations_delta and future kinds carry nothing the conversation keeps.
            _ => {}
        }
        Ok(())
    }
}

impl Decoder for AnthropicDecoder {
    fn on_event(
        &mut self,
        ev: SseEvent,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<bool, ModelError> {
        let data: Value = serde_json::from_str(&ev.data).map_err(|e| {
            ModelError::protocol(format!("stream event is not JSON ({e}): {:.200}", ev.data))
        })?;
        let name = if ev.event.is_empty() {
            data.get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        } else {
            ev.event
        };
        if !self.started && !matches!(name.as_str(), "message_start" | "ping" | "error") {
            return Err(ModelError::protocol(format!(
                "stream event `{name}` before message_start"
            )));
        }
        match name.as_str() {
            "message_start" => {
                let msg = field(&data, "message")?;
                if let Some(u) = msg.get("usage") {
                    merge_usage(&mut self.usage, u);
                }
                self.started = true;
                out.push_back(StreamEvent::Started {
                    message_id: str_field(msg, "id")?,
                    model: msg
                        .get("model")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    usage: self.usage,
                });
            }
            "content_block_start" => {
                let index = index_field(&data)?;
                self.block_start(index, field(&data, "content_block")?, out)?;
            }
            "content_block_delta" => {
                let index = index_field(&data)?;
                self.block_delta(index, field(&data, "delta")?, out)?;
            }
            "content_block_stop" => {
                let index = index_field(&data)?;
                if !self.skipped.contains(&index) {
                    out.push_back(StreamEvent::BlockStop { index });
                }
            }
            "message_delta" => {
                if let Some(reason) = data
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop_reason = Some(StopReason::from_anthropic(reason));
                }
                if let Some(details) = data
                    .pointer("/delta/stop_details")
                    .filter(|d| d.is_object())
                {
                    out.push_back(StreamEvent::StopDetails {
                        details: details.clone(),
                    });
                }
                if let Some(u) = data.get("usage") {
                    merge_usage(&mut self.usage, u);
                }
            }
            "message_stop" => {
                out.push_back(StreamEvent::Finished {
                    // The API always sends one in message_delta; a compatible server that does
                    // not has simply finished its turn.
                    stop_reason: self.stop_reason.take().unwrap_or(StopReason::EndTurn),
                    usage: self.usage,
                });
                return Ok(true);
            }
            "error" => {
                let err = data.get("error").unwrap_or(&data);
                let t = err
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("api_error");
                let m = err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("error event in the stream");
                return Err(ModelError::from_stream_error(t, m));
            }
            // `ping`, and event types added after this was written (the API's versioning
            // policy allows new ones).
            _ => {}
        }
        Ok(false)
    }

    fn on_eof(&mut self, _out: &mut VecDeque<StreamEvent>) -> Result<(), ModelError> {
        Err(ModelError::incomplete(
            "the model stream ended before message_stop",
        ))
    }

    fn on_full_body(
        &mut self,
        body: &[u8],
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<(), ModelError> {
        let msg: Value = serde_json::from_slice(body).map_err(|e| {
            ModelError::protocol(format!("response is neither an event stream nor JSON: {e}"))
        })?;
        if msg.get("type").and_then(Value::as_str) != Some("message") {
            return Err(ModelError::protocol(format!(
                "unexpected response: {}",
                short(&msg)
            )));
        }
        if let Some(u) = msg.get("usage") {
            merge_usage(&mut self.usage, u);
        }
        out.push_back(StreamEvent::Started {
            message_id: str_field(&msg, "id")?,
            model: msg
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            usage: self.usage,
        });
        let content = msg
            .get("content")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (index, block) in content.iter().enumerate() {
            self.block_start(index, block, out)?;
            if !self.skipped.contains(&index) {
                out.push_back(StreamEvent::BlockStop { index });
            }
        }
        let stop_reason = msg
            .get("stop_reason")
            .and_then(Value::as_str)
            .map(StopReason::from_anthropic)
            .unwrap_or(StopReason::EndTurn);
        if let Some(details) = msg.get("stop_details").filter(|d| d.is_object()) {
            out.push_back(StreamEvent::StopDetails {
                details: details.clone(),
            });
        }
        out.push_back(StreamEvent::Finished {
            stop_reason,
            usage: self.usage,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;
    use crate::event::Accumulator;
    use crate::http::testing::run;
    use crate::types::{Message, SystemBlock, ToolSpec};

    /// A stream as the API sends it: thinking, text, a tool use, usage with cache counts,
    /// pings and a comment, CRLF line ends.
    const RECORDED: &str = concat!(
        "event: message_start\r\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":2000,\"output_tokens\":1}}}\r\n",
        "\r\n",
        "event: content_block_start\r\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\r\n",
        "\r\n",
        "event: ping\r\n",
        "data: {\"type\": \"ping\"}\r\n",
        "\r\n",
        "event: content_block_delta\r\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Let me think ✓\"}}\r\n",
        "\r\n",
        "event: content_block_delta\r\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCgIYAhIM\"}}\r\n",
        "\r\n",
        "event: content_block_stop\r\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\r\n",
        "\r\n",
        ": keep-alive comment\r\n",
        "event: content_block_start\r\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\r\n",
        "\r\n",
        "event: content_block_delta\r\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Héllo, \"}}\r\n",
        "\r\n",
        "event: content_block_delta\r\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"world\"}}\r\n",
        "\r\n",
        "event: content_block_stop\r\n",
        "data: {\"type\":\"content_block_stop\",\"index\":1}\r\n",
        "\r\n",
        "event: content_block_start\r\n",
        "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"bash\",\"input\":{}}}\r\n",
        "\r\n",
        "event: content_block_delta\r\n",
        "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\r\n",
        "\r\n",
        "event: content_block_delta\r\n",
        "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"command\\\": \\\"l\"}}\r\n",
        "\r\n",
        "event: content_block_delta\r\n",
        "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"s -la\\\"}\"}}\r\n",
        "\r\n",
        "event: content_block_stop\r\n",
        "data: {\"type\":\"content_block_stop\",\"index\":2}\r\n",
        "\r\n",
        "event: message_delta\r\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89,\"input_tokens\":null}}\r\n",
        "\r\n",
        "event: message_stop\r\n",
        "data: {\"type\":\"message_stop\"}\r\n",
        "\r\n",
    );

    fn expected() -> Vec<StreamEvent> {
        let usage0 = Usage {
            input_tokens: 25,
            output_tokens: 1,
            cache_creation_input_tokens: 100,
            cache_read_input_tokens: 2000,
        };
        vec![
            StreamEvent::Started {
                message_id: "msg_01".into(),
                model: "claude-sonnet-4-5".into(),
                usage: usage0,
            },
            StreamEvent::BlockStart {
                index: 0,
                kind: BlockKind::Thinking,
            },
            StreamEvent::ThinkingDelta {
                index: 0,
                text: "Let me think ✓".into(),
            },
            StreamEvent::SignatureDelta {
                index: 0,
                signature: "EqQBCgIYAhIM".into(),
            },
            StreamEvent::BlockStop { index: 0 },
            StreamEvent::BlockStart {
                index: 1,
                kind: BlockKind::Text,
            },
            StreamEvent::TextDelta {
                index: 1,
                text: "Héllo, ".into(),
            },
            StreamEvent::TextDelta {
                index: 1,
                text: "world".into(),
            },
            StreamEvent::BlockStop { index: 1 },
            StreamEvent::BlockStart {
                index: 2,
                kind: BlockKind::ToolUse {
                    id: "toolu_01".into(),
                    name: "bash".into(),
                },
            },
            StreamEvent::ToolInputDelta {
                index: 2,
                partial_json: "{\"command\": \"l".into(),
            },
            StreamEvent::ToolInputDelta {
                index: 2,
                partial_json: "s -la\"}".into(),
            },
            StreamEvent::BlockStop { index: 2 },
            StreamEvent::Finished {
                stop_reason: StopReason::ToolUse,
                usage: Usage {
                    output_tokens: 89,
                    ..usage0
                },
            },
        ]
    }

    #[test]
    fn decodes_a_recorded_stream_split_anywhere() {
        let src = RECORDED.as_bytes();
        let want = expected();
        let (whole, err) = run(AnthropicDecoder::default(), &[src]);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(whole, want);
        for i in 0..=src.len() {
            let (got, err) = run(AnthropicDecoder::default(), &[&src[..i], &src[i..]]);
            assert!(err.is_none(), "split at {i}: {err:?}");
            assert_eq!(got, want, "split at {i}");
        }
        let bytes: Vec<&[u8]> = src.chunks(1).collect();
        assert_eq!(run(AnthropicDecoder::default(), &bytes).0, want);
        // LF-only line ends decode the same.
        let lf = RECORDED.replace("\r\n", "\n");
        assert_eq!(run(AnthropicDecoder::default(), &[lf.as_bytes()]).0, want);

        let mut acc = Accumulator::new();
        for e in &want {
            acc.push(e).unwrap();
        }
        let c = acc.finish().unwrap();
        assert_eq!(c.message.text(), "Héllo, world");
        assert_eq!(
            c.message.tool_uses().next().map(|t| t.2.clone()),
            Some(json!({"command": "ls -la"}))
        );
    }

    #[test]
    fn truncated_stream_is_a_retryable_error() {
        let src = RECORDED.as_bytes();
        let cut = RECORDED.find("event: message_stop").unwrap();
        for end in [0, 10, cut / 2, cut, src.len() - 3] {
            let (_, err) = run(AnthropicDecoder::default(), &[&src[..end]]);
            let err = err.unwrap_or_else(|| panic!("no error when cut at {end}"));
            assert_eq!(err.kind(), ErrorClass::Connection, "cut at {end}");
            assert!(err.retryable());
        }
    }

    #[test]
    fn error_event_mid_stream() {
        let src = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"m\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n",
            "event: error\n",
            "data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        );
        let (events, err) = run(AnthropicDecoder::default(), &[src.as_bytes()]);
        assert_eq!(events.len(), 1);
        let err = err.unwrap();
        assert_eq!(err.kind(), ErrorClass::Overloaded);
        assert!(err.retryable());
        assert_eq!(err.error_type(), Some("overloaded_error"));
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        let (_, err) = run(
            AnthropicDecoder::default(),
            &[b"event: message_start\ndata: {nope\n\n"],
        );
        assert_eq!(err.unwrap().kind(), ErrorClass::Other);
        let (_, err) = run(
            AnthropicDecoder::default(),
            &[b"event: content_block_start\ndata: {\"index\":0,\"content_block\":{\"type\":\"text\"}}\n\n"],
        );
        assert_eq!(err.unwrap().kind(), ErrorClass::Other);
    }

    #[test]
    fn unknown_blocks_and_events_are_skipped() {
        let src = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"m\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\n",
            "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"server_tool_use\",\"id\":\"s\",\"name\":\"web_search\",\"input\":{}}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n",
            "event: content_block_stop\n",
            "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: brand_new_event\n",
            "data: {\"type\":\"brand_new_event\"}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\n",
            "event: message_stop\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        );
        let (events, err) = run(AnthropicDecoder::default(), &[src.as_bytes()]);
        assert!(err.is_none());
        assert_eq!(events.len(), 2);
        assert!(matches!(
            events[1],
            StreamEvent::Finished {
                stop_reason: StopReason::EndTurn,
                ..
            }
        ));
    }

    #[test]
    fn a_refusal_keeps_its_stop_details() {
        let src = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"m\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"refusal\",\"stop_details\":{\"type\":\"refusal\",\"category\":\"cyber\",\"explanation\":\"no\"}},\"usage\":{\"output_tokens\":2}}\n\n",
            "event: message_stop\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        );
        let (events, err) = run(AnthropicDecoder::default(), &[src.as_bytes()]);
        assert!(err.is_none());
        let mut acc = Accumulator::new();
        for e in &events {
            acc.push(e).unwrap();
        }
        let done = acc.finish().unwrap();
        assert_eq!(done.stop_reason, StopReason::Refusal);
        assert_eq!(
            done.stop_details,
            Some(json!({"type": "refusal", "category": "cyber", "explanation": "no"}))
        );
    }

    #[test]
    fn full_json_body_becomes_events() {
        let body = json!({
            "id": "msg_9", "type": "message", "role": "assistant", "model": "m",
            "content": [{"type": "text", "text": "hi"}, {"type": "tool_use", "id": "t", "name": "x", "input": {"a": 1}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 3, "output_tokens": 4}
        });
        let mut out = VecDeque::new();
        AnthropicDecoder::default()
            .on_full_body(body.to_string().as_bytes(), &mut out)
            .unwrap();
        let mut acc = Accumulator::new();
        for e in &out {
            acc.push(e).unwrap();
        }
        let c = acc.finish().unwrap();
        assert_eq!(c.message.text(), "hi");
        assert_eq!(c.stop_reason, StopReason::ToolUse);
        assert_eq!(c.usage.output_tokens, 4);
        assert_eq!(c.message.tool_uses().next().unwrap().2, &json!({"a": 1}));
    }

    #[test]
    fn request_body_shape() {
        let mut req = ModelRequest::new(
            "claude-sonnet-4-5",
            vec![
                Message::user(vec![Block::cached_text("hello"), Block::text("")]),
                Message::assistant(vec![
                    Block::Thinking {
                        thinking: "t".into(),
                        signature: "s".into(),
                    },
                    Block::ToolUse {
                        id: "toolu_1".into(),
                        name: "bash".into(),
                        input: json!({"command": "ls"}),
                    },
                ]),
                Message::user(vec![Block::ToolResult {
                    tool_use_id: "toolu_1".into(),
                    content: vec![Block::cached_text("a.txt")],
                    is_error: true,
                }]),
            ],
            1024,
        );
        req.system = vec![SystemBlock {
            text: "be brief".into(),
            cache: true,
        }];
        req.tools = vec![ToolSpec {
            name: "bash".into(),
            description: "run".into(),
            input_schema: json!({"type": "object"}),
        }];
        req.thinking = Some(2048);
        req.effort = Some("high".into());
        req.temperature = Some(0.5);
        let b = request_body(&req);
        assert_eq!(b["stream"], true);
        assert_eq!(b["max_tokens"], 1024);
        assert_eq!(
            b["system"],
            json!([{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}])
        );
        assert_eq!(
            b["messages"][0]["content"],
            json!([{"type": "text", "text": "hello", "cache_control": {"type": "ephemeral"}}])
        );
        assert_eq!(
            b["messages"][1]["content"][0],
            json!({"type": "thinking", "thinking": "t", "signature": "s"})
        );
        assert_eq!(
            b["messages"][1]["content"][1],
            json!({"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"command": "ls"}})
        );
        assert_eq!(
            b["messages"][2]["content"][0],
            json!({"type": "tool_result", "tool_use_id": "toolu_1", "is_error": true,
                   "content": [{"type": "text", "text": "a.txt", "cache_control": {"type": "ephemeral"}}]})
        );
        assert_eq!(
            b["tools"],
            json!([{"name": "bash", "description": "run", "input_schema": {"type": "object"}}])
        );
        assert_eq!(
            b["thinking"],
            json!({"type": "enabled", "budget_tokens": 2048})
        );
        assert_eq!(b["output_config"], json!({"effort": "high"}));
        assert_eq!(b["temperature"], 0.5);
    }

    #[test]
    fn at_most_four_breakpoints_keeping_the_last() {
        let mut req = ModelRequest::new(
            "m",
            (0..6)
                .map(|i| Message::user(vec![Block::cached_text(format!("m{i}"))]))
                .collect(),
            10,
        );
        req.system = vec![SystemBlock {
            text: "s".into(),
            cache: true,
        }];
        let b = request_body(&req);
        let s = b.to_string();
        assert_eq!(s.matches("cache_control").count(), 4);
        assert!(b["system"][0].get("cache_control").is_none());
        assert!(
            b["messages"][1]["content"][0]
                .get("cache_control")
                .is_none()
        );
        assert!(
            b["messages"][2]["content"][0]
                .get("cache_control")
                .is_some()
        );
        assert!(
            b["messages"][5]["content"][0]
                .get("cache_control")
                .is_some()
        );
        // Without optional parts the body stays minimal.
        let b = request_body(&ModelRequest::new("m", vec![Message::user_text("x")], 5));
        assert!(
            b.get("system").is_none() && b.get("tools").is_none() && b.get("thinking").is_none()
        );
    }

    #[test]
    fn config_from_env_and_redaction() {
        let cfg = AnthropicConfig::from_lookup(|k| match k {
            "ANTHROPIC_API_KEY" => Some("sk-ant-secret".into()),
            "ANTHROPIC_BASE_URL" => Some("http://127.0.0.1:9".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(cfg.base_url, "http://127.0.0.1:9");
        assert_eq!(cfg.version, "2023-06-01");
        assert!(!format!("{cfg:?}").contains("secret"));
        let cfg =
            AnthropicConfig::from_lookup(|k| (k == "ANTHROPIC_API_KEY").then(|| "k".to_string()))
                .unwrap();
        assert_eq!(cfg.base_url, DEFAULT_BASE_URL);
        let err = AnthropicConfig::from_lookup(|_| None).unwrap_err();
        assert!(err.message().contains("ANTHROPIC_API_KEY"));
        assert!(AnthropicProvider::new(AnthropicConfig::new("nope", "k")).is_err());
        assert!(AnthropicProvider::new(AnthropicConfig::new("https://h", "bad\nkey")).is_err());
    }
}
