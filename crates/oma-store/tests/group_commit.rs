//! Host steps of many sessions committed at once (one writer groups them into transactions)
//! on SQLite and (when `OMA_TEST_DATABASE_URL` is set) PostgreSQL: every step lands whole,
//! in its session's order, and a step refused in a group (a stale fence) leaves no trace
//! while the others of its group commit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use common::{backends, session, unique};

use oma_store::events::NewEvent;
use oma_store::leases::{Claim, Fence};
use oma_store::runtime::Step;
use oma_store::{Backend, Store, StoreError};
use serde_json::{Map, json};

mod common;

const SESSIONS: usize = 12;
const STEPS: usize = 15;

async fn open(backend: Backend, dir: &tempfile::TempDir) -> Store {
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("oma.db").display()),
        Backend::Postgres => std::env::var("OMA_TEST_DATABASE_URL").unwrap(),
    };
    let store = Store::connect(&url).await.unwrap();
    store.migrate_up().await.unwrap();
    store
}

fn step(fence: &Fence, i: usize) -> Step {
    let mut fields = Map::new();
    fields.insert(
        "content".into(),
        json!([{"type": "text", "text": format!("step {i}")}]),
    );
    Step {
        events: vec![
            NewEvent::new("agent.message", fields.clone()),
            NewEvent::new("agent.message", fields),
        ],
        fence: Some(fence.clone()),
        ..Step::default()
    }
}

async fn claim(store: &Store, tenant: &str, sid: &str, node: &str) -> Fence {
    match store.claim_lease(tenant, sid, node, 60_000).await.unwrap() {
        Claim::Won(f) => f,
        Claim::Held { node_id } => panic!("held by {node_id}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_of_many_sessions_commit_whole_and_in_order_and_a_refused_one_alone() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(backend, &dir).await;
        let node = unique("node");
        let mut sessions = Vec::new();
        for i in 0..SESSIONS {
            let (t, sid) = session(&store, &format!("group-{i}")).await;
            let fence = claim(&store, &t, &sid, &node).await;
            sessions.push((t, sid, fence));
        }
        // One session was taken over by another node: its old owner's steps are refused.
        let (stale_t, stale_sid, stale_fence) = sessions.pop().unwrap();
        store.release_lease(&stale_sid, &stale_fence).await.unwrap();
        claim(&store, &stale_t, &stale_sid, &unique("other")).await;
        let before = store.all_events(&stale_t, &stale_sid).await.unwrap().len();

        let mut hosts = Vec::new();
        for (t, sid, fence) in sessions.clone() {
            let s = store.clone();
            hosts.push(tokio::spawn(async move {
                for i in 0..STEPS {
                    let stored = s.commit_step(&t, &sid, step(&fence, i)).await.unwrap();
                    assert_eq!(stored.len(), 2);
                    assert_eq!(stored[1].seq, stored[0].seq + 1);
                }
            }));
        }
        let s = store.clone();
        let (t, sid) = (stale_t.clone(), stale_sid.clone());
        hosts.push(tokio::spawn(async move {
            for i in 0..STEPS {
                let r = s.commit_step(&t, &sid, step(&stale_fence, i)).await;
                assert!(matches!(r, Err(StoreError::Fenced)), "{r:?}");
            }
        }));
        for h in hosts {
            h.await.unwrap();
        }

        for (t, sid, _) in &sessions {
            let log = store.all_events(t, sid).await.unwrap();
            let texts: Vec<String> = log
                .iter()
                .filter(|e| e.kind == "agent.message")
                .map(|e| {
                    let body: serde_json::Value = serde_json::from_str(&e.body).unwrap();
                    body["content"][0]["text"].as_str().unwrap().to_string()
                })
                .collect();
            let expected: Vec<String> = (0..STEPS)
                .flat_map(|i| [format!("step {i}"), format!("step {i}")])
                .collect();
            assert_eq!(texts, expected, "{backend:?} {sid}");
            let seqs: Vec<i64> = log.iter().map(|e| e.seq).collect();
            assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        }
        let after = store.all_events(&stale_t, &stale_sid).await.unwrap().len();
        assert_eq!(after, before, "a refused step wrote");
    }
}

/// Agents many requests create at once are inserted together (`batch_insert`): every one of a
/// writable tenant lands whole, and a fenced tenant's creates fail alone, leaving nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_created_at_once_land_whole_and_a_refused_one_fails_alone() {
    use oma_core::agents::{AgentConfig, CreateAgentParams};
    use oma_store::shards::FencePhase;
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(backend, &dir).await;
        let (open_tenant, fenced) = (unique("batch-open"), unique("batch-fenced"));
        for t in [&open_tenant, &fenced] {
            store.create_tenant(t).await.unwrap();
        }
        store
            .set_fence(&fenced, FencePhase::Fenced, Some("elsewhere"))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = store.clone();
            let tenant = if i % 4 == 3 { &fenced } else { &open_tenant }.clone();
            tasks.push(tokio::spawn(async move {
                let p: CreateAgentParams = serde_json::from_value(
                    json!({"name": format!("a{i}"), "model": "claude-opus-4-8"}),
                )
                .unwrap();
                let r = store
                    .create_agent(&tenant, &AgentConfig::create(p).unwrap())
                    .await;
                (tenant, r)
            }));
        }
        let mut made = Vec::new();
        for t in tasks {
            let (tenant, r) = t.await.unwrap();
            if tenant == fenced {
                assert!(
                    matches!(r, Err(StoreError::TenantFenced)),
                    "{backend:?}: {r:?}"
                );
            } else {
                made.push(r.unwrap());
            }
        }
        assert_eq!(made.len(), 30);
        for body in &made {
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            let id = v["id"].as_str().unwrap();
            // The agent and its first version, both.
            assert_eq!(
                store.get_agent(&open_tenant, id, None).await.unwrap(),
                *body
            );
            store.get_agent(&open_tenant, id, Some(1)).await.unwrap();
        }
        let listed = store
            .list_agents(
                &fenced,
                &oma_store::agents::AgentFilter::default(),
                &oma_store::ListQuery::new(100, false, None),
            )
            .await
            .unwrap();
        assert!(
            listed.items.is_empty(),
            "{backend:?}: a refused create left rows"
        );
    }
}
