//! Closed-loop load: N connections each send one request, wait for the whole response, and
//! send the next, for a warm-up and then a measured window. Only requests that *start* inside
//! the window are recorded, so warm-up effects (cold caches, pool growth) stay out of the
//! figures.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use hyper::{Method, StatusCode, Uri};

use crate::client::{Conn, Headers};
use crate::cpu::CpuSample;
use crate::stats::Summary;

/// One kind of request to repeat.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub label: String,
    pub method: Method,
    /// Request targets used in turn; each connection starts at its own offset so that
    /// connections spread over them.
    pub uris: Vec<Uri>,
    pub body: Option<Bytes>,
    /// The status a successful request answers; anything else counts as an error.
    pub expect: StatusCode,
}

/// How long and how wide to run a scenario.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub connections: usize,
    pub warmup: Duration,
    pub measure: Duration,
}

#[derive(Default)]
struct ConnResult {
    latencies: Vec<u32>,
    errors: u64,
    bytes: u64,
    last_done: Option<Instant>,
    first_error: Option<String>,
}

/// Runs `sc` according to `plan` and summarises the measured window.
pub async fn run(addr: SocketAddr, headers: &Headers, sc: Scenario, plan: Plan) -> Result<Summary> {
    if sc.uris.is_empty() {
        bail!("scenario `{}` has no request targets", sc.label);
    }
    if plan.connections == 0 {
        bail!("at least one connection is needed");
    }
    // Connect everyone first so the clock measures requests, not handshakes.
    let mut conns = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        conns.push(Conn::open(addr).await?);
    }
    let sc = Arc::new(sc);
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let until = measure_from + plan.measure;

    let sampler = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let first = CpuSample::now();
        tokio::time::sleep_until(until.into()).await;
        let last = CpuSample::now();
        (first, last)
    });
    let mut tasks = Vec::with_capacity(conns.len());
    for (i, conn) in conns.into_iter().enumerate() {
        let sc = Arc::clone(&sc);
        let headers = headers.clone();
        tasks.push(tokio::spawn(drive(
            conn,
            addr,
            headers,
            sc,
            i,
            measure_from,
            until,
        )));
    }

    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut bytes = 0;
    let mut last_done = measure_from;
    let mut first_error = None;
    for t in tasks {
        let r = t.await?;
        latencies.extend_from_slice(&r.latencies);
        errors += r.errors;
        bytes += r.bytes;
        if let Some(d) = r.last_done {
            last_done = last_done.max(d);
        }
        if first_error.is_none() {
            first_error = r.first_error;
        }
    }
    let (cpu_first, cpu_last) = sampler.await?;

    let mut s = Summary::new(&sc.label, plan.connections, latencies);
    s.errors = errors;
    s.elapsed = last_done.saturating_duration_since(measure_from);
    s.mean_body = bytes
        .checked_div(s.ok)
        .map_or(0, |m| usize::try_from(m).unwrap_or(usize::MAX));
    if let (Some(a), Some(b)) = (cpu_first, cpu_last)
        && let Some(c) = a.cores_until(&b, plan.measure.as_secs_f64())
    {
        s.server_cores = Some(c.server);
        s.client_cores = Some(c.client);
        s.other_cores = c.other;
    }
    s.first_error = first_error;
    Ok(s)
}

/// One connection's closed loop.
async fn drive(
    mut conn: Conn,
    addr: SocketAddr,
    headers: Headers,
    sc: Arc<Scenario>,
    offset: usize,
    measure_from: Instant,
    until: Instant,
) -> ConnResult {
    let mut r = ConnResult::default();
    let mut i = offset;
    loop {
        let t0 = Instant::now();
        if t0 >= until {
            break;
        }
        let uri = sc.uris[i % sc.uris.len()].clone();
        i = i.wrapping_add(1);
        let req = match headers.request(sc.method.clone(), uri, sc.body.clone()) {
            Ok(req) => req,
            Err(e) => {
                r.first_error = Some(format!("building the request: {e:#}"));
                break;
            }
        };
        let res = conn.send_drain(req).await;
        let t1 = Instant::now();
        let recording = t0 >= measure_from;
        match res {
            Ok((status, len)) if status == sc.expect => {
                if recording {
                    r.latencies.push(micros(t1 - t0));
                    r.bytes += len as u64;
                    r.last_done = Some(t1);
                }
            }
            Ok((status, _)) => {
                if recording {
                    r.errors += 1;
                    r.last_done = Some(t1);
                    r.first_error
                        .get_or_insert_with(|| format!("unexpected status {status}"));
                }
            }
            Err(e) => {
                if recording {
                    r.errors += 1;
                    r.first_error.get_or_insert_with(|| format!("{e:#}"));
                }
                // The connection is unusable after a transport error: open a new one, and
                // give up on this connection if even that fails (the server is gone).
                match Conn::open(addr).await {
                    Ok(c) => conn = c,
                    Err(e) => {
                        r.first_error
                            .get_or_insert_with(|| format!("reconnecting: {e:#}"));
                        break;
                    }
                }
            }
        }
    }
    r
}

pub fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_saturates() {
        assert_eq!(micros(Duration::from_micros(1234)), 1234);
        assert_eq!(micros(Duration::from_secs(10_000)), u32::MAX);
    }
}
