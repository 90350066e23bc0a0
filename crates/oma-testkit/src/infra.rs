//! Real infrastructure for tests across nodes: a fresh PostgreSQL database of its own, and an
//! S3-compatible server (`moto` in server mode, the executable `OMA_TEST_MOTO_SERVER` names;
//! `.ci/run` installs it). Without them the callers say so and skip, never silently.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A database created for one test beside the one `OMA_TEST_DATABASE_URL` names; dropped
/// (with its connections) when this value is.
pub struct FreshPostgres {
    pub url: String,
    admin: String,
    name: String,
}

impl FreshPostgres {
    /// `None` (with a note) when `OMA_TEST_DATABASE_URL` is not set.
    pub async fn create(tag: &str) -> Option<Self> {
        let Some(admin) = crate::postgres_url() else {
            eprintln!("note: OMA_TEST_DATABASE_URL is not set; skipping a PostgreSQL-only test");
            return None;
        };
        let name = format!(
            "oma_{tag}_{}",
            crate::unique("db").to_lowercase().replace('-', "_")
        );
        let s = oma_store::Store::connect(&admin)
            .await
            .expect("connect to PostgreSQL");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(s.writer())
            .await
            .expect("create a database");
        s.close().await;
        let (head, _) = admin.rsplit_once('/').expect("a database URL");
        Some(Self {
            url: format!("{head}/{name}"),
            admin,
            name,
        })
    }
}

impl Drop for FreshPostgres {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Dropped from sync code, maybe inside a runtime: a thread of its own does the work.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(s) = oma_store::Store::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(s.writer())
                    .await;
                    s.close().await;
                }
            });
        })
        .join();
    }
}

/// A running moto server; killed on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// `None` (with a note) when `OMA_TEST_MOTO_SERVER` is not set.
    pub fn start() -> Option<Self> {
        let exe = std::env::var("OMA_TEST_MOTO_SERVER")
            .ok()
            .filter(|s| !s.is_empty());
        let Some(exe) = exe else {
            eprintln!("note: OMA_TEST_MOTO_SERVER is not set; skipping an S3 test");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(moto)
    }

    /// Creates a bucket (moto takes unsigned requests).
    pub fn bucket(&self, name: &str) {
        let addr = self.endpoint.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).expect("connect to moto");
        write!(
            s,
            "PUT /{name} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("send to moto");
        let mut raw = String::new();
        s.read_to_string(&mut raw).expect("read from moto");
        assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    }

    /// The `AWS_*` variables that point oma's `s3://` blob URLs at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}
