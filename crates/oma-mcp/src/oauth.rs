//! The OAuth refresh-token grant (RFC 6749 §6) for `mcp_oauth` credentials.

use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use crate::probe::HttpCapture;

/// How the client authenticates at the token endpoint.
#[derive(Clone)]
pub enum ClientAuth {
    None,
    /// HTTP Basic with the client id and secret.
    Basic(String),
    /// `client_secret` in the form body.
    Post(String),
}

/// What a refresh needs. Secrets are never printed.
#[derive(Clone)]
pub struct RefreshRequest {
    pub token_endpoint: String,
    pub client_id: String,
    pub refresh_token: String,
    pub auth: ClientAuth,
    pub scope: Option<String>,
    pub resource: Option<String>,
}

/// Tokens the endpoint returned.
#[derive(Clone)]
pub struct Tokens {
    pub access_token: String,
    /// A rotated refresh token, when the endpoint sent one.
    pub refresh_token: Option<String>,
    pub expires_in: Option<u64>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub enum RefreshOutcome {
    Succeeded(Tokens),
    /// The endpoint answered with an error (its response, secrets scrubbed).
    Failed(HttpCapture),
    /// The endpoint could not be reached.
    ConnectError(String),
}

/// Exchanges the refresh token for a new access token.
pub async fn refresh(http: &crate::HttpClient, req: &RefreshRequest) -> RefreshOutcome {
    if let Err(e) = http.check(&req.token_endpoint) {
        return RefreshOutcome::ConnectError(e);
    }
    let http = http.client();
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", &req.refresh_token),
    ];
    if let Some(s) = &req.scope {
        form.push(("scope", s));
    }
    if let Some(r) = &req.resource {
        form.push(("resource", r));
    }
    let mut builder = http
        .post(&req.token_endpoint)
        .timeout(Duration::from_secs(30))
        .header("accept", "application/json");
    match &req.auth {
        ClientAuth::None => form.push(("client_id", &req.client_id)),
        ClientAuth::Post(secret) => {
            form.push(("client_id", &req.client_id));
            form.push(("client_secret", secret));
        }
        ClientAuth::Basic(secret) => {
            // RFC 6749 §2.3.1: both parts form-urlencoded before base64.
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!("{}:{}", enc(&req.client_id), enc(secret));
            let b64 = base64::engine::general_purpose::STANDARD.encode(pair);
            builder = builder.header("authorization", format!("Basic {b64}"));
        }
    }
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let response = match builder
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return RefreshOutcome::ConnectError(connect_error(&e)),
    };
    let secrets = secrets_of(req);
    let status = response.status();
    let content_type = header(&response, "content-type");
    let bytes = match response.bytes().await {
        Ok(b) => b,
        Err(e) => return RefreshOutcome::ConnectError(connect_error(&e)),
    };
    if !status.is_success() {
        return RefreshOutcome::Failed(HttpCapture::new(
            status.as_u16(),
            content_type,
            &bytes,
            &secrets,
        ));
    }
    let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
    let access = parsed
        .as_ref()
        .and_then(|v| v.get("access_token"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    match access {
        Some(a) => RefreshOutcome::Succeeded(Tokens {
            access_token: a.to_string(),
            refresh_token: parsed
                .as_ref()
                .and_then(|v| v.get("refresh_token"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            expires_in: parsed
                .as_ref()
                .and_then(|v| v.get("expires_in"))
                .and_then(|e| {
                    e.as_u64()
                        .or_else(|| e.as_str().and_then(|s| s.parse().ok()))
                }),
        }),
        // A success without a token is an error answer all the same.
        None => RefreshOutcome::Failed(HttpCapture::new(
            status.as_u16(),
            content_type,
            &bytes,
            &secrets,
        )),
    }
}

fn secrets_of(req: &RefreshRequest) -> Vec<String> {
    let mut s = vec![req.refresh_token.clone()];
    if let ClientAuth::Basic(c) | ClientAuth::Post(c) = &req.auth {
        s.push(c.clone());
    }
    s
}

pub(crate) fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

pub(crate) fn connect_error(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
