//! Group commit of host steps: one writer task takes the steps that many sessions' hosts
//! queued meanwhile and applies them in one transaction, each under a savepoint of its own.
//!
//! Why: every step used to be a transaction of its own, and with many sessions running the
//! transactions queue for the one writer (SQLite) or for the log's commit (PostgreSQL). One
//! transaction for a batch pays `BEGIN`/`COMMIT` (and the WAL sync) once.
//!
//! What it keeps:
//! - a step is all or nothing: a failing step (a stale fence, a deleted session) is rolled
//!   back to its savepoint and reported to its host alone; the others commit;
//! - per-session order: a host waits for its step before it makes the next one;
//! - commit, then publish: a host hears of its step (and publishes it) after the batch's
//!   commit, never before;
//! - no transaction waits on the blob store: steps arrive with their large bodies written.
//!
//! A host whose task is cancelled while its step waits only drops its answer; the batch goes
//! on. Should the writer task be gone (its runtime stopped), steps commit one by one; so do
//! they with `OMA_GROUP_COMMIT=off`.

use tokio::sync::{mpsc, oneshot};

use crate::events::{Prepared, StoredEvent};
use crate::runtime::{Step, apply_step};
use crate::{Result, Store, StoreError};

/// Steps one transaction takes at most.
const MAX_BATCH: usize = 64;
/// Steps waiting for the writer before hosts wait to queue theirs.
const QUEUE: usize = 1024;

/// Off only when `OMA_GROUP_COMMIT` says so (`off`, `0`, `false`, `no`).
pub(crate) fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        !std::env::var("OMA_GROUP_COMMIT")
            .is_ok_and(|v| matches!(v.trim(), "off" | "0" | "false" | "no"))
    })
}

pub(crate) struct Job {
    pub tenant: String,
    pub session: String,
    pub step: Step,
    pub events: Prepared,
    pub reply: oneshot::Sender<Result<Vec<StoredEvent>>>,
}

/// The sending side, held by the store; the writer task ends when every clone is dropped.
pub(crate) type Committer = mpsc::Sender<Job>;

/// Starts the writer task for `store` (a clone without a committer of its own, so that the
/// task does not keep its own channel open).
pub(crate) fn start(store: Store) -> Committer {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(write(store, rx));
    tx
}

async fn write(store: Store, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit_batch(&store, std::mem::take(&mut batch)).await;
    }
}

async fn commit_batch(store: &Store, batch: Vec<Job>) {
    let mut results = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    let outcome = async {
        let mut tx = store.writer().begin().await?;
        // A step alone needs no savepoint: the transaction is the step's.
        let apart = batch.len() > 1;
        for job in batch {
            replies.push(job.reply);
            if apart {
                sqlx::query("SAVEPOINT step").execute(&mut *tx).await?;
            }
            let r = apply_step(
                store,
                &mut tx,
                &job.tenant,
                &job.session,
                job.step,
                job.events,
            )
            .await;
            if apart {
                let end = if r.is_ok() {
                    "RELEASE SAVEPOINT step"
                } else {
                    "ROLLBACK TO SAVEPOINT step"
                };
                sqlx::query(end).execute(&mut *tx).await?;
            }
            results.push(r);
        }
        if results.iter().any(Result::is_ok) {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok::<(), StoreError>(())
    }
    .await;
    if let Err(e) = outcome {
        // The batch did not commit: no step of it happened.
        let why = e.to_string();
        for r in &mut results {
            if r.is_ok() {
                *r = Err(StoreError::Aborted(why.clone()));
            }
        }
        while results.len() < replies.len() {
            results.push(Err(StoreError::Aborted(why.clone())));
        }
    }
    for (reply, r) in replies.into_iter().zip(results) {
        // A host that went away meanwhile does not need its answer.
        let _ = reply.send(r);
    }
}
