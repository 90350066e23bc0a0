//! Storage for the session runtime: the input queue, atomic runtime steps (consume inputs,
//! append events, set status and usage in one transaction), stream checkpoints, and the
//! sessions that need a host after a restart.

use serde_json::Value;
use sqlx::{Any, Transaction};

use oma_core::Error;
use oma_core::events::NewEvent;

use crate::events::StoredEvent;
use crate::leases::{Fence, check_fence};
use crate::{Result, Store, from_json, to_json};

/// A client event waiting in a session's input queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedInput {
    pub seq: i64,
    pub id: String,
    pub kind: String,
    /// The event object as sent back to the client (`processed_at` still null).
    pub body: Value,
}

/// One atomic step of a session's host.
#[derive(Debug, Default)]
pub struct Step {
    /// Queue entries consumed by this step (their echoes are among `events`).
    pub consumed: Vec<i64>,
    pub events: Vec<NewEvent>,
    /// The session's new status (`idle`, `running`, `rescheduling`, `terminated`).
    pub status: Option<&'static str>,
    /// The session's new cumulative `usage` object.
    pub usage: Option<Value>,
    /// A model request whose stream checkpoint can go (its end is among `events`).
    pub close_stream: Option<String>,
    /// A context compaction recorded with its `agent.thread_context_compacted` event.
    pub compaction: Option<Compaction>,
    /// An `outcome_evaluations[]` entry of the session, replacing the one with its
    /// `outcome_id` (or added).
    pub outcome: Option<Value>,
    /// Changes to the session's child threads (multi-agent sessions).
    pub threads: Vec<ThreadChange>,
    /// The committing host's lease: the step fails with [`crate::StoreError::Fenced`] unless
    /// it still owns the session. `None` only for tools and tests that own the database.
    pub fence: Option<Fence>,
}

/// A change to one child thread of a session, applied with a [`Step`].
#[derive(Debug, Clone, PartialEq)]
pub enum ThreadChange {
    /// A new child thread of `parent`: its thread object (status and times are the row's).
    Create {
        id: String,
        parent: String,
        body: Value,
    },
    /// The thread's new status (`running`, `idle`, `rescheduling`).
    Status { id: String, status: &'static str },
    /// The `send_to_agent` call the thread works on; `None` once it has reported back.
    Delegation { id: String, call: Option<String> },
}

/// A child thread of a session as the runtime needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildThread {
    pub id: String,
    pub status: String,
    pub archived: bool,
    /// The roster agent it runs (the thread object's `agent`).
    pub agent: Value,
    /// The `send_to_agent` call it works on, if any.
    pub delegation: Option<String>,
}

/// A summary that stands in for the events up to `upto_seq` in the model context.
#[derive(Debug, Clone, PartialEq)]
pub struct Compaction {
    /// The id of the `agent.thread_context_compacted` event.
    pub event_id: String,
    pub upto_seq: i64,
    pub summary: String,
}

impl Store {
    /// Queues client events for a session that accepts input. Returns their echoes with
    /// `processed_at: null`: they are processed when the session's host consumes them.
    pub async fn enqueue_inputs(
        &self,
        tenant: &str,
        session_id: &str,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Value>> {
        // Committed with the steps and inputs of other sessions meanwhile (`group_commit`).
        let mut events = events;
        if let Some(committer) = self.committer() {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let job = crate::group_commit::Job {
                tenant: tenant.to_string(),
                session: session_id.to_string(),
                work: crate::group_commit::Work::Enqueue { events, reply },
            };
            match committer.send(job).await {
                Ok(()) => {
                    return answer.await.unwrap_or_else(|_| {
                        Err(crate::StoreError::Aborted(
                            "the writer stopped before the input was queued".into(),
                        ))
                    });
                }
                // The writer task is gone (its runtime stopped): the input commits alone.
                Err(tokio::sync::mpsc::error::SendError(job)) => match job.work {
                    crate::group_commit::Work::Enqueue { events: back, .. } => events = back,
                    crate::group_commit::Work::Step { .. } => {
                        return Err(crate::StoreError::Aborted("not an input".into()));
                    }
                },
            }
        }
        let mut tx = self.writer().begin().await?;
        let echoes = enqueue_inputs_in_tx(&mut tx, tenant, session_id, events).await?;
        tx.commit().await?;
        Ok(echoes)
    }

    /// The id of the session's primary thread (the one that runs the session's agent).
    pub async fn primary_thread_id(&self, tenant: &str, session_id: &str) -> Result<String> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM session_threads \
             WHERE tenant_id = $1 AND session_id = $2 AND parent_thread_id IS NULL",
        )
        .bind(tenant)
        .bind(session_id)
        .fetch_optional(self.reader())
        .await?;
        id.ok_or_else(|| {
            crate::StoreError::Corrupt(format!("session `{session_id}` has no primary thread"))
        })
    }

    /// The session's queued inputs, oldest first.
    pub async fn pending_inputs(&self, tenant: &str, session_id: &str) -> Result<Vec<QueuedInput>> {
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT seq, event_id, type, body FROM session_inputs WHERE tenant_id = $1 AND session_id = $2 ORDER BY seq",
        )
        .bind(tenant)
        .bind(session_id)
        .fetch_all(self.reader())
        .await?;
        rows.into_iter()
            .map(|(seq, id, kind, body)| {
                Ok(QueuedInput {
                    seq,
                    id,
                    kind,
                    body: from_json(&body)?,
                })
            })
            .collect()
    }

    /// Applies one host step atomically and returns the appended events.
    pub async fn commit_step(
        &self,
        tenant: &str,
        session_id: &str,
        mut step: Step,
    ) -> Result<Vec<StoredEvent>> {
        let events =
            crate::events::prepare(self, tenant, session_id, std::mem::take(&mut step.events))
                .await?;
        // Committed with the steps other sessions' hosts made meanwhile (`group_commit`).
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = crate::group_commit::Job {
            tenant: tenant.to_string(),
            session: session_id.to_string(),
            work: crate::group_commit::Work::Step {
                step: Box::new(step),
                events,
                reply,
            },
        };
        let sent = match self.committer() {
            Some(committer) => committer.send(job).await,
            None => Err(tokio::sync::mpsc::error::SendError(job)),
        };
        let job = match sent {
            Ok(()) => {
                return answer.await.unwrap_or_else(|_| {
                    Err(crate::StoreError::Aborted(
                        "the writer stopped before the step committed".into(),
                    ))
                });
            }
            // Group commit is off, or the writer task is gone (its runtime stopped): the
            // step commits alone.
            Err(tokio::sync::mpsc::error::SendError(job)) => job,
        };
        let crate::group_commit::Work::Step { step, events, .. } = job.work else {
            return Err(crate::StoreError::Aborted("not a step".into()));
        };
        let mut tx = self.writer().begin().await?;
        let stored = apply_step(self, &mut tx, tenant, session_id, *step, events).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Records what a model request has streamed so far.
    pub async fn save_stream_checkpoint(
        &self,
        tenant: &str,
        session_id: &str,
        span_id: &str,
        partial: &Value,
    ) -> Result<()> {
        let now = oma_core::time::now_micros();
        sqlx::query(
            "INSERT INTO model_streams (session_id, span_id, tenant_id, partial, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (session_id, span_id) DO UPDATE SET partial = excluded.partial, updated_at = excluded.updated_at",
        )
        .bind(session_id)
        .bind(span_id)
        .bind(tenant)
        .bind(to_json(partial)?)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The checkpoint of a model request that never ended, if any.
    pub async fn stream_checkpoint(
        &self,
        tenant: &str,
        session_id: &str,
        span_id: &str,
    ) -> Result<Option<Value>> {
        let row: Option<String> = sqlx::query_scalar(
            "SELECT partial FROM model_streams WHERE tenant_id = $1 AND session_id = $2 AND span_id = $3",
        )
        .bind(tenant)
        .bind(session_id)
        .bind(span_id)
        .fetch_optional(self.reader())
        .await?;
        row.map(|s| from_json(&s)).transpose()
    }

    /// The newest context compaction of a session.
    pub async fn latest_compaction(
        &self,
        tenant: &str,
        session_id: &str,
    ) -> Result<Option<Compaction>> {
        let row: Option<(String, i64, String)> = sqlx::query_as(
            "SELECT event_id, upto_seq, summary FROM context_compactions WHERE tenant_id = $1 AND session_id = $2 \
             ORDER BY upto_seq DESC, created_at DESC LIMIT 1",
        )
        .bind(tenant)
        .bind(session_id)
        .fetch_optional(self.reader())
        .await?;
        Ok(row.map(|(event_id, upto_seq, summary)| Compaction {
            event_id,
            upto_seq,
            summary,
        }))
    }

    /// Every event of a session, oldest first (the runtime rebuilds model context from it).
    pub async fn all_events(&self, tenant: &str, session_id: &str) -> Result<Vec<StoredEvent>> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let batch = self.events_after(tenant, session_id, after, 1000).await?;
            let done = batch.len() < 1000;
            if let Some(last) = batch.last() {
                after = last.seq;
            }
            out.extend(batch);
            if done {
                return Ok(out);
            }
        }
    }

    /// The session's status column and the resolved agent snapshot it runs.
    pub async fn session_runtime_view(
        &self,
        tenant: &str,
        session_id: &str,
    ) -> Result<(String, Value)> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT status, body FROM sessions WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(session_id)
                .fetch_optional(self.reader())
                .await?;
        let (status, body) = row.ok_or_else(|| Error::missing("session", session_id))?;
        Ok((status, from_json(&body)?))
    }
}

/// Queues client events inside `tx` (used by session create for `initial_events`).
/// Queues client events in `tx` (see [`Store::enqueue_inputs`]): the session must accept
/// them and stay within its budget.
pub(crate) async fn enqueue_inputs_in_tx(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    session_id: &str,
    events: Vec<NewEvent>,
) -> Result<Vec<Value>> {
    crate::events::ensure_accepts_events(tx, tenant, session_id).await?;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    crate::events::ensure_within_budget(tx, tenant, session_id, &kinds).await?;
    crate::events::add_pending_outcomes(tx, tenant, session_id, &events).await?;
    let echoes = enqueue_in_tx(tx, tenant, session_id, events).await?;
    // Input for a self-hosted session that no worker holds brings one (spec §3.2.2).
    crate::work::queue_for_session_in_tx(tx, tenant, session_id).await?;
    Ok(echoes)
}

pub async fn enqueue_in_tx(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    session_id: &str,
    events: Vec<NewEvent>,
) -> Result<Vec<Value>> {
    let n = events.len() as i64;
    if n == 0 {
        return Ok(Vec::new());
    }
    let last: i64 = sqlx::query_scalar(
        "UPDATE sessions SET input_seq = input_seq + $1 WHERE tenant_id = $2 AND id = $3 RETURNING input_seq",
    )
    .bind(n)
    .bind(tenant)
    .bind(session_id)
    .fetch_one(&mut **tx)
    .await?;
    let mut seq = last - n;
    let now = oma_core::time::now_micros();
    let mut echoes = Vec::with_capacity(events.len());
    for mut e in events {
        seq += 1;
        if let Value::Object(m) = &mut e.body {
            // An outcome is accepted on receipt (its echo carries the time, spec §11); other
            // input is processed when the host consumes it.
            let at = if e.kind == "user.define_outcome" {
                Value::String(oma_core::time::format_micros(now))
            } else {
                Value::Null
            };
            m.insert("processed_at".into(), at);
        }
        sqlx::query(
            "INSERT INTO session_inputs (session_id, seq, tenant_id, event_id, type, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(session_id)
        .bind(seq)
        .bind(tenant)
        .bind(&e.id)
        .bind(&e.kind)
        .bind(to_json(&e.body)?)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        echoes.push(e.body);
    }
    Ok(echoes)
}

pub(crate) async fn apply_step(
    store: &Store,
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    session_id: &str,
    step: Step,
    events: crate::events::Prepared,
) -> Result<Vec<StoredEvent>> {
    if let Some(fence) = &step.fence {
        check_fence(store, tx, session_id, fence).await?;
    }
    for seq in &step.consumed {
        sqlx::query(
            "DELETE FROM session_inputs WHERE tenant_id = $1 AND session_id = $2 AND seq = $3",
        )
        .bind(tenant)
        .bind(session_id)
        .bind(seq)
        .execute(&mut **tx)
        .await?;
    }
    // The host publishes its events itself; other nodes hear of them from the note.
    let node = step.fence.as_ref().map_or("", |f| f.node_id.as_str());
    let stored =
        crate::events::append_in_tx_by(store, tx, tenant, session_id, events, node).await?;
    let now = oma_core::time::now_micros();
    if let Some(status) = step.status {
        sqlx::query(
            "UPDATE sessions SET status = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4",
        )
        .bind(status)
        .bind(now)
        .bind(tenant)
        .bind(session_id)
        .execute(&mut **tx)
        .await?;
        // The primary thread mirrors the session in a single-agent session.
        sqlx::query(
            "UPDATE session_threads SET status = $1, updated_at = $2 \
             WHERE tenant_id = $3 AND session_id = $4 AND parent_thread_id IS NULL AND archived_at IS NULL",
        )
        .bind(status)
        .bind(now)
        .bind(tenant)
        .bind(session_id)
        .execute(&mut **tx)
        .await?;
    }
    if step.usage.is_some() || step.outcome.is_some() {
        let body: String =
            sqlx::query_scalar("SELECT body FROM sessions WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(session_id)
                .fetch_one(&mut **tx)
                .await?;
        let mut body: Value = from_json(&body)?;
        if let (Value::Object(m), Some(usage)) = (&mut body, step.usage) {
            m.insert("usage".into(), usage);
        }
        if let Some(entry) = step.outcome {
            crate::events::upsert_outcome(&mut body, entry);
        }
        sqlx::query("UPDATE sessions SET body = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(to_json(&body)?)
            .bind(tenant)
            .bind(session_id)
            .execute(&mut **tx)
            .await?;
    }
    for change in step.threads {
        apply_thread_change(tx, tenant, session_id, change, now).await?;
    }
    if let Some(c) = step.compaction {
        sqlx::query(
            "INSERT INTO context_compactions (session_id, event_id, tenant_id, upto_seq, summary, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(session_id)
        .bind(&c.event_id)
        .bind(tenant)
        .bind(c.upto_seq)
        .bind(&c.summary)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    if let Some(span) = step.close_stream {
        sqlx::query(
            "DELETE FROM model_streams WHERE tenant_id = $1 AND session_id = $2 AND span_id = $3",
        )
        .bind(tenant)
        .bind(session_id)
        .bind(span)
        .execute(&mut **tx)
        .await?;
    }
    Ok(stored)
}

async fn apply_thread_change(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    session_id: &str,
    change: ThreadChange,
    now: i64,
) -> Result<()> {
    match change {
        ThreadChange::Create { id, parent, body } => {
            sqlx::query(
                "INSERT INTO session_threads (id, tenant_id, session_id, parent_thread_id, status, archived_at, \
                 created_at, updated_at, body) VALUES ($1, $2, $3, $4, 'idle', NULL, $5, $5, $6)",
            )
            .bind(&id)
            .bind(tenant)
            .bind(session_id)
            .bind(&parent)
            .bind(now)
            .bind(to_json(&body)?)
            .execute(&mut **tx)
            .await?;
        }
        ThreadChange::Status { id, status } => {
            sqlx::query(
                "UPDATE session_threads SET status = $1, updated_at = $2 \
                 WHERE tenant_id = $3 AND session_id = $4 AND id = $5 AND archived_at IS NULL",
            )
            .bind(status)
            .bind(now)
            .bind(tenant)
            .bind(session_id)
            .bind(&id)
            .execute(&mut **tx)
            .await?;
        }
        ThreadChange::Delegation { id, call } => {
            sqlx::query(
                "UPDATE session_threads SET delegation = $1 WHERE tenant_id = $2 AND session_id = $3 AND id = $4",
            )
            .bind(call)
            .bind(tenant)
            .bind(session_id)
            .bind(&id)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// `(id, status, archived_at, body, delegation)`.
type ChildThreadRow = (String, String, Option<i64>, String, Option<String>);

impl Store {
    /// The child threads of a session, oldest first (archived ones included).
    pub async fn child_threads(&self, tenant: &str, session_id: &str) -> Result<Vec<ChildThread>> {
        let rows: Vec<ChildThreadRow> = sqlx::query_as(
            "SELECT id, status, archived_at, body, delegation FROM session_threads \
             WHERE tenant_id = $1 AND session_id = $2 AND parent_thread_id IS NOT NULL \
             ORDER BY created_at, id",
        )
        .bind(tenant)
        .bind(session_id)
        .fetch_all(self.reader())
        .await?;
        rows.into_iter()
            .map(|(id, status, archived_at, body, delegation)| {
                let body: Value = from_json(&body)?;
                Ok(ChildThread {
                    id,
                    status,
                    archived: archived_at.is_some(),
                    agent: body.get("agent").cloned().unwrap_or(Value::Null),
                    delegation,
                })
            })
            .collect()
    }

    /// The thread an event of the session belongs to: `Some(None)` for the primary thread,
    /// `None` when the session has no such event.
    pub async fn event_thread(
        &self,
        tenant: &str,
        session_id: &str,
        event_id: &str,
    ) -> Result<Option<Option<String>>> {
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT thread_id FROM events WHERE tenant_id = $1 AND session_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(session_id)
        .bind(event_id)
        .fetch_optional(self.reader())
        .await?;
        Ok(row.map(|(t,)| t))
    }
}
