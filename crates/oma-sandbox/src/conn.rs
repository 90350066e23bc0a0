//! The host's side of one agent process: spawning it, the hello handshake, matching results to
//! calls, cancellation, routing the frames of the processes opened in the box, and turning the
//! agent's death into a [`SandboxError`] for every call and process that was waiting. Backend-neutral: a launcher builds the [`Command`] (plain for `local`,
//! wrapped in bubblewrap for an isolated box) and hands it over.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{ChildStdout, Command};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::error::{ExitInfo, SandboxError};
use crate::process::{self, BoxProcess, ProcessExit, Route};
use crate::procs;
use crate::protocol::{
    AgentMessage, FrameError, Hello, HostMessage, PROTOCOL_VERSION, ProcessSpec, ToolCall,
    ToolOutcome, read_frame, write_frame,
};

/// How long a freshly spawned agent has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(15);
/// How long to wait for the exit status once the agent's stdout closed.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `shutdown` lets the agent clean up before killing it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Bytes of the agent's stderr kept for error messages.
const STDERR_TAIL: usize = 4096;

#[derive(Default)]
struct Pending {
    calls: HashMap<u64, oneshot::Sender<ToolOutcome>>,
    /// Processes opened in the box that have not ended, by id (ids come from the same
    /// counter as calls).
    processes: HashMap<u64, Route>,
    /// Set once the connection is over; every later call fails with it.
    closed: Option<SandboxError>,
    shutting_down: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    stderr_tail: Mutex<String>,
}

impl Shared {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A poisoned lock only means another thread panicked mid-update of plain maps; the
        // data is still consistent enough to fail calls cleanly.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stderr_tail(&self) -> String {
        self.stderr_tail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Ends the connection: records why and fails every waiting call.
    fn close(&self, err: SandboxError) {
        let mut p = self.pending();
        if p.closed.is_none() {
            p.closed = Some(if p.shutting_down {
                SandboxError::Shutdown
            } else {
                err
            });
        }
        // Dropping the senders wakes every waiter, which then reads `closed`.
        p.calls.clear();
        let err = p.closed.clone().unwrap_or(SandboxError::Shutdown);
        for (_, route) in p.processes.drain() {
            route.fail(err.clone());
        }
    }
}

/// A running agent process.
pub(crate) struct AgentProcess {
    outbox: mpsc::UnboundedSender<HostMessage>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    hello: Hello,
    pid: Option<u32>,
    kill: Arc<Notify>,
    exited: watch::Receiver<Option<ExitInfo>>,
    /// Whether the agent leads its own session (it does under the `local` launcher), so that
    /// killing the session reaches everything it started.
    session_leader: bool,
}

impl AgentProcess {
    /// Spawns `cmd` (which must run the agent with its working directory set) and waits for
    /// its hello. `session_leader`: the agent will `setsid`, so its pid names a session that
    /// holds every process of the box.
    pub(crate) async fn spawn(
        mut cmd: Command,
        session_leader: bool,
    ) -> Result<AgentProcess, SandboxError> {
        use std::process::Stdio;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| SandboxError::Launch(format!("cannot start the agent: {e}")))?;
        let pid = child.id();
        let (Some(stdin), Some(mut stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(SandboxError::Launch(
                "the agent's standard streams are not pipes".to_string(),
            ));
        };

        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            stderr_tail: Mutex::new(String::new()),
        });

        // stderr: diagnostics, logged and kept for error messages.
        let tail_shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(agent_pid = pid, "sandbox agent: {line}");
                let mut tail = tail_shared
                    .stderr_tail
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                tail.push_str(&line);
                tail.push('\n');
                if tail.len() > STDERR_TAIL {
                    let mut cut = tail.len() - STDERR_TAIL;
                    while !tail.is_char_boundary(cut) {
                        cut += 1;
                    }
                    tail.drain(..cut);
                }
            }
        });

        // The supervisor owns the child: it reports the exit and kills on request.
        let kill = Arc::new(Notify::new());
        let (exit_tx, exited) = watch::channel(None);
        let kill_rx = Arc::clone(&kill);
        tokio::spawn(async move {
            // A box counts as running for exactly as long as its agent process lives.
            let _running = oma_metrics::SANDBOXES_RUNNING.track();
            let status = tokio::select! {
                s = child.wait() => s,
                _ = kill_rx.notified() => {
                    if session_leader && let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                        procs::kill_session(pid, None);
                    }
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            // Whatever the agent left running in its session dies with it.
            if session_leader && let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                procs::kill_session(pid, None);
            }
            let info = status.ok().map(ExitInfo::from_status);
            let _ = exit_tx.send(info.or(Some(ExitInfo {
                code: None,
                signal: None,
            })));
        });

        // stdin: one writer task, so frames never interleave.
        let (outbox, mut outbox_rx) = mpsc::unbounded_channel::<HostMessage>();
        tokio::spawn(async move {
            let mut stdin = stdin;
            while let Some(msg) = outbox_rx.recv().await {
                if write_frame(&mut stdin, &msg).await.is_err() {
                    // The agent is gone; the reader reports why.
                    return;
                }
            }
        });

        let hello =
            match tokio::time::timeout(HELLO_TIMEOUT, read_frame::<_, AgentMessage>(&mut stdout))
                .await
            {
                Ok(Ok(Some(AgentMessage::Hello(hello)))) => hello,
                other => {
                    kill.notify_one();
                    let why = match other {
                        Err(_) => format!(
                            "the agent did not say hello within {} s",
                            HELLO_TIMEOUT.as_secs()
                        ),
                        Ok(Ok(Some(msg))) => {
                            format!("the agent spoke before saying hello: {msg:?}")
                        }
                        Ok(Ok(None)) => {
                            let exit = wait_exit(exited.clone(), REAP_TIMEOUT).await;
                            format!(
                                "the agent exited at start ({})",
                                exit.map_or("exit status unknown".to_string(), |e| e.to_string())
                            )
                        }
                        Ok(Err(e)) => format!("the agent's first message is unreadable: {e}"),
                    };
                    // Give the stderr reader a moment to catch the agent's last words.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let tail = shared.stderr_tail();
                    let tail = tail.trim();
                    return Err(SandboxError::Launch(if tail.is_empty() {
                        why
                    } else {
                        format!("{why}; agent stderr: {tail}")
                    }));
                }
            };
        if hello.protocol != PROTOCOL_VERSION {
            kill.notify_one();
            return Err(SandboxError::Launch(format!(
                "the agent speaks protocol {} (version {}), this host speaks {PROTOCOL_VERSION}",
                hello.protocol, hello.version
            )));
        }

        tokio::spawn(read_loop(
            stdout,
            Arc::clone(&shared),
            exited.clone(),
            Arc::clone(&kill),
        ));

        Ok(AgentProcess {
            outbox,
            shared,
            next_id: AtomicU64::new(1),
            hello,
            pid,
            kill,
            exited,
            session_leader,
        })
    }

    pub(crate) fn hello(&self) -> &Hello {
        &self.hello
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Why the agent can no longer be used, if it cannot.
    pub(crate) fn failure(&self) -> Option<SandboxError> {
        self.shared.pending().closed.clone()
    }

    pub(crate) async fn call(
        &self,
        call: ToolCall,
        cancel: CancellationToken,
    ) -> Result<ToolOutcome, SandboxError> {
        if cancel.is_cancelled() {
            return Err(SandboxError::Cancelled);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let rx = {
            let mut p = self.shared.pending();
            if let Some(err) = &p.closed {
                return Err(err.clone());
            }
            let (tx, rx) = oneshot::channel();
            p.calls.insert(id, tx);
            rx
        };
        if self.outbox.send(HostMessage::Call { id, call }).is_err() {
            self.shared.pending().calls.remove(&id);
            return Err(self.closed_error());
        }
        tokio::select! {
            r = rx => r.map_err(|_| self.closed_error()),
            _ = cancel.cancelled() => {
                // The agent stops the work and still answers; nobody waits for that answer.
                self.shared.pending().calls.remove(&id);
                let _ = self.outbox.send(HostMessage::Cancel { id });
                Err(SandboxError::Cancelled)
            }
        }
    }

    /// Opens a process in the box; see [`crate::Sandbox::spawn_process`].
    pub(crate) async fn spawn_process(
        &self,
        spec: ProcessSpec,
    ) -> Result<BoxProcess, SandboxError> {
        if spec.command.is_empty() {
            return Err(SandboxError::Spawn("the command is empty".to_string()));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (route, spawned, unstarted) = process::open(id);
        {
            let mut p = self.shared.pending();
            if let Some(err) = &p.closed {
                return Err(err.clone());
            }
            p.processes.insert(id, route);
        }
        // Armed until the answer arrives: a caller that gives up waiting must not leave the
        // process running with nobody holding it.
        let mut abandon = Abandon {
            id,
            outbox: &self.outbox,
            armed: true,
        };
        if self.outbox.send(HostMessage::Spawn { id, spec }).is_err() {
            abandon.armed = false;
            self.shared.pending().processes.remove(&id);
            return Err(self.closed_error());
        }
        let answer = spawned.await;
        abandon.armed = false;
        match answer {
            Ok(Ok(())) => Ok(unstarted.start(self.outbox.clone())),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(self.closed_error()),
        }
    }

    fn closed_error(&self) -> SandboxError {
        self.shared.pending().closed.clone().unwrap_or_else(|| {
            SandboxError::Protocol("the connection to the agent closed".to_string())
        })
    }

    /// Asks the agent to stop everything and exit; kills it if it does not in time.
    pub(crate) async fn shutdown(&self) {
        {
            let mut p = self.shared.pending();
            p.shutting_down = true;
        }
        let _ = self.outbox.send(HostMessage::Shutdown);
        if wait_exit(self.exited.clone(), SHUTDOWN_GRACE)
            .await
            .is_none()
        {
            self.kill.notify_one();
            let _ = wait_exit(self.exited.clone(), REAP_TIMEOUT).await;
        }
        self.shared.close(SandboxError::Shutdown);
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        // Dropped without `shutdown` (a panic, a cancelled task): nothing of the box may
        // outlive its handle. The supervisor does the killing; if the runtime is already
        // gone, `kill_on_drop` still takes the agent and the session is swept here.
        if self.exited.borrow().is_none() {
            if self.session_leader
                && let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok())
            {
                procs::kill_session(pid, None);
            }
            self.kill.notify_one();
        }
    }
}

/// Kills a process whose spawn the caller stopped waiting for.
struct Abandon<'a> {
    id: u64,
    outbox: &'a mpsc::UnboundedSender<HostMessage>,
    armed: bool,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.outbox.send(HostMessage::Kill { id: self.id });
        }
    }
}

async fn wait_exit(
    mut exited: watch::Receiver<Option<ExitInfo>>,
    within: Duration,
) -> Option<ExitInfo> {
    tokio::time::timeout(within, async {
        loop {
            if let Some(info) = *exited.borrow_and_update() {
                return Some(info);
            }
            if exited.changed().await.is_err() {
                return *exited.borrow();
            }
        }
    })
    .await
    .ok()
    .flatten()
}

async fn read_loop(
    mut stdout: ChildStdout,
    shared: Arc<Shared>,
    exited: watch::Receiver<Option<ExitInfo>>,
    kill: Arc<Notify>,
) {
    let err = loop {
        match read_frame::<_, AgentMessage>(&mut stdout).await {
            Ok(Some(AgentMessage::Result { id, result })) => {
                let waiter = shared.pending().calls.remove(&id);
                if let Some(tx) = waiter {
                    let _ = tx.send(result);
                }
            }
            Ok(Some(AgentMessage::Pong { .. })) => {}
            Ok(Some(AgentMessage::Spawned { id })) => {
                if let Some(route) = shared.pending().processes.get_mut(&id) {
                    route.on_spawned();
                }
            }
            Ok(Some(AgentMessage::Stdout { id, data_base64 })) => {
                let delivered = shared
                    .pending()
                    .processes
                    .get(&id)
                    .map(|route| route.on_stdout(&data_base64));
                if let Some(Err(e)) = delivered {
                    kill.notify_one();
                    break SandboxError::Protocol(e);
                }
            }
            Ok(Some(AgentMessage::StdinAck { id, bytes })) => {
                if let Some(route) = shared.pending().processes.get(&id) {
                    route.on_stdin_ack(bytes);
                }
            }
            Ok(Some(AgentMessage::ProcessExited {
                id,
                code,
                signal,
                stderr_tail,
            })) => {
                let route = shared.pending().processes.remove(&id);
                if let Some(route) = route {
                    route.on_exit(ProcessExit {
                        code,
                        signal,
                        stderr_tail,
                    });
                }
            }
            Ok(Some(AgentMessage::Hello(_))) => {
                kill.notify_one();
                break SandboxError::Protocol("the agent said hello twice".to_string());
            }
            Ok(None) | Err(FrameError::Truncated) => {
                let mut exit = wait_exit(exited.clone(), REAP_TIMEOUT).await;
                if exit.is_none() {
                    // Closed its stdout but still running: it is of no use any more.
                    kill.notify_one();
                    exit = wait_exit(exited.clone(), REAP_TIMEOUT).await;
                }
                // Let the stderr reader catch up with the agent's last words.
                tokio::time::sleep(Duration::from_millis(50)).await;
                break SandboxError::AgentDied {
                    exit,
                    stderr_tail: shared.stderr_tail(),
                };
            }
            Err(e) => {
                kill.notify_one();
                break SandboxError::Protocol(e.to_string());
            }
        }
    };
    if !matches!(err, SandboxError::AgentDied { .. }) {
        tracing::warn!("sandbox agent connection failed: {err}");
    }
    shared.close(err);
}
