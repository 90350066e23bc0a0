//! What a session brings besides its calls: its agent's skills and its memory stores, set up
//! on this machine the way its system prompt describes them.
//!
//! - Skills are fetched with the item's sessions token and unpacked into the workspace at
//!   `skills/<name>/` (the prompt points the agent there).
//! - Each memory store is downloaded into a folder of its own, bound into the box at the
//!   resource's `mount_path` (read-only for `read_only` stores), and its changes are written
//!   back to the store after every tool call and when the session is let go.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use oma_sandbox::Mount;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::client::{CallError, Client};

/// Largest memory the API stores; bigger files in a mounted store are left out of the sync.
const MAX_MEMORY_BYTES: u64 = 100 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Api(#[from] CallError),
    #[error("{0}")]
    Local(String),
}

fn local(what: &str, e: impl std::fmt::Display) -> SetupError {
    SetupError::Local(format!("{what}: {e}"))
}

/// Unpacks the skills of the session's agent into `workspace/skills/`.
pub async fn install_skills(
    client: &Client,
    bearer: &str,
    session: &Value,
    workspace: &Path,
) -> Result<usize, SetupError> {
    let skills = session
        .pointer("/agent/skills")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let root = workspace.join("skills");
    let mut installed = 0;
    for skill in &skills {
        let Some(id) = skill.get("skill_id").and_then(Value::as_str) else {
            continue;
        };
        // Anthropic's prebuilt skills live with the model provider, not in the skills API.
        if skill.get("type").and_then(Value::as_str) == Some("anthropic") {
            continue;
        }
        let version = skill
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("latest");
        let meta = client
            .get_json(bearer, &format!("/v1/skills/{id}/versions/{version}"))
            .await?;
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| is_single_component(n))
            .unwrap_or(id)
            .to_string();
        let archive = client
            .get_bytes(
                bearer,
                &format!("/v1/skills/{id}/versions/{version}/content"),
            )
            .await?;
        let entries = crate::unzip::read(&archive).map_err(|e| local(&format!("skill {id}"), e))?;
        let dest = root.join(&name);
        if dest.exists() {
            std::fs::remove_dir_all(&dest).map_err(|e| local("replacing a skill", e))?;
        }
        for entry in entries {
            // Entries are `<name>/<path>`; the top folder is the skill's name.
            let rel = entry
                .name
                .split_once('/')
                .map_or(entry.name.as_str(), |(_, rest)| rest);
            let Some(path) = safe_join(&dest, rel) else {
                return Err(local(
                    &format!("skill {id}"),
                    format!("unsafe path `{}`", entry.name),
                ));
            };
            write_file(&path, &entry.data)?;
        }
        installed += 1;
    }
    Ok(installed)
}

/// One memory store of the session, mirrored in a folder.
struct Store {
    id: String,
    dir: PathBuf,
    writable: bool,
    /// What the store holds as far as this worker knows: path → (memory id, content).
    known: HashMap<String, (String, Vec<u8>)>,
}

/// The session's memory stores. [`MemoryStores::sync`] writes changes back.
pub struct MemoryStores {
    stores: Mutex<Vec<Store>>,
}

impl MemoryStores {
    /// Downloads every store attached to the session into `root/<store id>` (or, for a box
    /// without a private view of the filesystem, straight at its `mount_path`), and says how
    /// to bind each into the box.
    pub async fn download(
        client: &Client,
        bearer: &str,
        session: &Value,
        root: &Path,
        private_view: bool,
    ) -> Result<(Self, Vec<Mount>), SetupError> {
        let mut stores = Vec::new();
        let mut mounts = Vec::new();
        let resources = session
            .get("resources")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for r in resources
            .iter()
            .filter(|r| r.get("type").and_then(Value::as_str) == Some("memory_store"))
        {
            let Some(id) = r.get("memory_store_id").and_then(Value::as_str) else {
                continue;
            };
            let target = r
                .get("mount_path")
                .and_then(Value::as_str)
                .filter(|p| p.starts_with('/') && safe_join(Path::new("/"), p).is_some())
                .map_or_else(|| format!("/mnt/memory/{id}"), str::to_string);
            let writable = r.get("access").and_then(Value::as_str) != Some("read_only");
            let dir = if private_view {
                root.join(id)
            } else {
                PathBuf::from(&target)
            };
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| local("clearing a memory folder", e))?;
            }
            std::fs::create_dir_all(&dir).map_err(|e| local("creating a memory folder", e))?;
            let mut known = HashMap::new();
            let mut page: Option<String> = None;
            loop {
                let mut path = format!("/v1/memory_stores/{id}/memories?view=full&limit=20");
                if let Some(p) = &page {
                    path.push_str("&page=");
                    path.push_str(p);
                }
                let v = client.get_json(bearer, &path).await?;
                for m in v
                    .get("data")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let (Some(mid), Some(p)) = (
                        m.get("id").and_then(Value::as_str),
                        m.get("path").and_then(Value::as_str),
                    ) else {
                        continue;
                    };
                    let content = m.get("content").and_then(Value::as_str).unwrap_or_default();
                    let Some(file) = safe_join(&dir, p) else {
                        tracing::warn!(memory_store_id = %id, path = %p, "skipping a memory with an unusable path");
                        continue;
                    };
                    write_file(&file, content.as_bytes())?;
                    known.insert(
                        p.to_string(),
                        (mid.to_string(), content.as_bytes().to_vec()),
                    );
                }
                match v
                    .get("next_page")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                {
                    Some(n) => page = Some(n.to_string()),
                    None => break,
                }
            }
            tracing::info!(memory_store_id = %id, memories = known.len(), target = %target, writable, "mounted a memory store");
            mounts.push(Mount {
                source: dir.clone(),
                target,
                writable,
            });
            stores.push(Store {
                id: id.to_string(),
                dir,
                writable,
                known,
            });
        }
        Ok((
            MemoryStores {
                stores: Mutex::new(stores),
            },
            mounts,
        ))
    }

    /// Writes what changed in the read-write stores' folders back to the stores: new files
    /// are created, changed ones updated, removed ones deleted. A failure is logged and
    /// retried at the next sync (the file is still there).
    pub async fn sync(&self, client: &Client, bearer: &str) {
        let mut stores = self.stores.lock().await;
        for store in stores.iter_mut().filter(|s| s.writable) {
            let on_disk = match scan(&store.dir) {
                Ok(files) => files,
                Err(e) => {
                    tracing::warn!(memory_store_id = %store.id, "cannot read the memory folder: {e}");
                    continue;
                }
            };
            let base = format!("/v1/memory_stores/{}/memories", store.id);
            for (path, content) in &on_disk {
                let Ok(text) = std::str::from_utf8(content) else {
                    tracing::warn!(memory_store_id = %store.id, path = %path, "not UTF-8 text; not saved to the store");
                    continue;
                };
                match store.known.get(path) {
                    Some((_, old)) if old == content => {}
                    Some((mid, _)) => {
                        let mid = mid.clone();
                        match client
                            .post_json(bearer, &format!("{base}/{mid}"), &json!({"content": text}))
                            .await
                        {
                            Ok(_) => {
                                store.known.insert(path.clone(), (mid, content.clone()));
                            }
                            Err(e) => {
                                tracing::warn!(memory_store_id = %store.id, path = %path, "saving a memory failed: {e}")
                            }
                        }
                    }
                    None => match client
                        .post_json(bearer, &base, &json!({"path": path, "content": text}))
                        .await
                    {
                        Ok(m) => {
                            let mid = m.get("id").and_then(Value::as_str).unwrap_or_default();
                            store
                                .known
                                .insert(path.clone(), (mid.to_string(), content.clone()));
                        }
                        Err(e) => {
                            tracing::warn!(memory_store_id = %store.id, path = %path, "creating a memory failed: {e}")
                        }
                    },
                }
            }
            let gone: Vec<(String, String)> = store
                .known
                .iter()
                .filter(|(p, _)| !on_disk.contains_key(*p))
                .map(|(p, (mid, _))| (p.clone(), mid.clone()))
                .collect();
            for (path, mid) in gone {
                match client.delete(bearer, &format!("{base}/{mid}")).await {
                    Ok(()) => {
                        store.known.remove(&path);
                    }
                    Err(e) if e.status() == Some(404) => {
                        store.known.remove(&path);
                    }
                    Err(e) => {
                        tracing::warn!(memory_store_id = %store.id, path = %path, "deleting a memory failed: {e}")
                    }
                }
            }
        }
    }
}

/// Every regular file under `dir`, by its store path (`/a/b.md`), with its bytes.
fn scan(dir: &Path) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                if entry.metadata()?.len() > MAX_MEMORY_BYTES {
                    tracing::warn!(path = %path.display(), "over 100 kB; not saved to the store");
                    continue;
                }
                let Ok(rel) = path.strip_prefix(dir) else {
                    continue;
                };
                let Some(rel) = rel.to_str() else { continue };
                out.insert(format!("/{rel}"), std::fs::read(&path)?);
            }
        }
    }
    Ok(out)
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), SetupError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| local("creating a folder", e))?;
    }
    std::fs::write(path, data).map_err(|e| local(&format!("writing {}", path.display()), e))
}

fn is_single_component(name: &str) -> bool {
    let mut c = Path::new(name).components();
    matches!((c.next(), c.next()), (Some(Component::Normal(_)), None))
}

/// `base` joined with a relative (or `/`-rooted) path that may not climb out of it.
fn safe_join(base: &Path, rel: &str) -> Option<PathBuf> {
    let mut out = base.to_path_buf();
    let mut any = false;
    for c in Path::new(rel.trim_start_matches('/')).components() {
        match c {
            Component::Normal(p) => {
                out.push(p);
                any = true;
            }
            Component::CurDir => {}
            _ => return None,
        }
    }
    any.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        let b = Path::new("/w");
        assert_eq!(safe_join(b, "/a/b.md"), Some(PathBuf::from("/w/a/b.md")));
        assert_eq!(safe_join(b, "a/./b"), Some(PathBuf::from("/w/a/b")));
        assert_eq!(safe_join(b, "../x"), None);
        assert_eq!(safe_join(b, "a/../../x"), None);
        assert_eq!(safe_join(b, "/"), None);
        assert!(is_single_component("my-skill"));
        assert!(
            !is_single_component("a/b") && !is_single_component("..") && !is_single_component("")
        );
    }

    #[test]
    fn a_folder_is_scanned_by_store_path() {
        let d = std::env::temp_dir().join(format!("oma-worker-scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("a.md"), "A").unwrap();
        std::fs::write(d.join("sub/b.md"), "B").unwrap();
        let files = scan(&d).unwrap();
        assert_eq!(files.keys().collect::<Vec<_>>(), ["/a.md", "/sub/b.md"]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
