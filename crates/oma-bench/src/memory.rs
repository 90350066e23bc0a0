//! `--only memory`: what sessions cost the server in memory. The process's resident set
//! (`VmRSS`: the in-process server, and the client's one connection) before and after
//! creating `--memory-sessions` sessions of an agent without tools (no boxes), once right after
//! the creates (their hosts alive: a session's host starts at create) and once their hosts have
//! stopped (they linger 10 s after going idle), which is the cost of sessions that exist.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::client::Api;

/// The process's resident set, in KiB.
fn rss_kib() -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/self/status")
}

/// Waits until no session host is alive.
async fn until_hosts_stopped(within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    while oma_metrics::SESSIONS_ACTIVE.get() > 0 {
        if Instant::now() > deadline {
            bail!(
                "{} session hosts were still alive after {within:?}",
                oma_metrics::SESSIONS_ACTIVE.get()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

pub async fn run(api: &mut Api, sessions: usize) -> Result<String> {
    let agent = api
        .create(
            "/v1/agents",
            &json!({"name": "bench-memory", "model": crate::MODEL}),
        )
        .await?;
    let env = api
        .create(
            "/v1/environments",
            &json!({"name": "bench-memory", "config": {"type": "cloud"}}),
        )
        .await?;
    let body = json!({"agent": agent, "environment_id": env});
    // One session first, so that what every first session sets up once is not counted.
    api.create("/v1/sessions", &body).await?;
    until_hosts_stopped(Duration::from_secs(120)).await?;
    let before = rss_kib()?;
    for _ in 0..sessions {
        api.create("/v1/sessions", &body).await?;
    }
    let created = rss_kib()?;
    until_hosts_stopped(Duration::from_secs(120)).await?;
    let settled = rss_kib()?;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let delta = |kib: u64| (kib as f64 - before as f64) / 1024.0;
    Ok(format!(
        "memory: {sessions} sessions of an agent without tools: RSS {:.1} MiB before, {:.1} MiB \
         right after creating them ({:+.1} MiB, their hosts alive), {:.1} MiB once their hosts \
         stopped ({:+.1} MiB)",
        mib(before),
        mib(created),
        delta(created),
        mib(settled),
        delta(settled)
    ))
}
