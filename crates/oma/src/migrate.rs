//! `oma migrate status|up|stamp-baseline`: the router database, then every shard it lists.

use anyhow::{Context, Result, bail};
use oma_store::migrate::{Migration, MigrationStatus, Stamped};
use oma_store::shards::{MAIN_SHARD, ShardRow};
use oma_store::{Backend, Store};

use crate::config::StorageArgs;

fn line(state: &str, m: &Migration) -> String {
    format!("{state:<8} {:04} {}", m.version, m.description)
}

/// The migration that creates the shard map (`shard_pool`): a router database that has not
/// applied it has no shards to visit.
const SHARDS_MIGRATION: i64 = 18;

fn has_shard_map(st: &MigrationStatus) -> bool {
    st.unknown.is_empty()
        && !st
            .pending
            .iter()
            .any(|m| m.baseline || m.version <= SHARDS_MIGRATION)
}

/// The shards the router database lists besides itself (none before migration 0018).
async fn other_shards(router: &Store, st: &MigrationStatus) -> Result<Vec<ShardRow>> {
    if !has_shard_map(st) {
        return Ok(Vec::new());
    }
    Ok(router
        .shards()
        .await
        .context("reading the shard map")?
        .into_iter()
        .filter(|s| s.name != MAIN_SHARD)
        .collect())
}

/// Prints one database's migrations; returns its verdict line.
fn print_status(st: &MigrationStatus) -> &'static str {
    if let Some(b) = &st.baseline {
        println!("{}", line("baseline", b));
    }
    for m in &st.applied {
        println!("{}", line("applied", m));
    }
    for m in &st.pending {
        println!("{}", line("pending", m));
    }
    for v in &st.unknown {
        if *v < 0 {
            println!("unknown  baseline {:04} (written by a newer oma)", -v);
        } else {
            println!("unknown  {v:04} (written by a newer oma)");
        }
    }
    if let Some(b) = &st.stampable {
        println!(
            "note: this database applied 0001..{:04} one by one; `oma migrate stamp-baseline` \
             records the squashed baseline so later releases can retire those files",
            b.version
        );
    }
    let verdict = if !st.unknown.is_empty() {
        "schema is NEWER than this binary: upgrade oma"
    } else if st.pending.is_empty() {
        "schema is up to date"
    } else {
        "schema is behind: run `oma migrate up`"
    };
    println!("{verdict}");
    verdict
}

/// Connects a shard for migrating: directly, with no schema check (the router refuses a
/// shard that is behind, which is what `migrate up` is for).
async fn connect_shard(row: &ShardRow) -> Result<Store> {
    Store::connect(&row.url).await.with_context(|| {
        format!(
            "shard `{}` ({}) cannot be reached",
            row.name,
            oma_store::db_url_redacted(&row.url)
        )
    })
}

pub async fn status(s: StorageArgs) -> Result<()> {
    let store = s.resolve()?.open_store().await?;
    let result = status_all(&store).await;
    store.close().await;
    result
}

async fn status_all(store: &Store) -> Result<()> {
    let st = store.migration_status().await?;
    println!(
        "database: {} ({})",
        store.url_redacted(),
        store.backend().name()
    );
    print_status(&st);
    let shards = other_shards(store, &st).await?;
    let (mut behind, mut newer, mut unreachable) = (Vec::new(), Vec::new(), Vec::new());
    for row in &shards {
        println!();
        println!(
            "shard {}: {} ({})",
            row.name,
            oma_store::db_url_redacted(&row.url),
            Backend::of_url(&row.url).map_or("?", |b| b.name())
        );
        let shard = match connect_shard(row).await {
            Ok(s) => s,
            Err(e) => {
                println!("unreachable: {e:#}");
                unreachable.push(row.name.clone());
                continue;
            }
        };
        let st = shard.migration_status().await;
        shard.close().await;
        match st {
            Ok(st) => {
                print_status(&st);
                if !st.unknown.is_empty() {
                    newer.push(row.name.clone());
                } else if !st.pending.is_empty() {
                    behind.push(format!("{} ({} pending)", row.name, st.pending.len()));
                }
            }
            Err(e) => {
                println!("cannot read its migrations: {e}");
                unreachable.push(row.name.clone());
            }
        }
    }
    if !shards.is_empty() {
        println!();
        if behind.is_empty() && newer.is_empty() && unreachable.is_empty() {
            println!("every shard ({}) is up to date", shards.len());
        }
        if !behind.is_empty() {
            println!(
                "shard(s) behind: {}: run `oma migrate up`",
                behind.join(", ")
            );
        }
        if !newer.is_empty() {
            println!(
                "shard(s) NEWER than this binary: {}: upgrade oma",
                newer.join(", ")
            );
        }
        if !unreachable.is_empty() {
            bail!("shard(s) could not be read: {}", unreachable.join(", "));
        }
    }
    Ok(())
}

pub async fn up(s: StorageArgs) -> Result<()> {
    let store = s.resolve()?.open_store().await?;
    let applied = store.migrate_up().await;
    let applied = match applied {
        Ok(a) => a,
        Err(e) => {
            store.close().await;
            return Err(e.into());
        }
    };
    for m in &applied {
        println!("{}", line("applied", m));
    }
    println!(
        "schema is up to date ({} migration(s) applied)",
        applied.len()
    );
    let result = up_shards(&store).await;
    store.close().await;
    result
}

async fn up_shards(router: &Store) -> Result<()> {
    let st = router.migration_status().await?;
    let shards = other_shards(router, &st).await?;
    let (mut was_behind, mut failed) = (Vec::new(), Vec::new());
    for row in &shards {
        let shard = match connect_shard(row).await {
            Ok(s) => s,
            Err(e) => {
                println!("shard {}: {e:#}", row.name);
                failed.push(row.name.clone());
                continue;
            }
        };
        let applied = shard.migrate_up().await;
        shard.close().await;
        match applied {
            Ok(applied) => {
                for m in &applied {
                    println!("shard {}: {}", row.name, line("applied", m));
                }
                println!(
                    "shard {}: schema is up to date ({} migration(s) applied)",
                    row.name,
                    applied.len()
                );
                if !applied.is_empty() {
                    was_behind.push(format!("{} ({} applied)", row.name, applied.len()));
                }
            }
            Err(e) => {
                println!("shard {}: {e}", row.name);
                failed.push(row.name.clone());
            }
        }
    }
    if !shards.is_empty() {
        if was_behind.is_empty() {
            println!("every shard ({}) was up to date", shards.len());
        } else {
            println!("shard(s) that were behind: {}", was_behind.join(", "));
        }
    }
    if !failed.is_empty() {
        bail!("shard(s) not migrated: {}", failed.join(", "));
    }
    Ok(())
}

pub async fn stamp_baseline(s: StorageArgs) -> Result<()> {
    let store = s.resolve()?.open_store().await?;
    let stamped = store.stamp_baseline().await;
    store.close().await;
    match stamped? {
        Stamped::Recorded(m) => println!("{}", line("stamped", &m)),
        Stamped::AlreadyRecorded(m) => {
            println!("{}: already recorded, nothing to do", line("baseline", &m))
        }
    }
    Ok(())
}
