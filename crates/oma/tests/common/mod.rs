//! Shared by the integration tests that run the real `oma serve` binary and talk HTTP to it.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// A running `oma serve`; killed (SIGKILL) on drop.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `oma serve` on a free port over `data` with bootstrap key `key`, the model at
/// `model_url` (a fake), and returns once it announced its address.
pub fn serve(data: &Path, key: &str, model_url: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oma"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("OMA_API_KEY", key)
        .env("ANTHROPIC_BASE_URL", model_url)
        .env("ANTHROPIC_API_KEY", "fake")
        .env("OMA_MODEL_RETRY_BASE_MS", "10")
        // Workspace disks are loop mounts that outlive a killed server by design; tests that
        // kill servers would leave them behind (the sandbox crate's tests cover them).
        .env("OMA_SANDBOX_DISK_QUOTA", "off")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .env_remove("OMA_DATABASE_URL")
        .env_remove("OMA_ROOT_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
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
    Server { child, base }
}

/// One request with `key`; asserts a 200 and returns the JSON body.
pub fn http(base: &str, key: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nx-api-key: {key}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "{method} {path}: {}",
        &raw[..raw.len().min(2000)]
    );
    serde_json::from_str(body).unwrap()
}

/// A new session of an agent with `tools`, in a fresh cloud environment.
pub fn session(base: &str, key: &str, tools: Value) -> String {
    let agent = http(
        base,
        key,
        "POST",
        "/v1/agents",
        Some(json!({"name": "t", "model": "claude-opus-4-8", "tools": tools})),
    );
    let env = http(
        base,
        key,
        "POST",
        "/v1/environments",
        Some(json!({"name": "t", "config": {"type": "cloud"}})),
    );
    let s = http(
        base,
        key,
        "POST",
        "/v1/sessions",
        Some(json!({"agent": agent["id"], "environment_id": env["id"]})),
    );
    s["id"].as_str().unwrap().to_string()
}

/// Sends one `user.message`.
pub fn say(base: &str, key: &str, sid: &str, text: &str) {
    http(
        base,
        key,
        "POST",
        &format!("/v1/sessions/{sid}/events"),
        Some(
            json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": text}]}]}),
        ),
    );
}
