//! The Anthropic error envelope: `{"type":"error","error":{"type","message","details"},"request_id"}`.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ErrorEnvelope {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub error: ErrorBody,
    pub request_id: String,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ErrorBody {
    /// `invalid_request_error`, `not_found_error`, … (spec §7.1).
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl ErrorEnvelope {
    pub fn new(
        kind: &'static str,
        message: String,
        details: Option<Value>,
        request_id: String,
    ) -> Self {
        Self {
            kind: "error",
            error: ErrorBody {
                kind,
                message,
                details,
            },
            request_id,
        }
    }
}
