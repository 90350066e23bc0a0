//! `multiagent`: the coordinator roster and `multiagent_20261001`, in their stored form and as requests are read.

use super::*;

/// The stored form of `multiagent`. It differs from the response shape in two ways: `self`
/// entries stay symbolic (they render as this agent at the rendered version), and an agent
/// reference may lack a version until [`AgentConfig::resolve_agent_refs`] pins it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type")]
pub enum MultiagentConfig {
    #[serde(rename = "coordinator")]
    Coordinator { agents: Vec<RosterEntry> },
    #[serde(rename = "multiagent_20261001")]
    Multiagent20261001 {
        advisor: MultiagentAdvisor,
        subagents: MemberConfig,
        workflows: MemberConfig,
    },
}

/// One coordinator roster entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type")]
pub enum RosterEntry {
    #[serde(rename = "agent")]
    Agent { id: String, version: Option<i64> },
    #[serde(rename = "self")]
    SelfAgent,
    #[serde(rename = "advisor")]
    Advisor { model: String },
}

/// `subagents` / `workflows` of `multiagent_20261001`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type")]
pub enum MemberConfig {
    #[serde(rename = "enabled")]
    Enabled {
        inline_agents: InlineAgents,
        predefined_agents: Vec<PredefinedAgent>,
    },
    #[serde(rename = "disabled")]
    Disabled,
}

impl MemberConfig {
    /// Enabled, inline agents allowed, no predefined agents.
    pub fn default_enabled() -> Self {
        MemberConfig::Enabled {
            inline_agents: InlineAgents::Enabled,
            predefined_agents: Vec::new(),
        }
    }
}

/// One `predefined_agents` entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type")]
pub enum PredefinedAgent {
    #[serde(rename = "agent")]
    Agent { id: String, version: Option<i64> },
    #[serde(rename = "self")]
    SelfAgent,
}

impl MultiagentConfig {
    /// The response shape for this agent (`own_id`) at `own_version`.
    pub fn render(&self, own_id: &str, own_version: i64) -> Multiagent {
        // An unresolved reference renders as version 1, the one version every existing agent
        // has, because the response requires an integer. Callers that go through
        // `AgentConfig::resolve_agent_refs` never store one.
        let pin = |version: Option<i64>| version.unwrap_or(1);
        match self {
            MultiagentConfig::Coordinator { agents } => Multiagent::Coordinator {
                agents: agents
                    .iter()
                    .map(|e| match e {
                        RosterEntry::Agent { id, version } => CoordinatorRosterEntry::Agent {
                            id: id.clone(),
                            version: pin(*version),
                        },
                        RosterEntry::SelfAgent => CoordinatorRosterEntry::Agent {
                            id: own_id.to_string(),
                            version: own_version,
                        },
                        RosterEntry::Advisor { model } => CoordinatorRosterEntry::Advisor {
                            model: model.clone(),
                        },
                    })
                    .collect(),
            },
            MultiagentConfig::Multiagent20261001 {
                advisor,
                subagents,
                workflows,
            } => {
                let member = |m: &MemberConfig| match m {
                    MemberConfig::Disabled => MultiagentMember::Disabled,
                    MemberConfig::Enabled {
                        inline_agents,
                        predefined_agents,
                    } => MultiagentMember::Enabled {
                        inline_agents: *inline_agents,
                        predefined_agents: predefined_agents
                            .iter()
                            .map(|p| match p {
                                PredefinedAgent::Agent { id, version } => AgentReference {
                                    id: id.clone(),
                                    version: pin(*version),
                                },
                                PredefinedAgent::SelfAgent => AgentReference {
                                    id: own_id.to_string(),
                                    version: own_version,
                                },
                            })
                            .collect(),
                    },
                };
                Multiagent::Multiagent20261001 {
                    advisor: advisor.clone(),
                    subagents: member(subagents),
                    workflows: member(workflows),
                }
            }
        }
    }
}

/// The agent object of the API for one stored version.
pub fn to_object(
    id: &str,
    version: i64,
    created_at: i64,
    updated_at: i64,
    archived_at: Option<i64>,
    cfg: &AgentConfig,
) -> Agent {
    Agent {
        id: id.to_string(),
        kind: "agent".to_string(),
        archived_at: archived_at.map(crate::time::format_micros),
        created_at: crate::time::format_micros(created_at),
        updated_at: crate::time::format_micros(updated_at),
        version,
        name: cfg.name.clone(),
        description: cfg.description.clone(),
        system: cfg.system.clone(),
        model: cfg.model.clone(),
        tools: cfg.tools.clone(),
        mcp_servers: cfg.mcp_servers.clone(),
        skills: cfg.skills.clone(),
        multiagent: cfg.multiagent.as_ref().map(|m| m.render(id, version)),
        execution_identity: cfg.execution_identity.clone(),
        metadata: cfg.metadata.clone(),
    }
}

/// Reads `multiagent` (not `null`). `previous` is the stored value on update: a
/// `multiagent_20261001` object merges level by level into a stored one of the same type (an
/// absent member keeps the stored member, `null` takes the default, a member of another `type`
/// replaces it with defaults for what it omits, a sent `predefined_agents` replaces the list);
/// every other case is a full replacement with defaults.
pub fn parse_multiagent(
    v: &Value,
    previous: Option<&MultiagentConfig>,
) -> Result<MultiagentConfig, Error> {
    let path = "multiagent";
    let o = as_object(v, path)?;
    match type_tag(o, path)? {
        "coordinator" => parse_coordinator(o, path),
        "multiagent_20261001" => {
            let (p_advisor, p_subagents, p_workflows) = match previous {
                Some(MultiagentConfig::Multiagent20261001 {
                    advisor,
                    subagents,
                    workflows,
                }) => (Some(advisor), Some(subagents), Some(workflows)),
                _ => (None, None, None),
            };
            let advisor = match o.get("advisor") {
                None => p_advisor.cloned().unwrap_or(MultiagentAdvisor::Disabled),
                Some(Value::Null) => MultiagentAdvisor::Disabled,
                Some(v) => parse_advisor(v, &format!("{path}.advisor"))?,
            };
            let member = |key: &str, prev: Option<&MemberConfig>| -> Result<MemberConfig, Error> {
                match o.get(key) {
                    None => Ok(prev.cloned().unwrap_or_else(MemberConfig::default_enabled)),
                    Some(Value::Null) => Ok(MemberConfig::default_enabled()),
                    Some(v) => parse_member(v, &format!("{path}.{key}"), prev),
                }
            };
            Ok(MultiagentConfig::Multiagent20261001 {
                advisor,
                subagents: member("subagents", p_subagents)?,
                workflows: member("workflows", p_workflows)?,
            })
        }
        other => Err(unknown_type(
            path,
            other,
            &["coordinator", "multiagent_20261001"],
        )),
    }
}

pub(super) fn parse_coordinator(
    o: &Map<String, Value>,
    path: &str,
) -> Result<MultiagentConfig, Error> {
    let apath = format!("{path}.agents");
    let list = match present(o, "agents") {
        Some(Value::Array(a)) => a,
        None => return Err(invalid(&apath, "is required")),
        Some(other) => {
            return Err(invalid(
                &apath,
                format!("must be an array, got {}", kind_of(other)),
            ));
        }
    };
    if list.is_empty() || list.len() > MAX_ROSTER {
        return Err(invalid(
            &apath,
            format!("must have 1 to {MAX_ROSTER} entries, got {}", list.len()),
        ));
    }
    let mut refs = RefTracker::default();
    let mut advisor_at: Option<usize> = None;
    let mut agents = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let epath = format!("{apath}[{i}]");
        let entry = match v {
            Value::Object(e) if e.get("type").and_then(Value::as_str) == Some("advisor") => {
                if let Some(first) = advisor_at {
                    return Err(invalid(
                        &epath,
                        format!("only one advisor is allowed (also at {apath}[{first}])"),
                    ));
                }
                advisor_at = Some(i);
                let model = req_string(e, "model", &epath)?;
                RosterEntry::Advisor {
                    model: model_id(model, &format!("{epath}.model"))?,
                }
            }
            _ => match parse_agent_ref(v, &epath, &["agent", "self", "advisor"])? {
                AgentRef::Agent { id, version } => {
                    refs.agent(&id, i, &apath)?;
                    RosterEntry::Agent { id, version }
                }
                AgentRef::SelfAgent => {
                    refs.self_agent(i, &apath)?;
                    RosterEntry::SelfAgent
                }
            },
        };
        agents.push(entry);
    }
    Ok(MultiagentConfig::Coordinator { agents })
}

pub(super) fn parse_advisor(v: &Value, path: &str) -> Result<MultiagentAdvisor, Error> {
    let o = as_object(v, path)?;
    match type_tag(o, path)? {
        "disabled" => Ok(MultiagentAdvisor::Disabled),
        "enabled" => {
            let model = req_string(o, "model", path)?;
            Ok(MultiagentAdvisor::Enabled {
                model: model_id(model, &format!("{path}.model"))?,
            })
        }
        other => Err(unknown_type(path, other, &["enabled", "disabled"])),
    }
}

pub(super) fn parse_member(
    v: &Value,
    path: &str,
    previous: Option<&MemberConfig>,
) -> Result<MemberConfig, Error> {
    let o = as_object(v, path)?;
    match type_tag(o, path)? {
        "disabled" => Ok(MemberConfig::Disabled),
        "enabled" => {
            let prev = match previous {
                Some(MemberConfig::Enabled {
                    inline_agents,
                    predefined_agents,
                }) => Some((*inline_agents, predefined_agents)),
                _ => None,
            };
            let inline_agents = match o.get("inline_agents") {
                None => prev.map_or(InlineAgents::Enabled, |p| p.0),
                Some(Value::Null) => InlineAgents::Enabled,
                Some(v) => {
                    let ipath = format!("{path}.inline_agents");
                    let io = as_object(v, &ipath)?;
                    match type_tag(io, &ipath)? {
                        "enabled" => InlineAgents::Enabled,
                        "disabled" => InlineAgents::Disabled,
                        other => return Err(unknown_type(&ipath, other, &["enabled", "disabled"])),
                    }
                }
            };
            let ppath = format!("{path}.predefined_agents");
            let predefined_agents = match o.get("predefined_agents") {
                None => prev.map(|p| p.1.clone()).unwrap_or_default(),
                Some(Value::Null) => Vec::new(),
                Some(Value::Array(list)) => {
                    if list.len() > MAX_ROSTER {
                        return Err(invalid(
                            &ppath,
                            format!(
                                "at most {MAX_ROSTER} agents are allowed, got {}",
                                list.len()
                            ),
                        ));
                    }
                    let mut refs = RefTracker::default();
                    let mut out = Vec::with_capacity(list.len());
                    for (i, v) in list.iter().enumerate() {
                        match parse_agent_ref(v, &format!("{ppath}[{i}]"), &["agent", "self"])? {
                            AgentRef::Agent { id, version } => {
                                refs.agent(&id, i, &ppath)?;
                                out.push(PredefinedAgent::Agent { id, version });
                            }
                            AgentRef::SelfAgent => {
                                refs.self_agent(i, &ppath)?;
                                out.push(PredefinedAgent::SelfAgent);
                            }
                        }
                    }
                    out
                }
                Some(other) => {
                    return Err(invalid(
                        &ppath,
                        format!("must be an array, got {}", kind_of(other)),
                    ));
                }
            };
            if inline_agents == InlineAgents::Disabled && predefined_agents.is_empty() {
                return Err(invalid(
                    path,
                    "when inline_agents is disabled, predefined_agents must name at least one agent",
                ));
            }
            Ok(MemberConfig::Enabled {
                inline_agents,
                predefined_agents,
            })
        }
        other => Err(unknown_type(path, other, &["enabled", "disabled"])),
    }
}

pub(super) enum AgentRef {
    Agent { id: String, version: Option<i64> },
    SelfAgent,
}

/// An agent id string, `{"type":"agent","id","version"?}` or `{"type":"self"}`. `types` are the
/// `type` literals the surrounding list accepts (for the error message).
pub(super) fn parse_agent_ref(v: &Value, path: &str, types: &[&str]) -> Result<AgentRef, Error> {
    match v {
        Value::String(id) => Ok(AgentRef::Agent {
            id: agent_id(id, path)?,
            version: None,
        }),
        Value::Object(o) => match type_tag(o, path)? {
            "self" => Ok(AgentRef::SelfAgent),
            "agent" => {
                let id = agent_id(req_string(o, "id", path)?, &format!("{path}.id"))?;
                let version = match present(o, "version") {
                    None => None,
                    Some(v) => match v.as_i64() {
                        Some(n) if n >= 1 => Some(n),
                        _ => {
                            return Err(invalid(
                                &format!("{path}.version"),
                                "must be an integer of at least 1",
                            ));
                        }
                    },
                };
                Ok(AgentRef::Agent { id, version })
            }
            other => Err(unknown_type(path, other, types)),
        },
        other => Err(invalid(
            path,
            format!(
                "must be an agent id string or an object with `type`, got {}",
                kind_of(other)
            ),
        )),
    }
}

pub(super) fn agent_id(id: &str, path: &str) -> Result<String, Error> {
    if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(path, "must be a non-empty agent id"));
    }
    Ok(id.to_string())
}

/// Distinctness inside one roster: each agent once, at most one `self`.
#[derive(Default)]
pub(super) struct RefTracker {
    ids: HashMap<String, usize>,
    self_at: Option<usize>,
}

impl RefTracker {
    fn agent(&mut self, id: &str, i: usize, list: &str) -> Result<(), Error> {
        match self.ids.insert(id.to_string(), i) {
            Some(first) => Err(invalid(
                &format!("{list}[{i}]"),
                format!("agent `{id}` is already listed at {list}[{first}]"),
            )),
            None => Ok(()),
        }
    }

    fn self_agent(&mut self, i: usize, list: &str) -> Result<(), Error> {
        match self.self_at.replace(i) {
            Some(first) => Err(invalid(
                &format!("{list}[{i}]"),
                format!("`self` may appear once (also at {list}[{first}])"),
            )),
            None => Ok(()),
        }
    }
}
