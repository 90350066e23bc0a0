//! Tenants and API keys.

use sha2::{Digest, Sha256};

use oma_core::{Error, ids, time};

use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    pub id: String,
    pub tenant_id: String,
    pub name: Option<String>,
    pub key_prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

type KeyRow = (String, String, Option<String>, String, i64, Option<i64>);

/// What `create_tenant` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    AlreadyExisted,
}

/// SHA-256 hex of a presented key: the only form in which keys are stored or compared.
pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Tenant names are slugs: they appear in logs, URLs and blob keys.
pub fn validate_tenant_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid tenant name `{name}`: use 1-63 characters of a-z, 0-9, `-` and `_`, starting with a letter or digit"
        )))
    }
}

impl Store {
    pub async fn create_tenant(&self, name: &str) -> Result<Created> {
        validate_tenant_name(name)?;
        let done = sqlx::query(
            "INSERT INTO tenants (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(name)
        .bind(time::now_micros())
        .execute(self.writer())
        .await?;
        Ok(if done.rows_affected() == 1 {
            Created::New
        } else {
            Created::AlreadyExisted
        })
    }

    pub async fn tenant_exists(&self, name: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants WHERE id = $1")
            .bind(name)
            .fetch_one(self.reader())
            .await?;
        Ok(n > 0)
    }

    pub async fn list_tenants(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT id FROM tenants ORDER BY id")
            .fetch_all(self.reader())
            .await?)
    }

    /// Creates a key for an existing tenant and returns `(info, the key itself)`. The key is
    /// shown once; only its hash is kept.
    pub async fn create_api_key(
        &self,
        tenant: &str,
        name: Option<&str>,
    ) -> Result<(ApiKeyInfo, String)> {
        if !self.tenant_exists(tenant).await? {
            return Err(Error::not_found(format!(
                "tenant `{tenant}` does not exist: create it with `oma tenants create {tenant}`"
            ))
            .into());
        }
        let secret = oma_core::ids::random_bytes(32);
        let body: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let key = format!("sk-oma-{body}");
        let info = ApiKeyInfo {
            id: ids::new_id(ids::API_KEY),
            tenant_id: tenant.to_string(),
            name: name.map(str::to_string),
            key_prefix: key[..14].to_string(),
            created_at: time::now_micros(),
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, key_hash, key_prefix, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&info.id)
        .bind(&info.tenant_id)
        .bind(&info.name)
        .bind(hash_key(&key))
        .bind(&info.key_prefix)
        .bind(info.created_at)
        .execute(self.writer())
        .await?;
        Ok((info, key))
    }

    pub async fn list_api_keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKeyInfo>> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT id, tenant_id, name, key_prefix, created_at, revoked_at FROM api_keys \
             WHERE ($1 IS NULL OR tenant_id = $1) ORDER BY tenant_id, created_at",
        )
        .bind(tenant)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, tenant_id, name, key_prefix, created_at, revoked_at)| ApiKeyInfo {
                    id,
                    tenant_id,
                    name,
                    key_prefix,
                    created_at,
                    revoked_at,
                },
            )
            .collect())
    }

    /// Revokes a key by id. Revoking twice is harmless.
    pub async fn revoke_api_key(&self, key_id: &str) -> Result<()> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
                .bind(key_id)
                .bind(time::now_micros())
                .execute(self.writer())
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Domain(Error::not_found(format!(
                "API key `{key_id}` not found"
            ))));
        }
        Ok(())
    }

    /// The tenant and key id of a presented key, if it is a live key.
    pub async fn tenant_for_key_hash(&self, key_hash: &str) -> Result<Option<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT tenant_id, id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(self.reader())
        .await?)
    }
}
