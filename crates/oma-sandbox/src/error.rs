//! Failures of the sandbox itself, as opposed to failed tool calls (those are
//! [`crate::ToolOutcome`]s with `is_error: true`).

use std::fmt;

/// How the agent process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    /// The exit code, when the process exited normally.
    pub code: Option<i32>,
    /// The signal that killed it, when it was killed.
    pub signal: Option<i32>,
}

impl ExitInfo {
    /// `SIGKILL`.
    const SIGKILL: i32 = 9;

    /// The status as a shell would report it: the exit code, or 128 + the signal number.
    /// 137 is a `SIGKILL`, which is what the kernel's OOM killer (or a cgroup limit) sends.
    pub fn status(&self) -> Option<i32> {
        self.code.or(self.signal.map(|s| 128 + s))
    }

    /// Killed by `SIGKILL` (or exited with 137, as an init process reports it): out of memory
    /// or killed from outside. The runtime reports this differently from a crash.
    pub fn killed(&self) -> bool {
        self.signal == Some(Self::SIGKILL) || self.code == Some(128 + Self::SIGKILL)
    }

    pub(crate) fn from_status(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        ExitInfo {
            code: status.code(),
            signal: status.signal(),
        }
    }
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (_, Some(sig)) if sig == Self::SIGKILL => write!(
                f,
                "killed by SIGKILL, exit status 137 (out of memory, or killed from outside)"
            ),
            (_, Some(sig)) => write!(f, "killed by signal {sig}, exit status {}", 128 + sig),
            (Some(137), None) => {
                write!(f, "exit status 137 (out of memory, or killed from outside)")
            }
            (Some(code), None) => write!(f, "exit status {code}"),
            (None, None) => write!(f, "unknown exit status"),
        }
    }
}

/// A failure of the sandbox (not of a tool). Cloneable because one agent death fails every
/// call that was waiting on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SandboxError {
    /// The box could not be started: missing workspace, agent binary not found, no hello.
    #[error("the sandbox could not be launched: {0}")]
    Launch(String),
    /// The agent process ended while the box was in use. `exit` is `None` when the channel
    /// closed but the process could not be reaped in time.
    #[error("the sandbox agent died ({}){}", .exit.map_or("exit status unknown".to_string(), |e| e.to_string()), stderr_suffix(.stderr_tail))]
    AgentDied {
        exit: Option<ExitInfo>,
        /// The last lines the agent wrote to stderr, for diagnosis.
        stderr_tail: String,
    },
    /// The agent said something the host cannot understand; the box was stopped.
    #[error("sandbox protocol error: {0}")]
    Protocol(String),
    /// The call was cancelled by the caller before it finished.
    #[error("the tool call was cancelled")]
    Cancelled,
    /// The box was shut down (by [`crate::Sandbox::shutdown`]) before or during the call.
    #[error("the sandbox has been shut down")]
    Shutdown,
    /// A process could not be opened in the box ([`crate::Sandbox::spawn_process`]): the
    /// program is missing, the box has too many processes, … The box itself still works.
    #[error("cannot start the process in the sandbox: {0}")]
    Spawn(String),
    /// The backend cannot do what was asked.
    #[error("not supported by this sandbox backend: {0}")]
    Unsupported(String),
}

impl SandboxError {
    /// The agent's exit, when it died.
    pub fn exit(&self) -> Option<ExitInfo> {
        match self {
            SandboxError::AgentDied { exit, .. } => *exit,
            _ => None,
        }
    }
}

fn stderr_suffix(tail: &str) -> String {
    let tail = tail.trim();
    if tail.is_empty() {
        String::new()
    } else {
        format!("; agent stderr: {tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_is_reported_as_137() {
        let e = ExitInfo {
            code: None,
            signal: Some(9),
        };
        assert_eq!(e.status(), Some(137));
        assert!(e.killed());
        let err = SandboxError::AgentDied {
            exit: Some(e),
            stderr_tail: String::new(),
        };
        assert!(err.to_string().contains("137"), "{err}");
        let e = ExitInfo {
            code: Some(3),
            signal: None,
        };
        assert_eq!(e.status(), Some(3));
        assert!(!e.killed());
        let err = SandboxError::AgentDied {
            exit: Some(e),
            stderr_tail: "boom\n".into(),
        };
        assert_eq!(
            err.to_string(),
            "the sandbox agent died (exit status 3); agent stderr: boom"
        );
    }
}
