//! The OpenAPI 3.1 document of the API, served at `GET /v1/openapi.json`.
//!
//! Assembled from [`catalog::OPS`] and the JSON Schemas that `schemars` derives from the wire
//! types in `oma-api`, so it cannot drift from what the handlers read and write. Built once.

pub mod catalog;
mod schemas;

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use catalog::{Auth, Body, OPS, Op, Query, Success, Ty};

/// Error statuses every operation may answer, all with the Anthropic error envelope.
pub const ERROR_STATUSES: &[(&str, &str)] = &[
    ("400", "Invalid request"),
    ("401", "Missing or invalid API key"),
    ("403", "The key may not do this"),
    ("404", "No such object or route"),
    ("409", "Conflict with the object's current state"),
    ("412", "A precondition failed"),
    ("413", "Request body too large"),
    ("429", "Rate limited"),
    ("500", "Internal error"),
    ("503", "Temporarily unavailable"),
];

static DOCUMENT: LazyLock<String> = LazyLock::new(|| document().to_string());

/// `GET /v1/openapi.json`.
pub async fn serve() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}

/// The whole document as JSON.
pub fn document() -> Value {
    let mut gens = schemas::Generators::new();
    // Every schema first, so the request-side renames are known before they are used.
    let mut shapes: Vec<(Option<Value>, Option<Value>)> = OPS
        .iter()
        .map(|op| (body_schema(op, &mut gens), success_schema(op, &mut gens)))
        .collect();
    let (schemas, renames) = gens.finish();
    let mut paths = Map::new();
    for (op, (body, ok)) in OPS.iter().zip(shapes.iter_mut()) {
        if let Some(b) = body.as_mut() {
            renames.apply(b);
        }
        let item = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        item[op.method] = operation(op, body.take(), ok.take());
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "oma — Claude Managed Agents API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A self-hosted implementation of the Claude Managed Agents API. \
                Errors use the Anthropic envelope `{\"type\":\"error\",\"error\":{\"type\",\"message\"},\"request_id\"}`. \
                Paths under /v1/oma/ are oma extensions.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/", "description": "this server"}],
        "security": [{"ApiKey": []}, {"Bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": security_schemes(),
            "parameters": header_parameters(),
        },
    })
}

fn body_schema(op: &Op, gens: &mut schemas::Generators) -> Option<Value> {
    match &op.body {
        Body::None => None,
        Body::Json(f) | Body::Multipart(f) => Some(gens.request(*f)),
    }
}

fn success_schema(op: &Op, gens: &mut schemas::Generators) -> Option<Value> {
    match &op.ok {
        Success::Json(f) | Success::JsonOrNull(f) | Success::EventStream(f) => {
            Some(gens.response(*f))
        }
        Success::Binary => None,
    }
}

fn operation(op: &Op, body: Option<Value>, ok: Option<Value>) -> Value {
    let mut params: Vec<Value> = path_params(op.path)
        .map(|name| {
            json!({"name": name, "in": "path", "required": true,
                   "schema": {"type": "string", "minLength": 1}})
        })
        .collect();
    params.extend(op.query.iter().map(query_param));
    if op.path.starts_with("/v1/") && op.auth == Auth::Key {
        params.push(json!({"$ref": "#/components/parameters/AnthropicVersion"}));
        params.push(json!({"$ref": "#/components/parameters/AnthropicBeta"}));
    }
    let mut o = json!({
        "operationId": op.id,
        "summary": op.summary,
        "tags": [tag_of(op.path)],
        "parameters": params,
        "responses": responses(op, ok),
    });
    if op.auth == Auth::None {
        o["security"] = json!([]);
    }
    if let Some(schema) = body {
        let (media, required) = match op.body {
            Body::Multipart(_) => ("multipart/form-data", true),
            // Action POSTs accept an empty body (`Content-Length: 0`), so no body is required.
            _ => ("application/json", false),
        };
        o["requestBody"] = json!({"required": required, "content": {media: {"schema": schema}}});
    }
    o
}

fn responses(op: &Op, schema: Option<Value>) -> Value {
    let schema = schema.unwrap_or(Value::Bool(true));
    let ok = match &op.ok {
        Success::Json(_) => {
            json!({"description": "OK", "content": {"application/json": {"schema": schema}}})
        }
        Success::JsonOrNull(_) => {
            json!({"description": "The item, or null when the queue is empty",
                   "content": {"application/json": {"schema": {"anyOf": [schema, {"type": "null"}]}}}})
        }
        Success::EventStream(_) => {
            json!({"description": "Server-sent events; each `data:` is one JSON event of \
                                   `x-event-schema`, and `event: ping` keeps the connection alive",
                   "content": {"text/event-stream": {"schema": {"type": "string"},
                                                     "x-event-schema": schema}}})
        }
        // Files come back with the media type they were uploaded with, skills as a zip.
        Success::Binary => json!({"description": "The raw bytes, with their own media type",
            "content": {"*/*": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}}),
    };
    let mut r = Map::new();
    r.insert("200".into(), ok);
    for (code, why) in ERROR_STATUSES {
        r.insert(
            (*code).into(),
            json!({"description": why, "content": {"application/json":
                {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}}),
        );
    }
    Value::Object(r)
}

fn query_param(p: &Query) -> Value {
    let schema = match &p.ty {
        Ty::Str => json!({"type": "string"}),
        Ty::Int { min, max } => {
            let mut s = json!({"type": "integer", "format": "int64"});
            if let Some(m) = min {
                s["minimum"] = json!(m);
            }
            if let Some(m) = max {
                s["maximum"] = json!(m);
            }
            s
        }
        Ty::Bool => json!({"type": "boolean"}),
        Ty::Time => json!({"type": "string", "format": "date-time"}),
        Ty::Enum(v) => json!({"type": "string", "enum": v}),
        Ty::Array(v) => json!({"type": "array", "items": {"type": "string", "enum": v}}),
        Ty::StrArray => json!({"type": "array", "items": {"type": "string"}}),
    };
    let array = matches!(p.ty, Ty::Array(_) | Ty::StrArray);
    let mut v = json!({"name": p.name, "in": "query", "required": false, "schema": schema});
    if array {
        // The SDK sends `name[]=a&name[]=b`; a repeated plain `name=` is accepted too.
        v["style"] = json!("form");
        v["explode"] = json!(true);
    }
    v
}

/// The `{name}` segments of a path template.
pub fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

fn tag_of(path: &str) -> &str {
    let mut segs = path.trim_start_matches('/').split('/');
    match (segs.next(), segs.next(), segs.next()) {
        (Some("v1"), Some("oma"), Some(t)) => t,
        (Some("v1"), Some(t), _) => t,
        (Some(t), _, _) => t,
        _ => "other",
    }
}

fn security_schemes() -> Value {
    json!({
        "ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key",
                   "description": "A tenant API key (the admin API takes the admin key; the work \
                                   queue's worker endpoints take an environment key)."},
        "Bearer": {"type": "http", "scheme": "bearer",
                   "description": "The same keys as `Authorization: Bearer <key>` (what the \
                                   official SDKs send)."},
    })
}

fn header_parameters() -> Value {
    json!({
        "AnthropicVersion": {"name": "anthropic-version", "in": "header", "required": false,
            "description": "API version the client speaks; the SDK sends `2026-10-21`.",
            "schema": {"type": "string", "examples": ["2026-10-21"]}},
        "AnthropicBeta": {"name": "anthropic-beta", "in": "header", "required": false,
            "description": "Comma-separated beta names, e.g. `managed-agents-2026-04-01` \
                            (memory stores: `agent-memory-2026-07-22`; none for files and skills).",
            "schema": {"type": "string", "examples": ["managed-agents-2026-04-01"]}},
    })
}
