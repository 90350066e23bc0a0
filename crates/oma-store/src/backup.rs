//! Online snapshots of the embedded database, for `oma backup create`.

use std::path::Path;

use crate::{Backend, Result, Store, StoreError};

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
