//! `/v1/files`: upload (multipart), list, metadata, download, delete (spec §3.7, §2.8, §2.10).
//!
//! Upload streams the `file` part straight into the blob store (never whole in memory), under
//! `files/<tenant>/<file_id>`, and inserts the row only after the blob is committed, so a crash
//! never leaves a row without bytes. Delete removes the row first and the blob after.
//!
//! Downloads (spec §5.7 `downloadable`): oma is self-hosted and the uploader owns its bytes, so
//! uploaded files are `downloadable: true` and round-trip byte for byte (Anthropic's hosted
//! service only lets tool-generated files be downloaded). The flag is stored per file, so files
//! recorded with `downloadable: false` answer 400 `file_not_downloadable`. A file past its
//! `expires_at` answers 404 `file_expired`; its metadata stays listable and its bytes are
//! deleted on that first refused download (or by a sweeper using `Store::expired_files`).
//!
//! The upload limit is 500 MiB, overridable with `OMA_MAX_UPLOAD_BYTES`; larger uploads get
//! 413. The filename and content-type rules below are pure functions with unit tests.

use std::sync::LazyLock;

use axum::Router;
use axum::body::Body;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use oma_api::files::FileDeleted;
use oma_blob::BlobReader;
use oma_core::{Error, ids, time};
use oma_store::files::{FileFilter, NewFile};

use super::Id;
use crate::auth::Tenant;
use crate::error::{ApiError, ApiResult};
use crate::extract::{QueryMap, RawJson, page_body, page_json};
use crate::state::AppState;

/// Default cap on one uploaded file.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 500 * 1024 * 1024;
/// Room for multipart framing and text fields on top of the file itself.
pub(super) const MULTIPART_OVERHEAD: u64 = 1024 * 1024;
/// `expires_in_seconds` bounds (spec: one hour to ninety days).
pub const MIN_EXPIRES_IN: i64 = 3600;
pub const MAX_EXPIRES_IN: i64 = 7_776_000;
/// Longest stored filename, in characters.
pub const MAX_FILENAME_CHARS: usize = 255;

/// The upload cap in effect: `OMA_MAX_UPLOAD_BYTES` when set to a positive integer.
pub(super) static MAX_UPLOAD_BYTES: LazyLock<u64> = LazyLock::new(|| {
    match std::env::var("OMA_MAX_UPLOAD_BYTES") {
        Err(_) => DEFAULT_MAX_UPLOAD_BYTES,
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => {
                tracing::warn!(value = %v, "ignoring invalid OMA_MAX_UPLOAD_BYTES; using the default");
                DEFAULT_MAX_UPLOAD_BYTES
            }
        },
    }
});

pub fn routes() -> Router<AppState> {
    let body_limit =
        usize::try_from(MAX_UPLOAD_BYTES.saturating_add(MULTIPART_OVERHEAD)).unwrap_or(usize::MAX);
    Router::new()
        .route(
            "/v1/files",
            get(list)
                .post(upload)
                .layer(DefaultBodyLimit::max(body_limit)),
        )
        .route("/v1/files/{file_id}", get(retrieve).delete(delete))
        .route("/v1/files/{file_id}/content", get(download))
}

async fn upload(
    State(state): State<AppState>,
    t: Tenant,
    mp: Result<Multipart, MultipartRejection>,
) -> ApiResult<RawJson> {
    let mut mp = mp.map_err(multipart_rejection)?;
    let id = ids::new_id(ids::FILE);
    let blob_key = format!("files/{}/{id}", t.id());
    let max = *MAX_UPLOAD_BYTES;
    let mut file = None;
    let mut expires_raw = None;
    while let Some(mut field) = mp.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("file") => {
                if file.is_some() {
                    return Err(invalid(
                        "the upload has more than one `file` part: upload one file per request",
                    ));
                }
                let filename = field.file_name().map(str::to_string);
                let content_type = field.content_type().map(str::to_string);
                let mut writer = state.blobs.writer(&blob_key).await?;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    if writer.written() + chunk.len() as u64 > max {
                        // The dropped writer removes its partial bytes.
                        drop(writer);
                        drain(&mut mp).await;
                        return Err(too_large(max));
                    }
                    writer.write(&chunk).await?;
                }
                file = Some((filename, content_type, writer));
            }
            Some("expires_in_seconds") => {
                expires_raw = Some(read_text(&mut field, "expires_in_seconds", 64).await?)
            }
            // Unknown parts are ignored, like unknown JSON keys.
            _ => {}
        }
    }
    let (filename, content_type, writer) = file.ok_or_else(|| {
        invalid("the upload has no `file` part: send the file as a multipart part named `file`")
    })?;
    let expires_in = expires_raw.as_deref().map(parse_expires_in).transpose()?;
    let mime_type = mime_type_of(content_type.as_deref(), filename.as_deref());
    let filename = stored_filename(filename.as_deref(), &mime_type)?;
    let size = writer.commit().await?;
    let now = time::now_micros();
    let new = NewFile {
        id,
        filename,
        mime_type,
        size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
        created_at: now,
        expires_at: expires_in.map(|s| now.saturating_add(s.saturating_mul(1_000_000))),
        downloadable: true,
        scope: None,
        blob_key,
    };
    match t.store.insert_file(t.id(), &new).await {
        Ok(body) => Ok(RawJson(body)),
        Err(e) => {
            delete_blob(&state, &new.blob_key).await;
            Err(e.into())
        }
    }
}

async fn list(t: Tenant, q: QueryMap) -> ApiResult<RawJson> {
    let filter = FileFilter {
        scope_id: q
            .get("scope_id")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    };
    let ids = q.get_all("ids");
    if !ids.is_empty() {
        if q.get("page").is_some_and(|p| !p.is_empty())
            || q.get("limit").is_some_and(|l| !l.is_empty())
        {
            return Err(invalid(
                "`ids` cannot be combined with `page` or `limit`: an `ids` list is always one page",
            ));
        }
        let items = t.store.files_by_ids(t.id(), &ids, &filter).await?;
        return Ok(RawJson(page_body(&items, None, None, false)));
    }
    let query = q.list_query(20, 1000, true)?;
    Ok(page_json(
        t.store.list_files(t.id(), &filter, &query).await?,
    ))
}

async fn retrieve(t: Tenant, Id(id): Id) -> ApiResult<RawJson> {
    Ok(RawJson(t.store.get_file(t.id(), &id).await?))
}

async fn download(State(state): State<AppState>, t: Tenant, Id(id): Id) -> ApiResult<Response> {
    let rec = t.store.file_record(t.id(), &id).await?;
    if rec.is_expired(time::now_micros()) {
        // The bytes are "permanently unavailable" from now on: free them.
        delete_blob(&state, &rec.blob_key).await;
        let at = rec.meta.expires_at.clone().unwrap_or_default();
        return Err(ApiError(
            Error::not_found(format!(
                "file `{id}` expired at {at}: its content is no longer available"
            ))
            .with_code("file_expired"),
        ));
    }
    if !rec.downloadable {
        return Err(ApiError(
            Error::invalid(format!("file `{id}` is not downloadable"))
                .with_code("file_not_downloadable"),
        ));
    }
    let reader = state.blobs.reader(&rec.blob_key).await?;
    let len = reader.len();
    let content_type = HeaderValue::from_str(&rec.meta.mime_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut resp = Body::from_stream(blob_stream(reader)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(&rec.meta.filename),
    );
    Ok(resp)
}

async fn delete(
    State(state): State<AppState>,
    t: Tenant,
    Id(id): Id,
) -> ApiResult<axum::Json<FileDeleted>> {
    let key = t.store.delete_file(t.id(), &id).await?;
    delete_blob(&state, &key).await;
    Ok(axum::Json(FileDeleted::new(id)))
}

/// A blob as a body stream that ends after the first read error.
fn blob_stream(
    reader: BlobReader,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures::stream::unfold(Some(reader), |state| async move {
        let mut reader = state?;
        match reader.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(reader))),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "reading a blob for download failed");
                Some((Err(std::io::Error::other(e)), None))
            }
        }
    })
}

/// Deletes a blob whose row is already gone (or was never written). A failure only leaves
/// unreferenced bytes behind, so it is logged rather than failing the request.
pub(super) async fn delete_blob(state: &AppState, key: &str) {
    if let Err(e) = state.blobs.delete(key).await {
        tracing::warn!(blob = key, error = %e, "could not delete a blob; it is left unreferenced");
        if let Some(ops) = state.runtime.ops() {
            ops.record(oma_ops::event::silent_catch("api.blob_delete", &e));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Multipart plumbing shared with the skills routes.
// ---------------------------------------------------------------------------------------------

pub(super) fn multipart_rejection(e: MultipartRejection) -> ApiError {
    invalid(format!(
        "expected a `multipart/form-data` body with a boundary: {}",
        e.body_text()
    ))
}

pub(super) fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        too_large(*MAX_UPLOAD_BYTES)
    } else {
        invalid(format!("malformed multipart body: {}", e.body_text()))
    }
}

pub(super) fn too_large(max: u64) -> ApiError {
    ApiError(Error::too_large(format!(
        "the upload is larger than the limit of {max} bytes"
    )))
}

/// Reads the rest of the body, so the client (which sends everything before reading the
/// answer) sees the error response instead of a reset connection. Bounded by the route's body
/// limit; errors just stop the draining.
pub(super) async fn drain(mp: &mut Multipart) {
    while let Ok(Some(mut field)) = mp.next_field().await {
        while let Ok(Some(_)) = field.chunk().await {}
    }
}

/// A text part, at most `max` bytes of UTF-8.
pub(super) async fn read_text(field: &mut Field<'_>, name: &str, max: usize) -> ApiResult<String> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if buf.len() + chunk.len() > max {
            return Err(invalid(format!(
                "the `{name}` part is longer than {max} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf).map_err(|_| invalid(format!("the `{name}` part must be UTF-8 text")))
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError(Error::invalid(msg))
}

// ---------------------------------------------------------------------------------------------
// Pure rules.
// ---------------------------------------------------------------------------------------------

/// `expires_in_seconds`: a decimal integer within 3600..=7776000.
pub fn parse_expires_in(raw: &str) -> Result<i64, Error> {
    let n: i64 = raw.trim().parse().map_err(|_| {
        Error::invalid(format!(
            "`expires_in_seconds` must be an integer number of seconds, got `{}`",
            raw.trim()
        ))
    })?;
    if !(MIN_EXPIRES_IN..=MAX_EXPIRES_IN).contains(&n) {
        return Err(Error::invalid(format!(
            "`expires_in_seconds` must be between {MIN_EXPIRES_IN} (one hour) and {MAX_EXPIRES_IN} (ninety days), got {n}"
        )));
    }
    Ok(n)
}

/// The stored filename: the last path component of the part's filename; `unnamed` plus the
/// MIME type's extension (when known) if that is absent or empty.
pub fn stored_filename(raw: Option<&str>, mime_type: &str) -> Result<String, Error> {
    let last = raw
        .unwrap_or("")
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .trim();
    let name: String = last.chars().filter(|c| !c.is_control()).collect();
    if name.is_empty() || name == "." || name == ".." {
        return Ok(format!("unnamed{}", extension_for(mime_type).unwrap_or("")));
    }
    if name.chars().count() > MAX_FILENAME_CHARS {
        return Err(Error::invalid(format!(
            "the filename is longer than {MAX_FILENAME_CHARS} characters"
        )));
    }
    Ok(name)
}

/// The MIME type to record: the part's own `Content-Type` when it is a well-formed
/// `type/subtype`, else a guess from the filename's extension, else `application/octet-stream`.
pub fn mime_type_of(content_type: Option<&str>, filename: Option<&str>) -> String {
    if let Some(ct) = content_type.map(str::trim).filter(|ct| is_mime(ct)) {
        return ct.to_string();
    }
    let ext = filename
        .and_then(|f| f.rsplit(['/', '\\']).next())
        .and_then(|f| f.rsplit_once('.'))
        .map(|(_, e)| e);
    ext.and_then(mime_for_extension)
        .unwrap_or("application/octet-stream")
        .to_string()
}

fn is_mime(s: &str) -> bool {
    let essence = s.split(';').next().unwrap_or("").trim();
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    s.len() <= 255
        && s.bytes().all(|b| b.is_ascii() && !b.is_ascii_control())
        && essence
            .split_once('/')
            .is_some_and(|(a, b)| token(a) && token(b))
}

/// Extension-to-type pairs; the first entry for a type is its preferred extension.
const MIME_TABLE: &[(&str, &str)] = &[
    (".txt", "text/plain"),
    (".md", "text/markdown"),
    (".csv", "text/csv"),
    (".html", "text/html"),
    (".htm", "text/html"),
    (".css", "text/css"),
    (".xml", "application/xml"),
    (".json", "application/json"),
    (".jsonl", "application/jsonl"),
    (".yaml", "application/yaml"),
    (".yml", "application/yaml"),
    (".js", "text/javascript"),
    (".py", "text/x-python"),
    (".pdf", "application/pdf"),
    (".png", "image/png"),
    (".jpg", "image/jpeg"),
    (".jpeg", "image/jpeg"),
    (".gif", "image/gif"),
    (".webp", "image/webp"),
    (".svg", "image/svg+xml"),
    (".zip", "application/zip"),
    (".gz", "application/gzip"),
    (".tar", "application/x-tar"),
    (".mp3", "audio/mpeg"),
    (".wav", "audio/wav"),
    (".mp4", "video/mp4"),
    (
        ".docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    (
        ".xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    (
        ".pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
];

/// `.ext` for a MIME type (parameters ignored); `None` for unknown types and for
/// `application/octet-stream`, which says nothing about the content.
pub fn extension_for(mime_type: &str) -> Option<&'static str> {
    let essence = mime_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let essence = match essence.as_str() {
        "text/xml" => "application/xml",
        "application/x-yaml" | "text/yaml" => "application/yaml",
        "application/javascript" => "text/javascript",
        other => other,
    };
    MIME_TABLE
        .iter()
        .find(|(_, m)| *m == essence)
        .map(|(e, _)| *e)
}

/// The MIME type for a file extension (without the dot), when known.
pub fn mime_for_extension(ext: &str) -> Option<&'static str> {
    MIME_TABLE
        .iter()
        .find(|(e, _)| {
            e.strip_prefix('.')
                .is_some_and(|e| e.eq_ignore_ascii_case(ext))
        })
        .map(|(_, m)| *m)
}

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266): an ASCII fallback for old
/// clients and the exact UTF-8 name for the rest.
pub fn content_disposition(filename: &str) -> HeaderValue {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in filename.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or(HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_bounds() {
        assert_eq!(parse_expires_in("3600").unwrap(), 3600);
        assert_eq!(parse_expires_in(" 7776000 ").unwrap(), 7_776_000);
        for bad in ["3599", "7776001", "-1", "1.5", "", "soon"] {
            assert!(parse_expires_in(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filenames() {
        assert_eq!(
            stored_filename(Some("report.pdf"), "application/pdf").unwrap(),
            "report.pdf"
        );
        assert_eq!(
            stored_filename(Some("a/b/c.txt"), "text/plain").unwrap(),
            "c.txt"
        );
        assert_eq!(
            stored_filename(Some("C:\\dir\\x.csv"), "text/csv").unwrap(),
            "x.csv"
        );
        assert_eq!(stored_filename(None, "text/plain").unwrap(), "unnamed.txt");
        assert_eq!(
            stored_filename(Some(""), "image/png").unwrap(),
            "unnamed.png"
        );
        assert_eq!(
            stored_filename(Some("dir/"), "text/plain; charset=utf-8").unwrap(),
            "unnamed.txt"
        );
        assert_eq!(
            stored_filename(None, "application/octet-stream").unwrap(),
            "unnamed"
        );
        assert_eq!(stored_filename(Some(".."), "x/unknown").unwrap(), "unnamed");
        assert_eq!(
            stored_filename(Some("ta\tb.txt"), "text/plain").unwrap(),
            "tab.txt"
        );
        assert!(stored_filename(Some(&"x".repeat(256)), "text/plain").is_err());
    }

    #[test]
    fn mime_types() {
        assert_eq!(
            mime_type_of(Some("text/plain; charset=utf-8"), None),
            "text/plain; charset=utf-8"
        );
        assert_eq!(mime_type_of(None, Some("a.PDF")), "application/pdf");
        assert_eq!(mime_type_of(Some("garbage"), Some("x.png")), "image/png");
        assert_eq!(
            mime_type_of(None, Some("noext")),
            "application/octet-stream"
        );
        assert_eq!(
            mime_type_of(Some("bad\u{1}/x"), None),
            "application/octet-stream"
        );
        assert_eq!(extension_for("application/x-yaml"), Some(".yaml"));
        assert_eq!(extension_for("image/jpeg"), Some(".jpg"));
        assert_eq!(extension_for("application/octet-stream"), None);
        // Every table type has a preferred extension.
        for (_, m) in MIME_TABLE {
            assert!(extension_for(m).is_some_and(|e| e.len() > 1), "{m}");
        }
    }

    #[test]
    fn dispositions() {
        let v = content_disposition("résumé \"v2\".pdf");
        let s = v.to_str().unwrap();
        assert!(
            s.starts_with("attachment; filename=\"r_sum_ _v2_.pdf\""),
            "{s}"
        );
        assert!(
            s.contains("filename*=UTF-8''r%C3%A9sum%C3%A9%20%22v2%22.pdf"),
            "{s}"
        );
    }
}
