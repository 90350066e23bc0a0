//! Whole-database figures for metrics: size on disk and the input waiting in session queues.

use crate::{Backend, Result, Store};

impl Store {
    /// The database's size in bytes: SQLite's pages (main file, without the WAL), or
    /// `pg_database_size` of the current PostgreSQL database.
    pub async fn database_bytes(&self) -> Result<i64> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT p.page_count * s.page_size FROM pragma_page_count() p, pragma_page_size() s"
            }
            Backend::Postgres => "SELECT pg_database_size(current_database())",
        };
        let (bytes,): (i64,) = sqlx::query_as(sql).fetch_one(self.reader()).await?;
        Ok(bytes)
    }

    /// Client events waiting in session input queues (all tenants).
    pub async fn queued_inputs(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM session_inputs")
            .fetch_one(self.reader())
            .await?;
        Ok(n)
    }
}
