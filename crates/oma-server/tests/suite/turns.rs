//! Helpers for suites that drive real agent turns with the fake model: a provider for it, a
//! session with the built-in tools in a given environment, a message, waiting for idle, and
//! reading the tool results back from the log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oma_model::{AnthropicConfig, AnthropicProvider, ModelProvider};
use oma_runtime::Providers;
use oma_testkit::TestServer;
use oma_testkit::fake_anthropic::FakeAnthropic;
use oma_testkit::fake_model::Reply;
use serde_json::{Value, json};

pub fn providers(fake: &FakeAnthropic) -> Providers {
    let provider: Arc<dyn ModelProvider> = Arc::new(
        AnthropicProvider::new(AnthropicConfig::new(fake.base_url.clone(), "fake-key")).unwrap(),
    );
    Providers::new(Some(provider))
}

/// A session of an agent with the built-in toolset, in a new environment made of
/// `environment` (`{"name": …, "config": …, "metadata": …}`), with `extra` merged into the
/// session's create body (`vault_ids`, …).
pub async fn new_session(s: &TestServer, environment: Value, extra: Value) -> String {
    let agent = json!({"name": "turns", "model": "claude-opus-4-8",
                       "tools": [{"type": "agent_toolset_20260401"}]});
    session_of(s, agent, environment, extra).await
}

/// A session of a new agent made of `agent`, otherwise like [`new_session`].
pub async fn session_of(s: &TestServer, agent: Value, environment: Value, extra: Value) -> String {
    let (status, agent) = s.post("/v1/agents", agent).await.unwrap();
    assert_eq!(status, 200, "{agent}");
    let (status, env) = s.post("/v1/environments", environment).await.unwrap();
    assert_eq!(status, 200, "{env}");
    let mut body = json!({"agent": agent["id"], "environment_id": env["id"]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (status, session) = s.post("/v1/sessions", body).await.unwrap();
    assert_eq!(status, 200, "{session}");
    session["id"].as_str().unwrap().to_string()
}

pub async fn say(s: &TestServer, sid: &str, text: &str) {
    let body =
        json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": text}]}]});
    let (status, v) = s
        .post(&format!("/v1/sessions/{sid}/events"), body)
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
}

/// Waits (polling, with a deadline) until the session has gone idle `turns` times and is idle
/// now; returns its log.
pub async fn wait_idle(s: &TestServer, sid: &str, turns: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, session) = s.get(&format!("/v1/sessions/{sid}")).await.unwrap();
        let (_, page) = s
            .get(&format!("/v1/sessions/{sid}/events?limit=1000"))
            .await
            .unwrap();
        let log = page["data"].as_array().cloned().unwrap_or_default();
        let idles = log
            .iter()
            .filter(|e| e["type"] == "session.status_idle")
            .count();
        if session["status"] == "idle"
            && idles >= turns
            && log
                .last()
                .is_some_and(|e| e["type"] == "session.status_idle")
        {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "the session did not go idle: {log:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The text of each `agent.tool_result` in the log, in order, with its error flag.
pub fn tool_results(log: &[Value]) -> Vec<(String, bool)> {
    log.iter()
        .filter(|e| e["type"] == "agent.tool_result")
        .map(|e| {
            let text = e["content"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("");
            (text, e["is_error"].as_bool().unwrap_or(false))
        })
        .collect()
}

/// The model asking for one `bash` command.
pub fn bash(command: &str) -> Reply {
    Reply::tool_use("bash", json!({"command": command}))
}

/// The pids of the box agents running in `workspace` (a local box's agent runs there).
fn box_agents_in(workspace: &std::path::Path) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cwd = std::fs::read_link(entry.path().join("cwd"));
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if cwd.is_ok_and(|c| c == workspace)
            && String::from_utf8_lossy(&cmdline).contains("sandbox-agent")
        {
            pids.push(pid);
        }
    }
    pids
}

/// Provisioning begins when the session is created (semantics): the box runs before the
/// first message is sent, and the first tool call uses that box rather than starting one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_box_starts_when_the_session_is_created() {
    for backend in oma_testkit::backends() {
        let fake = FakeAnthropic::start().await;
        let s = TestServer::start_with(backend, providers(&fake))
            .await
            .unwrap();
        let sid = new_session(
            &s,
            json!({"name": "p", "config": {"type": "cloud"}}),
            json!({}),
        )
        .await;
        let workspace = s.data_dir().join("workspaces").join(&sid);
        let deadline = Instant::now() + Duration::from_secs(30);
        let started = loop {
            let pids = box_agents_in(&workspace);
            if !pids.is_empty() {
                break pids;
            }
            assert!(
                Instant::now() < deadline,
                "no box was started for the new session"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(started.len(), 1, "{started:?}");
        assert!(fake.requests().is_empty(), "the box waited for a turn");

        fake.push_all([bash("echo hi"), Reply::text("done")]);
        say(&s, &sid, "go").await;
        let log = wait_idle(&s, &sid, 1).await;
        assert_eq!(tool_results(&log), vec![("hi".to_string(), false)]);
        // The same box ran the call (the host lingers after the turn, its box with it).
        assert_eq!(box_agents_in(&workspace), started);
    }
}
