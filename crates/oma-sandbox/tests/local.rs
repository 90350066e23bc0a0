//! The `local` backend end to end: the real agent binary, launched through `LocalLauncher`,
//! driven through the `Sandbox` trait. No mocks.

// Test helpers outside `#[test]` functions may panic on failure too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oma_sandbox::{
    BoxSpec, CancellationToken, LocalLauncher, OutputBlock, Sandbox, SandboxError, SandboxLauncher,
    ToolCall, ToolOutcome,
};

fn launcher() -> LocalLauncher {
    LocalLauncher::new(PathBuf::from(env!("CARGO_BIN_EXE_oma-sandbox-agent")))
}

async fn launch_with(ws: &Path, env: Vec<(String, String)>) -> Arc<dyn Sandbox> {
    launcher()
        .launch(BoxSpec {
            session_id: "sesn_test".into(),
            workspace: ws.to_path_buf(),
            env,
            ..BoxSpec::default()
        })
        .await
        .expect("launch")
}

async fn launch(ws: &Path) -> Arc<dyn Sandbox> {
    launch_with(ws, Vec::new()).await
}

fn bash_call(command: &str, timeout_ms: Option<u64>) -> ToolCall {
    ToolCall::Bash {
        command: Some(command.into()),
        restart: false,
        timeout_ms,
    }
}

async fn bash(sb: &Arc<dyn Sandbox>, command: &str) -> ToolOutcome {
    sb.call(bash_call(command, None), CancellationToken::new())
        .await
        .expect("bash call")
}

async fn run(sb: &Arc<dyn Sandbox>, call: ToolCall) -> ToolOutcome {
    sb.call(call, CancellationToken::new()).await.expect("call")
}

/// Whether some process on the machine has `marker` in its command line.
fn process_running(marker: &str) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| {
                let c = String::from_utf8_lossy(&c).replace('\0', " ");
                c.contains(marker)
            })
            .unwrap_or(false)
    })
}

/// Polls until a process with `marker` in its command line runs (a background job may not
/// have reached its `exec` yet when the shell returns), or fails after a deadline.
async fn assert_process_started(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !process_running(marker) {
        assert!(
            Instant::now() < deadline,
            "no process with `{marker}` started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until `marker` is gone from every command line, or fails after a deadline.
async fn assert_process_gone(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_running(marker) {
        assert!(
            Instant::now() < deadline,
            "a process with `{marker}` is still running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shell_state_persists_and_exit_codes_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let sb = launch(dir.path()).await;
    let info = sb.info();
    assert_eq!(info.backend, "local");
    assert!(!info.isolated);
    assert_eq!(
        PathBuf::from(&info.box_workspace),
        dir.path().canonicalize().unwrap()
    );

    let out = bash(&sb, "mkdir -p sub && cd sub && export GREETING=hello").await;
    assert!(!out.is_error, "{out:?}");
    let out = bash(&sb, "pwd; echo $GREETING; echo to-stderr >&2").await;
    assert!(!out.is_error, "{out:?}");
    let ws = dir.path().canonicalize().unwrap();
    assert_eq!(
        out.text_content(),
        format!("{}/sub\nhello\nto-stderr", ws.display())
    );

    let out = bash(&sb, "echo partial; exit_with() { return $1; }; exit_with 3").await;
    assert!(out.is_error);
    assert_eq!(out.text_content(), "partial\n[exit code: 3]");

    // A command reading stdin gets EOF instead of hanging or eating the next command.
    let out = bash(&sb, "cat; echo after-cat").await;
    assert_eq!(out.text_content(), "after-cat");

    // Syntax errors are reported and leave the shell usable.
    let out = bash(&sb, "if then").await;
    assert!(out.is_error);
    assert!(out.text_content().contains("syntax error"), "{out:?}");
    assert_eq!(bash(&sb, "echo $GREETING").await.text_content(), "hello");

    // Missing command, and `exit` ending the shell: the next call gets a fresh one.
    let out = run(
        &sb,
        ToolCall::Bash {
            command: None,
            restart: false,
            timeout_ms: None,
        },
    )
    .await;
    assert!(out.is_error);
    let out = bash(&sb, "exit 4").await;
    assert!(out.is_error);
    assert!(out.text_content().contains("shell exited"), "{out:?}");
    let out = bash(&sb, "pwd; echo \"[$GREETING]\"").await;
    assert!(out.text_content().contains("new shell"), "{out:?}");
    assert!(
        out.text_content()
            .ends_with(&format!("{}\n[]", ws.display()))
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_kills_the_command_and_keeps_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let sb = launch(dir.path()).await;
    bash(&sb, "cd /tmp; export KEEP=1; sleep 41.31 &").await;
    let started = Instant::now();
    let out = sb
        .call(
            bash_call("echo before; sleep 42.17; echo never", Some(1500)),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(out.is_error);
    let text = out.text_content();
    assert!(text.starts_with("before\n"), "{text}");
    assert!(text.contains("timed out after 1.5 s"), "{text}");
    assert!(!text.contains("never"));
    assert_process_gone("sleep 42.17").await;
    // The shell survived with its state, and the earlier background job too.
    let out = bash(&sb, "pwd; echo $KEEP").await;
    assert_eq!(out.text_content(), "/tmp\n1");
    assert_process_started("sleep 41.31").await;

    // Even a shell builtin loop (no process to kill) stops, and the shell survives.
    let out = sb
        .call(
            bash_call("while true; do :; done; echo never", Some(300)),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(out.is_error);
    assert!(out.text_content().contains("timed out"), "{out:?}");
    assert!(!out.text_content().contains("never"), "{out:?}");
    assert_eq!(bash(&sb, "echo $KEEP").await.text_content(), "1");

    // A command that ignores the abort signal gets its shell replaced.
    let out = sb
        .call(
            bash_call("trap '' USR1; while true; do :; done", Some(300)),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(out.is_error);
    assert!(
        out.text_content().contains("shell did not recover"),
        "{out:?}"
    );
    let out = bash(&sb, "echo \"[$KEEP]\"").await;
    assert!(out.text_content().ends_with("[]"), "{out:?}");
    // Replacing the shell took its background jobs with it.
    assert_process_gone("sleep 41.31").await;
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_gives_a_fresh_shell() {
    let dir = tempfile::tempdir().unwrap();
    let sb = launch(dir.path()).await;
    bash(&sb, "cd /; export X=1; sleep 43.9 &").await;
    let out = run(
        &sb,
        ToolCall::Bash {
            command: None,
            restart: true,
            timeout_ms: None,
        },
    )
    .await;
    assert!(!out.is_error);
    assert!(out.text_content().contains("restarted"));
    assert_process_gone("sleep 43.9").await;
    let out = bash(&sb, "pwd; echo \"[$X]\"").await;
    assert_eq!(
        out.text_content(),
        format!("{}\n[]", dir.path().canonicalize().unwrap().display())
    );
    // Restart and run in one call.
    bash(&sb, "export Y=2").await;
    let out = run(
        &sb,
        ToolCall::Bash {
            command: Some("echo \"[$Y]\"".into()),
            restart: true,
            timeout_ms: None,
        },
    )
    .await;
    assert_eq!(out.text_content(), "[]");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn long_output_keeps_the_tail_and_spills_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let sb = launch(dir.path()).await;
    let out = bash(&sb, "seq 1 200000").await;
    assert!(!out.is_error);
    let text = out.text_content();
    assert!(text.starts_with("[Output truncated"), "{}", &text[..200]);
    assert!(text.ends_with("199999\n200000"));
    assert!(text.len() < 100 * 1024 + 400);
    // The header names the file, which holds the whole output.
    let header = text.lines().next().unwrap();
    let at = header.find("output is in ").unwrap() + "output is in ".len();
    let path = PathBuf::from(header[at..].trim_end_matches(".]"));
    assert!(
        path.starts_with(dir.path().canonicalize().unwrap().join(".oma/outputs")),
        "{path:?}"
    );
    let expected: String = (1..=200000).map(|i| format!("{i}\n")).collect();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn file_tools_read_write_edit() {
    let dir = tempfile::tempdir().unwrap();
    let sb = launch(dir.path()).await;
    let ws = dir.path().canonicalize().unwrap();

    let out = run(
        &sb,
        ToolCall::Write {
            file_path: "notes/a.txt".into(),
            content: "alpha\nbeta\nbeta\ngamma\n".into(),
        },
    )
    .await;
    assert!(!out.is_error, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(ws.join("notes/a.txt")).unwrap(),
        "alpha\nbeta\nbeta\ngamma\n"
    );

    let read = |range| ToolCall::Read {
        file_path: ws.join("notes/a.txt").display().to_string(),
        view_range: range,
    };
    assert_eq!(
        run(&sb, read(Some([2, 3]))).await.text_content(),
        "     2\tbeta\n     3\tbeta"
    );
    assert_eq!(
        run(&sb, read(Some([4, -1]))).await.text_content(),
        "     4\tgamma"
    );

    let edit = |old: &str, new: &str, all| ToolCall::Edit {
        file_path: "notes/a.txt".into(),
        old_string: old.into(),
        new_string: new.into(),
        replace_all: all,
    };
    let out = run(&sb, edit("beta", "BETA", false)).await;
    assert!(out.is_error);
    assert!(out.text_content().contains("occurs 2 times"));
    let out = run(&sb, edit("alpha", "ALPHA", false)).await;
    assert!(!out.is_error, "{out:?}");
    let out = run(&sb, edit("beta", "BETA", true)).await;
    assert!(!out.is_error, "{out:?}");
    assert!(out.text_content().contains("replaced 2 occurrences"));
    let out = run(&sb, edit("delta", "x", false)).await;
    assert!(out.is_error);
    assert_eq!(
        std::fs::read_to_string(ws.join("notes/a.txt")).unwrap(),
        "ALPHA\nBETA\nBETA\ngamma\n"
    );

    // Images come back as image blocks.
    let png: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
    std::fs::write(ws.join("pic.png"), png).unwrap();
    let out = run(
        &sb,
        ToolCall::Read {
            file_path: "pic.png".into(),
            view_range: None,
        },
    )
    .await;
    assert!(matches!(
        out.content.as_slice(),
        [OutputBlock::Image { media_type, data_base64 }]
            if media_type == "image/png" && !data_base64.is_empty()
    ));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn glob_and_grep() {
    let dir = tempfile::tempdir().unwrap();
    let sb = launch(dir.path()).await;
    let ws = dir.path().canonicalize().unwrap();
    // touch -d gives distinct, known modification times.
    bash(
        &sb,
        "mkdir -p src/a && echo 'fn main() {}' > src/main.rs && echo 'pub fn helper() {}' > src/a/lib.rs \
         && echo 'fn old() {}' > old.rs && touch -d '2020-01-01' old.rs && touch -d '2021-01-01' src/a/lib.rs",
    )
    .await;
    let out = run(
        &sb,
        ToolCall::Glob {
            pattern: "**/*.rs".into(),
            path: None,
        },
    )
    .await;
    let want: Vec<String> = ["src/main.rs", "src/a/lib.rs", "old.rs"]
        .iter()
        .map(|p| ws.join(p).display().to_string())
        .collect();
    assert_eq!(out.text_content(), want.join("\n"));

    let out = run(
        &sb,
        ToolCall::Grep {
            pattern: r"fn \w+\(".into(),
            path: Some("src".into()),
        },
    )
    .await;
    assert_eq!(
        out.text_content(),
        format!(
            "{}:1:pub fn helper() {{}}\n{}:1:fn main() {{}}",
            ws.join("src/a/lib.rs").display(),
            ws.join("src/main.rs").display()
        )
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancellation_kills_the_running_command() {
    let dir = tempfile::tempdir().unwrap();
    let sb = launch(dir.path()).await;
    bash(&sb, "export STILL=here").await;
    let token = CancellationToken::new();
    let call = sb.call(bash_call("sleep 44.44", None), token.clone());
    let canceller = async {
        // Give the command time to start, then cancel.
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel();
    };
    let started = Instant::now();
    let (result, ()) = tokio::join!(call, canceller);
    assert!(matches!(result, Err(SandboxError::Cancelled)), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_process_gone("sleep 44.44").await;
    // The shell is usable and kept its state.
    assert_eq!(bash(&sb, "echo $STILL").await.text_content(), "here");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_run_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let sb = launch(dir.path()).await;
    std::fs::write(dir.path().join("f.txt"), "x\n").unwrap();
    let slow = sb.call(
        bash_call("sleep 1; echo slow", None),
        CancellationToken::new(),
    );
    let fast = async {
        let out = run(
            &sb,
            ToolCall::Read {
                file_path: "f.txt".into(),
                view_range: None,
            },
        )
        .await;
        (out, Instant::now())
    };
    let (slow, (fast, fast_done)) = tokio::join!(slow, fast);
    let slow_done = Instant::now();
    assert_eq!(slow.unwrap().text_content(), "slow");
    assert_eq!(fast.text_content(), "     1\tx");
    assert!(fast_done < slow_done);

    // Two bash calls at once queue for the one shell; neither output leaks into the other.
    let a = sb.call(
        bash_call("for i in 1 2 3; do echo a$i; sleep 0.05; done", None),
        CancellationToken::new(),
    );
    let b = sb.call(
        bash_call("for i in 1 2 3; do echo b$i; sleep 0.05; done", None),
        CancellationToken::new(),
    );
    let (a, b) = tokio::join!(a, b);
    assert_eq!(a.unwrap().text_content(), "a1\na2\na3");
    assert_eq!(b.unwrap().text_content(), "b1\nb2\nb3");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_death_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let sb = launch(dir.path()).await;
    let pid = sb.info().agent_pid.expect("pid");
    assert!(sb.failure().is_none());
    let call = sb.call(
        bash_call("sleep 45.55 & sleep 46.66", None),
        CancellationToken::new(),
    );
    let killer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let (result, ()) = tokio::join!(call, killer);
    let err = result.expect_err("the call must fail");
    match &err {
        SandboxError::AgentDied { exit, .. } => {
            let exit = exit.expect("exit status");
            assert!(exit.killed(), "{exit:?}");
            assert_eq!(exit.status(), Some(137));
        }
        other => panic!("expected AgentDied, got {other:?}"),
    }
    assert!(err.to_string().contains("137"), "{err}");
    assert!(matches!(sb.failure(), Some(SandboxError::AgentDied { .. })));
    let again = sb
        .call(bash_call("echo hi", None), CancellationToken::new())
        .await;
    assert!(matches!(again, Err(SandboxError::AgentDied { .. })));
    // What the agent had started does not outlive it.
    assert_process_gone("sleep 45.55").await;
    assert_process_gone("sleep 46.66").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_box_gets_a_clean_environment() {
    // Cargo gives the test process this variable; it stands for any server secret.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let dir = tempfile::tempdir().unwrap();
    let sb = launch_with(
        dir.path(),
        vec![("BOX_VAR".to_string(), "from-spec".to_string())],
    )
    .await;
    let out = bash(&sb, "env | sort").await;
    let env = out.text_content();
    assert!(!env.contains("CARGO_MANIFEST_DIR"), "{env}");
    assert!(!env.contains("CARGO_PKG_NAME"), "{env}");
    assert!(env.contains("BOX_VAR=from-spec"), "{env}");
    assert!(env.contains("TERM=dumb"), "{env}");
    assert!(
        env.contains(&format!(
            "HOME={}",
            dir.path().canonicalize().unwrap().display()
        )),
        "{env}"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_stops_everything_and_later_calls_fail() {
    let dir = tempfile::tempdir().unwrap();
    let sb = launch(dir.path()).await;
    bash(&sb, "nohup sleep 47.77 >/dev/null 2>&1 &").await;
    assert_process_started("sleep 47.77").await;
    sb.shutdown().await;
    assert_process_gone("sleep 47.77").await;
    let out = sb
        .call(bash_call("echo hi", None), CancellationToken::new())
        .await;
    assert!(matches!(out, Err(SandboxError::Shutdown)), "{out:?}");
    assert!(matches!(sb.failure(), Some(SandboxError::Shutdown)));
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_box_kills_it() {
    let dir = tempfile::tempdir().unwrap();
    let sb = launch(dir.path()).await;
    bash(&sb, "sleep 48.88 &").await;
    assert_process_started("sleep 48.88").await;
    drop(sb);
    assert_process_gone("sleep 48.88").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn launch_failures_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let err = LocalLauncher::new(PathBuf::from("/nonexistent/oma"))
        .launch(BoxSpec {
            session_id: "s".into(),
            workspace: dir.path().to_path_buf(),
            env: vec![],
            ..BoxSpec::default()
        })
        .await
        .err()
        .expect("must fail");
    assert!(matches!(err, SandboxError::Launch(_)), "{err:?}");
    // `true` exits at once without saying hello.
    let err = LocalLauncher::new(PathBuf::from("/bin/true"))
        .launch(BoxSpec {
            session_id: "s".into(),
            workspace: dir.path().to_path_buf(),
            env: vec![],
            ..BoxSpec::default()
        })
        .await
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("exited at start"), "{err}");
    let err = launcher()
        .launch(BoxSpec {
            session_id: "s".into(),
            workspace: dir.path().to_path_buf(),
            env: vec![("A=B".into(), "x".into())],
            ..BoxSpec::default()
        })
        .await
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("environment variable"), "{err}");
}
