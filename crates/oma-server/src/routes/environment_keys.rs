//! `/v1/oma/admin/environment_keys`: the operator's API for the keys of self-hosted
//! environments (what `oma environments keys` does from the command line). Keys are stored
//! hashed; a created key is in the create response and nowhere else, ever.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use oma_core::Error;
use oma_store::work::EnvironmentKeyInfo;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Id;
use super::admin::AdminCaller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryMap};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/oma/admin/environment_keys", post(create).get(list))
        .route(
            "/v1/oma/admin/environment_keys/{key_id}/revoke",
            post(revoke),
        )
}

fn listing(k: &EnvironmentKeyInfo) -> Value {
    json!({
        "id": k.id,
        "type": "environment_key",
        "tenant": k.tenant_id,
        "environment_id": k.environment_id,
        "name": k.name,
        "key_prefix": k.key_prefix,
        "created_at": oma_core::time::format_micros(k.created_at),
        "revoked_at": k.revoked_at.map(oma_core::time::format_micros),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    tenant: Option<String>,
    environment_id: String,
    name: Option<String>,
}

async fn create(
    State(st): State<AppState>,
    _: AdminCaller,
    JsonBody(body): JsonBody<CreateBody>,
) -> ApiResult<Json<Value>> {
    let tenant = body
        .tenant
        .unwrap_or_else(|| crate::auth::DEFAULT_TENANT.to_string());
    if !st.tenants.control().tenant_exists(&tenant).await? {
        return Err(ApiError(Error::not_found(format!(
            "tenant `{tenant}` does not exist"
        ))));
    }
    let (info, key) = st
        .tenants
        .store_for(&tenant)
        .create_environment_key(&tenant, &body.environment_id, body.name.as_deref())
        .await?;
    let mut out = listing(&info);
    out["key"] = Value::String(key);
    Ok(Json(out))
}

async fn list(State(st): State<AppState>, _: AdminCaller, q: QueryMap) -> ApiResult<Json<Value>> {
    let mut keys = Vec::new();
    for shard in st.tenants.shards() {
        keys.extend(
            shard
                .store
                .list_environment_keys(q.get("tenant"), q.get("environment_id"))
                .await?,
        );
    }
    let data: Vec<Value> = keys.iter().map(listing).collect();
    Ok(Json(json!({"data": data, "next_page": null})))
}

async fn revoke(
    State(st): State<AppState>,
    _: AdminCaller,
    Id(key_id): Id,
) -> ApiResult<Json<Value>> {
    // The key lives on its tenant's shard; the admin does not say which tenant.
    for shard in st.tenants.shards() {
        let keys = shard.store.list_environment_keys(None, None).await?;
        if keys.iter().any(|k| k.id == key_id) {
            shard.store.revoke_environment_key(None, &key_id).await?;
            let keys = shard.store.list_environment_keys(None, None).await?;
            if let Some(key) = keys.iter().find(|k| k.id == key_id) {
                return Ok(Json(listing(key)));
            }
        }
    }
    Err(ApiError(Error::missing("environment key", &key_id)))
}
