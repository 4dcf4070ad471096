//! Path-parameter and query-string extractors whose rejection is a problem
//! document.
#![deny(clippy::unwrap_used, clippy::arithmetic_side_effects)]

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path as AxumPath, Query as AxumQuery};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::{Problem, ProblemType};

/// Like `axum::extract::Path`; a parameter that does not parse (invalid
/// percent-encoding, or outside its type's grammar) is a 422 problem.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        AxumPath::<T>::from_request_parts(parts, state)
            .await
            .map(|AxumPath(value)| Path(value))
            .map_err(|rejection| match rejection {
                PathRejection::MissingPathParams(_) => Problem::internal(rejection.body_text()),
                _ => Problem::new(ProblemType::ValidationFailed, rejection.body_text()),
            })
    }
}

/// Like `axum::extract::Query`; a query string that does not parse into `T`
/// (an unknown parameter, a number that is not one) is a 422 problem.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        AxumQuery::<T>::from_request_parts(parts, state)
            .await
            .map(|AxumQuery(value)| Query(value))
            .map_err(|rejection| {
                Problem::new(
                    ProblemType::ValidationFailed,
                    format!("query: {}", rejection.body_text()),
                )
            })
    }
}
