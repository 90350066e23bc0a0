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
use oma_core::work;
use oma_store::work::{EnvironmentKeyOwner, SessionsTokenOwner};
use oma_store::{Store, TenantRouter, tenants::hash_key};

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

/// What a presented key turned out to be.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A tenant's API key: the whole API of its tenant.
    ApiKey(KeyOwner),
    /// A self-hosted environment's key: its work queue's worker endpoints, and the event
    /// endpoints of its sessions.
    EnvironmentKey(EnvironmentKeyOwner),
    /// A work item's sessions token (from its `secret`): that item's heartbeat and stop, and
    /// its session's reads and events.
    SessionsToken {
        tenant: Arc<str>,
        owner: SessionsTokenOwner,
    },
}

#[derive(Default)]
pub struct AuthCache {
    bootstrap_hash: Option<String>,
    entries: RwLock<HashMap<String, (Option<Credential>, Instant)>>,
}

impl AuthCache {
    pub fn new(bootstrap_key: Option<&str>) -> Self {
        Self {
            bootstrap_hash: bootstrap_key.filter(|k| !k.is_empty()).map(hash_key),
            entries: RwLock::default(),
        }
    }

    /// The owner of a presented API key, or `None` for an unknown or revoked key (or a key of
    /// another kind).
    pub async fn owner_of(&self, store: &Store, key: &str) -> Result<Option<KeyOwner>, ApiError> {
        let hash = hash_key(key);
        if self.bootstrap_hash.as_deref() == Some(hash.as_str()) {
            return Ok(Some(KeyOwner {
                tenant: Arc::from(DEFAULT_TENANT),
                key_id: Arc::from(BOOTSTRAP_KEY_ID),
            }));
        }
        let found = self
            .cached(&hash, || async {
                Ok(store
                    .tenant_for_key_hash(&hash)
                    .await?
                    .map(|(tenant, key_id)| {
                        Credential::ApiKey(KeyOwner {
                            tenant: Arc::from(tenant),
                            key_id: Arc::from(key_id),
                        })
                    }))
            })
            .await?;
        Ok(match found {
            Some(Credential::ApiKey(owner)) => Some(owner),
            _ => None,
        })
    }

    /// What a presented key is: an API key, an environment key or a sessions token (told apart
    /// by their prefixes), or `None` when it is none of them (unknown, revoked, or a token of
    /// a work item that stopped or was handed to another worker).
    pub async fn credential_of(
        &self,
        tenants: &TenantRouter,
        key: &str,
    ) -> Result<Option<Credential>, ApiError> {
        if key.starts_with(work::ENVIRONMENT_KEY_PREFIX) {
            let hash = hash_key(key);
            // The key's row lives with its tenant, on whichever shard that is.
            let shards = tenants.shards();
            return self
                .cached(&hash, || async {
                    for shard in &shards {
                        if let Some(owner) = shard.store.environment_key_owner(&hash).await? {
                            return Ok(Some(Credential::EnvironmentKey(owner)));
                        }
                    }
                    Ok(None)
                })
                .await;
        }
        if let Some(tenant) = work::sessions_token_tenant(key) {
            let hash = hash_key(key);
            // Not cached: a token dies the moment its item stops or is polled again, and
            // only one worker's calls carry it.
            let store = tenants.store_for(tenant);
            return Ok(store
                .sessions_token_owner(tenant, &hash)
                .await?
                .map(|owner| Credential::SessionsToken {
                    tenant: Arc::from(tenant),
                    owner,
                }));
        }
        Ok(self
            .owner_of(tenants.control(), key)
            .await?
            .map(Credential::ApiKey))
    }

    /// A lookup by key hash, remembered for `CACHE_TTL` (so a revocation, or a token replaced
    /// by a newer poll, takes effect within that time).
    async fn cached<F, Fut>(&self, hash: &str, lookup: F) -> Result<Option<Credential>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<Credential>, oma_store::StoreError>>,
    {
        if let Ok(map) = self.entries.read()
            && let Some((found, at)) = map.get(hash)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(found.clone());
        }
        let found = lookup().await?;
        if let Ok(mut map) = self.entries.write() {
            if map.len() >= CACHE_MAX {
                map.clear();
            }
            map.insert(hash.to_string(), (found.clone(), Instant::now()));
        }
        Ok(found)
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

    /// Only API keys: environment keys and sessions tokens are refused here (the few routes
    /// that take them extract a [`Caller`]).
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        match caller.credential {
            CallerKind::ApiKey => Ok(caller.tenant),
            CallerKind::EnvironmentKey { .. } => Err(ApiError(Error::forbidden(
                "an environment key is accepted only by its environment's work queue endpoints \
                 (poll, ack, heartbeat, list) and by the event endpoints of its sessions; use an \
                 API key here",
            ))),
            CallerKind::SessionsToken { .. } => Err(ApiError(Error::forbidden(
                "a work item's sessions token is accepted only by that item's heartbeat and stop, \
                 its session's retrieve and event endpoints, the memories of the session's \
                 memory stores and its agent's skills; use an API key here",
            ))),
        }
    }
}

/// Which kind of credential authenticated a [`Caller`], with what it is limited to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerKind {
    ApiKey,
    EnvironmentKey {
        environment_id: String,
    },
    SessionsToken {
        environment_id: String,
        work_id: String,
        session_id: String,
    },
}

/// Any authenticated caller: an API key, an environment key or a sessions token. Routes that
/// accept more than API keys take this and narrow it with the `for_*` methods, which say in
/// the refusal what the credential is good for.
#[derive(Clone)]
pub struct Caller {
    pub tenant: Tenant,
    pub credential: CallerKind,
}

impl FromRequestParts<AppState> for Caller {
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
        let found = state.auth.credential_of(&state.tenants, key).await?;
        let (tenant, key_id, credential) = match found {
            None if key.starts_with(work::SESSIONS_TOKEN_PREFIX) => {
                return Err(ApiError(Error::unauthenticated(
                    "invalid sessions token: its work item stopped, or a newer poll handed the \
                     item to another worker",
                )));
            }
            None if key.starts_with(work::ENVIRONMENT_KEY_PREFIX) => {
                return Err(ApiError(Error::unauthenticated(
                    "invalid environment key: unknown or revoked",
                )));
            }
            None => return Err(ApiError(Error::unauthenticated("invalid API key"))),
            Some(Credential::ApiKey(owner)) => (owner.tenant, owner.key_id, CallerKind::ApiKey),
            Some(Credential::EnvironmentKey(owner)) => (
                Arc::from(owner.tenant_id.as_str()),
                Arc::from(owner.key_id.as_str()),
                CallerKind::EnvironmentKey {
                    environment_id: owner.environment_id,
                },
            ),
            Some(Credential::SessionsToken { tenant, owner }) => (
                tenant,
                Arc::from(owner.work_id.as_str()),
                CallerKind::SessionsToken {
                    environment_id: owner.environment_id,
                    work_id: owner.work_id,
                    session_id: owner.session_id,
                },
            ),
        };
        let store = state.tenants.store_for(&tenant).clone();
        crate::moving::note_tenant(parts, &tenant);
        Ok(Caller {
            tenant: Tenant {
                id: tenant,
                key_id,
                store,
            },
            credential,
        })
    }
}

impl Caller {
    /// For the worker endpoints of `environment_id`'s queue (poll, ack, list): its
    /// environment key only.
    pub fn for_environment_worker(self, environment_id: &str) -> Result<Tenant, ApiError> {
        match &self.credential {
            CallerKind::EnvironmentKey { environment_id: e } if e == environment_id => {
                Ok(self.tenant)
            }
            CallerKind::EnvironmentKey { .. } => Err(ApiError(Error::forbidden(format!(
                "this environment key belongs to another environment, not `{environment_id}`"
            )))),
            CallerKind::ApiKey => Err(ApiError(Error::forbidden(format!(
                "this endpoint takes the environment key of `{environment_id}` as a Bearer token, \
                 not an API key: create one with `oma environments keys create {environment_id}`"
            )))),
            CallerKind::SessionsToken { .. } => Err(ApiError(Error::forbidden(
                "a sessions token is accepted only for its own work item's heartbeat and stop; \
                 poll with the environment key",
            ))),
        }
    }

    /// For one work item's lifecycle calls: its sessions token, and the environment key and/or
    /// API key when the endpoint takes them (heartbeat: environment key; stop: API key).
    pub fn for_work_item(
        self,
        environment_id: &str,
        work_id: &str,
        environment_key: bool,
        api_key: bool,
    ) -> Result<Tenant, ApiError> {
        let ok = match &self.credential {
            CallerKind::SessionsToken {
                environment_id: e,
                work_id: w,
                ..
            } => {
                if e != environment_id || w != work_id {
                    return Err(ApiError(Error::forbidden(format!(
                        "this sessions token belongs to another work item, not `{work_id}`"
                    ))));
                }
                true
            }
            CallerKind::EnvironmentKey { environment_id: e } => {
                environment_key && e == environment_id
            }
            CallerKind::ApiKey => api_key,
        };
        if ok {
            return Ok(self.tenant);
        }
        let takes = match (environment_key, api_key) {
            (true, true) => "the item's sessions token, the environment key or an API key",
            (true, false) => "the item's sessions token or the environment's key",
            (false, true) => "an API key or the item's sessions token",
            (false, false) => "the item's sessions token",
        };
        Err(ApiError(Error::forbidden(format!(
            "this endpoint takes {takes}"
        ))))
    }

    /// For reading a skill's versions and files: an API key, or the sessions token of a
    /// session whose agent uses the skill (the worker installs it next to the workspace).
    pub async fn for_skill(self, skill_id: &str) -> Result<Tenant, ApiError> {
        let session_id = match &self.credential {
            CallerKind::ApiKey => return Ok(self.tenant),
            CallerKind::EnvironmentKey { .. } => {
                return Err(ApiError(Error::forbidden(
                    "skills take an API key or a work item's sessions token, not an \
                     environment key",
                )));
            }
            CallerKind::SessionsToken { session_id, .. } => session_id.clone(),
        };
        let session = self.token_session(&session_id).await?;
        let uses = session
            .pointer("/agent/skills")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .any(|s| s.get("skill_id").and_then(serde_json::Value::as_str) == Some(skill_id));
        if uses {
            Ok(self.tenant)
        } else {
            Err(ApiError(Error::forbidden(format!(
                "skill `{skill_id}` is not used by the agent of session `{session_id}`, the only \
                 session this sessions token is for"
            ))))
        }
    }

    /// The session a sessions token is for, as its API object.
    async fn token_session(&self, session_id: &str) -> Result<serde_json::Value, ApiError> {
        let body = self
            .tenant
            .store
            .get_session(self.tenant.id(), session_id)
            .await?;
        serde_json::from_str(&body)
            .map_err(|e| ApiError(Error::internal(format!("unreadable session: {e}"))))
    }

    /// For the memories of store `store_id`: an API key, or the sessions token of a session
    /// that has the store attached (the worker mounts and syncs it; `write` needs
    /// `read_write` access). Also says which session writes, for the versions' `created_by`.
    pub async fn for_memory_store(
        self,
        store_id: &str,
        write: bool,
    ) -> Result<(Tenant, Option<String>), ApiError> {
        let session_id = match &self.credential {
            CallerKind::ApiKey => return Ok((self.tenant, None)),
            CallerKind::EnvironmentKey { .. } => {
                return Err(ApiError(Error::forbidden(
                    "memory stores take an API key or a work item's sessions token, not an \
                     environment key",
                )));
            }
            CallerKind::SessionsToken { session_id, .. } => session_id.clone(),
        };
        let session = self.token_session(&session_id).await?;
        let attached = session
            .get("resources")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .find(|r| {
                r.get("type").and_then(serde_json::Value::as_str) == Some("memory_store")
                    && r.get("memory_store_id").and_then(serde_json::Value::as_str)
                        == Some(store_id)
            });
        let Some(attached) = attached else {
            return Err(ApiError(Error::forbidden(format!(
                "memory store `{store_id}` is not attached to session `{session_id}`, the only \
                 session this sessions token is for"
            ))));
        };
        let read_only =
            attached.get("access").and_then(serde_json::Value::as_str) == Some("read_only");
        if write && read_only {
            return Err(ApiError(Error::forbidden(format!(
                "memory store `{store_id}` is attached to session `{session_id}` read-only"
            ))));
        }
        Ok((self.tenant, Some(session_id)))
    }

    /// For a session's own reads and events: an API key, the sessions token of a work item of
    /// this session, or the key of the session's (self-hosted) environment.
    pub async fn for_session(self, session_id: &str) -> Result<Tenant, ApiError> {
        match &self.credential {
            CallerKind::ApiKey => Ok(self.tenant),
            CallerKind::SessionsToken { session_id: s, .. } if s == session_id => Ok(self.tenant),
            CallerKind::SessionsToken { .. } => Err(ApiError(Error::forbidden(format!(
                "this sessions token belongs to another session, not `{session_id}`"
            )))),
            CallerKind::EnvironmentKey { environment_id } => {
                let env = self
                    .tenant
                    .store
                    .session_environment_id(self.tenant.id(), session_id)
                    .await?;
                if env.as_deref() == Some(environment_id.as_str()) {
                    Ok(self.tenant)
                } else {
                    Err(ApiError(Error::forbidden(format!(
                        "this environment key is not for the environment of session `{session_id}`"
                    ))))
                }
            }
        }
    }
}
