//! Retention: what `oma prune` and the server's janitor delete, and what they never touch.
//!
//! - **Events** older than the window, of sessions that are not running: a `terminated` session
//!   accepts no new events, so all of its old events may go; an `idle` session may resume at
//!   any time, so only the events its newest context compaction already summarised
//!   (`seq <= upto_seq`) may go, and never `system.message` events (they keep applying after
//!   their turn was summarised, see the runtime's projection). A session that is running or
//!   rescheduling, or has queued input, keeps everything. Those conditions are part of every
//!   DELETE statement, so a session that starts a turn while a prune runs is skipped from the
//!   next batch on; and what may go is exactly what no model context reads again.
//! - **Spilled bodies** of the deleted events (the DELETE returns their blob keys), and
//!   spilled-event blobs whose row is gone for another reason (a deleted session, a crash
//!   between a commit and a blob delete). A blob is written before its row commits, so orphans
//!   younger than a grace period are left alone.
//! - **Model stream records** (a request's partial text, kept for crash recovery) not updated
//!   within the window, except those of running sessions; **operational events** older than
//!   their window.
//! - **Snapshots of sessions that no longer exist** (`snapshots/<session id>/…`), and blobs
//!   under a prefix with a lifecycle rule (TTL per prefix) older than the TTL. Prefixes whose
//!   blobs rows point at (`events`, `files`, `skills`) cannot have a TTL: they go with their rows.
//!
//! Deletes are batched ([`Policy::batch_rows`] rows per statement), so a prune never holds the
//! SQLite writer for long and API writes interleave with it. Event ids are time-ordered, so
//! "older than the window" is a range on the unique index over `events.id`.
//!
//! Blob ages come from the local blob directory's modification times.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Result, Store, StoreError};

/// Rows per DELETE statement unless the policy says otherwise. Measured on SQLite (see
/// `examples/prune_bench.rs`): 2 000-row statements prune a million events of one session as
/// fast as 10 000-row ones or faster, and keep a concurrent append's p99 near 50 ms instead of
/// ~270 ms.
pub const DEFAULT_BATCH_ROWS: i64 = 2_000;

/// How old an unreferenced blob must be before it counts as an orphan.
pub const DEFAULT_ORPHAN_GRACE: Duration = Duration::from_secs(60 * 60);

/// Blob prefixes whose blobs database rows point at: they are deleted with their rows, never
/// by age.
pub const ROW_OWNED_PREFIXES: [&str; 3] = ["events", "files", "skills"];

/// A lifecycle rule: blobs under `prefix` older than `ttl` are deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobTtl {
    pub prefix: String,
    pub ttl: Duration,
}

impl BlobTtl {
    /// A rule, refused for prefixes rows point at and for malformed prefixes.
    pub fn new(prefix: &str, ttl: Duration) -> Result<Self> {
        let prefix = prefix.trim_matches('/');
        let valid = oma_blob::is_valid_key(prefix);
        if !valid {
            return Err(StoreError::Config(format!(
                "blob lifecycle rule for `{prefix}`: a prefix is a blob folder such as `snapshots`"
            )));
        }
        let top = prefix.split('/').next().unwrap_or_default();
        if ROW_OWNED_PREFIXES.contains(&top) {
            return Err(StoreError::Config(format!(
                "blob lifecycle rule for `{prefix}`: blobs under `{top}/` belong to database rows \
                 and are deleted with them (set a window such as `events_days` instead)"
            )));
        }
        Ok(Self {
            prefix: prefix.to_string(),
            ttl,
        })
    }
}

/// What to prune. `None` keeps that kind of record forever.
#[derive(Debug, Clone)]
pub struct Policy {
    pub events: Option<Duration>,
    pub model_streams: Option<Duration>,
    pub ops_events: Option<Duration>,
    pub blob_ttls: Vec<BlobTtl>,
    pub orphan_grace: Duration,
    pub batch_rows: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            events: None,
            model_streams: None,
            ops_events: None,
            blob_ttls: Vec::new(),
            orphan_grace: DEFAULT_ORPHAN_GRACE,
            batch_rows: DEFAULT_BATCH_ROWS,
        }
    }
}

/// What a prune deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    pub events: u64,
    /// Sessions that lost at least one event.
    pub sessions: u64,
    /// Spilled bodies of the deleted events.
    pub spilled_blobs: u64,
    pub model_streams: u64,
    pub ops_events: u64,
    /// Spilled-event blobs no row points at any more.
    pub orphaned_event_blobs: u64,
    /// Snapshot blobs of sessions that no longer exist.
    pub orphaned_snapshots: u64,
    /// Blobs removed by lifecycle rules.
    pub expired_blobs: u64,
}

impl Store {
    /// Prunes by `policy` as of now.
    pub async fn prune(&self, policy: &Policy) -> Result<Pruned> {
        self.prune_at(policy, SystemTime::now()).await
    }

    /// Prunes this shard by `policy`; the blob store is shared with `siblings` (the other
    /// shards), so a blob counts as an orphan only when none of them references it either.
    pub async fn prune_sharded(
        &self,
        policy: &Policy,
        siblings: &[std::sync::Arc<Store>],
    ) -> Result<Pruned> {
        self.prune_among(policy, SystemTime::now(), siblings).await
    }

    /// Prunes by `policy` as if the time were `now` (tests and benchmarks look ahead instead
    /// of waiting).
    pub async fn prune_at(&self, policy: &Policy, now: SystemTime) -> Result<Pruned> {
        self.prune_among(policy, now, &[]).await
    }

    async fn prune_among(
        &self,
        policy: &Policy,
        now: SystemTime,
        siblings: &[std::sync::Arc<Store>],
    ) -> Result<Pruned> {
        let mut out = Pruned::default();
        let batch = policy.batch_rows.max(1);
        if let Some(window) = policy.events {
            let cutoff = event_id_floor(millis(now.checked_sub(window).unwrap_or(UNIX_EPOCH)));
            self.prune_events(&cutoff, batch, &mut out).await?;
        }
        if let Some(window) = policy.model_streams {
            out.model_streams = self
                .prune_model_streams(micros(now.checked_sub(window).unwrap_or(UNIX_EPOCH)), batch)
                .await?;
        }
        if let Some(window) = policy.ops_events {
            out.ops_events = self
                .prune_ops_events_batched(
                    micros(now.checked_sub(window).unwrap_or(UNIX_EPOCH)),
                    batch,
                )
                .await?;
        }
        // The sweeps walk the blob folder by modification time; object storage expires its
        // objects with the bucket's own lifecycle rules instead.
        if let Some(root) = self.blobs().and_then(|b| b.root()).map(Path::to_path_buf) {
            let grace_cutoff = now.checked_sub(policy.orphan_grace).unwrap_or(UNIX_EPOCH);
            out.orphaned_event_blobs = self
                .sweep_event_blobs(&root, grace_cutoff, siblings)
                .await?;
            out.orphaned_snapshots = self.sweep_snapshots(&root, grace_cutoff, siblings).await?;
            for rule in &policy.blob_ttls {
                let cutoff = now.checked_sub(rule.ttl).unwrap_or(UNIX_EPOCH);
                for (key, modified) in walk(&root, &rule.prefix).await? {
                    if modified < cutoff && self.delete_blob(&key).await {
                        out.expired_blobs += 1;
                    }
                }
            }
        }
        Ok(out)
    }

    async fn prune_events(&self, cutoff_id: &str, batch: i64, out: &mut Pruned) -> Result<()> {
        let mut after = String::new();
        loop {
            // Idle and terminated sessions only; an idle one only with a compaction to bound it.
            let page: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
                "SELECT s.id, s.status, s.last_seq, \
                 (SELECT MAX(c.upto_seq) FROM context_compactions c WHERE c.session_id = s.id) \
                 FROM sessions s WHERE s.id > $1 AND s.status IN ('idle', 'terminated') \
                 ORDER BY s.id LIMIT 500",
            )
            .bind(&after)
            .fetch_all(self.reader())
            .await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after.clone_from(&last.0);
            for (session, status, last_seq, upto) in page {
                let terminated = status == "terminated";
                let hi = match (terminated, upto) {
                    (true, _) => last_seq,
                    (false, Some(upto)) => upto.min(last_seq),
                    (false, None) => continue,
                };
                let n = self
                    .prune_session_events(&session, terminated, hi, cutoff_id, batch, out)
                    .await?;
                if n > 0 {
                    out.sessions += 1;
                    out.events += n;
                }
            }
        }
    }

    /// Deletes the session's events with `seq <= hi` older than `cutoff_id`, in windows of
    /// `batch` sequence numbers.
    async fn prune_session_events(
        &self,
        session: &str,
        terminated: bool,
        hi: i64,
        cutoff_id: &str,
        batch: i64,
        out: &mut Pruned,
    ) -> Result<u64> {
        // The range worth visiting: from the oldest event left to the newest old one.
        let bounds: (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT MIN(seq), MAX(seq) FROM events WHERE session_id = $1 AND seq <= $2 AND id < $3",
        )
        .bind(session)
        .bind(hi)
        .bind(cutoff_id)
        .fetch_one(self.reader())
        .await?;
        let (Some(lo), Some(hi)) = bounds else {
            return Ok(0);
        };
        let sql = if terminated {
            "DELETE FROM events WHERE session_id = $1 AND seq >= $2 AND seq < $3 AND seq <= $4 \
             AND id < $5 \
             AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = $1 AND s.status = 'terminated') \
             RETURNING blob_key"
        } else {
            "DELETE FROM events WHERE session_id = $1 AND seq >= $2 AND seq < $3 AND seq <= $4 \
             AND id < $5 AND type <> 'system.message' \
             AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = $1 \
                         AND s.status IN ('idle', 'terminated')) \
             AND NOT EXISTS (SELECT 1 FROM session_inputs q WHERE q.session_id = $1) \
             RETURNING blob_key"
        };
        let mut deleted = 0;
        let mut from = lo;
        while from <= hi {
            let keys: Vec<Option<String>> = sqlx::query_scalar(sql)
                .bind(session)
                .bind(from)
                .bind(from.saturating_add(batch))
                .bind(hi)
                .bind(cutoff_id)
                .fetch_all(self.writer())
                .await?;
            deleted += keys.len() as u64;
            // After the commit: a crash in between leaves orphans the sweep removes later.
            for key in keys.into_iter().flatten() {
                if self.delete_blob(&key).await {
                    out.spilled_blobs += 1;
                }
            }
            from = from.saturating_add(batch);
        }
        Ok(deleted)
    }

    async fn prune_model_streams(&self, before_micros: i64, batch: i64) -> Result<u64> {
        self.delete_in_batches(
            "DELETE FROM model_streams WHERE (session_id, span_id) IN ( \
             SELECT m.session_id, m.span_id FROM model_streams m WHERE m.updated_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = m.session_id \
                             AND s.status IN ('running', 'rescheduling')) \
             LIMIT $2)",
            before_micros,
            batch,
        )
        .await
    }

    async fn prune_ops_events_batched(&self, before_micros: i64, batch: i64) -> Result<u64> {
        self.delete_in_batches(
            "DELETE FROM ops_events WHERE id IN ( \
             SELECT id FROM ops_events WHERE at < $1 ORDER BY at LIMIT $2)",
            before_micros,
            batch,
        )
        .await
    }

    /// Runs `sql` (binding a cutoff and a batch size) until a batch deletes less than a full one.
    async fn delete_in_batches(&self, sql: &'static str, cutoff: i64, batch: i64) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = sqlx::query(sql)
                .bind(cutoff)
                .bind(batch)
                .execute(self.writer())
                .await?
                .rows_affected();
            total += n;
            if n < batch as u64 {
                return Ok(total);
            }
        }
    }

    /// `events/<tenant>/<session>/<event id>` blobs older than the grace cutoff whose event row
    /// is gone.
    async fn sweep_event_blobs(
        &self,
        root: &Path,
        grace_cutoff: SystemTime,
        siblings: &[std::sync::Arc<Store>],
    ) -> Result<u64> {
        let mut n = 0;
        for (key, modified) in walk(root, "events").await? {
            let Some(event_id) = key.rsplit('/').next() else {
                continue;
            };
            if modified >= grace_cutoff {
                continue;
            }
            let mut rows = 0i64;
            for store in std::iter::once(self).chain(siblings.iter().map(|s| &**s)) {
                rows += sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events WHERE id = $1")
                    .bind(event_id)
                    .fetch_one(store.reader())
                    .await?;
            }
            if rows == 0 && self.delete_blob(&key).await {
                n += 1;
            }
        }
        Ok(n)
    }

    /// `snapshots/<session id>/…` blobs older than the grace cutoff of sessions that no longer
    /// exist.
    async fn sweep_snapshots(
        &self,
        root: &Path,
        grace_cutoff: SystemTime,
        siblings: &[std::sync::Arc<Store>],
    ) -> Result<u64> {
        let mut n = 0;
        let mut known: Option<(String, bool)> = None;
        for (key, modified) in walk(root, "snapshots").await? {
            let Some(session) = key.split('/').nth(1) else {
                continue;
            };
            if modified >= grace_cutoff {
                continue;
            }
            let exists = match &known {
                Some((id, exists)) if id == session => *exists,
                _ => {
                    let mut rows = 0i64;
                    for store in std::iter::once(self).chain(siblings.iter().map(|s| &**s)) {
                        rows += sqlx::query_scalar::<_, i64>(
                            "SELECT COUNT(*) FROM sessions WHERE id = $1",
                        )
                        .bind(session)
                        .fetch_one(store.reader())
                        .await?;
                    }
                    known = Some((session.to_string(), rows > 0));
                    rows > 0
                }
            };
            if !exists && self.delete_blob(&key).await {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Deletes one blob; a failure is logged and left for the next run (whose sweep finds it).
    async fn delete_blob(&self, key: &str) -> bool {
        let Some(blobs) = self.blobs() else {
            return false;
        };
        match blobs.delete(key).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(op = "retention", blob = key, error = %e, "could not delete a blob");
                false
            }
        }
    }
}

/// The keys under `prefix` of the blob directory at `root`, with their modification times.
/// Files being written (`….tmp-…`) are left out.
async fn walk(root: &Path, prefix: &str) -> Result<Vec<(String, SystemTime)>> {
    let base = root.join(prefix);
    let prefix = prefix.to_string();
    tokio::task::spawn_blocking(move || walk_blocking(base, prefix))
        .await
        .map_err(|e| StoreError::Config(format!("blob walk failed: {e}")))?
}

fn walk_blocking(base: PathBuf, prefix: String) -> Result<Vec<(String, SystemTime)>> {
    let io = |e: std::io::Error| StoreError::Config(format!("reading the blob directory: {e}"));
    let mut out = Vec::new();
    let mut stack = vec![(base, prefix)];
    while let Some((dir, key)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io)?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name.contains(".tmp-") {
                continue;
            }
            let child = format!("{key}/{name}");
            let meta = entry.metadata().map_err(io)?;
            if meta.is_dir() {
                stack.push((entry.path(), child));
            } else if meta.is_file() {
                out.push((child, meta.modified().map_err(io)?));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The smallest event id made at `millis`: every event id made earlier sorts below it (ids are
/// 48 bits of milliseconds then 80 random bits, in fixed-width base62; see `oma_core::ids`).
pub fn event_id_floor(millis: u64) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut value: u128 = u128::from(millis & ((1 << 48) - 1)) << 80;
    let mut body = [b'0'; 22];
    for slot in body.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    let mut out = format!("{}_", oma_core::ids::EVENT);
    out.extend(body.iter().map(|b| char::from(*b)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_floor_splits_ids_by_creation_time() {
        // An id made between two clock readings sorts between the floors of those readings.
        let m0 = millis(SystemTime::now());
        let id = oma_core::ids::new_id(oma_core::ids::EVENT);
        let m1 = millis(SystemTime::now());
        let (lo, hi) = (event_id_floor(m0), event_id_floor(m1 + 1));
        assert!(lo <= id && id < hi, "{lo} {id} {hi}");
        assert_eq!(lo.len(), id.len());
        assert!(event_id_floor(m0 - 1000) < lo);
    }

    #[test]
    fn lifecycle_rules_refuse_prefixes_rows_own() {
        assert!(BlobTtl::new("snapshots", Duration::from_secs(1)).is_ok());
        assert_eq!(
            BlobTtl::new("/exports/daily/", Duration::ZERO)
                .unwrap()
                .prefix,
            "exports/daily"
        );
        for bad in ["events", "files/t", "skills", "", "../x", "a b"] {
            assert!(BlobTtl::new(bad, Duration::ZERO).is_err(), "{bad}");
        }
    }
}
