//! Retention on SQLite and (when `OMA_TEST_DATABASE_URL` is set) PostgreSQL: old events of
//! ended sessions go with their spilled bodies; what a session's model context still needs
//! stays. Pruning is deployment-wide, so each PostgreSQL run gets a database of its own.
//! "Old" is reached by pruning as of a later time, never by waiting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime};

use common::{backends, session};
use oma_blob::BlobStore;
use oma_store::events::NewEvent;
use oma_store::retention::{BlobTtl, Policy};
use oma_store::runtime::{Compaction, Step};
use oma_store::{Backend, Store};
use serde_json::{Map, json};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

struct Db {
    store: Store,
    blobs: BlobStore,
    _dir: tempfile::TempDir,
    /// Dropped after the store (fields drop in order).
    _pg: Option<oma_testkit::infra::FreshPostgres>,
}

async fn open(backend: Backend) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let (url, pg) = match backend {
        Backend::Sqlite => (
            format!("sqlite://{}", dir.path().join("oma.db").display()),
            None,
        ),
        Backend::Postgres => {
            let pg = oma_testkit::infra::FreshPostgres::create("prune")
                .await
                .expect("OMA_TEST_DATABASE_URL");
            (pg.url.clone(), Some(pg))
        }
    };
    let store = Store::connect(&url).await.unwrap();
    store.migrate_up().await.unwrap();
    let blobs = BlobStore::open_local(dir.path().join("blobs")).unwrap();
    // Small events spill too, so the test sees spilled bodies go with their rows.
    let store = store.with_blobs(blobs.clone()).with_spill_threshold(2_000);
    Db {
        store,
        blobs,
        _dir: dir,
        _pg: pg,
    }
}

fn event(kind: &str, text: &str) -> NewEvent {
    let mut fields = Map::new();
    fields.insert("content".into(), json!([{"type": "text", "text": text}]));
    NewEvent::new(kind, fields)
}

/// Appends `user.message`s (one of them large enough to spill) and a `system.message`.
async fn fill(store: &Store, tenant: &str, sid: &str, n: usize) {
    let mut events = vec![event("system.message", "be brief")];
    for i in 0..n {
        let text = if i == 1 {
            "big ".repeat(1_000)
        } else {
            format!("message {i}")
        };
        events.push(event("user.message", &text));
    }
    store.append_events(tenant, sid, events).await.unwrap();
}

async fn seqs(store: &Store, sid: &str) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT seq, type FROM events WHERE session_id = $1 ORDER BY seq")
        .bind(sid)
        .fetch_all(store.reader())
        .await
        .unwrap()
}

async fn spilled(store: &Store, sid: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT blob_key FROM events WHERE session_id = $1 AND blob_key IS NOT NULL ORDER BY seq",
    )
    .bind(sid)
    .fetch_all(store.reader())
    .await
    .unwrap()
}

#[tokio::test]
async fn prune_deletes_old_events_of_ended_sessions_and_keeps_what_contexts_need() {
    for backend in backends() {
        let db = open(backend).await;
        let s = &db.store;

        // Ended: archived, so it takes no new events; everything old may go.
        let (t_end, ended) = session(s, "prune").await;
        fill(s, &t_end, &ended, 12).await;
        let ended_blobs = spilled(s, &ended).await;
        assert_eq!(ended_blobs.len(), 1);
        s.archive_session(&t_end, &ended).await.unwrap();
        s.save_stream_checkpoint(&t_end, &ended, "span_x", &json!({"text": ["half"]}))
            .await
            .unwrap();

        // Idle with a compaction up to seq 6: seq 1..6 are summarised, except the system
        // message (seq 1), which keeps applying.
        let (t_idle, compacted) = session(s, "prune").await;
        fill(s, &t_idle, &compacted, 8).await;
        let summary_event = event("agent.thread_context_compacted", "");
        let summary_id = summary_event.id.clone();
        s.commit_step(
            &t_idle,
            &compacted,
            Step {
                events: vec![summary_event],
                compaction: Some(Compaction {
                    event_id: summary_id,
                    upto_seq: 6,
                    summary: "earlier messages".into(),
                }),
                ..Step::default()
            },
        )
        .await
        .unwrap();

        // Idle without a compaction: its whole log is its context.
        let (t_plain, plain) = session(s, "prune").await;
        fill(s, &t_plain, &plain, 5).await;
        // Running, and idle with queued input: untouchable, compaction or not.
        let (t_run, running) = session(s, "prune").await;
        fill(s, &t_run, &running, 5).await;
        s.commit_step(
            &t_run,
            &running,
            Step {
                status: Some("running"),
                compaction: Some(Compaction {
                    event_id: "sevt_none".into(),
                    upto_seq: 4,
                    summary: "x".into(),
                }),
                ..Step::default()
            },
        )
        .await
        .unwrap();
        s.save_stream_checkpoint(&t_run, &running, "span_live", &json!({"text": ["so far"]}))
            .await
            .unwrap();
        let (t_q, queued) = session(s, "prune").await;
        fill(s, &t_q, &queued, 5).await;
        sqlx::query(
            "INSERT INTO context_compactions (session_id, event_id, tenant_id, upto_seq, summary, \
             created_at) VALUES ($1, 'sevt_q', $2, 4, 'x', 0)",
        )
        .bind(&queued)
        .bind(&t_q)
        .execute(s.writer())
        .await
        .unwrap();
        s.enqueue_inputs(&t_q, &queued, vec![event("user.message", "waiting")])
            .await
            .unwrap();

        // Operational events, an orphaned spill, a deleted session's snapshot, a live one's
        // snapshot, and a blob under a lifecycle rule.
        sqlx::query(
            "INSERT INTO ops_events (id, at, kind, outcome, fields) VALUES ('op_old', 1, 'tool', 'ok', '{}')",
        )
        .execute(s.writer())
        .await
        .unwrap();
        let live_snapshot = format!("snapshots/{plain}/1.tar");
        for key in [
            "events/gone/sesn_gone/sevt_gone",
            "snapshots/sesn_gone/1.tar",
            &live_snapshot,
            "exports/daily/1.csv",
        ] {
            db.blobs.put_synced(key, b"x").await.unwrap();
        }

        let before: Vec<_> = [&compacted, &plain, &running, &queued]
            .iter()
            .map(|sid| sid.to_string())
            .collect();
        let mut kept = Vec::new();
        for sid in &before {
            kept.push(seqs(s, sid).await);
        }

        let policy = Policy {
            events: Some(DAY),
            model_streams: Some(DAY),
            ops_events: Some(DAY),
            blob_ttls: vec![BlobTtl::new("exports", DAY).unwrap()],
            batch_rows: 4, // several batches per session
            ..Policy::default()
        };
        // As of now only the operational event (from 1970) is old: the rest is recent and the
        // orphans are younger than the grace period.
        let now = s.prune(&policy).await.unwrap();
        let only_ops = oma_store::retention::Pruned {
            ops_events: 1,
            ..Default::default()
        };
        assert_eq!(now, only_ops);
        assert_eq!(seqs(s, &ended).await.len(), 14);

        // Two days on.
        let later = SystemTime::now() + 2 * DAY;
        let pruned = s.prune_at(&policy, later).await.unwrap();
        assert!(
            seqs(s, &ended).await.is_empty(),
            "the ended session's log is gone"
        );
        assert!(!db.blobs.root().unwrap().join(&ended_blobs[0]).exists());
        // The ended session's spilled body and the compacted one's (seq 3).
        assert_eq!(pruned.spilled_blobs, 2, "{pruned:?}");

        let compacted_left = seqs(s, &compacted).await;
        let left: Vec<i64> = compacted_left.iter().map(|(q, _)| *q).collect();
        assert_eq!(left, vec![1, 7, 8, 9, 10], "{compacted_left:?}");
        assert_eq!(compacted_left[0].1, "system.message");
        assert_eq!(pruned.events, 14 + 5, "{pruned:?}");
        assert_eq!(pruned.sessions, 2);
        for (sid, was) in before.iter().zip(&kept).skip(1) {
            assert_eq!(&seqs(s, sid).await, was, "{sid} keeps every event");
        }

        assert_eq!(pruned.model_streams, 1);
        assert!(
            s.stream_checkpoint(&t_run, &running, "span_live")
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(pruned.orphaned_event_blobs, 1);
        assert_eq!(pruned.orphaned_snapshots, 1);
        assert!(db.blobs.root().unwrap().join(&live_snapshot).exists());
        assert_eq!(pruned.expired_blobs, 1);

        // Reads still work on what is left, and a second prune finds nothing more.
        let events = s.all_events(&t_idle, &compacted).await.unwrap();
        assert_eq!(events.len(), 5);
        let again = s.prune_at(&policy, later).await.unwrap();
        assert_eq!(again, Default::default(), "{again:?}");
        s.close().await;
    }
}
