//! OAuth installs and token refresh end to end, on a real server (SQLite always, PostgreSQL
//! when `OMA_TEST_DATABASE_URL` is set) with the fake model, against fakes of each service's
//! OAuth endpoints in their exact wire format (Slack `oauth.v2.access`, Linear `/oauth/token`,
//! GitHub `POST /app/installations/{id}/access_tokens` checking the app's RS256 JWT) and reply
//! APIs that accept only the tokens the fake issued and has not revoked.
//!
//! Shown: the callback refuses a missing, unknown, reused or expired `state` and stores
//! nothing; a good one stores the tokens sealed; a token near its expiry is refreshed before a
//! reply (once, for two replies at the same time); a token the service refuses is refreshed
//! once and the reply retried; a GitHub App install mints installation tokens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use common::*;
use oma_integrations::oauth;
use oma_model::{AnthropicConfig, AnthropicProvider, ModelProvider};
use oma_runtime::Providers;
use oma_store::integrations::{IntegrationRow, NewIntegration, OAuthApp};
use oma_store::ops_events::{OpsFilter, OpsPage};
use oma_testkit::TestServer;
use oma_testkit::fake_anthropic::{FakeAnthropic, Reply};
use serde_json::{Value, json};

const SECRET: &str = "oauth-signing-secret-needle";
const CLIENT_ID: &str = "1234.5678";
const CLIENT_SECRET: &str = "client-secret-needle-7f3a";
const APP_ID: &str = "424242";
const GITHUB_KEY: &str = include_str!("fixtures/TEST-ONLY-github-app-key.pem");

// ---- the fake services ---------------------------------------------------------------------

#[derive(Default)]
struct Auth {
    /// Access tokens the reply APIs accept.
    live: HashSet<String>,
    /// Refresh tokens the token endpoints accept (each works once: rotation).
    refresh: HashSet<String>,
    /// Authorization codes not exchanged yet.
    codes: HashSet<String>,
    /// `expires_in` of the next grant.
    expires_in: i64,
    issued: usize,
    exchanges: usize,
    refreshes: usize,
    jwts: usize,
    /// Every reply call: (path, authorization, accepted).
    replies: Vec<(String, String, bool)>,
    redirect_uri: Option<String>,
}

#[derive(Default)]
struct Shared {
    auth: Mutex<Auth>,
    changed: tokio::sync::Notify,
}

struct FakeAuth {
    base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAuth {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn form(body: &Bytes) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn bearer(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string()
}

impl Auth {
    fn issue(&mut self, prefix: &str) -> (String, String) {
        self.issued += 1;
        let access = format!("{prefix}-access-{}", self.issued);
        let refresh = format!("{prefix}-refresh-{}", self.issued);
        self.live.insert(access.clone());
        self.refresh.insert(refresh.clone());
        (access, refresh)
    }

    /// Checks a token request (RFC 6749 §4.1.3 / §6); `Err` is the OAuth error code.
    fn grant(&mut self, f: &HashMap<String, String>, prefix: &str) -> Result<Value, &'static str> {
        if f.get("client_id").map(String::as_str) != Some(CLIENT_ID)
            || f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
        {
            return Err("invalid_client");
        }
        match f.get("grant_type").map(String::as_str) {
            Some("refresh_token") => {
                let r = f.get("refresh_token").cloned().unwrap_or_default();
                if !self.refresh.remove(&r) {
                    return Err("invalid_grant");
                }
                self.refreshes += 1;
            }
            // Slack's code exchange carries no grant_type; Linear's says authorization_code.
            None | Some("authorization_code") => {
                let code = f.get("code").cloned().unwrap_or_default();
                if !self.codes.remove(&code) {
                    return Err("invalid_code");
                }
                if f.get("redirect_uri") != self.redirect_uri.as_ref() {
                    return Err("bad_redirect_uri");
                }
                self.exchanges += 1;
            }
            Some(_) => return Err("unsupported_grant_type"),
        }
        let (access, refresh) = self.issue(prefix);
        Ok(json!({"access_token": access, "refresh_token": refresh,
            "expires_in": self.expires_in}))
    }
}

async fn slack_oauth(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let mut a = s.auth.lock().unwrap();
    match a.grant(&form(&body), "xoxe.xoxb") {
        Ok(mut g) => {
            g["ok"] = json!(true);
            g["token_type"] = json!("bot");
            g["scope"] = json!(oauth::SLACK_SCOPES);
            g["bot_user_id"] = json!("U0BOT");
            g["app_id"] = json!("A0APP");
            g["team"] = json!({"id": "T0TEAM", "name": "Team"});
            axum::Json(g).into_response()
        }
        // Slack answers 200 with ok:false.
        Err(e) => axum::Json(json!({"ok": false, "error": e})).into_response(),
    }
}

async fn slack_post(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let token = bearer(&headers);
    let mut a = s.auth.lock().unwrap();
    let ok = a.live.contains(&token);
    a.replies.push(("chat.postMessage".into(), token, ok));
    s.changed.notify_waiters();
    if !ok {
        return axum::Json(json!({"ok": false, "error": "token_expired"})).into_response();
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    axum::Json(json!({"ok": true, "channel": v["channel"], "ts": "1700000099.000200"}))
        .into_response()
}

async fn linear_oauth(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let mut a = s.auth.lock().unwrap();
    match a.grant(&form(&body), "lin_oauth") {
        Ok(mut g) => {
            g["token_type"] = json!("Bearer");
            g["scope"] = json!("read write app:assignable app:mentionable");
            axum::Json(g).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": e, "error_description": "refused"})),
        )
            .into_response(),
    }
}

async fn linear_graphql(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let token = bearer(&headers);
    let mut a = s.auth.lock().unwrap();
    let ok = a.live.contains(&token);
    a.replies.push(("graphql".into(), token, ok));
    s.changed.notify_waiters();
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(
                json!({"errors": [{"message": "Authentication required, not authenticated",
                "extensions": {"code": "AUTHENTICATION_ERROR"}}]}),
            ),
        )
            .into_response();
    }
    axum::Json(json!({"data": {"agentActivityCreate": {"success": true,
        "agentActivity": {"id": "aa-1"}}}}))
    .into_response()
}

/// Verifies the app's JWT as GitHub does: RS256 under the app's public key, `iss` the app id,
/// issued in the past and not expired.
fn github_jwt_ok(jwt: &str) -> bool {
    let key = oauth::rsa_key(GITHUB_KEY).unwrap();
    let public = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        key.public().as_ref().to_vec(),
    );
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return false;
    }
    let Ok(sig) = b64.decode(parts[2]) else {
        return false;
    };
    if public
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .is_err()
    {
        return false;
    }
    let header: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    let now = now_secs();
    header["alg"] == "RS256"
        && claims["iss"] == APP_ID
        && claims["iat"].as_i64().unwrap() <= now
        && claims["exp"].as_i64().unwrap() > now
        && claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 600
}

async fn github_token(
    State(s): State<Arc<Shared>>,
    Path(installation): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !github_jwt_ok(&bearer(&headers)) || installation != "42" {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "A JSON web token could not be decoded",
                "documentation_url": "https://docs.github.com/rest"})),
        )
            .into_response();
    }
    let mut a = s.auth.lock().unwrap();
    a.jwts += 1;
    a.issued += 1;
    let token = format!("ghs_installation_{}", a.issued);
    a.live.insert(token.clone());
    (
        StatusCode::CREATED,
        axum::Json(json!({"token": token, "expires_at": "2099-01-01T00:00:00Z",
            "permissions": {"issues": "write"}, "repository_selection": "all"})),
    )
        .into_response()
}

async fn github_comment_post(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let token = bearer(&headers);
    let mut a = s.auth.lock().unwrap();
    let ok = a.live.contains(&token);
    a.replies.push(("comments".into(), token, ok));
    s.changed.notify_waiters();
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    }
    (StatusCode::CREATED, axum::Json(json!({"id": 1}))).into_response()
}

impl FakeAuth {
    async fn start() -> FakeAuth {
        let shared = Arc::new(Shared::default());
        shared.auth.lock().unwrap().expires_in = 43_200;
        let app = Router::new()
            .route("/slack/api/oauth.v2.access", post(slack_oauth))
            .route("/slack/api/chat.postMessage", post(slack_post))
            .route("/linear/oauth/token", post(linear_oauth))
            .route("/linear/graphql", post(linear_graphql))
            .route(
                "/github/app/installations/{id}/access_tokens",
                post(github_token),
            )
            .route(
                "/github/repos/{owner}/{repo}/issues/{number}/comments",
                post(github_comment_post),
            )
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeAuth { base, shared, task }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Auth) -> T) -> T {
        f(&mut self.shared.auth.lock().unwrap())
    }

    /// Waits (up to 60 s) until `n` reply calls were accepted.
    async fn wait_accepted(&self, n: usize) -> Vec<(String, String, bool)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let notified = self.shared.changed.notified();
            let replies = self.with(|a| a.replies.clone());
            if replies.iter().filter(|r| r.2).count() >= n {
                return replies;
            }
            assert!(
                tokio::time::timeout_at(deadline, notified).await.is_ok(),
                "waited 60 s for {n} accepted replies; got {replies:?}"
            );
        }
    }
}

// ---- the server ----------------------------------------------------------------------------

async fn server(b: oma_testkit::Backend, fake: &FakeAnthropic) -> TestServer {
    let provider: Arc<dyn ModelProvider> = Arc::new(
        AnthropicProvider::new(AnthropicConfig::new(fake.base_url.clone(), "fake-key")).unwrap(),
    );
    let s = TestServer::start_configured(b, Providers::new(Some(provider)), |c| {
        c.provision_at_create = false;
    })
    .await
    .unwrap();
    // Operational events written to the server's database, where the tests read them.
    let _ = s
        .state
        .runtime
        .clone()
        .with_ops(oma_ops::OpsRecorder::start(
            s.store.clone(),
            Default::default(),
        ));
    s.state
        .integrations
        .set_public_base_url(Some(s.base.clone()));
    s
}

async fn publish(
    s: &TestServer,
    kind: &str,
    api_base: String,
    app: OAuthApp,
    handle: Option<&str>,
) -> IntegrationRow {
    let (agent_id, environment_id) = agent_and_environment(s).await;
    s.store
        .create_integration(
            &s.tenant,
            &NewIntegration {
                kind: kind.into(),
                agent_id,
                environment_id,
                api_base,
                allow: vec!["*".into()],
                app_handle: handle.map(str::to_string),
                secret: SECRET.into(),
                token: None,
                oauth: Some(app),
            },
            &s.state.sealer,
        )
        .await
        .unwrap()
}

fn slack_app() -> OAuthApp {
    OAuthApp {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
    }
}

/// The install link's query, as a map.
fn link_query(link: &str) -> HashMap<String, String> {
    let (_, q) = link.split_once('?').unwrap();
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

async fn callback(s: &TestServer, row: &IntegrationRow, query: &str) -> (u16, Value) {
    let url = format!("{}{}?{query}", s.base, oauth::callback_path(&row.id));
    // No API key: the state is the authentication.
    let resp = s.http.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn reload(s: &TestServer, row: &IntegrationRow) -> IntegrationRow {
    s.store
        .integration(&s.tenant, &row.id)
        .await
        .unwrap()
        .unwrap()
}

/// Installs a Slack integration through the callback; returns the access token issued.
async fn install_slack(s: &TestServer, auth: &FakeAuth, row: &IntegrationRow) -> String {
    let link = oauth::install_link(&s.store, row, &s.base).await.unwrap();
    let q = link_query(&link);
    auth.with(|a| {
        a.codes.insert("code-ok".into());
        a.redirect_uri = Some(q["redirect_uri"].clone());
    });
    let (st, v) = callback(s, row, &format!("code=code-ok&state={}", q["state"])).await;
    assert_eq!(st, 200, "{v}");
    let secrets = s
        .store
        .open_integration_secrets(&reload(s, row).await, &s.state.sealer)
        .unwrap();
    secrets.token.unwrap()
}

/// The `integration_dispatch` events of `event`, as (outcome, fields), polled until `want`
/// are there (the server writes operational events in batches).
async fn dispatched(s: &TestServer, event: &str, want: usize) -> Vec<(String, Value)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let filter = OpsFilter {
            kinds: vec!["integration_dispatch".into()],
            // PostgreSQL's database is shared by the tests running at once.
            tenant: Some(s.tenant.clone()),
            ..OpsFilter::default()
        };
        let (rows, _) = s
            .store
            .query_ops_events(
                &filter,
                &OpsPage {
                    limit: 1000,
                    after: None,
                },
            )
            .await
            .unwrap();
        let found: Vec<(String, Value)> = rows
            .into_iter()
            .filter(|e| e.fields.get("event").and_then(Value::as_str) == Some(event))
            .map(|e| (e.outcome, Value::Object(e.fields)))
            .collect();
        if found.len() >= want {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{want} `{event}` events expected, got {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- the tests -----------------------------------------------------------------------------

#[tokio::test]
async fn the_callback_refuses_a_bad_reused_or_expired_state_and_stores_the_tokens_sealed() {
    for b in oma_testkit::backends() {
        let fake = FakeAnthropic::start().await;
        let auth = FakeAuth::start().await;
        let s = server(b, &fake).await;
        let row = publish(
            &s,
            "slack",
            format!("{}/slack/api", auth.base),
            slack_app(),
            None,
        )
        .await;
        assert!(row.has_oauth_app() && !row.has_token());

        let link = oauth::install_link(&s.store, &row, &s.base).await.unwrap();
        assert!(
            link.starts_with("https://slack.com/oauth/v2/authorize?"),
            "{link}"
        );
        let q = link_query(&link);
        assert_eq!(q["client_id"], CLIENT_ID);
        assert_eq!(
            q["redirect_uri"],
            format!("{}/v1/integrations/{}/oauth/callback", s.base, row.id)
        );
        auth.with(|a| {
            a.codes.insert("code-ok".into());
            a.redirect_uri = Some(q["redirect_uri"].clone());
        });

        // No state, an unknown one: refused, nothing exchanged or stored.
        let (st, v) = callback(&s, &row, "code=code-ok").await;
        assert_eq!(st, 400, "{v}");
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let (st, v) = callback(&s, &row, "code=code-ok&state=forged-state").await;
        assert_eq!(st, 400, "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(&row.id)
                && msg.contains("unknown or was used already")
                && msg.contains("oma integrations install"),
            "{msg}"
        );
        assert_eq!(auth.with(|a| a.exchanges), 0);
        assert!(!reload(&s, &row).await.has_token());

        // The right one: the code becomes tokens, sealed at rest.
        let (st, v) = callback(&s, &row, &format!("code=code-ok&state={}", q["state"])).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["integration_id"], row.id.as_str());
        let stored = reload(&s, &row).await;
        assert!(stored.has_token() && stored.can_refresh());
        assert_eq!(stored.app_handle.as_deref(), Some("U0BOT"));
        let expires = stored.token_expires_at.unwrap();
        let in_12h = oma_core::time::now_micros() + 43_200_000_000;
        assert!((in_12h - expires).abs() < 60_000_000, "{expires}");
        let secrets = s
            .store
            .open_integration_secrets(&stored, &s.state.sealer)
            .unwrap();
        assert_eq!(secrets.token.as_deref(), Some("xoxe.xoxb-access-1"));
        assert_eq!(
            secrets.refresh_token.as_deref(),
            Some("xoxe.xoxb-refresh-1")
        );
        assert_eq!(secrets.client_secret.as_deref(), Some(CLIENT_SECRET));
        let raw: (String, String, String) = sqlx::query_as(
            "SELECT token, refresh_token, oauth_client_secret FROM integrations WHERE id = $1",
        )
        .bind(&row.id)
        .fetch_one(s.store.reader())
        .await
        .unwrap();
        let raw = format!("{raw:?}");
        assert!(
            !raw.contains("access-1") && !raw.contains("refresh-1") && !raw.contains(CLIENT_SECRET),
            "stored in the clear: {raw}"
        );

        // The same state again: used up.
        auth.with(|a| a.codes.insert("code-ok".into()));
        let (st, v) = callback(&s, &row, &format!("code=code-ok&state={}", q["state"])).await;
        assert_eq!(st, 400, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("used already")
        );

        // An expired one.
        let old = s
            .store
            .begin_integration_install(&s.tenant, &row.id, Duration::ZERO)
            .await
            .unwrap();
        let (st, v) = callback(&s, &row, &format!("code=code-ok&state={old}")).await;
        assert_eq!(st, 400, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("expired"),
            "{v}"
        );

        // A state of another integration does not install this one.
        let other = publish(
            &s,
            "slack",
            format!("{}/slack/api", auth.base),
            slack_app(),
            None,
        )
        .await;
        let theirs = s
            .store
            .begin_integration_install(&s.tenant, &other.id, oauth::STATE_TTL)
            .await
            .unwrap();
        let (st, _) = callback(&s, &row, &format!("code=code-ok&state={theirs}")).await;
        assert_eq!(st, 400);

        // A declined install uses its state up and says so.
        let declined = s
            .store
            .begin_integration_install(&s.tenant, &row.id, oauth::STATE_TTL)
            .await
            .unwrap();
        let (st, v) = callback(&s, &row, &format!("error=access_denied&state={declined}")).await;
        assert_eq!(st, 400, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("declined"),
            "{v}"
        );

        assert_eq!(auth.with(|a| a.exchanges), 1);
        let events = dispatched(&s, "oauth_callback", 6).await;
        let outcomes: Vec<&str> = events.iter().map(|(o, _)| o.as_str()).collect();
        for want in ["ok", "refused", "expired", "declined"] {
            assert!(outcomes.contains(&want), "{outcomes:?}");
        }
        let all = format!("{events:?}");
        assert!(
            !all.contains(CLIENT_SECRET) && !all.contains("access-1"),
            "{all}"
        );
    }
}

#[tokio::test]
async fn a_token_near_its_expiry_is_refreshed_once_before_two_replies() {
    for b in oma_testkit::backends() {
        let fake = FakeAnthropic::start().await;
        fake.push(Reply::text("first answer"));
        fake.push(Reply::text("second answer"));
        let auth = FakeAuth::start().await;
        let s = server(b, &fake).await;
        let row = publish(
            &s,
            "slack",
            format!("{}/slack/api", auth.base),
            slack_app(),
            None,
        )
        .await;
        // The install's token expires inside the refresh margin; the refreshed one does not.
        auth.with(|a| a.expires_in = 60);
        let first = install_slack(&s, &auth, &row).await;
        auth.with(|a| a.expires_in = 43_200);

        let url = s.url(&oma_integrations::webhook_path(&row.id));
        let send = |event: &'static str, channel: &'static str| {
            let body = slack_mention(event, channel, "1700000000.000100", None);
            let headers = slack_headers(SECRET, now_secs(), &body);
            let http = s.http.clone();
            let url = url.clone();
            async move { deliver(&http, &url, &headers, &body).await }
        };
        let (a, b2) = tokio::join!(send("Ev0ONE", "C0ONE"), send("Ev0TWO", "C0TWO"));
        assert_eq!(a.0, 200, "{a:?}");
        assert_eq!(b2.0, 200, "{b2:?}");

        let replies = auth.wait_accepted(2).await;
        // Both replies used the refreshed token; the expiring one was never sent; one refresh.
        assert!(replies.iter().all(|r| r.2 && r.1 != first), "{replies:?}");
        assert_eq!(auth.with(|a| a.refreshes), 1);
        let stored = reload(&s, &row).await;
        let secrets = s
            .store
            .open_integration_secrets(&stored, &s.state.sealer)
            .unwrap();
        assert_eq!(secrets.token.as_deref(), Some(replies[0].1.as_str()));
        assert!(!oauth::needs_refresh(
            stored.token_expires_at,
            oma_core::time::now_micros()
        ));
        let events = dispatched(&s, "token_refresh", 1).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].0, "ok");
        assert_eq!(events[0].1["reason"], "expiring");
    }
}

#[tokio::test]
async fn a_refused_token_is_refreshed_once_and_the_reply_retried() {
    for b in oma_testkit::backends() {
        let fake = FakeAnthropic::start().await;
        fake.push(Reply::text("the answer"));
        let auth = FakeAuth::start().await;
        let s = server(b, &fake).await;
        let row = publish(
            &s,
            "linear",
            format!("{}/linear/graphql", auth.base),
            slack_app(),
            None,
        )
        .await;
        // Linear: the same callback, the code exchanged at /oauth/token.
        let link = oauth::install_link(&s.store, &row, &s.base).await.unwrap();
        assert!(
            link.starts_with("https://linear.app/oauth/authorize?"),
            "{link}"
        );
        let q = link_query(&link);
        assert_eq!(q["actor"], "app");
        auth.with(|a| {
            a.codes.insert("lin-code".into());
            a.redirect_uri = Some(q["redirect_uri"].clone());
        });
        let (st, v) = callback(&s, &row, &format!("code=lin-code&state={}", q["state"])).await;
        assert_eq!(st, 200, "{v}");
        // The service revokes it early (the stored expiry is hours away).
        auth.with(|a| a.live.clear());

        let now_ms = oma_core::time::now_micros() / 1000;
        let body = linear_session_event("created", "ses-oauth-1", "ENG", "Fix the crash", now_ms);
        let headers = linear_headers(SECRET, "dlv-oauth-1", &body);
        let (st, v) = deliver(
            &s.http,
            &s.url(&oma_integrations::webhook_path(&row.id)),
            &headers,
            &body,
        )
        .await;
        assert_eq!(st, 200, "{v}");

        // The first thought is refused, the token refreshed once, then thought and response go out.
        let replies = auth.wait_accepted(2).await;
        assert!(!replies[0].2, "{replies:?}");
        assert_eq!(auth.with(|a| a.refreshes), 1, "{replies:?}");
        assert!(replies[1..].iter().all(|r| r.2), "{replies:?}");
        let events = dispatched(&s, "token_refresh", 1).await;
        assert_eq!(events[0].0, "ok");
        assert_eq!(events[0].1["reason"], "refused");
    }
}

#[tokio::test]
async fn a_github_app_install_mints_installation_tokens_with_a_signed_jwt() {
    for b in oma_testkit::backends() {
        let fake = FakeAnthropic::start().await;
        fake.push(Reply::text("LGTM"));
        let auth = FakeAuth::start().await;
        let s = server(b, &fake).await;
        let app = OAuthApp {
            client_id: APP_ID.into(),
            client_secret: GITHUB_KEY.into(),
        };
        let row = publish(
            &s,
            "github",
            format!("{}/github", auth.base),
            app,
            Some("oma-bot"),
        )
        .await;
        let link = oauth::install_link(&s.store, &row, &s.base).await.unwrap();
        assert!(
            link.starts_with("https://github.com/apps/oma-bot/installations/new?state="),
            "{link}"
        );
        let state = link_query(&link)["state"].clone();
        // GitHub sends the admin to the setup URL with the installation.
        let (st, v) = callback(
            &s,
            &row,
            &format!("installation_id=42&setup_action=install&state={state}"),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        let stored = reload(&s, &row).await;
        assert_eq!(stored.installation_id.as_deref(), Some("42"));
        assert_eq!(stored.app_handle.as_deref(), Some("oma-bot"));
        assert_eq!(auth.with(|a| a.jwts), 1);

        let body = github_comment("acme/widgets", 7, "@oma-bot please review");
        let headers = github_headers(SECRET, "issue_comment", "gh-dlv-1", &body);
        let (st, v) = deliver(
            &s.http,
            &s.url(&oma_integrations::webhook_path(&row.id)),
            &headers,
            &body,
        )
        .await;
        assert_eq!(st, 200, "{v}");
        let replies = auth.wait_accepted(1).await;
        assert_eq!(replies[0].0, "comments");
        assert!(replies[0].1.starts_with("ghs_installation_"), "{replies:?}");

        // A bad installation id is refused before anything is asked of GitHub.
        let state = s
            .store
            .begin_integration_install(&s.tenant, &row.id, oauth::STATE_TTL)
            .await
            .unwrap();
        let (st, v) = callback(&s, &row, &format!("installation_id=../../x&state={state}")).await;
        assert_eq!(st, 400, "{v}");
        assert_eq!(auth.with(|a| a.jwts), 1);
    }
}
