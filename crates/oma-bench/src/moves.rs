//! `tenant-move`: moving a tenant of `--events` events between shards online, and the write
//! pause its sessions see.
//!
//! A router database (SQLite, which is also the source shard `main`) and a second shard
//! (`two`: SQLite, or PostgreSQL with `--move-postgres`); one tenant with `--move-sessions`
//! sessions holding `--events` events in all, filled through the store in batched appends
//! (the same validated `user.message`s as the page scenario). Then `--move-writers` writer
//! tasks, each on a session of its own, append one event at a time through a
//! [`TenantRouter`], as a server does: a write refused by the move's fence waits with
//! `wait_until_writable` and is retried on the shard the map then names. Their append
//! latency is measured first with no move running (the baseline), then while
//! `tenant_move::run` moves the tenant (copy under a change log, catch-up, fence, verify,
//! switch, grace period, purge). The longest append during the move is the longest write
//! pause a session saw.
//!
//! Afterwards the target must hold every event (the fill and every acknowledged append) and
//! the router must name it, or the scenario fails.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use oma_core::agents::{AgentConfig, CreateAgentParams};
use oma_core::events::{SendContext, validate_send};
use oma_core::seal::{Sealer, generate_root_secret};
use oma_core::sessions::{CreateSession, CreateSessionParams};
use oma_store::shards::ShardStatus;
use oma_store::tenant_move::{self, MoveOptions, MoveReport};
use oma_store::{Backend, Store, StoreError, TenantRouter};
use serde_json::json;
use tempfile::TempDir;

use crate::server;
use crate::stats::{self, Summary};

/// The tenant that moves.
const TENANT: &str = "mover";
/// How long a fenced writer waits for the switch before the append counts as failed.
const FENCE_WAIT: Duration = Duration::from_secs(60);
/// The longest baseline window (no move running); `--seconds` when shorter.
const MAX_BASELINE: Duration = Duration::from_secs(2);

/// What the scenario is asked to do.
#[derive(Debug, Clone)]
pub struct MovePlan {
    /// Events of the tenant, in all, before the writers start.
    pub events: u64,
    /// Sessions they are spread over.
    pub sessions: usize,
    /// Writer tasks (each on its own session) appending during the move.
    pub writers: usize,
    /// The mover's grace period between the switch and the purge.
    pub grace: Duration,
    /// The baseline window (appends with no move running).
    pub baseline: Duration,
    /// Appends per second of each writer; 0: as fast as it can (one after another).
    pub rate: f64,
    /// Worker threads of the runtime the mover and the writers share.
    pub threads: usize,
    /// PostgreSQL server to create a target shard database on (SQLite → PostgreSQL too).
    pub postgres: Option<String>,
}

impl MovePlan {
    pub fn baseline_for(seconds: Duration) -> Duration {
        seconds.min(MAX_BASELINE)
    }
}

/// The rows (baseline and during-move append latency per backend pair) and notes (the move's
/// own figures).
pub struct Moved {
    pub rows: Vec<Summary>,
    pub notes: Vec<String>,
}

pub fn run(parent: Option<&Path>, plan: &MovePlan) -> Result<Moved> {
    ensure!(plan.events > 0, "--events must be at least 1");
    ensure!(plan.sessions > 0, "--move-sessions must be at least 1");
    ensure!(plan.writers > 0, "--move-writers must be at least 1");
    ensure!(plan.threads > 0, "--server-threads must be at least 1");
    ensure!(
        plan.rate.is_finite() && plan.rate >= 0.0,
        "--move-rate must be 0 or more"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.threads)
        .thread_name("oma-move")
        .enable_all()
        .build()
        .context("starting the mover's runtime")?;
    let mut out = Moved {
        rows: Vec::new(),
        notes: Vec::new(),
    };
    let mut targets = vec![Backend::Sqlite];
    if plan.postgres.is_some() {
        targets.push(Backend::Postgres);
    }
    for target in targets {
        let (rows, note) = rt.block_on(one(parent, plan, target))?;
        out.rows.extend(rows);
        out.notes.push(note);
    }
    Ok(out)
}

/// The target shard's database: a SQLite file in the run's directory, or a fresh PostgreSQL
/// database dropped at the end.
struct TargetDb {
    url: String,
    pg: Option<(String, String)>,
}

impl TargetDb {
    async fn create(dir: &Path, backend: Backend, admin: Option<&str>) -> Result<Self> {
        match backend {
            Backend::Sqlite => Ok(Self {
                url: format!("sqlite://{}", dir.join("two.db").display()),
                pg: None,
            }),
            Backend::Postgres => {
                let admin = admin.context("no PostgreSQL URL")?;
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                let name = format!("oma_bench_move_{}_{nanos}", std::process::id());
                let s = Store::connect(admin)
                    .await
                    .context("connecting to --move-postgres")?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(s.writer())
                    .await
                    .context("creating the target shard's database")?;
                s.close().await;
                let (head, _) = admin
                    .rsplit_once('/')
                    .context("--move-postgres must be a postgres:// URL with a database")?;
                Ok(Self {
                    url: format!("{head}/{name}"),
                    pg: Some((admin.to_string(), name)),
                })
            }
        }
    }

    async fn drop_db(self) {
        if let Some((admin, name)) = self.pg
            && let Ok(s) = Store::connect(&admin).await
        {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(s.writer())
            .await;
            s.close().await;
        }
    }
}

async fn one(
    parent: Option<&Path>,
    plan: &MovePlan,
    target_backend: Backend,
) -> Result<(Vec<Summary>, String)> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("oma-bench-move-");
    let dir: TempDir = match parent {
        Some(p) => builder
            .tempdir_in(p)
            .with_context(|| format!("creating a directory under {}", p.display()))?,
        None => builder.tempdir().context("creating a directory")?,
    };
    let target_db = TargetDb::create(dir.path(), target_backend, plan.postgres.as_deref()).await?;
    let result = measure(dir.path(), &target_db.url, plan, target_backend).await;
    target_db.drop_db().await;
    result
}

async fn migrated(url: &str) -> Result<Store> {
    let s = Store::connect(url)
        .await
        .with_context(|| format!("opening {}", oma_store::db_url_redacted(url)))?;
    s.migrate_up().await.context("migrating")?;
    Ok(s)
}

async fn measure(
    dir: &Path,
    target_url: &str,
    plan: &MovePlan,
    target_backend: Backend,
) -> Result<(Vec<Summary>, String)> {
    let pair = format!("sqlite→{}", target_backend.name());
    let main = migrated(&format!("sqlite://{}", dir.join("router.db").display())).await?;
    let target = migrated(target_url).await?;
    main.ensure_main_shard().await?;
    main.add_shard("two", target_url, ShardStatus::Open, None)
        .await?;
    main.create_tenant(TENANT).await?;

    // The tenant: `sessions` sessions, `events` events spread over them.
    let sessions = plan.sessions.max(plan.writers);
    let sids = create_sessions(&main, sessions).await?;
    eprintln!(
        "tenant-move {pair}: filling {} events over {sessions} sessions …",
        plan.events
    );
    let started = Instant::now();
    let per = plan.events / sessions as u64;
    let extra = plan.events % sessions as u64;
    let mut filled = 0u64;
    for (i, sid) in sids.iter().enumerate() {
        let want = per + u64::from((i as u64) < extra);
        // `fill_events` counts the session's own creation events in its target.
        let have = u64::try_from(main.session_last_seq(TENANT, sid).await?).unwrap_or(0);
        filled += server::fill_events(&main, TENANT, sid, have + want).await? - have;
    }
    ensure!(
        filled == plan.events,
        "filled {filled} events, expected {}",
        plan.events
    );
    eprintln!("  filled in {:.1} s", started.elapsed().as_secs_f64());
    let before: i64 = tenant_events(&main).await?;

    let router = TenantRouter::open(main.clone()).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = sids
        .iter()
        .take(plan.writers)
        .map(|sid| {
            let (router, sid, stop) = (router.clone(), sid.clone(), stop.clone());
            let rate = plan.rate;
            tokio::spawn(async move { write_until(&router, &sid, rate, &stop).await })
        })
        .collect();

    // Baseline: the writers append with no move running.
    let baseline_from = Instant::now();
    tokio::time::sleep(plan.baseline).await;
    let baseline_to = Instant::now();

    eprintln!(
        "tenant-move {pair}: moving the tenant ({} writers) …",
        plan.writers
    );
    let move_from = Instant::now();
    let moved = async {
        let journal = main.begin_move(TENANT, "main", "two").await?;
        let opts = MoveOptions {
            grace: plan.grace,
            stop_after: None,
        };
        tenant_move::run(&main, &main, &target, &journal, &opts, &mut |_| {}).await
    }
    .await;
    let move_to = Instant::now();
    stop.store(true, Ordering::Release);
    let mut logs = Vec::with_capacity(writers.len());
    for w in writers {
        logs.push(w.await.context("a writer task panicked")?);
    }
    let report: MoveReport = moved.context("moving the tenant")?;

    // Nothing lost: the router names the new shard, which holds the fill and every append.
    ensure!(
        main.shard_of(TENANT).await? == "two",
        "the router does not name the new shard after the move"
    );
    let acked: i64 = logs.iter().map(|l| l.ok as i64).sum();
    let on_target = tenant_events(&target).await?;
    ensure!(
        on_target == before + acked,
        "the new shard holds {on_target} events of the tenant, expected {} ({before} before \
         the writers + {acked} acknowledged appends)",
        before + acked
    );
    let left = tenant_events(&main).await?;
    ensure!(
        left == 0,
        "{left} events of the tenant stayed on the old shard"
    );

    let window = |label: String, from: Instant, to: Instant| -> Summary {
        let mut lat = Vec::new();
        let (mut errors, mut first_error) = (0, None);
        for l in &logs {
            for &(at, us) in &l.appends {
                if at >= from && at < to {
                    lat.push(us);
                }
            }
            for (at, e) in &l.errors {
                if *at >= from && *at < to {
                    errors += 1;
                    first_error.get_or_insert_with(|| e.clone());
                }
            }
        }
        let mut s = Summary::new(&label, plan.writers, lat);
        s.elapsed = to - from;
        s.errors = errors;
        s.first_error = first_error;
        s
    };
    let base = window(
        format!("tenant-move {pair}: appends, no move"),
        baseline_from,
        baseline_to,
    );
    let during = window(
        format!("tenant-move {pair}: appends during the move"),
        move_from,
        move_to,
    );
    let pace = if plan.rate > 0.0 {
        format!("{} appends/s each", plan.rate)
    } else {
        "back to back".to_string()
    };
    let note = format!(
        "tenant-move {pair}: {} events in {sessions} sessions ({} rows copied, {} changes \
         replayed, {} rows purged) moved in {:.2} s (grace {} ms included); fenced for {}; \
         {} writers ({pace}): append p50 {}, p99 {}, longest write pause {} (no move: p50 {}, p99 {}, \
         max {})",
        plan.events,
        report.rows_copied,
        report.changes_replayed,
        report.rows_deleted,
        report.took.as_secs_f64(),
        plan.grace.as_millis(),
        stats::ms(u32::try_from(report.fenced_for.as_micros()).unwrap_or(u32::MAX)),
        plan.writers,
        stats::ms(during.p50_us),
        stats::ms(during.p99_us),
        stats::ms(during.max_us),
        stats::ms(base.p50_us),
        stats::ms(base.p99_us),
        stats::ms(base.max_us),
    );
    eprintln!("  {note}");
    router_close(router, main, target).await;
    Ok((vec![base, during], note))
}

async fn router_close(router: TenantRouter, main: Store, target: Store) {
    for s in router.shards() {
        s.store.close().await;
    }
    main.close().await;
    target.close().await;
}

async fn tenant_events(store: &Store) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE tenant_id = $1")
            .bind(TENANT)
            .fetch_one(store.reader())
            .await?,
    )
}

/// `n` sessions of one agent in one environment.
async fn create_sessions(store: &Store, n: usize) -> Result<Vec<String>> {
    let p: CreateAgentParams =
        serde_json::from_value(json!({"name": "mover", "model": "claude-opus-4-8"}))?;
    let agent: serde_json::Value = serde_json::from_str(
        &store
            .create_agent(TENANT, &AgentConfig::create(p).map_err(anyhow::Error::msg)?)
            .await?,
    )?;
    let env = oma_core::ids::new_id(oma_core::ids::ENVIRONMENT);
    sqlx::query(
        "INSERT INTO environments (id, tenant_id, created_at, updated_at, archived_at, body) \
         VALUES ($1, $2, 0, 0, NULL, '{}')",
    )
    .bind(&env)
    .bind(TENANT)
    .execute(store.writer())
    .await?;
    let sealer = Sealer::from_base64(&generate_root_secret()).map_err(anyhow::Error::msg)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let p: CreateSessionParams =
            serde_json::from_value(json!({"agent": agent["id"], "environment_id": env}))?;
        let req = CreateSession::parse(p).map_err(anyhow::Error::msg)?;
        let (sid, _, _) = store.create_session(TENANT, req, &sealer).await?;
        out.push(sid);
    }
    Ok(out)
}

/// One writer's record: `(started, latency µs)` of each acknowledged append and the errors.
struct WriterLog {
    ok: u64,
    appends: Vec<(Instant, u32)>,
    errors: Vec<(Instant, String)>,
}

/// Appends one event at a time to `sid` through the router until `stop` (and at least once),
/// `rate` a second (0: back to back).
async fn write_until(router: &TenantRouter, sid: &str, rate: f64, stop: &AtomicBool) -> WriterLog {
    let mut tick = (rate > 0.0).then(|| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        // A paused writer does not catch up in a burst afterwards.
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut log = WriterLog {
        ok: 0,
        appends: Vec::new(),
        errors: Vec::new(),
    };
    let mut n: u64 = 1_000_000_000;
    while !stop.load(Ordering::Acquire) || log.ok == 0 {
        if let Some(t) = tick.as_mut() {
            t.tick().await;
        }
        let started = Instant::now();
        match append_routed(router, sid, n).await {
            Ok(()) => {
                log.ok += 1;
                let us = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
                log.appends.push((started, us));
            }
            Err(e) => {
                log.errors.push((started, format!("{e:#}")));
                if log.errors.len() > 100 {
                    break;
                }
            }
        }
        n += 1;
    }
    log
}

/// One append as a server makes it: a fenced write waits for the switch and is tried again
/// on the shard the map then names.
async fn append_routed(router: &TenantRouter, sid: &str, n: u64) -> Result<()> {
    let events = validate_send(&[server::user_message(n)], SendContext::default())?;
    loop {
        match router
            .store_for(TENANT)
            .append_events(TENANT, sid, events.clone())
            .await
        {
            Ok(_) => return Ok(()),
            Err(StoreError::TenantFenced) => {
                if !router.wait_until_writable(TENANT, FENCE_WAIT).await {
                    bail!("the tenant stayed fenced for {FENCE_WAIT:?}");
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}
