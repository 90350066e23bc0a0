//! The sandbox-escape suite through real agent turns: the fake model asks for bash commands a
//! prompt-injected agent would try, the isolated box runs them, and the tool results recorded
//! in the session's log show that nothing got out. Also: an out-of-memory kill becomes a
//! `session.error` and the next tool call works.
//!
//! Needs bubblewrap and cgroups (root); CI has both. Elsewhere each test prints why it skips.

use oma_testkit::fake_anthropic::FakeAnthropic;
use oma_testkit::fake_model::Reply;
use oma_testkit::{TestServer, backends};
use serde_json::{Value, json};

use super::turns::{bash, providers, say, tool_results, wait_idle};

async fn new_session(s: &TestServer, instance_type: Option<&str>) -> String {
    let mut env = json!({"name": "escape", "config": {"type": "cloud"}});
    if let Some(t) = instance_type {
        env["metadata"] = json!({"oma_instance_type": t});
    }
    super::turns::new_session(s, env, json!({})).await
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
    let sid = super::turns::new_session(
        &s,
        json!({"name": "pkgs", "config": {"type": "cloud",
               "packages": {"pip": ["oma-no-such-package-4242==1.0"]}}}),
        json!({}),
    )
    .await;
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
