//! The session's `github_repository` resources as injection rules: each resource's
//! `authorization_token` goes, as GitHub takes it for git over HTTPS
//! (`Authorization: Basic base64("x-access-token:<token>")`), on requests to that repository
//! only: `/<owner>/<repo>` and below, and `/<owner>/<repo>.git` and below, on its host. Other
//! paths of the host (another repository, the API) never see it.
//!
//! The rules are read from the store with the vault rules ([`crate::creds::resolve`], every
//! `RULES_TTL`), so a token rotated through `POST /v1/sessions/{id}/resources/{rid}` reaches
//! later fetches and pushes; a refused request re-reads them at once (see `proxy.rs`).

use base64::Engine as _;
use oma_core::seal::Sealer;
use oma_store::Store;

use crate::policy::url_host_port;

/// A repository of the session. Holds an opened token: no `Debug`.
pub(crate) struct RepoRule {
    pub host: String,
    pub port: u16,
    /// `/<owner>/<repo>`, as in the resource's URL.
    pub path: String,
    pub resource_id: String,
    pub token: Option<String>,
}

impl RepoRule {
    /// The rule of a resource URL (`https://host/<owner>/<repo>`); `None` for any other form.
    pub fn new(url: &str, resource_id: &str, token: Option<String>) -> Option<RepoRule> {
        let (host, port, https) = url_host_port(url)?;
        if !https {
            return None;
        }
        let rest = url.split_once("://")?.1;
        let path = rest.find('/').map(|i| &rest[i..])?;
        let path = path.trim_end_matches('/');
        let mut segments = path[1..].split('/');
        match (segments.next(), segments.next(), segments.next()) {
            (Some(o), Some(r), None) if !o.is_empty() && !r.is_empty() => {}
            _ => return None,
        }
        Some(RepoRule {
            host,
            port,
            path: path.to_string(),
            resource_id: resource_id.to_string(),
            token,
        })
    }

    /// Whether a request path (query allowed) is of this repository. Compared without case,
    /// as GitHub treats owner and repository names.
    pub fn holds(&self, request_path: &str) -> bool {
        let path = request_path.split(['?', '#']).next().unwrap_or_default();
        let path = path.to_ascii_lowercase();
        let base = self.path.to_ascii_lowercase();
        [base.clone(), format!("{base}.git")].iter().any(|prefix| {
            match path.strip_prefix(prefix.as_str()) {
                Some(rest) => rest.is_empty() || rest.starts_with('/'),
                None => false,
            }
        })
    }
}

/// `Basic base64("x-access-token:<token>")`: how GitHub takes a token for git over HTTPS.
pub(crate) fn basic_for(token: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
    format!("Basic {b64}")
}

/// The repository rules of session `session_id` (none for proxies that are not a session's
/// own, such as the package installers' `<session>.install`: no session has that id).
pub(crate) async fn resolve(
    store: &Store,
    sealer: &Sealer,
    tenant: &str,
    session_id: &str,
) -> Result<Vec<RepoRule>, oma_store::StoreError> {
    let repos = store
        .session_repositories(tenant, session_id, sealer)
        .await?;
    Ok(repos
        .into_iter()
        .filter_map(|r| RepoRule::new(&r.url, &r.resource_id, r.token))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::creds::Rules;

    fn rule(url: &str, id: &str, token: Option<&str>) -> RepoRule {
        RepoRule::new(url, id, token.map(str::to_string)).unwrap()
    }

    #[test]
    fn a_token_is_scoped_to_its_repository_paths() {
        let r = rule("https://github.com/acme/widgets", "sres_1", Some("t"));
        assert_eq!(
            (r.host.as_str(), r.port, r.path.as_str()),
            ("github.com", 443, "/acme/widgets")
        );
        for p in [
            "/acme/widgets",
            "/acme/widgets/info/refs?service=git-upload-pack",
            "/acme/widgets/git-upload-pack",
            "/acme/widgets.git/info/refs?service=git-receive-pack",
            "/Acme/Widgets.git/git-receive-pack",
        ] {
            assert!(r.holds(p), "{p}");
        }
        for p in [
            "/acme/widgets-private/info/refs",
            "/acme/widgetsX",
            "/acme/widgets.github.io/info/refs",
            "/acme",
            "/other/widgets/info/refs",
            "/",
            "/api/v3/repos/acme/widgets",
        ] {
            assert!(!r.holds(p), "{p}");
        }
    }

    #[test]
    fn the_header_is_the_one_github_takes_for_git() {
        // base64("x-access-token:ghp_abc")
        assert_eq!(
            basic_for("ghp_abc"),
            "Basic eC1hY2Nlc3MtdG9rZW46Z2hwX2FiYw=="
        );
    }

    #[test]
    fn only_repository_urls_make_rules() {
        assert!(RepoRule::new("http://github.com/a/b", "x", None).is_none());
        assert!(RepoRule::new("https://github.com/a", "x", None).is_none());
        assert!(RepoRule::new("https://github.com/a/b/c", "x", None).is_none());
        let r = rule("https://ghe.example.com:8443/a/b", "x", None);
        assert_eq!((r.host.as_str(), r.port), ("ghe.example.com", 8443));
    }

    #[test]
    fn rules_pick_the_repository_of_the_path_and_its_token() {
        let rules = Rules {
            repos: vec![
                rule("https://github.com/acme/widgets", "public", None),
                rule("https://github.com/acme/widgets", "tokened", Some("t1")),
                rule("https://github.com/acme/gears", "gears", Some("t2")),
            ],
            ..Rules::default()
        };
        let id = |path: &str| {
            rules
                .repo_for("github.com", 443, path)
                .map(|r| r.resource_id.clone())
        };
        assert_eq!(id("/acme/widgets/info/refs").as_deref(), Some("tokened"));
        assert_eq!(id("/acme/gears.git/info/refs").as_deref(), Some("gears"));
        assert_eq!(id("/acme/other/info/refs"), None);
        assert!(rules.repo_for("github.com", 8443, "/acme/gears").is_none());
        assert!(rules.intercepts("github.com", 443));
        assert!(!rules.intercepts("api.github.com", 443));
        let public = Rules {
            repos: vec![rule("https://github.com/acme/widgets", "public", None)],
            ..Rules::default()
        };
        // Nothing to inject: tunnelled untouched (unless the networking needs the path).
        assert!(!public.intercepts("github.com", 443));
    }
}
