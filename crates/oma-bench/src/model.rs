//! The model the turn scenarios talk to: the test kit's fake Anthropic Messages API, answering
//! every request at once with a short text (`end_turn`), on a runtime of its own (one worker
//! thread named [`cpu::MODEL_THREAD`]) so it neither steals the server's worker threads nor
//! hides in the server's CPU figure.
//!
//! It also measures the *model floor*: one bare streaming `POST /v1/messages` round trip to
//! the fake, with the body the server itself last sent, over a keep-alive reqwest connection
//! like the server's provider uses. That is the part of a turn no platform could avoid, so
//! turn time minus floor is the platform's overhead.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use oma_model::anthropic::DEFAULT_VERSION;
use oma_model::{AnthropicConfig, AnthropicProvider, ModelProvider};
use oma_testkit::fake_anthropic::{FakeAnthropic, Reply};

use crate::cpu::{self, CpuSample};
use crate::load::Plan;
use crate::stats::Summary;

/// What the fake answers to every request.
pub const ANSWER: &str = "ok";
/// The key the server's provider sends (the fake only checks that there is one).
const KEY: &str = "bench-model-key";

pub struct FakeModel {
    // Declared before the runtime so it is dropped (and its listener task aborted) first.
    fake: FakeAnthropic,
    _rt: tokio::runtime::Runtime,
}

impl FakeModel {
    pub fn start() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(cpu::MODEL_THREAD)
            .enable_all()
            .build()
            .context("starting the fake model's runtime")?;
        // `block_on` binds the listener here; the accept loop and every request it serves
        // run on the runtime's own worker thread.
        let fake = rt.block_on(FakeAnthropic::start());
        // An agent with tools gets one `bash` call first, then the text once the call's result
        // is in the conversation; an agent without tools gets the text at once.
        fake.set_responder(|req| {
            let has_tools = req["tools"].as_array().is_some_and(|t| !t.is_empty());
            let answered = req["messages"]
                .as_array()
                .and_then(|m| m.last())
                .and_then(|m| m["content"].as_array())
                .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"));
            if has_tools && !answered {
                Reply::tool_use("bash", serde_json::json!({"command": "echo hi"}))
            } else {
                Reply::text(ANSWER)
            }
        });
        Ok(Self { fake, _rt: rt })
    }

    /// A provider pointing at the fake, configured as `oma serve` configures the real one.
    pub fn provider(&self) -> Result<Arc<dyn ModelProvider>> {
        let p = AnthropicProvider::new(AnthropicConfig::new(self.fake.base_url.as_str(), KEY))
            .context("building the provider for the fake model")?;
        Ok(Arc::new(p))
    }

    /// The fake's base URL (what `ANTHROPIC_BASE_URL` is set to for `oma serve` nodes).
    pub fn base_url(&self) -> &str {
        &self.fake.base_url
    }

    /// The next request is answered with a stream that stops after its first text delta
    /// until `gate` opens (a turn caught mid-stream); later ones are answered at once again.
    pub fn push_gated(&self, gate: &oma_testkit::fake_model::Gate) {
        self.fake
            .push(Reply::text("A long answer that stops half way.").gated(3, gate));
    }

    /// The last request body the fake received, as JSON text.
    pub fn last_request(&self) -> Option<String> {
        self.fake.last_request().map(|v| v.to_string())
    }

    /// Repeats `body` (a streaming Messages request) on one keep-alive connection for the
    /// plan's warm-up and measured window, reading each answer to its end. Run it on the
    /// client runtime.
    pub async fn floor(&self, label: &str, body: String, plan: Plan) -> Result<Summary> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .build()
            .context("building the floor's HTTP client")?;
        let url = format!("{}/v1/messages", self.fake.base_url);
        let body = bytes::Bytes::from(body);
        let once = || async {
            let resp = http
                .post(&url)
                .header("x-api-key", KEY)
                .header("anthropic-version", DEFAULT_VERSION)
                .header("content-type", "application/json")
                .header("accept", "text/event-stream")
                .body(body.clone())
                .send()
                .await?;
            let status = resp.status();
            let text = resp.bytes().await?;
            if !status.is_success() {
                bail!(
                    "the fake model answered {status}: {}",
                    String::from_utf8_lossy(&text)
                );
            }
            if !text.windows(12).any(|w| w == b"message_stop") {
                bail!("the fake model's stream did not end with message_stop");
            }
            Ok(text.len())
        };
        // The connection is made (and checked) before the clock starts.
        once().await.context("the model floor's first request")?;

        let start = Instant::now();
        let measure_from = start + plan.warmup;
        let until = measure_from + plan.measure;
        let mut latencies = Vec::new();
        let mut errors = 0;
        let mut first_error = None;
        let mut bytes = 0u64;
        let mut cpu_first = None;
        let mut last_done = measure_from;
        loop {
            let t0 = Instant::now();
            if t0 >= until {
                break;
            }
            let recording = t0 >= measure_from;
            if recording && cpu_first.is_none() {
                cpu_first = Some(CpuSample::now());
            }
            let r = once().await;
            let t1 = Instant::now();
            if !recording {
                continue;
            }
            last_done = t1;
            match r {
                Ok(n) => {
                    latencies.push(crate::load::micros(t1 - t0));
                    bytes += n as u64;
                }
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
        let cpu_last = CpuSample::now();
        let mut s = Summary::new(label, 1, latencies);
        s.errors = errors;
        s.first_error = first_error;
        s.elapsed = last_done.saturating_duration_since(measure_from);
        s.mean_body = bytes
            .checked_div(s.ok)
            .map_or(0, |m| usize::try_from(m).unwrap_or(usize::MAX));
        cpu::attach(&mut s, cpu_first.flatten(), cpu_last, plan.measure);
        Ok(s)
    }
}
