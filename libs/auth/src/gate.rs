//! The door of every orderflow HTTP API, the gateway's and each service's
//! alike: a call carries an OAuth 2.0 bearer token, checked here on every
//! call with the same [`Verifier`], and handlers get the caller (a
//! [`Principal`]) and the token itself (a [`Bearer`], which the gateway
//! forwards so that each service checks it again and decides for itself).
//! Nothing behind the gateway trusts a call for where it came from.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orderflow_http::{Problem, ProblemType};

use crate::{AuthError, Principal, Verifier};

/// The verifier, and the paths (if any) anyone may call.
#[derive(Clone)]
pub struct Gate {
    verifier: Arc<Verifier>,
    public: fn(&str) -> bool,
}

impl Gate {
    /// Every path needs a token.
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Self {
            verifier,
            public: |_| false,
        }
    }

    /// Paths for which `public` says yes need none.
    pub fn with_public(self, public: fn(&str) -> bool) -> Self {
        Self { public, ..self }
    }
}

/// The caller's bearer token, as the gateway forwards it.
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

/// The middleware: 401 (with a `WWW-Authenticate` challenge) without a
/// valid token, 503 while the issuer's keys cannot be fetched.
pub async fn authenticate(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    if (gate.public)(request.uri().path()) {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|token| !token.is_empty());
    let verdict = match token {
        Some(token) => gate
            .verifier
            .verify(token)
            .await
            .map(|principal| (principal, Bearer(token.into()))),
        None => Err(AuthError::Missing),
    };
    match verdict {
        Ok((principal, bearer)) => {
            tracing::Span::current().record("enduser.id", principal.subject.as_str());
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

/// An operator call: a customer's token gets 403.
pub fn require_operator(caller: &Principal) -> Result<(), Problem> {
    if caller.is_operator() {
        Ok(())
    } else {
        Err(Problem::forbidden(
            "this is an operator call: it needs a token with the operator role",
        ))
    }
}

/// What belongs to `customer_id`: another customer's is "not found", as
/// if it did not exist, so ids tell nothing.
pub fn require_own(caller: &Principal, customer_id: &str) -> Result<(), Problem> {
    if caller.may_see(customer_id) {
        Ok(())
    } else {
        Err(Problem::not_found(format!("no customer {customer_id}")))
    }
}
