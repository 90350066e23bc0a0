//! Storage: vaults and their credentials (spec §3.4).
//!
//! A credential row holds its public API object (`body`) and, in a separate column, its secrets
//! sealed with the server's root secret under the associated data `"{tenant}/{credential id}"`.
//! Plaintext secrets exist only in memory: they are sealed before any statement is built and
//! opened only by [`Store::open_credential_secrets`] (for the egress proxy) or inside an update
//! that replaces some of them. Archiving purges the sealed secrets and keeps the record.

use oma_api::vaults::{Credential, Vault};
use oma_core::credentials::{
    self as rules, CredentialSecrets, CredentialSpec, MAX_CREDENTIALS_PER_VAULT,
    UpdateCredentialParams, UpdateVaultParams, VaultSpec, secrets_aad,
};
use oma_core::seal::Sealer;
use oma_core::{Patch, ids, time};

use sqlx::AssertSqlSafe;

use crate::{ListQuery, Listed, Result, Store, StoreError, from_json, to_json};

type VaultRow = (i64, i64, Option<i64>, String);
type CredentialRow = (i64, Option<i64>, String, Option<String>);

impl Store {
    // -----------------------------------------------------------------------------------------
    // Vaults
    // -----------------------------------------------------------------------------------------

    pub async fn create_vault(&self, tenant: &str, spec: &VaultSpec) -> Result<String> {
        let id = ids::new_id(ids::VAULT);
        let now = time::now_micros();
        let body = to_json(&spec.to_object(&id, now, now, None))?;
        sqlx::query(
            "INSERT INTO vaults (id, tenant_id, created_at, updated_at, archived_at, body) \
             VALUES ($1, $2, $3, $3, NULL, $4)",
        )
        .bind(&id)
        .bind(tenant)
        .bind(now)
        .bind(&body)
        .execute(self.writer())
        .await?;
        Ok(body)
    }

    pub async fn get_vault(&self, tenant: &str, id: &str) -> Result<String> {
        let body = self
            .body_of(crate::rows::BodyTable::Vaults, tenant, id)
            .await?;
        Ok(body.ok_or_else(|| rules::vault_not_found(id))?)
    }

    /// Applies an update. Archived vaults are read-only.
    pub async fn update_vault(
        &self,
        tenant: &str,
        id: &str,
        params: UpdateVaultParams,
    ) -> Result<String> {
        let mut tx = self.writer().begin().await?;
        let row: Option<VaultRow> = sqlx::query_as(
            "SELECT created_at, updated_at, archived_at, body FROM vaults WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let (created_at, _updated_at, archived_at, body) =
            row.ok_or_else(|| rules::vault_not_found(id))?;
        if archived_at.is_some() {
            return Err(rules::vault_archived(id).into());
        }
        let current = VaultSpec::from_object(&from_json::<Vault>(&body)?);
        let next = current.update(params)?;
        if next == current {
            return Ok(body);
        }
        let now = time::now_micros();
        let new_body = to_json(&next.to_object(id, created_at, now, None))?;
        sqlx::query(
            "UPDATE vaults SET updated_at = $1, body = $2 WHERE tenant_id = $3 AND id = $4",
        )
        .bind(now)
        .bind(&new_body)
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(new_body)
    }

    /// Archives a vault and, with it, every active credential in it (purging their secrets).
    /// Idempotent: archiving again keeps the first time.
    pub async fn archive_vault(&self, tenant: &str, id: &str) -> Result<String> {
        let mut tx = self.writer().begin().await?;
        let row: Option<VaultRow> = sqlx::query_as(
            "SELECT created_at, updated_at, archived_at, body FROM vaults WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let (created_at, updated_at, archived_at, body) =
            row.ok_or_else(|| rules::vault_not_found(id))?;
        if archived_at.is_some() {
            return Ok(body);
        }
        let now = time::now_micros();
        let spec = VaultSpec::from_object(&from_json::<Vault>(&body)?);
        let new_body = to_json(&spec.to_object(id, created_at, updated_at, Some(now)))?;
        sqlx::query(
            "UPDATE vaults SET archived_at = $1, body = $2 WHERE tenant_id = $3 AND id = $4",
        )
        .bind(now)
        .bind(&new_body)
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let active: Vec<(String, i64, i64, String)> = sqlx::query_as(
            "SELECT id, created_at, updated_at, body FROM vault_credentials \
             WHERE tenant_id = $1 AND vault_id = $2 AND archived_at IS NULL",
        )
        .bind(tenant)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        for (cred_id, c_created, c_updated, c_body) in active {
            let cred = CredentialSpec::from_object(&from_json::<Credential>(&c_body)?);
            let c_body = to_json(&cred.to_object(&cred_id, id, c_created, c_updated, Some(now)))?;
            archive_credential_row(&mut tx, tenant, &cred_id, now, &c_body).await?;
        }
        tx.commit().await?;
        Ok(new_body)
    }

    /// Deletes a vault and every credential in it.
    pub async fn delete_vault(&self, tenant: &str, id: &str) -> Result<()> {
        let mut tx = self.writer().begin().await?;
        sqlx::query("DELETE FROM vault_credentials WHERE tenant_id = $1 AND vault_id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM vaults WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(rules::vault_not_found(id).into());
        }
        tx.commit().await?;
        Ok(())
    }

    /// Vaults, newest first by default; archived ones only when asked for.
    pub async fn list_vaults(
        &self,
        tenant: &str,
        include_archived: bool,
        q: &ListQuery,
    ) -> Result<Listed> {
        let sql = format!(
            "SELECT created_at, id, body FROM vaults WHERE tenant_id = $1 \
             AND ($2 = 1 OR archived_at IS NULL) AND {} {} LIMIT $5",
            q.after_clause("created_at", "id", 3),
            q.order_clause("created_at", "id"),
        );
        let (k, i) = q.after_binds();
        let rows: Vec<(i64, String, String)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(i64::from(include_archived))
            .bind(k)
            .bind(i)
            .bind(q.fetch_limit())
            .fetch_all(self.reader())
            .await?;
        Ok(Listed::from_rows(q, rows))
    }

    /// `archived_at` of a vault (`None` while active); 404 when it does not exist.
    pub async fn vault_archived_at(&self, tenant: &str, id: &str) -> Result<Option<i64>> {
        let row: Option<Option<i64>> =
            sqlx::query_scalar("SELECT archived_at FROM vaults WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .fetch_optional(self.reader())
                .await?;
        Ok(row.ok_or_else(|| rules::vault_not_found(id))?)
    }

    // -----------------------------------------------------------------------------------------
    // Credentials
    // -----------------------------------------------------------------------------------------

    /// Creates a credential in an active vault; its secrets are sealed before they are written.
    pub async fn create_credential(
        &self,
        tenant: &str,
        vault_id: &str,
        spec: &CredentialSpec,
        secrets: &CredentialSecrets,
        sealer: &Sealer,
    ) -> Result<String> {
        let mut tx = self.writer().begin().await?;
        // A no-op write on the vault row: on PostgreSQL it holds the row lock until commit, so
        // concurrent creates in one vault serialise and the count below cannot be outrun (SQLite
        // has a single writer already).
        let vault: Option<Option<i64>> = sqlx::query_scalar(
            "UPDATE vaults SET updated_at = updated_at WHERE tenant_id = $1 AND id = $2 RETURNING archived_at",
        )
        .bind(tenant)
        .bind(vault_id)
        .fetch_optional(&mut *tx)
        .await?;
        match vault {
            None => return Err(rules::vault_not_found(vault_id).into()),
            Some(Some(_)) => return Err(rules::vault_archived(vault_id).into()),
            Some(None) => {}
        }
        let key = spec.key();
        let (active, same_key): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN credential_key = $3 THEN 1 ELSE 0 END), 0) \
             FROM vault_credentials WHERE tenant_id = $1 AND vault_id = $2 AND archived_at IS NULL",
        )
        .bind(tenant)
        .bind(vault_id)
        .bind(&key)
        .fetch_one(&mut *tx)
        .await?;
        if same_key > 0 {
            return Err(rules::duplicate_key(spec).into());
        }
        if active >= MAX_CREDENTIALS_PER_VAULT as i64 {
            return Err(rules::too_many_credentials().into());
        }
        let id = ids::new_id(ids::CREDENTIAL);
        let now = time::now_micros();
        let body = to_json(&spec.to_object(&id, vault_id, now, now, None))?;
        let sealed = seal(sealer, tenant, &id, secrets)?;
        let inserted = sqlx::query(
            "INSERT INTO vault_credentials \
             (id, tenant_id, vault_id, created_at, updated_at, archived_at, credential_key, body, secrets) \
             VALUES ($1, $2, $3, $4, $4, NULL, $5, $6, $7)",
        )
        .bind(&id)
        .bind(tenant)
        .bind(vault_id)
        .bind(now)
        .bind(&key)
        .bind(&body)
        .bind(&sealed)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from);
        match inserted {
            // The partial unique index is the backstop for the check above.
            Err(e) if e.is_unique_violation() => return Err(rules::duplicate_key(spec).into()),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        tx.commit().await?;
        Ok(body)
    }

    pub async fn get_credential(&self, tenant: &str, vault_id: &str, id: &str) -> Result<String> {
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body FROM vault_credentials WHERE tenant_id = $1 AND vault_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(vault_id)
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        Ok(body.ok_or_else(|| rules::credential_not_found(id))?)
    }

    /// Applies an update. Secrets are opened only when `auth` is given (it may replace some of
    /// them and keep the others) and re-sealed only when they changed.
    pub async fn update_credential(
        &self,
        tenant: &str,
        vault_id: &str,
        id: &str,
        params: UpdateCredentialParams,
        sealer: &Sealer,
    ) -> Result<String> {
        let mut tx = self.writer().begin().await?;
        let row: Option<CredentialRow> = sqlx::query_as(
            "SELECT created_at, archived_at, body, secrets FROM vault_credentials \
             WHERE tenant_id = $1 AND vault_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(vault_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let (created_at, archived_at, body, sealed) =
            row.ok_or_else(|| rules::credential_not_found(id))?;
        if archived_at.is_some() {
            return Err(rules::credential_archived(id).into());
        }
        let current = CredentialSpec::from_object(&from_json::<Credential>(&body)?);
        let touches_secrets = matches!(params.auth, Patch::Value(_));
        let secrets = match (&sealed, touches_secrets) {
            (Some(sealed), true) => open(sealer, tenant, id, sealed)?,
            _ => CredentialSecrets::default(),
        };
        let now = time::now_micros();
        let (next, next_secrets) = current.update(&secrets, params, now)?;
        let secrets_changed = touches_secrets && next_secrets != secrets;
        if next == current && !secrets_changed {
            return Ok(body);
        }
        let new_body = to_json(&next.to_object(id, vault_id, created_at, now, None))?;
        if secrets_changed {
            let resealed = seal(sealer, tenant, id, &next_secrets)?;
            sqlx::query(
                "UPDATE vault_credentials SET updated_at = $1, body = $2, secrets = $3 \
                 WHERE tenant_id = $4 AND id = $5",
            )
            .bind(now)
            .bind(&new_body)
            .bind(&resealed)
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query("UPDATE vault_credentials SET updated_at = $1, body = $2 WHERE tenant_id = $3 AND id = $4")
                .bind(now)
                .bind(&new_body)
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(new_body)
    }

    /// Archives a credential: its secrets are purged and its key is freed for a replacement.
    /// Idempotent: archiving again keeps the first time.
    pub async fn archive_credential(
        &self,
        tenant: &str,
        vault_id: &str,
        id: &str,
    ) -> Result<String> {
        let mut tx = self.writer().begin().await?;
        let row: Option<(i64, i64, Option<i64>, String)> = sqlx::query_as(
            "SELECT created_at, updated_at, archived_at, body FROM vault_credentials \
             WHERE tenant_id = $1 AND vault_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(vault_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let (created_at, updated_at, archived_at, body) =
            row.ok_or_else(|| rules::credential_not_found(id))?;
        if archived_at.is_some() {
            return Ok(body);
        }
        let now = time::now_micros();
        let spec = CredentialSpec::from_object(&from_json::<Credential>(&body)?);
        let new_body = to_json(&spec.to_object(id, vault_id, created_at, updated_at, Some(now)))?;
        archive_credential_row(&mut tx, tenant, id, now, &new_body).await?;
        tx.commit().await?;
        Ok(new_body)
    }

    pub async fn delete_credential(&self, tenant: &str, vault_id: &str, id: &str) -> Result<()> {
        let done = sqlx::query(
            "DELETE FROM vault_credentials WHERE tenant_id = $1 AND vault_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(vault_id)
        .bind(id)
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            return Err(rules::credential_not_found(id).into());
        }
        Ok(())
    }

    /// A vault's credentials, newest first by default; archived ones only when asked for.
    pub async fn list_credentials(
        &self,
        tenant: &str,
        vault_id: &str,
        include_archived: bool,
        q: &ListQuery,
    ) -> Result<Listed> {
        self.vault_archived_at(tenant, vault_id).await?;
        let sql = format!(
            "SELECT created_at, id, body FROM vault_credentials WHERE tenant_id = $1 AND vault_id = $2 \
             AND ($3 = 1 OR archived_at IS NULL) AND {} {} LIMIT $6",
            q.after_clause("created_at", "id", 4),
            q.order_clause("created_at", "id"),
        );
        let (k, i) = q.after_binds();
        let rows: Vec<(i64, String, String)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(vault_id)
            .bind(i64::from(include_archived))
            .bind(k)
            .bind(i)
            .bind(q.fetch_limit())
            .fetch_all(self.reader())
            .await?;
        Ok(Listed::from_rows(q, rows))
    }

    /// The active credentials of a vault with their public settings (for matching MCP servers
    /// and environment variables at session runtime), oldest first.
    pub async fn active_credentials(
        &self,
        tenant: &str,
        vault_id: &str,
    ) -> Result<Vec<(String, CredentialSpec)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, body FROM vault_credentials \
             WHERE tenant_id = $1 AND vault_id = $2 AND archived_at IS NULL ORDER BY created_at, id",
        )
        .bind(tenant)
        .bind(vault_id)
        .fetch_all(self.reader())
        .await?;
        rows.into_iter()
            .map(|(id, body)| {
                Ok((
                    id,
                    CredentialSpec::from_object(&from_json::<Credential>(&body)?),
                ))
            })
            .collect()
    }

    /// The opened secrets of a credential, for the egress proxy. `None` once the credential is
    /// archived (its secrets were purged). The result must never be logged or returned by the
    /// API.
    pub async fn open_credential_secrets(
        &self,
        tenant: &str,
        vault_id: &str,
        credential_id: &str,
        sealer: &Sealer,
    ) -> Result<Option<CredentialSecrets>> {
        let row: Option<(Option<i64>, Option<String>)> = sqlx::query_as(
            "SELECT archived_at, secrets FROM vault_credentials WHERE tenant_id = $1 AND vault_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(vault_id)
        .bind(credential_id)
        .fetch_optional(self.reader())
        .await?;
        match row.ok_or_else(|| rules::credential_not_found(credential_id))? {
            (None, Some(sealed)) => Ok(Some(open(sealer, tenant, credential_id, &sealed)?)),
            _ => Ok(None),
        }
    }

    /// Like [`Store::open_credential_secrets`], with the sealed text the secrets came from: the
    /// version to hand to [`Store::swap_credential_secrets`].
    pub async fn open_credential_secrets_versioned(
        &self,
        tenant: &str,
        vault_id: &str,
        credential_id: &str,
        sealer: &Sealer,
    ) -> Result<Option<(CredentialSecrets, String)>> {
        let row: Option<(Option<i64>, Option<String>)> = sqlx::query_as(
            "SELECT archived_at, secrets FROM vault_credentials WHERE tenant_id = $1 AND vault_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(vault_id)
        .bind(credential_id)
        .fetch_optional(self.writer())
        .await?;
        match row.ok_or_else(|| rules::credential_not_found(credential_id))? {
            (None, Some(sealed)) => Ok(Some((
                open(sealer, tenant, credential_id, &sealed)?,
                sealed,
            ))),
            _ => Ok(None),
        }
    }

    /// Compare-and-swap of an active credential's secrets (an OAuth refresh writing its new
    /// token back): replaces them only while the stored sealed text is still `expected`, and
    /// sets the public `expires_at` of an `mcp_oauth` credential. `false` when another writer
    /// got there first (or the credential was archived); the caller then re-reads.
    #[allow(clippy::too_many_arguments)]
    pub async fn swap_credential_secrets(
        &self,
        tenant: &str,
        vault_id: &str,
        id: &str,
        expected: &str,
        next: &CredentialSecrets,
        expires_at: Option<String>,
        sealer: &Sealer,
    ) -> Result<bool> {
        let mut tx = self.writer().begin().await?;
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT created_at, body FROM vault_credentials \
             WHERE tenant_id = $1 AND vault_id = $2 AND id = $3 AND archived_at IS NULL AND secrets = $4",
        )
        .bind(tenant)
        .bind(vault_id)
        .bind(id)
        .bind(expected)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((created_at, body)) = row else {
            return Ok(false);
        };
        let mut spec = CredentialSpec::from_object(&from_json::<Credential>(&body)?);
        if let oma_api::vaults::CredentialAuth::McpOAuth { expires_at: e, .. } = &mut spec.auth {
            *e = expires_at;
        }
        let now = time::now_micros();
        let new_body = to_json(&spec.to_object(id, vault_id, created_at, now, None))?;
        let sealed = seal(sealer, tenant, id, next)?;
        // The `secrets = $expected` guard makes the write itself the comparison: of two
        // concurrent swaps from the same version exactly one updates a row.
        let done = sqlx::query(
            "UPDATE vault_credentials SET updated_at = $1, body = $2, secrets = $3 \
             WHERE tenant_id = $4 AND id = $5 AND archived_at IS NULL AND secrets = $6",
        )
        .bind(now)
        .bind(&new_body)
        .bind(&sealed)
        .bind(tenant)
        .bind(id)
        .bind(expected)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// Marks a credential archived, purging its sealed secrets.
async fn archive_credential_row(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: &str,
    id: &str,
    now: i64,
    body: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE vault_credentials SET archived_at = $1, secrets = NULL, body = $2 WHERE tenant_id = $3 AND id = $4",
    )
    .bind(now)
    .bind(body)
    .bind(tenant)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn seal(sealer: &Sealer, tenant: &str, id: &str, secrets: &CredentialSecrets) -> Result<String> {
    Ok(sealer.seal(&secrets_aad(tenant, id), &secrets.to_plaintext()?)?)
}

fn open(sealer: &Sealer, tenant: &str, id: &str, sealed: &str) -> Result<CredentialSecrets> {
    let plain = sealer.open(&secrets_aad(tenant, id), sealed)?;
    Ok(CredentialSecrets::from_plaintext(&plain)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oma_core::credentials::{CreateCredentialParams, CreateVaultParams};
    use serde_json::{Value, json};

    /// SQLite always; PostgreSQL too when `OMA_TEST_DATABASE_URL` is set. Tenants are unique
    /// per run, so a shared database is fine.
    async fn stores() -> Vec<(Option<tempfile::TempDir>, Store)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("oma.db").display());
        let mut out = vec![(Some(dir), Store::connect(&url).await.expect("connect"))];
        match std::env::var("OMA_TEST_DATABASE_URL") {
            Ok(u) if !u.is_empty() => {
                out.push((None, Store::connect(&u).await.expect("connect pg")))
            }
            _ => {
                eprintln!("note: OMA_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant")
            }
        }
        for (_, s) in &out {
            s.migrate_up().await.expect("migrate");
        }
        out
    }

    fn tenant() -> String {
        ids::new_id("tvault")
    }

    fn sealer() -> Sealer {
        Sealer::from_root_secret(&[7u8; 32]).expect("sealer")
    }

    fn cred(v: Value) -> (CredentialSpec, CredentialSecrets) {
        let p: CreateCredentialParams = serde_json::from_value(v).expect("params");
        CredentialSpec::create(p, time::now_micros()).expect("valid")
    }

    fn env_cred(name: &str) -> (CredentialSpec, CredentialSecrets) {
        cred(
            json!({"auth": {"type": "environment_variable", "secret_name": name, "secret_value": "v",
            "networking": {"type": "unrestricted"}}}),
        )
    }

    async fn vault(store: &Store, t: &str) -> Vault {
        let spec = VaultSpec::create(
            serde_json::from_value::<CreateVaultParams>(json!({"display_name": "v"})).expect("p"),
        )
        .expect("spec");
        serde_json::from_str(&store.create_vault(t, &spec).await.expect("create")).expect("json")
    }

    #[tokio::test]
    async fn secrets_are_sealed_on_disk_and_open_for_the_proxy() {
        for (dir, store) in stores().await {
            let s = sealer();
            let t = tenant();
            let vault = vault(&store, &t).await;
            let (spec, secrets) = cred(json!({"auth": {"type": "static_bearer",
                "mcp_server_url": "https://mcp.example.com", "token": "plaintext-needle-42"}}));
            let body = store
                .create_credential(&t, &vault.id, &spec, &secrets, &s)
                .await
                .unwrap();
            assert!(!body.contains("plaintext-needle-42"));
            let c: Credential = serde_json::from_str(&body).unwrap();

            let opened = store
                .open_credential_secrets(&t, &vault.id, &c.id, &s)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(opened.token.as_deref(), Some("plaintext-needle-42"));
            // Another tenant cannot reach it, and a sealed value does not open under another id.
            assert!(
                store
                    .open_credential_secrets("other", &vault.id, &c.id, &s)
                    .await
                    .is_err()
            );
            let sealed: String =
                sqlx::query_scalar("SELECT secrets FROM vault_credentials WHERE id = $1")
                    .bind(&c.id)
                    .fetch_one(store.reader())
                    .await
                    .unwrap();
            assert!(s.open(&secrets_aad(&t, "vcrd_other"), &sealed).is_err());

            // Rotation replaces the secret and re-seals; a metadata-only update leaves it alone.
            let p: UpdateCredentialParams = serde_json::from_value(
                json!({"auth": {"type": "static_bearer", "token": "plaintext-needle-43"}}),
            )
            .unwrap();
            store
                .update_credential(&t, &vault.id, &c.id, p, &s)
                .await
                .unwrap();
            let p: UpdateCredentialParams =
                serde_json::from_value(json!({"metadata": {"k": "v"}})).unwrap();
            store
                .update_credential(&t, &vault.id, &c.id, p, &s)
                .await
                .unwrap();
            let opened = store
                .open_credential_secrets(&t, &vault.id, &c.id, &s)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(opened.token.as_deref(), Some("plaintext-needle-43"));

            store.close().await;
            if let Some(dir) = dir {
                for entry in std::fs::read_dir(dir.path()).unwrap() {
                    let bytes = std::fs::read(entry.unwrap().path()).unwrap();
                    let hay = String::from_utf8_lossy(&bytes);
                    assert!(
                        !hay.contains("plaintext-needle"),
                        "plaintext reached the database files"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn secrets_swap_only_from_the_version_read() {
        for (_dir, store) in stores().await {
            let s = sealer();
            let t = tenant();
            let vault = vault(&store, &t).await;
            let (spec, secrets) = cred(json!({"auth": {"type": "mcp_oauth",
                "mcp_server_url": "https://mcp.example.com", "access_token": "a0",
                "refresh": {"client_id": "c", "refresh_token": "r0",
                    "token_endpoint": "https://auth.example.com/token",
                    "token_endpoint_auth": {"type": "none"}}}}));
            let c: Credential = serde_json::from_str(
                &store
                    .create_credential(&t, &vault.id, &spec, &secrets, &s)
                    .await
                    .unwrap(),
            )
            .unwrap();
            let (read, version) = store
                .open_credential_secrets_versioned(&t, &vault.id, &c.id, &s)
                .await
                .unwrap()
                .unwrap();
            let mut next = read.clone();
            next.access_token = Some("a1".into());
            let expiry = Some("2030-01-01T00:00:00Z".to_string());
            assert!(
                store
                    .swap_credential_secrets(
                        &t,
                        &vault.id,
                        &c.id,
                        &version,
                        &next,
                        expiry.clone(),
                        &s
                    )
                    .await
                    .unwrap()
            );
            // A second writer from the same version loses and changes nothing.
            next.access_token = Some("a2".into());
            assert!(
                !store
                    .swap_credential_secrets(&t, &vault.id, &c.id, &version, &next, None, &s)
                    .await
                    .unwrap()
            );
            let now = store
                .open_credential_secrets(&t, &vault.id, &c.id, &s)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(now.access_token.as_deref(), Some("a1"));
            assert_eq!(now.refresh_token.as_deref(), Some("r0"));
            let body: Credential =
                serde_json::from_str(&store.get_credential(&t, &vault.id, &c.id).await.unwrap())
                    .unwrap();
            assert!(matches!(
                body.auth,
                oma_api::vaults::CredentialAuth::McpOAuth {
                    expires_at: Some(_),
                    ..
                }
            ));
            // Another tenant cannot swap it.
            let (_, v2) = store
                .open_credential_secrets_versioned(&t, &vault.id, &c.id, &s)
                .await
                .unwrap()
                .unwrap();
            assert!(
                !store
                    .swap_credential_secrets("other", &vault.id, &c.id, &v2, &next, None, &s)
                    .await
                    .unwrap()
            );
        }
    }

    #[tokio::test]
    async fn archive_purges_and_frees_the_key_and_counts_are_capped() {
        for (_dir, store) in stores().await {
            let s = sealer();
            let t = tenant();
            let vault = vault(&store, &t).await;
            let (spec, secrets) = env_cred("A");
            let c: Credential = serde_json::from_str(
                &store
                    .create_credential(&t, &vault.id, &spec, &secrets, &s)
                    .await
                    .unwrap(),
            )
            .unwrap();
            let dup = store
                .create_credential(&t, &vault.id, &spec, &secrets, &s)
                .await
                .unwrap_err();
            assert!(
                matches!(dup, StoreError::Domain(ref e) if e.kind == oma_core::ErrorKind::Conflict),
                "{dup:?}"
            );

            // The partial unique index backs the check up, and both backends report it as such.
            let raw = sqlx::query(
                "INSERT INTO vault_credentials (id, tenant_id, vault_id, created_at, updated_at, credential_key, body) \
                 VALUES ($1, $2, $3, 0, 0, $4, '{}')",
            )
            .bind(ids::new_id(ids::CREDENTIAL))
            .bind(&t)
            .bind(&vault.id)
            .bind(spec.key())
            .execute(store.writer())
            .await
            .map_err(StoreError::from)
            .unwrap_err();
            assert!(raw.is_unique_violation(), "{raw:?}");

            store
                .archive_credential(&t, &vault.id, &c.id)
                .await
                .unwrap();
            assert!(
                store
                    .open_credential_secrets(&t, &vault.id, &c.id, &s)
                    .await
                    .unwrap()
                    .is_none()
            );
            store
                .create_credential(&t, &vault.id, &spec, &secrets, &s)
                .await
                .unwrap();

            for i in 1..MAX_CREDENTIALS_PER_VAULT {
                let (spec, secrets) = env_cred(&format!("V{i}"));
                store
                    .create_credential(&t, &vault.id, &spec, &secrets, &s)
                    .await
                    .unwrap();
            }
            let (spec, secrets) = env_cred("OVER");
            assert!(
                store
                    .create_credential(&t, &vault.id, &spec, &secrets, &s)
                    .await
                    .is_err()
            );
            assert_eq!(
                store.active_credentials(&t, &vault.id).await.unwrap().len(),
                MAX_CREDENTIALS_PER_VAULT
            );

            // Archiving the vault cascades and purges every secret; deleting removes the rows.
            store.archive_vault(&t, &vault.id).await.unwrap();
            assert!(
                store
                    .active_credentials(&t, &vault.id)
                    .await
                    .unwrap()
                    .is_empty()
            );
            let unpurged: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM vault_credentials WHERE vault_id = $1 AND secrets IS NOT NULL")
                    .bind(&vault.id)
                    .fetch_one(store.reader())
                    .await
                    .unwrap();
            assert_eq!(unpurged, 0);
            let (spec, secrets) = env_cred("LATE");
            assert!(
                store
                    .create_credential(&t, &vault.id, &spec, &secrets, &s)
                    .await
                    .is_err()
            );
            store.delete_vault(&t, &vault.id).await.unwrap();
            let left: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM vault_credentials WHERE vault_id = $1")
                    .bind(&vault.id)
                    .fetch_one(store.reader())
                    .await
                    .unwrap();
            assert_eq!(left, 0);
            assert!(store.get_vault(&t, &vault.id).await.is_err());
        }
    }
}
