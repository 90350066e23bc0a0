//! Wire types: sessions, session resources and session threads (spec §3.3, §5.3).
//!
//! Response shapes only; create/update params are loose JSON that `oma_core::sessions`
//! validates. Every documented key is emitted (`null` for "not set") so strict clients validate
//! them.
//!
//! Several shapes carry their `type` literal as a struct-level serde tag
//! (`#[serde(tag = "type", rename = "…")]`) rather than a field, so they can appear both on
//! their own and inside untagged unions without writing the key twice. Serde does not check a
//! struct-level tag when reading, so the untagged unions tell their variants apart by required
//! fields; they are only read back from oma's own stored JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::agents::{
    AgentSkill, AgentTool, ExecutionIdentity, InlineAgents, McpServer, ModelConfig,
    MultiagentAdvisor,
};

// ---------------------------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------------------------

/// `BetaManagedAgentsSession`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Session {
    pub id: String,
    /// Always `"session"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub agent: SessionAgent,
    pub archived_at: Option<String>,
    pub budget: Option<BudgetLimit>,
    pub created_at: String,
    pub environment_id: String,
    pub metadata: BTreeMap<String, String>,
    pub outcome_evaluations: Vec<OutcomeEvaluation>,
    pub resources: Vec<SessionResource>,
    pub stats: SessionStats,
    pub status: SessionStatus,
    pub title: Option<String>,
    pub updated_at: String,
    pub usage: SessionUsage,
    pub vault_ids: Vec<String>,
    pub deployment_id: Option<String>,
}

/// Session and thread status (`BetaManagedAgentsSessionThreadStatus` has the same literals).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    Rescheduling,
    Running,
    Idle,
    Terminated,
}

impl SessionStatus {
    pub const ALL: [SessionStatus; 4] = [
        SessionStatus::Rescheduling,
        SessionStatus::Running,
        SessionStatus::Idle,
        SessionStatus::Terminated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Rescheduling => "rescheduling",
            SessionStatus::Running => "running",
            SessionStatus::Idle => "idle",
            SessionStatus::Terminated => "terminated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the session is executing (or about to retry): such a session cannot be archived,
    /// deleted, or have its agent changed.
    pub fn is_active(self) -> bool {
        matches!(self, SessionStatus::Running | SessionStatus::Rescheduling)
    }
}

/// `BetaManagedAgentsSessionAgent`: the resolved agent snapshot of a session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type", rename = "agent")]
pub struct SessionAgent {
    pub id: String,
    pub description: Option<String>,
    pub execution_identity: ExecutionIdentity,
    pub mcp_servers: Vec<McpServer>,
    pub model: ModelConfig,
    pub multiagent: Option<SessionMultiagent>,
    pub name: String,
    pub skills: Vec<AgentSkill>,
    pub system: Option<String>,
    pub tools: Vec<AgentTool>,
    pub version: i64,
}

impl SessionAgent {
    /// The thread-level view of this agent (the roster is not repeated on threads).
    pub fn thread_agent(&self) -> SessionThreadAgent {
        SessionThreadAgent {
            id: self.id.clone(),
            description: self.description.clone(),
            execution_identity: self.execution_identity.clone(),
            mcp_servers: self.mcp_servers.clone(),
            model: self.model.clone(),
            name: self.name.clone(),
            skills: self.skills.clone(),
            system: self.system.clone(),
            tools: self.tools.clone(),
            version: self.version,
        }
    }
}

/// `BetaManagedAgentsSessionThreadAgent`: a saved agent's full definition at one version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type", rename = "agent")]
pub struct SessionThreadAgent {
    pub id: String,
    pub description: Option<String>,
    pub execution_identity: ExecutionIdentity,
    pub mcp_servers: Vec<McpServer>,
    pub model: ModelConfig,
    pub name: String,
    pub skills: Vec<AgentSkill>,
    pub system: Option<String>,
    pub tools: Vec<AgentTool>,
    pub version: i64,
}

/// `BetaManagedAgentsAdvisor`: `{"type":"advisor","model"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type", rename = "advisor")]
pub struct Advisor {
    pub model: String,
}

/// `BetaManagedAgentsInlineAgent`: an agent defined inline (no id, no version).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type", rename = "inline")]
pub struct InlineAgent {
    pub description: Option<String>,
    pub execution_identity: ExecutionIdentity,
    pub mcp_servers: Vec<McpServer>,
    pub model: ModelConfig,
    pub name: String,
    pub skills: Vec<AgentSkill>,
    pub system: Option<String>,
    pub tools: Vec<AgentTool>,
}

/// `BetaManagedAgentsSessionMultiagent`: the resolved roster, with full agent definitions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum SessionMultiagent {
    /// `BetaManagedAgentsSessionMultiagentCoordinator`.
    #[serde(rename = "coordinator")]
    Coordinator { agents: Vec<SessionRosterEntry> },
    /// `BetaManagedAgentsSessionMultiagent20261001`.
    #[serde(rename = "multiagent_20261001")]
    Multiagent20261001 {
        advisor: MultiagentAdvisor,
        subagents: SessionMultiagentMember,
        workflows: SessionMultiagentMember,
    },
}

/// `SessionCoordinatorRosterEntry`: a full agent definition or the advisor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(untagged)]
pub enum SessionRosterEntry {
    Agent(Box<SessionThreadAgent>),
    Advisor(Advisor),
}

/// `BetaManagedAgentsSessionMultiagentSubagents` / `…Workflows` (identical shapes).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum SessionMultiagentMember {
    #[serde(rename = "enabled")]
    Enabled {
        inline_agents: InlineAgents,
        predefined_agents: Vec<SessionThreadAgent>,
    },
    #[serde(rename = "disabled")]
    Disabled,
}

/// `BetaManagedAgentsBudgetLimit`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type", rename = "limit")]
pub struct BudgetLimit {
    pub max_list_cost: MonetaryAmount,
}

/// `BetaMonetaryAmount`: an integer number of minor units as a decimal string.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct MonetaryAmount {
    pub amount: String,
    pub currency: String,
}

/// `BetaManagedAgentsOutcomeEvaluationResource`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type", rename = "outcome_evaluation")]
pub struct OutcomeEvaluation {
    pub completed_at: Option<String>,
    pub description: String,
    pub explanation: Option<String>,
    pub iteration: i64,
    pub outcome_id: String,
    pub result: String,
}

/// `BetaManagedAgentsSessionStats`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
pub struct SessionStats {
    pub active_seconds: Option<f64>,
    pub duration_seconds: Option<f64>,
}

/// `BetaManagedAgentsSessionUsage`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
pub struct SessionUsage {
    pub active_seconds: Option<f64>,
    pub cache_creation: Option<CacheCreationUsage>,
    pub cache_read_input_tokens: Option<i64>,
    pub input_tokens: Option<i64>,
    pub list_cost: Option<MonetaryAmount>,
    pub output_tokens: Option<i64>,
    pub server_tool_use: Option<ServerToolUsage>,
}

/// `BetaManagedAgentsCacheCreationUsage`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default, schemars::JsonSchema)]
pub struct CacheCreationUsage {
    pub ephemeral_1h_input_tokens: Option<i64>,
    pub ephemeral_5m_input_tokens: Option<i64>,
}

/// `BetaManagedAgentsServerToolUsage`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default, schemars::JsonSchema)]
pub struct ServerToolUsage {
    pub web_fetch_requests: Option<i64>,
    pub web_search_requests: Option<i64>,
}

/// `BetaManagedAgentsDeletedSession`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type", rename = "session_deleted")]
pub struct SessionDeleted {
    pub id: String,
}

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

/// `BetaManagedAgentsSessionResource`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(untagged)]
pub enum SessionResource {
    GithubRepository(GithubRepositoryResource),
    File(FileResource),
    MemoryStore(MemoryStoreResource),
}

impl SessionResource {
    pub fn type_name(&self) -> &'static str {
        match self {
            SessionResource::GithubRepository(_) => "github_repository",
            SessionResource::File(_) => "file",
            SessionResource::MemoryStore(_) => "memory_store",
        }
    }

    pub fn mount_path(&self) -> Option<&str> {
        match self {
            SessionResource::GithubRepository(r) => Some(&r.mount_path),
            SessionResource::File(r) => Some(&r.mount_path),
            SessionResource::MemoryStore(r) => r.mount_path.as_deref(),
        }
    }
}

/// `BetaManagedAgentsGitHubRepositoryResource`. The authorization token is write-only and
/// has no field here.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type", rename = "github_repository")]
pub struct GithubRepositoryResource {
    pub id: String,
    pub created_at: String,
    pub mount_path: String,
    pub updated_at: String,
    pub url: String,
    pub checkout: Option<Checkout>,
}

/// `Checkout`: a branch or a commit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum Checkout {
    /// `BetaManagedAgentsBranchCheckout`.
    #[serde(rename = "branch")]
    Branch { name: String },
    /// `BetaManagedAgentsCommitCheckout`.
    #[serde(rename = "commit")]
    Commit { sha: String },
}

/// `BetaManagedAgentsFileResource`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type", rename = "file")]
pub struct FileResource {
    pub id: String,
    pub created_at: String,
    pub file_id: String,
    pub mount_path: String,
    pub updated_at: String,
}

/// `BetaManagedAgentsMemoryStoreResource`. The SDK shape has no `id`, `created_at` or
/// `updated_at`; oma addresses the attachment by its `memory_store_id` (a store is attached to a
/// session at most once).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type", rename = "memory_store")]
pub struct MemoryStoreResource {
    pub memory_store_id: String,
    pub access: Option<MemoryAccess>,
    pub description: Option<String>,
    pub instructions: Option<String>,
    pub mount_path: Option<String>,
    pub name: Option<String>,
}

/// Access mode of a mounted memory store.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemoryAccess {
    ReadWrite,
    ReadOnly,
}

impl MemoryAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryAccess::ReadWrite => "read_write",
            MemoryAccess::ReadOnly => "read_only",
        }
    }
}

/// `BetaManagedAgentsDeleteSessionResource`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type", rename = "session_resource_deleted")]
pub struct SessionResourceDeleted {
    pub id: String,
}

// ---------------------------------------------------------------------------------------------
// Threads
// ---------------------------------------------------------------------------------------------

/// `BetaManagedAgentsSessionThread`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct SessionThread {
    pub id: String,
    /// Always `"session_thread"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub agent: ThreadAgent,
    pub archived_at: Option<String>,
    pub created_at: String,
    pub parent_thread_id: Option<String>,
    pub session_id: String,
    pub stats: Option<ThreadStats>,
    pub status: SessionStatus,
    pub updated_at: String,
    pub usage: Option<ThreadUsage>,
    pub workflow_run_id: Option<String>,
}

/// `SessionThreadAgentUnion`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ThreadAgent {
    Agent(SessionThreadAgent),
    Advisor(Advisor),
    Inline(InlineAgent),
}

/// `BetaManagedAgentsSessionThreadStats`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
pub struct ThreadStats {
    pub active_seconds: Option<f64>,
    pub duration_seconds: Option<f64>,
    pub startup_seconds: Option<f64>,
}

/// `BetaManagedAgentsSessionThreadUsage` (same fields as the session's usage).
pub type ThreadUsage = SessionUsage;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::{Effort, EffortLevel, Speed};
    use serde_json::json;

    fn model() -> ModelConfig {
        ModelConfig {
            id: "claude-opus-4-8".into(),
            effort: Some(Effort {
                level: EffortLevel::High,
            }),
            inference_geo: None,
            speed: Some(Speed::Standard),
        }
    }

    fn thread_agent() -> SessionThreadAgent {
        SessionThreadAgent {
            id: "agent_1".into(),
            description: None,
            execution_identity: ExecutionIdentity::ServiceAccount,
            mcp_servers: vec![],
            model: model(),
            name: "a".into(),
            skills: vec![],
            system: None,
            tools: vec![],
            version: 2,
        }
    }

    fn round_trip<T>(v: &T) -> T
    where
        T: Serialize + for<'de> Deserialize<'de>,
    {
        serde_json::from_value(serde_json::to_value(v).unwrap()).unwrap()
    }

    #[test]
    fn struct_tags_are_written_once_and_checked() {
        let a = thread_agent();
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["type"], "agent");
        assert_eq!(v.as_object().unwrap().len(), 11);
        assert_eq!(round_trip(&a), a);

        let roster = vec![
            SessionRosterEntry::Agent(Box::new(a.clone())),
            SessionRosterEntry::Advisor(Advisor { model: "m".into() }),
        ];
        let v = serde_json::to_value(&roster).unwrap();
        assert_eq!(v[1], json!({"type": "advisor", "model": "m"}));
        assert_eq!(v[0]["type"], "agent");
        assert_eq!(round_trip(&roster), roster);

        // Untagged unions pick the variant by its required fields.
        let inline = ThreadAgent::Inline(InlineAgent {
            description: None,
            execution_identity: ExecutionIdentity::ServiceAccount,
            mcp_servers: vec![],
            model: model(),
            name: "i".into(),
            skills: vec![],
            system: None,
            tools: vec![],
        });
        assert_eq!(round_trip(&inline), inline);
        let advisor = ThreadAgent::Advisor(Advisor { model: "m".into() });
        assert_eq!(round_trip(&advisor), advisor);
    }

    #[test]
    fn resources_serialise_with_every_key() {
        let rs = vec![
            SessionResource::GithubRepository(GithubRepositoryResource {
                id: "sres_1".into(),
                created_at: "t".into(),
                mount_path: "/workspace/r".into(),
                updated_at: "t".into(),
                url: "https://github.com/o/r".into(),
                checkout: Some(Checkout::Branch {
                    name: "main".into(),
                }),
            }),
            SessionResource::File(FileResource {
                id: "sres_2".into(),
                created_at: "t".into(),
                file_id: "file_1".into(),
                mount_path: "/mnt/session/uploads/file_1".into(),
                updated_at: "t".into(),
            }),
            SessionResource::MemoryStore(MemoryStoreResource {
                memory_store_id: "memstore_1".into(),
                access: Some(MemoryAccess::ReadOnly),
                description: Some(String::new()),
                instructions: None,
                mount_path: Some("/mnt/memory/notes".into()),
                name: Some("Notes".into()),
            }),
        ];
        let v = serde_json::to_value(&rs).unwrap();
        assert_eq!(
            v,
            json!([
                {"type": "github_repository", "id": "sres_1", "created_at": "t", "mount_path": "/workspace/r",
                 "updated_at": "t", "url": "https://github.com/o/r", "checkout": {"type": "branch", "name": "main"}},
                {"type": "file", "id": "sres_2", "created_at": "t", "file_id": "file_1",
                 "mount_path": "/mnt/session/uploads/file_1", "updated_at": "t"},
                {"type": "memory_store", "memory_store_id": "memstore_1", "access": "read_only", "description": "",
                 "instructions": null, "mount_path": "/mnt/memory/notes", "name": "Notes"}
            ])
        );
        assert_eq!(round_trip(&rs), rs);
    }

    #[test]
    fn session_and_thread_shapes() {
        let agent = SessionAgent {
            id: "agent_1".into(),
            description: None,
            execution_identity: ExecutionIdentity::ServiceAccount,
            mcp_servers: vec![],
            model: model(),
            multiagent: Some(SessionMultiagent::Multiagent20261001 {
                advisor: MultiagentAdvisor::Disabled,
                subagents: SessionMultiagentMember::Enabled {
                    inline_agents: InlineAgents::Enabled,
                    predefined_agents: vec![thread_agent()],
                },
                workflows: SessionMultiagentMember::Disabled,
            }),
            name: "a".into(),
            skills: vec![],
            system: Some("s".into()),
            tools: vec![],
            version: 1,
        };
        let s = Session {
            id: "sesn_1".into(),
            kind: "session".into(),
            agent: agent.clone(),
            archived_at: None,
            budget: Some(BudgetLimit {
                max_list_cost: MonetaryAmount {
                    amount: "2500".into(),
                    currency: "USD".into(),
                },
            }),
            created_at: "t".into(),
            environment_id: "env_1".into(),
            metadata: BTreeMap::new(),
            outcome_evaluations: vec![],
            resources: vec![],
            stats: SessionStats::default(),
            status: SessionStatus::Idle,
            title: None,
            updated_at: "t".into(),
            usage: SessionUsage::default(),
            vault_ids: vec![],
            deployment_id: None,
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v["budget"],
            json!({"type": "limit", "max_list_cost": {"amount": "2500", "currency": "USD"}})
        );
        assert_eq!(v["status"], "idle");
        assert!(v.as_object().unwrap().contains_key("deployment_id"));
        assert_eq!(
            v["agent"]["multiagent"]["subagents"]["predefined_agents"][0]["type"],
            "agent"
        );
        assert_eq!(round_trip(&s), s);

        let t = SessionThread {
            id: "sthr_1".into(),
            kind: "session_thread".into(),
            agent: ThreadAgent::Agent(agent.thread_agent()),
            archived_at: None,
            created_at: "t".into(),
            parent_thread_id: None,
            session_id: "sesn_1".into(),
            stats: None,
            status: SessionStatus::Running,
            updated_at: "t".into(),
            usage: None,
            workflow_run_id: None,
        };
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["agent"]["type"], "agent");
        assert!(v["agent"].get("multiagent").is_none());
        assert_eq!(round_trip(&t), t);
        assert_eq!(
            SessionStatus::parse("rescheduling"),
            Some(SessionStatus::Rescheduling)
        );
        assert_eq!(SessionStatus::parse("done"), None);
    }
}
