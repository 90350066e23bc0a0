//! Model providers for oma's agent loop.
//!
//! A [`ModelProvider`] takes a provider-neutral [`ModelRequest`] and streams the answer as
//! [`StreamEvent`]s; an [`Accumulator`] folds them into the assistant [`Message`]. Two wires are
//! spoken: Anthropic Messages ([`AnthropicProvider`]) and OpenAI-compatible chat completions
//! ([`OpenAiProvider`]); [`ModelRouter`] picks one per model name. Failures are
//! [`ModelError`]s classified for retry ([`ErrorClass`], [`retry::Backoff`]).
//!
//! Cancellation is by drop: dropping the event stream (or the future that opens it) closes the
//! HTTP connection at once, which is how an interrupt stops a model response.

pub mod anthropic;
pub mod error;
pub mod event;
mod http;
pub mod openai;
pub mod retry;
pub mod router;
pub mod types;

use futures::future::BoxFuture;
use futures::stream::BoxStream;

pub use anthropic::{AnthropicConfig, AnthropicProvider};
pub use error::{ErrorClass, ModelError};
pub use event::{Accumulator, BlockKind, Completion, StreamEvent};
pub use http::Timeouts;
pub use openai::{MaxTokensParam, OpenAiConfig, OpenAiProvider};
pub use retry::Backoff;
pub use router::ModelRouter;
pub use types::{Block, Message, ModelRequest, Role, StopReason, SystemBlock, ToolSpec, Usage};

/// The events of one model response. It ends after `Finished`, or with one `Err`.
pub type EventStream = BoxStream<'static, Result<StreamEvent, ModelError>>;

/// A model API.
pub trait ModelProvider: Send + Sync {
    /// A short name for logs and errors (`anthropic`, `openai`).
    fn name(&self) -> &str;

    /// Sends `req`. The future resolves once the response headers arrived, so HTTP errors
    /// (429, 401, …) come back as `Err` here, before any event. The stream then yields the
    /// response; a stream that cannot complete ends with an `Err` (retryable when the
    /// connection dropped). Dropping either cancels the request.
    fn stream(&self, req: ModelRequest) -> BoxFuture<'static, Result<EventStream, ModelError>>;
}

impl<P: ModelProvider + ?Sized> ModelProvider for std::sync::Arc<P> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn stream(&self, req: ModelRequest) -> BoxFuture<'static, Result<EventStream, ModelError>> {
        (**self).stream(req)
    }
}

/// Runs a request to completion: opens the stream, folds every event, returns the message.
/// For callers that do not need the live deltas (titles, summaries, tests).
pub async fn complete(
    provider: &dyn ModelProvider,
    req: ModelRequest,
) -> Result<Completion, ModelError> {
    use futures::StreamExt;
    let mut stream = provider.stream(req).await?;
    let mut acc = Accumulator::new();
    while let Some(ev) = stream.next().await {
        acc.push(&ev?)?;
    }
    acc.finish()
}
