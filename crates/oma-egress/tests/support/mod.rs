//! Test fixtures: a test CA and local HTTPS upstreams that use it, a "box" client that talks to
//! a session proxy through its Unix socket, and stores on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::HashSet;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use oma_core::credentials::{CreateCredentialParams, CreateVaultParams, CredentialSpec, VaultSpec};
use oma_core::seal::Sealer;
use oma_egress::{DeploymentCa, Egress, EgressConfig, SessionEgress, SessionProxy};
use oma_store::Store;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use tokio::net::{TcpListener, UnixStream};
use tokio::sync::Notify;

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

// ---------------------------------------------------------------------------------------------
// Stores
// ---------------------------------------------------------------------------------------------

/// SQLite always; PostgreSQL too when `OMA_TEST_DATABASE_URL` is set.
pub async fn stores() -> Vec<(Option<tempfile::TempDir>, Store)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("oma.db").display());
    let mut out = vec![(Some(dir), Store::connect(&url).await.unwrap())];
    match std::env::var("OMA_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => out.push((None, Store::connect(&u).await.unwrap())),
        _ => eprintln!("note: OMA_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant"),
    }
    for (_, s) in &out {
        s.migrate_up().await.unwrap();
    }
    out
}

pub fn sealer() -> Arc<Sealer> {
    Arc::new(Sealer::from_root_secret(&[9u8; 32]).unwrap())
}

pub fn tenant() -> String {
    oma_core::ids::new_id("tegress")
}

pub async fn vault(store: &Store, tenant: &str) -> String {
    let spec = VaultSpec::create(
        serde_json::from_value::<CreateVaultParams>(json!({"display_name": "v"})).unwrap(),
    )
    .unwrap();
    let body: Value =
        serde_json::from_str(&store.create_vault(tenant, &spec).await.unwrap()).unwrap();
    body["id"].as_str().unwrap().to_string()
}

/// Creates a credential from its API `auth` object; returns its id.
pub async fn credential(
    store: &Store,
    sealer: &Sealer,
    tenant: &str,
    vault: &str,
    auth: Value,
) -> String {
    let p: CreateCredentialParams = serde_json::from_value(json!({ "auth": auth })).unwrap();
    let (spec, secrets) = CredentialSpec::create(p, oma_core::time::now_micros()).unwrap();
    let body: Value = serde_json::from_str(
        &store
            .create_credential(tenant, vault, &spec, &secrets, sealer)
            .await
            .unwrap(),
    )
    .unwrap();
    body["id"].as_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------------------
// The test CA and upstreams
// ---------------------------------------------------------------------------------------------

pub struct TestCa {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "oma-egress test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server config for `localhost` and `127.0.0.1`.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server_config_for(&["localhost", "127.0.0.1"])
    }

    /// A server config for `names`.
    pub fn server_config_for(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// A request an upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
}

/// What the fake upstream does:
/// - `/echo`: 200, copies the received Authorization into `x-echo-auth`;
/// - `/mcp…`: 200 when the bearer token is accepted, else `refuse_status` (401 by default);
/// - `…/private/…`: 200 when `Authorization: Basic base64("x-access-token:<token>")` names an
///   accepted token (how GitHub takes one for git), else `refuse_status`;
/// - `/token`: an OAuth token endpoint issuing `fresh-token-N` (accepted from then on); with a
///   gate of n, it answers only once n token requests are in flight.
#[derive(Default)]
pub struct UpState {
    pub seen: Mutex<Vec<Seen>>,
    pub accepted: Mutex<HashSet<String>>,
    pub token_calls: AtomicUsize,
    pub refuse_status: AtomicU16,
    pub gate: AtomicUsize,
    arrived: AtomicUsize,
    arrived_changed: Notify,
}

impl UpState {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
    pub fn accept(&self, token: &str) {
        self.accepted.lock().unwrap().insert(token.to_string());
    }
}

pub struct Upstream {
    pub port: u16,
    pub state: Arc<UpState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// An upstream on 127.0.0.1, HTTPS with `tls`, plain HTTP without.
    pub async fn start(tls: Option<Arc<rustls::ServerConfig>>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(UpState::default());
        state.refuse_status.store(401, Ordering::SeqCst);
        let st = state.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                let tls = tls.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(respond(st, req).await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(cfg) => {
                            let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await
                            else {
                                return;
                            };
                            let _ = http.serve_connection(TokioIo::new(s), svc).await;
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), svc).await;
                        }
                    }
                });
            }
        });
        Upstream { port, state, task }
    }
}

async fn respond(st: Arc<UpState>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body).to_string();
    st.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        headers: headers.clone(),
        body: body.clone(),
    });
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    if path == "/big" {
        static BIG: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
        let big = BIG
            .get_or_init(|| Bytes::from(vec![b'x'; 64 << 20]))
            .clone();
        return Response::new(Full::new(big));
    }
    if path == "/token" {
        let n = st.token_calls.fetch_add(1, Ordering::SeqCst) + 1;
        let gate = st.gate.load(Ordering::SeqCst);
        st.arrived.fetch_add(1, Ordering::SeqCst);
        st.arrived_changed.notify_waiters();
        while st.arrived.load(Ordering::SeqCst) < gate {
            let notified = st.arrived_changed.notified();
            if st.arrived.load(Ordering::SeqCst) >= gate {
                break;
            }
            notified.await;
        }
        let token = format!("fresh-token-{n}");
        st.accept(&token);
        let out = json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": format!("rt-{n}")});
        return Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(out.to_string())))
            .unwrap();
    }
    if path.contains("/private/") {
        use base64::Engine as _;
        let ok = auth
            .as_deref()
            .and_then(|a| a.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|d| String::from_utf8(d).ok())
            .and_then(|d| d.strip_prefix("x-access-token:").map(str::to_string))
            .is_some_and(|t| st.accepted.lock().unwrap().contains(&t));
        let status = if ok {
            StatusCode::OK
        } else {
            StatusCode::from_u16(st.refuse_status.load(Ordering::SeqCst)).unwrap()
        };
        return Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(if ok { "git ok" } else { "no" })))
            .unwrap();
    }
    if path.starts_with("/mcp") {
        let ok = auth
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|t| st.accepted.lock().unwrap().contains(t));
        let status = if ok {
            StatusCode::OK
        } else {
            StatusCode::from_u16(st.refuse_status.load(Ordering::SeqCst)).unwrap()
        };
        return Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(if ok { "mcp ok" } else { "no" })))
            .unwrap();
    }
    let mut resp = Response::builder().header("x-seen-body", body.len().to_string());
    if let Some(a) = &auth {
        resp = resp.header("x-echo-auth", a);
    }
    // An echo of what came in, the way httpbin does: a proxy must not let it reach the box.
    resp.body(Full::new(Bytes::from(format!(
        "echo {path} auth={} body={body}",
        auth.unwrap_or_default()
    ))))
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The egress and the box side
// ---------------------------------------------------------------------------------------------

pub fn egress(ca: &TestCa, allow: &[&str], ops: Option<oma_ops::OpsRecorder>) -> Egress {
    Egress::new(EgressConfig {
        ca: DeploymentCa::ephemeral().unwrap(),
        upstream_roots: vec![ca.pem.as_bytes().to_vec()],
        allow: allow.iter().map(|s| s.to_string()).collect(),
        deny: vec!["denied.localhost".to_string()],
        connect_to: Vec::new(),
        ops,
    })
    .unwrap()
}

pub struct SessionSpec<'a> {
    pub store: &'a Store,
    pub sealer: &'a Arc<Sealer>,
    pub tenant: &'a str,
    pub vaults: Vec<String>,
    pub networking: Value,
}

pub async fn open(egress: &Egress, dir: &Path, s: SessionSpec<'_>) -> SessionProxy {
    egress
        .open_session(SessionEgress {
            tenant: s.tenant.to_string(),
            session_id: oma_core::ids::new_id("sesn"),
            socket_path: dir.join(format!("{}.sock", oma_core::ids::new_id("e"))),
            store: s.store.clone(),
            sealer: s.sealer.clone(),
            vault_ids: s.vaults,
            networking: s.networking,
            mcp_server_urls: vec![],
        })
        .await
        .unwrap()
}

/// What the box got back.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// Everything the box saw, as one text (to look for leaked secrets).
    pub fn everything(&self) -> String {
        format!("{:?} {}", self.headers, self.body)
    }
}

async fn answer(resp: Response<Incoming>) -> Answer {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).to_string(),
    }
}

/// A client inside the "box": it reaches the world only through the proxy's socket and trusts
/// the CA bundle the proxy wrote (system roots + the deployment CA), or given roots.
pub struct BoxClient {
    pub socket: PathBuf,
    pub roots: rustls::RootCertStore,
}

pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

impl BoxClient {
    pub fn new(proxy: &SessionProxy) -> Self {
        let pem = std::fs::read(&proxy.ca_bundle_path).unwrap();
        Self::with_roots(&proxy.socket_path, &[pem])
    }

    pub fn with_roots(socket: &Path, pems: &[Vec<u8>]) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        for pem in pems {
            roots
                .add_parsable_certificates(CertificateDer::pem_slice_iter(pem).map(|c| c.unwrap()));
        }
        BoxClient {
            socket: socket.to_path_buf(),
            roots,
        }
    }

    /// CONNECT `authority` and TLS to `host`: a sender, or the proxy's refusal.
    pub async fn tunnel(&self, authority: &str, host: &str) -> Result<Sender, Answer> {
        let uds = UnixStream::connect(&self.socket).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(uds))
                .await
                .unwrap();
        tokio::spawn(conn.with_upgrades());
        let req = Request::connect(authority)
            .header("host", authority)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        if resp.status() != StatusCode::OK {
            return Err(answer(resp).await);
        }
        let upgraded = hyper::upgrade::on(resp).await.unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(
                ServerName::try_from(host.to_string()).unwrap(),
                TokioIo::new(upgraded),
            )
            .await
            .map_err(|e| Answer {
                status: StatusCode::BAD_GATEWAY,
                headers: HeaderMap::new(),
                body: format!("TLS failed: {e}"),
            })?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        Ok(send)
    }

    /// A plain-HTTP proxy connection (absolute-form requests).
    pub async fn plain(&self) -> Sender {
        let uds = UnixStream::connect(&self.socket).await.unwrap();
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(uds))
            .await
            .unwrap();
        tokio::spawn(conn);
        send
    }
}

pub async fn send(sender: &mut Sender, req: Request<Full<Bytes>>) -> Answer {
    sender.ready().await.unwrap();
    answer(sender.send_request(req).await.unwrap()).await
}

pub fn get(uri: &str, host: &str) -> http::request::Builder {
    Request::get(uri).header("host", host)
}

/// Runs a test body with a deadline, so a hang fails instead of blocking CI.
pub async fn deadline<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(std::time::Duration::from_secs(60), f)
        .await
        .expect("the test did not finish within 60 s");
}

/// The usual scene: one session (first store) whose vault holds a `static_bearer` `token` for
/// an HTTPS upstream on `localhost` signed by a test CA, with `limited` networking open to
/// `localhost`, which the operator allows. Keep it alive while the test runs: it owns the store,
/// the socket's folder and the upstream.
pub struct BearerScene {
    pub store: Store,
    pub ca: TestCa,
    pub up: Upstream,
    pub egress: Egress,
    pub proxy: SessionProxy,
    _dirs: (Option<tempfile::TempDir>, tempfile::TempDir),
}

pub async fn bearer_scene(token: &str) -> BearerScene {
    let (db_dir, store) = stores().await.remove(0);
    let ca = TestCa::new();
    let up = Upstream::start(Some(ca.server_config())).await;
    let (t, s) = (tenant(), sealer());
    let v = vault(&store, &t).await;
    let url = format!("https://localhost:{}/mcp", up.port);
    credential(
        &store,
        &s,
        &t,
        &v,
        json!({"type": "static_bearer", "mcp_server_url": url, "token": token}),
    )
    .await;
    let egress = egress(&ca, &["localhost"], None);
    let dir = tempfile::tempdir().unwrap();
    let proxy = open(
        &egress,
        dir.path(),
        SessionSpec {
            store: &store,
            sealer: &s,
            tenant: &t,
            vaults: vec![v],
            networking: json!({"type": "limited", "allowed_hosts": ["localhost"]}),
        },
    )
    .await;
    BearerScene {
        store,
        ca,
        up,
        egress,
        proxy,
        _dirs: (db_dir, dir),
    }
}
