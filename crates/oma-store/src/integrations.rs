//! Storage: integrations (Slack, GitHub, Linear) — an agent published into a service, the
//! conversations it takes part in, the webhook deliveries already handled and the replies
//! still owed (migration 0019).
//!
//! The webhook secret and the service token are sealed with the root secret under the
//! associated data [`secret_aad`] / [`token_aad`] before any statement is built; they are
//! opened only by [`Store::open_integration_secrets`].
//!
//! Exactly-once turns: [`Store::dispatch_integration_turn`] writes the delivery's row, the
//! conversation's session, the queued `user.message` and the reply owed in one transaction,
//! so a delivery that comes again (a retry, a replay inside the window) finds its row and
//! queues nothing.

use oma_core::events::NewEvent;
use oma_core::seal::Sealer;
use oma_core::{Error, time};
use serde_json::Value;

use crate::{Result, Store, StoreError, from_json, to_json};

/// The associated data a webhook secret is sealed under.
pub fn secret_aad(tenant: &str, id: &str) -> String {
    format!("{tenant}/{id}/secret")
}

/// The associated data a service token is sealed under.
pub fn token_aad(tenant: &str, id: &str) -> String {
    format!("{tenant}/{id}/token")
}

/// The associated data an OAuth app's client secret (a GitHub App's private key) is sealed under.
pub fn client_secret_aad(tenant: &str, id: &str) -> String {
    format!("{tenant}/{id}/client_secret")
}

/// The associated data a refresh token is sealed under.
pub fn refresh_token_aad(tenant: &str, id: &str) -> String {
    format!("{tenant}/{id}/refresh_token")
}

/// The id prefix of integrations.
pub const ID_PREFIX: &str = "intg";

/// An integration as stored (secrets still sealed). `Debug` leaves the sealed values out.
#[derive(Clone)]
pub struct IntegrationRow {
    pub id: String,
    pub tenant_id: String,
    /// `slack`, `github` or `linear`.
    pub kind: String,
    pub agent_id: String,
    pub environment_id: String,
    pub api_base: String,
    /// Where the agent may act: Slack channel ids, GitHub `owner/repo` (or `owner/*`),
    /// Linear team keys or ids; `*` is everywhere.
    pub allow: Vec<String>,
    /// The name the agent answers to (GitHub `@app-slug`, a Slack bot user id).
    pub app_handle: Option<String>,
    sealed_secret: String,
    sealed_token: Option<String>,
    /// The OAuth app: Slack/Linear client id, GitHub App id (`None`: tokens are given by hand).
    pub oauth_client_id: Option<String>,
    sealed_client_secret: Option<String>,
    sealed_refresh_token: Option<String>,
    /// When the access token stops working (microseconds), if it does.
    pub token_expires_at: Option<i64>,
    /// The GitHub App installation tokens are minted for.
    pub installation_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for IntegrationRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationRow")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("kind", &self.kind)
            .field("agent_id", &self.agent_id)
            .field("environment_id", &self.environment_id)
            .field("api_base", &self.api_base)
            .field("allow", &self.allow)
            .field("app_handle", &self.app_handle)
            .field("has_token", &self.sealed_token.is_some())
            .field("oauth_client_id", &self.oauth_client_id)
            .field("has_refresh_token", &self.sealed_refresh_token.is_some())
            .field("token_expires_at", &self.token_expires_at)
            .field("installation_id", &self.installation_id)
            .finish()
    }
}

impl IntegrationRow {
    /// Whether a token is stored.
    pub fn has_token(&self) -> bool {
        self.sealed_token.is_some()
    }

    /// Whether the integration has an OAuth app to install it with (and to refresh its token).
    pub fn has_oauth_app(&self) -> bool {
        self.oauth_client_id.is_some() && self.sealed_client_secret.is_some()
    }

    /// Whether a new access token can be had without a person: a refresh token, or a GitHub
    /// App installation to mint one for.
    pub fn can_refresh(&self) -> bool {
        self.has_oauth_app()
            && (self.sealed_refresh_token.is_some() || self.installation_id.is_some())
    }

    /// Whether a secret is stored (it always is; an empty one counts as missing).
    pub fn has_secret(&self) -> bool {
        !self.sealed_secret.is_empty()
    }
}

/// The opened secrets of an integration. `Debug` never prints them.
#[derive(Clone)]
pub struct IntegrationSecrets {
    pub secret: Vec<u8>,
    pub token: Option<String>,
    /// The OAuth app's client secret (a GitHub App's private key, PEM).
    pub client_secret: Option<String>,
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for IntegrationSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IntegrationSecrets(..)")
    }
}

/// What `oma integrations add` creates.
#[derive(Clone)]
pub struct NewIntegration {
    pub kind: String,
    pub agent_id: String,
    pub environment_id: String,
    pub api_base: String,
    pub allow: Vec<String>,
    pub app_handle: Option<String>,
    pub secret: String,
    pub token: Option<String>,
    /// The OAuth app the integration is installed with, if it is.
    pub oauth: Option<OAuthApp>,
}

/// An OAuth app's credentials: the Slack/Linear client id and secret, or a GitHub App's id and
/// private key (PEM). `Debug` leaves the secret out.
#[derive(Clone)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthApp")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// What an install (or a refresh) granted. `Debug` leaves the tokens out.
#[derive(Clone, Default)]
pub struct Grant {
    pub access_token: String,
    /// A new refresh token (`None` keeps the stored one).
    pub refresh_token: Option<String>,
    /// When the access token expires (microseconds), if it does.
    pub expires_at: Option<i64>,
    /// The GitHub App installation (`None` keeps the stored one).
    pub installation_id: Option<String>,
    /// The name the agent answers to, when the service told it (Slack's bot user id).
    pub app_handle: Option<String>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("expires_at", &self.expires_at)
            .field("installation_id", &self.installation_id)
            .field("app_handle", &self.app_handle)
            .finish_non_exhaustive()
    }
}

/// What presenting an install's `state` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallState {
    /// Valid: it is now used up. The tenant it was made for.
    Valid { tenant: String },
    /// It was made for this integration but its time ran out (it is used up too).
    Expired,
    /// Never made for this integration, or used already.
    Unknown,
}

/// One turn a delivery asks for.
#[derive(Debug, Clone)]
pub struct TurnRequest<'a> {
    pub integration_id: &'a str,
    pub delivery_id: &'a str,
    pub conversation: &'a str,
    /// The session to record for a conversation that has none yet (made by the caller).
    pub new_session: Option<&'a str>,
    /// Where the reply goes (service-specific JSON).
    pub target: &'a Value,
    pub message: NewEvent,
}

/// What [`Store::dispatch_integration_turn`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnOutcome {
    /// The delivery was handled before: nothing was queued.
    Duplicate,
    /// The conversation has no session and none was given: create one and call again.
    NeedsSession,
    /// The message is queued on `session_id` (`created`: the session is the new one).
    Queued { session_id: String, created: bool },
}

/// A reply owed when a session's turn ends.
#[derive(Debug, Clone)]
pub struct PendingReply {
    /// The queued `user.message` the reply answers.
    pub event_id: String,
    pub tenant_id: String,
    pub integration_id: String,
    pub session_id: String,
    pub target: Value,
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    tenant_id: String,
    kind: String,
    agent_id: String,
    environment_id: String,
    api_base: String,
    allow_scopes: String,
    app_handle: Option<String>,
    secret: String,
    token: Option<String>,
    created_at: i64,
    updated_at: i64,
    oauth_client_id: Option<String>,
    oauth_client_secret: Option<String>,
    refresh_token: Option<String>,
    token_expires_at: Option<i64>,
    installation_id: Option<String>,
}

const COLUMNS: &str = "id, tenant_id, kind, agent_id, environment_id, api_base, allow_scopes, \
                       app_handle, secret, token, created_at, updated_at, oauth_client_id, \
                       oauth_client_secret, refresh_token, token_expires_at, installation_id";

fn row(r: Row) -> Result<IntegrationRow> {
    Ok(IntegrationRow {
        id: r.id,
        tenant_id: r.tenant_id,
        kind: r.kind,
        agent_id: r.agent_id,
        environment_id: r.environment_id,
        api_base: r.api_base,
        allow: from_json(&r.allow_scopes)?,
        app_handle: r.app_handle,
        sealed_secret: r.secret,
        sealed_token: r.token,
        oauth_client_id: r.oauth_client_id,
        sealed_client_secret: r.oauth_client_secret,
        sealed_refresh_token: r.refresh_token,
        token_expires_at: r.token_expires_at,
        installation_id: r.installation_id,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

impl Store {
    /// Publishes an agent into a service. The agent and environment must exist; the secret
    /// and token are sealed before anything is written.
    pub async fn create_integration(
        &self,
        tenant: &str,
        new: &NewIntegration,
        sealer: &Sealer,
    ) -> Result<IntegrationRow> {
        if new.secret.is_empty() {
            return Err(Error::invalid("the webhook signing secret must not be empty").into());
        }
        self.agent_version(tenant, &new.agent_id, None).await?;
        self.check_environment(tenant, &new.environment_id).await?;
        let id = oma_core::ids::new_id(ID_PREFIX);
        let secret = sealer.seal(&secret_aad(tenant, &id), new.secret.as_bytes())?;
        let token = match &new.token {
            Some(t) => Some(sealer.seal(&token_aad(tenant, &id), t.as_bytes())?),
            None => None,
        };
        let (client_id, client_secret) = match &new.oauth {
            Some(app) => {
                if app.client_id.trim().is_empty() || app.client_secret.trim().is_empty() {
                    return Err(Error::invalid(
                        "an OAuth app needs both its client id and its client secret",
                    )
                    .into());
                }
                (
                    Some(app.client_id.clone()),
                    Some(sealer.seal(
                        &client_secret_aad(tenant, &id),
                        app.client_secret.as_bytes(),
                    )?),
                )
            }
            None => (None, None),
        };
        let now = time::now_micros();
        sqlx::query(
            "INSERT INTO integrations (id, tenant_id, kind, agent_id, environment_id, api_base, \
             allow_scopes, app_handle, secret, token, created_at, updated_at, oauth_client_id, \
             oauth_client_secret) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13)",
        )
        .bind(&id)
        .bind(tenant)
        .bind(&new.kind)
        .bind(&new.agent_id)
        .bind(&new.environment_id)
        .bind(&new.api_base)
        .bind(to_json(&new.allow)?)
        .bind(&new.app_handle)
        .bind(&secret)
        .bind(&token)
        .bind(now)
        .bind(&client_id)
        .bind(&client_secret)
        .execute(self.writer())
        .await?;
        self.integration(tenant, &id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("integration {id} vanished")))
    }

    /// One of `tenant`'s integrations.
    pub async fn integration(&self, tenant: &str, id: &str) -> Result<Option<IntegrationRow>> {
        let r: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM integrations WHERE tenant_id = $1 AND id = $2"
        )))
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        r.map(row).transpose()
    }

    /// An integration by id alone, whoever's it is: a webhook names only the integration (its
    /// id is unguessable and its signature is the authentication).
    pub async fn integration_by_id(&self, id: &str) -> Result<Option<IntegrationRow>> {
        let r: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM integrations WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        r.map(row).transpose()
    }

    /// The integrations of `tenant`, or of every tenant on this database, oldest first.
    pub async fn list_integrations(&self, tenant: Option<&str>) -> Result<Vec<IntegrationRow>> {
        let rows: Vec<Row> = match tenant {
            Some(t) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM integrations WHERE tenant_id = $1 \
                     ORDER BY created_at, id"
                )))
                .bind(t)
                .fetch_all(self.reader())
                .await?
            }
            None => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM integrations ORDER BY created_at, id"
                )))
                .fetch_all(self.reader())
                .await?
            }
        };
        rows.into_iter().map(row).collect()
    }

    /// Replaces where the integration may act.
    pub async fn set_integration_allow(
        &self,
        tenant: &str,
        id: &str,
        allow: &[String],
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE integrations SET allow_scopes = $1, updated_at = $2 \
             WHERE tenant_id = $3 AND id = $4",
        )
        .bind(to_json(&allow)?)
        .bind(time::now_micros())
        .bind(tenant)
        .bind(id)
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::missing("integration", id).into());
        }
        Ok(())
    }

    /// Removes an integration with its conversations, deliveries and owed replies (the
    /// sessions stay). Whether it existed.
    pub async fn delete_integration(&self, tenant: &str, id: &str) -> Result<bool> {
        let mut tx = self.writer().begin().await?;
        for table in [
            "integration_replies",
            "integration_deliveries",
            "integration_conversations",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE tenant_id = $1 AND integration_id = $2"
            )))
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        let done = sqlx::query("DELETE FROM integrations WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// The webhook secret and service token, opened.
    pub fn open_integration_secrets(
        &self,
        row: &IntegrationRow,
        sealer: &Sealer,
    ) -> Result<IntegrationSecrets> {
        let secret = sealer.open(&secret_aad(&row.tenant_id, &row.id), &row.sealed_secret)?;
        let text = |aad: String, sealed: &Option<String>, what: &str| -> Result<Option<String>> {
            match sealed {
                Some(t) => {
                    let raw = sealer.open(&aad, t)?;
                    Ok(Some(String::from_utf8(raw).map_err(|_| {
                        StoreError::Corrupt(format!("the {what} of {} is not text", row.id))
                    })?))
                }
                None => Ok(None),
            }
        };
        let (t, i) = (&row.tenant_id, &row.id);
        Ok(IntegrationSecrets {
            secret,
            token: text(token_aad(t, i), &row.sealed_token, "token")?,
            client_secret: text(
                client_secret_aad(t, i),
                &row.sealed_client_secret,
                "client secret",
            )?,
            refresh_token: text(
                refresh_token_aad(t, i),
                &row.sealed_refresh_token,
                "refresh token",
            )?,
        })
    }

    /// Whether a delivery was handled already.
    pub async fn integration_delivery_seen(
        &self,
        tenant: &str,
        integration_id: &str,
        delivery_id: &str,
    ) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM integration_deliveries \
             WHERE tenant_id = $1 AND integration_id = $2 AND delivery_id = $3",
        )
        .bind(tenant)
        .bind(integration_id)
        .bind(delivery_id)
        .fetch_one(self.reader())
        .await?;
        Ok(n > 0)
    }

    /// Records a delivery that asks for no turn (an event the agent ignores, a refusal by a
    /// capability gate), so its retries are recognised. Whether it was new.
    pub async fn record_integration_delivery(
        &self,
        tenant: &str,
        integration_id: &str,
        delivery_id: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO integration_deliveries \
             (tenant_id, integration_id, delivery_id, session_id, received_at) \
             VALUES ($1, $2, $3, NULL, $4) ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(integration_id)
        .bind(delivery_id)
        .bind(time::now_micros())
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The session of a conversation, if it has one.
    pub async fn integration_conversation(
        &self,
        tenant: &str,
        integration_id: &str,
        conversation: &str,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT session_id FROM integration_conversations \
             WHERE tenant_id = $1 AND integration_id = $2 AND conversation = $3",
        )
        .bind(tenant)
        .bind(integration_id)
        .bind(conversation)
        .fetch_optional(self.reader())
        .await?)
    }

    /// Queues the turn a delivery asks for, once: in one transaction the delivery's row (a
    /// delivery seen before stops here), the conversation's session (the one recorded, else
    /// `new_session`), the `user.message` and the reply owed.
    pub async fn dispatch_integration_turn(
        &self,
        tenant: &str,
        req: TurnRequest<'_>,
    ) -> Result<TurnOutcome> {
        let now = time::now_micros();
        let mut tx = self.writer().begin().await?;
        let fresh = sqlx::query(
            "INSERT INTO integration_deliveries \
             (tenant_id, integration_id, delivery_id, session_id, received_at) \
             VALUES ($1, $2, $3, NULL, $4) ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(req.integration_id)
        .bind(req.delivery_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if fresh.rows_affected() == 0 {
            return Ok(TurnOutcome::Duplicate);
        }
        let mut created = false;
        if let Some(new) = req.new_session {
            let done = sqlx::query(
                "INSERT INTO integration_conversations \
                 (tenant_id, integration_id, conversation, session_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT DO NOTHING",
            )
            .bind(tenant)
            .bind(req.integration_id)
            .bind(req.conversation)
            .bind(new)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            created = done.rows_affected() > 0;
        }
        let session: Option<String> = sqlx::query_scalar(
            "SELECT session_id FROM integration_conversations \
             WHERE tenant_id = $1 AND integration_id = $2 AND conversation = $3",
        )
        .bind(tenant)
        .bind(req.integration_id)
        .bind(req.conversation)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(session_id) = session else {
            return Ok(TurnOutcome::NeedsSession);
        };
        sqlx::query(
            "UPDATE integration_deliveries SET session_id = $1 \
             WHERE tenant_id = $2 AND integration_id = $3 AND delivery_id = $4",
        )
        .bind(&session_id)
        .bind(tenant)
        .bind(req.integration_id)
        .bind(req.delivery_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE integration_conversations SET updated_at = $1 \
             WHERE tenant_id = $2 AND integration_id = $3 AND conversation = $4",
        )
        .bind(now)
        .bind(tenant)
        .bind(req.integration_id)
        .bind(req.conversation)
        .execute(&mut *tx)
        .await?;
        let event_id = req.message.id.clone();
        crate::events::ensure_accepts_events(&mut tx, tenant, &session_id).await?;
        crate::events::ensure_within_budget(&mut tx, tenant, &session_id, &["user.message"])
            .await?;
        crate::runtime::enqueue_in_tx(&mut tx, tenant, &session_id, vec![req.message]).await?;
        crate::work::queue_for_session_in_tx(&mut tx, tenant, &session_id).await?;
        sqlx::query(
            "INSERT INTO integration_replies \
             (event_id, tenant_id, integration_id, session_id, target, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&event_id)
        .bind(tenant)
        .bind(req.integration_id)
        .bind(&session_id)
        .bind(to_json(req.target)?)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(TurnOutcome::Queued {
            session_id,
            created,
        })
    }

    /// The replies still owed on this database (every tenant's), oldest first: what a
    /// starting server resumes watching.
    pub async fn pending_integration_replies(&self) -> Result<Vec<PendingReply>> {
        let rows: Vec<(String, String, String, String, String, i64)> = sqlx::query_as(
            "SELECT event_id, tenant_id, integration_id, session_id, target, created_at \
             FROM integration_replies ORDER BY created_at, event_id",
        )
        .fetch_all(self.reader())
        .await?;
        rows.into_iter()
            .map(
                |(event_id, tenant_id, integration_id, session_id, target, created_at)| {
                    Ok(PendingReply {
                        event_id,
                        tenant_id,
                        integration_id,
                        session_id,
                        target: from_json(&target)?,
                        created_at,
                    })
                },
            )
            .collect()
    }

    /// The reply for `event_id` was posted (or refused): it is owed no more. Whether it was
    /// still owed (only one of two watchers gets `true`).
    pub async fn settle_integration_reply(&self, tenant: &str, event_id: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM integration_replies WHERE tenant_id = $1 AND event_id = $2")
                .bind(tenant)
                .bind(event_id)
                .execute(self.writer())
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Forgets deliveries received before `before` (microseconds): their retries are long
    /// over (Slack retries within the hour, GitHub redelivers up to three days back). The
    /// number forgotten.
    pub async fn prune_integration_deliveries(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM integration_deliveries WHERE received_at < $1")
            .bind(before)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }

    /// Starts an install: a new single-use `state` for the service's authorize URL, valid for
    /// `ttl`. Only its SHA-256 is stored.
    pub async fn begin_integration_install(
        &self,
        tenant: &str,
        id: &str,
        ttl: std::time::Duration,
    ) -> Result<String> {
        let row = self
            .integration(tenant, id)
            .await?
            .ok_or_else(|| Error::missing("integration", id))?;
        if !row.has_oauth_app() {
            return Err(Error::invalid(format!(
                "integration {id} has no OAuth app: add it with --client-id and --client-secret \
                 (a GitHub App: --app-id and --private-key)"
            ))
            .into());
        }
        let state = base64_url(&oma_core::ids::random_bytes(32));
        let now = time::now_micros();
        let ttl = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO integration_oauth_states \
             (state_hash, tenant_id, integration_id, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(state_hash(&state))
        .bind(tenant)
        .bind(id)
        .bind(now.saturating_add(ttl))
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(state)
    }

    /// Presents an install's `state` for integration `id`: it is used up whatever it was, so
    /// a state works once.
    pub async fn take_integration_install_state(
        &self,
        id: &str,
        state: &str,
    ) -> Result<InstallState> {
        let found: Option<(String, i64)> = sqlx::query_as(
            "DELETE FROM integration_oauth_states WHERE state_hash = $1 AND integration_id = $2 \
             RETURNING tenant_id, expires_at",
        )
        .bind(state_hash(state))
        .bind(id)
        .fetch_optional(self.writer())
        .await?;
        Ok(match found {
            None => InstallState::Unknown,
            Some((_, expires)) if expires <= time::now_micros() => InstallState::Expired,
            Some((tenant, _)) => InstallState::Valid { tenant },
        })
    }

    /// Forgets install states that expired before `before` (microseconds). The number.
    pub async fn prune_integration_install_states(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM integration_oauth_states WHERE expires_at < $1")
            .bind(before)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }

    /// Stores what an install or a refresh granted, sealed. Fields the grant leaves `None`
    /// keep their stored value, except the expiry, which is the grant's.
    pub async fn store_integration_grant(
        &self,
        tenant: &str,
        id: &str,
        grant: &Grant,
        sealer: &Sealer,
    ) -> Result<IntegrationRow> {
        let token = sealer.seal(&token_aad(tenant, id), grant.access_token.as_bytes())?;
        let refresh = match &grant.refresh_token {
            Some(r) => Some(sealer.seal(&refresh_token_aad(tenant, id), r.as_bytes())?),
            None => None,
        };
        let done = sqlx::query(
            "UPDATE integrations SET token = $1, refresh_token = COALESCE($2, refresh_token), \
             token_expires_at = $3, installation_id = COALESCE($4, installation_id), \
             app_handle = COALESCE($5, app_handle), updated_at = $6 \
             WHERE tenant_id = $7 AND id = $8",
        )
        .bind(&token)
        .bind(&refresh)
        .bind(grant.expires_at)
        .bind(&grant.installation_id)
        .bind(&grant.app_handle)
        .bind(time::now_micros())
        .bind(tenant)
        .bind(id)
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::missing("integration", id).into());
        }
        self.integration(tenant, id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("integration {id} vanished")))
    }
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn state_hash(state: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(state.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
