//! The framed channel between the host and the in-box agent.
//!
//! Every message is one frame: a 4-byte big-endian length followed by that many bytes of JSON.
//! The host writes [`HostMessage`]s to the agent's stdin; the agent writes [`AgentMessage`]s to
//! its stdout (and nothing else: its diagnostics go to stderr). The agent speaks first with a
//! [`Hello`]. Several calls may be in flight at once and their results may come back in any
//! order; each result carries the `id` of its call. A [`HostMessage::Cancel`] asks the agent to
//! abort a running call; the agent still answers that call (with a "cancelled" outcome), so
//! every `id` gets exactly one result unless the agent dies.
//!
//! Long-lived processes (a stdio MCP server, say) are opened with [`HostMessage::Spawn`] and
//! then streamed: [`HostMessage::Stdin`] / [`AgentMessage::Stdout`] carry their bytes, and
//! [`AgentMessage::ProcessExited`] ends each process exactly once, after its last `Stdout`
//! frame. Process ids come from the same host counter as call ids, so an id names one call
//! or one process, never both. Both directions are flow controlled by acknowledgements (a
//! window of [`PROCESS_WINDOW_BYTES`] unacknowledged bytes per process and direction), so
//! neither side buffers more than that for a peer that does not read.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bumped on any incompatible change to the messages below. The host refuses an agent that
/// speaks another version (a stale binary inside an image, for example).
pub const PROTOCOL_VERSION: u32 = 2;

/// The largest frame either side accepts. Generous because a `read` of an image or PDF
/// travels base64-encoded in one frame (the tool caps those at 20 MiB raw).
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// Bytes of process output or input one side may send before the other acknowledges them.
pub const PROCESS_WINDOW_BYTES: usize = 256 * 1024;
/// The largest `Stdout`/`Stdin` chunk, raw.
pub const PROCESS_CHUNK_BYTES: usize = 64 * 1024;

/// A process to open inside the box, its stdin and stdout streamed over the channel.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProcessSpec {
    /// Program and arguments; the program is looked up in the box's `PATH`. Must not be empty.
    pub command: Vec<String>,
    /// Added to the box's environment (which never holds the server's).
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Working directory, resolved like tool paths against the workspace; the workspace when
    /// `None`.
    #[serde(default)]
    pub cwd: Option<String>,
}

/// One tool invocation, already validated by the host (`oma_tools::parse_call`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "tool", rename_all = "snake_case")]
pub enum ToolCall {
    /// Run `command` in the session's persistent shell; `restart` replaces the shell first.
    Bash {
        #[serde(default)]
        command: Option<String>,
        #[serde(default)]
        restart: bool,
        /// `None` or `0` means the default (120 s).
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// Read a file; `view_range` is 1-indexed and inclusive, an end ≤ 0 meaning end of file.
    Read {
        file_path: String,
        #[serde(default)]
        view_range: Option<[i64; 2]>,
    },
    /// Write (overwrite) a file, creating parent directories.
    Write { file_path: String, content: String },
    /// Replace `old_string` by `new_string`; it must occur exactly once unless `replace_all`.
    Edit {
        file_path: String,
        old_string: String,
        new_string: String,
        #[serde(default)]
        replace_all: bool,
    },
    /// Files matching a doublestar pattern under `path` (default: the workspace), newest first.
    Glob {
        pattern: String,
        #[serde(default)]
        path: Option<String>,
    },
    /// Lines matching a regular expression in files under `path` (default: the workspace).
    Grep {
        pattern: String,
        #[serde(default)]
        path: Option<String>,
    },
}

impl ToolCall {
    /// The model-facing tool name of this call.
    pub fn tool_name(&self) -> &'static str {
        match self {
            ToolCall::Bash { .. } => "bash",
            ToolCall::Read { .. } => "read",
            ToolCall::Write { .. } => "write",
            ToolCall::Edit { .. } => "edit",
            ToolCall::Glob { .. } => "glob",
            ToolCall::Grep { .. } => "grep",
        }
    }
}

/// One block of a tool result. Binary payloads travel base64-encoded, exactly as the model
/// API wants them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputBlock {
    Text {
        text: String,
    },
    /// `media_type` is one of `image/png`, `image/jpeg`, `image/gif`, `image/webp`.
    Image {
        media_type: String,
        data_base64: String,
    },
    /// `media_type` is `application/pdf`.
    Document {
        media_type: String,
        data_base64: String,
    },
}

/// The result of one tool call. A tool that ran but failed (non-zero exit, missing file, bad
/// pattern) is an outcome with `is_error: true`, not a [`crate::SandboxError`]: the model sees
/// it and can react.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolOutcome {
    pub content: Vec<OutputBlock>,
    pub is_error: bool,
}

impl ToolOutcome {
    /// A successful text result. Empty text becomes a placeholder, because the model API
    /// rejects empty text blocks.
    pub fn text(text: impl Into<String>) -> Self {
        ToolOutcome {
            content: vec![OutputBlock::Text {
                text: non_empty(text.into()),
            }],
            is_error: false,
        }
    }

    /// A failed call, explained in text.
    pub fn error(text: impl Into<String>) -> Self {
        ToolOutcome {
            content: vec![OutputBlock::Text {
                text: non_empty(text.into()),
            }],
            is_error: true,
        }
    }

    /// The concatenated text blocks (for logs and tests).
    pub fn text_content(&self) -> String {
        let mut out = String::new();
        for block in &self.content {
            if let OutputBlock::Text { text } = block {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(text);
            }
        }
        out
    }
}

fn non_empty(text: String) -> String {
    if text.is_empty() {
        "(no output)".to_string()
    } else {
        text
    }
}

/// What the agent reports about itself when it starts (and in answer to a ping).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the agent.
    pub protocol: u32,
    /// The agent binary's crate version.
    pub version: String,
    /// The workspace root as the agent sees it (`/workspace` inside an isolated box).
    pub workspace: String,
    /// The agent's process id in its own pid namespace.
    pub pid: u32,
}

/// Host → agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HostMessage {
    /// Run a tool; answered by [`AgentMessage::Result`] with the same `id`.
    Call { id: u64, call: ToolCall },
    /// Abort the call `id` if it is still running (kills bash's foreground job, stops a
    /// search). Unknown or finished ids are ignored.
    Cancel { id: u64 },
    /// Answered by [`AgentMessage::Pong`].
    Ping { nonce: u64 },
    /// Stop every process of the box and exit. Closing the agent's stdin does the same.
    Shutdown,
    /// Open a process; answered by [`AgentMessage::Spawned`], or by
    /// [`AgentMessage::ProcessExited`] alone when it cannot start.
    Spawn { id: u64, spec: ProcessSpec },
    /// Bytes for the process's stdin; acknowledged by [`AgentMessage::StdinAck`] once written.
    Stdin { id: u64, data_base64: String },
    /// Close the process's stdin after the bytes already sent.
    CloseStdin { id: u64 },
    /// Kill the process (its whole process group). Unknown or ended ids are ignored.
    Kill { id: u64 },
    /// The host consumed `bytes` of the process's stdout; the agent may send that much more.
    StdoutAck { id: u64, bytes: u64 },
}

/// Agent → host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    /// Sent once, first, before anything else.
    Hello(Hello),
    /// The outcome of call `id`.
    Result {
        id: u64,
        result: ToolOutcome,
    },
    Pong {
        nonce: u64,
        hello: Hello,
    },
    /// Process `id` started.
    Spawned {
        id: u64,
    },
    /// Output of process `id` (at most [`PROCESS_CHUNK_BYTES`] raw bytes per frame).
    Stdout {
        id: u64,
        data_base64: String,
    },
    /// `bytes` of what the host sent for process `id`'s stdin were written (or discarded,
    /// when its stdin is already closed); the host may send that much more.
    StdinAck {
        id: u64,
        bytes: u64,
    },
    /// Process `id` ended (or never started: then `code` and `signal` are both `None` and
    /// `stderr_tail` says why). Sent once per process, after its last `Stdout` frame.
    ProcessExited {
        id: u64,
        code: Option<i32>,
        signal: Option<i32>,
        /// The last few KiB the process wrote to stderr.
        stderr_tail: String,
    },
}

/// A frame that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("i/o error on the sandbox channel: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("the channel closed in the middle of a frame")]
    Truncated,
    #[error("malformed message on the sandbox channel: {0}")]
    Json(#[from] serde_json::Error),
}

/// Writes one frame and flushes it.
pub async fn write_frame<W, T>(w: &mut W, msg: &T) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let body = serde_json::to_vec(msg)?;
    if body.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(body.len()));
    }
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge(body.len()))?;
    // One buffer, one write: frames from concurrent writers are serialised by the caller, and
    // a single write keeps a frame contiguous even on a pipe.
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
pub async fn read_frame<R, T>(r: &mut R) -> Result<Option<T>, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < len.len() {
        let n = r.read(&mut len[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Truncated
        } else {
            FrameError::Io(e)
        }
    })?;
    Ok(Some(serde_json::from_slice(&body)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let msg = HostMessage::Call {
            id: 7,
            call: ToolCall::Read {
                file_path: "x.txt".into(),
                view_range: Some([2, -1]),
            },
        };
        write_frame(&mut a, &msg).await.unwrap();
        write_frame(&mut a, &HostMessage::Cancel { id: 7 })
            .await
            .unwrap();
        drop(a);
        let got: HostMessage = read_frame(&mut b).await.unwrap().unwrap();
        assert_eq!(got, msg);
        let got: HostMessage = read_frame(&mut b).await.unwrap().unwrap();
        assert_eq!(got, HostMessage::Cancel { id: 7 });
        assert!(
            read_frame::<_, HostMessage>(&mut b)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn truncated_and_oversized_frames_are_errors() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&[0, 0, 0, 10, b'{']).await.unwrap();
        drop(a);
        assert!(matches!(
            read_frame::<_, HostMessage>(&mut b).await,
            Err(FrameError::Truncated)
        ));

        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        assert!(matches!(
            read_frame::<_, HostMessage>(&mut b).await,
            Err(FrameError::TooLarge(_))
        ));
    }

    #[test]
    fn wire_shapes_are_stable() {
        let call = serde_json::to_value(HostMessage::Call {
            id: 1,
            call: ToolCall::Bash {
                command: Some("ls".into()),
                restart: false,
                timeout_ms: None,
            },
        })
        .unwrap();
        assert_eq!(
            call,
            serde_json::json!({"type":"call","id":1,"call":{"tool":"bash","command":"ls","restart":false,"timeout_ms":null}})
        );
        let out = serde_json::to_value(ToolOutcome::text("")).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"content":[{"type":"text","text":"(no output)"}],"is_error":false})
        );
        // Optional fields may be left out by the sender.
        let call: ToolCall = serde_json::from_value(
            serde_json::json!({"tool":"edit","file_path":"a","old_string":"x","new_string":"y"}),
        )
        .unwrap();
        assert!(matches!(
            call,
            ToolCall::Edit {
                replace_all: false,
                ..
            }
        ));
    }

    #[test]
    fn process_messages_have_stable_shapes() {
        let spawn = serde_json::to_value(HostMessage::Spawn {
            id: 3,
            spec: ProcessSpec {
                command: vec!["python3".into(), "server.py".into()],
                env: vec![("A".into(), "b".into())],
                cwd: None,
            },
        })
        .unwrap();
        assert_eq!(
            spawn,
            serde_json::json!({"type":"spawn","id":3,"spec":{"command":["python3","server.py"],"env":[["A","b"]],"cwd":null}})
        );
        let spec: ProcessSpec =
            serde_json::from_value(serde_json::json!({"command":["cat"]})).unwrap();
        assert_eq!(spec.command, ["cat"]);
        let exited = serde_json::to_value(AgentMessage::ProcessExited {
            id: 3,
            code: Some(0),
            signal: None,
            stderr_tail: String::new(),
        })
        .unwrap();
        assert_eq!(
            exited,
            serde_json::json!({"type":"process_exited","id":3,"code":0,"signal":null,"stderr_tail":""})
        );
        let ack = serde_json::to_value(HostMessage::StdoutAck { id: 3, bytes: 10 }).unwrap();
        assert_eq!(
            ack,
            serde_json::json!({"type":"stdout_ack","id":3,"bytes":10})
        );
    }
}
