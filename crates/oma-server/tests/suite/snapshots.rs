//! Workspace snapshots through real agent turns: an idle session's workspace goes to the blob
//! store and its box stops; the next tool call gets every byte back, also after a restart.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oma_runtime::RuntimeConfig;
use oma_testkit::fake_anthropic::FakeAnthropic;
use oma_testkit::fake_model::Reply;
use oma_testkit::{TestServer, backends};
use serde_json::{Value, json};

use super::turns::{providers, say, wait_idle};

fn quick_snapshots(c: &mut RuntimeConfig) {
    c.idle_linger = Duration::from_millis(300);
    c.snapshot_after_idle = Some(Duration::from_millis(200));
}

async fn until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn new_session(s: &TestServer) -> String {
    let (_, agent) = s
        .post(
            "/v1/agents",
            json!({"name": "snap", "model": "claude-opus-4-8",
                   "tools": [{"type": "agent_toolset_20260401"}]}),
        )
        .await
        .unwrap();
    let (_, env) = s
        .post(
            "/v1/environments",
            json!({"name": "snap", "config": {"type": "cloud"}}),
        )
        .await
        .unwrap();
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

/// Every path's type, mode, mtime and link target, then every file's sha256, as the box's
/// shell sees them; bracketed so it can be cut out of the tool result.
fn manifest_command(ws: &Path) -> String {
    format!(
        "cd '{}' && echo MANIFEST-BEGIN && \
         find . -mindepth 1 -printf '%y %m %Ts %p -> %l\\n' | LC_ALL=C sort && \
         find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum && \
         echo MANIFEST-END && echo SHELL-PID=$$",
        ws.display()
    )
}

/// Nested folders, binary content, an executable, symlinks (relative, absolute, dangling),
/// an empty folder and a folder with an old mtime.
fn populate_command(ws: &Path) -> String {
    format!(
        "cd '{}' && mkdir -p deep/er/est empty && \
         head -c 300000 /dev/urandom > deep/er/est/random.bin && \
         printf '\\000\\001\\002\\377\\376 binary' > bin.dat && \
         printf '#!/bin/sh\\necho hi\\n' > run.sh && chmod 750 run.sh && \
         ln -s deep/er/est/random.bin link && ln -s /etc/hostname abs-link && \
         ln -s no/such/file dangling && touch -h -d @1600000000 deep/er link && \
         {}",
        ws.display(),
        manifest_command(ws)
    )
}

fn tool_results(log: &[Value]) -> Vec<String> {
    log.iter()
        .filter(|e| e["type"] == "agent.tool_result")
        .map(|e| {
            assert_eq!(e["is_error"], false, "{e}");
            e["content"][0]["text"].as_str().unwrap().to_string()
        })
        .collect()
}

fn manifest_of(output: &str) -> String {
    let begin = output.find("MANIFEST-BEGIN").expect("manifest start");
    let end = output.find("MANIFEST-END").expect("manifest end");
    output[begin..end].to_string()
}

fn shell_pid(output: &str) -> u32 {
    let at = output.find("SHELL-PID=").expect("shell pid") + "SHELL-PID=".len();
    output[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Gone, or a zombie nobody reaped yet: either way no longer running.
fn process_stopped(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn workspace(s: &TestServer, sid: &str) -> PathBuf {
    s.data_dir().join("workspaces").join(sid)
}

async fn snapshot_count(s: &TestServer, sid: &str) -> usize {
    s.state
        .runtime
        .snapshots(&s.tenant)
        .expect("the test server has a blob store")
        .list(sid)
        .await
        .unwrap()
        .len()
}

/// The first turn fills the workspace; returns its manifest and the box's shell pid once
/// the idle session has been snapshotted and its box stopped.
async fn fill_and_wait_for_snapshot(s: &TestServer, fake: &FakeAnthropic, sid: &str) -> String {
    let ws = workspace(s, sid);
    fake.push(Reply::tool_use(
        "bash",
        json!({"command": populate_command(&ws)}),
    ));
    fake.push(Reply::text("the workspace is ready"));
    say(s, sid, "fill the workspace").await;
    let log = wait_idle(s, sid, 1).await;
    let out = tool_results(&log).pop().expect("a tool result");
    let before = manifest_of(&out);
    for name in [
        "random.bin",
        "bin.dat",
        "run.sh",
        "-> deep/er/est/random.bin",
        "abs-link",
    ] {
        assert!(before.contains(name), "{name} missing from {before}");
    }
    let pid = shell_pid(&out);

    until(
        "the idle workspace to be snapshotted and removed",
        async || !ws.exists() && snapshot_count(s, sid).await == 1,
    )
    .await;
    until("the box to stop", async || process_stopped(pid)).await;
    until("the host to exit", async || !s.state.runtime.is_active(sid)).await;
    // Nothing half-done is left beside the workspaces.
    let left: Vec<_> = std::fs::read_dir(s.data_dir().join("workspaces"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    before
}

/// The next turn lists the workspace again; returns its manifest.
async fn list_again(s: &TestServer, fake: &FakeAnthropic, sid: &str, turns: usize) -> String {
    fake.push(Reply::tool_use(
        "bash",
        json!({"command": manifest_command(&workspace(s, sid))}),
    ));
    fake.push(Reply::text("listed"));
    say(s, sid, "list the workspace").await;
    let log = wait_idle(s, sid, turns).await;
    manifest_of(&tool_results(&log).pop().expect("a tool result"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_workspace_is_snapshotted_and_restored_byte_for_byte() {
    for b in backends() {
        let fake = FakeAnthropic::start().await;
        let s = TestServer::start_configured(b, providers(&fake), quick_snapshots)
            .await
            .unwrap();
        let sid = new_session(&s).await;
        let before = fill_and_wait_for_snapshot(&s, &fake, &sid).await;

        let after = list_again(&s, &fake, &sid, 2).await;
        assert_eq!(after, before, "{b:?}");

        // A tool ran in the restored workspace, so once idle it is snapshotted again and the
        // new snapshot replaces the older one.
        until("the second snapshot", async || {
            !workspace(&s, &sid).exists()
        })
        .await;
        assert_eq!(snapshot_count(&s, &sid).await, 1);

        // Deleting the session deletes its snapshots (and any workspace).
        let (status, _) =
            oma_testkit::send(s.req(reqwest::Method::DELETE, &format!("/v1/sessions/{sid}")))
                .await
                .unwrap();
        assert_eq!(status, 200);
        until("the snapshots to be deleted", async || {
            snapshot_count(&s, &sid).await == 0
        })
        .await;
        assert!(!workspace(&s, &sid).exists());
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshotted_workspace_survives_a_server_crash() {
    for b in backends() {
        let fake = FakeAnthropic::start().await;
        let s = TestServer::start_configured(b, providers(&fake), quick_snapshots)
            .await
            .unwrap();
        let sid = new_session(&s).await;
        let before = fill_and_wait_for_snapshot(&s, &fake, &sid).await;

        // A new server on the same database and data directory.
        let s = s
            .restart_configured(providers(&fake), quick_snapshots)
            .await
            .unwrap();
        let after = list_again(&s, &fake, &sid, 2).await;
        assert_eq!(after, before, "{b:?}");
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_left_by_a_crash_is_used_as_is() {
    let b = oma_testkit::Backend::Sqlite;
    let fake = FakeAnthropic::start().await;
    // Snapshots off: the crash happens before any was taken.
    let s = TestServer::start_configured(b, providers(&fake), |c| {
        c.idle_linger = Duration::from_millis(100);
        c.snapshot_after_idle = None;
    })
    .await
    .unwrap();
    let sid = new_session(&s).await;
    let ws = workspace(&s, &sid);
    fake.push(Reply::tool_use(
        "bash",
        json!({"command": format!("echo kept > '{}/note.txt'", ws.display())}),
    ));
    fake.push(Reply::text("written"));
    say(&s, &sid, "write").await;
    wait_idle(&s, &sid, 1).await;
    until("the host to exit", async || {
        !s.state.runtime.is_active(&sid)
    })
    .await;
    assert_eq!(snapshot_count(&s, &sid).await, 0);

    // This time the snapshot comes later than the linger: the box stops first, the host
    // stays for the snapshot.
    let s = s
        .restart_configured(providers(&fake), |c| {
            c.idle_linger = Duration::from_millis(50);
            c.snapshot_after_idle = Some(Duration::from_millis(400));
        })
        .await
        .unwrap();
    fake.push(Reply::tool_use(
        "bash",
        json!({"command": format!("cat '{}/note.txt'", ws.display())}),
    ));
    fake.push(Reply::text("read"));
    say(&s, &sid, "read").await;
    let log = wait_idle(&s, &sid, 2).await;
    assert!(tool_results(&log).pop().unwrap().contains("kept"));
    // The folder the crash left is snapshotted like any other once idle.
    until("the left-behind workspace to be snapshotted", async || {
        !ws.exists() && snapshot_count(&s, &sid).await == 1
    })
    .await;
    until("the host to exit", async || {
        !s.state.runtime.is_active(&sid)
    })
    .await;
    s.stop().await;
}
