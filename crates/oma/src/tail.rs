//! `oma tail`: prints a running server's log records as they happen, read from its admin log
//! stream (`GET /v1/oma/admin/logs`, SSE). One JSON object per line on stdout; when this
//! client falls behind, the server skips records and a `lagged N` line says how many.

use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Args, Debug)]
pub struct TailArgs {
    /// The server's base URL.
    #[arg(long, env = "OMA_URL", default_value = "http://127.0.0.1:8787")]
    pub url: String,
    /// The server's admin key (`OMA_ADMIN_KEY` of the server).
    #[arg(long, env = "OMA_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: String,
    /// Only this component: api, runtime, integrations, sandbox, egress, store, ops, server.
    #[arg(long)]
    pub component: Option<String>,
    #[arg(long)]
    pub tenant: Option<String>,
    #[arg(long)]
    pub session: Option<String>,
    /// The least severe level shown: error, warn, info, debug, trace.
    #[arg(long)]
    pub level: Option<String>,
}

pub async fn run(args: TailArgs) -> Result<()> {
    let mut query = form_urlencoded_pairs(&args);
    let url = format!(
        "{}/v1/oma/admin/logs{}",
        args.url.trim_end_matches('/'),
        if query.is_empty() {
            String::new()
        } else {
            query.insert(0, '?');
            query
        }
    );
    let client = reqwest::Client::builder()
        .build()
        .context("building the HTTP client")?;
    let mut resp = client
        .get(&url)
        .header("x-api-key", &args.admin_key)
        .header("accept", "text/event-stream")
        .send()
        .await
        .with_context(|| format!("connecting to {}", args.url))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.pointer("/error/message")?.as_str().map(str::to_string))
            .unwrap_or(body);
        bail!("the server refused the log stream ({status}): {message}");
    }
    eprintln!("tailing {} (Ctrl-C to stop)", args.url);
    let mut parser = oma_sse::SseParser::new();
    let stdout = std::io::stdout();
    loop {
        let chunk = tokio::select! {
            c = resp.chunk() => c.context("reading the log stream")?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let Some(chunk) = chunk else {
            bail!("the server closed the log stream");
        };
        for event in parser.push(&chunk).context("reading the log stream")? {
            use std::io::Write;
            let mut out = stdout.lock();
            let data = event.data;
            let line = match event.event.as_str() {
                "ping" => continue,
                "lagged" => {
                    let n = serde_json::from_str::<serde_json::Value>(&data)
                        .ok()
                        .and_then(|v| v["skipped"].as_u64())
                        .unwrap_or(0);
                    format!("lagged {n}")
                }
                _ => data,
            };
            // A closed stdout (`oma tail | head`) ends the tail quietly.
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                return Ok(());
            }
        }
    }
}

fn form_urlencoded_pairs(args: &TailArgs) -> String {
    let mut q = String::new();
    for (k, v) in [
        ("component", &args.component),
        ("tenant", &args.tenant),
        ("session", &args.session),
        ("level", &args.level),
    ] {
        if let Some(v) = v {
            if !q.is_empty() {
                q.push('&');
            }
            q.push_str(k);
            q.push('=');
            q.push_str(&percent_encode(v));
        }
    }
    q
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(percent_encode("sesn_1 x"), "sesn_1%20x");
    }
}
