//! A backup taken while a session is appending events restores into a server that serves
//! every event the backup committed, in order, with a contiguous log; restore refuses the data
//! dir of a running server and a non-empty one without `--force`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use oma_testkit::fake_anthropic::FakeAnthropic;
use oma_testkit::fake_model::Reply;
use serde_json::{Value, json};

const KEY: &str = "sk-backup-test";

mod common;

fn serve(data: &Path, model_url: &str) -> common::Server {
    common::serve(data, KEY, model_url)
}

fn http(base: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    common::http(base, KEY, method, path, body)
}

fn say(base: &str, sid: &str, text: &str) {
    common::say(base, KEY, sid, text)
}

fn session(base: &str) -> String {
    common::session(base, KEY, json!([]))
}

/// Every event of the session through the API, following pages.
fn all_events(base: &str, sid: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let path = match &page {
            Some(p) => format!("/v1/sessions/{sid}/events?limit=100&page={p}"),
            None => format!("/v1/sessions/{sid}/events?limit=100"),
        };
        let body = http(base, "GET", &path, None);
        out.extend(body["data"].as_array().unwrap().iter().cloned());
        match body["next_page"].as_str() {
            Some(p) => page = Some(p.to_string()),
            None => return out,
        }
    }
}

fn oma(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oma"))
        .args(args)
        .env_remove("OMA_DATABASE_URL")
        .env_remove("OMA_ROOT_SECRET")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `(seq, id, type)` of the session's events in a database file, in log order.
async fn logged(db: &Path, sid: &str) -> Vec<(i64, String, String)> {
    let url = format!("sqlite://{}", db.display());
    let store = oma_store::Store::connect(&url).await.unwrap();
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT seq, id, type FROM events WHERE session_id = $1 ORDER BY seq")
            .bind(sid)
            .fetch_all(store.reader())
            .await
            .unwrap();
    store.close().await;
    rows
}

/// Event ids waiting in the session's input queue in a database file.
async fn queued_inputs(db: &Path, sid: &str) -> Vec<String> {
    let url = format!("sqlite://{}", db.display());
    let store = oma_store::Store::connect(&url).await.unwrap();
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT event_id FROM session_inputs WHERE session_id = $1 ORDER BY seq",
    )
    .bind(sid)
    .fetch_all(store.reader())
    .await
    .unwrap();
    store.close().await;
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_write_load_restores_every_committed_event() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A model that answers every turn, so the session keeps consuming its input (a failing
    // model would flush queued input, which is not what this test is about).
    let fake = FakeAnthropic::start().await;
    fake.set_default(Some(Reply::text("noted")));
    let server = serve(&data, &fake.base_url);
    let sid = session(&server.base);
    // One event large enough to spill to the blob store: the backup must carry blobs too.
    let big = "b".repeat(600 * 1024);
    say(&server.base, &sid, &big);

    // A writer appending events continuously.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, acked, base, sid) = (
            stop.clone(),
            acked.clone(),
            server.base.clone(),
            sid.clone(),
        );
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                say(&base, &sid, &format!("message {i}"));
                i += 1;
                acked.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::SeqCst) < 20 {
        assert!(Instant::now() < deadline, "the writer made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The backup, mid-load. Every write acknowledged before it starts must be in it.
    let acked_before = acked.load(Ordering::SeqCst);
    let file = dir.path().join("oma.backup");
    let o = oma(&[
        "backup",
        "create",
        "--out",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "backup create: {}", stderr(&o));
    let created = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        created.contains("database snapshot, ") && !created.contains(" 0 blob(s)"),
        "the backup holds the database and the spilled event's blob: {created}"
    );
    let acked_after = acked.load(Ordering::SeqCst);

    // The running server's data dir is refused, even with --force.
    let o = oma(&[
        "backup",
        "restore",
        file.to_str().unwrap(),
        "--force",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("a running oma server uses"),
        "{}",
        stderr(&o)
    );

    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        acked.load(Ordering::SeqCst) > acked_after || acked_after > acked_before,
        "the writer was not writing while the backup ran"
    );

    // A non-empty directory is refused without --force, accepted with it.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("leftover"), "x").unwrap();
    let restore_into = |d: &Path, force: bool| {
        let mut args = vec!["backup", "restore", file.to_str().unwrap()];
        if force {
            args.push("--force");
        }
        args.extend(["--data-dir", d.to_str().unwrap()]);
        oma(&args)
    };
    let o = restore_into(&other, false);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is not empty"), "{}", stderr(&o));
    assert!(restore_into(&other, true).status.success());

    // Restore into a new dir and serve it.
    let restored = dir.path().join("restored");
    let o = restore_into(&restored, false);
    assert!(o.status.success(), "restore: {}", stderr(&o));
    assert_eq!(
        std::fs::read(restored.join("root.key")).unwrap(),
        std::fs::read(data.join("root.key")).unwrap()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(restored.join("root.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let snapshot = logged(&restored.join("oma.db"), &sid).await;
    // Contiguous from 1: the snapshot is one consistent point of the log.
    for (i, (seq, _, _)) in snapshot.iter().enumerate() {
        assert_eq!(*seq, i as i64 + 1, "a gap in the snapshot's log");
    }
    // Accepted input is either in the log already or in the session's input queue (the
    // host appends it when it consumes it): together they hold every acknowledged message.
    let queued = queued_inputs(&restored.join("oma.db"), &sid).await;
    let logged_messages: Vec<&str> = snapshot
        .iter()
        .filter(|e| e.2 == "user.message")
        .map(|e| e.1.as_str())
        .collect();
    let committed = logged_messages.len() + queued.len();
    assert!(
        committed > acked_before,
        "the snapshot holds {committed} user messages but {acked_before} (+1 large) were \
         acknowledged before the backup began"
    );

    let second = serve(&restored, &fake.base_url);
    // The restored server serves the logged events exactly, then consumes the queued ones.
    let deadline = Instant::now() + Duration::from_secs(60);
    let served = loop {
        let served = all_events(&second.base, &sid);
        let ids: std::collections::HashSet<&str> =
            served.iter().map(|e| e["id"].as_str().unwrap()).collect();
        if queued.iter().all(|q| ids.contains(q.as_str())) {
            break served;
        }
        assert!(
            Instant::now() < deadline,
            "the restored server did not serve the queued input"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(served.len() >= snapshot.len());
    for (e, (_, id, kind)) in served.iter().zip(&snapshot) {
        assert_eq!(e["id"].as_str().unwrap(), id);
        assert_eq!(e["type"].as_str().unwrap(), kind);
    }
    let served_messages = served
        .iter()
        .filter(|e| e["type"] == "user.message")
        .count();
    assert_eq!(served_messages, committed, "every committed message, once");
    // Contiguous log after the restored server's own appends too.
    let after = logged(&restored.join("oma.db"), &sid).await;
    for (i, (seq, _, _)) in after.iter().enumerate() {
        assert_eq!(*seq, i as i64 + 1, "a gap in the restored log");
    }
    // The spilled event came back from the restored blobs, whole.
    let first_text = served
        .iter()
        .find(|e| e["type"] == "user.message")
        .map(|e| e["content"][0]["text"].as_str().unwrap().len());
    assert_eq!(first_text, Some(big.len()));
}

/// The last line of a command's stdout (where `oma keys create` prints the key).
fn last_line(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// `(table, rows of tenant)` for every table of tenant data in a database.
async fn rows_by_table(store: &oma_store::Store, tenant: &str) -> Vec<(String, i64)> {
    let tables = store.tenant_tables().await.unwrap();
    let counts = store.count_tenant_rows(tenant, &tables).await.unwrap();
    tables.into_iter().map(|t| t.name).zip(counts).collect()
}

/// `backup create --tenant a` of a running two-tenant server: the restored database holds
/// every row tenant a has (table by table) and none of tenant b's, nor any API key; the blob of
/// a's spilled event comes with it and b's does not; a restored server serves a's session with
/// a key made for it. An unknown tenant is refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_backup_restores_that_tenant_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let mut keys = Vec::new();
    for t in ["a", "b"] {
        let o = oma(&["tenants", "create", t, "--data-dir", d]);
        assert!(o.status.success(), "tenants create: {}", stderr(&o));
        let o = oma(&["keys", "create", "--tenant", t, "--data-dir", d]);
        assert!(o.status.success(), "keys create: {}", stderr(&o));
        keys.push(last_line(&o));
    }
    let fake = FakeAnthropic::start().await;
    fake.set_default(Some(Reply::text("noted")));
    let server = serve(&data, &fake.base_url);
    let big = "b".repeat(600 * 1024);
    let mut sids = Vec::new();
    for key in &keys {
        let sid = common::session(&server.base, key, json!([]));
        common::say(&server.base, key, &sid, "hello");
        // Spills to the blob store.
        common::say(&server.base, key, &sid, &big);
        let vault = common::http(
            &server.base,
            key,
            "POST",
            "/v1/vaults",
            Some(json!({"display_name": "v"})),
        );
        let vid = vault["id"].as_str().unwrap();
        common::http(
            &server.base,
            key,
            "POST",
            &format!("/v1/vaults/{vid}/credentials"),
            Some(json!({"auth": {"type": "static_bearer",
                "mcp_server_url": "https://a.example.com/mcp", "token": "secret-token"}})),
        );
        sids.push(sid);
    }

    let file = dir.path().join("a.backup");
    let o = oma(&[
        "backup",
        "create",
        "--tenant",
        "nobody",
        "--out",
        file.to_str().unwrap(),
        "--data-dir",
        d,
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("there is no tenant `nobody`"),
        "{}",
        stderr(&o)
    );
    assert!(!file.exists());

    // Online: the server keeps running (and writing) meanwhile.
    let o = oma(&[
        "backup",
        "create",
        "--tenant",
        "a",
        "--out",
        file.to_str().unwrap(),
        "--data-dir",
        d,
    ]);
    assert!(o.status.success(), "backup create --tenant: {}", stderr(&o));
    let created = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        created.contains("tenant a") && !created.contains(" 0 blob(s)"),
        "{created}"
    );
    drop(server);

    let restored = dir.path().join("restored");
    let o = oma(&[
        "backup",
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "restore: {}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("backup of tenant a alone"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(
        std::fs::read(restored.join("root.key")).unwrap(),
        std::fs::read(data.join("root.key")).unwrap()
    );

    let src = oma_store::Store::connect(&format!("sqlite://{}", data.join("oma.db").display()))
        .await
        .unwrap();
    let dst = oma_store::Store::connect(&format!("sqlite://{}", restored.join("oma.db").display()))
        .await
        .unwrap();
    let mut want = rows_by_table(&src, "a").await;
    let mut got = rows_by_table(&dst, "a").await;
    // The server went on recording tenant a's operational events (flushed in batches) after
    // the online backup was taken: the backup holds those committed before it, no more.
    let ops = |rows: &mut Vec<(String, i64)>| {
        let i = rows.iter().position(|(t, _)| t == "ops_events").unwrap();
        rows.remove(i).1
    };
    let (ops_want, ops_got) = (ops(&mut want), ops(&mut got));
    assert!(
        ops_got <= ops_want,
        "tenant a's ops_events: {ops_got} restored, {ops_want} in the source"
    );
    assert_eq!(got, want, "tenant a's rows, table by table");
    for table in [
        "agents",
        "environments",
        "sessions",
        "events",
        "vaults",
        "vault_credentials",
    ] {
        assert!(
            got.iter().any(|(t, n)| t == table && *n > 0),
            "tenant a has rows in {table}: {got:?}"
        );
    }
    for (t, n) in rows_by_table(&dst, "b").await {
        assert_eq!(n, 0, "tenant b's rows in {t}");
    }
    let tenants: Vec<String> = sqlx::query_scalar("SELECT id FROM tenants")
        .fetch_all(dst.reader())
        .await
        .unwrap();
    assert_eq!(tenants, vec!["a".to_string()]);
    let api_keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys")
        .fetch_one(dst.reader())
        .await
        .unwrap();
    assert_eq!(api_keys, 0, "API keys stay with the router");
    src.close().await;
    dst.close().await;
    let a_blobs = restored.join("blobs").join("events").join("a");
    assert!(a_blobs.is_dir(), "a's spilled event's blob is restored");
    assert!(!restored.join("blobs").join("events").join("b").exists());

    // A working single-tenant deployment: a key for a, and its session is served whole.
    let r = restored.to_str().unwrap();
    let o = oma(&["keys", "create", "--tenant", "a", "--data-dir", r]);
    assert!(o.status.success(), "keys create: {}", stderr(&o));
    let key = last_line(&o);
    // The bootstrap key (the `default` tenant's) is another one.
    let second = serve(&restored, &fake.base_url);
    let served = common::events(&second.base, &key, &sids[0]);
    let texts: Vec<usize> = served
        .iter()
        .filter(|e| e["type"] == "user.message")
        .map(|e| e["content"][0]["text"].as_str().unwrap().len())
        .collect();
    assert_eq!(
        texts,
        vec![5, big.len()],
        "both of a's messages, the spilled one whole"
    );
}
