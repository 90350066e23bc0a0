//! Sealed secrets: credential tokens and GitHub tokens sent to a real `oma serve` never come
//! back in a response, never reach its logs (even at debug level), and never appear in the
//! bytes of anything in its data directory (SQLite database, WAL, blobs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const KEY: &str = "sk-secrets-test-bootstrap";

fn http(base: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn secrets_never_leave_the_seal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oma"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("OMA_API_KEY", KEY)
        .env("OMA_SANDBOX_DISK_QUOTA", "off")
        .env("OMA_LOG", "debug")
        .env_remove("OMA_DATABASE_URL")
        .env_remove("OMA_ROOT_SECRET")
        .stdout(Stdio::piped())
        .stderr(log.try_clone().unwrap())
        .spawn()
        .unwrap();
    // Copy stdout (the JSON logs) to the log file while finding the announced address.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut log_copy = log;
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = writeln!(log_copy, "{line}");
            if let Some(i) = line.find("listening on http://") {
                let url: String = line[i + 13..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '"')
                    .collect();
                let _ = tx.send(url);
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(30)).unwrap();

    let secrets = [
        "sk-STATIC-bearer-0123456789",
        "ACCESS-token-oauth-9876543210",
        "REFRESH-token-oauth-5555555555",
        "CLIENT-secret-oauth-4444444444",
        "ENV-secret-value-3333333333",
        "ghp_GITHUB-token-2222222222",
        "ghp_ROTATED-token-1111111111",
        "sk-ROUTE-provider-key-0000000",
    ];
    let mut responses = Vec::new();
    let mut call = |method: &str, path: &str, body: Option<Value>| -> Value {
        let (status, text) = http(&base, method, path, body.as_ref());
        assert!(status < 300, "{method} {path}: {status} {text}");
        responses.push(text.clone());
        serde_json::from_str(&text).unwrap()
    };

    let vault = call(
        "POST",
        "/v1/vaults",
        Some(json!({"display_name": "secrets"})),
    );
    let vid = vault["id"].as_str().unwrap().to_string();
    let creds = [
        json!({"auth": {"type": "static_bearer", "mcp_server_url": "https://a.example.com/mcp", "token": secrets[0]}}),
        json!({"auth": {
            "type": "mcp_oauth", "mcp_server_url": "https://b.example.com/mcp", "access_token": secrets[1],
            "expires_at": "2099-01-01T00:00:00Z",
            "refresh": {"client_id": "c", "refresh_token": secrets[2], "token_endpoint": "https://auth.example.com/token",
                        "token_endpoint_auth": {"type": "client_secret_post", "client_secret": secrets[3]}}}}),
        json!({"auth": {"type": "environment_variable", "secret_name": "API_TOKEN", "secret_value": secrets[4],
                        "networking": {"type": "limited", "allowed_hosts": ["api.example.com"]}}}),
    ];
    for c in creds {
        let made = call("POST", &format!("/v1/vaults/{vid}/credentials"), Some(c));
        let cid = made["id"].as_str().unwrap().to_string();
        call("GET", &format!("/v1/vaults/{vid}/credentials/{cid}"), None);
    }
    call("GET", &format!("/v1/vaults/{vid}/credentials"), None);

    let agent = call(
        "POST",
        "/v1/agents",
        Some(json!({"name": "s", "model": "claude-opus-4-8"})),
    );
    let env = call(
        "POST",
        "/v1/environments",
        Some(json!({"name": "s", "config": {"type": "cloud"}})),
    );
    let session = call(
        "POST",
        "/v1/sessions",
        Some(json!({
            "agent": agent["id"], "environment_id": env["id"], "vault_ids": [vid],
            "resources": [{"type": "github_repository", "url": "https://github.com/acme/app", "authorization_token": secrets[5]}],
        })),
    );
    let sid = session["id"].as_str().unwrap().to_string();
    let rid = session["resources"][0]["id"].as_str().unwrap().to_string();
    call(
        "POST",
        &format!("/v1/sessions/{sid}/resources/{rid}"),
        Some(json!({"authorization_token": secrets[6]})),
    );
    call("GET", &format!("/v1/sessions/{sid}"), None);
    let route = call(
        "POST",
        "/v1/oma/model_routes",
        Some(
            json!({"model": "routed", "provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": secrets[7]}),
        ),
    );
    call(
        "GET",
        &format!("/v1/oma/model_routes/{}", route["id"].as_str().unwrap()),
        None,
    );
    call("GET", "/v1/oma/model_routes", None);
    call("GET", &format!("/v1/sessions/{sid}/resources"), None);

    let _ = child.kill();
    let _ = child.wait();

    for r in &responses {
        for s in secrets {
            assert!(!r.contains(s), "a response carried a secret: {r}");
        }
    }
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.contains("listening on"), "the log was captured");
    for s in secrets {
        assert!(!logs.contains(s), "the server log carried a secret");
    }
    let mut files = Vec::new();
    files_under(&data, &mut files);
    assert!(files.iter().any(|f| f.ends_with("oma.db")));
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for s in secrets {
            let found = bytes.windows(s.len()).any(|w| w == s.as_bytes());
            assert!(!found, "{} holds a secret in the clear", f.display());
        }
    }
}
