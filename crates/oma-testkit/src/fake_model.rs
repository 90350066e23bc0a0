//! What the fake model servers share: the scripted [`Reply`]s, the [`Gate`] a test holds a
//! stream at, request recording, stream accounting, and timed delivery of wire frames.
//!
//! Each fake ([`crate::fake_anthropic::FakeAnthropic`], [`crate::fake_openai::FakeOpenAi`]) turns a
//! reply into the exact frames its real service sends; this module delivers them (slowly,
//! paused, or cut off) and records what happened.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::watch;

/// A content block of a scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub enum FakeBlock {
    Text(String),
    Thinking(String),
    /// Anthropic only; the OpenAI fake leaves it out.
    RedactedThinking(String),
    ToolUse {
        name: String,
        input: Value,
    },
}

/// Usage numbers to report instead of the computed ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FakeUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

/// One scripted answer to one request. Wrappers (`Slow`, `DropAfter`, `Gated`, `StreamError`,
/// `WithUsage`) change how an inner answer is delivered and nest freely.
///
/// "Events" count wire frames: SSE events for Anthropic (`message_start`, each
/// `content_block_*`, `ping`, …), `data:` chunks for OpenAI (including `[DONE]`).
#[derive(Debug, Clone)]
pub enum Reply {
    /// A text answer, `end_turn`.
    Text(String),
    /// Optional text, then one tool call, `tool_use`.
    ToolUse {
        text: Option<String>,
        name: String,
        input: Value,
    },
    /// Optional text, then several tool calls in one answer.
    ToolUses {
        text: Option<String>,
        calls: Vec<(String, Value)>,
    },
    /// A thinking block (with a signature), then the inner answer's blocks.
    Thinking { thinking: String, reply: Box<Reply> },
    /// A redacted-thinking block, then the inner answer's blocks.
    RedactedThinking { data: String, reply: Box<Reply> },
    /// Text cut off by the output limit: `max_tokens` / `length`.
    MaxTokens(String),
    /// Any blocks with any stop reason (Anthropic spelling: `end_turn`, `tool_use`,
    /// `max_tokens`, `refusal`, `pause_turn`, …).
    Blocks {
        blocks: Vec<FakeBlock>,
        stop_reason: String,
    },
    /// An HTTP error with the service's error body, e.g. `529 overloaded_error` or
    /// `401 authentication_error`; `retry_after` (seconds) sets the `retry-after` header.
    Error {
        status: u16,
        error_type: String,
        retry_after: Option<u64>,
    },
    /// Any response at all.
    Raw {
        status: u16,
        content_type: String,
        body: String,
    },
    /// The inner answer's first `after_events` events, then the service's in-stream error
    /// (`event: error` / `data: {"error":…}`) and a clean end of body.
    StreamError {
        reply: Box<Reply>,
        after_events: usize,
        error_type: String,
    },
    /// The inner answer with `chunk_delay` before every event after the first.
    Slow {
        reply: Box<Reply>,
        chunk_delay: Duration,
    },
    /// The inner answer's first `after_events` events, then the connection is cut (no
    /// terminating chunk: the client sees an incomplete body).
    DropAfter {
        reply: Box<Reply>,
        after_events: usize,
    },
    /// The inner answer, pausing before event `after_events` until the test opens `gate`.
    Gated {
        reply: Box<Reply>,
        after_events: usize,
        gate: Gate,
    },
    /// The inner answer reporting `usage` instead of the computed counts.
    WithUsage { reply: Box<Reply>, usage: FakeUsage },
}

impl Reply {
    pub fn text(t: impl Into<String>) -> Self {
        Reply::Text(t.into())
    }

    pub fn tool_use(name: impl Into<String>, input: Value) -> Self {
        Reply::ToolUse {
            text: None,
            name: name.into(),
            input,
        }
    }

    pub fn error(status: u16, error_type: impl Into<String>) -> Self {
        Reply::Error {
            status,
            error_type: error_type.into(),
            retry_after: None,
        }
    }

    pub fn thinking(thinking: impl Into<String>, then: Reply) -> Self {
        Reply::Thinking {
            thinking: thinking.into(),
            reply: Box::new(then),
        }
    }

    pub fn slow(self, chunk_delay: Duration) -> Self {
        Reply::Slow {
            reply: Box::new(self),
            chunk_delay,
        }
    }

    pub fn drop_after(self, after_events: usize) -> Self {
        Reply::DropAfter {
            reply: Box::new(self),
            after_events,
        }
    }

    pub fn gated(self, after_events: usize, gate: &Gate) -> Self {
        Reply::Gated {
            reply: Box::new(self),
            after_events,
            gate: gate.clone(),
        }
    }

    pub fn stream_error(self, after_events: usize, error_type: impl Into<String>) -> Self {
        Reply::StreamError {
            reply: Box::new(self),
            after_events,
            error_type: error_type.into(),
        }
    }

    pub fn with_usage(self, usage: FakeUsage) -> Self {
        Reply::WithUsage {
            reply: Box::new(self),
            usage,
        }
    }
}

/// A point where a stream waits for the test. Clones share the state.
#[derive(Debug, Clone)]
pub struct Gate {
    reached: Arc<watch::Sender<bool>>,
    opened: Arc<watch::Sender<bool>>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

impl Gate {
    pub fn new() -> Self {
        Gate {
            reached: Arc::new(watch::channel(false).0),
            opened: Arc::new(watch::channel(false).0),
        }
    }

    /// Waits until a stream is paused at this gate (returns at once if one already was).
    pub async fn reached(&self) {
        let mut rx = self.reached.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    pub fn is_reached(&self) -> bool {
        *self.reached.borrow()
    }

    /// Lets paused (and future) streams through.
    pub fn open(&self) {
        self.opened.send_replace(true);
    }

    async fn pass(&self) {
        self.reached.send_replace(true);
        let mut rx = self.opened.subscribe();
        let _ = rx.wait_for(|o| *o).await;
    }
}

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub path: String,
    /// Lower-case names; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

/// How the fake's streams ended so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCounts {
    /// Streamed responses begun.
    pub started: u64,
    /// Delivered to the end.
    pub completed: u64,
    /// Cut by the fake itself (`DropAfter`).
    pub dropped: u64,
    /// Abandoned by the client: the connection closed before the end.
    pub cancelled: u64,
}

/// The resolved form of a [`Reply`]: blocks and how to deliver them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    pub blocks: Vec<FakeBlock>,
    pub stop_reason: String,
    pub usage: Option<FakeUsage>,
    pub chunk_delay: Option<Duration>,
    pub drop_after: Option<usize>,
    pub gate: Option<(usize, Gate)>,
    pub error_after: Option<(usize, String)>,
}

pub(crate) enum Resolved {
    Stream(Plan),
    Error {
        status: u16,
        error_type: String,
        retry_after: Option<u64>,
    },
    Raw {
        status: u16,
        content_type: String,
        body: String,
    },
}

pub(crate) fn resolve(reply: Reply) -> Resolved {
    let mut plan = Plan::default();
    let mut prefix: Vec<FakeBlock> = Vec::new();
    let mut r = reply;
    loop {
        match r {
            Reply::Text(t) => {
                plan.blocks = vec![FakeBlock::Text(t)];
                plan.stop_reason = "end_turn".into();
            }
            Reply::MaxTokens(t) => {
                plan.blocks = vec![FakeBlock::Text(t)];
                plan.stop_reason = "max_tokens".into();
            }
            Reply::ToolUse { text, name, input } => {
                plan.blocks = text.into_iter().map(FakeBlock::Text).collect();
                plan.blocks.push(FakeBlock::ToolUse { name, input });
                plan.stop_reason = "tool_use".into();
            }
            Reply::ToolUses { text, calls } => {
                plan.blocks = text.into_iter().map(FakeBlock::Text).collect();
                plan.blocks.extend(
                    calls
                        .into_iter()
                        .map(|(name, input)| FakeBlock::ToolUse { name, input }),
                );
                plan.stop_reason = "tool_use".into();
            }
            Reply::Blocks {
                blocks,
                stop_reason,
            } => {
                plan.blocks = blocks;
                plan.stop_reason = stop_reason;
            }
            Reply::Thinking { thinking, reply } => {
                prefix.push(FakeBlock::Thinking(thinking));
                r = *reply;
                continue;
            }
            Reply::RedactedThinking { data, reply } => {
                prefix.push(FakeBlock::RedactedThinking(data));
                r = *reply;
                continue;
            }
            Reply::Error {
                status,
                error_type,
                retry_after,
            } => {
                return Resolved::Error {
                    status,
                    error_type,
                    retry_after,
                };
            }
            Reply::Raw {
                status,
                content_type,
                body,
            } => {
                return Resolved::Raw {
                    status,
                    content_type,
                    body,
                };
            }
            Reply::StreamError {
                reply,
                after_events,
                error_type,
            } => {
                plan.error_after.get_or_insert((after_events, error_type));
                r = *reply;
                continue;
            }
            Reply::Slow { reply, chunk_delay } => {
                plan.chunk_delay.get_or_insert(chunk_delay);
                r = *reply;
                continue;
            }
            Reply::DropAfter {
                reply,
                after_events,
            } => {
                plan.drop_after.get_or_insert(after_events);
                r = *reply;
                continue;
            }
            Reply::Gated {
                reply,
                after_events,
                gate,
            } => {
                plan.gate.get_or_insert((after_events, gate));
                r = *reply;
                continue;
            }
            Reply::WithUsage { reply, usage } => {
                plan.usage.get_or_insert(usage);
                r = *reply;
                continue;
            }
        }
        break;
    }
    prefix.append(&mut plan.blocks);
    plan.blocks = prefix;
    Resolved::Stream(plan)
}

/// Answers a request from its body (once the script is empty): for load that needs replies
/// depending on where each conversation is, such as a tool call and then its answer.
pub type Responder = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

/// State shared by a fake's handler and its test-facing handle.
pub(crate) struct Shared {
    script: Mutex<VecDeque<Reply>>,
    default_reply: Mutex<Option<Reply>>,
    responder: Mutex<Option<Responder>>,
    requests: Mutex<Vec<RecordedRequest>>,
    request_count: watch::Sender<usize>,
    counts: watch::Sender<StreamCounts>,
    seq: AtomicU64,
    strict: AtomicBool,
    /// Prompt-cache entries (prefix hashes) the Anthropic fake has written.
    pub cache: Mutex<std::collections::HashSet<u64>>,
}

/// Poisoning only follows a panic in another test thread; the data is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn new() -> Self {
        Shared {
            script: Mutex::new(VecDeque::new()),
            default_reply: Mutex::new(None),
            responder: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
            request_count: watch::channel(0).0,
            counts: watch::channel(StreamCounts::default()).0,
            seq: AtomicU64::new(0),
            strict: AtomicBool::new(true),
            cache: Mutex::new(Default::default()),
        }
    }

    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn strict(&self) -> bool {
        self.strict.load(Ordering::Relaxed)
    }

    pub fn record(&self, path: &str, headers: &HeaderMap, body: Value) {
        let mut h: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in headers {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            h.entry(k.as_str().to_string())
                .and_modify(|e| {
                    e.push_str(", ");
                    e.push_str(&v);
                })
                .or_insert(v);
        }
        lock(&self.requests).push(RecordedRequest {
            path: path.to_string(),
            headers: h,
            body,
        });
        self.request_count.send_modify(|n| *n += 1);
    }

    /// The next scripted reply, else the responder's answer to `req`, else the default one;
    /// `None` when there is none of them.
    pub fn next_reply(&self, req: &Value) -> Option<Reply> {
        if let Some(r) = lock(&self.script).pop_front() {
            return Some(r);
        }
        // Cloned out so that the responder runs without the lock held.
        let responder = lock(&self.responder).clone();
        match responder {
            Some(f) => Some(f(req)),
            None => lock(&self.default_reply).clone(),
        }
    }

    fn count(&self, f: impl FnOnce(&mut StreamCounts)) {
        self.counts.send_modify(f);
    }
}

/// The test-facing handle both fakes share (they deref to it).
pub struct FakeModelServer {
    /// `http://127.0.0.1:<port>`, without a path.
    pub base_url: String,
    pub(crate) shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeModelServer {
    fn drop(&mut self) {
        // Stops accepting; streams still open end with the test's runtime.
        self.task.abort();
    }
}

impl FakeModelServer {
    pub(crate) async fn start(router: impl FnOnce(Arc<Shared>) -> Router) -> FakeModelServer {
        let shared = Arc::new(Shared::new());
        let app = router(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the fake model server");
        let addr = listener
            .local_addr()
            .expect("local address of the fake model server");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeModelServer {
            base_url: format!("http://{addr}"),
            shared,
            task,
        }
    }

    /// Queues the answer to a future request (first in, first out).
    pub fn push(&self, reply: Reply) -> &Self {
        lock(&self.shared.script).push_back(reply);
        self
    }

    pub fn push_all(&self, replies: impl IntoIterator<Item = Reply>) -> &Self {
        lock(&self.shared.script).extend(replies);
        self
    }

    /// The answer once the script is empty. Without one an unscripted request gets a 400
    /// `invalid_request_error` naming the problem, so a test fails fast instead of retrying.
    pub fn set_default(&self, reply: Option<Reply>) {
        *lock(&self.shared.default_reply) = reply;
    }

    /// Answers every unscripted request from its body (before the default reply is used).
    pub fn set_responder(&self, f: impl Fn(&Value) -> Reply + Send + Sync + 'static) {
        *lock(&self.shared.responder) = Some(Arc::new(f));
    }

    /// Whether requests are checked like the real API checks them (default on): a malformed
    /// conversation gets the real service's 400.
    pub fn set_strict(&self, strict: bool) {
        self.shared.strict.store(strict, Ordering::Relaxed);
    }

    /// Scripted replies not used yet.
    pub fn remaining(&self) -> usize {
        lock(&self.shared.script).len()
    }

    /// Every request body received, in order.
    pub fn requests(&self) -> Vec<Value> {
        lock(&self.shared.requests)
            .iter()
            .map(|r| r.body.clone())
            .collect()
    }

    /// Every request with its path and headers.
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The last request body, if any.
    pub fn last_request(&self) -> Option<Value> {
        lock(&self.shared.requests).last().map(|r| r.body.clone())
    }

    pub fn counts(&self) -> StreamCounts {
        *self.shared.counts.borrow()
    }

    /// Waits until `n` requests have arrived. Wrap in a timeout.
    pub async fn wait_requests(&self, n: usize) {
        let mut rx = self.shared.request_count.subscribe();
        let _ = rx.wait_for(|c| *c >= n).await;
    }

    /// Waits until `n` streams were abandoned by the client. Wrap in a timeout.
    pub async fn wait_cancelled(&self, n: u64) {
        let mut rx = self.shared.counts.subscribe();
        let _ = rx.wait_for(|c| c.cancelled >= n).await;
    }

    /// Waits until `n` streams were delivered to the end. Wrap in a timeout.
    pub async fn wait_completed(&self, n: u64) {
        let mut rx = self.shared.counts.subscribe();
        let _ = rx.wait_for(|c| c.completed >= n).await;
    }
}

/// A JSON response with the given status and extra headers.
pub(crate) fn json_response(
    status: u16,
    body: &Value,
    headers: &[(&'static str, String)],
) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            resp.headers_mut().insert(*k, v);
        }
    }
    resp
}

pub(crate) fn raw_response(status: u16, content_type: &str, body: String) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// Marks a stream's end; dropped early, it counts as abandoned by the client.
struct StreamGuard {
    shared: Arc<Shared>,
    finished: bool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.count(|c| c.cancelled += 1);
        }
    }
}

struct Delivery {
    frames: std::vec::IntoIter<String>,
    sent: usize,
    plan_delay: Option<Duration>,
    drop_after: Option<usize>,
    gate: Option<(usize, Gate)>,
    guard: StreamGuard,
}

/// An SSE response delivering `frames` per the plan's delay, gate and drop point.
pub(crate) fn sse_response(
    shared: &Arc<Shared>,
    frames: Vec<String>,
    plan: &Plan,
    extra: &[(&'static str, String)],
) -> Response {
    shared.count(|c| c.started += 1);
    let state = Delivery {
        frames: frames.into_iter(),
        sent: 0,
        plan_delay: plan.chunk_delay,
        drop_after: plan.drop_after,
        gate: plan.gate.clone(),
        guard: StreamGuard {
            shared: shared.clone(),
            finished: false,
        },
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        if st.guard.finished {
            return None;
        }
        if let Some((at, gate)) = &st.gate
            && *at == st.sent
        {
            gate.pass().await;
        }
        if st.drop_after == Some(st.sent) {
            // Let the server flush what was sent (it coalesces ready chunks) before the cut, so
            // the client really receives the first events.
            tokio::task::yield_now().await;
            st.guard.finished = true;
            st.guard.shared.count(|c| c.dropped += 1);
            let err = std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "fake: dropping the connection",
            );
            return Some((Err(err), st));
        }
        let Some(frame) = st.frames.next() else {
            st.guard.finished = true;
            st.guard.shared.count(|c| c.completed += 1);
            return None;
        };
        if st.sent > 0
            && let Some(d) = st.plan_delay
        {
            tokio::time::sleep(d).await;
        }
        st.sent += 1;
        Some((Ok(frame), st))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    for (k, v) in extra {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(*k, v);
        }
    }
    resp
}

/// Splits text into the small deltas a real stream sends (a few characters each, on char
/// boundaries), deterministically.
pub(crate) fn chunks(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(size.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

/// Deterministic token count for `chars` characters: one token per four, rounded up.
pub(crate) fn tokens(chars: usize) -> u64 {
    chars.div_ceil(4) as u64
}

/// A deterministic signature-looking string for a thinking block.
pub(crate) fn signature(thinking: &str) -> String {
    let mut h = DefaultHasher::new();
    thinking.hash(&mut h);
    format!("EqFake{:016x}", h.finish())
}

/// The characters of everything the model produces, for output usage.
pub(crate) fn output_chars(blocks: &[FakeBlock]) -> usize {
    blocks
        .iter()
        .map(|b| match b {
            FakeBlock::Text(t) | FakeBlock::Thinking(t) | FakeBlock::RedactedThinking(t) => {
                t.chars().count()
            }
            FakeBlock::ToolUse { name, input } => name.len() + input.to_string().len(),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wrappers_resolve_into_one_plan() {
        let gate = Gate::new();
        let r = Reply::thinking("hmm", Reply::tool_use("bash", json!({"command": "ls"})))
            .with_usage(FakeUsage {
                input_tokens: 1,
                ..Default::default()
            })
            .slow(Duration::from_millis(5))
            .gated(2, &gate)
            .drop_after(4);
        let Resolved::Stream(plan) = resolve(r) else {
            panic!("expected a stream plan");
        };
        assert_eq!(plan.stop_reason, "tool_use");
        assert_eq!(plan.blocks.len(), 2);
        assert!(matches!(plan.blocks[0], FakeBlock::Thinking(_)));
        assert_eq!(plan.chunk_delay, Some(Duration::from_millis(5)));
        assert_eq!(plan.drop_after, Some(4));
        assert_eq!(plan.gate.as_ref().map(|g| g.0), Some(2));
        assert_eq!(plan.usage.map(|u| u.input_tokens), Some(1));
        assert!(matches!(
            resolve(Reply::error(529, "overloaded_error")),
            Resolved::Error { status: 529, .. }
        ));
    }

    #[test]
    fn chunking_is_char_safe() {
        assert_eq!(chunks("héllo wörld", 4), vec!["héll", "o wö", "rld"]);
        assert!(chunks("", 4).is_empty());
        assert_eq!(tokens(0), 0);
        assert_eq!(tokens(5), 2);
    }
}
