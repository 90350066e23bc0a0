//! TLS termination: an SDK-style client (reqwest trusting the deployment's CA) works, and
//! renewed certificate files reach new connections without a restart, while a broken renewal
//! keeps the previous certificate in service.
//!
//! Which certificate a connection got is told by trust: each certificate is signed by its own
//! CA and each client trusts exactly one CA.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use oma_server::tls::{ReloadingResolver, TlsFiles, provider, server_config};
use oma_testkit::{Backend, TestServer};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A server certificate for 127.0.0.1 and localhost: `(cert PEM, key PEM)`.
fn leaf(ca: &Ca) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Replaces a file the way renewal tools do: write aside, then rename over.
fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A fresh client (no pooled connection) that trusts only `ca`.
fn client(ca: &Ca) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

async fn status(client: &reqwest::Client, url: &str, key: &str) -> Result<u16, reqwest::Error> {
    let resp = client.get(url).header("x-api-key", key).send().await?;
    Ok(resp.status().as_u16())
}

#[tokio::test]
async fn tls_serves_the_api_and_picks_up_renewed_certificates() {
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    };
    let (ca1, ca2, ca3) = (ca("first CA"), ca("second CA"), ca("third CA"));
    let (cert1, key1) = leaf(&ca1);
    std::fs::write(&files.cert, &cert1).unwrap();
    std::fs::write(&files.key, &key1).unwrap();

    // Looking at the files on every handshake keeps the test free of waiting.
    let resolver = ReloadingResolver::new(files.clone(), provider())
        .unwrap()
        .check_every(Duration::ZERO);
    let config = Arc::new(server_config(Arc::new(resolver)).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(oma_server::serve_tls(
        listener,
        config,
        s.state.clone(),
        async {
            let _ = stop_rx.await;
        },
    ));
    let agents = format!("{base}/v1/agents");

    // The SDK-style client: JSON over HTTPS with the deployment CA added.
    let c1 = client(&ca1);
    let created = c1
        .post(&agents)
        .header("x-api-key", &s.key)
        .json(&serde_json::json!({"name": "tls", "model": "claude-opus-4-8"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let agent: serde_json::Value = created.json().await.unwrap();
    assert!(agent["id"].as_str().unwrap().starts_with("agent_"));
    assert_eq!(status(&c1, &agents, &s.key).await.unwrap(), 200);
    assert!(
        status(&client(&ca2), &agents, &s.key).await.is_err(),
        "a client trusting another CA must refuse the first certificate"
    );

    // Renewal: new files, no restart; the next connection gets the new certificate.
    let (cert2, key2) = leaf(&ca2);
    replace(&files.key, &key2);
    replace(&files.cert, &cert2);
    assert_eq!(status(&client(&ca2), &agents, &s.key).await.unwrap(), 200);
    assert!(status(&client(&ca1), &agents, &s.key).await.is_err());

    // A broken renewal (not PEM) keeps the previous certificate in service…
    replace(&files.cert, "-----BEGIN CERTIFICATE-----\nnot base64\n");
    assert_eq!(status(&client(&ca2), &agents, &s.key).await.unwrap(), 200);
    // …and so does a certificate whose key is not the one in the key file.
    let (cert3, _other_key) = leaf(&ca3);
    replace(&files.cert, &cert3);
    assert_eq!(status(&client(&ca2), &agents, &s.key).await.unwrap(), 200);
    assert!(status(&client(&ca3), &agents, &s.key).await.is_err());
    // Once the pair is whole again, it is served.
    let (cert3, key3) = leaf(&ca3);
    replace(&files.key, &key3);
    replace(&files.cert, &cert3);
    assert_eq!(status(&client(&ca3), &agents, &s.key).await.unwrap(), 200);

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
    s.stop().await;
}

#[test]
fn a_server_does_not_start_with_files_it_cannot_serve() {
    let dir = tempfile::tempdir().unwrap();
    let files = TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    };
    let err = ReloadingResolver::new(files.clone(), provider()).unwrap_err();
    assert!(err.to_string().contains("cert.pem"), "{err}");
    let ca = ca("CA");
    let (cert, _) = leaf(&ca);
    let (_, other_key) = leaf(&ca);
    std::fs::write(&files.cert, cert).unwrap();
    std::fs::write(&files.key, other_key).unwrap();
    let err = ReloadingResolver::new(files, provider()).unwrap_err();
    assert!(err.to_string().contains("does not fit"), "{err}");
}
