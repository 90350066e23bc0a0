//! Keeps a claimed item's lease alive while its session is served, and says when to let go.
//!
//! A beat carries the last heartbeat this worker saw, so once someone else holds the lease
//! the server refuses it (412) and this worker stops touching the session at once: two
//! workers must never answer the same calls. Transient failures are retried until a whole
//! lease time has passed without a successful beat; then the lease is assumed lost too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::Client;

/// Sent as `expected_last_heartbeat` before the first beat.
const NO_HEARTBEAT: &str = "NO_HEARTBEAT";
/// Beat at least this often, and assume this lease time until the server says otherwise.
const MAX_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TTL: Duration = Duration::from_secs(90);

/// How the lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEnd {
    /// Still held.
    Held,
    /// The item is stopping (someone asked) or the server extends it no more: finish up
    /// and stop the item.
    StopRequested,
    /// Someone else may hold it now: touch nothing, do not stop it.
    Lost,
}

pub struct Lease {
    ended: CancellationToken,
    state: Arc<AtomicU8>,
}

impl Lease {
    /// Starts beating for `work_id` with `bearer` (the item's sessions token).
    pub fn start(client: Client, bearer: String, work_id: String) -> Lease {
        let ended = CancellationToken::new();
        let state = Arc::new(AtomicU8::new(0));
        tokio::spawn(beat(client, bearer, work_id, ended.clone(), state.clone()));
        Lease { ended, state }
    }

    /// Resolves when the lease ends for a reason other than [`Lease::release`].
    pub fn ended(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.ended.cancelled()
    }

    pub fn end(&self) -> LeaseEnd {
        match self.state.load(Ordering::SeqCst) {
            1 => LeaseEnd::StopRequested,
            2 => LeaseEnd::Lost,
            _ => LeaseEnd::Held,
        }
    }

    /// Stops beating (the session is done with).
    pub fn release(&self) {
        self.ended.cancel();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.ended.cancel();
    }
}

async fn beat(
    client: Client,
    bearer: String,
    work_id: String,
    ended: CancellationToken,
    state: Arc<AtomicU8>,
) {
    let finish = |s: u8| {
        state.store(s, Ordering::SeqCst);
        ended.cancel();
    };
    let mut last = NO_HEARTBEAT.to_string();
    let mut interval = MAX_INTERVAL;
    let mut ttl = DEFAULT_TTL;
    let mut last_success = Instant::now();
    loop {
        let answer = tokio::select! {
            _ = ended.cancelled() => return,
            a = tokio::time::timeout(interval, client.heartbeat(&bearer, &work_id, &last)) => a,
        };
        match answer {
            Ok(Ok(hb)) => {
                last = hb.last_heartbeat;
                last_success = Instant::now();
                if hb.ttl_seconds > 0 {
                    ttl = Duration::from_secs(hb.ttl_seconds as u64);
                    interval = (ttl / 2).clamp(Duration::from_secs(1), MAX_INTERVAL);
                }
                if matches!(hb.state.as_str(), "stopping" | "stopped") || !hb.lease_extended {
                    tracing::info!(work_id = %work_id, state = %hb.state, "the item is stopping");
                    return finish(1);
                }
            }
            Ok(Err(e)) if e.status() == Some(412) => {
                tracing::warn!(work_id = %work_id, "lease lost: {e}");
                return finish(2);
            }
            Ok(Err(e)) if !e.is_transient() => {
                tracing::warn!(work_id = %work_id, "heartbeat refused, letting the item go: {e}");
                return finish(2);
            }
            Ok(Err(e)) => {
                tracing::warn!(work_id = %work_id, "heartbeat failed, retrying: {e}");
            }
            Err(_) => tracing::warn!(work_id = %work_id, "heartbeat timed out, retrying"),
        }
        if last_success.elapsed() > ttl {
            tracing::warn!(work_id = %work_id, "lease assumed lost: no heartbeat went through in {ttl:?}");
            return finish(2);
        }
        tokio::select! {
            _ = ended.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
