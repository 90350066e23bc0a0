//! `--cluster URL`: oma as a cluster of `oma serve` processes (the binary next to this one,
//! or `--oma-bin`) on one fresh PostgreSQL database created beside the one `URL` names, each
//! node with a data directory of its own, all answered by the instant fake model.
//!
//! - turns/s and turn latency with 1, 2 and 3 nodes (`--cluster-nodes`): the turn drivers are
//!   shared out over the nodes, each driving its sessions through one node (where they are
//!   created, and so where their hosts run);
//! - failover (`--failovers` trials on 2 nodes): a turn is caught mid-stream on one node, the
//!   node is killed with SIGKILL, and the time runs from the kill until a stream open on the
//!   other node delivers the session's next event (written by the node that took it over).
//!   It is set by the lease lifetime (`--lease-ttl-ms`, L): a silent node's sessions are free
//!   once their leases run out (L after the last renewal, renewed every L/3, so ⅔L to L after
//!   the kill), and the sweep looks every L/3: between ⅔L and 4⁄3L. Each trial pauses a
//!   random fraction of L/3 before the turn and before the kill, so the kill lands anywhere in
//!   the nodes' cycles, as a real crash does.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use hyper::Method;
use oma_testkit::fake_model::Gate;
use serde_json::json;

use crate::client::{Api, Headers};
use crate::load::{Plan, micros};
use crate::model::FakeModel;
use crate::sse::SseStream;
use crate::stats::Summary;
use crate::turns::{self, TurnSetup};

const KEY: &str = "sk-oma-bench-cluster";
const MODEL: &str = "claude-opus-4-8";

/// What the cluster scenarios run.
pub struct ClusterPlan {
    /// A PostgreSQL URL; a fresh database is created beside it for each cluster.
    pub admin_url: String,
    pub oma_bin: PathBuf,
    pub node_counts: Vec<usize>,
    pub sessions: usize,
    pub turns_per_session: u32,
    pub failovers: usize,
    pub lease_ttl_ms: u64,
    pub plan: Plan,
}

/// The rows measured, and lines to print under them.
pub struct ClusterReport {
    pub rows: Vec<Summary>,
    pub notes: Vec<String>,
}

/// The `oma` binary beside this executable (both built by `cargo build --release`).
pub fn default_oma_bin() -> Result<PathBuf> {
    let me = std::env::current_exe().context("locating this executable")?;
    Ok(me.with_file_name("oma"))
}

pub fn run(client_rt: &tokio::runtime::Runtime, p: &ClusterPlan) -> Result<ClusterReport> {
    ensure!(
        p.oma_bin.exists(),
        "{} does not exist: build it with `cargo build --release -p oma` or pass --oma-bin",
        p.oma_bin.display()
    );
    let fake = FakeModel::start()?;
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for &n in &p.node_counts {
        ensure!(n > 0, "--cluster-nodes: a cluster has at least one node");
        eprintln!(
            "running turns on {} sessions over {n} node(s) …",
            p.sessions
        );
        let cluster = client_rt.block_on(Cluster::start(p, fake.base_url(), n))?;
        let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.addr).collect();
        let setup = client_rt.block_on(setup(addrs[0], p.turns_per_session))?;
        let label = format!(
            "turns: {} sessions over {n} node(s) (req/s = turns/s)",
            p.sessions
        );
        let s = client_rt.block_on(turns::run(&addrs, KEY, &label, p.sessions, &setup, p.plan))?;
        eprintln!(
            "  {:.0} turns/s, p50 {}, p99 {}, {} errors",
            s.rps(),
            crate::stats::ms(s.p50_us),
            crate::stats::ms(s.p99_us),
            s.errors
        );
        rows.push(s);
        client_rt.block_on(cluster.stop());
    }
    if p.failovers > 0 {
        eprintln!(
            "running {} failovers on 2 nodes (lease {} ms) …",
            p.failovers, p.lease_ttl_ms
        );
        let s = client_rt.block_on(failovers(p, &fake))?;
        notes.push(format!(
            "failover: kill -9 of the node running a turn → next event of the session on the \
             other node: p50 {}, p99 {}, max {} over {} trials (lease {} ms: between 2/3 and \
             4/3 of it by design)",
            crate::stats::ms(s.p50_us),
            crate::stats::ms(s.p99_us),
            crate::stats::ms(s.max_us),
            s.ok,
            p.lease_ttl_ms
        ));
        rows.push(s);
    }
    Ok(ClusterReport { rows, notes })
}

/// An agent and an environment for the drivers' sessions.
async fn setup(addr: SocketAddr, turns_per_session: u32) -> Result<TurnSetup> {
    let mut api = Api::connect(addr, KEY).await?;
    let agent = api
        .create(
            "/v1/agents",
            &json!({"name": "bench", "model": MODEL, "tools": []}),
        )
        .await?;
    let environment = api
        .create(
            "/v1/environments",
            &json!({"name": "bench", "config": {"type": "cloud"}}),
        )
        .await?;
    Ok(TurnSetup {
        agent,
        environment,
        turns_per_session,
        tool: false,
    })
}

/// Kills the node running a turn, `p.failovers` times, and restarts it after each.
async fn failovers(p: &ClusterPlan, fake: &FakeModel) -> Result<Summary> {
    let mut cluster = Cluster::start(p, fake.base_url(), 2).await?;
    let setup = setup(cluster.nodes[0].addr, 1).await?;
    let mut latencies = Vec::new();
    let mut first_error = None;
    let mut errors = 0;
    let started = Instant::now();
    for trial in 0..p.failovers {
        // The victim alternates, so both nodes are killed and restarted in turn.
        let (victim, survivor) = if trial % 2 == 0 { (0, 1) } else { (1, 0) };
        match failover(&mut cluster, &setup, fake, victim, survivor).await {
            Ok(took) => latencies.push(micros(took)),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
        cluster.restart(victim)?;
    }
    let mut s = Summary::new(
        "failover: kill -9 mid-turn → next event on the other node",
        1,
        latencies,
    );
    s.errors = errors;
    s.first_error = first_error;
    s.elapsed = started.elapsed();
    cluster.stop().await;
    Ok(s)
}

async fn failover(
    cluster: &mut Cluster,
    setup: &TurnSetup,
    fake: &FakeModel,
    victim: usize,
    survivor: usize,
) -> Result<Duration> {
    let (va, sa) = (cluster.nodes[victim].addr, cluster.nodes[survivor].addr);
    // A crash comes at any moment of the nodes' renewal and sweep cycles (a third of the lease
    // each): a random pause before the turn and another before the kill keep this loop's own
    // rhythm (a node restarted just before the trial) out of the figures.
    let cycle = Duration::from_millis(cluster.lease_ttl_ms / 3);
    tokio::time::sleep(random_below(cycle)).await;
    let mut api = Api::connect(va, KEY).await?;
    let sid = api
        .create(
            "/v1/sessions",
            &json!({"agent": setup.agent, "environment_id": setup.environment}),
        )
        .await?;
    let mut stream = SseStream::open(
        sa,
        &Headers::new(sa, KEY)?,
        &format!("/v1/sessions/{sid}/events/stream"),
    )
    .await?;
    let gate = Gate::new();
    fake.push_gated(&gate);
    api.call(
        Method::POST,
        &format!("/v1/sessions/{sid}/events"),
        Some(&json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}]})),
    )
    .await?;
    tokio::time::timeout(Duration::from_secs(30), gate.reached())
        .await
        .context("the turn never reached the model")?;
    tokio::time::sleep(random_below(cycle)).await;
    let killed = Instant::now();
    cluster.kill(victim)?;
    gate.open();
    // Whatever the victim committed is in the log now; the next event is the survivor's.
    let last = cluster.last_seq(&sid).await?;
    let deadline = Duration::from_secs(120);
    loop {
        let next = tokio::time::timeout(deadline, stream.next())
            .await
            .context("no event after the kill")??;
        let Some((frame, at)) = next else {
            bail!("the stream on the surviving node closed");
        };
        if frame.id.is_some_and(|id| id > last) {
            return Ok(at.saturating_duration_since(killed));
        }
    }
}

/// A uniformly random duration in `[0, max)`.
fn random_below(max: Duration) -> Duration {
    let mut b = [0u8; 8];
    oma_core::ids::fill_random(&mut b);
    max.mul_f64(u64::from_le_bytes(b) as f64 / (u64::MAX as f64 + 1.0))
}

/// `oma serve` processes on one fresh database.
struct Cluster {
    nodes: Vec<NodeProc>,
    db_url: String,
    admin_url: String,
    db_name: String,
    dir: tempfile::TempDir,
    oma_bin: PathBuf,
    model_url: String,
    secret: String,
    lease_ttl_ms: u64,
}

struct NodeProc {
    child: Child,
    addr: SocketAddr,
    name: String,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Cluster {
    async fn start(p: &ClusterPlan, model_url: &str, n: usize) -> Result<Self> {
        let db_name = format!(
            "oma_bench_cluster_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros())
        );
        let admin = oma_store::Store::connect(&p.admin_url)
            .await
            .context("connecting to --cluster")?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(admin.writer())
            .await
            .context("creating the cluster's database")?;
        admin.close().await;
        let (head, _) = p
            .admin_url
            .rsplit_once('/')
            .context("--cluster must be a postgres:// URL with a database")?;
        let mut cluster = Self {
            nodes: Vec::new(),
            db_url: format!("{head}/{db_name}"),
            admin_url: p.admin_url.clone(),
            db_name,
            dir: tempfile::tempdir()?,
            oma_bin: p.oma_bin.clone(),
            model_url: model_url.to_string(),
            secret: oma_core::seal::generate_root_secret(),
            lease_ttl_ms: p.lease_ttl_ms,
        };
        for i in 0..n {
            let node = cluster.spawn(&format!("bench-node-{i}"))?;
            cluster.nodes.push(node);
        }
        Ok(cluster)
    }

    fn spawn(&self, name: &str) -> Result<NodeProc> {
        let data = self.dir.path().join(name);
        spawn_node(
            &self.oma_bin,
            &data,
            &[
                ("OMA_DATABASE_URL", self.db_url.clone()),
                ("OMA_ROOT_SECRET", self.secret.clone()),
                ("OMA_API_KEY", KEY.to_string()),
                ("OMA_NODE_ID", name.to_string()),
                ("OMA_LEASE_TTL_MS", self.lease_ttl_ms.to_string()),
                ("ANTHROPIC_BASE_URL", self.model_url.clone()),
                ("ANTHROPIC_API_KEY", "bench".to_string()),
            ],
        )
        .map(|(child, addr)| NodeProc {
            child,
            addr,
            name: name.to_string(),
        })
    }

    fn kill(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        node.child.kill().context("killing a node")?;
        node.child.wait().context("waiting for a killed node")?;
        Ok(())
    }

    fn restart(&mut self, i: usize) -> Result<()> {
        let name = self.nodes[i].name.clone();
        let _ = self.nodes[i].child.kill();
        let _ = self.nodes[i].child.wait();
        self.nodes[i] = self.spawn(&name)?;
        Ok(())
    }

    async fn last_seq(&self, sid: &str) -> Result<i64> {
        let store = oma_store::Store::connect(&self.db_url).await?;
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(seq) FROM events WHERE session_id = $1")
                .bind(sid)
                .fetch_one(store.reader())
                .await?;
        store.close().await;
        Ok(last.unwrap_or(0))
    }

    async fn stop(mut self) {
        self.nodes.clear();
        if let Ok(admin) = oma_store::Store::connect(&self.admin_url).await {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.db_name
            )))
            .execute(admin.writer())
            .await;
            admin.close().await;
        }
    }
}

/// Starts `oma serve` on a free loopback port and returns once it announced its address;
/// its output is read (and dropped) from then on so it never blocks on a full pipe.
fn spawn_node(bin: &Path, data: &Path, envs: &[(&str, String)]) -> Result<(Child, SocketAddr)> {
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env_remove("OMA_CONFIG")
        .env_remove("OMA_BLOB_URL")
        .env("OMA_LOG", "warn,oma=info")
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let out = child.stdout.take().context("the node's output")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(i) = line.find("listening on http://") {
                let addr: String = line[i + 20..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '"')
                    .collect();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .context("the node did not start listening")?;
    let addr = addr
        .parse()
        .with_context(|| format!("the node announced `{addr}`"))?;
    Ok((child, addr))
}
