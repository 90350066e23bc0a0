//! Workspace snapshots: a workspace folder packed into a tar stream, and a tar stream unpacked
//! into an empty folder.
//!
//! What is kept: regular files (contents, permission bits, mtimes), directories (permission
//! bits, mtimes) and symbolic links (their target text, never followed). Sockets, FIFOs and
//! devices are skipped; hard links are packed as separate files. Ownership is not kept: a
//! restored workspace belongs to the server's user, like a fresh one.
//!
//! Unpacking treats the archive as hostile (a model chose every name and link in it): absolute
//! paths, `..`, hard links, device entries and any entry whose path passes through a symlink
//! are rejected, nothing is ever written through a link, and set-id bits are dropped. Symlinks
//! themselves are restored as they were, whatever their target: the target is resolved inside
//! the box, where the model could have made the same link anyway, and unpacking never follows
//! one.
//!
//! Both directions are blocking file-system work; [`pack_stream`] and [`unpack_stream`] run
//! them on a blocking thread and move the bytes through a bounded channel, so a large
//! workspace is never held in memory.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

/// Bytes moved per channel message.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the blocking thread and the async side.
const CHANNEL_DEPTH: usize = 4;
/// Permission bits restored: set-uid, set-gid and sticky bits never come back.
const MODE_MASK: u32 = 0o777;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot I/O error at {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    /// The archive is corrupt or hostile; nothing outside the destination was touched.
    #[error("the snapshot archive is invalid: {0}")]
    Invalid(String),
    #[error("cannot unpack into {0}: it is not an empty folder")]
    NotEmpty(String),
    /// The blocking task panicked or was cancelled, or the other side of the stream went away.
    #[error("the snapshot task failed: {0}")]
    Task(String),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What a pack or unpack went through.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Bytes of file contents.
    pub bytes: u64,
    /// Entries left out (sockets, FIFOs, devices).
    pub skipped: u64,
}

// ---- packing ---------------------------------------------------------------------------------

/// Writes the tree under `root` (not `root` itself) to `out` as a tar stream, entries in name
/// order. `root` must be a real directory. Never follows a symlink.
pub fn pack<W: Write>(root: &Path, out: W) -> Result<SnapshotStats, SnapshotError> {
    let meta = fs::symlink_metadata(root).map_err(io_at(root))?;
    if !meta.is_dir() {
        return Err(SnapshotError::Io {
            path: root.display().to_string(),
            source: io::Error::other("not a directory"),
        });
    }
    let mut tar = tar::Builder::new(out);
    let mut stats = SnapshotStats::default();
    // Depth-first, in name order, without recursion (trees can be deep).
    let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(io_at(&dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_at(&dir))?;
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let rel = rel.join(&name);
            let abs = root.join(&rel);
            let meta = fs::symlink_metadata(&abs).map_err(io_at(&abs))?;
            let ft = meta.file_type();
            if ft.is_dir() {
                let mut h = header(&meta, tar::EntryType::Directory);
                tar.append_data(&mut h, &rel, io::empty())
                    .map_err(io_at(&abs))?;
                stats.dirs += 1;
                subdirs.push(rel);
            } else if ft.is_file() {
                append_file(&mut tar, &abs, &rel, &mut stats)?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&abs).map_err(io_at(&abs))?;
                let mut h = header(&meta, tar::EntryType::Symlink);
                tar.append_link(&mut h, &rel, &target)
                    .map_err(io_at(&abs))?;
                stats.symlinks += 1;
            } else {
                stats.skipped += 1;
            }
        }
        // Reversed so the stack pops them in name order.
        stack.extend(subdirs.into_iter().rev());
    }
    let mut out = tar.into_inner().map_err(io_at(root))?;
    out.flush().map_err(io_at(root))?;
    Ok(stats)
}

fn header(meta: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    h.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
    h.set_size(0);
    h
}

fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    abs: &Path,
    rel: &Path,
    stats: &mut SnapshotStats,
) -> Result<(), SnapshotError> {
    // O_NOFOLLOW: if the name became a link since `lstat`, fail instead of packing what it
    // points to; O_NONBLOCK: never hang on a FIFO swapped in.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(abs)
        .map_err(io_at(abs))?;
    let meta = file.metadata().map_err(io_at(abs))?;
    if !meta.is_file() {
        return Err(SnapshotError::Io {
            path: abs.display().to_string(),
            source: io::Error::other("changed while being packed"),
        });
    }
    let len = meta.len();
    let mut h = header(&meta, tar::EntryType::Regular);
    h.set_size(len);
    // Exactly `len` bytes: a file that shrank meanwhile fails instead of corrupting the stream.
    let mut body = ExactReader {
        inner: file.take(len),
        left: len,
    };
    tar.append_data(&mut h, rel, &mut body)
        .map_err(io_at(abs))?;
    stats.files += 1;
    stats.bytes += len;
    Ok(())
}

/// Fails with `UnexpectedEof` when the file ends before its header's size.
struct ExactReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while being packed",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

// ---- unpacking -------------------------------------------------------------------------------

/// Unpacks a tar stream made by [`pack`] into `root`, which must be an empty folder or not
/// exist yet. On error, `root` holds whatever was unpacked so far: callers unpack into a
/// folder of their own and move it into place only on success.
pub fn unpack<R: Read>(input: R, root: &Path) -> Result<SnapshotStats, SnapshotError> {
    match fs::read_dir(root) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(SnapshotError::NotEmpty(root.display().to_string()));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(root).map_err(io_at(root))?;
        }
        Err(e) => return Err(io_at(root)(e)),
    }
    let mut archive = tar::Archive::new(input);
    let mut stats = SnapshotStats::default();
    // Directories this unpack made (relative): the only ones entries may be written under.
    let mut made: HashSet<PathBuf> = HashSet::new();
    // Directory modes and mtimes are applied last: creating children changes a directory's
    // mtime, and a read-only directory would refuse them.
    let mut dir_meta: Vec<(PathBuf, u32, u64)> = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| SnapshotError::Invalid(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| SnapshotError::Invalid(e.to_string()))?;
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            continue;
        }
        let raw = entry
            .path()
            .map_err(|e| SnapshotError::Invalid(e.to_string()))?
            .into_owned();
        let Some(rel) = safe_relative(&raw)? else {
            continue; // `./`: the root itself
        };
        let mode = entry.header().mode().map_err(invalid(&rel))? & MODE_MASK;
        let mtime = entry.header().mtime().map_err(invalid(&rel))?;
        if let Some(parent) = rel.parent() {
            ensure_dirs(root, parent, &mut made)?;
        }
        let abs = root.join(&rel);
        match kind {
            tar::EntryType::Directory => {
                if !made.contains(&rel) {
                    fs::create_dir(&abs).map_err(exists_is_invalid(&rel, &abs))?;
                    made.insert(rel.clone());
                }
                dir_meta.push((rel, mode, mtime));
                stats.dirs += 1;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                // create_new + O_NOFOLLOW: never writes through an existing name or a link.
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(0o600)
                    .open(&abs)
                    .map_err(exists_is_invalid(&rel, &abs))?;
                let n = io::copy(&mut entry, &mut file).map_err(invalid(&rel))?;
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(io_at(&abs))?;
                file.set_modified(at(mtime)).map_err(io_at(&abs))?;
                stats.files += 1;
                stats.bytes += n;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(invalid(&rel))?
                    .filter(|t| !t.as_os_str().is_empty())
                    .ok_or_else(|| {
                        SnapshotError::Invalid(format!("symlink {} has no target", rel.display()))
                    })?
                    .into_owned();
                std::os::unix::fs::symlink(&target, &abs).map_err(exists_is_invalid(&rel, &abs))?;
                let t = filetime::FileTime::from_unix_time(mtime_i64(mtime), 0);
                filetime::set_symlink_file_times(&abs, t, t).map_err(io_at(&abs))?;
                stats.symlinks += 1;
            }
            other => {
                return Err(SnapshotError::Invalid(format!(
                    "{} is a {other:?} entry; snapshots hold only files, folders and symlinks",
                    rel.display()
                )));
            }
        }
    }
    // Deepest first, so a directory made unsearchable does not hide its children's updates.
    dir_meta.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.components().count()));
    for (rel, mode, mtime) in dir_meta {
        let abs = root.join(&rel);
        fs::set_permissions(&abs, fs::Permissions::from_mode(mode)).map_err(io_at(&abs))?;
        let t = filetime::FileTime::from_unix_time(mtime_i64(mtime), 0);
        filetime::set_symlink_file_times(&abs, t, t).map_err(io_at(&abs))?;
    }
    Ok(stats)
}

fn invalid(rel: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
    move |e| SnapshotError::Invalid(format!("{}: {e}", rel.display()))
}

/// A name that already exists means the archive names it twice (or tries to write through a
/// link it made): hostile or corrupt, not an I/O problem.
fn exists_is_invalid<'a>(
    rel: &'a Path,
    abs: &'a Path,
) -> impl FnOnce(io::Error) -> SnapshotError + 'a {
    move |e| {
        // ELOOP: O_NOFOLLOW met a symlink.
        if e.kind() == io::ErrorKind::AlreadyExists || e.raw_os_error() == Some(libc::ELOOP) {
            SnapshotError::Invalid(format!("{} appears twice in the archive", rel.display()))
        } else {
            io_at(abs)(e)
        }
    }
}

fn mtime_i64(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The entry's path as plain relative components; `None` for the root itself.
fn safe_relative(raw: &Path) -> Result<Option<PathBuf>, SnapshotError> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(SnapshotError::Invalid(format!(
                    "absolute path {}",
                    raw.display()
                )));
            }
            Component::ParentDir => {
                return Err(SnapshotError::Invalid(format!(
                    "path {} climbs out with `..`",
                    raw.display()
                )));
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Makes every folder of `rel` under `root` exist as a real directory made by this unpack.
/// Anything else already there (a symlink or file the archive made) is refused: an entry must
/// never land outside `root` by passing through a link.
fn ensure_dirs(root: &Path, rel: &Path, made: &mut HashSet<PathBuf>) -> Result<(), SnapshotError> {
    let mut cur = PathBuf::new();
    for c in rel.components() {
        cur.push(c);
        if made.contains(&cur) {
            continue;
        }
        let abs = root.join(&cur);
        match fs::symlink_metadata(&abs) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&abs).map_err(io_at(&abs))?;
                made.insert(cur.clone());
            }
            Err(e) => return Err(io_at(&abs)(e)),
            Ok(_) => {
                return Err(SnapshotError::Invalid(format!(
                    "{} is not a folder of the archive but entries are placed under it",
                    cur.display()
                )));
            }
        }
    }
    Ok(())
}

// ---- streaming on a blocking thread ----------------------------------------------------------

/// A workspace being packed on a blocking thread; read its chunks with
/// [`PackStream::next_chunk`], then call [`PackStream::finish`].
pub struct PackStream {
    rx: mpsc::Receiver<Vec<u8>>,
    task: tokio::task::JoinHandle<Result<SnapshotStats, SnapshotError>>,
}

/// Starts packing `root` on a blocking thread. Needs a Tokio runtime.
pub fn pack_stream(root: PathBuf) -> PackStream {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    let task = tokio::task::spawn_blocking(move || {
        let out = ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        pack(&root, out)
    });
    PackStream { rx, task }
}

impl PackStream {
    /// The next piece of the archive, or `None` once packing has ended (well or not: see
    /// [`PackStream::finish`]).
    pub async fn next_chunk(&mut self) -> Option<Vec<u8>> {
        self.rx.recv().await
    }

    /// Waits for the packer. Called before the stream was drained, it stops packing and
    /// returns an error.
    pub async fn finish(self) -> Result<SnapshotStats, SnapshotError> {
        drop(self.rx);
        self.task
            .await
            .map_err(|e| SnapshotError::Task(e.to_string()))?
    }
}

struct ChannelWriter {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the snapshot reader went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// A folder being unpacked on a blocking thread; feed it with [`UnpackSink::write`], then call
/// [`UnpackSink::finish`] (or [`UnpackSink::abort`] when the source failed).
pub struct UnpackSink {
    tx: mpsc::Sender<io::Result<Vec<u8>>>,
    task: tokio::task::JoinHandle<Result<SnapshotStats, SnapshotError>>,
}

/// Starts unpacking into `root` (empty or missing) on a blocking thread. Needs a Tokio runtime.
pub fn unpack_stream(root: PathBuf) -> UnpackSink {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    let task = tokio::task::spawn_blocking(move || {
        let input = ChannelReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        };
        unpack(input, &root)
    });
    UnpackSink { tx, task }
}

impl UnpackSink {
    /// Hands the unpacker the next piece. `false` when it has stopped already (it failed:
    /// [`UnpackSink::finish`] says why).
    pub async fn write(&mut self, chunk: Vec<u8>) -> bool {
        self.tx.send(Ok(chunk)).await.is_ok()
    }

    /// Ends the input and waits for the unpacker.
    pub async fn finish(self) -> Result<SnapshotStats, SnapshotError> {
        drop(self.tx);
        self.task
            .await
            .map_err(|e| SnapshotError::Task(e.to_string()))?
    }

    /// The source failed: makes the unpacker fail too (a truncated stream could otherwise end
    /// at an entry boundary and look whole) and waits until it has stopped writing.
    pub async fn abort(self, why: String) -> Result<SnapshotStats, SnapshotError> {
        let _ = self.tx.send(Err(io::Error::other(why))).await;
        self.finish().await
    }
}

struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.cur = chunk?;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
