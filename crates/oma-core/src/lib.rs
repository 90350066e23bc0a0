//! Domain rules without I/O: ids, time, the error model, metadata rules, page cursors, the
//! sealing of secrets, and the validation/normalisation of each resource's configuration.
//! Everything here is deterministic and cheap to unit-test.

pub mod agents;
pub mod credentials;
pub mod cursor;
pub mod environments;
pub mod error;
pub mod events;
pub mod ids;
pub mod memory;
pub mod metadata;
pub mod model_routes;
pub mod patch;
pub mod pricing;
pub mod seal;
pub mod sessions;
pub mod skills;
pub mod time;
pub mod work;

pub use error::{Error, ErrorKind, Result};
pub use patch::Patch;
