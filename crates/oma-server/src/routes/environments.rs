//! `/v1/environments`: create, retrieve, update, list, delete and archive (spec §3.2). The
//! self-hosted work queue (`…/work…`) is not served yet.

use axum::routing::{get, post};
use axum::{Json, Router};
use oma_api::environments::EnvironmentDeleted;
use oma_core::environments::{CreateEnvironmentParams, EnvironmentSpec, UpdateEnvironmentParams};

use super::Id;
use crate::auth::Tenant;
use crate::error::ApiResult;
use crate::extract::{JsonBody, QueryMap, RawJson, page_json};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/environments", post(create).get(list))
        .route(
            "/v1/environments/{environment_id}",
            get(retrieve).post(update).delete(delete),
        )
        .route("/v1/environments/{environment_id}/archive", post(archive))
}

async fn create(
    t: Tenant,
    JsonBody(params): JsonBody<CreateEnvironmentParams>,
) -> ApiResult<RawJson> {
    let spec = EnvironmentSpec::create(params)?;
    Ok(RawJson(t.store.create_environment(t.id(), &spec).await?))
}

async fn retrieve(t: Tenant, Id(id): Id) -> ApiResult<RawJson> {
    Ok(RawJson(t.store.get_environment(t.id(), &id).await?))
}

async fn update(
    t: Tenant,
    Id(id): Id,
    JsonBody(params): JsonBody<UpdateEnvironmentParams>,
) -> ApiResult<RawJson> {
    Ok(RawJson(
        t.store.update_environment(t.id(), &id, params).await?,
    ))
}

async fn list(t: Tenant, q: QueryMap) -> ApiResult<RawJson> {
    let include_archived = q.bool("include_archived")?.unwrap_or(false);
    let query = q.list_query(20, 100, true)?;
    Ok(page_json(
        t.store
            .list_environments(t.id(), include_archived, &query)
            .await?,
    ))
}

async fn delete(t: Tenant, Id(id): Id) -> ApiResult<Json<EnvironmentDeleted>> {
    t.store.delete_environment(t.id(), &id).await?;
    Ok(Json(EnvironmentDeleted::new(id)))
}

async fn archive(t: Tenant, Id(id): Id) -> ApiResult<RawJson> {
    Ok(RawJson(t.store.archive_environment(t.id(), &id).await?))
}
