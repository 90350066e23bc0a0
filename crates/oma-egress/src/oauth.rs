//! `mcp_oauth` refresh: a `refresh_token` grant at the credential's token endpoint, the new
//! token written back with compare-and-swap.
//!
//! Within one process refreshes of a credential are serialised, and a caller that waited
//! first re-reads the store: when the token there is no longer the one that was refused,
//! someone else refreshed and that token is used. Across nodes the store's swap decides: of
//! two refreshes from the same stored version one is written, the other re-reads.

use bytes::Bytes;
use http_body_util::BodyExt;
use oma_api::vaults::{McpOAuthRefresh, TokenEndpointAuth};
use oma_core::credentials::CredentialSecrets;

use crate::Shared;
use crate::creds::CredRef;
use crate::policy::url_host_port;
use crate::upstream::{self, full};

/// The largest token endpoint answer read.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

pub(crate) struct RefreshCtx<'a> {
    pub shared: &'a Shared,
    pub store: &'a oma_store::Store,
    pub sealer: &'a oma_core::seal::Sealer,
    pub tenant: &'a str,
}

/// Returns the access token to retry with, or why there is none.
pub(crate) async fn refreshed_token(
    ctx: &RefreshCtx<'_>,
    cred: &CredRef,
    refused_token: &str,
    refresh: &McpOAuthRefresh,
) -> Result<String, String> {
    let lock = {
        let key = format!("{}/{}", ctx.tenant, cred.credential_id);
        let mut locks = ctx
            .shared
            .refresh_locks
            .lock()
            .map_err(|_| "the refresh lock is poisoned".to_string())?;
        locks.entry(key).or_default().clone()
    };
    let _held = lock.lock().await;
    for _ in 0..3 {
        let (secrets, version) = ctx
            .store
            .open_credential_secrets_versioned(
                ctx.tenant,
                &cred.vault_id,
                &cred.credential_id,
                ctx.sealer,
            )
            .await
            .map_err(|e| format!("reading the credential failed: {e}"))?
            .ok_or("the credential was archived")?;
        match &secrets.access_token {
            Some(t) if t != refused_token => return Ok(t.clone()),
            _ => {}
        }
        let refresh_token = secrets
            .refresh_token
            .clone()
            .ok_or("the credential has no refresh token")?;
        let grant = token_request(ctx.shared, refresh, &refresh_token, &secrets).await?;
        let mut next = secrets.clone();
        next.access_token = Some(grant.access_token.clone());
        if let Some(rt) = grant.refresh_token {
            next.refresh_token = Some(rt);
        }
        let expires_at = grant.expires_in.map(|s| {
            oma_core::time::format_micros(
                oma_core::time::now_micros().saturating_add(s.saturating_mul(1_000_000)),
            )
        });
        let swapped = ctx
            .store
            .swap_credential_secrets(
                ctx.tenant,
                &cred.vault_id,
                &cred.credential_id,
                &version,
                &next,
                expires_at,
                ctx.sealer,
            )
            .await
            .map_err(|e| format!("storing the refreshed token failed: {e}"))?;
        if swapped {
            return Ok(grant.access_token);
        }
        // Lost the race: the next round re-reads the winner's token.
    }
    Err("the credential kept changing during the refresh".into())
}

struct Grant {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
}

async fn token_request(
    shared: &Shared,
    refresh: &McpOAuthRefresh,
    refresh_token: &str,
    secrets: &CredentialSecrets,
) -> Result<Grant, String> {
    let endpoint = &refresh.token_endpoint;
    let (host, port, https) =
        url_host_port(endpoint).ok_or("the token endpoint is not an http(s) URL")?;
    // The token endpoint is the platform's own call, not the box's: the environment policy
    // does not apply, the operator's rules and the address check do.
    let verdict =
        crate::policy::Policy::new(&serde_json::Value::Null, &shared.allow, &shared.deny, &[])
            .map_err(|e| e.to_string())?
            .check_host(&host)?;
    let addrs = match upstream::resolve(&host, port, verdict).await {
        Ok(a) => a,
        Err(upstream::Resolve::Refused(r) | upstream::Resolve::Failed(r)) => return Err(r),
    };
    let (body, basic) = token_form(refresh, refresh_token, secrets);
    let path = path_of(endpoint);
    let authority = if (https && port == 443) || (!https && port == 80) {
        host.clone()
    } else {
        format!("{host}:{port}")
    };
    let mut req = http::Request::post(path)
        .header(http::header::HOST, authority)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json");
    if let Some(b) = basic {
        req = req.header(http::header::AUTHORIZATION, b);
    }
    let req = req
        .body(full(Bytes::from(body)))
        .map_err(|e| format!("building the token request failed: {e}"))?;
    let mut sender = shared.upstream.http1(&host, &addrs, https).await?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("the token endpoint did not answer: {e}"))?;
    let status = resp.status();
    let bytes = http_body_util::Limited::new(resp.into_body(), MAX_TOKEN_RESPONSE)
        .collect()
        .await
        .map_err(|e| format!("reading the token response failed: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("the token endpoint answered {status}"));
    }
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| "the token endpoint's answer is not JSON".to_string())?;
    let access_token = v
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or("the token endpoint's answer has no access_token")?
        .to_string();
    Ok(Grant {
        access_token,
        refresh_token: v
            .get("refresh_token")
            .and_then(|t| t.as_str())
            .map(str::to_string),
        expires_in: v.get("expires_in").and_then(|e| e.as_i64()),
    })
}

/// The form of a `refresh_token` grant and, for `client_secret_basic`, the Authorization
/// header. (A plain function: the form serializer must not live across an await.)
fn token_form(
    refresh: &McpOAuthRefresh,
    refresh_token: &str,
    secrets: &CredentialSecrets,
) -> (String, Option<String>) {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "refresh_token");
    form.append_pair("refresh_token", refresh_token);
    let mut basic = None;
    match refresh.token_endpoint_auth {
        TokenEndpointAuth::None => {
            form.append_pair("client_id", &refresh.client_id);
        }
        TokenEndpointAuth::ClientSecretPost => {
            form.append_pair("client_id", &refresh.client_id);
            form.append_pair(
                "client_secret",
                secrets.client_secret.as_deref().unwrap_or(""),
            );
        }
        TokenEndpointAuth::ClientSecretBasic => {
            use base64::Engine;
            // RFC 6749 §2.3.1: both parts form-encoded before base64.
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!(
                "{}:{}",
                enc(&refresh.client_id),
                enc(secrets.client_secret.as_deref().unwrap_or(""))
            );
            basic = Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ));
        }
    }
    if let Some(scope) = refresh.scope.as_deref().filter(|s| !s.is_empty()) {
        form.append_pair("scope", scope);
    }
    if let Some(resource) = refresh.resource.as_deref() {
        form.append_pair("resource", resource);
    }
    let body = form.finish();
    (body, basic)
}

/// The origin-form target of an absolute URL.
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split('#').next().unwrap_or_default();
    match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('?') => format!("/{}", &rest[i..]),
        Some(i) => rest[i..].to_string(),
        None => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn origin_form() {
        assert_eq!(
            super::path_of("https://a.b/oauth/token?x=1"),
            "/oauth/token?x=1"
        );
        assert_eq!(super::path_of("https://a.b"), "/");
        assert_eq!(super::path_of("https://a.b?x"), "/?x");
    }
}
