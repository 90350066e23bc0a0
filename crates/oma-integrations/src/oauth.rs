//! OAuth installs and token refresh, in each service's own wire format:
//!
//! - Slack (OAuth v2): the admin opens `https://slack.com/oauth/v2/authorize?client_id&scope&
//!   redirect_uri&state`; Slack redirects to the callback with `code` and `state`; the code is
//!   exchanged at `POST {api_base}/oauth.v2.access` (form: `client_id`, `client_secret`, `code`,
//!   `redirect_uri`), which answers 200 with `{"ok", "access_token", "bot_user_id", …}` and, with
//!   token rotation on, `refresh_token` and `expires_in`; a refresh is the same call with
//!   `grant_type=refresh_token`.
//! - Linear: `https://linear.app/oauth/authorize?client_id&redirect_uri&response_type=code&
//!   scope&actor=app&state`; the code is exchanged at `POST https://api.linear.app/oauth/token`
//!   (form, `grant_type=authorization_code`), answering `{"access_token", "expires_in",
//!   "refresh_token", …}`; refreshed there with `grant_type=refresh_token`.
//! - GitHub (a GitHub App): `https://github.com/apps/{slug}/installations/new?state`; GitHub
//!   redirects to the app's setup URL with `installation_id`, `setup_action` and `state`. There
//!   is no code: oma signs a JWT (RS256, `iss` = the app id) with the app's private key and asks
//!   `POST {api_base}/app/installations/{id}/access_tokens` for an installation token (`201
//!   {"token", "expires_at"}`, valid an hour); a "refresh" mints a new one the same way.
//!
//! The token endpoints are found from the integration's `api_base`, so a test points them at a
//! fake that speaks the same format.

use std::time::Duration;

use base64::Engine as _;
use oma_store::integrations::{Grant, OAuthApp};
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::{Value, json};

use crate::Kind;

/// How long an install link works.
pub const STATE_TTL: Duration = Duration::from_secs(30 * 60);
/// A token this close to its expiry is refreshed before it is used.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// The scopes an install asks for: enough to read what the agent answers and to reply.
pub const SLACK_SCOPES: &str = "app_mentions:read,chat:write,im:history,channels:history";
pub const LINEAR_SCOPES: &str = "read,write,app:assignable,app:mentionable";

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("the request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the service refused it ({status}): {error}")]
    Refused { status: u16, error: String },
    #[error("the service's answer lacks {0}")]
    Malformed(&'static str),
    #[error("the GitHub App private key is unusable: {0}")]
    Key(String),
    #[error("{0}")]
    Missing(&'static str),
}

/// The callback path of an integration (below `public_base_url`): the redirect URL (Slack,
/// Linear) or setup URL (GitHub App) to register with the service.
pub fn callback_path(id: &str) -> String {
    format!("/v1/integrations/{id}/oauth/callback")
}

/// The redirect URL the service sends the admin back to.
pub fn redirect_uri(public_base_url: &str, id: &str) -> String {
    format!(
        "{}{}",
        public_base_url.trim_end_matches('/'),
        callback_path(id)
    )
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    q.finish()
}

/// Where the admin goes to install the app. `app_handle` is the GitHub App's slug.
pub fn authorize_url(
    kind: Kind,
    client_id: &str,
    app_handle: Option<&str>,
    redirect_uri: &str,
    state: &str,
) -> Result<String, OAuthError> {
    Ok(match kind {
        Kind::Slack => format!(
            "https://slack.com/oauth/v2/authorize?{}",
            query(&[
                ("client_id", client_id),
                ("scope", SLACK_SCOPES),
                ("redirect_uri", redirect_uri),
                ("state", state),
            ])
        ),
        Kind::Linear => format!(
            "https://linear.app/oauth/authorize?{}",
            query(&[
                ("client_id", client_id),
                ("redirect_uri", redirect_uri),
                ("response_type", "code"),
                ("scope", LINEAR_SCOPES),
                ("actor", "app"),
                ("state", state),
            ])
        ),
        Kind::Github => {
            let slug = app_handle
                .map(|h| h.trim_start_matches('@'))
                .filter(|h| !h.is_empty())
                .ok_or(OAuthError::Missing("a GitHub App needs its slug (--app)"))?;
            format!(
                "https://github.com/apps/{slug}/installations/new?{}",
                query(&[("state", state)])
            )
        }
    })
}

/// A new install link for `row`: a fresh single-use `state` (valid [`STATE_TTL`]) in the
/// service's authorize URL, which sends the admin back to [`redirect_uri`].
pub async fn install_link(
    store: &oma_store::Store,
    row: &oma_store::integrations::IntegrationRow,
    public_base_url: &str,
) -> Result<String, InstallLinkError> {
    let kind = Kind::parse(&row.kind).ok_or(InstallLinkError::Kind)?;
    let client_id = row
        .oauth_client_id
        .as_deref()
        .ok_or(InstallLinkError::NoApp)?;
    // Checked before a state is stored for nothing.
    authorize_url(kind, client_id, row.app_handle.as_deref(), "-", "-")?;
    let state = store
        .begin_integration_install(&row.tenant_id, &row.id, STATE_TTL)
        .await?;
    Ok(authorize_url(
        kind,
        client_id,
        row.app_handle.as_deref(),
        &redirect_uri(public_base_url, &row.id),
        &state,
    )?)
}

#[derive(Debug, thiserror::Error)]
pub enum InstallLinkError {
    #[error("the integration has an unknown kind")]
    Kind,
    #[error(
        "the integration has no OAuth app: add it with --client-id and --client-secret (a GitHub App: --client-id APP_ID --private-key FILE)"
    )]
    NoApp,
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    #[error(transparent)]
    Store(#[from] oma_store::StoreError),
}

/// Linear's token endpoint, next to its GraphQL endpoint.
fn linear_token_url(api_base: &str) -> String {
    let base = api_base.trim_end_matches('/');
    let root = base.strip_suffix("/graphql").unwrap_or(base);
    format!("{root}/oauth/token")
}

fn expires_at(now_micros: i64, expires_in: Option<i64>) -> Option<i64> {
    expires_in.map(|s| now_micros.saturating_add(s.saturating_mul(1_000_000)))
}

async fn post_form(
    http: &reqwest::Client,
    url: &str,
    pairs: &[(&str, &str)],
) -> Result<(u16, Value), OAuthError> {
    let resp = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(query(pairs))
        .send()
        .await?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// Reads a token response: the OAuth 2.0 one (RFC 6749 §5) Linear gives, or Slack's, which
/// answers 200 either way with `ok` saying which and names the bot user.
fn grant(kind: Kind, status: u16, body: &Value, now: i64) -> Result<Grant, OAuthError> {
    let refused = status != 200 || (kind == Kind::Slack && body["ok"] != Value::Bool(true));
    if refused {
        return Err(OAuthError::Refused {
            status,
            error: body["error"].as_str().unwrap_or("refused").to_string(),
        });
    }
    Ok(Grant {
        access_token: body["access_token"]
            .as_str()
            .ok_or(OAuthError::Malformed("access_token"))?
            .to_string(),
        refresh_token: body["refresh_token"].as_str().map(str::to_string),
        expires_at: expires_at(now, body["expires_in"].as_i64()),
        installation_id: None,
        app_handle: body["bot_user_id"].as_str().map(str::to_string),
    })
}

/// What the service's redirect carried.
#[derive(Debug, Clone, Default)]
pub struct Callback {
    pub code: Option<String>,
    /// GitHub App installs: the installation.
    pub installation_id: Option<String>,
}

/// Turns an install's callback into tokens.
pub async fn exchange(
    http: &reqwest::Client,
    kind: Kind,
    api_base: &str,
    app: &OAuthApp,
    callback: &Callback,
    redirect_uri: &str,
    now_micros: i64,
) -> Result<Grant, OAuthError> {
    let base = api_base.trim_end_matches('/');
    match kind {
        Kind::Slack => {
            let code = callback.code.as_deref().ok_or(OAuthError::Missing(
                "the redirect carries no `code` parameter",
            ))?;
            let (status, body) = post_form(
                http,
                &format!("{base}/oauth.v2.access"),
                &[
                    ("client_id", &app.client_id),
                    ("client_secret", &app.client_secret),
                    ("code", code),
                    ("redirect_uri", redirect_uri),
                ],
            )
            .await?;
            grant(Kind::Slack, status, &body, now_micros)
        }
        Kind::Linear => {
            let code = callback.code.as_deref().ok_or(OAuthError::Missing(
                "the redirect carries no `code` parameter",
            ))?;
            let (status, body) = post_form(
                http,
                &linear_token_url(base),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", redirect_uri),
                    ("client_id", &app.client_id),
                    ("client_secret", &app.client_secret),
                ],
            )
            .await?;
            grant(Kind::Linear, status, &body, now_micros)
        }
        Kind::Github => {
            let installation = callback
                .installation_id
                .as_deref()
                .ok_or(OAuthError::Missing(
                    "the redirect carries no `installation_id` parameter",
                ))?;
            if installation.is_empty() || !installation.bytes().all(|b| b.is_ascii_digit()) {
                return Err(OAuthError::Missing("`installation_id` must be a number"));
            }
            installation_token(http, base, app, installation, now_micros).await
        }
    }
}

/// A new access token for an installed integration.
pub async fn refresh(
    http: &reqwest::Client,
    kind: Kind,
    api_base: &str,
    app: &OAuthApp,
    refresh_token: Option<&str>,
    installation_id: Option<&str>,
    now_micros: i64,
) -> Result<Grant, OAuthError> {
    let base = api_base.trim_end_matches('/');
    match kind {
        Kind::Github => {
            let installation = installation_id.ok_or(OAuthError::Missing(
                "the GitHub App is not installed yet (no installation id)",
            ))?;
            installation_token(http, base, app, installation, now_micros).await
        }
        Kind::Slack | Kind::Linear => {
            let refresh_token =
                refresh_token.ok_or(OAuthError::Missing("no refresh token is stored"))?;
            let pairs = [
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", app.client_id.as_str()),
                ("client_secret", app.client_secret.as_str()),
            ];
            let url = if kind == Kind::Slack {
                format!("{base}/oauth.v2.access")
            } else {
                linear_token_url(base)
            };
            let (status, body) = post_form(http, &url, &pairs).await?;
            grant(kind, status, &body, now_micros)
        }
    }
}

/// Mints a GitHub App installation token.
async fn installation_token(
    http: &reqwest::Client,
    base: &str,
    app: &OAuthApp,
    installation: &str,
    now_micros: i64,
) -> Result<Grant, OAuthError> {
    let jwt = github_app_jwt(&app.client_id, &app.client_secret, now_micros / 1_000_000)?;
    let resp = http
        .post(format!(
            "{base}/app/installations/{installation}/access_tokens"
        ))
        .bearer_auth(jwt)
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
        .header("user-agent", "oma")
        .send()
        .await?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status != 201 {
        return Err(OAuthError::Refused {
            status,
            error: body["message"].as_str().unwrap_or("refused").to_string(),
        });
    }
    let token = body["token"]
        .as_str()
        .ok_or(OAuthError::Malformed("token"))?;
    let expires = body["expires_at"]
        .as_str()
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX));
    Ok(Grant {
        access_token: token.to_string(),
        refresh_token: None,
        expires_at: expires,
        installation_id: Some(installation.to_string()),
        app_handle: None,
    })
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Reads a PEM private key: PKCS#1 (`RSA PRIVATE KEY`, what GitHub hands out) or PKCS#8.
pub fn rsa_key(pem: &str) -> Result<RsaKeyPair, OAuthError> {
    let mut label = None;
    let mut body = String::new();
    for line in pem.lines().map(str::trim) {
        if let Some(l) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            label = Some(l.to_string());
        } else if line.starts_with("-----END ") {
            break;
        } else if label.is_some() {
            body.push_str(line);
        }
    }
    let label = label.ok_or_else(|| OAuthError::Key("it is not PEM".into()))?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|e| OAuthError::Key(format!("its base64 is broken: {e}")))?;
    match label.as_str() {
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
        other => {
            return Err(OAuthError::Key(format!(
                "a `{other}` is not an RSA private key"
            )));
        }
    }
    .map_err(|e| OAuthError::Key(e.to_string()))
}

/// The JWT a GitHub App authenticates as itself with: RS256, issued a minute in the past
/// (clock drift), valid nine minutes (GitHub allows ten).
pub fn github_app_jwt(app_id: &str, pem: &str, now_secs: i64) -> Result<String, OAuthError> {
    let key = rsa_key(pem)?;
    let header = b64(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = b64(
        json!({"iat": now_secs - 60, "exp": now_secs + 540, "iss": app_id})
            .to_string()
            .as_bytes(),
    );
    let signing_input = format!("{header}.{claims}");
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .map_err(|e| OAuthError::Key(e.to_string()))?;
    Ok(format!("{signing_input}.{}", b64(&sig)))
}

/// Whether a token expiring at `expires_at` should be replaced before use at `now`.
pub fn needs_refresh(expires_at: Option<i64>, now_micros: i64) -> bool {
    let margin = i64::try_from(REFRESH_MARGIN.as_micros()).unwrap_or(i64::MAX);
    expires_at.is_some_and(|e| e.saturating_sub(now_micros) < margin)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn refresh_margin() {
        let now = 1_000_000_000_000;
        assert!(!needs_refresh(None, now));
        assert!(needs_refresh(Some(now + 60_000_000), now));
        assert!(!needs_refresh(Some(now + 3_600_000_000), now));
        assert!(needs_refresh(Some(now - 1), now));
    }

    #[test]
    fn linear_token_url_sits_next_to_graphql() {
        assert_eq!(
            linear_token_url("https://api.linear.app/graphql"),
            "https://api.linear.app/oauth/token"
        );
        assert_eq!(
            linear_token_url("http://127.0.0.1:9/linear/"),
            "http://127.0.0.1:9/linear/oauth/token"
        );
    }

    #[test]
    fn authorize_urls_carry_the_state_and_redirect() {
        let app = "123.456";
        let u = authorize_url(
            Kind::Slack,
            app,
            None,
            "https://oma.example/v1/integrations/intg_1/oauth/callback",
            "st",
        )
        .unwrap();
        assert!(u.starts_with("https://slack.com/oauth/v2/authorize?client_id=123.456&"));
        assert!(u.contains(
            "redirect_uri=https%3A%2F%2Foma.example%2Fv1%2Fintegrations%2Fintg_1%2Foauth%2Fcallback"
        ));
        assert!(u.ends_with("&state=st"));
        assert!(authorize_url(Kind::Github, app, None, "x", "st").is_err());
        let g = authorize_url(Kind::Github, app, Some("@my-app"), "x", "st").unwrap();
        assert_eq!(
            g,
            "https://github.com/apps/my-app/installations/new?state=st"
        );
    }

    #[test]
    fn a_key_that_is_not_pem_is_refused_by_name() {
        let e = github_app_jwt("1", "not a key", 0).unwrap_err();
        assert!(e.to_string().contains("not PEM"), "{e}");
    }
}
