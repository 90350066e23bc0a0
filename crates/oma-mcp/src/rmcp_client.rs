//! [`McpClient`] on rmcp's clients: streamable HTTP, and newline-delimited JSON-RPC on a byte
//! stream (a stdio server). Everything rmcp-specific lives here.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{ClientInitializeError, RoleClient, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, HttpStatusError, InsufficientScopeError,
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use serde_json::Value;

use crate::{CALL_TIMEOUT, McpClient, McpError, McpTool, ServerConfig, ToolOutput};

struct RmcpClient {
    service: RunningService<RoleClient, ClientConfig>,
}

/// A failed streamable-HTTP `initialize`, with the HTTP status the server answered, if any
/// (400, 404 or 405 mean the server may speak the legacy HTTP+SSE transport instead).
pub(crate) struct InitFailure {
    pub error: McpError,
    pub status: Option<u16>,
}

pub(crate) async fn connect(
    http: reqwest::Client,
    server: &ServerConfig,
) -> Result<Box<dyn McpClient>, InitFailure> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(server.url.as_str());
    if let Some(token) = &server.bearer {
        config = config.auth_header(token.clone());
    }
    let transport = StreamableHttpClientTransport::with_client(http, config);
    match client_info().serve(transport).await {
        Ok(service) => Ok(Box::new(RmcpClient { service })),
        Err(e) => Err(InitFailure {
            error: classify(&e, "initialize"),
            status: http_status(&e),
        }),
    }
}

/// An MCP client over newline-delimited JSON-RPC on `reader`/`writer` (a stdio server's
/// stdout and stdin).
pub(crate) async fn connect_stream<R, W>(
    reader: R,
    writer: W,
) -> Result<Box<dyn McpClient>, McpError>
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
    W: tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    match client_info().serve((reader, writer)).await {
        Ok(service) => Ok(Box::new(RmcpClient { service })),
        Err(e) => Err(classify(&e, "initialize")),
    }
}

fn client_info() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("oma", env!("CARGO_PKG_VERSION")),
    )
}

impl McpClient for RmcpClient {
    fn list_tools(&self) -> BoxFuture<'_, Result<Vec<McpTool>, McpError>> {
        async move {
            let tools = self
                .service
                .list_all_tools()
                .await
                .map_err(|e| classify(&e, "tools/list"))?;
            Ok(tools
                .into_iter()
                .map(|t| McpTool {
                    name: t.name.to_string(),
                    description: t.description.map(|d| d.to_string()).unwrap_or_default(),
                    input_schema: Value::Object((*t.input_schema).clone()),
                    read_only: t
                        .annotations
                        .as_ref()
                        .and_then(|a| a.read_only_hint)
                        .unwrap_or(false),
                })
                .collect())
        }
        .boxed()
    }

    fn call_tool<'a>(
        &'a self,
        name: &'a str,
        arguments: Value,
    ) -> BoxFuture<'a, Result<ToolOutput, McpError>> {
        async move {
            let mut params = CallToolRequestParams::new(name.to_string());
            if let Value::Object(map) = arguments {
                params = params.with_arguments(map);
            }
            let result = tokio::time::timeout(CALL_TIMEOUT, self.service.call_tool(params))
                .await
                .map_err(|_| McpError::Timeout(CALL_TIMEOUT))?
                .map_err(|e| classify(&e, "tools/call"))?;
            // Read through JSON: the content types are the protocol's, not rmcp's.
            let content: Vec<Value> = result
                .content
                .iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect();
            Ok(ToolOutput {
                content: crate::content_blocks(&content, result.structured_content.as_ref()),
                is_error: result.is_error.unwrap_or(false),
            })
        }
        .boxed()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        let mut service = self.service;
        async move {
            let _ = service.close_with_timeout(Duration::from_secs(5)).await;
        }
        .boxed()
    }
}

/// Sorts an rmcp error into ours by walking its sources: a 401/403 is an authentication
/// failure, a transport error a connection failure, the rest protocol trouble.
fn classify(e: &(dyn std::error::Error + 'static), step: &str) -> McpError {
    // rmcp does not chain an initialize's transport error as a source; start from it.
    if let Some(ClientInitializeError::TransportError { error, .. }) =
        e.downcast_ref::<ClientInitializeError>()
    {
        return match classify(error, step) {
            McpError::Protocol(m) => McpError::Connect(m),
            other => other,
        };
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut transport = false;
    while let Some(current) = source {
        if current.downcast_ref::<AuthRequiredError>().is_some() {
            return McpError::Auth { status: 401 };
        }
        if current.downcast_ref::<InsufficientScopeError>().is_some() {
            return McpError::Auth { status: 403 };
        }
        if let Some(status) = status_of(current) {
            if status == 401 || status == 403 {
                return McpError::Auth { status };
            }
            return McpError::Connect(format!("{step}: the server answered HTTP {status}"));
        }
        match current.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
            // rmcp does not chain the HTTP client's error; its causes say what went wrong
            // (refused connection, DNS, TLS, a refused address).
            Some(StreamableHttpError::Client(inner)) => {
                return McpError::Connect(format!(
                    "{step}: {}",
                    crate::http_errors::connect_error(inner)
                ));
            }
            Some(StreamableHttpError::Io(_)) => transport = true,
            _ => {}
        }
        if current
            .downcast_ref::<rmcp::transport::DynamicTransportError>()
            .is_some()
            || matches!(
                current.downcast_ref::<ServiceError>(),
                Some(ServiceError::TransportClosed)
            )
            || matches!(
                current.downcast_ref::<ClientInitializeError>(),
                Some(ClientInitializeError::ConnectionClosed(_))
            )
        {
            transport = true;
        }
        if current.downcast_ref::<reqwest::Error>().is_some()
            || current.downcast_ref::<std::io::Error>().is_some()
        {
            transport = true;
        }
        source = current.source();
    }
    let message = format!("{step}: {}", chain(e));
    if transport {
        McpError::Connect(message)
    } else {
        McpError::Protocol(message)
    }
}

/// The HTTP status a failed exchange got, found anywhere in the error's chain.
fn http_status(e: &(dyn std::error::Error + 'static)) -> Option<u16> {
    if let Some(ClientInitializeError::TransportError { error, .. }) =
        e.downcast_ref::<ClientInitializeError>()
    {
        return http_status(error);
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(current) = source {
        if let Some(status) = status_of(current) {
            return Some(status);
        }
        source = current.source();
    }
    None
}

/// The HTTP status in this one error, if it carries one. rmcp keeps a status as a value only
/// for 429 and 5xx; other failures carry it in their message, `HTTP <status> <reason>: <body>`.
fn status_of(e: &(dyn std::error::Error + 'static)) -> Option<u16> {
    if let Some(h) = e.downcast_ref::<HttpStatusError>() {
        return Some(h.status);
    }
    match e.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
        Some(StreamableHttpError::HttpStatus(h)) => Some(h.status),
        Some(StreamableHttpError::UnexpectedServerResponse(m)) => {
            let digits = m.strip_prefix("HTTP ")?.get(..3)?;
            digits.parse().ok().filter(|s| (400..600).contains(s))
        }
        _ => None,
    }
}

/// An error with its sources, one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}
