//! The kinds of operational event and their typed constructors.
//!
//! Each constructor fixes the kind's attribute names, so queries (`--where tool=bash`,
//! `--group-by tool,outcome`) can rely on them. Attributes never hold a secret: egress events
//! carry a credential's id, never its value.

use std::fmt::Display;
use std::time::Duration;

use serde_json::{Map, Value};

pub use oma_store::ops_events::OpsEvent;

pub const SILENT_CATCH: &str = "silent_catch";
pub const SESSION_TRANSITION: &str = "session_transition";
pub const TOOL_CALL: &str = "tool_call";
pub const MODEL_REQUEST: &str = "model_request";
pub const EGRESS_FORWARD: &str = "egress_forward";
pub const EGRESS_DENIED: &str = "egress_denied";
pub const INTEGRATION_DISPATCH: &str = "integration_dispatch";
pub const SANDBOX_OOM: &str = "sandbox_oom";
pub const SANDBOX_START: &str = "sandbox_start";

/// Every kind, for help texts and validation.
pub const KINDS: &[&str] = &[
    SILENT_CATCH,
    SESSION_TRANSITION,
    TOOL_CALL,
    MODEL_REQUEST,
    EGRESS_FORWARD,
    EGRESS_DENIED,
    INTEGRATION_DISPATCH,
    SANDBOX_OOM,
    SANDBOX_START,
];

/// Error texts are cut to this many characters: the row is for counting and a first look,
/// the logs hold the rest.
const MAX_TEXT: usize = 512;

fn base(
    kind: &str,
    outcome: &str,
    duration: Option<Duration>,
    fields: Map<String, Value>,
) -> OpsEvent {
    OpsEvent {
        id: oma_core::ids::new_id(oma_store::ops_events::ID_PREFIX),
        at: oma_core::time::now_micros(),
        kind: kind.to_string(),
        tenant_id: None,
        session_id: None,
        outcome: outcome.to_string(),
        duration_ms: duration.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        fields,
    }
}

fn fields<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

fn text(s: impl Display) -> Value {
    let s = s.to_string();
    match s.char_indices().nth(MAX_TEXT) {
        Some((cut, _)) => Value::String(format!("{}…", &s[..cut])),
        None => Value::String(s),
    }
}

fn ok_or_error(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

/// Attaching the tenant and session an event belongs to.
pub trait Scoped: Sized {
    fn tenant(self, tenant: &str) -> Self;
    fn session(self, tenant: &str, session: &str) -> Self;
}

impl Scoped for OpsEvent {
    fn tenant(mut self, tenant: &str) -> Self {
        self.tenant_id = Some(tenant.to_string());
        self
    }

    fn session(mut self, tenant: &str, session: &str) -> Self {
        self.tenant_id = Some(tenant.to_string());
        self.session_id = Some(session.to_string());
        self
    }
}

/// An error that was caught and handled without the user seeing it.
pub fn silent_catch(component: &str, error: impl Display) -> OpsEvent {
    base(
        SILENT_CATCH,
        "error",
        None,
        fields([("component", component.into()), ("error", text(error))]),
    )
}

/// A session's status changed (`idle` → `running`, …).
pub fn session_transition(from: &str, to: &str) -> OpsEvent {
    base(
        SESSION_TRANSITION,
        "ok",
        None,
        fields([("from", from.into()), ("to", to.into())]),
    )
}

/// A tool call finished.
pub fn tool_call(tool: &str, ok: bool, duration: Duration) -> OpsEvent {
    base(
        TOOL_CALL,
        ok_or_error(ok),
        Some(duration),
        fields([("tool", tool.into())]),
    )
}

/// A model request ended: `outcome` is `ok`, `error` or `interrupted`; `error` names the
/// error class when there was one.
pub fn model_request(
    provider: &str,
    model: &str,
    outcome: &str,
    latency: Duration,
    input_tokens: u64,
    output_tokens: u64,
    error: Option<&str>,
) -> OpsEvent {
    base(
        MODEL_REQUEST,
        outcome,
        Some(latency),
        fields([
            ("provider", provider.into()),
            ("model", model.into()),
            ("input_tokens", input_tokens.into()),
            ("output_tokens", output_tokens.into()),
            ("error", error.map_or(Value::Null, text)),
        ]),
    )
}

/// The egress proxy forwarded a request. `credential_id` names the injected credential (never
/// its value); `status` is the upstream's HTTP status.
pub fn egress_forward(
    host: &str,
    credential_id: Option<&str>,
    status: u16,
    duration: Duration,
) -> OpsEvent {
    base(
        EGRESS_FORWARD,
        ok_or_error(status < 500),
        Some(duration),
        fields([
            ("host", host.into()),
            (
                "credential_id",
                credential_id.map_or(Value::Null, Value::from),
            ),
            ("status", status.into()),
        ]),
    )
}

/// The egress proxy refused a request (`reason`: not on the allowlist, …).
pub fn egress_denied(host: &str, credential_id: Option<&str>, reason: &str) -> OpsEvent {
    base(
        EGRESS_DENIED,
        "denied",
        None,
        fields([
            ("host", host.into()),
            (
                "credential_id",
                credential_id.map_or(Value::Null, Value::from),
            ),
            ("reason", text(reason)),
        ]),
    )
}

/// An integration (Linear, GitHub, Slack) dispatched an incoming event.
pub fn integration_dispatch(
    integration: &str,
    event: &str,
    outcome: &str,
    duration: Duration,
) -> OpsEvent {
    base(
        INTEGRATION_DISPATCH,
        outcome,
        Some(duration),
        fields([("integration", integration.into()), ("event", event.into())]),
    )
}

/// A sandbox hit its memory limit.
pub fn sandbox_oom(backend: &str, memory_limit_bytes: Option<u64>) -> OpsEvent {
    base(
        SANDBOX_OOM,
        "error",
        None,
        fields([
            ("backend", backend.into()),
            (
                "memory_limit_bytes",
                memory_limit_bytes.map_or(Value::Null, Value::from),
            ),
        ]),
    )
}

/// A sandbox was started (or failed to start, with `error`).
pub fn sandbox_start(backend: &str, duration: Duration, error: Option<&str>) -> OpsEvent {
    base(
        SANDBOX_START,
        ok_or_error(error.is_none()),
        Some(duration),
        fields([
            ("backend", backend.into()),
            ("error", error.map_or(Value::Null, text)),
        ]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_fix_the_attributes() {
        let e = tool_call("bash", false, Duration::from_millis(12)).session("t", "s");
        assert_eq!(e.kind, "tool_call");
        assert_eq!(e.outcome, "error");
        assert_eq!(e.duration_ms, Some(12));
        assert_eq!(e.fields["tool"], "bash");
        assert_eq!(e.tenant_id.as_deref(), Some("t"));
        assert_eq!(e.session_id.as_deref(), Some("s"));
        assert!(e.id.starts_with("opev_"));

        let e = egress_forward("api.github.com", None, 200, Duration::ZERO);
        assert!(!e.fields.contains_key("credential_id"));
        assert_eq!(e.outcome, "ok");

        let long = "x".repeat(2000);
        let e = silent_catch("runtime", &long);
        assert!(e.fields["error"].as_str().unwrap().chars().count() <= MAX_TEXT + 1);
    }
}
