//! `--metrics`: the server runs its Prometheus listener (which turns on per-request HTTP
//! accounting) and is scraped once a second, far more often than Prometheus usually does, so
//! the figures show an upper bound of what metrics cost.

use std::time::Duration;

use anyhow::{Context, Result};
use oma_server::AppState;
use tokio::task::JoinHandle;

/// Starts the listener and the scraper on the server's runtime; abort both when done.
pub async fn start(state: &AppState) -> Result<Vec<JoinHandle<()>>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the metrics listener")?;
    let url = format!("http://{}/metrics", listener.local_addr()?);
    let state = state.clone();
    let serve = tokio::spawn(async move {
        let _ = oma_server::metrics::serve(listener, state, std::future::pending()).await;
    });
    let client = reqwest::Client::builder().no_proxy().build()?;
    let scrape = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if let Ok(r) = client.get(&url).send().await {
                let _ = r.bytes().await;
            }
        }
    });
    Ok(vec![serve, scrape])
}
