//! The OpenAPI document against the router: every operation it lists reaches a real handler,
//! and every route registered in `routes/*.rs` is in it.

use std::collections::BTreeSet;

use oma_server::openapi::catalog::OPS;
use oma_testkit::{Backend, TestServer};
use reqwest::Method;
use serde_json::Value;

/// `(METHOD, path)` of every operation in the served document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[tokio::test]
async fn document_is_served_without_a_key_and_reaches_every_handler() {
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    let resp = s.http.get(s.url("/v1/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let ops = operations(&doc);
    assert_eq!(ops.len(), OPS.len(), "one operation per catalogue entry");
    for (method, path) in &ops {
        let filled: String = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        // Streams answer 200 and stay open: the headers are enough.
        let resp = s.req(m, &filled).send().await.unwrap();
        let status = resp.status().as_u16();
        assert_ne!(status, 405, "{method} {path}: method not routed");
        if status == 404 {
            let body: Value = resp.json().await.unwrap();
            let msg = body["error"]["message"].as_str().unwrap_or_default();
            assert!(!msg.starts_with("no route for"), "{method} {path}: {msg}");
        }
    }
    s.stop().await;
}

/// The route strings of `routes/*.rs` with the methods chained on each.
fn registered_routes() -> BTreeSet<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes");
    let mut out = BTreeSet::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "rs"));
    for file in files {
        let src = std::fs::read_to_string(&file).unwrap();
        for (at, _) in src.match_indices(".route(") {
            let call = balanced(&src[at + ".route".len()..]);
            let path = call.split('"').nth(1).unwrap_or_else(|| {
                panic!(
                    "{}: a .route( without a literal path: {call}",
                    file.display()
                )
            });
            for method in ["get", "post", "delete", "put", "patch"] {
                let opened = format!("{method}(");
                let hit = call.match_indices(&opened).any(|(i, _)| {
                    i == 0
                        || !call.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && call.as_bytes()[i - 1] != b'_'
                });
                if hit {
                    out.insert((method.to_uppercase(), path.to_string()));
                }
            }
        }
    }
    out
}

/// The text of a parenthesised call starting at `(`, up to its matching `)`.
fn balanced(s: &str) -> &str {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &s[..=i];
                }
            }
            _ => {}
        }
    }
    s
}

#[test]
fn every_registered_route_is_documented() {
    let doc = oma_server::openapi::document();
    let documented = operations(&doc);
    let registered = registered_routes();
    assert!(
        registered.len() > 80,
        "parsed only {} routes",
        registered.len()
    );
    let missing: Vec<_> = registered.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the document: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&registered).collect();
    assert!(extra.is_empty(), "documented but not registered: {extra:?}");
}

#[test]
fn every_reference_resolves() {
    let doc = oma_server::openapi::document();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for r in refs {
        if let Some(name) = r.strip_prefix("#/components/schemas/") {
            assert!(schemas.contains_key(name), "dangling $ref {r}");
        } else {
            assert!(
                r.starts_with("#/components/parameters/"),
                "unexpected $ref {r}"
            );
        }
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.push(x.as_str().unwrap().to_string());
                } else {
                    collect_refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}
