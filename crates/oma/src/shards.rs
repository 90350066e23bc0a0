//! `oma shards add|list|drain|rebalance`: the databases tenants live in.
//!
//! The router database (`database_url`) is the shard `main` and holds the shard map; every
//! other shard is a SQLite file or a PostgreSQL database, mixed as one likes. New tenants land
//! on the least-loaded open shard (`oma tenants create`); `drain` and `rebalance` move tenants
//! online with the same mover as `oma tenants move` (see `tenants.rs`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use oma_store::shards::{MAIN_SHARD, ShardRow, ShardStatus};
use oma_store::{Backend, Store, TenantRouter};

use crate::config::StorageArgs;
use crate::tenants::{self, MoveArgs};

#[derive(Subcommand)]
pub enum ShardsAction {
    /// Register a database as a shard (SQLite `sqlite://PATH`, created if needed, or an
    /// existing PostgreSQL database): it is migrated and opened for new tenants.
    Add {
        /// The shard's database URL.
        url: String,
        /// Its name (default: `shard-N`, the next free number).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Every shard with its tenants, size and status, and the moves in progress.
    List(StorageArgs),
    /// Take a shard out of placement and (unless `--no-move`) move its tenants, one after
    /// another and online, to the least-loaded open shards.
    Drain {
        name: String,
        /// Only stop new tenants landing there; move nobody.
        #[arg(long)]
        no_move: bool,
        #[command(flatten)]
        moves: MoveArgs,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Move tenants from the fullest to the emptiest open shard until their tenant counts
    /// are within `--spread` of each other.
    Rebalance {
        /// The largest difference of tenant counts left alone.
        #[arg(long, default_value_t = 1)]
        spread: u64,
        /// Print the moves without making them.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        moves: MoveArgs,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

pub async fn run(action: ShardsAction) -> Result<()> {
    match action {
        ShardsAction::Add { url, name, storage } => add(storage, &url, name).await,
        ShardsAction::List(storage) => list(storage).await,
        ShardsAction::Drain {
            name,
            no_move,
            moves,
            storage,
        } => drain(storage, &name, no_move, &moves).await,
        ShardsAction::Rebalance {
            spread,
            dry_run,
            moves,
            storage,
        } => rebalance(storage, spread, dry_run, &moves).await,
    }
}

/// The router database, migrated (SQLite) or checked (PostgreSQL), recorded as `main`.
pub async fn open_router(storage: &StorageArgs) -> Result<Store> {
    let store = storage.resolve()?.open_migrated_store().await?;
    store
        .ensure_main_shard()
        .await
        .context("recording the router database as the shard `main`")?;
    Ok(store)
}

/// A SQLite URL with a relative path made absolute: every node and command that reads the
/// shard map must find the same file, wherever it was started.
pub fn normalize_url(url: &str) -> Result<String> {
    let url = url.trim();
    Backend::of_url(url)?;
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Ok(url.to_string());
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path.is_empty() || path == ":memory:" {
        bail!("a shard must be a database file or server, not `{url}`");
    }
    let path = Path::new(path);
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .context("finding the current directory")?
            .join(path)
    };
    Ok(match query {
        Some(q) => format!("sqlite://{}?{q}", abs.display()),
        None => format!("sqlite://{}", abs.display()),
    })
}

/// The next free `shard-N`.
fn next_shard_name(rows: &[ShardRow]) -> String {
    (1..)
        .map(|n| format!("shard-{n}"))
        .find(|n| !rows.iter().any(|r| &r.name == n))
        .unwrap_or_else(|| "shard-x".to_string())
}

/// Connects `url`, migrates it and registers it as shard `name`. Refuses a URL registered
/// already (or the router's own) and a database that holds another deployment's tenants.
/// Returns how many migrations were applied.
pub async fn register(
    control: &Store,
    router_url: &str,
    url: &str,
    name: &str,
    status: ShardStatus,
    dedicated_to: Option<&str>,
) -> Result<usize> {
    oma_store::shards::validate_shard_name(name)?;
    let rows = control.shards().await?;
    if rows.iter().any(|r| r.name == name) {
        bail!("a shard named `{name}` exists already: `oma shards list` shows the shards");
    }
    if normalize_url(router_url).ok().as_deref() == Some(url) || router_url == url {
        bail!(
            "{} is the router database itself (the shard `main`)",
            oma_store::db_url_redacted(url)
        );
    }
    if let Some(r) = rows.iter().find(|r| !r.url.is_empty() && r.url == url) {
        bail!(
            "{} is registered already, as the shard `{}`",
            oma_store::db_url_redacted(url),
            r.name
        );
    }
    let store = Store::connect(url)
        .await
        .with_context(|| format!("connecting to {}", oma_store::db_url_redacted(url)))?;
    let result = async {
        let applied = store
            .migrate_up()
            .await
            .with_context(|| format!("migrating {}", oma_store::db_url_redacted(url)))?;
        let tenants = store.list_tenants().await?;
        let listed = store.shards().await?;
        if !tenants.is_empty() || !listed.is_empty() {
            bail!(
                "{} holds an oma deployment of its own ({} tenant(s)): a shard must be a new, \
                 empty database",
                oma_store::db_url_redacted(url),
                tenants.len()
            );
        }
        control.add_shard(name, url, status, dedicated_to).await?;
        Ok(applied.len())
    }
    .await;
    store.close().await;
    result
}

async fn add(storage: StorageArgs, url: &str, name: Option<String>) -> Result<()> {
    let resolved = storage.resolve()?;
    let control = open_router(&storage).await?;
    let url = normalize_url(url)?;
    let name = match name {
        Some(n) => n,
        None => next_shard_name(&control.shards().await?),
    };
    let applied = register(
        &control,
        &resolved.database_url,
        &url,
        &name,
        ShardStatus::Open,
        None,
    )
    .await?;
    println!(
        "added shard {name} ({}, {}): {applied} migration(s) applied; open for new tenants",
        Backend::of_url(&url)?.name(),
        oma_store::db_url_redacted(&url)
    );
    control.close().await;
    Ok(())
}

/// `main` is the router store; any other shard is connected afresh (no schema check, so a
/// shard that is behind can still be listed, measured and migrated).
pub async fn connect_shard(control: &Store, row: &ShardRow) -> Result<Store> {
    if row.name == MAIN_SHARD {
        return Ok(control.clone());
    }
    Store::connect(&row.url).await.with_context(|| {
        format!(
            "shard `{}` ({}) cannot be reached",
            row.name,
            oma_store::db_url_redacted(&row.url)
        )
    })
}

pub fn backend_name(control: &Store, row: &ShardRow) -> &'static str {
    if row.name == MAIN_SHARD {
        control.backend().name()
    } else {
        Backend::of_url(&row.url).map_or("?", |b| b.name())
    }
}

pub fn shown_url(row: &ShardRow) -> String {
    if row.name == MAIN_SHARD {
        "(router database)".to_string()
    } else {
        oma_store::db_url_redacted(&row.url)
    }
}

fn human_size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes.max(0) as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

async fn list(storage: StorageArgs) -> Result<()> {
    let control = open_router(&storage).await?;
    let rows = control.shards().await?;
    let mut table: Vec<[String; 7]> = vec![[
        "NAME".into(),
        "BACKEND".into(),
        "URL".into(),
        "STATUS".into(),
        "DEDICATED".into(),
        "TENANTS".into(),
        "SIZE".into(),
    ]];
    let mut unreachable = Vec::new();
    for row in &rows {
        let size = match connect_shard(&control, row).await {
            Ok(store) => {
                let size = store.database_size().await;
                if row.name != MAIN_SHARD {
                    store.close().await;
                }
                match size {
                    Ok(size) => {
                        control
                            .record_shard_stats(&row.name, row.tenant_count, size)
                            .await?;
                        human_size(size)
                    }
                    Err(e) => {
                        unreachable.push(format!("{}: {e}", row.name));
                        format!("({} last seen)", human_size(row.size_bytes))
                    }
                }
            }
            Err(e) => {
                unreachable.push(format!("{e:#}"));
                "unreachable".to_string()
            }
        };
        table.push([
            row.name.clone(),
            backend_name(&control, row).to_string(),
            shown_url(row),
            row.status.as_str().to_string(),
            row.dedicated_to.clone().unwrap_or_else(|| "-".into()),
            row.tenant_count.to_string(),
            size,
        ]);
    }
    let mut widths = [0usize; 7];
    for r in &table {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in &table {
        let mut line = String::new();
        for (i, (w, c)) in widths.iter().zip(r).enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        println!("{}", line.trim_end());
    }
    let moves = control.moves().await?;
    if !moves.is_empty() {
        println!();
        println!("moves in progress:");
        for m in moves {
            println!(
                "  {}  {} → {}  {} ({} rows copied, started {}); `oma tenants move {} --to {}` \
                 resumes it",
                m.tenant,
                m.from_shard,
                m.to_shard,
                m.phase.as_str(),
                m.rows_copied,
                oma_core::time::format_micros(m.started_at),
                m.tenant,
                m.to_shard
            );
        }
    }
    for u in &unreachable {
        eprintln!("warning: {u}");
    }
    control.close().await;
    Ok(())
}

/// Every tenant with the shard it lives on (a tenant without a route is on `main`).
pub async fn placements(control: &Store) -> Result<BTreeMap<String, String>> {
    let routes: HashMap<String, String> = control.tenant_routes().await?.into_iter().collect();
    Ok(control
        .list_tenants()
        .await?
        .into_iter()
        .map(|t| {
            let shard = routes
                .get(&t)
                .cloned()
                .unwrap_or_else(|| MAIN_SHARD.to_string());
            (t, shard)
        })
        .collect())
}

async fn drain(storage: StorageArgs, name: &str, no_move: bool, moves: &MoveArgs) -> Result<()> {
    let control = open_router(&storage).await?;
    let shard = control.shard(name).await?;
    let tenants: Vec<String> = placements(&control)
        .await?
        .into_iter()
        .filter(|(_, s)| s == name)
        .map(|(t, _)| t)
        .collect();
    if !no_move && !tenants.is_empty() {
        let others = control
            .shards()
            .await?
            .into_iter()
            .filter(|s| s.name != name && s.status == ShardStatus::Open && s.dedicated_to.is_none())
            .count();
        if others == 0 {
            bail!(
                "shard {name} holds {} tenant(s) and no other shard is open to move them to: \
                 `oma shards add URL` one first (or drain with --no-move to only stop new \
                 tenants landing on {name})",
                tenants.len()
            );
        }
    }
    if shard.status != ShardStatus::Draining {
        control
            .set_shard_status(name, ShardStatus::Draining)
            .await?;
    }
    println!("shard {name} is draining: no new tenant lands on it");
    if no_move {
        println!(
            "{} tenant(s) stay on {name} (--no-move); `oma shards drain {name}` moves them",
            tenants.len()
        );
        control.close().await;
        return Ok(());
    }
    if tenants.is_empty() {
        println!("shard {name} holds no tenant: nothing to move");
        control.close().await;
        return Ok(());
    }
    let router = TenantRouter::open(control.clone())
        .await
        .context("connecting the shards")?;
    for (i, tenant) in tenants.iter().enumerate() {
        // A move already journalled for the tenant is finished first (to its own target);
        // one that was bringing the tenant here leaves it here, so it moves on after.
        if let Some(m) = control.move_of(tenant).await? {
            println!(
                "finishing the move of tenant {tenant} from {} to {} in progress",
                m.from_shard, m.to_shard
            );
            tenants::move_tenant(&router, tenant, &m.to_shard, moves).await?;
            if control.shard_of(tenant).await? != name {
                continue;
            }
        }
        let to = control.least_loaded_open_shard().await?;
        println!(
            "moving tenant {tenant} ({}/{}) from {name} to {to}",
            i + 1,
            tenants.len()
        );
        tenants::move_tenant(&router, tenant, &to, moves).await?;
    }
    println!(
        "shard {name} is drained: its {} tenant(s) moved; it stays registered as draining",
        tenants.len()
    );
    control.close().await;
    Ok(())
}

/// One move of a rebalance plan.
struct PlannedMove {
    tenant: String,
    rows: i64,
    from: String,
    to: String,
}

async fn rebalance(
    storage: StorageArgs,
    spread: u64,
    dry_run: bool,
    moves: &MoveArgs,
) -> Result<()> {
    let control = open_router(&storage).await?;
    let shards: Vec<ShardRow> = control
        .shards()
        .await?
        .into_iter()
        .filter(|s| s.status == ShardStatus::Open && s.dedicated_to.is_none())
        .collect();
    if shards.len() < 2 {
        println!(
            "{} open shard(s): nothing to rebalance (`oma shards add` adds one)",
            shards.len()
        );
        control.close().await;
        return Ok(());
    }
    let in_move: Vec<String> = control
        .moves()
        .await?
        .into_iter()
        .map(|m| m.tenant)
        .collect();
    let placed = placements(&control).await?;
    // Per shard: its movable tenants with their row counts, smallest last (popped first).
    let mut load: BTreeMap<String, (i64, Vec<(String, i64)>)> = BTreeMap::new();
    for row in &shards {
        let store = connect_shard(&control, row).await?;
        let tables = store.tenant_tables().await?;
        let mut ts = Vec::new();
        for (t, s) in &placed {
            if s != &row.name || in_move.contains(t) {
                continue;
            }
            let rows: i64 = store.count_tenant_rows(t, &tables).await?.iter().sum();
            ts.push((t.clone(), rows));
        }
        if row.name != MAIN_SHARD {
            store.close().await;
        }
        ts.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
        load.insert(row.name.clone(), (row.tenant_count, ts));
    }
    // A move from the fullest to the emptiest only helps while they differ by 2 or more.
    let spread = i64::try_from(spread.max(1)).unwrap_or(i64::MAX);
    let mut plan: Vec<PlannedMove> = Vec::new();
    for _ in 0..placed.len() {
        let fullest = load
            .iter()
            .max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.0.cmp(a.0)))
            .map(|(n, (c, _))| (n.clone(), *c));
        let emptiest = load
            .iter()
            .min_by(|a, b| a.1.0.cmp(&b.1.0).then(a.0.cmp(b.0)))
            .map(|(n, (c, _))| (n.clone(), *c));
        let (Some((full, max)), Some((empty, min))) = (fullest, emptiest) else {
            break;
        };
        if max - min <= spread {
            break;
        }
        let Some((tenant, rows)) = load.get_mut(&full).and_then(|(c, ts)| {
            let t = ts.pop()?;
            *c -= 1;
            Some(t)
        }) else {
            break;
        };
        if let Some((c, ts)) = load.get_mut(&empty) {
            *c += 1;
            ts.insert(0, (tenant.clone(), rows));
        }
        plan.push(PlannedMove {
            tenant,
            rows,
            from: full,
            to: empty,
        });
    }
    if plan.is_empty() {
        println!("the open shards are within a spread of {spread} tenant(s): nothing to move");
        control.close().await;
        return Ok(());
    }
    for (i, m) in plan.iter().enumerate() {
        println!(
            "{} {}/{}: tenant {} ({} rows) from {} to {}",
            if dry_run { "would move" } else { "move" },
            i + 1,
            plan.len(),
            m.tenant,
            m.rows,
            m.from,
            m.to
        );
    }
    if dry_run {
        println!("dry run: nothing was moved");
        control.close().await;
        return Ok(());
    }
    let router = TenantRouter::open(control.clone())
        .await
        .context("connecting the shards")?;
    for m in &plan {
        println!("moving tenant {} from {} to {}", m.tenant, m.from, m.to);
        tenants::move_tenant(&router, &m.tenant, &m.to, moves).await?;
    }
    println!("rebalanced: {} tenant(s) moved", plan.len());
    control.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(4096), "4.0 KiB");
        assert_eq!(human_size(5 * 1024 * 1024 + 1024 * 512), "5.5 MiB");
    }

    #[test]
    fn relative_sqlite_paths_become_absolute() {
        let u = normalize_url("sqlite://x/y.db").unwrap();
        assert!(u.starts_with("sqlite:///"), "{u}");
        assert!(u.ends_with("/x/y.db"), "{u}");
        assert_eq!(
            normalize_url("sqlite:///a/b.db?mode=rwc").unwrap(),
            "sqlite:///a/b.db?mode=rwc"
        );
        assert_eq!(
            normalize_url("postgres://u@h/db").unwrap(),
            "postgres://u@h/db"
        );
        assert!(normalize_url("mysql://x").is_err());
        assert!(normalize_url("sqlite::memory:").is_err());
    }
}
