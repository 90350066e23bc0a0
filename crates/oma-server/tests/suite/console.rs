//! The console's assets as the server serves them (the browser test in `e2e/console/` drives
//! the pages themselves): embedded, with the security headers, revalidated by ETag, deep links
//! loading the page, and the API's own 404 envelope untouched.

use oma_testkit::{Backend, TestServer};
use serde_json::Value;

#[tokio::test]
async fn console_is_served_at_the_root_with_a_strict_policy() {
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    let resp = s.http.get(s.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    let html = resp.text().await.unwrap();
    assert!(html.contains("/console/app.js") && html.contains("/console/app.css"));

    for (path, kind) in [
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/app.css", "text/css; charset=utf-8"),
        ("/console/icon.svg", "image/svg+xml"),
    ] {
        let resp = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], kind, "{path}");
        // Unchanged content is a 304 on the next load.
        let tag = resp.headers()["etag"].to_str().unwrap().to_string();
        let again = s
            .http
            .get(s.url(path))
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
    s.stop().await;
}

#[tokio::test]
async fn deep_links_load_the_page_and_the_api_keeps_its_envelope() {
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    let resp = s
        .http
        .get(s.url("/console/sessions/sesn_x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("oma console"));
    // No key needed for the page; the API behind it still wants one.
    let api = s.http.get(s.url("/v1/agents")).send().await.unwrap();
    assert_eq!(api.status(), 401);
    let unknown = s.http.get(s.url("/v2/nothing")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["type"], "error");
    s.stop().await;
}
