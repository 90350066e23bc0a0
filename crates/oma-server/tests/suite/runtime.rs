//! The session runtime over HTTP with the fake Anthropic server: context compaction.

use std::sync::Arc;

use oma_model::{AnthropicConfig, AnthropicProvider, ModelProvider};
use oma_runtime::Providers;
use oma_testkit::fake_anthropic::FakeAnthropic;
use oma_testkit::fake_model::Reply;
use oma_testkit::{TestServer, backends};
use serde_json::json;

use super::turns::{say, wait_idle};

#[tokio::test]
async fn context_near_the_window_is_compacted_and_the_session_keeps_working() {
    for b in backends() {
        let fake = FakeAnthropic::start().await;
        let provider: Arc<dyn ModelProvider> = Arc::new(
            AnthropicProvider::new(AnthropicConfig::new(fake.base_url.clone(), "fake-key"))
                .unwrap(),
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
