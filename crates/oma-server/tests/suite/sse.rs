//! The event log over HTTP: `seq` contiguity, live delivery, exact resume with
//! `Last-Event-ID`, catch-up of a subscriber that fell behind, and the end of a deleted
//! session's stream.

use std::time::Duration;

use futures::StreamExt;
use oma_testkit::{TestServer, backends};
use serde_json::{Value, json};

/// One SSE frame.
#[derive(Debug, Clone)]
struct Frame {
    event: String,
    id: Option<i64>,
    data: Value,
}

/// Reads frames off an SSE response, skipping `ping`s.
struct SseReader {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl SseReader {
    async fn open(s: &TestServer, session: &str, last_event_id: Option<i64>) -> SseReader {
        let mut req = s.req(
            reqwest::Method::GET,
            &format!("/v1/sessions/{session}/events/stream"),
        );
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        SseReader {
            body: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next non-ping frame, or `None` when the server closed the stream.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..end + 2).collect();
                let mut f = Frame {
                    event: String::new(),
                    id: None,
                    data: Value::Null,
                };
                for line in raw.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        f.event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        f.id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        f.data = serde_json::from_str(v.trim()).unwrap_or(Value::Null);
                    }
                }
                if f.event == "ping" || f.event.is_empty() {
                    continue;
                }
                return Some(f);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.body.next())
                .await
                .expect("stream stalled for 30 s");
            match chunk {
                Some(Ok(bytes)) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    async fn take(&mut self, n: usize) -> Vec<Frame> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            out.push(self.next().await.expect("stream ended early"));
        }
        out
    }
}

async fn new_session(s: &TestServer) -> String {
    let (_, agent) = s
        .post(
            "/v1/agents",
            json!({"name": "sse", "model": "claude-opus-4-8"}),
        )
        .await
        .unwrap();
    let (_, env) = s
        .post(
            "/v1/environments",
            json!({"name": "sse", "config": {"type": "cloud"}}),
        )
        .await
        .unwrap();
    let (status, session) = s
        .post(
            "/v1/sessions",
            json!({"agent": agent["id"], "environment_id": env["id"]}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{session}");
    session["id"].as_str().unwrap().to_string()
}

fn messages(n: usize, tag: &str) -> Value {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"type": "user.message", "content": [{"type": "text", "text": format!("{tag}-{i}")}]}))
        .collect();
    json!({ "events": events })
}

#[tokio::test]
async fn live_delivery_and_exact_resume() {
    for b in backends() {
        let s = TestServer::start(b).await.unwrap();
        let sid = new_session(&s).await;
        let mut live = SseReader::open(&s, &sid, None).await;
        let (status, sent) = s
            .post(&format!("/v1/sessions/{sid}/events"), messages(3, "a"))
            .await
            .unwrap();
        assert_eq!(status, 200, "{sent}");
        let got = live.take(3).await;
        let ids: Vec<i64> = got.iter().map(|f| f.id.unwrap()).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        for (f, echoed) in got.iter().zip(sent["data"].as_array().unwrap()) {
            assert_eq!(f.event, "user.message");
            assert_eq!(f.data["type"], "user.message");
            assert_eq!(f.data["id"], echoed["id"]);
        }

        // Reconnect after seq 1: exactly 2 and 3 are replayed, then live events follow.
        let mut resumed = SseReader::open(&s, &sid, Some(1)).await;
        let replay = resumed.take(2).await;
        assert_eq!(
            replay.iter().map(|f| f.id.unwrap()).collect::<Vec<_>>(),
            vec![2, 3]
        );
        s.post(&format!("/v1/sessions/{sid}/events"), messages(1, "b"))
            .await
            .unwrap();
        let next = resumed.take(1).await;
        assert_eq!(next[0].id, Some(4));
        assert_eq!(live.take(1).await[0].id, Some(4));

        // The list agrees with the stream.
        let (_, page) = s
            .get(&format!("/v1/sessions/{sid}/events?limit=2"))
            .await
            .unwrap();
        assert_eq!(page["data"].as_array().unwrap().len(), 2);
        assert!(page["next_page"].is_string());
        s.stop().await;
    }
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_is_caught_up_not_skipped() {
    for b in backends() {
        let s = TestServer::start(b).await.unwrap();
        let sid = new_session(&s).await;
        // Open the stream but do not read: the server's buffers fill and it falls behind.
        let mut slow = SseReader::open(&s, &sid, None).await;
        // Write as a session host does: append to the log, then publish what was committed.
        let total = 3000;
        for round in 0..(total / 100) {
            let batch: Vec<_> = (0..100)
                .map(|i| {
                    let mut f = serde_json::Map::new();
                    f.insert(
                        "content".into(),
                        json!([{"type": "text", "text": format!("r{round}-{i}")}]),
                    );
                    oma_core::events::NewEvent::new("agent.message", f)
                })
                .collect();
            let stored = s.store.append_events(&s.tenant, &sid, batch).await.unwrap();
            let committed = stored
                .into_iter()
                .map(oma_server::hub::Committed::from)
                .collect();
            s.state.hub.publish(&sid, committed);
        }
        let got = slow.take(total).await;
        let ids: Vec<i64> = got.iter().map(|f| f.id.unwrap()).collect();
        let expected: Vec<i64> = (1..=total as i64).collect();
        assert_eq!(ids, expected, "every event exactly once, in order");
        s.stop().await;
    }
}

#[tokio::test]
async fn deleting_a_session_ends_its_stream() {
    for b in backends() {
        let s = TestServer::start(b).await.unwrap();
        let sid = new_session(&s).await;
        let mut stream = SseReader::open(&s, &sid, None).await;
        let (status, body) =
            oma_testkit::send(s.req(reqwest::Method::DELETE, &format!("/v1/sessions/{sid}")))
                .await
                .unwrap();
        assert_eq!(status, 200, "{body}");
        let last = stream.next().await.expect("session.deleted frame");
        assert_eq!(last.event, "session.deleted");
        assert!(
            stream.next().await.is_none(),
            "the stream closes after session.deleted"
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn stream_errors_are_envelopes_before_streaming() {
    for b in backends() {
        let s = TestServer::start(b).await.unwrap();
        let (status, body) = s.get("/v1/sessions/sesn_nope/events/stream").await.unwrap();
        assert_eq!(status, 404);
        assert_eq!(body["type"], "error");
        let sid = new_session(&s).await;
        let (status, body) = s
            .get(&format!(
                "/v1/sessions/{sid}/events/stream?event_deltas[]=bogus"
            ))
            .await
            .unwrap();
        assert_eq!(status, 400, "{body}");
        s.stop().await;
    }
}
