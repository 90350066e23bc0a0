//! The blob store over a real S3-compatible server: `moto` in server mode, started here (its
//! `moto_server` executable named by `OMA_TEST_MOTO_SERVER`; `.ci/run` installs it). Without
//! it the test says so and passes, like the PostgreSQL variants without a database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use oma_blob::{BlobError, BlobStore};
use oma_testkit::infra::Moto;

/// The moto server's blob store at `url`.
fn store(moto: &Moto, url: &str) -> BlobStore {
    BlobStore::open_url_with(
        url,
        &[
            ("aws_endpoint", &moto.endpoint),
            ("aws_allow_http", "true"),
            ("aws_access_key_id", "test"),
            ("aws_secret_access_key", "test"),
            ("aws_region", "us-east-1"),
        ],
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_in_a_bucket_behave_like_blobs_in_a_folder() {
    let Some(moto) = Moto::start() else { return };
    moto.bucket("oma-blobs");
    let a = store(&moto, "s3://oma-blobs/node-a");
    let b = store(&moto, "s3://oma-blobs/node-b");
    assert_eq!(a.root(), None);
    assert_eq!(a.location(), "s3://oma-blobs/node-a");

    // put / get / replace / delete, and the key rules.
    a.put("files/f1", Bytes::from_static(b"one")).await.unwrap();
    assert_eq!(a.get("files/f1").await.unwrap(), Bytes::from_static(b"one"));
    a.put("files/f1", Bytes::from_static(b"uno")).await.unwrap();
    assert_eq!(a.get("files/f1").await.unwrap(), Bytes::from_static(b"uno"));
    assert!(matches!(
        a.get("files/none").await,
        Err(BlobError::NotFound(_))
    ));
    assert!(matches!(
        a.put("../escape", Bytes::new()).await,
        Err(BlobError::InvalidKey(_))
    ));
    // Prefixes keep stores apart in one bucket.
    assert!(matches!(
        b.get("files/f1").await,
        Err(BlobError::NotFound(_))
    ));
    a.put_synced("files/sub/f2", b"two").await.unwrap();
    a.put("other/x", Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(
        a.list("files").await.unwrap(),
        vec!["files/f1".to_string(), "files/sub/f2".to_string()]
    );
    assert!(b.list("files").await.unwrap().is_empty());
    a.delete("files/f1").await.unwrap();
    a.delete("files/f1").await.unwrap(); // deleting twice is fine
    assert_eq!(
        a.list("files").await.unwrap(),
        vec!["files/sub/f2".to_string()]
    );

    // A streamed write: small ones in one PUT, large ones as a multipart upload; nothing is
    // visible before commit, and a reader streams it back.
    let mut w = a.writer("up/small").await.unwrap();
    w.write(b"hello ").await.unwrap();
    w.write(b"world").await.unwrap();
    assert!(a.list("up").await.unwrap().is_empty());
    assert_eq!(w.commit().await.unwrap(), 11);
    assert_eq!(
        a.get("up/small").await.unwrap(),
        Bytes::from_static(b"hello world")
    );

    let big: Vec<u8> = (0..9 * 1024 * 1024 + 1234)
        .map(|i| (i % 251) as u8)
        .collect();
    let mut w = a.writer("up/big").await.unwrap();
    for chunk in big.chunks(64 * 1024) {
        w.write(chunk).await.unwrap();
    }
    assert_eq!(w.commit().await.unwrap(), big.len() as u64);
    let mut r = a.reader("up/big").await.unwrap();
    assert_eq!(r.len(), big.len() as u64);
    let mut back = Vec::new();
    while let Some(c) = r.next_chunk().await.unwrap() {
        back.extend_from_slice(&c);
    }
    assert!(back == big, "the multipart blob reads back identical");

    // An abandoned writer leaves nothing behind.
    let mut w = a.writer("up/abandoned").await.unwrap();
    w.write(&big).await.unwrap();
    w.abort().await;
    assert_eq!(
        a.list("up").await.unwrap(),
        vec!["up/big".to_string(), "up/small".to_string()]
    );
    assert!(matches!(
        a.reader("up/abandoned").await,
        Err(BlobError::NotFound(_))
    ));
}

#[test]
fn urls_are_checked() {
    assert!(matches!(
        BlobStore::open_url("s3://"),
        Err(BlobError::Config { .. })
    ));
    assert!(matches!(
        BlobStore::open_url("gs://bucket"),
        Err(BlobError::Config { .. })
    ));
    assert!(matches!(
        BlobStore::open_url("s3://bucket/bad prefix"),
        Err(BlobError::Config { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    let local = BlobStore::open_url(&format!("file://{}", dir.path().display())).unwrap();
    assert_eq!(local.root(), Some(dir.path()));
}
