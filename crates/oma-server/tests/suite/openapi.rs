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

/// Real sessions (a plain turn, a bash turn, a custom tool round trip, a model error) whose
/// every history event must validate against the document's `SessionEvent`: this fails as
/// soon as what the runtime writes and the typed events drift apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_events_validate_against_the_document() {
    use super::turns::{bash, new_session, providers, say, session_of, wait_idle};
    use oma_testkit::fake_anthropic::FakeAnthropic;
    use oma_testkit::fake_model::Reply;
    use serde_json::json;

    let mut root = oma_server::openapi::document();
    root["$ref"] = json!("#/components/schemas/SessionEvent");
    let validator = jsonschema::draft202012::new(&root).unwrap();
    let fake = FakeAnthropic::start().await;
    let s = TestServer::start_with(Backend::Sqlite, providers(&fake))
        .await
        .unwrap();
    let mut logs = Vec::new();

    let sid = new_session(
        &s,
        json!({"name": "plain", "config": {"type": "cloud"}}),
        json!({}),
    )
    .await;
    fake.push_all([Reply::text("hello")]);
    say(&s, &sid, "hi").await;
    wait_idle(&s, &sid, 1).await;
    fake.push_all([bash("echo hi"), Reply::text("done")]);
    say(&s, &sid, "run it").await;
    logs.push(wait_idle(&s, &sid, 2).await);

    // A custom tool: the session idles on it until the client answers.
    let custom = json!({"name": "custom", "model": "claude-opus-4-8", "tools": [{"type": "custom",
        "name": "lookup", "description": "looks up", "input_schema": {"type": "object"}}]});
    let sid = session_of(&s, custom, json!({"name": "custom"}), json!({})).await;
    fake.push_all([
        Reply::tool_use("lookup", json!({"q": "x"})),
        Reply::text("thanks"),
    ]);
    say(&s, &sid, "look it up").await;
    let log = wait_idle(&s, &sid, 1).await;
    let use_id = log
        .iter()
        .find(|e| e["type"] == "agent.custom_tool_use")
        .and_then(|e| e["id"].as_str())
        .unwrap()
        .to_string();
    let (status, v) = s
        .post(
            &format!("/v1/sessions/{sid}/events"),
            json!({"events": [{"type": "user.custom_tool_result", "custom_tool_use_id": use_id,
                "content": [{"type": "text", "text": "42"}]}]}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    logs.push(wait_idle(&s, &sid, 2).await);

    // A model error that is not retried: `session.error`, then idle.
    let sid = new_session(
        &s,
        json!({"name": "error", "config": {"type": "cloud"}}),
        json!({}),
    )
    .await;
    fake.push_all([Reply::error(400, "invalid_request_error")]);
    say(&s, &sid, "fail").await;
    let log = wait_idle(&s, &sid, 1).await;
    assert!(log.iter().any(|e| e["type"] == "session.error"), "{log:#?}");
    logs.push(log);

    let mut seen = BTreeSet::new();
    for event in logs.iter().flatten() {
        seen.insert(event["type"].as_str().unwrap_or_default().to_string());
        let errors: Vec<String> = validator
            .iter_errors(event)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{event:#}\ndoes not match the document: {errors:#?}"
        );
    }
    // The check has teeth: a drifted shape is rejected.
    let mut drifted = logs[0]
        .iter()
        .find(|e| e["type"] == "session.status_idle")
        .cloned()
        .unwrap();
    drifted["stop_reason"] = json!({"type": "end_turn_v2"});
    assert!(!validator.is_valid(&drifted));
    for kind in [
        "user.message",
        "session.status_running",
        "span.model_request_start",
        "span.model_request_end",
        "agent.message",
        "agent.tool_use",
        "agent.tool_result",
        "agent.custom_tool_use",
        "user.custom_tool_result",
        "session.error",
        "session.status_idle",
    ] {
        assert!(
            seen.contains(kind),
            "no {kind} event was validated: {seen:?}"
        );
    }
    s.stop().await;
}
