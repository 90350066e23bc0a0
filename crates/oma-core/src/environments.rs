//! Domain rules: environments (spec §3.2, §5.2).
//!
//! Request params in, the stored (and returned) resolved shape out. A cloud configuration is
//! always stored fully resolved (`networking` and `packages` populated with defaults), so the
//! response never has to invent anything.
//!
//! Update semantics follow the API's "fields default to null" convention for `config`: inside a
//! config, an omitted *or null* field keeps the stored value, and a given field replaces it
//! (per field, down to each package manager's list and each `limited` networking flag).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use oma_api::environments::{CloudNetworking, Environment, EnvironmentConfig, Packages};

use crate::metadata::{self, Metadata};
use crate::{Error, Patch};

pub const MAX_NAME_CHARS: usize = 255;
pub const MAX_DESCRIPTION_CHARS: usize = 4096;
/// Entries of `limited.allowed_hosts`. The API does not document a cap for environments; a
/// bound keeps one request from producing an unbounded egress allowlist.
pub const MAX_ALLOWED_HOSTS: usize = 1000;
/// Packages per manager.
pub const MAX_PACKAGES_PER_MANAGER: usize = 256;
pub const MAX_PACKAGE_SPEC_CHARS: usize = 256;

/// The only scope an API-key caller can use: the real API rejects `account` for API
/// organizations, and oma has no account identity below the tenant.
pub const SCOPE_ORGANIZATION: &str = "organization";

/// The stored part of an environment (its row's JSON body). Timestamps and the archive mark
/// live in columns beside it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnvironmentSpec {
    pub name: String,
    pub description: Option<String>,
    pub metadata: Metadata,
    pub scope: String,
    pub config: EnvironmentConfig,
}

/// `POST /v1/environments` body. Fields are kept as raw JSON so that every type mismatch is
/// reported with the field's path rather than a generic deserialisation error.
#[derive(Debug, Deserialize)]
pub struct CreateEnvironmentParams {
    #[serde(default)]
    pub name: Option<Value>,
    #[serde(default)]
    pub config: Option<Value>,
    #[serde(default)]
    pub description: Option<Value>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub scope: Option<Value>,
}

/// `POST /v1/environments/{id}` body: every field three-state.
#[derive(Debug, Deserialize, Default)]
pub struct UpdateEnvironmentParams {
    #[serde(default)]
    pub name: Patch<Value>,
    #[serde(default)]
    pub config: Patch<Value>,
    #[serde(default)]
    pub description: Patch<Value>,
    #[serde(default)]
    pub metadata: Patch<Value>,
    #[serde(default)]
    pub scope: Patch<Value>,
}

/// 404 for an environment id that does not exist for this tenant.
/// The metadata key that picks an environment's instance type (an oma extension: the API has
/// no field for it, and metadata round-trips through every SDK unchanged).
pub const INSTANCE_TYPE_KEY: &str = "oma_instance_type";

/// The resources one session's sandbox may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceType {
    pub name: &'static str,
    /// Thousandths of a CPU.
    pub millicpus: u32,
    pub memory_bytes: u64,
    /// Processes and threads together.
    pub pids: u32,
    /// Workspace size.
    pub disk_bytes: u64,
}

const GIB: u64 = 1 << 30;

/// The named instance types, smallest first. The first is the default.
pub const INSTANCE_TYPES: &[InstanceType] = &[
    InstanceType {
        name: "small",
        millicpus: 1000,
        memory_bytes: 4 * GIB,
        pids: 512,
        disk_bytes: 10 * GIB,
    },
    InstanceType {
        name: "medium",
        millicpus: 2000,
        memory_bytes: 8 * GIB,
        pids: 1024,
        disk_bytes: 20 * GIB,
    },
    InstanceType {
        name: "large",
        millicpus: 4000,
        memory_bytes: 16 * GIB,
        pids: 2048,
        disk_bytes: 40 * GIB,
    },
];

/// The instance type called `name`, or the default (`small`) for `None`.
pub fn instance_type(name: Option<&str>) -> Result<InstanceType, Error> {
    let Some(name) = name else {
        return Ok(INSTANCE_TYPES[0]);
    };
    INSTANCE_TYPES
        .iter()
        .find(|t| t.name == name)
        .copied()
        .ok_or_else(|| {
            let names: Vec<&str> = INSTANCE_TYPES.iter().map(|t| t.name).collect();
            Error::invalid(format!(
                "metadata.{INSTANCE_TYPE_KEY}: unknown instance type `{name}`; use one of {}",
                names.join(", ")
            ))
        })
}

pub fn not_found(id: &str) -> Error {
    Error::missing("environment", id).with_code("environment_not_found")
}

/// 400 for a write to an archived environment (archived environments are read-only).
pub fn archived(id: &str) -> Error {
    Error::invalid(format!(
        "environment `{id}` is archived and can no longer be modified"
    ))
    .with_code("environment_archived")
}

impl EnvironmentSpec {
    pub fn create(p: CreateEnvironmentParams) -> Result<Self, Error> {
        let name = match p.name {
            None | Some(Value::Null) => return Err(Error::invalid("name: is required")),
            Some(v) => name(&v)?,
        };
        let description = match p.description {
            None | Some(Value::Null) => None,
            Some(v) => Some(description(&v)?),
        };
        let config = match p.config {
            None | Some(Value::Null) => default_config(),
            Some(v) => merge_config(None, &v)?,
        };
        let scope = match p.scope {
            None | Some(Value::Null) => SCOPE_ORGANIZATION.to_string(),
            Some(v) => scope(&v)?,
        };
        let spec = EnvironmentSpec {
            name,
            description,
            metadata: metadata::from_create(p.metadata.as_ref())?,
            scope,
            config,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// The spec after applying `p`. The caller checks that the environment is not archived.
    pub fn update(&self, p: UpdateEnvironmentParams) -> Result<Self, Error> {
        let mut next = self.clone();
        match p.name {
            Patch::Absent => {}
            Patch::Null => return Err(Error::invalid("name: cannot be cleared")),
            Patch::Value(v) => next.name = name(&v)?,
        }
        // Documented: omit to preserve, null clears, an empty string is stored as given.
        match p.description {
            Patch::Absent => {}
            Patch::Null => next.description = None,
            Patch::Value(v) => next.description = Some(description(&v)?),
        }
        match p.config {
            // `config: null` carries no change, like a null field inside a config.
            Patch::Absent | Patch::Null => {}
            Patch::Value(v) => next.config = merge_config(Some(&self.config), &v)?,
        }
        match p.scope {
            Patch::Absent => {}
            Patch::Null => next.scope = SCOPE_ORGANIZATION.to_string(),
            Patch::Value(v) => next.scope = scope(&v)?,
        }
        match p.metadata {
            Patch::Absent | Patch::Null => {}
            Patch::Value(Value::Object(patch)) => {
                metadata::apply_patch(&mut next.metadata, &patch, true)?
            }
            Patch::Value(_) => {
                return Err(
                    Error::invalid("metadata: must be an object of string or null values")
                        .with_code("invalid_metadata"),
                );
            }
        }
        next.validate()?;
        Ok(next)
    }

    fn validate(&self) -> Result<(), Error> {
        if let Some(name) = self.metadata.get(INSTANCE_TYPE_KEY) {
            instance_type(Some(name))?;
        }
        if let EnvironmentConfig::Cloud {
            networking:
                CloudNetworking::Limited {
                    allow_package_managers: false,
                    ..
                },
            packages,
        } = &self.config
            && !packages.is_empty()
        {
            return Err(Error::invalid(
                "config.packages: under `limited` networking, installing packages requires \
                 `config.networking.allow_package_managers: true`",
            ));
        }
        Ok(())
    }

    /// Recovers the spec from a stored environment object.
    pub fn from_object(env: &Environment) -> Self {
        EnvironmentSpec {
            name: env.name.clone(),
            description: env.description.clone(),
            metadata: env.metadata.clone(),
            scope: env
                .scope
                .clone()
                .unwrap_or_else(|| SCOPE_ORGANIZATION.to_string()),
            config: env.config.clone(),
        }
    }

    /// The environment object of the API.
    pub fn to_object(
        &self,
        id: &str,
        created_at: i64,
        updated_at: i64,
        archived_at: Option<i64>,
    ) -> Environment {
        Environment {
            id: id.to_string(),
            kind: "environment".to_string(),
            archived_at: archived_at.map(crate::time::format_micros),
            config: self.config.clone(),
            created_at: crate::time::format_micros(created_at),
            description: self.description.clone(),
            metadata: self.metadata.clone(),
            name: self.name.clone(),
            updated_at: crate::time::format_micros(updated_at),
            scope: Some(self.scope.clone()),
        }
    }
}

/// `{"type":"cloud"}` with its defaults: unrestricted networking, no packages.
pub fn default_config() -> EnvironmentConfig {
    EnvironmentConfig::Cloud {
        networking: CloudNetworking::Unrestricted {},
        packages: Packages::default(),
    }
}

fn name(v: &Value) -> Result<String, Error> {
    match v.as_str() {
        Some(s) if s.trim().is_empty() => Err(Error::invalid("name: must be non-empty")),
        Some(s) if s.chars().count() > MAX_NAME_CHARS => Err(Error::invalid(format!(
            "name: must be at most {MAX_NAME_CHARS} characters"
        ))),
        Some(s) => Ok(s.to_string()),
        None => Err(Error::invalid("name: must be a string")),
    }
}

fn description(v: &Value) -> Result<String, Error> {
    match v.as_str() {
        Some(s) if s.chars().count() > MAX_DESCRIPTION_CHARS => Err(Error::invalid(format!(
            "description: must be at most {MAX_DESCRIPTION_CHARS} characters"
        ))),
        Some(s) => Ok(s.to_string()),
        None => Err(Error::invalid("description: must be a string or null")),
    }
}

fn scope(v: &Value) -> Result<String, Error> {
    match v.as_str() {
        Some(SCOPE_ORGANIZATION) => Ok(SCOPE_ORGANIZATION.to_string()),
        Some("account") => Err(Error::invalid(
            "scope: `account` is not supported for API keys; use `organization` (the default)",
        )),
        _ => Err(Error::invalid("scope: must be `organization` or `account`")),
    }
}

/// Resolves a config param against `base` (the stored config on update, `None` on create).
fn merge_config(base: Option<&EnvironmentConfig>, v: &Value) -> Result<EnvironmentConfig, Error> {
    let obj = v.as_object().ok_or_else(|| {
        Error::invalid("config: must be an object with a `type` of `cloud` or `self_hosted`")
    })?;
    let kind = match obj.get("type") {
        Some(Value::String(t)) if t == "cloud" || t == "self_hosted" => t.as_str(),
        Some(Value::String(t)) => {
            return Err(Error::invalid(format!(
                "config.type: unknown environment type `{t}`; expected `cloud` or `self_hosted`"
            )));
        }
        _ => {
            return Err(Error::invalid(
                "config.type: is required (`cloud` or `self_hosted`)",
            ));
        }
    };
    if let Some(base) = base
        && base.type_name() != kind
    {
        return Err(Error::invalid(format!(
            "config.type: an environment's type cannot change (`{}` → `{kind}`); create a new \
             environment instead",
            base.type_name()
        ))
        .with_code("invalid_config_type_change"));
    }
    if kind == "self_hosted" {
        return Ok(EnvironmentConfig::SelfHosted {});
    }
    let (base_networking, base_packages) = match base {
        Some(EnvironmentConfig::Cloud {
            networking,
            packages,
        }) => (Some(networking), Some(packages)),
        _ => (None, None),
    };
    let networking = match non_null(obj, "networking") {
        None => base_networking
            .cloned()
            .unwrap_or(CloudNetworking::Unrestricted {}),
        Some(n) => merge_networking(base_networking, n)?,
    };
    let packages = match non_null(obj, "packages") {
        None => base_packages.cloned().unwrap_or_default(),
        Some(p) => merge_packages(base_packages, p)?,
    };
    Ok(EnvironmentConfig::Cloud {
        networking,
        packages,
    })
}

fn merge_networking(base: Option<&CloudNetworking>, v: &Value) -> Result<CloudNetworking, Error> {
    let obj = v.as_object().ok_or_else(|| {
        Error::invalid(
            "config.networking: must be an object with a `type` of `unrestricted` or `limited`",
        )
    })?;
    match obj.get("type").and_then(Value::as_str) {
        Some("unrestricted") => Ok(CloudNetworking::Unrestricted {}),
        Some("limited") => {
            // Start from the stored limited policy (update) or the documented defaults.
            let (mut hosts, mut mcp, mut pkg) = match base {
                Some(CloudNetworking::Limited {
                    allowed_hosts,
                    allow_mcp_servers,
                    allow_package_managers,
                }) => (
                    allowed_hosts.clone(),
                    *allow_mcp_servers,
                    *allow_package_managers,
                ),
                _ => (Vec::new(), false, false),
            };
            if let Some(h) = non_null(obj, "allowed_hosts") {
                hosts = allowed_hosts(h, "config.networking.allowed_hosts", MAX_ALLOWED_HOSTS)?;
            }
            if let Some(b) = non_null(obj, "allow_mcp_servers") {
                mcp = b.as_bool().ok_or_else(|| {
                    Error::invalid("config.networking.allow_mcp_servers: must be a boolean")
                })?;
            }
            if let Some(b) = non_null(obj, "allow_package_managers") {
                pkg = b.as_bool().ok_or_else(|| {
                    Error::invalid("config.networking.allow_package_managers: must be a boolean")
                })?;
            }
            Ok(CloudNetworking::Limited {
                allowed_hosts: hosts,
                allow_mcp_servers: mcp,
                allow_package_managers: pkg,
            })
        }
        Some(other) => Err(Error::invalid(format!(
            "config.networking.type: unknown policy `{other}`; expected `unrestricted` or `limited`"
        ))),
        None => Err(Error::invalid(
            "config.networking.type: is required (`unrestricted` or `limited`)",
        )),
    }
}

fn merge_packages(base: Option<&Packages>, v: &Value) -> Result<Packages, Error> {
    let obj = v
        .as_object()
        .ok_or_else(|| Error::invalid("config.packages: must be an object"))?;
    match obj.get("type") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t == "packages" => {}
        Some(_) => return Err(Error::invalid("config.packages.type: must be `packages`")),
    }
    let mut out = base.cloned().unwrap_or_default();
    out.kind = Some("packages".to_string());
    for (manager, slot) in [
        ("apt", &mut out.apt),
        ("cargo", &mut out.cargo),
        ("gem", &mut out.gem),
        ("go", &mut out.go),
        ("npm", &mut out.npm),
        ("pip", &mut out.pip),
    ] {
        if let Some(list) = non_null(obj, manager) {
            *slot = package_list(list, manager)?;
        }
    }
    Ok(out)
}

fn package_list(v: &Value, manager: &str) -> Result<Vec<String>, Error> {
    let path = format!("config.packages.{manager}");
    let items = v
        .as_array()
        .ok_or_else(|| Error::invalid(format!("{path}: must be an array of package specifiers")))?;
    if items.len() > MAX_PACKAGES_PER_MANAGER {
        return Err(Error::invalid(format!(
            "{path}: at most {MAX_PACKAGES_PER_MANAGER} packages are allowed"
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let s = item
                .as_str()
                .ok_or_else(|| Error::invalid(format!("{path}[{i}]: must be a string")))?;
            check_package_spec(s)
                .map_err(|why| Error::invalid(format!("{path}[{i}]: `{s}` {why}")))?;
            Ok(s.to_string())
        })
        .collect()
}

/// A package specifier is handed to an installer as one argument. It must look like a package
/// name with an optional version constraint in the manager's own syntax (`pkg==1.0`,
/// `@scope/pkg@^1`, `golang.org/x/tools/cmd/goimports@latest`, `rails:7.1`, `curl=7.88.1-10`,
/// `pkg[extra]>=1,<2`), and never like an option (`-…`) or a shell fragment.
pub fn check_package_spec(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("must be non-empty");
    }
    if s.chars().count() > MAX_PACKAGE_SPEC_CHARS {
        return Err("is too long (at most 256 characters)");
    }
    if s.starts_with('-') {
        return Err("must not start with `-`");
    }
    const EXTRA: &str = "._-+=@:/<>~^*!,[]";
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || EXTRA.contains(c))
    {
        return Err(
            "contains characters that are not allowed in a package specifier \
                    (letters, digits and . _ - + = @ : / < > ~ ^ * ! , [ ] only)",
        );
    }
    Ok(())
}

/// Parses an `allowed_hosts` array (shared with environment-variable credentials).
pub(crate) fn allowed_hosts(v: &Value, path: &str, max: usize) -> Result<Vec<String>, Error> {
    let items = v
        .as_array()
        .ok_or_else(|| Error::invalid(format!("{path}: must be an array of host names")))?;
    if items.len() > max {
        return Err(Error::invalid(format!(
            "{path}: at most {max} hosts are allowed"
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let s = item
                .as_str()
                .ok_or_else(|| Error::invalid(format!("{path}[{i}]: must be a string")))?;
            check_host(s).map_err(|why| Error::invalid(format!("{path}[{i}]: `{s}` {why}")))?;
            Ok(s.to_string())
        })
        .collect()
}

/// An allowlist entry: a bare host name (`api.example.com`), an IPv4 address (`192.0.2.1`) or a
/// leading-wildcard name (`*.example.com`, which matches subdomains only). No scheme, port,
/// path or IPv6 literal.
pub fn check_host(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("must be non-empty");
    }
    if s.len() > 253 {
        return Err("is too long for a host name (at most 253 characters)");
    }
    if s.contains("://") {
        return Err("must be a bare host name without a scheme (e.g. `api.example.com`)");
    }
    if s.contains('/') {
        return Err("must be a bare host name without a path (e.g. `api.example.com`)");
    }
    if s.contains(':') || s.starts_with('[') {
        return Err("must be a bare host name without a port (IPv6 addresses are not supported)");
    }
    let (wildcard, name) = match s.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if name.contains('*') {
        return Err("may only use a wildcard as a leading `*.` (e.g. `*.example.com`)");
    }
    let labels: Vec<&str> = name.split('.').collect();
    let numeric = labels
        .iter()
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()));
    if numeric {
        if wildcard {
            return Err("cannot combine a wildcard with an IP address");
        }
        return match name.parse::<std::net::Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err("is not a valid IPv4 address"),
        };
    }
    for label in labels {
        if label.is_empty() || label.len() > 63 {
            return Err(
                "is not a valid host name (each dot-separated label must be 1 to 63 characters)",
            );
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("is not a valid host name (letters, digits and `-` only)");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("is not a valid host name (a label cannot start or end with `-`)");
        }
    }
    Ok(())
}

/// The value of `key` unless it is absent or JSON null (both mean "not given" in a config).
fn non_null<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create(v: Value) -> Result<EnvironmentSpec, Error> {
        EnvironmentSpec::create(serde_json::from_value(v).unwrap())
    }

    fn update(spec: &EnvironmentSpec, v: Value) -> Result<EnvironmentSpec, Error> {
        spec.update(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn instance_types_are_named_in_metadata() {
        assert_eq!(instance_type(None).unwrap().name, "small");
        let spec =
            create(json!({"name": "e", "metadata": {"oma_instance_type": "large"}})).unwrap();
        let t = instance_type(spec.metadata.get(INSTANCE_TYPE_KEY).map(String::as_str)).unwrap();
        assert_eq!((t.millicpus, t.memory_bytes), (4000, 16 << 30));
        let err =
            create(json!({"name": "e", "metadata": {"oma_instance_type": "huge"}})).unwrap_err();
        assert!(
            err.message.contains("small, medium, large"),
            "{}",
            err.message
        );
        let err = update(&spec, json!({"metadata": {"oma_instance_type": "tiny"}})).unwrap_err();
        assert!(err.message.contains("unknown instance type"));
    }

    #[test]
    fn defaults_to_unrestricted_cloud_without_packages() {
        let spec = create(json!({"name": "e"})).unwrap();
        assert_eq!(spec.config, default_config());
        assert_eq!(spec.scope, "organization");
        let spec = create(json!({"name": "e", "config": {"type": "cloud"}})).unwrap();
        assert_eq!(spec.config, default_config());
        let spec = create(
            json!({"name": "e", "config": {"type": "cloud", "networking": null, "packages": null}}),
        )
        .unwrap();
        assert_eq!(spec.config, default_config());
        let obj = serde_json::to_value(spec.to_object("env_1", 0, 0, None)).unwrap();
        assert_eq!(obj["config"]["packages"]["type"], "packages");
        assert_eq!(obj["config"]["networking"], json!({"type": "unrestricted"}));
        assert_eq!(obj["archived_at"], Value::Null);
        assert_eq!(obj["description"], Value::Null);
    }

    #[test]
    fn limited_networking_defaults_and_package_rule() {
        let spec = create(
            json!({"name": "e", "config": {"type": "cloud", "networking": {"type": "limited"}}}),
        )
        .unwrap();
        assert_eq!(
            spec.config,
            EnvironmentConfig::Cloud {
                networking: CloudNetworking::Limited {
                    allowed_hosts: vec![],
                    allow_mcp_servers: false,
                    allow_package_managers: false
                },
                packages: Packages::default()
            }
        );
        let err = create(json!({"name": "e", "config": {
            "type": "cloud",
            "networking": {"type": "limited", "allowed_hosts": ["pypi.org"]},
            "packages": {"pip": ["requests"]}
        }}))
        .unwrap_err();
        assert!(
            err.message.contains("allow_package_managers"),
            "{}",
            err.message
        );
        // Allowed once package managers are allowed, and empty package lists never need it.
        create(json!({"name": "e", "config": {
            "type": "cloud",
            "networking": {"type": "limited", "allow_package_managers": true},
            "packages": {"type": "packages", "pip": ["requests==2.32.0"], "npm": ["@scope/pkg@^1.2.0"]}
        }}))
        .unwrap();
        create(json!({"name": "e", "config": {
            "type": "cloud", "networking": {"type": "limited"}, "packages": {"pip": []}
        }}))
        .unwrap();
    }

    #[test]
    fn rejects_bad_input_with_paths() {
        let cases = [
            (json!({}), "name"),
            (json!({"name": ""}), "name"),
            (json!({"name": 3}), "name"),
            (json!({"name": "e", "config": "cloud"}), "config"),
            (
                json!({"name": "e", "config": {"type": "gpu"}}),
                "config.type",
            ),
            (json!({"name": "e", "config": {}}), "config.type"),
            (
                json!({"name": "e", "config": {"type": "cloud", "networking": {"type": "open"}}}),
                "config.networking.type",
            ),
            (
                json!({"name": "e", "config": {"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["https://x.com"]}}}),
                "config.networking.allowed_hosts[0]",
            ),
            (
                json!({"name": "e", "config": {"type": "cloud", "networking": {"type": "limited", "allow_mcp_servers": "yes"}}}),
                "config.networking.allow_mcp_servers",
            ),
            (
                json!({"name": "e", "config": {"type": "cloud", "packages": {"pip": [""]}}}),
                "config.packages.pip[0]",
            ),
            (
                json!({"name": "e", "config": {"type": "cloud", "packages": {"apt": ["-o=evil"]}}}),
                "config.packages.apt[0]",
            ),
            (
                json!({"name": "e", "config": {"type": "cloud", "packages": {"npm": ["a; rm -rf /"]}}}),
                "config.packages.npm[0]",
            ),
            (
                json!({"name": "e", "config": {"type": "cloud", "packages": {"go": "x"}}}),
                "config.packages.go",
            ),
            (
                json!({"name": "e", "config": {"type": "cloud", "packages": {"type": "pkgs"}}}),
                "config.packages.type",
            ),
            (json!({"name": "e", "scope": "account"}), "scope"),
            (json!({"name": "e", "scope": "world"}), "scope"),
            (json!({"name": "e", "metadata": {"k": 1}}), "metadata"),
            (json!({"name": "e", "description": 5}), "description"),
        ];
        for (input, path) in cases {
            let err = create(input.clone()).unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::InvalidRequest, "{input}");
            assert!(err.message.starts_with(path), "{input}: {}", err.message);
        }
    }

    #[test]
    fn hosts() {
        for ok in [
            "api.example.com",
            "*.example.com",
            "localhost",
            "192.0.2.1",
            "a-b.c0.io",
            "xn--bcher-kva.example",
        ] {
            assert!(check_host(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "https://api.example.com",
            "api.example.com/path",
            "api.example.com:443",
            "[::1]",
            "::1",
            "*.",
            "*",
            "a.*.com",
            "*.192.0.2.1",
            "999.1.1.1",
            "-a.com",
            "a-.com",
            "a..com",
            "a b.com",
            "api.example.com.",
            "ex_ample.com",
        ] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn package_specs() {
        for ok in [
            "requests",
            "requests==2.32.0",
            "pkg[extra]>=1,<2",
            "@scope/pkg@^1.2.3",
            "ripgrep@14.1.0",
            "golang.org/x/tools/cmd/goimports@latest",
            "rails:7.1.0",
            "curl=7.88.1-10+deb12u5",
            "pkg~=1.0",
        ] {
            assert!(check_package_spec(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-y",
            "--index-url=http://evil",
            "a b",
            "a;b",
            "$(x)",
            "`x`",
            "a|b",
            "a&b",
            "a\nb",
        ] {
            assert!(check_package_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn update_preserves_omitted_config_fields() {
        let spec = create(json!({"name": "e", "config": {
            "type": "cloud",
            "networking": {"type": "limited", "allowed_hosts": ["a.com"], "allow_package_managers": true},
            "packages": {"pip": ["requests"], "apt": ["curl"]}
        }}))
        .unwrap();
        // Nothing given: nothing changes.
        assert_eq!(update(&spec, json!({})).unwrap(), spec);
        assert_eq!(update(&spec, json!({"config": null})).unwrap(), spec);
        assert_eq!(
            update(&spec, json!({"config": {"type": "cloud"}})).unwrap(),
            spec
        );
        // One limited flag changes, the rest of the policy stays.
        let next = update(&spec, json!({"config": {"type": "cloud", "networking": {"type": "limited", "allow_mcp_servers": true}}}))
            .unwrap();
        assert_eq!(
            next.config,
            EnvironmentConfig::Cloud {
                networking: CloudNetworking::Limited {
                    allowed_hosts: vec!["a.com".into()],
                    allow_mcp_servers: true,
                    allow_package_managers: true
                },
                packages: Packages {
                    pip: vec!["requests".into()],
                    apt: vec!["curl".into()],
                    ..Packages::default()
                }
            }
        );
        // One manager's list is replaced; the others stay.
        let next = update(
            &spec,
            json!({"config": {"type": "cloud", "packages": {"pip": []}}}),
        )
        .unwrap();
        let EnvironmentConfig::Cloud { packages, .. } = &next.config else {
            panic!("cloud")
        };
        assert!(packages.pip.is_empty());
        assert_eq!(packages.apt, vec!["curl".to_string()]);
        // Turning package managers off while packages remain is rejected.
        let err = update(
            &spec,
            json!({"config": {"type": "cloud", "networking": {"type": "limited", "allow_package_managers": false}}}),
        )
        .unwrap_err();
        assert!(err.message.contains("allow_package_managers"));
        // Switching to unrestricted drops the limited policy.
        let next = update(
            &spec,
            json!({"config": {"type": "cloud", "networking": {"type": "unrestricted"}}}),
        )
        .unwrap();
        assert!(matches!(
            next.config,
            EnvironmentConfig::Cloud {
                networking: CloudNetworking::Unrestricted {},
                ..
            }
        ));
    }

    #[test]
    fn update_rejects_type_change() {
        let spec = create(json!({"name": "e"})).unwrap();
        let err = update(&spec, json!({"config": {"type": "self_hosted"}})).unwrap_err();
        assert_eq!(err.code, Some("invalid_config_type_change"));
        let hosted = create(json!({"name": "e", "config": {"type": "self_hosted"}})).unwrap();
        assert_eq!(hosted.config, EnvironmentConfig::SelfHosted {});
        let err = update(&hosted, json!({"config": {"type": "cloud"}})).unwrap_err();
        assert_eq!(err.code, Some("invalid_config_type_change"));
        assert_eq!(
            update(&hosted, json!({"config": {"type": "self_hosted"}})).unwrap(),
            hosted
        );
    }

    #[test]
    fn update_scalars_and_metadata() {
        let spec = create(
            json!({"name": "e", "description": "d", "metadata": {"a": "1", "b": "2", "c": "3"}}),
        )
        .unwrap();
        let next = update(
            &spec,
            json!({"name": "f", "description": null, "metadata": {"a": null, "b": "", "d": "4"}}),
        )
        .unwrap();
        assert_eq!(next.name, "f");
        assert_eq!(next.description, None);
        assert_eq!(next.metadata.keys().collect::<Vec<_>>(), vec!["c", "d"]);
        let next = update(&spec, json!({"description": ""})).unwrap();
        assert_eq!(next.description.as_deref(), Some(""));
        assert!(update(&spec, json!({"name": null})).is_err());
        assert!(update(&spec, json!({"name": ""})).is_err());
        assert_eq!(
            update(&spec, json!({"scope": null})).unwrap().scope,
            "organization"
        );
        assert_eq!(update(&spec, json!({"metadata": null})).unwrap(), spec);
        let err = update(&spec, json!({"metadata": [1]})).unwrap_err();
        assert_eq!(err.code, Some("invalid_metadata"));
    }

    #[test]
    fn object_round_trip() {
        let spec = create(json!({"name": "e", "description": "d", "metadata": {"a": "1"},
            "config": {"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["x.io"]}}}))
        .unwrap();
        let obj = spec.to_object("env_1", 1, 2, Some(3));
        assert_eq!(EnvironmentSpec::from_object(&obj), spec);
        assert_eq!(
            obj.archived_at.as_deref(),
            Some("1970-01-01T00:00:00.000003Z")
        );
    }

    #[test]
    fn error_codes() {
        assert_eq!(not_found("env_x").code, Some("environment_not_found"));
        assert_eq!(not_found("env_x").kind, crate::ErrorKind::NotFound);
        assert_eq!(archived("env_x").code, Some("environment_archived"));
        assert_eq!(archived("env_x").kind, crate::ErrorKind::InvalidRequest);
    }
}
