//! `oma events query`: operational events straight from the database (also while a server
//! runs): rows newest first, or counts grouped by columns and attributes.

use anyhow::{Result, anyhow};
use clap::Args;
use oma_ops::query::{parse_group_by, parse_time, parse_where};
use oma_store::ops_events::{OpsFilter, OpsGroup, OpsPage};
use serde_json::{Value, json};

use crate::config::StorageArgs;

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// Event kind (repeatable, or comma-separated): tool_call, model_request,
    /// session_transition, silent_catch, egress_forward, egress_denied, integration_dispatch,
    /// sandbox_oom, sandbox_start.
    #[arg(long, value_delimiter = ',')]
    pub kind: Vec<String>,
    /// Start of the window: a duration back from now (90s, 15m, 1h, 7d) or an RFC 3339 time.
    #[arg(long, default_value = "24h")]
    pub since: String,
    /// End of the window (exclusive), same forms as --since. Default: now.
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long)]
    pub tenant: Option<String>,
    #[arg(long)]
    pub session: Option<String>,
    /// A `name=value` filter on a column (outcome, kind) or an attribute (tool, provider,
    /// host, …). Repeatable; filters combine with AND.
    #[arg(long = "where", value_name = "NAME=VALUE")]
    pub wheres: Vec<String>,
    /// Count events per distinct values of these columns/attributes (e.g. tool,outcome).
    #[arg(long, value_name = "KEYS")]
    pub group_by: Option<String>,
    /// How many rows (or groups) to print at most.
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
    /// JSON output (one array) instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub storage: StorageArgs,
}

pub async fn query(args: QueryArgs) -> Result<()> {
    let now = oma_core::time::now_micros();
    let since = parse_time(&args.since, now).map_err(|e| anyhow!("--since: {e}"))?;
    let until = args
        .until
        .as_deref()
        .map(|u| parse_time(u, now).map_err(|e| anyhow!("--until: {e}")))
        .transpose()?;
    let equals = args
        .wheres
        .iter()
        .map(|w| parse_where(w).map_err(|e| anyhow!("--where: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let filter = OpsFilter {
        kinds: args
            .kind
            .iter()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect(),
        since: Some(since),
        until,
        tenant: args.tenant.clone(),
        session: args.session.clone(),
        equals,
    };
    let limit = args.limit.clamp(1, 100_000);
    let control = args.storage.resolve()?.open_migrated_store().await?;
    // Each tenant's operational events live on its shard: the query reads them all.
    let store = oma_store::TenantRouter::open(control.clone()).await?;
    let out = match &args.group_by {
        Some(g) => {
            let keys = parse_group_by(g).map_err(|e| anyhow!("--group-by: {e}"))?;
            let groups = store.group_ops_events(&filter, &keys, limit).await?;
            if args.json {
                println!("{}", groups_json(&keys, &groups));
            } else {
                print_groups(&keys, &groups);
            }
            Ok(())
        }
        None => {
            let (rows, more) = store
                .query_ops_events(&filter, &OpsPage { limit, after: None })
                .await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let header = ["at", "kind", "outcome", "ms", "tenant", "session", "fields"];
                let table: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            oma_core::time::format_micros(r.at),
                            r.kind.clone(),
                            r.outcome.clone(),
                            r.duration_ms.map_or("-".into(), |d| d.to_string()),
                            r.tenant_id.clone().unwrap_or_else(|| "-".into()),
                            r.session_id.clone().unwrap_or_else(|| "-".into()),
                            Value::Object(r.fields.clone()).to_string(),
                        ]
                    })
                    .collect();
                print_table(&header, &table);
                if more {
                    eprintln!("(more rows match: narrow the window or raise --limit)");
                }
            }
            Ok(())
        }
    };
    for shard in store.shards() {
        shard.store.close().await;
    }
    out
}

fn groups_json(keys: &[String], groups: &[OpsGroup]) -> Value {
    Value::Array(
        groups
            .iter()
            .map(|g| {
                let mut o = serde_json::Map::new();
                for (k, v) in keys.iter().zip(&g.values) {
                    o.insert(k.clone(), json!(v));
                }
                o.insert("count".into(), g.count.into());
                o.insert("avg_duration_ms".into(), json!(g.avg_duration_ms));
                Value::Object(o)
            })
            .collect(),
    )
}

fn print_groups(keys: &[String], groups: &[OpsGroup]) {
    let mut header: Vec<&str> = keys.iter().map(String::as_str).collect();
    header.extend(["count", "avg_ms"]);
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            let mut row: Vec<String> = g
                .values
                .iter()
                .map(|v| v.clone().unwrap_or_else(|| "-".into()))
                .collect();
            row.push(g.count.to_string());
            row.push(g.avg_duration_ms.map_or("-".into(), |d| format!("{d:.1}")));
            row
        })
        .collect();
    print_table(&header, &rows);
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut out = String::new();
        for (i, (cell, w)) in cells.into_iter().zip(&widths).enumerate() {
            if i + 1 == n {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
