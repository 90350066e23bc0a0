//! The session's box: what it is launched with (workspace, mounts, limits, packages,
//! egress), provisioning at session create so that the first tool call does not wait, and
//! the box's own events.
//!
//! Provisioning launches the box in a task of its own: the host goes on (the first model
//! request of a turn runs while the box starts) and the first tool call takes the box over.
//! A provisioning failure says nothing: the first tool call tries again and reports.

use std::sync::Arc;
use std::time::Instant;

use oma_sandbox::{BoxSpec, Sandbox, SandboxError};

use super::SessionHost;
use crate::record;

/// A box being launched in the background.
pub(super) struct Launching {
    task: tokio::task::JoinHandle<Result<Arc<dyn Sandbox>, SandboxError>>,
    started: Instant,
}

impl Launching {
    async fn finish(self) -> Result<Arc<dyn Sandbox>, SandboxError> {
        self.task
            .await
            .unwrap_or_else(|e| Err(SandboxError::Launch(format!("the launch task failed: {e}"))))
    }
}

impl SessionHost {
    /// Whether this session's tools need a box here: a built-in tool that runs in it, or a
    /// stdio MCP server (a self-hosted session's tools run on its workers).
    fn wants_box(&self) -> bool {
        if self.self_hosted {
            return false;
        }
        let sandboxed = self.toolbox().is_some_and(|t| {
            t.definitions()
                .iter()
                .any(|d| !oma_tools::runs_on_host(&d.name))
        });
        sandboxed || self.has_stdio_mcp_servers()
    }

    /// Starts the session's box in the background (the session was just created).
    pub(super) async fn provision(&mut self) {
        if self.sandbox.is_some() || self.launching.is_some() || !self.wants_box() {
            return;
        }
        // An environment's packages may take minutes to install the first time, which the
        // session's first turn must not wait for unless it calls a tool: those boxes start at
        // the first tool call.
        if let Some(id) = &self.environment_id
            && let Ok(env) = self.store.environment(&self.tenant, id).await
            && !packages_of(&env).is_empty()
        {
            return;
        }
        let noted = self.box_events.len();
        match self.box_spec().await {
            Ok(spec) => {
                let launcher = self.rt.inner().launcher.clone();
                self.launching = Some(Launching {
                    task: tokio::spawn(async move {
                        let launched = launcher.launch(spec).await;
                        crate::fill_box_pool(&launcher);
                        launched
                    }),
                    started: Instant::now(),
                });
            }
            Err(message) => {
                // The first tool call tries again, and its result says what failed.
                self.box_events.truncate(noted);
                tracing::warn!(op = "sandbox_provision", session_id = %self.session, "{message}");
            }
        }
    }

    /// Stops the box, and one still being launched.
    pub(super) async fn stop_box(&mut self) {
        if let Some(sb) = self.sandbox.take() {
            sb.shutdown().await;
        }
        if let Some(l) = self.launching.take() {
            let started = l.started;
            let sb = l.finish().await;
            self.ops_sandbox_start(started, &sb);
            if let Ok(sb) = sb {
                sb.shutdown().await;
            }
        }
    }

    /// Whether a box runs or is being launched.
    pub(super) fn has_box(&self) -> bool {
        self.sandbox.is_some() || self.launching.is_some()
    }

    /// The session's box, started on first use (or taken over from [`Self::provision`]).
    pub(super) async fn sandbox(&mut self) -> Result<Arc<dyn Sandbox>, String> {
        if let Some(sb) = &self.sandbox {
            return Ok(sb.clone());
        }
        let (launched, sb) = match self.launching.take() {
            Some(l) => (l.started, l.finish().await),
            None => {
                let spec = self.box_spec().await?;
                let launched = Instant::now();
                let launcher = &self.rt.inner().launcher;
                let sb = launcher.launch(spec).await;
                crate::fill_box_pool(launcher);
                (launched, sb)
            }
        };
        self.ops_sandbox_start(launched, &sb);
        let sb = match sb {
            Ok(sb) => sb,
            Err(e) => {
                let message = format!("The session's sandbox could not be started: {e}");
                tracing::error!(op = "sandbox_launch", session_id = %self.session, "{message}");
                // The next tool call tries again.
                self.box_events
                    .push(record::session_error("unknown_error", &message, "retrying"));
                return Err(message);
            }
        };
        self.sandbox = Some(sb.clone());
        // The session's repositories are cloned into a new box before anything runs in it.
        self.clone_repositories(sb.as_ref()).await;
        Ok(sb)
    }

    /// The box's limits, from the environment's instance type, and its environment's
    /// packages (installed on first use, then shared by every session with the same lists).
    async fn box_setup(
        &self,
    ) -> Result<(oma_sandbox::Limits, Option<oma_sandbox::PackageLayer>), String> {
        let failed = |why: String| format!("The session's sandbox could not be started: {why}");
        let env = match &self.environment_id {
            None => None,
            Some(id) => Some(
                self.store
                    .environment(&self.tenant, id)
                    .await
                    .map_err(|e| failed(format!("reading the environment: {e}")))?,
            ),
        };
        let instance = env.as_ref().and_then(|e| {
            e.spec
                .metadata
                .get(oma_core::environments::INSTANCE_TYPE_KEY)
        });
        let t = oma_core::environments::instance_type(instance.map(String::as_str))
            .map_err(|e| failed(e.message))?;
        let limits = limits_of(&t);
        let packages = env.as_ref().map(packages_of).unwrap_or_default();
        if packages.is_empty() {
            return Ok((limits, None));
        }
        // Installers reach the registries through a proxy session open to them alone, when the
        // server has an egress; it lives as long as the install.
        let installer = match self.rt.inner().egress.get() {
            Some(_) => Some(self.installer_egress().await.map_err(failed)?),
            None => None,
        };
        let via = installer.as_ref().map(|p| oma_sandbox::EgressSpec {
            socket: p.socket_path.clone(),
            ca_bundle: Some(p.ca_bundle_path.clone()),
        });
        let layer = self
            .rt
            .inner()
            .launcher
            .package_layer(&packages, via.as_ref())
            .await
            .map_err(|e| failed(e.to_string()))?;
        drop(installer);
        Ok((limits, Some(layer)))
    }

    /// Turns what happened to the box during a call (an out-of-memory kill) into
    /// `session.error` events for the session.
    pub(super) fn note_box_events(&mut self, sb: &dyn Sandbox) {
        for event in sb.take_events() {
            match event {
                oma_sandbox::BoxEvent::OutOfMemory {
                    message,
                    limit_bytes,
                } => {
                    tracing::warn!(op = "sandbox_oom", session_id = %self.session, "{message}");
                    self.ops_sandbox_oom(limit_bytes);
                    self.box_events.push(record::session_error(
                        "unknown_error",
                        &format!("{message} The sandbox keeps running."),
                        "retrying",
                    ));
                }
            }
        }
    }

    /// Everything the box needs before it can be launched: the restored workspace, the
    /// mounts, the environment's limits and packages, the egress proxy. A failure is returned
    /// (and noted in `box_events` for the next tool result where it concerns the box).
    async fn box_spec(&mut self) -> Result<BoxSpec, String> {
        // The workspace folder is created (and may be restored): it is snapshotted later.
        self.dirty = true;
        let workspace = self.workspace_dir();
        // A workspace that was snapshotted comes back before anything runs in it.
        self.restore_workspace(&workspace).await?;
        std::fs::create_dir_all(&workspace)
            .map_err(|e| format!("cannot create the session workspace: {e}"))?;
        let mut mounts = self.mount_spec().await?;
        let (limits, layer) = match self.box_setup().await {
            Ok(setup) => setup,
            Err(message) => {
                tracing::error!(op = "sandbox_launch", session_id = %self.session, "{message}");
                self.box_events
                    .push(record::session_error("unknown_error", &message, "retrying"));
                return Err(message);
            }
        };
        let mut env = Vec::new();
        if let Some(layer) = layer {
            mounts.push(layer.mount);
            env = layer.env;
        }
        // An isolated box's only way out: the session's proxy, through its socket.
        let mut egress = None;
        if self.rt.inner().launcher.isolated() {
            match self.egress().await {
                Ok(Some(proxy)) => {
                    env.extend(proxy.env.iter().cloned());
                    egress = Some(oma_sandbox::EgressSpec {
                        socket: proxy.socket_path.clone(),
                        ca_bundle: Some(proxy.ca_bundle_path.clone()),
                    });
                }
                Ok(None) => {}
                Err(message) => {
                    tracing::error!(op = "sandbox_launch", session_id = %self.session, "{message}");
                    self.box_events.push(record::session_error(
                        "unknown_error",
                        &message,
                        "retrying",
                    ));
                    return Err(message);
                }
            }
        }
        Ok(BoxSpec {
            session_id: self.session.clone(),
            workspace,
            mounts,
            limits,
            env,
            egress,
        })
    }
}

/// A box's limits for an instance type.
pub(crate) fn limits_of(t: &oma_core::environments::InstanceType) -> oma_sandbox::Limits {
    oma_sandbox::Limits {
        millicpus: Some(t.millicpus),
        memory_bytes: Some(t.memory_bytes),
        pids: Some(t.pids),
        disk_bytes: Some(t.disk_bytes),
    }
}

/// The packages an environment installs into its boxes.
fn packages_of(env: &oma_store::environments::StoredEnvironment) -> oma_sandbox::PackageSet {
    match &env.spec.config {
        oma_api::environments::EnvironmentConfig::Cloud { packages, .. } => {
            oma_sandbox::PackageSet {
                apt: packages.apt.clone(),
                cargo: packages.cargo.clone(),
                gem: packages.gem.clone(),
                go: packages.go.clone(),
                npm: packages.npm.clone(),
                pip: packages.pip.clone(),
            }
        }
        _ => oma_sandbox::PackageSet::default(),
    }
}
