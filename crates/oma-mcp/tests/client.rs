//! The MCP client against a real MCP server on loopback (oma-testkit's `FakeMcp`) and the
//! probe. (The refresh grant is the egress proxy's: crates/oma-egress.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use oma_mcp::{HttpClient, McpError, ServerConfig, discover, probe};
use oma_testkit::fake_mcp::FakeMcp;
use serde_json::json;

fn server(name: &str, url: &str, bearer: Option<&str>) -> ServerConfig {
    ServerConfig {
        name: name.into(),
        url: url.into(),
        bearer: bearer.map(str::to_string),
    }
}

/// A loopback port nobody listens on.
async fn dead_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/mcp")
}

#[tokio::test]
async fn tools_are_discovered_and_called_with_the_platform_token() {
    let mcp = FakeMcp::start_requiring(Some("tok-123")).await;
    let http = HttpClient::direct().unwrap();
    let mut found = discover(
        &http,
        vec![server("fake", &mcp.url, Some("tok-123"))],
        Duration::from_secs(15),
    )
    .await;
    let d = found.pop().unwrap();
    assert_eq!(d.name, "fake");
    let (client, tools) = d.result.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["echo", "add"]);
    assert_eq!(tools[0].input_schema["required"], json!(["text"]));

    let out = client
        .call_tool("echo", json!({"text": "hello"}))
        .await
        .unwrap();
    assert!(!out.is_error);
    assert_eq!(
        out.content,
        vec![json!({"type": "text", "text": "echo: hello"})]
    );
    assert_eq!(
        mcp.calls(),
        vec![("echo".to_string(), json!({"text": "hello"}))]
    );
    // Every request carried the bearer.
    let auths = mcp.authorizations();
    assert!(!auths.is_empty());
    assert!(
        auths.iter().all(|a| a.as_deref() == Some("Bearer tok-123")),
        "{auths:?}"
    );
    client.close().await;
}

#[tokio::test]
async fn one_failing_server_does_not_hold_up_the_others() {
    let good = FakeMcp::start().await;
    let locked = FakeMcp::start_requiring(Some("right")).await;
    // A server that accepts the connection and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/mcp", silent.local_addr().unwrap());
    let http = HttpClient::direct().unwrap();
    let started = Instant::now();
    let found = discover(
        &http,
        vec![
            server("dead", &dead_url().await, None),
            server("silent", &silent_url, None),
            server("locked", &locked.url, Some("wrong")),
            server("good", &good.url, None),
        ],
        Duration::from_secs(2),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    let by = |n: &str| found.iter().find(|d| d.name == n).unwrap();
    assert!(
        matches!(by("dead").result, Err(McpError::Connect(_))),
        "{:?}",
        by("dead").result.as_ref().err()
    );
    assert!(matches!(by("silent").result, Err(McpError::Timeout(_))));
    assert!(
        matches!(by("locked").result, Err(McpError::Auth { status: 401 })),
        "{:?}",
        by("locked").result.as_ref().err()
    );
    assert_eq!(by("good").result.as_ref().unwrap().1.len(), 2);
    drop(silent);
}

#[tokio::test]
async fn the_probe_reports_the_failing_step_and_its_response() {
    let mcp = FakeMcp::start_requiring(Some("good-token")).await;
    let http = HttpClient::direct().unwrap();
    assert_eq!(
        probe::probe(&http, &mcp.url, Some("good-token"))
            .await
            .unwrap(),
        2
    );
    let failed = probe::probe(&http, &mcp.url, Some("bad-token"))
        .await
        .unwrap_err();
    assert_eq!(failed.method, "initialize");
    assert!(failed.is_auth() && !failed.is_transient());
    let r = failed.http_response.unwrap();
    assert_eq!(r.status_code, 401);
    assert!(!r.body.contains("bad-token"));
    let down = probe::probe(&http, &dead_url().await, None)
        .await
        .unwrap_err();
    assert!(down.http_response.is_none() && down.is_transient());
}
