//! A JSON body extractor whose every rejection is a problem document, so a
//! malformed body, a wrong content type or an oversized body all read alike.
#![deny(clippy::unwrap_used, clippy::arithmetic_side_effects)]

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::problem::{Problem, ProblemType};

/// Like `axum::Json`, but rejections become problem+json. Pair it with
/// `#[serde(deny_unknown_fields)]` on the body type to reject unknown fields.
pub struct StrictJson<T>(pub T);

impl<T, S> FromRequest<S> for StrictJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(StrictJson(value)),
            Err(rejection) => Err(problem_for(rejection)),
        }
    }
}

fn problem_for(rejection: JsonRejection) -> Problem {
    let detail = rejection.body_text();
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            Problem::new(ProblemType::UnsupportedMediaType, detail)
        }
        JsonRejection::BytesRejection(ref r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(
                ProblemType::PayloadTooLarge,
                format!("the body exceeds {} bytes", crate::MAX_BODY_BYTES),
            )
        }
        _ => Problem::new(ProblemType::MalformedBody, detail),
    }
}
