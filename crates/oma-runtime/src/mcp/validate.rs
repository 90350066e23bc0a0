//! `POST /v1/vaults/{vault_id}/credentials/{credential_id}/mcp_oauth_validate`: a live probe
//! of a credential against its MCP server, with one refresh of an `mcp_oauth` token that the
//! server refuses.
//!
//! Not part of any session, yet like every request oma sends out it leaves through the egress:
//! the probe goes through the door of a proxy opened for it alone (no vaults, unrestricted
//! networking, so the operator's allow and deny rules and the private-address rule decide),
//! and the refresh is the egress's own, the one the session proxies use.

use std::sync::Arc;

use oma_api::vaults::CredentialAuth;
use oma_core::seal::Sealer;
use oma_egress::{RefreshError, StoredCredential};
use oma_mcp::probe::ProbeFailure;
use oma_store::Store;
use serde_json::{Value, json};

use crate::Runtime;

/// What to validate.
pub struct CredentialRef<'a> {
    pub store: &'a Store,
    pub tenant: &'a str,
    pub vault_id: &'a str,
    pub credential_id: &'a str,
}

impl Runtime {
    /// Probes the credential's MCP server with its token (`initialize`, `tools/list`); on a
    /// 401/403 refreshes an `mcp_oauth` token once (storing the new one) and probes again.
    /// Returns the `vault_credential_validation` object.
    pub async fn validate_credential(
        &self,
        c: CredentialRef<'_>,
        sealer: &Sealer,
    ) -> Result<Value, oma_store::StoreError> {
        let body = c
            .store
            .get_credential(c.tenant, c.vault_id, c.credential_id)
            .await?;
        let credential: oma_api::vaults::Credential = serde_json::from_str(&body)
            .map_err(|e| oma_store::StoreError::Corrupt(format!("credential: {e}")))?;
        let (url, refresh_config) = match &credential.auth {
            CredentialAuth::McpOAuth {
                mcp_server_url,
                refresh,
                ..
            } => (mcp_server_url.clone(), refresh.clone()),
            CredentialAuth::StaticBearer { mcp_server_url } => (mcp_server_url.clone(), None),
            CredentialAuth::EnvironmentVariable { .. } => {
                return Err(oma_core::Error::invalid(
                    "only MCP credentials (`mcp_oauth`, `static_bearer`) can be validated against an MCP server",
                )
                .into());
            }
        };
        let secrets = c
            .store
            .open_credential_secrets(c.tenant, c.vault_id, c.credential_id, sealer)
            .await?
            .unwrap_or_default();
        let token = secrets.access_token.clone().or(secrets.token.clone());
        let has_refresh_token = secrets.refresh_token.is_some() && refresh_config.is_some();
        let verdict = |status: &str, probe: Option<&ProbeFailure>, refresh: Value| {
            json!({
                "type": "vault_credential_validation",
                "credential_id": c.credential_id,
                "vault_id": c.vault_id,
                "status": status,
                "has_refresh_token": has_refresh_token,
                "mcp_probe": probe.map(|p| json!({"method": p.method, "http_response": p.http_response})),
                "refresh": refresh,
                "validated_at": oma_core::time::format_micros(oma_core::time::now_micros()),
            })
        };
        let probe_status = |p: &ProbeFailure| {
            if p.is_transient() {
                "unknown"
            } else {
                "invalid"
            }
        };
        let refresh_status =
            |status: &str, response: Value| json!({"status": status, "http_response": response});

        let Some(egress) = self.inner().egress.get() else {
            // Without an egress nothing may leave: the credential cannot be judged.
            let refresh = refresh_status("connect_error", Value::Null);
            return Ok(verdict("unknown", None, refresh));
        };
        let door = match ProbeDoor::open(self, egress, c.store, c.tenant, c.credential_id).await {
            Ok(d) => d,
            Err(e) => return Err(oma_store::StoreError::Config(e)),
        };
        let failure = match door.probe(&url, token.as_deref()).await {
            Ok(()) => return Ok(verdict("valid", None, Value::Null)),
            Err(f) => f,
        };
        if !failure.is_auth() {
            return Ok(verdict(probe_status(&failure), Some(&failure), Value::Null));
        }
        let Some(config) = &refresh_config else {
            let refresh = refresh_status("no_refresh_token", Value::Null);
            return Ok(verdict("invalid", Some(&failure), refresh));
        };
        let stored = StoredCredential {
            store: c.store,
            sealer,
            tenant: c.tenant,
            vault_id: c.vault_id,
            credential_id: c.credential_id,
        };
        let refused = token.as_deref().unwrap_or_default();
        match egress.refresh_credential(stored, refused, config).await {
            Ok(fresh) => {
                // A token someone else stored meanwhile is judged without a refresh of ours.
                let refresh = match fresh.exchanged {
                    true => refresh_status("succeeded", Value::Null),
                    false => Value::Null,
                };
                match door.probe(&url, Some(&fresh.access_token)).await {
                    Ok(()) => Ok(verdict("valid", None, refresh)),
                    Err(f) => Ok(verdict(probe_status(&f), Some(&f), refresh)),
                }
            }
            Err(RefreshError::NoRefreshToken) => {
                let refresh = refresh_status("no_refresh_token", Value::Null);
                Ok(verdict("invalid", Some(&failure), refresh))
            }
            Err(RefreshError::Endpoint {
                status,
                content_type,
                body,
            }) => {
                // A 4xx from the token endpoint means the grant is gone; a 5xx or 429 may pass.
                let verdict_status = if status >= 500 || status == 429 {
                    "unknown"
                } else {
                    "invalid"
                };
                let secrets: Vec<String> = [&secrets.refresh_token, &secrets.client_secret]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect();
                let capture =
                    oma_mcp::probe::HttpCapture::new(status, content_type, &body, &secrets);
                let refresh = refresh_status("failed", json!(capture));
                Ok(verdict(verdict_status, Some(&failure), refresh))
            }
            Err(RefreshError::Unreachable(_) | RefreshError::Other(_)) => {
                let refresh = refresh_status("connect_error", Value::Null);
                Ok(verdict("unknown", Some(&failure), refresh))
            }
        }
    }
}

/// A proxy of the egress opened for one validation: its MCP client and the proxy (which stops
/// when this is dropped).
struct ProbeDoor {
    http: oma_mcp::HttpClient,
    _proxy: oma_egress::SessionProxy,
}

impl ProbeDoor {
    async fn open(
        rt: &Runtime,
        egress: &oma_egress::Egress,
        store: &Store,
        tenant: &str,
        credential_id: &str,
    ) -> Result<ProbeDoor, String> {
        let inner = rt.inner();
        let sealer = inner
            .providers
            .sealer_arc()
            .ok_or("the egress proxy needs the root secret, which this runtime lacks")?;
        let dir = &inner.config.sessions_dir;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let nonce: String = oma_core::ids::random_bytes(6)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let proxy = egress
            .open_session(oma_egress::SessionEgress {
                tenant: tenant.to_string(),
                session_id: format!("validate.{credential_id}"),
                socket_path: dir.join(format!(".validate-{nonce}.sock")),
                store: store.clone(),
                sealer: Arc::clone(&sealer),
                vault_ids: Vec::new(),
                networking: Value::Null,
                mcp_server_urls: Vec::new(),
            })
            .await
            .map_err(|e| format!("opening the egress for the probe: {e}"))?;
        let door = proxy
            .host_door()
            .await
            .map_err(|e| format!("opening the egress for the probe: {e}"))?;
        let http = oma_mcp::HttpClient::through_proxy(&door.url, &door.token, &door.ca_pem)
            .map_err(|e| e.to_string())?;
        Ok(ProbeDoor {
            http,
            _proxy: proxy,
        })
    }

    async fn probe(&self, url: &str, token: Option<&str>) -> Result<(), ProbeFailure> {
        oma_mcp::probe::probe(&self.http, url, token)
            .await
            .map(|_| ())
    }
}
