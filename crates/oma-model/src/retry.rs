//! Retry timing: exponential backoff with full jitter, honouring the provider's `retry-after`.

use std::time::Duration;

use crate::error::ModelError;
use crate::{EventStream, ModelProvider, ModelRequest};

/// The longest `retry-after` we honour. A provider asking for more (minutes or hours of a
/// quota window) would stall a session silently; past this the attempt fails sooner and the
/// error surfaces instead.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The cap of the first retry's delay; it doubles per attempt.
    pub base: Duration,
    /// The largest computed delay.
    pub max: Duration,
    /// Total attempts, the first one included.
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
            max_attempts: 5,
        }
    }
}

impl Backoff {
    /// The delay before the next attempt, after `attempt` attempts have failed (1 after the
    /// first failure). Full jitter: uniform in `[0, min(max, base·2^(attempt-1))]`, so that many
    /// sessions hit by one outage do not retry in lockstep. A `retry_after` larger than that is
    /// honoured (up to [`MAX_RETRY_AFTER`]).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = attempt.saturating_sub(1).min(31);
        let cap = self
            .base
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max)
            .min(self.max);
        let jittered = cap.mul_f64(fastrand::f64());
        match retry_after {
            Some(ra) => jittered.max(ra.min(MAX_RETRY_AFTER)),
            None => jittered,
        }
    }

    /// Whether to try again after `attempt` failed attempts ending in `err`.
    pub fn should_retry(&self, attempt: u32, err: &ModelError) -> bool {
        err.retryable() && attempt < self.max_attempts
    }
}

/// Opens a stream, retrying failures that happen before any event (HTTP errors, refused
/// connections) per `backoff`. `on_retry(attempt, &err, delay)` is called before each wait so
/// the caller can log or emit an event. Failures after the stream opened are the caller's to
/// retry: only it knows what it already showed of the partial response.
pub async fn open_with_retry(
    provider: &dyn ModelProvider,
    req: &ModelRequest,
    backoff: &Backoff,
    mut on_retry: impl FnMut(u32, &ModelError, Duration),
) -> Result<EventStream, ModelError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match provider.stream(req.clone()).await {
            Ok(s) => return Ok(s),
            Err(e) if backoff.should_retry(attempt, &e) => {
                let d = backoff.delay(attempt, e.retry_after());
                on_retry(attempt, &e, d);
                tokio::time::sleep(d).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;

    #[test]
    fn delays_grow_and_stay_capped() {
        let b = Backoff::default();
        for _ in 0..200 {
            assert!(b.delay(1, None) <= Duration::from_millis(500));
            assert!(b.delay(2, None) <= Duration::from_secs(1));
            assert!(b.delay(4, None) <= Duration::from_secs(4));
            assert!(b.delay(50, None) <= Duration::from_secs(30));
            assert!(b.delay(u32::MAX, None) <= Duration::from_secs(30));
        }
        // Full jitter actually spreads.
        let samples: Vec<_> = (0..100).map(|_| b.delay(6, None)).collect();
        assert!(samples.iter().any(|d| *d < Duration::from_secs(8)));
        assert!(samples.iter().any(|d| *d > Duration::from_secs(8)));
    }

    #[test]
    fn retry_after_wins_when_larger() {
        let b = Backoff::default();
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert!(b.delay(1, Some(Duration::ZERO)) <= Duration::from_millis(500));
        assert_eq!(b.delay(1, Some(Duration::from_secs(3600))), MAX_RETRY_AFTER);
    }

    #[test]
    fn attempts_are_bounded() {
        let b = Backoff::default();
        let retryable = ModelError::new(ErrorClass::Overloaded, "x");
        let terminal = ModelError::new(ErrorClass::Auth, "x");
        assert!(b.should_retry(1, &retryable));
        assert!(b.should_retry(4, &retryable));
        assert!(!b.should_retry(5, &retryable));
        assert!(!b.should_retry(1, &terminal));
    }
}
