//! Shared by the integrations tests: a fake of each service's reply API on loopback (Slack
//! `chat.postMessage`, GitHub issue comments, Linear GraphQL `agentActivityCreate`), and the
//! webhook deliveries each service sends, signed as it signs them.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use oma_integrations::verify::sign;
use serde_json::{Value, json};

/// One call the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct Shared {
    calls: Mutex<Vec<Call>>,
    changed: tokio::sync::Notify,
}

/// Slack, GitHub and Linear reply APIs in one loopback server: `/slack/api/chat.postMessage`,
/// `/github/repos/{owner}/{repo}/issues/{n}/comments`, `/linear/graphql`.
pub struct FakeServices {
    pub base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServices {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(shared: &Shared, uri: &Uri, headers: &HeaderMap, body: &Bytes) {
    let call = Call {
        path: uri.path().to_string(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
    };
    shared.calls.lock().unwrap().push(call);
    shared.changed.notify_waiters();
}

async fn slack(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&s, &uri, &headers, &body).await;
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let authed = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.starts_with("Bearer xoxb-"));
    if !authed {
        // Slack answers 200 with ok:false for a bad token.
        return axum::Json(json!({"ok": false, "error": "invalid_auth"})).into_response();
    }
    axum::Json(
        json!({"ok": true, "channel": v["channel"], "ts": "1700000099.000200",
        "message": {"type": "message", "text": v["text"], "thread_ts": v["thread_ts"]}}),
    )
    .into_response()
}

async fn github(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&s, &uri, &headers, &body).await;
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": 1, "body": v["body"], "user": {"login": "oma-bot[bot]"}})),
    )
        .into_response()
}

async fn linear(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&s, &uri, &headers, &body).await;
    axum::Json(json!({"data": {"agentActivityCreate": {"success": true,
        "agentActivity": {"id": "aa-1"}}}}))
    .into_response()
}

impl FakeServices {
    pub async fn start() -> FakeServices {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/slack/api/chat.postMessage", post(slack))
            .route(
                "/github/repos/{owner}/{repo}/issues/{number}/comments",
                post(github),
            )
            .route("/linear/graphql", post(linear))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeServices { base, shared, task }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// Waits (up to 60 s) until at least `n` calls were received.
    pub async fn wait_calls(&self, n: usize) -> Vec<Call> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let notified = self.shared.changed.notified();
            let calls = self.calls();
            if calls.len() >= n {
                return calls;
            }
            assert!(
                tokio::time::timeout_at(deadline, notified).await.is_ok(),
                "waited 60 s for {n} calls; got {calls:?}"
            );
        }
    }
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A Slack delivery's headers, signed with `secret` at `ts`.
pub fn slack_headers(secret: &str, ts: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    let ts = ts.to_string();
    let sig = sign(secret.as_bytes(), &[b"v0:", ts.as_bytes(), b":", body]);
    vec![
        ("content-type", "application/json".into()),
        ("x-slack-request-timestamp", ts),
        ("x-slack-signature", format!("v0={sig}")),
    ]
}

/// A Slack `app_mention` event callback.
pub fn slack_mention(event_id: &str, channel: &str, ts: &str, thread_ts: Option<&str>) -> Vec<u8> {
    let mut event = json!({"type": "app_mention", "user": "U0ALICE", "text": "<@U0BOT> what is 6 x 7?",
        "ts": ts, "channel": channel, "event_ts": ts});
    if let Some(t) = thread_ts {
        event["thread_ts"] = json!(t);
    }
    serde_json::to_vec(
        &json!({"token": "legacy", "team_id": "T0TEAM", "api_app_id": "A0APP",
        "event": event, "type": "event_callback", "event_id": event_id,
        "event_time": now_secs(), "authorizations": [{"team_id": "T0TEAM", "user_id": "U0BOT",
        "is_bot": true}], "event_context": "ctx"}),
    )
    .unwrap()
}

/// A GitHub delivery's headers.
pub fn github_headers(
    secret: &str,
    event: &str,
    delivery: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".into()),
        ("x-github-event", event.into()),
        ("x-github-delivery", delivery.into()),
        ("x-github-hook-id", "123".into()),
        ("user-agent", "GitHub-Hookshot/abc".into()),
        (
            "x-hub-signature-256",
            format!("sha256={}", sign(secret.as_bytes(), &[body])),
        ),
    ]
}

/// An `issue_comment` `created` on a pull request.
pub fn github_comment(repo: &str, number: i64, text: &str) -> Vec<u8> {
    let (owner, name) = repo.split_once('/').unwrap();
    serde_json::to_vec(&json!({"action": "created",
        "issue": {"number": number, "title": "Fix the build", "state": "open",
            "pull_request": {"url": format!("https://api.github.com/repos/{repo}/pulls/{number}")}},
        "comment": {"id": 99, "body": text, "user": {"login": "alice", "type": "User"}},
        "repository": {"id": 1, "name": name, "full_name": repo, "owner": {"login": owner}},
        "sender": {"login": "alice", "type": "User"},
        "installation": {"id": 42}}))
    .unwrap()
}

/// A Linear delivery's headers.
pub fn linear_headers(secret: &str, delivery: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json; charset=utf-8".into()),
        ("linear-delivery", delivery.into()),
        ("linear-event", "AgentSessionEvent".into()),
        ("user-agent", "Linear-Webhook".into()),
        ("linear-signature", sign(secret.as_bytes(), &[body])),
    ]
}

/// An `AgentSessionEvent` (`created` or `prompted`) at `ts_ms`.
pub fn linear_session_event(
    action: &str,
    session: &str,
    team_key: &str,
    text: &str,
    ts_ms: i64,
) -> Vec<u8> {
    let mut v = json!({"type": "AgentSessionEvent", "action": action,
        "createdAt": "2026-12-07T12:00:00.000Z", "organizationId": "org-1",
        "oauthClientId": "client-1", "appUserId": "user-app", "webhookTimestamp": ts_ms,
        "webhookId": format!("wh-{session}-{ts_ms}"),
        "agentSession": {"id": session, "status": "pending", "issue": {"id": "iss-1",
            "identifier": format!("{team_key}-12"), "title": "Crash on start",
            "team": {"id": "team-uuid-1", "key": team_key}}}});
    if action == "created" {
        v["promptContext"] = json!(format!(
            "<issue identifier=\"{team_key}-12\">{text}</issue>"
        ));
    } else {
        v["agentActivity"] = json!({"id": "act-1", "content": {"type": "prompt", "body": text}});
    }
    serde_json::to_vec(&v).unwrap()
}

/// Posts a delivery; returns `(status, body)`.
pub async fn deliver(
    http: &reqwest::Client,
    url: &str,
    headers: &[(&'static str, String)],
    body: &[u8],
) -> (u16, Value) {
    let mut req = http.post(url).body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// A new agent (no tools) and environment on `s`: what an integration publishes.
pub async fn agent_and_environment(s: &oma_testkit::TestServer) -> (String, String) {
    let (_, agent) = s
        .post(
            "/v1/agents",
            json!({"name": "helper", "model": "claude-opus-4-8"}),
        )
        .await
        .unwrap();
    let (_, env) = s
        .post(
            "/v1/environments",
            json!({"name": "e", "config": {"type": "cloud"}}),
        )
        .await
        .unwrap();
    (
        agent["id"].as_str().unwrap().to_string(),
        env["id"].as_str().unwrap().to_string(),
    )
}
