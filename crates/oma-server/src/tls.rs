//! TLS termination with certificates that renew without a restart.
//!
//! The server certificate comes from a resolver that looks at the certificate and key files
//! (one `stat` each, at most once per [`CHECK_EVERY`]) and reloads them when either changed.
//! A new pair that does not load — half written, key and certificate not matching, not PEM —
//! keeps the previous certificate in service and is logged once per distinct file version.
//! rustls uses the aws-lc-rs provider, the one reqwest already links, so there is a single
//! crypto stack in the binary.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How often, at most, the files are looked at again (on a handshake).
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// A TLS handshake that takes longer than this is dropped (a stalled client must not hold a
/// task forever).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The PEM files: a certificate chain (leaf first) and its private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: String },
    #[error("{path} is not a PEM certificate chain: {reason}")]
    BadCertificate { path: String, reason: String },
    #[error("{path} is not a PEM private key: {reason}")]
    BadKey { path: String, reason: String },
    #[error("the key in {key} does not fit the certificate in {cert}: {reason}")]
    Mismatch {
        cert: String,
        key: String,
        reason: String,
    },
    #[error("TLS setup: {0}")]
    Config(String),
}

/// What identifies a version of a file: a renewal changes at least one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode,
    })
}

#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    /// The file versions `key` was loaded from, or that last failed to load.
    seen: (Option<Stamp>, Option<Stamp>),
    checked: Instant,
}

/// Serves the certificate from [`TlsFiles`], reloading it when the files change.
#[derive(Debug)]
pub struct ReloadingResolver {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    check_every: Duration,
    current: Mutex<Current>,
}

impl ReloadingResolver {
    /// Loads the files now: a server must not start with a certificate it cannot serve.
    pub fn new(files: TlsFiles, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let seen = (stamp(&files.cert), stamp(&files.key));
        let key = Arc::new(load(&files, &provider)?);
        Ok(Self {
            files,
            provider,
            check_every: CHECK_EVERY,
            current: Mutex::new(Current {
                key,
                seen,
                checked: Instant::now(),
            }),
        })
    }

    /// Looks at the files on every handshake instead of at most once per [`CHECK_EVERY`].
    pub fn check_every(mut self, every: Duration) -> Self {
        self.check_every = every;
        self
    }

    /// The certificate in service, after reloading it if the files changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        // A poisoned lock means a panic mid-update; the previous certificate is still valid.
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if cur.checked.elapsed() < self.check_every {
            return cur.key.clone();
        }
        cur.checked = Instant::now();
        let now = (stamp(&self.files.cert), stamp(&self.files.key));
        if now == cur.seen {
            return cur.key.clone();
        }
        cur.seen = now;
        match load(&self.files, &self.provider) {
            Ok(k) => {
                tracing::info!(
                    op = "tls",
                    cert = %self.files.cert.display(),
                    "loaded a renewed TLS certificate"
                );
                cur.key = Arc::new(k);
            }
            Err(e) => tracing::error!(
                op = "tls",
                cert = %self.files.cert.display(),
                key = %self.files.key.display(),
                error = %e,
                "the renewed TLS certificate cannot be used; still serving the previous one"
            ),
        }
        cur.key.clone()
    }
}

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    let cert_path = files.cert.display().to_string();
    let key_path = files.key.display().to_string();
    let certs = CertificateDer::pem_slice_iter(&read(&files.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: cert_path.clone(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_path });
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?).map_err(|e| TlsError::BadKey {
        path: key_path.clone(),
        reason: e.to_string(),
    })?;
    CertifiedKey::from_der(certs, key, provider).map_err(|e| TlsError::Mismatch {
        cert: cert_path,
        key: key_path,
        reason: e.to_string(),
    })
}

/// A rustls server configuration (HTTP/1.1) over `resolver`.
pub fn server_config(resolver: Arc<ReloadingResolver>) -> Result<rustls::ServerConfig, TlsError> {
    let provider = resolver.provider.clone();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The crypto provider oma uses (aws-lc-rs, shared with reqwest).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Accepts TCP connections and hands out those that completed a TLS handshake. Handshakes run
/// in their own tasks, so a slow or silent client never holds up the others.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    acceptor_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(64);
        let acceptor_task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(op = "tls", error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(op = "tls", %peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(op = "tls", %peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            local,
            ready,
            acceptor_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor_task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task holds a sender until it is aborted on drop, so this is never
            // reached while the listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
