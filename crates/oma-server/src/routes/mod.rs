//! The route table: one module per resource, merged here.

pub mod admin;
mod agents;
mod environment_keys;
mod environments;
mod events;
mod files;
mod health;
mod integrations;
mod memory;
mod model_routes;
mod sessions;
mod skills;
mod vaults;
mod work;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use oma_core::Error;

use crate::error::ApiError;
use crate::extract::JSON_BODY_LIMIT;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::routes())
        .route(
            "/v1/openapi.json",
            axum::routing::get(crate::openapi::serve),
        )
        .merge(agents::routes())
        .merge(environments::routes())
        .merge(work::routes())
        .merge(environment_keys::routes())
        .merge(sessions::routes())
        .merge(events::routes())
        .merge(vaults::routes())
        .merge(memory::routes())
        .merge(skills::routes())
        .merge(files::routes())
        .merge(model_routes::routes())
        .merge(admin::routes())
        .merge(integrations::routes())
        .merge(crate::console::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::moving::layer,
        ))
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(axum::middleware::from_fn(crate::request_id::layer))
        .with_state(state)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError(Error::not_found(format!(
        "no route for {method} {}",
        uri.path()
    )))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let mut resp = ApiError(Error::invalid(format!(
        "method {method} is not allowed on {}",
        uri.path()
    )))
    .into_response();
    *resp.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    resp
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError(Error::internal("internal server error")).into_response()
}

/// A path parameter whose rejection is an envelope.
pub struct Id<T = String>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> axum::extract::FromRequestParts<S>
    for Id<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Id(p.0))
            .map_err(|e| ApiError(Error::invalid(format!("invalid path parameter: {e}"))))
    }
}
