//! `oma integrations add|list|remove`: publish an agent into Slack, GitHub or Linear.
//!
//! The webhook secret and the service token are sealed with the deployment's root secret (the
//! one `oma serve` uses: `OMA_ROOT_SECRET`, else `DATA_DIR/root.key`) before they are stored,
//! and are never printed again. `add` prints the webhook URL to register with the service.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use oma_integrations::{Kind, webhook_path};
use oma_store::integrations::{IntegrationRow, NewIntegration};

use crate::config::StorageArgs;

#[derive(Subcommand)]
pub enum IntegrationsAction {
    /// Publish an agent into a service; prints the webhook URL to register there.
    Add(AddArgs),
    /// List the configured integrations (never their secrets).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Remove an integration (`intg_…`); its sessions stay.
    Remove {
        id: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Service {
    Slack,
    Github,
    Linear,
}

impl Service {
    fn kind(self) -> Kind {
        match self {
            Service::Slack => Kind::Slack,
            Service::Github => Kind::Github,
            Service::Linear => Kind::Linear,
        }
    }
}

#[derive(Args)]
pub struct AddArgs {
    /// The service.
    service: Service,
    /// The agent that answers (`agent_…`).
    #[arg(long)]
    agent: String,
    /// The environment its sessions run in (`env_…`).
    #[arg(long)]
    environment: String,
    /// The webhook secret: Slack's signing secret, the GitHub webhook secret, Linear's webhook
    /// signing secret.
    #[arg(long, env = "OMA_INTEGRATION_SECRET", hide_env_values = true)]
    secret: String,
    /// The token replies are posted with (Slack bot token `xoxb-…`, GitHub installation or
    /// app token, Linear OAuth token).
    #[arg(long, env = "OMA_INTEGRATION_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The service's API base URL (defaults: https://slack.com/api, https://api.github.com,
    /// https://api.linear.app/graphql).
    #[arg(long)]
    api_base: Option<String>,
    /// Where the agent may act (repeatable): Slack channel ids, GitHub `owner/repo` or
    /// `owner/*`, Linear team keys or ids; `*` is everywhere. Required: nothing is allowed by
    /// default.
    #[arg(long = "allow", required = true)]
    allow: Vec<String>,
    /// The name the agent answers to: the GitHub app slug (`@slug` in a comment).
    #[arg(long)]
    app: Option<String>,
    /// The tenant that owns the agent.
    #[arg(long, default_value = "default")]
    tenant: String,
    #[command(flatten)]
    storage: StorageArgs,
}

fn url(base: Option<&str>, id: &str) -> String {
    match base {
        Some(b) => format!("{}{}", b.trim_end_matches('/'), webhook_path(id)),
        None => format!("<public_base_url>{}", webhook_path(id)),
    }
}

fn line(r: &IntegrationRow, base: Option<&str>) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}\tallow={}\ttoken={}\t{}",
        r.id,
        r.tenant_id,
        r.kind,
        r.agent_id,
        r.environment_id,
        r.allow.join(","),
        if r.has_token() { "yes" } else { "no" },
        url(base, &r.id)
    )
}

pub async fn run(action: IntegrationsAction) -> Result<()> {
    match action {
        IntegrationsAction::Add(a) => {
            let kind = a.service.kind();
            if kind == Kind::Github && a.app.is_none() {
                bail!(
                    "a GitHub integration needs --app SLUG: the agent answers comments that mention @SLUG"
                );
            }
            if a.secret.trim().is_empty() {
                bail!(
                    "--secret is empty: give the service's {}",
                    kind.secret_name()
                );
            }
            let api_base = a
                .api_base
                .clone()
                .unwrap_or_else(|| kind.default_api_base().to_string());
            if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
                bail!("--api-base `{api_base}` must be an absolute http(s) URL");
            }
            let resolved = a.storage.resolve()?;
            let sealer = crate::serve::load_root_secret(&resolved.data_dir)?;
            let control = resolved.open_migrated_store().await?;
            let router = oma_store::TenantRouter::open(control).await?;
            let store = router.store_for(&a.tenant);
            let row = store
                .create_integration(
                    &a.tenant,
                    &NewIntegration {
                        kind: kind.name().to_string(),
                        agent_id: a.agent.clone(),
                        environment_id: a.environment.clone(),
                        api_base,
                        allow: a.allow.clone(),
                        app_handle: a.app.clone(),
                        secret: a.secret.clone(),
                        token: a.token.clone(),
                    },
                    &sealer,
                )
                .await
                .with_context(|| {
                    format!(
                        "publishing agent {} of tenant {} into {}",
                        a.agent,
                        a.tenant,
                        kind.name()
                    )
                })?;
            println!(
                "created {} integration {} for agent {} (tenant {})",
                kind.name(),
                row.id,
                row.agent_id,
                row.tenant_id
            );
            if !row.has_token() {
                println!("note: no --token: deliveries run turns, but no reply can be posted");
            }
            println!("register this webhook URL with {}:", kind.name());
            println!("{}", url(resolved.public_base_url.as_deref(), &row.id));
            Ok(())
        }
        IntegrationsAction::List { tenant, storage } => {
            let resolved = storage.resolve()?;
            let control = resolved.open_migrated_store().await?;
            let router = oma_store::TenantRouter::open(control).await?;
            for shard in router.shards() {
                for r in shard.store.list_integrations(tenant.as_deref()).await? {
                    println!("{}", line(&r, resolved.public_base_url.as_deref()));
                }
            }
            Ok(())
        }
        IntegrationsAction::Remove {
            id,
            tenant,
            storage,
        } => {
            let control = storage.resolve()?.open_migrated_store().await?;
            let router = oma_store::TenantRouter::open(control).await?;
            if !router
                .store_for(&tenant)
                .delete_integration(&tenant, &id)
                .await?
            {
                bail!("integration {id} not found in tenant {tenant} (`oma integrations list`)");
            }
            println!("removed {id}");
            Ok(())
        }
    }
}
