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

/// A token to use after a refusal.
#[derive(Clone)]
pub struct FreshToken {
    pub access_token: String,
    /// `true` when this refresh exchanged it at the token endpoint; `false` when the store
    /// already held a newer one (another session, node or refresh got there first).
    pub exchanged: bool,
}

impl std::fmt::Debug for FreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FreshToken")
            .field("exchanged", &self.exchanged)
            .finish_non_exhaustive()
    }
}

/// Why a refresh gave no token.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("the credential has no refresh token")]
    NoRefreshToken,
    /// The token endpoint answered with an error; its answer, unread by anyone else.
    #[error("the token endpoint answered HTTP {status}")]
    Endpoint {
        status: u16,
        content_type: String,
        body: Bytes,
    },
    /// The token endpoint could not be reached: refused by the operator's rules or the
    /// address check, unresolvable, or the connection failed.
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Other(String),
}

/// Returns the access token to retry with, or why there is none.
pub(crate) async fn refreshed_token(
    ctx: &RefreshCtx<'_>,
    cred: &CredRef,
    refused_token: &str,
    refresh: &McpOAuthRefresh,
) -> Result<FreshToken, RefreshError> {
    let lock = {
        let key = format!("{}/{}", ctx.tenant, cred.credential_id);
        let mut locks = ctx
            .shared
            .refresh_locks
            .lock()
            .map_err(|_| RefreshError::Other("the refresh lock is poisoned".into()))?;
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
            .map_err(|e| RefreshError::Other(format!("reading the credential failed: {e}")))?
            .ok_or_else(|| RefreshError::Other("the credential was archived".into()))?;
        match &secrets.access_token {
            Some(t) if t != refused_token => {
                return Ok(FreshToken {
                    access_token: t.clone(),
                    exchanged: false,
                });
            }
            _ => {}
        }
        let refresh_token = secrets
            .refresh_token
            .clone()
            .ok_or(RefreshError::NoRefreshToken)?;
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
            .map_err(|e| RefreshError::Other(format!("storing the refreshed token failed: {e}")))?;
        if swapped {
            return Ok(FreshToken {
                access_token: grant.access_token,
                exchanged: true,
            });
        }
        // Lost the race: the next round re-reads the winner's token.
    }
    Err(RefreshError::Other(
        "the credential kept changing during the refresh".into(),
    ))
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
) -> Result<Grant, RefreshError> {
    let unreachable = RefreshError::Unreachable;
    let endpoint = &refresh.token_endpoint;
    let (host, port, https) = url_host_port(endpoint)
        .ok_or_else(|| RefreshError::Other("the token endpoint is not an http(s) URL".into()))?;
    // The token endpoint is the platform's own call, not the box's: the environment policy
    // does not apply, the operator's rules and the address check do.
    let verdict =
        crate::policy::Policy::new(&serde_json::Value::Null, &shared.allow, &shared.deny, &[])
            .map_err(|e| RefreshError::Other(e.to_string()))?
            .check_host(&host)
            .map_err(unreachable)?;
    let addrs = match upstream::resolve(&host, port, verdict).await {
        Ok(a) => a,
        Err(upstream::Resolve::Refused(r) | upstream::Resolve::Failed(r)) => {
            return Err(unreachable(r));
        }
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
        .map_err(|e| RefreshError::Other(format!("building the token request failed: {e}")))?;
    let mut sender = shared
        .upstream
        .http1(&host, &addrs, https)
        .await
        .map_err(unreachable)?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| unreachable(format!("the token endpoint did not answer: {e}")))?;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = http_body_util::Limited::new(resp.into_body(), MAX_TOKEN_RESPONSE)
        .collect()
        .await
        .map_err(|e| unreachable(format!("reading the token response failed: {e}")))?
        .to_bytes();
    if !status.is_success() {
        return Err(RefreshError::Endpoint {
            status: status.as_u16(),
            content_type,
            body: bytes,
        });
    }
    let not_a_grant = |why: &str| RefreshError::Other(format!("the token endpoint's answer {why}"));
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| not_a_grant("is not JSON"))?;
    let access_token = v
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| not_a_grant("has no access_token"))?
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
    use super::*;

    fn refresh(auth: TokenEndpointAuth) -> McpOAuthRefresh {
        serde_json::from_value(serde_json::json!({
            "client_id": "client 1", "refresh_token": "ignored", "token_endpoint": "https://a.b/t",
            "token_endpoint_auth": {"type": match auth {
                TokenEndpointAuth::None => "none",
                TokenEndpointAuth::ClientSecretBasic => "client_secret_basic",
                TokenEndpointAuth::ClientSecretPost => "client_secret_post",
            }},
            "scope": "read", "resource": "https://mcp.example.com",
        }))
        .unwrap()
    }

    #[test]
    fn the_grant_authenticates_the_client_as_configured() {
        let secrets = CredentialSecrets {
            client_secret: Some("s3cret/+".into()),
            ..Default::default()
        };
        let (body, basic) = token_form(
            &refresh(TokenEndpointAuth::ClientSecretBasic),
            "rt-1",
            &secrets,
        );
        assert!(body.contains("grant_type=refresh_token") && body.contains("refresh_token=rt-1"));
        assert!(body.contains("scope=read") && body.contains("resource=https%3A%2F%2Fmcp"));
        assert!(
            !body.contains("s3cret"),
            "basic keeps the secret out of the body"
        );
        assert!(!body.contains("client_id"));
        use base64::Engine;
        let pair = base64::engine::general_purpose::STANDARD
            .decode(basic.unwrap().trim_start_matches("Basic "))
            .unwrap();
        // RFC 6749 §2.3.1: both parts form-encoded before base64.
        assert_eq!(String::from_utf8(pair).unwrap(), "client+1:s3cret%2F%2B");

        let (body, basic) = token_form(
            &refresh(TokenEndpointAuth::ClientSecretPost),
            "rt-1",
            &secrets,
        );
        assert!(basic.is_none());
        assert!(body.contains("client_id=client+1") && body.contains("client_secret=s3cret"));

        let (body, basic) = token_form(&refresh(TokenEndpointAuth::None), "rt-1", &secrets);
        assert!(basic.is_none() && !body.contains("client_secret"));
        assert!(body.contains("client_id=client+1"));
    }

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
