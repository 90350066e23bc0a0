//! Storage: skills and skill versions (spec §3.6).
//!
//! A version's files live in the blob store, one blob per file; its row keeps the manifest
//! (path, size, content type, blob key). Callers write the blobs before creating the version
//! and delete them after the rows are gone (the delete methods return the keys), so a crash
//! can leave only unreferenced blobs, never a version with missing files.
//!
//! Every change to a skill's set of versions starts by touching the skill's row. That takes the
//! row lock on PostgreSQL (the write lock on SQLite) before anything is read, so concurrent
//! version creates and deletes on one skill serialise and `latest_version_id` always names the
//! newest surviving version.

use oma_api::skills::{
    SKILL_TYPE, SKILL_VERSION_TYPE, SOURCE_CUSTOM, Skill, SkillSource,
    SkillVersion as SkillVersionObject,
};
use oma_core::skills::{SkillMeta, VersionRef};
use oma_core::{Error, time};
use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;

use crate::{ListQuery, Listed, Result, Store, from_json, to_json};

/// One file of a skill version, as recorded in the version's manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SkillFile {
    /// Path below the skill's directory (`SKILL.md`, `scripts/a.py`).
    pub path: String,
    pub size_bytes: i64,
    pub mime_type: String,
    /// Blob key of the file's bytes.
    pub blob: String,
}

/// A version about to be recorded; its blobs are already written.
#[derive(Debug, Clone)]
pub struct NewSkillVersion {
    pub id: String,
    pub meta: SkillMeta,
    pub files: Vec<SkillFile>,
}

/// A resolved version with its files, for downloads and for mounting into sessions.
#[derive(Debug, Clone)]
pub struct StoredSkillVersion {
    pub id: String,
    pub skill_id: String,
    pub name: String,
    pub created_at: i64,
    pub files: Vec<SkillFile>,
}

type SkillRow = (String, i64, String, String, i64, String);

impl Store {
    /// Creates a skill with its first version. Returns the skill object as JSON.
    pub async fn create_skill(
        &self,
        tenant: &str,
        skill_id: &str,
        display_name: &str,
        v: &NewSkillVersion,
    ) -> Result<String> {
        let now = time::now_micros();
        let mut tx = self.writer().begin().await?;
        sqlx::query(
            "INSERT INTO skills (id, tenant_id, name, display_name, source, latest_version_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(skill_id)
        .bind(tenant)
        .bind(&v.meta.name)
        .bind(display_name)
        .bind(SOURCE_CUSTOM)
        .bind(&v.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_version(&mut tx, tenant, skill_id, now, v).await?;
        tx.commit().await?;
        to_json(&skill_object(
            skill_id,
            now,
            display_name,
            &v.id,
            now,
            SOURCE_CUSTOM,
        ))
    }

    /// The skill's immutable name, which every new version must keep.
    pub async fn skill_name(&self, tenant: &str, skill_id: &str) -> Result<String> {
        let name: Option<String> =
            sqlx::query_scalar("SELECT name FROM skills WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(skill_id)
                .fetch_optional(self.reader())
                .await?;
        Ok(name.ok_or_else(|| missing(skill_id))?)
    }

    /// Adds a version, which becomes the latest. Returns the version object as JSON.
    pub async fn create_skill_version(
        &self,
        tenant: &str,
        skill_id: &str,
        v: &NewSkillVersion,
    ) -> Result<String> {
        let mut tx = self.writer().begin().await?;
        lock_skill(&mut tx, tenant, skill_id).await?;
        let name: String =
            sqlx::query_scalar("SELECT name FROM skills WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(skill_id)
                .fetch_one(&mut *tx)
                .await?;
        oma_core::skills::check_same_name(&name, &v.meta)?;
        // Taken after the lock, so a version created later always carries a later time.
        let now = time::now_micros();
        let body = insert_version(&mut tx, tenant, skill_id, now, v).await?;
        sqlx::query("UPDATE skills SET latest_version_id = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4")
            .bind(&v.id)
            .bind(now)
            .bind(tenant)
            .bind(skill_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(body)
    }

    /// The skill object, as JSON.
    pub async fn get_skill(&self, tenant: &str, skill_id: &str) -> Result<String> {
        let row: Option<SkillRow> = sqlx::query_as(
            "SELECT id, created_at, display_name, latest_version_id, updated_at, source FROM skills \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(skill_id)
        .fetch_optional(self.reader())
        .await?;
        let (id, created_at, display_name, latest, updated_at, source) =
            row.ok_or_else(|| missing(skill_id))?;
        to_json(&skill_object(
            &id,
            created_at,
            &display_name,
            &latest,
            updated_at,
            &source,
        ))
    }

    /// Skills newest first (or as the cursor says), optionally of one `source` only.
    pub async fn list_skills(
        &self,
        tenant: &str,
        source: Option<&str>,
        q: &ListQuery,
    ) -> Result<Listed> {
        let sql = format!(
            "SELECT id, created_at, display_name, latest_version_id, updated_at, source FROM skills \
             WHERE tenant_id = $1 AND ($2 IS NULL OR source = $2) AND {} {} LIMIT $5",
            q.after_clause("created_at", "id", 3),
            q.order_clause("created_at", "id"),
        );
        let (k, i) = q.after_binds();
        let rows: Vec<SkillRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(source)
            .bind(k)
            .bind(i)
            .bind(q.fetch_limit())
            .fetch_all(self.reader())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, created_at, display_name, latest, updated_at, source) in rows {
            let body = to_json(&skill_object(
                &id,
                created_at,
                &display_name,
                &latest,
                updated_at,
                &source,
            ))?;
            out.push((created_at, id, body));
        }
        Ok(Listed::from_rows(q, out))
    }

    /// Deletes a skill together with all its versions. Returns every file of every version, so
    /// the caller can delete the blobs once the rows are gone.
    pub async fn delete_skill(&self, tenant: &str, skill_id: &str) -> Result<Vec<SkillFile>> {
        let mut tx = self.writer().begin().await?;
        lock_skill(&mut tx, tenant, skill_id).await?;
        let manifests: Vec<String> = sqlx::query_scalar(
            "SELECT files FROM skill_versions WHERE tenant_id = $1 AND skill_id = $2",
        )
        .bind(tenant)
        .bind(skill_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut files = Vec::new();
        for m in manifests {
            files.extend(from_json::<Vec<SkillFile>>(&m)?);
        }
        sqlx::query("DELETE FROM skill_versions WHERE tenant_id = $1 AND skill_id = $2")
            .bind(tenant)
            .bind(skill_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM skills WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(skill_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(files)
    }

    /// A version object, as JSON.
    pub async fn get_skill_version(
        &self,
        tenant: &str,
        skill_id: &str,
        r: &VersionRef,
    ) -> Result<String> {
        let (_, body, _, _) = self.find_version(tenant, skill_id, r).await?;
        Ok(body)
    }

    /// A version with its files.
    pub async fn skill_version_files(
        &self,
        tenant: &str,
        skill_id: &str,
        r: &VersionRef,
    ) -> Result<StoredSkillVersion> {
        let (id, body, created_at, files) = self.find_version(tenant, skill_id, r).await?;
        let obj: SkillVersionObject = from_json(&body)?;
        Ok(StoredSkillVersion {
            id,
            skill_id: skill_id.to_string(),
            name: obj.name,
            created_at,
            files: from_json(&files)?,
        })
    }

    async fn find_version(
        &self,
        tenant: &str,
        skill_id: &str,
        r: &VersionRef,
    ) -> Result<(String, String, i64, String)> {
        let cond = match r {
            VersionRef::Latest => "v.id = s.latest_version_id",
            VersionRef::Id(_) => "v.id = $3",
            VersionRef::Epoch(_) => "v.created_at = $3",
        };
        let sql = format!(
            "SELECT v.id, v.body, v.created_at, v.files FROM skills s \
             JOIN skill_versions v ON v.skill_id = s.id AND v.tenant_id = s.tenant_id \
             WHERE s.tenant_id = $1 AND s.id = $2 AND {cond} ORDER BY v.created_at DESC, v.id DESC LIMIT 1"
        );
        let query = bind_ref(
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(tenant)
                .bind(skill_id),
            r,
        );
        let row: Option<(String, String, i64, String)> =
            query.fetch_optional(self.reader()).await?;
        match row {
            Some(row) => Ok(row),
            None => {
                // Say which of the two is missing: the skill, or the version of an existing skill.
                self.skill_name(tenant, skill_id).await?;
                Err(not_a_version(skill_id, r).into())
            }
        }
    }

    /// Versions of a skill, newest first (or as the cursor says).
    pub async fn list_skill_versions(
        &self,
        tenant: &str,
        skill_id: &str,
        q: &ListQuery,
    ) -> Result<Listed> {
        self.skill_name(tenant, skill_id).await?;
        let sql = format!(
            "SELECT created_at, id, body FROM skill_versions WHERE tenant_id = $1 AND skill_id = $2 \
             AND {} {} LIMIT $5",
            q.after_clause("created_at", "id", 3),
            q.order_clause("created_at", "id"),
        );
        let (k, i) = q.after_binds();
        let rows: Vec<(i64, String, String)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(skill_id)
            .bind(k)
            .bind(i)
            .bind(q.fetch_limit())
            .fetch_all(self.reader())
            .await?;
        Ok(Listed::from_rows(q, rows))
    }

    /// Deletes one version and returns its id and files (for blob deletion). The skill's latest
    /// version moves to the newest remaining one. A skill's only version cannot be deleted: a
    /// skill always holds at least one version (its `latest_version_id` is never null), so the
    /// way to remove the last version is to delete the skill.
    pub async fn delete_skill_version(
        &self,
        tenant: &str,
        skill_id: &str,
        r: &VersionRef,
    ) -> Result<(String, Vec<SkillFile>)> {
        let mut tx = self.writer().begin().await?;
        lock_skill(&mut tx, tenant, skill_id).await?;
        let cond = match r {
            VersionRef::Id(_) => "id = $3",
            VersionRef::Epoch(_) => "created_at = $3",
            VersionRef::Latest => {
                return Err(Error::invalid(
                    "`latest` cannot be deleted: name the version by its id",
                )
                .into());
            }
        };
        let sql = format!(
            "SELECT id, files FROM skill_versions WHERE tenant_id = $1 AND skill_id = $2 AND {cond} \
             ORDER BY created_at DESC, id DESC LIMIT 1"
        );
        let query = bind_ref(
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(tenant)
                .bind(skill_id),
            r,
        );
        let row: Option<(String, String)> = query.fetch_optional(&mut *tx).await?;
        let (version_id, files) = row.ok_or_else(|| not_a_version(skill_id, r))?;
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM skill_versions WHERE tenant_id = $1 AND skill_id = $2",
        )
        .bind(tenant)
        .bind(skill_id)
        .fetch_one(&mut *tx)
        .await?;
        if count <= 1 {
            return Err(Error::invalid(format!(
                "`{version_id}` is the only version of skill `{skill_id}`: a skill keeps at least one \
                 version, so delete the skill itself instead"
            ))
            .into());
        }
        sqlx::query("DELETE FROM skill_versions WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(&version_id)
            .execute(&mut *tx)
            .await?;
        let latest: String = sqlx::query_scalar(
            "SELECT id FROM skill_versions WHERE tenant_id = $1 AND skill_id = $2 \
             ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(tenant)
        .bind(skill_id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("UPDATE skills SET latest_version_id = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4")
            .bind(&latest)
            .bind(time::now_micros())
            .bind(tenant)
            .bind(skill_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((version_id, from_json(&files)?))
    }
}

/// Takes the skill's row lock for the rest of the transaction (a no-op write; see the module
/// docs), failing with 404 when the skill does not exist for this tenant.
async fn lock_skill(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: &str,
    skill_id: &str,
) -> Result<()> {
    let done =
        sqlx::query("UPDATE skills SET updated_at = updated_at WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(skill_id)
            .execute(&mut **tx)
            .await?;
    if done.rows_affected() == 0 {
        return Err(missing(skill_id).into());
    }
    Ok(())
}

async fn insert_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: &str,
    skill_id: &str,
    now: i64,
    v: &NewSkillVersion,
) -> Result<String> {
    let obj = SkillVersionObject {
        id: v.id.clone(),
        kind: SKILL_VERSION_TYPE.to_string(),
        created_at: time::format_micros(now),
        description: v.meta.description.clone(),
        name: v.meta.name.clone(),
        skill_id: skill_id.to_string(),
    };
    let body = to_json(&obj)?;
    let size: i64 = v.files.iter().map(|f| f.size_bytes).sum();
    sqlx::query(
        "INSERT INTO skill_versions (id, tenant_id, skill_id, created_at, size_bytes, files, body) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&v.id)
    .bind(tenant)
    .bind(skill_id)
    .bind(now)
    .bind(size)
    .bind(to_json(&v.files)?)
    .bind(&body)
    .execute(&mut **tx)
    .await?;
    Ok(body)
}

fn skill_object(
    id: &str,
    created_at: i64,
    display_name: &str,
    latest: &str,
    updated_at: i64,
    source: &str,
) -> Skill {
    Skill {
        id: id.to_string(),
        kind: SKILL_TYPE.to_string(),
        created_at: time::format_micros(created_at),
        display_name: display_name.to_string(),
        latest_version_id: latest.to_string(),
        source: SkillSource {
            kind: source.to_string(),
        },
        updated_at: time::format_micros(updated_at),
    }
}

/// Binds `$3` of a version lookup: the id or the epoch (nothing for `latest`).
fn bind_ref<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments>,
    r: &VersionRef,
) -> sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments> {
    match r {
        VersionRef::Latest => q,
        VersionRef::Id(id) => q.bind(id.clone()),
        VersionRef::Epoch(at) => q.bind(*at),
    }
}

fn not_a_version(skill_id: &str, r: &VersionRef) -> Error {
    let shown = match r {
        VersionRef::Latest => "latest".to_string(),
        VersionRef::Id(id) => id.clone(),
        VersionRef::Epoch(at) => at.to_string(),
    };
    Error::not_found(format!("skill `{skill_id}` has no version `{shown}`"))
}

fn missing(id: &str) -> Error {
    Error::missing("skill", id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::test_db::{backends, open, unique};

    fn version(id: &str, name: &str) -> NewSkillVersion {
        NewSkillVersion {
            id: id.into(),
            meta: SkillMeta {
                name: name.into(),
                description: format!("{id} description"),
            },
            files: vec![SkillFile {
                path: "SKILL.md".into(),
                size_bytes: 10,
                mime_type: "text/markdown".into(),
                blob: format!("skills/t/s/{id}/0"),
            }],
        }
    }

    #[tokio::test]
    async fn versions_latest_and_deletes() {
        for b in backends() {
            let db = open(b).await;
            let s = &db.store;
            let u = unique();
            let (t1, t2) = (format!("a-{u}"), format!("b-{u}"));
            let sk = format!("skill_{u}");
            let v = |n: u32| format!("skillver_{u}_{n}");
            let body = s
                .create_skill(&t1, &sk, "My Skill", &version(&v(1), "my-skill"))
                .await
                .unwrap();
            let skill: Skill = serde_json::from_str(&body).unwrap();
            assert_eq!(skill.latest_version_id, v(1));
            assert_eq!(skill.source.kind, "custom");
            assert_eq!(skill.display_name, "My Skill");
            assert_eq!(s.get_skill(&t1, &sk).await.unwrap(), body);
            assert!(s.get_skill(&t2, &sk).await.is_err());

            // A new version must keep the name.
            assert!(
                s.create_skill_version(&t1, &sk, &version(&v(9), "other"))
                    .await
                    .is_err()
            );
            s.create_skill_version(&t1, &sk, &version(&v(2), "my-skill"))
                .await
                .unwrap();
            let skill: Skill = serde_json::from_str(&s.get_skill(&t1, &sk).await.unwrap()).unwrap();
            assert_eq!(skill.latest_version_id, v(2));
            assert!(
                s.create_skill_version(&t2, &sk, &version(&v(8), "my-skill"))
                    .await
                    .is_err()
            );

            let latest = s
                .skill_version_files(&t1, &sk, &VersionRef::Latest)
                .await
                .unwrap();
            assert_eq!(latest.id, v(2));
            assert_eq!(latest.name, "my-skill");
            assert_eq!(latest.files.len(), 1);
            let by_epoch = s
                .skill_version_files(&t1, &sk, &VersionRef::Epoch(latest.created_at))
                .await
                .unwrap();
            assert_eq!(by_epoch.id, v(2));
            let v1 = s
                .get_skill_version(&t1, &sk, &VersionRef::Id(v(1)))
                .await
                .unwrap();
            assert!(v1.contains(&format!("{} description", v(1))));
            let err = s
                .get_skill_version(&t1, &sk, &VersionRef::Id(v(7)))
                .await
                .unwrap_err();
            assert!(err.to_string().contains("has no version"));
            assert!(
                s.get_skill_version(&t2, &sk, &VersionRef::Latest)
                    .await
                    .is_err()
            );

            let page = s
                .list_skill_versions(&t1, &sk, &ListQuery::new(1, true, None))
                .await
                .unwrap();
            assert_eq!(page.items.len(), 1);
            assert!(page.items[0].contains(&v(2)));
            let page2 = s
                .list_skill_versions(&t1, &sk, &ListQuery::new(1, true, page.next))
                .await
                .unwrap();
            assert!(page2.items[0].contains(&v(1)));
            assert!(page2.next.is_none());

            // Deleting the latest moves `latest` back; the last version cannot be deleted.
            assert!(
                s.delete_skill_version(&t1, &sk, &VersionRef::Latest)
                    .await
                    .is_err()
            );
            assert!(
                s.delete_skill_version(&t2, &sk, &VersionRef::Id(v(2)))
                    .await
                    .is_err()
            );
            let (id, files) = s
                .delete_skill_version(&t1, &sk, &VersionRef::Id(v(2)))
                .await
                .unwrap();
            assert_eq!(id, v(2));
            assert_eq!(files.len(), 1);
            let skill: Skill = serde_json::from_str(&s.get_skill(&t1, &sk).await.unwrap()).unwrap();
            assert_eq!(skill.latest_version_id, v(1));
            let err = s
                .delete_skill_version(&t1, &sk, &VersionRef::Id(v(1)))
                .await
                .unwrap_err();
            assert!(err.to_string().contains("only version"));

            assert!(s.delete_skill(&t2, &sk).await.is_err());
            let files = s.delete_skill(&t1, &sk).await.unwrap();
            assert_eq!(files.len(), 1);
            assert!(s.get_skill(&t1, &sk).await.is_err());
            assert!(
                s.list_skill_versions(&t1, &sk, &ListQuery::new(10, true, None))
                    .await
                    .is_err()
            );
        }
    }

    #[tokio::test]
    async fn list_by_source() {
        for b in backends() {
            let db = open(b).await;
            let s = &db.store;
            let u = unique();
            let (t1, t2) = (format!("a-{u}"), format!("b-{u}"));
            for n in 1..=3 {
                s.create_skill(
                    &t1,
                    &format!("skill_{u}_{n}"),
                    "d",
                    &version(&format!("skillver_{u}_{n}"), "n"),
                )
                .await
                .unwrap();
            }
            let q = ListQuery::new(2, true, None);
            let page = s.list_skills(&t1, None, &q).await.unwrap();
            assert_eq!(page.items.len(), 2);
            let page2 = s
                .list_skills(&t1, None, &ListQuery::new(2, true, page.next))
                .await
                .unwrap();
            assert_eq!(page2.items.len(), 1);
            assert!(page2.next.is_none());
            assert_eq!(
                s.list_skills(&t1, Some("custom"), &q)
                    .await
                    .unwrap()
                    .items
                    .len(),
                2
            );
            assert!(
                s.list_skills(&t1, Some("anthropic"), &q)
                    .await
                    .unwrap()
                    .items
                    .is_empty()
            );
            assert!(s.list_skills(&t2, None, &q).await.unwrap().items.is_empty());
        }
    }
}
