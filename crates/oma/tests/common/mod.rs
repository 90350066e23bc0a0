//! Shared by the integration tests that run the real `oma serve` binary and talk HTTP to it.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// Runs `oma ARGS --data-dir DATA` with `envs` set and none of the caller's own oma or model
/// provider settings leaking in.
pub fn cli(args: &[&str], data: &Path, envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oma"));
    cmd.args(args).arg("--data-dir").arg(data);
    for var in [
        "OMA_DATABASE_URL",
        "OMA_DATA_DIR",
        "OMA_ROOT_SECRET",
        "OMA_CONFIG",
        "OMA_ENV",
        "OMA_LISTEN",
        "OMA_PUBLIC_BASE_URL",
        "OMA_INTEGRATION_SECRET",
        "OMA_INTEGRATION_TOKEN",
        "OMA_INTEGRATION_CLIENT_ID",
        "OMA_INTEGRATION_CLIENT_SECRET",
        "OMA_OPENAI_MODELS",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// A command's stdout and stderr, for assertions and failure messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A running `oma serve`; killed (SIGKILL) on drop.
pub struct Server {
    child: Child,
    pub base: String,
    /// The metrics listener's base URL, when it was asked for (`--metrics-listen`).
    pub metrics: Option<String>,
}

impl Server {
    /// The server's process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`, …) to the server.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal} failed");
    }

    /// Stops the server with `SIGSTOP` and returns once every thread of it is stopped: the
    /// signal is delivered asynchronously, and a thread still on a CPU runs on for a moment.
    pub fn pause(&self) {
        self.signal("STOP");
        let tasks = format!("/proc/{}/task", self.pid());
        let stopped = || {
            std::fs::read_dir(&tasks).unwrap().all(|t| {
                let stat =
                    std::fs::read_to_string(t.unwrap().path().join("stat")).unwrap_or_default();
                // The state follows the parenthesised command name.
                stat.rsplit_once(") ")
                    .is_none_or(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !stopped() {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not stop"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits for the server to exit (after a `TERM`), failing after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
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
    serve_with(data, key, model_url, &[], &[])
}

/// Like [`serve`], with more arguments and environment variables.
pub fn serve_with(
    data: &Path,
    key: &str,
    model_url: &str,
    args: &[&str],
    envs: &[(&str, String)],
) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oma"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(args)
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
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // `OMA_TEST_LOG_DIR` keeps every server's log (one file per process) for a post-mortem.
    let mut log = std::env::var_os("OMA_TEST_LOG_DIR").and_then(|dir| {
        std::fs::File::create(Path::new(&dir).join(format!("oma-{}.log", child.id()))).ok()
    });
    std::thread::spawn(move || {
        let url_after = |line: &str, i: usize| -> String {
            line[i..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '"')
                .collect()
        };
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(f) = log.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            // The metrics listener (if any) announces itself before the API does.
            if let Some(i) = line.find("metrics on http://") {
                let _ = tx.send((true, url_after(&line, i + 11).replace("/metrics", "")));
            }
            if let Some(i) = line.find("listening on http://") {
                let _ = tx.send((false, url_after(&line, i + 13)));
            }
        }
    });
    // Killed on drop, should it never announce itself.
    let mut server = Server {
        child,
        base: String::new(),
        metrics: None,
    };
    loop {
        let (is_metrics, url) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        if !is_metrics {
            server.base = url;
            return server;
        }
        server.metrics = Some(url);
    }
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

/// The session's events (up to 1000), oldest first.
pub fn events(base: &str, key: &str, sid: &str) -> Vec<Value> {
    http(
        base,
        key,
        "GET",
        &format!("/v1/sessions/{sid}/events?limit=1000"),
        None,
    )["data"]
        .as_array()
        .unwrap()
        .clone()
}

/// The session's status.
pub fn status(base: &str, key: &str, sid: &str) -> String {
    http(base, key, "GET", &format!("/v1/sessions/{sid}"), None)["status"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The events' types, in order.
pub fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

/// Every event once: ids are unique (a duplicate would mean an event was appended twice).
pub fn assert_no_duplicates(events: &[Value]) {
    let mut ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate events in {:?}", kinds(events));
}

/// The log of a turn whose model stream was cut by a crash after `partial_of` began, and which
/// the next host finished with `then`: one turn, the partial message kept, the cut request
/// closed as an error, then the answer and `end_turn`.
pub fn assert_stream_cut_then_finished(log: &[Value], partial_of: &str, then: &str) {
    assert_no_duplicates(log);
    let k = kinds(log);
    assert_eq!(k.first().map(String::as_str), Some("user.message"));
    assert_eq!(
        k.last().map(String::as_str),
        Some("session.status_idle"),
        "{k:?}"
    );
    assert_eq!(log.last().unwrap()["stop_reason"]["type"], "end_turn");
    let messages: Vec<&Value> = log
        .iter()
        .filter(|e| e["type"] == "agent.message")
        .collect();
    assert_eq!(messages.len(), 2, "{k:?}");
    let partial = messages[0]["content"][0]["text"].as_str().unwrap();
    assert!(
        !partial.is_empty() && partial_of.starts_with(partial),
        "{partial}"
    );
    assert_eq!(messages[1]["content"][0]["text"], then);
    let ends: Vec<&Value> = log
        .iter()
        .filter(|e| e["type"] == "span.model_request_end")
        .collect();
    assert_eq!(ends.len(), 2);
    assert_eq!(
        ends[0]["is_error"], true,
        "the cut-off request is closed as an error"
    );
    assert_eq!(
        k.iter().filter(|t| *t == "session.status_running").count(),
        1
    );
}

/// The log of a turn whose tool call was cut by a crash, finished by the next host: the call
/// answered once, as interrupted, and the turn ended at `end_turn` with an answer.
pub fn assert_tool_cut_then_finished(log: &[Value]) {
    assert_no_duplicates(log);
    let k = kinds(log);
    let use_pos = k.iter().position(|t| t == "agent.tool_use").unwrap();
    let results: Vec<&Value> = log
        .iter()
        .filter(|e| e["type"] == "agent.tool_result")
        .collect();
    assert_eq!(results.len(), 1, "{k:?}");
    let result = results[0];
    assert_eq!(result["tool_use_id"], log[use_pos]["id"]);
    assert_eq!(result["is_error"], true);
    assert!(
        result["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("interrupted"),
        "{result}"
    );
    assert_eq!(log.last().unwrap()["stop_reason"]["type"], "end_turn");
    assert!(k.iter().any(|t| t == "agent.message"));
}
