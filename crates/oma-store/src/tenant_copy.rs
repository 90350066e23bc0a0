//! Copying one tenant's rows from one database to another: the engine under `oma tenants
//! move` (online, with the change log of migration 0018) and `oma backup create --tenant`.
//!
//! The tables are found in the database itself (every table with a `tenant_id` column but
//! the router's own), so a table a later migration adds is copied without anyone listing it;
//! a test checks that each such table also carries the fence triggers. Rows move in batches
//! in key order (keyset pagination); inserts skip rows already there, so any step can run
//! again after a crash.

use std::collections::HashSet;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::{Backend, Result, Store, StoreError};

/// Tables with a `tenant_id` that hold routing rather than a tenant's data: they stay in the
/// router database (API keys resolve a tenant before its shard is known).
const ROUTER_TABLES: &[&str] = &[
    "api_keys",
    "shard_pool",
    "tenant_shard",
    "tenant_moves",
    "tenant_fences",
    "tenant_changes",
];

/// Rows per copy batch (bounded by the bind-parameter limits of both backends).
const BATCH_ROWS: usize = 500;
/// Changes replayed per transaction.
const REPLAY_BATCH: i64 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Real,
    Text,
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    kind: Kind,
}

/// One table of tenant data.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    columns: Vec<Column>,
    /// Indexes into `columns` of the primary key, in key order.
    key: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

fn bind(q: Query<'_>, v: Value, kind: Kind) -> Query<'_> {
    match (v, kind) {
        (Value::Int(i), _) => q.bind(i),
        (Value::Real(f), _) => q.bind(f),
        (Value::Text(s), _) => q.bind(s),
        (Value::Null, Kind::Int) => q.bind(None::<i64>),
        (Value::Null, Kind::Real) => q.bind(None::<f64>),
        (Value::Null, Kind::Text) => q.bind(None::<String>),
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl Table {
    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn key_list(&self) -> String {
        self.key
            .iter()
            .map(|&i| quote(&self.columns[i].name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn decode(&self, row: &AnyRow) -> Result<Vec<Value>> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let v = match c.kind {
                    Kind::Int => row.try_get::<Option<i64>, _>(i)?.map(Value::Int),
                    Kind::Real => row.try_get::<Option<f64>, _>(i)?.map(Value::Real),
                    Kind::Text => row.try_get::<Option<String>, _>(i)?.map(Value::Text),
                };
                Ok(v.unwrap_or(Value::Null))
            })
            .collect()
    }

    /// `(k1, k2) = ($n, $n+1)` with placeholders from `first`.
    fn key_match(&self, first: usize) -> String {
        self.key
            .iter()
            .enumerate()
            .map(|(j, &i)| format!("{} = ${}", quote(&self.columns[i].name), first + j))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// A key logged by a fence trigger (a JSON array of the key's values).
    fn parse_key(&self, json: &str) -> Result<Vec<Value>> {
        let values: Vec<serde_json::Value> = serde_json::from_str(json)
            .map_err(|e| StoreError::Corrupt(format!("a logged key of {}: {e}", self.name)))?;
        if values.len() != self.key.len() {
            return Err(StoreError::Corrupt(format!(
                "a logged key of {} has {} parts, the table's key {}",
                self.name,
                values.len(),
                self.key.len()
            )));
        }
        values
            .into_iter()
            .zip(&self.key)
            .map(|(v, &i)| match (v, self.columns[i].kind) {
                (serde_json::Value::Null, _) => Ok(Value::Null),
                (serde_json::Value::Number(n), Kind::Int) => n
                    .as_i64()
                    .map(Value::Int)
                    .ok_or_else(|| StoreError::Corrupt(format!("key {n} of {}", self.name))),
                (serde_json::Value::Number(n), Kind::Real) => {
                    Ok(Value::Real(n.as_f64().unwrap_or(0.0)))
                }
                (serde_json::Value::String(s), Kind::Text) => Ok(Value::Text(s)),
                (serde_json::Value::String(s), Kind::Int) => s
                    .parse()
                    .map(Value::Int)
                    .map_err(|_| StoreError::Corrupt(format!("key {s} of {}", self.name))),
                (other, _) => Err(StoreError::Corrupt(format!(
                    "a logged key part {other} of {} does not match its column",
                    self.name
                ))),
            })
            .collect()
    }

    /// A multi-row insert of `rows` rows; existing keys are skipped, or overwritten if
    /// `overwrite`.
    fn insert_sql(&self, rows: usize, overwrite: bool) -> String {
        let n = self.columns.len();
        let values: Vec<String> = (0..rows)
            .map(|r| {
                let ph: Vec<String> = (1..=n).map(|c| format!("${}", r * n + c)).collect();
                format!("({})", ph.join(", "))
            })
            .collect();
        let tail = if overwrite {
            let sets: Vec<String> = self
                .columns
                .iter()
                .enumerate()
                .filter(|(i, _)| !self.key.contains(i))
                .map(|(_, c)| format!("{0} = excluded.{0}", quote(&c.name)))
                .collect();
            if sets.is_empty() {
                format!("ON CONFLICT ({}) DO NOTHING", self.key_list())
            } else {
                format!(
                    "ON CONFLICT ({}) DO UPDATE SET {}",
                    self.key_list(),
                    sets.join(", ")
                )
            }
        } else {
            "ON CONFLICT DO NOTHING".to_string()
        };
        format!(
            "INSERT INTO {} ({}) VALUES {} {tail}",
            quote(&self.name),
            self.column_list(),
            values.join(", ")
        )
    }

    fn batch_rows(&self) -> usize {
        (30_000 / self.columns.len().max(1)).clamp(1, BATCH_ROWS)
    }
}

fn kind_of(table: &str, column: &str, declared: &str) -> Result<Kind> {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        Ok(Kind::Int)
    } else if t.contains("CHAR") || t.contains("TEXT") || t.contains("JSON") {
        Ok(Kind::Text)
    } else if t.contains("REAL")
        || t.contains("DOUBLE")
        || t.contains("FLOA")
        || t.contains("NUMERIC")
    {
        Ok(Kind::Real)
    } else {
        Err(StoreError::Config(format!(
            "cannot copy {table}.{column}: its type `{declared}` is not one oma copies"
        )))
    }
}

impl Store {
    /// The tables of tenant data in this database, by name.
    pub async fn tenant_tables(&self) -> Result<Vec<Table>> {
        // (table, column, declared type, position in the primary key or 0)
        let cols: Vec<(String, String, String, i64)> = match self.backend() {
            Backend::Sqlite => {
                sqlx::query_as(
                    "SELECT m.name, p.name, p.type, p.pk FROM sqlite_master m, pragma_table_info(m.name) p \
                     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '\\_sqlx%' ESCAPE '\\' \
                     ORDER BY m.name, p.cid",
                )
                .fetch_all(self.reader())
                .await?
            }
            Backend::Postgres => {
                sqlx::query_as(
                    "SELECT c.table_name::text, c.column_name::text, c.data_type::text, \
                       CAST(COALESCE(k.ordinal_position, 0) AS BIGINT) \
                     FROM information_schema.columns c \
                     LEFT JOIN (SELECT kcu.table_name, kcu.column_name, kcu.ordinal_position \
                       FROM information_schema.table_constraints tc \
                       JOIN information_schema.key_column_usage kcu \
                         ON tc.constraint_name = kcu.constraint_name AND tc.table_schema = kcu.table_schema \
                       WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = current_schema()) k \
                       ON k.table_name = c.table_name AND k.column_name = c.column_name \
                     WHERE c.table_schema = current_schema() AND c.table_name NOT LIKE '\\_sqlx%' \
                     ORDER BY c.table_name, c.ordinal_position",
                )
                .fetch_all(self.reader())
                .await?
            }
        };
        let mut tables: Vec<(Table, Vec<(i64, usize)>)> = Vec::new();
        for (table, column, declared, pk) in cols {
            if tables.last().is_none_or(|(t, _)| t.name != table) {
                tables.push((
                    Table {
                        name: table.clone(),
                        columns: Vec::new(),
                        key: Vec::new(),
                    },
                    Vec::new(),
                ));
            }
            let Some((t, key)) = tables.last_mut() else {
                continue;
            };
            if pk > 0 {
                key.push((pk, t.columns.len()));
            }
            t.columns.push(Column {
                kind: kind_of(&table, &column, &declared)?,
                name: column,
            });
        }
        let mut out = Vec::new();
        for (mut t, mut key) in tables {
            if ROUTER_TABLES.contains(&t.name.as_str())
                || !t.columns.iter().any(|c| c.name == "tenant_id")
            {
                continue;
            }
            if key.is_empty() {
                return Err(StoreError::Config(format!(
                    "table {} has no primary key, so its rows cannot be copied",
                    t.name
                )));
            }
            key.sort();
            t.key = key.into_iter().map(|(_, i)| i).collect();
            out.push(t);
        }
        self.order_by_references(out).await
    }

    /// `tables` with every table after the tables its foreign keys reference (by name
    /// otherwise): copies insert parents first (`vaults` before `vault_credentials`), and
    /// deletes, which walk the list backwards, remove children first.
    async fn order_by_references(&self, tables: Vec<Table>) -> Result<Vec<Table>> {
        let edges: Vec<(String, String)> = match self.backend() {
            Backend::Sqlite => {
                sqlx::query_as(
                    "SELECT m.name, f.\"table\" FROM sqlite_master m, pragma_foreign_key_list(m.name) f \
                     WHERE m.type = 'table'",
                )
                .fetch_all(self.reader())
                .await?
            }
            Backend::Postgres => {
                sqlx::query_as(
                    "SELECT DISTINCT tc.table_name::text, ccu.table_name::text \
                     FROM information_schema.table_constraints tc \
                     JOIN information_schema.constraint_column_usage ccu \
                       ON tc.constraint_name = ccu.constraint_name AND tc.table_schema = ccu.table_schema \
                     WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema()",
                )
                .fetch_all(self.reader())
                .await?
            }
        };
        let names: HashSet<String> = tables.iter().map(|t| t.name.clone()).collect();
        let mut left = tables;
        let mut out: Vec<Table> = Vec::with_capacity(left.len());
        while !left.is_empty() {
            let placed: HashSet<&str> = out.iter().map(|t| t.name.as_str()).collect();
            let ready = left.iter().position(|t| {
                edges.iter().all(|(child, parent)| {
                    child != &t.name
                        || parent == &t.name
                        || !names.contains(parent)
                        || placed.contains(parent.as_str())
                })
            });
            // A cycle (none in oma's schema) keeps the remaining tables by name.
            let i = ready.unwrap_or(0);
            out.push(left.remove(i));
        }
        Ok(out)
    }

    /// How many rows of `tenant` each of `tables` holds here.
    pub async fn count_tenant_rows(&self, tenant: &str, tables: &[Table]) -> Result<Vec<i64>> {
        let mut out = Vec::with_capacity(tables.len());
        for t in tables {
            let sql = format!(
                "SELECT COUNT(*) FROM {} WHERE tenant_id = $1",
                quote(&t.name)
            );
            out.push(
                sqlx::query_scalar(AssertSqlSafe(sql))
                    .bind(tenant)
                    .fetch_one(self.reader())
                    .await?,
            );
        }
        Ok(out)
    }

    /// Deletes every row of `tenant` from `tables` here, in batches (an aborted move's partial
    /// copy; the old copy after a move, see [`TenantCopy::purge_source`]).
    pub async fn delete_tenant_rows(&self, tenant: &str, tables: &[Table]) -> Result<u64> {
        let mut deleted = 0;
        // Children before the tables they reference.
        for t in tables.iter().rev() {
            loop {
                let n = self.delete_batch(tenant, t, false).await?;
                deleted += n;
                if n == 0 {
                    break;
                }
            }
        }
        Ok(deleted)
    }

    /// Deletes up to a batch of `tenant`'s rows of `t`. `past_fence`: the tenant is fenced
    /// here as `moved`, and the batch goes in the one transaction that may write past it.
    async fn delete_batch(&self, tenant: &str, t: &Table, past_fence: bool) -> Result<u64> {
        let keys = t.key_list();
        let sql = format!(
            "DELETE FROM {0} WHERE ({1}) IN (SELECT {1} FROM {0} WHERE tenant_id = $1 LIMIT {2})",
            quote(&t.name),
            keys,
            t.batch_rows() * 4
        );
        let mut tx = self.writer().begin().await?;
        if past_fence {
            sqlx::query("UPDATE tenant_fences SET phase = 'purging' WHERE tenant_id = $1")
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
        }
        let n = sqlx::query(AssertSqlSafe(sql))
            .bind(tenant)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if past_fence {
            sqlx::query("UPDATE tenant_fences SET phase = 'moved' WHERE tenant_id = $1")
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(n)
    }
}

/// Reads a batch of `tenant`'s rows of `t` after `after` (a key), in key order.
async fn read_batch(
    conn: &mut AnyConnection,
    t: &Table,
    tenant: &str,
    after: Option<&[Value]>,
) -> Result<Vec<Vec<Value>>> {
    let limit = t.batch_rows();
    let sql = match after {
        None => format!(
            "SELECT {} FROM {} WHERE tenant_id = $1 ORDER BY {} LIMIT {limit}",
            t.column_list(),
            quote(&t.name),
            t.key_list()
        ),
        Some(_) => {
            let ph: Vec<String> = (0..t.key.len()).map(|j| format!("${}", j + 2)).collect();
            format!(
                "SELECT {} FROM {} WHERE tenant_id = $1 AND ({}) > ({}) ORDER BY {} LIMIT {limit}",
                t.column_list(),
                quote(&t.name),
                t.key_list(),
                ph.join(", "),
                t.key_list()
            )
        }
    };
    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(tenant.to_string());
    if let Some(after) = after {
        for (v, &i) in after.iter().zip(&t.key) {
            q = bind(q, v.clone(), t.columns[i].kind);
        }
    }
    let rows = q.fetch_all(&mut *conn).await?;
    rows.iter().map(|r| t.decode(r)).collect()
}

/// The rows of `t` with the given keys (those that exist).
async fn read_by_keys(
    conn: &mut AnyConnection,
    t: &Table,
    keys: &[Vec<Value>],
) -> Result<Vec<Vec<Value>>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let width = t.key.len();
    let tuples: Vec<String> = (0..keys.len())
        .map(|r| {
            let ph: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", ph.join(", "))
        })
        .collect();
    let sql = if width == 1 {
        let ph: Vec<String> = (1..=keys.len()).map(|c| format!("${c}")).collect();
        format!(
            "SELECT {} FROM {} WHERE {} IN ({})",
            t.column_list(),
            quote(&t.name),
            t.key_list(),
            ph.join(", ")
        )
    } else {
        format!(
            "SELECT {} FROM {} WHERE ({}) IN (VALUES {})",
            t.column_list(),
            quote(&t.name),
            t.key_list(),
            tuples.join(", ")
        )
    };
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for key in keys {
        for (v, &i) in key.iter().zip(&t.key) {
            q = bind(q, v.clone(), t.columns[i].kind);
        }
    }
    let rows = q.fetch_all(&mut *conn).await?;
    rows.iter().map(|r| t.decode(r)).collect()
}

/// Writes `rows` of `t` (skipping keys already there, or overwriting them).
async fn write_rows(
    conn: &mut AnyConnection,
    t: &Table,
    rows: Vec<Vec<Value>>,
    overwrite: bool,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = t.insert_sql(rows.len(), overwrite);
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for row in rows {
        for (v, c) in row.into_iter().zip(&t.columns) {
            q = bind(q, v, c.kind);
        }
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

/// A copy of one tenant's rows from `from` to `to`.
pub struct TenantCopy<'a> {
    pub from: &'a Store,
    pub to: &'a Store,
    pub tenant: &'a str,
    pub tables: Vec<Table>,
}

impl<'a> TenantCopy<'a> {
    /// Prepares a copy; both databases must be at the same schema version.
    pub async fn new(from: &'a Store, to: &'a Store, tenant: &'a str) -> Result<Self> {
        let (a, b) = (from.migration_status().await?, to.migration_status().await?);
        if a.applied.last().map(|m| m.version) != b.applied.last().map(|m| m.version)
            || !a.pending.is_empty()
            || !b.pending.is_empty()
        {
            return Err(StoreError::Config(format!(
                "{} and {} are not at the same schema version: run `oma migrate up` first",
                from.url_redacted(),
                to.url_redacted()
            )));
        }
        let tables = from.tenant_tables().await?;
        let theirs: HashSet<String> = to
            .tenant_tables()
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        if let Some(t) = tables.iter().find(|t| !theirs.contains(&t.name)) {
            return Err(StoreError::Config(format!(
                "{} has no table {}: run `oma migrate up` on it",
                to.url_redacted(),
                t.name
            )));
        }
        Ok(Self {
            from,
            to,
            tenant,
            tables,
        })
    }

    /// Rows of the tenant in the source, in all.
    pub async fn source_rows(&self) -> Result<i64> {
        Ok(self
            .from
            .count_tenant_rows(self.tenant, &self.tables)
            .await?
            .iter()
            .sum())
    }

    /// Copies every row of the tenant that the target lacks, table by table, reading through
    /// `read` (a connection of the source: a backup passes one inside a snapshot transaction).
    /// `progress` hears the rows copied so far.
    pub async fn copy_all(
        &self,
        read: Option<&mut AnyConnection>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        let mut own;
        let read = match read {
            Some(c) => c,
            None => {
                own = self.from.reader().acquire().await?;
                &mut *own
            }
        };
        let mut copied = 0u64;
        for t in &self.tables {
            let mut after: Option<Vec<Value>> = None;
            loop {
                let rows = read_batch(read, t, self.tenant, after.as_deref()).await?;
                let Some(last) = rows.last() else {
                    break;
                };
                after = Some(t.key.iter().map(|&i| last[i].clone()).collect());
                let n = rows.len();
                let mut w = self.to.writer().acquire().await?;
                write_rows(&mut w, t, rows, false).await?;
                copied += n as u64;
                progress(copied);
                if n < t.batch_rows() {
                    break;
                }
            }
        }
        Ok(copied)
    }

    /// Changes logged on the source (by the fence triggers) and not replayed yet.
    pub async fn pending_changes(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM tenant_changes WHERE tenant_id = $1")
                .bind(self.tenant)
                .fetch_one(self.from.reader())
                .await?,
        )
    }

    /// Replays a batch of logged changes onto the target: each changed key's row as the
    /// source has it now (or its deletion). Returns how many log entries it consumed; 0 when
    /// the log is empty.
    pub async fn replay_changes(&self) -> Result<usize> {
        let log: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT id, tbl, pk FROM tenant_changes WHERE tenant_id = $1 ORDER BY id LIMIT $2",
        )
        .bind(self.tenant)
        .bind(REPLAY_BATCH)
        .fetch_all(self.from.reader())
        .await?;
        if log.is_empty() {
            return Ok(0);
        }
        // The distinct keys changed, by table, in the tables' (foreign-key) order.
        let mut seen = HashSet::new();
        let mut changed: Vec<Vec<Vec<Value>>> = vec![Vec::new(); self.tables.len()];
        for (_, tbl, pk) in &log {
            if !seen.insert((tbl.as_str(), pk.as_str())) {
                continue;
            }
            let Some(i) = self.tables.iter().position(|t| &t.name == tbl) else {
                return Err(StoreError::Corrupt(format!(
                    "a change of an unknown table {tbl}"
                )));
            };
            changed[i].push(self.tables[i].parse_key(pk)?);
        }
        // Each table's rows as the source has them now, a batch of keys per query; a key
        // the source no longer has was deleted there.
        let mut w = self.to.writer().begin().await?;
        let mut r = self.from.reader().acquire().await?;
        let mut gone: Vec<(usize, Vec<Vec<Value>>)> = Vec::new();
        for (i, keys) in changed.iter().enumerate() {
            let t = &self.tables[i];
            for chunk in keys.chunks(t.batch_rows().min(200)) {
                let rows = read_by_keys(&mut r, t, chunk).await?;
                let found: HashSet<String> = rows
                    .iter()
                    .map(|row| format!("{:?}", t.key.iter().map(|&k| &row[k]).collect::<Vec<_>>()))
                    .collect();
                let missing: Vec<Vec<Value>> = chunk
                    .iter()
                    .filter(|k| !found.contains(&format!("{:?}", k.iter().collect::<Vec<_>>())))
                    .cloned()
                    .collect();
                write_rows(&mut w, t, rows, true).await?;
                if !missing.is_empty() {
                    gone.push((i, missing));
                }
            }
        }
        // Deletions go children first.
        for (i, keys) in gone.into_iter().rev() {
            let t = &self.tables[i];
            for key in keys {
                let sql = format!("DELETE FROM {} WHERE {}", quote(&t.name), t.key_match(1));
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for (v, &k) in key.into_iter().zip(&t.key) {
                    q = bind(q, v, t.columns[k].kind);
                }
                q.execute(&mut *w).await?;
            }
        }
        w.commit().await?;
        // Exactly the entries replayed go: one a slower writer logged with a smaller id
        // but committed later is still there for the next batch.
        let ids: Vec<i64> = log.iter().map(|(id, _, _)| *id).collect();
        let list = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
        let sql = match self.from.backend() {
            Backend::Sqlite => {
                "DELETE FROM tenant_changes WHERE id IN (SELECT value FROM json_each($1))"
            }
            Backend::Postgres => {
                "DELETE FROM tenant_changes WHERE id IN \
                 (SELECT CAST(jsonb_array_elements_text(CAST($1 AS jsonb)) AS BIGINT))"
            }
        };
        sqlx::query(sql)
            .bind(list)
            .execute(self.from.writer())
            .await?;
        Ok(log.len())
    }

    /// Tables whose row counts differ between source and target: `(table, source, target)`.
    pub async fn differences(&self) -> Result<Vec<(String, i64, i64)>> {
        let a = self
            .from
            .count_tenant_rows(self.tenant, &self.tables)
            .await?;
        let b = self.to.count_tenant_rows(self.tenant, &self.tables).await?;
        Ok(self
            .tables
            .iter()
            .zip(a.into_iter().zip(b))
            .filter(|(_, (a, b))| a != b)
            .map(|(t, (a, b))| (t.name.clone(), a, b))
            .collect())
    }

    /// Deletes the old copy from the source, which is fenced as `moved` (and stays so: a
    /// node with stale routing that writes there is refused and re-routes).
    pub async fn purge_source(&self, progress: &mut dyn FnMut(u64)) -> Result<u64> {
        let mut deleted = 0;
        for t in self.tables.iter().rev() {
            loop {
                let n = self.from.delete_batch(self.tenant, t, true).await?;
                deleted += n;
                progress(deleted);
                if n == 0 {
                    break;
                }
            }
        }
        sqlx::query("DELETE FROM tenant_changes WHERE tenant_id = $1")
            .bind(self.tenant)
            .execute(self.from.writer())
            .await?;
        Ok(deleted)
    }
}
