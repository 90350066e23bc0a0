//! Process-wide metrics for oma, rendered as Prometheus text.
//!
//! Metrics are plain statics built from atomics, so any crate (runtime, sandbox, server) bumps
//! them without plumbing a handle through its constructors, and a bump costs one atomic add.
//! Label names are fixed per metric; label *values* must come from small sets (route templates,
//! tool names, outcomes) — a family caps the number of label sets it keeps so that a bug can
//! never grow memory without bound. No dependencies beyond std.

mod expo;
mod known;
pub mod process;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use expo::{Exposition, escape_label_value};
pub use known::*;

static HTTP_ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns on per-request HTTP accounting (done when a metrics listener starts). The other
/// metrics are always counted: each is a single atomic add.
pub fn enable_http() {
    HTTP_ENABLED.store(true, Ordering::Relaxed);
}

/// Whether per-request HTTP accounting is on.
pub fn http_enabled() -> bool {
    HTTP_ENABLED.load(Ordering::Relaxed)
}

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (things currently running).
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub const fn new() -> Self {
        Self(AtomicI64::new(0))
    }

    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Counts one running thing until the guard drops (so every exit path decrements).
    pub fn track(&'static self) -> GaugeGuard {
        self.inc();
        GaugeGuard(self)
    }
}

/// Holds one unit of a gauge; see [`Gauge::track`].
#[derive(Debug)]
pub struct GaugeGuard(&'static Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Upper bounds (seconds) of every latency histogram: 0.5 ms to 60 s.
pub const LATENCY_BOUNDS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// A latency histogram with the fixed [`LATENCY_BOUNDS`].
#[derive(Debug)]
pub struct Histogram {
    /// Per bucket (not cumulative); observations above the last bound only count in `count`.
    buckets: [AtomicU64; LATENCY_BOUNDS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub const fn new() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; LATENCY_BOUNDS.len()],
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BOUNDS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// `(upper bound, cumulative count)` per bucket, then the sum in seconds.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, f64) {
        let mut acc = 0;
        let buckets = LATENCY_BOUNDS
            .iter()
            .zip(&self.buckets)
            .map(|(b, c)| {
                acc += c.load(Ordering::Relaxed);
                (*b, acc)
            })
            .collect();
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        (buckets, sum)
    }
}

/// At most this many label sets per family; later ones share one `other` set.
pub const MAX_LABEL_SETS: usize = 2000;

/// One metric per set of label values, label names fixed.
#[derive(Debug)]
pub struct Family<T, const L: usize> {
    names: [&'static str; L],
    entries: Mutex<BTreeMap<String, Arc<Labeled<T, L>>>>,
}

/// A family member: its label values and the metric.
#[derive(Debug)]
pub struct Labeled<T, const L: usize> {
    pub values: [String; L],
    pub metric: T,
}

impl<T, const L: usize> std::ops::Deref for Labeled<T, L> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.metric
    }
}

impl<T: Default, const L: usize> Family<T, L> {
    pub const fn new(names: [&'static str; L]) -> Self {
        Self {
            names,
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn label_names(&self) -> &[&'static str; L] {
        &self.names
    }

    /// The member for `values`, created on first use.
    pub fn with(&self, values: [&str; L]) -> Arc<Labeled<T, L>> {
        let key = values.join("\u{1f}");
        // A poisoned lock only means a panic elsewhere mid-insert; the map itself is intact.
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = entries.get(&key) {
            return e.clone();
        }
        let (key, values) = if entries.len() >= MAX_LABEL_SETS {
            (
                ["other"; L].join("\u{1f}"),
                std::array::from_fn(|_| "other".to_string()),
            )
        } else {
            (key, values.map(str::to_string))
        };
        entries
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Labeled {
                    values,
                    metric: T::default(),
                })
            })
            .clone()
    }

    /// Every member, in label order.
    pub fn members(&self) -> Vec<Arc<Labeled<T, L>>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.values().cloned().collect()
    }
}

impl<const L: usize> Family<Counter, L> {
    pub fn inc(&self, values: [&str; L]) {
        self.with(values).inc();
    }

    /// The current count for `values` (0 when never bumped).
    pub fn get(&self, values: [&str; L]) -> u64 {
        let key = values.join("\u{1f}");
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(&key).map_or(0, |c| c.get())
    }
}

impl<const L: usize> Family<Histogram, L> {
    pub fn observe(&self, values: [&str; L], d: Duration) {
        self.with(values).observe(d);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(120));
        let (b, sum) = h.snapshot();
        assert_eq!(b[0], (0.0005, 1));
        assert_eq!(b[3], (0.005, 2));
        assert_eq!(b.last().unwrap().1, 2, "the 120 s one is only in +Inf");
        assert_eq!(h.count(), 3);
        assert!((sum - 120.0033).abs() < 1e-6, "{sum}");
    }

    #[test]
    fn families_cap_their_label_sets() {
        let f: Family<Counter, 1> = Family::new(["id"]);
        for i in 0..MAX_LABEL_SETS + 10 {
            f.inc([&i.to_string()]);
        }
        assert_eq!(f.members().len(), MAX_LABEL_SETS + 1);
        assert_eq!(f.get(["other"]), 10);
        assert_eq!(f.get(["7"]), 1);
    }

    #[test]
    fn gauge_guards_decrement_on_drop() {
        static G: Gauge = Gauge::new();
        let a = G.track();
        let b = G.track();
        assert_eq!(G.get(), 2);
        drop(a);
        drop(b);
        assert_eq!(G.get(), 0);
    }
}
