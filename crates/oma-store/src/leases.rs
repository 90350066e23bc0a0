//! Session leases and the node registry: which node's host owns a session (DESIGN principle 2).
//!
//! A lease is `(node, epoch, expires_at)` on the session's row of `session_leases`. A node
//! claims a session when its lease is free, expired or already the node's own (a restarted
//! node takes its sessions back at once); each claim increments the epoch. Every step a host
//! commits carries its [`Fence`] and fails with [`StoreError::Fenced`] unless the lease is
//! still that host's and unexpired, so a paused or partitioned owner cannot append after
//! another node took over. Expiry is judged by the database clock, never a node's, with one
//! boundary everywhere: a lease is live while `expires_at > now` and expired from then on (a
//! claim, a fence check and the orphan sweep never disagree about the same instant).

use crate::{Backend, Result, Store, StoreError};

/// The fencing token a host's commits carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub node_id: String,
    pub epoch: i64,
}

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The session is this node's with this fence.
    Won(Fence),
    /// Another node holds an unexpired lease.
    Held { node_id: String },
}

/// A node as the registry knows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct NodeRow {
    pub node_id: String,
    pub address: String,
    pub version: String,
    /// `serving`, `draining` or `stopped`.
    pub state: String,
    pub started_at: i64,
    /// Microseconds of the database clock.
    pub heartbeat_at: i64,
    /// Unexpired leases the node holds.
    pub leases: i64,
    /// Microseconds since its last heartbeat, by the database clock.
    pub silent_for: i64,
}

/// `sql` with `{now}` standing for the database clock. The text is a constant of this module.
fn with_now(backend: Backend, sql: &'static str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql.replace("{now}", now_sql(backend)))
}

/// The database clock, in microseconds since the epoch, as an SQL expression.
pub(crate) fn now_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)",
        Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)",
    }
}

impl Store {
    /// Claims `session` for `node` for `ttl_ms`, if it is free, expired or already `node`'s.
    pub async fn claim_lease(
        &self,
        tenant: &str,
        session: &str,
        node: &str,
        ttl_ms: i64,
    ) -> Result<Claim> {
        let won: Option<i64> = sqlx::query_scalar(with_now(
            self.backend(),
            "INSERT INTO session_leases (session_id, tenant_id, node_id, epoch, expires_at) \
             VALUES ($1, $2, $3, 1, {now} + $4) \
             ON CONFLICT (session_id) DO UPDATE SET node_id = excluded.node_id, \
             epoch = session_leases.epoch + 1, expires_at = excluded.expires_at \
             WHERE session_leases.expires_at <= {now} OR session_leases.node_id = excluded.node_id \
             RETURNING epoch",
        ))
        .bind(session)
        .bind(tenant)
        .bind(node)
        .bind(ttl_ms * 1000)
        .fetch_optional(self.writer())
        .await?;
        if let Some(epoch) = won {
            return Ok(Claim::Won(Fence {
                node_id: node.to_string(),
                epoch,
            }));
        }
        let holder: Option<String> =
            sqlx::query_scalar("SELECT node_id FROM session_leases WHERE session_id = $1")
                .bind(session)
                .fetch_optional(self.reader())
                .await?;
        Ok(Claim::Held {
            node_id: holder.unwrap_or_default(),
        })
    }

    /// Extends the unexpired leases `node` holds on `sessions` (those it runs a host for) to
    /// `ttl_ms` from now; returns how many. An expired lease is not revived: its host is
    /// fenced and the session is claimed afresh. A lease whose host is gone (it never released
    /// it) is not in `sessions`, so it runs out and the orphan sweep hands the session on.
    pub async fn renew_leases(&self, node: &str, sessions: &[String], ttl_ms: i64) -> Result<u64> {
        if sessions.is_empty() {
            return Ok(0);
        }
        let sql = match self.backend() {
            Backend::Postgres => {
                "UPDATE session_leases SET expires_at = {now} + $1 WHERE node_id = $2 AND expires_at > {now} \
                 AND session_id IN (SELECT jsonb_array_elements_text(CAST($3 AS jsonb)))"
            }
            Backend::Sqlite => {
                "UPDATE session_leases SET expires_at = {now} + $1 WHERE node_id = $2 AND expires_at > {now} \
                 AND session_id IN (SELECT value FROM json_each($3))"
            }
        };
        let done = sqlx::query(with_now(self.backend(), sql))
            .bind(ttl_ms * 1000)
            .bind(node)
            .bind(serde_json::to_string(sessions).unwrap_or_else(|_| "[]".into()))
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }

    /// Gives a session up (its host is leaving). Fenced: a lease claimed since is untouched.
    pub async fn release_lease(&self, session: &str, fence: &Fence) -> Result<()> {
        sqlx::query(
            "UPDATE session_leases SET expires_at = 0 WHERE session_id = $1 AND node_id = $2 AND epoch = $3",
        )
        .bind(session)
        .bind(&fence.node_id)
        .bind(fence.epoch)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Gives up every lease of `node` (it drains or stops); returns how many it released.
    pub async fn release_node_leases(&self, node: &str) -> Result<u64> {
        let done = sqlx::query(with_now(
            self.backend(),
            "UPDATE session_leases SET expires_at = 0 WHERE node_id = $1 AND expires_at > {now}",
        ))
        .bind(node)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    /// Sessions that need a host and have none: running, rescheduling or with queued input,
    /// and no unexpired lease (their owner stopped, crashed or lost its lease).
    pub async fn orphaned_sessions(&self) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(with_now(
            self.backend(),
            "SELECT n.tenant_id, n.id FROM ( \
               SELECT tenant_id, id FROM sessions WHERE status IN ('running', 'rescheduling') \
               UNION SELECT tenant_id, session_id FROM session_inputs) n \
             LEFT JOIN session_leases l ON l.session_id = n.id \
             WHERE l.session_id IS NULL OR l.expires_at <= {now}",
        ))
        .fetch_all(self.reader())
        .await?)
    }

    /// The sessions `node` holds unexpired leases on: after a restart under the same name,
    /// the node takes them back at once instead of waiting for them to expire.
    pub async fn leased_sessions(&self, node: &str) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(with_now(
            self.backend(),
            "SELECT tenant_id, session_id FROM session_leases WHERE node_id = $1 AND expires_at > {now}",
        ))
        .bind(node)
        .fetch_all(self.reader())
        .await?)
    }

    /// The node holding an unexpired lease on `session`, if any.
    pub async fn lease_holder(&self, session: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(with_now(
            self.backend(),
            "SELECT node_id FROM session_leases WHERE session_id = $1 AND expires_at > {now}",
        ))
        .bind(session)
        .fetch_optional(self.reader())
        .await?)
    }

    /// Registers `node` (or refreshes its row after a restart) as serving at `address`.
    pub async fn register_node(&self, node: &str, address: &str, version: &str) -> Result<()> {
        sqlx::query(with_now(
            self.backend(),
            "INSERT INTO cluster_nodes (node_id, address, version, state, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, 'serving', {now}, {now}) \
             ON CONFLICT (node_id) DO UPDATE SET address = excluded.address, version = excluded.version, \
             state = 'serving', started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at"
        ))
        .bind(node)
        .bind(address)
        .bind(version)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Records that `node` is alive, and in which state (`serving`, `draining`, `stopped`).
    pub async fn node_heartbeat(&self, node: &str, state: &str) -> Result<()> {
        sqlx::query(with_now(
            self.backend(),
            "UPDATE cluster_nodes SET heartbeat_at = {now}, state = $1 WHERE node_id = $2",
        ))
        .bind(state)
        .bind(node)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Forgets nodes silent for longer than `silent_ms` that hold no live lease (crashed or
    /// stopped for good; a node started under a fresh name each run leaves one row per run).
    pub async fn forget_silent_nodes(&self, silent_ms: i64) -> Result<u64> {
        let done = sqlx::query(with_now(
            self.backend(),
            "DELETE FROM cluster_nodes WHERE heartbeat_at < {now} - $1 AND NOT EXISTS ( \
             SELECT 1 FROM session_leases l WHERE l.node_id = cluster_nodes.node_id AND l.expires_at > {now})",
        ))
        .bind(silent_ms * 1000)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    /// Every registered node with its unexpired leases, most recently alive first.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>> {
        Ok(sqlx::query_as(with_now(
            self.backend(),
            "SELECT n.node_id, n.address, n.version, n.state, n.started_at, n.heartbeat_at, \
             (SELECT COUNT(*) FROM session_leases l WHERE l.node_id = n.node_id AND l.expires_at > {now}) AS leases, \
             {now} - n.heartbeat_at AS silent_for \
             FROM cluster_nodes n ORDER BY n.heartbeat_at DESC, n.node_id",
        ))
        .fetch_all(self.reader())
        .await?)
    }
}

/// Checks, inside a step's transaction, that `fence` still owns `session`. The row is
/// updated (to itself) so that PostgreSQL locks it until the step commits: a claim that
/// races the step waits for it, and sees its events when it loads the log.
pub(crate) async fn check_fence(
    store: &Store,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    session: &str,
    fence: &Fence,
) -> Result<()> {
    let done = sqlx::query(with_now(
        store.backend(),
        "UPDATE session_leases SET expires_at = expires_at \
         WHERE session_id = $1 AND node_id = $2 AND epoch = $3 AND expires_at > {now}",
    ))
    .bind(session)
    .bind(&fence.node_id)
    .bind(fence.epoch)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Fenced);
    }
    Ok(())
}
