//! Storage: the self-hosted work queue (spec §3.2.2) and environment keys.
//!
//! A session on a `self_hosted` environment gets a work item when it is created and whenever
//! it receives input while it has no live item (queued, starting or active). Workers poll
//! items, acknowledge them and keep a lease with heartbeats; an item whose lease expired goes
//! back to the queue (and the sessions token its worker got stops working), so a lost worker
//! never holds a session forever. The rules live in `oma_core::work`; this module applies them
//! in transactions. Every write checks the state it read in its `WHERE` clause, so two nodes
//! or two workers racing for one item cannot both win.

use std::collections::BTreeMap;

use oma_api::work::{SessionWorkData, Work, WorkHeartbeat, WorkQueueStats};
use oma_core::work::{self as rules, Beat, WorkState};
use oma_core::{Error, ids, time};
use serde_json::{Map, Value};
use sqlx::{Any, AssertSqlSafe, Transaction};

use crate::tenants::hash_key;
use crate::{ListQuery, Listed, Result, Store, StoreError, from_json, to_json};

/// An environment key as listed (never the key itself).
#[derive(Debug, Clone)]
pub struct EnvironmentKeyInfo {
    pub id: String,
    pub tenant_id: String,
    pub environment_id: String,
    pub name: Option<String>,
    pub key_prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Whose an environment key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentKeyOwner {
    pub tenant_id: String,
    pub environment_id: String,
    pub key_id: String,
}

/// What a sessions token may act on: one work item and its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionsTokenOwner {
    pub environment_id: String,
    pub work_id: String,
    pub session_id: String,
}

/// A work item as stored.
#[derive(Debug, Clone)]
struct WorkRow {
    id: String,
    environment_id: String,
    session_id: String,
    state: WorkState,
    created_at: i64,
    polled_at: Option<i64>,
    acknowledged_at: Option<i64>,
    started_at: Option<i64>,
    last_heartbeat_at: Option<i64>,
    lease_ttl_seconds: Option<i64>,
    stop_requested_at: Option<i64>,
    stopped_at: Option<i64>,
    metadata: BTreeMap<String, String>,
}

const WORK_COLUMNS: &str = "id, environment_id, session_id, state, created_at, polled_at, \
     acknowledged_at, started_at, last_heartbeat_at, lease_ttl_seconds, stop_requested_at, \
     stopped_at, metadata";

type RawWorkRow = (
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    String,
);

impl WorkRow {
    fn from_raw(r: RawWorkRow) -> Result<Self> {
        let state = WorkState::parse(&r.3)
            .ok_or_else(|| StoreError::Corrupt(format!("work item state `{}`", r.3)))?;
        Ok(Self {
            id: r.0,
            environment_id: r.1,
            session_id: r.2,
            state,
            created_at: r.4,
            polled_at: r.5,
            acknowledged_at: r.6,
            started_at: r.7,
            last_heartbeat_at: r.8,
            lease_ttl_seconds: r.9,
            stop_requested_at: r.10,
            stopped_at: r.11,
            metadata: from_json(&r.12)?,
        })
    }

    fn last_heartbeat(&self) -> Option<String> {
        self.last_heartbeat_at.map(time::format_micros)
    }

    fn object(&self, secret: Option<String>) -> Work {
        let at = |t: Option<i64>| t.map(time::format_micros);
        Work {
            id: self.id.clone(),
            kind: "work".to_string(),
            acknowledged_at: at(self.acknowledged_at),
            created_at: time::format_micros(self.created_at),
            data: SessionWorkData {
                id: self.session_id.clone(),
                kind: "session".to_string(),
            },
            environment_id: self.environment_id.clone(),
            latest_heartbeat_at: at(self.last_heartbeat_at),
            metadata: self.metadata.clone(),
            secret,
            started_at: at(self.started_at),
            state: self.state.as_str().to_string(),
            stop_requested_at: at(self.stop_requested_at),
            stopped_at: at(self.stopped_at),
        }
    }
}

fn work_not_found(id: &str) -> Error {
    Error::missing("work item", id).with_code("work_not_found")
}

/// The session's live work item, if any, else a new queued one: called in the transaction that
/// creates a session or queues its input. Returns the id of a newly queued item.
pub(crate) async fn queue_for_session_in_tx(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    session_id: &str,
) -> Result<Option<String>> {
    let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT s.environment_id, e.body FROM sessions s LEFT JOIN environments e \
         ON e.id = s.environment_id AND e.tenant_id = s.tenant_id \
         WHERE s.tenant_id = $1 AND s.id = $2",
    )
    .bind(tenant)
    .bind(session_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((Some(env_id), Some(env_body))) = row else {
        return Ok(None);
    };
    let env: Value = from_json(&env_body)?;
    if env.pointer("/config/type").and_then(Value::as_str) != Some("self_hosted") {
        return Ok(None);
    }
    let live: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM work_items WHERE tenant_id = $1 AND session_id = $2 \
         AND state IN ('queued', 'starting', 'active') LIMIT 1",
    )
    .bind(tenant)
    .bind(session_id)
    .fetch_optional(&mut **tx)
    .await?;
    if live.is_some() {
        return Ok(None);
    }
    let id = ids::new_id(ids::WORK);
    sqlx::query(
        "INSERT INTO work_items (id, tenant_id, environment_id, session_id, state, created_at, \
         metadata) VALUES ($1, $2, $3, $4, 'queued', $5, '{}')",
    )
    .bind(&id)
    .bind(tenant)
    .bind(&env_id)
    .bind(session_id)
    .bind(time::now_micros())
    .execute(&mut **tx)
    .await?;
    Ok(Some(id))
}

/// Stops every item of a session that is archived or deleted: its worker learns it at its next
/// heartbeat.
pub(crate) async fn stop_for_session_in_tx(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    session_id: &str,
) -> Result<()> {
    let now = time::now_micros();
    sqlx::query(
        "UPDATE work_items SET state = 'stopped', stopped_at = $1, \
         stop_requested_at = COALESCE(stop_requested_at, $1), token_hash = NULL \
         WHERE tenant_id = $2 AND session_id = $3 AND state <> 'stopped'",
    )
    .bind(now)
    .bind(tenant)
    .bind(session_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    // ---- environment keys ------------------------------------------------------------------

    /// Creates a key for a self-hosted environment. Returns its listing and the key, which is
    /// never shown again (only its hash is kept).
    pub async fn create_environment_key(
        &self,
        tenant: &str,
        environment_id: &str,
        name: Option<&str>,
    ) -> Result<(EnvironmentKeyInfo, String)> {
        let env = self.environment(tenant, environment_id).await?;
        if env.archived_at.is_some() {
            return Err(Error::invalid(format!(
                "environment `{environment_id}` is archived; it takes no new keys"
            ))
            .with_code("environment_archived")
            .into());
        }
        if !matches!(
            env.spec.config,
            oma_api::environments::EnvironmentConfig::SelfHosted {}
        ) {
            return Err(Error::invalid(format!(
                "environment `{environment_id}` is a `{}` environment: keys are for the workers of \
                 `self_hosted` environments",
                env.spec.config.type_name()
            ))
            .into());
        }
        let key = rules::new_environment_key();
        let info = EnvironmentKeyInfo {
            id: ids::new_id(ids::ENVIRONMENT_KEY),
            tenant_id: tenant.to_string(),
            environment_id: environment_id.to_string(),
            name: name.map(str::to_string),
            key_prefix: key
                .chars()
                .take(rules::ENVIRONMENT_KEY_PREFIX.len() + 4)
                .collect(),
            created_at: time::now_micros(),
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO environment_keys (id, tenant_id, environment_id, name, key_hash, \
             key_prefix, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&info.id)
        .bind(tenant)
        .bind(environment_id)
        .bind(&info.name)
        .bind(hash_key(&key))
        .bind(&info.key_prefix)
        .bind(info.created_at)
        .execute(self.writer())
        .await?;
        Ok((info, key))
    }

    /// Environment keys, newest first; of one tenant and/or environment when given.
    pub async fn list_environment_keys(
        &self,
        tenant: Option<&str>,
        environment_id: Option<&str>,
    ) -> Result<Vec<EnvironmentKeyInfo>> {
        type Row = (
            String,
            String,
            String,
            Option<String>,
            String,
            i64,
            Option<i64>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, tenant_id, environment_id, name, key_prefix, created_at, revoked_at \
             FROM environment_keys WHERE ($1 = '' OR tenant_id = $1) \
             AND ($2 = '' OR environment_id = $2) ORDER BY created_at DESC, id DESC",
        )
        .bind(tenant.unwrap_or(""))
        .bind(environment_id.unwrap_or(""))
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| EnvironmentKeyInfo {
                id: r.0,
                tenant_id: r.1,
                environment_id: r.2,
                name: r.3,
                key_prefix: r.4,
                created_at: r.5,
                revoked_at: r.6,
            })
            .collect())
    }

    /// Revokes an environment key (of `tenant` when given). Revoking again changes nothing.
    pub async fn revoke_environment_key(&self, tenant: Option<&str>, key_id: &str) -> Result<()> {
        let found: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM environment_keys WHERE id = $1 AND ($2 = '' OR tenant_id = $2)",
        )
        .bind(key_id)
        .bind(tenant.unwrap_or(""))
        .fetch_optional(self.reader())
        .await?;
        if found.is_none() {
            return Err(Error::missing("environment key", key_id).into());
        }
        sqlx::query(
            "UPDATE environment_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(time::now_micros())
        .bind(key_id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The owner of a (hashed) environment key that is not revoked.
    pub async fn environment_key_owner(
        &self,
        key_hash: &str,
    ) -> Result<Option<EnvironmentKeyOwner>> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT tenant_id, environment_id, id FROM environment_keys \
             WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(self.reader())
        .await?;
        Ok(
            row.map(|(tenant_id, environment_id, key_id)| EnvironmentKeyOwner {
                tenant_id,
                environment_id,
                key_id,
            }),
        )
    }

    /// What a (hashed) sessions token of `tenant` may act on: the item whose newest poll issued
    /// it, while that item is not stopped.
    pub async fn sessions_token_owner(
        &self,
        tenant: &str,
        token_hash: &str,
    ) -> Result<Option<SessionsTokenOwner>> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT environment_id, id, session_id FROM work_items \
             WHERE tenant_id = $1 AND token_hash = $2 AND state <> 'stopped'",
        )
        .bind(tenant)
        .bind(token_hash)
        .fetch_optional(self.reader())
        .await?;
        Ok(
            row.map(|(environment_id, work_id, session_id)| SessionsTokenOwner {
                environment_id,
                work_id,
                session_id,
            }),
        )
    }

    /// The environment a session runs in (not found for an unknown session).
    pub async fn session_environment_id(
        &self,
        tenant: &str,
        session_id: &str,
    ) -> Result<Option<String>> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT environment_id FROM sessions WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(session_id)
                .fetch_optional(self.reader())
                .await?;
        Ok(row.ok_or_else(|| Error::missing("session", session_id))?.0)
    }

    // ---- the queue -------------------------------------------------------------------------

    /// Queues a work item for a self-hosted session that has no live one (see
    /// [`queue_for_session_in_tx`]). Returns the new item's id.
    pub async fn queue_session_work(
        &self,
        tenant: &str,
        session_id: &str,
    ) -> Result<Option<String>> {
        let mut tx = self.writer().begin().await?;
        let id = queue_for_session_in_tx(&mut tx, tenant, session_id).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Puts items whose lease expired back in the queue (stopping ones are stopped): their
    /// worker is gone. Their sessions tokens stop working.
    async fn reclaim_expired(&self, tenant: &str, environment_id: &str) -> Result<()> {
        let now = time::now_micros();
        sqlx::query(
            "UPDATE work_items SET state = 'queued', polled_at = NULL, acknowledged_at = NULL, \
             started_at = NULL, last_heartbeat_at = NULL, lease_ttl_seconds = NULL, \
             lease_expires_at = NULL, token_hash = NULL, worker_id = NULL \
             WHERE tenant_id = $1 AND environment_id = $2 AND state IN ('starting', 'active') \
             AND lease_expires_at < $3",
        )
        .bind(tenant)
        .bind(environment_id)
        .bind(now)
        .execute(self.writer())
        .await?;
        sqlx::query(
            "UPDATE work_items SET state = 'stopped', stopped_at = $3, token_hash = NULL \
             WHERE tenant_id = $1 AND environment_id = $2 AND state = 'stopping' \
             AND lease_expires_at < $3",
        )
        .bind(tenant)
        .bind(environment_id)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Offers the oldest claimable item to a worker: one never offered, or offered more than
    /// `reclaim_ms` ago and not acknowledged. Issues a new sessions token (returned inside the
    /// item's `secret`) and forgets the previous one. `None` when the queue is empty.
    pub async fn poll_work(
        &self,
        tenant: &str,
        environment_id: &str,
        reclaim_ms: i64,
        worker_id: Option<&str>,
    ) -> Result<Option<Work>> {
        self.reclaim_expired(tenant, environment_id).await?;
        let now = time::now_micros();
        if let Some(worker) = worker_id.filter(|w| !w.is_empty()) {
            sqlx::query(
                "INSERT INTO work_pollers (tenant_id, environment_id, worker_id, last_poll_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, environment_id, worker_id) \
                 DO UPDATE SET last_poll_at = excluded.last_poll_at",
            )
            .bind(tenant)
            .bind(environment_id)
            .bind(worker)
            .bind(now)
            .execute(self.writer())
            .await?;
        }
        let cutoff = now - reclaim_ms.saturating_mul(1000);
        // Another poller may take the candidate between the read and the write; the write
        // re-checks and the loop moves on to the next candidate.
        for _ in 0..8 {
            let sql = format!(
                "SELECT {WORK_COLUMNS} FROM work_items WHERE tenant_id = $1 AND environment_id = $2 \
                 AND state = 'queued' AND (polled_at IS NULL OR polled_at <= $3) \
                 ORDER BY created_at, id LIMIT 1"
            );
            let row: Option<RawWorkRow> = sqlx::query_as(AssertSqlSafe(sql))
                .bind(tenant)
                .bind(environment_id)
                .bind(cutoff)
                .fetch_optional(self.reader())
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let mut item = WorkRow::from_raw(row)?;
            let token = rules::new_sessions_token(tenant);
            let taken = sqlx::query(
                "UPDATE work_items SET polled_at = $1, token_hash = $2, worker_id = $3 \
                 WHERE tenant_id = $4 AND id = $5 AND state = 'queued' \
                 AND (polled_at IS NULL OR polled_at <= $6)",
            )
            .bind(now)
            .bind(hash_key(&token))
            .bind(worker_id)
            .bind(tenant)
            .bind(&item.id)
            .bind(cutoff)
            .execute(self.writer())
            .await?;
            if taken.rows_affected() == 1 {
                item.polled_at = Some(now);
                return Ok(Some(item.object(Some(rules::encode_secret(&token)))));
            }
        }
        Ok(None)
    }

    async fn work_row(&self, tenant: &str, environment_id: &str, work_id: &str) -> Result<WorkRow> {
        let sql = format!(
            "SELECT {WORK_COLUMNS} FROM work_items WHERE tenant_id = $1 AND environment_id = $2 \
             AND id = $3"
        );
        let row: Option<RawWorkRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(environment_id)
            .bind(work_id)
            .fetch_optional(self.writer())
            .await?;
        WorkRow::from_raw(row.ok_or_else(|| work_not_found(work_id))?)
    }

    /// Acknowledges an offered item: queued → starting, out of the queue, its lease begins
    /// (`default_ttl` seconds, until the first heartbeat says otherwise). Acknowledging an item
    /// already starting or active changes nothing; a stopped one cannot be acknowledged.
    pub async fn ack_work(
        &self,
        tenant: &str,
        environment_id: &str,
        work_id: &str,
        default_ttl: i64,
    ) -> Result<Work> {
        self.reclaim_expired(tenant, environment_id).await?;
        let item = self.work_row(tenant, environment_id, work_id).await?;
        match item.state {
            WorkState::Queued => {}
            WorkState::Starting | WorkState::Active => return Ok(item.object(None)),
            WorkState::Stopping | WorkState::Stopped => {
                return Err(Error::conflict(format!(
                    "work item `{work_id}` is {}; it cannot be acknowledged",
                    item.state.as_str()
                ))
                .with_code("work_not_queued")
                .into());
            }
        }
        if item.polled_at.is_none() {
            return Err(Error::conflict(format!(
                "work item `{work_id}` was not offered by a poll; poll for work, then acknowledge it"
            ))
            .with_code("work_not_polled")
            .into());
        }
        let now = time::now_micros();
        let ttl = rules::lease_ttl(None, default_ttl)?;
        let done = sqlx::query(
            "UPDATE work_items SET state = 'starting', acknowledged_at = $1, \
             lease_ttl_seconds = $2, lease_expires_at = $3 \
             WHERE tenant_id = $4 AND id = $5 AND state = 'queued' AND polled_at IS NOT NULL",
        )
        .bind(now)
        .bind(ttl)
        .bind(now + ttl * 1_000_000)
        .bind(tenant)
        .bind(work_id)
        .execute(self.writer())
        .await?;
        self.after_guarded_update(
            done.rows_affected(),
            tenant,
            environment_id,
            work_id,
            "acknowledged; poll again",
        )
        .await
    }

    /// The item after an UPDATE guarded by the state it was read in: a conflict when the
    /// guard no longer matched (another worker or a stop changed it in between).
    async fn after_guarded_update(
        &self,
        rows: u64,
        tenant: &str,
        environment_id: &str,
        work_id: &str,
        doing: &str,
    ) -> Result<Work> {
        if rows == 0 {
            return Err(Error::conflict(format!(
                "work item `{work_id}` changed while it was being {doing}"
            ))
            .into());
        }
        Ok(self
            .work_row(tenant, environment_id, work_id)
            .await?
            .object(None))
    }

    /// Records a heartbeat (see `oma_core::work::beat`): extends the lease by the desired (or
    /// default) TTL when `expected` is the item's last heartbeat, refuses with 412 otherwise,
    /// and reports without extending once the item is stopping or stopped.
    pub async fn heartbeat_work(
        &self,
        tenant: &str,
        environment_id: &str,
        work_id: &str,
        expected: Option<&str>,
        desired_ttl: Option<i64>,
        default_ttl: i64,
    ) -> Result<WorkHeartbeat> {
        let ttl = rules::lease_ttl(desired_ttl, default_ttl)?;
        self.reclaim_expired(tenant, environment_id).await?;
        let item = self.work_row(tenant, environment_id, work_id).await?;
        let current = item.last_heartbeat();
        let held_ttl = item.lease_ttl_seconds.unwrap_or(ttl);
        match rules::beat(item.state, current.as_deref(), expected) {
            Beat::Report => Ok(WorkHeartbeat {
                last_heartbeat: current.unwrap_or_default(),
                lease_extended: false,
                state: item.state.as_str().to_string(),
                ttl_seconds: held_ttl,
                kind: "work_heartbeat".to_string(),
            }),
            Beat::Refuse => {
                Err(
                    rules::heartbeat_refused(item.state, held_ttl, &current.unwrap_or_default())
                        .into(),
                )
            }
            Beat::Extend => {
                // Strictly after the previous beat, so every beat has its own value to echo.
                let now = time::now_micros().max(item.last_heartbeat_at.map_or(0, |t| t + 1));
                let done = sqlx::query(
                    "UPDATE work_items SET state = 'active', \
                     started_at = COALESCE(started_at, $1), last_heartbeat_at = $1, \
                     lease_ttl_seconds = $2, lease_expires_at = $3 \
                     WHERE tenant_id = $4 AND id = $5 AND state IN ('starting', 'active') \
                     AND ((last_heartbeat_at IS NULL AND $6 = 0) OR last_heartbeat_at = $6)",
                )
                .bind(now)
                .bind(ttl)
                .bind(now + ttl * 1_000_000)
                .bind(tenant)
                .bind(work_id)
                .bind(item.last_heartbeat_at.unwrap_or(0))
                .execute(self.writer())
                .await?;
                if done.rows_affected() == 0 {
                    // Another beat or a stop won the race: report what is there now.
                    let now_item = self.work_row(tenant, environment_id, work_id).await?;
                    return Err(rules::heartbeat_refused(
                        now_item.state,
                        now_item.lease_ttl_seconds.unwrap_or(ttl),
                        &now_item.last_heartbeat().unwrap_or_default(),
                    )
                    .into());
                }
                Ok(WorkHeartbeat {
                    last_heartbeat: time::format_micros(now),
                    lease_extended: true,
                    state: WorkState::Active.as_str().to_string(),
                    ttl_seconds: ttl,
                    kind: "work_heartbeat".to_string(),
                })
            }
        }
    }

    /// Stops an item: gracefully (running items go `stopping`, their worker winds down and
    /// stops them for good) or by force (`stopped` at once). 409 when already stopped.
    pub async fn stop_work(
        &self,
        tenant: &str,
        environment_id: &str,
        work_id: &str,
        force: bool,
    ) -> Result<Work> {
        self.reclaim_expired(tenant, environment_id).await?;
        let item = self.work_row(tenant, environment_id, work_id).await?;
        let next = rules::stop(item.state, force, work_id)?;
        let now = time::now_micros();
        let stopped_at = (next == WorkState::Stopped).then_some(now);
        let done = sqlx::query(
            "UPDATE work_items SET state = $1, stop_requested_at = COALESCE(stop_requested_at, $2), \
             stopped_at = $3, token_hash = CASE WHEN $1 = 'stopped' THEN NULL ELSE token_hash END \
             WHERE tenant_id = $4 AND id = $5 AND state = $6",
        )
        .bind(next.as_str())
        .bind(now)
        .bind(stopped_at)
        .bind(tenant)
        .bind(work_id)
        .bind(item.state.as_str())
        .execute(self.writer())
        .await?;
        self.after_guarded_update(
            done.rows_affected(),
            tenant,
            environment_id,
            work_id,
            "stopped; retry",
        )
        .await
    }

    /// Merges a metadata patch into an item (a string upserts, `null` deletes).
    pub async fn update_work_metadata(
        &self,
        tenant: &str,
        environment_id: &str,
        work_id: &str,
        patch: &Map<String, Value>,
    ) -> Result<Work> {
        let mut tx = self.writer().begin().await?;
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT metadata FROM work_items WHERE tenant_id = $1 AND environment_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(environment_id)
        .bind(work_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (metadata,) = row.ok_or_else(|| work_not_found(work_id))?;
        let mut bag: BTreeMap<String, String> = from_json(&metadata)?;
        oma_core::metadata::apply_patch(&mut bag, patch, false)?;
        sqlx::query("UPDATE work_items SET metadata = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(to_json(&bag)?)
            .bind(tenant)
            .bind(work_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(self
            .work_row(tenant, environment_id, work_id)
            .await?
            .object(None))
    }

    /// One item (without its secret).
    pub async fn get_work(
        &self,
        tenant: &str,
        environment_id: &str,
        work_id: &str,
    ) -> Result<Work> {
        self.reclaim_expired(tenant, environment_id).await?;
        Ok(self
            .work_row(tenant, environment_id, work_id)
            .await?
            .object(None))
    }

    /// An environment's items, newest first (without their secrets).
    pub async fn list_work(
        &self,
        tenant: &str,
        environment_id: &str,
        q: &ListQuery,
    ) -> Result<Listed> {
        self.reclaim_expired(tenant, environment_id).await?;
        let sql = format!(
            "SELECT {WORK_COLUMNS} FROM work_items WHERE tenant_id = $1 AND environment_id = $2 \
             AND {} {} LIMIT $5",
            q.after_clause("created_at", "id", 3),
            q.order_clause("created_at", "id"),
        );
        let (k, i) = q.after_binds();
        let rows: Vec<RawWorkRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(environment_id)
            .bind(k)
            .bind(i)
            .bind(q.fetch_limit())
            .fetch_all(self.reader())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let item = WorkRow::from_raw(r)?;
            out.push((
                item.created_at,
                item.id.clone(),
                to_json(&item.object(None))?,
            ));
        }
        Ok(Listed::from_rows(q, out))
    }

    /// The queue's depth, pending items, oldest waiting item and recent pollers.
    pub async fn work_stats(
        &self,
        tenant: &str,
        environment_id: &str,
        reclaim_ms: i64,
    ) -> Result<WorkQueueStats> {
        self.reclaim_expired(tenant, environment_id).await?;
        let now = time::now_micros();
        let cutoff = now - reclaim_ms.saturating_mul(1000);
        let (depth, pending, oldest): (i64, i64, Option<i64>) = sqlx::query_as(
            "SELECT \
               COUNT(CASE WHEN polled_at IS NULL OR polled_at <= $3 THEN 1 END), \
               COUNT(CASE WHEN polled_at > $3 THEN 1 END), \
               MIN(created_at) \
             FROM work_items WHERE tenant_id = $1 AND environment_id = $2 AND state = 'queued'",
        )
        .bind(tenant)
        .bind(environment_id)
        .bind(cutoff)
        .fetch_one(self.reader())
        .await?;
        let (workers,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM work_pollers WHERE tenant_id = $1 AND environment_id = $2 \
             AND last_poll_at > $3",
        )
        .bind(tenant)
        .bind(environment_id)
        .bind(now - rules::POLLING_WINDOW_MICROS)
        .fetch_one(self.reader())
        .await?;
        Ok(WorkQueueStats {
            depth,
            pending,
            oldest_queued_at: oldest.map(time::format_micros),
            workers_polling: Some(workers),
            kind: "work_queue_stats".to_string(),
        })
    }
}
