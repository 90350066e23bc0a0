//! `oma`: the one binary. `serve` runs the API server; the other verbs operate on the same
//! storage (also while a server runs).

mod backup;
mod cluster;
mod config;
mod doctor;
mod environments;
mod events;
mod integrations;
mod listeners;
mod migrate;
mod prune;
mod serve;
mod shards;
mod tail;
mod tenants;
mod web_search;
mod worker;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use config::StorageArgs;

#[derive(Parser)]
#[command(
    name = "oma",
    version,
    about = "A self-hosted server for the Claude Managed Agents API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server.
    Serve(serve::ServeArgs),
    /// Inspect or apply schema migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Manage tenants: create, list, move between shards.
    Tenants {
        #[command(subcommand)]
        action: tenants::TenantAction,
    },
    /// The databases tenants live in: add, list, drain, rebalance.
    Shards {
        #[command(subcommand)]
        action: shards::ShardsAction,
    },
    /// Self-hosted environments: the keys their workers use.
    Environments {
        #[command(subcommand)]
        action: environments::EnvironmentsAction,
    },
    /// Publish agents into Slack, GitHub and Linear: add, list, remove.
    Integrations {
        #[command(subcommand)]
        action: integrations::IntegrationsAction,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Back up the data (online) or restore a backup into a new data directory.
    Backup {
        #[command(subcommand)]
        action: BackupAction,
    },
    /// Check the installation and say how to fix what is broken.
    Doctor(StorageArgs),
    /// Delete what the `[retention]` policy no longer keeps (old events of sessions that are not
    /// running, model stream records, operational events, orphaned and expired blobs).
    Prune(prune::PruneArgs),
    /// Query operational events (tool calls, model requests, transitions, silent catches, …).
    Events {
        #[command(subcommand)]
        action: EventsAction,
    },
    /// Stream a running server's logs (needs its admin key).
    Tail(tail::TailArgs),
    /// Serve a self-hosted environment's work queue: run its sessions' tools in sandbox boxes
    /// on this machine (needs the environment's key).
    Worker(worker::WorkerArgs),
    /// The in-box sandbox agent: speaks the framed tool protocol on stdin/stdout. Started by
    /// the server's sandbox launchers, never by hand.
    #[command(hide = true)]
    SandboxAgent {
        /// Hardening flags from the launcher (`--harden`, `--writable PATH`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum EventsAction {
    /// Rows or group-by counts of operational events in a time window.
    Query(events::QueryArgs),
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Show applied and pending migrations.
    Status(StorageArgs),
    /// Apply pending migrations (a new database is created from the squashed baseline).
    Up(StorageArgs),
    /// Record the squashed baseline on a database that applied the files it stands for one by
    /// one (idempotent).
    StampBaseline(StorageArgs),
}

#[derive(Subcommand)]
enum BackupAction {
    /// Write a consistent backup of a (possibly running) server's data to one file.
    Create(backup::CreateArgs),
    /// Restore a backup into an empty data directory that no server is using.
    Restore(backup::RestoreArgs),
}

#[derive(Subcommand)]
enum KeyAction {
    /// Create an API key; the key is printed once, as the last line of stdout.
    Create(KeyCreateArgs),
    /// List keys (never the keys themselves).
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Revoke a key by its id (`apikey_…`).
    Revoke {
        id: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Args)]
struct KeyCreateArgs {
    #[arg(long)]
    tenant: String,
    /// A label to recognise the key by.
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    storage: StorageArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The box's first process hardens itself before any thread exists (see the agent).
    if let Command::SandboxAgent { args } = &cli.command {
        return oma_sandbox::agent::process_main(args.clone());
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A key's state column in `list` output: `active`, or when it was revoked.
pub(crate) fn key_state(revoked_at: Option<i64>) -> String {
    revoked_at.map_or("active".to_string(), |t| {
        format!("revoked {}", oma_core::time::format_micros(t))
    })
}

/// `main` runs the agent before the async runtime exists; `run` never sees it.
fn unreachable_agent() -> Result<()> {
    anyhow::bail!("the sandbox agent runs outside the async runtime")
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::SandboxAgent { .. } => unreachable_agent(),
        Command::Backup { action } => match action {
            BackupAction::Create(a) => backup::create(a).await,
            BackupAction::Restore(a) => backup::restore(a).await,
        },
        Command::Doctor(storage) => doctor::run(storage).await,
        Command::Environments { action } => environments::run(action).await,
        Command::Integrations { action } => integrations::run(action).await,
        Command::Prune(args) => prune::run(args).await,
        Command::Events {
            action: EventsAction::Query(a),
        } => events::query(a).await,
        Command::Tail(a) => tail::run(a).await,
        Command::Worker(a) => worker::run(a).await,
        Command::Migrate { action } => match action {
            MigrateAction::Status(s) => migrate::status(s).await,
            MigrateAction::Up(s) => migrate::up(s).await,
            MigrateAction::StampBaseline(s) => migrate::stamp_baseline(s).await,
        },
        Command::Tenants { action } => tenants::run(action).await,
        Command::Shards { action } => shards::run(action).await,
        Command::Keys { action } => match action {
            KeyAction::Create(a) => {
                let store = a.storage.resolve()?.open_migrated_store().await?;
                let (info, key) = store
                    .create_api_key(&a.tenant, a.name.as_deref())
                    .await
                    .with_context(|| format!("creating a key for tenant {}", a.tenant))?;
                println!(
                    "created key {} for tenant {} (shown once; store it now):",
                    info.id, info.tenant_id
                );
                println!("{key}");
                Ok(())
            }
            KeyAction::List { tenant, storage } => {
                let store = storage.resolve()?.open_migrated_store().await?;
                for k in store.list_api_keys(tenant.as_deref()).await? {
                    println!(
                        "{}\t{}\t{}…\t{}\t{}\t{}",
                        k.id,
                        k.tenant_id,
                        k.key_prefix,
                        k.name.as_deref().unwrap_or("-"),
                        oma_core::time::format_micros(k.created_at),
                        key_state(k.revoked_at),
                    );
                }
                Ok(())
            }
            KeyAction::Revoke { id, storage } => {
                let store = storage.resolve()?.open_migrated_store().await?;
                store.revoke_api_key(&id).await?;
                println!("revoked {id}");
                Ok(())
            }
        },
    }
}
