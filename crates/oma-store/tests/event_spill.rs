//! Large events spill to the blob store and every read path returns them whole. Run on
//! SQLite always and on PostgreSQL when `OMA_TEST_DATABASE_URL` is set; tests stay apart by
//! tenant, so they can share a database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{backends, session};
use oma_blob::BlobStore;
use oma_core::cursor::Cursor;
use oma_store::events::{EventFilter, NewEvent, SPILL_THRESHOLD_BYTES, append_in_tx, spill_key};
use oma_store::{Backend, ListQuery, Store, StoreError};
use serde_json::{Map, json};

/// A store with blobs attached, and the directories it lives in.
struct Db {
    store: Store,
    blob_root: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn open(backend: Backend) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("oma.db").display()),
        Backend::Postgres => std::env::var("OMA_TEST_DATABASE_URL").unwrap(),
    };
    let store = Store::connect(&url).await.unwrap();
    store.migrate_up().await.unwrap();
    let blob_root = dir.path().join("blobs");
    let store = store.with_blobs(BlobStore::open_local(&blob_root).unwrap());
    Db {
        store,
        blob_root,
        _dir: dir,
    }
}

/// A `user.message` whose JSON body is about `bytes` long, with multi-byte characters so that
/// byte-identity is tested, not just length.
fn message(bytes: usize, seed: &str) -> NewEvent {
    let unit = format!("{seed} héllo ✓ wörld ");
    let text = unit.repeat(bytes / unit.len() + 1);
    let mut fields = Map::new();
    fields.insert("content".into(), json!([{"type": "text", "text": text}]));
    NewEvent::new("user.message", fields)
}

fn small(kind: &str) -> NewEvent {
    NewEvent::new(kind, Map::new())
}

fn json_of(e: &NewEvent) -> String {
    serde_json::to_string(&e.body).unwrap()
}

/// `(length of the row's body, blob_key)` per event, in log order.
async fn rows(store: &Store, tenant: &str, sid: &str) -> Vec<(String, i64, Option<String>)> {
    sqlx::query_as(
        "SELECT id, CAST(length(body) AS BIGINT), blob_key FROM events \
         WHERE tenant_id = $1 AND session_id = $2 ORDER BY seq",
    )
    .bind(tenant)
    .bind(sid)
    .fetch_all(store.reader())
    .await
    .unwrap()
}

/// Walks `list_events` page by page, returning each page's bodies.
async fn pages(
    store: &Store,
    tenant: &str,
    sid: &str,
    filter: &EventFilter,
    limit: i64,
    desc: bool,
) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = store
            .list_events(tenant, sid, filter, &ListQuery::new(limit, desc, after))
            .await
            .unwrap();
        out.push(page.items);
        match page.next {
            Some(c) => after = Some(c),
            None => return out,
        }
    }
}

#[tokio::test]
async fn a_large_event_spills_and_every_read_returns_it_whole() {
    for b in backends() {
        let db = open(b).await;
        let s = &db.store;
        let (tenant, sid) = session(s, "spill").await;

        let e1 = message(100, "first");
        let big1 = message(1024 * 1024, "big-one");
        let e3 = small("session.status_running");
        let big2 = message(1024 * 1024, "big-two");
        let e5 = small("session.status_idle");
        assert!(json_of(&big1).len() > SPILL_THRESHOLD_BYTES);
        let expected: Vec<String> = [&e1, &big1, &e3, &big2, &e5]
            .iter()
            .map(|e| json_of(e))
            .collect();

        s.append_events(&tenant, &sid, vec![e1.clone()])
            .await
            .unwrap();
        // The transactional append returns the full body (it is what live streams publish).
        let mut tx = s.writer().begin().await.unwrap();
        let stored = append_in_tx(s, &mut tx, &tenant, &sid, vec![big1.clone()])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].body, expected[1]);
        assert_eq!(stored[0].seq, 2);
        // A batch mixing large and small events.
        let stored = s
            .append_events(&tenant, &sid, vec![e3.clone(), big2.clone(), e5.clone()])
            .await
            .unwrap();
        let bodies: Vec<&str> = stored.iter().map(|e| e.body.as_str()).collect();
        assert_eq!(
            bodies,
            expected[2..].iter().map(String::as_str).collect::<Vec<_>>()
        );

        // The rows of large events are small stubs pointing at per-session blobs.
        let raw = rows(s, &tenant, &sid).await;
        assert_eq!(raw.len(), 5);
        for (i, (id, len, key)) in raw.iter().enumerate() {
            if i == 1 || i == 3 {
                assert!(*len < 10 * 1024, "row {i} is {len} bytes");
                let key = key.as_deref().unwrap();
                assert_eq!(key, spill_key(&tenant, &sid, id));
                assert_eq!(key, format!("events/{tenant}/{sid}/{id}"));
                let on_disk = std::fs::read(db.blob_root.join(key)).unwrap();
                assert_eq!(on_disk, expected[i].as_bytes());
            } else {
                assert_eq!(*len as usize, expected[i].chars().count(), "row {i}");
                assert_eq!(key, &None, "row {i} stays inline");
            }
        }

        // events_after: SSE catch-up and the model context.
        let all = s.events_after(&tenant, &sid, 0, 100).await.unwrap();
        assert_eq!(
            all.iter().map(|e| e.body.clone()).collect::<Vec<_>>(),
            expected
        );
        assert_eq!(
            all.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        let one = s.events_after(&tenant, &sid, 3, 1).await.unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].body, expected[3]);
        assert_eq!(one[0].id, big2.id);
        let ctx = s.all_events(&tenant, &sid).await.unwrap();
        assert_eq!(
            ctx.iter().map(|e| e.body.clone()).collect::<Vec<_>>(),
            expected
        );

        // list_events: first page, middle pages via the cursor, last page; both orders.
        let all_filter = EventFilter::default();
        let asc = pages(s, &tenant, &sid, &all_filter, 2, false).await;
        assert_eq!(
            asc,
            vec![
                expected[0..2].to_vec(),
                expected[2..4].to_vec(),
                expected[4..5].to_vec()
            ]
        );
        let desc = pages(s, &tenant, &sid, &all_filter, 2, true).await;
        let mut rev = expected.clone();
        rev.reverse();
        assert_eq!(desc.concat(), rev);
        let whole = pages(s, &tenant, &sid, &all_filter, 100, false).await;
        assert_eq!(whole, vec![expected.clone()]);

        // With a type filter, page by page.
        let only_messages = EventFilter {
            types: vec!["user.message".into()],
            ..EventFilter::default()
        };
        let by_type = pages(s, &tenant, &sid, &only_messages, 1, false).await;
        assert_eq!(
            by_type,
            vec![
                vec![expected[0].clone()],
                vec![expected[1].clone()],
                vec![expected[3].clone()]
            ]
        );
    }
}

#[tokio::test]
async fn the_threshold_is_configurable_and_a_store_without_blobs_keeps_events_inline() {
    for b in backends() {
        let db = open(b).await;
        let low = db.store.clone().with_spill_threshold(300);
        let (tenant, sid) = session(&low, "spill-low").await;
        let under = message(100, "under");
        let over = message(400, "over");
        assert!(json_of(&under).len() <= 300 && json_of(&over).len() > 300);
        low.append_events(&tenant, &sid, vec![under.clone(), over.clone()])
            .await
            .unwrap();
        let raw = rows(&low, &tenant, &sid).await;
        assert_eq!(raw[0].2, None);
        assert_eq!(raw[1].2, Some(spill_key(&tenant, &sid, &over.id)));
        let read = low.events_after(&tenant, &sid, 0, 10).await.unwrap();
        assert_eq!(read[0].body, json_of(&under));
        assert_eq!(read[1].body, json_of(&over));

        // No blob store (CLI tools): even a large event stays in its row.
        let url = match b {
            Backend::Sqlite => format!("sqlite://{}", db._dir.path().join("oma.db").display()),
            Backend::Postgres => std::env::var("OMA_TEST_DATABASE_URL").unwrap(),
        };
        let plain = Store::connect(&url).await.unwrap();
        let big = message(SPILL_THRESHOLD_BYTES + 10, "inline");
        plain
            .append_events(&tenant, &sid, vec![big.clone()])
            .await
            .unwrap();
        let raw = rows(&plain, &tenant, &sid).await;
        assert_eq!(raw[2].2, None);
        assert_eq!(raw[2].1 as usize, json_of(&big).chars().count());
        let read = plain.events_after(&tenant, &sid, 2, 10).await.unwrap();
        assert_eq!(read[0].body, json_of(&big));
        plain.close().await;
    }
}

#[tokio::test]
async fn a_missing_or_damaged_blob_is_a_clear_error() {
    for b in backends() {
        let db = open(b).await;
        let s = db.store.clone().with_spill_threshold(300);
        let (tenant, sid) = session(&s, "spill-gone").await;
        let kept = small("session.status_idle");
        let lost = message(1000, "lost");
        s.append_events(&tenant, &sid, vec![kept, lost.clone()])
            .await
            .unwrap();
        let key = spill_key(&tenant, &sid, &lost.id);
        let path = db.blob_root.join(&key);

        // Truncated: the stub records the size.
        std::fs::write(&path, &json_of(&lost).as_bytes()[..500]).unwrap();
        let err = s.events_after(&tenant, &sid, 0, 10).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.contains("instead of")),
            "{err}"
        );

        // Missing.
        std::fs::remove_file(&path).unwrap();
        let err = s.events_after(&tenant, &sid, 0, 10).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Corrupt(_)), "{msg}");
        assert!(
            msg.contains(&lost.id) && msg.contains(&key) && msg.contains("missing"),
            "{msg}"
        );
        let err = s
            .list_events(
                &tenant,
                &sid,
                &EventFilter::default(),
                &ListQuery::new(10, false, None),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        // A page that does not include the spilled event still reads.
        let page = s
            .list_events(
                &tenant,
                &sid,
                &EventFilter::default(),
                &ListQuery::new(1, false, None),
            )
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
        assert!(page.next.is_some());
        assert_eq!(s.events_after(&tenant, &sid, 0, 1).await.unwrap().len(), 1);

        // A store without blob storage cannot resolve a spilled row, and says so.
        let url = match b {
            Backend::Sqlite => format!("sqlite://{}", db._dir.path().join("oma.db").display()),
            Backend::Postgres => std::env::var("OMA_TEST_DATABASE_URL").unwrap(),
        };
        let plain = Store::connect(&url).await.unwrap();
        let err = plain.events_after(&tenant, &sid, 0, 10).await.unwrap_err();
        assert!(err.to_string().contains("no blob storage"), "{err}");
        plain.close().await;
    }
}
