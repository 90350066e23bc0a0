//! Operations end to end against a real `oma serve` (SQLite always; PostgreSQL too when
//! `OMA_TEST_DATABASE_URL` is set): a scripted run with the fake model makes tool calls, one of
//! them failing; `oma events query --group-by tool,outcome` shows the failure under its tool;
//! the admin API serves the same events to the admin key and refuses tenant keys with 403;
//! `oma tail --session X` receives that session's log lines and no other session's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use oma_testkit::fake_anthropic::FakeAnthropic;
use oma_testkit::fake_model::Reply;
use serde_json::{Value, json};

mod common;

const KEY: &str = "sk-ops-test-tenant";
const ADMIN: &str = "sk-ops-test-admin-7f3a";

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn oma() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_oma"));
    c.env_remove("OMA_DATABASE_URL")
        .env_remove("OMA_ADMIN_KEY")
        .env_remove("OMA_CONFIG")
        .env_remove("OMA_ENV");
    c
}

/// `oma serve` with the admin key set, over `data` (and `db` when given).
fn serve(data: &Path, db: Option<&str>, model_url: &str) -> (Proc, String) {
    let mut cmd = oma();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("OMA_API_KEY", KEY)
        .env("OMA_SANDBOX_DISK_QUOTA", "off")
        .env("OMA_ADMIN_KEY", ADMIN)
        .env("OMA_SANDBOX", "local")
        .env("ANTHROPIC_BASE_URL", model_url)
        .env("ANTHROPIC_API_KEY", "fake")
        .env("OMA_MODEL_RETRY_BASE_MS", "10")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .env_remove("OMA_ROOT_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(db) = db {
        cmd.args(["--database-url", db]);
    }
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
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
    let base = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    (Proc(child), base)
}

/// One request with a chosen `x-api-key` (or none): `(status, body)`.
fn request(base: &str, key: Option<&str>, path: &str) -> (u16, Value) {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = key.map_or(String::new(), |k| format!("x-api-key: {k}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn wait_idle(base: &str, sid: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = common::http(base, KEY, "GET", &format!("/v1/sessions/{sid}"), None);
        if s["status"] == "idle" {
            let events = common::http(
                base,
                KEY,
                "GET",
                &format!("/v1/sessions/{sid}/events?limit=1000"),
                None,
            );
            if events["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["type"] == "session.status_idle")
            {
                return;
            }
        }
        assert!(Instant::now() < deadline, "session {sid} never went idle");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `oma events query …` against the server's database; stdout.
fn events_query(data: &Path, db: Option<&str>, args: &[&str]) -> String {
    let mut cmd = oma();
    cmd.args(["events", "query", "--data-dir"])
        .arg(data)
        .args(args);
    if let Some(db) = db {
        cmd.args(["--database-url", db]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "oma events query {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Polls `oma events query --json` until `done` accepts its output (events are written in
/// batches, a moment after they happen).
fn until_events(
    data: &Path,
    db: Option<&str>,
    args: &[&str],
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut all = args.to_vec();
    all.push("--json");
    loop {
        let v: Value = serde_json::from_str(&events_query(data, db, &all)).unwrap();
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "events never matched: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn count_of(groups: &Value, tool: &str, outcome: &str) -> i64 {
    groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["tool"] == tool && g["outcome"] == outcome)
        .map_or(0, |g| g["count"].as_i64().unwrap())
}

fn tools() -> Value {
    json!([{"type": "agent_toolset_20260401"}])
}

async fn scripted_run(db: Option<&str>) {
    let fake = FakeAnthropic::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    if let Some(db) = db {
        let out = oma()
            .args(["migrate", "up", "--data-dir"])
            .arg(&data)
            .args(["--database-url", db])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (_server, base) = serve(&data, db, &fake.base_url);
    let a = common::session(&base, KEY, tools());
    let b = common::session(&base, KEY, tools());

    // `oma tail` for session A, connected before anything happens in it.
    let mut tail = oma()
        .args([
            "tail",
            "--url",
            &base,
            "--admin-key",
            ADMIN,
            "--session",
            &a,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tail_out = tail.stdout.take().unwrap();
    let tail_err = tail.stderr.take().unwrap();
    let _tail = Proc(tail);
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(tail_err).lines().map_while(Result::ok) {
            let _ = ready_tx.send(line);
        }
    });
    let line = ready_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(line.starts_with("tailing"), "{line}");
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(tail_out).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });

    // Session A: one bash call that works, one read that fails, then an answer.
    fake.push(Reply::tool_use("bash", json!({"command": "echo fine"})));
    fake.push(Reply::tool_use(
        "read",
        json!({"file_path": "/nonexistent/nothing-here.txt"}),
    ));
    fake.push(Reply::text("done"));
    common::say(&base, KEY, &a, "go");
    wait_idle(&base, &a);
    // Session B: one bash call, which A's tail must not see.
    fake.push(Reply::tool_use("bash", json!({"command": "echo other"})));
    fake.push(Reply::text("done too"));
    common::say(&base, KEY, &b, "go");
    wait_idle(&base, &b);

    // The tail got A's tool calls, as JSON lines, and nothing of B.
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got
        .iter()
        .filter(|l: &&Value| l["msg"] == "tool call finished")
        .count()
        < 2
    {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines_rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the tail never showed A's tool calls: {got:?}"));
        got.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    assert!(got.iter().all(|l| l["session_id"] == a.as_str()), "{got:?}");
    assert!(
        got.iter()
            .any(|l| l["tool"] == "read" && l["is_error"] == true),
        "{got:?}"
    );
    assert!(
        got.iter()
            .all(|l| l["ts"].is_string() && l["level"].is_string())
    );
    // Every line inside a session's host carries the session's tenant and agent too, from
    // the host's span, with the field names operators query by.
    let tool_lines: Vec<&Value> = got
        .iter()
        .filter(|l| l["msg"] == "tool call finished")
        .collect();
    for l in &tool_lines {
        assert_eq!(l["op"], "tool_call", "{l}");
        assert_eq!(l["tenant_id"], "default", "{l}");
        assert!(
            l["agent_id"]
                .as_str()
                .is_some_and(|a| a.starts_with("agent_")),
            "{l}"
        );
    }

    // `oma events query` groups the failure by tool.
    let groups = until_events(
        &data,
        db,
        &[
            "--kind",
            "tool_call",
            "--since",
            "1h",
            "--group-by",
            "tool,outcome",
        ],
        |v| count_of(v, "bash", "ok") == 2 && count_of(v, "read", "error") == 1,
    );
    assert_eq!(count_of(&groups, "read", "ok"), 0, "{groups}");
    let table = events_query(
        &data,
        db,
        &[
            "--kind",
            "tool_call",
            "--since",
            "1h",
            "--group-by",
            "tool,outcome",
        ],
    );
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("tool") && header.contains("outcome") && header.contains("count"),
        "{table}"
    );
    assert!(
        table.lines().any(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            cells.starts_with(&["read", "error", "1"])
        }),
        "{table}"
    );
    // Filters: a session, an attribute.
    let only_a = until_events(
        &data,
        db,
        &[
            "--kind",
            "tool_call",
            "--session",
            &a,
            "--where",
            "tool=bash",
        ],
        |v| v.as_array().unwrap().len() == 1,
    );
    assert_eq!(only_a[0]["fields"]["tool"], "bash");
    assert_eq!(only_a[0]["outcome"], "ok");
    // Model requests with tokens and status transitions are recorded too.
    until_events(
        &data,
        db,
        &[
            "--kind",
            "model_request",
            "--session",
            &a,
            "--group-by",
            "outcome",
        ],
        |v| v[0]["outcome"] == "ok" && v[0]["count"] == 3,
    );
    until_events(
        &data,
        db,
        &[
            "--kind",
            "session_transition",
            "--session",
            &b,
            "--group-by",
            "from,to",
        ],
        |v| {
            let pairs: Vec<(String, String)> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|g| {
                    (
                        g["from"].as_str().unwrap_or("").into(),
                        g["to"].as_str().unwrap_or("").into(),
                    )
                })
                .collect();
            pairs.contains(&("idle".into(), "running".into()))
                && pairs.contains(&("running".into(), "idle".into()))
        },
    );

    // The admin API: the admin key reads; a tenant key is refused with 403; no key, 401.
    let path = "/v1/oma/admin/ops_events?kind=tool_call&since=1h&group_by=tool,outcome";
    let (status, body) = request(&base, Some(ADMIN), path);
    assert_eq!(status, 200, "{body}");
    assert_eq!(count_of(&body["data"], "read", "error"), 1, "{body}");
    let (status, body) = request(&base, Some(KEY), path);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "permission_error");
    let (status, body) = request(&base, None, path);
    assert_eq!(status, 401, "{body}");
    let (status, _) = request(&base, Some("sk-not-a-key"), path);
    assert_eq!(status, 401);
    let (status, _) = request(&base, Some(KEY), "/v1/oma/admin/logs");
    assert_eq!(status, 403);
    // Rows, paginated.
    let (status, page1) = request(
        &base,
        Some(ADMIN),
        &format!("/v1/oma/admin/ops_events?kind=tool_call&session={a}&limit=1"),
    );
    assert_eq!(status, 200, "{page1}");
    assert_eq!(page1["data"].as_array().unwrap().len(), 1);
    let next = page1["next_page"].as_str().unwrap();
    let (_, page2) = request(
        &base,
        Some(ADMIN),
        &format!("/v1/oma/admin/ops_events?kind=tool_call&session={a}&limit=1&page={next}"),
    );
    assert_eq!(page2["data"].as_array().unwrap().len(), 1);
    assert_ne!(page1["data"][0]["id"], page2["data"][0]["id"]);
    assert!(page2["next_page"].is_null(), "{page2}");
}

/// A fresh PostgreSQL database beside the one `OMA_TEST_DATABASE_URL` names (so counts are
/// this run's alone), and a way to drop it.
async fn fresh_postgres(url: &str) -> (String, impl AsyncFnOnce()) {
    sqlx::any::install_default_drivers();
    let name = format!(
        "oma_ops_{}",
        oma_testkit::unique("t").to_lowercase().replace('-', "_")
    );
    let admin = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let (head, _) = url.rsplit_once('/').unwrap();
    let fresh = format!("{head}/{name}");
    (fresh, async move || {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&admin)
        .await;
        admin.close().await;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_failures_are_queryable_and_tail_follows_a_session() {
    scripted_run(None).await;
    match std::env::var("OMA_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => {
            let (url, drop_db) = fresh_postgres(&u).await;
            scripted_run(Some(&url)).await;
            drop_db().await;
        }
        _ => eprintln!("note: OMA_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant"),
    }
}
