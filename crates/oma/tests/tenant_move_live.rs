//! Tenants on shards behind a running `oma serve`, as an operator runs them: a tenant moved
//! (`oma tenants move`) while one of its sessions is mid-turn ends the turn on the new shard
//! with a gapless log, and API calls made during the move all succeed; two tenants on two
//! shards never leave a row on the other's shard (operational events included). The target
//! shard is a SQLite file and, when `OMA_TEST_DATABASE_URL` is set, a PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use oma_store::{Backend, Store};
use oma_testkit::fake_anthropic::FakeAnthropic;
use oma_testkit::fake_model::{Gate, Reply};
use oma_testkit::infra::FreshPostgres;
use serde_json::json;

mod common;

const KEY: &str = "sk-shard-live-test";

fn oma(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oma"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("OMA_DATABASE_URL")
        .env_remove("OMA_CONFIG")
        .env_remove("OMA_TEST_MOVE_STOP_AFTER")
        .output()
        .unwrap()
}

fn ok(data: &Path, args: &[&str]) -> String {
    let o = oma(data, args);
    assert!(
        o.status.success(),
        "oma {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The target shard's database: a SQLite file or a fresh PostgreSQL database.
async fn shard_url(
    backend: Backend,
    dir: &Path,
    tag: &str,
    keep: &mut Vec<FreshPostgres>,
) -> Option<String> {
    match backend {
        Backend::Sqlite => Some(format!(
            "sqlite://{}",
            dir.join(format!("{tag}.db")).display()
        )),
        Backend::Postgres => {
            let pg = FreshPostgres::create(tag).await?;
            let url = pg.url.clone();
            keep.push(pg);
            Some(url)
        }
    }
}

fn targets() -> Vec<Backend> {
    let mut v = vec![Backend::Sqlite];
    if oma_testkit::postgres_url().is_some() {
        v.push(Backend::Postgres);
    } else {
        eprintln!("note: OMA_TEST_DATABASE_URL is not set; SQLite shards only");
    }
    v
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Rows per tenant in every table of tenant data of `store`.
async fn owners(store: &Store) -> Vec<(String, String, i64)> {
    let mut out = Vec::new();
    for t in store.tenant_tables().await.unwrap() {
        let sql = format!(
            "SELECT tenant_id, COUNT(*) FROM \"{}\" WHERE tenant_id IS NOT NULL GROUP BY tenant_id",
            t.name
        );
        let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(store.reader())
            .await
            .unwrap();
        out.extend(
            rows.into_iter()
                .map(|(tenant, n)| (t.name.clone(), tenant, n)),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_moved_mid_turn_ends_the_turn_on_the_new_shard() {
    for backend in targets() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut pgs = Vec::new();
        let Some(url) = shard_url(backend, dir.path(), "livemove", &mut pgs).await else {
            continue;
        };
        ok(&data, &["shards", "add", &url, "--name", "two"]);
        // The bootstrap key's tenant (`default`) lives on `main`, the router database.
        let fake = FakeAnthropic::start().await;
        let gate = Gate::new();
        fake.push(Reply::text("An answer the move will interrupt.").gated(3, &gate));
        fake.push(Reply::text("Finished on the new shard."));
        let server = common::serve(&data, KEY, &fake.base_url);
        let sid = common::session(&server.base, KEY, json!([]));
        common::say(&server.base, KEY, &sid, "tell me something");
        gate.reached().await;

        // Clients keep calling the API while the tenant moves: none of their calls fails.
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicUsize::new(0));
        let client = {
            let (base, stop, calls) = (server.base.clone(), stop.clone(), calls.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    common::http(
                        &base,
                        KEY,
                        "POST",
                        "/v1/agents",
                        Some(json!({"name": "during the move", "model": "claude-opus-4-8"})),
                    );
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let moved = ok(
            &data,
            &[
                "tenants",
                "move",
                "default",
                "--to",
                "two",
                "--grace-ms",
                "1500",
            ],
        );
        stop.store(true, Ordering::Release);
        client.join().unwrap();
        gate.open();
        assert!(
            moved.contains("moved") || moved.contains("copied"),
            "{moved}"
        );
        assert!(calls.load(Ordering::Relaxed) > 0);

        let base = server.base.clone();
        until("the turn to finish on the new shard", || {
            common::status(&base, KEY, &sid) == "idle"
                && common::events(&base, KEY, &sid).iter().any(|e| {
                    e["type"] == "agent.message"
                        && e["content"][0]["text"] == "Finished on the new shard."
                })
        })
        .await;
        let log = common::events(&server.base, KEY, &sid);
        common::assert_no_duplicates(&log);

        // The whole log is on the new shard, gapless; nothing of the tenant stayed behind.
        let target = Store::connect(&url).await.unwrap();
        let seqs: Vec<i64> =
            sqlx::query_scalar("SELECT seq FROM events WHERE session_id = $1 ORDER BY seq")
                .bind(&sid)
                .fetch_all(target.reader())
                .await
                .unwrap();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
        assert_eq!(seqs.len(), log.len(), "{:?}", common::kinds(&log));
        let main = Store::connect(&format!("sqlite://{}", data.join("oma.db").display()))
            .await
            .unwrap();
        let left: Vec<_> = owners(&main)
            .await
            .into_iter()
            .filter(|(_, t, _)| t == "default")
            .collect();
        assert!(left.is_empty(), "rows left on the old shard: {left:?}");
        assert_eq!(main.shard_of("default").await.unwrap(), "two");
        drop(server);
        main.close().await;
        target.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_s_rows_live_only_on_its_own_shard() {
    for backend in targets() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut pgs = Vec::new();
        let Some(url) = shard_url(backend, dir.path(), "owners", &mut pgs).await else {
            continue;
        };
        ok(&data, &["shards", "add", &url, "--name", "two"]);
        // `default` (made at the first start) is on main; `acme` lands on the emptier shard.
        ok(&data, &["tenants", "create", "default"]);
        let created = ok(&data, &["tenants", "create", "acme"]);
        assert!(created.contains("two"), "{created}");
        let acme_key = ok(&data, &["keys", "create", "--tenant", "acme"])
            .lines()
            .last()
            .unwrap()
            .to_string();

        let fake = FakeAnthropic::start().await;
        fake.set_default(Some(Reply::text("hello")));
        let server = common::serve(&data, KEY, &fake.base_url);
        let mut sessions = Vec::new();
        for key in [KEY, acme_key.as_str()] {
            let sid = common::session(&server.base, key, json!([]));
            common::say(&server.base, key, &sid, "hi");
            sessions.push((key, sid));
            common::http(
                &server.base,
                key,
                "POST",
                "/v1/vaults",
                Some(json!({"display_name": "v"})),
            );
        }
        for (key, sid) in &sessions {
            let (base, key, sid) = (server.base.clone(), key.to_string(), sid.clone());
            until("the turn to end", || {
                common::events(&base, &key, &sid)
                    .iter()
                    .any(|e| e["type"] == "session.status_idle")
            })
            .await;
        }
        // Another tenant's objects are not found through a key of this one.
        let (_, acme_sid) = &sessions[1];
        let raw = reqwest::Client::new()
            .get(format!("{}/v1/sessions/{acme_sid}", server.base))
            .header("x-api-key", KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(raw.status(), 404);

        let main = Store::connect(&format!("sqlite://{}", data.join("oma.db").display()))
            .await
            .unwrap();
        let two = Store::connect(&url).await.unwrap();
        // Operational events are written in batches: wait for acme's to reach its shard.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ops: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM ops_events WHERE tenant_id = 'acme'")
                    .fetch_one(two.reader())
                    .await
                    .unwrap();
            if ops > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "acme's operational events never reached its shard"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let on_main = owners(&main).await;
        let on_two = owners(&two).await;
        assert!(
            on_main.iter().all(|(_, t, _)| t != "acme"),
            "acme's rows on main: {on_main:?}"
        );
        assert!(
            on_two.iter().all(|(_, t, _)| t == "acme"),
            "another tenant's rows on acme's shard: {on_two:?}"
        );
        for table in ["sessions", "events", "vaults", "agents"] {
            assert!(
                on_two.iter().any(|(t, _, _)| t == table),
                "acme has no {table} on its shard"
            );
            assert!(
                on_main
                    .iter()
                    .any(|(t, who, _)| t == table && who == "default"),
                "default has no {table} on main"
            );
        }
        drop(server);
        main.close().await;
        two.close().await;
    }
}
