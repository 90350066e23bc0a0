//! Embeds the migration files: `migrations/<backend>/NNNN_name.sql` are the ordinary
//! migrations and `migrations/<backend>/baseline/NNNN_name.sql` the squashed baselines (NNNN =
//! the last ordinary migration a baseline stands for). A file dropped into a folder is picked up
//! on the next build without touching Rust code.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let out_dir = std::env::var("OUT_DIR").unwrap_or_else(|_| panic!("OUT_DIR is not set"));
    let mut code = String::new();
    for (backend, konst) in [("sqlite", "SQLITE"), ("postgres", "POSTGRES")] {
        for (sub, suffix) in [("", "FILES"), ("/baseline", "BASELINES")] {
            let rel = format!("migrations/{backend}{sub}");
            let names = sql_files(&Path::new(&manifest_dir).join(&rel));
            let _ = writeln!(
                code,
                "pub(crate) static {konst}_{suffix}: &[(&str, &str)] = &["
            );
            for name in names {
                let _ = writeln!(
                    code,
                    "    ({name:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/{rel}/{name}\"))),"
                );
            }
            let _ = writeln!(code, "];");
        }
    }
    let out = Path::new(&out_dir).join("migration_files.rs");
    if let Err(e) = std::fs::write(&out, code) {
        panic!("cannot write {}: {e}", out.display());
    }
}

/// The `NNNN_name.sql` files of `dir`, sorted; anything else there is a mistake worth a clear
/// build failure rather than a migration silently left out.
fn sql_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for entry in entries.flatten() {
        if !entry.path().is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let valid = name.ends_with(".sql")
            && name
                .split_once('_')
                .is_some_and(|(v, _)| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
        if !valid {
            panic!(
                "{}/{name}: migration files are named NNNN_description.sql",
                dir.display()
            );
        }
        names.push(name);
    }
    names.sort();
    names
}
