//! `GET /health`: no key needed; names the backends, checks the database answers, and shows
//! every shard answers, and shows this node, its leases and its peers (the nodes sharing the
//! database).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

async fn health(State(st): State<AppState>) -> (StatusCode, Json<Value>) {
    let control = st.tenants.control();
    let mut db_ok = control.ping().await.is_ok();
    // Every shard must answer too: its tenants are unavailable otherwise.
    let mut shards = Vec::new();
    for shard in st.tenants.shards() {
        let reachable = shard.store.ping().await.is_ok();
        db_ok &= reachable;
        shards.push(json!({
            "name": shard.name,
            "backend": shard.store.backend().name(),
            "url": shard.store.url_redacted(),
            "reachable": reachable,
        }));
    }
    let info = &st.info;
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let rt = &st.runtime;
    let ttl_us = i64::try_from(rt.config().lease_ttl.as_micros()).unwrap_or(i64::MAX);
    // A peer is alive while it heartbeats within a lease lifetime (it renews three times per).
    let nodes: Vec<Value> = if db_ok {
        control
            .nodes()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|n| {
                json!({
                    "node_id": n.node_id,
                    "address": n.address,
                    "version": n.version,
                    "state": n.state,
                    "alive": n.state != "stopped" && n.silent_for < ttl_us,
                    "leases": n.leases,
                    "last_heartbeat_ms_ago": n.silent_for / 1000,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let own = nodes
        .iter()
        .find(|n| n["node_id"] == rt.node_id())
        .map_or(0, |n| n["leases"].as_i64().unwrap_or(0));
    (
        status,
        Json(json!({
            "status": if db_ok { "ok" } else { "degraded" },
            "version": info.version,
            "database": {"backend": info.database_backend, "url": info.database_url, "reachable": db_ok},
            "shards": shards,
            "blobs": {"backend": info.blob_backend, "location": info.blob_location},
            "node": {
                "node_id": rt.node_id(),
                "leases": own,
                "sessions_hosted": rt.hosted_sessions().len(),
                "lease_ttl_ms": rt.config().lease_ttl.as_millis() as u64,
            },
            "peers": nodes.into_iter().filter(|n| n["node_id"] != rt.node_id()).collect::<Vec<_>>(),
        })),
    )
}
