//! Materialize and sync against a real store (SQLite always, PostgreSQL when
//! `OMA_TEST_DATABASE_URL` is set), changing the folders on disk as a tool in the box would.

use std::path::Path;

use oma_api::files::FileMetadata;
use oma_api::memory::{CreateMemoryStoreParams, MemoryVersionOperation};
use oma_blob::BlobStore;
use oma_core::memory::{MemoryChange, MemoryStoreConfig, NewMemory};
use oma_core::skills::SkillMeta;
use oma_store::files::FileFilter;
use oma_store::memory::MemoryVersionFilter;
use oma_store::skills::{NewSkillVersion, SkillFile};
use oma_store::{ListQuery, Store};
use serde_json::json;
use tempfile::TempDir;

use super::files::Outputs;
use super::memory::{Ctx, MemoryMount};
use super::skills;

struct Db {
    store: Store,
    tenant: String,
    dir: TempDir,
}

async fn dbs() -> Vec<Db> {
    let mut urls = vec![None];
    match std::env::var("OMA_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => urls.push(Some(u)),
        _ => eprintln!("note: OMA_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant"),
    }
    let mut out = Vec::new();
    for url in urls {
        let dir = tempfile::tempdir().unwrap();
        let url =
            url.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("oma.db").display()));
        let blobs = BlobStore::open_local(dir.path().join("blobs")).unwrap();
        let store = Store::connect(&url).await.unwrap().with_blobs(blobs);
        store.migrate_up().await.unwrap();
        let tenant = oma_core::ids::new_id("t").to_ascii_lowercase();
        out.push(Db { store, tenant, dir });
    }
    out
}

async fn memory_store(db: &Db, name: &str) -> String {
    let cfg = MemoryStoreConfig::create(CreateMemoryStoreParams {
        name: name.into(),
        description: Some("team notes".into()),
        metadata: None,
    })
    .unwrap();
    let body = db
        .store
        .create_memory_store(&db.tenant, &cfg)
        .await
        .unwrap();
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn put(db: &Db, store_id: &str, path: &str, content: &str) -> String {
    let new = NewMemory {
        path: path.into(),
        content: content.into(),
    };
    db.store
        .create_memory(&db.tenant, store_id, new, None)
        .await
        .unwrap()
        .id
}

/// Every memory of a store: path → content.
async fn contents(db: &Db, store_id: &str) -> Vec<(String, String)> {
    let q = oma_store::memory::MemoryListQuery {
        prefix: "/".into(),
        depth: 0,
        view: oma_api::memory::MemoryView::Full,
        limit: 20,
        after: None,
    };
    let page = db
        .store
        .list_memories(&db.tenant, store_id, &q)
        .await
        .unwrap();
    page.items
        .into_iter()
        .filter_map(|i| match i {
            oma_api::memory::MemoryListItem::Memory(m) => Some((m.path, m.content.unwrap())),
            _ => None,
        })
        .collect()
}

fn mount(db: &Db, store_id: &str, writable: bool) -> MemoryMount {
    let base = db.dir.path().join("sessions/sesn_1");
    MemoryMount::new(
        store_id.into(),
        "Notes".into(),
        String::new(),
        None,
        writable,
        "/mnt/memory/notes".into(),
        base.join("mnt/memory/notes"),
        base.join(format!("state/memory-{store_id}.json")),
    )
}

fn ctx(db: &Db) -> Ctx<'_> {
    Ctx {
        store: &db.store,
        tenant: &db.tenant,
        session: "sesn_1",
    }
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap()
}

#[tokio::test]
async fn memory_folder_syncs_both_ways_as_session_versions() {
    for db in dbs().await {
        let sid = memory_store(&db, "Notes").await;
        let kept = put(&db, &sid, "/prefs/style.md", "terse").await;
        put(&db, &sid, "/old.md", "obsolete").await;
        let mut m = mount(&db, &sid, true);
        assert!(m.sync(&ctx(&db)).await.is_empty());
        let dir = m.dir.clone();
        assert_eq!(read(&dir, "prefs/style.md"), "terse");

        // A tool edits one file, adds one in a new folder, deletes one.
        std::fs::write(dir.join("prefs/style.md"), "very terse").unwrap();
        std::fs::create_dir_all(dir.join("projects")).unwrap();
        std::fs::write(dir.join("projects/oma.md"), "Rust").unwrap();
        std::fs::remove_file(dir.join("old.md")).unwrap();
        let notes = m.sync(&ctx(&db)).await;
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            contents(&db, &sid).await,
            vec![
                ("/prefs/style.md".to_string(), "very terse".to_string()),
                ("/projects/oma.md".to_string(), "Rust".to_string()),
            ]
        );
        // Attributed to the session, with the memory's id kept across the edit.
        let versions = db
            .store
            .list_memory_versions(
                &db.tenant,
                &sid,
                &MemoryVersionFilter {
                    session_id: Some("sesn_1".into()),
                    ..Default::default()
                },
                false,
                &ListQuery::new(100, true, None),
            )
            .await
            .unwrap();
        let mut ops: Vec<MemoryVersionOperation> =
            versions.items.iter().map(|v| v.operation).collect();
        ops.sort_by_key(|o| o.as_str());
        assert_eq!(
            ops,
            vec![
                MemoryVersionOperation::Created,
                MemoryVersionOperation::Deleted,
                MemoryVersionOperation::Modified
            ]
        );
        assert!(versions.items.iter().any(|v| v.memory_id == kept));

        // A rename keeps the memory.
        std::fs::rename(dir.join("prefs/style.md"), dir.join("style.md")).unwrap();
        assert!(m.sync(&ctx(&db)).await.is_empty());
        let rec = db
            .store
            .get_memory(&db.tenant, &sid, &kept, true)
            .await
            .unwrap();
        assert_eq!(rec.path, "/style.md");

        // Changes made through the API come back to the folder.
        let change = MemoryChange {
            content: Some("from the API".into()),
            ..Default::default()
        };
        db.store
            .update_memory(&db.tenant, &sid, &kept, change, None)
            .await
            .unwrap();
        put(&db, &sid, "/api.md", "new").await;
        assert!(m.sync(&ctx(&db)).await.is_empty());
        assert_eq!(read(&dir, "style.md"), "from the API");
        assert_eq!(read(&dir, "api.md"), "new");

        // A state file carries what was synced to the next host: nothing is pushed twice.
        std::fs::write(dir.join("later.md"), "unsynced when the host stopped").unwrap();
        let mut next = mount(&db, &sid, true);
        assert!(next.sync(&ctx(&db)).await.is_empty());
        let all = contents(&db, &sid).await;
        assert_eq!(all.len(), 4, "{all:?}");
        assert!(all.contains(&("/later.md".into(), "unsynced when the host stopped".into())));
    }
}

#[tokio::test]
async fn a_conflicting_write_keeps_both_versions_and_says_so() {
    for db in dbs().await {
        let sid = memory_store(&db, "Notes").await;
        let id = put(&db, &sid, "/plan.md", "v1").await;
        let mut m = mount(&db, &sid, true);
        m.sync(&ctx(&db)).await;
        let dir = m.dir.clone();

        // The API changes the memory while the box edits its copy.
        let change = MemoryChange {
            content: Some("v2 from the API".into()),
            ..Default::default()
        };
        db.store
            .update_memory(&db.tenant, &sid, &id, change, None)
            .await
            .unwrap();
        std::fs::write(dir.join("plan.md"), "v2 from the box").unwrap();
        let notes = m.sync(&ctx(&db)).await;
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("Both versions are kept"), "{notes:?}");
        let all = contents(&db, &sid).await;
        assert!(
            all.contains(&("/plan.md".into(), "v2 from the API".into())),
            "{all:?}"
        );
        assert!(
            all.contains(&("/plan.conflict-sesn_1.md".into(), "v2 from the box".into())),
            "{all:?}"
        );
        assert_eq!(read(&dir, "plan.md"), "v2 from the API");
        assert_eq!(read(&dir, "plan.conflict-sesn_1.md"), "v2 from the box");

        // A delete in the box of a memory changed elsewhere loses to the change.
        let change = MemoryChange {
            content: Some("v3".into()),
            ..Default::default()
        };
        db.store
            .update_memory(&db.tenant, &sid, &id, change, None)
            .await
            .unwrap();
        std::fs::remove_file(dir.join("plan.md")).unwrap();
        let notes = m.sync(&ctx(&db)).await;
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(read(&dir, "plan.md"), "v3");

        // Files the API would refuse are reported once and not saved.
        std::fs::write(dir.join("big.md"), "x".repeat(102_401)).unwrap();
        std::fs::write(dir.join("bin.dat"), [0xff, 0xfe]).unwrap();
        let notes = m.sync(&ctx(&db)).await;
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("at most 102400 bytes")));
        assert!(notes.iter().any(|n| n.contains("UTF-8")));
        assert!(m.sync(&ctx(&db)).await.is_empty(), "reported once");
        assert_eq!(contents(&db, &sid).await.len(), 2);
    }
}

#[tokio::test]
async fn read_only_stores_are_never_written() {
    for db in dbs().await {
        let sid = memory_store(&db, "Shared").await;
        put(&db, &sid, "/fact.md", "water is wet").await;
        let mut m = mount(&db, &sid, false);
        m.sync(&ctx(&db)).await;
        let dir = m.dir.clone();
        // Without isolation nothing stops the write on disk; the store ignores it and the
        // folder is put back.
        std::fs::write(dir.join("fact.md"), "water is dry").unwrap();
        std::fs::write(dir.join("new.md"), "x").unwrap();
        assert!(m.sync(&ctx(&db)).await.is_empty());
        assert_eq!(
            contents(&db, &sid).await,
            vec![("/fact.md".to_string(), "water is wet".to_string())]
        );
        assert_eq!(read(&dir, "fact.md"), "water is wet");
        assert!(!dir.join("new.md").exists());
        let versions = db
            .store
            .list_memory_versions(
                &db.tenant,
                &sid,
                &MemoryVersionFilter::default(),
                false,
                &ListQuery::new(100, true, None),
            )
            .await
            .unwrap();
        assert_eq!(versions.items.len(), 1);
    }
}

#[tokio::test]
async fn outputs_become_session_files() {
    for db in dbs().await {
        let blobs = db.store.blobs().cloned().unwrap();
        let base = db.dir.path().join("sessions/sesn_out");
        let mut out = Outputs::new(base.join("mnt/outputs"), base.join("state/outputs.json"));
        let c = Ctx {
            store: &db.store,
            tenant: &db.tenant,
            session: "sesn_out",
        };
        std::fs::create_dir_all(base.join("mnt/outputs/charts")).unwrap();
        std::fs::write(base.join("mnt/outputs/report.md"), "# Report").unwrap();
        std::fs::write(
            base.join("mnt/outputs/charts/a.png"),
            [0x89, b'P', b'N', b'G'],
        )
        .unwrap();
        assert!(out.sync(&c, Some(&blobs)).await.is_empty());
        let scoped = FileFilter {
            scope_id: Some("sesn_out".into()),
        };
        let list = |db: &Db| {
            let scoped = scoped.clone();
            let store = db.store.clone();
            let tenant = db.tenant.clone();
            async move {
                let page = store
                    .list_files(&tenant, &scoped, &ListQuery::new(100, true, None))
                    .await
                    .unwrap();
                let mut files: Vec<FileMetadata> = page
                    .items
                    .iter()
                    .map(|b| serde_json::from_str(b).unwrap())
                    .collect();
                files.sort_by(|a, b| a.filename.cmp(&b.filename));
                files
            }
        };
        let files = list(&db).await;
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].filename, "a.png");
        assert_eq!(files[0].mime_type, "image/png");
        assert_eq!(files[1].filename, "report.md");
        assert_eq!(files[1].downloadable, Some(true));
        let rec = db
            .store
            .file_record(&db.tenant, &files[1].id)
            .await
            .unwrap();
        assert_eq!(
            blobs.get(&rec.blob_key).await.unwrap().as_ref(),
            b"# Report"
        );

        // Unchanged: nothing new. Changed: the new content replaces the old file.
        assert!(out.sync(&c, Some(&blobs)).await.is_empty());
        assert_eq!(list(&db).await.len(), 2);
        std::fs::write(base.join("mnt/outputs/report.md"), "# Report v2").unwrap();
        out.sync(&c, Some(&blobs)).await;
        let files = list(&db).await;
        assert_eq!(files.len(), 2);
        assert_ne!(files[1].id, rec.meta.id);
        let rec2 = db
            .store
            .file_record(&db.tenant, &files[1].id)
            .await
            .unwrap();
        assert_eq!(
            blobs.get(&rec2.blob_key).await.unwrap().as_ref(),
            b"# Report v2"
        );
        assert!(
            blobs.get(&rec.blob_key).await.is_err(),
            "the old bytes are gone"
        );

        // A later host does not upload the same files again.
        let mut again = Outputs::new(base.join("mnt/outputs"), base.join("state/outputs.json"));
        assert!(again.sync(&c, Some(&blobs)).await.is_empty());
        assert_eq!(list(&db).await.len(), 2);
    }
}

#[tokio::test]
async fn skills_resolve_pinned_or_latest_and_extract() {
    for db in dbs().await {
        let blobs = db.store.blobs().cloned().unwrap();
        let skill_id = oma_core::ids::new_id("skill");
        let version = |n: u32| {
            let id = oma_core::ids::new_id("skillver");
            let md = format!("---\nname: pdf-tools\ndescription: PDFs\n---\nVersion {n} steps.");
            let files = vec![
                SkillFile {
                    path: "SKILL.md".into(),
                    size_bytes: md.len() as i64,
                    mime_type: "text/markdown".into(),
                    blob: format!("skills/{id}/SKILL.md"),
                },
                SkillFile {
                    path: "scripts/run.py".into(),
                    size_bytes: 5,
                    mime_type: "text/x-python".into(),
                    blob: format!("skills/{id}/run.py"),
                },
            ];
            (id, md, files)
        };
        let (v1, md1, files1) = version(1);
        blobs
            .put(&files1[0].blob, md1.clone().into())
            .await
            .unwrap();
        blobs.put(&files1[1].blob, "print".into()).await.unwrap();
        let meta = SkillMeta {
            name: "pdf-tools".into(),
            description: "PDFs".into(),
        };
        let nv = |id: &str, files: Vec<SkillFile>| NewSkillVersion {
            id: id.into(),
            meta: meta.clone(),
            files,
        };
        db.store
            .create_skill(&db.tenant, &skill_id, "PDF tools", &nv(&v1, files1))
            .await
            .unwrap();
        let (v2, md2, files2) = version(2);
        blobs
            .put(&files2[0].blob, md2.clone().into())
            .await
            .unwrap();
        blobs.put(&files2[1].blob, "print".into()).await.unwrap();
        db.store
            .create_skill_version(&db.tenant, &skill_id, &nv(&v2, files2))
            .await
            .unwrap();

        let agent = |version: &str| {
            json!({"skills": [
                {"type": "custom", "skill_id": skill_id, "version": version},
                {"type": "anthropic", "skill_id": "xlsx", "version": "latest"},
            ]})
        };
        let (latest, warnings) =
            skills::resolve(&db.store, Some(&blobs), &db.tenant, &agent("latest")).await;
        assert_eq!(latest.len(), 1);
        assert_eq!(latest[0].version_id, v2);
        assert!(latest[0].skill_md.contains("Version 2"));
        assert_eq!(
            warnings.len(),
            1,
            "the Anthropic skill is named: {warnings:?}"
        );
        let (pinned, _) = skills::resolve(&db.store, Some(&blobs), &db.tenant, &agent(&v1)).await;
        assert!(pinned[0].skill_md.contains("Version 1"));
        assert_eq!(pinned[0].target(), "/home/user/.skills/pdf-tools");

        let dir = db.dir.path().join("skills/pdf-tools");
        let marker = db.dir.path().join("state/skill-pdf-tools.version");
        pinned[0].materialize(&blobs, &dir, &marker).await.unwrap();
        assert_eq!(read(&dir, "scripts/run.py"), "print");
        assert!(read(&dir, "SKILL.md").contains("Version 1"));
        latest[0].materialize(&blobs, &dir, &marker).await.unwrap();
        assert!(read(&dir, "SKILL.md").contains("Version 2"));
    }
}
