//! `/v1/skills` and `/v1/skills/{id}/versions` (spec §3.6, §2.8, §2.10).
//!
//! Creates are multipart: many `files[]` parts whose filenames carry paths below one top-level
//! directory with `SKILL.md` at its root (`oma_core::skills` checks the layout and reads the
//! front matter). Each file of a version is one blob, `skills/<tenant>/<skill_id>/<version>/<n>`
//! (`n` = its index in the version's manifest); the blobs are written before the rows and
//! deleted after them. `GET …/versions/{version}/content` packs the files into a STORED ZIP
//! under the skill's name (`<name>/SKILL.md`, …).
//!
//! Deletion: deleting a skill deletes all its versions with it. The SDK documents that a skill
//! "holds at least one version" (`latest_version_id` is never null), so a skill cannot exist
//! without versions — requiring its versions to be deleted first could never succeed. For the
//! same reason a skill's only remaining version cannot be deleted on its own (400): delete the
//! skill instead.

mod zip;

use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::{Bytes, BytesMut};
use oma_api::skills::{SOURCES, SkillDeleted, SkillVersionDeleted};
use oma_core::skills::{self as rules, SkillLayout};
use oma_core::{Error, ids};
use oma_store::skills::{NewSkillVersion, SkillFile};

use super::Id;
use super::files::{
    MAX_UPLOAD_BYTES, MULTIPART_OVERHEAD, delete_blob, drain, mime_type_of, multipart_error,
    multipart_rejection, read_text, too_large,
};
use crate::auth::{Caller, Tenant};
use crate::error::{ApiError, ApiResult};
use crate::extract::{QueryMap, RawJson, page_json};
use crate::state::AppState;

/// Cap on the total size of one skill upload (all files together). Skills are instructions and
/// small scripts; they are loaded into memory to be checked and zipped.
pub const MAX_SKILL_UPLOAD_BYTES: u64 = 64 * 1024 * 1024;

/// The cap in effect: the smaller of the skill cap and the general upload cap.
fn max_skill_bytes() -> u64 {
    MAX_SKILL_UPLOAD_BYTES.min(*MAX_UPLOAD_BYTES)
}

pub fn routes() -> Router<AppState> {
    let body_limit =
        usize::try_from(max_skill_bytes().saturating_add(MULTIPART_OVERHEAD)).unwrap_or(usize::MAX);
    Router::new()
        .route(
            "/v1/skills",
            get(list)
                .post(create)
                .layer(DefaultBodyLimit::max(body_limit)),
        )
        .route("/v1/skills/{skill_id}", get(retrieve).delete(delete))
        .route(
            "/v1/skills/{skill_id}/versions",
            get(list_versions)
                .post(create_version)
                .layer(DefaultBodyLimit::max(body_limit)),
        )
        .route(
            "/v1/skills/{skill_id}/versions/{version}",
            get(retrieve_version).delete(delete_version),
        )
        .route(
            "/v1/skills/{skill_id}/versions/{version}/content",
            get(download),
        )
}

/// One uploaded file, before it is checked.
struct Part {
    filename: Option<String>,
    content_type: Option<String>,
    data: Bytes,
}

/// A parsed skill upload.
struct Upload {
    parts: Vec<Part>,
    display_name: Option<String>,
}

/// Reads the multipart body: `files[]` (or `files`) parts and an optional `display_name`.
async fn read_upload(mp: Result<Multipart, MultipartRejection>) -> ApiResult<Upload> {
    let mut mp = mp.map_err(multipart_rejection)?;
    let max = max_skill_bytes();
    let mut total: u64 = 0;
    let mut parts = Vec::new();
    let mut display_name = None;
    while let Some(mut field) = mp.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("files[]") | Some("files") => {
                if parts.len() >= rules::MAX_FILES {
                    return Err(ApiError(Error::invalid(format!(
                        "a skill upload may contain at most {} files",
                        rules::MAX_FILES
                    ))));
                }
                let filename = field.file_name().map(str::to_string);
                let content_type = field.content_type().map(str::to_string);
                let mut data = BytesMut::new();
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    total += chunk.len() as u64;
                    if total > max {
                        drain(&mut mp).await;
                        return Err(too_large(max));
                    }
                    data.extend_from_slice(&chunk);
                }
                parts.push(Part {
                    filename,
                    content_type,
                    data: data.freeze(),
                });
            }
            Some("display_name") => {
                // Bytes, not characters: 4 bytes per character is the UTF-8 worst case.
                let max = rules::MAX_DISPLAY_NAME_LEN * 4;
                display_name = Some(read_text(&mut field, "display_name", max).await?);
            }
            _ => {}
        }
    }
    if parts.is_empty() {
        return Err(ApiError(Error::invalid(
            "the upload has no `files[]` parts: send each file of the skill as a part named `files[]` \
             whose filename is its path, e.g. `my-skill/SKILL.md`",
        )));
    }
    Ok(Upload {
        parts,
        display_name,
    })
}

/// A checked upload: where each file goes and what SKILL.md says.
struct Checked {
    layout: SkillLayout,
    meta: rules::SkillMeta,
}

fn check(upload: &Upload) -> ApiResult<Checked> {
    let layout = SkillLayout::from_uploads(upload.parts.iter().map(|p| p.filename.as_deref()))?;
    let meta = rules::resolve_meta(&layout.top_dir, &upload.parts[layout.skill_md].data)?;
    Ok(Checked { layout, meta })
}

/// Writes every file of a version to the blob store. On failure the blobs written so far are
/// removed again.
async fn write_blobs(
    state: &AppState,
    tenant: &str,
    skill_id: &str,
    version_id: &str,
    upload: Upload,
    checked: &Checked,
) -> ApiResult<Vec<SkillFile>> {
    let mut files = Vec::with_capacity(upload.parts.len());
    for (n, (part, path)) in upload
        .parts
        .into_iter()
        .zip(&checked.layout.paths)
        .enumerate()
    {
        let blob = format!("skills/{tenant}/{skill_id}/{version_id}/{n}");
        let mime_type = mime_type_of(part.content_type.as_deref(), Some(path));
        let size_bytes = i64::try_from(part.data.len()).unwrap_or(i64::MAX);
        if let Err(e) = state.blobs.put(&blob, part.data).await {
            delete_blobs(state, &files).await;
            return Err(e.into());
        }
        files.push(SkillFile {
            path: path.clone(),
            size_bytes,
            mime_type,
            blob,
        });
    }
    Ok(files)
}

async fn delete_blobs(state: &AppState, files: &[SkillFile]) {
    for f in files {
        delete_blob(state, &f.blob).await;
    }
}

async fn create(
    State(state): State<AppState>,
    t: Tenant,
    mp: Result<Multipart, MultipartRejection>,
) -> ApiResult<RawJson> {
    let upload = read_upload(mp).await?;
    let checked = check(&upload)?;
    let display_name = rules::display_name(upload.display_name.as_deref(), &checked.meta)?;
    let skill_id = ids::new_id(ids::SKILL);
    let version_id = ids::new_id(ids::SKILL_VERSION);
    let files = write_blobs(&state, t.id(), &skill_id, &version_id, upload, &checked).await?;
    let v = NewSkillVersion {
        id: version_id,
        meta: checked.meta,
        files,
    };
    match t
        .store
        .create_skill(t.id(), &skill_id, &display_name, &v)
        .await
    {
        Ok(body) => Ok(RawJson(body)),
        Err(e) => {
            delete_blobs(&state, &v.files).await;
            Err(e.into())
        }
    }
}

async fn create_version(
    State(state): State<AppState>,
    t: Tenant,
    Id(skill_id): Id,
    mp: Result<Multipart, MultipartRejection>,
) -> ApiResult<RawJson> {
    let upload = read_upload(mp).await?;
    let checked = check(&upload)?;
    // Checked here to fail before writing any blob; the store checks again under its lock.
    let name = t.store.skill_name(t.id(), &skill_id).await?;
    rules::check_same_name(&name, &checked.meta)?;
    let version_id = ids::new_id(ids::SKILL_VERSION);
    let files = write_blobs(&state, t.id(), &skill_id, &version_id, upload, &checked).await?;
    let v = NewSkillVersion {
        id: version_id,
        meta: checked.meta,
        files,
    };
    match t.store.create_skill_version(t.id(), &skill_id, &v).await {
        Ok(body) => Ok(RawJson(body)),
        Err(e) => {
            delete_blobs(&state, &v.files).await;
            Err(e.into())
        }
    }
}

async fn list(t: Tenant, q: QueryMap) -> ApiResult<RawJson> {
    let source = match q.get("source").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) if SOURCES.contains(&s) => Some(s),
        Some(s) => {
            return Err(ApiError(Error::invalid(format!(
                "`source` must be one of {}, got `{s}`",
                SOURCES.map(|s| format!("`{s}`")).join(", ")
            ))));
        }
    };
    let query = q.list_query(20, 1000, true)?;
    Ok(page_json(
        t.store.list_skills(t.id(), source, &query).await?,
    ))
}

async fn retrieve(t: Tenant, Id(skill_id): Id) -> ApiResult<RawJson> {
    Ok(RawJson(t.store.get_skill(t.id(), &skill_id).await?))
}

async fn delete(
    State(state): State<AppState>,
    t: Tenant,
    Id(skill_id): Id,
) -> ApiResult<axum::Json<SkillDeleted>> {
    let files = t.store.delete_skill(t.id(), &skill_id).await?;
    delete_blobs(&state, &files).await;
    Ok(axum::Json(SkillDeleted::new(skill_id)))
}

async fn list_versions(t: Tenant, Id(skill_id): Id, q: QueryMap) -> ApiResult<RawJson> {
    let query = q.list_query(20, 1000, true)?;
    Ok(page_json(
        t.store
            .list_skill_versions(t.id(), &skill_id, &query)
            .await?,
    ))
}

/// Also for a self-hosted session's worker (its sessions token), which installs the skill.
async fn retrieve_version(
    c: Caller,
    Id((skill_id, version)): Id<(String, String)>,
) -> ApiResult<RawJson> {
    let t = c.for_skill(&skill_id).await?;
    let r = rules::parse_version_ref(&version, true)?;
    Ok(RawJson(
        t.store.get_skill_version(t.id(), &skill_id, &r).await?,
    ))
}

async fn delete_version(
    State(state): State<AppState>,
    t: Tenant,
    Id((skill_id, version)): Id<(String, String)>,
) -> ApiResult<axum::Json<SkillVersionDeleted>> {
    let r = rules::parse_version_ref(&version, false)?;
    let (id, files) = t.store.delete_skill_version(t.id(), &skill_id, &r).await?;
    delete_blobs(&state, &files).await;
    Ok(axum::Json(SkillVersionDeleted::new(id)))
}

/// Also for a self-hosted session's worker (its sessions token), which installs the skill.
async fn download(
    State(state): State<AppState>,
    c: Caller,
    Id((skill_id, version)): Id<(String, String)>,
) -> ApiResult<Response> {
    let t = c.for_skill(&skill_id).await?;
    // `latest` is accepted here too (the docs name versions by id, but reading the latest
    // version's files is harmless and convenient).
    let r = rules::parse_version_ref(&version, true)?;
    let v = t.store.skill_version_files(t.id(), &skill_id, &r).await?;
    let mut archive = zip::ZipWriter::new(v.created_at);
    for f in &v.files {
        let data = state.blobs.get(&f.blob).await?;
        archive.add(&format!("{}/{}", v.name, f.path), &data)?;
    }
    let bytes = archive.finish()?;
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        super::files::content_disposition(&format!("{}.zip", v.name)),
    );
    Ok(resp)
}
