//! The wire contract of the Managed Agents API as Rust types: request params, response
//! objects, events, the error envelope and page envelopes. Serde only; no behaviour.
//!
//! Field names, `type` literals and nullability follow `spec/managed-agents-api.md`, which was
//! derived from the official SDK. Response types emit every documented key (using `null` for
//! "not set") so strict clients validate them.

pub mod agents;
pub mod environments;
pub mod error;
pub mod events;
pub mod files;
pub mod json;
pub mod memory;
pub mod page;
pub mod params;
pub mod sessions;
pub mod skills;
pub mod vaults;
pub mod work;

pub use error::{ErrorBody, ErrorEnvelope};
pub use page::{BidiPage, Page};
