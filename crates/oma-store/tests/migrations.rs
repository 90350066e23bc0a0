//! Migrations: released files are frozen, a new database built from the squashed baseline has
//! exactly the schema of one that replayed every file, and `stamp_baseline` records the
//! baseline on an old database once (SQLite always, PostgreSQL when `OMA_TEST_DATABASE_URL`
//! is set; each PostgreSQL case gets a database of its own, dropped at the end).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use oma_store::migrate::{Stamped, baseline_files, migration_files};
use oma_store::{Backend, Store};
use sha2::{Digest, Sha256};

// ---- frozen files ---------------------------------------------------------------------------

const MANIFEST: &str = "migrations/released.sha256";

#[test]
fn released_migrations_are_frozen() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join(MANIFEST)).unwrap();
    let mut released: BTreeMap<String, String> = BTreeMap::new();
    for line in manifest.lines().filter(|l| !l.trim().is_empty()) {
        let (hash, path) = line
            .split_once("  ")
            .expect("`sha256sum` lines: HASH  PATH");
        released.insert(path.to_string(), hash.to_string());
    }
    let mut problems = Vec::new();
    // What ships is what `build.rs` embedded: hash that, not the files on disk.
    let mut shipped: BTreeMap<String, String> = BTreeMap::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        for (sub, list) in [
            ("", migration_files(backend)),
            ("baseline/", baseline_files(backend)),
        ] {
            let folder = format!("{}/{sub}", backend.name());
            let newest_released = released
                .keys()
                .filter_map(|p| p.strip_prefix(&folder))
                .filter(|rest| !rest.contains('/'))
                .filter_map(|name| name.split_once('_')?.0.parse::<i64>().ok())
                .max()
                .unwrap_or(0);
            for f in list {
                let path = format!("{folder}{}", f.name);
                let hash = hex(&Sha256::digest(f.sql.as_bytes()));
                match released.get(&path) {
                    Some(h) if *h == hash => {}
                    Some(_) => problems.push(format!(
                        "{path} changed after it was released. Released migrations are frozen: \
                         databases have applied them as they were. Restore the file (`git log -p \
                         -- crates/oma-store/migrations/{folder}`) and put the change in a NEW migration \
                         numbered after the last one."
                    )),
                    None if f.version() <= newest_released => problems.push(format!(
                        "{path} is new but numbered at or before {newest_released:04}, the last \
                         released file of {folder}: number it after every released migration."
                    )),
                    // New and unreleased: allowed until the release adds it to the manifest.
                    None => {}
                }
                shipped.insert(path, hash);
            }
        }
    }
    for path in released.keys() {
        if !shipped.contains_key(path) {
            problems.push(format!(
                "{path} was released and is gone: released migrations are never deleted \
                 (databases recorded them)."
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\nA release freezes its new migrations by adding them to {MANIFEST}: \
         `cd crates/oma-store/migrations && sha256sum <backend>/NNNN_name.sql ... >> \
         released.sha256`.",
        problems.join("\n")
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- databases of their own -----------------------------------------------------------------

/// A fresh, empty database; PostgreSQL ones are created here and dropped on drop.
struct FreshDb {
    url: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl FreshDb {
    async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                Self {
                    url: format!("sqlite://{}", dir.path().join("oma.db").display()),
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                let admin = pg_url().unwrap();
                let name = format!(
                    "oma_mig_{}_{}",
                    std::process::id(),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_nanos()
                );
                let store = Store::connect(&admin).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(store.writer())
                    .await
                    .unwrap();
                store.close().await;
                Self {
                    url: with_database(&admin, &name),
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    async fn store(&self) -> Store {
        Store::connect(&self.url).await.unwrap()
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        let admin = pg_url().unwrap();
        // Drop runs inside the test's runtime: do the async clean-up on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(store) = Store::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(store.writer())
                    .await;
                    store.close().await;
                }
            });
        })
        .join();
    }
}

fn pg_url() -> Option<String> {
    std::env::var("OMA_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// `postgres://u@h:p/db?x` → `postgres://u@h:p/NAME?x`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Sqlite];
    if pg_url().is_some() {
        v.push(Backend::Postgres);
    } else {
        eprintln!("note: OMA_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant");
    }
    v
}

// ---- schema dumps ---------------------------------------------------------------------------

/// Every table's columns, constraints and indexes, as text lines (the bookkeeping table left
/// out: its rows say how the schema was built, which is the point of the comparison).
async fn schema_dump(store: &Store) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    match store.backend() {
        Backend::Sqlite => {
            let objects: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT type, name, tbl_name FROM sqlite_master \
                 WHERE name NOT LIKE 'sqlite_%' AND tbl_name <> '_sqlx_migrations' \
                 ORDER BY type, name",
            )
            .fetch_all(store.reader())
            .await
            .unwrap();
            for (kind, name, table) in objects {
                out.push(format!("{kind} {name} on {table}"));
                let queries: &[&str] = if kind == "table" {
                    &[
                        "SELECT 'column ' || cid || ' ' || name || ' ' || type || ' notnull=' || \
                         \"notnull\" || ' default=' || COALESCE(dflt_value, 'NULL') || ' pk=' || pk \
                         FROM pragma_table_xinfo($1) ORDER BY cid",
                        "SELECT 'fk ' || \"table\" || '(' || \"to\" || ') from ' || \"from\" || \
                         ' on delete ' || on_delete FROM pragma_foreign_key_list($1) ORDER BY id, seq",
                        "SELECT 'index ' || name || ' unique=' || \"unique\" || ' origin=' || origin \
                         || ' partial=' || partial FROM pragma_index_list($1) ORDER BY name",
                    ]
                } else {
                    &[
                        "SELECT 'key ' || seqno || ' ' || COALESCE(name, '<expr>') || ' desc=' || \
                         \"desc\" || ' coll=' || coll || ' key=' || \"key\" \
                         FROM pragma_index_xinfo($1) ORDER BY seqno",
                        "SELECT 'sql ' || COALESCE(sql, '') FROM sqlite_master WHERE name = $1",
                    ]
                };
                for q in queries {
                    let lines: Vec<String> = sqlx::query_scalar(*q)
                        .bind(&name)
                        .fetch_all(store.reader())
                        .await
                        .unwrap();
                    out.extend(lines.into_iter().map(|l| {
                        format!("  {}", l.split_whitespace().collect::<Vec<_>>().join(" "))
                    }));
                }
            }
        }
        Backend::Postgres => {
            for q in [
                "SELECT 'column ' || table_name || '.' || ordinal_position::text || ' ' || \
                 column_name || ' ' || data_type || ' nullable=' || is_nullable || ' default=' || \
                 COALESCE(column_default, 'NULL') || ' collation=' || COALESCE(collation_name, '-') \
                 FROM information_schema.columns WHERE table_schema = current_schema() \
                 AND table_name <> '_sqlx_migrations' ORDER BY table_name, ordinal_position",
                "SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || \
                 pg_get_constraintdef(oid) FROM pg_constraint \
                 WHERE connamespace = current_schema()::regnamespace \
                 AND conrelid::regclass::text <> '_sqlx_migrations' ORDER BY 1",
                "SELECT 'index ' || indexname || ' ' || indexdef FROM pg_indexes \
                 WHERE schemaname = current_schema() AND tablename <> '_sqlx_migrations' \
                 ORDER BY indexname",
            ] {
                let lines: Vec<String> = sqlx::query_scalar(q)
                    .fetch_all(store.reader())
                    .await
                    .unwrap();
                out.extend(lines);
            }
        }
    }
    out
}

// ---- the baseline ---------------------------------------------------------------------------

#[tokio::test]
async fn baseline_and_replayed_files_build_the_same_schema() {
    for backend in backends() {
        let a = FreshDb::new(backend).await;
        let b = FreshDb::new(backend).await;
        let (via_baseline, via_files) = (a.store().await, b.store().await);

        let applied = via_baseline.migrate_up().await.unwrap();
        assert!(applied[0].baseline, "{backend:?}: {applied:?}");
        assert!(
            applied
                .iter()
                .skip(1)
                .all(|m| m.version > applied[0].version)
        );
        let replayed = via_files.migrate_up_replaying_files().await.unwrap();
        assert!(replayed.iter().all(|m| !m.baseline) && replayed[0].version == 1);

        let (da, db) = (
            schema_dump(&via_baseline).await,
            schema_dump(&via_files).await,
        );
        assert!(da.len() > 50, "{backend:?}: the dump is too small: {da:?}");
        assert_eq!(da, db, "{backend:?}: the schemas differ");

        // Both are current; only the replayed one can still record the baseline.
        let (sa, sb) = (
            via_baseline.migration_status().await.unwrap(),
            via_files.migration_status().await.unwrap(),
        );
        assert!(sa.is_current() && sb.is_current(), "{sa:?} {sb:?}");
        assert!(sa.baseline.is_some() && sa.stampable.is_none(), "{sa:?}");
        assert!(sb.baseline.is_none() && sb.stampable.is_some(), "{sb:?}");
        via_baseline.close().await;
        via_files.close().await;
    }
}

#[tokio::test]
async fn stamp_baseline_records_once_and_refuses_what_it_cannot_vouch_for() {
    for backend in backends() {
        let db = FreshDb::new(backend).await;
        let store = db.store().await;
        // Nothing to stamp on an empty database.
        let err = store.stamp_baseline().await.unwrap_err().to_string();
        assert!(err.contains("oma migrate up"), "{err}");

        // Partly migrated by an older release: refused, naming what is missing.
        let covered = baseline_files(backend).last().unwrap().version();
        earlier_release(&store, covered - 2).await;
        let err = store.stamp_baseline().await.unwrap_err().to_string();
        assert!(
            err.contains(&format!("{:04}", covered - 1)) && err.contains("oma migrate up"),
            "{err}"
        );

        // Brought up to date file by file, then stamped twice: the second is a no-op.
        store.migrate_up().await.unwrap();
        let schema = schema_dump(&store).await;
        let st = store.migration_status().await.unwrap();
        assert!(st.baseline.is_none() && st.stampable.is_some(), "{st:?}");
        let Stamped::Recorded(m) = store.stamp_baseline().await.unwrap() else {
            panic!("the first stamp records the baseline");
        };
        assert!(m.baseline && m.version == covered, "{m:?}");
        let rows = migration_rows(&store).await;
        assert_eq!(
            store.stamp_baseline().await.unwrap(),
            Stamped::AlreadyRecorded(m.clone())
        );
        assert_eq!(migration_rows(&store).await, rows);
        assert_eq!(
            schema_dump(&store).await,
            schema,
            "stamping touches no table"
        );

        let st = store.migration_status().await.unwrap();
        assert_eq!(st.baseline.as_ref(), Some(&m));
        assert!(st.is_current() && st.stampable.is_none(), "{st:?}");
        assert!(store.migrate_up().await.unwrap().is_empty());
        store.close().await;
    }
}

#[tokio::test]
async fn a_newer_schema_is_refused_before_anything_changes() {
    for backend in backends() {
        for future in [99_999_i64, -9_999] {
            let db = FreshDb::new(backend).await;
            let store = db.store().await;
            store.migrate_up().await.unwrap();
            sqlx::query(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                 execution_time) VALUES ($1, 'from the future', TRUE, $2, 0)",
            )
            .bind(future)
            .bind(vec![0_u8])
            .execute(store.writer())
            .await
            .unwrap();
            for err in [
                store.ensure_not_newer().await.unwrap_err().to_string(),
                store.migrate_up().await.unwrap_err().to_string(),
                store.stamp_baseline().await.unwrap_err().to_string(),
            ] {
                assert!(
                    err.contains("newer than this oma binary") && err.contains("Upgrade oma"),
                    "{err}"
                );
            }
            store.close().await;
        }
    }
}

/// A database made by the migrator earlier releases used (`sqlx::migrate!` over the same
/// folders) is read as it is: nothing pending, same checksums, and it can be stamped.
#[tokio::test]
async fn databases_of_earlier_releases_are_understood() {
    for backend in backends() {
        let db = FreshDb::new(backend).await;
        let store = db.store().await;
        earlier_release(&store, i64::MAX).await;
        let st = store.migration_status().await.unwrap();
        assert!(st.is_current() && st.baseline.is_none(), "{st:?}");
        assert_eq!(st.applied.len(), migration_files(backend).len());
        assert!(store.migrate_up().await.unwrap().is_empty());
        assert!(matches!(
            store.stamp_baseline().await.unwrap(),
            Stamped::Recorded(_)
        ));
        store.close().await;
    }
}

/// A later migration (numbered after the baseline) applies on a stamped database exactly as on
/// one created from the baseline.
#[tokio::test]
async fn later_migrations_apply_on_top_of_a_stamped_database() {
    for backend in backends() {
        let covered = baseline_files(backend).last().unwrap().version();
        if !migration_files(backend)
            .iter()
            .any(|f| f.version() > covered)
        {
            eprintln!("note: no migration after the baseline yet; nothing to apply on top");
            continue;
        }
        let old = FreshDb::new(backend).await;
        let store = old.store().await;
        earlier_release(&store, covered).await;
        assert!(matches!(
            store.stamp_baseline().await.unwrap(),
            Stamped::Recorded(_)
        ));
        let applied = store.migrate_up().await.unwrap();
        assert!(!applied.is_empty() && applied.iter().all(|m| m.version > covered));
        let fresh = FreshDb::new(backend).await;
        let new = fresh.store().await;
        new.migrate_up().await.unwrap();
        assert_eq!(schema_dump(&store).await, schema_dump(&new).await);
        let after = |st: oma_store::migrate::MigrationStatus| -> Vec<_> {
            st.applied
                .into_iter()
                .filter(|m| m.version > covered)
                .collect()
        };
        assert_eq!(
            after(store.migration_status().await.unwrap()),
            after(new.migration_status().await.unwrap())
        );
        store.close().await;
        new.close().await;
    }
}

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Migrates `store` the way releases before the baseline did (sqlx's own migrator over the
/// same files), up to migration `upto`.
async fn earlier_release(store: &Store, upto: i64) {
    let all = match store.backend() {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    let migrator = sqlx::migrate::Migrator::with_migrations(
        all.iter().filter(|m| m.version <= upto).cloned().collect(),
    );
    migrator.run(store.writer()).await.unwrap();
}

async fn migration_rows(store: &Store) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT version, description FROM _sqlx_migrations ORDER BY version")
        .fetch_all(store.reader())
        .await
        .unwrap()
}
