//! HTTP plumbing every orderflow service shares: RFC 9457 problem responses,
//! a JSON extractor whose rejections are problems too, health and readiness
//! endpoints, and serving a router until shutdown.

mod health;
mod json;
mod path;
mod problem;

pub use health::{health_routes, Readiness};
pub use json::StrictJson;
pub use path::Path;
pub use problem::{Problem, ProblemType};

use std::future::Future;

use axum::Router;
use tokio::net::TcpListener;

/// The largest request body any endpoint accepts; larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Serves `router` on an already-bound listener until `shutdown` resolves, then
/// lets in-flight requests finish. Unknown paths and methods get problems too.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router
        .fallback(|| async {
            Problem::not_found("no such endpoint; see /openapi.json at the gateway")
        })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                ProblemType::MethodNotAllowed,
                "this endpoint does not accept that method",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
