//! An agent's MCP servers through real turns: a real MCP server on loopback (oma-testkit's
//! `FakeMcp`, rmcp over streamable HTTP) and the fake Anthropic model. MCP traffic goes through
//! each session's egress proxy, which the operator opens to loopback (`127.0.0.1`) here.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use oma_model::{AnthropicConfig, AnthropicProvider, ModelProvider};
use oma_runtime::Providers;
use oma_testkit::fake_anthropic::FakeAnthropic;
use oma_testkit::fake_mcp::FakeMcp;
use oma_testkit::fake_model::Reply;
use oma_testkit::{TestEgress, TestServer, backends};
use serde_json::{Value, json};

async fn server(b: oma_testkit::Backend, fake: &FakeAnthropic) -> TestServer {
    let provider: Arc<dyn ModelProvider> = Arc::new(
        AnthropicProvider::new(AnthropicConfig::new(fake.base_url.clone(), "fake-key")).unwrap(),
    );
    // The MCP servers and token endpoints of these tests are on loopback: the operator opens
    // it (every outbound request goes through the egress).
    let egress = TestEgress {
        allow: vec!["127.0.0.1".into()],
        upstream_roots: Vec::new(),
    };
    TestServer::start_with_egress(b, Providers::new(Some(provider)), |_| {}, egress)
        .await
        .unwrap()
}

/// Events of the session once it is idle with `stop` as the last stop reason, after at least
/// `turns` idles.
async fn wait_idle(s: &TestServer, sid: &str, turns: usize, stop: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, page) = s
            .get(&format!("/v1/sessions/{sid}/events?limit=1000"))
            .await
            .unwrap();
        let events = page["data"].as_array().cloned().unwrap_or_default();
        let idles: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "session.status_idle")
            .collect();
        if idles.len() >= turns
            && events
                .last()
                .is_some_and(|e| e["type"] == "session.status_idle")
            && idles.last().unwrap()["stop_reason"]["type"] == stop
        {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "session never went idle ({stop}): {page}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn post_ok(s: &TestServer, path: &str, body: Value) -> Value {
    let (status, v) = s.post(path, body).await.unwrap();
    assert!(status == 200 || status == 201, "{path}: {status} {v}");
    v
}

async fn say(s: &TestServer, sid: &str, text: &str) {
    post_ok(
        s,
        &format!("/v1/sessions/{sid}/events"),
        json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": text}]}]}),
    )
    .await;
}

/// A loopback URL nobody listens on.
async fn dead_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", l.local_addr().unwrap());
    drop(l);
    url
}

fn of_type<'a>(events: &'a [Value], t: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == t).collect()
}

async fn agent_with(s: &TestServer, servers: &[(&str, &str)]) -> Value {
    let tools: Vec<Value> = servers
        .iter()
        .map(|(n, _)| json!({"type": "mcp_toolset", "mcp_server_name": n}))
        .collect();
    let mcp: Vec<Value> = servers
        .iter()
        .map(|(n, u)| json!({"type": "url", "name": n, "url": u}))
        .collect();
    post_ok(
        s,
        "/v1/agents",
        json!({"name": "m", "model": "claude-opus-4-8", "tools": tools, "mcp_servers": mcp}),
    )
    .await
}

async fn vault_with(s: &TestServer, auth: Value) -> (String, String) {
    let vault = post_ok(s, "/v1/vaults", json!({"display_name": "v"})).await;
    let vid = vault["id"].as_str().unwrap().to_string();
    let cred = post_ok(
        s,
        &format!("/v1/vaults/{vid}/credentials"),
        json!({ "auth": auth }),
    )
    .await;
    (vid, cred["id"].as_str().unwrap().to_string())
}

/// An `mcp_oauth` credential for `url` whose refresh grant goes to `endpoint`.
fn oauth(url: &str, access_token: &str, refresh_token: &str, endpoint: &str) -> Value {
    json!({"type": "mcp_oauth", "mcp_server_url": url, "access_token": access_token,
           "refresh": {"client_id": "c1", "refresh_token": refresh_token, "token_endpoint": endpoint,
                       "token_endpoint_auth": {"type": "none"}}})
}

/// An agent with one MCP server at `url`, named `name`, whose tools run without asking.
async fn allowing_agent(s: &TestServer, name: &str, url: &str) -> Value {
    post_ok(
        s,
        "/v1/agents",
        json!({"name": "m", "model": "claude-opus-4-8",
               "tools": [{"type": "mcp_toolset", "mcp_server_name": name,
                          "default_config": {"permission_policy": {"type": "always_allow"}}}],
               "mcp_servers": [{"type": "url", "name": name, "url": url}]}),
    )
    .await
}

async fn session(s: &TestServer, agent: &Value, env: Value, vaults: &[&str]) -> String {
    let env = post_ok(s, "/v1/environments", json!({"name": "e", "config": env})).await;
    let session = post_ok(
        s,
        "/v1/sessions",
        json!({"agent": agent["id"], "environment_id": env["id"], "vault_ids": vaults}),
    )
    .await;
    session["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_mcp_tool_is_discovered_confirmed_and_called_with_the_vault_token() {
    for b in backends() {
        let fake = FakeAnthropic::start().await;
        let mcp = FakeMcp::start_requiring(Some("vault-secret-7781")).await;
        let s = server(b, &fake).await;
        let (vid, _) = vault_with(
            &s,
            json!({"type": "static_bearer", "mcp_server_url": mcp.url, "token": "vault-secret-7781"}),
        )
        .await;
        let down = dead_url().await;
        let agent = agent_with(&s, &[("fake", &mcp.url), ("down", &down)]).await;
        let sid = session(&s, &agent, json!({"type": "cloud"}), &[&vid]).await;

        fake.push(Reply::tool_use("mcp__fake__echo", json!({"text": "hi"})));
        fake.push(Reply::text("done"));
        say(&s, &sid, "use the echo tool").await;

        // MCP tools default to always_ask: the call waits for the user.
        let events = wait_idle(&s, &sid, 1, "requires_action").await;
        let errors = of_type(&events, "session.error");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0]["error"]["type"], "mcp_connection_failed_error");
        assert_eq!(errors[0]["error"]["mcp_server_name"], "down");
        let uses = of_type(&events, "agent.mcp_tool_use");
        assert_eq!(uses.len(), 1, "{events:?}");
        let use_ev = uses[0];
        assert_eq!(use_ev["mcp_server_name"], "fake");
        assert_eq!(use_ev["name"], "echo");
        assert_eq!(use_ev["input"], json!({"text": "hi"}));
        assert_eq!(use_ev["evaluated_permission"], "ask");
        let idle = events.last().unwrap();
        assert_eq!(idle["stop_reason"]["event_ids"], json!([use_ev["id"]]));
        assert!(
            mcp.calls().is_empty(),
            "nothing runs before the user allows it"
        );

        // The model was offered the server's tools with their schemas.
        let first = fake.requests()[0].clone();
        let offered: Vec<&str> = first["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(offered, vec!["mcp__fake__echo", "mcp__fake__add"]);
        assert_eq!(
            first["tools"][0]["input_schema"]["required"],
            json!(["text"])
        );

        post_ok(
            &s,
            &format!("/v1/sessions/{sid}/events"),
            json!({"events": [{"type": "user.tool_confirmation", "tool_use_id": use_ev["id"], "result": "allow"}]}),
        )
        .await;
        let events = wait_idle(&s, &sid, 2, "end_turn").await;
        let results = of_type(&events, "agent.mcp_tool_result");
        assert_eq!(results.len(), 1);
        assert_eq!(results[0]["mcp_tool_use_id"], use_ev["id"]);
        assert_eq!(results[0]["is_error"], false);
        assert_eq!(results[0]["content"][0]["text"], "echo: hi");
        assert_eq!(
            mcp.calls(),
            vec![("echo".to_string(), json!({"text": "hi"}))]
        );
        // The second model request carries the result under the offered name.
        let second = fake.last_request().unwrap().to_string();
        assert!(second.contains("echo: hi") && second.contains("mcp__fake__echo"));

        // The server got the vault's token on every request; nobody else ever saw it.
        let auths = mcp.authorizations();
        assert!(!auths.is_empty());
        assert!(
            auths
                .iter()
                .all(|a| a.as_deref() == Some("Bearer vault-secret-7781")),
            "{auths:?}"
        );
        for r in fake.requests() {
            assert!(!r.to_string().contains("vault-secret-7781"));
        }
        assert!(
            !serde_json::to_string(&events)
                .unwrap()
                .contains("vault-secret-7781")
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn a_refused_or_closed_mcp_server_is_a_non_blocking_error() {
    for b in backends() {
        let fake = FakeAnthropic::start().await;
        let locked = FakeMcp::start_requiring(Some("only-this")).await;
        let s = server(b, &fake).await;
        // The right credential exists, in a vault the session does not attach: it is never
        // used, so the connection goes without one and is refused.
        vault_with(
            &s,
            json!({"type": "static_bearer", "mcp_server_url": locked.url, "token": "only-this"}),
        )
        .await;
        let agent = agent_with(&s, &[("locked", &locked.url)]).await;
        let sid = session(&s, &agent, json!({"type": "cloud"}), &[]).await;
        fake.push(Reply::text("carried on"));
        say(&s, &sid, "hello").await;
        let events = wait_idle(&s, &sid, 1, "end_turn").await;
        let errors = of_type(&events, "session.error");
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0]["error"]["type"],
            "mcp_authentication_failed_error"
        );
        assert_eq!(errors[0]["error"]["mcp_server_name"], "locked");
        assert!(of_type(&events, "agent.message")[0]["content"][0]["text"] == "carried on");
        assert!(locked.authorizations().iter().all(Option::is_none));
        assert!(
            fake.requests()[0]
                .get("tools")
                .is_none_or(|t| t.as_array().is_some_and(Vec::is_empty))
        );

        // Limited networking without `allow_mcp_servers` keeps the servers closed (named by
        // `localhost` here, which the operator did not open).
        let open = FakeMcp::start().await;
        let agent = agent_with(&s, &[("open", &open.url.replace("127.0.0.1", "localhost"))]).await;
        let env = json!({"type": "cloud", "networking": {"type": "limited", "allowed_hosts": [], "allow_mcp_servers": false}});
        let sid = session(&s, &agent, env, &[]).await;
        fake.push(Reply::text("ok"));
        say(&s, &sid, "hello").await;
        let events = wait_idle(&s, &sid, 1, "end_turn").await;
        let errors = of_type(&events, "session.error");
        assert_eq!(errors[0]["error"]["type"], "mcp_connection_failed_error");
        assert!(
            errors[0]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("allow_mcp_servers")
        );
        assert!(
            open.authorizations().is_empty(),
            "the server was never contacted"
        );
        s.stop().await;
    }
}

/// A token endpoint that accepts refresh token `rt-1` once and issues `at-fresh`.
async fn token_endpoint() -> (String, Arc<Mutex<usize>>, tokio::task::JoinHandle<()>) {
    let hits = Arc::new(Mutex::new(0usize));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/token",
        post(move |body: String| {
            let h = h.clone();
            async move {
                *h.lock().unwrap() += 1;
                if body.contains("refresh_token=rt-1") {
                    (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({"access_token": "at-fresh", "expires_in": 3600})),
                    )
                } else {
                    (
                        axum::http::StatusCode::BAD_REQUEST,
                        axum::Json(json!({"error": "invalid_grant"})),
                    )
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", l.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (url, hits, task)
}

#[tokio::test]
async fn mcp_oauth_validate_probes_live_and_refreshes_once() {
    for b in backends() {
        let fake = FakeAnthropic::start().await;
        let mcp = FakeMcp::start_requiring(Some("at-fresh")).await;
        let (endpoint, hits, task) = token_endpoint().await;
        let s = server(b, &fake).await;
        let (vid, cid) = vault_with(&s, oauth(&mcp.url, "at-stale", "rt-1", &endpoint)).await;
        let path = format!("/v1/vaults/{vid}/credentials/{cid}/mcp_oauth_validate");
        let v = post_ok(&s, &path, Value::Null).await;
        assert_eq!(v["type"], "vault_credential_validation");
        assert_eq!(v["status"], "valid", "{v}");
        assert_eq!(v["has_refresh_token"], true);
        assert_eq!(v["refresh"]["status"], "succeeded");
        assert!(v["mcp_probe"].is_null());
        assert_eq!(*hits.lock().unwrap(), 1);
        // The new token was stored: the next probe needs no refresh.
        let v = post_ok(&s, &path, Value::Null).await;
        assert_eq!(v["status"], "valid");
        assert!(v["refresh"].is_null());
        assert_eq!(*hits.lock().unwrap(), 1);
        assert!(!v.to_string().contains("at-fresh"));

        // The server rotates its token and the grant is gone: invalid, with both responses.
        mcp.require(Some("at-newer"));
        let (vid2, cid2) = vault_with(&s, oauth(&mcp.url, "at-x", "rt-revoked", &endpoint)).await;
        let v = post_ok(
            &s,
            &format!("/v1/vaults/{vid2}/credentials/{cid2}/mcp_oauth_validate"),
            Value::Null,
        )
        .await;
        assert_eq!(v["status"], "invalid", "{v}");
        assert_eq!(v["mcp_probe"]["method"], "initialize");
        assert_eq!(v["mcp_probe"]["http_response"]["status_code"], 401);
        assert_eq!(v["refresh"]["status"], "failed");
        assert_eq!(v["refresh"]["http_response"]["status_code"], 400);

        // An unreachable server is `unknown` (transient), not a verdict on the credential.
        let down = dead_url().await;
        let (vid3, cid3) = vault_with(
            &s,
            json!({"type": "static_bearer", "mcp_server_url": down, "token": "t"}),
        )
        .await;
        let v = post_ok(
            &s,
            &format!("/v1/vaults/{vid3}/credentials/{cid3}/mcp_oauth_validate"),
            Value::Null,
        )
        .await;
        assert_eq!(v["status"], "unknown", "{v}");
        assert!(v["mcp_probe"]["http_response"].is_null());
        task.abort();
        s.stop().await;
    }
}

#[tokio::test]
async fn a_refused_oauth_token_is_refreshed_before_the_session_uses_the_server() {
    for b in backends() {
        let fake = FakeAnthropic::start().await;
        let mcp = FakeMcp::start_requiring(Some("at-fresh")).await;
        let (endpoint, hits, task) = token_endpoint().await;
        let s = server(b, &fake).await;
        let (vid, _) = vault_with(&s, oauth(&mcp.url, "at-stale", "rt-1", &endpoint)).await;
        let agent = agent_with(&s, &[("fake", &mcp.url)]).await;
        let sid = session(&s, &agent, json!({"type": "cloud"}), &[&vid]).await;
        fake.push(Reply::text("ok"));
        say(&s, &sid, "hello").await;
        let events = wait_idle(&s, &sid, 1, "end_turn").await;
        assert!(of_type(&events, "session.error").is_empty(), "{events:?}");
        assert_eq!(*hits.lock().unwrap(), 1);
        let offered = fake.requests()[0]["tools"].to_string();
        assert!(offered.contains("mcp__fake__echo"));
        assert!(
            mcp.authorizations()
                .contains(&Some("Bearer at-fresh".to_string()))
        );
        task.abort();
        s.stop().await;
    }
}

#[tokio::test]
async fn mcp_servers_on_the_servers_own_network_are_refused_by_default() {
    let b = backends()[0];
    let fake = FakeAnthropic::start().await;
    let mcp = FakeMcp::start().await;
    let provider: Arc<dyn ModelProvider> = Arc::new(
        AnthropicProvider::new(AnthropicConfig::new(fake.base_url.clone(), "fake-key")).unwrap(),
    );
    let s = TestServer::start_with_egress(
        b,
        Providers::new(Some(provider)),
        |_| {},
        TestEgress::default(),
    )
    .await
    .unwrap();
    let agent = agent_with(&s, &[("local", &mcp.url)]).await;
    let sid = session(&s, &agent, json!({"type": "cloud"}), &[]).await;
    fake.push(Reply::text("ok"));
    say(&s, &sid, "hello").await;
    let events = wait_idle(&s, &sid, 1, "end_turn").await;
    let errors = of_type(&events, "session.error");
    assert_eq!(errors[0]["error"]["type"], "mcp_connection_failed_error");
    assert!(
        errors[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("private, loopback or link-local address")
    );
    let (vid, cid) = vault_with(
        &s,
        json!({"type": "static_bearer", "mcp_server_url": mcp.url, "token": "t"}),
    )
    .await;
    let v = post_ok(
        &s,
        &format!("/v1/vaults/{vid}/credentials/{cid}/mcp_oauth_validate"),
        Value::Null,
    )
    .await;
    assert_eq!(v["status"], "unknown");
    assert!(
        mcp.authorizations().is_empty(),
        "the server was never contacted"
    );
    s.stop().await;
}

#[tokio::test]
async fn an_always_allow_toolset_runs_mcp_calls_without_asking() {
    let b = backends()[0];
    let fake = FakeAnthropic::start().await;
    let mcp = FakeMcp::start().await;
    let s = server(b, &fake).await;
    let agent = post_ok(
        &s,
        "/v1/agents",
        json!({"name": "m", "model": "claude-opus-4-8",
               "tools": [{"type": "mcp_toolset", "mcp_server_name": "calc",
                          "default_config": {"permission_policy": {"type": "always_allow"}},
                          "configs": [{"name": "echo", "enabled": false}]}],
               "mcp_servers": [{"type": "url", "name": "calc", "url": mcp.url}]}),
    )
    .await;
    let sid = session(&s, &agent, json!({"type": "cloud"}), &[]).await;
    fake.push(Reply::tool_use("mcp__calc__add", json!({"a": 2, "b": 3})));
    fake.push(Reply::text("five"));
    say(&s, &sid, "add").await;
    let events = wait_idle(&s, &sid, 1, "end_turn").await;
    let use_ev = of_type(&events, "agent.mcp_tool_use")[0];
    assert_eq!(use_ev["evaluated_permission"], "allow");
    let result = of_type(&events, "agent.mcp_tool_result")[0];
    assert_eq!(result["content"][0]["text"], "5");
    // A disabled tool is not offered.
    let offered = fake.requests()[0]["tools"].to_string();
    assert!(offered.contains("mcp__calc__add") && !offered.contains("mcp__calc__echo"));
    s.stop().await;
}

#[tokio::test]
async fn concurrent_refreshes_store_one_token() {
    for b in backends() {
        let fake = FakeAnthropic::start().await;
        let mcp = FakeMcp::start().await;
        mcp.require_any(&["at-fresh-1", "at-fresh-2"]);
        // A token endpoint that issues a new token per exchange. (Refreshes racing across
        // nodes, settled by the store's compare-and-swap, are tested in crates/oma-egress.)
        let hits = Arc::new(tokio::sync::Mutex::new(0usize));
        let h = hits.clone();
        let app = axum::Router::new().route(
            "/token",
            post(move || {
                let h = h.clone();
                async move {
                    let n = {
                        let mut g = h.lock().await;
                        *g += 1;
                        *g
                    };
                    axum::Json(json!({"access_token": format!("at-fresh-{n}"), "expires_in": 3600}))
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}/token", l.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        let s = server(b, &fake).await;
        let (vid, cid) = vault_with(&s, oauth(&mcp.url, "at-stale", "rt-1", &endpoint)).await;
        let path = format!("/v1/vaults/{vid}/credentials/{cid}/mcp_oauth_validate");
        let (a, b2) = tokio::join!(
            post_ok(&s, &path, Value::Null),
            post_ok(&s, &path, Value::Null)
        );
        // One exchange; the other validation waited for it and judged the stored token.
        assert_eq!(*hits.lock().await, 1);
        for v in [&a, &b2] {
            assert_eq!(v["status"], "valid", "{v}");
        }
        let exchanged = [&a, &b2]
            .iter()
            .filter(|v| v["refresh"]["status"] == "succeeded")
            .count();
        assert_eq!(exchanged, 1, "{a} {b2}");
        let fresh: Vec<String> = mcp
            .authorizations()
            .into_iter()
            .flatten()
            .filter(|a| a.contains("at-fresh"))
            .collect();
        assert!(fresh.iter().all(|a| a == "Bearer at-fresh-1"), "{fresh:?}");
        mcp.require(Some("at-fresh-1"));
        let v = post_ok(&s, &path, Value::Null).await;
        assert_eq!(v["status"], "valid");
        assert!(
            v["refresh"].is_null(),
            "the stored token works without a refresh"
        );
        assert_eq!(*hits.lock().await, 1);
        task.abort();
        s.stop().await;
    }
}

#[tokio::test]
async fn the_first_attached_vault_with_a_matching_credential_wins() {
    let b = backends()[0];
    let fake = FakeAnthropic::start().await;
    let mcp = FakeMcp::start_requiring(Some("right")).await;
    let s = server(b, &fake).await;
    // Matched by normalised URL: scheme and host case and a trailing slash do not matter.
    let loose = mcp.url.replace("http://", "HTTP://") + "/";
    let (right, _) = vault_with(
        &s,
        json!({"type": "static_bearer", "mcp_server_url": loose, "token": "right"}),
    )
    .await;
    let (wrong, _) = vault_with(
        &s,
        json!({"type": "static_bearer", "mcp_server_url": mcp.url, "token": "wrong"}),
    )
    .await;
    let agent = agent_with(&s, &[("m", &mcp.url)]).await;
    for (vaults, ok) in [([&right, &wrong], true), ([&wrong, &right], false)] {
        let sid = session(
            &s,
            &agent,
            json!({"type": "cloud"}),
            &[vaults[0].as_str(), vaults[1].as_str()],
        )
        .await;
        fake.push(Reply::text("ok"));
        say(&s, &sid, "hello").await;
        let events = wait_idle(&s, &sid, 1, "end_turn").await;
        let errors = of_type(&events, "session.error");
        if ok {
            assert!(errors.is_empty(), "{errors:?}");
        } else {
            assert_eq!(
                errors[0]["error"]["type"],
                "mcp_authentication_failed_error"
            );
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn denied_and_interrupted_mcp_calls_get_mcp_results_without_running() {
    let b = backends()[0];
    let fake = FakeAnthropic::start().await;
    let mcp = FakeMcp::start().await;
    let s = server(b, &fake).await;
    let agent = agent_with(&s, &[("fake", &mcp.url)]).await;
    let sid = session(&s, &agent, json!({"type": "cloud"}), &[]).await;

    // Denied: the model reads the refusal and answers.
    fake.push(Reply::tool_use("mcp__fake__echo", json!({"text": "a"})));
    fake.push(Reply::text("understood"));
    say(&s, &sid, "one").await;
    let events = wait_idle(&s, &sid, 1, "requires_action").await;
    let first = of_type(&events, "agent.mcp_tool_use")[0]["id"].clone();
    post_ok(
        &s,
        &format!("/v1/sessions/{sid}/events"),
        json!({"events": [{"type": "user.tool_confirmation", "tool_use_id": first, "result": "deny", "deny_message": "not now"}]}),
    )
    .await;
    let events = wait_idle(&s, &sid, 2, "end_turn").await;
    let denied = of_type(&events, "agent.mcp_tool_result");
    assert_eq!(denied[0]["mcp_tool_use_id"], first);
    assert_eq!(denied[0]["is_error"], true);
    assert!(
        denied[0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("not now")
    );

    // Interrupted while waiting for the user.
    fake.push(Reply::tool_use("mcp__fake__echo", json!({"text": "b"})));
    say(&s, &sid, "two").await;
    let events = wait_idle(&s, &sid, 3, "requires_action").await;
    let uses = of_type(&events, "agent.mcp_tool_use");
    let second = uses.last().unwrap()["id"].clone();
    post_ok(
        &s,
        &format!("/v1/sessions/{sid}/events"),
        json!({"events": [{"type": "user.interrupt"}]}),
    )
    .await;
    let events = wait_idle(&s, &sid, 4, "end_turn").await;
    let results = of_type(&events, "agent.mcp_tool_result");
    let last = results.last().unwrap();
    assert_eq!(last["mcp_tool_use_id"], second);
    assert_eq!(last["is_error"], true);
    assert!(of_type(&events, "agent.tool_result").is_empty());
    assert!(mcp.calls().is_empty(), "nothing ran");
    s.stop().await;
}

#[tokio::test]
async fn a_token_refused_mid_turn_is_refreshed_and_the_call_retried() {
    let b = backends()[0];
    let fake = FakeAnthropic::start().await;
    // Accepts the stored token at first; the authorization server then revokes it.
    let mcp = FakeMcp::start_requiring(Some("at-stale")).await;
    let (endpoint, hits, task) = token_endpoint().await;
    let s = server(b, &fake).await;
    let (vid, _) = vault_with(&s, oauth(&mcp.url, "at-stale", "rt-1", &endpoint)).await;
    let agent = allowing_agent(&s, "fake", &mcp.url).await;
    let sid = session(&s, &agent, json!({"type": "cloud"}), &[&vid]).await;
    let gate = oma_testkit::fake_model::Gate::new();
    fake.push(Reply::tool_use("mcp__fake__echo", json!({"text": "x"})).gated(1, &gate));
    fake.push(Reply::text("done"));
    say(&s, &sid, "go").await;
    // Connected with the old token; it is revoked before the call.
    gate.reached().await;
    mcp.require(Some("at-fresh"));
    gate.open();
    let events = wait_idle(&s, &sid, 1, "end_turn").await;
    let result = of_type(&events, "agent.mcp_tool_result")[0];
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["content"][0]["text"], "echo: x");
    assert_eq!(*hits.lock().unwrap(), 1);
    assert!(of_type(&events, "session.error").is_empty());
    task.abort();
    s.stop().await;
}

/// A minimal stdio MCP server in Python (standard library only): `where` tells where it runs
/// and leaves a file in its working directory; `pid` gives its process id; `fetch` GETs a URL through the box's
/// `HTTP_PROXY`, without the box's `NO_PROXY` (which rightly keeps loopback URLs in the box),
/// and returns the status or the error.
const STDIO_SERVER: &str = r#"
import json, os, sys, urllib.request
def answer(mid, result):
    print(json.dumps({"jsonrpc": "2.0", "id": mid, "result": result}), flush=True)
for line in sys.stdin:
    msg = json.loads(line)
    mid, method = msg.get("id"), msg.get("method")
    if mid is None:
        continue
    if method == "initialize":
        answer(mid, {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                     "serverInfo": {"name": "inbox", "version": "1"}})
    elif method == "tools/list":
        obj = {"type": "object", "properties": {"url": {"type": "string"}}}
        answer(mid, {"tools": [{"name": "where", "description": "where am I", "inputSchema": obj},
                               {"name": "fetch", "description": "GET a URL", "inputSchema": obj},
                               {"name": "pid", "description": "my process id", "inputSchema": obj}]})
    elif method == "tools/call" and msg["params"]["name"] == "pid":
        answer(mid, {"content": [{"type": "text", "text": str(os.getpid())}]})
    elif method == "tools/call" and msg["params"]["name"] == "where":
        open("made-by-mcp.txt", "w").write("hello from the box")
        text = "cwd=%s uid=%d greeting=%s" % (os.getcwd(), os.getuid(), os.environ.get("GREETING"))
        answer(mid, {"content": [{"type": "text", "text": text}]})
    elif method == "tools/call":
        try:
            for k in ("NO_PROXY", "no_proxy"):
                os.environ.pop(k, None)
            proxy = urllib.request.ProxyHandler({"http": os.environ["HTTP_PROXY"]})
            url = msg["params"]["arguments"]["url"]
            text = "status %d" % urllib.request.build_opener(proxy).open(url, timeout=10).status
        except Exception as e:
            text = "failed: %s" % e
        answer(mid, {"content": [{"type": "text", "text": text}]})
    else:
        print(json.dumps({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": method}}), flush=True)
"#;

/// An agent whose one MCP server is `STDIO_SERVER`, run with `python3 -c`, plus one that
/// cannot start; every call runs without asking.
async fn stdio_agent(s: &TestServer) -> Value {
    post_ok(
        s,
        "/v1/agents",
        json!({"name": "m", "model": "claude-opus-4-8",
               "tools": [
                   {"type": "mcp_toolset", "mcp_server_name": "inbox",
                    "default_config": {"permission_policy": {"type": "always_allow"}}},
                   {"type": "mcp_toolset", "mcp_server_name": "broken"}],
               "mcp_servers": [
                   {"type": "stdio", "name": "inbox", "command": "python3",
                    "args": ["-u", "-c", STDIO_SERVER], "env": {"GREETING": "hi"}},
                   {"type": "stdio", "name": "broken", "command": "python3",
                    "args": ["-c", "import sys; sys.stderr.write('no such module: mcp_missing'); sys.exit(3)"]}]}),
    )
    .await
}

/// Runs one turn in which the model calls `tool` of the in-box server; returns the events.
async fn stdio_turn(s: &TestServer, fake: &FakeAnthropic, tool: &str, input: Value) -> Vec<Value> {
    let agent = stdio_agent(s).await;
    let sid = session(s, &agent, json!({"type": "cloud"}), &[]).await;
    fake.push(Reply::tool_use(format!("mcp__inbox__{tool}"), input));
    fake.push(Reply::text("done"));
    say(s, &sid, "go").await;
    wait_idle(s, &sid, 1, "end_turn").await
}

fn assert_broken_server_reported(events: &[Value]) {
    let errors = of_type(events, "session.error");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["error"]["type"], "mcp_connection_failed_error");
    assert_eq!(errors[0]["error"]["mcp_server_name"], "broken");
    let message = errors[0]["error"]["message"].as_str().unwrap();
    assert!(message.contains("mcp_missing"), "{message}");
}

#[tokio::test]
async fn a_stdio_mcp_server_runs_in_the_sessions_box() {
    let b = backends()[0];
    let fake = FakeAnthropic::start().await;
    let s = server(b, &fake).await;
    let events = stdio_turn(&s, &fake, "where", json!({})).await;
    assert_broken_server_reported(&events);
    let result = of_type(&events, "agent.mcp_tool_result")[0];
    assert_eq!(result["is_error"], false, "{result}");
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("greeting=hi"), "{text}");
    // The local backend: the process works in the session's workspace folder on the host.
    let cwd = text.split(' ').next().unwrap().trim_start_matches("cwd=");
    assert!(
        std::path::Path::new(cwd).join("made-by-mcp.txt").exists(),
        "{text}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_stdio_mcp_server_lives_on_across_turns_of_its_host() {
    let b = backends()[0];
    let fake = FakeAnthropic::start().await;
    let s = server(b, &fake).await;
    let agent = stdio_agent(&s).await;
    let sid = session(&s, &agent, json!({"type": "cloud"}), &[]).await;
    let mut pids = Vec::new();
    for turn in 1..=2 {
        fake.push(Reply::tool_use("mcp__inbox__pid", json!({})));
        fake.push(Reply::text("done"));
        say(&s, &sid, "pid?").await;
        let events = wait_idle(&s, &sid, turn, "end_turn").await;
        let results = of_type(&events, "agent.mcp_tool_result");
        pids.push(results.last().unwrap()["content"][0]["text"].clone());
        // The server that cannot start is tried again each turn, and said so each time.
        assert_eq!(of_type(&events, "session.error").len(), turn);
    }
    assert_eq!(pids[0], pids[1], "the same process answered both turns");
    s.stop().await;
}

#[tokio::test]
async fn a_stdio_mcp_server_in_an_isolated_box_sees_the_box_and_its_proxy() {
    let b = backends()[0];
    let fake = FakeAnthropic::start().await;
    // A plain HTTP server on loopback, which only the proxy can reach from the box.
    let app = axum::Router::new().route("/ping", axum::routing::get(|| async { "pong" }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ping = format!("http://{}/ping", l.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    let egress = TestEgress {
        allow: vec!["127.0.0.1".into()],
        upstream_roots: Vec::new(),
    };
    let Some(s) =
        TestServer::start_isolated_with(b, super::turns::providers(&fake), |_| {}, Some(egress))
            .await
            .unwrap()
    else {
        return;
    };
    let events = stdio_turn(&s, &fake, "where", json!({})).await;
    assert_broken_server_reported(&events);
    let text = of_type(&events, "agent.mcp_tool_result")[0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(text, "cwd=/workspace uid=1000 greeting=hi");

    // Its network is the box's: the session's proxy, under the environment's policy.
    // (The box has no network interface but loopback: only the proxy could have carried it.)
    let events = stdio_turn(&s, &fake, "fetch", json!({"url": ping})).await;
    let text = of_type(&events, "agent.mcp_tool_result")[0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(text, "status 200");
    task.abort();
    s.stop().await;
}

#[tokio::test]
async fn a_legacy_sse_mcp_server_is_used_through_the_proxy_with_the_vault_token() {
    let b = backends()[0];
    let fake = FakeAnthropic::start().await;
    let legacy =
        oma_testkit::fake_mcp::FakeLegacyMcp::start(oma_testkit::fake_mcp::LegacyOptions {
            token: Some("legacy-secret-42".into()),
            ..Default::default()
        })
        .await;
    let s = server(b, &fake).await;
    let (vid, _) = vault_with(
        &s,
        json!({"type": "static_bearer", "mcp_server_url": legacy.url, "token": "legacy-secret-42"}),
    )
    .await;
    let agent = allowing_agent(&s, "old", &legacy.url).await;
    let sid = session(&s, &agent, json!({"type": "cloud"}), &[&vid]).await;
    fake.push(Reply::tool_use("mcp__old__echo", json!({"text": "sse"})));
    fake.push(Reply::text("done"));
    say(&s, &sid, "go").await;
    let events = wait_idle(&s, &sid, 1, "end_turn").await;
    assert!(of_type(&events, "session.error").is_empty(), "{events:?}");
    let result = of_type(&events, "agent.mcp_tool_result")[0];
    assert_eq!(result["content"][0]["text"], "echo: sse", "{result}");
    assert_eq!(
        legacy.calls(),
        vec![("echo".to_string(), json!({"text": "sse"}))]
    );
    // Every request of the legacy transport carried the token the proxy added.
    let requests = legacy.requests();
    assert!(requests.len() >= 2, "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|(_, auth)| auth.as_deref() == Some("Bearer legacy-secret-42")),
        "{requests:?}"
    );
    s.stop().await;
}
