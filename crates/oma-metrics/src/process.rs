//! Process CPU and memory from `/proc/self` (Linux); elsewhere nothing is written.

use crate::Exposition;

/// Linux reports CPU times in USER_HZ ticks, which the kernel ABI fixes at 100 per second.
const TICKS_PER_SEC: f64 = 100.0;

/// CPU seconds (user + system) and start time (seconds after boot) from `/proc/self/stat`.
fn stat() -> Option<(f64, f64)> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name is in parentheses and may hold spaces: fields count from after it.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Field n of proc(5) is f[n - 3]: utime 14, stime 15, starttime 22.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let start: f64 = f.get(19)?.parse().ok()?;
    Some(((utime + stime) / TICKS_PER_SEC, start / TICKS_PER_SEC))
}

/// Resident and virtual memory in bytes, from `/proc/self/status` (kB, exact). `statm`
/// counts pages and would need the page size, which std cannot ask for without libc.
fn memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..]
            .split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
            .map(|v| v * 1024)
    };
    Some((kb("VmRSS:")?, kb("VmSize:")?))
}

fn boot_time() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// Writes the standard `process_*` metrics that can be read.
pub fn render(e: &mut Exposition) {
    if let Some((cpu, start)) = stat() {
        e.counter_value(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            cpu,
        );
        if let Some(boot) = boot_time() {
            e.gauge_value(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                boot + start,
            );
        }
    }
    if let Some((rss, virt)) = memory() {
        e.gauge_value(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            rss,
        );
        e.gauge_value(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            virt,
        );
    }
    if let Some(n) = open_fds() {
        e.gauge_value("process_open_fds", "Number of open file descriptors.", n);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn reads_this_process() {
        // Burn a little CPU so the counter is visibly non-negative and parsable.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        let (cpu, start) = stat().unwrap();
        assert!(cpu >= 0.0 && start > 0.0);
        let (rss, virt) = memory().unwrap();
        assert!(rss > 0 && virt >= rss);
        let mut e = Exposition::new();
        render(&mut e);
        let text = e.finish();
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(text.contains("process_cpu_seconds_total "), "{text}");
    }
}
