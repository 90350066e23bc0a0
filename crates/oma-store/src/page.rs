//! Keyset pagination shared by every list: rows are ordered by `(sort key, id)` and a cursor
//! names the last row returned, so a page costs one index range scan however deep it is.

use oma_core::cursor::Cursor;

/// What a list request asks for after validation at the edge.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub limit: i64,
    pub desc: bool,
    pub after: Option<Cursor>,
}

impl ListQuery {
    pub fn new(limit: i64, desc: bool, after: Option<Cursor>) -> Self {
        // A cursor carries its own direction: following it keeps the order it was made in.
        let desc = after.as_ref().map_or(desc, |c| c.desc);
        Self { limit, desc, after }
    }

    /// SQL fragment (with `$k` and `$k+1` placeholders for the cursor key and id) restricting
    /// rows to those after the cursor, or `TRUE`/empty when there is none. `key_col`/`id_col`
    /// are trusted column names.
    pub fn after_clause(&self, key_col: &str, id_col: &str, first_param: usize) -> String {
        if self.after.is_none() {
            return "1 = 1".to_string();
        }
        let (k, i) = (first_param, first_param + 1);
        let op = if self.desc { '<' } else { '>' };
        format!("({key_col} {op} ${k} OR ({key_col} = ${k} AND {id_col} {op} ${i}))")
    }

    pub fn order_clause(&self, key_col: &str, id_col: &str) -> String {
        let dir = if self.desc { "DESC" } else { "ASC" };
        format!("ORDER BY {key_col} {dir}, {id_col} {dir}")
    }

    /// The cursor's bind values (zeros when there is no cursor; they are then unused).
    pub fn after_binds(&self) -> (i64, String) {
        match &self.after {
            Some(c) => (c.key, c.id.clone()),
            None => (0, String::new()),
        }
    }

    /// `LIMIT` to ask the database for: one more than the page, to know whether more follow.
    pub fn fetch_limit(&self) -> i64 {
        self.limit + 1
    }
}

/// A page of stored JSON bodies and the cursor of the next page.
#[derive(Debug, Clone, Default)]
pub struct Listed {
    pub items: Vec<String>,
    pub next: Option<Cursor>,
}

impl Listed {
    /// Builds a page from `(sort key, id, body)` rows fetched with `fetch_limit()`.
    pub fn from_rows(q: &ListQuery, mut rows: Vec<(i64, String, String)>) -> Self {
        let more = rows.len() as i64 > q.limit;
        rows.truncate(q.limit.max(0) as usize);
        let next = if more {
            rows.last().map(|(key, id, _)| Cursor {
                key: *key,
                id: id.clone(),
                desc: q.desc,
            })
        } else {
            None
        };
        Listed {
            items: rows.into_iter().map(|(_, _, body)| body).collect(),
            next,
        }
    }
}
