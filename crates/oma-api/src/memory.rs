//! Wire types: memory stores, memories and memory versions (spec §3.5, §5.5).
//!
//! Response objects emit every documented key (`null` when unset) so the SDK's strict
//! validation accepts them. Create params live here; update params need three-state fields
//! and live in `oma_core::memory`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// `BetaManagedAgentsMemoryStore`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct MemoryStore {
    pub id: String,
    /// Always `"memory_store"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub archived_at: Option<String>,
    pub created_at: String,
    /// Empty string when unset (never `null`).
    pub description: String,
    pub metadata: BTreeMap<String, String>,
    pub name: String,
    pub updated_at: String,
}

/// `BetaManagedAgentsDeletedMemoryStore`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct MemoryStoreDeleted {
    pub id: String,
    /// Always `"memory_store_deleted"`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl MemoryStoreDeleted {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            kind: "memory_store_deleted".to_string(),
        }
    }
}

/// `BetaManagedAgentsMemory`: a text document at a path inside a store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Memory {
    pub id: String,
    /// Always `"memory"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `null` with `view=basic`.
    pub content: Option<String>,
    pub content_sha256: String,
    pub content_size_bytes: i64,
    pub created_at: String,
    pub memory_store_id: String,
    pub memory_version_id: String,
    pub path: String,
    pub updated_at: String,
}

/// `BetaManagedAgentsMemoryPrefix`: a "directory" marker in a `depth`-limited listing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct MemoryPrefix {
    /// Always `"memory_prefix"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The rolled-up prefix, ending with `/`.
    pub path: String,
}

impl MemoryPrefix {
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            kind: "memory_prefix".to_string(),
            path: path.into(),
        }
    }
}

/// `BetaManagedAgentsMemoryListItem`: the items of `GET …/memories`. Each variant carries its
/// own `type`, so the union serialises without an extra tag.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(untagged)]
pub enum MemoryListItem {
    Memory(Memory),
    Prefix(MemoryPrefix),
}

/// `BetaManagedAgentsDeletedMemory`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct MemoryDeleted {
    pub id: String,
    /// Always `"memory_deleted"`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl MemoryDeleted {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            kind: "memory_deleted".to_string(),
        }
    }
}

/// `BetaManagedAgentsMemoryVersionOperation`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemoryVersionOperation {
    Created,
    Modified,
    Deleted,
}

impl MemoryVersionOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Modified => "modified",
            Self::Deleted => "deleted",
        }
    }

    /// The operation named `s`, if it is one of the three literals.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "created" => Some(Self::Created),
            "modified" => Some(Self::Modified),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// `BetaManagedAgentsActor`: who wrote or redacted a memory version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// An agent writing through a session's mounted store.
    SessionActor {
        session_id: String,
    },
    /// A direct API caller, named by the key it authenticated with.
    ApiActor {
        api_key_id: String,
    },
    UserActor {
        user_id: String,
    },
    ServiceAccountActor {
        service_account_id: String,
    },
}

impl Actor {
    /// The `type` literal.
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::SessionActor { .. } => "session_actor",
            Actor::ApiActor { .. } => "api_actor",
            Actor::UserActor { .. } => "user_actor",
            Actor::ServiceAccountActor { .. } => "service_account_actor",
        }
    }

    /// The id the actor carries (session, key, user or service account id).
    pub fn id(&self) -> &str {
        match self {
            Actor::SessionActor { session_id } => session_id,
            Actor::ApiActor { api_key_id } => api_key_id,
            Actor::UserActor { user_id } => user_id,
            Actor::ServiceAccountActor { service_account_id } => service_account_id,
        }
    }

    /// Rebuilds an actor from its `type` literal and id (how the store keeps it).
    pub fn from_parts(kind: &str, id: String) -> Option<Self> {
        match kind {
            "session_actor" => Some(Actor::SessionActor { session_id: id }),
            "api_actor" => Some(Actor::ApiActor { api_key_id: id }),
            "user_actor" => Some(Actor::UserActor { user_id: id }),
            "service_account_actor" => Some(Actor::ServiceAccountActor {
                service_account_id: id,
            }),
            _ => None,
        }
    }
}

/// `BetaManagedAgentsMemoryVersion`: one recorded change to a memory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct MemoryVersion {
    pub id: String,
    /// Always `"memory_version"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `null` with `view=basic`, for `deleted` versions and once redacted.
    pub content: Option<String>,
    /// `null` for `deleted` versions and once redacted.
    pub content_sha256: Option<String>,
    /// `null` for `deleted` versions and once redacted.
    pub content_size_bytes: Option<i64>,
    pub created_at: String,
    pub created_by: Option<Actor>,
    pub memory_id: String,
    pub memory_store_id: String,
    pub operation: MemoryVersionOperation,
    /// `null` if and only if the version was redacted.
    pub path: Option<String>,
    pub redacted_at: Option<String>,
    pub redacted_by: Option<Actor>,
}

/// `BetaManagedAgentsMemoryView`: whether responses carry `content`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemoryView {
    Basic,
    Full,
}

/// `POST /v1/memory_stores` body. Values are checked by `oma_core::memory`, which gives
/// precise messages; only the JSON types are enforced here.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
pub struct CreateMemoryStoreParams {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// `POST /v1/memory_stores/{id}/memories` body. `content` is typed `string | null` by the SDK
/// but a memory always has text; `null` (or a missing key) is rejected by the domain rules.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
pub struct CreateMemoryParams {
    #[serde(default)]
    pub content: Option<String>,
    pub path: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn actors_are_tagged_by_type() {
        let a = Actor::ApiActor {
            api_key_id: "apikey_1".into(),
        };
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"type": "api_actor", "api_key_id": "apikey_1"})
        );
        let s: Actor =
            serde_json::from_value(json!({"type": "session_actor", "session_id": "sesn_1"}))
                .unwrap();
        assert_eq!(s.kind(), "session_actor");
        assert_eq!(s.id(), "sesn_1");
        assert_eq!(Actor::from_parts(s.kind(), s.id().to_string()), Some(s));
        assert_eq!(Actor::from_parts("robot", "x".into()), None);
    }

    #[test]
    fn list_items_serialise_without_extra_tag() {
        let p = MemoryListItem::Prefix(MemoryPrefix::new("/a/"));
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"type": "memory_prefix", "path": "/a/"})
        );
    }

    #[test]
    fn versions_emit_every_key() {
        let v = MemoryVersion {
            id: "memver_1".into(),
            kind: "memory_version".into(),
            content: None,
            content_sha256: None,
            content_size_bytes: None,
            created_at: "2026-01-01T00:00:00.000000Z".into(),
            created_by: None,
            memory_id: "mem_1".into(),
            memory_store_id: "memstore_1".into(),
            operation: MemoryVersionOperation::Deleted,
            path: Some("/a".into()),
            redacted_at: None,
            redacted_by: None,
        };
        let j = serde_json::to_value(&v).unwrap();
        assert_eq!(j.as_object().unwrap().len(), 13);
        assert_eq!(j["operation"], "deleted");
        assert!(j["content"].is_null());
        for op in ["created", "modified", "deleted"] {
            assert_eq!(
                MemoryVersionOperation::parse(op).map(|o| o.as_str()),
                Some(op)
            );
        }
    }
}
