//! Prometheus metrics: the per-route HTTP middleware and the separate `/metrics` listener.
//!
//! The listener has no authentication, so it belongs on a private address (loopback or the
//! scrape network). Counters live in `oma-metrics`; figures that are cheaper to read than to
//! track (database and blob bytes, queued inputs, process CPU and memory) are read per scrape.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use oma_metrics::Exposition;

use crate::state::AppState;

/// Records one request: count by status, errors by class, time to the response head. Routes
/// are labelled by their template (`/v1/sessions/{id}`), never by the raw path.
pub async fn track(req: Request, next: Next) -> Response {
    if !oma_metrics::http_enabled() {
        return next.run(req).await;
    }
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let resp = next.run(req).await;
    let status = resp.status();
    let method = method.as_str();
    oma_metrics::HTTP_REQUESTS.inc([method, &route, status.as_str()]);
    if status.is_client_error() {
        oma_metrics::HTTP_ERRORS.inc([method, &route, "client"]);
    } else if status.is_server_error() {
        oma_metrics::HTTP_ERRORS.inc([method, &route, "server"]);
    }
    oma_metrics::HTTP_DURATION.observe([method, &route], started.elapsed());
    resp
}

/// The metrics listener's router: `GET /metrics`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(state)
}

/// Serves `/metrics` on `listener` until `shutdown` resolves, and turns on per-request HTTP
/// accounting (off while no listener runs, so a server without metrics pays nothing for it).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    oma_metrics::enable_http();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn scrape(State(state): State<AppState>) -> Response {
    let text = render(&state).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// One scrape's text.
pub async fn render(state: &AppState) -> String {
    let mut e = Exposition::new();
    e.header("oma_build_info", "gauge", "The running oma version.");
    e.sample("oma_build_info", &[("version", state.info.version)], 1);
    oma_metrics::render_known(&mut e);
    let shards = state.tenants.shards();
    let mut queued = 0;
    for shard in &shards {
        match shard.store.queued_inputs().await {
            Ok(n) => queued += n,
            Err(err) => {
                tracing::warn!(op = "metrics", shard = %shard.name, error = %err, "cannot count queued inputs")
            }
        }
    }
    e.gauge_value(
        "oma_queued_inputs",
        "Client events waiting in session input queues.",
        queued,
    );
    e.header(
        "oma_database_bytes",
        "gauge",
        "Size of each shard's database (SQLite pages, or pg_database_size).",
    );
    for shard in &shards {
        match shard.store.database_bytes().await {
            Ok(n) => e.sample(
                "oma_database_bytes",
                &[
                    ("backend", shard.store.backend().name()),
                    ("shard", shard.name.as_str()),
                ],
                n,
            ),
            Err(err) => {
                tracing::warn!(op = "metrics", shard = %shard.name, error = %err, "cannot read the database size")
            }
        }
    }
    // Counted for a local folder; a bucket's size is the object store's own metric.
    if let Some(root) = state.blobs.root() {
        e.gauge_value(
            "oma_blob_bytes",
            "Bytes held in blob storage (recounted at most every 30 s).",
            blob_bytes(root).await,
        );
    }
    oma_metrics::process::render(&mut e);
    e.finish()
}

/// How long a blob-size count is reused: walking a large blob folder on every scrape would
/// cost more than the figure is worth.
const BLOB_COUNT_TTL: Duration = Duration::from_secs(30);

static BLOB_COUNT: Mutex<Option<(PathBuf, Instant, u64)>> = Mutex::new(None);

async fn blob_bytes(root: &Path) -> u64 {
    {
        let cached = BLOB_COUNT.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((r, at, n)) = cached.as_ref()
            && r == root
            && at.elapsed() < BLOB_COUNT_TTL
        {
            return *n;
        }
    }
    let dir = root.to_path_buf();
    let n = tokio::task::spawn_blocking(move || dir_bytes(&dir))
        .await
        .unwrap_or(0);
    *BLOB_COUNT.lock().unwrap_or_else(|p| p.into_inner()) =
        Some((root.to_path_buf(), Instant::now(), n));
    n
}

/// Total size of the regular files under `dir` (symlinks are not followed).
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => total += entry.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn dir_bytes_counts_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("x"), [0u8; 10]).unwrap();
        std::fs::write(dir.path().join("a/b/y"), [0u8; 5]).unwrap();
        assert_eq!(dir_bytes(dir.path()), 15);
        assert_eq!(dir_bytes(&dir.path().join("missing")), 0);
    }
}
