//! `POST /v1/integrations/{integration_id}/webhook`: deliveries from Slack, GitHub and Linear.
//! No API key: the service's signature is the authentication (`oma-integrations` verifies it).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/integrations/{integration_id}/webhook", post(webhook))
}

async fn webhook(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.integrations.webhook(&id, &headers, &body).await
}
