//! Provider errors, classified for the retry decision.
//!
//! The classes follow the official SDKs: 408, 409, 429, 5xx and 529 (Anthropic's "overloaded"),
//! timeouts and dropped connections are worth another attempt; bad requests, bad keys and
//! billing problems are not. Anthropic's `x-should-retry` header overrides the status-based
//! decision when present, as in the official SDK.

use std::fmt;
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use serde_json::Value;

/// What went wrong, coarsely: enough to decide on a retry and to name the session error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// 429.
    RateLimited,
    /// 529 / `overloaded_error`.
    Overloaded,
    /// Other 5xx, 409, `api_error`.
    Server,
    /// No response or no bytes in time (connect or read timeout, 408, 504).
    Timeout,
    /// The connection failed or dropped, including a stream that ended early.
    Connection,
    /// 401 / 403: the key is wrong or lacks permission.
    Auth,
    /// 400 / 404 / 413 / 422: this request will never succeed as sent.
    InvalidRequest,
    /// 402 / `billing_error`.
    Billing,
    /// Anything else, including a provider speaking a wire format we do not understand.
    Other,
}

impl ErrorClass {
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::RateLimited
                | ErrorClass::Overloaded
                | ErrorClass::Server
                | ErrorClass::Timeout
                | ErrorClass::Connection
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Overloaded => "overloaded",
            ErrorClass::Server => "server",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Connection => "connection",
            ErrorClass::Auth => "auth",
            ErrorClass::InvalidRequest => "invalid_request",
            ErrorClass::Billing => "billing",
            ErrorClass::Other => "other",
        }
    }

    /// The class of an HTTP status.
    pub fn from_status(status: u16) -> Self {
        match status {
            401 | 403 => ErrorClass::Auth,
            402 => ErrorClass::Billing,
            408 | 504 => ErrorClass::Timeout,
            409 => ErrorClass::Server,
            429 => ErrorClass::RateLimited,
            529 => ErrorClass::Overloaded,
            500..=599 => ErrorClass::Server,
            400..=499 => ErrorClass::InvalidRequest,
            _ => ErrorClass::Other,
        }
    }

    /// The class of an error `type` in a body or in a mid-stream `error` event (Anthropic's
    /// names, plus OpenAI's where they differ).
    pub fn from_error_type(t: &str) -> Option<Self> {
        Some(match t {
            "overloaded_error" => ErrorClass::Overloaded,
            "rate_limit_error" | "rate_limit_exceeded" | "insufficient_quota_rate" => {
                ErrorClass::RateLimited
            }
            "api_error" | "server_error" => ErrorClass::Server,
            "timeout_error" => ErrorClass::Timeout,
            "authentication_error" | "permission_error" => ErrorClass::Auth,
            "invalid_request_error" | "not_found_error" | "request_too_large" => {
                ErrorClass::InvalidRequest
            }
            "billing_error" | "insufficient_quota" => ErrorClass::Billing,
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed model request or stream. Never carries credentials: messages come from the
/// provider's error body or from our own descriptions.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ModelError {
    kind: ErrorClass,
    status: Option<u16>,
    error_type: Option<String>,
    message: String,
    retry_after: Option<Duration>,
    should_retry: Option<bool>,
    request_id: Option<String>,
}

/// Longest provider message kept; error bodies can be whole HTML pages from a gateway.
const MAX_MESSAGE: usize = 1000;

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.status, &self.error_type) {
            (Some(s), Some(t)) => write!(f, "HTTP {s} {t}: {}", self.message),
            (Some(s), None) => write!(f, "HTTP {s}: {}", self.message),
            (None, Some(t)) => write!(f, "{t}: {}", self.message),
            (None, None) => write!(f, "{}: {}", self.kind, self.message),
        }
    }
}

/// A stream that is not valid server-sent events: the provider speaks something else.
impl From<oma_sse::SseError> for ModelError {
    fn from(e: oma_sse::SseError) -> Self {
        ModelError::protocol(e.0)
    }
}

impl ModelError {
    pub fn new(kind: ErrorClass, message: impl Into<String>) -> Self {
        ModelError {
            kind,
            status: None,
            error_type: None,
            message: truncate(message.into()),
            retry_after: None,
            should_retry: None,
            request_id: None,
        }
    }

    /// The provider answered with something we cannot interpret. Not retried: a compatible
    /// server speaking a different dialect would fail the same way every time.
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Other, message)
    }

    /// The stream ended (or broke) before the message was complete. Retryable.
    pub fn incomplete(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Connection, message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Timeout, message)
    }

    /// Missing or unusable configuration (no API key, bad base URL).
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Auth, message)
    }

    /// A non-2xx response. `body` is the raw response body; both Anthropic's
    /// `{"type":"error","error":{"type","message"}}` and OpenAI's
    /// `{"error":{"message","type","code"}}` are understood.
    pub fn from_http(status: u16, headers: &HeaderMap, body: &[u8]) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let err = parsed.as_ref().and_then(|v| v.get("error"));
        let error_type = err
            .and_then(|e| e.get("type").or_else(|| e.get("code")))
            .and_then(Value::as_str)
            .map(str::to_string);
        let message = err
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| err.and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(body).trim().to_string();
                if text.is_empty() {
                    status_text(status).to_string()
                } else {
                    text
                }
            });
        // The status decides the class; a known error type refines a generic 4xx/5xx (e.g. an
        // OpenAI-compatible gateway answering 400 with `rate_limit_exceeded`).
        let by_status = ErrorClass::from_status(status);
        let kind = match (
            by_status,
            error_type.as_deref().and_then(ErrorClass::from_error_type),
        ) {
            (ErrorClass::InvalidRequest | ErrorClass::Server | ErrorClass::Other, Some(k)) => k,
            _ => by_status,
        };
        let request_id = headers
            .get("request-id")
            .or_else(|| headers.get("x-request-id"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| {
                parsed
                    .as_ref()
                    .and_then(|v| v.get("request_id"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
        let should_retry = match headers.get("x-should-retry").and_then(|v| v.to_str().ok()) {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => None,
        };
        ModelError {
            kind,
            status: Some(status),
            error_type,
            message: truncate(message),
            retry_after: retry_after_from_headers(headers, SystemTime::now()),
            should_retry,
            request_id,
        }
    }

    /// An `error` event inside an otherwise successful stream (e.g. `overloaded_error`).
    pub fn from_stream_error(error_type: &str, message: &str) -> Self {
        let kind = ErrorClass::from_error_type(error_type).unwrap_or(ErrorClass::Server);
        ModelError {
            error_type: Some(error_type.to_string()),
            ..Self::new(kind, message)
        }
    }

    /// A transport error from the HTTP client.
    pub fn from_reqwest(e: &reqwest::Error) -> Self {
        let kind = if e.is_timeout() {
            ErrorClass::Timeout
        } else if e.is_builder() {
            ErrorClass::Other
        } else {
            // connect, request, body and decode errors: the connection failed or dropped.
            ErrorClass::Connection
        };
        // `reqwest::Error`'s Display includes the URL, which holds no secret (keys travel in
        // headers); include the source chain for the useful part ("connection reset", …).
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Self::new(kind, message)
    }

    pub fn kind(&self) -> ErrorClass {
        self.kind
    }

    /// Whether another attempt may succeed.
    pub fn retryable(&self) -> bool {
        self.should_retry.unwrap_or_else(|| self.kind.retryable())
    }

    /// How long the provider asked us to wait (`retry-after-ms`, `retry-after`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The HTTP status, when the error is an HTTP response.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The provider's error type (`overloaded_error`, `invalid_request_error`, …), when given.
    pub fn error_type(&self) -> Option<&str> {
        self.error_type.as_deref()
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The provider's request id, for support tickets.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    pub fn with_retry_after(mut self, d: Option<Duration>) -> Self {
        self.retry_after = d;
        self
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn status_text(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error")
}

/// `retry-after-ms` (milliseconds, Anthropic/OpenAI extension) wins over `retry-after`
/// (seconds, or an HTTP date relative to `now`).
pub fn retry_after_from_headers(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let v = get("retry-after")?;
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn classifies_statuses() {
        let cases = [
            (400, ErrorClass::InvalidRequest, false),
            (401, ErrorClass::Auth, false),
            (403, ErrorClass::Auth, false),
            (404, ErrorClass::InvalidRequest, false),
            (402, ErrorClass::Billing, false),
            (408, ErrorClass::Timeout, true),
            (409, ErrorClass::Server, true),
            (413, ErrorClass::InvalidRequest, false),
            (429, ErrorClass::RateLimited, true),
            (500, ErrorClass::Server, true),
            (502, ErrorClass::Server, true),
            (503, ErrorClass::Server, true),
            (504, ErrorClass::Timeout, true),
            (529, ErrorClass::Overloaded, true),
        ];
        for (status, class, retry) in cases {
            let e = ModelError::from_http(status, &HeaderMap::new(), b"");
            assert_eq!(e.kind(), class, "{status}");
            assert_eq!(e.retryable(), retry, "{status}");
            assert_eq!(e.status(), Some(status));
        }
    }

    #[test]
    fn parses_anthropic_and_openai_bodies() {
        let e = ModelError::from_http(
            529,
            &headers(&[("request-id", "req_1")]),
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#,
        );
        assert_eq!(e.error_type(), Some("overloaded_error"));
        assert_eq!(e.message(), "Overloaded");
        assert_eq!(e.request_id(), Some("req_1"));
        assert_eq!(e.to_string(), "HTTP 529 overloaded_error: Overloaded");

        let e = ModelError::from_http(
            401,
            &HeaderMap::new(),
            br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
        );
        assert_eq!(e.kind(), ErrorClass::Auth);
        assert!(!e.retryable());
        assert_eq!(e.message(), "Incorrect API key provided");

        // A gateway's 400 that is really a rate limit.
        let e = ModelError::from_http(
            400,
            &HeaderMap::new(),
            br#"{"error":{"type":"rate_limit_error","message":"slow down"}}"#,
        );
        assert_eq!(e.kind(), ErrorClass::RateLimited);

        let e = ModelError::from_http(502, &HeaderMap::new(), b"<html>bad gateway</html>");
        assert_eq!(e.message(), "<html>bad gateway</html>");
        let e = ModelError::from_http(502, &HeaderMap::new(), &vec![b'x'; 5000]);
        assert!(e.message().len() < 1010);
        let e = ModelError::from_http(503, &HeaderMap::new(), b"");
        assert_eq!(e.message(), "Service Unavailable");
    }

    #[test]
    fn should_retry_header_overrides() {
        let e = ModelError::from_http(400, &headers(&[("x-should-retry", "true")]), b"");
        assert!(e.retryable());
        let e = ModelError::from_http(500, &headers(&[("x-should-retry", "false")]), b"");
        assert!(!e.retryable());
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", "3")]), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", "1.5")]), now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after_from_headers(
                &headers(&[("retry-after", "3"), ("retry-after-ms", "250")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(10));
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", &date)]), now),
            Some(Duration::from_secs(10))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(10));
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", &past)]), now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", "soon")]), now),
            None
        );
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", "-1")]), now),
            None
        );
        assert_eq!(retry_after_from_headers(&HeaderMap::new(), now), None);
        let e = ModelError::from_http(429, &headers(&[("retry-after", "7")]), b"");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    }

    #[test]
    fn stream_errors_classify_by_type() {
        assert_eq!(
            ModelError::from_stream_error("overloaded_error", "x").kind(),
            ErrorClass::Overloaded
        );
        assert!(ModelError::from_stream_error("overloaded_error", "x").retryable());
        assert!(!ModelError::from_stream_error("invalid_request_error", "x").retryable());
        assert_eq!(
            ModelError::from_stream_error("mystery", "x").kind(),
            ErrorClass::Server
        );
        assert!(ModelError::incomplete("x").retryable());
        assert!(!ModelError::protocol("x").retryable());
    }
}
