//! `web_fetch`, run on the host (not in the box): fetch a URL and hand the model its content.
//!
//! - Domain rules (semantics §9.3): `allowed_domains` / `blocked_domains` of the agent's
//!   web_fetch config; a domain covers itself and its subdomains; every redirect hop is
//!   checked again. A URL not allowed is an error result carrying `url_not_allowed`.
//! - Private networks: by default the fetch refuses loopback, private, link-local and other
//!   non-public addresses (including hostnames that resolve to them), so the model cannot
//!   reach the server's own network. [`WebFetchOptions::allow_private_networks`] lifts this.
//! - Size: the body is read up to a cap; HTML is reduced to text; text is cut to
//!   `max_content_tokens` (about 4 characters per token), or to a default budget.
//!
//! Errors are results whose text starts with the web_fetch error code of the model API
//! (`url_not_allowed`, `url_not_accessible`, `unsupported_content_type`, …).

use std::error::Error as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use oma_api::agents::WebFetchToolConfig;
use oma_sandbox::{OutputBlock, ToolOutcome};
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio_util::sync::CancellationToken;

use crate::html;

/// Longest URL accepted.
pub const MAX_URL_CHARS: usize = 2048;
/// Text returned when the config sets no `max_content_tokens`, in characters (about 25k
/// tokens, the size at which other tool outputs spill).
pub const DEFAULT_TEXT_CHARS: usize = 100_000;
/// Characters per token when applying `max_content_tokens`.
const CHARS_PER_TOKEN: usize = 4;
/// Largest image returned (raw), as for `read`.
const IMAGE_CAP: usize = oma_sandbox::limits::READ_IMAGE_CAP as usize;
/// Largest PDF returned.
const PDF_CAP: usize = oma_sandbox::limits::READ_PDF_CAP as usize;

/// Client-wide settings.
#[derive(Debug, Clone)]
pub struct WebFetchOptions {
    /// Allow fetching loopback, private and link-local addresses. Off by default: the server's
    /// own network is not the model's to explore.
    pub allow_private_networks: bool,
    /// Per-request timeout (each redirect hop).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Bytes of body read at most; a longer text body is cut, a longer PDF or image refused.
    pub max_body_bytes: usize,
    pub max_redirects: usize,
    pub user_agent: String,
}

impl Default for WebFetchOptions {
    fn default() -> Self {
        WebFetchOptions {
            allow_private_networks: false,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_body_bytes: PDF_CAP,
            max_redirects: 10,
            user_agent: format!("oma/{} (web_fetch)", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Which hosts a fetch may reach. Built from an agent's web_fetch config; several policies
/// [`combine`](DomainPolicy::combine) by narrowing (allowlists intersect, blocklists add up),
/// which is how a multiagent roster member is limited by its coordinator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainPolicy {
    /// Every list must cover the host. Empty: no allowlist.
    allow: Vec<Vec<String>>,
    /// No entry may cover the host.
    block: Vec<String>,
}

impl DomainPolicy {
    /// No restriction.
    pub fn unrestricted() -> Self {
        DomainPolicy::default()
    }

    pub fn from_config(config: &WebFetchToolConfig) -> Self {
        let norm = |list: &Option<Vec<String>>| -> Option<Vec<String>> {
            list.as_ref()
                .map(|l| l.iter().map(|d| normalize_domain(d)).collect())
        };
        DomainPolicy {
            allow: norm(&config.allowed_domains).into_iter().collect(),
            block: norm(&config.blocked_domains).unwrap_or_default(),
        }
    }

    /// Both policies at once.
    pub fn combine(mut self, other: &DomainPolicy) -> Self {
        self.allow.extend(other.allow.iter().cloned());
        self.block.extend(other.block.iter().cloned());
        self
    }

    /// `Err(reason)` when `host` may not be fetched.
    pub fn check(&self, host: &str) -> Result<(), String> {
        let host = normalize_domain(host);
        if let Some(d) = self.block.iter().find(|d| covers(d, &host)) {
            return Err(format!("{host} is blocked by blocked_domains ({d})"));
        }
        for list in &self.allow {
            if !list.iter().any(|d| covers(d, &host)) {
                return Err(format!(
                    "{host} is not in allowed_domains ({})",
                    list.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// Lower case, without a trailing `/` (allowed in config entries) or `.` (a fully qualified
/// name).
fn normalize_domain(d: &str) -> String {
    d.trim()
        .trim_end_matches('/')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// A domain covers itself and its subdomains.
fn covers(domain: &str, host: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// Per-call settings from the agent's config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebFetchSettings {
    pub policy: DomainPolicy,
    /// Token budget of the returned text; `None` uses [`DEFAULT_TEXT_CHARS`].
    pub max_content_tokens: Option<i64>,
}

impl WebFetchSettings {
    pub fn from_config(config: Option<&WebFetchToolConfig>) -> Self {
        match config {
            Some(c) => WebFetchSettings {
                policy: DomainPolicy::from_config(c),
                max_content_tokens: c.max_content_tokens,
            },
            None => WebFetchSettings::default(),
        }
    }

    fn text_budget(&self) -> usize {
        self.max_content_tokens
            .and_then(|t| usize::try_from(t).ok())
            .map_or(DEFAULT_TEXT_CHARS, |t| t.saturating_mul(CHARS_PER_TOKEN))
    }
}

/// The failure from the resolver when a name has only non-public addresses; recognised in
/// the error chain to report `url_not_allowed` rather than a connection failure.
#[derive(Debug)]
struct PrivateAddress(String);

impl std::fmt::Display for PrivateAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resolves only to private or local network addresses",
            self.0
        )
    }
}

impl std::error::Error for PrivateAddress {}

/// DNS through the system resolver, minus non-public addresses (unless allowed). Filtering
/// the resolved addresses (not the name) is what stops a public name pointing at 127.0.0.1.
struct FilteringResolver {
    allow_private: bool,
}

impl Resolve for FilteringResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(
                    Box::new(PrivateAddress(host)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let seg = v6.segments();
            // NAT64 (64:ff9b::/96) embeds an IPv4 address.
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                let o = v6.octets();
                return is_public_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local
                || (seg[0] & 0xffc0) == 0xfe80 // link-local
                || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1))
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // carrier-grade NAT 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240) // reserved
}

/// A shared HTTP client for `web_fetch`. Cheap to clone; build one per server.
#[derive(Clone)]
pub struct WebFetchClient {
    client: reqwest::Client,
    options: Arc<WebFetchOptions>,
}

impl WebFetchClient {
    pub fn new(options: WebFetchOptions) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            // Redirects are followed by hand so that every hop passes the domain rules.
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(FilteringResolver {
                allow_private: options.allow_private_networks,
            })
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .user_agent(options.user_agent.clone())
            .build()
            .map_err(|e| format!("cannot build the web_fetch HTTP client: {e}"))?;
        Ok(WebFetchClient {
            client,
            options: Arc::new(options),
        })
    }

    /// The same client going through a session's egress proxy (its host door at `proxy_url`,
    /// admitting `token`), trusting the roots in `ca_pem` (the deployment CA that signs
    /// intercepted hosts, and the operator's upstream roots).
    /// The proxy applies the session's networking policy and resolves names itself (refusing
    /// private addresses), so no resolver filter is needed here.
    pub fn through_proxy(
        &self,
        proxy_url: &str,
        token: &str,
        ca_pem: &str,
    ) -> Result<Self, String> {
        let proxy = reqwest::Proxy::all(proxy_url)
            .map_err(|e| format!("the egress proxy address {proxy_url}: {e}"))?
            .custom_http_auth(
                reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|e| format!("the egress proxy token: {e}"))?,
            );
        let roots = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes())
            .map_err(|e| format!("the egress proxy's roots: {e}"))?;
        if roots.is_empty() {
            return Err("the egress proxy's roots: no PEM certificate".into());
        }
        let o = &self.options;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .proxy(proxy);
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
        let client = builder
            .timeout(o.timeout)
            .connect_timeout(o.connect_timeout)
            .user_agent(o.user_agent.clone())
            .build()
            .map_err(|e| format!("cannot build the web_fetch HTTP client: {e}"))?;
        Ok(WebFetchClient {
            client,
            options: self.options.clone(),
        })
    }

    /// Fetches `url` under `settings`. Never fails: problems are error outcomes. A cancelled
    /// fetch returns `None`.
    pub async fn fetch(
        &self,
        url: &str,
        settings: &WebFetchSettings,
        cancel: &CancellationToken,
    ) -> Option<ToolOutcome> {
        tokio::select! {
            outcome = self.fetch_inner(url, settings) => Some(outcome),
            _ = cancel.cancelled() => None,
        }
    }

    async fn fetch_inner(&self, raw: &str, settings: &WebFetchSettings) -> ToolOutcome {
        let raw = raw.trim();
        if raw.chars().count() > MAX_URL_CHARS {
            return failure(
                "url_too_long",
                format!("the URL is longer than {MAX_URL_CHARS} characters"),
            );
        }
        let mut url = match Url::parse(raw) {
            Ok(u) => u,
            Err(e) => {
                return failure(
                    "invalid_tool_input",
                    format!("`{raw}` is not a valid URL: {e}"),
                );
            }
        };
        let mut hops = 0;
        let response = loop {
            if let Err(outcome) = self.check_url(&url, settings) {
                return outcome;
            }
            let resp = match self.client.get(url.clone()).send().await {
                Ok(r) => r,
                Err(e) => return self.request_failure(&url, &e),
            };
            if resp.status().is_redirection()
                && let Some(location) = resp.headers().get(reqwest::header::LOCATION)
            {
                hops += 1;
                if hops > self.options.max_redirects {
                    return failure(
                        "url_not_accessible",
                        format!("{url}: more than {} redirects", self.options.max_redirects),
                    );
                }
                let next = location.to_str().ok().and_then(|l| url.join(l).ok());
                match next {
                    Some(next) => {
                        url = next;
                        continue;
                    }
                    None => {
                        return failure(
                            "url_not_accessible",
                            format!("{url}: the redirect has an invalid Location header"),
                        );
                    }
                }
            }
            break resp;
        };

        let status = response.status();
        if !status.is_success() {
            return failure(
                "url_not_accessible",
                format!("{url} answered HTTP {status}"),
            );
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let (body, truncated) = match read_body(response, self.options.max_body_bytes).await {
            Ok(b) => b,
            Err(e) => {
                return failure(
                    "url_not_accessible",
                    format!("{url}: reading the body failed: {e}"),
                );
            }
        };
        render(&url, &content_type, body, truncated, settings)
    }

    fn check_url(&self, url: &Url, settings: &WebFetchSettings) -> Result<(), ToolOutcome> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(failure(
                "invalid_tool_input",
                format!("{url}: only http and https URLs can be fetched"),
            ));
        }
        let Some(host) = url.host_str() else {
            return Err(failure(
                "invalid_tool_input",
                format!("{url}: the URL has no host"),
            ));
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        // An address literal never goes through the resolver, so it is checked here.
        if let Ok(ip) = host.parse::<IpAddr>()
            && !self.options.allow_private_networks
            && !is_public(ip)
        {
            return Err(failure(
                "url_not_allowed",
                format!("{url}: private and local network addresses cannot be fetched"),
            ));
        }
        settings
            .policy
            .check(host)
            .map_err(|why| failure("url_not_allowed", format!("{url}: {why}")))
    }

    fn request_failure(&self, url: &Url, e: &reqwest::Error) -> ToolOutcome {
        let mut source = e.source();
        while let Some(s) = source {
            if let Some(p) = s.downcast_ref::<PrivateAddress>() {
                return failure("url_not_allowed", format!("{url}: {p}"));
            }
            source = s.source();
        }
        let what = if e.is_timeout() {
            "the request timed out".to_string()
        } else if e.is_connect() {
            format!("cannot connect ({})", root_cause(e))
        } else {
            root_cause(e)
        };
        failure("url_not_accessible", format!("{url}: {what}"))
    }
}

fn root_cause(e: &reqwest::Error) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
}

/// An error outcome whose text starts with the model API's web_fetch error code.
fn failure(code: &str, detail: String) -> ToolOutcome {
    ToolOutcome::error(format!("{code}: {detail}"))
}

/// Reads at most `cap` bytes; the flag says whether more was left.
async fn read_body(
    mut resp: reqwest::Response,
    cap: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

fn is_texty(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || matches!(
            content_type,
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-javascript"
                | "application/ecmascript"
                | "application/x-yaml"
                | "application/yaml"
                | "application/toml"
                | "application/x-sh"
                | "application/sql"
                | "application/graphql"
        )
        || content_type.ends_with("+json")
        || content_type.ends_with("+xml")
}

fn render(
    url: &Url,
    content_type: &str,
    body: Vec<u8>,
    truncated: bool,
    settings: &WebFetchSettings,
) -> ToolOutcome {
    let sniffed_html = content_type.is_empty() && {
        let head = String::from_utf8_lossy(&body[..body.len().min(512)]).to_ascii_lowercase();
        head.contains("<html") || head.contains("<!doctype html")
    };
    match content_type {
        "application/pdf" => {
            if truncated || body.len() > PDF_CAP {
                return failure(
                    "content_too_large",
                    format!(
                        "{url}: the PDF is larger than {} MiB",
                        PDF_CAP / (1024 * 1024)
                    ),
                );
            }
            binary_block(true, content_type, &body)
        }
        "image/png" | "image/jpeg" | "image/gif" | "image/webp" => {
            if truncated || body.len() > IMAGE_CAP {
                return failure(
                    "content_too_large",
                    format!("{url}: the image is larger than the image size limit"),
                );
            }
            binary_block(false, content_type, &body)
        }
        "text/html" | "application/xhtml+xml" => {
            html_result(url, content_type, &body, truncated, settings)
        }
        ct if sniffed_html => html_result(url, ct, &body, truncated, settings),
        ct if is_texty(ct) || (ct.is_empty() && std::str::from_utf8(&body).is_ok()) => {
            let text = String::from_utf8_lossy(&body);
            text_result(
                url,
                if ct.is_empty() { "text/plain" } else { ct },
                None,
                &text,
                truncated,
                settings,
            )
        }
        ct => failure(
            "unsupported_content_type",
            format!(
                "{url}: content type `{}` cannot be returned; HTML, text, PDF and images can",
                if ct.is_empty() { "unknown" } else { ct }
            ),
        ),
    }
}

fn html_result(
    url: &Url,
    content_type: &str,
    body: &[u8],
    truncated: bool,
    settings: &WebFetchSettings,
) -> ToolOutcome {
    let page = String::from_utf8_lossy(body);
    let title = html::title(&page);
    let text = html::to_text(&page);
    text_result(
        url,
        content_type,
        title.as_deref(),
        &text,
        truncated,
        settings,
    )
}

fn text_result(
    url: &Url,
    content_type: &str,
    title: Option<&str>,
    text: &str,
    body_truncated: bool,
    settings: &WebFetchSettings,
) -> ToolOutcome {
    let budget = settings.text_budget();
    let (shown, cut) = match text.char_indices().nth(budget) {
        Some((at, _)) => (&text[..at], true),
        None => (text, false),
    };
    let mut out = format!("URL: {url}\nContent-Type: {content_type}\n");
    if let Some(t) = title {
        out.push_str(&format!("Title: {t}\n"));
    }
    out.push('\n');
    out.push_str(if shown.trim().is_empty() {
        "(the page has no text content)"
    } else {
        shown
    });
    if cut {
        out.push_str(&format!(
            "\n\n[Content truncated to about {} tokens.]",
            budget / CHARS_PER_TOKEN
        ));
    } else if body_truncated {
        out.push_str(
            "\n\n[The page is larger than the download limit; only its beginning was read.]",
        );
    }
    ToolOutcome::text(out)
}

fn binary_block(document: bool, media_type: &str, body: &[u8]) -> ToolOutcome {
    let data_base64 = base64::engine::general_purpose::STANDARD.encode(body);
    let block = if document {
        OutputBlock::Document {
            media_type: media_type.to_string(),
            data_base64,
        }
    } else {
        OutputBlock::Image {
            media_type: media_type.to_string(),
            data_base64,
        }
    };
    ToolOutcome {
        content: vec![block],
        is_error: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(allowed: Option<&[&str]>, blocked: Option<&[&str]>) -> WebFetchToolConfig {
        WebFetchToolConfig {
            name: "web_fetch".into(),
            enabled: true,
            permission_policy: oma_api::agents::PermissionPolicy::AlwaysAllow,
            url_sources: None,
            allowed_domains: allowed.map(|l| l.iter().map(|s| s.to_string()).collect()),
            blocked_domains: blocked.map(|l| l.iter().map(|s| s.to_string()).collect()),
            max_content_tokens: None,
        }
    }

    #[test]
    fn domains_cover_themselves_and_subdomains() {
        let p = DomainPolicy::from_config(&cfg(Some(&["Example.com/", "docs.rs"]), None));
        assert!(p.check("example.com").is_ok());
        assert!(p.check("API.example.com.").is_ok());
        assert!(p.check("docs.rs").is_ok());
        assert!(p.check("badexample.com").is_err());
        assert!(p.check("example.com.evil.net").is_err());
        let p = DomainPolicy::from_config(&cfg(None, Some(&["ads.example.com"])));
        assert!(p.check("example.com").is_ok());
        assert!(p.check("x.ads.example.com").is_err());
        // Combining narrows: both allowlists must cover, either blocklist blocks.
        let a = DomainPolicy::from_config(&cfg(Some(&["example.com"]), None));
        let b = DomainPolicy::from_config(&cfg(
            Some(&["api.example.com"]),
            Some(&["bad.api.example.com"]),
        ));
        let both = a.combine(&b);
        assert!(both.check("api.example.com").is_ok());
        assert!(both.check("www.example.com").is_err());
        assert!(both.check("bad.api.example.com").is_err());
        assert!(DomainPolicy::unrestricted().check("anything.org").is_ok());
    }

    #[test]
    fn non_public_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn text_budget_follows_max_content_tokens() {
        let url = Url::parse("https://example.com/a").unwrap();
        let settings = WebFetchSettings {
            policy: DomainPolicy::unrestricted(),
            max_content_tokens: Some(2),
        };
        let out = text_result(&url, "text/plain", None, "abcdefghijkl", false, &settings);
        let text = out.text_content();
        assert!(
            text.contains("\n\nabcdefgh\n\n[Content truncated to about 2 tokens.]"),
            "{text}"
        );
        let out = render(
            &url,
            "application/octet-stream",
            vec![0, 1, 2],
            false,
            &settings,
        );
        assert!(out.is_error);
        assert!(out.text_content().starts_with("unsupported_content_type"));
    }
}
