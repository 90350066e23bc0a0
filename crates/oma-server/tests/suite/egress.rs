//! The network edge through real agent turns: an isolated box's `curl` reaches an HTTPS
//! server only through the session's egress proxy, which adds the vault's token on the way out
//! — the box never sees it, a forged `Authorization` is replaced — and refuses what the policy
//! does not allow.

use std::sync::{Arc, Mutex};

use oma_server::tls::{ReloadingResolver, TlsFiles, provider, server_config};
use oma_testkit::fake_anthropic::FakeAnthropic;
use oma_testkit::fake_model::Reply;
use oma_testkit::{TestEgress, TestServer, backends};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::turns::{new_session, providers, say, tool_results, wait_idle};

const TOKEN: &str = "oma-test-upstream-token-5d1f0c";

/// An HTTPS server on 127.0.0.1 with a certificate for `localhost` from a CA of its own. It
/// answers `authorized` when the request carries the expected bearer token, and records every
/// `Authorization` header it receives. Returns `(port, CA PEM, headers seen)`.
async fn upstream(dir: &std::path::Path) -> (u16, String, Arc<Mutex<Vec<String>>>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "upstream test CA");
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let files = TlsFiles {
        cert: dir.join("upstream.pem"),
        key: dir.join("upstream.key"),
    };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    let resolver = ReloadingResolver::new(files, provider()).unwrap();
    let acceptor =
        tokio_rustls::TlsAcceptor::from(Arc::new(server_config(Arc::new(resolver)).unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_by_server = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = seen_by_server.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let auth = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .filter(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
                    .map(|(_, v)| v.trim().to_string())
                    .collect::<Vec<_>>();
                let ok = auth == [format!("Bearer {TOKEN}")];
                seen.lock().unwrap().extend(auth);
                let (status, body) = if ok {
                    ("200 OK", "authorized")
                } else {
                    ("401 Unauthorized", "unauthorized")
                };
                let _ = tls
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, ca_pem, seen)
}

fn tool_outputs(log: &[Value]) -> Vec<String> {
    tool_results(log)
        .into_iter()
        .map(|(text, _)| text)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_gets_the_vault_token_injected_without_ever_seeing_it() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let (port, ca_pem, seen) = upstream(dir.path()).await;
        let fake = FakeAnthropic::start().await;
        let egress = TestEgress {
            // The upstream is on loopback, which only an operator rule may open.
            allow: vec!["localhost".into()],
            upstream_roots: vec![ca_pem.into_bytes()],
        };
        let Some(s) =
            TestServer::start_isolated_with(backend, providers(&fake), |_| {}, Some(egress))
                .await
                .unwrap()
        else {
            return;
        };
        let (status, vault) = s
            .post("/v1/vaults", json!({"display_name": "edge"}))
            .await
            .unwrap();
        assert_eq!(status, 200, "{vault}");
        let vault_id = vault["id"].as_str().unwrap().to_string();
        let (status, cred) = s
            .post(
                &format!("/v1/vaults/{vault_id}/credentials"),
                json!({"auth": {"type": "static_bearer", "token": TOKEN,
                                "mcp_server_url": format!("https://localhost:{port}/")}}),
            )
            .await
            .unwrap();
        assert_eq!(status, 200, "{cred}");
        let sid = new_session(
            &s,
            json!({"name": "edge", "config": {"type": "cloud"}}),
            json!({"vault_ids": [vault_id]}),
        )
        .await;

        fake.push_all([
            // `localhost` is the box itself to NO_PROXY; on the host it is the upstream. With a
            // forged token of its own: the proxy replaces it.
            Reply::tool_use(
                "bash",
                json!({"command": format!(
                    "env -u NO_PROXY -u no_proxy curl -sS --max-time 20 -H 'Authorization: Bearer forged' https://localhost:{port}/data")}),
            ),
            // Everything the box can see of itself.
            Reply::tool_use(
                "bash",
                json!({"command": "env; cat /etc/ssl/certs/ca-certificates.crt | tail -c 200"}),
            ),
            // A loopback address no rule opens.
            Reply::tool_use(
                "bash",
                json!({"command": format!(
                    "env -u NO_PROXY -u no_proxy curl -sS --max-time 20 https://127.0.0.1:{port}/ 2>&1; true")}),
            ),
            Reply::text("done"),
        ]);
        say(&s, &sid, "fetch").await;
        let log = wait_idle(&s, &sid, 1).await;
        let outputs = tool_outputs(&log);
        assert_eq!(outputs.len(), 3, "{outputs:#?}");
        assert!(
            outputs[0].contains("authorized") && !outputs[0].contains("unauthorized"),
            "{}",
            outputs[0]
        );
        assert_eq!(*seen.lock().unwrap(), [format!("Bearer {TOKEN}")]);
        assert!(
            outputs[1].contains("HTTPS_PROXY=http://127.0.0.1:3128"),
            "{}",
            outputs[1]
        );
        assert!(outputs[2].contains("403"), "{}", outputs[2]);
        // The token is nowhere the box or the model could have seen it.
        let everything = serde_json::to_string(&log).unwrap();
        assert!(
            !everything.contains(TOKEN),
            "the token reached the session log"
        );
        for request in fake.requests() {
            assert!(
                !request.to_string().contains(TOKEN),
                "the token reached the model"
            );
        }
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_installers_reach_the_registries_only_through_the_egress() {
    let backend = backends()[0];
    let fake = FakeAnthropic::start().await;
    let egress = TestEgress {
        // The registries' names resolve to documentation addresses on some test networks
        // (a TLS-inspecting gateway), which the proxy treats as private: open them explicitly.
        allow: vec!["pypi.org".into(), "files.pythonhosted.org".into()],
        upstream_roots: Vec::new(),
    };
    let Some(s) = TestServer::start_isolated_with(backend, providers(&fake), |_| {}, Some(egress))
        .await
        .unwrap()
    else {
        return;
    };
    // No wheel restriction behind the egress: `--only-binary` is gone, sdists may build.
    let sid = new_session(
        &s,
        json!({"name": "pkgs", "config": {"type": "cloud",
               "packages": {"pip": ["six==1.16.0"]}}}),
        json!({}),
    )
    .await;
    fake.push_all([
        Reply::tool_use(
            "bash",
            json!({"command": "python3 -c 'import six; print(\"six\", six.__version__)'"}),
        ),
        Reply::text("done"),
    ]);
    say(&s, &sid, "go").await;
    let log = wait_idle(&s, &sid, 1).await;
    let outputs = tool_outputs(&log);
    assert_eq!(outputs.len(), 1, "{log:#?}");
    assert!(outputs[0].contains("six 1.16.0"), "{}", outputs[0]);
    s.stop().await;
}
