//! Group commit of new rows: one writer task takes the rows that many requests insert
//! meanwhile (a new agent and its first version, say) and writes them with one multi-row
//! `INSERT` per table, in one transaction.
//!
//! Why: creating an object was `BEGIN`, an `INSERT` per table and `COMMIT`, each a round trip
//! to SQLite's one writer connection, and concurrent creates queued behind each other. A batch
//! pays the transaction once and each table's statement once.
//!
//! What it keeps:
//! - a request's rows are all or nothing, and only its own error reaches it: should any
//!   statement of a batch fail (a fenced tenant, a constraint), the batch is rolled back and
//!   each request's rows are written again in a transaction of their own;
//! - a request hears of its rows after they committed, never before;
//! - tables are written in the order a request names them (parents before children).
//!
//! With `OMA_GROUP_COMMIT=off`, or once the writer task is gone, each request's rows are a
//! transaction of their own.

use tokio::sync::{mpsc, oneshot};

use crate::{Result, Store, StoreError};

/// Requests one batch takes at most (the statement's variables stay far below SQLite's
/// limit: 64 requests × a few rows × a few columns).
const MAX_BATCH: usize = 64;
const QUEUE: usize = 1024;

/// A value to bind.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Text(String),
    Int(i64),
}

impl From<String> for Val {
    fn from(s: String) -> Self {
        Val::Text(s)
    }
}
impl From<&str> for Val {
    fn from(s: &str) -> Self {
        Val::Text(s.to_string())
    }
}
impl From<i64> for Val {
    fn from(i: i64) -> Self {
        Val::Int(i)
    }
}

/// One new row: its table, its columns (`"(a, b, c)"`, the same text for every row of the
/// table) and its values, one per column.
#[derive(Debug, Clone)]
pub(crate) struct NewRow {
    pub table: &'static str,
    pub columns: &'static str,
    pub values: Vec<Val>,
}

pub(crate) struct Job {
    rows: Vec<NewRow>,
    reply: oneshot::Sender<Result<()>>,
}

pub(crate) type Inserter = mpsc::Sender<Job>;

pub(crate) fn start(store: Store) -> Inserter {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(write(store, rx));
    tx
}

async fn write(store: Store, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs = std::mem::take(&mut batch);
        if jobs.len() == 1 {
            for job in jobs {
                let r = insert_alone(&store, &job.rows).await;
                let _ = job.reply.send(r);
            }
            continue;
        }
        let all: Vec<&NewRow> = jobs.iter().flat_map(|j| j.rows.iter()).collect();
        match insert(&store, &all).await {
            Ok(()) => {
                for job in jobs {
                    let _ = job.reply.send(Ok(()));
                }
            }
            Err(_) => {
                // One request's rows failed the batch: each request on its own, so that the
                // error reaches only the request it belongs to.
                for job in jobs {
                    let r = insert_alone(&store, &job.rows).await;
                    let _ = job.reply.send(r);
                }
            }
        }
    }
}

async fn insert_alone(store: &Store, rows: &[NewRow]) -> Result<()> {
    let rows: Vec<&NewRow> = rows.iter().collect();
    insert(store, &rows).await
}

/// All of `rows` in one transaction, one statement per table (in the order tables first
/// appear).
async fn insert(store: &Store, rows: &[&NewRow]) -> Result<()> {
    let mut tables: Vec<(&'static str, &'static str, Vec<&NewRow>)> = Vec::new();
    for row in rows {
        match tables
            .iter_mut()
            .find(|(t, c, _)| *t == row.table && *c == row.columns)
        {
            Some((_, _, group)) => group.push(row),
            None => tables.push((row.table, row.columns, vec![row])),
        }
    }
    let mut tx = store.writer().begin().await?;
    for (table, columns, group) in &tables {
        // Only the code's own table and column names, and numbered placeholders.
        let sql = statement(table, columns, group)?;
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in group {
            for v in &row.values {
                q = match v {
                    Val::Text(s) => q.bind(s.clone()),
                    Val::Int(i) => q.bind(*i),
                };
            }
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// `INSERT INTO table columns VALUES ($1, $2), ($3, $4), …`.
fn statement(table: &str, columns: &str, rows: &[&NewRow]) -> Result<String> {
    use std::fmt::Write;
    let arity = rows.first().map_or(0, |r| r.values.len());
    if rows.iter().any(|r| r.values.len() != arity) || arity == 0 {
        return Err(StoreError::Corrupt(format!(
            "rows for {table} with differing numbers of values"
        )));
    }
    let mut sql = format!("INSERT INTO {table} {columns} VALUES ");
    let mut n = 0;
    for (i, _) in rows.iter().enumerate() {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        for j in 0..arity {
            n += 1;
            let _ = write!(sql, "{}${n}", if j == 0 { "" } else { ", " });
        }
        sql.push(')');
    }
    Ok(sql)
}

impl Store {
    /// Inserts `rows` (one request's new object) atomically, grouped with other requests'
    /// rows (see the module).
    pub(crate) async fn insert_rows(&self, rows: Vec<NewRow>) -> Result<()> {
        let Some(inserter) = self.inserter() else {
            return insert_alone(self, &rows).await;
        };
        let (reply, answer) = oneshot::channel();
        match inserter.send(Job { rows, reply }).await {
            Ok(()) => answer
                .await
                .unwrap_or_else(|_| Err(StoreError::Aborted("the writer task stopped".into()))),
            // The writer task is gone (its runtime stopped): on our own.
            Err(mpsc::error::SendError(job)) => insert_alone(self, &job.rows).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_numbers_every_value() {
        let row = |id: &str| NewRow {
            table: "t",
            columns: "(a, b)",
            values: vec![id.into(), Val::Int(1)],
        };
        let (a, b) = (row("x"), row("y"));
        assert_eq!(
            statement("t", "(a, b)", &[&a, &b]).unwrap(),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
        let odd = NewRow {
            values: vec![Val::Int(1)],
            ..row("z")
        };
        assert!(statement("t", "(a, b)", &[&a, &odd]).is_err());
    }
}
