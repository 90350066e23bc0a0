//! Just enough of `/proc` to find and kill process trees (Linux only).
//!
//! The agent runs bash in monitor mode, so every job gets its own process group and a single
//! `killpg` cannot reach them all. What ties everything together is the session: the agent
//! makes itself a session leader at start, and every process it (transitively) starts stays
//! in that session unless it calls `setsid` itself. Killing "everything in the session" is
//! therefore how a box is torn down, and it works even after the agent died and its children
//! were re-parented.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rustix::process::{Pid, Signal, kill_process, kill_process_group};

/// One row of the process table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcInfo {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
}

/// Parses `/proc/<pid>/stat`. The command name is in parentheses and may itself contain
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<ProcInfo> {
    let pid = stat.split_once(' ')?.0.parse().ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgid = fields.next()?.parse().ok()?;
    let sid = fields.next()?.parse().ok()?;
    Some(ProcInfo {
        pid,
        ppid,
        pgid,
        sid,
    })
}

/// A snapshot of every visible process. Processes that vanish while it is taken are skipped.
pub(crate) fn table() -> Vec<ProcInfo> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let entry = entry.ok()?;
        let name = entry.file_name();
        let name = name.to_str()?;
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let stat = std::fs::read_to_string(format!("/proc/{name}/stat")).ok()?;
        parse_stat(&stat)
    })
    .collect()
}

/// This process's own row, read from `/proc/self/stat` rather than through `getsid`/`getpgrp`:
/// under some container runtimes the session or group id is 0, which the typed wrappers
/// refuse to represent.
pub(crate) fn own() -> Option<ProcInfo> {
    parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// Whether this process leads its own session, so that everything else in the session is
/// something it started.
pub(crate) fn leads_own_session() -> bool {
    own().is_some_and(|me| me.sid == me.pid)
}

/// Direct children of `pid`.
pub(crate) fn children(table: &[ProcInfo], pid: i32) -> Vec<ProcInfo> {
    table.iter().filter(|p| p.ppid == pid).copied().collect()
}

/// Every descendant of `root` (not `root` itself), parents before children.
pub(crate) fn descendants(table: &[ProcInfo], root: i32) -> Vec<ProcInfo> {
    let mut by_parent: HashMap<i32, Vec<ProcInfo>> = HashMap::new();
    for p in table {
        by_parent.entry(p.ppid).or_default().push(*p);
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for child in by_parent.get(&pid).into_iter().flatten() {
            if seen.insert(child.pid) {
                out.push(*child);
                stack.push(child.pid);
            }
        }
    }
    out
}

/// Process groups that sweeps of the shell's leftovers must leave alone: the processes the
/// host opened in the box (each leads its own group). Shared between the agent's process
/// table, which fills it, and the bash tool, which sweeps.
#[derive(Debug, Clone, Default)]
pub(crate) struct SparedGroups(Arc<Mutex<HashSet<i32>>>);

impl SparedGroups {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<i32>> {
        // Plain integers: a panic elsewhere cannot leave them inconsistent.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn insert(&self, pgid: i32) {
        self.lock().insert(pgid);
    }

    pub(crate) fn remove(&self, pgid: i32) {
        self.lock().remove(&pgid);
    }

    pub(crate) fn snapshot(&self) -> Vec<i32> {
        self.lock().iter().copied().collect()
    }
}

/// Sends `SIGKILL` to one process. Errors (already gone, not ours) are ignored on purpose:
/// the goal is that it no longer runs.
pub(crate) fn kill(pid: i32) {
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = kill_process(pid, Signal::KILL);
    }
}

/// Sends `SIGKILL` to a process group.
pub(crate) fn kill_group(pgid: i32) {
    if let Some(pgid) = Pid::from_raw(pgid) {
        let _ = kill_process_group(pgid, Signal::KILL);
    }
}

/// Kills the given processes, their process groups (unless that is `spare_pgid`, the group
/// of a process that must survive) and all of their descendants.
pub(crate) fn kill_trees(table: &[ProcInfo], roots: &[ProcInfo], spare_pgid: i32) {
    let mut victims = Vec::new();
    for root in roots {
        victims.push(*root);
        victims.extend(descendants(table, root.pid));
    }
    // Groups first, so a job cannot fork a replacement between the individual kills.
    let groups: HashSet<i32> = victims
        .iter()
        .map(|p| p.pgid)
        .filter(|g| *g != spare_pgid && *g > 1)
        .collect();
    for g in groups {
        kill_group(g);
    }
    for p in victims {
        kill(p.pid);
    }
}

/// Kills every process of session `sid` except `except` (the caller itself, when the agent
/// cleans up its own box). Repeated a few times because a dying shell may still fork.
pub(crate) fn kill_session(sid: i32, except: Option<i32>) {
    kill_session_sparing(sid, except, &[]);
}

/// [`kill_session`], but the process groups in `spare` (and every descendant of their
/// leaders) survive: the long-lived processes the host opened in the box are not the shell's
/// leftovers.
pub(crate) fn kill_session_sparing(sid: i32, except: Option<i32>, spare: &[i32]) {
    if sid <= 1 {
        return;
    }
    for _ in 0..3 {
        let all = table();
        let spared: HashSet<i32> = spare
            .iter()
            .flat_map(|g| descendants(&all, *g).into_iter().map(|p| p.pid))
            .collect();
        let victims: Vec<ProcInfo> = all
            .into_iter()
            .filter(|p| {
                p.sid == sid
                    && Some(p.pid) != except
                    && !spare.contains(&p.pgid)
                    && !spared.contains(&p.pid)
            })
            .collect();
        if victims.is_empty() {
            return;
        }
        for p in victims {
            kill(p.pid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let p = parse_stat("1234 (a) b (c)) S 1 1234 1200 0 -1 4194560 0 0").unwrap();
        assert_eq!(
            p,
            ProcInfo {
                pid: 1234,
                ppid: 1,
                pgid: 1234,
                sid: 1200
            }
        );
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn own_process_is_in_the_table_and_descendants_walk_the_tree() {
        let t = table();
        let me = std::process::id() as i32;
        assert!(t.iter().any(|p| p.pid == me));
        let fake = [
            ProcInfo {
                pid: 10,
                ppid: 1,
                pgid: 10,
                sid: 10,
            },
            ProcInfo {
                pid: 11,
                ppid: 10,
                pgid: 11,
                sid: 10,
            },
            ProcInfo {
                pid: 12,
                ppid: 11,
                pgid: 11,
                sid: 10,
            },
            ProcInfo {
                pid: 13,
                ppid: 1,
                pgid: 13,
                sid: 13,
            },
        ];
        let d: Vec<i32> = descendants(&fake, 10).iter().map(|p| p.pid).collect();
        assert_eq!(d, vec![11, 12]);
        assert_eq!(children(&fake, 10).len(), 1);
    }
}
