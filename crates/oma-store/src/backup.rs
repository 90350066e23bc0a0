//! Online snapshots of the embedded database, for `oma backup create`, and of one tenant
//! (from whichever shard holds it) for `oma backup create --tenant`.

use std::path::{Path, PathBuf};

use sqlx::{Acquire, Connection};

use crate::router::TenantRouter;
use crate::shards::MAIN_SHARD;
use crate::tenant_copy::TenantCopy;
use crate::{Backend, Result, Store, StoreError};

/// What [`Store::snapshot_tenant_into`] wrote.
#[derive(Debug, Clone, Default)]
pub struct TenantSnapshot {
    /// Rows of the tenant's data copied (its `tenants` row aside).
    pub rows: u64,
    /// The blob keys the copied rows name: spilled events, files, skill versions' files.
    pub blob_keys: Vec<String>,
    /// The tenant's sessions (their workspace snapshots are blobs under `snapshots/<id>/`).
    pub sessions: Vec<String>,
}

impl Store {
    /// Writes a consistent copy of the SQLite database to `dest` while the server keeps
    /// writing. `VACUUM INTO` runs inside one read transaction, so the copy is exactly the
    /// database as of one commit; with WAL, writers carry on meanwhile. `dest` must not exist.
    ///
    /// PostgreSQL is backed up with its own tools (`pg_basebackup`, point-in-time recovery), so
    /// this refuses it.
    pub async fn snapshot_sqlite_into(&self, dest: &Path) -> Result<()> {
        if self.backend() != Backend::Sqlite {
            return Err(StoreError::Config(
                "a PostgreSQL database is backed up with PostgreSQL's own tools (pg_basebackup, \
                 point-in-time recovery), not by oma"
                    .into(),
            ));
        }
        let dest = dest.to_str().ok_or_else(|| {
            StoreError::Config(format!(
                "the snapshot path {} is not valid UTF-8",
                dest.display()
            ))
        })?;
        // VACUUM INTO takes an expression but not a bound parameter on every SQLite build the
        // Any driver may link, so the path goes in as a quoted literal (single quotes doubled).
        let sql = format!("VACUUM INTO '{}'", dest.replace('\'', "''"));
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(self.reader())
            .await?;
        Ok(())
    }

    /// Writes a new SQLite database at `dest` (which must not exist) holding one tenant: its
    /// `tenants` row and every row of its data, read from the shard that holds it (this store
    /// is the router database) inside ONE read transaction there, so the copy is the tenant
    /// as of one point while the server keeps writing (SQLite: the snapshot of a transaction's
    /// first read; PostgreSQL: `REPEATABLE READ`). API keys and the router's own tables are
    /// not copied. The working copy lives beside `dest` (`<dest>.copy`) and is removed.
    pub async fn snapshot_tenant_into(&self, tenant: &str, dest: &Path) -> Result<TenantSnapshot> {
        let created_at: Option<i64> =
            sqlx::query_scalar("SELECT created_at FROM tenants WHERE id = $1")
                .bind(tenant)
                .fetch_optional(self.reader())
                .await?;
        let Some(created_at) = created_at else {
            return Err(StoreError::Config(format!("there is no tenant `{tenant}`")));
        };
        let router = TenantRouter::open(self.clone()).await?;
        let shard = router.store_for(tenant);
        let work = PathBuf::from(format!("{}.copy", dest.display()));
        remove_sqlite_files(&work);
        let fresh = Store::connect(&format!("sqlite://{}", work.display())).await?;
        let copied = copy_tenant(&shard, &fresh, tenant, created_at).await;
        for s in router.shards() {
            if s.name != MAIN_SHARD {
                s.store.close().await;
            }
        }
        let result = match copied {
            Ok(rows) => match tenant_blobs(&fresh).await {
                Ok((blob_keys, sessions)) => {
                    fresh
                        .snapshot_sqlite_into(dest)
                        .await
                        .map(|()| TenantSnapshot {
                            rows,
                            blob_keys,
                            sessions,
                        })
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        fresh.close().await;
        remove_sqlite_files(&work);
        result
    }
}

fn remove_sqlite_files(db: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}

async fn copy_tenant(shard: &Store, fresh: &Store, tenant: &str, created_at: i64) -> Result<u64> {
    fresh.migrate_up().await?;
    sqlx::query("INSERT INTO tenants (id, created_at) VALUES ($1, $2)")
        .bind(tenant)
        .bind(created_at)
        .execute(fresh.writer())
        .await?;
    let copy = TenantCopy::new(shard, fresh, tenant).await?;
    let mut conn = shard.reader().acquire().await?;
    let mut tx = match shard.backend() {
        // Deferred: the snapshot is taken by the first read below and held to the end.
        Backend::Sqlite => conn.begin().await?,
        Backend::Postgres => {
            conn.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await?
        }
    };
    sqlx::query("SELECT COUNT(*) FROM tenants")
        .execute(&mut *tx)
        .await?;
    let rows = copy
        .copy_all(Some(tx.acquire().await?), &mut |_| {})
        .await?;
    tx.rollback().await?;
    Ok(rows)
}

/// The blob keys named by the rows of `db` (one tenant's copy) and its session ids.
async fn tenant_blobs(db: &Store) -> Result<(Vec<String>, Vec<String>)> {
    let mut keys: Vec<String> =
        sqlx::query_scalar("SELECT blob_key FROM events WHERE blob_key IS NOT NULL")
            .fetch_all(db.reader())
            .await?;
    keys.extend(
        sqlx::query_scalar::<_, String>("SELECT blob_key FROM files")
            .fetch_all(db.reader())
            .await?,
    );
    let manifests: Vec<String> = sqlx::query_scalar("SELECT files FROM skill_versions")
        .fetch_all(db.reader())
        .await?;
    for m in manifests {
        let files: Vec<serde_json::Value> = crate::from_json(&m)?;
        keys.extend(
            files
                .iter()
                .filter_map(|f| f.get("blob").and_then(|b| b.as_str()))
                .map(str::to_string),
        );
    }
    keys.sort();
    keys.dedup();
    let sessions: Vec<String> = sqlx::query_scalar("SELECT id FROM sessions ORDER BY id")
        .fetch_all(db.reader())
        .await?;
    Ok((keys, sessions))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[tokio::test]
    async fn snapshot_holds_committed_rows() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.db").display());
        let store = Store::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE t (x BIGINT)")
            .execute(store.writer())
            .await
            .unwrap();
        sqlx::query("INSERT INTO t (x) VALUES (1), (2)")
            .execute(store.writer())
            .await
            .unwrap();
        let dest = dir.path().join("it's a copy.db");
        store.snapshot_sqlite_into(&dest).await.unwrap();
        store.close().await;
        let copy = Store::connect(&format!("sqlite://{}", dest.display()))
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(copy.reader())
            .await
            .unwrap();
        assert_eq!(n, 2);
    }
}
