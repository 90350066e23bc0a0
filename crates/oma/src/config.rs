//! Configuration layers: built-in defaults < `oma.toml` < its `[env.<name>]` overlay (chosen by
//! `--env` / `OMA_ENV`) < `OMA_*` environment < flags. clap reads the environment for each flag,
//! so a flag value always wins over its variable, and both win over the file.
//!
//! An overlay table has the same keys as the top level and replaces the values it sets; nested
//! tables (`[tls]`, …) merge key by key. Unknown keys, at the top level or in any overlay, are
//! errors naming the key and the file, so a typo never silently falls back to a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde::Deserialize;

use oma_store::{Backend, Store};

pub const DEFAULT_DATA_DIR: &str = "./oma-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";

/// The settings every subcommand shares: where the data lives, the config file and its overlay.
#[derive(Args, Debug, Clone, Default)]
pub struct StorageArgs {
    /// Data directory: the SQLite database (`oma.db`), blobs and the root key live here.
    #[arg(long, env = "OMA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: `sqlite://PATH` or `postgres://USER@HOST/DB`. Default: SQLite in the data dir.
    #[arg(long, env = "OMA_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Blob storage: `s3://BUCKET[/PREFIX]` (endpoint and credentials from the `AWS_*`
    /// variables) or a folder. Default: `blobs/` in the data dir.
    #[arg(long, env = "OMA_BLOB_URL")]
    pub blob_url: Option<String>,
    /// Configuration file (`oma.toml`; default: `./oma.toml` when it exists).
    #[arg(long, env = "OMA_CONFIG")]
    pub config: Option<PathBuf>,
    /// The `[env.NAME]` overlay of the configuration file to apply (e.g. `staging`).
    #[arg(long = "env", env = "OMA_ENV", value_name = "NAME")]
    pub env: Option<String>,
    /// The public URL clients and third parties reach this deployment at (`https://oma.example.com`):
    /// the base of every URL oma hands out.
    #[arg(long, env = "OMA_PUBLIC_BASE_URL")]
    pub public_base_url: Option<String>,
}

/// `oma.toml`. Every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub blob_url: Option<String>,
    pub public_base_url: Option<String>,
    /// Address of the Prometheus metrics listener (off when unset).
    pub metrics_listen: Option<String>,
    #[serde(default)]
    pub tls: TlsFileConfig,
    /// `[retention]`: what `oma prune` and the server's janitor delete (see `prune.rs`).
    #[serde(default)]
    pub retention: crate::prune::RetentionFileConfig,
    /// `[egress]`: operator-wide rules for every session's network traffic.
    #[serde(default)]
    pub egress: EgressFileConfig,
    /// `[work]`: the self-hosted work queue.
    #[serde(default)]
    pub work: WorkFileConfig,
    /// `[cluster]`: this node among others on one database (see `cluster.rs`).
    #[serde(default)]
    pub cluster: crate::cluster::ClusterFileConfig,
    /// `[pricing]`: list rates for `usage.list_cost` and budgets, over the built-in ones.
    #[serde(default)]
    pub pricing: PricingFileConfig,
    /// `[web_search]`: the search backend of the built-in `web_search` tool (see
    /// `web_search.rs`); without one the tool is not offered.
    #[serde(default)]
    pub web_search: crate::web_search::WebSearchFileConfig,
    /// `[env.<name>]` overlays. Empty once loaded: the chosen one is merged in.
    #[serde(default)]
    pub env: BTreeMap<String, FileConfig>,
}

/// `[egress]`: hosts every session may reach (`allow`, private addresses included) or never
/// (`deny`, which wins), with `*.` wildcards; `upstream_ca_files`: PEM roots trusted for
/// upstream TLS besides the system's (a private PKI); `connect_to`: host → `ADDRESS[:PORT]` the
/// proxy connects to instead, keeping the name for TLS and `Host` (like curl's `--connect-to`;
/// a GitHub Enterprise server or mirror for `github.com`), counted as allowed like `allow`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressFileConfig {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub upstream_ca_files: Vec<PathBuf>,
    #[serde(default)]
    pub connect_to: BTreeMap<String, String>,
}

/// `[work]`: `lease_ttl_seconds`, how long an acknowledged work item stays with its worker
/// without a heartbeat before it is queued again (default 30; `OMA_WORK_LEASE_TTL_SECONDS`
/// wins). A worker may ask for another lease per heartbeat (`desired_ttl_seconds`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkFileConfig {
    pub lease_ttl_seconds: Option<u64>,
}

/// `[pricing]`: the list rates `usage.list_cost` and budgets are measured with. Built in:
/// Anthropic's public rates for Claude models, $0.08 per session-hour of running, $10 per
/// 1,000 web searches. `[pricing.models."ID"]` (one model) or `[pricing.models."PREFIX*"]`
/// (every id starting so) sets a model's rates in dollars per million tokens: `input` and
/// `output`, and optionally `cache_write_5m` (default 1.25 × input), `cache_write_1h` (2 ×)
/// and `cache_read` (0.1 ×). A model with rates can carry a budget; the most specific entry
/// wins, an operator's over a built-in one for the same name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingFileConfig {
    pub session_hour_usd: Option<f64>,
    pub web_search_per_1000_usd: Option<f64>,
    #[serde(default)]
    pub models: BTreeMap<String, ModelPriceFileConfig>,
}

/// One `[pricing.models."…"]` entry, in dollars per million tokens.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPriceFileConfig {
    pub input: f64,
    pub output: f64,
    pub cache_write_5m: Option<f64>,
    pub cache_write_1h: Option<f64>,
    pub cache_read: Option<f64>,
}

impl PricingFileConfig {
    /// The built-in table with these entries applied.
    pub fn table(&self) -> Result<oma_core::pricing::PriceTable> {
        use oma_core::pricing::{ModelPattern, ModelRates, PriceTable, usd, usd_per_mtok};
        let check = |what: &str, v: f64| -> Result<f64> {
            if v.is_finite() && v >= 0.0 {
                Ok(v)
            } else {
                bail!("[pricing] {what} must be a non-negative number of dollars, got {v}")
            }
        };
        let mut table = PriceTable::builtin();
        if let Some(v) = self.session_hour_usd {
            table.runtime_per_hour = usd(check("session_hour_usd", v)?);
        }
        if let Some(v) = self.web_search_per_1000_usd {
            table.web_search = usd(check("web_search_per_1000_usd", v)? / 1000.0);
        }
        for (name, m) in &self.models {
            if name.is_empty() || name == "*" {
                bail!("[pricing.models] needs a model id or a `prefix*`, got `{name}`");
            }
            let at = |k: &str| format!("models.\"{name}\".{k}");
            let mut rates = ModelRates::per_mtok(
                check(&at("input"), m.input)?,
                check(&at("output"), m.output)?,
            );
            if let Some(v) = m.cache_write_5m {
                rates.cache_write_5m = usd_per_mtok(check(&at("cache_write_5m"), v)?);
            }
            if let Some(v) = m.cache_write_1h {
                rates.cache_write_1h = usd_per_mtok(check(&at("cache_write_1h"), v)?);
            }
            if let Some(v) = m.cache_read {
                rates.cache_read = usd_per_mtok(check(&at("cache_read"), v)?);
            }
            table.set_model(ModelPattern::parse(name), rates);
        }
        Ok(table)
    }
}

/// `[tls]`: terminate TLS in `oma serve` with these PEM files (both or neither).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFileConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl FileConfig {
    /// Reads `path` and applies its `[env.<env>]` overlay when `env` is given.
    pub fn load(path: &Path, env: Option<&str>) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text, env).with_context(|| format!("in {}", path.display()))
    }

    pub(crate) fn parse(text: &str, env: Option<&str>) -> Result<Self> {
        // The typed parse checks every key, overlays included, and its errors carry the line,
        // column and key; the untyped one is what overlays merge on.
        let typed: FileConfig = toml::from_str(text).map_err(|e| anyhow!("{e}"))?;
        if let Some((name, _)) = typed.env.iter().find(|(_, o)| !o.env.is_empty()) {
            bail!("[env.{name}] cannot hold overlays of its own");
        }
        let Some(name) = env else {
            return Ok(FileConfig {
                env: BTreeMap::new(),
                ..typed
            });
        };
        if !typed.env.contains_key(name) {
            let known: Vec<&str> = typed.env.keys().map(String::as_str).collect();
            bail!(
                "there is no [env.{name}] section (overlays defined: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
        let mut table: toml::Table = toml::from_str(text).map_err(|e| anyhow!("{e}"))?;
        let overlay = match table.remove("env") {
            Some(toml::Value::Table(mut envs)) => match envs.remove(name) {
                Some(toml::Value::Table(t)) => t,
                _ => bail!("[env.{name}] must be a table"),
            },
            _ => bail!("[env] must be a table of tables"),
        };
        merge(&mut table, overlay);
        toml::Value::Table(table)
            .try_into()
            .map_err(|e| anyhow!("[env.{name}]: {e}"))
    }
}

/// Overlays `over` on `base`: tables merge key by key, any other value replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Checks that `url` is an absolute http(s) URL without query, fragment or credentials and
/// returns it without a trailing slash, ready to have paths appended.
pub fn validate_public_base_url(url: &str) -> Result<String> {
    let u = url.trim();
    let lower = u.to_ascii_lowercase();
    let scheme_len = if lower.starts_with("https://") {
        8
    } else if lower.starts_with("http://") {
        7
    } else {
        bail!(
            "public_base_url `{url}` must be an absolute URL starting with https:// (or http://)"
        );
    };
    if u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("public_base_url `{url}` contains whitespace");
    }
    if u.contains(['?', '#']) {
        bail!("public_base_url `{url}` must not have a query or fragment");
    }
    let rest = &u[scheme_len..];
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        bail!("public_base_url `{url}` must not carry credentials");
    }
    // `host`, `host:port`, `[v6]` or `[v6]:port`.
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => bail!("public_base_url `{url}` has an unclosed IPv6 address"),
        },
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        bail!("public_base_url `{url}` has no host");
    }
    if let Some(p) = port
        && p.parse::<u16>().is_err()
    {
        bail!("public_base_url `{url}` has an invalid port `{p}`");
    }
    Ok(format!("{}{rest}", &lower[..scheme_len])
        .trim_end_matches('/')
        .to_string())
}

/// The settings after layering.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub backend: Backend,
    /// Where blobs live: an `s3://` URL or a folder.
    pub blob_url: String,
    /// Validated, without a trailing slash.
    pub public_base_url: Option<String>,
    /// The file the settings came from, if any, and the overlay applied.
    pub config_path: Option<PathBuf>,
    pub env: Option<String>,
    /// The file's settings with the overlay applied (other subcommands read their sections).
    pub file: FileConfig,
}

impl StorageArgs {
    pub fn resolve(&self) -> Result<Resolved> {
        let env = self.env.clone().filter(|e| !e.trim().is_empty());
        let config_path = match &self.config {
            Some(p) => Some(p.clone()),
            None if Path::new("oma.toml").exists() => Some(PathBuf::from("oma.toml")),
            None => None,
        };
        let file = match &config_path {
            Some(p) => FileConfig::load(p, env.as_deref())?,
            None => {
                if let Some(e) = &env {
                    bail!(
                        "--env {e} (OMA_ENV) selects an [env.{e}] overlay of oma.toml, but there is \
                         no configuration file: pass --config FILE or unset OMA_ENV"
                    );
                }
                FileConfig::default()
            }
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
        let blob_url = self
            .blob_url
            .clone()
            .or_else(|| file.blob_url.clone())
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| data_dir.join("blobs").display().to_string());
        let public_base_url = self
            .public_base_url
            .clone()
            .or_else(|| file.public_base_url.clone())
            .filter(|u| !u.trim().is_empty())
            .map(|u| validate_public_base_url(&u))
            .transpose()?;
        Ok(Resolved {
            data_dir,
            database_url,
            backend,
            blob_url,
            public_base_url,
            config_path,
            env,
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

    /// Opens the blob store (`blob_url`).
    pub fn open_blobs(&self) -> Result<oma_blob::BlobStore> {
        oma_blob::BlobStore::open_url(&self.blob_url)
            .with_context(|| format!("opening the blob store at {}", self.blob_url))
    }

    /// Opens the store ready for use: the embedded database is migrated in place; a fresh
    /// PostgreSQL database is initialised, one that is behind must be migrated with
    /// `oma migrate up` (operators run that deliberately on a schema in use).
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
                if status.baseline.is_none() && status.applied.is_empty() {
                    // A fresh database: nothing of oma's is there to protect, so initialise it
                    // (from the baseline, under the migration lock, so nodes starting together
                    // on it build it once). A database that is merely behind is left to the
                    // operator, who chooses when to migrate a schema in use.
                    for m in store.migrate_up().await? {
                        tracing::info!(version = m.version, description = %m.description, "initialised a fresh database");
                    }
                } else if !status.pending.is_empty() {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const FILE: &str = r#"
listen = "127.0.0.1:9000"
data_dir = "/srv/oma"
public_base_url = "https://oma.example.com/"

[tls]
cert = "/etc/oma/cert.pem"
key = "/etc/oma/key.pem"

[env.staging]
listen = "0.0.0.0:9100"

[env.staging.tls]
cert = "/etc/oma/staging.pem"

[env.production]
database_url = "postgres://oma@db/oma"
metrics_listen = "127.0.0.1:9464"
"#;

    #[test]
    fn without_an_env_the_top_level_applies() {
        let c = FileConfig::parse(FILE, None).unwrap();
        assert_eq!(c.listen.as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(c.metrics_listen, None);
        assert!(c.env.is_empty());
        assert_eq!(c.tls.cert.unwrap(), PathBuf::from("/etc/oma/cert.pem"));
    }

    #[test]
    fn an_overlay_replaces_what_it_sets_and_nested_tables_merge_key_by_key() {
        let c = FileConfig::parse(FILE, Some("staging")).unwrap();
        assert_eq!(c.listen.as_deref(), Some("0.0.0.0:9100"));
        assert_eq!(c.data_dir.unwrap(), PathBuf::from("/srv/oma"));
        assert_eq!(c.tls.cert.unwrap(), PathBuf::from("/etc/oma/staging.pem"));
        assert_eq!(c.tls.key.unwrap(), PathBuf::from("/etc/oma/key.pem"));

        let p = FileConfig::parse(FILE, Some("production")).unwrap();
        assert_eq!(p.listen.as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(p.database_url.as_deref(), Some("postgres://oma@db/oma"));
        assert_eq!(p.metrics_listen.as_deref(), Some("127.0.0.1:9464"));
    }

    #[test]
    fn a_missing_overlay_is_an_error_listing_the_defined_ones() {
        let e = format!("{:#}", FileConfig::parse(FILE, Some("prod")).unwrap_err());
        assert!(e.contains("[env.prod]"), "{e}");
        assert!(e.contains("production, staging"), "{e}");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key_even_in_overlays() {
        let e = format!(
            "{:#}",
            FileConfig::parse("lissten = \"x\"\n", None).unwrap_err()
        );
        assert!(e.contains("unknown field `lissten`"), "{e}");
        // An overlay that is not selected is checked too: a typo there would bite in production.
        let text = "[env.production]\nmetrics_lisen = \"x\"\n";
        let e = format!("{:#}", FileConfig::parse(text, None).unwrap_err());
        assert!(e.contains("metrics_lisen"), "{e}");
        let e = format!(
            "{:#}",
            FileConfig::parse("[tls]\ncertificate = \"x\"\n", None).unwrap_err()
        );
        assert!(e.contains("certificate"), "{e}");
        let e = format!(
            "{:#}",
            FileConfig::parse("[env.a.env.b]\nlisten = \"x\"\n", Some("a")).unwrap_err()
        );
        assert!(e.contains("cannot hold overlays"), "{e}");
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oma.toml");
        std::fs::write(&path, "listen = \"x\"\nbogus = 1\n").unwrap();
        let e = format!("{:#}", FileConfig::load(&path, None).unwrap_err());
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn layers_defaults_file_overlay_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oma.toml");
        std::fs::write(&path, FILE).unwrap();
        let args = StorageArgs {
            config: Some(path.clone()),
            env: Some("production".into()),
            ..StorageArgs::default()
        };
        let r = args.resolve().unwrap();
        assert_eq!(r.data_dir, PathBuf::from("/srv/oma"));
        assert_eq!(r.database_url, "postgres://oma@db/oma");
        assert_eq!(r.backend, Backend::Postgres);
        assert_eq!(
            r.public_base_url.as_deref(),
            Some("https://oma.example.com")
        );
        // A flag (or its OMA_* variable, which clap folds into the same field) wins.
        let args = StorageArgs {
            data_dir: Some("/tmp/x".into()),
            database_url: Some("sqlite:///tmp/x/oma.db".into()),
            public_base_url: Some("http://localhost:8787".into()),
            ..args
        };
        let r = args.resolve().unwrap();
        assert_eq!(r.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(r.backend, Backend::Sqlite);
        assert_eq!(r.public_base_url.as_deref(), Some("http://localhost:8787"));
        // An env without any file is refused rather than ignored.
        let e = StorageArgs {
            config: None,
            env: Some("staging".into()),
            data_dir: Some(dir.path().into()),
            ..StorageArgs::default()
        };
        // Only meaningful when the working directory has no oma.toml of its own.
        if !Path::new("oma.toml").exists() {
            let msg = format!("{:#}", e.resolve().unwrap_err());
            assert!(msg.contains("no configuration file"), "{msg}");
        }
    }

    #[test]
    fn public_base_url_must_be_absolute_http() {
        assert_eq!(
            validate_public_base_url("https://oma.example.com/base/").unwrap(),
            "https://oma.example.com/base"
        );
        assert_eq!(
            validate_public_base_url("http://127.0.0.1:8787").unwrap(),
            "http://127.0.0.1:8787"
        );
        assert_eq!(
            validate_public_base_url("HTTPS://[::1]:8443/").unwrap(),
            "https://[::1]:8443"
        );
        for bad in [
            "oma.example.com",
            "https://",
            "https://:80",
            "https://host:99999",
            "https://a b",
            "/relative",
            "ftp://oma.example.com",
            "https://oma.example.com/?x=1",
            "https://user:pw@oma.example.com",
        ] {
            assert!(validate_public_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pricing_prices_operator_models_and_checks_values() {
        let c = FileConfig::parse(
            r#"
[pricing]
session_hour_usd = 0.16

[pricing.models."gpt-local-7b"]
input = 0.5
output = 1.5
cache_read = 0.0

[pricing.models."claude-opus-4*"]
input = 4.0
output = 20.0
"#,
            None,
        )
        .unwrap();
        let t = c.pricing.table().unwrap();
        let local = t.rates("gpt-local-7b").unwrap();
        assert_eq!(
            (local.input, local.output, local.cache_read),
            (500_000, 1_500_000, 0)
        );
        assert_eq!(local.cache_write_5m, 625_000);
        assert_eq!(t.rates("claude-opus-4-8").unwrap().input, 4_000_000);
        assert_eq!(t.runtime_per_hour, oma_core::pricing::usd(0.16));
        assert!(t.rates("gpt-other").is_none());

        let bad = FileConfig::parse("[pricing.models.\"m\"]\ninput = -1.0\noutput = 1.0\n", None)
            .unwrap();
        let e = bad.pricing.table().unwrap_err().to_string();
        assert!(e.contains("models.\"m\".input"), "{e}");
        assert!(FileConfig::parse("[pricing.models.\"m\"]\ninput = 1.0\n", None).is_err());
        assert!(FileConfig::parse("[pricing]\nsession_hour = 1.0\n", None).is_err());
    }
}
