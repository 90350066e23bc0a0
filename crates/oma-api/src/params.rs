//! Request bodies as the spec documents them (§3), for the OpenAPI document only.
//!
//! The handlers read bodies as loose JSON (`oma_core` validates it and names the offending
//! field in its 400), so these types are never deserialised: they describe what a client may
//! send. Nested configuration reuses the response shapes, which are what the rules resolve a
//! request into. `Option<T>` fields are optional and accept `null` (the deserialize contract).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde_json::Value;

use crate::agents::{AgentSkill, AgentTool, ExecutionIdentity, McpServer, ModelConfig, Multiagent};
use crate::environments::EnvironmentConfig;
use crate::events::EventParams;
use crate::sessions::BudgetLimit;

/// `map<string, string | null>`: set a key to a string to upsert it, to null to delete it.
pub type MetadataPatch = BTreeMap<String, Option<String>>;

/// A model id string or a `model_config` object.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum ModelParam {
    Id(String),
    Config(ModelConfig),
}

/// `POST /v1/agents`.
#[derive(JsonSchema)]
pub struct CreateAgentBody {
    pub name: String,
    pub model: ModelParam,
    pub description: Option<String>,
    pub system: Option<String>,
    pub tools: Option<Vec<AgentTool>>,
    pub mcp_servers: Option<Vec<McpServer>>,
    pub skills: Option<Vec<AgentSkill>>,
    pub multiagent: Option<Multiagent>,
    pub execution_identity: Option<ExecutionIdentity>,
    pub metadata: Option<BTreeMap<String, String>>,
}

/// `POST /v1/agents/{agent_id}`: omitted fields are preserved.
#[derive(JsonSchema)]
pub struct UpdateAgentBody {
    pub name: Option<String>,
    pub model: Option<ModelParam>,
    pub description: Option<String>,
    pub system: Option<String>,
    pub tools: Option<Vec<AgentTool>>,
    pub mcp_servers: Option<Vec<McpServer>>,
    pub skills: Option<Vec<AgentSkill>>,
    pub multiagent: Option<Multiagent>,
    pub execution_identity: Option<ExecutionIdentity>,
    pub metadata: Option<MetadataPatch>,
    /// Optimistic-concurrency precondition.
    #[schemars(range(min = 1))]
    pub version: Option<i64>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EnvironmentScope {
    Organization,
    Account,
}

/// `POST /v1/environments`.
#[derive(JsonSchema)]
pub struct CreateEnvironmentBody {
    pub name: String,
    pub config: Option<EnvironmentConfig>,
    pub description: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub scope: Option<EnvironmentScope>,
}

/// `POST /v1/environments/{environment_id}`.
#[derive(JsonSchema)]
pub struct UpdateEnvironmentBody {
    pub name: Option<String>,
    pub config: Option<EnvironmentConfig>,
    pub description: Option<String>,
    pub metadata: Option<MetadataPatch>,
    pub scope: Option<EnvironmentScope>,
}

/// `POST /v1/environments/{environment_id}/work/{work_id}`.
#[derive(JsonSchema)]
pub struct UpdateWorkBody {
    pub metadata: Option<MetadataPatch>,
}

/// `POST /v1/environments/{environment_id}/work/{work_id}/stop`.
#[derive(JsonSchema)]
pub struct StopWorkBody {
    pub force: Option<bool>,
}

/// The agent of a new session: an id (latest version) or `{"type":"agent","id","version"}`.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum SessionAgentParam {
    Id(String),
    Pinned(AgentPin),
}

#[derive(JsonSchema)]
#[serde(tag = "type", rename = "agent")]
pub struct AgentPin {
    pub id: String,
    pub version: Option<i64>,
}

/// `SessionResourceParams`.
#[derive(JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionResourceParam {
    File {
        file_id: String,
        mount_path: Option<String>,
    },
    GithubRepository {
        url: String,
        authorization_token: String,
        mount_path: Option<String>,
        checkout: Option<Value>,
    },
    MemoryStore {
        memory_store_id: String,
        access: Option<String>,
        instructions: Option<String>,
    },
}

/// `POST /v1/sessions`.
#[derive(JsonSchema)]
pub struct CreateSessionBody {
    pub agent: SessionAgentParam,
    pub environment_id: String,
    pub budget: Option<BudgetLimit>,
    /// `user.message` and `user.define_outcome` only; at most 50.
    #[schemars(length(max = 50))]
    pub initial_events: Option<Vec<EventParams>>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub resources: Option<Vec<SessionResourceParam>>,
    pub title: Option<String>,
    pub vault_ids: Option<Vec<String>>,
}

/// `BetaManagedAgentsSessionAgentUpdateParam`: only tools and MCP servers change mid-session.
#[derive(JsonSchema)]
pub struct SessionAgentUpdate {
    pub tools: Option<Vec<AgentTool>>,
    pub mcp_servers: Option<Vec<McpServer>>,
}

/// `POST /v1/sessions/{session_id}`.
#[derive(JsonSchema)]
pub struct UpdateSessionBody {
    pub agent: Option<SessionAgentUpdate>,
    pub budget: Option<BudgetLimit>,
    pub metadata: Option<MetadataPatch>,
    pub title: Option<String>,
    pub vault_ids: Option<Vec<String>>,
}

/// `POST /v1/sessions/{session_id}/events`.
#[derive(JsonSchema)]
pub struct SendEventsBody {
    pub events: Vec<EventParams>,
}

/// `POST /v1/sessions/{session_id}/resources`.
#[derive(JsonSchema)]
#[serde(tag = "type", rename = "file")]
pub struct AddResourceBody {
    pub file_id: String,
    pub mount_path: Option<String>,
}

/// `POST /v1/sessions/{session_id}/resources/{resource_id}`.
#[derive(JsonSchema)]
pub struct UpdateResourceBody {
    pub authorization_token: String,
}

/// `POST /v1/vaults`.
#[derive(JsonSchema)]
pub struct CreateVaultBody {
    pub display_name: String,
    pub metadata: Option<BTreeMap<String, String>>,
}

/// `POST /v1/vaults/{vault_id}`.
#[derive(JsonSchema)]
pub struct UpdateVaultBody {
    pub display_name: Option<String>,
    pub metadata: Option<MetadataPatch>,
}

/// `CredentialAuthCreateParams` / `…UpdateParams`: `static_bearer` or `mcp_oauth` with their
/// secrets (write-only: never returned).
#[derive(JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CredentialAuthParam {
    StaticBearer {
        mcp_server_url: Option<String>,
        token: Option<String>,
    },
    McpOauth {
        mcp_server_url: Option<String>,
        access_token: Option<String>,
        expires_at: Option<String>,
        refresh: Option<Value>,
    },
}

/// `POST /v1/vaults/{vault_id}/credentials`.
#[derive(JsonSchema)]
pub struct CreateCredentialBody {
    pub auth: CredentialAuthParam,
    pub display_name: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
}

/// `POST /v1/vaults/{vault_id}/credentials/{credential_id}`.
#[derive(JsonSchema)]
pub struct UpdateCredentialBody {
    pub auth: Option<CredentialAuthParam>,
    pub display_name: Option<String>,
    pub metadata: Option<MetadataPatch>,
}

/// `POST /v1/memory_stores/{memory_store_id}`.
#[derive(JsonSchema)]
pub struct UpdateMemoryStoreBody {
    pub name: Option<String>,
    pub description: Option<String>,
    pub metadata: Option<MetadataPatch>,
}

/// `BetaManagedAgentsPreconditionParam`.
#[derive(JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Precondition {
    ContentSha256 { content_sha256: String },
}

/// `POST /v1/memory_stores/{memory_store_id}/memories/{memory_id}`.
#[derive(JsonSchema)]
pub struct UpdateMemoryBody {
    pub content: Option<String>,
    pub path: Option<String>,
    pub precondition: Option<Precondition>,
}

/// `POST /v1/files`: one `file` part and an optional lifetime.
#[derive(JsonSchema)]
pub struct FileUpload {
    #[schemars(extend("contentMediaType" = "application/octet-stream"))]
    pub file: String,
    #[schemars(range(min = 3600, max = 7776000))]
    pub expires_in_seconds: Option<i64>,
}

/// `POST /v1/skills` and `POST /v1/skills/{skill_id}/versions`: the skill's files, all under
/// one top-level directory holding `SKILL.md`, each part's filename its relative path.
#[derive(JsonSchema)]
pub struct SkillUpload {
    #[serde(rename = "files[]")]
    pub files: Vec<BinaryPart>,
    /// Create only; defaults to the `name` of SKILL.md's front matter.
    pub display_name: Option<String>,
}

/// A binary multipart part.
#[derive(JsonSchema)]
#[schemars(extend("contentMediaType" = "application/octet-stream"))]
pub struct BinaryPart(pub String);

/// An oma extension whose shape is not part of the Managed Agents contract: any JSON object.
#[derive(JsonSchema)]
pub struct OmaObject(pub BTreeMap<String, Value>);
