//! [`McpClient`] over the legacy HTTP+SSE transport (protocol 2024-11-05), by hand: rmcp 3
//! removed its client for it.
//!
//! The client GETs the SSE URL and keeps that stream open; the server's first event
//! (`endpoint`) names the URL to POST JSON-RPC messages to, and its answers come back on the
//! stream as `message` events. A reader task routes them to the waiting requests by id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};
use reqwest::Url;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::http_errors::connect_error;
use crate::{CALL_TIMEOUT, DISCOVERY_TIMEOUT, McpClient, McpError, McpTool, ServerConfig};
use crate::{ToolOutput, content_blocks};
use oma_sse::{SseEvent as Event, SseParser as Parser};

const PROTOCOL_VERSION: &str = "2024-11-05";
/// A server whose `tools/list` pages never end is broken, not large.
const MAX_PAGES: usize = 1000;

type Reply = Result<Value, McpError>;

#[derive(Default)]
struct Pending {
    waiters: HashMap<u64, oneshot::Sender<Reply>>,
    /// Why the stream ended, once it has: later requests fail at once.
    closed: Option<String>,
}

/// What the client and its reader task share.
struct Shared {
    http: reqwest::Client,
    post_url: Url,
    bearer: Option<String>,
    pending: Mutex<Pending>,
}

struct SseClient {
    shared: Arc<Shared>,
    next_id: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for SseClient {
    fn drop(&mut self) {
        // The reader task holds the GET stream: ending it ends the MCP session.
        self.reader.abort();
    }
}

pub(crate) async fn connect(
    http: reqwest::Client,
    server: &ServerConfig,
) -> Result<Box<dyn McpClient>, McpError> {
    let mut get = http
        .get(server.url.as_str())
        .header(reqwest::header::ACCEPT, "text/event-stream");
    if let Some(token) = &server.bearer {
        get = get.bearer_auth(token);
    }
    let response = get
        .send()
        .await
        .map_err(|e| McpError::Connect(format!("SSE stream: {}", connect_error(&e))))?;
    let status = response.status().as_u16();
    if status == 401 || status == 403 {
        return Err(McpError::Auth { status });
    }
    if !response.status().is_success() {
        return Err(McpError::Connect(format!(
            "SSE stream: the server answered HTTP {status}"
        )));
    }
    let content_type = crate::http_errors::header(&response, "content-type");
    if !content_type.starts_with("text/event-stream") {
        return Err(McpError::Protocol(format!(
            "SSE stream: the server answered with `{content_type}`, not an event stream"
        )));
    }
    let base = response.url().clone();
    let mut stream = response.bytes_stream().boxed();
    let mut parser = Parser::new();
    let (endpoint, early) =
        tokio::time::timeout(DISCOVERY_TIMEOUT, endpoint_event(&mut stream, &mut parser))
            .await
            .map_err(|_| McpError::Timeout(DISCOVERY_TIMEOUT))??;
    let post_url = message_url(&base, &endpoint)?;
    let shared = Arc::new(Shared {
        http,
        post_url,
        bearer: server.bearer.clone(),
        pending: Mutex::default(),
    });
    let reader = tokio::spawn(read_loop(shared.clone(), stream, parser, early));
    let client = SseClient {
        shared,
        next_id: AtomicU64::new(1),
        reader,
    };
    let params = json!({
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "oma", "version": env!("CARGO_PKG_VERSION")},
    });
    let result = client.request("initialize", params).await?;
    let version = result.get("protocolVersion").and_then(Value::as_str);
    if version != Some(PROTOCOL_VERSION) {
        // Worth a note, not a failure: the calls we make read the same in later versions.
        tracing::debug!(
            ?version,
            "legacy MCP server answered another protocol version"
        );
    }
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    client
        .shared
        .post(&note, "notifications/initialized")
        .await?;
    Ok(Box::new(client))
}

/// Reads up to the `endpoint` event; returns its data and any events that came after it in
/// the same read.
async fn endpoint_event<B: AsRef<[u8]>>(
    stream: &mut (impl Stream<Item = reqwest::Result<B>> + Unpin),
    parser: &mut Parser,
) -> Result<(String, Vec<Event>), McpError> {
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| McpError::Connect(format!("SSE stream: {}", connect_error(&e))))?;
        let mut events = parser
            .push(chunk.as_ref())
            .map_err(|e| McpError::Protocol(format!("SSE stream: {e}")))?
            .into_iter();
        if let Some(endpoint) = events.by_ref().find(|e| e.event == "endpoint") {
            return Ok((endpoint.data, events.collect()));
        }
    }
    Err(McpError::Connect(
        "SSE stream: the server closed the stream before naming its message endpoint".into(),
    ))
}

/// The URL to POST messages to, resolved against the SSE URL; it must be on the same origin
/// (scheme, host, port), or the credential would follow it to another host.
fn message_url(base: &Url, endpoint: &str) -> Result<Url, McpError> {
    let url = base.join(endpoint.trim()).map_err(|e| {
        McpError::Protocol(format!(
            "SSE stream: the message endpoint `{endpoint}` is not a URL: {e}"
        ))
    })?;
    if url.origin() != base.origin() {
        return Err(McpError::Protocol(format!(
            "SSE stream: the server named a message endpoint on another origin ({}); refused, \
             requests to it would carry the credential to another host",
            url.origin().ascii_serialization()
        )));
    }
    Ok(url)
}

async fn read_loop<B: AsRef<[u8]>>(
    shared: Arc<Shared>,
    mut stream: impl Stream<Item = reqwest::Result<B>> + Unpin,
    mut parser: Parser,
    early: Vec<Event>,
) {
    for event in early {
        shared.handle(event);
    }
    let why = loop {
        match stream.next().await {
            Some(Ok(chunk)) => match parser.push(chunk.as_ref()) {
                Ok(events) => events.into_iter().for_each(|e| shared.handle(e)),
                Err(e) => break format!("the SSE stream is not readable: {e}"),
            },
            Some(Err(e)) => break format!("the SSE stream broke: {}", connect_error(&e)),
            None => break "the server closed the SSE stream".to_string(),
        }
    };
    let mut pending = shared.lock();
    pending.closed = Some(why.clone());
    for (_, waiter) in pending.waiters.drain() {
        let _ = waiter.send(Err(McpError::Connect(why.clone())));
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves the map consistent (inserts and removals only).
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One `message` event: answers go to their waiter, a server `ping` is answered, other
    /// server requests are refused, notifications are ignored.
    fn handle(self: &Arc<Self>, event: Event) {
        // An event without a name is a `message` (the event-stream default).
        if !matches!(event.event.as_str(), "" | "message") {
            return;
        }
        let messages = match serde_json::from_str::<Value>(&event.data) {
            Ok(Value::Array(batch)) => batch,
            Ok(one) => vec![one],
            Err(e) => {
                tracing::debug!("legacy MCP server sent a message that is not JSON: {e}");
                return;
            }
        };
        for message in messages {
            self.route(message);
        }
    }

    fn route(self: &Arc<Self>, message: Value) {
        let id = message.get("id").cloned().unwrap_or(Value::Null);
        match message.get("method").and_then(Value::as_str) {
            Some(_) if id.is_null() => {}
            Some(method) => {
                let reply = if method == "ping" {
                    json!({"jsonrpc": "2.0", "id": id, "result": {}})
                } else {
                    json!({"jsonrpc": "2.0", "id": id, "error": {
                        "code": -32601, "message": format!("method `{method}` is not supported"),
                    }})
                };
                let shared = self.clone();
                // Not awaited here: the reader must keep reading while the reply is sent.
                tokio::spawn(async move {
                    if let Err(e) = shared.post(&reply, "reply to the server").await {
                        tracing::debug!("legacy MCP reply failed: {e}");
                    }
                });
            }
            None => {
                let waiter = id.as_u64().and_then(|id| self.lock().waiters.remove(&id));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(Ok(message));
                }
            }
        }
    }

    /// POSTs one JSON-RPC message to the message endpoint.
    async fn post(&self, message: &Value, step: &str) -> Result<(), McpError> {
        let mut req = self
            .http
            .post(self.post_url.clone())
            .timeout(CALL_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(message.to_string());
        if let Some(token) = &self.bearer {
            req = req.bearer_auth(token);
        }
        let response = req
            .send()
            .await
            .map_err(|e| McpError::Connect(format!("{step}: {}", connect_error(&e))))?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(McpError::Auth { status });
        }
        if !response.status().is_success() {
            return Err(McpError::Connect(format!(
                "{step}: the server answered HTTP {status}"
            )));
        }
        // The answer comes on the stream; the body is only "Accepted".
        Ok(())
    }
}

/// Removes a request's waiter however the request ends (answer, error, timeout, or the
/// caller dropping the future).
struct Forget<'a>(&'a Shared, u64);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.lock().waiters.remove(&self.1);
    }
}

impl SseClient {
    /// Sends a request and waits for its answer's `result`.
    async fn request(&self, method: &str, params: Value) -> Result<Value, McpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.shared.lock();
            if let Some(why) = &pending.closed {
                return Err(McpError::Connect(format!("{method}: {why}")));
            }
            pending.waiters.insert(id, tx);
        }
        let _forget = Forget(&self.shared, id);
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let work = async {
            self.shared.post(&message, method).await?;
            match rx.await {
                Ok(reply) => reply,
                Err(_) => Err(McpError::Connect(format!(
                    "{method}: the connection closed"
                ))),
            }
        };
        let reply = tokio::time::timeout(CALL_TIMEOUT, work)
            .await
            .map_err(|_| McpError::Timeout(CALL_TIMEOUT))??;
        if let Some(err) = reply.get("error") {
            let text = err.get("message").and_then(Value::as_str).unwrap_or("?");
            let code = err.get("code").and_then(Value::as_i64).unwrap_or_default();
            return Err(McpError::Protocol(format!(
                "{method}: the server answered with an error: {text} ({code})"
            )));
        }
        reply
            .get("result")
            .cloned()
            .ok_or_else(|| McpError::Protocol(format!("{method}: an answer without a result")))
    }
}

impl McpClient for SseClient {
    fn list_tools(&self) -> BoxFuture<'_, Result<Vec<McpTool>, McpError>> {
        async move {
            let mut tools = Vec::new();
            let mut cursor: Option<String> = None;
            for _ in 0..MAX_PAGES {
                let params = match &cursor {
                    Some(c) => json!({"cursor": c}),
                    None => json!({}),
                };
                let page = self.request("tools/list", params).await?;
                let listed = page.get("tools").and_then(Value::as_array);
                tools.extend(listed.into_iter().flatten().filter_map(tool));
                match page.get("nextCursor").and_then(Value::as_str) {
                    Some(next) if !next.is_empty() => cursor = Some(next.to_string()),
                    _ => return Ok(tools),
                }
            }
            Err(McpError::Protocol(format!(
                "tools/list: more than {MAX_PAGES} pages"
            )))
        }
        .boxed()
    }

    fn call_tool<'a>(
        &'a self,
        name: &'a str,
        arguments: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, McpError>> {
        async move {
            let params = json!({"name": name, "arguments": arguments});
            let result = self.request("tools/call", params).await?;
            let content = result
                .get("content")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            Ok(ToolOutput {
                content: content_blocks(&content, result.get("structuredContent")),
                is_error: result
                    .get("isError")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            })
        }
        .boxed()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        // Dropping the client aborts the reader, which drops the stream.
        drop(self);
        async {}.boxed()
    }
}

/// A listed tool; entries without a name are skipped.
fn tool(t: &Value) -> Option<McpTool> {
    Some(McpTool {
        name: t.get("name")?.as_str()?.to_string(),
        description: t
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        input_schema: t
            .get("inputSchema")
            .filter(|s| s.is_object())
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"})),
        read_only: t
            .pointer("/annotations/readOnlyHint")
            .and_then(Value::as_bool)
            == Some(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_endpoint_stays_on_the_origin() {
        let base = Url::parse("https://mcp.example.com:8443/v1/sse").unwrap();
        let ok = |e: &str| message_url(&base, e).unwrap().to_string();
        assert_eq!(
            ok("/messages?session_id=1"),
            "https://mcp.example.com:8443/messages?session_id=1"
        );
        assert_eq!(ok("msg"), "https://mcp.example.com:8443/v1/msg");
        assert_eq!(
            ok("https://mcp.example.com:8443/m"),
            "https://mcp.example.com:8443/m"
        );
        for foreign in [
            "https://evil.example/messages",
            "http://mcp.example.com:8443/m",
            "https://mcp.example.com/m",
            "//evil.example/m",
        ] {
            assert!(
                matches!(message_url(&base, foreign), Err(McpError::Protocol(_))),
                "{foreign}"
            );
        }
    }
}
