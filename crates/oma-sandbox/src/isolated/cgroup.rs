//! One control group per box, for its CPU, memory and process limits (cgroup v1 and v2).
//!
//! Boxes' groups are created under the server's own group (read from `/proc/self/cgroup`),
//! never at the root: the host may already confine the server, and the limits nest. The box's
//! first process joins its group between `fork` and `exec` (see [`BoxCgroup::procs_files`]), so
//! nothing the box starts ever runs outside it.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::Limits;

/// The CPU accounting period the quota is a share of.
const CPU_PERIOD_US: u64 = 100_000;
/// Where cgroup file systems are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Which hierarchy the host uses, with the directory under which boxes' groups go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupParent {
    /// Unified hierarchy: one directory.
    V2(PathBuf),
    /// Legacy hierarchies: one directory per controller we use.
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        cpu: PathBuf,
    },
}

impl CgroupParent {
    /// Finds where this process's groups are and prepares `<own group>/<name>` as the parent
    /// of every box's group.
    pub fn discover(name: &str) -> Result<CgroupParent, String> {
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let root = Path::new(CGROUP_ROOT);
        let parent = if root.join("cgroup.controllers").exists() {
            let path = own_path(&own, None).ok_or("no cgroup v2 entry in /proc/self/cgroup")?;
            CgroupParent::V2(join_rel(root, &path).join(name))
        } else {
            let dir = |controller: &str| -> Result<PathBuf, String> {
                let path = own_path(&own, Some(controller)).ok_or_else(|| {
                    format!("the {controller} cgroup controller is not mounted (cgroup v1)")
                })?;
                Ok(join_rel(&root.join(controller), &path).join(name))
            };
            CgroupParent::V1 {
                memory: dir("memory")?,
                pids: dir("pids")?,
                cpu: dir("cpu")?,
            }
        };
        parent.sweep_stale();
        parent.prepare()?;
        Ok(parent)
    }

    /// The directories this parent consists of (one per hierarchy).
    fn dirs(&self) -> Vec<&Path> {
        match self {
            CgroupParent::V2(d) => vec![d.as_path()],
            CgroupParent::V1 { memory, pids, cpu } => {
                vec![memory.as_path(), pids.as_path(), cpu.as_path()]
            }
        }
    }

    /// Removes the groups of servers that are gone (`oma-<pid>` whose pid is not running):
    /// their boxes died with them (bubblewrap's `--die-with-parent`), the empty groups stay.
    fn sweep_stale(&self) {
        for dir in self.dirs() {
            let Some(siblings) = dir.parent().and_then(|p| std::fs::read_dir(p).ok()) else {
                continue;
            };
            for entry in siblings.flatten() {
                let name = entry.file_name();
                // `oma-<pid>-<n>`, or `oma-<pid>` from older servers.
                let Some(pid) = name
                    .to_str()
                    .and_then(|n| n.strip_prefix("oma-"))
                    .and_then(|p| p.split('-').next())
                    .and_then(|p| p.parse::<u32>().ok())
                else {
                    continue;
                };
                if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
                    continue;
                }
                remove_tree(&entry.path());
            }
        }
    }

    /// Removes this server's parent groups (when the launcher goes away); only empty groups
    /// can be removed, so live boxes are never affected.
    pub fn remove(&self) {
        for dir in self.dirs() {
            let _ = std::fs::remove_dir(dir);
        }
    }

    fn prepare(&self) -> Result<(), String> {
        let mkdir = |p: &Path| {
            std::fs::create_dir_all(p)
                .map_err(|e| format!("cannot create the cgroup {}: {e}", p.display()))
        };
        match self {
            CgroupParent::V2(dir) => {
                mkdir(dir)?;
                // Boxes' groups need these controllers; a parent may only hand down what it
                // has itself, so enable them along our own group too.
                let wanted = "+memory +pids +cpu";
                for ancestor in [dir.parent(), Some(dir.as_path())].into_iter().flatten() {
                    let ctl = ancestor.join("cgroup.subtree_control");
                    if let Err(e) = std::fs::write(&ctl, wanted) {
                        return Err(format!(
                            "cannot enable the memory, pids and cpu controllers in {}: {e} \
                             (on cgroup v2 the server must run in a delegated group without \
                             other processes, e.g. a systemd unit with Delegate=yes)",
                            ctl.display()
                        ));
                    }
                }
                Ok(())
            }
            CgroupParent::V1 { memory, pids, cpu } => {
                for d in [memory, pids, cpu] {
                    mkdir(d)?;
                }
                Ok(())
            }
        }
    }

    /// A new group for one box with `limits` applied.
    pub fn create(&self, box_name: &str, limits: &Limits) -> Result<BoxCgroup, String> {
        let group = match self {
            CgroupParent::V2(dir) => BoxCgroup {
                v2: true,
                dirs: vec![dir.join(box_name)],
            },
            CgroupParent::V1 { memory, pids, cpu } => BoxCgroup {
                v2: false,
                dirs: vec![
                    memory.join(box_name),
                    pids.join(box_name),
                    cpu.join(box_name),
                ],
            },
        };
        for d in &group.dirs {
            // The parent may have been removed meanwhile (by the host's tooling): recreate it.
            if d.parent().is_some_and(|p| !p.exists()) {
                self.prepare()?;
            }
            match std::fs::create_dir(d) {
                Ok(()) => {}
                // Left over from a server that died: empty it and reuse it.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => group.kill_all(),
                Err(e) => return Err(format!("cannot create the cgroup {}: {e}", d.display())),
            }
        }
        if let Err(e) = group.apply(limits) {
            group.remove();
            return Err(e);
        }
        Ok(group)
    }
}

/// The path of this process's group in one hierarchy (`None`: the v2 entry `0::`).
fn own_path(proc_self_cgroup: &str, controller: Option<&str>) -> Option<String> {
    proc_self_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = match controller {
            None => controllers.is_empty(),
            Some(c) => controllers.split(',').any(|x| x == c),
        };
        matches.then(|| path.to_string())
    })
}

/// Removes a group and the (empty) groups below it, killing what is left in them.
fn remove_tree(dir: &Path) {
    if let Ok(children) = std::fs::read_dir(dir) {
        for child in children.flatten() {
            if child.path().is_dir() {
                remove_tree(&child.path());
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            crate::procs::kill(pid);
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn join_rel(base: &Path, path: &str) -> PathBuf {
    base.join(path.trim_start_matches('/'))
}

/// One box's group(s).
#[derive(Debug)]
pub struct BoxCgroup {
    v2: bool,
    /// v2: one directory; v1: memory, pids, cpu.
    dirs: Vec<PathBuf>,
}

impl BoxCgroup {
    fn write(dir: &Path, file: &str, value: &str) -> Result<(), String> {
        std::fs::write(dir.join(file), value)
            .map_err(|e| format!("cannot set {}/{file} to {value}: {e}", dir.display()))
    }

    fn apply(&self, limits: &Limits) -> Result<(), String> {
        if self.v2 {
            let dir = &self.dirs[0];
            if let Some(bytes) = limits.memory_bytes {
                Self::write(dir, "memory.max", &bytes.to_string())?;
                // No swap: a box over its memory is killed, not slowed to a crawl.
                if dir.join("memory.swap.max").exists() {
                    Self::write(dir, "memory.swap.max", "0")?;
                }
            }
            if let Some(pids) = limits.pids {
                Self::write(dir, "pids.max", &pids.to_string())?;
            }
            if let Some(m) = limits.millicpus {
                let quota = u64::from(m) * CPU_PERIOD_US / 1000;
                Self::write(dir, "cpu.max", &format!("{quota} {CPU_PERIOD_US}"))?;
            }
        } else {
            let (memory, pids, cpu) = (&self.dirs[0], &self.dirs[1], &self.dirs[2]);
            if let Some(bytes) = limits.memory_bytes {
                Self::write(memory, "memory.limit_in_bytes", &bytes.to_string())?;
                // memory+swap; absent when the kernel does not account swap.
                if memory.join("memory.memsw.limit_in_bytes").exists() {
                    Self::write(memory, "memory.memsw.limit_in_bytes", &bytes.to_string())?;
                }
            }
            if let Some(n) = limits.pids {
                Self::write(pids, "pids.max", &n.to_string())?;
            }
            if let Some(m) = limits.millicpus {
                let quota = u64::from(m) * CPU_PERIOD_US / 1000;
                Self::write(cpu, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                Self::write(cpu, "cpu.cfs_quota_us", &quota.to_string())?;
            }
        }
        Ok(())
    }

    /// Each group's `cgroup.procs`, opened now (as the server) so that the box's first
    /// process can join by writing `0` to them between `fork` and `exec`, where nothing may
    /// allocate.
    pub fn procs_files(&self) -> Result<Vec<File>, String> {
        self.dirs
            .iter()
            .map(|d| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(d.join("cgroup.procs"))
                    .map_err(|e| format!("cannot open {}/cgroup.procs: {e}", d.display()))
            })
            .collect()
    }

    /// How many times the kernel's OOM killer has killed a process of this box.
    pub fn oom_kills(&self) -> u64 {
        let (file, key) = if self.v2 {
            ("memory.events", "oom_kill")
        } else {
            ("memory.oom_control", "oom_kill")
        };
        std::fs::read_to_string(self.dirs[0].join(file))
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == key).then(|| v.trim().parse().ok()).flatten()
                })
            })
            .unwrap_or(0)
    }

    /// The memory limit actually in force, for messages.
    pub fn memory_limit(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        std::fs::read_to_string(self.dirs[0].join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Kills every process still in the group.
    pub fn kill_all(&self) {
        if self.v2 && std::fs::write(self.dirs[0].join("cgroup.kill"), "1").is_ok() {
            return;
        }
        for dir in &self.dirs {
            if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    crate::procs::kill(pid);
                }
            }
        }
    }

    /// Kills what is left and removes the group. A group is removable only once its
    /// processes are gone, which takes the kernel a moment after `SIGKILL`.
    pub fn remove(&self) {
        self.kill_all();
        for dir in &self.dirs {
            for attempt in 0..50 {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(_) if attempt < 49 => {
                        self.kill_all();
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    Err(e) => {
                        tracing::warn!(cgroup = %dir.display(), "cannot remove a box's cgroup: {e}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_paths_are_found_per_controller() {
        let v1 = "12:pids:/a\n4:memory:/process_api/x\n3:cpu,cpuacct:/\n0::/\n";
        assert_eq!(
            own_path(v1, Some("memory")).as_deref(),
            Some("/process_api/x")
        );
        assert_eq!(own_path(v1, Some("cpu")).as_deref(), Some("/"));
        assert_eq!(own_path(v1, Some("pids")).as_deref(), Some("/a"));
        assert_eq!(own_path(v1, Some("blkio")), None);
        assert_eq!(own_path(v1, None).as_deref(), Some("/"));
        let v2 = "0::/system.slice/oma.service\n";
        assert_eq!(
            join_rel(Path::new("/sys/fs/cgroup"), &own_path(v2, None).unwrap()),
            PathBuf::from("/sys/fs/cgroup/system.slice/oma.service")
        );
    }
}
