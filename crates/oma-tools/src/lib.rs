//! The model-facing side of the built-in toolset `agent_toolset_20260401`.
//!
//! - [`builtin::definitions`]: the tools offered to the model for an agent's toolset config
//!   (descriptions, input schemas, permission policies).
//! - [`parse_call`] / [`parse`]: a model's `tool_use` input turned into a validated call. Bad
//!   input is an `Err(message)` that the runtime returns to the model as an error tool result,
//!   never a crash.
//! - [`Toolbox`]: runs a call: sandbox tools through an [`oma_sandbox::Sandbox`], `web_fetch`
//!   and `web_search` on the host ([`web_fetch`], [`web_search`]).
//! - [`is_idempotent`]: whether a call interrupted by a crash may simply be run again.
//! - [`content_blocks`]: a [`ToolOutcome`] as the API's tool-result content blocks.

pub mod builtin;
mod html;
pub mod web_fetch;
pub mod web_search;

use oma_api::agents::AgentToolset;
use oma_api::json::kind_of;
use oma_sandbox::{OutputBlock, Sandbox, SandboxError, ToolCall, ToolOutcome};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

pub use builtin::{ToolDef, definitions};
pub use web_fetch::{WebFetchClient, WebFetchOptions, WebFetchSettings};
pub use web_search::{SearchProvider, WebSearchClient, WebSearchOptions, WebSearchSettings};

/// A validated built-in tool call: one for the sandbox, or one the host runs itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuiltinCall {
    Sandbox(ToolCall),
    WebFetch { url: String },
    WebSearch { query: String },
}

/// Whether the tool runs on the host rather than in the sandbox.
pub fn runs_on_host(name: &str) -> bool {
    matches!(name, "web_fetch" | "web_search")
}

/// Whether a call of this tool that was interrupted (the server crashed before its result was
/// recorded) may be run again: it changes nothing. Unknown tools are not.
pub fn is_idempotent(name: &str) -> bool {
    matches!(name, "read" | "glob" | "grep" | "web_fetch" | "web_search")
}

/// Validates the input of a sandbox tool (`bash`, `read`, `write`, `edit`, `glob`, `grep`).
/// `web_fetch` is not a sandbox tool: use [`parse`] for every built-in tool.
pub fn parse_call(name: &str, input: &Value) -> Result<ToolCall, String> {
    match parse(name, input)? {
        BuiltinCall::Sandbox(call) => Ok(call),
        BuiltinCall::WebFetch { .. } | BuiltinCall::WebSearch { .. } => {
            Err(format!("{name} runs on the host, not in the sandbox"))
        }
    }
}

/// Validates the input of any built-in tool oma implements.
pub fn parse(name: &str, input: &Value) -> Result<BuiltinCall, String> {
    let Some(obj) = input.as_object() else {
        return Err(format!(
            "invalid input for {name}: expected a JSON object, got {}",
            kind_of(input)
        ));
    };
    let f = Fields { tool: name, obj };
    let call = match name {
        "bash" => {
            let command = f.opt_string("command")?;
            let restart = f.opt_bool("restart")?.unwrap_or(false);
            let timeout_ms = f.opt_u64("timeout_ms")?;
            if command.as_deref().is_none_or(|c| c.trim().is_empty()) && !restart {
                return Err(
                    "invalid input for bash: `command` is required (or set `restart` to true to restart the shell)"
                        .to_string(),
                );
            }
            ToolCall::Bash {
                command,
                restart,
                timeout_ms,
            }
        }
        "read" => ToolCall::Read {
            file_path: f.path("file_path")?,
            view_range: f.view_range()?,
        },
        "write" => ToolCall::Write {
            file_path: f.path("file_path")?,
            content: f.string("content")?,
        },
        "edit" => ToolCall::Edit {
            file_path: f.path("file_path")?,
            old_string: f.string("old_string")?,
            new_string: f.string("new_string")?,
            replace_all: f.opt_bool("replace_all")?.unwrap_or(false),
        },
        "glob" => ToolCall::Glob {
            pattern: f.non_empty("pattern")?,
            path: f.opt_path("path")?,
        },
        "grep" => ToolCall::Grep {
            pattern: f.non_empty("pattern")?,
            path: f.opt_path("path")?,
        },
        "web_fetch" => {
            return Ok(BuiltinCall::WebFetch {
                url: f.non_empty("url")?,
            });
        }
        "web_search" => {
            let query = f.string("query")?;
            let query = web_search::validate_query(&query)?.to_string();
            return Ok(BuiltinCall::WebSearch { query });
        }
        other => return Err(format!("unknown built-in tool `{other}`")),
    };
    Ok(BuiltinCall::Sandbox(call))
}

/// Field access with messages that name the tool and the field.
struct Fields<'a> {
    tool: &'a str,
    obj: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn err(&self, field: &str, what: impl std::fmt::Display) -> String {
        format!("invalid input for {}: `{field}` {what}", self.tool)
    }

    /// A present, non-null value.
    fn get(&self, field: &str) -> Option<&Value> {
        self.obj.get(field).filter(|v| !v.is_null())
    }

    fn string(&self, field: &str) -> Result<String, String> {
        match self.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => {
                Err(self.err(field, format!("must be a string, got {}", kind_of(other))))
            }
            None => Err(self.err(field, "is required")),
        }
    }

    fn non_empty(&self, field: &str) -> Result<String, String> {
        let s = self.string(field)?;
        if s.trim().is_empty() {
            return Err(self.err(field, "must not be empty"));
        }
        Ok(s)
    }

    fn path(&self, field: &str) -> Result<String, String> {
        let s = self.non_empty(field)?;
        if s.contains('\0') {
            return Err(self.err(field, "must not contain a NUL character"));
        }
        Ok(s)
    }

    fn opt_string(&self, field: &str) -> Result<Option<String>, String> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => {
                Err(self.err(field, format!("must be a string, got {}", kind_of(other))))
            }
        }
    }

    fn opt_path(&self, field: &str) -> Result<Option<String>, String> {
        match self.opt_string(field)? {
            // An empty path means the default, as when it is left out.
            Some(s) if s.trim().is_empty() => Ok(None),
            Some(s) if s.contains('\0') => Err(self.err(field, "must not contain a NUL character")),
            other => Ok(other),
        }
    }

    fn opt_bool(&self, field: &str) -> Result<Option<bool>, String> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.err(
                field,
                format!("must be true or false, got {}", kind_of(other)),
            )),
        }
    }

    fn opt_u64(&self, field: &str) -> Result<Option<u64>, String> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => as_integer(v)
                .and_then(|n| u64::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| self.err(field, format!("must be a non-negative integer, got {v}"))),
        }
    }

    fn view_range(&self) -> Result<Option<[i64; 2]>, String> {
        let Some(v) = self.get("view_range") else {
            return Ok(None);
        };
        let items = v.as_array().filter(|a| a.len() == 2).ok_or_else(|| {
            self.err(
                "view_range",
                format!("must be an array of two integers [start_line, end_line], got {v}"),
            )
        })?;
        let start = as_integer(&items[0]);
        let end = as_integer(&items[1]);
        match (start, end) {
            (Some(start), Some(end)) => {
                if start < 1 {
                    return Err(self.err("view_range", "starts at line 1 at the earliest"));
                }
                if end > 0 && end < start {
                    return Err(self.err(
                        "view_range",
                        format!("[{start}, {end}] ends before it starts (use -1 for the end of the file)"),
                    ));
                }
                Ok(Some([start, end]))
            }
            _ => Err(self.err("view_range", format!("must hold two integers, got {v}"))),
        }
    }
}

/// An integer, also when sent as a float without a fraction (`5000.0`), as models sometimes do.
fn as_integer(v: &Value) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

/// The outcome as tool-result content blocks of the API (`text`, `image` and `document`
/// blocks with base64 sources), for `agent.tool_result` events and the model request.
pub fn content_blocks(outcome: &ToolOutcome) -> Vec<Value> {
    outcome
        .content
        .iter()
        .map(|b| match b {
            OutputBlock::Text { text } => json!({"type": "text", "text": text}),
            OutputBlock::Image {
                media_type,
                data_base64,
            } => json!({
                "type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data_base64},
            }),
            OutputBlock::Document {
                media_type,
                data_base64,
            } => json!({
                "type": "document",
                "source": {"type": "base64", "media_type": media_type, "data": data_base64},
            }),
        })
        .collect()
}

/// What a host-side tool call produced, with what it costs (see [`Toolbox::run_host`]).
#[derive(Debug, Clone)]
pub struct HostOutcome {
    pub outcome: ToolOutcome,
    /// Searches the backend answered (0 or 1): `server_tool_use.web_search_requests`.
    pub web_search_requests: u64,
}

impl From<ToolOutcome> for HostOutcome {
    fn from(outcome: ToolOutcome) -> Self {
        HostOutcome {
            outcome,
            web_search_requests: 0,
        }
    }
}

/// Runs built-in tool calls for one agent: definitions and web settings come from its
/// toolset config; sandbox tools go to the session's box.
#[derive(Clone)]
pub struct Toolbox {
    definitions: Vec<ToolDef>,
    web: WebFetchClient,
    web_settings: WebFetchSettings,
    search: Option<WebSearchClient>,
    search_settings: WebSearchSettings,
    /// The `web_search` definition when the toolset enables it, offered once a backend is set.
    search_definition: Option<ToolDef>,
}

impl Toolbox {
    /// `web` is shared by the whole server (one HTTP client). Without
    /// [`with_search`](Toolbox::with_search) `web_search` is not offered.
    pub fn new(toolset: &AgentToolset, web: WebFetchClient) -> Self {
        let (search_definition, definitions): (Vec<ToolDef>, Vec<ToolDef>) =
            builtin::definitions_with(toolset, true)
                .into_iter()
                .partition(|d| d.name == "web_search");
        Toolbox {
            definitions,
            web_settings: WebFetchSettings::from_config(builtin::web_fetch_config(toolset)),
            web,
            search: None,
            search_settings: WebSearchSettings::from_config(builtin::web_search_config(toolset)),
            search_definition: search_definition.into_iter().next(),
        }
    }

    /// The operator's search backend: with one, `web_search` is offered when the toolset
    /// enables it; without one (`None`) it never is.
    pub fn with_search(mut self, search: Option<WebSearchClient>) -> Self {
        self.definitions.retain(|d| d.name != "web_search");
        if search.is_some()
            && let Some(def) = &self.search_definition
        {
            // Last in the offered order, as in [`builtin::OFFERED`].
            self.definitions.push(def.clone());
        }
        self.search = search;
        self
    }

    /// Narrows web access further (a coordinator's rules over a roster member's).
    pub fn with_web_settings(mut self, settings: WebFetchSettings) -> Self {
        self.web_settings = settings;
        self
    }

    pub fn definitions(&self) -> &[ToolDef] {
        &self.definitions
    }

    /// The definition of an enabled tool.
    pub fn definition(&self, name: &str) -> Option<&ToolDef> {
        self.definitions.iter().find(|d| d.name == name)
    }

    /// Runs one call. A disabled or unknown tool, or invalid input, is an error outcome for
    /// the model; `Err` is reserved for the box failing or the call being cancelled.
    pub async fn run(
        &self,
        name: &str,
        input: &Value,
        sandbox: &dyn Sandbox,
        cancel: CancellationToken,
    ) -> Result<ToolOutcome, SandboxError> {
        if self.definition(name).is_none() {
            return Ok(ToolOutcome::error(format!(
                "the tool `{name}` is not enabled for this agent"
            )));
        }
        match parse(name, input) {
            Err(msg) => Ok(ToolOutcome::error(msg)),
            Ok(BuiltinCall::Sandbox(call)) => sandbox.call(call, cancel).await,
            Ok(host_call) => self
                .run_host_call(host_call, &cancel)
                .await
                .map(|h| h.outcome)
                .ok_or(SandboxError::Cancelled),
        }
    }

    /// Runs a tool that needs no sandbox (see [`runs_on_host`]), so no box has to exist for
    /// it (a self-hosted session has none). `None` when cancelled.
    pub async fn run_on_host(
        &self,
        name: &str,
        input: &Value,
        cancel: CancellationToken,
    ) -> Option<ToolOutcome> {
        self.run_host(name, input, cancel).await.map(|h| h.outcome)
    }

    /// [`run_on_host`](Toolbox::run_on_host), also saying what the call costs (searches).
    pub async fn run_host(
        &self,
        name: &str,
        input: &Value,
        cancel: CancellationToken,
    ) -> Option<HostOutcome> {
        if self.definition(name).is_none() {
            return Some(
                ToolOutcome::error(format!("the tool `{name}` is not enabled for this agent"))
                    .into(),
            );
        }
        match parse(name, input) {
            Err(msg) => Some(ToolOutcome::error(msg).into()),
            Ok(BuiltinCall::Sandbox(_)) => Some(
                ToolOutcome::error(format!(
                    "the tool `{name}` runs in the session's sandbox, not on the host"
                ))
                .into(),
            ),
            Ok(host_call) => self.run_host_call(host_call, &cancel).await,
        }
    }

    async fn run_host_call(
        &self,
        call: BuiltinCall,
        cancel: &CancellationToken,
    ) -> Option<HostOutcome> {
        match call {
            BuiltinCall::Sandbox(_) => Some(
                ToolOutcome::error("this tool runs in the session's sandbox, not on the host")
                    .into(),
            ),
            BuiltinCall::WebFetch { url } => self
                .web
                .fetch(&url, &self.web_settings, cancel)
                .await
                .map(HostOutcome::from),
            BuiltinCall::WebSearch { query } => {
                let Some(search) = &self.search else {
                    return Some(
                        ToolOutcome::error("web_search has no search backend on this server")
                            .into(),
                    );
                };
                let run = search.search(&query, &self.search_settings, cancel).await?;
                Some(HostOutcome {
                    outcome: run.outcome,
                    web_search_requests: u64::from(run.executed),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_validated_with_clear_messages() {
        assert_eq!(
            parse_call("bash", &json!({"command": "ls", "timeout_ms": 5000.0})).unwrap(),
            ToolCall::Bash {
                command: Some("ls".into()),
                restart: false,
                timeout_ms: Some(5000)
            }
        );
        assert_eq!(
            parse_call("bash", &json!({"restart": true})).unwrap(),
            ToolCall::Bash {
                command: None,
                restart: true,
                timeout_ms: None
            }
        );
        let e = parse_call("bash", &json!({})).unwrap_err();
        assert!(e.contains("`command` is required"), "{e}");
        let e = parse_call("bash", &json!({"command": "x", "timeout_ms": -1})).unwrap_err();
        assert!(e.contains("non-negative integer"), "{e}");

        assert_eq!(
            parse_call("read", &json!({"file_path": "a", "view_range": [2, -1]})).unwrap(),
            ToolCall::Read {
                file_path: "a".into(),
                view_range: Some([2, -1])
            }
        );
        assert_eq!(
            parse_call("read", &json!({"file_path": "a", "view_range": null})).unwrap(),
            ToolCall::Read {
                file_path: "a".into(),
                view_range: None
            }
        );
        for bad in [
            json!([1]),
            json!([1, "x"]),
            json!("1-2"),
            json!([0, 3]),
            json!([5, 2]),
        ] {
            let e = parse_call("read", &json!({"file_path": "a", "view_range": bad})).unwrap_err();
            assert!(e.contains("view_range"), "{e}");
        }
        let e = parse_call("read", &json!({"path": "a"})).unwrap_err();
        assert_eq!(e, "invalid input for read: `file_path` is required");
        let e = parse_call("write", &json!({"file_path": "a", "content": 3})).unwrap_err();
        assert_eq!(
            e,
            "invalid input for write: `content` must be a string, got a number"
        );
        assert_eq!(
            parse_call(
                "edit",
                &json!({"file_path": "a", "old_string": "x", "new_string": ""})
            )
            .unwrap(),
            ToolCall::Edit {
                file_path: "a".into(),
                old_string: "x".into(),
                new_string: "".into(),
                replace_all: false
            }
        );
        assert_eq!(
            parse_call("glob", &json!({"pattern": "**/*.rs", "path": ""})).unwrap(),
            ToolCall::Glob {
                pattern: "**/*.rs".into(),
                path: None
            }
        );
        assert!(parse_call("grep", &json!({"pattern": ""})).is_err());
        assert!(parse_call("grep", &json!("pattern")).is_err());
        assert!(parse_call("nope", &json!({})).is_err());
        assert!(parse_call("web_fetch", &json!({"url": "https://x.org"})).is_err());
        assert_eq!(
            parse("web_fetch", &json!({"url": "https://x.org"})).unwrap(),
            BuiltinCall::WebFetch {
                url: "https://x.org".into()
            }
        );
        assert_eq!(
            parse("web_search", &json!({"query": " rust "})).unwrap(),
            BuiltinCall::WebSearch {
                query: "rust".into()
            }
        );
        assert!(parse_call("web_search", &json!({"query": "rust"})).is_err());
        let e = parse("web_search", &json!({})).unwrap_err();
        assert_eq!(e, "invalid input for web_search: `query` is required");
        let e = parse("web_search", &json!({"query": 5})).unwrap_err();
        assert!(e.contains("must be a string"), "{e}");
        let e = parse("web_search", &json!({"query": ""})).unwrap_err();
        assert!(e.contains("must not be empty"), "{e}");
        let e = parse("web_search", &json!({"query": "x".repeat(501)})).unwrap_err();
        assert!(e.starts_with("query_too_long") && e.contains("500"), "{e}");
    }

    #[test]
    fn idempotence_and_host_side_tools() {
        for t in ["read", "glob", "grep", "web_fetch", "web_search"] {
            assert!(is_idempotent(t), "{t}");
        }
        for t in ["bash", "write", "edit", "mystery"] {
            assert!(!is_idempotent(t), "{t}");
        }
        assert!(runs_on_host("web_fetch"));
        assert!(runs_on_host("web_search"));
        assert!(!runs_on_host("bash"));
    }

    #[test]
    fn outcomes_become_api_content_blocks() {
        let outcome = ToolOutcome {
            content: vec![
                OutputBlock::Text { text: "hi".into() },
                OutputBlock::Image {
                    media_type: "image/png".into(),
                    data_base64: "AAAA".into(),
                },
                OutputBlock::Document {
                    media_type: "application/pdf".into(),
                    data_base64: "BBBB".into(),
                },
            ],
            is_error: false,
        };
        assert_eq!(
            content_blocks(&outcome),
            vec![
                json!({"type": "text", "text": "hi"}),
                json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}),
                json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "BBBB"}}),
            ]
        );
    }
}
