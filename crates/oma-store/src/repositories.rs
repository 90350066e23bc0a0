//! The `github_repository` resources of a session with their opened tokens, for the egress
//! proxy (which injects each token on requests to its repository) and the runtime (which
//! clones them into the session's box). Tokens are sealed at rest with the resource's
//! identity as associated data (see `sessions.rs`); what this returns must never be logged or
//! returned by the API.

use oma_api::sessions::{Checkout, SessionResource};
use oma_core::seal::Sealer;

use crate::{Result, Store, from_json};

/// One `github_repository` resource of a session.
pub struct SessionRepository {
    pub resource_id: String,
    /// `https://github.com/<owner>/<repo>`.
    pub url: String,
    pub mount_path: String,
    pub checkout: Option<Checkout>,
    /// The opened `authorization_token`, when the resource has one.
    pub token: Option<String>,
}

impl std::fmt::Debug for SessionRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRepository")
            .field("resource_id", &self.resource_id)
            .field("url", &self.url)
            .field("mount_path", &self.mount_path)
            .field("checkout", &self.checkout)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl Store {
    /// The session's repositories in resource order, tokens opened with `sealer`. An unknown
    /// session (or another tenant's) has none.
    pub async fn session_repositories(
        &self,
        tenant: &str,
        session_id: &str,
        sealer: &Sealer,
    ) -> Result<Vec<SessionRepository>> {
        let rows: Vec<(String, Option<String>, String)> = sqlx::query_as(
            "SELECT id, secret, body FROM session_resources \
             WHERE tenant_id = $1 AND session_id = $2 AND kind = 'github_repository' \
             ORDER BY position, id",
        )
        .bind(tenant)
        .bind(session_id)
        .fetch_all(self.reader())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, secret, body) in rows {
            let SessionResource::GithubRepository(r) = from_json::<SessionResource>(&body)? else {
                continue;
            };
            let token = match secret {
                Some(sealed) => {
                    let plain =
                        sealer.open(&crate::sessions::resource_aad(tenant, &id), &sealed)?;
                    Some(String::from_utf8(plain).map_err(|_| {
                        crate::StoreError::Corrupt(format!(
                            "the token of resource {id} is not UTF-8"
                        ))
                    })?)
                }
                None => None,
            };
            out.push(SessionRepository {
                resource_id: id,
                url: r.url,
                mount_path: r.mount_path,
                checkout: r.checkout,
                token,
            });
        }
        Ok(out)
    }
}
