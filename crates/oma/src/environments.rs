//! `oma environments keys create|list|revoke`: the keys the workers of a self-hosted
//! environment poll its work queue with. Like API keys they are stored hashed and shown once.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::config::StorageArgs;

#[derive(Subcommand)]
pub enum EnvironmentsAction {
    /// Keys of self-hosted environments (for `oma worker` and the SDK's EnvironmentWorker).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
}

#[derive(Subcommand)]
pub enum KeysAction {
    /// Create a key for a self-hosted environment; the key is printed once, as the last line
    /// of stdout.
    Create(CreateArgs),
    /// List environment keys (never the keys themselves).
    List {
        /// Only this environment's keys.
        environment_id: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Revoke a key by its id (`envkey_…`); running servers stop accepting it within 2 s.
    Revoke {
        id: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    /// The self-hosted environment (`env_…`).
    environment_id: String,
    /// The tenant that owns the environment.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// A label to recognise the key by.
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    storage: StorageArgs,
}

pub async fn run(action: EnvironmentsAction) -> Result<()> {
    let EnvironmentsAction::Keys { action } = action;
    match action {
        KeysAction::Create(a) => {
            let store = a.storage.resolve()?.open_migrated_store().await?;
            let (info, key) = store
                .create_environment_key(&a.tenant, &a.environment_id, a.name.as_deref())
                .await
                .with_context(|| {
                    format!(
                        "creating a key for environment {} of tenant {}",
                        a.environment_id, a.tenant
                    )
                })?;
            println!(
                "created key {} for environment {} of tenant {} (shown once; store it now):",
                info.id, info.environment_id, info.tenant_id
            );
            println!("{key}");
            Ok(())
        }
        KeysAction::List {
            environment_id,
            tenant,
            storage,
        } => {
            let store = storage.resolve()?.open_migrated_store().await?;
            for k in store
                .list_environment_keys(tenant.as_deref(), environment_id.as_deref())
                .await?
            {
                println!(
                    "{}\t{}\t{}\t{}…\t{}\t{}\t{}",
                    k.id,
                    k.tenant_id,
                    k.environment_id,
                    k.key_prefix,
                    k.name.as_deref().unwrap_or("-"),
                    oma_core::time::format_micros(k.created_at),
                    crate::key_state(k.revoked_at),
                );
            }
            Ok(())
        }
        KeysAction::Revoke { id, storage } => {
            let store = storage.resolve()?.open_migrated_store().await?;
            store.revoke_environment_key(None, &id).await?;
            println!("revoked {id}");
            Ok(())
        }
    }
}
