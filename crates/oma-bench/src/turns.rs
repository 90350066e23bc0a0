//! Turns: sessions driven like a client drives them. Each driver keeps an SSE stream open on
//! its session and, in a closed loop, POSTs one `user.message` and waits on the stream for the
//! turn to end: the message's echo, the model's `agent.message`, then `session.status_idle`.
//! The turn time runs from sending the POST to reading the idle frame.
//!
//! The host rebuilds the model context from the whole log before every model request, so a
//! turn costs more as its session grows. A plain turn is measured on a short conversation: a
//! driver moves to a fresh session (created, and its stream opened, outside the timed part)
//! after `turns_per_session` turns.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use hyper::{Method, StatusCode, Uri};
use serde_json::json;

use crate::client::{Api, Conn, Headers};
use crate::cpu::{self, CpuSample};
use crate::load::{Plan, micros};
use crate::sse::SseStream;
use crate::stats::Summary;

/// How long one turn may take before it counts as failed.
const TURN_TIMEOUT: Duration = Duration::from_secs(10);

/// What the drivers' sessions are made of.
#[derive(Debug, Clone)]
pub struct TurnSetup {
    pub agent: String,
    pub environment: String,
    /// Turns on one session before a driver moves to a fresh one.
    pub turns_per_session: u32,
    /// The agent has the toolset and the model answers with one `bash` call before its text
    /// (see [`crate::model::FakeModel`]): a turn must show the call's result.
    pub tool: bool,
}

#[derive(Default)]
struct DriverResult {
    latencies: Vec<u32>,
    errors: u64,
    last_done: Option<Instant>,
    first_error: Option<String>,
}

/// Runs `sessions` drivers at once for the plan's warm-up and measured window; only turns
/// that start inside the window are recorded. Driver `i` talks to `addrs[i % addrs.len()]`
/// (several nodes of one cluster share the drivers out).
pub async fn run(
    addrs: &[SocketAddr],
    key: &str,
    label: &str,
    sessions: usize,
    setup: &TurnSetup,
    plan: Plan,
) -> Result<Summary> {
    ensure!(sessions > 0, "at least one session is needed");
    ensure!(
        setup.turns_per_session > 0,
        "--turns-per-session must be at least 1"
    );
    ensure!(!addrs.is_empty(), "at least one server address is needed");
    // Every driver gets its first session and stream before the clock starts.
    let mut drivers = Vec::with_capacity(sessions);
    for i in 0..sessions {
        let addr = addrs[i % addrs.len()];
        let headers = Headers::new(addr, key)?;
        drivers.push(Driver::new(addr, key, &headers, setup.clone()).await?);
    }
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let until = measure_from + plan.measure;
    let sampler = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let first = CpuSample::now();
        tokio::time::sleep_until(until.into()).await;
        (first, CpuSample::now())
    });
    let tasks: Vec<_> = drivers
        .into_iter()
        .map(|d| tokio::spawn(d.drive(measure_from, until)))
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut last_done = measure_from;
    let mut first_error = None;
    for t in tasks {
        let r = t.await?;
        latencies.extend_from_slice(&r.latencies);
        errors += r.errors;
        if let Some(d) = r.last_done {
            last_done = last_done.max(d);
        }
        if first_error.is_none() {
            first_error = r.first_error;
        }
    }
    let (cpu_first, cpu_last) = sampler.await?;
    let mut s = Summary::new(label, sessions, latencies);
    s.errors = errors;
    s.first_error = first_error;
    s.elapsed = last_done.saturating_duration_since(measure_from);
    cpu::attach(&mut s, cpu_first, cpu_last, plan.measure);
    Ok(s)
}

/// One client driving one session at a time.
struct Driver {
    addr: SocketAddr,
    headers: Headers,
    setup: TurnSetup,
    /// Creates sessions.
    api: Api,
    /// Sends the messages.
    post: Conn,
    /// The current session's request target for sending and its open stream.
    session: Option<(Uri, SseStream)>,
    turns_on_session: u32,
    body: Bytes,
}

impl Driver {
    async fn new(addr: SocketAddr, key: &str, headers: &Headers, setup: TurnSetup) -> Result<Self> {
        let body = json!({"events": [{
            "type": "user.message",
            "content": [{"type": "text", "text": "Say ok."}],
        }]});
        let mut d = Self {
            addr,
            headers: headers.clone(),
            setup,
            api: Api::connect(addr, key).await?,
            post: Conn::open(addr).await?,
            session: None,
            turns_on_session: 0,
            body: Bytes::from(body.to_string()),
        };
        d.next_session().await?;
        Ok(d)
    }

    /// Replaces the current session by a fresh one with its stream open.
    async fn next_session(&mut self) -> Result<()> {
        self.session = None;
        let sid = self
            .api
            .create(
                "/v1/sessions",
                &json!({"agent": self.setup.agent, "environment_id": self.setup.environment}),
            )
            .await
            .context("creating a session")?;
        let stream = SseStream::open(
            self.addr,
            &self.headers,
            &format!("/v1/sessions/{sid}/events/stream"),
        )
        .await?;
        let uri: Uri = format!("/v1/sessions/{sid}/events").parse()?;
        self.session = Some((uri, stream));
        self.turns_on_session = 0;
        Ok(())
    }

    async fn drive(mut self, measure_from: Instant, until: Instant) -> DriverResult {
        let mut r = DriverResult::default();
        loop {
            if Instant::now() >= until {
                break;
            }
            let fresh =
                self.session.is_none() || self.turns_on_session >= self.setup.turns_per_session;
            if fresh && let Err(e) = self.next_session().await {
                r.errors += 1;
                r.first_error.get_or_insert_with(|| format!("{e:#}"));
                break;
            }
            let t0 = Instant::now();
            let res = tokio::time::timeout(TURN_TIMEOUT, self.turn()).await;
            let res = match res {
                Ok(r) => r,
                Err(_) => Err(anyhow::anyhow!(
                    "no session.status_idle within {TURN_TIMEOUT:?}"
                )),
            };
            self.turns_on_session += 1;
            let recording = t0 >= measure_from;
            match res {
                Ok(t1) => {
                    if recording {
                        r.latencies.push(micros(t1.saturating_duration_since(t0)));
                        r.last_done = Some(t1);
                    }
                }
                Err(e) => {
                    if recording {
                        r.errors += 1;
                        r.last_done = Some(Instant::now());
                    }
                    r.first_error.get_or_insert_with(|| format!("{e:#}"));
                    // The session's state is unknown now: continue on a fresh one, on fresh
                    // connections.
                    self.session = None;
                    match Conn::open(self.addr).await {
                        Ok(c) => self.post = c,
                        Err(_) => break,
                    }
                }
            }
        }
        r
    }

    /// One turn; returns when the idle frame was read.
    async fn turn(&mut self) -> Result<Instant> {
        let Some((uri, stream)) = self.session.as_mut() else {
            bail!("no session");
        };
        let req = self
            .headers
            .request(Method::POST, uri.clone(), Some(self.body.clone()))?;
        let (status, _) = self.post.send_drain(req).await?;
        ensure!(status == StatusCode::OK, "POST …/events answered {status}");
        // The echo, the model's answer, then idle: anything else means the turn did not run
        // the model (a failed turn also ends idle, with an error event before it).
        let (mut echoed, mut answered) = (false, false);
        let mut tool_done = !self.setup.tool;
        loop {
            let Some((frame, at)) = stream.next().await? else {
                bail!("the event stream closed mid-turn");
            };
            match frame.event.as_str() {
                "user.message" => echoed = true,
                "agent.tool_result" if echoed => {
                    ensure!(
                        !frame.data.contains(r#""is_error":true"#),
                        "the tool call failed: {}",
                        frame.data
                    );
                    tool_done = true;
                }
                "agent.message" if echoed && tool_done => answered = true,
                "session.error" => bail!("the turn failed: {}", frame.data),
                "session.status_idle" if echoed => {
                    ensure!(
                        answered,
                        "the turn ended without an agent.message: {}",
                        frame.data
                    );
                    return Ok(at);
                }
                _ => {}
            }
        }
    }
}
