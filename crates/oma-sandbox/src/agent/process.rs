//! Long-lived processes the host opens in the box (a stdio MCP server, say), their stdin and
//! stdout relayed over the protocol.
//!
//! Each process leads its own process group, so `Kill` reaches everything it started, and
//! the group is spared by the bash tool's sweeps (it is not a leftover of the shell). When
//! the process itself exits, whatever is left of its group is killed too: the process is the
//! unit the host talks to. `ProcessExited` goes out after the last `Stdout` frame.
//!
//! Flow control: the agent reads a process's stdout only while fewer than
//! [`PROCESS_WINDOW_BYTES`] of it are unacknowledged by the host, so a host that stops
//! reading stops the process (its pipe fills) instead of filling the agent's memory. In the
//! other direction the agent acknowledges stdin bytes once written to the process, and the
//! host sends no more than a window ahead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStdin, Command};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::error::ExitInfo;
use crate::procs;
use crate::protocol::{AgentMessage, PROCESS_CHUNK_BYTES, PROCESS_WINDOW_BYTES, ProcessSpec};

/// Processes one box may have open at once.
pub(crate) const MAX_PROCESSES: usize = 20;
/// Bytes of a process's stderr kept for its exit report.
const STDERR_TAIL: usize = 4096;
/// Once a process has exited (and its group was killed), how long its stdout and stderr may
/// stay open before the agent stops waiting for them: a descendant that left the group could
/// hold them forever.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

type Out = mpsc::UnboundedSender<AgentMessage>;

enum StdinOp {
    Data(Vec<u8>),
    Close,
}

struct Handle {
    /// Also the process group id.
    pid: i32,
    stdin: mpsc::UnboundedSender<StdinOp>,
    /// Permits are stdout bytes the agent may still send before the host acknowledges.
    stdout_credit: Arc<Semaphore>,
}

/// The box's open processes, by host-chosen id.
pub(crate) struct Processes {
    workspace: PathBuf,
    table: Mutex<HashMap<u64, Handle>>,
    /// Set at shutdown (under the table's lock): no process may start after it.
    closed: AtomicBool,
    spared: procs::SparedGroups,
}

impl Processes {
    pub(crate) fn new(workspace: PathBuf, spared: procs::SparedGroups) -> Self {
        Processes {
            workspace,
            table: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            spared,
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Handle>> {
        // The map holds plain handles; a panic elsewhere cannot leave it half-updated.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts process `id`; answers `Spawned`, or `ProcessExited` with the reason.
    pub(crate) fn spawn(self: &Arc<Self>, id: u64, spec: ProcessSpec, out: Out) {
        let refuse = |why: String| {
            let _ = out.send(AgentMessage::ProcessExited {
                id,
                code: None,
                signal: None,
                stderr_tail: why,
            });
        };
        let cmd = match command(&self.workspace, &spec) {
            Ok(cmd) => cmd,
            Err(why) => return refuse(why),
        };
        // The table lock is held from the checks to the insert, so concurrent spawns cannot
        // both pass the limit.
        let mut table = self.table();
        if self.closed.load(Ordering::SeqCst) {
            return refuse("the sandbox is shutting down".to_string());
        }
        if table.contains_key(&id) {
            return refuse(format!("internal error: process id {id} is already in use"));
        }
        if table.len() >= MAX_PROCESSES {
            return refuse(format!(
                "too many processes: a sandbox runs at most {MAX_PROCESSES} at once"
            ));
        }
        let program = spec.command.first().cloned().unwrap_or_default();
        let mut cmd = cmd;
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => return refuse(format!("`{program}`: {e}")),
        };
        let (Some(pid), Some(stdin), Some(stdout), Some(stderr)) = (
            child.id().and_then(|p| i32::try_from(p).ok()),
            child.stdin.take(),
            child.stdout.take(),
            child.stderr.take(),
        ) else {
            // `kill_on_drop` takes the child with it.
            return refuse(format!("`{program}`: its pipes are missing"));
        };
        self.spared.insert(pid);
        let (stdin_tx, stdin_rx) = mpsc::unbounded_channel();
        let credit = Arc::new(Semaphore::new(PROCESS_WINDOW_BYTES));
        table.insert(
            id,
            Handle {
                pid,
                stdin: stdin_tx,
                stdout_credit: Arc::clone(&credit),
            },
        );
        drop(table);
        // Before any task can send `Stdout`, so the host hears of the process first.
        let _ = out.send(AgentMessage::Spawned { id });

        tokio::spawn(pump_stdin(id, stdin, stdin_rx, out.clone()));
        let tail = Arc::new(Mutex::new(Vec::new()));
        let stderr_task = tokio::spawn(keep_tail(stderr, Arc::clone(&tail)));
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let (exited_tx, exited_rx) = watch::channel(false);
            let pump = tokio::spawn(pump_stdout(id, stdout, credit, out.clone(), exited_rx));
            let status = child.wait().await;
            // Helpers it left behind go with it, so its pipes close. (The group id cannot have
            // been reused yet: a pid is not handed out while its group has members.)
            procs::kill_group(pid);
            let _ = exited_tx.send(true);
            let _ = pump.await;
            if tokio::time::timeout(DRAIN_GRACE, stderr_task)
                .await
                .is_err()
            {
                // Held open by an escaped descendant: report what arrived so far.
            }
            let stderr_tail = {
                let bytes = tail.lock().unwrap_or_else(|p| p.into_inner());
                String::from_utf8_lossy(&bytes).into_owned()
            };
            let exit = status.ok().map(ExitInfo::from_status);
            this.table().remove(&id);
            this.spared.remove(pid);
            let _ = out.send(AgentMessage::ProcessExited {
                id,
                code: exit.and_then(|e| e.code),
                signal: exit.and_then(|e| e.signal),
                stderr_tail,
            });
        });
    }

    /// Queues bytes for process `id`'s stdin. Unknown ids are ignored: the process ended and
    /// the host hears so from `ProcessExited`.
    pub(crate) fn stdin(&self, id: u64, data_base64: &str) {
        let data = match base64::engine::general_purpose::STANDARD.decode(data_base64) {
            Ok(data) => data,
            Err(e) => {
                eprintln!("oma sandbox-agent: process {id}: stdin bytes are not base64: {e}");
                return;
            }
        };
        if let Some(h) = self.table().get(&id) {
            let _ = h.stdin.send(StdinOp::Data(data));
        }
    }

    pub(crate) fn close_stdin(&self, id: u64) {
        if let Some(h) = self.table().get(&id) {
            let _ = h.stdin.send(StdinOp::Close);
        }
    }

    /// The host consumed `bytes` of process `id`'s stdout.
    pub(crate) fn stdout_ack(&self, id: u64, bytes: u64) {
        if let Some(h) = self.table().get(&id) {
            let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
            // Never more than the window: a confused host cannot make the agent buffer more.
            let room = PROCESS_WINDOW_BYTES.saturating_sub(h.stdout_credit.available_permits());
            h.stdout_credit.add_permits(bytes.min(room));
        }
    }

    /// Kills process `id` and its group. Its output is no longer wanted: the stdout pump
    /// stops, and `ProcessExited` follows promptly.
    pub(crate) fn kill(&self, id: u64) {
        if let Some(h) = self.table().get(&id) {
            h.stdout_credit.close();
            procs::kill_group(h.pid);
            procs::kill(h.pid);
        }
    }

    /// Kills every process; none may start afterwards.
    pub(crate) fn shutdown(&self) {
        let table = self.table();
        self.closed.store(true, Ordering::SeqCst);
        for h in table.values() {
            h.stdout_credit.close();
            procs::kill_group(h.pid);
            procs::kill(h.pid);
        }
    }
}

/// The command for `spec`, or why it cannot run.
fn command(workspace: &Path, spec: &ProcessSpec) -> Result<Command, String> {
    let Some((program, args)) = spec.command.split_first() else {
        return Err("the command is empty".to_string());
    };
    if program.is_empty() {
        return Err("the program name is empty".to_string());
    }
    if spec.command.iter().any(|a| a.contains('\0')) {
        return Err("the command contains a NUL byte".to_string());
    }
    for (k, v) in &spec.env {
        if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            return Err(format!("invalid environment variable {k:?}"));
        }
    }
    let cwd = match &spec.cwd {
        Some(raw) => super::resolve_path(workspace, raw).map_err(|e| format!("cwd: {e}"))?,
        None => workspace.to_path_buf(),
    };
    if !cwd.is_dir() {
        return Err(format!("cwd {} is not a directory", cwd.display()));
    }
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group: `Kill` reaches its helpers, and bash's sweeps can tell it apart.
        .process_group(0)
        .kill_on_drop(true);
    Ok(cmd)
}

/// Writes the host's bytes to the process's stdin, acknowledging each chunk once written.
/// After a write fails (the process closed its stdin or ended), later bytes are discarded but
/// still acknowledged, so the host's writer never waits for a window that cannot open.
async fn pump_stdin(
    id: u64,
    stdin: ChildStdin,
    mut rx: mpsc::UnboundedReceiver<StdinOp>,
    out: Out,
) {
    let mut stdin = Some(stdin);
    while let Some(op) = rx.recv().await {
        match op {
            StdinOp::Data(data) => {
                if let Some(w) = stdin.as_mut()
                    && w.write_all(&data).await.is_err()
                {
                    stdin = None;
                }
                let _ = out.send(AgentMessage::StdinAck {
                    id,
                    bytes: data.len() as u64,
                });
            }
            // Dropping the pipe is what the process sees as end of input.
            StdinOp::Close => stdin = None,
        }
    }
}

/// Relays stdout until it closes, within the host's window. After the process exited, a read
/// that waits longer than [`DRAIN_GRACE`] ends it.
async fn pump_stdout<R: AsyncRead + Unpin>(
    id: u64,
    mut stdout: R,
    credit: Arc<Semaphore>,
    out: Out,
    mut exited: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; PROCESS_CHUNK_BYTES];
    loop {
        // Waiting for room first keeps the rest in the pipe, where it stalls the writer.
        let room = match credit.acquire().await {
            Ok(permit) => {
                drop(permit);
                credit.available_permits().clamp(1, PROCESS_CHUNK_BYTES)
            }
            Err(_) => return,
        };
        let read = if *exited.borrow() {
            match tokio::time::timeout(DRAIN_GRACE, stdout.read(&mut buf[..room])).await {
                Ok(r) => r,
                Err(_) => return,
            }
        } else {
            tokio::select! {
                r = stdout.read(&mut buf[..room]) => r,
                // Re-enter the loop to read under the drain deadline.
                _ = exited.changed() => continue,
            }
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // `n` is at most one chunk, far below `u32::MAX`.
        match credit
            .acquire_many(u32::try_from(n).unwrap_or(u32::MAX))
            .await
        {
            Ok(permits) => permits.forget(),
            Err(_) => return,
        }
        let data_base64 = base64::engine::general_purpose::STANDARD.encode(&buf[..n]);
        if out.send(AgentMessage::Stdout { id, data_base64 }).is_err() {
            return;
        }
    }
}

/// Keeps the last [`STDERR_TAIL`] bytes of `stderr`, reading it to the end so the process
/// never blocks on a full stderr pipe.
async fn keep_tail<R: AsyncRead + Unpin>(mut stderr: R, tail: Arc<Mutex<Vec<u8>>>) {
    let mut buf = vec![0u8; 8192];
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            return;
        }
        let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
        t.extend_from_slice(&buf[..n]);
        if t.len() > STDERR_TAIL {
            let cut = t.len() - STDERR_TAIL;
            t.drain(..cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine as _;

    use crate::agent::run;
    use crate::protocol::{AgentMessage, HostMessage, ProcessSpec, read_frame, write_frame};

    fn b64(data: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(data)
    }

    fn unb64(data: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap()
    }

    fn spec(argv: &[&str]) -> ProcessSpec {
        ProcessSpec {
            command: argv.iter().map(|s| s.to_string()).collect(),
            ..ProcessSpec::default()
        }
    }

    /// The in-process agent loop, with a host side that reads frames under a deadline.
    struct Host<R, W> {
        r: R,
        w: W,
    }

    type Channel = tokio::io::ReadHalf<tokio::io::DuplexStream>;
    type ChannelW = tokio::io::WriteHalf<tokio::io::DuplexStream>;

    /// An agent loop serving `workspace` over an in-memory channel, past its hello.
    async fn start_agent(
        workspace: &std::path::Path,
    ) -> (
        Host<Channel, ChannelW>,
        tokio::task::JoinHandle<Result<(), crate::SandboxError>>,
    ) {
        let (host, agent_side) = tokio::io::duplex(1 << 20);
        let (agent_r, agent_w) = tokio::io::split(agent_side);
        let agent = tokio::spawn(run(agent_r, agent_w, workspace.to_path_buf()));
        let (r, w) = tokio::io::split(host);
        let mut host = Host { r, w };
        assert!(matches!(host.recv().await, AgentMessage::Hello(_)));
        (host, agent)
    }

    impl<R, W> Host<R, W>
    where
        R: tokio::io::AsyncRead + Unpin,
        W: tokio::io::AsyncWrite + Unpin,
    {
        async fn send(&mut self, msg: HostMessage) {
            write_frame(&mut self.w, &msg).await.unwrap();
        }

        async fn recv(&mut self) -> AgentMessage {
            tokio::time::timeout(Duration::from_secs(20), read_frame(&mut self.r))
                .await
                .expect("a frame from the agent in time")
                .unwrap()
                .expect("the agent closed the channel")
        }

        /// Reads until `ProcessExited` for `id`, collecting its output (and acknowledging it,
        /// as the host does).
        async fn until_exit(&mut self, id: u64) -> (Vec<u8>, AgentMessage) {
            let mut out = Vec::new();
            loop {
                match self.recv().await {
                    AgentMessage::Stdout { id: i, data_base64 } if i == id => {
                        let data = unb64(&data_base64);
                        self.send(HostMessage::StdoutAck {
                            id,
                            bytes: data.len() as u64,
                        })
                        .await;
                        out.extend(data);
                    }
                    msg @ AgentMessage::ProcessExited { id: i, .. } if i == id => {
                        return (out, msg);
                    }
                    _ => {}
                }
            }
        }
    }

    #[tokio::test]
    async fn agent_loop_relays_process_streams_over_frames() {
        let dir = tempfile::tempdir().unwrap();
        let (mut host, agent) = start_agent(dir.path()).await;

        // cat: what goes in comes out; closing stdin ends it with 0.
        host.send(HostMessage::Spawn {
            id: 1,
            spec: spec(&["cat"]),
        })
        .await;
        assert_eq!(host.recv().await, AgentMessage::Spawned { id: 1 });
        host.send(HostMessage::Stdin {
            id: 1,
            data_base64: b64(b"hello\nworld\n"),
        })
        .await;
        host.send(HostMessage::CloseStdin { id: 1 }).await;
        let (out, exit) = host.until_exit(1).await;
        assert_eq!(out, b"hello\nworld\n");
        assert_eq!(
            exit,
            AgentMessage::ProcessExited {
                id: 1,
                code: Some(0),
                signal: None,
                stderr_tail: String::new()
            }
        );

        // Environment, working directory and the stderr tail.
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        host.send(HostMessage::Spawn {
            id: 2,
            spec: ProcessSpec {
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo \"$GREETING $(basename \"$PWD\")\"; echo oops >&2; exit 3".into(),
                ],
                env: vec![("GREETING".into(), "hi".into())],
                cwd: Some("sub".into()),
            },
        })
        .await;
        assert_eq!(host.recv().await, AgentMessage::Spawned { id: 2 });
        let (out, exit) = host.until_exit(2).await;
        assert_eq!(out, b"hi sub\n");
        assert_eq!(
            exit,
            AgentMessage::ProcessExited {
                id: 2,
                code: Some(3),
                signal: None,
                stderr_tail: "oops\n".into()
            }
        );

        // A program that does not exist never starts, and says which.
        host.send(HostMessage::Spawn {
            id: 3,
            spec: spec(&["no-such-program-oma"]),
        })
        .await;
        match host.recv().await {
            AgentMessage::ProcessExited {
                id: 3,
                code: None,
                signal: None,
                stderr_tail,
            } => assert!(stderr_tail.contains("no-such-program-oma"), "{stderr_tail}"),
            other => panic!("unexpected {other:?}"),
        }

        // Kill ends a process that would run for a long time, with SIGKILL.
        host.send(HostMessage::Spawn {
            id: 4,
            spec: spec(&["sleep", "1000"]),
        })
        .await;
        assert_eq!(host.recv().await, AgentMessage::Spawned { id: 4 });
        host.send(HostMessage::Kill { id: 4 }).await;
        let (_, exit) = host.until_exit(4).await;
        assert!(
            matches!(
                exit,
                AgentMessage::ProcessExited {
                    signal: Some(9),
                    ..
                }
            ),
            "{exit:?}"
        );

        host.send(HostMessage::Shutdown).await;
        agent.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn stdout_waits_for_the_hosts_acknowledgements() {
        let dir = tempfile::tempdir().unwrap();
        let (mut host, agent) = start_agent(dir.path()).await;

        // Four windows of output; without acknowledgements only one window may arrive.
        let total = 4 * super::PROCESS_WINDOW_BYTES;
        host.send(HostMessage::Spawn {
            id: 1,
            spec: spec(&["head", "-c", &total.to_string(), "/dev/zero"]),
        })
        .await;
        assert_eq!(host.recv().await, AgentMessage::Spawned { id: 1 });
        let mut unacked = 0usize;
        while unacked < super::PROCESS_WINDOW_BYTES {
            match host.recv().await {
                AgentMessage::Stdout { data_base64, .. } => unacked += unb64(&data_base64).len(),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(unacked, super::PROCESS_WINDOW_BYTES);
        // Nothing more comes until the host acknowledges: a ping is answered first.
        host.send(HostMessage::Ping { nonce: 5 }).await;
        assert!(matches!(
            host.recv().await,
            AgentMessage::Pong { nonce: 5, .. }
        ));
        host.send(HostMessage::StdoutAck {
            id: 1,
            bytes: unacked as u64,
        })
        .await;
        let (out, exit) = host.until_exit(1).await;
        assert_eq!(unacked + out.len(), total);
        assert!(matches!(
            exit,
            AgentMessage::ProcessExited { code: Some(0), .. }
        ));
        host.send(HostMessage::Shutdown).await;
        agent.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_box_opens_at_most_twenty_processes_and_shutdown_kills_them() {
        let dir = tempfile::tempdir().unwrap();
        let (mut host, agent) = start_agent(dir.path()).await;

        // Each prints its pid, then becomes a long sleep.
        let mut pids = Vec::new();
        for id in 1..=super::MAX_PROCESSES as u64 {
            host.send(HostMessage::Spawn {
                id,
                spec: spec(&["sh", "-c", "echo $$; exec sleep 1000"]),
            })
            .await;
            assert_eq!(host.recv().await, AgentMessage::Spawned { id });
            match host.recv().await {
                AgentMessage::Stdout { id: i, data_base64 } if i == id => {
                    let text = String::from_utf8(unb64(&data_base64)).unwrap();
                    pids.push(text.trim().parse::<i32>().unwrap());
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        host.send(HostMessage::Spawn {
            id: 100,
            spec: spec(&["true"]),
        })
        .await;
        match host.recv().await {
            AgentMessage::ProcessExited {
                id: 100,
                stderr_tail,
                ..
            } => assert!(stderr_tail.contains("at most 20"), "{stderr_tail}"),
            other => panic!("unexpected {other:?}"),
        }

        host.send(HostMessage::Shutdown).await;
        agent.await.unwrap().unwrap();
        for pid in pids {
            // Killed and reaped: gone from the process table (or a zombie on its way out).
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
                if stat.map_or(true, |s| s.contains(") Z ")) {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "{pid} still runs");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
