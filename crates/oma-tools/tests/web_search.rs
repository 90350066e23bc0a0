//! `web_search` against fake Brave and SearXNG servers on the loopback interface: the request
//! each provider gets, result parsing and filtering, error mapping, and `Toolbox` dispatch.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use oma_api::agents::{
    AgentToolConfig, AgentToolset, PermissionPolicy, ToolsetDefaultConfig, UserLocation,
    WebSearchToolConfig,
};
use oma_tools::web_search::SearchPolicy;
use oma_tools::{
    SearchProvider, Toolbox, WebFetchClient, WebFetchOptions, WebSearchClient, WebSearchOptions,
    WebSearchSettings,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const KEY: &str = "brave-secret-key-123";

/// One request as the fake saw it: the request target and the lower-cased headers.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

const BRAVE_BODY: &str = r#"{"type":"search","query":{"original":"rust"},"mixed":{"type":"mixed","main":[]},
"web":{"type":"search","family_friendly":true,"results":[
 {"type":"search_result","title":"The <strong>Rust</strong> Programming Language","url":"https://www.rust-lang.org/","description":"A language empowering <strong>everyone</strong>.","page_age":"2024-06-01T00:00:00","age":"June 1, 2024","language":"en"},
 {"type":"search_result","title":"Rust spam","url":"https://spam.example.com/rust","description":"Buy now"},
 {"type":"search_result","title":"docs.rs","url":"https://docs.rs/","description":"Rust docs"}
]}}"#;

const SEARXNG_BODY: &str = r#"{"query":"rust","number_of_results":0,"results":[
 {"url":"https://www.rust-lang.org/","title":"Rust","content":"A language","engine":"duckduckgo","engines":["duckduckgo"],"score":1.0,"category":"general","publishedDate":null},
 {"url":"https://blog.rust-lang.org/2024/","title":"Rust Blog","content":"News","engine":"bing","publishedDate":"2024-02-01T00:00:00"}
],"answers":[],"corrections":[],"infoboxes":[],"suggestions":[],"unresponsive_engines":[]}"#;

/// A minimal HTTP/1.1 server recording every request. The first path segment picks the
/// answer: `/ok` (Brave), `/searx` (SearXNG), `/down` (503), `/busy` (429), `/junk` (not
/// JSON), `/hang` (never answers).
async fn serve() -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                let mut got = 0;
                while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf[got..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got += n,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..got]).to_string();
                let mut lines = head.split("\r\n");
                let target = lines
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .unwrap_or("/")
                    .to_string();
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                log.lock().unwrap().push(Seen {
                    target: target.clone(),
                    headers,
                });
                let first = target.split('/').nth(1).unwrap_or_default().to_string();
                let (status, body) = match first.as_str() {
                    "ok" => ("200 OK", BRAVE_BODY.to_string()),
                    "searx" => ("200 OK", SEARXNG_BODY.to_string()),
                    "down" => ("503 Service Unavailable", r#"{"error":"down"}"#.to_string()),
                    "busy" => (
                        "429 Too Many Requests",
                        r#"{"type":"ErrorResponse"}"#.to_string(),
                    ),
                    "junk" => ("200 OK", "<html>not json</html>".to_string()),
                    "hang" => {
                        std::future::pending::<()>().await;
                        return;
                    }
                    _ => ("404 Not Found", "{}".to_string()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (port, seen)
}

fn brave(port: u16, prefix: &str) -> WebSearchClient {
    let mut o = WebSearchOptions::new(SearchProvider::Brave);
    o.base_url = format!("http://127.0.0.1:{port}/{prefix}");
    o.api_key = Some(KEY.into());
    o.max_results = 7;
    o.timeout = Duration::from_secs(20);
    WebSearchClient::new(o).unwrap()
}

fn searxng(port: u16) -> WebSearchClient {
    let mut o = WebSearchOptions::new(SearchProvider::Searxng);
    o.base_url = format!("http://127.0.0.1:{port}/searx/");
    o.api_key = Some(KEY.into());
    WebSearchClient::new(o).unwrap()
}

fn config(
    allowed: Option<&[&str]>,
    blocked: Option<&[&str]>,
    country: Option<&str>,
) -> WebSearchToolConfig {
    WebSearchToolConfig {
        name: "web_search".into(),
        enabled: true,
        permission_policy: PermissionPolicy::AlwaysAllow,
        allowed_domains: allowed.map(|l| l.iter().map(|s| s.to_string()).collect()),
        blocked_domains: blocked.map(|l| l.iter().map(|s| s.to_string()).collect()),
        user_location: country.map(|c| UserLocation {
            city: None,
            country: Some(c.into()),
            region: None,
            timezone: None,
        }),
    }
}

#[tokio::test]
async fn brave_gets_its_wire_format_and_blocked_results_are_dropped() {
    let (port, seen) = serve().await;
    let c = brave(port, "ok");
    let settings = WebSearchSettings::from_config(Some(&config(
        None,
        Some(&["spam.example.com"]),
        Some("gb"),
    )));
    let run = c
        .search("rust lang & more", &settings, &CancellationToken::new())
        .await
        .unwrap();
    assert!(run.executed);
    assert!(!run.outcome.is_error);
    let text = run.outcome.text_content();
    assert!(
        text.starts_with("Search results for \"rust lang & more\" (2 results):"),
        "{text}"
    );
    assert!(text.contains("1. The Rust Programming Language\n   URL: https://www.rust-lang.org/\n   Age: 2024-06-01T00:00:00\n   A language empowering everyone."), "{text}");
    assert!(
        text.contains("2. docs.rs\n   URL: https://docs.rs/"),
        "{text}"
    );
    assert!(!text.contains("spam"), "{text}");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].target,
        "/ok/res/v1/web/search?q=rust+lang+%26+more&count=7&country=GB"
    );
    assert_eq!(seen[0].header("x-subscription-token"), Some(KEY));
    assert_eq!(seen[0].header("accept"), Some("application/json"));
}

#[tokio::test]
async fn searxng_gets_its_wire_format_and_allowlists_keep_only_their_domains() {
    let (port, seen) = serve().await;
    let c = searxng(port);
    let settings = WebSearchSettings {
        policy: SearchPolicy::from_lists(Some(&["blog.rust-lang.org/2024".to_string()]), None),
        country: Some("US".into()),
    };
    let run = c
        .search("rust", &settings, &CancellationToken::new())
        .await
        .unwrap();
    assert!(run.executed);
    let text = run.outcome.text_content();
    assert!(text.contains("(1 result)"), "{text}");
    assert!(
        text.contains("1. Rust Blog\n   URL: https://blog.rust-lang.org/2024/\n   Age: 2024-02-01T00:00:00\n   News"),
        "{text}"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].target, "/searx/search?q=rust&format=json");
    // SearXNG takes no key: the Brave token is never sent elsewhere.
    assert_eq!(seen[0].header("x-subscription-token"), None);

    // Everything filtered away: "no results", still a search that ran.
    let none = WebSearchSettings {
        policy: SearchPolicy::from_lists(Some(&["example.org".to_string()]), None),
        country: None,
    };
    let run = c
        .search("rust", &none, &CancellationToken::new())
        .await
        .unwrap();
    assert!(run.executed && !run.outcome.is_error);
    assert_eq!(run.outcome.text_content(), "No results for \"rust\".");
}

#[tokio::test]
async fn backend_failures_name_the_provider_and_status_never_the_key() {
    let (port, _) = serve().await;
    let s = WebSearchSettings::default();
    let cancel = CancellationToken::new();
    for (prefix, code, detail) in [
        ("down", "unavailable", "HTTP 503"),
        ("busy", "too_many_requests", "HTTP 429"),
        ("nothing-here", "unavailable", "HTTP 404"),
        ("junk", "unavailable", "not brave search JSON"),
    ] {
        let run = brave(port, prefix).search("q", &s, &cancel).await.unwrap();
        assert!(run.outcome.is_error, "{prefix}");
        assert!(!run.executed, "{prefix}");
        let text = run.outcome.text_content();
        assert!(text.starts_with(code), "{prefix}: {text}");
        assert!(text.contains("brave search backend"), "{prefix}: {text}");
        assert!(text.contains(detail), "{prefix}: {text}");
        assert!(!text.contains(KEY), "{prefix}: {text}");
    }
    // Nothing listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let run = brave(closed, "x").search("q", &s, &cancel).await.unwrap();
    assert!(run.outcome.is_error && !run.executed);
    let text = run.outcome.text_content();
    assert!(
        text.starts_with("unavailable: the brave search backend failed: cannot reach it"),
        "{text}"
    );
    assert!(!text.contains(KEY), "{text}");
}

#[tokio::test]
async fn invalid_queries_never_reach_the_backend_and_cancel_stops_a_search() {
    let (port, seen) = serve().await;
    let c = brave(port, "ok");
    let s = WebSearchSettings::default();
    for q in ["", "   ", &"x".repeat(501)] {
        let run = c.search(q, &s, &CancellationToken::new()).await.unwrap();
        assert!(run.outcome.is_error && !run.executed);
    }
    assert!(seen.lock().unwrap().is_empty());

    let hang = brave(port, "hang");
    let cancel = CancellationToken::new();
    let task = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            hang.search("q", &WebSearchSettings::default(), &cancel)
                .await
        })
    };
    // Cancel once the request reached the server (poll with a deadline).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the request never arrived"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cancel.cancel();
    assert!(task.await.unwrap().is_none());
}

fn toolset(configs: Vec<AgentToolConfig>) -> AgentToolset {
    AgentToolset {
        configs,
        default_config: ToolsetDefaultConfig {
            enabled: true,
            permission_policy: PermissionPolicy::AlwaysAllow,
        },
    }
}

#[tokio::test]
async fn the_toolbox_offers_web_search_only_with_a_backend_and_meters_searches() {
    let (port, seen) = serve().await;
    let web = WebFetchClient::new(WebFetchOptions::default()).unwrap();
    let ts = toolset(vec![AgentToolConfig::WebSearch(config(
        None,
        Some(&["spam.example.com"]),
        None,
    ))]);
    let cancel = CancellationToken::new;

    let without = Toolbox::new(&ts, web.clone()).with_search(None);
    assert!(without.definition("web_search").is_none());
    assert_eq!(without.definitions().len(), 7);
    let h = without
        .run_host("web_search", &json!({"query": "rust"}), cancel())
        .await
        .unwrap();
    assert!(h.outcome.is_error && h.web_search_requests == 0);
    assert!(h.outcome.text_content().contains("not enabled"));

    let with = Toolbox::new(&ts, web.clone()).with_search(Some(brave(port, "ok")));
    let names: Vec<&str> = with.definitions().iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names.last(), Some(&"web_search"));
    assert_eq!(
        with.definition("web_search").unwrap().input_schema["required"],
        json!(["query"])
    );
    let h = with
        .run_host("web_search", &json!({"query": "rust"}), cancel())
        .await
        .unwrap();
    assert!(!h.outcome.is_error, "{}", h.outcome.text_content());
    assert_eq!(h.web_search_requests, 1);
    // The agent's blocked_domains reached the search.
    assert!(!h.outcome.text_content().contains("spam.example.com"));
    assert!(h.outcome.text_content().contains("docs.rs"));
    let h = with
        .run_host("web_search", &json!({"q": "rust"}), cancel())
        .await
        .unwrap();
    assert!(h.outcome.is_error && h.web_search_requests == 0);
    assert_eq!(
        h.outcome.text_content(),
        "invalid input for web_search: `query` is required"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);

    // A failing backend costs nothing.
    let down = Toolbox::new(&ts, web.clone()).with_search(Some(brave(port, "down")));
    let h = down
        .run_host("web_search", &json!({"query": "rust"}), cancel())
        .await
        .unwrap();
    assert!(h.outcome.is_error && h.web_search_requests == 0);

    // Disabled in the toolset: not offered even with a backend.
    let mut off = config(None, None, None);
    off.enabled = false;
    let tb = Toolbox::new(&toolset(vec![AgentToolConfig::WebSearch(off)]), web)
        .with_search(Some(brave(port, "ok")));
    assert!(tb.definition("web_search").is_none());
}
