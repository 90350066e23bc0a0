//! End to end on a real server (`oma-testkit`, SQLite always and PostgreSQL when
//! `OMA_TEST_DATABASE_URL` is set) with the fake Anthropic model: a Slack mention, a GitHub
//! pull-request comment and a Linear agent session each run a real turn, and the reply is
//! posted to a fake of the service's API on loopback in its exact wire format; a reply whose
//! scope the integration lost during the turn is refused and nothing is posted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use oma_model::{AnthropicConfig, AnthropicProvider, ModelProvider};
use oma_runtime::Providers;
use oma_store::integrations::{IntegrationRow, NewIntegration};
use oma_testkit::TestServer;
use oma_testkit::fake_anthropic::{FakeAnthropic, Gate, Reply};
use serde_json::json;

const SECRET: &str = "e2e-signing-secret-needle";

fn providers(fake: &FakeAnthropic) -> Providers {
    let provider: Arc<dyn ModelProvider> = Arc::new(
        AnthropicProvider::new(AnthropicConfig::new(fake.base_url.clone(), "fake-key")).unwrap(),
    );
    Providers::new(Some(provider))
}

/// Text-only turns: no box is needed.
fn no_box(c: &mut oma_runtime::RuntimeConfig) {
    c.provision_at_create = false;
}

async fn server(b: oma_testkit::Backend, fake: &FakeAnthropic) -> TestServer {
    TestServer::start_configured(b, providers(fake), no_box)
        .await
        .unwrap()
}

async fn publish(
    s: &TestServer,
    kind: &str,
    api_base: String,
    allow: &str,
    token: &str,
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
                allow: vec![allow.into()],
                app_handle: handle.map(str::to_string),
                secret: SECRET.into(),
                token: Some(token.into()),
                oauth: None,
            },
            &s.state.sealer,
        )
        .await
        .unwrap()
}

fn url(s: &TestServer, row: &IntegrationRow) -> String {
    s.url(&oma_integrations::webhook_path(&row.id))
}

/// A Slack integration allowed in `channel`, replying through the fake Slack API.
async fn publish_slack(s: &TestServer, services: &FakeServices, channel: &str) -> IntegrationRow {
    let api = format!("{}/slack/api", services.base);
    publish(s, "slack", api, channel, "xoxb-test-token", None).await
}

/// Delivers a signed Slack mention (in `thread_ts`'s thread when given).
async fn mention(
    s: &TestServer,
    row: &IntegrationRow,
    event_id: &str,
    channel: &str,
    ts: &str,
    thread_ts: Option<&str>,
) -> (u16, serde_json::Value) {
    let body = slack_mention(event_id, channel, ts, thread_ts);
    let headers = slack_headers(SECRET, now_secs(), &body);
    deliver(&s.http, &url(s, row), &headers, &body).await
}

/// The events of a session, as the API lists them.
async fn kinds(s: &TestServer, sid: &str) -> Vec<String> {
    let (_, page) = s
        .get(&format!("/v1/sessions/{sid}/events?limit=100"))
        .await
        .unwrap();
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_slack_mention_runs_a_turn_and_replies_in_its_thread() {
    for b in oma_testkit::backends() {
        let fake = FakeAnthropic::start().await;
        fake.push(Reply::text("6 x 7 is 42."));
        fake.push(Reply::text("Still 42."));
        let services = FakeServices::start().await;
        let s = server(b, &fake).await;
        let row = publish_slack(&s, &services, "C0GENERAL").await;
        let (st, ack) = mention(&s, &row, "Ev0E2E", "C0GENERAL", "1700000000.000100", None).await;
        assert_eq!(st, 200, "{ack}");
        let sid = ack["session_id"].as_str().unwrap().to_string();

        let calls = services.wait_calls(1).await;
        assert_eq!(calls[0].path, "/slack/api/chat.postMessage");
        assert_eq!(
            calls[0].authorization.as_deref(),
            Some("Bearer xoxb-test-token")
        );
        assert_eq!(calls[0].body["channel"], "C0GENERAL");
        assert_eq!(calls[0].body["thread_ts"], "1700000000.000100");
        assert_eq!(calls[0].body["text"], "6 x 7 is 42.");
        // The model saw the mention.
        let req = fake.last_request().unwrap();
        assert!(req.to_string().contains("what is 6 x 7?"), "{req}");
        let log = kinds(&s, &sid).await;
        assert!(
            log.contains(&"user.message".to_string()) && log.contains(&"agent.message".to_string()),
            "{log:?}"
        );

        // A follow-up in the thread continues the same session and replies in the thread.
        let (st, ack) = mention(
            &s,
            &row,
            "Ev0E2E2",
            "C0GENERAL",
            "1700000000.000300",
            Some("1700000000.000100"),
        )
        .await;
        assert_eq!(st, 200, "{ack}");
        assert_eq!(ack["session_id"], sid.as_str());
        let calls = services.wait_calls(2).await;
        assert_eq!(calls[1].body["text"], "Still 42.");
        assert_eq!(calls[1].body["thread_ts"], "1700000000.000100");
        // The second turn's model request carried the first exchange (one conversation).
        assert!(
            fake.last_request()
                .unwrap()
                .to_string()
                .contains("6 x 7 is 42.")
        );
        assert_eq!(fake.requests().len(), 2);
        // Every reply is settled.
        wait_settled(&s).await;
        s.stop().await;
    }
}

/// Waits until no reply is owed on the server's database for its tenant.
async fn wait_settled(s: &TestServer) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let owed = s
            .store
            .pending_integration_replies()
            .await
            .unwrap()
            .into_iter()
            .filter(|p| p.tenant_id == s.tenant)
            .count();
        if owed == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{owed} replies still owed"
        );
        // Polling with a deadline: the settle is a row deleted by a background task.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_github_pr_comment_mentioning_the_app_gets_a_comment_back() {
    for b in oma_testkit::backends() {
        let fake = FakeAnthropic::start().await;
        fake.push(Reply::text(
            "The build fails because of a missing semicolon.",
        ));
        let services = FakeServices::start().await;
        let s = server(b, &fake).await;
        let row = publish(
            &s,
            "github",
            format!("{}/github", services.base),
            "acme/*",
            "ghs_installation_token",
            Some("oma-bot"),
        )
        .await;
        let body = github_comment("acme/web", 12, "@oma-bot why is CI red?");
        let h = github_headers(
            SECRET,
            "issue_comment",
            "11111111-2222-3333-4444-555555555555",
            &body,
        );
        let (st, ack) = deliver(&s.http, &url(&s, &row), &h, &body).await;
        assert_eq!(st, 200, "{ack}");
        let calls = services.wait_calls(1).await;
        assert_eq!(calls[0].path, "/github/repos/acme/web/issues/12/comments");
        assert_eq!(
            calls[0].authorization.as_deref(),
            Some("Bearer ghs_installation_token")
        );
        assert_eq!(
            calls[0].body,
            json!({"body": "The build fails because of a missing semicolon."})
        );
        wait_settled(&s).await;
        assert_eq!(fake.requests().len(), 1);
        s.stop().await;
    }
}

#[tokio::test]
async fn a_linear_agent_session_gets_a_thought_then_a_response() {
    for b in oma_testkit::backends() {
        let fake = FakeAnthropic::start().await;
        fake.push(Reply::text("Fixed: the config path was wrong."));
        let services = FakeServices::start().await;
        let s = server(b, &fake).await;
        let row = publish(
            &s,
            "linear",
            format!("{}/linear/graphql", services.base),
            "ENG",
            "lin_oauth_token",
            None,
        )
        .await;
        let body = linear_session_event(
            "created",
            "as-e2e",
            "ENG",
            "The app crashes on start",
            now_secs() * 1000,
        );
        let (st, ack) = deliver(
            &s.http,
            &url(&s, &row),
            &linear_headers(SECRET, "ld-e2e", &body),
            &body,
        )
        .await;
        assert_eq!(st, 200, "{ack}");
        let calls = services.wait_calls(2).await;
        for c in &calls {
            assert_eq!(c.path, "/linear/graphql");
            assert_eq!(c.authorization.as_deref(), Some("Bearer lin_oauth_token"));
            assert!(
                c.body["query"]
                    .as_str()
                    .unwrap()
                    .contains("agentActivityCreate")
            );
            assert_eq!(c.body["variables"]["input"]["agentSessionId"], "as-e2e");
        }
        assert_eq!(
            calls[0].body["variables"]["input"]["content"]["type"],
            "thought"
        );
        assert_eq!(
            calls[1].body["variables"]["input"]["content"],
            json!({"type": "response", "body": "Fixed: the config path was wrong."})
        );
        // A prompt in the same agent session continues the oma session.
        fake.push(Reply::text("And the tests pass."));
        let body = linear_session_event(
            "prompted",
            "as-e2e",
            "ENG",
            "run the tests too",
            now_secs() * 1000,
        );
        let (st, again) = deliver(
            &s.http,
            &url(&s, &row),
            &linear_headers(SECRET, "ld-e2e-2", &body),
            &body,
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(again["session_id"], ack["session_id"]);
        let calls = services.wait_calls(4).await;
        assert_eq!(
            calls[3].body["variables"]["input"]["content"],
            json!({"type": "response", "body": "And the tests pass."})
        );
        wait_settled(&s).await;
        s.stop().await;
    }
}

#[tokio::test]
async fn a_reply_outside_the_integrations_scope_is_refused_and_nothing_is_posted() {
    for b in oma_testkit::backends() {
        let fake = FakeAnthropic::start().await;
        let gate = Gate::new();
        fake.push(Reply::text("a secret answer").gated(1, &gate));
        let services = FakeServices::start().await;
        let s = server(b, &fake).await;
        let row = publish_slack(&s, &services, "C0OPEN").await;
        let (st, ack) = mention(&s, &row, "Ev0SCOPE", "C0OPEN", "1700000000.000100", None).await;
        assert_eq!(st, 200, "{ack}");
        let sid = ack["session_id"].as_str().unwrap().to_string();
        // While the turn runs, the operator narrows the integration to another channel.
        gate.reached().await;
        s.store
            .set_integration_allow(&s.tenant, &row.id, &["C0OTHER".to_string()])
            .await
            .unwrap();
        gate.open();
        wait_settled(&s).await;
        // The turn ended (its answer is in the log) and nothing was posted.
        assert!(kinds(&s, &sid).await.contains(&"agent.message".to_string()));
        assert!(services.calls().is_empty(), "{:?}", services.calls());
        s.stop().await;
    }
}

#[tokio::test]
async fn a_conversation_keeps_its_session_across_a_restart() {
    for b in oma_testkit::backends() {
        let fake = FakeAnthropic::start().await;
        fake.push(Reply::text("first answer"));
        fake.push(Reply::text("second answer"));
        let services = FakeServices::start().await;
        let s = server(b, &fake).await;
        let row = publish_slack(&s, &services, "C0GENERAL").await;
        let (_, ack) = mention(&s, &row, "Ev0R1", "C0GENERAL", "1700000000.000100", None).await;
        let sid = ack["session_id"].as_str().unwrap().to_string();
        services.wait_calls(1).await;
        wait_settled(&s).await;

        // A new server process on the same database (as `oma serve` does at start, it resumes
        // the replies still owed: none here).
        let s = s
            .restart_configured(providers(&fake), no_box)
            .await
            .unwrap();
        s.state.integrations.resume_replies().await;
        let (st, ack) = mention(
            &s,
            &row,
            "Ev0R2",
            "C0GENERAL",
            "1700000000.000200",
            Some("1700000000.000100"),
        )
        .await;
        assert_eq!(st, 200, "{ack}");
        assert_eq!(ack["session_id"], sid.as_str());
        let calls = services.wait_calls(2).await;
        assert_eq!(calls[1].body["text"], "second answer");
        assert_eq!(calls[1].body["thread_ts"], "1700000000.000100");
        // The first delivery, sent again after the restart, is still known.
        let (_, again) = mention(&s, &row, "Ev0R1", "C0GENERAL", "1700000000.000100", None).await;
        assert_eq!(again["duplicate"], true, "{again}");
        wait_settled(&s).await;
        assert_eq!(services.calls().len(), 2);
        s.stop().await;
    }
}
