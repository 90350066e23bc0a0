//! `oma serve` with TLS and the metrics listener configured in `oma.toml`: HTTPS for the API,
//! plain HTTP `/metrics` on its own address, and a renewed certificate served without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// Writes a certificate for 127.0.0.1 signed by `ca` and its key (key first, both renamed
/// into place as renewal tools do).
fn install_leaf(ca: &Ca, cert: &Path, key: &Path) {
    let k = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
    let c = params.signed_by(&k, &ca.issuer).unwrap();
    for (path, text) in [(key, k.serialize_pem()), (cert, c.pem())] {
        let tmp = path.with_extension("new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }
}

fn client(ca: &Ca) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Returns the URL after `marker` in the first log line that has it.
fn url_after(line: &str, marker: &str) -> Option<String> {
    let i = line.find(marker)?;
    Some(
        line[i + marker.len()..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '"')
            .collect(),
    )
}

#[tokio::test]
async fn tls_and_metrics_from_oma_toml() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cert, key) = (d.join("cert.pem"), d.join("key.pem"));
    let (ca1, ca2) = (ca("first CA"), ca("second CA"));
    install_leaf(&ca1, &cert, &key);
    let config = d.join("oma.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:1\"\npublic_base_url = \"https://oma.example.com\"\n\n\
             [tls]\ncert = \"{}\"\nkey = \"{}\"\n\n\
             [env.test]\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_oma"))
        .args(["serve", "--env", "test", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(d.join("data"))
        .env("OMA_API_KEY", "k")
        .env("OMA_SANDBOX_DISK_QUOTA", "off")
        .env("OMA_SANDBOX", "local")
        .env_remove("OMA_DATABASE_URL")
        .env_remove("OMA_ROOT_SECRET")
        .env_remove("OMA_LISTEN")
        .env_remove("OMA_METRICS_LISTEN")
        .env_remove("OMA_TLS_CERT")
        .env_remove("OMA_TLS_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let _server = Server(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut api, mut metrics, mut announce) = (None, None, String::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.is_none() || metrics.is_none() {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the server announced its addresses");
        if let Some(u) = url_after(&line, "metrics on ") {
            metrics = Some(u);
        }
        if let Some(u) = url_after(&line, "listening on ") {
            api = Some(u);
            announce = line;
        }
    }
    let (api, metrics) = (api.unwrap(), metrics.unwrap());
    assert!(api.starts_with("https://127.0.0.1:"), "{api}");
    assert!(
        announce.contains("\"public_base_url\":\"https://oma.example.com\""),
        "{announce}"
    );

    let c1 = client(&ca1);
    let health = c1.get(format!("{api}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let agents = c1
        .get(format!("{api}/v1/agents"))
        .header("x-api-key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(agents.status(), 200);

    let text = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(&metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"oma_http_requests_total{method="GET",route="/health",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"oma_http_requests_total{method="GET",route="/v1/agents",status="200"} 1"#),
        "{text}"
    );
    assert!(text.contains("process_resident_memory_bytes "), "{text}");
    assert!(
        text.contains("oma_database_bytes{backend=\"sqlite\",shard=\"main\"} "),
        "{text}"
    );

    // Renewal without a restart: the server looks at the files about once a second.
    install_leaf(&ca2, &cert, &key);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // A fresh client per attempt: a pooled connection would keep the old certificate.
        if client(&ca2)
            .get(format!("{api}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        client(&ca1)
            .get(format!("{api}/health"))
            .send()
            .await
            .is_err(),
        "new connections no longer get the old certificate"
    );
}
