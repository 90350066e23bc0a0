//! A minimal Server-Sent Events reader over one of the benchmark's HTTP/1.1 connections: just
//! enough of the format (`event:`, `id:`, `data:`, comments, blank-line frame ends) to follow
//! `GET /v1/sessions/{id}/events/stream`, stamping each frame with the instant its last bytes
//! were read so latencies end where a client would see the event.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, StatusCode, Uri};

use crate::client::{Conn, Headers};

/// One SSE frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// `event:`; `message` when absent, as the SSE specification says.
    pub event: String,
    /// `id:` as the event's sequence number, when present and numeric.
    pub id: Option<i64>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// An open event stream.
pub struct SseStream {
    body: Incoming,
    /// Bytes read but not yet parsed into a whole frame.
    buf: Vec<u8>,
    /// When the bytes most recently read arrived.
    read_at: Instant,
    /// Keeps the connection's request side alive while its response streams.
    _conn: Conn,
}

impl SseStream {
    /// Opens `path` on a new connection and checks that the server accepted the stream. When
    /// this returns, the server has subscribed the stream: events committed from now on reach
    /// it (the stream route subscribes before it answers).
    pub async fn open(addr: SocketAddr, headers: &Headers, path: &str) -> Result<Self> {
        let uri: Uri = path
            .parse()
            .with_context(|| format!("invalid path `{path}`"))?;
        let mut conn = Conn::open(addr).await?;
        let req = headers.request(Method::GET, uri, None)?;
        let (status, mut body) = conn.open_stream(req).await?;
        if status != StatusCode::OK {
            let mut text = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(d) = frame.data_ref() {
                    text.extend_from_slice(d);
                }
            }
            bail!(
                "GET {path} answered {status}: {}",
                String::from_utf8_lossy(&text)
            );
        }
        Ok(Self {
            body,
            buf: Vec::with_capacity(4096),
            read_at: Instant::now(),
            _conn: conn,
        })
    }

    /// The next frame and the instant its last bytes arrived; `None` when the server closed
    /// the stream.
    pub async fn next(&mut self) -> Result<Option<(Frame, Instant)>> {
        loop {
            if let Some(frame) = take_frame(&mut self.buf) {
                return Ok(Some((frame, self.read_at)));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(frame) => {
                    let frame = frame.context("reading the event stream")?;
                    if let Some(data) = frame.data_ref() {
                        self.read_at = Instant::now();
                        self.buf.extend_from_slice(data);
                    }
                }
            }
        }
    }
}

/// Removes and parses the first complete frame in `buf`, if there is one. Frames that carry
/// nothing (only comments) are skipped.
fn take_frame(buf: &mut Vec<u8>) -> Option<Frame> {
    loop {
        let end = buf.windows(2).position(|w| w == b"\n\n")?;
        let raw: Vec<u8> = buf.drain(..end + 2).collect();
        let text = String::from_utf8_lossy(&raw[..end]);
        let mut event = None;
        let mut id = None;
        let mut data: Option<String> = None;
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() || line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => event = Some(value.to_string()),
                "id" => id = value.parse().ok(),
                "data" => match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => data = Some(value.to_string()),
                },
                _ => {}
            }
        }
        if event.is_none() && data.is_none() {
            continue;
        }
        return Some(Frame {
            event: event.unwrap_or_else(|| "message".to_string()),
            id,
            data: data.unwrap_or_default(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_frames_as_they_complete() {
        let mut buf = b"event: session.status_idle\nid: 7\ndata: {\"a\":1}\n\n: keep\n\nevent: ping\ndata: {}\n\nevent: x\nda".to_vec();
        let f = take_frame(&mut buf).unwrap();
        assert_eq!(f.event, "session.status_idle");
        assert_eq!(f.id, Some(7));
        assert_eq!(f.data, "{\"a\":1}");
        // A comment-only frame is skipped.
        let f = take_frame(&mut buf).unwrap();
        assert_eq!(
            (f.event.as_str(), f.id, f.data.as_str()),
            ("ping", None, "{}")
        );
        // An incomplete frame stays in the buffer until its end arrives.
        assert_eq!(take_frame(&mut buf), None);
        buf.extend_from_slice(b"ta: one\ndata: two\n\n");
        let f = take_frame(&mut buf).unwrap();
        assert_eq!((f.event.as_str(), f.data.as_str()), ("x", "one\ntwo"));
        assert!(buf.is_empty());
    }

    #[test]
    fn defaults_and_crlf() {
        let mut buf = b"data: hi\r\nid: nope\r\n\n".to_vec();
        let f = take_frame(&mut buf).unwrap();
        assert_eq!(f.event, "message");
        assert_eq!(f.id, None);
        assert_eq!(f.data, "hi");
    }
}
