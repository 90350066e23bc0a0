//! Shared by the store's integration tests: which backends to run, unique names, and a
//! session to append to.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use oma_core::seal::{Sealer, generate_root_secret};
use oma_core::sessions::{CreateSession, CreateSessionParams};
use oma_store::{Backend, Store};
use serde_json::json;

/// SQLite always; PostgreSQL too when `OMA_TEST_DATABASE_URL` is set.
pub fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Sqlite];
    match std::env::var("OMA_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => v.push(Backend::Postgres),
        _ => eprintln!("note: OMA_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant"),
    }
    v
}

/// `tag` made unique across processes and calls (tenants, nodes, ids in a shared database).
pub fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}-{}-{nanos}", std::process::id())
}

/// A fresh tenant with a session to append to: `(tenant, session id)`.
pub async fn session(store: &Store, tag: &str) -> (String, String) {
    let (tenant, agent, env) = oma_testkit::tenant_with_agent(store, tag).await.unwrap();
    let p: CreateSessionParams =
        serde_json::from_value(json!({"agent": agent, "environment_id": env})).unwrap();
    let sealer = Sealer::from_base64(&generate_root_secret()).unwrap();
    let (sid, _, _) = store
        .create_session(&tenant, CreateSession::parse(p).unwrap(), &sealer)
        .await
        .unwrap();
    (tenant, sid)
}
