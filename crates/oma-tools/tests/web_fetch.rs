//! `web_fetch` against a real HTTP server on the loopback interface, and `Toolbox` dispatch.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use oma_api::agents::{
    AgentToolConfig, AgentToolset, BasicToolConfig, PermissionPolicy, ToolsetDefaultConfig,
    WebFetchToolConfig,
};
use oma_sandbox::{BoxInfo, OutputBlock, Sandbox, SandboxError, ToolCall, ToolOutcome};
use oma_tools::web_fetch::DomainPolicy;
use oma_tools::{Toolbox, WebFetchClient, WebFetchOptions, WebFetchSettings};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A minimal HTTP/1.1 server: one response per connection, chosen by path.
async fn serve() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = 0;
                while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf[got..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got += n,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..got]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, ctype, body, extra): (&str, &str, Vec<u8>, String) =
                    match path.as_str() {
                        "/page" => (
                            "200 OK",
                            "text/html; charset=utf-8",
                            b"<html><head><title>Test page</title><script>evil()</script></head>\
                              <body><h1>Welcome</h1><p>Hello &amp; goodbye.</p></body></html>"
                                .to_vec(),
                            String::new(),
                        ),
                        "/plain" => ("200 OK", "text/plain", b"just text".to_vec(), String::new()),
                        "/big" => ("200 OK", "text/plain", vec![b'x'; 50_000], String::new()),
                        "/pdf" => (
                            "200 OK",
                            "application/pdf",
                            b"%PDF-1.4 fake".to_vec(),
                            String::new(),
                        ),
                        "/bin" => (
                            "200 OK",
                            "application/octet-stream",
                            vec![0, 1, 2, 3],
                            String::new(),
                        ),
                        "/redirect" => (
                            "302 Found",
                            "text/plain",
                            Vec::new(),
                            "Location: /page\r\n".to_string(),
                        ),
                        "/redirect-ip" => (
                            "302 Found",
                            "text/plain",
                            Vec::new(),
                            format!("Location: http://127.0.0.1:{port}/page\r\n"),
                        ),
                        "/loop" => (
                            "302 Found",
                            "text/plain",
                            Vec::new(),
                            "Location: /loop\r\n".to_string(),
                        ),
                        "/slow" => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            return;
                        }
                        _ => (
                            "404 Not Found",
                            "text/plain",
                            b"nope".to_vec(),
                            String::new(),
                        ),
                    };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.write_all(&body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    port
}

fn client(allow_private: bool) -> WebFetchClient {
    WebFetchClient::new(WebFetchOptions {
        allow_private_networks: allow_private,
        timeout: Duration::from_secs(10),
        ..WebFetchOptions::default()
    })
    .unwrap()
}

fn settings(
    allowed: Option<&[&str]>,
    blocked: Option<&[&str]>,
    tokens: Option<i64>,
) -> WebFetchSettings {
    WebFetchSettings::from_config(Some(&web_fetch_config(allowed, blocked, tokens)))
}

fn web_fetch_config(
    allowed: Option<&[&str]>,
    blocked: Option<&[&str]>,
    tokens: Option<i64>,
) -> WebFetchToolConfig {
    WebFetchToolConfig {
        name: "web_fetch".into(),
        enabled: true,
        permission_policy: PermissionPolicy::AlwaysAllow,
        url_sources: None,
        allowed_domains: allowed.map(|l| l.iter().map(|s| s.to_string()).collect()),
        blocked_domains: blocked.map(|l| l.iter().map(|s| s.to_string()).collect()),
        max_content_tokens: tokens,
    }
}

async fn fetch(c: &WebFetchClient, url: &str, s: &WebFetchSettings) -> ToolOutcome {
    c.fetch(url, s, &CancellationToken::new()).await.unwrap()
}

#[tokio::test]
async fn pages_text_and_documents() {
    let port = serve().await;
    let c = client(true);
    let open = WebFetchSettings::default();

    let out = fetch(&c, &format!("http://localhost:{port}/page"), &open).await;
    assert!(!out.is_error, "{out:?}");
    let text = out.text_content();
    assert!(
        text.starts_with(&format!("URL: http://localhost:{port}/page\n")),
        "{text}"
    );
    assert!(text.contains("Content-Type: text/html\n"), "{text}");
    assert!(text.contains("Title: Test page\n"), "{text}");
    assert!(text.contains("Welcome\n\nHello & goodbye."), "{text}");
    assert!(!text.contains("evil"), "{text}");

    // Redirects are followed.
    let out = fetch(&c, &format!("http://localhost:{port}/redirect"), &open).await;
    assert!(out.text_content().contains("Welcome"), "{out:?}");

    let out = fetch(&c, &format!("http://localhost:{port}/plain"), &open).await;
    assert!(out.text_content().ends_with("\n\njust text"), "{out:?}");

    let out = fetch(&c, &format!("http://localhost:{port}/pdf"), &open).await;
    assert!(matches!(
        out.content.as_slice(),
        [OutputBlock::Document { media_type, .. }] if media_type == "application/pdf"
    ));

    let out = fetch(
        &c,
        &format!("http://localhost:{port}/big"),
        &settings(None, None, Some(100)),
    )
    .await;
    let text = out.text_content();
    assert!(text.contains(&"x".repeat(400)), "{text}");
    assert!(!text.contains(&"x".repeat(401)), "{text}");
    assert!(
        text.ends_with("[Content truncated to about 100 tokens.]"),
        "{text}"
    );
}

#[tokio::test]
async fn failures_carry_error_codes() {
    let port = serve().await;
    let c = client(true);
    let open = WebFetchSettings::default();
    let code = |out: &ToolOutcome| {
        assert!(out.is_error, "{out:?}");
        out.text_content().split(':').next().unwrap().to_string()
    };
    assert_eq!(
        code(&fetch(&c, &format!("http://localhost:{port}/missing"), &open).await),
        "url_not_accessible"
    );
    assert_eq!(
        code(&fetch(&c, &format!("http://localhost:{port}/bin"), &open).await),
        "unsupported_content_type"
    );
    assert_eq!(
        code(&fetch(&c, &format!("http://localhost:{port}/loop"), &open).await),
        "url_not_accessible"
    );
    assert_eq!(
        code(&fetch(&c, "ftp://example.com/x", &open).await),
        "invalid_tool_input"
    );
    assert_eq!(
        code(&fetch(&c, "not a url", &open).await),
        "invalid_tool_input"
    );
    let long = format!("https://example.com/{}", "a".repeat(3000));
    assert_eq!(code(&fetch(&c, &long, &open).await), "url_too_long");
    // Nothing listens on port 1.
    assert_eq!(
        code(&fetch(&c, "http://127.0.0.1:1/", &open).await),
        "url_not_accessible"
    );
}

#[tokio::test]
async fn domain_rules_apply_to_every_hop() {
    let port = serve().await;
    let c = client(true);
    let only_example = settings(Some(&["example.com"]), None, None);
    let out = fetch(&c, &format!("http://localhost:{port}/page"), &only_example).await;
    assert!(out.is_error);
    assert!(
        out.text_content().starts_with("url_not_allowed:"),
        "{out:?}"
    );
    assert!(out.text_content().contains("allowed_domains"), "{out:?}");

    let blocked = settings(None, Some(&["localhost"]), None);
    let out = fetch(&c, &format!("http://localhost:{port}/page"), &blocked).await;
    assert!(
        out.text_content().starts_with("url_not_allowed:"),
        "{out:?}"
    );

    // Allowed at first, redirected somewhere that is not.
    let localhost_only = settings(Some(&["localhost"]), None, None);
    let out = fetch(
        &c,
        &format!("http://localhost:{port}/page"),
        &localhost_only,
    )
    .await;
    assert!(!out.is_error, "{out:?}");
    let out = fetch(
        &c,
        &format!("http://localhost:{port}/redirect-ip"),
        &localhost_only,
    )
    .await;
    assert!(
        out.text_content().starts_with("url_not_allowed:"),
        "{out:?}"
    );

    // A combined policy narrows.
    let narrowed = WebFetchSettings {
        policy: DomainPolicy::from_config(&web_fetch_config(Some(&["localhost"]), None, None))
            .combine(&DomainPolicy::from_config(&web_fetch_config(
                Some(&["example.com"]),
                None,
                None,
            ))),
        max_content_tokens: None,
    };
    let out = fetch(&c, &format!("http://localhost:{port}/page"), &narrowed).await;
    assert!(
        out.text_content().starts_with("url_not_allowed:"),
        "{out:?}"
    );
}

#[tokio::test]
async fn private_networks_are_refused_by_default() {
    let port = serve().await;
    let c = client(false);
    let open = WebFetchSettings::default();
    for url in [
        format!("http://127.0.0.1:{port}/page"),
        format!("http://localhost:{port}/page"),
        format!("http://[::1]:{port}/page"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ] {
        let out = fetch(&c, &url, &open).await;
        assert!(out.is_error, "{url}: {out:?}");
        assert!(
            out.text_content().starts_with("url_not_allowed:"),
            "{url}: {out:?}"
        );
    }
}

#[tokio::test]
async fn cancellation_stops_a_fetch() {
    let port = serve().await;
    let c = client(true);
    let token = CancellationToken::new();
    let url = format!("http://localhost:{port}/slow");
    let settings = WebFetchSettings::default();
    let fetch = c.fetch(&url, &settings, &token);
    let cancel = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        token.cancel();
    };
    let (out, ()) = tokio::join!(fetch, cancel);
    assert!(out.is_none());
}

/// Records the calls it gets; answers each with its tool name. Only the toolbox's routing is
/// under test here (the real box has its own suite in oma-sandbox).
#[derive(Default)]
struct RecordingBox {
    calls: Mutex<Vec<ToolCall>>,
}

impl Sandbox for RecordingBox {
    fn call(
        &self,
        call: ToolCall,
        _cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<ToolOutcome, SandboxError>> {
        let name = call.tool_name();
        self.calls.lock().unwrap().push(call);
        Box::pin(async move { Ok(ToolOutcome::text(format!("ran {name}"))) })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    fn info(&self) -> BoxInfo {
        BoxInfo {
            backend: "recording",
            isolated: false,
            session_id: "s".into(),
            workspace: "/w".into(),
            box_workspace: "/w".into(),
            agent_version: "0".into(),
            agent_pid: None,
        }
    }
}

#[tokio::test]
async fn toolbox_routes_calls() {
    let port = serve().await;
    let toolset = AgentToolset {
        configs: vec![
            AgentToolConfig::Bash(BasicToolConfig {
                name: "bash".into(),
                enabled: false,
                permission_policy: PermissionPolicy::AlwaysAllow,
            }),
            AgentToolConfig::WebFetch(web_fetch_config(Some(&["localhost"]), None, None)),
        ],
        default_config: ToolsetDefaultConfig {
            enabled: true,
            permission_policy: PermissionPolicy::AlwaysAllow,
        },
    };
    let tb = Toolbox::new(&toolset, client(true));
    let sandbox = Arc::new(RecordingBox::default());
    let run = |name: &'static str, input: serde_json::Value| {
        let tb = tb.clone();
        let sandbox = Arc::clone(&sandbox);
        async move {
            tb.run(name, &input, sandbox.as_ref(), CancellationToken::new())
                .await
                .unwrap()
        }
    };

    let out = run("read", json!({"file_path": "a.txt"})).await;
    assert_eq!(out.text_content(), "ran read");
    let out = run("bash", json!({"command": "ls"})).await;
    assert!(out.is_error);
    assert!(out.text_content().contains("not enabled"), "{out:?}");
    let out = run("edit", json!({"file_path": "a.txt"})).await;
    assert!(out.is_error);
    assert!(
        out.text_content().contains("`old_string` is required"),
        "{out:?}"
    );
    let out = run(
        "web_fetch",
        json!({"url": format!("http://localhost:{port}/plain")}),
    )
    .await;
    assert!(out.text_content().ends_with("just text"), "{out:?}");
    let out = run(
        "web_fetch",
        json!({"url": format!("http://127.0.0.1:{port}/plain")}),
    )
    .await;
    assert!(out.text_content().starts_with("url_not_allowed"), "{out:?}");
    // Only the valid sandbox call reached the box.
    assert_eq!(
        *sandbox.calls.lock().unwrap(),
        vec![ToolCall::Read {
            file_path: "a.txt".into(),
            view_range: None
        }]
    );
}
