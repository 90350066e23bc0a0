//! Session leases on SQLite and (when `OMA_TEST_DATABASE_URL` is set) PostgreSQL: one owner
//! at a time, epochs that only grow, steps fenced by (node, epoch, expiry), and the events
//! note a PostgreSQL step sends at commit. Expiry is reached with a zero TTL, never by waiting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use common::{backends, session, unique};

use oma_store::events::NewEvent;
use oma_store::leases::{Claim, Fence};
use oma_store::notify::Note;
use oma_store::runtime::Step;
use oma_store::{Backend, Store, StoreError};
use serde_json::{Map, json};

mod common;

const TTL_MS: i64 = 60_000;

struct Db {
    store: Store,
    _dir: tempfile::TempDir,
}

async fn open(backend: Backend) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("oma.db").display()),
        // Rows are keyed by fresh ids, so the shared test database is fine.
        Backend::Postgres => std::env::var("OMA_TEST_DATABASE_URL").unwrap(),
    };
    let store = Store::connect(&url).await.unwrap();
    store.migrate_up().await.unwrap();
    Db { store, _dir: dir }
}

fn fenced(step: Option<Fence>) -> Step {
    Step {
        fence: step,
        ..Step::default()
    }
}

fn won(c: Claim) -> Fence {
    match c {
        Claim::Won(f) => f,
        Claim::Held { node_id } => panic!("the claim lost to {node_id}"),
    }
}

#[tokio::test]
async fn one_owner_at_a_time_and_a_stale_owner_cannot_commit() {
    for backend in backends() {
        let db = open(backend).await;
        let s = &db.store;
        let (t, sid) = ("tenant-l", unique("sesn_lease"));
        let (a, b) = (unique("node-a"), unique("node-b"));

        let fa = won(s.claim_lease(t, &sid, &a, TTL_MS).await.unwrap());
        assert_eq!(fa.epoch, 1);
        // Another node cannot take a live lease, and learns who holds it.
        assert_eq!(
            s.claim_lease(t, &sid, &b, TTL_MS).await.unwrap(),
            Claim::Held { node_id: a.clone() }
        );
        assert_eq!(s.lease_holder(&sid).await.unwrap(), Some(a.clone()));
        s.commit_step(t, &sid, fenced(Some(fa.clone())))
            .await
            .unwrap();
        assert_eq!(
            s.renew_leases(&a, std::slice::from_ref(&sid), TTL_MS)
                .await
                .unwrap(),
            1
        );
        // Only the sessions the node names (those it runs a host for) are renewed.
        assert_eq!(
            s.renew_leases(&a, &["sesn_other".into()], TTL_MS)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            s.renew_leases(&b, std::slice::from_ref(&sid), TTL_MS)
                .await
                .unwrap(),
            0
        );

        // A released lease goes to the next claimer with a higher epoch; the old fence fails.
        s.release_lease(&sid, &fa).await.unwrap();
        assert_eq!(s.lease_holder(&sid).await.unwrap(), None);
        let fb = won(s.claim_lease(t, &sid, &b, TTL_MS).await.unwrap());
        assert_eq!(fb.epoch, 2);
        let stale = s.commit_step(t, &sid, fenced(Some(fa.clone()))).await;
        assert!(matches!(stale, Err(StoreError::Fenced)), "{stale:?}");
        s.commit_step(t, &sid, fenced(Some(fb.clone())))
            .await
            .unwrap();
        // Releasing with a stale fence leaves the new owner's lease alone.
        s.release_lease(&sid, &fa).await.unwrap();
        assert_eq!(s.lease_holder(&sid).await.unwrap(), Some(b.clone()));

        // A restarted node takes its own live lease back at once (a new epoch).
        let fb2 = won(s.claim_lease(t, &sid, &b, TTL_MS).await.unwrap());
        assert_eq!(fb2.epoch, 3);
        let stale = s.commit_step(t, &sid, fenced(Some(fb))).await;
        assert!(matches!(stale, Err(StoreError::Fenced)), "{stale:?}");

        assert_eq!(s.release_node_leases(&b).await.unwrap(), 1);
        assert_eq!(s.release_node_leases(&b).await.unwrap(), 0);
        db.store.close().await;
    }
}

#[tokio::test]
async fn an_expired_lease_fences_its_owner_and_is_not_revived() {
    for backend in backends() {
        let db = open(backend).await;
        let s = &db.store;
        let (t, sid) = ("tenant-l", unique("sesn_expiry"));
        let (a, b) = (unique("node-a"), unique("node-b"));
        // A zero TTL expires at once: the owner that paused past its lease.
        let fa = won(s.claim_lease(t, &sid, &a, 0).await.unwrap());
        let late = s.commit_step(t, &sid, fenced(Some(fa.clone()))).await;
        assert!(matches!(late, Err(StoreError::Fenced)), "{late:?}");
        // Renewal does not bring an expired lease back to life.
        assert_eq!(
            s.renew_leases(&a, std::slice::from_ref(&sid), TTL_MS)
                .await
                .unwrap(),
            0
        );
        let late = s.commit_step(t, &sid, fenced(Some(fa))).await;
        assert!(matches!(late, Err(StoreError::Fenced)), "{late:?}");
        // Anyone may claim it.
        let fb = won(s.claim_lease(t, &sid, &b, TTL_MS).await.unwrap());
        assert_eq!(fb.epoch, 2);
        s.commit_step(t, &sid, fenced(Some(fb))).await.unwrap();
        db.store.close().await;
    }
}

#[tokio::test]
async fn nodes_register_and_report_their_leases() {
    for backend in backends() {
        let db = open(backend).await;
        let s = &db.store;
        let a = unique("node-a");
        s.register_node(&a, "http://127.0.0.1:1", "test")
            .await
            .unwrap();
        s.claim_lease("tenant-l", &unique("sesn_n1"), &a, TTL_MS)
            .await
            .unwrap();
        s.claim_lease("tenant-l", &unique("sesn_n2"), &a, TTL_MS)
            .await
            .unwrap();
        s.node_heartbeat(&a, "draining").await.unwrap();
        let nodes = s.nodes().await.unwrap();
        let me = nodes.iter().find(|n| n.node_id == a).unwrap();
        assert_eq!((me.leases, me.state.as_str()), (2, "draining"));
        assert!(me.silent_for < 60_000_000, "{me:?}");
        s.release_node_leases(&a).await.unwrap();
        db.store.close().await;
    }
}

#[tokio::test]
async fn a_postgres_step_tells_listeners_which_events_it_committed() {
    if !backends().contains(&Backend::Postgres) {
        return;
    }
    let db = open(Backend::Postgres).await;
    let s = &db.store;
    let mut listener = s.listener().await.unwrap().expect("PostgreSQL listens");
    let (t, sid) = session(s, "lease").await;
    let node = unique("node-a");
    let fence = won(s.claim_lease(&t, &sid, &node, TTL_MS).await.unwrap());
    let mut fields = Map::new();
    fields.insert("content".into(), json!([{"type": "text", "text": "hi"}]));
    let stored = s
        .commit_step(
            &t,
            &sid,
            Step {
                events: vec![
                    NewEvent::new("user.message", fields.clone()),
                    NewEvent::new("user.message", fields),
                ],
                fence: Some(fence.clone()),
                ..Step::default()
            },
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let note = tokio::time::timeout_at(deadline, listener.recv())
            .await
            .expect("the events note arrives")
            .unwrap();
        if let Note::Events(n) = note
            && n.session == sid
        {
            assert_eq!((n.from, n.to), (stored[0].seq, stored[1].seq));
            assert_eq!(
                (n.tenant.as_str(), n.node.as_str()),
                (t.as_str(), node.as_str())
            );
            break;
        }
    }
    // A running session is an orphan once its lease is gone, not while it is held.
    s.commit_step(
        &t,
        &sid,
        Step {
            status: Some("running"),
            fence: Some(fence.clone()),
            ..Step::default()
        },
    )
    .await
    .unwrap();
    let orphan = |list: Vec<(String, String)>| list.iter().any(|(_, id)| *id == sid);
    assert!(!orphan(s.orphaned_sessions().await.unwrap()));
    s.release_lease(&sid, &fence).await.unwrap();
    assert!(orphan(s.orphaned_sessions().await.unwrap()));
    db.store.close().await;
}

/// A node paused inside a transaction must not hold the rows of the sessions taken from it
/// for as long as TCP keeps its connection: every PostgreSQL connection of the store has the
/// server end a transaction left idle.
#[tokio::test]
async fn a_stalled_transaction_is_ended_by_the_server() {
    if !backends().contains(&Backend::Postgres) {
        return;
    }
    let db = open(Backend::Postgres).await;
    let mut tx = db.store.writer().begin().await.unwrap();
    let timeout: String = sqlx::query_scalar("SHOW idle_in_transaction_session_timeout")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(timeout, "10s");
}
