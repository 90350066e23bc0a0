//! The agent's skills, extracted from the skills store and mounted read-only at
//! `/home/user/.skills/<name>/`; each one's SKILL.md also goes into the system prompt.

use std::collections::HashSet;
use std::path::Path;

use oma_api::agents::AgentSkill;
use oma_blob::BlobStore;
use oma_core::skills::{SKILL_MD, parse_version_ref};
use oma_store::Store;
use oma_store::skills::SkillFile;
use serde_json::Value;

use super::MountError;
use super::tree::Tree;

/// Where skills appear in the box.
pub(crate) const SKILLS_DIR: &str = "/home/user/.skills";

/// One skill of the agent, resolved to a version.
#[derive(Debug, Clone)]
pub(crate) struct SkillMount {
    /// The folder name: the skill's name (made unique among the session's skills).
    pub name: String,
    pub skill_id: String,
    pub version_id: String,
    pub skill_md: String,
    files: Vec<SkillFile>,
}

impl SkillMount {
    pub(crate) fn target(&self) -> String {
        format!("{SKILLS_DIR}/{}", self.name)
    }

    /// Writes the skill's files into `dir` unless that version is already there (a version
    /// never changes, so a marker with its id is enough).
    pub(crate) async fn materialize(
        &self,
        blobs: &BlobStore,
        dir: &Path,
        marker: &Path,
    ) -> Result<(), MountError> {
        if std::fs::read_to_string(marker).is_ok_and(|v| v == self.version_id) && dir.exists() {
            return Ok(());
        }
        let tree = Tree::open(dir)?;
        tree.clear()?;
        for f in &self.files {
            let bytes = blobs.get(&f.blob).await?;
            tree.write(&f.path, &bytes)?;
        }
        if let Some(parent) = marker.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(marker, &self.version_id)?;
        Ok(())
    }
}

/// The custom skills of an agent snapshot, with their SKILL.md. Skills that cannot be
/// resolved are left out with a warning each (returned for the log).
pub(crate) async fn resolve(
    store: &Store,
    blobs: Option<&BlobStore>,
    tenant: &str,
    agent: &Value,
) -> (Vec<SkillMount>, Vec<String>) {
    let skills: Vec<AgentSkill> = agent
        .get("skills")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    let mut out: Vec<SkillMount> = Vec::new();
    let mut warnings = Vec::new();
    let mut ids = HashSet::new();
    let mut names = HashSet::new();
    for skill in skills {
        if !ids.insert(skill.skill_id().to_string()) {
            continue;
        }
        let AgentSkill::Custom { skill_id, version } = &skill else {
            // Anthropic's prebuilt skills ship with Anthropic's platform; oma has no files
            // for them and does not pretend to.
            warnings.push(format!(
                "the Anthropic skill `{}` is not available on this server and is left out",
                skill.skill_id()
            ));
            continue;
        };
        let Some(blobs) = blobs else {
            warnings.push(format!(
                "skill `{skill_id}` is left out: the server has no blob storage attached"
            ));
            continue;
        };
        let found = match parse_version_ref(version, true) {
            Ok(r) => store.skill_version_files(tenant, skill_id, &r).await,
            Err(e) => Err(e.into()),
        };
        let v = match found {
            Ok(v) => v,
            Err(e) => {
                warnings.push(format!(
                    "skill `{skill_id}` version `{version}` is left out: {e}"
                ));
                continue;
            }
        };
        let Some(md) = v.files.iter().find(|f| f.path == SKILL_MD) else {
            warnings.push(format!(
                "skill `{skill_id}` has no {SKILL_MD} and is left out"
            ));
            continue;
        };
        let skill_md = match blobs.get(&md.blob).await {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                warnings.push(format!(
                    "skill `{skill_id}`: its {SKILL_MD} cannot be read: {e}"
                ));
                continue;
            }
        };
        let mut name = v.name.clone();
        let mut n = 2;
        while !names.insert(name.clone()) {
            name = format!("{}-{n}", v.name);
            n += 1;
        }
        out.push(SkillMount {
            name,
            skill_id: skill_id.clone(),
            version_id: v.id,
            skill_md,
            files: v.files,
        });
    }
    (out, warnings)
}
