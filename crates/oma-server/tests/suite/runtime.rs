//! The session runtime over HTTP with the fake Anthropic server: context compaction.

use std::sync::Arc;

use oma_model::{AnthropicConfig, AnthropicProvider, ModelProvider};
use oma_runtime::Providers;
use oma_testkit::fake_anthropic::FakeAnthropic;
use oma_testkit::fake_model::Reply;
use oma_testkit::{TestServer, backends};
use serde_json::json;

use super::turns::{say, wait_idle};

/// A server whose model window is 2,000 tokens (compaction at 80%), and a session on it.
async fn small_window_session(b: oma_testkit::Backend) -> (FakeAnthropic, TestServer, String) {
    let fake = FakeAnthropic::start().await;
    let provider: Arc<dyn ModelProvider> = Arc::new(
        AnthropicProvider::new(AnthropicConfig::new(fake.base_url.clone(), "fake-key")).unwrap(),
    );
    let s = TestServer::start_configured(b, Providers::new(Some(provider)), |c| {
        c.context_window_tokens = 2_000;
        c.compact_at = 0.8;
    })
    .await
    .unwrap();
    let (_, agent) = s
        .post(
            "/v1/agents",
            json!({"name": "c", "model": "claude-opus-4-8"}),
        )
        .await
        .unwrap();
    let (_, env) = s
        .post(
            "/v1/environments",
            json!({"name": "c", "config": {"type": "cloud"}}),
        )
        .await
        .unwrap();
    let (_, session) = s
        .post(
            "/v1/sessions",
            json!({"agent": agent["id"], "environment_id": env["id"]}),
        )
        .await
        .unwrap();
    let sid = session["id"].as_str().unwrap().to_string();
    (fake, s, sid)
}

#[tokio::test]
async fn context_near_the_window_is_compacted_and_the_session_keeps_working() {
    for b in backends() {
        let (fake, s, sid) = small_window_session(b).await;

        fake.push(Reply::text("first answer"));
        say(&s, &sid, &format!("FIRST {}", "alpha ".repeat(700))).await;
        let first = wait_idle(&s, &sid, 1).await;
        assert!(
            !first
                .iter()
                .any(|e| e["type"] == "agent.thread_context_compacted")
        );

        fake.push(Reply::text(
            "SUMMARY: the user sent two long messages about alpha and beta.",
        ));
        fake.push(Reply::text("second answer"));
        say(&s, &sid, &format!("SECOND {}", "beta ".repeat(700))).await;
        let events = wait_idle(&s, &sid, 2).await;
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        let compacted = kinds
            .iter()
            .rposition(|k| *k == "agent.thread_context_compacted")
            .expect("compacted");
        let last_start = kinds
            .iter()
            .rposition(|k| *k == "span.model_request_start")
            .unwrap();
        assert!(compacted < last_start, "{kinds:?}");
        assert_eq!(events.last().unwrap()["stop_reason"]["type"], "end_turn");
        assert!(events.iter().any(|e| e["type"] == "agent.message" && e["content"][0]["text"] == "second answer"));

        // The request after compaction carries the summary instead of the first message.
        let last = fake.last_request().unwrap().to_string();
        assert!(
            last.contains("SUMMARY: the user sent two long messages"),
            "{last}"
        );
        assert!(
            !last.contains("FIRST alpha"),
            "the compacted message is gone from the context"
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn a_context_that_cannot_be_compacted_to_fit_ends_the_turn() {
    for b in backends() {
        let (fake, s, sid) = small_window_session(b).await;

        // Every summary is itself larger than the window allows.
        let huge = "SUMMARY ".repeat(1_500);
        fake.push_all((0..3).map(|_| Reply::text(huge.clone())));
        fake.push(Reply::text("never asked"));
        say(&s, &sid, &"gamma ".repeat(2_000)).await;
        let events = wait_idle(&s, &sid, 1).await;
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        let compactions = kinds
            .iter()
            .filter(|k| **k == "agent.thread_context_compacted")
            .count();
        assert_eq!(compactions, 3, "{kinds:?}");
        assert!(!kinds.contains(&"span.model_request_start"), "{kinds:?}");
        let error = events
            .iter()
            .find(|e| e["type"] == "session.error")
            .expect("session.error");
        assert_eq!(error["error"]["type"], "compaction_limit_reached_error");
        assert_eq!(error["error"]["retry_status"]["type"], "exhausted");
        assert_eq!(
            events.last().unwrap()["stop_reason"]["type"],
            "retries_exhausted"
        );
        assert_eq!(fake.requests().len(), 3);
        s.stop().await;
    }
}
