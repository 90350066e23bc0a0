//! Agents published into Slack, GitHub and Linear.
//!
//! A service calls `POST /v1/integrations/{integration_id}/webhook` (no API key: the
//! delivery's signature is the authentication). The delivery is verified exactly as the
//! service signs it ([`verify`]), read into a turn of a conversation ([`incoming`]), checked
//! against the integration's capability gate, and queued once on the conversation's session
//! (one conversation = one session; the mapping and the delivery ids live in the database,
//! see `oma_store::integrations`). When the session goes idle the agent's messages go back
//! to the service ([`reply`]), after the gate is checked again. Every delivery and every reply
//! is an `integration_dispatch` operational event.
//!
//! An integration with an OAuth app is installed through the service's own flow ([`oauth`]):
//! `oma integrations install` prints the authorize URL with a single-use `state`, and the
//! service sends the admin back to `GET /v1/integrations/{id}/oauth/callback`, where the code
//! (or GitHub App installation) becomes tokens, sealed like every credential. A token near its
//! expiry is refreshed before a reply, and once more after the service answers 401; refreshes
//! of one integration are serialized.
//!
//! The crate reaches the runtime only through [`SessionDriver`], which the server implements.

pub mod incoming;
pub mod oauth;
pub mod reply;
pub mod verify;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use oma_core::seal::Sealer;
use oma_ops::OpsEvent;
use oma_store::integrations::{
    InstallState, IntegrationRow, OAuthApp, PendingReply, TurnOutcome, TurnRequest,
};
use oma_store::{Store, StoreError, TenantRouter};
use serde_json::{Value, json};

use crate::incoming::{DeliveryHeaders, Incoming, Turn};
use crate::reply::TurnResult;

/// The services an agent can be published into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Slack,
    Github,
    Linear,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "slack" => Some(Kind::Slack),
            "github" => Some(Kind::Github),
            "linear" => Some(Kind::Linear),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Slack => "slack",
            Kind::Github => "github",
            Kind::Linear => "linear",
        }
    }

    /// The service's API a reply goes to, unless the integration says otherwise.
    pub fn default_api_base(self) -> &'static str {
        match self {
            Kind::Slack => "https://slack.com/api",
            Kind::Github => "https://api.github.com",
            Kind::Linear => "https://api.linear.app/graphql",
        }
    }

    /// What the operator knows the webhook secret as.
    pub fn secret_name(self) -> &'static str {
        match self {
            Kind::Slack => "signing secret",
            Kind::Github => "webhook secret",
            Kind::Linear => "webhook signing secret",
        }
    }
}

/// The webhook path of an integration (below `public_base_url`).
pub fn webhook_path(id: &str) -> String {
    format!("/v1/integrations/{id}/webhook")
}

/// What the integrations need of the runtime (the server implements it).
pub trait SessionDriver: Send + Sync + 'static {
    /// A session was created (its events are to be published) and has input queued.
    fn session_created(
        &self,
        tenant: &str,
        session_id: &str,
        events: Vec<oma_store::events::StoredEvent>,
    );
    /// Input was queued on a session.
    fn wake(&self, tenant: &str, session_id: &str);
    /// Subscribes now to the session's committed events; the future resolves at the next one
    /// (or spuriously). The caller reads the log after subscribing, then awaits.
    fn changed(&self, tenant: &str, session_id: &str) -> Pin<Box<dyn Future<Output = ()> + Send>>;
    /// Records an operational event.
    fn record(&self, event: OpsEvent);
}

/// The integrations of a server.
pub struct Integrations {
    tenants: TenantRouter,
    sealer: Arc<Sealer>,
    driver: Arc<dyn SessionDriver>,
    http: reqwest::Client,
    /// Where the services reach this deployment (the OAuth redirect URL is built from it).
    public_base_url: RwLock<Option<String>>,
    /// One lock per integration: its token is refreshed by one task at a time.
    refreshing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The query of an OAuth callback (Slack, Linear: `code`; GitHub App: `installation_id` and
/// `setup_action`; a declined install: `error`).
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub installation_id: Option<String>,
    pub setup_action: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// How long a watcher waits for a change before it reads the log again anyway.
const RECHECK: Duration = Duration::from_secs(15);
/// How long a delivery id is remembered (its retries and redeliveries come well before).
pub const DELIVERY_MEMORY: Duration = Duration::from_secs(7 * 24 * 3600);
const PRUNE_EVERY: Duration = Duration::from_secs(6 * 3600);
/// Events read per page while a watcher follows a session.
const PAGE: i64 = 500;

impl Integrations {
    pub fn new(
        tenants: TenantRouter,
        sealer: Arc<Sealer>,
        driver: Arc<dyn SessionDriver>,
    ) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Arc::new(Self {
            tenants,
            sealer,
            driver,
            http,
            public_base_url: RwLock::new(None),
            refreshing: Mutex::new(HashMap::new()),
        })
    }

    /// Sets where the services reach this deployment (`public_base_url`).
    pub fn set_public_base_url(&self, url: Option<String>) {
        if let Ok(mut g) = self.public_base_url.write() {
            *g = url.map(|u| u.trim_end_matches('/').to_string());
        }
    }

    pub fn public_base_url(&self) -> Option<String> {
        self.public_base_url.read().ok().and_then(|g| g.clone())
    }

    /// Watches again, on every shard, the replies still owed (after a restart), then forgets
    /// deliveries older than [`DELIVERY_MEMORY`] every few hours. Runs until the server stops.
    pub async fn resume(self: &Arc<Self>) {
        self.resume_replies().await;
        loop {
            let before = oma_core::time::now_micros()
                - i64::try_from(DELIVERY_MEMORY.as_micros()).unwrap_or(i64::MAX);
            for shard in self.tenants.shards() {
                if let Err(e) = shard.store.prune_integration_deliveries(before).await {
                    self.silent("prune_deliveries", &e);
                }
                let now = oma_core::time::now_micros();
                if let Err(e) = shard.store.prune_integration_install_states(now).await {
                    self.silent("prune_install_states", &e);
                }
            }
            tokio::time::sleep(PRUNE_EVERY).await;
        }
    }

    /// Watches again, on every shard, the replies still owed.
    pub async fn resume_replies(self: &Arc<Self>) {
        for shard in self.tenants.shards() {
            match shard.store.pending_integration_replies().await {
                Ok(pending) => {
                    for p in pending {
                        self.spawn_watch(false, p);
                    }
                }
                Err(e) => self.silent("resume", &e),
            }
        }
    }

    fn silent(&self, what: &str, e: &dyn std::fmt::Display) {
        tracing::warn!(component = "integrations", error = %e, "{what} failed");
        self.driver.record(oma_ops::event::silent_catch(
            &format!("integrations.{what}"),
            e,
        ));
    }

    async fn find(&self, id: &str) -> Result<Option<(Arc<Store>, IntegrationRow)>, StoreError> {
        for shard in self.tenants.shards() {
            if let Some(row) = shard.store.integration_by_id(id).await? {
                // The row's tenant may have moved on; its own shard is authoritative.
                let store = self.tenants.store_for(&row.tenant_id);
                return Ok(Some((store, row)));
            }
        }
        Ok(None)
    }

    /// The integration a request names, its shard's store and its kind, or the response that
    /// says why there is none.
    async fn lookup(&self, id: &str) -> Result<(Arc<Store>, IntegrationRow, Kind), Box<Response>> {
        let (store, row) = match self.find(id).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                return Err(Box::new(error(
                    StatusCode::NOT_FOUND,
                    "not_found_error",
                    format!(
                        "integration `{id}` not found; `oma integrations list` shows the configured ones"
                    ),
                )));
            }
            Err(e) => return Err(Box::new(storage(&e))),
        };
        match Kind::parse(&row.kind) {
            Some(kind) => Ok((store, row, kind)),
            None => Err(Box::new(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                format!("integration `{id}` has an unknown kind"),
            ))),
        }
    }

    fn dispatch_event(
        &self,
        row: &IntegrationRow,
        event: &str,
        outcome: &str,
        started: Instant,
        session: Option<&str>,
        extra: &[(&str, Value)],
    ) {
        let mut e =
            oma_ops::event::integration_dispatch(&row.kind, event, outcome, started.elapsed());
        e.tenant_id = Some(row.tenant_id.clone());
        e.session_id = session.map(str::to_string);
        e.fields
            .insert("integration_id".into(), Value::String(row.id.clone()));
        for (k, v) in extra {
            e.fields.insert((*k).to_string(), v.clone());
        }
        self.driver.record(e);
    }

    /// A delivery already handled (a retry, or a concurrent copy that lost): recorded, and
    /// answered 200 so the service stops retrying; nothing runs again.
    fn duplicate(&self, row: &IntegrationRow, turn: &Turn, started: Instant) -> Response {
        self.dispatch_event(
            row,
            &turn.event,
            "duplicate",
            started,
            None,
            &[("delivery_id", json!(turn.delivery_id))],
        );
        ok(json!({"ok": true, "duplicate": true}))
    }

    /// Handles one delivery: verify, read, gate, queue once.
    pub async fn webhook(self: &Arc<Self>, id: &str, headers: &HeaderMap, body: &[u8]) -> Response {
        let started = Instant::now();
        let (store, row, kind) = match self.lookup(id).await {
            Ok(found) => found,
            Err(response) => return *response,
        };
        let secrets = match store.open_integration_secrets(&row, &self.sealer) {
            Ok(s) => s,
            Err(e) => {
                self.dispatch_event(
                    &row,
                    "webhook",
                    "error",
                    started,
                    None,
                    &[("error", json!(e.to_string()))],
                );
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "api_error",
                    format!(
                        "{} integration {id}: its {} could not be opened (was the root secret changed?)",
                        kind.name(),
                        kind.secret_name()
                    ),
                );
            }
        };
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let now_ms = oma_core::time::now_micros() / 1000;
        let verified = match kind {
            Kind::Slack => verify::slack(
                &secrets.secret,
                header("x-slack-request-timestamp"),
                header("x-slack-signature"),
                body,
                now_ms / 1000,
            ),
            Kind::Github => verify::github(&secrets.secret, header("x-hub-signature-256"), body),
            Kind::Linear => {
                verify::linear(&secrets.secret, header("linear-signature"), body, now_ms)
            }
        };
        if let Err(e) = verified {
            self.dispatch_event(
                &row,
                "webhook",
                e.outcome(),
                started,
                None,
                &[("error", json!(e.to_string()))],
            );
            tracing::warn!(component = "integrations", integration_id = %row.id, tenant_id = %row.tenant_id, error = %e, "webhook refused");
            return error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                format!(
                    "{} integration {id}: {e}; check the {} configured with `oma integrations add {}`",
                    kind.name(),
                    kind.secret_name(),
                    kind.name()
                ),
            );
        }
        let parsed: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                self.dispatch_event(&row, "webhook", "invalid", started, None, &[]);
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    format!(
                        "{} integration {id}: the body is not JSON: {e}",
                        kind.name()
                    ),
                );
            }
        };
        let dh = DeliveryHeaders {
            github_event: header("x-github-event").map(str::to_string),
            github_delivery: header("x-github-delivery").map(str::to_string),
            linear_delivery: header("linear-delivery").map(str::to_string),
        };
        let incoming = match incoming::parse(kind, &parsed, &dh, row.app_handle.as_deref()) {
            Ok(i) => i,
            Err(e) => {
                self.dispatch_event(
                    &row,
                    "webhook",
                    "invalid",
                    started,
                    None,
                    &[("error", json!(e))],
                );
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    format!("{} integration {id}: {e}", kind.name()),
                );
            }
        };
        let turn = match incoming {
            Incoming::Challenge(c) => {
                self.dispatch_event(&row, "url_verification", "ok", started, None, &[]);
                return (StatusCode::OK, axum::Json(json!({"challenge": c}))).into_response();
            }
            Incoming::Ignored { delivery_id, event } => {
                if let Some(d) = delivery_id
                    && let Err(e) = store
                        .record_integration_delivery(&row.tenant_id, &row.id, &d)
                        .await
                {
                    return storage(&e);
                }
                self.dispatch_event(&row, &event, "ignored", started, None, &[]);
                return ok(json!({"ok": true, "ignored": event}));
            }
            Incoming::Turn(t) => t,
        };
        match store
            .integration_delivery_seen(&row.tenant_id, &row.id, &turn.delivery_id)
            .await
        {
            Ok(true) => return self.duplicate(&row, &turn, started),
            Ok(false) => {}
            Err(e) => return storage(&e),
        }
        if !incoming::allowed(&row.allow, &turn.target) {
            if let Err(e) = store
                .record_integration_delivery(&row.tenant_id, &row.id, &turn.delivery_id)
                .await
            {
                return storage(&e);
            }
            self.dispatch_event(
                &row,
                &turn.event,
                "denied",
                started,
                None,
                &[("scope", turn.target["scope"].clone())],
            );
            return ok(json!({"ok": true, "refused": format!(
                "integration {} may not act in {}; allow it with `oma integrations add … --allow`",
                row.id, turn.target["scope"]
            )}));
        }
        match self.queue(&store, &row, &turn).await {
            Ok(Some((session, event_id))) => {
                self.dispatch_event(
                    &row,
                    &turn.event,
                    "ok",
                    started,
                    Some(&session),
                    &[("delivery_id", json!(turn.delivery_id))],
                );
                // Linear wants a first activity within seconds; it goes out from the watcher so
                // the delivery is answered at once.
                self.spawn_watch(
                    kind == Kind::Linear,
                    PendingReply {
                        event_id,
                        tenant_id: row.tenant_id.clone(),
                        integration_id: row.id.clone(),
                        session_id: session.clone(),
                        target: turn.target.clone(),
                        created_at: 0,
                    },
                );
                ok(json!({"ok": true, "session_id": session}))
            }
            Ok(None) => self.duplicate(&row, &turn, started),
            Err(e) => {
                self.dispatch_event(
                    &row,
                    &turn.event,
                    "error",
                    started,
                    None,
                    &[("error", json!(e.to_string()))],
                );
                storage(&e)
            }
        }
    }

    /// Queues the turn on the conversation's session (made first if it has none). `None`
    /// when the delivery turned out to be a duplicate.
    async fn queue(
        &self,
        store: &Store,
        row: &IntegrationRow,
        turn: &Turn,
    ) -> Result<Option<(String, String)>, StoreError> {
        let tenant = row.tenant_id.as_str();
        let message = oma_core::events::validate_send(
            &[json!({"type": "user.message", "content": [{"type": "text", "text": turn.text}]})],
            oma_core::events::SendContext { self_hosted: false },
        )?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Corrupt("no message was built".into()))?;
        let event_id = message.id.clone();
        let known = store
            .integration_conversation(tenant, &row.id, &turn.conversation)
            .await?;
        let mut made: Option<(String, Vec<oma_store::events::StoredEvent>)> = None;
        if known.is_none() {
            let params: oma_core::sessions::CreateSessionParams = serde_json::from_value(json!({
                "agent": row.agent_id,
                "environment_id": row.environment_id,
                "title": turn.title,
                "metadata": {"oma_integration": row.id, "oma_conversation": turn.conversation},
            }))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let req = oma_core::sessions::CreateSession::parse(params)?;
            let (sid, _, events) = store.create_session(tenant, req, &self.sealer).await?;
            made = Some((sid, events));
        }
        let outcome = store
            .dispatch_integration_turn(
                tenant,
                TurnRequest {
                    integration_id: &row.id,
                    delivery_id: &turn.delivery_id,
                    conversation: &turn.conversation,
                    new_session: made.as_ref().map(|(s, _)| s.as_str()),
                    target: &turn.target,
                    message,
                },
            )
            .await?;
        let result = match outcome {
            TurnOutcome::Queued {
                session_id,
                created,
            } => {
                match made {
                    Some((sid, events)) if created && sid == session_id => {
                        self.driver.session_created(tenant, &sid, events);
                    }
                    Some((sid, _)) => {
                        // Another delivery made the conversation's session first.
                        self.discard(store, tenant, &sid).await;
                        self.driver.wake(tenant, &session_id);
                    }
                    None => self.driver.wake(tenant, &session_id),
                }
                Some((session_id, event_id))
            }
            TurnOutcome::Duplicate | TurnOutcome::NeedsSession => {
                if let Some((sid, _)) = made {
                    self.discard(store, tenant, &sid).await;
                }
                None
            }
        };
        Ok(result)
    }

    async fn discard(&self, store: &Store, tenant: &str, session: &str) {
        if let Err(e) = store.delete_session(tenant, session).await {
            self.silent("discard_session", &e);
        }
    }

    /// Linear expects an agent to answer a new session within seconds: a first thought.
    async fn linear_thought(&self, p: &PendingReply) {
        let store = self.tenants.store_for(&p.tenant_id);
        let row = match store.integration(&p.tenant_id, &p.integration_id).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => return self.silent("linear_thought", &e),
        };
        let target = &p.target;
        if !incoming::allowed(&row.allow, target) {
            return;
        }
        let Some(mut token) = self.reply_token(&store, &row, None, &p.session_id).await else {
            return;
        };
        let thought = reply::Activity::Thought("Working on it…".into());
        let mut sent =
            reply::linear_activity(&self.http, &row.api_base, &token, target, &thought).await;
        if let Err(e) = &sent
            && e.unauthorized()
            && let Some(fresh) = self
                .reply_token(&store, &row, Some(&token), &p.session_id)
                .await
        {
            token = fresh;
            sent =
                reply::linear_activity(&self.http, &row.api_base, &token, target, &thought).await;
        }
        if let Err(e) = sent {
            self.silent("linear_thought", &e);
        }
    }

    fn spawn_watch(self: &Arc<Self>, linear_thought: bool, p: PendingReply) {
        let me = self.clone();
        tokio::spawn(async move {
            if linear_thought {
                me.linear_thought(&p).await;
            }
            me.watch(p).await
        });
    }

    /// Follows the session until the turn that answers `p.event_id` ends, then replies.
    async fn watch(self: Arc<Self>, p: PendingReply) {
        let store = self.tenants.store_for(&p.tenant_id);
        let mut cursor = 0_i64;
        let mut seen_message = false;
        let mut result = TurnResult::default();
        loop {
            let changed = self.driver.changed(&p.tenant_id, &p.session_id);
            let page = match store
                .events_after(&p.tenant_id, &p.session_id, cursor, PAGE)
                .await
            {
                Ok(page) => page,
                Err(StoreError::Domain(e)) if e.kind == oma_core::ErrorKind::NotFound => {
                    let _ = store
                        .settle_integration_reply(&p.tenant_id, &p.event_id)
                        .await;
                    return;
                }
                Err(e) => {
                    self.silent("watch", &e);
                    let _ = tokio::time::timeout(RECHECK, changed).await;
                    continue;
                }
            };
            let full = page.len() as i64 == PAGE;
            let mut ended = false;
            for ev in &page {
                cursor = ev.seq;
                if !seen_message {
                    seen_message = ev.id == p.event_id;
                    continue;
                }
                // Only the primary thread speaks for the agent.
                if ev.thread_id.is_some() {
                    continue;
                }
                let body: Value = serde_json::from_str(&ev.body).unwrap_or(Value::Null);
                match ev.kind.as_str() {
                    "agent.message" => {
                        let text: Vec<&str> = body["content"]
                            .as_array()
                            .map(|a| a.iter().filter_map(|b| b["text"].as_str()).collect())
                            .unwrap_or_default();
                        if !result.text.is_empty() {
                            result.text.push_str("\n\n");
                        }
                        result.text.push_str(&text.join(""));
                    }
                    "agent.tool_use" | "agent.mcp_tool_use" => {
                        let name = body["name"].as_str().unwrap_or("tool").to_string();
                        let input: String = body["input"].to_string().chars().take(200).collect();
                        result.actions.push((name, input));
                    }
                    "session.error" => {
                        result.error = Some(
                            body.pointer("/error/message")
                                .and_then(Value::as_str)
                                .unwrap_or("the session failed")
                                .to_string(),
                        );
                    }
                    "session.status_idle" | "session.status_terminated" | "session.deleted" => {
                        ended = true;
                        break;
                    }
                    _ => {}
                }
            }
            if ended {
                self.deliver(&store, &p, &result).await;
                return;
            }
            if !full {
                let _ = tokio::time::timeout(RECHECK, changed).await;
            }
        }
    }

    /// Sends a finished turn's reply, if the gate allows it. The owed reply is claimed first,
    /// so two watchers never both post it.
    async fn deliver(&self, store: &Store, p: &PendingReply, result: &TurnResult) {
        let started = Instant::now();
        match store
            .settle_integration_reply(&p.tenant_id, &p.event_id)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => return self.silent("settle_reply", &e),
        }
        let row = match store.integration(&p.tenant_id, &p.integration_id).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => return self.silent("reply", &e),
        };
        let Some(kind) = Kind::parse(&row.kind) else {
            return;
        };
        if !incoming::allowed(&row.allow, &p.target) {
            tracing::warn!(component = "integrations", integration_id = %row.id, session_id = %p.session_id, "reply outside the integration's scope refused");
            self.dispatch_event(
                &row,
                "reply",
                "denied",
                started,
                Some(&p.session_id),
                &[("scope", p.target["scope"].clone())],
            );
            return;
        }
        let token = self.reply_token(store, &row, None, &p.session_id).await;
        let mut sent = reply::post(
            &self.http,
            kind,
            &row.api_base,
            token.as_deref(),
            &p.target,
            result,
        )
        .await;
        // A token revoked or expired early: one refresh, one more try.
        if let Err(e) = &sent
            && e.unauthorized()
            && let Some(old) = token.as_deref()
            && let Some(fresh) = self
                .reply_token(store, &row, Some(old), &p.session_id)
                .await
        {
            sent = reply::post(
                &self.http,
                kind,
                &row.api_base,
                Some(&fresh),
                &p.target,
                result,
            )
            .await;
        }
        match sent {
            Ok(()) => self.dispatch_event(&row, "reply", "ok", started, Some(&p.session_id), &[]),
            Err(e) => {
                tracing::warn!(component = "integrations", integration_id = %row.id, session_id = %p.session_id, error = %e, "reply failed");
                self.dispatch_event(
                    &row,
                    "reply",
                    "error",
                    started,
                    Some(&p.session_id),
                    &[("error", json!(e.to_string()))],
                );
            }
        }
    }

    /// The token to reply with. Refreshed first when it expires within
    /// [`oauth::REFRESH_MARGIN`], or when `failed` (the token the service just refused with
    /// 401) is still the stored one. One refresh per integration at a time: a task that
    /// waited for the lock finds the new token and uses it.
    async fn reply_token(
        &self,
        store: &Store,
        row: &IntegrationRow,
        failed: Option<&str>,
        session: &str,
    ) -> Option<String> {
        let opened = match store.open_integration_secrets(row, &self.sealer) {
            Ok(s) => s,
            Err(e) => {
                self.silent("open_token", &e);
                return None;
            }
        };
        let now = oma_core::time::now_micros();
        if !row.can_refresh() {
            // Nothing to refresh with: the stored token, unless it was just refused.
            return if failed.is_some() { None } else { opened.token };
        }
        if failed.is_none() && !oauth::needs_refresh(row.token_expires_at, now) {
            return opened.token;
        }
        let lock = match self.refreshing.lock() {
            Ok(mut map) => map.entry(row.id.clone()).or_default().clone(),
            Err(_) => return opened.token,
        };
        let _guard = lock.lock().await;
        // Read again: another task (or another node) may have refreshed meanwhile.
        let row = match store.integration(&row.tenant_id, &row.id).await {
            Ok(Some(r)) => r,
            Ok(None) => return None,
            Err(e) => {
                self.silent("reply_token", &e);
                return opened.token;
            }
        };
        let current = match store.open_integration_secrets(&row, &self.sealer) {
            Ok(s) => s,
            Err(e) => {
                self.silent("open_token", &e);
                return None;
            }
        };
        let stale = match failed {
            Some(f) => current.token.as_deref() == Some(f),
            None => oauth::needs_refresh(row.token_expires_at, now),
        };
        if !stale {
            return current.token;
        }
        let started = Instant::now();
        let (Some(client_id), Some(client_secret)) =
            (row.oauth_client_id.clone(), current.client_secret.clone())
        else {
            return current.token;
        };
        let Some(kind) = Kind::parse(&row.kind) else {
            return current.token;
        };
        let app = OAuthApp {
            client_id,
            client_secret,
        };
        let why = if failed.is_some() {
            "refused"
        } else {
            "expiring"
        };
        let granted = oauth::refresh(
            &self.http,
            kind,
            &row.api_base,
            &app,
            current.refresh_token.as_deref(),
            row.installation_id.as_deref(),
            now,
        )
        .await;
        match granted {
            Ok(grant) => match store
                .store_integration_grant(&row.tenant_id, &row.id, &grant, &self.sealer)
                .await
            {
                Ok(_) => {
                    self.dispatch_event(
                        &row,
                        "token_refresh",
                        "ok",
                        started,
                        Some(session),
                        &[("reason", json!(why))],
                    );
                    Some(grant.access_token)
                }
                Err(e) => {
                    self.silent("store_refreshed_token", &e);
                    Some(grant.access_token)
                }
            },
            Err(e) => {
                tracing::warn!(component = "integrations", integration_id = %row.id, error = %e, "token refresh failed");
                self.dispatch_event(
                    &row,
                    "token_refresh",
                    "error",
                    started,
                    Some(session),
                    &[("reason", json!(why)), ("error", json!(e.to_string()))],
                );
                // A token refused already is no use; one merely near its end still is.
                if failed.is_some() {
                    None
                } else {
                    current.token
                }
            }
        }
    }

    /// `GET /v1/integrations/{id}/oauth/callback`: the service sends the admin back here after
    /// an install. The `state` must be one `oma integrations install` made for this
    /// integration, unexpired and unused; it is used up either way. Then the code (or the
    /// GitHub App installation) becomes tokens, sealed and stored.
    pub async fn oauth_callback(&self, id: &str, q: &CallbackQuery) -> Response {
        let started = Instant::now();
        let (store, row, kind) = match self.lookup(id).await {
            Ok(found) => found,
            Err(response) => return *response,
        };
        let name = kind.name();
        let again = format!("start again with `oma integrations install {id}`");
        let refused = |outcome: &str, message: String| {
            tracing::warn!(component = "integrations", integration_id = %row.id, tenant_id = %row.tenant_id, "install refused: {message}");
            self.dispatch_event(
                &row,
                "oauth_callback",
                outcome,
                started,
                None,
                &[("error", json!(message))],
            );
            error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!("{name} integration {id}: {message}"),
            )
        };
        let Some(state) = q.state.as_deref().filter(|s| !s.is_empty()) else {
            return refused(
                "refused",
                format!(
                    "the redirect carries no `state`, so it is not an install oma started; {again}"
                ),
            );
        };
        let taken = match store.take_integration_install_state(id, state).await {
            Ok(t) => t,
            Err(e) => return storage(&e),
        };
        match taken {
            InstallState::Valid { tenant } if tenant == row.tenant_id => {}
            InstallState::Valid { .. } | InstallState::Unknown => {
                return refused(
                    "refused",
                    format!("the install's `state` is unknown or was used already; {again}"),
                );
            }
            InstallState::Expired => {
                return refused(
                    "expired",
                    format!(
                        "the install link expired (it works for {} minutes); {again}",
                        oauth::STATE_TTL.as_secs() / 60
                    ),
                );
            }
        }
        if let Some(e) = &q.error {
            let detail = q.error_description.as_deref().unwrap_or("");
            return refused(
                "declined",
                format!("the install was declined at {name}: {e} {detail}; {again}")
                    .trim()
                    .to_string(),
            );
        }
        let Some(base) = self.public_base_url() else {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                format!(
                    "{name} integration {id}: public_base_url is not set on this server, so the \
                     redirect URL cannot be checked; set it and {again}"
                ),
            );
        };
        let opened = match store.open_integration_secrets(&row, &self.sealer) {
            Ok(s) => s,
            Err(e) => {
                self.silent("open_client_secret", &e);
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "api_error",
                    format!(
                        "{name} integration {id}: its OAuth client secret could not be opened (was the root secret changed?)"
                    ),
                );
            }
        };
        let (Some(client_id), Some(client_secret)) =
            (row.oauth_client_id.clone(), opened.client_secret)
        else {
            return refused(
                "refused",
                "it has no OAuth app (add it with --client-id and --client-secret)".into(),
            );
        };
        let app = OAuthApp {
            client_id,
            client_secret,
        };
        let callback = oauth::Callback {
            code: q.code.clone(),
            installation_id: q.installation_id.clone(),
        };
        let granted = oauth::exchange(
            &self.http,
            kind,
            &row.api_base,
            &app,
            &callback,
            &oauth::redirect_uri(&base, id),
            oma_core::time::now_micros(),
        )
        .await;
        let grant = match granted {
            Ok(g) => g,
            Err(oauth::OAuthError::Missing(what)) => {
                return refused("invalid", format!("{what}; {again}"));
            }
            Err(e) => {
                self.dispatch_event(
                    &row,
                    "oauth_callback",
                    "error",
                    started,
                    None,
                    &[("error", json!(e.to_string()))],
                );
                return error(
                    StatusCode::BAD_GATEWAY,
                    "api_error",
                    format!(
                        "{name} integration {id}: exchanging the install for a token failed: {e}; check its --client-id and --client-secret, then {again}"
                    ),
                );
            }
        };
        // Slack tells which bot user the app is; GitHub keeps the slug it was given.
        let grant = oma_store::integrations::Grant {
            app_handle: if kind == Kind::Slack {
                grant.app_handle.clone()
            } else {
                None
            },
            ..grant
        };
        if let Err(e) = store
            .store_integration_grant(&row.tenant_id, id, &grant, &self.sealer)
            .await
        {
            return storage(&e);
        }
        self.dispatch_event(
            &row,
            "oauth_callback",
            "ok",
            started,
            None,
            &[("installation_id", json!(grant.installation_id))],
        );
        ok(json!({
            "ok": true,
            "integration_id": id,
            "kind": name,
            "agent_id": row.agent_id,
            "message": format!("{name} is installed for agent {}; replies will be posted with the new token. You can close this page.", row.agent_id),
        }))
    }
}

fn ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

/// An error in the Anthropic envelope the server uses everywhere.
fn error(status: StatusCode, kind: &'static str, message: String) -> Response {
    let env = oma_api::ErrorEnvelope::new(
        kind,
        message,
        None,
        oma_core::ids::new_id(oma_core::ids::REQUEST),
    );
    (status, axum::Json(env)).into_response()
}

fn storage(e: &StoreError) -> Response {
    match e {
        StoreError::Domain(d) if d.kind == oma_core::ErrorKind::NotFound => {
            error(StatusCode::NOT_FOUND, "not_found_error", d.message.clone())
        }
        StoreError::Domain(d) if d.kind == oma_core::ErrorKind::InvalidRequest => error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            d.message.clone(),
        ),
        StoreError::TenantFenced => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "this tenant is being moved to another shard; try again in a moment".into(),
        ),
        other => {
            tracing::error!(component = "integrations", error = %other, "storage failure");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "internal storage error".into(),
            )
        }
    }
}

/// The webhook route, for any server state that holds the integrations.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Integrations>: FromRef<S>,
{
    Router::new()
        .route(
            "/v1/integrations/{integration_id}/webhook",
            axum::routing::post(handle),
        )
        .route(
            "/v1/integrations/{integration_id}/oauth/callback",
            axum::routing::get(callback),
        )
}

async fn callback(
    State(integrations): State<Arc<Integrations>>,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<CallbackQuery>,
) -> Response {
    integrations.oauth_callback(&id, &q).await
}

async fn handle(
    State(integrations): State<Arc<Integrations>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    integrations.webhook(&id, &headers, &body).await
}
