//! `mcp_servers[]`: `url` and `stdio` servers, and the references toolsets make to them.

use super::*;

/// Reads `mcp_servers[]`: at most [`MAX_MCP_SERVERS`], unique names of 1 to 255 characters;
/// `url` servers with http(s) URLs without embedded credentials, `stdio` servers (an oma
/// extension, run inside the session's box) with a command, arguments and environment.
pub fn parse_mcp_servers(values: &[Value]) -> Result<Vec<McpServer>, Error> {
    if values.len() > MAX_MCP_SERVERS {
        return Err(invalid(
            "mcp_servers",
            format!(
                "at most {MAX_MCP_SERVERS} servers are allowed, got {}",
                values.len()
            ),
        ));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let path = format!("mcp_servers[{i}]");
        let o = as_object(v, &path)?;
        let kind = type_tag(o, &path)?;
        if !matches!(kind, "url" | "stdio") {
            return Err(unknown_type(&path, kind, &["url", "stdio"]));
        }
        let name = req_string(o, "name", &path)?;
        let n = name.chars().count();
        if n == 0 || n > MAX_MCP_SERVER_NAME_CHARS {
            return Err(invalid(
                &format!("{path}.name"),
                format!("must be 1 to {MAX_MCP_SERVER_NAME_CHARS} characters"),
            ));
        }
        if let Some(first) = seen.insert(name.to_string(), i) {
            return Err(invalid(
                &format!("{path}.name"),
                format!("duplicate server name `{name}` (also at mcp_servers[{first}])"),
            ));
        }
        if kind == "stdio" {
            out.push(parse_stdio_server(o, name, &path)?);
            continue;
        }
        let url = req_string(o, "url", &path)?;
        validate_url(url, &format!("{path}.url"))?;
        out.push(McpServer::Url {
            name: name.to_string(),
            url: url.to_string(),
        });
    }
    Ok(out)
}

/// Limits of a `stdio` server's command line and environment.
pub(super) const MAX_STDIO_ARG_CHARS: usize = 4096;
pub(super) const MAX_STDIO_ARGS: usize = 64;
pub(super) const MAX_STDIO_ENV: usize = 64;

pub(super) fn parse_stdio_server(
    o: &Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<McpServer, Error> {
    let text = |v: &str, at: &str| -> Result<String, Error> {
        if v.chars().count() > MAX_STDIO_ARG_CHARS || v.contains('\0') {
            return Err(invalid(
                at,
                format!("must be at most {MAX_STDIO_ARG_CHARS} characters, without NUL"),
            ));
        }
        Ok(v.to_string())
    };
    let command = req_string(o, "command", path)?;
    if command.trim().is_empty() {
        return Err(invalid(&format!("{path}.command"), "must not be empty"));
    }
    let command = text(command, &format!("{path}.command"))?;
    let mut args = Vec::new();
    match present(o, "args") {
        None => {}
        Some(Value::Array(items)) => {
            if items.len() > MAX_STDIO_ARGS {
                return Err(invalid(
                    &format!("{path}.args"),
                    format!("at most {MAX_STDIO_ARGS} arguments are allowed"),
                ));
            }
            for (j, a) in items.iter().enumerate() {
                let at = format!("{path}.args[{j}]");
                let Some(a) = a.as_str() else {
                    return Err(invalid(
                        &at,
                        format!("expected a string, got {}", kind_of(a)),
                    ));
                };
                args.push(text(a, &at)?);
            }
        }
        Some(other) => {
            return Err(invalid(
                &format!("{path}.args"),
                format!("expected an array of strings, got {}", kind_of(other)),
            ));
        }
    }
    let mut env = BTreeMap::new();
    match present(o, "env") {
        None => {}
        Some(Value::Object(vars)) => {
            if vars.len() > MAX_STDIO_ENV {
                return Err(invalid(
                    &format!("{path}.env"),
                    format!("at most {MAX_STDIO_ENV} variables are allowed"),
                ));
            }
            for (k, v) in vars {
                let at = format!("{path}.env.{k}");
                let valid_name = k.len() <= 128
                    && k.chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid_name {
                    return Err(invalid(
                        &at,
                        "variable names are letters, digits and `_`, not starting with a digit",
                    ));
                }
                let Some(v) = v.as_str() else {
                    return Err(invalid(
                        &at,
                        format!("expected a string, got {}", kind_of(v)),
                    ));
                };
                env.insert(k.clone(), text(v, &at)?);
            }
        }
        Some(other) => {
            return Err(invalid(
                &format!("{path}.env"),
                format!("expected an object of strings, got {}", kind_of(other)),
            ));
        }
    }
    Ok(McpServer::Stdio {
        name: name.to_string(),
        command,
        args,
        env,
    })
}

pub(super) fn validate_url(url: &str, path: &str) -> Result<(), Error> {
    if url.is_empty() || url.chars().count() > MAX_URL_CHARS {
        return Err(invalid(
            path,
            format!("must be a URL of 1 to {MAX_URL_CHARS} characters"),
        ));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(path, "must not contain whitespace"));
    }
    let lower = url.to_ascii_lowercase();
    let Some(scheme_len) = ["https://", "http://"]
        .iter()
        .find(|s| lower.starts_with(*s))
        .map(|s| s.len())
    else {
        return Err(invalid(
            path,
            format!("`{url}` must be an http:// or https:// URL"),
        ));
    };
    let authority = url[scheme_len..]
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    if authority.contains('@') {
        return Err(invalid(
            path,
            "must not embed credentials; store them in a vault",
        ));
    }
    if authority.is_empty() || authority.starts_with(':') {
        return Err(invalid(path, format!("`{url}` has no host")));
    }
    Ok(())
}

/// Both directions of the `mcp_toolset` ↔ `mcp_servers` relation: every toolset names a
/// declared server and every declared server is used by a toolset.
pub fn check_mcp_references(tools: &[AgentTool], servers: &[McpServer]) -> Result<(), Error> {
    let declared: HashSet<&str> = servers.iter().map(|s| s.name()).collect();
    let mut used = HashSet::new();
    for (i, tool) in tools.iter().enumerate() {
        if let AgentTool::McpToolset(t) = tool {
            if !declared.contains(t.mcp_server_name.as_str()) {
                return Err(invalid(
                    &format!("tools[{i}].mcp_server_name"),
                    format!("no MCP server named `{}` in mcp_servers", t.mcp_server_name),
                ));
            }
            used.insert(t.mcp_server_name.as_str());
        }
    }
    for (j, server) in servers.iter().enumerate() {
        if !used.contains(server.name()) {
            return Err(invalid(
                &format!("mcp_servers[{j}]"),
                format!(
                    "server `{}` is not referenced by any mcp_toolset in tools; add \
                     {{\"type\": \"mcp_toolset\", \"mcp_server_name\": \"{}\"}} or remove the server",
                    server.name(),
                    server.name()
                ),
            ));
        }
    }
    Ok(())
}
