//! Long-lived processes in a `local` box (`Sandbox::spawn_process`), through the real agent
//! binary: streams both ways, exits, errors, and that nothing outlives its handle.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oma_sandbox::{
    BoxSpec, CancellationToken, LocalLauncher, ProcessSpec, Sandbox, SandboxError, SandboxLauncher,
    ToolCall,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

async fn launch(ws: &Path) -> Arc<dyn Sandbox> {
    LocalLauncher::new(PathBuf::from(env!("CARGO_BIN_EXE_oma-sandbox-agent")))
        .launch(BoxSpec {
            session_id: "sesn_process".into(),
            workspace: ws.to_path_buf(),
            ..BoxSpec::default()
        })
        .await
        .expect("launch")
}

fn spec(argv: &[&str]) -> ProcessSpec {
    ProcessSpec {
        command: argv.iter().map(|s| s.to_string()).collect(),
        ..ProcessSpec::default()
    }
}

/// Bounds a step that should finish promptly, so a bug fails the test instead of hanging it.
async fn soon<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("finished in time")
}

/// Whether some process on the machine has `marker` in its command line.
fn process_running(marker: &str) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        !stat.contains(") Z ")
            && std::fs::read(e.path().join("cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(marker)
                })
                .unwrap_or(false)
    })
}

async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cat_echoes_lines_and_exits_zero_when_stdin_closes() {
    let dir = tempfile::tempdir().unwrap();
    let sb = launch(dir.path()).await;
    let mut p = sb.spawn_process(spec(&["cat"])).await.expect("spawn cat");
    let mut lines = BufReader::new(p.stdout).lines();
    for word in ["one", "two", "three"] {
        p.stdin
            .write_all(format!("{word}\n").as_bytes())
            .await
            .unwrap();
        p.stdin.flush().await.unwrap();
        let line = soon(lines.next_line()).await.unwrap();
        assert_eq!(line.as_deref(), Some(word));
    }
    p.stdin.shutdown().await.unwrap();
    assert_eq!(soon(lines.next_line()).await.unwrap(), None, "EOF");
    let exit = soon(p.exited.wait()).await.expect("exit");
    assert_eq!((exit.code, exit.signal), (Some(0), None));
    assert!(exit.success());
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn megabytes_flow_both_ways_through_the_windows() {
    let dir = tempfile::tempdir().unwrap();
    let sb = launch(dir.path()).await;
    let p = sb.spawn_process(spec(&["cat"])).await.expect("spawn cat");
    let (mut stdin, mut stdout) = (p.stdin, p.stdout);
    let data: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let expected = data.clone();
    let writer = tokio::spawn(async move {
        stdin.write_all(&data).await.unwrap();
        stdin.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    soon(stdout.read_to_end(&mut got)).await.unwrap();
    soon(writer).await.unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "the bytes came back changed");
    assert!(soon(p.exited.wait()).await.unwrap().success());
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_code_stderr_tail_env_and_cwd_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let sb = launch(dir.path()).await;
    let mut p = sb
        .spawn_process(spec(&["sh", "-c", "echo x >&2; exit 3"]))
        .await
        .expect("spawn");
    let mut out = String::new();
    soon(p.stdout.read_to_string(&mut out)).await.unwrap();
    assert_eq!(out, "");
    let exit = soon(p.exited.wait()).await.expect("exit");
    assert_eq!(exit.code, Some(3));
    assert_eq!(exit.stderr_tail.trim(), "x");
    assert!(exit.to_string().contains("exit status 3"), "{exit}");

    let mut p = sb
        .spawn_process(ProcessSpec {
            command: vec!["sh".into(), "-c".into(), "echo \"$MODE $PWD\"".into()],
            env: vec![("MODE".into(), "stdio".into())],
            cwd: Some("sub".into()),
        })
        .await
        .expect("spawn");
    let mut out = String::new();
    soon(p.stdout.read_to_string(&mut out)).await.unwrap();
    let sub = dir.path().canonicalize().unwrap().join("sub");
    assert_eq!(out.trim(), format!("stdio {}", sub.display()));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_program_is_a_spawn_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let sb = launch(dir.path()).await;
    let err = sb
        .spawn_process(spec(&["oma-no-such-mcp-server", "--stdio"]))
        .await
        .expect_err("must fail");
    assert!(matches!(err, SandboxError::Spawn(_)), "{err:?}");
    assert!(err.to_string().contains("oma-no-such-mcp-server"), "{err}");
    let err = sb.spawn_process(spec(&[])).await.expect_err("empty");
    assert!(matches!(err, SandboxError::Spawn(_)), "{err:?}");
    // The box is unharmed.
    assert!(sb.failure().is_none());
    let p = sb.spawn_process(spec(&["true"])).await.expect("spawn true");
    assert!(soon(p.exited.wait()).await.unwrap().success());
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_process_kills_it_and_bash_restarts_spare_it() {
    let dir = tempfile::tempdir().unwrap();
    let sb = launch(dir.path()).await;
    let p = sb
        .spawn_process(spec(&["sleep", "1000.4242"]))
        .await
        .expect("spawn");
    wait_until("sleep started", || process_running("sleep 1000.4242")).await;

    // Replacing the shell sweeps the shell's leftovers, not the host's processes.
    let out = sb
        .call(
            ToolCall::Bash {
                command: Some("sleep 1001.4242 &".into()),
                restart: false,
                timeout_ms: None,
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(!out.is_error, "{out:?}");
    wait_until("background sleep started", || {
        process_running("sleep 1001.4242")
    })
    .await;
    sb.call(
        ToolCall::Bash {
            command: None,
            restart: true,
            timeout_ms: None,
        },
        CancellationToken::new(),
    )
    .await
    .unwrap();
    wait_until("the shell's job is swept", || {
        !process_running("sleep 1001.4242")
    })
    .await;
    assert!(process_running("sleep 1000.4242"));
    assert!(p.exited.try_get().is_none());

    let exited = p.exited.clone();
    drop(p);
    let exit = soon(exited.wait()).await.expect("exit");
    assert_eq!(exit.signal, Some(9), "{exit:?}");
    wait_until("sleep killed", || !process_running("sleep 1000.4242")).await;
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_death_ends_the_stream_and_reports_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let sb = launch(dir.path()).await;
    let mut p = sb
        .spawn_process(spec(&["sleep", "1002.4242"]))
        .await
        .expect("spawn");
    wait_until("sleep started", || process_running("sleep 1002.4242")).await;
    let agent = sb.info().agent_pid.unwrap();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &agent.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = Vec::new();
    soon(p.stdout.read_to_end(&mut rest)).await.unwrap();
    let err = soon(p.exited.wait()).await.expect_err("the box failed");
    assert!(matches!(err, SandboxError::AgentDied { .. }), "{err:?}");
    // Writing to a process whose box is gone fails instead of hanging.
    let write = async {
        loop {
            if let Err(e) = p.stdin.write_all(b"x\n").await {
                return e;
            }
        }
    };
    soon(write).await;
    wait_until("sleep killed with its box", || {
        !process_running("sleep 1002.4242")
    })
    .await;
    let err = sb
        .spawn_process(spec(&["true"]))
        .await
        .expect_err("dead box");
    assert!(matches!(err, SandboxError::AgentDied { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_kills_the_boxs_processes() {
    let dir = tempfile::tempdir().unwrap();
    let sb = launch(dir.path()).await;
    let p = sb
        .spawn_process(spec(&["sleep", "1003.4242"]))
        .await
        .expect("spawn");
    wait_until("sleep started", || process_running("sleep 1003.4242")).await;
    sb.shutdown().await;
    wait_until("sleep killed", || !process_running("sleep 1003.4242")).await;
    // Either the agent reported the kill before it went, or the box's end is the answer.
    match soon(p.exited.wait()).await {
        Ok(exit) => assert_eq!(exit.signal, Some(9), "{exit:?}"),
        Err(e) => assert!(matches!(e, SandboxError::Shutdown), "{e:?}"),
    }
}
