//! `/v1/oma/model_routes`: a tenant's own model routes (an oma extension, so under the `oma`
//! namespace; not part of Anthropic's API).
//!
//! A route sends a model id to an OpenAI-compatible or Anthropic endpoint with its own key.
//! The key goes from the parsed request straight to the store, which seals it with the
//! server's root secret; responses say only `has_api_key`, and no handler logs it.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use oma_core::model_routes::{
    CreateModelRouteParams, ModelRouteDeleted, ModelRouteSpec, UpdateModelRouteParams,
};

use super::Id;
use crate::auth::Tenant;
use crate::error::ApiResult;
use crate::extract::{JsonBody, QueryMap, RawJson, page_json};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/oma/model_routes", post(create_route).get(list_routes))
        .route(
            "/v1/oma/model_routes/{route_id}",
            get(retrieve_route).post(update_route).delete(delete_route),
        )
}

async fn create_route(
    State(st): State<AppState>,
    t: Tenant,
    JsonBody(params): JsonBody<CreateModelRouteParams>,
) -> ApiResult<RawJson> {
    let (spec, key) = ModelRouteSpec::create(params)?;
    Ok(RawJson(
        t.store
            .create_model_route(t.id(), &spec, key.as_ref(), &st.sealer)
            .await?,
    ))
}

async fn retrieve_route(t: Tenant, Id(id): Id) -> ApiResult<RawJson> {
    Ok(RawJson(t.store.get_model_route(t.id(), &id).await?))
}

async fn update_route(
    State(st): State<AppState>,
    t: Tenant,
    Id(id): Id,
    JsonBody(params): JsonBody<UpdateModelRouteParams>,
) -> ApiResult<RawJson> {
    Ok(RawJson(
        t.store
            .update_model_route(t.id(), &id, params, &st.sealer)
            .await?,
    ))
}

async fn list_routes(t: Tenant, q: QueryMap) -> ApiResult<RawJson> {
    let query = q.list_query(20, 100, true)?;
    Ok(page_json(t.store.list_model_routes(t.id(), &query).await?))
}

async fn delete_route(t: Tenant, Id(id): Id) -> ApiResult<Json<ModelRouteDeleted>> {
    t.store.delete_model_route(t.id(), &id).await?;
    Ok(Json(ModelRouteDeleted::new(id)))
}
