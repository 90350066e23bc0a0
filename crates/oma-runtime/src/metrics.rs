//! Metric bumps of the runtime (see `oma-metrics`). Label values stay in small sets: tool names
//! the model invents are counted as `other`.

use std::time::Duration;

/// The built-in tools; any other name a model sends is one label, `other`.
const BUILTIN_TOOLS: [&str; 8] = [
    "bash",
    "read",
    "write",
    "edit",
    "glob",
    "grep",
    "web_fetch",
    "web_search",
];

pub(crate) fn tool_call(name: &str, is_error: bool, took: Duration) {
    let tool = BUILTIN_TOOLS
        .iter()
        .find(|t| **t == name)
        .copied()
        .unwrap_or("other");
    let outcome = if is_error { "error" } else { "ok" };
    oma_metrics::TOOL_CALLS.inc([tool, outcome]);
    oma_metrics::TOOL_DURATION.observe([tool], took);
}

/// `outcome`: `ok`, `interrupted`, or the error type the session reports.
pub(crate) fn model_request(provider: &str, outcome: &str, took: Duration) {
    oma_metrics::MODEL_REQUESTS.inc([provider, outcome]);
    oma_metrics::MODEL_DURATION.observe([provider], took);
}

pub(crate) fn events_appended(n: usize) {
    oma_metrics::EVENTS_APPENDED.add(n as u64);
}
