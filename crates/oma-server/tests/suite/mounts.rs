//! Mounts through real agent turns: a skill's SKILL.md reaches the model's system prompt and
//! its files are in the box, a memory store written from the box shows a new memory version
//! through the API, a file resource is readable in the box and a file written to the outputs
//! folder is downloadable through the Files API.
//!
//! Runs on the `isolated` backend (the real paths: `/home/user/.skills/…`, `/mnt/memory/…`,
//! `/mnt/session/…`) when this host can make boxes, and always on the `local` backend, whose
//! tools are told the host folders instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oma_model::{AnthropicConfig, AnthropicProvider, ModelProvider};
use oma_runtime::Providers;
use oma_testkit::fake_anthropic::FakeAnthropic;
use oma_testkit::fake_model::Reply;
use oma_testkit::{Backend, TestServer, backends, send};
use serde_json::{Value, json};

enum Kind {
    Local,
    Isolated,
}

async fn start(b: Backend, providers: Providers, kind: &Kind) -> Option<TestServer> {
    match kind {
        Kind::Local => Some(TestServer::start_with(b, providers).await.unwrap()),
        Kind::Isolated => TestServer::start_isolated(b, providers, |_| {})
            .await
            .unwrap(),
    }
}

async fn post(s: &TestServer, path: &str, body: Value) -> Value {
    let (status, v) = s.post(path, body.clone()).await.unwrap();
    assert_eq!(status, 200, "POST {path} {body} -> {v}");
    v
}

async fn get(s: &TestServer, path: &str) -> Value {
    let (status, v) = s.get(path).await.unwrap();
    assert_eq!(status, 200, "GET {path} -> {v}");
    v
}

async fn upload(s: &TestServer, path: &str, form: reqwest::multipart::Form) -> Value {
    let (status, v) = send(s.req(reqwest::Method::POST, path).multipart(form))
        .await
        .unwrap();
    assert_eq!(status, 200, "POST {path} -> {v}");
    v
}

/// Where a mount's folder is as the box's tools see it: its fixed path in an isolated box,
/// the host folder under `local`.
fn shown(s: &TestServer, kind: &Kind, sid: &str, box_path: &str, host_rel: &str) -> String {
    match kind {
        Kind::Isolated => box_path.to_string(),
        Kind::Local => s
            .data_dir()
            .join("sessions")
            .join(sid)
            .join("mnt")
            .join(host_rel)
            .display()
            .to_string(),
    }
}

async fn wait_idle(s: &TestServer, sid: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let session = get(s, &format!("/v1/sessions/{sid}")).await;
        let page = get(s, &format!("/v1/sessions/{sid}/events?limit=1000")).await;
        let events = page["data"].as_array().cloned().unwrap_or_default();
        if session["status"] == "idle"
            && events
                .last()
                .is_some_and(|e| e["type"] == "session.status_idle")
        {
            return events;
        }
        assert!(Instant::now() < deadline, "session never went idle: {page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn system_has_read_only(system: &str) -> bool {
    system.contains("`Policies` at") && system.contains("(read-only)")
}

fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}

#[tokio::test]
async fn skills_memory_uploads_and_outputs_work_through_agent_turns() {
    for b in backends() {
        for kind in [Kind::Isolated, Kind::Local] {
            run(b, kind).await;
        }
    }
}

async fn run(b: Backend, kind: Kind) {
    let fake = FakeAnthropic::start().await;
    let provider: Arc<dyn ModelProvider> = Arc::new(
        AnthropicProvider::new(AnthropicConfig::new(fake.base_url.clone(), "fake-key")).unwrap(),
    );
    let Some(h) = start(b, Providers::new(Some(provider)), &kind).await else {
        return;
    };

    let skill_form = reqwest::multipart::Form::new()
        .part(
            "files[]",
            reqwest::multipart::Part::bytes(
                b"---\nname: greeter\ndescription: greets people\n---\nGREETER-INSTRUCTIONS: run scripts/hello.sh.\n"
                    .to_vec(),
            )
            .file_name("greeter/SKILL.md"),
        )
        .part(
            "files[]",
            reqwest::multipart::Part::bytes(b"echo SKILL-SCRIPT-RAN\n".to_vec())
                .file_name("greeter/scripts/hello.sh"),
        );
    let skill = upload(&h, "/v1/skills", skill_form).await;
    let file_form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"a,b\n1,2\n".to_vec())
            .file_name("data.csv")
            .mime_str("text/csv")
            .unwrap(),
    );
    let file = upload(&h, "/v1/files", file_form).await;
    let store = post(
        &h,
        "/v1/memory_stores",
        json!({"name": "Team Notes", "description": "What the team decided"}),
    )
    .await;
    let store_id = id(&store);
    post(
        &h,
        &format!("/v1/memory_stores/{store_id}/memories"),
        json!({"path": "/seed.md", "content": "seeded"}),
    )
    .await;
    let policies = post(&h, "/v1/memory_stores", json!({"name": "Policies"})).await;
    let policies_id = id(&policies);
    post(
        &h,
        &format!("/v1/memory_stores/{policies_id}/memories"),
        json!({"path": "/rule.md", "content": "be kind"}),
    )
    .await;
    let agent = post(
        &h,
        "/v1/agents",
        json!({
            "name": "m", "model": "claude-opus-4-8",
            "tools": [{"type": "agent_toolset_20260401"}],
            "skills": [{"type": "custom", "skill_id": id(&skill)}],
        }),
    )
    .await;
    let env = post(
        &h,
        "/v1/environments",
        json!({"name": "m", "config": {"type": "cloud"}}),
    )
    .await;
    let session = post(&h,
            "/v1/sessions",
            json!({
                "agent": id(&agent), "environment_id": id(&env),
                "resources": [
                    {"type": "memory_store", "memory_store_id": store_id, "instructions": "Keep it short."},
                    {"type": "memory_store", "memory_store_id": policies_id, "access": "read_only"},
                    {"type": "file", "file_id": id(&file), "mount_path": "/data.csv"},
                ],
            }),
        )
        .await;
    let sid = id(&session);
    assert_eq!(
        session["resources"][0]["mount_path"],
        "/mnt/memory/team-notes"
    );

    let skills = shown(
        &h,
        &kind,
        &sid,
        "/home/user/.skills/greeter",
        "skills/greeter",
    );
    let memory = shown(
        &h,
        &kind,
        &sid,
        "/mnt/memory/team-notes",
        "memory/team-notes",
    );
    let uploads = shown(&h, &kind, &sid, "/mnt/session/uploads", "uploads");
    let outputs = shown(&h, &kind, &sid, "/mnt/session/outputs", "outputs");
    let command = format!(
        "sh {skills}/scripts/hello.sh && cat {memory}/seed.md && \
         printf 'written in the box' > {memory}/box.md && \
         cp {uploads}/data.csv {outputs}/copy.csv && echo DONE"
    );
    let policies_dir = shown(&h, &kind, &sid, "/mnt/memory/policies", "memory/policies");
    let tamper =
        format!("cat {policies_dir}/rule.md; printf hacked > {policies_dir}/rule.md; echo EXIT=$?");
    fake.push(Reply::tool_use("bash", json!({"command": command})));
    fake.push(Reply::tool_use("bash", json!({"command": tamper})));
    fake.push(Reply::text("all done"));
    post(
        &h,
        &format!("/v1/sessions/{sid}/events"),
        json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}]}),
    )
    .await;
    let events = wait_idle(&h, &sid).await;
    let result = events
        .iter()
        .find(|e| e["type"] == "agent.tool_result")
        .unwrap_or_else(|| panic!("no tool result: {events:?}"));
    let out = result["content"].to_string();
    assert_eq!(result["is_error"], false, "{out}");
    assert!(out.contains("SKILL-SCRIPT-RAN"), "{out}");
    assert!(out.contains("seeded"), "{out}");
    assert!(out.contains("DONE"), "{out}");

    // A read-only store: the box cannot write it (the local backend can, on disk only: the
    // store is never written and the file is put back).
    let tampered = events
        .iter()
        .filter(|e| e["type"] == "agent.tool_result")
        .nth(1)
        .unwrap_or_else(|| panic!("no second tool result: {events:?}"))["content"]
        .to_string();
    assert!(tampered.contains("be kind"), "{tampered}");
    if matches!(kind, Kind::Isolated) {
        assert!(tampered.contains("Read-only file system"), "{tampered}");
    }
    let rule = get(
        &h,
        &format!("/v1/memory_stores/{policies_id}/memories?view=full"),
    )
    .await;
    assert_eq!(rule["data"][0]["content"], "be kind", "{rule}");
    let versions = get(
        &h,
        &format!("/v1/memory_stores/{policies_id}/memory_versions"),
    )
    .await;
    assert_eq!(versions["data"].as_array().unwrap().len(), 1, "{versions}");
    assert!(system_has_read_only(
        &fake.requests()[0]["system"].to_string()
    ));

    // The system prompt carries SKILL.md and the memory store's note.
    let system = fake.requests()[0]["system"].to_string();
    assert!(system.contains("GREETER-INSTRUCTIONS"), "{system}");
    assert!(system.contains(&skills), "{system}");
    assert!(system.contains(&memory), "{system}");
    assert!(system.contains("What the team decided"), "{system}");
    assert!(system.contains("Keep it short."), "{system}");

    // The memory written in the box is a new version attributed to the session.
    let versions = get(&h, &format!("/v1/memory_stores/{store_id}/memory_versions")).await;
    let created = versions["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["path"] == "/box.md")
        .unwrap_or_else(|| panic!("no version for /box.md: {versions}"));
    assert_eq!(created["operation"], "created");
    assert_eq!(created["created_by"]["type"], "session_actor");
    assert_eq!(created["created_by"]["session_id"], sid);
    let memories = get(
        &h,
        &format!("/v1/memory_stores/{store_id}/memories?view=full"),
    )
    .await;
    assert!(
        memories["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["path"] == "/box.md" && m["content"] == "written in the box"),
        "{memories}"
    );

    // The output is a session-scoped file with the uploaded bytes.
    let files = get(&h, &format!("/v1/files?scope_id={sid}")).await;
    let data = files["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{files}");
    assert_eq!(data[0]["filename"], "copy.csv");
    assert_eq!(data[0]["scope"]["id"], sid);
    let resp = h
        .req(
            reqwest::Method::GET,
            &format!("/v1/files/{}/content", id(&data[0])),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"a,b\n1,2\n");

    // Deleting the session removes its folders (copies of skills, memories and files).
    let folder = h.data_dir().join("sessions").join(&sid);
    assert!(folder.exists());
    let (status, v) = send(h.req(reqwest::Method::DELETE, &format!("/v1/sessions/{sid}")))
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while folder.exists() {
        assert!(
            Instant::now() < deadline,
            "{} was not removed",
            folder.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.stop().await;
}
