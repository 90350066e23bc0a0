//! `POST /v1/integrations/{integration_id}/webhook`: deliveries from Slack, GitHub and Linear.
//! No API key: the service's signature is the authentication (`oma-integrations` verifies it).
//! `GET /v1/integrations/{integration_id}/oauth/callback`: where Slack, Linear and GitHub send
//! the admin back after an install; the single-use `state` is the authentication.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use oma_integrations::CallbackQuery;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/integrations/{integration_id}/webhook", post(webhook))
        .route(
            "/v1/integrations/{integration_id}/oauth/callback",
            get(oauth_callback),
        )
}

async fn oauth_callback(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    st.integrations.oauth_callback(&id, &q).await
}

async fn webhook(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.integrations.webhook(&id, &headers, &body).await
}
