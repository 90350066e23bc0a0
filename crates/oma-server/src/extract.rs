//! Extractors and responders whose failures are envelopes, not axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use oma_core::Error;
use oma_core::cursor::Cursor;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Default cap on JSON request bodies. Larger uploads (files, skills) set their own limits.
pub const JSON_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// A JSON body parsed into `T`. An empty body counts as `{}` because the SDK sends action
/// POSTs (archive, …) with `Content-Length: 0`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses a JSON body with a precise error message.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    // Every request body of this API is an object. Checking up front also stops serde from
    // accepting a JSON array as a struct (it maps arrays onto fields by position).
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError(Error::invalid(
            "the request body must be a JSON object",
        )));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() {
            "malformed JSON body"
        } else {
            "invalid request body"
        };
        ApiError(Error::invalid(format!("{what}: {e}")))
    })
}

/// Maps a body read failure: too large → 413, anything else → 400.
pub fn body_error(e: axum::extract::rejection::BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError(Error::too_large(format!(
            "request body is larger than the limit: {e}"
        )))
    } else {
        ApiError(Error::invalid(format!(
            "could not read the request body: {e}"
        )))
    }
}

/// The query string as ordered pairs. Array parameters arrive as `name[]=a&name[]=b` (the
/// SDK's encoding) or as a repeated `name=`; both are accepted.
#[derive(Debug, Default, Clone)]
pub struct QueryMap(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        Ok(QueryMap(
            form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
        ))
    }
}

impl QueryMap {
    pub fn parse(q: &str) -> Self {
        QueryMap(form_urlencoded::parse(q.as_bytes()).into_owned().collect())
    }

    /// The last value of a scalar parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of an array parameter (`name[]` and `name`).
    pub fn get_all(&self, name: &str) -> Vec<String> {
        let bracket = format!("{name}[]");
        self.0
            .iter()
            .filter(|(k, _)| *k == bracket || k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some("true") | Some("1") => Ok(Some(true)),
            Some("false") | Some("0") => Ok(Some(false)),
            Some(v) => Err(invalid(format!(
                "`{name}` must be true or false, got `{v}`"
            ))),
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| invalid(format!("`{name}` must be an integer, got `{v}`"))),
        }
    }

    /// `limit` within `1..=max`, `default` when absent.
    pub fn limit(&self, default: i64, max: i64) -> Result<i64, ApiError> {
        match self.int("limit")? {
            None => Ok(default),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(n) => Err(invalid(format!(
                "`limit` must be between 1 and {max}, got {n}"
            ))),
        }
    }

    /// The decoded `page` cursor, if any.
    pub fn cursor(&self) -> Result<Option<Cursor>, ApiError> {
        match self.get("page") {
            None | Some("") => Ok(None),
            Some(p) => Cursor::decode(p).map(Some).map_err(ApiError),
        }
    }

    /// `order=asc|desc`; `default_desc` when absent.
    pub fn desc(&self, default_desc: bool) -> Result<bool, ApiError> {
        match self.get("order") {
            None | Some("") => Ok(default_desc),
            Some("asc") => Ok(false),
            Some("desc") => Ok(true),
            Some(v) => Err(invalid(format!(
                "`order` must be `asc` or `desc`, got `{v}`"
            ))),
        }
    }

    /// A timestamp filter such as `created_at[gte]`, in microseconds.
    pub fn time(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) => oma_core::time::parse_micros(v).map(Some).ok_or_else(|| {
                invalid(format!("`{name}` must be an RFC 3339 timestamp, got `{v}`"))
            }),
        }
    }

    /// The common `limit`/`page`/`order` triple as a store list query.
    pub fn list_query(
        &self,
        default_limit: i64,
        max_limit: i64,
        default_desc: bool,
    ) -> Result<oma_store::ListQuery, ApiError> {
        Ok(oma_store::ListQuery::new(
            self.limit(default_limit, max_limit)?,
            self.desc(default_desc)?,
            self.cursor()?,
        ))
    }
}

fn invalid(msg: String) -> ApiError {
    ApiError(Error::invalid(msg))
}

/// A JSON body that is already serialised (bodies are stored as JSON text).
pub struct RawJson(pub String);

impl IntoResponse for RawJson {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}

/// A page envelope around stored JSON bodies: `{"data":[…],"next_page":…}`.
pub fn page_json(listed: oma_store::Listed) -> RawJson {
    let next = listed.next.map(|c| c.encode());
    RawJson(page_body(&listed.items, next.as_deref(), None, false))
}

/// Builds a page envelope by concatenation, without parsing the stored items.
pub fn page_body(
    items: &[String],
    next: Option<&str>,
    prev: Option<&str>,
    with_prev: bool,
) -> String {
    let cap = items.iter().map(String::len).sum::<usize>() + items.len() + 64;
    let mut out = String::with_capacity(cap);
    out.push_str("{\"data\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
    out.push_str("],\"next_page\":");
    push_opt_str(&mut out, next);
    if with_prev {
        out.push_str(",\"prev_page\":");
        push_opt_str(&mut out, prev);
    }
    out.push('}');
    out
}

fn push_opt_str(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => out.push_str(&serde_json::Value::String(s.to_string()).to_string()),
        None => out.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_in_both_encodings() {
        let q =
            QueryMap::parse("statuses%5B%5D=idle&statuses[]=running&statuses=terminated&limit=5");
        assert_eq!(q.get_all("statuses"), vec!["idle", "running", "terminated"]);
        assert_eq!(q.limit(20, 100).unwrap(), 5);
        assert!(QueryMap::parse("limit=0").limit(20, 100).is_err());
        assert!(QueryMap::parse("limit=x").limit(20, 100).is_err());
        assert!(QueryMap::parse("page=garbage").cursor().is_err());
    }

    #[test]
    fn page_envelope_is_json() {
        let body = page_body(
            &["{\"a\":1}".into(), "{\"b\":2}".into()],
            Some("page_x"),
            None,
            true,
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 2);
        assert_eq!(v["next_page"], "page_x");
        assert!(v["prev_page"].is_null());
    }
}
