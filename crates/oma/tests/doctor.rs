//! `oma doctor` names each broken piece of a deliberately broken config with its fix, exits
//! non-zero when a required piece is broken, and exits 0 (with warnings) on a healthy setup.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

/// A valid root secret: base64 of 32 bytes.
const GOOD_SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

mod common;
use common::cli as oma;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The line for `what` and the fix line after it.
fn check<'a>(out: &'a str, what: &str) -> (&'a str, Option<&'a str>) {
    let lines: Vec<&str> = out.lines().collect();
    let i = lines
        .iter()
        .position(|l| l[6.min(l.len())..].starts_with(&format!("{what}:")))
        .unwrap_or_else(|| panic!("no `{what}` check in:\n{out}"));
    let fix = lines
        .get(i + 1)
        .filter(|l| l.trim_start().starts_with("fix:"))
        .copied();
    (lines[i], fix)
}

fn migrated(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    let o = oma(&["migrate", "up"], &data, &[]);
    assert!(o.status.success(), "{o:?}");
    data
}

#[test]
fn unreachable_database_and_bad_root_secret_fail_with_fixes() {
    let dir = tempfile::tempdir().unwrap();
    let o = oma(
        &["doctor", "--database-url", "postgres://127.0.0.1:1/nope"],
        &dir.path().join("data"),
        &[("OMA_ROOT_SECRET", "not-a-key")],
    );
    let out = stdout(&o);
    assert!(!o.status.success(), "{out}");
    let (db, fix) = check(&out, "database");
    assert!(db.starts_with("FAIL"), "{db}");
    assert!(fix.unwrap().contains("PostgreSQL is running"), "{out}");
    let (root, fix) = check(&out, "root secret");
    assert!(
        root.starts_with("FAIL") && root.contains("OMA_ROOT_SECRET"),
        "{root}"
    );
    assert!(fix.unwrap().contains("openssl rand -base64 32"), "{out}");
    // Optional pieces are warnings, not failures.
    assert!(check(&out, "model provider").0.starts_with("warn"), "{out}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("2 required check(s) failed"), "{out}\n{err}");
}

#[tokio::test]
async fn a_schema_behind_and_an_exposed_root_key_fail_with_fixes() {
    let dir = tempfile::tempdir().unwrap();
    let data = migrated(dir.path());
    // Make the schema look older: forget the newest migration.
    let url = format!("sqlite://{}", data.join("oma.db").display());
    let store = oma_store::Store::connect(&url).await.unwrap();
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .execute(store.writer())
    .await
    .unwrap();
    store.close().await;
    let key = data.join("root.key");
    std::fs::write(&key, GOOD_SECRET).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    let o = oma(&["doctor"], &data, &[]);
    let out = stdout(&o);
    assert!(!o.status.success(), "{out}");
    assert!(check(&out, "database").0.starts_with("ok"), "{out}");
    let (mig, fix) = check(&out, "migrations");
    assert!(mig.starts_with("FAIL") && mig.contains("behind"), "{mig}");
    assert!(fix.unwrap().contains("oma migrate up"), "{out}");
    #[cfg(unix)]
    {
        let (root, fix) = check(&out, "root secret");
        assert!(root.starts_with("FAIL"), "{root}");
        assert!(fix.unwrap().contains("chmod 600"), "{out}");
    }
}

#[test]
fn a_healthy_data_dir_passes_with_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let data = migrated(dir.path());
    let o = oma(&["doctor"], &data, &[("OMA_ROOT_SECRET", GOOD_SECRET)]);
    let out = stdout(&o);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out.contains("FAIL"), "{out}");
    for what in ["database", "migrations", "root secret"] {
        assert!(check(&out, what).0.starts_with("ok"), "{what}: {out}");
    }
    // Not configured yet: warnings that say how to fix them.
    let (model, fix) = check(&out, "model provider");
    assert!(model.starts_with("warn"), "{model}");
    assert!(fix.unwrap().contains("ANTHROPIC_API_KEY"));
    // bubblewrap is installed where the tests run (.ci/run installs it).
    assert!(check(&out, "sandbox backend").0.starts_with("ok"), "{out}");
    assert!(out.contains("all required checks passed"), "{out}");
}

#[test]
fn a_database_path_that_cannot_be_created_fails_with_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    // The data dir would live under a regular file: no user can create it.
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, b"x").unwrap();
    let o = oma(
        &["doctor"],
        &blocker.join("data"),
        &[("OMA_ROOT_SECRET", GOOD_SECRET)],
    );
    let out = stdout(&o);
    assert!(!o.status.success(), "{out}");
    let (db, fix) = check(&out, "database");
    assert!(
        db.starts_with("FAIL")
            && db.contains("cannot be created")
            && db.contains("not a directory"),
        "{db}"
    );
    assert!(fix.unwrap().contains("--data-dir"), "{out}");
    // A path that can be created is only a warning.
    let fresh = dir.path().join("fresh").join("data");
    let o = oma(&["doctor"], &fresh, &[("OMA_ROOT_SECRET", GOOD_SECRET)]);
    let out = stdout(&o);
    let (db, _) = check(&out, "database");
    assert!(
        db.starts_with("warn") && db.contains("does not exist yet"),
        "{db}"
    );
    // The write probe is removed again.
    let probes = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".oma-doctor-probe")
        })
        .count();
    assert_eq!(probes, 0);
}
