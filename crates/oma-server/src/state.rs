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
    /// The self-hosted work queue's settings and its long-poll wake-ups.
    pub work: Arc<WorkQueue>,
    /// Agents published into Slack, GitHub and Linear (`oma-integrations`).
    pub integrations: Arc<oma_integrations::Integrations>,
}

/// What the work queue routes share: the default lease of a work item and the signal that
/// wakes long polls when an item may have been queued.
#[derive(Debug)]
pub struct WorkQueue {
    /// The lease (seconds) of an acknowledged item until a heartbeat asks for another.
    pub lease_ttl_seconds: i64,
    signal: tokio::sync::Notify,
}

impl Default for WorkQueue {
    fn default() -> Self {
        Self::new(oma_core::work::DEFAULT_TTL_SECONDS)
    }
}

impl WorkQueue {
    pub fn new(lease_ttl_seconds: i64) -> Self {
        Self {
            lease_ttl_seconds,
            signal: tokio::sync::Notify::new(),
        }
    }

    /// Something may have been queued: every waiting poll looks again.
    pub fn queued(&self) {
        self.signal.notify_waiters();
    }

    /// Resolves at the next [`WorkQueue::queued`] after this call.
    pub fn wait(&self) -> tokio::sync::futures::Notified<'_> {
        self.signal.notified()
    }
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
            blob_backend: if blobs.root().is_some() {
                "local"
            } else {
                "s3"
            },
            blob_location: blobs.location(),
        };
        let sealer = Arc::new(sealer);
        let integrations = oma_integrations::Integrations::new(
            tenants.clone(),
            sealer.clone(),
            Arc::new(crate::integrations::Driver {
                runtime: runtime.clone(),
            }),
        );
        Self {
            tenants,
            sealer,
            blobs,
            auth: Arc::new(AuthCache::new(bootstrap_key)),
            hub: runtime.hub().clone(),
            runtime,
            info: Arc::new(info),
            admin: Arc::default(),
            work: Arc::default(),
            integrations,
        }
    }

    /// This state with work items leased for `seconds` by default (`[work] lease_ttl_seconds`).
    pub fn with_work_lease_ttl(mut self, seconds: i64) -> Self {
        self.work = Arc::new(WorkQueue::new(seconds));
        self
    }

    /// This state with the deployment's public address (`public_base_url`): integrations
    /// build their OAuth redirect URLs from it.
    pub fn with_public_base_url(self, url: Option<String>) -> Self {
        self.integrations.set_public_base_url(url);
        self
    }

    /// This state with the admin API enabled by `admin` (see [`crate::routes::admin`]).
    pub fn with_admin(mut self, admin: crate::routes::admin::Admin) -> Self {
        self.admin = Arc::new(admin);
        self
    }
}
