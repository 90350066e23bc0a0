//! The host's handle on a long-lived process inside a box ([`crate::Sandbox::spawn_process`]):
//! its stdin and stdout as byte streams, its exit, and a guard that kills it.
//!
//! The streams are in-memory pipes pumped by tasks: bytes written to [`BoxProcess::stdin`]
//! become `Stdin` frames (shutting it down or dropping it closes the process's stdin), and
//! `Stdout` frames are written into [`BoxProcess::stdout`], which ends (EOF) once the process
//! exited and its output was read, or when the agent dies. Both directions respect the
//! protocol's window, so a reader that stalls stalls the process, not memory.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use crate::error::{ExitInfo, SandboxError};
use crate::protocol::{HostMessage, PROCESS_CHUNK_BYTES, PROCESS_WINDOW_BYTES};

pub use crate::protocol::ProcessSpec;

/// How a box process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessExit {
    /// The exit code, when it exited normally.
    pub code: Option<i32>,
    /// The signal that killed it, when it was killed.
    pub signal: Option<i32>,
    /// The last few KiB it wrote to stderr.
    pub stderr_tail: String,
}

impl ProcessExit {
    /// The code and signal alone.
    pub fn info(&self) -> ExitInfo {
        ExitInfo {
            code: self.code,
            signal: self.signal,
        }
    }

    /// Exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl fmt::Display for ProcessExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.info())?;
        let tail = self.stderr_tail.trim();
        if !tail.is_empty() {
            write!(f, "; stderr: {tail}")?;
        }
        Ok(())
    }
}

type ExitSlot = Option<Result<ProcessExit, SandboxError>>;

/// Resolves when the process has ended: `Ok` with how, or `Err` when the box failed first (its
/// agent died, it was shut down). Cloneable; every clone sees the same outcome.
#[derive(Clone)]
pub struct ProcessExited(watch::Receiver<ExitSlot>);

impl ProcessExited {
    /// Waits for the end of the process.
    pub async fn wait(&self) -> Result<ProcessExit, SandboxError> {
        let mut rx = self.0.clone();
        loop {
            if let Some(outcome) = rx.borrow_and_update().clone() {
                return outcome;
            }
            if rx.changed().await.is_err() {
                // The connection was torn down without a word (the box handle went away).
                return rx.borrow().clone().unwrap_or(Err(SandboxError::Shutdown));
            }
        }
    }

    /// The outcome, if the process has already ended.
    pub fn try_get(&self) -> Option<Result<ProcessExit, SandboxError>> {
        self.0.borrow().clone()
    }
}

impl fmt::Debug for ProcessExited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ProcessExited")
            .field(&self.try_get())
            .finish()
    }
}

/// Kills the process when dropped (or on [`ProcessGuard::kill`]). Kept apart from the streams
/// so they can be moved out of [`BoxProcess`] while the guard stays where the process should
/// live.
pub struct ProcessGuard {
    id: u64,
    outbox: mpsc::UnboundedSender<HostMessage>,
    exit: watch::Receiver<ExitSlot>,
}

impl ProcessGuard {
    /// Kills the process and everything it started. Its `exited` then reports the signal.
    pub fn kill(&self) {
        if self.exit.borrow().is_none() {
            let _ = self.outbox.send(HostMessage::Kill { id: self.id });
        }
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

impl fmt::Debug for ProcessGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessGuard")
            .field("id", &self.id)
            .finish()
    }
}

/// A process running inside a box. Dropping `guard` kills it; dropping `stdin` closes its
/// standard input.
pub struct BoxProcess {
    pub stdin: Box<dyn AsyncWrite + Send + Unpin>,
    pub stdout: Box<dyn AsyncRead + Send + Unpin>,
    pub exited: ProcessExited,
    pub guard: ProcessGuard,
}

impl BoxProcess {
    /// Kills the process (see [`ProcessGuard::kill`]).
    pub fn kill(&self) {
        self.guard.kill();
    }
}

impl fmt::Debug for BoxProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxProcess")
            .field("id", &self.guard.id)
            .field("exited", &self.exited)
            .finish_non_exhaustive()
    }
}

/// The connection's side of one process: where the reader task delivers its frames.
pub(crate) struct Route {
    spawned: Option<oneshot::Sender<Result<(), SandboxError>>>,
    stdout: mpsc::UnboundedSender<Vec<u8>>,
    /// Permits are stdin bytes the host may still send before the agent acknowledges.
    stdin_credit: Arc<Semaphore>,
    exit: watch::Sender<ExitSlot>,
}

impl Route {
    pub(crate) fn on_spawned(&mut self) {
        if let Some(tx) = self.spawned.take() {
            let _ = tx.send(Ok(()));
        }
    }

    /// Delivers a chunk of output. `Err` when the agent sent something that is not base64.
    pub(crate) fn on_stdout(&self, data_base64: &str) -> Result<(), String> {
        let data = base64::engine::general_purpose::STANDARD
            .decode(data_base64)
            .map_err(|e| format!("process output is not base64: {e}"))?;
        let _ = self.stdout.send(data);
        Ok(())
    }

    pub(crate) fn on_stdin_ack(&self, bytes: u64) {
        let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        let room = PROCESS_WINDOW_BYTES.saturating_sub(self.stdin_credit.available_permits());
        self.stdin_credit.add_permits(bytes.min(room));
    }

    /// The process ended (or never started). Dropping the route ends the stdout stream once
    /// the chunks already delivered are read.
    pub(crate) fn on_exit(mut self, exit: ProcessExit) {
        self.stdin_credit.close();
        match self.spawned.take() {
            Some(tx) => {
                let why = exit.stderr_tail.trim();
                let why = if why.is_empty() {
                    format!("it ended at once ({})", exit.info())
                } else {
                    why.to_string()
                };
                let _ = tx.send(Err(SandboxError::Spawn(why)));
            }
            None => {
                let _ = self.exit.send(Some(Ok(exit)));
            }
        }
    }

    /// The connection is over.
    pub(crate) fn fail(mut self, err: SandboxError) {
        self.stdin_credit.close();
        if let Some(tx) = self.spawned.take() {
            let _ = tx.send(Err(err.clone()));
        }
        let _ = self.exit.send(Some(Err(err)));
    }
}

/// The host's half of a process being opened, until the agent says it started.
pub(crate) struct Unstarted {
    id: u64,
    stdout_rx: mpsc::UnboundedReceiver<Vec<u8>>,
    stdin_credit: Arc<Semaphore>,
    exit_rx: watch::Receiver<ExitSlot>,
}

/// The pieces of process `id`: the route for the connection's reader, the answer to the
/// spawn, and the rest for [`Unstarted::start`].
pub(crate) fn open(
    id: u64,
) -> (
    Route,
    oneshot::Receiver<Result<(), SandboxError>>,
    Unstarted,
) {
    let (spawned_tx, spawned_rx) = oneshot::channel();
    let (stdout_tx, stdout_rx) = mpsc::unbounded_channel();
    let stdin_credit = Arc::new(Semaphore::new(PROCESS_WINDOW_BYTES));
    let (exit_tx, exit_rx) = watch::channel(None);
    let route = Route {
        spawned: Some(spawned_tx),
        stdout: stdout_tx,
        stdin_credit: Arc::clone(&stdin_credit),
        exit: exit_tx,
    };
    let unstarted = Unstarted {
        id,
        stdout_rx,
        stdin_credit,
        exit_rx,
    };
    (route, spawned_rx, unstarted)
}

impl Unstarted {
    /// Wires the streams of the process, which has started.
    pub(crate) fn start(self, outbox: mpsc::UnboundedSender<HostMessage>) -> BoxProcess {
        let (stdin_user, stdin_pump) = tokio::io::duplex(PROCESS_CHUNK_BYTES);
        let (stdout_user, stdout_pump) = tokio::io::duplex(PROCESS_CHUNK_BYTES);
        tokio::spawn(pump_stdin(
            self.id,
            stdin_pump,
            self.stdin_credit,
            outbox.clone(),
            ProcessExited(self.exit_rx.clone()),
        ));
        tokio::spawn(pump_stdout(
            self.id,
            self.stdout_rx,
            stdout_pump,
            outbox.clone(),
        ));
        BoxProcess {
            stdin: Box::new(stdin_user),
            stdout: Box::new(stdout_user),
            exited: ProcessExited(self.exit_rx.clone()),
            guard: ProcessGuard {
                id: self.id,
                outbox,
                exit: self.exit_rx,
            },
        }
    }
}

/// Sends what the user writes as `Stdin` frames, within the window; end of input becomes
/// `CloseStdin`. Ends when the process does, which makes later writes fail.
async fn pump_stdin(
    id: u64,
    mut from_user: DuplexStream,
    credit: Arc<Semaphore>,
    outbox: mpsc::UnboundedSender<HostMessage>,
    exited: ProcessExited,
) {
    let mut buf = vec![0u8; PROCESS_CHUNK_BYTES];
    loop {
        let room = match credit.acquire().await {
            Ok(permit) => {
                drop(permit);
                credit.available_permits().clamp(1, PROCESS_CHUNK_BYTES)
            }
            Err(_) => return,
        };
        let n = tokio::select! {
            // A failed read ends the input like end of file does.
            r = from_user.read(&mut buf[..room]) => r.unwrap_or(0),
            _ = exited.wait() => return,
        };
        if n == 0 {
            let _ = outbox.send(HostMessage::CloseStdin { id });
            return;
        }
        // `n` is at most one chunk, far below `u32::MAX`.
        match credit
            .acquire_many(u32::try_from(n).unwrap_or(u32::MAX))
            .await
        {
            Ok(permits) => permits.forget(),
            Err(_) => return,
        }
        let data_base64 = base64::engine::general_purpose::STANDARD.encode(&buf[..n]);
        if outbox.send(HostMessage::Stdin { id, data_base64 }).is_err() {
            return;
        }
    }
}

/// Writes the process's output into the user's stream and acknowledges it once taken. A user
/// who dropped the stream gets nothing more, but the output is still acknowledged so the
/// process is never stuck on a window nobody will open.
async fn pump_stdout(
    id: u64,
    mut chunks: mpsc::UnboundedReceiver<Vec<u8>>,
    mut to_user: DuplexStream,
    outbox: mpsc::UnboundedSender<HostMessage>,
) {
    let mut open = true;
    while let Some(chunk) = chunks.recv().await {
        if open && to_user.write_all(&chunk).await.is_err() {
            open = false;
        }
        let _ = outbox.send(HostMessage::StdoutAck {
            id,
            bytes: chunk.len() as u64,
        });
    }
    // Dropping `to_user` is the reader's end of file, after what it has not read yet.
}
