//! Storage: the event log of each session.
//!
//! Appends take the next `seq` values from `sessions.last_seq` inside the writing
//! transaction (a row lock on PostgreSQL, the single writer on SQLite), so `seq` is contiguous
//! and never reused, whoever appends. Readers page by `seq`, an index range scan that costs the
//! same on the first page of a session with a hundred events or a million.

use sqlx::{Any, AssertSqlSafe, Transaction};

use oma_core::Error;
pub use oma_core::events::NewEvent;

use crate::{ListQuery, Listed, Result, Store, to_json};

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

/// Appends `events` to a session's log inside `tx`. The caller has checked that the session
/// accepts events; a missing session row is reported as not found.
pub async fn append_in_tx(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    session_id: &str,
    events: Vec<NewEvent>,
) -> Result<Vec<StoredEvent>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let n = events.len() as i64;
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
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        seq += 1;
        let body = to_json(&e.body)?;
        sqlx::query(
            "INSERT INTO events (session_id, seq, tenant_id, id, type, thread_id, processed_at, body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(session_id)
        .bind(seq)
        .bind(tenant)
        .bind(&e.id)
        .bind(&e.kind)
        .bind(&e.thread_id)
        .bind(e.processed_at)
        .bind(&body)
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

type EventRow = (i64, String, String, Option<String>, String);

impl Store {
    /// Appends client or server events to a session that accepts them.
    pub async fn append_events(
        &self,
        tenant: &str,
        session_id: &str,
        events: Vec<NewEvent>,
    ) -> Result<Vec<StoredEvent>> {
        let mut tx = self.writer().begin().await?;
        let row: Option<(String, Option<i64>)> = sqlx::query_as(
            "SELECT status, archived_at FROM sessions WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(session_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (status, archived_at) = row.ok_or_else(|| Error::missing("session", session_id))?;
        if archived_at.is_some() {
            return Err(Error::invalid(format!(
                "session `{session_id}` is archived: it accepts no new events"
            ))
            .into());
        }
        if status == "terminated" {
            return Err(Error::invalid(format!(
                "session `{session_id}` is terminated: it accepts no new events"
            ))
            .into());
        }
        let stored = append_in_tx(&mut tx, tenant, session_id, events).await?;
        tx.commit().await?;
        Ok(stored)
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
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT seq, id, type, thread_id, body FROM events \
             WHERE session_id = $1 AND tenant_id = $2 AND seq > $3 ORDER BY seq ASC LIMIT $4",
        )
        .bind(session_id)
        .bind(tenant)
        .bind(after)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, id, kind, thread_id, body)| StoredEvent {
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
            "SELECT seq, id, body FROM events WHERE session_id = $1 AND tenant_id = $2 \
             AND ($3 IS NULL OR processed_at > $3) AND ($4 IS NULL OR processed_at >= $4) \
             AND ($5 IS NULL OR processed_at < $5) AND ($6 IS NULL OR processed_at <= $6)",
        );
        let mut next_param = 7;
        let thread_param = match &f.thread {
            None => None,
            Some(None) => {
                sql.push_str(" AND thread_id IS NULL");
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
        let mut query = sqlx::query_as::<_, (i64, String, String)>(AssertSqlSafe(sql))
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
        let rows = query
            .bind(k)
            .bind(i)
            .bind(q.fetch_limit())
            .fetch_all(self.reader())
            .await?;
        Ok(Listed::from_rows(q, rows))
    }
}
