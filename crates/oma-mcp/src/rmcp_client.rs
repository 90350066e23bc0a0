//! [`McpClient`] on rmcp's streamable HTTP client. Everything rmcp-specific lives here.

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

pub(crate) async fn connect(
    http: reqwest::Client,
    server: &ServerConfig,
) -> Result<Box<dyn McpClient>, McpError> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(server.url.as_str());
    if let Some(token) = &server.bearer {
        config = config.auth_header(token.clone());
    }
    let transport = StreamableHttpClientTransport::with_client(http, config);
    let info = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("oma", env!("CARGO_PKG_VERSION")),
    );
    match info.serve(transport).await {
        Ok(service) => Ok(Box::new(RmcpClient { service })),
        Err(e) => Err(classify(&e, "initialize")),
    }
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
        if let Some(h) = current.downcast_ref::<HttpStatusError>() {
            if h.status == 401 || h.status == 403 {
                return McpError::Auth { status: h.status };
            }
            return McpError::Connect(format!("{step}: the server answered HTTP {}", h.status));
        }
        match current.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
            // rmcp does not chain the HTTP client's error; its causes say what went wrong
            // (refused connection, DNS, TLS, a refused address).
            Some(StreamableHttpError::Client(inner)) => {
                return McpError::Connect(format!(
                    "{step}: {}",
                    crate::oauth::connect_error(inner)
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
