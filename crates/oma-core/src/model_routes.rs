//! Domain rules: per-tenant model routes (an oma extension, not part of Anthropic's API).
//!
//! A model route says which provider serves a model id that agents use: the provider's wire
//! format (`openai` chat completions or `anthropic` messages), its base URL, the model name
//! sent upstream, and optionally an API key. As with vault credentials, a request is split in
//! two here: the public part ([`ModelRouteSpec`], stored as JSON and returned by the API) and
//! the key ([`ApiKey`]), which the store keeps only sealed under [`api_key_aad`] and which no
//! response can carry (the response type has no field for it, only `has_api_key`).
//!
//! Update conventions: an absent field keeps the stored value; a value replaces it; `null`
//! clears the nullable fields (`api_key` removes the key, `display_name` clears the name),
//! resets `upstream_model` to the route's `model`, and is refused for required fields.
//! `metadata` is a patch (a string upserts, `null` deletes a key), as for every resource.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::metadata::{self, Metadata};
use crate::{Error, Patch};
use oma_api::json::kind_of;

/// Id prefix of model routes (`mroute_…`).
pub const ID_PREFIX: &str = "mroute";
/// `model` and `upstream_model`: the same bound agents put on model ids.
pub const MAX_MODEL_CHARS: usize = 256;
pub const MAX_BASE_URL_CHARS: usize = 2048;
pub const MAX_DISPLAY_NAME_CHARS: usize = 255;
/// Far above any real provider key; keeps a mistaken paste of a file out of the database.
pub const MAX_API_KEY_BYTES: usize = 8 * 1024;

/// The wire format a route speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Provider {
    /// OpenAI-compatible chat completions (`POST {base_url}/chat/completions`).
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic messages (`POST {base_url}/v1/messages`).
    #[serde(rename = "anthropic")]
    Anthropic,
}

impl Provider {
    pub const ALL: [Provider; 2] = [Provider::OpenAi, Provider::Anthropic];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// The response object (`"type": "model_route"`). Every key is always emitted. There is no
/// field that could hold the key: only whether one is set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelRoute {
    pub id: String,
    /// Always `"model_route"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub model: String,
    pub provider: Provider,
    pub base_url: String,
    pub upstream_model: String,
    pub display_name: Option<String>,
    pub metadata: Metadata,
    pub has_api_key: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// `DELETE /v1/oma/model_routes/{id}` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModelRouteDeleted {
    pub id: String,
    /// Always `"model_route_deleted"`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl ModelRouteDeleted {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            kind: "model_route_deleted".to_string(),
        }
    }
}

/// The stored, public part of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRouteSpec {
    pub model: String,
    pub provider: Provider,
    /// Normalised: scheme and host lowercased, default port and trailing slashes removed.
    pub base_url: String,
    pub upstream_model: String,
    pub display_name: Option<String>,
    pub metadata: Metadata,
}

/// A provider API key in memory. Stored only sealed; `Debug` never prints it, so a struct
/// holding one is safe to log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl ApiKey {
    /// Plaintext for sealing. The bytes only ever go to `Sealer::seal`.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// Parses opened plaintext.
    pub fn from_plaintext(bytes: Vec<u8>) -> Result<Self, Error> {
        String::from_utf8(bytes)
            .map(ApiKey)
            .map_err(|_| Error::internal("a stored model route key is not valid"))
    }
}

/// The associated data that binds a route's sealed key to its tenant and id, so a sealed
/// value copied onto another row (or tenant) does not open.
pub fn api_key_aad(tenant_id: &str, route_id: &str) -> String {
    format!("{tenant_id}/{route_id}")
}

/// `POST /v1/oma/model_routes` body. Fields are read as JSON values so that every mistake gets
/// a message naming the field; unknown fields are refused because a misspelt `api_key` would
/// otherwise silently create a route without its key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateModelRouteParams {
    #[serde(default)]
    pub model: Option<Value>,
    #[serde(default)]
    pub provider: Option<Value>,
    #[serde(default)]
    pub base_url: Option<Value>,
    #[serde(default)]
    pub api_key: Option<Value>,
    #[serde(default)]
    pub upstream_model: Option<Value>,
    #[serde(default)]
    pub display_name: Option<Value>,
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// `POST /v1/oma/model_routes/{id}` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateModelRouteParams {
    #[serde(default)]
    pub model: Patch<Value>,
    #[serde(default)]
    pub provider: Patch<Value>,
    #[serde(default)]
    pub base_url: Patch<Value>,
    #[serde(default)]
    pub api_key: Patch<Value>,
    #[serde(default)]
    pub upstream_model: Patch<Value>,
    #[serde(default)]
    pub display_name: Patch<Value>,
    #[serde(default)]
    pub metadata: Patch<Value>,
}

/// What an update does to the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    Keep,
    Remove,
    Replace(ApiKey),
}

pub fn not_found(id: &str) -> Error {
    Error::missing("model route", id)
}

/// 409 for a second route for one model id in a tenant.
pub fn duplicate_model(model: &str) -> Error {
    Error::conflict(format!(
        "a model route for model `{model}` already exists; update or delete it instead"
    ))
    .with_code("model_route_exists")
}

impl ModelRouteSpec {
    /// Validates a create request.
    pub fn create(p: CreateModelRouteParams) -> Result<(Self, Option<ApiKey>), Error> {
        let model = model_name(&required(p.model, "model")?, "model")?;
        let provider = provider(&required(p.provider, "provider")?)?;
        let base_url = base_url(&required(p.base_url, "base_url")?)?;
        let upstream_model = match p.upstream_model {
            None | Some(Value::Null) => model.clone(),
            Some(v) => model_name(&v, "upstream_model")?,
        };
        let display_name = match p.display_name {
            None | Some(Value::Null) => None,
            Some(v) => display_name(&v)?,
        };
        let key = match p.api_key {
            None | Some(Value::Null) => None,
            Some(v) => Some(api_key(&v)?),
        };
        let spec = ModelRouteSpec {
            model,
            provider,
            base_url,
            upstream_model,
            display_name,
            metadata: metadata::from_create(p.metadata.as_ref())?,
        };
        Ok((spec, key))
    }

    /// Applies an update, returning the next spec and what happens to the key.
    pub fn update(&self, p: UpdateModelRouteParams) -> Result<(Self, KeyChange), Error> {
        let mut next = self.clone();
        match p.model {
            Patch::Absent => {}
            Patch::Null => return Err(Error::invalid("model: cannot be cleared")),
            Patch::Value(v) => next.model = model_name(&v, "model")?,
        }
        match p.provider {
            Patch::Absent => {}
            Patch::Null => return Err(Error::invalid("provider: cannot be cleared")),
            Patch::Value(v) => next.provider = provider(&v)?,
        }
        match p.base_url {
            Patch::Absent => {}
            Patch::Null => return Err(Error::invalid("base_url: cannot be cleared")),
            Patch::Value(v) => next.base_url = base_url(&v)?,
        }
        // Resolved after `model`, so `{"model": "b", "upstream_model": null}` follows the new id.
        match p.upstream_model {
            Patch::Absent => {}
            Patch::Null => next.upstream_model = next.model.clone(),
            Patch::Value(v) => next.upstream_model = model_name(&v, "upstream_model")?,
        }
        match p.display_name {
            Patch::Absent => {}
            Patch::Null => next.display_name = None,
            Patch::Value(v) => next.display_name = display_name(&v)?,
        }
        match p.metadata {
            Patch::Absent | Patch::Null => {}
            Patch::Value(Value::Object(patch)) => {
                metadata::apply_patch(&mut next.metadata, &patch, false)?
            }
            Patch::Value(_) => {
                return Err(
                    Error::invalid("metadata: must be an object of string or null values")
                        .with_code("invalid_metadata"),
                );
            }
        }
        let key = match p.api_key {
            Patch::Absent => KeyChange::Keep,
            Patch::Null => KeyChange::Remove,
            Patch::Value(v) => KeyChange::Replace(api_key(&v)?),
        };
        Ok((next, key))
    }

    pub fn from_object(r: &ModelRoute) -> Self {
        ModelRouteSpec {
            model: r.model.clone(),
            provider: r.provider,
            base_url: r.base_url.clone(),
            upstream_model: r.upstream_model.clone(),
            display_name: r.display_name.clone(),
            metadata: r.metadata.clone(),
        }
    }

    pub fn to_object(
        &self,
        id: &str,
        has_api_key: bool,
        created_at: i64,
        updated_at: i64,
    ) -> ModelRoute {
        ModelRoute {
            id: id.to_string(),
            kind: "model_route".to_string(),
            model: self.model.clone(),
            provider: self.provider,
            base_url: self.base_url.clone(),
            upstream_model: self.upstream_model.clone(),
            display_name: self.display_name.clone(),
            metadata: self.metadata.clone(),
            has_api_key,
            created_at: crate::time::format_micros(created_at),
            updated_at: crate::time::format_micros(updated_at),
        }
    }
}

fn required(v: Option<Value>, field: &str) -> Result<Value, Error> {
    match v {
        None | Some(Value::Null) => Err(Error::invalid(format!("{field}: is required"))),
        Some(v) => Ok(v),
    }
}

/// `model` and `upstream_model`: 1 to 256 characters, no whitespace (the rule agents apply to
/// the model ids that are routed here).
fn model_name(v: &Value, field: &str) -> Result<String, Error> {
    let s = v
        .as_str()
        .ok_or_else(|| Error::invalid(format!("{field}: must be a string, got {}", kind_of(v))))?;
    let n = s.chars().count();
    if n == 0 || n > MAX_MODEL_CHARS {
        return Err(Error::invalid(format!(
            "{field}: must be a model id of 1 to {MAX_MODEL_CHARS} characters"
        )));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(format!(
            "{field}: `{s}` is not a model id: it contains whitespace or control characters"
        )));
    }
    Ok(s.to_string())
}

fn provider(v: &Value) -> Result<Provider, Error> {
    let expected = "expected `openai` (OpenAI-compatible chat completions) or `anthropic`";
    match v {
        Value::String(s) => Provider::parse(s)
            .ok_or_else(|| Error::invalid(format!("provider: unknown provider `{s}`; {expected}"))),
        other => Err(Error::invalid(format!(
            "provider: must be a string, got {}; {expected}",
            kind_of(other)
        ))),
    }
}

fn base_url(v: &Value) -> Result<String, Error> {
    let s = v
        .as_str()
        .ok_or_else(|| Error::invalid(format!("base_url: must be a string, got {}", kind_of(v))))?;
    normalize_base_url(s).map_err(|why| Error::invalid(format!("base_url: `{s}` {why}")))
}

/// Checks and normalises a provider base URL. Providers append their endpoint path to it
/// (`/chat/completions`, `/v1/messages`), so a query or fragment could not survive the join
/// and is refused rather than silently mangled; user info is refused because the key belongs
/// in `api_key`, where it is sealed. Scheme and host are lowercased and the default port and
/// trailing slashes dropped, so equal URLs read equal.
pub fn normalize_base_url(url: &str) -> Result<String, &'static str> {
    if url.len() > MAX_BASE_URL_CHARS {
        return Err("is too long (at most 2048 characters)");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("must be an absolute http(s) URL such as https://api.openai.com/v1")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => return Err("must use the http or https scheme"),
    };
    if rest.contains('#') {
        return Err("must not contain a fragment (`#…`)");
    }
    if rest.contains('?') {
        return Err("must not contain a query string (the provider's endpoint path is appended)");
    }
    let split = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.contains('@') {
        return Err("must not contain user credentials (send the key as `api_key`)");
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (h, after) = bracketed
            .split_once(']')
            .ok_or("has an unterminated IPv6 address")?;
        if h.is_empty()
            || !h
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err("has an invalid IPv6 address");
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("has an invalid port")?),
        };
        (format!("[{}]", h.to_ascii_lowercase()), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
            None => (authority.to_ascii_lowercase(), None),
        }
    };
    if host.is_empty() {
        return Err("must include a host");
    }
    if !host.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err("has an invalid host name");
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => {
                (p != default_port).then(|| n.to_string())
            }
            _ => return Err("has an invalid port"),
        },
    };
    let mut out = format!("{scheme}://{host}");
    if let Some(p) = port {
        out.push(':');
        out.push_str(&p);
    }
    out.push_str(path.trim_end_matches('/'));
    Ok(out)
}

fn display_name(v: &Value) -> Result<Option<String>, Error> {
    match v.as_str() {
        Some("") => Ok(None),
        Some(s) if s.chars().count() > MAX_DISPLAY_NAME_CHARS => Err(Error::invalid(format!(
            "display_name: must be at most {MAX_DISPLAY_NAME_CHARS} characters"
        ))),
        Some(s) => Ok(Some(s.to_string())),
        None => Err(Error::invalid(format!(
            "display_name: must be a string or null, got {}",
            kind_of(v)
        ))),
    }
}

/// The key goes into an HTTP header (`Authorization: Bearer …` or `x-api-key`), so it must be
/// visible ASCII: checking here means a route that saves is a route the runtime can use.
/// Messages never echo the value.
fn api_key(v: &Value) -> Result<ApiKey, Error> {
    let s = v.as_str().ok_or_else(|| {
        Error::invalid(format!(
            "api_key: must be a string (or null for a server without authentication), got {}",
            kind_of(v)
        ))
    })?;
    if s.is_empty() {
        return Err(Error::invalid(
            "api_key: must not be empty; omit it (or send null) for a server without authentication",
        ));
    }
    if s.len() > MAX_API_KEY_BYTES {
        return Err(Error::invalid(format!(
            "api_key: must be at most {MAX_API_KEY_BYTES} bytes"
        )));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            "api_key: must be printable ASCII without spaces (it is sent in an HTTP header)",
        ));
    }
    Ok(ApiKey(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create(v: Value) -> Result<(ModelRouteSpec, Option<ApiKey>), Error> {
        ModelRouteSpec::create(serde_json::from_value(v).unwrap())
    }

    fn update(spec: &ModelRouteSpec, v: Value) -> Result<(ModelRouteSpec, KeyChange), Error> {
        spec.update(serde_json::from_value(v).unwrap())
    }

    fn base() -> (ModelRouteSpec, Option<ApiKey>) {
        create(json!({"model": "gpt-4.1", "provider": "openai",
            "base_url": "https://API.OpenAI.com:443/v1/", "api_key": "sk-test-123"}))
        .unwrap()
    }

    #[test]
    fn create_defaults_and_normalises() {
        let (spec, key) = base();
        assert_eq!(spec.model, "gpt-4.1");
        assert_eq!(spec.provider, Provider::OpenAi);
        assert_eq!(spec.base_url, "https://api.openai.com/v1");
        assert_eq!(spec.upstream_model, "gpt-4.1", "upstream defaults to model");
        assert_eq!(spec.display_name, None);
        assert!(spec.metadata.is_empty());
        assert_eq!(key.unwrap().expose(), "sk-test-123");

        let (spec, key) = create(json!({"model": "my-llama", "provider": "anthropic",
            "base_url": "http://127.0.0.1:8080", "upstream_model": "llama3:70b",
            "display_name": "Local", "metadata": {"team": "ml"}}))
        .unwrap();
        assert_eq!(spec.provider, Provider::Anthropic);
        assert_eq!(spec.base_url, "http://127.0.0.1:8080");
        assert_eq!(spec.upstream_model, "llama3:70b");
        assert_eq!(spec.display_name.as_deref(), Some("Local"));
        assert_eq!(spec.metadata.get("team").map(String::as_str), Some("ml"));
        assert!(key.is_none(), "a key is optional for local servers");
    }

    #[test]
    fn rejects_bad_create_input() {
        let ok = json!({"model": "m", "provider": "openai", "base_url": "https://h.example/v1"});
        let with = |k: &str, v: Value| {
            let mut o = ok.clone();
            o[k] = v;
            o
        };
        let without = |k: &str| {
            let mut o = ok.clone();
            o.as_object_mut().unwrap().remove(k);
            o
        };
        let cases = [
            without("model"),
            without("provider"),
            without("base_url"),
            with("model", json!("")),
            with("model", json!("x".repeat(257))),
            with("model", json!("has space")),
            with("model", json!(7)),
            with("provider", json!("azure")),
            with("provider", json!("OpenAI")),
            with("provider", json!(null)),
            with("base_url", json!("ftp://h.example")),
            with("base_url", json!("h.example/v1")),
            with("base_url", json!("https://user:pw@h.example/v1")),
            with("base_url", json!("https://h.example/v1#frag")),
            with("base_url", json!("https://h.example/v1?x=1")),
            with("base_url", json!("https://h.example:0/v1")),
            with("base_url", json!("https://h.example:99999")),
            with("base_url", json!("https:///v1")),
            with("base_url", json!("https://h ex/v1")),
            with("base_url", json!("https://[::1/v1")),
            with("upstream_model", json!("")),
            with("upstream_model", json!("a\nb")),
            with("api_key", json!("")),
            with("api_key", json!("sk with space")),
            with("api_key", json!("sk\r\nX-Evil: 1")),
            with("api_key", json!("x".repeat(MAX_API_KEY_BYTES + 1))),
            with("api_key", json!(123)),
            with("display_name", json!("x".repeat(256))),
            with("display_name", json!(1)),
            with("metadata", json!({"k": 1})),
            with("metadata", json!([1])),
        ];
        for case in cases {
            let err = create(case.clone()).expect_err(&case.to_string());
            assert_eq!(err.kind, crate::ErrorKind::InvalidRequest, "{case}");
        }
        // A misspelt field is refused instead of silently ignored.
        assert!(
            serde_json::from_value::<CreateModelRouteParams>(with("apikey", json!("k"))).is_err()
        );
        assert!(serde_json::from_value::<UpdateModelRouteParams>(json!({"key": "k"})).is_err());
    }

    #[test]
    fn key_values_never_appear_in_errors_or_debug() {
        let err = create(
            json!({"model": "m", "provider": "openai", "base_url": "https://h",
            "api_key": "needle secret"}),
        )
        .unwrap_err();
        assert!(!err.message.contains("needle"));
        let (spec, key) = base();
        let dbg = format!("{spec:?} {key:?}");
        assert!(!dbg.contains("sk-test-123"), "{dbg}");
    }

    #[test]
    fn base_urls_normalise() {
        for (input, want) in [
            ("https://api.openai.com/v1", "https://api.openai.com/v1"),
            ("HTTPS://API.openai.com/v1//", "https://api.openai.com/v1"),
            ("http://localhost:80", "http://localhost"),
            ("http://localhost:11434/v1", "http://localhost:11434/v1"),
            ("http://[::1]:8000/", "http://[::1]:8000"),
            ("https://gw.example/Team/V1", "https://gw.example/Team/V1"),
        ] {
            assert_eq!(normalize_base_url(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn update_is_three_state() {
        let (spec, _) = base();
        // Absent keeps everything, including the key.
        let (next, key) = update(&spec, json!({})).unwrap();
        assert_eq!(next, spec);
        assert_eq!(key, KeyChange::Keep);
        // null removes the key; a value replaces it.
        assert_eq!(
            update(&spec, json!({"api_key": null})).unwrap().1,
            KeyChange::Remove
        );
        match update(&spec, json!({"api_key": "sk-new"})).unwrap().1 {
            KeyChange::Replace(k) => assert_eq!(k.expose(), "sk-new"),
            other => panic!("{other:?}"),
        }
        // Required fields cannot be cleared.
        for f in ["model", "provider", "base_url"] {
            assert!(update(&spec, json!({f: null})).is_err(), "{f}");
        }
        // Values replace; upstream_model null follows the (new) model.
        let (next, _) = update(
            &spec,
            json!({"model": "gpt-5", "provider": "anthropic", "base_url": "http://x:9",
                "display_name": "D", "metadata": {"a": "1"}}),
        )
        .unwrap();
        assert_eq!(next.model, "gpt-5");
        assert_eq!(
            next.upstream_model, "gpt-4.1",
            "upstream stays unless asked"
        );
        assert_eq!(next.provider, Provider::Anthropic);
        assert_eq!(next.base_url, "http://x:9");
        assert_eq!(next.display_name.as_deref(), Some("D"));
        let (next, _) = update(
            &next,
            json!({"upstream_model": null, "display_name": null, "metadata": {"a": null}}),
        )
        .unwrap();
        assert_eq!(next.upstream_model, "gpt-5");
        assert_eq!(next.display_name, None);
        assert!(next.metadata.is_empty());
        assert!(update(&spec, json!({"api_key": ""})).is_err());
        assert!(update(&spec, json!({"metadata": "x"})).is_err());
    }

    #[test]
    fn objects_round_trip_without_the_key() {
        let (spec, _) = base();
        let obj = spec.to_object("mroute_1", true, 1_000_000, 2_000_000);
        let v = serde_json::to_value(&obj).unwrap();
        assert_eq!(v["type"], "model_route");
        assert_eq!(v["provider"], "openai");
        assert_eq!(v["has_api_key"], true);
        assert_eq!(v["display_name"], Value::Null);
        assert!(v.get("api_key").is_none());
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 11, "{keys:?}");
        assert_eq!(ModelRouteSpec::from_object(&obj), spec);
        let del = serde_json::to_value(ModelRouteDeleted::new("mroute_1")).unwrap();
        assert_eq!(
            del,
            json!({"id": "mroute_1", "type": "model_route_deleted"})
        );
    }
}
