//! Delivery: how long an event takes from its commit to a client's open SSE stream.
//!
//! `streams` connections follow one session. A writer task on the server's runtime does what
//! a session host does — append one event to the log (its own transaction), then publish the
//! committed event on the hub — at a fixed rate, so the figure is delivery latency and not a
//! backlog. Each event is an `agent.message` whose text carries its number `n`; the writer
//! notes the instant `append_events` returned for each `n` (the commit, as the host learns of
//! it), each stream notes the instant it read each frame, and the latency is the difference,
//! over every (event, stream) pair whose event was committed inside the measured window.
//! Both runtimes are in one process, so both instants come from the same monotonic clock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use oma_core::events::NewEvent;
use oma_server::AppState;
use oma_server::hub::Committed;
use oma_store::Store;
use serde_json::json;

use crate::client::Headers;
use crate::cpu::{self, CpuSample};
use crate::load::{Plan, micros};
use crate::sse::SseStream;
use crate::stats::Summary;

/// The text prefix of the benchmark's events; the number follows.
const MARK: &str = "dlv ";
/// The text of the last event, which tells streams to stop.
const END: &str = "dlv end";
/// How long streams may take to see the last event after it was committed.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What the writer did.
struct Written {
    /// Commit instant of event `n`.
    commits: Vec<Instant>,
    /// Whether event `n` was written inside the measured window.
    measured: Vec<bool>,
    /// `append_events` latencies of the measured events.
    append_us: Vec<u32>,
    cpu: (Option<CpuSample>, Option<CpuSample>),
}

/// Frames one stream read: `(n, instant)`.
type Received = Result<Vec<(usize, Instant)>>;

/// The delivery latency over every stream, and the writer's commit latency.
pub struct Delivery {
    pub delivery: Summary,
    pub commit: Summary,
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    server_rt: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    headers: &Headers,
    store: &Store,
    state: &AppState,
    tenant: &str,
    session: &str,
    streams: usize,
    rate: f64,
    plan: Plan,
) -> Result<Delivery> {
    ensure!(streams > 0, "--streams must be at least 1");
    ensure!(
        rate.is_finite() && rate > 0.0,
        "--rate must be a positive number of events per second"
    );
    let path = format!("/v1/sessions/{session}/events/stream");
    let opened: Vec<SseStream> = client_rt.block_on(async {
        let mut v = Vec::with_capacity(streams);
        for _ in 0..streams {
            v.push(SseStream::open(addr, headers, &path).await?);
        }
        Ok::<_, anyhow::Error>(v)
    })?;
    let readers: Vec<_> = opened
        .into_iter()
        .map(|s| client_rt.spawn(read(s)))
        .collect();

    let writer = server_rt.spawn(write(
        store.clone(),
        state.hub.clone(),
        tenant.to_string(),
        session.to_string(),
        Duration::from_secs_f64(1.0 / rate),
        plan,
    ));
    let written = server_rt
        .block_on(writer)
        .context("the writer task failed")??;

    let received: Vec<Received> = client_rt.block_on(async {
        let mut out = Vec::with_capacity(readers.len());
        for r in readers {
            out.push(match tokio::time::timeout(DRAIN_TIMEOUT, r).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => Err(anyhow::Error::new(e).context("a stream reader failed")),
                Err(_) => Err(anyhow::anyhow!(
                    "a stream did not see the last event within {DRAIN_TIMEOUT:?}"
                )),
            });
        }
        out
    });

    let expected_per_stream = written.measured.iter().filter(|m| **m).count() as u64;
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for r in received {
        match r {
            Ok(frames) => {
                let mut got = 0;
                for (n, at) in frames {
                    if written.measured.get(n).copied().unwrap_or(false) {
                        got += 1;
                        latencies.push(micros(at.saturating_duration_since(written.commits[n])));
                    }
                }
                if got < expected_per_stream {
                    errors += expected_per_stream - got;
                    first_error.get_or_insert_with(|| {
                        format!("a stream missed {} events", expected_per_stream - got)
                    });
                }
            }
            Err(e) => {
                errors += expected_per_stream;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    let label = format!("delivery: commit → SSE frame, {streams} streams on 1 session");
    let mut delivery = Summary::new(&label, streams, latencies);
    delivery.errors = errors;
    delivery.first_error = first_error;
    delivery.elapsed = plan.measure;
    delivery.mean_body = 0;
    cpu::attach(&mut delivery, written.cpu.0, written.cpu.1, plan.measure);

    let mut commit = Summary::new(
        &format!("  writer: append_events, 1 event/txn at {rate:.0}/s"),
        1,
        written.append_us,
    );
    commit.elapsed = plan.measure;
    Ok(Delivery { delivery, commit })
}

/// Appends and publishes one event every `every` for the plan's warm-up and measured window,
/// then the end marker.
async fn write(
    store: Store,
    hub: Arc<oma_runtime::Hub>,
    tenant: String,
    session: String,
    every: Duration,
    plan: Plan,
) -> Result<Written> {
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let until = measure_from + plan.measure;
    let mut tick = tokio::time::interval(every);
    // A late tick is not made up with a burst: the rate stays a rate.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut w = Written {
        commits: Vec::new(),
        measured: Vec::new(),
        append_us: Vec::new(),
        cpu: (None, None),
    };
    let mut n = 0usize;
    loop {
        tick.tick().await;
        let before = Instant::now();
        if before >= until {
            break;
        }
        let recording = before >= measure_from;
        if recording && w.cpu.0.is_none() {
            w.cpu.0 = CpuSample::now();
        }
        let committed = append(&store, &tenant, &session, &format!("{MARK}{n}")).await?;
        let at = Instant::now();
        hub.publish(&session, committed);
        w.commits.push(at);
        w.measured.push(recording);
        if recording {
            w.append_us.push(micros(at - before));
        }
        n += 1;
    }
    w.cpu.1 = CpuSample::now();
    let end = append(&store, &tenant, &session, END).await?;
    hub.publish(&session, end);
    Ok(w)
}

async fn append(store: &Store, tenant: &str, session: &str, text: &str) -> Result<Vec<Committed>> {
    let mut f = serde_json::Map::new();
    f.insert("content".into(), json!([{"type": "text", "text": text}]));
    let stored = store
        .append_events(tenant, session, vec![NewEvent::new("agent.message", f)])
        .await
        .context("appending an event")?;
    Ok(stored.into_iter().map(Committed::from).collect())
}

/// Reads a stream until the end marker, noting each benchmark event's number and arrival.
async fn read(mut stream: SseStream) -> Received {
    let mut got = Vec::new();
    while let Some((frame, at)) = stream.next().await? {
        if frame.event != "agent.message" {
            continue;
        }
        if frame.data.contains(END) {
            return Ok(got);
        }
        if let Some(n) = number(&frame.data) {
            got.push((n, at));
        }
    }
    anyhow::bail!("the stream closed before the last event")
}

/// The `n` of a benchmark event's JSON text, found without parsing the whole event.
fn number(data: &str) -> Option<usize> {
    let i = data.find(MARK)? + MARK.len();
    let digits: &str = &data[i..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_found_in_event_json() {
        let data = r#"{"type":"agent.message","content":[{"type":"text","text":"dlv 1234"}],"id":"sevt_1"}"#;
        assert_eq!(number(data), Some(1234));
        assert_eq!(number(r#"{"text":"dlv end"}"#), None);
        assert_eq!(number("{}"), None);
    }
}
