//! `/v1/environments/{environment_id}/work…`: the self-hosted work queue (spec §3.2.2).
//!
//! Who may call what (spec §2.2): the worker endpoints (poll, ack, list) take the
//! environment's key; heartbeat takes the key or the item's sessions token; stop takes an API
//! key or the item's sessions token; retrieve, update and stats take an API key. The sessions
//! token travels inside the poll response's `secret` and is replaced by every new poll of the
//! item, so only the worker that holds the item can use it.

use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use oma_api::work::{Work, WorkHeartbeat, WorkQueueStats};
use oma_core::Error;
use oma_core::work as rules;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::Id;
use crate::auth::{Caller, Tenant};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryMap, RawJson, page_json};
use crate::state::AppState;

/// A long poll also looks again this often, for items that become claimable by the clock
/// (an offer or a lease that runs out) or that another node queued.
const POLL_RECHECK: Duration = Duration::from_millis(200);

pub fn routes() -> Router<AppState> {
    // Literal paths (not built from a prefix) so the OpenAPI catalogue test can read them.
    Router::new()
        .route("/v1/environments/{environment_id}/work", get(list))
        .route("/v1/environments/{environment_id}/work/poll", get(poll))
        .route("/v1/environments/{environment_id}/work/stats", get(stats))
        .route(
            "/v1/environments/{environment_id}/work/{work_id}",
            get(retrieve).post(update),
        )
        .route(
            "/v1/environments/{environment_id}/work/{work_id}/ack",
            post(ack),
        )
        .route(
            "/v1/environments/{environment_id}/work/{work_id}/heartbeat",
            post(heartbeat),
        )
        .route(
            "/v1/environments/{environment_id}/work/{work_id}/stop",
            post(stop),
        )
}

/// The environment must exist in the caller's tenant (its key may outlive it).
async fn check_environment(t: &Tenant, environment_id: &str) -> ApiResult<()> {
    t.store.environment(t.id(), environment_id).await?;
    Ok(())
}

fn json_of<T: serde::Serialize>(v: &T) -> ApiResult<RawJson> {
    serde_json::to_string(v)
        .map(RawJson)
        .map_err(|e| ApiError(Error::internal(format!("cannot encode the response: {e}"))))
}

async fn poll(
    State(st): State<AppState>,
    c: Caller,
    Id(environment_id): Id,
    q: QueryMap,
    headers: HeaderMap,
) -> ApiResult<RawJson> {
    let t = c.for_environment_worker(&environment_id)?;
    let block = rules::block_ms(q.int("block_ms")?)?;
    let reclaim = rules::reclaim_ms(q.int("reclaim_older_than_ms")?)?;
    let worker = headers
        .get("anthropic-worker-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| w.chars().take(256).collect::<String>());
    check_environment(&t, &environment_id).await?;
    let deadline = Instant::now() + Duration::from_millis(block as u64);
    loop {
        // Listen before looking, so an item queued in between wakes this poll.
        let queued = st.work.wait();
        if let Some(item) = t
            .store
            .poll_work(t.id(), &environment_id, reclaim, worker.as_deref())
            .await?
        {
            tracing::info!(op = "work_poll", environment_id = %environment_id, work_id = %item.id, session_id = %item.data.id, "work item offered");
            return json_of(&item);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(RawJson("null".to_string()));
        }
        let _ = tokio::time::timeout((deadline - now).min(POLL_RECHECK), queued).await;
    }
}

async fn ack(
    State(st): State<AppState>,
    c: Caller,
    Id((environment_id, work_id)): Id<(String, String)>,
) -> ApiResult<Json<Work>> {
    let t = c.for_environment_worker(&environment_id)?;
    let item = t
        .store
        .ack_work(t.id(), &environment_id, &work_id, st.work.lease_ttl_seconds)
        .await?;
    tracing::info!(op = "work_ack", environment_id = %environment_id, work_id = %work_id, "work item acknowledged");
    Ok(Json(item))
}

async fn heartbeat(
    State(st): State<AppState>,
    c: Caller,
    Id((environment_id, work_id)): Id<(String, String)>,
    q: QueryMap,
) -> ApiResult<Json<WorkHeartbeat>> {
    let t = c.for_work_item(&environment_id, &work_id, true, false)?;
    let beat = t
        .store
        .heartbeat_work(
            t.id(),
            &environment_id,
            &work_id,
            q.get("expected_last_heartbeat"),
            q.int("desired_ttl_seconds")?,
            st.work.lease_ttl_seconds,
        )
        .await?;
    Ok(Json(beat))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StopBody {
    #[serde(default)]
    force: Option<bool>,
}

async fn stop(
    c: Caller,
    Id((environment_id, work_id)): Id<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Work>> {
    let t = c.for_work_item(&environment_id, &work_id, false, true)?;
    // The SDK may send an empty body (no parameters) or `{"force": …}`.
    let params: StopBody = if body.iter().all(u8::is_ascii_whitespace) {
        StopBody::default()
    } else {
        crate::extract::parse_json(&body)?
    };
    let force = params.force.unwrap_or(false);
    let item = t
        .store
        .stop_work(t.id(), &environment_id, &work_id, force)
        .await?;
    tracing::info!(op = "work_stop", environment_id = %environment_id, work_id = %work_id, force, state = %item.state, "work item stop requested");
    Ok(Json(item))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    metadata: Option<Map<String, Value>>,
}

async fn update(
    t: Tenant,
    Id((environment_id, work_id)): Id<(String, String)>,
    JsonBody(body): JsonBody<UpdateBody>,
) -> ApiResult<Json<Work>> {
    let patch = body.metadata.unwrap_or_default();
    Ok(Json(
        t.store
            .update_work_metadata(t.id(), &environment_id, &work_id, &patch)
            .await?,
    ))
}

async fn retrieve(
    t: Tenant,
    Id((environment_id, work_id)): Id<(String, String)>,
) -> ApiResult<Json<Work>> {
    Ok(Json(
        t.store.get_work(t.id(), &environment_id, &work_id).await?,
    ))
}

async fn list(c: Caller, Id(environment_id): Id, q: QueryMap) -> ApiResult<RawJson> {
    let t = c.for_environment_worker(&environment_id)?;
    check_environment(&t, &environment_id).await?;
    let query = q.list_query(20, 100, true)?;
    Ok(page_json(
        t.store.list_work(t.id(), &environment_id, &query).await?,
    ))
}

async fn stats(t: Tenant, Id(environment_id): Id) -> ApiResult<Json<WorkQueueStats>> {
    check_environment(&t, &environment_id).await?;
    Ok(Json(
        t.store
            .work_stats(t.id(), &environment_id, rules::DEFAULT_RECLAIM_MS)
            .await?,
    ))
}
