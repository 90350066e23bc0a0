//! The HTTP surface of oma: axum routes, authentication and tenancy, the error envelope,
//! request ids, and SSE. A request goes: request id → auth (key → tenant → store) → the
//! resource's route module (`routes/<resource>.rs`) → core rules → store → JSON.

pub mod auth;
pub mod error;
pub mod extract;
pub mod request_id;
pub mod routes;
pub mod state;

pub use error::ApiError;
pub use oma_runtime::hub;
pub use state::{AppState, ServerInfo};

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;

/// The full application router.
pub fn app(state: AppState) -> Router {
    routes::router(state)
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app(state.clone());
    let hub = state.hub.clone();
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        // Open SSE streams would keep graceful shutdown waiting forever: end them.
        hub.close_all();
        tokio::time::sleep(Duration::from_millis(10)).await;
    })
    .await
}
