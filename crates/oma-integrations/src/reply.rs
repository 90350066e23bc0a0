//! Replies, in each service's own API:
//!
//! - Slack: `POST {api_base}/chat.postMessage` with `Authorization: Bearer xoxb-…` and
//!   `{"channel", "thread_ts", "text"}`; Slack answers 200 with `{"ok": true|false, …}`.
//! - GitHub: `POST {api_base}/repos/{owner}/{repo}/issues/{number}/comments` with the
//!   installation token (`Authorization: Bearer …`) and `{"body"}`; 201 on success.
//! - Linear: `POST {api_base}` (GraphQL) `agentActivityCreate` with content of type `thought`,
//!   `action`, `response` or `error`; `Authorization: Bearer …` (the app's OAuth token).

use serde_json::{Value, json};

use crate::Kind;

/// One Linear agent activity.
#[derive(Debug, Clone, PartialEq)]
pub enum Activity {
    Thought(String),
    Action { action: String, parameter: String },
    Response(String),
    Error(String),
}

impl Activity {
    fn content(&self) -> Value {
        match self {
            Activity::Thought(b) => json!({"type": "thought", "body": b}),
            Activity::Action { action, parameter } => {
                json!({"type": "action", "action": action, "parameter": parameter})
            }
            Activity::Response(b) => json!({"type": "response", "body": b}),
            Activity::Error(b) => json!({"type": "error", "body": b}),
        }
    }
}

/// What a finished turn sends back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TurnResult {
    /// The agent's messages of the turn, in order.
    pub text: String,
    /// The tools it used (name, a short view of the input).
    pub actions: Vec<(String, String)>,
    /// Why the turn failed, when it did.
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("no token is configured (add one with `oma integrations add … --token`)")]
    NoToken,
    #[error("the reply target is malformed: {0}")]
    Target(&'static str),
    #[error("the request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the service answered {status}: {body}")]
    Refused { status: u16, body: String },
}

impl ReplyError {
    /// The service refused the token (expired, revoked): worth one refresh and one more try.
    pub fn unauthorized(&self) -> bool {
        match self {
            ReplyError::Refused { status, body } => {
                *status == 401
                    || matches!(
                        body.as_str(),
                        "invalid_auth" | "token_expired" | "token_revoked" | "not_authed"
                    )
                    || body.contains("Authentication required")
            }
            _ => false,
        }
    }
}

const LINEAR_MUTATION: &str = "mutation AgentActivityCreate($input: AgentActivityCreateInput!) { \
     agentActivityCreate(input: $input) { success agentActivity { id } } }";

/// Posts a finished turn's reply.
pub async fn post(
    http: &reqwest::Client,
    kind: Kind,
    api_base: &str,
    token: Option<&str>,
    target: &Value,
    result: &TurnResult,
) -> Result<(), ReplyError> {
    let token = token.ok_or(ReplyError::NoToken)?;
    let base = api_base.trim_end_matches('/');
    let text = if result.text.trim().is_empty() {
        match &result.error {
            Some(e) => format!("The agent could not finish: {e}"),
            None => "(the agent finished without a message)".to_string(),
        }
    } else {
        result.text.clone()
    };
    match kind {
        Kind::Slack => {
            let channel = target["channel"]
                .as_str()
                .ok_or(ReplyError::Target("channel"))?;
            let mut body = json!({"channel": channel, "text": text});
            if let Some(t) = target["thread_ts"].as_str() {
                body["thread_ts"] = json!(t);
            }
            let resp = http
                .post(format!("{base}/chat.postMessage"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await?;
            let status = resp.status().as_u16();
            let answer: Value = resp.json().await.unwrap_or(Value::Null);
            if status != 200 || answer["ok"] != Value::Bool(true) {
                return Err(ReplyError::Refused {
                    status,
                    body: answer["error"].as_str().unwrap_or("not ok").to_string(),
                });
            }
            Ok(())
        }
        Kind::Github => {
            let repo = target["repo"].as_str().ok_or(ReplyError::Target("repo"))?;
            let number = target["number"]
                .as_i64()
                .ok_or(ReplyError::Target("number"))?;
            let resp = http
                .post(format!("{base}/repos/{repo}/issues/{number}/comments"))
                .bearer_auth(token)
                .header("accept", "application/vnd.github+json")
                .header("x-github-api-version", "2022-11-28")
                .header("user-agent", "oma")
                .json(&json!({"body": text}))
                .send()
                .await?;
            let status = resp.status().as_u16();
            if !(200..300).contains(&status) {
                let body = resp.text().await.unwrap_or_default();
                return Err(ReplyError::Refused {
                    status,
                    body: body.chars().take(300).collect(),
                });
            }
            Ok(())
        }
        Kind::Linear => {
            for (action, parameter) in &result.actions {
                linear_activity(
                    http,
                    base,
                    token,
                    target,
                    &Activity::Action {
                        action: action.clone(),
                        parameter: parameter.clone(),
                    },
                )
                .await?;
            }
            let last = match (&result.error, result.text.trim().is_empty()) {
                (Some(e), true) => Activity::Error(e.clone()),
                _ => Activity::Response(text),
            };
            linear_activity(http, base, token, target, &last).await
        }
    }
}

/// Posts one Linear agent activity.
pub async fn linear_activity(
    http: &reqwest::Client,
    api_base: &str,
    token: &str,
    target: &Value,
    activity: &Activity,
) -> Result<(), ReplyError> {
    let session = target["agent_session_id"]
        .as_str()
        .ok_or(ReplyError::Target("agent_session_id"))?;
    let body = json!({
        "query": LINEAR_MUTATION,
        "variables": {"input": {"agentSessionId": session, "content": activity.content()}},
    });
    let resp = http
        .post(api_base.trim_end_matches('/'))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    let ok = answer.pointer("/data/agentActivityCreate/success") == Some(&Value::Bool(true));
    if status != 200 || !ok {
        return Err(ReplyError::Refused {
            status,
            body: answer
                .pointer("/errors/0/message")
                .and_then(Value::as_str)
                .unwrap_or("agentActivityCreate did not succeed")
                .to_string(),
        });
    }
    Ok(())
}
