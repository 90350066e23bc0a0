//! The HTTP surface of oma: axum routes, authentication and tenancy, the error envelope,
//! request ids, and SSE. A request goes: request id → auth (key → tenant → store) → the
//! resource's route module (`routes/<resource>.rs`) → core rules → store → JSON.

pub mod auth;
pub mod console;
pub mod error;
pub mod extract;
pub mod integrations;
pub mod metrics;
pub mod moving;
pub mod openapi;
pub mod request_id;
pub mod routes;
pub mod state;
pub mod tls;

pub use error::ApiError;
pub use oma_runtime::hub;
pub use state::{AppState, ServerInfo};

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;

/// The full application router.
pub fn app(state: AppState) -> Router {
    routes::router(state).layer(axum::middleware::from_fn(metrics::track))
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app(state.clone());
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(graceful(state.hub.clone(), shutdown))
    .await
}

/// Like [`serve`], over TLS: connections that complete a handshake with `tls` (typically
/// backed by a [`tls::ReloadingResolver`], so renewed certificates apply without a restart).
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: std::sync::Arc<rustls::ServerConfig>,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // `tap_io` gives the listener axum's connect-info support for any listener address.
    let listener = tls::TlsListener::new(listener, tls)?.tap_io(|_| {});
    let app = app(state.clone());
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(graceful(state.hub.clone(), shutdown))
    .await
}

async fn graceful(hub: std::sync::Arc<hub::Hub>, shutdown: impl std::future::Future<Output = ()>) {
    shutdown.await;
    // Open SSE streams would keep graceful shutdown waiting forever: end them.
    hub.close_all();
    tokio::time::sleep(Duration::from_millis(10)).await;
}
