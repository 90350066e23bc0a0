//! Retention: `oma prune` once, and the janitor `oma serve` runs on a timer, both by the
//! `[retention]` policy of `oma.toml` (what is deleted and what never is: see
//! `oma_store::retention`).
//!
//! ```toml
//! [retention]
//! events_days = 30          # events of sessions that are not running (unset: keep forever)
//! model_streams_days = 7    # partial model output kept for crash recovery
//! ops_events_days = 90      # operational events
//! interval = "1h"           # how often `oma serve` prunes ("off" disables it)
//! orphan_grace = "1h"       # unreferenced blobs younger than this are left alone
//! [retention.blob_ttl]      # blob lifecycle rules: prefix = TTL
//! snapshots = "7d"
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Deserialize;

use oma_store::Store;
use oma_store::retention::{BlobTtl, Policy, Pruned};

use crate::config::StorageArgs;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// `[retention]` of `oma.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionFileConfig {
    pub events_days: Option<u32>,
    pub model_streams_days: Option<u32>,
    pub ops_events_days: Option<u32>,
    pub interval: Option<String>,
    pub orphan_grace: Option<String>,
    #[serde(default)]
    pub blob_ttl: BTreeMap<String, String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Delete events older than this many days (overrides `[retention] events_days`).
    #[arg(long)]
    pub events_days: Option<u32>,
    /// Delete model stream records older than this many days.
    #[arg(long)]
    pub model_streams_days: Option<u32>,
    /// Delete operational events older than this many days.
    #[arg(long)]
    pub ops_events_days: Option<u32>,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// The policy of `file`, with `overrides` (days of events, model streams, ops events) on top.
pub fn policy(file: &RetentionFileConfig, overrides: [Option<u32>; 3]) -> Result<Policy> {
    let days = |name: &str, flag: Option<u32>, file: Option<u32>| -> Result<Option<Duration>> {
        match flag.or(file) {
            None => Ok(None),
            Some(0) => bail!(
                "retention: {name} = 0 would delete records still being written; use 1 or more, \
                 or leave it unset to keep them"
            ),
            Some(n) => Ok(Some(DAY * n)),
        }
    };
    let mut blob_ttls = Vec::new();
    for (prefix, ttl) in &file.blob_ttl {
        let ttl =
            parse_duration(ttl).with_context(|| format!("retention: blob_ttl for `{prefix}`"))?;
        blob_ttls.push(BlobTtl::new(prefix, ttl)?);
    }
    let mut policy = Policy {
        events: days("events_days", overrides[0], file.events_days)?,
        model_streams: days("model_streams_days", overrides[1], file.model_streams_days)?,
        ops_events: days("ops_events_days", overrides[2], file.ops_events_days)?,
        blob_ttls,
        ..Policy::default()
    };
    if let Some(g) = &file.orphan_grace {
        policy.orphan_grace = parse_duration(g).context("retention: orphan_grace")?;
    }
    Ok(policy)
}

/// `90s`, `30m`, `1h`, `7d` (or a number of seconds).
pub fn parse_duration(text: &str) -> Result<Duration> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("`{text}` is not a duration such as 90s, 30m, 1h or 7d"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ => bail!("`{text}`: the unit is one of s, m, h, d"),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

pub async fn run(args: PruneArgs) -> Result<()> {
    let resolved = args.storage.resolve()?;
    let policy = policy(
        &resolved.file.retention,
        [
            args.events_days,
            args.model_streams_days,
            args.ops_events_days,
        ],
    )?;
    let store = resolved.open_migrated_store().await?;
    let blobs = resolved.open_blobs()?;
    let store = store.with_blobs(blobs);
    let router = oma_store::TenantRouter::open(store.clone()).await?;
    let shards = router.shards();
    for shard in &shards {
        let started = std::time::Instant::now();
        let siblings = siblings_of(&shards, &shard.name);
        let pruned = shard.store.prune_sharded(&policy, &siblings).await?;
        if shards.len() > 1 {
            println!("shard {}:", shard.name);
        }
        print_report(&pruned, started.elapsed());
    }
    for shard in &shards {
        shard.store.close().await;
    }
    Ok(())
}

fn print_report(p: &Pruned, took: Duration) {
    println!(
        "events                 {} (of {} sessions)",
        p.events, p.sessions
    );
    println!("spilled event blobs    {}", p.spilled_blobs);
    println!("model stream records   {}", p.model_streams);
    println!("operational events     {}", p.ops_events);
    println!("orphaned event blobs   {}", p.orphaned_event_blobs);
    println!("orphaned snapshots     {}", p.orphaned_snapshots);
    println!("expired blobs          {}", p.expired_blobs);
    println!("pruned in {:.2}s", took.as_secs_f64());
}

/// Starts the janitor of `oma serve`: prunes at start and then every `interval`. `None` when
/// the configuration turns it off (`interval = "off"`).
/// The other shards' stores (they share the blob store with `name`).
fn siblings_of(shards: &[oma_store::ShardStore], name: &str) -> Vec<std::sync::Arc<Store>> {
    shards
        .iter()
        .filter(|s| s.name != name)
        .map(|s| s.store.clone())
        .collect()
}

pub fn start_janitor(
    router: oma_store::TenantRouter,
    file: &RetentionFileConfig,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let policy = policy(file, [None; 3])?;
    let every = match file.interval.as_deref().map(str::trim) {
        Some("off") => return Ok(None),
        Some(i) => parse_duration(i).context("retention: interval")?,
        None => DEFAULT_INTERVAL,
    };
    if every.is_zero() {
        bail!("retention: interval must be longer than 0 (or \"off\")");
    }
    Ok(Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let shards = router.shards();
            for shard in &shards {
                let siblings = siblings_of(&shards, &shard.name);
                let started = std::time::Instant::now();
                match shard.store.prune_sharded(&policy, &siblings).await {
                    Ok(p) => tracing::info!(
                        op = "retention",
                        events = p.events,
                        sessions = p.sessions,
                        spilled_blobs = p.spilled_blobs,
                        model_streams = p.model_streams,
                        ops_events = p.ops_events,
                        orphaned_event_blobs = p.orphaned_event_blobs,
                        orphaned_snapshots = p.orphaned_snapshots,
                        expired_blobs = p.expired_blobs,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "pruned"
                    ),
                    Err(e) => {
                        tracing::warn!(op = "retention", shard = %shard.name, error = %e, "prune failed; retrying at the next interval")
                    }
                }
            }
        }
    })))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn durations_and_policies_parse_with_clear_errors() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("2d").unwrap(), DAY * 2);
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
        assert!(parse_duration("1w").is_err() && parse_duration("h").is_err());

        let file: RetentionFileConfig = toml::from_str(
            "events_days = 30\nops_events_days = 90\n[blob_ttl]\nsnapshots = \"7d\"\n",
        )
        .unwrap();
        let p = policy(&file, [Some(1), None, None]).unwrap();
        assert_eq!(p.events, Some(DAY));
        assert_eq!(p.model_streams, None);
        assert_eq!(p.ops_events, Some(DAY * 90));
        assert_eq!(
            p.blob_ttls,
            vec![BlobTtl::new("snapshots", DAY * 7).unwrap()]
        );

        let bad: RetentionFileConfig = toml::from_str("[blob_ttl]\nevents = \"1d\"\n").unwrap();
        let e = format!("{:#}", policy(&bad, [None; 3]).unwrap_err());
        assert!(e.contains("deleted with them"), "{e}");
        let e = format!("{:#}", policy(&file, [Some(0), None, None]).unwrap_err());
        assert!(e.contains("events_days = 0"), "{e}");
        assert!(toml::from_str::<RetentionFileConfig>("event_days = 1").is_err());
    }
}
