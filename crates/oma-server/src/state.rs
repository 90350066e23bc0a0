//! Everything a handler can reach.

use std::sync::Arc;

use oma_blob::BlobStore;
use oma_core::seal::Sealer;
use oma_store::TenantRouter;

use crate::auth::AuthCache;
use oma_runtime::{Hub, Runtime};

#[derive(Clone)]
pub struct AppState {
    pub tenants: TenantRouter,
    pub sealer: Arc<Sealer>,
    pub blobs: BlobStore,
    pub auth: Arc<AuthCache>,
    pub hub: Arc<Hub>,
    pub runtime: Runtime,
    pub info: Arc<ServerInfo>,
    /// The admin key and log fan-out of `/v1/oma/admin/*` ([`AppState::with_admin`]).
    pub admin: Arc<crate::routes::admin::Admin>,
}

/// What `/health` reports.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub version: &'static str,
    pub database_backend: &'static str,
    pub database_url: String,
    pub blob_backend: &'static str,
    pub blob_location: String,
}

impl AppState {
    pub fn new(
        tenants: TenantRouter,
        sealer: Sealer,
        blobs: BlobStore,
        bootstrap_key: Option<&str>,
        runtime: Runtime,
    ) -> Self {
        let control = tenants.control();
        let info = ServerInfo {
            version: env!("CARGO_PKG_VERSION"),
            database_backend: control.backend().name(),
            database_url: control.url_redacted().to_string(),
            blob_backend: "local",
            blob_location: blobs.root().display().to_string(),
        };
        Self {
            tenants,
            sealer: Arc::new(sealer),
            blobs,
            auth: Arc::new(AuthCache::new(bootstrap_key)),
            hub: runtime.hub().clone(),
            runtime,
            info: Arc::new(info),
            admin: Arc::default(),
        }
    }

    /// This state with the admin API enabled by `admin` (see [`crate::routes::admin`]).
    pub fn with_admin(mut self, admin: crate::routes::admin::Admin) -> Self {
        self.admin = Arc::new(admin);
        self
    }
}
