//! `oma integrations add|list|remove` and `oma doctor` against the real binary, with a
//! running `oma serve` (the fake model) and a fake Slack on loopback: the integration added
//! from the command line answers a signed mention with a reply in its thread, doctor checks
//! its secret and prints the exact webhook URL, list never prints secrets, remove stops it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use oma_testkit::fake_anthropic::FakeAnthropic;
use oma_testkit::fake_model::Reply;
use serde_json::{Value, json};

const KEY: &str = "sk-integrations-cli";
const SECRET: &str = "cli-slack-signing-needle-9c2e";
const TOKEN: &str = "xoxb-cli-token-needle-51d0";

use common::{cli as oma, text};

type Posts = Arc<(Mutex<Vec<(Option<String>, Value)>>, tokio::sync::Notify)>;

/// A fake Slack Web API: records `chat.postMessage` calls and answers `{"ok": true, …}`.
async fn fake_slack() -> (String, Posts, tokio::task::JoinHandle<()>) {
    async fn post(State(p): State<Posts>, headers: HeaderMap, body: Bytes) -> axum::Json<Value> {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        p.0.lock().unwrap().push((auth, v.clone()));
        p.1.notify_waiters();
        axum::Json(json!({"ok": true, "channel": v["channel"], "ts": "1700000100.000100"}))
    }
    let posts: Posts = Arc::default();
    let app = axum::Router::new()
        .route("/api/chat.postMessage", axum::routing::post(post))
        .with_state(posts.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, posts, task)
}

#[tokio::test]
async fn an_integration_added_on_the_command_line_answers_a_mention() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fake = FakeAnthropic::start().await;
    fake.set_default(Some(Reply::text("Hello from oma.")));
    let (slack, posts, slack_task) = fake_slack().await;
    let server = common::serve(&data, KEY, &fake.base_url);
    let agent = common::http(
        &server.base,
        KEY,
        "POST",
        "/v1/agents",
        Some(json!({"name": "helper", "model": "claude-opus-4-8"})),
    );
    let env = common::http(
        &server.base,
        KEY,
        "POST",
        "/v1/environments",
        Some(json!({"name": "e", "config": {"type": "cloud"}})),
    );
    let agent_id = agent["id"].as_str().unwrap();
    let env_id = env["id"].as_str().unwrap();

    // Without --allow nothing would be allowed: the flag is required.
    let o = oma(
        &[
            "integrations",
            "add",
            "slack",
            "--agent",
            agent_id,
            "--environment",
            env_id,
            "--secret",
            SECRET,
        ],
        &data,
        &[],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("--allow"), "{}", text(&o));

    // The secret and token can come from the environment (kept out of `ps` and shell history).
    let public = "https://oma.example.com";
    let o = oma(
        &[
            "integrations",
            "add",
            "slack",
            "--agent",
            agent_id,
            "--environment",
            env_id,
            "--api-base",
            &slack,
            "--allow",
            "C0CLI",
        ],
        &data,
        &[
            ("OMA_INTEGRATION_SECRET", SECRET),
            ("OMA_INTEGRATION_TOKEN", TOKEN),
            ("OMA_PUBLIC_BASE_URL", public),
        ],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(!out.contains(SECRET) && !out.contains(TOKEN), "{out}");
    let url_line = out.lines().last().unwrap().to_string();
    let id = url_line
        .strip_prefix(&format!("{public}/v1/integrations/"))
        .and_then(|r| r.strip_suffix("/webhook"))
        .unwrap_or_else(|| panic!("the last line is the webhook URL: {out}"))
        .to_string();
    assert!(id.starts_with("intg_"), "{out}");

    // `list` shows it with its URL, never its secrets.
    let o = oma(
        &["integrations", "list"],
        &data,
        &[("OMA_PUBLIC_BASE_URL", public)],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains(&id) && out.contains("slack") && out.contains(&url_line),
        "{out}"
    );
    assert!(!out.contains(SECRET) && !out.contains(TOKEN), "{out}");

    // `doctor` checks the secret and prints the exact URL to register.
    let o = oma(&["doctor"], &data, &[("OMA_PUBLIC_BASE_URL", public)]);
    let out = text(&o);
    let line = out
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("doctor names the integration: {out}"));
    assert!(line.starts_with("ok"), "{out}");
    assert!(line.contains("signing secret and token present"), "{out}");
    assert!(line.contains(&url_line), "{out}");
    assert!(!out.contains(SECRET) && !out.contains(TOKEN), "{out}");

    // A signed mention through the running server gets its reply in the thread.
    let body = serde_json::to_vec(&json!({"type": "event_callback", "event_id": "Ev0CLI",
        "team_id": "T0", "event": {"type": "app_mention", "user": "U0A", "text": "<@U0BOT> hi",
        "ts": "1700000000.000100", "channel": "C0CLI", "event_ts": "1700000000.000100"}}))
    .unwrap();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let sig =
        oma_integrations::verify::sign(SECRET.as_bytes(), &[b"v0:", ts.as_bytes(), b":", &body]);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let webhook = format!("{}/v1/integrations/{id}/webhook", server.base);
    let send = |sig: String| {
        http.post(&webhook)
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", &ts)
            .header("x-slack-signature", format!("v0={sig}"))
            .body(body.clone())
            .send()
    };
    let resp = send(sig.clone()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let notified = posts.1.notified();
        if !posts.0.lock().unwrap().is_empty() {
            break;
        }
        assert!(
            tokio::time::timeout_at(deadline, notified).await.is_ok(),
            "no reply was posted"
        );
    }
    let (auth, post) = posts.0.lock().unwrap()[0].clone();
    assert_eq!(auth.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
    assert_eq!(post["channel"], "C0CLI");
    assert_eq!(post["thread_ts"], "1700000000.000100");
    assert_eq!(post["text"], "Hello from oma.");

    // A forged one is refused with the fix, never the secret.
    let resp = send("00".repeat(32)).await.unwrap();
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&id) && msg.contains("oma integrations add slack"),
        "{msg}"
    );

    // Each delivery and the reply are `integration_dispatch` operational events (written in
    // batches by the server: poll with a deadline).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let o = oma(
            &[
                "events",
                "query",
                "--kind",
                "integration_dispatch",
                "--group-by",
                "event,outcome",
                "--json",
            ],
            &data,
            &[],
        );
        let out = text(&o);
        assert!(o.status.success(), "{out}");
        let groups: Value =
            serde_json::from_str(&String::from_utf8_lossy(&o.stdout)).unwrap_or(Value::Null);
        let has = |event: &str, outcome: &str| {
            groups.as_array().is_some_and(|g| {
                g.iter().any(|r| {
                    r.to_string().contains(&format!("\"{event}\""))
                        && r.to_string().contains(&format!("\"{outcome}\""))
                })
            })
        };
        if has("app_mention", "ok") && has("webhook", "forged") && has("reply", "ok") {
            assert!(!out.contains(SECRET) && !out.contains(TOKEN), "{out}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no integration_dispatch events: {out}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Removed: its webhook is gone.
    let o = oma(&["integrations", "remove", &id], &data, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let resp = send(sig).await.unwrap();
    assert_eq!(resp.status(), 404);
    let o = oma(&["integrations", "remove", &id], &data, &[]);
    assert!(!o.status.success());
    drop(server);
    slack_task.abort();
}

#[tokio::test]
async fn an_oauth_integration_prints_its_redirect_url_and_single_use_install_links() {
    const CLIENT_SECRET: &str = "cli-client-secret-needle-a41f";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fake = FakeAnthropic::start().await;
    let server = common::serve(&data, KEY, &fake.base_url);
    let agent = common::http(
        &server.base,
        KEY,
        "POST",
        "/v1/agents",
        Some(json!({"name": "helper", "model": "claude-opus-4-8"})),
    );
    let env = common::http(
        &server.base,
        KEY,
        "POST",
        "/v1/environments",
        Some(json!({"name": "e", "config": {"type": "cloud"}})),
    );
    let (agent_id, env_id) = (agent["id"].as_str().unwrap(), env["id"].as_str().unwrap());
    let public = "https://oma.example.com";
    let add = |extra: &[&str], envs: &[(&str, &str)]| {
        let mut args = vec![
            "integrations",
            "add",
            "slack",
            "--agent",
            agent_id,
            "--environment",
            env_id,
            "--secret",
            SECRET,
            "--allow",
            "C0OAUTH",
        ];
        args.extend_from_slice(extra);
        oma(&args, &data, envs)
    };

    // A client id without its secret is refused before anything is stored.
    let o = add(
        &["--client-id", "1234.5678"],
        &[("OMA_PUBLIC_BASE_URL", public)],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("--client-secret"), "{}", text(&o));

    let o = add(
        &["--client-id", "1234.5678"],
        &[
            ("OMA_PUBLIC_BASE_URL", public),
            ("OMA_INTEGRATION_CLIENT_SECRET", CLIENT_SECRET),
        ],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        !out.contains(CLIENT_SECRET) && !out.contains(SECRET),
        "{out}"
    );
    let id = out
        .split(&format!("{public}/v1/integrations/"))
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("the webhook URL is printed: {out}"))
        .to_string();
    let redirect = format!("{public}/v1/integrations/{id}/oauth/callback");
    assert!(out.contains(&redirect), "{out}");
    assert!(out.contains("OAuth & Permissions"), "{out}");
    let link = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("https://slack.com/oauth/v2/authorize?"))
            .unwrap_or_else(|| panic!("an install link is printed: {out}"))
            .to_string()
    };
    let first = link(&out);
    assert!(
        first.contains("client_id=1234.5678") && first.contains("state="),
        "{first}"
    );

    // `install` makes a new link with another state.
    let o = oma(
        &["integrations", "install", &id],
        &data,
        &[("OMA_PUBLIC_BASE_URL", public)],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let second = link(&out);
    assert_ne!(first, second);

    // A made-up state is refused by the running server's callback, as is a used one.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = http
        .get(format!(
            "{}/v1/integrations/{id}/oauth/callback?code=x&state=made-up",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("oma integrations install {id}")),
        "{v}"
    );

    // `list` and `doctor` say it is not installed yet, with the redirect URL, never a secret.
    let o = oma(
        &["integrations", "list"],
        &data,
        &[("OMA_PUBLIC_BASE_URL", public)],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("oauth=not-installed") && out.contains(&redirect),
        "{out}"
    );
    assert!(!out.contains(CLIENT_SECRET), "{out}");
    let o = oma(&["doctor"], &data, &[("OMA_PUBLIC_BASE_URL", public)]);
    let out = text(&o);
    let line = out
        .lines()
        .find(|l| l.contains(&id) && l.contains("not installed yet"))
        .unwrap_or_else(|| panic!("doctor says it is not installed: {out}"));
    assert!(line.contains(&redirect), "{out}");
    assert!(
        out.contains(&format!("oma integrations install {id}")),
        "{out}"
    );
    assert!(!out.contains(CLIENT_SECRET), "{out}");
    drop(server);
}
