//! Domain rules: vaults and their credentials (spec §3.4, §5.4).
//!
//! A credential request is split in two here: the public part ([`CredentialSpec`], stored as
//! JSON and returned by the API) and the secrets ([`CredentialSecrets`], which the store keeps
//! only sealed, under the associated data [`secrets_aad`]). Nothing in the public part can hold
//! a secret: the response types in `oma_api::vaults` have no field for one.
//!
//! Update conventions (the API's "fields default to null"): inside `auth`, an omitted or null
//! field keeps the stored value; a given one replaces it. Exceptions, as documented:
//! `expires_at: null` clears the expiry, `refresh.scope: ""` clears the scope,
//! `injection_location` merges per key, `networking` replaces as a whole, and
//! `display_name: null` clears the (nullable) display name.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use oma_api::vaults::{
    Credential, CredentialAuth, CredentialNetworking, InjectionLocation, McpOAuthRefresh,
    TokenEndpointAuth, Vault,
};

use crate::metadata::{self, Metadata};
use crate::{Error, Patch};

pub const MAX_DISPLAY_NAME_CHARS: usize = 255;
/// Active (not archived) credentials per vault.
pub const MAX_CREDENTIALS_PER_VAULT: usize = 20;
/// `environment_variable` credentials: entries of `networking.allowed_hosts`.
pub const MAX_CREDENTIAL_HOSTS: usize = 16;
pub const MAX_URL_CHARS: usize = 2048;
pub const MAX_SECRET_BYTES: usize = 64 * 1024;
pub const MAX_SECRET_NAME_CHARS: usize = 255;
pub const MAX_CLIENT_ID_CHARS: usize = 1024;
pub const MAX_SCOPE_CHARS: usize = 4096;

// ---------------------------------------------------------------------------------------------
// Vaults
// ---------------------------------------------------------------------------------------------

/// The stored part of a vault.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VaultSpec {
    pub display_name: String,
    pub metadata: Metadata,
}

/// `POST /v1/vaults` body.
#[derive(Debug, Deserialize)]
pub struct CreateVaultParams {
    #[serde(default)]
    pub display_name: Option<Value>,
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// `POST /v1/vaults/{id}` body.
#[derive(Debug, Deserialize, Default)]
pub struct UpdateVaultParams {
    #[serde(default)]
    pub display_name: Patch<Value>,
    #[serde(default)]
    pub metadata: Patch<Value>,
}

pub fn vault_not_found(id: &str) -> Error {
    Error::missing("vault", id)
}

pub fn vault_archived(id: &str) -> Error {
    Error::invalid(format!(
        "vault `{id}` is archived and can no longer be modified"
    ))
}

impl VaultSpec {
    pub fn create(p: CreateVaultParams) -> Result<Self, Error> {
        let display_name = match p.display_name {
            None | Some(Value::Null) => return Err(Error::invalid("display_name: is required")),
            Some(v) => display_name(&v)?,
        };
        Ok(VaultSpec {
            display_name,
            metadata: metadata::from_create(p.metadata.as_ref())?,
        })
    }

    pub fn update(&self, p: UpdateVaultParams) -> Result<Self, Error> {
        let mut next = self.clone();
        match p.display_name {
            Patch::Absent => {}
            Patch::Null => return Err(Error::invalid("display_name: cannot be cleared")),
            Patch::Value(v) => next.display_name = display_name(&v)?,
        }
        apply_metadata(&mut next.metadata, p.metadata)?;
        Ok(next)
    }

    pub fn from_object(v: &Vault) -> Self {
        VaultSpec {
            display_name: v.display_name.clone(),
            metadata: v.metadata.clone(),
        }
    }

    pub fn to_object(
        &self,
        id: &str,
        created_at: i64,
        updated_at: i64,
        archived_at: Option<i64>,
    ) -> Vault {
        Vault {
            id: id.to_string(),
            kind: "vault".to_string(),
            archived_at: archived_at.map(crate::time::format_micros),
            created_at: crate::time::format_micros(created_at),
            display_name: self.display_name.clone(),
            metadata: self.metadata.clone(),
            updated_at: crate::time::format_micros(updated_at),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------

/// The public, stored part of a credential.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CredentialSpec {
    pub display_name: Option<String>,
    pub metadata: Metadata,
    pub auth: CredentialAuth,
}

/// The write-only part of a credential. Stored only sealed; `Debug` names the fields that are
/// set and never prints a value, so the struct is safe to log by accident.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CredentialSecrets {
    /// `mcp_oauth`: the access token sent to the MCP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// `mcp_oauth` with `refresh`: the refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// `mcp_oauth` with `client_secret_basic`/`client_secret_post`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// `static_bearer`: the bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// `environment_variable`: the value substituted at egress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_value: Option<String>,
}

impl std::fmt::Debug for CredentialSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |o: &Option<String>| o.as_ref().map(|_| "<redacted>");
        f.debug_struct("CredentialSecrets")
            .field("access_token", &redact(&self.access_token))
            .field("refresh_token", &redact(&self.refresh_token))
            .field("client_secret", &redact(&self.client_secret))
            .field("token", &redact(&self.token))
            .field("secret_value", &redact(&self.secret_value))
            .finish()
    }
}

impl CredentialSecrets {
    /// Plaintext for sealing. The bytes only ever go to `Sealer::seal`.
    pub fn to_plaintext(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(self)
            .map_err(|_| Error::internal("credential secrets could not be encoded"))
    }

    /// Parses opened plaintext.
    pub fn from_plaintext(bytes: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(bytes)
            .map_err(|_| Error::internal("stored credential secrets are not valid"))
    }
}

/// The associated data that binds a credential's sealed secrets to its tenant and id, so a
/// sealed value copied onto another row (or tenant) does not open.
pub fn secrets_aad(tenant_id: &str, credential_id: &str) -> String {
    format!("{tenant_id}/{credential_id}")
}

/// `POST /v1/vaults/{vault_id}/credentials` body.
#[derive(Debug, Deserialize)]
pub struct CreateCredentialParams {
    #[serde(default)]
    pub auth: Option<Value>,
    #[serde(default)]
    pub display_name: Option<Value>,
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// `POST /v1/vaults/{vault_id}/credentials/{id}` body.
#[derive(Debug, Deserialize, Default)]
pub struct UpdateCredentialParams {
    #[serde(default)]
    pub auth: Patch<Value>,
    #[serde(default)]
    pub display_name: Patch<Value>,
    #[serde(default)]
    pub metadata: Patch<Value>,
}

pub fn credential_not_found(id: &str) -> Error {
    Error::missing("credential", id)
}

pub fn credential_archived(id: &str) -> Error {
    Error::invalid(format!(
        "credential `{id}` is archived (its secrets were purged) and can no longer be modified; \
         create a new credential instead"
    ))
}

/// 409 for a second active credential with the same key in one vault.
pub fn duplicate_key(spec: &CredentialSpec) -> Error {
    let what = match &spec.auth {
        CredentialAuth::EnvironmentVariable { secret_name, .. } => {
            format!("secret_name `{secret_name}`")
        }
        CredentialAuth::McpOAuth { mcp_server_url, .. }
        | CredentialAuth::StaticBearer { mcp_server_url } => {
            format!("mcp_server_url `{mcp_server_url}`")
        }
    };
    Error::conflict(format!(
        "the vault already has an active credential for {what}; archive or delete it first"
    ))
}

pub fn too_many_credentials() -> Error {
    Error::invalid(format!(
        "a vault holds at most {MAX_CREDENTIALS_PER_VAULT} active credentials; archive or delete one first"
    ))
}

impl CredentialSpec {
    /// Validates a create request at time `now` (µs; `expires_at` must be later).
    pub fn create(p: CreateCredentialParams, now: i64) -> Result<(Self, CredentialSecrets), Error> {
        let auth = match p.auth {
            None | Some(Value::Null) => return Err(Error::invalid("auth: is required")),
            Some(v) => v,
        };
        let (auth, secrets) = create_auth(&auth, now)?;
        let display_name = match p.display_name {
            None | Some(Value::Null) => None,
            Some(v) => optional_display_name(&v)?,
        };
        let spec = CredentialSpec {
            display_name,
            metadata: metadata::from_create(p.metadata.as_ref())?,
            auth,
        };
        Ok((spec, secrets))
    }

    /// The credential after applying `p` to `self` and its current `secrets`. The caller checks
    /// that the credential is not archived.
    pub fn update(
        &self,
        secrets: &CredentialSecrets,
        p: UpdateCredentialParams,
        now: i64,
    ) -> Result<(Self, CredentialSecrets), Error> {
        let mut next = self.clone();
        let mut next_secrets = secrets.clone();
        match p.auth {
            Patch::Absent | Patch::Null => {}
            Patch::Value(v) => update_auth(&mut next.auth, &mut next_secrets, &v, now)?,
        }
        match p.display_name {
            Patch::Absent => {}
            Patch::Null => next.display_name = None,
            Patch::Value(v) => next.display_name = Some(display_name(&v)?),
        }
        apply_metadata(&mut next.metadata, p.metadata)?;
        Ok((next, next_secrets))
    }

    /// The key that must be unique among a vault's active credentials: the normalised MCP
    /// server URL for the MCP variants (one vault cannot hold two ways to authenticate to the
    /// same server), the variable name for environment variables.
    pub fn key(&self) -> String {
        match &self.auth {
            CredentialAuth::McpOAuth { mcp_server_url, .. }
            | CredentialAuth::StaticBearer { mcp_server_url } => {
                // Stored URLs were validated on create, so normalisation cannot fail here; fall
                // back to the raw text rather than erroring on a read path.
                format!(
                    "mcp:{}",
                    normalize_url(mcp_server_url).unwrap_or_else(|_| mcp_server_url.clone())
                )
            }
            CredentialAuth::EnvironmentVariable { secret_name, .. } => format!("env:{secret_name}"),
        }
    }

    /// Recovers the public spec from a stored credential object.
    pub fn from_object(c: &Credential) -> Self {
        CredentialSpec {
            display_name: c.display_name.clone(),
            metadata: c.metadata.clone(),
            auth: c.auth.clone(),
        }
    }

    pub fn to_object(
        &self,
        id: &str,
        vault_id: &str,
        created_at: i64,
        updated_at: i64,
        archived_at: Option<i64>,
    ) -> Credential {
        Credential {
            id: id.to_string(),
            kind: "vault_credential".to_string(),
            archived_at: archived_at.map(crate::time::format_micros),
            auth: self.auth.clone(),
            created_at: crate::time::format_micros(created_at),
            display_name: self.display_name.clone(),
            metadata: self.metadata.clone(),
            updated_at: crate::time::format_micros(updated_at),
            vault_id: vault_id.to_string(),
        }
    }
}

fn create_auth(v: &Value, now: i64) -> Result<(CredentialAuth, CredentialSecrets), Error> {
    let obj = v.as_object().ok_or_else(|| {
        Error::invalid("auth: must be an object with a `type` of `mcp_oauth`, `static_bearer` or `environment_variable`")
    })?;
    let mut secrets = CredentialSecrets::default();
    let auth = match auth_type(obj)? {
        AuthKind::McpOAuth => {
            let mcp_server_url = url_field(obj, "auth.mcp_server_url")?;
            secrets.access_token = Some(token_field(obj, "auth.access_token")?);
            let expires_at = match non_null(obj, "expires_at") {
                None => None,
                Some(e) => Some(expires_at(e, now)?),
            };
            let refresh = match non_null(obj, "refresh") {
                None => None,
                Some(r) => Some(create_refresh(r, &mut secrets)?),
            };
            CredentialAuth::McpOAuth {
                mcp_server_url,
                expires_at,
                refresh,
            }
        }
        AuthKind::StaticBearer => {
            let mcp_server_url = url_field(obj, "auth.mcp_server_url")?;
            secrets.token = Some(token_field(obj, "auth.token")?);
            CredentialAuth::StaticBearer { mcp_server_url }
        }
        AuthKind::EnvironmentVariable => {
            let secret_name = secret_name(obj)?;
            let networking = match non_null(obj, "networking") {
                None => {
                    return Err(Error::invalid(
                        "auth.networking: is required (`unrestricted` or `limited`)",
                    ));
                }
                Some(n) => credential_networking(n)?,
            };
            let injection_location = match non_null(obj, "injection_location") {
                // Without an explicit choice the placeholder is substituted wherever it appears.
                None => InjectionLocation {
                    body: true,
                    header: true,
                },
                // An explicit object opts in per location: a location left out stays off.
                Some(l) => merge_injection_location(
                    InjectionLocation {
                        body: false,
                        header: false,
                    },
                    l,
                )?,
            };
            let value = required_str(obj, "secret_value", "auth.secret_value")?;
            check_secret_value(value, injection_location.header)?;
            secrets.secret_value = Some(value.to_string());
            CredentialAuth::EnvironmentVariable {
                injection_location,
                networking,
                secret_name,
            }
        }
    };
    Ok((auth, secrets))
}

fn create_refresh(v: &Value, secrets: &mut CredentialSecrets) -> Result<McpOAuthRefresh, Error> {
    let obj = v
        .as_object()
        .ok_or_else(|| Error::invalid("auth.refresh: must be an object or null"))?;
    let client_id = required_str(obj, "client_id", "auth.refresh.client_id")?;
    if client_id.is_empty() || client_id.chars().count() > MAX_CLIENT_ID_CHARS {
        return Err(Error::invalid(format!(
            "auth.refresh.client_id: must be 1 to {MAX_CLIENT_ID_CHARS} characters"
        )));
    }
    let token_endpoint = url_field(obj, "auth.refresh.token_endpoint")?;
    secrets.refresh_token = Some(token_field(obj, "auth.refresh.refresh_token")?);
    let tea = obj
        .get("token_endpoint_auth")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            Error::invalid(
                "auth.refresh.token_endpoint_auth: is required: {\"type\": \"none\" | \"client_secret_basic\" | \
                 \"client_secret_post\"}",
            )
        })?;
    let token_endpoint_auth = match tea.get("type").and_then(Value::as_str) {
        Some("none") => TokenEndpointAuth::None,
        Some("client_secret_basic") => TokenEndpointAuth::ClientSecretBasic,
        Some("client_secret_post") => TokenEndpointAuth::ClientSecretPost,
        _ => {
            return Err(Error::invalid(
                "auth.refresh.token_endpoint_auth.type: must be `none`, `client_secret_basic` or `client_secret_post`",
            ));
        }
    };
    if token_endpoint_auth.uses_client_secret() {
        secrets.client_secret = Some(token_field(
            tea,
            "auth.refresh.token_endpoint_auth.client_secret",
        )?);
    }
    Ok(McpOAuthRefresh {
        client_id: client_id.to_string(),
        token_endpoint,
        token_endpoint_auth,
        resource: optional_text(obj, "resource", "auth.refresh.resource", MAX_URL_CHARS)?,
        scope: optional_text(obj, "scope", "auth.refresh.scope", MAX_SCOPE_CHARS)?,
    })
}

fn update_auth(
    auth: &mut CredentialAuth,
    secrets: &mut CredentialSecrets,
    v: &Value,
    now: i64,
) -> Result<(), Error> {
    let obj = v
        .as_object()
        .ok_or_else(|| Error::invalid("auth: must be an object with the credential's `type`"))?;
    let kind = auth_type(obj)?.name();
    if kind != auth.type_name() {
        return Err(Error::invalid(format!(
            "auth.type: a credential's type cannot change (`{}` → `{kind}`); create a new credential instead",
            auth.type_name()
        )));
    }
    match auth {
        CredentialAuth::McpOAuth {
            mcp_server_url,
            expires_at: stored_expiry,
            refresh,
        } => {
            immutable_str(obj, "mcp_server_url", "auth.mcp_server_url", mcp_server_url)?;
            if let Some(t) = non_null(obj, "access_token") {
                secrets.access_token = Some(token_value(t, "auth.access_token")?);
            }
            // Leaving it out keeps the stored expiry; null says the expiry is unknown.
            match obj.get("expires_at") {
                None => {}
                Some(Value::Null) => *stored_expiry = None,
                Some(e) => *stored_expiry = Some(expires_at(e, now)?),
            }
            if let Some(r) = non_null(obj, "refresh") {
                let stored = refresh.as_mut().ok_or_else(|| {
                    Error::invalid(
                        "auth.refresh: this credential was created without refresh support, and `client_id` and \
                         `token_endpoint` cannot be added later; create a new credential instead",
                    )
                })?;
                update_refresh(stored, secrets, r)?;
            }
        }
        CredentialAuth::StaticBearer { mcp_server_url } => {
            immutable_str(obj, "mcp_server_url", "auth.mcp_server_url", mcp_server_url)?;
            if let Some(t) = non_null(obj, "token") {
                secrets.token = Some(token_value(t, "auth.token")?);
            }
        }
        CredentialAuth::EnvironmentVariable {
            injection_location,
            networking,
            secret_name,
        } => {
            immutable_str(obj, "secret_name", "auth.secret_name", secret_name)?;
            if let Some(n) = non_null(obj, "networking") {
                *networking = credential_networking(n)?;
            }
            if let Some(l) = non_null(obj, "injection_location") {
                *injection_location = merge_injection_location(*injection_location, l)?;
            }
            if let Some(s) = non_null(obj, "secret_value") {
                let s = s
                    .as_str()
                    .ok_or_else(|| Error::invalid("auth.secret_value: must be a string"))?;
                secrets.secret_value = Some(s.to_string());
            }
            // Checked after the merge: a stored value may meet a newly enabled header location.
            if let Some(value) = &secrets.secret_value {
                check_secret_value(value, injection_location.header)?;
            }
        }
    }
    Ok(())
}

fn update_refresh(
    stored: &mut McpOAuthRefresh,
    secrets: &mut CredentialSecrets,
    v: &Value,
) -> Result<(), Error> {
    let obj = v
        .as_object()
        .ok_or_else(|| Error::invalid("auth.refresh: must be an object or null"))?;
    immutable_str(
        obj,
        "client_id",
        "auth.refresh.client_id",
        &stored.client_id,
    )?;
    immutable_str(
        obj,
        "token_endpoint",
        "auth.refresh.token_endpoint",
        &stored.token_endpoint,
    )?;
    // `resource` is not part of the update shape; resending the stored value is tolerated.
    if let Some(r) = non_null(obj, "resource") {
        let sent = r.as_str().filter(|s| !s.is_empty());
        if sent != stored.resource.as_deref() {
            return Err(Error::invalid(
                "auth.refresh.resource: cannot be changed; create a new credential instead",
            ));
        }
    }
    if let Some(t) = non_null(obj, "refresh_token") {
        secrets.refresh_token = Some(token_value(t, "auth.refresh.refresh_token")?);
    }
    // Documented: an empty string clears the stored scope.
    if let Some(s) = non_null(obj, "scope") {
        stored.scope = match s.as_str() {
            Some("") => None,
            Some(text) if text.chars().count() > MAX_SCOPE_CHARS => {
                return Err(Error::invalid(format!(
                    "auth.refresh.scope: must be at most {MAX_SCOPE_CHARS} characters"
                )));
            }
            Some(text) => Some(text.to_string()),
            None => {
                return Err(Error::invalid(
                    "auth.refresh.scope: must be a string or null",
                ));
            }
        };
    }
    if let Some(tea) = non_null(obj, "token_endpoint_auth") {
        let tea = tea
            .as_object()
            .ok_or_else(|| Error::invalid("auth.refresh.token_endpoint_auth: must be an object"))?;
        match tea.get("type").and_then(Value::as_str) {
            Some("client_secret_basic") | Some("client_secret_post") => {}
            _ => {
                return Err(Error::invalid(
                    "auth.refresh.token_endpoint_auth.type: must be `client_secret_basic` or `client_secret_post`",
                ));
            }
        }
        // The stored method is kept even when the other secret-based type is sent (documented);
        // a client secret cannot be added to a credential that authenticates with `none`.
        if !stored.token_endpoint_auth.uses_client_secret() {
            return Err(Error::invalid(
                "auth.refresh.token_endpoint_auth: this credential's token endpoint uses no client \
                 authentication, so it has no client secret to replace",
            ));
        }
        if let Some(s) = non_null(tea, "client_secret") {
            secrets.client_secret = Some(token_value(
                s,
                "auth.refresh.token_endpoint_auth.client_secret",
            )?);
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthKind {
    McpOAuth,
    StaticBearer,
    EnvironmentVariable,
}

impl AuthKind {
    fn name(self) -> &'static str {
        match self {
            AuthKind::McpOAuth => "mcp_oauth",
            AuthKind::StaticBearer => "static_bearer",
            AuthKind::EnvironmentVariable => "environment_variable",
        }
    }
}

fn auth_type(obj: &Map<String, Value>) -> Result<AuthKind, Error> {
    match obj.get("type").and_then(Value::as_str) {
        Some("mcp_oauth") => Ok(AuthKind::McpOAuth),
        Some("static_bearer") => Ok(AuthKind::StaticBearer),
        Some("environment_variable") => Ok(AuthKind::EnvironmentVariable),
        Some(t) => Err(Error::invalid(format!(
            "auth.type: unknown credential type `{t}`; expected `mcp_oauth`, `static_bearer` or `environment_variable`"
        ))),
        None => Err(Error::invalid(
            "auth.type: is required (`mcp_oauth`, `static_bearer` or `environment_variable`)",
        )),
    }
}

fn credential_networking(v: &Value) -> Result<CredentialNetworking, Error> {
    let obj = v.as_object().ok_or_else(|| {
        Error::invalid(
            "auth.networking: must be an object with a `type` of `unrestricted` or `limited`",
        )
    })?;
    match obj.get("type").and_then(Value::as_str) {
        Some("unrestricted") => Ok(CredentialNetworking::Unrestricted),
        Some("limited") => {
            let path = "auth.networking.allowed_hosts";
            let hosts = match non_null(obj, "allowed_hosts") {
                None => {
                    return Err(Error::invalid(format!(
                        "{path}: is required for `limited` networking"
                    )));
                }
                Some(h) => crate::environments::allowed_hosts(h, path, MAX_CREDENTIAL_HOSTS)?,
            };
            if hosts.is_empty() {
                return Err(Error::invalid(format!(
                    "{path}: must list at least one host (use `unrestricted` to substitute on any host)"
                )));
            }
            Ok(CredentialNetworking::Limited {
                allowed_hosts: hosts,
            })
        }
        Some(other) => Err(Error::invalid(format!(
            "auth.networking.type: unknown policy `{other}`; expected `unrestricted` or `limited`"
        ))),
        None => Err(Error::invalid(
            "auth.networking.type: is required (`unrestricted` or `limited`)",
        )),
    }
}

/// Applies the given keys of an injection-location object over `base`; at least one location
/// must stay enabled.
fn merge_injection_location(
    base: InjectionLocation,
    v: &Value,
) -> Result<InjectionLocation, Error> {
    let obj = v.as_object().ok_or_else(|| {
        Error::invalid(
            "auth.injection_location: must be an object {\"header\": bool, \"body\": bool}",
        )
    })?;
    let mut out = base;
    for (key, slot) in [("header", &mut out.header), ("body", &mut out.body)] {
        if let Some(b) = non_null(obj, key) {
            *slot = b.as_bool().ok_or_else(|| {
                Error::invalid(format!("auth.injection_location.{key}: must be a boolean"))
            })?;
        }
    }
    if !out.header && !out.body {
        return Err(Error::invalid(
            "auth.injection_location: at least one of `header` and `body` must be enabled",
        ));
    }
    Ok(out)
}

fn secret_name(obj: &Map<String, Value>) -> Result<String, Error> {
    let name = required_str(obj, "secret_name", "auth.secret_name")?;
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        || name.chars().count() > MAX_SECRET_NAME_CHARS
    {
        return Err(Error::invalid(format!(
            "auth.secret_name: `{name}` is not a valid environment variable name (letters, digits and `_`, \
             not starting with a digit, at most {MAX_SECRET_NAME_CHARS} characters)"
        )));
    }
    Ok(name.to_string())
}

/// An environment-variable value: never NUL (no environment can hold it), and no line breaks
/// when it may be substituted into a header (that would let it split the request).
fn check_secret_value(value: &str, header: bool) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid("auth.secret_value: must be non-empty"));
    }
    if value.len() > MAX_SECRET_BYTES {
        return Err(Error::invalid(format!(
            "auth.secret_value: must be at most {MAX_SECRET_BYTES} bytes"
        )));
    }
    if value.contains('\0') {
        return Err(Error::invalid(
            "auth.secret_value: must not contain NUL characters",
        ));
    }
    if header && value.contains(['\r', '\n']) {
        return Err(Error::invalid(
            "auth.secret_value: must not contain line breaks while it may be substituted into headers \
             (set `injection_location.header` to false to use a multi-line value in bodies only)",
        ));
    }
    Ok(())
}

/// A token-like secret (`access_token`, `token`, `refresh_token`, `client_secret`): sent in
/// headers or form bodies, so it must be non-empty, bounded and free of control characters.
fn token_field(obj: &Map<String, Value>, path: &str) -> Result<String, Error> {
    let key = path.rsplit('.').next().unwrap_or(path);
    match obj.get(key) {
        None | Some(Value::Null) => Err(Error::invalid(format!("{path}: is required"))),
        Some(v) => token_value(v, path),
    }
}

fn token_value(v: &Value, path: &str) -> Result<String, Error> {
    let s = v
        .as_str()
        .ok_or_else(|| Error::invalid(format!("{path}: must be a string")))?;
    if s.is_empty() {
        return Err(Error::invalid(format!("{path}: must be non-empty")));
    }
    if s.len() > MAX_SECRET_BYTES {
        return Err(Error::invalid(format!(
            "{path}: must be at most {MAX_SECRET_BYTES} bytes"
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{path}: must not contain control characters or line breaks"
        )));
    }
    Ok(s.to_string())
}

fn url_field(obj: &Map<String, Value>, path: &str) -> Result<String, Error> {
    let key = path.rsplit('.').next().unwrap_or(path);
    let s = required_str(obj, key, path)?;
    normalize_url(s).map_err(|why| Error::invalid(format!("{path}: `{s}` {why}")))?;
    Ok(s.to_string())
}

fn expires_at(v: &Value, now: i64) -> Result<String, Error> {
    let s = v.as_str().ok_or_else(|| {
        Error::invalid("auth.expires_at: must be an RFC 3339 timestamp string or null")
    })?;
    let micros = crate::time::parse_micros(s).ok_or_else(|| {
        Error::invalid(format!(
            "auth.expires_at: `{s}` is not an RFC 3339 timestamp"
        ))
    })?;
    if micros <= now {
        return Err(Error::invalid("auth.expires_at: must be in the future"));
    }
    Ok(crate::time::format_micros(micros))
}

fn required_str<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(Error::invalid(format!("{path}: is required"))),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Error::invalid(format!("{path}: must be a string"))),
    }
}

/// An optional text field where null and `""` both mean "not set".
fn optional_text(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    max: usize,
) -> Result<Option<String>, Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.chars().count() > max => Err(Error::invalid(format!(
            "{path}: must be at most {max} characters"
        ))),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::invalid(format!("{path}: must be a string or null"))),
    }
}

/// Rejects an attempt to change an immutable field; sending the stored value is harmless.
fn immutable_str(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    stored: &str,
) -> Result<(), Error> {
    match non_null(obj, key) {
        None => Ok(()),
        Some(v) if v.as_str() == Some(stored) => Ok(()),
        Some(_) => Err(Error::invalid(format!(
            "{path}: is immutable; archive this credential and create a new one instead"
        ))),
    }
}

fn display_name(v: &Value) -> Result<String, Error> {
    match v.as_str() {
        Some(s) if s.trim().is_empty() => Err(Error::invalid("display_name: must be non-empty")),
        Some(s) if s.chars().count() > MAX_DISPLAY_NAME_CHARS => Err(Error::invalid(format!(
            "display_name: must be at most {MAX_DISPLAY_NAME_CHARS} characters"
        ))),
        Some(s) => Ok(s.to_string()),
        None => Err(Error::invalid("display_name: must be a string")),
    }
}

/// A credential's create-time display name: optional, "up to 255 characters"; empty means unset.
fn optional_display_name(v: &Value) -> Result<Option<String>, Error> {
    match v.as_str() {
        Some("") => Ok(None),
        Some(_) => display_name(v).map(Some),
        None => Err(Error::invalid("display_name: must be a string or null")),
    }
}

fn apply_metadata(bag: &mut Metadata, p: Patch<Value>) -> Result<(), Error> {
    match p {
        Patch::Absent | Patch::Null => Ok(()),
        Patch::Value(Value::Object(patch)) => metadata::apply_patch(bag, &patch, false),
        Patch::Value(_) => Err(Error::invalid(
            "metadata: must be an object of string or null values",
        )
        .with_code("invalid_metadata")),
    }
}

fn non_null<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// Normalises an `http(s)` URL for matching: scheme and host lowercased, default port and
/// trailing slash removed, fragment dropped. Path, query, subdomain and non-default port are
/// kept, so they still have to match. Errors say what is wrong with the URL.
pub fn normalize_url(url: &str) -> Result<String, &'static str> {
    if url.len() > MAX_URL_CHARS {
        return Err("is too long (at most 2048 characters)");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("must be an absolute http(s) URL")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => return Err("must use the http or https scheme"),
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(split);
    if authority.contains('@') {
        return Err(
            "must not contain user credentials (put secrets in the credential's secret fields)",
        );
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (h, after) = bracketed
            .split_once(']')
            .ok_or("has an unterminated IPv6 address")?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("has an invalid port")?),
        };
        (format!("[{}]", h.to_ascii_lowercase()), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
            None => (authority.to_ascii_lowercase(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err("must include a host");
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => {
                (p != default_port).then(|| n.to_string())
            }
            _ => return Err("has an invalid port"),
        },
    };
    let mut out = format!("{scheme}://{host}");
    if let Some(p) = port {
        out.push(':');
        out.push_str(&p);
    }
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    out.push_str(path.trim_end_matches('/'));
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_767_323_045_000_000; // 2026-01-02T03:04:05Z

    fn create(v: Value) -> Result<(CredentialSpec, CredentialSecrets), Error> {
        CredentialSpec::create(serde_json::from_value(v).unwrap(), NOW)
    }

    fn update(
        spec: &CredentialSpec,
        secrets: &CredentialSecrets,
        v: Value,
    ) -> Result<(CredentialSpec, CredentialSecrets), Error> {
        spec.update(secrets, serde_json::from_value(v).unwrap(), NOW)
    }

    fn oauth_full() -> Value {
        json!({
            "display_name": "Linear",
            "metadata": {"team": "x"},
            "auth": {
                "type": "mcp_oauth",
                "mcp_server_url": "https://mcp.linear.app/mcp",
                "access_token": "at-secret",
                "expires_at": "2027-01-01T00:00:00Z",
                "refresh": {
                    "client_id": "client-1",
                    "refresh_token": "rt-secret",
                    "token_endpoint": "https://linear.app/oauth/token",
                    "token_endpoint_auth": {"type": "client_secret_post", "client_secret": "cs-secret"},
                    "scope": "read write",
                    "resource": null
                }
            }
        })
    }

    #[test]
    fn splits_public_and_secret_parts() {
        let (spec, secrets) = create(oauth_full()).unwrap();
        assert_eq!(secrets.access_token.as_deref(), Some("at-secret"));
        assert_eq!(secrets.refresh_token.as_deref(), Some("rt-secret"));
        assert_eq!(secrets.client_secret.as_deref(), Some("cs-secret"));
        let public =
            serde_json::to_string(&spec.to_object("vcrd_1", "vlt_1", NOW, NOW, None)).unwrap();
        for s in ["at-secret", "rt-secret", "cs-secret"] {
            assert!(!public.contains(s), "{public}");
        }
        let obj: Value = serde_json::from_str(&public).unwrap();
        assert_eq!(obj["auth"]["expires_at"], "2027-01-01T00:00:00.000000Z");
        assert_eq!(
            obj["auth"]["refresh"]["token_endpoint_auth"],
            json!({"type": "client_secret_post"})
        );
        assert_eq!(obj["auth"]["refresh"]["resource"], Value::Null);
        assert_eq!(obj["type"], "vault_credential");
        assert_eq!(obj["vault_id"], "vlt_1");
        let debug = format!("{secrets:?}");
        assert!(
            !debug.contains("secret\"") && !debug.contains("at-secret"),
            "{debug}"
        );
        let back = CredentialSecrets::from_plaintext(&secrets.to_plaintext().unwrap()).unwrap();
        assert_eq!(back, secrets);
    }

    #[test]
    fn static_bearer_and_env_var() {
        let (spec, secrets) = create(json!({"auth": {
            "type": "static_bearer", "mcp_server_url": "https://mcp.example.com/", "token": "tok"
        }}))
        .unwrap();
        assert_eq!(secrets.token.as_deref(), Some("tok"));
        assert_eq!(spec.key(), "mcp:https://mcp.example.com");
        assert_eq!(spec.display_name, None);

        let (spec, secrets) = create(json!({"auth": {
            "type": "environment_variable", "secret_name": "GITHUB_TOKEN", "secret_value": "ghp_x",
            "networking": {"type": "limited", "allowed_hosts": ["api.github.com", "*.github.com"]}
        }}))
        .unwrap();
        assert_eq!(secrets.secret_value.as_deref(), Some("ghp_x"));
        assert_eq!(spec.key(), "env:GITHUB_TOKEN");
        let CredentialAuth::EnvironmentVariable {
            injection_location, ..
        } = &spec.auth
        else {
            panic!()
        };
        assert_eq!(
            *injection_location,
            InjectionLocation {
                body: true,
                header: true
            }
        );

        let (spec, _) = create(json!({"auth": {
            "type": "environment_variable", "secret_name": "K", "secret_value": "v",
            "networking": {"type": "unrestricted"}, "injection_location": {"header": true}
        }}))
        .unwrap();
        let CredentialAuth::EnvironmentVariable {
            injection_location, ..
        } = &spec.auth
        else {
            panic!()
        };
        assert_eq!(
            *injection_location,
            InjectionLocation {
                body: false,
                header: true
            }
        );
    }

    #[test]
    fn rejects_bad_create_input() {
        let cases = [
            json!({}),
            json!({"auth": {"type": "password"}}),
            json!({"auth": {"type": "static_bearer", "mcp_server_url": "https://x.com"}}),
            json!({"auth": {"type": "static_bearer", "mcp_server_url": "ftp://x.com", "token": "t"}}),
            json!({"auth": {"type": "static_bearer", "mcp_server_url": "x.com", "token": "t"}}),
            json!({"auth": {"type": "static_bearer", "mcp_server_url": "https://u:p@x.com", "token": "t"}}),
            json!({"auth": {"type": "static_bearer", "mcp_server_url": "https://x.com", "token": ""}}),
            json!({"auth": {"type": "static_bearer", "mcp_server_url": "https://x.com", "token": "a\r\nb"}}),
            json!({"auth": {"type": "mcp_oauth", "mcp_server_url": "https://x.com", "access_token": "t",
                "expires_at": "2020-01-01T00:00:00Z"}}),
            json!({"auth": {"type": "mcp_oauth", "mcp_server_url": "https://x.com", "access_token": "t",
                "expires_at": "soon"}}),
            json!({"auth": {"type": "mcp_oauth", "mcp_server_url": "https://x.com", "access_token": "t",
                "refresh": {"client_id": "c", "refresh_token": "r", "token_endpoint": "https://x.com/t",
                    "token_endpoint_auth": {"type": "client_secret_basic"}}}}),
            json!({"auth": {"type": "mcp_oauth", "mcp_server_url": "https://x.com", "access_token": "t",
                "refresh": {"client_id": "c", "refresh_token": "r", "token_endpoint": "https://x.com/t"}}}),
            json!({"auth": {"type": "environment_variable", "secret_name": "K", "secret_value": "v"}}),
            json!({"auth": {"type": "environment_variable", "secret_name": "1K", "secret_value": "v",
                "networking": {"type": "unrestricted"}}}),
            json!({"auth": {"type": "environment_variable", "secret_name": "K", "secret_value": "v",
                "networking": {"type": "limited", "allowed_hosts": []}}}),
            json!({"auth": {"type": "environment_variable", "secret_name": "K", "secret_value": "v",
                "networking": {"type": "limited", "allowed_hosts": ["https://api.x.com"]}}}),
            json!({"auth": {"type": "environment_variable", "secret_name": "K", "secret_value": "v",
                "networking": {"type": "limited", "allowed_hosts": (0..17).map(|i| format!("h{i}.com")).collect::<Vec<_>>()}}}),
            json!({"auth": {"type": "environment_variable", "secret_name": "K", "secret_value": "v",
                "networking": {"type": "unrestricted"}, "injection_location": {"header": false, "body": false}}}),
            json!({"auth": {"type": "environment_variable", "secret_name": "K", "secret_value": "a\nb",
                "networking": {"type": "unrestricted"}}}),
            json!({"display_name": "x".repeat(256), "auth": {"type": "static_bearer", "mcp_server_url": "https://x.com", "token": "t"}}),
        ];
        for c in cases {
            let err = create(c.clone()).unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::InvalidRequest, "{c}");
        }
        // A multi-line value is fine when it only goes into bodies.
        create(json!({"auth": {"type": "environment_variable", "secret_name": "PEM", "secret_value": "a\nb",
            "networking": {"type": "unrestricted"}, "injection_location": {"body": true}}}))
        .unwrap();
    }

    #[test]
    fn oauth_update_rules() {
        let (spec, secrets) = create(oauth_full()).unwrap();
        // Nothing given: nothing changes.
        assert_eq!(
            update(&spec, &secrets, json!({})).unwrap(),
            (spec.clone(), secrets.clone())
        );
        assert_eq!(
            update(&spec, &secrets, json!({"auth": {"type": "mcp_oauth"}})).unwrap(),
            (spec.clone(), secrets.clone())
        );
        // New access token and expiry; refresh secret and scope cleared with "".
        let (next, next_secrets) = update(
            &spec,
            &secrets,
            json!({"auth": {"type": "mcp_oauth", "access_token": "at2", "expires_at": "2028-01-01T00:00:00+00:00",
                "refresh": {"refresh_token": "rt2", "scope": "",
                    "token_endpoint_auth": {"type": "client_secret_basic", "client_secret": "cs2"}}}}),
        )
        .unwrap();
        assert_eq!(next_secrets.access_token.as_deref(), Some("at2"));
        assert_eq!(next_secrets.refresh_token.as_deref(), Some("rt2"));
        assert_eq!(next_secrets.client_secret.as_deref(), Some("cs2"));
        let CredentialAuth::McpOAuth {
            expires_at,
            refresh: Some(refresh),
            ..
        } = &next.auth
        else {
            panic!()
        };
        assert_eq!(expires_at.as_deref(), Some("2028-01-01T00:00:00.000000Z"));
        assert_eq!(refresh.scope, None);
        // The stored method is kept even though the other secret-based type was sent.
        assert_eq!(
            refresh.token_endpoint_auth,
            TokenEndpointAuth::ClientSecretPost
        );
        // expires_at: null clears it; null secrets keep the stored ones.
        let (next, next_secrets) = update(
            &spec,
            &secrets,
            json!({"auth": {"type": "mcp_oauth", "expires_at": null, "access_token": null, "refresh": null}}),
        )
        .unwrap();
        assert!(matches!(
            &next.auth,
            CredentialAuth::McpOAuth {
                expires_at: None,
                ..
            }
        ));
        assert_eq!(next_secrets, secrets);
        // Immutable fields and type changes.
        for bad in [
            json!({"auth": {"type": "static_bearer", "token": "x"}}),
            json!({"auth": {"type": "mcp_oauth", "mcp_server_url": "https://other.example.com"}}),
            json!({"auth": {"type": "mcp_oauth", "refresh": {"client_id": "other"}}}),
            json!({"auth": {"type": "mcp_oauth", "refresh": {"token_endpoint": "https://other/t"}}}),
            json!({"auth": {"type": "mcp_oauth", "refresh": {"token_endpoint_auth": {"type": "none"}}}}),
            json!({"auth": {"type": "mcp_oauth", "expires_at": "2001-01-01T00:00:00Z"}}),
            json!({"auth": {"type": "mcp_oauth", "access_token": ""}}),
            json!({"display_name": ""}),
        ] {
            assert!(update(&spec, &secrets, bad.clone()).is_err(), "{bad}");
        }
        // Same immutable value is accepted.
        update(
            &spec,
            &secrets,
            json!({"auth": {"type": "mcp_oauth", "mcp_server_url": "https://mcp.linear.app/mcp"}}),
        )
        .unwrap();
    }

    #[test]
    fn oauth_update_without_refresh_or_secret_method() {
        let (spec, secrets) = create(
            json!({"auth": {"type": "mcp_oauth", "mcp_server_url": "https://x.com",
            "access_token": "t"}}),
        )
        .unwrap();
        assert!(
            update(
                &spec,
                &secrets,
                json!({"auth": {"type": "mcp_oauth", "refresh": {"refresh_token": "r"}}})
            )
            .is_err()
        );
        let (spec, secrets) = create(json!({"auth": {"type": "mcp_oauth", "mcp_server_url": "https://x.com",
            "access_token": "t", "refresh": {"client_id": "c", "refresh_token": "r", "token_endpoint": "https://x.com/t",
                "token_endpoint_auth": {"type": "none"}}}}))
        .unwrap();
        assert_eq!(secrets.client_secret, None);
        let err = update(
            &spec,
            &secrets,
            json!({"auth": {"type": "mcp_oauth", "refresh": {"token_endpoint_auth": {"type": "client_secret_post", "client_secret": "s"}}}}),
        )
        .unwrap_err();
        assert!(err.message.contains("no client"), "{}", err.message);
    }

    #[test]
    fn env_var_update_rules() {
        let (spec, secrets) = create(json!({"display_name": "gh", "auth": {
            "type": "environment_variable", "secret_name": "GH", "secret_value": "v1",
            "networking": {"type": "limited", "allowed_hosts": ["api.github.com"]},
            "injection_location": {"header": true, "body": false}
        }}))
        .unwrap();
        // injection_location merges per key.
        let (next, _) = update(
            &spec,
            &secrets,
            json!({"auth": {"type": "environment_variable",
            "injection_location": {"body": true}}}),
        )
        .unwrap();
        let CredentialAuth::EnvironmentVariable {
            injection_location,
            networking,
            ..
        } = &next.auth
        else {
            panic!()
        };
        assert_eq!(
            *injection_location,
            InjectionLocation {
                body: true,
                header: true
            }
        );
        assert_eq!(
            *networking,
            CredentialNetworking::Limited {
                allowed_hosts: vec!["api.github.com".into()]
            }
        );
        // At least one location must stay enabled.
        assert!(
            update(
                &spec,
                &secrets,
                json!({"auth": {"type": "environment_variable",
            "injection_location": {"header": false}}})
            )
            .is_err()
        );
        // networking replaces as a whole.
        let (next, next_secrets) = update(
            &spec,
            &secrets,
            json!({"auth": {"type": "environment_variable",
            "networking": {"type": "unrestricted"}, "secret_value": "v2"}, "display_name": null}),
        )
        .unwrap();
        let CredentialAuth::EnvironmentVariable { networking, .. } = &next.auth else {
            panic!()
        };
        assert_eq!(*networking, CredentialNetworking::Unrestricted);
        assert_eq!(next_secrets.secret_value.as_deref(), Some("v2"));
        assert_eq!(next.display_name, None);
        // secret_name is immutable.
        assert!(
            update(
                &spec,
                &secrets,
                json!({"auth": {"type": "environment_variable", "secret_name": "OTHER"}})
            )
            .is_err()
        );
        // A stored multi-line value blocks enabling header substitution.
        let (spec, secrets) = create(json!({"auth": {"type": "environment_variable", "secret_name": "PEM",
            "secret_value": "a\nb", "networking": {"type": "unrestricted"}, "injection_location": {"body": true}}}))
        .unwrap();
        assert!(
            update(
                &spec,
                &secrets,
                json!({"auth": {"type": "environment_variable",
            "injection_location": {"header": true}}})
            )
            .is_err()
        );
    }

    #[test]
    fn metadata_patch() {
        let (spec, secrets) = create(json!({"metadata": {"a": "1", "b": "2"},
            "auth": {"type": "static_bearer", "mcp_server_url": "https://x.com", "token": "t"}}))
        .unwrap();
        let (next, _) = update(
            &spec,
            &secrets,
            json!({"metadata": {"a": null, "c": "3", "b": ""}}),
        )
        .unwrap();
        assert_eq!(
            next.metadata,
            [
                ("b".to_string(), String::new()),
                ("c".to_string(), "3".to_string())
            ]
            .into()
        );
        let (next, _) = update(&spec, &secrets, json!({"metadata": null})).unwrap();
        assert_eq!(next.metadata, spec.metadata);
    }

    #[test]
    fn vaults() {
        let v = VaultSpec::create(
            serde_json::from_value(json!({"display_name": "Alice", "metadata": {"u": "1"}}))
                .unwrap(),
        )
        .unwrap();
        assert!(VaultSpec::create(serde_json::from_value(json!({})).unwrap()).is_err());
        assert!(
            VaultSpec::create(serde_json::from_value(json!({"display_name": ""})).unwrap())
                .is_err()
        );
        assert!(
            VaultSpec::create(
                serde_json::from_value(json!({"display_name": "x".repeat(256)})).unwrap()
            )
            .is_err()
        );
        let up = |p: Value| v.update(serde_json::from_value(p).unwrap());
        assert_eq!(up(json!({})).unwrap(), v);
        assert_eq!(
            up(json!({"display_name": "Bob"})).unwrap().display_name,
            "Bob"
        );
        assert!(up(json!({"display_name": null})).is_err());
        assert!(
            up(json!({"metadata": {"u": null}}))
                .unwrap()
                .metadata
                .is_empty()
        );
        let obj = serde_json::to_value(v.to_object("vlt_1", NOW, NOW, Some(NOW))).unwrap();
        assert_eq!(obj["type"], "vault");
        assert_eq!(obj["archived_at"], "2026-01-02T03:04:05.000000Z");
    }

    #[test]
    fn url_normalisation() {
        let n = |u: &str| normalize_url(u).unwrap();
        assert_eq!(
            n("HTTPS://MCP.Example.com:443/mcp/"),
            "https://mcp.example.com/mcp"
        );
        assert_eq!(n("http://x.com:80"), "http://x.com");
        assert_eq!(
            n("https://x.com:8443/a?b=1#frag"),
            "https://x.com:8443/a?b=1"
        );
        assert_eq!(n("https://[::1]:8080/"), "https://[::1]:8080");
        for bad in [
            "x.com",
            "ftp://x.com",
            "https://",
            "https://:443/",
            "https://x.com:0",
            "https://x.com:99999",
            "https://x .com",
            "https://u@x.com",
        ] {
            assert!(normalize_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn aad_binds_tenant_and_id() {
        assert_eq!(secrets_aad("t1", "vcrd_1"), "t1/vcrd_1");
    }
}
