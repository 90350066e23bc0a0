//! `oma tenants create|list|move`: tenants, where they live, and moving one to another shard
//! while it runs.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use oma_store::shards::{MovePhase, MoveRow, ShardStatus};
use oma_store::tenant_move::{self, MoveOptions, MoveReport, Progress};
use oma_store::{Store, StoreError, TenantRouter};

use crate::config::StorageArgs;
use crate::shards;

#[derive(Subcommand)]
pub enum TenantAction {
    /// Create a tenant (an existing name is left as it is). It lands on the least-loaded open
    /// shard, or on a database of its own with `--dedicated URL`.
    Create {
        name: String,
        /// Give the tenant a database of its own (registered as the shard `tenant-NAME`).
        #[arg(long, value_name = "URL")]
        dedicated: Option<String>,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// List tenants and the shard each lives on (tab separated).
    List(StorageArgs),
    /// Move a tenant to another shard online: copy, catch up, a brief write fence, verify,
    /// switch, delete the old copy. Running it again resumes a move that was interrupted.
    Move {
        name: String,
        /// The shard to move to (`oma shards list` shows them).
        #[arg(long, value_name = "SHARD", required_unless_present = "abort")]
        to: Option<String>,
        /// Cancel the tenant's move in progress (one that has not switched yet).
        #[arg(long)]
        abort: bool,
        #[command(flatten)]
        moves: MoveArgs,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

/// How moves run (`tenants move`, `shards drain`, `shards rebalance`).
#[derive(Args, Debug, Clone)]
pub struct MoveArgs {
    /// How long the old copy stays after the switch before it is deleted, so that every
    /// server re-reads the shard map first (longer than their refresh period).
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub grace_ms: u64,
}

pub async fn run(action: TenantAction) -> Result<()> {
    match action {
        TenantAction::Create {
            name,
            dedicated,
            storage,
        } => create(storage, &name, dedicated.as_deref()).await,
        TenantAction::List(storage) => list(storage).await,
        TenantAction::Move {
            name,
            to,
            abort,
            moves,
            storage,
        } => {
            if abort {
                abort_move(storage, &name, to.as_deref()).await
            } else {
                let Some(to) = to else {
                    bail!("--to SHARD names the shard to move tenant {name} to");
                };
                let control = shards::open_router(&storage).await?;
                let result = move_one(&control, &name, &to, &moves).await;
                control.close().await;
                result
            }
        }
    }
}

async fn create(storage: StorageArgs, name: &str, dedicated: Option<&str>) -> Result<()> {
    oma_store::tenants::validate_tenant_name(name)?;
    let resolved = storage.resolve()?;
    let control = shards::open_router(&storage).await?;
    if control.list_tenants().await?.iter().any(|t| t == name) {
        let shard = control.shard_of(name).await?;
        println!("tenant {name} already exists (on shard {shard}); nothing to do");
        control.close().await;
        return Ok(());
    }
    let shard = match dedicated {
        Some(url) => {
            let url = shards::normalize_url(url)?;
            let shard = format!("tenant-{name}");
            let applied = shards::register(
                &control,
                &resolved.database_url,
                &url,
                &shard,
                ShardStatus::Full,
                Some(name),
            )
            .await
            .with_context(|| format!("giving tenant {name} its own database"))?;
            println!(
                "added shard {shard} ({}): {applied} migration(s) applied; dedicated to tenant {name}",
                oma_store::db_url_redacted(&url)
            );
            shard
        }
        None => control.least_loaded_open_shard().await?,
    };
    control.create_tenant(name).await?;
    control.assign_tenant(name, &shard).await?;
    println!("created tenant {name} on shard {shard}");
    control.close().await;
    Ok(())
}

async fn list(storage: StorageArgs) -> Result<()> {
    let control = shards::open_router(&storage).await?;
    for (tenant, shard) in shards::placements(&control).await? {
        println!("{tenant}\t{shard}");
    }
    control.close().await;
    Ok(())
}

/// Test hook: `OMA_TEST_MOVE_STOP_AFTER=copying|fenced|switched` makes the mover stop (as if
/// it crashed) once that phase is journalled, so tests can check that running the command
/// again resumes the move. Not for operators.
fn test_stop_after() -> Result<Option<MovePhase>> {
    let Ok(v) = std::env::var("OMA_TEST_MOVE_STOP_AFTER") else {
        return Ok(None);
    };
    Ok(Some(match v.trim() {
        "" => return Ok(None),
        "copying" => MovePhase::Copying,
        "fenced" => MovePhase::Fenced,
        "switched" => MovePhase::Switched,
        other => bail!("OMA_TEST_MOVE_STOP_AFTER={other}: use copying, fenced or switched"),
    }))
}

/// `oma tenants move NAME --to SHARD`: checks, journals (or resumes) and runs the move.
async fn move_one(control: &Store, tenant: &str, to: &str, moves: &MoveArgs) -> Result<()> {
    if !control.list_tenants().await?.iter().any(|t| t == tenant) {
        bail!("no tenant named `{tenant}`: `oma tenants list` shows them");
    }
    let target = control.shard(to).await?;
    if control.move_of(tenant).await?.is_none() {
        let current = control.shard_of(tenant).await?;
        if current == to {
            println!("tenant {tenant} is on shard {to} already; nothing to do");
            return Ok(());
        }
        if let Some(owner) = target.dedicated_to.as_deref()
            && owner != tenant
        {
            bail!("shard {to} is dedicated to tenant {owner}: move {tenant} to another shard");
        }
        if target.status == ShardStatus::Draining {
            bail!("shard {to} is draining: move {tenant} to an open shard");
        }
    }
    let router = TenantRouter::open(control.clone())
        .await
        .context("connecting the shards")?;
    move_tenant(&router, tenant, to, moves).await
}

/// Runs the move of `tenant` to `to` (journalling it first, or resuming the journalled one)
/// with a progress display on stderr and a summary on stdout.
pub async fn move_tenant(
    router: &TenantRouter,
    tenant: &str,
    to: &str,
    moves: &MoveArgs,
) -> Result<()> {
    let control = router.control();
    let plan = match control.move_of(tenant).await? {
        Some(m) if m.to_shard != to => bail!(
            "tenant {tenant} is being moved from {} to {} already (phase {}): run `oma tenants \
             move {tenant} --to {}` to finish that move, or `oma tenants move {tenant} --abort` \
             to cancel it",
            m.from_shard,
            m.to_shard,
            m.phase.as_str(),
            m.to_shard
        ),
        Some(m) => {
            println!(
                "resuming the move of tenant {tenant} from {} to {} (phase {})",
                m.from_shard,
                m.to_shard,
                m.phase.as_str()
            );
            m
        }
        None => {
            let from = control.shard_of(tenant).await?;
            if from == to {
                println!("tenant {tenant} is on shard {to} already; nothing to do");
                return Ok(());
            }
            control.begin_move(tenant, &from, to).await?
        }
    };
    let (from_store, to_store) = stores(router, &plan)?;
    let opts = MoveOptions {
        grace: Duration::from_millis(moves.grace_ms),
        stop_after: test_stop_after()?,
    };
    let mut bar = ProgressBar::new(&plan);
    let result = tenant_move::run(control, &from_store, &to_store, &plan, &opts, &mut |p| {
        bar.show(p)
    })
    .await;
    bar.finish();
    match result {
        Ok(report) => {
            print_summary(&plan, &report);
            Ok(())
        }
        Err(StoreError::Aborted(why)) => bail!(
            "the move of tenant {tenant} stopped ({why}); it is journalled: run the same command \
             again to resume it"
        ),
        Err(e) => bail!(
            "the move of tenant {tenant} from {} to {} failed: {e}. It is journalled: run the \
             same command again to resume it, or `oma tenants move {tenant} --abort` to cancel it",
            plan.from_shard,
            plan.to_shard
        ),
    }
}

fn stores(
    router: &TenantRouter,
    plan: &MoveRow,
) -> Result<(std::sync::Arc<Store>, std::sync::Arc<Store>)> {
    let all = router.shards();
    let find = |name: &str| {
        all.iter()
            .find(|s| s.name == name)
            .map(|s| s.store.clone())
            .with_context(|| format!("shard {name} is not in the shard map"))
    };
    Ok((find(&plan.from_shard)?, find(&plan.to_shard)?))
}

fn print_summary(plan: &MoveRow, r: &MoveReport) {
    println!(
        "moved tenant {} from {} to {}: {} row(s) copied, {} change(s) replayed, writes fenced \
         for {} ms, {} row(s) deleted from {}, took {:.1} s",
        plan.tenant,
        plan.from_shard,
        plan.to_shard,
        r.rows_copied,
        r.changes_replayed,
        r.fenced_for.as_millis(),
        r.rows_deleted,
        plan.from_shard,
        r.took.as_secs_f64()
    );
}

async fn abort_move(storage: StorageArgs, tenant: &str, to: Option<&str>) -> Result<()> {
    let control = shards::open_router(&storage).await?;
    let result = async {
        let Some(plan) = control.move_of(tenant).await? else {
            bail!("tenant {tenant} has no move in progress: nothing to abort");
        };
        if let Some(to) = to
            && to != plan.to_shard
        {
            bail!(
                "the move of tenant {tenant} in progress goes to {}, not {to}",
                plan.to_shard
            );
        }
        let router = TenantRouter::open(control.clone())
            .await
            .context("connecting the shards")?;
        let (from, to_store) = stores(&router, &plan)?;
        let deleted = tenant_move::abort(&control, &from, &to_store, &plan).await?;
        println!(
            "aborted the move of tenant {tenant} from {} to {}: it stays on {}; {deleted} \
             copied row(s) deleted from {}",
            plan.from_shard, plan.to_shard, plan.from_shard, plan.to_shard
        );
        Ok(())
    }
    .await;
    control.close().await;
    result
}

/// The mover's progress on stderr: a bar redrawn in place on a terminal, one line per phase
/// otherwise (logs, CI).
struct ProgressBar {
    tty: bool,
    phase: Option<&'static str>,
    /// Whether a bar is drawn on the current terminal line (to end it before the next).
    drawn: usize,
    last_draw: Option<Instant>,
    last_line: String,
    from: String,
    to: String,
}

const BAR_WIDTH: usize = 30;

impl ProgressBar {
    fn new(plan: &MoveRow) -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            phase: None,
            drawn: 0,
            last_draw: None,
            last_line: String::new(),
            from: plan.from_shard.clone(),
            to: plan.to_shard.clone(),
        }
    }

    fn bar(done: u64, total: u64) -> String {
        let frac = if total == 0 {
            1.0
        } else {
            (done as f64 / total as f64).clamp(0.0, 1.0)
        };
        let filled = (frac * BAR_WIDTH as f64).round() as usize;
        format!(
            "[{}{}] {:>3}%",
            "#".repeat(filled),
            ".".repeat(BAR_WIDTH - filled.min(BAR_WIDTH)),
            (frac * 100.0).floor() as u64
        )
    }

    fn show(&mut self, p: Progress) {
        let (phase, line, complete) = match p.clone() {
            Progress::Copying { copied, total } => (
                "copying",
                format!(
                    "{}  copying {copied}/{total} rows to {}",
                    Self::bar(copied, total),
                    self.to
                ),
                copied >= total,
            ),
            Progress::CatchingUp { pending } => (
                "catching up",
                format!("catching up: {pending} change(s) left to replay"),
                true,
            ),
            Progress::Fenced => (
                "fenced",
                "writes fenced: replaying the last changes and verifying the copy".to_string(),
                true,
            ),
            Progress::Switched => (
                "switched",
                format!("switched: the tenant now lives on {}", self.to),
                true,
            ),
            Progress::Purging { deleted, total } => (
                "purging",
                format!(
                    "{}  deleting {deleted}/{total} rows from {}",
                    Self::bar(deleted, total),
                    self.from
                ),
                deleted >= total,
            ),
            Progress::Done => ("done", "done".to_string(), true),
        };
        let changed = self.phase != Some(phase);
        let mut err = std::io::stderr().lock();
        if self.tty {
            // Redraw at most every 50 ms within a phase, always on a change or completion.
            let due = self
                .last_draw
                .is_none_or(|t| t.elapsed() >= Duration::from_millis(50));
            if line == self.last_line || !(changed || complete || due) {
                return;
            }
            if changed && self.drawn > 0 {
                let _ = writeln!(err);
                self.drawn = 0;
            }
            let pad = self.drawn.saturating_sub(line.chars().count());
            let _ = write!(err, "\r{line}{}", " ".repeat(pad));
            let _ = err.flush();
            self.drawn = line.chars().count();
            self.last_draw = Some(Instant::now());
            self.last_line = line;
        } else if changed {
            // Without a terminal the bar would only say 0%: say what the phase is about.
            let plain = match p {
                Progress::Copying { total, .. } => format!("copying {total} rows to {}", self.to),
                Progress::Purging { total, .. } => {
                    format!("deleting {total} rows from {}", self.from)
                }
                _ => line,
            };
            let _ = writeln!(err, "{plain}");
        }
        self.phase = Some(phase);
    }

    fn finish(&mut self) {
        if self.tty && self.drawn > 0 {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err);
            self.drawn = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_fraction_done() {
        assert_eq!(
            ProgressBar::bar(0, 10),
            format!("[{}]   0%", ".".repeat(BAR_WIDTH))
        );
        assert_eq!(
            ProgressBar::bar(10, 10),
            format!("[{}] 100%", "#".repeat(BAR_WIDTH))
        );
        assert_eq!(
            ProgressBar::bar(0, 0),
            format!("[{}] 100%", "#".repeat(BAR_WIDTH))
        );
        let half = ProgressBar::bar(45, 100);
        assert!(half.ends_with(" 45%"), "{half}");
    }
}
