//! `/v1/vaults` and `/v1/vaults/{vault_id}/credentials` (spec §3.4).
//!
//! Credential secrets go from the parsed request straight to the store, which seals them with
//! the server's root secret; no handler returns or logs them. `…/mcp_oauth_validate` probes the
//! credential's MCP server live (see `oma_runtime::Runtime::validate_credential`).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use oma_api::vaults::{CredentialDeleted, VaultDeleted};
use oma_core::credentials::{
    CreateCredentialParams, CreateVaultParams, CredentialSpec, UpdateCredentialParams,
    UpdateVaultParams, VaultSpec,
};
use oma_core::time;

use super::Id;
use crate::auth::Tenant;
use crate::error::ApiResult;
use crate::extract::{JsonBody, QueryMap, RawJson, page_json};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/vaults", post(create_vault).get(list_vaults))
        .route(
            "/v1/vaults/{vault_id}",
            get(retrieve_vault).post(update_vault).delete(delete_vault),
        )
        .route("/v1/vaults/{vault_id}/archive", post(archive_vault))
        .route(
            "/v1/vaults/{vault_id}/credentials",
            post(create_credential).get(list_credentials),
        )
        .route(
            "/v1/vaults/{vault_id}/credentials/{credential_id}",
            get(retrieve_credential)
                .post(update_credential)
                .delete(delete_credential),
        )
        .route(
            "/v1/vaults/{vault_id}/credentials/{credential_id}/archive",
            post(archive_credential),
        )
        .route(
            "/v1/vaults/{vault_id}/credentials/{credential_id}/mcp_oauth_validate",
            post(validate_credential),
        )
}

async fn create_vault(
    t: Tenant,
    JsonBody(params): JsonBody<CreateVaultParams>,
) -> ApiResult<RawJson> {
    let spec = VaultSpec::create(params)?;
    Ok(RawJson(t.store.create_vault(t.id(), &spec).await?))
}

async fn retrieve_vault(t: Tenant, Id(id): Id) -> ApiResult<RawJson> {
    Ok(RawJson(t.store.get_vault(t.id(), &id).await?))
}

async fn update_vault(
    t: Tenant,
    Id(id): Id,
    JsonBody(params): JsonBody<UpdateVaultParams>,
) -> ApiResult<RawJson> {
    Ok(RawJson(t.store.update_vault(t.id(), &id, params).await?))
}

async fn list_vaults(t: Tenant, q: QueryMap) -> ApiResult<RawJson> {
    let include_archived = q.bool("include_archived")?.unwrap_or(false);
    let query = q.list_query(20, 100, true)?;
    Ok(page_json(
        t.store
            .list_vaults(t.id(), include_archived, &query)
            .await?,
    ))
}

async fn delete_vault(t: Tenant, Id(id): Id) -> ApiResult<Json<VaultDeleted>> {
    t.store.delete_vault(t.id(), &id).await?;
    Ok(Json(VaultDeleted::new(id)))
}

async fn archive_vault(t: Tenant, Id(id): Id) -> ApiResult<RawJson> {
    Ok(RawJson(t.store.archive_vault(t.id(), &id).await?))
}

async fn create_credential(
    State(st): State<AppState>,
    t: Tenant,
    Id(vault_id): Id,
    JsonBody(params): JsonBody<CreateCredentialParams>,
) -> ApiResult<RawJson> {
    let (spec, secrets) = CredentialSpec::create(params, time::now_micros())?;
    Ok(RawJson(
        t.store
            .create_credential(t.id(), &vault_id, &spec, &secrets, &st.sealer)
            .await?,
    ))
}

async fn retrieve_credential(
    t: Tenant,
    Id((vault_id, id)): Id<(String, String)>,
) -> ApiResult<RawJson> {
    Ok(RawJson(
        t.store.get_credential(t.id(), &vault_id, &id).await?,
    ))
}

async fn update_credential(
    State(st): State<AppState>,
    t: Tenant,
    Id((vault_id, id)): Id<(String, String)>,
    JsonBody(params): JsonBody<UpdateCredentialParams>,
) -> ApiResult<RawJson> {
    Ok(RawJson(
        t.store
            .update_credential(t.id(), &vault_id, &id, params, &st.sealer)
            .await?,
    ))
}

async fn list_credentials(t: Tenant, Id(vault_id): Id, q: QueryMap) -> ApiResult<RawJson> {
    let include_archived = q.bool("include_archived")?.unwrap_or(false);
    let query = q.list_query(20, 100, true)?;
    Ok(page_json(
        t.store
            .list_credentials(t.id(), &vault_id, include_archived, &query)
            .await?,
    ))
}

async fn delete_credential(
    t: Tenant,
    Id((vault_id, id)): Id<(String, String)>,
) -> ApiResult<Json<CredentialDeleted>> {
    t.store.delete_credential(t.id(), &vault_id, &id).await?;
    Ok(Json(CredentialDeleted::new(id)))
}

async fn archive_credential(
    t: Tenant,
    Id((vault_id, id)): Id<(String, String)>,
) -> ApiResult<RawJson> {
    Ok(RawJson(
        t.store.archive_credential(t.id(), &vault_id, &id).await?,
    ))
}

/// Live-probes the credential against its MCP server (refreshing an `mcp_oauth` token once on a
/// 401/403). The body is empty, as for every action POST.
async fn validate_credential(
    State(st): State<AppState>,
    t: Tenant,
    Id((vault_id, id)): Id<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let credential = oma_runtime::mcp::CredentialRef {
        store: &t.store,
        tenant: t.id(),
        vault_id: &vault_id,
        credential_id: &id,
    };
    Ok(Json(
        st.runtime
            .validate_credential(credential, &st.sealer)
            .await?,
    ))
}
