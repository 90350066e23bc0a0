//! Latency summaries and the results table.

use std::time::Duration;

/// What one scenario measured.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub label: String,
    pub connections: usize,
    /// Successful requests completed in the measured window.
    pub ok: u64,
    /// Requests that failed (unexpected status or transport error) in the measured window.
    pub errors: u64,
    /// From the start of the measured window to the last recorded completion.
    pub elapsed: Duration,
    pub p50_us: u32,
    pub p99_us: u32,
    pub max_us: u32,
    /// Mean response body size of successful requests.
    pub mean_body: usize,
    /// CPU time spent during the window, in cores (1.0 = one core busy all the time).
    pub server_cores: Option<f64>,
    pub client_cores: Option<f64>,
    /// CPU other processes used meanwhile, in cores: anything well above 0 means the machine
    /// was not quiet and the figures are low.
    pub other_cores: Option<f64>,
    /// The first error seen, to say why a run had errors.
    pub first_error: Option<String>,
}

impl Summary {
    /// Builds a summary from unsorted per-request latencies in microseconds.
    pub fn new(label: &str, connections: usize, mut latencies: Vec<u32>) -> Self {
        latencies.sort_unstable();
        Summary {
            label: label.to_string(),
            connections,
            ok: latencies.len() as u64,
            p50_us: percentile(&latencies, 50.0),
            p99_us: percentile(&latencies, 99.0),
            max_us: latencies.last().copied().unwrap_or(0),
            ..Summary::default()
        }
    }

    pub fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }
}

/// The nearest-rank percentile `p` (0–100] of sorted values; 0 for no values.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// Microseconds as milliseconds with three decimals (`0.412 ms`).
pub fn ms(us: u32) -> String {
    format!("{:.3} ms", f64::from(us) / 1000.0)
}

fn cores(c: Option<f64>) -> String {
    c.map_or_else(|| "-".to_string(), |c| format!("{c:.2}"))
}

/// The results as an aligned text table (first column left-aligned, the others right).
pub fn table(rows: &[Summary]) -> String {
    let header = [
        "scenario",
        "conns",
        "req/s",
        "p50",
        "p99",
        "max",
        "ok",
        "errors",
        "resp B",
        "srv cpu",
        "cli cpu",
        "other cpu",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|s| {
            vec![
                s.label.clone(),
                s.connections.to_string(),
                format!("{:.0}", s.rps()),
                ms(s.p50_us),
                ms(s.p99_us),
                ms(s.max_us),
                s.ok.to_string(),
                s.errors.to_string(),
                s.mean_body.to_string(),
                cores(s.server_cores),
                cores(s.client_cores),
                cores(s.other_cores),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |row: &[String]| -> String {
        let mut out = String::new();
        for (i, (c, w)) in row.iter().zip(&widths).enumerate() {
            if i == 0 {
                out.push_str(&format!("{c:<w$}"));
            } else {
                out.push_str(&format!("  {c:>w$}"));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(&header.map(String::from));
    out.push('\n');
    out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
    out.push('\n');
    for row in &cells {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[1, 2], 0.0), 1);
    }

    #[test]
    fn summary_sorts_and_rates() {
        let mut s = Summary::new("x", 4, vec![30, 10, 20]);
        assert_eq!((s.ok, s.p50_us, s.p99_us, s.max_us), (3, 20, 30, 30));
        s.elapsed = Duration::from_millis(1500);
        assert!((s.rps() - 2.0).abs() < 1e-9);
        assert_eq!(Summary::new("empty", 1, vec![]).rps(), 0.0);
    }

    #[test]
    fn table_is_aligned() {
        let mut a = Summary::new("GET /v1/agents/{id}", 16, vec![250, 400]);
        a.elapsed = Duration::from_secs(1);
        let b = Summary::new("POST /v1/agents", 16, vec![1_250_000]);
        let t = table(&[a, b]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("scenario"));
        assert!(lines[2].contains("0.250 ms") && lines[2].contains("0.400 ms"));
        assert!(lines[3].contains("1250.000 ms"));
        // Right-aligned columns end at the same place on every line.
        assert_eq!(lines[2].len(), lines[3].len());
        assert_eq!(lines[0].len(), lines[2].len());
    }
}
