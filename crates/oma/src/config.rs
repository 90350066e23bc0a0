//! Configuration layers: built-in defaults < `oma.toml` < `OMA_*` environment < flags.
//! (clap reads the environment for each flag, so a flag value always wins over it.)

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Deserialize;

use oma_store::{Backend, Store};

pub const DEFAULT_DATA_DIR: &str = "./oma-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";

/// Where the data lives; every storage-touching subcommand takes these.
#[derive(Args, Debug, Clone, Default)]
pub struct StorageArgs {
    /// Data directory: the SQLite database (`oma.db`), blobs and the root key live here.
    #[arg(long, env = "OMA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: `sqlite://PATH` or `postgres://USER@HOST/DB`. Default: SQLite in the data dir.
    #[arg(long, env = "OMA_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Configuration file (`oma.toml`).
    #[arg(long, env = "OMA_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `oma.toml`. Every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// The storage settings after layering.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub backend: Backend,
    pub file: FileConfig,
}

impl StorageArgs {
    pub fn resolve(&self) -> Result<Resolved> {
        let file = match &self.config {
            Some(p) => FileConfig::load(p)?,
            None if Path::new("oma.toml").exists() => FileConfig::load(Path::new("oma.toml"))?,
            None => FileConfig::default(),
        };
        let data_dir = self
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = match self
            .database_url
            .clone()
            .or_else(|| file.database_url.clone())
        {
            Some(u) => u,
            None => format!("sqlite://{}", data_dir.join("oma.db").display()),
        };
        let backend = Backend::of_url(&database_url)?;
        Ok(Resolved {
            data_dir,
            database_url,
            backend,
            file,
        })
    }
}

impl Resolved {
    pub async fn open_store(&self) -> Result<Store> {
        if self.backend == Backend::Sqlite {
            std::fs::create_dir_all(&self.data_dir).with_context(|| {
                format!("creating the data directory {}", self.data_dir.display())
            })?;
        }
        Store::connect(&self.database_url).await.with_context(|| {
            format!(
                "connecting to {}",
                oma_store::db_url_redacted(&self.database_url)
            )
        })
    }

    /// Opens the store ready for use: the embedded database is migrated in place; PostgreSQL
    /// must have been migrated with `oma migrate up` (operators run that deliberately).
    pub async fn open_migrated_store(&self) -> Result<Store> {
        let store = self.open_store().await?;
        match self.backend {
            Backend::Sqlite => {
                let applied = store.migrate_up().await?;
                for m in applied {
                    tracing::info!(version = m.version, description = %m.description, "applied migration");
                }
            }
            Backend::Postgres => {
                let status = store.ensure_not_newer().await?;
                if !status.pending.is_empty() {
                    bail!(
                        "the database schema is behind this oma binary ({} pending migration(s)): run \
                         `oma migrate up --database-url <url>` first",
                        status.pending.len()
                    );
                }
            }
        }
        store
            .create_tenant(oma_server::auth::DEFAULT_TENANT)
            .await?;
        Ok(store)
    }
}
