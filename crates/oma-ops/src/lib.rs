//! Operations: the durable operational events (the analytics dataset) and the live log tail.
//!
//! - [`OpsRecorder`]: typed events ([`event`]) recorded from where things happen. `record`
//!   never blocks and never fails its caller: events cross a bounded channel to one writer task
//!   that stores them in batches; when the channel is full they are counted as dropped and the
//!   count is logged.
//! - [`tail::LogTail`]: a tracing layer that fans every log record out, as a JSON line, to
//!   live subscribers (`oma tail`), without ever making logging wait.

pub mod event;
pub mod query;
mod recorder;
pub mod tail;

pub use event::OpsEvent;
pub use recorder::{OpsConfig, OpsRecorder};
