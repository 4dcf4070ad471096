//! The payment service: charges an order's reserved total through the payment
//! provider, and refunds it when shipping fails.

mod config;
mod handlers;
mod http;
pub mod provider;
mod store;

use std::sync::Arc;
use std::time::Duration;

use orderflow_envelope::{EventType, Topic};
use orderflow_runtime::resilience::Policy;
use orderflow_runtime::{Runtime, RuntimeError, ServiceSpec, Shutdown};
use tokio::net::TcpListener;

pub use config::Config;
use provider::{PaymentProvider, SandboxProvider};

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "payment",
    migrations: orderflow_runtime::sqlx::migrate!("./migrations"),
    produces: &[
        EventType::PaymentProcessed,
        EventType::PaymentFailed,
        EventType::PaymentRefunded,
    ],
    consumes: &[Topic::Inventory, Topic::Shipments],
};

/// Binds the configured address and runs until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), RuntimeError> {
    let listener = TcpListener::bind(config.runtime.http_addr).await?;
    serve(config, listener, shutdown).await
}

/// Runs on an already-bound listener (tests bind `127.0.0.1:0`).
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), RuntimeError> {
    let provider: Arc<dyn PaymentProvider> = Arc::new(SandboxProvider::new(
        Duration::from_millis(config.sandbox_latency_ms),
        config.sandbox_failure_rate,
    ));
    let timeout = Duration::from_millis(config.provider_timeout_ms);
    let rt = Runtime::connect(&SPEC, config.runtime).await?;
    let policy = Policy::new("payment-provider")
        .with_timeout(timeout)
        .with_metrics(rt.metrics());
    let handler = Arc::new(handlers::PaymentHandler {
        provider: provider.clone(),
        policy,
    });
    let routes = http::routes(rt.clone(), provider);
    rt.serve(listener, routes, Some(handler), shutdown).await
}
