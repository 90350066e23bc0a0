//! `oma backup create|restore`.
//!
//! A backup is ONE file in a small, documented container format (no extra dependency):
//!
//! ```text
//! "OMA-BACKUP 1\n"                      magic line
//! repeated entries:
//!   u16 big-endian  path length (> 0)
//!   path            UTF-8, relative, '/'-separated (e.g. `oma.db`, `blobs/files/…`, `root.key`)
//!   u64 big-endian  content length
//!   content
//! u16 0                                 end marker (a file without it is truncated)
//! ```
//!
//! The first entry is `oma-backup.json` (what the backup holds), then the SQLite snapshot
//! `oma.db` (taken online with `VACUUM INTO`), then every blob, then `root.key` unless
//! `--exclude-root-key`. Blobs are immutable once written (temp name + rename), and they are
//! copied AFTER the database snapshot, so every blob the snapshot refers to already exists.
//!
//! With PostgreSQL the database is not in the file: it is backed up with PostgreSQL's own
//! base backups and point-in-time recovery; the file then holds blobs and the root key only.
//!
//! **One tenant** (`--tenant NAME`): the same format, with `"tenant": NAME` in the manifest.
//! `oma.db` is then a fresh SQLite database (this binary's schema) holding the tenant's
//! `tenants` row and every row of its data, copied from whichever shard holds it (SQLite or
//! PostgreSQL) through one read transaction there, so the copy is one consistent point of
//! the tenant (SQLite: a deferred transaction made a snapshot by its first read; PostgreSQL:
//! `REPEATABLE READ`). The blobs are the ones the copied rows name (spilled events, files,
//! skill versions' files) and the workspace snapshots of the tenant's sessions, again read
//! after the rows; `root.key` as for a full backup. The tenant's API keys are NOT included:
//! they are the router's secrets (a restored deployment gets a key with `oma keys create`).
//! Restoring it like any backup gives a single-tenant deployment.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use oma_store::Backend;

use crate::config::StorageArgs;

const MAGIC: &[u8] = b"OMA-BACKUP 1\n";
const MANIFEST: &str = "oma-backup.json";
const DB_FILE: &str = "oma.db";
const ROOT_KEY: &str = "root.key";
const BLOBS: &str = "blobs";
/// The advisory lock `oma serve` holds on its data directory (see [`lock_data_dir`]).
pub const LOCK_FILE: &str = "oma.lock";

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The backup file to write (written to a temporary name, then renamed into place).
    #[arg(long)]
    pub out: PathBuf,
    /// Leave `root.key` out of the backup. Without it the restored server cannot open the
    /// sealed credentials (vault secrets, model route keys) unless the key is restored apart.
    #[arg(long)]
    pub exclude_root_key: bool,
    /// Back up this tenant only (online, from whichever shard holds it, SQLite or
    /// PostgreSQL): its rows in a fresh embedded database, the blobs they use, and root.key.
    /// Its API keys are left out (they stay with the router); after a restore, make one with
    /// `oma keys create`.
    #[arg(long, value_name = "NAME")]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub storage: StorageArgs,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup file made by `oma backup create`.
    pub file: PathBuf,
    /// Restore into a data directory that is not empty, replacing its database, blobs and root
    /// key. A directory a running server uses is refused even with `--force`.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub storage: StorageArgs,
}

pub async fn create(args: CreateArgs) -> Result<()> {
    if let Some(tenant) = args.tenant.clone() {
        return create_tenant(args, &tenant).await;
    }
    let resolved = args.storage.resolve()?;
    let data_dir = &resolved.data_dir;
    let out = &args.out;
    let out_dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = out
        .file_name()
        .with_context(|| format!("--out {} does not name a file", out.display()))?
        .to_string_lossy()
        .into_owned();
    let pid = std::process::id();
    let partial = out_dir.join(format!(".{file_name}.partial-{pid}"));
    let snapshot = out_dir.join(format!(".{file_name}.db-{pid}"));
    if resolved.blob_url.starts_with("s3://") {
        eprintln!(
            "note: blobs are in {}: back the bucket up with its own tools (versioning, \
             replication); this file holds no blobs.",
            resolved.blob_url
        );
    }

    let include_db = match resolved.backend {
        Backend::Sqlite => {
            // Opening a missing database would create an empty one and back that up.
            if let Some(db) = sqlite_file(&resolved.database_url)
                && !db.exists()
            {
                bail!(
                    "there is no database at {}: check --data-dir / --database-url (nothing to \
                     back up)",
                    db.display()
                );
            }
            let store = resolved.open_store().await?;
            let _ = fs::remove_file(&snapshot);
            let taken = store
                .snapshot_sqlite_into(&snapshot)
                .await
                .with_context(|| format!("snapshotting the database into {}", snapshot.display()));
            store.close().await;
            taken?;
            true
        }
        Backend::Postgres => {
            eprintln!(
                "note: the database is PostgreSQL: back it up with PostgreSQL's own tools \
                 (pg_basebackup plus WAL archiving for point-in-time recovery). This file holds \
                 only the blobs{} from {}.",
                if args.exclude_root_key {
                    ""
                } else {
                    " and the root key (if DATA_DIR/root.key exists)"
                },
                data_dir.display()
            );
            false
        }
    };

    let written = write_archive(
        &partial,
        data_dir,
        include_db.then_some(snapshot.as_path()),
        &Blobs::All,
        !args.exclude_root_key,
        resolved.backend,
        None,
    );
    let summary = publish(written, &snapshot, &partial, out)?;
    println!(
        "wrote {} ({}{} blob(s){})",
        out.display(),
        if include_db {
            "database snapshot, "
        } else {
            ""
        },
        summary.blobs,
        if summary.root_key { ", root.key" } else { "" }
    );
    if summary.root_key {
        println!(
            "this file contains root.key, which opens every sealed secret: store it as safely as \
             the secrets themselves (or use --exclude-root-key and back the key up apart)"
        );
    }
    Ok(())
}

struct Summary {
    blobs: usize,
    /// Blobs named by the backup's rows that were gone when read (deleted since).
    missing: usize,
    root_key: bool,
}

/// Which blobs go in the archive.
enum Blobs {
    /// Every blob under `DATA_DIR/blobs` (a full backup).
    All,
    /// Nothing (the blobs are elsewhere, e.g. S3).
    None,
    /// These keys of the local blob store rooted at `root`, and every blob under these
    /// prefixes (directories) there.
    Keys {
        root: PathBuf,
        keys: Vec<String>,
        prefixes: Vec<String>,
    },
}

/// `oma backup create --tenant NAME`.
async fn create_tenant(args: CreateArgs, tenant: &str) -> Result<()> {
    let resolved = args.storage.resolve()?;
    let out = &args.out;
    let out_dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = out
        .file_name()
        .with_context(|| format!("--out {} does not name a file", out.display()))?
        .to_string_lossy()
        .into_owned();
    if resolved.backend == Backend::Sqlite
        && let Some(db) = sqlite_file(&resolved.database_url)
        && !db.exists()
    {
        bail!(
            "there is no database at {}: check --data-dir / --database-url (nothing to back up)",
            db.display()
        );
    }
    let pid = std::process::id();
    let snapshot = out_dir.join(format!(".{file_name}.db-{pid}"));
    let store = resolved.open_migrated_store().await?;
    let exists = store.tenant_exists(tenant).await;
    let taken = match exists {
        Ok(true) => {
            let _ = fs::remove_file(&snapshot);
            store
                .snapshot_tenant_into(tenant, &snapshot)
                .await
                .with_context(|| format!("copying tenant {tenant}"))
        }
        Ok(false) => {
            let known = store.list_tenants().await.unwrap_or_default();
            Err(anyhow::anyhow!(
                "there is no tenant `{tenant}` (tenants: {}); see `oma tenants list`",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        }
        Err(e) => Err(e.into()),
    };
    store.close().await;
    let taken = match taken {
        Ok(t) => t,
        Err(e) => {
            let _ = fs::remove_file(&snapshot);
            return Err(e);
        }
    };

    let blobs = if resolved.blob_url.starts_with("s3://") {
        eprintln!(
            "note: blobs are in {}: back the bucket up with its own tools; this file holds no \
             blobs of tenant {tenant}.",
            resolved.blob_url
        );
        Blobs::None
    } else {
        let root = resolved
            .open_blobs()?
            .root()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| resolved.data_dir.join(BLOBS));
        Blobs::Keys {
            root,
            keys: taken.blob_keys,
            prefixes: taken
                .sessions
                .iter()
                .map(|sid| format!("snapshots/{sid}"))
                .collect(),
        }
    };
    let partial = out_dir.join(format!(".{file_name}.partial-{pid}"));
    let written = write_archive(
        &partial,
        &resolved.data_dir,
        Some(&snapshot),
        &blobs,
        !args.exclude_root_key,
        Backend::Sqlite,
        Some(tenant),
    );
    let summary = publish(written, &snapshot, &partial, out)?;
    println!(
        "wrote {} (tenant {tenant}: database snapshot of {} row(s), {} blob(s){}; no API keys)",
        out.display(),
        taken.rows,
        summary.blobs,
        if summary.root_key { ", root.key" } else { "" }
    );
    if summary.missing > 0 {
        eprintln!(
            "warning: {} blob(s) the tenant's rows name were deleted before they could be read \
             (files or sessions deleted during the backup); those rows restore without their \
             bytes",
            summary.missing
        );
    }
    if summary.root_key {
        println!(
            "this file contains root.key, which opens every sealed secret (of every tenant): \
             store it as safely as the secrets themselves (or use --exclude-root-key and back \
             the key up apart)"
        );
    }
    Ok(())
}

/// A blob key as a relative path under the blob root (keys are '/'-separated; anything that
/// could leave the root is refused).
fn key_path(key: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for part in key.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains('\\') {
            bail!("the blob key `{key}` cannot be backed up");
        }
        out.push(part);
    }
    Ok(out)
}

/// Writes one blob (`blobs/<key>`) from `path`; `false` when it is gone.
fn write_blob(w: &mut impl Write, path: &Path, key: &str) -> Result<bool> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let len = f.metadata()?.len();
    write_entry(w, &format!("{BLOBS}/{key}"), len, &mut f)?;
    Ok(true)
}

#[allow(clippy::too_many_arguments)]
/// Ends a backup: the temporary database snapshot goes, and the archive written to `partial`
/// is renamed to `out` (or removed, when writing it failed).
fn publish(
    written: Result<Summary>,
    snapshot: &Path,
    partial: &Path,
    out: &Path,
) -> Result<Summary> {
    let _ = fs::remove_file(snapshot);
    match written {
        Ok(summary) => {
            fs::rename(partial, out)
                .with_context(|| format!("moving the backup to {}", out.display()))?;
            Ok(summary)
        }
        Err(e) => {
            let _ = fs::remove_file(partial);
            Err(e)
        }
    }
}

fn write_archive(
    path: &Path,
    data_dir: &Path,
    db_snapshot: Option<&Path>,
    which_blobs: &Blobs,
    with_root_key: bool,
    backend: Backend,
    tenant: Option<&str>,
) -> Result<Summary> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    #[cfg(unix)]
    {
        // The file may hold the root key: keep it private from the start.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    let mut w = BufWriter::new(file);
    w.write_all(MAGIC)?;

    let root_key = data_dir.join(ROOT_KEY);
    let root_key_present = with_root_key && root_key.is_file();
    let mut manifest = serde_json::json!({
        "format": 1,
        "oma_version": env!("CARGO_PKG_VERSION"),
        "created_at": oma_core::time::format_micros(oma_core::time::now_micros()),
        "backend": backend.name(),
        "database": db_snapshot.is_some(),
        "root_key": root_key_present,
    });
    if let Some(t) = tenant {
        // A backup of one tenant (no API keys); restores as a single-tenant deployment.
        manifest["tenant"] = serde_json::Value::from(t);
        manifest["api_keys"] = serde_json::Value::from(false);
    }
    let manifest = manifest.to_string();
    write_entry(
        &mut w,
        MANIFEST,
        manifest.len() as u64,
        &mut manifest.as_bytes(),
    )?;

    if let Some(snap) = db_snapshot {
        let mut f = File::open(snap).with_context(|| format!("opening {}", snap.display()))?;
        let len = f.metadata()?.len();
        write_entry(&mut w, DB_FILE, len, &mut f)?;
    }

    let mut blobs = 0;
    let mut missing = 0;
    let blob_root = data_dir.join(BLOBS);
    let mut pending = match which_blobs {
        Blobs::All => vec![blob_root.clone()],
        Blobs::None => Vec::new(),
        Blobs::Keys {
            root,
            keys,
            prefixes,
        } => {
            for key in keys {
                if write_blob(&mut w, &root.join(key_path(key)?), key)? {
                    blobs += 1;
                } else {
                    missing += 1;
                }
            }
            for prefix in prefixes {
                let dir = root.join(key_path(prefix)?);
                let entries = match fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
                };
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.contains(".tmp-"))
                    .collect();
                names.sort();
                for n in names {
                    let key = format!("{prefix}/{n}");
                    if write_blob(&mut w, &dir.join(&n), &key)? {
                        blobs += 1;
                    }
                }
            }
            Vec::new()
        }
    };
    while let Some(dir) = pending.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        let mut entries: Vec<_> = entries.collect::<io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let p = entry.path();
            let ty = entry.file_type()?;
            if ty.is_dir() {
                pending.push(p);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            // A blob being written right now; it is not referenced by the snapshot.
            if !ty.is_file() || name.contains(".tmp-") {
                continue;
            }
            let rel = p
                .strip_prefix(data_dir)
                .context("a blob outside the data directory")?;
            let rel = archive_path(rel)?;
            // A blob deleted since the listing (a deleted file or session) is simply skipped.
            let mut f = match File::open(&p) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("opening {}", p.display())),
            };
            let len = f.metadata()?.len();
            write_entry(&mut w, &rel, len, &mut f)?;
            blobs += 1;
        }
    }

    if root_key_present {
        let mut f =
            File::open(&root_key).with_context(|| format!("opening {}", root_key.display()))?;
        let len = f.metadata()?.len();
        write_entry(&mut w, ROOT_KEY, len, &mut f)?;
    }
    w.write_all(&0u16.to_be_bytes())?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(Summary {
        blobs,
        missing,
        root_key: root_key_present,
    })
}

/// The file of a `sqlite:` URL (`None` for in-memory databases and other backends).
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// A relative path as stored in the archive: UTF-8, '/'-separated.
fn archive_path(rel: &Path) -> Result<String> {
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => parts.push(
                s.to_str()
                    .with_context(|| format!("{} is not valid UTF-8", rel.display()))?
                    .to_string(),
            ),
            _ => bail!("unexpected path {} in the data directory", rel.display()),
        }
    }
    Ok(parts.join("/"))
}

fn write_entry(w: &mut impl Write, name: &str, len: u64, content: &mut impl Read) -> Result<()> {
    let name_len = u16::try_from(name.len())
        .ok()
        .filter(|n| *n > 0)
        .with_context(|| format!("path `{name}` cannot be stored"))?;
    w.write_all(&name_len.to_be_bytes())?;
    w.write_all(name.as_bytes())?;
    w.write_all(&len.to_be_bytes())?;
    // Exactly `len` bytes: a file cannot change under us (blobs are immutable, the snapshot
    // is ours), but a short read must not corrupt the framing silently.
    let copied = io::copy(&mut content.take(len), w)?;
    if copied != len {
        bail!("`{name}` changed while it was being backed up");
    }
    Ok(())
}

pub async fn restore(args: RestoreArgs) -> Result<()> {
    let resolved = args.storage.resolve()?;
    let data_dir = resolved.data_dir.clone();
    let mut input = BufReader::new(
        File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?,
    );
    let mut magic = [0u8; MAGIC.len()];
    input
        .read_exact(&mut magic)
        .ok()
        .filter(|()| magic == MAGIC)
        .with_context(|| format!("{} is not an oma backup file", args.file.display()))?;
    // The manifest comes first: check the backup fits this configuration before touching
    // the data directory.
    let manifest: serde_json::Value = match next_entry(&mut input)? {
        Some((name, len)) if name == MANIFEST && len <= 64 * 1024 => {
            let mut text = Vec::new();
            (&mut input).take(len).read_to_end(&mut text)?;
            serde_json::from_slice(&text).context("the backup file is corrupt (manifest)")?
        }
        _ => bail!("the backup file is corrupt: it does not start with {MANIFEST}"),
    };
    let has_db = manifest["database"].as_bool().unwrap_or(false);
    if has_db && resolved.backend == Backend::Postgres {
        bail!(
            "this backup holds an embedded SQLite database but the configured database is \
             PostgreSQL: restore without --database-url (or OMA_DATABASE_URL)"
        );
    }

    fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    // Hold the same lock `oma serve` holds for the whole restore: a running server refuses
    // the restore, and a server started meanwhile refuses to start.
    let _lock = lock_data_dir(&data_dir, LockMode::Exclusive).map_err(|e| match e {
        LockError::Busy => anyhow::anyhow!(
            "a running oma server uses {}: stop it, or restore into another --data-dir",
            data_dir.display()
        ),
        LockError::Io(e) => anyhow::Error::new(e).context("locking the data directory"),
    })?;
    let occupied: Vec<String> = fs::read_dir(&data_dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != LOCK_FILE)
        .collect();
    if !occupied.is_empty() {
        if !args.force {
            bail!(
                "{} is not empty (it holds {}): restore into an empty directory, or pass --force \
                 to replace its database, blobs and root key",
                data_dir.display(),
                occupied.join(", ")
            );
        }
        for name in [
            "oma.db",
            "oma.db-wal",
            "oma.db-shm",
            "oma.db-journal",
            ROOT_KEY,
        ] {
            match fs::remove_file(data_dir.join(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {name}")),
            }
        }
        match fs::remove_dir_all(data_dir.join(BLOBS)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).context("removing the old blobs"),
        }
    }

    let mut restored_db = false;
    let mut blobs = 0usize;
    let mut root_key = false;
    while let Some((name, len)) = next_entry(&mut input)? {
        let rel = safe_relative(&name)?;
        if name == MANIFEST || (name == DB_FILE && !has_db) {
            bail!("the backup file is corrupt: unexpected `{name}` entry");
        }
        let dest = data_dir.join(&rel);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        let tmp = dest.with_file_name(format!(
            "{}.tmp-restore",
            dest.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        {
            let mut f =
                File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
            #[cfg(unix)]
            if name == ROOT_KEY {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
            }
            let copied = io::copy(&mut (&mut input).take(len), &mut f)?;
            if copied != len {
                let _ = fs::remove_file(&tmp);
                bail!("the backup file is truncated (in `{name}`)");
            }
            f.sync_all()?;
        }
        fs::rename(&tmp, &dest)?;
        if name == DB_FILE {
            restored_db = true;
        } else if name == ROOT_KEY {
            root_key = true;
        } else {
            blobs += 1;
        }
    }
    println!(
        "restored {} into {} ({}{} blob(s){})",
        args.file.display(),
        data_dir.display(),
        if restored_db { "database, " } else { "" },
        blobs,
        if root_key { ", root.key" } else { "" }
    );
    if !restored_db {
        println!(
            "this backup holds no database (it was taken from a PostgreSQL deployment): restore \
             the database with PostgreSQL's own tools (base backup / point-in-time recovery)"
        );
    }
    if let Some(t) = manifest["tenant"].as_str() {
        println!(
            "this is a backup of tenant {t} alone, without its API keys: create one with \
             `oma keys create --tenant {t}` (or start the server with OMA_API_KEY)"
        );
    }
    if !root_key {
        println!(
            "the backup holds no root.key: set OMA_ROOT_SECRET or copy the original root.key into \
             {} before starting the server, or sealed credentials cannot be opened",
            data_dir.display()
        );
    }
    Ok(())
}

/// The next entry's name and length, or `None` at the end marker.
fn next_entry(input: &mut impl Read) -> Result<Option<(String, u64)>> {
    let mut len2 = [0u8; 2];
    input
        .read_exact(&mut len2)
        .context("the backup file is truncated")?;
    let name_len = usize::from(u16::from_be_bytes(len2));
    if name_len == 0 {
        return Ok(None);
    }
    let mut name = vec![0u8; name_len];
    input
        .read_exact(&mut name)
        .context("the backup file is truncated")?;
    let name = String::from_utf8(name).context("the backup file is corrupt (entry name)")?;
    let mut len8 = [0u8; 8];
    input
        .read_exact(&mut len8)
        .context("the backup file is truncated")?;
    Ok(Some((name, u64::from_be_bytes(len8))))
}

/// An archive path as a relative path under the data directory; anything that could escape
/// it (absolute paths, `..`) is refused.
fn safe_relative(name: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for part in name.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains('\\') {
            bail!("the backup file is corrupt: unsafe path `{name}`");
        }
        out.push(part);
    }
    let allowed = name == MANIFEST
        || name == DB_FILE
        || name == ROOT_KEY
        || name.starts_with(&format!("{BLOBS}/"));
    if !allowed {
        bail!("the backup file is corrupt: unexpected entry `{name}`");
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
pub enum LockMode {
    /// One user only: the embedded database, a restore.
    Exclusive,
    /// Many users: servers sharing a data dir's blobs over PostgreSQL.
    Shared,
}

#[derive(Debug)]
pub enum LockError {
    Busy,
    Io(io::Error),
}

/// Takes the advisory lock on `DATA_DIR/oma.lock` without waiting. The lock lives as long as
/// the returned file; the kernel drops it when the process exits, even on `kill -9`.
pub fn lock_data_dir(data_dir: &Path, mode: LockMode) -> Result<File, LockError> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data_dir.join(LOCK_FILE))
        .map_err(LockError::Io)?;
    let taken = match mode {
        LockMode::Exclusive => file.try_lock(),
        LockMode::Shared => file.try_lock_shared(),
    };
    match taken {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(LockError::Busy),
        Err(fs::TryLockError::Error(e)) => Err(LockError::Io(e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn unsafe_paths_are_refused() {
        for bad in [
            "../x",
            "/etc/passwd",
            "blobs/../../x",
            "blobs//x",
            "other",
            "blobs/a\\b",
        ] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
        assert_eq!(
            safe_relative("blobs/files/a").unwrap(),
            PathBuf::from("blobs").join("files").join("a")
        );
    }

    #[test]
    fn entries_round_trip_and_truncation_is_detected() {
        let mut buf = Vec::new();
        write_entry(&mut buf, "blobs/a", 3, &mut &b"abc"[..]).unwrap();
        buf.extend_from_slice(&0u16.to_be_bytes());
        let mut r = &buf[..];
        assert_eq!(next_entry(&mut r).unwrap(), Some(("blobs/a".into(), 3)));
        let mut body = [0u8; 3];
        r.read_exact(&mut body).unwrap();
        assert_eq!(&body, b"abc");
        assert_eq!(next_entry(&mut r).unwrap(), None);
        // Without the end marker the file is truncated, never silently complete.
        let mut short = &buf[..buf.len() - 2 - 3];
        assert!(next_entry(&mut short).is_ok());
        assert!(next_entry(&mut short).is_err());
        // A source shorter than announced is an error, not a misframed archive.
        assert!(write_entry(&mut Vec::new(), "x", 10, &mut &b"abc"[..]).is_err());
    }

    #[test]
    fn the_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_data_dir(dir.path(), LockMode::Exclusive).unwrap();
        assert!(matches!(
            lock_data_dir(dir.path(), LockMode::Exclusive),
            Err(LockError::Busy)
        ));
        drop(held);
        let shared = lock_data_dir(dir.path(), LockMode::Shared).unwrap();
        let _also = lock_data_dir(dir.path(), LockMode::Shared).unwrap();
        assert!(matches!(
            lock_data_dir(dir.path(), LockMode::Exclusive),
            Err(LockError::Busy)
        ));
        drop(shared);
    }
}
