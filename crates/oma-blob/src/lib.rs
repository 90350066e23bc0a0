//! Blob storage: the bytes of files, skill versions, spilled events, workspace snapshots and
//! memory. A local directory (one machine), or an S3-compatible bucket (several nodes share
//! it), behind the same type.
//!
//! Keys are relative paths made of `[A-Za-z0-9._-]` segments separated by `/`; anything else
//! is rejected, so a key can never escape the root.

use std::path::{Path, PathBuf};

use bytes::Bytes;

mod s3;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("invalid blob key `{0}`")]
    InvalidKey(String),
    #[error("blob `{0}` not found")]
    NotFound(String),
    #[error("blob storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("object storage error: {0}")]
    Remote(String),
    #[error("invalid blob storage URL `{url}`: {why}")]
    Config { url: String, why: String },
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Local(PathBuf),
    Remote(s3::Remote),
}

/// Whether `key` is a valid blob key (or key prefix): see the module docs.
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
}

/// Checks a key's syntax (see the module docs).
fn check_key(key: &str) -> Result<(), BlobError> {
    if is_valid_key(key) {
        Ok(())
    } else {
        Err(BlobError::InvalidKey(key.to_string()))
    }
}

impl BlobStore {
    /// A store rooted at `dir`, created if missing.
    pub fn open_local(dir: impl AsRef<Path>) -> Result<Self, BlobError> {
        let root = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&root)?;
        Ok(Self {
            inner: Inner::Local(root),
        })
    }

    /// A store at `url`: `s3://bucket[/prefix]` for an S3-compatible bucket (endpoint, region
    /// and credentials from the standard `AWS_*` environment variables, e.g. `AWS_ENDPOINT_URL`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP`), or a
    /// local folder (`file:///srv/blobs` or a plain path).
    pub fn open_url(url: &str) -> Result<Self, BlobError> {
        Self::open_url_with(url, &[])
    }

    /// [`BlobStore::open_url`] with S3 settings given here instead of (over) the environment:
    /// `(key, value)` pairs such as `("aws_endpoint", "http://127.0.0.1:9000")`,
    /// `("aws_allow_http", "true")`, `("aws_access_key_id", …)`.
    pub fn open_url_with(url: &str, s3_config: &[(&str, &str)]) -> Result<Self, BlobError> {
        if let Some(rest) = url.strip_prefix("s3://") {
            return Ok(Self {
                inner: Inner::Remote(s3::Remote::open(url, rest, s3_config)?),
            });
        }
        let path = url.strip_prefix("file://").unwrap_or(url);
        let other_scheme = url.contains("://") && !url.starts_with("file://");
        if path.is_empty() || other_scheme {
            return Err(BlobError::Config {
                url: url.to_string(),
                why: "expected s3://bucket[/prefix], file:///path or a path".into(),
            });
        }
        Self::open_local(path)
    }

    /// The local folder the blobs live in (`None` for object storage).
    pub fn root(&self) -> Option<&Path> {
        match &self.inner {
            Inner::Local(root) => Some(root),
            Inner::Remote(_) => None,
        }
    }

    /// Where the blobs are, for operators (a folder or an `s3://` URL; never credentials).
    pub fn location(&self) -> String {
        match &self.inner {
            Inner::Local(root) => root.display().to_string(),
            Inner::Remote(r) => r.url().to_string(),
        }
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, BlobError> {
        check_key(key)?;
        match &self.inner {
            Inner::Local(root) => Ok(root.join(key)),
            Inner::Remote(_) => Err(std::io::Error::other("not a local blob store").into()),
        }
    }

    /// Writes `bytes` under `key` atomically (temp file + rename), so a reader never sees a
    /// half-written blob and a crash leaves either the old or the new bytes.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        if let Inner::Remote(r) = &self.inner {
            check_key(key)?;
            return r.put(key, bytes).await;
        }
        let path = self.path_of(key)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let mut tmp = path.clone().into_os_string();
        tmp.push(format!(".tmp-{}", unique_suffix()));
        let tmp = PathBuf::from(tmp);
        tokio::fs::write(&tmp, &bytes).await?;
        if let Err(e) = tokio::fs::rename(&tmp, &path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e.into());
        }
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, BlobError> {
        if let Inner::Remote(r) = &self.inner {
            check_key(key)?;
            return r.get(key).await;
        }
        let path = self.path_of(key)?;
        match tokio::fs::read(&path).await {
            Ok(v) => Ok(Bytes::from(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(BlobError::NotFound(key.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The keys under `prefix` (a folder of keys, e.g. `snapshots/sesn_1`), at any depth, in
    /// key order. Writes still in progress (or abandoned by a crash) are not listed. A prefix
    /// with no blobs is an empty list.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        if let Inner::Remote(r) = &self.inner {
            check_key(prefix)?;
            return r.list(prefix).await;
        }
        let base = self.path_of(prefix)?;
        let prefix = prefix.to_string();
        let keys = tokio::task::spawn_blocking(move || list_under(&base, &prefix))
            .await
            .map_err(std::io::Error::other)??;
        Ok(keys)
    }

    /// Deletes `key`; deleting a missing blob is not an error (deletes are retried after crashes).
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        if let Inner::Remote(r) = &self.inner {
            check_key(key)?;
            return r.delete(key).await;
        }
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl BlobStore {
    /// Starts writing a blob in pieces (large uploads are streamed to storage instead of being
    /// held in memory). Nothing is visible under `key` until [`BlobWriter::commit`]; a writer
    /// dropped without committing removes its temporary file.
    pub async fn writer(&self, key: &str) -> Result<BlobWriter, BlobError> {
        if let Inner::Remote(r) = &self.inner {
            check_key(key)?;
            return Ok(BlobWriter {
                file: None,
                tmp: None,
                path: PathBuf::new(),
                written: 0,
                remote: Some(r.writer(key)),
            });
        }
        let path = self.path_of(key)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let mut tmp = path.clone().into_os_string();
        tmp.push(format!(".tmp-{}", unique_suffix()));
        let tmp = PathBuf::from(tmp);
        let file = tokio::fs::File::create(&tmp).await?;
        Ok(BlobWriter {
            file: Some(file),
            tmp: Some(tmp),
            path,
            written: 0,
            remote: None,
        })
    }

    /// Writes `bytes` under `key` and makes them durable before returning: the file is
    /// fsynced before its atomic rename and, on Unix, the directory after it. For callers
    /// that record the key in the database right after (spilled events), where a committed
    /// row pointing at bytes a crash could still lose would be a corrupt log. Returns the size.
    pub async fn put_synced(&self, key: &str, bytes: &[u8]) -> Result<u64, BlobError> {
        if let Inner::Remote(r) = &self.inner {
            // An acknowledged PUT is durable.
            check_key(key)?;
            r.put(key, Bytes::copy_from_slice(bytes)).await?;
            return Ok(bytes.len() as u64);
        }
        let mut w = self.writer(key).await?;
        w.write(bytes).await?;
        let n = w.commit().await?;
        #[cfg(unix)]
        {
            // The rename is only durable once the directory entry is: fsync the parent.
            let path = self.path_of(key)?;
            if let Some(parent) = path.parent() {
                tokio::fs::File::open(parent).await?.sync_all().await?;
            }
        }
        Ok(n)
    }

    /// Opens a blob for reading in chunks (large downloads are streamed, not loaded whole).
    pub async fn reader(&self, key: &str) -> Result<BlobReader, BlobError> {
        if let Inner::Remote(r) = &self.inner {
            check_key(key)?;
            let (len, stream) = r.reader(key).await?;
            return Ok(BlobReader {
                source: Source::Remote(stream),
                len,
            });
        }
        let path = self.path_of(key)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BlobError::NotFound(key.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        let len = file.metadata().await?.len();
        Ok(BlobReader {
            source: Source::File(file),
            len,
        })
    }
}

/// A blob being written piece by piece; see [`BlobStore::writer`].
#[derive(Debug)]
pub struct BlobWriter {
    file: Option<tokio::fs::File>,
    tmp: Option<PathBuf>,
    path: PathBuf,
    written: u64,
    /// Set for object storage (then the file fields are unused).
    remote: Option<s3::RemoteWriter>,
}

impl BlobWriter {
    /// Appends `chunk`.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        use tokio::io::AsyncWriteExt;
        if let Some(r) = &mut self.remote {
            r.write(chunk).await?;
            self.written += chunk.len() as u64;
            return Ok(());
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("blob writer already finished"))?;
        file.write_all(chunk).await?;
        self.written += chunk.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Makes the blob visible under its key (flush, fsync, then an atomic rename), returning
    /// its size. The fsync matters because callers record the blob in the database right
    /// after: a row must never point at bytes a crash could still lose.
    pub async fn commit(mut self) -> Result<u64, BlobError> {
        use tokio::io::AsyncWriteExt;
        if let Some(r) = self.remote.take() {
            r.commit().await?;
            return Ok(self.written);
        }
        let (Some(mut file), Some(tmp)) = (self.file.take(), self.tmp.take()) else {
            return Err(std::io::Error::other("blob writer already finished").into());
        };
        let done = async {
            file.flush().await?;
            file.sync_all().await?;
            drop(file);
            tokio::fs::rename(&tmp, &self.path).await
        }
        .await;
        if let Err(e) = done {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e.into());
        }
        Ok(self.written)
    }

    /// Like [`BlobWriter::commit`], and the rename itself is made durable (the folder is
    /// fsynced too): for callers that delete the only other copy of the data right after.
    pub async fn commit_durable(self) -> Result<u64, BlobError> {
        if self.remote.is_some() {
            return self.commit().await;
        }
        let parent = self.path.parent().map(Path::to_path_buf);
        let n = self.commit().await?;
        #[cfg(unix)]
        if let Some(parent) = parent {
            tokio::fs::File::open(parent).await?.sync_all().await?;
        }
        Ok(n)
    }

    /// Discards what was written.
    pub async fn abort(mut self) {
        if let Some(r) = self.remote.take() {
            r.abort().await;
        }
        self.file.take();
        if let Some(tmp) = self.tmp.take() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // An abandoned upload (client gone, validation failed) must not leave its partial
        // bytes behind. Removing one file synchronously is cheap enough for a destructor.
        self.file.take();
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// A blob being read piece by piece; see [`BlobStore::reader`].
#[derive(Debug)]
pub struct BlobReader {
    source: Source,
    len: u64,
}

enum Source {
    File(tokio::fs::File),
    Remote(s3::ByteStream),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::File(_) => "File",
            Source::Remote(_) => "Remote",
        })
    }
}

impl BlobReader {
    /// Size of the blob in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The next chunk of at most 64 KiB, or `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, BlobError> {
        use tokio::io::AsyncReadExt;
        let file = match &mut self.source {
            Source::File(f) => f,
            Source::Remote(stream) => return s3::next_chunk(stream).await,
        };
        let mut buf = vec![0u8; 64 * 1024];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some(Bytes::from(buf)))
    }
}

/// Keys of the files under `base` (the folder of key `prefix`); temporary files of writers
/// are left out.
fn list_under(base: &Path, prefix: &str) -> Result<Vec<String>, BlobError> {
    let mut keys = Vec::new();
    let mut stack = vec![(base.to_path_buf(), prefix.to_string())];
    while let Some((dir, key)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => continue,
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue; // not a key this store could have written
            };
            if name.contains(".tmp-") {
                continue;
            }
            let child = format!("{key}/{name}");
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push((entry.path(), child));
            } else if ft.is_file() {
                keys.push(child);
            }
        }
    }
    keys.sort();
    Ok(keys)
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_delete_and_key_rules() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open_local(dir.path()).unwrap();
        s.put("files/t1/file_1", Bytes::from_static(b"abc"))
            .await
            .unwrap();
        assert_eq!(
            s.get("files/t1/file_1").await.unwrap(),
            Bytes::from_static(b"abc")
        );
        s.delete("files/t1/file_1").await.unwrap();
        assert!(matches!(
            s.get("files/t1/file_1").await,
            Err(BlobError::NotFound(_))
        ));
        s.delete("files/t1/file_1").await.unwrap();
        for bad in ["", "../x", "a//b", "/abs", "a/./b", "a b"] {
            assert!(
                matches!(
                    s.put(bad, Bytes::new()).await,
                    Err(BlobError::InvalidKey(_))
                ),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn list_finds_published_keys_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open_local(dir.path()).unwrap();
        assert!(s.list("snapshots").await.unwrap().is_empty());
        s.put("snapshots/s1/2.tar", Bytes::from_static(b"b"))
            .await
            .unwrap();
        s.put("snapshots/s1/1.tar", Bytes::from_static(b"a"))
            .await
            .unwrap();
        s.put("snapshots/s2/1.tar", Bytes::from_static(b"c"))
            .await
            .unwrap();
        s.put("files/t/x", Bytes::from_static(b"x")).await.unwrap();
        let mut w = s.writer("snapshots/s1/3.tar").await.unwrap();
        w.write(b"half").await.unwrap();
        assert_eq!(
            s.list("snapshots").await.unwrap(),
            vec![
                "snapshots/s1/1.tar",
                "snapshots/s1/2.tar",
                "snapshots/s2/1.tar"
            ]
        );
        w.commit_durable().await.unwrap();
        assert_eq!(s.list("snapshots/s1").await.unwrap().len(), 3);
        assert!(matches!(
            s.list("../x").await,
            Err(BlobError::InvalidKey(_))
        ));
    }

    #[tokio::test]
    async fn put_synced_is_visible_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open_local(dir.path()).unwrap();
        assert_eq!(
            s.put_synced("events/t1/sesn_1/sevt_1", b"hello")
                .await
                .unwrap(),
            5
        );
        assert_eq!(
            s.get("events/t1/sesn_1/sevt_1").await.unwrap(),
            Bytes::from_static(b"hello")
        );
        s.put_synced("events/t1/sesn_1/sevt_1", b"bye")
            .await
            .unwrap();
        assert_eq!(
            s.get("events/t1/sesn_1/sevt_1").await.unwrap(),
            Bytes::from_static(b"bye")
        );
        // No temporary files are left beside it.
        let left: Vec<_> = std::fs::read_dir(dir.path().join("events/t1/sesn_1"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("sevt_1")]);
        assert!(matches!(
            s.put_synced("../escape", b"x").await,
            Err(BlobError::InvalidKey(_))
        ));
    }

    #[tokio::test]
    async fn streamed_write_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open_local(dir.path()).unwrap();
        let mut w = s.writer("files/t1/big").await.unwrap();
        let chunk = vec![7u8; 100_000];
        w.write(&chunk).await.unwrap();
        w.write(b"tail").await.unwrap();
        assert_eq!(w.written(), 100_004);
        // Not visible before commit.
        assert!(matches!(
            s.get("files/t1/big").await,
            Err(BlobError::NotFound(_))
        ));
        assert_eq!(w.commit().await.unwrap(), 100_004);
        let mut r = s.reader("files/t1/big").await.unwrap();
        assert_eq!(r.len(), 100_004);
        let mut all = Vec::new();
        while let Some(c) = r.next_chunk().await.unwrap() {
            all.extend_from_slice(&c);
        }
        assert_eq!(all.len(), 100_004);
        assert!(all.ends_with(b"tail"));
        assert!(matches!(
            s.reader("files/t1/none").await,
            Err(BlobError::NotFound(_))
        ));

        // Aborted and dropped writers leave nothing behind.
        let mut w = s.writer("files/t1/gone").await.unwrap();
        w.write(b"x").await.unwrap();
        w.abort().await;
        let mut w = s.writer("files/t1/dropped").await.unwrap();
        w.write(b"x").await.unwrap();
        drop(w);
        let left: Vec<_> = std::fs::read_dir(dir.path().join("files/t1"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("big")]);
    }
}
