//! The router database's view of the shards (migration 0018): which databases hold tenants,
//! which tenant lives where, the journal of moves in progress, and each shard's write fence.
//!
//! The router database is itself the shard [`MAIN_SHARD`]; a tenant without a `tenant_shard`
//! row (every tenant of a deployment that never added a shard) lives there.

use oma_core::{Error, time};

use crate::{Backend, Result, Store, StoreError};

/// The name of the router database as a shard.
pub const MAIN_SHARD: &str = "main";

/// The key class of the advisory locks the PostgreSQL fence trigger takes (any constant that
/// no other user of advisory locks in the database picks).
const FENCE_LOCK_CLASS: i32 = 7043;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardStatus {
    /// New tenants may land here.
    Open,
    /// Tenants are being moved off; none lands here.
    Draining,
    /// Keeps its tenants; none lands here (also every dedicated shard).
    Full,
}

impl ShardStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ShardStatus::Open => "open",
            ShardStatus::Draining => "draining",
            ShardStatus::Full => "full",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "open" => Ok(ShardStatus::Open),
            "draining" => Ok(ShardStatus::Draining),
            "full" => Ok(ShardStatus::Full),
            other => Err(StoreError::Corrupt(format!(
                "unknown shard status `{other}`"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRow {
    pub name: String,
    /// The database URL; empty for [`MAIN_SHARD`] (the router database itself).
    pub url: String,
    pub status: ShardStatus,
    /// The tenant this shard was created for (`oma tenants create --dedicated`).
    pub dedicated_to: Option<String>,
    pub tenant_count: i64,
    pub size_bytes: i64,
    pub created_at: i64,
}

/// A move in progress, as its journal records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveRow {
    pub tenant: String,
    pub from_shard: String,
    pub to_shard: String,
    pub phase: MovePhase,
    pub rows_copied: i64,
    pub started_at: i64,
}

/// Where a move is. Each phase is recorded before its work starts, so a mover that crashed
/// picks up at the phase it was in (every phase can be run again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MovePhase {
    /// Copying while the tenant keeps writing (changes are logged and replayed).
    Copying,
    /// Writes are fenced; the last changes are copied and the copy verified.
    Fenced,
    /// The router points at the new shard; the old copy is being deleted.
    Switched,
}

impl MovePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            MovePhase::Copying => "copying",
            MovePhase::Fenced => "fenced",
            MovePhase::Switched => "switched",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "copying" => Ok(MovePhase::Copying),
            "fenced" => Ok(MovePhase::Fenced),
            "switched" => Ok(MovePhase::Switched),
            other => Err(StoreError::Corrupt(format!("unknown move phase `{other}`"))),
        }
    }
}

/// A tenant's fence on one shard (see migration 0018).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FencePhase {
    Copying,
    Fenced,
    Moved,
}

impl FencePhase {
    fn as_str(self) -> &'static str {
        match self {
            FencePhase::Copying => "copying",
            FencePhase::Fenced => "fenced",
            FencePhase::Moved => "moved",
        }
    }
}

type ShardTuple = (String, String, String, Option<String>, i64, i64, i64);
type MoveTuple = (String, String, String, String, i64, i64);

/// Shard names appear in commands and logs: the same slugs as tenant names.
pub fn validate_shard_name(name: &str) -> Result<(), Error> {
    crate::tenants::validate_tenant_name(name).map_err(|_| {
        Error::invalid(format!(
            "invalid shard name `{name}`: use 1-63 characters of a-z, 0-9, `-` and `_`"
        ))
    })
}

impl Store {
    /// Records the router database as the shard `main` (idempotent).
    pub async fn ensure_main_shard(&self) -> Result<()> {
        let now = time::now_micros();
        sqlx::query(
            "INSERT INTO shard_pool (name, url, status, created_at, updated_at) \
             VALUES ($1, '', 'open', $2, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(MAIN_SHARD)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Registers a shard. Fails if the name is taken.
    pub async fn add_shard(
        &self,
        name: &str,
        url: &str,
        status: ShardStatus,
        dedicated_to: Option<&str>,
    ) -> Result<()> {
        validate_shard_name(name)?;
        let now = time::now_micros();
        let done = sqlx::query(
            "INSERT INTO shard_pool (name, url, status, dedicated_to, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(url)
        .bind(status.as_str())
        .bind(dedicated_to)
        .bind(now)
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::conflict(format!("a shard named `{name}` exists already")).into());
        }
        Ok(())
    }

    /// Every shard, `main` first, then by name; tenant counts are counted afresh.
    pub async fn shards(&self) -> Result<Vec<ShardRow>> {
        let rows: Vec<ShardTuple> = sqlx::query_as(
            "SELECT p.name, p.url, p.status, p.dedicated_to, \
               CASE WHEN p.name = $1 THEN \
                 (SELECT COUNT(*) FROM tenants t WHERE NOT EXISTS \
                   (SELECT 1 FROM tenant_shard s WHERE s.tenant_id = t.id AND s.shard <> $1)) \
               ELSE (SELECT COUNT(*) FROM tenant_shard s WHERE s.shard = p.name) END, \
               p.size_bytes, p.created_at \
             FROM shard_pool p ORDER BY CASE WHEN p.name = $1 THEN 0 ELSE 1 END, p.name",
        )
        .bind(MAIN_SHARD)
        .fetch_all(self.reader())
        .await?;
        rows.into_iter()
            .map(
                |(name, url, status, dedicated_to, tenant_count, size_bytes, created_at)| {
                    Ok(ShardRow {
                        name,
                        url,
                        status: ShardStatus::parse(&status)?,
                        dedicated_to,
                        tenant_count,
                        size_bytes,
                        created_at,
                    })
                },
            )
            .collect()
    }

    pub async fn shard(&self, name: &str) -> Result<ShardRow> {
        self.shards()
            .await?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "no shard named `{name}`: `oma shards list` shows them"
                ))
                .into()
            })
    }

    pub async fn set_shard_status(&self, name: &str, status: ShardStatus) -> Result<()> {
        let done =
            sqlx::query("UPDATE shard_pool SET status = $2, updated_at = $3 WHERE name = $1")
                .bind(name)
                .bind(status.as_str())
                .bind(time::now_micros())
                .execute(self.writer())
                .await?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found(format!("no shard named `{name}`")).into());
        }
        Ok(())
    }

    /// Records what the counts and sizes were when last measured (`oma shards list`).
    pub async fn record_shard_stats(&self, name: &str, tenants: i64, size: i64) -> Result<()> {
        sqlx::query(
            "UPDATE shard_pool SET tenant_count = $2, size_bytes = $3, updated_at = $4 WHERE name = $1",
        )
        .bind(name)
        .bind(tenants)
        .bind(size)
        .bind(time::now_micros())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Every tenant that does not live on `main`, with its shard.
    pub async fn tenant_routes(&self) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT tenant_id, shard FROM tenant_shard WHERE shard <> $1 ORDER BY tenant_id",
        )
        .bind(MAIN_SHARD)
        .fetch_all(self.reader())
        .await?)
    }

    /// The shard holding `tenant`.
    pub async fn shard_of(&self, tenant: &str) -> Result<String> {
        let shard: Option<String> =
            sqlx::query_scalar("SELECT shard FROM tenant_shard WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_optional(self.reader())
                .await?;
        Ok(shard.unwrap_or_else(|| MAIN_SHARD.to_string()))
    }

    /// Puts `tenant` on `shard` (a new tenant's placement, or a move's switch).
    pub async fn assign_tenant(&self, tenant: &str, shard: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO tenant_shard (tenant_id, shard, assigned_at) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id) DO UPDATE SET shard = excluded.shard, assigned_at = excluded.assigned_at",
        )
        .bind(tenant)
        .bind(shard)
        .bind(time::now_micros())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The open shard with the fewest tenants (ties by name), where a new tenant lands.
    pub async fn least_loaded_open_shard(&self) -> Result<String> {
        let open: Vec<ShardRow> = self
            .shards()
            .await?
            .into_iter()
            .filter(|s| s.status == ShardStatus::Open && s.dedicated_to.is_none())
            .collect();
        open.iter()
            .min_by(|a, b| {
                a.tenant_count
                    .cmp(&b.tenant_count)
                    .then(a.name.cmp(&b.name))
            })
            .map(|s| s.name.clone())
            .ok_or_else(|| {
                StoreError::Config(
                    "no shard is open for new tenants: `oma shards add` one or reopen one".into(),
                )
            })
    }

    // The journal of moves (router database).

    pub async fn begin_move(&self, tenant: &str, from: &str, to: &str) -> Result<MoveRow> {
        let now = time::now_micros();
        sqlx::query(
            "INSERT INTO tenant_moves (tenant_id, from_shard, to_shard, phase, started_at, updated_at) \
             VALUES ($1, $2, $3, 'copying', $4, $4)",
        )
        .bind(tenant)
        .bind(from)
        .bind(to)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(MoveRow {
            tenant: tenant.to_string(),
            from_shard: from.to_string(),
            to_shard: to.to_string(),
            phase: MovePhase::Copying,
            rows_copied: 0,
            started_at: now,
        })
    }

    pub async fn move_of(&self, tenant: &str) -> Result<Option<MoveRow>> {
        let row: Option<MoveTuple> = sqlx::query_as(
            "SELECT tenant_id, from_shard, to_shard, phase, rows_copied, started_at \
             FROM tenant_moves WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_optional(self.reader())
        .await?;
        row.map(
            |(tenant, from_shard, to_shard, phase, rows_copied, started_at)| {
                Ok(MoveRow {
                    tenant,
                    from_shard,
                    to_shard,
                    phase: MovePhase::parse(&phase)?,
                    rows_copied,
                    started_at,
                })
            },
        )
        .transpose()
    }

    pub async fn set_move_phase(&self, tenant: &str, phase: MovePhase, rows: i64) -> Result<()> {
        sqlx::query(
            "UPDATE tenant_moves SET phase = $2, rows_copied = $3, updated_at = $4 WHERE tenant_id = $1",
        )
        .bind(tenant)
        .bind(phase.as_str())
        .bind(rows)
        .bind(time::now_micros())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Switches the tenant to the move's target and records the phase, in one transaction:
    /// the router never points at a shard the journal does not know is complete.
    pub async fn switch_move(&self, tenant: &str, to: &str, rows: i64) -> Result<()> {
        let mut tx = self.writer().begin().await?;
        let now = time::now_micros();
        sqlx::query(
            "INSERT INTO tenant_shard (tenant_id, shard, assigned_at) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id) DO UPDATE SET shard = excluded.shard, assigned_at = excluded.assigned_at",
        )
        .bind(tenant)
        .bind(to)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE tenant_moves SET phase = 'switched', rows_copied = $2, updated_at = $3 WHERE tenant_id = $1",
        )
        .bind(tenant)
        .bind(rows)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn end_move(&self, tenant: &str) -> Result<()> {
        sqlx::query("DELETE FROM tenant_moves WHERE tenant_id = $1")
            .bind(tenant)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    pub async fn moves(&self) -> Result<Vec<MoveRow>> {
        let tenants: Vec<String> =
            sqlx::query_scalar("SELECT tenant_id FROM tenant_moves ORDER BY started_at")
                .fetch_all(self.reader())
                .await?;
        let mut out = Vec::new();
        for t in tenants {
            if let Some(m) = self.move_of(&t).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    // The fence (on the shard that holds the rows).

    /// Sets `tenant`'s fence on this shard. On PostgreSQL the change waits, under the
    /// tenant's advisory lock, for every transaction that wrote under the previous phase.
    pub async fn set_fence(
        &self,
        tenant: &str,
        phase: FencePhase,
        moved_to: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.fence_transaction(tenant).await?;
        sqlx::query(
            "INSERT INTO tenant_fences (tenant_id, phase, moved_to, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id) DO UPDATE SET phase = excluded.phase, moved_to = excluded.moved_to, \
             updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(phase.as_str())
        .bind(moved_to)
        .bind(time::now_micros())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A transaction that may change `tenant`'s fence: on PostgreSQL it holds the tenant's
    /// advisory lock exclusively, so it begins once every writer holding it shared (each
    /// write's trigger takes it) has committed.
    async fn fence_transaction(
        &self,
        tenant: &str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        let mut tx = self.writer().begin().await?;
        if self.backend() == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind(FENCE_LOCK_CLASS)
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// Lifts `tenant`'s fence on this shard (and forgets its logged changes).
    pub async fn clear_fence(&self, tenant: &str) -> Result<()> {
        let mut tx = self.fence_transaction(tenant).await?;
        sqlx::query("DELETE FROM tenant_fences WHERE tenant_id = $1")
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM tenant_changes WHERE tenant_id = $1")
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The phase of `tenant`'s fence on this shard, if it has one.
    pub async fn fence_of(&self, tenant: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT phase FROM tenant_fences WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_optional(self.reader())
                .await?,
        )
    }

    /// The size of this database in bytes (SQLite: pages in use; PostgreSQL: the database).
    pub async fn database_size(&self) -> Result<i64> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT (SELECT page_count FROM pragma_page_count()) * (SELECT page_size FROM pragma_page_size())"
            }
            Backend::Postgres => "SELECT CAST(pg_database_size(current_database()) AS BIGINT)",
        };
        Ok(sqlx::query_scalar(sql).fetch_one(self.reader()).await?)
    }
}
