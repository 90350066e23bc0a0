//! `/v1/sessions`: create, retrieve, update, list (both ways), archive and delete; the
//! resources sub-API; and threads (retrieve, list, archive) (spec §3.3).
//!
//! Writes that append to the session's event log (initial events, `session.updated`,
//! `session.status_terminated`) publish them to live streams after commit. Deleting a session
//! tells its streams with a `session.deleted` event and then ends them.

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use oma_core::Error;
use oma_core::sessions::{
    CreateSession, CreateSessionParams, ListCursor, UpdateSessionParams, parse_added_resource,
    parse_statuses, parse_token_rotation,
};
use oma_store::ListQuery;
use oma_store::events::StoredEvent;
use oma_store::sessions::SessionFilter;
use serde_json::Value;

use super::Id;
use crate::auth::{Caller, Tenant};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryMap, RawJson, page_body, page_json};
use crate::state::AppState;

/// Sessions list page size: default and maximum.
const SESSIONS_DEFAULT_LIMIT: i64 = 20;
const SESSIONS_MAX_LIMIT: i64 = 100;
/// Resources list: at most 1000 per page; without `limit`, every resource (a session holds
/// far fewer than this).
const RESOURCES_MAX_LIMIT: i64 = 1000;
const RESOURCES_ALL: i64 = 100_000;
/// Threads list page size: default and maximum.
const THREADS_LIMIT: i64 = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions", post(create).get(list))
        .route(
            "/v1/sessions/{session_id}",
            get(retrieve).post(update).delete(delete),
        )
        .route("/v1/sessions/{session_id}/archive", post(archive))
        .route(
            "/v1/sessions/{session_id}/resources",
            get(list_resources).post(add_resource),
        )
        .route(
            "/v1/sessions/{session_id}/resources/{resource_id}",
            get(retrieve_resource)
                .post(update_resource)
                .delete(delete_resource),
        )
        .route("/v1/sessions/{session_id}/threads", get(list_threads))
        .route(
            "/v1/sessions/{session_id}/threads/{thread_id}",
            get(retrieve_thread),
        )
        .route(
            "/v1/sessions/{session_id}/threads/{thread_id}/archive",
            post(archive_thread),
        )
}

/// Delivers committed events to the session's live streams.
fn publish(st: &AppState, session_id: &str, events: Vec<StoredEvent>) {
    if !events.is_empty() {
        st.hub.publish(
            session_id,
            events.into_iter().map(super::events::committed).collect(),
        );
    }
}

async fn create(
    State(st): State<AppState>,
    t: Tenant,
    JsonBody(params): JsonBody<CreateSessionParams>,
) -> ApiResult<RawJson> {
    let req = CreateSession::parse(params)?;
    let has_initial_events = !req.initial_events.is_empty();
    let (id, body, events) = t.store.create_session(t.id(), req, &st.sealer).await?;
    publish(&st, &id, events);
    // A self-hosted session's work item is waiting: wake the long polls.
    st.work.queued();
    // Its box starts now (semantics: provisioning begins at create), and its initial events,
    // if any, are processed.
    st.runtime.session_created(t.id(), &id, has_initial_events);
    Ok(RawJson(body))
}

/// Also for the session's worker (its sessions token, or its environment's key).
async fn retrieve(c: Caller, Id(id): Id) -> ApiResult<RawJson> {
    let t = c.for_session(&id).await?;
    Ok(RawJson(t.store.get_session(t.id(), &id).await?))
}

async fn update(
    State(st): State<AppState>,
    t: Tenant,
    Id(id): Id,
    JsonBody(params): JsonBody<UpdateSessionParams>,
) -> ApiResult<RawJson> {
    let budget_changed = !matches!(params.budget, oma_core::Patch::Absent);
    let (body, events) = t.store.update_session(t.id(), &id, params).await?;
    let changed = !events.is_empty();
    publish(&st, &id, events);
    if changed && budget_changed {
        // Work paused at the old budget may go on under the new one.
        st.runtime.wake(t.id(), &id);
    }
    Ok(RawJson(body))
}

async fn list(t: Tenant, q: QueryMap) -> ApiResult<RawJson> {
    let agent_id = non_empty(q.get("agent_id"));
    let agent_version = q.int("agent_version")?;
    if agent_version.is_some_and(|v| v < 1) {
        return Err(ApiError(Error::invalid(
            "`agent_version` must be at least 1",
        )));
    }
    let filter = SessionFilter {
        agent_id,
        agent_version,
        created_gt: q.time("created_at[gt]")?,
        created_gte: q.time("created_at[gte]")?,
        created_lt: q.time("created_at[lt]")?,
        created_lte: q.time("created_at[lte]")?,
        deployment_id: non_empty(q.get("deployment_id")),
        include_archived: q.bool("include_archived")?.unwrap_or(false),
        memory_store_id: non_empty(q.get("memory_store_id")),
        statuses: parse_statuses(&q.get_all("statuses"))?,
    };
    let limit = q.limit(SESSIONS_DEFAULT_LIMIT, SESSIONS_MAX_LIMIT)?;
    let desc = q.desc(true)?;
    let cursor = match q.get("page") {
        None | Some("") => None,
        Some(p) => Some(ListCursor::decode(p)?),
    };
    if let Some(c) = &cursor {
        // A cursor encodes the order it was made for (semantics §1.3).
        if non_empty(q.get("order")).is_some() && c.desc != desc {
            return Err(ApiError(Error::invalid(format!(
                "`page` was returned for order={}; it cannot be used with order={}",
                if c.desc { "desc" } else { "asc" },
                if desc { "desc" } else { "asc" }
            ))));
        }
    }
    let page = t
        .store
        .list_sessions(t.id(), &filter, limit, desc, cursor.as_ref())
        .await?;
    let next = page.next.map(|c| c.encode());
    let prev = page.prev.map(|c| c.encode());
    Ok(RawJson(page_body(
        &page.items,
        next.as_deref(),
        prev.as_deref(),
        true,
    )))
}

async fn delete(State(st): State<AppState>, t: Tenant, Id(id): Id) -> ApiResult<RawJson> {
    let deleted = t.store.delete_session(t.id(), &id).await?;
    // Its workspace folder and snapshots go too.
    st.runtime.session_deleted(t.id(), &id);
    // Its streams here see `session.deleted` and end (other nodes' hear it from the store).
    st.hub.session_deleted(&id, deleted.last_seq + 1);
    Ok(RawJson(deleted.body))
}

async fn archive(State(st): State<AppState>, t: Tenant, Id(id): Id) -> ApiResult<RawJson> {
    let (body, events) = t.store.archive_session(t.id(), &id).await?;
    publish(&st, &id, events);
    Ok(RawJson(body))
}

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

async fn list_resources(t: Tenant, Id(id): Id, q: QueryMap) -> ApiResult<RawJson> {
    let limit = match q.int("limit")? {
        None => RESOURCES_ALL,
        Some(n) if (1..=RESOURCES_MAX_LIMIT).contains(&n) => n,
        Some(n) => {
            return Err(ApiError(Error::invalid(format!(
                "`limit` must be between 1 and {RESOURCES_MAX_LIMIT}, got {n}"
            ))));
        }
    };
    let query = ListQuery::new(limit, false, q.cursor()?);
    Ok(page_json(
        t.store.list_session_resources(t.id(), &id, &query).await?,
    ))
}

async fn add_resource(
    t: Tenant,
    Id(id): Id,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<RawJson> {
    let param = parse_added_resource(&body)?;
    Ok(RawJson(
        t.store.add_session_resource(t.id(), &id, param).await?,
    ))
}

async fn retrieve_resource(t: Tenant, Id((id, rid)): Id<(String, String)>) -> ApiResult<RawJson> {
    Ok(RawJson(
        t.store.get_session_resource(t.id(), &id, &rid).await?,
    ))
}

async fn update_resource(
    State(st): State<AppState>,
    t: Tenant,
    Id((id, rid)): Id<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<RawJson> {
    let token = parse_token_rotation(&body)?;
    Ok(RawJson(
        t.store
            .rotate_session_resource_token(t.id(), &id, &rid, &token, &st.sealer)
            .await?,
    ))
}

async fn delete_resource(t: Tenant, Id((id, rid)): Id<(String, String)>) -> ApiResult<RawJson> {
    Ok(RawJson(
        t.store.delete_session_resource(t.id(), &id, &rid).await?,
    ))
}

// ---------------------------------------------------------------------------------------------
// Threads
// ---------------------------------------------------------------------------------------------

async fn list_threads(t: Tenant, Id(id): Id, q: QueryMap) -> ApiResult<RawJson> {
    let statuses = parse_statuses(&q.get_all("statuses"))?;
    let query = ListQuery::new(q.limit(THREADS_LIMIT, THREADS_LIMIT)?, false, q.cursor()?);
    Ok(page_json(
        t.store
            .list_session_threads(t.id(), &id, &statuses, &query)
            .await?,
    ))
}

async fn retrieve_thread(t: Tenant, Id((id, tid)): Id<(String, String)>) -> ApiResult<RawJson> {
    Ok(RawJson(
        t.store.get_session_thread(t.id(), &id, &tid).await?,
    ))
}

async fn archive_thread(
    State(st): State<AppState>,
    t: Tenant,
    Id((id, tid)): Id<(String, String)>,
) -> ApiResult<RawJson> {
    let (body, events) = t.store.archive_session_thread(t.id(), &id, &tid).await?;
    publish(&st, &id, events);
    Ok(RawJson(body))
}

fn non_empty(v: Option<&str>) -> Option<String> {
    v.filter(|s| !s.is_empty()).map(str::to_string)
}
