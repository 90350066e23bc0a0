//! Schema migrations, one folder per backend, embedded in the binary (see `build.rs`).
//!
//! Migrations are forward-only and released files never change (a test compares them with
//! `migrations/released.sha256`). A database that has applied a migration this binary does not
//! know was written by a newer oma: the server refuses to run against it rather than guess.
//!
//! **Squashed baseline.** `migrations/<backend>/baseline/NNNN_baseline.sql` is the schema of
//! migrations `0001..NNNN` in one file. An empty database is created from the newest baseline
//! instead of replaying those files; later files apply on top as usual. The baseline is recorded
//! in `_sqlx_migrations` under version `-NNNN`: negative so it can never collide with a file's
//! version, and unknown (hence "newer") to binaries older than the baseline. A database that
//! applied `0001..NNNN` one by one records the baseline with [`Store::stamp_baseline`], after
//! which a future release may drop those files without that database looking foreign.
//!
//! The bookkeeping table is the one sqlx's migrator created (same columns, same SHA-384
//! checksums, same PostgreSQL advisory lock), so databases made by earlier oma releases are read
//! as they are.

use std::time::Instant;

use sha2::{Digest, Sha384};
use sqlx::{AnyConnection, Connection};

use crate::{Backend, Result, Store, StoreError};

include!(concat!(env!("OUT_DIR"), "/migration_files.rs"));

/// An embedded migration file.
#[derive(Debug, Clone, Copy)]
pub struct SourceFile {
    /// The file name, `NNNN_description.sql`.
    pub name: &'static str,
    pub sql: &'static str,
}

impl SourceFile {
    /// The number the file name starts with.
    pub fn version(&self) -> i64 {
        self.name
            .split_once('_')
            .and_then(|(v, _)| v.parse().ok())
            .unwrap_or(0)
    }

    /// What sqlx records as the description: the name without the number and `.sql`, `_` → ` `.
    pub fn description(&self) -> String {
        let rest = self.name.split_once('_').map_or(self.name, |(_, d)| d);
        rest.trim_end_matches(".sql").replace('_', " ")
    }

    /// The checksum recorded in `_sqlx_migrations` (SHA-384 of the file, as sqlx computes it).
    pub fn checksum(&self) -> Vec<u8> {
        Sha384::digest(self.sql.as_bytes()).to_vec()
    }
}

fn files(pairs: &'static [(&'static str, &'static str)]) -> Vec<SourceFile> {
    pairs
        .iter()
        .map(|&(name, sql)| SourceFile { name, sql })
        .collect()
}

/// The ordinary migration files of `backend`, in order.
pub fn migration_files(backend: Backend) -> Vec<SourceFile> {
    files(match backend {
        Backend::Sqlite => SQLITE_FILES,
        Backend::Postgres => POSTGRES_FILES,
    })
}

/// The squashed baselines of `backend`, in order; the last one creates new databases.
pub fn baseline_files(backend: Backend) -> Vec<SourceFile> {
    files(match backend {
        Backend::Sqlite => SQLITE_BASELINES,
        Backend::Postgres => POSTGRES_BASELINES,
    })
}

/// The version under which a baseline standing for `0001..covers` is recorded.
fn baseline_row_version(covers: i64) -> i64 {
    -covers
}

fn baseline_description(covers: i64) -> String {
    format!("baseline (squashes 0001..{covers:04})")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The file's number; for a baseline, the last migration it stands for.
    pub version: i64,
    pub description: String,
    /// Whether this is a squashed baseline rather than an ordinary file.
    pub baseline: bool,
}

/// Where a database stands relative to this binary's migrations.
#[derive(Debug, Clone, Default)]
pub struct MigrationStatus {
    /// The baseline recorded in the database (created from it, or stamped), if any.
    pub baseline: Option<Migration>,
    /// Ordinary migrations applied one by one.
    pub applied: Vec<Migration>,
    /// What `migrate up` would apply, in order (a baseline first for an empty database).
    pub pending: Vec<Migration>,
    /// Versions applied in the database that this binary does not know (a newer oma wrote
    /// them); a baseline appears as its negative row version.
    pub unknown: Vec<i64>,
    /// The newest baseline this binary ships, when the database applied every file it stands
    /// for one by one but has not recorded it (`oma migrate stamp-baseline` does).
    pub stampable: Option<Migration>,
}

impl MigrationStatus {
    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && self.unknown.is_empty()
    }
    pub fn latest_known(&self) -> i64 {
        self.applied
            .iter()
            .chain(&self.pending)
            .chain(&self.baseline)
            .map(|m| m.version)
            .max()
            .unwrap_or(0)
    }
}

/// What [`Store::stamp_baseline`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamped {
    /// The baseline is now recorded.
    Recorded(Migration),
    /// It was recorded already (or the database was created from it): nothing changed.
    AlreadyRecorded(Migration),
}

/// One row of `_sqlx_migrations`.
struct Applied {
    version: i64,
    checksum: Vec<u8>,
}

/// The database's migration rows, read and checked against this binary.
struct State {
    rows: Vec<Applied>,
    files: Vec<SourceFile>,
    baselines: Vec<SourceFile>,
}

impl State {
    fn has(&self, version: i64) -> bool {
        self.rows.iter().any(|r| r.version == version)
    }

    /// The newest known baseline recorded in the database.
    fn recorded_baseline(&self) -> Option<&SourceFile> {
        self.baselines
            .iter()
            .rev()
            .find(|b| self.has(baseline_row_version(b.version())))
    }

    /// Files the recorded baseline stands for need no row of their own.
    fn covered_upto(&self) -> i64 {
        self.recorded_baseline().map_or(0, SourceFile::version)
    }

    fn unknown(&self) -> Vec<i64> {
        self.rows
            .iter()
            .map(|r| r.version)
            .filter(|&v| {
                if v < 0 {
                    !self
                        .baselines
                        .iter()
                        .any(|b| baseline_row_version(b.version()) == v)
                } else {
                    !self.files.iter().any(|f| f.version() == v)
                }
            })
            .collect()
    }

    /// Steps that bring the database up to date: the newest baseline when it is empty, then
    /// every file after what is recorded.
    fn plan(&self, use_baseline: bool) -> (Option<SourceFile>, Vec<SourceFile>) {
        let baseline = if self.rows.is_empty() && use_baseline {
            self.baselines.last().copied()
        } else {
            None
        };
        let covered = baseline.map_or(self.covered_upto(), |b| b.version());
        let files = self
            .files
            .iter()
            .filter(|f| f.version() > covered && !self.has(f.version()))
            .copied()
            .collect();
        (baseline, files)
    }

    /// Applied files whose recorded checksum differs from the embedded file.
    fn changed(&self) -> Vec<i64> {
        self.rows
            .iter()
            .filter(|r| {
                let file = if r.version < 0 {
                    self.baselines
                        .iter()
                        .find(|b| baseline_row_version(b.version()) == r.version)
                } else {
                    self.files.iter().find(|f| f.version() == r.version)
                };
                file.is_some_and(|f| f.checksum() != r.checksum)
            })
            .map(|r| r.version)
            .collect()
    }

    fn status(&self) -> MigrationStatus {
        let mut status = MigrationStatus {
            baseline: self.recorded_baseline().map(baseline_entry),
            unknown: self.unknown(),
            ..MigrationStatus::default()
        };
        for f in &self.files {
            if self.has(f.version()) {
                status.applied.push(file_entry(f));
            }
        }
        let (baseline, pending) = self.plan(true);
        status.pending = baseline
            .iter()
            .map(baseline_entry)
            .chain(pending.iter().map(file_entry))
            .collect();
        if let Some(newest) = self.baselines.last()
            && !self.rows.is_empty()
            && self.recorded_baseline().map(SourceFile::version) != Some(newest.version())
            && self.missing_for(newest).is_empty()
        {
            status.stampable = Some(baseline_entry(newest));
        }
        status
    }

    /// Files `baseline` stands for that the database has not applied (individually or through
    /// an older recorded baseline).
    fn missing_for(&self, baseline: &SourceFile) -> Vec<i64> {
        let covered = self.covered_upto();
        self.files
            .iter()
            .map(SourceFile::version)
            .filter(|&v| v <= baseline.version() && v > covered && !self.has(v))
            .collect()
    }
}

fn file_entry(f: &SourceFile) -> Migration {
    Migration {
        version: f.version(),
        description: f.description(),
        baseline: false,
    }
}

fn baseline_entry(b: &SourceFile) -> Migration {
    Migration {
        version: b.version(),
        description: baseline_description(b.version()),
        baseline: true,
    }
}

fn newer_schema_error(unknown: &[i64], latest_known: i64) -> StoreError {
    let shown: Vec<String> = unknown
        .iter()
        .map(|v| {
            if *v < 0 {
                format!("baseline {:04}", -v)
            } else {
                format!("{v:04}")
            }
        })
        .collect();
    StoreError::Config(format!(
        "the database schema is newer than this oma binary: it has migration(s) {}, this binary \
         knows migrations up to {latest_known:04}. Upgrade oma to the version that wrote it (or \
         newer) instead of running an older binary against it.",
        shown.join(", ")
    ))
}

const CREATE_TABLE_SQLITE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
)";

const CREATE_TABLE_POSTGRES: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    success BOOLEAN NOT NULL,
    checksum BYTEA NOT NULL,
    execution_time BIGINT NOT NULL
)";

impl Store {
    pub async fn migration_status(&self) -> Result<MigrationStatus> {
        let mut conn = self.reader().acquire().await?;
        Ok(self.read_state(&mut conn).await?.status())
    }

    /// Fails with a message saying how to fix it when the schema is newer than this binary.
    pub async fn ensure_not_newer(&self) -> Result<MigrationStatus> {
        let status = self.migration_status().await?;
        if !status.unknown.is_empty() {
            return Err(newer_schema_error(&status.unknown, status.latest_known()));
        }
        Ok(status)
    }

    /// Applies every pending migration (an empty database is created from the newest
    /// baseline) and returns what it applied. Refuses a schema newer than this binary.
    pub async fn migrate_up(&self) -> Result<Vec<Migration>> {
        self.migrate(true).await
    }

    /// Like [`Store::migrate_up`], but an empty database replays every file one by one, as
    /// oma releases before the baseline did (tests build such databases with it).
    pub async fn migrate_up_replaying_files(&self) -> Result<Vec<Migration>> {
        self.migrate(false).await
    }

    /// Records the newest baseline as applied to a database that applied every file it
    /// stands for one by one. Twice is a no-op; an empty or partly migrated database is
    /// refused with what to run instead.
    pub async fn stamp_baseline(&self) -> Result<Stamped> {
        let mut conn = self.writer().acquire().await?;
        let key = self.lock(&mut conn).await?;
        let result = self.stamp_locked(&mut conn).await;
        self.unlock(conn, key).await;
        result
    }

    async fn stamp_locked(&self, conn: &mut AnyConnection) -> Result<Stamped> {
        let Some(newest) = baseline_files(self.backend()).last().copied() else {
            return Err(StoreError::Config(
                "this oma binary ships no squashed baseline".into(),
            ));
        };
        let mut tx = self.begin_migration(conn).await?;
        let state = self.read_state(&mut tx).await?;
        check_known(&state)?;
        let entry = baseline_entry(&newest);
        if state.has(baseline_row_version(newest.version())) {
            return Ok(Stamped::AlreadyRecorded(entry));
        }
        if state.rows.is_empty() {
            return Err(StoreError::Config(
                "this database has no schema yet, so there is nothing to stamp: run `oma \
                 migrate up`, which creates it from the baseline directly"
                    .into(),
            ));
        }
        let missing = state.missing_for(&newest);
        if !missing.is_empty() {
            let list: Vec<String> = missing.iter().map(|v| format!("{v:04}")).collect();
            return Err(StoreError::Config(format!(
                "the baseline stands for migrations 0001..{:04}, but this database has not \
                 applied {}: run `oma migrate up` first, then `oma migrate stamp-baseline`",
                newest.version(),
                list.join(", ")
            )));
        }
        record(&mut tx, &newest, true, 0).await?;
        tx.commit().await?;
        Ok(Stamped::Recorded(entry))
    }

    async fn migrate(&self, use_baseline: bool) -> Result<Vec<Migration>> {
        let mut conn = self.writer().acquire().await?;
        let key = self.lock(&mut conn).await?;
        let result = self.migrate_locked(&mut conn, use_baseline).await;
        self.unlock(conn, key).await;
        result
    }

    async fn migrate_locked(
        &self,
        conn: &mut AnyConnection,
        use_baseline: bool,
    ) -> Result<Vec<Migration>> {
        // One transaction for everything: DDL is transactional on both backends, so a failing
        // migration leaves the database exactly as it was.
        let mut tx = self.begin_migration(conn).await?;
        let state = self.read_state(&mut tx).await?;
        check_known(&state)?;
        let (baseline, files) = state.plan(use_baseline);
        self.create_table(&mut tx).await?;
        let mut done = Vec::new();
        let steps = baseline
            .iter()
            .map(|b| (b, true))
            .chain(files.iter().map(|f| (f, false)));
        for (step, is_baseline) in steps {
            let started = Instant::now();
            sqlx::raw_sql(step.sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::Config(format!("migration {} failed: {e}", step.name)))?;
            let nanos = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
            record(&mut tx, step, is_baseline, nanos).await?;
            done.push(if is_baseline {
                baseline_entry(step)
            } else {
                file_entry(step)
            });
        }
        tx.commit().await?;
        Ok(done)
    }

    /// Keeps other processes from migrating this database until [`Store::unlock`]:
    /// PostgreSQL takes sqlx's advisory lock (the same key, so older oma binaries wait too);
    /// SQLite serialises through `BEGIN IMMEDIATE` in [`Store::begin_migration`].
    async fn lock(&self, conn: &mut AnyConnection) -> Result<Option<i64>> {
        if self.backend() == Backend::Sqlite {
            return Ok(None);
        }
        let db: String = sqlx::query_scalar("SELECT current_database()::text")
            .fetch_one(&mut *conn)
            .await?;
        let key = 0x3d32ad9e_i64 * i64::from(crc32fast::hash(db.as_bytes()));
        // Wrapped in a count: the Any driver cannot decode PostgreSQL's `void`.
        sqlx::query("SELECT COUNT(*) FROM (SELECT pg_advisory_lock($1)) AS l")
            .bind(key)
            .execute(&mut *conn)
            .await?;
        Ok(Some(key))
    }

    async fn unlock(&self, mut conn: sqlx::pool::PoolConnection<sqlx::Any>, key: Option<i64>) {
        let Some(key) = key else { return };
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(key)
            .execute(&mut *conn)
            .await;
        if unlocked.is_err() {
            // A pooled connection must not keep the lock: close it instead of returning it.
            let _ = conn.detach().close().await;
        }
    }

    async fn begin_migration<'c>(
        &self,
        conn: &'c mut AnyConnection,
    ) -> Result<sqlx::Transaction<'c, sqlx::Any>> {
        Ok(match self.backend() {
            // IMMEDIATE takes the write lock up front, so two processes migrating one file
            // queue instead of both planning the same steps.
            Backend::Sqlite => conn.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => conn.begin().await?,
        })
    }

    async fn create_table(&self, conn: &mut AnyConnection) -> Result<()> {
        let sql = match self.backend() {
            Backend::Sqlite => CREATE_TABLE_SQLITE,
            Backend::Postgres => CREATE_TABLE_POSTGRES,
        };
        sqlx::raw_sql(sql).execute(conn).await?;
        Ok(())
    }

    async fn read_state(&self, conn: &mut AnyConnection) -> Result<State> {
        let backend = self.backend();
        let exists_sql = match backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
            }
        };
        let exists: i64 = sqlx::query_scalar(exists_sql).fetch_one(&mut *conn).await?;
        let mut rows = Vec::new();
        if exists > 0 {
            let failed: Option<i64> = sqlx::query_scalar(
                "SELECT version FROM _sqlx_migrations WHERE success = FALSE ORDER BY version LIMIT 1",
            )
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(v) = failed {
                return Err(StoreError::Config(format!(
                    "migration {v} is recorded as failed partway (written outside a \
                     transaction): repair the schema by hand, then delete its row from \
                     _sqlx_migrations and run `oma migrate up`"
                )));
            }
            let found: Vec<(i64, Vec<u8>)> =
                sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
                    .fetch_all(&mut *conn)
                    .await?;
            rows = found
                .into_iter()
                .map(|(version, checksum)| Applied { version, checksum })
                .collect();
        }
        Ok(State {
            rows,
            files: migration_files(backend),
            baselines: baseline_files(backend),
        })
    }
}

/// Refuses a database written by a newer oma, or one whose applied files differ from ours.
fn check_known(state: &State) -> Result<()> {
    let unknown = state.unknown();
    if !unknown.is_empty() {
        return Err(newer_schema_error(&unknown, state.status().latest_known()));
    }
    let changed = state.changed();
    if !changed.is_empty() {
        return Err(StoreError::Config(format!(
            "migration(s) {changed:?} applied to this database differ from the files in this \
             binary: released migrations must never change; restore the released file and add \
             a new migration instead"
        )));
    }
    Ok(())
}

async fn record(
    conn: &mut AnyConnection,
    step: &SourceFile,
    is_baseline: bool,
    nanos: i64,
) -> Result<()> {
    let (version, description) = if is_baseline {
        (
            baseline_row_version(step.version()),
            baseline_description(step.version()),
        )
    } else {
        (step.version(), step.description())
    };
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, $2, TRUE, $3, $4)",
    )
    .bind(version)
    .bind(description)
    .bind(step.checksum())
    .bind(nanos)
    .execute(conn)
    .await?;
    Ok(())
}
