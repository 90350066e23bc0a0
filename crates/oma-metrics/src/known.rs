//! The metrics oma records, and how they render. Names follow Prometheus conventions
//! (`_total` for counters, base units: seconds, bytes).

use crate::{Counter, Exposition, Family, Gauge, Histogram};

/// HTTP requests by method, route template (axum's matched path, never a raw path with ids)
/// and status code.
pub static HTTP_REQUESTS: Family<Counter, 3> = Family::new(["method", "route", "status"]);
/// HTTP requests answered with an error, by method, route and class (`client`: 4xx, `server`: 5xx).
pub static HTTP_ERRORS: Family<Counter, 3> = Family::new(["method", "route", "class"]);
/// Time to the response head, by method and route.
pub static HTTP_DURATION: Family<Histogram, 2> = Family::new(["method", "route"]);

/// Events appended to session logs.
pub static EVENTS_APPENDED: Counter = Counter::new();
/// Sessions with a live host.
pub static SESSIONS_ACTIVE: Gauge = Gauge::new();
/// Session leases this node holds (its hosts that own their session).
pub static LEASES_HELD: Gauge = Gauge::new();
/// Lease claims by outcome (`won`, `held`: another node owns the session, `error`).
pub static LEASE_CLAIMS: Family<Counter, 1> = Family::new(["outcome"]);
/// Steps refused because their host's lease was lost (another node took the session over).
pub static LEASE_FENCING_REJECTIONS: Counter = Counter::new();
/// Sandboxes (boxes) running.
pub static SANDBOXES_RUNNING: Gauge = Gauge::new();
/// Boxes launched ahead of time, waiting for a new session (the isolated backend's pool).
pub static SANDBOXES_READY: Gauge = Gauge::new();
/// Tool calls by tool and outcome (`ok`, `error`).
pub static TOOL_CALLS: Family<Counter, 2> = Family::new(["tool", "outcome"]);
/// Tool call durations by tool.
pub static TOOL_DURATION: Family<Histogram, 1> = Family::new(["tool"]);
/// Model requests (each attempt) by provider and outcome (`ok`, `interrupted`, or the error type).
pub static MODEL_REQUESTS: Family<Counter, 2> = Family::new(["provider", "outcome"]);
/// Model request durations (request to end of stream) by provider.
pub static MODEL_DURATION: Family<Histogram, 1> = Family::new(["provider"]);

/// Writes every metric above.
pub fn render_known(e: &mut Exposition) {
    e.counter_family(
        "oma_http_requests_total",
        "HTTP requests by method, route and status.",
        &HTTP_REQUESTS,
    );
    e.counter_family(
        "oma_http_request_errors_total",
        "HTTP requests answered with an error status (class client = 4xx, server = 5xx).",
        &HTTP_ERRORS,
    );
    e.histogram_family(
        "oma_http_request_duration_seconds",
        "Time from request to response head, by method and route.",
        &HTTP_DURATION,
    );
    e.counter(
        "oma_events_appended_total",
        "Events appended to session logs.",
        &EVENTS_APPENDED,
    );
    e.gauge(
        "oma_sessions_active",
        "Sessions with a live host (running a turn, or lingering after one).",
        &SESSIONS_ACTIVE,
    );
    e.gauge(
        "oma_leases_held",
        "Session leases this node holds (sessions whose host runs here).",
        &LEASES_HELD,
    );
    e.counter_family(
        "oma_lease_claims_total",
        "Session lease claims by outcome (won, held by another node, error).",
        &LEASE_CLAIMS,
    );
    e.counter(
        "oma_lease_fencing_rejections_total",
        "Steps refused because their host had lost the session's lease to another node.",
        &LEASE_FENCING_REJECTIONS,
    );
    e.gauge(
        "oma_sandboxes_running",
        "Sandboxes (boxes) currently running.",
        &SANDBOXES_RUNNING,
    );
    e.gauge(
        "oma_sandboxes_ready",
        "Boxes launched ahead of time and waiting for a new session (OMA_SANDBOX_POOL).",
        &SANDBOXES_READY,
    );
    e.counter_family(
        "oma_tool_calls_total",
        "Tool calls by tool and outcome.",
        &TOOL_CALLS,
    );
    e.histogram_family(
        "oma_tool_call_duration_seconds",
        "Tool call durations by tool.",
        &TOOL_DURATION,
    );
    e.counter_family(
        "oma_model_requests_total",
        "Model requests (each attempt) by provider and outcome.",
        &MODEL_REQUESTS,
    );
    e.histogram_family(
        "oma_model_request_duration_seconds",
        "Model request durations, request to end of stream, by provider.",
        &MODEL_DURATION,
    );
}
