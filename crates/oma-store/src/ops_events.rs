//! Storage: operational events (the analytics dataset behind `oma events query` and the
//! admin API).
//!
//! Rows are written in batches (one transaction, multi-row `INSERT`s) by the ops recorder,
//! never on a request's path. Queries filter on the indexed columns (`kind`, `at`) first and on
//! the kind's attributes (`fields`, a JSON object) second. Attribute names reach SQL only after
//! [`valid_name`] accepted them; every value is a bind parameter.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::AssertSqlSafe;
use sqlx::any::AnyArguments;
use sqlx::query::{Query, QueryAs};

use crate::{Backend, Result, Store, StoreError, from_json, to_json};

/// The id prefix of an operational event.
pub const ID_PREFIX: &str = "opev";

/// Rows per `INSERT` statement (8 parameters each stays far below both backends' limits).
const INSERT_CHUNK: usize = 100;

/// One operational event as the recorder hands it over (and as a query returns it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpsEvent {
    pub id: String,
    /// Microseconds since the Unix epoch.
    pub at: i64,
    pub kind: String,
    pub tenant_id: Option<String>,
    pub session_id: Option<String>,
    /// `ok`, `error`, `denied`, … (what the kind defines).
    pub outcome: String,
    pub duration_ms: Option<i64>,
    /// The kind's attributes.
    pub fields: Map<String, Value>,
}

/// What to select. Every filter is optional; filters combine with AND.
#[derive(Debug, Clone, Default)]
pub struct OpsFilter {
    pub kinds: Vec<String>,
    /// Inclusive lower bound of `at` (µs).
    pub since: Option<i64>,
    /// Exclusive upper bound of `at` (µs).
    pub until: Option<i64>,
    pub tenant: Option<String>,
    pub session: Option<String>,
    /// `name = value` on a column (`kind`, `outcome`, `tenant`, `session`) or an attribute.
    pub equals: Vec<(String, String)>,
}

/// A page of rows, newest first. `after` is the `(at, id)` of the previous page's last row.
#[derive(Debug, Clone)]
pub struct OpsPage {
    pub limit: i64,
    pub after: Option<(i64, String)>,
}

/// One group of a group-by query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpsGroup {
    /// The group's values, in the order the keys were given (`None` where absent).
    pub values: Vec<Option<String>>,
    pub count: i64,
    /// Mean `duration_ms` of the group's events that have one.
    pub avg_duration_ms: Option<f64>,
}

/// Whether `name` may name a column or attribute (it is spliced into SQL).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !name.starts_with('.')
        && !name.ends_with('.')
}

fn invalid_name(name: &str) -> StoreError {
    StoreError::Domain(oma_core::Error::invalid(format!(
        "`{name}` is not a valid field name (letters, digits, `_` and `.` only)"
    )))
}

/// The SQL expression for a filter or group key: a column, or a text-valued attribute.
fn expr(backend: Backend, name: &str) -> Result<String> {
    Ok(match name {
        "kind" => "kind".into(),
        "outcome" => "outcome".into(),
        "tenant" | "tenant_id" => "tenant_id".into(),
        "session" | "session_id" => "session_id".into(),
        "duration_ms" => "CAST(duration_ms AS TEXT)".into(),
        _ if !valid_name(name) => return Err(invalid_name(name)),
        _ => match backend {
            // `->>` yields text on PostgreSQL; SQLite's json_extract yields the JSON type,
            // so it is cast for comparisons with text parameters to behave the same.
            Backend::Sqlite => format!("CAST(json_extract(fields, '$.{name}') AS TEXT)"),
            Backend::Postgres => {
                let path = name.replace('.', ",");
                format!("(fields::jsonb #>> '{{{path}}}')")
            }
        },
    })
}

/// A WHERE clause and its text binds (numbers are bound separately by the caller: `$1`/`$2`
/// are `since`/`until`).
struct Where {
    sql: String,
    texts: Vec<String>,
}

fn where_clause(backend: Backend, f: &OpsFilter, first_param: usize) -> Result<Where> {
    let mut sql = String::from("at >= $1 AND at < $2");
    let mut texts: Vec<String> = Vec::new();
    if !f.kinds.is_empty() {
        let list: Vec<String> = (0..f.kinds.len())
            .map(|i| format!("${}", first_param + i))
            .collect();
        sql.push_str(&format!(" AND kind IN ({})", list.join(", ")));
        texts.extend(f.kinds.iter().cloned());
    }
    let mut equals: Vec<(String, &str)> = Vec::new();
    if let Some(t) = &f.tenant {
        equals.push(("tenant_id".into(), t));
    }
    if let Some(s) = &f.session {
        equals.push(("session_id".into(), s));
    }
    for (name, value) in &f.equals {
        equals.push((expr(backend, name)?, value));
    }
    for (col, value) in equals {
        sql.push_str(&format!(" AND {col} = ${}", first_param + texts.len()));
        texts.push(value.to_string());
    }
    Ok(Where { sql, texts })
}

fn bounds(f: &OpsFilter) -> (i64, i64) {
    (f.since.unwrap_or(i64::MIN), f.until.unwrap_or(i64::MAX))
}

fn bind_texts<'q>(
    mut q: Query<'q, sqlx::Any, AnyArguments>,
    texts: &'q [String],
) -> Query<'q, sqlx::Any, AnyArguments> {
    for t in texts {
        q = q.bind(t);
    }
    q
}

fn bind_texts_as<'q, O>(
    mut q: QueryAs<'q, sqlx::Any, O, AnyArguments>,
    texts: &'q [String],
) -> QueryAs<'q, sqlx::Any, O, AnyArguments> {
    for t in texts {
        q = q.bind(t);
    }
    q
}

type Row = (
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<i64>,
    String,
);

impl Store {
    /// Writes `events` in one transaction.
    pub async fn insert_ops_events(&self, events: &[OpsEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer().begin().await?;
        for chunk in events.chunks(INSERT_CHUNK) {
            let mut sql = String::from(
                "INSERT INTO ops_events \
                 (id, at, kind, tenant_id, session_id, outcome, duration_ms, fields) VALUES ",
            );
            for i in 0..chunk.len() {
                let b = i * 8;
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7,
                    b + 8
                ));
            }
            let fields = chunk
                .iter()
                .map(|e| to_json(&e.fields))
                .collect::<Result<Vec<_>>>()?;
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (e, f) in chunk.iter().zip(&fields) {
                q = q
                    .bind(&e.id)
                    .bind(e.at)
                    .bind(&e.kind)
                    .bind(&e.tenant_id)
                    .bind(&e.session_id)
                    .bind(&e.outcome)
                    .bind(e.duration_ms)
                    .bind(f);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Events matching `filter`, newest first, one page. The second value is whether more
    /// follow.
    pub async fn query_ops_events(
        &self,
        filter: &OpsFilter,
        page: &OpsPage,
    ) -> Result<(Vec<OpsEvent>, bool)> {
        let w = where_clause(self.backend(), filter, 3)?;
        let n = 3 + w.texts.len();
        let after = match page.after {
            Some(_) => format!(" AND (at < ${n} OR (at = ${n} AND id < ${}))", n + 1),
            None => String::new(),
        };
        let limit_param = if page.after.is_some() { n + 2 } else { n };
        let sql = format!(
            "SELECT id, at, kind, tenant_id, session_id, outcome, duration_ms, fields \
             FROM ops_events WHERE {}{after} ORDER BY at DESC, id DESC LIMIT ${limit_param}",
            w.sql
        );
        let (since, until) = bounds(filter);
        let mut q = sqlx::query_as::<_, Row>(AssertSqlSafe(sql))
            .bind(since)
            .bind(until);
        q = bind_texts_as(q, &w.texts);
        if let Some((at, id)) = &page.after {
            q = q.bind(*at).bind(id.clone());
        }
        let mut rows = q
            .bind(page.limit.saturating_add(1))
            .fetch_all(self.reader())
            .await?;
        let more = rows.len() as i64 > page.limit;
        rows.truncate(page.limit.max(0) as usize);
        let events = rows
            .into_iter()
            .map(
                |(id, at, kind, tenant_id, session_id, outcome, duration_ms, fields)| {
                    Ok(OpsEvent {
                        id,
                        at,
                        kind,
                        tenant_id,
                        session_id,
                        outcome,
                        duration_ms,
                        fields: from_json(&fields)?,
                    })
                },
            )
            .collect::<Result<Vec<_>>>()?;
        Ok((events, more))
    }

    /// Counts of the events matching `filter`, grouped by `keys` (columns or attributes),
    /// largest groups first. No keys: one group with the total.
    pub async fn group_ops_events(
        &self,
        filter: &OpsFilter,
        keys: &[String],
        limit: i64,
    ) -> Result<Vec<OpsGroup>> {
        let backend = self.backend();
        let w = where_clause(backend, filter, 3)?;
        let exprs = keys
            .iter()
            .map(|k| expr(backend, k))
            .collect::<Result<Vec<_>>>()?;
        let select: String = exprs
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{e} AS g{i}, "))
            .collect();
        let group_by = if exprs.is_empty() {
            String::new()
        } else {
            let cols: Vec<String> = (0..exprs.len()).map(|i| format!("g{i}")).collect();
            format!(" GROUP BY {}", cols.join(", "))
        };
        let limit_param = 3 + w.texts.len();
        let sql = format!(
            "SELECT {select}COUNT(*) AS n, CAST(AVG(duration_ms) AS DOUBLE PRECISION) AS d \
             FROM ops_events WHERE {}{group_by} ORDER BY n DESC LIMIT ${limit_param}",
            w.sql
        );
        let (since, until) = bounds(filter);
        let q = sqlx::query(AssertSqlSafe(sql)).bind(since).bind(until);
        let rows = bind_texts(q, &w.texts)
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        use sqlx::Row as _;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut values = Vec::with_capacity(keys.len());
            for i in 0..keys.len() {
                values.push(row.try_get::<Option<String>, _>(i)?);
            }
            let count: i64 = row.try_get(keys.len())?;
            let avg: Option<f64> = row.try_get(keys.len() + 1)?;
            out.push(OpsGroup {
                values,
                count,
                avg_duration_ms: avg,
            });
        }
        Ok(out)
    }
}

impl crate::TenantRouter {
    /// The shards an ops query must read: the tenant's own when the filter names one.
    fn ops_shards(&self, filter: &OpsFilter) -> Vec<std::sync::Arc<Store>> {
        match &filter.tenant {
            Some(t) => vec![self.store_for(t)],
            None => self.shards().into_iter().map(|s| s.store).collect(),
        }
    }

    /// [`Store::query_ops_events`] over every shard: the pages are merged in the same order
    /// (`at`, then `id`, newest first), so the cursor works across shards.
    pub async fn query_ops_events(
        &self,
        filter: &OpsFilter,
        page: &OpsPage,
    ) -> Result<(Vec<OpsEvent>, bool)> {
        let mut rows = Vec::new();
        let mut more = false;
        for store in self.ops_shards(filter) {
            let (r, m) = store.query_ops_events(filter, page).await?;
            rows.extend(r);
            more |= m;
        }
        rows.sort_by(|a, b| (b.at, &b.id).cmp(&(a.at, &a.id)));
        let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
        if rows.len() > limit {
            rows.truncate(limit);
            more = true;
        }
        Ok((rows, more))
    }

    /// [`Store::group_ops_events`] over every shard: counts add up, means are weighted.
    pub async fn group_ops_events(
        &self,
        filter: &OpsFilter,
        keys: &[String],
        limit: i64,
    ) -> Result<Vec<OpsGroup>> {
        let mut groups: Vec<(OpsGroup, f64, i64)> = Vec::new();
        for store in self.ops_shards(filter) {
            // Every shard's groups, not its top `limit`: a group may rank differently on each.
            for g in store.group_ops_events(filter, keys, i64::MAX / 2).await? {
                let weight = if g.avg_duration_ms.is_some() {
                    g.count
                } else {
                    0
                };
                let sum = g.avg_duration_ms.unwrap_or(0.0) * weight as f64;
                match groups.iter_mut().find(|(x, _, _)| x.values == g.values) {
                    Some((x, s, w)) => {
                        x.count += g.count;
                        *s += sum;
                        *w += weight;
                    }
                    None => groups.push((g, sum, weight)),
                }
            }
        }
        let mut out: Vec<OpsGroup> = groups
            .into_iter()
            .map(|(mut g, sum, weight)| {
                g.avg_duration_ms = (weight > 0).then(|| sum / weight as f64);
                g
            })
            .collect();
        out.sort_by_key(|g| std::cmp::Reverse(g.count));
        out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("tool"));
        assert!(valid_name("http.status"));
        assert!(!valid_name("a'b"));
        assert!(!valid_name(""));
        assert!(!valid_name(".x"));
        assert!(expr(Backend::Sqlite, "x') OR 1=1 --").is_err());
        assert_eq!(expr(Backend::Postgres, "outcome").unwrap(), "outcome");
        assert_eq!(
            expr(Backend::Postgres, "a.b").unwrap(),
            "(fields::jsonb #>> '{a,b}')"
        );
    }
}
