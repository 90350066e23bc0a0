//! The host's side of workspace snapshots: while the session is idle, a workspace a tool
//! changed is snapshotted, its box stopped and the local folder removed; the next tool call
//! restores the newest snapshot before the box starts.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::SessionHost;
use crate::snapshots::remove_workspace;

impl SessionHost {
    pub(super) fn workspace_dir(&self) -> PathBuf {
        self.rt.inner().config.workspaces_dir.join(&self.session)
    }

    /// Waits for input after the session went idle. Returns `false` when the host should exit
    /// (nothing came within the linger). A workspace changed since its last snapshot is
    /// snapshotted once the session has been idle `snapshot_after_idle`; when that is longer
    /// than the linger, the box is stopped at the end of the linger and the host (a task, no
    /// process) stays until the snapshot is taken.
    pub(super) async fn idle_wait(&mut self) -> bool {
        let (linger, snapshot_after) = {
            let c = &self.rt.inner().config;
            (c.idle_linger, c.snapshot_after_idle)
        };
        let idle_since = tokio::time::Instant::now();
        let exit_at = idle_since + linger;
        loop {
            let snapshot_at = snapshot_after
                .filter(|_| self.dirty)
                .map(|d| idle_since + d);
            let wake_at = match snapshot_at {
                Some(at) if self.has_box() && exit_at < at => exit_at,
                Some(at) => at,
                None => exit_at,
            };
            if tokio::time::timeout_at(wake_at, self.notify.notified())
                .await
                .is_ok()
            {
                return true;
            }
            match snapshot_at {
                Some(at) if tokio::time::Instant::now() >= at => self.snapshot_workspace().await,
                Some(_) => self.stop_box().await,
                None => return false,
            }
        }
    }

    /// Stops the box, snapshots the workspace and removes the local folder. On failure the
    /// folder stays (never lose data) and the next host tries again.
    async fn snapshot_workspace(&mut self) {
        self.dirty = false;
        let workspace = self.workspace_dir();
        if tokio::fs::symlink_metadata(&workspace).await.is_err() {
            return;
        }
        let Some(snaps) = self.rt.snapshots(&self.tenant) else {
            return;
        };
        // Nothing may write to the workspace while it is packed.
        self.stop_box().await;
        // A workspace disk left unmounted (by a reboot) holds the files: mount it first, or
        // the snapshot would be of the empty folder under it and the removal would lose them.
        let ws = workspace.clone();
        let remounted = tokio::task::spawn_blocking(move || oma_sandbox::remount_workspace(&ws))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        if let Err(e) = remounted {
            tracing::error!(op = "snapshot", session_id = %self.session, error = %e, "cannot mount the workspace disk; no snapshot, the folder is kept");
            self.ops_silent("runtime.snapshot", &e);
            return;
        }
        let started = Instant::now();
        match snaps.take(&self.session, &workspace).await {
            Ok((snap, stats)) => {
                tracing::info!(
                    op = "snapshot",
                    tenant_id = %self.tenant,
                    session_id = %self.session,
                    key = %snap.key,
                    files = stats.files,
                    bytes = stats.bytes,
                    archive_bytes = snap.bytes.unwrap_or(0),
                    duration_ms = started.elapsed().as_millis() as u64,
                    "workspace snapshotted; box stopped"
                );
                if let Err(e) = remove_workspace(&workspace).await {
                    // The folder is whole (removal renames it away first), so it is simply
                    // used as is next time.
                    tracing::warn!(op = "snapshot", session_id = %self.session, error = %e, "could not remove the snapshotted workspace folder");
                    self.ops_silent("runtime.snapshot", &e);
                }
            }
            Err(e) => {
                tracing::error!(op = "snapshot", tenant_id = %self.tenant, session_id = %self.session, error = %e, "workspace snapshot failed; the local folder is kept");
                self.ops_silent("runtime.snapshot", &e);
            }
        }
    }

    /// Before a box starts: a missing workspace folder whose session has a snapshot is
    /// restored from the newest one. A folder that exists is used as is. The error is the
    /// tool result to report; no box may start then, or it would begin from an empty folder.
    pub(super) async fn restore_workspace(&mut self, workspace: &Path) -> Result<(), String> {
        match tokio::fs::symlink_metadata(workspace).await {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("The session's workspace is unusable: {e}")),
        }
        let Some(snaps) = self.rt.snapshots(&self.tenant) else {
            return Ok(());
        };
        let newest = snaps
            .newest(&self.session)
            .await
            .map_err(|e| format!("The session's workspace snapshots could not be read: {e}"))?;
        let Some(snap) = newest else {
            return Ok(());
        };
        if let Some(parent) = workspace.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| format!("cannot create the session workspace: {e}"))?;
        }
        let started = Instant::now();
        match snaps.restore(&snap, workspace).await {
            Ok(stats) => {
                tracing::info!(
                    op = "snapshot_restore",
                    tenant_id = %self.tenant,
                    session_id = %self.session,
                    key = %snap.key,
                    files = stats.files,
                    bytes = stats.bytes,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "workspace restored from its snapshot"
                );
                Ok(())
            }
            Err(e) => {
                tracing::error!(op = "snapshot_restore", tenant_id = %self.tenant, session_id = %self.session, key = %snap.key, error = %e, "workspace restore failed");
                Err(format!(
                    "The session's workspace could not be restored from its snapshot: {e}"
                ))
            }
        }
    }
}
