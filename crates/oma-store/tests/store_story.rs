//! One behavioural story of the store, run on SQLite always and on PostgreSQL when
//! `OMA_TEST_DATABASE_URL` is set. Tests stay apart by tenant, so they can share a database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use oma_core::agents::{AgentConfig, CreateAgentParams, UpdateAgentParams};
use oma_core::cursor::Cursor;
use oma_store::agents::AgentFilter;
use oma_store::{Backend, ListQuery, Store};
use serde_json::{Value, json};

struct Db {
    store: Store,
    _dir: Option<tempfile::TempDir>,
}

async fn open(backend: Backend) -> Db {
    let (url, dir) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            (
                format!("sqlite://{}", dir.path().join("oma.db").display()),
                Some(dir),
            )
        }
        Backend::Postgres => (std::env::var("OMA_TEST_DATABASE_URL").unwrap(), None),
    };
    let store = Store::connect(&url).await.unwrap();
    store.migrate_up().await.unwrap();
    Db { store, _dir: dir }
}

fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Sqlite];
    match std::env::var("OMA_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => v.push(Backend::Postgres),
        _ => eprintln!("note: OMA_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant"),
    }
    v
}

fn tenant_name(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}-{}-{nanos}", std::process::id())
}

fn agent_params(name: &str) -> CreateAgentParams {
    serde_json::from_value(json!({"name": name, "model": "claude-opus-4-8"})).unwrap()
}

#[tokio::test]
async fn tenants_and_keys() {
    for b in backends() {
        let db = open(b).await;
        let s = &db.store;
        let t = tenant_name("keys");
        assert_eq!(
            s.create_tenant(&t).await.unwrap(),
            oma_store::tenants::Created::New
        );
        assert_eq!(
            s.create_tenant(&t).await.unwrap(),
            oma_store::tenants::Created::AlreadyExisted
        );
        assert!(s.create_tenant("Bad Name!").await.is_err());
        let (info, key) = s.create_api_key(&t, None).await.unwrap();
        let hash = oma_store::tenants::hash_key(&key);
        assert_eq!(
            s.tenant_for_key_hash(&hash).await.unwrap(),
            Some((t.clone(), info.id.clone()))
        );
        s.revoke_api_key(&info.id).await.unwrap();
        assert_eq!(s.tenant_for_key_hash(&hash).await.unwrap(), None);
        assert!(s.create_api_key("no-such-tenant-xyz", None).await.is_err());
    }
}

#[tokio::test]
async fn agents_are_versioned_and_scoped_to_their_tenant() {
    for b in backends() {
        let db = open(b).await;
        let s = &db.store;
        let (t1, t2) = (tenant_name("a1"), tenant_name("a2"));
        let cfg = AgentConfig::create(agent_params("first")).unwrap();
        let body: Value = serde_json::from_str(&s.create_agent(&t1, &cfg).await.unwrap()).unwrap();
        let id = body["id"].as_str().unwrap().to_string();

        // another tenant cannot see or change it
        assert!(s.get_agent(&t2, &id, None).await.is_err());
        let upd: UpdateAgentParams = serde_json::from_value(json!({"name": "stolen"})).unwrap();
        assert!(s.update_agent(&t2, &id, upd).await.is_err());

        let upd: UpdateAgentParams =
            serde_json::from_value(json!({"name": "second", "version": 1})).unwrap();
        let v2: Value =
            serde_json::from_str(&s.update_agent(&t1, &id, upd).await.unwrap()).unwrap();
        assert_eq!(v2["version"], 2);
        // a stale precondition is a conflict and writes nothing
        let stale: UpdateAgentParams =
            serde_json::from_value(json!({"name": "third", "version": 1})).unwrap();
        let err = s.update_agent(&t1, &id, stale).await.unwrap_err();
        assert!(
            matches!(err, oma_store::StoreError::Domain(ref e) if e.kind == oma_core::ErrorKind::Conflict)
        );
        let v1: Value =
            serde_json::from_str(&s.get_agent(&t1, &id, Some(1)).await.unwrap()).unwrap();
        assert_eq!(v1["name"], "first");
        let now: Value = serde_json::from_str(&s.get_agent(&t1, &id, None).await.unwrap()).unwrap();
        assert_eq!(now["name"], "second");
    }
}

#[tokio::test]
async fn pagination_walks_every_row_once_in_order() {
    for b in backends() {
        let db = open(b).await;
        let s = &db.store;
        let t = tenant_name("page");
        let mut made = Vec::new();
        for i in 0..7 {
            let cfg = AgentConfig::create(agent_params(&format!("a{i}"))).unwrap();
            let body: Value =
                serde_json::from_str(&s.create_agent(&t, &cfg).await.unwrap()).unwrap();
            made.push(body["id"].as_str().unwrap().to_string());
        }
        for desc in [false, true] {
            let mut seen = Vec::new();
            let mut cursor: Option<Cursor> = None;
            loop {
                let q = ListQuery::new(3, desc, cursor.clone());
                let page = s
                    .list_agents(&t, &AgentFilter::default(), &q)
                    .await
                    .unwrap();
                for item in &page.items {
                    let v: Value = serde_json::from_str(item).unwrap();
                    seen.push(v["id"].as_str().unwrap().to_string());
                }
                match page.next {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            let mut expected = made.clone();
            if desc {
                expected.reverse();
            }
            assert_eq!(seen, expected, "desc={desc} on {b:?}");
        }
    }
}
