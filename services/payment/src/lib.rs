//! The payment service: charges an order's reserved total through the payment
//! provider, and refunds it when shipping fails.

mod audit;
mod config;
pub mod domain;
mod handlers;
mod http;
pub mod provider;
mod store;

use std::sync::Arc;
use std::time::Duration;

use orderflow_envelope::{EventType, Topic};
use orderflow_http::Listeners;
use orderflow_runtime::resilience::Policy;
use orderflow_runtime::{Handler, Runtime, RuntimeError, ServiceSpec, Shutdown};

pub use config::Config;
use provider::{PaymentProvider, SandboxProvider, Weather};

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "payment",
    migrations: orderflow_runtime::sqlx::migrate!("./migrations"),
    produces: &[
        EventType::PaymentProcessed,
        EventType::PaymentFailed,
        EventType::PaymentRefunded,
        EventType::PaymentRefundFailed,
    ],
    consumes: &[Topic::Inventory, Topic::Shipments],
};

/// Binds the configured addresses and runs until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), RuntimeError> {
    let runtime = &config.runtime;
    let listeners = Listeners::bind(runtime.http_addr, runtime.ops_addr).await?;
    serve(config, listeners, shutdown).await
}

/// Runs on already-bound listeners (tests bind `127.0.0.1:0`).
pub async fn serve(
    config: Config,
    listeners: Listeners,
    shutdown: Shutdown,
) -> Result<(), RuntimeError> {
    let weather = Arc::new(Weather::new(
        Duration::from_millis(config.sandbox_latency_ms),
        config.sandbox_failure_rate,
    ));
    let timeout = Duration::from_millis(config.provider_timeout_ms);
    let breaker = config.runtime.breaker();
    let rt = Runtime::connect(&SPEC, config.runtime).await?;
    let ledger = rt.group_commit("sandbox-ledger", Arc::new(()));
    let provider: Arc<dyn PaymentProvider> = Arc::new(SandboxProvider::new(
        weather.clone(),
        ledger,
        rt.db().reader().clone(),
    ));
    // One attempt per delivery: a provider that does not answer is retried
    // through the retry tiers, which hold up neither a partition nor a slot.
    let policy = Policy::new("payment-provider")
        .with_timeout(timeout)
        .with_attempts(1)
        .with_breaker(breaker)
        .with_metrics(rt.metrics());
    let handler = handler(provider.clone(), policy);
    let routes = http::routes(rt.clone(), provider.clone(), weather, config.sandbox_api)
        .merge(audit::routes(rt.clone(), provider));
    rt.serve(listeners, routes, Some(handler), shutdown).await
}

/// Charges and refunds through `provider`, each call under `policy`.
pub fn handler(provider: Arc<dyn PaymentProvider>, policy: Policy) -> Arc<dyn Handler> {
    Arc::new(handlers::PaymentHandler {
        provider,
        policy: Arc::new(policy),
    })
}
