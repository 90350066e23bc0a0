//! Time to prune one million events, and what a prune costs the writes that run beside it.
//!
//! Builds a SQLite store (WAL, as `oma serve` runs it) holding `--sessions` ended sessions of
//! `--events` events each (1000 × 1000 by default: ~220-byte `user.message` bodies appended
//! through the store in batches of 1000, as a host's steps append them), then prunes them all
//! with an events window of one day, as of two days later. While it prunes, one task appends
//! an event to a live session every 5 ms and records how long each append takes: with
//! 2 000-row DELETE batches the writer is never held long.
//!
//! `cargo run --release -p oma-store --example prune_bench [-- --sessions N --events N --batch N]`
//! (`--database-url postgres://…` measures PostgreSQL instead; it must be an empty database.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use oma_core::agents::{AgentConfig, CreateAgentParams};
use oma_core::environments::{CreateEnvironmentParams, EnvironmentSpec};
use oma_core::seal::{Sealer, generate_root_secret};
use oma_core::sessions::{CreateSession, CreateSessionParams};
use oma_store::Store;
use oma_store::events::NewEvent;
use oma_store::retention::Policy;
use serde_json::{Map, json};

struct Args {
    /// Ended sessions to fill.
    sessions: usize,
    /// Events per session.
    events: usize,
    /// Rows per DELETE statement.
    batch: i64,
    /// Measure this database instead of a temporary SQLite file.
    database_url: Option<String>,
}

impl Args {
    fn parse() -> anyhow::Result<Self> {
        let mut a = Args {
            sessions: 1000,
            events: 1000,
            batch: oma_store::retention::DEFAULT_BATCH_ROWS,
            database_url: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let value = it
                .next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
            match flag.as_str() {
                "--sessions" => a.sessions = value.parse()?,
                "--events" => a.events = value.parse()?,
                "--batch" => a.batch = value.parse()?,
                "--database-url" => a.database_url = Some(value),
                _ => anyhow::bail!(
                    "unknown flag {flag} (--sessions, --events, --batch, --database-url)"
                ),
            }
        }
        Ok(a)
    }
}

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    let dir = tempfile::tempdir()?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("oma.db").display()));
    let store = Store::connect(&url).await?;
    store.migrate_up().await?;
    let blobs = oma_blob::BlobStore::open_local(dir.path().join("blobs"))?;
    let store = store.with_blobs(blobs);

    let tenant = "bench";
    store.create_tenant(tenant).await?;
    let sealer = Sealer::from_base64(&generate_root_secret())?;
    let agent_params: CreateAgentParams =
        serde_json::from_value(json!({"name": "bench", "model": "claude-opus-4-8"}))?;
    let agent: serde_json::Value = serde_json::from_str(
        &store
            .create_agent(tenant, &AgentConfig::create(agent_params)?)
            .await?,
    )?;
    let env_params: CreateEnvironmentParams =
        serde_json::from_value(json!({"name": "bench", "config": {"type": "cloud"}}))?;
    let env: serde_json::Value = serde_json::from_str(
        &store
            .create_environment(tenant, &EnvironmentSpec::create(env_params)?)
            .await?,
    )?;
    let new_session = || async {
        let p: CreateSessionParams =
            serde_json::from_value(json!({"agent": agent["id"], "environment_id": env["id"]}))?;
        let (sid, _, _) = store
            .create_session(tenant, CreateSession::parse(p)?, &sealer)
            .await?;
        anyhow::Ok(sid)
    };

    let total = args.sessions * args.events;
    eprintln!(
        "filling {} ended sessions × {} events = {total} events …",
        args.sessions, args.events
    );
    let fill_started = Instant::now();
    let text = "x".repeat(120);
    for _ in 0..args.sessions {
        let sid = new_session().await?;
        let mut left = args.events;
        while left > 0 {
            let n = left.min(1000);
            let batch = (0..n)
                .map(|_| {
                    let mut f = Map::new();
                    f.insert("content".into(), json!([{"type": "text", "text": text}]));
                    NewEvent::new("user.message", f)
                })
                .collect();
            store.append_events(tenant, &sid, batch).await?;
            left -= n;
        }
        store.archive_session(tenant, &sid).await?;
    }
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(store.reader())
        .await?;
    eprintln!(
        "filled {rows} rows in {:.1}s",
        fill_started.elapsed().as_secs_f64()
    );

    // A live session written to while the prune runs.
    let live = new_session().await?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop, live) = (store.clone(), stop.clone(), live.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let e = NewEvent::new("user.message", Map::new());
                let t = Instant::now();
                store.append_events(tenant, &live, vec![e]).await.unwrap();
                latencies.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            latencies
        })
    };

    let policy = Policy {
        events: Some(DAY),
        batch_rows: args.batch,
        ..Policy::default()
    };
    let started = Instant::now();
    let pruned = store.prune_at(&policy, SystemTime::now() + 2 * DAY).await?;
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut lat = writer.await?;
    lat.sort();
    let pick = |q: f64| {
        lat.get(((lat.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "pruned {} events of {} sessions in {:.2}s ({:.0} events/s, {}-row batches, {})",
        pruned.events,
        pruned.sessions,
        took.as_secs_f64(),
        pruned.events as f64 / took.as_secs_f64(),
        args.batch,
        store.backend().name()
    );
    println!(
        "appends to a live session meanwhile: {} (p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms)",
        lat.len(),
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    store.close().await;
    Ok(())
}
