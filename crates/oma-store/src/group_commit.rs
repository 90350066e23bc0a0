//! Group commit of host steps and queued input: one writer task takes the steps that many
//! sessions' hosts made meanwhile, and the client events that requests queue for sessions
//! (`POST …/events`), and applies them in one transaction, each under a savepoint of its own.
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

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::events::{NewEvent, Prepared, StoredEvent};
use crate::runtime::{Step, apply_step, enqueue_inputs_in_tx};
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
    pub work: Work,
}

/// What one job writes, and where its answer goes.
pub(crate) enum Work {
    /// A host step (its large bodies already written to the blob store).
    Step {
        step: Box<Step>,
        events: Prepared,
        reply: oneshot::Sender<Result<Vec<StoredEvent>>>,
    },
    /// Client events queued for the session's host; the answer is their echoes.
    Enqueue {
        events: Vec<NewEvent>,
        reply: oneshot::Sender<Result<Vec<Value>>>,
    },
}

/// The answer of one job, until it is sent.
enum Answer {
    Step(
        oneshot::Sender<Result<Vec<StoredEvent>>>,
        Option<Result<Vec<StoredEvent>>>,
    ),
    Enqueue(
        oneshot::Sender<Result<Vec<Value>>>,
        Option<Result<Vec<Value>>>,
    ),
}

impl Answer {
    fn succeeded(&self) -> bool {
        matches!(
            self,
            Answer::Step(_, Some(Ok(_))) | Answer::Enqueue(_, Some(Ok(_)))
        )
    }

    /// The batch did not commit: a job that succeeded (or never ran) did not happen.
    fn abort(&mut self, why: &str) {
        let aborted = || StoreError::Aborted(why.to_string());
        match self {
            Answer::Step(_, r) if !matches!(r, Some(Err(_))) => *r = Some(Err(aborted())),
            Answer::Enqueue(_, r) if !matches!(r, Some(Err(_))) => *r = Some(Err(aborted())),
            _ => {}
        }
    }

    fn send(self) {
        // A requester that went away meanwhile does not need its answer.
        let lost = || StoreError::Aborted("the job was not run".into());
        match self {
            Answer::Step(tx, r) => {
                let _ = tx.send(r.unwrap_or_else(|| Err(lost())));
            }
            Answer::Enqueue(tx, r) => {
                let _ = tx.send(r.unwrap_or_else(|| Err(lost())));
            }
        }
    }
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
    let mut answers: Vec<Answer> = Vec::with_capacity(batch.len());
    let outcome = async {
        let mut tx = store.writer().begin().await?;
        // A job alone needs no savepoint: the transaction is the job's.
        let apart = batch.len() > 1;
        for job in batch {
            if apart {
                sqlx::query("SAVEPOINT step").execute(&mut *tx).await?;
            }
            let ok = match job.work {
                Work::Step {
                    step,
                    events,
                    reply,
                } => {
                    answers.push(Answer::Step(reply, None));
                    let r =
                        apply_step(store, &mut tx, &job.tenant, &job.session, *step, events).await;
                    let ok = r.is_ok();
                    if let Some(Answer::Step(_, slot)) = answers.last_mut() {
                        *slot = Some(r);
                    }
                    ok
                }
                Work::Enqueue { events, reply } => {
                    answers.push(Answer::Enqueue(reply, None));
                    let r = enqueue_inputs_in_tx(&mut tx, &job.tenant, &job.session, events).await;
                    let ok = r.is_ok();
                    if let Some(Answer::Enqueue(_, slot)) = answers.last_mut() {
                        *slot = Some(r);
                    }
                    ok
                }
            };
            if apart {
                let end = if ok {
                    "RELEASE SAVEPOINT step"
                } else {
                    "ROLLBACK TO SAVEPOINT step"
                };
                sqlx::query(end).execute(&mut *tx).await?;
            }
        }
        if answers.iter().any(Answer::succeeded) {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok::<(), StoreError>(())
    }
    .await;
    if let Err(e) = outcome {
        // The batch did not commit: no job of it happened.
        let why = e.to_string();
        for a in &mut answers {
            a.abort(&why);
        }
    }
    for a in answers {
        a.send();
    }
}
