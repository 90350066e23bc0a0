//! Requests that meet a tenant's move (see `oma_store::tenant_move`).
//!
//! While a tenant moves between shards its writes are refused for a moment (the fence) and
//! then belong on the new shard. A request whose write was refused so did not change
//! anything (its transaction rolled back), so this layer waits until the tenant's shard
//! takes writes again and runs the request once more, against the new shard: the client sees
//! a slower answer, not an error. Bodies are kept for the retry only when they are small
//! enough to hold (uploads are not retried; they get the 503 and the SDK retries them).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// `error.details.error_code` of the answer when the move outlasts the wait.
pub const TENANT_MOVING: &str = "tenant_moving";

/// How long a request waits for a move's fence to lift before it answers 503.
const WAIT_FOR_MOVE: Duration = Duration::from_secs(20);
/// Bodies up to this size are held for a retry.
const RETRY_BODY_LIMIT: u64 = 4 << 20;

/// Where the authenticated tenant of a request is noted for this layer.
#[derive(Clone, Default)]
struct TenantSlot(Arc<Mutex<Option<Arc<str>>>>);

/// Called by authentication: the request is `tenant`'s.
pub fn note_tenant(parts: &Parts, tenant: &Arc<str>) {
    if let Some(slot) = parts.extensions.get::<TenantSlot>()
        && let Ok(mut s) = slot.0.lock()
    {
        *s = Some(tenant.clone());
    }
}

fn moving_tenant(resp: &Response, slot: &TenantSlot) -> Option<Arc<str>> {
    if resp.status() != axum::http::StatusCode::SERVICE_UNAVAILABLE
        || resp.extensions().get::<TenantMovingMark>().is_none()
    {
        return None;
    }
    slot.0.lock().ok().and_then(|s| s.clone())
}

/// Put on a response built from a fenced write (see `error.rs`).
#[derive(Clone, Copy)]
pub struct TenantMovingMark;

pub async fn layer(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let small = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(
            parts.method == axum::http::Method::GET || parts.method == axum::http::Method::DELETE,
            |n| n <= RETRY_BODY_LIMIT,
        );
    let slot = TenantSlot::default();
    parts.extensions.insert(slot.clone());
    if !small {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let bytes = match axum::body::to_bytes(
        body,
        usize::try_from(RETRY_BODY_LIMIT).unwrap_or(usize::MAX),
    )
    .await
    {
        Ok(b) => b,
        Err(e) => {
            return crate::ApiError(oma_core::Error::invalid(format!(
                "could not read the request body: {e}"
            )))
            .into_response();
        }
    };
    let mut attempt = 0;
    loop {
        let req = Request::from_parts(parts.clone(), Body::from(bytes.clone()));
        let resp = next.clone().run(req).await;
        let Some(tenant) = moving_tenant(&resp, &slot) else {
            return resp;
        };
        attempt += 1;
        if attempt > 3 || !st.tenants.wait_until_writable(&tenant, WAIT_FOR_MOVE).await {
            return resp;
        }
        tracing::info!(op = "shards", tenant_id = %tenant, attempt, "retrying a request that met the tenant's move");
    }
}
