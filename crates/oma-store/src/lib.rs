//! Storage for oma: one SQL store over SQLite (the embedded default) or PostgreSQL.
//!
//! Both backends go through sqlx's `Any` driver with the same SQL text (`$N` placeholders work
//! on both), so behaviour cannot drift between them; each backend has its own migrations
//! folder because DDL differs. Every table carries `tenant_id` and every method takes the
//! tenant first: there is no way to ask for a row without saying whose it is.
//!
//! Resource rows keep the API object as JSON (`body`) next to the columns that queries filter
//! and sort on, so a read returns the stored bytes without re-serialising.

mod batch_insert;
mod db;
mod group_commit;
pub mod migrate;
pub mod page;
pub mod router;
mod rows;

pub mod agents;
pub mod backup;
pub mod environments;
pub mod events;
pub mod files;
pub mod integrations;
pub mod leases;
pub mod memory;
pub mod model_routes;
pub mod notify;
pub mod ops_events;
pub mod repositories;
pub mod retention;
pub mod runtime;
pub mod sessions;
pub mod shards;
pub mod skills;
pub mod stats;
pub mod tenant_copy;
pub mod tenant_move;
pub mod tenants;
pub mod vaults;
pub mod work;

pub use db::{Backend, Store, redact_url as db_url_redacted};
pub use page::{ListQuery, Listed};
pub use router::{ShardStore, TenantRouter};

/// Errors of the storage layer. Domain errors (not found, conflicts, validation) pass through
/// unchanged; database errors are internal failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Domain(#[from] oma_core::Error),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Config(String),
    /// A step's fence is stale: another node owns the session now, or this node's lease
    /// expired. The host must stop without writing anything more.
    #[error("the session's lease is no longer this host's")]
    Fenced,
    /// The transaction a step was part of did not commit (see `group_commit`): the step did
    /// not happen.
    #[error("the step's transaction did not commit: {0}")]
    Aborted(String),
    /// The tenant's rows on this shard are fenced: the tenant is being moved to another shard
    /// or lives there already (see `shards`). Nothing was written; the caller re-routes and
    /// tries again once the move has switched.
    #[error("the tenant is being moved to another shard; try again in a moment")]
    TenantFenced,
}

/// The message the fence triggers abort a write with (both backends; migration 0018).
const FENCED_MARK: &str = "oma_tenant_fenced";

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.message().contains(FENCED_MARK) => {
                StoreError::TenantFenced
            }
            _ => StoreError::Database(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Whether this is a unique-constraint violation (both backends report it through sqlx).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => e.is_unique_violation(),
            _ => false,
        }
    }
}

/// Parses a stored JSON column.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Serialises a value for a JSON column.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}
