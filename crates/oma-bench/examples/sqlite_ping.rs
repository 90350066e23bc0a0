//! Two costs of sqlx's SQLite driver that dominate oma's read path, measured in isolation.
//!
//! sqlx runs each SQLite connection on a worker thread of its own; every command the async
//! side sends it, and every row it sends back, is a cross-thread hand-off (a futex wake-up).
//!
//! 1. `test_before_acquire` (on by default, left on by `oma-store/src/db.rs`): every pool
//!    acquire first sends a `Ping` to the worker and waits for the answer — one more round
//!    trip per query. Measured on point reads of a ~450-byte JSON body by primary key, as
//!    `GET /v1/agents/{id}` does.
//! 2. Rows are streamed one by one: a page of 100 events is 101 hand-offs. Measured by reading
//!    a page of 100 ~220-byte bodies as 101 rows (as `list_events` does) versus as one row
//!    built by SQLite with `string_agg(body, ',' ORDER BY seq)`.
//!
//! 16 concurrent tasks on a 2-thread runtime, a pool of 8, WAL, as the server runs.
//!
//! `cargo run --release -p oma-bench --example sqlite_ping [-- SECONDS]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

const TASKS: usize = 16;
const AGENTS: usize = 100;
const EVENTS: i64 = 10_000;
const PAGE: i64 = 100;

#[derive(Clone, Copy, Debug)]
enum Case {
    PointRead,
    PageRows,
    PageAggregated,
}

fn main() -> anyhow::Result<()> {
    let secs: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        install_default_drivers();
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        seed(&pool(&url, true).await?).await?;
        for case in [Case::PointRead, Case::PageRows, Case::PageAggregated] {
            for test in [true, false, true, false] {
                let pool = pool(&url, test).await?;
                let rate = run(&pool, case, secs).await?;
                println!("{case:?}, test_before_acquire({test:5}): {rate:>8.0} queries/s");
                pool.close().await;
            }
        }
        Ok(())
    })
}

async fn pool(url: &str, test_before_acquire: bool) -> anyhow::Result<AnyPool> {
    Ok(AnyPoolOptions::new()
        .max_connections(8)
        .min_connections(1)
        .test_before_acquire(test_before_acquire)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                Ok(())
            })
        })
        .connect(url)
        .await?)
}

async fn seed(pool: &AnyPool) -> anyhow::Result<()> {
    pool.execute(
        "CREATE TABLE agents (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, body TEXT NOT NULL)",
    )
    .await?;
    pool.execute(
        "CREATE TABLE events (session_id TEXT NOT NULL, seq BIGINT NOT NULL, tenant_id TEXT NOT NULL, \
         id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (session_id, seq))",
    )
    .await?;
    let agent = "a".repeat(450);
    for i in 0..AGENTS {
        sqlx::query("INSERT INTO agents (id, tenant_id, body) VALUES ($1, 't', $2)")
            .bind(format!("agent_{i}"))
            .bind(&agent)
            .execute(pool)
            .await?;
    }
    let event = format!(
        "{{\"type\":\"user.message\",\"text\":\"{}\"}}",
        "e".repeat(180)
    );
    let mut tx = pool.begin().await?;
    for seq in 1..=EVENTS {
        sqlx::query("INSERT INTO events (session_id, seq, tenant_id, id, body) VALUES ('s', $1, 't', $2, $3)")
            .bind(seq)
            .bind(format!("sevt_{seq}"))
            .bind(&event)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn run(pool: &AnyPool, case: Case, secs: f64) -> anyhow::Result<f64> {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut i = t;
            while Instant::now() < until {
                match case {
                    Case::PointRead => {
                        let b: Option<String> = sqlx::query_scalar(
                            "SELECT body FROM agents WHERE tenant_id = $1 AND id = $2",
                        )
                        .bind("t")
                        .bind(format!("agent_{}", i % AGENTS))
                        .fetch_optional(&pool)
                        .await
                        .unwrap();
                        assert!(b.is_some());
                    }
                    Case::PageRows => {
                        let rows: Vec<(i64, String, String)> = sqlx::query_as(
                            "SELECT seq, id, body FROM events WHERE session_id = $1 AND tenant_id = $2 \
                             ORDER BY seq ASC LIMIT $3",
                        )
                        .bind("s")
                        .bind("t")
                        .bind(PAGE + 1)
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                        assert_eq!(rows.len() as i64, PAGE + 1);
                    }
                    Case::PageAggregated => {
                        let (count, _last, body): (i64, i64, String) = sqlx::query_as(
                            "SELECT count(*), max(seq), string_agg(body, ',' ORDER BY seq) FROM \
                             (SELECT seq, body FROM events WHERE session_id = $1 AND tenant_id = $2 \
                             ORDER BY seq ASC LIMIT $3) AS page",
                        )
                        .bind("s")
                        .bind("t")
                        .bind(PAGE + 1)
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                        assert_eq!(count, PAGE + 1);
                        assert!(!body.is_empty());
                    }
                }
                n += 1;
                i += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await?;
    }
    Ok(total as f64 / secs)
}
