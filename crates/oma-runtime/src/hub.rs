//! In-process fan-out of committed session events to live subscribers (SSE streams).
//!
//! Events are published only after they are committed to the log, tagged with their `seq`.
//! A subscriber that falls behind the channel's buffer is not silently skipped: it sees
//! `Lagged` and catches up from the log (see the SSE route). Deleting a session closes its
//! channel, which ends its streams.
//!
//! Across nodes the hub is fed twice: by this node's hosts, and by the cluster listener with
//! what other nodes committed (see `crate::cluster`). Each channel remembers the newest `seq`
//! it delivered, so a catch-up after a missed note reads only what is new and nothing is sent
//! twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};

const CHANNEL_CAPACITY: usize = 1024;

/// One committed event as subscribers receive it.
#[derive(Debug, Clone)]
pub struct Committed {
    pub seq: i64,
    pub kind: String,
    /// The thread the event belongs to (`None`: the primary thread).
    pub thread_id: Option<String>,
    /// The event's API object, serialised.
    pub body: String,
}

impl From<oma_store::events::StoredEvent> for Committed {
    fn from(e: oma_store::events::StoredEvent) -> Self {
        Self {
            seq: e.seq,
            kind: e.kind,
            thread_id: e.thread_id,
            body: e.body,
        }
    }
}

/// What flows to a session's subscribers, in the order it happened: committed events and the
/// live previews of events still being produced. Sharing one channel keeps a preview's frames
/// ahead of the buffered event that completes it.
#[derive(Debug, Clone)]
pub enum HubMsg {
    Event(Arc<Committed>),
    Preview(Arc<Preview>),
}

/// A stream-only preview (`event_start` / `event_delta`): never stored, never replayed.
#[derive(Debug, Clone)]
pub struct Preview {
    /// The thread the previewed event belongs to (`None`: the primary thread).
    pub thread_id: Option<String>,
    /// `agent.message` or `agent.thinking`.
    pub event_type: &'static str,
    /// The id the buffered event will carry.
    pub event_id: String,
    /// `None` for `event_start`; `Some((index, text))` for an `event_delta` content fragment.
    pub delta: Option<(usize, String)>,
}

impl Preview {
    /// The SSE frame's `event:` name and JSON data.
    pub fn frame(&self) -> (&'static str, String) {
        match &self.delta {
            None => (
                "event_start",
                serde_json::json!({"type": "event_start", "event": {"type": self.event_type, "id": self.event_id}})
                    .to_string(),
            ),
            Some((index, text)) => (
                "event_delta",
                serde_json::json!({
                    "type": "event_delta",
                    "event_id": self.event_id,
                    "delta": {"type": "content_delta", "index": index, "content": {"type": "text", "text": text}},
                })
                .to_string(),
            ),
        }
    }
}

struct Channel {
    tenant: String,
    tx: broadcast::Sender<HubMsg>,
    /// The newest `seq` delivered on this channel.
    last_seq: i64,
}

pub struct Hub {
    channels: Mutex<HashMap<String, Channel>>,
    shutdown: watch::Sender<bool>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            channels: Mutex::default(),
            shutdown: watch::channel(false).0,
        }
    }
}

impl Hub {
    pub fn subscribe(&self, tenant: &str, session_id: &str) -> broadcast::Receiver<HubMsg> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(session_id.to_string())
            .or_insert_with(|| Channel {
                tenant: tenant.to_string(),
                tx: broadcast::channel(CHANNEL_CAPACITY).0,
                last_seq: 0,
            })
            .tx
            .subscribe()
    }

    /// Delivers committed events, in order, to the session's subscribers. Events at or below
    /// the newest `seq` already delivered are dropped (a catch-up overlapped a live publish).
    pub fn publish(&self, session_id: &str, events: Vec<Committed>) {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let Some(ch) = map.get_mut(session_id) else {
            return;
        };
        if ch.tx.receiver_count() == 0 {
            map.remove(session_id);
            return;
        }
        for e in events {
            if e.seq <= ch.last_seq {
                continue;
            }
            ch.last_seq = e.seq;
            // An error only means every receiver went away in the meantime.
            let _ = ch.tx.send(HubMsg::Event(Arc::new(e)));
        }
    }

    /// The session's tenant and the newest `seq` delivered to its streams, if it has any.
    pub fn watched(&self, session_id: &str) -> Option<(String, i64)> {
        let map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        map.get(session_id)
            .filter(|ch| ch.tx.receiver_count() > 0)
            .map(|ch| (ch.tenant.clone(), ch.last_seq))
    }

    /// Every session with live streams: `(tenant, session, newest seq delivered)`.
    pub fn watched_sessions(&self) -> Vec<(String, String, i64)> {
        let map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|(_, ch)| ch.tx.receiver_count() > 0)
            .map(|(sid, ch)| (ch.tenant.clone(), sid.clone(), ch.last_seq))
            .collect()
    }

    /// Sends a live preview to the session's subscribers, if any.
    pub fn preview(&self, session_id: &str, preview: Preview) {
        let map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ch) = map.get(session_id) {
            let _ = ch.tx.send(HubMsg::Preview(Arc::new(preview)));
        }
    }

    /// Tells the session's streams it was deleted (`session.deleted`, never stored, takes
    /// `seq`, the one after its last event, so resuming clients see it as new), then ends them.
    pub fn session_deleted(&self, session_id: &str, seq: i64) {
        let event = oma_core::events::session_deleted();
        self.publish(
            session_id,
            vec![Committed {
                seq,
                kind: event.kind,
                thread_id: None,
                body: event.body.to_string(),
            }],
        );
        self.close_session(session_id);
    }

    /// Ends every stream of a session (it was deleted).
    pub fn close_session(&self, session_id: &str) {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(session_id);
    }

    /// Ends every stream (server shutdown).
    pub fn close_all(&self) {
        let _ = self.shutdown.send(true);
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        map.clear();
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}
