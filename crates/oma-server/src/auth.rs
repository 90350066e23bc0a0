//! Authentication: an API key (`x-api-key` or `Authorization: Bearer`) names a tenant, and
//! the tenant names the store that holds its rows.
//!
//! Lookups are cached for a few seconds so a hot key costs no database round trip, while a key
//! revoked with `oma keys revoke` (possibly from another process) stops working within
//! `CACHE_TTL`. The bootstrap key from `OMA_API_KEY` belongs to tenant `default`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use oma_core::Error;
use oma_store::{Store, tenants::hash_key};

use crate::error::ApiError;
use crate::state::AppState;

const CACHE_TTL: Duration = Duration::from_secs(2);
const CACHE_MAX: usize = 10_000;
pub const DEFAULT_TENANT: &str = "default";
/// The key id writes made with the bootstrap key (`OMA_API_KEY`) are attributed to.
pub const BOOTSTRAP_KEY_ID: &str = "apikey_bootstrap";

/// Who a key belongs to: its tenant and the key's own id (for attribution).
#[derive(Debug, Clone)]
pub struct KeyOwner {
    pub tenant: Arc<str>,
    pub key_id: Arc<str>,
}

#[derive(Default)]
pub struct AuthCache {
    bootstrap_hash: Option<String>,
    entries: RwLock<HashMap<String, (Option<KeyOwner>, Instant)>>,
}

impl AuthCache {
    pub fn new(bootstrap_key: Option<&str>) -> Self {
        Self {
            bootstrap_hash: bootstrap_key.filter(|k| !k.is_empty()).map(hash_key),
            entries: RwLock::default(),
        }
    }

    /// The owner of a presented key, or `None` for an unknown or revoked key.
    pub async fn owner_of(&self, store: &Store, key: &str) -> Result<Option<KeyOwner>, ApiError> {
        let hash = hash_key(key);
        if self.bootstrap_hash.as_deref() == Some(hash.as_str()) {
            return Ok(Some(KeyOwner {
                tenant: Arc::from(DEFAULT_TENANT),
                key_id: Arc::from(BOOTSTRAP_KEY_ID),
            }));
        }
        if let Ok(map) = self.entries.read()
            && let Some((owner, at)) = map.get(&hash)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(owner.clone());
        }
        let owner = store
            .tenant_for_key_hash(&hash)
            .await?
            .map(|(tenant, key_id)| KeyOwner {
                tenant: Arc::from(tenant),
                key_id: Arc::from(key_id),
            });
        if let Ok(mut map) = self.entries.write() {
            if map.len() >= CACHE_MAX {
                map.clear();
            }
            map.insert(hash, (owner.clone(), Instant::now()));
        }
        Ok(owner)
    }
}

/// The authenticated caller: its tenant, the key it used, and the store that holds the
/// tenant's rows.
#[derive(Clone)]
pub struct Tenant {
    pub id: Arc<str>,
    pub key_id: Arc<str>,
    pub store: Arc<Store>,
}

impl Tenant {
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The key presented on a request, if any.
pub fn presented_key(parts: &Parts) -> Option<&str> {
    if let Some(k) = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(k.trim());
    }
    let auth = parts.headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = presented_key(parts).filter(|k| !k.is_empty()).ok_or_else(|| {
            ApiError(Error::unauthenticated(
                "missing API key: send it as `x-api-key: <key>` or `Authorization: Bearer <key>`",
            ))
        })?;
        let owner = state
            .auth
            .owner_of(state.tenants.control(), key)
            .await?
            .ok_or_else(|| ApiError(Error::unauthenticated("invalid API key")))?;
        let store = state.tenants.store_for(&owner.tenant).clone();
        Ok(Tenant {
            id: owner.tenant,
            key_id: owner.key_id,
            store,
        })
    }
}
