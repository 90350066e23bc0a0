//! File work inside a mount's host folder.
//!
//! A box may change its writable mounts at any moment (a background job keeps running after
//! its tool call returned), and the server reads and writes the same folders with its own,
//! much wider, view of the host. A symbolic link planted in a mount (`notes -> /`) must
//! therefore never be followed: every path is walked one component at a time from a directory
//! descriptor with `O_NOFOLLOW`, so a link, whenever it appears, makes the operation fail
//! instead of reaching outside the folder. Only regular files and directories are touched.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

/// Deepest directory nesting a scan follows.
const MAX_DEPTH: usize = 32;
/// Most entries a scan looks at, so a box cannot make a sync arbitrarily slow.
const MAX_ENTRIES: usize = 20_000;

/// A regular file found by [`Tree::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    /// Path below the root, `/`-separated, without a leading `/`.
    pub rel: String,
    pub stamp: Stamp,
}

/// What tells a file changed without reading it: size, inode and change time (which, unlike
/// the modification time, cannot be set back by a program).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Stamp {
    pub size: u64,
    pub ino: u64,
    pub ctime: i64,
    pub ctime_nsec: i64,
}

impl Stamp {
    fn of(st: &rfs::Stat) -> Self {
        Self {
            size: u64::try_from(st.st_size).unwrap_or(0),
            ino: st.st_ino,
            ctime: st.st_ctime,
            ctime_nsec: i64::try_from(st.st_ctime_nsec).unwrap_or(0),
        }
    }
}

/// What a scan saw besides regular files.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub files: Vec<Node>,
    /// Entries whose names are not UTF-8 (they cannot become memories or file names).
    pub bad_names: Vec<String>,
    /// Whether the scan stopped at [`MAX_ENTRIES`] or [`MAX_DEPTH`].
    pub truncated: bool,
}

/// A host folder opened for safe access.
pub(crate) struct Tree {
    root: OwnedFd,
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Splits a relative path into its components, refusing anything that could leave the root.
fn components(rel: &str) -> io::Result<Vec<&str>> {
    let parts: Vec<&str> = rel.split('/').collect();
    if rel.is_empty()
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == ".." || p.contains('\0'))
    {
        return Err(invalid(format!("`{rel}` is not a relative path")));
    }
    Ok(parts)
}

impl Tree {
    /// Opens `root`, creating it (and its parents) first. The root itself is the server's own
    /// folder, so a plain `create_dir_all` is fine; everything below it is walked safely.
    pub(crate) fn open(root: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let root = rfs::openat(rfs::CWD, root, dir_flags(), Mode::empty())?;
        Ok(Self { root })
    }

    /// The directory holding `parts[..n-1]`, created when `create` (mode 0755).
    fn parent(&self, parts: &[&str], create: bool) -> io::Result<OwnedFd> {
        let mut dir = rfs::openat(&self.root, ".", dir_flags(), Mode::empty())?;
        for part in &parts[..parts.len().saturating_sub(1)] {
            if create {
                match rfs::mkdirat(&dir, *part, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            dir = rfs::openat(&dir, *part, dir_flags(), Mode::empty())?;
        }
        Ok(dir)
    }

    /// Every regular file below the root, in path order.
    pub(crate) fn list(&self) -> io::Result<Listing> {
        let mut out = Listing::default();
        let root = rfs::openat(&self.root, ".", dir_flags(), Mode::empty())?;
        walk(root, "", 0, &mut out)?;
        out.files.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(out)
    }

    /// Opens a regular file for reading.
    pub(crate) fn open_file(&self, rel: &str) -> io::Result<(File, Stamp)> {
        let parts = components(rel)?;
        let dir = self.parent(&parts, false)?;
        let name = parts[parts.len() - 1];
        // NONBLOCK: a FIFO planted under a regular file's name must not hang the open.
        let fd = rfs::openat(
            &dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )?;
        let st = rfs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(invalid(format!("`{rel}` is not a regular file")));
        }
        Ok((File::from(fd), Stamp::of(&st)))
    }

    /// Reads a regular file: `Ok(None)` when it holds more than `max` bytes.
    pub(crate) fn read(&self, rel: &str, max: usize) -> io::Result<Option<(Vec<u8>, Stamp)>> {
        let (file, stamp) = self.open_file(rel)?;
        let mut bytes = Vec::new();
        file.take(max as u64 + 1).read_to_end(&mut bytes)?;
        if bytes.len() > max {
            return Ok(None);
        }
        Ok(Some((bytes, stamp)))
    }

    /// Creates a fresh temporary file in the directory of `rel` (creating the directories),
    /// for [`Tree::commit`] to move into place.
    pub(crate) fn create_temp(&self, rel: &str) -> io::Result<Staged> {
        let parts = components(rel)?;
        let dir = self.parent(&parts, true)?;
        let name = parts[parts.len() - 1].to_string();
        for n in 0..100u32 {
            let tmp = format!(".oma-tmp-{}-{n}", std::process::id());
            match rfs::openat(
                &dir,
                tmp.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            ) {
                Ok(fd) => {
                    return Ok(Staged {
                        dir,
                        tmp,
                        name,
                        file: File::from(fd),
                    });
                }
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::other(format!(
            "no free temporary name next to `{rel}`"
        )))
    }

    /// Writes `bytes` at `rel` atomically (temporary file, then rename over the old one).
    pub(crate) fn write(&self, rel: &str, bytes: &[u8]) -> io::Result<Stamp> {
        let mut staged = self.create_temp(rel)?;
        staged.file.write_all(bytes)?;
        staged.commit()
    }

    /// Removes the file at `rel`; a missing file is not an error.
    pub(crate) fn remove(&self, rel: &str) -> io::Result<()> {
        let parts = components(rel)?;
        let dir = match self.parent(&parts, false) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        match rfs::unlinkat(&dir, parts[parts.len() - 1], AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The stamp of the regular file at `rel`, if there is one.
    pub(crate) fn stamp(&self, rel: &str) -> Option<Stamp> {
        self.open_file(rel).ok().map(|(_, s)| s)
    }

    /// Removes everything below the root.
    pub(crate) fn clear(&self) -> io::Result<()> {
        let root = rfs::openat(&self.root, ".", dir_flags(), Mode::empty())?;
        clear_dir(&root, 0)
    }
}

/// A temporary file waiting to replace its target.
pub(crate) struct Staged {
    dir: OwnedFd,
    tmp: String,
    name: String,
    pub file: File,
}

impl Staged {
    /// Moves the written file into place and returns its stamp.
    pub(crate) fn commit(self) -> io::Result<Stamp> {
        self.file.sync_data()?;
        let st = rfs::fstat(self.file.as_fd())?;
        if let Err(e) = rfs::renameat(&self.dir, self.tmp.as_str(), &self.dir, self.name.as_str()) {
            let _ = rfs::unlinkat(&self.dir, self.tmp.as_str(), AtFlags::empty());
            return Err(e.into());
        }
        Ok(Stamp::of(&st))
    }

    /// Throws the temporary file away.
    pub(crate) fn abort(self) {
        let _ = rfs::unlinkat(&self.dir, self.tmp.as_str(), AtFlags::empty());
    }
}

fn walk(dir: OwnedFd, prefix: &str, depth: usize, out: &mut Listing) -> io::Result<()> {
    if depth > MAX_DEPTH {
        out.truncated = true;
        return Ok(());
    }
    let entries = rfs::Dir::read_from(&dir)?;
    let mut subdirs = Vec::new();
    for entry in entries {
        let entry = entry?;
        let raw = entry.file_name().to_bytes();
        if raw == b"." || raw == b".." {
            continue;
        }
        if out.files.len() + out.bad_names.len() + subdirs.len() >= MAX_ENTRIES {
            out.truncated = true;
            break;
        }
        let Ok(name) = std::str::from_utf8(raw) else {
            out.bad_names
                .push(format!("{prefix}{}", String::from_utf8_lossy(raw)));
            continue;
        };
        if name.starts_with(".oma-tmp-") {
            continue;
        }
        // The entry's own type, never its target's.
        let Ok(st) = rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => out.files.push(Node {
                rel: format!("{prefix}{name}"),
                stamp: Stamp::of(&st),
            }),
            FileType::Directory => subdirs.push(name.to_string()),
            _ => {}
        }
    }
    for name in subdirs {
        // A directory swapped for a link since the stat fails here (NOFOLLOW).
        if let Ok(sub) = rfs::openat(&dir, name.as_str(), dir_flags(), Mode::empty()) {
            walk(sub, &format!("{prefix}{name}/"), depth + 1, out)?;
        }
    }
    Ok(())
}

fn clear_dir(dir: &OwnedFd, depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other("directory nesting too deep to clear"));
    }
    let names: Vec<Vec<u8>> = rfs::Dir::read_from(dir)?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_bytes().to_vec())
        .filter(|n| n != b"." && n != b"..")
        .collect();
    for name in names {
        let name = std::ffi::CString::new(name).map_err(|e| io::Error::other(e.to_string()))?;
        let st = rfs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let sub = rfs::openat(dir, name.as_c_str(), dir_flags(), Mode::empty())?;
            clear_dir(&sub, depth + 1)?;
            rfs::unlinkat(dir, name.as_c_str(), AtFlags::REMOVEDIR)?;
        } else {
            rfs::unlinkat(dir, name.as_c_str(), AtFlags::empty())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_writes_and_never_follows_links() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s3cret").unwrap();
        let tree = Tree::open(&dir.path().join("m")).unwrap();
        tree.write("a/b/c.md", b"hello").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("m/a/b/c.md")).unwrap(),
            "hello"
        );
        std::os::unix::fs::symlink(outside.path(), dir.path().join("m/link")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret"),
            dir.path().join("m/a/leak.md"),
        )
        .unwrap();
        let listing = tree.list().unwrap();
        let rels: Vec<&str> = listing.files.iter().map(|n| n.rel.as_str()).collect();
        assert_eq!(rels, vec!["a/b/c.md"]);
        assert!(tree.read("a/leak.md", 100).is_err());
        assert!(tree.read("link/secret", 100).is_err());
        assert!(tree.write("link/planted", b"x").is_err());
        assert!(!outside.path().join("planted").exists());
        assert!(tree.read("../m/a/b/c.md", 100).is_err());
        assert_eq!(tree.read("a/b/c.md", 3).unwrap(), None);
        let (bytes, stamp) = tree.read("a/b/c.md", 100).unwrap().unwrap();
        assert_eq!(bytes, b"hello");
        assert_eq!(tree.stamp("a/b/c.md"), Some(stamp));
        tree.remove("a/b/c.md").unwrap();
        tree.remove("a/b/c.md").unwrap();
        tree.clear().unwrap();
        assert!(outside.path().join("secret").exists(), "clear stays inside");
        assert!(tree.list().unwrap().files.is_empty());
    }
}
