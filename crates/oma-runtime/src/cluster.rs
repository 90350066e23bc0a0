//! One node among several over one database (DESIGN principle 2).
//!
//! Every host owns its session by a lease (`oma_store::leases`); this module keeps the node's
//! side of that bargain and connects the nodes:
//!
//! - the *lease keeper* renews the leases of this node's hosts;
//! - the *node loop* records a heartbeat and sweeps for sessions that need a host and have no
//!   live owner (a node crashed or stopped), which it claims and resumes;
//! - the *listener* (PostgreSQL only) takes the notes other nodes send: committed events,
//!   read from the log and fanned out to this node's streams; wake-ups for sessions this
//!   node owns; sweep requests from a draining node;
//! - [`Runtime::drain`] hands this node's sessions over before it exits.
//!
//! On SQLite there is one node; the same leases fence its hosts and a restart takes its
//! sessions back at once (the node keeps its name in the data directory).

use std::time::Duration;

use oma_store::notify::{Note, WakeNote};
use oma_store::{Store, StoreError};

use crate::{Committed, Runtime};

/// How long a silent node stays in the registry (and in `/health` and `oma doctor`).
const FORGET_SILENT_NODES_AFTER: Duration = Duration::from_secs(3600);

/// The lease lifetime when none is configured.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// The node's background tasks; dropping the handle stops them.
#[derive(Default)]
pub struct ClusterTasks {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The shards with a listener among `tasks`.
    listened: std::collections::HashSet<String>,
}

impl Drop for ClusterTasks {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl ClusterTasks {
    /// Starts a listener (PostgreSQL shards only: notes travel within one database) for each
    /// shard that has none yet.
    async fn listen_to_new_shards(&mut self, rt: &Runtime) -> Result<(), StoreError> {
        for shard in rt.inner().tenants.shards() {
            if !self.listened.insert(shard.name.clone()) {
                continue;
            }
            if let Some(listener) = shard.store.listener().await? {
                self.tasks.push(tokio::spawn(listen(
                    rt.clone(),
                    shard.name.clone(),
                    listener,
                )));
            }
        }
        Ok(())
    }
}

impl Runtime {
    /// Sessions that need a host and have no live owner, on every shard; a shard's rows of a
    /// tenant that lives elsewhere now (the old copy of a move) are not looked at.
    pub(crate) async fn orphans(&self) -> Result<Vec<(String, String)>, StoreError> {
        let router = &self.inner().tenants;
        let mut out = Vec::new();
        for shard in router.shards() {
            for (tenant, session) in shard.store.orphaned_sessions().await? {
                if router.shard_of(&tenant) == shard.name {
                    out.push((tenant, session));
                }
            }
        }
        Ok(out)
    }

    /// This node's name.
    pub fn node_id(&self) -> &str {
        &self.inner().config.node_id
    }

    /// Registers this node (serving at `address`) and starts its lease keeping, the orphan
    /// sweep and, on PostgreSQL, the listener for the other nodes' notes.
    pub async fn start_cluster(&self, address: &str) -> Result<ClusterTasks, StoreError> {
        let store = self.inner().tenants.control().clone();
        store
            .register_node(self.node_id(), address, env!("CARGO_PKG_VERSION"))
            .await?;
        // The node loop owns the listeners (and adds one for each shard added later).
        let mut listeners = ClusterTasks::default();
        listeners.listen_to_new_shards(self).await?;
        Ok(ClusterTasks {
            tasks: vec![tokio::spawn(node_loop(
                self.clone(),
                store.clone(),
                listeners,
            ))],
            listened: Default::default(),
        })
    }

    /// Hands this node's sessions over (graceful shutdown): no new host starts here, running
    /// hosts stop where they are (a turn cut short resumes on its next owner exactly as after a
    /// crash, from the durable log), their leases are released, and the other nodes are asked
    /// to sweep at once instead of waiting for the leases to expire. Returns how many sessions
    /// were handed over.
    pub async fn drain(&self) -> usize {
        self.inner()
            .draining
            .store(true, std::sync::atomic::Ordering::Release);
        let slots: Vec<_> = {
            let mut hosts = self.inner().hosts.lock().unwrap_or_else(|p| p.into_inner());
            hosts.drain().map(|(_, slot)| slot).collect()
        };
        for slot in &slots {
            slot.task.abort();
            oma_metrics::SESSIONS_ACTIVE.dec();
        }
        let store = self.inner().tenants.control();
        let node = self.node_id();
        if let Err(e) = store.node_heartbeat(node, "draining").await {
            tracing::warn!(op = "drain", error = %e, "could not mark the node draining");
        }
        let mut released = 0;
        for shard in self.inner().tenants.shards() {
            match shard.store.release_node_leases(node).await {
                Ok(n) => released += n,
                Err(e) => {
                    // The leases run out by themselves; the sessions move a TTL later.
                    tracing::warn!(op = "drain", shard = %shard.name, error = %e, "could not release the node's leases");
                }
            }
        }
        oma_metrics::LEASES_HELD.set(0);
        let sweep = WakeNote {
            tenant: String::new(),
            session: String::new(),
            node: String::new(),
        };
        if let Err(e) = store.notify_wake(&sweep).await {
            tracing::warn!(op = "drain", error = %e, "could not ask the other nodes to sweep");
        }
        if let Err(e) = store.node_heartbeat(node, "stopped").await {
            tracing::warn!(op = "drain", error = %e, "could not mark the node stopped");
        }
        tracing::info!(
            op = "drain",
            sessions = slots.len(),
            leases = released,
            "handed this node's sessions over"
        );
        slots.len()
    }

    /// Claims and resumes every session that needs a host and has no live owner.
    pub async fn sweep(&self) -> Result<usize, StoreError> {
        let mut started = 0;
        for (tenant, session) in self.orphans().await? {
            // A local host that lost its lease finds out at its next step and hands over.
            if !self.is_active(&session) {
                tracing::info!(op = "sweep", tenant_id = %tenant, session_id = %session, "claiming a session without an owner");
                self.wake_quietly(&tenant, &session);
                started += 1;
            }
        }
        Ok(started)
    }

    /// Sends the wake-up to the node that owns the session (its host runs there).
    pub(crate) async fn forward_wake(&self, tenant: &str, session: &str, owner: &str) {
        let note = WakeNote {
            tenant: tenant.to_string(),
            session: session.to_string(),
            node: owner.to_string(),
        };
        let store = self.inner().tenants.store_for(tenant);
        if let Err(e) = store.notify_wake(&note).await {
            // The owner's host reads its queue before it goes idle; the sweep is the backstop.
            tracing::warn!(op = "wake", session_id = %session, node = %owner, error = %e, "could not pass the wake-up on");
        }
    }

    pub(crate) fn lease_ttl_ms(&self) -> i64 {
        i64::try_from(self.inner().config.lease_ttl.as_millis()).unwrap_or(i64::MAX / 1000)
    }
}

/// Renews the leases of this node's hosts three times per lease lifetime (a lease survives
/// two missed renewals). Started with the first host, whether or not the node is part of a
/// cluster: every host owns its session by a lease. Ends when the runtime is dropped.
pub(crate) async fn keep_leases(inner: std::sync::Weak<crate::Inner>) {
    let Some(period) = inner.upgrade().map(|i| renew_period(&i.config)) else {
        return;
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let rt = Runtime { inner };
        let hosted = rt.hosted_sessions();
        // Each shard renews the leases it holds (a session's lease lives with its tenant).
        let mut held = 0;
        for shard in rt.inner().tenants.shards() {
            match shard
                .store
                .renew_leases(rt.node_id(), &hosted, rt.lease_ttl_ms())
                .await
            {
                Ok(n) => held += n,
                Err(e) => {
                    tracing::warn!(op = "lease", shard = %shard.name, error = %e, "could not renew this node's leases")
                }
            }
        }
        oma_metrics::LEASES_HELD.set(i64::try_from(held).unwrap_or(i64::MAX));
    }
}

fn renew_period(config: &crate::RuntimeConfig) -> Duration {
    (config.lease_ttl / 3).max(Duration::from_millis(50))
}

/// Records the node's heartbeat and sweeps for orphans three times per lease lifetime: an
/// orphan waits at most a third of a TTL once its lease ran out.
async fn node_loop(rt: Runtime, store: std::sync::Arc<Store>, mut listeners: ClusterTasks) {
    let mut tick = tokio::time::interval(renew_period(&rt.inner().config));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // A shard added since (`oma shards add`) gets its listener.
        if let Err(e) = listeners.listen_to_new_shards(&rt).await {
            tracing::warn!(op = "cluster", error = %e, "could not listen to a new shard");
        }
        if let Err(e) = store.node_heartbeat(rt.node_id(), "serving").await {
            tracing::warn!(op = "cluster", error = %e, "could not record the node's heartbeat");
        }
        if let Err(e) = rt.sweep().await {
            tracing::warn!(op = "sweep", error = %e, "could not look for sessions without an owner");
        }
        let forget_ms = i64::try_from(FORGET_SILENT_NODES_AFTER.as_millis()).unwrap_or(i64::MAX);
        if let Err(e) = store.forget_silent_nodes(forget_ms).await {
            tracing::warn!(op = "cluster", error = %e, "could not forget long-silent nodes");
        }
    }
}

/// Acts on the other nodes' notes until the task is stopped.
async fn listen(rt: Runtime, shard: String, mut listener: oma_store::notify::Listener) {
    loop {
        let note = match listener.recv().await {
            Ok(n) => n,
            Err(e) => {
                // The listener reconnects by itself; a failure here is logged and retried.
                tracing::warn!(op = "cluster", error = %e, "the cluster listener failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        match note {
            Note::Events(n) if n.deleted => {
                // As on the node that deleted it: `session.deleted` ends every stream.
                rt.hub().session_deleted(&n.session, n.from);
            }
            Note::Events(n) => {
                if n.node != rt.node_id() {
                    let store = rt.inner().tenants.store_for(&n.tenant);
                    fan_out(&rt, &store, &n.tenant, &n.session, n.from - 1).await;
                }
            }
            Note::Wake(w) if w.session.is_empty() => {
                if let Err(e) = rt.sweep().await {
                    tracing::warn!(op = "sweep", error = %e, "could not look for sessions without an owner");
                }
            }
            Note::Wake(w) => {
                if w.node.is_empty() || w.node == rt.node_id() {
                    rt.wake_quietly(&w.tenant, &w.session);
                }
            }
            Note::Reconnected => {
                // Notes sent while the connection was down are lost: every watched session
                // catches up from its log, and orphans are looked for.
                for (tenant, session, _) in rt.hub().watched_sessions() {
                    if rt.inner().tenants.shard_of(&tenant) == shard {
                        let store = rt.inner().tenants.store_for(&tenant);
                        fan_out(&rt, &store, &tenant, &session, 0).await;
                    }
                }
                if let Err(e) = rt.sweep().await {
                    tracing::warn!(op = "sweep", error = %e, "could not look for sessions without an owner");
                }
            }
        }
    }
}

/// Delivers to this node's streams of `session` the events after `after` (or after the
/// newest they already have) that another node committed.
async fn fan_out(rt: &Runtime, store: &Store, tenant: &str, session: &str, after: i64) {
    let Some((watched_tenant, delivered)) = rt.hub().watched(session) else {
        return;
    };
    if watched_tenant != tenant {
        return;
    }
    let mut after = after.max(delivered);
    loop {
        let batch = match store.events_after(tenant, session, after, 500).await {
            Ok(b) => b,
            Err(e) => {
                // The streams see the gap at the next event and read it from the log.
                tracing::warn!(op = "cluster", session_id = %session, error = %e, "could not read another node's events");
                return;
            }
        };
        let Some(last) = batch.last().map(|e| e.seq) else {
            return;
        };
        let full = batch.len() == 500;
        rt.hub()
            .publish(session, batch.into_iter().map(Committed::from).collect());
        if !full {
            return;
        }
        after = last;
    }
}
