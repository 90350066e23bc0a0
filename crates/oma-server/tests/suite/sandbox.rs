//! The sandbox-escape suite through real agent turns: the fake model asks for bash commands a
//! prompt-injected agent would try, the isolated box runs them, and the tool results recorded
//! in the session's log show that nothing got out. Also: an out-of-memory kill becomes a
//! `session.error` and the next tool call works.
//!
//! Needs bubblewrap and cgroups (root); CI has both. Elsewhere each test prints why it skips.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oma_model::{AnthropicConfig, AnthropicProvider, ModelProvider};
use oma_runtime::Providers;
use oma_testkit::fake_anthropic::FakeAnthropic;
use oma_testkit::fake_model::Reply;
use oma_testkit::{TestServer, backends};
use serde_json::{Value, json};

fn providers(fake: &FakeAnthropic) -> Providers {
    let provider: Arc<dyn ModelProvider> = Arc::new(
        AnthropicProvider::new(AnthropicConfig::new(fake.base_url.clone(), "fake-key")).unwrap(),
    );
    Providers::new(Some(provider))
}

/// Waits until the session has gone idle `turns` times and is idle now; returns its log.
async fn wait_idle(s: &TestServer, sid: &str, turns: usize) -> Vec<Value> {
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

async fn say(s: &TestServer, sid: &str, text: &str) {
    let body =
        json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": text}]}]});
    let (status, v) = s
        .post(&format!("/v1/sessions/{sid}/events"), body)
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
}

async fn new_session(s: &TestServer, instance_type: Option<&str>) -> String {
    let (_, agent) = s
        .post(
            "/v1/agents",
            json!({"name": "escape", "model": "claude-opus-4-8",
                   "tools": [{"type": "agent_toolset_20260401"}]}),
        )
        .await
        .unwrap();
    let mut env = json!({"name": "escape", "config": {"type": "cloud"}});
    if let Some(t) = instance_type {
        env["metadata"] = json!({"oma_instance_type": t});
    }
    let (status, env) = s.post("/v1/environments", env).await.unwrap();
    assert_eq!(status, 200, "{env}");
    let (status, session) = s
        .post(
            "/v1/sessions",
            json!({"agent": agent["id"], "environment_id": env["id"]}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{session}");
    session["id"].as_str().unwrap().to_string()
}

/// The text of each `agent.tool_result` in the log, in order, with its error flag.
fn tool_results(log: &[Value]) -> Vec<(String, bool)> {
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

fn bash(command: &str) -> Reply {
    Reply::tool_use("bash", json!({"command": command}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_injected_agent_cannot_get_out_of_its_box() {
    for backend in backends() {
        let fake = FakeAnthropic::start().await;
        let Some(s) = TestServer::start_isolated(backend, providers(&fake), |_| {})
            .await
            .unwrap()
        else {
            return;
        };
        let data_dir = s.data_dir().to_path_buf();
        let sid_a = new_session(&s, None).await;
        let sid_b = new_session(&s, None).await;
        let a_workspace = data_dir.join("workspaces").join(&sid_a);

        // Session A leaves something private in its workspace.
        fake.push_all([bash("echo private-to-a > secret.txt"), Reply::text("ok")]);
        say(&s, &sid_a, "write it").await;
        wait_idle(&s, &sid_a, 1).await;
        assert!(a_workspace.join("secret.txt").exists());

        // Session B tries everything.
        let attempts = [
            // 0: the server's data directory and database
            format!("ls {0}; cat {0}/oma.db | head -c 100", data_dir.display()),
            // 1: another session's workspace, by its host path
            format!("cat {}/secret.txt", a_workspace.display()),
            // 2: the host's /root and a host process's /proc entry
            format!("ls -A /root; cat /proc/{}/environ", std::process::id()),
            // 3: a host TCP port: the oma server itself, then PostgreSQL
            format!(
                "timeout 5 bash -c 'echo > /dev/tcp/127.0.0.1/{}' && echo REACHED-OMA; \
                 timeout 5 bash -c 'echo > /dev/tcp/127.0.0.1/5432' && echo REACHED-PG; true",
                s.base.rsplit(':').next().unwrap()
            ),
            // 4: name resolution
            "getent hosts deb.debian.org && echo RESOLVED; true".to_string(),
            // 5: secrets in the environment
            "env".to_string(),
        ];
        let mut replies: Vec<Reply> = attempts.iter().map(|c| bash(c)).collect();
        replies.push(Reply::text("done"));
        fake.push_all(replies);
        say(&s, &sid_b, "try to escape").await;
        let log = wait_idle(&s, &sid_b, 1).await;
        let results = tool_results(&log);
        assert_eq!(results.len(), attempts.len(), "{results:#?}");

        let (out, _) = &results[0];
        assert!(
            !out.contains("SQLite format") && !out.contains("workspaces"),
            "data dir visible: {out}"
        );
        let (out, failed) = &results[1];
        assert!(
            *failed && !out.contains("private-to-a"),
            "other workspace: {out}"
        );
        let (out, failed) = &results[2];
        assert!(
            *failed && !out.contains("CARGO"),
            "host /root or /proc: {out}"
        );
        let (out, _) = &results[3];
        assert!(
            !out.contains("REACHED-OMA") && !out.contains("REACHED-PG"),
            "reached a host port: {out}"
        );
        let (out, _) = &results[4];
        assert!(!out.contains("RESOLVED"), "resolved a name: {out}");
        let (out, _) = &results[5];
        for leak in [
            "CARGO",
            "ANTHROPIC",
            "OMA_TEST_DATABASE_URL",
            "fake-key",
            &s.key,
        ] {
            assert!(!out.contains(leak), "{leak} reached the box: {out}");
        }
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_memory_kill_is_a_session_error_and_the_next_call_works() {
    let backend = backends()[0];
    let fake = FakeAnthropic::start().await;
    let Some(s) = TestServer::start_isolated(backend, providers(&fake), |_| {})
        .await
        .unwrap()
    else {
        return;
    };
    // `small`: 4 GiB. Allocate more than that, touching every page.
    let sid = new_session(&s, Some("small")).await;
    fake.push_all([
        bash("python3 -c \"x = b'a' * (6 << 30); print(len(x))\""),
        bash("echo next-call-works"),
        Reply::text("done"),
    ]);
    say(&s, &sid, "allocate").await;
    let log = wait_idle(&s, &sid, 1).await;
    let results = tool_results(&log);
    assert_eq!(results.len(), 2, "{results:#?}");
    assert!(results[0].1, "{results:#?}");
    assert!(
        results[0].0.contains("ran out of memory"),
        "{}",
        results[0].0
    );
    assert!(
        !results[1].1 && results[1].0.contains("next-call-works"),
        "{results:#?}"
    );
    let errors: Vec<&Value> = log
        .iter()
        .filter(|e| e["type"] == "session.error")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0]["error"]["type"], "unknown_error");
    assert!(
        errors[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("4 GiB")
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_that_does_not_exist_is_a_session_error_with_the_installers_message() {
    let backend = backends()[0];
    let fake = FakeAnthropic::start().await;
    let Some(s) = TestServer::start_isolated(backend, providers(&fake), |_| {})
        .await
        .unwrap()
    else {
        return;
    };
    let (_, agent) = s
        .post(
            "/v1/agents",
            json!({"name": "pkgs", "model": "claude-opus-4-8",
                   "tools": [{"type": "agent_toolset_20260401"}]}),
        )
        .await
        .unwrap();
    let (status, env) = s
        .post(
            "/v1/environments",
            json!({"name": "pkgs", "config": {"type": "cloud",
                   "packages": {"pip": ["oma-no-such-package-4242==1.0"]}}}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{env}");
    let (_, session) = s
        .post(
            "/v1/sessions",
            json!({"agent": agent["id"], "environment_id": env["id"]}),
        )
        .await
        .unwrap();
    let sid = session["id"].as_str().unwrap().to_string();
    fake.push_all([bash("echo hi"), Reply::text("done")]);
    say(&s, &sid, "go").await;
    let log = wait_idle(&s, &sid, 1).await;
    let results = tool_results(&log);
    assert_eq!(results.len(), 1);
    assert!(results[0].1, "{results:#?}");
    let errors: Vec<&Value> = log
        .iter()
        .filter(|e| e["type"] == "session.error")
        .collect();
    assert_eq!(errors.len(), 1, "{log:#?}");
    let message = errors[0]["error"]["message"].as_str().unwrap();
    assert!(message.contains("pip packages"), "{message}");
    assert!(
        message.contains("No matching distribution") || message.contains("Could not find"),
        "{message}"
    );
    s.stop().await;
}
