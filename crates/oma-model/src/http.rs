//! The HTTP plumbing both providers share: the client, sending, and turning an SSE body into
//! provider-neutral events through a wire-specific [`Decoder`].

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::EventStream;
use crate::error::ModelError;
use crate::event::StreamEvent;
use oma_sse::{SseEvent, SseParser};

/// Network timeouts. There is deliberately no total timeout: a long answer may stream for many
/// minutes; what must not happen is silence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the TCP/TLS connection.
    pub connect: Duration,
    /// Longest wait for any bytes (headers or the next chunk). Anthropic sends `ping` events
    /// during long thinking, so a healthy stream is never silent this long.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            read: Duration::from_secs(180),
        }
    }
}

/// Longest error body we read; the message is cut much shorter anyway.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Longest non-streamed success body (a server that ignored `stream: true`).
const MAX_FULL_BODY: usize = 32 * 1024 * 1024;

/// The HTTP client for `url`. HTTP(S)_PROXY from the environment is honoured, except for a
/// loopback endpoint (a local model server), which no proxy could reach.
pub(crate) fn client(
    timeouts: Timeouts,
    url: &reqwest::Url,
) -> Result<reqwest::Client, ModelError> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .read_timeout(timeouts.read)
        .user_agent(concat!("oma/", env!("CARGO_PKG_VERSION")));
    if is_loopback(url) {
        b = b.no_proxy();
    }
    b.build()
        .map_err(|e| ModelError::config(format!("cannot build the HTTP client: {e}")))
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `base` joined with `path`, checking that `base` is an http(s) URL.
pub(crate) fn endpoint(base: &str, path: &str) -> Result<reqwest::Url, ModelError> {
    let joined = format!("{}{path}", base.trim_end_matches('/'));
    let url = reqwest::Url::parse(&joined)
        .map_err(|e| ModelError::config(format!("invalid base URL {base:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ModelError::config(format!(
            "invalid base URL {base:?}: not http(s)"
        )));
    }
    Ok(url)
}

/// What a wire format does with the events of a streamed body.
pub(crate) trait Decoder: Send + 'static {
    /// Handles one SSE event, pushing zero or more stream events. Returns `true` once the
    /// response is complete (nothing after it is read).
    fn on_event(
        &mut self,
        ev: SseEvent,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<bool, ModelError>;

    /// The body ended without `on_event` returning `true`: finish if the wire allows it,
    /// otherwise the retryable "incomplete" error.
    fn on_eof(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), ModelError>;

    /// A 2xx answer that is not an event stream (a server ignoring `stream: true`): the whole
    /// response as events.
    fn on_full_body(
        &mut self,
        body: &[u8],
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<(), ModelError>;
}

/// Sends the request; on a 2xx event stream returns the decoded events, otherwise the error.
pub(crate) async fn send<D: Decoder>(
    req: reqwest::RequestBuilder,
    mut decoder: D,
) -> Result<EventStream, ModelError> {
    let resp = req.send().await.map_err(|e| ModelError::from_reqwest(&e))?;
    let status = resp.status();
    if !status.is_success() {
        let headers = resp.headers().clone();
        let body = read_capped(resp, MAX_ERROR_BODY).await.unwrap_or_default();
        return Err(ModelError::from_http(status.as_u16(), &headers, &body));
    }
    let is_sse = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("text/event-stream"));
    if !is_sse {
        let body = read_capped(resp, MAX_FULL_BODY).await?;
        let mut out = VecDeque::new();
        decoder.on_full_body(&body, &mut out)?;
        return Ok(futures::stream::iter(out.into_iter().map(Ok)).boxed());
    }
    let state = Drive {
        body: Some(resp.bytes_stream().boxed()),
        parser: SseParser::new(),
        decoder,
        pending: VecDeque::new(),
        error: None,
    };
    Ok(futures::stream::unfold(state, Drive::next).boxed())
}

async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, ModelError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ModelError::from_reqwest(&e))?
    {
        let room = cap.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= cap {
            break;
        }
    }
    Ok(body)
}

struct Drive<D> {
    /// `None` once the response is complete or failed; dropping it closes the connection.
    body: Option<BoxStream<'static, reqwest::Result<Bytes>>>,
    parser: SseParser,
    decoder: D,
    pending: VecDeque<StreamEvent>,
    /// Yielded after `pending` drains, then the stream ends.
    error: Option<ModelError>,
}

impl<D: Decoder> Drive<D> {
    async fn next(mut self) -> Option<(Result<StreamEvent, ModelError>, Self)> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Some((Ok(ev), self));
            }
            if let Some(e) = self.error.take() {
                self.body = None;
                return Some((Err(e), self));
            }
            let body = self.body.as_mut()?;
            match body.next().await {
                Some(Ok(bytes)) => {
                    if let Err(e) = self.feed(&bytes) {
                        self.body = None;
                        self.error = Some(e);
                    }
                }
                Some(Err(e)) => {
                    self.body = None;
                    self.error = Some(ModelError::from_reqwest(&e));
                }
                None => {
                    self.body = None;
                    self.parser.finish();
                    if let Err(e) = self.decoder.on_eof(&mut self.pending) {
                        self.error = Some(e);
                    }
                }
            }
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), ModelError> {
        for ev in self.parser.push(bytes)? {
            if self.decoder.on_event(ev, &mut self.pending)? {
                // Complete: stop reading, release the connection.
                self.body = None;
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Feeding recorded bodies through parser and decoder, split at every offset.

    use super::*;

    /// Runs `body` (split into `chunks`) through a fresh parser and `decoder` the way the
    /// network driver does, returning the events and the terminal error if any.
    pub fn run<D: Decoder>(
        mut decoder: D,
        chunks: &[&[u8]],
    ) -> (Vec<StreamEvent>, Option<ModelError>) {
        let mut parser = SseParser::new();
        let mut out = VecDeque::new();
        for chunk in chunks {
            let evs = match parser.push(chunk) {
                Ok(evs) => evs,
                Err(e) => return (out.into(), Some(e.into())),
            };
            for ev in evs {
                match decoder.on_event(ev, &mut out) {
                    Ok(true) => return (out.into(), None),
                    Ok(false) => {}
                    Err(e) => return (out.into(), Some(e)),
                }
            }
        }
        parser.finish();
        let err = decoder.on_eof(&mut out).err();
        (out.into(), err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_join_and_validate() {
        assert_eq!(
            endpoint("https://api.anthropic.com/", "/v1/messages")
                .unwrap()
                .as_str(),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(
            endpoint("http://127.0.0.1:8080/v1", "/chat/completions")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/v1/chat/completions"
        );
        assert!(endpoint("not a url", "/x").is_err());
        assert!(endpoint("ftp://h", "/x").is_err());
    }

    #[test]
    fn loopback_detection() {
        for (u, want) in [
            ("http://127.0.0.1:1/v1", true),
            ("http://localhost:8080", true),
            ("http://[::1]:3000", true),
            ("https://api.anthropic.com", false),
            ("http://10.0.0.1", false),
        ] {
            assert_eq!(is_loopback(&reqwest::Url::parse(u).unwrap()), want, "{u}");
        }
    }
}
