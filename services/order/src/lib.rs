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
use orderflow_runtime::{Runtime, RuntimeError, ServiceSpec, Shutdown};
use tokio::net::TcpListener;

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
    let routes = http::routes(rt.clone());
    rt.serve(
        listener,
        routes,
        Some(Arc::new(handlers::OrderSaga)),
        shutdown,
    )
    .await
}
