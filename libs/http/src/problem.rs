//! `application/problem+json` (RFC 9457). Every error an orderflow HTTP API
//! returns is one of these, with a stable `type` URI clients can switch on.

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
}

impl Problem {
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("https://orderflow.dev/problems/{}", kind.slug()),
            title: kind.title().to_string(),
            status: kind.status().as_u16(),
            detail: Some(detail.into()),
        }
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
    fn into_response(self) -> Response {
        if self.status >= 500 {
            tracing::error!(problem = %self, "request failed");
        }
        let body = serde_json::to_vec(&self).expect("a problem always serializes");
        (
            self.status_code(),
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response()
    }
}
