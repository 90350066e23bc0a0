//! Workspace snapshots in the blob store.
//!
//! A snapshot is a tar of a session's workspace ([`oma_sandbox::snapshot`]) stored under
//! `snapshots/<session id>/<micros>.tar`, where `<micros>` is when it was taken (microseconds
//! since the Unix epoch); the newest is the one with the largest number. It is written under a
//! temporary name, fsynced and renamed (write, then publish), so a crash never leaves a half
//! snapshot that looks like the newest. Once a new snapshot is published the older ones of the
//! session are deleted.
//!
//! A restore unpacks into a scratch folder beside the workspace and renames it into place, so a
//! crash mid-restore never leaves a half workspace that the next host would use as is.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use oma_blob::{BlobError, BlobStore};
use oma_sandbox::snapshot::{self, SnapshotError, SnapshotStats};

/// How long a snapshot is kept when nothing else says.
pub const DEFAULT_SNAPSHOT_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

const PREFIX: &str = "snapshots";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotStoreError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Archive(#[from] SnapshotError),
    #[error("workspace folder {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, SnapshotStoreError>;

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotStoreError + '_ {
    move |source| SnapshotStoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRef {
    pub session_id: String,
    /// When it was taken, in microseconds since the Unix epoch.
    pub taken_at_micros: u64,
    /// Its blob key.
    pub key: String,
    /// Size of the archive, when known (set by [`Snapshots::take`]).
    pub bytes: Option<u64>,
}

/// The snapshots of one blob store (one per tenant store). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Snapshots {
    blobs: BlobStore,
}

impl Snapshots {
    pub fn new(blobs: BlobStore) -> Self {
        Self { blobs }
    }

    /// Packs `workspace` into a new snapshot of the session, publishes it, then deletes the
    /// session's older snapshots. The workspace is only read; nothing must write to it
    /// meanwhile (stop the box first). Returns the new snapshot and what it holds.
    pub async fn take(
        &self,
        session_id: &str,
        workspace: &Path,
    ) -> Result<(SnapshotRef, SnapshotStats)> {
        let older = self.list(session_id).await?;
        // Never older than the newest already there, even if the clock went back.
        let micros = now_micros().max(older.last().map_or(0, |s| s.taken_at_micros + 1));
        let key = key_of(session_id, micros);
        let mut writer = self.blobs.writer(&key).await?;
        let mut packing = snapshot::pack_stream(workspace.to_path_buf());
        let mut write_err = None;
        while let Some(chunk) = packing.next_chunk().await {
            if let Err(e) = writer.write(&chunk).await {
                write_err = Some(e);
                break;
            }
        }
        // Stops the packer if writing failed; otherwise reports how packing went.
        let packed = packing.finish().await;
        let stats = match (write_err, packed) {
            (Some(e), _) => {
                writer.abort().await;
                return Err(e.into());
            }
            (None, Err(e)) => {
                writer.abort().await;
                return Err(e.into());
            }
            (None, Ok(stats)) => stats,
        };
        let bytes = writer.commit_durable().await?;
        for old in older {
            if let Err(e) = self.blobs.delete(&old.key).await {
                // Harmless: the newest is what a restore uses; expiry removes it later.
                tracing::warn!(op = "snapshot", session_id, key = %old.key, error = %e, "could not delete an older snapshot");
            }
        }
        Ok((
            SnapshotRef {
                session_id: session_id.to_string(),
                taken_at_micros: micros,
                key,
                bytes: Some(bytes),
            },
            stats,
        ))
    }

    /// The session's snapshots, oldest first.
    pub async fn list(&self, session_id: &str) -> Result<Vec<SnapshotRef>> {
        let keys = self.blobs.list(&format!("{PREFIX}/{session_id}")).await?;
        let mut snaps: Vec<SnapshotRef> = keys.iter().filter_map(|k| parse_key(k)).collect();
        snaps.sort_by_key(|s| s.taken_at_micros);
        Ok(snaps)
    }

    /// The session's newest snapshot, if it has one.
    pub async fn newest(&self, session_id: &str) -> Result<Option<SnapshotRef>> {
        Ok(self.list(session_id).await?.pop())
    }

    /// Restores `snap` as the folder `workspace`, which must not exist. The archive is
    /// unpacked into a scratch folder beside it (`.restore-<name>`, removed first if a crash
    /// left one) and renamed into place only when complete.
    pub async fn restore(&self, snap: &SnapshotRef, workspace: &Path) -> Result<SnapshotStats> {
        let scratch = sibling(workspace, ".restore-");
        remove_tree(&scratch).await?;
        let mut reader = self.blobs.reader(&snap.key).await?;
        let mut sink = snapshot::unpack_stream(scratch.clone());
        let unpacked = loop {
            match reader.next_chunk().await {
                Ok(Some(chunk)) => {
                    if !sink.write(chunk.to_vec()).await {
                        break sink.finish().await;
                    }
                }
                Ok(None) => break sink.finish().await,
                Err(e) => {
                    let _ = sink.abort(e.to_string()).await;
                    let _ = remove_tree(&scratch).await;
                    return Err(e.into());
                }
            }
        };
        let stats = match unpacked {
            Ok(stats) => stats,
            Err(e) => {
                let _ = remove_tree(&scratch).await;
                return Err(e.into());
            }
        };
        // rename(2) refuses a non-empty target: an existing workspace is never replaced.
        if let Err(e) = tokio::fs::rename(&scratch, workspace).await {
            let _ = remove_tree(&scratch).await;
            return Err(io_at(workspace)(e));
        }
        Ok(stats)
    }

    /// Deletes every snapshot of the session (session deleted, retention). Returns how many.
    pub async fn delete_all(&self, session_id: &str) -> Result<usize> {
        let snaps = self.list(session_id).await?;
        for s in &snaps {
            self.blobs.delete(&s.key).await?;
        }
        Ok(snaps.len())
    }

    /// Deletes every snapshot, of any session, taken more than `ttl` ago. Returns how many.
    pub async fn expire(&self, ttl: Duration) -> Result<usize> {
        self.expire_before(now_micros().saturating_sub(duration_micros(ttl)))
            .await
    }

    /// Deletes every snapshot taken before `cutoff_micros` (microseconds since the epoch).
    pub async fn expire_before(&self, cutoff_micros: u64) -> Result<usize> {
        let mut n = 0;
        for key in self.blobs.list(PREFIX).await? {
            if let Some(s) = parse_key(&key)
                && s.taken_at_micros < cutoff_micros
            {
                self.blobs.delete(&s.key).await?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Removes a workspace folder without ever leaving half of it under its own name: it is
/// first renamed to a scratch name beside it (`.trash-<name>`), then deleted. A crash
/// mid-delete leaves only the scratch folder, which the next removal (or the runtime's
/// start) deletes.
pub async fn remove_workspace(workspace: &Path) -> Result<()> {
    let trash = sibling(workspace, ".trash-");
    remove_tree(&trash).await?;
    // A workspace with a disk quota is a mounted file system of its own: unmount it and
    // delete its image first (its files are in the snapshot, or the session is gone).
    let ws = workspace.to_path_buf();
    tokio::task::spawn_blocking(move || oma_sandbox::detach_workspace(&ws))
        .await
        .map_err(|e| io_at(workspace)(std::io::Error::other(e.to_string())))?
        .map_err(|e| io_at(workspace)(std::io::Error::other(e)))?;
    match tokio::fs::rename(workspace, &trash).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_at(workspace)(e)),
    }
    remove_tree(&trash).await
}

/// Deletes the half-deleted workspaces a crash may have left in `workspaces_dir`. (A
/// half-restored one is removed by the next restore of its session, or its deletion.)
pub async fn sweep_trash(workspaces_dir: &Path) -> Result<usize> {
    let mut n = 0;
    let mut dir = match tokio::fs::read_dir(workspaces_dir).await {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_at(workspaces_dir)(e)),
    };
    while let Some(entry) = dir.next_entry().await.map_err(io_at(workspaces_dir))? {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".trash-") {
            remove_tree(&entry.path()).await?;
            n += 1;
        }
    }
    Ok(n)
}

/// `<parent>/<tag><name>`: scratch folders live beside the workspace, on the same file
/// system, so renames between them are atomic. Session ids never start with a dot.
fn sibling(workspace: &Path, tag: &str) -> PathBuf {
    let name = workspace
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    workspace.with_file_name(format!("{tag}{name}"))
}

/// Deletes a folder tree (missing is fine), on a blocking thread. A tree the box made
/// read-only is made writable first: the server's user owns it, so that is always allowed.
async fn remove_tree(path: &Path) -> Result<()> {
    let p = path.to_path_buf();
    let res = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&p) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            make_writable(&p);
            std::fs::remove_dir_all(&p)
        }
        other => other,
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r);
    match res {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_at(path)(e)),
    }
}

fn make_writable(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
}

impl crate::Runtime {
    /// The snapshots kept in the tenant's blob store; `None` when its store has none (then
    /// workspaces are never snapshotted).
    pub fn snapshots(&self, tenant: &str) -> Option<Snapshots> {
        self.inner()
            .tenants
            .store_for(tenant)
            .blobs()
            .cloned()
            .map(Snapshots::new)
    }

    /// Deletes the snapshots older than [`crate::RuntimeConfig::snapshot_ttl`]. For the
    /// retention janitor; returns how many were deleted.
    pub async fn expire_snapshots(&self) -> Result<usize> {
        let ttl = self.inner().config.snapshot_ttl;
        match self.inner().tenants.control().blobs() {
            Some(blobs) => Snapshots::new(blobs.clone()).expire(ttl).await,
            None => Ok(0),
        }
    }

    /// Call after deleting a session: its workspace folder and snapshots go too. The work
    /// is done by the session's host (started if none runs), the only owner of the
    /// workspace, once it sees the session is gone.
    pub fn session_deleted(&self, tenant: &str, session_id: &str) {
        self.wake(tenant, session_id);
    }
}

/// Deletes a deleted session's workspace folder (and any scratch of it) and snapshots.
pub(crate) async fn forget(rt: &crate::Runtime, tenant: &str, session_id: &str) {
    let workspace = rt.inner().config.workspaces_dir.join(session_id);
    let removed = match remove_workspace(&workspace).await {
        Ok(()) => remove_tree(&sibling(&workspace, ".restore-")).await,
        Err(e) => Err(e),
    };
    if let Err(e) = removed {
        tracing::warn!(op = "snapshot", session_id, error = %e, "could not remove a deleted session's workspace");
    }
    if let Some(snaps) = rt.snapshots(tenant) {
        match snaps.delete_all(session_id).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                op = "snapshot",
                session_id,
                deleted = n,
                "deleted a deleted session's snapshots"
            ),
            Err(e) => {
                tracing::warn!(op = "snapshot", session_id, error = %e, "could not delete a deleted session's snapshots")
            }
        }
    }
}

fn key_of(session_id: &str, micros: u64) -> String {
    format!("{PREFIX}/{session_id}/{micros:020}.tar")
}

/// `snapshots/<session>/<micros>.tar` → the snapshot; anything else → `None`.
fn parse_key(key: &str) -> Option<SnapshotRef> {
    let rest = key.strip_prefix(PREFIX)?.strip_prefix('/')?;
    let (session, file) = rest.split_once('/')?;
    let micros = file.strip_suffix(".tar")?;
    if session.is_empty() || micros.is_empty() || !micros.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(SnapshotRef {
        session_id: session.to_string(),
        taken_at_micros: micros.parse().ok()?,
        key: key.to_string(),
        bytes: None,
    })
}

fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, duration_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Snapshots) {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open_local(dir.path().join("blobs")).unwrap();
        (dir, Snapshots::new(blobs))
    }

    #[test]
    fn keys_round_trip_and_strangers_are_ignored() {
        let k = key_of("sesn_1", 42);
        assert_eq!(k, "snapshots/sesn_1/00000000000000000042.tar");
        let s = parse_key(&k).unwrap();
        assert_eq!((s.session_id.as_str(), s.taken_at_micros), ("sesn_1", 42));
        for bad in [
            "snapshots/sesn_1/x.tar",
            "snapshots/sesn_1/42.tar.tmp-1-2",
            "snapshots/sesn_1/42",
            "snapshots/42.tar",
            "files/sesn_1/42.tar",
        ] {
            assert!(parse_key(bad).is_none(), "{bad}");
        }
    }

    #[tokio::test]
    async fn take_restore_newest_and_delete() {
        let (dir, snaps) = store();
        let ws = dir.path().join("workspaces/sesn_a");
        std::fs::create_dir_all(ws.join("sub")).unwrap();
        std::fs::write(ws.join("sub/f"), b"one").unwrap();
        assert!(snaps.newest("sesn_a").await.unwrap().is_none());

        let (first, stats) = snaps.take("sesn_a", &ws).await.unwrap();
        assert_eq!(stats.files, 1);
        std::fs::write(ws.join("sub/f"), b"two").unwrap();
        let (second, _) = snaps.take("sesn_a", &ws).await.unwrap();
        assert!(second.taken_at_micros > first.taken_at_micros);
        // Only the newest is kept.
        let all = snaps.list("sesn_a").await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].key, second.key);

        // Restoring onto an existing workspace is refused and changes nothing.
        assert!(snaps.restore(&second, &ws).await.is_err());
        assert_eq!(std::fs::read(ws.join("sub/f")).unwrap(), b"two");

        remove_workspace(&ws).await.unwrap();
        assert!(!ws.exists());
        let newest = snaps.newest("sesn_a").await.unwrap().unwrap();
        snaps.restore(&newest, &ws).await.unwrap();
        assert_eq!(std::fs::read(ws.join("sub/f")).unwrap(), b"two");
        // No scratch folders are left.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("workspaces"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("sesn_a")]);

        assert_eq!(snaps.delete_all("sesn_a").await.unwrap(), 1);
        assert!(snaps.newest("sesn_a").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_corrupt_snapshot_leaves_no_workspace() {
        let (dir, snaps) = store();
        let blobs = snaps.blobs.clone();
        let key = key_of("sesn_b", 7);
        blobs
            .put_synced(&key, b"not a tar archive at all")
            .await
            .unwrap();
        let ws = dir.path().join("workspaces/sesn_b");
        std::fs::create_dir_all(dir.path().join("workspaces")).unwrap();
        let snap = snaps.newest("sesn_b").await.unwrap().unwrap();
        assert!(snaps.restore(&snap, &ws).await.is_err());
        assert!(!ws.exists());
        assert_eq!(
            std::fs::read_dir(dir.path().join("workspaces"))
                .unwrap()
                .count(),
            0
        );
    }

    #[tokio::test]
    async fn expire_deletes_only_old_snapshots_of_every_session() {
        let (dir, snaps) = store();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        let (fresh, _) = snaps.take("sesn_new", &ws).await.unwrap();
        let old = key_of(
            "sesn_old",
            fresh.taken_at_micros - 8 * 24 * 3600 * 1_000_000,
        );
        snaps.blobs.put_synced(&old, b"").await.unwrap();
        assert_eq!(snaps.expire(DEFAULT_SNAPSHOT_TTL).await.unwrap(), 1);
        assert!(snaps.newest("sesn_old").await.unwrap().is_none());
        assert_eq!(
            snaps.newest("sesn_new").await.unwrap().unwrap().key,
            fresh.key
        );
        assert_eq!(snaps.expire(Duration::ZERO).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_read_only_tree_is_removed_and_scratch_is_swept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("sesn_c");
        std::fs::create_dir_all(ws.join("ro/inner")).unwrap();
        std::fs::write(ws.join("ro/inner/f"), b"x").unwrap();
        std::fs::set_permissions(ws.join("ro"), std::fs::Permissions::from_mode(0o500)).unwrap();
        remove_workspace(&ws).await.unwrap();
        assert!(!ws.exists());
        std::fs::create_dir_all(dir.path().join(".trash-sesn_d/x")).unwrap();
        std::fs::create_dir_all(dir.path().join(".restore-sesn_e")).unwrap();
        std::fs::create_dir_all(dir.path().join("sesn_f")).unwrap();
        assert_eq!(sweep_trash(dir.path()).await.unwrap(), 1);
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                std::ffi::OsString::from(".restore-sesn_e"),
                std::ffi::OsString::from("sesn_f")
            ]
        );
    }
}
