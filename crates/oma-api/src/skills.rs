//! Wire types: skills and skill versions (spec §3.6, §5.6).
//!
//! Creates are multipart (spec §2.8) and a version's content downloads as a zip (§2.10), so
//! the JSON shapes are the skill, its versions and the two deletion receipts.

use serde::{Deserialize, Serialize};

/// `type` of [`Skill`].
pub const SKILL_TYPE: &str = "skill";
/// `type` of [`SkillDeleted`].
pub const SKILL_DELETED_TYPE: &str = "skill_deleted";
/// `type` of [`SkillVersion`].
pub const SKILL_VERSION_TYPE: &str = "skill_version";
/// `type` of [`SkillVersionDeleted`].
pub const SKILL_VERSION_DELETED_TYPE: &str = "skill_version_deleted";

/// `BetaSkillSource.type` values. Skills created through the API are always `custom`.
pub const SOURCE_CUSTOM: &str = "custom";
pub const SOURCE_ANTHROPIC: &str = "anthropic";
pub const SOURCE_ANTHROPIC_EXAMPLE: &str = "anthropic_example";
pub const SOURCE_PLUGIN: &str = "plugin";
/// Every source the SDK accepts, for validating the list filter.
pub const SOURCES: [&str; 4] = [
    SOURCE_CUSTOM,
    SOURCE_ANTHROPIC,
    SOURCE_ANTHROPIC_EXAMPLE,
    SOURCE_PLUGIN,
];

/// `BetaSkill`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Skill {
    pub id: String,
    /// Always `"skill"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: String,
    pub display_name: String,
    pub latest_version_id: String,
    pub source: SkillSource,
    pub updated_at: String,
}

/// `BetaSkillSource`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct SkillSource {
    #[serde(rename = "type")]
    pub kind: String,
}

impl SkillSource {
    pub fn custom() -> Self {
        Self {
            kind: SOURCE_CUSTOM.to_string(),
        }
    }
}

/// `BetaDeletedSkill`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct SkillDeleted {
    pub id: String,
    /// Always `"skill_deleted"`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl SkillDeleted {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            kind: SKILL_DELETED_TYPE.to_string(),
        }
    }
}

/// `BetaSkillVersion`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct SkillVersion {
    pub id: String,
    /// Always `"skill_version"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: String,
    pub description: String,
    /// The skill's immutable kebab-case slug (also the top directory of its files).
    pub name: String,
    pub skill_id: String,
}

/// `BetaDeletedSkillVersion`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct SkillVersionDeleted {
    pub id: String,
    /// Always `"skill_version_deleted"`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl SkillVersionDeleted {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            kind: SKILL_VERSION_DELETED_TYPE.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let s = Skill {
            id: "skill_1".into(),
            kind: SKILL_TYPE.into(),
            created_at: "2026-01-02T03:04:05.000000Z".into(),
            display_name: "My skill".into(),
            latest_version_id: "skillver_1".into(),
            source: SkillSource::custom(),
            updated_at: "2026-01-02T03:04:05.000000Z".into(),
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["type"], "skill");
        assert_eq!(v["source"], serde_json::json!({"type": "custom"}));
        assert_eq!(v.as_object().unwrap().len(), 7);
        assert_eq!(
            serde_json::to_value(SkillDeleted::new("skill_1")).unwrap()["type"],
            "skill_deleted"
        );
        assert_eq!(
            serde_json::to_value(SkillVersionDeleted::new("skillver_1")).unwrap()["type"],
            "skill_version_deleted"
        );
    }
}
