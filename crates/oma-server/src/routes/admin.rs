//! `/v1/oma/admin/*`: the operator's API, authenticated by the deployment's admin key
//! (`OMA_ADMIN_KEY`), never by a tenant's key.
//!
//! - `GET /v1/oma/admin/ops_events`: operational events, filtered like `oma events query`
//!   (`kind`, `since`, `until`, `tenant`, `session`, `where=name=value`, `group_by`), as a page
//!   of rows or as group counts.
//! - `GET /v1/oma/admin/logs`: the server's live log records as SSE (`component`, `tenant`,
//!   `session`, `level` filters); what `oma tail` reads.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use oma_core::Error;
use oma_core::cursor::Cursor;
use oma_ops::query::{parse_group_by, parse_time, parse_where};
use oma_ops::tail::{LogTail, TailFilter, parse_level};
use oma_store::ops_events::{OpsFilter, OpsPage};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::auth::presented_key;
use crate::error::{ApiError, ApiResult};
use crate::extract::{QueryMap, RawJson};
use crate::state::AppState;

const PING_EVERY: Duration = Duration::from_secs(15);

/// What the admin routes need: the admin key (kept hashed) and the log fan-out.
#[derive(Default)]
pub struct Admin {
    key_hash: Option<String>,
    logs: Option<LogTail>,
}

// The key hash is not the key, but has no business in logs either.
impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("enabled", &self.key_hash.is_some())
            .field("logs", &self.logs.is_some())
            .finish()
    }
}

impl Admin {
    /// `key`: the admin key (`None` or empty disables the admin API); `logs`: the fan-out the
    /// logging layer feeds (`None`: `/logs` is unavailable).
    pub fn new(key: Option<&str>, logs: Option<LogTail>) -> Self {
        Self {
            key_hash: key
                .filter(|k| !k.is_empty())
                .map(oma_store::tenants::hash_key),
            logs,
        }
    }

    fn is_admin_key(&self, presented: &str) -> bool {
        let Some(expected) = &self.key_hash else {
            return false;
        };
        // Compared as hashes of fixed length, in constant time: the time taken says nothing
        // about how much of a guess was right.
        let got = oma_store::tenants::hash_key(presented);
        got.len() == expected.len()
            && got
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/oma/admin/ops_events", get(ops_events))
        .route("/v1/oma/admin/logs", get(logs))
}

/// A request made with the admin key.
pub struct AdminCaller;

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let key = presented_key(parts).filter(|k| !k.is_empty()).ok_or_else(|| {
            ApiError(Error::unauthenticated(
                "missing admin key: send it as `x-api-key: <key>` or `Authorization: Bearer <key>`",
            ))
        })?;
        if st.admin.is_admin_key(key) {
            return Ok(AdminCaller);
        }
        if st.admin.key_hash.is_none() {
            return Err(ApiError(Error::forbidden(
                "the admin API is disabled on this server: start it with OMA_ADMIN_KEY set",
            )));
        }
        // A tenant's key is a real key without the right; anything else is no key at all.
        let tenant_key = st.auth.owner_of(st.tenants.control(), key).await?.is_some();
        Err(ApiError(if tenant_key {
            Error::forbidden("this is a tenant API key; the admin API needs the admin key")
        } else {
            Error::unauthenticated("invalid admin key")
        }))
    }
}

fn invalid(message: String) -> ApiError {
    ApiError(Error::invalid(message))
}

/// The filter shared by rows and groups.
fn filter_of(q: &QueryMap) -> ApiResult<OpsFilter> {
    let now = oma_core::time::now_micros();
    let time = |name: &str| -> ApiResult<Option<i64>> {
        match q.get(name) {
            None | Some("") => Ok(None),
            Some(v) => parse_time(v, now)
                .map(Some)
                .map_err(|e| invalid(format!("`{name}`: {e}"))),
        }
    };
    let text = |name: &str| q.get(name).filter(|v| !v.is_empty()).map(str::to_string);
    let kinds = q
        .get_all("kind")
        .iter()
        .flat_map(|k| k.split(','))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    let equals = q
        .get_all("where")
        .iter()
        .map(|w| parse_where(w).map_err(invalid))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(OpsFilter {
        kinds,
        since: time("since")?,
        until: time("until")?,
        tenant: text("tenant"),
        session: text("session"),
        equals,
    })
}

async fn ops_events(
    State(st): State<AppState>,
    _admin: AdminCaller,
    q: QueryMap,
) -> ApiResult<RawJson> {
    let filter = filter_of(&q)?;
    let store = &st.tenants;
    let limit = q.limit(100, 1000)?;
    if let Some(g) = q.get("group_by").filter(|g| !g.is_empty()) {
        let keys = parse_group_by(g).map_err(invalid)?;
        let groups = store.group_ops_events(&filter, &keys, limit).await?;
        let data: Vec<Value> = groups
            .into_iter()
            .map(|g| {
                let mut o = serde_json::Map::new();
                for (k, v) in keys.iter().zip(g.values) {
                    o.insert(k.clone(), v.map_or(Value::Null, Value::String));
                }
                o.insert("count".into(), g.count.into());
                o.insert(
                    "avg_duration_ms".into(),
                    g.avg_duration_ms.map_or(Value::Null, Value::from),
                );
                Value::Object(o)
            })
            .collect();
        return Ok(RawJson(json!({"data": data, "group_by": keys}).to_string()));
    }
    let after = q.cursor()?.map(|c| (c.key, c.id));
    let (rows, more) = store
        .query_ops_events(&filter, &OpsPage { limit, after })
        .await?;
    let next = if more {
        rows.last().map(|r| {
            Cursor {
                key: r.at,
                id: r.id.clone(),
                desc: true,
            }
            .encode()
        })
    } else {
        None
    };
    let data: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "at": oma_core::time::format_micros(r.at),
                "kind": r.kind,
                "tenant_id": r.tenant_id,
                "session_id": r.session_id,
                "outcome": r.outcome,
                "duration_ms": r.duration_ms,
                "fields": r.fields,
            })
        })
        .collect();
    Ok(RawJson(
        json!({"data": data, "next_page": next}).to_string(),
    ))
}

async fn logs(State(st): State<AppState>, _admin: AdminCaller, q: QueryMap) -> ApiResult<Response> {
    let Some(tail) = &st.admin.logs else {
        return Err(ApiError(Error::new(
            oma_core::ErrorKind::Unavailable,
            "this server does not publish its logs (the log tail is not installed)",
        )));
    };
    let text = |name: &str| q.get(name).filter(|v| !v.is_empty()).map(str::to_string);
    let level = match text("level") {
        None => None,
        Some(l) => Some(parse_level(&l).ok_or_else(|| {
            invalid(format!(
                "`level` must be error, warn, info, debug or trace, got `{l}`"
            ))
        })?),
    };
    let filter = TailFilter {
        component: text("component"),
        tenant: text("tenant"),
        session: text("session"),
        level,
    };
    // Subscribed before the response goes out: a client that has the headers sees every
    // record logged from then on.
    let rx = tail.subscribe();
    let (tx, out) = mpsc::channel::<Result<Event, Infallible>>(256);
    tokio::spawn(pump(rx, filter, tx, st.hub.shutdown_signal()));
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

/// Moves matching records to one connection until it closes or the server shuts down.
async fn pump(
    mut rx: broadcast::Receiver<Arc<oma_ops::tail::LogLine>>,
    filter: TailFilter,
    tx: mpsc::Sender<Result<Event, Infallible>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let ev = tokio::select! {
            r = rx.recv() => match r {
                Ok(line) if filter.matches(&line) => Event::default().data(line.json.as_str()),
                Ok(_) => continue,
                // This connection fell behind; logging did not wait for it.
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    Event::default().event("lagged").data(json!({"skipped": n}).to_string())
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tx.closed() => return,
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    // What was logged up to now (`shutting down` among it) still goes out.
                    while let Ok(line) = rx.try_recv() {
                        if filter.matches(&line)
                            && tx.send(Ok(Event::default().data(line.json.as_str()))).await.is_err()
                        {
                            return;
                        }
                    }
                    return;
                }
                continue;
            }
        };
        if tx.send(Ok(ev)).await.is_err() {
            return;
        }
    }
}
