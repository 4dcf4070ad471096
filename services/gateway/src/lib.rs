//! The REST gateway: the public API (docs/api.md) in front of the order, inventory
//! and notification services.

mod auth;
mod catalogue;
mod config;
mod console;
mod dead_letters;
mod gzip;
mod http;
mod limits;
mod orders_feed;
mod stream;
mod trace;
mod upstream;

use std::sync::Arc;
use std::time::Duration;

use orderflow_http::{health_routes, Listeners, Readiness};
use orderflow_runtime::telemetry::{metrics_route, observe_http, Metrics};
use orderflow_runtime::{RuntimeError, Shutdown};

pub use config::Config;

/// Binds the configured addresses and runs until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), RuntimeError> {
    let listeners = Listeners::bind(config.http_addr, config.ops_addr).await?;
    serve(config, listeners, shutdown).await
}

/// Runs on already-bound listeners (tests bind `127.0.0.1:0`).
pub async fn serve(
    config: Config,
    listeners: Listeners,
    shutdown: Shutdown,
) -> Result<(), RuntimeError> {
    let timeout = Duration::from_millis(config.upstream_timeout_ms);
    let dead_letters = match config.dead_letter_source().map_err(RuntimeError::Config)? {
        Some(source) => Some(
            orderflow_dlq::DeadLetters::new(source)
                .map_err(|e| RuntimeError::Config(e.to_string()))?,
        ),
        None => None,
    };
    let streams_stop = tokio_util::sync::CancellationToken::new();
    let upstreams = http::Upstreams {
        order: upstream::Upstream::new("order", &config.order_url, timeout),
        inventory: upstream::Upstream::new("inventory", &config.inventory_url, timeout),
        notification: upstream::Upstream::new("notification", &config.notification_url, timeout),
        payment: upstream::Upstream::new("payment", &config.payment_url, timeout),
        known_skus: Default::default(),
        orders_limit: Arc::new(limits::RateLimiter::new(limits::Rate {
            per_second: config.orders_per_second,
            burst: config.orders_burst,
        })),
        stop: streams_stop.clone(),
        stream_slots: limits::Slots::new(
            "open order streams",
            config.max_streams_per_caller,
            config.max_streams,
        ),
    };
    let verifier = Arc::new(orderflow_auth::Verifier::new(config.auth.clone()));
    let anonymous = Arc::new(tokio::sync::Semaphore::new(config.max_anonymous_in_flight));
    let in_flight = limits::Slots::new(
        "requests in progress",
        config.max_requests_in_flight_per_caller,
        config.max_requests_in_flight,
    );
    let readiness = Readiness::default();
    let metrics = Metrics::new();
    let traces = Arc::new(trace::Traces::new(&config.jaeger_query_url, timeout));
    let app = http::routes(upstreams.clone())
        .merge(trace::routes(upstreams, traces.clone()))
        .merge(dead_letters::routes(dead_letters::Source::new(
            dead_letters,
        )))
        .merge(console::routes(
            config.console_jaeger_url.clone(),
            traces.configured(),
        ))
        .layer(axum::middleware::from_fn_with_state(
            in_flight,
            limits::admit_caller,
        ))
        .layer(axum::middleware::from_fn_with_state(
            auth::gate(verifier),
            orderflow_auth::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            anonymous,
            limits::admit_anonymous,
        ))
        .layer(axum::middleware::from_fn_with_state(
            metrics.clone(),
            observe_http,
        ));
    let ops = health_routes(readiness.clone()).merge(metrics_route(metrics));
    readiness.set(true);
    tracing::info!(
        addr = %listeners.api.local_addr()?,
        ops = %listeners.ops.local_addr()?,
        "gateway listening"
    );
    let stop = async move {
        shutdown.await;
        readiness.set(false);
        streams_stop.cancel();
    };
    let limits = orderflow_http::Limits {
        first_byte: Duration::from_millis(config.first_byte_timeout_ms),
        header_read: Duration::from_millis(config.header_read_timeout_ms),
        request: Duration::from_millis(config.request_timeout_ms),
        idle: Duration::from_millis(config.idle_timeout_ms),
        max_connections: config.max_connections,
        ..Default::default()
    };
    let stop_ops = tokio_util::sync::CancellationToken::new();
    let ops = tokio::spawn(orderflow_http::serve(
        listeners.ops,
        ops,
        stop_ops.clone().cancelled_owned(),
    ));
    let served = orderflow_http::serve_with(listeners.api, app, limits, stop).await;
    stop_ops.cancel();
    let _ = ops.await;
    served?;
    Ok(())
}
