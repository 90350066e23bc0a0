//! `oma migrate status|up|stamp-baseline`.

use anyhow::Result;
use oma_store::migrate::{Migration, Stamped};

use crate::config::StorageArgs;

fn line(state: &str, m: &Migration) -> String {
    format!("{state:<8} {:04} {}", m.version, m.description)
}

pub async fn status(s: StorageArgs) -> Result<()> {
    let store = s.resolve()?.open_store().await?;
    let st = store.migration_status().await?;
    println!(
        "database: {} ({})",
        store.url_redacted(),
        store.backend().name()
    );
    if let Some(b) = &st.baseline {
        println!("{}", line("baseline", b));
    }
    for m in &st.applied {
        println!("{}", line("applied", m));
    }
    for m in &st.pending {
        println!("{}", line("pending", m));
    }
    for v in &st.unknown {
        if *v < 0 {
            println!("unknown  baseline {:04} (written by a newer oma)", -v);
        } else {
            println!("unknown  {v:04} (written by a newer oma)");
        }
    }
    if let Some(b) = &st.stampable {
        println!(
            "note: this database applied 0001..{:04} one by one; `oma migrate stamp-baseline` \
             records the squashed baseline so later releases can retire those files",
            b.version
        );
    }
    println!(
        "{}",
        if !st.unknown.is_empty() {
            "schema is NEWER than this binary: upgrade oma"
        } else if st.pending.is_empty() {
            "schema is up to date"
        } else {
            "schema is behind: run `oma migrate up`"
        }
    );
    store.close().await;
    Ok(())
}

pub async fn up(s: StorageArgs) -> Result<()> {
    let store = s.resolve()?.open_store().await?;
    let applied = store.migrate_up().await;
    store.close().await;
    let applied = applied?;
    for m in &applied {
        println!("{}", line("applied", m));
    }
    println!(
        "schema is up to date ({} migration(s) applied)",
        applied.len()
    );
    Ok(())
}

pub async fn stamp_baseline(s: StorageArgs) -> Result<()> {
    let store = s.resolve()?.open_store().await?;
    let stamped = store.stamp_baseline().await;
    store.close().await;
    match stamped? {
        Stamped::Recorded(m) => println!("{}", line("stamped", &m)),
        Stamped::AlreadyRecorded(m) => {
            println!("{}: already recorded, nothing to do", line("baseline", &m))
        }
    }
    Ok(())
}
