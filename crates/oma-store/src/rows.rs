//! Reads shared by the resource tables that keep each object's API body beside its columns.

use crate::{Result, Store};

/// A table whose rows hold an API object in `body`, keyed by `(tenant_id, id)`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BodyTable {
    Agents,
    Environments,
    Vaults,
    Files,
    MemoryStores,
}

impl BodyTable {
    /// The point read for this table. Fixed strings: no name ever comes from input.
    fn select(self) -> &'static str {
        match self {
            BodyTable::Agents => "SELECT body FROM agents WHERE tenant_id = $1 AND id = $2",
            BodyTable::Environments => {
                "SELECT body FROM environments WHERE tenant_id = $1 AND id = $2"
            }
            BodyTable::Vaults => "SELECT body FROM vaults WHERE tenant_id = $1 AND id = $2",
            BodyTable::Files => "SELECT body FROM files WHERE tenant_id = $1 AND id = $2",
            BodyTable::MemoryStores => {
                "SELECT body FROM memory_stores WHERE tenant_id = $1 AND id = $2"
            }
        }
    }
}

impl Store {
    /// The stored API object of `id`, if the tenant has one.
    pub(crate) async fn body_of(
        &self,
        table: BodyTable,
        tenant: &str,
        id: &str,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(table.select())
            .bind(tenant)
            .bind(id)
            .fetch_optional(self.reader())
            .await?)
    }
}
