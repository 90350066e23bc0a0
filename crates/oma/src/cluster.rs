//! `[cluster]`: who this node is among the others on one database, and how long its session
//! leases last (the runtime's `cluster` module does the rest).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

/// The file in the data directory that keeps the node's name across restarts.
const NODE_ID_FILE: &str = "node_id";
const MIN_LEASE_TTL_MS: u64 = 500;
const MAX_LEASE_TTL_MS: u64 = 300_000;

/// `[cluster]`: `node_id`, this node's name (default: one kept in the data directory);
/// `lease_ttl_ms`, how long a session lease lasts unless renewed (default 10 000): a node that
/// crashes or hangs loses its sessions to the others this long after.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFileConfig {
    pub node_id: Option<String>,
    pub lease_ttl_ms: Option<u64>,
}

/// The node's name, and the lock on the file that keeps it (held while the server runs).
pub struct NodeIdentity {
    pub node_id: String,
    _lock: Option<File>,
}

/// The lease lifetime: `OMA_LEASE_TTL_MS`, else `[cluster] lease_ttl_ms`, else the default.
pub fn lease_ttl(file: &ClusterFileConfig) -> Result<Duration> {
    let ms = match std::env::var("OMA_LEASE_TTL_MS") {
        Ok(v) if !v.is_empty() => Some(v.parse::<u64>().with_context(|| {
            format!("OMA_LEASE_TTL_MS must be a number of milliseconds, got `{v}`")
        })?),
        _ => file.lease_ttl_ms,
    };
    let Some(ms) = ms else {
        return Ok(oma_runtime::cluster::DEFAULT_LEASE_TTL);
    };
    if !(MIN_LEASE_TTL_MS..=MAX_LEASE_TTL_MS).contains(&ms) {
        anyhow::bail!(
            "[cluster] lease_ttl_ms (OMA_LEASE_TTL_MS) must be between {MIN_LEASE_TTL_MS} and {MAX_LEASE_TTL_MS}, got {ms}"
        );
    }
    Ok(Duration::from_millis(ms))
}

/// The node's name: `explicit` (`--node-id`, `OMA_NODE_ID`, `[cluster] node_id`), else the one
/// kept in `<data_dir>/node_id` (created on first start), so a restarted node takes its
/// sessions back at once. Servers sharing a data directory cannot share its name: all but the
/// first get a fresh one for this run.
pub fn node_identity(data_dir: &Path, explicit: Option<String>) -> Result<NodeIdentity> {
    if let Some(id) = explicit.filter(|s| !s.is_empty()) {
        validate(&id)?;
        return Ok(NodeIdentity {
            node_id: id,
            _lock: None,
        });
    }
    let path = data_dir.join(NODE_ID_FILE);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let node_id = fresh();
            tracing::warn!(
                op = "cluster",
                node_id = %node_id,
                "another server uses this data directory's node name: this one runs as {node_id} \
                 (give each node its own --data-dir or --node-id)"
            );
            return Ok(NodeIdentity {
                node_id,
                _lock: None,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(anyhow::Error::new(e).context(format!("locking {}", path.display())));
        }
    }
    let mut kept = String::new();
    file.read_to_string(&mut kept)
        .with_context(|| format!("reading {}", path.display()))?;
    let kept = kept.trim();
    let node_id = if !kept.is_empty() && validate(kept).is_ok() {
        kept.to_string()
    } else {
        let id = fresh();
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{id}").with_context(|| format!("writing {}", path.display()))?;
        file.sync_all()?;
        id
    };
    Ok(NodeIdentity {
        node_id,
        _lock: Some(file),
    })
}

fn fresh() -> String {
    oma_core::ids::new_id("node")
}

fn validate(id: &str) -> Result<()> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        anyhow::bail!(
            "node id `{id}`: use 1 to 64 letters, digits, `-`, `_` or `.` (--node-id, OMA_NODE_ID, [cluster] node_id)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_name_is_kept_and_a_second_server_gets_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let first = node_identity(dir.path(), None).unwrap();
        let second = node_identity(dir.path(), None).unwrap();
        assert_ne!(first.node_id, second.node_id);
        let kept = first.node_id.clone();
        drop(first);
        assert_eq!(node_identity(dir.path(), None).unwrap().node_id, kept);
        assert_eq!(
            node_identity(dir.path(), Some("edge-1".into()))
                .unwrap()
                .node_id,
            "edge-1"
        );
        assert!(node_identity(dir.path(), Some("no spaces".into())).is_err());
    }
}
