//! MCP servers for agents.
//!
//! The runtime talks to an agent's MCP servers through [`McpClient`], our own small trait, so
//! the MCP SDK (rmcp, whose API changes between majors) stays inside `rmcp_client.rs`.
//!
//! Transports:
//! - streamable HTTP (rmcp), tried first by [`connect`];
//! - the legacy HTTP+SSE transport of protocol 2024-11-05 (`sse_client.rs`, by hand: rmcp 3
//!   removed its client), which [`connect`] falls back to when the streamable `initialize` gets
//!   HTTP 400, 404 or 405, as the spec's backwards-compatibility rules say; never after an
//!   authentication failure;
//! - newline-delimited JSON-RPC on a byte stream ([`connect_stream`], rmcp): a stdio server
//!   running inside the session's box, whose stdout and stdin the sandbox hands us.
//!
//! HTTP goes through [`HttpClient`], in the server always through the session's egress proxy
//! ([`HttpClient::through_proxy`]): the proxy applies the networking policy and adds the vault
//! credential (and refreshes it), so no secret passes through this crate in a session.
//!
//! Also here: [`probe`], a live `initialize` + `tools/list` that keeps the failing HTTP
//! response (for `mcp_oauth_validate`).

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

mod http_errors;
pub mod probe;
mod rmcp_client;
mod sse_client;

/// How long discovery (connect, `initialize`, `tools/list`) may take per server.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long one tool call may take before it is reported as failed.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// One MCP server to connect to.
#[derive(Clone)]
pub struct ServerConfig {
    /// The agent's name for the server (`mcp_servers[].name`).
    pub name: String,
    pub url: String,
    /// A bearer this client sends itself. The server leaves it `None`: the egress proxy adds
    /// the vault credential on the way out.
    pub bearer: Option<String>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The bearer is a secret: say whether there is one, never what it is.
        f.debug_struct("ServerConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A tool a server offers.
#[derive(Debug, Clone, PartialEq)]
pub struct McpTool {
    pub name: String,
    pub description: String,
    /// The tool's JSON schema for its arguments (an object schema).
    pub input_schema: Value,
    /// The server marks the tool read-only (`annotations.readOnlyHint`). A hint from the
    /// server the agent's author chose; the `auto` permission policy lets such tools run.
    pub read_only: bool,
}

/// What a tool call returned, as tool-result content blocks (`text`, `image`).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    pub content: Vec<Value>,
    pub is_error: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The server could not be reached, or the connection broke.
    #[error("{0}")]
    Connect(String),
    /// The server refused the credentials (HTTP 401 or 403).
    #[error("the MCP server refused the request's credentials (HTTP {status})")]
    Auth { status: u16 },
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
    /// The server answered, but not as MCP says it should (or with a JSON-RPC error).
    #[error("{0}")]
    Protocol(String),
}

impl McpError {
    pub fn is_auth(&self) -> bool {
        matches!(self, McpError::Auth { .. })
    }
}

/// A connected MCP server.
pub trait McpClient: Send + Sync {
    /// Every tool the server offers (all pages).
    fn list_tools(&self) -> BoxFuture<'_, Result<Vec<McpTool>, McpError>>;
    /// Calls `name` with `arguments` (a JSON object).
    fn call_tool<'a>(
        &'a self,
        name: &'a str,
        arguments: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, McpError>>;
    /// Ends the MCP session (best effort).
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
    /// Whether the connection can still carry calls, as far as the client knows without
    /// asking the server (a server process that exited cannot).
    fn is_alive(&self) -> bool {
        true
    }
}

/// The HTTP side of MCP traffic: no redirects (a credential must not follow one to another
/// host), bounded connect time. The server always goes through its egress proxy
/// ([`HttpClient::through_proxy`]), which decides where traffic may go and adds credentials;
/// [`HttpClient::direct`] is for tests and embedders on a network they trust.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
}

impl HttpClient {
    /// A client that connects directly, ignoring proxy settings, to any address.
    pub fn direct() -> Result<Self, McpError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("oma-mcp/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| McpError::Connect(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client })
    }

    /// A client that sends everything through the HTTP proxy at `proxy_url` (the session's
    /// egress proxy), authenticating to it with `Proxy-Authorization: Bearer <token>` and
    /// trusting `ca_pem` (the deployment CA the proxy signs with) besides the system roots.
    /// No redirects; where traffic may go is the proxy's decision.
    pub fn through_proxy(proxy_url: &str, token: &str, ca_pem: &str) -> Result<Self, McpError> {
        let auth = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| McpError::Connect(format!("the egress proxy token: {e}")))?;
        let proxy = reqwest::Proxy::all(proxy_url)
            .map_err(|e| McpError::Connect(format!("the egress proxy address {proxy_url}: {e}")))?
            .custom_http_auth(auth);
        // Parsed as a bundle: a single PEM certificate is not checked until first use, and
        // a bad CA must fail here rather than as every later TLS handshake.
        let roots = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes())
            .map_err(|e| McpError::Connect(format!("the egress proxy's CA: {e}")))?;
        if roots.is_empty() {
            return Err(McpError::Connect(
                "the egress proxy's CA: no PEM certificate".into(),
            ));
        }
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .proxy(proxy)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("oma-mcp/", env!("CARGO_PKG_VERSION")));
        for root in roots {
            b = b.add_root_certificate(root);
        }
        let client = b
            .build()
            .map_err(|e| McpError::Connect(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client })
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

/// Connects to a server over streamable HTTP, or, when the server answers that with HTTP 400,
/// 404 or 405, over the legacy HTTP+SSE transport at the same URL.
pub async fn connect(
    http: &HttpClient,
    server: &ServerConfig,
) -> Result<Box<dyn McpClient>, McpError> {
    let failed = match rmcp_client::connect(http.client().clone(), server).await {
        Ok(client) => return Ok(client),
        Err(failed) => failed,
    };
    if !matches!(failed.status, Some(400 | 404 | 405)) {
        return Err(failed.error);
    }
    tracing::debug!(server = %server.name, "streamable HTTP refused; trying legacy HTTP+SSE");
    sse_client::connect(http.client().clone(), server)
        .await
        .map_err(|e| match e {
            // Neither transport worked: say what each got.
            McpError::Connect(m) => McpError::Connect(format!(
                "{}; over the legacy HTTP+SSE transport: {m}",
                failed.error
            )),
            other => other,
        })
}

/// Connects to a server speaking newline-delimited JSON-RPC on a byte stream: a stdio server,
/// `reader` its stdout and `writer` its stdin. Not bounded in time: callers wrap it (as
/// [`discover`] does).
pub async fn connect_stream<R, W>(
    name: &str,
    reader: R,
    writer: W,
) -> Result<Box<dyn McpClient>, McpError>
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
    W: tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    tracing::debug!(server = %name, "connecting to a stdio MCP server");
    rmcp_client::connect_stream(reader, writer).await
}

/// A server after discovery: its client and tools, or why it is unusable.
pub struct Discovered {
    pub name: String,
    pub result: Result<(Box<dyn McpClient>, Vec<McpTool>), McpError>,
}

/// Connects to every server and lists its tools, all at once, each bounded by `timeout`: a
/// slow or failing server never holds up the others.
pub async fn discover(
    http: &HttpClient,
    servers: Vec<ServerConfig>,
    timeout: Duration,
) -> Vec<Discovered> {
    let tasks = servers.into_iter().map(|server| async move {
        let work = async {
            let client = connect(http, &server).await?;
            match client.list_tools().await {
                Ok(tools) => Ok((client, tools)),
                Err(e) => {
                    client.close().await;
                    Err(e)
                }
            }
        };
        let result = match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(McpError::Timeout(timeout)),
        };
        Discovered {
            name: server.name,
            result,
        }
    });
    futures::future::join_all(tasks).await
}

/// The name a model sees for an MCP tool: `mcp__<server>__<tool>`, with characters the model
/// APIs do not accept in tool names replaced by `_`, at most 128 characters.
pub fn exposed_name(server: &str, tool: &str) -> String {
    let raw = format!("mcp__{server}__{tool}");
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect()
}

/// At most this many characters of text from one tool call reach the model (spec: outputs
/// above about 100,000 characters are cut, with a note).
pub const MAX_OUTPUT_CHARS: usize = 100_000;

/// MCP content blocks as tool-result content: text and images pass through; embedded
/// resources give their text; anything else is described in a line of text. Text beyond
/// [`MAX_OUTPUT_CHARS`] in total is cut, with a note saying so.
pub fn content_blocks(content: &[Value], structured: Option<&Value>) -> Vec<Value> {
    let mut out: Vec<Value> = content.iter().map(content_block).collect();
    if out.is_empty()
        && let Some(s) = structured
    {
        out.push(serde_json::json!({"type": "text", "text": s.to_string()}));
    }
    let mut budget = MAX_OUTPUT_CHARS;
    let mut cut = 0usize;
    for block in &mut out {
        let Some(text) = block.get("text").and_then(Value::as_str) else {
            continue;
        };
        let n = text.chars().count();
        if n <= budget {
            budget -= n;
            continue;
        }
        let kept: String = text.chars().take(budget).collect();
        cut += n - budget;
        budget = 0;
        block["text"] = Value::String(kept);
    }
    if cut > 0 {
        out.retain(|b| b.get("text").and_then(Value::as_str) != Some(""));
        out.push(serde_json::json!({"type": "text", "text": format!(
            "[output truncated: {cut} more characters were left out]"
        )}));
    }
    out
}

fn content_block(block: &Value) -> Value {
    let s = |k: &str| block.get(k).and_then(Value::as_str).unwrap_or_default();
    let text = |t: String| serde_json::json!({"type": "text", "text": t});
    match s("type") {
        "text" => text(s("text").to_string()),
        "image" => serde_json::json!({
            "type": "image",
            "source": {"type": "base64", "media_type": s("mimeType"), "data": s("data")},
        }),
        "resource" => {
            let r = block.get("resource").cloned().unwrap_or(Value::Null);
            match r.get("text").and_then(Value::as_str) {
                Some(t) => text(t.to_string()),
                None => text(format!(
                    "[binary resource {} ({})]",
                    r.get("uri").and_then(Value::as_str).unwrap_or("?"),
                    r.get("mimeType").and_then(Value::as_str).unwrap_or("?")
                )),
            }
        }
        "resource_link" => text(format!("[resource link: {}]", s("uri"))),
        "audio" => text(format!("[audio content ({}) not shown]", s("mimeType"))),
        other => text(format!("[unsupported MCP content type `{other}`]")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exposed_names_are_valid_tool_names() {
        assert_eq!(exposed_name("gh", "create_issue"), "mcp__gh__create_issue");
        assert_eq!(exposed_name("my server", "a.b"), "mcp__my_server__a_b");
        assert_eq!(exposed_name(&"x".repeat(300), "t").len(), 128);
    }

    #[test]
    fn content_maps_to_tool_result_blocks() {
        let blocks = content_blocks(
            &[
                json!({"type": "text", "text": "hi"}),
                json!({"type": "image", "data": "AAAA", "mimeType": "image/png"}),
                json!({"type": "resource", "resource": {"uri": "file:///a", "text": "body"}}),
            ],
            None,
        );
        assert_eq!(blocks[0], json!({"type": "text", "text": "hi"}));
        assert_eq!(blocks[1]["source"]["media_type"], "image/png");
        assert_eq!(blocks[2]["text"], "body");
        let structured = content_blocks(&[], Some(&json!({"n": 1})));
        assert_eq!(structured[0]["text"], "{\"n\":1}");
        let big = "x".repeat(MAX_OUTPUT_CHARS + 10);
        let cut = content_blocks(
            &[
                json!({"type": "text", "text": big}),
                json!({"type": "text", "text": "more"}),
            ],
            None,
        );
        assert_eq!(cut[0]["text"].as_str().unwrap().len(), MAX_OUTPUT_CHARS);
        assert_eq!(cut.len(), 2);
        assert!(
            cut[1]["text"]
                .as_str()
                .unwrap()
                .contains("14 more characters")
        );
    }
}
