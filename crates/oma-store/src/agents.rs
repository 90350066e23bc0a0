//! Storage: agents and their versions.

use std::collections::HashMap;

use oma_core::agents::{AgentConfig, ResolvedAgentRef, UpdateAgentParams, to_object};
use oma_core::{Error, ids, time};

use sqlx::AssertSqlSafe;

use crate::batch_insert::{NewRow, Val};
use crate::{ListQuery, Listed, Result, Store, from_json, to_json};

/// Filters of `GET /v1/agents`.
#[derive(Debug, Clone, Default)]
pub struct AgentFilter {
    pub include_archived: bool,
    pub created_gte: Option<i64>,
    pub created_lte: Option<i64>,
}

/// One resolved agent version, for sessions that pin it.
#[derive(Debug, Clone)]
pub struct AgentVersion {
    pub id: String,
    pub version: i64,
    pub archived_at: Option<i64>,
    pub config: AgentConfig,
}

type AgentRow = (i64, i64, i64, Option<i64>, String);

impl Store {
    pub async fn create_agent(&self, tenant: &str, cfg: &AgentConfig) -> Result<String> {
        let mut resolved = cfg.clone();
        self.resolve_agent_refs(tenant, &mut resolved, None).await?;
        let cfg = &resolved;
        let id = ids::new_id(ids::AGENT);
        let now = time::now_micros();
        let body = to_json(&to_object(&id, 1, now, now, None, cfg))?;
        // Written with the agents other requests create meanwhile (`batch_insert`).
        self.insert_rows(vec![
            NewRow {
                table: "agents",
                columns: "(id, tenant_id, version, created_at, updated_at, body)",
                values: vec![
                    id.as_str().into(),
                    tenant.into(),
                    Val::Int(1),
                    now.into(),
                    now.into(),
                    body.as_str().into(),
                ],
            },
            NewRow {
                table: "agent_versions",
                columns: "(agent_id, version, tenant_id, updated_at, config)",
                values: vec![
                    id.as_str().into(),
                    Val::Int(1),
                    tenant.into(),
                    now.into(),
                    to_json(cfg)?.into(),
                ],
            },
        ])
        .await?;
        Ok(body)
    }

    /// The agent object: the current version, or version `version`.
    pub async fn get_agent(&self, tenant: &str, id: &str, version: Option<i64>) -> Result<String> {
        match version {
            None => {
                let body = self
                    .body_of(crate::rows::BodyTable::Agents, tenant, id)
                    .await?;
                Ok(body.ok_or_else(|| missing(id))?)
            }
            Some(v) => {
                let av = self.agent_version(tenant, id, Some(v)).await?;
                let (created_at, updated_at) = self.agent_times(tenant, id, v).await?;
                to_json(&to_object(
                    id,
                    v,
                    created_at,
                    updated_at,
                    av.archived_at,
                    &av.config,
                ))
            }
        }
    }

    /// A version's configuration (the current one when `version` is `None`).
    pub async fn agent_version(
        &self,
        tenant: &str,
        id: &str,
        version: Option<i64>,
    ) -> Result<AgentVersion> {
        let row: Option<(i64, Option<i64>, String)> = sqlx::query_as(
            "SELECT v.version, a.archived_at, v.config FROM agents a \
             JOIN agent_versions v ON v.agent_id = a.id \
             WHERE a.tenant_id = $1 AND a.id = $2 AND v.version = COALESCE($3, a.version)",
        )
        .bind(tenant)
        .bind(id)
        .bind(version)
        .fetch_optional(self.reader())
        .await?;
        let (version, archived_at, config) = row.ok_or_else(|| match version {
            Some(v) => Error::not_found(format!("agent `{id}` has no version {v}")),
            None => Error::missing("agent", id),
        })?;
        Ok(AgentVersion {
            id: id.to_string(),
            version,
            archived_at,
            config: from_json(&config)?,
        })
    }

    /// Checks and pins the agents a multiagent roster refers to: they must exist for this
    /// tenant, and an unpinned reference resolves to that agent's current version.
    async fn resolve_agent_refs(
        &self,
        tenant: &str,
        cfg: &mut AgentConfig,
        own_id: Option<&str>,
    ) -> Result<()> {
        let refs = cfg.agent_refs_to_resolve();
        if refs.is_empty() {
            return Ok(());
        }
        let mut found = HashMap::new();
        for (ref_id, version) in refs {
            if own_id == Some(ref_id.as_str()) {
                continue;
            }
            match self.agent_version(tenant, &ref_id, version).await {
                Ok(av) => {
                    found.insert(
                        (ref_id, version),
                        ResolvedAgentRef {
                            version: av.version,
                            archived: av.archived_at.is_some(),
                            has_multiagent: av.config.multiagent.is_some(),
                            inference_geo: av.config.model.inference_geo.clone(),
                        },
                    );
                }
                Err(crate::StoreError::Domain(e)) if e.kind == oma_core::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        cfg.resolve_agent_refs(own_id, &found)?;
        Ok(())
    }

    async fn agent_times(&self, tenant: &str, id: &str, version: i64) -> Result<(i64, i64)> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT a.created_at, v.updated_at FROM agents a JOIN agent_versions v ON v.agent_id = a.id \
             WHERE a.tenant_id = $1 AND a.id = $2 AND v.version = $3",
        )
        .bind(tenant)
        .bind(id)
        .bind(version)
        .fetch_optional(self.reader())
        .await?;
        Ok(row.ok_or_else(|| missing(id))?)
    }

    /// Applies an update. A new version is written only when the configuration changes.
    pub async fn update_agent(
        &self,
        tenant: &str,
        id: &str,
        params: UpdateAgentParams,
    ) -> Result<String> {
        let mut tx = self.writer().begin().await?;
        let row: Option<AgentRow> = sqlx::query_as(
            "SELECT version, created_at, updated_at, archived_at, body FROM agents WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let (version, created_at, _updated_at, archived_at, body) =
            row.ok_or_else(|| missing(id))?;
        if archived_at.is_some() {
            return Err(Error::invalid(format!(
                "agent `{id}` is archived: archived agents are read-only"
            ))
            .into());
        }
        if let Some(expected) = params.version
            && expected != version
        {
            return Err(Error::conflict(format!(
                "agent `{id}` is at version {version}, not {expected}: retrieve it and retry"
            ))
            .into());
        }
        let config: String = sqlx::query_scalar(
            "SELECT config FROM agent_versions WHERE agent_id = $1 AND version = $2",
        )
        .bind(id)
        .bind(version)
        .fetch_one(&mut *tx)
        .await?;
        let current: AgentConfig = from_json(&config)?;
        let mut next = current.update(params)?;
        if next.multiagent != current.multiagent {
            self.resolve_agent_refs(tenant, &mut next, Some(id)).await?;
        }
        if next == current {
            return Ok(body);
        }
        let now = time::now_micros();
        let new_version = version + 1;
        let new_body = to_json(&to_object(
            id,
            new_version,
            created_at,
            now,
            archived_at,
            &next,
        ))?;
        sqlx::query(
            "INSERT INTO agent_versions (agent_id, version, tenant_id, updated_at, config) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(new_version)
        .bind(tenant)
        .bind(now)
        .bind(to_json(&next)?)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE agents SET version = $1, updated_at = $2, body = $3 WHERE tenant_id = $4 AND id = $5")
            .bind(new_version)
            .bind(now)
            .bind(&new_body)
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(new_body)
    }

    /// Archives an agent (idempotent: archiving again keeps the first time).
    pub async fn archive_agent(&self, tenant: &str, id: &str) -> Result<String> {
        let mut tx = self.writer().begin().await?;
        let row: Option<AgentRow> = sqlx::query_as(
            "SELECT version, created_at, updated_at, archived_at, body FROM agents WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let (version, created_at, updated_at, archived_at, body) =
            row.ok_or_else(|| missing(id))?;
        if archived_at.is_some() {
            return Ok(body);
        }
        let now = time::now_micros();
        let config: String = sqlx::query_scalar(
            "SELECT config FROM agent_versions WHERE agent_id = $1 AND version = $2",
        )
        .bind(id)
        .bind(version)
        .fetch_one(&mut *tx)
        .await?;
        let cfg: AgentConfig = from_json(&config)?;
        let new_body = to_json(&to_object(
            id,
            version,
            created_at,
            updated_at,
            Some(now),
            &cfg,
        ))?;
        sqlx::query(
            "UPDATE agents SET archived_at = $1, body = $2 WHERE tenant_id = $3 AND id = $4",
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

    pub async fn list_agents(
        &self,
        tenant: &str,
        f: &AgentFilter,
        q: &ListQuery,
    ) -> Result<Listed> {
        let sql = format!(
            "SELECT created_at, id, body FROM agents WHERE tenant_id = $1 \
             AND ($2 = 1 OR archived_at IS NULL) \
             AND ($3 IS NULL OR created_at >= $3) AND ($4 IS NULL OR created_at <= $4) \
             AND {} {} LIMIT $7",
            q.after_clause("created_at", "id", 5),
            q.order_clause("created_at", "id"),
        );
        let (k, i) = q.after_binds();
        let rows: Vec<(i64, String, String)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(i64::from(f.include_archived))
            .bind(f.created_gte)
            .bind(f.created_lte)
            .bind(k)
            .bind(i)
            .bind(q.fetch_limit())
            .fetch_all(self.reader())
            .await?;
        Ok(Listed::from_rows(q, rows))
    }

    /// Versions of an agent, newest first.
    pub async fn list_agent_versions(
        &self,
        tenant: &str,
        id: &str,
        q: &ListQuery,
    ) -> Result<Listed> {
        let agent: Option<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT created_at, archived_at FROM agents WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        let (created_at, archived_at) = agent.ok_or_else(|| missing(id))?;
        let sql = format!(
            "SELECT version, agent_id, updated_at, config FROM agent_versions WHERE agent_id = $1 AND tenant_id = $2 \
             AND {} {} LIMIT $5",
            q.after_clause("version", "agent_id", 3),
            q.order_clause("version", "agent_id"),
        );
        let (k, i) = q.after_binds();
        let rows: Vec<(i64, String, i64, String)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .bind(tenant)
            .bind(k)
            .bind(i)
            .bind(q.fetch_limit())
            .fetch_all(self.reader())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (version, agent_id, updated_at, config) in rows {
            let cfg: AgentConfig = from_json(&config)?;
            let body = to_json(&to_object(
                &agent_id,
                version,
                created_at,
                updated_at,
                archived_at,
                &cfg,
            ))?;
            out.push((version, agent_id, body));
        }
        Ok(Listed::from_rows(q, out))
    }
}

fn missing(id: &str) -> Error {
    Error::missing("agent", id)
}
