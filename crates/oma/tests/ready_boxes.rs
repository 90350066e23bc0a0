//! The ready pool through a real `oma serve` (isolated boxes): a new session's box is one the
//! server launched before the session existed, with the session's workspace moved in, and the
//! pool fills up again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oma_testkit::fake_anthropic::FakeAnthropic;
use oma_testkit::fake_model::Reply;
use serde_json::json;

mod common;

const KEY: &str = "sk-ready-boxes-test";

/// `oma_sandboxes_ready` from the server's metrics listener, polled until it is `want`.
fn until_ready(metrics: &str, want: i64) {
    let addr = metrics.trim_start_matches("http://").to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut s = TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        let ready = body
            .lines()
            .find_map(|l| l.strip_prefix("oma_sandboxes_ready "))
            .and_then(|v| v.trim().parse::<i64>().ok());
        if ready == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "oma_sandboxes_ready never became {want} (last {ready:?})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pool's box folders that hold a workspace (boxes not taken yet).
fn ready_slots(pool: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(pool)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("workspace").is_dir())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_session_takes_a_ready_box_and_the_pool_refills() {
    let fake = FakeAnthropic::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = common::serve_with(
        &data,
        KEY,
        &fake.base_url,
        &["--metrics-listen", "127.0.0.1:0"],
        &[("OMA_SANDBOX_POOL", "1".to_string())],
    );
    let metrics = server.metrics.clone().unwrap();
    until_ready(&metrics, 1);
    let pool = data.join("workspaces/.pool");
    let slots = ready_slots(&pool);
    assert_eq!(slots.len(), 1, "{slots:?}");
    // A mark only the ready box's workspace holds: the session sees it if (and only if) it
    // got that box.
    std::fs::write(slots[0].join("workspace/ready-mark"), "").unwrap();

    fake.push(Reply::tool_use(
        "bash",
        json!({"command": "ls -A /workspace; test -S /run/oma/egress.sock && echo egress-linked; \
                           echo made-in-the-box > /mnt/session/outputs/out.txt"}),
    ));
    fake.push(Reply::text("done"));
    let sid = common::session(
        &server.base,
        KEY,
        json!([{"type": "agent_toolset_20260401"}]),
    );
    common::say(&server.base, KEY, &sid, "go");
    let deadline = Instant::now() + Duration::from_secs(60);
    let result = loop {
        let events = common::events(&server.base, KEY, &sid);
        if let Some(r) = events.iter().find(|e| e["type"] == "agent.tool_result") {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "no tool result: {events:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = result.to_string();
    assert!(
        text.contains("ready-mark") && text.contains("egress-linked") && result["is_error"] != true,
        "{result}"
    );
    // The workspace is the session's now, at the session's path.
    assert!(
        data.join("workspaces")
            .join(&sid)
            .join("ready-mark")
            .exists()
    );
    // Its outputs folder is the session's too.
    let out = walk(&data.join("sessions").join(&sid))
        .into_iter()
        .find(|p| p.ends_with("out.txt"))
        .expect("the output is in the session's folder");
    assert_eq!(std::fs::read_to_string(out).unwrap(), "made-in-the-box\n");
    // And a fresh box is ready for the next session, with an empty workspace.
    until_ready(&metrics, 1);
    let slots = ready_slots(&pool);
    assert_eq!(slots.len(), 1, "{slots:?}");
    assert_eq!(
        std::fs::read_dir(slots[0].join("workspace"))
            .unwrap()
            .count(),
        0
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
