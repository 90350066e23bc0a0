//! Every route of the public API with a way to make its path parameters real, so suites can
//! sweep all of them.

use oma_testkit::TestServer;
use serde_json::{Value, json};

/// `(method, path template)`. Placeholders: `{agent}`, `{env}`, `{session}`, `{resource}`,
/// `{thread}`, `{vault}`, `{credential}`, `{store}`, `{memory}`, `{memver}`, `{skill}`,
/// `{skillver}`, `{file}`, `{route}`.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/agents"),
    ("GET", "/v1/agents"),
    ("GET", "/v1/agents/{agent}"),
    ("POST", "/v1/agents/{agent}"),
    ("POST", "/v1/agents/{agent}/archive"),
    ("GET", "/v1/agents/{agent}/versions"),
    ("POST", "/v1/environments"),
    ("GET", "/v1/environments"),
    ("GET", "/v1/environments/{env}"),
    ("POST", "/v1/environments/{env}"),
    ("POST", "/v1/environments/{env}/archive"),
    ("DELETE", "/v1/environments/{env}"),
    ("POST", "/v1/sessions"),
    ("GET", "/v1/sessions"),
    ("GET", "/v1/sessions/{session}"),
    ("POST", "/v1/sessions/{session}"),
    ("POST", "/v1/sessions/{session}/archive"),
    ("DELETE", "/v1/sessions/{session}"),
    ("GET", "/v1/sessions/{session}/events"),
    ("POST", "/v1/sessions/{session}/events"),
    ("GET", "/v1/sessions/{session}/resources"),
    ("POST", "/v1/sessions/{session}/resources"),
    ("GET", "/v1/sessions/{session}/resources/{resource}"),
    ("POST", "/v1/sessions/{session}/resources/{resource}"),
    ("DELETE", "/v1/sessions/{session}/resources/{resource}"),
    ("GET", "/v1/sessions/{session}/threads"),
    ("GET", "/v1/sessions/{session}/threads/{thread}"),
    ("POST", "/v1/sessions/{session}/threads/{thread}/archive"),
    ("GET", "/v1/sessions/{session}/threads/{thread}/events"),
    ("POST", "/v1/vaults"),
    ("GET", "/v1/vaults"),
    ("GET", "/v1/vaults/{vault}"),
    ("POST", "/v1/vaults/{vault}"),
    ("POST", "/v1/vaults/{vault}/archive"),
    ("DELETE", "/v1/vaults/{vault}"),
    ("POST", "/v1/vaults/{vault}/credentials"),
    ("GET", "/v1/vaults/{vault}/credentials"),
    ("GET", "/v1/vaults/{vault}/credentials/{credential}"),
    ("POST", "/v1/vaults/{vault}/credentials/{credential}"),
    (
        "POST",
        "/v1/vaults/{vault}/credentials/{credential}/archive",
    ),
    ("DELETE", "/v1/vaults/{vault}/credentials/{credential}"),
    ("POST", "/v1/memory_stores"),
    ("GET", "/v1/memory_stores"),
    ("GET", "/v1/memory_stores/{store}"),
    ("POST", "/v1/memory_stores/{store}"),
    ("POST", "/v1/memory_stores/{store}/archive"),
    ("DELETE", "/v1/memory_stores/{store}"),
    ("POST", "/v1/memory_stores/{store}/memories"),
    ("GET", "/v1/memory_stores/{store}/memories"),
    ("GET", "/v1/memory_stores/{store}/memories/{memory}"),
    ("POST", "/v1/memory_stores/{store}/memories/{memory}"),
    ("DELETE", "/v1/memory_stores/{store}/memories/{memory}"),
    ("GET", "/v1/memory_stores/{store}/memory_versions"),
    ("GET", "/v1/memory_stores/{store}/memory_versions/{memver}"),
    (
        "POST",
        "/v1/memory_stores/{store}/memory_versions/{memver}/redact",
    ),
    ("POST", "/v1/skills"),
    ("GET", "/v1/skills"),
    ("GET", "/v1/skills/{skill}"),
    ("DELETE", "/v1/skills/{skill}"),
    ("POST", "/v1/skills/{skill}/versions"),
    ("GET", "/v1/skills/{skill}/versions"),
    ("GET", "/v1/skills/{skill}/versions/{skillver}"),
    ("DELETE", "/v1/skills/{skill}/versions/{skillver}"),
    ("GET", "/v1/skills/{skill}/versions/{skillver}/content"),
    ("POST", "/v1/files"),
    ("GET", "/v1/files"),
    ("GET", "/v1/files/{file}"),
    ("GET", "/v1/files/{file}/content"),
    ("DELETE", "/v1/files/{file}"),
    ("POST", "/v1/oma/model_routes"),
    ("GET", "/v1/oma/model_routes"),
    ("GET", "/v1/oma/model_routes/{route}"),
    ("POST", "/v1/oma/model_routes/{route}"),
    ("DELETE", "/v1/oma/model_routes/{route}"),
];

/// Real ids of one object of every kind, owned by the server's tenant.
#[derive(Debug, Clone, Default)]
pub struct Fixture {
    pub ids: Vec<(&'static str, String)>,
}

impl Fixture {
    /// The template with its placeholders filled.
    pub fn fill(&self, template: &str) -> String {
        let mut out = template.to_string();
        for (k, v) in &self.ids {
            out = out.replace(&format!("{{{k}}}"), v);
        }
        out
    }
}

async fn created(s: &TestServer, path: &str, body: Value) -> Value {
    let (status, v) = s.post(path, body.clone()).await.unwrap();
    assert_eq!(status, 200, "POST {path} {body} -> {v}");
    v
}

async fn multipart(s: &TestServer, path: &str, form: reqwest::multipart::Form) -> Value {
    let (status, v) = oma_testkit::send(s.req(reqwest::Method::POST, path).multipart(form))
        .await
        .unwrap();
    assert_eq!(status, 200, "POST {path} -> {v}");
    v
}

fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}

/// Creates one object of every kind for the server's tenant.
pub async fn fixture(s: &TestServer) -> Fixture {
    let mut f = Fixture::default();
    let agent = created(
        s,
        "/v1/agents",
        json!({"name": "fx", "model": "claude-opus-4-8"}),
    )
    .await;
    f.ids.push(("agent", id(&agent)));
    let env = created(
        s,
        "/v1/environments",
        json!({"name": "fx", "config": {"type": "cloud"}}),
    )
    .await;
    f.ids.push(("env", id(&env)));

    let file_form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"hello".to_vec())
            .file_name("hello.txt")
            .mime_str("text/plain")
            .unwrap(),
    );
    let file = multipart(s, "/v1/files", file_form).await;
    f.ids.push(("file", id(&file)));

    let vault = created(s, "/v1/vaults", json!({"display_name": "fx"})).await;
    f.ids.push(("vault", id(&vault)));
    let cred = created(
        s,
        &format!("/v1/vaults/{}/credentials", id(&vault)),
        json!({"auth": {"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/mcp", "token": "fixture-secret-token"}}),
    )
    .await;
    f.ids.push(("credential", id(&cred)));

    let store = created(s, "/v1/memory_stores", json!({"name": "fx"})).await;
    f.ids.push(("store", id(&store)));
    let memory = created(
        s,
        &format!("/v1/memory_stores/{}/memories", id(&store)),
        json!({"path": "/notes/a.md", "content": "remember"}),
    )
    .await;
    f.ids.push(("memory", id(&memory)));
    let (_, versions) = s
        .get(&format!("/v1/memory_stores/{}/memory_versions", id(&store)))
        .await
        .unwrap();
    let memver = versions["data"][0]["id"]
        .as_str()
        .unwrap_or("memver_missing")
        .to_string();
    f.ids.push(("memver", memver));

    let skill_form = reqwest::multipart::Form::new().part(
        "files[]",
        reqwest::multipart::Part::bytes(
            b"---\nname: fx-skill\ndescription: a fixture\n---\nDo things.\n".to_vec(),
        )
        .file_name("fx-skill/SKILL.md"),
    );
    let skill = multipart(s, "/v1/skills", skill_form).await;
    f.ids.push(("skill", id(&skill)));
    let skillver = skill["latest_version_id"]
        .as_str()
        .unwrap_or("latest")
        .to_string();
    f.ids.push(("skillver", skillver));

    let route = created(
        s,
        "/v1/oma/model_routes",
        json!({"model": "fx-model", "provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "fx-route-key"}),
    )
    .await;
    f.ids.push(("route", id(&route)));

    let session = created(
        s,
        "/v1/sessions",
        json!({
            "agent": id(&agent),
            "environment_id": id(&env),
            "resources": [{"type": "file", "file_id": id(&file)}],
        }),
    )
    .await;
    f.ids.push(("session", id(&session)));
    let resource = session["resources"][0]["id"]
        .as_str()
        .unwrap_or("res_missing")
        .to_string();
    f.ids.push(("resource", resource));
    let (_, threads) = s
        .get(&format!("/v1/sessions/{}/threads", id(&session)))
        .await
        .unwrap();
    let thread = threads["data"][0]["id"]
        .as_str()
        .unwrap_or("sthr_missing")
        .to_string();
    f.ids.push(("thread", thread));
    f
}

/// Everything the tenant can read through list endpoints: equal snapshots mean nothing changed.
pub async fn snapshot(s: &TestServer, key: &str, f: &Fixture) -> Vec<(String, Value)> {
    let lists = [
        "/v1/agents?include_archived=true&limit=100",
        "/v1/agents/{agent}/versions",
        "/v1/environments?include_archived=true&limit=100",
        "/v1/sessions?include_archived=true&limit=100",
        "/v1/sessions/{session}/events?limit=1000",
        "/v1/sessions/{session}/resources",
        "/v1/sessions/{session}/threads",
        "/v1/vaults?include_archived=true&limit=100",
        "/v1/vaults/{vault}/credentials?include_archived=true&limit=100",
        "/v1/memory_stores?include_archived=true&limit=100",
        "/v1/memory_stores/{store}/memories?limit=100",
        "/v1/memory_stores/{store}/memory_versions?limit=100",
        "/v1/skills?limit=100",
        "/v1/skills/{skill}/versions?limit=100",
        "/v1/files?limit=100",
        "/v1/oma/model_routes?limit=100",
    ];
    let mut out = Vec::new();
    for l in lists {
        let path = f.fill(l);
        let (status, mut v) = oma_testkit::send(s.req_as(key, reqwest::Method::GET, &path))
            .await
            .unwrap();
        strip_clock_fields(&mut v);
        out.push((path, json!({"status": status, "body": v})));
    }
    out
}

/// Removes fields computed from the clock at read time (a session's running durations), which
/// change between two reads without anything being written.
fn strip_clock_fields(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("duration_seconds");
            map.remove("active_seconds");
            map.values_mut().for_each(strip_clock_fields);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_clock_fields),
        _ => {}
    }
}
