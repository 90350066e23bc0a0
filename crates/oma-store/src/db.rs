//! Connecting: URL → backend, pools and per-connection settings.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

use oma_blob::BlobStore;

use crate::events::SPILL_THRESHOLD_BYTES;
use crate::{Result, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    pub fn of_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::Config(format!(
                "unsupported database URL `{}`: use sqlite://PATH or postgres://…",
                redact_url(url)
            )))
        }
    }
}

/// A handle on one database. Cheap to clone.
///
/// SQLite allows one writer at a time; writes go through a single-connection pool so that
/// transactions queue in-process instead of failing with `SQLITE_BUSY`, while reads use a
/// pool of their own and never wait for writers (WAL). PostgreSQL uses one pool for both.
///
/// A store that serves the API also holds the blob store ([`Store::with_blobs`]): event
/// bodies too large for a row spill there. Without one (CLI tools) events stay inline.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    read: AnyPool,
    write: AnyPool,
    url_redacted: String,
    blobs: Option<BlobStore>,
    spill_threshold: usize,
    /// PostgreSQL's URL, for the one connection that listens for notes between nodes.
    pg_url: Option<std::sync::Arc<str>>,
    /// The writer task that commits host steps in groups, started with the first step.
    committer: std::sync::Arc<std::sync::OnceLock<crate::group_commit::Committer>>,
    /// The writer task that inserts new objects' rows in groups, started with the first.
    inserter: std::sync::Arc<std::sync::OnceLock<crate::batch_insert::Inserter>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("url", &self.url_redacted)
            .field("blobs", &self.blobs.as_ref().map(BlobStore::root))
            .field("spill_threshold", &self.spill_threshold)
            .finish()
    }
}

/// A node paused inside a transaction (a frozen VM, a `SIGSTOP`, a partition) would keep its
/// row locks until TCP gives up on it, and the node that took its sessions over would wait
/// that long. Our transactions wait on nothing but the database (a step's or an API append's
/// large bodies go to the blob store before its transaction opens, see `events::prepare`),
/// so one idle this long belongs to a node that stopped: the server ends it, its locks go,
/// and the stalled node's commit fails when it wakes.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "SET idle_in_transaction_session_timeout = '10s'";

impl Store {
    /// Opens the database at `url` (without migrating it).
    pub async fn connect(url: &str) -> Result<Self> {
        install_default_drivers();
        let backend = Backend::of_url(url)?;
        let url_redacted = redact_url(url);
        match backend {
            Backend::Sqlite => {
                if let Some(parent) =
                    sqlite_path(url).and_then(|p| Path::new(p).parent().map(Path::to_path_buf))
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(&parent).map_err(|e| {
                        StoreError::Config(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
                let url = with_create_mode(url);
                let write = sqlite_pool(&url, 1).await?;
                let read = sqlite_pool(&url, 8).await?;
                Ok(Self {
                    backend,
                    read,
                    write,
                    url_redacted,
                    blobs: None,
                    spill_threshold: SPILL_THRESHOLD_BYTES,
                    pg_url: None,
                    committer: Default::default(),
                    inserter: Default::default(),
                })
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(IDLE_IN_TRANSACTION_TIMEOUT).await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?;
                Ok(Self {
                    backend,
                    read: pool.clone(),
                    write: pool,
                    url_redacted,
                    blobs: None,
                    spill_threshold: SPILL_THRESHOLD_BYTES,
                    pg_url: Some(std::sync::Arc::from(url)),
                    committer: Default::default(),
                    inserter: Default::default(),
                })
            }
        }
    }

    /// This store with `blobs` attached: event bodies larger than the spill threshold are
    /// written there and the row keeps a reference (see [`crate::events`]).
    pub fn with_blobs(mut self, blobs: BlobStore) -> Self {
        self.blobs = Some(blobs);
        self
    }

    /// This store with another spill threshold (bytes of an event's JSON body; an event
    /// strictly larger spills). The default is [`SPILL_THRESHOLD_BYTES`]; tests lower it.
    pub fn with_spill_threshold(mut self, bytes: usize) -> Self {
        self.spill_threshold = bytes;
        self
    }

    /// The blob store attached to this store (spilled event bodies, and the bytes of files
    /// and skills the runtime mounts into sessions), if any.
    pub fn blobs(&self) -> Option<&BlobStore> {
        self.blobs.as_ref()
    }

    pub(crate) fn spill_threshold(&self) -> usize {
        self.spill_threshold
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The group committer of this store's host steps (started on first use); `None` when
    /// `OMA_GROUP_COMMIT=off` (each step its own transaction, as before; for comparison).
    pub(crate) fn committer(&self) -> Option<&crate::group_commit::Committer> {
        if !crate::group_commit::enabled() {
            return None;
        }
        Some(self.committer.get_or_init(|| {
            // The task's store has a committer of its own (never used), so the channel
            // closes, and the task ends, with the last of this store's clones.
            let mut own = self.clone();
            own.committer = Default::default();
            crate::group_commit::start(own)
        }))
    }

    /// The group inserter of new objects' rows (started on first use); `None` when
    /// `OMA_GROUP_COMMIT=off`.
    pub(crate) fn inserter(&self) -> Option<&crate::batch_insert::Inserter> {
        if !crate::group_commit::enabled() {
            return None;
        }
        Some(self.inserter.get_or_init(|| {
            let mut own = self.clone();
            own.inserter = Default::default();
            crate::batch_insert::start(own)
        }))
    }

    pub(crate) fn pg_url(&self) -> Option<&str> {
        self.pg_url.as_deref()
    }

    /// The URL with any password removed, for logs and `/health`.
    pub fn url_redacted(&self) -> &str {
        &self.url_redacted
    }

    /// The pool for reads.
    pub fn reader(&self) -> &AnyPool {
        &self.read
    }

    /// The pool for writes and read-modify-write transactions.
    pub fn writer(&self) -> &AnyPool {
        &self.write
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

async fn sqlite_pool(url: &str, max: u32) -> Result<AnyPool> {
    let pool = AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        // A local SQLite file cannot go stale under a pooled connection; pinging each
        // connection before every query only costs a thread hand-off per request.
        .test_before_acquire(false)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // WAL lets readers run beside the writer; NORMAL sync is durable across process
                // crashes (the promise oma makes) and only risks the last commits on power loss.
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                Ok(())
            })
        })
        .connect(url)
        .await?;
    Ok(pool)
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then_some(path)
}

fn with_create_mode(url: &str) -> String {
    if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

impl FromStr for Backend {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        Backend::of_url(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn backends() {
        assert_eq!(
            Backend::of_url("sqlite:///tmp/x.db").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::of_url("postgresql://h/db").unwrap(),
            Backend::Postgres
        );
        assert!(Backend::of_url("mysql://h/db").is_err());
        assert_eq!(
            sqlite_path("sqlite:///tmp/x.db?mode=rwc"),
            Some("/tmp/x.db")
        );
    }
}
