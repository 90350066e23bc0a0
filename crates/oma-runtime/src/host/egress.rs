//! The session's way to the network: its egress proxy (crates/oma-egress), opened on first
//! need and kept while the host runs. An isolated box reaches it only through its Unix socket,
//! bound into the box; `web_fetch` and the MCP client, which run on the host, go through the
//! same proxy (its "host door"), so the environment's networking policy, the operator's rules
//! and the vault credentials apply to all of them.

use serde_json::Value;

use super::SessionHost;

impl SessionHost {
    /// The session's proxy, opened if this host has none yet. `Ok(None)` when the server
    /// runs without an egress (the `local` backend, or no egress configured).
    pub(super) async fn egress(&mut self) -> Result<Option<&oma_egress::SessionProxy>, String> {
        if self.egress.is_some() {
            return Ok(self.egress.as_ref());
        }
        if self.rt.inner().egress.get().is_none() {
            return Ok(None);
        }
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
        let proxy = self
            .open_proxy("egress", vault_ids, networking, mcp_server_urls)
            .await
            .map_err(failed)?;
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
                // MCP servers too: the policy and the vault credentials apply to them.
                match oma_mcp::HttpClient::through_proxy(&door.url, &door.token, &door.ca_pem) {
                    Ok(client) => self.mcp_http = Some(client),
                    Err(e) => return Err(failed(e.to_string())),
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
        let networking = serde_json::json!({
            "type": "limited",
            "allowed_hosts": [],
            "allow_mcp_servers": false,
            "allow_package_managers": true,
        });
        self.open_proxy("install", Vec::new(), networking, Vec::new())
            .await
            .map_err(|e| format!("the package installers' proxy could not be started: {e}"))
    }

    /// Opens a proxy of this session named `name` (its socket is `<name>.sock` in the
    /// session's folder) with the given vaults, networking policy and MCP server URLs.
    async fn open_proxy(
        &self,
        name: &str,
        vault_ids: Vec<String>,
        networking: Value,
        mcp_server_urls: Vec<String>,
    ) -> Result<oma_egress::SessionProxy, String> {
        let inner = self.rt.inner();
        let egress = inner.egress.get().ok_or("the server has no egress")?;
        let sealer = inner
            .providers
            .sealer_arc()
            .ok_or("the egress proxy needs the root secret, which this runtime lacks")?;
        let dir = inner.config.sessions_dir.join(&self.session);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let session_id = match name {
            "egress" => self.session.clone(),
            other => format!("{}.{other}", self.session),
        };
        egress
            .open_session(oma_egress::SessionEgress {
                tenant: self.tenant.to_string(),
                session_id,
                socket_path: dir.join(format!("{name}.sock")),
                store: (*self.store).clone(),
                sealer,
                vault_ids,
                networking,
                mcp_server_urls,
            })
            .await
            .map_err(|e| e.to_string())
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}
