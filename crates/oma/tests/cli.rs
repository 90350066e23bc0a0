//! The `oma` binary as an operator uses it: tenants, keys, migrations and `serve`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn oma(args: &[&str], data_dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_oma"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("OMA_DATABASE_URL")
        .env_remove("OMA_ROOT_SECRET")
        .output()
        .expect("run oma")
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A running `oma serve`; killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data_dir: &Path, api_key: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oma"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("OMA_API_KEY", api_key)
        .env("OMA_SANDBOX_DISK_QUOTA", "off")
        .env_remove("OMA_DATABASE_URL")
        .env_remove("OMA_ROOT_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn oma serve");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(i) = line.find("listening on http://") {
                let rest = &line[i + "listening on ".len()..];
                let url: String = rest
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '"')
                    .collect();
                let _ = tx.send(url);
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server announced its address");
    Server { child, base }
}

fn status_of(base: &str, path: &str, key: &str) -> u16 {
    // A tiny blocking HTTP/1.1 client keeps this test free of async plumbing.
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nx-api-key: {key}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    buf.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn tenants_and_keys_work_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = serve(d, "bootstrap-key");
    assert_eq!(status_of(&server.base, "/v1/agents", "bootstrap-key"), 200);
    assert_eq!(status_of(&server.base, "/health", ""), 200);

    let out = oma(&["tenants", "create", "acme"], d);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("created tenant acme"));
    let again = oma(&["tenants", "create", "acme"], d);
    assert!(again.status.success());
    assert!(
        stdout(&again).contains("already exists"),
        "{}",
        stdout(&again)
    );

    let out = oma(&["keys", "create", "--tenant", "acme", "--name", "ci"], d);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let key = text.lines().last().unwrap().trim().to_string();
    assert!(key.starts_with("sk-oma-"), "{text}");
    assert_eq!(status_of(&server.base, "/v1/agents", &key), 200);

    let list = stdout(&oma(&["keys", "list", "--tenant", "acme"], d));
    assert!(!list.contains(&key), "keys list must never print keys");
    let key_id = list.split_whitespace().next().unwrap().to_string();
    assert!(key_id.starts_with("apikey_"));
    assert!(oma(&["keys", "revoke", &key_id], d).status.success());

    // Revocation reaches the running server within its short auth cache lifetime.
    let deadline = Instant::now() + Duration::from_secs(15);
    while status_of(&server.base, "/v1/agents", &key) != 401 {
        assert!(Instant::now() < deadline, "revoked key still accepted");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !oma(&["keys", "create", "--tenant", "nobody"], d)
            .status
            .success()
    );
}

#[test]
fn root_key_is_generated_private() {
    let dir = tempfile::tempdir().unwrap();
    let _server = serve(dir.path(), "k");
    let meta = std::fs::metadata(dir.path().join("root.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[test]
fn migrate_status_and_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let status = stdout(&oma(&["migrate", "status"], d));
    assert!(status.contains("pending"), "{status}");
    assert!(status.contains("schema is behind"), "{status}");
    let up = oma(&["migrate", "up"], d);
    assert!(up.status.success(), "{up:?}");
    let status = stdout(&oma(&["migrate", "status"], d));
    assert!(!status.contains("pending "), "{status}");
    assert!(status.contains("schema is up to date"), "{status}");
    let up_again = stdout(&oma(&["migrate", "up"], d));
    assert!(up_again.contains("0 migration(s) applied"), "{up_again}");
}

#[test]
fn a_schema_newer_than_the_binary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(oma(&["migrate", "up"], d).status.success());
    let url = format!("sqlite://{}", d.join("oma.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = oma_store::Store::connect(&url).await.unwrap();
        sqlx_insert_future_migration(&store).await;
        store.close().await;
    });
    let out = Command::new(env!("CARGO_BIN_EXE_oma"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(d)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("newer than this oma binary"), "{err}");
    assert!(err.contains("Upgrade oma"), "{err}");
}

/// Records a migration this binary does not know, as a newer oma would have.
async fn sqlx_insert_future_migration(store: &oma_store::Store) {
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99999, 'from the future', TRUE, x'00', 0)",
    )
    .execute(store.writer())
    .await
    .unwrap();
}
