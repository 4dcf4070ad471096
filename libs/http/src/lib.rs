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
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// The largest request body any endpoint accepts; larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long a client may take: to send a request's headers (a slow-loris
/// client holds a connection open by sending them a byte at a time), and to
/// be answered in full.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header_read: Duration,
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            request: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on an already-bound listener until `shutdown` resolves, then
/// lets in-flight requests finish (for up to ten seconds). Unknown paths and
/// methods get problems too; so do requests past the timeouts.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, Timeouts::default(), shutdown).await
}

pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    timeouts: Timeouts,
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
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            timeouts.request,
            request_timeout,
        ));
    // axum::serve sets no header-read timeout; hyper's needs a timer.
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, say: wait a little, go on.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let service = TowerToHyperService::new(router.clone());
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("requests still in progress after 10 s of shutdown; closing");
        }
    }
    Ok(())
}

/// A request not answered within the time is answered 503 (the work it
/// started stops).
async fn request_timeout(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(Problem::new(
            ProblemType::Unavailable,
            format!("the request took longer than {limit:?}"),
        )),
    }
}
