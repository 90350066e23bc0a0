//! Several `oma serve` nodes on one PostgreSQL database and one S3-compatible store (moto):
//! sessions spread over the nodes, a client on any node sees every event of a session wherever
//! its turn runs, a node killed mid-turn loses its sessions to the others, which finish the
//! turn with a gapless log and no duplicates, a paused owner cannot write once its lease is
//! gone, and a node stopped with SIGTERM hands its sessions over at once.
//!
//! Needs `OMA_TEST_DATABASE_URL` and `OMA_TEST_MOTO_SERVER` (`.ci/run` sets both); without
//! them each test says it skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use oma_testkit::fake_anthropic::FakeAnthropic;
use oma_testkit::fake_model::{Gate, Reply};
use oma_testkit::infra::{FreshPostgres, Moto};
use serde_json::{Value, json};

mod common;

const KEY: &str = "sk-cluster-test";
const BUCKET: &str = "oma-cluster";

/// One database, one bucket, one root secret; nodes join with [`Cluster::node`].
struct Cluster {
    db: FreshPostgres,
    moto: Moto,
    secret: String,
    model_url: String,
    dir: tempfile::TempDir,
    lease_ttl_ms: u64,
}

/// A node: its server and its own data directory (its workspaces live there).
struct Node {
    server: common::Server,
    data: PathBuf,
}

impl Node {
    fn base(&self) -> &str {
        &self.server.base
    }
}

impl Cluster {
    async fn start(model_url: &str, lease_ttl_ms: u64) -> Option<Self> {
        let moto = Moto::start()?;
        let db = FreshPostgres::create("cluster").await?;
        moto.bucket(BUCKET);
        Some(Self {
            db,
            moto,
            secret: oma_core::seal::generate_root_secret(),
            model_url: model_url.to_string(),
            dir: tempfile::tempdir().unwrap(),
            lease_ttl_ms,
        })
    }

    fn node(&self, name: &str) -> Node {
        self.node_with(name, &[])
    }

    fn node_with(&self, name: &str, more: &[&str]) -> Node {
        let data = self.dir.path().join(name);
        let mut envs = self.moto.env();
        envs.push(("OMA_ROOT_SECRET", self.secret.clone()));
        envs.push(("OMA_LEASE_TTL_MS", self.lease_ttl_ms.to_string()));
        let blob_url = format!("s3://{BUCKET}/cluster");
        let server = common::serve_with(
            &data,
            KEY,
            &self.model_url,
            &[
                "--database-url",
                &self.db.url,
                "--blob-url",
                &blob_url,
                "--node-id",
                name,
            ]
            .into_iter()
            .chain(more.iter().copied())
            .collect::<Vec<_>>(),
            &envs,
        );
        Node { server, data }
    }

    async fn sql(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        sqlx::AnyPool::connect(&self.db.url).await.unwrap()
    }

    /// The session's `seq`s in the log, in order.
    async fn seqs(&self, sid: &str) -> Vec<i64> {
        let pool = self.sql().await;
        let seqs = sqlx::query_scalar("SELECT seq FROM events WHERE session_id = $1 ORDER BY seq")
            .bind(sid)
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        seqs
    }

    /// The node holding a live lease on the session, if any.
    async fn owner(&self, sid: &str) -> Option<String> {
        let pool = self.sql().await;
        let owner = sqlx::query_scalar(
            "SELECT node_id FROM session_leases WHERE session_id = $1 \
             AND expires_at > CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)",
        )
        .bind(sid)
        .fetch_optional(&pool)
        .await
        .unwrap();
        pool.close().await;
        owner
    }

    async fn checkpoints(&self) -> i64 {
        let pool = self.sql().await;
        let n = sqlx::query_scalar("SELECT COUNT(*) FROM model_streams")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    }
}

fn http(base: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    common::http(base, KEY, method, path, body)
}

fn events(base: &str, sid: &str) -> Vec<Value> {
    common::events(base, KEY, sid)
}

fn status(base: &str, sid: &str) -> String {
    common::status(base, KEY, sid)
}

use common::kinds;

/// Every event once, and the log's `seq`s are 1, 2, 3, … with no hole.
async fn assert_gapless_and_unique(cluster: &Cluster, log: &[Value], sid: &str) {
    common::assert_no_duplicates(log);
    let seqs = cluster.seqs(sid).await;
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "{seqs:?}"
    );
    assert_eq!(seqs.len(), log.len());
}

/// Polls `cond` until it holds, failing after a deadline.
async fn until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An SSE stream of the session opened on `base`: once this returns the server has subscribed
/// it, and the task collects `(id, event)` until the session goes idle at `end_turn`.
async fn stream_until_idle(base: &str, sid: &str) -> tokio::task::JoinHandle<Vec<(i64, Value)>> {
    let handle = open_stream(base, sid, None, |ev| {
        ev["type"] == "session.status_idle" && ev["stop_reason"]["type"] == "end_turn"
    })
    .await;
    tokio::spawn(async move {
        let (seen, stopped) = handle.await.unwrap();
        assert!(stopped, "the stream ended before the turn did: {seen:?}");
        seen
    })
}

/// An SSE stream of the session opened on `base` (resuming after `last_event_id`): once this
/// returns the server has subscribed it, and the task collects `(id, event)` until `stop`
/// holds for an event (`true`) or the server ends the stream (`false`).
async fn open_stream(
    base: &str,
    sid: &str,
    last_event_id: Option<i64>,
    stop: impl Fn(&Value) -> bool + Send + 'static,
) -> tokio::task::JoinHandle<(Vec<(i64, Value)>, bool)> {
    let mut req = reqwest::Client::new()
        .get(format!("{base}/v1/sessions/{sid}/events/stream"))
        .header("x-api-key", KEY);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id.to_string());
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    tokio::spawn(async move {
        let mut resp = resp;
        let (mut buf, mut out) = (String::new(), Vec::new());
        while let Some(chunk) = tokio::time::timeout(Duration::from_secs(60), resp.chunk())
            .await
            .expect("the stream went quiet")
            .unwrap()
        {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                let id = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("id:"))
                    .and_then(|v| v.trim().parse::<i64>().ok());
                let data = frame.lines().find_map(|l| l.strip_prefix("data:"));
                if let (Some(id), Some(data)) = (id, data) {
                    let ev: Value = serde_json::from_str(data.trim()).unwrap();
                    let done = stop(&ev);
                    out.push((id, ev));
                    if done {
                        return (out, true);
                    }
                }
            }
        }
        (out, false)
    })
}

fn session(base: &str, tools: Value) -> String {
    common::session(base, KEY, tools)
}

fn say(base: &str, sid: &str, text: &str) {
    common::say(base, KEY, sid, text)
}

fn health(base: &str) -> Value {
    http(base, "GET", "/health", None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_spread_sessions_and_any_node_streams_any_session() {
    let fake = FakeAnthropic::start().await;
    let Some(cluster) = Cluster::start(&fake.base_url, 10_000).await else {
        return;
    };
    let nodes: Vec<Node> = ["node-a", "node-b", "node-c"]
        .iter()
        .map(|n| cluster.node(n))
        .collect();

    // Each node starts a turn: its host runs there (the session is claimed where input lands).
    let mut sids = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let sid = session(node.base(), json!([]));
        // The client watches from the next node, not the one running the turn.
        let watcher = &nodes[(i + 1) % nodes.len()];
        let stream = stream_until_idle(watcher.base(), &sid).await;
        fake.push(Reply::text(format!("answer {i}")));
        say(node.base(), &sid, "hello");
        let seen = stream.await.unwrap();
        let log = events(node.base(), &sid);
        assert_gapless_and_unique(&cluster, &log, &sid).await;
        // The stream saw exactly the log, in order, by seq.
        let ids: Vec<i64> = seen.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, (1..=log.len() as i64).collect::<Vec<_>>());
        let streamed: Vec<&Value> = seen.iter().map(|(_, e)| &e["id"]).collect();
        let logged: Vec<&Value> = log.iter().map(|e| &e["id"]).collect();
        assert_eq!(streamed, logged);
        sids.push(sid);
    }
    let mut owners = Vec::new();
    for sid in &sids {
        owners.push(cluster.owner(sid).await.expect("a lingering owner"));
    }
    assert_eq!(owners, ["node-a", "node-b", "node-c"]);

    // Input sent to another node reaches the owner, which runs the turn.
    fake.push(Reply::text("second answer"));
    let stream = stream_until_idle(nodes[2].base(), &sids[0]).await;
    say(nodes[1].base(), &sids[0], "again");
    let seen = stream.await.unwrap();
    assert!(
        seen.iter().any(
            |(_, e)| e["type"] == "agent.message" && e["content"][0]["text"] == "second answer"
        )
    );
    assert_eq!(cluster.owner(&sids[0]).await.as_deref(), Some("node-a"));
    let log = events(nodes[0].base(), &sids[0]);
    assert_gapless_and_unique(&cluster, &log, &sids[0]).await;

    // A client resuming on yet another node gets exactly what it missed.
    let n = log.len() as i64;
    let (resumed, _) = open_stream(nodes[1].base(), &sids[0], Some(n - 3), move |ev| {
        ev["type"] == "session.status_idle"
    })
    .await
    .await
    .unwrap();
    let ids: Vec<i64> = resumed.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [n - 2, n - 1, n]);

    // Deleting a session on one node ends its streams on the others with `session.deleted`.
    let logged = events(nodes[1].base(), &sids[1]).len() as i64;
    let watching = open_stream(nodes[2].base(), &sids[1], None, |_| false).await;
    http(
        nodes[0].base(),
        "DELETE",
        &format!("/v1/sessions/{}", sids[1]),
        None,
    );
    let (seen, stopped) = watching.await.unwrap();
    assert!(!stopped, "{seen:?}");
    let ids: Vec<i64> = seen.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [logged + 1], "{seen:?}");
    assert_eq!(seen[0].1["type"], "session.deleted");

    // Every node knows its peers.
    let h = health(nodes[0].base());
    assert_eq!(h["node"]["node_id"], "node-a");
    let peers: Vec<&str> = h["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["node_id"].as_str().unwrap())
        .collect();
    assert!(
        peers.contains(&"node-b") && peers.contains(&"node-c"),
        "{h}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_owner_mid_model_stream_another_node_finishes_the_turn() {
    let fake = FakeAnthropic::start().await;
    let gate = Gate::new();
    fake.push(Reply::text("The first half of an answer that a crash will cut.").gated(3, &gate));
    fake.push(Reply::text("Recovered and finished."));
    let Some(cluster) = Cluster::start(&fake.base_url, 1_500).await else {
        return;
    };
    let a = cluster.node("node-a");
    let b = cluster.node("node-b");
    let sid = session(a.base(), json!([]));
    // The client watches on the node that survives.
    let stream = stream_until_idle(b.base(), &sid).await;
    say(a.base(), &sid, "tell me something");
    gate.reached().await;
    until("a stream checkpoint", async || {
        cluster.checkpoints().await > 0
    })
    .await;
    let killed = Instant::now();
    drop(a); // SIGKILL: no shutdown code runs
    gate.open();

    let seen = stream.await.unwrap();
    eprintln!(
        "failover: turn finished {:?} after the kill",
        killed.elapsed()
    );
    assert_eq!(status(b.base(), &sid), "idle");
    assert_eq!(cluster.owner(&sid).await.as_deref(), Some("node-b"));
    let log = events(b.base(), &sid);
    assert_gapless_and_unique(&cluster, &log, &sid).await;
    let ids: Vec<i64> = seen.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        (1..=log.len() as i64).collect::<Vec<_>>(),
        "the stream skipped or repeated"
    );
    common::assert_stream_cut_then_finished(
        &log,
        "The first half of an answer that a crash will cut.",
        "Recovered and finished.",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_owner_mid_bash_another_node_finishes_the_turn() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::tool_use(
        "bash",
        json!({"command": "echo started > marker.txt; sleep 30; echo late > late.txt"}),
    ));
    fake.push(Reply::text("The command was interrupted; moving on."));
    let Some(cluster) = Cluster::start(&fake.base_url, 1_500).await else {
        return;
    };
    let a = cluster.node("node-a");
    let b = cluster.node("node-b");
    let sid = session(a.base(), json!([{"type": "agent_toolset_20260401"}]));
    say(a.base(), &sid, "run it");
    let marker = a.data.join("workspaces").join(&sid).join("marker.txt");
    until("the tool call to start", async || marker.exists()).await;
    drop(a);

    until("the turn to finish on node-b", async || {
        status(b.base(), &sid) == "idle"
    })
    .await;
    let log = events(b.base(), &sid);
    assert_gapless_and_unique(&cluster, &log, &sid).await;
    common::assert_tool_cut_then_finished(&log);
    assert_eq!(cluster.owner(&sid).await.as_deref(), Some("node-b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_whose_lease_ran_out_cannot_append() {
    let fake = FakeAnthropic::start().await;
    let gate = Gate::new();
    fake.push(Reply::text("Written by a node that was paused too long.").gated(3, &gate));
    fake.push(Reply::text("Finished by the node that took over."));
    let Some(cluster) = Cluster::start(&fake.base_url, 1_500).await else {
        return;
    };
    let a = cluster.node_with("node-a", &["--metrics-listen", "127.0.0.1:0"]);
    let b = cluster.node("node-b");
    let sid = session(a.base(), json!([]));
    say(a.base(), &sid, "go");
    gate.reached().await;
    a.server.pause();
    // The paused node's answer is ready for it when it wakes.
    gate.open();
    until("node-b to finish the turn", async || {
        status(b.base(), &sid) == "idle"
    })
    .await;
    let before = events(b.base(), &sid);
    assert_eq!(cluster.owner(&sid).await.as_deref(), Some("node-b"));

    a.server.signal("CONT");
    // The woken host tries to append its answer, is refused, and stops.
    until("node-a to be refused", async || {
        fencing_rejections(&a).await >= 1
    })
    .await;
    until("node-a's host to stop", async || {
        health(a.base())["node"]["sessions_hosted"] == 0
    })
    .await;
    let after = events(b.base(), &sid);
    assert_eq!(kinds(&after), kinds(&before), "the paused owner wrote");
    assert_gapless_and_unique(&cluster, &after, &sid).await;
    assert!(
        !after
            .iter()
            .any(|e| e["content"][0]["text"] == "Written by a node that was paused too long."),
        "{:?}",
        kinds(&after)
    );
    assert_eq!(cluster.owner(&sid).await.as_deref(), Some("node-b"));
}

/// `oma_lease_fencing_rejections_total` of the node, from its metrics listener.
async fn fencing_rejections(node: &Node) -> u64 {
    let metrics = node.server.metrics.as_deref().expect("a metrics listener");
    let body = reqwest::get(format!("{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix("oma_lease_fencing_rejections_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_the_sessions_over_without_waiting_for_the_lease() {
    let fake = FakeAnthropic::start().await;
    let gate = Gate::new();
    fake.push(Reply::text("Cut short by a graceful stop.").gated(3, &gate));
    fake.push(Reply::text("Finished after the hand-over."));
    // A lease far longer than the test: only the hand-over can move the session in time.
    let Some(cluster) = Cluster::start(&fake.base_url, 120_000).await else {
        return;
    };
    let mut a = cluster.node("node-a");
    let b = cluster.node("node-b");
    let sid = session(a.base(), json!([]));
    say(a.base(), &sid, "go");
    gate.reached().await;
    a.server.signal("TERM");
    let exit = a.server.wait_exit(Duration::from_secs(30));
    assert!(exit.success(), "{exit:?}");
    gate.open();
    until("node-b to finish the turn", async || {
        status(b.base(), &sid) == "idle"
    })
    .await;
    let log = events(b.base(), &sid);
    assert_gapless_and_unique(&cluster, &log, &sid).await;
    assert_eq!(log.last().unwrap()["stop_reason"]["type"], "end_turn");
    assert!(
        log.iter()
            .any(|e| e["content"][0]["text"] == "Finished after the hand-over.")
    );
    assert_eq!(cluster.owner(&sid).await.as_deref(), Some("node-b"));
    let nodes = health(b.base())["peers"].clone();
    let a_row = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == "node-a")
        .cloned()
        .unwrap();
    assert_eq!(a_row["state"], "stopped", "{a_row}");
    assert_eq!(a_row["leases"], 0, "{a_row}");
}
