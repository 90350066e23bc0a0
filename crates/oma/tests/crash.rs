//! The promise: `kill -9` of `oma serve` in the middle of a turn loses nothing. After a restart
//! the session resumes by itself and runs to `end_turn`, with a contiguous log, the partial
//! model message kept, and an interrupted tool call answered explicitly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use oma_testkit::fake_anthropic::FakeAnthropic;
use oma_testkit::fake_model::{Gate, Reply};
use serde_json::{Value, json};

const KEY: &str = "sk-crash-test";

mod common;

fn serve(data: &Path, model_url: &str) -> common::Server {
    common::serve(data, KEY, model_url)
}

fn http(base: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    common::http(base, KEY, method, path, body)
}

fn say(base: &str, sid: &str, text: &str) {
    common::say(base, KEY, sid, text)
}

fn session(base: &str, tools: Value) -> String {
    common::session(base, KEY, tools)
}

/// Polls `cond` until it holds, failing after a deadline.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn events(base: &str, sid: &str) -> Vec<Value> {
    common::events(base, KEY, sid)
}

fn status(base: &str, sid: &str) -> String {
    common::status(base, KEY, sid)
}

use common::kinds;

use common::assert_no_duplicates;

async fn checkpoints(data: &Path) -> i64 {
    let url = format!("sqlite://{}", data.join("oma.db").display());
    let store = oma_store::Store::connect(&url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM model_streams")
        .fetch_one(store.reader())
        .await
        .unwrap();
    store.close().await;
    n
}

/// Waits until a model stream checkpoint is written (a crash after it must keep the text).
async fn until_checkpointed(data: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while checkpoints(data).await == 0 {
        assert!(
            Instant::now() < deadline,
            "no stream checkpoint was written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_model_stream_then_the_turn_completes() {
    let fake = FakeAnthropic::start().await;
    let gate = Gate::new();
    // message_start, content_block_start, one text delta … then the stream waits.
    fake.push(Reply::text("The first half of an answer that a crash will cut.").gated(3, &gate));
    fake.push(Reply::text("Recovered and finished."));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let first = serve(&data, &fake.base_url);
    let sid = session(&first.base, json!([]));
    say(&first.base, &sid, "tell me something");
    gate.reached().await;
    // The streamed text has been checkpointed: a crash now must keep it.
    until_checkpointed(&data).await;
    drop(first); // SIGKILL: no shutdown code runs
    gate.open();

    let second = serve(&data, &fake.base_url);
    until("the resumed turn to finish", || {
        status(&second.base, &sid) == "idle"
    })
    .await;
    let log = events(&second.base, &sid);
    common::assert_stream_cut_then_finished(
        &log,
        "The first half of an answer that a crash will cut.",
        "Recovered and finished.",
    );
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_tool_call_then_the_turn_completes() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::tool_use(
        "bash",
        json!({"command": "echo started > marker.txt; sleep 30; echo late > late.txt"}),
    ));
    fake.push(Reply::text("The command was interrupted; moving on."));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let first = serve(&data, &fake.base_url);
    let sid = session(&first.base, json!([{"type": "agent_toolset_20260401"}]));
    say(&first.base, &sid, "run it");
    let marker = data.join("workspaces").join(&sid).join("marker.txt");
    until("the tool call to start", || marker.exists()).await;
    drop(first);

    let second = serve(&data, &fake.base_url);
    until("the resumed turn to finish", || {
        status(&second.base, &sid) == "idle"
    })
    .await;
    let log = events(&second.base, &sid);
    common::assert_tool_cut_then_finished(&log);
    // The killed server's box is gone with it: the command never finished.
    assert!(!data.join("workspaces").join(&sid).join("late.txt").exists());
    drop(second);
}

/// A coordinator's session whose roster is one agent, `researcher`.
fn coordinator_session(base: &str) -> String {
    let researcher = http(
        base,
        "POST",
        "/v1/agents",
        Some(json!({"name": "researcher", "model": "claude-opus-4-8", "system": "You research."})),
    );
    let lead = http(
        base,
        "POST",
        "/v1/agents",
        Some(json!({
            "name": "lead",
            "model": "claude-opus-4-8",
            "multiagent": {"type": "coordinator", "agents": [researcher["id"]]},
        })),
    );
    let env = http(
        base,
        "POST",
        "/v1/environments",
        Some(json!({"name": "t", "config": {"type": "cloud"}})),
    );
    let s = http(
        base,
        "POST",
        "/v1/sessions",
        Some(json!({"agent": lead["id"], "environment_id": env["id"]})),
    );
    s["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_delegation_then_the_same_child_finishes_and_reports() {
    let fake = FakeAnthropic::start().await;
    let gate = Gate::new();
    fake.push(Reply::tool_use(
        "send_to_agent",
        json!({"agent": "researcher", "message": "find facts"}),
    ));
    // The child's answer: cut by the crash after its first delta.
    fake.push(Reply::text("Half of the child's findings, cut short.").gated(3, &gate));
    fake.push(Reply::text("The child's findings, in full."));
    fake.push(Reply::text("The coordinator's summary."));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let first = serve(&data, &fake.base_url);
    let sid = coordinator_session(&first.base);
    say(&first.base, &sid, "delegate it");
    gate.reached().await;
    until_checkpointed(&data).await;
    drop(first); // SIGKILL mid child stream
    gate.open();

    let second = serve(&data, &fake.base_url);
    until("the resumed turn to finish", || {
        status(&second.base, &sid) == "idle"
    })
    .await;
    let log = events(&second.base, &sid);
    assert_no_duplicates(&log);
    let k = kinds(&log);
    assert_eq!(
        log.last().unwrap()["stop_reason"]["type"],
        "end_turn",
        "{k:?}"
    );
    let count = |t: &str| k.iter().filter(|x| *x == t).count();
    // One child, one delegation, one report, one result: nothing duplicated by the restart.
    assert_eq!(count("session.thread_created"), 1, "{k:?}");
    assert_eq!(count("agent.thread_message_sent"), 1, "{k:?}");
    assert_eq!(count("agent.thread_message_received"), 1, "{k:?}");
    assert_eq!(count("agent.tool_result"), 1, "{k:?}");
    let report = log
        .iter()
        .find(|e| e["type"] == "agent.thread_message_received")
        .unwrap();
    assert_eq!(
        report["content"][0]["text"],
        "The child's findings, in full."
    );
    let threads = http(
        &second.base,
        "GET",
        &format!("/v1/sessions/{sid}/threads"),
        None,
    );
    let threads = threads["data"].as_array().unwrap();
    assert_eq!(threads.len(), 2);
    let child = threads
        .iter()
        .find(|t| !t["parent_thread_id"].is_null())
        .unwrap();
    assert_eq!(child["status"], "idle");
    let tid = child["id"].as_str().unwrap();
    let child_log = http(
        &second.base,
        "GET",
        &format!("/v1/sessions/{sid}/threads/{tid}/events?limit=1000"),
        None,
    )["data"]
        .as_array()
        .unwrap()
        .clone();
    assert_no_duplicates(&child_log);
    let ck = kinds(&child_log);
    let ends: Vec<&Value> = child_log
        .iter()
        .filter(|e| e["type"] == "span.model_request_end")
        .collect();
    assert_eq!(ends.len(), 2, "{ck:?}");
    assert_eq!(ends[0]["is_error"], true, "the cut-off request is closed");
    assert_eq!(
        ck.last().map(String::as_str),
        Some("agent.thread_message_sent")
    );
    // The child's second request saw only its own task and its own partial answer.
    let reqs = fake.requests();
    let child_retry = &reqs[2];
    assert_eq!(child_retry["system"][0]["text"], "You research.");
    assert_eq!(
        child_retry["messages"][0]["content"][0]["text"],
        "find facts"
    );
    drop(second);
}
