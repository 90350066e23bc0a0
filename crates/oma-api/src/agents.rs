//! Wire types: agents (spec §3.1, §5.1).
//!
//! Response shapes only. Request params are loose JSON that `oma_core::agents` validates and
//! resolves into these types, so every stored and returned agent carries a fully resolved
//! configuration: `model` in object form with `effort` as `{"type": level}`, toolsets with
//! concrete `configs` and `default_config`, skills with a concrete `version`, and so on.
//! Optional keys are emitted as `null` rather than skipped, so strict clients validate them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `BetaManagedAgentsAgent`: one version of an agent as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Agent {
    pub id: String,
    /// Always `"agent"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub archived_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub version: i64,
    pub name: String,
    pub description: Option<String>,
    pub system: Option<String>,
    pub model: ModelConfig,
    pub tools: Vec<AgentTool>,
    pub mcp_servers: Vec<McpServer>,
    pub skills: Vec<AgentSkill>,
    pub multiagent: Option<Multiagent>,
    pub execution_identity: ExecutionIdentity,
    pub metadata: BTreeMap<String, String>,
}

// ---------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------

/// `BetaManagedAgentsModelConfig`. Responses always carry the object form; `effort` and `speed`
/// are resolved at save time, `inference_geo` stays `null` when unpinned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct ModelConfig {
    pub id: String,
    pub effort: Option<Effort>,
    pub inference_geo: Option<String>,
    pub speed: Option<Speed>,
}

/// `Effort`: `{"type": level}` (requests may also send the bare level string).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Effort {
    #[serde(rename = "type")]
    pub level: EffortLevel,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EffortLevel {
    Low,
    Medium,
    High,
    Xhigh,
    Max,
}

impl EffortLevel {
    pub const ALL: [EffortLevel; 5] = [
        EffortLevel::Low,
        EffortLevel::Medium,
        EffortLevel::High,
        EffortLevel::Xhigh,
        EffortLevel::Max,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EffortLevel::Low => "low",
            EffortLevel::Medium => "medium",
            EffortLevel::High => "high",
            EffortLevel::Xhigh => "xhigh",
            EffortLevel::Max => "max",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Speed {
    Standard,
    Fast,
}

// ---------------------------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------------------------

/// `AgentTool`: the union of tool entries in `tools[]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum AgentTool {
    /// `BetaManagedAgentsAgentToolset20260401`.
    #[serde(rename = "agent_toolset_20260401")]
    AgentToolset20260401(AgentToolset),
    /// `BetaManagedAgentsMCPToolset`.
    #[serde(rename = "mcp_toolset")]
    McpToolset(McpToolset),
    /// `BetaManagedAgentsCustomTool`.
    #[serde(rename = "custom")]
    Custom(CustomTool),
}

impl AgentTool {
    /// The `type` literal of the variant.
    pub fn type_name(&self) -> &'static str {
        match self {
            AgentTool::AgentToolset20260401(_) => "agent_toolset_20260401",
            AgentTool::McpToolset(_) => "mcp_toolset",
            AgentTool::Custom(_) => "custom",
        }
    }
}

/// The built-in toolset with its per-tool overrides, each resolved against `default_config`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct AgentToolset {
    pub configs: Vec<AgentToolConfig>,
    pub default_config: ToolsetDefaultConfig,
}

/// `BetaManagedAgentsAgentToolsetDefaultConfig` / `BetaManagedAgentsMCPToolsetDefaultConfig`
/// (identical shapes).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct ToolsetDefaultConfig {
    pub enabled: bool,
    pub permission_policy: PermissionPolicy,
}

/// `PermissionPolicy`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum PermissionPolicy {
    #[serde(rename = "always_allow")]
    AlwaysAllow,
    #[serde(rename = "always_ask")]
    AlwaysAsk,
    #[serde(rename = "auto")]
    Auto,
}

/// The tools of `agent_toolset_20260401`.
#[derive(
    Debug,
    Clone,
    Copy,
    Serialize,
    Deserialize,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinTool {
    Bash,
    Edit,
    Read,
    Write,
    Glob,
    Grep,
    WebFetch,
    WebSearch,
}

impl BuiltinTool {
    pub const ALL: [BuiltinTool; 8] = [
        BuiltinTool::Bash,
        BuiltinTool::Edit,
        BuiltinTool::Read,
        BuiltinTool::Write,
        BuiltinTool::Glob,
        BuiltinTool::Grep,
        BuiltinTool::WebFetch,
        BuiltinTool::WebSearch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BuiltinTool::Bash => "bash",
            BuiltinTool::Edit => "edit",
            BuiltinTool::Read => "read",
            BuiltinTool::Write => "write",
            BuiltinTool::Glob => "glob",
            BuiltinTool::Grep => "grep",
            BuiltinTool::WebFetch => "web_fetch",
            BuiltinTool::WebSearch => "web_search",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// `BetaManagedAgentsAgentToolConfig`: one resolved per-tool override. `name` always equals
/// the `type` literal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum AgentToolConfig {
    #[serde(rename = "bash")]
    Bash(BasicToolConfig),
    #[serde(rename = "edit")]
    Edit(BasicToolConfig),
    #[serde(rename = "read")]
    Read(BasicToolConfig),
    #[serde(rename = "write")]
    Write(BasicToolConfig),
    #[serde(rename = "glob")]
    Glob(BasicToolConfig),
    #[serde(rename = "grep")]
    Grep(BasicToolConfig),
    #[serde(rename = "web_fetch")]
    WebFetch(WebFetchToolConfig),
    #[serde(rename = "web_search")]
    WebSearch(WebSearchToolConfig),
}

impl AgentToolConfig {
    pub fn tool(&self) -> BuiltinTool {
        match self {
            AgentToolConfig::Bash(_) => BuiltinTool::Bash,
            AgentToolConfig::Edit(_) => BuiltinTool::Edit,
            AgentToolConfig::Read(_) => BuiltinTool::Read,
            AgentToolConfig::Write(_) => BuiltinTool::Write,
            AgentToolConfig::Glob(_) => BuiltinTool::Glob,
            AgentToolConfig::Grep(_) => BuiltinTool::Grep,
            AgentToolConfig::WebFetch(_) => BuiltinTool::WebFetch,
            AgentToolConfig::WebSearch(_) => BuiltinTool::WebSearch,
        }
    }

    pub fn enabled(&self) -> bool {
        match self {
            AgentToolConfig::Bash(c)
            | AgentToolConfig::Edit(c)
            | AgentToolConfig::Read(c)
            | AgentToolConfig::Write(c)
            | AgentToolConfig::Glob(c)
            | AgentToolConfig::Grep(c) => c.enabled,
            AgentToolConfig::WebFetch(c) => c.enabled,
            AgentToolConfig::WebSearch(c) => c.enabled,
        }
    }

    pub fn permission_policy(&self) -> PermissionPolicy {
        match self {
            AgentToolConfig::Bash(c)
            | AgentToolConfig::Edit(c)
            | AgentToolConfig::Read(c)
            | AgentToolConfig::Write(c)
            | AgentToolConfig::Glob(c)
            | AgentToolConfig::Grep(c) => c.permission_policy,
            AgentToolConfig::WebFetch(c) => c.permission_policy,
            AgentToolConfig::WebSearch(c) => c.permission_policy,
        }
    }
}

/// Resolved config of a built-in tool without extra settings (bash, edit, read, write, glob,
/// grep).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct BasicToolConfig {
    pub name: String,
    pub enabled: bool,
    pub permission_policy: PermissionPolicy,
}

/// `BetaManagedAgentsWebFetchToolConfig`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct WebFetchToolConfig {
    pub name: String,
    pub enabled: bool,
    pub permission_policy: PermissionPolicy,
    pub url_sources: Option<WebFetchUrlSources>,
    pub allowed_domains: Option<Vec<String>>,
    pub blocked_domains: Option<Vec<String>>,
    pub max_content_tokens: Option<i64>,
}

/// `BetaManagedAgentsWebSearchToolConfig`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct WebSearchToolConfig {
    pub name: String,
    pub enabled: bool,
    pub permission_policy: PermissionPolicy,
    pub allowed_domains: Option<Vec<String>>,
    pub blocked_domains: Option<Vec<String>>,
    pub user_location: Option<UserLocation>,
}

/// `BetaManagedAgentsWebFetchURLSources`, always in object form. A `null` key was not set and
/// allows every URL from that source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct WebFetchUrlSources {
    pub client_tool_results: Option<UrlSourceToolFilter>,
    pub server_tool_results: Option<UrlSourceToolFilter>,
    pub user_input: Option<UrlSourceUserInput>,
}

/// `BetaManagedAgentsWebFetchURLSourceToolFilter`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum UrlSourceToolFilter {
    #[serde(rename = "all")]
    All,
    #[serde(rename = "none")]
    None,
    #[serde(rename = "only")]
    Only { tools: Vec<ToolReference> },
    #[serde(rename = "except")]
    Except { tools: Vec<ToolReference> },
}

/// `BetaManagedAgentsWebFetchURLSourceUserInput`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum UrlSourceUserInput {
    #[serde(rename = "all")]
    All,
    #[serde(rename = "none")]
    None,
}

/// `BetaManagedAgentsWebFetchURLSourceToolReference`: `{"type":"tool_reference","name":…}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type", rename = "tool_reference")]
pub struct ToolReference {
    pub name: String,
}

/// `BetaManagedAgentsUserLocation`: `{"type":"approximate",…}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type", rename = "approximate")]
pub struct UserLocation {
    pub city: Option<String>,
    pub country: Option<String>,
    pub region: Option<String>,
    pub timezone: Option<String>,
}

/// `BetaManagedAgentsMCPToolset`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct McpToolset {
    pub mcp_server_name: String,
    pub configs: Vec<McpToolConfig>,
    pub default_config: ToolsetDefaultConfig,
}

/// `BetaManagedAgentsMCPToolConfig`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct McpToolConfig {
    pub name: String,
    pub enabled: bool,
    pub permission_policy: PermissionPolicy,
}

/// `BetaManagedAgentsCustomTool`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct CustomTool {
    pub name: String,
    pub description: String,
    pub input_schema: CustomToolInputSchema,
}

/// `BetaManagedAgentsCustomToolInputSchema`: a JSON Schema object. Keys beyond `type`,
/// `properties` and `required` (`additionalProperties`, `$defs`, …) are kept as sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct CustomToolInputSchema {
    /// Always `"object"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub properties: Option<Map<String, Value>>,
    pub required: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// ---------------------------------------------------------------------------------------------
// MCP servers, skills, execution identity
// ---------------------------------------------------------------------------------------------

/// An MCP server of an agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum McpServer {
    /// `BetaManagedAgentsMCPServerURLDefinition`: `{"type":"url","name","url"}`, reached over
    /// streamable HTTP (or the legacy HTTP+SSE transport) through the session's egress proxy.
    Url { name: String, url: String },
    /// An oma extension (the Managed Agents API only has `url`): a server spoken to over its
    /// standard streams, started inside the session's box with the box's environment plus
    /// `env`, working directory `/workspace`. Strict SDK clients reject this variant in
    /// responses; SDK clients in their default (lenient) mode accept it.
    Stdio {
        name: String,
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    },
}

impl McpServer {
    pub fn name(&self) -> &str {
        match self {
            McpServer::Url { name, .. } | McpServer::Stdio { name, .. } => name,
        }
    }

    /// The URL of a `url` server.
    pub fn url(&self) -> Option<&str> {
        match self {
            McpServer::Url { url, .. } => Some(url),
            McpServer::Stdio { .. } => None,
        }
    }
}

/// `AgentSkill`: a skill with its version resolved to a concrete string.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum AgentSkill {
    /// `BetaManagedAgentsAnthropicSkill`.
    #[serde(rename = "anthropic")]
    Anthropic { skill_id: String, version: String },
    /// `BetaManagedAgentsCustomSkill`.
    #[serde(rename = "custom")]
    Custom { skill_id: String, version: String },
}

impl AgentSkill {
    pub fn skill_id(&self) -> &str {
        match self {
            AgentSkill::Anthropic { skill_id, .. } | AgentSkill::Custom { skill_id, .. } => {
                skill_id
            }
        }
    }

    pub fn version(&self) -> &str {
        match self {
            AgentSkill::Anthropic { version, .. } | AgentSkill::Custom { version, .. } => version,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            AgentSkill::Anthropic { .. } => "anthropic",
            AgentSkill::Custom { .. } => "custom",
        }
    }
}

/// `BetaManagedAgentsExecutionIdentity`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum ExecutionIdentity {
    /// `BetaManagedAgentsServiceAccountExecutionIdentity`: the default principal.
    #[default]
    #[serde(rename = "service_account")]
    ServiceAccount,
    /// `BetaManagedAgentsAWSRoleExecutionIdentity`.
    #[serde(rename = "aws_role")]
    AwsRole { role_arn: String },
}

// ---------------------------------------------------------------------------------------------
// Multiagent
// ---------------------------------------------------------------------------------------------

/// `BetaManagedAgentsMultiagent`: resolved orchestration configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum Multiagent {
    /// `BetaManagedAgentsMultiagentCoordinator` (legacy).
    #[serde(rename = "coordinator")]
    Coordinator { agents: Vec<CoordinatorRosterEntry> },
    /// `BetaManagedAgentsMultiagent20261001`.
    #[serde(rename = "multiagent_20261001")]
    Multiagent20261001 {
        advisor: MultiagentAdvisor,
        subagents: MultiagentMember,
        workflows: MultiagentMember,
    },
}

/// `CoordinatorRosterEntry`: an agent pinned to a version, or the platform advisor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum CoordinatorRosterEntry {
    /// `BetaManagedAgentsAgentReference`.
    #[serde(rename = "agent")]
    Agent { id: String, version: i64 },
    /// `BetaManagedAgentsAdvisor`.
    #[serde(rename = "advisor")]
    Advisor { model: String },
}

/// `BetaManagedAgentsAgentReference`: `{"type":"agent","id","version"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type", rename = "agent")]
pub struct AgentReference {
    pub id: String,
    pub version: i64,
}

/// `BetaManagedAgentsMultiagentAdvisor`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum MultiagentAdvisor {
    #[serde(rename = "enabled")]
    Enabled { model: String },
    #[serde(rename = "disabled")]
    Disabled,
}

/// `BetaManagedAgentsMultiagentSubagents` / `BetaManagedAgentsMultiagentWorkflows` (identical
/// shapes).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum MultiagentMember {
    #[serde(rename = "enabled")]
    Enabled {
        inline_agents: InlineAgents,
        predefined_agents: Vec<AgentReference>,
    },
    #[serde(rename = "disabled")]
    Disabled,
}

/// `BetaManagedAgentsMultiagentInlineAgents`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum InlineAgents {
    #[serde(rename = "enabled")]
    Enabled,
    #[serde(rename = "disabled")]
    Disabled,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip<T>(v: &T) -> T
    where
        T: Serialize + for<'de> Deserialize<'de>,
    {
        serde_json::from_value(serde_json::to_value(v).unwrap()).unwrap()
    }

    #[test]
    fn model_config_emits_every_key() {
        let m = ModelConfig {
            id: "claude-opus-4-8".into(),
            effort: Some(Effort {
                level: EffortLevel::High,
            }),
            inference_geo: None,
            speed: Some(Speed::Standard),
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"id": "claude-opus-4-8", "effort": {"type": "high"}, "inference_geo": null, "speed": "standard"})
        );
        assert_eq!(round_trip(&m), m);
    }

    #[test]
    fn tools_serialise_with_type_tags() {
        let tools = vec![
            AgentTool::AgentToolset20260401(AgentToolset {
                configs: vec![
                    AgentToolConfig::Bash(BasicToolConfig {
                        name: "bash".into(),
                        enabled: false,
                        permission_policy: PermissionPolicy::AlwaysAsk,
                    }),
                    AgentToolConfig::WebFetch(WebFetchToolConfig {
                        name: "web_fetch".into(),
                        enabled: true,
                        permission_policy: PermissionPolicy::Auto,
                        url_sources: Some(WebFetchUrlSources {
                            client_tool_results: Some(UrlSourceToolFilter::Only {
                                tools: vec![ToolReference {
                                    name: "lookup".into(),
                                }],
                            }),
                            server_tool_results: None,
                            user_input: Some(UrlSourceUserInput::None),
                        }),
                        allowed_domains: Some(vec!["example.com".into()]),
                        blocked_domains: None,
                        max_content_tokens: Some(1000),
                    }),
                ],
                default_config: ToolsetDefaultConfig {
                    enabled: true,
                    permission_policy: PermissionPolicy::AlwaysAllow,
                },
            }),
            AgentTool::McpToolset(McpToolset {
                mcp_server_name: "gh".into(),
                configs: vec![],
                default_config: ToolsetDefaultConfig {
                    enabled: true,
                    permission_policy: PermissionPolicy::AlwaysAsk,
                },
            }),
            AgentTool::Custom(CustomTool {
                name: "lookup".into(),
                description: "d".into(),
                input_schema: CustomToolInputSchema {
                    kind: "object".into(),
                    properties: Some(Map::new()),
                    required: None,
                    extra: [("additionalProperties".to_string(), json!(false))]
                        .into_iter()
                        .collect(),
                },
            }),
        ];
        let v = serde_json::to_value(&tools).unwrap();
        assert_eq!(
            v,
            json!([
                {"type": "agent_toolset_20260401",
                 "configs": [
                    {"type": "bash", "name": "bash", "enabled": false, "permission_policy": {"type": "always_ask"}},
                    {"type": "web_fetch", "name": "web_fetch", "enabled": true,
                     "permission_policy": {"type": "auto"},
                     "url_sources": {
                        "client_tool_results": {"type": "only", "tools": [{"type": "tool_reference", "name": "lookup"}]},
                        "server_tool_results": null,
                        "user_input": {"type": "none"}},
                     "allowed_domains": ["example.com"], "blocked_domains": null, "max_content_tokens": 1000}
                 ],
                 "default_config": {"enabled": true, "permission_policy": {"type": "always_allow"}}},
                {"type": "mcp_toolset", "mcp_server_name": "gh", "configs": [],
                 "default_config": {"enabled": true, "permission_policy": {"type": "always_ask"}}},
                {"type": "custom", "name": "lookup", "description": "d",
                 "input_schema": {"type": "object", "properties": {}, "required": null, "additionalProperties": false}}
            ])
        );
        assert_eq!(round_trip(&tools), tools);
    }

    #[test]
    fn servers_skills_identity_and_multiagent_shapes() {
        let server = McpServer::Url {
            name: "gh".into(),
            url: "https://mcp.example.com".into(),
        };
        assert_eq!(
            serde_json::to_value(&server).unwrap(),
            json!({"type": "url", "name": "gh", "url": "https://mcp.example.com"})
        );
        assert_eq!(round_trip(&server), server);
        let stdio = McpServer::Stdio {
            name: "fs".into(),
            command: "python3".into(),
            args: vec!["server.py".into()],
            env: BTreeMap::from([("MODE".to_string(), "ro".to_string())]),
        };
        assert_eq!(
            serde_json::to_value(&stdio).unwrap(),
            json!({"type": "stdio", "name": "fs", "command": "python3", "args": ["server.py"],
                   "env": {"MODE": "ro"}})
        );
        assert_eq!(round_trip(&stdio), stdio);

        let skill = AgentSkill::Custom {
            skill_id: "skill_1".into(),
            version: "latest".into(),
        };
        assert_eq!(
            serde_json::to_value(&skill).unwrap(),
            json!({"type": "custom", "skill_id": "skill_1", "version": "latest"})
        );

        assert_eq!(
            serde_json::to_value(ExecutionIdentity::ServiceAccount).unwrap(),
            json!({"type": "service_account"})
        );
        let aws = ExecutionIdentity::AwsRole {
            role_arn: "arn:aws:iam::1:role/x".into(),
        };
        assert_eq!(round_trip(&aws), aws);

        let m = Multiagent::Multiagent20261001 {
            advisor: MultiagentAdvisor::Disabled,
            subagents: MultiagentMember::Enabled {
                inline_agents: InlineAgents::Enabled,
                predefined_agents: vec![AgentReference {
                    id: "agent_1".into(),
                    version: 3,
                }],
            },
            workflows: MultiagentMember::Disabled,
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"type": "multiagent_20261001",
                   "advisor": {"type": "disabled"},
                   "subagents": {"type": "enabled", "inline_agents": {"type": "enabled"},
                                 "predefined_agents": [{"type": "agent", "id": "agent_1", "version": 3}]},
                   "workflows": {"type": "disabled"}})
        );
        assert_eq!(round_trip(&m), m);

        let c = Multiagent::Coordinator {
            agents: vec![
                CoordinatorRosterEntry::Agent {
                    id: "agent_1".into(),
                    version: 2,
                },
                CoordinatorRosterEntry::Advisor {
                    model: "claude-opus-4-8".into(),
                },
            ],
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"type": "coordinator", "agents": [
                {"type": "agent", "id": "agent_1", "version": 2},
                {"type": "advisor", "model": "claude-opus-4-8"}]})
        );
        assert_eq!(round_trip(&c), c);
    }
}
