//! Every operation the router serves, with its parameters, body and success response. The
//! document is assembled from this table; tests check it against the router both ways (each
//! entry reaches a handler, each `.route(…)` of `routes/*.rs` has its entries).

use oma_api::agents::Agent;
use oma_api::environments::{Environment, EnvironmentDeleted};
use oma_api::events::{SendSessionEvents, SessionEvent};
use oma_api::files::{FileDeleted, FileMetadata};
use oma_api::memory::{
    CreateMemoryParams, CreateMemoryStoreParams, Memory, MemoryDeleted, MemoryListItem,
    MemoryStore, MemoryStoreDeleted, MemoryVersion,
};
use oma_api::params::*;
use oma_api::sessions::{
    Session, SessionDeleted, SessionResource, SessionResourceDeleted, SessionThread,
};
use oma_api::skills::{Skill, SkillDeleted, SkillVersion, SkillVersionDeleted};
use oma_api::vaults::{Credential, CredentialDeleted, Vault, VaultDeleted};
use oma_api::work::{Work, WorkQueueStats};
use oma_api::{BidiPage, Page};
use schemars::{JsonSchema, Schema, SchemaGenerator};

/// Builds the schema of one body or response (registering its definitions).
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn s<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

fn page<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<Page<T>>()
}

pub enum Body {
    None,
    Json(SchemaFn),
    Multipart(SchemaFn),
}

pub enum Success {
    Json(SchemaFn),
    /// `GET …/work/poll`: the item, or JSON `null` when the queue is empty.
    JsonOrNull(SchemaFn),
    /// An SSE stream whose `data:` lines are JSON of this schema.
    EventStream(SchemaFn),
    Binary,
}

/// Who may call an operation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    None,
    Key,
}

/// The type of a query parameter.
pub enum Ty {
    Str,
    Int { min: Option<i64>, max: Option<i64> },
    Bool,
    Time,
    Enum(&'static [&'static str]),
    Array(&'static [&'static str]),
    StrArray,
}

pub struct Query {
    pub name: &'static str,
    pub ty: Ty,
}

pub struct Op {
    pub method: &'static str,
    pub path: &'static str,
    pub id: &'static str,
    pub summary: &'static str,
    pub query: &'static [Query],
    pub body: Body,
    pub ok: Success,
    pub auth: Auth,
}

const fn q(name: &'static str, ty: Ty) -> Query {
    Query { name, ty }
}

const fn limit(max: i64) -> Query {
    q(
        "limit",
        Ty::Int {
            min: Some(1),
            max: Some(max),
        },
    )
}

const PAGE: Query = q("page", Ty::Str);
const ORDER: Query = q("order", Ty::Enum(&["asc", "desc"]));
const ARCHIVED: Query = q("include_archived", Ty::Bool);
const INT: Ty = Ty::Int {
    min: None,
    max: None,
};
const VIEW: Query = q("view", Ty::Enum(&["basic", "full"]));
const STATUSES: Query = q(
    "statuses",
    Ty::Array(&["rescheduling", "running", "idle", "terminated"]),
);
const DELTAS: Query = q(
    "event_deltas",
    Ty::Array(&["agent.message", "agent.thinking"]),
);
const GT: Query = q("created_at[gt]", Ty::Time);
const GTE: Query = q("created_at[gte]", Ty::Time);
const LT: Query = q("created_at[lt]", Ty::Time);
const LTE: Query = q("created_at[lte]", Ty::Time);

const P100: &[Query] = &[limit(100), PAGE];
const P1000: &[Query] = &[limit(1000), PAGE];
const LIST100: &[Query] = &[ARCHIVED, limit(100), PAGE];
const EVENTS: &[Query] = &[GT, GTE, LT, LTE, limit(1000), ORDER, PAGE, EVENT_TYPES];
const EVENT_TYPES: Query = q("types", Ty::Array(oma_api::events::HISTORY_TYPES));

macro_rules! op {
    ($m:literal $p:literal $id:literal $sum:literal, q: $q:expr, body: $b:expr, ok: $ok:expr) => {
        Op {
            method: $m,
            path: $p,
            id: $id,
            summary: $sum,
            query: $q,
            body: $b,
            ok: $ok,
            auth: Auth::Key,
        }
    };
}

use Body::{Json as B, Multipart, None as NoBody};
use Success::{Binary, EventStream, Json as J};

/// The catalogue, in the order of the spec's §3.
pub static OPS: &[Op] = &[
    Op {
        auth: Auth::None,
        ..op!("get" "/health" "health" "Liveness and readiness of this node (oma)", q: &[], body: NoBody, ok: J(s::<OmaObject>))
    },
    Op {
        auth: Auth::None,
        ..op!("get" "/v1/openapi.json" "openapi" "This OpenAPI document (oma)", q: &[], body: NoBody, ok: J(s::<OmaObject>))
    },
    // Agents
    op!("post" "/v1/agents" "agents_create" "Create Agent", q: &[], body: B(s::<CreateAgentBody>), ok: J(s::<Agent>)),
    op!("get" "/v1/agents" "agents_list" "List Agents", q: &[GTE, LTE, ARCHIVED, limit(100), PAGE], body: NoBody, ok: J(page::<Agent>)),
    op!("get" "/v1/agents/{agent_id}" "agents_retrieve" "Get Agent", q: &[q("version", Ty::Int { min: Some(1), max: None })], body: NoBody, ok: J(s::<Agent>)),
    op!("post" "/v1/agents/{agent_id}" "agents_update" "Update Agent", q: &[], body: B(s::<UpdateAgentBody>), ok: J(s::<Agent>)),
    op!("post" "/v1/agents/{agent_id}/archive" "agents_archive" "Archive Agent", q: &[], body: NoBody, ok: J(s::<Agent>)),
    op!("get" "/v1/agents/{agent_id}/versions" "agents_versions_list" "List Agent Versions", q: P100, body: NoBody, ok: J(page::<Agent>)),
    // Environments
    op!("post" "/v1/environments" "environments_create" "Create Environment", q: &[], body: B(s::<CreateEnvironmentBody>), ok: J(s::<Environment>)),
    op!("get" "/v1/environments" "environments_list" "List Environments", q: LIST100, body: NoBody, ok: J(page::<Environment>)),
    op!("get" "/v1/environments/{environment_id}" "environments_retrieve" "Get Environment", q: &[], body: NoBody, ok: J(s::<Environment>)),
    op!("post" "/v1/environments/{environment_id}" "environments_update" "Update Environment", q: &[], body: B(s::<UpdateEnvironmentBody>), ok: J(s::<Environment>)),
    op!("delete" "/v1/environments/{environment_id}" "environments_delete" "Delete Environment", q: &[], body: NoBody, ok: J(s::<EnvironmentDeleted>)),
    op!("post" "/v1/environments/{environment_id}/archive" "environments_archive" "Archive Environment", q: &[], body: NoBody, ok: J(s::<Environment>)),
    // Work queue
    op!("get" "/v1/environments/{environment_id}/work" "work_list" "List Work Items", q: P100, body: NoBody, ok: J(page::<Work>)),
    op!("get" "/v1/environments/{environment_id}/work/poll" "work_poll" "Poll for Work", q: &[q("block_ms", INT), q("reclaim_older_than_ms", INT)], body: NoBody, ok: Success::JsonOrNull(s::<Work>)),
    op!("get" "/v1/environments/{environment_id}/work/stats" "work_stats" "Work Queue Statistics", q: &[], body: NoBody, ok: J(s::<WorkQueueStats>)),
    op!("get" "/v1/environments/{environment_id}/work/{work_id}" "work_retrieve" "Get Work Item", q: &[], body: NoBody, ok: J(s::<Work>)),
    op!("post" "/v1/environments/{environment_id}/work/{work_id}" "work_update" "Update Work Item", q: &[], body: B(s::<UpdateWorkBody>), ok: J(s::<Work>)),
    op!("post" "/v1/environments/{environment_id}/work/{work_id}/ack" "work_ack" "Acknowledge Work Item", q: &[], body: NoBody, ok: J(s::<Work>)),
    op!("post" "/v1/environments/{environment_id}/work/{work_id}/heartbeat" "work_heartbeat" "Heartbeat Work Item", q: &[q("desired_ttl_seconds", INT), q("expected_last_heartbeat", Ty::Str)], body: NoBody, ok: J(s::<oma_api::work::WorkHeartbeat>)),
    op!("post" "/v1/environments/{environment_id}/work/{work_id}/stop" "work_stop" "Stop Work Item", q: &[], body: B(s::<StopWorkBody>), ok: J(s::<Work>)),
    // Sessions
    op!("post" "/v1/sessions" "sessions_create" "Create Session", q: &[], body: B(s::<CreateSessionBody>), ok: J(s::<Session>)),
    op!("get" "/v1/sessions" "sessions_list" "List Sessions", q: &[q("agent_id", Ty::Str), q("agent_version", INT), GT, GTE, LT, LTE, q("deployment_id", Ty::Str), ARCHIVED, limit(100), q("memory_store_id", Ty::Str), ORDER, PAGE, STATUSES], body: NoBody, ok: J(|g| g.subschema_for::<BidiPage<Session>>())),
    op!("get" "/v1/sessions/{session_id}" "sessions_retrieve" "Get Session", q: &[], body: NoBody, ok: J(s::<Session>)),
    op!("post" "/v1/sessions/{session_id}" "sessions_update" "Update Session", q: &[], body: B(s::<UpdateSessionBody>), ok: J(s::<Session>)),
    op!("delete" "/v1/sessions/{session_id}" "sessions_delete" "Delete Session", q: &[], body: NoBody, ok: J(s::<SessionDeleted>)),
    op!("post" "/v1/sessions/{session_id}/archive" "sessions_archive" "Archive Session", q: &[], body: NoBody, ok: J(s::<Session>)),
    // Events
    op!("get" "/v1/sessions/{session_id}/events" "events_list" "List Events", q: EVENTS, body: NoBody, ok: J(page::<SessionEvent>)),
    op!("post" "/v1/sessions/{session_id}/events" "events_send" "Send Events", q: &[], body: B(s::<SendEventsBody>), ok: J(s::<SendSessionEvents>)),
    op!("get" "/v1/sessions/{session_id}/events/stream" "events_stream" "Stream Events", q: &[DELTAS], body: NoBody, ok: EventStream(s::<oma_api::events::StreamEvent>)),
    // Resources
    op!("get" "/v1/sessions/{session_id}/resources" "resources_list" "List Session Resources", q: P1000, body: NoBody, ok: J(page::<SessionResource>)),
    op!("post" "/v1/sessions/{session_id}/resources" "resources_add" "Add Session Resource", q: &[], body: B(s::<AddResourceBody>), ok: J(s::<SessionResource>)),
    op!("get" "/v1/sessions/{session_id}/resources/{resource_id}" "resources_retrieve" "Get Session Resource", q: &[], body: NoBody, ok: J(s::<SessionResource>)),
    op!("post" "/v1/sessions/{session_id}/resources/{resource_id}" "resources_update" "Update Session Resource", q: &[], body: B(s::<UpdateResourceBody>), ok: J(s::<SessionResource>)),
    op!("delete" "/v1/sessions/{session_id}/resources/{resource_id}" "resources_delete" "Delete Session Resource", q: &[], body: NoBody, ok: J(s::<SessionResourceDeleted>)),
    // Threads
    op!("get" "/v1/sessions/{session_id}/threads" "threads_list" "List Session Threads", q: &[limit(1000), PAGE, STATUSES], body: NoBody, ok: J(page::<SessionThread>)),
    op!("get" "/v1/sessions/{session_id}/threads/{thread_id}" "threads_retrieve" "Get Session Thread", q: &[], body: NoBody, ok: J(s::<SessionThread>)),
    op!("post" "/v1/sessions/{session_id}/threads/{thread_id}/archive" "threads_archive" "Archive Session Thread", q: &[], body: NoBody, ok: J(s::<SessionThread>)),
    op!("get" "/v1/sessions/{session_id}/threads/{thread_id}/events" "threads_events_list" "List Session Thread Events", q: &[limit(1000), PAGE], body: NoBody, ok: J(page::<SessionEvent>)),
    op!("get" "/v1/sessions/{session_id}/threads/{thread_id}/stream" "threads_events_stream" "Stream Session Thread Events", q: &[DELTAS], body: NoBody, ok: EventStream(s::<oma_api::events::StreamEvent>)),
    // Vaults and credentials
    op!("post" "/v1/vaults" "vaults_create" "Create a Vault", q: &[], body: B(s::<CreateVaultBody>), ok: J(s::<Vault>)),
    op!("get" "/v1/vaults" "vaults_list" "List Vaults", q: LIST100, body: NoBody, ok: J(page::<Vault>)),
    op!("get" "/v1/vaults/{vault_id}" "vaults_retrieve" "Retrieve a Vault", q: &[], body: NoBody, ok: J(s::<Vault>)),
    op!("post" "/v1/vaults/{vault_id}" "vaults_update" "Update a Vault", q: &[], body: B(s::<UpdateVaultBody>), ok: J(s::<Vault>)),
    op!("delete" "/v1/vaults/{vault_id}" "vaults_delete" "Delete a Vault", q: &[], body: NoBody, ok: J(s::<VaultDeleted>)),
    op!("post" "/v1/vaults/{vault_id}/archive" "vaults_archive" "Archive a Vault", q: &[], body: NoBody, ok: J(s::<Vault>)),
    op!("post" "/v1/vaults/{vault_id}/credentials" "credentials_create" "Create a Credential", q: &[], body: B(s::<CreateCredentialBody>), ok: J(s::<Credential>)),
    op!("get" "/v1/vaults/{vault_id}/credentials" "credentials_list" "List Credentials", q: LIST100, body: NoBody, ok: J(page::<Credential>)),
    op!("get" "/v1/vaults/{vault_id}/credentials/{credential_id}" "credentials_retrieve" "Retrieve a Credential", q: &[], body: NoBody, ok: J(s::<Credential>)),
    op!("post" "/v1/vaults/{vault_id}/credentials/{credential_id}" "credentials_update" "Update a Credential", q: &[], body: B(s::<UpdateCredentialBody>), ok: J(s::<Credential>)),
    op!("delete" "/v1/vaults/{vault_id}/credentials/{credential_id}" "credentials_delete" "Delete a Credential", q: &[], body: NoBody, ok: J(s::<CredentialDeleted>)),
    op!("post" "/v1/vaults/{vault_id}/credentials/{credential_id}/archive" "credentials_archive" "Archive a Credential", q: &[], body: NoBody, ok: J(s::<Credential>)),
    op!("post" "/v1/vaults/{vault_id}/credentials/{credential_id}/mcp_oauth_validate" "credentials_mcp_oauth_validate" "Validate an MCP OAuth Credential", q: &[], body: NoBody, ok: J(s::<OmaObject>)),
    // Memory stores
    op!("post" "/v1/memory_stores" "memory_stores_create" "Create Memory Store", q: &[], body: B(s::<CreateMemoryStoreParams>), ok: J(s::<MemoryStore>)),
    op!("get" "/v1/memory_stores" "memory_stores_list" "List Memory Stores", q: &[GTE, LTE, ARCHIVED, limit(100), PAGE], body: NoBody, ok: J(page::<MemoryStore>)),
    op!("get" "/v1/memory_stores/{memory_store_id}" "memory_stores_retrieve" "Get Memory Store", q: &[], body: NoBody, ok: J(s::<MemoryStore>)),
    op!("post" "/v1/memory_stores/{memory_store_id}" "memory_stores_update" "Update Memory Store", q: &[], body: B(s::<UpdateMemoryStoreBody>), ok: J(s::<MemoryStore>)),
    op!("delete" "/v1/memory_stores/{memory_store_id}" "memory_stores_delete" "Delete Memory Store", q: &[], body: NoBody, ok: J(s::<MemoryStoreDeleted>)),
    op!("post" "/v1/memory_stores/{memory_store_id}/archive" "memory_stores_archive" "Archive Memory Store", q: &[], body: NoBody, ok: J(s::<MemoryStore>)),
    op!("post" "/v1/memory_stores/{memory_store_id}/memories" "memories_create" "Create Memory", q: &[VIEW], body: B(s::<CreateMemoryParams>), ok: J(s::<Memory>)),
    op!("get" "/v1/memory_stores/{memory_store_id}/memories" "memories_list" "List Memories", q: &[q("depth", INT), limit(100), PAGE, q("path_prefix", Ty::Str), VIEW], body: NoBody, ok: J(page::<MemoryListItem>)),
    op!("get" "/v1/memory_stores/{memory_store_id}/memories/{memory_id}" "memories_retrieve" "Get Memory", q: &[VIEW], body: NoBody, ok: J(s::<Memory>)),
    op!("post" "/v1/memory_stores/{memory_store_id}/memories/{memory_id}" "memories_update" "Update Memory", q: &[VIEW], body: B(s::<UpdateMemoryBody>), ok: J(s::<Memory>)),
    op!("patch" "/v1/memory_stores/{memory_store_id}/memories/{memory_id}" "memories_patch" "Update Memory (PATCH alias)", q: &[VIEW], body: B(s::<UpdateMemoryBody>), ok: J(s::<Memory>)),
    op!("delete" "/v1/memory_stores/{memory_store_id}/memories/{memory_id}" "memories_delete" "Delete Memory", q: &[q("expected_content_sha256", Ty::Str)], body: NoBody, ok: J(s::<MemoryDeleted>)),
    op!("get" "/v1/memory_stores/{memory_store_id}/memory_versions" "memory_versions_list" "List Memory Versions", q: &[q("api_key_id", Ty::Str), GTE, LTE, limit(100), q("memory_id", Ty::Str), q("operation", Ty::Enum(&["created", "modified", "deleted"])), PAGE, q("service_account_id", Ty::Str), q("session_id", Ty::Str), VIEW], body: NoBody, ok: J(page::<MemoryVersion>)),
    op!("get" "/v1/memory_stores/{memory_store_id}/memory_versions/{memory_version_id}" "memory_versions_retrieve" "Get Memory Version", q: &[VIEW], body: NoBody, ok: J(s::<MemoryVersion>)),
    op!("post" "/v1/memory_stores/{memory_store_id}/memory_versions/{memory_version_id}/redact" "memory_versions_redact" "Redact Memory Version", q: &[], body: NoBody, ok: J(s::<MemoryVersion>)),
    // Skills
    op!("post" "/v1/skills" "skills_create" "Create Skill", q: &[], body: Multipart(s::<SkillUpload>), ok: J(s::<Skill>)),
    op!("get" "/v1/skills" "skills_list" "List Skills", q: &[limit(1000), PAGE, q("source", Ty::Enum(&["custom", "anthropic"]))], body: NoBody, ok: J(page::<Skill>)),
    op!("get" "/v1/skills/{skill_id}" "skills_retrieve" "Get Skill", q: &[], body: NoBody, ok: J(s::<Skill>)),
    op!("delete" "/v1/skills/{skill_id}" "skills_delete" "Delete Skill", q: &[], body: NoBody, ok: J(s::<SkillDeleted>)),
    op!("post" "/v1/skills/{skill_id}/versions" "skill_versions_create" "Create Skill Version", q: &[], body: Multipart(s::<SkillUpload>), ok: J(s::<SkillVersion>)),
    op!("get" "/v1/skills/{skill_id}/versions" "skill_versions_list" "List Skill Versions", q: P1000, body: NoBody, ok: J(page::<SkillVersion>)),
    op!("get" "/v1/skills/{skill_id}/versions/{version}" "skill_versions_retrieve" "Get Skill Version", q: &[], body: NoBody, ok: J(s::<SkillVersion>)),
    op!("delete" "/v1/skills/{skill_id}/versions/{version}" "skill_versions_delete" "Delete Skill Version", q: &[], body: NoBody, ok: J(s::<SkillVersionDeleted>)),
    op!("get" "/v1/skills/{skill_id}/versions/{version}/content" "skill_versions_download" "Download Skill Version (zip)", q: &[], body: NoBody, ok: Binary),
    // Files
    op!("post" "/v1/files" "files_upload" "Upload File", q: &[], body: Multipart(s::<FileUpload>), ok: J(s::<FileMetadata>)),
    op!("get" "/v1/files" "files_list" "List Files", q: &[q("ids", Ty::StrArray), limit(1000), PAGE, q("scope_id", Ty::Str)], body: NoBody, ok: J(page::<FileMetadata>)),
    op!("get" "/v1/files/{file_id}" "files_retrieve" "Get File Metadata", q: &[], body: NoBody, ok: J(s::<FileMetadata>)),
    op!("delete" "/v1/files/{file_id}" "files_delete" "Delete File", q: &[], body: NoBody, ok: J(s::<FileDeleted>)),
    op!("get" "/v1/files/{file_id}/content" "files_download" "Download File", q: &[], body: NoBody, ok: Binary),
    // oma extensions: model routes and the admin API
    op!("post" "/v1/oma/model_routes" "model_routes_create" "Create Model Route (oma)", q: &[], body: B(s::<OmaObject>), ok: J(s::<OmaObject>)),
    op!("get" "/v1/oma/model_routes" "model_routes_list" "List Model Routes (oma)", q: P100, body: NoBody, ok: J(page::<OmaObject>)),
    op!("get" "/v1/oma/model_routes/{route_id}" "model_routes_retrieve" "Get Model Route (oma)", q: &[], body: NoBody, ok: J(s::<OmaObject>)),
    op!("post" "/v1/oma/model_routes/{route_id}" "model_routes_update" "Update Model Route (oma)", q: &[], body: B(s::<OmaObject>), ok: J(s::<OmaObject>)),
    op!("delete" "/v1/oma/model_routes/{route_id}" "model_routes_delete" "Delete Model Route (oma)", q: &[], body: NoBody, ok: J(s::<OmaObject>)),
    op!("post" "/v1/oma/admin/environment_keys" "admin_environment_keys_create" "Create Environment Key (oma admin)", q: &[], body: B(s::<OmaObject>), ok: J(s::<OmaObject>)),
    op!("get" "/v1/oma/admin/environment_keys" "admin_environment_keys_list" "List Environment Keys (oma admin)", q: &[q("tenant", Ty::Str), q("environment_id", Ty::Str)], body: NoBody, ok: J(page::<OmaObject>)),
    op!("post" "/v1/oma/admin/environment_keys/{key_id}/revoke" "admin_environment_keys_revoke" "Revoke Environment Key (oma admin)", q: &[], body: NoBody, ok: J(s::<OmaObject>)),
    op!("get" "/v1/oma/admin/ops_events" "admin_ops_events" "Operational Events (oma admin)", q: &[q("since", Ty::Str), q("until", Ty::Str), q("kind", Ty::StrArray), q("where", Ty::StrArray), q("tenant", Ty::Str), q("session", Ty::Str), q("group_by", Ty::Str), limit(1000)], body: NoBody, ok: J(s::<OmaObject>)),
    op!("get" "/v1/oma/admin/logs" "admin_logs" "Live Log Tail (oma admin)", q: &[q("level", Ty::Enum(&["error", "warn", "info", "debug", "trace"])), q("component", Ty::Str), q("tenant", Ty::Str), q("session", Ty::Str)], body: NoBody, ok: EventStream(s::<OmaObject>)),
    // Integrations: the signature of each service is the authentication (no API key).
    Op {
        auth: Auth::None,
        ..op!("post" "/v1/integrations/{integration_id}/webhook" "integrations_webhook" "Receive a Slack, GitHub or Linear Webhook (oma)", q: &[], body: B(s::<OmaObject>), ok: J(s::<OmaObject>))
    },
    // The install's single-use `state` is the authentication.
    Op {
        auth: Auth::None,
        ..op!("get" "/v1/integrations/{integration_id}/oauth/callback" "integrations_oauth_callback" "Finish a Slack, GitHub or Linear Install (oma)", q: &[q("code", Ty::Str), q("state", Ty::Str), q("installation_id", Ty::Str), q("setup_action", Ty::Str), q("error", Ty::Str), q("error_description", Ty::Str)], body: NoBody, ok: J(s::<OmaObject>))
    },
];
