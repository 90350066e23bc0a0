//! Wire types: files (spec §3.7, §5.7).
//!
//! Uploads are multipart (spec §2.8) and downloads are raw bytes (§2.10), so the only JSON
//! shapes are the metadata object, its scope and the deletion receipt.

use serde::{Deserialize, Serialize};

/// `type` of [`FileMetadata`].
pub const FILE_TYPE: &str = "file";
/// `type` of [`FileDeleted`].
pub const FILE_DELETED_TYPE: &str = "file_deleted";
/// The only scope kind the SDK knows.
pub const SCOPE_SESSION: &str = "session";

/// `BetaFileMetadata`. Every key is emitted (`null` when unset) even though the SDK marks
/// `downloadable`, `expires_at` and `scope` optional, so SDKs that type them `T | null` agree.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct FileMetadata {
    pub id: String,
    /// Always `"file"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub filename: String,
    pub mime_type: String,
    pub size_bytes: i64,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub downloadable: Option<bool>,
    pub scope: Option<FileScope>,
}

/// `BetaFileScope`: the resource a file was produced in (today always a session).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct FileScope {
    /// Always `"session"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

impl FileScope {
    pub fn session(id: impl Into<String>) -> Self {
        Self {
            kind: SCOPE_SESSION.to_string(),
            id: id.into(),
        }
    }
}

/// `BetaDeletedFile`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct FileDeleted {
    pub id: String,
    /// Always `"file_deleted"`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl FileDeleted {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            kind: FILE_DELETED_TYPE.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_emits_every_key() {
        let m = FileMetadata {
            id: "file_1".into(),
            kind: FILE_TYPE.into(),
            filename: "a.txt".into(),
            mime_type: "text/plain".into(),
            size_bytes: 3,
            created_at: "2026-01-02T03:04:05.000000Z".into(),
            expires_at: None,
            downloadable: Some(true),
            scope: None,
        };
        let v = serde_json::to_value(&m).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for k in [
            "id",
            "type",
            "filename",
            "mime_type",
            "size_bytes",
            "created_at",
            "expires_at",
            "downloadable",
            "scope",
        ] {
            assert!(keys.contains(&k), "missing {k}");
        }
        assert!(v["scope"].is_null());
        let scoped = FileMetadata {
            scope: Some(FileScope::session("sesn_1")),
            ..m
        };
        let v = serde_json::to_value(&scoped).unwrap();
        assert_eq!(
            v["scope"],
            serde_json::json!({"type": "session", "id": "sesn_1"})
        );
        assert_eq!(
            serde_json::to_value(FileDeleted::new("file_1")).unwrap()["type"],
            "file_deleted"
        );
    }
}
