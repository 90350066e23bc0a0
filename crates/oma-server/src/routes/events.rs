//! The session event log over HTTP: send (`POST …/events`), list (`GET …/events`) and the live
//! stream (`GET …/events/stream`, SSE).
//!
//! Stream contract: every frame is `event: <type>` + `id: <seq>` + `data: <json>`; `ping`
//! frames keep idle connections alive. Without `Last-Event-ID` the stream carries events
//! committed after it opened (the official API does not replay); with `Last-Event-ID: N` it
//! first replays every event with `seq > N` from the log, then continues live, with no gap and
//! no duplicate. A subscriber that falls behind is caught up from the log, never skipped.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use oma_core::Error;
use oma_core::events::{SendContext, validate_send};
use oma_store::Store;
use oma_store::events::{EventFilter, StoredEvent};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::Id;
use crate::auth::{Caller, Tenant};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryMap, RawJson, page_json};
use crate::hub::{Committed, Hub, HubMsg, Preview};

use crate::state::AppState;

const PING_EVERY: Duration = Duration::from_secs(15);
const CATCH_UP_BATCH: i64 = 500;
const DELTA_TYPES: [&str; 2] = ["agent.message", "agent.thinking"];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions/{session_id}/events", post(send).get(list))
        .route("/v1/sessions/{session_id}/events/stream", get(stream))
        .route(
            "/v1/sessions/{session_id}/threads/{thread_id}/events",
            get(thread_list),
        )
        .route(
            "/v1/sessions/{session_id}/threads/{thread_id}/stream",
            get(thread_stream),
        )
}

#[derive(Deserialize)]
struct SendBody {
    events: Vec<Value>,
}

/// Queues client events for the session's host and wakes it. The echoes come back with
/// `processed_at: null`; each appears in the log (and on streams) when the host processes it.
async fn send(
    State(st): State<AppState>,
    c: Caller,
    Id(sid): Id,
    JsonBody(body): JsonBody<SendBody>,
) -> ApiResult<RawJson> {
    let t = c.for_session(&sid).await?;
    let ctx = SendContext {
        self_hosted: t.store.session_is_self_hosted(t.id(), &sid).await?,
    };
    let events = validate_send(&body.events, ctx)?;
    for e in &events {
        check_reference(&t, &sid, e).await?;
    }
    let echoes = t.store.enqueue_inputs(t.id(), &sid, events).await?;
    st.runtime.wake(t.id(), &sid);
    if ctx.self_hosted {
        // The input may have queued a work item for a worker.
        st.work.queued();
    }
    let data: Vec<String> = echoes.iter().map(Value::to_string).collect();
    Ok(RawJson(format!("{{\"data\":[{}]}}", data.join(","))))
}

/// A confirmation or tool result must answer a call of the right kind in this session.
async fn check_reference(t: &Tenant, sid: &str, e: &oma_core::events::NewEvent) -> ApiResult<()> {
    let (key, kinds): (&str, &[&str]) = match e.kind.as_str() {
        "user.tool_confirmation" => ("tool_use_id", &["agent.tool_use", "agent.mcp_tool_use"]),
        "user.custom_tool_result" => ("custom_tool_use_id", &["agent.custom_tool_use"]),
        "user.tool_result" => ("tool_use_id", &["agent.tool_use"]),
        _ => return Ok(()),
    };
    let id = e.body.get(key).and_then(Value::as_str).unwrap_or_default();
    match t.store.event_kind(t.id(), sid, id).await? {
        Some(kind) if kinds.contains(&kind.as_str()) => Ok(()),
        _ => Err(ApiError(Error::invalid(format!(
            "{key}: `{id}` is not a {} event of this session",
            kinds.join(" or ")
        )))),
    }
}

pub(crate) fn committed(e: StoredEvent) -> Committed {
    Committed::from(e)
}

async fn list(c: Caller, Id(sid): Id, q: QueryMap) -> ApiResult<RawJson> {
    let t = c.for_session(&sid).await?;
    let filter = EventFilter {
        types: q.get_all("types"),
        gt: q.time("created_at[gt]")?,
        gte: q.time("created_at[gte]")?,
        lt: q.time("created_at[lt]")?,
        lte: q.time("created_at[lte]")?,
        // The session-level list is the primary thread's (with what children cross-post).
        thread: Some(None),
    };
    let query = q.list_query(100, 1000, false)?;
    Ok(page_json(
        t.store.list_events(t.id(), &sid, &filter, &query).await?,
    ))
}

/// A thread's history (`limit` and `page` only).
async fn thread_list(
    t: Tenant,
    Id((sid, tid)): Id<(String, String)>,
    q: QueryMap,
) -> ApiResult<RawJson> {
    let scope = t.store.thread_scope(t.id(), &sid, &tid).await?;
    let filter = EventFilter {
        thread: Some(scope),
        ..EventFilter::default()
    };
    let query = q.list_query(100, 1000, false)?;
    Ok(page_json(
        t.store.list_events(t.id(), &sid, &filter, &query).await?,
    ))
}

async fn stream(
    st: State<AppState>,
    c: Caller,
    Id(sid): Id,
    q: QueryMap,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let t = c.for_session(&sid).await?;
    open_stream(st, t, sid, None, q, headers).await
}

/// A thread's live stream: the same contract, scoped to that thread's events.
async fn thread_stream(
    st: State<AppState>,
    t: Tenant,
    Id((sid, tid)): Id<(String, String)>,
    q: QueryMap,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let scope = t.store.thread_scope(t.id(), &sid, &tid).await?;
    open_stream(st, t, sid, Some(scope), q, headers).await
}

async fn open_stream(
    State(st): State<AppState>,
    t: Tenant,
    sid: String,
    thread: Option<Option<String>>,
    q: QueryMap,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let deltas = q.get_all("event_deltas");
    if deltas.len() > 100 {
        return Err(ApiError(Error::invalid("event_deltas: at most 100 values")));
    }
    if let Some(bad) = deltas.iter().find(|d| !DELTA_TYPES.contains(&d.as_str())) {
        return Err(ApiError(Error::invalid(format!(
            "event_deltas: `{bad}` is not supported (use agent.message or agent.thinking)"
        ))));
    }
    let resume_from = match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        None => None,
        Some(v) => Some(v.trim().parse::<i64>().map_err(|_| {
            ApiError(Error::invalid(format!(
                "Last-Event-ID must be an event sequence number, got `{v}`"
            )))
        })?),
    };
    // Subscribe before reading the log position: whatever commits from here on reaches us.
    let rx = st.hub.subscribe(t.id(), &sid);
    let last = t.store.session_last_seq(t.id(), &sid).await?;
    let start = resume_from.map_or(last, |n| n.clamp(0, last));
    let (tx, out) = mpsc::channel::<Result<Event, Infallible>>(64);
    let pump = Pump {
        store: t.store.clone(),
        tenant: t.id.clone(),
        session: sid,
        thread,
        previews: DELTA_TYPES
            .iter()
            .copied()
            .filter(|t| deltas.iter().any(|d| d == t))
            .collect(),
        started: std::collections::HashSet::new(),
        cursor: start,
        tx,
    };
    tokio::spawn(pump.run(rx, st.hub.clone(), resume_from.is_some()));
    let sse = Sse::new(ReceiverStream::new(out)).keep_alive(
        KeepAlive::new()
            .interval(PING_EVERY)
            .event(Event::default().event("ping").data("{}")),
    );
    Ok((
        [("x-accel-buffering", "no"), ("cache-control", "no-cache")],
        sse,
    )
        .into_response())
}

/// Moves events from the log and the hub to one SSE connection, in `seq` order.
struct Pump {
    /// Event types whose live previews this connection asked for (`event_deltas[]`).
    previews: Vec<&'static str>,
    /// Previewed event ids this connection has seen `event_start` for.
    started: std::collections::HashSet<String>,
    store: Arc<Store>,
    tenant: Arc<str>,
    session: String,
    /// Only events of this thread (`Some(None)`: the primary thread), or all events.
    thread: Option<Option<String>>,
    /// The last `seq` delivered (or skipped as already known).
    cursor: i64,
    tx: mpsc::Sender<Result<Event, Infallible>>,
}

enum Flow {
    Continue,
    Stop,
}

impl Pump {
    async fn run(mut self, mut rx: broadcast::Receiver<HubMsg>, hub: Arc<Hub>, replay: bool) {
        let mut shutdown = hub.shutdown_signal();
        if replay && matches!(self.catch_up().await, Flow::Stop) {
            return;
        }
        loop {
            let received = tokio::select! {
                r = rx.recv() => r,
                _ = shutdown.changed() => return,
                _ = self.tx.closed() => return,
            };
            let flow = match received {
                Ok(HubMsg::Event(ev)) => self.deliver_live(&ev).await,
                Ok(HubMsg::Preview(p)) => self.deliver_preview(&p).await,
                // Fell behind the hub's buffer: the log has everything, read it from there.
                Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up().await,
                Err(broadcast::error::RecvError::Closed) => Flow::Stop,
            };
            if matches!(flow, Flow::Stop) {
                return;
            }
        }
    }

    /// Forwards a live preview to a connection that opted in. Previews are never stored or
    /// replayed; a connection that joined mid-stream gets an `event_start` before its first
    /// delta, so each preview it sees is well-formed.
    async fn deliver_preview(&mut self, p: &Preview) -> Flow {
        // The session-level stream previews the primary thread only; a thread stream, its own.
        let scope_ok = match &self.thread {
            None => p.thread_id.is_none(),
            Some(scope) => scope.as_deref() == p.thread_id.as_deref(),
        };
        if !scope_ok || !self.previews.contains(&p.event_type) {
            return Flow::Continue;
        }
        if self.started.insert(p.event_id.clone()) && p.delta.is_some() {
            let start = Preview {
                delta: None,
                ..p.clone()
            };
            let (name, data) = start.frame();
            if self
                .tx
                .send(Ok(Event::default().event(name).data(data)))
                .await
                .is_err()
            {
                return Flow::Stop;
            }
        }
        let (name, data) = p.frame();
        if self
            .tx
            .send(Ok(Event::default().event(name).data(data)))
            .await
            .is_err()
        {
            return Flow::Stop;
        }
        Flow::Continue
    }

    async fn deliver_live(&mut self, ev: &Committed) -> Flow {
        if ev.kind == "span.model_request_end" {
            // The end of a model request closes every preview it opened.
            self.started.clear();
        }
        if ev.seq <= self.cursor {
            return Flow::Continue;
        }
        if ev.seq > self.cursor + 1 && matches!(self.catch_up().await, Flow::Stop) {
            return Flow::Stop;
        }
        if ev.seq <= self.cursor {
            return Flow::Continue;
        }
        self.cursor = ev.seq;
        let flow = if self.wants(ev.thread_id.as_deref(), &ev.kind, &ev.body) {
            self.emit(ev.seq, &ev.kind, &ev.body).await
        } else {
            Flow::Continue
        };
        if ev.kind == "session.deleted" {
            Flow::Stop
        } else {
            flow
        }
    }

    /// Delivers every logged event after the cursor.
    async fn catch_up(&mut self) -> Flow {
        loop {
            let batch = match self
                .store
                .events_after(&self.tenant, &self.session, self.cursor, CATCH_UP_BATCH)
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(session_id = %self.session, error = %e, "SSE catch-up read failed");
                    let env = crate::error::envelope(&Error::internal(
                        "event stream interrupted; reconnect with Last-Event-ID",
                    ));
                    let _ = self
                        .tx
                        .send(Ok(Event::default().event("error").data(env.to_string())))
                        .await;
                    return Flow::Stop;
                }
            };
            let done = (batch.len() as i64) < CATCH_UP_BATCH;
            for e in batch {
                self.cursor = e.seq;
                if !self.wants(e.thread_id.as_deref(), &e.kind, &e.body) {
                    continue;
                }
                if matches!(self.emit(e.seq, &e.kind, &e.body).await, Flow::Stop) {
                    return Flow::Stop;
                }
            }
            if done {
                return Flow::Continue;
            }
        }
    }

    /// Whether this connection carries an event of `thread` (session-wide events such as
    /// `session.deleted` reach every stream).
    fn wants(&self, thread: Option<&str>, kind: &str, body: &str) -> bool {
        match &self.thread {
            // The session stream is the primary thread's, with what children cross-post.
            None | Some(None) => oma_core::events::stored_on_session_stream(thread, kind, body),
            Some(Some(scope)) => Some(scope.as_str()) == thread || kind == "session.deleted",
        }
    }

    async fn emit(&self, seq: i64, kind: &str, body: &str) -> Flow {
        let frame = Event::default().event(kind).id(seq.to_string()).data(body);
        if self.tx.send(Ok(frame)).await.is_err() {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}
