//! The provider-neutral conversation: what the harness sends to a model and gets back.
//!
//! The shapes follow Anthropic's Messages API (content blocks, tool_use/tool_result pairing,
//! thinking with signatures) because that is the richest of the supported wires; the OpenAI
//! provider translates down from it.

use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Block>,
}

impl Message {
    pub fn user(content: Vec<Block>) -> Self {
        Message {
            role: Role::User,
            content,
        }
    }

    pub fn assistant(content: Vec<Block>) -> Self {
        Message {
            role: Role::Assistant,
            content,
        }
    }

    /// A user message holding one text block.
    pub fn user_text(text: impl Into<String>) -> Self {
        Message::user(vec![Block::text(text)])
    }

    /// The concatenated text blocks (thinking and tool blocks excluded).
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|b| match b {
                Block::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The tool uses in this message, in order.
    pub fn tool_uses(&self) -> impl Iterator<Item = (&str, &str, &Value)> {
        self.content.iter().filter_map(|b| match b {
            Block::ToolUse { id, name, input } => Some((id.as_str(), name.as_str(), input)),
            _ => None,
        })
    }
}

/// One content block. `cache` on a text block places a prompt-cache breakpoint after it
/// (`cache_control: {"type":"ephemeral"}` on the Anthropic wire; ignored by OpenAI).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
        #[serde(default)]
        cache: bool,
    },
    /// `source` is an Anthropic image source object: `{"type":"base64","media_type","data"}`
    /// or `{"type":"url","url"}`.
    Image {
        source: Value,
    },
    /// `source` is an Anthropic document source: base64 PDF, plain text, or URL.
    Document {
        source: Value,
        #[serde(default)]
        title: Option<String>,
        #[serde(default)]
        context: Option<String>,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        content: Vec<Block>,
        #[serde(default)]
        is_error: bool,
    },
    Thinking {
        thinking: String,
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
}

impl Block {
    pub fn text(text: impl Into<String>) -> Self {
        Block::Text {
            text: text.into(),
            cache: false,
        }
    }

    /// A text block with a prompt-cache breakpoint after it.
    pub fn cached_text(text: impl Into<String>) -> Self {
        Block::Text {
            text: text.into(),
            cache: true,
        }
    }

    pub fn tool_result(
        tool_use_id: impl Into<String>,
        text: impl Into<String>,
        is_error: bool,
    ) -> Self {
        Block::ToolResult {
            tool_use_id: tool_use_id.into(),
            content: vec![Block::text(text)],
            is_error,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemBlock {
    pub text: String,
    #[serde(default)]
    pub cache: bool,
}

impl SystemBlock {
    pub fn new(text: impl Into<String>) -> Self {
        SystemBlock {
            text: text.into(),
            cache: false,
        }
    }
}

/// A client tool the model may call. `input_schema` is a JSON Schema object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRequest {
    /// The model id as the agent names it; a provider may map it (`OpenAiConfig::model_map`).
    pub model: String,
    pub system: Vec<SystemBlock>,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    pub max_tokens: u32,
    /// Extended-thinking budget in tokens; `None` leaves thinking off.
    pub thinking: Option<u32>,
    /// `low` | `medium` | `high` | `xhigh` | `max`.
    pub effort: Option<String>,
    pub temperature: Option<f32>,
}

impl ModelRequest {
    /// A request with no system prompt, tools or sampling options.
    pub fn new(model: impl Into<String>, messages: Vec<Message>, max_tokens: u32) -> Self {
        ModelRequest {
            model: model.into(),
            system: Vec::new(),
            messages,
            tools: Vec::new(),
            max_tokens,
            thinking: None,
            effort: None,
            temperature: None,
        }
    }
}

/// Token counts, Anthropic's split: `input_tokens` excludes cache reads and cache writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

impl Usage {
    /// Every input token, cached or not.
    pub fn total_input(&self) -> u64 {
        self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens
    }
}

impl Add for Usage {
    type Output = Usage;

    fn add(self, o: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens.saturating_add(o.input_tokens),
            output_tokens: self.output_tokens.saturating_add(o.output_tokens),
            cache_creation_input_tokens: self
                .cache_creation_input_tokens
                .saturating_add(o.cache_creation_input_tokens),
            cache_read_input_tokens: self
                .cache_read_input_tokens
                .saturating_add(o.cache_read_input_tokens),
        }
    }
}

impl AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        *self = *self + o;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    StopSequence,
    Refusal,
    PauseTurn,
    /// A reason this crate does not know, kept verbatim.
    Other(String),
}

impl StopReason {
    /// Parses an Anthropic `stop_reason`.
    pub fn from_anthropic(s: &str) -> Self {
        match s {
            "end_turn" => StopReason::EndTurn,
            "tool_use" => StopReason::ToolUse,
            "max_tokens" => StopReason::MaxTokens,
            "stop_sequence" => StopReason::StopSequence,
            "refusal" => StopReason::Refusal,
            "pause_turn" => StopReason::PauseTurn,
            other => StopReason::Other(other.to_string()),
        }
    }

    /// Parses an OpenAI `finish_reason`.
    pub fn from_openai(s: &str) -> Self {
        match s {
            "stop" => StopReason::EndTurn,
            "tool_calls" | "function_call" => StopReason::ToolUse,
            "length" => StopReason::MaxTokens,
            "content_filter" => StopReason::Refusal,
            other => StopReason::Other(other.to_string()),
        }
    }

    /// The Anthropic spelling (also used in session events).
    pub fn as_str(&self) -> &str {
        match self {
            StopReason::EndTurn => "end_turn",
            StopReason::ToolUse => "tool_use",
            StopReason::MaxTokens => "max_tokens",
            StopReason::StopSequence => "stop_sequence",
            StopReason::Refusal => "refusal",
            StopReason::PauseTurn => "pause_turn",
            StopReason::Other(s) => s,
        }
    }
}

impl Serialize for StopReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StopReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(StopReason::from_anthropic(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_adds_fieldwise() {
        let a = Usage {
            input_tokens: 1,
            output_tokens: 2,
            cache_creation_input_tokens: 3,
            cache_read_input_tokens: 4,
        };
        let mut b = a + a;
        assert_eq!(b.cache_read_input_tokens, 8);
        b += Usage::default();
        assert_eq!(b.total_input(), 2 + 6 + 8);
    }

    #[test]
    fn stop_reasons_round_trip() {
        for s in [
            "end_turn",
            "tool_use",
            "max_tokens",
            "stop_sequence",
            "refusal",
            "pause_turn",
            "x",
        ] {
            assert_eq!(StopReason::from_anthropic(s).as_str(), s);
        }
        assert_eq!(StopReason::from_openai("tool_calls"), StopReason::ToolUse);
        assert_eq!(StopReason::from_openai("length"), StopReason::MaxTokens);
        assert_eq!(
            serde_json::to_value(StopReason::EndTurn).ok(),
            Some(json!("end_turn"))
        );
    }

    #[test]
    fn blocks_serialize_tagged() {
        let m = Message::assistant(vec![
            Block::text("hi"),
            Block::ToolUse {
                id: "t1".into(),
                name: "bash".into(),
                input: json!({"command": "ls"}),
            },
        ]);
        let v = serde_json::to_value(&m).unwrap_or_default();
        assert_eq!(v["content"][0]["type"], "text");
        assert_eq!(v["content"][1]["type"], "tool_use");
        let back: Message = serde_json::from_value(v).unwrap_or_else(|_| Message::user(vec![]));
        assert_eq!(back, m);
        assert_eq!(m.text(), "hi");
        assert_eq!(m.tool_uses().count(), 1);
    }
}
