//! Blobs in an S3-compatible bucket (`object_store`), so several oma nodes share them.
//!
//! A PUT is atomic and durable once acknowledged, which is what the local store gets from
//! temp file + fsync + rename. Large blobs are written with a multipart upload, so a streamed
//! upload never sits in memory whole; a writer dropped before `commit` aborts its upload.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

use crate::BlobError;

/// Blobs smaller than this go up in one PUT; larger ones as a multipart upload with parts of
/// this size (S3's minimum part size is 5 MiB).
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight per upload.
const PARTS_IN_FLIGHT: usize = 4;

pub(crate) type ByteStream = BoxStream<'static, object_store::Result<Bytes>>;

#[derive(Debug, Clone)]
pub(crate) struct Remote {
    store: Arc<dyn ObjectStore>,
    /// Prepended to every key (`""` or ending in `/`).
    prefix: String,
    url: String,
}

impl Remote {
    /// `rest` is `url` without `s3://`: `bucket[/prefix]`.
    pub(crate) fn open(url: &str, rest: &str, extra: &[(&str, &str)]) -> Result<Self, BlobError> {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let config = |why: String| BlobError::Config {
            url: url.to_string(),
            why,
        };
        if bucket.is_empty() {
            return Err(config("the bucket name is missing".into()));
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            crate::check_key(prefix).map_err(|_| {
                config("the prefix may only hold [A-Za-z0-9._-] segments separated by /".into())
            })?;
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (k, v) in extra {
            let key = k
                .parse()
                .map_err(|e: object_store::Error| config(format!("`{k}`: {e}")))?;
            builder = builder.with_config(key, *v);
        }
        let store = builder.build().map_err(|e| config(e.to_string()))?;
        Ok(Self {
            store: Arc::new(store),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            url: url.to_string(),
        })
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, key: &str) -> ObjectPath {
        ObjectPath::from(format!("{}{key}", self.prefix))
    }

    pub(crate) async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        self.store
            .put(&self.path(key), bytes.into())
            .await
            .map_err(|e| remote(key, e))?;
        Ok(())
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Bytes, BlobError> {
        let got = self
            .store
            .get(&self.path(key))
            .await
            .map_err(|e| remote(key, e))?;
        got.bytes().await.map_err(|e| remote(key, e))
    }

    pub(crate) async fn reader(&self, key: &str) -> Result<(u64, ByteStream), BlobError> {
        let got = self
            .store
            .get(&self.path(key))
            .await
            .map_err(|e| remote(key, e))?;
        Ok((got.meta.size, got.into_stream()))
    }

    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let mut listing = self.store.list(Some(&self.path(prefix)));
        let mut keys = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| remote(prefix, e))?;
            if let Some(key) = meta.location.as_ref().strip_prefix(self.prefix.as_str()) {
                keys.push(key.to_string());
            }
        }
        keys.sort();
        Ok(keys)
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(remote(key, e)),
        }
    }

    pub(crate) fn writer(&self, key: &str) -> RemoteWriter {
        RemoteWriter {
            remote: self.clone(),
            key: key.to_string(),
            state: WriteState::Buffer(Vec::new()),
        }
    }
}

/// A blob being written to the bucket: buffered while small, a multipart upload once large.
pub(crate) struct RemoteWriter {
    remote: Remote,
    key: String,
    state: WriteState,
}

enum WriteState {
    Buffer(Vec<u8>),
    Multipart(WriteMultipart),
    Done,
}

impl std::fmt::Debug for RemoteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWriter")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl RemoteWriter {
    pub(crate) async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        if let WriteState::Buffer(buf) = &mut self.state {
            if buf.len() + chunk.len() < PART_SIZE {
                buf.extend_from_slice(chunk);
                return Ok(());
            }
            let upload = self
                .remote
                .store
                .put_multipart(&self.remote.path(&self.key))
                .await
                .map_err(|e| remote(&self.key, e))?;
            let mut multipart = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            multipart.write(&std::mem::take(buf));
            self.state = WriteState::Multipart(multipart);
        }
        match &mut self.state {
            WriteState::Multipart(m) => {
                // Bounded memory: wait for parts in flight before buffering more.
                m.wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| remote(&self.key, e))?;
                m.write(chunk);
                Ok(())
            }
            _ => Err(std::io::Error::other("blob writer already finished").into()),
        }
    }

    pub(crate) async fn commit(mut self) -> Result<(), BlobError> {
        match std::mem::replace(&mut self.state, WriteState::Done) {
            WriteState::Buffer(buf) => self.remote.put(&self.key, Bytes::from(buf)).await,
            WriteState::Multipart(m) => {
                m.finish().await.map_err(|e| remote(&self.key, e))?;
                Ok(())
            }
            WriteState::Done => Err(std::io::Error::other("blob writer already finished").into()),
        }
    }

    pub(crate) async fn abort(mut self) {
        if let WriteState::Multipart(m) = std::mem::replace(&mut self.state, WriteState::Done) {
            let _ = m.abort().await;
        }
    }
}

impl Drop for RemoteWriter {
    fn drop(&mut self) {
        // An abandoned multipart upload would keep its parts (and their cost) in the bucket.
        if let WriteState::Multipart(m) = std::mem::replace(&mut self.state, WriteState::Done)
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = m.abort().await;
            });
        }
    }
}

pub(crate) async fn next_chunk(stream: &mut ByteStream) -> Result<Option<Bytes>, BlobError> {
    match stream.next().await {
        None => Ok(None),
        Some(Ok(b)) => Ok(Some(b)),
        Some(Err(e)) => Err(remote("(stream)", e)),
    }
}

fn remote(key: &str, e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound(key.to_string()),
        other => BlobError::Remote(other.to_string()),
    }
}
