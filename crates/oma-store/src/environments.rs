//! Storage: environments (spec §3.2). One row per environment; `body` is its API object.

use oma_api::environments::Environment;
use oma_core::environments::{self as rules, EnvironmentSpec, UpdateEnvironmentParams};
use oma_core::{ids, time};

use sqlx::AssertSqlSafe;

use crate::{ListQuery, Listed, Result, Store, from_json, to_json};

/// An environment as other resources need it (sessions check `archived_at` and read the
/// configuration to provision a sandbox).
#[derive(Debug, Clone)]
pub struct StoredEnvironment {
    pub id: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub archived_at: Option<i64>,
    pub spec: EnvironmentSpec,
}

type EnvRow = (i64, i64, Option<i64>, String);

impl Store {
    /// Creates an environment and returns its API object.
    pub async fn create_environment(&self, tenant: &str, spec: &EnvironmentSpec) -> Result<String> {
        let id = ids::new_id(ids::ENVIRONMENT);
        let now = time::now_micros();
        let body = to_json(&spec.to_object(&id, now, now, None))?;
        sqlx::query(
            "INSERT INTO environments (id, tenant_id, created_at, updated_at, archived_at, body) \
             VALUES ($1, $2, $3, $3, NULL, $4)",
        )
        .bind(&id)
        .bind(tenant)
        .bind(now)
        .bind(&body)
        .execute(self.writer())
        .await?;
        Ok(body)
    }

    /// The environment's API object.
    pub async fn get_environment(&self, tenant: &str, id: &str) -> Result<String> {
        let body = self
            .body_of(crate::rows::BodyTable::Environments, tenant, id)
            .await?;
        Ok(body.ok_or_else(|| rules::not_found(id))?)
    }

    /// The environment with its parsed configuration.
    pub async fn environment(&self, tenant: &str, id: &str) -> Result<StoredEnvironment> {
        let row: Option<EnvRow> = sqlx::query_as(
            "SELECT created_at, updated_at, archived_at, body FROM environments \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        let (created_at, updated_at, archived_at, body) =
            row.ok_or_else(|| rules::not_found(id))?;
        let obj: Environment = from_json(&body)?;
        Ok(StoredEnvironment {
            id: id.to_string(),
            created_at,
            updated_at,
            archived_at,
            spec: EnvironmentSpec::from_object(&obj),
        })
    }

    /// Applies an update. Archived environments are read-only; an update that changes nothing
    /// leaves `updated_at` alone.
    pub async fn update_environment(
        &self,
        tenant: &str,
        id: &str,
        params: UpdateEnvironmentParams,
    ) -> Result<String> {
        let mut tx = self.writer().begin().await?;
        let row: Option<EnvRow> = sqlx::query_as(
            "SELECT created_at, updated_at, archived_at, body FROM environments \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let (created_at, _updated_at, archived_at, body) =
            row.ok_or_else(|| rules::not_found(id))?;
        if archived_at.is_some() {
            return Err(rules::archived(id).into());
        }
        let current = EnvironmentSpec::from_object(&from_json::<Environment>(&body)?);
        let next = current.update(params)?;
        if next == current {
            return Ok(body);
        }
        let now = time::now_micros();
        let new_body = to_json(&next.to_object(id, created_at, now, None))?;
        sqlx::query(
            "UPDATE environments SET updated_at = $1, body = $2 WHERE tenant_id = $3 AND id = $4",
        )
        .bind(now)
        .bind(&new_body)
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(new_body)
    }

    /// Archives an environment (idempotent: archiving again keeps the first time).
    pub async fn archive_environment(&self, tenant: &str, id: &str) -> Result<String> {
        let mut tx = self.writer().begin().await?;
        let row: Option<EnvRow> = sqlx::query_as(
            "SELECT created_at, updated_at, archived_at, body FROM environments \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let (created_at, updated_at, archived_at, body) =
            row.ok_or_else(|| rules::not_found(id))?;
        if archived_at.is_some() {
            return Ok(body);
        }
        let now = time::now_micros();
        let spec = EnvironmentSpec::from_object(&from_json::<Environment>(&body)?);
        let new_body = to_json(&spec.to_object(id, created_at, updated_at, Some(now)))?;
        sqlx::query(
            "UPDATE environments SET archived_at = $1, body = $2 WHERE tenant_id = $3 AND id = $4",
        )
        .bind(now)
        .bind(&new_body)
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(new_body)
    }

    /// Deletes an environment.
    pub async fn delete_environment(&self, tenant: &str, id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM environments WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(self.writer())
            .await?;
        if done.rows_affected() == 0 {
            return Err(rules::not_found(id).into());
        }
        Ok(())
    }

    /// Environments, newest first by default; archived ones only when asked for.
    pub async fn list_environments(
        &self,
        tenant: &str,
        include_archived: bool,
        q: &ListQuery,
    ) -> Result<Listed> {
        let sql = format!(
            "SELECT created_at, id, body FROM environments WHERE tenant_id = $1 \
             AND ($2 = 1 OR archived_at IS NULL) AND {} {} LIMIT $5",
            q.after_clause("created_at", "id", 3),
            q.order_clause("created_at", "id"),
        );
        let (k, i) = q.after_binds();
        let rows: Vec<(i64, String, String)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(i64::from(include_archived))
            .bind(k)
            .bind(i)
            .bind(q.fetch_limit())
            .fetch_all(self.reader())
            .await?;
        Ok(Listed::from_rows(q, rows))
    }
}
