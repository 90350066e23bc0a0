//! `web_search`, run on the host (not in the box) against the search backend the operator
//! configured: the Brave Search API or a SearXNG instance, each spoken in its own wire format.
//!
//! - Without a backend the tool is not offered to the model at all (see
//!   [`crate::Toolbox::with_search`]).
//! - Domain rules (semantics §9.3): `allowed_domains` keeps only results on those domains,
//!   `blocked_domains` drops them, silently. A domain covers itself and its subdomains;
//!   matching is case-insensitive and one trailing `/` is ignored; a web_search entry may add a
//!   path (`example.com/docs`), which then covers that path and what lies below it.
//! - `user_location.country` is passed to backends that take a country (Brave).
//! - A search the backend answered is metered ([`SearchRun::executed`]); one that failed is an
//!   error result naming the provider and the HTTP status, never the API key.
//!
//! Error results start with the web_search error code of the model API (`invalid_tool_input`,
//! `query_too_long`, `too_many_requests`, `unavailable`), as web_fetch's do.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use oma_api::agents::WebSearchToolConfig;
use oma_sandbox::ToolOutcome;
use reqwest::Url;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::html;

/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 500;
/// Results asked for when the operator sets no `max_results`.
pub const DEFAULT_MAX_RESULTS: usize = 10;
/// The most results one search returns (Brave's `count` cap).
pub const MAX_RESULTS_CAP: usize = 20;
/// The Brave Search API.
pub const BRAVE_BASE_URL: &str = "https://api.search.brave.com";
/// Characters of a snippet shown at most.
const SNIPPET_CHARS: usize = 600;
/// Bytes of a backend response read at most.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Which search service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchProvider {
    /// The Brave Search API: `GET /res/v1/web/search`, key in `X-Subscription-Token`.
    Brave,
    /// A SearXNG instance with the JSON format enabled: `GET /search?format=json`.
    Searxng,
}

impl SearchProvider {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "brave" => Some(SearchProvider::Brave),
            "searxng" => Some(SearchProvider::Searxng),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SearchProvider::Brave => "brave",
            SearchProvider::Searxng => "searxng",
        }
    }

    /// The real service's URL, when there is one (SearXNG is always self-hosted).
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            SearchProvider::Brave => Some(BRAVE_BASE_URL),
            SearchProvider::Searxng => None,
        }
    }
}

impl fmt::Display for SearchProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operator's backend settings.
#[derive(Clone)]
pub struct WebSearchOptions {
    pub provider: SearchProvider,
    /// Where the service answers (scheme, host, optional port and path prefix).
    pub base_url: String,
    /// Brave's subscription token. Never logged, never shown to the model.
    pub api_key: Option<String>,
    /// Results per search, 1 to [`MAX_RESULTS_CAP`].
    pub max_results: usize,
    pub timeout: Duration,
    pub user_agent: String,
}

impl WebSearchOptions {
    /// Defaults for `provider`: its real service's URL (empty for SearXNG, which needs one),
    /// [`DEFAULT_MAX_RESULTS`] results, a 15 s timeout.
    pub fn new(provider: SearchProvider) -> Self {
        WebSearchOptions {
            provider,
            base_url: provider.default_base_url().unwrap_or_default().to_string(),
            api_key: None,
            max_results: DEFAULT_MAX_RESULTS,
            timeout: Duration::from_secs(15),
            user_agent: format!("oma/{} (web_search)", env!("CARGO_PKG_VERSION")),
        }
    }
}

impl fmt::Debug for WebSearchOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSearchOptions")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("max_results", &self.max_results)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why a backend cannot be set up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebSearchError {
    #[error("web_search base_url `{url}` is not an absolute http(s) URL: {why}")]
    BaseUrl { url: String, why: String },
    #[error("web_search provider `{0}` needs an API key")]
    MissingKey(SearchProvider),
    #[error("web_search max_results must be between 1 and {MAX_RESULTS_CAP}, got {0}")]
    MaxResults(usize),
    #[error("cannot build the web_search HTTP client: {0}")]
    Client(String),
}

/// One search result as the backends describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchResult {
    pub title: String,
    pub url: String,
    pub snippet: String,
    /// How old the page is (`page_age` / `publishedDate`), as the backend says it.
    pub age: Option<String>,
}

/// A search that ran (or tried to).
#[derive(Debug, Clone)]
pub struct SearchRun {
    pub outcome: ToolOutcome,
    /// The backend answered the query: the search counts in `server_tool_use`.
    pub executed: bool,
}

/// One allow or block entry: a domain and, for web_search, an optional path under it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DomainRule {
    host: String,
    /// Without a trailing `/`; `None` covers every path.
    path: Option<String>,
}

impl DomainRule {
    fn parse(entry: &str) -> Self {
        let e = entry.trim().to_ascii_lowercase();
        let e = e.strip_suffix('/').unwrap_or(&e);
        match e.split_once('/') {
            Some((host, path)) => {
                let path = path.trim_end_matches('/');
                DomainRule {
                    host: host.trim_end_matches('.').to_string(),
                    path: (!path.is_empty()).then(|| format!("/{path}")),
                }
            }
            None => DomainRule {
                host: e.trim_end_matches('.').to_string(),
                path: None,
            },
        }
    }

    fn covers(&self, host: &str, path: &str) -> bool {
        let host_ok = host == self.host
            || host
                .strip_suffix(self.host.as_str())
                .is_some_and(|rest| rest.ends_with('.'));
        host_ok
            && self.path.as_deref().is_none_or(|p| {
                path.strip_prefix(p)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']))
            })
    }
}

/// Which results a search may return. Several policies [`combine`](SearchPolicy::combine)
/// by narrowing: allowlists intersect, blocklists add up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchPolicy {
    allow: Vec<Vec<DomainRule>>,
    block: Vec<DomainRule>,
}

impl SearchPolicy {
    pub fn unrestricted() -> Self {
        SearchPolicy::default()
    }

    pub fn from_lists(allowed: Option<&[String]>, blocked: Option<&[String]>) -> Self {
        let rules = |l: &[String]| l.iter().map(|d| DomainRule::parse(d)).collect::<Vec<_>>();
        SearchPolicy {
            allow: allowed.map(rules).into_iter().collect(),
            block: blocked.map(rules).unwrap_or_default(),
        }
    }

    pub fn combine(mut self, other: &SearchPolicy) -> Self {
        self.allow.extend(other.allow.iter().cloned());
        self.block.extend(other.block.iter().cloned());
        self
    }

    /// Whether a result at `url` may be shown. A URL that does not parse, or has no host,
    /// is never shown under a rule.
    pub fn allows(&self, url: &str) -> bool {
        if self.allow.is_empty() && self.block.is_empty() {
            return true;
        }
        let Ok(u) = Url::parse(url) else {
            return false;
        };
        let Some(host) = u.host_str() else {
            return false;
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let path = u.path().to_ascii_lowercase();
        !self.block.iter().any(|r| r.covers(&host, &path))
            && self
                .allow
                .iter()
                .all(|list| list.iter().any(|r| r.covers(&host, &path)))
    }
}

/// Per-call settings from the agent's web_search config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebSearchSettings {
    pub policy: SearchPolicy,
    /// ISO 3166-1 alpha-2 code from `user_location.country`.
    pub country: Option<String>,
}

impl WebSearchSettings {
    pub fn from_config(config: Option<&WebSearchToolConfig>) -> Self {
        let Some(c) = config else {
            return WebSearchSettings::default();
        };
        WebSearchSettings {
            policy: SearchPolicy::from_lists(
                c.allowed_domains.as_deref(),
                c.blocked_domains.as_deref(),
            ),
            country: c
                .user_location
                .as_ref()
                .and_then(|l| l.country.as_deref())
                .map(str::trim)
                .filter(|c| c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()))
                .map(str::to_ascii_uppercase),
        }
    }
}

/// Checks a query: 1 to [`MAX_QUERY_CHARS`] characters, not only whitespace.
pub fn validate_query(query: &str) -> Result<&str, String> {
    let q = query.trim();
    if q.is_empty() {
        return Err(
            "invalid_tool_input: invalid input for web_search: `query` must not be empty"
                .to_string(),
        );
    }
    let n = q.chars().count();
    if n > MAX_QUERY_CHARS {
        return Err(format!(
            "query_too_long: invalid input for web_search: `query` must be at most \
             {MAX_QUERY_CHARS} characters, got {n}"
        ));
    }
    Ok(q)
}

/// The search backend client. Cheap to clone; build one per server.
#[derive(Clone)]
pub struct WebSearchClient {
    client: reqwest::Client,
    options: Arc<WebSearchOptions>,
    base: Url,
}

impl fmt::Debug for WebSearchClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSearchClient")
            .field("options", &self.options)
            .finish()
    }
}

impl WebSearchClient {
    pub fn new(options: WebSearchOptions) -> Result<Self, WebSearchError> {
        let bad = |why: String| WebSearchError::BaseUrl {
            url: options.base_url.clone(),
            why,
        };
        let mut base = Url::parse(options.base_url.trim()).map_err(|e| bad(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(bad("expected http:// or https:// and a host".into()));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(bad("it must not have a query or fragment".into()));
        }
        // Paths are appended to the base: `https://host/searx` + `/search`.
        let trimmed = base.path().trim_end_matches('/').to_string();
        base.set_path(&trimmed);
        if !(1..=MAX_RESULTS_CAP).contains(&options.max_results) {
            return Err(WebSearchError::MaxResults(options.max_results));
        }
        if options.provider == SearchProvider::Brave
            && options
                .api_key
                .as_deref()
                .is_none_or(|k| k.trim().is_empty())
        {
            return Err(WebSearchError::MissingKey(options.provider));
        }
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(10)))
            .user_agent(options.user_agent.clone())
            .build()
            .map_err(|e| WebSearchError::Client(e.to_string()))?;
        Ok(WebSearchClient {
            client,
            options: Arc::new(options),
            base,
        })
    }

    pub fn provider(&self) -> SearchProvider {
        self.options.provider
    }

    /// Where the backend is, for logs (no credentials in it).
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    pub fn max_results(&self) -> usize {
        self.options.max_results
    }

    /// The URL one search asks for.
    pub fn request_url(&self, query: &str, settings: &WebSearchSettings) -> Url {
        let mut url = self.base.clone();
        let path = match self.options.provider {
            SearchProvider::Brave => "/res/v1/web/search",
            SearchProvider::Searxng => "/search",
        };
        let joined = format!("{}{path}", url.path().trim_end_matches('/'));
        url.set_path(&joined);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("q", query);
            match self.options.provider {
                SearchProvider::Brave => {
                    q.append_pair("count", &self.options.max_results.to_string());
                    if let Some(c) = &settings.country {
                        q.append_pair("country", c);
                    }
                }
                SearchProvider::Searxng => {
                    q.append_pair("format", "json");
                }
            }
        }
        url
    }

    /// Searches `query` under `settings`. Never fails: problems are error outcomes. A
    /// cancelled search returns `None`.
    pub async fn search(
        &self,
        query: &str,
        settings: &WebSearchSettings,
        cancel: &CancellationToken,
    ) -> Option<SearchRun> {
        let query = match validate_query(query) {
            Ok(q) => q,
            Err(msg) => {
                return Some(SearchRun {
                    outcome: ToolOutcome::error(msg),
                    executed: false,
                });
            }
        };
        tokio::select! {
            run = self.search_inner(query, settings) => Some(run),
            _ = cancel.cancelled() => None,
        }
    }

    async fn search_inner(&self, query: &str, settings: &WebSearchSettings) -> SearchRun {
        let provider = self.options.provider;
        let mut req = self
            .client
            .get(self.request_url(query, settings))
            .header(reqwest::header::ACCEPT, "application/json");
        if provider == SearchProvider::Brave
            && let Some(key) = &self.options.api_key
        {
            req = req.header("X-Subscription-Token", key.trim());
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    "the request timed out".to_string()
                } else {
                    format!("cannot reach it ({})", root_cause(&e))
                };
                return self.failed("unavailable", what);
            }
        };
        let status = resp.status();
        if !status.is_success() {
            let code = if status.as_u16() == 429 {
                "too_many_requests"
            } else {
                "unavailable"
            };
            return self.failed(code, format!("it answered HTTP {status}"));
        }
        let body = match read_capped(resp).await {
            Ok(b) => b,
            Err(e) => return self.failed("unavailable", format!("reading its answer failed: {e}")),
        };
        let results = match parse_results(provider, &body) {
            Ok(r) => r,
            Err(e) => {
                return self.failed(
                    "unavailable",
                    format!("its answer is not {provider} search JSON: {e}"),
                );
            }
        };
        let shown: Vec<SearchResult> = results
            .into_iter()
            .filter(|r| settings.policy.allows(&r.url))
            .take(self.options.max_results)
            .collect();
        SearchRun {
            outcome: ToolOutcome::text(render(query, &shown)),
            executed: true,
        }
    }

    /// An error outcome naming the provider; logged as a warning for the operator.
    fn failed(&self, code: &str, what: String) -> SearchRun {
        let provider = self.options.provider;
        tracing::warn!(
            op = "web_search",
            provider = %provider,
            base_url = %self.base,
            "the search backend failed: {what}"
        );
        SearchRun {
            outcome: ToolOutcome::error(format!(
                "{code}: the {provider} search backend failed: {what}"
            )),
            executed: false,
        }
    }
}

fn root_cause(e: &reqwest::Error) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
}

async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| root_cause(&e))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!(
                "it is larger than {} MiB",
                MAX_RESPONSE_BYTES / (1024 * 1024)
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Deserialize)]
struct BraveResponse {
    #[serde(default)]
    web: Option<BraveWeb>,
}

#[derive(Deserialize)]
struct BraveWeb {
    #[serde(default)]
    results: Vec<BraveResult>,
}

#[derive(Deserialize)]
struct BraveResult {
    #[serde(default)]
    title: String,
    url: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    page_age: Option<String>,
    #[serde(default)]
    age: Option<String>,
}

#[derive(Deserialize)]
struct SearxngResponse {
    results: Vec<SearxngResult>,
}

#[derive(Deserialize)]
struct SearxngResult {
    #[serde(default)]
    title: String,
    url: String,
    #[serde(default)]
    content: Option<String>,
    #[serde(default, rename = "publishedDate")]
    published_date: Option<String>,
}

/// The results of a backend's JSON answer, in its order.
pub fn parse_results(
    provider: SearchProvider,
    body: &[u8],
) -> Result<Vec<SearchResult>, serde_json::Error> {
    Ok(match provider {
        SearchProvider::Brave => {
            let r: BraveResponse = serde_json::from_slice(body)?;
            r.web
                .map(|w| w.results)
                .unwrap_or_default()
                .into_iter()
                .map(|r| SearchResult {
                    title: clean(&r.title),
                    url: r.url,
                    snippet: clean(&r.description),
                    age: r.page_age.or(r.age).filter(|a| !a.trim().is_empty()),
                })
                .collect()
        }
        SearchProvider::Searxng => {
            let r: SearxngResponse = serde_json::from_slice(body)?;
            r.results
                .into_iter()
                .map(|r| SearchResult {
                    title: clean(&r.title),
                    url: r.url,
                    snippet: clean(r.content.as_deref().unwrap_or_default()),
                    age: r.published_date.filter(|a| !a.trim().is_empty()),
                })
                .collect()
        }
    })
}

/// Snippets carry highlighting markup (`<strong>`) and entities: plain text, one line.
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let text = html::decode_entities(&out);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The result text the model reads.
pub fn render(query: &str, results: &[SearchResult]) -> String {
    if results.is_empty() {
        return format!("No results for \"{query}\".");
    }
    let mut out = format!(
        "Search results for \"{query}\" ({} result{}):\n",
        results.len(),
        if results.len() == 1 { "" } else { "s" }
    );
    for (i, r) in results.iter().enumerate() {
        let title = if r.title.is_empty() {
            "(untitled)"
        } else {
            &r.title
        };
        out.push_str(&format!("\n{}. {title}\n   URL: {}\n", i + 1, r.url));
        if let Some(age) = &r.age {
            out.push_str(&format!("   Age: {age}\n"));
        }
        if !r.snippet.is_empty() {
            let snippet = match r.snippet.char_indices().nth(SNIPPET_CHARS) {
                Some((at, _)) => format!("{}…", &r.snippet[..at]),
                None => r.snippet.clone(),
            };
            out.push_str(&format!("   {snippet}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn domain_rules_cover_subdomains_and_paths() {
        let allow = SearchPolicy::from_lists(Some(&list(&["Docs.rs/", "example.com/blog"])), None);
        assert!(allow.allows("https://docs.rs/serde"));
        assert!(allow.allows("https://www.DOCS.rs./x"));
        assert!(!allow.allows("https://notdocs.rs/x"));
        assert!(allow.allows("https://example.com/blog"));
        assert!(allow.allows("https://sub.example.com/Blog/post-1"));
        assert!(!allow.allows("https://example.com/blogger"));
        assert!(!allow.allows("https://example.com/about"));
        assert!(!allow.allows("not a url"));
        let block = SearchPolicy::from_lists(None, Some(&list(&["ads.example.com"])));
        assert!(block.allows("https://example.com/"));
        assert!(!block.allows("https://x.ads.example.com/a"));
        assert!(SearchPolicy::unrestricted().allows("whatever"));
        // Narrowing: both allowlists must cover, any blocklist blocks.
        let both = SearchPolicy::from_lists(Some(&list(&["example.com"])), None).combine(
            &SearchPolicy::from_lists(
                Some(&list(&["api.example.com"])),
                Some(&list(&["bad.api.example.com"])),
            ),
        );
        assert!(both.allows("https://api.example.com/"));
        assert!(!both.allows("https://www.example.com/"));
        assert!(!both.allows("https://bad.api.example.com/"));
    }

    #[test]
    fn settings_take_domains_and_country_from_the_config() {
        let cfg = WebSearchToolConfig {
            name: "web_search".into(),
            enabled: true,
            permission_policy: oma_api::agents::PermissionPolicy::AlwaysAllow,
            allowed_domains: None,
            blocked_domains: Some(list(&["spam.example"])),
            user_location: Some(oma_api::agents::UserLocation {
                city: None,
                country: Some("de".into()),
                region: None,
                timezone: None,
            }),
        };
        let s = WebSearchSettings::from_config(Some(&cfg));
        assert_eq!(s.country.as_deref(), Some("DE"));
        assert!(!s.policy.allows("https://spam.example/a"));
        assert_eq!(
            WebSearchSettings::from_config(None),
            WebSearchSettings::default()
        );
    }

    #[test]
    fn queries_are_validated() {
        assert_eq!(validate_query("  rust async  ").unwrap(), "rust async");
        assert!(
            validate_query("   ")
                .unwrap_err()
                .starts_with("invalid_tool_input")
        );
        let long = "é".repeat(MAX_QUERY_CHARS + 1);
        let e = validate_query(&long).unwrap_err();
        assert!(e.starts_with("query_too_long") && e.contains("501"), "{e}");
        assert!(validate_query(&"é".repeat(MAX_QUERY_CHARS)).is_ok());
    }

    #[test]
    fn brave_answers_are_parsed() {
        let body = br#"{"type":"search","query":{"original":"q"},"web":{"type":"search","results":[
            {"title":"The <strong>Rust</strong> Book","url":"https://doc.rust-lang.org/book/","description":"Learn &amp; <strong>grow</strong>","page_age":"2024-05-01T00:00:00","age":"May 1, 2024","type":"search_result"},
            {"title":"No age","url":"https://example.com/","description":""}
        ]}}"#;
        let r = parse_results(SearchProvider::Brave, body).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].title, "The Rust Book");
        assert_eq!(r[0].snippet, "Learn & grow");
        assert_eq!(r[0].age.as_deref(), Some("2024-05-01T00:00:00"));
        assert_eq!(r[1].age, None);
        // No `web` section: no results.
        assert!(
            parse_results(SearchProvider::Brave, br#"{"type":"search"}"#)
                .unwrap()
                .is_empty()
        );
        assert!(parse_results(SearchProvider::Brave, b"<html>").is_err());
    }

    #[test]
    fn searxng_answers_are_parsed() {
        let body = br#"{"query":"q","number_of_results":0,"results":[
            {"url":"https://a.example/x","title":"A","content":"about a","engine":"ddg","publishedDate":"2023-01-02T00:00:00"},
            {"url":"https://b.example/","title":"B","content":null}
        ],"answers":[],"suggestions":[]}"#;
        let r = parse_results(SearchProvider::Searxng, body).unwrap();
        assert_eq!(r[0].snippet, "about a");
        assert_eq!(r[0].age.as_deref(), Some("2023-01-02T00:00:00"));
        assert_eq!(r[1].snippet, "");
        assert!(parse_results(SearchProvider::Searxng, br#"{"query":"q"}"#).is_err());
    }

    #[test]
    fn results_render_numbered() {
        let text = render(
            "q",
            &[
                SearchResult {
                    title: "A".into(),
                    url: "https://a.example/".into(),
                    snippet: "about a".into(),
                    age: Some("2 days ago".into()),
                },
                SearchResult {
                    title: String::new(),
                    url: "https://b.example/".into(),
                    snippet: String::new(),
                    age: None,
                },
            ],
        );
        assert_eq!(
            text,
            "Search results for \"q\" (2 results):\n\n1. A\n   URL: https://a.example/\n   Age: 2 days ago\n   about a\n\n2. (untitled)\n   URL: https://b.example/\n"
        );
        assert_eq!(render("q", &[]), "No results for \"q\".");
    }

    #[test]
    fn requests_follow_each_wire_format() {
        let mut o = WebSearchOptions::new(SearchProvider::Brave);
        o.api_key = Some("k".into());
        o.max_results = 5;
        let c = WebSearchClient::new(o).unwrap();
        let s = WebSearchSettings {
            country: Some("US".into()),
            ..WebSearchSettings::default()
        };
        assert_eq!(
            c.request_url("rust & tokio", &s).as_str(),
            "https://api.search.brave.com/res/v1/web/search?q=rust+%26+tokio&count=5&country=US"
        );
        let mut o = WebSearchOptions::new(SearchProvider::Searxng);
        o.base_url = "http://127.0.0.1:8888/searx/".into();
        let c = WebSearchClient::new(o).unwrap();
        assert_eq!(
            c.request_url("a b", &s).as_str(),
            "http://127.0.0.1:8888/searx/search?q=a+b&format=json"
        );
    }

    #[test]
    fn bad_options_are_refused() {
        assert_eq!(
            WebSearchClient::new(WebSearchOptions::new(SearchProvider::Brave)).unwrap_err(),
            WebSearchError::MissingKey(SearchProvider::Brave)
        );
        assert!(matches!(
            WebSearchClient::new(WebSearchOptions::new(SearchProvider::Searxng)).unwrap_err(),
            WebSearchError::BaseUrl { .. }
        ));
        let mut o = WebSearchOptions::new(SearchProvider::Searxng);
        o.base_url = "ftp://x".into();
        assert!(WebSearchClient::new(o.clone()).is_err());
        o.base_url = "http://x/?a=1".into();
        assert!(WebSearchClient::new(o.clone()).is_err());
        o.base_url = "http://x".into();
        o.max_results = 0;
        assert_eq!(
            WebSearchClient::new(o.clone()).unwrap_err(),
            WebSearchError::MaxResults(0)
        );
        let mut o = WebSearchOptions::new(SearchProvider::Brave);
        o.api_key = Some("secret-key".into());
        assert!(!format!("{o:?}").contains("secret-key"));
        assert_eq!(
            SearchProvider::parse(" SearXNG "),
            Some(SearchProvider::Searxng)
        );
        assert_eq!(SearchProvider::parse("google"), None);
    }
}
