//! The tenant router: which database holds a tenant's data.
//!
//! Today every tenant lives in the one shared database. Per-tenant databases and shards plug
//! in here (a `tenant_shard` lookup in a router database) without changing any caller: every
//! request resolves its store through `store_for`.

use std::sync::Arc;

use crate::Store;

#[derive(Debug, Clone)]
pub struct TenantRouter {
    shared: Arc<Store>,
}

impl TenantRouter {
    pub fn single(store: Store) -> Self {
        Self {
            shared: Arc::new(store),
        }
    }

    /// The store holding `tenant`'s rows.
    pub fn store_for(&self, _tenant: &str) -> &Arc<Store> {
        &self.shared
    }

    /// The store that holds tenants and keys (the router database).
    pub fn control(&self) -> &Arc<Store> {
        &self.shared
    }
}
