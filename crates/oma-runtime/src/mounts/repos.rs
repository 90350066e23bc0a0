//! `github_repository` resources: cloned into the session's box when it is first set up, at
//! the resource's `mount_path` (default `/workspace/<repo>`), with its `checkout` applied.
//!
//! The clone runs *inside* the box (`git`, through the box's egress proxy like any of its
//! traffic), so the token never enters it: the proxy adds it on requests to that repository
//! only (crates/oma-egress/src/repos.rs) and `.git/config` holds the plain
//! `https://github.com/<owner>/<repo>` URL. Later fetches and pushes of the agent get the
//! token the same way, rotated tokens included.
//!
//! Where the clone lands:
//! - under `/workspace`: in the workspace itself (kept with it, snapshots included);
//! - anywhere else (`/repo`, `/home/user/src/x`): a host folder `mnt/repos/<resource>/` bound
//!   writable into the box at that path (the `local` backend, which cannot place folders, is
//!   told the host folder instead).
//!
//! A repository whose target already holds a `.git` (a previous box's clone) is left alone. A
//! failure is a `session.error` (`repository_*_error`, `retry_status: retrying`) and a note for
//! the model; the session continues without the repository. Clones are not cached across
//! sessions.

use std::path::{Path, PathBuf};

use oma_api::sessions::{Checkout, GithubRepositoryResource};
use oma_core::events::NewEvent;
use serde_json::{Map, json};

/// The box's workspace.
const WORKSPACE: &str = "/workspace";

/// Box paths a repository cannot be mounted at: the system view, the agent, and the folders
/// the other mounts own.
const NOT_MOUNTABLE: &[&str] = &[
    "/usr",
    "/etc",
    "/proc",
    "/dev",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/opt/oma",
    "/run",
    "/tmp",
    "/home/user/.skills",
    "/mnt/session",
    "/mnt/memory",
];

/// One repository of the session.
#[derive(Debug, Clone)]
pub(crate) struct RepoMount {
    pub resource_id: String,
    pub url: String,
    pub checkout: Option<Checkout>,
    /// The `mount_path`, as the box sees it when isolated.
    pub target: String,
    /// Where it lives on the host.
    pub place: Place,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// `/workspace/<rel>`: the workspace folder's `<rel>` (`""` for the workspace itself).
    Workspace(String),
    /// A folder of its own, bound into the box at the target.
    Folder(PathBuf),
    /// Nowhere: the path cannot hold a repository (why).
    Refused(String),
}

impl RepoMount {
    /// `mnt_root`: the session's `<sessions_dir>/<session>/mnt`.
    pub(crate) fn new(r: &GithubRepositoryResource, mnt_root: &Path) -> RepoMount {
        RepoMount {
            resource_id: r.id.clone(),
            url: r.url.clone(),
            checkout: r.checkout.clone(),
            target: r.mount_path.clone(),
            place: place_of(&r.mount_path, &mnt_root.join("repos").join(&r.id)),
        }
    }

    /// The clone's folder on the host (`workspace`: the session's workspace folder).
    pub(crate) fn host_dir(&self, workspace: &Path) -> Option<PathBuf> {
        match &self.place {
            Place::Workspace(rel) if rel.is_empty() => Some(workspace.to_path_buf()),
            Place::Workspace(rel) => Some(workspace.join(rel)),
            Place::Folder(dir) => Some(dir.clone()),
            Place::Refused(_) => None,
        }
    }

    /// The path the box's tools use: the mount path when isolated, the host folder otherwise.
    pub(crate) fn box_path(&self, workspace: &Path, isolated: bool) -> Option<String> {
        if isolated {
            return match self.place {
                Place::Refused(_) => None,
                _ => Some(self.target.clone()),
            };
        }
        self.host_dir(workspace).map(|p| p.display().to_string())
    }

    /// Whether a clone is already there (left by a previous box of the session).
    pub(crate) fn is_cloned(&self, workspace: &Path) -> bool {
        self.host_dir(workspace)
            .is_some_and(|d| std::fs::symlink_metadata(d.join(".git")).is_ok())
    }

    /// How the checkout is described to the model.
    pub(crate) fn checkout_text(&self) -> String {
        match &self.checkout {
            None => "default branch".to_string(),
            Some(Checkout::Branch { name }) => format!("branch `{name}`"),
            Some(Checkout::Commit { sha }) => format!("commit {sha}"),
        }
    }
}

/// Where a repository with mount path `target` lives.
fn place_of(target: &str, folder: &Path) -> Place {
    if target == WORKSPACE {
        return Place::Workspace(String::new());
    }
    if let Some(rel) = target.strip_prefix("/workspace/") {
        return Place::Workspace(rel.to_string());
    }
    let under = |p: &str| target == p || target.starts_with(&format!("{p}/"));
    if target == "/" || target == "/home" || target == "/home/user" || target == "/mnt" {
        return Place::Refused(format!("`{target}` cannot hold a repository"));
    }
    if let Some(p) = NOT_MOUNTABLE.iter().find(|p| under(p)) {
        return Place::Refused(format!(
            "`{target}` is inside {p}, which the sandbox keeps for itself; use a path under /workspace"
        ));
    }
    Place::Folder(folder.to_path_buf())
}

/// The git commands of one clone, in order; each runs after the previous one succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClonePlan {
    /// Clones (and checks out a branch); a failure is classified by [`classify`].
    pub clone: Vec<String>,
    /// For a commit: check it out; when that fails, fetch it by name and try again. A
    /// failure of these is a `repository_checkout_error`.
    pub checkout: Option<CommitCheckout>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommitCheckout {
    pub checkout: Vec<String>,
    pub fetch: Vec<String>,
}

/// The plan for cloning `url` into `path` (as the box sees it) with `checkout`.
pub(crate) fn plan(url: &str, path: &str, checkout: Option<&Checkout>) -> ClonePlan {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut clone = s(&["git", "-c", "advice.detachedHead=false", "clone", "--quiet"]);
    let mut commit = None;
    match checkout {
        None => {}
        // `--branch=` keeps a name starting with `-` from being read as an option.
        Some(Checkout::Branch { name }) => clone.push(format!("--branch={name}")),
        Some(Checkout::Commit { sha }) => {
            clone.push("--no-checkout".to_string());
            commit = Some(CommitCheckout {
                checkout: s(&[
                    "git",
                    "-C",
                    path,
                    "-c",
                    "advice.detachedHead=false",
                    "checkout",
                    "--quiet",
                    "--detach",
                    sha,
                    "--",
                ]),
                fetch: s(&["git", "-C", path, "fetch", "--quiet", "origin", sha]),
            });
        }
    }
    clone.extend(s(&["--", url, path]));
    ClonePlan {
        clone,
        checkout: commit,
    }
}

/// The variables every git command of a clone runs with: no prompt (a missing credential
/// fails at once), no system or user configuration that could redirect it.
pub(crate) fn git_env() -> Vec<(String, String)> {
    [
        ("GIT_TERMINAL_PROMPT", "0"),
        ("GIT_ASKPASS", "/bin/false"),
        ("SSH_ASKPASS", "/bin/false"),
        ("GIT_CONFIG_NOSYSTEM", "1"),
        ("GIT_CONFIG_GLOBAL", "/dev/null"),
        ("LC_ALL", "C"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The `repository_*_error` types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RepoError {
    Authentication,
    Forbidden,
    NotFound,
    Checkout,
    Clone,
}

impl RepoError {
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            RepoError::Authentication => "repository_authentication_error",
            RepoError::Forbidden => "repository_forbidden_error",
            RepoError::NotFound => "repository_not_found_error",
            RepoError::Checkout => "repository_checkout_error",
            RepoError::Clone => "repository_clone_error",
        }
    }

    fn what(self) -> &'static str {
        match self {
            RepoError::Authentication => {
                "the repository host rejected the credentials, or required credentials and received none (check the resource's authorization_token; it can be rotated with POST /v1/sessions/{id}/resources/{resource_id})"
            }
            RepoError::Forbidden => "the repository host refused access to the repository",
            RepoError::NotFound => "the repository host reported the repository as not found",
            RepoError::Checkout => {
                "the requested branch or commit does not exist in the repository"
            }
            RepoError::Clone => "the repository could not be cloned",
        }
    }
}

/// What went wrong in a `git clone`, from its standard error (`LC_ALL=C`). The proxy's own
/// refusals (the CONNECT answered 403) are clone errors, not the host's.
pub(crate) fn classify(stderr: &str) -> RepoError {
    let e = stderr.to_ascii_lowercase();
    if e.contains("from proxy after connect") || e.contains("connect tunnel failed") {
        return RepoError::Clone;
    }
    if e.contains("could not read username")
        || e.contains("could not read password")
        || e.contains("authentication failed")
        || e.contains("returned error: 401")
        || e.contains("invalid username or password")
    {
        return RepoError::Authentication;
    }
    if e.contains("returned error: 403") || e.contains("permission to") && e.contains("denied") {
        return RepoError::Forbidden;
    }
    if e.contains("returned error: 404")
        || (e.contains("repository '") && e.contains("' not found"))
    {
        return RepoError::NotFound;
    }
    if e.contains("remote branch") && e.contains("not found")
        || e.contains("could not find remote branch")
    {
        return RepoError::Checkout;
    }
    RepoError::Clone
}

/// `git: ` and the last lines git wrote that say something (at most 3, 600 bytes); empty when
/// it wrote nothing.
pub(crate) fn git_said(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" / ");
    if tail.is_empty() {
        return tail;
    }
    if tail.len() <= 600 {
        return format!("git: {tail}");
    }
    let mut cut = tail.len() - 600;
    while !tail.is_char_boundary(cut) {
        cut += 1;
    }
    format!("git: …{}", &tail[cut..])
}

/// The message of a failed clone; `detail` is what went wrong in a sentence ([`git_said`]).
pub(crate) fn message(kind: RepoError, url: &str, detail: &str) -> String {
    let detail = detail.trim();
    let mut m = format!("Could not clone {url}: {}.", kind.what());
    if !detail.is_empty() {
        m.push_str(&format!(" {}", detail.trim_end_matches('.')));
        m.push('.');
    }
    m.push_str(" The session continues without this repository.");
    m
}

/// The `session.error` of a failed clone (spec §4.6: `repository_url`, always `retrying`).
pub(crate) fn error_event(kind: RepoError, url: &str, message: &str) -> NewEvent {
    let body = json!({"error": {
        "type": kind.type_name(),
        "message": message,
        "repository_url": url,
        "retry_status": {"type": "retrying"},
    }});
    let map = match body {
        serde_json::Value::Object(m) => m,
        _ => Map::new(),
    };
    NewEvent::new("session.error", map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(mount_path: &str) -> GithubRepositoryResource {
        GithubRepositoryResource {
            id: "sres_1".into(),
            created_at: "t".into(),
            mount_path: mount_path.into(),
            updated_at: "t".into(),
            url: "https://github.com/acme/widgets".into(),
            checkout: None,
        }
    }

    #[test]
    fn repositories_land_in_the_workspace_or_a_folder_of_their_own() {
        let mnt = Path::new("/data/sessions/s/mnt");
        let ws = Path::new("/data/workspaces/s");
        let m = RepoMount::new(&repo("/workspace/widgets"), mnt);
        assert_eq!(m.place, Place::Workspace("widgets".into()));
        assert_eq!(m.host_dir(ws), Some(ws.join("widgets")));
        assert_eq!(m.box_path(ws, true).as_deref(), Some("/workspace/widgets"));
        assert_eq!(
            m.box_path(ws, false).as_deref(),
            Some("/data/workspaces/s/widgets")
        );
        let m = RepoMount::new(&repo("/srv/code"), mnt);
        assert_eq!(m.place, Place::Folder(mnt.join("repos/sres_1")));
        assert_eq!(m.box_path(ws, true).as_deref(), Some("/srv/code"));
        for bad in [
            "/usr/src/x",
            "/etc/x",
            "/tmp/x",
            "/mnt/session/uploads/x",
            "/",
            "/home/user",
        ] {
            let m = RepoMount::new(&repo(bad), mnt);
            assert!(matches!(m.place, Place::Refused(_)), "{bad}");
            assert_eq!(m.box_path(ws, true), None);
        }
        assert_eq!(
            RepoMount::new(&repo("/home/user/src"), mnt).place,
            Place::Folder(mnt.join("repos/sres_1"))
        );
    }

    #[test]
    fn checkout_commands() {
        let url = "https://github.com/acme/widgets";
        let p = plan(url, "/workspace/widgets", None);
        assert_eq!(
            p.clone.join(" "),
            "git -c advice.detachedHead=false clone --quiet -- https://github.com/acme/widgets /workspace/widgets"
        );
        assert_eq!(p.checkout, None);
        let p = plan(
            url,
            "/w",
            Some(&Checkout::Branch {
                name: "-x/feature".into(),
            }),
        );
        assert!(p.clone.contains(&"--branch=-x/feature".to_string()));
        assert_eq!(&p.clone[p.clone.len() - 3..], ["--", url, "/w"]);
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let p = plan(url, "/w", Some(&Checkout::Commit { sha: sha.into() }));
        assert!(p.clone.contains(&"--no-checkout".to_string()));
        let c = p.checkout.unwrap();
        assert_eq!(
            c.checkout.join(" "),
            format!("git -C /w -c advice.detachedHead=false checkout --quiet --detach {sha} --")
        );
        assert_eq!(
            c.fetch.join(" "),
            format!("git -C /w fetch --quiet origin {sha}")
        );
        // Nothing of the token: the URL is the plain one, and no credential helper is set.
        assert!(
            !p.clone
                .iter()
                .any(|a| a.contains('@') || a.contains("extraheader"))
        );
        assert!(git_env().contains(&("GIT_TERMINAL_PROMPT".into(), "0".into())));
    }

    #[test]
    fn git_errors_are_classified() {
        let cases = [
            (
                "fatal: could not read Username for 'https://github.com': terminal prompts disabled",
                RepoError::Authentication,
            ),
            (
                "remote: Invalid username or token.\nfatal: Authentication failed for 'https://github.com/acme/widgets/'",
                RepoError::Authentication,
            ),
            (
                "fatal: unable to access 'https://github.com/acme/widgets/': The requested URL returned error: 403",
                RepoError::Forbidden,
            ),
            (
                "remote: Permission to acme/widgets.git denied to bot.\nfatal: unable to access 'https://github.com/acme/widgets/': The requested URL returned error: 403",
                RepoError::Forbidden,
            ),
            (
                "remote: Repository not found.\nfatal: repository 'https://github.com/acme/widgets/' not found",
                RepoError::NotFound,
            ),
            (
                "fatal: unable to access 'https://github.com/acme/nope/': The requested URL returned error: 404",
                RepoError::NotFound,
            ),
            (
                "warning: Could not find remote branch nope to clone.\nfatal: Remote branch nope not found in upstream origin",
                RepoError::Checkout,
            ),
            (
                "fatal: unable to access 'https://github.com/acme/widgets/': CONNECT tunnel failed, response 403",
                RepoError::Clone,
            ),
            (
                "fatal: unable to access 'https://github.com/acme/widgets/': Received HTTP code 403 from proxy after CONNECT",
                RepoError::Clone,
            ),
            (
                "fatal: unable to access 'https://github.com/acme/widgets/': Could not resolve host: github.com",
                RepoError::Clone,
            ),
            (
                "error: RPC failed; curl 18 transfer closed",
                RepoError::Clone,
            ),
        ];
        for (stderr, want) in cases {
            assert_eq!(classify(stderr), want, "{stderr}");
        }
    }

    #[test]
    fn errors_have_the_spec_shape() {
        let m = message(
            RepoError::Checkout,
            "https://github.com/acme/widgets",
            &git_said("\n\nwarning: a\nfatal: Remote branch nope not found in upstream origin\n"),
        );
        assert!(
            m.starts_with("Could not clone https://github.com/acme/widgets: the requested branch")
        );
        assert!(
            m.contains("git: warning: a / fatal: Remote branch nope"),
            "{m}"
        );
        let e = error_event(RepoError::Checkout, "https://github.com/acme/widgets", &m);
        let body = serde_json::to_value(&e.body).unwrap();
        assert_eq!(
            body["error"],
            json!({"type": "repository_checkout_error", "message": m,
                   "repository_url": "https://github.com/acme/widgets",
                   "retry_status": {"type": "retrying"}})
        );
        assert_eq!(e.kind, "session.error");
        let long = "x".repeat(2000);
        assert!(git_said(&long).len() < 700);
    }
}
