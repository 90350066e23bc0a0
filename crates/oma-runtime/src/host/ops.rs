//! The operational events a host records (see `oma_ops`): tool calls, model requests, status
//! transitions, sandbox starts and deaths, and errors it handles without telling the user.
//! Recording never waits and never fails; without a recorder it does nothing.

use std::time::Instant;

use oma_model::ModelError;
use oma_model::types::Usage;
use oma_ops::event::{self, OpsEvent, Scoped};
use oma_sandbox::{Sandbox, SandboxError};

use super::SessionHost;

impl SessionHost {
    /// Records `event` as this session's.
    pub(super) fn ops(&self, event: OpsEvent) {
        if let Some(ops) = self.rt.ops() {
            ops.record(event.session(&self.tenant, &self.session));
        }
    }

    /// A status change the host is committing.
    pub(super) fn ops_transition(&mut self, to: &str) {
        if self.status != to {
            self.ops(event::session_transition(&self.status, to));
            self.status = to.to_string();
        }
    }

    pub(super) fn ops_tool_call(&self, tool: &str, is_error: bool, started: Instant) {
        self.ops(event::tool_call(tool, !is_error, started.elapsed()));
    }

    /// A model request ended: `Ok(usage)` with its tokens, or how it failed (`None`: an
    /// interrupt cut it off).
    pub(super) fn ops_model_request(
        &self,
        provider: &dyn oma_model::ModelProvider,
        model: &str,
        asked: Instant,
        result: Result<Usage, Option<&ModelError>>,
    ) {
        let latency = asked.elapsed();
        let e = match result {
            Ok(u) => event::model_request(
                provider.name(),
                model,
                "ok",
                latency,
                u.input_tokens,
                u.output_tokens,
                None,
            ),
            Err(None) => {
                event::model_request(provider.name(), model, "interrupted", latency, 0, 0, None)
            }
            Err(Some(error)) => event::model_request(
                provider.name(),
                model,
                "error",
                latency,
                0,
                0,
                Some(super::error_type(error)),
            ),
        };
        self.ops(e);
    }

    /// A box was started (or could not be).
    pub(super) fn ops_sandbox_start(
        &self,
        started: Instant,
        result: &Result<std::sync::Arc<dyn Sandbox>, SandboxError>,
    ) {
        let e = match result {
            Ok(sb) => event::sandbox_start(sb.info().backend, started.elapsed(), None),
            Err(e) => event::sandbox_start("unknown", started.elapsed(), Some(&e.to_string())),
        };
        self.ops(e);
    }

    /// The box failed under a tool call: a `SIGKILL` is counted as running out of memory (the
    /// failure itself reaches the model as the call's result).
    pub(super) fn ops_sandbox_failed(&self, error: &SandboxError) {
        let Some(info) = self.sandbox.as_ref().map(|s| s.info()) else {
            return;
        };
        let backend = info.backend;
        // An isolated box reads the kernel's OOM counter and reports real OOM kills as box
        // events (`ops_sandbox_oom`); only guess for backends without a cgroup.
        if !info.isolated && error.exit().is_some_and(|x| x.killed()) {
            self.ops(event::sandbox_oom(backend, None));
        }
    }

    /// The kernel killed a process of the box for going over its memory limit.
    pub(super) fn ops_sandbox_oom(&self, limit_bytes: Option<u64>) {
        let backend = self
            .sandbox
            .as_ref()
            .map_or("isolated", |s| s.info().backend);
        self.ops(event::sandbox_oom(backend, limit_bytes));
    }

    /// An error the host handled without showing it to the user.
    pub(super) fn ops_silent(&self, component: &str, error: impl std::fmt::Display) {
        self.ops(event::silent_catch(component, error));
    }
}
