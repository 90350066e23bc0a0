//! A real MCP server (rmcp, streamable HTTP) on loopback for tests: tools `echo` and `add`,
//! an optional required bearer token (401 otherwise), and a record of the `Authorization`
//! headers and tool calls it received.
//!
//! Also [`FakeLegacyMcp`], the same tools on the legacy HTTP+SSE transport, and
//! [`FakeStreamMcp`], the same tools over a byte stream (a stdio server).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{MaybeSendFuture, RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler};
use serde_json::{Value, json};

#[derive(Default)]
struct Seen {
    authorizations: Vec<Option<String>>,
    calls: Vec<(String, Value)>,
}

/// The running server. Dropping it stops it.
pub struct FakeMcp {
    /// The MCP endpoint, `http://127.0.0.1:<port>/mcp`.
    pub url: String,
    seen: Arc<Mutex<Seen>>,
    required: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeMcp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeMcp {
    /// Starts a server that accepts anyone.
    pub async fn start() -> FakeMcp {
        Self::start_requiring(None).await
    }

    /// Starts a server that answers 401 unless `Authorization: Bearer <token>` is sent.
    pub async fn start_requiring(token: Option<&str>) -> FakeMcp {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let required = Arc::new(Mutex::new(token.map(str::to_string).into_iter().collect()));
        let handler_seen = seen.clone();
        let service = StreamableHttpService::new(
            move || {
                Ok(Tools {
                    seen: handler_seen.clone(),
                })
            },
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default(),
        );
        let gate = Gate {
            seen: seen.clone(),
            required: required.clone(),
        };
        let app = Router::new()
            .nest_service("/mcp", service)
            .layer(middleware::from_fn_with_state(gate, check_auth));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeMcp {
            url: format!("http://{addr}/mcp"),
            seen,
            required,
            task,
        }
    }

    /// Every `Authorization` header value received (`None` for requests without one).
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.seen.lock().unwrap().authorizations.clone()
    }

    /// The tool calls received: `(tool, arguments)`.
    pub fn calls(&self) -> Vec<(String, Value)> {
        self.seen.lock().unwrap().calls.clone()
    }

    /// Changes the token the server requires (a rotation at the authorization server).
    pub fn require(&self, token: Option<&str>) {
        *self.required.lock().unwrap() = token.map(str::to_string).into_iter().collect();
    }

    /// Accepts any of `tokens` (none: anyone).
    pub fn require_any(&self, tokens: &[&str]) {
        *self.required.lock().unwrap() = tokens.iter().map(|t| t.to_string()).collect();
    }
}

#[derive(Clone)]
struct Gate {
    seen: Arc<Mutex<Seen>>,
    required: Arc<Mutex<Vec<String>>>,
}

async fn check_auth(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    gate.seen.lock().unwrap().authorizations.push(auth.clone());
    let required = gate.required.lock().unwrap().clone();
    let presented = auth.as_deref().and_then(|a| a.strip_prefix("Bearer "));
    if !required.is_empty() && !presented.is_some_and(|p| required.iter().any(|t| t == p)) {
        let mut r = (StatusCode::UNAUTHORIZED, "unauthorized").into_response();
        r.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        return r;
    }
    next.run(req).await
}

#[derive(Clone)]
struct Tools {
    seen: Arc<Mutex<Seen>>,
}

/// The tools every fake offers: `echo` and `add`.
fn fake_tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "echo",
            "Echoes its text back.",
            schema(
                json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
            ),
        ),
        Tool::new(
            "add",
            "Adds two numbers.",
            schema(
                json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}),
            ),
        ),
    ]
}

/// What a fake's tool `name` answers to `args`.
fn tool_answer(name: &str, args: &Value) -> Result<CallToolResult, ErrorData> {
    match name {
        "echo" => Ok(CallToolResult::success(vec![ContentBlock::text(format!(
            "echo: {}",
            args["text"].as_str().unwrap_or_default()
        ))])),
        "add" => {
            let n = args["a"].as_f64().unwrap_or(0.0) + args["b"].as_f64().unwrap_or(0.0);
            Ok(CallToolResult::success(vec![ContentBlock::text(
                n.to_string(),
            )]))
        }
        other => Err(ErrorData::invalid_params(
            format!("no tool `{other}`"),
            None,
        )),
    }
}

fn schema(v: Value) -> Arc<serde_json::Map<String, Value>> {
    Arc::new(v.as_object().cloned().unwrap_or_default())
}

impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListToolsResult, ErrorData>> + MaybeSendFuture + '_ {
        let tools = fake_tools();
        std::future::ready(Ok(ListToolsResult::with_all_items(tools)))
    }

    fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CallToolResponse, ErrorData>> + MaybeSendFuture + '_ {
        let args = Value::Object(request.arguments.clone().unwrap_or_default());
        self.seen
            .lock()
            .unwrap()
            .calls
            .push((request.name.to_string(), args.clone()));
        let result = tool_answer(request.name.as_ref(), &args);
        std::future::ready(result.map(CallToolResponse::from))
    }
}

/// How [`FakeLegacyMcp`] behaves.
#[derive(Debug, Clone, Default)]
pub struct LegacyOptions {
    /// Answer 401 unless `Authorization: Bearer <token>` is sent.
    pub token: Option<String>,
    /// Check the token on the legacy routes only, so a streamable-HTTP attempt (a POST to the
    /// SSE URL) gets its 405 and the 401 comes on the SSE stream's GET.
    pub token_on_legacy_routes_only: bool,
    /// Name a message endpoint on another origin (`localhost` for `127.0.0.1`).
    pub foreign_endpoint: bool,
}

/// A server on the legacy HTTP+SSE transport (protocol 2024-11-05), by hand (rmcp 3 has no
/// server for it): `GET /sse` opens the stream, whose first event names
/// `/messages?session_id=…`; `POST /messages` answers 202 and the answer comes on the stream.
/// Same tools as [`FakeMcp`]; `tools/list` answers a page per tool; before answering a
/// `tools/call` it sends the client a `ping` and a notification. Dropping it stops it.
pub struct FakeLegacyMcp {
    /// The SSE URL, `http://127.0.0.1:<port>/sse`.
    pub url: String,
    state: Arc<Legacy>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeLegacyMcp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Legacy {
    options: LegacyOptions,
    port: u16,
    sessions: Mutex<std::collections::HashMap<String, tokio::sync::mpsc::UnboundedSender<Value>>>,
    seen: Mutex<LegacySeen>,
    next: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct LegacySeen {
    requests: Vec<(String, Option<String>)>,
    calls: Vec<(String, Value)>,
    client_replies: Vec<Value>,
}

impl FakeLegacyMcp {
    pub async fn start(options: LegacyOptions) -> FakeLegacyMcp {
        use axum::routing::{get, post};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Legacy {
            options,
            port: addr.port(),
            sessions: Mutex::default(),
            seen: Mutex::default(),
            next: Default::default(),
        });
        let app = Router::new()
            .route("/sse", get(legacy_sse))
            .route("/messages", post(legacy_message))
            .layer(middleware::from_fn_with_state(state.clone(), legacy_gate))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeLegacyMcp {
            url: format!("http://{addr}/sse"),
            state,
            task,
        }
    }

    /// Every request received: `("<METHOD> <path>", Authorization header)`.
    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        self.state.seen.lock().unwrap().requests.clone()
    }

    /// The tool calls received: `(tool, arguments)`.
    pub fn calls(&self) -> Vec<(String, Value)> {
        self.state.seen.lock().unwrap().calls.clone()
    }

    /// Ends every open SSE stream (the server restarting); later messages for those
    /// sessions get 404.
    pub fn end_streams(&self) {
        self.state.sessions.lock().unwrap().clear();
    }

    /// The client's answers to the server's own requests (its pings).
    pub fn client_replies(&self) -> Vec<Value> {
        self.state.seen.lock().unwrap().client_replies.clone()
    }
}

async fn legacy_gate(State(state): State<Arc<Legacy>>, req: Request, next: Next) -> Response {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let path = req.uri().path().to_string();
    state
        .seen
        .lock()
        .unwrap()
        .requests
        .push((format!("{} {path}", req.method()), auth.clone()));
    let legacy_route = (req.method() == "GET" && path == "/sse")
        || (req.method() == "POST" && path == "/messages");
    let checked = legacy_route || !state.options.token_on_legacy_routes_only;
    if let Some(token) = &state.options.token
        && checked
        && auth.as_deref() != Some(format!("Bearer {token}").as_str())
    {
        return (StatusCode::UNAUTHORIZED, "unauthorized").into_response();
    }
    next.run(req).await
}

async fn legacy_sse(State(state): State<Arc<Legacy>>) -> Response {
    use axum::response::sse::{Event, Sse};
    use futures::StreamExt;
    let n = state
        .next
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let session = format!("s{n}");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    state.sessions.lock().unwrap().insert(session.clone(), tx);
    let endpoint = if state.options.foreign_endpoint {
        format!(
            "http://localhost:{}/messages?session_id={session}",
            state.port
        )
    } else {
        format!("/messages?session_id={session}")
    };
    let first = futures::stream::iter([
        Event::default().comment("keep-alive"),
        Event::default().event("endpoint").data(endpoint),
    ]);
    // Pretty JSON: each message spans several `data:` lines, as servers may send it.
    let messages = futures::stream::unfold(rx, |mut rx| async move {
        let m = rx.recv().await?;
        let pretty = serde_json::to_string_pretty(&m).unwrap();
        Some((Event::default().event("message").data(pretty), rx))
    });
    Sse::new(first.chain(messages).map(Ok::<_, std::convert::Infallible>)).into_response()
}

async fn legacy_message(
    State(state): State<Arc<Legacy>>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    body: String,
) -> Response {
    let session = q.get("session_id").cloned().unwrap_or_default();
    let Some(tx) = state.sessions.lock().unwrap().get(&session).cloned() else {
        return (StatusCode::NOT_FOUND, "no such session").into_response();
    };
    let Ok(message) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let id = message.get("id").cloned();
    match (message.get("method").and_then(Value::as_str), id) {
        (None, Some(_)) => state.seen.lock().unwrap().client_replies.push(message),
        (Some(_), None) => {}
        (Some(method), Some(id)) => {
            let params = message.get("params").cloned().unwrap_or(json!({}));
            if method == "tools/call" {
                let n = state
                    .next
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _ = tx.send(
                    json!({"jsonrpc": "2.0", "id": format!("srv-ping-{n}"), "method": "ping"}),
                );
                let _ = tx.send(json!({"jsonrpc": "2.0", "method": "notifications/message",
                    "params": {"level": "info", "data": "calling"}}));
            }
            let answer = match legacy_answer(&state, method, &params) {
                Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
                Err(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
            };
            let _ = tx.send(answer);
        }
        (None, None) => return (StatusCode::BAD_REQUEST, "not JSON-RPC").into_response(),
    }
    (StatusCode::ACCEPTED, "Accepted").into_response()
}

fn legacy_answer(state: &Legacy, method: &str, params: &Value) -> Result<Value, Value> {
    match method {
        "initialize" => Ok(json!({
            "protocolVersion": "2024-11-05",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "fake-legacy", "version": "1.0"},
        })),
        "ping" => Ok(json!({})),
        "tools/list" => {
            // A page per tool, so clients must follow the cursor.
            let tools = fake_tools();
            let page: usize = params["cursor"]
                .as_str()
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let mut result = json!({"tools": tools.get(page).into_iter().collect::<Vec<_>>()});
            if page + 1 < tools.len() {
                result["nextCursor"] = json!((page + 1).to_string());
            }
            Ok(result)
        }
        "tools/call" => {
            let name = params["name"].as_str().unwrap_or_default();
            let args = params.get("arguments").cloned().unwrap_or(json!({}));
            state
                .seen
                .lock()
                .unwrap()
                .calls
                .push((name.to_string(), args.clone()));
            tool_answer(name, &args)
                .map(|r| serde_json::to_value(r).unwrap())
                .map_err(|e| serde_json::to_value(e).unwrap())
        }
        other => Err(json!({"code": -32601, "message": format!("no method `{other}`")})),
    }
}

/// The same tools as [`FakeMcp`] served over newline-delimited JSON-RPC on `reader`/`writer`
/// (what a stdio server does on its stdin/stdout). Dropping it stops it.
pub struct FakeStreamMcp {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeStreamMcp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeStreamMcp {
    pub fn serve<R, W>(reader: R, writer: W) -> FakeStreamMcp
    where
        R: tokio::io::AsyncRead + Send + Unpin + 'static,
        W: tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        use rmcp::ServiceExt;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let tools = Tools { seen: seen.clone() };
        let task = tokio::spawn(async move {
            if let Ok(running) = tools.serve((reader, writer)).await {
                let _ = running.waiting().await;
            }
        });
        FakeStreamMcp { seen, task }
    }

    /// The tool calls received: `(tool, arguments)`.
    pub fn calls(&self) -> Vec<(String, Value)> {
        self.seen.lock().unwrap().calls.clone()
    }
}
