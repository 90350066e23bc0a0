//! Session files: file resources copied read-only under `/mnt/session/uploads/`, and
//! `/mnt/session/outputs/`, whose new or changed files become Files API files scoped to the
//! session (`GET /v1/files?scope_id=<session>`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use oma_api::files::FileScope;
use oma_api::sessions::SessionResource;
use oma_blob::BlobStore;
use oma_core::{ids, time};
use oma_store::ListQuery;
use oma_store::files::NewFile;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::memory::Ctx;
use super::state::StateFile;
use super::tree::{Stamp, Tree};

pub(crate) const UPLOADS_DIR: &str = "/mnt/session/uploads";
pub(crate) const OUTPUTS_DIR: &str = "/mnt/session/outputs";

/// The folders every session's box has mounted: uploads (read-only), outputs (writable).
pub(crate) fn standard_mounts() -> Vec<oma_sandbox::PoolMount> {
    vec![
        oma_sandbox::PoolMount {
            target: UPLOADS_DIR.to_string(),
            writable: false,
        },
        oma_sandbox::PoolMount {
            target: OUTPUTS_DIR.to_string(),
            writable: true,
        },
    ]
}
/// Largest output file turned into a Files API file (the Files API's own upload limit).
const MAX_OUTPUT_BYTES: u64 = 500 * 1024 * 1024;

// ---- uploads -----------------------------------------------------------------------------------

/// The session's file resources as files in a folder.
pub(crate) struct Uploads {
    pub dir: PathBuf,
    state: StateFile,
    /// Path below the folder → file id, as last written.
    present: BTreeMap<String, String>,
}

impl Uploads {
    pub(crate) fn new(dir: PathBuf, state: PathBuf) -> Self {
        let (state, present) = StateFile::open(state);
        Self {
            dir,
            state,
            present,
        }
    }

    /// Makes the folder hold exactly the session's current file resources (they can be added
    /// and removed while the session runs). Returns problems for the model.
    pub(crate) async fn refresh(
        &mut self,
        ctx: &Ctx<'_>,
        blobs: Option<&BlobStore>,
    ) -> Vec<String> {
        let mut notes = Vec::new();
        let wanted = match file_resources(ctx).await {
            Ok(w) => w,
            Err(e) => {
                notes.push(format!("the session's files could not be listed: {e}"));
                return notes;
            }
        };
        let tree = match Tree::open(&self.dir) {
            Ok(t) => t,
            Err(e) => {
                notes.push(format!("{UPLOADS_DIR} could not be prepared: {e}"));
                return notes;
            }
        };
        let stale: Vec<String> = self
            .present
            .iter()
            .filter(|(rel, id)| wanted.get(*rel) != Some(*id))
            .map(|(rel, _)| rel.clone())
            .collect();
        for rel in stale {
            let _ = tree.remove(&rel);
            self.present.remove(&rel);
        }
        for (rel, file_id) in wanted {
            if self.present.get(&rel) == Some(&file_id) && tree.stamp(&rel).is_some() {
                continue;
            }
            let Some(blobs) = blobs else {
                notes.push(format!(
                    "{UPLOADS_DIR}/{rel} is missing: the server has no blob storage attached"
                ));
                continue;
            };
            match copy_file(ctx, blobs, &tree, &rel, &file_id).await {
                Ok(()) => {
                    self.present.insert(rel, file_id);
                }
                Err(e) => notes.push(format!(
                    "{UPLOADS_DIR}/{rel} (file `{file_id}`) could not be provided: {e}"
                )),
            }
        }
        if let Err(e) = self.state.save(&self.present) {
            tracing::warn!(op = "uploads_mount", session_id = %ctx.session, error = %e, "could not save the uploads state");
        }
        notes
    }
}

/// `path below uploads/` → file id, for every file resource of the session.
async fn file_resources(ctx: &Ctx<'_>) -> Result<BTreeMap<String, String>, oma_store::StoreError> {
    let mut out = BTreeMap::new();
    let mut after = None;
    loop {
        let page = ctx
            .store
            .list_session_resources(ctx.tenant, ctx.session, &ListQuery::new(100, false, after))
            .await?;
        for body in &page.items {
            let Ok(SessionResource::File(f)) = serde_json::from_str::<SessionResource>(body) else {
                continue;
            };
            let rel = f
                .mount_path
                .strip_prefix(UPLOADS_DIR)
                .unwrap_or(&f.mount_path)
                .trim_start_matches('/')
                .to_string();
            if !rel.is_empty() {
                out.insert(rel, f.file_id);
            }
        }
        match page.next {
            Some(c) => after = Some(c),
            None => return Ok(out),
        }
    }
}

async fn copy_file(
    ctx: &Ctx<'_>,
    blobs: &BlobStore,
    tree: &Tree,
    rel: &str,
    file_id: &str,
) -> Result<(), String> {
    let rec = ctx
        .store
        .file_record(ctx.tenant, file_id)
        .await
        .map_err(|e| e.to_string())?;
    if rec.is_expired(time::now_micros()) {
        return Err("the file has expired".into());
    }
    let mut reader = blobs
        .reader(&rec.blob_key)
        .await
        .map_err(|e| e.to_string())?;
    let mut staged = tree.create_temp(rel).map_err(|e| e.to_string())?;
    loop {
        match reader.next_chunk().await {
            Ok(Some(chunk)) => {
                if let Err(e) = std::io::Write::write_all(&mut staged.file, &chunk) {
                    staged.abort();
                    return Err(e.to_string());
                }
            }
            Ok(None) => break,
            Err(e) => {
                staged.abort();
                return Err(e.to_string());
            }
        }
    }
    staged.commit().map(|_| ()).map_err(|e| e.to_string())
}

// ---- outputs -----------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Produced {
    stamp: Stamp,
    sha: String,
    file_id: String,
    blob_key: String,
}

/// The outputs folder and the Files API files made from it.
pub(crate) struct Outputs {
    pub dir: PathBuf,
    state: StateFile,
    produced: BTreeMap<String, Produced>,
    reported: HashMap<String, Stamp>,
}

impl Outputs {
    pub(crate) fn new(dir: PathBuf, state: PathBuf) -> Self {
        let (state, produced) = StateFile::open(state);
        Self {
            dir,
            state,
            produced,
            reported: HashMap::new(),
        }
    }

    /// Turns new or changed files into Files API files. A changed file replaces the file made
    /// from its previous content, so the session's files mirror the folder; a file deleted
    /// from the folder stays available. Returns problems for the model.
    pub(crate) async fn sync(&mut self, ctx: &Ctx<'_>, blobs: Option<&BlobStore>) -> Vec<String> {
        let mut notes = Vec::new();
        let Ok(tree) = Tree::open(&self.dir) else {
            return notes;
        };
        let Ok(listing) = tree.list() else {
            return notes;
        };
        let changed: Vec<_> = listing
            .files
            .iter()
            .filter(|n| self.produced.get(&n.rel).map(|p| p.stamp) != Some(n.stamp))
            .collect();
        if changed.is_empty() {
            return notes;
        }
        let Some(blobs) = blobs else {
            notes.push(format!(
                "files in {OUTPUTS_DIR} cannot be saved: the server has no blob storage attached"
            ));
            return notes;
        };
        for node in changed {
            if node.stamp.size > MAX_OUTPUT_BYTES {
                if self.reported.insert(node.rel.clone(), node.stamp) != Some(node.stamp) {
                    notes.push(format!(
                        "{OUTPUTS_DIR}/{} is larger than {MAX_OUTPUT_BYTES} bytes and was not saved as a file",
                        node.rel
                    ));
                }
                continue;
            }
            match self.save(ctx, blobs, &tree, &node.rel).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(op = "outputs_mount", session_id = %ctx.session, path = %node.rel, error = %e, "saving an output failed");
                    if self.reported.insert(node.rel.clone(), node.stamp) != Some(node.stamp) {
                        notes.push(format!(
                            "{OUTPUTS_DIR}/{} could not be saved: {e}",
                            node.rel
                        ));
                    }
                }
            }
        }
        if let Err(e) = self.state.save(&self.produced) {
            tracing::warn!(op = "outputs_mount", session_id = %ctx.session, error = %e, "could not save the outputs state");
        }
        notes
    }

    async fn save(
        &mut self,
        ctx: &Ctx<'_>,
        blobs: &BlobStore,
        tree: &Tree,
        rel: &str,
    ) -> Result<(), String> {
        let (file, stamp) = tree.open_file(rel).map_err(|e| e.to_string())?;
        // Outputs can be large: reads go through tokio's blocking pool, not this task.
        let mut file = tokio::fs::File::from_std(file);
        let id = ids::new_id(ids::FILE);
        let blob_key = format!("files/{}/{id}", ctx.tenant);
        let mut writer = blobs.writer(&blob_key).await.map_err(|e| e.to_string())?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            writer.write(&buf[..n]).await.map_err(|e| e.to_string())?;
            if writer.written() > MAX_OUTPUT_BYTES {
                writer.abort().await;
                return Err(format!("it grew beyond {MAX_OUTPUT_BYTES} bytes"));
            }
        }
        let sha: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if let Some(p) = self.produced.get_mut(rel)
            && p.sha == sha
        {
            // Touched but not changed.
            writer.abort().await;
            p.stamp = stamp;
            return Ok(());
        }
        let size = writer.commit().await.map_err(|e| e.to_string())?;
        let filename = rel.rsplit('/').next().unwrap_or(rel).to_string();
        let new = NewFile {
            id: id.clone(),
            mime_type: mime_guess::from_path(&filename)
                .first_raw()
                .unwrap_or("application/octet-stream")
                .to_string(),
            filename,
            size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
            created_at: time::now_micros(),
            expires_at: None,
            downloadable: true,
            scope: Some(FileScope::session(ctx.session)),
            blob_key: blob_key.clone(),
        };
        if let Err(e) = ctx.store.insert_file(ctx.tenant, &new).await {
            let _ = blobs.delete(&blob_key).await;
            return Err(e.to_string());
        }
        tracing::info!(op = "outputs_mount", session_id = %ctx.session, path = rel, file_id = %id, "session output saved as a file");
        let previous = self.produced.insert(
            rel.to_string(),
            Produced {
                stamp,
                sha,
                file_id: id,
                blob_key,
            },
        );
        self.reported.remove(rel);
        if let Some(old) = previous {
            // The row first, then the bytes (the files store's order).
            if ctx
                .store
                .delete_file(ctx.tenant, &old.file_id)
                .await
                .is_ok()
            {
                let _ = blobs.delete(&old.blob_key).await;
            }
        }
        Ok(())
    }
}
