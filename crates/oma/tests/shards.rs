//! `oma shards …`, `oma tenants create|list|move` and `oma migrate` over shards, as an operator
//! runs them: the real binary over a SQLite router database in a temp data dir, with shards
//! that are SQLite files and (when `OMA_TEST_DATABASE_URL` is set) fresh PostgreSQL databases.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

use oma_core::agents::{AgentConfig, CreateAgentParams};
use oma_store::{Backend, Store};
use oma_testkit::infra::FreshPostgres;
use serde_json::json;

/// A deployment under test: the data dir (router database) and the shard databases it made.
struct Deployment {
    dir: tempfile::TempDir,
    pgs: Vec<FreshPostgres>,
}

impl Deployment {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            pgs: Vec::new(),
        }
    }

    fn run(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_oma"))
            .args(args)
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .current_dir(self.dir.path())
            .env_remove("OMA_DATABASE_URL")
            .env_remove("OMA_DATA_DIR")
            .env_remove("OMA_CONFIG")
            .env_remove("OMA_ENV")
            .env_remove("OMA_TEST_MOVE_STOP_AFTER")
            .envs(envs.iter().copied())
            .output()
            .unwrap()
    }

    /// Runs `oma ARGS` and returns its stdout, failing the test if it failed.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args, &[]);
        assert!(o.status.success(), "oma {args:?} failed: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs `oma ARGS`, expecting it to fail; returns stdout and stderr.
    fn fails(&self, args: &[&str], envs: &[(&str, &str)]) -> String {
        let o = self.run(args, envs);
        assert!(!o.status.success(), "oma {args:?} succeeded: {}", text(&o));
        text(&o)
    }

    /// A new database for a shard: a SQLite file in the temp dir, or a fresh PostgreSQL one.
    async fn database(&mut self, backend: Backend, tag: &str) -> String {
        match backend {
            Backend::Sqlite => format!(
                "sqlite://{}",
                self.dir.path().join(format!("{tag}.db")).display()
            ),
            Backend::Postgres => {
                let pg = FreshPostgres::create(tag).await.unwrap();
                let url = pg.url.clone();
                self.pgs.push(pg);
                url
            }
        }
    }

    fn router_url(&self) -> String {
        format!("sqlite://{}", self.data_dir().join("oma.db").display())
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `tenant → shard` from `oma tenants list`.
    fn placements(&self) -> Vec<(String, String)> {
        self.ok(&["tenants", "list"])
            .lines()
            .map(|l| {
                let (t, s) = l.split_once('\t').unwrap();
                (t.to_string(), s.to_string())
            })
            .collect()
    }

    fn shard_of(&self, tenant: &str) -> String {
        self.placements()
            .into_iter()
            .find(|(t, _)| t == tenant)
            .map(|(_, s)| s)
            .unwrap_or_else(|| panic!("tenant {tenant} is not listed"))
    }

    /// The cells of `name`'s row in `oma shards list` (columns are 2+ spaces apart).
    fn shard_row(&self, name: &str) -> Vec<String> {
        let list = self.ok(&["shards", "list"]);
        list.lines()
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .find(|cells| cells.first().map(String::as_str) == Some(name))
            .unwrap_or_else(|| panic!("no row for {name} in:\n{list}"))
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The shard backends to test: SQLite always, PostgreSQL when `OMA_TEST_DATABASE_URL` is set.
fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Sqlite];
    if oma_testkit::postgres_url().is_some() {
        v.push(Backend::Postgres);
    } else {
        eprintln!("note: OMA_TEST_DATABASE_URL is not set; SQLite shards only");
    }
    v
}

/// Gives `tenant` data on the database at `url` (agents and environments); returns its rows.
async fn seed(url: &str, tenant: &str, n: usize) -> i64 {
    let store = Store::connect(url).await.unwrap();
    for i in 0..n {
        let p: CreateAgentParams =
            serde_json::from_value(json!({"name": format!("a{i}"), "model": "claude-opus-4-8"}))
                .unwrap();
        store
            .create_agent(tenant, &AgentConfig::create(p).unwrap())
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO environments (id, tenant_id, created_at, updated_at, archived_at, body) \
             VALUES ($1, $2, 0, 0, NULL, '{}')",
        )
        .bind(oma_core::ids::new_id(oma_core::ids::ENVIRONMENT))
        .bind(tenant)
        .execute(store.writer())
        .await
        .unwrap();
    }
    let rows = rows_of(&store, tenant).await;
    store.close().await;
    rows
}

async fn rows_of(store: &Store, tenant: &str) -> i64 {
    let tables = store.tenant_tables().await.unwrap();
    store
        .count_tenant_rows(tenant, &tables)
        .await
        .unwrap()
        .iter()
        .sum()
}

async fn rows(url: &str, tenant: &str) -> i64 {
    let store = Store::connect(url).await.unwrap();
    let n = rows_of(&store, tenant).await;
    store.close().await;
    n
}

#[tokio::test]
async fn shards_are_added_listed_and_new_tenants_land_on_the_least_loaded() {
    let mut d = Deployment::new();
    let kinds = backends();
    let second = *kinds.last().unwrap();
    let one = d.database(Backend::Sqlite, "one").await;
    let two = d.database(second, "two").await;
    let added = d.ok(&["shards", "add", &one]);
    assert!(added.contains("added shard shard-1"), "{added}");
    assert!(added.contains("open for new tenants"), "{added}");
    d.ok(&["shards", "add", &two]);
    let again = d.fails(&["shards", "add", &one, "--name", "other"], &[]);
    assert!(
        again.contains("registered already, as the shard `shard-1`"),
        "{again}"
    );
    let router = d.fails(&["shards", "add", &d.router_url()], &[]);
    assert!(router.contains("router database itself"), "{router}");

    let main = d.shard_row("main");
    assert_eq!(main[1], "sqlite", "{main:?}");
    assert_eq!(main[2], "(router database)", "{main:?}");
    assert_eq!(main[3], "open", "{main:?}");
    let s2 = d.shard_row("shard-2");
    assert_eq!(s2[1], second.name(), "{s2:?}");
    assert_eq!(s2[3], "open");
    assert_eq!(s2[5], "0", "{s2:?}");
    assert!(s2[6].ends_with('B'), "a size: {s2:?}");

    // `main` holds the `default` tenant: the first two land on the new shards, then the ties
    // go by name.
    for t in ["t1", "t2", "t3", "t4"] {
        let out = d.ok(&["tenants", "create", t]);
        assert!(
            out.contains(&format!("created tenant {t} on shard")),
            "{out}"
        );
    }
    assert_eq!(d.shard_of("t1"), "shard-1");
    assert_eq!(d.shard_of("t2"), "shard-2");
    assert_eq!(d.shard_of("t3"), "main");
    assert_eq!(d.shard_of("t4"), "shard-1");
    assert_eq!(d.shard_of("default"), "main");
    assert_eq!(d.shard_row("shard-1")[5], "2");
    assert_eq!(d.shard_row("main")[5], "2");
    let same = d.ok(&["tenants", "create", "t1"]);
    assert!(
        same.contains("tenant t1 already exists (on shard shard-1)"),
        "{same}"
    );
    assert_eq!(d.shard_of("t1"), "shard-1");

    let status = d.ok(&["migrate", "status"]);
    assert!(status.contains("shard shard-1: "), "{status}");
    assert!(status.contains("shard shard-2: "), "{status}");
    assert!(status.contains("every shard (2) is up to date"), "{status}");
}

#[tokio::test]
async fn a_dedicated_tenant_gets_a_database_of_its_own() {
    for backend in backends() {
        let mut d = Deployment::new();
        let own = d.database(backend, "own").await;
        let out = d.ok(&["tenants", "create", "acme", "--dedicated", &own]);
        assert!(out.contains("added shard tenant-acme"), "{out}");
        assert!(
            out.contains("created tenant acme on shard tenant-acme"),
            "{out}"
        );
        let row = d.shard_row("tenant-acme");
        assert_eq!(row[1], backend.name());
        assert_eq!(row[3], "full", "{row:?}");
        assert_eq!(row[4], "acme", "{row:?}");
        assert_eq!(row[5], "1", "{row:?}");
        // Nobody else lands there, even when it is the emptiest.
        d.ok(&["tenants", "create", "other"]);
        assert_eq!(d.shard_of("other"), "main");
        let refused = d.fails(&["tenants", "move", "other", "--to", "tenant-acme"], &[]);
        assert!(refused.contains("dedicated to tenant acme"), "{refused}");
        // The same name again changes nothing (and registers no shard).
        let other_db = d.database(Backend::Sqlite, "unused").await;
        let again = d.ok(&["tenants", "create", "acme", "--dedicated", &other_db]);
        assert!(again.contains("already exists"), "{again}");
        assert!(!d.ok(&["shards", "list"]).contains("unused.db"));
    }
}

#[tokio::test]
async fn a_tenant_with_data_moves_and_a_stopped_move_resumes() {
    for backend in backends() {
        let mut d = Deployment::new();
        let one = d.database(Backend::Sqlite, "one").await;
        let two = d.database(backend, "two").await;
        d.ok(&["shards", "add", &one]);
        d.ok(&["shards", "add", &two, "--name", "two"]);
        d.ok(&["tenants", "create", "mover"]);
        assert_eq!(d.shard_of("mover"), "shard-1");
        let seeded = seed(&one, "mover", 5).await;
        assert!(seeded >= 10, "{seeded}");

        let out = d.ok(&["tenants", "move", "mover", "--to", "two", "--grace-ms", "0"]);
        assert!(
            out.contains("moved tenant mover from shard-1 to two"),
            "{out}"
        );
        assert!(out.contains(&format!("{seeded} row(s) copied")), "{out}");
        assert_eq!(d.shard_of("mover"), "two");
        assert_eq!(rows(&two, "mover").await, seeded);
        assert_eq!(rows(&one, "mover").await, 0);
        let noop = d.ok(&["tenants", "move", "mover", "--to", "two"]);
        assert!(
            noop.contains("on shard two already; nothing to do"),
            "{noop}"
        );

        // A mover stopped once the fence is journalled exits non-zero; the journal shows the
        // move; the same command finishes it.
        let stopped = d.fails(
            &[
                "tenants",
                "move",
                "mover",
                "--to",
                "shard-1",
                "--grace-ms",
                "0",
            ],
            &[("OMA_TEST_MOVE_STOP_AFTER", "fenced")],
        );
        assert!(stopped.contains("run the same command again"), "{stopped}");
        let list = d.ok(&["shards", "list"]);
        assert!(list.contains("moves in progress:"), "{list}");
        assert!(list.contains("mover  two → shard-1  fenced"), "{list}");
        let other = d.fails(&["tenants", "move", "mover", "--to", "main"], &[]);
        assert!(
            other.contains("being moved from two to shard-1 already") && other.contains("--abort"),
            "{other}"
        );
        let resumed = d.ok(&[
            "tenants",
            "move",
            "mover",
            "--to",
            "shard-1",
            "--grace-ms",
            "0",
        ]);
        assert!(
            resumed.contains("resuming the move of tenant mover"),
            "{resumed}"
        );
        assert!(
            resumed.contains("moved tenant mover from two to shard-1"),
            "{resumed}"
        );
        assert_eq!(d.shard_of("mover"), "shard-1");
        assert_eq!(rows(&one, "mover").await, seeded);
        assert_eq!(rows(&two, "mover").await, 0);
        assert!(!d.ok(&["shards", "list"]).contains("moves in progress"));

        // A move stopped while copying can be aborted: the tenant stays where it was.
        d.fails(
            &["tenants", "move", "mover", "--to", "two"],
            &[("OMA_TEST_MOVE_STOP_AFTER", "copying")],
        );
        let aborted = d.ok(&["tenants", "move", "mover", "--abort"]);
        assert!(
            aborted.contains("aborted the move of tenant mover"),
            "{aborted}"
        );
        assert_eq!(d.shard_of("mover"), "shard-1");
        assert_eq!(rows(&one, "mover").await, seeded);
        assert_eq!(rows(&two, "mover").await, 0);
        let nothing = d.fails(&["tenants", "move", "mover", "--abort"], &[]);
        assert!(nothing.contains("no move in progress"), "{nothing}");
    }
}

#[tokio::test]
async fn draining_a_shard_moves_its_tenants_to_open_ones() {
    for backend in backends() {
        let mut d = Deployment::new();
        let one = d.database(backend, "one").await;
        d.ok(&["shards", "add", &one]);
        d.ok(&["tenants", "create", "a"]);
        d.ok(&["tenants", "create", "b"]);
        assert_eq!(d.shard_of("a"), "shard-1");
        assert_eq!(d.shard_of("b"), "main");
        let seeded = seed(&one, "a", 3).await;

        let out = d.ok(&["shards", "drain", "shard-1", "--grace-ms", "0"]);
        assert!(out.contains("shard shard-1 is draining"), "{out}");
        assert!(out.contains("moved tenant a from shard-1 to main"), "{out}");
        assert_eq!(d.shard_of("a"), "main");
        assert_eq!(rows(&d.router_url(), "a").await, seeded);
        assert_eq!(rows(&one, "a").await, 0);
        let row = d.shard_row("shard-1");
        assert_eq!(row[3], "draining");
        assert_eq!(row[5], "0");

        // New tenants no longer land there; and `main` cannot be drained with nowhere to go.
        d.ok(&["tenants", "create", "c"]);
        assert_eq!(d.shard_of("c"), "main");
        let refused = d.fails(&["shards", "drain", "main"], &[]);
        assert!(refused.contains("no other shard is open"), "{refused}");
        assert_eq!(d.shard_row("main")[3], "open");
        let only = d.ok(&["shards", "drain", "main", "--no-move"]);
        assert!(only.contains("stay on main"), "{only}");
        assert_eq!(d.shard_row("main")[3], "draining");
        let none = d.fails(&["tenants", "create", "d"], &[]);
        assert!(none.contains("no shard is open"), "{none}");
    }
}

#[tokio::test]
async fn rebalance_moves_tenants_until_within_the_spread() {
    let mut d = Deployment::new();
    for t in ["t1", "t2", "t3", "t4"] {
        d.ok(&["tenants", "create", t]);
    }
    // The largest tenant is moved last, if at all.
    let seeded = seed(&d.router_url(), "t4", 4).await;
    let kinds = backends();
    let one = d.database(Backend::Sqlite, "one").await;
    let two = d.database(*kinds.last().unwrap(), "two").await;
    d.ok(&["shards", "add", &one]);
    d.ok(&["shards", "add", &two]);
    assert_eq!(d.shard_row("main")[5], "5");

    let wide = d.ok(&["shards", "rebalance", "--spread", "3", "--dry-run"]);
    assert_eq!(wide.matches("would move").count(), 2, "{wide}");
    let plan = d.ok(&["shards", "rebalance", "--dry-run"]);
    assert_eq!(plan.matches("would move").count(), 3, "{plan}");
    assert!(!plan.contains("tenant t4"), "{plan}");
    assert!(plan.contains("nothing was moved"), "{plan}");
    assert!(d.placements().iter().all(|(_, s)| s == "main"));

    let done = d.ok(&["shards", "rebalance", "--grace-ms", "0"]);
    assert!(done.contains("rebalanced: 3 tenant(s) moved"), "{done}");
    let counts: Vec<i64> = ["main", "shard-1", "shard-2"]
        .iter()
        .map(|s| d.shard_row(s)[5].parse().unwrap())
        .collect();
    assert_eq!(counts, vec![2, 2, 1]);
    assert_eq!(d.shard_of("t4"), "main");
    assert_eq!(rows(&d.router_url(), "t4").await, seeded);
    let again = d.ok(&["shards", "rebalance"]);
    assert!(again.contains("nothing to move"), "{again}");
}

/// Rebuilds the SQLite file at `url` with the squashed baseline only, as an oma from before
/// migrations 0014.. left it: behind this binary.
async fn make_behind(url: &str) {
    let path = url.strip_prefix("sqlite://").unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
    let store = Store::connect(url).await.unwrap();
    let baseline = *oma_store::migrate::baseline_files(Backend::Sqlite)
        .last()
        .unwrap();
    sqlx::raw_sql(baseline.sql)
        .execute(store.writer())
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
         installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
         checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
    )
    .execute(store.writer())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, $2, TRUE, $3, 0)",
    )
    .bind(-baseline.version())
    .bind(format!(
        "baseline (squashes 0001..{:04})",
        baseline.version()
    ))
    .bind(baseline.checksum())
    .execute(store.writer())
    .await
    .unwrap();
    let st = store.migration_status().await.unwrap();
    assert!(!st.pending.is_empty(), "{st:?}");
    store.close().await;
}

#[tokio::test]
async fn migrate_status_names_a_shard_that_is_behind_and_up_migrates_it() {
    let mut d = Deployment::new();
    let behind = d.database(Backend::Sqlite, "behind").await;
    let kinds = backends();
    let current = d.database(*kinds.last().unwrap(), "current").await;
    d.ok(&["shards", "add", &behind, "--name", "old"]);
    d.ok(&["shards", "add", &current, "--name", "new"]);
    make_behind(&behind).await;

    let status = d.ok(&["migrate", "status"]);
    assert!(status.contains("shard old: "), "{status}");
    assert!(status.contains("shard new: "), "{status}");
    assert!(status.contains("pending  0018 shards"), "{status}");
    assert!(status.contains("shard(s) behind: old ("), "{status}");
    assert!(
        !status.contains("shard(s) behind: old (5 pending), new"),
        "{status}"
    );

    // The mover (like the server) refuses a shard that is behind, naming it.
    d.ok(&["tenants", "create", "x"]);
    assert_eq!(d.shard_of("x"), "new");
    let refused = d.fails(&["tenants", "move", "x", "--to", "main"], &[]);
    assert!(
        refused.contains("shard `old`") && refused.contains("oma migrate up"),
        "{refused}"
    );
    // So does `oma serve`: it exits at start, naming the shard and the fix.
    let serve = d.fails(
        &["serve", "--listen", "127.0.0.1:0"],
        &[("OMA_API_KEY", "sk-x")],
    );
    assert!(
        serve.contains("shard `old`") && serve.contains("oma migrate up"),
        "{serve}"
    );
    let up = d.ok(&["migrate", "up"]);
    assert!(up.contains("shard old: applied  0018 shards"), "{up}");
    assert!(up.contains("shard(s) that were behind: old ("), "{up}");
    assert!(!up.contains("new ("), "{up}");
    let status = d.ok(&["migrate", "status"]);
    assert!(status.contains("every shard (2) is up to date"), "{status}");
    let out = d.ok(&["tenants", "move", "x", "--to", "main", "--grace-ms", "0"]);
    assert!(out.contains("moved tenant x from new to main"), "{out}");
}
