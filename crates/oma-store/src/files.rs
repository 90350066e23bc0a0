//! Storage: file metadata (spec §3.7). The bytes live in the blob store; a row records where.
//!
//! Ordering of writes, which callers follow: on upload the blob is written first and the row
//! inserted after, on delete the row goes first and the blob after. A crash can therefore only
//! leave an unreferenced blob behind, never a row whose bytes are missing.

use oma_api::files::{FILE_TYPE, FileMetadata, FileScope};
use oma_core::{Error, time};
use sqlx::AssertSqlSafe;

use crate::{ListQuery, Listed, Result, Store, from_json, to_json};

/// Most ids one `ids[]` list may name (spec: "At most 100 entries (after de-duplication)").
pub const MAX_LIST_IDS: usize = 100;

/// A file about to be recorded. The caller picks the id (the blob key contains it) and has
/// already written the bytes under `blob_key`.
#[derive(Debug, Clone)]
pub struct NewFile {
    pub id: String,
    pub filename: String,
    pub mime_type: String,
    pub size_bytes: i64,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub downloadable: bool,
    pub scope: Option<FileScope>,
    pub blob_key: String,
}

impl NewFile {
    /// The API object of this file.
    pub fn object(&self) -> FileMetadata {
        FileMetadata {
            id: self.id.clone(),
            kind: FILE_TYPE.to_string(),
            filename: self.filename.clone(),
            mime_type: self.mime_type.clone(),
            size_bytes: self.size_bytes,
            created_at: time::format_micros(self.created_at),
            expires_at: self.expires_at.map(time::format_micros),
            downloadable: Some(self.downloadable),
            scope: self.scope.clone(),
        }
    }
}

/// What a download (or a session mounting the file) needs to know about a stored file.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub meta: FileMetadata,
    pub blob_key: String,
    pub expires_at: Option<i64>,
    pub downloadable: bool,
}

impl StoredFile {
    /// Whether the file's bytes are gone for good at `now` (micros).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

/// Filters of `GET /v1/files`.
#[derive(Debug, Clone, Default)]
pub struct FileFilter {
    /// Only files scoped to this resource (e.g. a session id).
    pub scope_id: Option<String>,
}

impl Store {
    /// Records an uploaded (or produced) file whose bytes are already in the blob store.
    /// Returns the metadata object as JSON.
    pub async fn insert_file(&self, tenant: &str, f: &NewFile) -> Result<String> {
        let body = to_json(&f.object())?;
        sqlx::query(
            "INSERT INTO files (id, tenant_id, created_at, expires_at, downloadable, scope_id, mime_type, \
             size_bytes, blob_key, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&f.id)
        .bind(tenant)
        .bind(f.created_at)
        .bind(f.expires_at)
        .bind(i64::from(f.downloadable))
        .bind(f.scope.as_ref().map(|s| s.id.clone()))
        .bind(&f.mime_type)
        .bind(f.size_bytes)
        .bind(&f.blob_key)
        .bind(&body)
        .execute(self.writer())
        .await?;
        Ok(body)
    }

    /// The metadata object of a file, as JSON.
    pub async fn get_file(&self, tenant: &str, id: &str) -> Result<String> {
        let body = self
            .body_of(crate::rows::BodyTable::Files, tenant, id)
            .await?;
        Ok(body.ok_or_else(|| missing(id))?)
    }

    /// A file with where its bytes are and whether they may be read.
    pub async fn file_record(&self, tenant: &str, id: &str) -> Result<StoredFile> {
        let row: Option<(String, String, Option<i64>, i64)> = sqlx::query_as(
            "SELECT body, blob_key, expires_at, downloadable FROM files WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        let (body, blob_key, expires_at, downloadable) = row.ok_or_else(|| missing(id))?;
        Ok(StoredFile {
            meta: from_json(&body)?,
            blob_key,
            expires_at,
            downloadable: downloadable != 0,
        })
    }

    /// Files newest first (or as the cursor says), optionally only those of one scope.
    pub async fn list_files(&self, tenant: &str, f: &FileFilter, q: &ListQuery) -> Result<Listed> {
        let sql = format!(
            "SELECT created_at, id, body FROM files WHERE tenant_id = $1 \
             AND ($2 IS NULL OR scope_id = $2) AND {} {} LIMIT $5",
            q.after_clause("created_at", "id", 3),
            q.order_clause("created_at", "id"),
        );
        let (k, i) = q.after_binds();
        let rows: Vec<(i64, String, String)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(f.scope_id.as_deref())
            .bind(k)
            .bind(i)
            .bind(q.fetch_limit())
            .fetch_all(self.reader())
            .await?;
        Ok(Listed::from_rows(q, rows))
    }

    /// The files among `ids` that exist for this tenant (and scope), newest first. Unknown ids
    /// are left out silently, as the spec asks; duplicates count once.
    pub async fn files_by_ids(
        &self,
        tenant: &str,
        ids: &[String],
        f: &FileFilter,
    ) -> Result<Vec<String>> {
        let mut unique: Vec<&str> = Vec::with_capacity(ids.len());
        for id in ids {
            if !unique.contains(&id.as_str()) {
                unique.push(id);
            }
        }
        if unique.len() > MAX_LIST_IDS {
            return Err(Error::invalid(format!(
                "`ids` may name at most {MAX_LIST_IDS} files, got {}",
                unique.len()
            ))
            .into());
        }
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (0..unique.len()).map(|n| format!("${}", n + 3)).collect();
        let sql = format!(
            "SELECT body FROM files WHERE tenant_id = $1 AND ($2 IS NULL OR scope_id = $2) \
             AND id IN ({}) ORDER BY created_at DESC, id DESC",
            placeholders.join(", ")
        );
        let mut query = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(f.scope_id.as_deref());
        for id in &unique {
            query = query.bind(*id);
        }
        let rows: Vec<String> = query.fetch_all(self.reader()).await?;
        Ok(rows)
    }

    /// Deletes a file's row and returns its blob key, for the caller to delete the bytes after.
    pub async fn delete_file(&self, tenant: &str, id: &str) -> Result<String> {
        let mut tx = self.writer().begin().await?;
        let key: Option<String> =
            sqlx::query_scalar("SELECT blob_key FROM files WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let key = key.ok_or_else(|| missing(id))?;
        sqlx::query("DELETE FROM files WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(key)
    }

    /// Files of a tenant whose expiry has passed at `now`, oldest expiry first (at most
    /// `limit`): `(id, blob_key)` pairs for a sweeper that deletes their bytes. The rows stay,
    /// so their metadata remains listable and downloads answer `file_expired`.
    pub async fn expired_files(
        &self,
        tenant: &str,
        now: i64,
        limit: i64,
    ) -> Result<Vec<(String, String)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, blob_key FROM files WHERE tenant_id = $1 AND expires_at IS NOT NULL AND expires_at <= $2 \
             ORDER BY expires_at, id LIMIT $3",
        )
        .bind(tenant)
        .bind(now)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        Ok(rows)
    }
}

fn missing(id: &str) -> Error {
    Error::missing("file", id)
}

/// Test support shared by the store's file and skill tests: a migrated store per backend
/// (SQLite always, PostgreSQL when `OMA_TEST_DATABASE_URL` is set) and run-unique names, so
/// runs can share one PostgreSQL database.
#[cfg(test)]
pub(crate) mod test_db {
    use crate::{Backend, Store};

    pub struct Db {
        pub store: Store,
        _dir: Option<tempfile::TempDir>,
    }

    pub async fn open(backend: Backend) -> Db {
        let (url, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                (
                    format!("sqlite://{}", dir.path().join("oma.db").display()),
                    Some(dir),
                )
            }
            Backend::Postgres => (std::env::var("OMA_TEST_DATABASE_URL").unwrap(), None),
        };
        let store = Store::connect(&url).await.unwrap();
        store.migrate_up().await.unwrap();
        Db { store, _dir: dir }
    }

    pub fn backends() -> Vec<Backend> {
        let mut v = vec![Backend::Sqlite];
        match std::env::var("OMA_TEST_DATABASE_URL") {
            Ok(u) if !u.is_empty() => v.push(Backend::Postgres),
            _ => {
                eprintln!("note: OMA_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant")
            }
        }
        v
    }

    /// A suffix no other run uses.
    pub fn unique() -> String {
        oma_core::ids::new_id("t").to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::test_db::{backends, open, unique};
    use super::*;

    fn new_file(id: &str, at: i64, scope: Option<&str>) -> NewFile {
        NewFile {
            id: id.into(),
            filename: format!("{id}.txt"),
            mime_type: "text/plain".into(),
            size_bytes: 3,
            created_at: at,
            expires_at: None,
            downloadable: true,
            scope: scope.map(FileScope::session),
            blob_key: format!("files/t/{id}"),
        }
    }

    #[tokio::test]
    async fn crud_list_ids_and_tenancy() {
        for b in backends() {
            let db = open(b).await;
            let s = &db.store;
            let u = unique();
            let (t1, t2) = (format!("a-{u}"), format!("b-{u}"));
            let id = |n: i64| format!("file_{u}_{n}");
            let sesn = format!("sesn_{u}");
            for (n, scope) in [(1, None), (2, Some(sesn.as_str())), (3, None)] {
                s.insert_file(&t1, &new_file(&id(n), n * 1000, scope))
                    .await
                    .unwrap();
            }
            let got: FileMetadata =
                serde_json::from_str(&s.get_file(&t1, &id(2)).await.unwrap()).unwrap();
            assert_eq!(got.scope, Some(FileScope::session(&sesn)));
            assert_eq!(got.downloadable, Some(true));
            assert!(
                s.get_file(&t2, &id(2)).await.is_err(),
                "another tenant's file is invisible"
            );

            // Pages of two, newest first, then following the cursor.
            let q = ListQuery::new(2, true, None);
            let page = s.list_files(&t1, &FileFilter::default(), &q).await.unwrap();
            assert_eq!(page.items.len(), 2);
            assert!(page.items[0].contains(&id(3)));
            let next = page.next.clone().unwrap();
            let page2 = s
                .list_files(
                    &t1,
                    &FileFilter::default(),
                    &ListQuery::new(2, true, Some(next)),
                )
                .await
                .unwrap();
            assert_eq!(page2.items.len(), 1);
            assert!(page2.items[0].contains(&id(1)));
            assert!(page2.next.is_none());

            let scoped = FileFilter {
                scope_id: Some(sesn.clone()),
            };
            assert_eq!(s.list_files(&t1, &scoped, &q).await.unwrap().items.len(), 1);

            let ids = vec![id(1), id(3), id(1), format!("file_{u}_nope")];
            let rows = s
                .files_by_ids(&t1, &ids, &FileFilter::default())
                .await
                .unwrap();
            assert_eq!(rows.len(), 2);
            assert!(rows[0].contains(&id(3)));
            assert_eq!(s.files_by_ids(&t1, &ids, &scoped).await.unwrap().len(), 0);
            assert!(
                s.files_by_ids(&t2, &ids, &FileFilter::default())
                    .await
                    .unwrap()
                    .is_empty()
            );
            let too_many: Vec<String> = (0..101).map(id).collect();
            assert!(
                s.files_by_ids(&t1, &too_many, &FileFilter::default())
                    .await
                    .is_err()
            );

            assert!(s.delete_file(&t2, &id(1)).await.is_err());
            assert_eq!(
                s.delete_file(&t1, &id(1)).await.unwrap(),
                format!("files/t/{}", id(1))
            );
            assert!(s.file_record(&t1, &id(1)).await.is_err());
            assert!(s.delete_file(&t1, &id(1)).await.is_err());
        }
    }

    #[tokio::test]
    async fn expiry() {
        for b in backends() {
            let db = open(b).await;
            let s = &db.store;
            let u = unique();
            let t = format!("e-{u}");
            let id = format!("file_{u}");
            let mut f = new_file(&id, 1000, None);
            f.expires_at = Some(5000);
            s.insert_file(&t, &f).await.unwrap();
            let rec = s.file_record(&t, &id).await.unwrap();
            assert!(!rec.is_expired(4999));
            assert!(rec.is_expired(5000));
            assert!(rec.meta.expires_at.is_some());
            assert!(s.expired_files(&t, 4999, 10).await.unwrap().is_empty());
            assert_eq!(
                s.expired_files(&t, 6000, 10).await.unwrap(),
                vec![(id.clone(), format!("files/t/{id}"))]
            );
        }
    }
}
