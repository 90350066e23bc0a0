//! `oma migrate status|up|stamp-baseline` as an operator runs them, on SQLite and (when
//! `OMA_TEST_DATABASE_URL` is set) on a PostgreSQL database of the test's own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use oma_store::Store;

/// Where a test's database lives: a data dir, or a PostgreSQL database dropped on drop.
struct Db {
    _dir: tempfile::TempDir,
    args: Vec<String>,
    url: String,
    pg: Option<(String, String)>,
}

impl Db {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        Self {
            url: format!("sqlite://{d}/oma.db"),
            args: vec!["--data-dir".into(), d],
            _dir: dir,
            pg: None,
        }
    }

    fn postgres(admin: &str) -> Self {
        let name = format!(
            "oma_cli_mig_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        block_on(async {
            let s = Store::connect(admin).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(s.writer())
                .await
                .unwrap();
            s.close().await;
        });
        let (base, _) = admin.rsplit_once('/').unwrap();
        let url = format!("{base}/{name}");
        let dir = tempfile::tempdir().unwrap();
        Self {
            args: vec![
                "--data-dir".into(),
                dir.path().display().to_string(),
                "--database-url".into(),
                url.clone(),
            ],
            url,
            _dir: dir,
            pg: Some((admin.to_string(), name)),
        }
    }

    fn oma(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_oma"))
            .args(args)
            .args(&self.args)
            .env_remove("OMA_DATABASE_URL")
            .env_remove("OMA_DATA_DIR")
            .env_remove("OMA_CONFIG")
            .env_remove("OMA_ENV")
            .output()
            .unwrap()
    }

    /// Records a migration row as a newer (or older) oma would have.
    fn record(&self, version: i64, description: &'static str) {
        let url = self.url.clone();
        block_on(async move {
            let s = Store::connect(&url).await.unwrap();
            sqlx::query(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                 execution_time) VALUES ($1, $2, TRUE, $3, 0)",
            )
            .bind(version)
            .bind(description)
            .bind(vec![0_u8])
            .execute(s.writer())
            .await
            .unwrap();
            s.close().await;
        });
    }

    /// Migrates the database as releases before the baseline did (sqlx's migrator over the
    /// same files), up to migration `upto`.
    fn earlier_release(&self, upto: i64) {
        static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("../oma-store/migrations/sqlite");
        static POSTGRES: sqlx::migrate::Migrator =
            sqlx::migrate!("../oma-store/migrations/postgres");
        let url = self.url.clone();
        let all = if self.pg.is_some() {
            &POSTGRES
        } else {
            &SQLITE
        };
        block_on(async move {
            let s = Store::connect(&url).await.unwrap();
            sqlx::migrate::Migrator::with_migrations(
                all.iter().filter(|m| m.version <= upto).cloned().collect(),
            )
            .run(s.writer())
            .await
            .unwrap();
            s.close().await;
        });
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            block_on(async move {
                if let Ok(s) = Store::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(s.writer())
                    .await;
                    s.close().await;
                }
            });
        }
    }
}

fn block_on<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f);
}

fn dbs() -> Vec<Db> {
    let mut v = vec![Db::sqlite()];
    match std::env::var("OMA_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => v.push(Db::postgres(&u)),
        _ => eprintln!("note: OMA_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant"),
    }
    v
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", out(&o));
    out(&o)
}

#[test]
fn a_new_database_is_built_from_the_baseline_and_status_shows_it() {
    for db in dbs() {
        // An empty database: the baseline is what `up` would apply first.
        let status = ok(db.oma(&["migrate", "status"]));
        let first_pending = status.lines().find(|l| l.starts_with("pending")).unwrap();
        assert!(first_pending.contains("baseline"), "{status}");
        // Nothing to stamp yet: the fix is `migrate up`.
        let refused = db.oma(&["migrate", "stamp-baseline"]);
        assert!(!refused.status.success());
        assert!(
            out(&refused).contains("oma migrate up"),
            "{}",
            out(&refused)
        );

        let up = ok(db.oma(&["migrate", "up"]));
        assert!(up.contains("baseline (squashes 0001..0013)"), "{up}");
        let status = ok(db.oma(&["migrate", "status"]));
        assert!(
            status.contains("baseline 0013 baseline (squashes 0001..0013)"),
            "{status}"
        );
        assert!(!status.contains("pending "), "{status}");
        assert!(status.contains("schema is up to date"), "{status}");
        // Created from the baseline, so stamping has nothing to add.
        let stamp = ok(db.oma(&["migrate", "stamp-baseline"]));
        assert!(stamp.contains("already recorded"), "{stamp}");
    }
}

#[test]
fn stamp_baseline_on_an_older_database_twice_is_a_no_op() {
    for db in dbs() {
        db.earlier_release(13);
        let status = ok(db.oma(&["migrate", "status"]));
        assert!(
            status.contains("applied  0013 context compactions"),
            "{status}"
        );
        assert!(!status.starts_with("baseline"), "{status}");
        assert!(status.contains("oma migrate stamp-baseline"), "{status}");

        let first = ok(db.oma(&["migrate", "stamp-baseline"]));
        assert!(
            first.contains("stamped  0013 baseline (squashes 0001..0013)"),
            "{first}"
        );
        let second = ok(db.oma(&["migrate", "stamp-baseline"]));
        assert!(
            second.contains("already recorded, nothing to do"),
            "{second}"
        );

        let status = ok(db.oma(&["migrate", "status"]));
        assert!(status.contains("baseline 0013 baseline"), "{status}");
        assert!(status.contains("applied  0001 tenants"), "{status}");
        assert!(!status.contains("stamp-baseline"), "{status}");
        // Later migrations are ordinary ones on a stamped database too.
        ok(db.oma(&["migrate", "up"]));
        let status = ok(db.oma(&["migrate", "status"]));
        assert!(status.contains("schema is up to date"), "{status}");
    }
}

#[test]
fn stamp_baseline_refuses_a_partly_migrated_database() {
    for db in dbs() {
        db.earlier_release(11);
        let o = db.oma(&["migrate", "stamp-baseline"]);
        assert!(!o.status.success(), "{}", out(&o));
        let text = out(&o);
        assert!(
            text.contains("0012, 0013") && text.contains("run `oma migrate up` first"),
            "{text}"
        );
    }
}

#[test]
fn a_schema_newer_than_the_binary_is_refused_with_the_fix() {
    for db in dbs() {
        ok(db.oma(&["migrate", "up"]));
        db.record(99_999, "from the future");
        let status = ok(db.oma(&["migrate", "status"]));
        assert!(status.contains("unknown  99999"), "{status}");
        assert!(status.contains("NEWER than this binary"), "{status}");
        for verb in ["up", "stamp-baseline"] {
            let o = db.oma(&["migrate", verb]);
            assert!(!o.status.success(), "{verb}: {}", out(&o));
            let text = out(&o);
            assert!(
                text.contains("newer than this oma binary") && text.contains("Upgrade oma"),
                "{verb}: {text}"
            );
        }
    }
}

/// Starts `oma serve` on the test's database and returns once it listens (or the output of a
/// server that exited instead).
fn serve_or_exit(db: &Db) -> Result<std::process::Child, String> {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_oma"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(&db.args)
        .env("OMA_SANDBOX_DISK_QUOTA", "off")
        .env(
            "OMA_ROOT_SECRET",
            "bWlncmF0ZS10ZXN0cy1yb290LXNlY3JldC0zMmJ5dGU=",
        )
        .env_remove("OMA_DATABASE_URL")
        .env_remove("OMA_DATA_DIR")
        .env_remove("OMA_CONFIG")
        .env_remove("OMA_ENV")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Lines end when the server listens (success) or exits (stdout closes).
    let listening = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("listening on http://"));
    if listening {
        return Ok(child);
    }
    let out = child.wait_with_output().unwrap();
    Err(String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn serve_initialises_a_fresh_database_and_refuses_one_that_is_behind() {
    for db in dbs() {
        let mut server = serve_or_exit(&db).expect("serve starts on a fresh database");
        let _ = server.kill();
        let _ = server.wait();
        let status = ok(db.oma(&["migrate", "status"]));
        assert!(status.contains("schema is up to date"), "{status}");
    }
    // Behind, not fresh: PostgreSQL is the operator's to migrate (SQLite migrates in place).
    for db in dbs().into_iter().filter(|d| d.pg.is_some()) {
        db.earlier_release(12);
        let err = serve_or_exit(&db).expect_err("serve refuses a schema that is behind");
        assert!(err.contains("oma migrate up"), "{err}");
        let status = ok(db.oma(&["migrate", "status"]));
        assert!(status.contains("schema is behind"), "{status}");
    }
}
