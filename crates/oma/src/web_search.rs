//! `[web_search]`: the search backend the built-in `web_search` tool uses. Without one the
//! tool is not offered to models.
//!
//! ```toml
//! [web_search]
//! provider = "brave"                  # or "searxng"
//! # base_url = "https://api.search.brave.com"   (Brave's default; SearXNG needs its URL)
//! api_key_env = "BRAVE_SEARCH_API_KEY" # or api_key = "…" (Brave only)
//! max_results = 10
//! timeout_seconds = 15
//! ```
//!
//! Each key has an `OMA_WEB_SEARCH_*` variable that wins over the file: `OMA_WEB_SEARCH_PROVIDER`,
//! `OMA_WEB_SEARCH_URL`, `OMA_WEB_SEARCH_API_KEY`, `OMA_WEB_SEARCH_MAX_RESULTS`,
//! `OMA_WEB_SEARCH_TIMEOUT_SECONDS`.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use oma_tools::{SearchProvider, WebSearchClient, WebSearchOptions};
use serde::Deserialize;

/// `[web_search]` of `oma.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSearchFileConfig {
    /// `brave` or `searxng`. Unset: no backend (unless `OMA_WEB_SEARCH_PROVIDER`).
    pub provider: Option<String>,
    pub base_url: Option<String>,
    /// The key itself. Prefer `api_key_env`, which keeps it out of the file.
    pub api_key: Option<String>,
    /// The name of the environment variable holding the key.
    pub api_key_env: Option<String>,
    pub max_results: Option<usize>,
    pub timeout_seconds: Option<u64>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn env_number<T: std::str::FromStr>(name: &str) -> Result<Option<T>> {
    env(name)
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| anyhow!("{name} must be a whole number, got `{v}`"))
        })
        .transpose()
}

impl WebSearchFileConfig {
    /// The backend settings after layering (file < `OMA_WEB_SEARCH_*`), or `None` when no
    /// provider is configured.
    pub fn options(&self) -> Result<Option<WebSearchOptions>> {
        let provider = env("OMA_WEB_SEARCH_PROVIDER")
            .or_else(|| self.provider.clone().filter(|p| !p.trim().is_empty()));
        let Some(provider) = provider else {
            if self.base_url.is_some() || self.api_key.is_some() || self.api_key_env.is_some() {
                bail!("[web_search] needs `provider` (\"brave\" or \"searxng\")");
            }
            return Ok(None);
        };
        let provider = SearchProvider::parse(&provider).ok_or_else(|| {
            anyhow!("[web_search] provider must be \"brave\" or \"searxng\", got `{provider}`")
        })?;
        let mut o = WebSearchOptions::new(provider);
        if let Some(url) = env("OMA_WEB_SEARCH_URL").or_else(|| self.base_url.clone()) {
            o.base_url = url;
        }
        if o.base_url.trim().is_empty() {
            bail!("[web_search] provider \"{provider}\" needs `base_url` (OMA_WEB_SEARCH_URL)");
        }
        o.api_key = match env("OMA_WEB_SEARCH_API_KEY") {
            Some(k) => Some(k),
            None => match &self.api_key_env {
                Some(var) => Some(env(var).with_context(|| {
                    format!("[web_search] api_key_env names `{var}`, which is not set")
                })?),
                None => self.api_key.clone().filter(|k| !k.trim().is_empty()),
            },
        };
        if let Some(n) = env_number("OMA_WEB_SEARCH_MAX_RESULTS")?.or(self.max_results) {
            o.max_results = n;
        }
        if let Some(s) =
            env_number::<u64>("OMA_WEB_SEARCH_TIMEOUT_SECONDS")?.or(self.timeout_seconds)
        {
            if s == 0 {
                bail!("[web_search] timeout_seconds must be at least 1");
            }
            o.timeout = Duration::from_secs(s);
        }
        Ok(Some(o))
    }

    /// The client `oma serve` hands the runtime, or `None` when no backend is configured.
    /// A configuration that cannot work is an error, so the server does not start half-set.
    pub fn client(&self) -> Result<Option<WebSearchClient>> {
        let Some(options) = self.options()? else {
            return Ok(None);
        };
        WebSearchClient::new(options)
            .map(Some)
            .map_err(|e| anyhow!("[web_search]: {e}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(text: &str) -> WebSearchFileConfig {
        crate::config::FileConfig::parse(text, None)
            .unwrap()
            .web_search
    }

    // These tests read the file only; they hold when no OMA_WEB_SEARCH_* variable is set.
    fn env_is_clean() -> bool {
        [
            "OMA_WEB_SEARCH_PROVIDER",
            "OMA_WEB_SEARCH_URL",
            "OMA_WEB_SEARCH_API_KEY",
            "OMA_WEB_SEARCH_MAX_RESULTS",
            "OMA_WEB_SEARCH_TIMEOUT_SECONDS",
        ]
        .iter()
        .all(|v| std::env::var_os(v).is_none())
    }

    #[test]
    fn brave_defaults_to_the_real_service() {
        if !env_is_clean() {
            return;
        }
        let c = parse("[web_search]\nprovider = \"brave\"\napi_key = \"k\"\n");
        let o = c.options().unwrap().unwrap();
        assert_eq!(o.provider, SearchProvider::Brave);
        assert_eq!(o.base_url, "https://api.search.brave.com");
        assert_eq!(o.max_results, 10);
        assert_eq!(o.api_key.as_deref(), Some("k"));
        assert!(c.client().unwrap().is_some());
        // The key is never printed.
        assert!(!format!("{o:?}").contains("\"k\""));
    }

    #[test]
    fn searxng_needs_a_url_and_settings_are_checked() {
        if !env_is_clean() {
            return;
        }
        assert!(parse("").options().unwrap().is_none());
        let e = parse("[web_search]\nprovider = \"searxng\"\n")
            .options()
            .unwrap_err()
            .to_string();
        assert!(e.contains("base_url"), "{e}");
        let o = parse(
            "[web_search]\nprovider = \"searxng\"\nbase_url = \"http://127.0.0.1:8888\"\nmax_results = 5\ntimeout_seconds = 3\n",
        )
        .options()
        .unwrap()
        .unwrap();
        assert_eq!((o.max_results, o.timeout), (5, Duration::from_secs(3)));
        let e = parse("[web_search]\nprovider = \"google\"\n")
            .options()
            .unwrap_err()
            .to_string();
        assert!(e.contains("google"), "{e}");
        let e = parse("[web_search]\napi_key = \"k\"\n")
            .options()
            .unwrap_err()
            .to_string();
        assert!(e.contains("provider"), "{e}");
        // Brave without a key cannot work: refused at startup, not on the first search.
        let e = parse("[web_search]\nprovider = \"brave\"\n")
            .client()
            .unwrap_err()
            .to_string();
        assert!(e.contains("API key"), "{e}");
        let e = parse(
            "[web_search]\nprovider = \"brave\"\napi_key_env = \"OMA_TEST_SURELY_UNSET_VAR_42\"\n",
        )
        .options()
        .unwrap_err()
        .to_string();
        assert!(e.contains("OMA_TEST_SURELY_UNSET_VAR_42"), "{e}");
        assert!(crate::config::FileConfig::parse("[web_search]\nurl = \"x\"\n", None).is_err());
    }
}
