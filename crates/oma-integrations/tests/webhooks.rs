//! Webhook deliveries against the integrations alone (a store on each backend and a recording
//! runtime driver, no model): forged, wrong-secret, stale and replayed deliveries are refused
//! with a 401 envelope that names the integration and the secret to check (never the secret)
//! and run nothing; a duplicate delivery queues one turn; a capability gate refuses a
//! conversation outside its scope; every delivery is an `integration_dispatch` ops event.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use common::*;
use oma_core::seal::{Sealer, generate_root_secret};
use oma_integrations::{Integrations, SessionDriver};
use oma_ops::OpsEvent;
use oma_store::integrations::{IntegrationRow, NewIntegration};
use oma_store::{Store, TenantRouter};
use serde_json::{Value, json};

const SLACK_SECRET: &str = "slack-signing-secret-needle-1";
const GITHUB_SECRET: &str = "github-webhook-secret-needle-2";
const LINEAR_SECRET: &str = "linear-webhook-secret-needle-3";

#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
    ops: Mutex<Vec<OpsEvent>>,
}

struct Driver(Arc<Recorder>);

impl SessionDriver for Driver {
    fn session_created(
        &self,
        _tenant: &str,
        session_id: &str,
        _events: Vec<oma_store::events::StoredEvent>,
    ) {
        self.0
            .calls
            .lock()
            .unwrap()
            .push(format!("created {session_id}"));
    }
    fn wake(&self, _tenant: &str, session_id: &str) {
        self.0
            .calls
            .lock()
            .unwrap()
            .push(format!("wake {session_id}"));
    }
    fn changed(&self, _t: &str, _s: &str) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(std::future::pending())
    }
    fn record(&self, event: OpsEvent) {
        self.0.ops.lock().unwrap().push(event);
    }
}

struct Setup {
    store: Store,
    _dir: Option<tempfile::TempDir>,
    tenant: String,
    base: String,
    http: reqwest::Client,
    rec: Arc<Recorder>,
    slack: IntegrationRow,
    github: IntegrationRow,
    linear: IntegrationRow,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Setup {
    fn url(&self, row: &IntegrationRow) -> String {
        format!("{}{}", self.base, oma_integrations::webhook_path(&row.id))
    }

    fn calls(&self) -> Vec<String> {
        self.rec.calls.lock().unwrap().clone()
    }

    fn outcomes(&self, id: &str) -> Vec<String> {
        self.rec
            .ops
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.kind == "integration_dispatch" && e.fields["integration_id"] == id)
            .map(|e| e.outcome.clone())
            .collect()
    }

    async fn sessions(&self) -> usize {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE tenant_id = $1")
            .bind(&self.tenant)
            .fetch_one(self.store.reader())
            .await
            .unwrap();
        n as usize
    }
}

async fn setup(backend: oma_testkit::Backend) -> Setup {
    let (store, dir) = oma_testkit::store(backend).await.unwrap();
    let (tenant, agent, env) = oma_testkit::tenant_with_agent(&store, "intg")
        .await
        .unwrap();
    let sealer = Sealer::from_base64(&generate_root_secret()).unwrap();
    let add = |kind: &str, secret: &str, allow: &str, handle: Option<&str>| NewIntegration {
        kind: kind.into(),
        agent_id: agent.clone(),
        environment_id: env.clone(),
        api_base: "http://127.0.0.1:9".into(),
        allow: vec![allow.into()],
        app_handle: handle.map(str::to_string),
        secret: secret.into(),
        token: Some("xoxb-1".into()),
        oauth: None,
    };
    let slack = store
        .create_integration(&tenant, &add("slack", SLACK_SECRET, "C0OK", None), &sealer)
        .await
        .unwrap();
    let github = store
        .create_integration(
            &tenant,
            &add("github", GITHUB_SECRET, "acme/*", Some("oma-bot")),
            &sealer,
        )
        .await
        .unwrap();
    let linear = store
        .create_integration(&tenant, &add("linear", LINEAR_SECRET, "ENG", None), &sealer)
        .await
        .unwrap();
    let rec = Arc::new(Recorder::default());
    let integrations = Integrations::new(
        TenantRouter::single(store.clone()),
        Arc::new(sealer),
        Arc::new(Driver(rec.clone())),
    );
    let app = oma_integrations::routes::<Arc<Integrations>>().with_state(integrations);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Setup {
        store,
        _dir: dir,
        tenant,
        base,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        rec,
        slack,
        github,
        linear,
        task,
    }
}

/// A 401 in the error envelope that names the integration and the secret, never the secret.
fn assert_refused(
    status: u16,
    body: &Value,
    row: &IntegrationRow,
    secret_name: &str,
    secrets: &[&str],
) {
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains(&row.id), "{msg}");
    assert!(msg.contains(secret_name), "{msg}");
    assert!(
        msg.contains(&format!("oma integrations add {}", row.kind)),
        "{msg}"
    );
    for s in secrets {
        assert!(!body.to_string().contains(s), "the secret leaked: {body}");
    }
}

#[tokio::test]
async fn slack_forged_wrong_secret_stale_and_replayed_deliveries_are_refused() {
    for backend in oma_testkit::backends() {
        let s = setup(backend).await;
        let url = s.url(&s.slack);
        let all = [SLACK_SECRET, GITHUB_SECRET, LINEAR_SECRET];
        let body = slack_mention("Ev0FORGED", "C0OK", "1700000000.000100", None);
        let now = now_secs();

        // Forged: the body was changed after signing.
        let headers = slack_headers(SLACK_SECRET, now, &body);
        let mut forged = body.clone();
        let at = forged.len() - 3;
        forged[at] = b'X';
        let (st, b) = deliver(&s.http, &url, &headers, &forged).await;
        assert_refused(st, &b, &s.slack, "signing secret", &all);
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("signature does not match")
        );

        // Signed with another secret.
        let (st, b) = deliver(
            &s.http,
            &url,
            &slack_headers("not-the-secret", now, &body),
            &body,
        )
        .await;
        assert_refused(st, &b, &s.slack, "signing secret", &all);

        // Stale: correctly signed, six minutes old.
        let (st, b) = deliver(
            &s.http,
            &url,
            &slack_headers(SLACK_SECRET, now - 360, &body),
            &body,
        )
        .await;
        assert_refused(st, &b, &s.slack, "signing secret", &all);
        assert!(
            b["error"]["message"].as_str().unwrap().contains("stale"),
            "{b}"
        );

        // A replay: a request captured an hour ago, sent again byte for byte.
        let captured = slack_headers(SLACK_SECRET, now - 3600, &body);
        let (st, b) = deliver(&s.http, &url, &captured, &body).await;
        assert_refused(st, &b, &s.slack, "signing secret", &all);

        // No signature at all.
        let (st, b) = deliver(
            &s.http,
            &url,
            &[("content-type", "application/json".into())],
            &body,
        )
        .await;
        assert_refused(st, &b, &s.slack, "signing secret", &all);

        // The challenge is answered only when signed.
        let challenge = serde_json::to_vec(&json!({"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"})).unwrap();
        let (st, _) = deliver(
            &s.http,
            &url,
            &slack_headers("wrong", now, &challenge),
            &challenge,
        )
        .await;
        assert_eq!(st, 401);
        let (st, b) = deliver(
            &s.http,
            &url,
            &slack_headers(SLACK_SECRET, now, &challenge),
            &challenge,
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(
            b["challenge"],
            "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
        );

        // Nothing ran.
        assert!(s.calls().is_empty(), "{:?}", s.calls());
        assert_eq!(s.sessions().await, 0);
        assert_eq!(
            s.outcomes(&s.slack.id),
            [
                "forged", "forged", "stale", "stale", "forged", "forged", "ok"
            ]
        );
        let ops = s.rec.ops.lock().unwrap().clone();
        assert!(
            ops.iter()
                .all(|e| e.tenant_id.as_deref() == Some(s.tenant.as_str()))
        );
        assert!(!format!("{ops:?}").contains(SLACK_SECRET));
    }
}

#[tokio::test]
async fn github_and_linear_forged_wrong_secret_and_stale_deliveries_are_refused() {
    for backend in oma_testkit::backends() {
        let s = setup(backend).await;
        let all = [SLACK_SECRET, GITHUB_SECRET, LINEAR_SECRET];

        let gh = s.url(&s.github);
        let body = github_comment("acme/web", 7, "@oma-bot look");
        let headers = github_headers(GITHUB_SECRET, "issue_comment", "d-forged", &body);
        let forged = github_comment("acme/web", 7, "@oma-bot rm -rf");
        let (st, b) = deliver(&s.http, &gh, &headers, &forged).await;
        assert_refused(st, &b, &s.github, "webhook secret", &all);
        let (st, b) = deliver(
            &s.http,
            &gh,
            &github_headers("nope", "issue_comment", "d-1", &body),
            &body,
        )
        .await;
        assert_refused(st, &b, &s.github, "webhook secret", &all);
        // The sha1 header alone is not accepted.
        let (st, b) = deliver(
            &s.http,
            &gh,
            &[
                ("x-github-event", "issue_comment".into()),
                ("x-github-delivery", "d-2".into()),
                ("x-hub-signature", "sha1=0000".into()),
            ],
            &body,
        )
        .await;
        assert_refused(st, &b, &s.github, "webhook secret", &all);

        let ln = s.url(&s.linear);
        let now_ms = now_secs() * 1000;
        let body = linear_session_event("created", "as-1", "ENG", "fix it", now_ms);
        let mut forged = body.clone();
        let at = forged.len() - 2;
        forged[at] = b' ';
        let (st, b) = deliver(
            &s.http,
            &ln,
            &linear_headers(LINEAR_SECRET, "ld-1", &body),
            &forged,
        )
        .await;
        assert_refused(st, &b, &s.linear, "webhook signing secret", &all);
        let (st, b) = deliver(&s.http, &ln, &linear_headers("nope", "ld-1", &body), &body).await;
        assert_refused(st, &b, &s.linear, "webhook signing secret", &all);
        let stale =
            linear_session_event("created", "as-1", "ENG", "fix it", now_ms - 5 * 60 * 1000);
        let (st, b) = deliver(
            &s.http,
            &ln,
            &linear_headers(LINEAR_SECRET, "ld-2", &stale),
            &stale,
        )
        .await;
        assert_refused(st, &b, &s.linear, "webhook signing secret", &all);
        assert!(
            b["error"]["message"].as_str().unwrap().contains("stale"),
            "{b}"
        );

        assert!(s.calls().is_empty());
        assert_eq!(s.sessions().await, 0);
        assert_eq!(s.outcomes(&s.github.id), ["forged", "forged", "forged"]);
        assert_eq!(s.outcomes(&s.linear.id), ["forged", "forged", "stale"]);

        // An unknown integration is a 404 envelope.
        let (st, b) = deliver(
            &s.http,
            &format!("{}/v1/integrations/intg_nope/webhook", s.base),
            &[],
            b"{}",
        )
        .await;
        assert_eq!(st, 404);
        assert_eq!(b["error"]["type"], "not_found_error");
    }
}

#[tokio::test]
async fn a_duplicate_delivery_queues_one_turn() {
    for backend in oma_testkit::backends() {
        let s = setup(backend).await;
        let now = now_secs();

        // Slack retries a delivery with the same event_id (and X-Slack-Retry-Num).
        let url = s.url(&s.slack);
        let body = slack_mention("Ev0DUP", "C0OK", "1700000000.000100", None);
        let (st, first) = deliver(
            &s.http,
            &url,
            &slack_headers(SLACK_SECRET, now, &body),
            &body,
        )
        .await;
        assert_eq!(st, 200, "{first}");
        let sid = first["session_id"].as_str().unwrap().to_string();
        let mut retry = slack_headers(SLACK_SECRET, now + 1, &body);
        retry.push(("x-slack-retry-num", "1".into()));
        retry.push(("x-slack-retry-reason", "http_timeout".into()));
        let (st, again) = deliver(&s.http, &url, &retry, &body).await;
        assert_eq!(st, 200);
        assert_eq!(again["duplicate"], true, "{again}");
        assert_eq!(
            s.store.pending_inputs(&s.tenant, &sid).await.unwrap().len(),
            1
        );

        // A new message in the same thread continues the same session.
        let reply = slack_mention(
            "Ev0NEXT",
            "C0OK",
            "1700000000.000900",
            Some("1700000000.000100"),
        );
        let (st, next) = deliver(
            &s.http,
            &url,
            &slack_headers(SLACK_SECRET, now, &reply),
            &reply,
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(next["session_id"], sid.as_str());
        assert_eq!(
            s.store.pending_inputs(&s.tenant, &sid).await.unwrap().len(),
            2
        );

        // GitHub redelivers with the same X-GitHub-Delivery.
        let gh = s.url(&s.github);
        let body = github_comment("acme/web", 7, "@oma-bot look");
        let h = github_headers(
            GITHUB_SECRET,
            "issue_comment",
            "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            &body,
        );
        let (st, first) = deliver(&s.http, &gh, &h, &body).await;
        assert_eq!(st, 200, "{first}");
        let (st, again) = deliver(&s.http, &gh, &h, &body).await;
        assert_eq!((st, &again["duplicate"]), (200, &json!(true)));
        let gsid = first["session_id"].as_str().unwrap();
        assert_eq!(
            s.store.pending_inputs(&s.tenant, gsid).await.unwrap().len(),
            1
        );

        // Linear retries with the same Linear-Delivery.
        let ln = s.url(&s.linear);
        let body = linear_session_event("created", "as-9", "ENG", "fix it", now * 1000);
        let h = linear_headers(LINEAR_SECRET, "ld-dup", &body);
        let (st, first) = deliver(&s.http, &ln, &h, &body).await;
        assert_eq!(st, 200, "{first}");
        let (st, again) = deliver(&s.http, &ln, &h, &body).await;
        assert_eq!((st, &again["duplicate"]), (200, &json!(true)));
        let lsid = first["session_id"].as_str().unwrap();
        assert_eq!(
            s.store.pending_inputs(&s.tenant, lsid).await.unwrap().len(),
            1
        );

        // Three sessions, each created once; the thread's follow-up only woke its session.
        assert_eq!(s.sessions().await, 3);
        let calls = s.calls();
        assert_eq!(
            calls.iter().filter(|c| c.starts_with("created")).count(),
            3,
            "{calls:?}"
        );
        assert_eq!(
            calls.iter().filter(|c| c.starts_with("wake")).count(),
            1,
            "{calls:?}"
        );
        assert_eq!(s.outcomes(&s.slack.id), ["ok", "duplicate", "ok"]);
        assert_eq!(s.outcomes(&s.github.id), ["ok", "duplicate"]);
        assert_eq!(s.outcomes(&s.linear.id), ["ok", "duplicate"]);
    }
}

#[tokio::test]
async fn concurrent_copies_of_a_delivery_queue_one_turn() {
    for backend in oma_testkit::backends() {
        let s = setup(backend).await;
        let url = s.url(&s.slack);
        let body = slack_mention("Ev0RACE", "C0OK", "1700000000.000500", None);
        let headers = slack_headers(SLACK_SECRET, now_secs(), &body);
        let sends = (0..4).map(|_| deliver(&s.http, &url, &headers, &body));
        let answers = futures_join(sends).await;
        let sessions: Vec<&str> = answers
            .iter()
            .filter_map(|(_, b)| b["session_id"].as_str())
            .collect();
        assert_eq!(sessions.len(), 1, "{answers:?}");
        assert!(answers.iter().all(|(st, _)| *st == 200), "{answers:?}");
        assert_eq!(
            s.store
                .pending_inputs(&s.tenant, sessions[0])
                .await
                .unwrap()
                .len(),
            1
        );
        // Sessions a losing copy made are discarded.
        assert_eq!(s.sessions().await, 1);
    }
}

async fn futures_join<F: Future<Output = (u16, Value)>>(
    fs: impl Iterator<Item = F>,
) -> Vec<(u16, Value)> {
    let handles: Vec<_> = fs.collect();
    let mut out = Vec::new();
    // Polled together: each copy is in flight while the others are.
    let mut pinned: Vec<Pin<Box<F>>> = handles.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<(u16, Value)>> = vec![None; pinned.len()];
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, f) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(done.into_iter().flatten());
    out
}

#[tokio::test]
async fn a_capability_gate_refuses_a_conversation_outside_its_scope() {
    for backend in oma_testkit::backends() {
        let s = setup(backend).await;
        let now = now_secs();
        let body = slack_mention("Ev0GATE", "C0SECRET", "1700000000.000100", None);
        let (st, b) = deliver(
            &s.http,
            &s.url(&s.slack),
            &slack_headers(SLACK_SECRET, now, &body),
            &body,
        )
        .await;
        assert_eq!(st, 200, "{b}");
        assert!(b["refused"].as_str().unwrap().contains("C0SECRET"), "{b}");
        let body = github_comment("evil/repo", 1, "@oma-bot hi");
        let (st, b) = deliver(
            &s.http,
            &s.url(&s.github),
            &github_headers(GITHUB_SECRET, "issue_comment", "d-gate", &body),
            &body,
        )
        .await;
        assert_eq!(st, 200);
        assert!(b["refused"].is_string(), "{b}");
        let body = linear_session_event("created", "as-gate", "OPS", "x", now * 1000);
        let (st, b) = deliver(
            &s.http,
            &s.url(&s.linear),
            &linear_headers(LINEAR_SECRET, "ld-gate", &body),
            &body,
        )
        .await;
        assert_eq!(st, 200);
        assert!(b["refused"].is_string(), "{b}");
        assert!(s.calls().is_empty());
        assert_eq!(s.sessions().await, 0);
        assert_eq!(s.outcomes(&s.slack.id), ["denied"]);
        assert_eq!(s.outcomes(&s.github.id), ["denied"]);
        assert_eq!(s.outcomes(&s.linear.id), ["denied"]);
        // A comment that does not mention the app, and the bot's own comment, are ignored.
        let body = github_comment("acme/web", 2, "no mention here");
        let (st, b) = deliver(
            &s.http,
            &s.url(&s.github),
            &github_headers(GITHUB_SECRET, "issue_comment", "d-quiet", &body),
            &body,
        )
        .await;
        assert_eq!(
            (st, b["ignored"].as_str()),
            (200, Some("issue_comment.not_mentioned"))
        );
        assert_eq!(s.sessions().await, 0);
    }
}
