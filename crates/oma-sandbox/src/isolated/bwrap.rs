//! The bubblewrap command line of a box, and the few files the box's `/etc` needs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::{Mount, SandboxError};

/// The user tools run as inside the box (mapped to the server's user outside).
pub const BOX_UID: u32 = 1000;
/// The box's home; `/home/user/.skills/<name>/` holds the agent's skills.
pub const BOX_HOME: &str = "/home/user";
/// The workspace inside the box.
pub const BOX_WORKSPACE: &str = "/workspace";
/// Where the agent binary is bound inside the box.
const BOX_AGENT: &str = "/opt/oma/bin/oma";
const BOX_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Top-level links or directories of a merged-`/usr` system.
const ROOT_DIRS: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// What of the host's `/etc` a box sees: what programs need to run (the dynamic linker's
/// cache, certificates, locale and time zone data, shells' profiles, tool configuration).
/// Not there: `resolv.conf` (no name service in the box), `shadow` and friends, ssh and
/// service configuration, `machine-id`, anything holding a host secret.
const ETC_ENTRIES: &[&str] = &[
    "alternatives",
    "bash.bashrc",
    "ca-certificates",
    "ca-certificates.conf",
    "environment",
    "gai.conf",
    "host.conf",
    "inputrc",
    "java-17-openjdk",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "locale.alias",
    "localtime",
    "magic",
    "magic.mime",
    "mime.types",
    "nsswitch.conf",
    "npmrc",
    "perl",
    "pip.conf",
    "profile",
    "profile.d",
    "protocols",
    "python3",
    "python3.11",
    "services",
    "shells",
    "skel",
    "ssl",
    "terminfo",
    "timezone",
    "vim",
    "wgetrc",
    "xdg",
];

/// Variables through which common tools find a CA bundle.
const CA_ENV_KEYS: &[&str] = &[
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "PIP_CERT",
];

/// Box paths mounts may not cover: the system view and the agent.
const RESERVED: &[&str] = &[
    "/usr",
    "/etc",
    "/proc",
    "/dev",
    "/opt/oma/bin",
    "/run/oma",
    "/bin",
    "/sbin",
    "/lib",
];

/// A cgroup / disk image name for a session's box: its id, with anything odd replaced.
pub fn box_name(session_id: &str) -> String {
    let name: String = session_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if name.is_empty() {
        "box".to_string()
    } else {
        name
    }
}

/// Refuses a mount whose target is not a plain absolute path outside the system view.
pub fn check_mount(m: &Mount) -> Result<(), SandboxError> {
    let bad = |why: &str| {
        Err(SandboxError::Launch(format!(
            "mount {} -> {}: {why}",
            m.source.display(),
            m.target
        )))
    };
    if !m.target.starts_with('/') || m.target == "/" {
        return bad("the target must be an absolute path below /");
    }
    if m.target
        .split('/')
        .any(|c| c == ".." || c == "." || c.contains('\0'))
    {
        return bad("the target may not contain `.` or `..`");
    }
    if RESERVED
        .iter()
        .any(|r| m.target == *r || m.target.starts_with(&format!("{r}/")))
    {
        return bad("the target is part of the box's system view");
    }
    if !m.source.is_dir() && !m.source.is_file() {
        return bad("the source does not exist");
    }
    Ok(())
}

/// The synthesized `/etc` files every box shares (written once per state dir).
#[derive(Debug)]
pub struct EtcFiles {
    pub passwd: PathBuf,
    pub group: PathBuf,
    pub hosts: PathBuf,
}

/// Writes the box's `passwd`, `group` and `hosts` under `<state_dir>/etc` (atomically, so a
/// box starting meanwhile never sees half a file).
pub fn write_etc(state_dir: &Path) -> Result<EtcFiles, String> {
    let dir = state_dir.join("etc");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let files = EtcFiles {
        passwd: dir.join("passwd"),
        group: dir.join("group"),
        hosts: dir.join("hosts"),
    };
    let contents = [
        (
            &files.passwd,
            format!(
                "root:x:0:0:root:/root:/usr/sbin/nologin\n\
                 user:x:{BOX_UID}:{BOX_UID}:user:{BOX_HOME}:/bin/bash\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            ),
        ),
        (
            &files.group,
            format!("root:x:0:\nuser:x:{BOX_UID}:\nnogroup:x:65534:\n"),
        ),
        (
            &files.hosts,
            "127.0.0.1\tlocalhost oma-box\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_string(),
        ),
    ];
    for (path, text) in contents {
        if std::fs::read_to_string(path).ok().as_deref() == Some(text.as_str()) {
            continue;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(files)
}

/// The namespaces and identity of every box (also used by the preflight probe).
fn isolation_args() -> Vec<OsString> {
    let mut args = shared_net_isolation_args();
    args.insert(0, "--unshare-net".into());
    args
}

/// Everything of [`isolation_args`] but the network namespace (package installers only).
fn shared_net_isolation_args() -> Vec<OsString> {
    let uid = BOX_UID.to_string();
    [
        "--unshare-user",
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-uts",
        "--unshare-cgroup",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--uid",
        &uid,
        "--gid",
        &uid,
        "--hostname",
        "oma-box",
        "--cap-drop",
        "ALL",
        "--clearenv",
    ]
    .iter()
    .map(OsString::from)
    .collect()
}

/// Arguments for `bwrap … true`: the namespaces, a read-only system, `/proc`.
pub fn probe_args() -> Vec<OsString> {
    let mut args = isolation_args();
    push_system(&mut args);
    for a in ["--dev", "/dev", "--proc", "/proc", "--"] {
        args.push(a.into());
    }
    args
}

fn push_system(args: &mut Vec<OsString>) {
    let mut push = |parts: &[&dyn AsRefOs]| {
        for p in parts {
            args.push(p.as_os());
        }
    };
    push(&[&"--ro-bind", &"/usr", &"/usr"]);
    for name in ROOT_DIRS {
        let host = Path::new("/").join(name);
        match std::fs::read_link(&host) {
            Ok(target) => push(&[&"--symlink", &target, &host]),
            Err(_) if host.is_dir() => push(&[&"--ro-bind", &host, &host]),
            Err(_) => {}
        }
    }
}

/// The bubblewrap arguments of a package installer's box: a session box's isolation and
/// system view, but the host's network and name service (installers fetch from registries),
/// the package manager's own state read-only, and `layer` writable at `target`. The command
/// follows.
///
/// With `via` (an egress socket and the agent binary) the installer gets no network of its
/// own: it runs under the hardened agent (`--exec`), whose bridge is its only way out, through
/// an egress session that opens only the package registries. Then the installer may run the
/// packages' own build code.
pub fn installer_args(
    layer: &Path,
    target: &str,
    via: Option<(&crate::EgressSpec, &Path)>,
) -> Vec<OsString> {
    let mut args = if via.is_some() {
        isolation_args()
    } else {
        shared_net_isolation_args()
    };
    push_system(&mut args);
    let mut push = |parts: &[&dyn AsRefOs]| {
        for p in parts {
            args.push(p.as_os());
        }
    };
    for entry in
        ETC_ENTRIES
            .iter()
            .chain(&["resolv.conf", "apt", "dpkg", "passwd", "group", "hosts"])
    {
        let host = Path::new("/etc").join(entry);
        push(&[&"--ro-bind-try", &host, &host]);
    }
    for state in ["/var/lib/apt/lists", "/var/lib/dpkg"] {
        push(&[&"--ro-bind-try", &state, &state]);
    }
    push(&[&"--dev", &"/dev", &"--proc", &"/proc", &"--tmpfs", &"/tmp"]);
    push(&[&"--bind", &layer, &target]);
    let proxy = format!("http://127.0.0.1:{}", crate::harden::EGRESS_PORT);
    if let Some((egress, agent_exe)) = via {
        push(&[
            &"--dir",
            &"/run/oma",
            &"--bind",
            &egress.socket,
            &BOX_EGRESS_SOCKET,
        ]);
        if let Some(bundle) = &egress.ca_bundle {
            push(&[&"--ro-bind", bundle, &BOX_CA_BUNDLE]);
        }
        push(&[&"--ro-bind", &agent_exe, &BOX_AGENT]);
        for k in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            push(&[&"--setenv", &k, &proxy.as_str()]);
        }
    }
    for (k, v) in [
        ("PATH", BOX_PATH),
        ("HOME", "/tmp"),
        ("LANG", "C.UTF-8"),
        ("TMPDIR", "/tmp"),
        ("PIP_NO_CACHE_DIR", "1"),
        // Builders' scratch space; only the layer outlives the installer.
        ("CARGO_HOME", "/tmp/cargo"),
        ("GOPATH", "/tmp/go"),
        ("GOCACHE", "/tmp/go-cache"),
        ("GOBIN", "/opt/oma/env/go/bin"),
        // The system's trust store (which the host's administrator controls, e.g. for a
        // TLS-inspecting proxy), not the copies bundled with pip and node.
        ("SSL_CERT_FILE", BOX_CA_BUNDLE),
        ("PIP_CERT", BOX_CA_BUNDLE),
        ("REQUESTS_CA_BUNDLE", BOX_CA_BUNDLE),
        ("NODE_EXTRA_CA_CERTS", BOX_CA_BUNDLE),
        ("npm_config_cafile", BOX_CA_BUNDLE),
    ] {
        push(&[&"--setenv", &k, &v]);
    }
    push(&[&"--chdir", &"/tmp", &"--"]);
    if via.is_some() {
        let wrapper = crate::harden::Hardening {
            enabled: true,
            writable: vec![
                PathBuf::from(target),
                PathBuf::from("/tmp"),
                PathBuf::from("/dev"),
            ],
            egress_socket: Some(PathBuf::from(BOX_EGRESS_SOCKET)),
            exec: Vec::new(),
        };
        push(&[&BOX_AGENT, &"sandbox-agent"]);
        args.extend(wrapper.to_args().into_iter().map(OsString::from));
        args.push("--exec".into());
    }
    args
}

/// What a box is made of.
pub struct BoxLayout<'a> {
    pub workspace: &'a Path,
    pub agent_exe: &'a Path,
    pub etc: &'a EtcFiles,
    pub env: &'a [(String, String)],
    pub mounts: &'a [Mount],
    pub egress: Option<&'a crate::EgressSpec>,
    /// A box of the ready pool: its egress socket and CA bundle do not exist yet. The socket's
    /// folder (holding `egress.sock` once the box is taken) is bound at `/run/oma` instead of
    /// the socket itself, and the CA bundle (an empty file until then) is filled in place.
    pub egress_folder: bool,
}

/// Where the session's egress socket appears inside the box.
pub const BOX_EGRESS_SOCKET: &str = "/run/oma/egress.sock";
/// The CA bundle inside the box: the system bundle's own path, so every tool trusts it.
const BOX_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The whole `bwrap` argument list for a box, ending with the agent's command line.
pub fn box_args(layout: &BoxLayout<'_>) -> Vec<OsString> {
    let mut args = isolation_args();
    push_system(&mut args);
    let mut push = |parts: &[&dyn AsRefOs]| {
        for p in parts {
            args.push(p.as_os());
        }
    };
    for entry in ETC_ENTRIES {
        let host = Path::new("/etc").join(entry);
        push(&[&"--ro-bind-try", &host, &host]);
    }
    push(&[&"--ro-bind", &layout.etc.passwd, &"/etc/passwd"]);
    push(&[&"--ro-bind", &layout.etc.group, &"/etc/group"]);
    push(&[&"--ro-bind", &layout.etc.hosts, &"/etc/hosts"]);
    push(&[&"--dev", &"/dev", &"--proc", &"/proc"]);
    push(&[&"--tmpfs", &"/tmp", &"--tmpfs", &"/home"]);
    push(&[&"--dir", &BOX_HOME]);
    push(&[&"--bind", &layout.workspace, &BOX_WORKSPACE]);
    push(&[&"--ro-bind", &layout.agent_exe, &BOX_AGENT]);
    // Parents before children, so a mount inside another mount lands on top of it.
    let mut mounts: Vec<&Mount> = layout.mounts.iter().collect();
    mounts.sort_by_key(|m| m.target.matches('/').count());
    for m in &mounts {
        let flag = if m.writable { "--bind" } else { "--ro-bind" };
        push(&[&flag, &m.source, &m.target.as_str()]);
    }
    let proxy = format!("http://127.0.0.1:{}", crate::harden::EGRESS_PORT);
    if let Some(egress) = layout.egress {
        match egress.socket.parent() {
            Some(folder) if layout.egress_folder => push(&[&"--ro-bind", &folder, &"/run/oma"]),
            _ => push(&[
                &"--dir",
                &"/run/oma",
                &"--bind",
                &egress.socket,
                &BOX_EGRESS_SOCKET,
            ]),
        }
        if let Some(bundle) = &egress.ca_bundle {
            push(&[&"--ro-bind", bundle, &BOX_CA_BUNDLE]);
        }
    }
    let mut env: Vec<(&str, &str)> = vec![
        ("PATH", BOX_PATH),
        ("HOME", BOX_HOME),
        ("USER", "user"),
        ("LOGNAME", "user"),
        ("SHELL", "/bin/bash"),
        ("LANG", "C.UTF-8"),
        ("TERM", "dumb"),
        ("TMPDIR", "/tmp"),
    ];
    if let Some(egress) = layout.egress {
        for k in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            env.push((k, &proxy));
        }
        for k in ["NO_PROXY", "no_proxy"] {
            env.push((k, "localhost,127.0.0.1,::1"));
        }
        if egress.ca_bundle.is_some() {
            for k in CA_ENV_KEYS {
                env.push((k, BOX_CA_BUNDLE));
            }
        }
    }
    for (k, v) in layout.env {
        env.retain(|(name, _)| name != k);
        env.push((k, v));
    }
    for (k, v) in env {
        push(&[&"--setenv", &k, &v]);
    }
    push(&[
        &"--chdir",
        &BOX_WORKSPACE,
        &"--",
        &BOX_AGENT,
        &"sandbox-agent",
    ]);
    let mut writable = vec![
        PathBuf::from(BOX_WORKSPACE),
        PathBuf::from("/tmp"),
        PathBuf::from(BOX_HOME),
        PathBuf::from("/dev"),
    ];
    writable.extend(
        mounts
            .iter()
            .filter(|m| m.writable)
            .map(|m| PathBuf::from(&m.target)),
    );
    let hardening = crate::harden::Hardening {
        enabled: true,
        writable,
        egress_socket: layout.egress.map(|_| PathBuf::from(BOX_EGRESS_SOCKET)),
        exec: Vec::new(),
    };
    args.extend(hardening.to_args().into_iter().map(OsString::from));
    args
}

/// Strings and paths alike, for building argument lists.
trait AsRefOs {
    fn as_os(&self) -> OsString;
}
impl AsRefOs for &str {
    fn as_os(&self) -> OsString {
        OsString::from(*self)
    }
}
impl AsRefOs for &Path {
    fn as_os(&self) -> OsString {
        self.as_os_str().to_owned()
    }
}
impl AsRefOs for PathBuf {
    fn as_os(&self) -> OsString {
        self.as_os_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(target: &str, writable: bool) -> Mount {
        Mount {
            source: std::env::temp_dir(),
            target: target.to_string(),
            writable,
        }
    }

    #[test]
    fn mounts_outside_the_system_view_only() {
        assert!(check_mount(&mount("/mnt/memory/notes", true)).is_ok());
        assert!(check_mount(&mount("/home/user/.skills/pdf", false)).is_ok());
        for bad in [
            "relative",
            "/",
            "/usr/lib",
            "/etc",
            "/mnt/../etc",
            "/opt/oma/bin",
            "/proc/1",
        ] {
            assert!(check_mount(&mount(bad, false)).is_err(), "{bad}");
        }
        let missing = Mount {
            source: PathBuf::from("/nonexistent/oma"),
            target: "/mnt/x".into(),
            writable: false,
        };
        assert!(check_mount(&missing).is_err());
    }

    #[test]
    fn box_names_are_safe_path_components() {
        assert_eq!(box_name("sesn_01ABC"), "sesn_01ABC");
        assert_eq!(box_name("../x"), "___x");
        assert_eq!(box_name(""), "box");
    }

    #[test]
    fn the_command_line_isolates_and_ends_with_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let etc = write_etc(dir.path()).unwrap();
        let env = vec![("HOME".to_string(), "/elsewhere".to_string())];
        let mounts = vec![
            mount("/mnt/memory/notes/sub", false),
            mount("/mnt/memory/notes", true),
        ];
        let args: Vec<String> = box_args(&BoxLayout {
            workspace: Path::new("/srv/ws"),
            agent_exe: Path::new("/usr/local/bin/oma"),
            etc: &etc,
            env: &env,
            mounts: &mounts,
            egress: None,
            egress_folder: false,
        })
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
        let joined = args.join(" ");
        for needed in [
            "--unshare-net",
            "--unshare-pid",
            "--cap-drop ALL",
            "--clearenv",
            "--bind /srv/ws /workspace",
            "--setenv HOME /elsewhere",
            "--writable /mnt/memory/notes",
            "/opt/oma/bin/oma sandbox-agent --harden",
        ] {
            assert!(joined.contains(needed), "{needed} missing from {joined}");
        }
        assert!(!joined.contains("resolv.conf"));
        assert!(!joined.contains("/etc/shadow"));
        // Parents first.
        let parent = joined.find("/mnt/memory/notes --").unwrap_or(usize::MAX);
        let child = joined.find("/mnt/memory/notes/sub").unwrap();
        assert!(joined.find("--bind /tmp").is_none() || parent < child);
        assert!(!joined.contains("--writable /mnt/memory/notes/sub"));
    }
}
