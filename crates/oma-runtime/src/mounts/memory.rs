//! A memory store mounted as a folder: one file per memory, `/<path>` of the memory at
//! `<mount>/<path>`.
//!
//! The folder is written from the store when the box starts, then kept in step after every
//! tool call: first the box's changes go to the store (read-write mounts only), through the
//! same store calls and rules the API uses, attributed to the session; then the store's
//! changes made elsewhere (the API, other sessions) come back to the folder.
//!
//! What the box last saw of each memory (`known`: id, digest, file stamp) is the base of every
//! write: an update or delete carries the digest as its `content_sha256` precondition, so a
//! memory changed meanwhile outside the box is never overwritten. Such a conflict keeps both
//! sides: the store's version stays at the path (and comes back to the folder), the box's
//! version is saved next to it as a new memory, and the tool result says so. `known` lives in
//! a state file outside the box, so edits a crash left unsynced are still pushed by the next
//! host instead of being overwritten.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use oma_api::memory::{Actor, MemoryListItem, MemoryView};
use oma_core::ErrorKind;
use oma_core::memory::{self as rules, MemoryChange, NewMemory};
use oma_store::memory::MemoryListQuery;
use oma_store::{Store, StoreError};
use serde::{Deserialize, Serialize};

use super::state::StateFile;
use super::tree::{Stamp, Tree};

/// What the box last saw of one memory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Known {
    id: String,
    sha: String,
    /// The file's stamp when it last matched `sha`.
    stamp: Option<Stamp>,
}

/// The parties of a sync.
pub(crate) struct Ctx<'a> {
    pub store: &'a Store,
    pub tenant: &'a str,
    pub session: &'a str,
}

impl Ctx<'_> {
    fn actor(&self) -> Actor {
        Actor::SessionActor {
            session_id: self.session.to_string(),
        }
    }
}

/// One mounted store.
pub(crate) struct MemoryMount {
    pub store_id: String,
    pub name: String,
    pub description: String,
    pub instructions: Option<String>,
    pub writable: bool,
    /// Where the box sees it (`/mnt/memory/<slug>`).
    pub target: String,
    /// The host folder.
    pub dir: PathBuf,
    state: StateFile,
    known: BTreeMap<String, Known>,
    /// Problems already reported, by path, with the stamp they were reported for, so one
    /// bad file is named once, not after every tool call.
    reported: HashMap<String, Option<Stamp>>,
}

fn kind(e: &StoreError) -> Option<ErrorKind> {
    match e {
        StoreError::Domain(d) => Some(d.kind),
        _ => None,
    }
}

/// `/notes/a.md` → `notes/a.md`.
fn rel(path: &str) -> &str {
    path.trim_start_matches('/')
}

/// Where the box's side of a conflict is saved: `/a/b.md` → `/a/b.conflict-<session>.md`
/// (`-2`, `-3`, … when taken).
fn conflict_path(path: &str, session: &str, n: u32) -> String {
    let tag = if n <= 1 {
        format!("conflict-{session}")
    } else {
        format!("conflict-{session}-{n}")
    };
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
    match file.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{dir}/{stem}.{tag}.{ext}"),
        _ => format!("{dir}/{file}.{tag}"),
    }
}

impl MemoryMount {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        store_id: String,
        name: String,
        description: String,
        instructions: Option<String>,
        writable: bool,
        target: String,
        dir: PathBuf,
        state: PathBuf,
    ) -> Self {
        let (state, known) = StateFile::open(state);
        Self {
            store_id,
            name,
            description,
            instructions,
            writable,
            target,
            dir,
            state,
            known,
            reported: HashMap::new(),
        }
    }

    /// Brings the folder and the store in step. Returns notes for the model.
    pub(crate) async fn sync(&mut self, ctx: &Ctx<'_>) -> Vec<String> {
        let mut notes = Vec::new();
        let tree = match Tree::open(&self.dir) {
            Ok(t) => t,
            Err(e) => {
                notes.push(format!("the folder could not be opened: {e}"));
                return self.tagged(notes);
            }
        };
        if self.writable {
            self.push(&tree, ctx, &mut notes).await;
        }
        if let Err(e) = self.pull(&tree, ctx).await {
            tracing::warn!(op = "memory_mount", session_id = %ctx.session, memory_store_id = %self.store_id, error = %e, "reading the memory store failed");
            notes.push(format!(
                "changes made outside this session could not be fetched: {e}"
            ));
        }
        if let Err(e) = self.state.save(&self.known) {
            tracing::warn!(op = "memory_mount", session_id = %ctx.session, error = %e, "could not save the memory mount state");
        }
        self.tagged(notes)
    }

    fn tagged(&self, notes: Vec<String>) -> Vec<String> {
        notes
            .into_iter()
            .map(|n| format!("Memory store `{}` ({}): {n}", self.name, self.target))
            .collect()
    }

    /// Records a problem with `path` unless it was already reported for this stamp.
    fn report(&mut self, path: &str, stamp: Option<Stamp>, note: String, notes: &mut Vec<String>) {
        if self.reported.get(path) != Some(&stamp) {
            self.reported.insert(path.to_string(), stamp);
            notes.push(note);
        }
    }

    // ---- box → store -----------------------------------------------------------------------

    async fn push(&mut self, tree: &Tree, ctx: &Ctx<'_>, notes: &mut Vec<String>) {
        let listing = match tree.list() {
            Ok(l) => l,
            Err(e) => {
                notes.push(format!("the folder could not be read: {e}"));
                return;
            }
        };
        for bad in &listing.bad_names {
            let note = format!("`{bad}` was not saved: memory paths must be UTF-8");
            self.report(bad, None, note, notes);
        }
        if listing.truncated {
            notes.push("the folder holds too many entries; only part of it was saved".into());
        }
        let on_disk: HashMap<String, Stamp> = listing
            .files
            .iter()
            .map(|n| (format!("/{}", n.rel), n.stamp))
            .collect();

        // Files the box created or changed since the last sync.
        let mut changed: Vec<(String, String, Stamp)> = Vec::new();
        for node in &listing.files {
            let path = format!("/{}", node.rel);
            if self.known.get(&path).and_then(|k| k.stamp) == Some(node.stamp) {
                continue;
            }
            let (bytes, stamp) = match tree.read(&node.rel, rules::MAX_CONTENT_BYTES) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    let note = format!(
                        "`{path}` was not saved: a memory holds at most {} bytes",
                        rules::MAX_CONTENT_BYTES
                    );
                    self.report(&path, Some(node.stamp), note, notes);
                    continue;
                }
                // Gone or replaced since the listing: the next sync sees what it became.
                Err(_) => continue,
            };
            let Ok(content) = String::from_utf8(bytes) else {
                let note = format!("`{path}` was not saved: a memory must be UTF-8 text");
                self.report(&path, Some(stamp), note, notes);
                continue;
            };
            let sha = rules::sha256_hex(&content);
            if let Some(k) = self.known.get_mut(&path)
                && k.sha == sha
            {
                k.stamp = Some(stamp);
                continue;
            }
            changed.push((path, content, stamp));
        }
        let mut gone: Vec<(String, Known)> = self
            .known
            .iter()
            .filter(|(p, _)| !on_disk.contains_key(*p))
            .map(|(p, k)| (p.clone(), k.clone()))
            .collect();

        for (path, content, stamp) in changed {
            if let Err(e) =
                rules::validate_path(&path).and_then(|()| rules::validate_content(&content))
            {
                self.report(&path, Some(stamp), format!("not saved: {e}"), notes);
                continue;
            }
            let sha = rules::sha256_hex(&content);
            // A new file with the content of a vanished one is a rename (`mv`): the memory
            // keeps its id.
            if !self.known.contains_key(&path)
                && let Some(i) = gone.iter().position(|(_, k)| k.sha == sha)
            {
                let (old, k) = gone.remove(i);
                let change = MemoryChange {
                    content: None,
                    path: Some(path.clone()),
                    expected_sha256: Some(k.sha.clone()),
                };
                match ctx
                    .store
                    .update_memory(
                        ctx.tenant,
                        &self.store_id,
                        &k.id,
                        change,
                        Some(&ctx.actor()),
                    )
                    .await
                {
                    Ok(rec) => {
                        self.known.remove(&old);
                        self.remember(&path, rec.id, rec.content_sha256, Some(stamp));
                        continue;
                    }
                    // Not a plain rename after all: handle both sides on their own.
                    Err(_) => gone.push((old, k)),
                }
            }
            self.save(tree, ctx, path, content, stamp, notes).await;
        }

        for (path, k) in gone {
            match ctx
                .store
                .delete_memory(
                    ctx.tenant,
                    &self.store_id,
                    &k.id,
                    Some(&k.sha),
                    Some(&ctx.actor()),
                )
                .await
            {
                Ok(()) => {
                    self.known.remove(&path);
                }
                Err(e) if kind(&e) == Some(ErrorKind::NotFound) => {
                    self.known.remove(&path);
                }
                Err(e) if kind(&e) == Some(ErrorKind::MemoryPreconditionFailed) => {
                    // Changed outside the box since it was read: that version wins over the
                    // delete and comes back to the folder.
                    self.known.remove(&path);
                    notes.push(format!(
                        "`{path}` was deleted in the box but changed outside this session \
                         meanwhile; the store keeps the newer version, which is back in the folder"
                    ));
                }
                Err(e) => notes.push(format!("deleting `{path}` failed: {e}")),
            }
        }
    }

    /// Saves one new or changed file as a memory.
    async fn save(
        &mut self,
        tree: &Tree,
        ctx: &Ctx<'_>,
        path: String,
        content: String,
        stamp: Stamp,
        notes: &mut Vec<String>,
    ) {
        let actor = ctx.actor();
        let result = match self.known.get(&path).cloned() {
            Some(k) => {
                let change = MemoryChange {
                    content: Some(content.clone()),
                    path: None,
                    expected_sha256: Some(k.sha.clone()),
                };
                match ctx
                    .store
                    .update_memory(ctx.tenant, &self.store_id, &k.id, change, Some(&actor))
                    .await
                {
                    // Deleted outside the box meanwhile: the box's edit brings it back.
                    Err(e) if kind(&e) == Some(ErrorKind::NotFound) => {
                        self.known.remove(&path);
                        self.create(ctx, &path, &content).await
                    }
                    other => other,
                }
            }
            None => self.create(ctx, &path, &content).await,
        };
        match result {
            Ok(rec) => self.remember(&path, rec.id, rec.content_sha256, Some(stamp)),
            Err(e)
                if matches!(
                    kind(&e),
                    Some(ErrorKind::MemoryPreconditionFailed | ErrorKind::MemoryPathConflict)
                ) =>
            {
                self.conflict(tree, ctx, &path, content, stamp, notes).await;
            }
            Err(e) => {
                let note = format!("`{path}` was not saved: {e}");
                self.report(&path, Some(stamp), note, notes);
            }
        }
    }

    async fn create(
        &self,
        ctx: &Ctx<'_>,
        path: &str,
        content: &str,
    ) -> Result<oma_core::memory::MemoryRecord, StoreError> {
        let new = NewMemory {
            path: path.to_string(),
            content: content.to_string(),
        };
        ctx.store
            .create_memory(ctx.tenant, &self.store_id, new, Some(&ctx.actor()))
            .await
    }

    /// The box changed `path` while it also changed outside the box: keep both.
    async fn conflict(
        &mut self,
        tree: &Tree,
        ctx: &Ctx<'_>,
        path: &str,
        content: String,
        stamp: Stamp,
        notes: &mut Vec<String>,
    ) {
        let mut saved = None;
        for n in 1..=20 {
            let alt = conflict_path(path, ctx.session, n);
            if rules::validate_path(&alt).is_err() {
                break;
            }
            match self.create(ctx, &alt, &content).await {
                Ok(rec) => {
                    saved = Some((alt, rec));
                    break;
                }
                Err(e) if kind(&e) == Some(ErrorKind::MemoryPathConflict) => continue,
                Err(_) => break,
            }
        }
        let Some((alt, rec)) = saved else {
            // Keep the box's file where it is; the store keeps its own version.
            let note = format!(
                "`{path}` changed outside this session while the box changed it too; the box's \
                 version could not be saved beside it and stays only in the folder"
            );
            self.report(path, Some(stamp), note, notes);
            return;
        };
        let alt_stamp = tree.write(rel(&alt), content.as_bytes()).ok();
        self.remember(&alt, rec.id, rec.content_sha256, alt_stamp);
        // The store's version comes back to `path` with the pull that follows.
        let _ = tree.remove(rel(path));
        self.known.remove(path);
        tracing::info!(op = "memory_mount", session_id = %ctx.session, memory_store_id = %self.store_id, path, saved_as = %alt, "memory write conflict");
        notes.push(format!(
            "`{path}` was changed outside this session since the box read it. Both versions are \
             kept: the store's version is back at `{path}`, the box's version was saved as `{alt}`"
        ));
    }

    fn remember(&mut self, path: &str, id: String, sha: String, stamp: Option<Stamp>) {
        self.reported.remove(path);
        self.known
            .insert(path.to_string(), Known { id, sha, stamp });
    }

    // ---- store → box -----------------------------------------------------------------------

    async fn pull(&mut self, tree: &Tree, ctx: &Ctx<'_>) -> Result<(), StoreError> {
        let mut seen = HashSet::new();
        let mut after = None;
        loop {
            let q = MemoryListQuery {
                prefix: "/".into(),
                depth: 0,
                view: MemoryView::Basic,
                limit: 100,
                after,
            };
            let page = ctx
                .store
                .list_memories(ctx.tenant, &self.store_id, &q)
                .await?;
            for item in page.items {
                let MemoryListItem::Memory(m) = item else {
                    continue;
                };
                seen.insert(m.path.clone());
                self.pull_one(tree, ctx, &m.id, &m.path, &m.content_sha256)
                    .await?;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        // Gone from the store (deleted or renamed elsewhere).
        let vanished: Vec<(String, Known)> = self
            .known
            .iter()
            .filter(|(p, _)| !seen.contains(*p))
            .map(|(p, k)| (p.clone(), k.clone()))
            .collect();
        for (path, k) in vanished {
            // A file the box changed since stays: the next push saves it again.
            if !self.writable || tree.stamp(rel(&path)) == k.stamp {
                let _ = tree.remove(rel(&path));
            }
            self.known.remove(&path);
        }
        if !self.writable {
            // Nothing but the store's memories belongs in a read-only mount.
            if let Ok(listing) = tree.list() {
                for node in listing.files {
                    if !self.known.contains_key(&format!("/{}", node.rel)) {
                        let _ = tree.remove(&node.rel);
                    }
                }
            }
        }
        Ok(())
    }

    async fn pull_one(
        &mut self,
        tree: &Tree,
        ctx: &Ctx<'_>,
        id: &str,
        path: &str,
        sha: &str,
    ) -> Result<(), StoreError> {
        let on_disk = tree.stamp(rel(path));
        match self.known.get(path) {
            // Up to date (a read-only folder also unchanged by the box).
            Some(k)
                if k.id == id
                    && k.sha == sha
                    && (self.writable || (on_disk.is_some() && on_disk == k.stamp)) =>
            {
                return Ok(());
            }
            // The box changed the file and the push could not save it: leave it alone.
            Some(k) if self.writable && on_disk != k.stamp => return Ok(()),
            None if self.writable && on_disk.is_some() => return Ok(()),
            _ => {}
        }
        let rec = ctx
            .store
            .get_memory(ctx.tenant, &self.store_id, id, true)
            .await?;
        let content = rec.content.unwrap_or_default();
        match tree.write(rel(path), content.as_bytes()) {
            Ok(stamp) => self.remember(path, rec.id, rec.content_sha256, Some(stamp)),
            Err(e) => {
                tracing::warn!(op = "memory_mount", session_id = %ctx.session, path, error = %e, "could not write a memory into its mount");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::conflict_path;

    #[test]
    fn conflict_paths_keep_the_extension() {
        assert_eq!(
            conflict_path("/a/b.md", "sesn_1", 1),
            "/a/b.conflict-sesn_1.md"
        );
        assert_eq!(conflict_path("/b", "s", 2), "/b.conflict-s-2");
        assert_eq!(conflict_path("/.env", "s", 1), "/.env.conflict-s");
    }
}
