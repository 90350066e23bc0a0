//! `tools[]`: the built-in toolset with its per-tool configs, MCP toolsets, custom tools, and the domain rules of `web_fetch`/`web_search`.

use super::*;

/// Reads `tools[]`: each entry resolved, plus the rules across entries (one built-in toolset,
/// one toolset per MCP server, unique custom tool names that do not shadow built-in tools,
/// `url_sources` naming existing custom tools, at most [`MAX_TOOLS`] tools). References to
/// `mcp_servers` are checked by [`check_mcp_references`].
pub fn parse_tools(values: &[Value]) -> Result<Vec<AgentTool>, Error> {
    let tools = values
        .iter()
        .enumerate()
        .map(|(i, v)| parse_tool(v, &format!("tools[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;

    let count: usize = tools.iter().map(tool_count).sum();
    if count > MAX_TOOLS {
        return Err(invalid(
            "tools",
            format!("at most {MAX_TOOLS} tools are allowed across all toolsets, got {count}"),
        ));
    }

    let mut toolset_at: Option<usize> = None;
    let mut servers: HashMap<&str, usize> = HashMap::new();
    let mut custom: HashMap<&str, usize> = HashMap::new();
    for (i, tool) in tools.iter().enumerate() {
        match tool {
            AgentTool::AgentToolset20260401(_) => {
                if let Some(first) = toolset_at {
                    return Err(invalid(
                        &format!("tools[{i}]"),
                        format!(
                            "agent_toolset_20260401 is already configured at tools[{first}]; merge the two entries"
                        ),
                    ));
                }
                toolset_at = Some(i);
            }
            AgentTool::McpToolset(t) => {
                if let Some(first) = servers.insert(&t.mcp_server_name, i) {
                    return Err(invalid(
                        &format!("tools[{i}].mcp_server_name"),
                        format!(
                            "MCP server `{}` already has an mcp_toolset at tools[{first}]",
                            t.mcp_server_name
                        ),
                    ));
                }
            }
            AgentTool::Custom(t) => {
                if let Some(first) = custom.insert(&t.name, i) {
                    return Err(invalid(
                        &format!("tools[{i}].name"),
                        format!("duplicate tool name `{}` (also at tools[{first}])", t.name),
                    ));
                }
            }
        }
    }
    if let Some(toolset) = toolset_at {
        for (name, i) in &custom {
            if BuiltinTool::parse(name).is_some() {
                return Err(invalid(
                    &format!("tools[{i}].name"),
                    format!(
                        "custom tool `{name}` has the name of a built-in tool of the \
                         agent_toolset_20260401 at tools[{toolset}]; choose another name"
                    ),
                ));
            }
        }
    }

    // url_sources.client_tool_results may only name custom tools of this same array.
    for (i, tool) in tools.iter().enumerate() {
        let AgentTool::AgentToolset20260401(set) = tool else {
            continue;
        };
        for (j, config) in set.configs.iter().enumerate() {
            let AgentToolConfig::WebFetch(wf) = config else {
                continue;
            };
            let Some(filter) = wf
                .url_sources
                .as_ref()
                .and_then(|s| s.client_tool_results.as_ref())
            else {
                continue;
            };
            let (UrlSourceToolFilter::Only { tools: refs }
            | UrlSourceToolFilter::Except { tools: refs }) = filter
            else {
                continue;
            };
            for (k, r) in refs.iter().enumerate() {
                if !custom.contains_key(r.name.as_str()) {
                    return Err(invalid(
                        &format!(
                            "tools[{i}].configs[{j}].url_sources.client_tool_results.tools[{k}].name"
                        ),
                        format!("`{}` is not a custom tool in tools", r.name),
                    ));
                }
            }
        }
    }
    Ok(tools)
}

/// How many tools an entry contributes to the [`MAX_TOOLS`] limit: one per custom tool, the
/// eight built-in tools for the toolset, and for an MCP toolset the tools it configures (at
/// least one; the server's full list is only known when a session connects).
pub(super) fn tool_count(tool: &AgentTool) -> usize {
    match tool {
        AgentTool::AgentToolset20260401(_) => BuiltinTool::ALL.len(),
        AgentTool::McpToolset(t) => t.configs.len().max(1),
        AgentTool::Custom(_) => 1,
    }
}

pub(super) fn parse_tool(v: &Value, path: &str) -> Result<AgentTool, Error> {
    let o = as_object(v, path)?;
    match type_tag(o, path)? {
        "agent_toolset_20260401" => {
            parse_agent_toolset(o, path).map(AgentTool::AgentToolset20260401)
        }
        "mcp_toolset" => parse_mcp_toolset(o, path).map(AgentTool::McpToolset),
        "custom" => parse_custom_tool(o, path).map(AgentTool::Custom),
        other => Err(unknown_type(path, other, &TOOL_TYPES)),
    }
}

/// `default_config` of a toolset; `policy` is the toolset kind's default (semantics §9.4:
/// `always_allow` for the built-in toolset, `always_ask` for MCP toolsets).
pub(super) fn parse_default_config(
    o: &Map<String, Value>,
    path: &str,
    policy: PermissionPolicy,
) -> Result<ToolsetDefaultConfig, Error> {
    let mut out = ToolsetDefaultConfig {
        enabled: true,
        permission_policy: policy,
    };
    if let Some(v) = present(o, "default_config") {
        let path = format!("{path}.default_config");
        let d = as_object(v, &path)?;
        if let Some(enabled) = opt_bool(d, "enabled", &path)? {
            out.enabled = enabled;
        }
        if let Some(p) = opt_policy(d, &path)? {
            out.permission_policy = p;
        }
    }
    Ok(out)
}

pub(super) fn opt_policy(
    o: &Map<String, Value>,
    path: &str,
) -> Result<Option<PermissionPolicy>, Error> {
    let Some(v) = present(o, "permission_policy") else {
        return Ok(None);
    };
    let path = format!("{path}.permission_policy");
    let p = as_object(v, &path)?;
    match type_tag(p, &path)? {
        "always_allow" => Ok(Some(PermissionPolicy::AlwaysAllow)),
        "always_ask" => Ok(Some(PermissionPolicy::AlwaysAsk)),
        "auto" => Ok(Some(PermissionPolicy::Auto)),
        other => Err(unknown_type(
            &path,
            other,
            &["always_allow", "always_ask", "auto"],
        )),
    }
}

/// `configs` of a toolset: absent or `null` means none.
pub(super) fn configs_of<'a>(o: &'a Map<String, Value>, path: &str) -> Result<&'a [Value], Error> {
    match present(o, "configs") {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(invalid(
            &format!("{path}.configs"),
            format!("must be an array, got {}", kind_of(other)),
        )),
    }
}

pub(super) fn parse_agent_toolset(
    o: &Map<String, Value>,
    path: &str,
) -> Result<AgentToolset, Error> {
    let default_config = parse_default_config(o, path, PermissionPolicy::AlwaysAllow)?;
    let mut seen: HashMap<BuiltinTool, usize> = HashMap::new();
    let mut configs = Vec::new();
    for (j, v) in configs_of(o, path)?.iter().enumerate() {
        let cpath = format!("{path}.configs[{j}]");
        let config = parse_agent_tool_config(v, &cpath, &default_config)?;
        if let Some(first) = seen.insert(config.tool(), j) {
            return Err(invalid(
                &format!("{cpath}.name"),
                format!(
                    "`{}` is already configured at {path}.configs[{first}]",
                    config.tool().as_str()
                ),
            ));
        }
        configs.push(config);
    }
    Ok(AgentToolset {
        configs,
        default_config,
    })
}

pub(super) fn parse_agent_tool_config(
    v: &Value,
    path: &str,
    defaults: &ToolsetDefaultConfig,
) -> Result<AgentToolConfig, Error> {
    let c = as_object(v, path)?;
    let name = req_string(c, "name", path)?;
    let tool = BuiltinTool::parse(name).ok_or_else(|| {
        let names: Vec<&str> = BuiltinTool::ALL.iter().map(|t| t.as_str()).collect();
        invalid(
            &format!("{path}.name"),
            format!("unknown tool `{name}`; expected {}", one_of(&names)),
        )
    })?;
    match present(c, "type") {
        None => {}
        Some(Value::String(t)) if t == name => {}
        Some(Value::String(t)) => {
            return Err(invalid(
                &format!("{path}.type"),
                format!("must equal the tool name `{name}`, got `{t}`"),
            ));
        }
        Some(other) => {
            return Err(invalid(
                &format!("{path}.type"),
                format!("must be a string, got {}", kind_of(other)),
            ));
        }
    }

    // Settings of the web tools are refused elsewhere rather than silently ignored.
    let only_for: [(&str, &[BuiltinTool]); 4] = [
        (
            "allowed_domains",
            &[BuiltinTool::WebFetch, BuiltinTool::WebSearch],
        ),
        (
            "blocked_domains",
            &[BuiltinTool::WebFetch, BuiltinTool::WebSearch],
        ),
        ("max_content_tokens", &[BuiltinTool::WebFetch]),
        ("url_sources", &[BuiltinTool::WebFetch]),
    ];
    for (key, tools) in only_for {
        if present(c, key).is_some() && !tools.contains(&tool) {
            let names: Vec<&str> = tools.iter().map(|t| t.as_str()).collect();
            return Err(invalid(
                &format!("{path}.{key}"),
                format!("is only valid for {}", names.join(" and ")),
            ));
        }
    }
    if present(c, "user_location").is_some() && tool != BuiltinTool::WebSearch {
        return Err(invalid(
            &format!("{path}.user_location"),
            "is only valid for web_search",
        ));
    }

    let enabled = opt_bool(c, "enabled", path)?.unwrap_or(defaults.enabled);
    let permission_policy = opt_policy(c, path)?.unwrap_or(defaults.permission_policy);
    let basic = || BasicToolConfig {
        name: name.to_string(),
        enabled,
        permission_policy,
    };
    Ok(match tool {
        BuiltinTool::Bash => AgentToolConfig::Bash(basic()),
        BuiltinTool::Edit => AgentToolConfig::Edit(basic()),
        BuiltinTool::Read => AgentToolConfig::Read(basic()),
        BuiltinTool::Write => AgentToolConfig::Write(basic()),
        BuiltinTool::Glob => AgentToolConfig::Glob(basic()),
        BuiltinTool::Grep => AgentToolConfig::Grep(basic()),
        BuiltinTool::WebFetch => {
            let (allowed_domains, blocked_domains) = parse_domain_lists(c, path, false)?;
            let max_content_tokens = match present(c, "max_content_tokens") {
                None => None,
                Some(v) => match v.as_i64() {
                    Some(n) if n >= 1 => Some(n),
                    _ => {
                        return Err(invalid(
                            &format!("{path}.max_content_tokens"),
                            "must be a positive integer",
                        ));
                    }
                },
            };
            let url_sources = match present(c, "url_sources") {
                None => None,
                Some(v) => Some(parse_url_sources(v, &format!("{path}.url_sources"))?),
            };
            AgentToolConfig::WebFetch(WebFetchToolConfig {
                name: name.to_string(),
                enabled,
                permission_policy,
                url_sources,
                allowed_domains,
                blocked_domains,
                max_content_tokens,
            })
        }
        BuiltinTool::WebSearch => {
            let (allowed_domains, blocked_domains) = parse_domain_lists(c, path, true)?;
            let user_location = match present(c, "user_location") {
                None => None,
                Some(v) => Some(parse_user_location(v, &format!("{path}.user_location"))?),
            };
            AgentToolConfig::WebSearch(WebSearchToolConfig {
                name: name.to_string(),
                enabled,
                permission_policy,
                allowed_domains,
                blocked_domains,
                user_location,
            })
        }
    })
}

/// `(allowed_domains, blocked_domains)`, each unset or a non-empty list.
type DomainLists = (Option<Vec<String>>, Option<Vec<String>>);

/// `allowed_domains` / `blocked_domains` of a web tool (semantics §9.3): mutually exclusive,
/// 1 to [`MAX_DOMAINS`] entries each, every entry a plain public hostname (web_search entries
/// may add a path).
pub(super) fn parse_domain_lists(
    c: &Map<String, Value>,
    path: &str,
    allow_path: bool,
) -> Result<DomainLists, Error> {
    let allowed = parse_domain_list(c, "allowed_domains", path, allow_path)?;
    let blocked = parse_domain_list(c, "blocked_domains", path, allow_path)?;
    if allowed.is_some() && blocked.is_some() {
        return Err(invalid(
            &format!("{path}.blocked_domains"),
            "cannot be combined with allowed_domains; send one of the two",
        ));
    }
    Ok((allowed, blocked))
}

pub(super) fn parse_domain_list(
    c: &Map<String, Value>,
    key: &str,
    path: &str,
    allow_path: bool,
) -> Result<Option<Vec<String>>, Error> {
    let path = format!("{path}.{key}");
    let list = match present(c, key) {
        None => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(invalid(
                &path,
                format!("must be an array of domains, got {}", kind_of(other)),
            ));
        }
    };
    if list.is_empty() {
        return Err(invalid(
            &path,
            "must not be empty; omit the field for no restriction",
        ));
    }
    if list.len() > MAX_DOMAINS {
        return Err(invalid(
            &path,
            format!(
                "at most {MAX_DOMAINS} domains are allowed, got {}",
                list.len()
            ),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, d)| {
            let dpath = format!("{path}[{i}]");
            match d {
                Value::String(s) => validate_domain(s, allow_path, &dpath).map(|()| s.clone()),
                other => Err(invalid(
                    &dpath,
                    format!("must be a string, got {}", kind_of(other)),
                )),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Multi-label public suffixes under which registrations are made by third parties. The full
/// Public Suffix List is large and changes; this covers the suffixes people most often paste
/// by mistake, and single-label suffixes (`com`, `uk`) are refused by the label-count rule.
pub(super) const PUBLIC_SUFFIXES: &[&str] = &[
    "co.uk",
    "org.uk",
    "ac.uk",
    "gov.uk",
    "me.uk",
    "ltd.uk",
    "plc.uk",
    "net.uk",
    "com.au",
    "net.au",
    "org.au",
    "edu.au",
    "gov.au",
    "co.nz",
    "org.nz",
    "co.jp",
    "ne.jp",
    "or.jp",
    "ac.jp",
    "co.kr",
    "or.kr",
    "com.br",
    "net.br",
    "org.br",
    "com.cn",
    "net.cn",
    "org.cn",
    "com.hk",
    "com.tw",
    "com.sg",
    "com.my",
    "co.in",
    "net.in",
    "org.in",
    "co.za",
    "com.mx",
    "com.ar",
    "com.tr",
    "co.il",
    "com.ua",
    "github.io",
    "gitlab.io",
    "herokuapp.com",
    "vercel.app",
    "netlify.app",
    "pages.dev",
    "workers.dev",
    "appspot.com",
    "web.app",
    "firebaseapp.com",
    "blogspot.com",
    "cloudfront.net",
    "azurewebsites.net",
    "s3.amazonaws.com",
    "fly.dev",
    "onrender.com",
];

/// Reserved or private top-level names that never reach the public web.
pub(super) const PRIVATE_TLDS: [&str; 5] =
    ["local", "localhost", "internal", "localdomain", "invalid"];

/// A web tool domain entry (semantics §9.3): plain ASCII hostname (punycode for IDNs), no
/// scheme, port, wildcard or IP address, at least two labels, not a public suffix and not a
/// private name; one trailing `/` is ignored; a path is allowed only when `allow_path`.
pub fn validate_domain(raw: &str, allow_path: bool, path: &str) -> Result<(), Error> {
    let fail = |why: &str| invalid(path, format!("`{raw}` is not a valid domain: {why}"));
    if raw.is_empty() || raw.len() > MAX_DOMAIN_CHARS {
        return Err(fail(&format!("must be 1 to {MAX_DOMAIN_CHARS} characters")));
    }
    if !raw.is_ascii() {
        return Err(fail(
            "only ASCII is allowed; write internationalized names in punycode (xn--…)",
        ));
    }
    if raw.contains("://") {
        return Err(fail(
            "give a hostname without a scheme, e.g. `docs.example.com`",
        ));
    }
    if raw
        .chars()
        .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
    {
        return Err(fail("must not contain whitespace"));
    }
    let trimmed = raw.strip_suffix('/').unwrap_or(raw);
    let (host, rest) = match trimmed.split_once('/') {
        Some((h, r)) => (h, Some(r)),
        None => (trimmed, None),
    };
    if host.contains('*') {
        return Err(fail(
            "wildcards are not allowed; a domain already covers its subdomains",
        ));
    }
    if host.contains(':') || host.starts_with('[') {
        return Err(fail("ports and IP addresses are not allowed"));
    }
    if let Some(rest) = rest {
        if !allow_path {
            return Err(fail("must be a plain hostname without a path"));
        }
        if rest.is_empty() || rest.contains(['?', '#', '*']) || rest.contains("//") {
            return Err(fail(
                "the path must be a plain path without query, fragment or wildcard",
            ));
        }
    }
    let host = host.to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err(fail("empty label (leading, trailing or double dot)"));
        }
        if label.len() > 63 {
            return Err(fail("labels must be at most 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(fail("labels may contain only letters, digits and hyphens"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(fail("labels must not start or end with a hyphen"));
        }
    }
    let tld = labels.last().copied().unwrap_or_default();
    if PRIVATE_TLDS.contains(&tld) {
        return Err(fail("local and reserved names are not allowed"));
    }
    if labels.len() < 2 {
        return Err(fail("single-label names are not allowed"));
    }
    if tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err(fail("IP addresses are not allowed"));
    }
    if PUBLIC_SUFFIXES.contains(&host.as_str()) {
        return Err(fail(
            "a public suffix is not allowed; name a registered domain under it",
        ));
    }
    Ok(())
}

/// `url_sources` of web_fetch: every key in object form; `"all"`/`"none"` shorthands accepted.
pub(super) fn parse_url_sources(v: &Value, path: &str) -> Result<WebFetchUrlSources, Error> {
    let o = as_object(v, path)?;
    let filter =
        |key: &str, allowed: Option<&[&str]>| -> Result<Option<UrlSourceToolFilter>, Error> {
            match present(o, key) {
                None => Ok(None),
                Some(v) => parse_tool_filter(v, &format!("{path}.{key}"), allowed).map(Some),
            }
        };
    let client_tool_results = filter("client_tool_results", None)?;
    let server_tool_results = filter("server_tool_results", Some(&["web_search", "web_fetch"]))?;
    let user_input = match present(o, "user_input") {
        None => None,
        Some(v) => {
            let upath = format!("{path}.user_input");
            let (tag, tag_path) = shorthand_or_tag(v, &upath)?;
            Some(match tag {
                "all" => UrlSourceUserInput::All,
                "none" => UrlSourceUserInput::None,
                other => return Err(unknown_literal(&tag_path, other, &["all", "none"])),
            })
        }
    };
    if matches!(client_tool_results, Some(UrlSourceToolFilter::None))
        && matches!(server_tool_results, Some(UrlSourceToolFilter::None))
        && matches!(user_input, Some(UrlSourceUserInput::None))
    {
        return Err(invalid(
            path,
            "setting every source to `none` leaves web_fetch nothing to fetch; disable the tool instead",
        ));
    }
    Ok(WebFetchUrlSources {
        client_tool_results,
        server_tool_results,
        user_input,
    })
}

/// A bare `"all"`/`"none"` string, or an object's `type` (with the path to report).
pub(super) fn shorthand_or_tag<'a>(v: &'a Value, path: &str) -> Result<(&'a str, String), Error> {
    match v {
        Value::String(s) => Ok((s.as_str(), path.to_string())),
        Value::Object(o) => Ok((type_tag(o, path)?, format!("{path}.type"))),
        other => Err(invalid(
            path,
            format!("must be a string or an object, got {}", kind_of(other)),
        )),
    }
}

pub(super) fn parse_tool_filter(
    v: &Value,
    path: &str,
    allowed_names: Option<&[&str]>,
) -> Result<UrlSourceToolFilter, Error> {
    let (tag, tag_path) = shorthand_or_tag(v, path)?;
    match tag {
        "all" => Ok(UrlSourceToolFilter::All),
        "none" => Ok(UrlSourceToolFilter::None),
        "only" | "except" => {
            let Value::Object(o) = v else {
                return Err(invalid(
                    path,
                    format!("`{tag}` needs the object form with a `tools` list"),
                ));
            };
            let tpath = format!("{path}.tools");
            let list = match present(o, "tools") {
                Some(Value::Array(a)) => a,
                None => return Err(invalid(&tpath, "is required")),
                Some(other) => {
                    return Err(invalid(
                        &tpath,
                        format!("must be an array, got {}", kind_of(other)),
                    ));
                }
            };
            if list.is_empty() || list.len() > MAX_URL_SOURCE_TOOLS {
                let hint = if tag == "only" {
                    "use `none` to allow no tool"
                } else {
                    "use `all` to leave none out"
                };
                return Err(invalid(
                    &tpath,
                    format!("must have 1 to {MAX_URL_SOURCE_TOOLS} entries; {hint}"),
                ));
            }
            let mut seen = HashSet::new();
            let mut tools = Vec::with_capacity(list.len());
            for (k, r) in list.iter().enumerate() {
                let rpath = format!("{tpath}[{k}]");
                let ro = as_object(r, &rpath)?;
                match type_tag(ro, &rpath)? {
                    "tool_reference" => {}
                    other => return Err(unknown_type(&rpath, other, &["tool_reference"])),
                }
                let name = req_string(ro, "name", &rpath)?;
                if name.is_empty() {
                    return Err(invalid(&format!("{rpath}.name"), "must be non-empty"));
                }
                if let Some(allowed) = allowed_names
                    && !allowed.contains(&name)
                {
                    return Err(invalid(
                        &format!("{rpath}.name"),
                        format!("unknown tool `{name}`; expected {}", one_of(allowed)),
                    ));
                }
                if !seen.insert(name) {
                    return Err(invalid(
                        &format!("{rpath}.name"),
                        format!("`{name}` is listed twice"),
                    ));
                }
                tools.push(ToolReference {
                    name: name.to_string(),
                });
            }
            Ok(if tag == "only" {
                UrlSourceToolFilter::Only { tools }
            } else {
                UrlSourceToolFilter::Except { tools }
            })
        }
        other => Err(unknown_literal(
            &tag_path,
            other,
            &["all", "none", "only", "except"],
        )),
    }
}

pub(super) fn parse_user_location(v: &Value, path: &str) -> Result<UserLocation, Error> {
    let o = as_object(v, path)?;
    match type_tag(o, path)? {
        "approximate" => {}
        other => return Err(unknown_type(path, other, &["approximate"])),
    }
    let country = opt_string(o, "country", path)?;
    if let Some(c) = &country
        && (c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()))
    {
        return Err(invalid(
            &format!("{path}.country"),
            format!("`{c}` must be a two-letter ISO 3166-1 country code in upper case, e.g. `US`"),
        ));
    }
    Ok(UserLocation {
        city: opt_string(o, "city", path)?,
        country,
        region: opt_string(o, "region", path)?,
        timezone: opt_string(o, "timezone", path)?,
    })
}

pub(super) fn parse_mcp_toolset(o: &Map<String, Value>, path: &str) -> Result<McpToolset, Error> {
    let server = req_string(o, "mcp_server_name", path)?;
    let n = server.chars().count();
    if n == 0 || n > MAX_MCP_SERVER_NAME_CHARS {
        return Err(invalid(
            &format!("{path}.mcp_server_name"),
            format!("must be 1 to {MAX_MCP_SERVER_NAME_CHARS} characters"),
        ));
    }
    let default_config = parse_default_config(o, path, PermissionPolicy::AlwaysAsk)?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut configs = Vec::new();
    for (j, v) in configs_of(o, path)?.iter().enumerate() {
        let cpath = format!("{path}.configs[{j}]");
        let c = as_object(v, &cpath)?;
        let name = req_string(c, "name", &cpath)?;
        let n = name.chars().count();
        if n == 0 || n > MAX_TOOL_NAME_CHARS {
            return Err(invalid(
                &format!("{cpath}.name"),
                format!("must be 1 to {MAX_TOOL_NAME_CHARS} characters"),
            ));
        }
        if let Some(first) = seen.insert(name.to_string(), j) {
            return Err(invalid(
                &format!("{cpath}.name"),
                format!("`{name}` is already configured at {path}.configs[{first}]"),
            ));
        }
        configs.push(McpToolConfig {
            name: name.to_string(),
            enabled: opt_bool(c, "enabled", &cpath)?.unwrap_or(default_config.enabled),
            permission_policy: opt_policy(c, &cpath)?.unwrap_or(default_config.permission_policy),
        });
    }
    Ok(McpToolset {
        mcp_server_name: server.to_string(),
        configs,
        default_config,
    })
}

pub(super) fn parse_custom_tool(o: &Map<String, Value>, path: &str) -> Result<CustomTool, Error> {
    let name = req_string(o, "name", path)?;
    validate_custom_tool_name(name, &format!("{path}.name"))?;
    let description = req_string(o, "description", path)?.to_string();
    let spath = format!("{path}.input_schema");
    let schema = match present(o, "input_schema") {
        Some(v) => as_object(v, &spath)?,
        None => return Err(invalid(&spath, "is required")),
    };
    match schema.get("type") {
        Some(Value::String(t)) if t == "object" => {}
        None | Some(Value::Null) => {
            return Err(invalid(
                &format!("{spath}.type"),
                "is required and must be `object`",
            ));
        }
        Some(other) => {
            return Err(invalid(
                &format!("{spath}.type"),
                format!("must be `object`, got {other}"),
            ));
        }
    }
    let properties = match present(schema, "properties") {
        None => None,
        Some(Value::Object(p)) => {
            for (k, v) in p {
                if !(v.is_object() || v.is_boolean()) {
                    return Err(invalid(
                        &format!("{spath}.properties.{k}"),
                        format!("must be a JSON Schema (an object), got {}", kind_of(v)),
                    ));
                }
            }
            Some(p.clone())
        }
        Some(other) => {
            return Err(invalid(
                &format!("{spath}.properties"),
                format!("must be an object, got {}", kind_of(other)),
            ));
        }
    };
    let required = match present(schema, "required") {
        None => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .enumerate()
                .map(|(i, r)| match r {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(invalid(
                        &format!("{spath}.required[{i}]"),
                        format!("must be a property name string, got {}", kind_of(other)),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(other) => {
            return Err(invalid(
                &format!("{spath}.required"),
                format!("must be an array, got {}", kind_of(other)),
            ));
        }
    };
    let extra = schema
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "type" | "properties" | "required"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(CustomTool {
        name: name.to_string(),
        description,
        input_schema: CustomToolInputSchema {
            kind: "object".to_string(),
            properties,
            required,
            extra,
        },
    })
}

/// Custom tool names: 1 to 128 characters of `[A-Za-z0-9_-]`.
pub fn validate_custom_tool_name(name: &str, path: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > MAX_TOOL_NAME_CHARS {
        return Err(invalid(
            path,
            format!("must be 1 to {MAX_TOOL_NAME_CHARS} characters"),
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(invalid(
            path,
            format!("`{name}` may contain only letters, digits, underscores and hyphens"),
        ));
    }
    Ok(())
}
