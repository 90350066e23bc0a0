//! CPU time of the benchmark's own threads, split into load generator and server, so a result
//! says whether the server was CPU-bound and what the client cost; and the machine's busy time,
//! so CPU taken by other processes (a compiler running beside the benchmark) shows up in the
//! results instead of silently lowering them. Linux only (`/proc`); on other systems the
//! figures are simply absent.

use std::fs;

/// Name prefix of the load generator's runtime threads. Every other thread of the process
/// (the server runtime, SQLite connection threads, the idle main thread) counts as server,
/// except the fake model's.
pub const CLIENT_THREAD: &str = "bench-client";
/// Name prefix of the fake model's runtime threads. They count as client: the model is part
/// of the load the server is put under, not of the server.
pub const MODEL_THREAD: &str = "bench-model";

/// Fills in `s`'s CPU columns from samples taken at the start and end of a `window`.
pub fn attach(
    s: &mut crate::stats::Summary,
    first: Option<CpuSample>,
    last: Option<CpuSample>,
    window: std::time::Duration,
) {
    if let (Some(a), Some(b)) = (first, last)
        && let Some(c) = a.cores_until(&b, window.as_secs_f64())
    {
        s.server_cores = Some(c.server);
        s.client_cores = Some(c.client);
        s.other_cores = c.other;
    }
}

/// Cumulative CPU nanoseconds of the process's threads at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuSample {
    pub client_ns: u64,
    pub server_ns: u64,
    /// Busy time of all CPUs, every process included.
    pub machine_ns: u64,
}

impl CpuSample {
    /// Reads every thread's `schedstat` (time on CPU, in ns). `None` when `/proc` is missing.
    pub fn now() -> Option<Self> {
        let mut s = CpuSample {
            machine_ns: fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|t| parse_proc_stat(&t))
                .unwrap_or(0),
            ..CpuSample::default()
        };
        for entry in fs::read_dir("/proc/self/task").ok()? {
            let Ok(entry) = entry else { continue };
            let dir = entry.path();
            // A thread may exit between listing and reading: skip it.
            let (Ok(stat), Ok(comm)) = (
                fs::read_to_string(dir.join("schedstat")),
                fs::read_to_string(dir.join("comm")),
            ) else {
                continue;
            };
            let Some(ns) = parse_schedstat(&stat) else {
                continue;
            };
            let comm = comm.trim_end();
            if comm.starts_with(CLIENT_THREAD) || comm.starts_with(MODEL_THREAD) {
                s.client_ns += ns;
            } else {
                s.server_ns += ns;
            }
        }
        Some(s)
    }

    /// Cores used between `self` and a later sample over `secs` seconds.
    pub fn cores_until(&self, later: &CpuSample, secs: f64) -> Option<Cores> {
        if secs <= 0.0 {
            return None;
        }
        let cores = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e9 / secs;
        let server = cores(self.server_ns, later.server_ns);
        let client = cores(self.client_ns, later.client_ns);
        let machine = cores(self.machine_ns, later.machine_ns);
        Some(Cores {
            server,
            client,
            // Jiffy granularity makes small negatives possible: clamp.
            other: (later.machine_ns > 0).then(|| (machine - server - client).max(0.0)),
        })
    }
}

/// CPU use over a window, in cores (1.0 = one core busy all the time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cores {
    pub server: f64,
    pub client: f64,
    /// Other processes; `None` when the machine's busy time is unknown.
    pub other: Option<f64>,
}

/// Busy nanoseconds of all CPUs from the first (`cpu `) line of `/proc/stat`: every field but
/// `idle` and `iowait`, ignoring `guest` and `guest_nice`, which `user` and `nice` already
/// include. Fields are in USER_HZ ticks, which Linux fixes at 100 per second in this file.
fn parse_proc_stat(s: &str) -> Option<u64> {
    let line = s.lines().next()?;
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = fields
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 4 {
        return None;
    }
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    let busy = v.iter().sum::<u64>() - idle;
    Some(busy * 10_000_000)
}

/// The first field of `/proc/…/schedstat`: nanoseconds spent running.
fn parse_schedstat(s: &str) -> Option<u64> {
    s.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schedstat() {
        assert_eq!(parse_schedstat("123456 789 10\n"), Some(123_456));
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(parse_schedstat("x 1 2"), None);
    }

    #[test]
    fn parses_proc_stat() {
        let s = "cpu  100 5 50 1000 20 1 2 3 7 0\ncpu0 50 2 25 500 10 0 1 1 0 0\n";
        // user+nice+system+irq+softirq+steal = 161 ticks of 10 ms.
        assert_eq!(parse_proc_stat(s), Some(1_610_000_000));
        assert_eq!(parse_proc_stat("intr 1 2 3\n"), None);
        assert_eq!(parse_proc_stat(""), None);
    }

    #[test]
    fn cores_over_a_window() {
        let a = CpuSample {
            client_ns: 1_000_000_000,
            server_ns: 0,
            machine_ns: 1_000_000_000,
        };
        let b = CpuSample {
            client_ns: 1_500_000_000,
            server_ns: 3_000_000_000,
            machine_ns: 6_000_000_000,
        };
        let c = a.cores_until(&b, 2.0).unwrap();
        assert!((c.server - 1.5).abs() < 1e-9 && (c.client - 0.25).abs() < 1e-9);
        assert!((c.other.unwrap() - 0.75).abs() < 1e-9);
        assert_eq!(a.cores_until(&b, 0.0), None);
        let unknown = CpuSample { machine_ns: 0, ..b };
        assert_eq!(a.cores_until(&unknown, 2.0).unwrap().other, None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn samples_this_process() {
        let s = CpuSample::now().expect("/proc is available on Linux");
        assert!(s.client_ns + s.server_ns > 0);
        assert!(s.machine_ns > 0);
    }
}
