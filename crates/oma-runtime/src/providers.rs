//! Which model provider serves a model id.
//!
//! Anthropic is the default and is configured like the official SDK (`ANTHROPIC_API_KEY`,
//! `ANTHROPIC_BASE_URL`). An OpenAI-compatible endpoint serves the model ids routed to it.

use std::collections::HashMap;
use std::sync::Arc;

use oma_model::ModelProvider;

#[derive(Clone, Default)]
pub struct Providers {
    default: Option<Arc<dyn ModelProvider>>,
    by_model: HashMap<String, Arc<dyn ModelProvider>>,
}

impl Providers {
    pub fn new(default: Option<Arc<dyn ModelProvider>>) -> Self {
        Self {
            default,
            by_model: HashMap::new(),
        }
    }

    /// Routes `model` to `provider` instead of the default.
    pub fn route(mut self, model: impl Into<String>, provider: Arc<dyn ModelProvider>) -> Self {
        self.by_model.insert(model.into(), provider);
        self
    }

    pub fn for_model(&self, model: &str) -> Option<Arc<dyn ModelProvider>> {
        self.by_model
            .get(model)
            .cloned()
            .or_else(|| self.default.clone())
    }
}
