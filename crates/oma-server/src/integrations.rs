//! The runtime side of `oma-integrations`: how a verified delivery's session is woken, how its
//! committed events are watched, and where its operational events go.

use std::future::Future;
use std::pin::Pin;

use oma_integrations::SessionDriver;
use oma_ops::OpsEvent;
use oma_runtime::Runtime;
use oma_store::events::StoredEvent;

/// [`SessionDriver`] over the server's runtime and hub.
pub struct Driver {
    pub runtime: Runtime,
}

impl SessionDriver for Driver {
    fn session_created(&self, tenant: &str, session_id: &str, events: Vec<StoredEvent>) {
        if !events.is_empty() {
            self.runtime.hub().publish(
                session_id,
                events
                    .into_iter()
                    .map(oma_runtime::hub::Committed::from)
                    .collect(),
            );
        }
        self.runtime.session_created(tenant, session_id, true);
    }

    fn wake(&self, tenant: &str, session_id: &str) {
        self.runtime.wake(tenant, session_id);
    }

    fn changed(&self, tenant: &str, session_id: &str) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let mut rx = self.runtime.hub().subscribe(tenant, session_id);
        Box::pin(async move {
            let _ = rx.recv().await;
        })
    }

    fn record(&self, event: OpsEvent) {
        if let Some(ops) = self.runtime.ops() {
            ops.record(event);
        }
    }
}
