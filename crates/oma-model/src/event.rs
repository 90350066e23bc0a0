//! What a provider yields while streaming, and the fold of those events into a message.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::ModelError;
use crate::types::{Block, Message, Role, StopReason, Usage};

/// The kind of a content block, announced when the block starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockKind {
    Text,
    Thinking,
    ToolUse {
        id: String,
        name: String,
    },
    /// Redacted thinking arrives whole in its start event.
    RedactedThinking {
        data: String,
    },
}

/// One step of a streamed model response, provider-neutral.
///
/// A well-formed stream is `Started`, then per block `BlockStart`, deltas, `BlockStop`, and
/// finally `Finished`; providers guarantee that a stream which does not reach `Finished` ends
/// with an `Err` instead.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Started {
        message_id: String,
        model: String,
        /// Input-side usage known at the start (Anthropic reports it in `message_start`).
        usage: Usage,
    },
    BlockStart {
        index: usize,
        kind: BlockKind,
    },
    TextDelta {
        index: usize,
        text: String,
    },
    ThinkingDelta {
        index: usize,
        text: String,
    },
    SignatureDelta {
        index: usize,
        signature: String,
    },
    ToolInputDelta {
        index: usize,
        partial_json: String,
    },
    BlockStop {
        index: usize,
    },
    /// More about why the model stopped than the reason itself (Anthropic's `stop_details`,
    /// e.g. the category of a refusal); comes before `Finished` when the provider sends it.
    StopDetails {
        details: Value,
    },
    Finished {
        stop_reason: StopReason,
        /// Cumulative and final for this request.
        usage: Usage,
    },
}

/// The result of a complete stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub message_id: String,
    pub model: String,
    pub message: Message,
    pub stop_reason: StopReason,
    /// The provider's `stop_details`, when it sent any.
    pub stop_details: Option<Value>,
    pub usage: Usage,
}

#[derive(Debug, Clone)]
enum Slot {
    Text(String),
    Thinking {
        thinking: String,
        signature: String,
    },
    ToolUse {
        id: String,
        name: String,
        json: String,
        input: Option<Value>,
    },
    RedactedThinking(String),
}

#[derive(Debug, Clone)]
struct Entry {
    slot: Slot,
    stopped: bool,
}

/// Folds [`StreamEvent`]s into the assistant message.
///
/// It can hand out the partial message at any point, so the harness can keep what the model
/// said when a stream is interrupted: text so far, thinking and tool uses only once complete
/// (a thinking block without its signature, or a tool call with half its JSON, cannot be sent
/// back to a model).
#[derive(Debug, Clone, Default)]
pub struct Accumulator {
    message_id: String,
    model: String,
    blocks: BTreeMap<usize, Entry>,
    usage: Usage,
    stop_reason: Option<StopReason>,
    stop_details: Option<Value>,
    started: bool,
}

impl Accumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one event. Errors on events that contradict the stream so far (a delta for a
    /// block that was never started, or of the wrong kind): a provider bug, not retryable.
    pub fn push(&mut self, event: &StreamEvent) -> Result<(), ModelError> {
        match event {
            StreamEvent::Started {
                message_id,
                model,
                usage,
            } => {
                self.started = true;
                self.message_id = message_id.clone();
                self.model = model.clone();
                self.usage = *usage;
            }
            StreamEvent::BlockStart { index, kind } => {
                if self.blocks.contains_key(index) {
                    return Err(ModelError::protocol(format!(
                        "content block {index} started twice"
                    )));
                }
                let (slot, stopped) = match kind {
                    BlockKind::Text => (Slot::Text(String::new()), false),
                    BlockKind::Thinking => (
                        Slot::Thinking {
                            thinking: String::new(),
                            signature: String::new(),
                        },
                        false,
                    ),
                    BlockKind::ToolUse { id, name } => (
                        Slot::ToolUse {
                            id: id.clone(),
                            name: name.clone(),
                            json: String::new(),
                            input: None,
                        },
                        false,
                    ),
                    BlockKind::RedactedThinking { data } => {
                        (Slot::RedactedThinking(data.clone()), false)
                    }
                };
                self.blocks.insert(*index, Entry { slot, stopped });
            }
            StreamEvent::TextDelta { index, text } => match self.open(*index)? {
                Slot::Text(t) => t.push_str(text),
                _ => return Err(mismatch(*index, "text_delta")),
            },
            StreamEvent::ThinkingDelta { index, text } => match self.open(*index)? {
                Slot::Thinking { thinking, .. } => thinking.push_str(text),
                _ => return Err(mismatch(*index, "thinking_delta")),
            },
            StreamEvent::SignatureDelta {
                index,
                signature: s,
            } => match self.open(*index)? {
                Slot::Thinking { signature, .. } => signature.push_str(s),
                _ => return Err(mismatch(*index, "signature_delta")),
            },
            StreamEvent::ToolInputDelta {
                index,
                partial_json,
            } => match self.open(*index)? {
                Slot::ToolUse { json, .. } => json.push_str(partial_json),
                _ => return Err(mismatch(*index, "input_json_delta")),
            },
            StreamEvent::BlockStop { index } => {
                let entry = self.blocks.get_mut(index).ok_or_else(|| {
                    ModelError::protocol(format!("content block {index} stopped but never started"))
                })?;
                if let Slot::ToolUse { json, input, .. } = &mut entry.slot {
                    *input = Some(parse_tool_input(json));
                }
                entry.stopped = true;
            }
            StreamEvent::StopDetails { details } => self.stop_details = Some(details.clone()),
            StreamEvent::Finished { stop_reason, usage } => {
                self.stop_reason = Some(stop_reason.clone());
                self.usage = *usage;
            }
        }
        Ok(())
    }

    fn open(&mut self, index: usize) -> Result<&mut Slot, ModelError> {
        match self.blocks.get_mut(&index) {
            Some(Entry {
                slot,
                stopped: false,
            }) => Ok(slot),
            Some(_) => Err(ModelError::protocol(format!(
                "delta for content block {index} after its stop"
            ))),
            None => Err(ModelError::protocol(format!(
                "delta for content block {index} before its start"
            ))),
        }
    }

    /// Whether `Finished` was seen.
    pub fn is_finished(&self) -> bool {
        self.stop_reason.is_some()
    }

    pub fn stop_reason(&self) -> Option<&StopReason> {
        self.stop_reason.as_ref()
    }

    /// The latest usage: the input side after `Started`, the final totals after `Finished`.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// The assistant message so far: all text (also of unfinished blocks, skipping empty ones),
    /// and thinking, redacted thinking and tool uses that are complete.
    pub fn partial(&self) -> Message {
        let mut content = Vec::new();
        for entry in self.blocks.values() {
            match &entry.slot {
                Slot::Text(t) if !t.is_empty() => content.push(Block::text(t.clone())),
                Slot::Text(_) => {}
                Slot::Thinking {
                    thinking,
                    signature,
                } if entry.stopped && !signature.is_empty() => content.push(Block::Thinking {
                    thinking: thinking.clone(),
                    signature: signature.clone(),
                }),
                Slot::Thinking { .. } => {}
                Slot::ToolUse {
                    id,
                    name,
                    input: Some(input),
                    ..
                } => content.push(Block::ToolUse {
                    id: id.clone(),
                    name: name.clone(),
                    input: input.clone(),
                }),
                Slot::ToolUse { .. } => {}
                Slot::RedactedThinking(data) => {
                    content.push(Block::RedactedThinking { data: data.clone() })
                }
            }
        }
        Message {
            role: Role::Assistant,
            content,
        }
    }

    /// The finished response. Errors (retryably, like a dropped connection) if the stream did
    /// not reach `Finished`.
    pub fn finish(self) -> Result<Completion, ModelError> {
        let stop_reason = self.stop_reason.clone().ok_or_else(|| {
            ModelError::incomplete("the stream ended before the message was complete")
        })?;
        let mut message = Message {
            role: Role::Assistant,
            content: Vec::new(),
        };
        for entry in self.blocks.into_values() {
            message.content.push(match entry.slot {
                Slot::Text(text) => Block::text(text),
                Slot::Thinking {
                    thinking,
                    signature,
                } => Block::Thinking {
                    thinking,
                    signature,
                },
                Slot::ToolUse {
                    id,
                    name,
                    json,
                    input,
                } => Block::ToolUse {
                    id,
                    name,
                    input: input.unwrap_or_else(|| parse_tool_input(&json)),
                },
                Slot::RedactedThinking(data) => Block::RedactedThinking { data },
            });
        }
        Ok(Completion {
            message_id: self.message_id,
            model: self.model,
            message,
            stop_reason,
            stop_details: self.stop_details,
            usage: self.usage,
        })
    }
}

fn mismatch(index: usize, what: &str) -> ModelError {
    ModelError::protocol(format!("{what} for content block {index} of another kind"))
}

/// The tool input from its streamed JSON. Empty means no arguments (`{}`). JSON the model got
/// wrong (possible with OpenAI-compatible models) is kept as a string so the tool layer can
/// answer with an error result instead of the turn failing.
pub fn parse_tool_input(json: &str) -> Value {
    if json.trim().is_empty() {
        return Value::Object(Default::default());
    }
    serde_json::from_str(json).unwrap_or_else(|_| Value::String(json.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn start(acc: &mut Accumulator) {
        acc.push(&StreamEvent::Started {
            message_id: "msg_1".into(),
            model: "m".into(),
            usage: Usage {
                input_tokens: 10,
                ..Default::default()
            },
        })
        .unwrap();
    }

    #[test]
    fn folds_text_thinking_and_tool_use() {
        let mut acc = Accumulator::new();
        start(&mut acc);
        let events = vec![
            StreamEvent::BlockStart {
                index: 0,
                kind: BlockKind::Thinking,
            },
            StreamEvent::ThinkingDelta {
                index: 0,
                text: "hmm".into(),
            },
            StreamEvent::SignatureDelta {
                index: 0,
                signature: "sig".into(),
            },
            StreamEvent::BlockStop { index: 0 },
            StreamEvent::BlockStart {
                index: 1,
                kind: BlockKind::Text,
            },
            StreamEvent::TextDelta {
                index: 1,
                text: "Hel".into(),
            },
            StreamEvent::TextDelta {
                index: 1,
                text: "lo".into(),
            },
            StreamEvent::BlockStop { index: 1 },
            StreamEvent::BlockStart {
                index: 2,
                kind: BlockKind::ToolUse {
                    id: "toolu_1".into(),
                    name: "bash".into(),
                },
            },
            StreamEvent::ToolInputDelta {
                index: 2,
                partial_json: "{\"command\":".into(),
            },
            StreamEvent::ToolInputDelta {
                index: 2,
                partial_json: "\"ls\"}".into(),
            },
            StreamEvent::BlockStop { index: 2 },
            StreamEvent::Finished {
                stop_reason: StopReason::ToolUse,
                usage: Usage {
                    input_tokens: 10,
                    output_tokens: 7,
                    ..Default::default()
                },
            },
        ];
        for e in &events {
            acc.push(e).unwrap();
        }
        assert!(acc.is_finished());
        let c = acc.finish().unwrap();
        assert_eq!(c.message_id, "msg_1");
        assert_eq!(c.stop_reason, StopReason::ToolUse);
        assert_eq!(c.usage.output_tokens, 7);
        assert_eq!(
            c.message.content,
            vec![
                Block::Thinking {
                    thinking: "hmm".into(),
                    signature: "sig".into()
                },
                Block::text("Hello"),
                Block::ToolUse {
                    id: "toolu_1".into(),
                    name: "bash".into(),
                    input: json!({"command": "ls"})
                },
            ]
        );
    }

    #[test]
    fn partial_keeps_text_and_complete_tools_only() {
        let mut acc = Accumulator::new();
        start(&mut acc);
        for e in [
            StreamEvent::BlockStart {
                index: 0,
                kind: BlockKind::Text,
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "Let me look".into(),
            },
            StreamEvent::BlockStop { index: 0 },
            StreamEvent::BlockStart {
                index: 1,
                kind: BlockKind::ToolUse {
                    id: "a".into(),
                    name: "read".into(),
                },
            },
            StreamEvent::BlockStop { index: 1 },
            StreamEvent::BlockStart {
                index: 2,
                kind: BlockKind::ToolUse {
                    id: "b".into(),
                    name: "bash".into(),
                },
            },
            StreamEvent::ToolInputDelta {
                index: 2,
                partial_json: "{\"comm".into(),
            },
            StreamEvent::BlockStart {
                index: 3,
                kind: BlockKind::Thinking,
            },
        ] {
            acc.push(&e).unwrap();
        }
        let p = acc.partial();
        assert_eq!(p.role, Role::Assistant);
        assert_eq!(
            p.content,
            vec![
                Block::text("Let me look"),
                Block::ToolUse {
                    id: "a".into(),
                    name: "read".into(),
                    input: json!({})
                }
            ]
        );
        assert!(!acc.is_finished());
        let err = acc.finish().unwrap_err();
        assert!(err.retryable());
    }

    #[test]
    fn rejects_inconsistent_streams() {
        let mut acc = Accumulator::new();
        start(&mut acc);
        assert!(
            acc.push(&StreamEvent::TextDelta {
                index: 0,
                text: "x".into()
            })
            .is_err()
        );
        acc.push(&StreamEvent::BlockStart {
            index: 0,
            kind: BlockKind::Text,
        })
        .unwrap();
        assert!(
            acc.push(&StreamEvent::ToolInputDelta {
                index: 0,
                partial_json: "{".into()
            })
            .is_err()
        );
        acc.push(&StreamEvent::BlockStop { index: 0 }).unwrap();
        assert!(
            acc.push(&StreamEvent::TextDelta {
                index: 0,
                text: "late".into()
            })
            .is_err()
        );
        assert!(
            acc.push(&StreamEvent::BlockStart {
                index: 0,
                kind: BlockKind::Text
            })
            .is_err()
        );
    }

    #[test]
    fn tool_input_parsing() {
        assert_eq!(parse_tool_input(""), json!({}));
        assert_eq!(parse_tool_input("{\"a\":1}"), json!({"a": 1}));
        assert_eq!(parse_tool_input("{\"a\":"), json!("{\"a\":"));
    }

    #[test]
    fn redacted_thinking_is_kept() {
        let mut acc = Accumulator::new();
        start(&mut acc);
        acc.push(&StreamEvent::BlockStart {
            index: 0,
            kind: BlockKind::RedactedThinking {
                data: "opaque".into(),
            },
        })
        .unwrap();
        assert_eq!(
            acc.partial().content,
            vec![Block::RedactedThinking {
                data: "opaque".into()
            }]
        );
    }
}
