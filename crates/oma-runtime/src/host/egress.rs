//! The session's way to the network: its egress proxy (crates/oma-egress), opened on first
//! need and kept while the host runs. An isolated box reaches it only through its Unix socket,
//! bound into the box; `web_fetch`, which runs on the host, goes through the same proxy (its
//! "host door"), so the environment's networking policy and the vault credentials apply to
//! both.

use serde_json::Value;

use super::SessionHost;

impl SessionHost {
    /// The session's proxy, opened if this host has none yet. `Ok(None)` when the server
    /// runs without an egress (the `local` backend, or no egress configured).
    pub(super) async fn egress(&mut self) -> Result<Option<&oma_egress::SessionProxy>, String> {
        if self.egress.is_some() {
            return Ok(self.egress.as_ref());
        }
        let Some(egress) = self.rt.inner().egress.get().cloned() else {
            return Ok(None);
        };
        let Some(sealer) = self.rt.inner().providers.sealer_arc() else {
            return Err("the egress proxy needs the root secret, which this runtime lacks".into());
        };
        let failed =
            |why: String| format!("The session's network proxy could not be started: {why}");
        let (_, session) = self
            .store
            .session_runtime_view(&self.tenant, &self.session)
            .await
            .map_err(|e| failed(format!("reading the session: {e}")))?;
        let vault_ids = strings(session.get("vault_ids"));
        let networking = match &self.environment_id {
            Some(id) => {
                let env = self
                    .store
                    .environment(&self.tenant, id)
                    .await
                    .map_err(|e| failed(format!("reading the environment: {e}")))?;
                match env.spec.config {
                    oma_api::environments::EnvironmentConfig::Cloud { networking, .. } => {
                        serde_json::to_value(networking).unwrap_or(Value::Null)
                    }
                    _ => Value::Null,
                }
            }
            None => Value::Null,
        };
        let mcp_server_urls = self
            .agent
            .get("mcp_servers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.get("url").and_then(Value::as_str).map(str::to_string))
            .collect();
        let dir = self.rt.inner().config.sessions_dir.join(&self.session);
        std::fs::create_dir_all(&dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
        let proxy = egress
            .open_session(oma_egress::SessionEgress {
                tenant: self.tenant.to_string(),
                session_id: self.session.clone(),
                socket_path: dir.join("egress.sock"),
                store: (*self.store).clone(),
                sealer,
                vault_ids,
                networking,
                mcp_server_urls,
            })
            .await
            .map_err(|e| failed(e.to_string()))?;
        // web_fetch runs here, on the host: through the proxy's door, never around it.
        match proxy.host_door().await {
            Ok(door) => {
                match self
                    .rt
                    .inner()
                    .web
                    .through_proxy(&door.url, &door.token, &door.ca_pem)
                {
                    Ok(client) => self.web = Some(client),
                    Err(e) => return Err(failed(e)),
                }
            }
            Err(e) => return Err(failed(e.to_string())),
        }
        self.egress = Some(proxy);
        Ok(self.egress.as_ref())
    }
}

impl SessionHost {
    /// A proxy session for the environment's package installers: no vaults, and a `limited`
    /// policy that opens the public package registries only.
    pub(super) async fn installer_egress(&self) -> Result<oma_egress::SessionProxy, String> {
        let egress = self
            .rt
            .inner()
            .egress
            .get()
            .cloned()
            .ok_or("the server has no egress")?;
        let sealer = self
            .rt
            .inner()
            .providers
            .sealer_arc()
            .ok_or("the egress proxy needs the root secret, which this runtime lacks")?;
        let dir = self.rt.inner().config.sessions_dir.join(&self.session);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        egress
            .open_session(oma_egress::SessionEgress {
                tenant: self.tenant.to_string(),
                session_id: format!("{}.install", self.session),
                socket_path: dir.join("install.sock"),
                store: (*self.store).clone(),
                sealer,
                vault_ids: Vec::new(),
                networking: serde_json::json!({
                    "type": "limited",
                    "allowed_hosts": [],
                    "allow_mcp_servers": false,
                    "allow_package_managers": true,
                }),
                mcp_server_urls: Vec::new(),
            })
            .await
            .map_err(|e| format!("the package installers' proxy could not be started: {e}"))
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}
