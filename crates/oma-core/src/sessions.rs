//! Domain rules: sessions (spec §3.3, §5.3; semantics §2.3, §4, §8).
//!
//! Everything here is pure: the store resolves ids (agents, environments, vaults, files, memory
//! stores) and hands the results to these functions, which validate requests and build the
//! objects the API returns. Requests are read from loose JSON so that every mistake becomes a
//! 400 naming the offending field (`resources[1].mount_path: …`).

use std::collections::{HashMap, HashSet};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oma_api::agents::{AgentTool, AgentToolConfig, Effort, Multiagent, MultiagentMember};
use oma_api::sessions::{
    BudgetLimit, CacheCreationUsage, Checkout, MemoryAccess, MonetaryAmount, OutcomeEvaluation,
    Session, SessionAgent, SessionMultiagent, SessionMultiagentMember, SessionRosterEntry,
    SessionStatus, SessionThread, SessionThreadAgent, SessionUsage, ThreadAgent,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::agents::{
    AgentConfig, UpdateAgentParams, check_mcp_references, default_effort, parse_mcp_servers,
    parse_tools,
};
use crate::events::NewEvent;
use crate::metadata::{self, Metadata};
use crate::{Error, Patch, time};
use oma_api::json::kind_of;

/// Longest `title`, in characters. The API documents none; a bound keeps rows sane.
pub const MAX_TITLE_CHARS: usize = 1024;
/// Most `vault_ids` on one session.
pub const MAX_VAULTS: usize = 50;
/// Most `file` resources on one session (semantics §8.2).
pub const MAX_FILES: usize = 500;
/// Most `memory_store` resources on one session (semantics §8.3).
pub const MAX_MEMORY_STORES: usize = 8;
/// Most `github_repository` resources on one session. Undocumented; a generous bound.
pub const MAX_REPOSITORIES: usize = 100;
/// Longest memory store `instructions`, in characters.
pub const MAX_INSTRUCTIONS_CHARS: usize = 4096;
/// Longest mount path, in bytes.
pub const MAX_MOUNT_PATH_BYTES: usize = 1024;
/// Longest GitHub authorization token, in bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Largest `max_list_cost.amount`, in minor units (one trillion dollars): larger is a mistake,
/// and the bound keeps every amount exact in an `i64`.
pub const MAX_BUDGET_MINOR_UNITS: u64 = 100_000_000_000_000;

/// Where file resources are mounted (semantics §8.2).
pub const UPLOADS_DIR: &str = "/mnt/session/uploads";
/// Where memory stores are mounted (semantics §8.3).
pub const MEMORY_DIR: &str = "/mnt/memory";
/// Where repositories are cloned by default (semantics §8.1).
pub const WORKSPACE_DIR: &str = "/workspace";

const GITHUB_PREFIX: &str = "https://github.com/";
const CURRENCIES: [&str; 1] = ["USD"];
const RESOURCE_TYPES: [&str; 3] = ["github_repository", "file", "memory_store"];

// ---------------------------------------------------------------------------------------------
// Create
// ---------------------------------------------------------------------------------------------

/// `POST /v1/sessions` body. Loose JSON so the rules can name the field that is wrong.
#[derive(Debug, Deserialize, Default)]
pub struct CreateSessionParams {
    #[serde(default)]
    pub agent: Value,
    #[serde(default)]
    pub environment_id: Value,
    #[serde(default)]
    pub budget: Option<Value>,
    #[serde(default)]
    pub initial_events: Option<Value>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub resources: Option<Value>,
    #[serde(default)]
    pub title: Option<Value>,
    #[serde(default)]
    pub vault_ids: Option<Value>,
}

/// A create request after the checks that need no store.
#[derive(Debug, Clone)]
pub struct CreateSession {
    pub agent: AgentSelector,
    pub environment_id: String,
    pub budget: Option<BudgetLimit>,
    /// Validated `initial_events`, ready to append.
    pub initial_events: Vec<NewEvent>,
    pub metadata: Metadata,
    pub resources: Vec<ResourceParam>,
    pub title: Option<String>,
    pub vault_ids: Vec<String>,
}

impl CreateSession {
    pub fn parse(p: CreateSessionParams) -> Result<Self, Error> {
        let agent = AgentSelector::parse(&p.agent)?;
        let environment_id = match &p.environment_id {
            Value::String(s) if !s.trim().is_empty() => s.clone(),
            Value::String(_) => return Err(Error::invalid("environment_id: must be non-empty")),
            Value::Null => return Err(Error::invalid("environment_id: is required")),
            other => {
                return Err(Error::invalid(format!(
                    "environment_id: must be a string, got {}",
                    kind_of(other)
                )));
            }
        };
        let budget = match &p.budget {
            None | Some(Value::Null) => None,
            Some(v) => Some(parse_budget(v, "budget")?),
        };
        let initial_events = match &p.initial_events {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(events)) => crate::events::validate_initial_events(events)?,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "initial_events: must be an array, got {}",
                    kind_of(other)
                )));
            }
        };
        let resources = match &p.resources {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => parse_resources(items)?,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "resources: must be an array, got {}",
                    kind_of(other)
                )));
            }
        };
        Ok(CreateSession {
            agent,
            environment_id,
            budget,
            initial_events,
            metadata: metadata::from_create(p.metadata.as_ref())?,
            resources,
            title: parse_title(p.title.as_ref())?,
            vault_ids: parse_vault_ids(p.vault_ids.as_ref())?,
        })
    }

    /// The status a new session starts in: `running` when it has initial events to process.
    pub fn initial_status(&self) -> SessionStatus {
        if self.initial_events.is_empty() {
            SessionStatus::Idle
        } else {
            SessionStatus::Running
        }
    }
}

fn parse_title(v: Option<&Value>) -> Result<Option<String>, Error> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() > MAX_TITLE_CHARS => Err(Error::invalid(
            format!("title: must be at most {MAX_TITLE_CHARS} characters"),
        )),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::invalid(format!(
            "title: must be a string or null, got {}",
            kind_of(other)
        ))),
    }
}

/// `vault_ids`: non-empty strings, duplicates dropped (the first occurrence keeps its rank,
/// which matters because the first matching vault wins).
fn parse_vault_ids(v: Option<&Value>) -> Result<Vec<String>, Error> {
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(Error::invalid(format!(
                "vault_ids: must be an array, got {}",
                kind_of(other)
            )));
        }
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) if !s.trim().is_empty() => {
                if !out.contains(s) {
                    out.push(s.clone());
                }
            }
            _ => {
                return Err(Error::invalid(format!(
                    "vault_ids[{i}]: must be a non-empty vault id string"
                )));
            }
        }
    }
    if out.len() > MAX_VAULTS {
        return Err(Error::invalid(format!(
            "vault_ids: at most {MAX_VAULTS} vaults per session"
        )));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Agent selection and overrides
// ---------------------------------------------------------------------------------------------

/// Which agent a session runs: an id (latest version), a pinned version, and optional
/// per-session overrides.
#[derive(Debug, Clone, Default)]
pub struct AgentSelector {
    pub id: String,
    pub version: Option<i64>,
    pub overrides: Option<AgentOverrides>,
}

/// `agent_with_overrides` fields. Each present field replaces the agent's value in full.
#[derive(Debug, Clone, Default)]
pub struct AgentOverrides {
    pub model: Option<Value>,
    pub system: Patch<String>,
    pub tools: Patch<Vec<Value>>,
    pub mcp_servers: Patch<Vec<Value>>,
    pub skills: Patch<Vec<Value>>,
}

const OVERRIDE_KEYS: [&str; 5] = ["model", "system", "tools", "mcp_servers", "skills"];

impl AgentSelector {
    /// Reads `agent`: an id string, `{"type":"agent","id","version"?}` or
    /// `{"type":"agent_with_overrides","id","version"?,…overrides}`.
    pub fn parse(v: &Value) -> Result<Self, Error> {
        match v {
            Value::String(id) if !id.trim().is_empty() => Ok(AgentSelector {
                id: id.clone(),
                ..Default::default()
            }),
            Value::String(_) => Err(Error::invalid("agent: must be a non-empty agent id")),
            Value::Null => Err(Error::invalid("agent: is required")),
            Value::Object(o) => {
                let kind = match o.get("type") {
                    Some(Value::String(t)) => t.as_str(),
                    None | Some(Value::Null) => {
                        return Err(Error::invalid(
                            "agent.type: is required (`agent` or `agent_with_overrides`)",
                        ));
                    }
                    Some(other) => {
                        return Err(Error::invalid(format!(
                            "agent.type: must be a string, got {}",
                            kind_of(other)
                        )));
                    }
                };
                let id = match o.get("id") {
                    Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
                    Some(Value::String(_)) => {
                        return Err(Error::invalid("agent.id: must be non-empty"));
                    }
                    None | Some(Value::Null) => {
                        return Err(Error::invalid("agent.id: is required"));
                    }
                    Some(other) => {
                        return Err(Error::invalid(format!(
                            "agent.id: must be a string, got {}",
                            kind_of(other)
                        )));
                    }
                };
                let version = match o.get("version") {
                    None | Some(Value::Null) => None,
                    Some(Value::Number(n)) => match n.as_i64() {
                        Some(v) if v >= 1 => Some(v),
                        _ => {
                            return Err(Error::invalid(
                                "agent.version: must be an integer of at least 1",
                            ));
                        }
                    },
                    Some(other) => {
                        return Err(Error::invalid(format!(
                            "agent.version: must be an integer, got {}",
                            kind_of(other)
                        )));
                    }
                };
                match kind {
                    "agent" => {
                        if let Some(key) = OVERRIDE_KEYS.iter().find(|k| o.contains_key(**k)) {
                            return Err(Error::invalid(format!(
                                "agent.{key}: overrides need `\"type\": \"agent_with_overrides\"`"
                            )));
                        }
                        Ok(AgentSelector {
                            id,
                            version,
                            overrides: None,
                        })
                    }
                    "agent_with_overrides" => {
                        let overrides = AgentOverrides::parse(o)?;
                        Ok(AgentSelector {
                            id,
                            version,
                            overrides: Some(overrides),
                        })
                    }
                    other => Err(Error::invalid(format!(
                        "agent.type: unknown type `{other}`; expected `agent` or `agent_with_overrides`"
                    ))),
                }
            }
            other => Err(Error::invalid(format!(
                "agent: must be an agent id string or an agent object, got {}",
                kind_of(other)
            ))),
        }
    }
}

impl AgentOverrides {
    fn parse(o: &Map<String, Value>) -> Result<Self, Error> {
        let model = match o.get("model") {
            None => None,
            Some(Value::Null) => {
                return Err(Error::invalid(
                    "agent.model: cannot be null; omit it to keep the agent's model",
                )
                .with_code("agent_model_required"));
            }
            Some(v) => Some(v.clone()),
        };
        let system = match o.get("system") {
            None => Patch::Absent,
            Some(Value::Null) => Patch::Null,
            Some(Value::String(s)) => Patch::Value(s.clone()),
            Some(other) => {
                return Err(Error::invalid(format!(
                    "agent.system: must be a string or null, got {}",
                    kind_of(other)
                )));
            }
        };
        Ok(AgentOverrides {
            model,
            system,
            tools: list_patch(o, "tools")?,
            mcp_servers: list_patch(o, "mcp_servers")?,
            skills: list_patch(o, "skills")?,
        })
    }

    /// The configuration the session runs: `base` with these overrides applied. Overrides
    /// never touch the agent itself. An overridden model runs at its default effort (an effort
    /// inside the override is ignored, semantics §2.3).
    pub fn apply(&self, base: &AgentConfig) -> Result<AgentConfig, Error> {
        let params = UpdateAgentParams {
            model: self.model.clone().map_or(Patch::Absent, Patch::Value),
            system: self.system.clone(),
            tools: self.tools.clone(),
            mcp_servers: self.mcp_servers.clone(),
            skills: self.skills.clone(),
            ..Default::default()
        };
        let mut cfg = base.update(params).map_err(under_agent)?;
        if self.model.is_some() {
            cfg.model.effort = Some(Effort {
                level: default_effort(&cfg.model.id),
            });
        }
        if !self.tools.is_absent() && !cfg.skills.is_empty() && !read_tool_enabled(&cfg.tools) {
            return Err(Error::invalid(
                "agent.tools: the session's skills need the `read` tool of agent_toolset_20260401; \
                 keep it enabled or also override `skills`",
            ));
        }
        Ok(cfg)
    }
}

fn list_patch(o: &Map<String, Value>, key: &str) -> Result<Patch<Vec<Value>>, Error> {
    match o.get(key) {
        None => Ok(Patch::Absent),
        Some(Value::Null) => Ok(Patch::Null),
        Some(Value::Array(items)) => Ok(Patch::Value(items.clone())),
        Some(other) => Err(Error::invalid(format!(
            "agent.{key}: must be an array, got {}",
            kind_of(other)
        ))),
    }
}

/// Prefixes a configuration error's field path with `agent.`, since in a session request the
/// agent's fields live under that key.
fn under_agent(mut e: Error) -> Error {
    if !e.message.starts_with("agent.") {
        e.message = format!("agent.{}", e.message);
    }
    e
}

/// Whether the built-in `read` tool is available (skills are read from the sandbox with it).
pub fn read_tool_enabled(tools: &[AgentTool]) -> bool {
    tools.iter().any(|t| match t {
        AgentTool::AgentToolset20260401(set) => set
            .configs
            .iter()
            .find(|c| matches!(c, AgentToolConfig::Read(_)))
            .map_or(set.default_config.enabled, AgentToolConfig::enabled),
        _ => false,
    })
}

/// The definition of a saved agent at one version, as threads show it.
pub fn thread_agent(id: &str, version: i64, cfg: &AgentConfig) -> SessionThreadAgent {
    SessionThreadAgent {
        id: id.to_string(),
        description: cfg.description.clone(),
        execution_identity: cfg.execution_identity.clone(),
        mcp_servers: cfg.mcp_servers.clone(),
        model: cfg.model.clone(),
        name: cfg.name.clone(),
        skills: cfg.skills.clone(),
        system: cfg.system.clone(),
        tools: cfg.tools.clone(),
        version,
    }
}

/// A saved agent version the roster refers to, as the store found it.
#[derive(Debug, Clone)]
pub struct RosterAgent {
    pub config: AgentConfig,
    pub archived: bool,
}

/// The `(agent id, version)` pairs whose full definitions the session snapshot needs: every
/// agent of the roster except the session's own agent (`self` entries), deduplicated.
pub fn roster_refs(cfg: &AgentConfig, own_id: &str, own_version: i64) -> Vec<(String, i64)> {
    let Some(multiagent) = &cfg.multiagent else {
        return Vec::new();
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut push = |id: &str, version: i64| {
        if id != own_id && seen.insert((id.to_string(), version)) {
            out.push((id.to_string(), version));
        }
    };
    match multiagent.render(own_id, own_version) {
        Multiagent::Coordinator { agents } => {
            for entry in agents {
                if let oma_api::agents::CoordinatorRosterEntry::Agent { id, version } = entry {
                    push(&id, version);
                }
            }
        }
        Multiagent::Multiagent20261001 {
            subagents,
            workflows,
            ..
        } => {
            for member in [subagents, workflows] {
                if let MultiagentMember::Enabled {
                    predefined_agents, ..
                } = member
                {
                    for r in predefined_agents {
                        push(&r.id, r.version);
                    }
                }
            }
        }
    }
    out
}

/// The resolved snapshot of the session's agent: `cfg` (overrides applied) at `id`/`version`,
/// with every roster member's full definition from `roster`. `self` entries are the session's
/// own (overridden) agent, since overrides apply to the coordinator and its `self` copies.
pub fn session_agent(
    id: &str,
    version: i64,
    cfg: &AgentConfig,
    roster: &HashMap<(String, i64), RosterAgent>,
) -> Result<SessionAgent, Error> {
    let own = thread_agent(id, version, cfg);
    let resolve = |rid: &str, rversion: i64, path: &str| -> Result<SessionThreadAgent, Error> {
        if rid == id {
            return Ok(own.clone());
        }
        let found = roster.get(&(rid.to_string(), rversion)).ok_or_else(|| {
            Error::invalid(format!(
                "{path}: agent `{rid}` version {rversion} of the roster no longer exists"
            ))
        })?;
        if found.archived {
            return Err(Error::invalid(format!(
                "{path}: agent `{rid}` of the roster is archived; archived agents cannot join new sessions"
            )));
        }
        Ok(thread_agent(rid, rversion, &found.config))
    };
    let multiagent = match cfg.multiagent.as_ref().map(|m| m.render(id, version)) {
        None => None,
        Some(Multiagent::Coordinator { agents }) => Some(SessionMultiagent::Coordinator {
            agents: agents
                .into_iter()
                .enumerate()
                .map(|(i, entry)| match entry {
                    oma_api::agents::CoordinatorRosterEntry::Agent {
                        id: rid,
                        version: rv,
                    } => resolve(&rid, rv, &format!("agent.multiagent.agents[{i}]"))
                        .map(|a| SessionRosterEntry::Agent(Box::new(a))),
                    // Accepted on agents (the wire contract), but a session that would have
                    // to consult one is refused until the advisor runs.
                    oma_api::agents::CoordinatorRosterEntry::Advisor { model } => {
                        Err(Error::invalid(format!(
                            "agent.multiagent.agents[{i}]: the advisor (`{model}`) is not supported by this \
                             server yet; remove it from the coordinator's roster to run sessions with it"
                        )))
                    }
                })
                .collect::<Result<_, _>>()?,
        }),
        Some(Multiagent::Multiagent20261001 {
            advisor,
            subagents,
            workflows,
        }) => {
            // Accepted on agents (the wire contract); sessions are refused until it runs.
            let enabled = !matches!(advisor, oma_api::agents::MultiagentAdvisor::Disabled)
                || !matches!(subagents, MultiagentMember::Disabled)
                || !matches!(workflows, MultiagentMember::Disabled);
            if enabled {
                return Err(Error::invalid(
                    "agent.multiagent: `multiagent_20261001` (subagents, workflows, advisor) is not \
                     supported by this server yet; use `{\"type\": \"coordinator\"}` for delegation",
                ));
            }
            let member =
                |m: MultiagentMember, name: &str| -> Result<SessionMultiagentMember, Error> {
                    Ok(match m {
                        MultiagentMember::Disabled => SessionMultiagentMember::Disabled,
                        MultiagentMember::Enabled {
                            inline_agents,
                            predefined_agents,
                        } => SessionMultiagentMember::Enabled {
                            inline_agents,
                            predefined_agents: predefined_agents
                                .into_iter()
                                .enumerate()
                                .map(|(i, r)| {
                                    resolve(
                                        &r.id,
                                        r.version,
                                        &format!("agent.multiagent.{name}.predefined_agents[{i}]"),
                                    )
                                })
                                .collect::<Result<_, _>>()?,
                        },
                    })
                };
            Some(SessionMultiagent::Multiagent20261001 {
                advisor,
                subagents: member(subagents, "subagents")?,
                workflows: member(workflows, "workflows")?,
            })
        }
    };
    Ok(SessionAgent {
        id: id.to_string(),
        description: cfg.description.clone(),
        execution_identity: cfg.execution_identity.clone(),
        mcp_servers: cfg.mcp_servers.clone(),
        model: cfg.model.clone(),
        multiagent,
        name: cfg.name.clone(),
        skills: cfg.skills.clone(),
        system: cfg.system.clone(),
        tools: cfg.tools.clone(),
        version,
    })
}

// ---------------------------------------------------------------------------------------------
// Budget
// ---------------------------------------------------------------------------------------------

/// Reads `{"type":"limit","max_list_cost":{"amount","currency"}}`.
pub fn parse_budget(v: &Value, path: &str) -> Result<BudgetLimit, Error> {
    let o = v
        .as_object()
        .ok_or_else(|| Error::invalid(format!("{path}: must be an object, got {}", kind_of(v))))?;
    match o.get("type") {
        Some(Value::String(t)) if t == "limit" => {}
        Some(Value::String(t)) => {
            return Err(Error::invalid(format!(
                "{path}.type: unknown budget type `{t}`; expected `limit`"
            )));
        }
        _ => {
            return Err(Error::invalid(format!(
                "{path}.type: is required (`limit`)"
            )));
        }
    }
    let cost_path = format!("{path}.max_list_cost");
    let cost = o
        .get("max_list_cost")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            Error::invalid(format!(
                "{cost_path}: is required (an object with `amount` and `currency`)"
            ))
        })?;
    let amount = match cost.get("amount") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(Error::invalid(format!(
                "{cost_path}.amount: must be a string of minor units such as \"2500\", got {}",
                kind_of(other)
            )));
        }
        None => return Err(Error::invalid(format!("{cost_path}.amount: is required"))),
    };
    let minor = parse_amount(&amount)
        .map_err(|why| Error::invalid(format!("{cost_path}.amount: {why}")))?;
    if minor == 0 {
        return Err(Error::invalid(format!(
            "{cost_path}.amount: must be greater than zero"
        )));
    }
    let currency = match cost.get("currency") {
        Some(Value::String(c)) if CURRENCIES.contains(&c.as_str()) => c.clone(),
        Some(Value::String(c)) => {
            return Err(Error::invalid(format!(
                "{cost_path}.currency: unsupported currency `{c}`; expected `USD`"
            )));
        }
        _ => {
            return Err(Error::invalid(format!(
                "{cost_path}.currency: is required (`USD`)"
            )));
        }
    };
    Ok(BudgetLimit {
        max_list_cost: MonetaryAmount { amount, currency },
    })
}

/// An amount of minor units: an integer decimal string with no sign and no leading zeros.
pub fn parse_amount(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{s}` is not an integer number of minor units (e.g. \"2500\" for $25.00)"
        ));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(format!("`{s}` has leading zeros"));
    }
    match s.parse::<u64>() {
        Ok(n) if n <= MAX_BUDGET_MINOR_UNITS => Ok(n),
        _ => Err(format!("must be at most {MAX_BUDGET_MINOR_UNITS}")),
    }
}

/// Whether the price table (built-in list rates and the operator's `[pricing]`) prices
/// `model_id`, which budget enforcement needs.
pub fn is_list_priced(model_id: &str) -> bool {
    crate::pricing::table().is_list_priced(model_id)
}

/// Every model the session can run (its agent's and each roster member's) must have a list
/// price for a budget to be enforceable.
pub fn check_budgetable(agent: &SessionAgent) -> Result<(), Error> {
    let mut models: Vec<&str> = vec![agent.model.id.as_str()];
    match &agent.multiagent {
        None => {}
        Some(SessionMultiagent::Coordinator { agents }) => {
            for entry in agents {
                match entry {
                    SessionRosterEntry::Agent(a) => models.push(&a.model.id),
                    SessionRosterEntry::Advisor(a) => models.push(&a.model),
                }
            }
        }
        Some(SessionMultiagent::Multiagent20261001 {
            advisor,
            subagents,
            workflows,
        }) => {
            if let oma_api::agents::MultiagentAdvisor::Enabled { model } = advisor {
                models.push(model);
            }
            for member in [subagents, workflows] {
                if let SessionMultiagentMember::Enabled {
                    predefined_agents, ..
                } = member
                {
                    models.extend(predefined_agents.iter().map(|a| a.model.id.as_str()));
                }
            }
        }
    }
    match models.into_iter().find(|m| !is_list_priced(m)) {
        None => Ok(()),
        Some(m) => Err(Error::invalid(format!(
            "budget: model `{m}` has no public list price, so a spend ceiling cannot be enforced for this session \
             (an operator can price it under `[pricing.models]` in oma.toml)"
        ))
        .with_code("model_not_budgetable")),
    }
}

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

/// One `resources[]` entry after validation. Mount paths are final except for memory stores,
/// whose path derives from the store's name (see [`memory_mount_path`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceParam {
    GithubRepository {
        url: String,
        authorization_token: Option<String>,
        checkout: Option<Checkout>,
        mount_path: String,
    },
    File {
        file_id: String,
        mount_path: String,
    },
    MemoryStore {
        memory_store_id: String,
        access: MemoryAccess,
        instructions: Option<String>,
    },
}

/// Reads `resources[]` of session create, with the per-session limits and uniqueness rules.
pub fn parse_resources(items: &[Value]) -> Result<Vec<ResourceParam>, Error> {
    let out = items
        .iter()
        .enumerate()
        .map(|(i, v)| parse_resource(v, &format!("resources[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let count = |f: fn(&ResourceParam) -> bool| out.iter().filter(|r| f(r)).count();
    if count(|r| matches!(r, ResourceParam::File { .. })) > MAX_FILES {
        return Err(Error::invalid(format!(
            "resources: at most {MAX_FILES} file resources per session"
        )));
    }
    if count(|r| matches!(r, ResourceParam::MemoryStore { .. })) > MAX_MEMORY_STORES {
        return Err(Error::invalid(format!(
            "resources: at most {MAX_MEMORY_STORES} memory stores per session"
        )));
    }
    if count(|r| matches!(r, ResourceParam::GithubRepository { .. })) > MAX_REPOSITORIES {
        return Err(Error::invalid(format!(
            "resources: at most {MAX_REPOSITORIES} repositories per session"
        )));
    }
    let mut stores = HashSet::new();
    let mut paths: HashMap<&str, usize> = HashMap::new();
    for (i, r) in out.iter().enumerate() {
        match r {
            ResourceParam::MemoryStore {
                memory_store_id, ..
            } => {
                if !stores.insert(memory_store_id.as_str()) {
                    return Err(Error::invalid(format!(
                        "resources[{i}].memory_store_id: memory store `{memory_store_id}` is attached twice"
                    )));
                }
            }
            ResourceParam::GithubRepository { mount_path, .. }
            | ResourceParam::File { mount_path, .. } => {
                if let Some(first) = paths.insert(mount_path.as_str(), i) {
                    return Err(Error::invalid(format!(
                        "resources[{i}].mount_path: `{mount_path}` is already used by resources[{first}]"
                    )));
                }
            }
        }
    }
    Ok(out)
}

/// Reads one resource param.
pub fn parse_resource(v: &Value, path: &str) -> Result<ResourceParam, Error> {
    let o = v
        .as_object()
        .ok_or_else(|| Error::invalid(format!("{path}: must be an object, got {}", kind_of(v))))?;
    let kind = match o.get("type") {
        Some(Value::String(t)) => t.as_str(),
        _ => {
            return Err(Error::invalid(format!(
                "{path}.type: is required (one of `github_repository`, `file`, `memory_store`)"
            )));
        }
    };
    match kind {
        "github_repository" => {
            let url = required_string(o, "url", path)?;
            let repo = github_repo_name(&url)
                .map_err(|why| Error::invalid(format!("{path}.url: {why}")))?;
            let authorization_token = match o.get("authorization_token") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) => {
                    Some(check_token(t, &format!("{path}.authorization_token"))?)
                }
                Some(other) => {
                    return Err(Error::invalid(format!(
                        "{path}.authorization_token: must be a string, got {}",
                        kind_of(other)
                    )));
                }
            };
            let checkout = match o.get("checkout") {
                None | Some(Value::Null) => None,
                Some(c) => Some(parse_checkout(c, &format!("{path}.checkout"))?),
            };
            let mount_path = match optional_string(o, "mount_path", path)? {
                None => format!("{WORKSPACE_DIR}/{repo}"),
                Some(p) => normalize_mount_path(&p, &format!("{path}.mount_path"))?,
            };
            Ok(ResourceParam::GithubRepository {
                url,
                authorization_token,
                checkout,
                mount_path,
            })
        }
        "file" => parse_file_fields(o, path),
        "memory_store" => {
            let memory_store_id = required_string(o, "memory_store_id", path)?;
            let access = match o.get("access") {
                None | Some(Value::Null) => MemoryAccess::ReadWrite,
                Some(Value::String(a)) if a == "read_write" => MemoryAccess::ReadWrite,
                Some(Value::String(a)) if a == "read_only" => MemoryAccess::ReadOnly,
                Some(other) => {
                    return Err(Error::invalid(format!(
                        "{path}.access: must be `read_write` or `read_only`, got {other}"
                    )));
                }
            };
            let instructions = optional_string(o, "instructions", path)?;
            if let Some(text) = &instructions
                && text.chars().count() > MAX_INSTRUCTIONS_CHARS
            {
                return Err(Error::invalid(format!(
                    "{path}.instructions: must be at most {MAX_INSTRUCTIONS_CHARS} characters"
                )));
            }
            if o.contains_key("mount_path") {
                return Err(Error::invalid(format!(
                    "{path}.mount_path: is output-only for memory stores (derived from the store's name)"
                )));
            }
            Ok(ResourceParam::MemoryStore {
                memory_store_id,
                access,
                instructions,
            })
        }
        other => Err(Error::invalid(format!(
            "{path}.type: unknown resource type `{other}`; expected one of {}",
            RESOURCE_TYPES.map(|t| format!("`{t}`")).join(", ")
        ))),
    }
}

/// Reads the body of `POST /v1/sessions/{id}/resources`, which adds file resources only.
pub fn parse_added_resource(v: &Value) -> Result<ResourceParam, Error> {
    let o = v
        .as_object()
        .ok_or_else(|| Error::invalid("body: must be an object"))?;
    match o.get("type") {
        Some(Value::String(t)) if t == "file" => {
            parse_file_fields(o, "body").map_err(strip_body_prefix)
        }
        Some(Value::String(t)) if RESOURCE_TYPES.contains(&t.as_str()) => {
            Err(Error::invalid(format!(
                "type: only `file` resources can be added to a running session; `{t}` resources are fixed at creation"
            )))
        }
        Some(Value::String(t)) => Err(Error::invalid(format!(
            "type: unknown resource type `{t}`; expected `file`"
        ))),
        _ => Err(Error::invalid("type: is required (`file`)")),
    }
}

fn strip_body_prefix(mut e: Error) -> Error {
    if let Some(rest) = e.message.strip_prefix("body.") {
        e.message = rest.to_string();
    }
    e
}

fn parse_file_fields(o: &Map<String, Value>, path: &str) -> Result<ResourceParam, Error> {
    let file_id = required_string(o, "file_id", path)?;
    let mount_path = match optional_string(o, "mount_path", path)? {
        None => format!("{UPLOADS_DIR}/{file_id}"),
        Some(p) => upload_mount_path(&p, &format!("{path}.mount_path"))?,
    };
    Ok(ResourceParam::File {
        file_id,
        mount_path,
    })
}

/// The effective path of a file mount: files always land under [`UPLOADS_DIR`]
/// (`/data.csv` → `/mnt/session/uploads/data.csv`; semantics §8.2).
pub fn upload_mount_path(raw: &str, path: &str) -> Result<String, Error> {
    let normalized = normalize_mount_path(&format!("/{}", raw.trim_start_matches('/')), path)?;
    if normalized == UPLOADS_DIR || normalized.starts_with(&format!("{UPLOADS_DIR}/")) {
        if normalized == UPLOADS_DIR {
            return Err(Error::invalid(format!(
                "{path}: must name a file under {UPLOADS_DIR}/"
            )));
        }
        return Ok(normalized);
    }
    let joined = format!("{UPLOADS_DIR}{normalized}");
    if joined.len() > MAX_MOUNT_PATH_BYTES {
        return Err(Error::invalid(format!(
            "{path}: must be at most {MAX_MOUNT_PATH_BYTES} bytes"
        )));
    }
    Ok(joined)
}

/// Checks an absolute mount path and returns it without a trailing slash. Relative segments,
/// empty segments and control characters are refused rather than resolved, so the path the
/// caller reads back is the path they sent.
pub fn normalize_mount_path(raw: &str, path: &str) -> Result<String, Error> {
    if !raw.starts_with('/') {
        return Err(Error::invalid(format!(
            "{path}: must be an absolute path, got `{raw}`"
        )));
    }
    if raw.len() > MAX_MOUNT_PATH_BYTES {
        return Err(Error::invalid(format!(
            "{path}: must be at most {MAX_MOUNT_PATH_BYTES} bytes"
        )));
    }
    if raw.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{path}: must not contain control characters"
        )));
    }
    let trimmed = raw.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(Error::invalid(format!(
            "{path}: cannot be the root directory"
        )));
    }
    for segment in trimmed[1..].split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(Error::invalid(format!(
                "{path}: `{raw}` has an empty, `.` or `..` segment; give a plain absolute path"
            )));
        }
    }
    Ok(trimmed.to_string())
}

/// The repository name of `https://github.com/<owner>/<repo>` (semantics §8.1: no `.git`
/// suffix, no other forms).
pub fn github_repo_name(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix(GITHUB_PREFIX)
        .ok_or_else(|| format!("`{url}` must have the form https://github.com/<owner>/<repo>"))?;
    let mut parts = rest.split('/');
    let (owner, repo) = match (parts.next(), parts.next(), parts.next()) {
        (Some(o), Some(r), None) => (o, r),
        _ => {
            return Err(format!(
                "`{url}` must have the form https://github.com/<owner>/<repo>"
            ));
        }
    };
    let owner_ok = !owner.is_empty()
        && owner.len() <= 39
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !owner.starts_with('-');
    if !owner_ok {
        return Err(format!("`{owner}` is not a GitHub owner name"));
    }
    if repo.ends_with(".git") {
        return Err(format!(
            "drop the `.git` suffix: https://github.com/{owner}/{}",
            repo.trim_end_matches(".git")
        ));
    }
    let repo_ok = !repo.is_empty()
        && repo.len() <= 100
        && repo != "."
        && repo != ".."
        && repo
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !repo_ok {
        return Err(format!("`{repo}` is not a GitHub repository name"));
    }
    Ok(repo.to_string())
}

fn parse_checkout(v: &Value, path: &str) -> Result<Checkout, Error> {
    let o = v
        .as_object()
        .ok_or_else(|| Error::invalid(format!("{path}: must be an object, got {}", kind_of(v))))?;
    match o.get("type").and_then(Value::as_str) {
        Some("branch") => {
            let name = required_string(o, "name", path)?;
            if name.len() > 255 || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Error::invalid(format!(
                    "{path}.name: `{name}` is not a branch name"
                )));
            }
            Ok(Checkout::Branch { name })
        }
        Some("commit") => {
            let sha = required_string(o, "sha", path)?;
            if !(sha.len() == 40 || sha.len() == 64) || !sha.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(Error::invalid(format!(
                    "{path}.sha: must be a full commit SHA (40 or 64 hexadecimal digits), got `{sha}`"
                )));
            }
            Ok(Checkout::Commit {
                sha: sha.to_ascii_lowercase(),
            })
        }
        Some(other) => Err(Error::invalid(format!(
            "{path}.type: unknown checkout type `{other}`; expected `branch` or `commit`"
        ))),
        None => Err(Error::invalid(format!(
            "{path}.type: is required (`branch` or `commit`)"
        ))),
    }
}

/// Checks a GitHub authorization token (write-only; sealed at rest).
pub fn check_token(token: &str, path: &str) -> Result<String, Error> {
    if token.trim().is_empty() {
        return Err(Error::invalid(format!("{path}: must be non-empty")));
    }
    if token.len() > MAX_TOKEN_BYTES || token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::invalid(format!(
            "{path}: must be a token of at most {MAX_TOKEN_BYTES} bytes without whitespace"
        )));
    }
    Ok(token.to_string())
}

/// Reads the body of `POST /v1/sessions/{id}/resources/{resource_id}`.
pub fn parse_token_rotation(v: &Value) -> Result<String, Error> {
    match v.get("authorization_token") {
        Some(Value::String(t)) => check_token(t, "authorization_token"),
        None | Some(Value::Null) => Err(Error::invalid("authorization_token: is required")),
        Some(other) => Err(Error::invalid(format!(
            "authorization_token: must be a string, got {}",
            kind_of(other)
        ))),
    }
}

/// The slug a memory store's name mounts under: lowercased ASCII, runs of anything else
/// turned into one `-`, no leading or trailing `-` (semantics §8.3).
pub fn memory_slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
            dash = false;
        } else if !dash && !out.is_empty() {
            out.push('-');
            dash = true;
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        "memory".to_string()
    } else {
        out
    }
}

/// `/mnt/memory/<slug>` for a store called `name`, made unique against `taken` (two stores
/// with the same name get `-2`, `-3`, …).
pub fn memory_mount_path(name: &str, taken: &HashSet<String>) -> String {
    let base = format!("{MEMORY_DIR}/{}", memory_slug(name));
    if !taken.contains(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|p| !taken.contains(p))
        .unwrap_or(base)
}

// ---------------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------------

/// The usage of a session that has not run yet: zero tokens and seconds. Cost and server-tool
/// tracking stay `null` until the runtime reports them.
pub fn empty_usage() -> SessionUsage {
    SessionUsage {
        active_seconds: Some(0.0),
        cache_creation: Some(CacheCreationUsage {
            ephemeral_1h_input_tokens: Some(0),
            ephemeral_5m_input_tokens: Some(0),
        }),
        cache_read_input_tokens: Some(0),
        input_tokens: Some(0),
        list_cost: None,
        output_tokens: Some(0),
        server_tool_use: None,
    }
}

/// One `outcome_evaluations[]` entry per `user.define_outcome` among `events`, `pending`.
pub fn outcome_evaluations(events: &[NewEvent]) -> Vec<OutcomeEvaluation> {
    events
        .iter()
        .filter(|e| e.kind == "user.define_outcome")
        .map(|e| OutcomeEvaluation {
            completed_at: None,
            description: e
                .body
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            explanation: None,
            iteration: 0,
            outcome_id: e
                .body
                .get("outcome_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            result: "pending".to_string(),
        })
        .collect()
}

/// The primary thread of a new session.
pub fn primary_thread(
    thread_id: &str,
    session_id: &str,
    agent: &SessionAgent,
    status: SessionStatus,
    now: i64,
) -> SessionThread {
    let at = time::format_micros(now);
    SessionThread {
        id: thread_id.to_string(),
        kind: "session_thread".to_string(),
        agent: ThreadAgent::Agent(agent.thread_agent()),
        archived_at: None,
        created_at: at.clone(),
        parent_thread_id: None,
        session_id: session_id.to_string(),
        stats: None,
        status,
        updated_at: at,
        usage: None,
        workflow_run_id: None,
    }
}

/// The live parts of a stored session row, which the stored body does not keep current.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRowState {
    pub status: String,
    pub archived_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Completes a stored session body for a response: the row's `status`, `archived_at` and
/// `updated_at`, the current `resources`, and `stats.duration_seconds` (time since creation,
/// frozen at the last update once the session is terminated).
pub fn render_session(body: &mut Value, row: &SessionRowState, resources: Vec<Value>, now: i64) {
    let Some(o) = body.as_object_mut() else {
        return;
    };
    o.insert("status".into(), Value::String(row.status.clone()));
    o.insert(
        "archived_at".into(),
        row.archived_at
            .map_or(Value::Null, |t| Value::String(time::format_micros(t))),
    );
    o.insert(
        "updated_at".into(),
        Value::String(time::format_micros(row.updated_at)),
    );
    o.insert("resources".into(), Value::Array(resources));
    let end = if row.status == SessionStatus::Terminated.as_str() {
        row.updated_at
    } else {
        now.max(row.updated_at)
    };
    let duration = (end - row.created_at).max(0) as f64 / 1_000_000.0;
    let stats = o
        .entry("stats")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(stats) = stats.as_object_mut() {
        stats.insert("duration_seconds".into(), serde_json::json!(duration));
        // Time spent running is reported by the runtime; until then it is zero.
        let active = stats.entry("active_seconds").or_insert(Value::Null);
        if active.is_null() {
            *active = serde_json::json!(0.0);
        }
    }
}

/// Completes a stored thread body: the row's `status`, `archived_at` and `updated_at`.
pub fn render_thread(body: &mut Value, status: &str, archived_at: Option<i64>, updated_at: i64) {
    let Some(o) = body.as_object_mut() else {
        return;
    };
    o.insert("status".into(), Value::String(status.to_string()));
    o.insert(
        "archived_at".into(),
        archived_at.map_or(Value::Null, |t| Value::String(time::format_micros(t))),
    );
    o.insert(
        "updated_at".into(),
        Value::String(time::format_micros(updated_at)),
    );
}

// ---------------------------------------------------------------------------------------------
// Update
// ---------------------------------------------------------------------------------------------

/// `POST /v1/sessions/{id}` body: every field three-state.
#[derive(Debug, Deserialize, Default)]
pub struct UpdateSessionParams {
    #[serde(default)]
    pub agent: Patch<Value>,
    #[serde(default)]
    pub budget: Patch<Value>,
    #[serde(default)]
    pub metadata: Patch<Value>,
    #[serde(default)]
    pub title: Patch<Value>,
    #[serde(default)]
    pub vault_ids: Patch<Value>,
}

/// What an update did: the new session, whether anything changed, and the `session.updated`
/// payload. The payload can be empty for a real change (metadata cleared to `{}` is not
/// carried), so `changed` is tracked on its own.
#[derive(Debug, Clone)]
pub struct Updated {
    pub session: Session,
    pub changes: Map<String, Value>,
    changed: bool,
}

impl Updated {
    /// Whether the update changed the session (and so must be written and announced).
    pub fn changed(&self) -> bool {
        self.changed
    }
}

/// Applies an update to `current` (semantics §4.6). `status` is the session's live status.
///
/// * `vault_ids` is reserved and refused.
/// * `title`: a string replaces, `null` clears. `metadata`: a patch (`null` values delete).
/// * `budget`: an object replaces the budget of a session created with one (none →
///   `budget_create_only`; a removed budget cannot come back), `null` removes it; the new
///   ceiling must exceed the list cost already consumed (`budget_not_raised`); never on a
///   terminated session.
/// * `agent`: only `tools` / `mcp_servers`, replaced whole, while the session is not running
///   (409 `session_not_idle`) and not terminated.
///
/// `session.updated` carries only what changed: `agent` as the full snapshot, `budget` (or
/// `null` when removed), `title`, and `metadata` (the whole bag, only when non-empty).
pub fn apply_update(
    current: &Session,
    status: SessionStatus,
    p: UpdateSessionParams,
) -> Result<Updated, Error> {
    if !p.vault_ids.is_absent() {
        return Err(Error::invalid(
            "vault_ids: changing the vaults of an existing session is not yet supported; create a new session",
        ));
    }
    let terminated = status == SessionStatus::Terminated || current.archived_at.is_some();
    let mut next = current.clone();
    let mut changes = Map::new();

    match p.title {
        Patch::Absent => {}
        Patch::Null => next.title = None,
        Patch::Value(v) => next.title = parse_title(Some(&v))?,
    }
    if next.title != current.title {
        changes.insert(
            "title".into(),
            next.title.clone().map_or(Value::Null, Value::String),
        );
    }

    match p.metadata {
        Patch::Absent | Patch::Null => {}
        Patch::Value(Value::Object(patch)) => {
            metadata::apply_patch(&mut next.metadata, &patch, false)?
        }
        Patch::Value(other) => {
            return Err(Error::invalid(format!(
                "metadata: must be an object of string or null values, got {}",
                kind_of(&other)
            ))
            .with_code("invalid_metadata"));
        }
    }
    if next.metadata != current.metadata && !next.metadata.is_empty() {
        changes.insert(
            "metadata".into(),
            serde_json::to_value(&next.metadata).unwrap_or(Value::Null),
        );
    }

    match p.budget {
        Patch::Absent => {}
        Patch::Null => {
            if current.budget.is_some() && terminated {
                return Err(Error::invalid(
                    "budget: the session is terminated; its budget can no longer change",
                ));
            }
            next.budget = None;
        }
        Patch::Value(v) => {
            let budget = parse_budget(&v, "budget")?;
            if terminated {
                return Err(Error::invalid(
                    "budget: the session is terminated; its budget can no longer change",
                ));
            }
            if current.budget.is_none() {
                return Err(Error::invalid(
                    "budget: a budget can only be set when the session is created (and a removed budget cannot be \
                     added back)",
                )
                .with_code("budget_create_only"));
            }
            let consumed = consumed_list_cost(current).unwrap_or(0);
            let new_amount = parse_amount(&budget.max_list_cost.amount).unwrap_or(0);
            if crate::pricing::cap_pico(new_amount) <= consumed {
                return Err(Error::invalid(format!(
                    "budget.max_list_cost must be greater than the session's consumed list cost \
                     ({} cents so far)",
                    crate::pricing::cents(consumed)
                ))
                .with_code("budget_not_raised"));
            }
            check_budgetable(&current.agent)?;
            next.budget = Some(budget);
        }
    }
    if next.budget != current.budget {
        changes.insert(
            "budget".into(),
            serde_json::to_value(&next.budget).unwrap_or(Value::Null),
        );
    }

    match p.agent {
        Patch::Absent => {}
        Patch::Null => {
            return Err(Error::invalid(
                "agent: must be an object with `tools` and/or `mcp_servers`",
            ));
        }
        Patch::Value(v) => {
            let o = v.as_object().ok_or_else(|| {
                Error::invalid(format!("agent: must be an object, got {}", kind_of(&v)))
            })?;
            if let Some(key) = o.keys().find(|k| *k != "tools" && *k != "mcp_servers") {
                return Err(Error::invalid(format!(
                    "agent.{key}: only `tools` and `mcp_servers` can change after a session is created"
                )));
            }
            let tools = list_patch(o, "tools")?;
            let servers = list_patch(o, "mcp_servers")?;
            if !(tools.is_absent() && servers.is_absent()) {
                if terminated {
                    return Err(Error::invalid(
                        "agent: the session is terminated; its agent can no longer change",
                    ));
                }
                if status.is_active() {
                    return Err(Error::conflict(format!(
                        "agent: session `{}` is {}; interrupt it and wait for `idle` before changing its tools",
                        current.id,
                        status.as_str()
                    ))
                    .with_code("session_not_idle"));
                }
                match tools {
                    Patch::Absent => {}
                    Patch::Null => next.agent.tools.clear(),
                    Patch::Value(items) => {
                        next.agent.tools = parse_tools(&items).map_err(under_agent)?
                    }
                }
                match servers {
                    Patch::Absent => {}
                    Patch::Null => next.agent.mcp_servers.clear(),
                    Patch::Value(items) => {
                        next.agent.mcp_servers = parse_mcp_servers(&items).map_err(under_agent)?
                    }
                }
                check_mcp_references(&next.agent.tools, &next.agent.mcp_servers)
                    .map_err(under_agent)?;
            }
        }
    }
    if next.agent != current.agent {
        changes.insert(
            "agent".into(),
            serde_json::to_value(&next.agent).unwrap_or(Value::Null),
        );
    }
    let changed = next != *current;
    Ok(Updated {
        session: next,
        changes,
        changed,
    })
}

/// The exact list cost (pico-dollars) the session has accrued: its usage priced at its
/// model's list rates plus its runtime. `None` when the model has no list price.
pub fn consumed_list_cost(s: &Session) -> Option<u128> {
    let usage = serde_json::to_value(&s.usage).unwrap_or(Value::Null);
    crate::pricing::table().session_cost(&s.agent.model.id, &usage)
}

/// Whether a session on `model` with `usage` (the API's usage object) has used up `budget`
/// (the API's budget object, or null): the exact cost reached the cap, or the model has no
/// list price the budget could measure (semantics §5.4, §6.7).
pub fn budget_exhausted(model: &str, usage: &Value, budget: &Value) -> bool {
    let Some(cap) = budget
        .pointer("/max_list_cost/amount")
        .and_then(Value::as_str)
        .and_then(|a| parse_amount(a).ok())
    else {
        return false;
    };
    crate::pricing::table()
        .session_cost(model, usage)
        .is_none_or(|c| c >= crate::pricing::cap_pico(cap))
}

// ---------------------------------------------------------------------------------------------
// Lists
// ---------------------------------------------------------------------------------------------

/// Reads a `statuses[]` filter.
pub fn parse_statuses(values: &[String]) -> Result<Vec<SessionStatus>, Error> {
    values
        .iter()
        .map(|v| {
            SessionStatus::parse(v).ok_or_else(|| {
                Error::invalid(format!(
                    "statuses: unknown status `{v}`; expected rescheduling, running, idle or terminated"
                ))
            })
        })
        .collect()
}

/// A position in the session list that can be followed either way. Sessions list pages carry
/// both `next_page` and `prev_page`; a `prev_page` cursor walks backwards from the first item of
/// a page but still returns its page in the list's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    /// `created_at` of the boundary item.
    pub key: i64,
    /// Id of the boundary item (ties on `created_at` break by id).
    pub id: String,
    /// The order of the list the cursor was made for.
    pub desc: bool,
    /// Whether it leads to the items before the boundary (a `prev_page`).
    pub backward: bool,
}

impl ListCursor {
    pub fn encode(&self) -> String {
        let raw = format!(
            "s{}{}|{}|{}",
            if self.desc { 'd' } else { 'a' },
            if self.backward { 'b' } else { 'f' },
            self.key,
            self.id
        );
        format!("page_{}", URL_SAFE_NO_PAD.encode(raw))
    }

    pub fn decode(s: &str) -> Result<Self, Error> {
        let bad = || Error::invalid(format!("invalid page cursor `{s}`"));
        let body = s.strip_prefix("page_").ok_or_else(bad)?;
        let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let mut parts = raw.splitn(3, '|');
        let head = parts.next().ok_or_else(bad)?.as_bytes();
        let (desc, backward) = match head {
            [b's', d, b] => (
                match d {
                    b'd' => true,
                    b'a' => false,
                    _ => return Err(bad()),
                },
                match b {
                    b'b' => true,
                    b'f' => false,
                    _ => return Err(bad()),
                },
            ),
            _ => return Err(bad()),
        };
        let key = parts.next().and_then(|k| k.parse().ok()).ok_or_else(bad)?;
        let id = parts
            .next()
            .filter(|i| !i.is_empty())
            .ok_or_else(bad)?
            .to_string();
        Ok(ListCursor {
            key,
            id,
            desc,
            backward,
        })
    }
}

fn required_string(o: &Map<String, Value>, key: &str, path: &str) -> Result<String, Error> {
    match o.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(Error::invalid(format!("{path}.{key}: must be non-empty"))),
        None | Some(Value::Null) => Err(Error::invalid(format!("{path}.{key}: is required"))),
        Some(other) => Err(Error::invalid(format!(
            "{path}.{key}: must be a string, got {}",
            kind_of(other)
        ))),
    }
}

fn optional_string(o: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, Error> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::invalid(format!(
            "{path}.{key}: must be a string or null, got {}",
            kind_of(other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::CreateAgentParams;
    use serde_json::json;

    fn config(v: Value) -> AgentConfig {
        let p: CreateAgentParams = serde_json::from_value(v).unwrap();
        AgentConfig::create(p).unwrap()
    }

    fn base() -> AgentConfig {
        config(json!({
            "name": "a", "model": {"id": "claude-opus-4-8", "effort": "low"}, "system": "be nice",
            "tools": [{"type": "agent_toolset_20260401"}, {"type": "mcp_toolset", "mcp_server_name": "gh"}],
            "mcp_servers": [{"type": "url", "name": "gh", "url": "https://mcp.example.com"}],
            "skills": [{"type": "anthropic", "skill_id": "xlsx"}]
        }))
    }

    fn session(agent: SessionAgent) -> Session {
        Session {
            id: "sesn_1".into(),
            kind: "session".into(),
            agent,
            archived_at: None,
            budget: None,
            created_at: "t".into(),
            environment_id: "env_1".into(),
            metadata: Metadata::new(),
            outcome_evaluations: vec![],
            resources: vec![],
            stats: Default::default(),
            status: SessionStatus::Idle,
            title: None,
            updated_at: "t".into(),
            usage: empty_usage(),
            vault_ids: vec![],
            deployment_id: None,
        }
    }

    fn update(v: Value) -> UpdateSessionParams {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn agent_selector_forms() {
        let s = AgentSelector::parse(&json!("agent_1")).unwrap();
        assert_eq!(
            (s.id.as_str(), s.version, s.overrides.is_none()),
            ("agent_1", None, true)
        );
        let s =
            AgentSelector::parse(&json!({"type": "agent", "id": "agent_1", "version": 3})).unwrap();
        assert_eq!(s.version, Some(3));
        let s = AgentSelector::parse(
            &json!({"type": "agent_with_overrides", "id": "agent_1", "system": null}),
        )
        .unwrap();
        assert_eq!(s.overrides.unwrap().system, Patch::Null);
        for bad in [
            json!(""),
            json!(null),
            json!(5),
            json!({"id": "agent_1"}),
            json!({"type": "agent"}),
            json!({"type": "agent", "id": "a", "version": 0}),
            json!({"type": "agent", "id": "a", "version": "1"}),
            json!({"type": "agent", "id": "a", "model": "x"}),
            json!({"type": "deployment", "id": "a"}),
            json!({"type": "agent_with_overrides", "id": "a", "tools": {}}),
        ] {
            assert!(AgentSelector::parse(&bad).is_err(), "{bad}");
        }
        let e = AgentSelector::parse(
            &json!({"type": "agent_with_overrides", "id": "a", "model": null}),
        )
        .unwrap_err();
        assert_eq!(e.code, Some("agent_model_required"));
    }

    #[test]
    fn overrides_replace_fields_and_reset_effort() {
        let cfg = base();
        let sel = AgentSelector::parse(&json!({
            "type": "agent_with_overrides", "id": "a",
            "model": {"id": "claude-sonnet-4-6", "effort": "max"}, "system": null
        }))
        .unwrap();
        let out = sel.overrides.unwrap().apply(&cfg).unwrap();
        assert_eq!(out.model.id, "claude-sonnet-4-6");
        assert_eq!(
            out.model.effort,
            Some(Effort {
                level: default_effort("claude-sonnet-4-6")
            })
        );
        assert_eq!(out.system, None);
        assert_eq!(out.tools, cfg.tools);

        // Clearing MCP servers still referenced by a toolset is refused.
        let sel = AgentSelector::parse(
            &json!({"type": "agent_with_overrides", "id": "a", "mcp_servers": []}),
        )
        .unwrap();
        let e = sel.overrides.unwrap().apply(&cfg).unwrap_err();
        assert!(e.message.starts_with("agent."), "{}", e.message);

        // Clearing tools while skills remain is refused; clearing both is fine.
        let sel =
            AgentSelector::parse(&json!({"type": "agent_with_overrides", "id": "a", "tools": []}))
                .unwrap();
        assert!(sel.overrides.unwrap().apply(&cfg).is_err());
        let sel = AgentSelector::parse(&json!({
            "type": "agent_with_overrides", "id": "a", "tools": [], "skills": [], "mcp_servers": []
        }))
        .unwrap();
        let out = sel.overrides.unwrap().apply(&cfg).unwrap();
        assert!(out.tools.is_empty() && out.skills.is_empty() && out.mcp_servers.is_empty());
        assert_eq!(out.model, cfg.model);
    }

    #[test]
    fn session_agent_resolves_the_roster() {
        let mut cfg = config(json!({
            "name": "lead", "model": "claude-opus-4-8",
            "multiagent": {"type": "coordinator", "agents": [
                {"type": "self"}, {"type": "agent", "id": "agent_w", "version": 2}
            ]}
        }));
        let found: HashMap<(String, Option<i64>), crate::agents::ResolvedAgentRef> = [(
            ("agent_w".to_string(), Some(2)),
            crate::agents::ResolvedAgentRef {
                version: 2,
                archived: false,
                has_multiagent: false,
                inference_geo: None,
            },
        )]
        .into_iter()
        .collect();
        cfg.resolve_agent_refs(Some("agent_lead"), &found).unwrap();
        assert_eq!(
            roster_refs(&cfg, "agent_lead", 4),
            vec![("agent_w".to_string(), 2)]
        );
        let worker = config(json!({"name": "w", "model": "gpt-x"}));
        let mut roster = HashMap::new();
        roster.insert(
            ("agent_w".to_string(), 2),
            RosterAgent {
                config: worker,
                archived: false,
            },
        );
        let agent = session_agent("agent_lead", 4, &cfg, &roster).unwrap();
        let v = serde_json::to_value(&agent).unwrap();
        assert_eq!(v["multiagent"]["agents"][0]["id"], "agent_lead");
        assert_eq!(v["multiagent"]["agents"][0]["version"], 4);
        assert_eq!(v["multiagent"]["agents"][1]["name"], "w");
        // The advisor is accepted on agents but not run: a session with one is refused.
        let advised = config(json!({
            "name": "lead", "model": "claude-opus-4-8",
            "multiagent": {"type": "coordinator", "agents": [{"type": "advisor", "model": "claude-opus-4-8"}]}
        }));
        let e = session_agent("agent_lead", 4, &advised, &roster).unwrap_err();
        assert!(e.message.contains("advisor"), "{}", e.message);
        // The worker's model has no list price.
        assert_eq!(
            check_budgetable(&agent).unwrap_err().code,
            Some("model_not_budgetable")
        );

        roster
            .get_mut(&("agent_w".to_string(), 2))
            .unwrap()
            .archived = true;
        assert!(session_agent("agent_lead", 4, &cfg, &roster).is_err());
        assert!(session_agent("agent_lead", 4, &cfg, &HashMap::new()).is_err());
    }

    #[test]
    fn budgets() {
        let b = parse_budget(
            &json!({"type": "limit", "max_list_cost": {"amount": "2500", "currency": "USD"}}),
            "budget",
        )
        .unwrap();
        assert_eq!(b.max_list_cost.amount, "2500");
        for bad in [
            json!({"type": "cap", "max_list_cost": {"amount": "1", "currency": "USD"}}),
            json!({"type": "limit"}),
            json!({"type": "limit", "max_list_cost": {"amount": 2500, "currency": "USD"}}),
            json!({"type": "limit", "max_list_cost": {"amount": "0", "currency": "USD"}}),
            json!({"type": "limit", "max_list_cost": {"amount": "025", "currency": "USD"}}),
            json!({"type": "limit", "max_list_cost": {"amount": "-5", "currency": "USD"}}),
            json!({"type": "limit", "max_list_cost": {"amount": "1.5", "currency": "USD"}}),
            json!({"type": "limit", "max_list_cost": {"amount": "99999999999999999999", "currency": "USD"}}),
            json!({"type": "limit", "max_list_cost": {"amount": "5", "currency": "EUR"}}),
            json!("2500"),
        ] {
            assert!(parse_budget(&bad, "budget").is_err(), "{bad}");
        }
    }

    #[test]
    fn resources_defaults_and_rules() {
        let rs = parse_resources(&[
            json!({"type": "github_repository", "url": "https://github.com/acme/widgets", "authorization_token": "ghp_x",
                   "checkout": {"type": "commit", "sha": "ABCDEF0123456789abcdef0123456789abcdef01"}}),
            json!({"type": "file", "file_id": "file_1"}),
            json!({"type": "file", "file_id": "file_2", "mount_path": "/data.csv"}),
            json!({"type": "file", "file_id": "file_3", "mount_path": "/mnt/session/uploads/x/y.txt"}),
            json!({"type": "memory_store", "memory_store_id": "memstore_1", "access": "read_only", "instructions": "hi"}),
        ])
        .unwrap();
        assert_eq!(
            rs[0],
            ResourceParam::GithubRepository {
                url: "https://github.com/acme/widgets".into(),
                authorization_token: Some("ghp_x".into()),
                checkout: Some(Checkout::Commit {
                    sha: "abcdef0123456789abcdef0123456789abcdef01".into()
                }),
                mount_path: "/workspace/widgets".into(),
            }
        );
        assert_eq!(
            rs[1],
            ResourceParam::File {
                file_id: "file_1".into(),
                mount_path: "/mnt/session/uploads/file_1".into()
            }
        );
        assert_eq!(
            rs[2],
            ResourceParam::File {
                file_id: "file_2".into(),
                mount_path: "/mnt/session/uploads/data.csv".into()
            }
        );
        assert_eq!(
            rs[3],
            ResourceParam::File {
                file_id: "file_3".into(),
                mount_path: "/mnt/session/uploads/x/y.txt".into()
            }
        );
        assert_eq!(
            rs[4],
            ResourceParam::MemoryStore {
                memory_store_id: "memstore_1".into(),
                access: MemoryAccess::ReadOnly,
                instructions: Some("hi".into())
            }
        );

        for bad in [
            json!({"type": "github_repository", "url": "https://github.com/acme/widgets.git"}),
            json!({"type": "github_repository", "url": "git@github.com:acme/widgets"}),
            json!({"type": "github_repository", "url": "https://gitlab.com/acme/widgets"}),
            json!({"type": "github_repository", "url": "https://github.com/acme/widgets/tree/main"}),
            json!({"type": "github_repository", "url": "https://github.com/acme/w", "mount_path": "relative"}),
            json!({"type": "github_repository", "url": "https://github.com/acme/w", "mount_path": "/a/../b"}),
            json!({"type": "github_repository", "url": "https://github.com/acme/w", "checkout": {"type": "commit", "sha": "abc"}}),
            json!({"type": "github_repository", "url": "https://github.com/acme/w", "checkout": {"type": "tag", "name": "v1"}}),
            json!({"type": "github_repository", "url": "https://github.com/acme/w", "authorization_token": ""}),
            json!({"type": "file"}),
            json!({"type": "file", "file_id": "f", "mount_path": "/mnt/session/uploads/"}),
            json!({"type": "memory_store", "memory_store_id": "m", "access": "write"}),
            json!({"type": "memory_store", "memory_store_id": "m", "instructions": "x".repeat(4097)}),
            json!({"type": "memory_store", "memory_store_id": "m", "mount_path": "/x"}),
            json!({"type": "volume"}),
            json!("file_1"),
        ] {
            assert!(
                parse_resources(std::slice::from_ref(&bad)).is_err(),
                "{bad}"
            );
        }
        // Duplicates.
        let f = json!({"type": "file", "file_id": "file_1"});
        assert!(parse_resources(&[f.clone(), f]).is_err());
        let m = json!({"type": "memory_store", "memory_store_id": "memstore_1"});
        assert!(parse_resources(&[m.clone(), m]).is_err());
        let many: Vec<Value> = (0..9)
            .map(|i| json!({"type": "memory_store", "memory_store_id": format!("memstore_{i}")}))
            .collect();
        assert!(parse_resources(&many).is_err());
    }

    #[test]
    fn added_resources_are_files_only() {
        assert_eq!(
            parse_added_resource(&json!({"type": "file", "file_id": "file_1", "mount_path": null}))
                .unwrap(),
            ResourceParam::File {
                file_id: "file_1".into(),
                mount_path: "/mnt/session/uploads/file_1".into()
            }
        );
        let e = parse_added_resource(&json!({"type": "file"})).unwrap_err();
        assert_eq!(e.message, "file_id: is required");
        assert!(
            parse_added_resource(&json!({"type": "memory_store", "memory_store_id": "m"})).is_err()
        );
        assert!(parse_added_resource(&json!({})).is_err());
    }

    #[test]
    fn memory_mount_paths() {
        assert_eq!(memory_slug("User Preferences!"), "user-preferences");
        assert_eq!(memory_slug("--Déjà vu--"), "d-j-vu");
        assert_eq!(memory_slug("日本"), "memory");
        let mut taken = HashSet::new();
        let a = memory_mount_path("Notes", &taken);
        taken.insert(a.clone());
        let b = memory_mount_path("notes", &taken);
        assert_eq!(
            (a.as_str(), b.as_str()),
            ("/mnt/memory/notes", "/mnt/memory/notes-2")
        );
    }

    #[test]
    fn create_parsing() {
        let p: CreateSessionParams = serde_json::from_value(json!({
            "agent": "agent_1", "environment_id": "env_1", "title": "t", "metadata": {"k": "v"},
            "vault_ids": ["vlt_1", "vlt_2", "vlt_1"],
            "initial_events": [
                {"type": "user.message", "content": [{"type": "text", "text": "hi"}]},
                {"type": "user.define_outcome", "description": "ship it", "rubric": {"type": "text", "content": "r"}}
            ]
        }))
        .unwrap();
        let c = CreateSession::parse(p).unwrap();
        assert_eq!(c.vault_ids, vec!["vlt_1", "vlt_2"]);
        assert_eq!(c.initial_status(), SessionStatus::Running);
        let evals = outcome_evaluations(&c.initial_events);
        assert_eq!(evals.len(), 1);
        assert_eq!(
            (
                evals[0].description.as_str(),
                evals[0].result.as_str(),
                evals[0].iteration
            ),
            ("ship it", "pending", 0)
        );
        assert!(evals[0].outcome_id.starts_with("outc_"));

        for bad in [
            json!({"agent": "a"}),
            json!({"agent": "a", "environment_id": 5}),
            json!({"environment_id": "e"}),
            json!({"agent": "a", "environment_id": "e", "title": 5}),
            json!({"agent": "a", "environment_id": "e", "vault_ids": [""]}),
            json!({"agent": "a", "environment_id": "e", "vault_ids": "vlt_1"}),
            json!({"agent": "a", "environment_id": "e", "initial_events": [{"type": "user.interrupt"}]}),
            json!({"agent": "a", "environment_id": "e", "initial_events": {}}),
            json!({"agent": "a", "environment_id": "e", "metadata": {"k": 1}}),
            json!({"agent": "a", "environment_id": "e", "resources": {}}),
        ] {
            let p: CreateSessionParams = serde_json::from_value(bad.clone()).unwrap();
            assert!(CreateSession::parse(p).is_err(), "{bad}");
        }
    }

    #[test]
    fn update_rules() {
        let agent = session_agent("agent_1", 1, &base(), &HashMap::new()).unwrap();
        let mut s = session(agent);

        // No-op.
        let u = apply_update(&s, SessionStatus::Idle, update(json!({}))).unwrap();
        assert!(!u.changed());
        // vault_ids is reserved.
        assert!(apply_update(&s, SessionStatus::Idle, update(json!({"vault_ids": []}))).is_err());

        // Title and metadata.
        let u = apply_update(
            &s,
            SessionStatus::Running,
            update(json!({"title": "x", "metadata": {"a": "1"}})),
        )
        .unwrap();
        assert_eq!(u.changes.get("title"), Some(&json!("x")));
        assert_eq!(u.changes.get("metadata"), Some(&json!({"a": "1"})));
        s = u.session;
        let u = apply_update(
            &s,
            SessionStatus::Idle,
            update(json!({"title": null, "metadata": {"a": null}})),
        )
        .unwrap();
        assert_eq!(u.changes.get("title"), Some(&Value::Null));
        assert!(
            !u.changes.contains_key("metadata"),
            "cleared metadata is not carried"
        );
        // Clearing the last key is still a change, with nothing to carry.
        let only = apply_update(
            &u.session,
            SessionStatus::Idle,
            update(json!({"metadata": {"b": "2"}})),
        )
        .unwrap()
        .session;
        let cleared = apply_update(
            &only,
            SessionStatus::Idle,
            update(json!({"metadata": {"b": null}})),
        )
        .unwrap();
        assert!(cleared.changed() && cleared.changes.is_empty());
        assert!(u.session.metadata.is_empty());
        let u = apply_update(&s, SessionStatus::Idle, update(json!({"title": "x"}))).unwrap();
        assert!(!u.changed());

        // Budget rules.
        let b = json!({"type": "limit", "max_list_cost": {"amount": "500", "currency": "USD"}});
        let e = apply_update(&s, SessionStatus::Idle, update(json!({"budget": b}))).unwrap_err();
        assert_eq!(e.code, Some("budget_create_only"));
        s.budget = Some(parse_budget(&b, "budget").unwrap());
        // $7.00 of input tokens consumed, measured exactly (the reported figure plays no part).
        let rate = crate::pricing::table()
            .rates(&s.agent.model.id)
            .unwrap()
            .input;
        s.usage.input_tokens =
            Some((700 * crate::pricing::PICO_PER_CENT / u128::from(rate)) as i64);
        let e = apply_update(&s, SessionStatus::Idle, update(json!({"budget": b}))).unwrap_err();
        assert_eq!(e.code, Some("budget_not_raised"));
        let at = json!({"type": "limit", "max_list_cost": {"amount": "700", "currency": "USD"}});
        let e = apply_update(&s, SessionStatus::Idle, update(json!({"budget": at}))).unwrap_err();
        assert!(
            e.message
                .contains("greater than the session's consumed list cost"),
            "{}",
            e.message
        );
        let raised =
            json!({"type": "limit", "max_list_cost": {"amount": "900", "currency": "USD"}});
        let u = apply_update(
            &s,
            SessionStatus::Running,
            update(json!({"budget": raised})),
        )
        .unwrap();
        assert_eq!(u.changes["budget"]["max_list_cost"]["amount"], "900");
        let u = apply_update(&s, SessionStatus::Idle, update(json!({"budget": null}))).unwrap();
        assert_eq!(u.changes.get("budget"), Some(&Value::Null));
        assert!(
            apply_update(
                &s,
                SessionStatus::Terminated,
                update(json!({"budget": raised}))
            )
            .is_err()
        );

        // Agent: tools and MCP servers only, not while running.
        let tools = json!({"agent": {"tools": [{"type": "agent_toolset_20260401", "default_config": {"enabled": false}}],
                                     "mcp_servers": []}});
        let e = apply_update(&s, SessionStatus::Running, update(tools.clone())).unwrap_err();
        assert_eq!(
            (e.kind, e.code),
            (crate::ErrorKind::Conflict, Some("session_not_idle"))
        );
        let u = apply_update(&s, SessionStatus::Idle, update(tools)).unwrap();
        assert!(u.session.agent.mcp_servers.is_empty());
        assert_eq!(u.changes["agent"]["type"], "agent");
        assert!(
            apply_update(
                &s,
                SessionStatus::Idle,
                update(json!({"agent": {"model": "x"}}))
            )
            .is_err()
        );
        // Dropping the servers a toolset still uses is refused.
        assert!(
            apply_update(
                &s,
                SessionStatus::Idle,
                update(json!({"agent": {"mcp_servers": []}}))
            )
            .is_err()
        );
        assert!(apply_update(&s, SessionStatus::Idle, update(json!({"agent": null}))).is_err());
    }

    #[test]
    fn list_cursor_round_trip() {
        let c = ListCursor {
            key: 42,
            id: "sesn_x|y".into(),
            desc: true,
            backward: true,
        };
        assert_eq!(ListCursor::decode(&c.encode()).unwrap(), c);
        let c = ListCursor {
            key: -1,
            id: "sesn_x".into(),
            desc: false,
            backward: false,
        };
        assert_eq!(ListCursor::decode(&c.encode()).unwrap(), c);
        assert!(ListCursor::decode("page_").is_err());
        assert!(ListCursor::decode("page_!!").is_err());
        assert!(
            ListCursor::decode(
                &crate::cursor::Cursor {
                    key: 1,
                    id: "x".into(),
                    desc: true
                }
                .encode()
            )
            .is_err()
        );
        assert_eq!(
            parse_statuses(&["idle".into(), "running".into()])
                .unwrap()
                .len(),
            2
        );
        assert!(parse_statuses(&["done".into()]).is_err());
    }

    #[test]
    fn rendering_overlays_live_fields() {
        let mut body = json!({"status": "idle", "stats": {"active_seconds": 1.5, "duration_seconds": null}, "resources": []});
        let row = SessionRowState {
            status: "terminated".into(),
            archived_at: Some(3_000_000),
            created_at: 1_000_000,
            updated_at: 3_000_000,
        };
        render_session(&mut body, &row, vec![json!({"type": "file"})], 10_000_000);
        assert_eq!(body["status"], "terminated");
        assert_eq!(body["stats"]["duration_seconds"], 2.0);
        assert_eq!(body["stats"]["active_seconds"], 1.5);
        assert_eq!(body["resources"][0]["type"], "file");
        assert!(body["archived_at"].is_string());
        let row = SessionRowState {
            status: "idle".into(),
            archived_at: None,
            created_at: 1_000_000,
            updated_at: 3_000_000,
        };
        render_session(&mut body, &row, vec![], 10_000_000);
        assert_eq!(body["stats"]["duration_seconds"], 9.0);
        assert!(body["archived_at"].is_null());
    }
}
