//! The transports besides plain streamable HTTP: the legacy HTTP+SSE fallback of `connect`
//! (oma-testkit's `FakeLegacyMcp`), `connect_stream` over an in-memory pipe
//! (`FakeStreamMcp`), and `HttpClient::through_proxy` through a small forwarding proxy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oma_mcp::{HttpClient, McpClient, McpError, ServerConfig, connect, connect_stream};
use oma_testkit::fake_mcp::{FakeLegacyMcp, FakeMcp, FakeStreamMcp, LegacyOptions};
use serde_json::json;

fn server(url: &str, bearer: Option<&str>) -> ServerConfig {
    ServerConfig {
        name: "s".into(),
        url: url.into(),
        bearer: bearer.map(str::to_string),
    }
}

fn with_token(token: &str) -> LegacyOptions {
    LegacyOptions {
        token: Some(token.into()),
        ..LegacyOptions::default()
    }
}

/// Waits (bounded) until `check` holds.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Lists and calls the fake's tools.
async fn exercise(client: &dyn McpClient) {
    let tools = client.list_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["echo", "add"]);
    assert_eq!(tools[0].input_schema["required"], json!(["text"]));
    assert_eq!(tools[1].description, "Adds two numbers.");
    let out = client
        .call_tool("echo", json!({"text": "hello"}))
        .await
        .unwrap();
    assert!(!out.is_error);
    assert_eq!(
        out.content,
        vec![json!({"type": "text", "text": "echo: hello"})]
    );
    let sum = client
        .call_tool("add", json!({"a": 1, "b": 2}))
        .await
        .unwrap();
    assert_eq!(sum.content, vec![json!({"type": "text", "text": "3"})]);
    let missing = client.call_tool("nope", json!({})).await.unwrap_err();
    assert!(
        matches!(&missing, McpError::Protocol(m) if m.contains("no tool `nope`")),
        "{missing:?}"
    );
}

#[tokio::test]
async fn a_legacy_server_is_reached_by_falling_back_to_http_sse() {
    let mcp = FakeLegacyMcp::start(with_token("tok-1")).await;
    let http = HttpClient::direct().unwrap();
    let client = connect(&http, &server(&mcp.url, Some("tok-1")))
        .await
        .unwrap();
    exercise(client.as_ref()).await;
    assert_eq!(
        mcp.calls(),
        vec![
            ("echo".to_string(), json!({"text": "hello"})),
            ("add".to_string(), json!({"a": 1, "b": 2})),
            ("nope".to_string(), json!({})),
        ]
    );
    // The server pinged us before each call; every ping was answered.
    eventually("the ping answers", || mcp.client_replies().len() == 3).await;
    for reply in mcp.client_replies() {
        assert!(
            reply["id"].as_str().unwrap().starts_with("srv-ping-"),
            "{reply}"
        );
        assert_eq!(reply["result"], json!({}));
    }
    let requests = mcp.requests();
    let lines: Vec<&str> = requests.iter().map(|(r, _)| r.as_str()).collect();
    // The streamable attempt (a POST to the SSE URL, 405), then the stream and the messages.
    assert_eq!(&lines[..2], &["POST /sse", "GET /sse"], "{lines:?}");
    assert!(
        lines[2..].iter().all(|l| *l == "POST /messages"),
        "{lines:?}"
    );
    assert!(
        requests
            .iter()
            .all(|(_, a)| a.as_deref() == Some("Bearer tok-1")),
        "{requests:?}"
    );
    client.close().await;
}

#[tokio::test]
async fn a_legacy_stream_that_ends_fails_the_client() {
    let mcp = FakeLegacyMcp::start(LegacyOptions::default()).await;
    let http = HttpClient::direct().unwrap();
    let client = connect(&http, &server(&mcp.url, None)).await.unwrap();
    assert_eq!(client.list_tools().await.unwrap().len(), 2);
    mcp.end_streams();
    let err = client.list_tools().await.unwrap_err();
    assert!(matches!(err, McpError::Connect(_)), "{err:?}");
    client.close().await;
}

#[tokio::test]
async fn a_refused_credential_never_falls_back() {
    let mcp = FakeLegacyMcp::start(with_token("right")).await;
    let http = HttpClient::direct().unwrap();
    let err = connect(&http, &server(&mcp.url, Some("wrong")))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, McpError::Auth { status: 401 }), "{err:?}");
    let lines: Vec<String> = mcp.requests().into_iter().map(|(r, _)| r).collect();
    assert_eq!(lines, vec!["POST /sse"], "no legacy attempt after a 401");

    // A server whose 401 comes only on the stream's GET: still an authentication failure.
    let mcp = FakeLegacyMcp::start(LegacyOptions {
        token_on_legacy_routes_only: true,
        ..with_token("right")
    })
    .await;
    let err = connect(&http, &server(&mcp.url, Some("wrong")))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, McpError::Auth { status: 401 }), "{err:?}");
    let lines: Vec<String> = mcp.requests().into_iter().map(|(r, _)| r).collect();
    assert_eq!(lines, vec!["POST /sse", "GET /sse"]);
}

#[tokio::test]
async fn a_message_endpoint_on_another_origin_is_refused() {
    let mcp = FakeLegacyMcp::start(LegacyOptions {
        foreign_endpoint: true,
        ..with_token("tok")
    })
    .await;
    let http = HttpClient::direct().unwrap();
    let err = connect(&http, &server(&mcp.url, Some("tok")))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, McpError::Protocol(m) if m.contains("another origin")),
        "{err:?}"
    );
    assert!(
        !mcp.requests()
            .iter()
            .any(|(r, _)| r.starts_with("POST /messages")),
        "nothing was sent to the other origin"
    );
}

#[tokio::test]
async fn a_wrong_url_reports_both_transports() {
    let mcp = FakeMcp::start().await;
    let wrong = mcp.url.replace("/mcp", "/nowhere");
    let http = HttpClient::direct().unwrap();
    let err = connect(&http, &server(&wrong, None)).await.err().unwrap();
    assert!(
        matches!(&err, McpError::Connect(m) if m.contains("HTTP 404") && m.contains("legacy HTTP+SSE")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_stdio_server_is_reached_over_its_streams() {
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    let (server_read, server_write) = tokio::io::split(server_end);
    let fake = FakeStreamMcp::serve(server_read, server_write);
    let (client_read, client_write) = tokio::io::split(client_end);
    let client = tokio::time::timeout(
        Duration::from_secs(10),
        connect_stream("stdio", client_read, client_write),
    )
    .await
    .unwrap()
    .unwrap();
    exercise(client.as_ref()).await;
    assert_eq!(fake.calls().len(), 3);
    client.close().await;
}

#[tokio::test]
async fn a_stdio_server_that_exits_is_a_connection_failure() {
    let (client_end, server_end) = tokio::io::duplex(1024);
    drop(server_end);
    let (r, w) = tokio::io::split(client_end);
    let err = connect_stream("gone", r, w).await.err().unwrap();
    assert!(matches!(err, McpError::Connect(_)), "{err:?}");
}

/// A public test CA certificate (the proxy here speaks plain HTTP; `through_proxy` only needs
/// a root to trust).
const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBizCCATGgAwIBAgIUOXFEGjqfRKnukeZnCbA8kZ7qT/cwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPb21hLW1jcCB0ZXN0IENBMCAXDTI2MTEyNzEyMzQwMVoYDzIx
MjYxMTAzMTIzNDAxWjAaMRgwFgYDVQQDDA9vbWEtbWNwIHRlc3QgQ0EwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAATLBpr6o0MlYlyY3mIDd2lp/mqFvmo6RuKEdoLF
YGVaT8mMhqGkNieVFPt5ptrujvlFs+Yq7SwJ4xFPOXTLwhOHo1MwUTAdBgNVHQ4E
FgQUL4LoElMjBmTY3yMZCdNHWH6kPIcwHwYDVR0jBBgwFoAUL4LoElMjBmTY3yMZ
CdNHWH6kPIcwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEA8jkw
VXhkbOI3muAxBVVJU8u94y0pMIx/Ebl5YVVTAi0CIFvw7kz97ZPHaaessIvrbG/p
a+nM+mW2/fBdswOsFcvK
-----END CERTIFICATE-----
";

/// What the proxy saw: `(absolute target URI, Proxy-Authorization)`.
type ProxySeen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A forwarding HTTP proxy (absolute-form requests, plain HTTP targets) that streams answers
/// back, so SSE streams work through it.
async fn forwarding_proxy() -> (String, ProxySeen, tokio::task::JoinHandle<()>) {
    use axum::body::Body;
    use axum::extract::Request;
    use futures::TryStreamExt;
    let seen: ProxySeen = Arc::default();
    let upstream = reqwest::Client::builder().no_proxy().build().unwrap();
    let s = seen.clone();
    let app = axum::Router::new().fallback(move |req: Request| {
        let (seen, upstream) = (s.clone(), upstream.clone());
        async move {
            let (parts, body) = req.into_parts();
            let auth = parts
                .headers
                .get("proxy-authorization")
                .map(|v| v.to_str().unwrap().to_string());
            seen.lock().unwrap().push((parts.uri.to_string(), auth));
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let mut forward = upstream.request(parts.method, parts.uri.to_string());
            for (k, v) in &parts.headers {
                if !["host", "proxy-authorization", "connection"].contains(&k.as_str()) {
                    forward = forward.header(k, v);
                }
            }
            let answer = forward.body(body).send().await.unwrap();
            let mut out = axum::http::Response::builder().status(answer.status().as_u16());
            for (k, v) in answer.headers() {
                if !["transfer-encoding", "connection", "content-length"].contains(&k.as_str()) {
                    out = out.header(k.as_str(), v.as_bytes());
                }
            }
            let stream = answer.bytes_stream().map_err(std::io::Error::other);
            out.body(Body::from_stream(stream)).unwrap()
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (url, seen, task)
}

#[tokio::test]
async fn everything_goes_through_the_proxy_with_its_token() {
    let (proxy, seen, task) = forwarding_proxy().await;
    let http = HttpClient::through_proxy(&proxy, "door-token", TEST_CA).unwrap();
    let streamable = FakeMcp::start_requiring(Some("t1")).await;
    let legacy = FakeLegacyMcp::start(with_token("t2")).await;
    // No address guard: the proxy decides.
    for (url, token) in [(&streamable.url, "t1"), (&legacy.url, "t2")] {
        let client = connect(&http, &server(url, Some(token))).await.unwrap();
        exercise(client.as_ref()).await;
        client.close().await;
    }
    assert_eq!(
        oma_mcp::probe::probe(&http, &streamable.url, Some("t1"))
            .await
            .unwrap(),
        2
    );
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().any(|(u, _)| u.starts_with(&streamable.url)));
    assert!(
        seen.iter()
            .any(|(u, _)| u.contains("/messages?session_id="))
    );
    assert!(
        seen.iter()
            .all(|(_, a)| a.as_deref() == Some("Bearer door-token")),
        "{seen:?}"
    );
    assert!(HttpClient::through_proxy(&proxy, "t", "not a pem").is_err());
    task.abort();
}
