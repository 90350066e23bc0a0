//! `oma integrations add|install|list|remove`: publish an agent into Slack, GitHub or Linear.
//!
//! The webhook secret, the service token and an OAuth app's client secret (a GitHub App's
//! private key) are sealed with the deployment's root secret (the one `oma serve` uses:
//! `OMA_ROOT_SECRET`, else `DATA_DIR/root.key`) before they are stored, and are never printed
//! again. `add` prints the webhook URL to register with the service and, for an OAuth app, the
//! redirect URL and a single-use install link (`install` makes a new one).

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use oma_integrations::{Kind, oauth, webhook_path};
use oma_store::integrations::{IntegrationRow, NewIntegration, OAuthApp};

use crate::config::StorageArgs;

#[derive(Subcommand)]
pub enum IntegrationsAction {
    /// Publish an agent into a service; prints the webhook URL to register there.
    Add(Box<AddArgs>),
    /// A new single-use install link (valid 30 minutes) for an integration with an OAuth app.
    Install {
        id: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
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
    /// The OAuth app to install with instead of a fixed --token: the Slack or Linear client
    /// id, or the GitHub App id. Its tokens are refreshed before they expire.
    #[arg(long, env = "OMA_INTEGRATION_CLIENT_ID")]
    client_id: Option<String>,
    /// The Slack or Linear OAuth client secret.
    #[arg(long, env = "OMA_INTEGRATION_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// A GitHub App's private key (the PEM file GitHub lets you download).
    #[arg(long, value_name = "FILE")]
    private_key: Option<std::path::PathBuf>,
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

fn callback_url(base: Option<&str>, id: &str) -> String {
    oauth::redirect_uri(base.unwrap_or("<public_base_url>"), id)
}

/// Where the service asks for the redirect URL.
fn redirect_setting(kind: Kind) -> &'static str {
    match kind {
        Kind::Slack => "Slack app → OAuth & Permissions → Redirect URLs",
        Kind::Linear => "Linear OAuth application → Callback URLs",
        Kind::Github => "GitHub App → Setup URL, with \"Redirect on update\" checked",
    }
}

/// The OAuth app `add` was given, checked.
fn oauth_app(a: &AddArgs, kind: Kind) -> Result<Option<OAuthApp>> {
    let Some(client_id) = a.client_id.clone().filter(|c| !c.trim().is_empty()) else {
        if a.client_secret.is_some() || a.private_key.is_some() {
            bail!("--client-secret and --private-key need --client-id");
        }
        return Ok(None);
    };
    let client_secret = match kind {
        Kind::Github => {
            let Some(path) = &a.private_key else {
                bail!(
                    "a GitHub App install needs --private-key FILE (the app's PEM key) with --client-id APP_ID"
                );
            };
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("reading the private key {}", path.display()))?;
            oauth::rsa_key(&pem).with_context(|| format!("{}", path.display()))?;
            pem
        }
        Kind::Slack | Kind::Linear => match a.client_secret.clone() {
            Some(s) if !s.trim().is_empty() => s,
            _ => bail!(
                "an OAuth install needs --client-secret with --client-id (the {} app's)",
                kind.name()
            ),
        },
    };
    Ok(Some(OAuthApp {
        client_id,
        client_secret,
    }))
}

/// Prints a new install link, or what is missing for one.
async fn print_install_link(
    store: &oma_store::Store,
    row: &IntegrationRow,
    base: Option<&str>,
) -> Result<()> {
    let Some(base) = base else {
        println!(
            "set public_base_url (oma.toml, OMA_PUBLIC_BASE_URL or --public-base-url), then \
             `oma integrations install {} --tenant {}` prints the install link",
            row.id, row.tenant_id
        );
        return Ok(());
    };
    let link = oauth::install_link(store, row, base)
        .await
        .with_context(|| format!("making an install link for {}", row.id))?;
    println!(
        "open this link to install (it works once, for {} minutes):",
        oauth::STATE_TTL.as_secs() / 60
    );
    println!("{link}");
    Ok(())
}

fn line(r: &IntegrationRow, base: Option<&str>) -> String {
    let oauth = match (r.has_oauth_app(), r.has_token()) {
        (false, _) => "none".to_string(),
        (true, false) => format!("not-installed\tcallback={}", callback_url(base, &r.id)),
        (true, true) => format!(
            "installed{}\tcallback={}",
            r.token_expires_at
                .map(|e| format!(",expires={}", oma_core::time::format_micros(e)))
                .unwrap_or_default(),
            callback_url(base, &r.id)
        ),
    };
    format!(
        "{}\t{}\t{}\t{}\t{}\tallow={}\ttoken={}\toauth={}\t{}",
        r.id,
        r.tenant_id,
        r.kind,
        r.agent_id,
        r.environment_id,
        r.allow.join(","),
        if r.has_token() { "yes" } else { "no" },
        oauth,
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
            let app = oauth_app(&a, kind)?;
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
                        oauth: app,
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
            let base = resolved.public_base_url.as_deref();
            if !row.has_token() && !row.has_oauth_app() {
                println!("note: no --token: deliveries run turns, but no reply can be posted");
            }
            println!("register this webhook URL with {}:", kind.name());
            println!("{}", url(base, &row.id));
            if row.has_oauth_app() {
                println!("register this redirect URL ({}):", redirect_setting(kind));
                println!("{}", callback_url(base, &row.id));
                print_install_link(&store, &row, base).await?;
            }
            Ok(())
        }
        IntegrationsAction::Install {
            id,
            tenant,
            storage,
        } => {
            let resolved = storage.resolve()?;
            let control = resolved.open_migrated_store().await?;
            let router = oma_store::TenantRouter::open(control).await?;
            let store = router.store_for(&tenant);
            let Some(row) = store.integration(&tenant, &id).await? else {
                bail!("integration {id} not found in tenant {tenant} (`oma integrations list`)");
            };
            let kind = Kind::parse(&row.kind).context("unknown integration kind")?;
            if !row.has_oauth_app() {
                bail!(
                    "integration {id} has no OAuth app; remove it and add it again with --client-id \
                     and --client-secret (a GitHub App: --client-id APP_ID --private-key FILE)"
                );
            }
            println!("redirect URL ({}):", redirect_setting(kind));
            println!("{}", callback_url(resolved.public_base_url.as_deref(), &id));
            print_install_link(&store, &row, resolved.public_base_url.as_deref()).await
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
