//! `oma doctor`: checks every piece a deployment needs and says how to fix what is broken.
//!
//! Each check prints one line, `ok` / `warn` / `skip` / `FAIL`, what was checked, and for
//! anything not `ok` the fix. Required pieces (database, migrations, root secret, sandbox
//! backend) FAIL; optional ones not configured yet (a model provider key, integrations) warn or skip.
//! The exit status is non-zero iff something FAILed.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};

use oma_store::{Backend, Store};

use crate::backup::sqlite_file;
use crate::config::StorageArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Skip,
    Fail,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Skip => "skip",
            Level::Fail => "FAIL",
        })
    }
}

#[derive(Debug)]
struct Check {
    level: Level,
    what: &'static str,
    detail: String,
    fix: Option<String>,
}

#[derive(Default)]
struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn add(&mut self, level: Level, what: &'static str, detail: impl Into<String>) {
        self.checks.push(Check {
            level,
            what,
            detail: detail.into(),
            fix: None,
        });
    }

    fn fix(
        &mut self,
        level: Level,
        what: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.checks.push(Check {
            level,
            what,
            detail: detail.into(),
            fix: Some(fix.into()),
        });
    }

    fn failures(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.level == Level::Fail)
            .count()
    }
}

pub async fn run(storage: StorageArgs) -> Result<()> {
    let report = checks(&storage).await;
    for c in &report.checks {
        println!("{:<4}  {}: {}", c.level, c.what, c.detail);
        if let Some(fix) = &c.fix {
            println!("      fix: {fix}");
        }
    }
    let failed = report.failures();
    let warned = report
        .checks
        .iter()
        .filter(|c| c.level == Level::Warn)
        .count();
    if failed > 0 {
        bail!("{failed} required check(s) failed ({warned} warning(s))");
    }
    println!("all required checks passed ({warned} warning(s))");
    Ok(())
}

async fn checks(storage: &StorageArgs) -> Report {
    let mut r = Report::default();
    let resolved = match storage.resolve() {
        Ok(res) => res,
        Err(e) => {
            r.fix(
                Level::Fail,
                "configuration",
                format!("{e:#}"),
                "fix oma.toml / --config, --data-dir, --database-url (or OMA_DATABASE_URL)",
            );
            return r;
        }
    };
    r.add(
        Level::Ok,
        "configuration",
        format!(
            "data dir {}, database {}",
            resolved.data_dir.display(),
            oma_store::db_url_redacted(&resolved.database_url)
        ),
    );
    let ttl = crate::cluster::lease_ttl(&resolved.file.cluster)
        .unwrap_or(oma_runtime::cluster::DEFAULT_LEASE_TTL);
    let node = std::fs::read_to_string(resolved.data_dir.join("node_id"))
        .ok()
        .map(|s| s.trim().to_string())
        .or_else(|| resolved.file.cluster.node_id.clone());
    database(
        &mut r,
        &resolved.database_url,
        resolved.backend,
        (node.as_deref(), ttl),
    )
    .await;
    root_secret(&mut r, &resolved.data_dir);
    sandbox(&mut r, &resolved.data_dir).await;
    model_provider(&mut r);
    egress_ca(&mut r, &resolved.data_dir);
    web_search(&mut r, &resolved.file.web_search);
    integrations(&mut r, &resolved).await;
    public_urls(&mut r, resolved.public_base_url.as_deref());
    r
}

async fn database(
    r: &mut Report,
    url: &str,
    backend: Backend,
    (node, ttl): (Option<&str>, Duration),
) {
    // Doctor only looks: it must not create an embedded database that does not exist yet.
    if backend == Backend::Sqlite
        && let Some(path) = sqlite_file(url)
        && !path.exists()
    {
        if let Err(why) = creatable(&path) {
            r.fix(
                Level::Fail,
                "database",
                format!("{} cannot be created: {why}", path.display()),
                "point --data-dir (OMA_DATA_DIR) or --database-url at a folder this user can \
                 write, or create it with the right owner",
            );
            r.add(Level::Skip, "migrations", "no database yet");
            return;
        }
        r.fix(
            Level::Warn,
            "database",
            format!("{} does not exist yet", path.display()),
            "`oma serve` (or `oma migrate up`) creates and migrates it on first start; if you \
             expected data here, check --data-dir",
        );
        r.add(Level::Skip, "migrations", "no database yet");
        return;
    }
    let connected = tokio::time::timeout(Duration::from_secs(15), Store::connect(url)).await;
    let store = match connected {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            r.fix(
                Level::Fail,
                "database",
                format!("cannot connect to {}: {e}", oma_store::db_url_redacted(url)),
                database_fix(backend),
            );
            r.add(Level::Skip, "migrations", "the database is unreachable");
            return;
        }
        Err(_) => {
            r.fix(
                Level::Fail,
                "database",
                format!(
                    "connecting to {} timed out after 15s",
                    oma_store::db_url_redacted(url)
                ),
                database_fix(backend),
            );
            r.add(Level::Skip, "migrations", "the database is unreachable");
            return;
        }
    };
    match store.ping().await {
        Ok(()) => r.add(
            Level::Ok,
            "database",
            format!("{} is reachable", store.url_redacted()),
        ),
        Err(e) => {
            r.fix(
                Level::Fail,
                "database",
                format!("{} does not answer: {e}", store.url_redacted()),
                database_fix(backend),
            );
            store.close().await;
            return;
        }
    }
    match store.migration_status().await {
        Ok(st) if !st.unknown.is_empty() => r.fix(
            Level::Fail,
            "migrations",
            format!(
                "the schema is NEWER than this binary (unknown migration(s) {:?})",
                st.unknown
            ),
            "upgrade oma to the version that wrote this database",
        ),
        Ok(st) if !st.pending.is_empty() => r.fix(
            Level::Fail,
            "migrations",
            format!(
                "the schema is behind: {} pending migration(s), first {:04} {}",
                st.pending.len(),
                st.pending[0].version,
                st.pending[0].description
            ),
            "run `oma migrate up` with the same --data-dir / --database-url",
        ),
        Ok(st) => {
            r.add(
                Level::Ok,
                "migrations",
                format!("schema is up to date ({} applied)", st.applied.len()),
            );
            cluster(r, &store, node, ttl).await;
        }
        Err(e) => r.fix(
            Level::Fail,
            "migrations",
            format!("cannot read the migration state: {e}"),
            "check that the database user can read `_sqlx_migrations`, then run `oma migrate status`",
        ),
    }
    store.close().await;
}

/// The nodes serving this database: each with its state, leases and last heartbeat. A node
/// that stopped heartbeating without saying it stopped has crashed or hangs: its sessions
/// move to the others once their leases expire.
async fn cluster(r: &mut Report, store: &Store, node: Option<&str>, ttl: Duration) {
    let nodes = match store.nodes().await {
        Ok(n) => n,
        Err(e) => {
            r.fix(
                Level::Fail,
                "cluster",
                format!("cannot read the node registry: {e}"),
                "check that the database user can read `cluster_nodes` and `session_leases`",
            );
            return;
        }
    };
    let ttl_us = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
    let this = node.map_or_else(|| "not started yet".to_string(), |n| format!("`{n}`"));
    if nodes.is_empty() {
        r.add(
            Level::Ok,
            "cluster",
            format!("this data dir's node: {this}; no node has served this database yet"),
        );
        return;
    }
    let mut silent = Vec::new();
    let list: Vec<String> = nodes
        .iter()
        .map(|n| {
            let heard = n.silent_for / 1_000_000;
            if n.state != "stopped" && n.silent_for >= ttl_us {
                silent.push(n.node_id.clone());
            }
            format!(
                "{} at {} ({}, {} lease(s), heard {heard}s ago)",
                n.node_id, n.address, n.state, n.leases
            )
        })
        .collect();
    let detail = format!(
        "this data dir's node: {this}; {} node(s): {}",
        nodes.len(),
        list.join("; ")
    );
    if silent.is_empty() {
        r.add(Level::Ok, "cluster", detail);
    } else {
        r.fix(
            Level::Warn,
            "cluster",
            format!("{detail}; silent past the lease lifetime: {}", silent.join(", ")),
            "a silent node crashed or hangs: its sessions move to the live nodes by themselves;              restart it or remove it from the load balancer",
        );
    }
}

/// Whether a file at `path` could be created: its nearest existing ancestor is a folder this
/// process can write in (probed with a file created and removed at once; nothing else is
/// left behind).
fn creatable(path: &Path) -> Result<(), String> {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d.as_os_str().is_empty() {
            dir = Some(Path::new("."));
            continue;
        }
        match std::fs::metadata(d) {
            Ok(m) if m.is_dir() => {
                let probe = d.join(format!(".oma-doctor-probe-{}", std::process::id()));
                return match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&probe)
                {
                    Ok(_) => {
                        let _ = std::fs::remove_file(&probe);
                        Ok(())
                    }
                    Err(e) => Err(format!("cannot write in {}: {e}", d.display())),
                };
            }
            Ok(_) => return Err(format!("{} is not a directory", d.display())),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                dir = d.parent()
            }
            Err(e) => return Err(format!("cannot read {}: {e}", d.display())),
        }
    }
    Ok(())
}

fn database_fix(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => {
            "check that PostgreSQL is running and reachable at that host/port, and the user, \
             password and database name in --database-url (OMA_DATABASE_URL)"
        }
        Backend::Sqlite => {
            "check that the data directory is readable and writable by this user and that the \
             disk is not full"
        }
    }
}

const ROOT_SECRET_FIX: &str = "set OMA_ROOT_SECRET to the base64 of 32 random bytes (`openssl rand -base64 32`), or \
     let `oma serve` generate DATA_DIR/root.key on first start; if sealed secrets already exist, \
     restore the ORIGINAL key from your backup instead";

/// The root secret as `oma serve` would load it, if it can be.
fn sealer(data_dir: &Path) -> Option<oma_core::seal::Sealer> {
    match std::env::var("OMA_ROOT_SECRET") {
        Ok(b64) if !b64.trim().is_empty() => oma_core::seal::Sealer::from_base64(&b64).ok(),
        _ => std::fs::read_to_string(data_dir.join("root.key"))
            .ok()
            .and_then(|t| oma_core::seal::Sealer::from_base64(&t).ok()),
    }
}

/// The deployment CA that signs the egress proxy's intercepted connections.
fn egress_ca(r: &mut Report, data_dir: &Path) {
    let Some(sealer) = sealer(data_dir) else {
        return r.add(
            Level::Skip,
            "egress CA",
            "the root secret is not usable (see above), so the sealed CA cannot be opened",
        );
    };
    match oma_egress::DeploymentCa::load(data_dir, &sealer) {
        Ok(Some(ca)) => r.add(
            Level::Ok,
            "egress CA",
            format!(
                "{} (sha256 {}); boxes trust it, clients of the proxy's host door need it",
                oma_egress::DeploymentCa::path(data_dir).display(),
                ca.fingerprint()
            ),
        ),
        Ok(None) => r.add(
            Level::Ok,
            "egress CA",
            "not created yet: `oma serve` creates and seals it at first start",
        ),
        Err(e) => r.fix(
            Level::Fail,
            "egress CA",
            format!("cannot open the sealed deployment CA: {e}"),
            "restore the root secret that sealed it; or move the file away to have `oma serve` \
             create a new CA (boxes of running sessions keep trusting the old one until they \
             restart)",
        ),
    }
}

fn root_secret(r: &mut Report, data_dir: &Path) {
    if let Ok(b64) = std::env::var("OMA_ROOT_SECRET")
        && !b64.trim().is_empty()
    {
        match oma_core::seal::Sealer::from_base64(&b64) {
            Ok(_) => r.add(Level::Ok, "root secret", "OMA_ROOT_SECRET is a valid key"),
            Err(e) => r.fix(
                Level::Fail,
                "root secret",
                format!("OMA_ROOT_SECRET is not a valid key: {e}"),
                ROOT_SECRET_FIX,
            ),
        }
        return;
    }
    let path = data_dir.join("root.key");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            r.fix(
                Level::Fail,
                "root secret",
                format!(
                    "OMA_ROOT_SECRET is not set and {} does not exist",
                    path.display()
                ),
                ROOT_SECRET_FIX,
            );
            return;
        }
        Err(e) => {
            r.fix(
                Level::Fail,
                "root secret",
                format!("cannot read {}: {e}", path.display()),
                format!("make {} readable by the user oma runs as", path.display()),
            );
            return;
        }
    };
    if let Err(e) = oma_core::seal::Sealer::from_base64(&text) {
        r.fix(
            Level::Fail,
            "root secret",
            format!("{} does not hold a valid key: {e}", path.display()),
            ROOT_SECRET_FIX,
        );
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(&path) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                r.fix(
                    Level::Fail,
                    "root secret",
                    format!(
                        "{} is readable by other users (mode {:o})",
                        path.display(),
                        m.permissions().mode() & 0o777
                    ),
                    format!("chmod 600 {}", path.display()),
                );
                return;
            }
            Ok(_) => {}
            Err(e) => {
                r.fix(
                    Level::Fail,
                    "root secret",
                    format!("cannot stat {}: {e}", path.display()),
                    format!("make {} readable by the user oma runs as", path.display()),
                );
                return;
            }
        }
    }
    r.add(
        Level::Ok,
        "root secret",
        format!("{} holds a valid key (mode 0600)", path.display()),
    );
}

async fn sandbox(r: &mut Report, data_dir: &Path) {
    let exe = match std::env::current_exe() {
        Ok(exe) if exe.exists() => exe,
        Ok(exe) => {
            return r.fix(
                Level::Fail,
                "sandbox backend",
                format!("the oma binary {} is gone", exe.display()),
                "reinstall oma (the binary was moved or deleted while in use)",
            );
        }
        Err(e) => {
            return r.fix(
                Level::Fail,
                "sandbox backend",
                format!("cannot locate the oma binary for the in-box agent: {e}"),
                "run oma from a path that /proc/self/exe resolves to",
            );
        }
    };
    match std::env::var("OMA_SANDBOX").unwrap_or_default().trim() {
        "local" => r.fix(
            Level::Warn,
            "sandbox backend",
            "`local` (OMA_SANDBOX=local): tools run WITHOUT isolation, as the user oma runs as",
            "unset OMA_SANDBOX to use the isolated backend (needs bubblewrap)",
        ),
        "" | "isolated" => {
            let mut config = oma_sandbox::IsolatedConfig::new(exe, data_dir.join("sandbox"));
            if let Ok(b) = std::env::var("OMA_BWRAP")
                && !b.trim().is_empty()
            {
                config.bwrap = b.trim().into();
            }
            match oma_sandbox::IsolatedLauncher::new(config).preflight().await {
                Ok(p) => r.add(
                    Level::Ok,
                    "sandbox backend",
                    format!(
                        "isolated: {}, namespaces usable, cgroups {}",
                        p.bwrap_version, p.cgroups
                    ),
                ),
                Err(e) => r.fix(
                    Level::Fail,
                    "sandbox backend",
                    format!("isolated: {e}"),
                    "install bubblewrap (`apt-get install bubblewrap`), enable user namespaces \
                     (sysctl user.max_user_namespaces=15000) and run oma where it may create \
                     cgroups (root, or a delegated cgroup v2 subtree); or choose the unisolated \
                     backend explicitly with OMA_SANDBOX=local",
                ),
            }
        }
        other => r.fix(
            Level::Fail,
            "sandbox backend",
            format!("OMA_SANDBOX=`{other}` is not a backend"),
            "set OMA_SANDBOX to `isolated` (default) or `local`",
        ),
    }
}

fn model_provider(r: &mut Report) {
    match oma_model::AnthropicConfig::from_env() {
        Ok(cfg) => r.add(
            Level::Ok,
            "model provider",
            format!("Anthropic credentials are set (base URL {})", cfg.base_url),
        ),
        Err(e) => r.fix(
            Level::Warn,
            "model provider",
            format!("{e}; agent turns on Anthropic models will fail"),
            "export ANTHROPIC_API_KEY=sk-ant-… in the server's environment (or add a model route \
             with /v1/oma/model_routes)",
        ),
    }
    let openai_models = std::env::var("OMA_OPENAI_MODELS").unwrap_or_default();
    if !openai_models.trim().is_empty() {
        // `oma serve` refuses to start in this state, so it is a required piece.
        if std::env::var("OMA_OPENAI_BASE_URL").is_ok_and(|v| !v.trim().is_empty()) {
            r.add(
                Level::Ok,
                "openai-compatible provider",
                format!("serves {}", openai_models.trim()),
            );
        } else {
            r.fix(
                Level::Fail,
                "openai-compatible provider",
                "OMA_OPENAI_MODELS is set but OMA_OPENAI_BASE_URL is not; `oma serve` will refuse to start",
                "set OMA_OPENAI_BASE_URL (and OMA_OPENAI_API_KEY), or unset OMA_OPENAI_MODELS",
            );
        }
    }
}

fn web_search(r: &mut Report, config: &crate::web_search::WebSearchFileConfig) {
    match config.client() {
        Ok(Some(c)) => r.add(
            Level::Ok,
            "web search",
            format!(
                "web_search is offered, answered by {} at {}",
                c.provider(),
                c.base_url()
            ),
        ),
        Ok(None) => r.fix(
            Level::Skip,
            "web search",
            "no search backend is configured, so web_search is not offered to models",
            "add [web_search] provider = \"brave\" (with api_key_env) or \"searxng\" (with \
             base_url) to oma.toml, or set OMA_WEB_SEARCH_PROVIDER",
        ),
        // `oma serve` refuses to start in this state.
        Err(e) => r.fix(
            Level::Fail,
            "web search",
            format!("{e:#}; `oma serve` will refuse to start"),
            "fix [web_search] in oma.toml (or the OMA_WEB_SEARCH_* variables)",
        ),
    }
}

/// Each configured integration: its webhook secret opens with this deployment's root secret,
/// it has a token to reply with, and the exact webhook URL to register with the service.
async fn integrations(r: &mut Report, resolved: &crate::config::Resolved) {
    let rows = async {
        let control = resolved.open_store().await?;
        let router = oma_store::TenantRouter::open(control).await?;
        let mut rows = Vec::new();
        for shard in router.shards() {
            rows.push((
                shard.store.clone(),
                shard.store.list_integrations(None).await?,
            ));
        }
        anyhow::Ok(rows)
    }
    .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            return r.add(
                Level::Skip,
                "integrations",
                format!("cannot list them (the database check above says why): {e:#}"),
            );
        }
    };
    if rows.iter().all(|(_, r)| r.is_empty()) {
        return r.add(
            Level::Skip,
            "integrations",
            "none configured (`oma integrations add slack|github|linear --agent … --environment \
             … --secret … --token … --allow …`), so there are no webhook secrets to check",
        );
    }
    let sealer = sealer(&resolved.data_dir);
    let base = resolved.public_base_url.as_deref();
    for (store, list) in rows {
        for row in list {
            let url = match base {
                Some(b) => format!("{b}{}", oma_integrations::webhook_path(&row.id)),
                None => format!(
                    "<public_base_url>{}",
                    oma_integrations::webhook_path(&row.id)
                ),
            };
            let kind = oma_integrations::Kind::parse(&row.kind);
            let secret_name = kind.map_or("webhook secret", |k| k.secret_name());
            let who = format!(
                "{} integration {} (tenant {}, agent {})",
                row.kind, row.id, row.tenant_id, row.agent_id
            );
            let readd = format!(
                "`oma integrations remove {} --tenant {}`, then `oma integrations add {} …` with \
                 the service's {secret_name} and token",
                row.id, row.tenant_id, row.kind
            );
            let opened = sealer
                .as_ref()
                .map(|s| store.open_integration_secrets(&row, s));
            match opened {
                None => r.add(
                    Level::Skip,
                    "integration",
                    format!("{who}: the root secret is not usable (see above), so its {secret_name} cannot be checked"),
                ),
                Some(Err(_)) => r.fix(
                    Level::Fail,
                    "integration",
                    format!("{who}: its {secret_name} cannot be opened with this root secret; every delivery will be refused"),
                    format!("restore the root secret it was sealed with, or {readd}"),
                ),
                Some(Ok(s)) if s.secret.is_empty() => r.fix(
                    Level::Fail,
                    "integration",
                    format!("{who}: its {secret_name} is empty"),
                    readd.clone(),
                ),
                Some(Ok(s)) if s.token.is_none() && row.has_oauth_app() => r.fix(
                    Level::Warn,
                    "integration",
                    format!(
                        "{who}: {secret_name} present, OAuth app configured but not installed yet (no token): register the redirect URL {} and the webhook URL {url}",
                        oma_integrations::oauth::redirect_uri(base.unwrap_or("<public_base_url>"), &row.id)
                    ),
                    format!(
                        "`oma integrations install {} --tenant {}` prints the install link",
                        row.id, row.tenant_id
                    ),
                ),
                Some(Ok(_))
                    if row.token_expires_at.is_some_and(|e| e <= oma_core::time::now_micros())
                        && !row.can_refresh() =>
                {
                    r.fix(
                        Level::Fail,
                        "integration",
                        format!("{who}: its token expired and there is nothing to refresh it with; replies fail"),
                        format!(
                            "`oma integrations install {} --tenant {}` and install again",
                            row.id, row.tenant_id
                        ),
                    )
                }
                Some(Ok(_)) if row.has_oauth_app() => r.add(
                    Level::Ok,
                    "integration",
                    format!(
                        "{who}: {secret_name} present, installed through OAuth (oma refreshes its token{}); register the webhook URL {url} and the redirect URL {} (allow: {})",
                        row.token_expires_at
                            .map(|e| format!(", now valid until {}", oma_core::time::format_micros(e)))
                            .unwrap_or_default(),
                        oma_integrations::oauth::redirect_uri(base.unwrap_or("<public_base_url>"), &row.id),
                        row.allow.join(", ")
                    ),
                ),
                Some(Ok(s)) if s.token.is_none() => r.fix(
                    Level::Warn,
                    "integration",
                    format!("{who}: {secret_name} present, but no token: replies cannot be posted; webhook URL {url}"),
                    readd.clone(),
                ),
                Some(Ok(_)) => r.add(
                    Level::Ok,
                    "integration",
                    format!("{who}: {secret_name} and token present; register the webhook URL {url} (allow: {})", row.allow.join(", ")),
                ),
            }
            if base.is_none() {
                r.fix(
                    Level::Warn,
                    "integration",
                    format!("{who}: public_base_url is not set, so its webhook URL is only known as {url}"),
                    "set public_base_url (oma.toml, OMA_PUBLIC_BASE_URL or --public-base-url) to the public address of this deployment",
                );
            }
        }
    }
}

fn public_urls(r: &mut Report, public_base_url: Option<&str>) {
    // `resolve` has validated it (absolute http(s), no trailing slash).
    match public_base_url {
        Some(base) => r.add(
            Level::Ok,
            "public URLs",
            format!(
                "SDK base_url: {base} (the console at {base}/; each integration's webhook URL is \
                 {base}/v1/integrations/<id>/webhook, listed above)"
            ),
        ),
        None => r.add(
            Level::Skip,
            "public URLs",
            "public_base_url is not set (oma.toml, OMA_PUBLIC_BASE_URL or --public-base-url); no \
             webhook URLs to register",
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn sqlite_file_paths() {
        assert_eq!(
            sqlite_file("sqlite:///a/oma.db?mode=rwc"),
            Some(std::path::PathBuf::from("/a/oma.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://x/y"), None);
    }

    #[test]
    fn bad_root_key_files_fail() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Report::default();
        // No env secret is assumed here; only the file path is exercised when it is unset.
        if std::env::var("OMA_ROOT_SECRET").is_ok() {
            return;
        }
        std::fs::write(dir.path().join("root.key"), "not base64!").unwrap();
        root_secret(&mut r, dir.path());
        assert_eq!(r.failures(), 1, "{:?}", r.checks);
    }
}
