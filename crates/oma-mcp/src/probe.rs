//! A live probe of an MCP server with a credential: `initialize`, then `tools/list`, over
//! streamable HTTP by hand, so the failing step and its HTTP response can be reported
//! (`mcp_oauth_validate`). Sessions use [`crate::connect`] instead.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use crate::http_errors::{connect_error, header};

/// The protocol version the probe asks for; servers answer with one they speak.
const PROTOCOL_VERSION: &str = "2025-06-18";
/// At most this much of a response body is kept.
const MAX_BODY: usize = 4096;
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// An HTTP response captured during a probe or refresh (`BetaManagedAgentsRefreshHTTPResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpCapture {
    pub status_code: u16,
    pub content_type: String,
    /// Truncated, with known secrets and token-looking JSON fields scrubbed.
    pub body: String,
    pub body_truncated: bool,
}

impl HttpCapture {
    /// Captures a response: its body truncated, with `secrets` and token-looking JSON fields
    /// scrubbed.
    pub fn new(status: u16, content_type: String, body: &[u8], secrets: &[String]) -> Self {
        let mut text = String::from_utf8_lossy(body).into_owned();
        for s in secrets.iter().filter(|s| s.len() >= 4) {
            text = text.replace(s.as_str(), "[redacted]");
        }
        let text = scrub_token_fields(&text);
        let body_truncated = text.len() > MAX_BODY;
        let mut end = text.len().min(MAX_BODY);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            status_code: status,
            content_type,
            body: text[..end].to_string(),
            body_truncated,
        }
    }
}

/// A JSON body's token fields (`access_token`, `refresh_token`, `id_token`, `client_secret`)
/// replaced by `[redacted]`; other bodies unchanged.
fn scrub_token_fields(text: &str) -> String {
    const KEYS: [&str; 4] = ["access_token", "refresh_token", "id_token", "client_secret"];
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(mut m)) => {
            let mut changed = false;
            for k in KEYS {
                if let Some(v) = m.get_mut(k) {
                    *v = Value::String("[redacted]".into());
                    changed = true;
                }
            }
            if changed {
                Value::Object(m).to_string()
            } else {
                text.to_string()
            }
        }
        _ => text.to_string(),
    }
}

/// The failing step of a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFailure {
    /// The MCP method that failed (`initialize`, `tools/list`).
    pub method: String,
    /// The server's HTTP error response, when it sent one.
    pub http_response: Option<HttpCapture>,
    /// What went wrong, for logs (never holds the token).
    pub detail: String,
}

impl ProbeFailure {
    /// The server refused the credential (401/403): a refresh may help.
    pub fn is_auth(&self) -> bool {
        self.http_response
            .as_ref()
            .is_some_and(|r| r.status_code == 401 || r.status_code == 403)
    }

    /// Whether the failure is transient (no answer, 5xx, 429) rather than a verdict.
    pub fn is_transient(&self) -> bool {
        match &self.http_response {
            None => true,
            Some(r) => r.status_code >= 500 || r.status_code == 429,
        }
    }
}

/// The header oma's egress proxy puts on the answers it makes itself.
const PROXY_ERROR_HEADER: &str = "x-proxy-error";

/// Connects to `url` with `bearer` and lists its tools. `Ok` with the number of tools.
pub async fn probe(
    http: &crate::HttpClient,
    url: &str,
    bearer: Option<&str>,
) -> Result<usize, ProbeFailure> {
    let http = http.client();
    let secrets: Vec<String> = bearer.map(str::to_string).into_iter().collect();
    let init = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "oma", "version": env!("CARGO_PKG_VERSION")},
        },
    });
    let (result, session, _) =
        post(http, url, bearer, None, None, &init, "initialize", &secrets).await?;
    let version = result
        .and_then(|r| {
            r.get("protocolVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| PROTOCOL_VERSION.to_string());
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post(
        http,
        url,
        bearer,
        session.as_deref(),
        Some(&version),
        &note,
        "notifications/initialized",
        &secrets,
    )
    .await?;
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}});
    let (result, _, _) = post(
        http,
        url,
        bearer,
        session.as_deref(),
        Some(&version),
        &list,
        "tools/list",
        &secrets,
    )
    .await?;
    let tools = result
        .as_ref()
        .and_then(|r| r.get("tools"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if let Some(id) = session {
        // Ending the probe's MCP session is a courtesy; its outcome does not matter.
        let mut del = http.delete(url).header("mcp-session-id", id);
        if let Some(b) = bearer {
            del = del.bearer_auth(b);
        }
        let _ = del.timeout(STEP_TIMEOUT).send().await;
    }
    Ok(tools)
}

/// One JSON-RPC message POSTed; returns the `result` for requests (`None` for notifications),
/// the session id the server assigned, and the HTTP status.
#[allow(clippy::too_many_arguments)]
async fn post(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    session: Option<&str>,
    version: Option<&str>,
    message: &Value,
    method: &str,
    secrets: &[String],
) -> Result<(Option<Value>, Option<String>, u16), ProbeFailure> {
    let fail = |detail: String, http_response: Option<HttpCapture>| ProbeFailure {
        method: method.to_string(),
        http_response,
        detail,
    };
    let mut req = http
        .post(url)
        .timeout(STEP_TIMEOUT)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(message.to_string());
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    if let Some(v) = version {
        req = req.header("mcp-protocol-version", v);
    }
    let response = req
        .send()
        .await
        .map_err(|e| fail(connect_error(&e), None))?;
    let status = response.status();
    let content_type = header(&response, "content-type");
    // An answer of the egress proxy itself (a refused host, an unreachable upstream) is not
    // the server's: the server was never heard, so there is no response to judge it by.
    let from_proxy = response.headers().contains_key(PROXY_ERROR_HEADER);
    let session_id = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = response
        .bytes()
        .await
        .map_err(|e| fail(connect_error(&e), None))?;
    if from_proxy {
        let said = String::from_utf8_lossy(&bytes);
        return Err(fail(said.trim().to_string(), None));
    }
    if !status.is_success() {
        let capture = HttpCapture::new(status.as_u16(), content_type, &bytes, secrets);
        return Err(fail(format!("HTTP {}", status.as_u16()), Some(capture)));
    }
    let Some(id) = message.get("id") else {
        return Ok((None, session_id, status.as_u16()));
    };
    let reply = if content_type.starts_with("text/event-stream") {
        sse_messages(&bytes)
            .into_iter()
            .find(|m| m.get("id") == Some(id))
    } else {
        serde_json::from_slice::<Value>(&bytes).ok()
    };
    let Some(reply) = reply else {
        return Err(fail("the server sent no JSON-RPC answer".into(), None));
    };
    if let Some(err) = reply.get("error") {
        let text = err.get("message").and_then(Value::as_str).unwrap_or("?");
        return Err(fail(format!("JSON-RPC error: {text}"), None));
    }
    Ok((reply.get("result").cloned(), session_id, status.as_u16()))
}

/// The JSON messages of an SSE body (`data:` lines, joined per event).
fn sse_messages(bytes: &[u8]) -> Vec<Value> {
    let mut parser = oma_sse::SseParser::new();
    let mut events = parser.push(bytes).unwrap_or_default();
    // A whole body is at hand: an event it ends without the blank line still counts (a blank
    // line after one that ended properly dispatches nothing).
    events.extend(parser.push(b"\n\n").unwrap_or_default());
    events
        .iter()
        .filter_map(|e| serde_json::from_str(&e.data).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_are_scrubbed_and_truncated() {
        let c = HttpCapture::new(
            400,
            "application/json".into(),
            br#"{"error":"invalid_grant","access_token":"abc","note":"rt-secret-1"}"#,
            &["rt-secret-1".to_string()],
        );
        assert!(
            !c.body.contains("abc") && !c.body.contains("rt-secret-1"),
            "{}",
            c.body
        );
        assert!(c.body.contains("invalid_grant"));
        let big = HttpCapture::new(500, "text/plain".into(), &vec![b'x'; 10_000], &[]);
        assert!(big.body_truncated && big.body.len() == MAX_BODY);
    }

    #[test]
    fn sse_bodies_yield_their_messages() {
        let body = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n";
        assert_eq!(sse_messages(body)[0]["id"], 1);
    }
}
