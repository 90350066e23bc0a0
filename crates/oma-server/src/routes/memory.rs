//! `/v1/memory_stores`: memory stores, the memories inside them and the memories' version
//! history (spec §3.5): create/retrieve/update/list/archive/delete stores; create, retrieve,
//! update (with a `content_sha256` precondition), list (with `path_prefix`/`depth` roll-up and
//! `view`) and delete memories; list, retrieve and redact versions.

use axum::Json;
use axum::Router;
use axum::routing::{get, post};
use oma_api::memory::{
    Actor, CreateMemoryParams, CreateMemoryStoreParams, MemoryDeleted, MemoryStoreDeleted,
    MemoryVersionOperation, MemoryView,
};
use oma_core::Error;
use oma_core::memory::{
    self as rules, MemoryChange, MemoryStoreConfig, NewMemory, UpdateMemoryParams,
    UpdateMemoryStoreParams,
};
use oma_store::ListQuery;
use oma_store::memory::{MemoryListQuery, MemoryStoreFilter, MemoryVersionFilter};

use super::Id;
use crate::auth::{Caller, Tenant};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryMap, RawJson, page_body, page_json};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/memory_stores", post(create_store).get(list_stores))
        .route(
            "/v1/memory_stores/{memory_store_id}",
            get(retrieve_store).post(update_store).delete(delete_store),
        )
        .route(
            "/v1/memory_stores/{memory_store_id}/archive",
            post(archive_store),
        )
        .route(
            "/v1/memory_stores/{memory_store_id}/memories",
            post(create_memory).get(list_memories),
        )
        // Every SDK updates with POST; PATCH is accepted too because earlier notes expected it.
        .route(
            "/v1/memory_stores/{memory_store_id}/memories/{memory_id}",
            get(retrieve_memory)
                .post(update_memory)
                .patch(update_memory)
                .delete(delete_memory),
        )
        .route(
            "/v1/memory_stores/{memory_store_id}/memory_versions",
            get(list_versions),
        )
        .route(
            "/v1/memory_stores/{memory_store_id}/memory_versions/{memory_version_id}",
            get(retrieve_version),
        )
        .route(
            "/v1/memory_stores/{memory_store_id}/memory_versions/{memory_version_id}/redact",
            post(redact_version),
        )
}

/// Who a write made through the API is attributed to (`created_by` / `redacted_by`): the key
/// the caller authenticated with.
fn actor(t: &Tenant) -> Option<Actor> {
    Some(Actor::ApiActor {
        api_key_id: t.key_id.to_string(),
    })
}

/// Who a change is by: the session whose worker syncs the store, else the API key.
fn actor_of(t: &Tenant, session: Option<String>) -> Option<Actor> {
    match session {
        Some(session_id) => Some(Actor::SessionActor { session_id }),
        None => actor(t),
    }
}

fn view(q: &QueryMap, default: MemoryView) -> ApiResult<MemoryView> {
    Ok(rules::parse_view(q.get("view"), default)?)
}

fn json<T: serde::Serialize>(value: &T) -> ApiResult<RawJson> {
    serde_json::to_string(value).map(RawJson).map_err(|e| {
        ApiError(Error::internal(format!(
            "could not serialise the response: {e}"
        )))
    })
}

// ---------------------------------------------------------------------------------------------
// Stores
// ---------------------------------------------------------------------------------------------

async fn create_store(
    t: Tenant,
    JsonBody(params): JsonBody<CreateMemoryStoreParams>,
) -> ApiResult<RawJson> {
    let cfg = MemoryStoreConfig::create(params)?;
    Ok(RawJson(t.store.create_memory_store(t.id(), &cfg).await?))
}

async fn retrieve_store(t: Tenant, Id(id): Id) -> ApiResult<RawJson> {
    Ok(RawJson(t.store.get_memory_store(t.id(), &id).await?))
}

async fn update_store(
    t: Tenant,
    Id(id): Id,
    JsonBody(params): JsonBody<UpdateMemoryStoreParams>,
) -> ApiResult<RawJson> {
    Ok(RawJson(
        t.store.update_memory_store(t.id(), &id, params).await?,
    ))
}

async fn list_stores(t: Tenant, q: QueryMap) -> ApiResult<RawJson> {
    let filter = MemoryStoreFilter {
        include_archived: q.bool("include_archived")?.unwrap_or(false),
        created_gte: q.time("created_at[gte]")?,
        created_lte: q.time("created_at[lte]")?,
    };
    let query = q.list_query(rules::DEFAULT_LIST_LIMIT, rules::MAX_LIST_LIMIT, true)?;
    Ok(page_json(
        t.store.list_memory_stores(t.id(), &filter, &query).await?,
    ))
}

async fn archive_store(t: Tenant, Id(id): Id) -> ApiResult<RawJson> {
    Ok(RawJson(t.store.archive_memory_store(t.id(), &id).await?))
}

async fn delete_store(t: Tenant, Id(id): Id) -> ApiResult<Json<MemoryStoreDeleted>> {
    Ok(Json(t.store.delete_memory_store(t.id(), &id).await?))
}

// ---------------------------------------------------------------------------------------------
// Memories
// ---------------------------------------------------------------------------------------------

async fn create_memory(
    c: Caller,
    Id(store_id): Id,
    q: QueryMap,
    JsonBody(params): JsonBody<CreateMemoryParams>,
) -> ApiResult<RawJson> {
    let (t, session) = c.for_memory_store(&store_id, true).await?;
    let view = view(&q, MemoryView::Basic)?;
    let new = NewMemory::create(params)?;
    let record = t
        .store
        .create_memory(t.id(), &store_id, new, actor_of(&t, session).as_ref())
        .await?;
    json(&record.to_object(view))
}

async fn retrieve_memory(
    c: Caller,
    Id((store_id, id)): Id<(String, String)>,
    q: QueryMap,
) -> ApiResult<RawJson> {
    let (t, _) = c.for_memory_store(&store_id, false).await?;
    let view = view(&q, MemoryView::Full)?;
    let record = t
        .store
        .get_memory(t.id(), &store_id, &id, view == MemoryView::Full)
        .await?;
    json(&record.to_object(view))
}

async fn update_memory(
    c: Caller,
    Id((store_id, id)): Id<(String, String)>,
    q: QueryMap,
    JsonBody(params): JsonBody<UpdateMemoryParams>,
) -> ApiResult<RawJson> {
    let (t, session) = c.for_memory_store(&store_id, true).await?;
    let view = view(&q, MemoryView::Basic)?;
    let change = MemoryChange::from_params(params)?;
    let record = t
        .store
        .update_memory(
            t.id(),
            &store_id,
            &id,
            change,
            actor_of(&t, session).as_ref(),
        )
        .await?;
    json(&record.to_object(view))
}

async fn delete_memory(
    c: Caller,
    Id((store_id, id)): Id<(String, String)>,
    q: QueryMap,
) -> ApiResult<Json<MemoryDeleted>> {
    let (t, session) = c.for_memory_store(&store_id, true).await?;
    let expected = q.get("expected_content_sha256").filter(|s| !s.is_empty());
    if let Some(sha) = expected {
        rules::validate_sha256("expected_content_sha256", sha)?;
    }
    t.store
        .delete_memory(
            t.id(),
            &store_id,
            &id,
            expected,
            actor_of(&t, session).as_ref(),
        )
        .await?;
    Ok(Json(MemoryDeleted::new(id)))
}

async fn list_memories(c: Caller, Id(store_id): Id, q: QueryMap) -> ApiResult<RawJson> {
    let (t, _) = c.for_memory_store(&store_id, false).await?;
    let view = view(&q, MemoryView::Basic)?;
    let prefix = match q.get("path_prefix") {
        None | Some("") => "/".to_string(),
        Some(p) => {
            rules::validate_prefix(p)?;
            p.to_string()
        }
    };
    let query = MemoryListQuery {
        prefix,
        depth: rules::parse_depth(q.int("depth")?)?,
        view,
        limit: rules::effective_limit(
            q.limit(rules::DEFAULT_LIST_LIMIT, rules::MAX_LIST_LIMIT)?,
            view,
        ),
        after: q.cursor()?,
    };
    let page = t.store.list_memories(t.id(), &store_id, &query).await?;
    let items = page
        .items
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            ApiError(Error::internal(format!(
                "could not serialise the response: {e}"
            )))
        })?;
    let next = page.next.map(|c| c.encode());
    Ok(RawJson(page_body(&items, next.as_deref(), None, false)))
}

// ---------------------------------------------------------------------------------------------
// Versions
// ---------------------------------------------------------------------------------------------

async fn list_versions(t: Tenant, Id(store_id): Id, q: QueryMap) -> ApiResult<RawJson> {
    let view = view(&q, MemoryView::Basic)?;
    let operation = match q.get("operation") {
        None | Some("") => None,
        Some(op) => Some(MemoryVersionOperation::parse(op).ok_or_else(|| {
            ApiError(Error::invalid(format!(
                "operation: must be `created`, `modified` or `deleted`, got `{op}`"
            )))
        })?),
    };
    let text = |name: &str| q.get(name).filter(|s| !s.is_empty()).map(str::to_string);
    let filter = MemoryVersionFilter {
        memory_id: text("memory_id"),
        operation,
        api_key_id: text("api_key_id"),
        session_id: text("session_id"),
        service_account_id: text("service_account_id"),
        created_gte: q.time("created_at[gte]")?,
        created_lte: q.time("created_at[lte]")?,
    };
    let limit = rules::effective_limit(
        q.limit(rules::DEFAULT_LIST_LIMIT, rules::MAX_LIST_LIMIT)?,
        view,
    );
    // Newest first; the order is not selectable on this endpoint.
    let query = ListQuery::new(limit, true, q.cursor()?);
    let page = t
        .store
        .list_memory_versions(t.id(), &store_id, &filter, view == MemoryView::Full, &query)
        .await?;
    let items = page
        .items
        .into_iter()
        .map(|v| serde_json::to_string(&v.to_object(view)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            ApiError(Error::internal(format!(
                "could not serialise the response: {e}"
            )))
        })?;
    let next = page.next.map(|c| c.encode());
    Ok(RawJson(page_body(&items, next.as_deref(), None, false)))
}

async fn retrieve_version(
    t: Tenant,
    Id((store_id, id)): Id<(String, String)>,
    q: QueryMap,
) -> ApiResult<RawJson> {
    let view = view(&q, MemoryView::Full)?;
    let version = t
        .store
        .get_memory_version(t.id(), &store_id, &id, view == MemoryView::Full)
        .await?;
    json(&version.to_object(view))
}

async fn redact_version(t: Tenant, Id((store_id, id)): Id<(String, String)>) -> ApiResult<RawJson> {
    let version = t
        .store
        .redact_memory_version(t.id(), &store_id, &id, actor(&t).as_ref())
        .await?;
    json(&version.to_object(MemoryView::Full))
}
