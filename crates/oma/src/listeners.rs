//! `oma serve`'s TLS settings and its metrics listener, layered like every setting: flag or
//! `OMA_*` variable over `oma.toml` (with its overlay).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use oma_server::AppState;
use oma_server::tls::{ReloadingResolver, ServerConfig, TlsFiles};

use crate::config::FileConfig;
use crate::serve::ServeArgs;

/// The TLS configuration when a certificate and key are configured. The files are loaded now,
/// so a server never starts with a certificate it cannot serve.
pub fn tls_config(args: &ServeArgs, file: &FileConfig) -> Result<Option<Arc<ServerConfig>>> {
    let cert = args.tls_cert.clone().or_else(|| file.tls.cert.clone());
    let key = args.tls_key.clone().or_else(|| file.tls.key.clone());
    let files = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => TlsFiles { cert, key },
        _ => bail!(
            "TLS needs both a certificate and a key: --tls-cert and --tls-key (OMA_TLS_CERT, \
             OMA_TLS_KEY, or cert and key under [tls] in oma.toml)"
        ),
    };
    let resolver = ReloadingResolver::new(files.clone(), oma_server::tls::provider())
        .context("loading the TLS certificate")?;
    let config = oma_server::tls::server_config(Arc::new(resolver))?;
    tracing::info!(
        op = "tls",
        cert = %files.cert.display(),
        key = %files.key.display(),
        "terminating TLS; renewed certificate files are picked up without a restart"
    );
    Ok(Some(Arc::new(config)))
}

/// Starts the Prometheus listener when one is configured; it runs until aborted.
pub async fn start_metrics(
    args: &ServeArgs,
    file: &FileConfig,
    state: &AppState,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(listen) = args
        .metrics_listen
        .clone()
        .or_else(|| file.metrics_listen.clone())
        .filter(|l| !l.trim().is_empty())
    else {
        return Ok(None);
    };
    let addr: SocketAddr = listen
        .trim()
        .parse()
        .with_context(|| format!("invalid --metrics-listen address `{listen}`"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics listener {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(op = "metrics", listen = %local, "metrics on http://{local}/metrics");
    let state = state.clone();
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = oma_server::metrics::serve(listener, state, std::future::pending()).await {
            tracing::error!(op = "metrics", error = %e, "the metrics listener stopped");
        }
    })))
}
