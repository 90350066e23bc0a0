//! An environment's packages, installed once into a layer that its sessions' boxes mount
//! read-only at `/opt/oma/env`.
//!
//! A layer is keyed by the package lists themselves (a hash), so every environment — and every
//! session of it — with the same lists shares one installation, and changing the lists makes a
//! new one. It is built in a temporary folder and renamed into place only when every installer
//! succeeded, so a failed or interrupted install is never mounted.
//!
//! The installers run in a box of their own, writing only the layer. How they reach the
//! registries decides what they may run:
//! - through an egress session that opens only the package registries (the server has an
//!   egress): a session box's isolation, no network but that proxy, so installers may run the
//!   packages' own build code — every manager works (cargo, gem and go build from source);
//! - with the host's network (no egress): they run no code from the packages: pip installs
//!   wheels only, npm runs no install scripts, Debian packages are unpacked without maintainer
//!   scripts, and the managers that build from source (cargo, gem, go) are refused.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::process::Command;

use super::bwrap;
use crate::{Mount, PackageSet, SandboxError};

/// Where the layer appears in boxes (and where installers write it).
pub const LAYER_TARGET: &str = "/opt/oma/env";
/// How long all installers of one layer may take together.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Bytes of an installer's output quoted in an error.
const OUTPUT_TAIL: usize = 3000;

/// An installed layer: the mount and the variables that make its programs and libraries found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageLayer {
    pub mount: Mount,
    pub env: Vec<(String, String)>,
}

/// Serialises installs of the same layer; different layers install in parallel.
#[derive(Default)]
pub struct Installs {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl PackageSet {
    pub fn is_empty(&self) -> bool {
        self.apt.is_empty()
            && self.cargo.is_empty()
            && self.gem.is_empty()
            && self.go.is_empty()
            && self.npm.is_empty()
            && self.pip.is_empty()
    }

    /// The layer's name: a hash of the lists, in the managers' fixed order.
    fn key(&self) -> String {
        let mut h = Sha256::new();
        for (name, list) in self.managers() {
            h.update(name.as_bytes());
            for p in list {
                h.update([0]);
                h.update(p.as_bytes());
            }
            h.update([1]);
        }
        h.finalize()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Managers in the order they run (alphabetical, as the API documents).
    fn managers(&self) -> [(&'static str, &Vec<String>); 6] {
        [
            ("apt", &self.apt),
            ("cargo", &self.cargo),
            ("gem", &self.gem),
            ("go", &self.go),
            ("npm", &self.npm),
            ("pip", &self.pip),
        ]
    }
}

/// The variables a box needs to use a layer.
fn layer_env() -> Vec<(String, String)> {
    let t = LAYER_TARGET;
    [
        (
            "PATH",
            format!(
                "{t}/npm/node_modules/.bin:{t}/pip/bin:{t}/cargo/bin:{t}/go/bin:{t}/gem/bin:\
                 {t}/apt/usr/local/bin:{t}/apt/usr/bin:{t}/apt/bin:\
                 /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            ),
        ),
        ("GEM_PATH", format!("{t}/gem")),
        ("PYTHONPATH", format!("{t}/pip")),
        ("NODE_PATH", format!("{t}/npm/node_modules")),
        (
            "LD_LIBRARY_PATH",
            format!(
                "{t}/apt/usr/lib/x86_64-linux-gnu:{t}/apt/usr/lib:{t}/apt/lib/x86_64-linux-gnu"
            ),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

impl Installs {
    /// The layer for `packages`, installing it first if this host has not yet.
    pub async fn layer(
        &self,
        bwrap_exe: &Path,
        agent_exe: &Path,
        state_dir: &Path,
        packages: &PackageSet,
        egress: Option<&crate::EgressSpec>,
    ) -> Result<PackageLayer, SandboxError> {
        for (name, list) in [
            ("cargo", &packages.cargo),
            ("gem", &packages.gem),
            ("go", &packages.go),
        ] {
            if !list.is_empty() && egress.is_none() {
                return Err(SandboxError::Launch(format!(
                    "installing {name} packages needs the server's egress proxy: they build from \
                     source, running the packages' own code, which this server only allows behind \
                     a proxy open to the package registries alone"
                )));
            }
        }
        let key = packages.key();
        let dir = state_dir.join("layers").join(&key);
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(key.clone()).or_default().clone()
        };
        let _guard = lock.lock().await;
        if !dir.join(".complete").exists() {
            let via = egress.map(|e| (e, agent_exe));
            install(bwrap_exe, state_dir, &key, &dir, packages, via).await?;
        }
        Ok(PackageLayer {
            mount: Mount {
                source: dir,
                target: LAYER_TARGET.to_string(),
                writable: false,
            },
            env: layer_env(),
        })
    }
}

async fn install(
    bwrap_exe: &Path,
    state_dir: &Path,
    key: &str,
    dir: &Path,
    packages: &PackageSet,
    via: Option<(&crate::EgressSpec, &Path)>,
) -> Result<(), SandboxError> {
    let launch = |e: String| SandboxError::Launch(e);
    let building = state_dir
        .join("layers")
        .join(format!(".{key}.building-{}", std::process::id()));
    let _ = tokio::fs::remove_dir_all(&building).await;
    tokio::fs::create_dir_all(&building)
        .await
        .map_err(|e| launch(format!("cannot create {}: {e}", building.display())))?;
    let started = std::time::Instant::now();
    for (manager, list) in packages.managers() {
        if list.is_empty() {
            continue;
        }
        let left = INSTALL_TIMEOUT.saturating_sub(started.elapsed());
        if let Err(e) = run_installer(bwrap_exe, &building, manager, list, left, via).await {
            let _ = tokio::fs::remove_dir_all(&building).await;
            return Err(e);
        }
    }
    tokio::fs::write(building.join(".complete"), b"")
        .await
        .map_err(|e| launch(format!("finishing the package layer: {e}")))?;
    // Publish: a layer folder either is complete or does not exist.
    let _ = tokio::fs::remove_dir_all(dir).await;
    tokio::fs::rename(&building, dir)
        .await
        .map_err(|e| launch(format!("publishing the package layer: {e}")))?;
    tracing::info!(
        layer = key,
        seconds = started.elapsed().as_secs_f64(),
        "installed an environment's packages"
    );
    Ok(())
}

/// The installer's command line inside its box; packages are arguments, never shell text.
/// `trusted_network`: behind the registries-only egress, where build code may run.
fn installer_command(manager: &str, packages: &[String], trusted_network: bool) -> Vec<OsString> {
    let t = LAYER_TARGET;
    let mut cmd: Vec<String> = match manager {
        "apt" => vec![
            "/bin/bash".into(),
            "-c".into(),
            format!(
                "set -e; mkdir -p /tmp/debs /tmp/apt-cache/archives/partial; cd /tmp/debs; \
                 apt-get -q -o Dir::Cache=/tmp/apt-cache -o Debug::NoLocking=1 \
                   -o APT::Sandbox::User=root download \"$@\"; \
                 for deb in /tmp/debs/*.deb; do dpkg-deb -x \"$deb\" {t}/apt; done"
            ),
            "apt-install".into(),
        ],
        "npm" => {
            let mut cmd = vec![
                "npm".into(),
                "install".into(),
                "--prefix".into(),
                format!("{t}/npm"),
            ];
            if !trusted_network {
                cmd.push("--ignore-scripts".into());
            }
            cmd.extend(["--no-audit", "--no-fund", "--no-update-notifier", "--"].map(String::from));
            cmd
        }
        "cargo" => vec![
            "cargo".into(),
            "install".into(),
            "--root".into(),
            format!("{t}/cargo"),
            "--".into(),
        ],
        "gem" => vec![
            "gem".into(),
            "install".into(),
            "--no-document".into(),
            "--install-dir".into(),
            format!("{t}/gem"),
            "--bindir".into(),
            format!("{t}/gem/bin"),
            "--".into(),
        ],
        // `go install` needs a version: an unversioned package means the latest.
        "go" => {
            let mut cmd = vec!["go".to_string(), "install".into(), "--".into()];
            cmd.extend(packages.iter().map(|p| {
                if p.contains('@') {
                    p.clone()
                } else {
                    format!("{p}@latest")
                }
            }));
            return cmd.into_iter().map(OsString::from).collect();
        }
        _ => {
            let mut cmd: Vec<String> = [
                "python3",
                "-m",
                "pip",
                "install",
                "--no-input",
                "--disable-pip-version-check",
                "--break-system-packages",
            ]
            .map(String::from)
            .to_vec();
            if !trusted_network {
                cmd.push("--only-binary".into());
                cmd.push(":all:".into());
            }
            cmd.extend(["--target".into(), format!("{t}/pip"), "--".into()]);
            cmd
        }
    };
    cmd.extend(packages.iter().cloned());
    cmd.into_iter().map(OsString::from).collect()
}

async fn run_installer(
    bwrap_exe: &Path,
    layer: &Path,
    manager: &str,
    packages: &[String],
    timeout: Duration,
    via: Option<(&crate::EgressSpec, &Path)>,
) -> Result<(), SandboxError> {
    let mut args = bwrap::installer_args(layer, LAYER_TARGET, via);
    args.extend(installer_command(manager, packages, via.is_some()));
    let mut cmd = Command::new(bwrap_exe);
    cmd.args(args).env_clear().kill_on_drop(true);
    let output = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| {
            SandboxError::Launch(format!(
                "installing the environment's {manager} packages took longer than {} minutes",
                INSTALL_TIMEOUT.as_secs() / 60
            ))
        })?
        .map_err(|e| SandboxError::Launch(format!("cannot start the {manager} installer: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).to_string();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    let text = text.trim();
    let mut cut = text.len().saturating_sub(OUTPUT_TAIL);
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    Err(SandboxError::Launch(format!(
        "installing the environment's {manager} packages ({}) failed ({}): {}",
        packages.join(" "),
        output.status,
        &text[cut..]
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_keyed_by_their_lists() {
        let a = PackageSet {
            pip: vec!["six==1.16.0".into()],
            ..PackageSet::default()
        };
        let mut b = a.clone();
        assert_eq!(a.key(), b.key());
        b.npm.push("is-number@7.0.0".into());
        assert_ne!(a.key(), b.key());
        // The same strings under another manager are another layer.
        let c = PackageSet {
            npm: vec!["six==1.16.0".into()],
            ..PackageSet::default()
        };
        assert_ne!(a.key(), c.key());
        assert!(PackageSet::default().is_empty() && !a.is_empty());
    }

    #[test]
    fn packages_are_arguments_not_shell_text() {
        let cmd = installer_command("apt", &["jq".into(), "x;rm -rf /".into()], false);
        assert_eq!(cmd.last().unwrap(), "x;rm -rf /");
        assert_eq!(cmd[3], "apt-install");
        // On the host's network no package code runs; behind the registries-only egress it may.
        let cmd = installer_command("pip", &["six".into()], false);
        assert!(cmd.iter().any(|a| a == ":all:"));
        let cmd = installer_command("pip", &["six".into()], true);
        assert!(!cmd.iter().any(|a| a == ":all:"));
        let cmd = installer_command("npm", &["left-pad".into()], false);
        assert!(cmd.iter().any(|a| a == "--ignore-scripts"));
        let cmd = installer_command("go", &["golang.org/x/tools/cmd/stringer".into()], true);
        assert_eq!(
            cmd.last().unwrap(),
            "golang.org/x/tools/cmd/stringer@latest"
        );
    }
}
