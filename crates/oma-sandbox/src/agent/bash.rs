//! The `bash` tool: one persistent shell per box.
//!
//! The shell is `bash --noprofile --norc` reading commands from a pipe, with stdout and stderr
//! on one shared pipe so their output interleaves exactly as written. It runs in monitor mode
//! (`set -m`), which gives every job its own process group, so the processes of one command
//! can be killed without killing the shell: `cd`, variables and background jobs survive.
//!
//! Each command travels as a quoted here-document (its text is never parsed by our framing)
//! that the shell `source`s with stdin from `/dev/null` (a command that reads stdin gets EOF
//! instead of eating the next command). `source` rather than `eval` because a `return` from a
//! trap ends a sourced script: on timeout or cancel the agent sends the shell `SIGUSR1`, whose
//! trap returns from the command, and kills the processes the command started. The rest of
//! the command is skipped, as with Ctrl-C in a terminal, and even a shell builtin loop stops.
//! Then a sentinel line `__OMA_DONE_<nonce>_<status>` marks the end of the output and carries
//! the exit status. The nonce is fresh per call, so output cannot fake the end of a command.
//!
//! A command that defeats this (ignores `SIGUSR1`, or is stuck inside a nested `source`) gets
//! its shell replaced after a grace period, and the model is told that the shell state is gone.

use std::collections::HashSet;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::text::{clean_terminal_output, human_bytes, utf8_tail};
use crate::error::ExitInfo;
use crate::limits::{
    BASH_DEFAULT_TIMEOUT_MS as DEFAULT_TIMEOUT_MS, BASH_MAX_TIMEOUT_MS as MAX_TIMEOUT_MS,
    BASH_OUTPUT_CAP as OUTPUT_CAP, SPILL_DIR,
};
use crate::procs;
use crate::protocol::ToolOutcome;

/// Upper bound of a spill file, so a runaway command cannot fill the disk through us.
const SPILL_CAP: u64 = 256 * 1024 * 1024;
/// Longest accepted command text.
const MAX_COMMAND_BYTES: usize = 1024 * 1024;
/// After killing a timed-out command, how long the shell has to print its sentinel before it
/// is considered wedged (a builtin loop, say) and replaced.
const KILL_GRACE: Duration = Duration::from_secs(3);
/// Read chunk size from the shell's output pipe.
const CHUNK: usize = 64 * 1024;
/// Keep this much beyond [`OUTPUT_CAP`] in memory before moving the oldest output to the
/// spill file, so spilling happens in sizeable writes.
const SPILL_SLACK: usize = 64 * 1024;

pub(crate) struct BashTool {
    workspace: PathBuf,
    /// The host's long-lived processes, which a sweep of the shell's leftovers must spare.
    spared: procs::SparedGroups,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    shell: Option<Shell>,
    /// Said once, on the next call, when the previous shell was lost.
    lost_note: Option<String>,
}

impl BashTool {
    pub(crate) fn new(workspace: PathBuf, spared: procs::SparedGroups) -> Self {
        BashTool {
            workspace,
            spared,
            state: Mutex::new(State::default()),
        }
    }

    pub(crate) async fn call(
        &self,
        call_id: u64,
        command: Option<String>,
        restart: bool,
        timeout_ms: Option<u64>,
        cancel: &CancellationToken,
    ) -> ToolOutcome {
        // Calls queue here for the one shell; a call cancelled while queued never runs.
        let mut state = tokio::select! {
            s = self.state.lock() => s,
            _ = cancel.cancelled() => {
                return ToolOutcome::error("bash: cancelled before the command started");
            }
        };
        let command = command.filter(|c| !c.trim().is_empty());

        if restart {
            if let Some(old) = state.shell.take() {
                old.kill().await;
            }
            state.lost_note = None;
            match Shell::spawn(&self.workspace, self.spared.clone()).await {
                Ok(s) => state.shell = Some(s),
                Err(e) => return ToolOutcome::error(format!("bash: cannot start a shell: {e}")),
            }
            if command.is_none() {
                return ToolOutcome::text(format!(
                    "The shell was restarted: a fresh bash in {}. The previous shell's working \
                     directory, variables and background jobs are gone.",
                    self.workspace.display()
                ));
            }
        }
        let Some(command) = command else {
            return ToolOutcome::error(
                "bash: `command` is required (or set `restart: true` to restart the shell)",
            );
        };
        if command.len() > MAX_COMMAND_BYTES {
            return ToolOutcome::error(format!(
                "bash: the command is {} long; the limit is {}. Write long scripts to a file \
                 and run the file.",
                human_bytes(command.len() as u64),
                human_bytes(MAX_COMMAND_BYTES as u64)
            ));
        }
        if command.contains('\0') {
            return ToolOutcome::error("bash: the command contains a NUL byte");
        }

        let mut notes = Vec::new();
        let requested = timeout_ms.filter(|t| *t > 0).unwrap_or(DEFAULT_TIMEOUT_MS);
        let timeout_ms = requested.min(MAX_TIMEOUT_MS);
        if requested > MAX_TIMEOUT_MS {
            notes.push(format!(
                "[timeout_ms {requested} exceeds the maximum; {MAX_TIMEOUT_MS} was used]"
            ));
        }

        if state.shell.is_none() {
            if let Some(note) = state.lost_note.take() {
                notes.push(note);
            }
            match Shell::spawn(&self.workspace, self.spared.clone()).await {
                Ok(s) => state.shell = Some(s),
                Err(e) => return ToolOutcome::error(format!("bash: cannot start a shell: {e}")),
            }
        }
        let Some(shell) = state.shell.as_mut() else {
            return ToolOutcome::error("bash: internal error: no shell");
        };

        let spill_path = self
            .workspace
            .join(SPILL_DIR)
            .join(spill_file_name(call_id));
        let run = shell
            .exec(
                &command,
                Duration::from_millis(timeout_ms),
                cancel,
                spill_path,
            )
            .await;

        if run.shell_lost {
            if let Some(old) = state.shell.take() {
                old.kill().await;
            }
            state.lost_note = Some(format!(
                "[This command ran in a new shell started in {}: the previous shell ended, so \
                 its working directory, variables and background jobs are gone.]",
                self.workspace.display()
            ));
        }
        render(run, timeout_ms, notes, &self.workspace)
    }

    /// Kills the shell and everything it started.
    pub(crate) async fn shutdown(&self) {
        let mut state = self.state.lock().await;
        if let Some(shell) = state.shell.take() {
            shell.kill().await;
        }
    }
}

fn spill_file_name(call_id: u64) -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("bash-{millis}-{call_id}.txt")
}

/// Builds the model-facing outcome of one run.
fn render(run: Run, timeout_ms: u64, notes: Vec<String>, workspace: &Path) -> ToolOutcome {
    let mut parts: Vec<String> = notes;
    if let Some(spill) = &run.spill {
        let mut s = format!(
            "[Output truncated: showing the last {} of {}. The full output is in {}",
            human_bytes(run.shown_bytes as u64),
            human_bytes(run.total_bytes),
            spill.path.display()
        );
        if spill.capped {
            s.push_str(&format!(
                " (cut off after its first {})",
                human_bytes(SPILL_CAP)
            ));
        }
        s.push_str(".]");
        parts.push(s);
    } else if let Some(err) = &run.spill_error {
        parts.push(format!(
            "[Output truncated to the last {}; saving the full output failed: {err}]",
            human_bytes(run.shown_bytes as u64)
        ));
    }
    let output = run.output.trim_end_matches('\n');
    if !output.is_empty() {
        parts.push(output.to_string());
    }
    let (footer, is_error) = match run.ending {
        Ending::Done(0) => (None, false),
        Ending::Done(code) => (Some(format!("[exit code: {code}]")), true),
        Ending::TimedOut => {
            let mut s = format!(
                "[The command timed out after {} and was killed.",
                seconds(timeout_ms)
            );
            if run.shell_lost {
                s.push_str(
                    " The shell did not recover and was replaced: the working directory and \
                     environment variables were reset.",
                );
            }
            s.push(']');
            (Some(s), true)
        }
        Ending::Cancelled => (Some("[The command was cancelled.]".to_string()), true),
        Ending::ShellExited(exit) => {
            let status = exit.and_then(|e| e.status());
            let how = exit.map_or("for an unknown reason".to_string(), |e| e.to_string());
            (
                Some(format!(
                    "[The shell exited ({how}). The next command runs in a fresh shell in {}.]",
                    workspace.display()
                )),
                status != Some(0),
            )
        }
    };
    if let Some(footer) = footer {
        parts.push(footer);
    }
    let text = if parts.is_empty() {
        "(no output)".to_string()
    } else {
        parts.join("\n")
    };
    if is_error {
        ToolOutcome::error(text)
    } else {
        ToolOutcome::text(text)
    }
}

fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The sentinel arrived with this exit status.
    Done(i32),
    TimedOut,
    Cancelled,
    /// The shell itself ended (`exit`, killed, …).
    ShellExited(Option<ExitInfo>),
}

struct Run {
    ending: Ending,
    /// Cleaned tail of the output.
    output: String,
    shown_bytes: usize,
    total_bytes: u64,
    spill: Option<SpillInfo>,
    spill_error: Option<String>,
    /// The shell is unusable and must be replaced.
    shell_lost: bool,
}

struct SpillInfo {
    path: PathBuf,
    capped: bool,
}

struct Shell {
    child: Child,
    stdin: ChildStdin,
    out: pipe::Receiver,
    pid: i32,
    /// Output that arrived after the previous sentinel (background jobs writing between
    /// calls); it belongs to the next call's output.
    leftover: Vec<u8>,
    spared: procs::SparedGroups,
}

impl Shell {
    async fn spawn(workspace: &Path, spared: procs::SparedGroups) -> std::io::Result<Shell> {
        let (reader, writer) = std::io::pipe()?;
        let mut cmd = Command::new("bash");
        cmd.arg("--noprofile")
            .arg("--norc")
            .current_dir(workspace)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(writer.try_clone()?))
            .stderr(Stdio::from(writer))
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        // The command holds the pipe's write ends; they must close here so that the read
        // end sees EOF when the shell (and every job of it) is gone.
        drop(cmd);
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| std::io::Error::other("the shell exited at once"))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no stdin pipe to the shell"))?;
        let out = pipe::Receiver::from_owned_fd(OwnedFd::from(reader))?;
        // Monitor mode, and the abort trap (see the module docs). The trap's `return` fails
        // harmlessly (silenced) when it fires between commands.
        stdin
            .write_all(b"set -m\ntrap 'builtin return 130 2>/dev/null' USR1\n")
            .await?;
        stdin.flush().await?;
        Ok(Shell {
            child,
            stdin,
            out,
            pid,
            leftover: Vec::new(),
            spared,
        })
    }

    /// Kills the shell and every process under it.
    async fn kill(mut self) {
        let table = procs::table();
        let tree = procs::descendants(&table, self.pid);
        procs::kill_trees(&table, &tree, own_pgid());
        // Jobs of a shell that already exited were re-parented away from it; when the agent
        // leads its own session they are still found there. Only the shell starts processes
        // in a box besides the host's own processes (spared), so everything else in the
        // session but the agent belongs to it.
        if procs::leads_own_session() {
            let me = std::process::id() as i32;
            procs::kill_session_sparing(me, Some(me), &self.spared.snapshot());
        }
        let _ = self.child.kill().await;
    }

    /// Runs one command. Never fails: problems are described in the returned [`Run`].
    async fn exec(
        &mut self,
        command: &str,
        timeout: Duration,
        cancel: &CancellationToken,
        spill_path: PathBuf,
    ) -> Run {
        let nonce = nonce();
        let mut collector = Collector::new(&nonce, spill_path);
        // Background jobs from earlier calls: a timeout must not kill them.
        let before: HashSet<i32> = self.children().into_iter().collect();

        let script = format!(
            "builtin source /dev/fd/3 3<<'__OMA_EOF_{nonce}' </dev/null\n{command}\n__OMA_EOF_{nonce}\n\
             builtin printf '\\n__OMA_''DONE_{nonce}_%d\\n' \"$?\"\n"
        );
        if let Err(e) = self.send(script.as_bytes()).await {
            let exit = self.reap().await;
            let mut run = collector.finish(Ending::ShellExited(exit));
            run.shell_lost = true;
            run.output = format!("bash: the shell is not accepting commands: {e}");
            return run;
        }

        let leftover = std::mem::take(&mut self.leftover);
        let mut ending = collector.feed(&leftover).map(Ending::Done);
        let deadline = Instant::now() + timeout;
        let mut chunk = vec![0u8; CHUNK];
        while ending.is_none() {
            tokio::select! {
                r = self.out.read(&mut chunk) => match r {
                    Ok(0) | Err(_) => ending = Some(Ending::ShellExited(self.reap().await)),
                    Ok(n) => ending = collector.feed(&chunk[..n]).map(Ending::Done),
                },
                // The pipe stays open while background jobs hold it, so the shell's own exit
                // is watched for directly.
                status = self.child.wait() => {
                    let exit = status.ok().map(ExitInfo::from_status);
                    self.drain(&mut collector).await;
                    ending = Some(Ending::ShellExited(exit));
                }
                _ = tokio::time::sleep_until(deadline) => ending = Some(Ending::TimedOut),
                _ = cancel.cancelled() => ending = Some(Ending::Cancelled),
            }
        }
        let ending = ending.unwrap_or(Ending::Cancelled);

        let mut shell_lost = matches!(ending, Ending::ShellExited(_));
        if matches!(ending, Ending::TimedOut | Ending::Cancelled) {
            shell_lost = !self.abort(&before, &mut collector).await;
        }
        self.leftover = std::mem::take(&mut collector.after);
        let mut run = collector.finish(ending);
        run.shell_lost = shell_lost;
        run
    }

    /// Stops the running command: `SIGUSR1` to the shell (its trap returns from the command),
    /// then `SIGKILL` to every process the command started, repeated until the sentinel
    /// arrives or [`KILL_GRACE`] is over. `before` are the shell's children from before the
    /// command (earlier background jobs, which are spared). Returns whether the shell is
    /// still usable.
    async fn abort(&mut self, before: &HashSet<i32>, collector: &mut Collector) -> bool {
        let grace = Instant::now() + KILL_GRACE;
        let mut chunk = vec![0u8; CHUNK];
        loop {
            // The signal first: the trap must be pending when the killed job is reaped, or
            // the shell would go on with the command's next step.
            if let Some(pid) = rustix::process::Pid::from_raw(self.pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::USR1);
            }
            let table = procs::table();
            let started: Vec<procs::ProcInfo> = procs::children(&table, self.pid)
                .into_iter()
                .filter(|p| !before.contains(&p.pid))
                .collect();
            procs::kill_trees(&table, &started, own_pgid());

            let round = (Instant::now() + Duration::from_millis(250)).min(grace);
            loop {
                tokio::select! {
                    r = self.out.read(&mut chunk) => match r {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => {
                            if collector.feed(&chunk[..n]).is_some() {
                                return true;
                            }
                        }
                    },
                    _ = self.child.wait() => return false,
                    _ = tokio::time::sleep_until(round) => break,
                }
            }
            if Instant::now() >= grace {
                return false;
            }
        }
    }

    /// Reads what is still buffered in the pipe after the shell exited, until it is quiet.
    async fn drain(&mut self, collector: &mut Collector) {
        let mut chunk = vec![0u8; CHUNK];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(100), self.out.read(&mut chunk)).await
        {
            if n == 0 || collector.feed(&chunk[..n]).is_some() {
                break;
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stdin.write_all(bytes).await?;
        self.stdin.flush().await
    }

    /// The shell's exit, once its output pipe closed.
    async fn reap(&mut self) -> Option<ExitInfo> {
        match tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await {
            Ok(Ok(status)) => Some(ExitInfo::from_status(status)),
            _ => None,
        }
    }

    /// Current direct children of the shell.
    fn children(&self) -> Vec<i32> {
        // The kernel's per-task children list is one small read; the full process table is
        // the fallback on kernels built without it.
        let path = format!("/proc/{0}/task/{0}/children", self.pid);
        match std::fs::read_to_string(path) {
            Ok(s) => s
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect(),
            Err(_) => procs::children(&procs::table(), self.pid)
                .into_iter()
                .map(|p| p.pid)
                .collect(),
        }
    }
}

/// The agent's process group, which the shell shares and which must never be killed.
fn own_pgid() -> i32 {
    procs::own().map_or(0, |me| me.pgid)
}

/// A per-call random token. `RandomState` is seeded from the OS per process; mixing in a
/// counter and the time makes every call's value distinct.
fn nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    let a = h.finish();
    h.write_u64(a);
    format!("{a:016x}{:016x}", h.finish())
}

/// Accumulates one command's output: finds the sentinel, keeps the tail in memory and moves
/// everything older to the spill file once the output outgrows [`OUTPUT_CAP`].
struct Collector {
    nonce: String,
    /// `\n__OMA_DONE_<nonce>_`: the sentinel line up to its status digits.
    marker: Vec<u8>,
    buf: Vec<u8>,
    /// `buf[..scanned]` is known not to contain the start of the sentinel.
    scanned: usize,
    /// Bytes already moved to the spill file.
    spilled: u64,
    spill_path: PathBuf,
    spill: Option<File>,
    spill_capped: bool,
    spill_error: Option<String>,
    /// Bytes after the sentinel line.
    after: Vec<u8>,
}

impl Collector {
    fn new(nonce: &str, spill_path: PathBuf) -> Self {
        Collector {
            nonce: nonce.to_string(),
            marker: format!("\n__OMA_DONE_{nonce}_").into_bytes(),
            buf: Vec::new(),
            scanned: 0,
            spilled: 0,
            spill_path,
            spill: None,
            spill_capped: false,
            spill_error: None,
            after: Vec::new(),
        }
    }

    /// Adds output; returns the exit status once the sentinel line is complete.
    fn feed(&mut self, data: &[u8]) -> Option<i32> {
        self.buf.extend_from_slice(data);
        loop {
            let Some(rel) = find(&self.buf[self.scanned..], &self.marker) else {
                // The marker could still begin in the last few bytes.
                self.scanned = self
                    .scanned
                    .max(self.buf.len().saturating_sub(self.marker.len() - 1));
                break;
            };
            let at = self.scanned + rel;
            let digits_at = at + self.marker.len();
            match self.buf[digits_at..].iter().position(|b| *b == b'\n') {
                Some(len) => {
                    let digits = &self.buf[digits_at..digits_at + len];
                    match parse_status(digits) {
                        Some(status) => {
                            self.after = self.buf[digits_at + len + 1..].to_vec();
                            self.buf.truncate(at);
                            return Some(status);
                        }
                        // Not our line after all; look further.
                        None => self.scanned = at + 1,
                    }
                }
                // A status is at most a few digits; more without a newline is not ours.
                None if self.buf.len() - digits_at > 8 => self.scanned = at + 1,
                None => {
                    self.scanned = at;
                    break;
                }
            }
        }
        if self.buf.len() > OUTPUT_CAP + SPILL_SLACK {
            let cut = (self.buf.len() - OUTPUT_CAP).min(self.scanned);
            self.spill_out(cut);
        }
        None
    }

    /// Moves `buf[..cut]` to the spill file.
    fn spill_out(&mut self, cut: usize) {
        if cut == 0 {
            return;
        }
        self.write_spill(cut);
        self.buf.drain(..cut);
        self.scanned -= cut;
        self.spilled += cut as u64;
    }

    fn write_spill(&mut self, upto: usize) {
        if self.spill_error.is_some() {
            return;
        }
        if self.spill.is_none() {
            let opened = self
                .spill_path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| File::create(&self.spill_path));
            match opened {
                Ok(f) => self.spill = Some(f),
                Err(e) => {
                    self.spill_error = Some(format!("{}: {e}", self.spill_path.display()));
                    return;
                }
            }
        }
        let room = SPILL_CAP.saturating_sub(self.spilled) as usize;
        let n = upto.min(room);
        if n < upto {
            self.spill_capped = true;
        }
        if let Some(f) = self.spill.as_mut()
            && let Err(e) = f.write_all(&self.buf[..n])
        {
            self.spill_error = Some(format!("{}: {e}", self.spill_path.display()));
        }
    }

    fn finish(mut self, ending: Ending) -> Run {
        let total = self.spilled + self.buf.len() as u64;
        if self.buf.len() > OUTPUT_CAP || self.spill.is_some() {
            let len = self.buf.len();
            self.write_spill(len);
        }
        let tail = utf8_tail(&self.buf, OUTPUT_CAP);
        let output = self.hide_framing(&clean_terminal_output(&String::from_utf8_lossy(tail)));
        let spill = match (&self.spill, &self.spill_error) {
            (Some(_), None) => Some(SpillInfo {
                path: self.spill_path.clone(),
                capped: self.spill_capped,
            }),
            _ => None,
        };
        Run {
            ending,
            output,
            shown_bytes: tail.len(),
            total_bytes: total,
            spill,
            spill_error: self.spill_error.take(),
            shell_lost: false,
        }
    }
}

impl Collector {
    /// Drops the lines our own framing adds when the user turned on `set -x`: the traced
    /// `source` and `printf` of the wrapper. They are noise to the model and would show the
    /// nonce.
    fn hide_framing(&self, text: &str) -> String {
        if !text.contains("+ builtin ") {
            return text.to_string();
        }
        let nonce = &self.nonce;
        text.split('\n')
            .filter(|line| {
                let traced = line.trim_start_matches('+');
                let is_trace = traced.len() < line.len() && traced.starts_with(' ');
                !(is_trace
                    && (traced == " builtin source /dev/fd/3" || traced.contains(nonce.as_str())))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_status(digits: &[u8]) -> Option<i32> {
    if digits.is_empty() || digits.len() > 3 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collector(dir: &Path) -> Collector {
        Collector::new("abc", dir.join("out.txt"))
    }

    #[test]
    fn sentinel_is_found_across_chunks_and_leftover_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = collector(dir.path());
        assert_eq!(c.feed(b"hello\n"), None);
        assert_eq!(c.feed(b"\n__OMA_DO"), None);
        assert_eq!(c.feed(b"NE_abc_1"), None);
        assert_eq!(c.feed(b"7\nlate"), Some(17));
        assert_eq!(c.after, b"late");
        let run = c.finish(Ending::Done(17));
        assert_eq!(run.output, "hello\n");
        assert!(run.spill.is_none());
    }

    #[test]
    fn fake_sentinels_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = collector(dir.path());
        // Wrong nonce, a non-numeric status, and xtrace's rendering of the printf line.
        assert_eq!(
            c.feed(
                b"\n__OMA_DONE_xyz_0\n\n__OMA_DONE_abc_%d\n+ printf '\\n__OMA_DONE_abc_%d\\n' 0\n"
            ),
            None
        );
        assert_eq!(c.feed(b"\n__OMA_DONE_abc_0\n"), Some(0));
    }

    #[test]
    fn traced_framing_is_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = collector(dir.path());
        let out = b"+ builtin source /dev/fd/3\n++ echo hi\nhi\n+ builtin printf '\\n__OMA_DONE_abc_%d\\n' 0";
        assert_eq!(c.feed(out), None);
        assert_eq!(c.feed(b"\n__OMA_DONE_abc_0\n"), Some(0));
        assert_eq!(c.finish(Ending::Done(0)).output, "++ echo hi\nhi");
    }

    #[test]
    fn long_output_spills_whole_and_keeps_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = collector(dir.path());
        let mut expected = Vec::new();
        for i in 0..40_000 {
            let line = format!("line {i}\n");
            expected.extend_from_slice(line.as_bytes());
            assert_eq!(c.feed(line.as_bytes()), None);
        }
        assert_eq!(c.feed(b"\n__OMA_DONE_abc_0\n"), Some(0));
        let run = c.finish(Ending::Done(0));
        let spill = run.spill.expect("spilled");
        assert_eq!(std::fs::read(&spill.path).unwrap(), expected);
        assert_eq!(run.total_bytes, expected.len() as u64);
        assert!(run.output.len() <= OUTPUT_CAP);
        assert!(run.output.ends_with("line 39999\n"));
    }

    #[test]
    fn outcomes_read_well() {
        let ws = Path::new("/ws");
        let run = |ending, output: &str| Run {
            ending,
            output: output.to_string(),
            shown_bytes: output.len(),
            total_bytes: output.len() as u64,
            spill: None,
            spill_error: None,
            shell_lost: false,
        };
        let ok = render(run(Ending::Done(0), "hi\n"), 1000, vec![], ws);
        assert_eq!(ok, ToolOutcome::text("hi"));
        let empty = render(run(Ending::Done(0), ""), 1000, vec![], ws);
        assert_eq!(empty, ToolOutcome::text("(no output)"));
        let failed = render(run(Ending::Done(3), "oops"), 1000, vec![], ws);
        assert_eq!(failed, ToolOutcome::error("oops\n[exit code: 3]"));
        let slow = render(run(Ending::TimedOut, ""), 1500, vec![], ws);
        assert!(slow.is_error);
        assert!(slow.text_content().contains("timed out after 1.5 s"));
    }
}
