//! The session proxy end to end: local HTTPS upstreams with their own CA, a client that talks
//! to the proxy through its Unix socket, real stores on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use oma_store::ops_events::{OpsFilter, OpsPage};
use serde_json::{Value, json};
use support::*;

fn limited(hosts: &[&str]) -> Value {
    json!({"type": "limited", "allowed_hosts": hosts, "allow_mcp_servers": false,
        "allow_package_managers": false})
}

#[tokio::test]
async fn a_static_bearer_reaches_the_upstream_and_never_the_box() {
    deadline(async {
        for (_dir, store) in stores().await {
            let ca = TestCa::new();
            let up = Upstream::start(Some(ca.server_config())).await;
            let (t, s) = (tenant(), sealer());
            let v = vault(&store, &t).await;
            let cred = credential(
                &store,
                &s,
                &t,
                &v,
                json!({"type": "static_bearer",
                "mcp_server_url": format!("https://localhost:{}/mcp", up.port),
                "token": "injected-secret-7781"}),
            )
            .await;
            let ops = oma_ops::OpsRecorder::start(store.clone(), Default::default());
            let egress = egress(&ca, &["localhost", "127.0.0.1"], Some(ops.clone()));
            let dir = tempfile::tempdir().unwrap();
            let proxy = open(
                &egress,
                dir.path(),
                SessionSpec {
                    store: &store,
                    sealer: &s,
                    tenant: &t,
                    vaults: vec![v.clone()],
                    networking: limited(&["localhost"]),
                },
            )
            .await;
            assert!(
                format!("{:?}", proxy.env).len() < 10,
                "no env credentials here"
            );
            let client = BoxClient::new(&proxy);
            let authority = format!("localhost:{}", up.port);
            let mut tls = client.tunnel(&authority, "localhost").await.unwrap();

            // Inbound credential headers are stripped; the injected token arrives upstream.
            for _ in 0..2 {
                let req = get("/echo", &authority)
                    .header("authorization", "Bearer from-the-box")
                    .header("x-api-key", "box-key")
                    .header("x-goog-api-key", "box-goog")
                    .header("accept-encoding", "gzip, br")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let a = send(&mut tls, req).await;
                assert_eq!(a.status, 200, "{a:?}");
                assert!(!a.everything().contains("injected-secret-7781"), "{a:?}");
                assert_eq!(a.headers["x-echo-auth"], "Bearer [redacted]");
                assert!(a.body.contains("auth=Bearer ********************"), "{a:?}");
            }
            let seen = up.state.seen();
            assert_eq!(seen.len(), 2);
            for req in &seen {
                assert_eq!(
                    req.header("authorization").as_deref(),
                    Some("Bearer injected-secret-7781")
                );
                assert_eq!(req.header("x-api-key"), None);
                assert_eq!(req.header("x-goog-api-key"), None);
                // Asked uncompressed, so that the answer can be scrubbed.
                assert_eq!(req.header("accept-encoding"), None);
                assert_eq!(req.header("host").as_deref(), Some(authority.as_str()));
            }

            // The box's own files never hold the token: the bundle is certificates only.
            let bundle = std::fs::read_to_string(&proxy.ca_bundle_path).unwrap();
            assert!(bundle.contains(egress.ca().cert_pem().trim()));
            assert!(!bundle.contains("injected-secret"));

            // Every forward is an operational event naming the credential, never the secret.
            ops.flush().await;
            let (events, _) = store
                .query_ops_events(
                    &OpsFilter {
                        kinds: vec!["egress_forward".into()],
                        tenant: Some(t.clone()),
                        ..Default::default()
                    },
                    &OpsPage {
                        limit: 10,
                        after: None,
                    },
                )
                .await
                .unwrap();
            assert_eq!(events.len(), 2);
            assert_eq!(events[0].fields["credential_id"], json!(cred));
            assert_eq!(events[0].fields["status"], json!(200));
            assert!(
                !serde_json::to_string(&events)
                    .unwrap()
                    .contains("injected-secret")
            );

            // A proxy reopened at the same path takes over; dropping the old one leaves the new
            // one's files alone, and dropping that removes the socket and the bundle.
            let (sock, bundle) = (proxy.socket_path.clone(), proxy.ca_bundle_path.clone());
            let again = egress
                .open_session(oma_egress::SessionEgress {
                    tenant: t.clone(),
                    session_id: "sesn_again".into(),
                    socket_path: sock.clone(),
                    store: store.clone(),
                    sealer: s.clone(),
                    vault_ids: vec![v.clone()],
                    networking: limited(&["localhost"]),
                    mcp_server_urls: vec![],
                })
                .await
                .unwrap();
            proxy.close();
            assert!(sock.exists() && bundle.exists());
            let mut tls = BoxClient::new(&again)
                .tunnel(&authority, "localhost")
                .await
                .unwrap();
            let a = send(
                &mut tls,
                get("/echo", &authority)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await;
            assert_eq!(a.status, 200);
            drop(again);
            assert!(!sock.exists() && !bundle.exists());
        }
    })
    .await;
}

#[tokio::test]
async fn other_hosts_are_tunnelled_untouched() {
    deadline(async {
        for (_dir, store) in stores().await {
            let ca = TestCa::new();
            let up = Upstream::start(Some(ca.server_config())).await;
            let (t, s) = (tenant(), sealer());
            let v = vault(&store, &t).await;
            credential(
                &store,
                &s,
                &t,
                &v,
                json!({"type": "static_bearer",
                "mcp_server_url": format!("https://localhost:{}/mcp", up.port), "token": "tok-1"}),
            )
            .await;
            let egress = egress(&ca, &["localhost", "127.0.0.1"], None);
            let dir = tempfile::tempdir().unwrap();
            let proxy = open(
                &egress,
                dir.path(),
                SessionSpec {
                    store: &store,
                    sealer: &s,
                    tenant: &t,
                    vaults: vec![v],
                    networking: json!({"type": "unrestricted"}),
                },
            )
            .await;
            // 127.0.0.1 has no injection rule: the box talks TLS with the upstream itself (it
            // trusts only the test CA here, so the deployment CA could not have stood in).
            let client = BoxClient::with_roots(&proxy.socket_path, &[ca.pem.as_bytes().to_vec()]);
            let authority = format!("127.0.0.1:{}", up.port);
            let mut tls = client.tunnel(&authority, "127.0.0.1").await.unwrap();
            let req = get("/echo", &authority)
                .header("authorization", "Bearer the-box-own")
                .body(Full::new(Bytes::new()))
                .unwrap();
            let a = send(&mut tls, req).await;
            assert_eq!(a.status, 200);
            assert_eq!(
                up.state.seen()[0].header("authorization").as_deref(),
                Some("Bearer the-box-own")
            );
            // …while the injected host is intercepted: only the deployment CA's leaf is offered.
            let err = client
                .tunnel(&format!("localhost:{}", up.port), "localhost")
                .await
                .unwrap_err();
            assert!(err.body.contains("TLS failed"), "{err:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn policy_refusals_are_readable_and_recorded() {
    deadline(async {
        let (_dir, store) = stores().await.remove(0);
        let ca = TestCa::new();
        let up = Upstream::start(Some(ca.server_config())).await;
        let plain = Upstream::start(None).await;
        let (t, s) = (tenant(), sealer());
        let ops = oma_ops::OpsRecorder::start(store.clone(), Default::default());
        let dir = tempfile::tempdir().unwrap();

        // limited: only allowed_hosts (and the operator's allow list).
        let egress_a = egress(&ca, &["localhost"], Some(ops.clone()));
        let proxy = open(
            &egress_a,
            dir.path(),
            SessionSpec {
                store: &store,
                sealer: &s,
                tenant: &t,
                vaults: vec![],
                networking: limited(&["api.example.com"]),
            },
        )
        .await;
        let client = BoxClient::new(&proxy);
        let err = client
            .tunnel("example.org:443", "example.org")
            .await
            .unwrap_err();
        assert_eq!(err.status, 403);
        assert_eq!(err.headers["x-proxy-error"], "blocked-by-policy");
        assert!(
            err.body
                .contains("example.org is not in the environment's allowed_hosts"),
            "{err:?}"
        );
        let mut p = client.plain().await;
        let a = send(
            &mut p,
            get("http://example.org/x", "example.org")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, 403);
        // The operator's deny list wins over everything.
        let err = client
            .tunnel("denied.localhost:443", "denied.localhost")
            .await
            .unwrap_err();
        assert!(err.body.contains("deny list"), "{err:?}");
        // Operator-allowed hosts pass, plain HTTP included.
        let a = send(
            &mut p,
            get(&format!("http://localhost:{}/plain", plain.port), "ignored")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(
            plain.state.seen()[0].header("host"),
            Some(format!("localhost:{}", plain.port))
        );

        // unrestricted: anything public, but never a private address unless the operator said so.
        let egress_b = egress(&ca, &[], Some(ops.clone()));
        let proxy_b = open(
            &egress_b,
            dir.path(),
            SessionSpec {
                store: &store,
                sealer: &s,
                tenant: &t,
                vaults: vec![],
                networking: json!({"type": "unrestricted"}),
            },
        )
        .await;
        let client_b = BoxClient::new(&proxy_b);
        for host in ["localhost", "127.0.0.1"] {
            let err = client_b
                .tunnel(&format!("{host}:{}", up.port), host)
                .await
                .unwrap_err();
            assert_eq!(err.status, 403);
            assert_eq!(
                err.headers["x-proxy-error"], "blocked-private-address",
                "{err:?}"
            );
        }

        ops.flush().await;
        let (events, _) = store
            .query_ops_events(
                &OpsFilter {
                    kinds: vec!["egress_denied".into()],
                    tenant: Some(t.clone()),
                    ..Default::default()
                },
                &OpsPage {
                    limit: 20,
                    after: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(events.len(), 5, "{events:?}");
        assert!(
            events
                .iter()
                .all(|e| e.session_id.is_some() && e.outcome == "denied")
        );
    })
    .await;
}

#[tokio::test]
async fn a_host_header_other_than_the_connect_target_is_refused() {
    deadline(async {
        let scene = bearer_scene("tok-host").await;
        let BearerScene { up, proxy, .. } = &scene;
        let client = BoxClient::new(proxy);
        let mut tls = client
            .tunnel(&format!("localhost:{}", up.port), "localhost")
            .await
            .unwrap();
        let a = send(
            &mut tls,
            get("/echo", "evil.example.com")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, 403);
        assert_eq!(a.headers["x-proxy-error"], "host-mismatch");
        assert!(up.state.seen().is_empty());
    })
    .await;
}

#[tokio::test]
async fn environment_variables_are_placeholders_substituted_only_on_their_hosts() {
    deadline(async {
        for (_dir, store) in stores().await {
            let ca = TestCa::new();
            let up = Upstream::start(Some(ca.server_config())).await;
            let (t, s) = (tenant(), sealer());
            let v = vault(&store, &t).await;
            credential(
                &store,
                &s,
                &t,
                &v,
                json!({"type": "environment_variable",
                "secret_name": "GH_TOKEN", "secret_value": "ghp_realsecret123",
                "networking": {"type": "limited", "allowed_hosts": ["localhost"]},
                "injection_location": {"header": true, "body": true}}),
            )
            .await;
            let egress = egress(&ca, &["localhost", "127.0.0.1"], None);
            let dir = tempfile::tempdir().unwrap();
            let proxy = open(
                &egress,
                dir.path(),
                SessionSpec {
                    store: &store,
                    sealer: &s,
                    tenant: &t,
                    vaults: vec![v],
                    networking: json!({"type": "unrestricted"}),
                },
            )
            .await;
            assert_eq!(proxy.env.len(), 1);
            let (name, placeholder) = &proxy.env[0];
            assert_eq!(name, "GH_TOKEN");
            assert!(!placeholder.contains("ghp_realsecret123"));

            let client = BoxClient::new(&proxy);
            let authority = format!("localhost:{}", up.port);
            let mut tls = client.tunnel(&authority, "localhost").await.unwrap();
            let body = format!("{{\"token\": \"{placeholder}\"}}");
            let req = Request::post("/echo")
                .header("host", &authority)
                .header("authorization", format!("token {placeholder}"))
                .header("x-api-key", "not-a-placeholder")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let a = send(&mut tls, req).await;
            assert_eq!(a.status, 200);
            assert!(!a.everything().contains("ghp_realsecret123"), "{a:?}");
            let seen = up.state.seen();
            assert_eq!(
                seen[0].header("authorization").as_deref(),
                Some("token ghp_realsecret123")
            );
            assert_eq!(seen[0].header("x-api-key"), None);
            assert_eq!(seen[0].body, "{\"token\": \"ghp_realsecret123\"}");

            // 127.0.0.1 is not among the credential's hosts: the placeholder goes out as it is.
            let client = BoxClient::with_roots(&proxy.socket_path, &[ca.pem.as_bytes().to_vec()]);
            let authority = format!("127.0.0.1:{}", up.port);
            let mut tls = client.tunnel(&authority, "127.0.0.1").await.unwrap();
            let req = get("/echo", &authority)
                .header("authorization", format!("token {placeholder}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            send(&mut tls, req).await;
            assert_eq!(
                up.state.seen()[1].header("authorization"),
                Some(format!("token {placeholder}"))
            );
        }
    })
    .await;
}

#[tokio::test]
async fn only_the_sessions_tenant_and_attached_vaults_are_used() {
    deadline(async {
        for (_dir, store) in stores().await {
            let ca = TestCa::new();
            let up = Upstream::start(Some(ca.server_config())).await;
            let s = sealer();
            let url = format!("https://localhost:{}/mcp", up.port);
            let (mine, theirs) = (tenant(), tenant());
            let their_vault = vault(&store, &theirs).await;
            credential(&store, &s, &theirs, &their_vault,
                json!({"type": "static_bearer", "mcp_server_url": url, "token": "other-tenant-token"}))
            .await;
            let unattached = vault(&store, &mine).await;
            credential(&store, &s, &mine, &unattached,
                json!({"type": "static_bearer", "mcp_server_url": url, "token": "unattached-token"}))
            .await;
            let attached_empty = vault(&store, &mine).await;

            let egress = egress(&ca, &["localhost"], None);
            let dir = tempfile::tempdir().unwrap();
            // The session names the other tenant's vault id: it is looked up as `mine` and so
            // does not exist for it.
            let proxy = open(&egress, dir.path(), SessionSpec {
                store: &store, sealer: &s, tenant: &mine, vaults: vec![their_vault.clone(), attached_empty],
                networking: limited(&["localhost"]),
            })
            .await;
            // No rule for localhost, so the tunnel is not intercepted and the box sees the
            // upstream's own certificate.
            let client = BoxClient::with_roots(&proxy.socket_path, &[ca.pem.as_bytes().to_vec()]);
            let authority = format!("localhost:{}", up.port);
            let mut tls = client.tunnel(&authority, "localhost").await.unwrap();
            let a = send(&mut tls, get("/mcp", &authority).body(Full::new(Bytes::new())).unwrap()).await;
            assert_eq!(a.status, 401);
            assert_eq!(up.state.seen()[0].header("authorization"), None);
        }
    })
    .await;
}

/// An `mcp_oauth` credential whose access token the upstream no longer accepts.
async fn oauth_setup(
    store: &oma_store::Store,
    s: &oma_core::seal::Sealer,
    t: &str,
    port: u16,
) -> (String, String) {
    let v = vault(store, t).await;
    let id = credential(
        store,
        s,
        t,
        &v,
        json!({"type": "mcp_oauth",
        "mcp_server_url": format!("https://localhost:{port}/mcp"),
        "access_token": "expired-token",
        "refresh": {"client_id": "oma-client", "refresh_token": "rt-0",
            "token_endpoint": format!("https://localhost:{port}/token"),
            "token_endpoint_auth": {"type": "client_secret_post", "client_secret": "cs-1"}}}),
    )
    .await;
    (v, id)
}

#[tokio::test]
async fn a_refused_oauth_token_is_refreshed_stored_and_retried() {
    deadline(async {
        for (_dir, store) in stores().await {
            for refuse in [401u16, 403] {
                let ca = TestCa::new();
                let up = Upstream::start(Some(ca.server_config())).await;
                up.state.refuse_status.store(refuse, Ordering::SeqCst);
                let (t, s) = (tenant(), sealer());
                let (v, id) = oauth_setup(&store, &s, &t, up.port).await;
                let egress = egress(&ca, &["localhost"], None);
                let dir = tempfile::tempdir().unwrap();
                let proxy = open(
                    &egress,
                    dir.path(),
                    SessionSpec {
                        store: &store,
                        sealer: &s,
                        tenant: &t,
                        vaults: vec![v.clone()],
                        networking: limited(&["localhost"]),
                    },
                )
                .await;
                let client = BoxClient::new(&proxy);
                let authority = format!("localhost:{}", up.port);
                let mut tls = client.tunnel(&authority, "localhost").await.unwrap();
                let req = Request::post("/mcp")
                    .header("host", &authority)
                    .body(Full::new(Bytes::from_static(b"{\"jsonrpc\":\"2.0\"}")))
                    .unwrap();
                let a = send(&mut tls, req).await;
                assert_eq!(a.status, 200, "refused with {refuse}: {a:?}");
                assert!(!a.everything().contains("fresh-token"));

                let seen = up.state.seen();
                let paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
                assert_eq!(paths, ["/mcp", "/token", "/mcp"]);
                assert_eq!(
                    seen[0].header("authorization").as_deref(),
                    Some("Bearer expired-token")
                );
                let form: Vec<(String, String)> = form_urlencoded::parse(seen[1].body.as_bytes())
                    .into_owned()
                    .collect();
                assert!(form.contains(&("grant_type".into(), "refresh_token".into())));
                assert!(form.contains(&("refresh_token".into(), "rt-0".into())));
                assert!(form.contains(&("client_secret".into(), "cs-1".into())));
                assert_eq!(
                    seen[2].header("authorization").as_deref(),
                    Some("Bearer fresh-token-1")
                );
                assert_eq!(seen[2].body, "{\"jsonrpc\":\"2.0\"}");

                // The new tokens are stored (sealed), with the new expiry in the public object.
                let stored = store
                    .open_credential_secrets(&t, &v, &id, &s)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(stored.access_token.as_deref(), Some("fresh-token-1"));
                assert_eq!(stored.refresh_token.as_deref(), Some("rt-1"));
                let body: Value =
                    serde_json::from_str(&store.get_credential(&t, &v, &id).await.unwrap())
                        .unwrap();
                assert!(body["auth"]["expires_at"].is_string(), "{body}");

                // The next request uses the stored token directly.
                let req = get("/mcp", &authority)
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                assert_eq!(send(&mut tls, req).await.status, 200);
                assert_eq!(up.state.token_calls.load(Ordering::SeqCst), 1);
            }
        }
    })
    .await;
}

#[tokio::test]
async fn concurrent_refreshes_store_one_token() {
    deadline(async {
        for (_dir, store) in stores().await {
            let ca = TestCa::new();
            let up = Upstream::start(Some(ca.server_config())).await;
            let (t, s) = (tenant(), sealer());
            let (v, id) = oauth_setup(&store, &s, &t, up.port).await;
            let authority = format!("localhost:{}", up.port);
            let dir = tempfile::tempdir().unwrap();

            // Two server nodes (two Egress values over one store): the token endpoint answers
            // only once both refreshes are in flight, so both race to write.
            up.state.gate.store(2, Ordering::SeqCst);
            let nodes = [
                egress(&ca, &["localhost"], None),
                egress(&ca, &["localhost"], None),
            ];
            let mut proxies = Vec::new();
            for node in &nodes {
                proxies.push(
                    open(
                        node,
                        dir.path(),
                        SessionSpec {
                            store: &store,
                            sealer: &s,
                            tenant: &t,
                            vaults: vec![v.clone()],
                            networking: limited(&["localhost"]),
                        },
                    )
                    .await,
                );
            }
            let calls = proxies.iter().map(|p| {
                let client = BoxClient::new(p);
                let authority = authority.clone();
                async move {
                    let mut tls = client.tunnel(&authority, "localhost").await.unwrap();
                    send(
                        &mut tls,
                        get("/mcp", &authority)
                            .body(Full::new(Bytes::new()))
                            .unwrap(),
                    )
                    .await
                }
            });
            let answers = futures_join(calls).await;
            assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
            assert_eq!(up.state.token_calls.load(Ordering::SeqCst), 2);

            let stored = store
                .open_credential_secrets(&t, &v, &id, &s)
                .await
                .unwrap()
                .unwrap();
            let winner = stored.access_token.unwrap();
            assert!(winner == "fresh-token-1" || winner == "fresh-token-2");
            // Both retries carried the one stored token: the loser re-read it.
            let retries: Vec<String> = up
                .state
                .seen()
                .iter()
                .filter(|r| r.path == "/mcp")
                .filter_map(|r| r.header("authorization"))
                .filter(|a| a != "Bearer expired-token")
                .collect();
            assert_eq!(retries, vec![format!("Bearer {winner}"); 2]);

            // Within one node, concurrent refused requests share one refresh.
            let up2 = Upstream::start(Some(ca.server_config())).await;
            let (v2, _) = oauth_setup(&store, &s, &t, up2.port).await;
            let authority2 = format!("localhost:{}", up2.port);
            let proxy = open(
                &nodes[0],
                dir.path(),
                SessionSpec {
                    store: &store,
                    sealer: &s,
                    tenant: &t,
                    vaults: vec![v2],
                    networking: limited(&["localhost"]),
                },
            )
            .await;
            let calls = (0..4).map(|_| {
                let client = BoxClient::new(&proxy);
                let authority = authority2.clone();
                async move {
                    let mut tls = client.tunnel(&authority, "localhost").await.unwrap();
                    send(
                        &mut tls,
                        get("/mcp", &authority)
                            .body(Full::new(Bytes::new()))
                            .unwrap(),
                    )
                    .await
                }
            });
            let answers = futures_join(calls).await;
            assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
            assert_eq!(up2.state.token_calls.load(Ordering::SeqCst), 1);
        }
    })
    .await;
}

/// Runs futures concurrently on the current task and collects their outputs in order.
async fn futures_join<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    let mut futs: Vec<_> = futs.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, slot) in futs.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        out[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.unwrap()).collect()
}

#[tokio::test]
async fn curl_in_the_box_gets_the_token_injected() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("note: curl is not installed; skipping");
        return;
    }
    deadline(async {
        let scene = bearer_scene("curl-secret-55").await;
        let BearerScene { up, proxy, .. } = &scene;
        // The box's bridge: TCP 127.0.0.1:port → the session socket.
        let bridge = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let bridge_port = bridge.local_addr().unwrap().port();
        let sock = proxy.socket_path.clone();
        let bridge_task = tokio::spawn(async move {
            loop {
                let Ok((mut tcp, _)) = bridge.accept().await else {
                    return;
                };
                let sock = sock.clone();
                tokio::spawn(async move {
                    let mut uds = tokio::net::UnixStream::connect(sock).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut uds).await;
                });
            }
        });
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "-i", "--max-time", "20", "-x"])
            .arg(format!("http://127.0.0.1:{bridge_port}"))
            .arg("--cacert")
            .arg(&proxy.ca_bundle_path)
            .args(["-H", "Authorization: Bearer box-made-up"])
            .arg(format!("https://localhost:{}/echo", up.port))
            .env_clear()
            .output()
            .await
            .unwrap();
        bridge_task.abort();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("echo /echo"), "{text}");
        assert!(!text.contains("curl-secret-55"), "{text}");
        assert_eq!(
            up.state.seen()[0].header("authorization").as_deref(),
            Some("Bearer curl-secret-55")
        );
    })
    .await;
}

#[tokio::test]
async fn the_servers_own_client_goes_through_the_door() {
    deadline(async {
        let scene = bearer_scene("door-secret-99").await;
        let BearerScene { ca, up, proxy, .. } = &scene;
        let door = proxy.host_door().await.unwrap();
        assert_eq!(proxy.host_door().await.unwrap().url, door.url);
        let client = |token: &str| {
            let mut b = reqwest::Client::builder().proxy(
                reqwest::Proxy::all(&door.url)
                    .unwrap()
                    .custom_http_auth(format!("Bearer {token}").parse().unwrap()),
            );
            for root in reqwest::Certificate::from_pem_bundle(door.ca_pem.as_bytes()).unwrap() {
                b = b.add_root_certificate(root);
            }
            b.build().unwrap()
        };
        let good = client(&door.token);
        let url = format!("https://localhost:{}/echo", up.port);
        let resp = good.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        assert!(
            text.starts_with("echo /echo") && !text.contains("door-secret-99"),
            "{text}"
        );
        assert_eq!(
            up.state.seen()[0].header("authorization").as_deref(),
            Some("Bearer door-secret-99")
        );

        // A host without a credential is tunnelled: the client speaks TLS with it, trusting
        // the operator's upstream roots that the door hands out with the deployment CA.
        let plain = Upstream::start(Some(ca.server_config())).await;
        let resp = good
            .get(format!("https://localhost:{}/echo", plain.port))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(plain.state.seen()[0].header("authorization"), None);

        // The session's policy holds on the door too.
        let resp = good.get("http://example.org/").send().await.unwrap();
        assert_eq!(resp.status(), 403);
        assert_eq!(resp.headers()["x-proxy-error"], "blocked-by-policy");

        // Without the door's token nothing goes through.
        let bad = client("guessed");
        let resp = bad.get("http://example.org/").send().await.unwrap();
        assert_eq!(resp.status(), 407);
        assert!(bad.get(&url).send().await.is_err());
        assert_eq!(up.state.seen().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn an_expired_oauth_token_is_refreshed_before_it_is_sent() {
    deadline(async {
        for (_dir, store) in stores().await {
            let ca = TestCa::new();
            let up = Upstream::start(Some(ca.server_config())).await;
            // The upstream would still take the old token: only the expiry can cause a refresh.
            up.state.accept("expired-token");
            let (t, s) = (tenant(), sealer());
            let (v, id) = oauth_setup(&store, &s, &t, up.port).await;
            let (secrets, version) = store
                .open_credential_secrets_versioned(&t, &v, &id, &s)
                .await
                .unwrap()
                .unwrap();
            let past = Some("2001-01-01T00:00:00Z".to_string());
            assert!(
                store
                    .swap_credential_secrets(&t, &v, &id, &version, &secrets, past, &s)
                    .await
                    .unwrap()
            );
            let egress = egress(&ca, &["localhost"], None);
            let dir = tempfile::tempdir().unwrap();
            let proxy = open(
                &egress,
                dir.path(),
                SessionSpec {
                    store: &store,
                    sealer: &s,
                    tenant: &t,
                    vaults: vec![v.clone()],
                    networking: limited(&["localhost"]),
                },
            )
            .await;
            let authority = format!("localhost:{}", up.port);
            let mut tls = BoxClient::new(&proxy)
                .tunnel(&authority, "localhost")
                .await
                .unwrap();
            let a = send(
                &mut tls,
                get("/mcp", &authority)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await;
            assert_eq!(a.status, 200);
            let seen = up.state.seen();
            let paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
            assert_eq!(paths, ["/token", "/mcp"]);
            assert_eq!(
                seen[1].header("authorization").as_deref(),
                Some("Bearer fresh-token-1")
            );
            let body: Value =
                serde_json::from_str(&store.get_credential(&t, &v, &id).await.unwrap()).unwrap();
            assert!(
                body["auth"]["expires_at"].as_str().unwrap() > "2026",
                "{body}"
            );
        }
    })
    .await;
}
