//! Isolated box benchmark: cold start to first tool result, tool round trip, idle memory.
//!
//! ```sh
//! cargo build --release -p oma-sandbox --bins --examples
//! target/release/examples/box_bench [--starts 50] [--calls 1000] [--idle 50]
//! ```
//!
//! Real bubblewrap boxes with their cgroups (run as root, bubblewrap installed), the real
//! in-box agent binary (`target/release/oma-sandbox-agent`). Prints p50/p99 of:
//! - cold start: `launch` of a fresh box (new workspace) until the result of its first
//!   `bash echo hi` has arrived;
//! - round trip: one `bash echo hi` on a warm box, sequentially;
//!
//! and the resident memory (sum of RSS of every host process of the box: bubblewrap, its
//! init, the agent, the shell) of idle boxes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oma_sandbox::{
    BoxSpec, CancellationToken, IsolatedConfig, IsolatedLauncher, Limits, Sandbox, SandboxLauncher,
    ToolCall,
};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn agent_exe() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/examples/box_bench → target/<profile>/oma-sandbox-agent
    let agent = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("oma-sandbox-agent");
    assert!(
        agent.exists(),
        "{} is missing: cargo build --release -p oma-sandbox --bins",
        agent.display()
    );
    agent
}

fn echo() -> ToolCall {
    ToolCall::Bash {
        command: Some("echo hi".into()),
        restart: false,
        timeout_ms: None,
    }
}

const LIMITS: Limits = Limits {
    millicpus: Some(1000),
    memory_bytes: Some(1 << 30),
    pids: Some(512),
    disk_bytes: None,
};

fn spec(dir: &std::path::Path, n: usize) -> BoxSpec {
    BoxSpec {
        session_id: format!("sesn_bench{n}"),
        workspace: dir.join(format!("ws{n}")),
        limits: LIMITS,
        ..BoxSpec::default()
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(label: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{label:<34} n={:<5} p50={:>8.2} ms  p99={:>8.2} ms  max={:>8.2} ms",
        v.len(),
        pct(&v, 0.5).as_secs_f64() * 1e3,
        pct(&v, 0.99).as_secs_f64() * 1e3,
        v.last().unwrap().as_secs_f64() * 1e3
    );
}

/// RSS in KiB of `root` and every process below it.
fn tree_rss_kib(root: u32) -> u64 {
    let mut parent: HashMap<u32, u32> = HashMap::new();
    let mut rss: HashMap<u32, u64> = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("PPid:") {
                parent.insert(pid, v.trim().parse().unwrap_or(0));
            }
            if let Some(v) = line.strip_prefix("VmRSS:") {
                rss.insert(
                    pid,
                    v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0),
                );
            }
        }
    }
    let in_tree = |mut pid: u32| {
        while pid > 1 {
            if pid == root {
                return true;
            }
            pid = parent.get(&pid).copied().unwrap_or(0);
        }
        false
    };
    rss.iter()
        .filter(|(pid, _)| in_tree(**pid))
        .map(|(_, kib)| *kib)
        .sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let starts = arg("--starts", 50);
    let calls = arg("--calls", 1000);
    let idle = arg("--idle", 50);
    let dir = tempfile::tempdir().unwrap();
    let launcher =
        IsolatedLauncher::new(IsolatedConfig::new(agent_exe(), dir.path().join("state")));
    let pre = launcher
        .preflight()
        .await
        .expect("this host cannot run isolated boxes");
    println!(
        "bubblewrap: {}; cgroups: {}",
        pre.bwrap_version, pre.cgroups
    );

    // Cold starts, one after the other (a warm-up box first: page cache, cgroup parent).
    let warm = launcher.launch(spec(dir.path(), 0)).await.unwrap();
    warm.call(echo(), CancellationToken::new()).await.unwrap();
    warm.shutdown().await;
    let mut cold = Vec::with_capacity(starts);
    for n in 1..=starts {
        let t = Instant::now();
        let sb = launcher.launch(spec(dir.path(), n)).await.unwrap();
        let out = sb.call(echo(), CancellationToken::new()).await.unwrap();
        cold.push(t.elapsed());
        assert!(!out.is_error);
        sb.shutdown().await;
    }
    report("cold start → first tool result", cold);

    // Round trips on one warm box.
    let sb = launcher.launch(spec(dir.path(), 10_000)).await.unwrap();
    for _ in 0..50 {
        sb.call(echo(), CancellationToken::new()).await.unwrap();
    }
    let mut rt = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        sb.call(echo(), CancellationToken::new()).await.unwrap();
        rt.push(t.elapsed());
    }
    report("tool round trip (bash echo hi)", rt);
    sb.shutdown().await;

    // Idle boxes, each with its shell started.
    let mut boxes: Vec<Arc<dyn Sandbox>> = Vec::with_capacity(idle);
    for n in 0..idle {
        let sb = launcher.launch(spec(dir.path(), 20_000 + n)).await.unwrap();
        sb.call(echo(), CancellationToken::new()).await.unwrap();
        boxes.push(sb);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let total_kib: u64 = boxes
        .iter()
        .map(|b| tree_rss_kib(b.info().agent_pid.unwrap()))
        .sum();
    println!(
        "{idle} idle boxes: {:.1} MiB resident in all, {:.2} MiB per box (RSS; shared pages counted per process)",
        total_kib as f64 / 1024.0,
        total_kib as f64 / 1024.0 / idle as f64
    );
    for b in boxes {
        b.shutdown().await;
    }
}
