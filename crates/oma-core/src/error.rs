//! The one error type that crosses layers. Each kind maps to exactly one HTTP status and
//! Anthropic error `type` at the server edge; `code` becomes `error.details.error_code`.

use serde_json::Value;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    PermissionDenied,
    NotFound,
    Conflict,
    MemoryPreconditionFailed,
    MemoryPathConflict,
    PreconditionFailed,
    PayloadTooLarge,
    RateLimited,
    Internal,
    Unavailable,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    /// Stable machine code (`error.details.error_code`), e.g. `environment_not_found`.
    pub code: Option<&'static str>,
    /// Extra keys for `error.details` beside `error_code`.
    pub details: Option<Value>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            code: None,
            details: None,
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Authentication, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PayloadTooLarge, message)
    }
    /// A "no such object" answer. The same text is used whether the id never existed or
    /// belongs to another tenant, so ids cannot be probed across tenants.
    pub fn missing(what: &str, id: &str) -> Self {
        Self::not_found(format!("{what} `{id}` not found"))
    }
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
}
