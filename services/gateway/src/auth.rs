//! Every call to the API carries an OAuth 2.0 bearer token; this checks it
//! and hands the caller (a [`Principal`]) to the handlers. Health, readiness,
//! the OpenAPI document, metrics and the console's files need none (the chart's Ingress does not
//! route `/metrics`: Prometheus scrapes pods directly).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orderflow_auth::{AuthError, Principal, Verifier};
use orderflow_http::{Problem, ProblemType};

/// Paths anyone may call.
const PUBLIC: [&str; 4] = ["/healthz", "/readyz", "/openapi.json", "/metrics"];

pub async fn authenticate(
    State(verifier): State<Arc<Verifier>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if PUBLIC.contains(&path) || crate::console::is_console(path) {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let verdict = match token {
        Some(token) if !token.is_empty() => verifier.verify(token).await,
        _ => Err(AuthError::Missing),
    };
    match verdict {
        Ok(principal) => {
            tracing::Span::current().record("enduser.id", principal.subject.as_str());
            let bearer = Bearer(token.unwrap_or_default().into());
            request.extensions_mut().insert(principal);
            request.extensions_mut().insert(bearer);
            next.run(request).await
        }
        // The issuer is away: not the caller's fault, and worth a retry.
        Err(e @ AuthError::KeysUnavailable(_)) => {
            Problem::new(ProblemType::Unavailable, e.to_string()).into_response()
        }
        Err(e) => Problem::new(ProblemType::Unauthorized, e.to_string())
            .with_header("www-authenticate", e.challenge())
            .into_response(),
    }
}

/// The caller's bearer token, as the gateway forwards it to the services:
/// each checks it again and decides for itself what the caller may do.
#[derive(Clone)]
pub struct Bearer(Arc<str>);

impl Bearer {
    pub fn token(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(…)")
    }
}

/// An operator call: a customer's token gets 403.
pub fn require_operator(principal: &Principal) -> Result<(), Problem> {
    if principal.is_operator() {
        Ok(())
    } else {
        Err(Problem::forbidden(
            "this is an operator call: it needs a token with the operator role",
        ))
    }
}
