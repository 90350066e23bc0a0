//! Connections to the outside: resolution with the address check, TCP, TLS, and HTTP/1.1
//! client handshakes.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::EgressError;
use crate::policy::{Verdict, is_non_public};

/// Per address tried; a black-holed destination must not hold a box's request for minutes.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// For the TLS handshake with an upstream.
const TLS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Body = BoxBody<Bytes, BoxError>;

pub(crate) fn full(b: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(b.into())
        .map_err(|never| match never {})
        .boxed()
}

pub(crate) struct Connector {
    tls: TlsConnector,
}

impl Connector {
    pub(crate) fn new(
        system: Vec<CertificateDer<'static>>,
        extra_pem: &[Vec<u8>],
    ) -> Result<Self, EgressError> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = RootCertStore::empty();
        // Unparseable system roots are skipped, as every TLS stack does.
        roots.add_parsable_certificates(system);
        for pem in extra_pem {
            for der in CertificateDer::pem_slice_iter(pem) {
                let der =
                    der.map_err(|e| EgressError::Tls(format!("an upstream root is not PEM: {e}")))?;
                roots
                    .add(der)
                    .map_err(|e| EgressError::Tls(format!("an upstream root is not valid: {e}")))?;
            }
        }
        let mut config = rustls::ClientConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| EgressError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Connector {
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// An HTTP/1.1 connection to `host:port` over one of `addrs` (already checked), TLS when
    /// `https`.
    pub(crate) async fn http1(
        &self,
        host: &str,
        addrs: &[SocketAddr],
        https: bool,
    ) -> Result<SendRequest<Body>, String> {
        let tcp = connect_tcp(addrs).await?;
        if https {
            let name = ServerName::try_from(host.to_string())
                .map_err(|_| format!("{host} is not a valid TLS server name"))?;
            let tls = tokio::time::timeout(TLS_TIMEOUT, self.tls.connect(name, tcp))
                .await
                .map_err(|_| format!("TLS with {host} timed out"))?
                .map_err(|e| format!("TLS with {host} failed: {e}"))?;
            handshake(TokioIo::new(tls)).await
        } else {
            handshake(TokioIo::new(tcp)).await
        }
    }
}

async fn handshake<I>(io: I) -> Result<SendRequest<Body>, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    tokio::spawn(async move {
        // The connection ends when the upstream closes it or the sender is dropped.
        let _ = conn.await;
    });
    Ok(sender)
}

pub(crate) async fn connect_tcp(addrs: &[SocketAddr]) -> Result<TcpStream, String> {
    let mut last = String::from("no address to connect to");
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => last = format!("connecting to {addr} failed: {e}"),
            Err(_) => last = format!("connecting to {addr} timed out"),
        }
    }
    Err(last)
}

/// Resolves `host:port` and keeps the addresses the verdict permits. `Err` is a refusal
/// reason when every address is non-public, or a resolution failure.
pub(crate) async fn resolve(
    host: &str,
    port: u16,
    verdict: Verdict,
) -> Result<Vec<SocketAddr>, Resolve> {
    let addrs: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| Resolve::Failed(format!("{host} does not resolve: {e}")))?
            .collect(),
    };
    if verdict == Verdict::Trusted {
        return Ok(addrs);
    }
    let public: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| !is_non_public(a.ip()))
        .collect();
    if public.is_empty() {
        return Err(Resolve::Refused(format!(
            "{host} resolves to a private, loopback or link-local address"
        )));
    }
    Ok(public)
}

pub(crate) enum Resolve {
    Refused(String),
    Failed(String),
}
