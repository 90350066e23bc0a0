//! Cloning the session's `github_repository` resources into its box, right after the box
//! started and before the tool call that needed it runs (see `crate::mounts::repos`).
//!
//! `git` runs in the box as a process of its own (`Sandbox::spawn_process`), with the box's
//! environment: `HTTPS_PROXY` is the session's egress proxy, which adds the repository's token
//! on the way out, and the CA variables name the bundle that trusts the deployment CA. Nothing
//! of the token is ever in the box. A failure becomes a `session.error`
//! (`repository_*_error`, `retrying`) and a note for the model; the session goes on without
//! that repository.

use std::path::Path;
use std::time::Duration;

use oma_sandbox::{ProcessSpec, Sandbox};
use tokio::io::AsyncReadExt;

use super::SessionHost;
use crate::mounts::repos::{self, RepoError, RepoMount};

/// How long one git command of a clone may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(600);

impl SessionHost {
    /// Clones every repository of the session that the box's workspace does not hold yet.
    pub(super) async fn clone_repositories(&mut self, sb: &dyn Sandbox) {
        let workspace = self.workspace_dir();
        let isolated = self.rt.inner().launcher.isolated();
        let Some(mounts) = self.mounts.as_mut() else {
            return;
        };
        let todo = mounts.repos_to_clone(&workspace);
        for repo in todo {
            let started = std::time::Instant::now();
            let mut result = clone_one(sb, &repo, &workspace, isolated).await;
            if let (Err((_, message)), false) = (&mut result, isolated) {
                message.push_str(
                    " (The unisolated `local` sandbox has no egress proxy: git reaches the host \
                     directly and no authorization_token is sent.)",
                );
            }
            match &result {
                Ok(()) => {
                    tracing::info!(op = "repository_clone", session_id = %self.session, resource_id = %repo.resource_id, url = %repo.url, duration_ms = started.elapsed().as_millis() as u64, "repository cloned");
                }
                Err((kind, message)) => {
                    tracing::warn!(op = "repository_clone", session_id = %self.session, resource_id = %repo.resource_id, url = %repo.url, error_type = kind.type_name(), "{message}");
                    self.box_events
                        .push(repos::error_event(*kind, &repo.url, message));
                }
            }
            if let Some(m) = self.mounts.as_mut() {
                m.repo_done(&repo.resource_id, result.map_err(|(_, m)| m));
            }
        }
    }
}

/// Clones one repository; `Err` is the error type and message for the session.
async fn clone_one(
    sb: &dyn Sandbox,
    repo: &RepoMount,
    workspace: &Path,
    isolated: bool,
) -> Result<(), (RepoError, String)> {
    let clone_error = |why: String| {
        (
            RepoError::Clone,
            repos::message(RepoError::Clone, &repo.url, &why),
        )
    };
    if let repos::Place::Refused(why) = &repo.place {
        return Err(clone_error(format!("The mount_path cannot be used: {why}")));
    }
    let Some(path) = repo.box_path(workspace, isolated) else {
        return Err(clone_error("The mount_path cannot be used.".to_string()));
    };
    // The parent must exist for git (a folder mount exists already: git clones into it).
    if let (repos::Place::Workspace(rel), Some(dir)) = (&repo.place, repo.host_dir(workspace))
        && !rel.is_empty()
        && let Some(parent) = dir.parent()
        && let Err(e) = std::fs::create_dir_all(parent)
    {
        return Err(clone_error(format!(
            "Cannot create {}: {e}",
            parent.display()
        )));
    }
    let plan = repos::plan(&repo.url, &path, repo.checkout.as_ref());
    let out = run_git(sb, plan.clone).await.map_err(clone_error)?;
    if !out.ok {
        let kind = repos::classify(&out.stderr);
        return Err((
            kind,
            repos::message(kind, &repo.url, &repos::git_said(&out.stderr)),
        ));
    }
    let Some(commit) = plan.checkout else {
        return Ok(());
    };
    let checkout_error = |stderr: &str| {
        (
            RepoError::Checkout,
            repos::message(RepoError::Checkout, &repo.url, &repos::git_said(stderr)),
        )
    };
    let first = run_git(sb, commit.checkout.clone())
        .await
        .map_err(clone_error)?;
    if first.ok {
        return Ok(());
    }
    // Not among the cloned refs: ask the host for the commit itself, then try again.
    let fetched = run_git(sb, commit.fetch).await.map_err(clone_error)?;
    let second = match fetched.ok {
        true => run_git(sb, commit.checkout).await.map_err(clone_error)?,
        false => fetched,
    };
    if second.ok {
        return Ok(());
    }
    // Without its commit the clone is not the repository asked for: it goes.
    if let Some(dir) = repo.host_dir(workspace) {
        clear(&dir, matches!(repo.place, repos::Place::Folder(_)));
    }
    let kind = match repos::classify(&second.stderr) {
        RepoError::Clone => RepoError::Checkout,
        other => other,
    };
    match kind {
        RepoError::Checkout => Err(checkout_error(&second.stderr)),
        other => Err((
            other,
            repos::message(other, &repo.url, &repos::git_said(&second.stderr)),
        )),
    }
}

struct GitOutput {
    ok: bool,
    stderr: String,
}

/// Runs one git command in the box and waits for it (bounded by [`GIT_TIMEOUT`]). `Err` when
/// it could not run at all.
async fn run_git(sb: &dyn Sandbox, command: Vec<String>) -> Result<GitOutput, String> {
    let spec = ProcessSpec {
        command,
        env: repos::git_env(),
        cwd: None,
    };
    let mut p = sb
        .spawn_process(spec)
        .await
        .map_err(|e| format!("Git could not be started in the sandbox: {e}"))?;
    // Nothing is written to git; its output is read (and dropped) so it never stalls.
    drop(std::mem::replace(&mut p.stdin, Box::new(tokio::io::sink())));
    let mut stdout = std::mem::replace(&mut p.stdout, Box::new(tokio::io::empty()));
    let drain = async move {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stdout.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    let waited = tokio::time::timeout(GIT_TIMEOUT, async {
        let (exit, ()) = tokio::join!(p.exited.wait(), drain);
        exit
    })
    .await;
    match waited {
        Err(_) => {
            p.kill();
            Err(format!(
                "Git did not finish within {} seconds",
                GIT_TIMEOUT.as_secs()
            ))
        }
        Ok(Err(e)) => Err(format!("The sandbox failed while git ran: {e}")),
        Ok(Ok(exit)) => Ok(GitOutput {
            ok: exit.success(),
            stderr: exit.stderr_tail,
        }),
    }
}

/// Removes a failed clone: the folder, or only what is in it when it is a mount point.
fn clear(dir: &Path, keep_root: bool) {
    if !keep_root {
        let _ = std::fs::remove_dir_all(dir);
        return;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            // `file_type` does not follow links: a link is removed, never its target.
            let _ = match e.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
                _ => std::fs::remove_file(&p),
            };
        }
    }
}
