//! The recorder over a real store (SQLite always, PostgreSQL when `OMA_TEST_DATABASE_URL` is
//! set): events arrive in batches, a full channel drops and counts instead of waiting, and
//! shutdown writes what is buffered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use oma_ops::event::{self, Scoped};
use oma_ops::{OpsConfig, OpsRecorder};
use oma_store::Store;
use oma_store::ops_events::OpsFilter;

async fn stores() -> Vec<(Option<tempfile::TempDir>, Store)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("oma.db").display());
    let mut out = vec![(Some(dir), Store::connect(&url).await.unwrap())];
    match std::env::var("OMA_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => out.push((None, Store::connect(&u).await.unwrap())),
        _ => eprintln!("note: OMA_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant"),
    }
    for (_, s) in &out {
        s.migrate_up().await.unwrap();
    }
    out
}

async fn count(store: &Store, tenant: &str) -> i64 {
    let f = OpsFilter {
        tenant: Some(tenant.into()),
        ..OpsFilter::default()
    };
    store.group_ops_events(&f, &[], 1).await.unwrap()[0].count
}

// One thread: the writer cannot run while the test records, which makes the drop count exact.
#[tokio::test(flavor = "current_thread")]
async fn batches_drops_and_flushes_on_shutdown() {
    for (_dir, store) in stores().await {
        let tenant = oma_core::ids::new_id("tops");
        let rec = OpsRecorder::start(
            store.clone(),
            OpsConfig {
                batch_max: 50,
                flush_every: Duration::from_secs(3600),
                capacity: 100,
            },
        );
        for i in 0..130 {
            rec.record(
                event::tool_call("bash", i % 2 == 0, Duration::from_millis(i))
                    .session(&tenant, "s"),
            );
        }
        assert_eq!(rec.dropped(), 30, "a full channel drops instead of waiting");
        rec.flush().await;
        assert_eq!(count(&store, &tenant).await, 100);
        assert_eq!(rec.written(), 100);

        // Below a full batch and long before the timer: only shutdown writes these.
        for _ in 0..7 {
            rec.record(event::silent_catch("test", "ignored").tenant(&tenant));
        }
        rec.shutdown().await;
        assert_eq!(count(&store, &tenant).await, 107);
        // After shutdown events are dropped, never an error for the caller.
        rec.record(event::silent_catch("test", "late").tenant(&tenant));
        assert_eq!(rec.dropped(), 31);
    }
}

#[tokio::test]
async fn the_timer_writes_a_partial_batch() {
    for (_dir, store) in stores().await {
        let tenant = oma_core::ids::new_id("tops");
        let rec = OpsRecorder::start(
            store.clone(),
            OpsConfig {
                flush_every: Duration::from_millis(20),
                ..OpsConfig::default()
            },
        );
        rec.record(event::session_transition("idle", "running").session(&tenant, "s"));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while count(&store, &tenant).await == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the timer never wrote the batch"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // A disabled recorder takes events and does nothing.
        let off = OpsRecorder::disabled();
        off.record(event::silent_catch("test", "x"));
        off.flush().await;
        assert_eq!(off.dropped(), 0);
    }
}
