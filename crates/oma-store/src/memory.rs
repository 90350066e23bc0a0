//! Storage: memory stores, memories and memory versions.
//!
//! A memory row points at its current version, which holds the content; every create, change
//! and delete appends a version in the same transaction as the row change, so the history and
//! the live tree never disagree.
//!
//! Concurrency: every memory write starts by bumping the store row's `write_seq`. On PostgreSQL
//! that UPDATE takes the row lock, so writes to one store run one after another: two updates
//! carrying the same `content_sha256` precondition cannot both see the old digest, a path cannot
//! be taken twice, and the per-store cap holds. (SQLite already runs one write transaction at a
//! time.) Store updates, archives and deletes take the same lock, always before touching
//! memories, so lock order is the same everywhere.

use sqlx::{AnyConnection, AssertSqlSafe};

use oma_api::memory::{
    Actor, MemoryListItem, MemoryPrefix, MemoryStore, MemoryStoreDeleted, MemoryVersionOperation,
    MemoryView,
};
use oma_core::cursor::Cursor;
use oma_core::memory::{
    self as rules, ListEntry, ListResume, MemoryChange, MemoryRecord, MemoryStoreConfig, NewMemory,
    UpdateMemoryStoreParams, VersionRecord,
};
use oma_core::{Error, ids, time};

use crate::{ListQuery, Listed, Result, Store, StoreError, from_json, to_json};

/// Filters of `GET /v1/memory_stores`.
#[derive(Debug, Clone, Default)]
pub struct MemoryStoreFilter {
    pub include_archived: bool,
    pub created_gte: Option<i64>,
    pub created_lte: Option<i64>,
}

/// What `GET …/memories` asks for, validated at the edge.
#[derive(Debug, Clone)]
pub struct MemoryListQuery {
    /// Ends with `/`; `/` for the whole store.
    pub prefix: String,
    /// 0: everything below the prefix; n: n levels, deeper paths rolled up into markers.
    pub depth: usize,
    pub view: MemoryView,
    /// The page size (already capped for the full view).
    pub limit: i64,
    pub after: Option<Cursor>,
}

/// A page of `GET …/memories`.
#[derive(Debug, Clone, Default)]
pub struct MemoryPage {
    pub items: Vec<MemoryListItem>,
    pub next: Option<Cursor>,
}

/// Filters of `GET …/memory_versions`. Actor filters match the version's `created_by`.
#[derive(Debug, Clone, Default)]
pub struct MemoryVersionFilter {
    pub memory_id: Option<String>,
    pub operation: Option<MemoryVersionOperation>,
    pub api_key_id: Option<String>,
    pub session_id: Option<String>,
    pub service_account_id: Option<String>,
    pub created_gte: Option<i64>,
    pub created_lte: Option<i64>,
}

/// A page of versions and the cursor of the next one.
#[derive(Debug, Clone, Default)]
pub struct VersionPage {
    pub items: Vec<VersionRecord>,
    pub next: Option<Cursor>,
}

/// The parts of a memory store other resources need (sessions attach stores).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryStoreSummary {
    pub id: String,
    pub name: String,
    pub description: String,
    pub archived_at: Option<i64>,
}

type StoreRow = (i64, i64, Option<i64>, String);
/// id, memory_store_id, path, version_id, content_sha256, content_size_bytes, created_at,
/// updated_at, content (NULL unless asked for).
type MemoryRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    Option<String>,
);
/// id, memory_store_id, memory_id, operation, path, content, content_sha256,
/// content_size_bytes, created_at, created_by_type, created_by_id, redacted_at,
/// redacted_by_type, redacted_by_id.
type VersionRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

const MEMORY_COLUMNS: &str = "m.id, m.memory_store_id, m.path, m.version_id, m.content_sha256, \
     m.content_size_bytes, m.created_at, m.updated_at";
const VERSION_COLUMNS: &str = "id, memory_store_id, memory_id, operation, path, \
     CASE WHEN $3 = 1 THEN content END, content_sha256, content_size_bytes, created_at, \
     created_by_type, created_by_id, redacted_at, redacted_by_type, redacted_by_id";

impl Store {
    // -----------------------------------------------------------------------------------------
    // Memory stores
    // -----------------------------------------------------------------------------------------

    pub async fn create_memory_store(
        &self,
        tenant: &str,
        cfg: &MemoryStoreConfig,
    ) -> Result<String> {
        let id = ids::new_id(ids::MEMORY_STORE);
        let now = time::now_micros();
        let body = to_json(&rules::store_object(&id, now, now, None, cfg))?;
        sqlx::query(
            "INSERT INTO memory_stores (id, tenant_id, created_at, updated_at, archived_at, write_seq, body) \
             VALUES ($1, $2, $3, $3, NULL, 0, $4)",
        )
        .bind(&id)
        .bind(tenant)
        .bind(now)
        .bind(&body)
        .execute(self.writer())
        .await?;
        Ok(body)
    }

    /// The store object as JSON.
    pub async fn get_memory_store(&self, tenant: &str, id: &str) -> Result<String> {
        let body = self
            .body_of(crate::rows::BodyTable::MemoryStores, tenant, id)
            .await?;
        Ok(body.ok_or_else(|| store_missing(id))?)
    }

    /// Name, description and archive state of a store (for attaching it to sessions).
    pub async fn memory_store_summary(&self, tenant: &str, id: &str) -> Result<MemoryStoreSummary> {
        let row: Option<(Option<i64>, String)> = sqlx::query_as(
            "SELECT archived_at, body FROM memory_stores WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        let (archived_at, body) = row.ok_or_else(|| store_missing(id))?;
        let store: MemoryStore = from_json(&body)?;
        Ok(MemoryStoreSummary {
            id: store.id,
            name: store.name,
            description: store.description,
            archived_at,
        })
    }

    /// Applies an update. Archived stores refuse it; an update that changes nothing returns
    /// the store unchanged (same `updated_at`).
    pub async fn update_memory_store(
        &self,
        tenant: &str,
        id: &str,
        params: UpdateMemoryStoreParams,
    ) -> Result<String> {
        let mut tx = self.writer().begin().await?;
        let (created_at, _, archived_at, body) = lock_store(&mut tx, tenant, id).await?;
        if archived_at.is_some() {
            return Err(Error::invalid(format!(
                "memory store `{id}` is archived and can no longer be updated"
            ))
            .into());
        }
        let current = config_of(&body)?;
        let next = current.update(params)?;
        if next == current {
            return Ok(body);
        }
        let now = time::now_micros();
        let new_body = to_json(&rules::store_object(id, created_at, now, None, &next))?;
        sqlx::query(
            "UPDATE memory_stores SET updated_at = $1, body = $2 WHERE tenant_id = $3 AND id = $4",
        )
        .bind(now)
        .bind(&new_body)
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(new_body)
    }

    /// Archives a store; archiving again returns it unchanged.
    pub async fn archive_memory_store(&self, tenant: &str, id: &str) -> Result<String> {
        let mut tx = self.writer().begin().await?;
        let (created_at, _, archived_at, body) = lock_store(&mut tx, tenant, id).await?;
        if archived_at.is_some() {
            return Ok(body);
        }
        let now = time::now_micros();
        let cfg = config_of(&body)?;
        let new_body = to_json(&rules::store_object(id, created_at, now, Some(now), &cfg))?;
        sqlx::query(
            "UPDATE memory_stores SET archived_at = $1, updated_at = $1, body = $2 WHERE tenant_id = $3 AND id = $4",
        )
        .bind(now)
        .bind(&new_body)
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(new_body)
    }

    /// Deletes a store with all its memories and versions.
    pub async fn delete_memory_store(&self, tenant: &str, id: &str) -> Result<MemoryStoreDeleted> {
        let mut tx = self.writer().begin().await?;
        lock_store(&mut tx, tenant, id).await?;
        for sql in [
            "DELETE FROM memory_versions WHERE tenant_id = $1 AND memory_store_id = $2",
            "DELETE FROM memories WHERE tenant_id = $1 AND memory_store_id = $2",
            "DELETE FROM memory_stores WHERE tenant_id = $1 AND id = $2",
        ] {
            sqlx::query(sql)
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(MemoryStoreDeleted::new(id))
    }

    pub async fn list_memory_stores(
        &self,
        tenant: &str,
        f: &MemoryStoreFilter,
        q: &ListQuery,
    ) -> Result<Listed> {
        let sql = format!(
            "SELECT created_at, id, body FROM memory_stores WHERE tenant_id = $1 \
             AND ($2 = 1 OR archived_at IS NULL) \
             AND ($3 IS NULL OR created_at >= $3) AND ($4 IS NULL OR created_at <= $4) \
             AND {} {} LIMIT $7",
            q.after_clause("created_at", "id", 5),
            q.order_clause("created_at", "id"),
        );
        let (k, i) = q.after_binds();
        let rows: Vec<(i64, String, String)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(i64::from(f.include_archived))
            .bind(f.created_gte)
            .bind(f.created_lte)
            .bind(k)
            .bind(i)
            .bind(q.fetch_limit())
            .fetch_all(self.reader())
            .await?;
        Ok(Listed::from_rows(q, rows))
    }

    // -----------------------------------------------------------------------------------------
    // Memories
    // -----------------------------------------------------------------------------------------

    /// Creates a memory at a free path. Returns it with its content.
    pub async fn create_memory(
        &self,
        tenant: &str,
        store_id: &str,
        new: NewMemory,
        actor: Option<&Actor>,
    ) -> Result<MemoryRecord> {
        let mut tx = self.writer().begin().await?;
        let (_, _, archived_at, _) = lock_store(&mut tx, tenant, store_id).await?;
        if archived_at.is_some() {
            return Err(rules::store_archived(store_id).into());
        }
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM memories WHERE tenant_id = $1 AND memory_store_id = $2",
        )
        .bind(tenant)
        .bind(store_id)
        .fetch_one(&mut *tx)
        .await?;
        if count >= rules::MAX_MEMORIES_PER_STORE {
            return Err(rules::store_full(store_id).into());
        }
        check_path_free(&mut tx, tenant, store_id, &new.path, None).await?;

        let now = time::now_micros();
        let record = MemoryRecord {
            id: ids::new_id(ids::MEMORY),
            memory_store_id: store_id.to_string(),
            memory_version_id: ids::new_id(ids::MEMORY_VERSION),
            content_sha256: rules::sha256_hex(&new.content),
            content_size_bytes: new.content.len() as i64,
            created_at: now,
            updated_at: now,
            path: new.path,
            content: Some(new.content),
        };
        insert_version(
            &mut tx,
            tenant,
            &record,
            MemoryVersionOperation::Created,
            actor,
        )
        .await?;
        sqlx::query(
            "INSERT INTO memories (id, tenant_id, memory_store_id, path, version_id, content_sha256, \
             content_size_bytes, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(&record.id)
        .bind(tenant)
        .bind(store_id)
        .bind(&record.path)
        .bind(&record.memory_version_id)
        .bind(&record.content_sha256)
        .bind(record.content_size_bytes)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| path_race(e, &record.path))?;
        tx.commit().await?;
        Ok(record)
    }

    /// A memory; its content is read only when `with_content`.
    pub async fn get_memory(
        &self,
        tenant: &str,
        store_id: &str,
        id: &str,
        with_content: bool,
    ) -> Result<MemoryRecord> {
        let sql = format!(
            "SELECT {MEMORY_COLUMNS}, CASE WHEN $4 = 1 THEN v.content END FROM memories m \
             JOIN memory_versions v ON v.id = m.version_id \
             WHERE m.tenant_id = $1 AND m.memory_store_id = $2 AND m.id = $3"
        );
        let row: Option<MemoryRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(store_id)
            .bind(id)
            .bind(i64::from(with_content))
            .fetch_optional(self.reader())
            .await?;
        match row {
            Some(row) => Ok(memory_record(row)),
            None => {
                self.ensure_memory_store(tenant, store_id).await?;
                Err(memory_missing(id).into())
            }
        }
    }

    /// Changes a memory's content and/or path. A change that alters nothing writes no version
    /// and returns the memory as it is. Returns the memory with its content.
    pub async fn update_memory(
        &self,
        tenant: &str,
        store_id: &str,
        id: &str,
        change: MemoryChange,
        actor: Option<&Actor>,
    ) -> Result<MemoryRecord> {
        let mut tx = self.writer().begin().await?;
        let (_, _, archived_at, _) = lock_store(&mut tx, tenant, store_id).await?;
        let mut current = read_memory(&mut tx, tenant, store_id, id).await?;
        // Report the precondition before the archive state: a stale caller learns it is
        // stale whatever else is wrong.
        rules::check_precondition(
            id,
            change.expected_sha256.as_deref(),
            &current.content_sha256,
        )?;
        if archived_at.is_some() {
            return Err(rules::store_archived(store_id).into());
        }

        let new_sha = change.content.as_deref().map(rules::sha256_hex);
        let content_changes = new_sha
            .as_ref()
            .is_some_and(|s| *s != current.content_sha256);
        let path_changes = change.path.as_ref().is_some_and(|p| *p != current.path);
        if !content_changes && !path_changes {
            return Ok(current);
        }
        if let (true, Some(path)) = (path_changes, change.path.as_ref()) {
            check_path_free(&mut tx, tenant, store_id, path, Some(id)).await?;
            current.path = path.clone();
        }
        if let (true, Some(content), Some(sha)) = (content_changes, change.content, new_sha) {
            current.content_size_bytes = content.len() as i64;
            current.content_sha256 = sha;
            current.content = Some(content);
        }
        let now = time::now_micros();
        current.memory_version_id = ids::new_id(ids::MEMORY_VERSION);
        current.updated_at = now;
        insert_version(
            &mut tx,
            tenant,
            &current,
            MemoryVersionOperation::Modified,
            actor,
        )
        .await?;
        sqlx::query(
            "UPDATE memories SET path = $1, version_id = $2, content_sha256 = $3, content_size_bytes = $4, \
             updated_at = $5 WHERE tenant_id = $6 AND id = $7",
        )
        .bind(&current.path)
        .bind(&current.memory_version_id)
        .bind(&current.content_sha256)
        .bind(current.content_size_bytes)
        .bind(now)
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| path_race(e, &current.path))?;
        tx.commit().await?;
        Ok(current)
    }

    /// Deletes a memory, recording a `deleted` version. `expected_sha256` must match the
    /// current content when given. Allowed in archived stores.
    pub async fn delete_memory(
        &self,
        tenant: &str,
        store_id: &str,
        id: &str,
        expected_sha256: Option<&str>,
        actor: Option<&Actor>,
    ) -> Result<()> {
        let mut tx = self.writer().begin().await?;
        lock_store(&mut tx, tenant, store_id).await?;
        let mut current = read_memory(&mut tx, tenant, store_id, id).await?;
        rules::check_precondition(id, expected_sha256, &current.content_sha256)?;
        current.memory_version_id = ids::new_id(ids::MEMORY_VERSION);
        current.updated_at = time::now_micros();
        insert_version(
            &mut tx,
            tenant,
            &current,
            MemoryVersionOperation::Deleted,
            actor,
        )
        .await?;
        sqlx::query("DELETE FROM memories WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A page of memories (and, with a depth, `memory_prefix` markers) in path order.
    ///
    /// Rows are scanned in path order from the resume point; a path below the depth limit
    /// emits its directory's marker once and the scan jumps past that directory, so a page
    /// costs a few index range scans however many memories a directory holds.
    pub async fn list_memories(
        &self,
        tenant: &str,
        store_id: &str,
        q: &MemoryListQuery,
    ) -> Result<MemoryPage> {
        self.ensure_memory_store(tenant, store_id).await?;
        let end = rules::prefix_end(&q.prefix);
        let mut pos = match &q.after {
            Some(c) => {
                let r = ListResume::from_cursor(c);
                if r.from.as_str() < q.prefix.as_str() {
                    ListResume {
                        from: q.prefix.clone(),
                        inclusive: true,
                    }
                } else {
                    r
                }
            }
            None => ListResume {
                from: q.prefix.clone(),
                inclusive: true,
            },
        };
        let want = q.limit.max(1) as usize + 1;
        // Markers skip rows, so scan in batches a little larger than the page.
        let batch = (want as i64).max(64);
        let mut entries: Vec<(String, Option<MemoryRecord>)> = Vec::with_capacity(want);
        'scan: loop {
            let op = if pos.inclusive { ">=" } else { ">" };
            let sql = format!(
                "SELECT {MEMORY_COLUMNS}, CAST(NULL AS TEXT) FROM memories m WHERE m.tenant_id = $1 AND m.memory_store_id = $2 \
                 AND m.path {op} $3 AND m.path < $4 ORDER BY m.path LIMIT $5"
            );
            let rows: Vec<MemoryRow> = sqlx::query_as(AssertSqlSafe(sql))
                .bind(tenant)
                .bind(store_id)
                .bind(&pos.from)
                .bind(&end)
                .bind(batch)
                .fetch_all(self.reader())
                .await?;
            let fetched = rows.len() as i64;
            for row in rows {
                let record = memory_record(row);
                let before_pos =
                    record.path < pos.from || (record.path == pos.from && !pos.inclusive);
                if before_pos {
                    // Inside a directory already listed as a marker.
                    continue;
                }
                match rules::list_entry(&q.prefix, &record.path, q.depth) {
                    ListEntry::Memory => {
                        pos = ListResume {
                            from: record.path.clone(),
                            inclusive: false,
                        };
                        entries.push((record.path.clone(), Some(record)));
                    }
                    ListEntry::Prefix(marker) => {
                        pos = ListResume::after_key(&marker);
                        entries.push((marker, None));
                    }
                }
                if entries.len() >= want {
                    break 'scan;
                }
            }
            if fetched < batch {
                break;
            }
        }

        let more = entries.len() > q.limit as usize;
        entries.truncate(q.limit.max(0) as usize);
        let next = if more {
            entries.last().map(|(key, _)| rules::list_cursor(key))
        } else {
            None
        };
        if q.view == MemoryView::Full {
            self.fill_contents(tenant, &mut entries).await?;
        }
        let items = entries
            .into_iter()
            .map(|(key, record)| match record {
                Some(r) => MemoryListItem::Memory(r.to_object(q.view)),
                None => MemoryListItem::Prefix(MemoryPrefix::new(key)),
            })
            .collect();
        Ok(MemoryPage { items, next })
    }

    /// Reads the current content of the listed memories (one query for the page).
    async fn fill_contents(
        &self,
        tenant: &str,
        entries: &mut [(String, Option<MemoryRecord>)],
    ) -> Result<()> {
        let ids: Vec<String> = entries
            .iter()
            .filter_map(|(_, r)| r.as_ref().map(|r| r.memory_version_id.clone()))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT id, content FROM memory_versions WHERE tenant_id = $1 AND id IN ({})",
            placeholders.join(", ")
        );
        let mut query =
            sqlx::query_as::<_, (String, Option<String>)>(AssertSqlSafe(sql)).bind(tenant);
        for id in &ids {
            query = query.bind(id);
        }
        let contents: std::collections::HashMap<String, Option<String>> =
            query.fetch_all(self.reader()).await?.into_iter().collect();
        for record in entries.iter_mut().filter_map(|(_, r)| r.as_mut()) {
            record.content = contents.get(&record.memory_version_id).cloned().flatten();
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Versions
    // -----------------------------------------------------------------------------------------

    pub async fn get_memory_version(
        &self,
        tenant: &str,
        store_id: &str,
        id: &str,
        with_content: bool,
    ) -> Result<VersionRecord> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM memory_versions WHERE tenant_id = $1 AND memory_store_id = $2 AND id = $4"
        );
        let row: Option<VersionRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(store_id)
            .bind(i64::from(with_content))
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        match row {
            Some(row) => version_record(row),
            None => {
                self.ensure_memory_store(tenant, store_id).await?;
                Err(version_missing(id).into())
            }
        }
    }

    /// Versions of a store, in the order of `q` (newest first by default).
    pub async fn list_memory_versions(
        &self,
        tenant: &str,
        store_id: &str,
        f: &MemoryVersionFilter,
        with_content: bool,
        q: &ListQuery,
    ) -> Result<VersionPage> {
        self.ensure_memory_store(tenant, store_id).await?;
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM memory_versions WHERE tenant_id = $1 AND memory_store_id = $2 \
             AND ($4 IS NULL OR memory_id = $4) AND ($5 IS NULL OR operation = $5) \
             AND ($6 IS NULL OR (created_by_type = 'api_actor' AND created_by_id = $6)) \
             AND ($7 IS NULL OR (created_by_type = 'session_actor' AND created_by_id = $7)) \
             AND ($8 IS NULL OR (created_by_type = 'service_account_actor' AND created_by_id = $8)) \
             AND ($9 IS NULL OR created_at >= $9) AND ($10 IS NULL OR created_at <= $10) \
             AND {} {} LIMIT $13",
            q.after_clause("created_at", "id", 11),
            q.order_clause("created_at", "id"),
        );
        let (k, i) = q.after_binds();
        let rows: Vec<VersionRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(store_id)
            .bind(i64::from(with_content))
            .bind(f.memory_id.as_deref())
            .bind(f.operation.map(MemoryVersionOperation::as_str))
            .bind(f.api_key_id.as_deref())
            .bind(f.session_id.as_deref())
            .bind(f.service_account_id.as_deref())
            .bind(f.created_gte)
            .bind(f.created_lte)
            .bind(k)
            .bind(i)
            .bind(q.fetch_limit())
            .fetch_all(self.reader())
            .await?;
        let more = rows.len() as i64 > q.limit;
        let mut items = rows
            .into_iter()
            .map(version_record)
            .collect::<Result<Vec<_>>>()?;
        items.truncate(q.limit.max(0) as usize);
        let next = if more {
            items.last().map(|v| Cursor {
                key: v.created_at,
                id: v.id.clone(),
                desc: q.desc,
            })
        } else {
            None
        };
        Ok(VersionPage { items, next })
    }

    /// Redacts a version: wipes its content, path, digest and size and records who did it.
    /// Redacting twice returns the version unchanged. The version a live memory currently
    /// points at cannot be redacted (the memory would lose its content).
    pub async fn redact_memory_version(
        &self,
        tenant: &str,
        store_id: &str,
        id: &str,
        actor: Option<&Actor>,
    ) -> Result<VersionRecord> {
        let mut tx = self.writer().begin().await?;
        lock_store(&mut tx, tenant, store_id).await?;
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM memory_versions WHERE tenant_id = $1 AND memory_store_id = $2 AND id = $4"
        );
        let row: Option<VersionRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(store_id)
            .bind(1_i64)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let mut version = version_record(row.ok_or_else(|| version_missing(id))?)?;
        if version.redacted_at.is_some() {
            return Ok(version);
        }
        let head: Option<String> = sqlx::query_scalar(
            "SELECT id FROM memories WHERE tenant_id = $1 AND memory_store_id = $2 AND id = $3 AND version_id = $4",
        )
        .bind(tenant)
        .bind(store_id)
        .bind(&version.memory_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if head.is_some() {
            return Err(rules::cannot_redact_head(id, &version.memory_id).into());
        }
        let now = time::now_micros();
        sqlx::query(
            "UPDATE memory_versions SET content = NULL, path = NULL, content_sha256 = NULL, \
             content_size_bytes = NULL, redacted_at = $1, redacted_by_type = $2, redacted_by_id = $3 \
             WHERE tenant_id = $4 AND id = $5",
        )
        .bind(now)
        .bind(actor.map(Actor::kind))
        .bind(actor.map(Actor::id))
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        version.content = None;
        version.path = None;
        version.content_sha256 = None;
        version.content_size_bytes = None;
        version.redacted_at = Some(now);
        version.redacted_by = actor.cloned();
        Ok(version)
    }

    /// 404 unless the store exists for this tenant.
    async fn ensure_memory_store(&self, tenant: &str, id: &str) -> Result<()> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT id FROM memory_stores WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .fetch_optional(self.reader())
                .await?;
        found.map(|_| ()).ok_or_else(|| store_missing(id).into())
    }
}

/// Takes the store's write lock (see the module docs) and returns `(created_at, updated_at,
/// archived_at, body)`; 404 when the tenant has no such store.
async fn lock_store(conn: &mut AnyConnection, tenant: &str, id: &str) -> Result<StoreRow> {
    let row: Option<StoreRow> = sqlx::query_as(
        "UPDATE memory_stores SET write_seq = write_seq + 1 WHERE tenant_id = $1 AND id = $2 \
         RETURNING created_at, updated_at, archived_at, body",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.ok_or_else(|| store_missing(id).into())
}

/// The memory with its content, inside a write transaction.
async fn read_memory(
    conn: &mut AnyConnection,
    tenant: &str,
    store_id: &str,
    id: &str,
) -> Result<MemoryRecord> {
    let sql = format!(
        "SELECT {MEMORY_COLUMNS}, v.content FROM memories m JOIN memory_versions v ON v.id = m.version_id \
         WHERE m.tenant_id = $1 AND m.memory_store_id = $2 AND m.id = $3"
    );
    let row: Option<MemoryRow> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(tenant)
        .bind(store_id)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(memory_record(row.ok_or_else(|| memory_missing(id))?))
}

/// Refuses `path` when another memory has it, when a memory sits where `path` needs a
/// directory (`/a` for `/a/b`), or when memories sit below `path` (`/a/b` for `/a`).
/// `except` is the memory being renamed, which does not conflict with itself.
async fn check_path_free(
    conn: &mut AnyConnection,
    tenant: &str,
    store_id: &str,
    path: &str,
    except: Option<&str>,
) -> Result<()> {
    let except = except.unwrap_or("");
    let taken: Option<String> = sqlx::query_scalar(
        "SELECT id FROM memories WHERE tenant_id = $1 AND memory_store_id = $2 AND path = $3 AND id <> $4",
    )
    .bind(tenant)
    .bind(store_id)
    .bind(path)
    .bind(except)
    .fetch_optional(&mut *conn)
    .await?;
    if taken.is_some() {
        return Err(rules::path_taken(path).into());
    }
    let ancestors = rules::ancestors(path);
    if !ancestors.is_empty() {
        let placeholders: Vec<String> = (0..ancestors.len())
            .map(|i| format!("${}", i + 4))
            .collect();
        let sql = format!(
            "SELECT path FROM memories WHERE tenant_id = $1 AND memory_store_id = $2 AND id <> $3 \
             AND path IN ({}) LIMIT 1",
            placeholders.join(", ")
        );
        let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(store_id)
            .bind(except);
        for a in &ancestors {
            query = query.bind(a);
        }
        if let Some(file) = query.fetch_optional(&mut *conn).await? {
            return Err(rules::path_blocked(path, &file).into());
        }
    }
    let dir = format!("{path}/");
    let below: Option<String> = sqlx::query_scalar(
        "SELECT path FROM memories WHERE tenant_id = $1 AND memory_store_id = $2 AND id <> $3 \
         AND path >= $4 AND path < $5 ORDER BY path LIMIT 1",
    )
    .bind(tenant)
    .bind(store_id)
    .bind(except)
    .bind(&dir)
    .bind(rules::prefix_end(&dir))
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(child) = below {
        return Err(rules::path_blocked(path, &child).into());
    }
    Ok(())
}

/// Appends the version recording `record`'s new state (`record.memory_version_id` is the new
/// version's id). `deleted` versions keep the path but no content, digest or size.
async fn insert_version(
    conn: &mut AnyConnection,
    tenant: &str,
    record: &MemoryRecord,
    op: MemoryVersionOperation,
    actor: Option<&Actor>,
) -> Result<()> {
    let deleted = op == MemoryVersionOperation::Deleted;
    let content = if deleted {
        None
    } else {
        record.content.as_deref()
    };
    let sha = (!deleted).then_some(record.content_sha256.as_str());
    let size = (!deleted).then_some(record.content_size_bytes);
    sqlx::query(
        "INSERT INTO memory_versions (id, tenant_id, memory_store_id, memory_id, operation, path, content, \
         content_sha256, content_size_bytes, created_at, created_by_type, created_by_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&record.memory_version_id)
    .bind(tenant)
    .bind(&record.memory_store_id)
    .bind(&record.id)
    .bind(op.as_str())
    .bind(&record.path)
    .bind(content)
    .bind(sha)
    .bind(size)
    .bind(record.updated_at)
    .bind(actor.map(Actor::kind))
    .bind(actor.map(Actor::id))
    .execute(conn)
    .await?;
    Ok(())
}

fn config_of(body: &str) -> Result<MemoryStoreConfig> {
    let store: MemoryStore = from_json(body)?;
    Ok(MemoryStoreConfig {
        name: store.name,
        description: store.description,
        metadata: store.metadata,
    })
}

fn memory_record(row: MemoryRow) -> MemoryRecord {
    let (
        id,
        memory_store_id,
        path,
        memory_version_id,
        content_sha256,
        content_size_bytes,
        created_at,
        updated_at,
        content,
    ) = row;
    MemoryRecord {
        id,
        memory_store_id,
        path,
        memory_version_id,
        content_sha256,
        content_size_bytes,
        created_at,
        updated_at,
        content,
    }
}

fn version_record(row: VersionRow) -> Result<VersionRecord> {
    let (
        id,
        memory_store_id,
        memory_id,
        operation,
        path,
        content,
        content_sha256,
        content_size_bytes,
        created_at,
        created_by_type,
        created_by_id,
        redacted_at,
        redacted_by_type,
        redacted_by_id,
    ) = row;
    let operation = MemoryVersionOperation::parse(&operation).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "memory version `{id}` has unknown operation `{operation}`"
        ))
    })?;
    Ok(VersionRecord {
        operation,
        memory_store_id,
        memory_id,
        path,
        content,
        content_sha256,
        content_size_bytes,
        created_at,
        created_by: actor(&id, created_by_type, created_by_id)?,
        redacted_at,
        redacted_by: actor(&id, redacted_by_type, redacted_by_id)?,
        id,
    })
}

fn actor(version_id: &str, kind: Option<String>, id: Option<String>) -> Result<Option<Actor>> {
    match (kind, id) {
        (Some(kind), Some(id)) => Actor::from_parts(&kind, id).map(Some).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "memory version `{version_id}` has unknown actor `{kind}`"
            ))
        }),
        _ => Ok(None),
    }
}

/// A unique-index violation on the path means a concurrent writer took it first.
fn path_race(e: sqlx::Error, path: &str) -> StoreError {
    let e = StoreError::Database(e);
    if e.is_unique_violation() {
        rules::path_taken(path).into()
    } else {
        e
    }
}

fn store_missing(id: &str) -> Error {
    Error::missing("memory store", id)
}

fn memory_missing(id: &str) -> Error {
    Error::missing("memory", id)
}

fn version_missing(id: &str) -> Error {
    Error::missing("memory version", id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oma_core::ErrorKind;
    use oma_core::memory::UpdateMemoryParams;
    use serde_json::json;

    /// SQLite always; PostgreSQL too when `OMA_TEST_DATABASE_URL` is set. Tenants are unique
    /// per run, so a shared database is fine.
    async fn stores() -> Vec<(Option<tempfile::TempDir>, Store)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("oma.db").display());
        let mut out = vec![(Some(dir), Store::connect(&url).await.expect("connect"))];
        match std::env::var("OMA_TEST_DATABASE_URL") {
            Ok(u) if !u.is_empty() => {
                out.push((None, Store::connect(&u).await.expect("connect pg")))
            }
            _ => {
                eprintln!("note: OMA_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant")
            }
        }
        for (_, s) in &out {
            s.migrate_up().await.expect("migrate");
        }
        out
    }

    fn tenant() -> String {
        ids::new_id("tmem")
    }

    fn actor() -> Actor {
        Actor::ApiActor {
            api_key_id: "apikey_test".into(),
        }
    }

    async fn new_store(s: &Store, t: &str) -> String {
        let cfg =
            MemoryStoreConfig::create(serde_json::from_value(json!({"name": "n"})).expect("p"))
                .expect("cfg");
        let body = s.create_memory_store(t, &cfg).await.expect("create store");
        from_json::<MemoryStore>(&body).expect("json").id
    }

    async fn put(s: &Store, t: &str, store: &str, path: &str, content: &str) -> MemoryRecord {
        let new = NewMemory {
            path: path.into(),
            content: content.into(),
        };
        s.create_memory(t, store, new, Some(&actor()))
            .await
            .expect("create memory")
    }

    fn change(v: serde_json::Value) -> MemoryChange {
        MemoryChange::from_params(serde_json::from_value::<UpdateMemoryParams>(v).expect("p"))
            .expect("change")
    }

    fn kind(r: Result<impl std::fmt::Debug>) -> ErrorKind {
        match r {
            Err(StoreError::Domain(e)) => e.kind,
            other => panic!("expected a domain error, got {other:?}"),
        }
    }

    fn listing(page: &MemoryPage) -> Vec<String> {
        page.items
            .iter()
            .map(|i| match i {
                MemoryListItem::Memory(m) => m.path.clone(),
                MemoryListItem::Prefix(p) => format!("[{}]", p.path),
            })
            .collect()
    }

    async fn list_all(
        s: &Store,
        t: &str,
        store: &str,
        prefix: &str,
        depth: usize,
        limit: i64,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let q = MemoryListQuery {
                prefix: prefix.into(),
                depth,
                view: MemoryView::Basic,
                limit,
                after,
            };
            let page = s.list_memories(t, store, &q).await.expect("list");
            assert!(page.items.len() as i64 <= limit);
            out.extend(listing(&page));
            match page.next {
                Some(c) => after = Some(Cursor::decode(&c.encode()).expect("cursor")),
                None => return out,
            }
        }
    }

    #[tokio::test]
    async fn memories_versions_and_listing() {
        for (_dir, s) in stores().await {
            let t = tenant();
            let st = new_store(&s, &t).await;
            let a = put(&s, &t, &st, "/a/x.md", "one").await;
            for p in [
                "/a/y.md",
                "/a/deep/z.md",
                "/a/deep/er/w.md",
                "/b.md",
                "/a-sibling/q.md",
            ] {
                put(&s, &t, &st, p, p).await;
            }

            // listing: recursive, rolled up, under a prefix, paginated one by one
            let all = list_all(&s, &t, &st, "/", 0, 100).await;
            assert_eq!(
                all,
                [
                    "/a-sibling/q.md",
                    "/a/deep/er/w.md",
                    "/a/deep/z.md",
                    "/a/x.md",
                    "/a/y.md",
                    "/b.md"
                ]
            );
            assert_eq!(list_all(&s, &t, &st, "/", 0, 1).await, all);
            let top = ["[/a-sibling/]", "[/a/]", "/b.md"];
            assert_eq!(list_all(&s, &t, &st, "/", 1, 100).await, top);
            assert_eq!(list_all(&s, &t, &st, "/", 1, 1).await, top);
            let under_a = ["[/a/deep/]", "/a/x.md", "/a/y.md"];
            assert_eq!(list_all(&s, &t, &st, "/a/", 1, 1).await, under_a);
            assert_eq!(
                list_all(&s, &t, &st, "/a/deep/", 0, 2).await,
                ["/a/deep/er/w.md", "/a/deep/z.md"]
            );
            assert!(list_all(&s, &t, &st, "/nothing/", 0, 5).await.is_empty());

            // full view reads content
            let q = MemoryListQuery {
                prefix: "/a/".into(),
                depth: 1,
                view: MemoryView::Full,
                limit: 20,
                after: None,
            };
            let page = s.list_memories(&t, &st, &q).await.expect("list");
            let contents: Vec<Option<String>> = page
                .items
                .iter()
                .filter_map(|i| match i {
                    MemoryListItem::Memory(m) => Some(m.content.clone()),
                    MemoryListItem::Prefix(_) => None,
                })
                .collect();
            assert_eq!(
                contents,
                [Some("one".to_string()), Some("/a/y.md".to_string())]
            );

            // preconditions
            let stale = change(
                json!({"content": "two", "precondition": {"type": "content_sha256",
                "content_sha256": rules::sha256_hex("nope")}}),
            );
            assert_eq!(
                kind(s.update_memory(&t, &st, &a.id, stale, None).await),
                ErrorKind::MemoryPreconditionFailed
            );
            let ok = change(
                json!({"content": "two", "precondition": {"type": "content_sha256",
                "content_sha256": rules::sha256_hex("one")}}),
            );
            let a2 = s
                .update_memory(&t, &st, &a.id, ok, Some(&actor()))
                .await
                .expect("update");
            assert_eq!(a2.content.as_deref(), Some("two"));
            assert_ne!(a2.memory_version_id, a.memory_version_id);
            // no-op writes no version
            let same = s
                .update_memory(&t, &st, &a.id, change(json!({"content": "two"})), None)
                .await
                .expect("noop");
            assert_eq!(same.memory_version_id, a2.memory_version_id);

            // path conflicts: exact, file-as-directory, directory-as-file
            for p in ["/b.md", "/b.md/inner", "/a"] {
                let r = s
                    .update_memory(&t, &st, &a.id, change(json!({"path": p})), None)
                    .await;
                assert_eq!(kind(r), ErrorKind::MemoryPathConflict, "{p}");
            }
            let new = NewMemory {
                path: "/a/x.md".into(),
                content: String::new(),
            };
            assert_eq!(
                kind(s.create_memory(&t, &st, new, None).await),
                ErrorKind::MemoryPathConflict
            );

            // versions: newest first, filters, retrieve
            let f = MemoryVersionFilter {
                memory_id: Some(a.id.clone()),
                ..Default::default()
            };
            let page = s
                .list_memory_versions(&t, &st, &f, true, &ListQuery::new(20, true, None))
                .await
                .expect("v");
            let ops: Vec<_> = page.items.iter().map(|v| v.operation).collect();
            assert_eq!(
                ops,
                [
                    MemoryVersionOperation::Modified,
                    MemoryVersionOperation::Created
                ]
            );
            assert_eq!(page.items[1].content.as_deref(), Some("one"));
            assert_eq!(page.items[0].created_by, Some(actor()));
            let by_key = MemoryVersionFilter {
                api_key_id: Some("apikey_test".into()),
                ..Default::default()
            };
            let n = s
                .list_memory_versions(&t, &st, &by_key, false, &ListQuery::new(100, true, None))
                .await
                .expect("v");
            assert_eq!(n.items.len(), 7);
            assert!(n.items.iter().all(|v| v.content.is_none()));
            let by_session = MemoryVersionFilter {
                session_id: Some("apikey_test".into()),
                ..Default::default()
            };
            let q100 = ListQuery::new(100, true, None);
            let none = s
                .list_memory_versions(&t, &st, &by_session, false, &q100)
                .await;
            assert!(none.expect("v").items.is_empty());
            let mut seen = Vec::new();
            let mut q = ListQuery::new(2, true, None);
            loop {
                let p = s
                    .list_memory_versions(&t, &st, &MemoryVersionFilter::default(), false, &q)
                    .await
                    .expect("v");
                seen.extend(p.items.iter().map(|v| v.id.clone()));
                match p.next {
                    Some(c) => q = ListQuery::new(2, true, Some(c)),
                    None => break,
                }
            }
            assert_eq!(seen.len(), 7);
            assert_eq!(
                seen,
                n.items.iter().map(|v| v.id.clone()).collect::<Vec<_>>()
            );

            // redaction: not the head, then the old version
            let head = s
                .redact_memory_version(&t, &st, &a2.memory_version_id, None)
                .await;
            assert_eq!(kind(head), ErrorKind::InvalidRequest);
            let red = s
                .redact_memory_version(&t, &st, &a.memory_version_id, Some(&actor()))
                .await
                .expect("redact");
            assert!(red.redacted_at.is_some() && red.content.is_none() && red.path.is_none());
            let again = s
                .get_memory_version(&t, &st, &a.memory_version_id, true)
                .await
                .expect("get");
            assert_eq!(again, red);
            assert_eq!(
                s.get_memory(&t, &st, &a.id, true)
                    .await
                    .expect("get")
                    .content
                    .as_deref(),
                Some("two")
            );

            // delete with a precondition, then the deleted version remains
            let wrong = Some(rules::sha256_hex("one"));
            let r = s
                .delete_memory(&t, &st, &a.id, wrong.as_deref(), None)
                .await;
            assert_eq!(kind(r), ErrorKind::MemoryPreconditionFailed);
            let right = rules::sha256_hex("two");
            s.delete_memory(&t, &st, &a.id, Some(&right), None)
                .await
                .expect("delete");
            assert_eq!(
                kind(s.get_memory(&t, &st, &a.id, false).await),
                ErrorKind::NotFound
            );
            let page = s
                .list_memory_versions(&t, &st, &f, true, &ListQuery::new(20, true, None))
                .await
                .expect("v");
            assert_eq!(page.items[0].operation, MemoryVersionOperation::Deleted);
            assert_eq!(page.items[0].path.as_deref(), Some("/a/x.md"));
            assert_eq!(page.items[0].content, None);
            // now the last content version can be redacted
            s.redact_memory_version(&t, &st, &a2.memory_version_id, None)
                .await
                .expect("redact");

            // other tenants see nothing
            let o = tenant();
            assert_eq!(kind(s.get_memory_store(&o, &st).await), ErrorKind::NotFound);
            let q = MemoryListQuery {
                prefix: "/".into(),
                depth: 0,
                view: MemoryView::Basic,
                limit: 5,
                after: None,
            };
            assert_eq!(
                kind(s.list_memories(&o, &st, &q).await),
                ErrorKind::NotFound
            );
            let new = NewMemory {
                path: "/z".into(),
                content: String::new(),
            };
            assert_eq!(
                kind(s.create_memory(&o, &st, new, None).await),
                ErrorKind::NotFound
            );
            assert_eq!(
                kind(s.delete_memory_store(&o, &st).await),
                ErrorKind::NotFound
            );

            // deleting the store removes every row
            s.delete_memory_store(&t, &st).await.expect("delete store");
            for table in ["memories", "memory_versions"] {
                let sql = format!("SELECT COUNT(*) FROM {table} WHERE tenant_id = $1");
                let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
                    .bind(&t)
                    .fetch_one(s.reader())
                    .await
                    .expect("count");
                assert_eq!(n, 0, "{table}");
            }
        }
    }

    #[tokio::test]
    async fn archived_stores_are_read_only_and_full_stores_refuse_new_paths() {
        for (_dir, s) in stores().await {
            let t = tenant();
            let st = new_store(&s, &t).await;
            let m = put(&s, &t, &st, "/m", "x").await;
            let archived: MemoryStore =
                from_json(&s.archive_memory_store(&t, &st).await.expect("archive")).expect("j");
            assert!(archived.archived_at.is_some());
            let again: MemoryStore =
                from_json(&s.archive_memory_store(&t, &st).await.expect("archive")).expect("j");
            assert_eq!(again, archived);
            let new = NewMemory {
                path: "/n".into(),
                content: String::new(),
            };
            assert_eq!(
                kind(s.create_memory(&t, &st, new, None).await),
                ErrorKind::InvalidRequest
            );
            let r = s
                .update_memory(&t, &st, &m.id, change(json!({"content": "y"})), None)
                .await;
            assert_eq!(kind(r), ErrorKind::InvalidRequest);
            let upd =
                serde_json::from_value::<UpdateMemoryStoreParams>(json!({"name": "m"})).expect("p");
            assert_eq!(
                kind(s.update_memory_store(&t, &st, upd).await),
                ErrorKind::InvalidRequest
            );
            s.delete_memory(&t, &st, &m.id, None, None)
                .await
                .expect("delete still works");

            // the per-store cap, filled in one statement
            let full = new_store(&s, &t).await;
            sqlx::query(
                "INSERT INTO memories (id, tenant_id, memory_store_id, path, version_id, content_sha256, \
                 content_size_bytes, created_at, updated_at) \
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
                 SELECT 'mem_bulk' || i, $1, $2, '/bulk/' || i, 'memver_none', 'x', 0, 0, 0 FROM n",
            )
            .bind(&t)
            .bind(&full)
            .execute(s.writer())
            .await
            .expect("bulk insert");
            let new = NewMemory {
                path: "/one-too-many".into(),
                content: String::new(),
            };
            let err = s.create_memory(&t, &full, new, None).await;
            assert!(
                matches!(&err, Err(StoreError::Domain(e)) if e.message.contains("maximum of 2000")),
                "{err:?}"
            );
            s.delete_memory_store(&t, &full).await.expect("cleanup");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_preconditioned_updates_have_one_winner() {
        for (_dir, s) in stores().await {
            let t = tenant();
            let st = new_store(&s, &t).await;
            let m = put(&s, &t, &st, "/race", "base").await;
            let mut tasks = Vec::new();
            for i in 0..8 {
                let (s, t, st, id) = (s.clone(), t.clone(), st.clone(), m.id.clone());
                tasks.push(tokio::spawn(async move {
                    let c = change(json!({"content": format!("writer {i}"), "precondition":
                        {"type": "content_sha256", "content_sha256": rules::sha256_hex("base")}}));
                    s.update_memory(&t, &st, &id, c, None).await
                }));
            }
            let mut wins = 0;
            for task in tasks {
                match task.await.expect("join") {
                    Ok(_) => wins += 1,
                    Err(e) => {
                        assert_eq!(kind(Err::<(), _>(e)), ErrorKind::MemoryPreconditionFailed)
                    }
                }
            }
            assert_eq!(wins, 1);
        }
    }
}
