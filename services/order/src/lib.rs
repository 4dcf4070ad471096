//! The order service: accepts orders (order + `OrderCreated` in one
//! transaction), follows the saga's events to keep each order's status and
//! history, and announces `OrderCompleted` / `OrderCancelled`.

mod config;
pub mod domain;
mod handlers;
mod http;
mod store;

use std::sync::Arc;

use orderflow_envelope::{EventType, Topic};
use orderflow_runtime::telemetry::SagaMetrics;
use orderflow_runtime::{Runtime, RuntimeError, ServiceSpec, Shutdown};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "order",
    migrations: orderflow_runtime::sqlx::migrate!("./migrations"),
    produces: &[
        EventType::OrderCreated,
        EventType::OrderCompleted,
        EventType::OrderCancelled,
    ],
    consumes: &[Topic::Inventory, Topic::Payments, Topic::Shipments],
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
    let rt = Runtime::connect(&SPEC, config.runtime).await?;
    let saga = SagaMetrics::register(rt.metrics());
    let routes = http::routes(rt.clone(), saga.clone());
    let handler = Arc::new(handlers::OrderSaga {
        metrics: saga.clone(),
    });
    let stop_gauges = CancellationToken::new();
    tokio::spawn(measure_in_flight(rt.clone(), saga, stop_gauges.clone()));
    // Stops the gauge task however serve ends, early exits included.
    let _stop_gauges = stop_gauges.drop_guard();
    rt.serve(listener, routes, Some(handler), shutdown).await
}

/// Keeps the in-flight gauges current: what the stuck-saga alert watches.
async fn measure_in_flight(rt: Arc<Runtime>, saga: SagaMetrics, stop: CancellationToken) {
    loop {
        match store::in_flight(rt.db().pool()).await {
            Ok((n, oldest)) => {
                saga.in_flight.set(n);
                let age =
                    oldest.map(|t| (orderflow_runtime::now_millis() - t).max(0) as f64 / 1000.0);
                saga.oldest_in_flight_age_seconds.set(age.unwrap_or(0.0));
            }
            Err(e) => tracing::debug!(error = %e, "could not measure sagas in flight"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            _ = stop.cancelled() => return,
        }
    }
}
