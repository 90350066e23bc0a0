//! What a session's box sees besides its workspace: the agent's skills, the session's memory
//! stores, its uploaded files and its outputs folder.
//!
//! Each lives in a host folder under `<sessions_dir>/<session>/mnt/` that is filled before
//! the box starts and bound into it ([`oma_sandbox::Mount`]) at the path the API promises:
//!
//! | host                      | box                         | access                     |
//! |---------------------------|-----------------------------|----------------------------|
//! | `mnt/skills/<name>/`      | `/home/user/.skills/<name>/`| read-only                  |
//! | `mnt/memory/<slug>/`      | `/mnt/memory/<slug>/`       | as the resource's `access` |
//! | `mnt/uploads/`            | `/mnt/session/uploads/`     | read-only                  |
//! | `mnt/outputs/`            | `/mnt/session/outputs/`     | read-write                 |
//! | `mnt/repos/<resource>/`   | a repository's `mount_path` outside `/workspace` | read-write |
//!
//! Repositories (`github_repository` resources) are cloned into the box once it runs
//! ([`repos`], `host/repos.rs`); under `/workspace` they live in the workspace itself.
//!
//! After every tool call the host syncs back: memory folders to their stores, outputs to the
//! Files API. What was last synced is kept in `<sessions_dir>/<session>/state/`, which no box
//! sees. The `local` backend cannot place folders at those paths; its tools are told the host
//! folders instead, so the same features work there without isolation.

pub(crate) mod files;
mod memory;
pub(crate) mod repos;
mod skills;
mod state;
mod tree;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use oma_api::sessions::{MemoryAccess, SessionResource};
use oma_sandbox::Mount;
use oma_store::{ListQuery, Store};
use serde_json::Value;

use files::{OUTPUTS_DIR, Outputs, UPLOADS_DIR, Uploads};
use memory::{Ctx, MemoryMount};
use skills::SkillMount;

#[derive(Debug, thiserror::Error)]
pub(crate) enum MountError {
    #[error(transparent)]
    Store(#[from] oma_store::StoreError),
    #[error(transparent)]
    Blob(#[from] oma_blob::BlobError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The mounts of one session, loaded once per host.
pub(crate) struct SessionMounts {
    store: Arc<Store>,
    tenant: Arc<str>,
    session: String,
    /// `<sessions_dir>/<session>/mnt`.
    root: PathBuf,
    /// `<sessions_dir>/<session>/state`.
    state: PathBuf,
    skills: Vec<SkillMount>,
    memory: Vec<MemoryMount>,
    uploads: Uploads,
    outputs: Outputs,
    /// Whether the session had file resources when the mounts were loaded.
    has_files: bool,
    /// The session's repositories, and what became of their clones.
    repos: Vec<(repos::RepoMount, RepoState)>,
    /// The session's workspace folder, once a box used it (for the `local` backend's paths).
    workspace: Option<PathBuf>,
    /// Problems found while preparing the mounts, told with the next tool result.
    pending: Vec<String>,
}

impl SessionMounts {
    /// Reads what the session mounts: the agent's skills (`agent` is the session's agent
    /// snapshot) and the session's memory store resources. Writes nothing yet.
    pub(crate) async fn load(
        store: Arc<Store>,
        tenant: Arc<str>,
        session: &str,
        agent: &Value,
        sessions_dir: &Path,
    ) -> Result<Self, MountError> {
        let base = sessions_dir.join(session);
        let root = base.join("mnt");
        let state = base.join("state");
        let (skills, warnings) = skills::resolve(&store, store.blobs(), &tenant, agent).await;
        for w in &warnings {
            tracing::warn!(op = "skills_mount", session_id = %session, "{w}");
        }
        let mut memory = Vec::new();
        let mut has_files = false;
        let mut repos = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .list_session_resources(&tenant, session, &ListQuery::new(100, false, after))
                .await?;
            for body in &page.items {
                let r = match serde_json::from_str(body) {
                    Ok(SessionResource::MemoryStore(r)) => r,
                    Ok(SessionResource::File(_)) => {
                        has_files = true;
                        continue;
                    }
                    Ok(SessionResource::GithubRepository(r)) => {
                        repos.push((repos::RepoMount::new(&r, &root), RepoState::Pending));
                        continue;
                    }
                    _ => continue,
                };
                let target = r.mount_path.clone().unwrap_or_else(|| {
                    format!(
                        "/mnt/memory/{}",
                        oma_core::memory::mount_slug(r.name.as_deref().unwrap_or("memory"))
                    )
                });
                let slug = target.rsplit('/').next().unwrap_or("memory").to_string();
                memory.push(MemoryMount::new(
                    r.memory_store_id.clone(),
                    r.name.clone().unwrap_or_default(),
                    r.description.clone().unwrap_or_default(),
                    r.instructions.clone().filter(|i| !i.is_empty()),
                    r.access != Some(MemoryAccess::ReadOnly),
                    target,
                    root.join("memory").join(&slug),
                    state.join(format!("memory-{}.json", r.memory_store_id)),
                ));
            }
            match page.next {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        Ok(Self {
            uploads: Uploads::new(root.join("uploads"), state.join("uploads.json")),
            outputs: Outputs::new(root.join("outputs"), state.join("outputs.json")),
            store,
            tenant,
            session: session.to_string(),
            root,
            state,
            skills,
            memory,
            has_files,
            repos,
            workspace: None,
            pending: Vec::new(),
        })
    }

    /// Whether the model needs telling about anything (skills, memory stores or uploads).
    pub(crate) fn has_any(&self) -> bool {
        !self.skills.is_empty()
            || !self.memory.is_empty()
            || self.has_files
            || !self.repos.is_empty()
    }

    /// The repositories to clone into a box that just started on `workspace` (those without a
    /// clone there yet).
    pub(crate) fn repos_to_clone(&mut self, workspace: &Path) -> Vec<repos::RepoMount> {
        self.workspace = Some(workspace.to_path_buf());
        let mut out = Vec::new();
        for (r, state) in &mut self.repos {
            if r.is_cloned(workspace) {
                *state = RepoState::Cloned;
            } else {
                out.push(r.clone());
            }
        }
        out
    }

    /// Records how the clone of repository `resource_id` went; a failure is also told with
    /// the next tool result.
    pub(crate) fn repo_done(&mut self, resource_id: &str, result: Result<(), String>) {
        if let Some((r, state)) = self
            .repos
            .iter_mut()
            .find(|(r, _)| r.resource_id == resource_id)
        {
            if let Err(m) = &result {
                self.pending.push(format!(
                    "The repository {} is not available at {}: {m}",
                    r.url, r.target
                ));
            }
            *state = match result {
                Ok(()) => RepoState::Cloned,
                Err(m) => RepoState::Failed(m),
            };
        }
    }

    /// Fills the host folders and returns the mounts for the box. Parts that fail are left
    /// out and reported with the next tool result; only an unusable folder is an error.
    pub(crate) async fn materialize(&mut self) -> Result<Vec<Mount>, MountError> {
        std::fs::create_dir_all(&self.root)?;
        std::fs::create_dir_all(&self.state)?;
        let blobs = self.store.blobs().cloned();
        let mut mounts = Vec::new();
        let mut ok_skills = Vec::new();
        for skill in std::mem::take(&mut self.skills) {
            let dir = self.root.join("skills").join(&skill.name);
            let marker = self.state.join(format!("skill-{}.version", skill.name));
            let done = match &blobs {
                Some(b) => skill.materialize(b, &dir, &marker).await,
                None => Err(std::io::Error::other("no blob storage attached").into()),
            };
            match done {
                Ok(()) => {
                    mounts.push(Mount {
                        source: dir,
                        target: skill.target(),
                        writable: false,
                    });
                    ok_skills.push(skill);
                }
                Err(e) => {
                    tracing::warn!(op = "skills_mount", session_id = %self.session, skill_id = %skill.skill_id, error = %e, "could not extract a skill");
                    self.pending.push(format!(
                        "Skill `{}` could not be provided at {}: {e}",
                        skill.name,
                        skill.target()
                    ));
                }
            }
        }
        self.skills = ok_skills;
        let ctx = Ctx {
            store: &self.store,
            tenant: &self.tenant,
            session: &self.session,
        };
        for m in &mut self.memory {
            // Pushes what a previous host left unsynced, then fills the folder from the store.
            let notes = m.sync(&ctx).await;
            self.pending.extend(notes);
            mounts.push(Mount {
                source: m.dir.clone(),
                target: m.target.clone(),
                writable: m.writable,
            });
        }
        let notes = self.uploads.refresh(&ctx, blobs.as_ref()).await;
        self.pending.extend(notes);
        mounts.push(Mount {
            source: self.uploads.dir.clone(),
            target: UPLOADS_DIR.to_string(),
            writable: false,
        });
        std::fs::create_dir_all(&self.outputs.dir)?;
        mounts.push(Mount {
            source: self.outputs.dir.clone(),
            target: OUTPUTS_DIR.to_string(),
            writable: true,
        });
        for (r, _) in &self.repos {
            if let repos::Place::Folder(dir) = &r.place {
                std::fs::create_dir_all(dir)?;
                mounts.push(Mount {
                    source: dir.clone(),
                    target: r.target.clone(),
                    writable: true,
                });
            }
        }
        Ok(mounts)
    }

    /// Before a tool call: file resources added or removed since appear in the uploads folder.
    pub(crate) async fn before_call(&mut self) {
        let blobs = self.store.blobs().cloned();
        let ctx = Ctx {
            store: &self.store,
            tenant: &self.tenant,
            session: &self.session,
        };
        let notes = self.uploads.refresh(&ctx, blobs.as_ref()).await;
        self.pending.extend(notes);
    }

    /// After a tool call (and before the box stops): memory folders go to their stores and
    /// outputs to the Files API. Returns notes for the tool result: conflicts and files that
    /// could not be saved.
    pub(crate) async fn after_call(&mut self) -> Vec<String> {
        let blobs = self.store.blobs().cloned();
        let mut notes = std::mem::take(&mut self.pending);
        let ctx = Ctx {
            store: &self.store,
            tenant: &self.tenant,
            session: &self.session,
        };
        for m in &mut self.memory {
            notes.extend(m.sync(&ctx).await);
        }
        notes.extend(self.outputs.sync(&ctx, blobs.as_ref()).await);
        notes
    }

    /// The system prompt section describing the mounts, with paths as the box's tools see
    /// them: the fixed paths when the box is `isolated`, the host folders otherwise.
    pub(crate) fn system_prompt(&self, isolated: bool) -> Option<String> {
        self.prompt(PromptView::Box { isolated })
    }

    /// The same for a self-hosted session, whose tools run on the worker's machine: its
    /// worker puts skills in `skills/<name>/` under its working directory and memory stores
    /// at their mount paths, and there is no outputs folder (spec: the outputs instruction is
    /// left out).
    pub(crate) fn self_hosted_prompt(&self) -> Option<String> {
        self.prompt(PromptView::SelfHosted)
    }

    fn prompt(&self, view: PromptView) -> Option<String> {
        if self.skills.is_empty() && self.memory.is_empty() && view == PromptView::SelfHosted {
            return None;
        }
        if !self.has_any() {
            return None;
        }
        let shown = |target: &str, source: &Path| -> String {
            match view {
                PromptView::Box { isolated: true } | PromptView::SelfHosted => target.to_string(),
                PromptView::Box { isolated: false } => source.display().to_string(),
            }
        };
        let mut out = String::new();
        if !self.skills.is_empty() {
            out.push_str(
                "# Skills\n\nYou have the skills below. Use a skill when the task matches its \
                 description; its instructions follow, and its other files (scripts, references) \
                 are in its folder, read-only.\n",
            );
            for s in &self.skills {
                let dir = match view {
                    PromptView::SelfHosted => {
                        format!("skills/{} (in your working directory)", s.name)
                    }
                    PromptView::Box { .. } => {
                        shown(&s.target(), &self.root.join("skills").join(&s.name))
                    }
                };
                out.push_str(&format!(
                    "\n## Skill `{}`\n\nThe files of this skill are in {dir}/\n\n{}\n",
                    s.name,
                    s.skill_md.trim_end()
                ));
            }
        }
        if !self.memory.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(
                "# Memory stores\n\nThese memory stores are mounted as folders: each file is one \
                 memory (UTF-8 text, at most 100 kB). Use your file tools on them. Changes in a \
                 read-write store are saved to the store after each tool call and are seen by \
                 other sessions that use it.\n\n",
            );
            for m in &self.memory {
                let access = if m.writable {
                    "read-write"
                } else {
                    "read-only"
                };
                out.push_str(&format!(
                    "- `{}` at {}/ ({access})",
                    m.name,
                    shown(&m.target, &m.dir)
                ));
                if !m.description.is_empty() {
                    out.push_str(&format!(": {}", m.description));
                }
                out.push('\n');
                if let Some(i) = &m.instructions {
                    out.push_str(&format!("  Instructions: {i}\n"));
                }
            }
        }
        if view == PromptView::SelfHosted {
            return Some(out);
        }
        if !self.repos.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(
                "# Repositories\n\nThese GitHub repositories are cloned for you (git works on them, \
                 fetch and push included; credentials are handled for you, never ask for them):\n\n",
            );
            let isolated = view == (PromptView::Box { isolated: true });
            for (r, state) in &self.repos {
                let path = match (&self.workspace, isolated) {
                    (Some(ws), false) => r.box_path(ws, false),
                    _ => r.box_path(Path::new("/workspace"), true),
                }
                .unwrap_or_else(|| r.target.clone());
                out.push_str(&format!("- {} at {path}/ ({})", r.url, r.checkout_text()));
                if let RepoState::Failed(m) = state {
                    out.push_str(&format!(": not available, {m}"));
                }
                out.push('\n');
            }
            out.push('\n');
        } else if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!(
            "# Session files\n\nFiles attached to this session are in {}/ (read-only). Save files \
             meant for the user in {}/; they become downloadable files of this session.\n",
            shown(UPLOADS_DIR, &self.uploads.dir),
            shown(OUTPUTS_DIR, &self.outputs.dir),
        ));
        Some(out)
    }
}

/// What became of a repository's clone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RepoState {
    Pending,
    Cloned,
    Failed(String),
}

/// Where the paths of a system prompt are seen from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PromptView {
    /// The session's box on this server (an isolated box sees the mount targets; the local
    /// backend the host folders).
    Box { isolated: bool },
    /// A worker's machine (self-hosted environment).
    SelfHosted,
}

/// Removes a deleted session's folders (its copies of skills, memories and files). Links a
/// box planted there are removed, never followed.
pub(crate) async fn forget(sessions_dir: &Path, session: &str) {
    let dir = sessions_dir.join(session);
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(op = "mounts", session_id = %session, error = %e, "could not remove a deleted session's mount folders")
        }
    }
}
