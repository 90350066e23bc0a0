//! Moving a tenant to another shard while it runs (`oma tenants move`).
//!
//! 1. **copying**: the source logs every change of the tenant's rows (fence phase `copying`)
//!    while its rows are copied; then the log is replayed until it is nearly empty.
//! 2. **fenced**: the source refuses the tenant's writes (on PostgreSQL this waits for the
//!    writers already in flight); the last changes are replayed and the copy is verified
//!    table by table; the router switches the tenant in the same transaction that records the
//!    switch; the source keeps the fence as `moved`, so a node that still routes there is
//!    refused and re-routes. Writers wait out this phase and retry on the new shard.
//! 3. **switched**: after a grace period (nodes re-read the map), the old copy is deleted.
//!
//! The journal (`tenant_moves`) records each phase before its work starts, and every phase
//! can run again, so a mover that crashed is resumed by running the same command.

use std::time::{Duration, Instant};

use crate::shards::{FencePhase, MovePhase, MoveRow};
use crate::tenant_copy::TenantCopy;
use crate::{Result, Store, StoreError};

/// What the mover is doing, for a progress display.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    Copying { copied: u64, total: u64 },
    CatchingUp { pending: i64 },
    Fenced,
    Switched,
    Purging { deleted: u64, total: u64 },
    Done,
}

#[derive(Debug, Clone)]
pub struct MoveOptions {
    /// How long the old copy stays after the switch, so that every node re-reads the map
    /// first (longer than the nodes' refresh period).
    pub grace: Duration,
    /// Stop (as if crashed) once this phase is recorded: crash tests of the resume.
    pub stop_after: Option<MovePhase>,
}

impl Default for MoveOptions {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(2),
            stop_after: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct MoveReport {
    /// Rows the bulk copy wrote (0 when resumed past it).
    pub rows_copied: u64,
    /// Log entries replayed onto the new shard.
    pub changes_replayed: u64,
    /// How long the tenant's writes were refused (the fence to the switch).
    pub fenced_for: Duration,
    pub rows_deleted: u64,
    pub took: Duration,
}

/// The catch-up stops chasing the log once this few changes are left for the fence.
const FENCE_WHEN_PENDING_AT_MOST: i64 = 200;
const MAX_CATCH_UP_ROUNDS: usize = 50;

/// Runs (or resumes) the move journalled as `plan` from `from` to `to`; `router` is the
/// router database.
pub async fn run(
    router: &Store,
    from: &Store,
    to: &Store,
    plan: &MoveRow,
    opts: &MoveOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<MoveReport> {
    let started = Instant::now();
    let tenant = plan.tenant.as_str();
    let copy = TenantCopy::new(from, to, tenant).await?;
    let mut report = MoveReport::default();
    let mut phase = plan.phase;
    let stop = |p: MovePhase| -> Result<()> {
        if opts.stop_after == Some(p) {
            return Err(StoreError::Aborted(format!(
                "stopped after recording the {} phase, as asked",
                p.as_str()
            )));
        }
        Ok(())
    };

    if phase == MovePhase::Copying {
        stop(MovePhase::Copying)?;
        if from.fence_of(tenant).await?.as_deref() != Some("copying") {
            // Nothing was copied under a change log yet: start from an empty target.
            to.clear_fence(tenant).await?;
            to.delete_tenant_rows(tenant, &copy.tables).await?;
            from.set_fence(tenant, FencePhase::Copying, None).await?;
        }
        let total = u64::try_from(copy.source_rows().await?).unwrap_or(0);
        progress(Progress::Copying { copied: 0, total });
        report.rows_copied = copy
            .copy_all(None, &mut |copied| {
                progress(Progress::Copying { copied, total })
            })
            .await?;
        for _ in 0..MAX_CATCH_UP_ROUNDS {
            let pending = copy.pending_changes().await?;
            progress(Progress::CatchingUp { pending });
            if pending <= FENCE_WHEN_PENDING_AT_MOST {
                break;
            }
            // One round replays what was pending when it began: a tenant that writes
            // without pause cannot keep a round going for ever.
            let mut left = pending;
            while left > 0 {
                let n = copy.replay_changes().await?;
                if n == 0 {
                    break;
                }
                report.changes_replayed += n as u64;
                left -= i64::try_from(n).unwrap_or(i64::MAX);
            }
        }
        router
            .set_move_phase(
                tenant,
                MovePhase::Fenced,
                i64::try_from(report.rows_copied).unwrap_or(i64::MAX),
            )
            .await?;
        phase = MovePhase::Fenced;
    }

    if phase == MovePhase::Fenced {
        stop(MovePhase::Fenced)?;
        let fenced_at = Instant::now();
        from.set_fence(tenant, FencePhase::Fenced, None).await?;
        progress(Progress::Fenced);
        loop {
            let n = copy.replay_changes().await?;
            report.changes_replayed += n as u64;
            if n == 0 {
                break;
            }
        }
        let differences = copy.differences().await?;
        if !differences.is_empty() {
            let shown: Vec<String> = differences
                .iter()
                .map(|(t, a, b)| format!("{t}: {a} rows on the source, {b} on the target"))
                .collect();
            // The tenant stays fenced: running the command again retries from here, and
            // `--abort` lifts the fence.
            return Err(StoreError::Corrupt(format!(
                "the copy of tenant {tenant} does not match its source ({}); nothing was switched",
                shown.join("; ")
            )));
        }
        router
            .switch_move(
                tenant,
                &plan.to_shard,
                plan.rows_copied
                    .max(i64::try_from(report.rows_copied).unwrap_or(0)),
            )
            .await?;
        from.set_fence(tenant, FencePhase::Moved, Some(&plan.to_shard))
            .await?;
        report.fenced_for = fenced_at.elapsed();
        progress(Progress::Switched);
        phase = MovePhase::Switched;
        stop(MovePhase::Switched)?;
        tokio::time::sleep(opts.grace).await;
    }

    if phase == MovePhase::Switched {
        let total = u64::try_from(copy.source_rows().await?).unwrap_or(0);
        report.rows_deleted = copy
            .purge_source(&mut |deleted| progress(Progress::Purging { deleted, total }))
            .await?;
        router.end_move(tenant).await?;
    }
    progress(Progress::Done);
    report.took = started.elapsed();
    Ok(report)
}

/// Cancels a move that has not switched: lifts the fence on the source and deletes the
/// partial copy. A move that switched is finished instead (run it again).
pub async fn abort(router: &Store, from: &Store, to: &Store, plan: &MoveRow) -> Result<u64> {
    if plan.phase == MovePhase::Switched {
        return Err(StoreError::Config(format!(
            "tenant {} has switched to {} already: run the move again to finish it",
            plan.tenant, plan.to_shard
        )));
    }
    from.clear_fence(&plan.tenant).await?;
    let tables = from.tenant_tables().await?;
    let deleted = to.delete_tenant_rows(&plan.tenant, &tables).await?;
    router.end_move(&plan.tenant).await?;
    Ok(deleted)
}
