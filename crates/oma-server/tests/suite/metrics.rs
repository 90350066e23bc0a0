//! The Prometheus listener after a scripted turn: request counters by route template, errors,
//! latency histograms, events appended, tool calls and model requests by outcome, storage and
//! process figures. Counters are process-wide and other tests run in parallel in this binary,
//! so the checks compare before/after and ask for at least what this run must have produced.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oma_model::{AnthropicConfig, AnthropicProvider, ModelProvider};
use oma_runtime::Providers;
use oma_testkit::fake_anthropic::FakeAnthropic;
use oma_testkit::fake_model::Reply;
use oma_testkit::{TestServer, backends};
use serde_json::json;

/// `name{labels}` → value, from the text format.
fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

async fn scrape(http: &reqwest::Client, url: &str) -> (String, HashMap<String, f64>) {
    let resp = http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.unwrap();
    let map = parse(&text);
    (text, map)
}

fn at(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn a_scripted_turn_shows_up_in_the_metrics() {
    for b in backends() {
        let fake = FakeAnthropic::start().await;
        let provider: Arc<dyn ModelProvider> = Arc::new(
            AnthropicProvider::new(AnthropicConfig::new(fake.base_url.clone(), "fake-key"))
                .unwrap(),
        );
        let s = TestServer::start_with(b, Providers::new(Some(provider)))
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_url = format!("http://{}/metrics", listener.local_addr().unwrap());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let metrics = tokio::spawn(oma_server::metrics::serve(
            listener,
            s.state.clone(),
            async {
                let _ = stop_rx.await;
            },
        ));
        let (_, before) = scrape(&s.http, &metrics_url).await;

        let (_, agent) = s
            .post(
                "/v1/agents",
                json!({"name": "m", "model": "claude-opus-4-8",
                       "tools": [{"type": "agent_toolset_20260401"}]}),
            )
            .await
            .unwrap();
        let (_, env) = s
            .post(
                "/v1/environments",
                json!({"name": "m", "config": {"type": "cloud"}}),
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
        fake.push(Reply::tool_use("bash", json!({"command": "echo fine"})));
        fake.push(Reply::tool_use(
            "read",
            json!({"file_path": "/nonexistent/nothing-here.txt"}),
        ));
        fake.push(Reply::text("done"));
        let (status, v) = s
            .post(
                &format!("/v1/sessions/{sid}/events"),
                json!({"events": [{"type": "user.message",
                                   "content": [{"type": "text", "text": "go"}]}]}),
            )
            .await
            .unwrap();
        assert_eq!(status, 200, "{v}");

        // Idle after the answer: every event of the turn is committed.
        let deadline = Instant::now() + Duration::from_secs(30);
        let events = loop {
            let (_, page) = s
                .get(&format!("/v1/sessions/{sid}/events?limit=1000"))
                .await
                .unwrap();
            let events = page["data"].as_array().cloned().unwrap_or_default();
            if events
                .last()
                .is_some_and(|e| e["type"] == "session.status_idle")
            {
                break events;
            }
            assert!(Instant::now() < deadline, "the turn never ended: {page}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // A 404 on a route with an id: counted under the template, the id never a label.
        let missing = s.get("/v1/sessions/sesn_doesnotexist0000").await.unwrap();
        assert_eq!(missing.0, 404);

        let (text, after) = scrape(&s.http, &metrics_url).await;
        let delta = |key: &str| at(&after, key) - at(&before, key);

        assert!(
            delta(
                r#"oma_http_requests_total{method="POST",route="/v1/sessions/{session_id}/events",status="200"}"#
            ) >= 1.0,
            "{text}"
        );
        assert!(
            delta(r#"oma_http_requests_total{method="POST",route="/v1/agents",status="200"}"#)
                >= 1.0,
            "{text}"
        );
        assert!(
            delta(
                r#"oma_http_request_errors_total{method="GET",route="/v1/sessions/{session_id}",class="client"}"#
            ) >= 1.0,
            "{text}"
        );
        assert!(
            delta(r#"oma_http_request_duration_seconds_count{method="POST",route="/v1/sessions"}"#)
                >= 1.0,
            "{text}"
        );
        assert!(
            at(
                &after,
                r#"oma_http_request_duration_seconds_bucket{method="POST",route="/v1/sessions",le="+Inf"}"#
            ) >= 1.0,
            "{text}"
        );
        assert!(
            !text.contains("sesn_doesnotexist"),
            "ids never become labels"
        );
        assert!(!text.contains(&sid), "ids never become labels");

        assert!(
            delta("oma_events_appended_total") >= events.len() as f64,
            "{} events in the log: {text}",
            events.len()
        );
        assert!(
            delta(r#"oma_tool_calls_total{tool="bash",outcome="ok"}"#) >= 1.0,
            "{text}"
        );
        assert!(
            delta(r#"oma_tool_calls_total{tool="read",outcome="error"}"#) >= 1.0,
            "{text}"
        );
        assert!(
            delta(r#"oma_tool_call_duration_seconds_count{tool="bash"}"#) >= 1.0,
            "{text}"
        );
        assert!(
            delta(r#"oma_model_requests_total{provider="anthropic",outcome="ok"}"#) >= 3.0,
            "{text}"
        );

        let backend = match b {
            oma_testkit::Backend::Sqlite => "sqlite",
            oma_testkit::Backend::Postgres => "postgres",
        };
        assert!(
            at(
                &after,
                &format!(r#"oma_database_bytes{{backend="{backend}",shard="main"}}"#)
            ) > 0.0,
            "{text}"
        );
        for name in [
            "oma_queued_inputs",
            "oma_blob_bytes",
            "oma_sessions_active",
            "oma_sandboxes_running",
            "process_cpu_seconds_total",
        ] {
            assert!(after.contains_key(name), "{name} missing: {text}");
        }
        assert!(at(&after, "process_resident_memory_bytes") > 0.0, "{text}");

        let _ = stop_tx.send(());
        metrics.await.unwrap().unwrap();
        s.stop().await;
    }
}
