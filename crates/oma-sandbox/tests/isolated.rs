//! The `isolated` backend end to end: the real agent binary in a real bubblewrap box with a real
//! cgroup, driven through the `Sandbox` trait. Each test tries to get out of the box the way a
//! prompt-injected model would, with bash.
//!
//! Needs `bwrap` and a writable cgroup hierarchy (root); `.ci/run` installs bubblewrap. Without
//! them every test prints why it is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use oma_sandbox::{
    BoxEvent, BoxSpec, CancellationToken, IsolatedConfig, IsolatedLauncher, Limits, Mount,
    OutputBlock, Sandbox, SandboxLauncher, ToolCall, ToolOutcome,
};

struct Fixture {
    launcher: IsolatedLauncher,
    dir: tempfile::TempDir,
}

/// A launcher, or `None` (with a printed reason) when this host cannot make boxes.
async fn fixture() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let launcher = IsolatedLauncher::new(IsolatedConfig::new(
        PathBuf::from(env!("CARGO_BIN_EXE_oma-sandbox-agent")),
        dir.path().join("sandbox"),
    ));
    match launcher.preflight().await {
        Ok(_) => Some(Fixture { launcher, dir }),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI must be able to run isolated boxes: {e}")
        }
        Err(e) => {
            eprintln!("skipped: this host cannot run isolated boxes: {e}");
            None
        }
    }
}

impl Fixture {
    async fn launch(&self, name: &str, limits: Limits, mounts: Vec<Mount>) -> Arc<dyn Sandbox> {
        let workspace = self.dir.path().join("workspaces").join(name);
        self.launcher
            .launch(BoxSpec {
                session_id: format!("sesn_{name}"),
                workspace,
                env: vec![("OMA_SESSION".into(), name.into())],
                mounts,
                limits,
                egress: None,
            })
            .await
            .expect("launch")
    }
}

async fn bash(sb: &Arc<dyn Sandbox>, command: &str) -> (String, bool) {
    let out = sb
        .call(
            ToolCall::Bash {
                command: Some(command.into()),
                restart: false,
                timeout_ms: Some(60_000),
            },
            CancellationToken::new(),
        )
        .await
        .expect("bash call");
    (text(&out), out.is_error)
}

fn text(out: &ToolOutcome) -> String {
    out.content
        .iter()
        .filter_map(|b| match b {
            OutputBlock::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("")
}

const SMALL: Limits = Limits {
    millicpus: Some(1000),
    memory_bytes: Some(128 << 20),
    pids: Some(64),
    disk_bytes: None,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_box_is_a_different_user_with_only_its_own_view() {
    let Some(fx) = fixture().await else { return };
    // A secret-holding folder on the host, like the server's data directory.
    let secret_dir = fx.dir.path().join("data");
    std::fs::create_dir_all(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("oma.db"), "secret-database-bytes").unwrap();

    let sb = fx.launch("view", SMALL, Vec::new()).await;
    let info = sb.info();
    assert!(info.isolated);
    assert_eq!(info.box_workspace, "/workspace");

    let (out, _) = bash(&sb, "id -u; id -un; pwd; hostname").await;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["1000", "user", "/workspace", "oma-box"]
    );

    let db = secret_dir.join("oma.db");
    let (out, failed) = bash(&sb, &format!("cat {}", db.display())).await;
    assert!(failed && !out.contains("secret-database-bytes"), "{out}");
    let (out, _) = bash(&sb, "ls -A /root 2>&1; echo; ls /home").await;
    assert!(!out.contains(".bashrc") && !out.contains(".cargo"), "{out}");
    let (out, _) = bash(&sb, "test -e /etc/shadow && echo SHADOW; test -e /etc/resolv.conf && echo RESOLV; test -e /sys/fs/cgroup && echo SYS; true").await;
    assert!(
        !out.contains("SHADOW") && !out.contains("RESOLV") && !out.contains("SYS"),
        "{out}"
    );

    // Only the box's own processes: no host process is visible in its /proc.
    let (out, _) = bash(&sb, "ls /proc | grep -c '^[0-9]'").await;
    let visible: usize = out.trim().parse().unwrap();
    assert!(visible < 10, "{visible} processes visible");
    let (out, failed) = bash(&sb, &format!("cat /proc/{}/cmdline", std::process::id())).await;
    assert!(failed || !out.contains("isolated"), "{out}");

    // A clean environment: nothing of the server's (cargo sets these for tests).
    let (out, _) = bash(&sb, "env").await;
    assert!(!out.contains("CARGO"), "{out}");
    assert!(out.contains("OMA_SESSION=view"));

    // The system is read-only; the workspace, /tmp and home are writable.
    let (out, failed) = bash(&sb, "touch /usr/oma-test 2>&1").await;
    assert!(failed, "{out}");
    let (_, failed) = bash(
        &sb,
        "echo hi > /workspace/a && echo hi > /tmp/b && echo hi > ~/c",
    )
    .await;
    assert!(!failed);
    assert_eq!(
        std::fs::read_to_string(fx.dir.path().join("workspaces/view/a")).unwrap(),
        "hi\n"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_cannot_see_each_other() {
    let Some(fx) = fixture().await else { return };
    let a = fx.launch("a", SMALL, Vec::new()).await;
    let b = fx.launch("b", SMALL, Vec::new()).await;
    bash(&a, "echo private-to-a > note.txt").await;
    let a_ws = fx.dir.path().join("workspaces/a/note.txt");
    assert!(a_ws.exists());
    let (out, failed) = bash(
        &b,
        &format!("cat {} /workspace/note.txt 2>&1", a_ws.display()),
    )
    .await;
    assert!(failed && !out.contains("private-to-a"), "{out}");
    let (out, _) = bash(&b, "ls /proc | grep -c '^[0-9]'").await;
    assert!(out.trim().parse::<usize>().unwrap() < 10);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_network_and_no_name_resolution() {
    let Some(fx) = fixture().await else { return };
    // A real listener on the host's loopback, like the oma server or PostgreSQL.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sb = fx.launch("net", SMALL, Vec::new()).await;
    let (out, failed) = bash(
        &sb,
        &format!("timeout 5 bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}' 2>&1"),
    )
    .await;
    assert!(failed, "reached the host's port {port}: {out}");
    let (out, failed) = bash(
        &sb,
        "timeout 5 bash -c 'echo > /dev/tcp/127.0.0.1/5432' 2>&1",
    )
    .await;
    assert!(failed, "reached PostgreSQL: {out}");
    let (out, failed) = bash(
        &sb,
        "getent hosts example.com || getent hosts deb.debian.org",
    )
    .await;
    assert!(failed, "resolved a name: {out}");
    let (out, _) = bash(&sb, "ls /sys/class/net 2>/dev/null; cat /proc/net/dev").await;
    assert!(!out.contains("eth") && !out.contains("ens"), "{out}");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seccomp_and_no_new_privileges_hold_inside() {
    let Some(fx) = fixture().await else { return };
    let sb = fx.launch("sec", SMALL, Vec::new()).await;
    let (out, _) = bash(
        &sb,
        "grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status",
    )
    .await;
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    // New namespaces (a way to regain capabilities) are refused.
    let (out, failed) = bash(&sb, "unshare -U true 2>&1").await;
    assert!(failed, "{out}");
    // Landlock: even a writable-looking path outside the roots refuses writes.
    let (out, failed) = bash(&sb, "echo x > /opt/oma/x 2>&1").await;
    assert!(failed, "{out}");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_is_contained_by_the_pids_limit() {
    let Some(fx) = fixture().await else { return };
    let sb = fx.launch("forks", SMALL, Vec::new()).await;
    // Bounded, so a broken limit cannot take the test machine down: try to start 500 sleepers.
    let script = r#"
import os, signal, time
children = []
for _ in range(500):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    children.append(pid)
print(len(children), flush=True)
for pid in children:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
"#;
    std::fs::write(fx.dir.path().join("workspaces/forks/bomb.py"), script).unwrap();
    let (out, _) = bash(&sb, "python3 bomb.py").await;
    let started: usize = out.lines().next().unwrap_or("").trim().parse().unwrap_or(0);
    assert!(
        started > 0 && started < 64,
        "{started} processes started ({out})"
    );
    // The box still works.
    let (out, _) = bash(&sb, "echo still-here").await;
    assert!(out.contains("still-here"), "{out}");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_is_killed_reported_and_the_box_keeps_working() {
    let Some(fx) = fixture().await else { return };
    let sb = fx.launch("oom", SMALL, Vec::new()).await;
    let (out, failed) = bash(&sb, "python3 -c \"x = b'a' * (1024 << 20); print(len(x))\"").await;
    assert!(failed, "{out}");
    assert!(out.contains("ran out of memory"), "{out}");
    assert!(out.contains("128 MiB"), "{out}");
    let events = sb.take_events();
    assert!(
        matches!(events.as_slice(), [BoxEvent::OutOfMemory { limit_bytes: Some(l), .. }] if *l == 128 << 20),
        "{events:?}"
    );
    let (out, failed) = bash(&sb, "echo next-call-works").await;
    assert!(!failed && out.contains("next-call-works"), "{out}");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounts_appear_at_their_targets_with_their_access() {
    let Some(fx) = fixture().await else { return };
    let ro = fx.dir.path().join("skill");
    let rw = fx.dir.path().join("memory");
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::write(ro.join("SKILL.md"), "# skill").unwrap();
    let sb = fx
        .launch(
            "mounts",
            SMALL,
            vec![
                Mount {
                    source: ro.clone(),
                    target: "/home/user/.skills/demo".into(),
                    writable: false,
                },
                Mount {
                    source: rw.clone(),
                    target: "/mnt/memory/notes".into(),
                    writable: true,
                },
            ],
        )
        .await;
    let (out, _) = bash(&sb, "cat /home/user/.skills/demo/SKILL.md").await;
    assert_eq!(out.trim(), "# skill");
    let (_, failed) = bash(&sb, "echo x > /home/user/.skills/demo/evil 2>&1").await;
    assert!(failed);
    let (_, failed) = bash(&sb, "echo remember > /mnt/memory/notes/today.md").await;
    assert!(!failed);
    assert_eq!(
        std::fs::read_to_string(rw.join("today.md")).unwrap(),
        "remember\n"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_no_process_and_no_cgroup() {
    let Some(fx) = fixture().await else { return };
    let sb = fx.launch("gone", SMALL, Vec::new()).await;
    bash(&sb, "(sleep 300 &) ; nohup sleep 301 >/dev/null 2>&1 &").await;
    let pid = sb.info().agent_pid.unwrap();
    sb.shutdown().await;
    assert!(!Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid));
    let leftovers = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("sleep\u{0}301"))
                .unwrap_or(false)
        })
        .count();
    assert_eq!(leftovers, 0);
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.contains(") Z "))
        .unwrap_or(true)
}

/// A stand-in for a session's egress proxy on the Unix socket `socket`: answers every request
/// with `body` and reports the request line it received.
fn egress_stand_in(
    socket: &Path,
    body: &'static str,
) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    let (seen_tx, seen_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen_tx = seen_tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let _ = seen_tx.send(head.lines().next().unwrap_or("").to_string());
                let _ = conn
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    seen_rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_egress_socket_is_the_only_way_out() {
    let Some(fx) = fixture().await else { return };
    let socket = fx.dir.path().join("egress.sock");
    let mut seen_rx = egress_stand_in(&socket, "hello-through-egress");
    let workspace = fx.dir.path().join("workspaces/egress");
    let sb = fx
        .launcher
        .launch(BoxSpec {
            session_id: "sesn_egress".into(),
            workspace,
            limits: SMALL,
            egress: Some(oma_sandbox::EgressSpec {
                socket: socket.clone(),
                ca_bundle: None,
            }),
            ..BoxSpec::default()
        })
        .await
        .expect("launch");
    let (out, failed) = bash(&sb, "curl -s --max-time 10 http://api.example.com/v1/x").await;
    assert!(!failed && out.contains("hello-through-egress"), "{out}");
    assert_eq!(
        seen_rx.recv().await.unwrap(),
        "GET http://api.example.com/v1/x HTTP/1.1"
    );
    let (out, _) = bash(&sb, "echo $HTTPS_PROXY; env | grep -c -i proxy").await;
    assert!(out.starts_with("http://127.0.0.1:3128"), "{out}");
    // Around the proxy there is still nothing.
    let (out, failed) = bash(
        &sb,
        "curl -s --noproxy '*' --max-time 5 http://1.1.1.1/ 2>&1",
    )
    .await;
    assert!(failed, "{out}");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_packages_are_installed_once_into_a_layer_boxes_mount() {
    use std::os::unix::fs::MetadataExt;
    let Some(fx) = fixture().await else { return };
    let packages = oma_sandbox::PackageSet {
        apt: vec!["hello".into()],
        npm: vec!["is-number@7.0.0".into()],
        pip: vec!["six==1.16.0".into()],
        ..Default::default()
    };
    let layer = fx
        .launcher
        .package_layer(&packages, None)
        .await
        .expect("install");
    let inode = std::fs::metadata(&layer.mount.source).unwrap().ino();
    // Cached: the same layer, not reinstalled.
    let again = fx
        .launcher
        .package_layer(&packages, None)
        .await
        .expect("reuse");
    assert_eq!(again, layer);
    assert_eq!(std::fs::metadata(&again.mount.source).unwrap().ino(), inode);

    let sb = fx
        .launcher
        .launch(BoxSpec {
            session_id: "sesn_pkgs".into(),
            workspace: fx.dir.path().join("workspaces/pkgs"),
            env: layer.env.clone(),
            mounts: vec![layer.mount.clone()],
            limits: SMALL,
            egress: None,
        })
        .await
        .expect("launch");
    let (out, failed) = bash(
        &sb,
        "hello; python3 -c 'import six; print(six.__version__)'; \
         node -e \"console.log(require('is-number')(5))\"",
    )
    .await;
    assert!(!failed, "{out}");
    assert!(out.contains("Hello, world!"), "{out}");
    assert!(out.contains("1.16.0"), "{out}");
    assert!(out.contains("true"), "{out}");
    // The layer is read-only in the box.
    let (_, failed) = bash(&sb, "touch /opt/oma/env/pip/x").await;
    assert!(failed);
    sb.shutdown().await;

    // A package that does not exist: the installer's own message.
    let missing = oma_sandbox::PackageSet {
        pip: vec!["oma-no-such-package-4242==1.0".into()],
        ..Default::default()
    };
    let err = fx
        .launcher
        .package_layer(&missing, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("pip packages"), "{err}");
    assert!(
        err.contains("No matching distribution") || err.contains("Could not find"),
        "{err}"
    );
    // Refused outright: building from source runs the packages' code.
    let cargo = oma_sandbox::PackageSet {
        cargo: vec!["ripgrep".into()],
        ..Default::default()
    };
    let err = fx
        .launcher
        .package_layer(&cargo, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs the server's egress proxy"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filling_the_disk_stops_at_the_quota() {
    let Some(fx) = fixture().await else { return };
    if !fx.launcher.preflight().await.unwrap().disk_quota {
        eprintln!("skipped: disk quotas need root");
        return;
    }
    let workspace = fx.dir.path().join("workspaces/disk");
    // Unmounted even when an assertion fails, so no test run leaves a mount behind.
    struct Detach(PathBuf);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = oma_sandbox::detach_workspace(&self.0);
        }
    }
    let _detach = Detach(workspace.clone());
    // Something already there (as after a snapshot restore) moves onto the quota'd disk.
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::write(workspace.join("kept.txt"), "kept").unwrap();
    let limits = Limits {
        disk_bytes: Some(64 << 20),
        ..SMALL
    };
    let spec = BoxSpec {
        session_id: "sesn_disk".into(),
        workspace: workspace.clone(),
        limits,
        ..BoxSpec::default()
    };
    let sb = fx.launcher.launch(spec.clone()).await.expect("launch");
    let (out, _) = bash(&sb, "cat kept.txt; echo; ls -A").await;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["kept", "kept.txt"],
        "{out}"
    );
    let (out, failed) = bash(&sb, "dd if=/dev/zero of=big bs=1M count=200 2>&1").await;
    assert!(failed && out.contains("No space left on device"), "{out}");
    let (out, _) = bash(&sb, "du -sm /workspace | cut -f1").await;
    assert!(out.trim().parse::<u64>().unwrap() <= 64, "{out}");
    // /tmp is not a way around it... it is memory, bounded by the memory limit instead.
    sb.shutdown().await;

    // The next box of the session finds the same disk, with its files.
    let sb = fx.launcher.launch(spec).await.expect("relaunch");
    let (out, _) = bash(&sb, "cat kept.txt; rm big; df -m /workspace | tail -1").await;
    assert!(out.starts_with("kept"), "{out}");
    sb.shutdown().await;

    // After a reboot the disk is not mounted: the folder looks empty, and is mounted again
    // before anything reads it.
    let status = std::process::Command::new("umount")
        .arg(&workspace)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(!workspace.join("kept.txt").exists());
    oma_sandbox::remount_workspace(&workspace).unwrap();
    assert_eq!(
        std::fs::read_to_string(workspace.join("kept.txt")).unwrap(),
        "kept"
    );

    // Removing the workspace unmounts it and deletes its image.
    oma_sandbox::detach_workspace(&workspace).unwrap();
    std::fs::remove_dir_all(&workspace).unwrap();
    assert!(!fx.dir.path().join("workspaces/.disk-disk.img").exists());
}

#[tokio::test]
async fn without_bubblewrap_launching_fails_with_the_fix_and_never_runs_unisolated() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = IsolatedConfig::new(
        PathBuf::from(env!("CARGO_BIN_EXE_oma-sandbox-agent")),
        dir.path().join("sandbox"),
    );
    config.bwrap = PathBuf::from("/nonexistent/bwrap");
    config.cgroups = false;
    let launcher = IsolatedLauncher::new(config);
    let err = launcher.preflight().await.unwrap_err().to_string();
    assert!(err.contains("apt-get install bubblewrap"), "{err}");
    let err = launcher
        .launch(BoxSpec {
            session_id: "sesn_nobwrap".into(),
            workspace: dir.path().join("ws"),
            ..BoxSpec::default()
        })
        .await
        .err()
        .expect("no box without bubblewrap")
        .to_string();
    assert!(err.contains("apt-get install bubblewrap"), "{err}");
    // And a box with limits but cgroups turned off is refused rather than run unlimited.
    let mut config = IsolatedConfig::new(
        PathBuf::from(env!("CARGO_BIN_EXE_oma-sandbox-agent")),
        dir.path().join("sandbox"),
    );
    config.cgroups = false;
    let err = IsolatedLauncher::new(config)
        .launch(BoxSpec {
            session_id: "sesn_nolimits".into(),
            workspace: dir.path().join("ws2"),
            limits: SMALL,
            ..BoxSpec::default()
        })
        .await
        .err()
        .expect("no unlimited box")
        .to_string();
    assert!(err.contains("cgroups are turned off"), "{err}");
}

/// Bounds a step that should finish promptly, so a bug fails the test instead of hanging it.
async fn within<F: std::future::Future>(f: F) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout(std::time::Duration::from_secs(30), f).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_opened_in_the_box_talk_over_stdio_and_stay_confined() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let Some(fx) = fixture().await else { return };
    let sb = fx.launch("procs", SMALL, Vec::new()).await;

    // A stdio server in miniature: one answer per line, until stdin ends.
    let echo = "import sys\nfor line in sys.stdin:\n    print('echo:' + line.strip(), flush=True)";
    let mut p = sb
        .spawn_process(oma_sandbox::ProcessSpec {
            command: vec!["python3".into(), "-u".into(), "-c".into(), echo.into()],
            ..Default::default()
        })
        .await
        .expect("spawn python3");
    p.stdin.write_all(b"ping\n").await.unwrap();
    p.stdin.flush().await.unwrap();
    let mut lines = BufReader::new(p.stdout).lines();
    let line = within(lines.next_line()).await.unwrap().unwrap();
    assert_eq!(line.as_deref(), Some("echo:ping"));
    p.stdin.shutdown().await.unwrap();
    assert_eq!(within(lines.next_line()).await.unwrap().unwrap(), None);
    assert!(within(p.exited.wait()).await.unwrap().unwrap().success());

    // It inherits the agent's hardening: writes outside the writable roots fail.
    let probe = r#"
import sys
for path in ['/usr/oma-x', '/etc/oma-x', '/opt/oma/x', '/workspace/ok', '/tmp/ok']:
    try:
        with open(path, 'w') as f:
            f.write('x')
        print(path, 'written')
    except OSError as e:
        print(path, 'refused', e.errno)
status = open('/proc/self/status').read()
print('nnp' if 'NoNewPrivs:\t1' in status else 'no-nnp')
print('seccomp' if 'Seccomp:\t2' in status else 'no-seccomp')
"#;
    let mut p = sb
        .spawn_process(oma_sandbox::ProcessSpec {
            command: vec!["python3".into(), "-c".into(), probe.into()],
            ..Default::default()
        })
        .await
        .expect("spawn python3");
    let mut out = String::new();
    within(p.stdout.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    let exit = within(p.exited.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "{exit} {out}");
    for denied in ["/usr/oma-x", "/etc/oma-x", "/opt/oma/x"] {
        assert!(out.contains(&format!("{denied} refused")), "{out}");
    }
    assert!(out.contains("/workspace/ok written"), "{out}");
    assert!(out.contains("/tmp/ok written"), "{out}");
    assert!(out.contains("nnp\nseccomp"), "{out}");
    assert!(fx.dir.path().join("workspaces/procs/ok").exists());
    sb.shutdown().await;
}

/// Polls `ready` until it holds, for at most a minute.
async fn until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_box_becomes_the_sessions_with_its_workspace_and_egress() {
    if fixture().await.is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let workspaces = dir.path().join("workspaces");
    let mut config = IsolatedConfig::new(
        PathBuf::from(env!("CARGO_BIN_EXE_oma-sandbox-agent")),
        dir.path().join("sandbox"),
    );
    config.pool = Some(oma_sandbox::PoolConfig {
        size: 1,
        dir: workspaces.join(".pool"),
        limits: SMALL,
        egress: true,
        mounts: Vec::new(),
    });
    let launcher = IsolatedLauncher::new(config);
    launcher.fill_pool().await;
    assert_eq!(launcher.ready_boxes(), 1);

    // The session's proxy: a socket that answers, and a CA bundle to trust.
    let run = dir.path().join("sessions/sesn_pooled");
    std::fs::create_dir_all(&run).unwrap();
    let socket = run.join("egress.sock");
    let _seen = egress_stand_in(&socket, "through-the-session-proxy");
    let bundle = run.join("egress.ca.pem");
    std::fs::write(&bundle, "-----BEGIN CERTIFICATE-----\nsession-ca\n").unwrap();
    let workspace = workspaces.join("sesn_pooled");
    std::fs::create_dir_all(&workspace).unwrap();
    let spec = BoxSpec {
        session_id: "sesn_pooled".into(),
        workspace: workspace.clone(),
        limits: SMALL,
        egress: Some(oma_sandbox::EgressSpec {
            socket,
            ca_bundle: Some(bundle),
        }),
        ..BoxSpec::default()
    };
    let sb = launcher.launch(spec.clone()).await.expect("launch");
    assert_eq!(launcher.ready_boxes(), 0, "the ready box was taken");
    assert_eq!(sb.info().session_id, "sesn_pooled");
    assert_eq!(sb.info().workspace, workspace.canonicalize().unwrap());
    // The box's /workspace is the session's folder on the host.
    let (out, failed) = bash(&sb, "echo from-the-box > /workspace/note; pwd").await;
    assert!(!failed && out.trim() == "/workspace", "{out}");
    assert_eq!(
        std::fs::read_to_string(workspace.join("note")).unwrap(),
        "from-the-box\n"
    );
    // Its network is the session's proxy, and it trusts the session's CA bundle.
    let (out, failed) = bash(&sb, "curl -s --max-time 10 http://api.example.com/").await;
    assert!(
        !failed && out.contains("through-the-session-proxy"),
        "{out}"
    );
    let (out, _) = bash(&sb, "cat $SSL_CERT_FILE").await;
    assert!(out.contains("session-ca"), "{out}");

    // A session the ready shape does not fit (a mount, other limits) gets a box of its own,
    // and the pool fills up again in the background.
    let mounted = dir.path().join("mounted");
    std::fs::create_dir_all(&mounted).unwrap();
    let other = launcher
        .launch(BoxSpec {
            session_id: "sesn_own".into(),
            workspace: workspaces.join("sesn_own"),
            limits: SMALL,
            mounts: vec![Mount {
                source: mounted,
                target: "/mnt/data".into(),
                writable: false,
            }],
            ..BoxSpec::default()
        })
        .await
        .expect("launch");
    assert_eq!(launcher.ready_boxes(), 0);
    let (out, _) = bash(
        &other,
        "ls /workspace | wc -l; test -d /mnt/data && echo mounted",
    )
    .await;
    assert!(out.contains("mounted"), "{out}");
    launcher.fill_pool().await;
    until("the pool refilled", || launcher.ready_boxes() == 1).await;
    // A ready box never sees another session's files.
    let again = launcher
        .launch(BoxSpec {
            session_id: "sesn_second".into(),
            workspace: workspaces.join("sesn_second"),
            ..spec
        })
        .await
        .expect("launch");
    assert_eq!(launcher.ready_boxes(), 0);
    let (out, _) = bash(&again, "ls -A /workspace | wc -l").await;
    assert_eq!(out.trim(), "0", "{out}");
    for b in [sb, other, again] {
        b.shutdown().await;
    }
    // The pool's folders go with its boxes.
    drop(launcher);
    until("the pool's folders are removed", || {
        std::fs::read_dir(workspaces.join(".pool")).map_or(true, |d| d.count() == 0)
    })
    .await;
}
