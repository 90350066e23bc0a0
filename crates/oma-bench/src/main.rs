//! `oma-bench`: the API benchmark.
//!
//! Starts a real oma server in-process on SQLite (in a temporary directory, assembled as
//! `oma serve` does) on a runtime of its own, then drives it over loopback with persistent
//! HTTP/1.1 keep-alive connections from a second runtime, and reports requests/s, p50, p99
//! and max for:
//!
//! - `POST /v1/agents`
//! - `GET /v1/agents/{id}`
//! - `POST /v1/sessions/{id}/events` (one `user.message` per request)
//! - the first page of `GET /v1/sessions/{id}/events`, in both orders, on one session as it
//!   grows through several sizes (1k, 10k, 100k events by default) to show that a first page
//!   does not get slower as the log grows.
//!
//! and, with a fake model that answers instantly (its own runtime thread):
//!
//! - `turn`: the time of one turn (POST a `user.message`, read `session.status_idle` on the
//!   session's open SSE stream), next to the model floor (one bare streaming round trip to
//!   the fake) and their difference, the platform's overhead;
//! - `turns16`: turns/s and turn latency with 16 sessions driven at once;
//! - `delivery`: commit-to-frame latency of events on 100 open SSE streams.
//!
//! and, without the server (see `moves.rs`):
//!
//! - `tenant-move`: the online move of a tenant of `--events` events to another shard, and
//!   the append latency (p50, p99, max = the longest write pause) of its sessions' writers
//!   during the move, next to the same with no move running.
//!
//! Sessions' logs are filled straight through the store (validated by the same rules as the
//! API) rather than over HTTP, so a 100k-event session takes seconds to prepare.
//!
//! `cargo run --release -p oma-bench -- [--seconds N] [--connections 16] [--events 100000]`

mod client;
mod cluster;
mod cpu;
mod delivery;
mod load;
mod memory;
mod metrics;
mod model;
mod moves;
mod server;
mod sse;
mod stats;
mod turns;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hyper::{Method, StatusCode, Uri};
use serde_json::{Value, json};

use crate::client::{Api, Headers};
use crate::load::{Plan, Scenario};
use crate::model::FakeModel;
use crate::server::{BenchServer, SandboxKind};
use crate::stats::Summary;
use crate::turns::TurnSetup;

/// Agents created up front for `GET /v1/agents/{id}` to cycle through, so reads are not all of
/// one row.
const READ_AGENTS: usize = 100;
/// Cores of CPU other processes may use during a measurement before the report warns.
const NOISY_OTHER_CORES: f64 = 0.2;
/// The model the benchmark's agents use.
const MODEL: &str = "claude-opus-4-8";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "oma-bench",
    version,
    about = "Benchmark the oma API on SQLite over loopback: requests/s, p50, p99"
)]
struct Args {
    /// Measured seconds per scenario.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Warm-up seconds per scenario (requests sent, not recorded).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Events in the large session: the last size at which the first page is measured.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Smaller session sizes at which the first page is also measured (comma separated);
    /// sizes not below --events are ignored.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000u64, 10_000])]
    sizes: Vec<u64>,
    /// Worker threads of the server's runtime.
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Sessions driven at once by the `turns16` scenario.
    #[arg(long, default_value_t = 16)]
    turn_sessions: usize,
    /// Turns on one session before a turn driver moves to a fresh one (the host rebuilds the
    /// model context from the whole log each turn, so long sessions make slower turns).
    #[arg(long, default_value_t = 50)]
    turns_per_session: u32,
    /// SSE streams open on the `delivery` scenario's session.
    #[arg(long, default_value_t = 100)]
    streams: usize,
    /// Events per second the `delivery` scenario commits.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// The sandbox backend of the server's boxes (the `tool-turn` scenario runs a tool).
    #[arg(long, value_enum, default_value_t = SandboxKind::Isolated)]
    sandbox: SandboxKind,
    /// Start boxes at the first tool call instead of at session create (the behaviour before
    /// provisioning at create; for comparison).
    #[arg(long)]
    no_provision: bool,
    /// Boxes the isolated backend keeps ready for new sessions (`oma serve`'s default is 2;
    /// 0: none, every box starts when its session needs it).
    #[arg(long, default_value_t = 2, env = "OMA_SANDBOX_POOL")]
    ready_boxes: usize,
    /// Run only these scenarios (comma separated). Default: all.
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<Only>,
    /// Directory in which to create the temporary data directory (default: the system's
    /// temporary directory). The database should live on the disk you care about.
    #[arg(long)]
    data_parent: Option<PathBuf>,
    /// Run the server's Prometheus listener too (per-request HTTP accounting on, scraped
    /// once a second), to measure what metrics cost.
    #[arg(long)]
    metrics: bool,
    /// Measure oma as a cluster instead (and only that): `oma serve` nodes on a fresh
    /// PostgreSQL database created beside the one this URL names (see `cluster.rs`).
    #[arg(long, value_name = "POSTGRES_URL")]
    cluster: Option<String>,
    /// With --cluster: the node counts to measure turns on.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2, 3])]
    cluster_nodes: Vec<usize>,
    /// With --cluster: failover trials (kill -9 of the node running a turn) on 2 nodes.
    #[arg(long, default_value_t = 20)]
    failovers: usize,
    /// With --cluster: the nodes' session lease lifetime.
    #[arg(long, default_value_t = 10_000)]
    lease_ttl_ms: u64,
    /// With --cluster: the `oma` binary to run (default: the one beside this executable).
    #[arg(long)]
    oma_bin: Option<PathBuf>,
    /// `tenant-move`: sessions the moving tenant's --events events are spread over.
    #[arg(long, default_value_t = 100)]
    move_sessions: usize,
    /// `tenant-move`: writer tasks (one session each) appending one event at a time through
    /// the router during the move.
    #[arg(long, default_value_t = 4)]
    move_writers: usize,
    /// `tenant-move`: appends per second of each writer; 0 = back to back, as fast as the
    /// store takes them (the worst case for the mover's catch-up).
    #[arg(long, default_value_t = 0.0)]
    move_rate: f64,
    /// `tenant-move`: the mover's grace period between the switch and the purge, in ms.
    #[arg(long, default_value_t = 500)]
    move_grace_ms: u64,
    /// `tenant-move`: also move to a PostgreSQL shard, a fresh database created (and
    /// dropped) beside the one this URL names.
    #[arg(long, value_name = "POSTGRES_URL", env = "OMA_BENCH_DATABASE_URL")]
    move_postgres: Option<String>,
    /// `memory`: how many sessions to create.
    #[arg(long, default_value_t = 1000)]
    memory_sessions: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Only {
    /// POST /v1/agents
    AgentsCreate,
    /// GET /v1/agents/{id}
    AgentGet,
    /// POST /v1/sessions/{id}/events
    EventsSend,
    /// First page of GET /v1/sessions/{id}/events at each session size
    EventsPage,
    /// One session's turn against an instant fake model, its model floor and overhead
    Turn,
    /// Turns/s with --turn-sessions sessions at once
    Turns16,
    /// A `bash` tool turn on a session created just before (its box starts with it)
    ToolTurn,
    /// Commit → SSE delivery latency on --streams streams
    Delivery,
    /// Moving a tenant of --events events to another shard while --move-writers append
    TenantMove,
    /// The server's memory before and after creating --memory-sessions sessions
    Memory,
}

impl Args {
    fn wants(&self, s: Only) -> bool {
        self.only.is_empty() || self.only.contains(&s)
    }

    /// Whether any scenario on the benchmark's server is selected (`tenant-move` needs none).
    fn wants_server(&self) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| *o != Only::TenantMove)
    }

    fn move_plan(&self, plan: Plan) -> moves::MovePlan {
        moves::MovePlan {
            events: self.events,
            sessions: self.move_sessions,
            writers: self.move_writers,
            grace: Duration::from_millis(self.move_grace_ms),
            baseline: moves::MovePlan::baseline_for(plan.measure),
            rate: self.move_rate,
            threads: self.server_threads,
            postgres: self.move_postgres.clone().filter(|u| !u.is_empty()),
        }
    }

    fn wants_model(&self) -> bool {
        self.wants(Only::Turn) || self.wants(Only::Turns16) || self.wants(Only::ToolTurn)
    }

    fn plan(&self) -> Result<Plan> {
        ensure!(self.seconds > 0.0, "--seconds must be positive");
        ensure!(self.connections > 0, "--connections must be at least 1");
        let measure =
            Duration::try_from_secs_f64(self.seconds).context("--seconds is out of range")?;
        let warmup =
            Duration::try_from_secs_f64(self.warmup).context("--warmup must be 0 or more")?;
        Ok(Plan {
            connections: self.connections,
            warmup,
            measure,
        })
    }

    /// The session sizes to measure, ascending, ending with `--events`.
    fn session_sizes(&self) -> Result<Vec<u64>> {
        ensure!(self.events > 0, "--events must be at least 1");
        let mut sizes: Vec<u64> = self
            .sizes
            .iter()
            .copied()
            .filter(|&s| s > 0 && s < self.events)
            .collect();
        sizes.push(self.events);
        sizes.sort_unstable();
        sizes.dedup();
        Ok(sizes)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    match run(&args) {
        Ok(report) => {
            print!("{}", report.render());
            if report.rows.iter().any(|r| r.errors > 0 || r.ok == 0) {
                eprintln!("error: some scenarios had errors or no successful requests");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Server-side warnings and errors (e.g. a storage failure behind a 500) go to stderr; the
/// server logs nothing per request, so this costs nothing on the measured path.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OMA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The load generator's runtime (its threads are named so CPU is told apart).
fn client_runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(cpu::CLIENT_THREAD)
        .enable_all()
        .build()
        .context("starting the client runtime")
}

/// `--cluster`: the cluster scenarios alone.
fn run_cluster(args: &Args, url: &str, plan: Plan) -> Result<Report> {
    let client_rt = client_runtime(args.client_threads)?;
    let cp = cluster::ClusterPlan {
        admin_url: url.to_string(),
        oma_bin: match &args.oma_bin {
            Some(p) => p.clone(),
            None => cluster::default_oma_bin()?,
        },
        node_counts: args.cluster_nodes.clone(),
        sessions: args.turn_sessions,
        turns_per_session: args.turns_per_session,
        failovers: args.failovers,
        lease_ttl_ms: args.lease_ttl_ms,
        plan,
    };
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let preamble = format!(
        "oma-bench {}: oma as a cluster of `oma serve` nodes ({}) on PostgreSQL, {} CPU(s) \
         shared by the nodes, PostgreSQL, the fake model and the client; {:.1} s warm-up + \
         {:.1} s measured per scenario; CPU columns: srv = none (the nodes are other \
         processes), other = the nodes + PostgreSQL + the fake model\n",
        env!("CARGO_PKG_VERSION"),
        cp.oma_bin.display(),
        cores,
        plan.warmup.as_secs_f64(),
        plan.measure.as_secs_f64(),
    );
    eprint!("{preamble}");
    let r = cluster::run(&client_rt, &cp)?;
    Ok(Report {
        preamble,
        rows: r.rows,
        pages: Vec::new(),
        notes: r.notes,
        cluster: true,
    })
}

/// Everything measured, in the order it ran.
struct Report {
    preamble: String,
    rows: Vec<Summary>,
    /// `(session size, first page ascending, first page descending)`.
    pages: Vec<(u64, Summary, Summary)>,
    /// Derived figures printed under the table (the turn's overhead over the model floor).
    notes: Vec<String>,
    /// A `--cluster` run (the servers are other processes).
    cluster: bool,
}

impl Report {
    fn render(&self) -> String {
        let mut out = self.preamble.clone();
        out.push('\n');
        out.push_str(&stats::table(&self.rows));
        if let (Some(first), Some(last)) = (self.pages.first(), self.pages.last())
            && self.pages.len() > 1
        {
            out.push('\n');
            for (name, a, b) in [
                ("ascending (default)", &first.1, &last.1),
                ("descending", &first.2, &last.2),
            ] {
                out.push_str(&format!(
                    "first page, {name}: p50 {} at {} events vs {} at {} events ({:.2}x)\n",
                    stats::ms(b.p50_us),
                    size_label(last.0),
                    stats::ms(a.p50_us),
                    size_label(first.0),
                    f64::from(b.p50_us) / f64::from(a.p50_us.max(1)),
                ));
            }
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                out.push_str(n);
                out.push('\n');
            }
        }
        let busiest = self
            .rows
            .iter()
            .filter_map(|r| r.other_cores)
            .fold(0.0_f64, f64::max);
        // In a cluster run the servers are the other processes: nothing to warn about.
        if busiest > NOISY_OTHER_CORES && !self.cluster {
            out.push_str(&format!(
                "warning: other processes used up to {busiest:.2} cores during a measurement: \
                 the machine was not quiet and those figures understate the server\n"
            ));
        }
        for r in &self.rows {
            if let Some(e) = &r.first_error {
                out.push_str(&format!("{}: first error: {e}\n", r.label));
            }
        }
        out
    }
}

fn run(args: &Args) -> Result<Report> {
    let plan = args.plan()?;
    if let Some(url) = &args.cluster {
        return run_cluster(args, url, plan);
    }
    let sizes = args.session_sizes()?;
    ensure!(
        args.server_threads > 0,
        "--server-threads must be at least 1"
    );
    ensure!(
        args.client_threads > 0,
        "--client-threads must be at least 1"
    );
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    // The tenant move runs first, on its own databases and runtime, with no server.
    let moved = if args.wants(Only::TenantMove) {
        let mp = args.move_plan(plan);
        eprintln!(
            "oma-bench {}: tenant-move, {} CPU(s); mover and writers on one runtime of {} \
             worker thread(s)",
            env!("CARGO_PKG_VERSION"),
            cores,
            mp.threads
        );
        Some(moves::run(args.data_parent.as_deref(), &mp)?)
    } else {
        None
    };
    if !args.wants_server() {
        let moved = moved.context("the tenant move did not run")?;
        let mp = args.move_plan(plan);
        let preamble = format!(
            "oma-bench {}: tenant-move, {} CPU(s); a SQLite router database (the source shard) \
             and a target shard ({}); the mover and {} writers on one runtime of {} worker \
             thread(s); baseline {:.1} s with no move, then the move (grace {} ms)\n",
            env!("CARGO_PKG_VERSION"),
            cores,
            if mp.postgres.is_some() {
                "SQLite, then PostgreSQL"
            } else {
                "SQLite"
            },
            mp.writers,
            mp.threads,
            mp.baseline.as_secs_f64(),
            mp.grace.as_millis(),
        );
        return Ok(Report {
            preamble,
            rows: moved.rows,
            pages: Vec::new(),
            notes: moved.notes,
            cluster: false,
        });
    }

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.server_threads)
        .thread_name("oma-server")
        .enable_all()
        .build()
        .context("starting the server runtime")?;
    let client_rt = client_runtime(args.client_threads)?;

    // The fake model runs only for the scenarios that need it.
    let fake = if args.wants_model() {
        Some(FakeModel::start()?)
    } else {
        None
    };
    let provider = fake.as_ref().map(FakeModel::provider).transpose()?;
    let server = server_rt.block_on(BenchServer::start(
        args.data_parent.as_deref(),
        provider,
        args.sandbox,
        !args.no_provision,
        args.ready_boxes,
    ))?;
    let preamble = format!(
        "oma-bench {}: oma on SQLite ({}), {} CPU(s); server runtime {} worker thread(s), \
         client runtime {} thread(s); {} keep-alive HTTP/1.1 connections on loopback; \
         {:.1} s warm-up + {:.1} s measured per scenario\n",
        env!("CARGO_PKG_VERSION"),
        server.data_dir().display(),
        cores,
        args.server_threads,
        args.client_threads,
        plan.connections,
        plan.warmup.as_secs_f64(),
        plan.measure.as_secs_f64(),
    );
    let preamble = if args.metrics {
        format!("{preamble}with metrics: /metrics listener on, scraped every second\n")
    } else {
        preamble
    };
    eprint!("{preamble}");
    let metrics_tasks = if args.metrics {
        server_rt.block_on(metrics::start(&server.state))?
    } else {
        Vec::new()
    };

    let result = measure(
        args,
        plan,
        &sizes,
        &server,
        fake.as_ref(),
        &server_rt,
        &client_rt,
    );
    for t in metrics_tasks {
        t.abort();
    }
    // Stop the server whatever happened; a failure to stop matters less than the run's error.
    let stopped = server_rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), server.stop()).await });
    let measured = result?;
    match stopped {
        Ok(r) => r?,
        Err(_) => bail!("the server did not stop within 10 s"),
    }
    let (mut rows, mut notes) = (measured.rows, measured.notes);
    if let Some(m) = moved {
        rows.extend(m.rows);
        notes.extend(m.notes);
    }
    Ok(Report {
        preamble,
        rows,
        pages: measured.pages,
        notes,
        cluster: false,
    })
}

#[derive(Default)]
struct Measured {
    rows: Vec<Summary>,
    pages: Vec<(u64, Summary, Summary)>,
    notes: Vec<String>,
}

fn measure(
    args: &Args,
    plan: Plan,
    sizes: &[u64],
    server: &BenchServer,
    fake: Option<&FakeModel>,
    server_rt: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
) -> Result<Measured> {
    let addr = server.addr;
    let headers = Headers::new(addr, &server.key)?;
    let mut api = client_rt.block_on(Api::connect(addr, &server.key))?;
    let fixtures = client_rt.block_on(Fixtures::create(&mut api, args))?;

    let mut rows = Vec::new();
    let mut pages = Vec::new();
    let go = |sc: Scenario| -> Result<Summary> {
        eprintln!("running {} …", sc.label);
        let s = client_rt.block_on(load::run(addr, &headers, sc, plan))?;
        eprintln!(
            "  {:.0} req/s, p50 {}, p99 {}, {} errors",
            s.rps(),
            stats::ms(s.p50_us),
            stats::ms(s.p99_us),
            s.errors
        );
        Ok(s)
    };

    if args.wants(Only::AgentsCreate) {
        let body = json!({"name": "bench-agent", "model": MODEL, "system": "You are a benchmark."});
        rows.push(go(Scenario {
            label: "POST /v1/agents".into(),
            method: Method::POST,
            uris: vec![uri("/v1/agents")?],
            body: Some(Bytes::from(body.to_string())),
            expect: StatusCode::OK,
        })?);
    }
    if args.wants(Only::AgentGet) {
        let uris = fixtures
            .agents
            .iter()
            .map(|id| uri(&format!("/v1/agents/{id}")))
            .collect::<Result<Vec<_>>>()?;
        rows.push(go(Scenario {
            label: "GET /v1/agents/{id}".into(),
            method: Method::GET,
            uris,
            body: None,
            expect: StatusCode::OK,
        })?);
    }
    if let Some(sid) = &fixtures.send_session {
        let body = json!({"events": [server::user_message(0)]});
        rows.push(go(Scenario {
            label: "POST /v1/sessions/{id}/events".into(),
            method: Method::POST,
            uris: vec![uri(&format!("/v1/sessions/{sid}/events"))?],
            body: Some(Bytes::from(body.to_string())),
            expect: StatusCode::OK,
        })?);
    }
    if let Some(sid) = &fixtures.page_session {
        for &size in sizes {
            eprintln!("filling session {sid} to {size} events …");
            let started = std::time::Instant::now();
            let filled = server_rt.block_on(server::fill_events(
                &server.store,
                server::TENANT,
                sid,
                size,
            ))?;
            eprintln!("  filled in {:.1} s", started.elapsed().as_secs_f64());
            ensure!(
                filled == size,
                "the session holds {filled} events, expected {size}"
            );
            let mut pair = Vec::with_capacity(2);
            for desc in [false, true] {
                let path = if desc {
                    format!("/v1/sessions/{sid}/events?order=desc")
                } else {
                    format!("/v1/sessions/{sid}/events")
                };
                client_rt.block_on(check_first_page(&mut api, &path, size, desc))?;
                let label = if desc {
                    format!("GET …/events?order=desc, {} events", size_label(size))
                } else {
                    format!("GET …/events first page, {} events", size_label(size))
                };
                pair.push(go(Scenario {
                    label,
                    method: Method::GET,
                    uris: vec![uri(&path)?],
                    body: None,
                    expect: StatusCode::OK,
                })?);
            }
            if let (Some(desc), Some(asc)) = (pair.pop(), pair.pop()) {
                rows.push(asc.clone());
                rows.push(desc.clone());
                pages.push((size, asc, desc));
            }
        }
    }
    let mut notes = Vec::new();
    if let (Some(fake), Some(setup)) = (fake, &fixtures.turns) {
        let report = |s: &Summary| {
            eprintln!(
                "  {:.0} turns/s, p50 {}, p99 {}, {} errors",
                s.rps(),
                stats::ms(s.p50_us),
                stats::ms(s.p99_us),
                s.errors
            );
        };
        if args.wants(Only::Turn) {
            eprintln!("running turns on 1 session …");
            let label = "turn: POST user.message → status_idle, 1 session";
            let turn =
                client_rt.block_on(turns::run(&[addr], &server.key, label, 1, setup, plan))?;
            report(&turn);
            // The floor replays the very request the server last sent to the model.
            let body = fake
                .last_request()
                .context("the fake model received no request during the turns")?;
            eprintln!("running the model floor …");
            let floor = client_rt.block_on(fake.floor(
                "model floor: POST /v1/messages (stream) to the fake",
                body,
                plan,
            ))?;
            report(&floor);
            notes.push(overhead(&turn, &floor));
            rows.push(turn);
            rows.push(floor);
        }
        if args.wants(Only::Turns16) {
            let n = args.turn_sessions;
            eprintln!("running turns on {n} sessions at once …");
            let label = format!("turns: {n} sessions at once (req/s = turns/s)");
            let s = client_rt.block_on(turns::run(&[addr], &server.key, &label, n, setup, plan))?;
            report(&s);
            rows.push(s);
        }
    }
    if let Some(setup) = fixtures
        .tool_turns
        .as_ref()
        .filter(|_| args.wants(Only::ToolTurn))
    {
        eprintln!("running bash tool turns, each on a new session …");
        let label = format!(
            "tool turn: new session, POST user.message → bash → status_idle ({:?} boxes{}, {} ready)",
            args.sandbox,
            if args.no_provision {
                ", no provisioning"
            } else {
                ""
            },
            args.ready_boxes
        )
        .to_lowercase();
        let s = client_rt.block_on(turns::run(&[addr], &server.key, &label, 1, setup, plan))?;
        eprintln!(
            "  p50 {}, p99 {}, {} errors",
            stats::ms(s.p50_us),
            stats::ms(s.p99_us),
            s.errors
        );
        rows.push(s);
    }
    if let Some(sid) = &fixtures.delivery_session {
        eprintln!(
            "running delivery to {} streams at {} events/s …",
            args.streams, args.rate
        );
        let d = delivery::run(
            server_rt,
            client_rt,
            addr,
            &headers,
            &server.store,
            &server.state,
            server::TENANT,
            sid,
            args.streams,
            args.rate,
            plan,
        )?;
        eprintln!(
            "  p50 {}, p99 {}, max {}, {} missed",
            stats::ms(d.delivery.p50_us),
            stats::ms(d.delivery.p99_us),
            stats::ms(d.delivery.max_us),
            d.delivery.errors
        );
        rows.push(d.delivery);
        rows.push(d.commit);
    }
    if args.wants(Only::Memory) {
        eprintln!("measuring memory for {} sessions …", args.memory_sessions);
        let note = client_rt.block_on(memory::run(&mut api, args.memory_sessions))?;
        eprintln!("  {note}");
        notes.push(note);
    }
    drop(api);
    Ok(Measured { rows, pages, notes })
}

/// The platform's overhead per turn: turn time minus the model floor, at p50 and p99.
fn overhead(turn: &Summary, floor: &Summary) -> String {
    let d = |a: u32, b: u32| (f64::from(a) - f64::from(b)) / 1000.0;
    format!(
        "turn overhead over the model floor: p50 {:.3} ms ({} − {}), p99 {:.3} ms ({} − {})",
        d(turn.p50_us, floor.p50_us),
        stats::ms(turn.p50_us),
        stats::ms(floor.p50_us),
        d(turn.p99_us, floor.p99_us),
        stats::ms(turn.p99_us),
        stats::ms(floor.p99_us),
    )
}

/// The objects the scenarios act on, made through the API like any client would.
struct Fixtures {
    agents: Vec<String>,
    /// The session `POST …/events` appends to.
    send_session: Option<String>,
    /// The session whose log grows through the sizes and whose first page is read.
    page_session: Option<String>,
    /// The agent (on the fake model) and environment of the turn scenarios' sessions.
    turns: Option<TurnSetup>,
    /// The same with an agent that calls `bash` once per turn, one turn per session.
    tool_turns: Option<TurnSetup>,
    /// The session the delivery scenario's streams follow.
    delivery_session: Option<String>,
}

impl Fixtures {
    async fn create(api: &mut Api, args: &Args) -> Result<Self> {
        let mut agents = Vec::with_capacity(READ_AGENTS);
        for i in 0..READ_AGENTS {
            agents.push(
                api.create(
                    "/v1/agents",
                    &json!({"name": format!("bench-read-{i}"), "model": MODEL}),
                )
                .await
                .context("creating an agent")?,
            );
        }
        let wants_send = args.wants(Only::EventsSend);
        let wants_page = args.wants(Only::EventsPage);
        let wants_delivery = args.wants(Only::Delivery);
        let (mut send_session, mut page_session, mut delivery_session) = (None, None, None);
        let (mut turns, mut tool_turns) = (None, None);
        if wants_send || wants_page || wants_delivery || args.wants_model() {
            let env = api
                .create(
                    "/v1/environments",
                    &json!({"name": "bench", "config": {"type": "cloud"}}),
                )
                .await
                .context("creating an environment")?;
            if args.wants_model() {
                let agent = api
                    .create(
                        "/v1/agents",
                        &json!({"name": "bench-turns", "model": server::TURN_MODEL}),
                    )
                    .await
                    .context("creating the turn agent")?;
                let tool_agent = api
                    .create(
                        "/v1/agents",
                        &json!({
                            "name": "bench-tool-turns",
                            "model": server::TURN_MODEL,
                            "tools": [{
                                "type": "agent_toolset_20260401",
                                "default_config": {"permission_policy": {"type": "always_allow"}},
                            }],
                        }),
                    )
                    .await
                    .context("creating the tool turn agent")?;
                let plain = TurnSetup {
                    agent,
                    environment: env.clone(),
                    turns_per_session: args.turns_per_session,
                    tool: false,
                };
                tool_turns = Some(TurnSetup {
                    agent: tool_agent,
                    turns_per_session: 1,
                    tool: true,
                    ..plain.clone()
                });
                turns = Some(plain);
            }
            let body = json!({"agent": agents[0], "environment_id": env});
            if wants_delivery {
                delivery_session = Some(
                    api.create("/v1/sessions", &body)
                        .await
                        .context("creating a session")?,
                );
            }
            if wants_send {
                send_session = Some(
                    api.create("/v1/sessions", &body)
                        .await
                        .context("creating a session")?,
                );
            }
            if wants_page {
                page_session = Some(
                    api.create("/v1/sessions", &body)
                        .await
                        .context("creating a session")?,
                );
            }
        }
        Ok(Self {
            agents,
            send_session,
            page_session,
            turns,
            tool_turns,
            delivery_session,
        })
    }
}

/// Checks that a first page is what a client would expect before timing it: events, in the
/// asked order (the log starts with the fill's message 0 and ends with message `size - 1`),
/// and a next page when the log is longer than the page.
async fn check_first_page(api: &mut Api, path: &str, size: u64, desc: bool) -> Result<()> {
    let page = api.call(Method::GET, path, None).await?;
    let data = page
        .get("data")
        .and_then(Value::as_array)
        .with_context(|| format!("GET {path}: no `data` array"))?;
    let first = data
        .first()
        .with_context(|| format!("GET {path}: an empty page of a {size}-event session"))?;
    let text = first
        .pointer("/content/0/text")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let n = if desc { size - 1 } else { 0 };
    let want = format!("Benchmark message {n}:");
    ensure!(
        text.starts_with(&want),
        "GET {path}: the first event is not message {n}: {first}"
    );
    if (data.len() as u64) < size {
        ensure!(
            page.get("next_page").is_some_and(|n| !n.is_null()),
            "GET {path}: no next_page although the session holds {size} events"
        );
    }
    Ok(())
}

fn uri(path: &str) -> Result<Uri> {
    path.parse()
        .with_context(|| format!("`{path}` is not a valid request target"))
}

/// `1000` → `1k`, `100000` → `100k`, `1500` → `1500`.
fn size_label(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut v = vec!["oma-bench"];
        v.extend_from_slice(extra);
        Args::try_parse_from(v).unwrap()
    }

    #[test]
    fn defaults_match_the_issue() {
        let a = args(&[]);
        assert_eq!(a.connections, 16);
        assert_eq!(a.events, 100_000);
        assert_eq!(a.session_sizes().unwrap(), vec![1_000, 10_000, 100_000]);
        let p = a.plan().unwrap();
        assert_eq!(p.measure, Duration::from_secs(10));
        assert!(a.wants(Only::AgentGet) && a.wants(Only::EventsPage));
    }

    #[test]
    fn sizes_are_sorted_deduplicated_and_capped() {
        let a = args(&["--events", "5000", "--sizes", "10000,500,500,0,5000"]);
        assert_eq!(a.session_sizes().unwrap(), vec![500, 5000]);
        assert!(args(&["--events", "0"]).session_sizes().is_err());
    }

    #[test]
    fn bad_durations_are_refused() {
        assert!(args(&["--seconds", "0"]).plan().is_err());
        assert!(args(&["--warmup=-1"]).plan().is_err());
        assert!(args(&["--connections", "0"]).plan().is_err());
    }

    #[test]
    fn only_selects_scenarios() {
        let a = args(&["--only", "agent-get,events-send"]);
        assert!(a.wants(Only::AgentGet) && a.wants(Only::EventsSend));
        assert!(!a.wants(Only::AgentsCreate) && !a.wants(Only::EventsPage));
        assert!(!a.wants_model());
        let a = args(&["--only", "turns16,delivery"]);
        assert!(a.wants(Only::Turns16) && a.wants(Only::Delivery) && a.wants_model());
        assert!(!a.wants(Only::Turn));
    }

    #[test]
    fn size_labels() {
        assert_eq!(size_label(1000), "1k");
        assert_eq!(size_label(100_000), "100k");
        assert_eq!(size_label(1500), "1500");
        assert_eq!(size_label(2_000_000), "2M");
        assert_eq!(size_label(7), "7");
    }

    /// The whole benchmark, tiny: every scenario runs against a real server without errors,
    /// and the first-page checks pass at each size.
    #[test]
    fn end_to_end_smoke() {
        let a = args(&[
            "--seconds",
            "0.3",
            "--warmup",
            "0.1",
            "--connections",
            "4",
            "--events",
            "250",
            "--sizes",
            "120",
            "--turn-sessions",
            "3",
            "--turns-per-session",
            "4",
            "--streams",
            "5",
            "--rate",
            "100",
            "--move-rate",
            "100",
        ]);
        let report = run(&a).unwrap();
        let labels: Vec<&str> = report.rows.iter().map(|r| r.label.as_str()).collect();
        // The tenant move's baseline and move rows, per target (SQLite, and PostgreSQL when
        // OMA_BENCH_DATABASE_URL is set).
        let moves = if a.move_plan(a.plan().unwrap()).postgres.is_some() {
            4
        } else {
            2
        };
        // API scenarios, two first pages at two sizes, turn + floor, turns at once, a tool
        // turn, delivery + its writer's commits, the tenant move.
        assert_eq!(
            labels.len(),
            3 + 2 * 2 + 2 + 1 + 1 + 2 + moves,
            "{labels:?}"
        );
        assert!(
            labels.iter().any(|l| l.starts_with("tool turn")),
            "{labels:?}"
        );
        for r in &report.rows {
            assert!(r.ok > 0, "{}: no successful requests", r.label);
            assert_eq!(r.errors, 0, "{}: {:?}", r.label, r.first_error);
        }
        assert_eq!(report.pages.len(), 2);
        let text = report.render();
        assert!(text.contains("GET /v1/agents/{id}"));
        assert!(
            text.contains("turn overhead over the model floor"),
            "{text}"
        );
    }

    #[test]
    fn only_tenant_move_needs_no_server() {
        let a = args(&["--only", "tenant-move"]);
        assert!(a.wants(Only::TenantMove) && !a.wants_server() && !a.wants_model());
        assert!(args(&["--only", "tenant-move,agent-get"]).wants_server());
        assert!(args(&[]).wants(Only::TenantMove));
        let p = a.move_plan(a.plan().unwrap());
        assert_eq!((p.events, p.sessions, p.writers), (100_000, 100, 4));
        assert_eq!(p.grace, Duration::from_millis(500));
        assert_eq!(p.baseline, Duration::from_secs(2));
    }

    /// `--only tenant-move`, tiny: the tenant moves while its writers append, nothing is lost
    /// (the scenario checks the new shard's log), and the report has the baseline and move rows
    /// (and, with `OMA_BENCH_DATABASE_URL` set, the PostgreSQL target's too).
    #[test]
    fn tenant_move_smoke() {
        let a = args(&[
            "--only",
            "tenant-move",
            "--seconds",
            "0.3",
            "--events",
            "3000",
            "--move-sessions",
            "10",
            "--move-grace-ms",
            "20",
            // Paced, so that a PostgreSQL target's catch-up (slower per change in a debug
            // build) converges quickly.
            "--move-rate",
            "100",
        ]);
        let report = run(&a).unwrap();
        let want = if a.move_plan(a.plan().unwrap()).postgres.is_some() {
            4
        } else {
            2
        };
        assert_eq!(report.rows.len(), want, "{:?}", report.rows);
        for r in &report.rows {
            assert!(r.label.starts_with("tenant-move"), "{}", r.label);
            assert!(r.ok > 0, "{}: no appends", r.label);
            assert_eq!(r.errors, 0, "{}: {:?}", r.label, r.first_error);
            assert!(r.max_us >= r.p99_us && r.p99_us >= r.p50_us);
        }
        let text = report.render();
        assert!(
            text.contains("rows copied") && text.contains("longest write pause"),
            "{text}"
        );
    }
}
