//! Domain rules: agents. Validation and normalisation of agent configuration (spec §3.1, §5.1):
//! request params in, the stored (and returned) resolved shape out.
//!
//! Requests are read from loose JSON rather than strict serde types so that every mistake
//! becomes a 400 whose message names the offending field path (`tools[2].configs[0].name: …`)
//! instead of a generic deserialisation error. Everything is resolved at save time, exactly as
//! the response shapes require: `model` becomes the object form with a concrete `effort` and
//! `speed`, toolsets get a concrete `default_config` and per-tool `enabled`/`permission_policy`,
//! skills a concrete `version`, and `multiagent_20261001` members their defaults.
//!
//! Agent references inside `multiagent` need the store (existence, latest version, depth
//! limit). That part is left to the caller through [`AgentConfig::agent_refs_to_resolve`] and
//! [`AgentConfig::resolve_agent_refs`]; `self` entries are resolved when rendering, because
//! they always mean "this agent at this version".

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Display;

use oma_api::agents::{
    Agent, AgentReference, AgentSkill, AgentTool, AgentToolConfig, AgentToolset, BasicToolConfig,
    BuiltinTool, CoordinatorRosterEntry, CustomTool, CustomToolInputSchema, Effort, EffortLevel,
    ExecutionIdentity, InlineAgents, McpServer, McpToolConfig, McpToolset, ModelConfig, Multiagent,
    MultiagentAdvisor, MultiagentMember, PermissionPolicy, Speed, ToolReference,
    ToolsetDefaultConfig, UrlSourceToolFilter, UrlSourceUserInput, UserLocation,
    WebFetchToolConfig, WebFetchUrlSources, WebSearchToolConfig,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::metadata::{self, Metadata};
use crate::{Error, Patch};
use oma_api::json::kind_of;

mod mcp;
mod model;
mod multiagent;
mod tools;

pub use mcp::*;
pub use model::*;
pub use multiagent::*;
pub use tools::*;

/// Tools across all entries of `tools[]` (spec §3.1).
pub const MAX_TOOLS: usize = 256;
/// `mcp_servers[]` entries.
pub const MAX_MCP_SERVERS: usize = 20;
/// System prompt length in characters (semantics §2.1).
pub const MAX_SYSTEM_CHARS: usize = 100_000;
/// Skills on one agent: the per-session limit, since an agent with more could never run.
pub const MAX_SKILLS: usize = 500;
/// Coordinator roster entries and `predefined_agents` entries.
pub const MAX_ROSTER: usize = 20;
/// Entries of a web tool's `allowed_domains` / `blocked_domains`.
pub const MAX_DOMAINS: usize = 64;
/// Entries of a web_fetch `url_sources` `only` / `except` list.
pub const MAX_URL_SOURCE_TOOLS: usize = 128;

const MAX_MODEL_ID_CHARS: usize = 256;
const MAX_MCP_SERVER_NAME_CHARS: usize = 255;
const MAX_TOOL_NAME_CHARS: usize = 128;
const MAX_URL_CHARS: usize = 2048;
const MAX_ROLE_ARN_CHARS: usize = 2048;
const MAX_SKILL_ID_CHARS: usize = 255;
const MAX_DOMAIN_CHARS: usize = 255;

/// The resolved `version` of a skill sent without one. Real resolution to a concrete version id
/// needs the skills store; until the caller does that, "latest" is stored, which is also the
/// literal the skills API accepts as a version selector (spec §3.6).
pub const LATEST_SKILL_VERSION: &str = "latest";

/// Inference regions the API documents (semantics §2.1).
const INFERENCE_GEOS: [&str; 2] = ["us", "global"];

const TOOL_TYPES: [&str; 3] = ["agent_toolset_20260401", "mcp_toolset", "custom"];

/// The versioned part of an agent, stored as JSON per version and returned as the agent
/// object's fields. Every field is already normalised to its response shape, except agent
/// references in `multiagent`, which keep `self` and may still lack a version (see
/// [`MultiagentConfig`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentConfig {
    pub name: String,
    pub description: Option<String>,
    pub system: Option<String>,
    pub model: ModelConfig,
    pub tools: Vec<AgentTool>,
    pub mcp_servers: Vec<McpServer>,
    pub skills: Vec<AgentSkill>,
    pub multiagent: Option<MultiagentConfig>,
    pub execution_identity: ExecutionIdentity,
    pub metadata: Metadata,
}

/// `POST /v1/agents` body. Fields stay loose JSON where a precise, path-naming 400 matters.
#[derive(Debug, Deserialize)]
pub struct CreateAgentParams {
    /// Required; `null` when absent so the rules can say so clearly.
    #[serde(default)]
    pub name: Value,
    /// Required; `null` when absent so the rules can say so clearly.
    #[serde(default)]
    pub model: Value,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub mcp_servers: Option<Vec<Value>>,
    #[serde(default)]
    pub skills: Option<Vec<Value>>,
    #[serde(default)]
    pub multiagent: Option<Value>,
    #[serde(default)]
    pub execution_identity: Option<Value>,
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// `POST /v1/agents/{id}` body: every field three-state.
#[derive(Debug, Deserialize, Default)]
pub struct UpdateAgentParams {
    #[serde(default)]
    pub name: Patch<Value>,
    #[serde(default)]
    pub model: Patch<Value>,
    #[serde(default)]
    pub description: Patch<String>,
    #[serde(default)]
    pub system: Patch<String>,
    #[serde(default)]
    pub tools: Patch<Vec<Value>>,
    #[serde(default)]
    pub mcp_servers: Patch<Vec<Value>>,
    #[serde(default)]
    pub skills: Patch<Vec<Value>>,
    #[serde(default)]
    pub multiagent: Patch<Value>,
    #[serde(default)]
    pub execution_identity: Patch<Value>,
    #[serde(default)]
    pub metadata: Patch<Map<String, Value>>,
    /// Optimistic-concurrency precondition: the version the caller last saw.
    #[serde(default)]
    pub version: Option<i64>,
}

impl UpdateAgentParams {
    /// `version`, when sent, must be at least 1 (a 400, checked before the 409 comparison).
    pub fn check_version(&self) -> Result<(), Error> {
        match self.version {
            Some(v) if v < 1 => Err(invalid("version", "must be at least 1")),
            _ => Ok(()),
        }
    }
}

impl AgentConfig {
    pub fn create(p: CreateAgentParams) -> Result<Self, Error> {
        let cfg = AgentConfig {
            name: parse_name(&p.name)?,
            model: parse_model(&p.model, None)?,
            description: p.description.filter(|d| !d.is_empty()),
            system: parse_system(p.system)?,
            tools: parse_tools(p.tools.as_deref().unwrap_or_default())?,
            mcp_servers: parse_mcp_servers(p.mcp_servers.as_deref().unwrap_or_default())?,
            skills: parse_skills(p.skills.as_deref().unwrap_or_default())?,
            multiagent: match &p.multiagent {
                None | Some(Value::Null) => None,
                Some(v) => Some(parse_multiagent(v, None)?),
            },
            execution_identity: parse_execution_identity(p.execution_identity.as_ref())?,
            metadata: metadata::from_create(p.metadata.as_ref())?,
        };
        cfg.check_consistency()?;
        Ok(cfg)
    }

    /// The configuration after applying `p`. Equal to `self` when nothing changed, in which
    /// case no new version is written.
    ///
    /// Update semantics (spec §3.1, semantics §2.2): absent keys are kept; `name` and `model`
    /// cannot be cleared; `description`/`system` are cleared by `null` or `""`; lists are
    /// replaced whole and cleared by `null` or `[]`; `model` is replaced whole except that an
    /// omitted `effort` is kept while the model id stays the same; `multiagent` of type
    /// `multiagent_20261001` merges level by level into a stored one of the same type;
    /// `metadata` is a patch.
    pub fn update(&self, p: UpdateAgentParams) -> Result<Self, Error> {
        p.check_version()?;
        let mut next = self.clone();
        match p.name {
            Patch::Absent => {}
            Patch::Null => return Err(invalid("name", "cannot be cleared")),
            Patch::Value(v) => next.name = parse_name(&v)?,
        }
        match p.model {
            Patch::Absent => {}
            Patch::Null => return Err(invalid("model", "cannot be cleared")),
            Patch::Value(v) => next.model = parse_model(&v, Some(&self.model))?,
        }
        match p.description {
            Patch::Absent => {}
            Patch::Null => next.description = None,
            Patch::Value(d) => next.description = Some(d).filter(|d| !d.is_empty()),
        }
        match p.system {
            Patch::Absent => {}
            Patch::Null => next.system = None,
            Patch::Value(s) => next.system = parse_system(Some(s))?,
        }
        match p.tools {
            Patch::Absent => {}
            Patch::Null => next.tools.clear(),
            Patch::Value(v) => next.tools = parse_tools(&v)?,
        }
        match p.mcp_servers {
            Patch::Absent => {}
            Patch::Null => next.mcp_servers.clear(),
            Patch::Value(v) => next.mcp_servers = parse_mcp_servers(&v)?,
        }
        match p.skills {
            Patch::Absent => {}
            Patch::Null => next.skills.clear(),
            Patch::Value(v) => next.skills = parse_skills(&v)?,
        }
        match p.multiagent {
            Patch::Absent => {}
            Patch::Null => next.multiagent = None,
            Patch::Value(v) => {
                next.multiagent = Some(parse_multiagent(&v, self.multiagent.as_ref())?)
            }
        }
        match p.execution_identity {
            Patch::Absent => {}
            Patch::Null => next.execution_identity = ExecutionIdentity::ServiceAccount,
            Patch::Value(v) => next.execution_identity = parse_execution_identity(Some(&v))?,
        }
        if let Patch::Value(patch) = p.metadata {
            metadata::apply_patch(&mut next.metadata, &patch, false)?;
        }
        next.check_consistency()?;
        Ok(next)
    }

    /// Rules that span fields, checked on the resulting configuration.
    fn check_consistency(&self) -> Result<(), Error> {
        check_mcp_references(&self.tools, &self.mcp_servers)
    }

    /// Every agent reference in `multiagent` (except `self`) as `(agent id, pinned version)`,
    /// deduplicated. The caller looks each up in the store and passes the results to
    /// [`AgentConfig::resolve_agent_refs`].
    pub fn agent_refs_to_resolve(&self) -> Vec<(String, Option<i64>)> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut push = |id: &str, version: Option<i64>| {
            if seen.insert((id.to_string(), version)) {
                out.push((id.to_string(), version));
            }
        };
        match &self.multiagent {
            None => {}
            Some(MultiagentConfig::Coordinator { agents }) => {
                for entry in agents {
                    if let RosterEntry::Agent { id, version } = entry {
                        push(id, *version);
                    }
                }
            }
            Some(MultiagentConfig::Multiagent20261001 {
                subagents,
                workflows,
                ..
            }) => {
                for member in [subagents, workflows] {
                    if let MemberConfig::Enabled {
                        predefined_agents, ..
                    } = member
                    {
                        for entry in predefined_agents {
                            if let PredefinedAgent::Agent { id, version } = entry {
                                push(id, *version);
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Checks and pins the agent references of `multiagent` (semantics §10): each must exist
    /// in the tenant, not be archived, and not have `multiagent` itself (depth limit 1); its
    /// inference region must match this agent's; a reference without a version is pinned to
    /// the latest version found. `found` maps the pairs of [`AgentConfig::agent_refs_to_resolve`]
    /// to what the store holds (a missing key means no such agent or version). `own_id` is
    /// this agent's id when it already has one (updates); referencing it by id is refused,
    /// since `{"type": "self"}` is the way to do that.
    ///
    /// Call it on create, and on update whenever the new `multiagent` differs from the stored
    /// one, before comparing for a no-op: re-sending an unchanged roster then resolves to the
    /// stored versions and writes no new version.
    pub fn resolve_agent_refs(
        &mut self,
        own_id: Option<&str>,
        found: &HashMap<(String, Option<i64>), ResolvedAgentRef>,
    ) -> Result<(), Error> {
        let geo = self.model.inference_geo.clone();
        let check = |path: &str, id: &str, version: &mut Option<i64>| -> Result<(), Error> {
            if own_id == Some(id) {
                return Err(invalid(
                    path,
                    format!("`{id}` is this agent; use {{\"type\": \"self\"}} to refer to it"),
                ));
            }
            let target = found
                .get(&(id.to_string(), *version))
                .ok_or_else(|| match version {
                    Some(v) => invalid(path, format!("agent `{id}` has no version {v}")),
                    None => invalid(path, format!("agent `{id}` not found")),
                })?;
            if target.archived {
                return Err(invalid(path, format!("agent `{id}` is archived")));
            }
            if target.has_multiagent {
                return Err(invalid(
                    path,
                    format!(
                        "agent `{id}` has its own multiagent configuration; \
                         referenced agents cannot orchestrate others (depth limit 1)"
                    ),
                ));
            }
            if target.inference_geo != geo {
                return Err(invalid(
                    path,
                    format!(
                        "agent `{id}` pins inference_geo {}, this agent {}; they must match",
                        geo_label(target.inference_geo.as_deref()),
                        geo_label(geo.as_deref()),
                    ),
                ));
            }
            *version = Some(target.version);
            Ok(())
        };
        match &mut self.multiagent {
            None => {}
            Some(MultiagentConfig::Coordinator { agents }) => {
                for (i, entry) in agents.iter_mut().enumerate() {
                    if let RosterEntry::Agent { id, version } = entry {
                        check(&format!("multiagent.agents[{i}]"), id, version)?;
                    }
                }
            }
            Some(MultiagentConfig::Multiagent20261001 {
                subagents,
                workflows,
                ..
            }) => {
                for (name, member) in [("subagents", subagents), ("workflows", workflows)] {
                    if let MemberConfig::Enabled {
                        predefined_agents, ..
                    } = member
                    {
                        for (i, entry) in predefined_agents.iter_mut().enumerate() {
                            if let PredefinedAgent::Agent { id, version } = entry {
                                let path = format!("multiagent.{name}.predefined_agents[{i}]");
                                check(&path, id, version)?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// What the store holds for one referenced agent version (see
/// [`AgentConfig::resolve_agent_refs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedAgentRef {
    /// The concrete version: the pinned one, or the latest when none was pinned.
    pub version: i64,
    pub archived: bool,
    /// Whether that version has `multiagent` set.
    pub has_multiagent: bool,
    /// That version's `model.inference_geo`.
    pub inference_geo: Option<String>,
}

fn geo_label(geo: Option<&str>) -> String {
    geo.map_or_else(|| "none".to_string(), |g| format!("`{g}`"))
}

// ---------------------------------------------------------------------------------------------
// Scalars
// ---------------------------------------------------------------------------------------------

fn parse_name(v: &Value) -> Result<String, Error> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
        Value::String(_) => Err(invalid("name", "must be non-empty")),
        Value::Null => Err(invalid("name", "is required")),
        other => Err(invalid(
            "name",
            format!("must be a string, got {}", kind_of(other)),
        )),
    }
}

fn parse_system(s: Option<String>) -> Result<Option<String>, Error> {
    match s {
        Some(s) if s.chars().count() > MAX_SYSTEM_CHARS => Err(invalid(
            "system",
            format!("must be at most {MAX_SYSTEM_CHARS} characters"),
        )),
        Some(s) if s.is_empty() => Ok(None),
        other => Ok(other),
    }
}

// ---------------------------------------------------------------------------------------------
// Skills
// ---------------------------------------------------------------------------------------------

/// Reads `skills[]`. A missing version resolves to [`LATEST_SKILL_VERSION`]. The same skill may
/// appear once.
pub fn parse_skills(values: &[Value]) -> Result<Vec<AgentSkill>, Error> {
    if values.len() > MAX_SKILLS {
        return Err(invalid(
            "skills",
            format!(
                "at most {MAX_SKILLS} skills are allowed, got {}",
                values.len()
            ),
        ));
    }
    let mut seen: HashMap<(&'static str, String), usize> = HashMap::new();
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let path = format!("skills[{i}]");
        let o = as_object(v, &path)?;
        let kind = match type_tag(o, &path)? {
            "anthropic" => "anthropic",
            "custom" => "custom",
            other => return Err(unknown_type(&path, other, &["anthropic", "custom"])),
        };
        let skill_id = req_string(o, "skill_id", &path)?;
        let n = skill_id.chars().count();
        if n == 0 || n > MAX_SKILL_ID_CHARS || skill_id.chars().any(char::is_whitespace) {
            return Err(invalid(
                &format!("{path}.skill_id"),
                format!(
                    "must be a skill id of 1 to {MAX_SKILL_ID_CHARS} characters without whitespace"
                ),
            ));
        }
        let version = match present(o, "version") {
            None => LATEST_SKILL_VERSION.to_string(),
            Some(Value::String(s)) if !s.is_empty() && !s.chars().any(char::is_whitespace) => {
                s.clone()
            }
            // Older skill versions are epoch timestamps; accept them as numbers too.
            Some(Value::Number(n)) if n.as_u64().is_some() => n.to_string(),
            Some(_) => {
                return Err(invalid(
                    &format!("{path}.version"),
                    "must be a non-empty version string; omit it for the latest version",
                ));
            }
        };
        if let Some(first) = seen.insert((kind, skill_id.to_string()), i) {
            return Err(invalid(
                &format!("{path}.skill_id"),
                format!("skill `{skill_id}` is already listed at skills[{first}]"),
            ));
        }
        let skill_id = skill_id.to_string();
        out.push(match kind {
            "anthropic" => AgentSkill::Anthropic { skill_id, version },
            _ => AgentSkill::Custom { skill_id, version },
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Execution identity
// ---------------------------------------------------------------------------------------------

/// Reads `execution_identity`: absent, `null` and `{"type":"service_account"}` are the default.
pub fn parse_execution_identity(v: Option<&Value>) -> Result<ExecutionIdentity, Error> {
    let path = "execution_identity";
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(ExecutionIdentity::ServiceAccount);
    };
    let o = as_object(v, path)?;
    match type_tag(o, path)? {
        "service_account" => Ok(ExecutionIdentity::ServiceAccount),
        "aws_role" => {
            let arn = req_string(o, "role_arn", path)?;
            let apath = format!("{path}.role_arn");
            if arn.is_empty() || arn.chars().count() > MAX_ROLE_ARN_CHARS {
                return Err(invalid(
                    &apath,
                    format!("must be 1 to {MAX_ROLE_ARN_CHARS} characters"),
                ));
            }
            if !arn.starts_with("arn:")
                || !arn.contains(":role/")
                || arn.chars().any(char::is_whitespace)
            {
                return Err(invalid(
                    &apath,
                    format!(
                        "`{arn}` is not an IAM role ARN like `arn:aws:iam::123456789012:role/name`"
                    ),
                ));
            }
            Ok(ExecutionIdentity::AwsRole {
                role_arn: arn.to_string(),
            })
        }
        other => Err(unknown_type(path, other, &["service_account", "aws_role"])),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON reading helpers
// ---------------------------------------------------------------------------------------------

fn invalid(path: &str, message: impl Display) -> Error {
    Error::invalid(format!("{path}: {message}"))
}

/// "`a`", "`a` or `b`", "`a`, `b` or `c`".
fn one_of(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{s}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

fn unknown_type(path: &str, got: &str, expected: &[&str]) -> Error {
    invalid(
        &format!("{path}.type"),
        format!("unknown type `{got}`; expected {}", one_of(expected)),
    )
}

fn unknown_literal(path: &str, got: &str, expected: &[&str]) -> Error {
    invalid(
        path,
        format!("unknown value `{got}`; expected {}", one_of(expected)),
    )
}

fn as_object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, Error> {
    v.as_object()
        .ok_or_else(|| invalid(path, format!("must be an object, got {}", kind_of(v))))
}

/// The required `type` discriminator of an object.
fn type_tag<'a>(o: &'a Map<String, Value>, path: &str) -> Result<&'a str, Error> {
    match o.get("type") {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(invalid(&format!("{path}.type"), "is required")),
        Some(other) => Err(invalid(
            &format!("{path}.type"),
            format!("must be a string, got {}", kind_of(other)),
        )),
    }
}

/// A key's value unless absent or `null` (optional request keys treat both alike).
fn present<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

fn req_string<'a>(o: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, Error> {
    match o.get(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(invalid(&format!("{path}.{key}"), "is required")),
        Some(other) => Err(invalid(
            &format!("{path}.{key}"),
            format!("must be a string, got {}", kind_of(other)),
        )),
    }
}

fn opt_string(o: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, Error> {
    match present(o, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(
            &format!("{path}.{key}"),
            format!("must be a string, got {}", kind_of(other)),
        )),
    }
}

fn opt_bool(o: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>, Error> {
    match present(o, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(invalid(
            &format!("{path}.{key}"),
            format!("must be a boolean, got {}", kind_of(other)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create(body: Value) -> Result<AgentConfig, Error> {
        AgentConfig::create(serde_json::from_value(body).unwrap())
    }

    fn created(body: Value) -> AgentConfig {
        create(body).unwrap()
    }

    fn update(cfg: &AgentConfig, body: Value) -> Result<AgentConfig, Error> {
        cfg.update(serde_json::from_value(body).unwrap())
    }

    fn message(r: Result<AgentConfig, Error>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::InvalidRequest, "{}", e.message);
        e.message
    }

    fn render(cfg: &AgentConfig) -> Value {
        serde_json::to_value(to_object("agent_x", 3, 0, 0, None, cfg)).unwrap()
    }

    fn minimal() -> AgentConfig {
        created(json!({"name": "a", "model": "claude-opus-4-8"}))
    }

    // --- create basics -------------------------------------------------------------------

    #[test]
    fn minimal_agent_renders_every_key_with_defaults() {
        let v = render(&minimal());
        assert_eq!(v["type"], "agent");
        assert_eq!(v["version"], 3);
        assert_eq!(
            v["model"],
            json!({"id": "claude-opus-4-8", "effort": {"type": "high"}, "inference_geo": null, "speed": "standard"})
        );
        assert_eq!(v["tools"], json!([]));
        assert_eq!(v["mcp_servers"], json!([]));
        assert_eq!(v["skills"], json!([]));
        assert_eq!(v["multiagent"], Value::Null);
        assert_eq!(v["execution_identity"], json!({"type": "service_account"}));
        assert_eq!(v["metadata"], json!({}));
        for key in ["description", "system", "archived_at"] {
            assert!(
                v.as_object().unwrap().contains_key(key),
                "{key} must be emitted"
            );
            assert_eq!(v[key], Value::Null);
        }
    }

    #[test]
    fn name_and_model_are_required() {
        assert!(message(create(json!({"model": "m"}))).starts_with("name: is required"));
        assert!(message(create(json!({"name": "a"}))).starts_with("model: is required"));
        assert!(message(create(json!({"name": "  ", "model": "m"}))).contains("non-empty"));
        assert!(message(create(json!({"name": 3, "model": "m"}))).contains("must be a string"));
        assert!(message(create(json!({"name": "a", "model": 7}))).starts_with("model:"));
        assert!(message(create(json!({"name": "a", "model": ""}))).starts_with("model:"));
        assert!(
            message(create(json!({"name": "a", "model": {"speed": "fast"}})))
                .starts_with("model.id: is required")
        );
    }

    #[test]
    fn empty_description_and_system_are_unset_and_system_is_bounded() {
        let cfg = created(json!({"name": "a", "model": "m", "description": "", "system": ""}));
        assert_eq!(cfg.description, None);
        assert_eq!(cfg.system, None);
        let long = "x".repeat(MAX_SYSTEM_CHARS + 1);
        assert!(
            message(create(json!({"name": "a", "model": "m", "system": long})))
                .starts_with("system:")
        );
    }

    // --- model ---------------------------------------------------------------------------

    #[test]
    fn model_object_form_and_effort_shapes() {
        let cfg = created(
            json!({"name": "a", "model": {"id": "claude-sonnet-4-6", "effort": "low", "speed": "fast", "inference_geo": "us"}}),
        );
        assert_eq!(
            serde_json::to_value(&cfg.model).unwrap(),
            json!({"id": "claude-sonnet-4-6", "effort": {"type": "low"}, "inference_geo": "us", "speed": "fast"})
        );
        let cfg = created(json!({"name": "a", "model": {"id": "m", "effort": {"type": "xhigh"}}}));
        assert_eq!(
            cfg.model.effort,
            Some(Effort {
                level: EffortLevel::Xhigh
            })
        );
        let cfg = created(
            json!({"name": "a", "model": {"id": "m", "effort": null, "speed": null, "inference_geo": null}}),
        );
        assert_eq!(
            cfg.model.effort,
            Some(Effort {
                level: EffortLevel::High
            })
        );
        assert_eq!(cfg.model.speed, Some(Speed::Standard));
        assert_eq!(cfg.model.inference_geo, None);
        // Unknown model ids are accepted: the enum is open.
        assert_eq!(
            created(json!({"name": "a", "model": "my-local-model"}))
                .model
                .id,
            "my-local-model"
        );
    }

    #[test]
    fn model_rejects_bad_effort_speed_and_geo() {
        let m = |model: Value| message(create(json!({"name": "a", "model": model})));
        assert!(
            m(json!({"id": "m", "effort": "huge"}))
                .starts_with("model.effort: unknown effort `huge`")
        );
        assert!(
            m(json!({"id": "m", "effort": {"type": "huge"}}))
                .starts_with("model.effort.type: unknown effort")
        );
        assert!(m(json!({"id": "m", "effort": 3})).starts_with("model.effort:"));
        assert!(
            m(json!({"id": "m", "speed": "turbo"}))
                .starts_with("model.speed: unknown speed `turbo`")
        );
        assert!(
            m(json!({"id": "m", "inference_geo": "mars"}))
                .starts_with("model.inference_geo: unknown region")
        );
        assert!(m(json!({"id": "has space"})).starts_with("model.id:"));
    }

    #[test]
    fn model_update_keeps_effort_for_same_id_and_replaces_the_rest() {
        let cfg = created(
            json!({"name": "a", "model": {"id": "m1", "effort": "max", "speed": "fast", "inference_geo": "us"}}),
        );
        // Same id, effort omitted: effort kept; speed and geo reset (whole-object replacement).
        let next = update(&cfg, json!({"model": {"id": "m1"}})).unwrap();
        assert_eq!(
            next.model.effort,
            Some(Effort {
                level: EffortLevel::Max
            })
        );
        assert_eq!(next.model.speed, Some(Speed::Standard));
        assert_eq!(next.model.inference_geo, None);
        // The string form behaves the same.
        let next = update(&cfg, json!({"model": "m1"})).unwrap();
        assert_eq!(
            next.model.effort,
            Some(Effort {
                level: EffortLevel::Max
            })
        );
        // A new id resets effort to the default.
        let next = update(&cfg, json!({"model": "m2"})).unwrap();
        assert_eq!(
            next.model.effort,
            Some(Effort {
                level: EffortLevel::High
            })
        );
        // Explicit null resets too.
        let next = update(&cfg, json!({"model": {"id": "m1", "effort": null}})).unwrap();
        assert_eq!(
            next.model.effort,
            Some(Effort {
                level: EffortLevel::High
            })
        );
        // Re-sending the same full model is a no-op.
        let same = update(&cfg, json!({"model": {"id": "m1", "effort": {"type": "max"}, "speed": "fast", "inference_geo": "us"}})).unwrap();
        assert_eq!(same, cfg);
        assert!(
            message(update(&cfg, json!({"model": null}))).starts_with("model: cannot be cleared")
        );
    }

    // --- tools ---------------------------------------------------------------------------

    #[test]
    fn bare_toolset_resolves_defaults() {
        let cfg = created(
            json!({"name": "a", "model": "m", "tools": [{"type": "agent_toolset_20260401"}]}),
        );
        assert_eq!(
            render(&cfg)["tools"],
            json!([{"type": "agent_toolset_20260401", "configs": [],
                    "default_config": {"enabled": true, "permission_policy": {"type": "always_allow"}}}])
        );
    }

    #[test]
    fn tool_configs_inherit_from_default_config() {
        let cfg = created(json!({"name": "a", "model": "m", "tools": [{
        "type": "agent_toolset_20260401",
        "default_config": {"enabled": false, "permission_policy": {"type": "always_ask"}},
        "configs": [
            {"name": "bash", "enabled": true},
            {"name": "read", "type": "read", "permission_policy": {"type": "auto"}},
            {"name": "web_search", "enabled": null, "permission_policy": null,
             "allowed_domains": ["docs.example.com/api"],
             "user_location": {"type": "approximate", "country": "US", "timezone": "America/New_York"}},
            {"name": "web_fetch", "blocked_domains": ["ads.example.com", "Tracker.Example.org/"],
             "max_content_tokens": 5000, "url_sources": {"user_input": "none", "server_tool_results": {"type": "only", "tools": [{"type": "tool_reference", "name": "web_search"}]}}}
        ]}]}));
        assert_eq!(
            render(&cfg)["tools"][0],
            json!({"type": "agent_toolset_20260401",
            "default_config": {"enabled": false, "permission_policy": {"type": "always_ask"}},
            "configs": [
                {"type": "bash", "name": "bash", "enabled": true, "permission_policy": {"type": "always_ask"}},
                {"type": "read", "name": "read", "enabled": false, "permission_policy": {"type": "auto"}},
                {"type": "web_search", "name": "web_search", "enabled": false,
                 "permission_policy": {"type": "always_ask"},
                 "allowed_domains": ["docs.example.com/api"], "blocked_domains": null,
                 "user_location": {"type": "approximate", "city": null, "country": "US", "region": null, "timezone": "America/New_York"}},
                {"type": "web_fetch", "name": "web_fetch", "enabled": false,
                 "permission_policy": {"type": "always_ask"},
                 "url_sources": {"client_tool_results": null,
                                 "server_tool_results": {"type": "only", "tools": [{"type": "tool_reference", "name": "web_search"}]},
                                 "user_input": {"type": "none"}},
                 "allowed_domains": null, "blocked_domains": ["ads.example.com", "Tracker.Example.org/"],
                 "max_content_tokens": 5000}
            ]})
        );
    }

    #[test]
    fn tool_entry_errors_name_the_path() {
        let t = |tools: Value| message(create(json!({"name": "a", "model": "m", "tools": tools})));
        assert!(
            t(json!([{"type": "agent_toolset_20260401"}, {"type": "computer_2025"}]))
                .starts_with("tools[1].type: unknown type `computer_2025`")
        );
        assert!(t(json!([{}])).starts_with("tools[0].type: is required"));
        assert!(t(json!(["bash"])).starts_with("tools[0]: must be an object"));
        assert!(
            t(json!([{"type": "agent_toolset_20260401", "configs": [{"name": "computer"}]}]))
                .starts_with("tools[0].configs[0].name: unknown tool `computer`")
        );
        assert!(t(json!([{"type": "agent_toolset_20260401", "configs": [{"name": "bash", "type": "read"}]}])).starts_with("tools[0].configs[0].type: must equal"));
        assert!(t(json!([{"type": "agent_toolset_20260401", "configs": [{"name": "bash"}, {"name": "bash"}]}])).starts_with("tools[0].configs[1].name: `bash` is already configured"));
        assert!(t(json!([{"type": "agent_toolset_20260401", "configs": [{"name": "bash", "enabled": "yes"}]}])).starts_with("tools[0].configs[0].enabled: must be a boolean"));
        assert!(t(json!([{"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "sometimes"}}}])).starts_with("tools[0].default_config.permission_policy.type: unknown type `sometimes`"));
        assert!(t(json!([{"type": "agent_toolset_20260401", "configs": [{"name": "bash", "allowed_domains": ["example.com"]}]}])).starts_with("tools[0].configs[0].allowed_domains: is only valid for web_fetch and web_search"));
        assert!(t(json!([{"type": "agent_toolset_20260401", "configs": [{"name": "web_search", "max_content_tokens": 10}]}])).starts_with("tools[0].configs[0].max_content_tokens: is only valid for web_fetch"));
        assert!(t(json!([{"type": "agent_toolset_20260401", "configs": [{"name": "web_fetch", "user_location": {"type": "approximate"}}]}])).starts_with("tools[0].configs[0].user_location: is only valid for web_search"));
        assert!(t(json!([{"type": "agent_toolset_20260401", "configs": [{"name": "web_fetch", "max_content_tokens": 0}]}])).starts_with("tools[0].configs[0].max_content_tokens:"));
        assert!(
            t(json!([{"type": "agent_toolset_20260401"}, {"type": "agent_toolset_20260401"}]))
                .starts_with("tools[1]: agent_toolset_20260401 is already configured")
        );
    }

    #[test]
    fn web_domain_rules() {
        let ok = |d: &str, path: bool| validate_domain(d, path, "d").is_ok();
        assert!(ok("example.com", false));
        assert!(ok("docs.example.com", false));
        assert!(ok("Docs.Example.COM/", false));
        assert!(ok("xn--bcher-kva.example", false));
        assert!(ok("example.com/docs/api", true));
        assert!(
            !ok("example.com/docs", false),
            "web_fetch entries take no path"
        );
        assert!(!ok("https://example.com", false));
        assert!(!ok("example.com:8080", false));
        assert!(!ok("*.example.com", false));
        assert!(!ok("1.2.3.4", false));
        assert!(!ok("[::1]", false));
        assert!(!ok("localhost", false));
        assert!(!ok("intranet", false));
        assert!(!ok("printer.local", false));
        assert!(!ok("db.internal", false));
        assert!(!ok("host.localdomain", false));
        assert!(!ok("x.invalid", false));
        assert!(!ok("co.uk", false));
        assert!(!ok("github.io", false));
        assert!(ok("someone.github.io", false));
        assert!(!ok("bücher.example", false));
        assert!(!ok("exa mple.com", false));
        assert!(!ok("example..com", false));
        assert!(!ok("-example.com", false));
        assert!(!ok("under_score.com", false));
        assert!(!ok("", false));
        assert!(!ok(&format!("{}.com", "a".repeat(64)), false));
        assert!(!ok("example.com/a?b=c", true));
    }

    #[test]
    fn web_domain_list_rules() {
        let wf = |cfg: Value| {
            let mut c = json!({"name": "web_fetch"});
            c.as_object_mut()
                .unwrap()
                .extend(cfg.as_object().unwrap().clone());
            create(
                json!({"name": "a", "model": "m", "tools": [{"type": "agent_toolset_20260401", "configs": [c]}]}),
            )
        };
        assert!(message(wf(json!({"allowed_domains": []}))).contains("must not be empty"));
        assert!(
            message(wf(
                json!({"allowed_domains": ["a.com"], "blocked_domains": ["b.com"]})
            ))
            .contains("cannot be combined")
        );
        let many: Vec<String> = (0..65).map(|i| format!("d{i}.example.com")).collect();
        assert!(message(wf(json!({"allowed_domains": many}))).contains("at most 64"));
        assert!(
            message(wf(json!({"allowed_domains": ["ok.com", "localhost"]}))).starts_with(
                "tools[0].configs[0].allowed_domains[1]: `localhost` is not a valid domain"
            )
        );
        assert!(
            message(wf(json!({"allowed_domains": [3]})))
                .starts_with("tools[0].configs[0].allowed_domains[0]: must be a string")
        );
        // null means "not set".
        assert!(wf(json!({"allowed_domains": null, "blocked_domains": ["b.com"]})).is_ok());
    }

    #[test]
    fn url_sources_rules() {
        let wf = |sources: Value, extra_tools: Value| {
            let mut tools = vec![
                json!({"type": "agent_toolset_20260401", "configs": [{"name": "web_fetch", "url_sources": sources}]}),
            ];
            tools.extend(extra_tools.as_array().unwrap().iter().cloned());
            create(json!({"name": "a", "model": "m", "tools": tools}))
        };
        let lookup = json!([{"type": "custom", "name": "lookup", "description": "d", "input_schema": {"type": "object"}}]);
        let cfg = wf(json!({"client_tool_results": {"type": "except", "tools": [{"type": "tool_reference", "name": "lookup"}]}, "user_input": {"type": "all"}, "server_tool_results": "all"}), lookup.clone()).unwrap();
        assert_eq!(
            render(&cfg)["tools"][0]["configs"][0]["url_sources"],
            json!({"client_tool_results": {"type": "except", "tools": [{"type": "tool_reference", "name": "lookup"}]},
                   "server_tool_results": {"type": "all"}, "user_input": {"type": "all"}})
        );
        let p = "tools[0].configs[0].url_sources";
        assert!(message(wf(json!({"client_tool_results": {"type": "only", "tools": [{"type": "tool_reference", "name": "nope"}]}}), json!([]))).starts_with(&format!("{p}.client_tool_results.tools[0].name: `nope` is not a custom tool")));
        assert!(message(wf(json!({"server_tool_results": {"type": "only", "tools": [{"type": "tool_reference", "name": "bash"}]}}), json!([]))).starts_with(&format!("{p}.server_tool_results.tools[0].name: unknown tool `bash`")));
        assert!(
            message(wf(
                json!({"server_tool_results": {"type": "only", "tools": []}}),
                json!([])
            ))
            .contains("use `none`")
        );
        assert!(
            message(wf(json!({"server_tool_results": "only"}), json!([]))).contains("object form")
        );
        assert!(message(wf(json!({"server_tool_results": {"type": "only", "tools": [{"type": "tool_reference", "name": "web_fetch"}, {"type": "tool_reference", "name": "web_fetch"}]}}), json!([]))).contains("listed twice"));
        assert!(message(wf(json!({"server_tool_results": {"type": "only", "tools": [{"type": "tool", "name": "web_fetch"}]}}), json!([]))).contains(".tools[0].type: unknown type `tool`"));
        assert!(
            message(wf(
                json!({"user_input": {"type": "only", "tools": []}}),
                json!([])
            ))
            .starts_with(&format!("{p}.user_input.type: unknown value `only`"))
        );
        assert!(
            message(wf(json!({"user_input": "some"}), json!([])))
                .starts_with(&format!("{p}.user_input: unknown value `some`"))
        );
        assert!(message(wf(json!({"user_input": "none", "client_tool_results": "none", "server_tool_results": {"type": "none"}}), json!([]))).contains("every source"));
    }

    #[test]
    fn user_location_rules() {
        let ws = |loc: Value| {
            create(
                json!({"name": "a", "model": "m", "tools": [{"type": "agent_toolset_20260401", "configs": [{"name": "web_search", "user_location": loc}]}]}),
            )
        };
        assert!(ws(json!({"type": "approximate", "city": "Paris", "country": "FR"})).is_ok());
        assert!(
            message(ws(json!({"type": "exact"})))
                .contains("user_location.type: unknown type `exact`")
        );
        assert!(
            message(ws(json!({"type": "approximate", "country": "usa"})))
                .contains("user_location.country")
        );
    }

    #[test]
    fn mcp_toolsets_and_servers() {
        let cfg = created(json!({"name": "a", "model": "m",
            "mcp_servers": [{"type": "url", "name": "github", "url": "https://mcp.github.example/sse"}],
            "tools": [{"type": "mcp_toolset", "mcp_server_name": "github",
                       "configs": [{"name": "create_issue", "permission_policy": {"type": "always_allow"}}, {"name": "delete_repo", "enabled": false}]}]}));
        let v = render(&cfg);
        assert_eq!(
            v["mcp_servers"],
            json!([{"type": "url", "name": "github", "url": "https://mcp.github.example/sse"}])
        );
        assert_eq!(
            v["tools"][0],
            json!({"type": "mcp_toolset", "mcp_server_name": "github",
                   "default_config": {"enabled": true, "permission_policy": {"type": "always_ask"}},
                   "configs": [
                       {"name": "create_issue", "enabled": true, "permission_policy": {"type": "always_allow"}},
                       {"name": "delete_repo", "enabled": false, "permission_policy": {"type": "always_ask"}}]})
        );
    }

    #[test]
    fn mcp_reference_rules_both_directions() {
        let server =
            |name: &str| json!({"type": "url", "name": name, "url": "https://x.example.com/mcp"});
        let toolset = |name: &str| json!({"type": "mcp_toolset", "mcp_server_name": name});
        let a = |servers: Value, tools: Value| {
            message(create(
                json!({"name": "a", "model": "m", "mcp_servers": servers, "tools": tools}),
            ))
        };
        assert!(
            a(json!([server("gh")]), json!([]))
                .starts_with("mcp_servers[0]: server `gh` is not referenced")
        );
        assert!(
            a(json!([]), json!([toolset("gh")]))
                .starts_with("tools[0].mcp_server_name: no MCP server named `gh`")
        );
        assert!(
            a(json!([server("gh"), server("gh")]), json!([toolset("gh")]))
                .starts_with("mcp_servers[1].name: duplicate server name `gh`")
        );
        assert!(
            a(json!([server("gh")]), json!([toolset("gh"), toolset("gh")]))
                .starts_with("tools[1].mcp_server_name: MCP server `gh` already has")
        );
        assert!(
            a(
                json!([{"type": "websocket", "name": "gh", "url": "wss://x.example.com"}]),
                json!([toolset("gh")])
            )
            .starts_with("mcp_servers[0].type: unknown type `websocket`")
        );
        assert!(
            a(
                json!([{"type": "stdio", "name": "gh", "command": ""}]),
                json!([toolset("gh")])
            )
            .starts_with("mcp_servers[0].command:")
        );
        assert!(
            a(
                json!([{"type": "stdio", "name": "gh", "command": "x", "env": {"1X": "v"}}]),
                json!([toolset("gh")])
            )
            .starts_with("mcp_servers[0].env.1X:")
        );
        assert!(
            a(
                json!([{"type": "stdio", "name": "gh", "command": "x", "args": ["a", 1]}]),
                json!([toolset("gh")])
            )
            .starts_with("mcp_servers[0].args[1]:")
        );
        assert!(
            a(
                json!([{"type": "url", "name": "", "url": "https://x.example.com"}]),
                json!([])
            )
            .starts_with("mcp_servers[0].name:")
        );
        assert!(
            a(
                json!([{"type": "url", "name": "gh", "url": "ftp://x"}]),
                json!([toolset("gh")])
            )
            .starts_with("mcp_servers[0].url:")
        );
        assert!(
            a(
                json!([{"type": "url", "name": "gh", "url": "https://user:pw@x.example.com"}]),
                json!([toolset("gh")])
            )
            .contains("vault")
        );
        assert!(
            a(
                json!([{"type": "url", "name": "gh", "url": "https:///path"}]),
                json!([toolset("gh")])
            )
            .contains("no host")
        );
        let servers: Vec<Value> = (0..21).map(|i| server(&format!("s{i}"))).collect();
        let tools: Vec<Value> = (0..21).map(|i| toolset(&format!("s{i}"))).collect();
        assert!(a(json!(servers), json!(tools)).starts_with("mcp_servers: at most 20"));
        let mcp_configs = json!([{"type": "mcp_toolset", "mcp_server_name": "gh", "configs": [{"name": "t"}, {"name": "t"}]}]);
        assert!(
            a(json!([server("gh")]), mcp_configs)
                .starts_with("tools[0].configs[1].name: `t` is already configured")
        );
        let long_name = json!([{"type": "mcp_toolset", "mcp_server_name": "gh", "configs": [{"name": "x".repeat(129)}]}]);
        assert!(
            a(json!([server("gh")]), long_name)
                .starts_with("tools[0].configs[0].name: must be 1 to 128")
        );
    }

    #[test]
    fn custom_tools() {
        let cfg = created(
            json!({"name": "a", "model": "m", "tools": [{"type": "custom", "name": "get_weather", "description": "Weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}}]}),
        );
        assert_eq!(
            render(&cfg)["tools"][0],
            json!({"type": "custom", "name": "get_weather", "description": "Weather",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}})
        );
        let cfg = created(
            json!({"name": "a", "model": "m", "tools": [{"type": "custom", "name": "n", "description": "", "input_schema": {"type": "object"}}]}),
        );
        assert_eq!(
            render(&cfg)["tools"][0]["input_schema"],
            json!({"type": "object", "properties": null, "required": null})
        );

        let c = |tool: Value| message(create(json!({"name": "a", "model": "m", "tools": [tool]})));
        let schema = json!({"type": "object"});
        assert!(c(json!({"type": "custom", "name": "bad name", "description": "d", "input_schema": schema})).starts_with("tools[0].name: `bad name` may contain only"));
        assert!(c(json!({"type": "custom", "name": "x".repeat(129), "description": "d", "input_schema": schema})).starts_with("tools[0].name: must be 1 to 128"));
        assert!(
            c(json!({"type": "custom", "name": "", "description": "d", "input_schema": schema}))
                .starts_with("tools[0].name:")
        );
        assert!(
            c(json!({"type": "custom", "name": "n", "input_schema": schema}))
                .starts_with("tools[0].description: is required")
        );
        assert!(
            c(json!({"type": "custom", "name": "n", "description": "d"}))
                .starts_with("tools[0].input_schema: is required")
        );
        assert!(c(json!({"type": "custom", "name": "n", "description": "d", "input_schema": {"type": "array"}})).starts_with("tools[0].input_schema.type: must be `object`"));
        assert!(
            c(json!({"type": "custom", "name": "n", "description": "d", "input_schema": {}}))
                .starts_with("tools[0].input_schema.type: is required")
        );
        assert!(c(json!({"type": "custom", "name": "n", "description": "d", "input_schema": {"type": "object", "required": "x"}})).starts_with("tools[0].input_schema.required: must be an array"));
        assert!(c(json!({"type": "custom", "name": "n", "description": "d", "input_schema": {"type": "object", "required": [1]}})).starts_with("tools[0].input_schema.required[0]:"));
        assert!(c(json!({"type": "custom", "name": "n", "description": "d", "input_schema": {"type": "object", "properties": {"a": 1}}})).starts_with("tools[0].input_schema.properties.a:"));
    }

    #[test]
    fn duplicate_tool_names_are_rejected() {
        let tool = |name: &str| json!({"type": "custom", "name": name, "description": "d", "input_schema": {"type": "object"}});
        let t = |tools: Value| message(create(json!({"name": "a", "model": "m", "tools": tools})));
        assert!(
            t(json!([tool("x"), tool("x")])).starts_with("tools[1].name: duplicate tool name `x`")
        );
        assert!(
            t(json!([{"type": "agent_toolset_20260401"}, tool("bash")]))
                .starts_with("tools[1].name: custom tool `bash` has the name of a built-in tool")
        );
        // Without the built-in toolset the name is free.
        assert!(create(json!({"name": "a", "model": "m", "tools": [tool("bash")]})).is_ok());
    }

    #[test]
    fn tool_count_limit() {
        let tools: Vec<Value> = (0..257)
            .map(|i| json!({"type": "custom", "name": format!("t{i}"), "description": "d", "input_schema": {"type": "object"}}))
            .collect();
        assert!(
            message(create(
                json!({"name": "a", "model": "m", "tools": tools[..257]})
            ))
            .starts_with("tools: at most 256 tools")
        );
        assert!(create(json!({"name": "a", "model": "m", "tools": tools[..256]})).is_ok());
        // The built-in toolset counts as its eight tools.
        let mut with_set = tools[..249].to_vec();
        with_set.push(json!({"type": "agent_toolset_20260401"}));
        assert!(
            message(create(
                json!({"name": "a", "model": "m", "tools": with_set})
            ))
            .contains("got 257")
        );
    }

    // --- skills, identity ----------------------------------------------------------------

    #[test]
    fn skills_resolve_versions_and_reject_bad_entries() {
        let cfg = created(json!({"name": "a", "model": "m", "skills": [
            {"type": "anthropic", "skill_id": "xlsx"},
            {"type": "custom", "skill_id": "skill_01abc", "version": "1759178010641129"},
            {"type": "custom", "skill_id": "skill_02", "version": null}]}));
        assert_eq!(
            render(&cfg)["skills"],
            json!([{"type": "anthropic", "skill_id": "xlsx", "version": "latest"},
                   {"type": "custom", "skill_id": "skill_01abc", "version": "1759178010641129"},
                   {"type": "custom", "skill_id": "skill_02", "version": "latest"}])
        );
        let s =
            |skills: Value| message(create(json!({"name": "a", "model": "m", "skills": skills})));
        assert!(
            s(json!([{"type": "plugin", "skill_id": "x"}]))
                .starts_with("skills[0].type: unknown type `plugin`")
        );
        assert!(s(json!([{"type": "custom"}])).starts_with("skills[0].skill_id: is required"));
        assert!(s(json!([{"type": "custom", "skill_id": ""}])).starts_with("skills[0].skill_id:"));
        assert!(
            s(json!([{"type": "custom", "skill_id": "a", "version": ""}]))
                .starts_with("skills[0].version:")
        );
        assert!(s(json!([{"type": "custom", "skill_id": "a"}, {"type": "custom", "skill_id": "a", "version": "2"}])).starts_with("skills[1].skill_id: skill `a` is already listed"));
        // The same id under the other type is a different skill.
        assert!(create(json!({"name": "a", "model": "m", "skills": [{"type": "custom", "skill_id": "a"}, {"type": "anthropic", "skill_id": "a"}]})).is_ok());
    }

    #[test]
    fn execution_identity_rules() {
        let arn = "arn:aws:iam::123456789012:role/runner";
        let cfg = created(
            json!({"name": "a", "model": "m", "execution_identity": {"type": "aws_role", "role_arn": arn}}),
        );
        assert_eq!(
            render(&cfg)["execution_identity"],
            json!({"type": "aws_role", "role_arn": arn})
        );
        let cfg = created(
            json!({"name": "a", "model": "m", "execution_identity": {"type": "service_account"}}),
        );
        assert_eq!(cfg.execution_identity, ExecutionIdentity::ServiceAccount);
        let e = |ei: Value| {
            message(create(
                json!({"name": "a", "model": "m", "execution_identity": ei}),
            ))
        };
        assert!(
            e(json!({"type": "gcp_sa"}))
                .starts_with("execution_identity.type: unknown type `gcp_sa`")
        );
        assert!(
            e(json!({"type": "aws_role"})).starts_with("execution_identity.role_arn: is required")
        );
        assert!(
            e(json!({"type": "aws_role", "role_arn": "not-an-arn"}))
                .starts_with("execution_identity.role_arn:")
        );
        assert!(e(json!({"type": "aws_role", "role_arn": format!("arn:aws:iam::1:role/{}", "x".repeat(2048))})).contains("2048"));
        // Update: null restores the default.
        let aws = created(
            json!({"name": "a", "model": "m", "execution_identity": {"type": "aws_role", "role_arn": arn}}),
        );
        assert_eq!(
            update(&aws, json!({"execution_identity": null}))
                .unwrap()
                .execution_identity,
            ExecutionIdentity::ServiceAccount
        );
        assert_eq!(update(&aws, json!({})).unwrap(), aws);
    }

    // --- multiagent ----------------------------------------------------------------------

    #[test]
    fn coordinator_roster() {
        let cfg = created(
            json!({"name": "a", "model": "m", "multiagent": {"type": "coordinator", "agents": [
            "agent_1", {"type": "agent", "id": "agent_2", "version": 4}, {"type": "self"}, {"type": "advisor", "model": "claude-opus-4-8"}]}}),
        );
        assert_eq!(
            cfg.agent_refs_to_resolve(),
            vec![
                ("agent_1".to_string(), None),
                ("agent_2".to_string(), Some(4))
            ]
        );
        assert_eq!(
            render(&cfg)["multiagent"],
            json!({"type": "coordinator", "agents": [
                {"type": "agent", "id": "agent_1", "version": 1},
                {"type": "agent", "id": "agent_2", "version": 4},
                {"type": "agent", "id": "agent_x", "version": 3},
                {"type": "advisor", "model": "claude-opus-4-8"}]})
        );
        let m = |ma: Value| message(create(json!({"name": "a", "model": "m", "multiagent": ma})));
        assert!(
            m(json!({"type": "coordinator", "agents": []}))
                .starts_with("multiagent.agents: must have 1 to 20")
        );
        assert!(m(json!({"type": "coordinator"})).starts_with("multiagent.agents: is required"));
        let many: Vec<String> = (0..21).map(|i| format!("agent_{i}")).collect();
        assert!(
            m(json!({"type": "coordinator", "agents": many}))
                .starts_with("multiagent.agents: must have 1 to 20")
        );
        assert!(m(json!({"type": "coordinator", "agents": ["agent_1", {"type": "agent", "id": "agent_1"}]})).starts_with("multiagent.agents[1]: agent `agent_1` is already listed"));
        assert!(
            m(json!({"type": "coordinator", "agents": [{"type": "self"}, {"type": "self"}]}))
                .starts_with("multiagent.agents[1]: `self` may appear once")
        );
        assert!(m(json!({"type": "coordinator", "agents": [{"type": "advisor", "model": "a"}, {"type": "advisor", "model": "b"}]})).starts_with("multiagent.agents[1]: only one advisor"));
        assert!(
            m(json!({"type": "coordinator", "agents": [{"type": "team"}]}))
                .starts_with("multiagent.agents[0].type: unknown type `team`")
        );
        assert!(m(json!({"type": "coordinator", "agents": [{"type": "agent", "id": "a", "version": 0}]})).starts_with("multiagent.agents[0].version:"));
        assert!(
            m(json!({"type": "coordinator", "agents": [3]})).starts_with("multiagent.agents[0]:")
        );
        assert!(m(json!({"type": "swarm"})).starts_with("multiagent.type: unknown type `swarm`"));
        assert!(m(json!("coordinator")).starts_with("multiagent: must be an object"));
    }

    #[test]
    fn multiagent_20261001_defaults() {
        let cfg = created(
            json!({"name": "a", "model": "m", "multiagent": {"type": "multiagent_20261001"}}),
        );
        let expected = json!({"type": "multiagent_20261001",
            "advisor": {"type": "disabled"},
            "subagents": {"type": "enabled", "inline_agents": {"type": "enabled"}, "predefined_agents": []},
            "workflows": {"type": "enabled", "inline_agents": {"type": "enabled"}, "predefined_agents": []}});
        assert_eq!(render(&cfg)["multiagent"], expected);
        // Null members take their defaults, on create too.
        let cfg = created(
            json!({"name": "a", "model": "m", "multiagent": {"type": "multiagent_20261001", "advisor": null, "subagents": null, "workflows": null}}),
        );
        assert_eq!(render(&cfg)["multiagent"], expected);
        let cfg = created(
            json!({"name": "a", "model": "m", "multiagent": {"type": "multiagent_20261001",
            "advisor": {"type": "enabled", "model": "claude-opus-4-8"},
            "subagents": {"type": "enabled", "inline_agents": {"type": "disabled"}, "predefined_agents": [{"type": "self"}, "agent_9"]},
            "workflows": {"type": "disabled"}}}),
        );
        assert_eq!(
            render(&cfg)["multiagent"],
            json!({"type": "multiagent_20261001",
                "advisor": {"type": "enabled", "model": "claude-opus-4-8"},
                "subagents": {"type": "enabled", "inline_agents": {"type": "disabled"},
                              "predefined_agents": [{"type": "agent", "id": "agent_x", "version": 3}, {"type": "agent", "id": "agent_9", "version": 1}]},
                "workflows": {"type": "disabled"}})
        );
        let m = |ma: Value| message(create(json!({"name": "a", "model": "m", "multiagent": ma})));
        assert!(m(json!({"type": "multiagent_20261001", "subagents": {"type": "enabled", "inline_agents": {"type": "disabled"}}})).starts_with("multiagent.subagents: when inline_agents is disabled"));
        assert!(m(json!({"type": "multiagent_20261001", "workflows": {"type": "enabled", "inline_agents": {"type": "disabled"}, "predefined_agents": []}})).starts_with("multiagent.workflows: when inline_agents is disabled"));
        assert!(
            m(json!({"type": "multiagent_20261001", "advisor": {"type": "enabled"}}))
                .starts_with("multiagent.advisor.model: is required")
        );
        assert!(
            m(json!({"type": "multiagent_20261001", "advisor": {"type": "maybe"}}))
                .starts_with("multiagent.advisor.type: unknown type `maybe`")
        );
        assert!(m(json!({"type": "multiagent_20261001", "subagents": {"type": "enabled", "inline_agents": {"type": "sometimes"}}})).starts_with("multiagent.subagents.inline_agents.type: unknown type"));
        assert!(m(json!({"type": "multiagent_20261001", "subagents": {"type": "enabled", "predefined_agents": [{"type": "advisor", "model": "x"}]}})).starts_with("multiagent.subagents.predefined_agents[0].type: unknown type `advisor`; expected `agent` or `self`"));
        let many: Vec<String> = (0..21).map(|i| format!("agent_{i}")).collect();
        assert!(m(json!({"type": "multiagent_20261001", "workflows": {"type": "enabled", "predefined_agents": many}})).starts_with("multiagent.workflows.predefined_agents: at most 20"));
        assert!(m(json!({"type": "multiagent_20261001", "workflows": {"type": "enabled", "predefined_agents": ["a", "a"]}})).starts_with("multiagent.workflows.predefined_agents[1]: agent `a` is already listed"));
    }

    #[test]
    fn multiagent_20261001_merges_level_by_level_on_update() {
        let cfg = created(
            json!({"name": "a", "model": "m", "multiagent": {"type": "multiagent_20261001",
            "advisor": {"type": "enabled", "model": "claude-opus-4-8"},
            "subagents": {"type": "enabled", "inline_agents": {"type": "disabled"}, "predefined_agents": ["agent_1"]},
            "workflows": {"type": "disabled"}}}),
        );
        // Absent members are kept; a sent member of the same type merges its keys.
        let next = update(&cfg, json!({"multiagent": {"type": "multiagent_20261001", "subagents": {"type": "enabled", "predefined_agents": ["agent_2"]}}})).unwrap();
        assert_eq!(
            render(&next)["multiagent"],
            json!({"type": "multiagent_20261001",
                "advisor": {"type": "enabled", "model": "claude-opus-4-8"},
                "subagents": {"type": "enabled", "inline_agents": {"type": "disabled"}, "predefined_agents": [{"type": "agent", "id": "agent_2", "version": 1}]},
                "workflows": {"type": "disabled"}})
        );
        // Null members reset to defaults; a member switching type takes defaults for what it omits.
        let next = update(&cfg, json!({"multiagent": {"type": "multiagent_20261001", "advisor": null, "workflows": {"type": "enabled"}}})).unwrap();
        let v = render(&next)["multiagent"].clone();
        assert_eq!(v["advisor"], json!({"type": "disabled"}));
        assert_eq!(
            v["workflows"],
            json!({"type": "enabled", "inline_agents": {"type": "enabled"}, "predefined_agents": []})
        );
        assert_eq!(v["subagents"]["predefined_agents"][0]["id"], "agent_1");
        // Clearing predefined agents while inline agents stay disabled is refused.
        assert!(message(update(&cfg, json!({"multiagent": {"type": "multiagent_20261001", "subagents": {"type": "enabled", "predefined_agents": null}}}))).starts_with("multiagent.subagents: when inline_agents is disabled"));
        // Re-sending only the type changes nothing.
        assert_eq!(
            update(&cfg, json!({"multiagent": {"type": "multiagent_20261001"}})).unwrap(),
            cfg
        );
        // A different type replaces the whole object; null clears it.
        let coord = update(
            &cfg,
            json!({"multiagent": {"type": "coordinator", "agents": [{"type": "self"}]}}),
        )
        .unwrap();
        assert!(matches!(
            coord.multiagent,
            Some(MultiagentConfig::Coordinator { .. })
        ));
        let back = update(
            &coord,
            json!({"multiagent": {"type": "multiagent_20261001"}}),
        )
        .unwrap();
        assert_eq!(
            render(&back)["multiagent"]["advisor"],
            json!({"type": "disabled"})
        );
        assert_eq!(
            update(&cfg, json!({"multiagent": null}))
                .unwrap()
                .multiagent,
            None
        );
    }

    #[test]
    fn agent_refs_are_resolved_against_the_store() {
        let mut cfg = created(
            json!({"name": "a", "model": {"id": "m", "inference_geo": "us"}, "multiagent": {"type": "multiagent_20261001",
            "subagents": {"type": "enabled", "predefined_agents": ["agent_1", {"type": "agent", "id": "agent_2", "version": 2}, {"type": "self"}]},
            "workflows": {"type": "enabled", "predefined_agents": ["agent_1"]}}}),
        );
        let refs = cfg.agent_refs_to_resolve();
        assert_eq!(
            refs,
            vec![
                ("agent_1".to_string(), None),
                ("agent_2".to_string(), Some(2))
            ]
        );
        let ok = |version| ResolvedAgentRef {
            version,
            archived: false,
            has_multiagent: false,
            inference_geo: Some("us".into()),
        };
        let mut found = HashMap::new();
        found.insert(("agent_1".to_string(), None), ok(7));
        found.insert(("agent_2".to_string(), Some(2)), ok(2));
        cfg.resolve_agent_refs(None, &found).unwrap();
        let v = render(&cfg)["multiagent"].clone();
        assert_eq!(
            v["subagents"]["predefined_agents"],
            json!([
            {"type": "agent", "id": "agent_1", "version": 7},
            {"type": "agent", "id": "agent_2", "version": 2},
            {"type": "agent", "id": "agent_x", "version": 3}])
        );
        assert_eq!(
            v["workflows"]["predefined_agents"],
            json!([{"type": "agent", "id": "agent_1", "version": 7}])
        );

        let fresh = || {
            created(
                json!({"name": "a", "model": "m", "multiagent": {"type": "coordinator", "agents": ["agent_1"]}}),
            )
        };
        let try_with = |info: Option<ResolvedAgentRef>, own: Option<&str>| {
            let mut found = HashMap::new();
            if let Some(info) = info {
                found.insert(("agent_1".to_string(), None), info);
            }
            fresh().resolve_agent_refs(own, &found).unwrap_err().message
        };
        let plain = |version| ResolvedAgentRef {
            version,
            archived: false,
            has_multiagent: false,
            inference_geo: None,
        };
        assert!(
            try_with(None, None).starts_with("multiagent.agents[0]: agent `agent_1` not found")
        );
        assert!(
            try_with(
                Some(ResolvedAgentRef {
                    archived: true,
                    ..plain(1)
                }),
                None
            )
            .contains("archived")
        );
        assert!(
            try_with(
                Some(ResolvedAgentRef {
                    has_multiagent: true,
                    ..plain(1)
                }),
                None
            )
            .contains("depth limit")
        );
        assert!(
            try_with(
                Some(ResolvedAgentRef {
                    inference_geo: Some("us".into()),
                    ..plain(1)
                }),
                None
            )
            .contains("inference_geo")
        );
        assert!(try_with(Some(plain(1)), Some("agent_1")).contains("self"));
        let mut ok_cfg = fresh();
        let mut found = HashMap::new();
        found.insert(("agent_1".to_string(), None), plain(5));
        ok_cfg
            .resolve_agent_refs(Some("agent_other"), &found)
            .unwrap();
        assert_eq!(render(&ok_cfg)["multiagent"]["agents"][0]["version"], 5);
    }

    // --- update semantics ----------------------------------------------------------------

    #[test]
    fn empty_update_is_a_no_op() {
        let cfg = created(
            json!({"name": "a", "model": "m", "description": "d", "system": "s",
            "tools": [{"type": "agent_toolset_20260401"}], "skills": [{"type": "anthropic", "skill_id": "pdf"}],
            "metadata": {"k": "v"}}),
        );
        assert_eq!(update(&cfg, json!({})).unwrap(), cfg);
        // Re-sending identical values is a no-op as well.
        let same = update(&cfg, json!({"name": "a", "description": "d", "system": "s", "tools": [{"type": "agent_toolset_20260401"}],
            "skills": [{"type": "anthropic", "skill_id": "pdf"}], "metadata": {"k": "v"}})).unwrap();
        assert_eq!(same, cfg);
    }

    #[test]
    fn update_clears_and_replaces() {
        let cfg = created(
            json!({"name": "a", "model": "m", "description": "d", "system": "s",
            "tools": [{"type": "agent_toolset_20260401"}], "skills": [{"type": "anthropic", "skill_id": "pdf"}],
            "metadata": {"k": "v", "j": "w"}}),
        );
        let next = update(&cfg, json!({"description": null, "system": "", "tools": null, "skills": [], "metadata": {"k": null, "n": "x"}})).unwrap();
        assert_eq!(next.description, None);
        assert_eq!(next.system, None);
        assert!(next.tools.is_empty());
        assert!(next.skills.is_empty());
        assert_eq!(
            next.metadata.into_iter().collect::<Vec<_>>(),
            vec![("j".into(), "w".into()), ("n".into(), "x".into())]
        );
        let next = update(&cfg, json!({"description": "", "name": "b"})).unwrap();
        assert_eq!(next.description, None);
        assert_eq!(next.name, "b");
        assert!(
            message(update(&cfg, json!({"name": null}))).starts_with("name: cannot be cleared")
        );
        assert!(message(update(&cfg, json!({"name": ""}))).starts_with("name: must be non-empty"));
        assert!(
            message(update(&cfg, json!({"version": 0}))).starts_with("version: must be at least 1")
        );
    }

    #[test]
    fn update_checks_mcp_references_on_the_result() {
        let cfg = created(json!({"name": "a", "model": "m",
            "mcp_servers": [{"type": "url", "name": "gh", "url": "https://x.example.com/mcp"}],
            "tools": [{"type": "mcp_toolset", "mcp_server_name": "gh"}]}));
        // Removing the toolset alone would orphan the server.
        assert!(
            message(update(&cfg, json!({"tools": []})))
                .starts_with("mcp_servers[0]: server `gh` is not referenced")
        );
        // Removing the server alone would orphan the toolset.
        assert!(
            message(update(&cfg, json!({"mcp_servers": null})))
                .starts_with("tools[0].mcp_server_name: no MCP server")
        );
        // Both together is fine.
        let next = update(&cfg, json!({"mcp_servers": [], "tools": []})).unwrap();
        assert!(next.mcp_servers.is_empty() && next.tools.is_empty());
    }

    #[test]
    fn stored_config_round_trips_through_json() {
        let cfg = created(
            json!({"name": "a", "model": {"id": "m", "effort": "low"}, "system": "s",
            "mcp_servers": [{"type": "url", "name": "gh", "url": "https://x.example.com/mcp"}],
            "tools": [{"type": "agent_toolset_20260401", "configs": [{"name": "web_fetch", "allowed_domains": ["example.com"], "url_sources": {"user_input": "none"}}]},
                      {"type": "mcp_toolset", "mcp_server_name": "gh", "configs": [{"name": "x"}]},
                      {"type": "custom", "name": "c", "description": "d", "input_schema": {"type": "object", "$defs": {}}}],
            "skills": [{"type": "custom", "skill_id": "skill_1"}],
            "multiagent": {"type": "coordinator", "agents": [{"type": "self"}, "agent_1", {"type": "advisor", "model": "m2"}]},
            "execution_identity": {"type": "aws_role", "role_arn": "arn:aws:iam::1:role/r"},
            "metadata": {"a": "b"}}),
        );
        let stored = serde_json::to_string(&cfg).unwrap();
        let back: AgentConfig = serde_json::from_str(&stored).unwrap();
        assert_eq!(back, cfg);
        // And the rendered object is what the SDK model accepts field by field.
        let agent: Agent = serde_json::from_value(render(&cfg)).unwrap();
        assert_eq!(agent.tools, cfg.tools);
    }

    #[test]
    fn one_of_formats_lists() {
        assert_eq!(one_of(&["a"]), "`a`");
        assert_eq!(one_of(&["a", "b"]), "`a` or `b`");
        assert_eq!(one_of(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
