//! Choosing a provider per model name.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::error::{ErrorClass, ModelError};
use crate::{EventStream, ModelProvider, ModelRequest};

/// Routes each request by its `model` to the first matching provider. A pattern is an exact
/// name or a prefix ending in `*` (`gpt-*`, `*` for everything); routes are tried in the order
/// they were added.
#[derive(Clone, Default)]
pub struct ModelRouter {
    routes: Vec<(String, Arc<dyn ModelProvider>)>,
}

impl std::fmt::Debug for ModelRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.routes.iter().map(|(p, prov)| (p, prov.name())))
            .finish()
    }
}

impl ModelRouter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn route(mut self, pattern: impl Into<String>, provider: Arc<dyn ModelProvider>) -> Self {
        self.routes.push((pattern.into(), provider));
        self
    }

    /// The provider for `model`, if any route matches.
    pub fn provider_for(&self, model: &str) -> Option<&Arc<dyn ModelProvider>> {
        self.routes
            .iter()
            .find(|(p, _)| matches(p, model))
            .map(|(_, prov)| prov)
    }
}

fn matches(pattern: &str, model: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => model.starts_with(prefix),
        None => pattern == model,
    }
}

impl ModelProvider for ModelRouter {
    fn name(&self) -> &str {
        "router"
    }

    fn stream(&self, req: ModelRequest) -> BoxFuture<'static, Result<EventStream, ModelError>> {
        match self.provider_for(&req.model) {
            Some(p) => p.stream(req),
            None => {
                let err = ModelError::new(
                    ErrorClass::InvalidRequest,
                    format!("no model provider is configured for model {:?}", req.model),
                );
                Box::pin(async move { Err(err) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(&'static str);

    impl ModelProvider for Named {
        fn name(&self) -> &str {
            self.0
        }

        fn stream(
            &self,
            _req: ModelRequest,
        ) -> BoxFuture<'static, Result<EventStream, ModelError>> {
            let name = self.0;
            Box::pin(async move { Err(ModelError::protocol(name)) })
        }
    }

    #[tokio::test]
    async fn routes_by_exact_name_then_prefix() {
        let r = ModelRouter::new()
            .route("gpt-4o", Arc::new(Named("exact")))
            .route("gpt-*", Arc::new(Named("openai")))
            .route("*", Arc::new(Named("anthropic")));
        assert_eq!(r.provider_for("gpt-4o").map(|p| p.name()), Some("exact"));
        assert_eq!(r.provider_for("gpt-5").map(|p| p.name()), Some("openai"));
        assert_eq!(
            r.provider_for("claude-opus-4-5").map(|p| p.name()),
            Some("anthropic")
        );
        let err = match r.stream(ModelRequest::new("gpt-5", vec![], 1)).await {
            Err(e) => e,
            Ok(_) => panic!("expected the stub's error"),
        };
        assert_eq!(err.message(), "openai");

        let empty = ModelRouter::new();
        let err = match empty.stream(ModelRequest::new("x", vec![], 1)).await {
            Err(e) => e,
            Ok(_) => panic!("expected an error"),
        };
        assert_eq!(err.kind(), ErrorClass::InvalidRequest);
        assert!(!err.retryable());
    }
}
