//! Which model provider serves a model id.
//!
//! A tenant's own model routes (`/v1/oma/model_routes`: provider, base URL, sealed key, upstream
//! model name) win; otherwise the server-wide providers apply: Anthropic by default, configured
//! like the official SDK (`ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`), and an OpenAI-compatible
//! endpoint for the model ids routed to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use oma_core::seal::Sealer;
use oma_model::{AnthropicConfig, AnthropicProvider, ModelProvider, OpenAiConfig, OpenAiProvider};
use oma_store::Store;
use oma_store::model_routes::ResolvedModelRoute;

/// A provider and the model name to send it.
#[derive(Clone)]
pub struct Selected {
    pub provider: Arc<dyn ModelProvider>,
    pub upstream_model: String,
}

/// Providers built from tenant routes, kept until the route changes (`updated_at`).
type RouteCache = HashMap<(String, String), (String, i64, Arc<dyn ModelProvider>)>;

#[derive(Clone, Default)]
pub struct Providers {
    default: Option<Arc<dyn ModelProvider>>,
    by_model: HashMap<String, Arc<dyn ModelProvider>>,
    /// Opens the keys of tenant routes; without it tenant routes are not consulted.
    sealer: Option<Arc<Sealer>>,
    cache: Arc<Mutex<RouteCache>>,
}

impl Providers {
    pub fn new(default: Option<Arc<dyn ModelProvider>>) -> Self {
        Self {
            default,
            ..Self::default()
        }
    }

    /// Routes `model` to `provider` instead of the default.
    pub fn route(mut self, model: impl Into<String>, provider: Arc<dyn ModelProvider>) -> Self {
        self.by_model.insert(model.into(), provider);
        self
    }

    /// Consults each tenant's model routes, opening their keys with `sealer`.
    pub fn with_tenant_routes(mut self, sealer: Arc<Sealer>) -> Self {
        self.sealer = Some(sealer);
        self
    }

    /// The root-secret sealer, when tenant routes are on (the egress proxy opens vault
    /// credentials with it).
    pub(crate) fn sealer_arc(&self) -> Option<Arc<Sealer>> {
        self.sealer.clone()
    }

    /// The server-wide provider of `model`.
    pub fn for_model(&self, model: &str) -> Option<Arc<dyn ModelProvider>> {
        self.by_model
            .get(model)
            .cloned()
            .or_else(|| self.default.clone())
    }

    /// The provider for `model` in `tenant`'s sessions. `Err` explains a route that exists but
    /// cannot be used (its key does not open, its URL is unusable).
    pub async fn select(
        &self,
        store: &Store,
        tenant: &str,
        model: &str,
    ) -> Result<Option<Selected>, String> {
        if let Some(sealer) = &self.sealer {
            let route = store
                .resolve_model_route(tenant, model, sealer)
                .await
                .map_err(|e| format!("the model route for `{model}` could not be read: {e}"))?;
            if let Some(route) = route {
                let provider = self.build_for_route(tenant, model, &route)?;
                return Ok(Some(Selected {
                    provider,
                    upstream_model: route.upstream_model,
                }));
            }
        }
        Ok(self.for_model(model).map(|provider| Selected {
            provider,
            upstream_model: model.to_string(),
        }))
    }

    fn build_for_route(
        &self,
        tenant: &str,
        model: &str,
        route: &ResolvedModelRoute,
    ) -> Result<Arc<dyn ModelProvider>, String> {
        let key = (tenant.to_string(), model.to_string());
        if let Ok(cache) = self.cache.lock()
            && let Some((id, updated_at, provider)) = cache.get(&key)
            && *id == route.id
            && *updated_at == route.updated_at
        {
            return Ok(provider.clone());
        }
        let api_key = route.api_key.clone().unwrap_or_default();
        let provider: Arc<dyn ModelProvider> = match route.provider.as_str() {
            "openai" => Arc::new(
                OpenAiProvider::new(OpenAiConfig::new(route.base_url.clone(), api_key))
                    .map_err(|e| format!("model route `{}`: {e}", route.id))?,
            ),
            "anthropic" => Arc::new(
                AnthropicProvider::new(AnthropicConfig::new(route.base_url.clone(), api_key))
                    .map_err(|e| format!("model route `{}`: {e}", route.id))?,
            ),
            other => {
                return Err(format!(
                    "model route `{}` names an unknown provider `{other}`",
                    route.id
                ));
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, (route.id.clone(), route.updated_at, provider.clone()));
        }
        Ok(provider)
    }
}
