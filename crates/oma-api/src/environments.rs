//! Wire types: environments (spec §3.2, §5.2).
//!
//! Response shapes only. Request params are parsed leniently into these by the rules in
//! `oma_core::environments`, which own validation and defaults, so every response carries a
//! fully resolved configuration (`networking` and `packages` always populated).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `BetaEnvironment`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Environment {
    pub id: String,
    /// Always `"environment"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub archived_at: Option<String>,
    pub config: EnvironmentConfig,
    pub created_at: String,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub name: String,
    pub updated_at: String,
    /// `"organization"` or `"account"`.
    pub scope: Option<String>,
}

/// `EnvironmentConfig`: `{"type":"cloud",…}` or `{"type":"self_hosted"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum EnvironmentConfig {
    /// `BetaCloudConfig`.
    #[serde(rename = "cloud")]
    Cloud {
        networking: CloudNetworking,
        packages: Packages,
    },
    /// `BetaSelfHostedConfig`.
    #[serde(rename = "self_hosted")]
    SelfHosted {},
}

impl EnvironmentConfig {
    /// The `type` literal of the variant.
    pub fn type_name(&self) -> &'static str {
        match self {
            EnvironmentConfig::Cloud { .. } => "cloud",
            EnvironmentConfig::SelfHosted {} => "self_hosted",
        }
    }
}

/// `CloudNetworking`: `BetaUnrestrictedNetwork` | `BetaLimitedNetwork`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum CloudNetworking {
    #[serde(rename = "unrestricted")]
    Unrestricted {},
    #[serde(rename = "limited")]
    Limited {
        allowed_hosts: Vec<String>,
        allow_mcp_servers: bool,
        allow_package_managers: bool,
    },
}

/// `BetaPackages`: every manager's list is always present (empty when unused).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Packages {
    /// Always `"packages"` in our responses (the SDK types it optional and nullable).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub apt: Vec<String>,
    pub cargo: Vec<String>,
    pub gem: Vec<String>,
    pub go: Vec<String>,
    pub npm: Vec<String>,
    pub pip: Vec<String>,
}

impl Default for Packages {
    fn default() -> Self {
        Self {
            kind: Some("packages".to_string()),
            apt: Vec::new(),
            cargo: Vec::new(),
            gem: Vec::new(),
            go: Vec::new(),
            npm: Vec::new(),
            pip: Vec::new(),
        }
    }
}

impl Packages {
    /// Whether any manager lists at least one package.
    pub fn is_empty(&self) -> bool {
        [
            &self.apt,
            &self.cargo,
            &self.gem,
            &self.go,
            &self.npm,
            &self.pip,
        ]
        .iter()
        .all(|l| l.is_empty())
    }
}

/// `BetaEnvironmentDeleteResponse`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct EnvironmentDeleted {
    pub id: String,
    /// Always `"environment_deleted"`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl EnvironmentDeleted {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            kind: "environment_deleted".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_serialises_with_type_tags_and_all_keys() {
        let cfg = EnvironmentConfig::Cloud {
            networking: CloudNetworking::Limited {
                allowed_hosts: vec!["api.example.com".into()],
                allow_mcp_servers: false,
                allow_package_managers: true,
            },
            packages: Packages {
                pip: vec!["requests".into()],
                ..Packages::default()
            },
        };
        assert_eq!(
            serde_json::to_value(&cfg).unwrap(),
            json!({
                "type": "cloud",
                "networking": {
                    "type": "limited",
                    "allowed_hosts": ["api.example.com"],
                    "allow_mcp_servers": false,
                    "allow_package_managers": true
                },
                "packages": {
                    "type": "packages", "apt": [], "cargo": [], "gem": [], "go": [],
                    "npm": [], "pip": ["requests"]
                }
            })
        );
        assert_eq!(
            serde_json::to_value(EnvironmentConfig::SelfHosted {}).unwrap(),
            json!({"type": "self_hosted"})
        );
        let unrestricted = serde_json::to_value(CloudNetworking::Unrestricted {}).unwrap();
        assert_eq!(unrestricted, json!({"type": "unrestricted"}));
    }

    #[test]
    fn config_round_trips() {
        let cfg = EnvironmentConfig::Cloud {
            networking: CloudNetworking::Unrestricted {},
            packages: Packages::default(),
        };
        let back: EnvironmentConfig =
            serde_json::from_value(serde_json::to_value(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
        let back: EnvironmentConfig =
            serde_json::from_value(json!({"type": "self_hosted"})).unwrap();
        assert_eq!(back, EnvironmentConfig::SelfHosted {});
    }

    #[test]
    fn deleted_shape() {
        assert_eq!(
            serde_json::to_value(EnvironmentDeleted::new("env_1")).unwrap(),
            json!({"id": "env_1", "type": "environment_deleted"})
        );
    }
}
