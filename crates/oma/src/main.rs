//! `oma`: the one binary. `serve` runs the API server; the other verbs operate on the same
//! storage (also while a server runs).

mod backup;
mod config;
mod doctor;
mod serve;

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
    /// Manage tenants.
    Tenants {
        #[command(subcommand)]
        action: TenantAction,
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
    /// The in-box sandbox agent: speaks the framed tool protocol on stdin/stdout. Started by
    /// the server's sandbox launchers, never by hand.
    #[command(hide = true)]
    SandboxAgent,
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Show applied and pending migrations.
    Status(StorageArgs),
    /// Apply pending migrations.
    Up(StorageArgs),
}

#[derive(Subcommand)]
enum BackupAction {
    /// Write a consistent backup of a (possibly running) server's data to one file.
    Create(backup::CreateArgs),
    /// Restore a backup into an empty data directory that no server is using.
    Restore(backup::RestoreArgs),
}

#[derive(Subcommand)]
enum TenantAction {
    /// Create a tenant (an existing name is left as it is).
    Create {
        name: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// List tenants.
    List(StorageArgs),
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

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::SandboxAgent => Ok(oma_sandbox::agent::run_stdio().await?),
        Command::Backup { action } => match action {
            BackupAction::Create(a) => backup::create(a).await,
            BackupAction::Restore(a) => backup::restore(a).await,
        },
        Command::Doctor(storage) => doctor::run(storage).await,
        Command::Migrate { action } => match action {
            MigrateAction::Status(s) => {
                let store = s.resolve()?.open_store().await?;
                let st = store.migration_status().await?;
                println!(
                    "database: {} ({})",
                    store.url_redacted(),
                    store.backend().name()
                );
                for m in &st.applied {
                    println!("applied  {:04} {}", m.version, m.description);
                }
                for m in &st.pending {
                    println!("pending  {:04} {}", m.version, m.description);
                }
                for v in &st.unknown {
                    println!("unknown  {v:04} (written by a newer oma)");
                }
                println!(
                    "{}",
                    if !st.unknown.is_empty() {
                        "schema is NEWER than this binary: upgrade oma"
                    } else if st.pending.is_empty() {
                        "schema is up to date"
                    } else {
                        "schema is behind: run `oma migrate up`"
                    }
                );
                Ok(())
            }
            MigrateAction::Up(s) => {
                let store = s.resolve()?.open_store().await?;
                let applied = store.migrate_up().await?;
                for m in &applied {
                    println!("applied  {:04} {}", m.version, m.description);
                }
                println!(
                    "schema is up to date ({} migration(s) applied)",
                    applied.len()
                );
                Ok(())
            }
        },
        Command::Tenants { action } => match action {
            TenantAction::Create { name, storage } => {
                let store = storage.resolve()?.open_migrated_store().await?;
                match store.create_tenant(&name).await? {
                    oma_store::tenants::Created::New => println!("created tenant {name}"),
                    oma_store::tenants::Created::AlreadyExisted => {
                        println!("tenant {name} already exists; nothing to do")
                    }
                }
                Ok(())
            }
            TenantAction::List(storage) => {
                let store = storage.resolve()?.open_migrated_store().await?;
                for t in store.list_tenants().await? {
                    println!("{t}");
                }
                Ok(())
            }
        },
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
                        k.revoked_at.map_or("active".to_string(), |t| format!(
                            "revoked {}",
                            oma_core::time::format_micros(t)
                        )),
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
