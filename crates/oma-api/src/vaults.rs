//! Wire types: vaults and credentials (spec §3.4, §5.4).
//!
//! These are the *public* shapes. Secret fields (`access_token`, `refresh_token`,
//! `client_secret`, `token`, `secret_value`) are write-only: they have no place in any type of
//! this module, so a response cannot carry one by construction. Request params are parsed by
//! `oma_core::credentials`, which splits them into this public part and a sealed secret part.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `BetaManagedAgentsVault`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Vault {
    pub id: String,
    /// Always `"vault"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub archived_at: Option<String>,
    pub created_at: String,
    pub display_name: String,
    pub metadata: BTreeMap<String, String>,
    pub updated_at: String,
}

/// `BetaManagedAgentsDeletedVault`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct VaultDeleted {
    pub id: String,
    /// Always `"vault_deleted"`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl VaultDeleted {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            kind: "vault_deleted".to_string(),
        }
    }
}

/// `BetaManagedAgentsCredential`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Credential {
    pub id: String,
    /// Always `"vault_credential"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub archived_at: Option<String>,
    pub auth: CredentialAuth,
    pub created_at: String,
    pub display_name: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub updated_at: String,
    pub vault_id: String,
}

/// `BetaManagedAgentsDeletedCredential`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct CredentialDeleted {
    pub id: String,
    /// Always `"vault_credential_deleted"`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl CredentialDeleted {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            kind: "vault_credential_deleted".to_string(),
        }
    }
}

/// `CredentialAuth`: the public part of a credential's authentication settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum CredentialAuth {
    /// `BetaManagedAgentsMCPOAuthAuthResponse`.
    #[serde(rename = "mcp_oauth")]
    McpOAuth {
        mcp_server_url: String,
        /// RFC 3339; `null` when the expiry is not known.
        expires_at: Option<String>,
        refresh: Option<McpOAuthRefresh>,
    },
    /// `BetaManagedAgentsStaticBearerAuthResponse`.
    #[serde(rename = "static_bearer")]
    StaticBearer { mcp_server_url: String },
    /// `BetaManagedAgentsEnvironmentVariableAuthResponse`.
    #[serde(rename = "environment_variable")]
    EnvironmentVariable {
        injection_location: InjectionLocation,
        networking: CredentialNetworking,
        secret_name: String,
    },
}

impl CredentialAuth {
    /// The `type` literal of the variant.
    pub fn type_name(&self) -> &'static str {
        match self {
            CredentialAuth::McpOAuth { .. } => "mcp_oauth",
            CredentialAuth::StaticBearer { .. } => "static_bearer",
            CredentialAuth::EnvironmentVariable { .. } => "environment_variable",
        }
    }
}

/// `BetaManagedAgentsMCPOAuthRefreshResponse`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct McpOAuthRefresh {
    pub client_id: String,
    pub token_endpoint: String,
    pub token_endpoint_auth: TokenEndpointAuth,
    pub resource: Option<String>,
    pub scope: Option<String>,
}

/// `TokenEndpointAuth`: how the client authenticates at the token endpoint (the
/// `client_secret` itself is sealed, never part of this type).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum TokenEndpointAuth {
    #[serde(rename = "none")]
    None,
    #[serde(rename = "client_secret_basic")]
    ClientSecretBasic,
    #[serde(rename = "client_secret_post")]
    ClientSecretPost,
}

impl TokenEndpointAuth {
    pub fn uses_client_secret(self) -> bool {
        !matches!(self, TokenEndpointAuth::None)
    }
}

/// `CredentialNetworking`: the hosts an environment-variable secret is substituted on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum CredentialNetworking {
    #[serde(rename = "unrestricted")]
    Unrestricted,
    #[serde(rename = "limited")]
    Limited { allowed_hosts: Vec<String> },
}

/// `BetaManagedAgentsInjectionLocationResponse`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct InjectionLocation {
    pub body: bool,
    pub header: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn auth_variants_serialise_with_every_key() {
        let oauth = CredentialAuth::McpOAuth {
            mcp_server_url: "https://mcp.example.com/mcp".into(),
            expires_at: None,
            refresh: Some(McpOAuthRefresh {
                client_id: "c".into(),
                token_endpoint: "https://auth.example.com/token".into(),
                token_endpoint_auth: TokenEndpointAuth::ClientSecretBasic,
                resource: None,
                scope: Some("read".into()),
            }),
        };
        assert_eq!(
            serde_json::to_value(&oauth).unwrap(),
            json!({
                "type": "mcp_oauth",
                "mcp_server_url": "https://mcp.example.com/mcp",
                "expires_at": null,
                "refresh": {
                    "client_id": "c",
                    "token_endpoint": "https://auth.example.com/token",
                    "token_endpoint_auth": {"type": "client_secret_basic"},
                    "resource": null,
                    "scope": "read"
                }
            })
        );
        let env = CredentialAuth::EnvironmentVariable {
            injection_location: InjectionLocation {
                body: false,
                header: true,
            },
            networking: CredentialNetworking::Limited {
                allowed_hosts: vec!["api.example.com".into()],
            },
            secret_name: "API_KEY".into(),
        };
        assert_eq!(
            serde_json::to_value(&env).unwrap(),
            json!({
                "type": "environment_variable",
                "injection_location": {"body": false, "header": true},
                "networking": {"type": "limited", "allowed_hosts": ["api.example.com"]},
                "secret_name": "API_KEY"
            })
        );
        assert_eq!(
            serde_json::to_value(CredentialNetworking::Unrestricted).unwrap(),
            json!({"type": "unrestricted"})
        );
        assert_eq!(
            serde_json::to_value(TokenEndpointAuth::None).unwrap(),
            json!({"type": "none"})
        );
    }

    #[test]
    fn auth_round_trips() {
        let a = CredentialAuth::StaticBearer {
            mcp_server_url: "https://x.example/mcp".into(),
        };
        let back: CredentialAuth =
            serde_json::from_value(serde_json::to_value(&a).unwrap()).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn deleted_shapes() {
        assert_eq!(
            serde_json::to_value(VaultDeleted::new("vlt_1")).unwrap(),
            json!({"id": "vlt_1", "type": "vault_deleted"})
        );
        assert_eq!(
            serde_json::to_value(CredentialDeleted::new("vcrd_1")).unwrap(),
            json!({"id": "vcrd_1", "type": "vault_credential_deleted"})
        );
    }
}
