//! Domain rules: memory stores, memories and memory versions (spec §3.5, §5.5).
//!
//! Everything the API checks before touching storage lives here: store name/description
//! limits, memory path and content rules, preconditions, list parameters (`view`, `depth`,
//! `path_prefix`) and the roll-up of deep paths into `memory_prefix` markers. The store crate
//! only adds what needs the database (uniqueness, counts, the current version).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use oma_api::memory::{
    Actor, CreateMemoryStoreParams, Memory, MemoryStore, MemoryVersion, MemoryVersionOperation,
    MemoryView,
};

use crate::cursor::Cursor;
use crate::metadata::{self, Metadata};
use crate::time::format_micros;
use crate::{Error, ErrorKind, Patch};

/// Store names: 1 to 255 characters.
pub const MAX_NAME_CHARS: usize = 255;
/// Store descriptions: at most 1,024 characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
/// Memory paths: at most 1,024 bytes of UTF-8.
pub const MAX_PATH_BYTES: usize = 1024;
/// Memory paths: 1 to 20 segments.
pub const MAX_PATH_SEGMENTS: usize = 20;
/// Memory content: at most 100 kB of UTF-8.
pub const MAX_CONTENT_BYTES: usize = 102_400;
/// A store holds at most this many memories; beyond it new paths are refused, existing
/// memories stay editable.
pub const MAX_MEMORIES_PER_STORE: i64 = 2000;
/// List page sizes: default and maximum, and the cap when pages carry content.
pub const DEFAULT_LIST_LIMIT: i64 = 20;
pub const MAX_LIST_LIMIT: i64 = 100;
pub const MAX_FULL_VIEW_LIMIT: i64 = 20;

// ---------------------------------------------------------------------------------------------
// Memory stores
// ---------------------------------------------------------------------------------------------

/// The editable part of a memory store, stored as JSON beside the timestamps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemoryStoreConfig {
    pub name: String,
    /// Empty when unset: the API returns `""`, never `null`.
    pub description: String,
    pub metadata: Metadata,
}

/// `POST /v1/memory_stores/{id}` body: every field three-state.
#[derive(Debug, Deserialize, Default)]
pub struct UpdateMemoryStoreParams {
    /// A name cannot be cleared: `null` keeps the current one (the SDK types it nullable).
    #[serde(default)]
    pub name: Patch<String>,
    /// `null` or `""` clears it.
    #[serde(default)]
    pub description: Patch<String>,
    /// A patch: string values upsert, `null` values delete; `null` as a whole changes nothing.
    #[serde(default)]
    pub metadata: Patch<Map<String, Value>>,
}

impl MemoryStoreConfig {
    pub fn create(p: CreateMemoryStoreParams) -> Result<Self, Error> {
        Ok(Self {
            name: store_name(&p.name)?,
            description: description(p.description.unwrap_or_default())?,
            metadata: metadata::from_create(p.metadata.as_ref())?,
        })
    }

    /// The configuration after applying `p`; equal to `self` when nothing changes.
    pub fn update(&self, p: UpdateMemoryStoreParams) -> Result<Self, Error> {
        let mut next = self.clone();
        if let Patch::Value(name) = p.name {
            next.name = store_name(&name)?;
        }
        match p.description {
            Patch::Absent => {}
            Patch::Null => next.description.clear(),
            Patch::Value(d) => next.description = description(d)?,
        }
        if let Patch::Value(patch) = p.metadata {
            metadata::apply_patch(&mut next.metadata, &patch, false)?;
        }
        Ok(next)
    }
}

fn store_name(name: &str) -> Result<String, Error> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(Error::invalid(format!(
            "name: must be 1 to {MAX_NAME_CHARS} characters, got {chars}"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid("name: must not contain control characters"));
    }
    Ok(name.to_string())
}

fn description(d: String) -> Result<String, Error> {
    let chars = d.chars().count();
    if chars > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(format!(
            "description: must be at most {MAX_DESCRIPTION_CHARS} characters, got {chars}"
        )));
    }
    Ok(d)
}

/// The directory a store is mounted at under `/mnt/memory/`: the name lowercased, with every
/// run of characters other than ASCII letters and digits replaced by one hyphen.
pub fn mount_slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
            in_run = false;
        } else if !in_run {
            out.push('-');
            in_run = true;
        }
    }
    out
}

/// The memory store object of the API.
pub fn store_object(
    id: &str,
    created_at: i64,
    updated_at: i64,
    archived_at: Option<i64>,
    cfg: &MemoryStoreConfig,
) -> MemoryStore {
    MemoryStore {
        id: id.to_string(),
        kind: "memory_store".to_string(),
        archived_at: archived_at.map(format_micros),
        created_at: format_micros(created_at),
        description: cfg.description.clone(),
        metadata: cfg.metadata.clone(),
        name: cfg.name.clone(),
        updated_at: format_micros(updated_at),
    }
}

/// The error for writes to an archived store (the spec's 400).
pub fn store_archived(id: &str) -> Error {
    Error::invalid(format!(
        "memory store `{id}` is archived: its memories can be read and deleted but not changed"
    ))
}

// ---------------------------------------------------------------------------------------------
// Paths and content
// ---------------------------------------------------------------------------------------------

/// Checks a memory path: starts with `/`, 1 to 20 segments, none empty, `.` or `..`, no
/// control or format characters nor U+2028/U+2029, NFC, at most 1,024 bytes.
pub fn validate_path(path: &str) -> Result<(), Error> {
    match path_problem(path) {
        None => Ok(()),
        Some(why) => Err(Error::invalid(format!("path `{}`: {why}", shorten(path)))),
    }
}

/// Checks a `path_prefix` list filter: like a path but ending with `/` (`/` alone is the
/// whole store).
pub fn validate_prefix(prefix: &str) -> Result<(), Error> {
    let problem = if !prefix.starts_with('/') {
        Some("must start with `/`".to_string())
    } else if !prefix.ends_with('/') {
        Some("must end with `/` (it matches whole segments)".to_string())
    } else if prefix == "/" {
        None
    } else {
        // `/a/b/` is valid exactly when `/a/b` is a valid path.
        path_problem(&prefix[..prefix.len() - 1])
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(Error::invalid(format!(
            "path_prefix `{}`: {why}",
            shorten(prefix)
        ))),
    }
}

/// Why `path` is not a valid memory path, if it is not.
fn path_problem(path: &str) -> Option<String> {
    if path.len() > MAX_PATH_BYTES {
        return Some(format!(
            "must be at most {MAX_PATH_BYTES} bytes, got {}",
            path.len()
        ));
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Some("must start with `/`".to_string());
    };
    if let Err(why) = check_characters(path) {
        return Some(why);
    }
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.len() > MAX_PATH_SEGMENTS {
        return Some(format!(
            "must have at most {MAX_PATH_SEGMENTS} segments, got {}",
            segments.len()
        ));
    }
    for seg in segments {
        match seg {
            "" => {
                return Some(
                    "segments must not be empty (no `//` and no trailing `/`)".to_string(),
                );
            }
            "." | ".." => return Some("segments must not be `.` or `..`".to_string()),
            _ => {}
        }
    }
    None
}

/// The smallest string above every string that starts with `prefix` (which ends with `/`):
/// `/a/` → `/a0`, because `0` is the byte after `/`. Used as an exclusive upper bound so
/// prefix scans are index range scans in byte order.
pub fn prefix_end(prefix: &str) -> String {
    match prefix.strip_suffix('/') {
        Some(head) => format!("{head}0"),
        None => format!("{prefix}\u{10FFFF}"),
    }
}

/// The proper ancestors of a path as paths: `/a/b/c` → `["/a", "/a/b"]`. A memory store is
/// mounted as a filesystem, so a memory cannot sit where another one needs a directory.
pub fn ancestors(path: &str) -> Vec<String> {
    path.match_indices('/')
        .skip(1)
        .map(|(i, _)| path[..i].to_string())
        .collect()
}

/// Checks memory content: at most 100 kB of UTF-8 and no NUL character (the mount writes it
/// to a file and PostgreSQL text cannot hold NUL; refusing it on every backend keeps them
/// identical).
pub fn validate_content(content: &str) -> Result<(), Error> {
    if content.len() > MAX_CONTENT_BYTES {
        return Err(Error::invalid(format!(
            "content: must be at most {MAX_CONTENT_BYTES} bytes of UTF-8, got {}",
            content.len()
        )));
    }
    if content.contains('\0') {
        return Err(Error::invalid("content: must not contain NUL characters"));
    }
    Ok(())
}

/// Lowercase hex SHA-256 of the UTF-8 bytes, with no normalisation.
pub fn sha256_hex(content: &str) -> String {
    Sha256::digest(content.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks a client-supplied digest: 64 lowercase hexadecimal characters.
pub fn validate_sha256(field: &str, value: &str) -> Result<(), Error> {
    if value.len() == 64
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{field}: must be 64 lowercase hexadecimal characters"
        )))
    }
}

fn check_characters(s: &str) -> Result<(), String> {
    for c in s.chars() {
        if c.is_control() {
            return Err(format!(
                "must not contain control characters (found U+{:04X})",
                c as u32
            ));
        }
        if c == '\u{2028}' || c == '\u{2029}' {
            return Err(format!(
                "must not contain line or paragraph separators (found U+{:04X})",
                c as u32
            ));
        }
        if is_format_char(c) {
            return Err(format!(
                "must not contain format characters (found U+{:04X})",
                c as u32
            ));
        }
    }
    if !is_nfc(s) {
        return Err(
            "must be in Unicode Normalization Form C (compose accents with their letters)"
                .to_string(),
        );
    }
    Ok(())
}

/// Unicode general category Cf (format characters), as of Unicode 15.
fn is_format_char(c: char) -> bool {
    const CF: &[(u32, u32)] = &[
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
    ];
    let c = c as u32;
    CF.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// Whether `s` is in Unicode Normalization Form C (the form paths are stored in, so two
/// spellings of one name cannot both exist).
fn is_nfc(s: &str) -> bool {
    s.is_ascii() || unicode_normalization::is_nfc(s)
}

/// A path in an error message, cut to a readable length on a character boundary.
fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        return s.escape_debug().to_string();
    }
    let head: String = s.chars().take(MAX).collect();
    format!("{}…", head.escape_debug())
}

// ---------------------------------------------------------------------------------------------
// Memory writes
// ---------------------------------------------------------------------------------------------

/// A validated create: path and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMemory {
    pub path: String,
    pub content: String,
}

impl NewMemory {
    pub fn create(p: oma_api::memory::CreateMemoryParams) -> Result<Self, Error> {
        let content = p.content.ok_or_else(|| {
            Error::invalid("content: must be a string (pass \"\" to create an empty memory)")
        })?;
        validate_path(&p.path)?;
        validate_content(&content)?;
        Ok(Self {
            path: p.path,
            content,
        })
    }
}

/// `POST /v1/memory_stores/{id}/memories/{mem_id}` body.
#[derive(Debug, Deserialize, Default)]
pub struct UpdateMemoryParams {
    /// Absent or `null`: keep the content.
    #[serde(default)]
    pub content: Patch<String>,
    /// Absent or `null`: keep the path (a path cannot be cleared).
    #[serde(default)]
    pub path: Patch<String>,
    /// `{"type": "content_sha256", "content_sha256": "<hex>"}`; absent or `null`: none.
    #[serde(default)]
    pub precondition: Patch<Value>,
}

/// A validated update.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryChange {
    pub content: Option<String>,
    pub path: Option<String>,
    /// The `content_sha256` the memory must currently have.
    pub expected_sha256: Option<String>,
}

impl MemoryChange {
    pub fn from_params(p: UpdateMemoryParams) -> Result<Self, Error> {
        let content = match p.content {
            Patch::Value(c) => {
                validate_content(&c)?;
                Some(c)
            }
            Patch::Absent | Patch::Null => None,
        };
        let path = match p.path {
            Patch::Value(path) => {
                validate_path(&path)?;
                Some(path)
            }
            Patch::Absent | Patch::Null => None,
        };
        let expected_sha256 = match p.precondition {
            Patch::Value(v) => Some(precondition(&v)?),
            Patch::Absent | Patch::Null => None,
        };
        Ok(Self {
            content,
            path,
            expected_sha256,
        })
    }
}

fn precondition(v: &Value) -> Result<String, Error> {
    let obj = v
        .as_object()
        .ok_or_else(|| Error::invalid("precondition: must be an object"))?;
    match obj.get("type").and_then(Value::as_str) {
        Some("content_sha256") => {}
        Some(other) => {
            return Err(Error::invalid(format!(
                "precondition.type: `{other}` is not supported; the only variant is `content_sha256`"
            )));
        }
        None => {
            return Err(Error::invalid(
                "precondition.type: required (`content_sha256`)",
            ));
        }
    }
    let sha = obj
        .get("content_sha256")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid("precondition.content_sha256: required"))?;
    validate_sha256("precondition.content_sha256", sha)?;
    Ok(sha.to_string())
}

/// Checks a precondition against the memory's current digest.
pub fn check_precondition(
    memory_id: &str,
    expected: Option<&str>,
    current: &str,
) -> Result<(), Error> {
    match expected {
        Some(e) if e != current => Err(Error::new(
            ErrorKind::MemoryPreconditionFailed,
            format!(
                "memory `{memory_id}` has content_sha256 `{current}`, not `{e}`: it changed since you read it; \
                 nothing was modified"
            ),
        )),
        _ => Ok(()),
    }
}

/// The error for a create or rename onto a taken path.
pub fn path_taken(path: &str) -> Error {
    Error::new(
        ErrorKind::MemoryPathConflict,
        format!(
            "a memory already exists at path `{}` in this store",
            shorten(path)
        ),
    )
}

/// The error for a path that would turn a memory into a directory or the reverse.
pub fn path_blocked(path: &str, other: &str) -> Error {
    let why = if other.len() < path.len() {
        format!(
            "`{}` is a memory, so it cannot also be a directory",
            shorten(other)
        )
    } else {
        format!(
            "memories exist below `{}/` (for example `{}`)",
            shorten(path),
            shorten(other)
        )
    };
    Error::new(
        ErrorKind::MemoryPathConflict,
        format!(
            "path `{}` conflicts with the store's tree: {why}",
            shorten(path)
        ),
    )
}

/// The error for a create beyond the per-store cap.
pub fn store_full(id: &str) -> Error {
    Error::invalid(format!(
        "memory store `{id}` already holds the maximum of {MAX_MEMORIES_PER_STORE} memories: delete some \
         before creating new ones (existing memories can still be updated)"
    ))
}

// ---------------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------------

/// A memory as stored: the row plus, when asked for, its current content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryRecord {
    pub id: String,
    pub memory_store_id: String,
    pub path: String,
    pub memory_version_id: String,
    pub content_sha256: String,
    pub content_size_bytes: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub content: Option<String>,
}

impl MemoryRecord {
    /// The API object; `content` only with the full view.
    pub fn to_object(self, view: MemoryView) -> Memory {
        Memory {
            id: self.id,
            kind: "memory".to_string(),
            content: if view == MemoryView::Full {
                self.content
            } else {
                None
            },
            content_sha256: self.content_sha256,
            content_size_bytes: self.content_size_bytes,
            created_at: format_micros(self.created_at),
            memory_store_id: self.memory_store_id,
            memory_version_id: self.memory_version_id,
            path: self.path,
            updated_at: format_micros(self.updated_at),
        }
    }
}

/// A memory version as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    pub id: String,
    pub memory_store_id: String,
    pub memory_id: String,
    pub operation: MemoryVersionOperation,
    pub path: Option<String>,
    pub content: Option<String>,
    pub content_sha256: Option<String>,
    pub content_size_bytes: Option<i64>,
    pub created_at: i64,
    pub created_by: Option<Actor>,
    pub redacted_at: Option<i64>,
    pub redacted_by: Option<Actor>,
}

impl VersionRecord {
    /// The API object. Redacted and `deleted` versions have no content whatever the view.
    pub fn to_object(self, view: MemoryView) -> MemoryVersion {
        let redacted = self.redacted_at.is_some();
        let has_content = !redacted && self.operation != MemoryVersionOperation::Deleted;
        MemoryVersion {
            id: self.id,
            kind: "memory_version".to_string(),
            content: if has_content && view == MemoryView::Full {
                self.content
            } else {
                None
            },
            content_sha256: if has_content {
                self.content_sha256
            } else {
                None
            },
            content_size_bytes: if has_content {
                self.content_size_bytes
            } else {
                None
            },
            created_at: format_micros(self.created_at),
            created_by: self.created_by,
            memory_id: self.memory_id,
            memory_store_id: self.memory_store_id,
            operation: self.operation,
            path: if redacted { None } else { self.path },
            redacted_at: self.redacted_at.map(format_micros),
            redacted_by: self.redacted_by,
        }
    }
}

/// The error for redacting the version a live memory currently points at.
pub fn cannot_redact_head(version_id: &str, memory_id: &str) -> Error {
    Error::invalid(format!(
        "memory version `{version_id}` is the current version of memory `{memory_id}` and cannot be redacted: \
         update or delete the memory first, then redact this version"
    ))
}

// ---------------------------------------------------------------------------------------------
// List parameters
// ---------------------------------------------------------------------------------------------

/// `view=basic|full`, `default` when absent.
pub fn parse_view(v: Option<&str>, default: MemoryView) -> Result<MemoryView, Error> {
    match v {
        None | Some("") => Ok(default),
        Some("basic") => Ok(MemoryView::Basic),
        Some("full") => Ok(MemoryView::Full),
        Some(other) => Err(Error::invalid(format!(
            "view: must be `basic` or `full`, got `{other}`"
        ))),
    }
}

/// `depth`: 0 (everything below the prefix) or 1 (direct children, deeper paths rolled up).
pub fn parse_depth(d: Option<i64>) -> Result<usize, Error> {
    match d {
        None | Some(0) => Ok(0),
        Some(1) => Ok(1),
        Some(other) => Err(Error::invalid(format!(
            "depth: must be 0 (list everything below the prefix) or 1 (direct children only), got {other}"
        ))),
    }
}

/// The page size of a list: `limit` capped at 20 with the full view (pages carry content).
pub fn effective_limit(limit: i64, view: MemoryView) -> i64 {
    if view == MemoryView::Full {
        limit.min(MAX_FULL_VIEW_LIMIT)
    } else {
        limit
    }
}

/// One entry of a memory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEntry {
    /// The memory at this path is listed itself.
    Memory,
    /// The memory is below the depth limit and stands under this `memory_prefix` marker.
    Prefix(String),
}

/// Where a memory at `path` (which starts with `prefix`) appears when listing `prefix` to
/// `depth` (0 = unlimited): itself, or rolled up into the marker of its directory at that
/// depth. `/a/` at depth 1: `/a/x` → itself, `/a/b/c` → marker `/a/b/`.
pub fn list_entry(prefix: &str, path: &str, depth: usize) -> ListEntry {
    if depth == 0 {
        return ListEntry::Memory;
    }
    let rest = path.strip_prefix(prefix).unwrap_or(path);
    match rest.match_indices('/').nth(depth - 1) {
        Some((i, _)) => ListEntry::Prefix(format!("{prefix}{}", &rest[..=i])),
        None => ListEntry::Memory,
    }
}

/// Where a memory listing resumes. Items are ordered by their key (a memory's path or a
/// marker's path); a cursor records the last key returned. Memory paths never end with `/`,
/// so a key ending with `/` was a marker, and the next page starts after everything under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResume {
    /// The lower bound of the paths still to list.
    pub from: String,
    /// Whether `from` itself is still to be listed.
    pub inclusive: bool,
}

impl ListResume {
    pub fn after_key(last_key: &str) -> Self {
        if last_key.ends_with('/') {
            Self {
                from: prefix_end(last_key),
                inclusive: true,
            }
        } else {
            Self {
                from: last_key.to_string(),
                inclusive: false,
            }
        }
    }

    pub fn from_cursor(c: &Cursor) -> Self {
        Self::after_key(&c.id)
    }
}

/// The cursor of the page after the one ending with `last_key`.
pub fn list_cursor(last_key: &str) -> Cursor {
    Cursor {
        key: 0,
        id: last_key.to_string(),
        desc: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create_store(v: Value) -> Result<MemoryStoreConfig, Error> {
        MemoryStoreConfig::create(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn store_create_and_limits() {
        let s = create_store(json!({"name": "Notes"})).unwrap();
        assert_eq!(s.description, "");
        assert!(s.metadata.is_empty());
        assert!(create_store(json!({"name": ""})).is_err());
        assert!(create_store(json!({"name": "x".repeat(256)})).is_err());
        assert!(create_store(json!({"name": "é".repeat(255)})).is_ok());
        assert!(create_store(json!({"name": "a\nb"})).is_err());
        assert!(create_store(json!({"name": "n", "description": "d".repeat(1025)})).is_err());
        assert!(create_store(json!({"name": "n", "metadata": {"k": 1}})).is_err());
    }

    #[test]
    fn store_update_is_three_state() {
        let s = create_store(
            json!({"name": "n", "description": "d", "metadata": {"a": "1", "b": "2"}}),
        )
        .unwrap();
        let same = s
            .update(serde_json::from_value(json!({})).unwrap())
            .unwrap();
        assert_eq!(same, s);
        let p = json!({"name": null, "description": null, "metadata": {"a": null, "c": "3"}});
        let next = s.update(serde_json::from_value(p).unwrap()).unwrap();
        assert_eq!(next.name, "n");
        assert_eq!(next.description, "");
        assert_eq!(next.metadata.keys().collect::<Vec<_>>(), vec!["b", "c"]);
        let renamed = s
            .update(serde_json::from_value(json!({"name": "m", "metadata": null})).unwrap())
            .unwrap();
        assert_eq!(renamed.name, "m");
        assert_eq!(renamed.metadata, s.metadata);
        assert!(
            s.update(serde_json::from_value(json!({"name": ""})).unwrap())
                .is_err()
        );
    }

    #[test]
    fn slugs() {
        assert_eq!(mount_slug("My Notes!!v2"), "my-notes-v2");
        assert_eq!(mount_slug("été"), "-t-");
        assert_eq!(mount_slug("abc"), "abc");
    }

    #[test]
    fn paths() {
        for ok in [
            "/a",
            "/a/b.md",
            "/projects/foo/notes.md",
            "/é",
            "/a b/c",
            "/.hidden",
            "/a..b",
        ] {
            assert!(validate_path(ok).is_ok(), "{ok}");
        }
        let twenty = "/s".repeat(20);
        assert!(validate_path(&twenty).is_ok());
        let long = format!("/{}", "x".repeat(1023));
        assert!(validate_path(&long).is_ok());
        for bad in [
            "",
            "/",
            "a/b",
            "/a/",
            "//a",
            "/a//b",
            "/a/./b",
            "/a/../b",
            "/..",
            "/a\u{0}b",
            "/a\tb",
            "/a\u{200B}b",
            "/a\u{2028}b",
            "/e\u{301}",
            "/\u{1100}\u{1161}",
            "/\u{212B}",
        ] {
            assert!(validate_path(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(validate_path(&"/s".repeat(21)).is_err());
        assert!(validate_path(&format!("/{}", "x".repeat(1024))).is_err());
        // A combining mark that has no precomposed form with its letter is NFC.
        assert!(validate_path("/q\u{301}").is_ok());
    }

    #[test]
    fn prefixes() {
        assert!(validate_prefix("/").is_ok());
        assert!(validate_prefix("/notes/").is_ok());
        assert!(validate_prefix("/a/b/").is_ok());
        for bad in ["", "notes/", "/notes", "//", "/a//", "/../"] {
            assert!(validate_prefix(bad).is_err(), "{bad:?}");
        }
        assert_eq!(prefix_end("/a/"), "/a0");
        assert_eq!(prefix_end("/"), "0");
        // Everything under the prefix sorts inside [prefix, prefix_end), siblings outside.
        let (lo, hi) = ("/notes/".to_string(), prefix_end("/notes/"));
        for inside in ["/notes/a", "/notes/zzz/y", "/notes/\u{10FFFF}"] {
            assert!(inside >= lo.as_str() && inside < hi.as_str(), "{inside}");
        }
        for outside in [
            "/notes",
            "/notes-archive/x",
            "/notes0",
            "/notes.md",
            "/note/x",
        ] {
            assert!(
                !(outside >= lo.as_str() && outside < hi.as_str()),
                "{outside}"
            );
        }
    }

    #[test]
    fn ancestors_of_paths() {
        assert_eq!(ancestors("/a/b/c"), vec!["/a", "/a/b"]);
        assert!(ancestors("/a").is_empty());
    }

    #[test]
    fn content_and_digests() {
        assert!(validate_content("").is_ok());
        assert!(validate_content(&"x".repeat(MAX_CONTENT_BYTES)).is_ok());
        assert!(validate_content(&"x".repeat(MAX_CONTENT_BYTES + 1)).is_err());
        assert!(validate_content("a\0b").is_err());
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(validate_sha256("x", &sha256_hex("abc")).is_ok());
        assert!(validate_sha256("x", &sha256_hex("abc").to_uppercase()).is_err());
        assert!(validate_sha256("x", "abc").is_err());
    }

    #[test]
    fn new_memories() {
        let ok = NewMemory::create(
            serde_json::from_value(json!({"path": "/a", "content": ""})).unwrap(),
        );
        assert_eq!(
            ok.unwrap(),
            NewMemory {
                path: "/a".into(),
                content: String::new()
            }
        );
        assert!(
            NewMemory::create(
                serde_json::from_value(json!({"path": "/a", "content": null})).unwrap()
            )
            .is_err()
        );
        assert!(NewMemory::create(serde_json::from_value(json!({"path": "/a"})).unwrap()).is_err());
        assert!(
            NewMemory::create(
                serde_json::from_value(json!({"path": "a", "content": "x"})).unwrap()
            )
            .is_err()
        );
    }

    #[test]
    fn memory_changes() {
        let parse = |v: Value| MemoryChange::from_params(serde_json::from_value(v).unwrap());
        assert_eq!(parse(json!({})).unwrap(), MemoryChange::default());
        assert_eq!(
            parse(json!({"content": null, "path": null, "precondition": null})).unwrap(),
            MemoryChange::default()
        );
        let sha = sha256_hex("x");
        let c = parse(json!({"content": "y", "path": "/b", "precondition": {"type": "content_sha256", "content_sha256": sha}}))
            .unwrap();
        assert_eq!(c.content.as_deref(), Some("y"));
        assert_eq!(c.path.as_deref(), Some("/b"));
        assert_eq!(c.expected_sha256.as_deref(), Some(sha.as_str()));
        assert!(parse(json!({"path": "/b/"})).is_err());
        assert!(parse(json!({"precondition": {"type": "etag", "content_sha256": sha}})).is_err());
        assert!(parse(json!({"precondition": {"type": "content_sha256"}})).is_err());
        assert!(
            parse(json!({"precondition": {"type": "content_sha256", "content_sha256": "nothex"}}))
                .is_err()
        );
        assert!(parse(json!({"precondition": "x"})).is_err());
    }

    #[test]
    fn preconditions() {
        let cur = sha256_hex("a");
        assert!(check_precondition("mem_1", None, &cur).is_ok());
        assert!(check_precondition("mem_1", Some(&cur), &cur).is_ok());
        let e = check_precondition("mem_1", Some(&sha256_hex("b")), &cur).unwrap_err();
        assert_eq!(e.kind, ErrorKind::MemoryPreconditionFailed);
        assert_eq!(path_taken("/a").kind, ErrorKind::MemoryPathConflict);
        assert!(
            path_blocked("/a/b", "/a")
                .message
                .contains("cannot also be a directory")
        );
        assert!(
            path_blocked("/a", "/a/b")
                .message
                .contains("memories exist below")
        );
    }

    #[test]
    fn list_parameters() {
        assert_eq!(
            parse_view(None, MemoryView::Full).unwrap(),
            MemoryView::Full
        );
        assert_eq!(
            parse_view(Some("basic"), MemoryView::Full).unwrap(),
            MemoryView::Basic
        );
        assert!(parse_view(Some("FULL"), MemoryView::Basic).is_err());
        assert_eq!(parse_depth(None).unwrap(), 0);
        assert_eq!(parse_depth(Some(1)).unwrap(), 1);
        assert!(parse_depth(Some(2)).is_err());
        assert!(parse_depth(Some(-1)).is_err());
        assert_eq!(effective_limit(100, MemoryView::Full), 20);
        assert_eq!(effective_limit(100, MemoryView::Basic), 100);
        assert_eq!(effective_limit(5, MemoryView::Full), 5);
    }

    #[test]
    fn roll_up() {
        assert_eq!(list_entry("/", "/a/b/c", 0), ListEntry::Memory);
        assert_eq!(list_entry("/", "/a", 1), ListEntry::Memory);
        assert_eq!(
            list_entry("/", "/a/b/c", 1),
            ListEntry::Prefix("/a/".into())
        );
        assert_eq!(
            list_entry("/a/", "/a/b/c", 1),
            ListEntry::Prefix("/a/b/".into())
        );
        assert_eq!(list_entry("/a/", "/a/x", 1), ListEntry::Memory);
        assert_eq!(
            list_entry("/a/", "/a/b/c/d", 2),
            ListEntry::Prefix("/a/b/c/".into())
        );
    }

    #[test]
    fn resume_points() {
        assert_eq!(
            ListResume::after_key("/a/x"),
            ListResume {
                from: "/a/x".into(),
                inclusive: false
            }
        );
        assert_eq!(
            ListResume::after_key("/a/b/"),
            ListResume {
                from: "/a/b0".into(),
                inclusive: true
            }
        );
        let c = list_cursor("/a/b/");
        assert_eq!(
            ListResume::from_cursor(&Cursor::decode(&c.encode()).unwrap()),
            ListResume::after_key("/a/b/")
        );
    }

    #[test]
    fn objects_hide_what_the_view_and_state_hide() {
        let m = MemoryRecord {
            id: "mem_1".into(),
            memory_store_id: "memstore_1".into(),
            path: "/a".into(),
            memory_version_id: "memver_1".into(),
            content_sha256: sha256_hex("x"),
            content_size_bytes: 1,
            created_at: 0,
            updated_at: 0,
            content: Some("x".into()),
        };
        assert_eq!(
            m.clone().to_object(MemoryView::Full).content.as_deref(),
            Some("x")
        );
        assert_eq!(m.to_object(MemoryView::Basic).content, None);

        let v = VersionRecord {
            id: "memver_1".into(),
            memory_store_id: "memstore_1".into(),
            memory_id: "mem_1".into(),
            operation: MemoryVersionOperation::Created,
            path: Some("/a".into()),
            content: Some("x".into()),
            content_sha256: Some(sha256_hex("x")),
            content_size_bytes: Some(1),
            created_at: 0,
            created_by: Some(Actor::ApiActor {
                api_key_id: "apikey_1".into(),
            }),
            redacted_at: None,
            redacted_by: None,
        };
        let full = v.clone().to_object(MemoryView::Full);
        assert_eq!(full.content.as_deref(), Some("x"));
        let basic = v.clone().to_object(MemoryView::Basic);
        assert_eq!(basic.content, None);
        assert!(basic.content_sha256.is_some());
        let redacted = VersionRecord {
            redacted_at: Some(5),
            ..v.clone()
        }
        .to_object(MemoryView::Full);
        assert_eq!(
            (
                redacted.content,
                redacted.path,
                redacted.content_sha256,
                redacted.content_size_bytes
            ),
            (None, None, None, None)
        );
        let deleted = VersionRecord {
            operation: MemoryVersionOperation::Deleted,
            ..v
        }
        .to_object(MemoryView::Full);
        assert_eq!((deleted.content, deleted.content_sha256), (None, None));
        assert_eq!(deleted.path.as_deref(), Some("/a"));
    }
}
