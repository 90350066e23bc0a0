//! `/v1/agents`: create, retrieve (optionally a version), update with a version precondition,
//! list, archive, and list versions (spec §3.1).

use axum::Router;
use axum::routing::{get, post};
use oma_core::Error;
use oma_core::agents::{AgentConfig, CreateAgentParams, UpdateAgentParams};
use oma_store::agents::AgentFilter;

use super::Id;
use crate::auth::Tenant;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryMap, RawJson, page_json};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/agents", post(create).get(list))
        .route("/v1/agents/{agent_id}", get(retrieve).post(update))
        .route("/v1/agents/{agent_id}/archive", post(archive))
        .route("/v1/agents/{agent_id}/versions", get(versions))
}

async fn create(t: Tenant, JsonBody(params): JsonBody<CreateAgentParams>) -> ApiResult<RawJson> {
    let cfg = AgentConfig::create(params)?;
    Ok(RawJson(t.store.create_agent(t.id(), &cfg).await?))
}

async fn retrieve(t: Tenant, Id(id): Id, q: QueryMap) -> ApiResult<RawJson> {
    let version = q.int("version")?;
    if let Some(v) = version
        && v < 1
    {
        return Err(ApiError(Error::invalid("`version` must be at least 1")));
    }
    Ok(RawJson(t.store.get_agent(t.id(), &id, version).await?))
}

async fn update(
    t: Tenant,
    Id(id): Id,
    JsonBody(params): JsonBody<UpdateAgentParams>,
) -> ApiResult<RawJson> {
    if let Some(v) = params.version
        && v < 1
    {
        return Err(ApiError(Error::invalid("`version` must be at least 1")));
    }
    Ok(RawJson(t.store.update_agent(t.id(), &id, params).await?))
}

async fn list(t: Tenant, q: QueryMap) -> ApiResult<RawJson> {
    let filter = AgentFilter {
        include_archived: q.bool("include_archived")?.unwrap_or(false),
        created_gte: q.time("created_at[gte]")?,
        created_lte: q.time("created_at[lte]")?,
    };
    let query = q.list_query(20, 100, true)?;
    Ok(page_json(
        t.store.list_agents(t.id(), &filter, &query).await?,
    ))
}

async fn archive(t: Tenant, Id(id): Id) -> ApiResult<RawJson> {
    Ok(RawJson(t.store.archive_agent(t.id(), &id).await?))
}

async fn versions(t: Tenant, Id(id): Id, q: QueryMap) -> ApiResult<RawJson> {
    let query = q.list_query(20, 100, true)?;
    Ok(page_json(
        t.store.list_agent_versions(t.id(), &id, &query).await?,
    ))
}
