//! `GET /health`: no key needed; names the backends and checks the database answers.

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
    let db_ok = st.tenants.control().ping().await.is_ok();
    let info = &st.info;
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if db_ok { "ok" } else { "degraded" },
            "version": info.version,
            "database": {"backend": info.database_backend, "url": info.database_url, "reachable": db_ok},
            "blobs": {"backend": info.blob_backend, "location": info.blob_location},
        })),
    )
}
