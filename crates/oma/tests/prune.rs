//! Retention for real: a prune under a live turn leaves that session working (in-process
//! server, SQLite and PostgreSQL); `oma prune` and the janitor of `oma serve` delete the old
//! events of an ended session while a session keeps working beside it (the binary, SQLite).
//! Events are made old by pruning as of a later time, or by giving them ids of long ago.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use oma_model::{AnthropicConfig, AnthropicProvider, ModelProvider};
use oma_runtime::Providers;
use oma_store::retention::Policy;
use oma_testkit::fake_anthropic::FakeAnthropic;
use oma_testkit::fake_model::{Gate, Reply};
use oma_testkit::{TestServer, backends};
use serde_json::{Value, json};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

async fn new_session(s: &TestServer) -> String {
    let (_, agent) = s
        .post(
            "/v1/agents",
            json!({"name": "p", "model": "claude-opus-4-8"}),
        )
        .await
        .unwrap();
    let (_, env) = s
        .post(
            "/v1/environments",
            json!({"name": "p", "config": {"type": "cloud"}}),
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
    session["id"].as_str().unwrap().to_string()
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

/// Waits until the session has gone idle `turns` times and is idle now; returns its events.
async fn wait_idle(s: &TestServer, sid: &str, turns: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, session) = s.get(&format!("/v1/sessions/{sid}")).await.unwrap();
        let (_, page) = s
            .get(&format!("/v1/sessions/{sid}/events?limit=1000"))
            .await
            .unwrap();
        let events = page["data"].as_array().cloned().unwrap_or_default();
        let idles = events
            .iter()
            .filter(|e| e["type"] == "session.status_idle")
            .count();
        if session["status"] == "idle"
            && idles >= turns
            && events
                .last()
                .is_some_and(|e| e["type"] == "session.status_idle")
        {
            return events;
        }
        assert!(Instant::now() < deadline, "session never went idle: {page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn rows(s: &TestServer, table: &str, sid: &str) -> i64 {
    let sql = match table {
        "events" => "SELECT COUNT(*) FROM events WHERE session_id = $1",
        _ => "SELECT COUNT(*) FROM model_streams WHERE session_id = $1",
    };
    sqlx::query_scalar(sql)
        .bind(sid)
        .fetch_one(s.store.reader())
        .await
        .unwrap()
}

#[tokio::test]
async fn prune_under_a_live_turn_leaves_that_session_working() {
    for b in backends() {
        let fake = FakeAnthropic::start().await;
        let provider: Arc<dyn ModelProvider> = Arc::new(
            AnthropicProvider::new(AnthropicConfig::new(fake.base_url.clone(), "fake-key"))
                .unwrap(),
        );
        let s = TestServer::start_with(b, Providers::new(Some(provider)))
            .await
            .unwrap();

        // An ended session: one turn, then archived.
        let ended = new_session(&s).await;
        fake.push(Reply::text("goodbye"));
        say(&s, &ended, "bye").await;
        wait_idle(&s, &ended, 1).await;
        let (status, v) = s
            .post(&format!("/v1/sessions/{ended}/archive"), json!({}))
            .await
            .unwrap();
        assert_eq!(status, 200, "{v}");
        let ended_rows = rows(&s, "events", &ended).await;
        assert!(ended_rows > 3);

        // A live session: one finished turn, then a second one held mid-stream.
        let live = new_session(&s).await;
        fake.push(Reply::text("noted"));
        say(&s, &live, "REMEMBER-ALPHA").await;
        wait_idle(&s, &live, 1).await;
        let gate = Gate::new();
        fake.push(Reply::text("the second answer, streaming").gated(3, &gate));
        say(&s, &live, "SECOND").await;
        gate.reached().await;
        let (_, st) = s.get(&format!("/v1/sessions/{live}")).await.unwrap();
        assert_eq!(st["status"], "running");
        let (live_events, live_streams) = (
            rows(&s, "events", &live).await,
            rows(&s, "model_streams", &live).await,
        );

        // Two days on, everything is "old": the ended log goes, the live one stays whole.
        let policy = Policy {
            events: Some(DAY),
            model_streams: Some(DAY),
            orphan_grace: Duration::ZERO,
            batch_rows: 2,
            ..Policy::default()
        };
        let later = SystemTime::now() + 2 * DAY;
        let pruned = s.store.prune_at(&policy, later).await.unwrap();
        assert!(pruned.events >= ended_rows as u64, "{pruned:?}");
        assert_eq!(rows(&s, "events", &ended).await, 0);
        assert_eq!(rows(&s, "events", &live).await, live_events);
        assert_eq!(rows(&s, "model_streams", &live).await, live_streams);

        // The turn finishes, and the next one still sees the whole conversation.
        gate.open();
        let events = wait_idle(&s, &live, 2).await;
        assert_eq!(events.last().unwrap()["stop_reason"]["type"], "end_turn");
        assert!(events.iter().any(|e| e["type"] == "agent.message"
            && e["content"][0]["text"] == "the second answer, streaming"));
        fake.push(Reply::text("third"));
        say(&s, &live, "THIRD").await;
        wait_idle(&s, &live, 3).await;
        let request = fake.last_request().unwrap().to_string();
        for text in [
            "REMEMBER-ALPHA",
            "noted",
            "the second answer, streaming",
            "THIRD",
        ] {
            assert!(request.contains(text), "{text} is missing from {request}");
        }

        // Idle without a compaction, its whole log is its context: nothing of it goes.
        let idle_rows = rows(&s, "events", &live).await;
        s.store.prune_at(&policy, later).await.unwrap();
        assert_eq!(rows(&s, "events", &live).await, idle_rows);
    }
}

// ---- the binary --------------------------------------------------------------------------------

const KEY: &str = "sk-prune-test";

fn api(base: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    common::http(base, KEY, method, path, body)
}

fn events(base: &str, sid: &str) -> Vec<Value> {
    api(
        base,
        "GET",
        &format!("/v1/sessions/{sid}/events?limit=1000"),
        None,
    )["data"]
        .as_array()
        .cloned()
        .unwrap()
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Gives the session's events ids of long ago (ids are time-ordered: the leading digits are
/// the time), as if they had been written years before.
async fn age(data: &Path, sid: &str) {
    let url = format!("sqlite://{}", data.join("oma.db").display());
    let store = oma_store::Store::connect(&url).await.unwrap();
    sqlx::query("UPDATE events SET id = 'sevt_00' || substr(id, 8) WHERE session_id = $1")
        .bind(sid)
        .execute(store.writer())
        .await
        .unwrap();
    store.close().await;
}

/// An ended session (one turn, archived) and a live one (one turn done, a second held at
/// `gate`), both with every event aged.
async fn two_sessions(base: &str, data: &Path, fake: &FakeAnthropic, gate: &Gate) -> [String; 2] {
    fake.push(Reply::text("goodbye"));
    let ended = common::session(base, KEY, json!([]));
    common::say(base, KEY, &ended, "bye");
    until("the ended session's turn", || {
        let log = events(base, &ended);
        log.last()
            .is_some_and(|e| e["type"] == "session.status_idle")
            && api(base, "GET", &format!("/v1/sessions/{ended}"), None)["status"] == "idle"
    })
    .await;
    api(
        base,
        "POST",
        &format!("/v1/sessions/{ended}/archive"),
        Some(json!({})),
    );

    fake.push(Reply::text("noted"));
    fake.push(Reply::text("second answer").gated(3, gate));
    fake.push(Reply::text("third answer"));
    let live = common::session(base, KEY, json!([]));
    common::say(base, KEY, &live, "REMEMBER-ALPHA");
    until("the live session's first turn", || {
        events(base, &live)
            .iter()
            .any(|e| e["type"] == "session.status_idle")
    })
    .await;
    common::say(base, KEY, &live, "SECOND");
    gate.reached().await;
    age(data, &ended).await;
    age(data, &live).await;
    [ended, live]
}

/// The live session finishes its turn and the next request still carries the first message.
async fn live_session_keeps_working(base: &str, fake: &FakeAnthropic, gate: &Gate, live: &str) {
    gate.open();
    let idle_turns = |n: usize| {
        move || {
            let log = events(base, live);
            log.iter()
                .filter(|e| e["type"] == "session.status_idle")
                .count()
                >= n
                && log
                    .last()
                    .is_some_and(|e| e["type"] == "session.status_idle")
        }
    };
    until("the held turn to finish", idle_turns(2)).await;
    common::say(base, KEY, live, "THIRD");
    until("the third turn", idle_turns(3)).await;
    let request = fake.last_request().unwrap().to_string();
    assert!(request.contains("REMEMBER-ALPHA"), "{request}");
    assert!(request.contains("second answer"), "{request}");
}

fn oma_prune(data: &Path, config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_oma"))
        .args(["prune", "--data-dir"])
        .arg(data)
        .arg("--config")
        .arg(config)
        .env_remove("OMA_DATABASE_URL")
        .env_remove("OMA_ENV")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Starts `oma serve` on `data` with `config` (its `[retention]` section) and the model at
/// `model_url`; returns once it announced its address.
fn serve_with(data: &Path, config: &Path, model_url: &str) -> Served {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_oma"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .arg("--config")
        .arg(config)
        .env("OMA_API_KEY", KEY)
        .env("OMA_SANDBOX_DISK_QUOTA", "off")
        .env("ANTHROPIC_BASE_URL", model_url)
        .env("ANTHROPIC_API_KEY", "fake")
        .env("OMA_MODEL_RETRY_BASE_MS", "10")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .env_remove("OMA_DATABASE_URL")
        .env_remove("OMA_ROOT_SECRET")
        .env_remove("OMA_ENV")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(i) = line.find("listening on http://") {
                let url: String = line[i + 13..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '"')
                    .collect();
                let _ = tx.send(url);
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    Served { child, base }
}

/// A running `oma serve`; killed on drop.
struct Served {
    child: std::process::Child,
    base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oma_prune_deletes_the_ended_sessions_old_events_while_a_turn_runs() {
    let fake = FakeAnthropic::start().await;
    let gate = Gate::new();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("oma.toml");
    std::fs::write(
        &config,
        "[retention]\nevents_days = 1\ninterval = \"off\"\n",
    )
    .unwrap();
    let server = serve_with(&data, &config, &fake.base_url);
    let [ended, live] = two_sessions(&server.base, &data, &fake, &gate).await;
    let live_before = events(&server.base, &live).len();
    let ended_before = events(&server.base, &ended).len();

    let out = oma_prune(&data, &config);
    assert!(
        out.contains(&format!(
            "events                 {ended_before} (of 1 sessions)"
        )),
        "{out}"
    );
    assert!(events(&server.base, &ended).is_empty());
    assert_eq!(events(&server.base, &live).len(), live_before);
    live_session_keeps_working(&server.base, &fake, &gate, &live).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_janitor_of_oma_serve_prunes_on_its_interval() {
    let fake = FakeAnthropic::start().await;
    let gate = Gate::new();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("oma.toml");
    std::fs::write(&config, "[retention]\nevents_days = 1\ninterval = \"1s\"\n").unwrap();
    let server = serve_with(&data, &config, &fake.base_url);
    let [ended, live] = two_sessions(&server.base, &data, &fake, &gate).await;
    let live_before = events(&server.base, &live).len();
    until("the janitor to prune the ended session", || {
        events(&server.base, &ended).is_empty()
    })
    .await;
    assert_eq!(events(&server.base, &live).len(), live_before);
    live_session_keeps_working(&server.base, &fake, &gate, &live).await;
}
