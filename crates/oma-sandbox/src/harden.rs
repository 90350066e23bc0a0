//! What the in-box agent does to itself before it runs any tool in an isolated box.
//!
//! bubblewrap already gave the agent new namespaces, a read-only system, no capabilities and a
//! non-root uid. These restrictions are defence in depth on top, inherited by every process the
//! tools start:
//! - `no_new_privs`: no setuid binary can give a tool more rights than the agent has;
//! - Landlock: writes only under the writable roots (the workspace, `/tmp`, writable mounts),
//!   even if a mount were misconfigured;
//! - seccomp: the syscalls that widen the kernel's attack surface or reach across processes
//!   (ptrace, io_uring — which opens sockets without `socket()` — namespaces, mounts, kernel
//!   modules, bpf, keyrings) fail with `EPERM`, and new sockets are limited to Unix and IP (the
//!   box's network namespace has only `lo`, whose one way out is the egress bridge).

use std::collections::BTreeMap;
use std::path::PathBuf;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// What the launcher asked the agent to apply (command-line flags of `sandbox-agent`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hardening {
    /// Apply the restrictions at all (`--harden`). The `local` backend does not.
    pub enabled: bool,
    /// Roots under which tools may write (`--writable PATH`, repeatable).
    pub writable: Vec<PathBuf>,
    /// The session's egress socket (`--egress-socket PATH`): the agent serves a bridge from
    /// `127.0.0.1:`[`EGRESS_PORT`] to it, the box's only way out.
    pub egress_socket: Option<PathBuf>,
    /// `--exec CMD ARGS…` (always last): instead of serving the tool protocol, run this one
    /// command (with the egress bridge up) and exit with its status. Package installers use it.
    pub exec: Vec<String>,
}

/// The loopback port of the egress bridge inside the box (`HTTP_PROXY` points at it).
pub const EGRESS_PORT: u16 = 3128;

impl Hardening {
    /// Parses the agent's arguments (everything after `sandbox-agent`).
    pub fn from_args<I: IntoIterator<Item = String>>(args: I) -> Result<Hardening, String> {
        let mut out = Hardening::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--harden" => out.enabled = true,
                "--writable" => match args.next() {
                    Some(p) if p.starts_with('/') => out.writable.push(PathBuf::from(p)),
                    other => {
                        return Err(format!("--writable needs an absolute path, got {other:?}"));
                    }
                },
                "--egress-socket" => match args.next() {
                    Some(p) if p.starts_with('/') => out.egress_socket = Some(PathBuf::from(p)),
                    other => {
                        return Err(format!(
                            "--egress-socket needs an absolute path, got {other:?}"
                        ));
                    }
                },
                "--exec" => {
                    out.exec = args.by_ref().collect();
                    if out.exec.is_empty() {
                        return Err("--exec needs a command".to_string());
                    }
                }
                "sandbox-agent" => {}
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(out)
    }

    /// The arguments that produce this configuration.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.enabled {
            args.push("--harden".to_string());
        }
        for w in &self.writable {
            args.push("--writable".to_string());
            args.push(w.display().to_string());
        }
        if let Some(sock) = &self.egress_socket {
            args.push("--egress-socket".to_string());
            args.push(sock.display().to_string());
        }
        if !self.exec.is_empty() {
            args.push("--exec".to_string());
            args.extend(self.exec.iter().cloned());
        }
        args
    }

    /// Applies everything to this process (all of its threads) and its future children.
    /// Landlock being unavailable on the kernel is reported on stderr, not fatal: the mount
    /// view already confines writes. Everything else failing is fatal.
    pub fn apply(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        rustix::thread::set_no_new_privs(true).map_err(|e| format!("no_new_privs: {e}"))?;
        match self.landlock() {
            Ok(landlock::RulesetStatus::FullyEnforced) => {}
            Ok(status) => eprintln!("oma sandbox-agent: landlock {status:?} on this kernel"),
            Err(e) => eprintln!("oma sandbox-agent: landlock unavailable: {e}"),
        }
        for program in seccomp_programs()? {
            seccompiler::apply_filter_all_threads(&program).map_err(|e| format!("seccomp: {e}"))?;
        }
        Ok(())
    }

    fn landlock(&self) -> Result<landlock::RulesetStatus, landlock::RulesetError> {
        use landlock::{
            ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, path_beneath_rules,
        };
        let abi = ABI::V5;
        let writable: Vec<&PathBuf> = self.writable.iter().filter(|p| p.exists()).collect();
        let status = Ruleset::default()
            .handle_access(AccessFs::from_all(abi))?
            .create()?
            .add_rules(path_beneath_rules(["/"], AccessFs::from_read(abi)))?
            .add_rules(path_beneath_rules(writable, AccessFs::from_all(abi)))?
            .restrict_self()?;
        Ok(status.ruleset)
    }
}

/// Syscalls no tool needs that open the kernel up or reach other processes.
const DENIED: &[libc::c_long] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_fsopen,
    libc::SYS_fsmount,
    libc::SYS_fsconfig,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_open_by_handle_at,
    libc::SYS_acct,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_syslog,
];

/// `clone` flags that create namespaces.
const NAMESPACE_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWNS,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWCGROUP,
];

/// Socket families a tool may create: Unix, and IP (only `lo` exists in the box).
const ALLOWED_FAMILIES: &[libc::c_int] = &[libc::AF_UNIX, libc::AF_INET, libc::AF_INET6];

/// The filters, in the order they are installed. Two programs because seccompiler gives one
/// action per program: `EPERM` for the denials, `ENOSYS` for `clone3` (whose flags live in
/// memory a filter cannot read; `ENOSYS` makes libc fall back to `clone`, which is checked).
pub fn seccomp_programs() -> Result<Vec<BpfProgram>, String> {
    let err = |e: seccompiler::BackendError| format!("seccomp filter: {e}");
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("seccomp on {}: {e}", std::env::consts::ARCH))?;

    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for sys in DENIED {
        rules.insert(*sys, Vec::new());
    }
    // socket(domain, …): denied unless the domain is one of the allowed families.
    let not_allowed = ALLOWED_FAMILIES
        .iter()
        .map(|f| SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, *f as u64))
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    rules.insert(
        libc::SYS_socket,
        vec![SeccompRule::new(not_allowed).map_err(err)?],
    );
    // clone(flags, …): denied when any namespace flag is set.
    let mut clone_rules = Vec::new();
    for flag in NAMESPACE_FLAGS {
        let flag = *flag as u64;
        let cond = SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(flag),
            flag,
        )
        .map_err(err)?;
        clone_rules.push(SeccompRule::new(vec![cond]).map_err(err)?);
    }
    rules.insert(libc::SYS_clone, clone_rules);

    let deny = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(err)?;
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(err)?;
    Ok(vec![
        deny.try_into().map_err(err)?,
        clone3.try_into().map_err(err)?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip() {
        let h = Hardening {
            enabled: true,
            writable: vec![PathBuf::from("/workspace"), PathBuf::from("/tmp")],
            egress_socket: Some(PathBuf::from("/run/oma/egress.sock")),
            exec: vec!["pip".into(), "--exec".into(), "-x".into()],
        };
        assert_eq!(Hardening::from_args(h.to_args()), Ok(h));
        assert!(Hardening::from_args(["--writable".to_string(), "rel".to_string()]).is_err());
        assert!(Hardening::from_args(["--bogus".to_string()]).is_err());
        assert_eq!(
            Hardening::from_args(["sandbox-agent".to_string()]),
            Ok(Hardening::default())
        );
    }

    #[test]
    fn filters_compile_for_this_architecture() {
        let programs = seccomp_programs().unwrap();
        assert_eq!(programs.len(), 2);
        assert!(programs.iter().all(|p| !p.is_empty()));
    }
}
