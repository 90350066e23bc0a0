//! Storage: sessions, their resources and their threads (spec §3.3).
//!
//! A session row keeps the session object (`body`) beside the columns lists filter on and the
//! live state that other writers change (`status`, `archived_at`, `updated_at`, and
//! `last_seq`, advanced by the event log). Reads overlay the columns and the current
//! resources onto the body (`oma_core::sessions::render_session`), so a status change by the
//! runtime never has to rewrite the body.
//!
//! Writers that read-modify-write a session first touch its row (`UPDATE … RETURNING`): on
//! PostgreSQL that takes the row lock, so concurrent updates of one session serialise instead
//! of losing each other's changes; on SQLite writers are serialised anyway.

use std::collections::{HashMap, HashSet};

use oma_api::sessions::{
    FileResource, GithubRepositoryResource, MemoryStoreResource, Session, SessionDeleted,
    SessionResource, SessionResourceDeleted, SessionStats, SessionStatus,
};
use oma_core::events::NewEvent;
use oma_core::seal::Sealer;
use oma_core::sessions::{
    CreateSession, ListCursor, MAX_FILES, ResourceParam, RosterAgent, SessionRowState,
    UpdateSessionParams, apply_update, check_budgetable, empty_usage, memory_mount_path,
    outcome_evaluations, primary_thread, render_session, render_thread, roster_refs, session_agent,
};
use oma_core::{Error, ErrorKind, ids, time};
use serde_json::{Map, Value};
use sqlx::{Any, AssertSqlSafe, Transaction};

use crate::events::{StoredEvent, append_in_tx};
use crate::{ListQuery, Listed, Result, Store, StoreError, from_json, to_json};

/// Filters of `GET /v1/sessions`.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub agent_id: Option<String>,
    /// Only applies together with `agent_id`.
    pub agent_version: Option<i64>,
    pub created_gt: Option<i64>,
    pub created_gte: Option<i64>,
    pub created_lt: Option<i64>,
    pub created_lte: Option<i64>,
    pub deployment_id: Option<String>,
    pub include_archived: bool,
    pub memory_store_id: Option<String>,
    pub statuses: Vec<SessionStatus>,
}

/// A page of the sessions list with cursors both ways.
#[derive(Debug, Clone, Default)]
pub struct SessionPage {
    pub items: Vec<String>,
    pub next: Option<ListCursor>,
    pub prev: Option<ListCursor>,
}

/// What a deleted session leaves for the caller to tell its live subscribers.
#[derive(Debug, Clone)]
pub struct DeletedSession {
    /// The `session_deleted` object.
    pub body: String,
    /// The last `seq` the session's log reached.
    pub last_seq: i64,
}

/// `(status, archived_at, created_at, updated_at, last_seq, body)`.
type LockedRow = (String, Option<i64>, i64, i64, i64, String);
/// `(id, status, archived_at, created_at, updated_at, body)`.
type SessionRow = (String, String, Option<i64>, i64, i64, String);
/// `(status, archived_at, updated_at, body)`.
type ThreadRow = (String, Option<i64>, i64, String);
/// `(parent_thread_id, status, archived_at, updated_at, body)`.
type ChildThreadRow = (Option<String>, String, Option<i64>, i64, String);

impl Store {
    // -----------------------------------------------------------------------------------------
    // Sessions
    // -----------------------------------------------------------------------------------------

    /// Creates a session: resolves the agent snapshot, checks every referenced object, and
    /// writes the session, its resources, its primary thread and its initial events in one
    /// transaction. Returns the session's id, its object and the appended events (to publish).
    pub async fn create_session(
        &self,
        tenant: &str,
        req: CreateSession,
        sealer: &Sealer,
    ) -> Result<(String, String, Vec<StoredEvent>)> {
        // The agent: the pinned or latest version, with overrides and the roster resolved.
        let av = self
            .agent_version(tenant, &req.agent.id, req.agent.version)
            .await?;
        if av.archived_at.is_some() {
            return Err(Error::invalid(format!(
                "agent `{}` is archived; archived agents cannot start new sessions",
                av.id
            ))
            .into());
        }
        let cfg = match &req.agent.overrides {
            Some(o) => o.apply(&av.config)?,
            None => av.config.clone(),
        };
        let mut roster = HashMap::new();
        for (rid, rversion) in roster_refs(&cfg, &av.id, av.version) {
            match self.agent_version(tenant, &rid, Some(rversion)).await {
                Ok(r) => {
                    roster.insert(
                        (rid, rversion),
                        RosterAgent {
                            config: r.config,
                            archived: r.archived_at.is_some(),
                        },
                    );
                }
                // `session_agent` reports the missing member with its path.
                Err(StoreError::Domain(e)) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let agent = session_agent(&av.id, av.version, &cfg, &roster)?;
        if req.budget.is_some() {
            check_budgetable(&agent)?;
        }

        self.check_environment(tenant, &req.environment_id).await?;
        if self
            .environment_is_self_hosted(tenant, &req.environment_id)
            .await?
        {
            check_self_hosted_resources(&req.resources)?;
            // A child thread's tool calls would run on the worker, which follows the session
            // stream, where they are not shown (semantics §10): refused until workers can
            // follow threads.
            if agent.multiagent.is_some() {
                return Err(Error::invalid(
                    "agent.multiagent: multi-agent sessions need a cloud environment; a \
                     self_hosted environment's worker cannot run a child thread's tools yet",
                )
                .into());
            }
        }
        for vault in &req.vault_ids {
            self.check_vault(tenant, vault).await?;
        }

        // Resources: every referenced object must exist; memory stores mount by name.
        let now = time::now_micros();
        let at = time::format_micros(now);
        let mut taken: HashSet<String> = req
            .resources
            .iter()
            .filter_map(|r| match r {
                ResourceParam::GithubRepository { mount_path, .. }
                | ResourceParam::File { mount_path, .. } => Some(mount_path.clone()),
                ResourceParam::MemoryStore { .. } => None,
            })
            .collect();
        let mut resources: Vec<NewResource> = Vec::with_capacity(req.resources.len());
        for r in &req.resources {
            resources.push(match r {
                ResourceParam::GithubRepository {
                    url,
                    authorization_token,
                    checkout,
                    mount_path,
                } => {
                    let id = ids::new_id(ids::RESOURCE);
                    let secret = match authorization_token {
                        Some(token) => {
                            Some(sealer.seal(&resource_aad(tenant, &id), token.as_bytes())?)
                        }
                        None => None,
                    };
                    NewResource {
                        ref_id: None,
                        secret,
                        object: SessionResource::GithubRepository(GithubRepositoryResource {
                            id,
                            created_at: at.clone(),
                            mount_path: mount_path.clone(),
                            updated_at: at.clone(),
                            url: url.clone(),
                            checkout: checkout.clone(),
                        }),
                    }
                }
                ResourceParam::File {
                    file_id,
                    mount_path,
                } => {
                    self.check_file(tenant, file_id, now).await?;
                    NewResource {
                        ref_id: Some(file_id.clone()),
                        secret: None,
                        object: SessionResource::File(FileResource {
                            id: ids::new_id(ids::RESOURCE),
                            created_at: at.clone(),
                            file_id: file_id.clone(),
                            mount_path: mount_path.clone(),
                            updated_at: at.clone(),
                        }),
                    }
                }
                ResourceParam::MemoryStore {
                    memory_store_id,
                    access,
                    instructions,
                } => {
                    let (name, description) = self
                        .memory_store_for_session(tenant, memory_store_id)
                        .await?;
                    let mount = memory_mount_path(&name, &taken);
                    taken.insert(mount.clone());
                    NewResource {
                        ref_id: Some(memory_store_id.clone()),
                        secret: None,
                        object: SessionResource::MemoryStore(MemoryStoreResource {
                            memory_store_id: memory_store_id.clone(),
                            access: Some(*access),
                            description: Some(description),
                            instructions: instructions.clone(),
                            mount_path: Some(mount),
                            name: Some(name),
                        }),
                    }
                }
            });
        }

        let id = ids::new_id(ids::SESSION);
        let status = req.initial_status();
        let session = Session {
            id: id.clone(),
            kind: "session".to_string(),
            agent,
            archived_at: None,
            budget: req.budget,
            created_at: at.clone(),
            environment_id: req.environment_id,
            metadata: req.metadata,
            outcome_evaluations: outcome_evaluations(&req.initial_events),
            // Resources are read from their table on every read (see `render_session`).
            resources: Vec::new(),
            stats: SessionStats {
                active_seconds: Some(0.0),
                duration_seconds: None,
            },
            status,
            title: req.title,
            updated_at: at,
            usage: empty_usage(),
            vault_ids: req.vault_ids,
            deployment_id: None,
        };
        let thread = primary_thread(&ids::new_id(ids::THREAD), &id, &session.agent, status, now);

        let mut tx = self.writer().begin().await?;
        sqlx::query(
            "INSERT INTO sessions (id, tenant_id, status, archived_at, last_seq, agent_id, agent_version, \
             environment_id, deployment_id, created_at, updated_at, body) \
             VALUES ($1, $2, $3, NULL, 0, $4, $5, $6, NULL, $7, $7, $8)",
        )
        .bind(&id)
        .bind(tenant)
        .bind(status.as_str())
        .bind(&session.agent.id)
        .bind(session.agent.version)
        .bind(&session.environment_id)
        .bind(now)
        .bind(to_json(&session)?)
        .execute(&mut *tx)
        .await?;
        let mut resource_bodies = Vec::with_capacity(resources.len());
        for (position, r) in resources.into_iter().enumerate() {
            resource_bodies
                .push(insert_resource(&mut tx, tenant, &id, position as i64, now, r).await?);
        }
        sqlx::query(
            "INSERT INTO session_threads (id, tenant_id, session_id, parent_thread_id, status, archived_at, \
             created_at, updated_at, body) VALUES ($1, $2, $3, NULL, $4, NULL, $5, $5, $6)",
        )
        .bind(&thread.id)
        .bind(tenant)
        .bind(&id)
        .bind(status.as_str())
        .bind(now)
        .bind(to_json(&thread)?)
        .execute(&mut *tx)
        .await?;
        // Initial events wait in the input queue like posted ones: the session's host echoes
        // them into the log as it processes them.
        crate::runtime::enqueue_in_tx(&mut tx, tenant, &id, req.initial_events).await?;
        // A self-hosted session waits for a worker from the start (spec §3.2.2).
        crate::work::queue_for_session_in_tx(&mut tx, tenant, &id).await?;
        tx.commit().await?;
        let stored: Vec<StoredEvent> = Vec::new();

        let row = SessionRowState {
            status: status.as_str().to_string(),
            archived_at: None,
            created_at: now,
            updated_at: now,
        };
        let body = render(&to_json(&session)?, &row, &resource_bodies)?;
        Ok((id, body, stored))
    }

    /// The session object.
    pub async fn get_session(&self, tenant: &str, id: &str) -> Result<String> {
        let row: Option<SessionRow> = sqlx::query_as(
            "SELECT id, status, archived_at, created_at, updated_at, body FROM sessions WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        let row = row.ok_or_else(|| missing(id))?;
        let mut rendered = self.render_rows(tenant, vec![row]).await?;
        rendered.pop().ok_or_else(|| missing(id).into())
    }

    /// Applies an update (semantics §4.6). A change appends a `session.updated` event, returned
    /// for publishing; a no-op returns the session unchanged and appends nothing.
    pub async fn update_session(
        &self,
        tenant: &str,
        id: &str,
        params: UpdateSessionParams,
    ) -> Result<(String, Vec<StoredEvent>)> {
        let mut tx = self.writer().begin().await?;
        let (status_s, archived_at, created_at, updated_at, _, body) =
            lock_session(&mut tx, tenant, id).await?;
        let status = parse_status(&status_s)?;
        let mut current: Session = from_json(&body)?;
        current.archived_at = archived_at.map(time::format_micros);
        current.status = status;
        let updated = apply_update(&current, status, params)?;
        if !updated.changed() {
            let resources = resources_of(&mut tx, tenant, id).await?;
            drop(tx);
            let row = SessionRowState {
                status: status_s,
                archived_at,
                created_at,
                updated_at,
            };
            return Ok((render(&body, &row, &resources)?, Vec::new()));
        }
        let now = time::now_micros().max(updated_at);
        let mut next = updated.session;
        next.updated_at = time::format_micros(now);
        let new_body = to_json(&next)?;
        sqlx::query(
            "UPDATE sessions SET body = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4",
        )
        .bind(&new_body)
        .bind(now)
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if updated.changes.contains_key("agent") {
            // The primary thread runs the session's agent: keep its snapshot in step.
            let thread: Option<(String, String)> = sqlx::query_as(
                "SELECT id, body FROM session_threads \
                 WHERE tenant_id = $1 AND session_id = $2 AND parent_thread_id IS NULL",
            )
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((tid, tbody)) = thread {
                let mut v: Value = from_json(&tbody)?;
                if let Some(o) = v.as_object_mut() {
                    o.insert(
                        "agent".into(),
                        serde_json::to_value(next.agent.thread_agent()).map_err(corrupt)?,
                    );
                }
                sqlx::query("UPDATE session_threads SET body = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4")
                    .bind(to_json(&v)?)
                    .bind(now)
                    .bind(tenant)
                    .bind(&tid)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let stored = append_in_tx(
            self,
            &mut tx,
            tenant,
            id,
            vec![oma_core::events::session_updated(updated.changes)],
        )
        .await?;
        let resources = resources_of(&mut tx, tenant, id).await?;
        tx.commit().await?;
        let row = SessionRowState {
            status: status_s,
            archived_at,
            created_at,
            updated_at: now,
        };
        Ok((render(&new_body, &row, &resources)?, stored))
    }

    /// Archives a session: it keeps its history, accepts no new events, and is `terminated`.
    /// A running session cannot be archived (interrupt it first). Archiving again is a no-op.
    pub async fn archive_session(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<(String, Vec<StoredEvent>)> {
        let mut tx = self.writer().begin().await?;
        let (status_s, archived_at, created_at, updated_at, _, body) =
            lock_session(&mut tx, tenant, id).await?;
        if archived_at.is_some() {
            let resources = resources_of(&mut tx, tenant, id).await?;
            drop(tx);
            let row = SessionRowState {
                status: status_s,
                archived_at,
                created_at,
                updated_at,
            };
            return Ok((render(&body, &row, &resources)?, Vec::new()));
        }
        let status = parse_status(&status_s)?;
        if status.is_active() {
            return Err(Error::invalid(format!(
                "session `{id}` is {}; send a user.interrupt and wait for it to go idle before archiving it",
                status.as_str()
            ))
            .into());
        }
        let now = time::now_micros().max(updated_at);
        let terminated = SessionStatus::Terminated.as_str();
        sqlx::query(
            "UPDATE sessions SET archived_at = $1, updated_at = $1, status = $2 WHERE tenant_id = $3 AND id = $4",
        )
        .bind(now)
        .bind(terminated)
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE session_threads SET status = $1, updated_at = $2 WHERE tenant_id = $3 AND session_id = $4 \
             AND status <> $1",
        )
        .bind(terminated)
        .bind(now)
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let mut events = Vec::new();
        if status != SessionStatus::Terminated {
            events.push(NewEvent::new("session.status_terminated", Map::new()));
        }
        let stored = append_in_tx(self, &mut tx, tenant, id, events).await?;
        let resources = resources_of(&mut tx, tenant, id).await?;
        crate::work::stop_for_session_in_tx(&mut tx, tenant, id).await?;
        tx.commit().await?;
        let row = SessionRowState {
            status: terminated.to_string(),
            archived_at: Some(now),
            created_at,
            updated_at: now,
        };
        Ok((render(&body, &row, &resources)?, stored))
    }

    /// Deletes a session with its resources, threads and events. A running session cannot be
    /// deleted. Files the caller uploaded, memory stores, vaults and agents are untouched.
    pub async fn delete_session(&self, tenant: &str, id: &str) -> Result<DeletedSession> {
        let mut tx = self.writer().begin().await?;
        let (status_s, _, _, _, last_seq, _) = lock_session(&mut tx, tenant, id).await?;
        let status = parse_status(&status_s)?;
        if status.is_active() {
            return Err(Error::invalid(format!(
                "session `{id}` is {}; send a user.interrupt and wait for it to go idle before deleting it",
                status.as_str()
            ))
            .into());
        }
        for sql in [
            "DELETE FROM events WHERE tenant_id = $1 AND session_id = $2",
            "DELETE FROM session_inputs WHERE tenant_id = $1 AND session_id = $2",
            "DELETE FROM model_streams WHERE tenant_id = $1 AND session_id = $2",
            "DELETE FROM context_compactions WHERE tenant_id = $1 AND session_id = $2",
            "DELETE FROM session_resources WHERE tenant_id = $1 AND session_id = $2",
            "DELETE FROM session_threads WHERE tenant_id = $1 AND session_id = $2",
            "DELETE FROM session_leases WHERE tenant_id = $1 AND session_id = $2",
            "DELETE FROM sessions WHERE tenant_id = $1 AND id = $2",
        ] {
            if sql.starts_with("DELETE FROM sessions ") {
                // Its worker learns at its next heartbeat that there is nothing left to run.
                crate::work::stop_for_session_in_tx(&mut tx, tenant, id).await?;
            }
            sqlx::query(sql)
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        // Streams of the session on other nodes see `session.deleted` and end.
        let note = crate::notify::EventsNote {
            tenant: tenant.to_string(),
            session: id.to_string(),
            from: last_seq + 1,
            to: last_seq + 1,
            node: String::new(),
            deleted: true,
        };
        crate::notify::notify_events_in_tx(self, &mut tx, &note).await?;
        tx.commit().await?;
        Ok(DeletedSession {
            body: to_json(&SessionDeleted { id: id.to_string() })?,
            last_seq,
        })
    }

    /// A page of sessions, newest first unless `desc` is false. Archived sessions are left out
    /// unless the filter includes them. `after` is a cursor from a previous page, followed in
    /// the direction it was made for (a `prev_page` walks back but keeps the list's order).
    pub async fn list_sessions(
        &self,
        tenant: &str,
        f: &SessionFilter,
        limit: i64,
        desc: bool,
        after: Option<&ListCursor>,
    ) -> Result<SessionPage> {
        let desc = after.map_or(desc, |c| c.desc);
        let backward = after.is_some_and(|c| c.backward);
        // The order rows are read in: the list's order, or its reverse when walking back.
        let scan_desc = desc != backward;
        let mut sql = String::from(
            "SELECT id, status, archived_at, created_at, updated_at, body FROM sessions s WHERE tenant_id = $1 \
             AND ($2 = 1 OR archived_at IS NULL) \
             AND ($3 IS NULL OR agent_id = $3) \
             AND ($4 IS NULL OR agent_version = $4) \
             AND ($5 IS NULL OR created_at > $5) AND ($6 IS NULL OR created_at >= $6) \
             AND ($7 IS NULL OR created_at < $7) AND ($8 IS NULL OR created_at <= $8) \
             AND ($9 IS NULL OR deployment_id = $9) \
             AND ($10 IS NULL OR EXISTS (SELECT 1 FROM session_resources r WHERE r.tenant_id = s.tenant_id \
                  AND r.session_id = s.id AND r.kind = 'memory_store' AND r.ref_id = $10))",
        );
        let mut next_param = 11;
        if !f.statuses.is_empty() {
            let placeholders: Vec<String> = (0..f.statuses.len())
                .map(|i| format!("${}", next_param + i))
                .collect();
            sql.push_str(&format!(" AND status IN ({})", placeholders.join(", ")));
            next_param += f.statuses.len();
        }
        if after.is_some() {
            let op = if scan_desc { '<' } else { '>' };
            let (k, i) = (next_param, next_param + 1);
            sql.push_str(&format!(
                " AND (created_at {op} ${k} OR (created_at = ${k} AND id {op} ${i}))"
            ));
            next_param += 2;
        }
        let dir = if scan_desc { "DESC" } else { "ASC" };
        sql.push_str(&format!(
            " ORDER BY created_at {dir}, id {dir} LIMIT ${next_param}"
        ));

        let agent_version = f.agent_id.as_ref().and(f.agent_version);
        let mut query = sqlx::query_as::<_, SessionRow>(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(i64::from(f.include_archived))
            .bind(f.agent_id.clone())
            .bind(agent_version)
            .bind(f.created_gt)
            .bind(f.created_gte)
            .bind(f.created_lt)
            .bind(f.created_lte)
            .bind(f.deployment_id.clone())
            .bind(f.memory_store_id.clone());
        for s in &f.statuses {
            query = query.bind(s.as_str());
        }
        if let Some(c) = after {
            query = query.bind(c.key).bind(c.id.clone());
        }
        let mut rows = query.bind(limit + 1).fetch_all(self.reader()).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit.max(0) as usize);
        if backward {
            rows.reverse();
        }
        let cursor = |row: &SessionRow, backward: bool| ListCursor {
            key: row.3,
            id: row.0.clone(),
            desc,
            backward,
        };
        let (next, prev) = if backward {
            (
                rows.last().map(|r| cursor(r, false)),
                if more {
                    rows.first().map(|r| cursor(r, true))
                } else {
                    None
                },
            )
        } else {
            (
                if more {
                    rows.last().map(|r| cursor(r, false))
                } else {
                    None
                },
                if after.is_some() {
                    rows.first().map(|r| cursor(r, true))
                } else {
                    None
                },
            )
        };
        let items = self.render_rows(tenant, rows).await?;
        Ok(SessionPage { items, next, prev })
    }

    /// Renders session rows: the body with the live columns and current resources.
    async fn render_rows(&self, tenant: &str, rows: Vec<SessionRow>) -> Result<Vec<String>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (0..rows.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT session_id, body FROM session_resources WHERE tenant_id = $1 AND session_id IN ({}) \
             ORDER BY session_id, position",
            placeholders.join(", ")
        );
        let mut query = sqlx::query_as::<_, (String, String)>(AssertSqlSafe(sql)).bind(tenant);
        for row in &rows {
            query = query.bind(row.0.clone());
        }
        let mut by_session: HashMap<String, Vec<String>> = HashMap::new();
        for (sid, body) in query.fetch_all(self.reader()).await? {
            by_session.entry(sid).or_default().push(body);
        }
        rows.into_iter()
            .map(|(id, status, archived_at, created_at, updated_at, body)| {
                let resources = by_session.remove(&id).unwrap_or_default();
                render(
                    &body,
                    &SessionRowState {
                        status,
                        archived_at,
                        created_at,
                        updated_at,
                    },
                    &resources,
                )
            })
            .collect()
    }

    // -----------------------------------------------------------------------------------------
    // Resources
    // -----------------------------------------------------------------------------------------

    /// A session's resources in the order they were attached.
    pub async fn list_session_resources(
        &self,
        tenant: &str,
        session_id: &str,
        q: &ListQuery,
    ) -> Result<Listed> {
        self.session_exists(tenant, session_id).await?;
        let sql = format!(
            "SELECT position, id, body FROM session_resources WHERE tenant_id = $1 AND session_id = $2 AND {} {} \
             LIMIT $5",
            q.after_clause("position", "id", 3),
            q.order_clause("position", "id"),
        );
        let (k, i) = q.after_binds();
        let rows: Vec<(i64, String, String)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(session_id)
            .bind(k)
            .bind(i)
            .bind(q.fetch_limit())
            .fetch_all(self.reader())
            .await?;
        Ok(Listed::from_rows(q, rows))
    }

    pub async fn get_session_resource(
        &self,
        tenant: &str,
        session_id: &str,
        resource_id: &str,
    ) -> Result<String> {
        self.session_exists(tenant, session_id).await?;
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body FROM session_resources WHERE tenant_id = $1 AND session_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(session_id)
        .bind(resource_id)
        .fetch_optional(self.reader())
        .await?;
        Ok(body.ok_or_else(|| missing_resource(session_id, resource_id))?)
    }

    /// Mounts another file into a session (`POST …/resources`: files only).
    pub async fn add_session_resource(
        &self,
        tenant: &str,
        session_id: &str,
        param: ResourceParam,
    ) -> Result<String> {
        let ResourceParam::File {
            file_id,
            mount_path,
        } = param
        else {
            return Err(Error::invalid(
                "only `file` resources can be added to an existing session",
            )
            .into());
        };
        if self.session_is_self_hosted(tenant, session_id).await? {
            return Err(self_hosted_resource_error("file").into());
        }
        let now = time::now_micros();
        self.check_file(tenant, &file_id, now).await?;
        let mut tx = self.writer().begin().await?;
        let (status, archived_at, ..) = lock_session(&mut tx, tenant, session_id).await?;
        check_open(session_id, &status, archived_at)?;
        let existing: Vec<(String, String)> = sqlx::query_as(
            "SELECT kind, body FROM session_resources WHERE tenant_id = $1 AND session_id = $2",
        )
        .bind(tenant)
        .bind(session_id)
        .fetch_all(&mut *tx)
        .await?;
        if existing.iter().filter(|(kind, _)| kind == "file").count() >= MAX_FILES {
            return Err(Error::invalid(format!(
                "session `{session_id}` already has {MAX_FILES} files mounted"
            ))
            .into());
        }
        for (_, body) in &existing {
            let r: SessionResource = from_json(body)?;
            if r.mount_path() == Some(mount_path.as_str()) {
                return Err(Error::invalid(format!(
                    "mount_path: `{mount_path}` is already used by another resource"
                ))
                .into());
            }
        }
        let position: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(position) FROM session_resources WHERE tenant_id = $1 AND session_id = $2",
        )
        .bind(tenant)
        .bind(session_id)
        .fetch_one(&mut *tx)
        .await?;
        let at = time::format_micros(now);
        let resource = NewResource {
            ref_id: Some(file_id.clone()),
            secret: None,
            object: SessionResource::File(FileResource {
                id: ids::new_id(ids::RESOURCE),
                created_at: at.clone(),
                file_id,
                mount_path,
                updated_at: at,
            }),
        };
        let body = insert_resource(
            &mut tx,
            tenant,
            session_id,
            position.map_or(0, |p| p + 1),
            now,
            resource,
        )
        .await?;
        touch_session(&mut tx, tenant, session_id, now).await?;
        tx.commit().await?;
        Ok(body)
    }

    /// Rotates the authorization token of a `github_repository` resource.
    pub async fn rotate_session_resource_token(
        &self,
        tenant: &str,
        session_id: &str,
        resource_id: &str,
        token: &str,
        sealer: &Sealer,
    ) -> Result<String> {
        let mut tx = self.writer().begin().await?;
        lock_session(&mut tx, tenant, session_id).await?;
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT kind, body FROM session_resources WHERE tenant_id = $1 AND session_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(session_id)
        .bind(resource_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (kind, body) = row.ok_or_else(|| missing_resource(session_id, resource_id))?;
        let SessionResource::GithubRepository(mut repo) = from_json::<SessionResource>(&body)?
        else {
            return Err(Error::invalid(format!(
                "resource `{resource_id}` is a `{kind}` resource; only github_repository resources have a token to rotate"
            ))
            .into());
        };
        let now = time::now_micros();
        repo.updated_at = time::format_micros(now);
        let new_body = to_json(&SessionResource::GithubRepository(repo))?;
        let sealed = sealer.seal(&resource_aad(tenant, resource_id), token.as_bytes())?;
        sqlx::query(
            "UPDATE session_resources SET secret = $1, updated_at = $2, body = $3 \
             WHERE tenant_id = $4 AND session_id = $5 AND id = $6",
        )
        .bind(&sealed)
        .bind(now)
        .bind(&new_body)
        .bind(tenant)
        .bind(session_id)
        .bind(resource_id)
        .execute(&mut *tx)
        .await?;
        touch_session(&mut tx, tenant, session_id, now).await?;
        tx.commit().await?;
        Ok(new_body)
    }

    /// Unmounts a file resource. Repositories and memory stores are fixed for the session's
    /// life (semantics §4.5).
    pub async fn delete_session_resource(
        &self,
        tenant: &str,
        session_id: &str,
        resource_id: &str,
    ) -> Result<String> {
        let mut tx = self.writer().begin().await?;
        let (status, archived_at, ..) = lock_session(&mut tx, tenant, session_id).await?;
        let kind: Option<String> = sqlx::query_scalar(
            "SELECT kind FROM session_resources WHERE tenant_id = $1 AND session_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(session_id)
        .bind(resource_id)
        .fetch_optional(&mut *tx)
        .await?;
        let kind = kind.ok_or_else(|| missing_resource(session_id, resource_id))?;
        if kind != "file" {
            return Err(Error::invalid(format!(
                "resource `{resource_id}` is a `{kind}` resource; repositories and memory stores stay mounted for \
                 the session's life, only files can be removed"
            ))
            .into());
        }
        check_open(session_id, &status, archived_at)?;
        sqlx::query(
            "DELETE FROM session_resources WHERE tenant_id = $1 AND session_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(session_id)
        .bind(resource_id)
        .execute(&mut *tx)
        .await?;
        touch_session(&mut tx, tenant, session_id, time::now_micros()).await?;
        tx.commit().await?;
        to_json(&SessionResourceDeleted {
            id: resource_id.to_string(),
        })
    }

    /// The sealed authorization token of a repository resource, opened (for the runtime that
    /// clones it). `None` when the resource has no token.
    pub async fn session_resource_token(
        &self,
        tenant: &str,
        session_id: &str,
        resource_id: &str,
        sealer: &Sealer,
    ) -> Result<Option<String>> {
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT secret FROM session_resources WHERE tenant_id = $1 AND session_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(session_id)
        .bind(resource_id)
        .fetch_optional(self.reader())
        .await?;
        let (secret,) = row.ok_or_else(|| missing_resource(session_id, resource_id))?;
        match secret {
            None => Ok(None),
            Some(sealed) => {
                let raw = sealer.open(&resource_aad(tenant, resource_id), &sealed)?;
                String::from_utf8(raw)
                    .map(Some)
                    .map_err(|_| StoreError::Corrupt("sealed token is not UTF-8".into()))
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Threads
    // -----------------------------------------------------------------------------------------

    /// A session's threads, oldest first, optionally only those with one of `statuses`.
    pub async fn list_session_threads(
        &self,
        tenant: &str,
        session_id: &str,
        statuses: &[SessionStatus],
        q: &ListQuery,
    ) -> Result<Listed> {
        self.session_exists(tenant, session_id).await?;
        let mut sql = String::from(
            "SELECT id, status, archived_at, created_at, updated_at, body FROM session_threads \
             WHERE tenant_id = $1 AND session_id = $2",
        );
        let mut next_param = 3;
        if !statuses.is_empty() {
            let placeholders: Vec<String> = (0..statuses.len())
                .map(|i| format!("${}", next_param + i))
                .collect();
            sql.push_str(&format!(" AND status IN ({})", placeholders.join(", ")));
            next_param += statuses.len();
        }
        sql.push_str(&format!(
            " AND {} {} LIMIT ${}",
            q.after_clause("created_at", "id", next_param),
            q.order_clause("created_at", "id"),
            next_param + 2
        ));
        let mut query = sqlx::query_as::<_, SessionRow>(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(session_id);
        for s in statuses {
            query = query.bind(s.as_str());
        }
        let (k, i) = q.after_binds();
        let rows = query
            .bind(k)
            .bind(i)
            .bind(q.fetch_limit())
            .fetch_all(self.reader())
            .await?;
        let rows = rows
            .into_iter()
            .map(|(id, status, archived_at, created_at, updated_at, body)| {
                Ok((
                    created_at,
                    id,
                    render_thread_body(&body, &status, archived_at, updated_at)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Listed::from_rows(q, rows))
    }

    pub async fn get_session_thread(
        &self,
        tenant: &str,
        session_id: &str,
        thread_id: &str,
    ) -> Result<String> {
        self.session_exists(tenant, session_id).await?;
        let row: Option<ThreadRow> = sqlx::query_as(
            "SELECT status, archived_at, updated_at, body FROM session_threads \
             WHERE tenant_id = $1 AND session_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(session_id)
        .bind(thread_id)
        .fetch_optional(self.reader())
        .await?;
        let (status, archived_at, updated_at, body) =
            row.ok_or_else(|| missing_thread(session_id, thread_id))?;
        render_thread_body(&body, &status, archived_at, updated_at)
    }

    /// Archives a child thread. The primary thread lives and ends with its session, and a
    /// running thread must be interrupted first. Archiving again is a no-op.
    pub async fn archive_session_thread(
        &self,
        tenant: &str,
        session_id: &str,
        thread_id: &str,
    ) -> Result<(String, Vec<StoredEvent>)> {
        let mut tx = self.writer().begin().await?;
        lock_session(&mut tx, tenant, session_id).await?;
        let row: Option<ChildThreadRow> = sqlx::query_as(
            "SELECT parent_thread_id, status, archived_at, updated_at, body FROM session_threads \
             WHERE tenant_id = $1 AND session_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(session_id)
        .bind(thread_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (parent, status, archived_at, updated_at, body) =
            row.ok_or_else(|| missing_thread(session_id, thread_id))?;
        if parent.is_none() {
            return Err(Error::invalid(format!(
                "thread `{thread_id}` is the primary thread of session `{session_id}`; it cannot be archived on its \
                 own (archive the session instead)"
            ))
            .into());
        }
        if archived_at.is_some() {
            return Ok((
                render_thread_body(&body, &status, archived_at, updated_at)?,
                Vec::new(),
            ));
        }
        if parse_status(&status)?.is_active() {
            return Err(Error::invalid(format!(
                "thread `{thread_id}` is {status}; interrupt it and wait for it to go idle before archiving it"
            ))
            .into());
        }
        let now = time::now_micros().max(updated_at);
        let terminated = SessionStatus::Terminated.as_str();
        sqlx::query(
            "UPDATE session_threads SET archived_at = $1, updated_at = $1, status = $2, delegation = NULL \
             WHERE tenant_id = $3 AND session_id = $4 AND id = $5",
        )
        .bind(now)
        .bind(terminated)
        .bind(tenant)
        .bind(session_id)
        .bind(thread_id)
        .execute(&mut *tx)
        .await?;
        // Announced on the thread's stream and cross-posted to the session's.
        let agent_name = from_json::<Value>(&body)?
            .pointer("/agent/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut fields = Map::new();
        fields.insert("session_thread_id".into(), Value::String(thread_id.into()));
        fields.insert("agent_name".into(), Value::String(agent_name));
        let mut ended = NewEvent::new("session.thread_status_terminated", fields);
        ended.thread_id = Some(thread_id.to_string());
        let stored = append_in_tx(self, &mut tx, tenant, session_id, vec![ended]).await?;
        tx.commit().await?;
        Ok((
            render_thread_body(&body, terminated, Some(now), now)?,
            stored,
        ))
    }

    // -----------------------------------------------------------------------------------------
    // Checks on objects other modules own (read with plain SQL so sessions do not depend on
    // their code)
    // -----------------------------------------------------------------------------------------

    async fn session_exists(&self, tenant: &str, id: &str) -> Result<()> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT id FROM sessions WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .fetch_optional(self.reader())
                .await?;
        found.map(|_| ()).ok_or_else(|| missing(id).into())
    }

    pub(crate) async fn check_environment(&self, tenant: &str, id: &str) -> Result<()> {
        let row: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT archived_at FROM environments WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .fetch_optional(self.reader())
                .await?;
        match row {
            None => Err(Error::missing("environment", id)
                .with_code("environment_not_found")
                .into()),
            Some((Some(_),)) => Err(Error::invalid(format!(
                "environment `{id}` is archived; archived environments cannot host new sessions"
            ))
            .with_code("environment_archived")
            .into()),
            Some((None,)) => Ok(()),
        }
    }

    async fn environment_is_self_hosted(&self, tenant: &str, id: &str) -> Result<bool> {
        let body: Option<String> =
            sqlx::query_scalar("SELECT body FROM environments WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .fetch_optional(self.reader())
                .await?;
        let kind = body
            .and_then(|b| serde_json::from_str::<Value>(&b).ok())
            .and_then(|v| {
                v.pointer("/config/type")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
        Ok(kind.as_deref() == Some("self_hosted"))
    }

    async fn check_vault(&self, tenant: &str, id: &str) -> Result<()> {
        let row: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT archived_at FROM vaults WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .fetch_optional(self.reader())
                .await?;
        match row {
            None => Err(Error::missing("vault", id).into()),
            Some((Some(_),)) => Err(Error::invalid(format!(
                "vault_ids: vault `{id}` is archived and cannot be attached"
            ))
            .into()),
            Some((None,)) => Ok(()),
        }
    }

    async fn check_file(&self, tenant: &str, id: &str, now: i64) -> Result<()> {
        let row: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT expires_at FROM files WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .fetch_optional(self.reader())
                .await?;
        match row {
            None => Err(Error::missing("file", id).into()),
            Some((Some(expires),)) if expires <= now => {
                Err(Error::not_found(format!("file `{id}` has expired"))
                    .with_code("file_expired")
                    .into())
            }
            Some(_) => Ok(()),
        }
    }

    /// The name and description of a memory store that may be attached (exists, not archived).
    async fn memory_store_for_session(&self, tenant: &str, id: &str) -> Result<(String, String)> {
        let row: Option<(Option<i64>, String)> = sqlx::query_as(
            "SELECT archived_at, body FROM memory_stores WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        let (archived_at, body) = row.ok_or_else(|| Error::missing("memory store", id))?;
        if archived_at.is_some() {
            return Err(Error::invalid(format!(
                "memory store `{id}` is archived (read-only) and cannot be attached to new sessions"
            ))
            .into());
        }
        let v: Value = from_json(&body)?;
        let text = |key: &str| {
            v.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Ok((text("name"), text("description")))
    }
}

/// A resource about to be inserted.
struct NewResource {
    ref_id: Option<String>,
    secret: Option<String>,
    object: SessionResource,
}

impl NewResource {
    fn id(&self) -> &str {
        match &self.object {
            SessionResource::GithubRepository(r) => &r.id,
            SessionResource::File(r) => &r.id,
            SessionResource::MemoryStore(r) => &r.memory_store_id,
        }
    }
}

async fn insert_resource(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    session_id: &str,
    position: i64,
    now: i64,
    r: NewResource,
) -> Result<String> {
    let body = to_json(&r.object)?;
    sqlx::query(
        "INSERT INTO session_resources (session_id, id, tenant_id, kind, position, ref_id, created_at, updated_at, \
         secret, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9)",
    )
    .bind(session_id)
    .bind(r.id())
    .bind(tenant)
    .bind(r.object.type_name())
    .bind(position)
    .bind(r.ref_id.clone())
    .bind(now)
    .bind(r.secret.clone())
    .bind(&body)
    .execute(&mut **tx)
    .await?;
    Ok(body)
}

/// Locks a session row for a read-modify-write and returns its state. Another tenant's
/// session is not found.
async fn lock_session(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    id: &str,
) -> Result<LockedRow> {
    let row: Option<LockedRow> = sqlx::query_as(
        "UPDATE sessions SET updated_at = updated_at WHERE tenant_id = $1 AND id = $2 \
         RETURNING status, archived_at, created_at, updated_at, last_seq, body",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.ok_or_else(|| missing(id))?)
}

async fn touch_session(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    id: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE sessions SET updated_at = $1 WHERE tenant_id = $2 AND id = $3 AND updated_at < $1",
    )
    .bind(now)
    .bind(tenant)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn resources_of(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    id: &str,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT body FROM session_resources WHERE tenant_id = $1 AND session_id = $2 ORDER BY position",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(&mut **tx)
    .await?)
}

/// Resources change only on sessions that still accept work.
fn check_open(session_id: &str, status: &str, archived_at: Option<i64>) -> Result<()> {
    if archived_at.is_some() {
        return Err(Error::invalid(format!(
            "session `{session_id}` is archived; its resources can no longer change"
        ))
        .into());
    }
    if status == SessionStatus::Terminated.as_str() {
        return Err(Error::invalid(format!(
            "session `{session_id}` is terminated; its resources can no longer change"
        ))
        .into());
    }
    Ok(())
}

fn render(body: &str, row: &SessionRowState, resources: &[String]) -> Result<String> {
    let mut v: Value = from_json(body)?;
    let resources = resources
        .iter()
        .map(|r| from_json::<Value>(r))
        .collect::<Result<Vec<_>>>()?;
    render_session(&mut v, row, resources, time::now_micros());
    to_json(&v)
}

fn render_thread_body(
    body: &str,
    status: &str,
    archived_at: Option<i64>,
    updated_at: i64,
) -> Result<String> {
    let mut v: Value = from_json(body)?;
    render_thread(&mut v, status, archived_at, updated_at);
    to_json(&v)
}

fn parse_status(s: &str) -> Result<SessionStatus> {
    SessionStatus::parse(s)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown session status `{s}`")))
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// The associated data a resource's sealed token is bound to.
pub(crate) fn resource_aad(tenant: &str, resource_id: &str) -> String {
    format!("{tenant}/{resource_id}")
}

fn missing(id: &str) -> Error {
    Error::missing("session", id)
}

fn missing_resource(session_id: &str, id: &str) -> Error {
    Error::not_found(format!(
        "resource `{id}` not found in session `{session_id}`"
    ))
}

fn missing_thread(session_id: &str, id: &str) -> Error {
    Error::not_found(format!("thread `{id}` not found in session `{session_id}`"))
}

/// A self-hosted session's tools run on the worker's machine, which oma does not provision:
/// only memory stores (which the worker syncs through the API) can be attached.
fn check_self_hosted_resources(resources: &[ResourceParam]) -> Result<()> {
    for (i, r) in resources.iter().enumerate() {
        let kind = match r {
            ResourceParam::MemoryStore { .. } => continue,
            ResourceParam::File { .. } => "file",
            ResourceParam::GithubRepository { .. } => "github_repository",
        };
        let mut e = self_hosted_resource_error(kind);
        e.message = format!("resources.{i}: {}", e.message);
        return Err(e.into());
    }
    Ok(())
}

fn self_hosted_resource_error(kind: &str) -> Error {
    Error::invalid(format!(
        "`{kind}` resources need a cloud environment; sessions on a self_hosted environment \
         can only have `memory_store` resources"
    ))
}

#[cfg(test)]
mod tests {
    //! Store behaviour the HTTP suite cannot reach directly (child threads, sealed tokens,
    //! both-way paging edges), on SQLite always and on PostgreSQL when `OMA_TEST_DATABASE_URL`
    //! is set. Tenants are unique per run, so runs can share a database.

    use super::*;
    use crate::Backend;
    use oma_core::agents::{AgentConfig, CreateAgentParams};
    use oma_core::sessions::CreateSessionParams;
    use serde_json::json;

    struct Db {
        store: Store,
        _dir: Option<tempfile::TempDir>,
    }

    async fn open(backend: Backend) -> Db {
        let (url, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                (
                    format!("sqlite://{}", dir.path().join("oma.db").display()),
                    Some(dir),
                )
            }
            Backend::Postgres => (std::env::var("OMA_TEST_DATABASE_URL").unwrap(), None),
        };
        let store = Store::connect(&url).await.unwrap();
        store.migrate_up().await.unwrap();
        Db { store, _dir: dir }
    }

    fn backends() -> Vec<Backend> {
        let mut v = vec![Backend::Sqlite];
        match std::env::var("OMA_TEST_DATABASE_URL") {
            Ok(u) if !u.is_empty() => v.push(Backend::Postgres),
            _ => {
                eprintln!("note: OMA_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant")
            }
        }
        v
    }

    fn sealer() -> Sealer {
        Sealer::from_base64(&oma_core::seal::generate_root_secret()).unwrap()
    }

    /// A tenant with an agent and an environment.
    async fn setup(store: &Store) -> (String, String, String) {
        let tenant = ids::new_id("tsess");
        let p: CreateAgentParams =
            serde_json::from_value(json!({"name": "a", "model": "claude-opus-4-8"})).unwrap();
        let agent: Value = from_json(
            &store
                .create_agent(&tenant, &AgentConfig::create(p).unwrap())
                .await
                .unwrap(),
        )
        .unwrap();
        let env = ids::new_id(ids::ENVIRONMENT);
        sqlx::query(
            "INSERT INTO environments (id, tenant_id, created_at, updated_at, archived_at, body) \
             VALUES ($1, $2, 0, 0, NULL, '{}')",
        )
        .bind(&env)
        .bind(&tenant)
        .execute(store.writer())
        .await
        .unwrap();
        (tenant, agent["id"].as_str().unwrap().to_string(), env)
    }

    fn request(v: Value) -> CreateSession {
        let p: CreateSessionParams = serde_json::from_value(v).unwrap();
        CreateSession::parse(p).unwrap()
    }

    #[tokio::test]
    async fn child_threads_archive_but_the_primary_does_not() {
        for b in backends() {
            let db = open(b).await;
            let s = &db.store;
            let (tenant, agent, env) = setup(s).await;
            let (sid, _, _) = s
                .create_session(
                    &tenant,
                    request(json!({"agent": agent, "environment_id": env})),
                    &sealer(),
                )
                .await
                .unwrap();
            let primary: Value = from_json(
                &s.list_session_threads(&tenant, &sid, &[], &ListQuery::new(10, false, None))
                    .await
                    .unwrap()
                    .items[0],
            )
            .unwrap();
            let primary_id = primary["id"].as_str().unwrap();

            let child = ids::new_id(ids::THREAD);
            let mut body = primary.clone();
            body["id"] = json!(child);
            body["parent_thread_id"] = json!(primary_id);
            sqlx::query(
                "INSERT INTO session_threads (id, tenant_id, session_id, parent_thread_id, status, archived_at, \
                 created_at, updated_at, body) VALUES ($1, $2, $3, $4, 'running', NULL, $5, $5, $6)",
            )
            .bind(&child)
            .bind(&tenant)
            .bind(&sid)
            .bind(primary_id)
            .bind(time::now_micros() + 1)
            .bind(body.to_string())
            .execute(s.writer())
            .await
            .unwrap();

            let e = s
                .archive_session_thread(&tenant, &sid, primary_id)
                .await
                .unwrap_err();
            assert!(
                matches!(e, StoreError::Domain(ref e) if e.kind == ErrorKind::InvalidRequest),
                "{e}"
            );
            // A running child must be interrupted first.
            assert!(
                s.archive_session_thread(&tenant, &sid, &child)
                    .await
                    .is_err()
            );
            sqlx::query("UPDATE session_threads SET status = 'idle' WHERE id = $1")
                .bind(&child)
                .execute(s.writer())
                .await
                .unwrap();
            let archived: Value = from_json(
                &s.archive_session_thread(&tenant, &sid, &child)
                    .await
                    .unwrap()
                    .0,
            )
            .unwrap();
            assert_eq!(archived["status"], "terminated");
            assert!(archived["archived_at"].is_string());
            let again: Value = from_json(
                &s.archive_session_thread(&tenant, &sid, &child)
                    .await
                    .unwrap()
                    .0,
            )
            .unwrap();
            assert_eq!(again["archived_at"], archived["archived_at"]);

            let q = ListQuery::new(1, false, None);
            let first = s
                .list_session_threads(&tenant, &sid, &[], &q)
                .await
                .unwrap();
            assert_eq!(first.items.len(), 1);
            let q = ListQuery::new(1, false, first.next.clone());
            let second = s
                .list_session_threads(&tenant, &sid, &[], &q)
                .await
                .unwrap();
            assert!(second.items[0].contains(&child) && second.next.is_none());
            let idle = s
                .list_session_threads(
                    &tenant,
                    &sid,
                    &[SessionStatus::Terminated],
                    &ListQuery::new(10, false, None),
                )
                .await
                .unwrap();
            assert_eq!(idle.items.len(), 1);
            // Another tenant sees nothing.
            assert!(
                s.get_session_thread("someone-else", &sid, &child)
                    .await
                    .is_err()
            );
        }
    }

    #[tokio::test]
    async fn repository_tokens_are_sealed_and_rotated() {
        for b in backends() {
            let db = open(b).await;
            let s = &db.store;
            let sealer = sealer();
            let (tenant, agent, env) = setup(s).await;
            let req = request(json!({"agent": agent, "environment_id": env, "resources": [
                {"type": "github_repository", "url": "https://github.com/acme/w", "authorization_token": "ghp_first"},
                {"type": "github_repository", "url": "https://github.com/acme/x"}
            ]}));
            let (sid, body, _) = s.create_session(&tenant, req, &sealer).await.unwrap();
            assert!(!body.contains("ghp_first"));
            let v: Value = from_json(&body).unwrap();
            let (with, without) = (
                v["resources"][0]["id"].as_str().unwrap(),
                v["resources"][1]["id"].as_str().unwrap(),
            );
            let stored: String =
                sqlx::query_scalar("SELECT secret FROM session_resources WHERE id = $1")
                    .bind(with)
                    .fetch_one(s.reader())
                    .await
                    .unwrap();
            assert!(!stored.contains("ghp_first"), "stored sealed");
            assert_eq!(
                s.session_resource_token(&tenant, &sid, with, &sealer)
                    .await
                    .unwrap()
                    .as_deref(),
                Some("ghp_first")
            );
            assert_eq!(
                s.session_resource_token(&tenant, &sid, without, &sealer)
                    .await
                    .unwrap(),
                None
            );

            s.rotate_session_resource_token(&tenant, &sid, without, "ghp_second", &sealer)
                .await
                .unwrap();
            assert_eq!(
                s.session_resource_token(&tenant, &sid, without, &sealer)
                    .await
                    .unwrap()
                    .as_deref(),
                Some("ghp_second")
            );
            // The egress proxy and the runtime read them all at once, in resource order.
            let repos = s
                .session_repositories(&tenant, &sid, &sealer)
                .await
                .unwrap();
            let got: Vec<(&str, Option<&str>)> = repos
                .iter()
                .map(|r| (r.url.as_str(), r.token.as_deref()))
                .collect();
            assert_eq!(
                got,
                [
                    ("https://github.com/acme/w", Some("ghp_first")),
                    ("https://github.com/acme/x", Some("ghp_second"))
                ]
            );
            assert_eq!(repos[0].mount_path, "/workspace/w");
            assert!(!format!("{repos:?}").contains("ghp_"), "Debug redacts");
            assert!(
                s.session_repositories("someone-else", &sid, &sealer)
                    .await
                    .unwrap()
                    .is_empty()
            );
            // The sealed value is bound to its row: copied onto another resource it does not open.
            sqlx::query("UPDATE session_resources SET secret = $1 WHERE id = $2")
                .bind(&stored)
                .bind(without)
                .execute(s.writer())
                .await
                .unwrap();
            assert!(
                s.session_resource_token(&tenant, &sid, without, &sealer)
                    .await
                    .is_err()
            );
        }
    }

    #[tokio::test]
    async fn paging_both_ways_keeps_the_list_order() {
        for b in backends() {
            let db = open(b).await;
            let s = &db.store;
            let (tenant, agent, env) = setup(s).await;
            let mut ids_created = Vec::new();
            for _ in 0..5 {
                let req = request(json!({"agent": agent, "environment_id": env}));
                ids_created.push(s.create_session(&tenant, req, &sealer()).await.unwrap().0);
            }
            let page_ids = |p: &SessionPage| -> Vec<String> {
                p.items
                    .iter()
                    .map(|b| {
                        from_json::<Value>(b).unwrap()["id"]
                            .as_str()
                            .unwrap()
                            .to_string()
                    })
                    .collect()
            };
            let f = SessionFilter::default();
            for desc in [true, false] {
                let mut expected = ids_created.clone();
                if desc {
                    expected.reverse();
                }
                // Forward to the end, then back to the start, one page of two at a time.
                let mut pages = vec![s.list_sessions(&tenant, &f, 2, desc, None).await.unwrap()];
                while let Some(next) = pages.last().unwrap().next.clone() {
                    pages.push(
                        s.list_sessions(&tenant, &f, 2, true, Some(&next))
                            .await
                            .unwrap(),
                    );
                }
                let forward: Vec<String> = pages.iter().flat_map(page_ids).collect();
                assert_eq!(forward, expected);
                assert!(pages[0].prev.is_none());
                let mut back = vec![];
                let mut cursor = pages.last().unwrap().prev.clone();
                while let Some(c) = cursor {
                    let p = s
                        .list_sessions(&tenant, &f, 2, desc, Some(&c))
                        .await
                        .unwrap();
                    cursor = p.prev.clone();
                    back.push(page_ids(&p));
                }
                back.reverse();
                let backward: Vec<String> = back.concat();
                assert_eq!(
                    backward,
                    expected[..4].to_vec(),
                    "every page before the last, in list order"
                );
            }
        }
    }
}
