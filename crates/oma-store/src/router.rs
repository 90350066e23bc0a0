//! The tenant router: which database holds a tenant's data.
//!
//! The router database (`database_url`) holds the tenants, their keys and the shard map
//! (`shards`); it is also the shard `main`. Every request resolves its store through
//! [`TenantRouter::store_for`], so a tenant moved to another shard is found there without any
//! caller knowing. The map is re-read on a timer ([`TenantRouter::start_refresher`]) and at
//! once when a write meets a moved tenant's fence ([`TenantRouter::wait_until_writable`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::shards::{MAIN_SHARD, ShardRow};
use crate::{Result, Store, StoreError};

/// One shard and its store.
#[derive(Debug, Clone)]
pub struct ShardStore {
    pub name: String,
    pub store: Arc<Store>,
}

#[derive(Debug, Clone)]
pub struct TenantRouter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    control: Arc<Store>,
    /// Shard name → store (`main` is `control`).
    shards: RwLock<HashMap<String, Arc<Store>>>,
    /// Tenant → shard, for the tenants that do not live on `main`.
    routes: RwLock<HashMap<String, String>>,
    /// Whether the map comes from the router database (`open`) or is fixed (`single`).
    sharded: bool,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl TenantRouter {
    /// Every tenant in the one database (tests, tools), with no shard map.
    pub fn single(store: Store) -> Self {
        let control = Arc::new(store);
        let shards = HashMap::from([(MAIN_SHARD.to_string(), control.clone())]);
        Self {
            inner: Arc::new(Inner {
                control,
                shards: RwLock::new(shards),
                routes: RwLock::default(),
                sharded: false,
            }),
        }
    }

    /// The router over `control` (migrated) and every shard it lists. Fails, naming the
    /// shard, when one cannot be reached or its schema is not this binary's.
    pub async fn open(control: Store) -> Result<Self> {
        control.ensure_main_shard().await?;
        let router = Self {
            inner: Arc::new(Inner {
                shards: RwLock::new(HashMap::from([(
                    MAIN_SHARD.to_string(),
                    Arc::new(control.clone()),
                )])),
                control: Arc::new(control),
                routes: RwLock::default(),
                sharded: true,
            }),
        };
        router.refresh().await?;
        Ok(router)
    }

    /// The store holding `tenant`'s rows.
    pub fn store_for(&self, tenant: &str) -> Arc<Store> {
        let shard = self.shard_of(tenant);
        read(&self.inner.shards)
            .get(&shard)
            .cloned()
            .unwrap_or_else(|| self.inner.control.clone())
    }

    /// The name of the shard holding `tenant` (as last read from the router database).
    pub fn shard_of(&self, tenant: &str) -> String {
        read(&self.inner.routes)
            .get(tenant)
            .cloned()
            .unwrap_or_else(|| MAIN_SHARD.to_string())
    }

    /// The store that holds tenants and keys (the router database).
    pub fn control(&self) -> &Arc<Store> {
        &self.inner.control
    }

    /// Every shard, `main` first: sweeps and lease renewals visit each.
    pub fn shards(&self) -> Vec<ShardStore> {
        let mut out: Vec<ShardStore> = read(&self.inner.shards)
            .iter()
            .map(|(name, store)| ShardStore {
                name: name.clone(),
                store: store.clone(),
            })
            .collect();
        out.sort_by_key(|s| (s.name != MAIN_SHARD, s.name.clone()));
        out
    }

    /// Re-reads the shard map; connects shards added since.
    pub async fn refresh(&self) -> Result<()> {
        if !self.inner.sharded {
            return Ok(());
        }
        let rows = self.inner.control.shards().await?;
        for row in &rows {
            if row.name == MAIN_SHARD || read(&self.inner.shards).contains_key(&row.name) {
                continue;
            }
            let store = open_shard(&self.inner.control, row).await?;
            write(&self.inner.shards).insert(row.name.clone(), Arc::new(store));
        }
        let routes: HashMap<String, String> = self
            .inner
            .control
            .tenant_routes()
            .await?
            .into_iter()
            .collect();
        *write(&self.inner.routes) = routes;
        Ok(())
    }

    /// Re-reads the map every `period` until the router is dropped.
    pub fn start_refresher(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = (TenantRouter { inner }).refresh().await {
                    tracing::warn!(op = "shards", error = %e, "could not re-read the shard map");
                }
            }
        })
    }

    /// After a write met `tenant`'s fence: waits (re-reading the map) until the shard the map
    /// names for the tenant takes its writes, i.e. the move switched, or `timeout` passes.
    /// `true` when the write can be tried again.
    pub async fn wait_until_writable(&self, tenant: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            if let Err(e) = self.refresh().await {
                tracing::warn!(op = "shards", error = %e, "could not re-read the shard map");
            }
            match self.store_for(tenant).fence_of(tenant).await {
                Ok(None) => return true,
                Ok(Some(phase)) if phase == "copying" => return true,
                Ok(Some(_)) | Err(_) => {}
            }
            if Instant::now() + pause > deadline {
                return false;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }
}

/// Connects a shard with the router database's blob store and spill threshold, refusing one
/// whose schema is not exactly this binary's.
pub async fn open_shard(control: &Store, row: &ShardRow) -> Result<Store> {
    let mut store = Store::connect(&row.url).await.map_err(|e| {
        StoreError::Config(format!(
            "shard `{}` ({}) cannot be reached: {e}",
            row.name,
            crate::db_url_redacted(&row.url)
        ))
    })?;
    if let Some(blobs) = control.blobs() {
        store = store.with_blobs(blobs.clone());
    }
    store = store.with_spill_threshold(control.spill_threshold());
    let status = store.migration_status().await?;
    if !status.unknown.is_empty() {
        return Err(StoreError::Config(format!(
            "shard `{}` ({}) has a schema newer than this oma binary: upgrade oma",
            row.name,
            store.url_redacted()
        )));
    }
    if !status.pending.is_empty() {
        return Err(StoreError::Config(format!(
            "shard `{}` ({}) has a schema behind this oma binary ({} pending migration(s)): \
             run `oma migrate up`",
            row.name,
            store.url_redacted(),
            status.pending.len()
        )));
    }
    Ok(store)
}
