//! Schema migrations, one folder per backend, embedded in the binary.
//!
//! Migrations are forward-only. A database that has applied a migration this binary does not
//! know was written by a newer oma: the server refuses to run against it rather than guess.

use sqlx::migrate::Migrator;

use crate::{Backend, Result, Store, StoreError};

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: i64,
    pub description: String,
}

/// Where a database stands relative to this binary's migrations.
#[derive(Debug, Clone, Default)]
pub struct MigrationStatus {
    pub applied: Vec<Migration>,
    pub pending: Vec<Migration>,
    /// Versions applied in the database that this binary does not know (a newer oma wrote them).
    pub unknown: Vec<i64>,
}

impl MigrationStatus {
    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && self.unknown.is_empty()
    }
    pub fn latest_known(&self) -> i64 {
        self.applied
            .iter()
            .chain(&self.pending)
            .map(|m| m.version)
            .max()
            .unwrap_or(0)
    }
}

fn migrator(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    }
}

impl Store {
    pub async fn migration_status(&self) -> Result<MigrationStatus> {
        let known = migrator(self.backend());
        let applied_versions = self.applied_versions().await?;
        let mut status = MigrationStatus::default();
        for m in known.iter().filter(|m| m.migration_type.is_up_migration()) {
            let entry = Migration {
                version: m.version,
                description: m.description.to_string(),
            };
            if applied_versions.contains(&m.version) {
                status.applied.push(entry);
            } else {
                status.pending.push(entry);
            }
        }
        status.unknown = applied_versions
            .into_iter()
            .filter(|v| !known.iter().any(|m| m.version == *v))
            .collect();
        Ok(status)
    }

    /// Fails with a message saying how to fix it when the schema is newer than this binary.
    pub async fn ensure_not_newer(&self) -> Result<MigrationStatus> {
        let status = self.migration_status().await?;
        if let Some(v) = status.unknown.iter().max() {
            return Err(StoreError::Config(format!(
                "the database schema is newer than this oma binary: it has migration {v}, this \
                 binary knows migrations up to {}. Upgrade oma to the version that wrote it (or \
                 newer) instead of running an older binary against it.",
                status.latest_known()
            )));
        }
        Ok(status)
    }

    /// Applies every pending migration. Refuses a schema newer than this binary.
    pub async fn migrate_up(&self) -> Result<Vec<Migration>> {
        let before = self.ensure_not_newer().await?;
        migrator(self.backend()).run(self.writer()).await?;
        Ok(before.pending)
    }

    async fn applied_versions(&self) -> Result<Vec<i64>> {
        let exists_sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
            }
        };
        let exists: i64 = sqlx::query_scalar(exists_sql)
            .fetch_one(self.reader())
            .await?;
        if exists == 0 {
            return Ok(Vec::new());
        }
        let versions: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                .fetch_all(self.reader())
                .await?;
        Ok(versions)
    }
}
