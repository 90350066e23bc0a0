//! Integrations in the store, on SQLite always and on PostgreSQL when `OMA_TEST_DATABASE_URL`
//! is set: secrets sealed at rest, a conversation's session recorded once, a delivery queued
//! once (its retry queues nothing), owed replies claimed once, tenants kept apart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use oma_core::events::{SendContext, validate_send};
use oma_core::seal::Sealer;
use oma_core::sessions::{CreateSession, CreateSessionParams};
use oma_store::Store;
use oma_store::integrations::{NewIntegration, TurnOutcome, TurnRequest};
use serde_json::json;

const SECRET: &str = "slack-signing-needle-3f9a";
const TOKEN: &str = "xoxb-token-needle-77c1";

async fn stores() -> Vec<(Option<tempfile::TempDir>, Store)> {
    let mut out = Vec::new();
    for backend in common::backends() {
        match backend {
            oma_store::Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("oma.db").display());
                out.push((Some(dir), Store::connect(&url).await.unwrap()));
            }
            oma_store::Backend::Postgres => {
                let url = std::env::var("OMA_TEST_DATABASE_URL").unwrap();
                out.push((None, Store::connect(&url).await.unwrap()));
            }
        }
    }
    for (_, s) in &out {
        s.migrate_up().await.unwrap();
    }
    out
}

fn sealer() -> Sealer {
    Sealer::from_root_secret(&[7u8; 32]).unwrap()
}

/// A tenant with an agent and an environment: `(tenant, agent, environment)`.
async fn tenant(store: &Store) -> (String, String, String) {
    oma_testkit::tenant_with_agent(store, "intg").await.unwrap()
}

fn message(text: &str) -> oma_core::events::NewEvent {
    validate_send(
        &[json!({"type": "user.message", "content": [{"type": "text", "text": text}]})],
        SendContext { self_hosted: false },
    )
    .unwrap()
    .remove(0)
}

async fn new_session(store: &Store, tenant: &str, agent: &str, env: &str) -> String {
    let p: CreateSessionParams =
        serde_json::from_value(json!({"agent": agent, "environment_id": env})).unwrap();
    store
        .create_session(tenant, CreateSession::parse(p).unwrap(), &sealer())
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn integrations_are_sealed_listed_and_removed() {
    for (_dir, s) in stores().await {
        let (t, agent, env) = tenant(&s).await;
        let row = s
            .create_integration(
                &t,
                &NewIntegration {
                    kind: "slack".into(),
                    agent_id: agent.clone(),
                    environment_id: env.clone(),
                    api_base: "http://127.0.0.1:9/api".into(),
                    allow: vec!["C1".into()],
                    app_handle: None,
                    secret: SECRET.into(),
                    token: Some(TOKEN.into()),
                    oauth: None,
                },
                &sealer(),
            )
            .await
            .unwrap();
        assert!(row.id.starts_with("intg_"));
        assert_eq!(row.allow, vec!["C1".to_string()]);
        assert!(row.has_token() && row.has_secret());
        // Never in plaintext at rest, nor in `Debug`.
        let (secret, token): (String, Option<String>) =
            sqlx::query_as("SELECT secret, token FROM integrations WHERE id = $1")
                .bind(&row.id)
                .fetch_one(s.reader())
                .await
                .unwrap();
        assert!(!secret.contains(SECRET) && !token.unwrap().contains(TOKEN));
        let debug = format!("{row:?}");
        assert!(!debug.contains(SECRET) && !debug.contains(TOKEN) && !debug.contains("v1."));
        let opened = s.open_integration_secrets(&row, &sealer()).unwrap();
        assert_eq!(opened.secret, SECRET.as_bytes());
        assert_eq!(opened.token.as_deref(), Some(TOKEN));
        assert!(!format!("{opened:?}").contains(SECRET));
        // Another root secret does not open it.
        let other = Sealer::from_root_secret(&[8u8; 32]).unwrap();
        assert!(s.open_integration_secrets(&row, &other).is_err());

        // An unknown agent or environment is refused.
        let mut bad = NewIntegration {
            kind: "github".into(),
            agent_id: "agent_nope".into(),
            environment_id: env.clone(),
            api_base: "https://api.github.com".into(),
            allow: vec![],
            app_handle: Some("bot".into()),
            secret: "x".into(),
            token: None,
            oauth: None,
        };
        assert!(s.create_integration(&t, &bad, &sealer()).await.is_err());
        bad.agent_id = agent.clone();
        bad.environment_id = "env_nope".into();
        assert!(s.create_integration(&t, &bad, &sealer()).await.is_err());

        // Tenants apart; the webhook lookup finds it by id alone.
        let (t2, _, _) = tenant(&s).await;
        assert!(s.integration(&t2, &row.id).await.unwrap().is_none());
        assert!(s.list_integrations(Some(&t2)).await.unwrap().is_empty());
        assert_eq!(
            s.integration_by_id(&row.id)
                .await
                .unwrap()
                .unwrap()
                .tenant_id,
            t
        );
        let listed = s.list_integrations(Some(&t)).await.unwrap();
        assert_eq!(listed.len(), 1);

        s.set_integration_allow(&t, &row.id, &["*".to_string()])
            .await
            .unwrap();
        assert_eq!(
            s.integration(&t, &row.id).await.unwrap().unwrap().allow,
            vec!["*".to_string()]
        );
        assert!(!s.delete_integration(&t2, &row.id).await.unwrap());
        assert!(s.delete_integration(&t, &row.id).await.unwrap());
        assert!(s.integration_by_id(&row.id).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_delivery_queues_one_turn_on_its_conversations_session() {
    for (_dir, s) in stores().await {
        let (t, agent, env) = tenant(&s).await;
        let row = s
            .create_integration(
                &t,
                &NewIntegration {
                    kind: "github".into(),
                    agent_id: agent.clone(),
                    environment_id: env.clone(),
                    api_base: "http://127.0.0.1:9".into(),
                    allow: vec!["acme/*".into()],
                    app_handle: Some("oma-bot".into()),
                    secret: SECRET.into(),
                    token: Some(TOKEN.into()),
                    oauth: None,
                },
                &sealer(),
            )
            .await
            .unwrap();
        let target = json!({"repo": "acme/web", "number": 7, "scope": ["acme/web"]});
        // No session yet for the conversation: the caller must make one. The delivery is not
        // recorded (the transaction rolled back), so the call can be made again.
        let r = TurnRequest {
            integration_id: &row.id,
            delivery_id: "d-1",
            conversation: "acme/web#7",
            new_session: None,
            target: &target,
            message: message("@oma-bot hi"),
        };
        assert_eq!(
            s.dispatch_integration_turn(&t, r).await.unwrap(),
            TurnOutcome::NeedsSession
        );
        assert!(
            !s.integration_delivery_seen(&t, &row.id, "d-1")
                .await
                .unwrap()
        );

        let sid = new_session(&s, &t, &agent, &env).await;
        let first = message("@oma-bot hi");
        let first_id = first.id.clone();
        let got = s
            .dispatch_integration_turn(
                &t,
                TurnRequest {
                    integration_id: &row.id,
                    delivery_id: "d-1",
                    conversation: "acme/web#7",
                    new_session: Some(&sid),
                    target: &target,
                    message: first,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            got,
            TurnOutcome::Queued {
                session_id: sid.clone(),
                created: true
            }
        );
        assert!(
            s.integration_delivery_seen(&t, &row.id, "d-1")
                .await
                .unwrap()
        );
        assert_eq!(
            s.integration_conversation(&t, &row.id, "acme/web#7")
                .await
                .unwrap()
                .as_deref(),
            Some(sid.as_str())
        );

        // The same delivery again (a retry): nothing more is queued.
        let other = new_session(&s, &t, &agent, &env).await;
        let again = s
            .dispatch_integration_turn(
                &t,
                TurnRequest {
                    integration_id: &row.id,
                    delivery_id: "d-1",
                    conversation: "acme/web#7",
                    new_session: Some(&other),
                    target: &target,
                    message: message("@oma-bot hi"),
                },
            )
            .await
            .unwrap();
        assert_eq!(again, TurnOutcome::Duplicate);
        assert_eq!(s.pending_inputs(&t, &sid).await.unwrap().len(), 1);
        assert!(s.pending_inputs(&t, &other).await.unwrap().is_empty());

        // A new delivery in the same conversation continues its session, even when a
        // caller raced and made another one.
        let next = s
            .dispatch_integration_turn(
                &t,
                TurnRequest {
                    integration_id: &row.id,
                    delivery_id: "d-2",
                    conversation: "acme/web#7",
                    new_session: Some(&other),
                    target: &target,
                    message: message("and then?"),
                },
            )
            .await
            .unwrap();
        assert_eq!(
            next,
            TurnOutcome::Queued {
                session_id: sid.clone(),
                created: false
            }
        );
        assert_eq!(s.pending_inputs(&t, &sid).await.unwrap().len(), 2);

        // Two replies owed, each claimed once.
        let owed: Vec<_> = s
            .pending_integration_replies()
            .await
            .unwrap()
            .into_iter()
            .filter(|p| p.tenant_id == t)
            .collect();
        assert_eq!(owed.len(), 2);
        assert_eq!(owed[0].event_id, first_id);
        assert_eq!(owed[0].target, target);
        assert!(s.settle_integration_reply(&t, &first_id).await.unwrap());
        assert!(!s.settle_integration_reply(&t, &first_id).await.unwrap());

        // Ignored deliveries are recorded once too.
        assert!(
            s.record_integration_delivery(&t, &row.id, "d-3")
                .await
                .unwrap()
        );
        assert!(
            !s.record_integration_delivery(&t, &row.id, "d-3")
                .await
                .unwrap()
        );

        // Pruning forgets only deliveries older than its cut-off.
        s.prune_integration_deliveries(0).await.unwrap();
        assert!(
            s.integration_delivery_seen(&t, &row.id, "d-3")
                .await
                .unwrap()
        );

        // Removing the integration removes what it owned, not the session.
        assert!(s.delete_integration(&t, &row.id).await.unwrap());
        assert!(
            s.pending_integration_replies()
                .await
                .unwrap()
                .iter()
                .all(|p| p.tenant_id != t)
        );
        assert!(
            !s.integration_delivery_seen(&t, &row.id, "d-1")
                .await
                .unwrap()
        );
        s.get_session(&t, &sid).await.unwrap();
    }
}
