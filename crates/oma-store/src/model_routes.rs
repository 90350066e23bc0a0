//! Storage: per-tenant model routes (an oma extension).
//!
//! A row holds the route's public API object (`body`) and, in its own column, the provider key
//! sealed with the server's root secret under the associated data `"{tenant}/{route id}"`. The
//! plaintext key exists only in memory: it is sealed before any statement is built and opened
//! only by [`Store::resolve_model_route`] (for the runtime that calls the provider) or inside an
//! update that may replace it. `model` has its own column so that one route per model id and
//! tenant is enforced by a unique index and the runtime's lookup is one index probe.

use oma_core::model_routes::{
    self as rules, ApiKey, KeyChange, ModelRoute, ModelRouteSpec, UpdateModelRouteParams,
    api_key_aad,
};
use oma_core::seal::Sealer;
use oma_core::{ids, time};

use sqlx::AssertSqlSafe;

use crate::{ListQuery, Listed, Result, Store, StoreError, from_json, to_json};

/// A route as the runtime needs it to build a provider, with the key opened.
#[derive(Clone, PartialEq, Eq)]
pub struct ResolvedModelRoute {
    pub id: String,
    /// `"openai"` or `"anthropic"`.
    pub provider: String,
    pub base_url: String,
    pub api_key: Option<String>,
    /// The model name to send to the provider.
    pub upstream_model: String,
    /// Microseconds; strictly increases on every change, so a provider built from this route
    /// can be cached until the value differs.
    pub updated_at: i64,
}

// The key must never reach logs.
impl std::fmt::Debug for ResolvedModelRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedModelRoute")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("upstream_model", &self.upstream_model)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// `created_at, updated_at, body, api_key`.
type RouteRow = (i64, i64, String, Option<String>);

impl Store {
    /// Creates a route; the key, if any, is sealed before it is written. 409 when the tenant
    /// already has a route for the model id.
    pub async fn create_model_route(
        &self,
        tenant: &str,
        spec: &ModelRouteSpec,
        key: Option<&ApiKey>,
        sealer: &Sealer,
    ) -> Result<String> {
        let id = ids::new_id(rules::ID_PREFIX);
        let now = time::now_micros();
        let body = to_json(&spec.to_object(&id, key.is_some(), now, now))?;
        let sealed = key.map(|k| seal(sealer, tenant, &id, k)).transpose()?;
        let inserted = sqlx::query(
            "INSERT INTO model_routes (id, tenant_id, model, created_at, updated_at, body, api_key) \
             VALUES ($1, $2, $3, $4, $4, $5, $6)",
        )
        .bind(&id)
        .bind(tenant)
        .bind(&spec.model)
        .bind(now)
        .bind(&body)
        .bind(&sealed)
        .execute(self.writer())
        .await
        .map_err(StoreError::from);
        match inserted {
            Err(e) if e.is_unique_violation() => Err(rules::duplicate_model(&spec.model).into()),
            Err(e) => Err(e),
            Ok(_) => Ok(body),
        }
    }

    pub async fn get_model_route(&self, tenant: &str, id: &str) -> Result<String> {
        let body: Option<String> =
            sqlx::query_scalar("SELECT body FROM model_routes WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .fetch_optional(self.reader())
                .await?;
        Ok(body.ok_or_else(|| rules::not_found(id))?)
    }

    /// Applies an update. The stored key is opened only when a new one is given (to leave the
    /// row untouched when it is the same) and re-sealed only when it changed. An update that
    /// changes nothing returns the stored object as it is.
    pub async fn update_model_route(
        &self,
        tenant: &str,
        id: &str,
        params: UpdateModelRouteParams,
        sealer: &Sealer,
    ) -> Result<String> {
        let mut tx = self.writer().begin().await?;
        // A no-op write that reads the row: on PostgreSQL it holds the row lock until commit,
        // so concurrent updates of one route apply one after the other instead of the later
        // one overwriting the earlier from a stale read (SQLite has a single writer already).
        let row: Option<RouteRow> = sqlx::query_as(
            "UPDATE model_routes SET updated_at = updated_at WHERE tenant_id = $1 AND id = $2 \
             RETURNING created_at, updated_at, body, api_key",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let (created_at, updated_at, body, sealed) = row.ok_or_else(|| rules::not_found(id))?;
        let current = ModelRouteSpec::from_object(&from_json::<ModelRoute>(&body)?);
        let (next, change) = current.update(params)?;
        let (next_sealed, key_changed) = match change {
            KeyChange::Keep => (sealed, false),
            KeyChange::Remove => (None, sealed.is_some()),
            KeyChange::Replace(key) => {
                // A stored key that does not open (e.g. a changed root secret) counts as
                // different, so giving the key again repairs the row.
                let same = sealed
                    .as_deref()
                    .and_then(|s| open(sealer, tenant, id, s).ok())
                    .is_some_and(|old| old == key);
                if same {
                    (sealed, false)
                } else {
                    (Some(seal(sealer, tenant, id, &key)?), true)
                }
            }
        };
        if next == current && !key_changed {
            return Ok(body);
        }
        // Strictly later than the stored value even within one microsecond: the runtime
        // caches providers by `updated_at`.
        let now = time::now_micros().max(updated_at + 1);
        let new_body = to_json(&next.to_object(id, next_sealed.is_some(), created_at, now))?;
        let updated = sqlx::query(
            "UPDATE model_routes SET model = $1, updated_at = $2, body = $3, api_key = $4 \
             WHERE tenant_id = $5 AND id = $6",
        )
        .bind(&next.model)
        .bind(now)
        .bind(&new_body)
        .bind(&next_sealed)
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from);
        match updated {
            Err(e) if e.is_unique_violation() => {
                return Err(rules::duplicate_model(&next.model).into());
            }
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        tx.commit().await?;
        Ok(new_body)
    }

    pub async fn delete_model_route(&self, tenant: &str, id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM model_routes WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(self.writer())
            .await?;
        if done.rows_affected() == 0 {
            return Err(rules::not_found(id).into());
        }
        Ok(())
    }

    /// Routes, newest first by default.
    pub async fn list_model_routes(&self, tenant: &str, q: &ListQuery) -> Result<Listed> {
        let sql = format!(
            "SELECT created_at, id, body FROM model_routes WHERE tenant_id = $1 AND {} {} LIMIT $4",
            q.after_clause("created_at", "id", 2),
            q.order_clause("created_at", "id"),
        );
        let (k, i) = q.after_binds();
        let rows: Vec<(i64, String, String)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(k)
            .bind(i)
            .bind(q.fetch_limit())
            .fetch_all(self.reader())
            .await?;
        Ok(Listed::from_rows(q, rows))
    }

    /// The tenant's route for `model` with its key opened, or `None` when the tenant has no
    /// route for it (the runtime then uses the server's default provider). A key that does
    /// not open is an error, not a silent "no key": calling the provider without it would
    /// only fail later and less clearly.
    pub async fn resolve_model_route(
        &self,
        tenant: &str,
        model: &str,
        sealer: &Sealer,
    ) -> Result<Option<ResolvedModelRoute>> {
        let row: Option<(String, i64, String, Option<String>)> = sqlx::query_as(
            "SELECT id, updated_at, body, api_key FROM model_routes \
             WHERE tenant_id = $1 AND model = $2",
        )
        .bind(tenant)
        .bind(model)
        .fetch_optional(self.reader())
        .await?;
        let Some((id, updated_at, body, sealed)) = row else {
            return Ok(None);
        };
        let route = from_json::<ModelRoute>(&body)?;
        let api_key = match sealed {
            Some(s) => Some(open(sealer, tenant, &id, &s)?.into_string()),
            None => None,
        };
        Ok(Some(ResolvedModelRoute {
            id,
            provider: route.provider.as_str().to_string(),
            base_url: route.base_url,
            api_key,
            upstream_model: route.upstream_model,
            updated_at,
        }))
    }
}

fn seal(sealer: &Sealer, tenant: &str, id: &str, key: &ApiKey) -> Result<String> {
    Ok(sealer.seal(&api_key_aad(tenant, id), key.as_bytes())?)
}

fn open(sealer: &Sealer, tenant: &str, id: &str, sealed: &str) -> Result<ApiKey> {
    let plain = sealer.open(&api_key_aad(tenant, id), sealed)?;
    Ok(ApiKey::from_plaintext(plain)?)
}
