//! A session's proxy: the Unix-socket listener, CONNECT (tunnel or intercept) and
//! absolute-form forwarding, and the injection on the way out.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use oma_core::seal::Sealer;
use oma_ops::event::{self, Scoped};
use tokio::net::UnixListener;
use tokio::sync::watch;

use crate::creds::{self, Bearer, CREDENTIAL_HEADERS, Cached, Rules};
use crate::oauth::{self, RefreshCtx};
use crate::policy::{Policy, Verdict, split_authority, url_host_port};
use crate::upstream::{self, Body, Resolve, full};
use crate::{EgressError, SessionEgress, SessionProxy, Shared};

/// An OAuth token that expires within this margin is refreshed before it is sent.
const EXPIRY_MARGIN_MICROS: i64 = 30_000_000;

/// Request bodies the proxy must read whole (body substitution, a request that may be retried
/// after an OAuth refresh) are capped at this size.
const MAX_BUFFERED_BODY: usize = 16 * 1024 * 1024;

/// Secrets shorter than this are not scrubbed from responses (masking every occurrence of a
/// two-letter "secret" would corrupt bodies and protect nothing).
const MIN_SCRUBBED: usize = 4;

/// Keeps a session proxy running; dropping it stops everything and removes its files.
pub(crate) struct Running {
    _stop: watch::Sender<bool>,
    socket: PathBuf,
    socket_id: (u64, u64),
    bundle: PathBuf,
    bundle_id: (u64, u64),
    session: Arc<Session>,
}

impl Running {
    /// Whether a request to `url` would be let out (the policy, then the resolved addresses),
    /// and if not why, in the words of the proxy's refusal (which is recorded the same way).
    /// For callers that must tell a refusal from the upstream's own 403.
    pub(crate) async fn check_url(&self, url: &str) -> Result<(), String> {
        let (host, port, https) =
            url_host_port(url).ok_or_else(|| format!("`{url}` is not an http(s) URL"))?;
        match self.session.decide(&host, port).await {
            Ok((_, false)) => Ok(()),
            Ok((_, true)) => {
                let path = crate::creds::url_path(url);
                let path = if path.is_empty() { "/".into() } else { path };
                let open = https
                    && self
                        .session
                        .rules()
                        .await
                        .is_ok_and(|r| r.repo_for(&host, port, &path).is_some());
                if open {
                    return Ok(());
                }
                let reason = repo_only_reason(&host, self.session.policy.mode());
                self.session.deny(&host, "blocked-by-policy", &reason);
                Err(reason)
            }
            Err(Refusal::Denied { code, reason }) => {
                self.session.deny(&host, code, &reason);
                Err(reason)
            }
            Err(Refusal::Unresolved(reason)) => Err(reason),
        }
    }

    /// The session's loopback door, opened on first use.
    pub(crate) async fn door(&self) -> Result<crate::HostDoor, EgressError> {
        let mut door = self.session.door.lock().await;
        if let Some(d) = door.as_ref() {
            return Ok(d.clone());
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| EgressError::Io("listening on 127.0.0.1".into(), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| EgressError::Io("listening on 127.0.0.1".into(), e))?;
        let token = creds::new_placeholder().replace("oma_placeholder_", "oma_door_");
        let d = crate::HostDoor {
            url: format!("http://{addr}"),
            token: token.clone(),
            ca_pem: self.session.shared.door_roots_pem.clone(),
        };
        let session = self.session.clone();
        let expected: Arc<str> = format!("Bearer {token}").into();
        self.session.clone().spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    // Out of descriptors and the like: wait a little instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let s = session.clone();
                session
                    .clone()
                    .spawn(serve_conn(s, tcp, Some(expected.clone())));
            }
        });
        *door = Some(d.clone());
        Ok(d)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Dropping `_stop` ends the accept loop and every connection task (they wait on it).
        // The files go only while they are still ours: a new proxy may already have been
        // opened at the same path.
        for (path, id) in [
            (&self.socket, self.socket_id),
            (&self.bundle, self.bundle_id),
        ] {
            if file_id(path) == Some(id) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Device and inode of a file.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Why a host is not let out.
enum Refusal {
    /// By the policy or the address check (`code` is the `X-Proxy-Error` value).
    Denied { code: &'static str, reason: String },
    /// The name did not resolve.
    Unresolved(String),
}

struct Session {
    shared: Arc<Shared>,
    tenant: String,
    session_id: String,
    store: oma_store::Store,
    sealer: Arc<Sealer>,
    vault_ids: Vec<String>,
    policy: Policy,
    placeholders: HashMap<String, String>,
    cache: Mutex<Option<Cached>>,
    stop: watch::Receiver<bool>,
    door: tokio::sync::Mutex<Option<crate::HostDoor>>,
}

pub(crate) async fn open(
    shared: Arc<Shared>,
    s: SessionEgress,
) -> Result<SessionProxy, EgressError> {
    let policy = Policy::new(
        &s.networking,
        &shared.allow,
        &shared.deny,
        &s.mcp_server_urls,
    )?;
    let names = creds::env_names(&s.store, &s.tenant, &s.vault_ids).await?;
    let placeholders: HashMap<String, String> = names
        .iter()
        .map(|n| (n.clone(), creds::new_placeholder()))
        .collect();
    let env = names
        .iter()
        .filter_map(|n| placeholders.get(n).map(|p| (n.clone(), p.clone())))
        .collect();

    let bundle = bundle_path(&s.socket_path);
    write_file(&bundle, shared.bundle_pem.as_bytes(), 0o644)?;
    match std::fs::remove_file(&s.socket_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(EgressError::Io(
                format!("removing {}", s.socket_path.display()),
                e,
            ));
        }
    }
    let listener = UnixListener::bind(&s.socket_path)
        .map_err(|e| EgressError::Io(format!("listening on {}", s.socket_path.display()), e))?;
    set_mode(&s.socket_path, 0o600)?;

    let (stop_tx, stop) = watch::channel(false);
    let session = Arc::new(Session {
        shared,
        tenant: s.tenant,
        session_id: s.session_id,
        store: s.store,
        sealer: s.sealer,
        vault_ids: s.vault_ids,
        policy,
        placeholders,
        cache: Mutex::new(None),
        stop,
        door: tokio::sync::Mutex::new(None),
    });
    session
        .clone()
        .spawn(accept_loop(listener, session.clone()));
    Ok(SessionProxy {
        socket_path: s.socket_path.clone(),
        ca_bundle_path: bundle.clone(),
        env,
        _running: Running {
            _stop: stop_tx,
            socket_id: file_id(&s.socket_path).unwrap_or_default(),
            socket: s.socket_path,
            bundle_id: file_id(&bundle).unwrap_or_default(),
            bundle,
            session,
        },
    })
}

/// `<socket>.ca.pem`, beside the socket.
fn bundle_path(socket: &Path) -> PathBuf {
    let mut name = socket.file_name().unwrap_or_default().to_os_string();
    name.push(".ca.pem");
    socket.with_file_name(name)
}

/// Writes through a temporary file and a rename, so a reader never sees half a bundle and the
/// file is a new inode (see [`Running`]'s drop).
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), EgressError> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)
        .map_err(|e| EgressError::Io(format!("writing {}", tmp.display()), e))?;
    set_mode(&tmp, mode)?;
    std::fs::rename(&tmp, path)
        .map_err(|e| EgressError::Io(format!("writing {}", path.display()), e))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), EgressError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| EgressError::Io(format!("setting the mode of {}", path.display()), e))
}

async fn accept_loop(listener: UnixListener, session: Arc<Session>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let s = session.clone();
                session.clone().spawn(serve_conn(s, stream, None));
            }
            Err(e) => {
                // Out of descriptors and the like: wait a little instead of spinning.
                tracing::warn!(error = %e, session_id = %session.session_id, "egress accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The upstream connection a box connection keeps warm (one at a time: a box connection sends
/// its requests one after the other).
#[derive(Default)]
struct ConnState {
    upstream: tokio::sync::Mutex<Option<(String, SendRequest<Body>)>>,
}

/// Where intercepted or forwarded requests go.
#[derive(Clone)]
struct Target {
    host: String,
    port: u16,
    https: bool,
    addrs: Vec<std::net::SocketAddr>,
    /// Intercepted connections: the CONNECT target every request's Host must name.
    pinned: bool,
    /// The environment's networking does not open this host; the session's repositories on it
    /// are all that may be reached.
    repo_only: bool,
}

/// Serves one client connection: a box's (through the socket, which is its credential), or
/// the server's own through the loopback door (every request must carry the door's token).
async fn serve_conn<I>(session: Arc<Session>, stream: I, token: Option<Arc<str>>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = Arc::new(ConnState::default());
    let svc = service_fn(move |req: Request<Incoming>| {
        let session = session.clone();
        let conn = conn.clone();
        let token = token.clone();
        async move {
            if let Some(t) = token
                && !door_admits(req.headers(), &t)
            {
                let mut resp = proxy_error(
                    StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                    "proxy-auth-required",
                    "this door of the egress proxy needs its Proxy-Authorization token",
                );
                resp.headers_mut().insert(
                    header::PROXY_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"oma-egress\""),
                );
                return Ok::<_, Infallible>(resp);
            }
            Ok::<_, Infallible>(session.handle(&conn, req).await)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades()
        .await;
}

impl Session {
    /// Runs `fut` until it ends or the session proxy stops.
    fn spawn<F>(self: Arc<Self>, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut stop = self.stop.clone();
        drop(self);
        tokio::spawn(async move {
            tokio::select! {
                () = fut => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        });
    }

    async fn rules(&self) -> Result<Arc<Rules>, EgressError> {
        if let Ok(cache) = self.cache.lock()
            && let Some(c) = cache.as_ref()
            && c.at.elapsed() < creds::RULES_TTL
        {
            return Ok(c.rules.clone());
        }
        let rules = Arc::new(
            creds::resolve(
                &self.store,
                &self.sealer,
                &self.tenant,
                &self.session_id,
                &self.vault_ids,
                &self.placeholders,
            )
            .await?,
        );
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some(Cached {
                at: Instant::now(),
                rules: rules.clone(),
            });
        }
        Ok(rules)
    }

    fn invalidate(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            *cache = None;
        }
    }

    fn record(&self, e: oma_ops::OpsEvent) {
        if let Some(ops) = &self.shared.ops {
            ops.record(e.session(&self.tenant, &self.session_id));
        }
    }

    fn deny(&self, host: &str, code: &str, reason: &str) -> Response<Body> {
        tracing::info!(session_id = %self.session_id, host, reason, "egress denied");
        self.record(event::egress_denied(host, None, reason));
        proxy_error(StatusCode::FORBIDDEN, code, reason)
    }

    async fn handle(self: &Arc<Self>, conn: &ConnState, req: Request<Incoming>) -> Response<Body> {
        if req.method() == Method::CONNECT {
            return self.connect(req).await;
        }
        let uri = req.uri();
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => {
                return proxy_error(
                    StatusCode::BAD_REQUEST,
                    "bad-request",
                    "only http:// URLs are forwarded in absolute form; https goes through CONNECT",
                );
            }
            None => {
                return proxy_error(
                    StatusCode::BAD_REQUEST,
                    "bad-request",
                    "this is the egress proxy: send absolute-form requests or CONNECT",
                );
            }
        }
        let Some((host, port)) = uri
            .authority()
            .and_then(|a| split_authority(a.as_str(), 80))
        else {
            return proxy_error(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "the URL has no host",
            );
        };
        let target = match self.admit(&host, port).await {
            // Repositories are reached over https only.
            Ok((_, true)) => {
                let reason = repo_only_reason(&host, self.policy.mode());
                return self.deny(&host, "blocked-by-policy", &reason);
            }
            Ok((addrs, false)) => Target {
                host,
                port,
                https: false,
                addrs,
                pinned: false,
                repo_only: false,
            },
            Err(resp) => return resp,
        };
        self.forward(conn, &target, req).await
    }

    /// The policy decision and the resolution, with their refusals as responses.
    async fn admit(
        &self,
        host: &str,
        port: u16,
    ) -> Result<(Vec<std::net::SocketAddr>, bool), Response<Body>> {
        match self.decide(host, port).await {
            Ok(a) => Ok(a),
            Err(Refusal::Denied { code, reason }) => Err(self.deny(host, code, &reason)),
            Err(Refusal::Unresolved(reason)) => {
                Err(proxy_error(StatusCode::BAD_GATEWAY, "dns-failure", &reason))
            }
        }
    }

    /// The policy decision and the resolution, unrecorded: the addresses to connect to (an
    /// operator override's, when the host has one) and whether only the session's
    /// repositories may be reached there.
    async fn decide(
        &self,
        host: &str,
        port: u16,
    ) -> Result<(Vec<std::net::SocketAddr>, bool), Refusal> {
        let (verdict, repo_only): (Verdict, bool) = match self.policy.check_host(host) {
            Ok(v) => (v, false),
            // The session's own repositories stay reachable whatever the environment's
            // networking (those paths only); the operator's deny list still wins.
            Err(_) if !self.policy.denies(host) && self.has_repos(host, port).await => {
                (Verdict::PublicOnly, true)
            }
            Err(reason) => {
                return Err(Refusal::Denied {
                    code: "blocked-by-policy",
                    reason,
                });
            }
        };
        let (to_host, to_port) = self.shared.connect_to.target(host, port);
        match upstream::resolve(&to_host, to_port, verdict).await {
            Ok(a) => Ok((a, repo_only)),
            Err(Resolve::Refused(reason)) => Err(Refusal::Denied {
                code: "blocked-private-address",
                reason,
            }),
            Err(Resolve::Failed(reason)) => Err(Refusal::Unresolved(reason)),
        }
    }

    async fn connect(self: &Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        // The decision is made on the CONNECT target, never on what is said inside the tunnel.
        let Some((host, port)) = req
            .uri()
            .authority()
            .and_then(|a| split_authority(a.as_str(), 443))
        else {
            return proxy_error(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "CONNECT needs host:port",
            );
        };
        let (addrs, repo_only) = match self.admit(&host, port).await {
            Ok(a) => a,
            Err(resp) => return resp,
        };
        let rules = match self.rules().await {
            Ok(r) => r,
            Err(e) => return self.internal(&host, &e.to_string()),
        };
        let target = Target {
            host: host.clone(),
            port,
            https: true,
            addrs,
            pinned: true,
            repo_only,
        };
        if repo_only || rules.intercepts(&host, port) {
            let config = match self.shared.server_config(&host) {
                Ok(c) => c,
                Err(e) => return self.internal(&host, &e.to_string()),
            };
            let session = self.clone();
            self.clone().spawn(async move {
                let Ok(upgraded) = hyper::upgrade::on(req).await else {
                    return;
                };
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let Ok(tls) = acceptor.accept(TokioIo::new(upgraded)).await else {
                    return;
                };
                let conn = Arc::new(ConnState::default());
                let svc = service_fn(move |req| {
                    let session = session.clone();
                    let conn = conn.clone();
                    let target = target.clone();
                    async move { Ok::<_, Infallible>(session.forward(&conn, &target, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        } else {
            let mut upstream = match upstream::connect_tcp(&target.addrs).await {
                Ok(s) => s,
                Err(e) => return proxy_error(StatusCode::BAD_GATEWAY, "upstream-unreachable", &e),
            };
            let session = self.clone();
            self.clone().spawn(async move {
                let started = Instant::now();
                let Ok(upgraded) = hyper::upgrade::on(req).await else {
                    return;
                };
                let mut io = TokioIo::new(upgraded);
                let _ = tokio::io::copy_bidirectional(&mut io, &mut upstream).await;
                session.record(event::egress_forward(&host, None, 200, started.elapsed()));
            });
        }
        Response::new(full(Bytes::new()))
    }

    fn internal(&self, host: &str, error: &str) -> Response<Body> {
        tracing::error!(session_id = %self.session_id, host, error, "egress proxy failure");
        self.record(event::silent_catch("egress", error));
        proxy_error(
            StatusCode::BAD_GATEWAY,
            "proxy-failure",
            "the egress proxy could not prepare this connection",
        )
    }

    /// One request to `target`, with the session's credentials applied.
    async fn forward(
        &self,
        conn: &ConnState,
        target: &Target,
        req: Request<Incoming>,
    ) -> Response<Body> {
        let started = Instant::now();
        let (mut parts, body) = req.into_parts();
        let authority = match request_authority(&parts, target) {
            Ok(a) => a,
            Err(reason) => return self.deny(&target.host, "host-mismatch", &reason),
        };
        let rules = match self.rules().await {
            Ok(r) => r,
            Err(e) => return self.internal(&target.host, &e.to_string()),
        };
        let req_path = parts.uri.path().to_string();
        // A request of one of the session's repositories gets that repository's token (and
        // nothing else of the session's); under `limited` networking nothing else is open here.
        let repo = match target.https {
            true => rules.repo_for(&target.host, target.port, &req_path),
            false => None,
        };
        if target.repo_only && repo.is_none() {
            let reason = repo_only_reason(&target.host, self.policy.mode());
            return self.deny(&target.host, "blocked-by-policy", &reason);
        }
        let repo = repo.filter(|r| r.token.is_some());
        let mut repo_token: Option<String> = repo.and_then(|r| r.token.clone());
        let bearer = match repo {
            Some(_) => None,
            None => rules.bearer_for(&target.host, target.port, target.https, &req_path),
        };
        let env: Vec<&creds::EnvRule> = rules.env_for(&target.host).collect();

        strip_hop_by_hop(&mut parts.headers);
        let mut credential_id: Option<&str> = repo.map(|r| r.resource_id.as_str());
        if bearer.is_some() || repo.is_some() || !env.is_empty() {
            for name in CREDENTIAL_HEADERS {
                let keep = bearer.is_none()
                    && repo.is_none()
                    && parts.headers.get_all(*name).iter().all(|v| {
                        env.iter()
                            .any(|r| r.header && contains(v.as_bytes(), r.placeholder.as_bytes()))
                    });
                if !keep {
                    parts.headers.remove(*name);
                }
            }
            for rule in env.iter().filter(|r| r.header) {
                if substitute_headers(&mut parts.headers, rule) {
                    credential_id = Some(&rule.cred.credential_id);
                }
            }
        }
        if let Some(b) = bearer {
            credential_id = Some(&b.cred.credential_id);
        }
        let refreshable = match bearer.map(|b| &b.bearer) {
            Some(Bearer::OAuth {
                refresh: Some(r), ..
            }) => Some(r),
            _ => None,
        };
        let body_rules: Vec<&&creds::EnvRule> = env.iter().filter(|r| r.body).collect();
        let mut streamed = None;
        let buffered: Option<Bytes> = if !body_rules.is_empty() || refreshable.is_some() {
            match http_body_util::Limited::new(body, MAX_BUFFERED_BODY)
                .collect()
                .await
            {
                Ok(b) => {
                    let mut bytes = b.to_bytes();
                    for rule in &body_rules {
                        if contains(&bytes, rule.placeholder.as_bytes()) {
                            bytes =
                                replace(&bytes, rule.placeholder.as_bytes(), rule.value.as_bytes());
                            credential_id = credential_id.or(Some(&rule.cred.credential_id));
                        }
                    }
                    if parts.headers.contains_key(header::CONTENT_LENGTH) || !bytes.is_empty() {
                        parts
                            .headers
                            .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                    }
                    Some(bytes)
                }
                Err(_) => {
                    return proxy_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body-too-large",
                        "the request body could not be read whole (too large for credential substitution)",
                    );
                }
            }
        } else {
            streamed = Some(body);
            None
        };

        parts.uri = match parts.uri.path_and_query() {
            Some(pq) => Uri::from(pq.clone()),
            None => Uri::from_static("/"),
        };
        if let Ok(v) = HeaderValue::from_str(&authority) {
            parts.headers.insert(header::HOST, v);
        }
        let secrets: Vec<&str> = bearer
            .map(|b| b.token())
            .into_iter()
            .chain(env.iter().map(|r| r.value.as_str()))
            .collect();
        // The answer must be readable to be scrubbed of the secret: ask for it uncompressed.
        if !secrets.is_empty() || repo_token.is_some() {
            parts.headers.remove(header::ACCEPT_ENCODING);
        }

        let mut token = bearer.map(|b| b.token().to_string());
        // A token known to be expired (or about to) is refreshed before it is sent.
        if let (Some(refresh), Some(b)) = (refreshable, bearer)
            && let Bearer::OAuth {
                expires_at: Some(exp),
                ..
            } = b.bearer
            && exp <= oma_core::time::now_micros() + EXPIRY_MARGIN_MICROS
        {
            match oauth::refreshed_token(&self.refresh_ctx(), &b.cred, b.token(), refresh).await {
                Ok(t) => {
                    self.invalidate();
                    token = Some(t.access_token);
                }
                // The upstream may still take the old one; a refusal retries below.
                Err(e) => self.refresh_failed(&b.cred.credential_id, &e.to_string()),
            }
        }
        let mut retried = false;
        // Every repository token this request was sent with (scrubbed from the answer).
        let mut repo_tokens: Vec<String> = repo_token.iter().cloned().collect();
        let resp = loop {
            let mut p = clone_parts(&parts);
            if let Some(t) = &repo_token {
                match HeaderValue::from_str(&crate::repos::basic_for(t)) {
                    Ok(mut v) => {
                        v.set_sensitive(true);
                        p.headers.insert(header::AUTHORIZATION, v);
                    }
                    Err(_) => {
                        return self
                            .internal(&target.host, "a stored token is not a valid header value");
                    }
                }
            }
            if let Some(t) = &token {
                match HeaderValue::from_str(&format!("Bearer {t}")) {
                    Ok(mut v) => {
                        v.set_sensitive(true);
                        p.headers.insert(header::AUTHORIZATION, v);
                    }
                    Err(_) => {
                        return self
                            .internal(&target.host, "a stored token is not a valid header value");
                    }
                }
            }
            let b = match (&buffered, streamed.take()) {
                (Some(bytes), _) => full(bytes.clone()),
                (None, Some(incoming)) => incoming.map_err(Into::into).boxed(),
                (None, None) => full(Bytes::new()),
            };
            let resp = match self.send(conn, target, Request::from_parts(p, b)).await {
                Ok(r) => r,
                Err(e) => {
                    self.record(event::egress_forward(
                        &target.host,
                        credential_id,
                        502,
                        started.elapsed(),
                    ));
                    return proxy_error(StatusCode::BAD_GATEWAY, "upstream-failure", &e);
                }
            };
            let status = resp.status();
            // A refused repository request may have carried a token rotated meanwhile: read
            // the rules again and, when the token changed, send it once more (bodiless
            // requests only, such as the `info/refs` every git fetch and push starts with).
            if repo.is_some() && !retried && repo_retryable(&parts, status) {
                match self
                    .fresh_repo_token(target, &req_path, repo_token.as_deref())
                    .await
                {
                    Some(fresh) => {
                        repo_tokens.push(fresh.clone());
                        repo_token = Some(fresh);
                        retried = true;
                        drop(resp);
                        self.drop_upstream(conn).await;
                        continue;
                    }
                    None => break resp,
                }
            }
            let (Some(refresh), Some(b), false) = (refreshable, bearer, retried) else {
                break resp;
            };
            if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
                break resp;
            }
            let refused = token.as_deref().unwrap_or_default();
            match oauth::refreshed_token(&self.refresh_ctx(), &b.cred, refused, refresh).await {
                Ok(t) => {
                    self.invalidate();
                    token = Some(t.access_token);
                    retried = true;
                    // The refused answer is dropped unread; its connection is not reused.
                    drop(resp);
                    self.drop_upstream(conn).await;
                }
                Err(e) => {
                    self.refresh_failed(&b.cred.credential_id, &e.to_string());
                    break resp;
                }
            }
        };
        let (mut rparts, rbody) = resp.into_parts();
        strip_hop_by_hop(&mut rparts.headers);
        // A repository token is scrubbed as itself and as its header value.
        let repo_secrets: Vec<String> = repo_tokens
            .iter()
            .flat_map(|t| {
                let basic = crate::repos::basic_for(t);
                let b64 = basic.trim_start_matches("Basic ").to_string();
                [t.clone(), b64]
            })
            .collect();
        let mut secrets = secrets;
        secrets.extend(repo_secrets.iter().map(String::as_str));
        scrub_headers(&mut rparts.headers, &secrets, token.as_deref());
        self.record(event::egress_forward(
            &target.host,
            credential_id,
            rparts.status.as_u16(),
            started.elapsed(),
        ));
        let body: Body = rbody.map_err(Into::into).boxed();
        let needles: Vec<Vec<u8>> = secrets
            .iter()
            .copied()
            .chain(token.as_deref())
            .filter(|s| s.len() >= MIN_SCRUBBED)
            .map(|s| s.as_bytes().to_vec())
            .collect();
        if needles.is_empty() {
            Response::from_parts(rparts, body)
        } else {
            Response::from_parts(rparts, crate::scrub::Scrub::new(body, needles).boxed())
        }
    }

    /// Whether the session has repositories on `https://host:port`.
    async fn has_repos(&self, host: &str, port: u16) -> bool {
        match self.rules().await {
            Ok(r) => r.repos_on(host, port).next().is_some(),
            Err(_) => false,
        }
    }

    /// The repository token of `path` as the store holds it now, when it differs from `sent`.
    async fn fresh_repo_token(
        &self,
        target: &Target,
        path: &str,
        sent: Option<&str>,
    ) -> Option<String> {
        self.invalidate();
        let rules = self.rules().await.ok()?;
        let fresh = rules
            .repo_for(&target.host, target.port, path)?
            .token
            .clone()?;
        (Some(fresh.as_str()) != sent).then_some(fresh)
    }

    fn refresh_ctx(&self) -> RefreshCtx<'_> {
        RefreshCtx {
            shared: &self.shared,
            store: &self.store,
            sealer: &self.sealer,
            tenant: &self.tenant,
        }
    }

    fn refresh_failed(&self, credential_id: &str, error: &str) {
        tracing::warn!(session_id = %self.session_id, credential_id, error, "oauth refresh failed");
        self.record(event::silent_catch("egress.oauth_refresh", error));
    }

    async fn drop_upstream(&self, conn: &ConnState) {
        *conn.upstream.lock().await = None;
    }

    /// Sends on the box connection's warm upstream connection when it goes to the same place,
    /// else on a new one (also when a warm one turns out closed before the request went out).
    async fn send(
        &self,
        conn: &ConnState,
        target: &Target,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, String> {
        let key = format!(
            "{}://{}:{}",
            if target.https { "https" } else { "http" },
            target.host,
            target.port
        );
        let mut slot = conn.upstream.lock().await;
        let warm = match slot.take() {
            Some((k, mut s)) if k == key => s.ready().await.is_ok().then_some(s),
            _ => None,
        };
        let mut req = req;
        if let Some(mut sender) = warm {
            let fut = sender.try_send_request(req);
            *slot = Some((key.clone(), sender));
            drop(slot);
            match fut.await {
                Ok(r) => return Ok(r),
                Err(mut e) => match e.take_message() {
                    Some(back) => req = back,
                    None => return Err(format!("the upstream failed: {}", e.error())),
                },
            }
            slot = conn.upstream.lock().await;
        }
        let mut sender = self
            .shared
            .upstream
            .http1(&target.host, &target.addrs, target.https)
            .await?;
        let fut = sender.send_request(req);
        *slot = Some((key, sender));
        drop(slot);
        fut.await.map_err(|e| format!("the upstream failed: {e}"))
    }
}

impl Shared {
    fn server_config(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, EgressError> {
        if let Ok(cache) = self.server_configs.lock()
            && let Some(c) = cache.get(host)
        {
            return Ok(c.clone());
        }
        let leaf = self.ca.leaf(host)?;
        let mut config = rustls::ServerConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| EgressError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(leaf)));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        if let Ok(mut cache) = self.server_configs.lock() {
            // Bounded: a box with an unrestricted environment-variable credential has every
            // host it visits intercepted.
            if cache.len() >= crate::ca::MAX_CACHED_HOSTS {
                cache.clear();
            }
            cache.insert(host.to_string(), config.clone());
        }
        Ok(config)
    }
}

/// The `Host` to send upstream. On intercepted connections it must name the CONNECT target.
fn request_authority(parts: &http::request::Parts, target: &Target) -> Result<String, String> {
    let default_port = if target.https { 443 } else { 80 };
    let said = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()));
    let canonical = if target.port == default_port {
        target.host.clone()
    } else {
        format!("{}:{}", target.host, target.port)
    };
    if !target.pinned {
        return Ok(canonical);
    }
    match said
        .as_deref()
        .and_then(|s| split_authority(s, default_port))
    {
        Some((h, p)) if h == target.host && p == target.port => Ok(canonical),
        Some((h, p)) => Err(format!(
            "the request names {h}:{p} inside a tunnel to {}:{}",
            target.host, target.port
        )),
        None => Ok(canonical),
    }
}

/// Why a request is refused on a host that the environment's networking keeps closed but
/// where the session has repositories.
fn repo_only_reason(host: &str, mode: &str) -> String {
    format!(
        "{host} is not in the environment's allowed_hosts (networking: {mode}); only the \
         session's github_repository resources are reachable there"
    )
}

/// Whether a refused repository request may be sent again: refused with 401, 403 or 404 (how
/// GitHub answers a wrong token on a private repository), and without a body to replay.
fn repo_retryable(parts: &http::request::Parts, status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
    ) && (parts.method == Method::GET || parts.method == Method::HEAD)
        && parts
            .headers
            .get(header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0")
}

/// Constant-time comparison of the door's `Proxy-Authorization`.
fn door_admits(headers: &HeaderMap, expected: &str) -> bool {
    let Some(got) = headers.get(header::PROXY_AUTHORIZATION) else {
        return false;
    };
    let (a, b) = (got.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn clone_parts(parts: &http::request::Parts) -> http::request::Parts {
    let (mut p, ()) = Request::new(()).into_parts();
    p.method = parts.method.clone();
    p.uri = parts.uri.clone();
    p.version = parts.version;
    p.headers = parts.headers.clone();
    p
}

fn proxy_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let mut resp = Response::new(full(format!("oma egress proxy: {message}\n")));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(code) {
        h.insert(HeaderName::from_static("x-proxy-error"), v);
    }
    resp
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in [
        "connection",
        "proxy-connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(n);
    }
}

/// Replaces `rule`'s placeholder in every header value; whether anything changed.
fn substitute_headers(headers: &mut HeaderMap, rule: &creds::EnvRule) -> bool {
    let mut changed = false;
    for (_, v) in headers.iter_mut() {
        if contains(v.as_bytes(), rule.placeholder.as_bytes()) {
            let next = replace(
                v.as_bytes(),
                rule.placeholder.as_bytes(),
                rule.value.as_bytes(),
            );
            if let Ok(mut nv) = HeaderValue::from_bytes(&next) {
                nv.set_sensitive(true);
                *v = nv;
                changed = true;
            }
        }
    }
    changed
}

/// An upstream that echoes a secret in a response header must not hand it to the box.
fn scrub_headers(headers: &mut HeaderMap, secrets: &[&str], token: Option<&str>) {
    let all: Vec<&str> = secrets
        .iter()
        .copied()
        .chain(token)
        .filter(|s| s.len() >= MIN_SCRUBBED)
        .collect();
    if all.is_empty() {
        return;
    }
    for (_, v) in headers.iter_mut() {
        let mut bytes = Bytes::copy_from_slice(v.as_bytes());
        for s in &all {
            if contains(&bytes, s.as_bytes()) {
                bytes = replace(&bytes, s.as_bytes(), b"[redacted]");
            }
        }
        if bytes.as_ref() != v.as_bytes()
            && let Ok(nv) = HeaderValue::from_maybe_shared(bytes)
        {
            *v = nv;
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn replace(hay: &[u8], needle: &[u8], with: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_every_occurrence() {
        assert_eq!(
            &replace(b"a-PH-b-PH", b"PH", b"secret")[..],
            b"a-secret-b-secret"
        );
        assert!(contains(b"xxPHxx", b"PH"));
        assert!(!contains(b"xx", b""));
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-custom"));
        h.insert("x-custom", HeaderValue::from_static("1"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
    }
}
