//! The REST gateway: the public API (SPEC §8) in front of the order, inventory
//! and notification services.

mod catalogue;
mod config;
mod http;
mod upstream;

use std::time::Duration;

use orderflow_http::{health_routes, Readiness};
use orderflow_runtime::telemetry::{metrics_route, observe_http, Metrics};
use orderflow_runtime::{RuntimeError, Shutdown};
use tokio::net::TcpListener;

pub use config::Config;

/// Binds the configured address and runs until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), RuntimeError> {
    let listener = TcpListener::bind(config.http_addr).await?;
    serve(config, listener, shutdown).await
}

/// Runs on an already-bound listener (tests bind `127.0.0.1:0`).
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), RuntimeError> {
    let timeout = Duration::from_millis(config.upstream_timeout_ms);
    let upstreams = http::Upstreams {
        order: upstream::Upstream::new("order", &config.order_url, timeout),
        inventory: upstream::Upstream::new("inventory", &config.inventory_url, timeout),
        notification: upstream::Upstream::new("notification", &config.notification_url, timeout),
        known_skus: Default::default(),
    };
    let readiness = Readiness::default();
    let metrics = Metrics::new();
    let app = health_routes(readiness.clone())
        .merge(http::routes(upstreams))
        .merge(metrics_route(metrics.clone()))
        .layer(axum::middleware::from_fn_with_state(metrics, observe_http));
    readiness.set(true);
    tracing::info!(addr = %listener.local_addr()?, "gateway listening");
    let stop = async move {
        shutdown.await;
        readiness.set(false);
    };
    orderflow_http::serve(listener, app, stop).await?;
    Ok(())
}
