//! The in-box agent: the first process of every box. It reads [`HostMessage`]s from stdin,
//! runs the tools with the box's own view of the filesystem, and writes [`AgentMessage`]s to
//! stdout. Its working directory at start is the workspace (`/workspace` in an isolated box,
//! the session's folder for the `local` backend); relative tool paths resolve against it.
//!
//! Calls run concurrently, each in its own task, except `bash`, whose calls queue for the one
//! persistent shell. Long-lived processes the host opens ([`HostMessage::Spawn`]) stream their
//! stdin and stdout over the same channel (see `process`). Nothing but protocol frames may ever be written to stdout; diagnostics go
//! to stderr, which the host keeps a tail of.

mod bash;
mod files;
mod process;
mod search;
mod text;

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::SandboxError;
use crate::procs;
use crate::protocol::{
    AgentMessage, FrameError, Hello, HostMessage, PROTOCOL_VERSION, ToolCall, ToolOutcome,
    read_frame, write_frame,
};

/// The agent process's entry point (`oma sandbox-agent [--harden] [--writable PATH]…`, and
/// the `oma-sandbox-agent` test binary). Hardening is applied here, before the async runtime
/// starts any thread: Landlock restricts only the calling thread and the threads and
/// processes it creates afterwards, so it must come first.
pub fn process_main(args: Vec<String>) -> std::process::ExitCode {
    use std::process::ExitCode;
    let hardening = match crate::harden::Hardening::from_args(args) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("oma sandbox-agent: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A session of its own: every process the tools start stays in it, so the box can be torn
    // down completely (see `procs`). An isolated box's launcher already made it one.
    if !procs::leads_own_session()
        && let Err(e) = rustix::process::setsid()
    {
        eprintln!(
            "oma sandbox-agent: setsid failed ({e}); processes started by tools may outlive the box"
        );
    }
    if let Err(e) = hardening.apply() {
        // Never run tools in a box that is weaker than the launcher asked for.
        eprintln!("oma sandbox-agent: cannot harden the box: {e}");
        return ExitCode::FAILURE;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("oma sandbox-agent: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !hardening.exec.is_empty() {
        return rt.block_on(exec(hardening.egress_socket, hardening.exec));
    }
    match rt.block_on(run_stdio(hardening.egress_socket)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oma sandbox-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--exec`: one command in the hardened box, with the egress bridge up; its exit status is
/// this process's. Its output goes straight to this process's stdout and stderr.
async fn exec(egress_socket: Option<PathBuf>, command: Vec<String>) -> std::process::ExitCode {
    use std::process::ExitCode;
    if let Some(socket) = egress_socket
        && let Err(e) = egress_bridge(socket).await
    {
        eprintln!("oma sandbox-agent: {e}");
        return ExitCode::FAILURE;
    }
    let Some((program, args)) = command.split_first() else {
        return ExitCode::FAILURE;
    };
    match tokio::process::Command::new(program)
        .args(args)
        .status()
        .await
    {
        Ok(status) => match status.code() {
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            None => ExitCode::from(137),
        },
        Err(e) => {
            eprintln!(
                "oma sandbox-agent: cannot run `{program}`: {e} (is it installed on this host?)"
            );
            ExitCode::from(127)
        }
    }
}

/// Runs the agent on this process's stdin/stdout until the host closes stdin or sends
/// `shutdown`.
async fn run_stdio(egress_socket: Option<PathBuf>) -> Result<(), SandboxError> {
    if let Some(socket) = egress_socket {
        egress_bridge(socket).await?;
    }
    let workspace = std::env::current_dir()
        .map_err(|e| SandboxError::Launch(format!("cannot read the working directory: {e}")))?;
    let (reader, writer) = stdio_channel();
    run(reader, writer, workspace).await
}

/// Serves `127.0.0.1:EGRESS_PORT` inside the box, forwarding every connection to the
/// session's egress socket (bound into the box by the launcher). Tools reach the network only
/// through it, as an HTTP proxy (`HTTP_PROXY`/`HTTPS_PROXY` point here). Bound before the first
/// call, so a tool never races the bridge.
async fn egress_bridge(socket: PathBuf) -> Result<(), SandboxError> {
    let addr = (std::net::Ipv4Addr::LOCALHOST, crate::harden::EGRESS_PORT);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        SandboxError::Launch(format!(
            "cannot listen on the egress bridge port {addr:?}: {e}"
        ))
    })?;
    tokio::spawn(async move {
        loop {
            let Ok((mut inside, _)) = listener.accept().await else {
                continue;
            };
            let socket = socket.clone();
            tokio::spawn(async move {
                match tokio::net::UnixStream::connect(&socket).await {
                    Ok(mut outside) => {
                        let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
                    }
                    Err(e) => eprintln!("oma sandbox-agent: egress socket unreachable: {e}"),
                }
            });
        }
    });
    Ok(())
}

type BoxedReader = Box<dyn AsyncRead + Send + Unpin>;
type BoxedWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// Stdin/stdout as non-blocking pipes when they are pipes (always, under a launcher): unlike
/// `tokio::io::stdin`, that needs no blocking thread that would keep the process alive after
/// a `shutdown`. Falls back to tokio's handles otherwise (a terminal, when debugging).
fn stdio_channel() -> (BoxedReader, BoxedWriter) {
    use tokio::net::unix::pipe;
    let reader: BoxedReader = match std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Receiver::from_owned_fd)
    {
        Ok(r) => Box::new(r),
        Err(_) => Box::new(tokio::io::stdin()),
    };
    let writer: BoxedWriter = match std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Sender::from_owned_fd)
    {
        Ok(w) => Box::new(w),
        Err(_) => Box::new(tokio::io::stdout()),
    };
    (reader, writer)
}

/// The agent loop over any byte channel (tests drive it through an in-memory duplex).
pub async fn run<R, W>(mut reader: R, mut writer: W, workspace: PathBuf) -> Result<(), SandboxError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let workspace = workspace
        .canonicalize()
        .map_err(|e| SandboxError::Launch(format!("workspace {}: {e}", workspace.display())))?;
    let agent = Arc::new(Agent::new(workspace));

    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<AgentMessage>();
    let writer_task = tokio::spawn(async move {
        while let Some(msg) = out_rx.recv().await {
            if let Err(e) = write_frame(&mut writer, &msg).await {
                // The host is gone; nobody is left to answer.
                eprintln!("oma sandbox-agent: cannot write to the host: {e}");
                return;
            }
        }
    });
    // Cannot fail: the writer task holds the receiver until every sender is dropped.
    let _ = out_tx.send(AgentMessage::Hello(agent.hello()));

    let result = loop {
        let msg = match read_frame::<_, HostMessage>(&mut reader).await {
            Ok(Some(msg)) => msg,
            Ok(None) => break Ok(()),
            Err(FrameError::Json(e)) => {
                // One bad message does not prove the stream is out of sync (the length prefix
                // was fine), but the host and agent disagree about the protocol: stop loudly.
                break Err(SandboxError::Protocol(format!(
                    "unreadable message from the host: {e}"
                )));
            }
            Err(e) => break Err(SandboxError::Protocol(e.to_string())),
        };
        match msg {
            HostMessage::Call { id, call } => agent.start_call(id, call, out_tx.clone()),
            HostMessage::Cancel { id } => agent.cancel(id),
            HostMessage::Ping { nonce } => {
                let _ = out_tx.send(AgentMessage::Pong {
                    nonce,
                    hello: agent.hello(),
                });
            }
            HostMessage::Shutdown => break Ok(()),
            HostMessage::Spawn { id, spec } => agent.processes.spawn(id, spec, out_tx.clone()),
            HostMessage::Stdin { id, data_base64 } => agent.processes.stdin(id, &data_base64),
            HostMessage::CloseStdin { id } => agent.processes.close_stdin(id),
            HostMessage::Kill { id } => agent.processes.kill(id),
            HostMessage::StdoutAck { id, bytes } => agent.processes.stdout_ack(id, bytes),
        }
    };
    if let Err(e) = &result {
        eprintln!("oma sandbox-agent: {e}");
    }

    agent.shutdown().await;
    drop(out_tx);
    // Results that were already queued still go out, so a host that sent `shutdown` after
    // its last call does not lose the answer.
    let _ = writer_task.await;
    result
}

struct Agent {
    workspace: PathBuf,
    bash: bash::BashTool,
    processes: Arc<process::Processes>,
    /// Cancellation handles of the calls still running.
    inflight: Mutex<HashMap<u64, CancellationToken>>,
    /// Cancelled at shutdown; every call's token is a child of it.
    root: CancellationToken,
}

impl Agent {
    fn new(workspace: PathBuf) -> Self {
        let spared = procs::SparedGroups::default();
        Agent {
            bash: bash::BashTool::new(workspace.clone(), spared.clone()),
            processes: Arc::new(process::Processes::new(workspace.clone(), spared)),
            workspace,
            inflight: Mutex::new(HashMap::new()),
            root: CancellationToken::new(),
        }
    }

    fn hello(&self) -> Hello {
        Hello {
            protocol: PROTOCOL_VERSION,
            version: env!("CARGO_PKG_VERSION").to_string(),
            workspace: self.workspace.display().to_string(),
            pid: std::process::id(),
        }
    }

    fn start_call(
        self: &Arc<Self>,
        id: u64,
        call: ToolCall,
        out: mpsc::UnboundedSender<AgentMessage>,
    ) {
        let token = self.root.child_token();
        {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            if inflight.contains_key(&id) {
                let _ = out.send(AgentMessage::Result {
                    id,
                    result: ToolOutcome::error(format!(
                        "internal error: call id {id} is already running"
                    )),
                });
                return;
            }
            inflight.insert(id, token.clone());
        }
        let agent = Arc::clone(self);
        tokio::spawn(async move {
            let result = agent.execute(id, call, token).await;
            agent
                .inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            let _ = out.send(AgentMessage::Result { id, result });
        });
    }

    fn cancel(&self, id: u64) {
        let inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(token) = inflight.get(&id) {
            token.cancel();
        }
    }

    async fn execute(&self, id: u64, call: ToolCall, cancel: CancellationToken) -> ToolOutcome {
        let ws = self.workspace.clone();
        match call {
            ToolCall::Bash {
                command,
                restart,
                timeout_ms,
            } => {
                self.bash
                    .call(id, command, restart, timeout_ms, &cancel)
                    .await
            }
            ToolCall::Read {
                file_path,
                view_range,
            } => blocking(move || files::read(&ws, &file_path, view_range)).await,
            ToolCall::Write { file_path, content } => {
                blocking(move || files::write(&ws, &file_path, &content)).await
            }
            ToolCall::Edit {
                file_path,
                old_string,
                new_string,
                replace_all,
            } => {
                blocking(move || {
                    files::edit(&ws, &file_path, &old_string, &new_string, replace_all)
                })
                .await
            }
            ToolCall::Glob { pattern, path } => {
                let token = cancel.clone();
                blocking(move || search::glob(&ws, &pattern, path.as_deref(), &token)).await
            }
            ToolCall::Grep { pattern, path } => {
                let token = cancel.clone();
                blocking(move || search::grep(&ws, &pattern, path.as_deref(), &token)).await
            }
        }
    }

    /// Stops every running call and every process of the box.
    async fn shutdown(&self) {
        self.root.cancel();
        self.processes.shutdown();
        self.bash.shutdown().await;
        // Anything else the tools left behind (daemons started from bash, …). Only when this
        // process leads its own session: otherwise the session is someone else's (a test
        // harness, a terminal) and must not be touched.
        if procs::leads_own_session() {
            let me = std::process::id() as i32;
            procs::kill_session(me, Some(me));
        }
    }
}

/// Runs file-system work off the async threads. A panic in a tool is reported to the model as
/// an internal error instead of taking the agent down.
async fn blocking<F>(f: F) -> ToolOutcome
where
    F: FnOnce() -> ToolOutcome + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        ToolOutcome::error(format!("internal error: the tool failed unexpectedly: {e}"))
    })
}

/// Resolves a tool path: relative paths against the workspace, absolute paths as given, then
/// `.` and `..` collapsed lexically (so the path shown back to the model is clean). In an
/// isolated box the box's filesystem view is the boundary; the `local` backend has none.
pub(crate) fn resolve_path(workspace: &Path, raw: &str) -> Result<PathBuf, String> {
    if raw.is_empty() {
        return Err("the path is empty".to_string());
    }
    if raw.contains('\0') {
        return Err("the path contains a NUL byte".to_string());
    }
    let p = Path::new(raw);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        workspace.join(p)
    };
    Ok(normalize(&joined))
}

/// Lexical normalisation: drops `.`, applies `..` (never above `/`).
pub(crate) fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if out.parent().is_some() {
                    out.pop();
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push("/");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::OutputBlock;

    #[test]
    fn paths_resolve_against_the_workspace() {
        let ws = Path::new("/workspace");
        assert_eq!(
            resolve_path(ws, "a/./b/../c.txt").unwrap(),
            PathBuf::from("/workspace/a/c.txt")
        );
        assert_eq!(
            resolve_path(ws, "/etc/../tmp/x").unwrap(),
            PathBuf::from("/tmp/x")
        );
        assert_eq!(resolve_path(ws, "/..").unwrap(), PathBuf::from("/"));
        assert!(resolve_path(ws, "").is_err());
    }

    /// The whole loop in-process: hello, concurrent calls, a ping, and shutdown.
    #[tokio::test]
    async fn agent_loop_answers_calls_over_frames() {
        let dir = tempfile::tempdir().unwrap();
        let (host, agent_side) = tokio::io::duplex(1 << 20);
        let (agent_r, agent_w) = tokio::io::split(agent_side);
        let ws = dir.path().to_path_buf();
        let agent = tokio::spawn(run(agent_r, agent_w, ws));
        let (mut host_r, mut host_w) = tokio::io::split(host);

        let hello: AgentMessage = read_frame(&mut host_r).await.unwrap().unwrap();
        let AgentMessage::Hello(hello) = hello else {
            panic!("expected hello, got {hello:?}")
        };
        assert_eq!(hello.protocol, PROTOCOL_VERSION);
        assert_eq!(
            PathBuf::from(&hello.workspace),
            dir.path().canonicalize().unwrap()
        );

        write_frame(
            &mut host_w,
            &HostMessage::Call {
                id: 1,
                call: ToolCall::Write {
                    file_path: "a.txt".into(),
                    content: "one\ntwo\n".into(),
                },
            },
        )
        .await
        .unwrap();
        let msg: AgentMessage = read_frame(&mut host_r).await.unwrap().unwrap();
        assert!(matches!(msg, AgentMessage::Result { id: 1, ref result } if !result.is_error));

        write_frame(
            &mut host_w,
            &HostMessage::Call {
                id: 2,
                call: ToolCall::Read {
                    file_path: "a.txt".into(),
                    view_range: None,
                },
            },
        )
        .await
        .unwrap();
        write_frame(&mut host_w, &HostMessage::Ping { nonce: 9 })
            .await
            .unwrap();
        let mut got_read = false;
        let mut got_pong = false;
        for _ in 0..2 {
            match read_frame::<_, AgentMessage>(&mut host_r)
                .await
                .unwrap()
                .unwrap()
            {
                AgentMessage::Result { id: 2, result } => {
                    assert_eq!(
                        result.content,
                        vec![OutputBlock::Text {
                            text: "     1\tone\n     2\ttwo".into()
                        }]
                    );
                    got_read = true;
                }
                AgentMessage::Pong { nonce: 9, .. } => got_pong = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(got_read && got_pong);

        write_frame(&mut host_w, &HostMessage::Shutdown)
            .await
            .unwrap();
        agent.await.unwrap().unwrap();
    }
}
