//! `github_repository` tokens through the session proxy: a local HTTPS "github.com" reached
//! through the operator's `connect_to` override, sessions with repository resources in real
//! stores on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::Engine as _;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use oma_core::agents::{AgentConfig, CreateAgentParams};
use oma_core::sessions::{CreateSession, CreateSessionParams};
use oma_egress::{ConnectTo, DeploymentCa, Egress, EgressConfig, SessionEgress, SessionProxy};
use oma_store::Store;
use serde_json::{Value, json};
use support::*;

fn basic(token: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
    format!("Basic {b64}")
}

/// A session of `tenant` with `resources`; returns its id and the resources' ids.
async fn session(
    store: &Store,
    sealer: &oma_core::seal::Sealer,
    tenant: &str,
    resources: Value,
) -> (String, Vec<String>) {
    let p: CreateAgentParams =
        serde_json::from_value(json!({"name": "a", "model": "claude-opus-4-8"})).unwrap();
    let agent: Value = serde_json::from_str(
        &store
            .create_agent(tenant, &AgentConfig::create(p).unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    let env_spec = oma_core::environments::EnvironmentSpec::create(
        serde_json::from_value(json!({"name": "e", "config": {"type": "cloud"}})).unwrap(),
    )
    .unwrap();
    let env: Value =
        serde_json::from_str(&store.create_environment(tenant, &env_spec).await.unwrap()).unwrap();
    let p: CreateSessionParams = serde_json::from_value(json!({
        "agent": agent["id"], "environment_id": env["id"], "resources": resources,
    }))
    .unwrap();
    let (sid, body, _) = store
        .create_session(tenant, CreateSession::parse(p).unwrap(), sealer)
        .await
        .unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    let ids = body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    (sid, ids)
}

/// An egress whose `github.com` is the local upstream on `port` (signed by `ca`).
fn egress_to(ca: &TestCa, port: u16, deny: &[&str]) -> Egress {
    Egress::new(EgressConfig {
        ca: DeploymentCa::ephemeral().unwrap(),
        upstream_roots: vec![ca.pem.as_bytes().to_vec()],
        allow: Vec::new(),
        deny: deny.iter().map(|d| d.to_string()).collect(),
        connect_to: vec![ConnectTo::parse("github.com", &format!("127.0.0.1:{port}")).unwrap()],
        ops: None,
    })
    .unwrap()
}

async fn open_for(
    egress: &Egress,
    dir: &std::path::Path,
    store: &Store,
    sealer: &std::sync::Arc<oma_core::seal::Sealer>,
    tenant: &str,
    sid: &str,
    networking: Value,
) -> SessionProxy {
    egress
        .open_session(SessionEgress {
            tenant: tenant.to_string(),
            session_id: sid.to_string(),
            socket_path: dir.join("egress.sock"),
            store: store.clone(),
            sealer: sealer.clone(),
            vault_ids: Vec::new(),
            networking,
            mcp_server_urls: Vec::new(),
        })
        .await
        .unwrap()
}

fn req(path: &str, auth: Option<&str>) -> Request<Full<Bytes>> {
    let mut b = get(path, "github.com");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test]
async fn a_repository_token_goes_to_its_repository_only_and_never_back_to_the_box() {
    deadline(async {
        for (_db, store) in stores().await {
            let ca = TestCa::new();
            let up = Upstream::start(Some(ca.server_config_for(&["github.com"]))).await;
            let (t, s) = (tenant(), sealer());
            let token = "ghs_widgets_token_31337";
            let (sid, _) = session(
                &store,
                &s,
                &t,
                json!([
                    {"type": "github_repository", "url": "https://github.com/acme/widgets", "authorization_token": token},
                    {"type": "github_repository", "url": "https://github.com/acme/gears"}
                ]),
            )
            .await;
            let egress = egress_to(&ca, up.port, &[]);
            let dir = tempfile::tempdir().unwrap();
            // `limited` without github.com: the operator's override opens it (like `allow`),
            // also to its private address.
            let networking = json!({"type": "limited", "allowed_hosts": []});
            let proxy = open_for(&egress, dir.path(), &store, &s, &t, &sid, networking).await;
            let client = BoxClient::new(&proxy);
            let mut tls = client.tunnel("github.com:443", "github.com").await.unwrap();

            let cases = [
                // (path, what the box sends, what the upstream must get)
                (
                    "/acme/widgets/info/refs?service=git-upload-pack",
                    Some("Basic from-the-box"),
                    Some(basic(token)),
                ),
                ("/acme/widgets.git/git-upload-pack", None, Some(basic(token))),
                ("/ACME/Widgets/info/refs", None, Some(basic(token))),
                // A repository of the session without a token: the box's own header passes.
                (
                    "/acme/gears/info/refs",
                    Some("Basic box-own"),
                    Some("Basic box-own".to_string()),
                ),
                // Other repositories and the rest of the host never see the token.
                ("/acme/widgets-fork/info/refs", None, None),
                ("/acme/other/info/refs", None, None),
                ("/", None, None),
            ];
            for (path, sent, want) in &cases {
                let a = send(&mut tls, req(path, *sent)).await;
                assert_eq!(a.status, 200, "{path}: {a:?}");
                let b64 = basic(token).trim_start_matches("Basic ").to_string();
                assert!(!a.everything().contains(token), "{path}: {a:?}");
                assert!(!a.everything().contains(&b64), "{path}: {a:?}");
                let seen = up.state.seen().pop().unwrap();
                assert_eq!(seen.header("authorization"), want.clone(), "{path}");
                // The name is kept for the upstream (TLS was checked for it, too).
                assert_eq!(seen.header("host").as_deref(), Some("github.com"));
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_rotated_token_is_used_at_once_when_the_old_one_is_refused() {
    deadline(async {
        for (_db, store) in stores().await {
            let ca = TestCa::new();
            let up = Upstream::start(Some(ca.server_config_for(&["github.com"]))).await;
            let (t, s) = (tenant(), sealer());
            let (sid, ids) = session(
                &store,
                &s,
                &t,
                json!([{"type": "github_repository", "url": "https://github.com/acme/private",
                        "authorization_token": "ghs_old_token_1"}]),
            )
            .await;
            up.state.accept("ghs_old_token_1");
            let egress = egress_to(&ca, up.port, &[]);
            let dir = tempfile::tempdir().unwrap();
            let proxy = open_for(&egress, dir.path(), &store, &s, &t, &sid, Value::Null).await;
            let client = BoxClient::new(&proxy);
            let mut tls = client.tunnel("github.com:443", "github.com").await.unwrap();
            let path = "/acme/private/info/refs?service=git-upload-pack";
            assert_eq!(send(&mut tls, req(path, None)).await.status, 200);

            // The host revokes the old token; the session's resource gets a new one.
            up.state.accepted.lock().unwrap().clear();
            up.state.accept("ghs_new_token_2");
            store
                .rotate_session_resource_token(&t, &sid, &ids[0], "ghs_new_token_2", &s)
                .await
                .unwrap();
            // Within the rules' lifetime: the refusal makes the proxy read them again.
            let a = send(&mut tls, req(path, None)).await;
            assert_eq!(a.status, 200, "{a:?}");
            let auths: Vec<Option<String>> = up
                .state
                .seen()
                .iter()
                .map(|r| r.header("authorization"))
                .collect();
            assert_eq!(
                auths,
                [
                    Some(basic("ghs_old_token_1")),
                    Some(basic("ghs_old_token_1")),
                    Some(basic("ghs_new_token_2"))
                ]
            );
            // A refusal with the current token is the host's answer, passed on (not retried).
            up.state.accepted.lock().unwrap().clear();
            let a = send(&mut tls, req(path, None)).await;
            assert_eq!(a.status, 401);
            assert_eq!(up.state.seen().len(), 4);
        }
    })
    .await;
}

#[tokio::test]
async fn the_operators_deny_list_beats_an_override() {
    deadline(async {
        let (_db, store) = stores().await.remove(0);
        let ca = TestCa::new();
        let up = Upstream::start(Some(ca.server_config_for(&["github.com"]))).await;
        let (t, s) = (tenant(), sealer());
        let (sid, _) = session(
            &store,
            &s,
            &t,
            json!([{"type": "github_repository", "url": "https://github.com/acme/widgets",
                    "authorization_token": "ghs_x_token"}]),
        )
        .await;
        let egress = egress_to(&ca, up.port, &["github.com"]);
        let dir = tempfile::tempdir().unwrap();
        let proxy = open_for(&egress, dir.path(), &store, &s, &t, &sid, Value::Null).await;
        let refused = BoxClient::new(&proxy)
            .tunnel("github.com:443", "github.com")
            .await
            .err()
            .unwrap();
        assert_eq!(refused.status, 403);
        assert!(up.state.seen().is_empty());
    })
    .await;
}
