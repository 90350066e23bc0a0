//! Logs: one JSON object per line on stdout (`ts`, `level`, `msg`, `component`, `target`,
//! `op`, `tenant_id`, `session_id`, `agent_id`, error fields…), and the live tail: the same
//! lines fanned out to `oma tail` subscribers. Fields of the spans a record happens in are
//! merged into it, so a line logged anywhere inside a session's host carries the session's
//! tenant and ids without every call site repeating them.
//!
//! Records go over a `tokio::sync::broadcast` channel, which never makes the sender wait: a
//! subscriber that falls more than the channel's capacity behind loses the oldest lines and
//! learns how many (`Lagged(n)`), so logging costs the same however slow a tail is. With no
//! subscriber a record costs one check.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Lines a subscriber may fall behind before it skips.
const CAPACITY: usize = 4096;

/// One log record as subscribers see it.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub level: Level,
    /// `api`, `runtime`, `integrations`, … (see [`component_of`]).
    pub component: String,
    pub tenant_id: Option<String>,
    pub session_id: Option<String>,
    /// The record as one JSON object (`ts`, `level`, `component`, `target`, `msg`, fields).
    pub json: String,
}

/// The fan-out point. Cheap to clone.
#[derive(Clone)]
pub struct LogTail {
    tx: broadcast::Sender<Arc<LogLine>>,
}

impl Default for LogTail {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LogTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogTail")
            .field("subscribers", &self.tx.receiver_count())
            .finish()
    }
}

impl LogTail {
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
        }
    }

    /// The layer to install in the tracing subscriber (fan-out only).
    pub fn layer(&self) -> TailLayer {
        TailLayer {
            tx: self.tx.clone(),
            stdout: false,
        }
    }

    /// The layer that also writes every record as a JSON line to stdout: the server's log.
    pub fn layer_with_stdout(&self) -> TailLayer {
        TailLayer {
            tx: self.tx.clone(),
            stdout: true,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LogLine>> {
        self.tx.subscribe()
    }
}

/// What a subscriber wants to see.
#[derive(Debug, Clone, Default)]
pub struct TailFilter {
    pub component: Option<String>,
    pub tenant: Option<String>,
    pub session: Option<String>,
    /// The least severe level shown (`warn` shows warnings and errors).
    pub level: Option<Level>,
}

impl TailFilter {
    pub fn matches(&self, line: &LogLine) -> bool {
        // Levels order by verbosity: ERROR < WARN < INFO < DEBUG < TRACE.
        self.level.is_none_or(|l| line.level <= l)
            && self
                .component
                .as_deref()
                .is_none_or(|c| c == line.component)
            && self
                .tenant
                .as_deref()
                .is_none_or(|t| line.tenant_id.as_deref() == Some(t))
            && self
                .session
                .as_deref()
                .is_none_or(|s| line.session_id.as_deref() == Some(s))
    }
}

/// Parses `error|warn|info|debug|trace` (any case).
pub fn parse_level(s: &str) -> Option<Level> {
    s.trim().parse().ok()
}

/// The component a record belongs to: its `component` field, else the crate it comes from.
pub fn component_of(target: &str) -> &str {
    let krate = target.split("::").next().unwrap_or(target);
    match krate {
        "oma_server" => "api",
        "oma_runtime" | "oma_tools" | "oma_model" => "runtime",
        "oma_integrations" => "integrations",
        "oma_sandbox" => "sandbox",
        "oma_egress" => "egress",
        "oma_store" | "sqlx" => "store",
        "oma_ops" => "ops",
        "oma" => "server",
        other => other,
    }
}

pub struct TailLayer {
    tx: broadcast::Sender<Arc<LogLine>>,
    stdout: bool,
}

/// A span's fields, kept in its extensions for the records inside it.
struct SpanFields(Map<String, Value>);

impl<S> Layer<S> for TailLayer
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut fields = Fields(Map::new());
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.0));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(SpanFields(map)) = ext.get_mut::<SpanFields>() {
                let mut fields = Fields(std::mem::take(map));
                values.record(&mut fields);
                *map = fields.0;
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if !self.stdout && self.tx.receiver_count() == 0 {
            return;
        }
        let meta = event.metadata();
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let mut fields = fields.0;
        // The enclosing spans' fields: the record's own win, then the innermost span's.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(SpanFields(map)) = span.extensions().get::<SpanFields>() {
                    for (k, v) in map {
                        fields.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
        }
        let msg = fields.remove("message").unwrap_or(Value::Null);
        let component = match fields.get("component").and_then(Value::as_str) {
            Some(c) => c.to_string(),
            None => component_of(meta.target()).to_string(),
        };
        let text = |k: &str| fields.get(k).and_then(Value::as_str).map(str::to_string);
        let tenant_id = text("tenant_id");
        let session_id = text("session_id");
        let mut out = Map::with_capacity(fields.len() + 5);
        out.insert(
            "ts".into(),
            oma_core::time::format_micros(oma_core::time::now_micros()).into(),
        );
        out.insert("level".into(), meta.level().as_str().into());
        out.insert("component".into(), component.clone().into());
        out.insert("target".into(), meta.target().into());
        out.insert("msg".into(), msg);
        for (k, v) in fields {
            out.entry(k).or_insert(v);
        }
        let line = LogLine {
            level: *meta.level(),
            component,
            tenant_id,
            session_id,
            json: Value::Object(out).to_string(),
        };
        if self.stdout {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", line.json);
        }
        if self.tx.receiver_count() > 0 {
            // No subscriber left since the check: nothing to do.
            let _ = self.tx.send(Arc::new(line));
        }
    }
}

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn fans_out_and_filters() {
        let tail = LogTail::new();
        let mut rx = tail.subscribe();
        let subscriber = tracing_subscriber::registry().with(tail.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(session_id = %"sesn_1", tenant_id = "t", "hello {}", 1);
            tracing::warn!(target: "oma_runtime::host", session_id = "sesn_2", "careful");
        });
        let a = rx.try_recv().unwrap();
        let b = rx.try_recv().unwrap();
        let v: Value = serde_json::from_str(&a.json).unwrap();
        assert_eq!(v["msg"], "hello 1");
        assert_eq!(v["session_id"], "sesn_1");
        assert_eq!(v["level"], "INFO");
        assert_eq!(b.component, "runtime");

        let only_2 = TailFilter {
            session: Some("sesn_2".into()),
            ..TailFilter::default()
        };
        assert!(!only_2.matches(&a) && only_2.matches(&b));
        let warn = TailFilter {
            level: parse_level("warn"),
            ..TailFilter::default()
        };
        assert!(!warn.matches(&a) && warn.matches(&b));
        let runtime = TailFilter {
            component: Some("runtime".into()),
            ..TailFilter::default()
        };
        assert!(!runtime.matches(&a) && runtime.matches(&b));
    }

    #[test]
    fn a_slow_subscriber_lags_instead_of_blocking() {
        let tail = LogTail::new();
        let mut rx = tail.subscribe();
        let subscriber = tracing_subscriber::registry().with(tail.layer());
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..CAPACITY + 10 {
                tracing::info!(i, "line");
            }
        });
        match rx.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(n)) => assert_eq!(n, 10),
            other => panic!("expected a lag, got {other:?}"),
        }
    }
}
