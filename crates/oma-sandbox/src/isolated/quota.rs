//! The workspace disk quota: a session's workspace is its own ext4 file system, a sparse
//! image file of the quota's size mounted (loop) at the workspace folder. Writing past it fails
//! with `ENOSPC` inside the box and nothing else on the host fills up.
//!
//! The image lives beside the workspace (`<workspaces>/.disk-<name>.img`) and stays mounted
//! for as long as the workspace exists, also across box restarts and server restarts, so the
//! host sees the workspace's files at the usual path (snapshots read them there).
//! [`detach_workspace`] undoes it before a workspace is removed. Needs root (`mount`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The image file of `workspace`.
fn image_of(workspace: &Path) -> Option<PathBuf> {
    let name = workspace.file_name()?.to_str()?;
    Some(workspace.with_file_name(format!(".disk-{name}.img")))
}

/// Whether `path` is a mount point (its own entry in this process's mount table).
pub fn is_mountpoint(path: &Path) -> bool {
    let Ok(canon) = path.canonicalize() else {
        return false;
    };
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    table.lines().any(|line| {
        line.split(' ')
            .nth(4)
            .is_some_and(|mp| Path::new(&unescape(mp)) == canon)
    })
}

/// `mountinfo` escapes spaces and a few other bytes as `\ooo`.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            if let Ok(b) = u8::from_str_radix(&code, 8) {
                out.push(char::from(b));
                continue;
            }
            out.push('\\');
            out.push_str(&code);
        } else {
            out.push(c);
        }
    }
    out
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// Makes `workspace` a file system of `bytes` (blocking). Idempotent: an already mounted
/// workspace is left as it is. Files already in a plain workspace folder (restored from a
/// snapshot, or from before quotas) are moved into the new file system first.
pub fn attach(workspace: &Path, bytes: u64) -> Result<(), String> {
    std::fs::create_dir_all(workspace)
        .map_err(|e| format!("cannot create the workspace {}: {e}", workspace.display()))?;
    if is_mountpoint(workspace) {
        return Ok(());
    }
    let image = image_of(workspace).ok_or("the workspace path has no usable name")?;
    if !image.exists() {
        let tmp = image.with_extension("img.new");
        let file = std::fs::File::create(&tmp)
            .map_err(|e| format!("cannot create the workspace disk {}: {e}", tmp.display()))?;
        file.set_len(bytes)
            .map_err(|e| format!("cannot size the workspace disk: {e}"))?;
        drop(file);
        run(
            Command::new("mkfs.ext4")
                .args([
                    "-q",
                    "-F",
                    "-m",
                    "0",
                    "-E",
                    "lazy_itable_init=1,lazy_journal_init=1",
                ])
                .arg(&tmp),
            "formatting the workspace disk (mkfs.ext4)",
        )?;
        std::fs::rename(&tmp, &image).map_err(|e| format!("publishing the workspace disk: {e}"))?;
    }
    mount_image(workspace, &image)
}

/// Mounts a workspace's existing disk image again if it is not mounted (after a reboot, or
/// another process unmounted it), so that what reads the workspace folder — a snapshot, a
/// backup — sees its files rather than the empty folder under the mount (blocking). A
/// workspace without a disk is left alone.
pub fn remount_workspace(workspace: &Path) -> Result<(), String> {
    let Some(image) = image_of(workspace) else {
        return Ok(());
    };
    if !image.exists() || !workspace.is_dir() || is_mountpoint(workspace) {
        return Ok(());
    }
    mount_image(workspace, &image)
}

fn mount_image(workspace: &Path, image: &Path) -> Result<(), String> {
    let has_files = std::fs::read_dir(workspace)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if has_files {
        move_into_image(workspace, image)?;
    }
    run(
        Command::new("mount")
            .args(["-o", "loop,nosuid,nodev"])
            .arg(image)
            .arg(workspace),
        "mounting the workspace disk",
    )?;
    // ext4's own `lost+found` is noise in a workspace.
    let _ = std::fs::remove_dir(workspace.join("lost+found"));
    Ok(())
}

/// Copies what is in the plain folder into the image (mounted aside), then empties the folder.
fn move_into_image(workspace: &Path, image: &Path) -> Result<(), String> {
    let aside = image.with_extension("img.mnt");
    std::fs::create_dir_all(&aside).map_err(|e| format!("{}: {e}", aside.display()))?;
    run(
        Command::new("mount")
            .args(["-o", "loop,nosuid,nodev"])
            .arg(image)
            .arg(&aside),
        "mounting the workspace disk",
    )?;
    let copied = run(
        Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", workspace.display()))
            .arg(&aside),
        "copying the workspace onto its disk (is it larger than the quota?)",
    );
    let _ = run(Command::new("umount").arg(&aside), "unmounting");
    let _ = std::fs::remove_dir(&aside);
    copied?;
    for entry in std::fs::read_dir(workspace)
        .map_err(|e| format!("{}: {e}", workspace.display()))?
        .flatten()
    {
        let p = entry.path();
        let removed = if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        removed.map_err(|e| format!("emptying {}: {e}", p.display()))?;
    }
    Ok(())
}

/// Makes, mounts and removes a small workspace disk under `dir` (blocking): whether quotas
/// can work on this host.
pub fn probe(dir: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    let workspace = dir.join("ws");
    let result = attach(&workspace, 8 << 20).and_then(|()| {
        std::fs::write(workspace.join("probe"), b"ok").map_err(|e| format!("writing: {e}"))
    });
    let detached = detach_workspace(&workspace);
    let _ = std::fs::remove_dir_all(dir);
    result.and(detached)
}

/// Unmounts a workspace's file system and deletes its image, so the workspace can be removed
/// (blocking). Does nothing to a workspace that has none.
pub fn detach_workspace(workspace: &Path) -> Result<(), String> {
    if is_mountpoint(workspace) {
        // Lazy: a process still holding a file there must not keep the session's
        // workspace from going away.
        run(
            Command::new("umount").arg("-l").arg(workspace),
            "unmounting the workspace disk",
        )?;
    }
    if let Some(image) = image_of(workspace) {
        match std::fs::remove_file(&image) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("removing {}: {e}", image.display())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_sit_beside_their_workspace() {
        assert_eq!(
            image_of(Path::new("/data/workspaces/sesn_1")),
            Some(PathBuf::from("/data/workspaces/.disk-sesn_1.img"))
        );
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert!(is_mountpoint(Path::new("/proc")));
        assert!(!is_mountpoint(Path::new("/proc/self")));
    }
}
