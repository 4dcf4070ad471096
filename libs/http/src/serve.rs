//! Serving a router with every connection bounded: how many are open at
//! once, how long one may stay silent before its first request is known,
//! how long its headers may take, how many HTTP/2 streams and how many
//! header bytes it may carry, and how long it may stay open doing nothing.
//! Without these an anonymous client holds connections (and file
//! descriptors) for ever: one that never sends a byte, one that sends a
//! header a byte a minute, an HTTP/2 connection with no stream.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::activity::Activity;
use crate::problem::{Problem, ProblemType};

/// The largest request body any endpoint accepts; larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How much a client may take of a server, in time and in number.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From accepting a connection until its protocol is known: its first
    /// byte, or all 24 of HTTP/2's preface.
    pub first_byte: Duration,
    /// To send a request's headers (HTTP/1; a slow-loris client sends them
    /// a byte at a time).
    pub header_read: Duration,
    /// To be answered in full (503 past it).
    pub request: Duration,
    /// Open with no request in progress (a kept-alive HTTP/1 connection,
    /// an HTTP/2 connection with no stream): then it is closed. A kept-alive
    /// HTTP/1 connection meets `header_read` first (see [`CLIENT_POOL_IDLE`]).
    pub idle: Duration,
    /// Connections open at once; one more is closed as it is accepted.
    pub max_connections: usize,
    /// Streams in progress at once on one HTTP/2 connection.
    pub h2_max_streams: u32,
    /// An HTTP/2 request's header list, in bytes (HPACK-decoded).
    pub h2_max_header_bytes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            first_byte: Duration::from_secs(5),
            header_read: Duration::from_secs(10),
            request: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            max_connections: 2_048,
            h2_max_streams: 64,
            h2_max_header_bytes: 16 * 1024,
        }
    }
}

/// How long a client of an orderflow server keeps an idle pooled connection:
/// half the time a server keeps one, so it never sends a request on a
/// connection the server is closing. A kept-alive HTTP/1 connection is
/// closed at the header deadline (10 s by default), not the idle limit:
/// hyper starts that deadline as soon as the connection waits for its next
/// request. reqwest keeps them 90 s.
pub const CLIENT_POOL_IDLE: Duration = Duration::from_secs(5);

/// How long in-flight requests may take to finish once a server stops.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `router` on an already-bound listener until `shutdown` resolves, then
/// lets in-flight requests finish (for up to ten seconds). Unknown paths and
/// methods get problems too; so do requests past the time limits.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, Limits::default(), shutdown).await
}

pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    limits: Limits,
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
            limits.request,
            request_timeout,
        ));
    let builders = Arc::new(Builders::new(&limits));
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let closing = CancellationToken::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, say: wait a little, go on.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = connections.clone().try_acquire_owned() else {
                    tracing::warn!(max = limits.max_connections, "as many connections open as allowed: one refused");
                    continue;
                };
                let (router, builders, closing) = (router.clone(), builders.clone(), closing.clone());
                tokio::spawn(async move {
                    serve_connection(stream, router, &builders, &limits, closing).await;
                    drop(slot);
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    closing.cancel();
    // Every connection gives its slot back once it has closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN, connections.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("requests still in progress after {DRAIN:?} of shutdown; closing");
    }
    Ok(())
}

/// One builder per protocol: the protocol is read off the first bytes
/// before either is used.
struct Builders {
    http1: Builder<TokioExecutor>,
    http2: Builder<TokioExecutor>,
}

impl Builders {
    fn new(limits: &Limits) -> Self {
        let mut http1 = Builder::new(TokioExecutor::new()).http1_only();
        http1
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read);
        let mut http2 = Builder::new(TokioExecutor::new()).http2_only();
        http2
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.h2_max_streams)
            .max_header_list_size(limits.h2_max_header_bytes)
            // A peer that stops answering pings is gone: close.
            .keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10));
        Self { http1, http2 }
    }
}

/// HTTP/2's connection preface, which an HTTP/2 cleartext client sends first.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether the connection speaks HTTP/2: waits for its first bytes, and
/// for all of the preface while they agree with it. `None` if it closed.
async fn speaks_h2(stream: &TcpStream) -> Option<bool> {
    let mut buf = [0u8; 24];
    loop {
        let n = stream.peek(&mut buf).await.ok()?;
        let seen = buf.get(..n)?;
        if n == 0 {
            return None;
        }
        if !H2_PREFACE.starts_with(seen) {
            return Some(false);
        }
        if n == H2_PREFACE.len() {
            return Some(true);
        }
        // Part of the preface: peek answers at once until more arrives.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    builders: &Builders,
    limits: &Limits,
    closing: CancellationToken,
) {
    let h2 = tokio::select! {
        h2 = tokio::time::timeout(limits.first_byte, speaks_h2(&stream)) => match h2 {
            Ok(Some(h2)) => h2,
            // Silent past the deadline, or gone.
            _ => return,
        },
        _ = closing.cancelled() => return,
    };
    let builder = if h2 { &builders.http2 } else { &builders.http1 };
    let activity = Activity::new();
    let service = TowerToHyperService::new(activity.track(router));
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    // Stopping, requests in progress get the drain's time to finish; idle,
    // there are none, and the client has a moment to acknowledge HTTP/2's
    // GOAWAY (one that never does is not waited for).
    let grace = tokio::select! {
        _ = connection.as_mut() => return,
        _ = closing.cancelled() => DRAIN,
        _ = activity.idle_for(limits.idle) => limits.first_byte,
    };
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(grace, connection).await;
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
