//! A real MCP server (rmcp, streamable HTTP) on loopback for tests: tools `echo` and `add`,
//! an optional required bearer token (401 otherwise), and a record of the `Authorization`
//! headers and tool calls it received.

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
        let tools = vec![
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
        ];
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
        let result = match request.name.as_ref() {
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
        };
        std::future::ready(result.map(CallToolResponse::from))
    }
}
