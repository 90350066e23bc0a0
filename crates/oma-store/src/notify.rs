//! Notes between nodes over PostgreSQL `LISTEN/NOTIFY` (DESIGN principle 2).
//!
//! Two channels. `oma_events`: events were appended to a session (sent inside the appending
//! transaction, so it is delivered exactly when the events are visible), or it was deleted;
//! nodes with subscribers of the session read them from the log. `oma_wake`: a session has work for its owner (input queued on
//! another node), or, without a session, "claim orphaned sessions now" (a node drained).
//! Notes are hints: a lost note delays work until the next periodic sweep and loses nothing,
//! because the log and the input queue are the truth. SQLite has one node and no channel.

use serde::{Deserialize, Serialize};

use crate::{Backend, Result, Store, StoreError};

pub const EVENTS_CHANNEL: &str = "oma_events";
pub const WAKE_CHANNEL: &str = "oma_wake";

/// Events `from..=to` of a session were committed by `node`; or, with `deleted`, the session
/// was deleted and `from` is the `seq` its streams' `session.deleted` takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsNote {
    #[serde(rename = "t")]
    pub tenant: String,
    #[serde(rename = "s")]
    pub session: String,
    pub from: i64,
    pub to: i64,
    #[serde(rename = "n")]
    pub node: String,
    #[serde(rename = "d", default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// Work for `node` (empty: for whichever node claims it) on a session; without a session,
/// a request to every node to claim orphaned sessions now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WakeNote {
    #[serde(rename = "t", default)]
    pub tenant: String,
    #[serde(rename = "s", default)]
    pub session: String,
    #[serde(rename = "n", default)]
    pub node: String,
}

/// A note's payload. Plain string fields only, so encoding cannot fail.
pub fn encode(note: &impl Serialize) -> String {
    serde_json::to_string(note).unwrap_or_default()
}

/// A note as a listener receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Events(EventsNote),
    Wake(WakeNote),
    /// The connection was lost and re-made: notes sent meanwhile are gone, so whoever
    /// relies on them catches up from the database.
    Reconnected,
}

/// A connection listening on both channels.
pub struct Listener {
    inner: sqlx::postgres::PgListener,
}

impl Listener {
    /// The next note. Undecodable payloads (another version's) are skipped.
    pub async fn recv(&mut self) -> Result<Note> {
        loop {
            let Some(n) = self.inner.try_recv().await? else {
                return Ok(Note::Reconnected);
            };
            let note = match n.channel() {
                EVENTS_CHANNEL => serde_json::from_str(n.payload()).ok().map(Note::Events),
                WAKE_CHANNEL => serde_json::from_str(n.payload()).ok().map(Note::Wake),
                _ => None,
            };
            if let Some(note) = note {
                return Ok(note);
            }
            tracing::warn!(
                op = "cluster",
                channel = n.channel(),
                "ignored a note that does not decode"
            );
        }
    }
}

/// Sends an events note inside `tx` (PostgreSQL; nothing on SQLite).
pub(crate) async fn notify_events_in_tx(
    store: &Store,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    note: &EventsNote,
) -> Result<()> {
    if store.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(EVENTS_CHANNEL)
            .bind(encode(note))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

impl Store {
    /// A listener on the cluster channels, or `None` on SQLite (one node, nothing to hear).
    pub async fn listener(&self) -> Result<Option<Listener>> {
        let Some(url) = self.pg_url() else {
            return Ok(None);
        };
        let mut inner = sqlx::postgres::PgListener::connect(url).await?;
        inner.eager_reconnect(true);
        inner
            .listen_all([EVENTS_CHANNEL, WAKE_CHANNEL])
            .await
            .map_err(StoreError::Database)?;
        Ok(Some(Listener { inner }))
    }

    /// Sends a wake note (PostgreSQL; nothing on SQLite, where the one node wakes in-process).
    pub async fn notify_wake(&self, note: &WakeNote) -> Result<()> {
        if self.backend() != Backend::Postgres {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(WAKE_CHANNEL)
            .bind(encode(note))
            .execute(self.writer())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_round_trip_in_a_few_bytes() {
        let n = EventsNote {
            tenant: "default".into(),
            session: "sesn_1".into(),
            from: 3,
            to: 9,
            node: "a".into(),
            deleted: false,
        };
        let s = encode(&n);
        assert!(s.len() < 200, "{s}");
        assert_eq!(serde_json::from_str::<EventsNote>(&s).ok(), Some(n));
        // A sweep request is an empty object.
        let sweep = serde_json::from_str::<WakeNote>("{}").ok();
        assert!(sweep.is_some_and(|w| w.session.is_empty() && w.node.is_empty()));
    }
}
