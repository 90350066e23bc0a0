//! `oma.toml` layering as an operator meets it: overlays chosen with `--env` / `OMA_ENV`,
//! `OMA_*` variables over the file, flags over both, unknown keys refused with key and file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn oma(args: &[&str], cwd: &Path, envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oma"));
    cmd.args(args).current_dir(cwd);
    for var in [
        "OMA_DATABASE_URL",
        "OMA_DATA_DIR",
        "OMA_CONFIG",
        "OMA_ENV",
        "OMA_PUBLIC_BASE_URL",
        "OMA_ROOT_SECRET",
        "OMA_LISTEN",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The SQLite file `oma migrate status` reports using.
fn database_of(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(o));
    out.lines()
        .find_map(|l| l.strip_prefix("database: "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string()
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("oma.toml");
    std::fs::write(
        &path,
        format!(
            r#"
data_dir = "{base}/base"
public_base_url = "https://oma.example.com"

[env.staging]
data_dir = "{base}/staging"
public_base_url = "https://staging.oma.example.com/"

[env.production]
listen = "127.0.0.1:1"
"#,
            base = dir.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn overlays_env_vars_and_flags_layer_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = write_config(d);
    let cfg = cfg.to_str().unwrap();
    let base = d.display();

    let o = oma(&["migrate", "status", "--config", cfg], d, &[]);
    assert!(
        database_of(&o).contains(&format!("{base}/base/oma.db")),
        "{}",
        text(&o)
    );
    // The overlay replaces what it sets…
    let o = oma(
        &["migrate", "status", "--config", cfg, "--env", "staging"],
        d,
        &[],
    );
    assert!(database_of(&o).contains(&format!("{base}/staging/oma.db")));
    // …chosen by OMA_ENV too, and keeps what it does not set.
    let o = oma(
        &["migrate", "status", "--config", cfg],
        d,
        &[("OMA_ENV", "production")],
    );
    assert!(database_of(&o).contains(&format!("{base}/base/oma.db")));
    // OMA_* beats the file and its overlay; a flag beats OMA_*.
    let o = oma(
        &["migrate", "status", "--config", cfg, "--env", "staging"],
        d,
        &[("OMA_DATA_DIR", &format!("{base}/from-env"))],
    );
    assert!(database_of(&o).contains(&format!("{base}/from-env/oma.db")));
    let flag_dir = format!("{base}/from-flag");
    let o = oma(
        &[
            "migrate",
            "status",
            "--config",
            cfg,
            "--env",
            "staging",
            "--data-dir",
            &flag_dir,
        ],
        d,
        &[("OMA_DATA_DIR", &format!("{base}/from-env"))],
    );
    assert!(database_of(&o).contains(&format!("{flag_dir}/oma.db")));

    // `./oma.toml` is found without --config.
    let o = oma(&["migrate", "status", "--env", "staging"], d, &[]);
    assert!(database_of(&o).contains(&format!("{base}/staging/oma.db")));

    // An overlay that does not exist is an error, not a silent fallback.
    let o = oma(
        &["migrate", "status", "--config", cfg, "--env", "prod"],
        d,
        &[],
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("[env.prod]") && t.contains("production, staging"),
        "{t}"
    );
    assert!(t.contains(cfg), "{t}");
}

#[test]
fn unknown_keys_name_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = d.join("oma.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:0\"\n\n[env.staging]\ndata_dri = \"x\"\n",
    )
    .unwrap();
    let o = oma(
        &["migrate", "status", "--config", cfg.to_str().unwrap()],
        d,
        &[],
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("data_dri"), "{t}");
    assert!(t.contains(&cfg.display().to_string()), "{t}");
    assert!(t.contains("line 4"), "the error points at the line: {t}");
}

#[test]
fn public_base_url_is_validated_and_doctor_prints_the_urls_to_register() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = write_config(d);
    let cfg = cfg.to_str().unwrap();
    let o = oma(&["doctor", "--config", cfg, "--env", "staging"], d, &[]);
    let t = text(&o);
    assert!(
        t.contains("SDK base_url: https://staging.oma.example.com ")
            && t.contains("https://staging.oma.example.com/v1/integrations/<id>/webhook"),
        "{t}"
    );
    let o = oma(
        &["doctor", "--config", cfg],
        d,
        &[("OMA_PUBLIC_BASE_URL", "oma.example.com")],
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("public_base_url `oma.example.com`"), "{t}");
    let o = oma(
        &[
            "migrate",
            "status",
            "--config",
            cfg,
            "--public-base-url",
            "ftp://x",
        ],
        d,
        &[],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("https://"), "{}", text(&o));
}
