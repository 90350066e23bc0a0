//! The recorder: a cheap handle in front of one writer task that stores events in batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oma_store::{Store, StoreError, TenantRouter};
use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;

use crate::OpsEvent;

/// Tunables of the recorder.
#[derive(Debug, Clone)]
pub struct OpsConfig {
    /// A batch is written when it holds this many events …
    pub batch_max: usize,
    /// … or when this much time passed, whichever comes first.
    pub flush_every: Duration,
    /// Events waiting for the writer; beyond this they are dropped (and counted).
    pub capacity: usize,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            batch_max: 200,
            flush_every: Duration::from_millis(250),
            capacity: 16_384,
        }
    }
}

enum Msg {
    Event(OpsEvent),
    /// Write what is buffered, then answer.
    Flush(oneshot::Sender<()>),
    /// Write what is buffered, answer, and stop.
    Stop(oneshot::Sender<()>),
}

struct Shared {
    tx: mpsc::Sender<Msg>,
    dropped: AtomicU64,
    written: AtomicU64,
}

/// Records operational events. Cheap to clone; a disabled recorder ignores everything.
#[derive(Clone, Default)]
pub struct OpsRecorder {
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for OpsRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsRecorder")
            .field("enabled", &self.shared.is_some())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl OpsRecorder {
    /// Starts the writer task (on the current Tokio runtime) over `store`.
    pub fn start(store: Store, config: OpsConfig) -> Self {
        Self::start_routed(TenantRouter::single(store), config)
    }

    /// Starts the writer task over the shards of `router`: each event is stored with its
    /// tenant's rows (one without a tenant in the router database).
    pub fn start_routed(router: TenantRouter, config: OpsConfig) -> Self {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let shared = Arc::new(Shared {
            tx,
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
        });
        let writer = Writer {
            router,
            batch: Vec::with_capacity(config.batch_max),
            config,
            shared: Arc::downgrade(&shared),
            reported_drops: 0,
        };
        tokio::spawn(writer.run(rx));
        Self {
            shared: Some(shared),
        }
    }

    /// A recorder that records nothing (tests, tools without a database).
    pub fn disabled() -> Self {
        Self::default()
    }

    pub fn is_enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// Hands `event` to the writer. Never waits: when the writer is behind by `capacity`
    /// events (or stopped), the event is dropped and counted.
    pub fn record(&self, event: OpsEvent) {
        let Some(shared) = &self.shared else {
            return;
        };
        if shared.tx.try_send(Msg::Event(event)).is_err() {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events dropped so far because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |s| s.dropped.load(Ordering::Relaxed))
    }

    /// Events written so far.
    pub fn written(&self) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |s| s.written.load(Ordering::Relaxed))
    }

    /// Waits until every event recorded before this call has been written (or given up on).
    pub async fn flush(&self) {
        self.ask(Msg::Flush).await;
    }

    /// Writes what is buffered and stops the writer; later events are dropped. For shutdown.
    pub async fn shutdown(&self) {
        self.ask(Msg::Stop).await;
    }

    async fn ask(&self, msg: fn(oneshot::Sender<()>) -> Msg) {
        let Some(shared) = &self.shared else {
            return;
        };
        let (ack, done) = oneshot::channel();
        // Waiting for room is fine here: the caller asked to wait.
        if shared.tx.send(msg(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

struct Writer {
    router: TenantRouter,
    config: OpsConfig,
    batch: Vec<OpsEvent>,
    /// Weak, so that dropping every handle closes the channel and ends the task.
    shared: std::sync::Weak<Shared>,
    reported_drops: u64,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut tick = tokio::time::interval(self.config.flush_every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    None => {
                        self.write().await;
                        return;
                    }
                    Some(Msg::Event(e)) => {
                        self.batch.push(e);
                        if self.batch.len() >= self.config.batch_max {
                            self.write().await;
                        }
                    }
                    Some(Msg::Flush(ack)) => {
                        self.write().await;
                        let _ = ack.send(());
                    }
                    Some(Msg::Stop(ack)) => {
                        rx.close();
                        // Events queued before the stop still belong to this run.
                        while let Ok(m) = rx.try_recv() {
                            match m {
                                Msg::Event(e) => self.batch.push(e),
                                Msg::Flush(a) | Msg::Stop(a) => { let _ = a.send(()); }
                            }
                        }
                        self.write().await;
                        self.report_drops();
                        let _ = ack.send(());
                        return;
                    }
                },
                _ = tick.tick() => {
                    self.write().await;
                    self.report_drops();
                }
            }
        }
    }

    async fn write(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        // One insert per tenant (a tenant's events go where its rows live; a batch of two
        // tenants on one shard could not follow one of them to a new shard).
        let mut by_tenant: Vec<(Option<String>, Vec<OpsEvent>)> = Vec::new();
        for e in self.batch.drain(..) {
            match by_tenant.iter_mut().find(|(t, _)| *t == e.tenant_id) {
                Some((_, events)) => events.push(e),
                None => by_tenant.push((e.tenant_id.clone(), vec![e])),
            }
        }
        for (_, events) in by_tenant {
            let n = events.len() as u64;
            match self.insert(&events).await {
                Ok(()) => {
                    if let Some(s) = self.shared.upgrade() {
                        s.written.fetch_add(n, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    // Retrying would let a broken database grow the buffer without bound;
                    // the events are lost, and the log says how many.
                    tracing::warn!(op = "ops_events", events = n, error = %e, "could not store operational events");
                }
            }
        }
    }

    /// Inserts one tenant's events; a batch that meets a moving tenant's fence
    /// waits for the switch and goes to the tenant's new shard.
    async fn insert(&self, events: &[OpsEvent]) -> Result<(), StoreError> {
        let store = |r: &TenantRouter| -> std::sync::Arc<Store> {
            match events.iter().find_map(|e| e.tenant_id.as_deref()) {
                Some(t) => r.store_for(t),
                None => r.control().clone(),
            }
        };
        match store(&self.router).insert_ops_events(events).await {
            Err(StoreError::TenantFenced) => {
                if let Some(t) = events.iter().find_map(|e| e.tenant_id.as_deref()) {
                    self.router
                        .wait_until_writable(t, std::time::Duration::from_secs(30))
                        .await;
                }
                store(&self.router).insert_ops_events(events).await
            }
            other => other,
        }
    }

    fn report_drops(&mut self) {
        let Some(s) = self.shared.upgrade() else {
            return;
        };
        let total = s.dropped.load(Ordering::Relaxed);
        if total > self.reported_drops {
            tracing::warn!(
                op = "ops_events",
                dropped = total - self.reported_drops,
                dropped_total = total,
                "operational events dropped: the writer could not keep up"
            );
            self.reported_drops = total;
        }
    }
}
