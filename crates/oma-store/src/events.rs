//! Storage: the event log of each session.
//!
//! Appends take the next `seq` values from `sessions.last_seq` inside the writing
//! transaction (a row lock on PostgreSQL, the single writer on SQLite), so `seq` is contiguous
//! and never reused, whoever appends. Readers page by `seq`, an index range scan that costs the
//! same on the first page of a session with a hundred events or a million.
//!
//! Large events spill: when the store has a blob store attached, an event whose JSON body is
//! larger than the spill threshold is written to `events/<tenant>/<session>/<event id>` in
//! the blob store before its row commits, and the row keeps a small stub body plus the
//! `blob_key`. Every read here (`events_after` — SSE catch-up and the runtime's model
//! context — and `list_events`) returns the full body, fetching the page's blobs
//! concurrently; callers never see a stub. Keys are per session so that the blobs of
//! deleted sessions can be pruned by prefix.

use futures::{StreamExt, TryStreamExt, stream};
use oma_blob::{BlobError, BlobStore};
use serde_json::{Map, Value};
use sqlx::{Any, AssertSqlSafe, Transaction};

use oma_core::Error;
pub use oma_core::events::NewEvent;

use crate::{ListQuery, Listed, Result, Store, StoreError, to_json};

/// Events whose JSON body is larger than this many bytes (500 KiB) spill to the blob store
/// when the store has one ([`Store::with_blobs`]; configurable with
/// [`Store::with_spill_threshold`]). Rows stay small, so pages and index scans stay cheap.
pub const SPILL_THRESHOLD_BYTES: usize = 500 * 1024;

/// How many spilled bodies one read or append moves at once: enough to hide per-blob latency
/// on a page of large events without opening hundreds of files together.
const BLOB_CONCURRENCY: usize = 16;

/// The stub key recording the spilled body's size, checked on read to catch truncated blobs.
const STUB_BYTES_KEY: &str = "spilled_bytes";

/// The blob key of a spilled event.
pub fn spill_key(tenant: &str, session_id: &str, event_id: &str) -> String {
    format!("events/{tenant}/{session_id}/{event_id}")
}

/// An appended event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    pub id: String,
    pub kind: String,
    pub thread_id: Option<String>,
    /// The event object as JSON text.
    pub body: String,
}

/// Filters of the event list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub types: Vec<String>,
    /// Bounds on `processed_at` (micros): `(gt, gte, lt, lte)`.
    pub gt: Option<i64>,
    pub gte: Option<i64>,
    pub lt: Option<i64>,
    pub lte: Option<i64>,
    /// Only events of this thread (`Some(None)` = the primary thread).
    pub thread: Option<Option<String>>,
}

/// Appends `events` to a session's log inside `tx` (a transaction of `store`). The caller has
/// checked that the session accepts events; a missing session row is reported as not found.
///
/// Events larger than the store's spill threshold are written to its blob store first (see
/// the module docs); the returned events always carry the full body, ready to publish.
pub async fn append_in_tx(
    store: &Store,
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    session_id: &str,
    events: Vec<NewEvent>,
) -> Result<Vec<StoredEvent>> {
    let events = prepare(store, tenant, session_id, events).await?;
    append_in_tx_by(store, tx, tenant, session_id, events, "").await
}

/// [`append_in_tx`] by the host of `node`, which publishes the events to its own streams
/// itself. On PostgreSQL every append sends an events note inside the transaction (delivered
/// exactly when the events are visible), so other nodes' streams of the session read them;
/// the note names `node` so that it alone skips it (empty: nobody does; a duplicate delivery
/// is dropped by `seq`).
pub(crate) async fn append_in_tx_by(
    store: &Store,
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    session_id: &str,
    events: Prepared,
    node: &str,
) -> Result<Vec<StoredEvent>> {
    let stored = append_rows(tx, tenant, session_id, events).await?;
    if let (Some(first), Some(last)) = (stored.first(), stored.last()) {
        let note = crate::notify::EventsNote {
            tenant: tenant.to_string(),
            session: session_id.to_string(),
            from: first.seq,
            to: last.seq,
            node: node.to_string(),
            deleted: false,
        };
        crate::notify::notify_events_in_tx(store, tx, &note).await?;
    }
    Ok(stored)
}

/// Events serialized for their rows, with the bodies over the spill threshold already
/// durable in the blob store: prepared before a transaction opens where the caller can, so
/// that no transaction (and the session row it locks) waits on the blob store.
pub(crate) struct Prepared(Vec<(NewEvent, String, Option<Spill>)>);

/// Serializes `events` and writes the large bodies to the blob store. Should the
/// transaction fail after this, those blobs are unreferenced orphans: harmless, and removed
/// with the session's prefix by the blob lifecycle rules.
pub(crate) async fn prepare(
    store: &Store,
    tenant: &str,
    session_id: &str,
    events: Vec<NewEvent>,
) -> Result<Prepared> {
    let mut prepared = Vec::with_capacity(events.len());
    for e in events {
        let body = to_json(&e.body)?;
        let spill = match store.blobs() {
            Some(_) if body.len() > store.spill_threshold() => Some(Spill {
                key: spill_key(tenant, session_id, &e.id),
                stub: stub_of(&e.body, body.len())?,
            }),
            _ => None,
        };
        prepared.push((e, body, spill));
    }
    if let Some(blobs) = store.blobs() {
        // The futures are collected before awaiting (not built lazily by an iterator
        // adapter), which keeps this future provably `Send` for the runtime's spawned hosts.
        let writes: Vec<_> = prepared
            .iter()
            .filter_map(|(_, body, spill)| spill.as_ref().map(|s| write_spilled(blobs, s, body)))
            .collect();
        stream::iter(writes)
            .buffer_unordered(BLOB_CONCURRENCY)
            .try_collect::<Vec<u64>>()
            .await?;
    }
    Ok(Prepared(prepared))
}

async fn append_rows(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    session_id: &str,
    events: Prepared,
) -> Result<Vec<StoredEvent>> {
    let prepared = events.0;
    if prepared.is_empty() {
        return Ok(Vec::new());
    }
    let n = prepared.len() as i64;
    let last: Option<i64> = sqlx::query_scalar(
        "UPDATE sessions SET last_seq = last_seq + $1 WHERE tenant_id = $2 AND id = $3 RETURNING last_seq",
    )
    .bind(n)
    .bind(tenant)
    .bind(session_id)
    .fetch_optional(&mut **tx)
    .await?;
    let last = last.ok_or_else(|| Error::missing("session", session_id))?;
    let mut seq = last - n;
    let mut out = Vec::with_capacity(prepared.len());
    for (e, body, spill) in prepared {
        seq += 1;
        let (row_body, blob_key) = match &spill {
            Some(s) => (s.stub.as_str(), Some(s.key.as_str())),
            None => (body.as_str(), None),
        };
        sqlx::query(
            "INSERT INTO events (session_id, seq, tenant_id, id, type, thread_id, processed_at, body, blob_key, cross_posted) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(session_id)
        .bind(seq)
        .bind(tenant)
        .bind(&e.id)
        .bind(&e.kind)
        .bind(&e.thread_id)
        .bind(e.processed_at)
        .bind(row_body)
        .bind(blob_key)
        .bind(i64::from(
            e.thread_id.is_some()
                && oma_core::events::on_session_stream(
                    e.thread_id.as_deref(),
                    &e.kind,
                    e.body.get("evaluated_permission").and_then(Value::as_str),
                ),
        ))
        .execute(&mut **tx)
        .await?;
        out.push(StoredEvent {
            seq,
            id: e.id,
            kind: e.kind,
            thread_id: e.thread_id,
            body,
        });
    }
    Ok(out)
}

/// Where a large event's body goes: its blob and the stub its row keeps instead.
struct Spill {
    key: String,
    stub: String,
}

/// The row body of a spilled event: its identity (so the row still reads as the event it is
/// to anyone inspecting the database) and the size of the full body.
fn stub_of(body: &Value, len: usize) -> Result<String> {
    let mut stub = Map::new();
    for k in ["id", "type", "processed_at"] {
        if let Some(v) = body.get(k) {
            stub.insert(k.to_string(), v.clone());
        }
    }
    stub.insert(STUB_BYTES_KEY.to_string(), Value::from(len as u64));
    to_json(&stub)
}

/// Writes a large event's body to its blob, durably.
async fn write_spilled(blobs: &BlobStore, spill: &Spill, body: &str) -> Result<u64> {
    blobs
        .put_synced(&spill.key, body.as_bytes())
        .await
        .map_err(|e| {
            StoreError::Corrupt(format!(
                "cannot write the body of a large event to blob `{}`: {e}",
                spill.key
            ))
        })
}

/// A spilled row of a page to resolve: its position, event id, blob key and stub body.
struct Pending {
    index: usize,
    event_id: String,
    key: String,
    stub: String,
}

impl Pending {
    /// The spilled rows among `(event id, blob key, body)` triples, in order.
    fn of<'r>(rows: impl Iterator<Item = (&'r str, Option<&'r str>, &'r str)>) -> Vec<Self> {
        rows.enumerate()
            .filter_map(|(index, (id, key, body))| {
                key.map(|k| Pending {
                    index,
                    event_id: id.to_string(),
                    key: k.to_string(),
                    stub: body.to_string(),
                })
            })
            .collect()
    }
}

/// Fails unless the session exists for this tenant and still accepts events (it is neither
/// archived nor terminated).
pub(crate) async fn ensure_accepts_events(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    session_id: &str,
) -> Result<()> {
    let row: Option<(String, Option<i64>)> =
        sqlx::query_as("SELECT status, archived_at FROM sessions WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(session_id)
            .fetch_optional(&mut **tx)
            .await?;
    let (status, archived_at) = row.ok_or_else(|| Error::missing("session", session_id))?;
    let state = if archived_at.is_some() {
        "archived"
    } else if status == "terminated" {
        "terminated"
    } else {
        return Ok(());
    };
    Err(Error::invalid(format!(
        "session `{session_id}` is {state}: it accepts no new events"
    ))
    .into())
}

/// The events a session at its budget still takes: those that settle pending work
/// (semantics §6.7). They are stored, and no model request follows until the budget changes.
pub const SETTLING_AT_BUDGET: [&str; 4] = [
    "user.tool_confirmation",
    "user.tool_result",
    "user.custom_tool_result",
    "user.interrupt",
];

/// Refuses events that would start new work on a session whose list cost reached its budget.
pub(crate) async fn ensure_within_budget(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    session_id: &str,
    kinds: &[&str],
) -> Result<()> {
    let Some(starting) = kinds.iter().find(|k| !SETTLING_AT_BUDGET.contains(k)) else {
        return Ok(());
    };
    let body: Option<String> =
        sqlx::query_scalar("SELECT body FROM sessions WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(session_id)
            .fetch_optional(&mut **tx)
            .await?;
    let body: Value = match body {
        Some(b) => crate::from_json(&b)?,
        None => return Err(Error::missing("session", session_id).into()),
    };
    let budget = body.get("budget").unwrap_or(&Value::Null);
    let model = body
        .pointer("/agent/model/id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let usage = body.get("usage").unwrap_or(&Value::Null);
    if !oma_core::sessions::budget_exhausted(model, usage, budget) {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "session `{session_id}` has reached its budget: `{starting}` would start new work. Until the \
         budget is raised or removed the session accepts only {}",
        SETTLING_AT_BUDGET.join(", ")
    ))
    .with_code("budget_reached")
    .into())
}

/// Outcome results after which no evaluation follows.
pub const OUTCOME_TERMINAL: [&str; 4] = [
    "satisfied",
    "max_iterations_reached",
    "failed",
    "interrupted",
];

/// Replaces the `outcome_evaluations[]` entry of the session body with `entry`'s `outcome_id`,
/// or adds it.
pub(crate) fn upsert_outcome(body: &mut Value, entry: Value) {
    let Value::Object(m) = body else {
        return;
    };
    let list = m
        .entry("outcome_evaluations")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    let Value::Array(items) = list else {
        return;
    };
    let id = entry.get("outcome_id").cloned();
    match items
        .iter_mut()
        .find(|e| e.get("outcome_id") == id.as_ref())
    {
        Some(existing) => *existing = entry,
        None => items.push(entry),
    }
}

/// Records a `pending` `outcome_evaluations[]` entry for each `user.define_outcome` among
/// `events`. One outcome at a time: one that has not ended yet refuses a new one.
pub(crate) async fn add_pending_outcomes(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    session_id: &str,
    events: &[NewEvent],
) -> Result<()> {
    let outcomes: Vec<&NewEvent> = events
        .iter()
        .filter(|e| e.kind == "user.define_outcome")
        .collect();
    if outcomes.is_empty() {
        return Ok(());
    }
    let body: Option<String> =
        sqlx::query_scalar("SELECT body FROM sessions WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(session_id)
            .fetch_optional(&mut **tx)
            .await?;
    let mut body: Value = match body {
        Some(b) => crate::from_json(&b)?,
        None => return Err(Error::missing("session", session_id).into()),
    };
    for e in outcomes {
        let active = body
            .get("outcome_evaluations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|o| {
                !o.get("result")
                    .and_then(Value::as_str)
                    .is_some_and(|r| OUTCOME_TERMINAL.contains(&r))
            });
        if let Some(active) = active {
            let id = active
                .get("outcome_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            return Err(Error::invalid(format!(
                "session `{session_id}` is already working on outcome `{id}`: one outcome at a time; \
                 define the next one once it has ended (or interrupt the session)"
            ))
            .with_code("outcome_in_progress")
            .into());
        }
        let entry = oma_core::sessions::outcome_evaluations(std::slice::from_ref(e));
        for entry in entry {
            upsert_outcome(
                &mut body,
                serde_json::to_value(entry).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            );
        }
    }
    sqlx::query("UPDATE sessions SET body = $1 WHERE tenant_id = $2 AND id = $3")
        .bind(crate::to_json(&body)?)
        .bind(tenant)
        .bind(session_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// `(seq, id, type, thread_id, body, blob_key)`.
type EventRow = (i64, String, String, Option<String>, String, Option<String>);

impl Store {
    /// Appends client or server events to a session that accepts them.
    pub async fn append_events(
        &self,
        tenant: &str,
        session_id: &str,
        events: Vec<NewEvent>,
    ) -> Result<Vec<StoredEvent>> {
        let events = prepare(self, tenant, session_id, events).await?;
        let mut tx = self.writer().begin().await?;
        ensure_accepts_events(&mut tx, tenant, session_id).await?;
        let stored = append_in_tx_by(self, &mut tx, tenant, session_id, events, "").await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// The full bodies of the `pending` spilled rows, in the same order, fetched
    /// concurrently. The futures are collected before awaiting (no borrowing iterator
    /// adapter lives across an await), so callers' futures stay provably `Send`.
    async fn fetch_spilled(&self, session_id: &str, pending: &[Pending]) -> Result<Vec<String>> {
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let reads: Vec<_> = pending
            .iter()
            .map(|p| self.read_spilled(session_id, &p.event_id, &p.key, &p.stub))
            .collect();
        stream::iter(reads)
            .buffered(BLOB_CONCURRENCY)
            .try_collect()
            .await
    }

    /// The full body of one spilled event. A missing, truncated or unreadable blob is an
    /// error naming the event and the blob: the log is damaged and must not be served partly.
    async fn read_spilled(
        &self,
        session_id: &str,
        event_id: &str,
        key: &str,
        stub: &str,
    ) -> Result<String> {
        let damaged = |what: String| {
            StoreError::Corrupt(format!(
                "event `{event_id}` of session `{session_id}` is stored in blob `{key}`, {what}"
            ))
        };
        let blobs = self
            .blobs()
            .ok_or_else(|| damaged("but this store has no blob storage attached".to_string()))?;
        let bytes = blobs.get(key).await.map_err(|e| match e {
            BlobError::NotFound(_) => damaged("which is missing".to_string()),
            other => damaged(format!("which cannot be read: {other}")),
        })?;
        let expected = serde_json::from_str::<Value>(stub)
            .ok()
            .and_then(|v| v.get(STUB_BYTES_KEY).and_then(Value::as_u64));
        if let Some(n) = expected
            && n != bytes.len() as u64
        {
            return Err(damaged(format!(
                "which holds {} bytes instead of {n}",
                bytes.len()
            )));
        }
        String::from_utf8(Vec::from(bytes))
            .map_err(|_| damaged("which is not UTF-8 text".to_string()))
    }

    /// Whether the session runs in a `self_hosted` environment (where clients execute tools and
    /// may send `user.tool_result`). Not found for an unknown session.
    pub async fn session_is_self_hosted(&self, tenant: &str, session_id: &str) -> Result<bool> {
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT e.body FROM sessions s LEFT JOIN environments e              ON e.id = s.environment_id AND e.tenant_id = s.tenant_id              WHERE s.tenant_id = $1 AND s.id = $2",
        )
        .bind(tenant)
        .bind(session_id)
        .fetch_optional(self.reader())
        .await?;
        let (env_body,) = row.ok_or_else(|| Error::missing("session", session_id))?;
        let kind = env_body
            .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
            .and_then(|v| {
                v.pointer("/config/type")
                    .and_then(|t| t.as_str())
                    .map(str::to_string)
            });
        Ok(kind.as_deref() == Some("self_hosted"))
    }

    /// Which events belong to thread `thread_id` of a session: `None` for the primary thread
    /// (events are stored without a thread id there), `Some(id)` for a child thread. Not found
    /// (`thread_not_found`) for a thread that is not this session's.
    pub async fn thread_scope(
        &self,
        tenant: &str,
        session_id: &str,
        thread_id: &str,
    ) -> Result<Option<String>> {
        self.session_last_seq(tenant, session_id).await?;
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT parent_thread_id FROM session_threads WHERE tenant_id = $1 AND session_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(session_id)
        .bind(thread_id)
        .fetch_optional(self.reader())
        .await?;
        let (parent,) = row.ok_or_else(|| {
            Error::not_found(format!(
                "thread `{thread_id}` not found in session `{session_id}`"
            ))
            .with_code("thread_not_found")
        })?;
        Ok(parent.map(|_| thread_id.to_string()))
    }

    /// The type of one event of a session, if it exists.
    pub async fn event_kind(
        &self,
        tenant: &str,
        session_id: &str,
        event_id: &str,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT type FROM events WHERE tenant_id = $1 AND session_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(session_id)
        .bind(event_id)
        .fetch_optional(self.reader())
        .await?)
    }

    /// The highest `seq` of a session (0 when it has no events). Not found for another
    /// tenant's session.
    pub async fn session_last_seq(&self, tenant: &str, session_id: &str) -> Result<i64> {
        let last: Option<i64> =
            sqlx::query_scalar("SELECT last_seq FROM sessions WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(session_id)
                .fetch_optional(self.reader())
                .await?;
        Ok(last.ok_or_else(|| Error::missing("session", session_id))?)
    }

    /// Events with `seq > after`, oldest first, at most `limit`.
    pub async fn events_after(
        &self,
        tenant: &str,
        session_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>> {
        let mut rows: Vec<EventRow> = sqlx::query_as(
            "SELECT seq, id, type, thread_id, body, blob_key FROM events \
             WHERE session_id = $1 AND tenant_id = $2 AND seq > $3 ORDER BY seq ASC LIMIT $4",
        )
        .bind(session_id)
        .bind(tenant)
        .bind(after)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        let pending = Pending::of(
            rows.iter()
                .map(|(_, id, _, _, body, key)| (id.as_str(), key.as_deref(), body.as_str())),
        );
        let full = self.fetch_spilled(session_id, &pending).await?;
        for (p, body) in pending.iter().zip(full) {
            rows[p.index].4 = body;
        }
        Ok(rows
            .into_iter()
            .map(|(seq, id, kind, thread_id, body, _)| StoredEvent {
                seq,
                id,
                kind,
                thread_id,
                body,
            })
            .collect())
    }

    /// A page of a session's events in log order (the order they were processed).
    pub async fn list_events(
        &self,
        tenant: &str,
        session_id: &str,
        f: &EventFilter,
        q: &ListQuery,
    ) -> Result<Listed> {
        // Existence (and tenancy) first, so an unknown session is a 404 rather than an empty page.
        self.session_last_seq(tenant, session_id).await?;
        let mut sql = String::from(
            "SELECT seq, id, body, blob_key FROM events WHERE session_id = $1 AND tenant_id = $2 \
             AND ($3 IS NULL OR processed_at > $3) AND ($4 IS NULL OR processed_at >= $4) \
             AND ($5 IS NULL OR processed_at < $5) AND ($6 IS NULL OR processed_at <= $6)",
        );
        let mut next_param = 7;
        let thread_param = match &f.thread {
            None => None,
            // The primary thread is the session-level stream: its own events and what its
            // children cross-post.
            Some(None) => {
                sql.push_str(" AND (thread_id IS NULL OR cross_posted = 1)");
                None
            }
            Some(Some(t)) => {
                sql.push_str(&format!(" AND thread_id = ${next_param}"));
                next_param += 1;
                Some(t.clone())
            }
        };
        if !f.types.is_empty() {
            let ph: Vec<String> = (0..f.types.len())
                .map(|i| format!("${}", next_param + i))
                .collect();
            sql.push_str(&format!(" AND type IN ({})", ph.join(", ")));
            next_param += f.types.len();
        }
        sql.push_str(&format!(
            " AND {} {} LIMIT ${}",
            q.after_clause("seq", "id", next_param),
            q.order_clause("seq", "id"),
            next_param + 2
        ));
        let mut query =
            sqlx::query_as::<_, (i64, String, String, Option<String>)>(AssertSqlSafe(sql))
                .bind(session_id)
                .bind(tenant)
                .bind(f.gt)
                .bind(f.gte)
                .bind(f.lt)
                .bind(f.lte);
        if let Some(t) = thread_param {
            query = query.bind(t);
        }
        for t in &f.types {
            query = query.bind(t.clone());
        }
        let (k, i) = q.after_binds();
        let mut rows = query
            .bind(k)
            .bind(i)
            .bind(q.fetch_limit())
            .fetch_all(self.reader())
            .await?;
        // Only the page's rows are resolved: the extra row fetched to detect a next page is
        // dropped by `from_rows`, so its blob is never read.
        let page = rows.len().min(usize::try_from(q.limit).unwrap_or(0));
        let pending = Pending::of(
            rows[..page]
                .iter()
                .map(|(_, id, body, key)| (id.as_str(), key.as_deref(), body.as_str())),
        );
        let full = self.fetch_spilled(session_id, &pending).await?;
        for (p, body) in pending.iter().zip(full) {
            rows[p.index].2 = body;
        }
        Ok(Listed::from_rows(
            q,
            rows.into_iter()
                .map(|(seq, id, body, _)| (seq, id, body))
                .collect(),
        ))
    }
}
