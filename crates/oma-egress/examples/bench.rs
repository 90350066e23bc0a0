//! Egress proxy benchmark: the latency the proxy adds to an HTTPS request with credential
//! injection (warm connections, loopback), and proxied throughput.
//!
//! `cargo run --release -p oma-egress --example bench [-- ITERATIONS]`
//!
//! - direct: the client speaks TLS to the upstream itself, one kept-alive connection;
//! - injected: the same requests through the session socket, CONNECT, TLS terminated by the
//!   proxy with the deployment CA, `Authorization` injected, re-encrypted to the upstream (both
//!   legs kept alive);
//! - throughput: 8 concurrent box connections for 3 s (requests/s), and one 64 MiB download
//!   through an intercepted connection (MB/s).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

use support::*;

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    let scene = bearer_scene("bench-token").await;
    let BearerScene { ca, up, proxy, .. } = &scene;
    let authority = format!("localhost:{}", up.port);

    // Direct.
    let mut direct = direct_sender(ca, up.port).await;
    let d = measure(&mut direct, &authority, n).await;
    // Through the proxy, with injection.
    let client = BoxClient::new(proxy);
    let mut via = client.tunnel(&authority, "localhost").await.unwrap();
    let p = measure(&mut via, &authority, n).await;
    up.state.seen.lock().unwrap().clear();

    println!("egress proxy latency, HTTPS GET on loopback, warm connections, {n} requests");
    println!("  {:<22} {:>10} {:>10}", "", "p50", "p99");
    println!(
        "  {:<22} {:>8.1}µs {:>8.1}µs",
        "direct",
        pct(&d, 50.0),
        pct(&d, 99.0)
    );
    println!(
        "  {:<22} {:>8.1}µs {:>8.1}µs",
        "proxied + injection",
        pct(&p, 50.0),
        pct(&p, 99.0)
    );
    println!(
        "  {:<22} {:>8.1}µs {:>8.1}µs",
        "added",
        pct(&p, 50.0) - pct(&d, 50.0),
        pct(&p, 99.0) - pct(&d, 99.0)
    );

    // Requests/s with 8 concurrent box connections.
    let run_for = Duration::from_secs(3);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = BoxClient::new(proxy);
        let authority = authority.clone();
        tasks.push(tokio::spawn(async move {
            let mut tls = client.tunnel(&authority, "localhost").await.unwrap();
            let start = Instant::now();
            let mut count = 0u64;
            while start.elapsed() < run_for {
                let req = get("/echo", &authority)
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                assert_eq!(send(&mut tls, req).await.status, 200);
                count += 1;
            }
            count
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    up.state.seen.lock().unwrap().clear();
    println!(
        "throughput, 8 connections, injection: {:.0} requests/s",
        total as f64 / run_for.as_secs_f64()
    );

    // One large download through an intercepted connection, and the same direct.
    for (label, sender) in [("direct", &mut direct), ("proxied + injection", &mut via)] {
        let start = Instant::now();
        sender.ready().await.unwrap();
        let resp = sender
            .send_request(
                get("/big", &authority)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes().len();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "download {} MiB, {label}: {:.0} MB/s",
            bytes >> 20,
            bytes as f64 / secs / 1e6
        );
    }
}

async fn measure(sender: &mut Sender, authority: &str, n: usize) -> Vec<f64> {
    // Warm-up: connection, TLS session, leaf and credential caches.
    for _ in 0..200 {
        let req = get("/echo", authority)
            .body(Full::new(Bytes::new()))
            .unwrap();
        send(sender, req).await;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let req = get("/echo", authority)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let start = Instant::now();
        let a = send(sender, req).await;
        out.push(start.elapsed().as_secs_f64() * 1e6);
        assert_eq!(a.status, 200);
    }
    out.sort_by(|a, b| a.total_cmp(b));
    out
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i]
}

async fn direct_sender(ca: &TestCa, port: u16) -> Sender {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    roots.add_parsable_certificates(
        rustls::pki_types::CertificateDer::pem_slice_iter(ca.pem.as_bytes()).map(|c| c.unwrap()),
    );
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}
