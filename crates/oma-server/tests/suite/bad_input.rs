//! Malformed and random input never crashes the server, never answers 5xx, always answers the
//! error envelope with a request id, and changes nothing.

use oma_testkit::{TestServer, backends};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

use super::routes::{ROUTES, fixture, snapshot};

fn assert_envelope(what: &str, status: u16, headers: &reqwest::header::HeaderMap, body: &Value) {
    assert!(status < 500, "{what}: server error {status}: {body}");
    assert!(headers.contains_key("request-id"), "{what}: no request-id");
    if status >= 400 {
        assert_eq!(body["type"], "error", "{what}: not an envelope: {body}");
        assert!(body["error"]["type"].is_string(), "{what}: {body}");
        assert!(body["error"]["message"].is_string(), "{what}: {body}");
        assert!(
            body["request_id"]
                .as_str()
                .is_some_and(|r| r.starts_with("req_")),
            "{what}: {body}"
        );
    }
}

async fn send(
    s: &TestServer,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = s
        .http
        .request(m, format!("{}{path}", s.base))
        .header("x-api-key", &s.key);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Bodies that can never be valid for any route that takes a JSON object.
fn invalid_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // bytes that are not JSON
        proptest::collection::vec(any::<u8>(), 1..200)
            .prop_filter("not JSON", |b| serde_json::from_slice::<Value>(b).is_err()),
        // JSON that is not an object
        any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        "[a-z ]{0,20}".prop_map(|s| serde_json::to_vec(&Value::String(s)).unwrap()),
        Just(b"[]".to_vec()),
        Just(b"null".to_vec()),
        // truncated objects
        "\\{\"[a-z_]{1,12}\": ?".prop_map(String::into_bytes),
    ]
}

/// Ids that do not exist: random text, including characters that need percent-encoding.
fn random_id() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z]{2,8}_[A-Za-z0-9]{1,30}", "[ -~]{1,40}", "\\PC{1,20}",]
}

fn encode(id: &str) -> String {
    let mut out = String::new();
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out == "." || out == ".." {
        format!("{out}x")
    } else {
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_and_unknown_ids_are_clean_errors() {
    for b in backends() {
        let s = TestServer::start(b).await.unwrap();
        let f = fixture(&s).await;
        let before = snapshot(&s, &s.key, &f).await;

        let mut runner = TestRunner::new(Config {
            cases: 12,
            failure_persistence: None,
            ..Config::default()
        });
        for (method, template) in ROUTES {
            let multipart = matches!(
                *template,
                "/v1/files" | "/v1/skills" | "/v1/skills/{skill}/versions"
            );
            // Bodies: every POST that takes JSON gets bodies that cannot be valid.
            if *method == "POST"
                && !template.ends_with("/archive")
                && !template.ends_with("/redact")
            {
                let path = f.fill(template);
                let mut cases = Vec::new();
                for _ in 0..12 {
                    cases.push(invalid_body().new_tree(&mut runner).unwrap().current());
                }
                for body in cases {
                    let (status, headers, v) = send(&s, method, &path, Some(body.clone())).await;
                    let what = format!(
                        "{method} {template} body {:?}",
                        String::from_utf8_lossy(&body)
                    );
                    assert_envelope(&what, status, &headers, &v);
                    if !multipart {
                        assert!(
                            (400..500).contains(&status),
                            "{what}: expected 4xx, got {status}: {v}"
                        );
                    }
                }
            }
            // Ids: every placeholder replaced by random text.
            if template.contains('{') {
                for _ in 0..12 {
                    let id = random_id().new_tree(&mut runner).unwrap().current();
                    let mut path = template.to_string();
                    while let (Some(a), Some(z)) = (path.find('{'), path.find('}')) {
                        path.replace_range(a..=z, &encode(&id));
                    }
                    let body = (*method == "POST").then(|| b"{}".to_vec());
                    let (status, headers, v) = send(&s, method, &path, body).await;
                    let what = format!("{method} {path}");
                    assert_envelope(&what, status, &headers, &v);
                    assert!(
                        (400..500).contains(&status),
                        "{what}: expected 4xx, got {status}: {v}"
                    );
                }
            }
        }
        // Query strings of lists: nonsense values are 400s, not 500s.
        for q in [
            "limit=-1",
            "limit=abc",
            "limit=100000",
            "page=garbage",
            "order=sideways",
            "created_at[gte]=yesterday",
            "include_archived=maybe",
        ] {
            for (method, template) in ROUTES.iter().filter(|(m, _)| *m == "GET") {
                let path = format!("{}?{q}", f.fill(template));
                let (status, headers, v) = send(&s, method, &path, None).await;
                assert_envelope(&format!("GET {path}"), status, &headers, &v);
            }
        }
        let after = snapshot(&s, &s.key, &f).await;
        assert_eq!(before, after, "bad input changed stored data");
        s.stop().await;
    }
}

#[tokio::test]
async fn oversized_bodies_are_413_envelopes() {
    let s = TestServer::start(oma_testkit::Backend::Sqlite)
        .await
        .unwrap();
    let big = format!(
        "{{\"name\": \"{}\", \"model\": \"m\"}}",
        "x".repeat(9 * 1024 * 1024)
    );
    let (status, headers, v) = send(&s, "POST", "/v1/agents", Some(big.into_bytes())).await;
    assert_eq!(status, 413, "{v}");
    assert_envelope("oversized", status, &headers, &v);
    s.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_envelopes() {
    let s = TestServer::start(oma_testkit::Backend::Sqlite)
        .await
        .unwrap();
    let (status, headers, v) = send(&s, "GET", "/v1/nope", None).await;
    assert_eq!(status, 404);
    assert_envelope("unknown route", status, &headers, &v);
    let (status, headers, v) = send(&s, "PUT", "/v1/agents", Some(b"{}".to_vec())).await;
    assert_eq!(status, 405);
    assert_envelope("wrong method", status, &headers, &v);
    s.stop().await;
}
