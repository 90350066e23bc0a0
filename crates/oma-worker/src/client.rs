//! The HTTP calls a worker makes, in the official API's shapes (spec §3.2.2, §3.3): the work
//! queue under the environment key or the item's sessions token, and the session's event log
//! under the sessions token.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

/// The `anthropic-beta` value of the managed-agents endpoints.
const BETA: &str = "managed-agents-2026-04-01";
const VERSION: &str = "2023-06-01";
/// Longest a single non-streaming request may take. A long poll holds at most ~1 s.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The server answered with an error envelope.
    #[error("{status} {kind}: {message}")]
    Api {
        status: u16,
        kind: String,
        message: String,
    },
    /// No answer: connection refused, reset, timed out, or an unreadable body.
    #[error("{0}")]
    Transport(String),
}

impl CallError {
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Api { status, .. } => Some(*status),
            CallError::Transport(_) => None,
        }
    }

    /// Worth retrying: the server did not say no (transport failure, 429, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Transport(_) => true,
            CallError::Api { status, .. } => *status == 429 || *status >= 500,
        }
    }
}

/// A claimed work item, as far as the worker needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkItem {
    pub id: String,
    pub environment_id: String,
    pub data: WorkData,
    #[serde(default)]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkData {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// A heartbeat's answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Heartbeat {
    pub last_heartbeat: String,
    pub lease_extended: bool,
    pub state: String,
    pub ttl_seconds: i64,
}

/// One server's API, for one environment.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    environment_id: String,
    worker_id: String,
}

impl Client {
    pub fn new(base_url: &str, environment_id: &str, worker_id: &str) -> Result<Self, CallError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| CallError::Transport(format!("building the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            environment_id: environment_id.to_string(),
            worker_id: worker_id.to_string(),
        })
    }

    pub fn environment_id(&self) -> &str {
        &self.environment_id
    }

    fn work_url(&self, tail: &str) -> String {
        format!(
            "{}/v1/environments/{}/work{tail}",
            self.base, self.environment_id
        )
    }

    fn request(&self, method: reqwest::Method, url: &str, bearer: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(bearer)
            .header("anthropic-version", VERSION)
            .header("anthropic-beta", BETA)
            .header("anthropic-worker-id", &self.worker_id)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, CallError> {
        let body = self.send_for_bytes(req).await?;
        serde_json::from_slice(&body).map_err(|e| {
            CallError::Transport(format!("the server sent a body that is not JSON: {e}"))
        })
    }

    /// Sends `req`; a success's body as it came, anything else as the API error it carries.
    async fn send_for_bytes(&self, req: reqwest::RequestBuilder) -> Result<Vec<u8>, CallError> {
        let resp = req
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| CallError::Transport(describe(&e)))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| CallError::Transport(describe(&e)))?;
        if status.is_success() {
            return Ok(body.to_vec());
        }
        Err(api_error(status.as_u16(), &body))
    }

    /// Claims the next item, holding the request open up to `block_ms` (1..=999). `None`:
    /// nothing to do.
    pub async fn poll(&self, key: &str, block_ms: u32) -> Result<Option<WorkItem>, CallError> {
        let url = self.work_url(&format!("/poll?block_ms={block_ms}"));
        let v = self
            .send(self.request(reqwest::Method::GET, &url, key))
            .await?;
        if v.is_null() {
            return Ok(None);
        }
        serde_json::from_value(v)
            .map(Some)
            .map_err(|e| CallError::Transport(format!("unreadable work item: {e}")))
    }

    pub async fn ack(&self, key: &str, work_id: &str) -> Result<(), CallError> {
        let url = self.work_url(&format!("/{work_id}/ack"));
        self.send(self.request(reqwest::Method::POST, &url, key))
            .await
            .map(drop)
    }

    /// Extends the lease. `expected`: the last heartbeat this worker saw (`NO_HEARTBEAT`
    /// before the first), so a lease someone else took over is refused with a 412.
    pub async fn heartbeat(
        &self,
        bearer: &str,
        work_id: &str,
        expected: &str,
    ) -> Result<Heartbeat, CallError> {
        let url = self.work_url(&format!("/{work_id}/heartbeat"));
        let req = self
            .request(reqwest::Method::POST, &url, bearer)
            .query(&[("expected_last_heartbeat", expected)]);
        let v = self.send(req).await?;
        serde_json::from_value(v)
            .map_err(|e| CallError::Transport(format!("unreadable heartbeat: {e}")))
    }

    pub async fn stop(&self, bearer: &str, work_id: &str, force: bool) -> Result<(), CallError> {
        let url = self.work_url(&format!("/{work_id}/stop"));
        let req = self
            .request(reqwest::Method::POST, &url, bearer)
            .json(&json!({ "force": force }));
        self.send(req).await.map(drop)
    }

    pub async fn session(&self, bearer: &str, session_id: &str) -> Result<Value, CallError> {
        self.get_json(bearer, &format!("/v1/sessions/{session_id}"))
            .await
    }

    /// One page of the session's event log, oldest first: the events and the next cursor.
    pub async fn events_page(
        &self,
        bearer: &str,
        session_id: &str,
        page: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), CallError> {
        let url = format!("{}/v1/sessions/{session_id}/events", self.base);
        let mut req = self
            .request(reqwest::Method::GET, &url, bearer)
            .query(&[("limit", "1000")]);
        if let Some(p) = page {
            req = req.query(&[("page", p)]);
        }
        let v = self.send(req).await?;
        let data = v
            .get("data")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let next = v
            .get("next_page")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        Ok((data, next))
    }

    /// Opens the session's live stream. With `after`, the server first replays every event
    /// after that sequence number (`Last-Event-ID`), so a reconnect misses nothing.
    pub async fn stream(
        &self,
        bearer: &str,
        session_id: &str,
        after: Option<&str>,
    ) -> Result<reqwest::Response, CallError> {
        let url = format!("{}/v1/sessions/{session_id}/events/stream", self.base);
        let mut req = self
            .request(reqwest::Method::GET, &url, bearer)
            .header("accept", "text/event-stream");
        if let Some(id) = after {
            req = req.header("last-event-id", id);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| CallError::Transport(describe(&e)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.bytes().await.unwrap_or_default();
        Err(api_error(status.as_u16(), &body))
    }

    /// Answers one `agent.tool_use` of the session with a `user.tool_result`.
    pub async fn send_tool_result(
        &self,
        bearer: &str,
        session_id: &str,
        tool_use_id: &str,
        content: Vec<Value>,
        is_error: bool,
    ) -> Result<(), CallError> {
        let url = format!("{}/v1/sessions/{session_id}/events", self.base);
        let body = json!({"events": [{
            "type": "user.tool_result",
            "tool_use_id": tool_use_id,
            "content": content,
            "is_error": is_error,
        }]});
        let req = self
            .request(reqwest::Method::POST, &url, bearer)
            .json(&body);
        self.send(req).await.map(drop)
    }
}

impl Client {
    /// `GET` of any API path (with its query) under `bearer`, as JSON.
    pub async fn get_json(&self, bearer: &str, path: &str) -> Result<Value, CallError> {
        let url = format!("{}{path}", self.base);
        self.send(self.request(reqwest::Method::GET, &url, bearer))
            .await
    }

    /// `POST` of a JSON body to any API path under `bearer`.
    pub async fn post_json(
        &self,
        bearer: &str,
        path: &str,
        body: &Value,
    ) -> Result<Value, CallError> {
        let url = format!("{}{path}", self.base);
        self.send(self.request(reqwest::Method::POST, &url, bearer).json(body))
            .await
    }

    pub async fn delete(&self, bearer: &str, path: &str) -> Result<(), CallError> {
        let url = format!("{}{path}", self.base);
        self.send(self.request(reqwest::Method::DELETE, &url, bearer))
            .await
            .map(drop)
    }

    /// `GET` of a binary body (a skill archive).
    pub async fn get_bytes(&self, bearer: &str, path: &str) -> Result<Vec<u8>, CallError> {
        let url = format!("{}{path}", self.base);
        self.send_for_bytes(self.request(reqwest::Method::GET, &url, bearer))
            .await
    }
}

fn api_error(status: u16, body: &[u8]) -> CallError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |k: &str| {
        v.pointer(&format!("/error/{k}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    CallError::Api {
        status,
        kind: field("type").unwrap_or_else(|| "error".to_string()),
        message: field("message")
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(500).collect()),
    }
}

/// A reqwest error with its causes: "error sending request" alone says nothing.
fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}
