//! Page envelopes of the cursor-paginated lists (spec §2.6).

use serde::Serialize;

/// `{"data": [...], "next_page": "page_…" | null}`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_page: Option<String>,
}

/// Sessions list: `{"data", "next_page", "prev_page"}`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BidiPage<T> {
    pub data: Vec<T>,
    pub next_page: Option<String>,
    pub prev_page: Option<String>,
}
