//! Errors become the Anthropic error envelope with the right status and `type`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use oma_core::{Error, ErrorKind};
use serde_json::{Map, Value};

/// A failed request. Built from domain, store and blob errors; rendered as the envelope.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<oma_store::StoreError> for ApiError {
    fn from(e: oma_store::StoreError) -> Self {
        match e {
            oma_store::StoreError::Domain(e) => ApiError(e),
            // `moving::layer` waits for the move and retries; this is what a client sees
            // when the move takes longer than that wait.
            oma_store::StoreError::TenantFenced => ApiError(
                Error::new(
                    ErrorKind::Unavailable,
                    "this tenant is being moved to another shard; try again in a moment",
                )
                .with_code(crate::moving::TENANT_MOVING),
            ),
            other => {
                tracing::error!(error = %other, "storage failure");
                ApiError(Error::internal("internal storage error"))
            }
        }
    }
}

impl From<oma_blob::BlobError> for ApiError {
    fn from(e: oma_blob::BlobError) -> Self {
        tracing::error!(error = %e, "blob storage failure");
        ApiError(Error::internal("internal blob storage error"))
    }
}

/// HTTP status and envelope `type` of each kind (spec §7.2).
pub fn status_and_type(kind: ErrorKind) -> (StatusCode, &'static str) {
    match kind {
        ErrorKind::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request_error"),
        ErrorKind::Authentication => (StatusCode::UNAUTHORIZED, "authentication_error"),
        ErrorKind::PermissionDenied => (StatusCode::FORBIDDEN, "permission_error"),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found_error"),
        ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict_error"),
        ErrorKind::MemoryPreconditionFailed => {
            (StatusCode::CONFLICT, "memory_precondition_failed_error")
        }
        ErrorKind::MemoryPathConflict => (StatusCode::CONFLICT, "memory_path_conflict_error"),
        ErrorKind::PreconditionFailed => (StatusCode::PRECONDITION_FAILED, "invalid_request_error"),
        ErrorKind::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error"),
        ErrorKind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "api_error"),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "api_error"),
    }
}

/// The envelope body for `e` (also used for `event: error` frames on SSE streams).
pub fn envelope(e: &Error) -> Value {
    let (_, kind) = status_and_type(e.kind);
    let mut details = match &e.details {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    if let Some(code) = e.code {
        details.insert("error_code".into(), Value::String(code.into()));
    }
    let details = (!details.is_empty()).then_some(Value::Object(details));
    let env = oma_api::ErrorEnvelope::new(
        kind,
        e.message.clone(),
        details,
        crate::request_id::current(),
    );
    serde_json::to_value(env).unwrap_or(Value::Null)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = status_and_type(self.0.kind);
        let body = envelope(&self.0);
        let mut resp = (status, axum::Json(body)).into_response();
        if self.0.code == Some(crate::moving::TENANT_MOVING) {
            resp.extensions_mut()
                .insert(crate::moving::TenantMovingMark);
        }
        // Deterministic conflicts must not be retried by the SDK (it retries 409 by default).
        if matches!(
            self.0.kind,
            ErrorKind::Conflict
                | ErrorKind::MemoryPreconditionFailed
                | ErrorKind::MemoryPathConflict
        ) || (status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS)
        {
            resp.headers_mut()
                .insert("x-should-retry", HeaderValue::from_static("false"));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
