//! `application/problem+json` (RFC 9457). Every error an orderflow HTTP API
//! returns is one of these, with a stable `type` URI clients can switch on.
//! A server error (5xx) says nothing of the inside (no internal address, no
//! database message): its detail goes to the log with the request's trace
//! id, and the body carries that id for the caller to quote.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The stable error kinds of the API. The `type` URI is
/// `https://orderflow.dev/problems/<slug>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    MalformedBody,
    ValidationFailed,
    UnknownSku,
    IdempotencyKeyReused,
    NotFound,
    Unauthorized,
    Forbidden,
    TooManyRequests,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unavailable,
    Internal,
}

impl ProblemType {
    pub fn slug(self) -> &'static str {
        match self {
            ProblemType::MalformedBody => "malformed-body",
            ProblemType::ValidationFailed => "validation-failed",
            ProblemType::UnknownSku => "unknown-sku",
            ProblemType::IdempotencyKeyReused => "idempotency-key-reused",
            ProblemType::NotFound => "not-found",
            ProblemType::Unauthorized => "unauthorized",
            ProblemType::Forbidden => "forbidden",
            ProblemType::TooManyRequests => "too-many-requests",
            ProblemType::MethodNotAllowed => "method-not-allowed",
            ProblemType::PayloadTooLarge => "payload-too-large",
            ProblemType::UnsupportedMediaType => "unsupported-media-type",
            ProblemType::Unavailable => "unavailable",
            ProblemType::Internal => "internal",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ProblemType::MalformedBody => StatusCode::BAD_REQUEST,
            ProblemType::ValidationFailed
            | ProblemType::UnknownSku
            | ProblemType::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ProblemType::NotFound => StatusCode::NOT_FOUND,
            ProblemType::Unauthorized => StatusCode::UNAUTHORIZED,
            ProblemType::Forbidden => StatusCode::FORBIDDEN,
            ProblemType::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ProblemType::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProblemType::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemType::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProblemType::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProblemType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(self) -> &'static str {
        match self {
            ProblemType::MalformedBody => "The request body is not valid JSON for this endpoint",
            ProblemType::ValidationFailed => "The request is well-formed but not valid",
            ProblemType::UnknownSku => "The order names a SKU the catalogue does not have",
            ProblemType::IdempotencyKeyReused => {
                "The Idempotency-Key was already used with another body"
            }
            ProblemType::NotFound => "No such resource",
            ProblemType::Unauthorized => "A valid bearer token is required",
            ProblemType::Forbidden => "The token does not allow this",
            ProblemType::TooManyRequests => "Too many requests; slow down",
            ProblemType::MethodNotAllowed => "Method not allowed",
            ProblemType::PayloadTooLarge => "The request body is too large",
            ProblemType::UnsupportedMediaType => "The request body must be application/json",
            ProblemType::Unavailable => "A service this request needs is unavailable; try again",
            ProblemType::Internal => "Internal error",
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// On a server error: the trace id its detail was logged under.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub trace_id: Option<Box<str>>,
    /// Headers the response carries (`WWW-Authenticate`, `Retry-After`…).
    #[serde(skip)]
    pub headers: Vec<(&'static str, String)>,
}

impl Problem {
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("https://orderflow.dev/problems/{}", kind.slug()),
            title: kind.title().to_string(),
            status: kind.status().as_u16(),
            detail: Some(detail.into()),
            trace_id: None,
            headers: Vec::new(),
        }
    }

    /// The response carries this header too.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::Forbidden, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::NotFound, detail)
    }

    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::ValidationFailed, detail)
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::new(ProblemType::Internal, detail.to_string())
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.title,
            self.status,
            self.detail.as_deref().unwrap_or("")
        )
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(mut self) -> Response {
        if self.status >= 500 {
            // The detail is for operators: logged with the trace id (a random
            // one when tracing is off), which the caller gets to quote.
            let trace_id = orderflow_telemetry::trace::current_context()
                .and_then(|(traceparent, _)| traceparent.split('-').nth(1).map(str::to_string))
                .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
            tracing::error!(trace_id = %trace_id, problem = %self, "request failed");
            self.detail = Some(format!(
                "{} Quote trace id {trace_id} when you report it.",
                if self.status == 503 {
                    "A service this request needs did not answer; try again shortly."
                } else {
                    "The request failed on our side."
                }
            ));
            self.trace_id = Some(trace_id.into());
        }
        let body = serde_json::to_vec(&self).expect("a problem always serializes");
        let mut response = (
            self.status_code(),
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        for (name, value) in &self.headers {
            if let Ok(value) = header::HeaderValue::from_str(value) {
                response.headers_mut().insert(*name, value);
            }
        }
        response
    }
}
